//! `odxctl explain CODE`.

use std::io::Write;

use serde_json::json;

use crate::codes::resolve;
use crate::text::wrap;
use crate::{CmdResult, Failure};

/// Runs the command.
pub fn run(out: &mut dyn Write, code: &str, json: bool) -> CmdResult {
    let resolved = resolve(code).map_err(Failure::input)?;
    if json {
        let matches: Vec<_> = resolved
            .rows
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "ntstatus": format!("{:#010X}", r.status.0).replace("0X", "0x"),
                    "win32": r.win32.map(|w| w.0),
                    "win32_name": r.win32_name,
                    "meaning": r.meaning,
                    "causes": r.causes,
                    "copy_engine": { "reaction": format!("{:?}", r.reaction), "description": r.reaction.describe() },
                })
            })
            .collect();
        let doc = json!({ "query": code, "win32_query": resolved.win32_query.map(|w| w.0), "matches": matches });
        writeln!(out, "{doc}")?;
        return Ok(0);
    }
    if let Some(w) = resolved.win32_query {
        if resolved.rows.len() > 1 {
            let name = w.name().unwrap_or("");
            writeln!(
                out,
                "Win32 {} ({:#x}) {name} is what {} NTSTATUS values become:\n",
                w.0,
                w.0,
                resolved.rows.len()
            )?;
        }
    }
    for (i, r) in resolved.rows.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        write!(out, "{}", block(r))?;
    }
    Ok(0)
}

/// The human text for one status.
pub fn block(r: &odx_core::status::StatusInfo) -> String {
    let win32 = match (r.win32, r.win32_name) {
        (Some(w), Some(n)) => format!("{} ({:#x}) {n}", w.0, w.0),
        (Some(w), None) => format!("{} ({:#x})", w.0, w.0),
        _ => "no Win32 mapping known".to_owned(),
    };
    let field = |label: &str, value: &str| format!("  {label:<13}{}\n", wrap(value, 100, 15));
    let mut s = format!("{}\n", r.name);
    s.push_str(&field(
        "NTSTATUS",
        &format!("{:#010X}", r.status.0).replace("0X", "0x"),
    ));
    s.push_str(&field("Win32", &win32));
    s.push_str(&field("Meaning", r.meaning));
    s.push_str(&field("Causes", r.causes));
    s.push_str(&field("Copy engines", r.reaction.describe()));
    s
}
