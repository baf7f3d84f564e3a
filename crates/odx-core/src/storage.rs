//! What the storage under a volume can offload, and what odxflt has learned from its answers.
//!
//! Two sources, one state per volume ([`StorageState`]):
//! - **The storage's own description**, asked once at instance setup with
//!   `IOCTL_STORAGE_QUERY_PROPERTY` (`StorageDeviceCopyOffloadProperty`, `PropertyStandardQuery`)
//!   on the volume's disk device: a `DEVICE_COPY_OFFLOAD_DESCRIPTOR` means it can
//!   ([`StorageCapability::Supported`], with its limits), `STATUS_DEVICE_FEATURE_NOT_SUPPORTED`
//!   (the storage class driver's answer for a device without the Block Device ROD Limits VPD
//!   page) or `STATUS_NOT_SUPPORTED` means it cannot ([`StorageCapability::NotSupported`]),
//!   anything else leaves it [`StorageCapability::Unknown`] and requests are forwarded as if the
//!   storage could ([`StorageCapability::from_query`]).
//! - **The storage's answers.** When a forwarded offload comes back `STATUS_NOT_SUPPORTED` or
//!   `STATUS_DEVICE_FEATURE_NOT_SUPPORTED`, that operation is refused early on this volume for a
//!   back-off period (default [`DEFAULT_BACKOFF_SECONDS`]; Windows' own copy engine waits as long
//!   before it tries offload again between a source and destination that refused, but odxflt's
//!   back-off is per volume and operation), then tried again ([`StorageState::learn`]).
//!
//! Either way the answer reaches the check order through the volume's
//! `OFFLOAD_{READ,WRITE}_SUPPORTED` flags ([`StorageState::offload_flags`]), i.e. at MS-FSA read 2
//! / write 3 (`IsOffload{Read,Write}Supported`, [`crate::Check::OffloadSupported`]): before any
//! file fact is asked, and with the documented `STATUS_NOT_SUPPORTED`.
//!
//! Time is the interrupt time in 100-ns ticks (`KeQueryUnbiasedInterruptTime` in the driver, the
//! simulated clock in the simulator); it never goes backwards and does not jump with the wall
//! clock. All state is in atomics: post-operation learns at up to `DISPATCH_LEVEL` on any CPU
//! while pre-operations read.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::ctl::OffloadOp;
use crate::flags::VolumeFlags;
use crate::status::NtStatus;

/// Interrupt-time ticks (100 ns) per second.
pub const TICKS_PER_SECOND: u64 = 10_000_000;
/// The back-off after the storage refused an offload: 3 minutes (the period Windows' copy engine
/// waits before offloading again between a source and destination that refused; odxflt's is per
/// volume and operation). `Parameters\OffloadBackoffSeconds` overrides it.
pub const DEFAULT_BACKOFF_SECONDS: u32 = 180;
/// The longest back-off a registry value may ask for (one day); longer values are clamped.
pub const MAX_BACKOFF_SECONDS: u32 = 86_400;

/// `StorageDeviceCopyOffloadProperty`, the `STORAGE_PROPERTY_ID` of the copy-offload descriptor.
pub const STORAGE_DEVICE_COPY_OFFLOAD_PROPERTY: u32 = 13;
/// `PropertyStandardQuery`, the `STORAGE_QUERY_TYPE` that asks for the descriptor itself.
pub const PROPERTY_STANDARD_QUERY: u32 = 0;
/// `sizeof(STORAGE_PROPERTY_QUERY)`: `PropertyId`, `QueryType`, `AdditionalParameters[1]`, padded.
pub const STORAGE_PROPERTY_QUERY_SIZE: usize = 12;

