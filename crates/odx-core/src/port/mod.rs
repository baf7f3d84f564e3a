//! The communication-port protocol between `odxctl` and odxflt (Filter Manager port
//! `\OdxfltPort`, administrators only). Versioned, fixed-size, little-endian messages, parsed
//! with the same checked constructors as the FSCTL buffers. docs/port.md describes it.
//!
//! Every message starts with a [`MessageHeader`]. Requests: [`MessageKind::QueryStats`] and
//! [`MessageKind::QueryPolicy`] (header only), [`MessageKind::SetPolicy`] ([`SetPolicyMessage`]).
//! Replies: [`StatsReply`], [`PolicyReply`]. A request the filter cannot accept is answered with
//! an NTSTATUS from [`parse_request`] and no reply body.

pub mod governance;

use static_assertions::const_assert_eq;
use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::ctl::OffloadOp;
use crate::policy::PolicyMode;
use crate::stats::{OpCounts, STATUS_BUCKETS};
use crate::status::NtStatus;
use crate::storage::{CopyOffloadLimits, StorageCapability, StorageState};
use crate::wire::WireStruct;

/// The port's name in the object namespace.
pub const PORT_NAME: &str = "\\OdxfltPort";
/// "ODXM", little-endian.
pub const MESSAGE_MAGIC: u32 = 0x4D58_444F;
/// The protocol version this build speaks. Version 2 added `OpCountsWire::fact_failed` (the
/// stats reply grew from 1064 to 1080 bytes); version 3 added [`StorageWire`] (1080 to 1152
/// bytes) and the governance messages ([`governance`]). A peer of another version is refused with `STATUS_REVISION_MISMATCH` rather than
/// misread.
pub const PROTOCOL_VERSION: u16 = 3;
/// `volume` value meaning "every volume" (stats: summed; policy: the default for new volumes).
pub const ALL_VOLUMES: u32 = u32::MAX;

/// Message kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum MessageKind {
    /// Request: statistics of a volume (or all).
    QueryStats = 1,
    /// Reply: [`StatsReply`].
    StatsReply = 2,
    /// Request: a volume's policy.
    QueryPolicy = 3,
    /// Request: [`SetPolicyMessage`].
    SetPolicy = 4,
    /// Reply: [`PolicyReply`].
    PolicyReply = 5,
    /// Request: the filter's configuration (default policy, its registry source, volume slots).
    QueryConfig = 6,
    /// Reply: [`ConfigReply`].
    ConfigReply = 7,
    /// Request: replace the rules (the header, then the rule text; [`governance`]).
    SetRules = 8,
    /// Reply: [`governance::RulesReply`].
    RulesReply = 9,
    /// Request: the rules in force (header only).
    QueryRules = 10,
    /// Reply: [`governance::RulesTextHeader`] and the rule text.
    RulesText = 11,
    /// Request: [`governance::ReadJournalMessage`].
    ReadJournal = 12,
    /// Reply: [`governance::JournalPageHeader`] and the records.
    JournalPage = 13,
}

impl MessageKind {
    /// From the wire value.
    #[must_use]
    pub const fn from_u16(value: u16) -> Option<Self> {
        match value {
            1 => Some(Self::QueryStats),
            2 => Some(Self::StatsReply),
            3 => Some(Self::QueryPolicy),
            4 => Some(Self::SetPolicy),
            5 => Some(Self::PolicyReply),
            6 => Some(Self::QueryConfig),
            7 => Some(Self::ConfigReply),
            8 => Some(Self::SetRules),
            9 => Some(Self::RulesReply),
            10 => Some(Self::QueryRules),
            11 => Some(Self::RulesText),
            12 => Some(Self::ReadJournal),
            13 => Some(Self::JournalPage),
            _ => None,
        }
    }
}

/// Header of every message: 16 bytes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct MessageHeader {
    /// [`MESSAGE_MAGIC`].
    pub magic: U32,
    /// [`PROTOCOL_VERSION`].
    pub version: U16,
    /// [`MessageKind`].
    pub kind: U16,
    /// Bytes of the whole message, header included.
    pub length: U32,
    /// Volume index (0-based, in the filter's attach order) or [`ALL_VOLUMES`].
    pub volume: U32,
}
const_assert_eq!(size_of::<MessageHeader>(), 16);

