//! `odx-pe-harness --faults`: the image under a Windows as hostile as its documentation allows.
//!
//! For every scenario: a clean run counts the calls of each failable kernel routine
//! ([`crate::kernel::fault::Point`]); then the scenario is re-run once per routine, per position
//! of its calls and per status it may return, with that one call failing. Then once each with
//! every pre-operation at APC_LEVEL, every post-operation at DISPATCH_LEVEL, every request from
//! kernel mode (`IRP_MN_KERNEL_CALL`, and `IRP_MN_USER_FS_REQUEST` with `KernelMode` as the SMB
//! server sends them), and every file's `FsContext` owned by another driver (no advanced header;
//! a bogus `ValidDataLength` of 0). Only the image's side runs; nothing is compared with the
//! simulator, because a failed call legitimately changes the answer. A run passes when the
//! image did not crash (a crash ends the process), leaked nothing (pool, contexts, registry
//! keys, ports, security descriptors), misused nothing (the mock's checks, IRQL included),
//! answered every request with a status the ODX documentation names (odx-core's status table) —
//! passing through counts, since the file system's answer is then the caller's — and never
//! answered a read at or beyond a foreign header's valid data length itself.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use odx_core::NtStatus;
use odx_core::flags::OffloadReadFlags;
use odx_core::governance::JournalMode;
use odx_core::iomgr::RequestorMode;
use odx_core::policy::PolicyMode;
use odx_core::port::governance::RECORD_COMPLETED;
use odx_core::wire::{OffloadReadInput, OffloadReadOutput};
use odx_core::{OffloadOp, WireStruct};
use odx_sim::scenario::{Op, Requestor, Scenario};

use crate::diff::{Side, Variant, file_name, forged_token, pseudo_random, seed, through_binary};
use crate::driver::{ForeignHeader, Load, LoadedDriver, PreResult};
use crate::journal::JournalRead;
use crate::kernel;
use crate::kernel::fault::{Fault, Point};
use crate::layouts::shapes;

/// What the fault runs found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultSummary {
    /// Faults injected (runs in which the planned call happened and failed).
    pub injected: usize,
    /// Variant runs (IRQL, requestor, foreign header).
    pub variants: usize,
    /// Requests sent through the image over all runs.
    pub requests: usize,
    /// Scenarios.
    pub scenarios: usize,
    /// Of those, run again with the journal off ([`crate::diff::journal_off_variant`]: the
    /// image's plain pre-operation body), every fault and variant included.
    pub journal_off: usize,
    /// Runs that left something behind.
    pub leaks: usize,
    /// Misuse of the mock kernel.
    pub misuse: usize,
    /// Answers with a status the documentation does not name.
    pub undocumented: usize,
    /// Reads beyond a foreign valid data length answered by the image itself.
    pub vdl_answers: usize,
    /// Runs whose journal kept a record pending for a request that completed.
    pub stuck_records: usize,
    /// One line per problem, naming scenario, fault and request.
    pub problems: Vec<String>,
}

impl FaultSummary {
    /// Nothing wrong.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The one-line result.
    #[must_use]
    pub fn line(&self) -> String {
        format!(
            "faults: {} injected over {} requests in {} scenarios, {} of them again with the journal off ({} IRQL/requestor/header variant runs), 0 crashes, {} leaks, {} misuse, {} undocumented statuses, {} journal records left pending{}",
            self.injected,
            self.requests,
            self.scenarios,
            self.journal_off,
            self.variants,
            self.leaks,
            self.misuse,
            self.undocumented,
            self.stuck_records,
            if self.vdl_answers > 0 {
                format!(
                    ", {} requests answered from a foreign VDL (read beyond it, or zeros claimed)",
                    self.vdl_answers
                )
            } else {
                String::new()
            }
        )
    }
}

/// One run of a scenario through the image.
#[derive(Debug, Default)]
struct RunReport {
    calls: BTreeMap<Point, usize>,
    fired: bool,
    requests: usize,
    leaks: usize,
    misuse: usize,
    undocumented: usize,
    vdl_answers: usize,
    stuck_records: usize,
    problems: Vec<String>,
}

/// A status the ODX documentation names (odx-core's table of both FSCTLs' statuses and the
/// I/O manager's), or success.
fn documented(status: NtStatus) -> bool {
    status.is_success() || status.info().is_some()
}

