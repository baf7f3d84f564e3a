//! One volume stack as a user-mode caller sees it: the I/O manager's checks (handle access,
//! Filter Manager's aggregated `SupportedFeatures`), odxflt, and the volume below.

use odx_core::filter::PreEnv;
use odx_core::flags::{AccessMask, OffloadReadFlags, SupportedFeatures, VolumeFlags};
use odx_core::governance::{
    DecisionLog, Governance, Journal, JournalAt, JournalMode, JournalSeq, ParseReport, RuleSet,
    VolumeNames,
};
use odx_core::iomgr::{
    FilterSupportedFeaturesMode, RequestorMode, aggregate_supported_features, io_manager_precheck,
};
use odx_core::lock::{OpenId, range_conflicts};
use odx_core::policy::PolicyMode;
use odx_core::port::RegistrySource;
use odx_core::serve::{PortTarget, handle_request};
use odx_core::stats::VolumeStats;
use odx_core::storage::{StorageState, TICKS_PER_SECOND};
use odx_core::validate::Check;
use odx_core::wire::{
    OffloadReadInput, OffloadReadOutput, OffloadWriteInput, OffloadWriteOutput, StorageOffloadToken,
};
use odx_core::{ByteRange, LockIntent, NtStatus, OffloadOp, Rules, VolumeFacts, WireStruct};

use crate::odxflt::{
    BufferedRequest, FactCounts, HandleState, ModelFacts, PreOp, StorageAt, post_operation,
    pre_operation,
};
use crate::store::{DataStore, FileId};
use crate::volume::{SimError, Volume, VolumeConfig};

/// A handle opened on the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HandleId(pub usize);

/// Which layer completed a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecidedBy {
    /// The I/O manager, before any filter saw it (access, filter opt-in).
    IoManager,
    /// odxflt in pre-operation, by this rule.
    Odxflt(Check),
    /// odxflt's policy (veto mode, or a rule's veto) refused without validating.
    Policy,
    /// The file system and storage below, mapped by odxflt's post-operation.
    Below {
        /// The status that came up from below, before mapping.
        below: NtStatus,
    },
}

impl DecidedBy {
    /// A short description.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::IoManager => "I/O manager".to_owned(),
            Self::Odxflt(check) => format!("odxflt: {check:?}"),
            Self::Policy => "odxflt policy (veto mode or a veto rule)".to_owned(),
            Self::Below { below } => format!("volume below ({below})"),
        }
    }
}

/// The result of one FSCTL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsctlOutcome {
    /// Final status.
    pub status: NtStatus,
    /// The output bytes returned (`IoStatus.Information` of them).
    pub output: Vec<u8>,
    /// Which layer decided.
    pub decided_by: DecidedBy,
    /// Facts odxflt asked for.
    pub facts: FactCounts,
    /// The sequence number of the request's journal record (`None`: the request never reached
    /// odxflt, so nothing was recorded).
    pub journal_seq: Option<u64>,
}

/// Records the simulated odxflt keeps: the driver's ring size.
pub const JOURNAL_CAPACITY: usize = 1024;

/// The default requesting process's image file name.
pub const DEFAULT_PROCESS: &str = "copy.exe";

/// The default requesting process id.
pub const DEFAULT_PROCESS_ID: u64 = 1000;

/// The process image as the kernel hands it for an image file name: a name holding a `\` is
/// taken as it is; any other non-empty name is put in `System32` of the boot volume
/// (`\Device\HarddiskVolume1\Windows\System32\<name>`); an empty name stays empty (the query
/// fails). The PE harness's kernel mock forms the same string.
#[must_use]
pub fn kernel_image_path(process: &str) -> String {
    if process.is_empty() || process.contains('\\') {
        process.to_owned()
    } else {
        format!("\\Device\\HarddiskVolume1\\Windows\\System32\\{process}")
    }
}

/// Who sends a request, as odxflt can learn it: the process's image and id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requester {
    /// The image as the kernel hands it ([`kernel_image_path`]), UTF-16; empty: the query
    /// fails.
    pub image: Vec<u16>,
    /// The process id.
    pub process_id: u64,
}

impl Requester {
    /// The requester for an image file name (or a full image path) and a process id.
    #[must_use]
    pub fn new(process: &str, process_id: u64) -> Self {
        Self {
            image: kernel_image_path(process).encode_utf16().collect(),
            process_id,
        }
    }
}

impl Default for Requester {
    fn default() -> Self {
        Self::new(DEFAULT_PROCESS, DEFAULT_PROCESS_ID)
    }
}

