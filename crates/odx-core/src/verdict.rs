//! What a decision produces: complete the request now, forward it to the volume below (possibly
//! trimmed, with a post-operation), or pass it through untouched (no post-operation).
//!
//! Nothing here holds a wire structure. A completion names the fields odxflt answers
//! ([`ReadAnswer`], [`WriteAnswer`]) and writes them straight into the output part of the system
//! buffer; a forward carries only its completion context, whose `forwarded_length` is the one
//! field a trimmed request changes, rewritten where it lies ([`ForwardRead::rewrite`]). So no
//! 512-byte token is copied, and no value on the request path is larger than a few words.

use crate::ctl::OffloadOp;
use crate::error::WireError;
use crate::facts::SectorSize;
use crate::flags::OffloadReadFlags;
use crate::status::NtStatus;
use crate::wire::{
    OffloadReadInput, OffloadReadOutput, OffloadWriteInput, OffloadWriteOutput,
    STORAGE_OFFLOAD_TOKEN_ID_LENGTH, STORAGE_OFFLOAD_TOKEN_TYPE_ZERO_DATA, WireStruct,
};

/// An answer odxflt writes into the output buffer: the fields it sets, written in place.
pub trait Answer: Copy {
    /// Bytes of output the answer occupies (`IoStatus.Information`).
    const SIZE: usize;

    /// Writes the answer's fields into the start of `out` and returns [`Self::SIZE`]. Nothing is
    /// written when `out` is too short.
    ///
    /// # Errors
    /// [`WireError::TooShort`] when `out` is shorter than [`Self::SIZE`].
    fn write_into(&self, out: &mut [u8]) -> Result<usize, WireError>;
}

/// The token of a [`ReadAnswer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerToken {
    /// The well-known zero-data token (`MAKE_ZERO_TOKEN`), written by odxflt.
    ZeroData,
    /// The token the storage returned, already in the output buffer: odxflt leaves its 512
    /// bytes where they are.
    FromBelow,
}

/// An `FSCTL_OFFLOAD_READ_OUTPUT` odxflt answers: `Size` is always 528.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadAnswer {
    /// `Flags`.
    pub flags: OffloadReadFlags,
    /// `TransferLength`.
    pub transfer_length: u64,
    /// `Token`.
    pub token: AnswerToken,
}

impl Answer for ReadAnswer {
    const SIZE: usize = OffloadReadOutput::SIZE;

    fn write_into(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let output = OffloadReadOutput::view_mut(out)?;
        output.size.set(528);
        output.flags.set(self.flags.bits());
        output.transfer_length.set(self.transfer_length);
        if self.token == AnswerToken::ZeroData {
            let token = &mut output.token;
            token.token_type.set(STORAGE_OFFLOAD_TOKEN_TYPE_ZERO_DATA);
            token.reserved = [0; 2];
            token.token_id_length.set(0x01F8);
            token.token_id = [0; STORAGE_OFFLOAD_TOKEN_ID_LENGTH];
        }
        Ok(Self::SIZE)
    }
}

/// An `FSCTL_OFFLOAD_WRITE_OUTPUT` odxflt answers: `Size` 16, `Flags` 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteAnswer {
    /// `LengthWritten`.
    pub length_written: u64,
}

impl Answer for WriteAnswer {
    const SIZE: usize = OffloadWriteOutput::SIZE;

    fn write_into(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let output = OffloadWriteOutput::view_mut(out)?;
        output.size.set(16);
        output.flags.set(0);
        output.length_written.set(self.length_written);
        Ok(Self::SIZE)
    }
}

/// A request completed by odxflt (in pre-operation, or after mapping the answer from below).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion<Out> {
    /// The final status.
    pub status: NtStatus,
    /// The answer, present only on success.
    pub output: Option<Out>,
}

impl<Out: Answer> Completion<Out> {
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

    /// Writes the answer (if any) into the caller's buffer, in place, and returns
    /// `IoStatus.Information`. Writes nothing, and returns 0, when the buffer is too short;
    /// validation guarantees it is not whenever there is output.
    pub fn write_output(&self, buffer: &mut [u8]) -> usize {
        self.output
            .as_ref()
            .and_then(|out| out.write_into(buffer).ok())
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
    pub const fn untouched(length: u64, sector_size: SectorSize) -> Self {
        Self {
            requested_length: length,
            forwarded_length: length,
            zero_beyond_forwarded: false,
            sector_size,
        }
    }
}

/// An offload read to send below: the input stays in the caller's buffer, and only its
/// `CopyLength` may change ([`Self::copy_length`], rewritten in place by [`Self::rewrite`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardRead {
    /// Kept for post-operation; `forwarded_length` is the `CopyLength` sent below.
    pub context: ReadContext,
}

impl ForwardRead {
    /// The `CopyLength` the file system must see.
    #[must_use]
    pub const fn copy_length(&self) -> u64 {
        self.context.forwarded_length
    }

    /// Whether `CopyLength` differs from what the caller sent.
    #[must_use]
    pub const fn trimmed(&self) -> bool {
        self.context.forwarded_length != self.context.requested_length
    }

    /// Rewrites `CopyLength` of the `FSCTL_OFFLOAD_READ_INPUT` at the start of `input`, in
    /// place, when the request was trimmed; every other byte stays as the caller sent it.
    /// Returns whether the buffer was rewritten.
    pub fn rewrite(&self, input: &mut [u8]) -> bool {
        if !self.trimmed() {
            return false;
        }
        match OffloadReadInput::view_mut(input) {
            Ok(view) => {
                view.copy_length.set(self.copy_length());
                true
            }
            Err(_) => false,
        }
    }
}

/// What odxflt must remember from pre-operation to map an offload write's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteContext {
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
    pub const fn untouched(length: u64, sector_size: SectorSize) -> Self {
        Self {
            requested_length: length,
            forwarded_length: length,
            sector_size,
        }
    }
}

/// An offload write to send below: the input (and its 512-byte token) stays in the caller's
/// buffer, and only its `CopyLength` may change ([`Self::copy_length`], rewritten in place by
/// [`Self::rewrite`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardWrite {
    /// Kept for post-operation; `forwarded_length` is the `CopyLength` sent below.
    pub context: WriteContext,
}

impl ForwardWrite {
    /// The `CopyLength` the file system must see.
    #[must_use]
    pub const fn copy_length(&self) -> u64 {
        self.context.forwarded_length
    }

    /// Whether `CopyLength` differs from what the caller sent.
    #[must_use]
    pub const fn trimmed(&self) -> bool {
        self.context.forwarded_length != self.context.requested_length
    }

    /// Rewrites `CopyLength` of the `FSCTL_OFFLOAD_WRITE_INPUT` at the start of `input`, in
    /// place, when the request was trimmed; every other byte (the token included) stays as the
    /// caller sent it. Returns whether the buffer was rewritten.
    pub fn rewrite(&self, input: &mut [u8]) -> bool {
        if !self.trimmed() {
            return false;
        }
        match OffloadWriteInput::view_mut(input) {
            Ok(view) => {
                view.copy_length.set(self.copy_length());
                true
            }
            Err(_) => false,
        }
    }
}

/// The verdict on an offload read.
pub type ReadVerdict = Verdict<ReadAnswer, ForwardRead>;
/// The verdict on an offload write.
pub type WriteVerdict = Verdict<WriteAnswer, ForwardWrite>;

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
