//! Every attached volume's statistics and policy, in a fixed table of slots in the driver image's
//! non-paged data: instance setup claims a slot, instance teardown (complete) frees it, the
//! volume context remembers its slot. Post-operation reaches the counters through the slot
//! number in the completion context — no context lookup, no reference to release — so it may run
//! at DISPATCH_LEVEL; the communication port reads and changes the same slots
//! (`odx_core::serve::PortTarget`). Each slot also holds the volume's storage state
//! (`odx_core::storage::StorageState`: what the storage said at instance setup and the back-off
//! post-operation learns), for the same reason: post-operation learns at DISPATCH_LEVEL and the
//! port reports it, neither can look up the instance context. Plain atomics, no locks, no unsafe.

use core::sync::atomic::{AtomicU32, Ordering};

use odx_core::governance::{DecisionLog, Journal, JournalMode, RuleSet};
use odx_core::policy::PolicyMode;
use odx_core::port::RegistrySource;
use odx_core::serve::PortTarget;
use odx_core::stats::VolumeStats;
use odx_core::storage::{DEFAULT_BACKOFF_SECONDS, StorageCapability, StorageState};

/// Number of slots: volumes attached beyond this are governed by the default policy and not
/// counted (docs/driver.md).
pub const SLOTS: usize = 32;

const FREE: u32 = 0;
const CLAIMING: u32 = 1;
const IN_USE: u32 = 2;

/// One attached volume.
#[derive(Debug)]
pub struct VolumeSlot {
    state: AtomicU32,
    policy: AtomicU32,
    stats: VolumeStats,
    storage: StorageState,
}

impl VolumeSlot {
    const fn new() -> Self {
        Self {
            state: AtomicU32::new(FREE),
            policy: AtomicU32::new(0),
            stats: VolumeStats::new(),
            storage: StorageState::new(StorageCapability::Unknown, DEFAULT_BACKOFF_SECONDS),
        }
    }

    /// The volume's storage state.
    #[must_use]
    pub const fn storage(&self) -> &StorageState {
        &self.storage
    }

    /// The volume's policy.
    #[must_use]
    pub fn policy(&self) -> PolicyMode {
        PolicyMode::from_u32(self.policy.load(Ordering::Acquire)).unwrap_or_default()
    }

    /// The volume's counters.
    #[must_use]
    pub const fn stats(&self) -> &VolumeStats {
        &self.stats
    }

    fn in_use(&self) -> bool {
        self.state.load(Ordering::Acquire) == IN_USE
    }
}

/// The table.
#[derive(Debug)]
pub struct VolumeTable {
    slots: [VolumeSlot; SLOTS],
    default_policy: AtomicU32,
    registry_state: AtomicU32,
    registry_value: AtomicU32,
    backoff: AtomicU32,
    backoff_source: AtomicU32,
    rules_accepted: AtomicU32,
    rules_rejected: AtomicU32,
    /// [`JournalMode`] (`Parameters\\Journal`) as its registry value.
    journal: AtomicU32,
}

/// odxflt's table.
pub static VOLUMES: VolumeTable = VolumeTable::new();

