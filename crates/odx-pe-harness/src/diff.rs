//! The differential run: every step of a scenario goes through the simulator (`odx_sim::Stack`)
//! and through the loaded odxflt.sys over an identical simulated volume; status, `Information`
//! and output bytes must be identical.
//!
//! Tokens carry 32 random key bytes the storage draws for every populate, so the two runs can
//! never produce the same token bytes. Outputs are compared after renaming keys: on each side
//! every simulated-array token whose bytes are exactly `token_for_key(key)` has its key replaced
//! by the ordinal of that key's first appearance on that side. Two outputs are then equal iff
//! they are byte-identical up to one consistent renaming of random keys — a token reused,
//! invalidated or differing in any other byte still shows. Inputs need no renaming: each side
//! sends the tokens its own storage issued, and forged tokens are the same bytes on both sides.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use odx_core::engine::{SIMULATED_TOKEN_TYPE, TOKEN_KEY_LEN, TokenKey, key_of, token_for_key};
use odx_core::flags::{AccessMask, FileAttributes, StreamMarkers};
use odx_core::governance::JournalMode;
use odx_core::iomgr::{RequestorMode, io_manager_precheck};
use odx_core::policy::PolicyMode;
use odx_core::port::governance::RulesReply;
use odx_core::wire::{
    OffloadReadInput, OffloadReadOutput, OffloadWriteInput, OffloadWriteOutput, StorageOffloadToken,
};
use odx_core::{FSCTL_OFFLOAD_READ, FSCTL_OFFLOAD_WRITE, FileSystemKind, NtStatus, OffloadOp};
use odx_core::{VolumeFacts, WireStruct};
use odx_sim::scenario::{Access, Expect, Op, Requestor, Scenario, StepSpec, StepStatus, compare};
use odx_sim::{FileId, HandleId, MemStore, Stack, VolumeConfig};

use crate::below::file_system_below;
use crate::driver::{FileObjectFacts, FsControlRequest, LoadedDriver, PreResult};
use crate::journal::{
    JournalComparison, JournalDifference, JournalReport, KnownJournalDifference, RecordStep,
};
use crate::kernel::{self, FileInfo, Leaks, VolumeInfo};
use crate::layouts::shapes;

/// `FSCTL_GET_RETRIEVAL_POINTERS` (winioctl.h: CTL_CODE(FILE_DEVICE_FILE_SYSTEM, 28,
/// METHOD_NEITHER, FILE_ANY_ACCESS)): an FSCTL odxflt must not look at.
const FSCTL_GET_RETRIEVAL_POINTERS: u32 = 0x0009_0073;

/// How a documented step differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Difference {
    /// The final statuses differ (exactly these two).
    Status {
        /// The simulator's status.
        simulator: NtStatus,
        /// The binary's status.
        binary: NtStatus,
    },
    /// Status, `Information` and output are identical; the facts gathered on the way differ.
    FactsOnly,
}

/// A step where the binary legitimately answers differently from the simulator, with the reason.
/// The test fails when a listed difference does not occur (the list never goes stale) and when
/// any unlisted one does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownDifference {
    /// Scenario file name (`lock_before_eof.toml`).
    pub scenario: &'static str,
    /// 0-based step index.
    pub step: usize,
    /// What differs.
    pub difference: Difference,
    /// Why.
    pub reason: &'static str,
}

const LOCKS: &str = "odxflt does not shadow byte-range locks (docs/driver.md): its core sees no \
conflict and refuses the request at end of file, before NTFS could apply the lock; the simulator's \
filter sees the lock and decides it first (MS-FSA order)";
const METADATA: &str = "NTFS metadata files are not detectable by odxflt (docs/driver.md): \
the binary also asks the stream sizes and forwards; NTFS refuses with the same \
STATUS_OFFLOAD_*_FILE_NOT_SUPPORTED";
const MAX_FILE_SIZE: &str = "[volume] max_file_size = 2 MiB is no NTFS volume's: odxflt derives \
MaxFileSize from the cluster size ((2^32 - 1) clusters), so the binary's limit is 2 TiB or more \
and the request fails later, at end of file";

/// Why a size rule costs the binary one `FileStandardInformation` query where the simulator's
/// facts count two.
const SIZES_CACHED: &str = "facts only: a size rule and the checks both ask the stream sizes; \
odxflt's KernelFacts keeps the first answer for the request (one FltQueryInformationFile), the \
simulator's model counts each ask";

/// The documented differences (docs/pe-harness.md, "Known differences").
pub const KNOWN_DIFFERENCES: &[KnownDifference] = &[
    KnownDifference {
        scenario: "lock_before_eof.toml",
        step: 0,
        difference: Difference::Status {
            simulator: NtStatus::STATUS_FILE_LOCK_CONFLICT,
            binary: NtStatus::STATUS_END_OF_FILE,
        },
        reason: LOCKS,
    },
    KnownDifference {
        scenario: "stream_metadata.toml",
        step: 0,
        difference: Difference::FactsOnly,
        reason: METADATA,
    },
    KnownDifference {
        scenario: "stream_metadata.toml",
        step: 2,
        difference: Difference::FactsOnly,
        reason: METADATA,
    },
    KnownDifference {
        scenario: "rules_size_threshold.toml",
        step: 1,
        difference: Difference::FactsOnly,
        reason: SIZES_CACHED,
    },
    KnownDifference {
        scenario: "rules_size_threshold.toml",
        step: 3,
        difference: Difference::FactsOnly,
        reason: SIZES_CACHED,
    },
    KnownDifference {
        scenario: "rules_size_threshold.toml",
        step: 4,
        difference: Difference::FactsOnly,
        reason: SIZES_CACHED,
    },
    KnownDifference {
        scenario: "rules_size_threshold.toml",
        step: 5,
        difference: Difference::FactsOnly,
        reason: SIZES_CACHED,
    },
    KnownDifference {
        scenario: "write_max_file_size.toml",
        step: 0,
        difference: Difference::Status {
            simulator: NtStatus::STATUS_INVALID_PARAMETER,
            binary: NtStatus::STATUS_END_OF_FILE,
        },
        reason: MAX_FILE_SIZE,
    },
];

/// Scenarios whose statistics, read through the image's port, legitimately differ from the
/// simulator's (same answers, decided at another layer). The run fails if a listed scenario's
/// counters agree (the entry is stale) or if any other scenario's differ.
pub const KNOWN_STATS_DIFFERENCES: &[(&str, &str)] = &[
    ("lock_edges.toml", STATS_LOCKS),
    ("lock_other_exclusive.toml", STATS_LOCKS),
    ("lock_other_shared.toml", STATS_LOCKS),
    ("lock_self.toml", STATS_LOCKS),
    ("lock_self_other_key.toml", STATS_LOCKS),
    ("order_write.toml", STATS_LOCKS),
    ("dismounted.toml", STATS_TEARDOWN),
];

const STATS_LOCKS: &str = "odxflt does not shadow byte-range locks: a locked range is forwarded and refused by NTFS (counted as forwarded / failed below), where the simulator's filter sees the lock and completes the request itself (counted as completed)";
const STATS_TEARDOWN: &str = "after instance teardown starts odxflt passes requests through untouched and uncounted; the simulator's filter answers them for the dismounted volume and counts them";

const JOURNAL_LOCKS: &str = "odxflt does not shadow byte-range locks: it forwards the locked \
range (decided by its check Forward) and NTFS refuses it with the same \
STATUS_FILE_LOCK_CONFLICT; the simulator's filter sees the lock and refuses it itself (check \
LockConflict)";
const JOURNAL_LOCKS_TRIMMED: &str = "odxflt does not shadow byte-range locks: it trims the write \
at end of file (1 MiB) and forwards it (check Forward; the record keeps the caller's 2 MiB), and \
NTFS refuses it with the same STATUS_FILE_LOCK_CONFLICT. The simulator's filter sees the lock \
and refuses the 2 MiB itself (check LockConflict)";
const JOURNAL_METADATA: &str = "NTFS metadata files are not detectable by odxflt: it forwards \
(check Forward) and NTFS refuses with the same STATUS_OFFLOAD_*_FILE_NOT_SUPPORTED; the \
simulator's filter knows the stream kind (check StreamKind)";
const JOURNAL_NOT_ATTACHED: &str = "odxflt attaches only to NTFS and ReFS (instance setup \
declines the volume), so the image never sees the request and journals nothing; the simulator's \
filter sits on every volume and journals its refusal (check FileSystemImplementsOffload)";
const JOURNAL_TEARDOWN: &str = "after instance teardown starts odxflt passes requests through \
untouched, unjournaled; the simulator's filter answers them for the dismounted volume (check \
VolumeMounted) and journals them";

