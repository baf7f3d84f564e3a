//! The communication port `\OdxfltPort`: created between registration and start, closed at
//! unload; one connection at a time, administrators and SYSTEM only. Messages are answered by
//! `odx_core::serve::handle_request` over [`crate::volumes::VOLUMES`] (the same handler the
//! simulator's port uses); this module only moves bytes.
//!
//! The caller's buffers: Filter Manager hands the message callback the user-mode addresses
//! `FilterSendMessage` was given, probed but not locked, so the caller may unmap or protect them
//! at any time. odxflt copies the request (at most [`REQUEST_MAX`] bytes) into a kernel stack
//! buffer once, builds the reply there, and copies it out once; both copies go through
//! [`copy_guarded`], which on Windows is the C shim `driver/shim/seh_copy.c`: a byte copy inside
//! `__try/__except`, as `PFLT_MESSAGE_NOTIFY`'s documentation requires (Rust has no structured
//! exception handling). A fault during either copy (an unmapped, no-access or read-only page)
//! becomes the exception's status (`STATUS_ACCESS_VIOLATION`), returned to the caller instead of
//! crashing the system; a reply copy that faults leaves a prefix of the reply in the caller's
//! buffer and reports no bytes. What the shim does not do: make a bad *kernel* address safe
//! (that bug-checks with or without `__try`) or check that an address is a user address — it
//! relies on Filter Manager's probe of the caller's addresses. A request that changed state
//! (policy, counters) stays applied when its reply cannot be written. docs/driver.md,
//! "Caller buffers of the port (SEH shim)".

use core::ffi::c_void;
use core::ptr::{null, null_mut};
use core::sync::atomic::{AtomicIsize, Ordering};

use odx_core::NtStatus;
use odx_core::port::governance::{RULES_TEXT_MAX, RulesTextHeader};
use odx_core::port::{MessageHeader, PORT_NAME};
use odx_core::serve::handle_request;
use odx_core::wire::WireStruct;
use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FltBuildDefaultSecurityDescriptor, FltCloseClientPort, FltCloseCommunicationPort,
    FltCreateCommunicationPort, FltFreeSecurityDescriptor, PFLT_FILTER, PFLT_PORT,
};
use windows_sys::Win32::Foundation::{
    NTSTATUS, OBJ_CASE_INSENSITIVE, OBJ_KERNEL_HANDLE, UNICODE_STRING,
};
use windows_sys::Win32::Security::PSECURITY_DESCRIPTOR;

use super::kernel::PoolBytes;
use super::{core_status, nt, nt_success};
use crate::volumes::VOLUMES;

/// `FLT_PORT_ALL_ACCESS` = `FLT_PORT_CONNECT` (1) | `STANDARD_RIGHTS_ALL` (0x1F0000).
pub const FLT_PORT_ALL_ACCESS: u32 = 0x001F_0001;

crate::pin_constant!(FLT_PORT_ALL_ACCESS => "FLT_PORT_ALL_ACCESS");

/// Longest request read from the caller: a `SetRules` header and its text (every other request
/// is 16 or 24 bytes).
pub const REQUEST_MAX: usize = MessageHeader::SIZE + RULES_TEXT_MAX;

/// Longest reply written: a `QueryRules` reply with the longest text (a journal page, the
/// stats and the config replies are shorter or as long as the caller's buffer allows).
pub const REPLY_MAX: usize = RulesTextHeader::SIZE + RULES_TEXT_MAX;

/// Characters of [`PORT_NAME`].
const NAME_LEN: usize = PORT_NAME.len();

/// [`PORT_NAME`] in UTF-16 (it is ASCII).
static PORT_NAME_UTF16: [u16; NAME_LEN] = {
    let bytes = PORT_NAME.as_bytes();
    let mut out = [0u16; NAME_LEN];
    let mut i = 0;
    while i < NAME_LEN {
        // `i` < NAME_LEN = bytes.len(): in bounds; a const evaluation out of bounds would fail
        // the build, not the driver.
        #[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
        {
            out[i] = bytes[i] as u16;
            i += 1;
        }
    }
    out
};

/// Bytes of the name (`UNICODE_STRING.Length`).
const NAME_BYTES: u16 = {
    let bytes = NAME_LEN * 2;
    assert!(bytes <= 0xFFFF);
    bytes as u16
};

/// The filter whose port is open (for `FltCloseClientPort`), 0 when none.
static FILTER: AtomicIsize = AtomicIsize::new(0);
/// The connected client's port, 0 when none.
static CLIENT: AtomicIsize = AtomicIsize::new(0);

