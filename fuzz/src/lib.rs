//! Shared pieces of the odx-core fuzz targets: `arbitrary` mirrors of the core's facts, rules and
//! contexts (the core itself does not depend on `arbitrary`), their conversion into the core's
//! types, and an in-memory [`OffloadFacts`] that records which facts were asked for.
//!
//! Numbers that must be sector multiples to get past the early checks are generated through
//! [`Num`], so the fuzzer reaches the deep checks without having to guess 9 zero bits.

use arbitrary::Arbitrary;
use odx_core::flags::{FileAttributes, StreamMarkers, VolumeFlags};
use odx_core::rules::{LengthAlignment, TinyFile};
use odx_core::{
    ByteRange, FactKind, FileSystemKind, HandleFacts, LockIntent, NtStatus, OffloadFacts, Rules,
    SectorSize, StreamKind, StreamSizes, VolumeFacts,
};

/// A 64-bit value: a multiple of the sector size, something near it, near the top of the range,
/// or anything.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Num {
    /// `n` sectors.
    Sectors(u32),
    /// `n` sectors plus `extra` bytes (usually unaligned).
    SectorsPlus(u16, u16),
    /// `u64::MAX - n`.
    NearMax(u32),
    /// Any value.
    Raw(u64),
}

impl Num {
    /// The value for a given sector size.
    #[must_use]
    pub fn value(self, sector: SectorSize) -> u64 {
        let s = u64::from(sector.get());
        match self {
            Self::Sectors(n) => u64::from(n).wrapping_mul(s),
            Self::SectorsPlus(n, extra) => {
                u64::from(n).wrapping_mul(s).wrapping_add(u64::from(extra))
            }
            Self::NearMax(n) => u64::MAX - u64::from(n),
            Self::Raw(v) => v,
        }
    }
}

/// How long a buffer is, relative to the structure it should hold.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Len {
    /// Exactly the structure size.
    Exact,
    /// The structure size plus `n` trailing bytes.
    Longer(u8),
    /// `n` bytes (usually too short).
    Short(u16),
    /// Any `usize` (only meaningful for an output length, never allocated).
    Any(usize),
}

impl Len {
    /// The length for a structure of `size` bytes.
    #[must_use]
    pub fn value(self, size: usize) -> usize {
        match self {
            Self::Exact => size,
            Self::Longer(n) => size + usize::from(n),
            Self::Short(n) => usize::from(n),
            Self::Any(n) => n,
        }
    }

    /// The length of a buffer that is actually allocated (capped at `size + 255`).
    #[must_use]
    pub fn alloc_value(self, size: usize) -> usize {
        self.value(size).min(size + 255)
    }
}

/// A 32-bit structure `Size` field: the right value or anything.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum SizeField {
    /// The structure's size.
    Correct,
    /// Any value.
    Raw(u32),
}

impl SizeField {
    /// The field value for a structure of `size` bytes.
    #[must_use]
    pub fn value(self, size: usize) -> u32 {
        match self {
            Self::Correct => u32::try_from(size).unwrap_or(u32::MAX),
            Self::Raw(v) => v,
        }
    }
}

/// Mirror of [`FileSystemKind`].
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum FsMirror {
    /// NTFS.
    Ntfs,
    /// ReFS.
    Refs,
    /// Anything else.
    Other,
}

/// Mirror of [`VolumeFacts`].
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct VolumeMirror {
    /// File system.
    pub fs: FsMirror,
    /// log2 of the sector size (taken modulo 17: 1 B … 64 KiB).
    pub sector_log2: u8,
    /// `VolumeFlags` bits (unknown bits retained).
    pub flags: u32,
    /// Maximum file size.
    pub max_file_size: Num,
}

impl VolumeMirror {
    /// The sector size this mirror stands for.
    #[must_use]
    pub fn sector(&self) -> SectorSize {
        SectorSize::new(1u32 << (self.sector_log2 % 17)).unwrap_or_default()
    }

    /// The core's facts.
    #[must_use]
    pub fn facts(&self) -> VolumeFacts {
        let sector = self.sector();
        VolumeFacts {
            file_system: match self.fs {
                FsMirror::Ntfs => FileSystemKind::Ntfs,
                FsMirror::Refs => FileSystemKind::Refs,
                FsMirror::Other => FileSystemKind::Other,
            },
            sector_size: sector,
            flags: VolumeFlags::from_bits_retain(self.flags),
            max_file_size: self.max_file_size.value(sector),
        }
    }
}

/// Every fact a decision can ask for, plus which query fails.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct FactsMirror {
    /// Volume.
    pub volume: VolumeMirror,
    /// `AccessMask` bits of the handle. No longer a fact (odxflt makes no access check, so
    /// the core's `HandleFacts` has none); kept so that the committed corpus decodes as before.
    pub granted: u32,
    /// Handle cleaned up.
    pub closed: bool,
    /// `FileAttributes` bits.
    pub attributes: u32,
    /// `StreamMarkers` bits.
    pub markers: u32,
    /// End of file.
    pub end_of_file: Num,
    /// Valid data length.
    pub valid_data_length: Num,
    /// Delete pending.
    pub delete_pending: bool,
    /// Answer of the lock query.
    pub lock_conflict: bool,
    /// Which query fails: 0 volume, 1 handle, 2 stream kind, 3 stream sizes, 4 locks; anything
    /// else none.
    pub failing: u8,
    /// The failing query's status (forced to error severity).
    pub failure: u32,
}

