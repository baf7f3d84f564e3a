//! The filter's two callbacks, host-independent: what odxflt does with a METHOD_BUFFERED offload
//! request in pre-operation and with the answer in post-operation. The driver calls these with the
//! system buffer; the simulator with its model's buffer. Neither repeats this orchestration.
//!
//! Pre-operation: policy → (facts, asked lazily) → verdict → either the answer is written into the
//! output part of the buffer and the request completes, or (when trimmed) the input's `CopyLength`
//! is rewritten in place and the request goes down with a [`PostContext`], or (a fact query failed)
//! the request goes down untouched without a post-operation. Post-operation: the completion
//! mapping, the answer's fields rewritten in place within `OutputBufferLength`, and the statistics.
//! The buffer is only ever borrowed: nothing of it is copied onto the stack.

use crate::complete::{complete_read, complete_write};
use crate::ctl::OffloadOp;
use crate::facts::OffloadFacts;
use crate::governance::journal::{DecidedBy, Event};
use crate::governance::request::{Governance, JournalAt, JournalSeq, LearntSubject};
use crate::governance::rule::Needs;
use crate::policy::{Governed, PolicyMode, govern};
use crate::rules::Rules;
use crate::stats::VolumeStats;
use crate::status::NtStatus;
use crate::storage::StorageState;
use crate::validate::{Check, OffloadRequest};
use crate::verdict::{Answer, Completion, OffloadVerdict, ReadContext, Verdict, WriteContext};
use crate::wire::{
    OffloadReadInput, OffloadReadOutput, OffloadWriteInput, OffloadWriteOutput, WireStruct,
};

/// The METHOD_BUFFERED request as the filter sees it.
#[derive(Debug)]
pub struct BufferedRequest<'a> {
    /// `FSCTL_OFFLOAD_READ` or `FSCTL_OFFLOAD_WRITE`.
    pub op: OffloadOp,
    /// The system buffer: `max(InputBufferLength, OutputBufferLength)` bytes; input and output
    /// share it.
    pub buffer: &'a mut [u8],
    /// `InputBufferLength`.
    pub input_len: usize,
    /// `OutputBufferLength`.
    pub output_len: usize,
}

impl BufferedRequest<'_> {
    fn input(&self) -> &[u8] {
        let len = self.input_len.min(self.buffer.len());
        self.buffer.get(..len).unwrap_or_default()
    }

    fn input_mut(&mut self) -> &mut [u8] {
        let len = self.input_len.min(self.buffer.len());
        self.buffer.get_mut(..len).unwrap_or_default()
    }

    fn output(&mut self) -> &mut [u8] {
        let len = self.output_len.min(self.buffer.len());
        self.buffer.get_mut(..len).unwrap_or_default()
    }
}

/// What post-operation needs; the driver keeps it as the completion context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostContext {
    /// An enforced offload read.
    Read(ReadContext),
    /// An enforced offload write.
    Write(WriteContext),
    /// Monitor mode: the request went down untouched; the answer passes through and is counted.
    Observe {
        /// The operation.
        op: OffloadOp,
        /// `CopyLength` the caller asked for (0 if the input was unreadable).
        requested_length: u64,
    },
}

impl PostContext {
    /// The operation.
    #[must_use]
    pub const fn op(&self) -> OffloadOp {
        match self {
            Self::Read(_) => OffloadOp::Read,
            Self::Write(_) => OffloadOp::Write,
            Self::Observe { op, .. } => *op,
        }
    }
}

