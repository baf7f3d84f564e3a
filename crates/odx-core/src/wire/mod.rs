//! Wire layouts of the offload FSCTL buffers and the storage token.
//!
//! Each structure is `#[repr(C)]` with explicitly little-endian (or, in the token, big-endian)
//! unaligned fields, so a structure can be read from any byte offset of a system buffer. None of
//! them has padding, so these unaligned layouts have exactly the sizes and offsets of the SDK's
//! naturally aligned ones; `static_assertions` pins both. Parsing copies out of the buffer: the
//! output of a METHOD_BUFFERED request overlays its input, so a borrowed view would not survive
//! the file system writing its answer.

mod read;
mod token;
mod write;

pub use read::{OffloadReadInput, OffloadReadOutput};
pub use token::{STORAGE_OFFLOAD_TOKEN_TYPE_ZERO_DATA, StorageOffloadToken, TokenKind};
pub use write::{OffloadWriteInput, OffloadWriteOutput};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

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