impl VolumeTable {
    /// Empty, enforcing by default, registry value absent.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            slots: [const { VolumeSlot::new() }; SLOTS],
            default_policy: AtomicU32::new(0),
            registry_state: AtomicU32::new(0),
            registry_value: AtomicU32::new(0),
            backoff: AtomicU32::new(DEFAULT_BACKOFF_SECONDS),
            backoff_source: AtomicU32::new(0),
            rules_accepted: AtomicU32::new(0),
            rules_rejected: AtomicU32::new(0),
            journal: AtomicU32::new(JournalMode::DEFAULT_CODE),
        }
    }

    /// At load: what the journal records, from the service's `Parameters\Journal`.
    pub fn load_journal(&self, mode: JournalMode) {
        self.journal.store(mode.as_u32(), Ordering::Release);
    }

    /// What the journal records.
    #[must_use]
    pub fn journal_mode(&self) -> JournalMode {
        JournalMode::from_dword(Some(self.journal.load(Ordering::Relaxed)))
    }

    /// What the registry's `Parameters\Rules` load did (DriverEntry): rules taken, lines
    /// rejected. Kept for a debugger (`dt odxflt!VOLUMES`) and the PE harness; the port protocol
    /// has no field for it (QueryRules shows the rules taken).
    pub fn rules_loaded(&self, accepted: usize, rejected: usize) {
        self.rules_accepted.store(
            u32::try_from(accepted).unwrap_or(u32::MAX),
            Ordering::Release,
        );
        self.rules_rejected.store(
            u32::try_from(rejected).unwrap_or(u32::MAX),
            Ordering::Release,
        );
    }

    /// `(accepted, rejected)` of the registry load.
    #[must_use]
    pub fn rules_load(&self) -> (u32, u32) {
        (
            self.rules_accepted.load(Ordering::Acquire),
            self.rules_rejected.load(Ordering::Acquire),
        )
    }

    /// At load: the back-off period from the service's `Parameters\OffloadBackoffSeconds`.
    pub fn load_backoff(&self, source: BackoffSource) {
        self.backoff_source
            .store(source.to_wire(), Ordering::Release);
        self.backoff.store(source.seconds(), Ordering::Release);
    }

    /// The back-off period new volumes get, seconds (before the core's clamp).
    #[must_use]
    pub fn backoff_seconds(&self) -> u32 {
        self.backoff.load(Ordering::Acquire)
    }

    /// Where the back-off period came from at load.
    #[must_use]
    pub fn backoff_source(&self) -> BackoffSource {
        BackoffSource::from_wire(
            self.backoff_source.load(Ordering::Acquire),
            self.backoff_seconds(),
        )
    }

    /// At load: the default policy from the service's `Parameters\DefaultPolicy`.
    pub fn load_default(&self, source: RegistrySource) {
        let (state, value) = source.to_wire();
        self.registry_state.store(state, Ordering::Release);
        self.registry_value.store(value, Ordering::Release);
        self.default_policy
            .store(source.mode().as_u32(), Ordering::Release);
    }

    /// The default policy.
    #[must_use]
    pub fn default_mode(&self) -> PolicyMode {
        PolicyMode::from_u32(self.default_policy.load(Ordering::Acquire)).unwrap_or_default()
    }

    /// Claims a free slot for a volume being attached: counters zero, policy the default, the
    /// storage state set up from what the storage said (`capability`) with the configured
    /// back-off. `None` when every slot is taken.
    pub fn attach(&self, capability: StorageCapability) -> Option<u32> {
        let (index, slot) = self.slots.iter().enumerate().find(|(_, slot)| {
            slot.state
                .compare_exchange(FREE, CLAIMING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })?;
        slot.stats.reset();
        slot.storage.reset(capability, self.backoff_seconds());
        slot.policy
            .store(self.default_mode().as_u32(), Ordering::Release);
        slot.state.store(IN_USE, Ordering::Release);
        u32::try_from(index).ok()
    }

    /// Frees a slot (instance teardown complete: no operation of the instance is in flight).
    pub fn detach(&self, index: u32) {
        if let Some(slot) = self.slot(index) {
            slot.state.store(FREE, Ordering::Release);
        }
    }

    fn slot(&self, index: u32) -> Option<&VolumeSlot> {
        self.slots.get(usize::try_from(index).ok()?)
    }

    /// An attached volume's slot.
    #[must_use]
    pub fn get(&self, index: u32) -> Option<&VolumeSlot> {
        self.slot(index).filter(|slot| slot.in_use())
    }

    /// The policy of the volume in `slot`, or the default for a volume without one.
    #[must_use]
    pub fn policy(&self, slot: Option<u32>) -> PolicyMode {
        slot.and_then(|index| self.get(index))
            .map_or_else(|| self.default_mode(), VolumeSlot::policy)
    }

    /// The counters of the volume in `slot` (post-operation: by slot number, no lookup).
    #[must_use]
    pub fn stats(&self, slot: Option<u32>) -> Option<&VolumeStats> {
        slot.and_then(|index| self.get(index))
            .map(VolumeSlot::stats)
    }

    /// The storage state of the volume in `slot` (post-operation: by slot number, no lookup).
    #[must_use]
    pub fn storage(&self, slot: Option<u32>) -> Option<&StorageState> {
        slot.and_then(|index| self.get(index))
            .map(VolumeSlot::storage)
    }

    /// The storage state pre-operation reads for the volume in `slot`; a volume without a slot
    /// has only what setup learned (`capability`), and no back-off: post-operation learns into
    /// a slot's state only, so these shared states are never written.
    #[must_use]
    pub fn storage_or(&self, slot: Option<u32>, capability: StorageCapability) -> &StorageState {
        static NO_OFFLOAD: StorageState = StorageState::new(StorageCapability::NotSupported, 0);
        static NO_BACKOFF: StorageState = StorageState::new(StorageCapability::Unknown, 0);
        match self.storage(slot) {
            Some(state) => state,
            None if capability == StorageCapability::NotSupported => &NO_OFFLOAD,
            None => &NO_BACKOFF,
        }
    }

    /// The table as the port's message handler sees it.
    #[must_use]
    pub const fn port(&self) -> PortView<'_> {
        PortView(self)
    }
}

