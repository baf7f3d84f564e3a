//! The shipped odxflt.sys against the simulator: every scenario, identical answers (up to the
//! documented differences), "no callback" for what is not an offload FSCTL, no leaks.
//! Skips with a message when the cross-built image is absent (scripts/cross-build-driver.sh).

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use odx_core::NtStatus;
use odx_pe_harness::diff::{self, KNOWN_DIFFERENCES};
use odx_pe_harness::driver::{FileObjectFacts, FsControlRequest, LoadedDriver, PreResult};
use odx_pe_harness::kernel::Call;
use odx_sim::VolumeConfig;

fn image() -> Option<Vec<u8>> {
    diff::built_image()
}

#[test]
fn every_scenario_answers_as_in_the_simulator_and_nothing_leaks() {
    let Some(image) = image() else { return };
    let summary = diff::run_all(&image, &diff::default_scenarios()).expect("harness runs");
    let problems: Vec<String> = summary
        .reports
        .iter()
        .flat_map(|r| r.describe_problems())
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        summary.stale.is_empty(),
        "listed differences that did not occur: {:?}",
        summary.stale
    );
    assert_eq!(summary.leaks(), 0);
    assert!(summary.ok(), "{}", summary.line());
    // Every scenario file ran, and most requests reached the binary's callbacks.
    assert!(summary.reports.len() >= 60, "{}", summary.line());
    let reached: usize = summary.reports.iter().map(|r| r.reached_binary()).sum();
    assert!(reached >= 150, "only {reached} requests reached odxflt.sys");
    let identical = summary.reports.iter().filter(|r| r.identical()).count();
    assert!(
        identical + KNOWN_DIFFERENCES.len() + 2 >= summary.reports.len(),
        "{}",
        summary.line()
    );
    // The journals were read back through both ports and compared in every scenario, most
    // over several pages.
    let journals: Vec<_> = summary
        .reports
        .iter()
        .filter_map(|r| r.journal.as_ref().map(|j| &j.comparison))
        .collect();
    assert_eq!(journals.len(), summary.reports.len(), "{}", summary.line());
    let identical: usize = journals.iter().map(|j| j.identical).sum();
    assert!(identical >= 200, "{}", summary.line());
    assert!(
        journals.iter().filter(|j| j.pages.1 > 2).count() >= 10,
        "{}",
        summary.line()
    );
    println!("{}", summary.line());
}

fn default_volume() -> odx_pe_harness::kernel::VolumeInfo {
    diff::volume_info(&VolumeConfig::default()).0
}

#[test]
fn a_non_offload_fsctl_gets_no_callback_and_costs_no_fact() {
    let Some(image) = image() else { return };
    let mut driver = LoadedDriver::load(&image, default_volume()).expect("loads");
    assert_eq!(
        driver.setup_instance().expect("setup"),
        NtStatus::STATUS_SUCCESS
    );
    let request = FsControlRequest {
        pre_irql: 0,
        post_irql: 0,
        minor_function: 0,
        code: 0x0009_0073, // FSCTL_GET_RETRIEVAL_POINTERS
        input: vec![0; 16],
        output_len: 32,
        kernel_requestor: false,
        file: FileObjectFacts::default(),
    };
    let mut went_down = false;
    let mut below = |_: &mut [u8], _: usize| {
        went_down = true;
        (NtStatus::STATUS_SUCCESS, 0)
    };
    let result = driver.fs_control(&request, &mut below).expect("runs");
    assert_eq!(result.pre, PreResult::NoCallback);
    assert!(result.pre_calls.is_empty(), "{:?}", result.pre_calls);
    assert!(went_down);
    assert!(driver.unload().expect("unloads").is_empty());
}

#[test]
fn load_binds_every_import_and_registers_one_operation() {
    let Some(image) = image() else { return };
    let driver = LoadedDriver::load(&image, default_volume()).expect("loads");
    let symbols: Vec<&str> = driver
        .image()
        .imports()
        .iter()
        .map(|i| i.symbol.as_str())
        .collect();
    assert!(symbols.contains(&"FltRegisterFilter") && symbols.contains(&"ExAllocatePoolWithTag"));
    assert!(driver.image().relocations() > 0);
    assert_ne!(
        driver.image().base() as u64,
        driver.image().preferred_base()
    );
    let registration = driver.registration();
    // Windows 8's registration version, with the whole structure (the table's size).
    assert_eq!(registration.version, 0x0203);
    assert_eq!(
        usize::from(registration.size),
        odx_pe_harness::layouts::shapes().registration.size
    );
    let majors: Vec<u8> = registration
        .operations
        .iter()
        .map(|o| o.major_function)
        .collect();
    assert_eq!(majors, [0x0D]);
    let calls = driver.calls();
    let register = calls.iter().position(|c| *c == Call::RegisterFilter);
    let start = calls.iter().position(|c| *c == Call::StartFiltering);
    assert!(
        matches!((register, start), (Some(r), Some(s)) if r < s),
        "DriverEntry registers, then starts: {calls:?}"
    );
    assert!(
        !calls.iter().any(Call::is_fact_or_context),
        "DriverEntry touches no volume, file or context: {calls:?}"
    );
    assert!(driver.unload().expect("unloads").is_empty());
}

#[test]
fn a_missing_import_is_named() {
    let Some(image) = image() else { return };
    struct Partial;
    impl odx_pe_harness::pe::Resolver for Partial {
        fn resolve(&self, library: &str, symbol: &str) -> Option<usize> {
            (symbol != "FltGetInstanceContext" && symbol != "ExFreePoolWithTag")
                .then(|| odx_pe_harness::kernel::resolve(library, symbol))
                .flatten()
        }
    }
    let error = odx_pe_harness::pe::Image::load(&image, &Partial).expect_err("must fail");
    let text = error.to_string();
    assert!(text.contains("fltmgr.sys!FltGetInstanceContext"), "{text}");
    assert!(text.contains("ntoskrnl.exe!ExFreePoolWithTag"), "{text}");
}
