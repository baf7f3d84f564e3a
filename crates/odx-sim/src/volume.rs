//! The NTFS-like volume below odxflt, with the storage's token engine under it.
//!
//! The volume keeps the state NTFS keeps (files, sizes, attributes, locks, the sticky
//! `IsOffload{Read,Write}Supported` flags) and, for offload requests, only *executes*
//! ([`Volume::fs_control`]): it asks the token engine for a token or for the data behind one and
//! moves the bytes. NTFS's MS-FSA checks in front of it are `crate::ntfs` (the core's checks plus
//! the valid-data-length rule odxflt leaves to the file system).

use std::collections::HashMap;
use std::io;

use odx_core::engine::{EngineLimits, SourceId, TokenEngine, WriteSource};
use odx_core::flags::{FileAttributes, OffloadReadFlags, StreamMarkers, VolumeFlags};
use odx_core::lock::ByteRangeLock;
use odx_core::wire::{OffloadReadInput, OffloadReadOutput, OffloadWriteInput, OffloadWriteOutput};
use odx_core::{
    ByteRange, FileSystemKind, NtStatus, OffloadOp, SectorSize, VolumeFacts, WireStruct,
};

use crate::disk::StorageQuery;
use crate::store::{DataStore, FileId};
use crate::tokens::{MapStore, fresh_key};

/// How the volume is set up (the scenario's `[volume]` table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VolumeConfig {
    /// Mounted file system.
    pub file_system: FileSystemKind,
    /// Logical bytes per sector.
    pub sector_size: SectorSize,
    /// Mounted read-only.
    pub read_only: bool,
    /// Dismounted.
    pub dismounted: bool,
    /// The storage implements offload read (POPULATE TOKEN).
    pub storage_offload_read: bool,
    /// The storage implements offload write (WRITE USING TOKEN).
    pub storage_offload_write: bool,
    /// MS-FSA `Volume.MaxFileSize`.
    pub max_file_size: u64,
    /// Default token lifetime (TokenTimeToLive = 0), ms.
    pub default_ttl_ms: u64,
    /// Longest token lifetime granted, ms.
    pub max_ttl_ms: u64,
    /// Most bytes per token and per write (`MaximumTransferSize`).
    pub max_transfer: u64,
    /// The disk's answer to odxflt's copy-offload property query at instance setup
    /// ([`crate::disk`]); `None`: a descriptor derived from this configuration
    /// ([`crate::disk::default_limits`]).
    pub storage: Option<StorageQuery>,
    /// odxflt's `Parameters\OffloadBackoffSeconds`: how long an operation the storage refused
    /// is refused early (0 = never back off).
    pub backoff_seconds: u32,
}

impl VolumeConfig {
    /// The disk's answer to the property query ([`Self::storage`], or the derived descriptor).
    #[must_use]
    pub fn storage_query(&self) -> StorageQuery {
        self.storage
            .unwrap_or_else(|| StorageQuery::Descriptor(crate::disk::default_limits(self)))
    }
}

impl Default for VolumeConfig {
    fn default() -> Self {
        let limits = EngineLimits::default();
        Self {
            file_system: FileSystemKind::Ntfs,
            sector_size: SectorSize::DEFAULT,
            read_only: false,
            dismounted: false,
            storage_offload_read: true,
            storage_offload_write: true,
            max_file_size: VolumeFacts::ntfs_max_file_size(4096),
            default_ttl_ms: limits.default_ttl_ms,
            max_ttl_ms: limits.max_ttl_ms,
            max_transfer: limits.max_transfer,
            storage: None,
            backoff_seconds: odx_core::storage::DEFAULT_BACKOFF_SECONDS,
        }
    }
}

/// One file (its unnamed data stream) of the volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Id.
    pub id: FileId,
    /// Name.
    pub name: String,
    /// The file's path from the volume root as `FltGetFileNameInformation` would give it
    /// without the volume name (`\\Backups\\db.vhdx`; default `\\` + name), UTF-16; empty
    /// when the name query fails.
    pub path: Vec<u16>,
    /// End of file.
    pub end_of_file: u64,
    /// Valid data length (bytes from it up to end of file read as zero).
    pub valid_data_length: u64,
    /// Attributes.
    pub attributes: FileAttributes,
    /// Transacted / metadata / non-data markers.
    pub markers: StreamMarkers,
    /// Delete pending.
    pub delete_pending: bool,
    /// Granted byte-range locks.
    pub locks: Vec<ByteRangeLock>,
}

