//! The allocation-count program shared by the `alloc_count` bench and the `alloc_free` test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use odx_core::complete::{complete_read, complete_write};
use odx_core::filter::{
    BufferedRequest, LowerAnswer, PreOp, StorageAt, post_operation, pre_operation,
};
use odx_core::policy::PolicyMode;
use odx_core::stats::VolumeStats;
use odx_core::storage::StorageState;
use odx_core::wire::{OffloadReadOutput, OffloadWriteOutput, StorageOffloadToken};
use odx_core::{
    NtStatus, OffloadOp, OffloadRequest, ReadContext, Rules, SectorSize, WriteContext, decide_read,
    decide_write,
};
use zerocopy::IntoBytes;

use super::support::{FSCTL_SET_SPARSE, MemFacts, read_input, write_input};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees hold; the counter has no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through `alloc`/`realloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ROUNDS: u64 = 10_000;

/// Runs `f` ROUNDS times and returns the allocations made meanwhile.
fn count(mut f: impl FnMut()) -> u64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..ROUNDS {
        f();
    }
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

/// Counts and prints; exits 1 when the request path allocated, 2 when the counter is broken.
pub fn run() {
    // Everything the loops use is allocated here, before counting starts.
    let read = read_input();
    let write = write_input();
    let short = vec![0u8; 7];
    let facts = MemFacts::forwarding();
    let mut refusing = facts;
    refusing.sizes.delete_pending = true;
    let rules = Rules::DOCUMENTED;
    let stats = VolumeStats::new();
    let mut buffer = vec![0u8; 544];
    let read_answer = OffloadReadOutput::new(
        odx_core::flags::OffloadReadFlags::empty(),
        1 << 20,
        StorageOffloadToken::zero_data(),
    );
    let read_answer = read_answer.as_bytes().to_vec();
    let write_answer = OffloadWriteOutput::new(1 << 20).as_bytes().to_vec();
    let read_ctx = ReadContext {
        requested_length: 1 << 20,
        forwarded_length: 1 << 20,
        zero_beyond_forwarded: false,
        sector_size: SectorSize::DEFAULT,
    };
    let write_ctx = WriteContext {
        requested_length: 1 << 20,
        forwarded_length: 1 << 20,
        sector_size: SectorSize::DEFAULT,
    };

    // The counter itself works: one Vec allocation per call is counted as one.
    let sanity = count(|| {
        black_box(Vec::<u8>::with_capacity(black_box(8)));
    });
    if sanity != ROUNDS {
        eprintln!("counting allocator broken: {sanity} allocations counted for {ROUNDS}");
        std::process::exit(2);
    }

    let mut rows: Vec<(&str, u64)> = Vec::new();
    rows.push((
        "from_fsctl(other code)",
        count(|| {
            black_box(OffloadOp::from_fsctl(black_box(FSCTL_SET_SPARSE)));
        }),
    ));
    for (name, input, f) in [
        ("decide_read forward", &read, facts),
        ("decide_read refused", &read, refusing),
        ("decide_read short input", &short, facts),
    ] {
        let n = count(|| {
            let mut f = f;
            black_box(decide_read(
                OffloadRequest {
                    input,
                    output_len: 528,
                },
                &mut f,
                &rules,
            ));
        });
        rows.push((name, n));
    }
    for (name, input, f) in [
        ("decide_write forward", &write, facts),
        ("decide_write refused", &write, refusing),
        ("decide_write short input", &short, facts),
    ] {
        let n = count(|| {
            let mut f = f;
            black_box(decide_write(
                OffloadRequest {
                    input,
                    output_len: 16,
                },
                &mut f,
                &rules,
            ));
        });
        rows.push((name, n));
    }
    rows.push((
        "complete_read success",
        count(|| {
            black_box(complete_read(
                &read_ctx,
                NtStatus::STATUS_SUCCESS,
                &read_answer,
                &rules,
            ));
        }),
    ));
    rows.push((
        "complete_write failure",
        count(|| {
            black_box(complete_write(
                &write_ctx,
                NtStatus::STATUS_INVALID_TOKEN,
                &write_answer,
                &rules,
            ));
        }),
    ));
    let storage = StorageState::default();
    for mode in PolicyMode::ALL {
        let n = count(|| {
            buffer.copy_from_slice(&write);
            let mut f = facts;
            let request = BufferedRequest {
                op: OffloadOp::Write,
                buffer: &mut buffer,
                input_len: 544,
                output_len: 16,
            };
            let pre = pre_operation(request, mode, &mut f, &rules, Some(&stats));
            if let PreOp::Forward { context, .. } = pre {
                buffer[..16].copy_from_slice(&write_answer);
                let answer = LowerAnswer {
                    status: NtStatus::STATUS_SUCCESS,
                    information: 16,
                    buffer: &mut buffer,
                    output_len: 16,
                };
                // A refusal would start the back-off; a success learns nothing: both allocate
                // nothing.
                let at = StorageAt {
                    state: &storage,
                    now: 1,
                };
                black_box(post_operation(
                    &context,
                    answer,
                    &rules,
                    Some(&stats),
                    Some(at),
                    None,
                ));
            }
        });
        let label = match mode {
            PolicyMode::Enforce => "pre+post_operation enforce",
            PolicyMode::Monitor => "pre+post_operation monitor",
            PolicyMode::Veto => "pre_operation veto",
        };
        rows.push((label, n));
    }

    let mut total = 0;
    println!("allocations on the request path ({ROUNDS} calls each):");
    for (name, n) in &rows {
        println!("  {name:<28} {n}");
        total += n;
    }
    println!("total: {total} (goal: 0)");
    if total != 0 {
        std::process::exit(1);
    }
}
