//! `engine::key_of` accepts exactly the tokens `token_for_key` makes: any single changed byte
//! anywhere in the token (header, key or the zero tail) either changes the key it reads or makes
//! it refuse the token. Guards the vectorised zero-tail test in `key_of`.

use odx_core::engine::{key_of, token_for_key};
use zerocopy::IntoBytes;

#[test]
fn key_of_inverts_token_for_key() {
    let key: [u8; 32] = core::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0xA5);
    assert_eq!(key_of(&token_for_key(&key)), Some(key));
}

#[test]
fn a_changed_tail_byte_is_refused_wherever_it_sits() {
    let key = [0x11u8; 32];
    for pos in 40..512 {
        for bit in [0x01u8, 0x80] {
            let mut token = token_for_key(&key);
            token.as_mut_bytes()[pos] ^= bit;
            assert_eq!(key_of(&token), None, "byte {pos} ^ {bit:#x} accepted");
        }
    }
}

#[test]
fn a_changed_header_byte_is_refused_and_a_changed_key_byte_reads_another_key() {
    let key = [0x22u8; 32];
    for pos in 0..8 {
        let mut token = token_for_key(&key);
        token.as_mut_bytes()[pos] ^= 0x40;
        assert_eq!(
            key_of(&token),
            None,
            "header byte {pos} changed and accepted"
        );
    }
    for pos in 8..40 {
        let mut token = token_for_key(&key);
        token.as_mut_bytes()[pos] ^= 0x40;
        let read = key_of(&token).expect("a key byte is opaque");
        assert_ne!(read, key, "key byte {pos} changed but the same key read");
    }
}