/// The documented differences between the journals (docs/pe-harness.md, "Known differences").
/// A record of a step listed in [`KNOWN_DIFFERENCES`] with two statuses may differ in exactly
/// those statuses without an entry here; every other field of any record must agree unless it
/// is listed here, with both values.
pub const KNOWN_JOURNAL_DIFFERENCES: &[KnownJournalDifference] = &[
    KnownJournalDifference {
        scenario: "dismounted.toml",
        difference: JournalDifference::ImageKeepsNone,
        reason: JOURNAL_TEARDOWN,
    },
    KnownJournalDifference {
        scenario: "fs_other.toml",
        difference: JournalDifference::ImageKeepsNone,
        reason: JOURNAL_NOT_ATTACHED,
    },
    KnownJournalDifference {
        scenario: "lock_before_eof.toml",
        difference: JournalDifference::Fields {
            step: 0,
            fields: &[("decided_by", "check LockConflict", "check EndOfFile")],
        },
        reason: LOCKS,
    },
    KnownJournalDifference {
        scenario: "lock_edges.toml",
        difference: JournalDifference::Fields {
            step: 2,
            fields: LOCK_FORWARDED,
        },
        reason: JOURNAL_LOCKS,
    },
    KnownJournalDifference {
        scenario: "lock_other_exclusive.toml",
        difference: JournalDifference::Fields {
            step: 0,
            fields: LOCK_FORWARDED,
        },
        reason: JOURNAL_LOCKS,
    },
    KnownJournalDifference {
        scenario: "lock_other_exclusive.toml",
        difference: JournalDifference::Fields {
            step: 1,
            fields: LOCK_FORWARDED,
        },
        reason: JOURNAL_LOCKS,
    },
    KnownJournalDifference {
        scenario: "lock_other_shared.toml",
        difference: JournalDifference::Fields {
            step: 1,
            fields: LOCK_FORWARDED,
        },
        reason: JOURNAL_LOCKS,
    },
    KnownJournalDifference {
        scenario: "lock_self.toml",
        difference: JournalDifference::Fields {
            step: 2,
            fields: LOCK_FORWARDED,
        },
        reason: JOURNAL_LOCKS,
    },
    KnownJournalDifference {
        scenario: "lock_self_other_key.toml",
        difference: JournalDifference::Fields {
            step: 0,
            fields: LOCK_FORWARDED,
        },
        reason: JOURNAL_LOCKS,
    },
    KnownJournalDifference {
        scenario: "order_write.toml",
        difference: JournalDifference::Fields {
            step: 1,
            fields: LOCK_FORWARDED,
        },
        reason: JOURNAL_LOCKS,
    },
    KnownJournalDifference {
        scenario: "stream_metadata.toml",
        difference: JournalDifference::Fields {
            step: 0,
            fields: &[("decided_by", "check StreamKind", "check Forward")],
        },
        reason: JOURNAL_METADATA,
    },
    KnownJournalDifference {
        scenario: "stream_metadata.toml",
        difference: JournalDifference::Fields {
            step: 2,
            fields: &[("decided_by", "check StreamKind", "check Forward")],
        },
        reason: JOURNAL_METADATA,
    },
    KnownJournalDifference {
        scenario: "write_max_file_size.toml",
        difference: JournalDifference::Fields {
            step: 0,
            fields: &[("decided_by", "check MaxFileSize", "check EndOfFile")],
        },
        reason: MAX_FILE_SIZE,
    },
    KnownJournalDifference {
        scenario: "write_max_file_size.toml",
        difference: JournalDifference::Fields {
            step: 1,
            fields: &[("decided_by", "check LockConflict", "check Forward")],
        },
        reason: JOURNAL_LOCKS_TRIMMED,
    },
];

/// A locked range refused by the simulator's filter, forwarded by odxflt.
const LOCK_FORWARDED: &[(&str, &str, &str)] =
    &[("decided_by", "check LockConflict", "check Forward")];

/// Why a scenario with a policy other than `enforce` cannot be reproduced by the image.
pub const POLICY_NOT_IN_IMAGE: &str = "this image does not read Parameters\\DefaultPolicy (no \
ZwQueryValueKey import) and has no other way to receive a policy, so it always enforces";

/// What one side answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// `IoStatus.Status`.
    pub status: NtStatus,
    /// `IoStatus.Information`.
    pub information: usize,
    /// The output bytes, tokens renamed (see the module docs).
    pub output: Vec<u8>,
}

/// One step of the comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepReport {
    /// 0-based index.
    pub index: usize,
    /// Line in the scenario file.
    pub line: usize,
    /// Operation.
    pub op: Op,
    /// Simulator.
    pub simulator: Option<Observed>,
    /// Binary.
    pub binary: Option<Observed>,
    /// How the binary's pre-operation answered (`None`: the I/O manager failed it first).
    pub pre: Option<PreResult>,
    /// The documented difference that applies.
    pub known: Option<KnownDifference>,
    /// What did not agree.
    pub problems: Vec<String>,
    /// The kernel calls the request cost the image (when it reached the binary).
    pub cost: Option<Cost>,
}

/// What one request cost in kernel calls (issue 11: at most 2 file-system queries, 1 context
/// lookup and 1 allocation per forwarded request; a refused request allocates nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// The pre-operation's verdict.
    pub pre: Option<PreResult>,
    /// `FltQueryInformationFile` calls.
    pub file_queries: usize,
    /// `FltGetInstanceContext` calls.
    pub context_lookups: usize,
    /// `ExAllocatePoolWithTag` calls.
    pub allocations: usize,
    /// `KeQueryUnbiasedInterruptTime` calls (the storage back-off's clock).
    pub clock_reads: usize,
    /// Name queries: `FltGetFileNameInformation` and `SeLocateProcessImageName`.
    pub name_queries: usize,
    /// Every governance call: the name queries, `FltParseFileNameInformation`,
    /// `FltReleaseFileNameInformation`, `FltGetRequestorProcess`, `FltGetRequestorProcessId`,
    /// `KeQuerySystemTimePrecise`, the image buffer's `ExFreePoolWithTag(.., 0)` and the push
    /// lock.
    pub governance_calls: usize,
    /// Push-lock acquires and releases.
    pub lock_calls: usize,
}

impl Cost {
    /// The calls of one request.
    #[must_use]
    pub fn of(result: &crate::driver::FsControlResult) -> Self {
        let count = |f: fn(&kernel::Call) -> bool| result.calls.iter().filter(|c| f(c)).count();
        Self {
            pre: Some(result.pre),
            file_queries: count(|c| matches!(c, kernel::Call::QueryInformationFile(_))),
            context_lookups: count(|c| matches!(c, kernel::Call::GetInstanceContext)),
            allocations: count(|c| matches!(c, kernel::Call::AllocatePool(..))),
            clock_reads: count(|c| matches!(c, kernel::Call::QueryInterruptTime)),
            name_queries: count(|c| {
                matches!(
                    c,
                    kernel::Call::GetFileNameInformation | kernel::Call::LocateProcessImageName
                )
            }),
            governance_calls: count(|c| {
                matches!(
                    c,
                    kernel::Call::GetFileNameInformation
                        | kernel::Call::ParseFileNameInformation
                        | kernel::Call::ReleaseFileNameInformation
                        | kernel::Call::GetRequestorProcess
                        | kernel::Call::GetRequestorProcessId
                        | kernel::Call::LocateProcessImageName
                        | kernel::Call::QuerySystemTime
                        | kernel::Call::FreePool(0)
                        | kernel::Call::PushLock(_)
                )
            }),
            lock_calls: count(|c| matches!(c, kernel::Call::PushLock(_))),
        }
    }
}

