//! FSCTL_OFFLOAD_WRITE, rule by rule (odx-spec §4.3, docs/validation.md).

mod common;

use common::*;
use odx_core::flags::{FileAttributes, StreamMarkers, VolumeFlags};
use odx_core::rules::{LengthAlignment, TinyFile};
use odx_core::wire::{OffloadWriteInput, StorageOffloadToken};
use odx_core::*;
use zerocopy::IntoBytes;

fn expect_status(input: &OffloadWriteInput, mut facts: Facts, status: NtStatus, check: Check) {
    let d = write(input, &mut facts);
    assert_eq!(status_of(&d.verdict), Some(status), "{input:?}");
    assert_eq!(d.check, check);
}

fn expect_forward(input: &OffloadWriteInput, mut facts: Facts) -> ForwardWrite {
    match write(input, &mut facts).verdict {
        Verdict::Forward(f) => f,
        Verdict::Complete(c) => panic!("expected forward, got {:?}", c.status),
        Verdict::PassThrough => panic!("expected forward, got a pass-through"),
    }
}

#[test]
fn w1_only_ntfs_implements_offload_write() {
    let facts = Facts::default().with_volume(|v| v.file_system = FileSystemKind::Refs);
    expect_status(
        &write_input(0, 4096, 0),
        facts,
        NtStatus::STATUS_INVALID_DEVICE_REQUEST,
        Check::FileSystemImplementsOffload,
    );
}

#[test]
fn w2_dismounted_volume_is_volume_dismounted() {
    let facts = Facts::default()
        .with_volume(|v| v.flags |= VolumeFlags::DISMOUNTED | VolumeFlags::READ_ONLY);
    expect_status(
        &write_input(0, 4096, 0),
        facts,
        NtStatus::STATUS_VOLUME_DISMOUNTED,
        Check::VolumeMounted,
    );
}

#[test]
fn w2_dismounted_write_status_is_one_rule() {
    let rules = Rules {
        dismounted_write: NtStatus::STATUS_TOO_LATE,
        ..Rules::DOCUMENTED
    };
    let mut facts = Facts::default().with_volume(|v| v.flags |= VolumeFlags::DISMOUNTED);
    let input = write_input(0, 4096, 0);
    let d = decide_write(
        OffloadRequest {
            input: input.as_bytes(),
            output_len: 16,
        },
        &mut facts,
        &rules,
    );
    assert_eq!(status_of(&d.verdict), Some(NtStatus::STATUS_TOO_LATE));
}

#[test]
fn w3_closed_handle_is_file_closed() {
    expect_status(
        &write_input(0, 4096, 0),
        Facts::default().closed(),
        NtStatus::STATUS_FILE_CLOSED,
        Check::HandleOpen,
    );
}

#[test]
fn w4_read_only_volume_is_media_write_protected() {
    let facts = Facts::default().with_volume(|v| v.flags |= VolumeFlags::READ_ONLY);
    expect_status(
        &write_input(0, 4096, 0),
        facts,
        NtStatus::STATUS_MEDIA_WRITE_PROTECTED,
        Check::VolumeWritable,
    );
}

#[test]
fn w4_read_only_precedes_offload_capability() {
    let facts = Facts::default().volume_flags(VolumeFlags::READ_ONLY);
    expect_status(
        &write_input(0, 4096, 0),
        facts,
        NtStatus::STATUS_MEDIA_WRITE_PROTECTED,
        Check::VolumeWritable,
    );
}

#[test]
fn w5_volume_not_offload_write_capable_is_not_supported() {
    let facts = Facts::default().volume_flags(VolumeFlags::OFFLOAD_READ_SUPPORTED);
    expect_status(
        &write_input(0, 4096, 0),
        facts,
        NtStatus::STATUS_NOT_SUPPORTED,
        Check::OffloadSupported,
    );
}

