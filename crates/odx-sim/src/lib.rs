//! # odx-sim
//!
//! A user-mode model of one Windows volume stack that runs odx-core's logic exactly where the
//! driver runs it:
//!
//! ```text
//!  caller ──► I/O manager (handle access, filters' SupportedFeatures)   stack.rs, odx_core::iomgr
//!          ──► odxflt (facts → decide → complete | forward → map | pass) odxflt.rs, odx_core::{validate, complete}
//!          ──► NTFS's MS-FSA checks (incl. the valid-data-length rule)  ntfs.rs
//!          ──► NTFS-like volume (executes what passes)                  volume.rs
//!          ──► disk: copy-offload property (instance setup)             disk.rs, odx_core::storage
//!          ──► storage token engine (populate / write using token)      odx_core::engine + tokens.rs
//!          ──► data: memory or host files (copy_file_range)             store.rs
//! ```
//!
//! [`scenario`] runs scenario files against the stack; [`copy_engine`] is the Windows copy
//! engine's offload algorithm over any [`copy_engine::CopyOps`].

pub mod copy_engine;
pub mod disk;
pub mod ntfs;
pub mod odxflt;
pub mod scenario;
pub mod stack;
pub mod store;
pub mod tokens;
pub mod volume;

pub use stack::{DecidedBy, FsctlOutcome, HandleId, ReadResult, Requester, Stack};
pub use store::{DataStore, FileId, HostStore, MemStore};
pub use volume::{SimError, Volume, VolumeConfig};
