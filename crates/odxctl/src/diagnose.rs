//! `odxctl diagnose`: every reason ODX will not happen between two files, and the one that
//! decides. The reasoning is written once, over facts gathered by a [`Probe`]: the simulated
//! stack's (`diagnose_sim`) or Windows' (`windows::probe`). Every rule comes from odx-core:
//! the I/O manager's opt-in check (`iomgr::aggregate_supported_features`, `required_feature`,
//! `filter_not_supported`), odxflt's policy (`policy::PolicyMode`), and odxflt's validation
//! (`validate::decide` over the probed facts, which names the refusing check and its status).

use std::fmt::Write as _;
use std::io::Write;

use odx_core::flags::{FileAttributes, StreamMarkers, SupportedFeatures, VolumeFlags};
use odx_core::governance::{Needs, RuleSet, RuleSubject, VolumeNames, text_lines};
use odx_core::iomgr::{
    FilterSupportedFeaturesMode, RequestorMode, aggregate_supported_features, filter_not_supported,
    required_feature,
};
use odx_core::policy::PolicyMode;
use odx_core::port::{StatsReply, StorageReport};
use odx_core::stats::OpCounts;
use odx_core::storage::StorageCapability;
use odx_core::validate::{Check, OffloadRequest, decide};
use odx_core::wire::{OffloadReadInput, OffloadWriteInput, StorageOffloadToken, WireStruct};
use odx_core::{
    ByteRange, HandleFacts, LockIntent, NtStatus, OffloadFacts, OffloadOp, Rules, StreamKind,
    StreamSizes, VolumeFacts,
};
use serde_json::{Value, json};

use crate::codes::status_line;
use crate::port_cmd::{
    backoff_setting, backoffs, interrupt_time, limits_text, op_word, storage_json,
};
use crate::text::{bytes, duration};
use crate::{CmdResult, Failure};

/// Files smaller than this are copied the classic way by the Windows copy engine.
pub const COPY_ENGINE_MIN: u64 = odx_sim::copy_engine::MIN_OFFLOAD_SIZE;

/// One filter instance on a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterFact {
    /// Filter name.
    pub name: String,
    /// Altitude (decimal string), empty when unknown.
    pub altitude: String,
    /// Its `SupportedFeatures` (`None`: could not be read — counted as 0, as Windows does).
    pub features: Option<SupportedFeatures>,
}

/// The storage's copy-offload property (`DEVICE_COPY_OFFLOAD_DESCRIPTOR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageFact {
    /// The storage implements offload read (POPULATE TOKEN).
    pub read: bool,
    /// The storage implements offload write (WRITE USING TOKEN).
    pub write: bool,
    /// `MaximumTransferSize`, bytes.
    pub max_transfer: u64,
    /// `OptimalTransferCount` (× the sector), bytes.
    pub optimal_transfer: u64,
    /// `DefaultTokenLifetime`, ms.
    pub default_ttl_ms: u64,
    /// `MaximumTokenLifetime`, ms.
    pub max_ttl_ms: u64,
}

/// A volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeFact {
    /// How the user knows it (`C:`, `\\?\Volume{…}`, `sim:0`).
    pub name: String,
    /// What odxflt caches about it (file system, sector size, read-only / dismounted flags).
    pub facts: VolumeFacts,
    /// Attached filters, odxflt included when attached.
    pub filters: Vec<FilterFact>,
    /// odxflt's policy there (`None`: odxflt is not loaded or not attached).
    pub policy: Option<PolicyMode>,
    /// The copy-offload property of the storage below (`None`: not reported).
    pub storage: Option<StorageFact>,
    /// Identity of the storage (device number, serial, …): tokens are honoured only by the
    /// storage that issued them.
    pub storage_id: Option<String>,
    /// What odxflt itself knows about the storage (its port's reply for this volume; `None`:
    /// odxflt not attached, not reachable, or its slot for the volume not identifiable).
    pub odxflt_storage: Option<OdxfltStorage>,
}

/// odxflt's view of a volume's storage: the storage section of its stats reply, and the
/// refusals from below it counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OdxfltStorage {
    /// Capability from instance setup, back-off period and active back-offs.
    pub report: StorageReport,
    /// Forwarded reads that came back "not supported" (`STATUS_NOT_SUPPORTED`, or
    /// `STATUS_DEVICE_FEATURE_NOT_SUPPORTED` in monitor mode, where odxflt maps nothing).
    pub read_refusals: u64,
    /// Same for writes.
    pub write_refusals: u64,
}