/// Creates the server port for `filter`.
///
/// # Errors
/// The status of `FltBuildDefaultSecurityDescriptor` or `FltCreateCommunicationPort`.
pub fn open(filter: PFLT_FILTER) -> Result<PFLT_PORT, NtStatus> {
    let mut descriptor: PSECURITY_DESCRIPTOR = null_mut();
    // SAFETY: `descriptor` is a valid out pointer; PASSIVE_LEVEL (DriverEntry). The descriptor
    // grants FLT_PORT_ALL_ACCESS to administrators and SYSTEM only.
    let status = unsafe { FltBuildDefaultSecurityDescriptor(&mut descriptor, FLT_PORT_ALL_ACCESS) };
    if !nt_success(status) {
        return Err(core_status(status));
    }
    let name = UNICODE_STRING {
        Length: NAME_BYTES,
        MaximumLength: NAME_BYTES,
        // The kernel only reads the name.
        Buffer: PORT_NAME_UTF16.as_ptr().cast_mut(),
    };
    let attributes = OBJECT_ATTRIBUTES {
        Length: u32::try_from(core::mem::size_of::<OBJECT_ATTRIBUTES>()).unwrap_or(0),
        RootDirectory: null_mut(),
        ObjectName: &name,
        Attributes: OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
        SecurityDescriptor: descriptor.cast_const().cast(),
        SecurityQualityOfService: null(),
    };
    let mut port: PFLT_PORT = 0;
    // SAFETY: `filter` is registered and not yet started; `attributes`, `name` and the
    // descriptor outlive the call; the callbacks are `extern "system"` functions with Filter
    // Manager's signatures; at most one connection.
    let status = unsafe {
        FltCreateCommunicationPort(
            filter,
            &mut port,
            &attributes,
            null(),
            Some(connect),
            Some(disconnect),
            Some(message),
            1,
        )
    };
    // SAFETY: the descriptor came from FltBuildDefaultSecurityDescriptor and is freed once;
    // the port keeps its own copy.
    unsafe { FltFreeSecurityDescriptor(descriptor) };
    if !nt_success(status) {
        return Err(core_status(status));
    }
    FILTER.store(filter, Ordering::Release);
    Ok(port)
}

/// Closes the server port (unload, or the unwind of a failed load). A connected client is
/// disconnected by Filter Manager, which calls [`disconnect`].
pub fn close(port: PFLT_PORT) {
    // SAFETY: `port` came from `open` and is closed exactly once.
    unsafe { FltCloseCommunicationPort(port) };
}

/// `PFLT_CONNECT_NOTIFY`: accepts the (administrator's) connection and remembers its port.
unsafe extern "system" fn connect(
    client_port: PFLT_PORT,
    _server_cookie: *const c_void,
    _context: *const c_void,
    _context_size: u32,
    _connection_cookie: *mut *mut c_void,
) -> NTSTATUS {
    CLIENT.store(client_port, Ordering::Release);
    nt(NtStatus::STATUS_SUCCESS)
}

/// `PFLT_DISCONNECT_NOTIFY`: closes the client's port.
unsafe extern "system" fn disconnect(_connection_cookie: *const c_void) {
    let mut client = CLIENT.swap(0, Ordering::AcqRel);
    let filter = FILTER.load(Ordering::Acquire);
    if client != 0 && filter != 0 {
        // SAFETY: `client` is the port Filter Manager handed `connect`, closed once here (the
        // swap took it out); `filter` is the registered filter.
        unsafe { FltCloseClientPort(filter, &mut client) };
    }
}

/// `PFLT_MESSAGE_NOTIFY`: one request in, one reply out (or a status and no reply). Both
/// buffers are non-paged pool of the caller's lengths, capped at [`REQUEST_MAX`] /
/// [`REPLY_MAX`] (a `SetRules` carries up to `RULES_TEXT_MAX` bytes of text, a `QueryRules`
/// reply as much): no message byte is on the stack. A failed allocation answers
/// `STATUS_INSUFFICIENT_RESOURCES` and changes nothing.
unsafe extern "system" fn message(
    _port_cookie: *const c_void,
    input: *const c_void,
    input_length: u32,
    output: *mut c_void,
    output_length: u32,
    return_length: *mut u32,
) -> NTSTATUS {
    let in_len = usize::try_from(input_length)
        .unwrap_or(usize::MAX)
        .min(REQUEST_MAX);
    let in_len = if input.is_null() { 0 } else { in_len };
    let mut request = None;
    if in_len > 0 {
        let Some(mut buffer) = PoolBytes::zeroed(in_len) else {
            return nt(NtStatus::STATUS_INSUFFICIENT_RESOURCES);
        };
        // SAFETY: Filter Manager passes the caller's input buffer of `input_length` bytes (probed
        // by FilterSendMessage), a user address that may become invalid at any time, which
        // `copy_guarded` survives; `in_len` <= that length and == the pool buffer's length,
        // which is writable kernel memory and does not overlap it.
        let status = unsafe {
            copy_guarded(
                buffer.as_mut_slice().as_mut_ptr(),
                input.cast::<u8>(),
                in_len,
            )
        };
        if !nt_success(status) {
            return status;
        }
        request = Some(buffer);
    }
    let out_len = usize::try_from(output_length)
        .unwrap_or(usize::MAX)
        .min(REPLY_MAX);
    let out_len = if output.is_null() { 0 } else { out_len };
    let mut reply = None;
    if out_len > 0 {
        let Some(buffer) = PoolBytes::zeroed(out_len) else {
            return nt(NtStatus::STATUS_INSUFFICIENT_RESOURCES);
        };
        reply = Some(buffer);
    }
    let answer = handle_request(
        request
            .as_ref()
            .map(PoolBytes::as_slice)
            .unwrap_or_default(),
        reply
            .as_mut()
            .map(PoolBytes::as_mut_slice)
            .unwrap_or_default(),
        &mut VOLUMES.port(),
    );
    let written = match answer {
        Ok(written) => written.min(out_len),
        Err(status) => return nt(status),
    };
    let status = match (&reply, written) {
        (Some(reply), 1..) => {
            // SAFETY: `output` is the caller's output buffer of `output_length` bytes (non-NULL,
            // probed by FilterSendMessage), a user address that may become invalid at any time,
            // which `copy_guarded` survives; `written` <= out_len <= output_length and <= the
            // pool reply's length; the pool reply does not overlap it.
            unsafe { copy_guarded(output.cast::<u8>(), reply.as_slice().as_ptr(), written) }
        }
        _ => nt(NtStatus::STATUS_SUCCESS),
    };
    let written = if nt_success(status) { written } else { 0 };
    if !return_length.is_null() {
        // SAFETY: Filter Manager's out slot for the reply length.
        unsafe { return_length.write(u32::try_from(written).unwrap_or(0)) };
    }
    status
}