impl Default for VolumeTable {
    fn default() -> Self {
        Self::new()
    }
}

/// [`VolumeTable`] as `odx_core::serve::PortTarget`.
#[derive(Debug)]
pub struct PortView<'a>(&'a VolumeTable);

impl PortTarget for PortView<'_> {
    fn volume_slots(&self) -> u32 {
        u32::try_from(SLOTS).unwrap_or(u32::MAX)
    }

    fn volume_count(&self) -> u32 {
        let used = self.0.slots.iter().filter(|slot| slot.in_use()).count();
        u32::try_from(used).unwrap_or(u32::MAX)
    }

    fn volume(&self, index: u32) -> Option<(PolicyMode, &VolumeStats)> {
        self.0.get(index).map(|slot| (slot.policy(), slot.stats()))
    }

    fn set_volume_policy(&mut self, index: u32, mode: PolicyMode) -> bool {
        self.0.get(index).is_some_and(|slot| {
            slot.policy.store(mode.as_u32(), Ordering::Release);
            true
        })
    }

    fn default_policy(&self) -> PolicyMode {
        self.0.default_mode()
    }

    fn set_default_policy(&mut self, mode: PolicyMode) {
        self.0
            .default_policy
            .store(mode.as_u32(), Ordering::Release);
    }

    fn registry_source(&self) -> RegistrySource {
        RegistrySource::from_wire(
            self.0.registry_state.load(Ordering::Acquire),
            self.0.registry_value.load(Ordering::Acquire),
        )
        .unwrap_or(RegistrySource::Absent)
    }

    fn storage(&self, index: u32) -> Option<&StorageState> {
        self.0.get(index).map(VolumeSlot::storage)
    }

    fn now(&self) -> u64 {
        crate::ffi::kernel::interrupt_time()
    }

    fn with_rules(&self, f: &mut dyn FnMut(&RuleSet)) {
        crate::ffi::rules::read(|set| f(set));
    }

    fn with_rules_mut(&mut self, f: &mut dyn FnMut(&mut RuleSet)) {
        crate::ffi::rules::write(|set| f(set));
    }

    fn journal(&self) -> Option<&dyn DecisionLog> {
        // `Parameters\Journal` = 0: no journal to read (ReadJournal answers as for a filter
        // without one).
        (self.0.journal_mode() != JournalMode::Off).then_some(&JOURNAL as &dyn DecisionLog)
    }
}

/// Records in the decision journal.
pub const JOURNAL_RECORDS: usize = 1024;

/// The decision journal: a lock-free ring of [`JOURNAL_RECORDS`] records (200 bytes each) in the
/// image's non-paged data, written from pre-operation (<= APC_LEVEL) and post-operation (<=
/// DISPATCH_LEVEL), read by the port in pages (`odx_core::governance::Journal`).
pub static JOURNAL: Journal<JOURNAL_RECORDS> = Journal::new();

