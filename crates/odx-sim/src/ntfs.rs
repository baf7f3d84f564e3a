//! NTFS's own MS-FSA checks, for every offload request that reaches the file system: what
//! odxflt forwarded (validated, perhaps trimmed), what it sent down untouched for the rules it
//! leaves to NTFS (valid data length, [`valid_data_rule`]), what it passed through because a fact
//! query failed, and everything in monitor mode. odxflt's checks *are* the MS-FSA checks, so the
//! model applies them with the same core function, adds the valid-data-length rule that odxflt
//! no longer answers, and then executes what passes. The simulated stack and the PE harness
//! (which emulates the file system under the real odxflt.sys) both call these functions.

use odx_core::flags::OffloadReadFlags;
use odx_core::validate::{Check, OffloadRequest, decide};
use odx_core::verdict::{OffloadVerdict, Verdict};
use odx_core::wire::{OffloadReadInput, OffloadReadOutput, OffloadWriteInput, StorageOffloadToken};
use odx_core::{NtStatus, OffloadOp, Rules, WireStruct};

use crate::odxflt::{FactCounts, HandleState, ModelFacts};
use crate::store::{DataStore, FileId};
use crate::volume::{BelowAnswer, Volume};

/// Validates a request the way NTFS does, then executes it on `volume` if it passes.
pub fn validate_then_execute<S: DataStore>(
    volume: &mut Volume<S>,
    op: OffloadOp,
    handle: HandleState,
    buffer: &mut [u8],
    input_len: usize,
    output_len: usize,
    rules: &Rules,
) -> BelowAnswer {
    let Some(file) = volume.entry(handle.file) else {
        return BelowAnswer {
            status: NtStatus::STATUS_FILE_DELETED,
            information: 0,
        };
    };
    let mut facts = ModelFacts {
        volume: volume.facts(),
        file,
        handle,
        // NTFS's own checks never ask for names.
        process: &[],
        counts: FactCounts::default(),
        vdl_visible: true,
    };
    let input = buffer.get(..input_len).unwrap_or_default().to_vec();
    let decision = decide(
        op,
        OffloadRequest {
            input: &input,
            output_len,
        },
        &mut facts,
        rules,
    );
    if decision.check == Check::BeyondValidData {
        // odxflt's core leaves this rule to the file system: here it is.
        if let Some(answer) = valid_data_rule(
            volume,
            op,
            handle.file,
            buffer,
            input_len,
            output_len,
            rules,
        ) {
            return answer;
        }
    }
    let out = buffer
        .get_mut(..output_len.min(buffer.len()))
        .unwrap_or_default();
    let complete = |status, information| BelowAnswer {
        status,
        information,
    };
    match decision.verdict {
        OffloadVerdict::Read(Verdict::Complete(c)) => complete(c.status, c.write_output(out)),
        OffloadVerdict::Write(Verdict::Complete(c)) => complete(c.status, c.write_output(out)),
        OffloadVerdict::Read(Verdict::Forward(fwd)) => {
            fwd.rewrite(buffer);
            let answer = volume.fs_control(op, handle.file, buffer, OffloadReadInput::SIZE);
            // MS-FSA read 15/16, NTFS's own: a range it trimmed at valid data length below end
            // of file is followed by zeros, which it says with ALL_ZERO_BEYOND_CURRENT_RANGE —
            // only if the storage's token covers the whole trimmed range.
            if fwd.context.zero_beyond_forwarded && answer.status.is_success() {
                if let Some(output) = buffer.get_mut(..answer.information.min(output_len)) {
                    if let Ok(out) = OffloadReadOutput::view_mut(output) {
                        let covered = out.transfer_length.get() == fwd.context.forwarded_length;
                        let mut flags = out.read_flags();
                        flags.set(OffloadReadFlags::ALL_ZERO_BEYOND_CURRENT_RANGE, covered);
                        out.flags.set(flags.bits());
                    }
                }
            }
            answer
        }
        OffloadVerdict::Write(Verdict::Forward(fwd)) => {
            fwd.rewrite(buffer);
            volume.fs_control(op, handle.file, buffer, OffloadWriteInput::SIZE)
        }
        // The model's facts never fail (they are NTFS's own state); were one to, NTFS would
        // not have what it needs to answer.
        OffloadVerdict::Read(Verdict::PassThrough)
        | OffloadVerdict::Write(Verdict::PassThrough) => {
            complete(NtStatus::STATUS_INSUFFICIENT_RESOURCES, 0)
        }
    }
}

/// MS-FSA read 14 / write 16 as NTFS applies them, under its own locks: the answer to a request
/// that starts at or beyond (read) / beyond (write) the file's valid data length, or `None` when
/// the rule does not answer the request (it starts below valid data length, at or past end of
/// file — MS-FSA's end-of-file check comes first —, or its input or output buffer is too short). odxflt never answers this rule itself (valid data length may only *trim* what it
/// forwards), so the file system's model must.
///
/// - Read: `STATUS_SUCCESS`, the zero token, `OFFLOAD_READ_FLAG_ALL_ZERO_BEYOND_CURRENT_RANGE`;
///   MS-FSA gives no `TransferLength`, the model answers the requested range cut at end of file
///   rounded up to a sector (never 0 when `FileOffset` < end of file).
/// - Write: [`Rules::write_beyond_vdl`] (conflict C-4: `STATUS_INVALID_PARAMETER`, MS-FSA's
///   `STATUS_BEYOND_VDL`).
///
/// The output, if any, is written into the first `output_len` bytes of `buffer`.
pub fn valid_data_rule<S: DataStore>(
    volume: &Volume<S>,
    op: OffloadOp,
    file: FileId,
    buffer: &mut [u8],
    input_len: usize,
    output_len: usize,
    rules: &Rules,
) -> Option<BelowAnswer> {
    let entry = volume.entry(file)?;
    let eof = entry.end_of_file;
    let vdl = entry.valid_data_length.min(eof);
    let sector = volume.config().sector_size;
    let input = buffer.get(..input_len).unwrap_or_default();
    match op {
        OffloadOp::Read => {
            let input = OffloadReadInput::parse(input).ok()?;
            let offset = input.file_offset.get();
            if offset < vdl || offset >= eof {
                return None;
            }
            let end = offset.saturating_add(input.copy_length.get());
            let sector_eof = sector.round_up(eof).unwrap_or(u64::MAX);
            let length = end.min(sector_eof).saturating_sub(offset);
            let output = OffloadReadOutput::new(
                OffloadReadFlags::ALL_ZERO_BEYOND_CURRENT_RANGE,
                length,
                StorageOffloadToken::zero_data(),
            );
            let out = buffer.get_mut(..output_len.min(buffer.len()))?;
            let information = output.serialize_into(out).ok()?;
            Some(BelowAnswer {
                status: NtStatus::STATUS_SUCCESS,
                information,
            })
        }
        OffloadOp::Write => {
            let input = OffloadWriteInput::parse(input).ok()?;
            let offset = input.file_offset.get();
            (offset > vdl && offset < eof).then_some(BelowAnswer {
                status: rules.write_beyond_vdl,
                information: 0,
            })
        }
    }
}
