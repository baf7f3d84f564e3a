//! The token engine driven by arbitrary operation sequences (populate, resolve_write,
//! source_written, expire, clock advance) over a small bounded HashMap store, checked against a
//! model of which tokens are live:
//! - a resolved write never exceeds the token's range, the asked length or the transfer bound;
//! - an expired or invalidated (source written) token never resolves;
//! - a live token with an offset inside its range always resolves (no false refusals);
//! - the store holds exactly the tokens the model holds, and the counts returned by
//!   `source_written` / `expire` are the counts the model forgets.

#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use odx_core::engine::{
    EngineLimits, SourceId, TokenEngine, TokenKey, TokenRecord, TokenStore, WriteSource,
    token_for_key,
};
use odx_core::error::EngineError;
use odx_core::wire::StorageOffloadToken;
use odx_core::{ByteRange, NtStatus, SectorSize};
use odx_fuzz::Num;

#[derive(Debug, Default)]
struct Store {
    map: HashMap<TokenKey, TokenRecord>,
    capacity: usize,
}

impl TokenStore for Store {
    fn insert(&mut self, key: TokenKey, record: TokenRecord) -> Result<(), EngineError> {
        if !self.map.contains_key(&key) && self.map.len() >= self.capacity {
            return Err(EngineError::StoreFull {
                capacity: self.capacity,
            });
        }
        self.map.insert(key, record);
        Ok(())
    }
    fn get(&self, key: &TokenKey) -> Option<TokenRecord> {
        self.map.get(key).copied()
    }
    fn remove(&mut self, key: &TokenKey) -> Option<TokenRecord> {
        self.map.remove(key)
    }
    fn remove_where(
        &mut self,
        source: Option<SourceId>,
        dead: &mut dyn FnMut(&TokenRecord) -> bool,
    ) -> usize {
        let before = self.map.len();
        self.map
            .retain(|_, r| source.is_some_and(|s| s != r.source) || !dead(r));
        before - self.map.len()
    }
    fn len(&self) -> usize {
        self.map.len()
    }
}

#[derive(Arbitrary, Debug)]
enum TokenRef {
    /// A token the engine handed out (index into the issued list).
    Issued(u16),
    /// The well-known zero token.
    Zero,
    /// A header-only token of any type.
    Header(u32, u16),
    /// The token the engine would make for a key it may never have issued.
    Key(u16),
    /// An issued token with one byte changed.
    Altered(u16, u16, u8),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Populate {
        source: u8,
        offset: Num,
        length: Num,
        ttl: u32,
        key: u16,
    },
    Resolve {
        token: TokenRef,
        transfer_offset: Num,
        copy_length: Num,
    },
    Written {
        source: u8,
        offset: Num,
        length: Num,
    },
    Expire,
    Advance(u32),
}

#[derive(Arbitrary, Debug)]
struct Input {
    default_ttl: u32,
    max_ttl: u32,
    max_transfer: Num,
    sector_log2: u8,
    capacity: u8,
    ops: Vec<Op>,
}

fn key(seed: u16) -> TokenKey {
    let mut k = [0u8; 32];
    k[..2].copy_from_slice(&seed.to_le_bytes());
    k[31] = 0x5A; // never all zero
    k
}

fn overlaps(a: ByteRange, b: ByteRange) -> bool {
    let (a0, a1) = (
        u128::from(a.offset),
        u128::from(a.offset) + u128::from(a.length),
    );
    let (b0, b1) = (
        u128::from(b.offset),
        u128::from(b.offset) + u128::from(b.length),
    );
    a.length > 0 && b.length > 0 && a0 < b1 && b0 < a1
}