/// The outcome of pre-operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreOp {
    /// Complete now (`FLT_PREOP_COMPLETE`): the output, if any, is already in the buffer.
    Complete {
        /// `IoStatus.Status`.
        status: NtStatus,
        /// `IoStatus.Information`.
        information: usize,
        /// The rule that decided (`None` for a policy veto).
        check: Option<Check>,
    },
    /// Send down (`FLT_PREOP_SUCCESS_WITH_CALLBACK`) and call [`post_operation`] with `context`.
    Forward {
        /// Completion context.
        context: PostContext,
        /// The input's `CopyLength` was rewritten (trimmed) in the buffer; the parameter block
        /// is unchanged.
        input_rewritten: bool,
        /// The rule that decided (`None`: monitored, no check decided).
        check: Option<Check>,
        /// The request's journal record, to complete in post-operation ([`JournalSeq`]).
        journal_seq: Option<u64>,
    },
    /// Send down untouched and do not call back (`FLT_PREOP_SUCCESS_NO_CALLBACK`): the buffer is
    /// as the caller sent it, the file system decides, and the answer is not seen (enforce mode,
    /// a fact query failed; counted as `fact_failed` and `forwarded`).
    PassThrough {
        /// The rule that decided ([`Check::FactUnavailable`]).
        check: Check,
    },
}

fn complete_with<Out: Answer>(
    completion: &Completion<Out>,
    request: &mut BufferedRequest<'_>,
    check: Check,
) -> PreOp {
    PreOp::Complete {
        status: completion.status,
        information: completion.write_output(request.output()),
        check: Some(check),
    }
}

fn requested_length(op: OffloadOp, input: &[u8]) -> u64 {
    match op {
        OffloadOp::Read => OffloadReadInput::view(input).map_or(0, |i| i.copy_length.get()),
        OffloadOp::Write => OffloadWriteInput::view(input).map_or(0, |i| i.copy_length.get()),
    }
}

/// What pre-operation needs besides the buffer and the facts.
#[derive(Clone, Copy, Debug)]
pub struct PreEnv<'a> {
    /// The volume's mode: what applies when no rule matches.
    pub mode: PolicyMode,
    /// The conflict choices.
    pub rules: &'a Rules,
    /// The volume's counters.
    pub stats: Option<&'a VolumeStats>,
    /// The governance rules (`None`: none configured, nothing is evaluated).
    pub governance: Option<Governance<'a>>,
    /// The decision journal (`None`: nothing is recorded).
    pub journal: Option<JournalAt<'a>>,
}

/// odxflt's pre-operation for an offload FSCTL, without rules or journal: [`pre_operation_in`]
/// with the volume's `mode` for every request.
pub fn pre_operation<F: OffloadFacts + ?Sized>(
    request: BufferedRequest<'_>,
    mode: PolicyMode,
    facts: &mut F,
    rules: &Rules,
    stats: Option<&VolumeStats>,
) -> PreOp {
    govern_and_apply(request, mode, facts, rules, stats)
}

/// odxflt's pre-operation for an offload FSCTL: the first matching rule's action, or the
/// volume's mode, decides how the request is governed ([`govern`]); the counters and the journal
/// record what happened.
// Always inlined: the plain path is `pre_operation`'s own, and a call would add its prologue
// and the returned `PreOp`'s copy to every request (48 instructions, callgrind). What only rules
// and names need is out of line ([`prepare`], [`record`]): with nothing configured the request
// pays two tests, and none of their locals is in the frame that is live while the checks call
// out of the image (issue 12's stack budget).
#[inline(always)]
pub fn pre_operation_in<F: OffloadFacts + ?Sized>(
    mut request: BufferedRequest<'_>,
    facts: &mut F,
    env: &PreEnv<'_>,
) -> PreOp {
    let rules = env.governance.filter(|g| !g.rules.rules().is_empty());
    let names = env.journal.is_some_and(|at| at.names);
    let matched = if rules.is_some() || names {
        prepare(&request, facts, rules, names, env.journal.is_some())
    } else {
        None
    };
    let mode = matched.map_or(env.mode, |(_, action)| action);
    // The file offset as the caller sent it, for the journal: governing may write an answer over
    // the input (input and output share the system buffer: a zero-length request's answer
    // covers `FileOffset`). `black_box` is an optimisation barrier here, not a correctness
    // device: without it LLVM rearranges the driver's pre-operation around the value and its
    // frame grows by 144 B (816 B instead of 672 B, live across the checks' kernel calls; the
    // PE harness's stack analysis, docs/performance.md §7).
    let offset = if env.journal.is_some() {
        core::hint::black_box(file_offset(request.op, request.input()))
    } else {
        0
    };
    let mut pre = govern_and_apply(
        BufferedRequest {
            op: request.op,
            buffer: &mut *request.buffer,
            input_len: request.input_len,
            output_len: request.output_len,
        },
        mode,
        facts,
        env.rules,
        env.stats,
    );
    if let Some(at) = env.journal {
        record(at, &mut pre, mode, matched, offset, facts, &mut request);
    }
    pre
}