impl OdxfltStorage {
    /// From a volume's stats reply; `None` for a capability code this build does not know.
    #[must_use]
    pub fn from_reply(reply: &StatsReply) -> Option<Self> {
        let refusals = |c: &odx_core::stats::OpCounts| {
            [
                NtStatus::STATUS_NOT_SUPPORTED,
                NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED,
            ]
            .iter()
            .filter_map(|s| s.table_index())
            .filter_map(|i| c.below_by_status.get(i))
            .sum()
        };
        Some(Self {
            report: reply.storage.report()?,
            read_refusals: refusals(&OpCounts::from(&reply.read)),
            write_refusals: refusals(&OpCounts::from(&reply.write)),
        })
    }

    const fn refusals(&self, op: OffloadOp) -> u64 {
        match op {
            OffloadOp::Read => self.read_refusals,
            OffloadOp::Write => self.write_refusals,
        }
    }
}

/// A file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileFact {
    /// As given.
    pub path: String,
    /// End of file.
    pub size: u64,
    /// Attributes and markers.
    pub kind: StreamKind,
    /// Its volume.
    pub volume: VolumeFact,
}

/// What odxflt's rules are matched against for one probed file.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RuleView {
    /// The volume's device name (`\Device\HarddiskVolume3`; empty: unknown).
    pub device: String,
    /// Its DOS name (`D:`; empty: none).
    pub dos: String,
    /// Its GUID name (`\??\Volume{…}`; empty: unknown).
    pub guid: String,
    /// The file's path from the volume root (`\Backups\db.vhdx`).
    pub path: String,
}

/// Where the facts come from.
pub trait Probe {
    /// The facts of one file.
    ///
    /// # Errors
    /// The file (or its volume) cannot be examined.
    fn file(&mut self, path: &str) -> Result<FileFact, String>;
    /// `HKLM\SYSTEM\CurrentControlSet\Control\FileSystem\FilterSupportedFeaturesMode`.
    fn supported_features_mode(&mut self) -> FilterSupportedFeaturesMode;
    /// odxflt's rules in force, as text (`None`: odxflt not reachable, or no rules support).
    fn odxflt_rules(&mut self) -> Option<String> {
        None
    }
    /// The names the rules see for `file` (`None`: cannot be learnt; rules are not matched).
    fn rule_view(&mut self, file: &FileFact) -> Option<RuleView> {
        let _ = file;
        None
    }
}

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// ODX will not happen because of it.
    Blocks,
    /// Worth knowing; does not stop ODX.
    Note,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Blocks or note.
    pub severity: Severity,
    /// What it is about (a filter, an attribute, the storage…).
    pub subject: String,
    /// What was found.
    pub text: String,
    /// The status the request gets, if it is refused.
    pub status: Option<NtStatus>,
    /// What to do.
    pub fix: String,
}

/// The diagnosis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnosis {
    /// Source facts.
    pub source: FileFact,
    /// Destination facts (`None`: only the source side was examined).
    pub destination: Option<FileFact>,
    /// `FilterSupportedFeaturesMode`.
    pub mode: FilterSupportedFeaturesMode,
    /// Findings, in the order a copy meets them.
    pub findings: Vec<Finding>,
}

impl Diagnosis {
    /// The first blocking finding: the culprit.
    #[must_use]
    pub fn culprit(&self) -> Option<&Finding> {
        self.findings
            .iter()
            .find(|f| f.severity == Severity::Blocks)
    }

    /// The last line: the culprit and the fix, or "no reason found".
    #[must_use]
    pub fn verdict_line(&self) -> String {
        match self.culprit() {
            Some(f) => {
                let status = f
                    .status
                    .map(|s| format!(" ({})", win32_or_name(s)))
                    .unwrap_or_default();
                format!(
                    "culprit: {}: {}{status} — fix: {}",
                    f.subject, f.text, f.fix
                )
            }
            None => {
                "culprit: none — no reason found: ODX should happen between these files".to_owned()
            }
        }
    }
}

fn win32_or_name(status: NtStatus) -> String {
    match status.to_win32() {
        Some(w) => format!("{} {status}", w.0),
        None => status.to_string(),
    }
}

/// The probed file as the core's facts, for `validate::decide`.
struct Probed<'a>(&'a FileFact, u64);

impl OffloadFacts for Probed<'_> {
    fn volume(&mut self) -> Result<VolumeFacts, NtStatus> {
        // Whether the storage can offload (MS-FSA read 2 / write 3) is the storage findings'
        // (odxflt's own view, or the property query): validation judges everything else.
        let mut facts = self.0.volume.facts;
        facts.flags |= VolumeFlags::OFFLOAD_READ_SUPPORTED | VolumeFlags::OFFLOAD_WRITE_SUPPORTED;
        Ok(facts)
    }
    fn handle(&mut self) -> Result<HandleFacts, NtStatus> {
        Ok(HandleFacts { closed: false })
    }
    fn stream_kind(&mut self) -> Result<StreamKind, NtStatus> {
        Ok(self.0.kind)
    }
    fn stream_sizes(&mut self) -> Result<StreamSizes, NtStatus> {
        Ok(StreamSizes {
            end_of_file: self.1,
            valid_data_length: self.1,
            delete_pending: false,
        })
    }
    fn lock_conflict(&mut self, _: ByteRange, _: LockIntent) -> Result<bool, NtStatus> {
        Ok(false)
    }
    // Validation never asks for names (only the rules and the journal do).
    fn process_image(&mut self) -> Option<&[u16]> {
        None
    }
    fn file_path(&mut self) -> Option<&[u16]> {
        None
    }
    fn known_names(&self) -> (Option<&[u16]>, Option<&[u16]>) {
        (None, None)
    }
}