#[test]
fn w6_short_input_is_buffer_too_small() {
    let input = write_input(0, 4096, 0);
    for len in [0usize, 32, 543] {
        let mut facts = Facts::default();
        let d = decide_write(
            OffloadRequest {
                input: &input.as_bytes()[..len],
                output_len: 16,
            },
            &mut facts,
            &Rules::DOCUMENTED,
        );
        assert_eq!(
            status_of(&d.verdict),
            Some(NtStatus::STATUS_BUFFER_TOO_SMALL),
            "{len}"
        );
    }
}

#[test]
fn w7_output_of_16_bytes_is_enough_and_15_is_not() {
    // C-7: the WDK page's "sizeof(FSCTL_OFFLOAD_READ_OUTPUT)" is a copy error; 16 is the rule.
    let input = write_input(0, 4096, 0);
    let mut facts = Facts::default();
    let d = decide_write(
        OffloadRequest {
            input: input.as_bytes(),
            output_len: 15,
        },
        &mut facts,
        &Rules::DOCUMENTED,
    );
    assert_eq!(
        status_of(&d.verdict),
        Some(NtStatus::STATUS_BUFFER_TOO_SMALL)
    );
    assert_eq!(d.check, Check::OutputLength);
    let d = decide_write(
        OffloadRequest {
            input: input.as_bytes(),
            output_len: 16,
        },
        &mut facts,
        &Rules::DOCUMENTED,
    );
    assert!(matches!(d.verdict, Verdict::Forward(_)));
}

#[test]
fn w8_offset_length_and_transfer_offset_must_be_sector_multiples() {
    for (offset, length, transfer) in [(1, 4096, 0), (0, 4095, 0), (0, 4096, 100), (512, 512, 511)]
    {
        expect_status(
            &write_input(offset, length, transfer),
            Facts::default(),
            NtStatus::STATUS_INVALID_PARAMETER,
            Check::Alignment,
        );
    }
    expect_forward(&write_input(512, 512, 1024), Facts::default());
}

