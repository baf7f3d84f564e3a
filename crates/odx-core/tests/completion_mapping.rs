//! Post-operation: the completion mapping table row by row, and the checks on a success answer.

use odx_core::complete::{COMPLETION_MAP, complete_read, complete_write, map_failure};
use odx_core::flags::OffloadReadFlags;
use odx_core::wire::{OffloadReadOutput, OffloadWriteOutput, StorageOffloadToken};
use odx_core::*;
use zerocopy::IntoBytes;

const R: OffloadOp = OffloadOp::Read;
const W: OffloadOp = OffloadOp::Write;

#[test]
fn mapping_table_row_by_row() {
    use NtStatus as N;
    let rows: &[(NtStatus, NtStatus, NtStatus)] = &[
        // below, returned for read, returned for write
        (
            N::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED,
            N::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED,
            N::STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED,
        ),
        (
            N::STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED,
            N::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED,
            N::STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED,
        ),
        (
            N::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED,
            N::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED,
            N::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED,
        ),
        (
            N::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED,
            N::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED,
            N::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED,
        ),
        (
            N::STATUS_ACCESS_DENIED,
            N::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED,
            N::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED,
        ),
        (
            N::STATUS_INVALID_OFFSET_ALIGNMENT,
            N::STATUS_INVALID_PARAMETER,
            N::STATUS_INVALID_PARAMETER,
        ),
        (
            N::STATUS_DEVICE_INSUFFICIENT_RESOURCES,
            N::STATUS_INSUFFICIENT_RESOURCES,
            N::STATUS_INSUFFICIENT_RESOURCES,
        ),
        (
            N::STATUS_OPERATION_IN_PROGRESS,
            N::STATUS_INSUFFICIENT_RESOURCES,
            N::STATUS_INSUFFICIENT_RESOURCES,
        ),
        // pass-through rows: storage and file-system answers copy engines already understand
        (
            N::STATUS_NOT_SUPPORTED,
            N::STATUS_NOT_SUPPORTED,
            N::STATUS_NOT_SUPPORTED,
        ),
        // storage without copy offload: both FSCTL status tables name NOT_SUPPORTED for it,
        // neither lists DEVICE_FEATURE_NOT_SUPPORTED (issue 13)
        (
            N::STATUS_DEVICE_FEATURE_NOT_SUPPORTED,
            N::STATUS_NOT_SUPPORTED,
            N::STATUS_NOT_SUPPORTED,
        ),
        (
            N::STATUS_INVALID_DEVICE_REQUEST,
            N::STATUS_INVALID_DEVICE_REQUEST,
            N::STATUS_INVALID_DEVICE_REQUEST,
        ),
        (
            N::STATUS_INVALID_TOKEN,
            N::STATUS_INVALID_TOKEN,
            N::STATUS_INVALID_TOKEN,
        ),
        (
            N::STATUS_DEVICE_UNREACHABLE,
            N::STATUS_DEVICE_UNREACHABLE,
            N::STATUS_DEVICE_UNREACHABLE,
        ),
        (
            N::STATUS_FILE_LOCK_CONFLICT,
            N::STATUS_FILE_LOCK_CONFLICT,
            N::STATUS_FILE_LOCK_CONFLICT,
        ),
        (
            N::STATUS_END_OF_FILE,
            N::STATUS_END_OF_FILE,
            N::STATUS_END_OF_FILE,
        ),
        (
            N::STATUS_BEYOND_VDL,
            N::STATUS_BEYOND_VDL,
            N::STATUS_BEYOND_VDL,
        ),
        (
            N::STATUS_INSUFFICIENT_RESOURCES,
            N::STATUS_INSUFFICIENT_RESOURCES,
            N::STATUS_INSUFFICIENT_RESOURCES,
        ),
        (
            N::STATUS_VOLUME_DISMOUNTED,
            N::STATUS_VOLUME_DISMOUNTED,
            N::STATUS_VOLUME_DISMOUNTED,
        ),
        (
            N::STATUS_MEDIA_WRITE_PROTECTED,
            N::STATUS_MEDIA_WRITE_PROTECTED,
            N::STATUS_MEDIA_WRITE_PROTECTED,
        ),
        // a device error odxflt knows nothing about is never hidden (STATUS_IO_DEVICE_ERROR)
        (
            NtStatus(0xC000_0185),
            NtStatus(0xC000_0185),
            NtStatus(0xC000_0185),
        ),
    ];
    for &(below, read, write) in rows {
        assert_eq!(map_failure(R, below), read, "read: {below:?}");
        assert_eq!(map_failure(W, below), write, "write: {below:?}");
    }
    // every row of the table is exercised above
    for row in COMPLETION_MAP {
        assert!(
            rows.iter().any(|r| r.0 == row.below),
            "{:?} untested",
            row.below
        );
    }
}