/// What the core's validation says about a whole-file, sector-aligned request on `file` whose
/// end of file is `eof` (the copy engine pre-sizes the destination to the source's size).
fn validation(op: OffloadOp, file: &FileFact, eof: u64) -> Option<(Check, NtStatus)> {
    let sector = file.volume.facts.sector_size;
    let length = sector.round_up(eof.max(1)).unwrap_or(u64::MAX);
    let mut buffer = [0u8; OffloadWriteInput::SIZE];
    let (input_len, output_len) = match op {
        OffloadOp::Read => {
            let _ = OffloadReadInput::new(0, length, 0).serialize_into(&mut buffer);
            (
                OffloadReadInput::SIZE,
                odx_core::wire::OffloadReadOutput::SIZE,
            )
        }
        OffloadOp::Write => {
            let input = OffloadWriteInput::new(0, length, 0, StorageOffloadToken::zero_data());
            let _ = input.serialize_into(&mut buffer);
            (
                OffloadWriteInput::SIZE,
                odx_core::wire::OffloadWriteOutput::SIZE,
            )
        }
    };
    let request = OffloadRequest {
        input: buffer.get(..input_len).unwrap_or_default(),
        output_len,
    };
    let decision = decide(op, request, &mut Probed(file, eof), &Rules::DOCUMENTED);
    decision
        .verdict
        .completion_status()
        .filter(|s| !s.is_success())
        .map(|s| (decision.check, s))
}

/// Names of the attributes and markers with which NTFS refuses offload.
fn refusing_names(kind: &StreamKind) -> Vec<&'static str> {
    let mut names = Vec::new();
    let attributes = [
        (FileAttributes::COMPRESSED, "compressed"),
        (FileAttributes::ENCRYPTED, "encrypted"),
        (FileAttributes::SPARSE_FILE, "sparse"),
        (FileAttributes::DIRECTORY, "directory"),
    ];
    for (flag, name) in attributes {
        if kind.attributes.contains(flag) && FileAttributes::OFFLOAD_REFUSING.contains(flag) {
            names.push(name);
        }
    }
    let markers = [
        (StreamMarkers::TRANSACTED, "transacted (TxF)"),
        (StreamMarkers::METADATA, "NTFS metadata file"),
        (StreamMarkers::NON_DATA_STREAM, "non-data stream"),
    ];
    for (flag, name) in markers {
        if kind.markers.contains(flag) {
            names.push(name);
        }
    }
    names
}

fn attribute_fix(name: &str) -> &'static str {
    match name {
        "compressed" => "uncompress it (compact /u FILE) or copy to an uncompressed folder",
        "encrypted" => "decrypt it (cipher /d FILE) or accept the classic copy",
        "sparse" => {
            "clear the sparse flag (fsutil sparse setflag FILE 0) or accept the classic copy"
        }
        "directory" => "name a file, not a directory",
        "transacted (TxF)" => "copy outside the TxF transaction",
        _ => "copy a regular data file",
    }
}

fn filter_findings(
    op: OffloadOp,
    side: &str,
    volume: &VolumeFact,
    mode: FilterSupportedFeaturesMode,
    findings: &mut Vec<Finding>,
) {
    let needed = required_feature(op);
    let stack = aggregate_supported_features(
        volume
            .filters
            .iter()
            .map(|f| f.features.unwrap_or_else(SupportedFeatures::empty)),
        mode,
    );
    if stack.contains(needed) {
        return;
    }
    let status = filter_not_supported(op);
    let what = op_name(op);
    if mode == FilterSupportedFeaturesMode::NeverOptIn && !volume.filters.is_empty() {
        findings.push(Finding {
            severity: Severity::Blocks,
            subject: "FilterSupportedFeaturesMode".to_owned(),
            text: format!(
                "is 1: no filter on {} ({side}) may opt in, {what} is blocked",
                volume.name
            ),
            status: Some(status),
            fix: "set HKLM\\SYSTEM\\CurrentControlSet\\Control\\FileSystem\\FilterSupportedFeaturesMode to 0 and reboot".to_owned(),
        });
        return;
    }
    for f in &volume.filters {
        let declared = f.features.unwrap_or_else(SupportedFeatures::empty);
        if declared.contains(needed) {
            continue;
        }
        let altitude = if f.altitude.is_empty() {
            String::new()
        } else {
            format!(" at altitude {}", f.altitude)
        };
        findings.push(Finding {
            severity: Severity::Blocks,
            subject: format!("filter {}", f.name),
            text: format!(
                "{altitude} on {} ({side}) declares SupportedFeatures {:#x}: {what} is blocked",
                volume.name,
                declared.bits()
            )
            .trim_start()
            .to_owned(),
            status: Some(status),
            fix: format!(
                "update {} to a version that declares SupportedFeatures 0x3, or detach it (fltmc detach {} {})",
                f.name,
                f.name,
                fltmc_volume(&volume.name)
            ),
        });
    }
}

