//! The checks, in order. MS-FSA §2.1.5.10.20 (read) and §2.1.5.10.21 (write) give the order;
//! odxflt adds what the file system checks at dispatch (dismount, closed handle) in front of it,
//! because those fail every request alike. docs/validation.md lists the order as a table;
//! [`READ_ORDER`] and [`WRITE_ORDER`] are that table.
//!
//! Three things odxflt deliberately does not decide, and leaves to the file system below:
//! the handle's access (the I/O manager checked user-mode callers before any filter, and
//! kernel-mode callers are trusted; `FILE_OBJECT.ReadAccess/WriteAccess` are share-access
//! bookkeeping, not the granted access), the answer of the valid-data-length rule (valid data
//! length comes from an unlocked FCB header, so it may only *trim* a request, never answer one:
//! [`Check::BeyondValidData`]), and a request whose facts it could not learn
//! ([`Check::FactUnavailable`]: passed through untouched).

//! The input is read where it lies ([`WireStruct::view`]): a decision reads the 32-byte header
//! and never the 512-byte token, and what it returns is a few words (an answer's fields or a
//! forward's completion context), never a wire structure.

use crate::ctl::OffloadOp;
use crate::facts::{ByteRange, FactKind, LockIntent, OffloadFacts, SectorSize, StreamSizes};
use crate::flags::{OffloadReadFlags, VolumeFlags};
use crate::rules::{LengthAlignment, PAGE_SIZE, Rules, TinyFile};
use crate::status::NtStatus;
use crate::verdict::{
    Answer, AnswerToken, Completion, ForwardRead, ForwardWrite, OffloadVerdict, ReadAnswer,
    ReadContext, ReadVerdict, Verdict, WriteAnswer, WriteContext, WriteVerdict,
};
use crate::wire::{
    OffloadReadInput, OffloadReadOutput, OffloadWriteInput, OffloadWriteOutput, WireStruct,
};

/// One check of the order; names the rule that decided a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Check {
    /// A fact query failed: odxflt cannot vouch for the request, so it passes it through
    /// untouched, without a post-operation ([`Verdict::PassThrough`]), and the file system
    /// decides.
    FactUnavailable(FactKind),
    /// MS-FSA 1: the file system implements offload → else `STATUS_INVALID_DEVICE_REQUEST`.
    FileSystemImplementsOffload,
    /// The volume is mounted → else `STATUS_VOLUME_DISMOUNTED` ([`Rules::dismounted_write`]).
    VolumeMounted,
    /// The handle has not been cleaned up → else `STATUS_FILE_CLOSED`.
    HandleOpen,
    /// MS-FSA write 2: the volume is writable → else `STATUS_MEDIA_WRITE_PROTECTED`.
    VolumeWritable,
    /// MS-FSA read 2 / write 3: `IsOffload{Read,Write}Supported` → else `STATUS_NOT_SUPPORTED`.
    OffloadSupported,
    /// MS-FSA read 3 / write 4: input buffer holds the structure → else [`Rules::short_buffer`].
    InputLength,
    /// MS-FSA read 4 / write 5: output buffer holds the structure → else [`Rules::short_buffer`].
    OutputLength,
    /// MS-FSA read 5–6 / write 6: offsets and lengths are sector multiples → else
    /// `STATUS_INVALID_PARAMETER`.
    Alignment,
    /// MS-FSA read 7 / write 7: `Size` is the structure size → else `STATUS_INVALID_PARAMETER`.
    SizeField,
    /// MS-FSA read 8 / write 8: `FileOffset + CopyLength` fits in 64 bits → else
    /// `STATUS_INVALID_PARAMETER`.
    RangeOverflow,
    /// MS-FSA read 9 / write 9: `CopyLength == 0` → `STATUS_SUCCESS` at once.
    ZeroLength,
    /// MS-FSA read 10 / write 10: a plain data stream → else
    /// `STATUS_OFFLOAD_{READ,WRITE}_FILE_NOT_SUPPORTED`.
    StreamKind,
    /// MS-FSA read 11 / write 11: the stream is not deleted → else `STATUS_FILE_DELETED`.
    StreamDeleted,
    /// MS-FSA write 12: the range ends within the volume's maximum file size → else
    /// `STATUS_INVALID_PARAMETER`.
    MaxFileSize,
    /// MS-FSA read 12 / write 13: no conflicting byte-range lock → else
    /// `STATUS_FILE_LOCK_CONFLICT`.
    LockConflict,
    /// MS-FSA read 13 / write 15: `FileOffset` is below end of file → else `STATUS_END_OF_FILE`.
    EndOfFile,
    /// Conflict C-6: the file is not too small → else `STATUS_INVALID_PARAMETER`.
    TinyFile,
    /// MS-FSA read 14 (`FileOffset` ≥ valid data length) / write 16 (`FileOffset` > valid data
    /// length): the rule *answers* such a request (read: the zero token; write: a refusal), and
    /// only the file system may answer it, under its own locks. odxflt forwards the request
    /// untouched ([`Verdict::Forward`], nothing trimmed) and passes the file system's answer
    /// through; it never completes a request on the strength of valid data length.
    BeyondValidData,
    /// Every check passed: forward (with read 15 / end-of-file trimming applied).
    Forward,
}

