//! The built `odxctl` binary: exit statuses, one-line errors, JSON, copies.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn odxctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_odxctl"))
        .args(args)
        .output()
        .expect("odxctl runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/scenarios")
}

#[test]
fn explain_accepts_numbers_hex_and_names() {
    for code in [
        "4440",
        "0x1158",
        "0xC000A2A1",
        "ERROR_OFFLOAD_READ_FLT_NOT_SUPPORTED",
        "status_offload_read_flt_not_supported",
    ] {
        let o = odxctl(&["explain", code]);
        assert_eq!(o.status.code(), Some(0), "{code}: {}", stderr(&o));
        let text = stdout(&o);
        assert!(
            text.contains("STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED"),
            "{code}: {text}"
        );
        assert!(
            text.contains("0xC000A2A1") && text.contains("4440"),
            "{code}: {text}"
        );
        assert!(text.contains("Copy engines"), "{code}: {text}");
    }
    let o = odxctl(&[
        "explain",
        "STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["matches"][0]["win32"], 4443);
    assert_eq!(v["matches"][0]["ntstatus"], "0xC000A2A4");
    assert_eq!(
        v["matches"][0]["copy_engine"]["reaction"],
        "FallBackForFile"
    );
}

#[test]
fn explain_lists_every_status_behind_a_shared_win32_code() {
    let o = odxctl(&["explain", "5", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["STATUS_ACCESS_DENIED", "STATUS_FILE_DELETED"]);
}

#[test]
fn explain_unknown_code_is_one_line_and_exit_2() {
    for code in ["12345", "0xDEADBEEF", "STATUS_DISMOUNTED_VOLUME", "banana"] {
        let o = odxctl(&["explain", code]);
        assert_eq!(o.status.code(), Some(2), "{code}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("odxctl: unknown code"), "{err}");
        assert!(!err.contains("panicked"));
    }
}

#[test]
fn scenario_run_passes_on_the_shipped_scenarios() {
    let files: Vec<String> = std::fs::read_dir(scenarios_dir())
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".toml"))
        .collect();
    let mut args = vec!["scenario", "run", "--json"];
    args.extend(files.iter().map(String::as_str));
    let o = odxctl(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let list = v["scenarios"].as_array().unwrap();
    assert_eq!(list.len(), files.len());
    assert!(list.iter().all(|s| s["passed"] == true));
    let step = &list[0]["steps"][0];
    for key in [
        "index",
        "op",
        "status",
        "ntstatus",
        "win32",
        "transfer_length",
        "length_written",
        "flags",
        "expect_ok",
    ] {
        assert!(step.get(key).is_some(), "missing {key}");
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn scenario_run_exit_1_on_a_failed_expectation() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "fail.toml",
        "[[file]]\nname = \"a\"\nsize = 4096\n[[step]]\nop = \"read\"\nfile = \"a\"\nlength = 4096\nexpect = \"STATUS_END_OF_FILE\"\n",
    );
    let o = odxctl(&["scenario", "run", &f]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(
        text.contains("FAIL") && text.contains("expected STATUS_END_OF_FILE, got STATUS_SUCCESS"),
        "{text}"
    );
    let o = odxctl(&["scenario", "run", &f, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["scenarios"][0]["passed"], false);
    assert_eq!(v["scenarios"][0]["steps"][0]["expect_ok"], false);
    assert_eq!(v["scenarios"][0]["steps"][0]["transfer_length"], 4096);
}

#[test]
fn scenario_run_exit_2_on_malformed_files_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "bad.toml",
        "[volume]\nsector_size = 512\n\n[[step]]\nop = \"read\"\nfiel = \"a\"\n",
    );
    let o = odxctl(&["scenario", "run", &f]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.toml:6:") && err.contains("unknown field `fiel`"),
        "{err}"
    );
    let o = odxctl(&["scenario", "run", "/nonexistent/x.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/x.toml") && stderr(&o).contains("cannot read"));
}

#[test]
fn copy_on_host_files_is_byte_identical_and_fully_offloaded() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.bin");
    let dst = dir.path().join("dst.bin");
    let data: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(&src, &data).unwrap();
    let o = odxctl(&[
        "copy",
        src.to_str().unwrap(),
        dst.to_str().unwrap(),
        "--chunk",
        "1M",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["total_bytes"], 5_000_000);
    assert_eq!(v["offloaded_bytes"], 5_000_000);
    assert_eq!(v["fallback_bytes"], 0);
    assert_eq!(v["offloaded_percent"], 100.0);
    assert!(v["offload_writes"].as_u64().unwrap() >= 5);
    assert_eq!(std::fs::read(&dst).unwrap(), data);
    // --no-offload: the classic path, same bytes
    let o = odxctl(&[
        "copy",
        src.to_str().unwrap(),
        dst.to_str().unwrap(),
        "--no-offload",
        "--verify",
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("offload disabled") && stdout(&o).contains("byte-identical"),
        "{}",
        stdout(&o)
    );
    assert_eq!(std::fs::read(&dst).unwrap(), data);
}

#[test]
fn copy_unreadable_source_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = odxctl(&[
        "copy",
        "/nonexistent/src",
        dir.path().join("d").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/src"), "{err}");
}

#[test]
fn copy_in_a_scenario_falls_back_for_sparse_sources_and_filters_not_opted_in() {
    let dir = tempfile::tempdir().unwrap();
    let sparse = write(
        dir.path(),
        "s.toml",
        "[[file]]\nname = \"src\"\nsize = 1048576\nattributes = [\"sparse\"]\n[[file]]\nname = \"dst\"\n",
    );
    let o = odxctl(&["copy", "src", "dst", "--scenario", &sparse, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["offloaded_bytes"], 0);
    assert_eq!(v["fallback_bytes"], 1_048_576);
    assert_eq!(
        v["fallback"]["status"],
        "STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED"
    );
    assert_eq!(v["fallback"]["win32"], 4442);
    assert_eq!(v["verified"], true);

    let filt = write(
        dir.path(),
        "f.toml",
        "[volume]\nfilters = [1]\n[[file]]\nname = \"src\"\nsize = 1048576\n[[file]]\nname = \"dst\"\n",
    );
    let o = odxctl(&["copy", "src", "dst", "--scenario", &filt]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("FSCTL_OFFLOAD_WRITE failed with STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED"),
        "{text}"
    );
    assert!(
        text.contains("4441") && text.contains("byte-identical"),
        "{text}"
    );
}

#[test]
fn demo_exits_0_and_shows_every_refusal() {
    let o = odxctl(&["demo"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in [
        "byte-identical",
        "Win32 4440",
        "Win32 4441",
        "Win32 4442",
        "Win32 4443",
        "STATUS_INVALID_TOKEN",
        "STATUS_FILE_LOCK_CONFLICT",
        "STATUS_MEDIA_WRITE_PROTECTED",
        "Copy engines",
        "Every step behaved as documented.",
    ] {
        assert!(text.contains(needle), "missing {needle:?}");
    }
    let o = odxctl(&["demo", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["as_expected"], true);
    assert_eq!(v["refusals"].as_array().unwrap().len(), 8);
}