/// Field offsets of `DEVICE_COPY_OFFLOAD_DESCRIPTOR` (ntddstor.h; pinned by the driver against
/// the golden layout table).
pub mod descriptor {
    /// `Version`.
    pub const VERSION: usize = 0;
    /// `Size`.
    pub const SIZE: usize = 4;
    /// `MaximumTokenLifetime` (seconds).
    pub const MAXIMUM_TOKEN_LIFETIME: usize = 8;
    /// `DefaultTokenLifetime` (seconds).
    pub const DEFAULT_TOKEN_LIFETIME: usize = 12;
    /// `MaximumTransferSize` (bytes).
    pub const MAXIMUM_TRANSFER_SIZE: usize = 16;
    /// `OptimalTransferCount` (bytes).
    pub const OPTIMAL_TRANSFER_COUNT: usize = 24;
    /// `MaximumDataDescriptors`.
    pub const MAXIMUM_DATA_DESCRIPTORS: usize = 32;
    /// `MaximumTransferLengthPerDescriptor` (bytes).
    pub const MAXIMUM_TRANSFER_LENGTH_PER_DESCRIPTOR: usize = 36;
    /// `OptimalTransferLengthPerDescriptor` (bytes).
    pub const OPTIMAL_TRANSFER_LENGTH_PER_DESCRIPTOR: usize = 40;
    /// `OptimalTransferLengthGranularity` (blocks).
    pub const OPTIMAL_TRANSFER_LENGTH_GRANULARITY: usize = 44;
    /// `sizeof(DEVICE_COPY_OFFLOAD_DESCRIPTOR)`.
    pub const STRUCT_SIZE: usize = 48;
}

/// The limits a `DEVICE_COPY_OFFLOAD_DESCRIPTOR` reports (everything after `Version` and `Size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CopyOffloadLimits {
    /// `MaximumTokenLifetime`, seconds.
    pub maximum_token_lifetime: u32,
    /// `DefaultTokenLifetime`, seconds.
    pub default_token_lifetime: u32,
    /// `MaximumTransferSize`, bytes.
    pub maximum_transfer_size: u64,
    /// `OptimalTransferCount`, bytes.
    pub optimal_transfer_count: u64,
    /// `MaximumDataDescriptors`.
    pub maximum_data_descriptors: u32,
    /// `MaximumTransferLengthPerDescriptor`, logical blocks (the descriptor's page; the class
    /// driver fills it from the Block Limits VPD page, in blocks).
    pub maximum_transfer_length_per_descriptor: u32,
    /// `OptimalTransferLengthPerDescriptor`, logical blocks.
    pub optimal_transfer_length_per_descriptor: u32,
    /// `OptimalTransferLengthGranularity`, logical blocks.
    pub optimal_transfer_length_granularity: u16,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(b.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

impl CopyOffloadLimits {
    /// Reads a returned `DEVICE_COPY_OFFLOAD_DESCRIPTOR`: the bytes the storage returned
    /// (`IoStatus.Information` of them). `None` unless the whole structure is there and `Size`
    /// claims at least the documented size (the header-only answer a caller gets with a short
    /// buffer — 8 bytes — is not a descriptor). `Version` is not compared with the size: the
    /// storage class driver writes `Version = 1, Size = 48` (classpnp's
    /// `ClasspDeviceCopyOffloadProperty`), though the structure's page describes `Version` as the
    /// structure's size; any non-zero version is taken.
    #[must_use]
    pub fn from_descriptor(bytes: &[u8]) -> Option<Self> {
        use descriptor as d;
        let size = u32_at(bytes, d::SIZE).and_then(|v| usize::try_from(v).ok())?;
        if bytes.len() < d::STRUCT_SIZE || size < d::STRUCT_SIZE || u32_at(bytes, d::VERSION)? == 0
        {
            return None;
        }
        Some(Self {
            maximum_token_lifetime: u32_at(bytes, d::MAXIMUM_TOKEN_LIFETIME)?,
            default_token_lifetime: u32_at(bytes, d::DEFAULT_TOKEN_LIFETIME)?,
            maximum_transfer_size: u64_at(bytes, d::MAXIMUM_TRANSFER_SIZE)?,
            optimal_transfer_count: u64_at(bytes, d::OPTIMAL_TRANSFER_COUNT)?,
            maximum_data_descriptors: u32_at(bytes, d::MAXIMUM_DATA_DESCRIPTORS)?,
            maximum_transfer_length_per_descriptor: u32_at(
                bytes,
                d::MAXIMUM_TRANSFER_LENGTH_PER_DESCRIPTOR,
            )?,
            optimal_transfer_length_per_descriptor: u32_at(
                bytes,
                d::OPTIMAL_TRANSFER_LENGTH_PER_DESCRIPTOR,
            )?,
            optimal_transfer_length_granularity: u16_at(
                bytes,
                d::OPTIMAL_TRANSFER_LENGTH_GRANULARITY,
            )?,
        })
    }

    /// The descriptor as the storage class driver returns it (`Version` = 1, `Size` = 48), for
    /// the simulator and tests.
    #[must_use]
    pub fn to_descriptor(&self) -> [u8; descriptor::STRUCT_SIZE] {
        use descriptor as d;
        let mut out = [0_u8; d::STRUCT_SIZE];
        let mut put = |at: usize, bytes: &[u8]| {
            if let Some(slot) = at
                .checked_add(bytes.len())
                .and_then(|end| out.get_mut(at..end))
            {
                slot.copy_from_slice(bytes);
            }
        };
        put(d::VERSION, &1_u32.to_le_bytes());
        put(d::SIZE, &48_u32.to_le_bytes());
        put(
            d::MAXIMUM_TOKEN_LIFETIME,
            &self.maximum_token_lifetime.to_le_bytes(),
        );
        put(
            d::DEFAULT_TOKEN_LIFETIME,
            &self.default_token_lifetime.to_le_bytes(),
        );
        put(
            d::MAXIMUM_TRANSFER_SIZE,
            &self.maximum_transfer_size.to_le_bytes(),
        );
        put(
            d::OPTIMAL_TRANSFER_COUNT,
            &self.optimal_transfer_count.to_le_bytes(),
        );
        put(
            d::MAXIMUM_DATA_DESCRIPTORS,
            &self.maximum_data_descriptors.to_le_bytes(),
        );
        put(
            d::MAXIMUM_TRANSFER_LENGTH_PER_DESCRIPTOR,
            &self.maximum_transfer_length_per_descriptor.to_le_bytes(),
        );
        put(
            d::OPTIMAL_TRANSFER_LENGTH_PER_DESCRIPTOR,
            &self.optimal_transfer_length_per_descriptor.to_le_bytes(),
        );
        put(
            d::OPTIMAL_TRANSFER_LENGTH_GRANULARITY,
            &self.optimal_transfer_length_granularity.to_le_bytes(),
        );
        out
    }
}

/// What the storage said about itself at instance setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StorageCapability {
    /// The property query failed or was not answered (no disk device, a stack that does not know
    /// the property, no memory, a malformed descriptor): requests are forwarded as before, and
    /// the storage's answers teach odxflt ([`StorageState::learn`]).
    #[default]
    Unknown,
    /// The storage returned a copy-offload descriptor.
    Supported(CopyOffloadLimits),
    /// The storage answered `STATUS_DEVICE_FEATURE_NOT_SUPPORTED` or `STATUS_NOT_SUPPORTED`: it has
    /// no copy offload. Every offload on the volume is refused with `STATUS_NOT_SUPPORTED` before
    /// any file fact is asked.
    NotSupported,
}