/// The read checks in order.
pub const READ_ORDER: &[Check] = &[
    Check::FileSystemImplementsOffload,
    Check::VolumeMounted,
    Check::HandleOpen,
    Check::OffloadSupported,
    Check::InputLength,
    Check::OutputLength,
    Check::Alignment,
    Check::SizeField,
    Check::RangeOverflow,
    Check::ZeroLength,
    Check::StreamKind,
    Check::StreamDeleted,
    Check::LockConflict,
    Check::EndOfFile,
    Check::TinyFile,
    Check::BeyondValidData,
    Check::Forward,
];

/// The write checks in order.
pub const WRITE_ORDER: &[Check] = &[
    Check::FileSystemImplementsOffload,
    Check::VolumeMounted,
    Check::HandleOpen,
    Check::VolumeWritable,
    Check::OffloadSupported,
    Check::InputLength,
    Check::OutputLength,
    Check::Alignment,
    Check::SizeField,
    Check::RangeOverflow,
    Check::ZeroLength,
    Check::StreamKind,
    Check::StreamDeleted,
    Check::MaxFileSize,
    Check::LockConflict,
    Check::EndOfFile,
    Check::TinyFile,
    Check::BeyondValidData,
    Check::Forward,
];

/// The raw request as the driver sees it: the input bytes (`InputBufferLength` of the system
/// buffer) and the output buffer's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffloadRequest<'a> {
    /// Input bytes.
    pub input: &'a [u8],
    /// `OutputBufferLength`.
    pub output_len: usize,
}

/// A verdict and the check that reached it: a completion names the check that completed it; a
/// forward is [`Check::Forward`], or [`Check::BeyondValidData`] when the request goes down
/// untouched for the file system's valid-data-length rule; a pass-through is
/// [`Check::FactUnavailable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision<V> {
    /// What to do.
    pub verdict: V,
    /// Why.
    pub check: Check,
}

/// How a decision ends before forwarding.
enum Stop<Out> {
    /// Complete now.
    Complete(Completion<Out>),
    /// Pass the request through untouched (a fact query failed).
    PassThrough,
}

type Step<T, Out> = Result<T, (Check, Stop<Out>)>;

fn refuse<T, Out: Answer>(check: Check, status: NtStatus) -> Step<T, Out> {
    Err((check, Stop::Complete(Completion::status(status))))
}

fn answer<T, Out: Answer>(check: Check, output: Out) -> Step<T, Out> {
    Err((check, Stop::Complete(Completion::success(output))))
}

/// A failed query ends the decision with a pass-through: the query's status is not an answer
/// odxflt may give on the file system's behalf.
fn ask<T, Out: Answer>(kind: FactKind, fact: Result<T, NtStatus>) -> Step<T, Out> {
    fact.map_err(|_| (Check::FactUnavailable(kind), Stop::PassThrough))
}