/// Where the back-off period came from (`Parameters\OffloadBackoffSeconds`), as
/// `RegistrySource` says it for `DefaultPolicy`: absent or another type means the default
/// ([`DEFAULT_BACKOFF_SECONDS`]); a DWORD is taken as it is (the core clamps it to
/// `MAX_BACKOFF_SECONDS`; 0 turns learning off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackoffSource {
    /// No such value (or key): the default.
    Absent,
    /// A `REG_DWORD`.
    Valid(u32),
    /// Another type or size: the default.
    WrongType,
}

impl BackoffSource {
    /// The period it gives, seconds.
    #[must_use]
    pub const fn seconds(self) -> u32 {
        match self {
            Self::Valid(seconds) => seconds,
            Self::Absent | Self::WrongType => DEFAULT_BACKOFF_SECONDS,
        }
    }

    const fn to_wire(self) -> u32 {
        match self {
            Self::Absent => 0,
            Self::Valid(_) => 1,
            Self::WrongType => 2,
        }
    }

    const fn from_wire(state: u32, seconds: u32) -> Self {
        match state {
            1 => Self::Valid(seconds),
            2 => Self::WrongType,
            _ => Self::Absent,
        }
    }
}

/// `REG_DWORD`.
pub const REG_DWORD: u32 = 4;

crate::pin_constant!(REG_DWORD => "REG_DWORD");

/// `KEY_VALUE_PARTIAL_INFORMATION` field offsets, from the layout table.
const fn partial_offset(field: &str) -> usize {
    match crate::ffi::layouts::offset("KEY_VALUE_PARTIAL_INFORMATION", field) {
        Some(offset) => offset,
        // A missing row fails the build (assert below); never reached at run time.
        None => usize::MAX,
    }
}
const PARTIAL_TYPE: usize = partial_offset("Type");
const PARTIAL_DATA_LENGTH: usize = partial_offset("DataLength");
const PARTIAL_DATA: usize = partial_offset("Data");
const _: () = assert!(
    PARTIAL_TYPE != usize::MAX && PARTIAL_DATA_LENGTH != usize::MAX && PARTIAL_DATA != usize::MAX,
    "kernel-layouts.json: KEY_VALUE_PARTIAL_INFORMATION fields missing"
);

/// The `REG_DWORD` in a `KEY_VALUE_PARTIAL_INFORMATION` (`TitleIndex`, `Type`, `DataLength`,
/// `Data`), or `Err` for any other type or size.
fn dword(bytes: &[u8]) -> Result<u32, ()> {
    let word = |at: usize| -> Option<u32> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(raw))
    };
    match (
        word(PARTIAL_TYPE),
        word(PARTIAL_DATA_LENGTH),
        word(PARTIAL_DATA),
    ) {
        (Some(REG_DWORD), Some(4), Some(value)) => Ok(value),
        _ => Err(()),
    }
}

/// Interprets what `ZwQueryValueKey` returned for `DefaultPolicy`; `None` bytes = the value (or
/// the key) is absent or unreadable.
#[must_use]
pub fn registry_source(partial: Option<&[u8]>) -> RegistrySource {
    let Some(bytes) = partial else {
        return RegistrySource::Absent;
    };
    RegistrySource::from_value(Some(dword(bytes)))
}

/// Interprets what `ZwQueryValueKey` returned for `Journal` (absent or not a `REG_DWORD`: the
/// default).
#[must_use]
pub fn journal_mode(partial: Option<&[u8]>) -> JournalMode {
    JournalMode::from_dword(partial.and_then(|bytes| dword(bytes).ok()))
}

/// Interprets what `ZwQueryValueKey` returned for `OffloadBackoffSeconds`.
#[must_use]
pub fn backoff_source(partial: Option<&[u8]>) -> BackoffSource {
    match partial.map(dword) {
        None => BackoffSource::Absent,
        Some(Ok(seconds)) => BackoffSource::Valid(seconds),
        Some(Err(())) => BackoffSource::WrongType,
    }
}

#[cfg(test)]
mod tests {
    use odx_core::NtStatus;
    use odx_core::port::{
        ALL_VOLUMES, ConfigReply, MessageHeader, MessageKind, SetPolicyMessage, StatsReply,
    };
    use odx_core::serve::handle_request;
    use odx_core::wire::WireStruct;
    use zerocopy::IntoBytes;

