//! Per-volume statistics: what happened to every offload request odxflt saw. Lock-free
//! (relaxed atomic counters: each counter is exact, a snapshot is not a single instant), no
//! allocation, so the driver can keep one in each volume context and update it at DISPATCH_LEVEL.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::ctl::OffloadOp;
use crate::policy::Governed;
use crate::status::{NtStatus, STATUS_COUNT};
use crate::verdict::OffloadVerdict;

/// Per-status buckets: one per row of `STATUS_TABLE`, and a last one for any other status.
pub const STATUS_BUCKETS: usize = STATUS_COUNT + 1;

/// The bucket of a status.
#[must_use]
pub fn status_bucket(status: NtStatus) -> usize {
    status.table_index().unwrap_or(STATUS_COUNT)
}

/// Counters of one operation.
#[derive(Debug)]
pub struct OpStats {
    seen: AtomicU64,
    forwarded: AtomicU64,
    completed: AtomicU64,
    would_refuse: AtomicU64,
    truncated: AtomicU64,
    failed_below: AtomicU64,
    bytes_offloaded: AtomicU64,
    fact_failed: AtomicU64,
    completed_by_status: [AtomicU64; STATUS_BUCKETS],
    below_by_status: [AtomicU64; STATUS_BUCKETS],
}

/// A plain copy of [`OpStats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct OpCounts {
    /// Offload requests seen.
    pub seen: u64,
    /// Sent down to the file system (including monitor mode and [`fact_failed`](Self::fact_failed)
    /// pass-through): `seen = forwarded + completed`.
    pub forwarded: u64,
    /// Completed by odxflt in pre-operation (refusals, zero-length and zero-token answers).
    pub completed: u64,
    /// Monitor mode: requests enforce mode would have completed with a failure.
    pub would_refuse: u64,
    /// Forwarded requests that succeeded for fewer bytes than the caller asked.
    pub truncated: u64,
    /// Forwarded requests the layers below failed.
    pub failed_below: u64,
    /// Bytes tokenised (read) or written (write) by successful forwarded requests.
    pub bytes_offloaded: u64,
    /// Passed through: a fact query failed, so the request went down untouched and the file
    /// system decided (in enforce mode without a post-operation, so its answer is not in
    /// `truncated`, `failed_below` or `bytes_offloaded`). Included in `forwarded`.
    pub fact_failed: u64,
    /// Completions by odxflt, by status bucket.
    pub completed_by_status: [u64; STATUS_BUCKETS],
    /// Failures from below, by (final, mapped) status bucket.
    pub below_by_status: [u64; STATUS_BUCKETS],
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

fn bump_bucket(buckets: &[AtomicU64; STATUS_BUCKETS], status: NtStatus) {
    if let Some(counter) = buckets.get(status_bucket(status)) {
        bump(counter, 1);
    }
}

impl OpStats {
    /// All zero.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            seen: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            would_refuse: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            failed_below: AtomicU64::new(0),
            bytes_offloaded: AtomicU64::new(0),
            fact_failed: AtomicU64::new(0),
            completed_by_status: [const { AtomicU64::new(0) }; STATUS_BUCKETS],
            below_by_status: [const { AtomicU64::new(0) }; STATUS_BUCKETS],
        }
    }

    /// Sets every counter to zero (a volume slot reused for another volume).
    pub fn reset(&self) {
        let zero = |c: &AtomicU64| c.store(0, Ordering::Relaxed);
        zero(&self.seen);
        zero(&self.forwarded);
        zero(&self.completed);
        zero(&self.would_refuse);
        zero(&self.truncated);
        zero(&self.failed_below);
        zero(&self.bytes_offloaded);
        zero(&self.fact_failed);
        self.completed_by_status.iter().for_each(zero);
        self.below_by_status.iter().for_each(zero);
    }

    /// A copy of the counters.
    #[must_use]
    pub fn counts(&self) -> OpCounts {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        OpCounts {
            seen: load(&self.seen),
            forwarded: load(&self.forwarded),
            completed: load(&self.completed),
            would_refuse: load(&self.would_refuse),
            truncated: load(&self.truncated),
            failed_below: load(&self.failed_below),
            bytes_offloaded: load(&self.bytes_offloaded),
            fact_failed: load(&self.fact_failed),
            completed_by_status: self.completed_by_status.each_ref().map(load),
            below_by_status: self.below_by_status.each_ref().map(load),
        }
    }
}

impl Default for OpStats {
    fn default() -> Self {
        Self::new()
    }
}

/// Counters of one volume.
#[derive(Debug, Default)]
pub struct VolumeStats {
    /// `FSCTL_OFFLOAD_READ`.
    pub read: OpStats,
    /// `FSCTL_OFFLOAD_WRITE`.
    pub write: OpStats,
}

