//! The token engine over the simulator's store (`MapStore`) with 1 000 and 100 000 live tokens:
//! create (populate), lookup (resolve_write of a live token, random order), invalidate
//! (source_written over one token's range, through the per-source index), expire (a sweep that
//! finds nothing; a sweep that forgets every token). A summary table with the 100k/1k ratio per
//! operation is printed first (same run), then criterion measures the same operations.
//!
//! `cargo bench -p odx-sim --bench token_store` (the summary alone: append `-- --summary-only`)

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use odx_core::engine::{SourceId, TokenEngine, TokenKey, token_for_key};
use odx_core::{ByteRange, NtStatus};
use odx_sim::tokens::MapStore;

mod support;
use support::{EXPIRES_MS, Keys, TOKEN_BYTES, empty, fill, placement};

/// Criterion's sizes; the summary adds 1M to show the 100k figure is a cache effect, not growth.
const SIZES: [usize; 2] = [1_000, 100_000];
const SUMMARY_SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
const BATCH: usize = 1_000;
/// A source no filled token uses: batches made on it are removed in one call, untimed.
const SCRATCH: SourceId = SourceId(u64::MAX - 1);

struct Live {
    engine: TokenEngine<MapStore>,
    keys: Vec<TokenKey>,
    /// Lookup order: a permutation of `keys`' indices.
    order: Vec<usize>,
    rng: Keys,
}

fn live(n: usize) -> Live {
    let mut rng = Keys(n as u64);
    let mut engine = empty();
    let keys = fill(&mut engine, n, &mut rng);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    Live {
        engine,
        keys,
        order,
        rng,
    }
}

/// `count` populates (in batches of `BATCH` on the scratch source, removed untimed).
fn time_populate(l: &mut Live, count: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = count;
    while left > 0 {
        let batch = left.min(BATCH as u64);
        let keys: Vec<TokenKey> = (0..batch).map(|_| l.rng.key()).collect();
        let start = Instant::now();
        for (i, key) in keys.into_iter().enumerate() {
            let range = ByteRange::new(i as u64 * TOKEN_BYTES, TOKEN_BYTES);
            black_box(l.engine.populate(1, SCRATCH, range, 0, key)).ok();
        }
        total += start.elapsed();
        l.engine
            .source_written(SCRATCH, ByteRange::new(0, u64::MAX / 2));
        left -= batch;
    }
    total
}

/// `count` lookups of live tokens in random order (the token is built from its key in the loop,
/// as the volume parses it out of the caller's buffer).
fn time_lookup(l: &mut Live, count: u64) -> Duration {
    let n = l.keys.len();
    let start = Instant::now();
    for i in 0..count as usize {
        let key = &l.keys[l.order[i % n]];
        let token = token_for_key(key);
        let found = l.engine.resolve_write(1, black_box(&token), 0, TOKEN_BYTES);
        debug_assert!(found.is_ok());
        black_box(found).ok();
    }
    start.elapsed()
}

/// `count` lookups cycling through 1 000 of the live tokens (random order): the entries touched
/// stay in cache whatever the table size, so what remains is the algorithmic cost.
fn time_lookup_hot(l: &mut Live, count: u64) -> Duration {
    let hot: Vec<usize> = l.order.iter().copied().take(1_000).collect();
    let start = Instant::now();
    for i in 0..count as usize {
        let token = token_for_key(&l.keys[hot[i % hot.len()]]);
        black_box(l.engine.resolve_write(1, black_box(&token), 0, TOKEN_BYTES)).ok();
    }
    start.elapsed()
}

/// `count` invalidations of one live token each (source_written over its range), the tokens
/// made again untimed.
fn time_invalidate(l: &mut Live, count: u64) -> Duration {
    let n = l.keys.len();
    let mut total = Duration::ZERO;
    let mut done = 0usize;
    while done < count as usize {
        let batch = (count as usize - done).min(BATCH).min(n);
        let picks: Vec<usize> = (0..batch).map(|k| l.order[(done + k) % n]).collect();
        let start = Instant::now();
        for &i in &picks {
            let (source, range) = placement(i, n);
            let removed = l.engine.source_written(source, range);
            debug_assert_eq!(removed, 1);
            black_box(removed);
        }
        total += start.elapsed();
        for &i in &picks {
            let (source, range) = placement(i, n);
            l.engine.populate(0, source, range, 0, l.keys[i]).ok();
        }
        done += batch;
    }
    total
}