/// The budget of issue 11 for a forwarded request; issue 13 adds two clock reads
/// (`KeQueryUnbiasedInterruptTime`, any IRQL, a few instructions): the volume fact in
/// pre-operation needs the time to know whether a back-off is active, post-operation needs it to
/// start one.
pub const COST_BUDGET: Cost = Cost {
    pre: None,
    file_queries: 2,
    context_lookups: 1,
    allocations: 1,
    clock_reads: 2,
    name_queries: 0,
    governance_calls: 0,
    lock_calls: 0,
};

/// `(name queries, governance calls, lock calls)` of a request.
pub type GovernanceCalls = (usize, usize, usize);

/// One scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioReport {
    /// File name.
    pub name: String,
    /// Instance setup's status.
    pub attach: NtStatus,
    /// Steps.
    pub steps: Vec<StepReport>,
    /// Scenario-level problems (volume contents, probes, kernel misuse).
    pub problems: Vec<String>,
    /// Left after unload.
    pub leaks: Leaks,
    /// The scenario asks for a policy the image cannot be given (`monitor`, `veto`): its steps
    /// ran with the image enforcing, and differences are reported, never counted as identical.
    pub policy_unavailable: Option<String>,
    /// Volume differences of a `policy_unavailable` scenario (reported, excused).
    pub notes: Vec<String>,
    /// Messages sent through the image's communication port after the steps.
    pub port_messages: usize,
    /// Rules are in force for some of the steps (`[[rule]]` or a `set_rules` step).
    pub has_rules: bool,
    /// What the journal records (`[volume] journal`, served as `Parameters\Journal`).
    pub journal_mode: JournalMode,
    /// The decision journals read back through both ports after the steps, compared record by
    /// record (`None`: not compared, the image ran under another policy than the scenario's).
    pub journal: Option<JournalReport>,
}

impl ScenarioReport {
    /// Nothing unexpected.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
            && self.leaks.is_empty()
            && self.journal.as_ref().is_none_or(|j| j.comparison.ok())
            && (self.policy_unavailable.is_some()
                || self.steps.iter().all(|s| s.problems.is_empty()))
    }

    /// Identical to the simulator in every step (no documented difference either).
    #[must_use]
    pub fn identical(&self) -> bool {
        self.ok()
            && self.policy_unavailable.is_none()
            && self.steps.iter().all(|s| s.known.is_none())
    }

    /// Offload FSCTL steps that reached the binary's pre-operation callback.
    #[must_use]
    pub fn reached_binary(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| !matches!(s.pre, None | Some(PreResult::NotAttached)))
            .count()
    }

    /// Every problem, one per line.
    #[must_use]
    pub fn describe_problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .problems
            .iter()
            .map(|p| format!("{}: {p}", self.name))
            .collect();
        if let Some(journal) = &self.journal {
            out.extend(
                journal
                    .comparison
                    .problems
                    .iter()
                    .map(|p| format!("{}: {p}", self.name)),
            );
        }
        if self.policy_unavailable.is_some() {
            return out;
        }
        for step in &self.steps {
            for p in &step.problems {
                out.push(format!(
                    "{} step {} (line {}, {}): {p}",
                    self.name,
                    step.index,
                    step.line,
                    step.op.name()
                ));
            }
        }
        if !self.leaks.is_empty() {
            out.push(format!("{}: leaked {:?}", self.name, self.leaks));
        }
        out
    }
}

/// Every scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Per scenario.
    pub reports: Vec<ScenarioReport>,
    /// Listed differences that did not occur.
    pub stale: Vec<KnownDifference>,
    /// Of [`Self::reports`], the runs of [`journal_off_variant`]s.
    pub journal_off: usize,
}

impl Summary {
    /// Everything agreed (up to the listed differences), nothing leaked, nothing stale, and
    /// every request within the kernel-call budget.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.stale.is_empty()
            && self.reports.iter().all(ScenarioReport::ok)
            && self.costs_within_budget()
    }

    /// The most each forwarded request cost, and the most a refused one allocated.
    #[must_use]
    pub fn max_costs(&self) -> (Cost, usize) {
        let costs = self
            .reports
            .iter()
            .flat_map(|r| r.steps.iter())
            .filter_map(|s| s.cost);
        let mut forwarded = Cost::default();
        let mut refused_allocations = 0;
        for cost in costs {
            match cost.pre {
                Some(PreResult::WithCallback) => {
                    forwarded.file_queries = forwarded.file_queries.max(cost.file_queries);
                    forwarded.context_lookups = forwarded.context_lookups.max(cost.context_lookups);
                    forwarded.allocations = forwarded.allocations.max(cost.allocations);
                    forwarded.clock_reads = forwarded.clock_reads.max(cost.clock_reads);
                }
                Some(PreResult::Complete) => {
                    refused_allocations = refused_allocations.max(cost.allocations);
                }
                _ => {}
            }
        }
        (forwarded, refused_allocations)
    }

    /// Governance calls per request (issue 15): the maxima [`GovernanceCalls`] over the scenarios
    /// without rules, one entry per journal mode
    /// (`Parameters\Journal`: off, decisions, named), and over the scenarios with rules.
    #[must_use]
    pub fn governance_costs(&self) -> ([GovernanceCalls; 3], GovernanceCalls) {
        let mut without = [(0, 0, 0); 3];
        let mut with = (0, 0, 0);
        for report in &self.reports {
            let slot = if report.has_rules {
                &mut with
            } else {
                let mode = match report.journal_mode {
                    JournalMode::Off => 0,
                    JournalMode::Decisions => 1,
                    JournalMode::Named => 2,
                };
                let Some(slot) = without.get_mut(mode) else {
                    continue;
                };
                slot
            };
            for cost in report.steps.iter().filter_map(|s| s.cost) {
                if cost.pre == Some(PreResult::NotAttached) {
                    continue;
                }
                slot.0 = slot.0.max(cost.name_queries);
                slot.1 = slot.1.max(cost.governance_calls);
                slot.2 = slot.2.max(cost.lock_calls);
            }
        }
        (without, with)
    }

    /// The governance line: kernel calls per request for names, journal and rules.
    #[must_use]
    pub fn governance_line(&self) -> String {
        let ([off, decisions, named], (rq, rc, rl)) = self.governance_costs();
        let part = |(q, c, l): (usize, usize, usize)| {
            format!("{q} name queries, {c} calls, {l} lock calls")
        };
        format!(
            "governance calls per request, at most: no rules with the journal off {}, with the default journal {}, with the journal named {}; with rules {rq} name queries, {rc} calls, {rl} lock calls",
            part(off),
            part(decisions),
            part(named)
        )
    }

    /// Issue 11's budget holds.
    #[must_use]
    pub fn costs_within_budget(&self) -> bool {
        let (forwarded, refused) = self.max_costs();
        forwarded.file_queries <= COST_BUDGET.file_queries
            && forwarded.context_lookups <= COST_BUDGET.context_lookups
            && forwarded.allocations <= COST_BUDGET.allocations
            && forwarded.clock_reads <= COST_BUDGET.clock_reads
            && refused == 0
    }

    /// The kernel-call line: the maxima against the budget.
    #[must_use]
    pub fn costs_line(&self) -> String {
        let (forwarded, refused) = self.max_costs();
        format!(
            "kernel calls per forwarded request: at most {} file-system queries, {} context lookups, {} allocations, {} clock reads (budget {}/{}/{}/{}); a refused request: at most {refused} allocations (budget 0){}",
            forwarded.file_queries,
            forwarded.context_lookups,
            forwarded.allocations,
            forwarded.clock_reads,
            COST_BUDGET.file_queries,
            COST_BUDGET.context_lookups,
            COST_BUDGET.allocations,
            COST_BUDGET.clock_reads,
            if self.costs_within_budget() {
                ""
            } else {
                " — OVER BUDGET"
            }
        )
    }

    /// Leaked objects over all scenarios.
    #[must_use]
    pub fn leaks(&self) -> usize {
        self.reports.iter().map(|r| r.leaks.count()).sum()
    }

    /// The one-line result.
    #[must_use]
    pub fn line(&self) -> String {
        let identical = self.reports.iter().filter(|r| r.identical()).count();
        let known: Vec<&ScenarioReport> = self
            .reports
            .iter()
            .filter(|r| r.ok() && !r.identical() && r.policy_unavailable.is_none())
            .collect();
        let policy = self
            .reports
            .iter()
            .filter(|r| r.ok() && r.policy_unavailable.is_some())
            .count();
        let failed = self.reports.iter().filter(|r| !r.ok()).count();
        let known_steps: usize = known
            .iter()
            .map(|r| r.steps.iter().filter(|s| s.known.is_some()).count())
            .sum();
        let steps: usize = self
            .reports
            .iter()
            .map(ScenarioReport::reached_binary)
            .sum();
        let mut line = format!("{identical} scenarios identical to the simulator");
        if !known.is_empty() {
            line.push_str(&format!(
                ", {} with documented differences ({known_steps} steps)",
                known.len()
            ));
        }
        if policy > 0 {
            line.push_str(&format!(
                ", {policy} need a policy the image cannot receive"
            ));
        }
        if failed > 0 {
            line.push_str(&format!(", {failed} DIFFERENT"));
        }
        if !self.stale.is_empty() {
            line.push_str(&format!(
                ", {} listed differences did not occur",
                self.stale.len()
            ));
        }
        let port: usize = self.reports.iter().map(|r| r.port_messages).sum();
        let port_scenarios = self.reports.iter().filter(|r| r.port_messages > 0).count();
        line.push_str(&format!(
            ", {} leaks ({} scenarios, {} of them again with the journal off, {steps} requests through odxflt.sys; {port} port messages in {port_scenarios} scenarios; {})",
            self.leaks(),
            self.reports.len() - self.journal_off,
            self.journal_off,
            self.journal_figure()
        ));
        line
    }

    /// The journal comparison's figure: records identical (and differing only as documented),
    /// in how many scenarios, how many pages, how many scenarios without a journal.
    #[must_use]
    pub fn journal_figure(&self) -> String {
        let compared: Vec<&JournalComparison> = self
            .reports
            .iter()
            .filter_map(|r| r.journal.as_ref().map(|j| &j.comparison))
            .collect();
        let identical: usize = compared.iter().map(|j| j.identical).sum();
        let documented: usize = compared.iter().map(|j| j.documented).sum();
        let differing = compared.iter().filter(|j| !j.ok()).count();
        let pages: usize = compared.iter().map(|j| j.pages.1).sum();
        let most = compared.iter().map(|j| j.pages.1).max().unwrap_or(0);
        let refused = compared.iter().filter(|j| j.refused).count();
        let lost: u64 = compared.iter().map(|j| j.lost).sum();
        let mut figure = format!("{identical} journal records identical");
        if documented > 0 {
            figure.push_str(&format!(" and {documented} differing as documented"));
        }
        figure.push_str(&format!(
            " in {} scenarios ({pages} ReadJournal pages of {} records from the image, up to {most} a scenario",
            compared.len(),
            crate::journal::PAGE_RECORDS
        ));
        if lost > 0 {
            figure.push_str(&format!(", {lost} records lost alike"));
        }
        if refused > 0 {
            figure.push_str(&format!(", {refused} with the journal off: refused alike"));
        }
        figure.push(')');
        if differing > 0 {
            figure.push_str(&format!(", journal DIFFERENT in {differing}"));
        }
        figure
    }
}

