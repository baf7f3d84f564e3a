//! `odxctl demo`: the README's first command. Everything runs on the embedded in-memory stack.

use std::io::Write;

use odx_core::NtStatus;
use odx_sim::MemStore;
use odx_sim::copy_engine::{CopyOptions, StackCopy, copy};
use odx_sim::scenario::{Scenario, StepStatus, compare, decided_label};
use serde_json::{Value, json};

use crate::codes::status_line;
use crate::explain::block;
use crate::text::bytes;
use crate::{CmdResult, Failure};

/// One refusal: a small scenario whose last step is the request that is refused.
struct Act {
    title: &'static str,
    story: &'static str,
    toml: &'static str,
}

const ACTS: &[Act] = &[
    Act {
        title: "A filter that has not opted in to offload (SupportedFeatures = 0)",
        story: "Another minifilter on the volume declares SupportedFeatures = 0: the I/O manager refuses the offload read before any filter sees it.",
        toml: r#"
[volume]
filters = [0]
[[file]]
name = "src"
size = 1048576
[[step]]
op = "read"
file = "src"
length = 1048576
expect = "STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED"
"#,
    },
    Act {
        title: "A filter that opted in to offload read only (SupportedFeatures = 0x1)",
        story: "The read gets a token; the write to the same volume is refused by the I/O manager.",
        toml: r#"
[volume]
filters = [1]
[[file]]
name = "src"
size = 1048576
[[file]]
name = "dst"
size = 1048576
content = "zero"
vdl = 0
[[step]]
op = "read"
file = "src"
length = 1048576
token = "t"
expect = "STATUS_SUCCESS"
[[step]]
op = "write"
file = "dst"
length = 1048576
token = "t"
expect = "STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED"
"#,
    },
    Act {
        title: "A compressed source file",
        story: "NTFS does not offload compressed, encrypted, sparse, transacted or metadata streams; odxflt refuses with the documented code.",
        toml: r#"
[[file]]
name = "src"
size = 1048576
attributes = ["compressed"]
[[step]]
op = "read"
file = "src"
length = 1048576
expect = "STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED"
"#,
    },
    Act {
        title: "A sparse destination file",
        story: "The token is good; the destination stream cannot take an offload write.",
        toml: r#"
[[file]]
name = "src"
size = 1048576
[[file]]
name = "dst"
size = 1048576
attributes = ["sparse"]
[[step]]
op = "read"
file = "src"
length = 1048576
token = "t"
expect = "STATUS_SUCCESS"
[[step]]
op = "write"
file = "dst"
length = 1048576
token = "t"
expect = "STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED"
"#,
    },
    Act {
        title: "A stale token: the source was written after the token was made",
        story: "A token stands for the data at the instant it was made; a plain write into its range invalidates it.",
        toml: r#"
[[file]]
name = "src"
size = 1048576
[[file]]
name = "dst"
size = 1048576
[[step]]
op = "read"
file = "src"
length = 1048576
token = "t"
expect = "STATUS_SUCCESS"
[[step]]
op = "write_data"
file = "src"
offset = 4096
length = 512
expect = "STATUS_SUCCESS"
[[step]]
op = "write"
file = "dst"
length = 1048576
token = "t"
expect = "STATUS_INVALID_TOKEN"
"#,
    },
    Act {
        title: "An expired token",
        story: "The token was asked for with TokenTimeToLive = 1000 ms; the write comes 2 s later.",
        toml: r#"
[[file]]
name = "src"
size = 1048576
[[file]]
name = "dst"
size = 1048576
[[step]]
op = "read"
file = "src"
length = 1048576
ttl_ms = 1000
token = "t"
expect = "STATUS_SUCCESS"
[[step]]
op = "advance_ms"
ms = 2000
expect = "STATUS_SUCCESS"
[[step]]
op = "write"
file = "dst"
length = 1048576
token = "t"
expect = "STATUS_INVALID_TOKEN"
"#,
    },
    Act {
        title: "A byte-range lock conflict",
        story: "Another handle holds an exclusive lock over part of the source range.",
        toml: r#"
[[file]]
name = "src"
size = 1048576
[[lock]]
file = "src"
offset = 65536
length = 4096
exclusive = true
owner = "other"
[[step]]
op = "read"
file = "src"
length = 1048576
expect = "STATUS_FILE_LOCK_CONFLICT"
"#,
    },
    Act {
        title: "A read-only destination volume",
        story: "The volume is mounted read-only: the first real check of an offload write (MS-FSA write step 2).",
        toml: r#"
[volume]
read_only = true
[[file]]
name = "src"
size = 1048576
[[file]]
name = "dst"
size = 1048576
[[step]]
op = "read"
file = "src"
length = 1048576
token = "t"
expect = "STATUS_SUCCESS"
[[step]]
op = "write"
file = "dst"
length = 1048576
token = "t"
expect = "STATUS_MEDIA_WRITE_PROTECTED"
"#,
    },
];

const COPY_STACK: &str = r#"
[[file]]
name = "src"
size = 4194304
[[file]]
name = "dst"
size = 0
[[file]]
name = "sparse"
size = 1048576
attributes = ["sparse"]
[[file]]
name = "dst2"
size = 0
"#;

