//! Scenario files (docs/scenarios.md): a volume, its files and locks, and steps with expected
//! statuses, run through the simulated stack.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use odx_core::FactKind;
use odx_core::engine::{TOKEN_KEY_LEN, token_for_key};
use odx_core::flags::{AccessMask, FileAttributes, StreamMarkers, SupportedFeatures};
use odx_core::governance::{
    DecidedBy as JournalDecidedBy, JournalMode, ParseReport, Record, RuleSet,
};
use odx_core::iomgr::{FilterSupportedFeaturesMode, RequestorMode};
use odx_core::lock::ByteRangeLock;
use odx_core::policy::PolicyMode;
use odx_core::storage::{CopyOffloadLimits, DEFAULT_BACKOFF_SECONDS};
use odx_core::validate::{Check, READ_ORDER, WRITE_ORDER};
use odx_core::wire::{
    OffloadReadInput, OffloadReadOutput, OffloadWriteInput, OffloadWriteOutput, StorageOffloadToken,
};
use odx_core::{FileSystemKind, NtStatus, SectorSize, WireStruct};
use serde::Deserialize;
use toml::Spanned;

pub use crate::disk::StorageQuery;
use crate::odxflt::FactCounts;
use crate::stack::{
    DEFAULT_PROCESS, DEFAULT_PROCESS_ID, DecidedBy, HandleId, OwnedVolumeNames, Requester, Stack,
    kernel_image_path, other_open, self_open,
};
use crate::store::{COPY_BUFFER, DataStore, FileId, MEM_MAX_FILE};
use crate::volume::{SimError, VolumeConfig};

/// The `[volume]` table.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct VolumeSpec {
    /// Logical bytes per sector.
    pub sector_size: u32,
    /// Mounted read-only.
    pub read_only: bool,
    /// Dismounted.
    pub dismounted: bool,
    /// The storage supports offload read.
    pub offload_read: bool,
    /// The storage supports offload write.
    pub offload_write: bool,
    /// `SupportedFeatures` of every other attached filter.
    pub filters: Vec<u32>,
    /// `FilterSupportedFeaturesMode`.
    pub supported_features_mode: u32,
    /// The engine's maximum bytes per token.
    pub max_transfer: u64,
    /// Default token lifetime, ms.
    pub default_ttl_ms: u64,
    /// Longest token lifetime granted, ms.
    pub max_ttl_ms: u64,
    /// `ntfs`, `refs` or `other`.
    pub file_system: FsName,
    /// MS-FSA `Volume.MaxFileSize`.
    pub max_file_size: u64,
    /// odxflt's policy mode: `enforce`, `monitor` or `veto`.
    pub policy: String,
    /// What odxflt's journal records (its `Parameters\Journal`): `off`, `decisions` (the
    /// default: names only of requests a rule matched) or `named` (every record named).
    pub journal: String,
    /// The volume's device name (a rule's `volume=` may name it; default
    /// [`DEFAULT_DEVICE_NAME`]).
    pub device_name: String,
    /// The volume's DOS name (default [`DEFAULT_DOS_NAME`]; empty: the volume has none).
    pub dos_name: String,
    /// The volume's GUID name (default [`DEFAULT_GUID_NAME`]; empty: the volume has none).
    pub guid_name: String,
}

/// `[volume] device_name`'s default.
pub const DEFAULT_DEVICE_NAME: &str = "\\Device\\HarddiskVolume2";
/// `[volume] dos_name`'s default.
pub const DEFAULT_DOS_NAME: &str = "D:";
/// `[volume] guid_name`'s default.
pub const DEFAULT_GUID_NAME: &str = "\\??\\Volume{4c1b2d3e-0000-0000-0000-000000000001}";

impl VolumeSpec {
    /// What odxflt's journal records (`journal`; checked when the scenario is read).
    #[must_use]
    pub fn journal_mode(&self) -> JournalMode {
        JournalMode::from_name(&self.journal).unwrap_or_default()
    }

    /// The volume's names as odxflt caches them (what the rules' `volume=` is compared with).
    #[must_use]
    pub fn volume_names(&self) -> OwnedVolumeNames {
        OwnedVolumeNames::new(&self.device_name, &self.dos_name, &self.guid_name)
    }
}

impl Default for VolumeSpec {
    fn default() -> Self {
        let c = VolumeConfig::default();
        Self {
            sector_size: 512,
            read_only: false,
            dismounted: false,
            offload_read: true,
            offload_write: true,
            filters: Vec::new(),
            supported_features_mode: 0,
            max_transfer: c.max_transfer,
            default_ttl_ms: c.default_ttl_ms,
            max_ttl_ms: c.max_ttl_ms,
            file_system: FsName::Ntfs,
            max_file_size: c.max_file_size,
            policy: "enforce".to_owned(),
            journal: JournalMode::DEFAULT.name().to_owned(),
            device_name: DEFAULT_DEVICE_NAME.to_owned(),
            dos_name: DEFAULT_DOS_NAME.to_owned(),
            guid_name: DEFAULT_GUID_NAME.to_owned(),
        }
    }
}

/// File system names.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FsName {
    /// NTFS.
    #[default]
    Ntfs,
    /// ReFS.
    Refs,
    /// FAT, exFAT, …
    Other,
}

/// `[storage] query`: how the disk answers odxflt's copy-offload property query.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum QueryKind {
    /// A `DEVICE_COPY_OFFLOAD_DESCRIPTOR` (the default).
    #[default]
    Descriptor,
    /// `STATUS_NOT_SUPPORTED`.
    NotSupported,
    /// Completes with `query_status`.
    Fails,
    /// `FltGetDiskDeviceObject` fails: no disk device, no query.
    NoDisk,
}

/// The `[storage]` table as written (every key optional).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct StorageToml {
    #[serde(default)]
    query: QueryKind,
    query_status: Option<String>,
    maximum_token_lifetime: Option<u32>,
    default_token_lifetime: Option<u32>,
    #[serde(default, deserialize_with = "opt_big_u64")]
    maximum_transfer_size: Option<u64>,
    #[serde(default, deserialize_with = "opt_big_u64")]
    optimal_transfer_count: Option<u64>,
    maximum_data_descriptors: Option<u32>,
    maximum_transfer_length_per_descriptor: Option<u32>,
    optimal_transfer_length_per_descriptor: Option<u32>,
    optimal_transfer_length_granularity: Option<u16>,
    backoff_seconds: Option<u32>,
}