/// The volume answers odxflt.sys gets for a scenario's volume, and whether the volume's
/// `MaxFileSize` can be told to it at all (the driver derives it from the cluster size).
#[must_use]
pub fn volume_info(config: &VolumeConfig) -> (VolumeInfo, bool) {
    let sector = config.sector_size.get();
    let filesystem_type = match config.file_system {
        FileSystemKind::Ntfs => shapes().constants.flt_fstype_ntfs,
        FileSystemKind::Refs => shapes().constants.flt_fstype_refs,
        FileSystemKind::Other => shapes().constants.flt_fstype_fat,
    };
    // MaxFileSize = (2^32 - 1) clusters: find the cluster size that gives the volume's value.
    let cluster = (1..=16_u32)
        .map(|shift| sector << (shift - 1))
        .find(|&cluster| VolumeFacts::ntfs_max_file_size(cluster) == config.max_file_size);
    let expressible = cluster.is_some();
    let cluster = cluster.unwrap_or(4096).max(sector);
    (
        VolumeInfo {
            filesystem_type,
            logical_bytes_per_sector: sector,
            bytes_per_sector: sector,
            sectors_per_allocation_unit: cluster / sector,
            writable: !config.read_only,
            storage: kernel::storage::DiskAnswer::Descriptor(odx_sim::disk::default_limits(config)),
            backoff_seconds: None,
            journal: None,
        },
        expressible,
    )
}

/// `volume` with the scenario's `[storage]`: the disk's answer to the property query and
/// `Parameters\OffloadBackoffSeconds` (always served: the scenario's value or its default).
#[must_use]
pub fn with_storage(
    mut volume: VolumeInfo,
    storage: &odx_sim::scenario::StorageSpec,
) -> VolumeInfo {
    use kernel::storage::DiskAnswer;
    volume.storage = match storage.query() {
        odx_sim::disk::StorageQuery::Descriptor(limits) => DiskAnswer::Descriptor(limits),
        odx_sim::disk::StorageQuery::NotSupported => DiskAnswer::NotSupported,
        odx_sim::disk::StorageQuery::Fails(status) => DiskAnswer::Fails(status),
        odx_sim::disk::StorageQuery::NoDisk => DiskAnswer::NoDisk,
    };
    volume.backoff_seconds = Some(storage.backoff_seconds);
    volume
}

/// The op and range a read or write step sends, when its input is a whole structure (a short
/// input is unreadable and recorded as range 0, 0).
fn asked_range(spec: &odx_sim::scenario::StepSpec) -> Option<(&'static str, u64, u64)> {
    let (op, size) = match spec.op {
        Op::Read => ("Read", OffloadReadInput::SIZE),
        Op::Write => ("Write", OffloadWriteInput::SIZE),
        _ => return None,
    };
    spec.in_len
        .is_none_or(|len| len >= size)
        .then_some((op, spec.offset, spec.length))
}

/// `volume` with the scenario's `[volume] journal` as `Parameters\Journal` (always served: the
/// scenario's value or its default; the tests that load the image without a scenario leave it
/// absent).
#[must_use]
pub fn with_registry(mut volume: VolumeInfo, scenario: &Scenario) -> VolumeInfo {
    // The documented values of Parameters\Journal (docs/driver.md), written out here rather than
    // taken from odx-core's `JournalMode`, which the driver decodes with.
    volume.journal = Some(match scenario.volume.journal.as_str() {
        "off" => 0,
        "named" => 2,
        _ => 1,
    });
    volume
}

/// Moves the mock kernel's interrupt time as the simulator's clock moves (`advance_ms`).
pub fn advance_kernel_clock(ms: u64) {
    kernel::with(|k| {
        k.storage.now = k
            .storage
            .now
            .saturating_add(ms.saturating_mul(odx_core::storage::TICKS_PER_SECOND / 1000));
    });
}

/// A `stat` step: the file's (EOF, VDL) on a side's volume.
fn stat(side: &Side, spec: &odx_sim::scenario::StepSpec) -> Result<Option<(u64, u64)>> {
    let id = side.file(spec.file.as_ref())?;
    Ok(side
        .stack
        .volume()
        .entry(id)
        .map(|e| (e.end_of_file, e.valid_data_length)))
}

fn access_mask(access: Option<&Vec<Access>>) -> AccessMask {
    match access {
        None => AccessMask::READ_DATA | AccessMask::WRITE_DATA,
        Some(list) => list.iter().fold(AccessMask::empty(), |mask, a| {
            mask | match a {
                Access::Read => AccessMask::READ_DATA,
                Access::Write => AccessMask::WRITE_DATA,
            }
        }),
    }
}

