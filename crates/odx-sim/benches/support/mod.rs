//! Shared setup of the token-store benchmarks: an engine over the simulator's own store
//! (`odx_sim::tokens::MapStore`, a hash map keyed by the 256-bit token key plus a per-source
//! index) filled with `n` live tokens, 4 tokens per source on average.

use odx_core::ByteRange;
use odx_core::engine::{EngineLimits, SourceId, TOKEN_KEY_LEN, TokenEngine, TokenKey};
use odx_sim::tokens::MapStore;

/// Every token made at time 0 with the default lifetime lives until this instant.
pub const EXPIRES_MS: u64 = 30_000;
/// Bytes each token stands for.
pub const TOKEN_BYTES: u64 = 4096;

/// splitmix64 key material (the volume uses getrandom; the benches measure the store).
#[derive(Debug)]
pub struct Keys(pub u64);

impl Keys {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn key(&mut self) -> TokenKey {
        let mut key = [0u8; TOKEN_KEY_LEN];
        for chunk in key.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        key
    }
}

pub fn limits() -> EngineLimits {
    EngineLimits {
        default_ttl_ms: EXPIRES_MS,
        ..EngineLimits::default()
    }
}

pub fn empty() -> TokenEngine<MapStore> {
    TokenEngine::new(limits(), MapStore::with_capacity(usize::MAX))
}

/// The source and range of the `i`-th of `n` tokens.
pub fn placement(i: usize, n: usize) -> (SourceId, ByteRange) {
    let sources = (n / 4).max(1);
    let source = SourceId((i % sources) as u64);
    let offset = (i / sources) as u64 * TOKEN_BYTES;
    (source, ByteRange::new(offset, TOKEN_BYTES))
}

/// Adds `n` live tokens (made at time 0); returns their keys in creation order.
pub fn fill(engine: &mut TokenEngine<MapStore>, n: usize, keys: &mut Keys) -> Vec<TokenKey> {
    (0..n)
        .map(|i| {
            let key = keys.key();
            let (source, range) = placement(i, n);
            let made = engine.populate(0, source, range, 0, key);
            assert!(made.is_ok(), "populate failed: {made:?}");
            key
        })
        .collect()
}