impl WireStruct for MessageHeader {
    const NAME: &'static str = "ODXFLT_MESSAGE_HEADER";
}

impl MessageHeader {
    /// A header for a message of `kind` and `length` bytes.
    #[must_use]
    pub fn new(kind: MessageKind, length: usize, volume: u32) -> Self {
        Self {
            magic: U32::new(MESSAGE_MAGIC),
            version: U16::new(PROTOCOL_VERSION),
            kind: U16::new(kind as u16),
            length: U32::new(u32::try_from(length).unwrap_or(u32::MAX)),
            volume: U32::new(volume),
        }
    }
}

/// `SetPolicy` request: 24 bytes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct SetPolicyMessage {
    /// Header, kind `SetPolicy`.
    pub header: MessageHeader,
    /// [`PolicyMode`] value.
    pub mode: U32,
    /// Zero.
    pub reserved: U32,
}
const_assert_eq!(size_of::<SetPolicyMessage>(), 24);

impl WireStruct for SetPolicyMessage {
    const NAME: &'static str = "ODXFLT_SET_POLICY";
}

impl SetPolicyMessage {
    /// A request to set `volume`'s mode.
    #[must_use]
    pub fn new(volume: u32, mode: PolicyMode) -> Self {
        Self {
            header: MessageHeader::new(MessageKind::SetPolicy, Self::SIZE, volume),
            mode: U32::new(mode.as_u32()),
            reserved: U32::new(0),
        }
    }
}

/// `PolicyReply`: 24 bytes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct PolicyReply {
    /// Header, kind `PolicyReply`.
    pub header: MessageHeader,
    /// The volume's mode now.
    pub mode: U32,
    /// Number of volumes the filter is attached to.
    pub volume_count: U32,
}
const_assert_eq!(size_of::<PolicyReply>(), 24);

impl WireStruct for PolicyReply {
    const NAME: &'static str = "ODXFLT_POLICY_REPLY";
}

impl PolicyReply {
    /// A reply.
    #[must_use]
    pub fn new(volume: u32, mode: PolicyMode, volume_count: u32) -> Self {
        Self {
            header: MessageHeader::new(MessageKind::PolicyReply, Self::SIZE, volume),
            mode: U32::new(mode.as_u32()),
            volume_count: U32::new(volume_count),
        }
    }
}

/// Counters of one operation on the wire: 528 bytes (8 counters, two arrays of 29 buckets).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct OpCountsWire {
    /// [`OpCounts::seen`].
    pub seen: U64,
    /// [`OpCounts::forwarded`].
    pub forwarded: U64,
    /// [`OpCounts::completed`].
    pub completed: U64,
    /// [`OpCounts::would_refuse`].
    pub would_refuse: U64,
    /// [`OpCounts::truncated`].
    pub truncated: U64,
    /// [`OpCounts::failed_below`].
    pub failed_below: U64,
    /// [`OpCounts::bytes_offloaded`].
    pub bytes_offloaded: U64,
    /// [`OpCounts::fact_failed`] (protocol version 2).
    pub fact_failed: U64,
    /// [`OpCounts::completed_by_status`].
    pub completed_by_status: [U64; STATUS_BUCKETS],
    /// [`OpCounts::below_by_status`].
    pub below_by_status: [U64; STATUS_BUCKETS],
}
const_assert_eq!(size_of::<OpCountsWire>(), 528);
const_assert_eq!(STATUS_BUCKETS, 29);

impl From<&OpCounts> for OpCountsWire {
    fn from(c: &OpCounts) -> Self {
        Self {
            seen: U64::new(c.seen),
            forwarded: U64::new(c.forwarded),
            completed: U64::new(c.completed),
            would_refuse: U64::new(c.would_refuse),
            truncated: U64::new(c.truncated),
            failed_below: U64::new(c.failed_below),
            bytes_offloaded: U64::new(c.bytes_offloaded),
            fact_failed: U64::new(c.fact_failed),
            completed_by_status: c.completed_by_status.map(U64::new),
            below_by_status: c.below_by_status.map(U64::new),
        }
    }
}

