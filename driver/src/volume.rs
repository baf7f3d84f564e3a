//! Per-volume facts, learned once at instance setup and cached in the instance context.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::ffi::names::VolumeName;
use odx_core::flags::VolumeFlags;
use odx_core::governance::VolumeNames;
use odx_core::storage::{StorageCapability, StorageState};
use odx_core::{FileSystemKind, SectorSize, VolumeFacts};

/// `FLT_FSTYPE_NTFS`.
pub const FLT_FSTYPE_NTFS: i32 = 2;
/// `FLT_FSTYPE_REFS`.
pub const FLT_FSTYPE_REFS: i32 = 28;

crate::pin_constant!(
    FLT_FSTYPE_NTFS => "FLT_FSTYPE_NTFS",
    FLT_FSTYPE_REFS => "FLT_FSTYPE_REFS",
);

/// What instance setup reads from the kernel, before interpretation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RawVolume {
    /// `VolumeFilesystemType` passed to the instance setup callback.
    pub filesystem_type: i32,
    /// `FILE_FS_SECTOR_SIZE_INFORMATION.LogicalBytesPerSector`, if the query succeeded.
    pub logical_bytes_per_sector: Option<u32>,
    /// `FILE_FS_SIZE_INFORMATION.BytesPerSector`, if the query succeeded (fallback for the
    /// logical sector size on file systems that do not answer the sector-size class).
    pub bytes_per_sector: Option<u32>,
    /// `SectorsPerAllocationUnit` from the same query.
    pub sectors_per_allocation_unit: Option<u32>,
    /// `FltIsVolumeWritable`, if it succeeded.
    pub writable: Option<bool>,
}

/// Why instance setup declines a volume (`STATUS_FLT_DO_NOT_ATTACH`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decline {
    /// Not NTFS or ReFS: no ODX there, nothing to govern.
    FileSystem,
    /// The volume did not report a power-of-two sector size; without it no alignment rule can
    /// be applied, so odxflt stays out of the way.
    SectorSize,
}

/// The file systems odxflt attaches to.
#[must_use]
pub const fn file_system(filesystem_type: i32) -> Option<FileSystemKind> {
    match filesystem_type {
        FLT_FSTYPE_NTFS => Some(FileSystemKind::Ntfs),
        FLT_FSTYPE_REFS => Some(FileSystemKind::Refs),
        _ => None,
    }
}

impl RawVolume {
    /// The facts to cache, or why not to attach.
    ///
    /// # Errors
    /// [`Decline`] when the volume is not one odxflt attaches to.
    pub fn facts(&self) -> Result<VolumeFacts, Decline> {
        let file_system = file_system(self.filesystem_type).ok_or(Decline::FileSystem)?;
        let sector_size = self
            .logical_bytes_per_sector
            .or(self.bytes_per_sector)
            .and_then(SectorSize::new)
            .ok_or(Decline::SectorSize)?;
        // No OFFLOAD_{READ,WRITE}_SUPPORTED here: whether the storage offloads is asked per
        // request of the volume's storage state ([`with_storage`]), which learns from refusals.
        let mut flags = VolumeFlags::empty();
        // Unknown writability counts as writable: the file system below still refuses a write to
        // read-only media, while a wrong "read-only" would refuse writes that would succeed.
        flags.set(VolumeFlags::READ_ONLY, self.writable == Some(false));
        let cluster = match (self.bytes_per_sector, self.sectors_per_allocation_unit) {
            (Some(bytes), Some(sectors)) => bytes.checked_mul(sectors),
            _ => None,
        };
        // Without the cluster size, the largest cluster NTFS allows (2 MiB) bounds the file size
        // from above, so the core never refuses a size the volume could hold.
        let max_file_size = VolumeFacts::ntfs_max_file_size(cluster.unwrap_or(2 * 1024 * 1024));
        Ok(VolumeFacts {
            file_system,
            sector_size,
            flags,
            max_file_size,
        })
    }
}

/// The volume's facts for one request: the cached facts with the storage's
/// `OFFLOAD_{READ,WRITE}_SUPPORTED` at `now` (`StorageState::offload_flags`: none when the storage
/// said it cannot offload, not the operation that is backing off). The core's
/// `Check::OffloadSupported` refuses on them; the driver adds no check of its own.
#[must_use]
pub fn with_storage(facts: VolumeFacts, storage: &StorageState, now: u64) -> VolumeFacts {
    VolumeFacts {
        flags: facts.flags | storage.offload_flags(now),
        ..facts
    }
}

