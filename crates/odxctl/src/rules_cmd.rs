//! `odxctl rules list|add|remove|load|save|check`: odxflt's governance rules
//! (docs/governance-rules.md) through its port — `QueryRules` to read them, `SetRules` to
//! replace them as a whole or not at all — on Windows (`\OdxfltPort`) or on a scenario's
//! simulated stack. `add` and `remove` read the rules, edit them with `RuleSet::insert` /
//! `RuleSet::remove` and write the whole set back. `check` validates a file offline.

use std::io::Write;
use std::path::Path;

use odx_core::governance::{LineError, RuleError, RuleSet, parse_rule, text_lines};
use odx_core::port::governance::{RULES_TEXT_MAX, RulesReply, RulesTextHeader};
use odx_core::port::{ALL_VOLUMES, MessageHeader, MessageKind};
use odx_core::wire::WireStruct;
use serde_json::json;
use zerocopy::IntoBytes;

use crate::codes::status_line;
use crate::port_cmd::PortClient;
use crate::{CmdResult, Failure};

/// What `odxctl rules` does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RulesAction {
    /// Print the rules in force.
    List,
    /// Insert a rule at `at` (default: after the last).
    Add {
        /// The rule's text.
        rule: String,
        /// Its index once inserted.
        at: Option<usize>,
    },
    /// Remove rule `index`.
    Remove {
        /// The rule's index (`odxctl rules list`).
        index: usize,
    },
    /// Replace the rules with a file's (one rule per line).
    Load {
        /// The file.
        text: String,
        /// Its name, for messages.
        name: String,
    },
    /// Write the rules in force to a file (or stdout).
    Save {
        /// The file; `None`: stdout.
        file: Option<std::path::PathBuf>,
    },
}

fn port_failure(what: &str, status: odx_core::NtStatus) -> Failure {
    Failure {
        code: 1,
        message: format!("{what}: odxflt answered {}", status_line(status)),
    }
}

/// The rules in force, as odxflt writes them (one rule per line, canonical form).
///
/// # Errors
/// The port refused or answered garbage.
pub fn query_rules<C: PortClient + ?Sized>(client: &mut C) -> Result<String, Failure> {
    let header = MessageHeader::new(MessageKind::QueryRules, MessageHeader::SIZE, ALL_VOLUMES);
    let reply = client
        .send(
            header.as_bytes(),
            RulesTextHeader::SIZE.saturating_add(RULES_TEXT_MAX),
        )
        .map_err(|s| port_failure("QueryRules", s))?;
    let malformed = || Failure {
        code: 1,
        message: "QueryRules: odxflt's reply is malformed".to_owned(),
    };
    let head = RulesTextHeader::parse(&reply).map_err(|_| malformed())?;
    let len = usize::try_from(head.text_len.get()).map_err(|_| malformed())?;
    let body = reply
        .get(RulesTextHeader::SIZE..RulesTextHeader::SIZE.saturating_add(len))
        .ok_or_else(malformed)?;
    String::from_utf8(body.to_vec()).map_err(|_| malformed())
}

/// Sends `text` as odxflt's new rules (`SetRules`, all or nothing). Returns the number of rules
/// now in force.
///
/// # Errors
/// Exit status 2 when odxflt refused the text (the message names the line; odxflt keeps its
/// previous rules); 1 when the port refused the message.
pub fn send_rules<C: PortClient + ?Sized>(client: &mut C, text: &str) -> Result<u32, Failure> {
    let message = odx_sim::stack::set_rules_message(text);
    let reply = client
        .send(&message, RulesReply::SIZE)
        .map_err(|s| port_failure("SetRules", s))?;
    let reply = RulesReply::parse(&reply).map_err(|_| Failure {
        code: 1,
        message: "SetRules: odxflt's reply is malformed".to_owned(),
    })?;
    match reply.error() {
        None => Ok(reply.rule_count.get()),
        Some(error) => Err(Failure::input(format!(
            "odxflt refused the rules: {error}; its {} previous rule(s) stay in force",
            reply.rule_count.get()
        ))),
    }
}

