//! Governance on the simulated stack: the rules and the journal are odx-core's
//! (`pre_operation_in`); these tests check what the simulator feeds them (names, clock, volume,
//! process id), what the name queries cost, and the scenario keys that drive them.

use std::path::PathBuf;

use odx_core::flags::AccessMask;
use odx_core::governance::{DecidedBy, JournalMode, Record};
use odx_core::iomgr::{FilterSupportedFeaturesMode, RequestorMode};
use odx_core::wire::{OffloadReadInput, WireStruct};
use odx_core::{NtStatus, OffloadOp};
use odx_sim::odxflt::FactCounts;
use odx_sim::scenario::{
    DEFAULT_DEVICE_NAME, DEFAULT_DOS_NAME, DEFAULT_GUID_NAME, Op, Scenario, decided_by_label,
    parse_decided_by,
};
use odx_sim::{MemStore, Requester, Stack, VolumeConfig};

fn scenario_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/scenarios")
        .join(name)
}

/// One 64 KiB offload read of a 1 MiB file by `process`, with `rules` loaded and the journal's
/// names on or off; the name-query counts.
fn one_read(rules: &[&str], names: bool, process: &str) -> FactCounts {
    let mut stack = Stack::new(
        VolumeConfig::default(),
        MemStore::new(),
        Vec::new(),
        FilterSupportedFeaturesMode::Normal,
    );
    assert!(stack.load_registry_rules(rules.iter().copied()).is_clean());
    stack.set_journal_mode(if names {
        JournalMode::Named
    } else {
        JournalMode::Decisions
    });
    let id = stack.volume_mut().create_file("f").unwrap();
    stack.volume_mut().set_end_of_file(id, 1 << 20).unwrap();
    let h = stack.open(id, AccessMask::READ_DATA).unwrap();
    let mut input = vec![0u8; OffloadReadInput::SIZE];
    OffloadReadInput::new(0, 65536, 0)
        .serialize_into(&mut input)
        .unwrap();
    let out = stack.fsctl_as(
        h,
        odx_core::FSCTL_OFFLOAD_READ,
        &input,
        528,
        RequestorMode::User,
        &Requester::new(process, 7),
    );
    assert!(out.journal_seq.is_some());
    out.facts
}

fn names(c: &FactCounts) -> (u32, u32, u32) {
    (c.process_image, c.file_path, c.name_queries)
}

#[test]
fn no_rules_and_no_journal_names_cost_no_name_query() {
    let c = one_read(&[], false, "copy.exe");
    assert_eq!(names(&c), (0, 0, 0));
}

#[test]
fn the_journal_names_cost_one_query_each() {
    let c = one_read(&[], true, "copy.exe");
    assert_eq!(names(&c), (1, 1, 2));
}

#[test]
fn a_process_rule_asks_the_process_only_until_it_matches() {
    // Not matching, names off: the matcher's one process query, no path.
    assert_eq!(
        names(&one_read(&["veto process=robocopy.exe"], false, "copy.exe")),
        (1, 0, 1)
    );
    // Matching: the record asks both names (a matched request is always named); with a
    // per-request cache the kernel still makes one query per name.
    assert_eq!(
        names(&one_read(
            &["veto process=robocopy.exe"],
            false,
            "robocopy.exe"
        )),
        (2, 1, 2)
    );
    // Names on, not matching: the process is asked once, before the evaluation, for the rule
    // and the record alike; two kernel queries.
    assert_eq!(
        names(&one_read(&["veto process=robocopy.exe"], true, "copy.exe")),
        (1, 1, 2)
    );
}

#[test]
fn a_size_rule_asks_the_size_and_no_name_when_it_does_not_match() {
    // 1 MiB file: max-size=262143 does not match; names off: no name query.
    let c = one_read(&["monitor max-size=262143"], false, "copy.exe");
    assert_eq!(names(&c), (0, 0, 0));
    assert!(c.stream_sizes >= 1);
}