fn read_ctx(forwarded: u64, zero_beyond: bool) -> ReadContext {
    ReadContext {
        requested_length: forwarded.max(65536),
        forwarded_length: forwarded,
        zero_beyond_forwarded: zero_beyond,
        sector_size: SectorSize::DEFAULT,
    }
}

/// What the caller sees: the answer from below in the buffer, with the completion written over
/// it in place (as post-operation does).
fn read_seen(c: &Completion<ReadAnswer>, below: &OffloadReadOutput) -> OffloadReadOutput {
    let mut buffer = [0u8; 528];
    buffer.copy_from_slice(below.as_bytes());
    assert_eq!(c.write_output(&mut buffer), 528);
    OffloadReadOutput::parse(&buffer).unwrap()
}

fn read_answer(flags: OffloadReadFlags, length: u64) -> OffloadReadOutput {
    OffloadReadOutput::new(
        flags,
        length,
        StorageOffloadToken::vendor(0x1111_2222, [3; 504]),
    )
}

#[test]
fn read_success_passes_the_token_through() {
    let answer = read_answer(OffloadReadFlags::empty(), 8192);
    let c = complete_read(
        &read_ctx(8192, false),
        NtStatus::STATUS_SUCCESS,
        answer.as_bytes(),
        &Rules::DOCUMENTED,
    );
    assert_eq!(c.status, NtStatus::STATUS_SUCCESS);
    assert_eq!(
        c.output,
        Some(ReadAnswer {
            flags: OffloadReadFlags::empty(),
            transfer_length: 8192,
            token: AnswerToken::FromBelow
        })
    );
    let mut buffer = [0xA5u8; 600];
    buffer[..528].copy_from_slice(answer.as_bytes());
    assert_eq!(c.write_output(&mut buffer), 528);
    assert_eq!(&buffer[..528], answer.as_bytes());
    assert!(
        buffer[528..].iter().all(|&b| b == 0xA5),
        "nothing past the answer"
    );
}

#[test]
fn read_truncated_below_vdl_trim_clears_the_zero_flag() {
    // MS-FSA read step 16.
    let answer = read_answer(OffloadReadFlags::ALL_ZERO_BEYOND_CURRENT_RANGE, 4096);
    let c = complete_read(
        &read_ctx(8192, true),
        NtStatus::STATUS_SUCCESS,
        answer.as_bytes(),
        &Rules::DOCUMENTED,
    );
    assert_eq!(c.output.unwrap().flags, OffloadReadFlags::empty());
    assert_eq!(
        read_seen(&c, &answer).read_flags(),
        OffloadReadFlags::empty()
    );
}

#[test]
fn read_covering_the_vdl_trim_sets_the_zero_flag() {
    let answer = read_answer(OffloadReadFlags::empty(), 8192);
    let c = complete_read(
        &read_ctx(8192, true),
        NtStatus::STATUS_SUCCESS,
        answer.as_bytes(),
        &Rules::DOCUMENTED,
    );
    assert_eq!(
        c.output.unwrap().flags,
        OffloadReadFlags::ALL_ZERO_BEYOND_CURRENT_RANGE
    );
    let seen = read_seen(&c, &answer);
    assert_eq!(
        seen.read_flags(),
        OffloadReadFlags::ALL_ZERO_BEYOND_CURRENT_RANGE
    );
    assert_eq!(
        seen.token, answer.token,
        "the token stays where the storage put it"
    );
}

