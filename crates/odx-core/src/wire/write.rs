use static_assertions::const_assert_eq;
use zerocopy::byteorder::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{StorageOffloadToken, WireStruct};

/// `FSCTL_OFFLOAD_WRITE_INPUT`: 544 bytes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct OffloadWriteInput {
    /// `Size`: must be 544.
    pub size: U32,
    /// `Flags`: none defined, ignored.
    pub flags: U32,
    /// `FileOffset`: start of the destination range, sector aligned.
    pub file_offset: U64,
    /// `CopyLength`: bytes to write, sector aligned, may be 0.
    pub copy_length: U64,
    /// `TransferOffset`: offset into the token's data, sector aligned.
    pub transfer_offset: U64,
    /// `Token`.
    pub token: StorageOffloadToken,
}

const_assert_eq!(size_of::<OffloadWriteInput>(), 544);
const_assert_eq!(core::mem::offset_of!(OffloadWriteInput, size), 0x00);
const_assert_eq!(core::mem::offset_of!(OffloadWriteInput, flags), 0x04);
const_assert_eq!(core::mem::offset_of!(OffloadWriteInput, file_offset), 0x08);
const_assert_eq!(core::mem::offset_of!(OffloadWriteInput, copy_length), 0x10);
const_assert_eq!(
    core::mem::offset_of!(OffloadWriteInput, transfer_offset),
    0x18
);
const_assert_eq!(core::mem::offset_of!(OffloadWriteInput, token), 0x20);

impl WireStruct for OffloadWriteInput {
    const NAME: &'static str = "FSCTL_OFFLOAD_WRITE_INPUT";
}

impl OffloadWriteInput {
    /// A well-formed input (`Size` = 544, flags zero).
    #[must_use]
    pub fn new(
        file_offset: u64,
        copy_length: u64,
        transfer_offset: u64,
        token: StorageOffloadToken,
    ) -> Self {
        Self {
            size: U32::new(544),
            flags: U32::new(0),
            file_offset: U64::new(file_offset),
            copy_length: U64::new(copy_length),
            transfer_offset: U64::new(transfer_offset),
            token,
        }
    }
}

/// `FSCTL_OFFLOAD_WRITE_OUTPUT`: 16 bytes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct OffloadWriteOutput {
    /// `Size`: 16.
    pub size: U32,
    /// `Flags`: 0.
    pub flags: U32,
    /// `LengthWritten`: bytes written from `FileOffset`.
    pub length_written: U64,
}

const_assert_eq!(size_of::<OffloadWriteOutput>(), 16);
const_assert_eq!(core::mem::offset_of!(OffloadWriteOutput, size), 0x00);
const_assert_eq!(core::mem::offset_of!(OffloadWriteOutput, flags), 0x04);
const_assert_eq!(
    core::mem::offset_of!(OffloadWriteOutput, length_written),
    0x08
);

impl WireStruct for OffloadWriteOutput {
    const NAME: &'static str = "FSCTL_OFFLOAD_WRITE_OUTPUT";
}

impl OffloadWriteOutput {
    /// An output with `Size` = 16 and `Flags` = 0.
    #[must_use]
    pub fn new(length_written: u64) -> Self {
        Self {
            size: U32::new(16),
            flags: U32::new(0),
            length_written: U64::new(length_written),
        }
    }
}