/// What the rules need before they are evaluated: the facts the candidate rules' expensive
/// fields ask for (and the names, when the journal records them) are asked here, then the
/// rules are evaluated from the answers; returns the first matching rule and its action.
// Not inlined: its locals stay out of pre-operation's frame. Its own frame is live across the
// name and size queries only, never across the checks' queries.
#[inline(never)]
fn prepare<F: OffloadFacts + ?Sized>(
    request: &BufferedRequest<'_>,
    facts: &mut F,
    rules: Option<Governance<'_>>,
    names: bool,
    journal: bool,
) -> Option<(usize, PolicyMode)> {
    let op = request.op;
    let length = requested_length(op, request.input());
    let needs = rules.map_or(Needs::empty(), |g| {
        g.rules.candidate_needs(op, g.requestor, length, &g.volume)
    });
    let size = if needs.contains(Needs::SIZE) {
        facts.stream_sizes().ok().map(|s| s.end_of_file)
    } else {
        None
    };
    if names || needs.contains(Needs::PROCESS) {
        let _ = facts.process_image();
    }
    if names || needs.contains(Needs::PATH) {
        let _ = facts.file_path();
    }
    let matched = match rules {
        Some(g) => {
            let (process, path) = facts.known_names();
            evaluate_rules(&g, op, length, process, path, size)
        }
        None => None,
    };
    if matched.is_some() && !names && journal {
        // A matched request is always named in its record.
        let _ = facts.process_image();
        let _ = facts.file_path();
    }
    matched
}

/// The first matching rule for the request, from what was learnt of it.
#[inline(never)]
fn evaluate_rules(
    g: &Governance<'_>,
    op: OffloadOp,
    length: u64,
    process: Option<&[u16]>,
    path: Option<&[u16]>,
    size: Option<u64>,
) -> Option<(usize, PolicyMode)> {
    g.rules.evaluate(&mut LearntSubject {
        op,
        requestor: g.requestor,
        length,
        volume: g.volume,
        process,
        path,
        size,
    })
}

/// Governs the request under `mode`, counts it, and turns the outcome into the callback's
/// answer.
#[inline(always)]
fn govern_and_apply<F: OffloadFacts + ?Sized>(
    mut request: BufferedRequest<'_>,
    mode: PolicyMode,
    facts: &mut F,
    rules: &Rules,
    stats: Option<&VolumeStats>,
) -> PreOp {
    let op = request.op;
    let governed = govern(
        mode,
        op,
        OffloadRequest {
            input: request.input(),
            output_len: request.output_len,
        },
        facts,
        rules,
    );
    if let Some(stats) = stats {
        stats.on_pre_operation(op, &governed);
    }
    match governed {
        Governed::Veto(status) => PreOp::Complete {
            status,
            information: 0,
            check: None,
        },
        Governed::Observe { .. } => PreOp::Forward {
            context: PostContext::Observe {
                op,
                requested_length: requested_length(op, request.input()),
            },
            input_rewritten: false,
            check: None,
            journal_seq: None,
        },
        Governed::Enforce(decision) => match decision.verdict {
            OffloadVerdict::Read(Verdict::Complete(c)) => {
                complete_with(&c, &mut request, decision.check)
            }
            OffloadVerdict::Write(Verdict::Complete(c)) => {
                complete_with(&c, &mut request, decision.check)
            }
            OffloadVerdict::Read(Verdict::PassThrough)
            | OffloadVerdict::Write(Verdict::PassThrough) => PreOp::PassThrough {
                check: decision.check,
            },
            OffloadVerdict::Read(Verdict::Forward(fwd)) => PreOp::Forward {
                context: PostContext::Read(fwd.context),
                input_rewritten: fwd.rewrite(request.input_mut()),
                check: Some(decision.check),
                journal_seq: None,
            },
            OffloadVerdict::Write(Verdict::Forward(fwd)) => PreOp::Forward {
                context: PostContext::Write(fwd.context),
                input_rewritten: fwd.rewrite(request.input_mut()),
                check: Some(decision.check),
                journal_seq: None,
            },
        },
    }
}

