//! Every attached volume's statistics and policy, in a fixed table of slots in the driver image's
//! non-paged data: instance setup claims a slot, instance teardown (complete) frees it, the
//! volume context remembers its slot. Post-operation reaches the counters through the slot
//! number in the completion context — no context lookup, no reference to release — so it may run
//! at DISPATCH_LEVEL; the communication port reads and changes the same slots
//! (`odx_core::serve::PortTarget`). Plain atomics, no locks, no unsafe.

use core::sync::atomic::{AtomicU32, Ordering};

use odx_core::policy::PolicyMode;
use odx_core::port::RegistrySource;
use odx_core::serve::PortTarget;
use odx_core::stats::VolumeStats;

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
}

impl VolumeSlot {
    const fn new() -> Self {
        Self {
            state: AtomicU32::new(FREE),
            policy: AtomicU32::new(0),
            stats: VolumeStats::new(),
        }
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
        }
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

    /// Claims a free slot for a volume being attached: counters zero, policy the default.
    /// `None` when every slot is taken.
    pub fn attach(&self) -> Option<u32> {
        let (index, slot) = self.slots.iter().enumerate().find(|(_, slot)| {
            slot.state
                .compare_exchange(FREE, CLAIMING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })?;
        slot.stats.reset();
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

/// Interprets a `KEY_VALUE_PARTIAL_INFORMATION` (`TitleIndex`, `Type`, `DataLength`, `Data`)
/// returned by `ZwQueryValueKey` for `DefaultPolicy`; `None` bytes = the value (or the key) is
/// absent or unreadable.
#[must_use]
pub fn registry_source(partial: Option<&[u8]>) -> RegistrySource {
    let Some(bytes) = partial else {
        return RegistrySource::Absent;
    };
    let word = |at: usize| -> Option<u32> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(raw))
    };
    let dword = match (
        word(PARTIAL_TYPE),
        word(PARTIAL_DATA_LENGTH),
        word(PARTIAL_DATA),
    ) {
        (Some(REG_DWORD), Some(4), Some(value)) => Ok(value),
        _ => Err(()),
    };
    RegistrySource::from_value(Some(dword))
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
        let a = table.attach().unwrap();
        let b = table.attach().unwrap();
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
        assert_eq!(table.attach(), Some(a), "the lowest free slot is reused");
        assert_eq!(table.stats(Some(a)).unwrap().read.counts().seen, 0);
        assert_eq!(table.policy(None), PolicyMode::Monitor);
    }

    #[test]
    fn a_full_table_leaves_new_volumes_without_a_slot() {
        let table = VolumeTable::new();
        for _ in 0..SLOTS {
            assert!(table.attach().is_some());
        }
        assert_eq!(table.attach(), None);
        assert_eq!(table.port().volume_count(), 32);
    }

    #[test]
    fn the_port_reads_and_changes_the_slots() {
        let table = VolumeTable::new();
        let slot = table.attach().unwrap();
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