#[test]
fn w9_size_field_must_be_544() {
    for size in [0u32, 32, 543, 545, 528] {
        let mut input = write_input(0, 4096, 0);
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
fn w10_offset_plus_length_overflow_is_invalid_parameter() {
    expect_status(
        &write_input(u64::MAX - 511, 512, 0),
        Facts::default(),
        NtStatus::STATUS_INVALID_PARAMETER,
        Check::RangeOverflow,
    );
}

#[test]
fn w11_zero_length_write_succeeds_with_nothing_written() {
    let mut facts = Facts::default().with_volume(|v| v.max_file_size = 0);
    let d = write(&write_input(2 * MIB, 0, 0), &mut facts);
    let Verdict::Complete(c) = d.verdict else {
        panic!()
    };
    assert_eq!(c.status, NtStatus::STATUS_SUCCESS);
    let out = odx_core::wire::OffloadWriteOutput::parse(&answered(&c, 16)).unwrap();
    assert_eq!(
        (out.size.get(), out.flags.get(), out.length_written.get()),
        (16, 0, 0)
    );
    assert_eq!(d.check, Check::ZeroLength);
}

#[test]
fn w12_unsupported_stream_kinds_are_write_file_not_supported() {
    let attrs = [
        FileAttributes::COMPRESSED,
        FileAttributes::ENCRYPTED,
        FileAttributes::SPARSE_FILE,
        FileAttributes::DIRECTORY,
    ];
    for a in attrs {
        expect_status(
            &write_input(0, 4096, 0),
            Facts::default().attributes(a),
            NtStatus::STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED,
            Check::StreamKind,
        );
    }
    for m in [
        StreamMarkers::TRANSACTED,
        StreamMarkers::METADATA,
        StreamMarkers::NON_DATA_STREAM,
    ] {
        expect_status(
            &write_input(0, 4096, 0),
            Facts::default().markers(m),
            NtStatus::STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED,
            Check::StreamKind,
        );
    }
}

#[test]
fn w13_deleted_stream_is_file_deleted() {
    expect_status(
        &write_input(0, 4096, 0),
        Facts::default().deleted(),
        NtStatus::STATUS_FILE_DELETED,
        Check::StreamDeleted,
    );
}

#[test]
fn w14_range_beyond_max_file_size_is_invalid_parameter() {
    let facts = Facts::default().with_volume(|v| v.max_file_size = MIB);
    expect_status(
        &write_input(MIB - 4096, 8192, 0),
        facts.clone(),
        NtStatus::STATUS_INVALID_PARAMETER,
        Check::MaxFileSize,
    );
    // ending exactly at the maximum is allowed
    expect_forward(&write_input(MIB - 4096, 4096, 0), facts);
}

#[test]
fn w14_ntfs_max_file_size_is_2_pow_32_minus_1_clusters() {
    assert_eq!(
        VolumeFacts::ntfs_max_file_size(4096),
        (u64::from(u32::MAX)) * 4096
    );
    assert_eq!(
        VolumeFacts::ntfs_max_file_size(u32::MAX),
        u64::from(u32::MAX) * u64::from(u32::MAX)
    );
}

#[test]
fn w15_any_shared_lock_blocks_a_write_even_our_own() {
    expect_status(
        &write_input(0, 4096, 0),
        Facts::default().lock(0, 512, false, ME),
        NtStatus::STATUS_FILE_LOCK_CONFLICT,
        Check::LockConflict,
    );
    expect_status(
        &write_input(0, 4096, 0),
        Facts::default().lock(4095, 1, false, OTHER),
        NtStatus::STATUS_FILE_LOCK_CONFLICT,
        Check::LockConflict,
    );
}

#[test]
fn w15_exclusive_lock_blocks_unless_ours() {
    expect_status(
        &write_input(0, 4096, 0),
        Facts::default().lock(0, 512, true, OTHER),
        NtStatus::STATUS_FILE_LOCK_CONFLICT,
        Check::LockConflict,
    );
    expect_forward(
        &write_input(0, 4096, 0),
        Facts::default().lock(0, 512, true, ME),
    );
}

#[test]
fn w16_write_at_or_past_eof_is_end_of_file() {
    expect_status(
        &write_input(MIB, 4096, 0),
        Facts::default(),
        NtStatus::STATUS_END_OF_FILE,
        Check::EndOfFile,
    );
    expect_status(
        &write_input(0, 4096, 0),
        Facts::default().sizes(0, 0),
        NtStatus::STATUS_END_OF_FILE,
        Check::EndOfFile,
    );
}

#[test]
fn w17_destination_smaller_than_a_sector_is_invalid_parameter() {
    expect_status(
        &write_input(0, 512, 0),
        Facts::default().sizes(200, 200),
        NtStatus::STATUS_INVALID_PARAMETER,
        Check::TinyFile,
    );
}

#[test]
fn w18_write_beyond_vdl_goes_down_untouched_and_at_vdl_is_forwarded() {
    // 4b: MS-FSA write 16 (C-4: INVALID_PARAMETER, or MS-FSA's BEYOND_VDL) is the file system's
    // refusal to make under its own locks; odxflt's view of valid data length is unlocked.
    for rules in [
        Rules::DOCUMENTED,
        Rules {
            write_beyond_vdl: NtStatus::STATUS_BEYOND_VDL,
            ..Rules::DOCUMENTED
        },
    ] {
        // Runs past end of file too: not even the end-of-file trim is applied.
        let input = write_input(8192, 2 * MIB, 512);
        let mut facts = Facts::default().sizes(MIB, 4096);
        let d = decide_write(
            OffloadRequest {
                input: input.as_bytes(),
                output_len: 16,
            },
            &mut facts,
            &rules,
        );
        assert_eq!(d.check, Check::BeyondValidData);
        let Verdict::Forward(f) = d.verdict else {
            panic!("{:?}", d.verdict)
        };
        assert_eq!(
            forwarded_write(&input, &f),
            input,
            "the request goes down as the caller sent it"
        );
        assert!(!f.trimmed());
        assert_eq!(
            f.context,
            WriteContext::untouched(2 * MIB, SectorSize::DEFAULT)
        );
    }
    // Starting at valid data length is allowed: an ordinary forward.
    let mut facts = Facts::default().sizes(MIB, 4096);
    let d = write(&write_input(4096, 4096, 0), &mut facts);
    assert_eq!(d.check, Check::Forward);
    assert!(matches!(d.verdict, Verdict::Forward(f) if !f.trimmed()));
}

#[test]
fn a_failed_fact_query_passes_the_write_through_untouched() {
    let mut facts = Facts {
        sizes: Err(NtStatus::STATUS_INSUFFICIENT_RESOURCES),
        ..Facts::default()
    };
    let d = write(&write_input(0, 4096, 0), &mut facts);
    assert_eq!(
        (d.verdict, d.check),
        (
            Verdict::PassThrough,
            Check::FactUnavailable(FactKind::StreamSizes)
        )
    );
}

#[test]
fn write_never_extends_the_file() {
    let f = expect_forward(&write_input(MIB - 4096, 65536, 0), Facts::default());
    assert_eq!(f.copy_length(), 4096);
    assert!(f.trimmed());
    // unaligned EOF: the last partial sector is included
    let f = expect_forward(
        &write_input(0, 65536, 0),
        Facts::default().sizes(5000, 5000),
    );
    assert_eq!(f.copy_length(), 5120);
}

#[test]
fn forwarded_write_keeps_token_and_transfer_offset() {
    let token = StorageOffloadToken::vendor(0x1234_5678, [9; 504]);
    let input = OffloadWriteInput::new(4096, 8192, 1024, token);
    let f = expect_forward(&input, Facts::default());
    assert_eq!(forwarded_write(&input, &f), input);
    assert_eq!(f.context.forwarded_length, 8192);
}

#[test]
fn c3_length_alignment_rule_can_allow_a_length_ending_at_eof() {
    let rules = Rules {
        copy_length_alignment: LengthAlignment::ExceptAtEndOfFile,
        ..Rules::DOCUMENTED
    };
    let input = write_input(0, 5000, 0);
    let mut facts = Facts::default().sizes(5000, 5000);
    let d = decide_write(
        OffloadRequest {
            input: input.as_bytes(),
            output_len: 16,
        },
        &mut facts,
        &rules,
    );
    assert!(matches!(d.verdict, Verdict::Forward(_)));
    let input = write_input(0, 4999, 0);
    let d = decide_write(
        OffloadRequest {
            input: input.as_bytes(),
            output_len: 16,
        },
        &mut facts,
        &rules,
    );
    assert_eq!(
        status_of(&d.verdict),
        Some(NtStatus::STATUS_INVALID_PARAMETER)
    );
    assert_eq!(d.check, Check::Alignment);
}

#[test]
fn c6_page_rule_refuses_files_below_4096() {
    let rules = Rules {
        tiny_file: TinyFile::BelowPage,
        ..Rules::DOCUMENTED
    };
    let input = write_input(0, 4096, 0);
    let mut facts = Facts::default().sizes(4095, 4095);
    let d = decide_write(
        OffloadRequest {
            input: input.as_bytes(),
            output_len: 16,
        },
        &mut facts,
        &rules,
    );
    assert_eq!(
        status_of(&d.verdict),
        Some(NtStatus::STATUS_INVALID_PARAMETER)
    );
    let rules = Rules {
        tiny_file: TinyFile::NoRule,
        ..Rules::DOCUMENTED
    };
    let mut facts = Facts::default().sizes(100, 100);
    let d = decide_write(
        OffloadRequest {
            input: input.as_bytes(),
            output_len: 16,
        },
        &mut facts,
        &rules,
    );
    assert!(matches!(d.verdict, Verdict::Forward(_)));
}

#[test]
fn c5_short_buffer_status_is_one_rule() {
    let rules = Rules {
        short_buffer: NtStatus::STATUS_INVALID_PARAMETER,
        ..Rules::DOCUMENTED
    };
    let mut facts = Facts::default();
    let d = decide_write(
        OffloadRequest {
            input: &[0; 100],
            output_len: 16,
        },
        &mut facts,
        &rules,
    );
    assert_eq!(
        status_of(&d.verdict),
        Some(NtStatus::STATUS_INVALID_PARAMETER)
    );
}
