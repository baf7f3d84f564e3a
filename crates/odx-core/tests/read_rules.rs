//! FSCTL_OFFLOAD_READ, rule by rule (odx-spec §4.2, docs/validation.md). Each test is named after
//! the rule it checks and fails if that rule's status or position changes.

mod common;

use common::*;
use odx_core::flags::{FileAttributes, StreamMarkers, VolumeFlags};
use odx_core::wire::OffloadReadInput;
use odx_core::*;
use zerocopy::IntoBytes;

const S: NtStatus = NtStatus::STATUS_SUCCESS;

fn expect_status(input: &OffloadReadInput, mut facts: Facts, status: NtStatus, check: Check) {
    let d = read(input, &mut facts);
    assert_eq!(status_of(&d.verdict), Some(status), "{input:?}");
    assert_eq!(d.check, check);
}

fn expect_forward(input: &OffloadReadInput, mut facts: Facts) -> ForwardRead {
    match read(input, &mut facts).verdict {
        Verdict::Forward(f) => f,
        Verdict::Complete(c) => panic!("expected forward, got {:?}", c.status),
        Verdict::PassThrough => panic!("expected forward, got a pass-through"),
    }
}

#[test]
fn r1_only_ntfs_implements_offload_read() {
    for fs in [FileSystemKind::Refs, FileSystemKind::Other] {
        let facts = Facts::default().with_volume(|v| v.file_system = fs);
        expect_status(
            &read_input(0, 4096),
            facts,
            NtStatus::STATUS_INVALID_DEVICE_REQUEST,
            Check::FileSystemImplementsOffload,
        );
    }
}

#[test]
fn r2_dismounted_volume_is_volume_dismounted() {
    let facts = Facts::default()
        .volume_flags(VolumeFlags::DISMOUNTED | VolumeFlags::OFFLOAD_READ_SUPPORTED);
    expect_status(
        &read_input(0, 4096),
        facts,
        NtStatus::STATUS_VOLUME_DISMOUNTED,
        Check::VolumeMounted,
    );
}

#[test]
fn r3_closed_handle_is_file_closed() {
    expect_status(
        &read_input(0, 4096),
        Facts::default().closed(),
        NtStatus::STATUS_FILE_CLOSED,
        Check::HandleOpen,
    );
}

#[test]
fn r4_volume_not_offload_read_capable_is_not_supported() {
    let facts = Facts::default().volume_flags(VolumeFlags::OFFLOAD_WRITE_SUPPORTED);
    expect_status(
        &read_input(0, 4096),
        facts,
        NtStatus::STATUS_NOT_SUPPORTED,
        Check::OffloadSupported,
    );
}

#[test]
fn r4_not_supported_precedes_every_buffer_check() {
    let mut facts = Facts::default().volume_flags(VolumeFlags::empty());
    let d = decide_read(
        OffloadRequest {
            input: &[],
            output_len: 0,
        },
        &mut facts,
        &Rules::DOCUMENTED,
    );
    assert_eq!(status_of(&d.verdict), Some(NtStatus::STATUS_NOT_SUPPORTED));
}

#[test]
fn r5_short_input_is_buffer_too_small() {
    let bytes = read_input(0, 4096);
    for len in [0usize, 1, 16, 31] {
        let mut facts = Facts::default();
        let d = decide_read(
            OffloadRequest {
                input: &bytes.as_bytes()[..len],
                output_len: 528,
            },
            &mut facts,
            &Rules::DOCUMENTED,
        );
        assert_eq!(
            status_of(&d.verdict),
            Some(NtStatus::STATUS_BUFFER_TOO_SMALL),
            "input {len}"
        );
        assert_eq!(d.check, Check::InputLength);
    }
}

#[test]
fn r6_short_output_is_buffer_too_small() {
    let input = read_input(0, 4096);
    for out in [0usize, 16, 527] {
        let mut facts = Facts::default();
        let d = decide_read(
            OffloadRequest {
                input: input.as_bytes(),
                output_len: out,
            },
            &mut facts,
            &Rules::DOCUMENTED,
        );
        assert_eq!(
            status_of(&d.verdict),
            Some(NtStatus::STATUS_BUFFER_TOO_SMALL),
            "output {out}"
        );
        assert_eq!(d.check, Check::OutputLength);
    }
}

#[test]
fn r5_input_is_checked_before_output() {
    let mut facts = Facts::default();
    let d = decide_read(
        OffloadRequest {
            input: &[0; 8],
            output_len: 0,
        },
        &mut facts,
        &Rules::DOCUMENTED,
    );
    assert_eq!(d.check, Check::InputLength);
}

