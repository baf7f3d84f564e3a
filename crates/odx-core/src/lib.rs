//! # odx-core
//!
//! Everything odxflt decides about an offloaded data transfer (ODX) request that can be decided
//! without a kernel: the wire layouts, status codes and their Win32 mapping, validation in the
//! documented order, the verdict, the completion mapping and the token engine model.
//!
//! The data path follows the modules: [`wire`] (bytes → structures) → [`validate`] (structures +
//! [`facts`] → [`verdict`]) → [`complete`] (answer from below → final status) → [`engine`] (what
//! the storage does with a forwarded request).
//!
//! `no_std`, no `unsafe`, no allocation; nothing here panics on any input (the lints deny the
//! panicking constructs, the property tests and fuzz targets check it).

#![no_std]
#![forbid(unsafe_code)]
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

#[cfg(test)]
extern crate std;

pub mod complete;
pub mod ctl;
pub mod engine;
pub mod error;
pub mod facts;
pub mod filter;
pub mod flags;
pub mod governance;
pub mod iomgr;
pub mod lock;
pub mod policy;
pub mod port;
pub mod rules;
pub mod serve;
pub mod stats;
pub mod status;
pub mod storage;
pub mod validate;
pub mod verdict;
pub mod wire;

pub use ctl::{FSCTL_OFFLOAD_READ, FSCTL_OFFLOAD_WRITE, OffloadOp};
pub use error::{CodeError, EngineError, WireError};
pub use facts::{
    ByteRange, FactKind, FileSystemKind, HandleFacts, LockIntent, OffloadFacts, SectorSize,
    StreamKind, StreamSizes, VolumeFacts,
};
pub use rules::Rules;
pub use status::{NtStatus, StatusInfo, Win32Error};
pub use validate::{Check, Decision, OffloadRequest, decide, decide_read, decide_write};
pub use verdict::{
    Answer, AnswerToken, Completion, ForwardRead, ForwardWrite, OffloadVerdict, ReadAnswer,
    ReadContext, ReadVerdict, Verdict, WriteAnswer, WriteContext, WriteVerdict,
};
pub use wire::WireStruct;
