use static_assertions::const_assert_eq;
use zerocopy::byteorder::big_endian::{U16, U32};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::WireStruct;

/// `STORAGE_OFFLOAD_TOKEN_TYPE_ZERO_DATA`: the well-known token for logically zero data.
pub const STORAGE_OFFLOAD_TOKEN_TYPE_ZERO_DATA: u32 = 0xFFFF_0001;
/// `STORAGE_OFFLOAD_TOKEN_ID_LENGTH`.
pub const STORAGE_OFFLOAD_TOKEN_ID_LENGTH: usize = 0x1F8;
/// Token types from here up are well-known values (MS-FSCC); all but the zero token are reserved.
const WELL_KNOWN_FIRST: u32 = 0xFFFF_0001;

/// `STORAGE_OFFLOAD_TOKEN`: 512 bytes, byte-aligned, type and id length big-endian.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct StorageOffloadToken {
    /// `TokenType`, big-endian.
    pub token_type: U32,
    /// `Reserved[2]`.
    pub reserved: [u8; 2],
    /// `TokenIdLength`, big-endian.
    pub token_id_length: U16,
    /// `Token[0x1F8]`: opaque id (for the zero token, reserved bytes).
    pub token_id: [u8; STORAGE_OFFLOAD_TOKEN_ID_LENGTH],
}

const_assert_eq!(size_of::<StorageOffloadToken>(), 512);
const_assert_eq!(core::mem::offset_of!(StorageOffloadToken, token_type), 0);
const_assert_eq!(core::mem::offset_of!(StorageOffloadToken, reserved), 4);
const_assert_eq!(
    core::mem::offset_of!(StorageOffloadToken, token_id_length),
    6
);
const_assert_eq!(core::mem::offset_of!(StorageOffloadToken, token_id), 8);

impl WireStruct for StorageOffloadToken {
    const NAME: &'static str = "STORAGE_OFFLOAD_TOKEN";
}

/// What a token is, judged from its header only (the id is opaque).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// The well-known zero-data token (`IS_ZERO_TOKEN`).
    ZeroData,
    /// A well-known type MS-FSCC reserves for the future (0xFFFF0002–0xFFFFFFFF), or a zero-type
    /// token whose header is not exactly `MAKE_ZERO_TOKEN`'s.
    ReservedWellKnown,
    /// A vendor (ROD) token: opaque.
    Vendor,
}

impl StorageOffloadToken {
    /// All bytes zero.
    #[must_use]
    pub fn zeroed() -> Self {
        FromZeros::new_zeroed()
    }

    /// `MAKE_ZERO_TOKEN`: type 0xFFFF0001, id length 0x1F8, the rest zero.
    #[must_use]
    pub fn zero_data() -> Self {
        let mut token = Self::zeroed();
        token.token_type = U32::new(STORAGE_OFFLOAD_TOKEN_TYPE_ZERO_DATA);
        token.token_id_length = U16::new(0x01F8);
        token
    }

    /// A vendor token with the given type and id.
    #[must_use]
    pub fn vendor(token_type: u32, id: [u8; STORAGE_OFFLOAD_TOKEN_ID_LENGTH]) -> Self {
        Self {
            token_type: U32::new(token_type),
            reserved: [0; 2],
            token_id_length: U16::new(0x01F8),
            token_id: id,
        }
    }

    /// `IS_ZERO_TOKEN`: tests the same six header bytes the SDK macro tests.
    #[must_use]
    pub fn is_zero_data(&self) -> bool {
        self.token_type.get() == STORAGE_OFFLOAD_TOKEN_TYPE_ZERO_DATA
            && self.token_id_length.get() == 0x01F8
    }

    /// Classifies the token by its header.
    #[must_use]
    pub fn kind(&self) -> TokenKind {
        if self.is_zero_data() {
            TokenKind::ZeroData
        } else if self.token_type.get() >= WELL_KNOWN_FIRST {
            TokenKind::ReservedWellKnown
        } else {
            TokenKind::Vendor
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_token_bytes_are_the_make_zero_token_macro() {
        let token = StorageOffloadToken::zero_data();
        let bytes = token.as_bytes();
        assert_eq!(
            bytes.get(..8),
            Some(&[0xFF, 0xFF, 0x00, 0x01, 0, 0, 0x01, 0xF8][..])
        );
        assert!(bytes.iter().skip(8).all(|&b| b == 0));
        assert_eq!(token.kind(), TokenKind::ZeroData);
    }

    #[test]
    fn token_kinds_follow_ms_fscc() {
        let mut token = StorageOffloadToken::zero_data();
        token.token_id_length = U16::new(0);
        assert_eq!(
            token.kind(),
            TokenKind::ReservedWellKnown,
            "type 0xFFFF0001 without the id length is not IS_ZERO_TOKEN"
        );
        token.token_type = U32::new(0xFFFF_FFFF);
        assert_eq!(token.kind(), TokenKind::ReservedWellKnown);
        assert_eq!(
            StorageOffloadToken::vendor(0x4F44_5846, [7; 504]).kind(),
            TokenKind::Vendor
        );
    }
}
