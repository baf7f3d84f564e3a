//! `\OdxfltPort` through fltlib: `FilterConnectCommunicationPort` and `FilterSendMessage`
//! (administrators only; the port admits one connection at a time).

use std::ptr::{null, null_mut};

use odx_core::NtStatus;
use odx_core::port::PORT_NAME;
use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FilterConnectCommunicationPort, FilterSendMessage,
};

use super::{Handle, hresult_status, wide};
use crate::Failure;
use crate::codes::status_line;
use crate::port_cmd::PortClient;

/// A connection to odxflt's port.
#[derive(Debug)]
pub struct FilterPort(Handle);

impl FilterPort {
    /// Connects.
    ///
    /// # Errors
    /// odxflt not loaded, not an administrator, or another client connected.
    pub fn connect() -> Result<Self, Failure> {
        let name = wide(PORT_NAME);
        let mut port: HANDLE = null_mut();
        // SAFETY: `name` is NUL-terminated and outlives the call; no context; `port` is a
        // valid out pointer.
        let hr = unsafe {
            FilterConnectCommunicationPort(name.as_ptr(), 0, null(), 0, null(), &mut port)
        };
        if hr < 0 {
            return Err(Failure {
                code: 1,
                message: format!(
                    "cannot connect to {PORT_NAME} (is odxflt loaded, and is this an elevated prompt?): {}",
                    status_line(hresult_status(hr))
                ),
            });
        }
        Handle::checked(port, "FilterConnectCommunicationPort")
            .map(Self)
            .map_err(|e| Failure::input(e.to_string()))
    }
}

impl PortClient for FilterPort {
    fn send(&mut self, request: &[u8], reply_len: usize) -> Result<Vec<u8>, NtStatus> {
        let mut reply = vec![0u8; reply_len];
        let mut returned = 0u32;
        let in_len =
            u32::try_from(request.len()).map_err(|_| NtStatus::STATUS_INVALID_PARAMETER)?;
        let out_len = u32::try_from(reply.len()).map_err(|_| NtStatus::STATUS_INVALID_PARAMETER)?;
        // SAFETY: the port handle is open; both buffers are valid for their stated lengths for
        // the whole (synchronous) call; `returned` is a valid out pointer.
        let hr = unsafe {
            FilterSendMessage(
                self.0.0,
                request.as_ptr().cast(),
                in_len,
                reply.as_mut_ptr().cast(),
                out_len,
                &mut returned,
            )
        };
        if hr < 0 {
            return Err(hresult_status(hr));
        }
        reply.truncate(usize::try_from(returned).unwrap_or(0));
        Ok(reply)
    }
}