/// The `[storage]` table, resolved: the disk under the volume as odxflt's instance setup sees
/// it, and odxflt's back-off period. Every key has its default filled in (docs/scenarios.md), so
/// a consumer (the simulated stack, the PE harness's kernel mocks) needs only [`Self::query`] or
/// [`Self::answer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageSpec {
    /// `query`: the kind of answer.
    pub query: QueryKind,
    /// `query_status`: the status of a failing query (`query = "fails"`; default
    /// `STATUS_INVALID_DEVICE_REQUEST`, a stack that does not know the property).
    pub query_status: NtStatus,
    /// The descriptor's fields (`maximum_token_lifetime` … `optimal_transfer_length_granularity`;
    /// defaults from `[volume]`, [`crate::disk::default_limits`]). Meaningful with
    /// `query = "descriptor"` only.
    pub limits: CopyOffloadLimits,
    /// `backoff_seconds`: odxflt's `Parameters\OffloadBackoffSeconds` (default 180; 0 = never
    /// back off; above 86400 the driver clamps, and so does the core).
    pub backoff_seconds: u32,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            query: QueryKind::Descriptor,
            query_status: NtStatus::STATUS_INVALID_DEVICE_REQUEST,
            limits: crate::disk::default_limits(&VolumeConfig::default()),
            backoff_seconds: DEFAULT_BACKOFF_SECONDS,
        }
    }
}

impl StorageSpec {
    /// The disk's answer as a [`StorageQuery`].
    #[must_use]
    pub const fn query(&self) -> StorageQuery {
        match self.query {
            QueryKind::Descriptor => StorageQuery::Descriptor(self.limits),
            QueryKind::NotSupported => StorageQuery::NotSupported,
            QueryKind::Fails => StorageQuery::Fails(self.query_status),
            QueryKind::NoDisk => StorageQuery::NoDisk,
        }
    }

    /// `(IoStatus.Status, returned bytes)` of the property query, `None` without a disk device
    /// ([`StorageQuery::answer`]).
    #[must_use]
    pub fn answer(&self) -> Option<(NtStatus, Vec<u8>)> {
        self.query().answer()
    }
}

fn opt_big_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    big_u64(d).map(Some)
}

/// File attributes and markers a `[[file]]` can carry.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Attribute {
    /// `FILE_ATTRIBUTE_COMPRESSED`.
    Compressed,
    /// `FILE_ATTRIBUTE_ENCRYPTED`.
    Encrypted,
    /// `FILE_ATTRIBUTE_SPARSE_FILE`.
    Sparse,
    /// `FILE_ATTRIBUTE_DIRECTORY`.
    Directory,
    /// Opened inside a TxF transaction.
    Transacted,
    /// An NTFS metadata file.
    Metadata,
    /// A non-data stream.
    Nondata,
}

/// Initial content.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Content {
    /// Pseudo-random bytes (reproducible per file name).
    #[default]
    Random,
    /// Zeros.
    Zero,
}

/// A `[[file]]` table.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Name.
    pub name: String,
    /// End of file.
    #[serde(default)]
    pub size: u64,
    /// Valid data length (default: size).
    #[serde(default)]
    pub vdl: Option<u64>,
    /// Attributes and markers.
    #[serde(default)]
    pub attributes: Vec<Attribute>,
    /// Delete pending.
    #[serde(default)]
    pub deleted: bool,
    /// Initial content.
    #[serde(default)]
    pub content: Content,
    /// The file's path from the volume root, what odxflt's name query answers (default
    /// `"\\" + name`, [`Self::effective_path`]); `""`: the name query fails.
    #[serde(default)]
    pub path: Option<String>,
}

impl FileSpec {
    /// The path odxflt's name query answers for the file: `path`, or `"\\" + name`; empty when
    /// the query fails.
    #[must_use]
    pub fn effective_path(&self) -> String {
        self.path
            .clone()
            .unwrap_or_else(|| format!("\\{}", self.name))
    }
}

/// A `[[rule]]` table: one string of odxflt's `Parameters\Rules` (`REG_MULTI_SZ`), in order.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// The rule's text (docs/governance-rules.md).
    pub text: String,
}

/// Lock owners.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Owner {
    /// Another open of the file.
    #[default]
    Other,
    /// The open the steps use.
    #[serde(rename = "self")]
    Me,
}

/// A `[[lock]]` table.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LockSpec {
    /// File name.
    pub file: String,
    /// `LockOffset`.
    #[serde(default, deserialize_with = "big_u64")]
    pub offset: u64,
    /// `LockLength`.
    #[serde(default, deserialize_with = "big_u64")]
    pub length: u64,
    /// Exclusive (default) or shared.
    #[serde(default = "yes")]
    pub exclusive: bool,
    /// Owner.
    #[serde(default)]
    pub owner: Owner,
    /// `LockKey` (the steps' handle uses key 0).
    #[serde(default)]
    pub key: u32,
}

/// A u64 written as a TOML integer (at most 2^63 - 1) or as a string holding a decimal or `0x`
/// hexadecimal number (for the offsets near 2^64 that overflow tests need).
fn big_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        Int(u64),
        Text(String),
    }
    match Num::deserialize(d)? {
        Num::Int(n) => Ok(n),
        Num::Text(t) => {
            let t = t.replace('_', "");
            let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => t.parse(),
            };
            parsed.map_err(|_| {
                serde::de::Error::custom(format!("{t:?} is not a 64-bit unsigned number"))
            })
        }
    }
}

const fn yes() -> bool {
    true
}

/// Step operations.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `FSCTL_OFFLOAD_READ`.
    Read,
    /// `FSCTL_OFFLOAD_WRITE`.
    Write,
    /// A plain write of new bytes.
    WriteData,
    /// Advance the storage clock.
    AdvanceMs,
    /// Compare two ranges.
    Compare,
    /// Check a file's end of file and valid data length.
    Stat,
    /// Replace odxflt's rules through the port's `SetRules` (all or nothing).
    SetRules,
}

impl Op {
    /// The name used in files and reports.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::WriteData => "write_data",
            Self::AdvanceMs => "advance_ms",
            Self::Compare => "compare",
            Self::Stat => "stat",
            Self::SetRules => "set_rules",
        }
    }
}

/// Handle access rights.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// `FILE_READ_DATA`.
    Read,
    /// `FILE_WRITE_DATA`.
    Write,
}

/// Who sends the request.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Requestor {
    /// `NtFsControlFile` from user mode.
    #[default]
    User,
    /// `ZwFsControlFile` / `FltFsControlFile`.
    Kernel,
}