/// Copies `len` bytes from `src` to `dst` and returns `STATUS_SUCCESS`, or the failure status
/// of the exception the copy raised (`STATUS_ACCESS_VIOLATION` for an invalid user page); after
/// a failure `dst` holds the bytes copied before the fault.
///
/// On Windows this is the C shim's `odx_seh_copy` (`driver/shim/seh_copy.c`, built by
/// `build.rs`): a byte loop inside `__try/__except(EXCEPTION_EXECUTE_HANDLER)`. Host builds (unit
/// tests only) have no structured exceptions and copy plainly.
///
/// # Safety
/// The buffers do not overlap, and each of them is either valid for `len` bytes (read for
/// `src`, write for `dst`) or a user-mode range that Filter Manager probed — the only kind of
/// invalid address the shim survives; an invalid kernel address still faults the system.
/// On hosts, both must be valid.
unsafe fn copy_guarded(dst: *mut u8, src: *const u8, len: usize) -> NTSTATUS {
    #[cfg(target_os = "windows")]
    {
        // SAFETY: the shim reads `src` and writes `dst` for `len` bytes under `__try`; the
        // caller's contract covers every address it may touch; it takes no other state.
        unsafe { seh::odx_seh_copy(dst.cast::<c_void>(), src.cast::<c_void>(), len) }
    }
    #[cfg(not(target_os = "windows"))]
    {
        // SAFETY: on hosts the caller guarantees both buffers valid for `len` bytes and
        // non-overlapping.
        unsafe { core::ptr::copy_nonoverlapping(src, dst, len) };
        nt(NtStatus::STATUS_SUCCESS)
    }
}

/// The shim's declarations (Windows targets only; `build.rs` links the static library
/// `odx_seh`).
#[cfg(target_os = "windows")]
mod seh {
    use core::ffi::c_void;

    use windows_sys::Win32::Foundation::NTSTATUS;

    unsafe extern "C" {
        /// `odx_ntstatus odx_seh_copy(void *dst, const void *src, odx_size len)`
        /// (`driver/shim/seh_copy.h`).
        pub fn odx_seh_copy(dst: *mut c_void, src: *const c_void, len: usize) -> NTSTATUS;
    }

    // The shim's scope table names the SEH language handler, which the kernel exports: declaring
    // it makes rustc's raw-dylib import library provide it, so the image imports
    // `ntoskrnl.exe!__C_specific_handler` (and nothing else new). Never called from Rust.
    #[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
    unsafe extern "C" {
        /// `EXCEPTION_DISPOSITION __C_specific_handler(PEXCEPTION_RECORD, PVOID, PCONTEXT,
        /// PDISPATCHER_CONTEXT)`.
        fn __C_specific_handler(
            record: *mut c_void,
            frame: *mut c_void,
            context: *mut c_void,
            dispatcher: *mut c_void,
        ) -> i32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_name_is_the_cores_in_utf16() {
        let decoded = std::string::String::from_utf16(&PORT_NAME_UTF16).unwrap();
        assert_eq!(decoded, PORT_NAME);
        assert_eq!(usize::from(NAME_BYTES), PORT_NAME.len() * 2);
        const { assert!(REPLY_MAX >= odx_core::port::StatsReply::SIZE) };
        const { assert!(REPLY_MAX >= odx_core::port::ConfigReply::SIZE) };
    }

    #[test]
    fn the_host_copy_copies_and_succeeds() {
        let source = *b"request bytes";
        let mut target = [0u8; 13];
        // SAFETY: two distinct local arrays of 13 bytes.
        let status = unsafe { copy_guarded(target.as_mut_ptr(), source.as_ptr(), source.len()) };
        assert_eq!(status, nt(NtStatus::STATUS_SUCCESS));
        assert_eq!(target, source);
    }
}
