//! Runs every scenario in the repository's tests/scenarios/ through the library, on both data
//! stores, and fails on any unmet expectation.

use std::path::PathBuf;

use odx_sim::scenario::{Op, Scenario, scenario_files};
use odx_sim::{HostStore, MemStore};

fn scenarios() -> Vec<Scenario> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/scenarios");
    let files = scenario_files(&dir).expect("tests/scenarios is readable");
    files
        .iter()
        .map(|p| Scenario::load(p).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

#[test]
fn at_least_forty_scenarios_and_every_step_has_an_expectation() {
    let all = scenarios();
    assert!(all.len() >= 40, "only {} scenarios", all.len());
    for s in &all {
        assert!(s.description.is_some(), "{} has no description", s.path);
        for step in &s.steps {
            // A stat step's expectation is its expect_size / expect_vdl (required at load); a
            // set_rules step's is its expect_error_line.
            assert!(
                step.expect.is_some()
                    || step.spec.op == Op::Stat
                    || (step.spec.op == Op::SetRules && step.spec.expect_error_line.is_some()),
                "{} line {}: step without expect",
                s.path,
                step.line
            );
        }
    }
}

fn report(results: &[odx_sim::scenario::ScenarioResult]) -> String {
    let mut out = String::new();
    for r in results.iter().filter(|r| !r.passed) {
        for s in r.steps.iter().filter(|s| !s.expect_ok) {
            out.push_str(&format!(
                "{} step {}: {}\n",
                r.path,
                s.index,
                s.failures.join("; ")
            ));
        }
    }
    out
}

#[test]
fn every_scenario_passes_in_memory() {
    let results: Vec<_> = scenarios()
        .iter()
        .map(|s| s.run(MemStore::new()).expect("store works"))
        .collect();
    let failures = report(&results);
    assert!(failures.is_empty(), "{failures}");
}

#[test]
fn every_scenario_passes_on_host_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut results = Vec::new();
    for (i, s) in scenarios().iter().enumerate() {
        let sub = dir.path().join(i.to_string());
        std::fs::create_dir(&sub).expect("mkdir");
        results.push(s.run(HostStore::in_dir(&sub)).expect("store works"));
    }
    let failures = report(&results);
    assert!(failures.is_empty(), "{failures}");
}