/// The volume as `fltmc` takes it: a name shown as `D: (\\?\Volume{…}\)` is `D:`.
fn fltmc_volume(name: &str) -> &str {
    name.split_once(" (").map_or(name, |(mount, _)| mount)
}

const fn op_name(op: OffloadOp) -> &'static str {
    match op {
        OffloadOp::Read => "offload read",
        OffloadOp::Write => "offload write",
    }
}

fn policy_findings(op: OffloadOp, side: &str, volume: &VolumeFact, findings: &mut Vec<Finding>) {
    match volume.policy {
        Some(PolicyMode::Veto) => findings.push(Finding {
            severity: Severity::Blocks,
            subject: "odxflt policy".to_owned(),
            text: format!(
                "veto on {} ({side}): odxflt refuses {} on its own account",
                volume.name,
                op_name(op)
            ),
            status: Some(filter_not_supported(op)),
            fix: "odxctl policy enforce (or set Parameters\\DefaultPolicy = 0) if no product needs to see the data".to_owned(),
        }),
        Some(PolicyMode::Monitor) => findings.push(Finding {
            severity: Severity::Note,
            subject: "odxflt policy".to_owned(),
            text: format!(
                "monitor on {} ({side}): odxflt records but never refuses",
                volume.name
            ),
            status: None,
            fix: String::new(),
        }),
        Some(PolicyMode::Enforce) | None => {}
    }
}

/// A probed request as the rules see it.
struct RuleProbe {
    op: OffloadOp,
    length: u64,
    size: u64,
    process: Option<Vec<u16>>,
    path: Vec<u16>,
    device: Vec<u16>,
    dos: Vec<u16>,
    guid: Vec<u16>,
}

impl RuleSubject for RuleProbe {
    fn op(&self) -> OffloadOp {
        self.op
    }
    fn requestor(&self) -> RequestorMode {
        RequestorMode::User
    }
    fn length(&self) -> u64 {
        self.length
    }
    fn volume(&self) -> VolumeNames<'_> {
        VolumeNames {
            device: &self.device,
            dos: &self.dos,
            guid: &self.guid,
        }
    }
    fn process_image(&mut self) -> Option<&[u16]> {
        self.process.as_deref().filter(|p| !p.is_empty())
    }
    fn file_path(&mut self) -> Option<&[u16]> {
        Some(self.path.as_slice()).filter(|p| !p.is_empty())
    }
    fn file_size(&mut self) -> Option<u64> {
        Some(self.size)
    }
}

/// What odxflt's rules say about one side of the copy: the first matching rule, as a finding.
/// Returns whether a rule matched (then the volume's mode does not apply).
#[allow(clippy::too_many_arguments)]
fn rule_findings(
    op: OffloadOp,
    side: &str,
    file: &FileFact,
    eof: u64,
    rules: &RuleSet,
    view: &RuleView,
    process: Option<&str>,
    findings: &mut Vec<Finding>,
) -> bool {
    let wide = |s: &str| s.encode_utf16().collect::<Vec<u16>>();
    let sector = file.volume.facts.sector_size;
    let mut subject = RuleProbe {
        op,
        length: sector.round_up(eof.max(1)).unwrap_or(u64::MAX),
        size: eof,
        process: process.map(wide),
        path: wide(&view.path),
        device: wide(&view.device),
        dos: wide(&view.dos),
        guid: wide(&view.guid),
    };
    let matched = rules.evaluate(&mut subject);
    let rule_text = |i: usize| rules.get(i).map(ToString::to_string).unwrap_or_default();
    let who = process.map_or_else(String::new, |p| format!(" by {p}"));
    match matched {
        Some((i, PolicyMode::Veto)) => findings.push(Finding {
            severity: Severity::Blocks,
            subject: format!("odxflt rule {i}"),
            text: format!(
                "`{}` matches the {side}'s {}{who}: odxflt refuses it on the rule's account",
                rule_text(i),
                op_name(op)
            ),
            status: Some(filter_not_supported(op)),
            fix: format!("odxctl rules remove {i}"),
        }),
        Some((i, PolicyMode::Monitor)) => findings.push(Finding {
            severity: Severity::Note,
            subject: format!("odxflt rule {i}"),
            text: format!(
                "`{}` matches the {side}'s {}{who}: odxflt lets it down untouched (NTFS and the storage decide) and only counts it",
                rule_text(i),
                op_name(op)
            ),
            status: None,
            fix: format!("odxctl rules remove {i} (to have odxflt validate it)"),
        }),
        Some((i, PolicyMode::Enforce)) => findings.push(Finding {
            severity: Severity::Note,
            subject: format!("odxflt rule {i}"),
            text: format!(
                "`{}` matches the {side}'s {}{who}: odxflt validates it, whatever the volume's policy",
                rule_text(i),
                op_name(op)
            ),
            status: None,
            fix: String::new(),
        }),
        None => {}
    }
    if process.is_none() {
        // Rules before the match (or all, without one) that name a process could not be
        // checked: say which would veto if the copying process were named.
        let until = matched.map_or(rules.len(), |(i, _)| i);
        for (i, rule) in rules.rules().iter().enumerate().take(until) {
            if rule.action == PolicyMode::Veto && rule.needs().contains(Needs::PROCESS) {
                findings.push(Finding {
                    severity: Severity::Note,
                    subject: format!("odxflt rule {i}"),
                    text: format!(
                        "`{rule}` names a process: it vetoes the {side}'s {} if the copy is made by that process (--process NAME checks it)",
                        op_name(op)
                    ),
                    status: None,
                    fix: format!("odxctl rules remove {i}"),
                });
            }
        }
    }
    matched.is_some()
}