#[test]
fn read_success_breaking_the_contract_is_refused() {
    let rules = Rules::DOCUMENTED;
    for length in [0, 8193, 16384, 100] {
        let answer = read_answer(OffloadReadFlags::empty(), length);
        let c = complete_read(
            &read_ctx(8192, false),
            NtStatus::STATUS_SUCCESS,
            answer.as_bytes(),
            &rules,
        );
        assert_eq!(
            c.status, rules.broken_lower_contract,
            "TransferLength {length}"
        );
        assert_eq!(c.information(), 0);
    }
    let answer = read_answer(OffloadReadFlags::empty(), 4096);
    let c = complete_read(
        &read_ctx(8192, false),
        NtStatus::STATUS_SUCCESS,
        &answer.as_bytes()[..527],
        &rules,
    );
    assert_eq!(
        c.status,
        NtStatus::STATUS_NOT_SUPPORTED,
        "short output from below"
    );
}

#[test]
fn read_failure_has_no_output() {
    let c = complete_read(
        &read_ctx(8192, false),
        NtStatus::STATUS_INVALID_TOKEN,
        &[0xFF; 528],
        &Rules::DOCUMENTED,
    );
    assert_eq!((c.status, c.output), (NtStatus::STATUS_INVALID_TOKEN, None));
    let mut buffer = [0xEEu8; 528];
    assert_eq!(c.write_output(&mut buffer), 0);
    assert!(
        buffer.iter().all(|&b| b == 0xEE),
        "nothing written on failure"
    );
}

fn write_ctx(forwarded: u64) -> WriteContext {
    WriteContext {
        requested_length: forwarded,
        forwarded_length: forwarded,
        sector_size: SectorSize::DEFAULT,
    }
}

#[test]
fn write_success_reports_length_written_including_zero_and_truncation() {
    for written in [0, 4096, 8192] {
        let answer = OffloadWriteOutput::new(written);
        let c = complete_write(
            &write_ctx(8192),
            NtStatus::STATUS_SUCCESS,
            answer.as_bytes(),
            &Rules::DOCUMENTED,
        );
        assert_eq!(c.status, NtStatus::STATUS_SUCCESS);
        assert_eq!(c.output.unwrap().length_written, written);
    }
}

#[test]
fn write_success_breaking_the_contract_is_refused() {
    for written in [8704, 100, u64::MAX] {
        let answer = OffloadWriteOutput::new(written);
        let c = complete_write(
            &write_ctx(8192),
            NtStatus::STATUS_SUCCESS,
            answer.as_bytes(),
            &Rules::DOCUMENTED,
        );
        assert_eq!(
            c.status,
            NtStatus::STATUS_NOT_SUPPORTED,
            "LengthWritten {written}"
        );
    }
    let c = complete_write(
        &write_ctx(8192),
        NtStatus::STATUS_SUCCESS,
        &[0; 15],
        &Rules::DOCUMENTED,
    );
    assert_eq!(c.status, NtStatus::STATUS_NOT_SUPPORTED);
}

#[test]
fn write_output_normalises_size_and_flags() {
    let mut answer = OffloadWriteOutput::new(4096);
    answer.size.set(99);
    answer.flags.set(7);
    let c = complete_write(
        &write_ctx(8192),
        NtStatus::STATUS_SUCCESS,
        answer.as_bytes(),
        &Rules::DOCUMENTED,
    );
    let mut buffer = [0u8; 16];
    buffer.copy_from_slice(answer.as_bytes());
    assert_eq!(c.write_output(&mut buffer), 16);
    let out = OffloadWriteOutput::parse(&buffer).unwrap();
    assert_eq!((out.size.get(), out.flags.get()), (16, 0));
    assert_eq!(out.length_written.get(), 4096);
}