/// The volume's names as odxflt caches them at instance setup (what a rule's `volume=` is
/// compared with), UTF-16.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedVolumeNames {
    /// `\Device\HarddiskVolume2`.
    pub device: Vec<u16>,
    /// `D:`.
    pub dos: Vec<u16>,
    /// `\??\Volume{…}`.
    pub guid: Vec<u16>,
}

impl OwnedVolumeNames {
    /// The names from text.
    #[must_use]
    pub fn new(device: &str, dos: &str, guid: &str) -> Self {
        Self {
            device: device.encode_utf16().collect(),
            dos: dos.encode_utf16().collect(),
            guid: guid.encode_utf16().collect(),
        }
    }

    /// Borrowed, as the core takes them.
    #[must_use]
    pub fn names(&self) -> VolumeNames<'_> {
        VolumeNames {
            device: &self.device,
            dos: &self.dos,
            guid: &self.guid,
        }
    }
}

/// An offload read's typed result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadResult {
    /// `TransferLength`.
    pub transfer_length: u64,
    /// `Flags`.
    pub flags: OffloadReadFlags,
    /// The token.
    pub token: StorageOffloadToken,
}

/// The simulated stack.
#[derive(Debug)]
pub struct Stack<S> {
    volume: Volume<S>,
    filters: Vec<SupportedFeatures>,
    mode: FilterSupportedFeaturesMode,
    handles: Vec<HandleState>,
    rules: Rules,
    policy: PolicyMode,
    default_policy: PolicyMode,
    stats: VolumeStats,
    /// odxflt's view of the storage, built at instance setup from the disk's answer to the
    /// copy-offload property query ([`crate::disk::instance_setup`]).
    storage: StorageState,
    /// odxflt's governance rules (boxed: 64 rules of inline UTF-16 names).
    rule_set: Box<RuleSet>,
    /// odxflt's decision journal (boxed: the ring is a few hundred KiB).
    journal: Box<Journal<JOURNAL_CAPACITY>>,
    /// What the journal records (odxflt's `Parameters\Journal`).
    journal_mode: JournalMode,
    /// The volume's names.
    volume_names: OwnedVolumeNames,
}

impl<S: DataStore> PortTarget for Stack<S> {
    fn volume_slots(&self) -> u32 {
        1
    }
    fn volume_count(&self) -> u32 {
        1
    }
    fn volume(&self, index: u32) -> Option<(PolicyMode, &VolumeStats)> {
        (index == 0).then_some((self.policy, &self.stats))
    }
    fn set_volume_policy(&mut self, index: u32, mode: PolicyMode) -> bool {
        if index == 0 {
            self.policy = mode;
        }
        index == 0
    }
    fn default_policy(&self) -> PolicyMode {
        self.default_policy
    }
    fn set_default_policy(&mut self, mode: PolicyMode) {
        self.default_policy = mode;
    }
    fn registry_source(&self) -> RegistrySource {
        RegistrySource::Valid(self.default_policy)
    }
    fn storage(&self, index: u32) -> Option<&StorageState> {
        (index == 0).then_some(&self.storage)
    }
    fn now(&self) -> u64 {
        self.interrupt_time()
    }
    fn with_rules(&self, f: &mut dyn FnMut(&RuleSet)) {
        f(&self.rule_set);
    }
    fn with_rules_mut(&mut self, f: &mut dyn FnMut(&mut RuleSet)) {
        f(&mut self.rule_set);
    }
    fn journal(&self) -> Option<&dyn DecisionLog> {
        (self.journal_mode != JournalMode::Off).then_some(&*self.journal as &dyn DecisionLog)
    }
}

/// A `SetRules` port message: the header, then `text` (UTF-8, one rule per line), as
/// `odxctl rules` and a scenario's `op = "set_rules"` send it.
#[must_use]
pub fn set_rules_message(text: &str) -> Vec<u8> {
    use odx_core::port::{ALL_VOLUMES, MessageHeader, MessageKind};
    use zerocopy::IntoBytes;
    let header = MessageHeader::new(
        MessageKind::SetRules,
        MessageHeader::SIZE.saturating_add(text.len()),
        ALL_VOLUMES,
    );
    let mut message = header.as_bytes().to_vec();
    message.extend_from_slice(text.as_bytes());
    message
}

/// The default lock owner of the opens a caller makes with [`Stack::open`] on one file: every
/// handle of the same file shares it (a scenario's "self").
#[must_use]
pub const fn self_open(file: FileId) -> OpenId {
    OpenId(file.0)
}

