//! `odxctl scenario run FILE...`.

use std::io::Write;
use std::path::Path;

use odx_sim::scenario::{
    Scenario, ScenarioResult, StepResult, StepStatus, decided_by_label, decided_label,
};
use odx_sim::{HostStore, MemStore};
use serde_json::{Value, json};

use crate::text::table;
use crate::{CmdResult, Failure};

/// Runs the command.
pub fn run(
    out: &mut dyn Write,
    files: &[std::path::PathBuf],
    host_dir: Option<&Path>,
    json: bool,
) -> CmdResult {
    let mut scenarios = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        match Scenario::load(path) {
            Ok(s) => scenarios.push(s),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if let Some(last) = errors.pop() {
        let mut err = std::io::stderr().lock();
        for e in &errors {
            let _ = writeln!(err, "odxctl: {e}");
        }
        return Err(Failure::input(last));
    }
    let mut results = Vec::new();
    for (i, s) in scenarios.iter().enumerate() {
        let result = match host_dir {
            None => s.run(MemStore::new()),
            Some(dir) => {
                let sub = dir.join(format!("scenario-{i}"));
                std::fs::create_dir_all(&sub)
                    .map_err(|e| Failure::input(format!("cannot create {}: {e}", sub.display())))?;
                s.run(HostStore::in_dir(&sub))
            }
        }
        .map_err(|e| Failure::input(format!("{}: {e}", s.path)))?;
        results.push(result);
    }
    let passed = results.iter().all(|r| r.passed);
    if json {
        let doc = json!({ "scenarios": results.iter().map(to_json).collect::<Vec<_>>() });
        writeln!(out, "{doc}")?;
    } else {
        for r in &results {
            write_human(out, r, &scenarios)?;
        }
        let failed = results.iter().filter(|r| !r.passed).count();
        writeln!(
            out,
            "{} scenario(s): {} passed, {failed} failed",
            results.len(),
            results.len() - failed
        )?;
    }
    Ok(if passed { 0 } else { 1 })
}

fn status_json(status: &StepStatus) -> (String, Value, Value) {
    match status {
        StepStatus::Status(s) => (
            s.to_string(),
            json!(format!("0x{:08X}", s.0)),
            s.to_win32().map_or(Value::Null, |w| json!(w.0)),
        ),
        StepStatus::Mismatch { .. } => ("MISMATCH".to_owned(), Value::Null, Value::Null),
    }
}

/// The `--json` shape of one scenario.
pub fn to_json(r: &ScenarioResult) -> Value {
    let steps: Vec<Value> = r
        .steps
        .iter()
        .map(|s| {
            let (status, ntstatus, win32) = status_json(&s.status);
            json!({
                "index": s.index,
                "op": s.op.name(),
                "status": status,
                "ntstatus": ntstatus,
                "win32": win32,
                "transfer_length": s.transfer_length,
                "length_written": s.length_written,
                "end_of_file": s.sizes.map(|(eof, _)| eof),
                "valid_data_length": s.sizes.map(|(_, vdl)| vdl),
                "flags": s.flags,
                "process": s.process.as_ref().map(|(name, _)| name),
                "process_id": s.process.as_ref().map(|(_, id)| id),
                "journal_decided_by": s.record.map(|rec| decided_by_label(rec.decided_by)),
                "journal_rule": s.record.and_then(|rec| rec.rule),
                "rules_error_line": s.rules_reply.as_ref().map(|(line, _, _)| line),
                "rules_error": s.rules_reply.as_ref().and_then(|(_, e, _)| e.clone()),
                "rules_in_force": s.rules_reply.as_ref().map(|(_, _, n)| n),
                "expect_ok": s.expect_ok,
            })
        })
        .collect();
    let rejected: Vec<String> = r
        .rule_load
        .errors()
        .iter()
        .map(ToString::to_string)
        .collect();
    json!({
        "file": r.path,
        "rules_loaded": r.rule_load.accepted,
        "rules_rejected": r.rule_load.rejected,
        "rule_errors": rejected,
        "steps": steps,
        "passed": r.passed,
    })
}

/// What the journal recorded for a step (`-` for steps odxflt did not see), or what a
/// `set_rules` step's port answer was.
fn recorded(s: &StepResult) -> String {
    if let Some((line, _, count)) = &s.rules_reply {
        return match line {
            0 => format!("rules replaced ({count} in force)"),
            n => format!("refused at line {n}"),
        };
    }
    s.record
        .map_or_else(|| "-".to_owned(), |rec| decided_by_label(rec.decided_by))
}

/// The `[[rule]]` load report line(s), as the driver's load would log them.
fn write_rule_load(out: &mut dyn Write, r: &ScenarioResult) -> std::io::Result<()> {
    let load = &r.rule_load;
    if load.accepted == 0 && load.rejected == 0 {
        return Ok(());
    }
    writeln!(
        out,
        "  rules at load: {} taken, {} rejected (skipped)",
        load.accepted, load.rejected
    )?;
    for e in load.errors() {
        writeln!(out, "    [[rule]] string {}: {}", e.line, e.error)?;
    }
    if load.rejected > load.errors().len() {
        writeln!(
            out,
            "    ({} more not kept)",
            load.rejected - load.errors().len()
        )?;
    }
    Ok(())
}

fn write_human(
    out: &mut dyn Write,
    r: &ScenarioResult,
    scenarios: &[Scenario],
) -> std::io::Result<()> {
    let verdict = if r.passed { "PASS" } else { "FAIL" };
    match &r.description {
        Some(d) => writeln!(out, "{verdict} {} — {d}", r.path)?,
        None => writeln!(out, "{verdict} {}", r.path)?,
    }
    write_rule_load(out, r)?;
    let rows: Vec<Vec<String>> = r
        .steps
        .iter()
        .map(|s| {
            let win32 = match s.status {
                StepStatus::Status(st) => st
                    .to_win32()
                    .map_or_else(|| "-".to_owned(), |w| w.0.to_string()),
                StepStatus::Mismatch { at } => format!("at {at}"),
            };
            let length = match (s.transfer_length.or(s.length_written), s.sizes) {
                (Some(l), _) => l.to_string(),
                // stat: end of file / valid data length.
                (None, Some((eof, vdl))) => format!("{eof}/{vdl}"),
                (None, None) => "-".to_owned(),
            };
            vec![
                s.index.to_string(),
                s.op.name().to_owned(),
                s.file.clone().unwrap_or_else(|| "-".to_owned()),
                s.status.to_string(),
                win32,
                length,
                format!("{:#x}", s.flags),
                s.decided_by
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), decided_label),
                recorded(s),
                if s.expect_ok {
                    "ok".to_owned()
                } else {
                    "FAILED".to_owned()
                },
            ]
        })
        .collect();
    let t = table(
        &[
            "#",
            "op",
            "file",
            "status",
            "win32",
            "length",
            "flags",
            "decided by",
            "journal",
            "expect",
        ],
        &rows,
    );
    for line in t.lines() {
        writeln!(out, "  {line}")?;
    }
    let lines = scenarios
        .iter()
        .find(|s| s.path == r.path)
        .map(|s| &s.steps);
    for s in &r.steps {
        if let Some((_, Some(error), _)) = &s.rules_reply {
            writeln!(out, "  step {}: set_rules refused: {error}", s.index)?;
        }
    }
    for s in r.steps.iter().filter(|s| !s.expect_ok) {
        let line = lines.and_then(|l| l.get(s.index)).map_or(0, |st| st.line);
        writeln!(
            out,
            "  step {} (line {line}): {}",
            s.index,
            s.failures.join("; ")
        )?;
    }
    Ok(())
}
