//! # odxflt
//!
//! The file-system minifilter that governs offloaded data transfer: it sees every
//! `FSCTL_OFFLOAD_READ` / `FSCTL_OFFLOAD_WRITE` on NTFS and ReFS volumes, asks `odx_core` for a
//! verdict, and obeys it — completing the request with the core's status, or forwarding it and
//! mapping the answer from below with the core's completion table. docs/driver.md describes the
//! data path, IRQLs, context lifetimes and the builds.
//!
//! Layout: everything that needs no kernel is plain Rust with host tests ([`registration`],
//! [`request`], [`volume`], [`volumes`], [`facts`], [`dispatch`], [`lifecycle`]); [`filter`] wires them to the
//! callbacks; all `unsafe` is in [`ffi`].

#![cfg_attr(all(target_os = "windows", not(test)), no_std)]
#![deny(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

pub mod dispatch;
pub mod facts;
pub mod ffi;
pub mod filter;
pub mod lifecycle;
pub mod registration;
pub mod request;
pub mod volume;
pub mod volumes;

#[cfg(test)]
mod inf_tests;
