//! Issue 13 end to end through odxflt's two callbacks, the way the driver and the simulator run
//! them: the volume fact carries `StorageState::offload_flags(now)` in place of constant offload
//! bits, post-operation gets `StorageAt`. A refusal from the storage is answered
//! `STATUS_NOT_SUPPORTED` and starts that operation's back-off; while it lasts the request is
//! refused at `OffloadSupported` (MS-FSA read 2 / write 3) before any file fact is asked; when it
//! ends the request is forwarded again.

mod common;

use common::*;
use odx_core::filter::*;
use odx_core::flags::VolumeFlags;
use odx_core::policy::PolicyMode;
use odx_core::stats::VolumeStats;
use odx_core::storage::{CopyOffloadLimits, StorageCapability, StorageState, TICKS_PER_SECOND};
use odx_core::*;
use zerocopy::IntoBytes;

const LIMITS: CopyOffloadLimits = CopyOffloadLimits {
    maximum_token_lifetime: 300,
    default_token_lifetime: 30,
    maximum_transfer_size: 256 * MIB,
    optimal_transfer_count: 256 * MIB,
    maximum_data_descriptors: 64,
    maximum_transfer_length_per_descriptor: 1 << 28,
    optimal_transfer_length_per_descriptor: 1 << 28,
    optimal_transfer_length_granularity: 1,
};

const BOTH: VolumeFlags =
    VolumeFlags::OFFLOAD_READ_SUPPORTED.union(VolumeFlags::OFFLOAD_WRITE_SUPPORTED);

/// The facts a driver gathers: the cached volume with the storage's offload bits at `now`.
fn facts_at(state: &StorageState, now: u64) -> Facts {
    Facts::default().with_volume(|v| {
        v.flags.remove(BOTH);
        v.flags |= state.offload_flags(now);
    })
}

struct Outcome {
    pre: PreOp,
    asked: Vec<FactKind>,
    /// `(status, information)` after post-operation, for forwarded requests.
    post: Option<(NtStatus, usize)>,
}

/// One request through pre-operation and, if forwarded, post-operation with `below` as the
/// storage's answer.
fn request(
    op: OffloadOp,
    length: u64,
    output_len: usize,
    state: &StorageState,
    now: u64,
    mode: PolicyMode,
    below: NtStatus,
) -> Outcome {
    let input = match op {
        OffloadOp::Read => read_input(0, length).as_bytes().to_vec(),
        OffloadOp::Write => write_input(0, length, 0).as_bytes().to_vec(),
    };
    let mut buffer = vec![0u8; input.len().max(output_len)];
    buffer[..input.len()].copy_from_slice(&input);
    let mut facts = facts_at(state, now);
    let stats = VolumeStats::new();
    let pre = pre_operation(
        BufferedRequest {
            op,
            buffer: &mut buffer,
            input_len: input.len(),
            output_len,
        },
        mode,
        &mut facts,
        &Rules::DOCUMENTED,
        Some(&stats),
    );
    let post = match &pre {
        PreOp::Forward { context, .. } => Some(post_operation(
            context,
            LowerAnswer {
                status: below,
                information: 0,
                buffer: &mut buffer,
                output_len,
            },
            &Rules::DOCUMENTED,
            Some(&stats),
            Some(StorageAt { state, now }),
            None,
        )),
        PreOp::Complete { .. } | PreOp::PassThrough { .. } => None,
    };
    Outcome {
        pre,
        asked: facts.asked,
        post,
    }
}

fn refused_early(o: &Outcome) -> bool {
    o.pre
        == PreOp::Complete {
            status: NtStatus::STATUS_NOT_SUPPORTED,
            information: 0,
            check: Some(Check::OffloadSupported),
        }
        && !o.asked.iter().any(|k| {
            matches!(
                k,
                FactKind::StreamKind | FactKind::StreamSizes | FactKind::Locks
            )
        })
}

const fn forwarded(o: &Outcome) -> bool {
    matches!(o.pre, PreOp::Forward { .. })
}

const S: u64 = TICKS_PER_SECOND;
const DFNS: NtStatus = NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED;
const NS: NtStatus = NtStatus::STATUS_NOT_SUPPORTED;
const OK: NtStatus = NtStatus::STATUS_SUCCESS;
const E: PolicyMode = PolicyMode::Enforce;

