//! The facts a decision needs, and the trait through which the core asks for them.
//!
//! The core asks for facts in its check order and stops at the first failing rule, so a caller
//! (the driver in the kernel, the simulator on a host) gathers only what the request still needs:
//! a misaligned request never costs a `FltQueryInformationFile`.

use crate::flags::{FileAttributes, StreamMarkers, VolumeFlags};
use crate::status::NtStatus;

/// The file system mounted on the volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileSystemKind {
    /// NTFS: the only object store that implements the offload FSCTLs (MS-FSA <112>, <113>).
    Ntfs,
    /// ReFS: attached to, but the offload FSCTLs are not implemented (odx-spec C-12).
    Refs,
    /// Anything else (FAT, exFAT, UDF, network redirectors, …).
    Other,
}

impl FileSystemKind {
    /// Whether the file system implements `FSCTL_OFFLOAD_READ`/`WRITE` (MS-FSA step 1).
    #[must_use]
    pub const fn implements_offload(self) -> bool {
        matches!(self, Self::Ntfs)
    }
}

/// A logical sector size: a power of two, at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SectorSize(u32);

impl SectorSize {
    /// 512 bytes, the default of odx-spec §0.2.
    pub const DEFAULT: Self = Self(512);

    /// `None` unless `bytes` is a power of two.
    #[must_use]
    pub const fn new(bytes: u32) -> Option<Self> {
        if bytes.is_power_of_two() {
            Some(Self(bytes))
        } else {
            None
        }
    }

    /// Bytes per logical sector.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }

    const fn mask(self) -> u64 {
        // A power of two is at least 1, so this never wraps.
        (self.0 as u64).wrapping_sub(1)
    }

    /// Whether `value` is a multiple of the sector size.
    #[must_use]
    pub const fn is_aligned(self, value: u64) -> bool {
        value & self.mask() == 0
    }

    /// `value` rounded up to a multiple of the sector size; `None` on overflow.
    #[must_use]
    pub const fn round_up(self, value: u64) -> Option<u64> {
        match value.checked_add(self.mask()) {
            Some(v) => Some(v & !self.mask()),
            None => None,
        }
    }

    /// `value` rounded down to a multiple of the sector size.
    #[must_use]
    pub const fn round_down(self, value: u64) -> u64 {
        value & !self.mask()
    }
}

impl Default for SectorSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Facts about the volume, cached by the driver in its volume context at instance setup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VolumeFacts {
    /// The mounted file system.
    pub file_system: FileSystemKind,
    /// `FILE_FS_SECTOR_SIZE_INFORMATION.LogicalBytesPerSector`.
    pub sector_size: SectorSize,
    /// Read-only, dismounted, offload capability.
    pub flags: VolumeFlags,
    /// MS-FSA `Volume.MaxFileSize`.
    pub max_file_size: u64,
}

impl VolumeFacts {
    /// NTFS's largest file: 2^32 - 1 clusters.
    #[must_use]
    pub const fn ntfs_max_file_size(cluster_size: u32) -> u64 {
        (u32::MAX as u64).saturating_mul(cluster_size as u64)
    }

    /// A writable, mounted, offload-capable NTFS volume with 512-byte sectors and 4 KiB clusters.
    #[must_use]
    pub const fn ntfs_default() -> Self {
        Self {
            file_system: FileSystemKind::Ntfs,
            sector_size: SectorSize::DEFAULT,
            flags: VolumeFlags::OFFLOAD_READ_SUPPORTED.union(VolumeFlags::OFFLOAD_WRITE_SUPPORTED),
            max_file_size: Self::ntfs_max_file_size(4096),
        }
    }
}

/// Facts about the handle (file object) the request arrived on.
///
/// No access rights: odxflt makes no access check (the I/O manager checks user-mode callers
/// before any filter, kernel-mode callers are trusted, and `FILE_OBJECT.ReadAccess/WriteAccess`
/// are share-access bookkeeping, not the handle's granted access).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HandleFacts {
    /// Cleanup has run on the file object (`FO_CLEANUP_COMPLETE`).
    pub closed: bool,
}

/// What kind of stream the file object opens (`FILE_BASIC_INFORMATION`, TxF, metadata).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StreamKind {
    /// File attributes.
    pub attributes: FileAttributes,
    /// Transacted, metadata, non-data stream.
    pub markers: StreamMarkers,
}

impl StreamKind {
    /// Whether NTFS refuses offload for this stream (MS-FSA step 10 plus the WDK list).
    #[must_use]
    pub fn refuses_offload(&self) -> bool {
        self.attributes.intersects(FileAttributes::OFFLOAD_REFUSING) || !self.markers.is_empty()
    }
}

/// Sizes and state of the stream (`FILE_STANDARD_INFORMATION` and valid data length).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StreamSizes {
    /// `EndOfFile`.
    pub end_of_file: u64,
    /// Valid data length; never above `end_of_file` (the core clamps it).
    pub valid_data_length: u64,
    /// `DeletePending`.
    pub delete_pending: bool,
}