/// A failure of the simulation itself (not an NTSTATUS answer).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The data store failed.
    #[error("data store: {0}")]
    Io(#[from] io::Error),
    /// No such file.
    #[error("no file named {0:?}")]
    NoFile(String),
    /// A file of that name exists.
    #[error("a file named {0:?} already exists")]
    Duplicate(String),
}

/// The volume, its files, its data and the storage's token engine.
#[derive(Debug)]
pub struct Volume<S> {
    config: VolumeConfig,
    flags: VolumeFlags,
    files: HashMap<FileId, FileEntry>,
    names: HashMap<String, FileId>,
    next_id: u64,
    data: S,
    engine: TokenEngine<MapStore>,
    now_ms: u64,
}

/// The answer of the layers below odxflt to a forwarded request: a status and
/// `IoStatus.Information` (bytes of output written to the system buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BelowAnswer {
    /// Status.
    pub status: NtStatus,
    /// Output bytes.
    pub information: usize,
}

impl BelowAnswer {
    const fn fail(status: NtStatus) -> Self {
        Self {
            status,
            information: 0,
        }
    }
}

impl<S: DataStore> Volume<S> {
    /// A mounted volume over `data`.
    pub fn new(config: VolumeConfig, data: S) -> Self {
        let mut flags = VolumeFlags::OFFLOAD_READ_SUPPORTED | VolumeFlags::OFFLOAD_WRITE_SUPPORTED;
        flags.set(VolumeFlags::READ_ONLY, config.read_only);
        flags.set(VolumeFlags::DISMOUNTED, config.dismounted);
        let limits = EngineLimits {
            default_ttl_ms: config.default_ttl_ms,
            max_ttl_ms: config.max_ttl_ms,
            max_transfer: config.max_transfer,
            sector_size: config.sector_size,
        };
        Self {
            config,
            flags,
            files: HashMap::new(),
            names: HashMap::new(),
            next_id: 1,
            data,
            engine: TokenEngine::new(limits, MapStore::default()),
            now_ms: 0,
        }
    }

    /// The configuration.
    pub const fn config(&self) -> &VolumeConfig {
        &self.config
    }

    /// What odxflt caches about the volume.
    pub const fn facts(&self) -> VolumeFacts {
        VolumeFacts {
            file_system: self.config.file_system,
            sector_size: self.config.sector_size,
            flags: self.flags,
            max_file_size: self.config.max_file_size,
        }
    }

    /// Current volume flags (the offload bits are cleared, sticky, when the storage refuses).
    pub const fn flags(&self) -> VolumeFlags {
        self.flags
    }

    /// The data store.
    pub const fn data(&self) -> &S {
        &self.data
    }

    /// The data store, mutably (to attach host files).
    pub const fn data_mut(&mut self) -> &mut S {
        &mut self.data
    }

    /// The token engine.
    pub const fn engine(&self) -> &TokenEngine<MapStore> {
        &self.engine
    }

    /// The engine clock, ms.
    pub const fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Advances the engine clock and forgets expired tokens.
    pub fn advance_ms(&mut self, ms: u64) {
        self.now_ms = self.now_ms.saturating_add(ms);
        self.engine.expire(self.now_ms);
    }

    /// Registers a file whose data is already in the store (or will be written by the caller).
    ///
    /// # Errors
    /// A duplicate name.
    pub fn add_entry(&mut self, name: &str) -> Result<FileId, SimError> {
        if self.names.contains_key(name) {
            return Err(SimError::Duplicate(name.to_owned()));
        }
        let id = FileId(self.next_id);
        self.next_id += 1;
        self.names.insert(name.to_owned(), id);
        self.files.insert(
            id,
            FileEntry {
                id,
                name: name.to_owned(),
                path: format!("\\{name}").encode_utf16().collect(),
                end_of_file: 0,
                valid_data_length: 0,
                attributes: FileAttributes::empty(),
                markers: StreamMarkers::empty(),
                delete_pending: false,
                locks: Vec::new(),
            },
        );
        Ok(id)
    }

    /// Creates an empty file in the store and registers it.
    ///
    /// # Errors
    /// A duplicate name or a store failure.
    pub fn create_file(&mut self, name: &str) -> Result<FileId, SimError> {
        let id = self.add_entry(name)?;
        self.data.create(id, name)?;
        Ok(id)
    }

    /// Takes end of file and valid data length from the store's current length (for attached
    /// host files).
    ///
    /// # Errors
    /// A store failure.
    pub fn adopt_store_length(&mut self, id: FileId) -> Result<(), SimError> {
        let len = self.data.len(id)?;
        let entry = self.entry_mut(id)?;
        entry.end_of_file = len;
        entry.valid_data_length = len;
        Ok(())
    }