fn file_findings(op: OffloadOp, side: &str, file: &FileFact, eof: u64, out: &mut Vec<Finding>) {
    let names = refusing_names(&file.kind);
    let validated = validation(op, file, eof);
    for name in &names {
        out.push(Finding {
            severity: Severity::Blocks,
            subject: format!("{side} {}", file.path),
            text: format!("is {name}: NTFS refuses {} for it", op_name(op)),
            status: Some(match op {
                OffloadOp::Read => NtStatus::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED,
                OffloadOp::Write => NtStatus::STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED,
            }),
            fix: attribute_fix(name).to_owned(),
        });
    }
    if let Some((check, status)) = validated {
        if check != Check::StreamKind || names.is_empty() {
            out.push(Finding {
                severity: Severity::Blocks,
                subject: format!("{side} {}", file.path),
                text: format!(
                    "odxflt's validation refuses {} (check {check:?})",
                    op_name(op)
                ),
                status: Some(status),
                fix: check_fix(check).to_owned(),
            });
        }
    }
    let sector = u64::from(file.volume.facts.sector_size.get());
    if file.size % sector != 0 {
        out.push(Finding {
            severity: Severity::Note,
            subject: format!("{side} {}", file.path),
            text: format!(
                "size {} is not a multiple of the {sector}-byte logical sector: the last offload request is rounded up and truncated at end of file",
                file.size
            ),
            status: None,
            fix: String::new(),
        });
    }
}

const fn check_fix(check: Check) -> &'static str {
    match check {
        Check::FileSystemImplementsOffload => "copy between NTFS or ReFS volumes",
        Check::VolumeMounted => "mount the volume again",
        Check::VolumeWritable => "make the destination volume writable",
        _ => "see odxctl explain for the status",
    }
}

const STORAGE_FIX: &str = "check that the array supports ODX (copy offload / SCSI XCOPY LID4) and runs firmware that enables it, and that source and destination LUNs are on the same array (a LUN pair it can copy between)";

