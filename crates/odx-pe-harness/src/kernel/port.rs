//! The communication port: `FltBuildDefaultSecurityDescriptor` / `FltFreeSecurityDescriptor`,
//! `FltCreateCommunicationPort` (the connect / disconnect / message callbacks and the maximum
//! number of connections are kept, so the harness can be the port's client: `LoadedDriver::
//! port_connect` and friends), `FltCloseCommunicationPort` (a connected client is disconnected
//! first, through the image's disconnect callback, as Filter Manager does), `FltCloseClientPort`.
//! All PASSIVE_LEVEL.

use std::ffi::c_void;

use odx_core::NtStatus;

use super::fault::Point;
use super::filter::check_filter;
use super::{Call, STATUS_INVALID_PARAMETER, allocate, nt, with};

/// The server port handle.
pub const PORT_HANDLE: isize = 0x0DF1_0020;
/// The client port handle Filter Manager hands the connect callback.
pub const CLIENT_HANDLE: isize = 0x0DF1_0021;

/// What `FltCreateCommunicationPort` registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortCallbacks {
    /// `ServerPortCookie`.
    pub cookie: usize,
    /// `ConnectNotifyCallback`.
    pub connect: usize,
    /// `DisconnectNotifyCallback`.
    pub disconnect: usize,
    /// `MessageNotifyCallback`.
    pub message: usize,
    /// `MaxConnections`.
    pub max_connections: i32,
}

/// The one client's connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connection {
    /// The `ConnectionPortCookie` the connect callback returned.
    pub cookie: usize,
    /// The image closed the client port (`FltCloseClientPort`).
    pub closed: bool,
}
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
        if k.faults
            .hit(Point::BuildDefaultSecurityDescriptor)
            .is_some()
        {
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
    cookie: *const c_void,
    connect: usize,
    disconnect: usize,
    message: usize,
    max_connections: i32,
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
        k.port_callbacks = Some(PortCallbacks {
            cookie: cookie as usize,
            connect,
            disconnect,
            message,
            max_connections,
        });
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

/// `PFLT_DISCONNECT_NOTIFY` as the image implements it.
pub type DisconnectFn = unsafe extern "win64" fn(*const c_void);

/// `FltCloseCommunicationPort`: a connected client is disconnected first (the image's disconnect
/// callback runs, as Filter Manager calls it when it closes the client's connection).
unsafe extern "win64" fn flt_close_communication_port(port: isize) {
    let disconnect = with(|k| {
        k.calls.push(Call::ClosePort);
        k.require_irql("FltCloseCommunicationPort", PASSIVE_LEVEL);
        if k.server_port == Some(port) {
            k.server_port = None;
        } else {
            k.error(format!("FltCloseCommunicationPort: unknown port {port:#x}"));
        }
        let connection = k.connection.filter(|c| !c.closed)?;
        let callbacks = k.port_callbacks?;
        Some((callbacks.disconnect, connection.cookie))
    })
    .flatten();
    if let Some((callback, cookie)) = disconnect.filter(|(callback, _)| *callback != 0) {
        // SAFETY: the image's PFLT_DISCONNECT_NOTIFY (registered with the port), called once
        // for the one connection with the cookie its connect callback returned.
        let callback = unsafe { std::mem::transmute::<usize, DisconnectFn>(callback) };
        // SAFETY: as above, PASSIVE_LEVEL.
        unsafe { callback(cookie as *const c_void) };
    }
    with(|k| {
        if let Some(connection) = k.connection.take() {
            if !connection.closed {
                k.error("FltCloseCommunicationPort: the client port was never closed by the image (FltCloseClientPort)".to_owned());
            }
        }
    });
}

/// `FltCloseClientPort`: closes the connected client's port, NULLs the caller's slot.
unsafe extern "win64" fn flt_close_client_port(filter: isize, client: *mut isize) {
    let handle = if client.is_null() {
        0
    } else {
        // SAFETY: the image's slot (checked non-NULL).
        unsafe { client.read() }
    };
    with(|k| {
        k.calls.push(Call::ClosePort);
        k.require_irql("FltCloseClientPort", PASSIVE_LEVEL);
        check_filter(k, "FltCloseClientPort", filter);
        match (handle, k.connection.as_mut()) {
            (0, _) => {}
            (CLIENT_HANDLE, Some(connection)) if !connection.closed => connection.closed = true,
            (other, _) => k.error(format!(
                "FltCloseClientPort: {other:#x} is not an open client port"
            )),
        }
    });
    if !client.is_null() {
        // SAFETY: the image's slot (checked non-NULL); Filter Manager NULLs it on close.
        unsafe { client.write(0) };
    }
}