fn run_once(
    image: &[u8],
    scenario: &Scenario,
    fault: Option<Fault>,
    variant: &Variant,
    what: &str,
) -> Result<RunReport> {
    let name = file_name(&scenario.path);
    // A journal-off copy is fed what its scenario is (the seeds are the scenario's name).
    let seeded = name.strip_suffix(crate::diff::JOURNAL_OFF).unwrap_or(&name);
    let config = scenario.volume_config();
    let (volume, _) = crate::diff::volume_info(&config);
    let volume = crate::diff::with_registry(
        crate::diff::with_storage(volume, &scenario.storage),
        scenario,
    );
    let policy = PolicyMode::from_name(&scenario.volume.policy).unwrap_or_default();
    let mut report = RunReport::default();
    crate::diff::preset_names(scenario);
    let loaded = LoadedDriver::load_with_fault(image, volume, Some(policy.as_u32()), fault)?;
    let mut driver = match loaded {
        Load::Started(driver) => driver,
        Load::Refused {
            status,
            leaks,
            errors,
        } => {
            // DriverEntry may fail when a routine it needs fails; it must unwind completely.
            // Any failure status is DriverEntry's to return; it must have unwound completely.
            report.fired = fault.is_some();
            if !leaks.is_empty() {
                report.leaks += 1;
                report.problems.push(format!(
                    "{name} [{what}]: DriverEntry failed with {status} and leaked {leaks:?}"
                ));
            }
            for e in errors {
                report.misuse += 1;
                report
                    .problems
                    .push(format!("{name} [{what}]: misuse: {e}"));
            }
            return Ok(report);
        }
    };
    let attach = driver.setup_instance()?;
    if attach.is_success() && config.dismounted {
        driver.teardown_start(shapes().constants.fltfl_instance_teardown_volume_dismount)?;
    }
    let mut bin = Side::new(scenario)?;
    // Requests the image passed through (`FLT_PREOP_SUCCESS_NO_CALLBACK`): the only ones whose
    // journal record may stay pending, no post-operation seeing their answer.
    let mut passed_through = 0;
    for (index, step) in scenario.steps.iter().enumerate() {
        let spec = &step.spec;
        match spec.op {
            Op::Read | Op::Write => {
                crate::diff::step_names(scenario, spec);
                let forged = forged_token(seed(seeded, index));
                let requestor = match spec.requestor {
                    Requestor::User => RequestorMode::User,
                    Requestor::Kernel => RequestorMode::Kernel,
                };
                let (op, input, out_len) = bin.input(spec, forged);
                let handle = bin.open(spec)?;
                // A read the valid-data-length rule would answer (zero-length reads are answered
                // by MS-FSA read 9 before any VDL check, and may be).
                let offset = match op {
                    OffloadOp::Read => OffloadReadInput::parse(&input)
                        .ok()
                        .filter(|i| i.copy_length.get() > 0)
                        .map(|i| i.file_offset.get()),
                    OffloadOp::Write => None,
                };
                let all_valid = bin
                    .file(spec.file.as_ref())
                    .ok()
                    .and_then(|id| bin.stack.volume().entry(id))
                    .is_some_and(|e| e.valid_data_length >= e.end_of_file);
                let (status, _, output, result) = through_binary(
                    &mut driver,
                    variant,
                    &mut bin,
                    handle,
                    op,
                    input,
                    out_len,
                    requestor,
                )?;
                bin.keep_token(spec, status, &output);
                let Some(result) = result else { continue };
                report.requests += 1;
                passed_through += usize::from(result.pre == PreResult::NoCallback);
                let at = format!("{name} step {index} (line {}) [{what}]", step.line);
                if !documented(status) {
                    report.undocumented += 1;
                    report.problems.push(format!(
                        "{at}: undocumented status {status} ({:?})",
                        result.pre
                    ));
                }
                if let (Some(ForeignHeader::Advanced(vdl)), Some(offset)) =
                    (variant.foreign_header, offset)
                {
                    let beyond = u64::try_from(vdl).is_ok_and(|vdl| offset >= vdl);
                    if beyond && result.pre == PreResult::Complete && status.is_success() {
                        report.vdl_answers += 1;
                        report.problems.push(format!(
                            "{at}: the image answered a read at {offset} beyond the foreign header's valid data length {vdl} itself"
                        ));
                    }
                }
                // Zeros claimed where the file has none: a copy engine would write zeros at the
                // destination (data loss).
                let claims_zeros = op == OffloadOp::Read
                    && status.is_success()
                    && OffloadReadOutput::parse(&output).is_ok_and(|o| {
                        o.read_flags()
                            .contains(OffloadReadFlags::ALL_ZERO_BEYOND_CURRENT_RANGE)
                    });
                if claims_zeros && all_valid {
                    report.vdl_answers += 1;
                    report.problems.push(format!(
                        "{at}: ALL_ZERO_BEYOND_CURRENT_RANGE on a file whose data is all valid"
                    ));
                }
                if let Some(held) = kernel::with(|k| k.held_after_request()).flatten() {
                    report.leaks += 1;
                    report
                        .problems
                        .push(format!("{at}: after the request {held}"));
                }
            }
            Op::WriteData => {
                let bytes = pseudo_random(
                    seed(seeded, index),
                    usize::try_from(spec.length).unwrap_or(0),
                );
                let id = bin.file(spec.file.as_ref())?;
                bin.stack.volume_mut().write_data(id, spec.offset, &bytes)?;
            }
            Op::AdvanceMs => {
                bin.stack.advance_ms(spec.ms.unwrap_or(0));
                crate::diff::advance_kernel_clock(spec.ms.unwrap_or(0));
            }
            Op::Compare | Op::Stat => {}
            Op::SetRules => {
                let message = odx_sim::stack::set_rules_message(spec.text.as_deref().unwrap_or(""));
                // Under a fault the port may refuse (no pool for the message): any answer is
                // the image's to give; misuse and leaks are what is checked.
                let _ = crate::diff::set_rules_through_port(&mut driver, &message)?;
            }
        }
    }
    // What the fault plan saw of the scenario itself (the journal read below must not add to
    // the calls the fault runs then fail one by one: it is the harness's, not the scenario's).
    let (calls, fired) = kernel::with(|k| (k.faults.calls.clone(), k.faults.fired))
        .ok_or_else(|| anyhow!("no kernel"))?;
    // Every request that completed — in pre-operation, or in post-operation — has a completed
    // record: a record left pending beyond the passed-through requests is a request the
    // journal lost track of. Read through the port; a run whose fault fired may find the port
    // refusing (no pool for the message), but without a fault the journal must read whole.
    if scenario.volume.journal_mode() != JournalMode::Off {
        match crate::journal::read_image(&mut driver, crate::journal::PAGE_RECORDS) {
            Ok(JournalRead::Read {
                records, lost: 0, ..
            }) => {
                let pending = records
                    .iter()
                    .filter(|r| r.flags.get() & RECORD_COMPLETED == 0)
                    .count();
                if pending > passed_through {
                    report.stuck_records += 1;
                    report.problems.push(format!(
                        "{name} [{what}]: {pending} journal records left pending, {passed_through} requests passed through"
                    ));
                }
            }
            other if !fired => {
                report.stuck_records += 1;
                report.problems.push(format!(
                    "{name} [{what}]: the journal could not be read whole without a fault: {other:?}"
                ));
            }
            _ => {}
        }
    }
    report.calls = calls;
    report.fired = fired;
    for e in driver.errors() {
        report.misuse += 1;
        report
            .problems
            .push(format!("{name} [{what}]: misuse: {e}"));
    }
    let leaks = driver.unload()?;
    if !leaks.is_empty() {
        report.leaks += 1;
        report
            .problems
            .push(format!("{name} [{what}]: leaked after unload {leaks:?}"));
    }
    Ok(report)
}