/// odxflt's own knowledge of the storage (descriptor at instance setup, learned back-off), which
/// decides at MS-FSA read 2 / write 3 before anything about the file is asked. `true` when it
/// produced a blocking finding for `op`.
fn odxflt_storage_findings(
    op: OffloadOp,
    side: &str,
    volume: &VolumeFact,
    storage: &OdxfltStorage,
    findings: &mut Vec<Finding>,
) -> bool {
    let subject = format!("the storage of {}", volume.name.trim_end_matches(':'));
    let instance = format!(
        "fltmc detach odxflt {v} then fltmc attach odxflt {v}",
        v = fltmc_volume(&volume.name)
    );
    let report = &storage.report;
    // In monitor mode odxflt refuses nothing: the request goes down and the storage answers
    // itself, unmapped.
    let monitor = volume.policy == Some(PolicyMode::Monitor);
    let (who, status) = if monitor {
        (
            "odxflt (monitor) lets it go down and the storage refuses it itself",
            NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED,
        )
    } else {
        ("odxflt refuses it there", NtStatus::STATUS_NOT_SUPPORTED)
    };
    if report.capability == StorageCapability::NotSupported {
        findings.push(Finding {
            severity: Severity::Blocks,
            subject,
            text: format!(
                "does not support offload ({side}, {}): its copy-offload descriptor query answered not supported at instance setup; {who}",
                op_name(op)
            ),
            status: Some(status),
            fix: format!(
                "{STORAGE_FIX}; after enabling it, restart odxflt's instance so it asks again ({instance}), or place the files on ODX-capable storage"
            ),
        });
        return true;
    }
    if let Some(b) = backoffs(report).into_iter().find(|b| b.op == op) {
        let counted = match storage.refusals(op) {
            0 => String::new(),
            n => format!("; odxflt counted {n} such answer(s) from below"),
        };
        findings.push(Finding {
            severity: Severity::Blocks,
            subject,
            text: format!(
                "does not support offload ({side}, {}): an offload {} was refused below odxflt at interrupt time {} with STATUS_NOT_SUPPORTED or STATUS_DEVICE_FEATURE_NOT_SUPPORTED{counted} (DEVICE_FEATURE_NOT_SUPPORTED comes from the storage stack; NOT_SUPPORTED may also come from the file system or a filter below odxflt); back-off until interrupt time {} (ends in {}): {who}",
                op_name(op),
                op_word(op),
                interrupt_time(b.refused_at),
                interrupt_time(b.until),
                duration(b.ends_in)
            ),
            status: Some(status),
            fix: format!(
                "{STORAGE_FIX}; then wait for the back-off to end (in {}) or restart odxflt's instance ({instance}); Parameters\\OffloadBackoffSeconds sets the period ({})",
                duration(b.ends_in),
                backoff_setting(report.backoff_seconds)
            ),
        });
        return true;
    }
    if report.capability == StorageCapability::Unknown {
        findings.push(Finding {
            severity: Severity::Note,
            subject,
            text: format!(
                "({side}) did not answer odxflt's copy-offload property query: odxflt forwards {} and learns from the storage's answers",
                op_name(op)
            ),
            status: None,
            fix: String::new(),
        });
    }
    false
}

/// odxflt's view of the storage, in its place in the check order (MS-FSA read 2 / write 3,
/// before any file fact).
fn odxflt_view_findings(
    op: OffloadOp,
    side: &str,
    volume: &VolumeFact,
    findings: &mut Vec<Finding>,
) {
    if let Some(storage) = &volume.odxflt_storage {
        odxflt_storage_findings(op, side, volume, storage, findings);
    }
}

/// The storage as user mode's property query describes it: only when odxflt's own view is not
/// available (odxflt's view decides the request).
fn storage_findings(op: OffloadOp, side: &str, volume: &VolumeFact, findings: &mut Vec<Finding>) {
    if volume.odxflt_storage.is_some() {
        return;
    }
    let supported = volume.storage.map(|s| match op {
        OffloadOp::Read => s.read,
        OffloadOp::Write => s.write,
    });
    if supported != Some(true) {
        findings.push(Finding {
            severity: Severity::Blocks,
            subject: format!("the storage of {}", volume.name.trim_end_matches(':')),
            text: format!(
                "({side}) does not report copy offload ({})",
                op_name(op)
            ),
            status: Some(NtStatus::STATUS_NOT_SUPPORTED),
            fix: "place the files on storage that implements ODX (an ODX-capable array, or a VHDX on one)".to_owned(),
        });
    }
}

