//! odxflt as the simulator runs it: the same sequence the driver performs in its
//! `IRP_MJ_FILE_SYSTEM_CONTROL` callbacks —
//!
//! 1. pre-operation: gather facts on demand ([`ModelFacts`], the simulator's answer to
//!    `OffloadFacts`) and call [`odx_core::validate::decide`];
//! 2. `Complete` → write the output into the system buffer and complete
//!    (`FLT_PREOP_COMPLETE`); `Forward` → rewrite the input when the core trimmed it and pass the
//!    request down with a completion context (`FLT_PREOP_SUCCESS_WITH_CALLBACK`);
//! 3. post-operation: map the answer from below with [`odx_core::complete`].
//!
//! Nothing here decides a rule; every rule is odx-core's.

use odx_core::lock::{OpenId, range_conflicts};
use odx_core::validate::{Check, OffloadRequest, decide};
use odx_core::verdict::{OffloadVerdict, ReadContext, Verdict, WriteContext};
use odx_core::{
    ByteRange, FactKind, HandleFacts, LockIntent, NtStatus, OffloadFacts, OffloadOp, Rules,
    StreamKind, StreamSizes, VolumeFacts, WireStruct,
};

use crate::volume::FileEntry;

/// How many times each fact was asked for during one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FactCounts {
    /// [`FactKind::Volume`].
    pub volume: u32,
    /// [`FactKind::Handle`].
    pub handle: u32,
    /// [`FactKind::StreamKind`].
    pub stream_kind: u32,
    /// [`FactKind::StreamSizes`].
    pub stream_sizes: u32,
    /// [`FactKind::Locks`].
    pub locks: u32,
}

impl FactCounts {
    /// The count for one kind.
    #[must_use]
    pub const fn get(&self, kind: FactKind) -> u32 {
        match kind {
            FactKind::Volume => self.volume,
            FactKind::Handle => self.handle,
            FactKind::StreamKind => self.stream_kind,
            FactKind::StreamSizes => self.stream_sizes,
            FactKind::Locks => self.locks,
        }
    }

    fn bump(&mut self, kind: FactKind) {
        let slot = match kind {
            FactKind::Volume => &mut self.volume,
            FactKind::Handle => &mut self.handle,
            FactKind::StreamKind => &mut self.stream_kind,
            FactKind::StreamSizes => &mut self.stream_sizes,
            FactKind::Locks => &mut self.locks,
        };
        *slot = slot.saturating_add(1);
    }

    /// Total queries.
    #[must_use]
    pub const fn total(&self) -> u32 {
        self.volume + self.handle + self.stream_kind + self.stream_sizes + self.locks
    }
}

/// The handle (file object) a request arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandleState {
    /// The file.
    pub file: crate::store::FileId,
    /// Granted access.
    pub granted: odx_core::flags::AccessMask,
    /// Lock owner identity of this open.
    pub open: OpenId,
    /// Lock key used for I/O through this handle.
    pub key: u32,
    /// Cleanup has run.
    pub closed: bool,
}

/// `OffloadFacts` answered from the model, counting each query.
#[derive(Debug)]
pub struct ModelFacts<'a> {
    /// Volume facts (cached per volume in the driver).
    pub volume: VolumeFacts,
    /// The file the handle opens.
    pub file: &'a FileEntry,
    /// The handle.
    pub handle: HandleState,
    /// Query counts.
    pub counts: FactCounts,
}

