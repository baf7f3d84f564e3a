//! Filter registration and lifetime: `FltRegisterFilter` (the image's `FLT_REGISTRATION` read by
//! the table's offsets), `FltStartFiltering`, `FltUnregisterFilter` (teardown of every live
//! instance, then the filter's contexts freed), and the `FLT_RELATED_OBJECTS` Filter Manager
//! hands each callback.

use std::ffi::c_void;

use odx_core::NtStatus;

use super::fault::Point;
use super::{Call, InstanceState, Kernel, STATUS_INVALID_PARAMETER, with};
use super::{FILTER_HANDLE, VOLUME_HANDLE, nt};
use crate::layouts::{Blob, read, shapes};

/// `PASSIVE_LEVEL`.
const PASSIVE_LEVEL: u8 = 0;
/// Most rows read from a registration table before giving up on a missing end marker.
const MAX_ROWS: usize = 64;

/// `PFLT_PRE_OPERATION_CALLBACK` as the image implements it (Win64 ABI).
pub type PreFn = unsafe extern "win64" fn(*mut c_void, *const c_void, *mut *mut c_void) -> i32;
/// `PFLT_POST_OPERATION_CALLBACK`.
pub type PostFn = unsafe extern "win64" fn(*mut c_void, *const c_void, *const c_void, u32) -> i32;
/// `PFLT_INSTANCE_SETUP_CALLBACK`.
pub type SetupFn = unsafe extern "win64" fn(*const c_void, u32, u32, i32) -> i32;
/// `PFLT_INSTANCE_TEARDOWN_CALLBACK`.
pub type TeardownFn = unsafe extern "win64" fn(*const c_void, u32);
/// `PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK`.
pub type QueryTeardownFn = unsafe extern "win64" fn(*const c_void, u32) -> i32;
/// `PFLT_FILTER_UNLOAD_CALLBACK`.
pub type UnloadFn = unsafe extern "win64" fn(u32) -> i32;

/// One row of the captured operation registration (addresses inside the image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperationRow {
    /// `MajorFunction`.
    pub major_function: u8,
    /// `Flags`.
    pub flags: u32,
    /// `PreOperation` address.
    pub pre: Option<usize>,
    /// `PostOperation` address.
    pub post: Option<usize>,
}

/// One row of the captured context registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextRow {
    /// `ContextType`.
    pub context_type: u16,
    /// `Size`.
    pub size: usize,
    /// `PoolTag`.
    pub pool_tag: u32,
    /// A cleanup callback is registered.
    pub cleanup: bool,
}

/// The `FLT_REGISTRATION` the image passed to `FltRegisterFilter`, copied out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registration {
    /// `Size`.
    pub size: u16,
    /// `Version`.
    pub version: u16,
    /// `Flags`.
    pub flags: u32,
    /// Operations up to the end marker.
    pub operations: Vec<OperationRow>,
    /// Contexts up to the end marker.
    pub contexts: Vec<ContextRow>,
    /// `FilterUnloadCallback`.
    pub unload: Option<usize>,
    /// `InstanceSetupCallback`.
    pub instance_setup: Option<usize>,
    /// `InstanceQueryTeardownCallback`.
    pub instance_query_teardown: Option<usize>,
    /// `InstanceTeardownStartCallback`.
    pub instance_teardown_start: Option<usize>,
    /// `InstanceTeardownCompleteCallback`.
    pub instance_teardown_complete: Option<usize>,
}

impl Registration {
    /// Every callback address, for the check that all lie inside the image.
    pub fn callbacks(&self) -> impl Iterator<Item = usize> + '_ {
        self.operations
            .iter()
            .flat_map(|op| [op.pre, op.post])
            .chain([
                self.unload,
                self.instance_setup,
                self.instance_query_teardown,
                self.instance_teardown_start,
                self.instance_teardown_complete,
            ])
            .flatten()
    }
}

pub(super) fn resolve(symbol: &str) -> Option<usize> {
    Some(match symbol {
        "FltRegisterFilter" => flt_register_filter as *const () as usize,
        "FltStartFiltering" => flt_start_filtering as *const () as usize,
        "FltUnregisterFilter" => flt_unregister_filter as *const () as usize,
        "FltSetCallbackDataDirty" => flt_set_callback_data_dirty as *const () as usize,
        _ => return None,
    })
}

fn function(address: usize) -> Option<usize> {
    (address != 0).then_some(address)
}

