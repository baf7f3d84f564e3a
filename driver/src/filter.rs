//! odxflt's callbacks in safe Rust: which requests it takes, what it asks the kernel, and how it
//! obeys the core. Views and trampolines are in [`crate::ffi`]; decisions are in `odx_core`.

use odx_core::NtStatus;
use odx_core::policy::PolicyMode;

use crate::dispatch::{self, PostContext, PreAction};
use crate::facts::{KernelFacts, LockView};
use crate::ffi::callbacks::{
    CallbackData, InstanceHandler, NonPagedPool, OperationHandler, PreOutcome, RelatedObjects,
    UnloadHandler,
};
use crate::ffi::context::VolumeContextRef;
use crate::ffi::query::{RequestSource, raw_volume};
use crate::ffi::registration;
use crate::volume::VolumeContext;

/// `STATUS_FLT_DO_NOT_ATTACH`.
const STATUS_FLT_DO_NOT_ATTACH: NtStatus = NtStatus(0xC01C_000F);

/// The filter.
#[derive(Debug)]
pub struct Odxflt;

impl OperationHandler for Odxflt {
    type Context = PostContext;
    type Pool = NonPagedPool;
    // A documented offload status: copy engines fall back to ordinary I/O for the file.
    const NO_CONTEXT_STATUS: NtStatus = NtStatus::STATUS_INSUFFICIENT_RESOURCES;

    fn pre(data: &mut CallbackData<'_>, objects: RelatedObjects<'_>) -> PreOutcome<PostContext> {
        let Some(op) = data.fs_control().and_then(|control| control.offload_op()) else {
            return PreOutcome::NoCallback;
        };
        // The policy is read from the volume context; a volume without one is governed by the
        // default policy and its facts query fails the same lookup with its status.
        let mode = VolumeContextRef::get(objects.filter(), objects.volume())
            .map_or_else(|_| PolicyMode::default(), |context| context.policy());
        let mut facts = KernelFacts::new(RequestSource::new(objects), LockView::FileSystemDecides);
        let action = dispatch::pre_operation(op, mode, &mut data.system_buffer(), &mut facts);
        match action {
            PreAction::Complete {
                status,
                information,
            } => PreOutcome::Complete(status, information),
            PreAction::Forward { context, dirty } => {
                if dirty {
                    data.set_dirty();
                }
                PreOutcome::WithCallback(context)
            }
        }
    }

    fn post(data: &mut CallbackData<'_>, context: PostContext) {
        let (below, information) = data.io_status();
        let action =
            dispatch::post_operation(&context, below, information, &mut data.system_buffer());
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
        let attached = VolumeContextRef::allocate(objects.filter(), VolumeContext::new(facts))
            .and_then(|context| context.set_on(objects.volume()));
        match attached {
            Ok(()) => NtStatus::STATUS_SUCCESS,
            Err(status) => status,
        }
    }

    fn teardown_start(objects: RelatedObjects<'_>, _reason: u32) {
        if let Ok(context) = VolumeContextRef::get(objects.filter(), objects.volume()) {
            context.mark_dismounted();
        }
    }
}

impl UnloadHandler for Odxflt {
    fn unload(_flags: u32) -> NtStatus {
        registration::unload();
        NtStatus::STATUS_SUCCESS
    }
}
