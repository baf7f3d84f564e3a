//! The `FLT_REGISTRATION` handed to `FltRegisterFilter`, built from the plain tables in
//! [`crate::registration`], and the Filter Manager side of [`crate::lifecycle`].

use core::ptr::{null, null_mut};
use core::sync::atomic::{AtomicIsize, Ordering};

use odx_core::NtStatus;
use windows_sys::Wdk::Foundation::DRIVER_OBJECT;
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CONTEXT_END, FLT_CONTEXT_REGISTRATION, FLT_OPERATION_REGISTRATION, FLT_REGISTRATION,
    FLT_REGISTRATION_VERSION_0203, FltRegisterFilter, FltStartFiltering, FltUnregisterFilter,
    IRP_MJ_OPERATION_END, PFLT_FILTER, PFLT_PORT,
};
use windows_sys::Win32::Foundation::{NTSTATUS, UNICODE_STRING};

use super::callbacks::{
    InstanceHandler, OperationHandler, UnloadHandler, filter_unload, instance_query_teardown,
    instance_setup, instance_teardown_complete, instance_teardown_start, post_operation,
    pre_operation,
};
use super::{core_status, nt, nt_success};
use crate::filter::Odxflt;
use crate::lifecycle::{self, FilterManager, Loaded};
use crate::registration::{FLT_INSTANCE_CONTEXT, OPERATIONS, Operation, POOL_TAG};
use crate::volume::InstanceContext;
use crate::volumes::VOLUMES;

/// An immutable registration table.
#[derive(Debug)]
#[repr(transparent)]
pub struct Table<T>(T);

// SAFETY: the tables are immutable statics; the raw pointers they hold point to other immutable
// statics or are NULL, so sharing them between threads cannot race.
unsafe impl<T> Sync for Table<T> {}

const fn operation<H: OperationHandler>(row: Operation) -> FLT_OPERATION_REGISTRATION {
    FLT_OPERATION_REGISTRATION {
        MajorFunction: row.major_function,
        Flags: 0,
        PreOperation: if row.pre {
            Some(pre_operation::<H>)
        } else {
            None
        },
        PostOperation: if row.post {
            Some(post_operation::<H>)
        } else {
            None
        },
        Reserved1: null_mut(),
    }
}

/// `IRP_MJ_OPERATION_END` (0x80) in the u8 field.
const OPERATION_END: u8 = {
    assert!(IRP_MJ_OPERATION_END <= 0xFF);
    IRP_MJ_OPERATION_END as u8
};

/// `FLT_CONTEXT_END` (0xFFFF) in the u16 field.
const CONTEXT_END: u16 = {
    assert!(FLT_CONTEXT_END <= 0xFFFF);
    FLT_CONTEXT_END as u16
};

const END_OPERATION: FLT_OPERATION_REGISTRATION = FLT_OPERATION_REGISTRATION {
    MajorFunction: OPERATION_END,
    Flags: 0,
    PreOperation: None,
    PostOperation: None,
    Reserved1: null_mut(),
};

/// Rows in the operation registration: [`OPERATIONS`] plus the end marker.
const OPERATION_ROWS: usize = OPERATIONS.len() + 1;

/// The operation registration for handler `H`: every row of [`OPERATIONS`], then the end marker.
#[must_use]
pub const fn operation_table<H: OperationHandler>() -> [FLT_OPERATION_REGISTRATION; OPERATION_ROWS]
{
    let mut table = [END_OPERATION; OPERATION_ROWS];
    let mut row = 0;
    while row < OPERATIONS.len() {
        // `row` < OPERATIONS.len() < OPERATION_ROWS: both accesses are in bounds, and a const
        // evaluation that went out of bounds would fail the build, not the driver.
        #[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
        {
            table[row] = operation::<H>(OPERATIONS[row]);
            row += 1;
        }
    }
    table
}

