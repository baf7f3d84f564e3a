//! The communication port: `FltBuildDefaultSecurityDescriptor` / `FltFreeSecurityDescriptor`,
//! `FltCreateCommunicationPort`, `FltCloseCommunicationPort`, `FltCloseClientPort` (all
//! PASSIVE_LEVEL). No client connects yet; the port's name is read by the table's offsets.

use std::ffi::c_void;

use odx_core::NtStatus;

use super::fault::Point;
use super::filter::check_filter;
use super::{Call, STATUS_INVALID_PARAMETER, allocate, nt, with};

/// The server port handle.
pub const PORT_HANDLE: isize = 0x0DF1_0020;
const PASSIVE_LEVEL: u8 = 0;

pub(super) fn resolve(symbol: &str) -> Option<usize> {
    Some(match symbol {
        "FltBuildDefaultSecurityDescriptor" => {
            flt_build_default_security_descriptor as *const () as usize
        }
        "FltFreeSecurityDescriptor" => flt_free_security_descriptor as *const () as usize,
        "FltCreateCommunicationPort" => flt_create_communication_port as *const () as usize,
        "FltCloseCommunicationPort" => flt_close_communication_port as *const () as usize,
        "FltCloseClientPort" => flt_close_client_port as *const () as usize,
        _ => return None,
    })
}

/// `FltBuildDefaultSecurityDescriptor`.
unsafe extern "win64" fn flt_build_default_security_descriptor(
    descriptor: *mut *mut c_void,
    _access: u32,
) -> i32 {
    let built = with(|k| {
        k.calls.push(Call::SecurityDescriptor);
        k.require_irql("FltBuildDefaultSecurityDescriptor", PASSIVE_LEVEL);
        if k.faults.hit(Point::BuildDefaultSecurityDescriptor).is_some() {
            return None;
        }
        let (address, layout) = allocate(64)?;
        k.descriptors.insert(address, layout);
        Some(address)
    })
    .flatten();
    match (built, descriptor.is_null()) {
        (Some(address), false) => {
            // SAFETY: the image's out pointer (checked non-NULL).
            unsafe { descriptor.write(address as *mut c_void) };
            nt(NtStatus::STATUS_SUCCESS)
        }
        _ => nt(NtStatus::STATUS_INSUFFICIENT_RESOURCES),
    }
}

/// `FltFreeSecurityDescriptor`.
unsafe extern "win64" fn flt_free_security_descriptor(descriptor: *mut c_void) {
    with(|k| {
        k.calls.push(Call::SecurityDescriptor);
        k.require_irql("FltFreeSecurityDescriptor", PASSIVE_LEVEL);
        match k.descriptors.remove(&(descriptor as usize)) {
            // SAFETY: allocated with this layout by flt_build_default_security_descriptor.
            Some(layout) => unsafe { std::alloc::dealloc(descriptor.cast(), layout) },
            None => k.error("FltFreeSecurityDescriptor: unknown descriptor".to_owned()),
        }
    });
}

/// `FltCreateCommunicationPort`: the port is created (no client connects in the harness yet).
#[allow(clippy::too_many_arguments)]
unsafe extern "win64" fn flt_create_communication_port(
    filter: isize,
    port: *mut isize,
    _attributes: *const c_void,
    _cookie: *const c_void,
    _connect: usize,
    _disconnect: usize,
    _message: usize,
    _max_connections: i32,
) -> i32 {
    let status = with(|k| {
        k.calls.push(Call::CreateCommunicationPort);
        k.require_irql("FltCreateCommunicationPort", PASSIVE_LEVEL);
        if let Some(status) = k.faults.hit(Point::CreateCommunicationPort) {
            return status;
        }
        if !check_filter(k, "FltCreateCommunicationPort", filter) || port.is_null() {
            return STATUS_INVALID_PARAMETER;
        }
        if k.server_port.is_some() {
            k.error("FltCreateCommunicationPort: a port is already open".to_owned());
            return STATUS_INVALID_PARAMETER;
        }
        k.server_port = Some(PORT_HANDLE);
        k.ports_created += 1;
        NtStatus::STATUS_SUCCESS
    })
    .unwrap_or(STATUS_INVALID_PARAMETER);
    if status.is_success() {
        // SAFETY: the image's out pointer (checked non-NULL).
        unsafe { port.write(PORT_HANDLE) };
    }
    nt(status)
}

/// `FltCloseCommunicationPort`.
unsafe extern "win64" fn flt_close_communication_port(port: isize) {
    with(|k| {
        k.calls.push(Call::ClosePort);
        k.require_irql("FltCloseCommunicationPort", PASSIVE_LEVEL);
        if k.server_port == Some(port) {
            k.server_port = None;
        } else {
            k.error(format!("FltCloseCommunicationPort: unknown port {port:#x}"));
        }
    });
}

/// `FltCloseClientPort`: no client connects in the harness, so only NULL slots are expected.
unsafe extern "win64" fn flt_close_client_port(_filter: isize, client: *mut isize) {
    with(|k| {
        k.calls.push(Call::ClosePort);
        k.require_irql("FltCloseClientPort", PASSIVE_LEVEL);
    });
    if !client.is_null() {
        // SAFETY: the image's slot (checked non-NULL); Filter Manager NULLs it on close.
        unsafe { client.write(0) };
    }
}