/// Examines `src` (and `dst`) through `probe`.
///
/// # Errors
/// A file cannot be examined.
pub fn diagnose<P: Probe + ?Sized>(
    probe: &mut P,
    src: &str,
    dst: Option<&str>,
    process: Option<&str>,
) -> Result<Diagnosis, String> {
    let source = probe.file(src)?;
    let destination = dst.map(|d| probe.file(d)).transpose()?;
    let mode = probe.supported_features_mode();
    let mut findings = Vec::new();
    let target = destination.as_ref();
    // The order a copy meets them: the I/O manager's opt-in check, odxflt's policy, odxflt's
    // storage view (MS-FSA read 2 / write 3), odxflt's validation (volume, file), the storage
    // as user mode sees it; read side first.
    filter_findings(
        OffloadOp::Read,
        "source",
        &source.volume,
        mode,
        &mut findings,
    );
    if let Some(d) = target {
        filter_findings(
            OffloadOp::Write,
            "destination",
            &d.volume,
            mode,
            &mut findings,
        );
    }
    // odxflt's rules, then (when none matches) the volume's mode.
    let rules = probe
        .odxflt_rules()
        .and_then(|text| RuleSet::try_parse_lines(text_lines(&text)).ok())
        .filter(|set| !set.is_empty());
    let mut sides = vec![(OffloadOp::Read, "source", &source, source.size)];
    if let Some(d) = target {
        sides.push((OffloadOp::Write, "destination", d, d.size.max(source.size)));
    }
    for (op, side, file, eof) in sides {
        let view = rules.as_ref().and_then(|_| probe.rule_view(file));
        let ruled = match (&rules, &view) {
            (Some(set), Some(view)) if file.volume.policy.is_some() => {
                rule_findings(op, side, file, eof, set, view, process, &mut findings)
            }
            _ => false,
        };
        if !ruled {
            policy_findings(op, side, &file.volume, &mut findings);
        }
    }
    odxflt_view_findings(OffloadOp::Read, "source", &source.volume, &mut findings);
    if let Some(d) = target {
        odxflt_view_findings(OffloadOp::Write, "destination", &d.volume, &mut findings);
    }
    file_findings(
        OffloadOp::Read,
        "source",
        &source,
        source.size,
        &mut findings,
    );
    if let Some(d) = target {
        file_findings(
            OffloadOp::Write,
            "destination",
            d,
            d.size.max(source.size),
            &mut findings,
        );
    }
    storage_findings(OffloadOp::Read, "source", &source.volume, &mut findings);
    if let Some(d) = target {
        storage_findings(OffloadOp::Write, "destination", &d.volume, &mut findings);
        if source.volume.storage_id != d.volume.storage_id || source.volume.storage_id.is_none() {
            // Different disk numbers can still be LUNs of one array, so this is a note: the
            // offload write with a foreign token is what fails (STATUS_INVALID_TOKEN).
            findings.push(Finding {
                severity: Severity::Note,
                subject: "storage".to_owned(),
                text: format!(
                    "{} and {} are on different (or unidentified) storage devices ({} / {}): a token is honoured only by the array that issued it",
                    source.volume.name,
                    d.volume.name,
                    source.volume.storage_id.as_deref().unwrap_or("?"),
                    d.volume.storage_id.as_deref().unwrap_or("?")
                ),
                status: Some(NtStatus::STATUS_INVALID_TOKEN),
                fix: String::new(),
            });
        }
    }
    if source.size < COPY_ENGINE_MIN {
        findings.push(Finding {
            severity: Severity::Blocks,
            subject: format!("source {}", source.path),
            text: format!(
                "is {}: the Windows copy engine copies files below {} the classic way",
                bytes(source.size),
                bytes(COPY_ENGINE_MIN)
            ),
            status: None,
            fix: "nothing to fix: small files do not use ODX".to_owned(),
        });
    }
    Ok(Diagnosis {
        source,
        destination,
        mode,
        findings,
    })
}

fn attributes_text(kind: &StreamKind) -> String {
    let names = refusing_names(kind);
    if names.is_empty() {
        "none that refuse offload".to_owned()
    } else {
        names.join(", ")
    }
}

fn volume_flags(facts: &VolumeFacts) -> String {
    let mut flags = Vec::new();
    if facts.flags.contains(VolumeFlags::READ_ONLY) {
        flags.push("read-only");
    }
    if facts.flags.contains(VolumeFlags::DISMOUNTED) {
        flags.push("dismounted");
    }
    if flags.is_empty() {
        "mounted, writable".to_owned()
    } else {
        flags.join(", ")
    }
}