/// The instance context: the cached facts, what the storage said at setup, the teardown mark
/// and the instance's slot in [`crate::volumes::VOLUMES`] (its policy, statistics and storage
/// state).
#[derive(Debug)]
#[repr(C)]
pub struct InstanceContext {
    facts: VolumeFacts,
    capability: StorageCapability,
    torn_down: AtomicBool,
    slot: Option<u32>,
    device_name: VolumeName,
    dos_name: VolumeName,
    guid_name: VolumeName,
}

impl InstanceContext {
    /// A context for a freshly set-up instance with its slot (`None`: the table is full; the
    /// instance is governed by the default policy, not counted, and does not learn from the
    /// storage's refusals: only `capability` applies).
    #[must_use]
    pub const fn new(facts: VolumeFacts, capability: StorageCapability, slot: Option<u32>) -> Self {
        Self {
            facts,
            capability,
            torn_down: AtomicBool::new(false),
            slot,
            device_name: VolumeName::NONE,
            dos_name: VolumeName::NONE,
            guid_name: VolumeName::NONE,
        }
    }

    /// The same context with the volume's names (instance setup: `FltGetVolumeName`,
    /// `IoVolumeDeviceToDosName`, `FltGetVolumeGuidName`).
    #[must_use]
    pub const fn with_names(
        mut self,
        device: VolumeName,
        dos: VolumeName,
        guid: VolumeName,
    ) -> Self {
        self.device_name = device;
        self.dos_name = dos;
        self.guid_name = guid;
        self
    }

