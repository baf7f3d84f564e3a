//! `cargo test` guard: odx-core's request path makes no heap allocation. The program (a counting
//! global allocator around 10 000 calls of each entry point) is benches/support/alloc_program.rs,
//! shared with `cargo bench -p odx-core --bench alloc_count`; it exits non-zero on any allocation.

#[path = "../benches/support/alloc_program.rs"]
mod alloc_program;
#[path = "../benches/support/mod.rs"]
mod support;

fn main() {
    alloc_program::run();
}