/// Every problem of a rules text, each with its line (1-based, blank and comment lines
/// counted): what `SetRules` would refuse, all at once instead of the first only.
#[must_use]
pub fn check_text(text: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if text.len() > RULES_TEXT_MAX {
        errors.push(format!(
            "the text is {} bytes: odxflt takes at most {RULES_TEXT_MAX}",
            text.len()
        ));
    }
    let mut rules = 0usize;
    for (line, content) in (1..).zip(text_lines(text)) {
        match parse_rule(content) {
            Ok(_) => {
                rules += 1;
                if rules > RuleSet::CAPACITY {
                    errors.push(
                        LineError {
                            line,
                            error: RuleError::TooManyRules {
                                capacity: RuleSet::CAPACITY,
                            },
                        }
                        .to_string(),
                    );
                }
            }
            Err(RuleError::Empty) => {}
            Err(error) => errors.push(LineError { line, error }.to_string()),
        }
    }
    errors
}

fn parse_set(text: &str) -> Result<RuleSet, Failure> {
    RuleSet::try_parse_lines(text_lines(text)).map_err(|e| Failure {
        code: 1,
        message: format!("odxflt's rules do not parse here ({e}): is odxctl older than odxflt?"),
    })
}

fn write_list(out: &mut dyn Write, text: &str, json: bool) -> std::io::Result<()> {
    let rules: Vec<&str> = text_lines(text).filter(|l| !l.trim().is_empty()).collect();
    if json {
        let doc = json!({
            "count": rules.len(),
            "rules": rules
                .iter()
                .enumerate()
                .map(|(i, r)| json!({ "index": i, "rule": r }))
                .collect::<Vec<_>>(),
        });
        return writeln!(out, "{doc}");
    }
    if rules.is_empty() {
        return writeln!(
            out,
            "no rules: every request gets its volume's policy mode (odxctl policy)"
        );
    }
    writeln!(out, "{} rule(s), first match wins:", rules.len())?;
    for (i, rule) in rules.iter().enumerate() {
        writeln!(out, "  {i:>2}  {rule}")?;
    }
    Ok(())
}

/// Runs `odxctl rules ACTION` against `client`; `simulated` adds the note that the simulated
/// stack keeps nothing after the command.
///
/// # Errors
/// The port refused, or a rule or file is malformed (exit status 2, nothing changed).
pub fn run<C: PortClient + ?Sized>(
    out: &mut dyn Write,
    client: &mut C,
    action: &RulesAction,
    simulated: bool,
    json: bool,
) -> CmdResult {
    let note = |out: &mut dyn Write| -> std::io::Result<()> {
        if simulated && !json {
            writeln!(
                out,
                "(the scenario's simulated stack: this change ends with the command; put the rules in its [[rule]] tables to keep them)"
            )?;
        }
        Ok(())
    };
    match action {
        RulesAction::List => {
            let text = query_rules(client)?;
            write_list(out, &text, json)?;
        }
        RulesAction::Save { file } => {
            let text = query_rules(client)?;
            match file {
                None => out.write_all(text.as_bytes())?,
                Some(path) => {
                    std::fs::write(path, &text).map_err(|e| {
                        Failure::input(format!("cannot write {}: {e}", path.display()))
                    })?;
                    let count = text_lines(&text).filter(|l| !l.trim().is_empty()).count();
                    writeln!(out, "saved {count} rule(s) to {}", path.display())?;
                }
            }
        }
        RulesAction::Load { text, name } => {
            let errors = check_text(text);
            if !errors.is_empty() {
                let mut err = std::io::stderr().lock();
                for e in errors.iter().take(errors.len() - 1) {
                    let _ = writeln!(err, "odxctl: {name}: {e}");
                }
                return Err(Failure::input(format!(
                    "{name}: {} (nothing sent: odxflt keeps its rules)",
                    errors.last().map_or("", String::as_str)
                )));
            }
            send_rules(client, text)?;
            note(out)?;
            write_list(out, &query_rules(client)?, json)?;
        }
        RulesAction::Add { rule, at } => {
            let parsed = parse_rule(rule).map_err(|e| {
                Failure::input(format!(
                    "the rule {rule:?}: {e} (nothing sent: odxflt keeps its rules)"
                ))
            })?;
            let mut set = parse_set(&query_rules(client)?)?;
            let index = at.unwrap_or(set.len());
            if set.len() >= RuleSet::CAPACITY {
                return Err(Failure::input(format!(
                    "too many rules: odxflt holds {} already (a rule set holds {}); remove one first",
                    set.len(),
                    RuleSet::CAPACITY
                )));
            }
            if !set.insert(index, parsed) {
                return Err(Failure::input(format!(
                    "--at {index}: there are {} rule(s), so a new one goes at 0 to {}",
                    set.len(),
                    set.len()
                )));
            }
            send_rules(client, &set.to_string())?;
            note(out)?;
            write_list(out, &query_rules(client)?, json)?;
        }
        RulesAction::Remove { index } => {
            let mut set = parse_set(&query_rules(client)?)?;
            if set.remove(*index).is_none() {
                return Err(Failure::input(match set.len() {
                    0 => format!("no rule {index}: odxflt has no rules"),
                    n => format!("no rule {index}: the rules are numbered 0 to {}", n - 1),
                }));
            }
            send_rules(client, &set.to_string())?;
            note(out)?;
            write_list(out, &query_rules(client)?, json)?;
        }
    }
    Ok(0)
}

