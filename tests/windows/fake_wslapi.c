/*
 * A stand-in for wslapi.dll, for running distrod.exe under Wine in distrod's tests. It
 * shares its state with the fake wsl.exe (fake_wsl.c, which documents the directory named
 * by FAKEWSL_DIR) and appends one line per call to calls.log:
 *   WslIsDistributionRegistered NAME
 *   WslGetDistributionConfiguration NAME
 *   WslConfigureDistribution NAME UID FLAGS      (decimal)
 *   WslLaunch NAME COMMAND
 *   WslLaunchInteractive NAME COMMAND
 *   WslRegisterDistribution NAME FILE
 *   WslUnregisterDistribution NAME
 *
 * FAKEWSL_FAIL (comma-separated) may name: getconfig, configure, launch (the call returns
 * E_INVALIDARG), launched (the started process exits with status 1). An unregistered
 * name gets HRESULT_FROM_WIN32(ERROR_NOT_FOUND).
 *
 * WslLaunch starts the wsl.exe next to it (System32) with a private argument: the process
 * exits at once, or, when the command holds "sleep infinity", once FAKEWSL_DIR\stop-launched
 * exists.
 *
 * Build: x86_64-w64-mingw32-gcc -shared -O2 -o wslapi.dll fake_wslapi.c -lole32
 */
#define UNICODE
#define _UNICODE
#include <windows.h>
#include <objbase.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <wslapi.h>

#define EXPORT __declspec(dllexport)
#define PATH_CHARS 4096
/* What the fake answers for a name that is not registered. */
#define NOT_REGISTERED HRESULT_FROM_WIN32(ERROR_NOT_FOUND)

static BOOL state_dir(WCHAR *out)
{
    DWORD n = GetEnvironmentVariableW(L"FAKEWSL_DIR", out, PATH_CHARS);
    if (n == 0 || n >= PATH_CHARS) {
        return FALSE;
    }
    while (n > 3 && (out[n - 1] == L'\\' || out[n - 1] == L'/')) {
        out[--n] = 0;
    }
    return TRUE;
}