impl VolumeStats {
    /// All zero.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            read: OpStats::new(),
            write: OpStats::new(),
        }
    }

    /// Sets every counter of both operations to zero.
    pub fn reset(&self) {
        self.read.reset();
        self.write.reset();
    }

    /// The counters of `op`.
    #[must_use]
    pub const fn op(&self, op: OffloadOp) -> &OpStats {
        match op {
            OffloadOp::Read => &self.read,
            OffloadOp::Write => &self.write,
        }
    }

    /// Records the pre-operation outcome.
    pub fn on_pre_operation(&self, op: OffloadOp, governed: &Governed) {
        let s = self.op(op);
        bump(&s.seen, 1);
        match governed {
            Governed::Veto(status) => {
                bump(&s.completed, 1);
                bump_bucket(&s.completed_by_status, *status);
            }
            Governed::Enforce(decision) => {
                match decision.verdict.completion_status() {
                    Some(status) => {
                        bump(&s.completed, 1);
                        bump_bucket(&s.completed_by_status, status);
                    }
                    None => bump(&s.forwarded, 1),
                }
                if decision.verdict.passes_through() {
                    bump(&s.fact_failed, 1);
                }
            }
            Governed::Observe { would } => {
                bump(&s.forwarded, 1);
                if would
                    .verdict
                    .completion_status()
                    .is_some_and(|st| !st.is_success())
                {
                    bump(&s.would_refuse, 1);
                }
                if would.verdict.passes_through() {
                    bump(&s.fact_failed, 1);
                }
            }
        }
    }

    /// Records the post-operation outcome of a forwarded request: the final status, the bytes
    /// asked for and the bytes the answer covers.
    pub fn on_post_operation(&self, op: OffloadOp, status: NtStatus, asked: u64, done: u64) {
        let s = self.op(op);
        if status.is_success() {
            bump(&s.bytes_offloaded, done);
            if done < asked {
                bump(&s.truncated, 1);
            }
        } else {
            bump(&s.failed_below, 1);
            bump_bucket(&s.below_by_status, status);
        }
    }
}

/// Whether a verdict would complete the request with a failure (for monitor-mode counting).
#[must_use]
pub fn refuses(verdict: &OffloadVerdict) -> bool {
    verdict.completion_status().is_some_and(|s| !s.is_success())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{Check, Decision};
    use crate::verdict::{Completion, Verdict};

    fn completed(status: NtStatus) -> Governed {
        Governed::Enforce(Decision {
            verdict: OffloadVerdict::Read(Verdict::Complete(Completion::status(status))),
            check: Check::Alignment,
        })
    }

    #[test]
    fn pre_and_post_operation_outcomes_land_in_their_counters() {
        let v = VolumeStats::new();
        v.on_pre_operation(
            OffloadOp::Read,
            &completed(NtStatus::STATUS_INVALID_PARAMETER),
        );
        v.on_pre_operation(
            OffloadOp::Read,
            &Governed::Veto(NtStatus::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED),
        );
        v.on_post_operation(OffloadOp::Read, NtStatus::STATUS_SUCCESS, 8192, 4096);
        v.on_post_operation(OffloadOp::Read, NtStatus::STATUS_INVALID_TOKEN, 8192, 0);
        v.on_post_operation(OffloadOp::Read, NtStatus(0xC000_0185), 8192, 0);
        let c = v.read.counts();
        assert_eq!((c.seen, c.completed, c.forwarded), (2, 2, 0));
        assert_eq!(
            (c.truncated, c.bytes_offloaded, c.failed_below),
            (1, 4096, 2)
        );
        let idx = |s: NtStatus| s.table_index().unwrap();
        assert_eq!(
            c.completed_by_status[idx(NtStatus::STATUS_INVALID_PARAMETER)],
            1
        );
        assert_eq!(
            c.completed_by_status[idx(NtStatus::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED)],
            1
        );
        assert_eq!(c.below_by_status[idx(NtStatus::STATUS_INVALID_TOKEN)], 1);
        assert_eq!(
            c.below_by_status[STATUS_COUNT], 1,
            "unknown statuses land in the last bucket"
        );
        assert_eq!(v.write.counts(), OpCounts::default());
    }

    #[test]
    fn a_failed_fact_query_is_forwarded_and_counted_as_fact_failed() {
        let v = VolumeStats::new();
        let passed = Decision {
            verdict: OffloadVerdict::Write(Verdict::PassThrough),
            check: Check::FactUnavailable(crate::facts::FactKind::StreamSizes),
        };
        v.on_pre_operation(OffloadOp::Write, &Governed::Enforce(passed));
        v.on_pre_operation(OffloadOp::Write, &Governed::Observe { would: passed });
        let c = v.write.counts();
        assert_eq!(
            (
                c.seen,
                c.forwarded,
                c.completed,
                c.fact_failed,
                c.would_refuse
            ),
            (2, 2, 0, 2, 0)
        );
        v.reset();
        assert_eq!(v.write.counts(), OpCounts::default());
    }

    #[test]
    fn monitor_counts_would_refuse_and_forwards() {
        let v = VolumeStats::new();
        let Governed::Enforce(d) = completed(NtStatus::STATUS_FILE_LOCK_CONFLICT) else {
            unreachable!()
        };
        v.on_pre_operation(OffloadOp::Write, &Governed::Observe { would: d });
        let c = v.write.counts();
        assert_eq!(
            (c.seen, c.forwarded, c.would_refuse, c.completed),
            (1, 1, 1, 0)
        );
    }
}
