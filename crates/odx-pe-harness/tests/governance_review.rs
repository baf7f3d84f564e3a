//! Issue 15 on the shipped image: names released and image buffers freed on every path (each
//! name query failing once at each position), a veto rule for one process refusing only that
//! process, `SetRules` through the image's port all or nothing, and the kernel calls a request
//! costs with and without rules. Skips when the cross-built image is absent.

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use odx_core::governance::JournalMode;
use odx_pe_harness::diff::{self, ScenarioReport};
use odx_pe_harness::faults;
use odx_pe_harness::kernel::fault::Point;
use odx_sim::scenario::Scenario;

fn image() -> Option<Vec<u8>> {
    diff::built_image()
}

fn scenario(name: &str) -> Scenario {
    diff::scenario_named(name).unwrap_or_else(|e| panic!("{e:#}"))
}

fn run(image: &[u8], name: &str) -> ScenarioReport {
    diff::run_scenario(image, &scenario(name), diff::KNOWN_DIFFERENCES).unwrap()
}

fn assert_clean(report: &ScenarioReport) {
    let problems: Vec<String> = report
        .steps
        .iter()
        .flat_map(|s| {
            s.problems
                .iter()
                .map(move |p| format!("step {}: {p}", s.index))
        })
        .chain(report.problems.iter().cloned())
        .collect();
    assert!(
        report.ok() && problems.is_empty(),
        "{}: {problems:?} leaks {:?}",
        report.name,
        report.leaks
    );
}

#[test]
fn names_are_released_and_image_buffers_freed_on_every_path() {
    let Some(image) = image() else { return };
    for name in [
        "rules_veto_process.toml",
        "rules_name_unavailable.toml",
        "rules_order.toml",
    ] {
        let summary = faults::run_points(
            &image,
            &scenario(name),
            &[
                Point::FileName,
                Point::ParseFileName,
                Point::ProcessImage,
                Point::VolumeName,
                Point::AllocatePool,
            ],
        )
        .unwrap();
        assert!(summary.injected > 0, "{name}: no name query was failed");
        assert_eq!(
            (summary.leaks, summary.misuse),
            (0, 0),
            "{name}: {:?}",
            summary.problems
        );
    }
}

#[test]
fn a_veto_rule_for_one_process_refuses_only_that_process() {
    let Some(image) = image() else { return };
    let report = run(&image, "rules_veto_process.toml");
    assert_clean(&report);
    let statuses: Vec<u32> = report
        .steps
        .iter()
        .filter_map(|s| s.binary.as_ref().map(|b| b.status.0))
        .collect();
    // robocopy.exe: 4440 (read) / 4441 (write) = STATUS_OFFLOAD_{READ,WRITE}_FLT_NOT_SUPPORTED;
    // the other process succeeds.
    assert!(statuses.contains(&0xC000_A2A1), "{statuses:x?}");
    assert!(statuses.contains(&0xC000_A2A2), "{statuses:x?}");
    assert!(statuses.contains(&0), "{statuses:x?}");
}

#[test]
fn set_rules_through_the_port_is_all_or_nothing() {
    let Some(image) = image() else { return };
    for name in [
        "rules_set_through_port.toml",
        "rules_at_load_malformed.toml",
    ] {
        assert_clean(&run(&image, name));
    }
}

fn run_with_journal(image: &[u8], name: &str, journal: JournalMode) -> ScenarioReport {
    let mut scenario = scenario(name);
    scenario.volume.journal = journal.name().to_owned();
    diff::run_scenario(image, &scenario, diff::KNOWN_DIFFERENCES).unwrap()
}

/// The most name queries, governance calls and lock calls of any request in `report`.
fn max_calls(report: &ScenarioReport) -> (usize, usize, usize) {
    report
        .steps
        .iter()
        .filter_map(|s| s.cost)
        .map(|c| (c.name_queries, c.governance_calls, c.lock_calls))
        .fold((0, 0, 0), |a, c| (a.0.max(c.0), a.1.max(c.1), a.2.max(c.2)))
}

#[test]
fn kernel_calls_per_request_with_and_without_rules() {
    let Some(image) = image() else { return };
    let off = run_with_journal(&image, "read_write_basic.toml", JournalMode::Off);
    let decisions = run_with_journal(&image, "read_write_basic.toml", JournalMode::Decisions);
    let named = run_with_journal(&image, "read_write_basic.toml", JournalMode::Named);
    let ruled = run(&image, "rules_veto_process.toml");
    for report in [&off, &decisions, &named, &ruled] {
        assert_clean(report);
    }
    let requests = off.steps.iter().filter(|s| s.cost.is_some()).count();
    assert!(requests > 0, "the scenario sends offload requests");
    println!(
        "no rules: journal off {:?}, decisions {:?}, named {:?}; process rule: {:?}",
        max_calls(&off),
        max_calls(&decisions),
        max_calls(&named),
        max_calls(&ruled)
    );
    // No rules, no journal: not one governance call (the request path before governance).
    assert_eq!(max_calls(&off), (0, 0, 0));
    // No rules, the default journal: the requestor's id and the time, no name, no lock.
    assert_eq!(max_calls(&decisions), (0, 2, 0));
    // Named: one name query of each kind as well (each with its release or free).
    let (queries, _, locks) = max_calls(&named);
    assert_eq!((queries, locks), (2, 0));
    // Rules: the shared lock, acquired and released once; names only as the rules need.
    let (queries, _, locks) = max_calls(&ruled);
    assert_eq!(locks, 2);
    assert!(queries <= 2);
}