impl StorageCapability {
    /// Interprets the property query's completion: its status and the bytes it returned.
    ///
    /// "No copy offload" is `STATUS_DEVICE_FEATURE_NOT_SUPPORTED` — what the storage class
    /// driver answers for a device without the Block Device ROD Limits VPD page (classpnp's
    /// `ClasspDeviceCopyOffloadProperty`) — or `STATUS_NOT_SUPPORTED` (another driver's way of
    /// saying it; classpnp itself uses it only for a query type it does not know). Every other
    /// failure is [`Self::Unknown`]: `STATUS_INVALID_DEVICE_REQUEST` from a stack that does not
    /// know the property (it may still pass offload requests on), `STATUS_INVALID_LEVEL` (asked at
    /// `DISPATCH_LEVEL`), the status of a failed ROD-limits command, no memory; so is a success
    /// without a whole descriptor.
    #[must_use]
    pub fn from_query(status: NtStatus, returned: &[u8]) -> Self {
        if status == NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED
            || status == NtStatus::STATUS_NOT_SUPPORTED
        {
            return Self::NotSupported;
        }
        // Only STATUS_SUCCESS completes the query (STATUS_PENDING is not a completion, and
        // warnings such as STATUS_BUFFER_OVERFLOW are not success).
        if status != NtStatus::STATUS_SUCCESS {
            return Self::Unknown;
        }
        CopyOffloadLimits::from_descriptor(returned).map_or(Self::Unknown, Self::Supported)
    }