/// A lock owner that is never one of [`Stack::open`]'s handles (a scenario's "other").
#[must_use]
pub const fn other_open(file: FileId) -> OpenId {
    OpenId(file.0 | (1 << 63))
}

impl<S: DataStore> Stack<S> {
    /// A stack over a fresh volume. `filters` are the other attached filters' `SupportedFeatures`;
    /// odxflt (0x3) is always attached, and its instance setup asks the disk for its
    /// copy-offload property (`config.storage_query()`).
    pub fn new(
        config: VolumeConfig,
        data: S,
        filters: Vec<SupportedFeatures>,
        mode: FilterSupportedFeaturesMode,
    ) -> Self {
        let storage = crate::disk::instance_setup(&config.storage_query(), config.backoff_seconds);
        Self {
            volume: Volume::new(config, data),
            filters,
            mode,
            handles: Vec::new(),
            rules: Rules::DOCUMENTED,
            policy: PolicyMode::Enforce,
            default_policy: PolicyMode::Enforce,
            stats: VolumeStats::new(),
            storage,
            rule_set: Box::default(),
            journal: Box::default(),
            journal_mode: JournalMode::DEFAULT,
            volume_names: OwnedVolumeNames::new(
                crate::scenario::DEFAULT_DEVICE_NAME,
                crate::scenario::DEFAULT_DOS_NAME,
                crate::scenario::DEFAULT_GUID_NAME,
            ),
        }
    }