/// What the journal says decided a request: the check that decided it when it was enforced,
/// else the matching rule, else the volume's mode (`mode`: the one it was governed under).
fn decided_by(pre: &PreOp, mode: PolicyMode, matched: Option<(usize, PolicyMode)>) -> DecidedBy {
    let check = match *pre {
        PreOp::Complete { check, .. } | PreOp::Forward { check, .. } => check,
        PreOp::PassThrough { check } => Some(check),
    };
    match (
        check,
        matched.and_then(|(index, _)| u16::try_from(index).ok()),
    ) {
        (Some(check), _) => DecidedBy::Check(check),
        (None, Some(index)) => DecidedBy::Rule(index),
        (None, None) => DecidedBy::Mode(mode),
    }
}

// Not inlined: the no-journal path keeps its small frame, and the record's few hundred bytes of
// locals live only here.
#[inline(never)]
fn record<F: OffloadFacts + ?Sized>(
    at: JournalAt<'_>,
    pre: &mut PreOp,
    mode: PolicyMode,
    matched: Option<(usize, PolicyMode)>,
    offset: u64,
    facts: &F,
    request: &mut BufferedRequest<'_>,
) {
    let (process, path) = facts.known_names();
    // Names only when the journal records them or a rule matched (asked before this call).
    let named = at.names || matched.is_some();
    let (process, path) = if named {
        (process.unwrap_or_default(), path.unwrap_or_default())
    } else {
        (&[][..], &[][..])
    };
    // The caller's `CopyLength`: a forward's context keeps it (the buffer's may be trimmed); a
    // request answered for `Check::ZeroLength` asked 0 (its answer is written over the input);
    // a refusal left the input as it was.
    let length = match *pre {
        PreOp::Forward { context, .. } => match context {
            PostContext::Read(ctx) => ctx.requested_length,
            PostContext::Write(ctx) => ctx.requested_length,
            PostContext::Observe {
                requested_length, ..
            } => requested_length,
        },
        PreOp::Complete {
            check: Some(Check::ZeroLength),
            ..
        } => 0,
        PreOp::Complete { .. } | PreOp::PassThrough { .. } => {
            requested_range(request.op, request.input()).1
        }
    };
    let pending = match *pre {
        PreOp::Complete {
            status,
            information,
            ..
        } => Some((
            status,
            done_in_output(request.op, request.output(), information),
        )),
        PreOp::Forward { .. } | PreOp::PassThrough { .. } => None,
    };
    let event = Event {
        time: at.time,
        volume: at.volume,
        process_id: at.process_id,
        process_image: process,
        file_name: path,
        op: request.op,
        offset,
        length,
        rule: matched.and_then(|(index, _)| u16::try_from(index).ok()),
        decided_by: decided_by(pre, mode, matched),
    };
    match (pending, pre) {
        (Some((status, done)), _) => {
            at.log.record_completed(&event, status, done);
        }
        (None, PreOp::Forward { journal_seq, .. }) => {
            *journal_seq = Some(at.log.record_forwarded(&event));
        }
        // Passed through: no post-operation will see the answer; the record stays pending.
        (None, _) => {
            at.log.record_forwarded(&event);
        }
    }
}

