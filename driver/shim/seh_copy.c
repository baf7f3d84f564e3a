/*
 * odxflt's copies from and to the caller's buffers of the communication port, under structured
 * exception handling (docs/driver.md, "Caller buffers of the port (SEH shim)").
 *
 * The port's message callback (driver/src/ffi/port.rs) is handed the user-mode addresses the
 * caller gave FilterSendMessage. Filter Manager probed them, but the caller can unmap or protect
 * its pages before odxflt copies, and PFLT_MESSAGE_NOTIFY's documentation requires the
 * minifilter to access them inside __try/__except. Rust has no SEH, so both copies are made
 * here.
 *
 * Guaranteed: an exception raised while the bytes are read or written (STATUS_ACCESS_VIOLATION
 * for an unmapped, no-access or read-only user page, STATUS_IN_PAGE_ERROR for a page that cannot
 * be read in) is caught and returned as a failure NTSTATUS; the destination may then hold a
 * prefix of the bytes. Not guaranteed: a fault the kernel does not raise as an exception (an
 * invalid kernel-space address bug-checks, PAGE_FAULT_IN_NONPAGED_AREA, __try or not), and no
 * check that an address is a user address: the caller's addresses were probed by Filter Manager.
 *
 * Built by the cc crate (driver/build.rs): cl.exe in the WDK build, clang-16 for
 * x86_64-pc-windows-msvc in the Linux cross build. No headers, no C library, no stack probe, no
 * /GS cookie; the only external symbol is the language handler __C_specific_handler (ntoskrnl.exe
 * in the driver). tests/wine/seh-shim.sh runs this object under Wine against PAGE_NOACCESS and
 * PAGE_READONLY pages.
 */

#include "seh_copy.h"

/* The SEH intrinsic behind GetExceptionCode(), declared as excpt.h does (no SDK headers here). */
unsigned long __cdecl _exception_code(void);

#define ODX_EXCEPTION_EXECUTE_HANDLER 1

/*
 * The byte loop, out of line and called from inside the __try. The call is then a call site
 * covered by the function's scope table, whichever compiler: clang does not model that a plain
 * load or store can raise, and would drop the __except of a __try whose body has no call (checked
 * with clang 16); cl.exe guards the body either way. The accesses are volatile so that the loop
 * stays this loop: no memcpy call (there is no C library in the image), no access past `len`.
 * An exception here unwinds through this frame (a leaf, or described by its .pdata) to
 * odx_seh_copy's handler.
 */
__declspec(noinline) static void odx_copy_bytes(volatile unsigned char *dst,
                                                const volatile unsigned char *src,
                                                odx_size len)
{
    for (odx_size i = 0; i < len; i++) {
        dst[i] = src[i];
    }
}

odx_ntstatus odx_seh_copy(void *dst, const void *src, odx_size len)
{
    odx_ntstatus status = ODX_STATUS_SUCCESS;
    __try {
        odx_copy_bytes((volatile unsigned char *)dst, (const volatile unsigned char *)src, len);
    } __except (ODX_EXCEPTION_EXECUTE_HANDLER) {
        status = (odx_ntstatus)_exception_code();
        if (status >= 0) {
            /* Not a failure code (a software exception could raise any value): report the
             * access as failed anyway. */
            status = ODX_STATUS_ACCESS_VIOLATION;
        }
    }
    return status;
}
