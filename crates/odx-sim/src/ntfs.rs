//! NTFS's own MS-FSA checks, for requests odxflt forwards untouched (monitor mode). odxflt's
//! checks *are* the MS-FSA checks, so the model applies them with the same core function and then
//! executes what passes. The simulated stack and the PE harness (which emulates the file system
//! under the real odxflt.sys) both call this one function.

use odx_core::validate::{OffloadRequest, decide};
use odx_core::verdict::{OffloadVerdict, Verdict};
use odx_core::wire::{OffloadReadInput, OffloadWriteInput};
use odx_core::{NtStatus, OffloadOp, Rules, WireStruct};

use crate::odxflt::{FactCounts, HandleState, ModelFacts};
use crate::store::DataStore;
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
        counts: FactCounts::default(),
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
            let _ = fwd.input.serialize_into(buffer);
            volume.fs_control(op, handle.file, buffer, OffloadReadInput::SIZE)
        }
        OffloadVerdict::Write(Verdict::Forward(fwd)) => {
            let _ = fwd.input.serialize_into(buffer);
            volume.fs_control(op, handle.file, buffer, OffloadWriteInput::SIZE)
        }
    }
}