/// A `[[step]]` table.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Operation.
    pub op: Op,
    /// File name.
    #[serde(default)]
    pub file: Option<String>,
    /// `FileOffset`.
    #[serde(default, deserialize_with = "big_u64")]
    pub offset: u64,
    /// `CopyLength` / bytes.
    #[serde(default, deserialize_with = "big_u64")]
    pub length: u64,
    /// `TokenTimeToLive`.
    #[serde(default)]
    pub ttl_ms: u32,
    /// Token name.
    #[serde(default)]
    pub token: Option<String>,
    /// `TransferOffset`.
    #[serde(default, deserialize_with = "big_u64")]
    pub transfer_offset: u64,
    /// Granted access (default read and write).
    #[serde(default)]
    pub access: Option<Vec<Access>>,
    /// `InputBufferLength`.
    #[serde(default)]
    pub in_len: Option<usize>,
    /// `OutputBufferLength`.
    #[serde(default)]
    pub out_len: Option<usize>,
    /// Value of the `Size` field.
    #[serde(default)]
    pub size_field: Option<u32>,
    /// Expected status name.
    #[serde(default)]
    pub expect: Option<String>,
    /// advance_ms: milliseconds.
    #[serde(default)]
    pub ms: Option<u64>,
    /// compare: the other file.
    #[serde(default)]
    pub with_file: Option<String>,
    /// compare: offset in the other file (default: `offset`).
    #[serde(default)]
    pub with_offset: Option<u64>,
    /// The handle has been cleaned up before the request.
    #[serde(default)]
    pub closed: bool,
    /// Who sends the request.
    #[serde(default)]
    pub requestor: Requestor,
    /// Expected `TransferLength` (read) or `LengthWritten` (write).
    #[serde(default)]
    pub expect_length: Option<u64>,
    /// Expected output `Flags`.
    #[serde(default)]
    pub expect_flags: Option<u32>,
    /// Expected deciding layer/rule: `IoManager`, `Below`, or an odx-core `Check` name.
    #[serde(default)]
    pub expect_check: Option<String>,
    /// stat: expected end of file.
    #[serde(default, deserialize_with = "opt_big_u64")]
    pub expect_size: Option<u64>,
    /// stat: expected valid data length (NTFS's, not odxflt's view).
    #[serde(default, deserialize_with = "opt_big_u64")]
    pub expect_vdl: Option<u64>,
    /// read/write: the requesting process's image name (default `copy.exe`,
    /// [`Self::effective_process`]); `""`: the kernel cannot give it (the query fails).
    #[serde(default)]
    pub process: Option<String>,
    /// read/write: the requesting process's id (default 1000, [`Self::effective_process_id`]).
    #[serde(default)]
    pub process_id: Option<u64>,
    /// read/write: the step's journal record's `DecidedBy`: `rule N`, `mode veto`,
    /// `mode monitor` or `check <Check>` ([`parse_decided_by`]).
    #[serde(default)]
    pub expect_decided_by: Option<String>,
    /// set_rules: the rule text, one rule per line (`\n`).
    #[serde(default)]
    pub text: Option<String>,
    /// set_rules: 0 (the rules were replaced) or the line the port refused (the previous rules
    /// stay).
    #[serde(default)]
    pub expect_error_line: Option<u32>,
}

impl StepSpec {
    /// The requesting process's image name: `process`, or `copy.exe`.
    #[must_use]
    pub fn effective_process(&self) -> &str {
        self.process.as_deref().unwrap_or(DEFAULT_PROCESS)
    }

    /// The requesting process's id: `process_id`, or 1000.
    #[must_use]
    pub fn effective_process_id(&self) -> u64 {
        self.process_id.unwrap_or(DEFAULT_PROCESS_ID)
    }

    /// The process image as the kernel hands it to odxflt
    /// (`\\Device\\HarddiskVolume1\\Windows\\System32\\<process>` unless the name holds a
    /// `\\`; empty when the query fails).
    #[must_use]
    pub fn kernel_process_image(&self) -> String {
        kernel_image_path(self.effective_process())
    }

    /// The requester odxflt sees for this step.
    #[must_use]
    pub fn requester(&self) -> Requester {
        Requester::new(self.effective_process(), self.effective_process_id())
    }

    /// `expect_decided_by`, parsed (validated at load, so `None` means the key is absent).
    #[must_use]
    pub fn expected_decided_by(&self) -> Option<JournalDecidedBy> {
        self.expect_decided_by.as_deref().and_then(parse_decided_by)
    }
}

/// A journal record's `DecidedBy` as `expect_decided_by` and `odxctl log` spell it: `rule N`,
/// `mode veto`, `mode monitor`, `check <Check>` (`check FactUnavailable(StreamSizes)`),
/// `unknown`.
#[must_use]
pub fn decided_by_label(decided: JournalDecidedBy) -> String {
    match decided {
        JournalDecidedBy::Unknown => "unknown".to_owned(),
        JournalDecidedBy::Mode(mode) => format!("mode {}", mode.name()),
        JournalDecidedBy::Check(check) => format!("check {check:?}"),
        JournalDecidedBy::Rule(index) => format!("rule {index}"),
    }
}

/// Every check a journal record can name (`check <name>`).
fn journal_checks() -> Vec<Check> {
    let mut checks: Vec<Check> = READ_ORDER.iter().chain(WRITE_ORDER).copied().collect();
    checks.push(Check::Forward);
    for kind in [
        FactKind::Volume,
        FactKind::Handle,
        FactKind::StreamKind,
        FactKind::StreamSizes,
        FactKind::Locks,
    ] {
        checks.push(Check::FactUnavailable(kind));
    }
    checks.dedup();
    checks
}

/// Parses `expect_decided_by`: `rule N`, `mode veto`, `mode monitor`, `mode enforce` (never
/// recorded: enforce records the check), or `check <Check>`.
#[must_use]
pub fn parse_decided_by(text: &str) -> Option<JournalDecidedBy> {
    let (kind, rest) = text.trim().split_once(' ')?;
    let rest = rest.trim();
    match kind {
        "rule" => rest.parse().ok().map(JournalDecidedBy::Rule),
        "mode" => PolicyMode::from_name(rest).map(JournalDecidedBy::Mode),
        "check" => journal_checks()
            .into_iter()
            .find(|c| format!("{c:?}") == rest)
            .map(JournalDecidedBy::Check),
        _ => None,
    }
}

/// A `[[filter]]` table: another minifilter attached to the volume (besides odxflt).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// Its name (as `fltmc instances` shows it).
    pub name: String,
    /// Its altitude (a decimal string such as `"328010"`).
    #[serde(default)]
    pub altitude: String,
    /// Its `SupportedFeatures` (0x1 offload read, 0x2 offload write).
    #[serde(default)]
    pub features: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioToml {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    volume: VolumeSpec,
    #[serde(default)]
    storage: Option<Spanned<StorageToml>>,
    #[serde(default, rename = "filter")]
    filters: Vec<FilterSpec>,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleSpec>,
    #[serde(default, rename = "file")]
    files: Vec<Spanned<FileSpec>>,
    #[serde(default, rename = "lock")]
    locks: Vec<Spanned<LockSpec>>,
    #[serde(default, rename = "step")]
    steps: Vec<Spanned<StepSpec>>,
}

/// A malformed scenario: file, line, column and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}:{column}: {message}")]
pub struct ScenarioError {
    /// The file.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong (one line).
    pub message: String,
}

/// Expected status of a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// An NTSTATUS.
    Status(NtStatus),
    /// `compare` found different bytes.
    Mismatch,
}

/// A validated step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The step as written.
    pub spec: StepSpec,
    /// 1-based line of its `[[step]]` header.
    pub line: usize,
    /// Parsed `expect`.
    pub expect: Option<Expect>,
}