/// A byte range `[offset, offset + length)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// Number of bytes.
    pub length: u64,
}

impl ByteRange {
    /// A range.
    #[must_use]
    pub const fn new(offset: u64, length: u64) -> Self {
        Self { offset, length }
    }

    /// One past the last byte, `None` on overflow.
    #[must_use]
    pub const fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.length)
    }

    /// Whether two non-empty ranges share a byte (computed without overflow).
    #[must_use]
    pub const fn overlaps(&self, other: &Self) -> bool {
        if self.length == 0 || other.length == 0 {
            return false;
        }
        // Two u64 values sum to less than 2^65: the 128-bit sums cannot wrap.
        let a_end = (self.offset as u128).wrapping_add(self.length as u128);
        let b_end = (other.offset as u128).wrapping_add(other.length as u128);
        (self.offset as u128) < b_end && (other.offset as u128) < a_end
    }
}

/// The intent of the access a byte-range lock check is made for (MS-FSA §2.1.4.10 `IsExclusive`;
/// `LockIntent` is always FALSE for offload, which performs I/O).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockIntent {
    /// Read access (offload read): only another owner's exclusive lock conflicts.
    Shared,
    /// Write access (offload write): every shared lock and another owner's exclusive lock conflict.
    Exclusive,
}

/// Which fact a query asked for; used by callers that count or log fact gathering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FactKind {
    /// [`OffloadFacts::volume`].
    Volume,
    /// [`OffloadFacts::handle`].
    Handle,
    /// [`OffloadFacts::stream_kind`].
    StreamKind,
    /// [`OffloadFacts::stream_sizes`].
    StreamSizes,
    /// [`OffloadFacts::lock_conflict`].
    Locks,
}

/// Fact queries, answered by the driver from the kernel and by the simulator from its model.
///
/// A query that fails ends the decision with a pass-through: a fact the filter cannot learn is a
/// request it can neither vouch for nor refuse, so it goes down untouched and the file system
/// decides (`Verdict::PassThrough`).
pub trait OffloadFacts {
    /// Volume facts (cheap: cached per volume).
    ///
    /// # Errors
    /// The status that prevented learning the fact.
    fn volume(&mut self) -> Result<VolumeFacts, NtStatus>;

    /// Handle facts.
    ///
    /// # Errors
    /// The status that prevented learning the fact.
    fn handle(&mut self) -> Result<HandleFacts, NtStatus>;

    /// Stream kind (attributes, TxF, metadata).
    ///
    /// # Errors
    /// The status that prevented learning the fact.
    fn stream_kind(&mut self) -> Result<StreamKind, NtStatus>;

    /// Stream sizes and delete state.
    ///
    /// # Errors
    /// The status that prevented learning the fact.
    fn stream_sizes(&mut self) -> Result<StreamSizes, NtStatus>;

    /// Whether `range` conflicts with a byte-range lock for an access of `intent` by this handle.
    ///
    /// # Errors
    /// The status that prevented learning the fact.
    fn lock_conflict(&mut self, range: ByteRange, intent: LockIntent) -> Result<bool, NtStatus>;

    /// The requesting process's image: a full image path or its file name (`robocopy.exe`).
    /// Asked only when a governance rule names a process, or for the decision journal; `None`
    /// when it cannot be learnt (the rule then does not match, the record keeps no name). The
    /// answer is the implementer's to cache for the rest of the request.
    fn process_image(&mut self) -> Option<&[u16]>;

    /// The file's path from the volume root (`\Backups\db.vhdx`, no volume name). Asked only
    /// when a rule names a path or an extension, or for the journal; `None` when it cannot be
    /// learnt.
    fn file_path(&mut self) -> Option<&[u16]>;

    /// The answers [`Self::process_image`] and [`Self::file_path`] gave earlier in this request
    /// (`None` for one not asked yet or that could not be learnt). Makes no query: the core
    /// reads the names through it where it may not call out (the journal's record, the rules'
    /// evaluation), after asking for them in a frame of its choosing.
    fn known_names(&self) -> (Option<&[u16]>, Option<&[u16]>);
}

impl<T: OffloadFacts + ?Sized> OffloadFacts for &mut T {
    fn volume(&mut self) -> Result<VolumeFacts, NtStatus> {
        (**self).volume()
    }
    fn handle(&mut self) -> Result<HandleFacts, NtStatus> {
        (**self).handle()
    }
    fn stream_kind(&mut self) -> Result<StreamKind, NtStatus> {
        (**self).stream_kind()
    }
    fn stream_sizes(&mut self) -> Result<StreamSizes, NtStatus> {
        (**self).stream_sizes()
    }
    fn lock_conflict(&mut self, range: ByteRange, intent: LockIntent) -> Result<bool, NtStatus> {
        (**self).lock_conflict(range, intent)
    }
    fn process_image(&mut self) -> Option<&[u16]> {
        (**self).process_image()
    }
    fn file_path(&mut self) -> Option<&[u16]> {
        (**self).file_path()
    }
    fn known_names(&self) -> (Option<&[u16]>, Option<&[u16]>) {
        (**self).known_names()
    }
}
