//! odxflt's callbacks in safe Rust: which requests it takes, what it asks the kernel, and how it
//! obeys the core. Views and trampolines are in [`crate::ffi`]; decisions are in `odx_core`.

use odx_core::NtStatus;
use odx_core::filter::StorageAt;
use odx_core::storage::StorageState;

use crate::dispatch::{self, Pending, PreAction};
use crate::facts::{KernelFacts, LockView};
use crate::ffi::callbacks::{
    CallbackData, InstanceHandler, NonPagedPool, OperationHandler, PreOutcome, RelatedObjects,
    UnloadHandler,
};
use crate::ffi::context::InstanceContextRef;
use crate::ffi::kernel::interrupt_time;
use crate::ffi::query::{RequestSource, raw_volume};
use crate::ffi::registration;
use crate::ffi::storage::query_capability;
use crate::volume::InstanceContext;
use crate::volumes::VOLUMES;

/// `STATUS_FLT_DO_NOT_ATTACH`.
const STATUS_FLT_DO_NOT_ATTACH: NtStatus = NtStatus(0xC01C_000F);

/// The filter.
#[derive(Debug)]
pub struct Odxflt;

impl OperationHandler for Odxflt {
    type Context = Pending;
    type Pool = NonPagedPool;
    // A documented offload status: copy engines fall back to ordinary I/O for the file.
    const NO_CONTEXT_STATUS: NtStatus = NtStatus::STATUS_INSUFFICIENT_RESOURCES;

    fn pre(data: &mut CallbackData<'_>, objects: RelatedObjects<'_>) -> PreOutcome<Pending> {
        let Some(op) = data.fs_control().and_then(|control| control.offload_op()) else {
            return PreOutcome::NoCallback;
        };
        // One context lookup per request; the reference is held until pre-operation returns.
        // An instance without a context (setup failed half-way) or being torn down is not
        // governed: the request passes through untouched, and the file system answers it.
        let Ok(instance) = InstanceContextRef::get(objects.instance()) else {
            return PreOutcome::NoCallback;
        };
        if instance.torn_down() {
            return PreOutcome::NoCallback;
        }
        let slot = instance.slot();
        let mode = VOLUMES.policy(slot);
        let stats = VOLUMES.stats(slot);
        // The slot's storage state; a volume without a slot has only what setup learned (no
        // back-off: post-operation could not reach a state in the instance context).
        let fallback;
        let storage = match VOLUMES.storage(slot) {
            Some(storage) => storage,
            None => {
                fallback = StorageState::new(instance.capability(), 0);
                &fallback
            }
        };
        let source = RequestSource::new(objects, instance.facts(), storage);
        let mut facts = KernelFacts::new(source, LockView::FileSystemDecides);
        let action =
            dispatch::pre_operation(op, mode, &mut data.system_buffer(), &mut facts, stats);
        match action {
            PreAction::Complete {
                status,
                information,
            } => PreOutcome::Complete(status, information),
            // A trimmed `CopyLength` is rewritten in the system buffer, not in the parameter
            // block: the callback data is not dirty (FltSetCallbackDataDirty is for changes to
            // the parameter block or the target).
            PreAction::Forward { context, .. } => {
                PreOutcome::WithCallback(Pending { context, slot })
            }
            PreAction::PassThrough => PreOutcome::NoCallback,
        }
    }

    fn post(data: &mut CallbackData<'_>, pending: Pending) {
        let (below, information) = data.io_status();
        // By slot number: no context lookup at DISPATCH_LEVEL, nothing to release.
        let stats = VOLUMES.stats(pending.slot);
        // Same for the storage state the core learns refusals into.
        let storage = VOLUMES.storage(pending.slot).map(|state| StorageAt {
            state,
            now: interrupt_time(),
        });
        let action = dispatch::post_operation(
            &pending.context,
            below,
            information,
            &mut data.system_buffer(),
            stats,
            storage,
        );
        data.set_io_status(action.status, action.information);
    }
}

impl InstanceHandler for Odxflt {
    fn setup(objects: RelatedObjects<'_>, filesystem_type: i32) -> NtStatus {
        if crate::volume::file_system(filesystem_type).is_none() {
            return STATUS_FLT_DO_NOT_ATTACH;
        }
        let Ok(facts) = raw_volume(objects, filesystem_type).facts() else {
            return STATUS_FLT_DO_NOT_ATTACH;
        };
        // What the storage says about copy offload (IOCTL_STORAGE_QUERY_PROPERTY, PASSIVE_LEVEL);
        // any failure is "unknown": requests are forwarded and the storage's answers teach.
        let capability = query_capability(objects);
        let slot = VOLUMES.attach(capability);
        let attached = InstanceContextRef::allocate(
            objects.filter(),
            InstanceContext::new(facts, capability, slot),
        )
        .and_then(|context| context.set_on(objects.instance()));
        match attached {
            Ok(()) => NtStatus::STATUS_SUCCESS,
            Err(status) => {
                if let Some(slot) = slot {
                    VOLUMES.detach(slot);
                }
                status
            }
        }
    }

    fn teardown_start(objects: RelatedObjects<'_>, _reason: u32) {
        if let Ok(context) = InstanceContextRef::get(objects.instance()) {
            context.mark_torn_down();
        }
    }

    fn teardown_complete(objects: RelatedObjects<'_>, _reason: u32) {
        // Every operation of the instance has completed: its slot can serve another volume.
        let slot = InstanceContextRef::get(objects.instance())
            .ok()
            .and_then(|context| context.slot());
        if let Some(slot) = slot {
            VOLUMES.detach(slot);
        }
    }
}

impl UnloadHandler for Odxflt {
    fn unload(_flags: u32) -> NtStatus {
        registration::unload();
        NtStatus::STATUS_SUCCESS
    }
}
