//! odxctl's Windows backends (user mode, `windows-sys`): the copy engine over real handles
//! ([`copy`]), odxflt's communication port ([`port`]) and the diagnosis probe ([`probe`]).
//! Compiled in Linux CI for `x86_64-pc-windows-gnu` (`.ci/steps/25-windows-odxctl.sh`); not run
//! there.

pub mod copy;
pub mod port;
pub mod probe;

use std::io;

use odx_core::{NtStatus, Win32Error};
use windows_sys::Win32::Foundation::{CloseHandle, GetLastError, HANDLE, INVALID_HANDLE_VALUE};

/// Waits `ms` milliseconds with kernel32's `Sleep` (`std::thread::sleep` would import the
/// high-resolution waitable timer functions, which the Windows 8 exports list does not hold).
pub fn sleep_ms(ms: u32) {
    // SAFETY: `Sleep` takes a plain count and has no preconditions.
    unsafe { windows_sys::Win32::System::Threading::Sleep(ms) }
}

/// A NUL-terminated UTF-16 string.
#[must_use]
pub fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(std::iter::once(0)).collect()
}

/// A UTF-16 buffer up to its first NUL.
#[must_use]
pub fn from_wide(buffer: &[u16]) -> String {
    let end = buffer.iter().position(|c| *c == 0).unwrap_or(buffer.len());
    String::from_utf16_lossy(buffer.get(..end).unwrap_or_default())
}

/// An owned kernel object handle, closed on drop.
#[derive(Debug)]
pub struct Handle(pub HANDLE);

impl Handle {
    /// Wraps a handle returned by a `Create*` call, or the last error.
    ///
    /// # Errors
    /// `INVALID_HANDLE_VALUE` or NULL.
    pub fn checked(raw: HANDLE, what: &str) -> io::Result<Self> {
        if raw.is_null() || raw == INVALID_HANDLE_VALUE {
            let err = io::Error::last_os_error();
            return Err(io::Error::new(err.kind(), format!("{what}: {err}")));
        }
        Ok(Self(raw))
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle is owned by this value and closed once.
        unsafe { CloseHandle(self.0) };
    }
}

/// The NTSTATUS behind the calling thread's last Win32 error (the first status of odx-core's
/// table that maps to it; `STATUS_NOT_SUPPORTED`-like fallback for others).
#[must_use]
pub fn last_status() -> NtStatus {
    // SAFETY: GetLastError has no preconditions.
    let code = unsafe { GetLastError() };
    Win32Error(code)
        .statuses()
        .next()
        .map_or(NtStatus(0xC007_0000 | (code & 0xFFFF)), |row| row.status)
}

/// The NTSTATUS inside an `HRESULT` from fltlib (`HRESULT_FROM_NT` sets the N bit 0x10000000).
#[must_use]
pub const fn hresult_status(hr: i32) -> NtStatus {
    let bits = u32::from_ne_bytes(hr.to_ne_bytes());
    NtStatus(bits & !0x1000_0000)
}
