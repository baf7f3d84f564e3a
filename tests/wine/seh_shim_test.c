/*
 * The SEH shim (driver/shim/seh_copy.c) against pages that fault, in a Windows user-mode process
 * run by Wine. tests/wine/seh-shim.sh links this file with the very library the driver image was
 * linked with (target/x86_64-pc-windows-msvc/release/odx_seh.lib) and runs it.
 *
 * No C runtime: the entry point is odx_test_main (lld-link /entry), the only imports are
 * kernel32.dll (VirtualAlloc, VirtualProtect, GetStdHandle, WriteFile, ExitProcess) and, for the
 * shim, ntdll.dll!__C_specific_handler. Windows and Wine dispatch a user-mode access violation
 * through the same table-based x64 unwinding (.pdata/.xdata scope tables, __C_specific_handler)
 * the kernel uses for a driver's __try/__except; what this cannot show is the kernel's own
 * dispatch (docs/driver.md, "Caller buffers of the port (SEH shim)").
 *
 * One line per case, then "seh-shim: N passed, M failed"; exit code 0 only when all passed. A
 * copy whose fault is not caught kills the process (the closing line is then missing).
 */

#include "seh_copy.h"

typedef unsigned long odx_dword;
typedef int odx_bool;
typedef void *odx_handle;

__declspec(dllimport) void *__stdcall VirtualAlloc(void *address, odx_size size, odx_dword type,
                                                   odx_dword protect);
__declspec(dllimport) odx_bool __stdcall VirtualProtect(void *address, odx_size size,
                                                        odx_dword protect, odx_dword *old);
__declspec(dllimport) odx_handle __stdcall GetStdHandle(odx_dword which);
__declspec(dllimport) odx_bool __stdcall WriteFile(odx_handle file, const void *buffer,
                                                   odx_dword length, odx_dword *written,
                                                   void *overlapped);
__declspec(dllimport) __declspec(noreturn) void __stdcall ExitProcess(unsigned int code);

#define MEM_COMMIT 0x1000
#define MEM_RESERVE 0x2000
#define PAGE_NOACCESS 0x01
#define PAGE_READONLY 0x02
#define PAGE_READWRITE 0x04
#define STD_OUTPUT_HANDLE ((odx_dword)-11)
#define PAGE 4096
#define LEN 64 /* the driver's REQUEST_MAX */

static odx_handle out;

static odx_size length(const char *s)
{
    odx_size n = 0;
    while (s[n] != 0) {
        n++;
    }
    return n;
}

static void put(const char *s)
{
    odx_dword written = 0;
    WriteFile(out, s, (odx_dword)length(s), &written, 0);
}

static void put_hex(unsigned long value)
{
    char text[11] = "0x";
    for (int i = 0; i < 8; i++) {
        unsigned digit = (unsigned)(value >> (28 - 4 * i)) & 0xF;
        text[2 + i] = (char)(digit < 10 ? '0' + digit : 'A' + digit - 10);
    }
    text[10] = 0;
    put(text);
}

static void put_dec(unsigned value)
{
    char text[12];
    int i = 11;
    text[i] = 0;
    do {
        text[--i] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0 && i > 0);
    put(&text[i]);
}

static unsigned passed, failed;

/* One case: the status must be `expected` and the bytes checked by the caller must be right. */
static void report(const char *name, odx_ntstatus status, odx_ntstatus expected, int bytes_ok,
                   const char *bytes)
{
    int ok = status == expected && bytes_ok;
    put(ok ? "ok   " : "FAIL ");
    put(name);
    put(": status ");
    put_hex((unsigned long)status);
    if (status != expected) {
        put(" (expected ");
        put_hex((unsigned long)expected);
        put(")");
    }
    put(bytes_ok ? ", " : ", NOT ");
    put(bytes);
    put("\n");
    if (ok) {
        passed++;
    } else {
        failed++;
    }
}

static void fill(volatile unsigned char *p, odx_size n, unsigned char seed)
{
    for (odx_size i = 0; i < n; i++) {
        p[i] = (unsigned char)(seed + i);
    }
}

