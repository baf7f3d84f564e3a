//! # odx-pe-harness
//!
//! Runs the cross-built `odxflt.sys` — the real Windows image, not a host build of its sources —
//! inside a Linux x86-64 process: [`pe`] maps it and binds its imports to the `extern "win64"`
//! replacements in [`kernel`] (a mock Filter Manager and pool that answer from an odx-sim
//! volume and record every call); [`driver`] calls `DriverEntry`, instance setup and the
//! captured `IRP_MJ_FILE_SYSTEM_CONTROL` callbacks; [`below`] answers for NTFS and the storage
//! when the image forwards; [`diff`] runs every scenario through the simulator and through the
//! image and compares. docs/pe-harness.md explains what this shows and what it cannot.
//!
//! Linux x86-64 only (the image's code runs natively and is called through the Win64 ABI); on
//! other hosts the crate is empty.

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

pub mod below;
pub mod diff;
pub mod driver;
pub mod faults;
pub mod journal;
pub mod kernel;
pub mod layouts;
pub mod pe;
pub mod port;
pub mod stack;
