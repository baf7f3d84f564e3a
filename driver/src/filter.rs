//! odxflt's callbacks in safe Rust: which requests it takes, what it asks the kernel, and how it
//! obeys the core. Views and trampolines are in [`crate::ffi`]; decisions are in `odx_core`.

use odx_core::NtStatus;
use odx_core::OffloadOp;
use odx_core::Rules;
use odx_core::filter::{PreEnv, StorageAt};
use odx_core::governance::{Governance, JournalAt, JournalMode, JournalSeq};
use odx_core::iomgr::RequestorMode;
use odx_core::policy::PolicyMode;
use odx_core::stats::VolumeStats;
use odx_core::storage::StorageState;

use crate::dispatch::{self, JournalTicket, Pending, PostContext, PreAction};
use crate::facts::{KernelFacts, LockView};
use crate::ffi::callbacks::{
    CallbackData, InstanceHandler, NonPagedPool, OperationHandler, PreOutcome, RelatedObjects,
    UnloadHandler,
};
use crate::ffi::context::InstanceContextRef;
use crate::ffi::kernel::{interrupt_time, system_time};
use crate::ffi::names::{requestor_process_id, volume_names};
use crate::ffi::query::{RequestSource, raw_volume};
use crate::ffi::registration;
use crate::ffi::rules;
use crate::ffi::storage::query_storage;
use crate::volume::InstanceContext;
use crate::volumes::{JOURNAL, VOLUMES};

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

    // Nothing configured: no rule in force and `Parameters\Journal` = 0 (two loads). Then the
    // request takes `pre_plain`, the core's plain pre-operation, which is what the governed one
    // does with nothing configured; a request racing a rule change sees the rules before or
    // after it, as with the lock.
    #[inline(always)]
    fn plain() -> bool {
        nothing_configured(VOLUMES.journal_mode(), rules::none)
    }

    // Inlined into its callback body, as `pre` is.
    #[inline(always)]
    fn pre_plain(data: &mut CallbackData<'_>, objects: RelatedObjects<'_>) -> PreOutcome<Pending> {
        let Some((op, instance)) = offload_request(data, objects) else {
            return PreOutcome::NoCallback;
        };
        let (slot, mode, stats, storage) = volume_state(&instance);
        let source = RequestSource::new(objects, instance.facts(), storage, data.request());
        // No rules: only the checks ask the stream sizes, once; nothing is kept.
        let mut facts = KernelFacts::unshared(source, LockView::FileSystemDecides);
        let action =
            dispatch::pre_operation_plain(op, mode, &mut data.system_buffer(), &mut facts, stats);
        outcome(action, slot)
    }

    // Inlined into the callback trampoline: one frame instead of two (their return slot,
    // shadow space and saved registers once), 960 B instead of 1024 B live across the checks'
    // kernel calls (odx-pe-harness stack analysis).
    #[inline(always)]
    fn pre(data: &mut CallbackData<'_>, objects: RelatedObjects<'_>) -> PreOutcome<Pending> {
        let Some((op, instance)) = offload_request(data, objects) else {
            return PreOutcome::NoCallback;
        };
        let (slot, mode, stats, storage) = volume_state(&instance);
        let raw = data.request();
        let requestor = if data.requestor_kernel() {
            RequestorMode::Kernel
        } else {
            RequestorMode::User
        };
        let source = RequestSource::new(objects, instance.facts(), storage, raw);
        let mut facts = KernelFacts::new(source, LockView::FileSystemDecides);
        let mut buffer = data.system_buffer();
        // No rules in force: no lock, no evaluation. Otherwise the whole core pre-operation
        // runs under the shared push lock (ffi::rules: why that cannot deadlock), released
        // before the facts (and the names they hold) are dropped. One call site, so the
        // dispatch stays inlined (its frame would otherwise be a second 500 B on the stack).
        let rules = (!rules::none()).then(rules::Shared::acquire);
        let env = PreEnv {
            mode,
            rules: &Rules::DOCUMENTED,
            stats,
            governance: rules.as_ref().map(|shared| Governance {
                rules: shared.set(),
                volume: instance.names(),
                requestor,
            }),
            // `Parameters\Journal`: off, every decision, or every decision named.
            journal: match VOLUMES.journal_mode() {
                JournalMode::Off => None,
                mode => Some(JournalAt {
                    log: &JOURNAL,
                    time: system_time(),
                    volume: slot.unwrap_or(u32::MAX),
                    process_id: requestor_process_id(raw),
                    names: mode.names(),
                }),
            },
        };
        let action = dispatch::pre_operation(op, &mut buffer, &mut facts, &env);
        drop(rules);
        outcome(action, slot)
    }

    // Inlined into the callback trampoline, as `pre` is: one frame and no call on every
    // completion (18 of the image's instructions per forwarded request,
    // scripts/callgrind-image.sh).
    #[inline(always)]
    fn post(data: &mut CallbackData<'_>, pending: Pending) {
        let (below, information) = data.io_status();
        // By slot number: no context lookup at DISPATCH_LEVEL, nothing to release. The storage
        // state learns the refusals of the storage's answer.
        let stats = VOLUMES.stats(pending.slot);
        let storage = VOLUMES.storage(pending.slot).map(|state| StorageAt {
            state,
            now: interrupt_time(),
        });
        let (status, information) = complete(data, &pending, below, information, stats, storage);
        data.set_io_status(status, information);
    }

    // Monitored (the request untouched, its answer only watched): it goes down without a
    // post-operation, as a monitor never changes an answer; counted forwarded, its record left
    // pending like any pass-through's. Enforced (its input may be trimmed, its answer must be
    // mapped): it completes with STATUS_INSUFFICIENT_RESOURCES (`NO_CONTEXT_STATUS`, a
    // documented offload status: copy engines fall back) as if the layer below had answered
    // it: the core's completion maps it (a failure without a table row stays itself), the
    // counters count it as failed below and its journal record is completed with it. It is not
    // the storage's answer: nothing is learnt from it. Out of line and cold: the pre-operation
    // bodies that may call it keep their frames and their straight-line code (16 instructions
    // and 32 B of stack when it was inlined into them); `ffi::callbacks::abandon` is its cold
    // caller.
    #[inline(always)]
    fn abandoned(data: &mut CallbackData<'_>, pending: &Pending) -> Option<(NtStatus, usize)> {
        if matches!(pending.context, PostContext::Observe { .. }) {
            return None;
        }
        let stats = VOLUMES.stats(pending.slot);
        Some(complete(
            data,
            pending,
            Self::NO_CONTEXT_STATUS,
            0,
            stats,
            None,
        ))
    }
}