#[test]
fn the_journal_record_carries_the_simulated_clock_volume_process_and_file() {
    let text = r#"
description = "journal fields"
[[rule]]
text = "monitor process=robocopy.exe"
[[file]]
name = "f"
path = "\\Backups\\f.vhdx"
size = 1048576
[[step]]
op = "advance_ms"
ms = 1500
[[step]]
op = "read"
file = "f"
offset = 4096
length = 65536
process = "robocopy.exe"
process_id = 4242
expect = "STATUS_SUCCESS"
expect_decided_by = "rule 0"
"#;
    let s = Scenario::parse(text, "journal.toml").unwrap();
    let r = s.run(MemStore::new()).unwrap();
    assert!(r.passed, "{:?}", r.steps);
    let rec: Record = r.steps[1].record.unwrap();
    assert_eq!(rec.time, 1500 * 10_000, "100-ns ticks of the storage clock");
    assert_eq!(rec.volume, 0);
    assert_eq!(rec.process_id, 4242);
    assert_eq!(
        String::from_utf16(rec.process_name.units()).unwrap(),
        "robocopy.exe"
    );
    assert_eq!(
        String::from_utf16(rec.file_name.units()).unwrap(),
        "\\Backups\\f.vhdx"
    );
    assert_eq!(rec.op, OffloadOp::Read);
    assert_eq!((rec.offset, rec.length), (4096, 65536));
    assert_eq!(rec.rule, Some(0));
    assert_eq!(rec.decided_by, DecidedBy::Rule(0));
    // Forwarded (monitor), completed in post-operation with the final status and bytes.
    assert!(rec.completed);
    assert_eq!(rec.status, NtStatus::STATUS_SUCCESS);
    assert_eq!(rec.bytes_done, 65536);
}

#[test]
fn malformed_rule_strings_are_reported_and_skipped_at_load() {
    let s = Scenario::load(&scenario_path("rules_at_load_malformed.toml")).unwrap();
    let load = s.rule_load();
    assert_eq!((load.accepted, load.rejected), (2, 4));
    let lines: Vec<usize> = load.errors().iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 3, 4, 5]);
    let r = s.run(MemStore::new()).unwrap();
    assert!(r.passed);
    assert_eq!(r.rule_load, load);
}

#[test]
fn the_defaults_are_the_documented_ones() {
    let s = Scenario::parse(
        "description = \"d\"\n[[file]]\nname = \"db.vhdx\"\n[[step]]\nop = \"read\"\nfile = \"db.vhdx\"\nexpect = \"STATUS_SUCCESS\"\n",
        "d.toml",
    )
    .unwrap();
    assert_eq!(s.volume.device_name, DEFAULT_DEVICE_NAME);
    assert_eq!(s.volume.dos_name, DEFAULT_DOS_NAME);
    assert_eq!(s.volume.guid_name, DEFAULT_GUID_NAME);
    assert_eq!(DEFAULT_DEVICE_NAME, "\\Device\\HarddiskVolume2");
    assert_eq!(DEFAULT_DOS_NAME, "D:");
    assert_eq!(
        DEFAULT_GUID_NAME,
        "\\??\\Volume{4c1b2d3e-0000-0000-0000-000000000001}"
    );
    assert!(s.rules.is_empty());
    assert_eq!(s.files[0].effective_path(), "\\db.vhdx");
    let step = &s.steps[0].spec;
    assert_eq!(step.effective_process(), "copy.exe");
    assert_eq!(step.effective_process_id(), 1000);
    assert_eq!(
        step.kernel_process_image(),
        "\\Device\\HarddiskVolume1\\Windows\\System32\\copy.exe"
    );
    assert_eq!(step.expected_decided_by(), None);
}

#[test]
fn a_process_with_a_backslash_is_handed_as_it_is_and_an_empty_one_fails() {
    let text = "description = \"d\"\n[[file]]\nname = \"f\"\n[[step]]\nop = \"read\"\nfile = \"f\"\nprocess = \"C:\\\\Tools\\\\x.exe\"\nexpect = \"STATUS_SUCCESS\"\n[[step]]\nop = \"read\"\nfile = \"f\"\nprocess = \"\"\nexpect = \"STATUS_SUCCESS\"\n";
    let s = Scenario::parse(text, "p.toml").unwrap();
    assert_eq!(s.steps[0].spec.kernel_process_image(), "C:\\Tools\\x.exe");
    assert_eq!(s.steps[1].spec.kernel_process_image(), "");
    assert!(s.steps[1].spec.requester().image.is_empty());
}