/// Reads the image's registration by the table's offsets: the fields up to the version's
/// `Size` (a 0x0203 registration is the whole structure).
fn read_registration(registration: *const c_void) -> Result<Registration, String> {
    if registration.is_null() {
        return Err("NULL registration".to_owned());
    }
    let s = shapes();
    let (r, op, ctx) = (
        &s.registration,
        &s.operation_registration,
        &s.context_registration,
    );
    // SAFETY: the image passes a pointer to its FLT_REGISTRATION; `Size` (a USHORT) comes first.
    let size: u16 = unsafe { read(registration, r.size_field) };
    if usize::from(size) < r.generate_file_name {
        return Err(format!("registration Size {size} is too small"));
    }
    if usize::from(size) > r.size {
        return Err(format!(
            "registration Size {size} is larger than FLT_REGISTRATION ({})",
            r.size
        ));
    }
    let field = |offset: usize| -> usize {
        if offset + 8 <= usize::from(size) {
            // SAFETY: within the `Size` bytes the image declares (checked against the table's
            // structure size above); pointers are 8 bytes.
            unsafe { read::<usize>(registration, offset) }
        } else {
            0
        }
    };
    // SAFETY: as above, USHORT Version and ULONG Flags inside `Size`.
    let version: u16 = unsafe { read(registration, r.version) };
    // SAFETY: as above.
    let flags: u32 = unsafe { read(registration, r.flags) };
    let mut out = Registration {
        size,
        version,
        flags,
        unload: function(field(r.filter_unload)),
        instance_setup: function(field(r.instance_setup)),
        instance_query_teardown: function(field(r.instance_query_teardown)),
        instance_teardown_start: function(field(r.instance_teardown_start)),
        instance_teardown_complete: function(field(r.instance_teardown_complete)),
        ..Registration::default()
    };
    let end = s.constants.irp_mj_operation_end;
    let operations = field(r.operation_registration) as *const c_void;
    for row in 0..MAX_ROWS {
        if operations.is_null() {
            break;
        }
        let at = operations.wrapping_byte_add(row * op.size);
        // SAFETY: the operation table is an array of FLT_OPERATION_REGISTRATION (the table's
        // size per row) ending with IRP_MJ_OPERATION_END; read row by row up to that marker.
        let major: u8 = unsafe { read(at, op.major_function) };
        if major == end {
            break;
        }
        out.operations.push(OperationRow {
            major_function: major,
            // SAFETY: as above.
            flags: unsafe { read(at, op.flags) },
            // SAFETY: as above.
            pre: function(unsafe { read(at, op.pre_operation) }),
            // SAFETY: as above.
            post: function(unsafe { read(at, op.post_operation) }),
        });
    }
    let contexts = field(r.context_registration) as *const c_void;
    for row in 0..MAX_ROWS {
        if contexts.is_null() {
            break;
        }
        let at = contexts.wrapping_byte_add(row * ctx.size);
        // SAFETY: the context table is an array of FLT_CONTEXT_REGISTRATION ending with
        // FLT_CONTEXT_END, read row by row.
        let context_type: u16 = unsafe { read(at, ctx.context_type) };
        if context_type == s.constants.flt_context_end {
            break;
        }
        out.contexts.push(ContextRow {
            context_type,
            // SAFETY: as above.
            size: unsafe { read(at, ctx.size_field) },
            // SAFETY: as above.
            pool_tag: unsafe { read(at, ctx.pool_tag) },
            // SAFETY: as above.
            cleanup: unsafe { read::<usize>(at, ctx.cleanup) } != 0,
        });
    }
    Ok(out)
}

/// `FltRegisterFilter`.
unsafe extern "win64" fn flt_register_filter(
    driver: *const c_void,
    registration: *const c_void,
    filter: *mut isize,
) -> i32 {
    let parsed = read_registration(registration);
    let status = with(|k| {
        k.calls.push(Call::RegisterFilter);
        k.require_irql("FltRegisterFilter", PASSIVE_LEVEL);
        if let Some(status) = k.faults.hit(Point::RegisterFilter) {
            return status;
        }
        if driver.is_null() || filter.is_null() {
            k.error("FltRegisterFilter: NULL driver object or out pointer".to_owned());
            return STATUS_INVALID_PARAMETER;
        }
        if k.registration.is_some() {
            k.error("FltRegisterFilter called twice".to_owned());
            return STATUS_INVALID_PARAMETER;
        }
        match parsed {
            Ok(registration) => {
                k.registration = Some(registration);
                NtStatus::STATUS_SUCCESS
            }
            Err(message) => {
                k.error(format!("FltRegisterFilter: {message}"));
                STATUS_INVALID_PARAMETER
            }
        }
    })
    .unwrap_or(STATUS_INVALID_PARAMETER);
    if status.is_success() {
        // SAFETY: `filter` is the image's non-NULL out pointer (checked above).
        unsafe { filter.write(FILTER_HANDLE) };
    }
    nt(status)
}

