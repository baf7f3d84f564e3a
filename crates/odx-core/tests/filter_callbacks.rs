//! The filter's callbacks over a METHOD_BUFFERED buffer: what reaches the caller's buffer, what
//! goes down, what the statistics say.

mod common;

use common::*;
use odx_core::filter::*;
use odx_core::flags::{FileAttributes, OffloadReadFlags};
use odx_core::policy::PolicyMode;
use odx_core::stats::VolumeStats;
use odx_core::wire::*;
use odx_core::*;
use zerocopy::IntoBytes;

fn system_buffer(input: &[u8], output_len: usize) -> Vec<u8> {
    let mut b = vec![0xCC; input.len().max(output_len)];
    b[..input.len()].copy_from_slice(input);
    b
}

fn pre(
    op: OffloadOp,
    buffer: &mut [u8],
    input_len: usize,
    output_len: usize,
    facts: &mut Facts,
    mode: PolicyMode,
    stats: &VolumeStats,
) -> PreOp {
    pre_operation(
        BufferedRequest {
            op,
            buffer,
            input_len,
            output_len,
        },
        mode,
        facts,
        &Rules::DOCUMENTED,
        Some(stats),
    )
}

#[test]
fn refusal_completes_with_no_output_and_leaves_the_buffer_alone() {
    let stats = VolumeStats::new();
    let input = read_input(0, 4096);
    let mut buffer = system_buffer(input.as_bytes(), 528);
    let before = buffer.clone();
    let mut facts = Facts::default().attributes(FileAttributes::COMPRESSED);
    let p = pre(
        OffloadOp::Read,
        &mut buffer,
        32,
        528,
        &mut facts,
        PolicyMode::Enforce,
        &stats,
    );
    assert_eq!(
        p,
        PreOp::Complete {
            status: NtStatus::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED,
            information: 0,
            check: Some(Check::StreamKind)
        }
    );
    assert_eq!(buffer, before);
    let c = stats.read.counts();
    assert_eq!((c.seen, c.completed), (1, 1));
}

#[test]
fn zero_token_answer_is_written_within_the_output_length() {
    let stats = VolumeStats::new();
    let input = read_input(8192, 4096);
    // the buffer is larger than OutputBufferLength: bytes past 528 must stay untouched
    let mut buffer = system_buffer(input.as_bytes(), 600);
    let mut facts = Facts::default().sizes(MIB, 4096);
    let p = pre(
        OffloadOp::Read,
        &mut buffer,
        32,
        528,
        &mut facts,
        PolicyMode::Enforce,
        &stats,
    );
    assert!(matches!(
        p,
        PreOp::Complete {
            status: NtStatus::STATUS_SUCCESS,
            information: 528,
            ..
        }
    ));
    let out = OffloadReadOutput::parse(&buffer).unwrap();
    assert!(out.token.is_zero_data());
    assert_eq!(
        out.read_flags(),
        OffloadReadFlags::ALL_ZERO_BEYOND_CURRENT_RANGE
    );
    assert!(buffer[528..].iter().all(|&b| b == 0xCC));
}

#[test]
fn trimmed_forward_rewrites_the_input_and_post_operation_maps_the_answer() {
    let stats = VolumeStats::new();
    let input = write_input(MIB - 4096, 65536, 0);
    let mut buffer = system_buffer(input.as_bytes(), 16);
    let mut facts = Facts::default();
    let p = pre(
        OffloadOp::Write,
        &mut buffer,
        544,
        16,
        &mut facts,
        PolicyMode::Enforce,
        &stats,
    );
    let PreOp::Forward {
        context,
        input_rewritten: true,
    } = p
    else {
        panic!("{p:?}")
    };
    assert_eq!(
        OffloadWriteInput::parse(&buffer).unwrap().copy_length.get(),
        4096
    );
    // the file system answers: 4096 written (the output overlays the input)
    OffloadWriteOutput::new(4096)
        .serialize_into(&mut buffer)
        .unwrap();
    let (status, info) = post_operation(
        &context,
        LowerAnswer {
            status: NtStatus::STATUS_SUCCESS,
            information: 16,
            buffer: &mut buffer,
            output_len: 16,
        },
        &Rules::DOCUMENTED,
        Some(&stats),
    );
    assert_eq!((status, info), (NtStatus::STATUS_SUCCESS, 16));
    let c = stats.write.counts();
    assert_eq!((c.forwarded, c.truncated, c.bytes_offloaded), (1, 1, 4096));
}