fn sized<T: WireStruct>(value: &T, in_len: Option<usize>) -> Vec<u8> {
    let mut bytes = vec![0u8; T::SIZE];
    let _ = value.serialize_into(&mut bytes);
    bytes.resize(in_len.unwrap_or(T::SIZE), 0);
    bytes
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        bytes.extend_from_slice(&splitmix(&mut state).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// A token no storage issued, with the simulated array's header: only the key lookup catches it.
/// The same bytes go to both sides.
pub(crate) fn forged_token(seed: u64) -> StorageOffloadToken {
    let mut key: TokenKey = [0; TOKEN_KEY_LEN];
    key.copy_from_slice(&pseudo_random(seed, TOKEN_KEY_LEN));
    let token = token_for_key(&key);
    debug_assert_eq!(token.token_type.get(), SIMULATED_TOKEN_TYPE);
    token
}

/// Renames random token keys by order of first appearance (one per side).
#[derive(Debug, Default)]
struct Renamer {
    keys: HashMap<TokenKey, u64>,
}

impl Renamer {
    fn canonical(&mut self, op: OffloadOp, output: &[u8]) -> Vec<u8> {
        let mut out = output.to_vec();
        if op != OffloadOp::Read {
            return out;
        }
        let Ok(parsed) = OffloadReadOutput::parse(output) else {
            return out;
        };
        let Some(key) = key_of(&parsed.token) else {
            return out;
        };
        if token_for_key(&key) != parsed.token {
            return out;
        }
        let next = u64::try_from(self.keys.len()).unwrap_or(u64::MAX);
        let ordinal = *self.keys.entry(key).or_insert(next);
        let mut renamed: TokenKey = [0x5A; TOKEN_KEY_LEN];
        if let Some(head) = renamed.get_mut(..8) {
            head.copy_from_slice(&ordinal.to_le_bytes());
        }
        let token = token_for_key(&renamed);
        let start = std::mem::offset_of!(OffloadReadOutput, token);
        if let Some(slot) = out.get_mut(start..start + StorageOffloadToken::SIZE) {
            let _ = token.serialize_into(slot);
        }
        out
    }
}

/// One side's state across a scenario.
pub(crate) struct Side {
    pub(crate) stack: Stack<MemStore>,
    tokens: HashMap<String, StorageOffloadToken>,
    renamer: Renamer,
}

impl Side {
    pub(crate) fn new(scenario: &Scenario) -> Result<Self> {
        Ok(Self {
            stack: scenario
                .build(MemStore::new())
                .with_context(|| format!("{}: building the volume", scenario.path))?,
            tokens: HashMap::new(),
            renamer: Renamer::default(),
        })
    }

    pub(crate) fn file(&self, name: Option<&String>) -> Result<FileId> {
        let name = name.ok_or_else(|| anyhow!("step without file"))?;
        self.stack
            .volume()
            .id_of(name)
            .ok_or_else(|| anyhow!("no file {name:?}"))
    }

    pub(crate) fn open(&mut self, spec: &StepSpec) -> Result<HandleId> {
        let id = self.file(spec.file.as_ref())?;
        let handle = self.stack.open(id, access_mask(spec.access.as_ref()))?;
        if spec.closed {
            self.stack.close(handle);
        }
        Ok(handle)
    }

    fn token(&self, spec: &StepSpec, forged: StorageOffloadToken) -> StorageOffloadToken {
        match spec.token.as_deref() {
            Some("zero") => StorageOffloadToken::zero_data(),
            Some("forged") => forged,
            Some(name) => self
                .tokens
                .get(name)
                .copied()
                .unwrap_or_else(StorageOffloadToken::zeroed),
            None => StorageOffloadToken::zeroed(),
        }
    }

    pub(crate) fn input(
        &self,
        spec: &StepSpec,
        forged: StorageOffloadToken,
    ) -> (OffloadOp, Vec<u8>, usize) {
        if spec.op == Op::Read {
            let mut input = OffloadReadInput::new(spec.offset, spec.length, spec.ttl_ms);
            if let Some(size) = spec.size_field {
                input.size.set(size);
            }
            let out_len = spec.out_len.unwrap_or(OffloadReadOutput::SIZE);
            (OffloadOp::Read, sized(&input, spec.in_len), out_len)
        } else {
            let token = self.token(spec, forged);
            let mut input =
                OffloadWriteInput::new(spec.offset, spec.length, spec.transfer_offset, token);
            if let Some(size) = spec.size_field {
                input.size.set(size);
            }
            let out_len = spec.out_len.unwrap_or(OffloadWriteOutput::SIZE);
            (OffloadOp::Write, sized(&input, spec.in_len), out_len)
        }
    }

    /// Keeps the token a read returned (an all-zero token when it failed), as the scenario
    /// runner does.
    pub(crate) fn keep_token(&mut self, spec: &StepSpec, status: NtStatus, raw_output: &[u8]) {
        if spec.op != Op::Read {
            return;
        }
        if let Some(name) = &spec.token {
            let token = OffloadReadOutput::parse(raw_output)
                .ok()
                .filter(|_| status.is_success())
                .map_or_else(StorageOffloadToken::zeroed, |o| o.token);
            self.tokens.insert(name.clone(), token);
        }
    }
}

pub(crate) const fn code_of(op: OffloadOp) -> u32 {
    match op {
        OffloadOp::Read => FSCTL_OFFLOAD_READ,
        OffloadOp::Write => FSCTL_OFFLOAD_WRITE,
    }
}

pub(crate) fn seed(scenario: &str, index: usize) -> u64 {
    scenario
        .bytes()
        .chain(index.to_le_bytes())
        .fold(0xCBF2_9CE4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
        })
}

/// How a run varies what Windows hands the image, beyond the scenario itself (the fault and
/// stress runs; the differential run uses [`Variant::AS_WRITTEN`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    /// IRQL of every pre-operation.
    pub pre_irql: u8,
    /// IRQL of every post-operation.
    pub post_irql: u8,
    /// Every request comes from kernel mode, with this minor function
    /// (`IRP_MN_KERNEL_CALL`, or `IRP_MN_USER_FS_REQUEST` as the SMB server sends them).
    pub kernel_requests: Option<u8>,
    /// Every file's `FsContext` belongs to another driver.
    pub foreign_header: Option<crate::driver::ForeignHeader>,
    /// `FILE_OBJECT.ReadAccess`/`WriteAccess` are share-access bookkeeping of the I/O manager,
    /// independent of the handle's granted access: `Some(bit)` sets both to `bit` whatever the
    /// handle may do (`None`: from the granted access).
    pub share_access_bits: Option<bool>,
}

impl Variant {
    /// The scenario as written, at PASSIVE_LEVEL.
    pub const AS_WRITTEN: Self = Self {
        pre_irql: 0,
        post_irql: 0,
        kernel_requests: None,
        foreign_header: None,
        share_access_bits: None,
    };
}

/// Sends one offload FSCTL through the I/O manager model and the binary, over `side`'s volume.
#[allow(clippy::too_many_arguments)]
pub(crate) fn through_binary(
    driver: &mut LoadedDriver,
    variant: &Variant,
    side: &mut Side,
    handle: HandleId,
    op: OffloadOp,
    input: Vec<u8>,
    output_len: usize,
    requestor: RequestorMode,
) -> Result<(
    NtStatus,
    usize,
    Vec<u8>,
    Option<crate::driver::FsControlResult>,
)> {
    let state = side
        .stack
        .handle(handle)
        .ok_or_else(|| anyhow!("no handle"))?;
    let requestor = if variant.kernel_requests.is_some() {
        RequestorMode::Kernel
    } else {
        requestor
    };
    // The I/O manager runs before any filter: same model as the simulator's stack.
    if let Err(status) = io_manager_precheck(
        op,
        requestor,
        state.granted,
        side.stack.supported_features(),
    ) {
        return Ok((status, 0, Vec::new(), None));
    }
    let entry = side
        .stack
        .volume()
        .entry(state.file)
        .ok_or_else(|| anyhow!("no file"))?;
    let cluster = 4096_i64;
    let eof = i64::try_from(entry.end_of_file).unwrap_or(i64::MAX);
    let file = FileObjectFacts {
        read_access: variant
            .share_access_bits
            .unwrap_or_else(|| state.granted.contains(AccessMask::READ_DATA)),
        write_access: variant
            .share_access_bits
            .unwrap_or_else(|| state.granted.contains(AccessMask::WRITE_DATA)),
        cleanup_complete: state.closed,
        transacted: entry.markers.contains(StreamMarkers::TRANSACTED),
        valid_data_length: i64::try_from(entry.valid_data_length).unwrap_or(i64::MAX),
        foreign_header: variant.foreign_header,
        info: FileInfo {
            attributes: entry.attributes.bits(),
            end_of_file: eof,
            allocation_size: eof.saturating_add(cluster - 1) / cluster * cluster,
            delete_pending: entry.delete_pending,
            directory: entry.attributes.contains(FileAttributes::DIRECTORY),
        },
    };
    let request = FsControlRequest {
        pre_irql: variant.pre_irql,
        post_irql: variant.post_irql,
        minor_function: variant
            .kernel_requests
            .unwrap_or(shapes().constants.irp_mn_user_fs_request),
        code: code_of(op),
        input,
        output_len,
        kernel_requestor: requestor == RequestorMode::Kernel || variant.kernel_requests.is_some(),
        file,
    };
    let volume = side.stack.volume_mut();
    let mut below = |buffer: &mut [u8], input_len: usize| {
        let answer = file_system_below(volume, state, op, buffer, input_len, output_len);
        (answer.status, answer.information)
    };
    let result = driver.fs_control(&request, &mut below)?;
    Ok((
        result.status,
        result.information,
        result.output.clone(),
        Some(result),
    ))
}

