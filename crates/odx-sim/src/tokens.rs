//! The simulated array's token store: a hash map keyed by the token's random key, with a
//! per-source index so that invalidating the tokens of one source visits only those tokens, and
//! an expiry-ordered index so that an expiry sweep visits only the tokens that expire.

use std::collections::{BTreeSet, HashMap, HashSet};

use odx_core::EngineError;
use odx_core::engine::{SourceId, TOKEN_KEY_LEN, TokenKey, TokenRecord, TokenStore};

/// Live tokens the simulated array keeps at most (beyond, populate fails with
/// `STATUS_DEVICE_INSUFFICIENT_RESOURCES`).
pub const DEFAULT_CAPACITY: usize = 65_536;

/// A hash-map token store with per-source and expiry indexes.
#[derive(Debug)]
pub struct MapStore {
    tokens: HashMap<TokenKey, TokenRecord>,
    by_source: HashMap<SourceId, HashSet<TokenKey>>,
    by_expiry: BTreeSet<(u64, TokenKey)>,
    capacity: usize,
}

impl Default for MapStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl MapStore {
    /// A store that keeps at most `capacity` live tokens.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            tokens: HashMap::new(),
            by_source: HashMap::new(),
            by_expiry: BTreeSet::new(),
            capacity,
        }
    }

    fn unindex(&mut self, key: &TokenKey, record: &TokenRecord) {
        self.by_expiry.remove(&(record.expires_ms, *key));
        if let Some(keys) = self.by_source.get_mut(&record.source) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_source.remove(&record.source);
            }
        }
    }
}

impl TokenStore for MapStore {
    fn insert(&mut self, key: TokenKey, record: TokenRecord) -> Result<(), EngineError> {
        if self.tokens.len() >= self.capacity && !self.tokens.contains_key(&key) {
            return Err(EngineError::StoreFull {
                capacity: self.capacity,
            });
        }
        if let Some(old) = self.tokens.insert(key, record) {
            self.unindex(&key, &old);
        }
        self.by_source.entry(record.source).or_default().insert(key);
        self.by_expiry.insert((record.expires_ms, key));
        Ok(())
    }

    fn get(&self, key: &TokenKey) -> Option<TokenRecord> {
        self.tokens.get(key).copied()
    }

    fn remove(&mut self, key: &TokenKey) -> Option<TokenRecord> {
        let record = self.tokens.remove(key)?;
        self.unindex(key, &record);
        Some(record)
    }

    fn remove_expired(&mut self, now_ms: u64) -> usize {
        let mut removed = 0;
        while let Some(&(expires_ms, key)) = self.by_expiry.first() {
            if expires_ms > now_ms {
                break;
            }
            if self.remove(&key).is_none() {
                // The index named a token the map no longer holds: drop the stale entry.
                self.by_expiry.remove(&(expires_ms, key));
            } else {
                removed += 1;
            }
        }
        removed
    }

    fn remove_where(
        &mut self,
        source: Option<SourceId>,
        dead: &mut dyn FnMut(&TokenRecord) -> bool,
    ) -> usize {
        let candidates: Vec<TokenKey> = match source {
            Some(s) => self
                .by_source
                .get(&s)
                .map(|k| k.iter().copied().collect())
                .unwrap_or_default(),
            None => self.tokens.keys().copied().collect(),
        };
        let mut removed = 0;
        for key in candidates {
            if self.tokens.get(&key).is_some_and(&mut *dead) && self.remove(&key).is_some() {
                removed += 1;
            }
        }
        removed
    }

    fn len(&self) -> usize {
        self.tokens.len()
    }
}

/// 32 fresh random bytes from the operating system.
///
/// # Errors
/// The OS random source failed.
pub fn fresh_key() -> Result<TokenKey, getrandom::Error> {
    let mut key = [0u8; TOKEN_KEY_LEN];
    getrandom::fill(&mut key)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use odx_core::ByteRange;

    use super::*;

    fn record(source: u64, offset: u64) -> TokenRecord {
        TokenRecord {
            source: SourceId(source),
            range: ByteRange::new(offset, 4096),
            created_ms: 0,
            expires_ms: 100,
        }
    }

    #[test]
    fn index_follows_inserts_and_removals() {
        let mut store = MapStore::with_capacity(3);
        store.insert([1; 32], record(1, 0)).unwrap();
        store.insert([2; 32], record(1, 8192)).unwrap();
        store.insert([3; 32], record(2, 0)).unwrap();
        assert_eq!(
            store.insert([4; 32], record(2, 0)),
            Err(EngineError::StoreFull { capacity: 3 })
        );
        let removed = store.remove_where(Some(SourceId(1)), &mut |r| r.range.offset == 0);
        assert_eq!(removed, 1);
        assert_eq!(store.len(), 2);
        assert!(store.get(&[1; 32]).is_none());
        assert_eq!(store.remove_where(None, &mut |_| true), 2);
        assert!(store.is_empty());
        assert!(store.by_source.is_empty());
        assert!(store.by_expiry.is_empty());
    }

    #[test]
    fn keys_are_random() {
        assert_ne!(fresh_key().unwrap(), fresh_key().unwrap());
    }

    #[test]
    fn expiry_sweep_removes_exactly_the_expired_tokens_and_keeps_indexes_in_step() {
        let mut store = MapStore::with_capacity(10);
        for (i, expires_ms) in [(1u8, 50u64), (2, 100), (3, 100), (4, 150)] {
            let r = TokenRecord {
                expires_ms,
                ..record(u64::from(i % 2), u64::from(i) * 4096)
            };
            store.insert([i; 32], r).unwrap();
        }
        assert_eq!(store.remove_expired(49), 0);
        assert_eq!(
            store.remove_expired(100),
            3,
            "a token is expired from its expiry instant on"
        );
        assert_eq!(store.len(), 1);
        assert!(store.get(&[4; 32]).is_some());
        assert_eq!(store.by_expiry.len(), 1);
        // re-inserting a key under a new expiry replaces its index entry
        let r = TokenRecord {
            expires_ms: 500,
            ..record(1, 0)
        };
        store.insert([4; 32], r).unwrap();
        assert_eq!(store.remove_expired(150), 0);
        assert_eq!(store.remove_expired(500), 1);
        assert!(store.is_empty() && store.by_expiry.is_empty() && store.by_source.is_empty());
    }
}
