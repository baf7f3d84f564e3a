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
        /// The input in the buffer was rewritten (trimmed): the driver must mark the callback
        /// data dirty.
        input_rewritten: bool,
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

/// odxflt's pre-operation for an offload FSCTL.
pub fn pre_operation<F: OffloadFacts + ?Sized>(
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
            },
            OffloadVerdict::Write(Verdict::Forward(fwd)) => PreOp::Forward {
                context: PostContext::Write(fwd.context),
                input_rewritten: fwd.rewrite(request.input_mut()),
            },
        },
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
            let bytes = answer.buffer.get(..returned).unwrap_or_default();
            let done = match op {
                OffloadOp::Read => {
                    OffloadReadOutput::view(bytes).map_or(0, |o| o.transfer_length.get())
                }
                OffloadOp::Write => {
                    OffloadWriteOutput::view(bytes).map_or(0, |o| o.length_written.get())
                }
            };
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
    (status, information)
}