fn finish<Out, Fwd>(step: Step<(Check, Fwd), Out>) -> Decision<Verdict<Out, Fwd>> {
    match step {
        Ok((check, forward)) => Decision {
            verdict: Verdict::Forward(forward),
            check,
        },
        Err((check, Stop::Complete(completion))) => Decision {
            verdict: Verdict::Complete(completion),
            check,
        },
        Err((check, Stop::PassThrough)) => Decision {
            verdict: Verdict::PassThrough,
            check,
        },
    }
}

/// Decides an offload request of either kind.
pub fn decide<F: OffloadFacts + ?Sized>(
    op: OffloadOp,
    request: OffloadRequest<'_>,
    facts: &mut F,
    rules: &Rules,
) -> Decision<OffloadVerdict> {
    match op {
        OffloadOp::Read => {
            let d = decide_read(request, facts, rules);
            Decision {
                verdict: OffloadVerdict::Read(d.verdict),
                check: d.check,
            }
        }
        OffloadOp::Write => {
            let d = decide_write(request, facts, rules);
            Decision {
                verdict: OffloadVerdict::Write(d.verdict),
                check: d.check,
            }
        }
    }
}

/// Decides an `FSCTL_OFFLOAD_READ`.
pub fn decide_read<F: OffloadFacts + ?Sized>(
    request: OffloadRequest<'_>,
    facts: &mut F,
    rules: &Rules,
) -> Decision<ReadVerdict> {
    finish(read_steps(request, facts, rules))
}

/// Decides an `FSCTL_OFFLOAD_WRITE`.
pub fn decide_write<F: OffloadFacts + ?Sized>(
    request: OffloadRequest<'_>,
    facts: &mut F,
    rules: &Rules,
) -> Decision<WriteVerdict> {
    finish(write_steps(request, facts, rules))
}

/// The checks both operations share up to (not including) the buffer checks.
fn common_front<F: OffloadFacts + ?Sized, Out: Answer>(
    op: OffloadOp,
    facts: &mut F,
    rules: &Rules,
) -> Step<crate::facts::VolumeFacts, Out> {
    let volume = ask(FactKind::Volume, facts.volume())?;
    if !volume.file_system.implements_offload() {
        return refuse(
            Check::FileSystemImplementsOffload,
            NtStatus::STATUS_INVALID_DEVICE_REQUEST,
        );
    }
    if volume.flags.contains(VolumeFlags::DISMOUNTED) {
        let status = match op {
            OffloadOp::Read => NtStatus::STATUS_VOLUME_DISMOUNTED,
            OffloadOp::Write => rules.dismounted_write,
        };
        return refuse(Check::VolumeMounted, status);
    }
    let handle = ask(FactKind::Handle, facts.handle())?;
    if handle.closed {
        return refuse(Check::HandleOpen, NtStatus::STATUS_FILE_CLOSED);
    }
    // No access check: the I/O manager made it for user-mode callers before any filter saw the
    // request (odx-spec §4.4), and kernel-mode callers are trusted by Windows.
    Ok(volume)
}

/// `CopyLength` alignment under [`Rules::copy_length_alignment`]: `Ok(true)` when the length is
/// unaligned but may still be accepted once end of file is known.
fn length_alignment<Out: Answer>(
    sector: SectorSize,
    copy_length: u64,
    rules: &Rules,
) -> Step<bool, Out> {
    if sector.is_aligned(copy_length) {
        return Ok(false);
    }
    match rules.copy_length_alignment {
        LengthAlignment::Strict => refuse(Check::Alignment, NtStatus::STATUS_INVALID_PARAMETER),
        LengthAlignment::ExceptAtEndOfFile => Ok(true),
    }
}