#[test]
fn post_operation_failure_is_mapped_and_counted() {
    let stats = VolumeStats::new();
    let input = read_input(0, 4096);
    let mut buffer = system_buffer(input.as_bytes(), 528);
    let mut facts = Facts::default();
    let PreOp::Forward {
        context,
        input_rewritten: false,
    } = pre(
        OffloadOp::Read,
        &mut buffer,
        32,
        528,
        &mut facts,
        PolicyMode::Enforce,
        &stats,
    )
    else {
        panic!()
    };
    let (status, info) = post_operation(
        &context,
        LowerAnswer {
            status: NtStatus::STATUS_ACCESS_DENIED,
            information: 0,
            buffer: &mut buffer,
            output_len: 528,
        },
        &Rules::DOCUMENTED,
        Some(&stats),
    );
    assert_eq!(
        (status, info),
        (NtStatus::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED, 0)
    );
    assert_eq!(stats.read.counts().failed_below, 1);
}

#[test]
fn broken_success_from_below_never_reaches_the_caller() {
    let input = read_input(0, 4096);
    let mut buffer = system_buffer(input.as_bytes(), 528);
    let mut facts = Facts::default();
    let stats = VolumeStats::new();
    let PreOp::Forward { context, .. } = pre(
        OffloadOp::Read,
        &mut buffer,
        32,
        528,
        &mut facts,
        PolicyMode::Enforce,
        &stats,
    ) else {
        panic!()
    };
    OffloadReadOutput::new(
        OffloadReadFlags::empty(),
        1 << 30,
        StorageOffloadToken::zero_data(),
    )
    .serialize_into(&mut buffer)
    .unwrap();
    let (status, info) = post_operation(
        &context,
        LowerAnswer {
            status: NtStatus::STATUS_SUCCESS,
            information: 528,
            buffer: &mut buffer,
            output_len: 528,
        },
        &Rules::DOCUMENTED,
        None,
    );
    assert_eq!((status, info), (NtStatus::STATUS_NOT_SUPPORTED, 0));
}

#[test]
fn monitor_forwards_untouched_and_passes_the_answer_through() {
    let stats = VolumeStats::new();
    let input = read_input(0, 4096);
    let mut buffer = system_buffer(input.as_bytes(), 528);
    let mut facts = Facts::default().attributes(FileAttributes::SPARSE_FILE);
    let p = pre(
        OffloadOp::Read,
        &mut buffer,
        32,
        528,
        &mut facts,
        PolicyMode::Monitor,
        &stats,
    );
    let PreOp::Forward {
        context,
        input_rewritten: false,
    } = p
    else {
        panic!("{p:?}")
    };
    assert_eq!(
        context,
        PostContext::Observe {
            op: OffloadOp::Read,
            requested_length: 4096
        }
    );
    let (status, info) = post_operation(
        &context,
        LowerAnswer {
            status: NtStatus::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED,
            information: 0,
            buffer: &mut buffer,
            output_len: 528,
        },
        &Rules::DOCUMENTED,
        Some(&stats),
    );
    assert_eq!(
        (status, info),
        (NtStatus::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED, 0)
    );
    let c = stats.read.counts();
    assert_eq!(
        (
            c.seen,
            c.forwarded,
            c.would_refuse,
            c.completed,
            c.failed_below
        ),
        (1, 1, 1, 0, 1)
    );
}

#[test]
fn veto_completes_with_the_filter_code_without_facts() {
    let stats = VolumeStats::new();
    let input = write_input(0, 4096, 0);
    let mut buffer = system_buffer(input.as_bytes(), 16);
    let mut facts = Facts::default();
    let p = pre(
        OffloadOp::Write,
        &mut buffer,
        544,
        16,
        &mut facts,
        PolicyMode::Veto,
        &stats,
    );
    assert_eq!(
        p,
        PreOp::Complete {
            status: NtStatus::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED,
            information: 0,
            check: None
        }
    );
    assert!(facts.asked.is_empty());
}

#[test]
fn inconsistent_lengths_never_panic() {
    let stats = VolumeStats::new();
    for (buf_len, input_len, output_len) in [
        (0, 0, 0),
        (0, 32, 528),
        (16, 544, 16),
        (600, 0, 600),
        (10, usize::MAX, usize::MAX),
    ] {
        for op in [OffloadOp::Read, OffloadOp::Write] {
            for mode in PolicyMode::ALL {
                let mut buffer = vec![0u8; buf_len];
                let mut facts = Facts::default();
                let p = pre(
                    op,
                    &mut buffer,
                    input_len,
                    output_len,
                    &mut facts,
                    mode,
                    &stats,
                );
                if let PreOp::Forward { context, .. } = p {
                    let _ = post_operation(
                        &context,
                        LowerAnswer {
                            status: NtStatus::STATUS_SUCCESS,
                            information: usize::MAX,
                            buffer: &mut buffer,
                            output_len,
                        },
                        &Rules::DOCUMENTED,
                        Some(&stats),
                    );
                }
            }
        }
    }
}