    use super::*;

    #[test]
    fn slots_are_claimed_reset_and_freed() {
        let table = VolumeTable::new();
        table.load_default(RegistrySource::Valid(PolicyMode::Monitor));
        let a = table.attach(StorageCapability::Unknown).unwrap();
        let b = table.attach(StorageCapability::Unknown).unwrap();
        assert_eq!((a, b), (0, 1));
        assert_eq!(table.policy(Some(a)), PolicyMode::Monitor);
        let veto =
            odx_core::policy::Governed::Veto(NtStatus::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED);
        table
            .stats(Some(a))
            .unwrap()
            .on_pre_operation(odx_core::OffloadOp::Read, &veto);
        table.detach(a);
        assert!(
            table.stats(Some(a)).is_none(),
            "a freed slot counts nothing"
        );
        assert_eq!(table.policy(Some(a)), PolicyMode::Monitor, "default");
        assert_eq!(
            table.attach(StorageCapability::Unknown),
            Some(a),
            "the lowest free slot is reused"
        );
        assert_eq!(table.stats(Some(a)).unwrap().read.counts().seen, 0);
        assert_eq!(table.policy(None), PolicyMode::Monitor);
    }

    #[test]
    fn a_slot_holds_the_storage_state_reset_for_each_volume() {
        use odx_core::OffloadOp;
        use odx_core::storage::TICKS_PER_SECOND;
        let table = VolumeTable::new();
        table.load_backoff(backoff_source(Some(&partial(
            REG_DWORD,
            &60u32.to_le_bytes(),
        ))));
        let slot = table.attach(StorageCapability::NotSupported).unwrap();
        let storage = table.storage(Some(slot)).unwrap();
        assert_eq!(storage.capability(), StorageCapability::NotSupported);
        assert_eq!(storage.backoff_ticks(), 60 * TICKS_PER_SECOND);
        assert!(storage.learn(OffloadOp::Read, NtStatus::STATUS_NOT_SUPPORTED, 5));
        table.detach(slot);
        assert!(
            table.storage(Some(slot)).is_none(),
            "a freed slot has no storage"
        );
        assert_eq!(table.attach(StorageCapability::Unknown), Some(slot));
        let storage = table.storage(Some(slot)).unwrap();
        assert_eq!(storage.capability(), StorageCapability::Unknown);
        assert_eq!(
            storage.backoff_until(OffloadOp::Read, 6),
            None,
            "nothing carried over"
        );
        assert!(table.storage(None).is_none());
    }

    #[test]
    fn the_journal_mode_comes_from_the_registry_or_is_the_default() {
        let dword = |v: u32| journal_mode(Some(&partial(REG_DWORD, &v.to_le_bytes())));
        assert_eq!(journal_mode(None), JournalMode::Decisions, "absent");
        assert_eq!(dword(0), JournalMode::Off);
        assert_eq!(dword(1), JournalMode::Decisions);
        assert_eq!(dword(2), JournalMode::Named);
        assert_eq!(dword(3), JournalMode::Decisions, "unknown value");
        let string = partial(1, b"0\0\0\0");
        assert_eq!(
            journal_mode(Some(&string)),
            JournalMode::Decisions,
            "REG_SZ"
        );
        let table = VolumeTable::new();
        assert_eq!(table.journal_mode(), JournalMode::Decisions);
        assert!(table.port().journal().is_some());
        table.load_journal(JournalMode::Off);
        assert_eq!(table.journal_mode(), JournalMode::Off);
        assert!(table.port().journal().is_none(), "no journal to read");
        table.load_journal(JournalMode::Named);
        assert_eq!(table.journal_mode(), JournalMode::Named);
    }

