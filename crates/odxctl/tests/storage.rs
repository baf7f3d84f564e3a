//! `odxctl stats` and `odxctl diagnose` show odxflt's view of each volume's storage (issue 13):
//! the capability from instance setup, the descriptor's limits in human units, an active
//! back-off with its end computed from the reply's `now` / `until`, and the storage as a culprit.

use std::path::PathBuf;
use std::process::{Command, Output};

fn odxctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_odxctl"))
        .args(args)
        .output()
        .expect("odxctl runs")
}

fn shipped(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/scenarios")
        .join(name)
        .display()
        .to_string()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).expect("one JSON document")
}

fn last_line(o: &Output) -> String {
    text(o).lines().last().unwrap_or_default().to_owned()
}

/// A write refused at t = 0, then 47 s of simulated time: 2 min 13 s of the 3 min are left.
const REFUSED_47_S_AGO: &str = r#"
description = "write refused at t = 0, stats at t = 47 s"
[volume]
offload_write = false
[storage]
maximum_transfer_size = 67108864
optimal_transfer_count = 8388608
default_token_lifetime = 10
maximum_token_lifetime = 120
[[file]]
name = "src"
size = 4194304
[[file]]
name = "dst"
size = 4194304
[[step]]
op = "write"
file = "dst"
length = 65536
token = "zero"
expect = "STATUS_NOT_SUPPORTED"
[[step]]
op = "advance_ms"
ms = 47000
expect = "STATUS_SUCCESS"
"#;

fn temp_scenario(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.toml");
    std::fs::write(&path, text).expect("write");
    let path = path.display().to_string();
    (dir, path)
}

#[test]
fn stats_prints_the_descriptor_limits_and_when_the_back_off_ends() {
    let (_dir, file) = temp_scenario(REFUSED_47_S_AGO);
    let o = odxctl(&["stats", "--scenario", &file]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let t = text(&o);
    assert!(
        t.contains("storage supported (copy-offload descriptor)"),
        "{t}"
    );
    assert!(t.contains("token lifetime 10 s (max 2 min)"), "{t}");
    assert!(t.contains("max transfer 64.0 MiB (optimal 8.0 MiB)"), "{t}");
    assert!(t.contains("back-off after a refusal: 3 min"), "{t}");
    assert!(
        t.contains(
            "write back-off ends in 2 min 13 s (refused at interrupt time 0 s, until 3 min)"
        ),
        "{t}"
    );
    assert!(!t.contains("read back-off"), "{t}");
    let o = odxctl(&["--json", "stats", "--volume", "0", "--scenario", &file]);
    let v = &json(&o)["volumes"][0]["storage"];
    assert_eq!(v["capability"], "supported");
    assert_eq!(v["descriptor"]["maximum_transfer_size"], 64 << 20);
    assert_eq!(v["descriptor"]["default_token_lifetime_s"], 10);
    assert_eq!(v["backoff_seconds"], 180);
    assert_eq!(v["now"], 470_000_000_u64);
    assert_eq!(v["write_backoff"]["until"], 1_800_000_000_u64);
    assert_eq!(v["write_backoff"]["ends_in_seconds"], 133);
    assert!(v["read_backoff"].is_null());
}

#[test]
fn stats_says_when_the_storage_has_no_offload_or_did_not_answer() {
    let o = odxctl(&[
        "stats",
        "--scenario",
        &shipped("storage_query_not_supported.toml"),
    ]);
    let t = text(&o);
    assert!(t.contains("storage not supported"), "{t}");
    assert!(!t.contains("back-off ends"), "{t}");
    let o = odxctl(&[
        "--json",
        "stats",
        "--scenario",
        &shipped("storage_query_fails.toml"),
    ]);
    let doc = json(&o);
    assert_eq!(doc["volumes"][0]["storage"]["capability"], "unknown");
    assert!(doc["volumes"][0]["storage"]["descriptor"].is_null());
    assert!(
        doc["volumes"][1]["storage"].is_null(),
        "the all-volumes sum has no storage"
    );
}

#[test]
fn diagnose_names_storage_whose_descriptor_says_not_supported() {
    let file = shipped("storage_query_not_supported.toml");
    let o = odxctl(&["diagnose", "--scenario", &file, "src", "dst"]);
    assert_eq!(o.status.code(), Some(1));
    let line = last_line(&o);
    assert!(
        line.starts_with(
            "culprit: the storage of sim:0: does not support offload (source, offload read)"
        ),
        "{line}"
    );
    assert!(
        line.contains("descriptor query answered not supported"),
        "{line}"
    );
    assert!(line.contains("50 STATUS_NOT_SUPPORTED"), "{line}");
    assert!(line.contains("firmware"), "{line}");
    assert!(line.contains("fltmc detach odxflt sim:0"), "{line}");
    let o = odxctl(&["--json", "diagnose", "--scenario", &file, "src", "dst"]);
    let doc = json(&o);
    assert_eq!(doc["culprit"]["status"], "STATUS_NOT_SUPPORTED");
    assert_eq!(doc["culprit"]["win32"], 50);
    assert_eq!(
        doc["source"]["volume"]["odxflt_storage"]["capability"],
        "not supported"
    );
}

#[test]
fn diagnose_names_storage_that_refused_with_its_back_off() {
    let (_dir, file) = temp_scenario(REFUSED_47_S_AGO);
    let o = odxctl(&["diagnose", "--scenario", &file, "src", "dst"]);
    assert_eq!(o.status.code(), Some(1));
    let line = last_line(&o);
    assert!(
        line.starts_with(
            "culprit: the storage of sim:0: does not support offload (destination, offload write)"
        ),
        "{line}"
    );
    assert!(
        line.contains("an offload write was refused below odxflt at interrupt time 0 s"),
        "{line}"
    );
    assert!(
        line.contains("back-off until interrupt time 3 min (ends in 2 min 13 s)"),
        "{line}"
    );
    assert!(
        line.contains("wait for the back-off to end (in 2 min 13 s)"),
        "{line}"
    );
    let t = text(&o);
    assert!(t.contains("write back-off ends in 2 min 13 s"), "{t}");
    let o = odxctl(&["--json", "diagnose", "--scenario", &file, "src", "dst"]);
    let doc = json(&o);
    let view = &doc["destination"]["volume"]["odxflt_storage"];
    assert_eq!(view["write_backoff"]["ends_in_seconds"], 133);
    assert_eq!(view["write_refusals"], 1);
    assert_eq!(doc["culprit"]["win32"], 50);
}

#[test]
fn diagnose_in_monitor_mode_says_the_storage_refuses_itself() {
    let o = odxctl(&[
        "diagnose",
        "--scenario",
        &shipped("storage_monitor.toml"),
        "src",
        "dst",
    ]);
    let line = last_line(&o);
    assert!(line.contains("odxflt (monitor) lets it go down"), "{line}");
    assert!(
        line.contains("316 STATUS_DEVICE_FEATURE_NOT_SUPPORTED"),
        "{line}"
    );
}

#[test]
fn diagnose_with_an_unanswered_query_finds_no_culprit() {
    let o = odxctl(&[
        "diagnose",
        "--scenario",
        &shipped("storage_query_fails.toml"),
        "src",
        "dst",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("did not answer odxflt's copy-offload property query"));
}