    /// A file by id.
    pub fn entry(&self, id: FileId) -> Option<&FileEntry> {
        self.files.get(&id)
    }

    fn entry_mut(&mut self, id: FileId) -> Result<&mut FileEntry, SimError> {
        self.files
            .get_mut(&id)
            .ok_or_else(|| SimError::NoFile(format!("#{}", id.0)))
    }

    /// Changes a file's attributes, markers and delete state.
    ///
    /// # Errors
    /// No such file.
    pub fn set_kind(
        &mut self,
        id: FileId,
        attributes: FileAttributes,
        markers: StreamMarkers,
        delete_pending: bool,
    ) -> Result<(), SimError> {
        let entry = self.entry_mut(id)?;
        entry.attributes = attributes;
        entry.markers = markers;
        entry.delete_pending = delete_pending;
        Ok(())
    }

    /// Sets the file's path from the volume root (what odxflt's name query answers; empty:
    /// the query fails).
    ///
    /// # Errors
    /// No such file.
    pub fn set_path(&mut self, id: FileId, path: &str) -> Result<(), SimError> {
        self.entry_mut(id)?.path = path.encode_utf16().collect();
        Ok(())
    }

    /// Grants a byte-range lock.
    ///
    /// # Errors
    /// No such file.
    pub fn add_lock(&mut self, id: FileId, lock: ByteRangeLock) -> Result<(), SimError> {
        self.entry_mut(id)?.locks.push(lock);
        Ok(())
    }

    /// A file id by name.
    pub fn id_of(&self, name: &str) -> Option<FileId> {
        self.names.get(name).copied()
    }

    /// `SetEndOfFile`: valid data length follows a shrink; tokens over changed bytes die.
    ///
    /// # Errors
    /// No such file, or a store failure.
    pub fn set_end_of_file(&mut self, id: FileId, len: u64) -> Result<(), SimError> {
        let old = self.entry_mut(id)?.end_of_file;
        self.data.set_len(id, len)?;
        let entry = self.entry_mut(id)?;
        entry.end_of_file = len;
        entry.valid_data_length = entry.valid_data_length.min(len);
        if len < old {
            let changed = ByteRange::new(len, old - len);
            self.engine.source_written(SourceId(id.0), changed);
        }
        Ok(())
    }

    /// Sets valid data length (clamped to end of file) and zeroes the bytes beyond it, which is
    /// what a reader of the file sees there.
    ///
    /// # Errors
    /// No such file, or a store failure.
    pub fn set_valid_data_length(&mut self, id: FileId, vdl: u64) -> Result<(), SimError> {
        let entry = self.entry_mut(id)?;
        let eof = entry.end_of_file;
        let vdl = vdl.min(eof);
        entry.valid_data_length = vdl;
        self.data.zero_range(id, vdl, eof - vdl)?;
        Ok(())
    }

    /// A plain (cached or non-cached) write: extends the file as needed, raises valid data length,
    /// and invalidates every token standing for any byte written.
    ///
    /// # Errors
    /// No such file, or a store failure.
    pub fn write_data(&mut self, id: FileId, offset: u64, bytes: &[u8]) -> Result<(), SimError> {
        let end = offset.saturating_add(bytes.len() as u64);
        let entry = self.entry_mut(id)?;
        let (eof, vdl) = (entry.end_of_file, entry.valid_data_length);
        if offset > vdl {
            // The gap between valid data length and the write reads as zero.
            self.data
                .zero_range(id, vdl, eof.min(offset).saturating_sub(vdl))?;
        }
        self.data.write_at(id, offset, bytes)?;
        let entry = self.entry_mut(id)?;
        entry.end_of_file = entry.end_of_file.max(end);
        entry.valid_data_length = entry.valid_data_length.max(end);
        self.engine
            .source_written(SourceId(id.0), ByteRange::new(offset, bytes.len() as u64));
        Ok(())
    }

    /// A plain read: at most up to end of file.
    ///
    /// # Errors
    /// No such file, or a store failure.
    pub fn read_data(&self, id: FileId, offset: u64, buf: &mut [u8]) -> Result<usize, SimError> {
        let eof = self
            .files
            .get(&id)
            .map(|e| e.end_of_file)
            .ok_or_else(|| SimError::NoFile(format!("#{}", id.0)))?;
        let want = eof.saturating_sub(offset).min(buf.len() as u64);
        let want = usize::try_from(want).unwrap_or(buf.len());
        let Some(buf) = buf.get_mut(..want) else {
            return Ok(0);
        };
        Ok(self.data.read_at(id, offset, buf)?)
    }

