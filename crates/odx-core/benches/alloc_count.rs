//! Allocation count on the request path (goal: 0). A counting global allocator wraps the system
//! allocator; the control-code test, pre-operation (policy, validation, verdict, rewrite),
//! decide_read/decide_write, complete_read/complete_write and post-operation run many times on
//! forwarding, refused and malformed requests, and every allocation in between is counted.
//! Exits non-zero when one is found. tests/alloc_free.rs runs the same program
//! (benches/support/alloc_program.rs), so `cargo test` fails when the request path allocates.
//!
//! `cargo bench -p odx-core --bench alloc_count`

#[path = "support/alloc_program.rs"]
mod alloc_program;
#[path = "support/mod.rs"]
mod support;

fn main() {
    alloc_program::run();
}
