//! Load and unload order, independent of the kernel: `DriverEntry` registers the filter, opens the
//! communication port (`\\OdxfltPort`), starts filtering, and unwinds every completed step in
//! reverse when a later one fails. `ffi::registration` implements [`FilterManager`] over Filter
//! Manager.

use odx_core::NtStatus;

/// The Filter Manager calls `DriverEntry` and unload make, in the order they make them.
pub trait FilterManager {
    /// The registered filter (`PFLT_FILTER`).
    type Filter: Copy;
    /// The communication server port (`PFLT_PORT`).
    type Port: Copy;

    /// `FltRegisterFilter`.
    ///
    /// # Errors
    /// Its status.
    fn register(&mut self) -> Result<Self::Filter, NtStatus>;

    /// `FltCreateCommunicationPort` (administrators and SYSTEM only, one connection).
    ///
    /// # Errors
    /// Its status.
    fn open_port(&mut self, filter: Self::Filter) -> Result<Self::Port, NtStatus>;

    /// `FltCloseCommunicationPort`.
    fn close_port(&mut self, port: Self::Port);

    /// `FltStartFiltering`.
    ///
    /// # Errors
    /// Its status.
    fn start(&mut self, filter: Self::Filter) -> Result<(), NtStatus>;

    /// `FltUnregisterFilter` (waits for outstanding callbacks and releases every context).
    fn unregister(&mut self, filter: Self::Filter);
}

/// What a successful load leaves behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded<F, P> {
    /// The registered filter.
    pub filter: F,
    /// The server port.
    pub port: P,
}

/// Registers the filter, opens the port and starts filtering, unwinding on failure.
///
/// # Errors
/// The status of the step that failed, after the steps before it were undone.
pub fn load<M: FilterManager>(manager: &mut M) -> Result<Loaded<M::Filter, M::Port>, NtStatus> {
    let filter = manager.register()?;
    let port = match manager.open_port(filter) {
        Ok(port) => port,
        Err(status) => {
            manager.unregister(filter);
            return Err(status);
        }
    };
    if let Err(status) = manager.start(filter) {
        manager.close_port(port);
        manager.unregister(filter);
        return Err(status);
    }
    Ok(Loaded { filter, port })
}

/// Unloads the filter: the reverse of [`load`] (the port first, so no message arrives while the
/// filter goes away).
pub fn unload<M: FilterManager>(manager: &mut M, loaded: Loaded<M::Filter, M::Port>) {
    manager.close_port(loaded.port);
    manager.unregister(loaded.filter);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct Recorder {
        fail_register: Option<NtStatus>,
        fail_port: Option<NtStatus>,
        fail_start: Option<NtStatus>,
        calls: std::vec::Vec<&'static str>,
    }

    impl FilterManager for Recorder {
        type Filter = u32;
        type Port = u8;
        fn open_port(&mut self, filter: u32) -> Result<u8, NtStatus> {
            assert_eq!(filter, 7);
            self.calls.push("open_port");
            self.fail_port.map_or(Ok(9), Err)
        }
        fn close_port(&mut self, port: u8) {
            assert_eq!(port, 9);
            self.calls.push("close_port");
        }
        fn register(&mut self) -> Result<u32, NtStatus> {
            self.calls.push("register");
            self.fail_register.map_or(Ok(7), Err)
        }
        fn start(&mut self, filter: u32) -> Result<(), NtStatus> {
            assert_eq!(filter, 7);
            self.calls.push("start");
            self.fail_start.map_or(Ok(()), Err)
        }
        fn unregister(&mut self, filter: u32) {
            assert_eq!(filter, 7);
            self.calls.push("unregister");
        }
    }

    #[test]
    fn load_registers_opens_the_port_then_starts() {
        let mut manager = Recorder::default();
        let loaded = load(&mut manager).unwrap();
        assert_eq!(loaded, Loaded { filter: 7, port: 9 });
        assert_eq!(manager.calls, ["register", "open_port", "start"]);
        unload(&mut manager, loaded);
        assert_eq!(
            manager.calls,
            ["register", "open_port", "start", "close_port", "unregister"]
        );
    }

    #[test]
    fn a_failed_start_closes_the_port_and_unregisters() {
        let status = NtStatus::STATUS_INSUFFICIENT_RESOURCES;
        let mut manager = Recorder {
            fail_start: Some(status),
            ..Recorder::default()
        };
        assert_eq!(load(&mut manager), Err(status));
        assert_eq!(
            manager.calls,
            ["register", "open_port", "start", "close_port", "unregister"]
        );
    }

    #[test]
    fn a_failed_port_unregisters() {
        let status = NtStatus::STATUS_INSUFFICIENT_RESOURCES;
        let mut manager = Recorder {
            fail_port: Some(status),
            ..Recorder::default()
        };
        assert_eq!(load(&mut manager), Err(status));
        assert_eq!(manager.calls, ["register", "open_port", "unregister"]);
    }

    #[test]
    fn a_failed_registration_has_nothing_to_undo() {
        let status = NtStatus::STATUS_INVALID_PARAMETER;
        let mut manager = Recorder {
            fail_register: Some(status),
            ..Recorder::default()
        };
        assert_eq!(load(&mut manager), Err(status));
        assert_eq!(manager.calls, ["register"]);
    }
}