#[test]
fn decided_by_labels_round_trip() {
    for label in [
        "rule 0",
        "rule 63",
        "mode veto",
        "mode monitor",
        "check Alignment",
        "check Forward",
        "check FactUnavailable(StreamSizes)",
    ] {
        let parsed = parse_decided_by(label).unwrap_or_else(|| panic!("{label}"));
        assert_eq!(decided_by_label(parsed), label);
    }
    for bad in [
        "rule",
        "rule x",
        "mode",
        "mode forbid",
        "check Nope",
        "Alignment",
        "",
    ] {
        assert_eq!(parse_decided_by(bad), None, "{bad}");
    }
}

fn parse_err(body: &str) -> String {
    Scenario::parse(&format!("description = \"d\"\n{body}"), "e.toml")
        .unwrap_err()
        .to_string()
}

#[test]
fn new_keys_are_checked_and_unknown_keys_stay_errors() {
    let file = "[[file]]\nname = \"f\"\n";
    assert!(parse_err("[[rule]]\ntxt = \"veto\"\n").contains("unknown field `txt`"));
    assert!(parse_err("[volume]\ndos = \"D:\"\n").contains("unknown field `dos`"));
    assert!(
        parse_err(&format!(
            "{file}[[file]]\nname = \"g\"\npaths = \"\\\\g\"\n"
        ))
        .contains("unknown field `paths`")
    );
    let e = parse_err(&format!(
        "{file}[[step]]\nop = \"read\"\nfile = \"f\"\nexpect_decided_by = \"rule x\"\nexpect = \"STATUS_SUCCESS\"\n"
    ));
    assert!(e.contains("expect_decided_by = \"rule x\" is not"), "{e}");
    let e = parse_err("[[step]]\nop = \"set_rules\"\nexpect_error_line = 0\n");
    assert!(e.contains("needs `text`"), "{e}");
    let e = parse_err(&format!(
        "{file}[[step]]\nop = \"stat\"\nfile = \"f\"\nexpect_size = 0\nprocess = \"x.exe\"\n"
    ));
    assert!(e.contains("belong to op = \"read\" or \"write\""), "{e}");
    let e = parse_err(&format!(
        "{file}[[step]]\nop = \"read\"\nfile = \"f\"\ntext = \"veto\"\nexpect = \"STATUS_SUCCESS\"\n"
    ));
    assert!(e.contains("belong to op = \"set_rules\""), "{e}");
}

#[test]
fn set_rules_goes_through_the_port_and_a_refusal_keeps_the_rules() {
    let text = "description = \"d\"\n[[rule]]\ntext = \"veto\"\n[[step]]\nop = \"set_rules\"\ntext = \"veto\\nmonitor op=sideways\"\nexpect_error_line = 2\n";
    let s = Scenario::parse(text, "s.toml").unwrap();
    assert_eq!(s.steps[0].spec.op, Op::SetRules);
    let (r, stack) = s.run_keeping_stack(MemStore::new()).unwrap();
    assert!(r.passed, "{:?}", r.steps[0].failures);
    let (line, error, count) = r.steps[0].rules_reply.clone().unwrap();
    assert_eq!((line, count), (2, 1));
    assert_eq!(
        error.as_deref(),
        Some("line 2: bad value for op (expected read, write or any)")
    );
    assert_eq!(stack.rule_set().to_string().trim(), "veto");
}

#[test]
fn the_journal_mode_is_checked_and_maps_to_its_registry_value() {
    let e = parse_err("[volume]\njournal = \"on\"\n");
    assert!(
        e.contains("[volume] journal = \"on\" is not off, decisions or named"),
        "{e}"
    );
    for (name, mode, dword) in [
        ("off", JournalMode::Off, 0),
        ("decisions", JournalMode::Decisions, 1),
        ("named", JournalMode::Named, 2),
    ] {
        let s = Scenario::parse(
            &format!("description = \"d\"\n[volume]\njournal = \"{name}\"\n"),
            "j.toml",
        )
        .unwrap();
        assert_eq!(s.volume.journal_mode(), mode);
        // The documented Parameters\Journal values (docs/driver.md), written out.
        assert_eq!(mode.as_u32(), dword);
        assert_eq!(JournalMode::from_dword(Some(dword)), mode);
    }
    let s = Scenario::parse("description = \"d\"\n", "j.toml").unwrap();
    assert_eq!(s.volume.journal_mode(), JournalMode::Decisions, "default");
}
