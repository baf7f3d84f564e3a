//! Load and unload order, independent of the kernel: `DriverEntry` registers the filter, (issue 6:
//! opens the communication port), starts filtering, and unwinds every completed step in reverse
//! when a later one fails. `ffi::registration` implements [`FilterManager`] over Filter Manager.

use odx_core::NtStatus;

/// The Filter Manager calls `DriverEntry` and unload make, in the order they make them.
pub trait FilterManager {
    /// The registered filter (`PFLT_FILTER`).
    type Filter: Copy;

    /// `FltRegisterFilter`.
    ///
    /// # Errors
    /// Its status.
    fn register(&mut self) -> Result<Self::Filter, NtStatus>;

    /// `FltStartFiltering`.
    ///
    /// # Errors
    /// Its status.
    fn start(&mut self, filter: Self::Filter) -> Result<(), NtStatus>;

    /// `FltUnregisterFilter` (waits for outstanding callbacks and releases every context).
    fn unregister(&mut self, filter: Self::Filter);
}

/// Registers and starts the filter, unwinding on failure.
///
/// # Errors
/// The status of the step that failed, after the steps before it were undone.
pub fn load<M: FilterManager>(manager: &mut M) -> Result<M::Filter, NtStatus> {
    let filter = manager.register()?;
    // Seam for issue 6: the communication port (FltCreateCommunicationPort) is created here,
    // between registration and start, and closed on this unwind path before unregistering.
    if let Err(status) = manager.start(filter) {
        manager.unregister(filter);
        return Err(status);
    }
    Ok(filter)
}

/// Unloads the filter: the reverse of [`load`].
pub fn unload<M: FilterManager>(manager: &mut M, filter: M::Filter) {
    manager.unregister(filter);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct Recorder {
        fail_register: Option<NtStatus>,
        fail_start: Option<NtStatus>,
        calls: std::vec::Vec<&'static str>,
    }

    impl FilterManager for Recorder {
        type Filter = u32;
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
    fn load_registers_then_starts() {
        let mut manager = Recorder::default();
        assert_eq!(load(&mut manager), Ok(7));
        assert_eq!(manager.calls, ["register", "start"]);
        unload(&mut manager, 7);
        assert_eq!(manager.calls, ["register", "start", "unregister"]);
    }

    #[test]
    fn a_failed_start_unregisters() {
        let status = NtStatus::STATUS_INSUFFICIENT_RESOURCES;
        let mut manager = Recorder {
            fail_start: Some(status),
            ..Recorder::default()
        };
        assert_eq!(load(&mut manager), Err(status));
        assert_eq!(manager.calls, ["register", "start", "unregister"]);
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