/// A parsed, validated scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// Where it came from.
    pub path: String,
    /// `description`.
    pub description: Option<String>,
    /// `[volume]`.
    pub volume: VolumeSpec,
    /// `[storage]`, resolved (defaults filled in from `[volume]`).
    pub storage: StorageSpec,
    /// The `[[rule]]` texts, in order: odxflt's `Parameters\Rules`, loaded at instance start
    /// with the lenient loader (bad strings skipped and reported in
    /// [`ScenarioResult::rule_load`]).
    pub rules: Vec<String>,
    /// `[[file]]`s.
    pub files: Vec<FileSpec>,
    /// `[[lock]]`s.
    pub locks: Vec<LockSpec>,
    /// `[[step]]`s.
    pub steps: Vec<Step>,
    /// `[[filter]]` tables (the `[volume] filters` numbers are in [`Scenario::attached_filters`]).
    pub filter_tables: Vec<FilterSpec>,
}

/// A step's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepStatus {
    /// An NTSTATUS.
    Status(NtStatus),
    /// `compare` found a difference at this offset of `file`.
    Mismatch {
        /// First differing offset.
        at: u64,
    },
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(s) => write!(f, "{s}"),
            Self::Mismatch { .. } => f.write_str("MISMATCH"),
        }
    }
}

/// What one step did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepResult {
    /// 0-based index.
    pub index: usize,
    /// Operation.
    pub op: Op,
    /// File.
    pub file: Option<String>,
    /// Status.
    pub status: StepStatus,
    /// Read: `TransferLength`.
    pub transfer_length: Option<u64>,
    /// Write: `LengthWritten`.
    pub length_written: Option<u64>,
    /// stat: `(end of file, valid data length)` found.
    pub sizes: Option<(u64, u64)>,
    /// Output `Flags` (0 without output).
    pub flags: u32,
    /// Which layer decided (FSCTL steps).
    pub decided_by: Option<DecidedBy>,
    /// Facts odxflt asked for (FSCTL steps).
    pub facts: Option<FactCounts>,
    /// read/write: the requesting process's image name and id.
    pub process: Option<(String, u64)>,
    /// read/write: the step's journal record (`None`: the request never reached odxflt).
    pub record: Option<Record>,
    /// set_rules: the port's answer, `(error_line, error text, rules in force)`.
    pub rules_reply: Option<(u32, Option<String>, u32)>,
    /// The expectation as written.
    pub expect: Option<String>,
    /// Every expectation of the step held.
    pub expect_ok: bool,
    /// What did not hold.
    pub failures: Vec<String>,
}

/// What a scenario did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioResult {
    /// The file.
    pub path: String,
    /// Description.
    pub description: Option<String>,
    /// Steps.
    pub steps: Vec<StepResult>,
    /// What loading the `[[rule]]` strings did (rules taken, strings rejected and why).
    pub rule_load: ParseReport,
    /// Journal records overwritten before the run's end (more than the ring holds).
    pub journal_lost: u64,
    /// Every step's expectations held.
    pub passed: bool,
}

