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
fn a_read_beyond_vdl_goes_down_untouched_and_the_file_systems_zero_token_passes_through() {
    // 4b: odxflt does not answer MS-FSA read 14 itself; NTFS does, and post-operation passes
    // its answer (zero token, ALL_ZERO_BEYOND_CURRENT_RANGE, its TransferLength) through.
    let stats = VolumeStats::new();
    let input = read_input(8192, 65536);
    // the buffer is larger than OutputBufferLength: bytes past 528 must stay untouched
    let mut buffer = system_buffer(input.as_bytes(), 600);
    let before = buffer.clone();
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
    let PreOp::Forward {
        context,
        input_rewritten: false,
        check: Some(Check::BeyondValidData),
        journal_seq: None,
    } = p
    else {
        panic!("a read beyond VDL must go down untouched: {p:?}")
    };
    assert_eq!(buffer, before, "nothing rewritten");
    assert_eq!(
        context,
        PostContext::Read(ReadContext::untouched(65536, SectorSize::DEFAULT))
    );
    // NTFS answers MS-FSA read 14 (its own TransferLength: here 16 KiB).
    OffloadReadOutput::new(
        OffloadReadFlags::ALL_ZERO_BEYOND_CURRENT_RANGE,
        16384,
        StorageOffloadToken::zero_data(),
    )
    .serialize_into(&mut buffer)
    .unwrap();
    let answered = buffer.clone();
    let (status, info) = post_operation(
        &context,
        LowerAnswer {
            status: NtStatus::STATUS_SUCCESS,
            information: 528,
            buffer: &mut buffer,
            output_len: 528,
        },
        &Rules::DOCUMENTED,
        Some(&stats),
        None,
        None,
    );
    assert_eq!((status, info), (NtStatus::STATUS_SUCCESS, 528));
    assert_eq!(buffer, answered, "the file system's answer passes through");
    let out = OffloadReadOutput::parse(&buffer).unwrap();
    assert!(out.token.is_zero_data());
    assert_eq!(
        out.read_flags(),
        OffloadReadFlags::ALL_ZERO_BEYOND_CURRENT_RANGE
    );
    assert_eq!(out.transfer_length.get(), 16384);
    assert!(buffer[528..].iter().all(|&b| b == 0xCC));
    let c = stats.read.counts();
    assert_eq!((c.seen, c.forwarded, c.completed), (1, 1, 0));
    assert_eq!((c.truncated, c.bytes_offloaded), (1, 16384));
}

#[test]
fn a_write_beyond_vdl_goes_down_untouched_and_the_file_systems_refusal_passes_through() {
    let stats = VolumeStats::new();
    // Runs past end of file as well: not trimmed either.
    let input = write_input(8192, 2 * MIB, 0);
    let mut buffer = system_buffer(input.as_bytes(), 16);
    let before = buffer.clone();
    let mut facts = Facts::default().sizes(MIB, 4096);
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
        input_rewritten: false,
        check: Some(Check::BeyondValidData),
        journal_seq: None,
    } = p
    else {
        panic!("a write beyond VDL must go down untouched: {p:?}")
    };
    assert_eq!(buffer, before);
    for below in [
        NtStatus::STATUS_INVALID_PARAMETER,
        NtStatus::STATUS_BEYOND_VDL,
    ] {
        let (status, info) = post_operation(
            &context,
            LowerAnswer {
                status: below,
                information: 0,
                buffer: &mut buffer,
                output_len: 16,
            },
            &Rules::DOCUMENTED,
            Some(&stats),
            None,
            None,
        );
        assert_eq!((status, info), (below, 0));
    }
}