impl From<&OpCountsWire> for OpCounts {
    fn from(w: &OpCountsWire) -> Self {
        Self {
            seen: w.seen.get(),
            forwarded: w.forwarded.get(),
            completed: w.completed.get(),
            would_refuse: w.would_refuse.get(),
            truncated: w.truncated.get(),
            failed_below: w.failed_below.get(),
            bytes_offloaded: w.bytes_offloaded.get(),
            fact_failed: w.fact_failed.get(),
            completed_by_status: w.completed_by_status.map(|v| v.get()),
            below_by_status: w.below_by_status.map(|v| v.get()),
        }
    }
}

impl OpCounts {
    /// Adds another volume's counts (saturating), for `ALL_VOLUMES` replies.
    pub fn accumulate(&mut self, other: &Self) {
        self.seen = self.seen.saturating_add(other.seen);
        self.forwarded = self.forwarded.saturating_add(other.forwarded);
        self.completed = self.completed.saturating_add(other.completed);
        self.would_refuse = self.would_refuse.saturating_add(other.would_refuse);
        self.truncated = self.truncated.saturating_add(other.truncated);
        self.failed_below = self.failed_below.saturating_add(other.failed_below);
        self.bytes_offloaded = self.bytes_offloaded.saturating_add(other.bytes_offloaded);
        self.fact_failed = self.fact_failed.saturating_add(other.fact_failed);
        for (a, b) in self
            .completed_by_status
            .iter_mut()
            .zip(other.completed_by_status)
        {
            *a = a.saturating_add(b);
        }
        for (a, b) in self.below_by_status.iter_mut().zip(other.below_by_status) {
            *a = a.saturating_add(b);
        }
    }
}

/// A volume's storage on the wire (protocol version 3): 72 bytes. All zero in an `ALL_VOLUMES`
/// reply.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct StorageWire {
    /// [`StorageCapability::code`]: 0 unknown, 1 supported, 2 not supported.
    pub capability: U32,
    /// The back-off period, seconds.
    pub backoff_seconds: U32,
    /// The filter's interrupt time when it wrote the reply (100-ns ticks).
    pub now: U64,
    /// Interrupt time until which offload reads are refused; 0 when no back-off is active.
    pub read_backoff_until: U64,
    /// Same, for offload writes.
    pub write_backoff_until: U64,
    /// `DEVICE_COPY_OFFLOAD_DESCRIPTOR.MaximumTokenLifetime` (0 unless supported).
    pub maximum_token_lifetime: U32,
    /// `DefaultTokenLifetime`.
    pub default_token_lifetime: U32,
    /// `MaximumTransferSize`.
    pub maximum_transfer_size: U64,
    /// `OptimalTransferCount`.
    pub optimal_transfer_count: U64,
    /// `MaximumDataDescriptors`.
    pub maximum_data_descriptors: U32,
    /// `MaximumTransferLengthPerDescriptor`.
    pub maximum_transfer_length_per_descriptor: U32,
    /// `OptimalTransferLengthPerDescriptor`.
    pub optimal_transfer_length_per_descriptor: U32,
    /// `OptimalTransferLengthGranularity`.
    pub optimal_transfer_length_granularity: U16,
    /// Zero.
    pub reserved: [u8; 2],
}
const_assert_eq!(size_of::<StorageWire>(), 72);

/// A [`StorageWire`] read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageReport {
    /// What the storage said at instance setup.
    pub capability: StorageCapability,
    /// The back-off period, seconds.
    pub backoff_seconds: u32,
    /// The filter's interrupt time at the reply.
    pub now: u64,
    /// End of the read back-off, if one was active.
    pub read_backoff_until: Option<u64>,
    /// End of the write back-off, if one was active.
    pub write_backoff_until: Option<u64>,
}

impl StorageReport {
    /// The end of `op`'s back-off, if active.
    #[must_use]
    pub const fn backoff_until(&self, op: OffloadOp) -> Option<u64> {
        match op {
            OffloadOp::Read => self.read_backoff_until,
            OffloadOp::Write => self.write_backoff_until,
        }
    }
}

