//! A plain loop for `valgrind --tool=callgrind` (scripts/callgrind-decisions.sh): runs one path
//! N times. The script runs it with two values of N and divides the difference in instructions by
//! the difference in N, which cancels start-up and set-up costs exactly.
//!
//! `decision_instructions <path> <n>`, path one of: copy, read, write, pre_read, pre_write,
//! compare (one `==` on the control code, the baseline of from_fsctl), mask (one masked compare
//! of the control code's common bits, what from_fsctl does with a non-offload code), from_fsctl.

use std::hint::black_box;
use std::process::ExitCode;

use odx_core::ctl::{OFFLOAD_COMMON_BITS, OFFLOAD_COMMON_MASK};
use odx_core::filter::{BufferedRequest, PreEnv, pre_operation, pre_operation_in};
use odx_core::governance::{Governance, Journal, JournalAt, RuleSet, VolumeNames};
use odx_core::iomgr::RequestorMode;
use odx_core::policy::PolicyMode;
use odx_core::{FSCTL_OFFLOAD_READ, OffloadOp, OffloadRequest, Rules, decide_read, decide_write};

#[path = "support/mod.rs"]
mod support;
use support::{FSCTL_REQUEST_OPLOCK, FSCTL_SET_SPARSE, MemFacts, read_input, write_input};