#[test]
fn a_failed_fact_query_passes_the_request_through_without_a_callback_and_is_counted() {
    // 4e: the query's status is not odxflt's answer; the request goes down as sent.
    let stats = VolumeStats::new();
    for (op, input) in [
        (OffloadOp::Read, read_input(0, 4096).as_bytes().to_vec()),
        (
            OffloadOp::Write,
            write_input(0, 4096, 0).as_bytes().to_vec(),
        ),
    ] {
        let mut buffer = system_buffer(&input, 528);
        let before = buffer.clone();
        let mut facts = Facts {
            sizes: Err(NtStatus::STATUS_INSUFFICIENT_RESOURCES),
            ..Facts::default()
        };
        let p = pre(
            op,
            &mut buffer,
            input.len(),
            if op == OffloadOp::Read { 528 } else { 16 },
            &mut facts,
            PolicyMode::Enforce,
            &stats,
        );
        assert_eq!(
            p,
            PreOp::PassThrough {
                check: Check::FactUnavailable(FactKind::StreamSizes)
            },
            "{op:?}"
        );
        assert_eq!(buffer, before, "{op:?}: the buffer is untouched");
    }
    for c in [stats.read.counts(), stats.write.counts()] {
        assert_eq!(
            (c.seen, c.forwarded, c.completed, c.fact_failed),
            (1, 1, 0, 1)
        );
        assert_eq!(c.completed_by_status, [0; odx_core::stats::STATUS_BUCKETS]);
    }
    // Monitor mode still goes down with a post-operation (to count the answer), and counts the
    // failed query too.
    let input = read_input(0, 4096);
    let mut buffer = system_buffer(input.as_bytes(), 528);
    let mut facts = Facts {
        handle: Err(NtStatus::STATUS_INVALID_HANDLE),
        ..Facts::default()
    };
    let monitor = VolumeStats::new();
    let p = pre(
        OffloadOp::Read,
        &mut buffer,
        32,
        528,
        &mut facts,
        PolicyMode::Monitor,
        &monitor,
    );
    assert!(matches!(
        p,
        PreOp::Forward {
            context: PostContext::Observe { .. },
            input_rewritten: false,
            check: None,
            journal_seq: None,
        }
    ));
    let c = monitor.read.counts();
    assert_eq!((c.forwarded, c.fact_failed, c.would_refuse), (1, 1, 0));
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
        check: Some(Check::Forward),
        journal_seq: None,
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
        None,
        None,
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
        check: Some(Check::Forward),
        journal_seq: None,
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
        None,
        None,
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
        None,
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
        check: None,
        journal_seq: None,
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
        None,
        None,
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
                        None,
                        None,
                    );
                }
            }
        }
    }
}

/// The driver takes `pre_operation` when nothing is configured and `pre_operation_in` otherwise
/// (docs/driver.md, "Two callback bodies"): with no governance and no journal the two must be
/// one decision — the same outcome, the same buffer, the same facts asked (each at most once)
/// and the same counters — for every mode, operation and input, failing facts included.
#[test]
fn nothing_configured_pre_operation_in_is_pre_operation() {
    let failing = NtStatus::STATUS_INSUFFICIENT_RESOURCES;
    let facts: Vec<Facts> = vec![
        Facts::default(),
        Facts::default().sizes(MIB, MIB / 2),
        Facts::default().sizes(3000, 3000),
        Facts::default().sector(4096),
        Facts::default().attributes(FileAttributes::SPARSE_FILE),
        Facts::default().deleted(),
        Facts::default().closed(),
        Facts {
            sizes: Err(failing),
            ..Facts::default()
        },
        Facts {
            kind: Err(failing),
            ..Facts::default()
        },
        Facts {
            volume: Err(failing),
            ..Facts::default()
        },
    ];
    let ranges = [
        (0, 0),
        (0, 65536),
        (4096, MIB),
        (100, 4096),
        (MIB - 4096, 8192),
        (2 * MIB, 4096),
        (u64::MAX - 511, 512),
    ];
    let mut cases = 0;
    for mode in [PolicyMode::Enforce, PolicyMode::Monitor, PolicyMode::Veto] {
        for op in [OffloadOp::Read, OffloadOp::Write] {
            for &(offset, length) in &ranges {
                let input = match op {
                    OffloadOp::Read => read_input(offset, length).as_bytes().to_vec(),
                    OffloadOp::Write => write_input(offset, length, 0).as_bytes().to_vec(),
                };
                for input_len in [input.len(), input.len() - 1, 0] {
                    for output_len in [0, 16, 31, OffloadReadOutput::SIZE] {
                        for base in &facts {
                            let run = |governed: bool| {
                                let mut buffer = system_buffer(&input, output_len);
                                let mut f = base.clone();
                                let stats = VolumeStats::new();
                                let request = BufferedRequest {
                                    op,
                                    buffer: &mut buffer,
                                    input_len,
                                    output_len,
                                };
                                let pre = if governed {
                                    let env = PreEnv {
                                        mode,
                                        rules: &Rules::DOCUMENTED,
                                        stats: Some(&stats),
                                        governance: None,
                                        journal: None,
                                    };
                                    pre_operation_in(request, &mut f, &env)
                                } else {
                                    pre_operation(
                                        request,
                                        mode,
                                        &mut f,
                                        &Rules::DOCUMENTED,
                                        Some(&stats),
                                    )
                                };
                                let counts = (stats.read.counts(), stats.write.counts());
                                (pre, buffer, f.asked, f.names_asked, counts)
                            };
                            let plain = run(false);
                            assert_eq!(
                                plain,
                                run(true),
                                "{mode:?} {op:?} {offset}+{length} in {input_len} out {output_len}"
                            );
                            let mut asked = plain.2.clone();
                            asked.sort_by_key(|k| format!("{k:?}"));
                            let before = asked.len();
                            asked.dedup();
                            assert_eq!(before, asked.len(), "a fact asked twice: {:?}", plain.2);
                            cases += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(cases, 3 * 2 * 7 * 3 * 4 * 10);
}