impl FactsMirror {
    /// The fact that fails, if any.
    #[must_use]
    pub fn failing_kind(&self) -> Option<FactKind> {
        match self.failing {
            0 => Some(FactKind::Volume),
            1 => Some(FactKind::Handle),
            2 => Some(FactKind::StreamKind),
            3 => Some(FactKind::StreamSizes),
            4 => Some(FactKind::Locks),
            _ => None,
        }
    }

    /// The failure status, with error severity (a fact source never fails with a success code).
    #[must_use]
    pub fn failure_status(&self) -> NtStatus {
        NtStatus(self.failure | 0xC000_0000)
    }

    /// Handle facts.
    #[must_use]
    pub fn handle(&self) -> HandleFacts {
        HandleFacts {
            closed: self.closed,
        }
    }

    /// Stream kind.
    #[must_use]
    pub fn stream_kind(&self) -> StreamKind {
        StreamKind {
            attributes: FileAttributes::from_bits_retain(self.attributes),
            markers: StreamMarkers::from_bits_retain(self.markers),
        }
    }

    /// Stream sizes.
    #[must_use]
    pub fn stream_sizes(&self) -> StreamSizes {
        let sector = self.volume.sector();
        StreamSizes {
            end_of_file: self.end_of_file.value(sector),
            valid_data_length: self.valid_data_length.value(sector),
            delete_pending: self.delete_pending,
        }
    }
}

/// [`OffloadFacts`] answered from a [`FactsMirror`], recording every query.
#[derive(Debug, Clone)]
pub struct RecordingFacts {
    /// The facts.
    pub mirror: FactsMirror,
    /// Queries in the order they were made.
    pub asked: Vec<FactKind>,
    /// The range and intent of the lock query, if it was made.
    pub lock_query: Option<(ByteRange, LockIntent)>,
}

impl RecordingFacts {
    /// Facts from a mirror, nothing asked yet.
    #[must_use]
    pub fn new(mirror: FactsMirror) -> Self {
        Self {
            mirror,
            asked: Vec::new(),
            lock_query: None,
        }
    }

    fn answer<T>(&mut self, kind: FactKind, value: T) -> Result<T, NtStatus> {
        self.asked.push(kind);
        if self.mirror.failing_kind() == Some(kind) {
            Err(self.mirror.failure_status())
        } else {
            Ok(value)
        }
    }

    /// Whether `kind` was asked for.
    #[must_use]
    pub fn was_asked(&self, kind: FactKind) -> bool {
        self.asked.contains(&kind)
    }
}

impl OffloadFacts for RecordingFacts {
    fn volume(&mut self) -> Result<VolumeFacts, NtStatus> {
        let v = self.mirror.volume.facts();
        self.answer(FactKind::Volume, v)
    }
    fn handle(&mut self) -> Result<HandleFacts, NtStatus> {
        let v = self.mirror.handle();
        self.answer(FactKind::Handle, v)
    }
    fn stream_kind(&mut self) -> Result<StreamKind, NtStatus> {
        let v = self.mirror.stream_kind();
        self.answer(FactKind::StreamKind, v)
    }
    fn stream_sizes(&mut self) -> Result<StreamSizes, NtStatus> {
        let v = self.mirror.stream_sizes();
        self.answer(FactKind::StreamSizes, v)
    }
    fn lock_conflict(&mut self, range: ByteRange, intent: LockIntent) -> Result<bool, NtStatus> {
        self.lock_query = Some((range, intent));
        let v = self.mirror.lock_conflict;
        self.answer(FactKind::Locks, v)
    }
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

/// Mirror of [`Rules`]; every status is forced to error severity (a configured refusal is never a
/// success code).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct RulesMirror {
    /// Use [`Rules::DOCUMENTED`] and ignore the rest.
    pub documented: bool,
    /// `short_buffer`.
    pub short_buffer: u32,
    /// `copy_length_alignment`: strict when true.
    pub strict_length: bool,
    /// `write_beyond_vdl`.
    pub write_beyond_vdl: u32,
    /// `tiny_file`, modulo 3.
    pub tiny_file: u8,
    /// `dismounted_write`.
    pub dismounted_write: u32,
    /// `broken_lower_contract`.
    pub broken_lower_contract: u32,
}

impl RulesMirror {
    /// The core's rules.
    #[must_use]
    pub fn rules(&self) -> Rules {
        if self.documented {
            return Rules::DOCUMENTED;
        }
        let err = |v: u32| NtStatus(v | 0xC000_0000);
        Rules {
            short_buffer: err(self.short_buffer),
            copy_length_alignment: if self.strict_length {
                LengthAlignment::Strict
            } else {
                LengthAlignment::ExceptAtEndOfFile
            },
            write_beyond_vdl: err(self.write_beyond_vdl),
            tiny_file: match self.tiny_file % 3 {
                0 => TinyFile::NoRule,
                1 => TinyFile::BelowSector,
                _ => TinyFile::BelowPage,
            },
            dismounted_write: err(self.dismounted_write),
            broken_lower_contract: err(self.broken_lower_contract),
        }
    }
}

/// Builds a buffer of `len` bytes that starts with `bytes` (cut or zero-extended), the way an
/// `InputBufferLength` shorter or longer than the structure looks to the filter.
#[must_use]
pub fn buffer_of(bytes: &[u8], len: usize, fill: u8) -> Vec<u8> {
    let mut out: Vec<u8> = bytes.iter().copied().take(len).collect();
    out.resize(len, fill);
    out
}