/// The checks on sizes both operations share: deferred length alignment, end of file, tiny file.
fn size_checks<Out: Answer>(
    sizes: &StreamSizes,
    sector: SectorSize,
    range: ByteRange,
    length_unaligned: bool,
    rules: &Rules,
) -> Step<(), Out> {
    if range.offset >= sizes.end_of_file {
        return refuse(Check::EndOfFile, NtStatus::STATUS_END_OF_FILE);
    }
    if length_unaligned && range.end() != Some(sizes.end_of_file) {
        return refuse(Check::Alignment, NtStatus::STATUS_INVALID_PARAMETER);
    }
    let too_small = match rules.tiny_file {
        TinyFile::NoRule => false,
        TinyFile::BelowSector => sizes.end_of_file < u64::from(sector.get()),
        TinyFile::BelowPage => sizes.end_of_file < PAGE_SIZE,
    };
    if too_small {
        return refuse(Check::TinyFile, NtStatus::STATUS_INVALID_PARAMETER);
    }
    Ok(())
}

/// End of file rounded up to a sector (saturating: a file that ends in the last sector of the
/// 64-bit space keeps its whole range).
fn sector_end_of_file(sector: SectorSize, end_of_file: u64) -> u64 {
    sector.round_up(end_of_file).unwrap_or(u64::MAX)
}

fn read_steps<F: OffloadFacts + ?Sized>(
    request: OffloadRequest<'_>,
    facts: &mut F,
    rules: &Rules,
) -> Step<(Check, ForwardRead), ReadAnswer> {
    let volume = common_front(OffloadOp::Read, facts, rules)?;
    if !volume.flags.contains(VolumeFlags::OFFLOAD_READ_SUPPORTED) {
        return refuse(Check::OffloadSupported, NtStatus::STATUS_NOT_SUPPORTED);
    }
    let Ok(input) = OffloadReadInput::view(request.input) else {
        return refuse(Check::InputLength, rules.short_buffer);
    };
    if request.output_len < OffloadReadOutput::SIZE {
        return refuse(Check::OutputLength, rules.short_buffer);
    }
    let sector = volume.sector_size;
    let (offset, length) = (input.file_offset.get(), input.copy_length.get());
    if !sector.is_aligned(offset) {
        return refuse(Check::Alignment, NtStatus::STATUS_INVALID_PARAMETER);
    }
    let length_unaligned = length_alignment(sector, length, rules)?;
    if usize::try_from(input.size.get()) != Ok(OffloadReadInput::SIZE) {
        return refuse(Check::SizeField, NtStatus::STATUS_INVALID_PARAMETER);
    }
    let range = ByteRange::new(offset, length);
    let Some(end) = range.end() else {
        return refuse(Check::RangeOverflow, NtStatus::STATUS_INVALID_PARAMETER);
    };
    if length == 0 {
        let output = ReadAnswer {
            flags: OffloadReadFlags::empty(),
            transfer_length: 0,
            token: AnswerToken::ZeroData,
        };
        return answer(Check::ZeroLength, output);
    }
    let kind = ask(FactKind::StreamKind, facts.stream_kind())?;
    if kind.refuses_offload() {
        return refuse(
            Check::StreamKind,
            NtStatus::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED,
        );
    }
    let sizes = ask(FactKind::StreamSizes, facts.stream_sizes())?;
    if sizes.delete_pending {
        return refuse(Check::StreamDeleted, NtStatus::STATUS_FILE_DELETED);
    }
    if ask(
        FactKind::Locks,
        facts.lock_conflict(range, LockIntent::Shared),
    )? {
        return refuse(Check::LockConflict, NtStatus::STATUS_FILE_LOCK_CONFLICT);
    }
    size_checks(&sizes, sector, range, length_unaligned, rules)?;

    let eof = sizes.end_of_file;
    let vdl = sizes.valid_data_length.min(eof);
    if offset >= vdl {
        // MS-FSA read 14 answers this request (the zero token); valid data length was read
        // without the file system's locks, so only the file system may give that answer.
        return Ok((
            Check::BeyondValidData,
            ForwardRead {
                context: ReadContext::untouched(length, sector),
            },
        ));
    }
    // MS-FSA read 15 / ODX overview: trim at valid data length rounded up to a sector; the
    // zero flag is set only when valid data ends before end of file.
    let sector_vdl = sector.round_up(vdl).unwrap_or(u64::MAX);
    let forwarded_end = end.min(sector_vdl);
    let forwarded_length = forwarded_end.saturating_sub(offset);
    let zero_beyond_forwarded = forwarded_end < end && vdl < eof;
    Ok((
        Check::Forward,
        ForwardRead {
            context: ReadContext {
                requested_length: length,
                forwarded_length,
                zero_beyond_forwarded,
                sector_size: sector,
            },
        },
    ))
}