/// `odxctl rules check FILE`: every error with its line; exit status 2 if there is one.
///
/// # Errors
/// The file cannot be read.
pub fn check_file(out: &mut dyn Write, path: &Path, json: bool) -> CmdResult {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::input(format!("cannot read {}: {e}", path.display())))?;
    let errors = check_text(&text);
    let rules = text_lines(&text)
        .filter(|l| parse_rule(l).is_ok())
        .count()
        .min(RuleSet::CAPACITY);
    if json {
        let doc = json!({
            "file": path.display().to_string(),
            "rules": rules,
            "errors": errors,
        });
        writeln!(out, "{doc}")?;
    } else if errors.is_empty() {
        writeln!(out, "{}: {rules} rule(s), no errors", path.display())?;
    } else {
        for e in &errors {
            writeln!(out, "{}: {e}", path.display())?;
        }
        writeln!(
            out,
            "{}: {} error(s); odxflt would refuse the whole file (SetRules is all or nothing)",
            path.display(),
            errors.len()
        )?;
    }
    Ok(if errors.is_empty() { 0 } else { 2 })
}

/// Reads a rules file for `load`.
///
/// # Errors
/// The file cannot be read or is not UTF-8.
pub fn read_rules_file(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::input(format!("cannot read {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::{check_text, query_rules, send_rules};
    use odx_sim::MemStore;
    use odx_sim::scenario::Scenario;

    fn stack(rules: &[&str]) -> odx_sim::Stack<MemStore> {
        let mut text = String::from("description = \"d\"\n");
        for r in rules {
            text.push_str(&format!("[[rule]]\ntext = {r:?}\n"));
        }
        Scenario::parse(&text, "t.toml")
            .unwrap()
            .build(MemStore::new())
            .unwrap()
    }

    #[test]
    fn a_refused_text_names_the_line_and_keeps_the_rules() {
        let mut s = stack(&["veto process=robocopy.exe"]);
        let e = send_rules(&mut s, "monitor\nveto op=x").unwrap_err();
        assert_eq!(e.code, 2);
        assert_eq!(
            e.message,
            "odxflt refused the rules: line 2: bad value for op (expected read, write or any); its 1 previous rule(s) stay in force"
        );
        assert_eq!(query_rules(&mut s).unwrap(), "veto process=robocopy.exe\n");
        assert_eq!(send_rules(&mut s, "monitor\n# c\nveto").unwrap(), 2);
        assert_eq!(query_rules(&mut s).unwrap(), "monitor\nveto\n");
    }

    #[test]
    fn check_lists_every_error_with_its_line() {
        let mut text = String::from("veto op=x\nforbid\n\n# comment\nveto process=");
        text.push_str(&"x".repeat(70));
        text.push('\n');
        for i in 0..65 {
            text.push_str(&format!("veto process=p{i}.exe\n"));
        }
        let errors = check_text(&text);
        assert_eq!(
            errors,
            [
                "line 1: bad value for op (expected read, write or any)",
                "line 2: unknown action 'forbid' (expected enforce, monitor or veto)",
                "line 5: the value of process is longer than 64 UTF-16 units",
                "line 70: too many rules (a rule set holds 64)",
            ]
        );
        let huge = "veto\n".repeat(30_000);
        assert!(
            check_text(&huge)[0]
                .starts_with("the text is 150000 bytes: odxflt takes at most 131072")
        );
        assert!(check_text("veto\n# fine\n").is_empty());
    }
}