impl StorageWire {
    /// The wire form of `state` at interrupt time `now`.
    #[must_use]
    pub fn new(state: &StorageState, now: u64) -> Self {
        let capability = state.capability();
        let limits = match capability {
            StorageCapability::Supported(limits) => limits,
            StorageCapability::Unknown | StorageCapability::NotSupported => {
                CopyOffloadLimits::default()
            }
        };
        let seconds = state.backoff_ticks() / crate::storage::TICKS_PER_SECOND;
        Self {
            capability: U32::new(capability.code()),
            backoff_seconds: U32::new(u32::try_from(seconds).unwrap_or(u32::MAX)),
            now: U64::new(now),
            read_backoff_until: U64::new(state.backoff_until(OffloadOp::Read, now).unwrap_or(0)),
            write_backoff_until: U64::new(state.backoff_until(OffloadOp::Write, now).unwrap_or(0)),
            maximum_token_lifetime: U32::new(limits.maximum_token_lifetime),
            default_token_lifetime: U32::new(limits.default_token_lifetime),
            maximum_transfer_size: U64::new(limits.maximum_transfer_size),
            optimal_transfer_count: U64::new(limits.optimal_transfer_count),
            maximum_data_descriptors: U32::new(limits.maximum_data_descriptors),
            maximum_transfer_length_per_descriptor: U32::new(
                limits.maximum_transfer_length_per_descriptor,
            ),
            optimal_transfer_length_per_descriptor: U32::new(
                limits.optimal_transfer_length_per_descriptor,
            ),
            optimal_transfer_length_granularity: U16::new(
                limits.optimal_transfer_length_granularity,
            ),
            reserved: [0; 2],
        }
    }

    /// Reads the section back; `None` for a capability code this build does not know.
    #[must_use]
    pub fn report(&self) -> Option<StorageReport> {
        let capability = match self.capability.get() {
            0 => StorageCapability::Unknown,
            1 => StorageCapability::Supported(CopyOffloadLimits {
                maximum_token_lifetime: self.maximum_token_lifetime.get(),
                default_token_lifetime: self.default_token_lifetime.get(),
                maximum_transfer_size: self.maximum_transfer_size.get(),
                optimal_transfer_count: self.optimal_transfer_count.get(),
                maximum_data_descriptors: self.maximum_data_descriptors.get(),
                maximum_transfer_length_per_descriptor: self
                    .maximum_transfer_length_per_descriptor
                    .get(),
                optimal_transfer_length_per_descriptor: self
                    .optimal_transfer_length_per_descriptor
                    .get(),
                optimal_transfer_length_granularity: self.optimal_transfer_length_granularity.get(),
            }),
            2 => StorageCapability::NotSupported,
            _ => return None,
        };
        let active = |until: u64| (until != 0).then_some(until);
        Some(StorageReport {
            capability,
            backoff_seconds: self.backoff_seconds.get(),
            now: self.now.get(),
            read_backoff_until: active(self.read_backoff_until.get()),
            write_backoff_until: active(self.write_backoff_until.get()),
        })
    }
}

/// `StatsReply`: header, policy and volume count, read and write counters, the storage.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct StatsReply {
    /// Header, kind `StatsReply`.
    pub header: MessageHeader,
    /// The volume's policy mode (for `ALL_VOLUMES`: the default mode).
    pub mode: U32,
    /// Number of volumes the filter is attached to.
    pub volume_count: U32,
    /// `FSCTL_OFFLOAD_READ` counters.
    pub read: OpCountsWire,
    /// `FSCTL_OFFLOAD_WRITE` counters.
    pub write: OpCountsWire,
    /// The volume's storage (protocol version 3; zero for `ALL_VOLUMES`).
    pub storage: StorageWire,
}
const_assert_eq!(size_of::<StatsReply>(), 1152);

impl WireStruct for StatsReply {
    const NAME: &'static str = "ODXFLT_STATS_REPLY";
}

impl StatsReply {
    /// A reply.
    #[must_use]
    pub fn new(
        volume: u32,
        mode: PolicyMode,
        volume_count: u32,
        read: &OpCounts,
        write: &OpCounts,
    ) -> Self {
        Self {
            header: MessageHeader::new(MessageKind::StatsReply, Self::SIZE, volume),
            mode: U32::new(mode.as_u32()),
            volume_count: U32::new(volume_count),
            read: read.into(),
            write: write.into(),
            storage: FromZeros::new_zeroed(),
        }
    }

