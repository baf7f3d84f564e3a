//! Wire layouts of the offload FSCTL buffers and the storage token.
//!
//! Each structure is `#[repr(C)]` with explicitly little-endian (or, in the token, big-endian)
//! unaligned fields, so a structure can be read from any byte offset of a system buffer. None of
//! them has padding, so these unaligned layouts have exactly the sizes and offsets of the SDK's
//! naturally aligned ones; `static_assertions` pins both.
//!
//! The request path never copies a structure out of the system buffer: [`WireStruct::view`] and
//! [`WireStruct::view_mut`] borrow it in place (zerocopy's `ref_from_prefix`, which for these
//! byte-aligned layouts checks only the length), so the 512-byte token is never read by a decision
//! and a trimmed request is one field rewritten where it lies. A view borrows the buffer, so it
//! cannot outlive the point where the file system writes its answer over the input (the output of
//! a METHOD_BUFFERED request overlays its input). [`WireStruct::parse`] copies, for callers that
//! keep a structure (tests, the simulator's model of the storage).

mod read;
mod token;
mod write;

pub use read::{OffloadReadInput, OffloadReadOutput};
pub use token::{
    STORAGE_OFFLOAD_TOKEN_ID_LENGTH, STORAGE_OFFLOAD_TOKEN_TYPE_ZERO_DATA, StorageOffloadToken,
    TokenKind,
};
pub use write::{OffloadWriteInput, OffloadWriteOutput};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::WireError;

/// A fixed-size wire structure: parsed from and serialised into byte buffers of any length.
pub trait WireStruct: FromBytes + IntoBytes + KnownLayout + Immutable + Sized {
    /// The SDK's name of the structure.
    const NAME: &'static str;
    /// `sizeof` the structure.
    const SIZE: usize = core::mem::size_of::<Self>();

    /// Reads the structure from the start of `bytes`; trailing bytes are ignored.
    ///
    /// # Errors
    /// [`WireError::TooShort`] when `bytes` is shorter than [`Self::SIZE`].
    fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        Self::read_from_prefix(bytes)
            .map(|(value, _rest)| value)
            .map_err(|_| WireError::TooShort {
                structure: Self::NAME,
                needed: Self::SIZE,
                got: bytes.len(),
            })
    }

    /// Borrows the structure at the start of `bytes`, in place; trailing bytes are ignored.
    ///
    /// # Errors
    /// [`WireError::TooShort`] when `bytes` is shorter than [`Self::SIZE`].
    fn view(bytes: &[u8]) -> Result<&Self, WireError>
    where
        Self: Unaligned,
    {
        Self::ref_from_prefix(bytes)
            .map(|(value, _rest)| value)
            .map_err(|_| WireError::TooShort {
                structure: Self::NAME,
                needed: Self::SIZE,
                got: bytes.len(),
            })
    }

    /// Borrows the structure at the start of `bytes` for writing, in place.
    ///
    /// # Errors
    /// [`WireError::TooShort`] when `bytes` is shorter than [`Self::SIZE`].
    fn view_mut(bytes: &mut [u8]) -> Result<&mut Self, WireError>
    where
        Self: Unaligned,
    {
        let got = bytes.len();
        Self::mut_from_prefix(bytes)
            .map(|(value, _rest)| value)
            .map_err(|_| WireError::TooShort {
                structure: Self::NAME,
                needed: Self::SIZE,
                got,
            })
    }

    /// Writes the structure to the start of `out` and returns the bytes written. Nothing is
    /// written when `out` is too short.
    ///
    /// # Errors
    /// [`WireError::TooShort`] when `out` is shorter than [`Self::SIZE`].
    fn serialize_into(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let got = out.len();
        self.write_to_prefix(out)
            .map(|()| Self::SIZE)
            .map_err(|_| WireError::TooShort {
                structure: Self::NAME,
                needed: Self::SIZE,
                got,
            })
    }
}
