//! The stack budget of the shipped odxflt.sys (docs/performance.md, "Kernel stack"): at most
//! 1 KiB of odxflt frames live across any call out of the image, at most 2 KiB on the deepest
//! path from the registered pre- and post-operation callbacks. Static analysis of the image
//! (`odx_pe_harness::stack`). Skips with a message when the cross-built image is absent
//! (scripts/cross-build-driver.sh).

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use odx_pe_harness::diff;
use odx_pe_harness::driver::LoadedDriver;
use odx_pe_harness::stack::{self, DEEPEST_BUDGET, LIVE_BUDGET};
use odx_sim::VolumeConfig;

#[test]
fn the_request_path_keeps_to_its_stack_budget() {
    let path = diff::default_image();
    let Ok(image) = std::fs::read(&path) else {
        eprintln!(
            "SKIPPED: {} is absent; build it with scripts/cross-build-driver.sh to measure its stack",
            path.display()
        );
        return;
    };
    let volume = diff::volume_info(&VolumeConfig::default()).0;
    let driver = LoadedDriver::load(&image, volume).expect("the image loads");
    let roots = stack::request_path_roots(&driver).expect("callbacks registered");
    assert_eq!(
        roots.len(),
        2,
        "one pre- and one post-operation callback: {roots:?}"
    );
    let report =
        stack::analyze(&image, &roots, Some(&path)).expect("the analysis bounds the stack");
    let leaks = driver.unload().expect("unloads");
    assert!(leaks.is_empty(), "{leaks:?}");
    println!("{}", report.line());
    print!("{}", report.details());

    // The analysis saw the request path: both callbacks, the fact query it makes, and frames.
    assert!(report.functions >= 2, "{}", report.details());
    assert!(
        report
            .calls_out
            .iter()
            .any(|c| c.import == "fltmgr.sys!FltQueryInformationFile"),
        "FltQueryInformationFile is on the request path:\n{}",
        report.details()
    );
    assert!(
        report.deepest >= report.live_across_calls_out() && report.deepest > 0,
        "{}",
        report.details()
    );
    assert!(
        report.live_across_calls_out() <= LIVE_BUDGET,
        "{}\n{}",
        report.line(),
        report.details()
    );
    assert!(
        report.deepest <= DEEPEST_BUDGET,
        "{}\n{}",
        report.line(),
        report.details()
    );
    assert!(report.within_budget());
}

#[test]
fn an_image_named_by_odx_stack_over_fails_the_check() {
    // ODX_STACK_OVER=<image> runs the analysis on another build (e.g. one with a large array on
    // the request path) and expects it over budget; without the variable there is nothing to do.
    let Some(other) = std::env::var_os("ODX_STACK_OVER") else {
        return;
    };
    let path = std::path::PathBuf::from(other);
    let image = std::fs::read(&path).expect("ODX_STACK_OVER names an image");
    let volume = diff::volume_info(&VolumeConfig::default()).0;
    let driver = LoadedDriver::load(&image, volume).expect("the image loads");
    let report = stack::analyze_loaded(&image, &driver, Some(&path)).expect("analysis");
    let _ = driver.unload();
    println!("{}", report.line());
    print!("{}", report.details());
    assert!(!report.within_budget(), "{}", report.line());
}
