use static_assertions::const_assert_eq;
use zerocopy::byteorder::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{StorageOffloadToken, WireStruct};
use crate::flags::OffloadReadFlags;

/// `FSCTL_OFFLOAD_READ_INPUT`: 32 bytes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct OffloadReadInput {
    /// `Size`: must be 32.
    pub size: U32,
    /// `Flags`: none defined, ignored.
    pub flags: U32,
    /// `TokenTimeToLive` in milliseconds; 0 means the storage's default.
    pub token_time_to_live: U32,
    /// `Reserved`: ignored.
    pub reserved: U32,
    /// `FileOffset`: start of the source range, sector aligned.
    pub file_offset: U64,
    /// `CopyLength`: bytes asked for, sector aligned.
    pub copy_length: U64,
}

const_assert_eq!(size_of::<OffloadReadInput>(), 32);
const_assert_eq!(core::mem::offset_of!(OffloadReadInput, size), 0x00);
const_assert_eq!(core::mem::offset_of!(OffloadReadInput, flags), 0x04);
const_assert_eq!(
    core::mem::offset_of!(OffloadReadInput, token_time_to_live),
    0x08
);
const_assert_eq!(core::mem::offset_of!(OffloadReadInput, reserved), 0x0C);
const_assert_eq!(core::mem::offset_of!(OffloadReadInput, file_offset), 0x10);
const_assert_eq!(core::mem::offset_of!(OffloadReadInput, copy_length), 0x18);

impl WireStruct for OffloadReadInput {
    const NAME: &'static str = "FSCTL_OFFLOAD_READ_INPUT";
}

impl OffloadReadInput {
    /// A well-formed input (`Size` = 32, flags and reserved zero).
    #[must_use]
    pub fn new(file_offset: u64, copy_length: u64, token_time_to_live_ms: u32) -> Self {
        Self {
            size: U32::new(32),
            flags: U32::new(0),
            token_time_to_live: U32::new(token_time_to_live_ms),
            reserved: U32::new(0),
            file_offset: U64::new(file_offset),
            copy_length: U64::new(copy_length),
        }
    }
}

/// `FSCTL_OFFLOAD_READ_OUTPUT`: 528 bytes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct OffloadReadOutput {
    /// `Size`: 528.
    pub size: U32,
    /// `Flags`: [`OffloadReadFlags`].
    pub flags: U32,
    /// `TransferLength`: bytes the token stands for, from `FileOffset`.
    pub transfer_length: U64,
    /// `Token`.
    pub token: StorageOffloadToken,
}

const_assert_eq!(size_of::<OffloadReadOutput>(), 528);
const_assert_eq!(core::mem::offset_of!(OffloadReadOutput, size), 0x00);
const_assert_eq!(core::mem::offset_of!(OffloadReadOutput, flags), 0x04);
const_assert_eq!(
    core::mem::offset_of!(OffloadReadOutput, transfer_length),
    0x08
);
const_assert_eq!(core::mem::offset_of!(OffloadReadOutput, token), 0x10);

impl WireStruct for OffloadReadOutput {
    const NAME: &'static str = "FSCTL_OFFLOAD_READ_OUTPUT";
}

impl OffloadReadOutput {
    /// An output with `Size` = 528.
    #[must_use]
    pub fn new(flags: OffloadReadFlags, transfer_length: u64, token: StorageOffloadToken) -> Self {
        Self {
            size: U32::new(528),
            flags: U32::new(flags.bits()),
            transfer_length: U64::new(transfer_length),
            token,
        }
    }

    /// `Flags` as a flag set (unknown bits retained).
    #[must_use]
    pub fn read_flags(&self) -> OffloadReadFlags {
        OffloadReadFlags::from_bits_retain(self.flags.get())
    }
}