    /// The volume's names for the rules.
    #[must_use]
    pub fn names(&self) -> VolumeNames<'_> {
        VolumeNames {
            device: self.device_name.units(),
            dos: self.dos_name.units(),
            guid: self.guid_name.units(),
        }
    }

    /// What the storage said at instance setup.
    #[must_use]
    pub const fn capability(&self) -> StorageCapability {
        self.capability
    }

    /// The instance's slot in the statistics and policy table.
    #[must_use]
    pub const fn slot(&self) -> Option<u32> {
        self.slot
    }

    /// Instance teardown has started (dismount, detach, unload): from now on requests pass
    /// through untouched. odxflt does not answer for the volume: a manual detach leaves it
    /// mounted, and on a real dismount the file system below answers with its own status.
    pub fn mark_torn_down(&self) {
        self.torn_down.store(true, Ordering::Release);
    }

    /// Teardown has started.
    #[must_use]
    pub fn torn_down(&self) -> bool {
        self.torn_down.load(Ordering::Acquire)
    }

    /// The facts learned at setup.
    #[must_use]
    pub const fn facts(&self) -> VolumeFacts {
        self.facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ntfs() -> RawVolume {
        RawVolume {
            filesystem_type: FLT_FSTYPE_NTFS,
            logical_bytes_per_sector: Some(4096),
            bytes_per_sector: Some(512),
            sectors_per_allocation_unit: Some(8),
            writable: Some(true),
        }
    }

    #[test]
    fn ntfs_volume_facts_use_the_logical_sector_size_and_cluster() {
        let facts = ntfs().facts().unwrap();
        assert_eq!(facts.file_system, FileSystemKind::Ntfs);
        assert_eq!(facts.sector_size.get(), 4096);
        assert!(!facts.flags.contains(VolumeFlags::READ_ONLY));
        // Offload support is the storage's, per request, not a setup fact.
        assert!(!facts.flags.contains(VolumeFlags::OFFLOAD_READ_SUPPORTED));
        assert!(!facts.flags.contains(VolumeFlags::OFFLOAD_WRITE_SUPPORTED));
        assert_eq!(facts.max_file_size, VolumeFacts::ntfs_max_file_size(4096));
    }

    #[test]
    fn the_storage_state_gives_the_offload_flags_per_request() {
        use odx_core::storage::TICKS_PER_SECOND;
        use odx_core::{NtStatus, OffloadOp};
        let facts = ntfs().facts().unwrap();
        let both = VolumeFlags::OFFLOAD_READ_SUPPORTED | VolumeFlags::OFFLOAD_WRITE_SUPPORTED;
        let unknown = StorageState::new(StorageCapability::Unknown, 180);
        assert_eq!(with_storage(facts, &unknown, 0).flags, both);
        let none = StorageState::new(StorageCapability::NotSupported, 180);
        assert!(!with_storage(facts, &none, 0).flags.intersects(both));
        assert!(unknown.learn(
            OffloadOp::Write,
            NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED,
            10
        ));
        let during = with_storage(facts, &unknown, 11).flags;
        assert!(during.contains(VolumeFlags::OFFLOAD_READ_SUPPORTED));
        assert!(!during.contains(VolumeFlags::OFFLOAD_WRITE_SUPPORTED));
        let after = with_storage(facts, &unknown, 10 + 180 * TICKS_PER_SECOND).flags;
        assert_eq!(after, both);
        // Everything else is setup's.
        assert_eq!(with_storage(facts, &none, 0).sector_size, facts.sector_size);
    }

    #[test]
    fn refs_is_attached_other_file_systems_are_declined() {
        let refs = RawVolume {
            filesystem_type: FLT_FSTYPE_REFS,
            ..ntfs()
        };
        assert_eq!(refs.facts().unwrap().file_system, FileSystemKind::Refs);
        // The whole FLT_FILESYSTEM_TYPE enum, from the layout table (Wine's and mingw-w64's
        // headers and the documented enum): only NTFS and ReFS are attached. exFAT is 22,
        // CSVFS 27 (docs/driver.md, "File systems").
        let names = [
            "UNKNOWN",
            "RAW",
            "NTFS",
            "FAT",
            "CDFS",
            "UDFS",
            "LANMAN",
            "WEBDAV",
            "RDPDR",
            "NFS",
            "MS_NETWARE",
            "NETWARE",
            "BSUDF",
            "MUP",
            "RSFX",
            "ROXIO_UDF1",
            "ROXIO_UDF2",
            "ROXIO_UDF3",
            "TACIT",
            "FS_REC",
            "INCD",
            "INCD_FAT",
            "EXFAT",
            "PSFS",
            "GPFS",
            "NPFS",
            "MSFS",
            "CSVFS",
            "REFS",
            "OPENAFS",
            "CIMFS",
        ];
        for name in names {
            let full = std::format!("FLT_FSTYPE_{name}");
            let value = crate::ffi::layouts::constant(&full).unwrap_or_else(|| panic!("{full}"));
            let other = RawVolume {
                filesystem_type: i32::try_from(value).unwrap(),
                ..ntfs()
            };
            let attached = other.facts() != Err(Decline::FileSystem);
            assert_eq!(
                attached,
                matches!(name, "NTFS" | "REFS"),
                "{full} = {value}"
            );
        }
        assert_eq!(crate::ffi::layouts::constant("FLT_FSTYPE_EXFAT"), Some(22));
        assert_eq!(crate::ffi::layouts::constant("FLT_FSTYPE_CSVFS"), Some(27));
    }

    #[test]
    fn sector_size_falls_back_and_must_be_a_power_of_two() {
        let fallback = RawVolume {
            logical_bytes_per_sector: None,
            ..ntfs()
        };
        assert_eq!(fallback.facts().unwrap().sector_size.get(), 512);
        let odd = RawVolume {
            logical_bytes_per_sector: Some(520),
            ..ntfs()
        };
        assert_eq!(odd.facts(), Err(Decline::SectorSize));
        let none = RawVolume {
            logical_bytes_per_sector: None,
            bytes_per_sector: None,
            ..ntfs()
        };
        assert_eq!(none.facts(), Err(Decline::SectorSize));
    }

    #[test]
    fn writability_only_a_definite_no_is_read_only() {
        let ro = RawVolume {
            writable: Some(false),
            ..ntfs()
        };
        assert!(ro.facts().unwrap().flags.contains(VolumeFlags::READ_ONLY));
        let unknown = RawVolume {
            writable: None,
            ..ntfs()
        };
        assert!(
            !unknown
                .facts()
                .unwrap()
                .flags
                .contains(VolumeFlags::READ_ONLY)
        );
    }

    #[test]
    fn unknown_cluster_size_takes_the_largest_bound() {
        let raw = RawVolume {
            sectors_per_allocation_unit: None,
            ..ntfs()
        };
        assert_eq!(
            raw.facts().unwrap().max_file_size,
            VolumeFacts::ntfs_max_file_size(2 << 20)
        );
    }

    #[test]
    fn teardown_marks_the_context_without_touching_the_facts() {
        let context =
            InstanceContext::new(ntfs().facts().unwrap(), StorageCapability::Unknown, None);
        assert!(!context.torn_down());
        context.mark_torn_down();
        assert!(context.torn_down());
        // Teardown is not a dismount: the facts stay what setup learned.
        assert!(!context.facts().flags.contains(VolumeFlags::DISMOUNTED));
        assert_eq!(context.facts(), ntfs().facts().unwrap());
    }

    #[test]
    fn the_context_remembers_its_slot() {
        let context = InstanceContext::new(
            ntfs().facts().unwrap(),
            StorageCapability::NotSupported,
            Some(3),
        );
        assert_eq!(context.slot(), Some(3));
        assert_eq!(context.capability(), StorageCapability::NotSupported);
        assert_eq!(
            InstanceContext::new(ntfs().facts().unwrap(), StorageCapability::Unknown, None).slot(),
            None
        );
    }
}
