/*
 * The SEH shim's interface (seh_copy.c); shared with the Wine test (tests/wine/seh_shim_test.c).
 * driver/src/ffi/port.rs declares the same function in Rust.
 */
#ifndef ODX_SEH_COPY_H
#define ODX_SEH_COPY_H

typedef long odx_ntstatus;           /* NTSTATUS: LONG, 32 bits on Windows */
typedef unsigned long long odx_size; /* SIZE_T on x64 */

#define ODX_STATUS_SUCCESS ((odx_ntstatus)0x00000000L)
#define ODX_STATUS_ACCESS_VIOLATION ((odx_ntstatus)0xC0000005L)

/*
 * Copies `len` bytes from `src` to `dst` (the two must not overlap), one byte at a time in
 * ascending order. Returns STATUS_SUCCESS, or the code of the exception the copy raised (a
 * failure status; STATUS_ACCESS_VIOLATION when that code is not one); after a failure `dst`
 * holds the bytes copied before the fault. IRQL <= APC_LEVEL when either buffer is pageable.
 */
odx_ntstatus odx_seh_copy(void *dst, const void *src, odx_size len);

#endif