/// `count` expiry sweeps that find nothing expired.
fn time_sweep(l: &mut Live, count: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..count {
        black_box(l.engine.expire(black_box(1)));
    }
    start.elapsed()
}

/// One sweep at the expiry instant, forgetting all `n` tokens; the engine is refilled after.
fn time_expire_all(n: usize) -> Duration {
    let mut engine = empty();
    fill(&mut engine, n, &mut Keys(7));
    let start = Instant::now();
    let removed = engine.expire(EXPIRES_MS);
    let elapsed = start.elapsed();
    assert_eq!(removed, n);
    elapsed
}

fn ns(d: Duration, ops: u64) -> f64 {
    d.as_secs_f64() * 1e9 / ops as f64
}

fn summary() {
    let fresh_key = {
        let count = 20_000u64;
        let start = Instant::now();
        for _ in 0..count {
            black_box(odx_sim::tokens::fresh_key()).ok();
        }
        ns(start.elapsed(), count)
    };
    let mut rows: Vec<(&str, [f64; 3])> = vec![
        ("populate (create)", [0.0; 3]),
        ("resolve_write (lookup, random)", [0.0; 3]),
        ("resolve_write (lookup, 1k hot tokens)", [0.0; 3]),
        ("source_written (invalidate 1)", [0.0; 3]),
        ("expire sweep, none due (per sweep)", [0.0; 3]),
        ("expire sweep, none due (per token)", [0.0; 3]),
        ("expire all (per token)", [0.0; 3]),
    ];
    for (col, &n) in SUMMARY_SIZES.iter().enumerate() {
        let mut l = live(n);
        let ops = 200_000;
        // Warm up once, then measure.
        time_lookup(&mut l, ops);
        rows[0].1[col] = ns(time_populate(&mut l, ops), ops);
        rows[1].1[col] = ns(time_lookup(&mut l, ops), ops);
        time_lookup_hot(&mut l, ops);
        rows[2].1[col] = ns(time_lookup_hot(&mut l, ops), ops);
        rows[3].1[col] = ns(time_invalidate(&mut l, ops / 4), ops / 4);
        let sweeps = (2_000_000 / n as u64).max(5);
        let sweep = ns(time_sweep(&mut l, sweeps), sweeps);
        rows[4].1[col] = sweep;
        rows[5].1[col] = sweep / n as f64;
        let runs = if n > 10_000 { 2 } else { 50 };
        let all: Duration = (0..runs).map(|_| time_expire_all(n)).sum();
        rows[6].1[col] = ns(all, runs) / n as f64;
        assert_eq!(l.engine.store().len_live(), n);
    }
    println!("token engine over odx_sim::tokens::MapStore (ns per operation, same run)");
    println!(
        "{:<40} {:>12} {:>12} {:>12} {:>9} {:>9}",
        "operation", "1k live", "100k live", "1M live", "100k/1k", "1M/100k"
    );
    for (name, [a, b, m]) in rows {
        println!(
            "{name:<40} {a:>12.1} {b:>12.1} {m:>12.1} {:>9.2} {:>9.2}",
            b / a,
            m / b
        );
    }
    println!(
        "(for scale: fresh_key, the volume's 32 random bytes from getrandom: {fresh_key:.1} ns)"
    );
    println!();
}

/// `len` through the trait, under a name that does not clash with slices in the summary.
trait LenLive {
    fn len_live(&self) -> usize;
}

impl LenLive for MapStore {
    fn len_live(&self) -> usize {
        odx_core::engine::TokenStore::len(self)
    }
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("token_store");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for n in SIZES {
        let mut l = live(n);
        group.bench_function(BenchmarkId::new("populate", n), |b| {
            b.iter_custom(|iters| time_populate(&mut l, iters));
        });
        group.bench_function(BenchmarkId::new("resolve_write", n), |b| {
            b.iter_custom(|iters| time_lookup(&mut l, iters));
        });
        group.bench_function(BenchmarkId::new("source_written", n), |b| {
            b.iter_custom(|iters| time_invalidate(&mut l, iters));
        });
        group.bench_function(BenchmarkId::new("expire_sweep_none_due", n), |b| {
            b.iter_custom(|iters| time_sweep(&mut l, iters));
        });
        let stale = l
            .engine
            .resolve_write(EXPIRES_MS, &token_for_key(&l.keys[0]), 0, 1);
        assert_eq!(stale, Err(NtStatus::STATUS_INVALID_TOKEN));
    }
    group.finish();
}

fn main() {
    summary();
    if std::env::args().any(|a| a == "--summary-only") {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