/// odxflt's operation registration.
pub static OPERATION_TABLE: Table<[FLT_OPERATION_REGISTRATION; OPERATION_ROWS]> =
    Table(operation_table::<Odxflt>());

const fn context(context_type: u16, size: usize) -> FLT_CONTEXT_REGISTRATION {
    FLT_CONTEXT_REGISTRATION {
        ContextType: context_type,
        Flags: 0,
        // InstanceContext owns no resources: nothing to clean up (its statistics slot is given
        // back at teardown complete, when no operation of the instance is outstanding).
        ContextCleanupCallback: None,
        Size: size,
        PoolTag: POOL_TAG,
        ContextAllocateCallback: None,
        ContextFreeCallback: None,
        Reserved1: null_mut(),
    }
}

/// The context registration: the instance context plus the end marker.
pub static CONTEXT_TABLE: Table<[FLT_CONTEXT_REGISTRATION; 2]> = Table([
    context(
        FLT_INSTANCE_CONTEXT,
        core::mem::size_of::<InstanceContext>(),
    ),
    context(CONTEXT_END, 0),
]);

/// `FLT_REGISTRATION_VERSION_0203`, the version of Windows 8's Filter Manager (fltKernel.h:
/// `FLT_MGR_WIN8`; 0x0202 is Windows Vista's, 0x0201 the original), which odxflt requires
/// anyway (ODX exists from Windows 8 on). Its `FLT_REGISTRATION` ends with
/// `SectionNotificationCallback`, so `Size` is the whole structure.
const VERSION: u16 = {
    assert!(FLT_REGISTRATION_VERSION_0203 <= 0xFFFF);
    FLT_REGISTRATION_VERSION_0203 as u16
};
const SIZE: u16 = {
    let size = core::mem::size_of::<FLT_REGISTRATION>();
    assert!(size <= 0xFFFF);
    size as u16
};

crate::pin_constant!(
    FLT_REGISTRATION_VERSION_0203 => "FLT_REGISTRATION_VERSION_0203",
    IRP_MJ_OPERATION_END => "IRP_MJ_OPERATION_END",
    FLT_CONTEXT_END => "FLT_CONTEXT_END",
);

/// The registration for handler `H` over the given operation and context tables.
#[must_use]
pub const fn registration<H: OperationHandler + InstanceHandler + UnloadHandler>(
    operations: *const FLT_OPERATION_REGISTRATION,
    contexts: *const FLT_CONTEXT_REGISTRATION,
) -> FLT_REGISTRATION {
    FLT_REGISTRATION {
        Size: SIZE,
        Version: VERSION,
        Flags: 0,
        ContextRegistration: contexts,
        OperationRegistration: operations,
        FilterUnloadCallback: Some(filter_unload::<H>),
        InstanceSetupCallback: Some(instance_setup::<H>),
        InstanceQueryTeardownCallback: Some(instance_query_teardown),
        InstanceTeardownStartCallback: Some(instance_teardown_start::<H>),
        InstanceTeardownCompleteCallback: Some(instance_teardown_complete::<H>),
        GenerateFileNameCallback: None,
        NormalizeNameComponentCallback: None,
        NormalizeContextCleanupCallback: None,
        TransactionNotificationCallback: None,
        NormalizeNameComponentExCallback: None,
        SectionNotificationCallback: None,
    }
}

/// odxflt's registration.
pub static REGISTRATION: Table<FLT_REGISTRATION> = Table(registration::<Odxflt>(
    OPERATION_TABLE.0.as_ptr(),
    CONTEXT_TABLE.0.as_ptr(),
));

/// The filter handle between `DriverEntry` and unload (0 = not registered).
static FILTER: AtomicIsize = AtomicIsize::new(0);
/// The communication server port between `DriverEntry` and unload.
static PORT: AtomicIsize = AtomicIsize::new(0);