/* 1 when p[0..n) holds fill(seed). */
static int holds(const volatile unsigned char *p, odx_size n, unsigned char seed)
{
    for (odx_size i = 0; i < n; i++) {
        if (p[i] != (unsigned char)(seed + i)) {
            return 0;
        }
    }
    return 1;
}

static void protect(void *page, odx_dword protection)
{
    odx_dword old = 0;
    if (!VirtualProtect(page, PAGE, protection, &old)) {
        put("seh-shim: VirtualProtect failed\n");
        ExitProcess(2);
    }
}

#define CASES 7

void odx_test_main(void)
{
    out = GetStdHandle(STD_OUTPUT_HANDLE);
    /* Two pages: [0] read-write ("good"), [1] the page under test ("bad"). */
    unsigned char *good = VirtualAlloc(0, 2 * PAGE, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
    if (good == 0) {
        put("seh-shim: VirtualAlloc failed\n");
        ExitProcess(2);
    }
    unsigned char *bad = good + PAGE;
    volatile unsigned char local[LEN];
    odx_ntstatus status;
    const odx_ntstatus ok = ODX_STATUS_SUCCESS, fault = ODX_STATUS_ACCESS_VIOLATION;

    /* 1. A good copy in (caller buffer -> stack buffer, like the request). */
    fill(good, LEN, 0x10);
    fill(local, LEN, 0x80);
    status = odx_seh_copy((void *)local, good, LEN);
    report("good copy in (page -> stack, 64 bytes)", status, ok, holds(local, LEN, 0x10),
           "all bytes copied");

    /* 2. A good copy out (stack buffer -> caller buffer, like the reply). */
    fill(local, LEN, 0x40);
    fill(good, LEN, 0xC0);
    status = odx_seh_copy(good, (const void *)local, LEN);
    report("good copy out (stack -> page, 64 bytes)", status, ok, holds(good, LEN, 0x40),
           "all bytes copied");

    /* 3. A read from a PAGE_NOACCESS page: caught, nothing copied. */
    fill(bad, PAGE, 0x20);
    protect(bad, PAGE_NOACCESS);
    fill(local, LEN, 0x80);
    status = odx_seh_copy((void *)local, bad, LEN);
    report("read from a PAGE_NOACCESS page", status, fault, holds(local, LEN, 0x80),
           "destination untouched");

    /* 4. A write to a PAGE_NOACCESS page: caught. */
    fill(local, LEN, 0x50);
    status = odx_seh_copy(bad, (const void *)local, LEN);
    protect(bad, PAGE_READONLY);
    report("write to a PAGE_NOACCESS page", status, fault, holds(bad, LEN, 0x20),
           "page unchanged");

    /* 5. A write to a PAGE_READONLY page: caught, the page unchanged. */
    status = odx_seh_copy(bad, (const void *)local, LEN);
    report("write to a PAGE_READONLY page", status, fault, holds(bad, LEN, 0x20),
           "page unchanged");

    /* 6. A read that starts 16 bytes before a PAGE_NOACCESS page and runs into it: caught after
     * the 16 readable bytes (the shim copies in ascending order). */
    protect(bad, PAGE_NOACCESS);
    fill(good, PAGE, 0x30);
    fill(local, LEN, 0x80);
    status = odx_seh_copy((void *)local, bad - 16, LEN);
    report("read from a good page into a PAGE_NOACCESS page", status, fault,
           holds(local, 16, (unsigned char)(0x30 + PAGE - 16)) && holds(local + 16, LEN - 16, 0x80 + 16),
           "16 bytes copied before the fault");

    /* 7. A write that starts 16 bytes before a PAGE_READONLY page and runs into it. */
    protect(bad, PAGE_READONLY);
    fill(local, LEN, 0x60);
    status = odx_seh_copy(bad - 16, (const void *)local, LEN);
    report("write from a good page into a PAGE_READONLY page", status, fault,
           holds(bad - 16, 16, 0x60) && holds(bad, LEN, 0x20),
           "16 bytes written before the fault, read-only page unchanged");

    put("seh-shim: ");
    put_dec(passed);
    put(" passed, ");
    put_dec(failed);
    put(" failed\n");
    ExitProcess(failed == 0 && passed == CASES ? 0 : 1);
}