/// Post-operation's work on the answer `below` / `information`: the core's completion mapping,
/// the volume's counters and the journal record.
#[inline(always)]
fn complete(
    data: &mut CallbackData<'_>,
    pending: &Pending,
    below: NtStatus,
    information: usize,
    stats: Option<&VolumeStats>,
    storage: Option<StorageAt<'_>>,
) -> (NtStatus, usize) {
    let action = dispatch::post_operation(
        &pending.context,
        below,
        information,
        &mut data.system_buffer(),
        stats,
        storage,
        pending.journal.map(|ticket| JournalSeq {
            log: &JOURNAL,
            seq: ticket.seq(),
        }),
    );
    (action.status, action.information)
}

/// No journal (`Parameters\Journal` = 0) and no rule in force (`rules_none`, asked only when the
/// journal is off): the request takes the plain pre-operation.
#[inline(always)]
fn nothing_configured(journal: JournalMode, rules_none: impl FnOnce() -> bool) -> bool {
    journal == JournalMode::Off && rules_none()
}

/// What every offload request pays before either pre-operation: the operation (`None` for any
/// other control code) and the instance context. An instance without a context (setup failed
/// half-way) or being torn down is not governed: the request passes through untouched, and the
/// file system answers it. The reference is held until pre-operation returns.
#[inline(always)]
fn offload_request(
    data: &CallbackData<'_>,
    objects: RelatedObjects<'_>,
) -> Option<(OffloadOp, InstanceContextRef)> {
    let op = data.fs_control().and_then(|control| control.offload_op())?;
    let instance = InstanceContextRef::get(objects.instance()).ok()?;
    (!instance.torn_down()).then_some((op, instance))
}

/// The instance's volume as both pre-operations need it: its slot, mode, counters and storage
/// state (a volume without a slot reads a shared static state: `VOLUMES.storage_or`).
#[inline(always)]
fn volume_state(
    instance: &InstanceContextRef,
) -> (
    Option<u32>,
    PolicyMode,
    Option<&'static VolumeStats>,
    &'static StorageState,
) {
    let slot = instance.slot();
    (
        slot,
        VOLUMES.policy(slot),
        VOLUMES.stats(slot),
        VOLUMES.storage_or(slot, instance.capability()),
    )
}

/// The callback's answer for the core's.
#[inline(always)]
fn outcome(action: PreAction, slot: Option<u32>) -> PreOutcome<Pending> {
    match action {
        PreAction::Complete {
            status,
            information,
        } => PreOutcome::Complete(status, information),
        // A trimmed `CopyLength` is rewritten in the system buffer, not in the parameter
        // block: the callback data is not dirty (FltSetCallbackDataDirty is for changes to
        // the parameter block or the target).
        PreAction::Forward {
            context,
            journal_seq,
            ..
        } => PreOutcome::WithCallback(Pending {
            context,
            slot,
            journal: journal_seq.and_then(JournalTicket::new),
        }),
        PreAction::PassThrough => PreOutcome::NoCallback,
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
        let (capability, dos) = query_storage(objects);
        let (device, guid) = volume_names(objects.volume());
        let slot = VOLUMES.attach(capability);
        let attached = InstanceContextRef::allocate(
            objects.filter(),
            InstanceContext::new(facts, capability, slot).with_names(device, dos, guid),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_no_journal_and_no_rules_take_the_plain_body() {
        // `Parameters\Journal` as the registry holds it: 0 is off; 1, 2, any other value and an
        // absent or mistyped value journal (JournalMode::from_dword).
        for (dword, off) in [
            (Some(0), true),
            (Some(1), false),
            (Some(2), false),
            (Some(7), false),
            (None, false),
        ] {
            let journal = JournalMode::from_dword(dword);
            for rules_none in [true, false] {
                assert_eq!(
                    nothing_configured(journal, || rules_none),
                    off && rules_none,
                    "Journal {dword:?}, no rules {rules_none}"
                );
            }
        }
        // With the journal on, whether rules are in force is not even asked.
        assert!(!nothing_configured(
            JournalMode::Decisions,
            || unreachable!()
        ));
    }
}