/// Filter Manager, as [`lifecycle`] uses it.
#[derive(Debug)]
struct FltMgr {
    driver: *const DRIVER_OBJECT,
}

impl FilterManager for FltMgr {
    type Filter = PFLT_FILTER;
    type Port = PFLT_PORT;

    fn open_port(&mut self, filter: PFLT_FILTER) -> Result<PFLT_PORT, NtStatus> {
        super::port::open(filter)
    }

    fn close_port(&mut self, port: PFLT_PORT) {
        super::port::close(port);
    }

    fn register(&mut self) -> Result<PFLT_FILTER, NtStatus> {
        let mut filter: PFLT_FILTER = 0;
        // SAFETY: `driver` is the driver object DriverEntry received; the registration is a
        // static that outlives the filter; `filter` is a valid out pointer. PASSIVE_LEVEL.
        let status = unsafe { FltRegisterFilter(self.driver, &REGISTRATION.0, &mut filter) };
        if nt_success(status) {
            Ok(filter)
        } else {
            Err(core_status(status))
        }
    }

    fn start(&mut self, filter: PFLT_FILTER) -> Result<(), NtStatus> {
        // SAFETY: `filter` was just returned by FltRegisterFilter and is not unregistered.
        let status = unsafe { FltStartFiltering(filter) };
        if nt_success(status) {
            Ok(())
        } else {
            Err(core_status(status))
        }
    }

    fn unregister(&mut self, filter: PFLT_FILTER) {
        // SAFETY: `filter` is registered and is unregistered exactly once (the caller took it
        // out of FILTER or never stored it). FltUnregisterFilter waits for callbacks to drain
        // and frees every context of the filter.
        unsafe { FltUnregisterFilter(filter) };
    }
}

/// `DriverEntry` after the KMDF step: the default policy from the registry, then register, open
/// the port and start the filter.
pub fn load(driver: *const DRIVER_OBJECT, registry_path: *const UNICODE_STRING) -> NTSTATUS {
    super::rules::init();
    let parameters = super::registry::parameters(registry_path);
    VOLUMES.load_default(parameters.policy);
    VOLUMES.load_backoff(parameters.backoff);
    VOLUMES.load_journal(parameters.journal);
    match lifecycle::load(&mut FltMgr { driver }) {
        Ok(Loaded { filter, port }) => {
            PORT.store(port, Ordering::Release);
            FILTER.store(filter, Ordering::Release);
            nt(NtStatus::STATUS_SUCCESS)
        }
        Err(status) => nt(status),
    }
}

/// The filter unload callback: close the port, unregister.
pub fn unload() {
    let filter = FILTER.swap(0, Ordering::AcqRel);
    let port = PORT.swap(0, Ordering::AcqRel);
    if filter != 0 {
        lifecycle::unload(&mut FltMgr { driver: null() }, Loaded { filter, port });
    }
}