static void log_call(const WCHAR *line)
{
    WCHAR dir[PATH_CHARS], path[PATH_CHARS];
    HANDLE h;
    DWORD written;
    int len;
    char *text;
    if (!state_dir(dir)) {
        return;
    }
    _snwprintf(path, PATH_CHARS, L"%ls\\calls.log", dir);
    path[PATH_CHARS - 1] = 0;
    len = WideCharToMultiByte(CP_UTF8, 0, line, -1, NULL, 0, NULL, NULL);
    if (len <= 0) {
        return;
    }
    text = malloc((size_t)len + 1);
    WideCharToMultiByte(CP_UTF8, 0, line, -1, text, len, NULL, NULL);
    text[len - 1] = '\n';
    h = CreateFileW(path, FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                    OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    if (h != INVALID_HANDLE_VALUE) {
        SetFilePointer(h, 0, NULL, FILE_END);
        WriteFile(h, text, (DWORD)len, &written, NULL);
        CloseHandle(h);
    }
    free(text);
}

static void log_fmt(const WCHAR *format, ...)
{
    WCHAR line[PATH_CHARS];
    va_list args;
    va_start(args, format);
    _vsnwprintf(line, PATH_CHARS, format, args);
    va_end(args);
    line[PATH_CHARS - 1] = 0;
    log_call(line);
}

static BOOL fails(const char *op)
{
    char list[1024];
    char *token, *next = NULL;
    DWORD n = GetEnvironmentVariableA("FAKEWSL_FAIL", list, sizeof list);
    if (n == 0 || n >= sizeof list) {
        return FALSE;
    }
    for (token = strtok_s(list, ",", &next); token != NULL; token = strtok_s(NULL, ",", &next)) {
        while (*token == ' ') {
            token++;
        }
        if (strcmp(token, op) == 0) {
            return TRUE;
        }
    }
    return FALSE;
}

/* Whether `name` is registered (any case); its stored name goes to `found`. */
static BOOL find_registered(const WCHAR *name, WCHAR *found)
{
    WCHAR dir[PATH_CHARS], pattern[PATH_CHARS];
    WIN32_FIND_DATAW data;
    HANDLE h;
    BOOL hit = FALSE;
    if (name == NULL || !state_dir(dir)) {
        return FALSE;
    }
    _snwprintf(pattern, PATH_CHARS, L"%ls\\registered\\*", dir);
    pattern[PATH_CHARS - 1] = 0;
    h = FindFirstFileW(pattern, &data);
    if (h == INVALID_HANDLE_VALUE) {
        return FALSE;
    }
    do {
        if (!(data.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) &&
            _wcsicmp(data.cFileName, name) == 0) {
            if (found != NULL) {
                wcscpy(found, data.cFileName);
            }
            hit = TRUE;
            break;
        }
    } while (FindNextFileW(h, &data));
    FindClose(h);
    return hit;
}

static const WCHAR *shown(const WCHAR *s)
{
    return s != NULL ? s : L"(null)";
}

static char *dup_cotask(const char *s)
{
    size_t len = strlen(s) + 1;
    char *out = CoTaskMemAlloc(len);
    if (out != NULL) {
        memcpy(out, s, len);
    }
    return out;
}

EXPORT BOOL WslIsDistributionRegistered(PCWSTR distributionName)
{
    log_fmt(L"WslIsDistributionRegistered %ls", shown(distributionName));
    return find_registered(distributionName, NULL);
}

EXPORT HRESULT WslRegisterDistribution(PCWSTR distributionName, PCWSTR tarGzFilename)
{
    log_fmt(L"WslRegisterDistribution %ls %ls", shown(distributionName), shown(tarGzFilename));
    return E_NOTIMPL;
}

EXPORT HRESULT WslUnregisterDistribution(PCWSTR distributionName)
{
    log_fmt(L"WslUnregisterDistribution %ls", shown(distributionName));
    return E_NOTIMPL;
}

EXPORT HRESULT WslConfigureDistribution(PCWSTR distributionName, ULONG defaultUID,
                                        WSL_DISTRIBUTION_FLAGS wslDistributionFlags)
{
    WCHAR dir[PATH_CHARS], found[MAX_PATH], path[PATH_CHARS];
    char text[32];
    HANDLE h;
    DWORD written;
    log_fmt(L"WslConfigureDistribution %ls %lu %d", shown(distributionName), defaultUID,
            (int)wslDistributionFlags);
    if (fails("configure")) {
        return E_INVALIDARG;
    }
    if (!find_registered(distributionName, found) || !state_dir(dir)) {
        return NOT_REGISTERED;
    }
    if ((wslDistributionFlags & ~WSL_DISTRIBUTION_FLAGS_VALID) != 0) {
        return E_INVALIDARG;
    }
    _snwprintf(path, PATH_CHARS, L"%ls\\default-uid", dir);
    path[PATH_CHARS - 1] = 0;
    CreateDirectoryW(path, NULL);
    _snwprintf(path, PATH_CHARS, L"%ls\\default-uid\\%ls", dir, found);
    path[PATH_CHARS - 1] = 0;
    snprintf(text, sizeof text, "%lu", defaultUID);
    h = CreateFileW(path, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        return HRESULT_FROM_WIN32(GetLastError());
    }
    WriteFile(h, text, (DWORD)strlen(text), &written, NULL);
    CloseHandle(h);
    return S_OK;
}

EXPORT HRESULT WslGetDistributionConfiguration(PCWSTR distributionName,
                                               ULONG *distributionVersion, ULONG *defaultUID,
                                               WSL_DISTRIBUTION_FLAGS *wslDistributionFlags,
                                               PSTR **defaultEnvironmentVariables,
                                               ULONG *defaultEnvironmentVariableCount)
{
    static const char *const environment[] = {"HOSTTYPE=x86_64", "LANG=en_US.UTF-8"};
    const ULONG count = sizeof environment / sizeof environment[0];
    PSTR *array;
    ULONG i;
    log_fmt(L"WslGetDistributionConfiguration %ls", shown(distributionName));
    if (fails("getconfig")) {
        return E_INVALIDARG;
    }
    if (!find_registered(distributionName, NULL)) {
        return NOT_REGISTERED;
    }
    array = CoTaskMemAlloc(count * sizeof(PSTR));
    if (array == NULL) {
        return E_OUTOFMEMORY;
    }
    for (i = 0; i < count; i++) {
        array[i] = dup_cotask(environment[i]);
    }
    *distributionVersion = 2;
    *defaultUID = 0;
    *wslDistributionFlags = WSL_DISTRIBUTION_FLAGS_DEFAULT;
    *defaultEnvironmentVariables = array;
    *defaultEnvironmentVariableCount = count;
    return S_OK;
}

EXPORT HRESULT WslLaunchInteractive(PCWSTR distributionName, PCWSTR command,
                                    BOOL useCurrentWorkingDirectory, DWORD *exitCode)
{
    (void)useCurrentWorkingDirectory;
    log_fmt(L"WslLaunchInteractive %ls %ls", shown(distributionName), shown(command));
    if (fails("launch")) {
        return E_INVALIDARG;
    }
    if (!find_registered(distributionName, NULL)) {
        return NOT_REGISTERED;
    }
    *exitCode = fails("launched") ? 1 : 0;
    return S_OK;
}

EXPORT HRESULT WslLaunch(PCWSTR distributionName, PCWSTR command,
                         BOOL useCurrentWorkingDirectory, HANDLE stdIn, HANDLE stdOut,
                         HANDLE stdErr, HANDLE *process)
{
    WCHAR system[MAX_PATH], cmdline[PATH_CHARS];
    STARTUPINFOW startup;
    PROCESS_INFORMATION info;
    BOOL keep_alive;
    UINT n;
    (void)useCurrentWorkingDirectory;
    (void)stdIn;
    (void)stdOut;
    (void)stdErr;
    log_fmt(L"WslLaunch %ls %ls", shown(distributionName), shown(command));
    if (fails("launch")) {
        return E_INVALIDARG;
    }
    if (!find_registered(distributionName, NULL)) {
        return NOT_REGISTERED;
    }
    if (process == NULL) {
        return E_POINTER;
    }
    keep_alive = command != NULL && wcsstr(command, L"sleep infinity") != NULL;
    n = GetSystemDirectoryW(system, MAX_PATH);
    if (n == 0 || n >= MAX_PATH) {
        return HRESULT_FROM_WIN32(GetLastError());
    }
    _snwprintf(cmdline, PATH_CHARS, L"\"%ls\\wsl.exe\" --fake-launched%ls%ls", system,
               keep_alive ? L" --keep-alive" : L"", fails("launched") ? L" --exit 1" : L"");
    cmdline[PATH_CHARS - 1] = 0;
    memset(&startup, 0, sizeof startup);
    startup.cb = sizeof startup;
    if (!CreateProcessW(NULL, cmdline, NULL, NULL, FALSE, CREATE_NO_WINDOW, NULL, NULL,
                        &startup, &info)) {
        return HRESULT_FROM_WIN32(GetLastError());
    }
    CloseHandle(info.hThread);
    *process = info.hProcess;
    return S_OK;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}
