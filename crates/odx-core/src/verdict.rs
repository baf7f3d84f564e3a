//! What a decision produces: complete the request now, forward it to the volume below (possibly
//! trimmed, with a post-operation), or pass it through untouched (no post-operation).

use crate::ctl::OffloadOp;
use crate::facts::SectorSize;
use crate::status::NtStatus;
use crate::wire::{
    OffloadReadInput, OffloadReadOutput, OffloadWriteInput, OffloadWriteOutput, WireStruct,
};

/// A request completed by odxflt (in pre-operation, or after mapping the answer from below).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion<Out> {
    /// The final status.
    pub status: NtStatus,
    /// The output structure, present only on success.
    pub output: Option<Out>,
}

impl<Out: WireStruct> Completion<Out> {
    /// A completion without output (every failure).
    #[must_use]
    pub const fn status(status: NtStatus) -> Self {
        Self {
            status,
            output: None,
        }
    }

    /// A successful completion with output.
    #[must_use]
    pub const fn success(output: Out) -> Self {
        Self {
            status: NtStatus::STATUS_SUCCESS,
            output: Some(output),
        }
    }

    /// `IoStatus.Information`: bytes of output returned.
    #[must_use]
    pub const fn information(&self) -> usize {
        if self.output.is_some() { Out::SIZE } else { 0 }
    }

    /// Writes the output (if any) to the caller's buffer and returns `IoStatus.Information`.
    /// Writes nothing, and returns 0, when the buffer is too short; validation guarantees it is
    /// not whenever there is output.
    pub fn write_output(&self, buffer: &mut [u8]) -> usize {
        self.output
            .as_ref()
            .and_then(|out| out.serialize_into(buffer).ok())
            .unwrap_or(0)
    }
}

/// The decision for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<Out, Fwd> {
    /// Complete the request now with this status (and output).
    Complete(Completion<Out>),
    /// Send the request on to the file system and storage below, and map the answer in
    /// post-operation.
    Forward(Fwd),
    /// Send the request down exactly as the caller sent it, with no post-operation
    /// (`FLT_PREOP_SUCCESS_NO_CALLBACK`): odxflt could not learn a fact it needs
    /// ([`Check::FactUnavailable`](crate::validate::Check::FactUnavailable)), so it neither
    /// refuses nor vouches, and the file system decides.
    PassThrough,
}

/// What odxflt must remember from pre-operation to map an offload read's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadContext {
    /// `FileOffset` of the request.
    pub file_offset: u64,
    /// `CopyLength` the caller asked for.
    pub requested_length: u64,
    /// `CopyLength` sent below (after trimming to valid data length / end of file).
    pub forwarded_length: u64,
    /// The range was trimmed at valid data length that lies below end of file: if the answer
    /// covers the whole forwarded range, the data after it is zero.
    pub zero_beyond_forwarded: bool,
    /// Volume sector size, to check the answer's alignment.
    pub sector_size: SectorSize,
}

impl ReadContext {
    /// The context of a read forwarded exactly as the caller sent it (nothing trimmed, no zero
    /// flag of odxflt's own): post-operation passes the file system's answer through — its
    /// token, `TransferLength` and flags (the zero token with `ALL_ZERO_BEYOND_CURRENT_RANGE`
    /// that NTFS answers beyond valid data length, MS-FSA read 14) — after the same contract
    /// checks as any answer.
    #[must_use]
    pub const fn untouched(file_offset: u64, length: u64, sector_size: SectorSize) -> Self {
        Self {
            file_offset,
            requested_length: length,
            forwarded_length: length,
            zero_beyond_forwarded: false,
            sector_size,
        }
    }
}

/// An offload read to send below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardRead {
    /// The input as it must reach the file system (`CopyLength` possibly trimmed).
    pub input: OffloadReadInput,
    /// Kept for post-operation.
    pub context: ReadContext,
}

impl ForwardRead {
    /// Whether the input differs from what the caller sent (the driver must rewrite the buffer
    /// and mark the callback data dirty).
    #[must_use]
    pub const fn trimmed(&self) -> bool {
        self.context.forwarded_length != self.context.requested_length
    }
}

/// What odxflt must remember from pre-operation to map an offload write's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteContext {
    /// `FileOffset` of the request.
    pub file_offset: u64,
    /// `CopyLength` the caller asked for.
    pub requested_length: u64,
    /// `CopyLength` sent below (after trimming to end of file).
    pub forwarded_length: u64,
    /// Volume sector size.
    pub sector_size: SectorSize,
}

impl WriteContext {
    /// The context of a write forwarded exactly as the caller sent it (nothing trimmed).
    #[must_use]
    pub const fn untouched(file_offset: u64, length: u64, sector_size: SectorSize) -> Self {
        Self {
            file_offset,
            requested_length: length,
            forwarded_length: length,
            sector_size,
        }
    }
}

/// An offload write to send below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardWrite {
    /// The input as it must reach the file system (`CopyLength` possibly trimmed).
    pub input: OffloadWriteInput,
    /// Kept for post-operation.
    pub context: WriteContext,
}

impl ForwardWrite {
    /// Whether the input differs from what the caller sent.
    #[must_use]
    pub const fn trimmed(&self) -> bool {
        self.context.forwarded_length != self.context.requested_length
    }
}

/// The verdict on an offload read.
pub type ReadVerdict = Verdict<OffloadReadOutput, ForwardRead>;
/// The verdict on an offload write.
pub type WriteVerdict = Verdict<OffloadWriteOutput, ForwardWrite>;

/// The verdict on either operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffloadVerdict {
    /// `FSCTL_OFFLOAD_READ`.
    Read(ReadVerdict),
    /// `FSCTL_OFFLOAD_WRITE`.
    Write(WriteVerdict),
}

impl OffloadVerdict {
    /// The operation decided on.
    #[must_use]
    pub const fn op(&self) -> OffloadOp {
        match self {
            Self::Read(_) => OffloadOp::Read,
            Self::Write(_) => OffloadOp::Write,
        }
    }

    /// The status if the verdict completes the request now.
    #[must_use]
    pub const fn completion_status(&self) -> Option<NtStatus> {
        match self {
            Self::Read(Verdict::Complete(c)) => Some(c.status),
            Self::Write(Verdict::Complete(c)) => Some(c.status),
            Self::Read(Verdict::Forward(_) | Verdict::PassThrough)
            | Self::Write(Verdict::Forward(_) | Verdict::PassThrough) => None,
        }
    }

    /// Whether the verdict passes the request through untouched ([`Verdict::PassThrough`]).
    #[must_use]
    pub const fn passes_through(&self) -> bool {
        matches!(
            self,
            Self::Read(Verdict::PassThrough) | Self::Write(Verdict::PassThrough)
        )
    }
}