/// The major functions an operation table registers (up to the end marker).
pub fn major_functions(table: &[FLT_OPERATION_REGISTRATION]) -> impl Iterator<Item = &u8> {
    table
        .iter()
        .map(|op| &op.MajorFunction)
        .take_while(|major| **major != OPERATION_END)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dispatch::PostContext;
    use crate::ffi::callbacks::{CallbackData, ContextPool, PreOutcome, RelatedObjects};
    use crate::registration::IRP_MJ_FILE_SYSTEM_CONTROL;

    /// A handler with the same tables as odxflt but no kernel behind it, so the registration
    /// (and the trampolines) can be built and called on the host.
    #[derive(Debug)]
    pub(crate) struct Probe;

    /// A heap pool for the host.
    #[derive(Debug)]
    pub(crate) struct HeapPool;

    impl ContextPool for HeapPool {
        fn store<T: Copy>(value: T) -> Option<*mut core::ffi::c_void> {
            Some(std::boxed::Box::into_raw(std::boxed::Box::new(value)).cast())
        }
        unsafe fn take<T: Copy>(raw: *const core::ffi::c_void) -> Option<T> {
            if raw.is_null() {
                return None;
            }
            // SAFETY: `raw` came from `store::<T>` above (Box::into_raw) and is taken once.
            let boxed = unsafe { std::boxed::Box::from_raw(raw.cast::<T>().cast_mut()) };
            Some(*boxed)
        }
    }

    impl OperationHandler for Probe {
        type Context = PostContext;
        type Pool = HeapPool;
        const NO_CONTEXT_STATUS: NtStatus = NtStatus::STATUS_INSUFFICIENT_RESOURCES;
        fn pre(data: &mut CallbackData<'_>, _: RelatedObjects<'_>) -> PreOutcome<PostContext> {
            match data.fs_control().and_then(|c| c.offload_op()) {
                None => PreOutcome::NoCallback,
                Some(_) => PreOutcome::Complete(NtStatus::STATUS_NOT_SUPPORTED, 0),
            }
        }
        fn post(_: &mut CallbackData<'_>, _: PostContext) {}
    }

    impl InstanceHandler for Probe {
        fn setup(_: RelatedObjects<'_>, filesystem_type: i32) -> NtStatus {
            if crate::volume::file_system(filesystem_type).is_some() {
                NtStatus::STATUS_SUCCESS
            } else {
                NtStatus(0xC01C_000F)
            }
        }
        fn teardown_start(_: RelatedObjects<'_>, _: u32) {}
        fn teardown_complete(_: RelatedObjects<'_>, _: u32) {}
    }

    impl UnloadHandler for Probe {
        fn unload(_: u32) -> NtStatus {
            NtStatus::STATUS_SUCCESS
        }
    }

    #[test]
    fn the_operation_table_is_the_plain_table_plus_the_end_marker() {
        let table = operation_table::<Probe>();
        let registered: std::vec::Vec<u8> = major_functions(&table).copied().collect();
        let planned: std::vec::Vec<u8> = OPERATIONS.iter().map(|op| op.major_function).collect();
        assert_eq!(registered, planned);
        assert_eq!(registered, [IRP_MJ_FILE_SYSTEM_CONTROL]);
        assert_eq!(
            u16::from(table.last().unwrap().MajorFunction),
            IRP_MJ_OPERATION_END
        );
        let first = table.first().unwrap();
        assert!(first.PreOperation.is_some() && first.PostOperation.is_some());
    }

    #[test]
    fn the_context_table_holds_the_instance_context_then_the_end_marker() {
        let [instance, end] = &CONTEXT_TABLE.0;
        assert_eq!(instance.ContextType, FLT_INSTANCE_CONTEXT);
        assert_eq!(instance.Size, core::mem::size_of::<InstanceContext>());
        assert_eq!(instance.PoolTag, POOL_TAG);
        assert_eq!(u32::from(end.ContextType), FLT_CONTEXT_END);
    }

    #[test]
    fn the_registration_is_the_windows_8_version_with_its_whole_size() {
        let table = operation_table::<Probe>();
        let registration = registration::<Probe>(table.as_ptr(), CONTEXT_TABLE.0.as_ptr());
        assert_eq!(registration.Version, 0x0203);
        assert_eq!(
            Some(usize::from(registration.Size)),
            crate::ffi::layouts::size("FLT_REGISTRATION")
        );
        assert_eq!(core::mem::size_of::<FLT_REGISTRATION>(), 112);
        assert_eq!(registration.OperationRegistration, table.as_ptr());
        assert!(registration.FilterUnloadCallback.is_some());
        assert!(registration.InstanceSetupCallback.is_some());
        assert!(registration.InstanceQueryTeardownCallback.is_some());
        assert!(registration.InstanceTeardownStartCallback.is_some());
        assert!(registration.InstanceTeardownCompleteCallback.is_some());
        assert!(registration.SectionNotificationCallback.is_none());
    }
}