    /// What NTFS and the storage do with a forwarded offload request: the input is in the system
    /// buffer's first `input_len` bytes; the output is written over it.
    pub fn fs_control(
        &mut self,
        op: OffloadOp,
        id: FileId,
        buffer: &mut [u8],
        input_len: usize,
    ) -> BelowAnswer {
        let input = buffer.get(..input_len).unwrap_or_default();
        match op {
            OffloadOp::Read => match OffloadReadInput::parse(input) {
                Ok(input) => self.offload_read(id, &input, buffer),
                Err(_) => BelowAnswer::fail(NtStatus::STATUS_BUFFER_TOO_SMALL),
            },
            OffloadOp::Write => match OffloadWriteInput::parse(input) {
                Ok(input) => self.offload_write(id, &input, buffer),
                Err(_) => BelowAnswer::fail(NtStatus::STATUS_BUFFER_TOO_SMALL),
            },
        }
    }

    /// MS-FSA read 16: POPULATE TOKEN for the (already trimmed) range.
    fn offload_read(
        &mut self,
        id: FileId,
        input: &OffloadReadInput,
        out: &mut [u8],
    ) -> BelowAnswer {
        if !self.config.storage_offload_read {
            self.flags.remove(VolumeFlags::OFFLOAD_READ_SUPPORTED);
            return BelowAnswer::fail(NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED);
        }
        let Ok(key) = fresh_key() else {
            return BelowAnswer::fail(NtStatus::STATUS_INSUFFICIENT_RESOURCES);
        };
        let range = ByteRange::new(input.file_offset.get(), input.copy_length.get());
        let ttl = input.token_time_to_live.get();
        match self
            .engine
            .populate(self.now_ms, SourceId(id.0), range, ttl, key)
        {
            Ok(populated) => {
                let output = OffloadReadOutput::new(
                    OffloadReadFlags::empty(),
                    populated.length,
                    populated.token,
                );
                let information = output.serialize_into(out).unwrap_or(0);
                BelowAnswer {
                    status: NtStatus::STATUS_SUCCESS,
                    information,
                }
            }
            Err(status) => BelowAnswer::fail(status),
        }
    }

    /// MS-FSA write 17: WRITE USING TOKEN, then valid data length.
    fn offload_write(
        &mut self,
        id: FileId,
        input: &OffloadWriteInput,
        out: &mut [u8],
    ) -> BelowAnswer {
        if !self.config.storage_offload_write {
            self.flags.remove(VolumeFlags::OFFLOAD_WRITE_SUPPORTED);
            return BelowAnswer::fail(NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED);
        }
        let source = match self.engine.resolve_write(
            self.now_ms,
            &input.token,
            input.transfer_offset.get(),
            input.copy_length.get(),
        ) {
            Ok(source) => source,
            Err(status) => return BelowAnswer::fail(status),
        };
        let offset = input.file_offset.get();
        match self.move_token_data(id, offset, source) {
            Ok(()) => {
                let written = source.length();
                let output = OffloadWriteOutput::new(written);
                let information = output.serialize_into(out).unwrap_or(0);
                BelowAnswer {
                    status: NtStatus::STATUS_SUCCESS,
                    information,
                }
            }
            Err(_) => BelowAnswer::fail(NtStatus::STATUS_INSUFFICIENT_RESOURCES),
        }
    }

    /// The array copies the token's data to `[offset, offset + length)` of `id`, never past end
    /// of file (the last sector's tail beyond it is not materialised), then NTFS raises valid
    /// data length and the tokens standing for the overwritten range die.
    fn move_token_data(
        &mut self,
        id: FileId,
        offset: u64,
        source: WriteSource,
    ) -> Result<(), SimError> {
        let length = source.length();
        let eof = self.entry_mut(id)?.end_of_file;
        let data_end = offset.saturating_add(length).min(eof);
        let n = data_end.saturating_sub(offset);
        match source {
            WriteSource::Zero { .. } => self.data.zero_range(id, offset, n)?,
            WriteSource::Data {
                source,
                offset: from,
                ..
            } => {
                let src = FileId(source.0);
                let src_eof = self.files.get(&src).map_or(0, |e| e.end_of_file);
                let copied = n.min(src_eof.saturating_sub(from));
                if copied > 0 {
                    self.data.copy_range(src, from, id, offset, copied)?;
                }
                if copied < n {
                    self.data.zero_range(id, offset + copied, n - copied)?;
                }
            }
        }
        let entry = self.entry_mut(id)?;
        entry.valid_data_length = entry.valid_data_length.max(data_end);
        self.engine
            .source_written(SourceId(id.0), ByteRange::new(offset, length));
        Ok(())
    }
}