/// The input's `FileOffset` (0 if the input is unreadable).
// Not inlined: one call on the journaled path instead of the views' code in pre-operation's
// frame (which is live across the checks' kernel calls).
#[inline(never)]
fn file_offset(op: OffloadOp, input: &[u8]) -> u64 {
    requested_range(op, input).0
}

fn requested_range(op: OffloadOp, input: &[u8]) -> (u64, u64) {
    match op {
        OffloadOp::Read => OffloadReadInput::view(input)
            .map_or((0, 0), |i| (i.file_offset.get(), i.copy_length.get())),
        OffloadOp::Write => OffloadWriteInput::view(input)
            .map_or((0, 0), |i| (i.file_offset.get(), i.copy_length.get())),
    }
}

/// Bytes an answer in `bytes` (its first `information` bytes) reports done.
fn done_in_output(op: OffloadOp, bytes: &[u8], information: usize) -> u64 {
    let bytes = bytes.get(..information).unwrap_or_default();
    match op {
        OffloadOp::Read => OffloadReadOutput::view(bytes).map_or(0, |o| o.transfer_length.get()),
        OffloadOp::Write => OffloadWriteOutput::view(bytes).map_or(0, |o| o.length_written.get()),
    }
}

/// The answer from below, as the filter sees it in post-operation.
#[derive(Debug)]
pub struct LowerAnswer<'a> {
    /// `IoStatus.Status` from below.
    pub status: NtStatus,
    /// `IoStatus.Information` from below.
    pub information: usize,
    /// The system buffer (as in pre-operation).
    pub buffer: &'a mut [u8],
    /// `OutputBufferLength`.
    pub output_len: usize,
}

/// The volume's storage state and the interrupt time of the completion, for post-operation's
/// learning ([`StorageState::learn`]).
#[derive(Clone, Copy, Debug)]
pub struct StorageAt<'a> {
    /// The volume's storage state.
    pub state: &'a StorageState,
    /// Interrupt time now (100-ns ticks).
    pub now: u64,
}

/// odxflt's post-operation: returns the final `(IoStatus.Status, IoStatus.Information)`; the
/// output in the buffer is rewritten when odxflt changed it, never beyond `OutputBufferLength`.
/// A refusal from the storage starts the volume's back-off ([`StorageState::learn`]) before the
/// status is mapped.
pub fn post_operation(
    context: &PostContext,
    answer: LowerAnswer<'_>,
    rules: &Rules,
    stats: Option<&VolumeStats>,
    storage: Option<StorageAt<'_>>,
    journal: Option<JournalSeq<'_>>,
) -> (NtStatus, usize) {
    if let Some(at) = storage {
        at.state.learn(context.op(), answer.status, at.now);
    }
    let out_len = answer.output_len.min(answer.buffer.len());
    let returned = answer.information.min(out_len);
    let (status, information, asked, done) = match context {
        PostContext::Observe {
            op,
            requested_length,
        } => {
            let done = done_in_output(*op, answer.buffer, returned);
            (answer.status, answer.information, *requested_length, done)
        }
        PostContext::Read(ctx) => {
            let bytes = answer.buffer.get(..returned).unwrap_or_default();
            let c = complete_read(ctx, answer.status, bytes, rules);
            let done = c.output.map_or(0, |o| o.transfer_length);
            let out = answer.buffer.get_mut(..out_len).unwrap_or_default();
            (c.status, c.write_output(out), ctx.requested_length, done)
        }
        PostContext::Write(ctx) => {
            let bytes = answer.buffer.get(..returned).unwrap_or_default();
            let c = complete_write(ctx, answer.status, bytes, rules);
            let done = c.output.map_or(0, |o| o.length_written);
            let out = answer.buffer.get_mut(..out_len).unwrap_or_default();
            (c.status, c.write_output(out), ctx.requested_length, done)
        }
    };
    if let Some(stats) = stats {
        stats.on_post_operation(context.op(), status, asked, done);
    }
    if let Some(journal) = journal {
        journal.log.complete(journal.seq, status, done);
    }
    (status, information)
}
