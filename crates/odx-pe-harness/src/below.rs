//! The file system and storage below odxflt.sys, for requests the binary sends down.
//!
//! The data path is the simulator's own lower layer ([`Volume::fs_control`]: the token engine's
//! populate / resolve_write, data movement, valid-data-length raise). In front of it sit the
//! checks NTFS makes itself and that odxflt deliberately leaves to it (docs/driver.md), each
//! decided by the core's own rule, never re-implemented:
//!
//! - MS-FSA step 1: only a file system that implements the offload FSCTLs answers them
//!   ([`odx_core::FileSystemKind::implements_offload`]); the others fail them with
//!   `STATUS_INVALID_DEVICE_REQUEST` (the FSCTL is unknown to them). Reached only when odxflt
//!   declined to attach.
//! - MS-FSA read/write step 2: NTFS's sticky `IsOffload{Read,Write}Supported` (cleared by the
//!   volume model when the storage refused once) → `STATUS_NOT_SUPPORTED`.
//! - MS-FSA step 10: streams NTFS refuses (`odx_core::StreamKind::refuses_offload`), including
//!   metadata files and non-data streams that odxflt cannot see → `…_FILE_NOT_SUPPORTED`.
//! - MS-FSA read 12 / write 13: the byte-range lock check on the range NTFS receives
//!   ([`odx_core::lock::range_conflicts`], shared intent for read, exclusive for write), which
//!   odxflt does not shadow → `STATUS_FILE_LOCK_CONFLICT`.

use odx_core::Rules;
use odx_core::flags::VolumeFlags;
use odx_core::lock::range_conflicts;
use odx_core::wire::{OffloadReadInput, OffloadWriteInput};
use odx_core::{ByteRange, LockIntent, NtStatus, OffloadOp, StreamKind, WireStruct};
use odx_sim::odxflt::HandleState;
use odx_sim::volume::BelowAnswer;
use odx_sim::{DataStore, Volume};

/// NTFS (or the file system mounted) and the storage, answering a request odxflt sent down.
/// `buffer` is the system buffer; its first `input_len` bytes are the input as forwarded.
///
/// `untouched`: odxflt forwarded the caller's request without validating it (monitor policy).
/// NTFS's own MS-FSA checks are then what stands between the caller and the storage; they are
/// applied with the core's `decide` over the file system's view of the file — the model the
/// simulator uses for the same case — and what passes is executed.
pub fn file_system_below<S: DataStore>(
    volume: &mut Volume<S>,
    handle: HandleState,
    op: OffloadOp,
    buffer: &mut [u8],
    input_len: usize,
    output_len: usize,
    untouched: bool,
) -> BelowAnswer {
    if untouched {
        return odx_sim::ntfs::validate_then_execute(
            volume,
            op,
            handle,
            buffer,
            input_len,
            output_len,
            &Rules::DOCUMENTED,
        );
    }
    let fail = |status| BelowAnswer {
        status,
        information: 0,
    };
    if !volume.config().file_system.implements_offload() {
        return fail(NtStatus::STATUS_INVALID_DEVICE_REQUEST);
    }
    if volume.flags().contains(VolumeFlags::DISMOUNTED) {
        return fail(NtStatus::STATUS_VOLUME_DISMOUNTED);
    }
    let supported = match op {
        OffloadOp::Read => VolumeFlags::OFFLOAD_READ_SUPPORTED,
        OffloadOp::Write => VolumeFlags::OFFLOAD_WRITE_SUPPORTED,
    };
    if !volume.flags().contains(supported) {
        return fail(NtStatus::STATUS_NOT_SUPPORTED);
    }
    let Some(entry) = volume.entry(handle.file) else {
        return fail(NtStatus::STATUS_FILE_DELETED);
    };
    let kind = StreamKind {
        attributes: entry.attributes,
        markers: entry.markers,
    };
    if kind.refuses_offload() {
        return fail(match op {
            OffloadOp::Read => NtStatus::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED,
            OffloadOp::Write => NtStatus::STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED,
        });
    }
    let input = buffer.get(..input_len).unwrap_or_default();
    let access = match op {
        OffloadOp::Read => OffloadReadInput::parse(input)
            .ok()
            .map(|i| (i.file_offset.get(), i.copy_length.get(), LockIntent::Shared)),
        OffloadOp::Write => OffloadWriteInput::parse(input).ok().map(|i| {
            (
                i.file_offset.get(),
                i.copy_length.get(),
                LockIntent::Exclusive,
            )
        }),
    };
    if let Some((offset, length, intent)) = access {
        let range = ByteRange::new(offset, length);
        if range_conflicts(&entry.locks, range, intent, handle.open, handle.key) {
            return fail(NtStatus::STATUS_FILE_LOCK_CONFLICT);
        }
    }
    volume.fs_control(op, handle.file, buffer, input_len)
}
