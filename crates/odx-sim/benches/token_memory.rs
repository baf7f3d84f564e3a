//! Memory per live token of the simulator's store (`MapStore`: the key → record map plus the
//! per-source index), measured with a counting global allocator: heap bytes live after making
//! `n` tokens, minus before, divided by `n`. Also the allocations per populate.
//!
//! `cargo bench -p odx-sim --bench token_memory`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use odx_core::engine::{TOKEN_KEY_LEN, TokenRecord};

mod support;
use support::{Keys, empty, fill};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counters
// do not affect the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` was returned by `System` for this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        CALLS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    // Cargo passes `--bench`; nothing to parse.
    println!(
        "payload per token: key {TOKEN_KEY_LEN} B + record {} B (+ key {TOKEN_KEY_LEN} B in the per-source index)",
        size_of::<TokenRecord>()
    );
    println!(
        "{:>9} {:>14} {:>16} {:>18}",
        "live", "heap bytes", "bytes / token", "allocs / populate"
    );
    for n in [1_000usize, 10_000, 100_000, 1_000_000] {
        let mut engine = empty();
        let mut keys = Keys(n as u64);
        // Keys are generated into a Vec by `fill`: take its size out of the figure.
        let before = LIVE.load(Ordering::Relaxed);
        let calls = CALLS.load(Ordering::Relaxed);
        let made = fill(&mut engine, n, &mut keys);
        let after = LIVE.load(Ordering::Relaxed);
        let calls = CALLS.load(Ordering::Relaxed) - calls;
        let key_vec = made.capacity() * TOKEN_KEY_LEN;
        let bytes = after - before - key_vec;
        println!(
            "{n:>9} {bytes:>14} {:>16.1} {:>18.2}",
            bytes as f64 / n as f64,
            calls as f64 / n as f64
        );
        drop(made);
        drop(engine);
    }
}
