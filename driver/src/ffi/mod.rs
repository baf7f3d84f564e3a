//! Every `unsafe` operation of odxflt lives in this module tree: one operation per block, each
//! with a `// SAFETY:` comment naming the invariant it relies on. Outside `ffi`, the driver is
//! safe Rust over borrowed views (`CallbackData`, `RelatedObjects`, `SystemBuffer`).
//!
//! Declarations: Filter Manager types and `fltmgr.sys` functions come from `windows-sys`
//! (raw-dylib imports of `fltmgr.sys`); the few `ntoskrnl.exe` functions odxflt calls are
//! declared in [`kernel`] with a raw-dylib link to `ntoskrnl.exe`, never through the
//! `windows-sys` declarations that import from `ntdll.dll`.
//!
//! Layouts: every structure odxflt reads or writes goes through [`views`], where each one is
//! pinned at compile time to the golden table in [`layouts`] (generated from Wine's and
//! mingw-w64's headers, not from what the driver compiles against); where `windows-sys` is
//! wrong (`FLT_PARAMETERS`), the driver has its own view.

pub mod callbacks;
pub mod context;
pub mod entry;
pub mod kernel;
pub mod layouts;
pub mod names;
pub mod port;
pub mod query;
pub mod registration;
pub mod registry;
pub mod rules;
pub mod storage;
pub mod views;

use windows_sys::Win32::Foundation::NTSTATUS;

use odx_core::NtStatus;

/// The core's status as the kernel's `NTSTATUS` (the same 32 bits).
#[must_use]
pub const fn nt(status: NtStatus) -> NTSTATUS {
    i32::from_ne_bytes(status.0.to_ne_bytes())
}

/// The kernel's `NTSTATUS` as the core's status.
#[must_use]
pub const fn core_status(status: NTSTATUS) -> NtStatus {
    NtStatus(u32::from_ne_bytes(status.to_ne_bytes()))
}

/// `NT_SUCCESS`.
#[must_use]
pub const fn nt_success(status: NTSTATUS) -> bool {
    status >= 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_conversion_keeps_the_bits() {
        let status = NtStatus::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED;
        assert_eq!(nt(status), 0xC000_A2A3_u32 as i32);
        assert_eq!(core_status(nt(status)), status);
        assert!(nt_success(nt(NtStatus::STATUS_SUCCESS)));
        assert!(!nt_success(nt(NtStatus::STATUS_END_OF_FILE)));
    }
}