impl OffloadFacts for ModelFacts<'_> {
    fn volume(&mut self) -> Result<VolumeFacts, NtStatus> {
        self.counts.bump(FactKind::Volume);
        Ok(self.volume)
    }

    fn handle(&mut self) -> Result<HandleFacts, NtStatus> {
        self.counts.bump(FactKind::Handle);
        Ok(HandleFacts {
            granted: self.handle.granted,
            closed: self.handle.closed,
        })
    }

    fn stream_kind(&mut self) -> Result<StreamKind, NtStatus> {
        self.counts.bump(FactKind::StreamKind);
        Ok(StreamKind {
            attributes: self.file.attributes,
            markers: self.file.markers,
        })
    }

    fn stream_sizes(&mut self) -> Result<StreamSizes, NtStatus> {
        self.counts.bump(FactKind::StreamSizes);
        Ok(StreamSizes {
            end_of_file: self.file.end_of_file,
            valid_data_length: self.file.valid_data_length,
            delete_pending: self.file.delete_pending,
        })
    }

    fn lock_conflict(&mut self, range: ByteRange, intent: LockIntent) -> Result<bool, NtStatus> {
        self.counts.bump(FactKind::Locks);
        Ok(range_conflicts(
            &self.file.locks,
            range,
            intent,
            self.handle.open,
            self.handle.key,
        ))
    }
}

/// What post-operation needs (the driver's completion context).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostContext {
    /// A forwarded offload read.
    Read(ReadContext),
    /// A forwarded offload write.
    Write(WriteContext),
}

/// The outcome of pre-operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreOp {
    /// Completed in pre-operation: status and `IoStatus.Information` (output already in the
    /// buffer).
    Complete {
        /// Final status.
        status: NtStatus,
        /// Output bytes written.
        information: usize,
        /// The rule that decided.
        check: Check,
    },
    /// Pass down (the buffer holds the input to forward) and call [`post_operation`] after.
    Forward(PostContext),
}

/// odxflt's pre-operation callback for an offload FSCTL. `buffer` is the METHOD_BUFFERED system
/// buffer (max of the two lengths); its first `input_len` bytes are the input.
pub fn pre_operation<F: OffloadFacts + ?Sized>(
    op: OffloadOp,
    buffer: &mut [u8],
    input_len: usize,
    output_len: usize,
    facts: &mut F,
    rules: &Rules,
) -> PreOp {
    let input = buffer.get(..input_len).unwrap_or_default();
    let decision = decide(op, OffloadRequest { input, output_len }, facts, rules);
    let out_buf_len = output_len.min(buffer.len());
    let out = buffer.get_mut(..out_buf_len).unwrap_or_default();
    match decision.verdict {
        OffloadVerdict::Read(Verdict::Complete(c)) => PreOp::Complete {
            status: c.status,
            information: c.write_output(out),
            check: decision.check,
        },
        OffloadVerdict::Write(Verdict::Complete(c)) => PreOp::Complete {
            status: c.status,
            information: c.write_output(out),
            check: decision.check,
        },
        OffloadVerdict::Read(Verdict::Forward(fwd)) => {
            if fwd.trimmed() {
                // The driver rewrites the system buffer and marks the callback data dirty.
                let _ = fwd.input.serialize_into(buffer);
            }
            PreOp::Forward(PostContext::Read(fwd.context))
        }
        OffloadVerdict::Write(Verdict::Forward(fwd)) => {
            if fwd.trimmed() {
                let _ = fwd.input.serialize_into(buffer);
            }
            PreOp::Forward(PostContext::Write(fwd.context))
        }
    }
}

/// odxflt's post-operation callback: maps the answer from below. Returns the final status and
/// `IoStatus.Information`; the output (if any) is rewritten into `buffer`.
pub fn post_operation(
    context: &PostContext,
    below: NtStatus,
    buffer: &mut [u8],
    information: usize,
    output_len: usize,
    rules: &Rules,
) -> (NtStatus, usize) {
    let answer = buffer
        .get(..information.min(output_len))
        .unwrap_or_default()
        .to_vec();
    let out = buffer
        .get_mut(..output_len.min(buffer.len()))
        .unwrap_or_default();
    match context {
        PostContext::Read(ctx) => {
            let c = odx_core::complete::complete_read(ctx, below, &answer, rules);
            (c.status, c.write_output(out))
        }
        PostContext::Write(ctx) => {
            let c = odx_core::complete::complete_write(ctx, below, &answer, rules);
            (c.status, c.write_output(out))
        }
    }
}