    #[test]
    fn the_backoff_comes_from_the_registry_or_is_the_default() {
        assert_eq!(backoff_source(None), BackoffSource::Absent);
        assert_eq!(BackoffSource::Absent.seconds(), 180);
        let ten = partial(REG_DWORD, &10u32.to_le_bytes());
        assert_eq!(backoff_source(Some(&ten)), BackoffSource::Valid(10));
        let string = partial(1, b"10\0\0");
        assert_eq!(backoff_source(Some(&string)), BackoffSource::WrongType);
        assert_eq!(BackoffSource::WrongType.seconds(), 180);
        assert_eq!(backoff_source(Some(&[])), BackoffSource::WrongType);
        let table = VolumeTable::new();
        assert_eq!(table.backoff_seconds(), 180);
        table.load_backoff(BackoffSource::WrongType);
        assert_eq!(
            (table.backoff_seconds(), table.backoff_source()),
            (180, BackoffSource::WrongType)
        );
        table.load_backoff(BackoffSource::Valid(u32::MAX));
        let slot = table.attach(StorageCapability::Unknown).unwrap();
        // Clamped by the core, not here.
        assert_eq!(
            table.storage(Some(slot)).unwrap().backoff_ticks(),
            u64::from(odx_core::storage::MAX_BACKOFF_SECONDS) * odx_core::storage::TICKS_PER_SECOND
        );
    }

    #[test]
    fn a_full_table_leaves_new_volumes_without_a_slot() {
        let table = VolumeTable::new();
        for _ in 0..SLOTS {
            assert!(table.attach(StorageCapability::Unknown).is_some());
        }
        assert_eq!(table.attach(StorageCapability::Unknown), None);
        assert_eq!(table.port().volume_count(), 32);
    }

    #[test]
    fn the_port_reads_and_changes_the_slots() {
        let table = VolumeTable::new();
        let slot = table.attach(StorageCapability::Unknown).unwrap();
        let mut out = [0u8; StatsReply::SIZE];
        let set = SetPolicyMessage::new(slot, PolicyMode::Veto);
        assert!(handle_request(set.as_bytes(), &mut out, &mut table.port()).is_ok());
        assert_eq!(table.policy(Some(slot)), PolicyMode::Veto);
        let all = SetPolicyMessage::new(ALL_VOLUMES, PolicyMode::Monitor);
        assert!(handle_request(all.as_bytes(), &mut out, &mut table.port()).is_ok());
        assert_eq!(table.policy(Some(slot)), PolicyMode::Monitor);
        assert_eq!(table.default_mode(), PolicyMode::Monitor);
        let query = MessageHeader::new(MessageKind::QueryStats, MessageHeader::SIZE, 5);
        assert_eq!(
            handle_request(query.as_bytes(), &mut out, &mut table.port()),
            Err(NtStatus::STATUS_FLT_VOLUME_NOT_FOUND)
        );
        let config = MessageHeader::new(MessageKind::QueryConfig, MessageHeader::SIZE, ALL_VOLUMES);
        assert_eq!(
            handle_request(config.as_bytes(), &mut out, &mut table.port()),
            Ok(ConfigReply::SIZE)
        );
        assert_eq!(
            ConfigReply::parse(&out).unwrap().registry(),
            Some(RegistrySource::Absent)
        );
    }

    fn partial(kind: u32, data: &[u8]) -> std::vec::Vec<u8> {
        let mut bytes = std::vec![0u8; 12];
        bytes[4..8].copy_from_slice(&kind.to_le_bytes());
        bytes[8..12].copy_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn the_registry_value_becomes_the_default_policy() {
        assert_eq!(registry_source(None), RegistrySource::Absent);
        let veto = partial(REG_DWORD, &2u32.to_le_bytes());
        assert_eq!(
            registry_source(Some(&veto)),
            RegistrySource::Valid(PolicyMode::Veto)
        );
        let bad = partial(REG_DWORD, &7u32.to_le_bytes());
        assert_eq!(registry_source(Some(&bad)), RegistrySource::Invalid(7));
        assert_eq!(registry_source(Some(&bad)).mode(), PolicyMode::Enforce);
        let string = partial(1, b"2\0\0\0");
        assert_eq!(registry_source(Some(&string)), RegistrySource::WrongType);
        assert_eq!(
            registry_source(Some(&veto[..14])),
            RegistrySource::WrongType
        );
        let table = VolumeTable::new();
        table.load_default(registry_source(Some(&bad)));
        assert_eq!(table.default_mode(), PolicyMode::Enforce);
        assert_eq!(table.port().registry_source(), RegistrySource::Invalid(7));
    }
}