fuzz_target!(|x: Input| {
    let sector = SectorSize::new(1u32 << (x.sector_log2 % 17)).unwrap_or_default();
    let limits = EngineLimits {
        default_ttl_ms: u64::from(x.default_ttl),
        max_ttl_ms: u64::from(x.max_ttl),
        max_transfer: x.max_transfer.value(sector),
        sector_size: sector,
    };
    let bound = limits.transfer_bound();
    assert!(bound > 0 && sector.is_aligned(bound));
    let store = Store {
        map: HashMap::new(),
        capacity: usize::from(x.capacity % 32) + 1,
    };
    let mut engine = TokenEngine::new(limits, store);
    // The model: what each key stands for and whether the store should still hold it.
    let mut model: HashMap<TokenKey, TokenRecord> = HashMap::new();
    let mut issued: Vec<TokenKey> = Vec::new();
    let mut now: u64 = 0;

    for op in x.ops.iter().take(256) {
        match *op {
            Op::Populate {
                source,
                offset,
                length,
                ttl,
                key: seed,
            } => {
                let range = ByteRange::new(offset.value(sector), length.value(sector));
                let k = key(seed);
                let full = !model.contains_key(&k) && model.len() >= engine.store().capacity;
                match engine.populate(now, SourceId(u64::from(source)), range, ttl, k) {
                    Ok(p) => {
                        assert!(!full);
                        assert_eq!(p.length, range.length.min(bound));
                        assert!(p.length > 0 && p.length <= bound);
                        assert_eq!(p.token, token_for_key(&k));
                        let rec = engine.store().get(&k).expect("populated token not stored");
                        assert_eq!(rec.range, ByteRange::new(range.offset, p.length));
                        assert_eq!(rec.created_ms, now);
                        assert!(rec.expires_ms >= now);
                        let longest = limits.default_ttl_ms.max(limits.max_ttl_ms);
                        assert!(rec.expires_ms - now <= longest, "lives longer than allowed");
                        model.insert(k, rec);
                        issued.push(k);
                    }
                    Err(s) if range.length == 0 => {
                        assert_eq!(s, NtStatus::STATUS_INVALID_PARAMETER)
                    }
                    Err(s) => {
                        assert!(full, "refused a token with room in the store");
                        assert_eq!(s, NtStatus::STATUS_DEVICE_INSUFFICIENT_RESOURCES);
                    }
                }
            }
            Op::Resolve {
                ref token,
                transfer_offset,
                copy_length,
            } => {
                let t = match *token {
                    TokenRef::Issued(i) if !issued.is_empty() => {
                        token_for_key(&issued[usize::from(i) % issued.len()])
                    }
                    TokenRef::Issued(_) | TokenRef::Zero => StorageOffloadToken::zero_data(),
                    TokenRef::Header(ty, len) => {
                        let mut t = StorageOffloadToken::zeroed();
                        t.token_type.set(ty);
                        t.token_id_length.set(len);
                        t
                    }
                    TokenRef::Key(seed) => token_for_key(&key(seed)),
                    TokenRef::Altered(i, pos, xor) => {
                        let k = if issued.is_empty() {
                            key(i)
                        } else {
                            issued[usize::from(i) % issued.len()]
                        };
                        let mut t = token_for_key(&k);
                        let bytes = zerocopy::IntoBytes::as_mut_bytes(&mut t);
                        bytes[usize::from(pos) % 512] ^= xor;
                        t
                    }
                };
                // The model's token for these bytes: the one whose exact bytes they are (an
                // altered token may happen to be another issued token; any other alteration
                // stands for nothing).
                let expect_key = model.keys().copied().find(|k| token_for_key(k) == t);
                let tr = transfer_offset.value(sector);
                let copy = copy_length.value(sector);
                let r = engine.resolve_write(now, &t, tr, copy);
                if t.is_zero_data() {
                    assert_eq!(
                        r,
                        Ok(WriteSource::Zero {
                            length: copy.min(bound)
                        })
                    );
                    continue;
                }
                let live = expect_key.and_then(|k| model.get(&k).copied().map(|rec| (k, rec)));
                match r {
                    Ok(WriteSource::Zero { .. }) => panic!("zero source from a non-zero token"),
                    Ok(WriteSource::Data {
                        source,
                        offset,
                        length,
                    }) => {
                        let (_, rec) = live.expect("resolved a token that is not live");
                        assert!(now < rec.expires_ms, "an expired token resolved");
                        assert_eq!(source, rec.source);
                        assert_eq!(
                            u128::from(offset),
                            u128::from(rec.range.offset) + u128::from(tr)
                        );
                        assert!(tr < rec.range.length);
                        assert!(
                            u128::from(tr) + u128::from(length) <= u128::from(rec.range.length),
                            "resolved beyond the token's range"
                        );
                        assert!(length <= copy && length <= bound);
                        if sector.is_aligned(rec.range.length)
                            && sector.is_aligned(tr)
                            && sector.is_aligned(copy)
                        {
                            assert!(sector.is_aligned(length));
                        }
                    }
                    Err(s) => match live {
                        Some((k, rec)) if now >= rec.expires_ms => {
                            assert_eq!(s, NtStatus::STATUS_INVALID_TOKEN);
                            model.remove(&k);
                        }
                        Some((_, rec)) => {
                            assert_eq!(s, NtStatus::STATUS_INVALID_PARAMETER, "false refusal");
                            let end = u128::from(rec.range.offset) + u128::from(tr);
                            assert!(tr >= rec.range.length || end > u128::from(u64::MAX));
                        }
                        None => assert_eq!(s, NtStatus::STATUS_INVALID_TOKEN),
                    },
                }
            }
            Op::Written {
                source,
                offset,
                length,
            } => {
                let src = SourceId(u64::from(source));
                let range = ByteRange::new(offset.value(sector), length.value(sector));
                let n = engine.source_written(src, range);
                let before = model.len();
                model.retain(|_, r| !(r.source == src && overlaps(r.range, range)));
                assert_eq!(n, before - model.len());
            }
            Op::Expire => {
                let n = engine.expire(now);
                let before = model.len();
                model.retain(|_, r| now < r.expires_ms);
                assert_eq!(n, before - model.len());
            }
            Op::Advance(ms) => now = now.saturating_add(u64::from(ms)),
        }
        assert_eq!(engine.store().len(), model.len());
        for (k, rec) in &model {
            assert_eq!(engine.store().get(k).as_ref(), Some(rec));
        }
    }
});
