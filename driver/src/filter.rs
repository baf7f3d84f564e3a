//! odxflt's callbacks in safe Rust: which requests it takes, what it asks the kernel, and how it
//! obeys the core. Views and trampolines are in [`crate::ffi`]; decisions are in `odx_core`.

use odx_core::NtStatus;

use crate::dispatch::{self, Pending, PreAction};
use crate::facts::{KernelFacts, LockView};
use crate::ffi::callbacks::{
    CallbackData, InstanceHandler, NonPagedPool, OperationHandler, PreOutcome, RelatedObjects,
    UnloadHandler,
};
use crate::ffi::context::VolumeContextRef;
use crate::ffi::query::{RequestSource, raw_volume};
use crate::ffi::registration;
use crate::volume::VolumeContext;
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
        // The volume's slot comes from its context (released at the end of this statement); a
        // volume without one is governed by the default policy, is not counted, and its facts
        // query fails the same lookup with its status.
        let slot = VolumeContextRef::get(objects.filter(), objects.volume())
            .ok()
            .and_then(|context| context.slot());
        let mode = VOLUMES.policy(slot);
        let stats = VOLUMES.stats(slot);
        let mut facts = KernelFacts::new(RequestSource::new(objects), LockView::FileSystemDecides);
        let action =
            dispatch::pre_operation(op, mode, &mut data.system_buffer(), &mut facts, stats);
        match action {
            PreAction::Complete {
                status,
                information,
            } => PreOutcome::Complete(status, information),
            PreAction::Forward { context, dirty } => {
                if dirty {
                    data.set_dirty();
                }
                PreOutcome::WithCallback(Pending { context, slot })
            }
            PreAction::PassThrough => PreOutcome::NoCallback,
        }
    }

    fn post(data: &mut CallbackData<'_>, pending: Pending) {
        let (below, information) = data.io_status();
        // By slot number: no context lookup at DISPATCH_LEVEL, nothing to release.
        let stats = VOLUMES.stats(pending.slot);
        let action = dispatch::post_operation(
            &pending.context,
            below,
            information,
            &mut data.system_buffer(),
            stats,
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
        let slot = VOLUMES.attach();
        let attached =
            VolumeContextRef::allocate(objects.filter(), VolumeContext::new(facts, slot))
                .and_then(|context| context.set_on(objects.volume()));
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
        if let Ok(context) = VolumeContextRef::get(objects.filter(), objects.volume()) {
            context.mark_dismounted();
        }
    }

    fn teardown_complete(objects: RelatedObjects<'_>, _reason: u32) {
        // Every operation of the instance has completed: its slot can serve another volume.
        let slot = VolumeContextRef::get(objects.filter(), objects.volume())
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