fn absorb(summary: &mut FaultSummary, report: RunReport) {
    summary.requests += report.requests;
    summary.leaks += report.leaks;
    summary.misuse += report.misuse;
    summary.undocumented += report.undocumented;
    summary.vdl_answers += report.vdl_answers;
    summary.stuck_records += report.stuck_records;
    summary.problems.extend(report.problems);
}

/// The variants every scenario also runs in.
fn variants() -> Vec<(&'static str, Variant)> {
    let c = shapes().constants;
    let base = Variant::AS_WRITTEN;
    vec![
        (
            "pre-operation at APC_LEVEL",
            Variant {
                pre_irql: c.apc_level,
                ..base
            },
        ),
        (
            "post-operation at DISPATCH_LEVEL",
            Variant {
                post_irql: c.dispatch_level,
                ..base
            },
        ),
        (
            "IRP_MN_KERNEL_CALL from kernel mode",
            Variant {
                kernel_requests: Some(c.irp_mn_kernel_call),
                ..base
            },
        ),
        (
            "IRP_MN_USER_FS_REQUEST from kernel mode",
            Variant {
                kernel_requests: Some(c.irp_mn_user_fs_request),
                ..base
            },
        ),
        (
            "FsContext without an advanced header",
            Variant {
                foreign_header: Some(ForeignHeader::NotAdvanced),
                ..base
            },
        ),
        (
            "FsContext with a bogus valid data length of 0",
            Variant {
                foreign_header: Some(ForeignHeader::Advanced(0)),
                ..base
            },
        ),
        (
            "FsContext with a bogus valid data length of 4096",
            Variant {
                foreign_header: Some(ForeignHeader::Advanced(4096)),
                ..base
            },
        ),
    ]
}

