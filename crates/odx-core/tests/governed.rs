//! Pre- and post-operation with governance rules and the decision journal
//! (`filter::pre_operation_in`): which rule decides, what the facts are asked, what the journal
//! records.

mod common;

use common::*;
use odx_core::filter::*;
use odx_core::governance::journal::{DecidedBy, Journal, Record};
use odx_core::governance::{Governance, JournalAt, JournalSeq, RuleSet, VolumeNames};
use odx_core::iomgr::RequestorMode;
use odx_core::policy::PolicyMode;
use odx_core::stats::VolumeStats;
use odx_core::wire::*;
use odx_core::*;
use zerocopy::IntoBytes;

fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn rules(text: &str) -> Box<RuleSet> {
    let mut set = Box::new(RuleSet::new());
    set.try_load_lines(text.lines()).expect("rules parse");
    set
}

struct Run {
    pre: PreOp,
    facts: Facts,
}

/// One write of `length` bytes at 0 to a file of `size` bytes, by `process`.
fn write(
    set: &RuleSet,
    journal: Option<&Journal<16>>,
    names: bool,
    process: &str,
    size: u64,
    length: u64,
    mode: PolicyMode,
) -> Run {
    let input = write_input(0, length, 0);
    let mut buffer = input.as_bytes().to_vec();
    let mut facts = Facts::default().sizes(size, size);
    facts.process = Some(utf16(&format!(
        "\\Device\\HarddiskVolume2\\Tools\\{process}"
    )));
    facts.path = Some(utf16("\\Backups\\db.vhdx"));
    let dos = utf16("D:");
    let stats = VolumeStats::new();
    let pre = pre_operation_in(
        BufferedRequest {
            op: OffloadOp::Write,
            buffer: &mut buffer,
            input_len: 544,
            output_len: 16,
        },
        &mut facts,
        &PreEnv {
            mode,
            rules: &Rules::DOCUMENTED,
            stats: Some(&stats),
            governance: Some(Governance {
                rules: set,
                volume: VolumeNames {
                    device: &[],
                    dos: &dos,
                    guid: &[],
                },
                requestor: RequestorMode::User,
            }),
            journal: journal.map(|log| JournalAt {
                log,
                time: 42,
                volume: 3,
                process_id: 4711,
                names,
            }),
        },
    );
    Run { pre, facts }
}

fn status(pre: &PreOp) -> Option<NtStatus> {
    match pre {
        PreOp::Complete { status, .. } => Some(*status),
        _ => None,
    }
}

#[test]
fn a_veto_rule_refuses_only_the_named_process() {
    let set = rules("veto process=robocopy.exe volume=D:\n");
    let vetoed = write(
        &set,
        None,
        false,
        "ROBOCOPY.EXE",
        1 << 20,
        65536,
        PolicyMode::Enforce,
    );
    assert_eq!(
        status(&vetoed.pre),
        Some(NtStatus::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED)
    );
    assert!(
        vetoed.facts.asked.is_empty(),
        "a veto asks no file fact: {:?}",
        vetoed.facts.asked
    );
    assert_eq!(
        vetoed.facts.names_asked,
        (1, 0),
        "the process only, never the path"
    );
    let other = write(
        &set,
        None,
        false,
        "explorer.exe",
        1 << 20,
        65536,
        PolicyMode::Enforce,
    );
    assert!(
        matches!(other.pre, PreOp::Forward { .. }),
        "{:?}",
        other.pre
    );
}

#[test]
fn a_size_rule_lets_small_files_down_untouched_and_enforces_large_ones() {
    let set = rules("monitor max-size=262143\nenforce\n");
    let small = write(&set, None, false, "x.exe", 4096, 4096, PolicyMode::Veto);
    assert!(
        matches!(
            small.pre,
            PreOp::Forward {
                context: PostContext::Observe { .. },
                input_rewritten: false,
                ..
            }
        ),
        "{:?}",
        small.pre
    );
    let large = write(&set, None, false, "x.exe", 1 << 20, 65536, PolicyMode::Veto);
    assert!(
        matches!(
            large.pre,
            PreOp::Forward {
                context: PostContext::Write(_),
                ..
            }
        ),
        "{:?}",
        large.pre
    );
    // A large file whose request fails a check is refused by the enforce rule, not vetoed by
    // the volume's mode.
    let misaligned = write(&set, None, false, "x.exe", 1 << 20, 1000, PolicyMode::Veto);
    assert_eq!(
        status(&misaligned.pre),
        Some(NtStatus::STATUS_INVALID_PARAMETER)
    );
}

#[test]
fn no_rules_and_no_journal_ask_no_name() {
    let set = RuleSet::new();
    let run = write(
        &set,
        None,
        true,
        "x.exe",
        1 << 20,
        65536,
        PolicyMode::Enforce,
    );
    assert_eq!(run.facts.names_asked, (0, 0));
    let journal = Journal::<16>::new();
    let run = write(
        &set,
        Some(&journal),
        false,
        "x.exe",
        1 << 20,
        65536,
        PolicyMode::Enforce,
    );
    assert_eq!(run.facts.names_asked, (0, 0), "journal without names");
    let run = write(
        &set,
        Some(&journal),
        true,
        "x.exe",
        1 << 20,
        65536,
        PolicyMode::Enforce,
    );
    assert_eq!(
        run.facts.names_asked,
        (1, 1),
        "journal with names: once each"
    );
}

fn records(journal: &Journal<16>) -> Vec<Record> {
    let mut page = [Record::EMPTY; 16];
    let got = journal.read_page(0, &mut page);
    page[..got.copied].to_vec()
}

