//! Post-operation: what odxflt returns when the file system and storage below have answered.
//! [`COMPLETION_MAP`] is the one table (docs/completion-mapping.md prints it); everything not in
//! it passes through unchanged, so a real device error is never hidden behind an offload code.

use crate::ctl::OffloadOp;
use crate::flags::OffloadReadFlags;
use crate::rules::Rules;
use crate::status::NtStatus;
use crate::verdict::{AnswerToken, Completion, ReadAnswer, ReadContext, WriteAnswer, WriteContext};
use crate::wire::{OffloadReadOutput, OffloadWriteOutput, WireStruct};

/// What the mapping does with a failure status from below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapped {
    /// Returned unchanged.
    PassThrough,
    /// Replaced by the operation's `…_FILE_NOT_SUPPORTED` code.
    FileNotSupported,
    /// Replaced by the operation's `…_FLT_NOT_SUPPORTED` code.
    FilterNotSupported,
    /// Replaced by a fixed status.
    To(NtStatus),
}

/// One row of the completion mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapRow {
    /// Status from below.
    pub below: NtStatus,
    /// What odxflt returns.
    pub mapped: Mapped,
    /// Why.
    pub why: &'static str,
}

/// The completion mapping for failures (success is checked by [`complete_read`] /
/// [`complete_write`]). Statuses not listed pass through.
pub static COMPLETION_MAP: &[MapRow] = &[
    MapRow {
        below: NtStatus::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED,
        mapped: Mapped::FileNotSupported,
        why: "a per-file refusal below (resident, deduplicated, …) is reported with the code of the operation that was refused",
    },
    MapRow {
        below: NtStatus::STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED,
        mapped: Mapped::FileNotSupported,
        why: "same, for the write code",
    },
    MapRow {
        below: NtStatus::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED,
        mapped: Mapped::FilterNotSupported,
        why: "a filter below vetoed: reported with the veto code of the operation",
    },
    MapRow {
        below: NtStatus::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED,
        mapped: Mapped::FilterNotSupported,
        why: "same, for the write code",
    },
    MapRow {
        below: NtStatus::STATUS_ACCESS_DENIED,
        mapped: Mapped::FilterNotSupported,
        why: "NTFS makes no access check for offload (MS-FSA) and the I/O manager's ran before odxflt, so ACCESS_DENIED from below is a filter vetoing ODX the way the scanner sample does; copy engines understand the veto code",
    },
    MapRow {
        below: NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED,
        mapped: Mapped::To(NtStatus::STATUS_NOT_SUPPORTED),
        why: "the storage has no copy offload: neither FSCTL's status table lists DEVICE_FEATURE_NOT_SUPPORTED, both name NOT_SUPPORTED for \"offload is not supported on this volume\"; the refusal also starts the volume's back-off (storage.rs)",
    },
    MapRow {
        below: NtStatus::STATUS_INVALID_OFFSET_ALIGNMENT,
        mapped: Mapped::To(NtStatus::STATUS_INVALID_PARAMETER),
        why: "storage alignment status, undocumented for the FSCTLs; INVALID_PARAMETER is the documented code for misalignment",
    },
    MapRow {
        below: NtStatus::STATUS_DEVICE_INSUFFICIENT_RESOURCES,
        mapped: Mapped::To(NtStatus::STATUS_INSUFFICIENT_RESOURCES),
        why: "storage resource status, undocumented for the FSCTLs; the documented resource code makes copy engines fall back per file",
    },
    MapRow {
        below: NtStatus::STATUS_OPERATION_IN_PROGRESS,
        mapped: Mapped::To(NtStatus::STATUS_INSUFFICIENT_RESOURCES),
        why: "the device is busy with another token operation: a transient shortage, reported with the documented resource code",
    },
];

/// Maps a failure status from below for `op`.
#[must_use]
pub fn map_failure(op: OffloadOp, below: NtStatus) -> NtStatus {
    let mapped = COMPLETION_MAP
        .iter()
        .find(|row| row.below == below)
        .map_or(Mapped::PassThrough, |row| row.mapped);
    match (mapped, op) {
        (Mapped::PassThrough, _) => below,
        (Mapped::FileNotSupported, OffloadOp::Read) => {
            NtStatus::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED
        }
        (Mapped::FileNotSupported, OffloadOp::Write) => {
            NtStatus::STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED
        }
        (Mapped::FilterNotSupported, OffloadOp::Read) => {
            NtStatus::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED
        }
        (Mapped::FilterNotSupported, OffloadOp::Write) => {
            NtStatus::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED
        }
        (Mapped::To(status), _) => status,
    }
}

/// Completes a forwarded offload read. `output` is the buffer's first `IoStatus.Information`
/// bytes (at most `OutputBufferLength`), read in place. A success keeps the storage's token
/// where it lies ([`AnswerToken::FromBelow`]) and sets `Size` and `Flags`.
#[must_use]
pub fn complete_read(
    context: &ReadContext,
    below: NtStatus,
    output: &[u8],
    rules: &Rules,
) -> Completion<ReadAnswer> {
    if !below.is_success() {
        return Completion::status(map_failure(OffloadOp::Read, below));
    }
    let Ok(answer) = OffloadReadOutput::view(output) else {
        return Completion::status(rules.broken_lower_contract);
    };
    let transfer = answer.transfer_length.get();
    // MS-FSCC: TransferLength > 0, sector aligned, never more than asked.
    if transfer == 0
        || transfer > context.forwarded_length
        || !context.sector_size.is_aligned(transfer)
    {
        return Completion::status(rules.broken_lower_contract);
    }
    let mut flags = answer.read_flags();
    if context.zero_beyond_forwarded {
        // MS-FSA read 16: the flag survives only if the answer covers the trimmed range.
        flags.set(
            OffloadReadFlags::ALL_ZERO_BEYOND_CURRENT_RANGE,
            transfer == context.forwarded_length,
        );
    }
    Completion::success(ReadAnswer {
        flags,
        transfer_length: transfer,
        token: AnswerToken::FromBelow,
    })
}

/// Completes a forwarded offload write. `output` as for [`complete_read`].
#[must_use]
pub fn complete_write(
    context: &WriteContext,
    below: NtStatus,
    output: &[u8],
    rules: &Rules,
) -> Completion<WriteAnswer> {
    if !below.is_success() {
        return Completion::status(map_failure(OffloadOp::Write, below));
    }
    let Ok(answer) = OffloadWriteOutput::view(output) else {
        return Completion::status(rules.broken_lower_contract);
    };
    let written = answer.length_written.get();
    if written > context.forwarded_length || !context.sector_size.is_aligned(written) {
        return Completion::status(rules.broken_lower_contract);
    }
    Completion::success(WriteAnswer {
        length_written: written,
    })
}
