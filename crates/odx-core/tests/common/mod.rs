//! A fact source held in memory, counting what the core asks for.
#![allow(dead_code)]

use odx_core::flags::{FileAttributes, StreamMarkers, VolumeFlags};
use odx_core::lock::{ByteRangeLock, OpenId, range_conflicts};
use odx_core::wire::{OffloadReadInput, OffloadWriteInput, StorageOffloadToken};
use odx_core::*;
use zerocopy::IntoBytes;

pub const ME: OpenId = OpenId(1);
pub const OTHER: OpenId = OpenId(2);
pub const MIB: u64 = 1 << 20;

#[derive(Clone, Debug)]
pub struct Facts {
    pub volume: Result<VolumeFacts, NtStatus>,
    pub handle: Result<HandleFacts, NtStatus>,
    pub kind: Result<StreamKind, NtStatus>,
    pub sizes: Result<StreamSizes, NtStatus>,
    pub locks: Vec<ByteRangeLock>,
    pub asked: Vec<FactKind>,
    /// The requesting process's image (`None`: it cannot be learnt).
    pub process: Option<Vec<u16>>,
    /// The file's path from the volume root (`None`: it cannot be learnt).
    pub path: Option<Vec<u16>>,
    /// Whether (process, path) were asked (1) or not (0).
    pub names_asked: (usize, usize),
}

impl Default for Facts {
    /// odx-spec §0.2: NTFS, 512-byte sectors, EOF = VDL = 1 MiB, plain file, open handle.
    fn default() -> Self {
        Self {
            volume: Ok(VolumeFacts::ntfs_default()),
            handle: Ok(HandleFacts { closed: false }),
            kind: Ok(StreamKind::default()),
            sizes: Ok(StreamSizes {
                end_of_file: MIB,
                valid_data_length: MIB,
                delete_pending: false,
            }),
            locks: Vec::new(),
            asked: Vec::new(),
            process: None,
            path: None,
            names_asked: (0, 0),
        }
    }
}

impl Facts {
    pub fn with_volume(mut self, f: impl FnOnce(&mut VolumeFacts)) -> Self {
        if let Ok(v) = self.volume.as_mut() {
            f(v);
        }
        self
    }
    pub fn volume_flags(self, flags: VolumeFlags) -> Self {
        self.with_volume(|v| v.flags = flags)
    }
    pub fn sector(self, bytes: u32) -> Self {
        self.with_volume(|v| v.sector_size = SectorSize::new(bytes).unwrap())
    }
    pub fn attributes(mut self, attributes: FileAttributes) -> Self {
        self.kind = Ok(StreamKind {
            attributes,
            markers: StreamMarkers::empty(),
        });
        self
    }
    pub fn markers(mut self, markers: StreamMarkers) -> Self {
        self.kind = Ok(StreamKind {
            attributes: FileAttributes::empty(),
            markers,
        });
        self
    }
    pub fn sizes(mut self, end_of_file: u64, valid_data_length: u64) -> Self {
        self.sizes = Ok(StreamSizes {
            end_of_file,
            valid_data_length,
            delete_pending: false,
        });
        self
    }
    pub fn deleted(mut self) -> Self {
        if let Ok(s) = self.sizes.as_mut() {
            s.delete_pending = true;
        }
        self
    }
    pub fn closed(mut self) -> Self {
        if let Ok(h) = self.handle.as_mut() {
            h.closed = true;
        }
        self
    }
    pub fn lock(mut self, offset: u64, length: u64, exclusive: bool, owner: OpenId) -> Self {
        self.locks.push(ByteRangeLock {
            offset,
            length,
            exclusive,
            owner,
            key: 0,
        });
        self
    }
}

impl OffloadFacts for Facts {
    fn volume(&mut self) -> Result<VolumeFacts, NtStatus> {
        self.asked.push(FactKind::Volume);
        self.volume
    }
    fn handle(&mut self) -> Result<HandleFacts, NtStatus> {
        self.asked.push(FactKind::Handle);
        self.handle
    }
    fn stream_kind(&mut self) -> Result<StreamKind, NtStatus> {
        self.asked.push(FactKind::StreamKind);
        self.kind
    }
    fn stream_sizes(&mut self) -> Result<StreamSizes, NtStatus> {
        self.asked.push(FactKind::StreamSizes);
        self.sizes
    }
    fn lock_conflict(&mut self, range: ByteRange, intent: LockIntent) -> Result<bool, NtStatus> {
        self.asked.push(FactKind::Locks);
        Ok(range_conflicts(&self.locks, range, intent, ME, 0))
    }
    // Counted as the kernel would be asked: the driver keeps each answer for the request
    // (`OffloadFacts` leaves caching to the implementer), so only the first ask is a query.
    fn process_image(&mut self) -> Option<&[u16]> {
        self.names_asked.0 = 1;
        self.process.as_deref()
    }
    fn file_path(&mut self) -> Option<&[u16]> {
        self.names_asked.1 = 1;
        self.path.as_deref()
    }
    fn known_names(&self) -> (Option<&[u16]>, Option<&[u16]>) {
        (
            self.process.as_deref().filter(|_| self.names_asked.0 > 0),
            self.path.as_deref().filter(|_| self.names_asked.1 > 0),
        )
    }
}

pub fn read_input(offset: u64, length: u64) -> OffloadReadInput {
    OffloadReadInput::new(offset, length, 0)
}

pub fn write_input(offset: u64, length: u64, transfer_offset: u64) -> OffloadWriteInput {
    OffloadWriteInput::new(
        offset,
        length,
        transfer_offset,
        StorageOffloadToken::zero_data(),
    )
}

/// Decides a read with a full-sized output buffer.
pub fn read(input: &OffloadReadInput, facts: &mut Facts) -> Decision<ReadVerdict> {
    decide_read(
        OffloadRequest {
            input: input.as_bytes(),
            output_len: 528,
        },
        facts,
        &Rules::DOCUMENTED,
    )
}

/// Decides a write with a full-sized output buffer.
pub fn write(input: &OffloadWriteInput, facts: &mut Facts) -> Decision<WriteVerdict> {
    decide_write(
        OffloadRequest {
            input: input.as_bytes(),
            output_len: 16,
        },
        facts,
        &Rules::DOCUMENTED,
    )
}

pub fn status_of<O: Copy, F>(verdict: &Verdict<O, F>) -> Option<NtStatus> {
    match verdict {
        Verdict::Complete(c) => Some(c.status),
        Verdict::Forward(_) | Verdict::PassThrough => None,
    }
}

/// The input as the file system sees it: the caller's bytes with the forward applied in place.
pub fn forwarded_read(input: &OffloadReadInput, forward: &ForwardRead) -> OffloadReadInput {
    let mut bytes = input.as_bytes().to_vec();
    assert_eq!(forward.rewrite(&mut bytes), forward.trimmed());
    OffloadReadInput::parse(&bytes).unwrap()
}

/// The input as the file system sees it: the caller's bytes with the forward applied in place.
pub fn forwarded_write(input: &OffloadWriteInput, forward: &ForwardWrite) -> OffloadWriteInput {
    let mut bytes = input.as_bytes().to_vec();
    assert_eq!(forward.rewrite(&mut bytes), forward.trimmed());
    OffloadWriteInput::parse(&bytes).unwrap()
}

/// The answer as the caller sees it: written into a buffer of `fill` bytes.
pub fn answered<Out: Answer>(completion: &Completion<Out>, size: usize) -> Vec<u8> {
    let mut buffer = vec![0xA5_u8; size];
    assert_eq!(
        completion.write_output(&mut buffer),
        completion.information()
    );
    buffer
}