/// A non-offload FSCTL and an offload code under a mount minor: the binary must answer
/// "no callback" without gathering any fact or touching a context.
fn probe_not_ours(driver: &mut LoadedDriver) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let c = shapes().constants;
    let probes = [
        (
            "FSCTL_GET_RETRIEVAL_POINTERS",
            c.irp_mn_user_fs_request,
            FSCTL_GET_RETRIEVAL_POINTERS,
        ),
        (
            "FSCTL_OFFLOAD_READ under IRP_MN_MOUNT_VOLUME",
            c.irp_mn_mount_volume,
            FSCTL_OFFLOAD_READ,
        ),
    ];
    for (what, minor, code) in probes {
        let request = FsControlRequest {
            pre_irql: 0,
            post_irql: 0,
            minor_function: minor,
            code,
            input: vec![0; 32],
            output_len: 64,
            kernel_requestor: false,
            file: FileObjectFacts {
                read_access: true,
                write_access: true,
                ..FileObjectFacts::default()
            },
        };
        let mut below = |_: &mut [u8], _: usize| (NtStatus::STATUS_INVALID_DEVICE_REQUEST, 0);
        let result = driver.fs_control(&request, &mut below)?;
        if result.pre != PreResult::NoCallback {
            problems.push(format!(
                "{what}: pre-operation answered {:?}, not FLT_PREOP_SUCCESS_NO_CALLBACK",
                result.pre
            ));
        }
        if !result.pre_calls.is_empty() {
            problems.push(format!(
                "{what}: pre-operation gathered facts or touched contexts: {:?}",
                result.pre_calls
            ));
        }
    }
    Ok(problems)
}

fn compare_volumes(scenario: &Scenario, sim: &Side, bin: &Side) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for file in &scenario.files {
        let (Some(a), Some(b)) = (
            sim.stack.volume().id_of(&file.name),
            bin.stack.volume().id_of(&file.name),
        ) else {
            problems.push(format!("file {:?} missing on one side", file.name));
            continue;
        };
        let (Some(ea), Some(eb)) = (sim.stack.volume().entry(a), bin.stack.volume().entry(b))
        else {
            continue;
        };
        if (ea.end_of_file, ea.valid_data_length) != (eb.end_of_file, eb.valid_data_length) {
            problems.push(format!(
                "file {:?}: EOF/VDL {}/{} in the simulator, {}/{} under the binary",
                file.name,
                ea.end_of_file,
                ea.valid_data_length,
                eb.end_of_file,
                eb.valid_data_length
            ));
            continue;
        }
        let mut x = vec![0u8; 1 << 20];
        let mut y = vec![0u8; 1 << 20];
        let mut at = 0u64;
        while at < ea.end_of_file {
            let n = sim.stack.volume().read_data(a, at, &mut x)?;
            let m = bin.stack.volume().read_data(b, at, &mut y)?;
            if n != m || x.get(..n) != y.get(..m) {
                problems.push(format!(
                    "file {:?}: contents differ in the MiB at {at}",
                    file.name
                ));
                break;
            }
            if n == 0 {
                break;
            }
            at += n as u64;
        }
    }
    Ok(problems)
}

pub(crate) fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or_else(|| path.to_owned(), |n| n.to_string_lossy().into_owned())
}

/// The scenario's names and rules for the mock kernel the next load installs.
pub fn preset_names(scenario: &Scenario) {
    let rules = (!scenario.rules.is_empty()).then(|| scenario.rules.clone());
    kernel::names::preset(
        &scenario.volume.device_name,
        &scenario.volume.dos_name,
        &scenario.volume.guid_name,
        rules,
    );
}

/// The next request's process and file, as the scenario names them.
pub fn step_names(scenario: &Scenario, spec: &odx_sim::scenario::StepSpec) {
    let path = spec
        .file
        .as_ref()
        .and_then(|name| scenario.files.iter().find(|f| &f.name == name))
        .map_or_else(
            || kernel::names::DEFAULT_PATH.to_owned(),
            |f| f.effective_path(),
        );
    let step = kernel::names::StepNames {
        path,
        process: spec.effective_process().to_owned(),
        process_id: u32::try_from(spec.effective_process_id()).unwrap_or(u32::MAX),
    };
    kernel::with(|k| k.names.step = step);
}

/// `SetRules` through the image's port (connect, send, disconnect): `(error line, rules in
/// force)` of its reply, `None` when it answered no reply.
///
/// # Errors
/// The image has no port or its callbacks fail.
pub fn set_rules_through_port(
    driver: &mut LoadedDriver,
    message: &[u8],
) -> Result<Option<(u32, u32)>> {
    let connected = driver.port_connect()?;
    if !connected.is_success() {
        return Ok(None);
    }
    let (status, reply) = driver.port_message(Some(message), RulesReply::SIZE)?;
    driver.port_disconnect()?;
    if !status.is_success() {
        return Ok(None);
    }
    Ok(RulesReply::parse(&reply)
        .ok()
        .map(|r| (r.error_line.get(), r.rule_count.get())))
}