/// Runs the demo.
pub fn run(out: &mut dyn Write, json: bool) -> CmdResult {
    let mut ok = true;
    let mut doc_acts = Vec::new();
    let (copy_json, copy_ok) = copy_acts(out, json)?;
    ok &= copy_ok;
    for (i, act) in ACTS.iter().enumerate() {
        let scenario =
            Scenario::parse(act.toml, &format!("demo act {}", i + 1)).map_err(|e| Failure {
                code: 1,
                message: format!("embedded demo scenario: {e}"),
            })?;
        let result = scenario.run(MemStore::new()).map_err(|e| Failure {
            code: 1,
            message: e.to_string(),
        })?;
        ok &= result.passed;
        let Some(last) = result.steps.last() else {
            continue;
        };
        let status = match last.status {
            StepStatus::Status(s) => s,
            StepStatus::Mismatch { .. } => NtStatus::STATUS_INVALID_PARAMETER,
        };
        let decided = last
            .decided_by
            .as_ref()
            .map_or_else(String::new, decided_label);
        if json {
            doc_acts.push(json!({
                "title": act.title,
                "op": last.op.name(),
                "status": status.to_string(),
                "ntstatus": format!("0x{:08X}", status.0),
                "win32": status.to_win32().map(|w| w.0),
                "decided_by": decided,
                "meaning": status.info().map(|i| i.meaning),
                "copy_engine": status.info().map(|i| i.reaction.describe()),
                "as_expected": result.passed,
            }));
            continue;
        }
        writeln!(out, "\n{}. {}", i + 3, act.title)?;
        writeln!(out, "   {}", act.story)?;
        for s in &result.steps {
            let length = s
                .transfer_length
                .or(s.length_written)
                .map_or_else(String::new, |l| format!(", {l} bytes"));
            writeln!(
                out,
                "   step {}: {:<10} {}{length}",
                s.index,
                s.op.name(),
                s.status
            )?;
        }
        writeln!(out, "   => {} (decided by {decided})", status_line(status))?;
        if let Some(info) = status.info() {
            for line in block(info).lines().skip(1) {
                writeln!(out, "   {line}")?;
            }
        }
    }
    if json {
        writeln!(
            out,
            "{}",
            json!({ "copies": copy_json, "refusals": doc_acts, "as_expected": ok })
        )?;
    } else {
        writeln!(
            out,
            "\n{}",
            if ok {
                "Every step behaved as documented."
            } else {
                "SOME STEPS DID NOT BEHAVE AS DOCUMENTED."
            }
        )?;
    }
    Ok(if ok { 0 } else { 1 })
}

/// Act 1: a 4 MiB ODX copy; act 2: the copy engine falling back for a sparse source.
fn copy_acts(out: &mut dyn Write, json: bool) -> Result<(Value, bool), Failure> {
    let scenario = Scenario::parse(COPY_STACK, "demo copy stack").map_err(|e| Failure {
        code: 1,
        message: e.to_string(),
    })?;
    let mut stack = scenario.build(MemStore::new()).map_err(|e| Failure {
        code: 1,
        message: e.to_string(),
    })?;
    let mut results = Vec::new();
    let mut ok = true;
    for (i, (src, dst, title)) in [
        (
            "src",
            "dst",
            "Copy a 4 MiB file by ODX (offload read -> token -> offload write)",
        ),
        (
            "sparse",
            "dst2",
            "Copy a sparse 1 MiB file: the copy engine falls back to ordinary reads and writes",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let (s, d) = match (stack.volume().id_of(src), stack.volume().id_of(dst)) {
            (Some(s), Some(d)) => (s, d),
            _ => {
                return Err(Failure {
                    code: 1,
                    message: "demo stack is missing a file".to_owned(),
                });
            }
        };
        let mut ops = StackCopy::open(&mut stack, s, d).map_err(|e| Failure {
            code: 1,
            message: e.to_string(),
        })?;
        let options = CopyOptions {
            chunk: 1024 * 1024,
            ..CopyOptions::default()
        };
        let report = copy(&mut ops, &options, &mut |_| {}).map_err(|e| Failure {
            code: 1,
            message: e.to_string(),
        })?;
        let same = matches!(
            compare(&stack, s, 0, d, 0, report.total_bytes).map_err(|e| Failure { code: 1, message: e.to_string() })?,
            StepStatus::Status(st) if st.is_success()
        );
        let expected_fallback = i == 1;
        ok &= same && (report.fallback.is_some() == expected_fallback);
        results.push(json!({
            "title": title,
            "total_bytes": report.total_bytes,
            "offloaded_bytes": report.offloaded_bytes,
            "fallback_bytes": report.fallback_bytes,
            "fallback": report.fallback.map(|f| f.to_string()),
            "offload_reads": report.offload_reads,
            "offload_writes": report.offload_writes,
            "byte_identical": same,
        }));
        if json {
            continue;
        }
        writeln!(out, "{}{}. {title}", if i == 0 { "" } else { "\n" }, i + 1)?;
        writeln!(
            out,
            "   {} offloaded in {} offload read(s) and {} offload write(s) of at most 1 MiB; {} by ordinary copy",
            bytes(report.offloaded_bytes),
            report.offload_reads,
            report.offload_writes,
            bytes(report.fallback_bytes)
        )?;
        if let Some(cause) = report.fallback {
            writeln!(out, "   fallback: {cause}")?;
            if let Some(info) = cause.status().and_then(|s| s.info()) {
                writeln!(out, "   => {}: {}", status_line(info.status), info.meaning)?;
                writeln!(out, "   copy engines: {}", info.reaction.describe())?;
            }
        }
        writeln!(
            out,
            "   destination is {}",
            if same {
                "byte-identical to the source"
            } else {
                "DIFFERENT from the source"
            }
        )?;
    }
    Ok((Value::Array(results), ok))
}
