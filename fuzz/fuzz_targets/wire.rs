//! Every wire parser on arbitrary bytes, plus parse ∘ serialise = identity on the bytes, a short
//! output buffer left untouched, the token classifiers, the control-code classifier and the
//! status-code lookups (what `odxctl explain` parses).

#![no_main]

use libfuzzer_sys::fuzz_target;
use odx_core::engine::{key_of, token_for_key};
use odx_core::wire::{
    OffloadReadInput, OffloadReadOutput, OffloadWriteInput, OffloadWriteOutput,
    StorageOffloadToken, TokenKind,
};
use odx_core::{NtStatus, OffloadOp, Win32Error, WireStruct};
use zerocopy::Unaligned;

fn round_trip<T: WireStruct + Unaligned + PartialEq + core::fmt::Debug>(data: &[u8]) -> Option<T> {
    let parsed = T::parse(data);
    assert_eq!(parsed.is_ok(), data.len() >= T::SIZE, "{}", T::NAME);
    // The in-place view agrees with the copy, and borrows the input's own bytes.
    let view = T::view(data);
    assert_eq!(view.ok(), parsed.as_ref().ok());
    if let Ok(view) = view {
        assert_eq!(core::ptr::from_ref(view).cast::<u8>(), data.as_ptr());
    }
    let value = parsed.ok()?;
    // Serialise into a longer buffer: exactly SIZE bytes written, equal to the input's prefix.
    let mut out = vec![0xA5u8; T::SIZE + 7];
    assert_eq!(value.serialize_into(&mut out), Ok(T::SIZE));
    assert_eq!(&out[..T::SIZE], &data[..T::SIZE]);
    assert!(
        out[T::SIZE..].iter().all(|&b| b == 0xA5),
        "wrote past the structure"
    );
    assert_eq!(T::parse(&out).as_ref(), Ok(&value));
    // A short buffer: an error and not one byte written.
    let short = data.len() % T::SIZE;
    let mut small = vec![0x5Au8; short];
    assert!(value.serialize_into(&mut small).is_err());
    assert!(small.iter().all(|&b| b == 0x5A));
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    let _ = round_trip::<OffloadReadInput>(data);
    let _ = round_trip::<OffloadReadOutput>(data);
    let _ = round_trip::<OffloadWriteInput>(data);
    let _ = round_trip::<OffloadWriteOutput>(data);
    if let Some(token) = round_trip::<StorageOffloadToken>(data) {
        match token.kind() {
            TokenKind::ZeroData => assert!(token.is_zero_data()),
            TokenKind::ReservedWellKnown => assert!(token.token_type.get() >= 0xFFFF_0001),
            TokenKind::Vendor => assert!(token.token_type.get() < 0xFFFF_0001),
        }
        if let Some(key) = key_of(&token) {
            assert_eq!(
                token_for_key(&key),
                token,
                "key_of accepts only what token_for_key made"
            );
        }
    }

    let word = data
        .get(..4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    match OffloadOp::from_fsctl(word) {
        Some(op) => assert_eq!(op.fsctl(), word),
        None => assert!(word != 0x0009_4264 && word != 0x0009_8268),
    }
    // The masked test lets through only codes that share the offload codes' common bits.
    if word & odx_core::ctl::OFFLOAD_COMMON_MASK != odx_core::ctl::OFFLOAD_COMMON_BITS {
        assert_eq!(OffloadOp::from_fsctl(word), None);
    }
    let status = NtStatus(word);
    if let Some(info) = status.info() {
        assert_eq!(NtStatus::from_name(info.name), Some(status));
        assert_eq!(status.to_win32(), info.win32);
    }
    for row in Win32Error(word).statuses() {
        assert_eq!(row.win32, Some(Win32Error(word)));
    }
    if let Ok(text) = core::str::from_utf8(data) {
        if let Some(s) = NtStatus::from_name(text) {
            assert!(s.info().is_some());
        }
        if let Some(w) = Win32Error::from_name(text) {
            assert!(w.statuses().next().is_some());
        }
    }
});