    /// Loads odxflt's rules as the driver does at instance start from `Parameters\Rules`
    /// (one rule per `REG_MULTI_SZ` string): the lenient loader, bad strings skipped and
    /// reported (their line is the string's number, from 1), never a failed load.
    pub fn load_registry_rules<'a>(
        &mut self,
        strings: impl IntoIterator<Item = &'a str>,
    ) -> ParseReport {
        self.rule_set.load_lines(strings)
    }

    /// The rules in force.
    #[must_use]
    pub fn rule_set(&self) -> &RuleSet {
        &self.rule_set
    }

    /// The decision journal.
    #[must_use]
    pub fn journal(&self) -> &Journal<JOURNAL_CAPACITY> {
        &self.journal
    }

    /// What the journal records (odxflt's `Parameters\Journal`; default
    /// [`JournalMode::Decisions`]).
    pub const fn set_journal_mode(&mut self, mode: JournalMode) {
        self.journal_mode = mode;
    }

    /// Sets the volume's names (what a rule's `volume=` is compared with).
    pub fn set_volume_names(&mut self, names: OwnedVolumeNames) {
        self.volume_names = names;
    }

    /// The volume's names.
    #[must_use]
    pub const fn volume_names(&self) -> &OwnedVolumeNames {
        &self.volume_names
    }

    /// odxflt's storage state for the volume (capability from instance setup, back-offs).
    pub const fn storage_state(&self) -> &StorageState {
        &self.storage
    }

    /// The simulated interrupt time: the storage clock ([`Self::advance_ms`]) in 100-ns ticks.
    /// Monotonic.
    #[must_use]
    pub const fn interrupt_time(&self) -> u64 {
        self.volume.now_ms().saturating_mul(TICKS_PER_SECOND / 1000)
    }

    /// The volume facts odxflt caches at instance setup, with the offload bits its storage
    /// state allows now in place of NTFS's (which the driver cannot see).
    #[must_use]
    pub fn odxflt_volume_facts(&self) -> VolumeFacts {
        let mut facts = self.volume.facts();
        facts
            .flags
            .remove(VolumeFlags::OFFLOAD_READ_SUPPORTED | VolumeFlags::OFFLOAD_WRITE_SUPPORTED);
        facts.flags |= self.storage.offload_flags(self.interrupt_time());
        facts
    }

    /// Sets odxflt's policy mode on the volume (enforce, monitor, veto).
    pub const fn set_policy(&mut self, policy: PolicyMode) {
        self.policy = policy;
    }

    /// odxflt's policy mode on the volume.
    #[must_use]
    pub const fn policy(&self) -> PolicyMode {
        self.policy
    }

    /// The load-time default (the scenario's `policy`, standing for the registry's
    /// `DefaultPolicy`): sets the default and the volume's mode.
    pub const fn set_registry_policy(&mut self, policy: PolicyMode) {
        self.default_policy = policy;
        self.policy = policy;
    }

    /// odxflt's communication port on the simulated stack: the same messages and the same
    /// handler (`odx_core::serve::handle_request`) as the driver's `\\OdxfltPort`. The volume
    /// is index 0. `reply_len` is the caller's output buffer length.
    ///
    /// # Errors
    /// The status the driver would answer with (malformed request, short output, no volume).
    pub fn port_request(&mut self, request: &[u8], reply_len: usize) -> Result<Vec<u8>, NtStatus> {
        let mut reply = vec![0u8; reply_len];
        let n = handle_request(request, &mut reply, self)?;
        reply.truncate(n);
        Ok(reply)
    }

    /// The other filters' `SupportedFeatures`, in stack order.
    #[must_use]
    pub fn filters(&self) -> &[SupportedFeatures] {
        &self.filters
    }

    /// `FilterSupportedFeaturesMode`.
    #[must_use]
    pub const fn supported_features_mode(&self) -> FilterSupportedFeaturesMode {
        self.mode
    }

    /// odxflt's counters for the volume.
    pub const fn stats(&self) -> &VolumeStats {
        &self.stats
    }

    /// The volume.
    pub const fn volume(&self) -> &Volume<S> {
        &self.volume
    }

    /// The volume, mutably (setup, plain I/O helpers).
    pub const fn volume_mut(&mut self) -> &mut Volume<S> {
        &mut self.volume
    }

    /// `FsRtlGetSupportedFeatures` for the stack: odxflt plus the other filters.
    pub fn supported_features(&self) -> SupportedFeatures {
        let all = std::iter::once(SupportedFeatures::ODXFLT).chain(self.filters.iter().copied());
        aggregate_supported_features(all, self.mode)
    }

    /// Opens a handle on `file` with `granted` access.
    ///
    /// # Errors
    /// No such file.
    pub fn open(&mut self, file: FileId, granted: AccessMask) -> Result<HandleId, SimError> {
        if self.volume.entry(file).is_none() {
            return Err(SimError::NoFile(format!("#{}", file.0)));
        }
        self.handles.push(HandleState {
            file,
            granted,
            open: self_open(file),
            key: 0,
            closed: false,
        });
        Ok(HandleId(self.handles.len() - 1))
    }

    /// Runs cleanup on a handle (later requests on it see a closed file object).
    pub fn close(&mut self, handle: HandleId) {
        if let Some(h) = self.handles.get_mut(handle.0) {
            h.closed = true;
        }
    }

    /// The handle's state.
    #[must_use]
    pub fn handle(&self, handle: HandleId) -> Option<HandleState> {
        self.handles.get(handle.0).copied()
    }

    /// [`Self::fsctl_as`] from the default requester (`copy.exe`, process id 1000).
    pub fn fsctl(
        &mut self,
        handle: HandleId,
        code: u32,
        input: &[u8],
        output_len: usize,
        requestor: RequestorMode,
    ) -> FsctlOutcome {
        self.fsctl_as(
            handle,
            code,
            input,
            output_len,
            requestor,
            &Requester::default(),
        )
    }

    /// `NtFsControlFile` from `requester`: the I/O manager, then odxflt (its rules, its checks,
    /// its journal), then (if forwarded or passed through) NTFS's own checks and the volume
    /// ([`crate::ntfs::validate_then_execute`]), and (if forwarded) odxflt's post-operation.
    pub fn fsctl_as(
        &mut self,
        handle: HandleId,
        code: u32,
        input: &[u8],
        output_len: usize,
        requestor: RequestorMode,
        requester: &Requester,
    ) -> FsctlOutcome {
        let fail = |status, decided_by| FsctlOutcome {
            status,
            output: Vec::new(),
            decided_by,
            facts: FactCounts::default(),
            journal_seq: None,
        };
        let Some(state) = self.handle(handle) else {
            return fail(NtStatus::STATUS_INVALID_HANDLE, DecidedBy::IoManager);
        };
        let Some(op) = OffloadOp::from_fsctl(code) else {
            return fail(
                NtStatus::STATUS_INVALID_DEVICE_REQUEST,
                DecidedBy::IoManager,
            );
        };
        if let Err(status) =
            io_manager_precheck(op, requestor, state.granted, self.supported_features())
        {
            return fail(status, DecidedBy::IoManager);
        }
        // METHOD_BUFFERED: one system buffer, as long as the longer of the two.
        let mut buffer = vec![0u8; input.len().max(output_len)];
        if let Some(dst) = buffer.get_mut(..input.len()) {
            dst.copy_from_slice(input);
        }
        let now = self.interrupt_time();
        let odxflt_volume = self.odxflt_volume_facts();
        let Some(file) = self.volume.entry(state.file) else {
            return fail(NtStatus::STATUS_FILE_DELETED, DecidedBy::IoManager);
        };
        let mut facts = ModelFacts {
            volume: odxflt_volume,
            file,
            handle: state,
            process: &requester.image,
            counts: FactCounts::default(),
            vdl_visible: false,
        };
        let request = BufferedRequest {
            op,
            buffer: &mut buffer,
            input_len: input.len(),
            output_len,
        };
        let first_seq = self.journal.head();
        let env = PreEnv {
            mode: self.policy,
            rules: &self.rules,
            stats: Some(&self.stats),
            governance: (!self.rule_set.is_empty()).then(|| Governance {
                rules: &self.rule_set,
                volume: self.volume_names.names(),
                requestor,
            }),
            journal: (self.journal_mode != JournalMode::Off).then(|| JournalAt {
                log: &*self.journal,
                time: now,
                volume: 0,
                process_id: requester.process_id,
                names: self.journal_mode.names(),
            }),
        };
        let pre = pre_operation(request, &mut facts, &env);
        let counts = facts.counts;
        let journal_seq = (self.journal.head() > first_seq).then_some(first_seq);
        let (status, information, decided_by) = match pre {
            PreOp::Complete {
                status,
                information,
                check,
            } => {
                let by = check.map_or(DecidedBy::Policy, DecidedBy::Odxflt);
                (status, information, by)
            }
            PreOp::PassThrough { .. } => {
                // FLT_PREOP_SUCCESS_NO_CALLBACK: NTFS answers, and odxflt never sees the answer.
                let below = crate::ntfs::validate_then_execute(
                    &mut self.volume,
                    op,
                    state,
                    &mut buffer,
                    input.len(),
                    output_len,
                    &self.rules,
                );
                (
                    below.status,
                    below.information,
                    DecidedBy::Below {
                        below: below.status,
                    },
                )
            }
            PreOp::Forward {
                context,
                journal_seq: forwarded,
                ..
            } => {
                // NTFS applies its own MS-FSA checks to whatever reaches it: what odxflt validated
                // passes them again, and the rules odxflt leaves to NTFS (valid data length) and
                // everything in monitor mode are decided there.
                let below = crate::ntfs::validate_then_execute(
                    &mut self.volume,
                    op,
                    state,
                    &mut buffer,
                    input.len(),
                    output_len,
                    &self.rules,
                );
                let (status, information) = post_operation(
                    &context,
                    below.status,
                    &mut buffer,
                    below.information,
                    output_len,
                    &self.rules,
                    &self.stats,
                    StorageAt {
                        state: &self.storage,
                        now,
                    },
                    forwarded.map(|seq| JournalSeq {
                        log: &*self.journal,
                        seq,
                    }),
                );
                (
                    status,
                    information,
                    DecidedBy::Below {
                        below: below.status,
                    },
                )
            }
        };
        buffer.truncate(information);
        FsctlOutcome {
            status,
            output: buffer,
            decided_by,
            facts: counts,
            journal_seq,
        }
    }

    /// A well-formed `FSCTL_OFFLOAD_READ` from user mode.
    ///
    /// # Errors
    /// The final status when it is not success.
    pub fn offload_read(
        &mut self,
        handle: HandleId,
        offset: u64,
        length: u64,
        ttl_ms: u32,
    ) -> Result<ReadResult, NtStatus> {
        let input = OffloadReadInput::new(offset, length, ttl_ms);
        let mut bytes = [0u8; OffloadReadInput::SIZE];
        let _ = input.serialize_into(&mut bytes);
        let outcome = self.fsctl(
            handle,
            odx_core::FSCTL_OFFLOAD_READ,
            &bytes,
            OffloadReadOutput::SIZE,
            RequestorMode::User,
        );
        if !outcome.status.is_success() {
            return Err(outcome.status);
        }
        let out = OffloadReadOutput::parse(&outcome.output)
            .map_err(|_| NtStatus::STATUS_BUFFER_TOO_SMALL)?;
        Ok(ReadResult {
            transfer_length: out.transfer_length.get(),
            flags: out.read_flags(),
            token: out.token,
        })
    }

    /// A well-formed `FSCTL_OFFLOAD_WRITE` from user mode; returns `LengthWritten`.
    ///
    /// # Errors
    /// The final status when it is not success.
    pub fn offload_write(
        &mut self,
        handle: HandleId,
        offset: u64,
        length: u64,
        transfer_offset: u64,
        token: &StorageOffloadToken,
    ) -> Result<u64, NtStatus> {
        let input = OffloadWriteInput::new(offset, length, transfer_offset, *token);
        let mut bytes = [0u8; OffloadWriteInput::SIZE];
        let _ = input.serialize_into(&mut bytes);
        let outcome = self.fsctl(
            handle,
            odx_core::FSCTL_OFFLOAD_WRITE,
            &bytes,
            OffloadWriteOutput::SIZE,
            RequestorMode::User,
        );
        if !outcome.status.is_success() {
            return Err(outcome.status);
        }
        OffloadWriteOutput::parse(&outcome.output)
            .map(|out| out.length_written.get())
            .map_err(|_| NtStatus::STATUS_BUFFER_TOO_SMALL)
    }

    fn plain_io_check(
        &self,
        handle: HandleId,
        range: ByteRange,
        write: bool,
    ) -> Result<HandleState, NtStatus> {
        let state = self.handle(handle).ok_or(NtStatus::STATUS_INVALID_HANDLE)?;
        if state.closed {
            return Err(NtStatus::STATUS_FILE_CLOSED);
        }
        let (needed, intent) = if write {
            (AccessMask::WRITE_DATA, LockIntent::Exclusive)
        } else {
            (AccessMask::READ_DATA, LockIntent::Shared)
        };
        if !state.granted.contains(needed) {
            return Err(NtStatus::STATUS_ACCESS_DENIED);
        }
        let flags = self.volume.flags();
        if flags.contains(odx_core::flags::VolumeFlags::DISMOUNTED) {
            return Err(NtStatus::STATUS_VOLUME_DISMOUNTED);
        }
        if write && flags.contains(odx_core::flags::VolumeFlags::READ_ONLY) {
            return Err(NtStatus::STATUS_MEDIA_WRITE_PROTECTED);
        }
        let entry = self
            .volume
            .entry(state.file)
            .ok_or(NtStatus::STATUS_FILE_DELETED)?;
        if range_conflicts(&entry.locks, range, intent, state.open, state.key) {
            return Err(NtStatus::STATUS_FILE_LOCK_CONFLICT);
        }
        Ok(state)
    }

    /// `ReadFile` at an offset: returns the bytes read (short at end of file).
    ///
    /// # Errors
    /// Handle, access, lock or store failures, as a status.
    pub fn read(
        &mut self,
        handle: HandleId,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, NtStatus> {
        let state = self.plain_io_check(handle, ByteRange::new(offset, buf.len() as u64), false)?;
        self.volume
            .read_data(state.file, offset, buf)
            .map_err(|_| NtStatus::STATUS_INSUFFICIENT_RESOURCES)
    }

    /// `WriteFile` at an offset (extends the file, invalidates tokens over the range).
    ///
    /// # Errors
    /// Handle, access, lock or store failures, as a status.
    pub fn write(&mut self, handle: HandleId, offset: u64, data: &[u8]) -> Result<(), NtStatus> {
        let state = self.plain_io_check(handle, ByteRange::new(offset, data.len() as u64), true)?;
        self.volume
            .write_data(state.file, offset, data)
            .map_err(|_| NtStatus::STATUS_INSUFFICIENT_RESOURCES)
    }

    /// `SetEndOfFile` through a handle.
    ///
    /// # Errors
    /// Handle, access or store failures, as a status.
    pub fn set_end_of_file(&mut self, handle: HandleId, len: u64) -> Result<(), NtStatus> {
        let state = self.plain_io_check(handle, ByteRange::default(), true)?;
        self.volume
            .set_end_of_file(state.file, len)
            .map_err(|_| NtStatus::STATUS_INSUFFICIENT_RESOURCES)
    }

    /// End of file of the handle's file.
    ///
    /// # Errors
    /// An unknown handle.
    pub fn end_of_file(&self, handle: HandleId) -> Result<u64, NtStatus> {
        let state = self.handle(handle).ok_or(NtStatus::STATUS_INVALID_HANDLE)?;
        self.volume
            .entry(state.file)
            .map(|e| e.end_of_file)
            .ok_or(NtStatus::STATUS_FILE_DELETED)
    }

    /// Advances the storage clock.
    pub fn advance_ms(&mut self, ms: u64) {
        self.volume.advance_ms(ms);
    }
}