#[test]
fn the_journal_names_the_rule_or_check_and_completes_forwarded_requests() {
    let set = rules("veto process=robocopy.exe\nmonitor max-size=4096\n");
    let journal = Journal::<16>::new();
    write(
        &set,
        Some(&journal),
        true,
        "robocopy.exe",
        1 << 20,
        65536,
        PolicyMode::Enforce,
    );
    write(
        &set,
        Some(&journal),
        true,
        "x.exe",
        4096,
        4096,
        PolicyMode::Enforce,
    );
    let forwarded = write(
        &set,
        Some(&journal),
        true,
        "x.exe",
        1 << 20,
        65536,
        PolicyMode::Enforce,
    );
    write(
        &set,
        Some(&journal),
        true,
        "x.exe",
        1 << 20,
        1000,
        PolicyMode::Enforce,
    );
    write(
        &RuleSet::new(),
        Some(&journal),
        true,
        "x.exe",
        1 << 20,
        65536,
        PolicyMode::Veto,
    );

    let r = records(&journal);
    assert_eq!(r.len(), 5);
    assert_eq!(r[0].decided_by, DecidedBy::Rule(0));
    assert_eq!(r[0].rule, Some(0));
    assert!(r[0].completed);
    assert_eq!(
        r[0].status,
        NtStatus::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED
    );
    assert_eq!(r[0].process_name.units(), utf16("robocopy.exe").as_slice());
    assert_eq!(
        (r[0].volume, r[0].process_id, r[0].time, r[0].length),
        (3, 4711, 42, 65536)
    );
    assert_eq!(r[1].decided_by, DecidedBy::Rule(1), "monitor by rule");
    assert!(!r[1].completed, "forwarded: completed in post-operation");
    assert_eq!(r[2].decided_by, DecidedBy::Check(Check::Forward));
    assert_eq!(r[2].rule, None);
    assert_eq!(r[3].decided_by, DecidedBy::Check(Check::Alignment));
    assert_eq!(r[3].status, NtStatus::STATUS_INVALID_PARAMETER);
    assert_eq!(r[4].decided_by, DecidedBy::Mode(PolicyMode::Veto));
    assert!(r[4].file_name.units().ends_with(&utf16("db.vhdx")));

    // Post-operation fills in the forwarded request's final status and bytes.
    let PreOp::Forward {
        context,
        journal_seq: Some(seq),
        ..
    } = forwarded.pre
    else {
        panic!("{:?}", forwarded.pre)
    };
    assert_eq!(seq, r[2].seq);
    let mut buffer = OffloadWriteOutput::new(65536).as_bytes().to_vec();
    let (status, _) = post_operation(
        &context,
        LowerAnswer {
            status: NtStatus::STATUS_SUCCESS,
            information: 16,
            buffer: &mut buffer,
            output_len: 16,
        },
        &Rules::DOCUMENTED,
        None,
        None,
        Some(JournalSeq { log: &journal, seq }),
    );
    assert_eq!(status, NtStatus::STATUS_SUCCESS);
    let r = records(&journal);
    assert!(r[2].completed);
    assert_eq!(
        (r[2].status, r[2].bytes_done),
        (NtStatus::STATUS_SUCCESS, 65536)
    );
}

#[test]
fn a_trimmed_forward_is_journaled_with_the_length_the_caller_asked() {
    // A write past end of file is trimmed at it: CopyLength is rewritten in the buffer before
    // the record is made, and the record keeps what the caller asked.
    let journal = Journal::<16>::new();
    let run = write(
        &RuleSet::new(),
        Some(&journal),
        false,
        "x.exe",
        8192,
        65536,
        PolicyMode::Enforce,
    );
    let PreOp::Forward {
        input_rewritten, ..
    } = run.pre
    else {
        panic!("{:?}", run.pre)
    };
    assert!(input_rewritten, "the write was trimmed at end of file");
    let r = records(&journal);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].offset, r[0].length), (0, 65536));
    assert_eq!(r[0].decided_by, DecidedBy::Check(Check::Forward));
}

#[test]
fn a_zero_length_request_is_journaled_with_the_range_the_caller_sent() {
    // The zero-length answer is written into the system buffer before the record is made, over
    // the input (read: the token covers FileOffset; write: LengthWritten does): the record keeps
    // the caller's range, not what the answer left there.
    let journal = Journal::<16>::new();
    for op in [OffloadOp::Read, OffloadOp::Write] {
        let offset = 0x0012_3000;
        let (mut buffer, input_len, output_len) = match op {
            OffloadOp::Read => {
                let mut b = read_input(offset, 0).as_bytes().to_vec();
                b.resize(528, 0);
                (b, 32, 528)
            }
            OffloadOp::Write => (write_input(offset, 0, 0).as_bytes().to_vec(), 544, 16),
        };
        let mut facts = Facts::default().sizes(1 << 24, 1 << 24);
        let pre = pre_operation_in(
            BufferedRequest {
                op,
                buffer: &mut buffer,
                input_len,
                output_len,
            },
            &mut facts,
            &PreEnv {
                mode: PolicyMode::Enforce,
                rules: &Rules::DOCUMENTED,
                stats: None,
                governance: None,
                journal: Some(JournalAt {
                    log: &journal,
                    time: 1,
                    volume: 0,
                    process_id: 7,
                    names: false,
                }),
            },
        );
        assert!(
            matches!(
                pre,
                PreOp::Complete {
                    status: NtStatus::STATUS_SUCCESS,
                    information: 1..,
                    ..
                }
            ),
            "{op:?}: answered at once with an output: {pre:?}"
        );
    }
    let r = records(&journal);
    assert_eq!(r.len(), 2);
    for record in &r {
        assert_eq!(
            (record.offset, record.length),
            (0x0012_3000, 0),
            "{:?}",
            record.op
        );
        assert_eq!(record.decided_by, DecidedBy::Check(Check::ZeroLength));
    }
}