pub(super) fn check_filter(k: &mut Kernel, function: &str, filter: isize) -> bool {
    if filter == FILTER_HANDLE && k.registration.is_some() && !k.unregistered {
        true
    } else {
        k.error(format!("{function}: bad filter handle {filter:#x}"));
        false
    }
}

/// `FltStartFiltering`.
unsafe extern "win64" fn flt_start_filtering(filter: isize) -> i32 {
    nt(with(|k| {
        k.calls.push(Call::StartFiltering);
        k.require_irql("FltStartFiltering", PASSIVE_LEVEL);
        if let Some(status) = k.faults.hit(Point::StartFiltering) {
            return status;
        }
        if !check_filter(k, "FltStartFiltering", filter) {
            return STATUS_INVALID_PARAMETER;
        }
        k.started = true;
        NtStatus::STATUS_SUCCESS
    })
    .unwrap_or(STATUS_INVALID_PARAMETER))
}

/// `FltUnregisterFilter`: tears every live instance down (teardown start, then complete, with
/// `FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD`), then frees the filter's contexts (drops Filter
/// Manager's references).
unsafe extern "win64" fn flt_unregister_filter(filter: isize) {
    let teardown = with(|k| {
        k.calls.push(Call::UnregisterFilter);
        k.require_irql("FltUnregisterFilter", PASSIVE_LEVEL);
        if !check_filter(k, "FltUnregisterFilter", filter) {
            return None;
        }
        let registration = k.registration.clone().unwrap_or_default();
        let instances: Vec<(isize, InstanceState)> =
            k.instances.iter().map(|i| (i.handle, i.state)).collect();
        Some((registration, instances))
    })
    .flatten();
    let Some((registration, instances)) = teardown else {
        return;
    };
    let reason = shapes().constants.fltfl_instance_teardown_filter_unload;
    for (handle, state) in instances {
        let objects = related_objects(handle, std::ptr::null(), std::ptr::null());
        if state == InstanceState::Attached {
            if let Some(start) = registration.instance_teardown_start {
                // SAFETY: the address is the image's PFLT_INSTANCE_TEARDOWN_CALLBACK (checked to
                // lie inside the image at load), a Win64 function of this signature.
                let start = unsafe { std::mem::transmute::<usize, TeardownFn>(start) };
                // SAFETY: valid related objects for the instance, PASSIVE_LEVEL.
                unsafe { start(objects.as_ptr(), reason) };
            }
        }
        if matches!(state, InstanceState::Attached | InstanceState::TearingDown) {
            if let Some(complete) = registration.instance_teardown_complete {
                // SAFETY: as above, for the teardown-complete callback.
                let complete = unsafe { std::mem::transmute::<usize, TeardownFn>(complete) };
                // SAFETY: as above.
                unsafe { complete(objects.as_ptr(), reason) };
            }
        }
        with(|k| super::context::delete_instance(k, handle));
    }
    with(|k| k.unregistered = true);
}

/// The related objects Filter Manager passes for `instance` (laid out by the table).
#[must_use]
pub fn related_objects(
    instance: isize,
    file_object: *const c_void,
    transaction: *const c_void,
) -> Blob {
    let r = shapes().related_objects;
    let mut blob = Blob::new(r.size);
    blob.put::<u16>(r.size_field, u16::try_from(r.size).unwrap_or(u16::MAX));
    blob.put::<u16>(r.transaction_context, 0);
    blob.put::<isize>(r.filter, FILTER_HANDLE);
    blob.put::<isize>(r.volume, VOLUME_HANDLE);
    blob.put::<isize>(r.instance, instance);
    blob.put::<usize>(r.file_object, file_object as usize);
    blob.put::<usize>(r.transaction, transaction as usize);
    blob
}

/// `FltSetCallbackDataDirty` (IRQL <= DISPATCH_LEVEL): sets `FLTFL_CALLBACK_DATA_DIRTY`.
unsafe extern "win64" fn flt_set_callback_data_dirty(data: *mut c_void) {
    let ok = with(|k| {
        k.calls.push(Call::SetCallbackDataDirty);
        k.require_irql("FltSetCallbackDataDirty", 2);
        if data.is_null() {
            k.error("FltSetCallbackDataDirty(NULL)".to_owned());
        }
        !data.is_null()
    })
    .unwrap_or(false);
    if ok {
        let s = shapes();
        let offset = s.callback_data.flags;
        // SAFETY: `data` is the callback data of the operation in progress (non-NULL), owned by
        // the harness and lent to the image for the callback; ULONG Flags at the table's offset.
        let old: u32 = unsafe { read(data, offset) };
        // SAFETY: as above.
        unsafe {
            crate::layouts::write(data, offset, old | s.constants.fltfl_callback_data_dirty);
        }
    }
}
