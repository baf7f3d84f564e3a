//! `odx-pe-harness [--image PATH] [--scenarios DIR] [--verbose]`: loads odxflt.sys, runs every
//! scenario through it and through the simulator, prints the differences and the summary line
//! ("N scenarios identical to the simulator, 0 leaks"). Exit status 1 on any unexplained
//! difference, leak or misuse, 2 when the image is missing.

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn main() -> std::process::ExitCode {
    match harness::run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("odx-pe-harness: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn main() {
    eprintln!("odx-pe-harness runs on Linux x86-64 only");
    std::process::exit(2);
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod harness {
    use std::path::PathBuf;
    use std::process::ExitCode;
    use std::time::Instant;

    use anyhow::{Context, Result, bail};
    use odx_pe_harness::diff::{self, KNOWN_DIFFERENCES};
    use odx_pe_harness::driver::LoadedDriver;

    pub fn run() -> Result<ExitCode> {
        let mut image = diff::default_image();
        let mut scenarios = diff::default_scenarios();
        let mut verbose = false;
        let mut faults = false;
        let mut as_written = false;
        let mut fault_scenarios: Option<usize> = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--image" => image = PathBuf::from(args.next().context("--image needs a path")?),
                "--scenarios" => {
                    scenarios = PathBuf::from(args.next().context("--scenarios needs a path")?);
                }
                "-v" | "--verbose" => verbose = true,
                "--faults" => faults = true,
                "--as-written" => as_written = true,
                "--fault-scenarios" => {
                    let n = args.next().context("--fault-scenarios needs a count")?;
                    fault_scenarios = Some(n.parse().context("--fault-scenarios: not a count")?);
                }
                "-h" | "--help" => {
                    println!(
                        "usage: odx-pe-harness [--image PATH] [--scenarios DIR] [--verbose] [--as-written] [--faults [--fault-scenarios N]]\n  --as-written: run each scenario only as written, without the journal-off copy of those that configure nothing"
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                other => bail!("unknown argument {other:?} (try --help)"),
            }
        }
        if !image.is_file() {
            eprintln!(
                "odx-pe-harness: {} not found; build it with scripts/cross-build-driver.sh",
                image.display()
            );
            return Ok(ExitCode::from(2));
        }
        let bytes =
            std::fs::read(&image).with_context(|| format!("reading {}", image.display()))?;
        let started = Instant::now();
        if faults {
            let summary = odx_pe_harness::faults::run_all(&bytes, &scenarios, fault_scenarios)?;
            for problem in &summary.problems {
                println!("odx-pe-harness: FAULT {problem}");
            }
            println!(
                "odx-pe-harness: {} ({:.1} s)",
                summary.line(),
                started.elapsed().as_secs_f64()
            );
            return Ok(if summary.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        let stack_ok = {
            let volume = diff::volume_info(&odx_sim::VolumeConfig::default()).0;
            let driver = LoadedDriver::load(&bytes, volume)?;
            println!(
                "odx-pe-harness: {}: {}",
                image.display(),
                driver.image().describe()
            );
            let r = driver.registration();
            println!(
                "odx-pe-harness: FltRegisterFilter: version {:#06x}, size {}, operations {:?}, contexts {:?}",
                r.version,
                r.size,
                r.operations
                    .iter()
                    .map(|o| o.major_function)
                    .collect::<Vec<_>>(),
                r.contexts
                    .iter()
                    .map(|c| (c.context_type, c.size))
                    .collect::<Vec<_>>()
            );
            // Stack budget of the request path (static analysis of the image: stack.rs).
            let stack = odx_pe_harness::stack::analyze_loaded(&bytes, &driver, Some(&image))?;
            println!("odx-pe-harness: {}", stack.line());
            if verbose || !stack.within_budget() {
                print!("{}", stack.details());
            }
            let leaks = driver.unload()?;
            if !leaks.is_empty() {
                bail!("load/unload alone leaked {leaks:?}");
            }
            stack.within_budget()
        };
        let summary = diff::run_all_copies(&bytes, &scenarios, !as_written)?;
        for report in &summary.reports {
            if verbose {
                println!(
                    "  {:<45} attach {:<28} {} requests through the binary{}",
                    report.name,
                    report.attach.to_string(),
                    report.reached_binary(),
                    if report.identical() {
                        ""
                    } else {
                        " (see below)"
                    }
                );
            }
            for step in report.steps.iter().filter(|s| s.known.is_some()) {
                if let Some(k) = step.known {
                    println!(
                        "odx-pe-harness: documented difference {} step {}: {:?} — {}",
                        k.scenario, k.step, k.difference, k.reason
                    );
                }
            }
            for line in report
                .journal
                .iter()
                .flat_map(|j| j.comparison.documented_lines.iter())
            {
                println!(
                    "odx-pe-harness: documented journal difference {} {line}",
                    report.name
                );
            }
            if let Some(policy) = &report.policy_unavailable {
                let differing = report
                    .steps
                    .iter()
                    .filter(|s| !s.problems.is_empty())
                    .count();
                println!(
                    "odx-pe-harness: documented difference {}: policy {policy:?} — {}; {differing} of {} steps differ under enforce",
                    report.name,
                    diff::POLICY_NOT_IN_IMAGE,
                    report.steps.len()
                );
                for note in &report.notes {
                    println!("odx-pe-harness:   under enforce: {note}");
                }
            }
            for problem in report.describe_problems() {
                println!("odx-pe-harness: DIFFERENT {problem}");
            }
        }
        for stale in &summary.stale {
            println!(
                "odx-pe-harness: listed difference did not occur: {} step {}",
                stale.scenario, stale.step
            );
        }
        let _ = KNOWN_DIFFERENCES;
        println!("odx-pe-harness: {}", summary.costs_line());
        println!("odx-pe-harness: {}", summary.governance_line());
        println!(
            "odx-pe-harness: {} ({:.1} s)",
            summary.line(),
            started.elapsed().as_secs_f64()
        );
        Ok(if summary.ok() && stack_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