/// Fills in the `[storage]` defaults from `[volume]` and checks the keys fit the query.
fn resolve_storage(t: &StorageToml, v: &VolumeSpec) -> Result<StorageSpec, String> {
    let engine = VolumeConfig {
        default_ttl_ms: v.default_ttl_ms,
        max_ttl_ms: v.max_ttl_ms,
        max_transfer: v.max_transfer,
        ..VolumeConfig::default()
    };
    let d = crate::disk::default_limits(&engine);
    let limits = CopyOffloadLimits {
        maximum_token_lifetime: t.maximum_token_lifetime.unwrap_or(d.maximum_token_lifetime),
        default_token_lifetime: t.default_token_lifetime.unwrap_or(d.default_token_lifetime),
        maximum_transfer_size: t.maximum_transfer_size.unwrap_or(d.maximum_transfer_size),
        optimal_transfer_count: t.optimal_transfer_count.unwrap_or(d.optimal_transfer_count),
        maximum_data_descriptors: t
            .maximum_data_descriptors
            .unwrap_or(d.maximum_data_descriptors),
        maximum_transfer_length_per_descriptor: t
            .maximum_transfer_length_per_descriptor
            .unwrap_or(d.maximum_transfer_length_per_descriptor),
        optimal_transfer_length_per_descriptor: t
            .optimal_transfer_length_per_descriptor
            .unwrap_or(d.optimal_transfer_length_per_descriptor),
        optimal_transfer_length_granularity: t
            .optimal_transfer_length_granularity
            .unwrap_or(d.optimal_transfer_length_granularity),
    };
    let descriptor_keys = [
        t.maximum_token_lifetime.is_some(),
        t.default_token_lifetime.is_some(),
        t.maximum_transfer_size.is_some(),
        t.optimal_transfer_count.is_some(),
        t.maximum_data_descriptors.is_some(),
        t.maximum_transfer_length_per_descriptor.is_some(),
        t.optimal_transfer_length_per_descriptor.is_some(),
        t.optimal_transfer_length_granularity.is_some(),
    ];
    if t.query != QueryKind::Descriptor && descriptor_keys.contains(&true) {
        return Err(
            "[storage] descriptor fields (maximum_token_lifetime, …) need query = \"descriptor\""
                .to_owned(),
        );
    }
    let query_status = match (&t.query_status, t.query) {
        (None, _) => NtStatus::STATUS_INVALID_DEVICE_REQUEST,
        (Some(name), QueryKind::Fails) => {
            let status = NtStatus::from_name(name).ok_or_else(|| {
                format!("[storage] query_status = {name:?} is not a known STATUS_ name")
            })?;
            if status.is_success() {
                return Err(format!(
                    "[storage] query_status = {name:?}: a failing query needs a failure status"
                ));
            }
            status
        }
        (Some(_), _) => {
            return Err("[storage] query_status needs query = \"fails\"".to_owned());
        }
    };
    Ok(StorageSpec {
        query: t.query,
        query_status,
        limits,
        backoff_seconds: t.backoff_seconds.unwrap_or(DEFAULT_BACKOFF_SECONDS),
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Names `expect_check` accepts.
#[must_use]
pub fn check_names() -> Vec<String> {
    let mut names: Vec<String> = READ_ORDER
        .iter()
        .chain(WRITE_ORDER)
        .map(|c| format!("{c:?}"))
        .collect();
    names.push("IoManager".to_owned());
    names.push("Below".to_owned());
    names.push("Policy".to_owned());
    names.sort();
    names.dedup();
    names
}

/// The label of a deciding layer, as `expect_check` spells it.
#[must_use]
pub fn decided_label(decided: &DecidedBy) -> String {
    match decided {
        DecidedBy::IoManager => "IoManager".to_owned(),
        DecidedBy::Policy => "Policy".to_owned(),
        DecidedBy::Odxflt(check) => format!("{check:?}"),
        DecidedBy::Below { .. } => "Below".to_owned(),
    }
}

/// Parses an `expect` value.
#[must_use]
pub fn parse_expect(text: &str) -> Option<Expect> {
    if text.eq_ignore_ascii_case("MISMATCH") {
        return Some(Expect::Mismatch);
    }
    NtStatus::from_name(text).map(Expect::Status)
}

impl Scenario {
    /// Reads and validates a scenario file.
    ///
    /// # Errors
    /// Unreadable or malformed files, with the line.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            path: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates scenario text; `path` names it in errors.
    ///
    /// # Errors
    /// Malformed text, with the line.
    pub fn parse(text: &str, path: &str) -> Result<Self, ScenarioError> {
        let at = |span: Range<usize>, message: String| {
            let (line, column) = line_col(text, span.start);
            ScenarioError {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        let raw: ScenarioToml = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            at(span, e.message().replace('\n', " "))
        })?;
        let header = |name: &str| text.find(&format!("[{name}]")).unwrap_or(0);
        let v = &raw.volume;
        if SectorSize::new(v.sector_size).is_none() {
            return Err(at(
                header("volume")..0,
                format!(
                    "[volume] sector_size = {} is not a power of two",
                    v.sector_size
                ),
            ));
        }
        if PolicyMode::from_name(&v.policy).is_none() {
            return Err(at(
                header("volume")..0,
                format!(
                    "[volume] policy = {:?} is not enforce, monitor or veto",
                    v.policy
                ),
            ));
        }
        if JournalMode::from_name(&v.journal).is_none() {
            return Err(at(
                header("volume")..0,
                format!(
                    "[volume] journal = {:?} is not off, decisions or named",
                    v.journal
                ),
            ));
        }
        if v.max_transfer == 0 {
            return Err(at(
                header("volume")..0,
                "[volume] max_transfer must be at least 1".to_owned(),
            ));
        }
        let storage = match &raw.storage {
            None => resolve_storage(&StorageToml::default(), v)
                .map_err(|m| at(header("volume")..0, m))?,
            Some(t) => resolve_storage(t.get_ref(), v).map_err(|m| at(t.span(), m))?,
        };
        let mut names: HashMap<&str, ()> = HashMap::new();
        for f in &raw.files {
            let spec = f.get_ref();
            if names.insert(spec.name.as_str(), ()).is_some() {
                return Err(at(
                    f.span(),
                    format!("file {:?} is defined twice", spec.name),
                ));
            }
            if spec.size > MEM_MAX_FILE {
                return Err(at(
                    f.span(),
                    format!(
                        "file {:?}: size {} is above the simulator's limit of {MEM_MAX_FILE} bytes",
                        spec.name, spec.size
                    ),
                ));
            }
            if spec.vdl.is_some_and(|vdl| vdl > spec.size) {
                return Err(at(
                    f.span(),
                    format!("file {:?}: vdl is larger than size", spec.name),
                ));
            }
        }
        let known = |name: &Option<String>, span: Range<usize>, what: &str| match name {
            Some(n) if names.contains_key(n.as_str()) => Ok(()),
            Some(n) => Err(at(span, format!("{what} names unknown file {n:?}"))),
            None => Err(at(span, format!("{what} needs `file`"))),
        };
        for l in &raw.locks {
            known(&Some(l.get_ref().file.clone()), l.span(), "[[lock]]")?;
        }
        let checks = check_names();
        let mut tokens: HashMap<String, ()> = HashMap::new();
        let mut steps = Vec::new();
        for s in &raw.steps {
            let spec = s.get_ref().clone();
            let span = s.span();
            let what = format!("[[step]] op = \"{}\"", spec.op.name());
            match spec.op {
                Op::Read => {
                    known(&spec.file, span.clone(), &what)?;
                    if let Some(t) = &spec.token {
                        if t == "zero" || t == "forged" {
                            return Err(at(span, format!("{what}: token name {t:?} is reserved")));
                        }
                        tokens.insert(t.clone(), ());
                    }
                }
                Op::Write => {
                    known(&spec.file, span.clone(), &what)?;
                    match &spec.token {
                        None => {
                            return Err(at(
                                span,
                                format!(
                                    "{what} needs `token` (a name stored by an earlier read, \"zero\" or \"forged\")"
                                ),
                            ));
                        }
                        Some(t) if t == "zero" || t == "forged" || tokens.contains_key(t) => {}
                        Some(t) => {
                            return Err(at(
                                span,
                                format!(
                                    "{what}: token {t:?} was not stored by an earlier read step"
                                ),
                            ));
                        }
                    }
                }
                Op::WriteData => known(&spec.file, span.clone(), &what)?,
                Op::Compare => {
                    known(&spec.file, span.clone(), &what)?;
                    known(
                        &spec.with_file,
                        span.clone(),
                        &format!("{what} `with_file`"),
                    )?;
                }
                Op::AdvanceMs => {
                    if spec.ms.is_none() {
                        return Err(at(span, format!("{what} needs `ms`")));
                    }
                }
                Op::Stat => {
                    known(&spec.file, span.clone(), &what)?;
                    if spec.expect_size.is_none() && spec.expect_vdl.is_none() {
                        return Err(at(
                            span,
                            format!("{what} needs `expect_size`, `expect_vdl` or both"),
                        ));
                    }
                }
                Op::SetRules => {
                    if spec.text.is_none() {
                        return Err(at(
                            span,
                            format!("{what} needs `text` (the rules, one per line)"),
                        ));
                    }
                }
            }
            if spec.op != Op::SetRules && (spec.text.is_some() || spec.expect_error_line.is_some())
            {
                return Err(at(
                    span,
                    format!("{what}: `text` / `expect_error_line` belong to op = \"set_rules\""),
                ));
            }
            let fsctl = matches!(spec.op, Op::Read | Op::Write);
            if !fsctl
                && (spec.process.is_some()
                    || spec.process_id.is_some()
                    || spec.expect_decided_by.is_some())
            {
                return Err(at(
                    span,
                    format!(
                        "{what}: `process`, `process_id` and `expect_decided_by` belong to op = \"read\" or \"write\""
                    ),
                ));
            }
            if let Some(d) = &spec.expect_decided_by {
                if parse_decided_by(d).is_none() {
                    return Err(at(
                        span,
                        format!(
                            "{what}: expect_decided_by = {d:?} is not \"rule N\", \"mode veto\", \"mode monitor\" or \"check <Check>\" (checks: {})",
                            journal_checks()
                                .iter()
                                .map(|c| format!("{c:?}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
            if spec.op != Op::Stat && (spec.expect_size.is_some() || spec.expect_vdl.is_some()) {
                return Err(at(
                    span,
                    format!("{what}: `expect_size` / `expect_vdl` belong to op = \"stat\""),
                ));
            }
            if spec.op == Op::WriteData && spec.length > MEM_MAX_FILE {
                return Err(at(span, format!("{what}: length above {MEM_MAX_FILE}")));
            }
            let expect = match &spec.expect {
                None => None,
                Some(e) => Some(parse_expect(e).ok_or_else(|| {
                    at(
                        span.clone(),
                        format!("{what}: expect = {e:?} is not a known STATUS_ name or MISMATCH"),
                    )
                })?),
            };
            if let Some(c) = &spec.expect_check {
                if !checks.contains(c) {
                    return Err(at(
                        span,
                        format!(
                            "{what}: expect_check = {c:?} is not one of {}",
                            checks.join(", ")
                        ),
                    ));
                }
            }
            let (line, _) = line_col(text, span.start);
            steps.push(Step { spec, line, expect });
        }
        Ok(Self {
            path: path.to_owned(),
            description: raw.description,
            volume: raw.volume,
            storage,
            rules: raw.rules.into_iter().map(|r| r.text).collect(),
            files: raw.files.into_iter().map(Spanned::into_inner).collect(),
            locks: raw.locks.into_iter().map(Spanned::into_inner).collect(),
            steps,
            filter_tables: raw.filters,
        })
    }

    /// Every other filter attached to the volume, in stack order: the `[volume] filters`
    /// numbers (named `filter#1`, `filter#2`, … without an altitude), then the `[[filter]]`
    /// tables.
    #[must_use]
    pub fn attached_filters(&self) -> Vec<FilterSpec> {
        let numbered = self
            .volume
            .filters
            .iter()
            .enumerate()
            .map(|(i, &features)| FilterSpec {
                name: format!("filter#{}", i + 1),
                altitude: String::new(),
                features,
            });
        numbered.chain(self.filter_tables.iter().cloned()).collect()
    }

    /// The volume configuration.
    #[must_use]
    pub fn volume_config(&self) -> VolumeConfig {
        let v = &self.volume;
        VolumeConfig {
            file_system: match v.file_system {
                FsName::Ntfs => FileSystemKind::Ntfs,
                FsName::Refs => FileSystemKind::Refs,
                FsName::Other => FileSystemKind::Other,
            },
            sector_size: SectorSize::new(v.sector_size).unwrap_or_default(),
            read_only: v.read_only,
            dismounted: v.dismounted,
            storage_offload_read: v.offload_read,
            storage_offload_write: v.offload_write,
            max_file_size: v.max_file_size,
            default_ttl_ms: v.default_ttl_ms,
            max_ttl_ms: v.max_ttl_ms,
            max_transfer: v.max_transfer,
            storage: Some(self.storage.query()),
            backoff_seconds: self.storage.backoff_seconds,
        }
    }

    /// Builds the stack: volume, files with their content, locks.
    ///
    /// # Errors
    /// Store failures.
    pub fn build<S: DataStore>(&self, store: S) -> Result<Stack<S>, SimError> {
        let filters = self
            .attached_filters()
            .iter()
            .map(|f| SupportedFeatures::from_bits_retain(f.features))
            .collect();
        let mode = FilterSupportedFeaturesMode::from_registry(self.volume.supported_features_mode);
        let mut stack = Stack::new(self.volume_config(), store, filters, mode);
        stack.set_registry_policy(PolicyMode::from_name(&self.volume.policy).unwrap_or_default());
        stack.set_journal_mode(self.volume.journal_mode());
        stack.set_volume_names(self.volume.volume_names());
        stack.load_registry_rules(self.rules.iter().map(String::as_str));
        for f in &self.files {
            let vol = stack.volume_mut();
            let id = vol.create_file(&f.name)?;
            vol.set_end_of_file(id, f.size)?;
            if f.content == Content::Random {
                fill_random(vol.data_mut(), id, &f.name, f.size)?;
            }
            vol.set_valid_data_length(id, f.vdl.unwrap_or(f.size))?;
            vol.set_path(id, &f.effective_path())?;
            let mut attributes = FileAttributes::empty();
            let mut markers = StreamMarkers::empty();
            for a in &f.attributes {
                match a {
                    Attribute::Compressed => attributes |= FileAttributes::COMPRESSED,
                    Attribute::Encrypted => attributes |= FileAttributes::ENCRYPTED,
                    Attribute::Sparse => attributes |= FileAttributes::SPARSE_FILE,
                    Attribute::Directory => attributes |= FileAttributes::DIRECTORY,
                    Attribute::Transacted => markers |= StreamMarkers::TRANSACTED,
                    Attribute::Metadata => markers |= StreamMarkers::METADATA,
                    Attribute::Nondata => markers |= StreamMarkers::NON_DATA_STREAM,
                }
            }
            vol.set_kind(id, attributes, markers, f.deleted)?;
        }
        for l in &self.locks {
            let vol = stack.volume_mut();
            let id = vol
                .id_of(&l.file)
                .ok_or_else(|| SimError::NoFile(l.file.clone()))?;
            let owner = match l.owner {
                Owner::Me => self_open(id),
                Owner::Other => other_open(id),
            };
            vol.add_lock(
                id,
                ByteRangeLock {
                    offset: l.offset,
                    length: l.length,
                    exclusive: l.exclusive,
                    owner,
                    key: l.key,
                },
            )?;
        }
        Ok(stack)
    }

    /// What loading the `[[rule]]` strings does: the driver's lenient load
    /// (`RuleSet::load_lines`), bad strings reported by their number (from 1) and skipped.
    #[must_use]
    pub fn rule_load(&self) -> ParseReport {
        RuleSet::parse_lines(self.rules.iter().map(String::as_str)).1
    }

    /// Runs the scenario on a fresh stack over `store`.
    ///
    /// # Errors
    /// Store failures (not expectation failures: those are in the result).
    pub fn run<S: DataStore>(&self, store: S) -> Result<ScenarioResult, SimError> {
        self.run_keeping_stack(store).map(|(result, _)| result)
    }

    /// Runs the scenario on a fresh stack over `store` and hands the stack back (its odxflt
    /// statistics and policy stay queryable through [`Stack::port_request`]).
    ///
    /// # Errors
    /// Store failures (not expectation failures: those are in the result).
    pub fn run_keeping_stack<S: DataStore>(
        &self,
        store: S,
    ) -> Result<(ScenarioResult, Stack<S>), SimError> {
        let mut stack = self.build(store)?;
        let rule_load = self.rule_load();
        let mut tokens: HashMap<String, StorageOffloadToken> = HashMap::new();
        let mut results = Vec::new();
        for (index, step) in self.steps.iter().enumerate() {
            results.push(run_step(&mut stack, index, step, &mut tokens)?);
        }
        let passed = results.iter().all(|r| r.expect_ok);
        let result = ScenarioResult {
            path: self.path.clone(),
            description: self.description.clone(),
            steps: results,
            rule_load,
            journal_lost: {
                let stats = stack.journal().stats();
                let capacity = crate::stack::JOURNAL_CAPACITY as u64;
                stats
                    .recorded
                    .saturating_sub(capacity)
                    .saturating_add(stats.dropped)
            },
            passed,
        };
        Ok((result, stack))
    }
}

/// splitmix64: reproducible pseudo-random content.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn seed_of(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

fn random_bytes(seed: &mut u64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        let v = splitmix(seed).to_le_bytes();
        for (d, s) in chunk.iter_mut().zip(v) {
            *d = s;
        }
    }
}

fn fill_random<S: DataStore>(
    store: &mut S,
    id: FileId,
    name: &str,
    size: u64,
) -> Result<(), SimError> {
    let mut seed = seed_of(name);
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut pos = 0u64;
    while pos < size {
        let n = usize::try_from((size - pos).min(COPY_BUFFER as u64)).unwrap_or(COPY_BUFFER);
        let chunk = buf.get_mut(..n).unwrap_or_default();
        random_bytes(&mut seed, chunk);
        store.write_at(id, pos, chunk)?;
        pos += n as u64;
    }
    Ok(())
}

fn access_mask(access: Option<&Vec<Access>>) -> AccessMask {
    match access {
        None => AccessMask::READ_DATA | AccessMask::WRITE_DATA,
        Some(list) => list.iter().fold(AccessMask::empty(), |m, a| {
            m | match a {
                Access::Read => AccessMask::READ_DATA,
                Access::Write => AccessMask::WRITE_DATA,
            }
        }),
    }
}

/// The journal record `seq`, if the ring still holds it.
fn journal_record<S: DataStore>(stack: &Stack<S>, seq: u64) -> Option<Record> {
    let mut page = [Record::EMPTY];
    let got = stack.journal().read_page(seq, &mut page);
    page.into_iter()
        .take(got.copied)
        .find(|record| record.seq == seq)
}

/// Sends one offload FSCTL through the stack and records status, deciding rule, facts and the
/// journal record.
#[allow(clippy::too_many_arguments)]
fn issue_fsctl<S: DataStore>(
    stack: &mut Stack<S>,
    handle: HandleId,
    code: u32,
    input: &[u8],
    out_len: usize,
    requestor: RequestorMode,
    spec: &StepSpec,
    result: &mut StepResult,
) -> crate::stack::FsctlOutcome {
    let requester = spec.requester();
    let outcome = stack.fsctl_as(handle, code, input, out_len, requestor, &requester);
    result.status = StepStatus::Status(outcome.status);
    result.decided_by = Some(outcome.decided_by);
    result.facts = Some(outcome.facts);
    result.process = Some((
        spec.effective_process().to_owned(),
        spec.effective_process_id(),
    ));
    result.record = outcome
        .journal_seq
        .and_then(|seq| journal_record(stack, seq));
    outcome
}

/// `op = "set_rules"`: the text goes through the port's `SetRules`
/// (`odx_core::serve::handle_request`), as `odxctl rules load` sends it.
fn set_rules_step<S: DataStore>(stack: &mut Stack<S>, text: &str, result: &mut StepResult) {
    use odx_core::port::governance::RulesReply;
    let request = crate::stack::set_rules_message(text);
    match stack.port_request(&request, RulesReply::SIZE) {
        Ok(bytes) => match RulesReply::parse(&bytes) {
            Ok(reply) => {
                result.rules_reply = Some((
                    reply.error_line.get(),
                    reply.error().map(str::to_owned),
                    reply.rule_count.get(),
                ));
            }
            Err(_) => result.status = StepStatus::Status(NtStatus::STATUS_INVALID_PARAMETER),
        },
        Err(status) => result.status = StepStatus::Status(status),
    }
}

fn sized_input<T: WireStruct>(value: &T, in_len: Option<usize>) -> Vec<u8> {
    let mut bytes = vec![0u8; T::SIZE];
    let _ = value.serialize_into(&mut bytes);
    bytes.resize(in_len.unwrap_or(T::SIZE), 0);
    bytes
}

/// `token = "forged"`: 512 random bytes no array issued (the scenario format's definition).
fn forged_token() -> StorageOffloadToken {
    let mut bytes = [0u8; 512];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness: still a token nobody issued (the simulated type, a key of all ones).
        return token_for_key(&[0xFF; TOKEN_KEY_LEN]);
    }
    let mut token = StorageOffloadToken::parse(&bytes)
        .unwrap_or_else(|_| token_for_key(&[0xFF; TOKEN_KEY_LEN]));
    if token.kind() == odx_core::wire::TokenKind::ZeroData {
        // One draw in 2^48 spells the zero token's header; a forgery must not be that.
        token.token_id_length.set(0);
    }
    token
}

fn file_id<S: DataStore>(stack: &Stack<S>, name: Option<&String>) -> Result<FileId, SimError> {
    let name = name.ok_or_else(|| SimError::NoFile(String::new()))?;
    stack
        .volume()
        .id_of(name)
        .ok_or_else(|| SimError::NoFile(name.clone()))
}

fn open_step_handle<S: DataStore>(
    stack: &mut Stack<S>,
    step: &StepSpec,
) -> Result<HandleId, SimError> {
    let id = file_id(stack, step.file.as_ref())?;
    let handle = stack.open(id, access_mask(step.access.as_ref()))?;
    if step.closed {
        stack.close(handle);
    }
    Ok(handle)
}

fn run_step<S: DataStore>(
    stack: &mut Stack<S>,
    index: usize,
    step: &Step,
    tokens: &mut HashMap<String, StorageOffloadToken>,
) -> Result<StepResult, SimError> {
    let spec = &step.spec;
    let mut result = StepResult {
        index,
        op: spec.op,
        file: spec.file.clone(),
        status: StepStatus::Status(NtStatus::STATUS_SUCCESS),
        transfer_length: None,
        length_written: None,
        sizes: None,
        flags: 0,
        decided_by: None,
        facts: None,
        process: None,
        record: None,
        rules_reply: None,
        expect: spec.expect.clone(),
        expect_ok: true,
        failures: Vec::new(),
    };
    let requestor = match spec.requestor {
        Requestor::User => RequestorMode::User,
        Requestor::Kernel => RequestorMode::Kernel,
    };
    match spec.op {
        Op::Read => {
            let handle = open_step_handle(stack, spec)?;
            let mut input = OffloadReadInput::new(spec.offset, spec.length, spec.ttl_ms);
            if let Some(size) = spec.size_field {
                input.size.set(size);
            }
            let bytes = sized_input(&input, spec.in_len);
            let out_len = spec.out_len.unwrap_or(OffloadReadOutput::SIZE);
            let outcome = issue_fsctl(
                stack,
                handle,
                odx_core::FSCTL_OFFLOAD_READ,
                &bytes,
                out_len,
                requestor,
                spec,
                &mut result,
            );
            let parsed = OffloadReadOutput::parse(&outcome.output)
                .ok()
                .filter(|_| outcome.status.is_success());
            if let Some(out) = parsed {
                result.transfer_length = Some(out.transfer_length.get());
                result.flags = out.flags.get();
            }
            if let Some(name) = &spec.token {
                // A failed read stores an all-zero token: a later write with it is refused.
                tokens.insert(
                    name.clone(),
                    parsed.map_or_else(StorageOffloadToken::zeroed, |o| o.token),
                );
            }
        }
        Op::Write => {
            let handle = open_step_handle(stack, spec)?;
            let token = match spec.token.as_deref() {
                Some("zero") => StorageOffloadToken::zero_data(),
                Some("forged") => forged_token(),
                Some(name) => tokens
                    .get(name)
                    .copied()
                    .unwrap_or_else(StorageOffloadToken::zeroed),
                None => StorageOffloadToken::zeroed(),
            };
            let mut input =
                OffloadWriteInput::new(spec.offset, spec.length, spec.transfer_offset, token);
            if let Some(size) = spec.size_field {
                input.size.set(size);
            }
            let bytes = sized_input(&input, spec.in_len);
            let out_len = spec.out_len.unwrap_or(OffloadWriteOutput::SIZE);
            let outcome = issue_fsctl(
                stack,
                handle,
                odx_core::FSCTL_OFFLOAD_WRITE,
                &bytes,
                out_len,
                requestor,
                spec,
                &mut result,
            );
            if let Some(out) = OffloadWriteOutput::parse(&outcome.output)
                .ok()
                .filter(|_| outcome.status.is_success())
            {
                result.length_written = Some(out.length_written.get());
                result.flags = out.flags.get();
            }
        }
        Op::WriteData => {
            let id = file_id(stack, spec.file.as_ref())?;
            let mut seed = seed_of(&format!("write_data {index}"));
            let len = usize::try_from(spec.length).unwrap_or(0);
            let mut bytes = vec![0u8; len];
            random_bytes(&mut seed, &mut bytes);
            stack.volume_mut().write_data(id, spec.offset, &bytes)?;
        }
        Op::AdvanceMs => stack.advance_ms(spec.ms.unwrap_or(0)),
        Op::Compare => {
            let a = file_id(stack, spec.file.as_ref())?;
            let b = file_id(stack, spec.with_file.as_ref())?;
            result.status = compare(
                stack,
                a,
                spec.offset,
                b,
                spec.with_offset.unwrap_or(spec.offset),
                spec.length,
            )?;
        }
        Op::Stat => {
            let id = file_id(stack, spec.file.as_ref())?;
            let entry = stack
                .volume()
                .entry(id)
                .ok_or_else(|| SimError::NoFile(spec.file.clone().unwrap_or_default()))?;
            result.sizes = Some((entry.end_of_file, entry.valid_data_length));
        }
        Op::SetRules => set_rules_step(stack, spec.text.as_deref().unwrap_or(""), &mut result),
    }
    check_expectations(step, &mut result);
    Ok(result)
}

/// Compares two ranges of the volume's files.
///
/// # Errors
/// Store failures.
pub fn compare<S: DataStore>(
    stack: &Stack<S>,
    a: FileId,
    a_offset: u64,
    b: FileId,
    b_offset: u64,
    length: u64,
) -> Result<StepStatus, SimError> {
    let vol = stack.volume();
    let eof = |id| vol.entry(id).map_or(0, |e| e.end_of_file);
    if a_offset.saturating_add(length) > eof(a) || b_offset.saturating_add(length) > eof(b) {
        return Ok(StepStatus::Status(NtStatus::STATUS_END_OF_FILE));
    }
    let mut x = vec![
        0u8;
        COPY_BUFFER
            .min(usize::try_from(length).unwrap_or(COPY_BUFFER))
            .max(1)
    ];
    let mut y = x.clone();
    let mut done = 0u64;
    while done < length {
        let n = usize::try_from((length - done).min(x.len() as u64)).unwrap_or(x.len());
        let (xa, yb) = (
            x.get_mut(..n).unwrap_or_default(),
            y.get_mut(..n).unwrap_or_default(),
        );
        let got_a = vol.read_data(a, a_offset + done, xa)?;
        let got_b = vol.read_data(b, b_offset + done, yb)?;
        if got_a != n || got_b != n {
            return Ok(StepStatus::Status(NtStatus::STATUS_END_OF_FILE));
        }
        if let Some(i) = xa.iter().zip(yb.iter()).position(|(p, q)| p != q) {
            return Ok(StepStatus::Mismatch {
                at: a_offset + done + i as u64,
            });
        }
        done += n as u64;
    }
    Ok(StepStatus::Status(NtStatus::STATUS_SUCCESS))
}

fn check_expectations(step: &Step, result: &mut StepResult) {
    let spec = &step.spec;
    if let Some(expect) = step.expect {
        let ok = match (expect, result.status) {
            (Expect::Status(e), StepStatus::Status(s)) => e == s,
            (Expect::Mismatch, StepStatus::Mismatch { .. }) => true,
            _ => false,
        };
        if !ok {
            result.failures.push(format!(
                "expected {}, got {}",
                spec.expect.as_deref().unwrap_or(""),
                result.status
            ));
        }
    }
    if let Some(want) = spec.expect_length {
        let got = result.transfer_length.or(result.length_written);
        if got != Some(want) {
            let got = got.map_or_else(|| "none".to_owned(), |g| g.to_string());
            result
                .failures
                .push(format!("expected length {want}, got {got}"));
        }
    }
    if let Some(want) = spec.expect_flags {
        if result.flags != want {
            result
                .failures
                .push(format!("expected flags {want:#x}, got {:#x}", result.flags));
        }
    }
    if let Some(want) = &spec.expect_check {
        let got = result.decided_by.as_ref().map(decided_label);
        if got.as_deref() != Some(want.as_str()) {
            result.failures.push(format!(
                "expected decided by {want}, got {}",
                got.unwrap_or_else(|| "none".to_owned())
            ));
        }
    }
    if let Some(want) = spec.expected_decided_by() {
        let got = result.record.map(|r| r.decided_by);
        if got != Some(want) {
            result.failures.push(format!(
                "expected the journal to record decided by {}, got {}",
                decided_by_label(want),
                got.map_or_else(|| "no record".to_owned(), decided_by_label)
            ));
        }
    }
    if let Some(want) = spec.expect_error_line {
        match &result.rules_reply {
            Some((line, error, _)) if *line == want => {}
            Some((line, error, _)) => result.failures.push(format!(
                "expected set_rules error line {want}, got {line}{}",
                error
                    .as_deref()
                    .map_or_else(String::new, |e| format!(" ({e})"))
            )),
            None => result.failures.push(format!(
                "expected set_rules error line {want}, got no reply"
            )),
        }
    }
    if let Some((eof, vdl)) = result.sizes {
        let name = spec.file.as_deref().unwrap_or("");
        if let Some(want) = spec.expect_size {
            if eof != want {
                result.failures.push(format!(
                    "file {name:?}: end of file is {eof}, expected {want} (expect_size)"
                ));
            }
        }
        if let Some(want) = spec.expect_vdl {
            if vdl != want {
                result.failures.push(format!(
                    "file {name:?}: valid data length is {vdl}, expected {want} (expect_vdl)"
                ));
            }
        }
    }
    result.expect_ok = result.failures.is_empty();
}

/// Every `*.toml` in a directory, sorted.
///
/// # Errors
/// The directory cannot be read.
pub fn scenario_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}