#[test]
fn longer_buffers_are_accepted() {
    let mut bytes = read_input(0, 4096).as_bytes().to_vec();
    bytes.extend_from_slice(&[0xAA; 64]);
    let mut facts = Facts::default();
    let d = decide_read(
        OffloadRequest {
            input: &bytes,
            output_len: 4096,
        },
        &mut facts,
        &Rules::DOCUMENTED,
    );
    assert!(matches!(d.verdict, Verdict::Forward(_)));
}

#[test]
fn r7_unaligned_file_offset_is_invalid_parameter() {
    for offset in [1, 511, 513, 4095] {
        expect_status(
            &read_input(offset, 4096),
            Facts::default(),
            NtStatus::STATUS_INVALID_PARAMETER,
            Check::Alignment,
        );
    }
}

#[test]
fn r7_unaligned_copy_length_is_invalid_parameter_even_at_eof() {
    // C-3: odxflt follows MS-FSA (strict). EOF = 1000: a length that ends exactly at EOF is still refused.
    expect_status(
        &read_input(0, 1000),
        Facts::default().sizes(1000, 1000),
        NtStatus::STATUS_INVALID_PARAMETER,
        Check::Alignment,
    );
    expect_status(
        &read_input(0, 100),
        Facts::default(),
        NtStatus::STATUS_INVALID_PARAMETER,
        Check::Alignment,
    );
}

#[test]
fn r7_alignment_follows_the_volume_sector_size() {
    expect_status(
        &read_input(512, 4096),
        Facts::default().sector(4096),
        NtStatus::STATUS_INVALID_PARAMETER,
        Check::Alignment,
    );
    expect_forward(&read_input(4096, 8192), Facts::default().sector(4096));
}

#[test]
fn r8_size_field_must_be_32() {
    for size in [0u32, 31, 33, 528, u32::MAX] {
        let mut input = read_input(0, 4096);
        input.size.set(size);
        expect_status(
            &input,
            Facts::default(),
            NtStatus::STATUS_INVALID_PARAMETER,
            Check::SizeField,
        );
    }
}

#[test]
fn r8_flags_and_reserved_are_ignored() {
    let mut input = read_input(0, 4096);
    input.flags.set(0xFFFF_FFFF);
    input.reserved.set(0x1234_5678);
    expect_forward(&input, Facts::default());
}

#[test]
fn r9_offset_plus_length_overflow_is_invalid_parameter() {
    let input = read_input(u64::MAX - 511, 1024);
    expect_status(
        &input,
        Facts::default(),
        NtStatus::STATUS_INVALID_PARAMETER,
        Check::RangeOverflow,
    );
    // exactly reaching 2^64 - 512 + 512 = 2^64 overflows too
    expect_status(
        &read_input(u64::MAX - 511, 512),
        Facts::default(),
        NtStatus::STATUS_INVALID_PARAMETER,
        Check::RangeOverflow,
    );
}

#[test]
fn r10_zero_length_succeeds_with_the_zero_token_and_asks_no_file_fact() {
    let mut facts = Facts::default().attributes(FileAttributes::SPARSE_FILE);
    let d = read(&read_input(4096, 0), &mut facts);
    let Verdict::Complete(c) = d.verdict else {
        panic!("zero length must complete")
    };
    assert_eq!(c.status, S);
    let bytes = answered(&c, 600);
    let out = odx_core::wire::OffloadReadOutput::parse(&bytes).unwrap();
    assert_eq!(out.size.get(), 528);
    assert_eq!(out.flags.get(), 0);
    assert_eq!(out.transfer_length.get(), 0);
    assert!(out.token.is_zero_data());
    assert_eq!(out.token, odx_core::wire::StorageOffloadToken::zero_data());
    assert!(
        bytes[528..].iter().all(|&b| b == 0xA5),
        "nothing past the output"
    );
    assert_eq!(c.information(), 528);
    assert_eq!(d.check, Check::ZeroLength);
    assert_eq!(facts.asked, [FactKind::Volume, FactKind::Handle]);
}

#[test]
fn r11_unsupported_stream_kinds_are_read_file_not_supported() {
    let attrs = [
        FileAttributes::COMPRESSED,
        FileAttributes::ENCRYPTED,
        FileAttributes::SPARSE_FILE,
        FileAttributes::DIRECTORY,
    ];
    for a in attrs {
        expect_status(
            &read_input(0, 4096),
            Facts::default().attributes(a),
            NtStatus::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED,
            Check::StreamKind,
        );
    }
    for m in [
        StreamMarkers::TRANSACTED,
        StreamMarkers::METADATA,
        StreamMarkers::NON_DATA_STREAM,
    ] {
        expect_status(
            &read_input(0, 4096),
            Facts::default().markers(m),
            NtStatus::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED,
            Check::StreamKind,
        );
    }
}

