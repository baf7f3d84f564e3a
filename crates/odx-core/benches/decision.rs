//! Decision cost: parse + validate + verdict for an offload read and write with facts in memory,
//! against a plain copy of the 544-byte FSCTL_OFFLOAD_WRITE_INPUT buffer (goal: ≤ 2×); the
//! control-code test for a non-offload FSCTL against one comparison. The ratios are printed at
//! the end from this run's own estimates (criterion's median).
//!
//! `cargo bench -p odx-core --bench decision`

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group};
use odx_core::filter::{BufferedRequest, PreOp, pre_operation};
use odx_core::policy::PolicyMode;
use odx_core::{
    FSCTL_OFFLOAD_READ, OffloadOp, OffloadRequest, Rules, Verdict, decide_read, decide_write,
};

#[path = "support/mod.rs"]
mod support;
use support::{FSCTL_SET_SPARSE, MemFacts, read_input, write_input};

fn decision(c: &mut Criterion) {
    let mut g = c.benchmark_group("decision");
    let write = write_input();
    let read = read_input();
    let facts = MemFacts::forwarding();

    g.bench_function("copy_544_bytes", |b| {
        // One memcpy of the input buffer into a buffer of the caller's (as a filter that copied
        // the system buffer before looking at it would).
        let mut dst = [0u8; 544];
        b.iter(|| {
            let src: &[u8] = black_box(&write);
            if let Some(s) = src.get(..544) {
                dst.copy_from_slice(s);
            }
            black_box(&mut dst);
        });
    });
    g.bench_function("read_forward", |b| {
        b.iter(|| {
            let mut f = black_box(facts);
            let request = OffloadRequest {
                input: black_box(&read),
                output_len: black_box(528),
            };
            let d = decide_read(request, &mut f, black_box(&Rules::DOCUMENTED));
            debug_assert!(matches!(d.verdict, Verdict::Forward(_)));
            black_box(&d);
        });
    });
    g.bench_function("write_forward", |b| {
        b.iter(|| {
            let mut f = black_box(facts);
            let request = OffloadRequest {
                input: black_box(&write),
                output_len: black_box(16),
            };
            let d = decide_write(request, &mut f, black_box(&Rules::DOCUMENTED));
            debug_assert!(matches!(d.verdict, Verdict::Forward(_)));
            black_box(&d);
        });
    });
    g.bench_function("write_pre_operation", |b| {
        // The whole pre-operation over a METHOD_BUFFERED buffer (policy, decision, rewrite).
        let mut buffer = write.clone();
        b.iter(|| {
            let mut f = black_box(facts);
            let request = BufferedRequest {
                op: OffloadOp::Write,
                buffer: black_box(&mut buffer),
                input_len: 544,
                output_len: 16,
            };
            let pre = pre_operation(
                request,
                PolicyMode::Enforce,
                &mut f,
                &Rules::DOCUMENTED,
                None,
            );
            debug_assert!(matches!(pre, PreOp::Forward { .. }));
            black_box(&pre);
        });
    });
    g.finish();

    // `iter` passes what the routine returns through `black_box` itself.
    let mut g = c.benchmark_group("control_code");
    g.bench_function("one_comparison", |b| {
        b.iter(|| black_box(FSCTL_SET_SPARSE) == FSCTL_OFFLOAD_READ);
    });
    g.bench_function("from_fsctl_other_code", |b| {
        b.iter(|| OffloadOp::from_fsctl(black_box(FSCTL_SET_SPARSE)));
    });
    g.finish();
}

criterion_group!(benches, decision);

/// Where criterion keeps its estimates: `$CRITERION_HOME`, else `<target dir>/criterion`.
fn criterion_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(PathBuf::from(home));
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(target).join("criterion"));
    }
    // <target>/release/deps/decision-<hash>
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("criterion"))
}

fn median_ns(group: &str, id: &str) -> Option<f64> {
    let path = criterion_dir()?
        .join(group)
        .join(id)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("median")?.get("point_estimate")?.as_f64()
}

fn print_ratios() {
    let Some(base) = median_ns("decision", "copy_544_bytes") else {
        println!("ratios: no estimates found (run `cargo bench -p odx-core --bench decision`)");
        return;
    };
    println!("\n== ratios (median, this run) ==");
    println!("copy of the 544-byte input buffer: {base:.2} ns (baseline)");
    for id in ["read_forward", "write_forward", "write_pre_operation"] {
        if let Some(ns) = median_ns("decision", id) {
            let ratio = ns / base;
            let verdict = if ratio <= 2.0 { "meets" } else { "misses" };
            println!("{id:<22} {ns:>7.2} ns = {ratio:.2}x the copy ({verdict} the <= 2x goal)");
        }
    }
    if let (Some(cmp), Some(other)) = (
        median_ns("control_code", "one_comparison"),
        median_ns("control_code", "from_fsctl_other_code"),
    ) {
        println!(
            "from_fsctl(non-offload) {other:>6.2} ns vs one comparison {cmp:.2} ns = {:.2}x",
            other / cmp
        );
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Only after a real measurement run (not `cargo test --benches` / `--list`).
    if std::env::args().any(|a| a == "--bench") {
        print_ratios();
    }
}