/// Runs one scenario through the simulator and through the image.
///
/// # Errors
/// The image cannot be loaded, or the simulated volume cannot be built.
pub fn run_scenario(
    image: &[u8],
    scenario: &Scenario,
    known: &[KnownDifference],
) -> Result<ScenarioReport> {
    let name = file_name(&scenario.path);
    // A journal-off copy differs from the simulator where its scenario does.
    let listed_as = name.strip_suffix(JOURNAL_OFF).unwrap_or(&name);
    let config = scenario.volume_config();
    let (volume, max_size_expressible) = volume_info(&config);
    let volume = with_registry(with_storage(volume, &scenario.storage), scenario);
    let mut sim = Side::new(scenario)?;
    let mut bin = Side::new(scenario)?;
    // The policy reaches the image the way it does on Windows: Parameters\DefaultPolicy under
    // the service key, read at DriverEntry. An image without the registry read cannot get it.
    let policy = PolicyMode::from_name(&scenario.volume.policy).unwrap_or_default();
    preset_names(scenario);
    let mut driver = LoadedDriver::load_with_policy(image, volume, Some(policy.as_u32()))?;
    let reads_registry = driver
        .image()
        .imports()
        .iter()
        .any(|i| i.symbol == "ZwQueryValueKey");
    let mut problems = Vec::new();
    let _ = max_size_expressible;
    let attach = driver.setup_instance()?;
    let should_attach = matches!(
        config.file_system,
        FileSystemKind::Ntfs | FileSystemKind::Refs
    );
    if attach.is_success() != should_attach {
        problems.push(format!(
            "instance setup on {:?} answered {attach}",
            config.file_system
        ));
    }
    if attach.is_success() {
        problems.extend(probe_not_ours(&mut driver)?);
        if config.dismounted {
            driver.teardown_start(shapes().constants.fltfl_instance_teardown_volume_dismount)?;
        }
    }

    let mut steps = Vec::new();
    let mut record_steps = Vec::new();
    for (index, step) in scenario.steps.iter().enumerate() {
        let spec = &step.spec;
        let mut report = StepReport {
            index,
            line: step.line,
            op: spec.op,
            simulator: None,
            binary: None,
            pre: None,
            known: None,
            problems: Vec::new(),
            cost: None,
        };
        match spec.op {
            Op::Read | Op::Write => {
                step_names(scenario, spec);
                let forged = forged_token(seed(listed_as, index));
                let requestor = match spec.requestor {
                    Requestor::User => RequestorMode::User,
                    Requestor::Kernel => RequestorMode::Kernel,
                };
                let (op, sim_input, out_len) = sim.input(spec, forged);
                let (_, bin_input, _) = bin.input(spec, forged);
                let sim_handle = sim.open(spec)?;
                let bin_handle = bin.open(spec)?;
                let outcome = sim.stack.fsctl_as(
                    sim_handle,
                    code_of(op),
                    &sim_input,
                    out_len,
                    requestor,
                    &spec.requester(),
                );
                sim.keep_token(spec, outcome.status, &outcome.output);
                // Post-operation may run at DISPATCH_LEVEL (completion in an arbitrary thread
                // context): every other request's does, which must change nothing.
                let variant = Variant {
                    post_irql: if index % 2 == 1 {
                        shapes().constants.dispatch_level
                    } else {
                        0
                    },
                    share_access_bits: Some(seed(listed_as, index) & 1 == 0),
                    ..Variant::AS_WRITTEN
                };
                let (status, information, output, result) = through_binary(
                    &mut driver,
                    &variant,
                    &mut bin,
                    bin_handle,
                    op,
                    bin_input,
                    out_len,
                    requestor,
                )?;
                bin.keep_token(spec, status, &output);
                let raw_binary = output.clone();
                let simulator = Observed {
                    status: outcome.status,
                    information: outcome.output.len(),
                    output: sim.renamer.canonical(op, &outcome.output),
                };
                let binary = Observed {
                    status,
                    information,
                    output: bin.renamer.canonical(op, &output),
                };
                let facts_differ = result.as_ref().is_some_and(|r| {
                    r.pre != PreResult::NotAttached
                        && facts_gathered(r) != facts_asked(&outcome.facts)
                });
                let same_answer = simulator == binary;
                report.known = known
                    .iter()
                    .find(|k| {
                        k.scenario == listed_as
                            && k.step == index
                            && match k.difference {
                                Difference::Status {
                                    simulator: s,
                                    binary: b,
                                } => s == simulator.status && b == binary.status,
                                Difference::FactsOnly => same_answer && facts_differ,
                            }
                    })
                    .copied();
                if let Some(seq) = outcome.journal_seq {
                    record_steps.push(RecordStep {
                        seq,
                        step: index,
                        line: step.line,
                        known: report.known,
                        asked: asked_range(spec),
                    });
                }
                if report.known.is_none() {
                    if simulator.status != binary.status {
                        report.problems.push(format!(
                            "status: simulator {} ({}), binary {}",
                            simulator.status,
                            outcome.decided_by.describe(),
                            binary.status
                        ));
                    }
                    if simulator.information != binary.information {
                        report.problems.push(format!(
                            "Information: simulator {}, binary {}",
                            simulator.information, binary.information
                        ));
                    }
                    if simulator.output != binary.output {
                        report.problems.push("output bytes differ".to_owned());
                    }
                    if facts_differ {
                        let (kind, sizes) = facts_asked(&outcome.facts);
                        let (basic, standard) =
                            result.as_ref().map(facts_gathered).unwrap_or_default();
                        report.problems.push(format!(
                            "facts gathered: simulator asked stream kind {kind}x / sizes {sizes}x, binary queried basic {basic}x / standard {standard}x"
                        ));
                    }
                }
                // The binary also answers what the scenario file documents (the spec), so a
                // rule broken in the core — compiled into both sides — still fails here.
                if let Some(problem) = against_expectation(step, op, &binary, &raw_binary) {
                    let documented = matches!(
                        report.known.map(|k| k.difference),
                        Some(Difference::Status { .. })
                    );
                    if !documented && (policy == PolicyMode::Enforce || reads_registry) {
                        report.problems.push(problem);
                    }
                }
                if let Some(result) = &result {
                    report.pre = Some(result.pre);
                    report.cost = Some(Cost::of(result));
                    check_request(result, &mut report);
                }
                report.simulator = Some(simulator);
                report.binary = Some(binary);
            }
            Op::WriteData => {
                let bytes = pseudo_random(
                    seed(listed_as, index),
                    usize::try_from(spec.length).unwrap_or(0),
                );
                for side in [&mut sim, &mut bin] {
                    let id = side.file(spec.file.as_ref())?;
                    side.stack
                        .volume_mut()
                        .write_data(id, spec.offset, &bytes)?;
                }
            }
            Op::AdvanceMs => {
                for side in [&mut sim, &mut bin] {
                    side.stack.advance_ms(spec.ms.unwrap_or(0));
                }
                advance_kernel_clock(spec.ms.unwrap_or(0));
            }
            Op::SetRules => {
                let text = spec.text.as_deref().unwrap_or("");
                let message = odx_sim::stack::set_rules_message(text);
                let simulator = sim
                    .stack
                    .port_request(&message, RulesReply::SIZE)
                    .ok()
                    .and_then(|bytes| RulesReply::parse(&bytes).ok())
                    .map(|r| (r.error_line.get(), r.rule_count.get()));
                let binary = set_rules_through_port(&mut driver, &message)?;
                if simulator != binary {
                    report.problems.push(format!(
                        "set_rules (error line, rules in force): simulator {simulator:?}, binary {binary:?}"
                    ));
                }
                if let (Some(expected), Some((line, _))) = (spec.expect_error_line, binary) {
                    if expected != line {
                        report.problems.push(format!(
                            "set_rules: the scenario expects error line {expected}, the binary answered {line}"
                        ));
                    }
                }
            }
            Op::Stat => {
                let (simulator, binary) = (stat(&sim, spec)?, stat(&bin, spec)?);
                if simulator != binary {
                    report.problems.push(format!(
                        "stat (EOF, VDL): simulator {simulator:?}, binary's volume {binary:?}"
                    ));
                }
                if let Some((eof, vdl)) = binary {
                    if spec.expect_size.is_some_and(|size| size != eof)
                        || spec.expect_vdl.is_some_and(|expected| expected != vdl)
                    {
                        report.problems.push(format!(
                            "stat: the scenario expects EOF {:?} / VDL {:?}, the binary's volume has {eof} / {vdl}",
                            spec.expect_size, spec.expect_vdl
                        ));
                    }
                }
            }
            Op::Compare => {
                let mut answers = Vec::new();
                for side in [&sim, &bin] {
                    let a = side.file(spec.file.as_ref())?;
                    let b = side.file(spec.with_file.as_ref())?;
                    let with = spec.with_offset.unwrap_or(spec.offset);
                    answers.push(compare(&side.stack, a, spec.offset, b, with, spec.length)?);
                }
                if let [a, b] = answers.as_slice() {
                    if a != b {
                        report
                            .problems
                            .push(format!("compare: simulator {a:?}, binary's volume {b:?}"));
                    }
                    if let StepStatus::Status(status) = a {
                        report.simulator = Some(Observed {
                            status: *status,
                            information: 0,
                            output: Vec::new(),
                        });
                    }
                }
            }
        }
        steps.push(report);
    }
    let policy_unavailable = policy_unavailable_for(&scenario.volume.policy, reads_registry);
    let volumes = compare_volumes(scenario, &sim, &bin)?;
    let notes = if policy_unavailable.is_some() {
        volumes
    } else {
        problems.extend(volumes);
        Vec::new()
    };
    // The decision journal: read whole through both ports and compared record by record (an
    // image under another policy than the scenario's has another journal: not compared).
    let journal = if policy_unavailable.is_none() {
        let page = crate::journal::PAGE_RECORDS;
        match (
            crate::journal::read_simulator(&mut sim.stack, page),
            crate::journal::read_image(&mut driver, page),
        ) {
            (Ok(simulator), Ok(binary)) => Some(JournalReport::new(
                &name,
                simulator,
                binary,
                record_steps,
                scenario.volume.journal_mode() != odx_core::governance::JournalMode::Off,
                KNOWN_JOURNAL_DIFFERENCES,
            )),
            (simulator, binary) => {
                for (side, error) in [("simulator", simulator.err()), ("binary", binary.err())] {
                    if let Some(error) = error {
                        problems.push(format!("journal: reading the {side}'s: {error:#}"));
                    }
                }
                None
            }
        }
    } else {
        None
    };
    // The communication port, end to end: after identical steps the image's counters and policy
    // must be the simulator's, asked through the port the image created.
    let mut port_messages = 0;
    let identical_steps = steps
        .iter()
        .all(|s: &StepReport| s.problems.is_empty() && s.known.is_none());
    if attach.is_success()
        && identical_steps
        && policy_unavailable_for(&scenario.volume.policy, reads_registry).is_none()
    {
        let (port, sent) = crate::port::round_trip(&mut driver, &mut sim.stack, policy)?;
        port_messages = sent;
        let listed = KNOWN_STATS_DIFFERENCES.iter().any(|(n, _)| *n == listed_as);
        if listed {
            let (stats, other): (Vec<String>, Vec<String>) = port
                .into_iter()
                .partition(|p| p.starts_with("port: QueryStats"));
            if stats.is_empty() {
                problems.push(
                    "listed statistics difference did not occur (KNOWN_STATS_DIFFERENCES)"
                        .to_owned(),
                );
            }
            problems.extend(other);
        } else {
            problems.extend(port);
        }
    }
    let errors = driver.errors();
    problems.extend(errors.into_iter().map(|e| format!("kernel misuse: {e}")));
    let leaks = driver.unload()?;
    Ok(ScenarioReport {
        name,
        attach,
        steps,
        problems,
        leaks,
        policy_unavailable,
        notes,
        port_messages,
        has_rules: !scenario.rules.is_empty()
            || scenario.steps.iter().any(|s| s.spec.op == Op::SetRules),
        journal_mode: scenario.volume.journal_mode(),
        journal,
    })
}

