//! Token engine with 100 000 live tokens over a plain `HashMap` store (std SipHash, 256-bit
//! random keys): create (populate), lookup (resolve_write), expire (a sweep that finds nothing,
//! and a sweep that forgets every token), plus memory per live token measured with a counting
//! allocator. The simulator's store (crates/odx-sim) adds a per-source index; this one does not,
//! so `source_written` is a full scan here and is not benchmarked.
//!
//! `cargo bench -p odx-core --bench token_engine`

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group};
use odx_core::ByteRange;
use odx_core::engine::{
    EngineLimits, SourceId, TokenEngine, TokenKey, TokenRecord, TokenStore, token_for_key,
};
use odx_core::error::EngineError;
use odx_core::wire::StorageOffloadToken;

struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counter
// has no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` through `alloc`/`realloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const LIVE: usize = 100_000;
const TTL_MS: u32 = 60_000;

/// A HashMap store without a capacity limit.
#[derive(Default)]
struct MapStore {
    map: HashMap<TokenKey, TokenRecord>,
}

impl TokenStore for MapStore {
    fn insert(&mut self, key: TokenKey, record: TokenRecord) -> Result<(), EngineError> {
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

/// splitmix64: deterministic 256-bit keys.
struct Keys(u64);

impl Keys {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn key(&mut self) -> TokenKey {
        let mut k = [0u8; 32];
        for chunk in k.chunks_exact_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        k
    }
}

fn range(i: usize) -> ByteRange {
    ByteRange::new((i as u64) << 20, 1 << 20)
}

/// An engine holding `LIVE` tokens made at t = 0, and their tokens.
fn filled(keys: &mut Keys) -> (TokenEngine<MapStore>, Vec<StorageOffloadToken>) {
    let mut engine = TokenEngine::new(EngineLimits::default(), MapStore::default());
    let mut tokens = Vec::with_capacity(LIVE);
    for i in 0..LIVE {
        let source = SourceId((i % 64) as u64);
        if let Ok(p) = engine.populate(0, source, range(i), TTL_MS, keys.key()) {
            tokens.push(p.token);
        }
    }
    (engine, tokens)
}

fn token_engine(c: &mut Criterion) {
    let mut keys = Keys(0x0DF1_7E57);
    let (mut engine, tokens) = filled(&mut keys);
    assert_eq!(engine.store().len(), LIVE);

    let mut g = c.benchmark_group("token_engine_100k");
    g.bench_function("lookup_resolve_write", |b| {
        // The token comes with the request (hot in cache, as in an FSCTL_OFFLOAD_WRITE buffer);
        // which of the 100k it is strides through the store (not cache-friendly for the map).
        let mut i = 0usize;
        b.iter_batched(
            || {
                i = (i + 7919) % LIVE;
                tokens[i]
            },
            |token| black_box(engine.resolve_write(1, &token, 0, 1 << 20)),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("lookup_resolve_write_hot_1k", |b| {
        // The same store, but only 1024 of its tokens asked for: the map entries stay in cache,
        // which separates the engine's own cost from the memory latency of a 9.5 MB table.
        let mut i = 0usize;
        b.iter_batched(
            || {
                i = (i + 7) % 1024;
                tokens[i]
            },
            |token| black_box(engine.resolve_write(1, &token, 0, 1 << 20)),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("create_populate", |b| {
        // Timed: populate into a store holding 100k..101k tokens; untimed: forget them again.
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(1000);
                let fresh: Vec<TokenKey> = (0..n).map(|_| keys.key()).collect();
                let start = Instant::now();
                for (j, k) in fresh.iter().enumerate() {
                    let _ = black_box(engine.populate(1, SourceId(99), range(j), TTL_MS, *k));
                }
                total += start.elapsed();
                let mut dead = 0usize;
                dead += engine.source_written(SourceId(99), ByteRange::new(0, u64::MAX));
                assert_eq!(dead as u64, n);
                left -= n;
            }
            total
        });
    });
    g.bench_function("expire_sweep_none_expired", |b| {
        b.iter(|| black_box(engine.expire(black_box(2))));
    });
    g.sample_size(10);
    g.bench_function("expire_sweep_all_expired", |b| {
        b.iter_batched(
            || filled(&mut Keys(7)).0,
            |mut e| {
                let n = e.expire(u64::from(TTL_MS));
                assert_eq!(n, LIVE);
                e
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

/// Memory held per live token by a HashMap store of 100k tokens.
fn memory_per_token() {
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let mut keys = Keys(1);
    let mut engine = TokenEngine::new(EngineLimits::default(), MapStore::default());
    for i in 0..LIVE {
        let _ = engine.populate(0, SourceId(1), range(i), TTL_MS, keys.key());
    }
    let held = LIVE_BYTES.load(Ordering::Relaxed) - before;
    let entry = size_of::<TokenKey>() + size_of::<TokenRecord>();
    println!(
        "memory: {LIVE} live tokens hold {held} bytes = {:.1} bytes/token \
         (key {} + record {} = {entry} bytes/entry, the rest is HashMap slack and control bytes)",
        held as f64 / LIVE as f64,
        size_of::<TokenKey>(),
        size_of::<TokenRecord>(),
    );
    black_box(engine);
}

criterion_group!(benches, token_engine);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::args().any(|a| a == "--bench") {
        memory_per_token();
    }
    let _ = token_for_key(&[0; 32]);
}
