//! MS-FSA §2.1.4.10: does a range access conflict with byte-range locks? The simulator keeps the
//! locks; this is the rule it (and any lock view) applies.

use crate::facts::{ByteRange, LockIntent};

/// Identifies an open (file object) for lock ownership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpenId(pub u64);

/// One granted byte-range lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ByteRangeLock {
    /// `LockOffset`.
    pub offset: u64,
    /// `LockLength` (may be 0).
    pub length: u64,
    /// Exclusive (write) or shared (read) lock.
    pub exclusive: bool,
    /// The open that owns the lock.
    pub owner: OpenId,
    /// `LockKey`.
    pub key: u32,
}

impl ByteRangeLock {
    /// MS-FSA's overlap test, literally: `LastByteOffset = Offset + Length - 1`, so a zero-length
    /// lock at X ≠ 0 covers `[X, X-1]` and overlaps a range holding both X-1 and X. The {0, 0}
    /// lock overlaps nothing. Computed in 128 bits, so no sum can wrap.
    #[must_use]
    pub fn overlaps(&self, range: ByteRange) -> bool {
        if self.offset == 0 && self.length == 0 {
            return false;
        }
        // Sums of two u64 values minus one stay within (-1, 2^65): no 128-bit operation wraps.
        let last_requested = i128::from(range.offset)
            .wrapping_add(i128::from(range.length))
            .wrapping_sub(1);
        let last_locked = i128::from(self.offset)
            .wrapping_add(i128::from(self.length))
            .wrapping_sub(1);
        i128::from(range.offset) <= last_locked && last_requested >= i128::from(self.offset)
    }
}

/// Whether an I/O access (`LockIntent` = FALSE) of `intent` over `range`, made through `open`
/// with `key`, conflicts with any of `locks`.
pub fn range_conflicts<'a>(
    locks: impl IntoIterator<Item = &'a ByteRangeLock>,
    range: ByteRange,
    intent: LockIntent,
    open: OpenId,
    key: u32,
) -> bool {
    if range.offset == 0 && range.length == 0 {
        return false;
    }
    locks
        .into_iter()
        .filter(|lock| lock.overlaps(range))
        .any(|lock| {
            if lock.exclusive {
                lock.owner != open || lock.key != key
            } else {
                // A shared lock blocks exclusive-intent I/O whoever owns it.
                intent == LockIntent::Exclusive
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: OpenId = OpenId(1);
    const OTHER: OpenId = OpenId(2);

    fn lock(offset: u64, length: u64, exclusive: bool, owner: OpenId) -> ByteRangeLock {
        ByteRangeLock {
            offset,
            length,
            exclusive,
            owner,
            key: 0,
        }
    }

    /// (lock, range, intent, conflicts?) — MS-FSA §2.1.4.10 case by case.
    #[test]
    fn lock_conflict_table() {
        let r = ByteRange::new(4096, 4096);
        let cases: &[(ByteRangeLock, ByteRange, LockIntent, bool)] = &[
            (lock(4096, 512, true, OTHER), r, LockIntent::Shared, true),
            (lock(4096, 512, true, ME), r, LockIntent::Shared, false),
            (lock(4096, 512, true, ME), r, LockIntent::Exclusive, false),
            (lock(4096, 512, true, OTHER), r, LockIntent::Exclusive, true),
            (lock(4096, 512, false, OTHER), r, LockIntent::Shared, false),
            (lock(4096, 512, false, ME), r, LockIntent::Exclusive, true),
            (
                lock(4096, 512, false, OTHER),
                r,
                LockIntent::Exclusive,
                true,
            ),
            // adjacent, not overlapping
            (lock(0, 4096, true, OTHER), r, LockIntent::Exclusive, false),
            (
                lock(8192, 4096, true, OTHER),
                r,
                LockIntent::Exclusive,
                false,
            ),
            // the {0,0} lock never overlaps
            (
                lock(0, 0, true, OTHER),
                ByteRange::new(0, 4096),
                LockIntent::Exclusive,
                false,
            ),
            // a zero-length lock at X covers [X, X-1]: overlaps a range holding X-1 and X
            (lock(6000, 0, true, OTHER), r, LockIntent::Shared, true),
            (lock(4096, 0, true, OTHER), r, LockIntent::Shared, false),
            // a lock reaching to the end of the 64-bit space
            (
                lock(u64::MAX - 10, 11, true, OTHER),
                ByteRange::new(u64::MAX - 512, 512),
                LockIntent::Shared,
                true,
            ),
        ];
        for (i, (l, range, intent, expected)) in cases.iter().enumerate() {
            assert_eq!(
                range_conflicts([l], *range, *intent, ME, 0),
                *expected,
                "case {i}: {l:?} {range:?} {intent:?}"
            );
        }
    }

    #[test]
    fn exclusive_lock_with_another_key_conflicts_even_for_the_same_open() {
        let l = ByteRangeLock {
            key: 7,
            ..lock(0, 8192, true, ME)
        };
        assert!(range_conflicts(
            [&l],
            ByteRange::new(0, 512),
            LockIntent::Shared,
            ME,
            0
        ));
        assert!(!range_conflicts(
            [&l],
            ByteRange::new(0, 512),
            LockIntent::Shared,
            ME,
            7
        ));
    }
}