    /// The same reply with the volume's storage section filled in.
    #[must_use]
    pub fn with_storage(mut self, storage: StorageWire) -> Self {
        self.storage = storage;
        self
    }

    /// All zero (a buffer to receive a reply into).
    #[must_use]
    pub fn zeroed() -> Self {
        FromZeros::new_zeroed()
    }
}

/// Where the default policy came from at load (`Parameters\\DefaultPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegistrySource {
    /// The value is absent (or the key): enforce.
    Absent,
    /// A REG_DWORD naming a mode.
    Valid(PolicyMode),
    /// A REG_DWORD that names no mode: enforce was used instead.
    Invalid(u32),
    /// A value of another type or size: enforce was used instead.
    WrongType,
}

impl RegistrySource {
    /// The value read at load: `None` when absent, `Some(Ok(dword))`, or `Some(Err(()))` for a
    /// value that is not a REG_DWORD.
    #[must_use]
    pub const fn from_value(value: Option<Result<u32, ()>>) -> Self {
        match value {
            None => Self::Absent,
            Some(Err(())) => Self::WrongType,
            Some(Ok(dword)) => match PolicyMode::from_u32(dword) {
                Some(mode) => Self::Valid(mode),
                None => Self::Invalid(dword),
            },
        }
    }

    /// The default mode this source gives: the named mode, else enforce.
    #[must_use]
    pub const fn mode(self) -> PolicyMode {
        match self {
            Self::Valid(mode) => mode,
            Self::Absent | Self::Invalid(_) | Self::WrongType => PolicyMode::Enforce,
        }
    }

    /// `(state, value)` on the wire: state 0 absent, 1 valid, 2 invalid, 3 wrong type.
    #[must_use]
    pub const fn to_wire(self) -> (u32, u32) {
        match self {
            Self::Absent => (0, 0),
            Self::Valid(mode) => (1, mode.as_u32()),
            Self::Invalid(value) => (2, value),
            Self::WrongType => (3, 0),
        }
    }

    /// From the wire; `None` for an unknown state.
    #[must_use]
    pub const fn from_wire(state: u32, value: u32) -> Option<Self> {
        match state {
            0 => Some(Self::Absent),
            1 => match PolicyMode::from_u32(value) {
                Some(mode) => Some(Self::Valid(mode)),
                None => None,
            },
            2 => Some(Self::Invalid(value)),
            3 => Some(Self::WrongType),
            _ => None,
        }
    }
}

/// `ConfigReply`: 32 bytes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct ConfigReply {
    /// Header, kind `ConfigReply`, volume [`ALL_VOLUMES`].
    pub header: MessageHeader,
    /// The default mode now (for volumes attached later).
    pub default_mode: U32,
    /// [`RegistrySource`] state read at load (0 absent, 1 valid, 2 invalid, 3 wrong type).
    pub registry_state: U32,
    /// The registry value (state 1 and 2).
    pub registry_value: U32,
    /// Volume indices in use are below this (`QueryStats`/`QueryPolicy` of a free index answer
    /// `STATUS_FLT_VOLUME_NOT_FOUND`).
    pub volume_slots: U32,
}
const_assert_eq!(size_of::<ConfigReply>(), 32);

impl WireStruct for ConfigReply {
    const NAME: &'static str = "ODXFLT_CONFIG_REPLY";
}

impl ConfigReply {
    /// A reply.
    #[must_use]
    pub fn new(default_mode: PolicyMode, registry: RegistrySource, volume_slots: u32) -> Self {
        let (state, value) = registry.to_wire();
        Self {
            header: MessageHeader::new(MessageKind::ConfigReply, Self::SIZE, ALL_VOLUMES),
            default_mode: U32::new(default_mode.as_u32()),
            registry_state: U32::new(state),
            registry_value: U32::new(value),
            volume_slots: U32::new(volume_slots),
        }
    }

    /// The registry source, if the state is known.
    #[must_use]
    pub fn registry(&self) -> Option<RegistrySource> {
        RegistrySource::from_wire(self.registry_state.get(), self.registry_value.get())
    }
}

