/*
 * A stand-in for wsl.exe, for running distrod.exe under Wine in distrod's tests.
 *
 * It keeps its state in the directory named by the environment variable FAKEWSL_DIR (a
 * Windows path), shared with the fake wslapi.dll (fake_wslapi.c):
 *   calls.log           one line per call, UTF-8: "wsl.exe ARGS..." (the DLL adds its own)
 *   registered\NAME     one file per registered distro; its content is the LOCATION
 *   default             the name of the default distro
 *   default-uid\NAME    the default uid the DLL was given (WslConfigureDistribution)
 *   imported\NAME.tar   a copy of the tarball each --import was given
 *   stdin.log           what each "-d NAME ... -e CMD" call read on its standard input
 *   stop-launched       makes processes started by WslLaunch with "sleep infinity" exit
 * Distro names compare case-insensitively, as WSL's do.
 *
 * FAKEWSL_FAIL (comma-separated operation names) makes operations fail the way WSL does:
 *   import, unregister, list, terminate, run (any "-d NAME ... -e CMD"), firstboot (the
 *   Linux command "distrod firstboot" fails, as a Linux program: UTF-8 on stderr, exit 1).
 * FAKEWSL_UID (default 1000) is the uid "distrod firstboot --print-uid" prints.
 *
 * Like the real wsl.exe (before it honoured WSL_UTF8), its own messages are UTF-16LE and
 * its failures exit with -1.
 *
 * Build: x86_64-w64-mingw32-gcc -O2 -o wsl.exe fake_wsl.c -lshell32
 */
#define UNICODE
#define _UNICODE
#include <windows.h>
#include <shellapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#define PATH_CHARS 4096
#define WSL_FAILURE ((UINT)-1)

static WCHAR state_dir[PATH_CHARS];

static char *to_utf8(const WCHAR *text)
{
    int len = WideCharToMultiByte(CP_UTF8, 0, text, -1, NULL, 0, NULL, NULL);
    char *out = malloc(len > 0 ? (size_t)len : 1);
    if (len <= 0) {
        out[0] = 0;
        return out;
    }
    WideCharToMultiByte(CP_UTF8, 0, text, -1, out, len, NULL, NULL);
    return out;
}

static WCHAR *from_utf8(const char *text, int len)
{
    int n = MultiByteToWideChar(CP_UTF8, 0, text, len, NULL, 0);
    WCHAR *out = calloc((size_t)n + 1, sizeof(WCHAR));
    MultiByteToWideChar(CP_UTF8, 0, text, len, out, n);
    out[n] = 0;
    return out;
}

/* Writes wsl.exe's own message: UTF-16LE, no BOM. */
static void say(DWORD which, const WCHAR *message)
{
    HANDLE h = GetStdHandle(which);
    DWORD written;
    if (h != NULL && h != INVALID_HANDLE_VALUE) {
        WriteFile(h, message, (DWORD)(wcslen(message) * sizeof(WCHAR)), &written, NULL);
    }
}

/* Writes what a Linux program would: UTF-8. */
static void say_utf8(DWORD which, const char *message)
{
    HANDLE h = GetStdHandle(which);
    DWORD written;
    if (h != NULL && h != INVALID_HANDLE_VALUE) {
        WriteFile(h, message, (DWORD)strlen(message), &written, NULL);
    }
}

static void fail_with(const WCHAR *message)
{
    say(STD_OUTPUT_HANDLE, message);
    ExitProcess(WSL_FAILURE);
}

static void state_path(WCHAR *out, const WCHAR *a, const WCHAR *b)
{
    if (b != NULL) {
        _snwprintf(out, PATH_CHARS, L"%ls\\%ls\\%ls", state_dir, a, b);
    } else {
        _snwprintf(out, PATH_CHARS, L"%ls\\%ls", state_dir, a);
    }
    out[PATH_CHARS - 1] = 0;
}