#[inline(never)]
fn copy_once(src: &[u8], dst: &mut [u8; 544]) {
    if let Some(s) = src.get(..544) {
        dst.copy_from_slice(s);
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(n)) = (args.next(), args.next().and_then(|n| n.parse::<u64>().ok()))
    else {
        // Under `cargo bench` (no arguments) there is nothing to measure: callgrind does that.
        eprintln!(
            "usage: decision_instructions <copy|read|write|pre_read|pre_write|pre_write_mode|pre_write_in|pre_write_rules|pre_write_journal|pre_write_both|compare|mask|from_fsctl|compare_branch|from_fsctl_branch|from_fsctl_oplock|from_fsctl_zero_data> <n>"
        );
        return ExitCode::SUCCESS;
    };
    let read = read_input();
    let write = write_input();
    let facts = MemFacts::forwarding();
    let rules = Rules::DOCUMENTED;
    let mut buffer = write.clone();
    match path.as_str() {
        "copy" => {
            let mut dst = [0u8; 544];
            for _ in 0..n {
                copy_once(black_box(&write), &mut dst);
                black_box(&mut dst);
            }
        }
        "read" => {
            for _ in 0..n {
                let mut f = black_box(facts);
                let request = OffloadRequest {
                    input: black_box(&read),
                    output_len: 528,
                };
                let d = decide_read(request, &mut f, black_box(&rules));
                black_box(&d);
            }
        }
        "write" => {
            for _ in 0..n {
                let mut f = black_box(facts);
                let request = OffloadRequest {
                    input: black_box(&write),
                    output_len: 16,
                };
                let d = decide_write(request, &mut f, black_box(&rules));
                black_box(&d);
            }
        }
        "pre_read" => {
            let mut rbuf = [0u8; 528];
            for _ in 0..n {
                rbuf[..32].copy_from_slice(&read);
                let mut f = black_box(facts);
                let request = BufferedRequest {
                    op: OffloadOp::Read,
                    buffer: black_box(&mut rbuf),
                    input_len: 32,
                    output_len: 528,
                };
                let pre = pre_operation(request, PolicyMode::Enforce, &mut f, &rules, None);
                black_box(&pre);
            }
        }
        "pre_write" => {
            for _ in 0..n {
                let mut f = black_box(facts);
                let request = BufferedRequest {
                    op: OffloadOp::Write,
                    buffer: black_box(&mut buffer),
                    input_len: 544,
                    output_len: 16,
                };
                black_box(pre_operation(
                    request,
                    PolicyMode::Enforce,
                    &mut f,
                    &rules,
                    None,
                ));
            }
        }
        "pre_write_mode" => {
            // pre_write with the mode read at run time, as the driver reads it (a constant
            // lets the compiler fold the policy match away).
            for _ in 0..n {
                let mut f = black_box(facts);
                let request = BufferedRequest {
                    op: OffloadOp::Write,
                    buffer: black_box(&mut buffer),
                    input_len: 544,
                    output_len: 16,
                };
                black_box(pre_operation(
                    request,
                    black_box(PolicyMode::Enforce),
                    &mut f,
                    black_box(&rules),
                    None,
                ));
            }
        }
        "pre_write_in" => {
            // What the driver calls, with nothing configured (no rules, no journal).
            let env = PreEnv {
                mode: PolicyMode::Enforce,
                rules: &rules,
                stats: None,
                governance: None,
                journal: None,
            };
            for _ in 0..n {
                let mut f = black_box(facts);
                let request = BufferedRequest {
                    op: OffloadOp::Write,
                    buffer: black_box(&mut buffer),
                    input_len: 544,
                    output_len: 16,
                };
                black_box(pre_operation_in(request, &mut f, black_box(&env)));
            }
        }
        "pre_write_rules" | "pre_write_journal" | "pre_write_both" => {
            // Governance configured: an empty rule set ("rules") or one rule naming a process
            // that does not match ("both"), and/or the journal without names. The environment
            // is built once, as the driver's configuration is.
            let mut set = Box::new(RuleSet::new());
            if path == "pre_write_both" {
                set.try_load_lines(["veto process=robocopy.exe"]).ok();
            }
            let journal = Box::new(Journal::<1024>::new());
            let dos: Vec<u16> = "D:".encode_utf16().collect();
            let env = PreEnv {
                mode: PolicyMode::Enforce,
                rules: &rules,
                stats: None,
                governance: (path != "pre_write_journal").then_some(Governance {
                    rules: &set,
                    volume: VolumeNames {
                        device: &[],
                        dos: &dos,
                        guid: &[],
                    },
                    requestor: RequestorMode::User,
                }),
                journal: (path != "pre_write_rules").then_some(JournalAt {
                    log: &*journal,
                    time: 0,
                    volume: 0,
                    process_id: 4,
                    names: false,
                }),
            };
            for _ in 0..n {
                let mut f = black_box(facts);
                let request = BufferedRequest {
                    op: OffloadOp::Write,
                    buffer: black_box(&mut buffer),
                    input_len: 544,
                    output_len: 16,
                };
                black_box(pre_operation_in(request, &mut f, black_box(&env)));
            }
        }
        "compare" => {
            for _ in 0..n {
                black_box(black_box(FSCTL_SET_SPARSE) == FSCTL_OFFLOAD_READ);
            }
        }
        "mask" => {
            for _ in 0..n {
                black_box(black_box(FSCTL_SET_SPARSE) & OFFLOAD_COMMON_MASK == OFFLOAD_COMMON_BITS);
            }
        }
        "from_fsctl" => {
            for _ in 0..n {
                black_box(OffloadOp::from_fsctl(black_box(FSCTL_SET_SPARSE)));
            }
        }
        "compare_branch" => {
            for _ in 0..n {
                if black_box(FSCTL_SET_SPARSE) == FSCTL_OFFLOAD_READ {
                    black_box(());
                }
            }
        }
        "from_fsctl_branch" => {
            for _ in 0..n {
                if let Some(op) = OffloadOp::from_fsctl(black_box(FSCTL_SET_SPARSE)) {
                    black_box(op);
                }
            }
        }
        "from_fsctl_zero_data" => {
            for _ in 0..n {
                black_box(OffloadOp::from_fsctl(black_box(0x0009_80C8)));
            }
        }
        "from_fsctl_oplock" => {
            for _ in 0..n {
                black_box(OffloadOp::from_fsctl(black_box(FSCTL_REQUEST_OPLOCK)));
            }
        }
        other => {
            eprintln!("unknown path {other}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
