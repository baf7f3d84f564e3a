//! `odxctl stats`, `odxctl policy` and `odxctl diagnose` against the simulated stack.

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
        .join("../../tests/observability")
        .join(name)
        .display()
        .to_string()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).expect("one JSON document")
}

fn last_line(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn diagnose_names_the_filter_that_blocks_offload_write() {
    let file = scenario("diagnose_filter_read_only.toml");
    let o = odxctl(&["diagnose", "--scenario", &file, "src", "dst"]);
    assert_eq!(o.status.code(), Some(1));
    let line = last_line(&o);
    assert!(line.starts_with("culprit: filter contosoav"), "{line}");
    assert!(line.contains("offload write is blocked"), "{line}");
    assert!(line.contains("4441"), "{line}");
    assert!(line.contains("fix:"), "{line}");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("altitude 328010"), "{text}");
    let o = odxctl(&["diagnose", "--json", "--scenario", &file, "src", "dst"]);
    let doc = json(&o);
    assert_eq!(doc["culprit"]["subject"], "filter contosoav");
    assert_eq!(doc["culprit"]["win32"], 4441);
    let filters = doc["source"]["volume"]["filters"].as_array().unwrap();
    assert!(
        filters
            .iter()
            .any(|f| f["name"] == "contosoav" && f["supported_features"] == 1)
    );
}

#[test]
fn diagnose_names_a_compressed_destination() {
    let file = scenario("diagnose_compressed_destination.toml");
    let o = odxctl(&["diagnose", "--scenario", &file, "src", "dst"]);
    assert_eq!(o.status.code(), Some(1));
    let line = last_line(&o);
    assert!(line.contains("destination dst"), "{line}");
    assert!(line.contains("compressed"), "{line}");
    assert!(line.contains("4443"), "{line}");
    let o = odxctl(&["diagnose", "--json", "--scenario", &file, "src", "dst"]);
    let doc = json(&o);
    assert_eq!(doc["culprit"]["win32"], 4443);
    assert_eq!(doc["destination"]["attributes"][0], "compressed");
}

#[test]
fn diagnose_finds_no_reason_for_a_clean_pair() {
    let file = scenario("diagnose_clean.toml");
    let o = odxctl(&["diagnose", "--scenario", &file, "src", "dst"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        last_line(&o).contains("no reason found"),
        "{}",
        last_line(&o)
    );
    let o = odxctl(&["diagnose", "--json", "--scenario", &file, "src", "dst"]);
    assert!(json(&o)["culprit"].is_null());
}

#[test]
fn diagnose_names_the_veto_policy_and_unknown_files() {
    let file = scenario("policy_veto.toml");
    let o = odxctl(&["diagnose", "--scenario", &file, "src", "dst"]);
    let line = last_line(&o);
    assert!(line.starts_with("culprit: odxflt policy"), "{line}");
    assert!(line.contains("4440"), "{line}");
    let o = odxctl(&["diagnose", "--scenario", &file, "nope"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn stats_after_a_scenario_match_its_steps() {
    let file = scenario("stats_counts.toml");
    let o = odxctl(&["stats", "--json", "--scenario", &file, "--volume", "0"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let doc = json(&o);
    let v = &doc["volumes"][0];
    assert_eq!(v["read"]["seen"], 3);
    assert_eq!(v["read"]["completed"], 2);
    assert_eq!(v["read"]["forwarded"], 1);
    assert_eq!(v["write"]["forwarded"], 1);
    assert_eq!(v["write"]["bytes_offloaded"], 65536);
    assert_eq!(v["read"]["fact_failed"], 0);
    assert_eq!(v["write"]["fact_failed"], 0);
    let o = odxctl(&["stats", "--scenario", &file]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("fact query failed 0"), "{text}");
    assert!(
        text.contains("completed 1 × STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED"),
        "{text}"
    );
    assert!(text.contains("all volumes (1 attached)"), "{text}");
    let o = odxctl(&["stats", "--scenario", &file, "--volume", "3"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("STATUS_FLT_VOLUME_NOT_FOUND"));
}

#[test]
fn policy_prints_and_sets() {
    let file = scenario("policy_veto.toml");
    let o = odxctl(&["policy", "--json", "--scenario", &file]);
    assert_eq!(json(&o)["policy"], "veto");
    let o = odxctl(&[
        "policy",
        "--json",
        "--scenario",
        &file,
        "--volume",
        "0",
        "monitor",
    ]);
    let doc = json(&o);
    assert_eq!(
        (doc["policy"].as_str(), doc["changed"].as_bool()),
        (Some("monitor"), Some(true))
    );
    let o = odxctl(&["policy", "--scenario", &file, "audit"]);
    assert_eq!(o.status.code(), Some(2));
}

#[cfg(not(windows))]
#[test]
fn without_a_scenario_the_port_commands_need_windows() {
    let o = odxctl(&["stats"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--scenario"));
}