static void append_bytes(const WCHAR *path, const void *data, DWORD len)
{
    HANDLE h = CreateFileW(path, FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                           OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    DWORD written;
    if (h == INVALID_HANDLE_VALUE) {
        return;
    }
    SetFilePointer(h, 0, NULL, FILE_END);
    WriteFile(h, data, len, &written, NULL);
    CloseHandle(h);
}

static BOOL write_file(const WCHAR *path, const void *data, DWORD len)
{
    HANDLE h = CreateFileW(path, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL,
                           NULL);
    DWORD written;
    BOOL ok;
    if (h == INVALID_HANDLE_VALUE) {
        return FALSE;
    }
    ok = WriteFile(h, data, len, &written, NULL) && written == len;
    CloseHandle(h);
    return ok;
}

/* The whole file as a NUL-terminated string of UTF-8 bytes, or NULL. */
static char *read_file(const WCHAR *path)
{
    HANDLE h = CreateFileW(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                           OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    DWORD size, got;
    char *out;
    if (h == INVALID_HANDLE_VALUE) {
        return NULL;
    }
    size = GetFileSize(h, NULL);
    out = calloc((size_t)size + 1, 1);
    if (!ReadFile(h, out, size, &got, NULL)) {
        got = 0;
    }
    out[got] = 0;
    CloseHandle(h);
    return out;
}

static void log_call(const WCHAR *line)
{
    WCHAR path[PATH_CHARS];
    char *text = to_utf8(line);
    size_t len = strlen(text);
    text = realloc(text, len + 2);
    text[len] = '\n';
    text[len + 1] = 0;
    state_path(path, L"calls.log", NULL);
    append_bytes(path, text, (DWORD)(len + 1));
    free(text);
}

/* Whether FAKEWSL_FAIL names `op`. */
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

/* Finds the registered distro named `name` (any case); its stored name goes to `found`. */
static BOOL find_registered(const WCHAR *name, WCHAR *found)
{
    WCHAR pattern[PATH_CHARS];
    WIN32_FIND_DATAW data;
    HANDLE h;
    BOOL hit = FALSE;
    state_path(pattern, L"registered", L"*");
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

static void ensure_state_dir(const WCHAR *sub)
{
    WCHAR path[PATH_CHARS];
    state_path(path, sub, NULL);
    CreateDirectoryW(path, NULL);
}

/* Creates `path` and its missing parents, as WSL does for an import's location. */
static void make_dirs(const WCHAR *path)
{
    WCHAR buf[PATH_CHARS];
    size_t i, len = wcslen(path);
    if (len >= PATH_CHARS) {
        return;
    }
    wcscpy(buf, path);
    for (i = 3; i <= len; i++) {
        if (buf[i] == L'\\' || buf[i] == L'/' || buf[i] == 0) {
            WCHAR saved = buf[i];
            buf[i] = 0;
            CreateDirectoryW(buf, NULL);
            buf[i] = saved;
        }
    }
}

static const WCHAR NOT_FOUND[] =
    L"There is no distribution with the supplied name.\r\n"
    L"Error code: Wsl/Service/WSL_E_DISTRO_NOT_FOUND\r\n";

/* Whether the first bytes are a tar header (or a gzip or xz stream, which WSL accepts). */
static BOOL looks_like_tar(const WCHAR *file)
{
    unsigned char head[512];
    DWORD got = 0;
    HANDLE h = CreateFileW(file, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                           FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        return FALSE;
    }
    ReadFile(h, head, sizeof head, &got, NULL);
    CloseHandle(h);
    if (got >= 2 && head[0] == 0x1f && head[1] == 0x8b) {
        return TRUE;
    }
    if (got >= 6 && memcmp(head, "\xfd" "7zXZ\0", 6) == 0) {
        return TRUE;
    }
    return got == 512 && memcmp(head + 257, "ustar", 5) == 0;
}

static int do_import(const WCHAR *name, const WCHAR *location, const WCHAR *file)
{
    WCHAR path[PATH_CHARS], vhdx[PATH_CHARS];
    char *text, *first;
    if (fails("import")) {
        fail_with(L"The operation could not be started because a required feature is not "
                  L"installed.\r\n"
                  L"Error code: Wsl/Service/RegisterDistro/CreateVm/HCS/"
                  L"HCS_E_SERVICE_NOT_AVAILABLE\r\n");
    }
    if (find_registered(name, NULL)) {
        fail_with(L"A distribution with the supplied name already exists. Use --name to "
                  L"choose a different name.\r\n"
                  L"Error code: Wsl/Service/RegisterDistro/ERROR_ALREADY_EXISTS\r\n");
    }
    if (GetFileAttributesW(file) == INVALID_FILE_ATTRIBUTES) {
        fail_with(L"The system cannot find the file specified.\r\n"
                  L"Error code: Wsl/Service/RegisterDistro/ERROR_FILE_NOT_FOUND\r\n");
    }
    if (!looks_like_tar(file)) {
        fail_with(L"The tar file is not valid.\r\n"
                  L"Error code: Wsl/Service/RegisterDistro/WSL_E_IMPORT_FAILED\r\n");
    }
    _snwprintf(vhdx, PATH_CHARS, L"%ls\\ext4.vhdx", location);
    vhdx[PATH_CHARS - 1] = 0;
    if (GetFileAttributesW(vhdx) != INVALID_FILE_ATTRIBUTES) {
        fail_with(L"The file exists.\r\n"
                  L"Error code: Wsl/Service/RegisterDistro/ERROR_FILE_EXISTS\r\n");
    }
    say(STD_OUTPUT_HANDLE, L"Import in progress, this may take a few minutes.\r\n");
    ensure_state_dir(L"imported");
    _snwprintf(path, PATH_CHARS, L"%ls\\imported\\%ls.tar", state_dir, name);
    path[PATH_CHARS - 1] = 0;
    if (!CopyFileW(file, path, FALSE)) {
        fail_with(L"The system cannot read the file specified.\r\n"
                  L"Error code: Wsl/Service/RegisterDistro/E_FAIL\r\n");
    }
    make_dirs(location);
    text = to_utf8(name);
    first = malloc(strlen(text) + 64);
    sprintf(first, "fake ext4.vhdx of %s\n", text);
    if (!write_file(vhdx, first, (DWORD)strlen(first))) {
        fail_with(L"Access is denied.\r\n"
                  L"Error code: Wsl/Service/RegisterDistro/E_ACCESSDENIED\r\n");
    }
    free(first);
    free(text);
    /* The first distro becomes the default, as with WSL. */
    {
        WCHAR default_path[PATH_CHARS];
        char *current;
        WCHAR *current_name = NULL;
        state_path(default_path, L"default", NULL);
        current = read_file(default_path);
        if (current != NULL) {
            current_name = from_utf8(current, -1);
        }
        if (current_name == NULL || !find_registered(current_name, NULL)) {
            char *name_utf8 = to_utf8(name);
            write_file(default_path, name_utf8, (DWORD)strlen(name_utf8));
            free(name_utf8);
        }
        free(current);
        free(current_name);
    }
    ensure_state_dir(L"registered");
    state_path(path, L"registered", name);
    text = to_utf8(location);
    write_file(path, text, (DWORD)strlen(text));
    free(text);
    say(STD_OUTPUT_HANDLE, L"The operation completed successfully. \r\n");
    return 0;
}

static int do_unregister(const WCHAR *name)
{
    WCHAR found[MAX_PATH], path[PATH_CHARS], vhdx[PATH_CHARS];
    char *location;
    if (fails("unregister")) {
        fail_with(L"Catastrophic failure\r\nError code: Wsl/Service/E_UNEXPECTED\r\n");
    }
    if (!find_registered(name, found)) {
        fail_with(NOT_FOUND);
    }
    say(STD_OUTPUT_HANDLE, L"Unregistering.\r\n");
    state_path(path, L"registered", found);
    location = read_file(path);
    if (location != NULL && location[0] != 0) {
        WCHAR *wlocation = from_utf8(location, -1);
        _snwprintf(vhdx, PATH_CHARS, L"%ls\\ext4.vhdx", wlocation);
        vhdx[PATH_CHARS - 1] = 0;
        DeleteFileW(vhdx);
        free(wlocation);
    }
    free(location);
    DeleteFileW(path);
    state_path(path, L"default-uid", found);
    DeleteFileW(path);
    say(STD_OUTPUT_HANDLE, L"The operation completed successfully. \r\n");
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return _wcsicmp(*(const WCHAR *const *)a, *(const WCHAR *const *)b);
}

static int do_list(void)
{
    WCHAR pattern[PATH_CHARS], default_path[PATH_CHARS];
    WIN32_FIND_DATAW data;
    WCHAR *names[256];
    WCHAR *default_name = NULL;
    char *text;
    size_t count = 0, i, width = 14;
    HANDLE h;
    if (fails("list")) {
        fail_with(L"The remote procedure call failed.\r\n"
                  L"Error code: Wsl/Service/RPC_S_CALL_FAILED\r\n");
    }
    state_path(pattern, L"registered", L"*");
    h = FindFirstFileW(pattern, &data);
    if (h != INVALID_HANDLE_VALUE) {
        do {
            if (!(data.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) && count < 256) {
                names[count++] = _wcsdup(data.cFileName);
            }
        } while (FindNextFileW(h, &data));
        FindClose(h);
    }
    if (count == 0) {
        fail_with(L"Windows Subsystem for Linux has no installed distributions.\r\n"
                  L"You can resolve this by installing a distribution with the instructions "
                  L"below:\r\n\r\n"
                  L"Use 'wsl.exe --list --online' to list available distributions\r\n"
                  L"and 'wsl.exe --install <Distro>' to install.\r\n"
                  L"Error code: Wsl/WSL_E_DEFAULT_DISTRO_NOT_FOUND\r\n");
    }
    qsort(names, count, sizeof names[0], compare_names);
    state_path(default_path, L"default", NULL);
    text = read_file(default_path);
    if (text != NULL) {
        default_name = from_utf8(text, -1);
        free(text);
    }
    for (i = 0; i < count; i++) {
        if (wcslen(names[i]) > width) {
            width = wcslen(names[i]);
        }
    }
    width += 2;
    {
        WCHAR line[1024];
        _snwprintf(line, 1024, L"  %-*ls%-16lsVERSION\r\n", (int)width, L"NAME", L"STATE");
        line[1023] = 0;
        say(STD_OUTPUT_HANDLE, line);
        for (i = 0; i < count; i++) {
            BOOL is_default = default_name != NULL && _wcsicmp(names[i], default_name) == 0;
            _snwprintf(line, 1024, L"%ls%-*ls%-16ls%d\r\n", is_default ? L"* " : L"  ",
                       (int)width, names[i], L"Stopped", 2);
            line[1023] = 0;
            say(STD_OUTPUT_HANDLE, line);
        }
    }
    return 0;
}

static int do_terminate(const WCHAR *name)
{
    if (fails("terminate")) {
        fail_with(L"Catastrophic failure\r\nError code: Wsl/Service/E_UNEXPECTED\r\n");
    }
    if (!find_registered(name, NULL)) {
        fail_with(NOT_FOUND);
    }
    say(STD_OUTPUT_HANDLE, L"The operation completed successfully. \r\n");
    return 0;
}

/* Reads standard input to its end (unless it is a console) into stdin.log. */
static void record_stdin(void)
{
    HANDLE in = GetStdHandle(STD_INPUT_HANDLE);
    WCHAR path[PATH_CHARS];
    char *buf = NULL;
    size_t len = 0, cap = 0;
    DWORD got;
    if (in == NULL || in == INVALID_HANDLE_VALUE || GetFileType(in) == FILE_TYPE_CHAR) {
        return;
    }
    for (;;) {
        if (cap - len < 4096) {
            cap = cap * 2 + 4096;
            buf = realloc(buf, cap);
        }
        if (!ReadFile(in, buf + len, (DWORD)(cap - len), &got, NULL) || got == 0) {
            break;
        }
        len += got;
    }
    if (len > 0) {
        state_path(path, L"stdin.log", NULL);
        append_bytes(path, buf, (DWORD)len);
    }
    free(buf);
}

/* "-d NAME [-u USER] -e CMD ARGS...": the arguments from `first` on. */
static int do_run(int argc, WCHAR **argv, int first)
{
    const WCHAR *name = NULL;
    int i = first, command = -1;
    while (i < argc) {
        if ((!wcscmp(argv[i], L"-d") || !wcscmp(argv[i], L"--distribution")) && i + 1 < argc) {
            name = argv[i + 1];
            i += 2;
        } else if ((!wcscmp(argv[i], L"-u") || !wcscmp(argv[i], L"--user")) && i + 1 < argc) {
            i += 2;
        } else if ((!wcscmp(argv[i], L"-e") || !wcscmp(argv[i], L"--exec")) && i + 1 < argc) {
            command = i + 1;
            break;
        } else {
            break;
        }
    }
    if (name == NULL || command < 0) {
        fail_with(L"Invalid command line argument.\r\n"
                  L"Error code: Wsl/E_INVALIDARG\r\n");
    }
    if (fails("run")) {
        fail_with(L"The remote procedure call failed.\r\n"
                  L"Error code: Wsl/Service/CreateInstance/RPC_S_CALL_FAILED\r\n");
    }
    if (!find_registered(name, NULL)) {
        fail_with(NOT_FOUND);
    }
    record_stdin();
    if (!wcscmp(argv[command], L"/opt/distrod/bin/distrod") && command + 1 < argc &&
        !wcscmp(argv[command + 1], L"firstboot")) {
        char uid[32];
        if (fails("firstboot")) {
            say_utf8(STD_ERROR_HANDLE,
                     "error: cannot create the user: useradd exited with status 1 (the test "
                     "told it to fail)\n");
            return 1;
        }
        for (i = command + 2; i < argc; i++) {
            if (!wcscmp(argv[i], L"--print-uid")) {
                DWORD n = GetEnvironmentVariableA("FAKEWSL_UID", uid, sizeof uid - 2);
                if (n == 0 || n >= sizeof uid - 2) {
                    strcpy(uid, "1000");
                }
                strcat(uid, "\n");
                say_utf8(STD_OUTPUT_HANDLE, uid);
            }
        }
        return 0;
    }
    return 0;
}

/* What WslLaunch starts: exits at once, or (keep-alive) once stop-launched exists. */
static int launched(int argc, WCHAR **argv)
{
    WCHAR stop[PATH_CHARS];
    int i, waited_ms = 0, code = 0;
    BOOL keep_alive = FALSE;
    for (i = 2; i < argc; i++) {
        if (!wcscmp(argv[i], L"--keep-alive")) {
            keep_alive = TRUE;
        } else if (!wcscmp(argv[i], L"--exit") && i + 1 < argc) {
            code = _wtoi(argv[++i]);
        }
    }
    if (!keep_alive) {
        return code;
    }
    state_path(stop, L"stop-launched", NULL);
    /* Never outlives the tests by more than a few minutes, whatever happens to them. */
    while (GetFileAttributesW(stop) == INVALID_FILE_ATTRIBUTES && waited_ms < 300000) {
        Sleep(100);
        waited_ms += 100;
    }
    return code;
}

int main(void)
{
    int argc = 0, i;
    WCHAR **argv = CommandLineToArgvW(GetCommandLineW(), &argc);
    WCHAR *line;
    size_t len = wcslen(L"wsl.exe") + 1;
    DWORD n = GetEnvironmentVariableW(L"FAKEWSL_DIR", state_dir, PATH_CHARS);
    if (n == 0 || n >= PATH_CHARS) {
        say(STD_ERROR_HANDLE, L"fake wsl.exe: FAKEWSL_DIR is not set\r\n");
        return 2;
    }
    while (n > 3 && (state_dir[n - 1] == L'\\' || state_dir[n - 1] == L'/')) {
        state_dir[--n] = 0;
    }
    if (argc >= 2 && !wcscmp(argv[1], L"--fake-launched")) {
        return launched(argc, argv);
    }
    for (i = 1; i < argc; i++) {
        len += wcslen(argv[i]) + 1;
    }
    line = calloc(len + 1, sizeof(WCHAR));
    wcscpy(line, L"wsl.exe");
    for (i = 1; i < argc; i++) {
        wcscat(line, L" ");
        wcscat(line, argv[i]);
    }
    log_call(line);

    if (argc >= 5 && !wcscmp(argv[1], L"--import")) {
        return do_import(argv[2], argv[3], argv[4]);
    }
    if (argc == 3 && !wcscmp(argv[1], L"--unregister")) {
        return do_unregister(argv[2]);
    }
    if (argc >= 2 && (!wcscmp(argv[1], L"--list") || !wcscmp(argv[1], L"-l"))) {
        return do_list();
    }
    if (argc == 3 && (!wcscmp(argv[1], L"--terminate") || !wcscmp(argv[1], L"-t"))) {
        return do_terminate(argv[2]);
    }
    if (argc >= 2 && (!wcscmp(argv[1], L"-d") || !wcscmp(argv[1], L"--distribution"))) {
        return do_run(argc, argv, 1);
    }
    fail_with(L"Invalid command line argument.\r\n"
              L"Error code: Wsl/E_INVALIDARG\r\n");
    return 1;
}