/// Runs every scenario of `dir` (or the first `limit`) under every fault and variant.
///
/// # Errors
/// A scenario cannot be read, or the harness itself fails.
pub fn run_all(image: &[u8], dir: &Path, limit: Option<usize>) -> Result<FaultSummary> {
    let files = odx_sim::scenario::scenario_files(dir)
        .with_context(|| format!("reading {}", dir.display()))?;
    let mut summary = FaultSummary::default();
    for path in files.iter().take(limit.unwrap_or(usize::MAX)) {
        let written = Scenario::load(path).map_err(|e| anyhow!("{e}"))?;
        summary.scenarios += 1;
        let off = crate::diff::journal_off_variant(&written);
        summary.journal_off += usize::from(off.is_some());
        for scenario in core::iter::once(written).chain(off) {
            run_scenario_faults(image, &scenario, &mut summary)?;
        }
    }
    Ok(summary)
}

/// [`run_all`]'s runs of one scenario: clean, every variant, every fault.
fn run_scenario_faults(
    image: &[u8],
    scenario: &Scenario,
    summary: &mut FaultSummary,
) -> Result<()> {
    let clean = run_once(image, scenario, None, &Variant::AS_WRITTEN, "no fault")?;
    let counts = clean.calls.clone();
    absorb(summary, clean);
    for (what, variant) in variants() {
        summary.variants += 1;
        let report = run_once(image, scenario, None, &variant, what)?;
        absorb(summary, report);
    }
    inject_each(image, scenario, &counts, &Point::ALL, summary)
}

/// Every call of each of `points` that the clean run made (`counts`) failing once with each of
/// its documented statuses.
fn inject_each(
    image: &[u8],
    scenario: &Scenario,
    counts: &BTreeMap<Point, usize>,
    points: &[Point],
    summary: &mut FaultSummary,
) -> Result<()> {
    for &point in points {
        for nth in 0..counts.get(&point).copied().unwrap_or(0) {
            for &status in point.statuses() {
                let fault = Fault { point, nth, status };
                let what = format!("{point:?} call {nth} fails with {status}");
                let report = run_once(image, scenario, Some(fault), &Variant::AS_WRITTEN, &what)?;
                if report.fired {
                    summary.injected += 1;
                }
                absorb(summary, report);
            }
        }
    }
    Ok(())
}

/// [`run_all`]'s fault loop for one scenario and the given routines only (every call of each
/// failing once with each documented status), without the variants (for tests).
///
/// # Errors
/// As [`run_all`].
pub fn run_points(image: &[u8], scenario: &Scenario, points: &[Point]) -> Result<FaultSummary> {
    let mut summary = FaultSummary {
        scenarios: 1,
        ..FaultSummary::default()
    };
    let clean = run_once(image, scenario, None, &Variant::AS_WRITTEN, "no fault")?;
    let counts = clean.calls.clone();
    absorb(&mut summary, clean);
    inject_each(image, scenario, &counts, points, &mut summary)?;
    Ok(summary)
}

/// The calls a scenario's clean run makes, per routine (for tests).
///
/// # Errors
/// As [`run_all`].
pub fn clean_counts(image: &[u8], scenario: &Scenario) -> Result<BTreeMap<Point, usize>> {
    Ok(run_once(image, scenario, None, &Variant::AS_WRITTEN, "no fault")?.calls)
}