#[test]
fn r11_other_attributes_do_not_refuse() {
    // READONLY 0x1, HIDDEN 0x2, ARCHIVE 0x20, NOT_CONTENT_INDEXED 0x2000
    let a = FileAttributes::from_bits_retain(0x1 | 0x2 | 0x20 | 0x2000);
    expect_forward(&read_input(0, 4096), Facts::default().attributes(a));
}

#[test]
fn r12_deleted_stream_is_file_deleted() {
    expect_status(
        &read_input(0, 4096),
        Facts::default().deleted(),
        NtStatus::STATUS_FILE_DELETED,
        Check::StreamDeleted,
    );
}

#[test]
fn r13_exclusive_lock_of_another_open_is_lock_conflict() {
    let facts = Facts::default().lock(2048, 512, true, OTHER);
    expect_status(
        &read_input(0, 4096),
        facts,
        NtStatus::STATUS_FILE_LOCK_CONFLICT,
        Check::LockConflict,
    );
}

#[test]
fn r13_shared_locks_and_own_exclusive_locks_do_not_block_a_read() {
    let facts = Facts::default()
        .lock(0, 4096, false, OTHER)
        .lock(0, 4096, true, ME);
    expect_forward(&read_input(0, 4096), facts);
    // a lock outside the range does not matter
    expect_forward(
        &read_input(0, 4096),
        Facts::default().lock(4096, 4096, true, OTHER),
    );
}

#[test]
fn r14_offset_at_or_beyond_eof_is_end_of_file() {
    expect_status(
        &read_input(MIB, 4096),
        Facts::default(),
        NtStatus::STATUS_END_OF_FILE,
        Check::EndOfFile,
    );
    expect_status(
        &read_input(2 * MIB, 4096),
        Facts::default(),
        NtStatus::STATUS_END_OF_FILE,
        Check::EndOfFile,
    );
    expect_status(
        &read_input(0, 4096),
        Facts::default().sizes(0, 0),
        NtStatus::STATUS_END_OF_FILE,
        Check::EndOfFile,
    );
}

#[test]
fn r15_file_smaller_than_a_sector_is_invalid_parameter() {
    // C-6: below one logical sector is refused; between a sector and a page is allowed.
    expect_status(
        &read_input(0, 512),
        Facts::default().sizes(511, 511),
        NtStatus::STATUS_INVALID_PARAMETER,
        Check::TinyFile,
    );
    expect_forward(&read_input(0, 512), Facts::default().sizes(512, 512));
    expect_forward(&read_input(0, 4096), Facts::default().sizes(1000, 1000));
}

#[test]
fn r16_offset_at_or_beyond_vdl_goes_down_untouched_for_the_file_system_to_answer() {
    // 4b: valid data length comes from an unlocked FCB header; it may trim a request, never
    // answer one. MS-FSA read 14 (the zero token) is NTFS's to give, under its own locks.
    for (offset, vdl) in [(64 * 1024, 64 * 1024), (128 * 1024, 64 * 1024), (8192, 0)] {
        let input = OffloadReadInput::new(offset, 8192, 777);
        let mut facts = Facts::default().sizes(MIB, vdl);
        let d = read(&input, &mut facts);
        assert_eq!(
            d.check,
            Check::BeyondValidData,
            "offset {offset}, VDL {vdl}"
        );
        let Verdict::Forward(f) = d.verdict else {
            panic!("offset {offset}, VDL {vdl}: {:?}", d.verdict)
        };
        assert_eq!(
            forwarded_read(&input, &f),
            input,
            "every field reaches the file system as sent"
        );
        assert!(!f.trimmed());
        assert_eq!(f.context, ReadContext::untouched(8192, SectorSize::DEFAULT));
        assert!(
            !f.context.zero_beyond_forwarded,
            "no zero flag of odxflt's own"
        );
    }
}

#[test]
fn r16_a_read_beyond_vdl_is_not_even_trimmed_at_end_of_file() {
    let mut facts = Facts::default().sizes(10_000, 0);
    let d = read(&read_input(8192, MIB), &mut facts);
    assert_eq!(d.check, Check::BeyondValidData);
    let Verdict::Forward(f) = d.verdict else {
        panic!("{:?}", d.verdict)
    };
    assert_eq!(f.copy_length(), MIB);
    assert_eq!(f.context.forwarded_length, MIB);
}