    /// The port's encoding: 0 unknown, 1 supported, 2 not supported.
    #[must_use]
    pub const fn code(&self) -> u32 {
        match self {
            Self::Unknown => 0,
            Self::Supported(_) => 1,
            Self::NotSupported => 2,
        }
    }

    /// A short name (`unknown`, `supported`, `not supported`).
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Supported(_) => "supported",
            Self::NotSupported => "not supported",
        }
    }
}

/// The statuses from below that mean "the storage cannot offload this": they start a back-off.
/// `STATUS_NOT_SUPPORTED` is the FSCTLs' documented code for it; `STATUS_DEVICE_FEATURE_NOT_SUPPORTED`
/// is what the storage stack itself says, and odxflt answers it as `STATUS_NOT_SUPPORTED`
/// ([`crate::complete::COMPLETION_MAP`]).
#[must_use]
pub fn refuses_offload(below: NtStatus) -> bool {
    below == NtStatus::STATUS_NOT_SUPPORTED
        || below == NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED
}

/// A volume's storage: its capability, fixed at instance setup, and a back-off per operation.
///
/// Every field is an atomic, so a state can also live in a static table and be set up again in
/// place for the next volume ([`Self::reset`]; the driver keeps one per slot of its non-paged
/// volume table, where post-operation at `DISPATCH_LEVEL` and the port reach it by slot number).
#[derive(Debug)]
pub struct StorageState {
    /// [`StorageCapability::code`].
    capability: AtomicU32,
    /// `MaximumTokenLifetime` (low half) and `DefaultTokenLifetime` (high half).
    lifetimes: AtomicU64,
    /// `MaximumTransferSize`.
    maximum_transfer_size: AtomicU64,
    /// `OptimalTransferCount`.
    optimal_transfer_count: AtomicU64,
    /// `MaximumDataDescriptors` (low) and `MaximumTransferLengthPerDescriptor` (high).
    descriptors: AtomicU64,
    /// `OptimalTransferLengthPerDescriptor` (low) and `OptimalTransferLengthGranularity` (high).
    optimal: AtomicU64,
    backoff_ticks: AtomicU64,
    /// Interrupt time until which reads are refused; 0 = none.
    read_until: AtomicU64,
    /// Interrupt time until which writes are refused; 0 = none.
    write_until: AtomicU64,
}

const fn pair(low: u32, high: u32) -> u64 {
    (low as u64) | ((high as u64) << 32)
}

const fn halves(both: u64) -> (u32, u32) {
    // Truncations intended: the two halves of a pair.
    #[allow(clippy::cast_possible_truncation)]
    ((both & 0xFFFF_FFFF) as u32, (both >> 32) as u32)
}

const fn clamped_ticks(backoff_seconds: u32) -> u64 {
    let seconds = if backoff_seconds > MAX_BACKOFF_SECONDS {
        MAX_BACKOFF_SECONDS
    } else {
        backoff_seconds
    };
    (seconds as u64).saturating_mul(TICKS_PER_SECOND)
}

impl StorageState {
    /// The state of a volume whose storage answered `capability`; a refusal backs off for
    /// `backoff_seconds` (clamped to [`MAX_BACKOFF_SECONDS`]; 0 = never back off).
    #[must_use]
    pub const fn new(capability: StorageCapability, backoff_seconds: u32) -> Self {
        let limits = match capability {
            StorageCapability::Supported(limits) => limits,
            StorageCapability::Unknown | StorageCapability::NotSupported => CopyOffloadLimits {
                maximum_token_lifetime: 0,
                default_token_lifetime: 0,
                maximum_transfer_size: 0,
                optimal_transfer_count: 0,
                maximum_data_descriptors: 0,
                maximum_transfer_length_per_descriptor: 0,
                optimal_transfer_length_per_descriptor: 0,
                optimal_transfer_length_granularity: 0,
            },
        };
        Self {
            capability: AtomicU32::new(capability.code()),
            lifetimes: AtomicU64::new(pair(
                limits.maximum_token_lifetime,
                limits.default_token_lifetime,
            )),
            maximum_transfer_size: AtomicU64::new(limits.maximum_transfer_size),
            optimal_transfer_count: AtomicU64::new(limits.optimal_transfer_count),
            descriptors: AtomicU64::new(pair(
                limits.maximum_data_descriptors,
                limits.maximum_transfer_length_per_descriptor,
            )),
            optimal: AtomicU64::new(pair(
                limits.optimal_transfer_length_per_descriptor,
                limits.optimal_transfer_length_granularity as u32,
            )),
            backoff_ticks: AtomicU64::new(clamped_ticks(backoff_seconds)),
            read_until: AtomicU64::new(0),
            write_until: AtomicU64::new(0),
        }
    }

