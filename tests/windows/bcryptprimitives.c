/*
 * A stand-in for bcryptprimitives.dll, for running distrod.exe and its unit tests under
 * Wine 8, which lacks that DLL. Rust's standard library imports ProcessPrng from it; this
 * one draws the bytes from RtlGenRandom (advapi32's SystemFunction036) instead.
 *
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 * Install: into the Wine prefix's drive_c/windows/system32 (scripts/wine-prefix.sh does it).
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}