#[test]
fn r17_range_past_vdl_is_trimmed_to_vdl_rounded_up_with_all_zero_flag() {
    // VDL 5000 (unaligned) < EOF 1 MiB: trim to 5120, and the rest of the file is zero.
    let f = expect_forward(&read_input(0, 65536), Facts::default().sizes(MIB, 5000));
    assert_eq!(f.copy_length(), 5120);
    assert_eq!(f.context.forwarded_length, 5120);
    assert_eq!(f.context.requested_length, 65536);
    assert!(f.context.zero_beyond_forwarded);
    assert!(f.trimmed());
}

#[test]
fn r17_range_past_eof_with_vdl_at_eof_is_trimmed_without_flag() {
    let f = expect_forward(&read_input(MIB - 4096, 65536), Facts::default());
    assert_eq!(f.copy_length(), 4096);
    assert!(!f.context.zero_beyond_forwarded);
    // unaligned EOF: trimmed to the next sector boundary
    let f = expect_forward(&read_input(0, 65536), Facts::default().sizes(1000, 1000));
    assert_eq!(f.copy_length(), 1024);
}

#[test]
fn r17_range_within_vdl_is_forwarded_unchanged() {
    let input = OffloadReadInput::new(4096, 65536, 1234);
    let f = expect_forward(&input, Facts::default());
    assert_eq!(
        forwarded_read(&input, &f),
        input,
        "every field, TokenTimeToLive included, reaches the file system"
    );
    assert!(!f.trimmed());
}

#[test]
fn vdl_above_eof_is_treated_as_eof() {
    let f = expect_forward(
        &read_input(0, 2 * MIB),
        Facts::default().sizes(MIB, 3 * MIB),
    );
    assert_eq!(f.copy_length(), MIB);
    assert!(!f.context.zero_beyond_forwarded);
}

#[test]
fn huge_eof_at_the_end_of_the_64_bit_space_does_not_overflow() {
    let eof = u64::MAX - 100;
    let f = expect_forward(
        &read_input(u64::MAX - 4095 - 512, 4096),
        Facts::default()
            .sizes(eof, eof)
            .with_volume(|v| v.max_file_size = u64::MAX),
    );
    assert_eq!(f.copy_length(), 4096);
}

#[test]
fn a_failed_fact_query_passes_the_request_through_untouched() {
    // 4e: the query's status is not odxflt's to answer with; the file system decides.
    let mut facts = Facts {
        sizes: Err(NtStatus::STATUS_INSUFFICIENT_RESOURCES),
        ..Facts::default()
    };
    let d = read(&read_input(0, 4096), &mut facts);
    assert_eq!(d.verdict, Verdict::PassThrough);
    assert_eq!(status_of(&d.verdict), None);
    assert_eq!(d.check, Check::FactUnavailable(FactKind::StreamSizes));
    assert_eq!(
        facts.asked.last(),
        Some(&FactKind::StreamSizes),
        "nothing is asked after the failed query"
    );
    for kind in [FactKind::Volume, FactKind::Handle, FactKind::StreamKind] {
        let mut facts = Facts::default();
        match kind {
            FactKind::Volume => facts.volume = Err(NtStatus::STATUS_FLT_VOLUME_NOT_FOUND),
            FactKind::Handle => facts.handle = Err(NtStatus::STATUS_INVALID_HANDLE),
            _ => facts.kind = Err(NtStatus::STATUS_ACCESS_DENIED),
        }
        let d = read(&read_input(0, 4096), &mut facts);
        assert_eq!(
            (d.verdict, d.check),
            (Verdict::PassThrough, Check::FactUnavailable(kind))
        );
    }
}

#[test]
fn facts_are_gathered_only_as_far_as_needed() {
    let mut facts = Facts::default();
    read(&read_input(1, 4096), &mut facts);
    assert_eq!(
        facts.asked,
        [FactKind::Volume, FactKind::Handle],
        "a misaligned request costs no file query"
    );
    let mut facts = Facts::default().attributes(FileAttributes::COMPRESSED);
    read(&read_input(0, 4096), &mut facts);
    assert_eq!(
        facts.asked,
        [FactKind::Volume, FactKind::Handle, FactKind::StreamKind]
    );
    let mut facts = Facts::default();
    read(&read_input(0, 4096), &mut facts);
    assert_eq!(
        facts.asked,
        [
            FactKind::Volume,
            FactKind::Handle,
            FactKind::StreamKind,
            FactKind::StreamSizes,
            FactKind::Locks
        ]
    );
}

#[test]
fn read_order_matches_the_documented_table() {
    let positions: Vec<_> = [
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
    ]
    .into();
    assert_eq!(validate::READ_ORDER, positions.as_slice());
}
