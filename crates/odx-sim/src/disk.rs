//! The disk under the volume as odxflt's instance setup sees it: its answer to
//! `IOCTL_STORAGE_QUERY_PROPERTY` (`StorageDeviceCopyOffloadProperty`, `PropertyStandardQuery`),
//! and odxflt's instance setup over that answer ([`instance_setup`]).
//!
//! The answer is what the disk would complete the query with — a status and the bytes it
//! returned — so the simulator's odxflt reads it with the function the driver calls
//! (`odx_core::storage::StorageCapability::from_query`), never with a shortcut. The PE harness
//! mocks the same answer for the real image from the same [`StorageQuery`].
//!
//! What the disk *does* with an offload request is separate (`VolumeConfig::storage_offload_read`
//! / `_write`): a disk may describe copy offload and still refuse it for a LUN pair, which is
//! what odxflt's back-off learns.

use odx_core::NtStatus;
use odx_core::storage::{CopyOffloadLimits, StorageCapability, StorageState};

use crate::volume::VolumeConfig;

/// `MaximumDataDescriptors` of the simulated disk's default descriptor.
pub const DEFAULT_DATA_DESCRIPTORS: u32 = 64;
/// `OptimalTransferLengthGranularity` (logical blocks) of the default descriptor.
pub const DEFAULT_GRANULARITY: u16 = 1;

/// The disk's answer to odxflt's copy-offload property query at instance setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageQuery {
    /// `STATUS_SUCCESS` with a `DEVICE_COPY_OFFLOAD_DESCRIPTOR` (48 bytes, `Version` = 1, `Size` =
    /// 48, as the storage class driver writes it) carrying these limits.
    Descriptor(CopyOffloadLimits),
    /// `STATUS_DEVICE_FEATURE_NOT_SUPPORTED`: the disk has no copy offload (no Block Device ROD
    /// Limits VPD page; the storage class driver's answer, classpnp's
    /// `ClasspDeviceCopyOffloadProperty`).
    NotSupported,
    /// The query completes with this (failure) status: a stack that does not know the
    /// property (`STATUS_INVALID_DEVICE_REQUEST`), no memory, …
    Fails(NtStatus),
    /// `FltGetDiskDeviceObject` finds no disk device under the volume: the query is never sent.
    NoDisk,
}

impl StorageQuery {
    /// The query's completion as the disk returns it: `(IoStatus.Status, the returned bytes)`;
    /// `None` when there is no disk device to send it to.
    #[must_use]
    pub fn answer(&self) -> Option<(NtStatus, Vec<u8>)> {
        match self {
            Self::Descriptor(limits) => {
                Some((NtStatus::STATUS_SUCCESS, limits.to_descriptor().to_vec()))
            }
            Self::NotSupported => Some((NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED, Vec::new())),
            Self::Fails(status) => Some((*status, Vec::new())),
            Self::NoDisk => None,
        }
    }

    /// The scenario spelling (`descriptor`, `not_supported`, `fails`, `no_disk`).
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Descriptor(_) => "descriptor",
            Self::NotSupported => "not_supported",
            Self::Fails(_) => "fails",
            Self::NoDisk => "no_disk",
        }
    }
}

/// The descriptor a simulated disk returns unless the scenario says otherwise, derived from the
/// volume's token engine: lifetimes in whole seconds of `max_ttl_ms` / `default_ttl_ms`,
/// `MaximumTransferSize` = `OptimalTransferCount` = `max_transfer` (bytes), per-descriptor lengths
/// the same in logical blocks (the descriptor's page counts them in blocks: `max_transfer` /
/// `sector_size`, capped at the field's width), [`DEFAULT_DATA_DESCRIPTORS`] descriptors,
/// granularity [`DEFAULT_GRANULARITY`].
#[must_use]
pub fn default_limits(config: &VolumeConfig) -> CopyOffloadLimits {
    let seconds = |ms: u64| u32::try_from(ms / 1000).unwrap_or(u32::MAX);
    let blocks = config.max_transfer / u64::from(config.sector_size.get());
    let per_descriptor = u32::try_from(blocks).unwrap_or(u32::MAX);
    CopyOffloadLimits {
        maximum_token_lifetime: seconds(config.max_ttl_ms),
        default_token_lifetime: seconds(config.default_ttl_ms),
        maximum_transfer_size: config.max_transfer,
        optimal_transfer_count: config.max_transfer,
        maximum_data_descriptors: DEFAULT_DATA_DESCRIPTORS,
        maximum_transfer_length_per_descriptor: per_descriptor,
        optimal_transfer_length_per_descriptor: per_descriptor,
        optimal_transfer_length_granularity: DEFAULT_GRANULARITY,
    }
}

/// odxflt's instance setup for the storage: ask the disk, read the answer with
/// `StorageCapability::from_query` (no disk device: [`StorageCapability::Unknown`], as the
/// driver does when `FltGetDiskDeviceObject` fails), and keep it with the back-off period
/// (`Parameters\OffloadBackoffSeconds`).
#[must_use]
pub fn instance_setup(query: &StorageQuery, backoff_seconds: u32) -> StorageState {
    let capability = match query.answer() {
        Some((status, returned)) => StorageCapability::from_query(status, &returned),
        None => StorageCapability::Unknown,
    };
    StorageState::new(capability, backoff_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_answer_reads_as_the_core_says() {
        let limits = default_limits(&VolumeConfig::default());
        let cap = |q: StorageQuery| instance_setup(&q, 180).capability();
        assert_eq!(
            cap(StorageQuery::Descriptor(limits)),
            StorageCapability::Supported(limits)
        );
        assert_eq!(
            cap(StorageQuery::NotSupported),
            StorageCapability::NotSupported
        );
        assert_eq!(
            cap(StorageQuery::Fails(NtStatus::STATUS_INVALID_DEVICE_REQUEST)),
            StorageCapability::Unknown
        );
        assert_eq!(cap(StorageQuery::NoDisk), StorageCapability::Unknown);
    }

    #[test]
    fn the_default_descriptor_follows_the_volume() {
        let l = default_limits(&VolumeConfig::default());
        assert_eq!(
            (l.maximum_token_lifetime, l.default_token_lifetime),
            (300, 30)
        );
        assert_eq!(l.maximum_transfer_size, 256 << 20);
        assert_eq!(
            l.maximum_transfer_length_per_descriptor,
            (256 << 20) / 512,
            "in 512-byte blocks"
        );
        assert_eq!(
            (
                l.maximum_data_descriptors,
                l.optimal_transfer_length_granularity
            ),
            (64, 1)
        );
    }
}