fn write_steps<F: OffloadFacts + ?Sized>(
    request: OffloadRequest<'_>,
    facts: &mut F,
    rules: &Rules,
) -> Step<(Check, ForwardWrite), WriteAnswer> {
    let volume = common_front(OffloadOp::Write, facts, rules)?;
    if volume.flags.contains(VolumeFlags::READ_ONLY) {
        return refuse(
            Check::VolumeWritable,
            NtStatus::STATUS_MEDIA_WRITE_PROTECTED,
        );
    }
    if !volume.flags.contains(VolumeFlags::OFFLOAD_WRITE_SUPPORTED) {
        return refuse(Check::OffloadSupported, NtStatus::STATUS_NOT_SUPPORTED);
    }
    let Ok(input) = OffloadWriteInput::view(request.input) else {
        return refuse(Check::InputLength, rules.short_buffer);
    };
    if request.output_len < OffloadWriteOutput::SIZE {
        return refuse(Check::OutputLength, rules.short_buffer);
    }
    let sector = volume.sector_size;
    let (offset, length) = (input.file_offset.get(), input.copy_length.get());
    if !sector.is_aligned(offset) || !sector.is_aligned(input.transfer_offset.get()) {
        return refuse(Check::Alignment, NtStatus::STATUS_INVALID_PARAMETER);
    }
    let length_unaligned = length_alignment(sector, length, rules)?;
    if usize::try_from(input.size.get()) != Ok(OffloadWriteInput::SIZE) {
        return refuse(Check::SizeField, NtStatus::STATUS_INVALID_PARAMETER);
    }
    let range = ByteRange::new(offset, length);
    let Some(end) = range.end() else {
        return refuse(Check::RangeOverflow, NtStatus::STATUS_INVALID_PARAMETER);
    };
    if length == 0 {
        return answer(Check::ZeroLength, WriteAnswer { length_written: 0 });
    }
    let kind = ask(FactKind::StreamKind, facts.stream_kind())?;
    if kind.refuses_offload() {
        return refuse(
            Check::StreamKind,
            NtStatus::STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED,
        );
    }
    let sizes = ask(FactKind::StreamSizes, facts.stream_sizes())?;
    if sizes.delete_pending {
        return refuse(Check::StreamDeleted, NtStatus::STATUS_FILE_DELETED);
    }
    if end > volume.max_file_size {
        return refuse(Check::MaxFileSize, NtStatus::STATUS_INVALID_PARAMETER);
    }
    if ask(
        FactKind::Locks,
        facts.lock_conflict(range, LockIntent::Exclusive),
    )? {
        return refuse(Check::LockConflict, NtStatus::STATUS_FILE_LOCK_CONFLICT);
    }
    size_checks(&sizes, sector, range, length_unaligned, rules)?;
    if offset > sizes.valid_data_length.min(sizes.end_of_file) {
        // MS-FSA write 16 refuses this request (C-4); valid data length was read without the
        // file system's locks, so only the file system may refuse it. Not even trimmed at end
        // of file: the request goes down exactly as the caller sent it.
        return Ok((
            Check::BeyondValidData,
            ForwardWrite {
                context: WriteContext::untouched(length, sector),
            },
        ));
    }
    // An offload write never extends the file: trim at end of file rounded up to a sector.
    let forwarded_end = end.min(sector_end_of_file(sector, sizes.end_of_file));
    let forwarded_length = forwarded_end.saturating_sub(offset);
    Ok((
        Check::Forward,
        ForwardWrite {
            context: WriteContext {
                requested_length: length,
                forwarded_length,
                sector_size: sector,
            },
        },
    ))
}