    /// Sets the state up again, in place, as [`Self::new`] would (no back-off active): for a
    /// state that outlives one volume (a slot of a static table, reset while the slot is being
    /// claimed). A reader racing with the reset may see a mix of old and new limits, never an
    /// invalid capability.
    pub fn reset(&self, capability: StorageCapability, backoff_seconds: u32) {
        let fresh = Self::new(capability, backoff_seconds);
        let copy = |to: &AtomicU64, from: &AtomicU64| {
            to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
        };
        copy(&self.lifetimes, &fresh.lifetimes);
        copy(&self.maximum_transfer_size, &fresh.maximum_transfer_size);
        copy(&self.optimal_transfer_count, &fresh.optimal_transfer_count);
        copy(&self.descriptors, &fresh.descriptors);
        copy(&self.optimal, &fresh.optimal);
        copy(&self.backoff_ticks, &fresh.backoff_ticks);
        self.read_until.store(0, Ordering::Relaxed);
        self.write_until.store(0, Ordering::Relaxed);
        self.capability
            .store(fresh.capability.load(Ordering::Relaxed), Ordering::Release);
    }

    /// What the storage said at instance setup.
    #[must_use]
    pub fn capability(&self) -> StorageCapability {
        match self.capability.load(Ordering::Acquire) {
            1 => {
                let (maximum_token_lifetime, default_token_lifetime) =
                    halves(self.lifetimes.load(Ordering::Relaxed));
                let (maximum_data_descriptors, maximum_transfer_length_per_descriptor) =
                    halves(self.descriptors.load(Ordering::Relaxed));
                let (optimal_transfer_length_per_descriptor, granularity) =
                    halves(self.optimal.load(Ordering::Relaxed));
                StorageCapability::Supported(CopyOffloadLimits {
                    maximum_token_lifetime,
                    default_token_lifetime,
                    maximum_transfer_size: self.maximum_transfer_size.load(Ordering::Relaxed),
                    optimal_transfer_count: self.optimal_transfer_count.load(Ordering::Relaxed),
                    maximum_data_descriptors,
                    maximum_transfer_length_per_descriptor,
                    optimal_transfer_length_per_descriptor,
                    optimal_transfer_length_granularity: u16::try_from(granularity)
                        .unwrap_or(u16::MAX),
                })
            }
            2 => StorageCapability::NotSupported,
            _ => StorageCapability::Unknown,
        }
    }

    /// The back-off period, in ticks.
    #[must_use]
    pub fn backoff_ticks(&self) -> u64 {
        self.backoff_ticks.load(Ordering::Relaxed)
    }

    const fn slot(&self, op: OffloadOp) -> &AtomicU64 {
        match op {
            OffloadOp::Read => &self.read_until,
            OffloadOp::Write => &self.write_until,
        }
    }

    /// The end of `op`'s back-off, if one is active at `now`.
    #[must_use]
    pub fn backoff_until(&self, op: OffloadOp, now: u64) -> Option<u64> {
        let until = self.slot(op).load(Ordering::Relaxed);
        (until > now).then_some(until)
    }

    /// `OFFLOAD_READ_SUPPORTED` / `OFFLOAD_WRITE_SUPPORTED` as the storage allows them at `now`:
    /// neither when it said it has no copy offload, and not the one that is backing off.
    #[must_use]
    pub fn offload_flags(&self, now: u64) -> VolumeFlags {
        if self.capability.load(Ordering::Acquire) == StorageCapability::NotSupported.code() {
            return VolumeFlags::empty();
        }
        let mut flags = VolumeFlags::empty();
        flags.set(
            VolumeFlags::OFFLOAD_READ_SUPPORTED,
            self.backoff_until(OffloadOp::Read, now).is_none(),
        );
        flags.set(
            VolumeFlags::OFFLOAD_WRITE_SUPPORTED,
            self.backoff_until(OffloadOp::Write, now).is_none(),
        );
        flags
    }