fn describe_file(out: &mut String, side: &str, file: &FileFact) {
    let v = &file.volume;
    let _ = writeln!(
        out,
        "{side:<12} {}  {} bytes  attributes: {}",
        file.path,
        file.size,
        attributes_text(&file.kind)
    );
    let _ = writeln!(
        out,
        "  volume     {}  {:?}  logical sector {}  {}",
        v.name,
        v.facts.file_system,
        v.facts.sector_size.get(),
        volume_flags(&v.facts)
    );
    let _ = writeln!(
        out,
        "  odxflt     {}",
        v.policy.map_or("not attached".to_owned(), |p| format!(
            "policy {}",
            p.name()
        ))
    );
    for f in &v.filters {
        let features = f.features.map_or("unknown (counts as 0)".to_owned(), |s| {
            format!("{:#x}", s.bits())
        });
        let altitude = if f.altitude.is_empty() {
            "-"
        } else {
            &f.altitude
        };
        let _ = writeln!(
            out,
            "  filter     {:<12} altitude {altitude:<8} SupportedFeatures {features}",
            f.name
        );
    }
    match &v.storage {
        Some(s) => {
            let _ = writeln!(
                out,
                "  storage    copy offload read {} write {}, max transfer {}, optimal {}, token lifetime {} ms (max {} ms){}",
                yes(s.read),
                yes(s.write),
                bytes(s.max_transfer),
                bytes(s.optimal_transfer),
                s.default_ttl_ms,
                s.max_ttl_ms,
                v.storage_id
                    .as_ref()
                    .map(|id| format!(", id {id}"))
                    .unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(out, "  storage    no copy-offload property reported");
        }
    }
    if let Some(o) = &v.odxflt_storage {
        let r = &o.report;
        let what = match &r.capability {
            StorageCapability::Supported(l) => format!("supported: {}", limits_text(l)),
            StorageCapability::NotSupported => "not supported (descriptor query)".to_owned(),
            StorageCapability::Unknown => "unknown (property query not answered)".to_owned(),
        };
        let _ = writeln!(
            out,
            "  odxflt's storage view {what}; back-off {}",
            backoff_setting(r.backoff_seconds)
        );
        for b in backoffs(r) {
            let _ = writeln!(
                out,
                "             {} back-off ends in {} (at interrupt time {})",
                op_word(b.op),
                duration(b.ends_in),
                interrupt_time(b.until)
            );
        }
    }
}

const fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The human report.
#[must_use]
pub fn render(d: &Diagnosis) -> String {
    let mut out = String::new();
    describe_file(&mut out, "source", &d.source);
    if let Some(dst) = &d.destination {
        describe_file(&mut out, "destination", dst);
    }
    let _ = writeln!(
        out,
        "FilterSupportedFeaturesMode {}",
        d.mode.registry_value()
    );
    if d.findings.is_empty() {
        let _ = writeln!(out, "findings: none");
    } else {
        let _ = writeln!(out, "findings:");
    }
    for f in &d.findings {
        let tag = match f.severity {
            Severity::Blocks => "BLOCKS",
            Severity::Note => "note",
        };
        let status = f
            .status
            .map(|s| format!(" → {}", status_line(s)))
            .unwrap_or_default();
        let _ = writeln!(out, "  {tag:<6} {}: {}{status}", f.subject, f.text);
    }
    let _ = writeln!(out, "{}", d.verdict_line());
    out
}

fn file_json(file: &FileFact) -> Value {
    let v = &file.volume;
    json!({
        "path": file.path,
        "size": file.size,
        "attributes": refusing_names(&file.kind),
        "volume": {
            "name": v.name,
            "file_system": format!("{:?}", v.facts.file_system),
            "logical_sector": v.facts.sector_size.get(),
            "read_only": v.facts.flags.contains(VolumeFlags::READ_ONLY),
            "dismounted": v.facts.flags.contains(VolumeFlags::DISMOUNTED),
            "odxflt_policy": v.policy.map(PolicyMode::name),
            "filters": v.filters.iter().map(|f| json!({
                "name": f.name,
                "altitude": f.altitude,
                "supported_features": f.features.map(|s| s.bits()),
            })).collect::<Vec<_>>(),
            "storage": v.storage.map(|s| json!({
                "offload_read": s.read,
                "offload_write": s.write,
                "max_transfer": s.max_transfer,
                "optimal_transfer": s.optimal_transfer,
                "default_token_lifetime_ms": s.default_ttl_ms,
                "max_token_lifetime_ms": s.max_ttl_ms,
            })),
            "storage_id": v.storage_id,
            "odxflt_storage": v.odxflt_storage.as_ref().map(|o| {
                let mut doc = storage_json(&o.report);
                doc["read_refusals"] = o.read_refusals.into();
                doc["write_refusals"] = o.write_refusals.into();
                doc
            }),
        },
    })
}

fn finding_json(f: &Finding) -> Value {
    json!({
        "blocks": f.severity == Severity::Blocks,
        "subject": f.subject,
        "text": f.text,
        "status": f.status.map(|s| s.to_string()),
        "win32": f.status.and_then(NtStatus::to_win32).map(|w| w.0),
        "fix": f.fix,
    })
}

/// The JSON report.
#[must_use]
pub fn to_json(d: &Diagnosis) -> Value {
    json!({
        "source": file_json(&d.source),
        "destination": d.destination.as_ref().map(file_json),
        "filter_supported_features_mode": d.mode.registry_value(),
        "findings": d.findings.iter().map(finding_json).collect::<Vec<_>>(),
        "culprit": d.culprit().map(finding_json),
        "verdict": d.verdict_line(),
    })
}

/// Runs the diagnosis and prints it; exit status 0 when no reason was found, 1 otherwise.
///
/// # Errors
/// A file cannot be examined.
pub fn run<P: Probe + ?Sized>(
    out: &mut dyn Write,
    probe: &mut P,
    src: &str,
    dst: Option<&str>,
    process: Option<&str>,
    json: bool,
) -> CmdResult {
    let d = diagnose(probe, src, dst, process).map_err(Failure::input)?;
    if json {
        writeln!(out, "{}", to_json(&d))?;
    } else {
        write!(out, "{}", render(&d))?;
    }
    Ok(u8::from(d.culprit().is_some()))
}

#[cfg(test)]
mod tests {
    use super::fltmc_volume;

    #[test]
    fn fixes_name_the_volume_as_fltmc_takes_it() {
        assert_eq!(
            fltmc_volume("D: (\\\\?\\Volume{00000000-0000-0000-0000-000000000044}\\)"),
            "D:"
        );
        assert_eq!(fltmc_volume("sim:0"), "sim:0");
    }
}
