//! `odxctl rules`, `odxctl log` and the rule findings of `odxctl diagnose` on the simulated
//! stack (`--scenario`), with their error texts and exit statuses.

use std::path::PathBuf;
use std::process::{Command, Output};

fn odxctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_odxctl"))
        .args(args)
        .output()
        .expect("odxctl runs")
}

fn scenario(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/scenarios")
        .join(name)
        .display()
        .to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).expect("one JSON document")
}

fn temp_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const VETO: &str = "rules_veto_process.toml";

#[test]
fn rules_list_shows_the_scenarios_rules() {
    let s = scenario(VETO);
    let o = odxctl(&["rules", "list", "--scenario", &s]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "1 rule(s), first match wins:\n   0  veto process=robocopy.exe\n"
    );
    let o = odxctl(&["rules", "list", "--json", "--scenario", &s]);
    let doc = json(&o);
    assert_eq!(doc["count"], 1);
    assert_eq!(doc["rules"][0]["rule"], "veto process=robocopy.exe");
}

#[test]
fn rules_list_reports_the_strings_skipped_at_load() {
    let o = odxctl(&[
        "rules",
        "list",
        "--scenario",
        &scenario("rules_at_load_malformed.toml"),
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("2 rule(s)"), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("[[rule]] string 2 skipped at load: bad value for op"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 4, "{err}");
}

#[test]
fn rules_add_inserts_and_shows_the_result() {
    let s = scenario(VETO);
    let o = odxctl(&[
        "rules",
        "add",
        "monitor ext=.vhdx",
        "--at",
        "0",
        "--scenario",
        &s,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("not persistent") || out.contains("ends with the command"),
        "{out}"
    );
    assert!(
        out.ends_with("2 rule(s), first match wins:\n   0  monitor ext=.vhdx\n   1  veto process=robocopy.exe\n"),
        "{out}"
    );
    // Without --at: after the last.
    let o = odxctl(&["rules", "add", "veto", "--scenario", &s]);
    assert!(stdout(&o).ends_with("   1  veto\n"), "{}", stdout(&o));
}

#[test]
fn rules_add_errors_name_the_problem_and_change_nothing() {
    let s = scenario(VETO);
    let o = odxctl(&["rules", "add", "veto op=sideways", "--scenario", &s]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "odxctl: the rule \"veto op=sideways\": bad value for op (expected read, write or any) (nothing sent: odxflt keeps its rules)\n"
    );
    let o = odxctl(&[
        "rules",
        "add",
        &format!("veto process={}.exe", "a".repeat(61)),
        "--scenario",
        &s,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("the value of process is longer than 64 UTF-16 units"),
        "{}",
        stderr(&o)
    );
    let o = odxctl(&["rules", "add", "veto", "--at", "5", "--scenario", &s]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "odxctl: --at 5: there are 1 rule(s), so a new one goes at 0 to 1\n"
    );
    // A full set: 64 rules.
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("description = \"full\"\n");
    for i in 0..64 {
        text.push_str(&format!("[[rule]]\ntext = \"veto process=p{i}.exe\"\n"));
    }
    let full = temp_file(&dir, "full.toml", &text);
    let o = odxctl(&["rules", "add", "veto", "--scenario", &full]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "odxctl: too many rules: odxflt holds 64 already (a rule set holds 64); remove one first\n"
    );
}

#[test]
fn rules_remove_removes_by_index_or_says_which_exist() {
    let s = scenario("rules_order.toml");
    let o = odxctl(&["rules", "remove", "0", "--scenario", &s]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).ends_with("1 rule(s), first match wins:\n   0  veto\n"),
        "{}",
        stdout(&o)
    );
    let o = odxctl(&["rules", "remove", "2", "--scenario", &s]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "odxctl: no rule 2: the rules are numbered 0 to 1\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let empty = temp_file(&dir, "e.toml", "description = \"none\"\n");
    let o = odxctl(&["rules", "remove", "0", "--scenario", &empty]);
    assert_eq!(stderr(&o), "odxctl: no rule 0: odxflt has no rules\n");
}

#[test]
fn rules_load_replaces_all_or_reports_every_bad_line() {
    let s = scenario(VETO);
    let dir = tempfile::tempdir().unwrap();
    let good = temp_file(
        &dir,
        "good.rules",
        "# small files go down untouched\nmonitor max-size=262143\n\nenforce\n",
    );
    let o = odxctl(&["rules", "load", &good, "--scenario", &s]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).ends_with(
            "2 rule(s), first match wins:\n   0  monitor max-size=262143\n   1  enforce\n"
        ),
        "{}",
        stdout(&o)
    );
    let bad = temp_file(
        &dir,
        "bad.rules",
        "veto process=robocopy.exe\nveto op=x\nmonitor path=Backups\n",
    );
    let o = odxctl(&["rules", "load", &bad, "--scenario", &s]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "odxctl: {bad}: line 2: bad value for op (expected read, write or any)\n"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("odxctl: {bad}: line 3: bad value for path (expected a path from the volume root starting with \\ (\\Backups\\)) (nothing sent: odxflt keeps its rules)\n")),
        "{err}"
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn rules_save_writes_what_load_reads() {
    let s = scenario("rules_path_ext.toml");
    let o = odxctl(&["rules", "save", "--scenario", &s]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        "veto path=\\Backups\\ ext=.vhdx\nmonitor path=\\Backups\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("saved.rules");
    let f = file.display().to_string();
    let o = odxctl(&["rules", "save", &f, "--scenario", &s]);
    assert_eq!(stdout(&o), format!("saved 2 rule(s) to {f}\n"));
    let o = odxctl(&["rules", "check", &f]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), format!("{f}: 2 rule(s), no errors\n"));
    let o = odxctl(&["rules", "load", &f, "--scenario", &scenario(VETO)]);
    assert!(
        stdout(&o).contains("   1  monitor path=\\Backups\n"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn rules_check_lists_every_error_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from(
        "veto process=robocopy.exe\nveto  min-size=1M max-size=4K\nveto op=read op=write\n",
    );
    for i in 0..64 {
        text.push_str(&format!("monitor process=p{i}.exe\n"));
    }
    let f = temp_file(&dir, "r.rules", &text);
    let o = odxctl(&["rules", "check", &f]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stdout(&o),
        format!(
            "{f}: line 2: min-size is above max-size\n{f}: line 3: op is given twice\n{f}: line 67: too many rules (a rule set holds 64)\n{f}: 3 error(s); odxflt would refuse the whole file (SetRules is all or nothing)\n"
        )
    );
    let o = odxctl(&["rules", "check", "--json", &f]);
    assert_eq!(json(&o)["errors"].as_array().unwrap().len(), 3);
    let o = odxctl(&["rules", "check", "/nonexistent/rules"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("odxctl: cannot read /nonexistent/rules:"));
}

#[test]
fn rules_and_log_need_windows_or_a_scenario() {
    for args in [&["rules", "list"][..], &["log"][..]] {
        let o = odxctl(args);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            stderr(&o).contains("talks to odxflt on Windows; elsewhere pass --scenario FILE"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn log_lists_every_steps_decision() {
    let s = scenario("rules_size_threshold.toml");
    let o = odxctl(&["log", "--scenario", &s]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    assert!(lines[0].starts_with("seq  time"), "{out}");
    for (line, (file, decided, status, bytes)) in lines[1..].iter().zip([
        ("\\small", "rule 0", "STATUS_INVALID_PARAMETER (87)", "0"),
        ("\\small", "rule 0", "STATUS_SUCCESS", "65536"),
        (
            "\\large",
            "check Alignment (rule 1: enforce)",
            "STATUS_INVALID_PARAMETER (87)",
            "0",
        ),
        (
            "\\large",
            "check Forward (rule 1: enforce)",
            "STATUS_SUCCESS",
            "65536",
        ),
        ("\\edge_small", "rule 0", "STATUS_SUCCESS", "65536"),
        (
            "\\edge_large",
            "check Forward (rule 1: enforce)",
            "STATUS_SUCCESS",
            "65536",
        ),
    ]) {
        for want in [file, decided, status, "copy.exe", "1000", "read"] {
            assert!(line.contains(want), "{want:?} not in {line:?}");
        }
        assert!(line.trim_end().ends_with(bytes), "{line}");
    }
    let o = odxctl(&["log", "--json", "--follow", "--scenario", &s]);
    let doc = json(&o);
    let records = doc["records"].as_array().unwrap();
    assert_eq!(records.len(), 6);
    assert_eq!(records[2]["decided_by"], "check Alignment");
    assert_eq!(records[2]["rule"], 1);
    assert_eq!(records[2]["offset"], 100);
    assert_eq!(records[2]["win32"], 87);
    assert_eq!(records[0]["volume"], 0);
    assert_eq!(records[0]["process_id"], 1000);
    assert_eq!(records[0]["time_text"], "t+0.0000000s");
    assert_eq!(doc["lost"], 0);
}

#[test]
fn log_reports_lost_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from(
        "description = \"more requests than the journal keeps\"\n[[file]]\nname = \"f\"\nsize = 1048576\n",
    );
    for _ in 0..1030 {
        text.push_str(
            "[[step]]\nop = \"read\"\nfile = \"f\"\nlength = 4096\nexpect = \"STATUS_SUCCESS\"\n",
        );
    }
    let f = temp_file(&dir, "many.toml", &text);
    let o = odxctl(&["log", "--scenario", &f]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(
        out.lines().count(),
        1 + 1024 + 1,
        "header, 1024 records, lost line"
    );
    assert!(
        out.ends_with("6 record(s) lost: overwritten (the journal keeps the last 1024) before they were read\n"),
        "{}",
        out.lines().last().unwrap_or_default()
    );
    let o = odxctl(&["log", "--json", "--scenario", &f]);
    let doc = json(&o);
    assert_eq!(doc["lost"], 6);
    assert_eq!(doc["records"][0]["seq"], 6);
    assert_eq!(doc["next_seq"], 1030);
}

#[test]
fn diagnose_names_a_matching_veto_rule_with_its_removal() {
    let s = scenario(VETO);
    let o = odxctl(&[
        "diagnose",
        "--process",
        "robocopy.exe",
        "--scenario",
        &s,
        "src",
        "dst",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let last = stdout(&o).lines().last().unwrap_or_default().to_owned();
    assert_eq!(
        last,
        "culprit: odxflt rule 0: `veto process=robocopy.exe` matches the source's offload read by robocopy.exe: odxflt refuses it on the rule's account (4440 STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED) — fix: odxctl rules remove 0"
    );
    // Another process: nothing blocks; the rule is a note with its removal.
    let o = odxctl(&["diagnose", "--scenario", &s, "src", "dst"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(
        out.contains("note   odxflt rule 0: `veto process=robocopy.exe` names a process"),
        "{out}"
    );
    let o = odxctl(&[
        "diagnose",
        "--json",
        "--process",
        "robocopy.exe",
        "--scenario",
        &s,
        "src",
    ]);
    let doc = json(&o);
    assert_eq!(doc["culprit"]["subject"], "odxflt rule 0");
    assert_eq!(doc["culprit"]["fix"], "odxctl rules remove 0");
    assert_eq!(doc["culprit"]["win32"], 4440);
}

#[test]
fn diagnose_reports_a_monitor_rule_and_an_enforce_rule_over_a_veto_mode() {
    // Path rules: the destination is under \Backups and not an image: monitor (a note).
    let o = odxctl(&[
        "diagnose",
        "--scenario",
        &scenario("rules_path_ext.toml"),
        "top.vhdx",
        "notes.txt",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("note   odxflt rule 1: `monitor path=\\Backups` matches the destination's offload write: odxflt lets it down untouched"),
        "{}",
        stdout(&o)
    );
    // Veto mode, an enforce rule for robocopy.exe: the mode does not block robocopy.exe.
    let dir = tempfile::tempdir().unwrap();
    let s = temp_file(
        &dir,
        "veto_mode.toml",
        "description = \"d\"\n[volume]\npolicy = \"veto\"\n[[rule]]\ntext = \"enforce process=robocopy.exe\"\n[[file]]\nname = \"f\"\nsize = 1048576\n",
    );
    let o = odxctl(&[
        "diagnose",
        "--process",
        "robocopy.exe",
        "--scenario",
        &s,
        "f",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("note   odxflt rule 0: `enforce process=robocopy.exe` matches the source's offload read by robocopy.exe: odxflt validates it, whatever the volume's policy"),
        "{}",
        stdout(&o)
    );
    let o = odxctl(&["diagnose", "--process", "copy.exe", "--scenario", &s, "f"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("culprit: odxflt policy: veto"),
        "{}",
        stdout(&o)
    );
    // The scenario's steps ran first: rules_over_volume_mode.toml ends with a set_rules that
    // vetoes robocopy.exe.
    let o = odxctl(&[
        "diagnose",
        "--process",
        "robocopy.exe",
        "--scenario",
        &scenario("rules_over_volume_mode.toml"),
        "f",
    ]);
    assert!(
        stdout(&o).contains("fix: odxctl rules remove 0"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn log_names_every_record_when_the_journal_is_named_and_says_when_there_is_none() {
    // Parameters\Journal = 2: every record names the process and the file, matched or not.
    let o = odxctl(&["log", "--scenario", &scenario("journal_named.toml")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (line, (process, file)) in lines.iter().zip([
        ("copy.exe", "\\Data\\src.bin"),
        ("copy.exe", "\\Data\\dst.bin"),
        ("explorer.exe", "\\Data\\src.bin"),
    ]) {
        assert!(line.contains(process) && line.contains(file), "{line}");
    }
    // Parameters\Journal = 0: no journal to read, and odxctl says how to get one.
    let o = odxctl(&["log", "--scenario", &scenario("journal_off.toml")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("odxflt keeps no journal")
            && stderr(&o).contains("Parameters\\Journal is 0"),
        "{}",
        stderr(&o)
    );
}