/// A policy the image cannot receive (an image without the registry read).
fn policy_unavailable_for(policy: &str, reads_registry: bool) -> Option<String> {
    let mode = PolicyMode::from_name(policy).unwrap_or_default();
    (mode != PolicyMode::Enforce && !reads_registry).then(|| policy.to_owned())
}

/// The scenario's `expect` and `expect_length` applied to the binary's answer.
fn against_expectation(
    step: &odx_sim::scenario::Step,
    op: OffloadOp,
    binary: &Observed,
    raw_output: &[u8],
) -> Option<String> {
    if let Some(Expect::Status(want)) = step.expect {
        if want != binary.status {
            return Some(format!(
                "the scenario expects {want}, the binary answered {}",
                binary.status
            ));
        }
    }
    let want = step.spec.expect_length?;
    let got = if !binary.status.is_success() {
        None
    } else if op == OffloadOp::Read {
        OffloadReadOutput::parse(raw_output)
            .ok()
            .map(|o| o.transfer_length.get())
    } else {
        OffloadWriteOutput::parse(raw_output)
            .ok()
            .map(|o| o.length_written.get())
    };
    (got != Some(want))
        .then(|| format!("the scenario expects length {want}, the binary gave {got:?}"))
}

fn facts_asked(facts: &odx_sim::odxflt::FactCounts) -> (u32, u32) {
    (facts.stream_kind, facts.stream_sizes)
}

fn facts_gathered(result: &crate::driver::FsControlResult) -> (u32, u32) {
    let count = |class| u32::try_from(result.queries(class)).unwrap_or(u32::MAX);
    let c = shapes().constants;
    (
        count(c.file_basic_information),
        count(c.file_standard_information),
    )
}

/// Per-request checks on the binary: dirty marking, nothing held after the request.
///
/// `FltSetCallbackDataDirty` is for a pre-operation that changed the parameter block (or the
/// target): Filter Manager then rebuilds the IRP from it. Rewriting the contents of the system
/// buffer (a trimmed `CopyLength`) changes neither, so it must not mark the data dirty; and a
/// changed parameter block that is not marked dirty would be ignored below.
fn check_request(result: &crate::driver::FsControlResult, report: &mut StepReport) {
    if result.pre == PreResult::NotAttached {
        return;
    }
    if result.dirty != result.parameters_changed {
        report.problems.push(format!(
            "FltSetCallbackDataDirty {} but the parameter block was {}changed (system buffer {}rewritten)",
            if result.dirty { "called" } else { "not called" },
            if result.parameters_changed { "" } else { "not " },
            if result.input_rewritten { "" } else { "not " }
        ));
    }
    if let Some(held) = kernel::with(|k| k.held_after_request()).flatten() {
        report.problems.push(format!("after the request: {held}"));
    }
}

/// Runs every `*.toml` in `dir`, and each that configures nothing again with the journal off
/// ([`journal_off_variant`]).
///
/// # Errors
/// A scenario cannot be read or run.
pub fn run_all(image: &[u8], dir: &Path) -> Result<Summary> {
    run_all_copies(image, dir, true)
}

/// [`run_all`], with (`journal_off_copies`) or without the journal-off copies (a measurement
/// of the scenarios as written: scripts/callgrind-image.sh).
///
/// # Errors
/// As [`run_all`].
pub fn run_all_copies(image: &[u8], dir: &Path, journal_off_copies: bool) -> Result<Summary> {
    let files = odx_sim::scenario::scenario_files(dir)
        .with_context(|| format!("reading {}", dir.display()))?;
    let mut reports = Vec::new();
    let mut journal_off = 0;
    for path in &files {
        let scenario = Scenario::load(path).map_err(|e| anyhow!("{e}"))?;
        reports.push(run_scenario(image, &scenario, KNOWN_DIFFERENCES)?);
        if let Some(off) = journal_off_variant(&scenario).filter(|_| journal_off_copies) {
            reports.push(run_scenario(image, &off, KNOWN_DIFFERENCES)?);
            journal_off += 1;
        }
    }
    let stale = KNOWN_DIFFERENCES
        .iter()
        .filter(|k| {
            !reports
                .iter()
                .any(|r| r.steps.iter().any(|s| s.known.as_ref() == Some(*k)))
        })
        .copied()
        .collect();
    Ok(Summary {
        reports,
        stale,
        journal_off,
    })
}

/// The name suffix of a [`journal_off_variant`].
pub const JOURNAL_OFF: &str = " (journal off)";

/// `scenario` again with `Parameters\Journal` = 0, when it configures nothing else (no rule at
/// load or through the port): the image then takes its plain pre-operation body
/// (`Odxflt::pre_plain`, a separate function from the governed one), which the scenario's own
/// run does not reach. Expectations on the journal (`expect_decided_by`) are dropped: there is
/// none. The copy is named `<file> (journal off)`.
#[must_use]
pub fn journal_off_variant(scenario: &Scenario) -> Option<Scenario> {
    let configured = !scenario.rules.is_empty()
        || scenario
            .steps
            .iter()
            .any(|step| step.spec.op == odx_sim::scenario::Op::SetRules);
    if configured || scenario.volume.journal_mode() == odx_core::governance::JournalMode::Off {
        return None;
    }
    let mut off = scenario.clone();
    off.volume.journal = odx_core::governance::JournalMode::Off.name().to_owned();
    off.path = format!("{}{JOURNAL_OFF}", scenario.path);
    for step in &mut off.steps {
        step.spec.expect_decided_by = None;
    }
    Some(off)
}

/// The workspace root (this crate is `crates/odx-pe-harness`).
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the cross build leaves the image.
#[must_use]
pub fn default_image() -> PathBuf {
    workspace_root().join("target/x86_64-pc-windows-msvc/release/odxflt.sys")
}

/// The scenarios.
#[must_use]
pub fn default_scenarios() -> PathBuf {
    workspace_root().join("tests/scenarios")
}

/// The cross-built image at [`default_image`], for the harness's tests: `None`, with a line on
/// stderr saying how to build it, when it is absent (the test then checks nothing and says so).
#[must_use]
pub fn built_image() -> Option<Vec<u8>> {
    let path = default_image();
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(_) => {
            eprintln!(
                "SKIPPED: {} is absent; build it with scripts/cross-build-driver.sh to run the PE harness",
                path.display()
            );
            None
        }
    }
}

/// Scenario `name` of [`default_scenarios`].
///
/// # Errors
/// It cannot be read or is malformed.
pub fn scenario_named(name: &str) -> Result<Scenario> {
    Scenario::load(&default_scenarios().join(name)).map_err(|e| anyhow!("{e}"))
}