/// A request the filter accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortRequest<'a> {
    /// Statistics of `volume` (or [`ALL_VOLUMES`]).
    QueryStats {
        /// Volume index.
        volume: u32,
    },
    /// Policy of `volume` (or the default).
    QueryPolicy {
        /// Volume index.
        volume: u32,
    },
    /// Set `volume`'s policy (or the default and every volume).
    SetPolicy {
        /// Volume index.
        volume: u32,
        /// New mode.
        mode: PolicyMode,
    },
    /// The filter's configuration ([`ConfigReply`]).
    QueryConfig,
    /// Replace the rules with `text` (UTF-8, one rule per line).
    SetRules {
        /// The rule text.
        text: &'a str,
    },
    /// The rules in force, as text.
    QueryRules,
    /// Journal records from `from_seq` on.
    ReadJournal {
        /// First sequence number wanted.
        from_seq: u64,
        /// At most this many (0: as many as fit).
        max_records: u32,
    },
}

/// Parses a request from user mode.
///
/// # Errors
/// `STATUS_BUFFER_TOO_SMALL` for a message shorter than its header or its kind's size (or than
/// its own length field); `STATUS_REVISION_MISMATCH` for another protocol version;
/// `STATUS_INVALID_PARAMETER` for a wrong magic, an unknown or reply kind, or an unknown mode.
pub fn parse_request(bytes: &[u8]) -> Result<PortRequest<'_>, NtStatus> {
    let header = MessageHeader::parse(bytes).map_err(|_| NtStatus::STATUS_BUFFER_TOO_SMALL)?;
    if header.magic.get() != MESSAGE_MAGIC {
        return Err(NtStatus::STATUS_INVALID_PARAMETER);
    }
    if header.version.get() != PROTOCOL_VERSION {
        return Err(NtStatus::STATUS_REVISION_MISMATCH);
    }
    let declared = usize::try_from(header.length.get()).unwrap_or(usize::MAX);
    if declared > bytes.len() {
        return Err(NtStatus::STATUS_BUFFER_TOO_SMALL);
    }
    let volume = header.volume.get();
    let body = bytes.get(..declared).unwrap_or(bytes);
    match MessageKind::from_u16(header.kind.get()) {
        Some(MessageKind::QueryStats) if declared >= MessageHeader::SIZE => {
            Ok(PortRequest::QueryStats { volume })
        }
        Some(MessageKind::QueryPolicy) if declared >= MessageHeader::SIZE => {
            Ok(PortRequest::QueryPolicy { volume })
        }
        Some(MessageKind::QueryConfig) if declared >= MessageHeader::SIZE => {
            Ok(PortRequest::QueryConfig)
        }
        Some(MessageKind::SetPolicy) => {
            let msg =
                SetPolicyMessage::parse(body).map_err(|_| NtStatus::STATUS_BUFFER_TOO_SMALL)?;
            let mode =
                PolicyMode::from_u32(msg.mode.get()).ok_or(NtStatus::STATUS_INVALID_PARAMETER)?;
            Ok(PortRequest::SetPolicy { volume, mode })
        }
        Some(MessageKind::QueryRules) if declared >= MessageHeader::SIZE => {
            Ok(PortRequest::QueryRules)
        }
        Some(MessageKind::SetRules) if declared >= MessageHeader::SIZE => {
            let text = body.get(MessageHeader::SIZE..).unwrap_or_default();
            if text.len() > governance::RULES_TEXT_MAX {
                return Err(NtStatus::STATUS_INVALID_PARAMETER);
            }
            let text =
                core::str::from_utf8(text).map_err(|_| NtStatus::STATUS_INVALID_PARAMETER)?;
            Ok(PortRequest::SetRules { text })
        }
        Some(MessageKind::ReadJournal) => {
            let msg = governance::ReadJournalMessage::parse(body)
                .map_err(|_| NtStatus::STATUS_BUFFER_TOO_SMALL)?;
            Ok(PortRequest::ReadJournal {
                from_seq: msg.from_seq.get(),
                max_records: msg.max_records.get(),
            })
        }
        Some(
            MessageKind::QueryStats
            | MessageKind::QueryPolicy
            | MessageKind::QueryConfig
            | MessageKind::QueryRules
            | MessageKind::SetRules,
        ) => Err(NtStatus::STATUS_BUFFER_TOO_SMALL),
        Some(
            MessageKind::StatsReply
            | MessageKind::PolicyReply
            | MessageKind::ConfigReply
            | MessageKind::RulesReply
            | MessageKind::RulesText
            | MessageKind::JournalPage,
        )
        | None => Err(NtStatus::STATUS_INVALID_PARAMETER),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u16, length: u32) -> MessageHeader {
        MessageHeader {
            magic: U32::new(MESSAGE_MAGIC),
            version: U16::new(PROTOCOL_VERSION),
            kind: U16::new(kind),
            length: U32::new(length),
            volume: U32::new(0),
        }
    }

    #[test]
    fn well_formed_requests_parse() {
        assert_eq!(
            parse_request(header(1, 16).as_bytes()),
            Ok(PortRequest::QueryStats { volume: 0 })
        );
        assert_eq!(
            parse_request(header(3, 16).as_bytes()),
            Ok(PortRequest::QueryPolicy { volume: 0 })
        );
        let set = SetPolicyMessage::new(ALL_VOLUMES, PolicyMode::Veto);
        assert_eq!(
            parse_request(set.as_bytes()),
            Ok(PortRequest::SetPolicy {
                volume: ALL_VOLUMES,
                mode: PolicyMode::Veto
            })
        );
    }

    #[test]
    fn malformed_requests_get_a_clear_status() {
        use NtStatus as N;
        assert_eq!(parse_request(&[]), Err(N::STATUS_BUFFER_TOO_SMALL));
        assert_eq!(
            parse_request(&header(1, 16).as_bytes()[..15]),
            Err(N::STATUS_BUFFER_TOO_SMALL)
        );
        let mut bad_magic = header(1, 16);
        bad_magic.magic.set(0);
        assert_eq!(
            parse_request(bad_magic.as_bytes()),
            Err(N::STATUS_INVALID_PARAMETER)
        );
        for other in [1, 2, 4] {
            let mut old = header(1, 16);
            old.version.set(other);
            assert_eq!(
                parse_request(old.as_bytes()),
                Err(N::STATUS_REVISION_MISMATCH),
                "version {other}"
            );
        }
        assert_eq!(
            parse_request(header(1, 17).as_bytes()),
            Err(N::STATUS_BUFFER_TOO_SMALL),
            "length beyond the buffer"
        );
        assert_eq!(
            parse_request(header(1, 8).as_bytes()),
            Err(N::STATUS_BUFFER_TOO_SMALL),
            "length below the header"
        );
        assert_eq!(
            parse_request(header(2, 16).as_bytes()),
            Err(N::STATUS_INVALID_PARAMETER),
            "a reply is not a request"
        );
        assert_eq!(
            parse_request(header(99, 16).as_bytes()),
            Err(N::STATUS_INVALID_PARAMETER)
        );
        assert_eq!(
            parse_request(header(4, 16).as_bytes()),
            Err(N::STATUS_BUFFER_TOO_SMALL),
            "set policy without body"
        );
        let mut set = SetPolicyMessage::new(0, PolicyMode::Monitor);
        set.mode.set(3);
        assert_eq!(
            parse_request(set.as_bytes()),
            Err(N::STATUS_INVALID_PARAMETER)
        );
    }

    #[test]
    fn stats_reply_round_trips_counts() {
        let mut read = OpCounts {
            seen: 5,
            bytes_offloaded: 1 << 40,
            fact_failed: 3,
            ..OpCounts::default()
        };
        read.completed_by_status[3] = 2;
        let write = OpCounts {
            below_by_status: [7; STATUS_BUCKETS],
            ..OpCounts::default()
        };
        let reply = StatsReply::new(1, PolicyMode::Monitor, 2, &read, &write);
        let parsed = StatsReply::parse(reply.as_bytes()).unwrap();
        assert_eq!(OpCounts::from(&parsed.read), read);
        assert_eq!(OpCounts::from(&parsed.write), write);
        assert_eq!(
            usize::try_from(parsed.header.length.get()).unwrap(),
            StatsReply::SIZE
        );
        let mut sum = read;
        sum.accumulate(&read);
        assert_eq!(sum.seen, 10);
        assert_eq!(sum.fact_failed, 6);
        assert_eq!(sum.completed_by_status[3], 4);
    }
}
