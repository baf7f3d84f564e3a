//! Facts in memory and request buffers shared by the benchmarks: the cheapest a driver can make
//! fact gathering (everything cached), so the figures are the core's own cost.

#![allow(dead_code)]

use odx_core::engine::{SIMULATED_TOKEN_TYPE, token_for_key};
use odx_core::wire::{OffloadReadInput, OffloadWriteInput};
use odx_core::{
    ByteRange, HandleFacts, LockIntent, NtStatus, OffloadFacts, StreamKind, StreamSizes,
    VolumeFacts,
};
use zerocopy::IntoBytes;

/// Every fact already known (a volume context plus a stream context).
#[derive(Clone, Copy, Debug)]
pub struct MemFacts {
    pub volume: VolumeFacts,
    pub handle: HandleFacts,
    pub kind: StreamKind,
    pub sizes: StreamSizes,
    pub lock_conflict: bool,
}

impl MemFacts {
    /// An 8 MiB file on a default NTFS volume, an open handle, no locks: a 1 MiB
    /// request at 4 KiB passes every check and is forwarded untrimmed.
    pub fn forwarding() -> Self {
        Self {
            volume: VolumeFacts::ntfs_default(),
            handle: HandleFacts { closed: false },
            kind: StreamKind::default(),
            sizes: StreamSizes {
                end_of_file: 8 << 20,
                valid_data_length: 8 << 20,
                delete_pending: false,
            },
            lock_conflict: false,
        }
    }
}

impl OffloadFacts for MemFacts {
    #[inline]
    fn volume(&mut self) -> Result<VolumeFacts, NtStatus> {
        Ok(self.volume)
    }
    #[inline]
    fn handle(&mut self) -> Result<HandleFacts, NtStatus> {
        Ok(self.handle)
    }
    #[inline]
    fn stream_kind(&mut self) -> Result<StreamKind, NtStatus> {
        Ok(self.kind)
    }
    #[inline]
    fn stream_sizes(&mut self) -> Result<StreamSizes, NtStatus> {
        Ok(self.sizes)
    }
    #[inline]
    fn lock_conflict(&mut self, _range: ByteRange, _intent: LockIntent) -> Result<bool, NtStatus> {
        Ok(self.lock_conflict)
    }
    #[inline]
    fn process_image(&mut self) -> Option<&[u16]> {
        None
    }
    #[inline]
    fn file_path(&mut self) -> Option<&[u16]> {
        None
    }
    fn known_names(&self) -> (Option<&[u16]>, Option<&[u16]>) {
        (None, None)
    }
}

/// A 1 MiB offload read at 4 KiB (32 bytes).
pub fn read_input() -> Vec<u8> {
    OffloadReadInput::new(4096, 1 << 20, 0).as_bytes().to_vec()
}

/// A 1 MiB offload write at 4 KiB with a vendor token (544 bytes).
pub fn write_input() -> Vec<u8> {
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::try_from(i).unwrap_or(0) ^ 0x5A;
    }
    let token = token_for_key(&key);
    debug_assert_eq!(token.token_type.get(), SIMULATED_TOKEN_TYPE);
    OffloadWriteInput::new(4096, 1 << 20, 0, token)
        .as_bytes()
        .to_vec()
}

/// `FSCTL_SET_SPARSE`: a control code the filter must wave through.
pub const FSCTL_SET_SPARSE: u32 = 0x0009_00C4;
/// `FSCTL_REQUEST_OPLOCK` (winioctl.h: function 144, `METHOD_BUFFERED`, `FILE_ANY_ACCESS`): the
/// most frequent control code a file server sends, and one that passes from_fsctl's first test.
#[allow(dead_code)] // not every bench binary uses it
pub const FSCTL_REQUEST_OPLOCK: u32 = 0x0009_0240;