#[test]
fn a_refusal_backs_off_the_operation_then_it_is_forwarded_again() {
    let state = StorageState::new(StorageCapability::Supported(LIMITS), 180);
    let t0 = 1_000 * S;
    // Forwarded; the storage's DEVICE_FEATURE_NOT_SUPPORTED reaches the caller as NOT_SUPPORTED.
    let first = request(OffloadOp::Write, 65536, 16, &state, t0, E, DFNS);
    assert!(forwarded(&first));
    assert_eq!(first.post, Some((NS, 0)));
    assert_eq!(
        state.backoff_until(OffloadOp::Write, t0),
        Some(t0 + 180 * S)
    );
    // While the back-off lasts: refused early, before any file fact — a zero-length write with
    // no output buffer too (MS-FSA write 3 precedes write 5 and write 9).
    for (now, length, out) in [
        (t0 + 1, 65536, 16),
        (t0 + 90 * S, 0, 0),
        (t0 + 180 * S - 1, 65536, 16),
    ] {
        let o = request(OffloadOp::Write, length, out, &state, now, E, OK);
        assert!(
            refused_early(&o),
            "at {now}: {:?} asked {:?}",
            o.pre,
            o.asked
        );
        assert_eq!(o.asked, vec![FactKind::Volume, FactKind::Handle]);
    }
    // Reads have their own back-off, which never started.
    assert!(forwarded(&request(
        OffloadOp::Read,
        65536,
        528,
        &state,
        t0 + 1,
        E,
        OK
    )));
    // The period ends: forwarded again; a second refusal backs off again from then.
    let t1 = t0 + 180 * S;
    let again = request(OffloadOp::Write, 65536, 16, &state, t1, E, NS);
    assert!(forwarded(&again));
    assert_eq!(again.post, Some((NS, 0)));
    assert!(refused_early(&request(
        OffloadOp::Write,
        65536,
        16,
        &state,
        t1 + 1,
        E,
        OK
    )));
    assert_eq!(
        state.backoff_until(OffloadOp::Write, t1),
        Some(t1 + 180 * S)
    );
    // Once it ends and the storage accepts, nothing is backed off any more.
    let t2 = t1 + 180 * S;
    let ok = request(OffloadOp::Write, 65536, 16, &state, t2, E, OK);
    assert!(forwarded(&ok));
    assert_eq!(state.offload_flags(t2 + 1), BOTH);
}

#[test]
fn storage_whose_descriptor_query_said_not_supported_is_refused_for_good() {
    let state = StorageState::new(StorageCapability::from_query(NS, &[]), 180);
    for now in [0, 3_600 * S, 86_400 * S] {
        for (op, out) in [(OffloadOp::Read, 528), (OffloadOp::Write, 16)] {
            for (length, out) in [(65536, out), (0, out), (65536, 0)] {
                let o = request(op, length, out, &state, now, E, OK);
                assert!(refused_early(&o), "{op:?} {length} {out}: {:?}", o.pre);
            }
        }
    }
}

#[test]
fn an_unanswered_query_forwards_and_a_zero_period_never_backs_off() {
    let unknown = StorageState::new(
        StorageCapability::from_query(NtStatus::STATUS_INVALID_DEVICE_REQUEST, &[]),
        0,
    );
    for now in [0, 1, 2] {
        let o = request(OffloadOp::Read, 65536, 528, &unknown, now, E, DFNS);
        assert!(forwarded(&o), "the storage is asked every time");
        assert_eq!(o.post, Some((NS, 0)), "and still answered NOT_SUPPORTED");
    }
    assert_eq!(unknown.backoff_until(OffloadOp::Read, 0), None);
}

#[test]
fn other_failures_and_successes_start_no_back_off() {
    let state = StorageState::new(StorageCapability::Supported(LIMITS), 180);
    for below in [
        OK,
        NtStatus::STATUS_INVALID_TOKEN,
        NtStatus::STATUS_INVALID_DEVICE_REQUEST,
        NtStatus::STATUS_DEVICE_UNREACHABLE,
    ] {
        assert!(forwarded(&request(
            OffloadOp::Write,
            65536,
            16,
            &state,
            5,
            E,
            below
        )));
    }
    assert_eq!(state.offload_flags(6), BOTH);
}

#[test]
fn monitor_mode_passes_the_refusal_through_unmapped_but_still_learns() {
    let state = StorageState::new(StorageCapability::NotSupported, 180);
    let o = request(
        OffloadOp::Read,
        65536,
        528,
        &state,
        7,
        PolicyMode::Monitor,
        DFNS,
    );
    assert!(
        forwarded(&o),
        "monitor never refuses, not even for a known no-offload storage"
    );
    assert_eq!(o.post, Some((DFNS, 0)), "and never changes an answer");
    let learned = StorageState::new(StorageCapability::Unknown, 180);
    let _ = request(
        OffloadOp::Read,
        65536,
        528,
        &learned,
        7,
        PolicyMode::Monitor,
        DFNS,
    );
    assert_eq!(learned.backoff_until(OffloadOp::Read, 7), Some(7 + 180 * S));
    // Enforce on the same state refuses at once.
    assert!(refused_early(&request(
        OffloadOp::Read,
        65536,
        528,
        &learned,
        8,
        E,
        OK
    )));
}