    /// Learns from the status the storage answered a forwarded `op` with (before odxflt's
    /// mapping): a refusal ([`refuses_offload`]) starts `op`'s back-off at `now`. Returns whether
    /// a back-off was started (or extended). Other statuses change nothing: one success does not
    /// end a back-off early, because none is forwarded while it lasts.
    pub fn learn(&self, op: OffloadOp, below: NtStatus, now: u64) -> bool {
        let backoff_ticks = self.backoff_ticks();
        if !refuses_offload(below) || backoff_ticks == 0 {
            return false;
        }
        // `fetch_max`: concurrent refusals keep the latest end; a late completion of a request
        // forwarded before an earlier back-off never shortens it.
        let until = now.saturating_add(backoff_ticks);
        self.slot(op).fetch_max(until, Ordering::Relaxed);
        true
    }
}

impl Default for StorageState {
    fn default() -> Self {
        Self::new(StorageCapability::Unknown, DEFAULT_BACKOFF_SECONDS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> CopyOffloadLimits {
        CopyOffloadLimits {
            maximum_token_lifetime: 300,
            default_token_lifetime: 30,
            maximum_transfer_size: 256 << 20,
            optimal_transfer_count: 64 << 20,
            maximum_data_descriptors: 64,
            maximum_transfer_length_per_descriptor: 32 << 20,
            optimal_transfer_length_per_descriptor: 8 << 20,
            optimal_transfer_length_granularity: 8,
        }
    }

    #[test]
    fn descriptor_round_trips_at_the_documented_offsets() {
        let bytes = limits().to_descriptor();
        // MaximumTransferSize at 16, granularity at 44 (ntddstor.h; the golden table agrees).
        assert_eq!(&bytes[16..24], &(256_u64 << 20).to_le_bytes());
        assert_eq!(&bytes[44..46], &8_u16.to_le_bytes());
        assert_eq!(CopyOffloadLimits::from_descriptor(&bytes), Some(limits()));
    }

    #[test]
    fn a_short_or_header_only_descriptor_is_not_one() {
        let bytes = limits().to_descriptor();
        assert_eq!(CopyOffloadLimits::from_descriptor(&bytes[..47]), None);
        let mut header_only = bytes;
        header_only[4..8].copy_from_slice(&8_u32.to_le_bytes());
        assert_eq!(CopyOffloadLimits::from_descriptor(&header_only), None);
        assert_eq!(
            StorageCapability::from_query(NtStatus::STATUS_SUCCESS, &header_only),
            StorageCapability::Unknown
        );
    }

    #[test]
    fn the_class_drivers_answers_are_read_as_it_means_them() {
        // What classpnp's ClasspDeviceCopyOffloadProperty does (Windows' storage class driver,
        // read from its disassembly): a descriptor with Version = 1 and Size = 48; no Block
        // Device ROD Limits page -> STATUS_DEVICE_FEATURE_NOT_SUPPORTED; an unknown query type
        // -> STATUS_NOT_SUPPORTED; at DISPATCH_LEVEL -> STATUS_INVALID_LEVEL; a buffer under 48
        // bytes -> success with the 8-byte header only (Version = Size = 48).
        let bytes = limits().to_descriptor();
        assert_eq!(&bytes[0..8], &[1, 0, 0, 0, 48, 0, 0, 0]);
        assert_eq!(
            StorageCapability::from_query(NtStatus::STATUS_SUCCESS, &bytes),
            StorageCapability::Supported(limits())
        );
        for no in [
            NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED,
            NtStatus::STATUS_NOT_SUPPORTED,
        ] {
            assert_eq!(
                StorageCapability::from_query(no, &[]),
                StorageCapability::NotSupported,
                "{no:?}"
            );
        }
        let mut header_only = [0_u8; 8];
        header_only[0..4].copy_from_slice(&48_u32.to_le_bytes());
        header_only[4..8].copy_from_slice(&48_u32.to_le_bytes());
        assert_eq!(
            StorageCapability::from_query(NtStatus::STATUS_SUCCESS, &header_only),
            StorageCapability::Unknown
        );
        for status in [
            NtStatus::STATUS_INVALID_DEVICE_REQUEST,
            NtStatus::STATUS_INSUFFICIENT_RESOURCES,
            NtStatus(0xC000_0148), // STATUS_INVALID_LEVEL
            NtStatus(0xC000_0185), // STATUS_IO_DEVICE_ERROR (a failed ROD-limits command)
            NtStatus(0x0000_0103), // STATUS_PENDING
            NtStatus(0x8000_0005), // STATUS_BUFFER_OVERFLOW
        ] {
            assert_eq!(
                StorageCapability::from_query(status, &bytes),
                StorageCapability::Unknown,
                "{status:?}"
            );
        }
    }

    #[test]
    fn a_refusal_backs_off_that_operation_until_the_period_ends() {
        let state = StorageState::new(StorageCapability::Unknown, 180);
        let both = VolumeFlags::OFFLOAD_READ_SUPPORTED | VolumeFlags::OFFLOAD_WRITE_SUPPORTED;
        assert_eq!(state.offload_flags(5), both);
        assert!(!state.learn(OffloadOp::Write, NtStatus::STATUS_INVALID_PARAMETER, 5));
        assert!(state.learn(
            OffloadOp::Write,
            NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED,
            5
        ));
        let end = 5 + 180 * TICKS_PER_SECOND;
        assert_eq!(state.backoff_until(OffloadOp::Write, 6), Some(end));
        assert_eq!(state.backoff_until(OffloadOp::Read, 6), None);
        assert_eq!(
            state.offload_flags(end - 1),
            VolumeFlags::OFFLOAD_READ_SUPPORTED
        );
        assert_eq!(state.offload_flags(end), both);
        // A late refusal of an older request never shortens the back-off.
        assert!(state.learn(OffloadOp::Write, NtStatus::STATUS_NOT_SUPPORTED, 1));
        assert_eq!(state.backoff_until(OffloadOp::Write, 6), Some(end));
    }

    #[test]
    fn a_reset_state_is_a_new_one() {
        let state = StorageState::new(StorageCapability::Supported(limits()), 60);
        assert_eq!(state.capability(), StorageCapability::Supported(limits()));
        assert!(state.learn(OffloadOp::Read, NtStatus::STATUS_NOT_SUPPORTED, 7));
        state.reset(StorageCapability::NotSupported, 30);
        assert_eq!(state.capability(), StorageCapability::NotSupported);
        assert_eq!(state.backoff_until(OffloadOp::Read, 8), None);
        assert_eq!(state.backoff_ticks(), 30 * TICKS_PER_SECOND);
        state.reset(StorageCapability::Supported(limits()), u32::MAX);
        assert_eq!(state.capability(), StorageCapability::Supported(limits()));
        assert_eq!(
            state.backoff_ticks(),
            u64::from(MAX_BACKOFF_SECONDS) * TICKS_PER_SECOND
        );
        state.reset(StorageCapability::Unknown, 0);
        assert_eq!(state.capability(), StorageCapability::Unknown);
    }

    #[test]
    fn storage_without_offload_refuses_both_and_zero_never_backs_off() {
        let none = StorageState::new(StorageCapability::NotSupported, 180);
        assert_eq!(none.offload_flags(0), VolumeFlags::empty());
        let never = StorageState::new(StorageCapability::Supported(limits()), 0);
        assert!(!never.learn(OffloadOp::Read, NtStatus::STATUS_NOT_SUPPORTED, 0));
        assert_eq!(
            never.offload_flags(0),
            VolumeFlags::OFFLOAD_READ_SUPPORTED | VolumeFlags::OFFLOAD_WRITE_SUPPORTED
        );
        let clamped = StorageState::new(StorageCapability::Unknown, u32::MAX);
        assert_eq!(
            clamped.backoff_ticks(),
            u64::from(MAX_BACKOFF_SECONDS) * TICKS_PER_SECOND
        );
    }
}
