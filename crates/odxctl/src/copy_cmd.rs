//! `odxctl copy SRC DST`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
#[cfg(not(windows))]
use odx_core::iomgr::FilterSupportedFeaturesMode;
use odx_sim::copy_engine::{
    CopyOptions, CopyReport, DEFAULT_CHUNK, MIN_OFFLOAD_SIZE, StackCopy, copy,
};
use odx_sim::scenario::{Scenario, StepStatus, compare};
use odx_sim::store::StoreStats;
use odx_sim::{DataStore, MemStore, Stack};
#[cfg(not(windows))]
use odx_sim::{HostStore, VolumeConfig};
use serde_json::{Value, json};

use crate::codes::{meaning, status_line};
use crate::text::{bytes, parse_size};
use crate::{CmdResult, Failure};

/// Arguments of `odxctl copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Source: a host path, or a file name of the `--scenario` stack.
    pub src: String,
    /// Destination: a host path (created or truncated), or a file name of the `--scenario` stack.
    pub dst: String,
    /// Bytes per offload write (K, M, G suffixes; default 256M, as CopyFileEx).
    #[arg(long, value_parser = parse_size, default_value_t = DEFAULT_CHUNK)]
    pub chunk: u64,
    /// Do not try offload: ordinary reads and writes only.
    #[arg(long)]
    pub no_offload: bool,
    /// Files smaller than this are copied the classic way (default 256K, as Windows).
    #[arg(long, value_parser = parse_size, default_value_t = MIN_OFFLOAD_SIZE)]
    pub min_offload: u64,
    /// The simulated storage's maximum bytes per token (default 256M).
    #[arg(long, value_parser = parse_size)]
    pub max_transfer: Option<u64>,
    /// Copy between two files of this scenario's stack (its [volume], [[file]] and [[lock]]
    /// tables; steps are not run) instead of host paths.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Compare source and destination afterwards (host copies; scenario copies always compare).
    #[arg(long)]
    pub verify: bool,
}

/// Runs the command.
pub fn run(out: &mut dyn Write, args: &CopyArgs, json: bool) -> CmdResult {
    if args.chunk == 0 {
        return Err(Failure::input("--chunk must be at least one sector"));
    }
    let options = CopyOptions {
        chunk: args.chunk,
        no_offload: args.no_offload,
        min_offload_size: args.min_offload,
        ttl_ms: 0,
    };
    match &args.scenario {
        Some(path) => copy_in_scenario(out, args, path, &options, json),
        #[cfg(windows)]
        None => crate::windows::copy::run(out, args, &options, json),
        #[cfg(not(windows))]
        None => copy_on_host(out, args, &options, json),
    }
}

fn progress_bar(total: u64, json: bool) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if json || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    } else if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
    {
        bar.set_style(style);
    }
    bar
}

fn run_copy<S: DataStore>(
    stack: &mut Stack<S>,
    src: odx_sim::FileId,
    dst: odx_sim::FileId,
    options: &CopyOptions,
    json: bool,
) -> Result<CopyReport, Failure> {
    let total = stack.volume().entry(src).map_or(0, |e| e.end_of_file);
    let bar = progress_bar(total, json);
    let mut ops = StackCopy::open(stack, src, dst).map_err(|e| Failure::input(e.to_string()))?;
    let report =
        copy(&mut ops, options, &mut |done| bar.set_position(done)).map_err(|e| Failure {
            code: 1,
            message: format!("copy failed: {e}"),
        })?;
    bar.finish_and_clear();
    Ok(report)
}

#[cfg(not(windows))]
fn copy_on_host(
    out: &mut dyn Write,
    args: &CopyArgs,
    options: &CopyOptions,
    json: bool,
) -> CmdResult {
    let (src_path, dst_path) = (Path::new(&args.src), Path::new(&args.dst));
    let meta = std::fs::metadata(src_path)
        .map_err(|e| Failure::input(format!("cannot read {}: {e}", src_path.display())))?;
    if !meta.is_file() {
        return Err(Failure::input(format!(
            "{} is not a regular file",
            src_path.display()
        )));
    }
    if let (Ok(a), Ok(b)) = (
        std::fs::canonicalize(src_path),
        std::fs::canonicalize(dst_path),
    ) {
        if a == b {
            return Err(Failure::input(format!(
                "{} and {} are the same file",
                args.src, args.dst
            )));
        }
    }
    let mut config = VolumeConfig::default();
    if let Some(m) = args.max_transfer {
        config.max_transfer = m.max(1);
    }
    let mut stack = Stack::new(
        config,
        HostStore::new(),
        Vec::new(),
        FilterSupportedFeaturesMode::Normal,
    );
    let vol = stack.volume_mut();
    let src = vol
        .add_entry("src")
        .map_err(|e| Failure::input(e.to_string()))?;
    vol.data_mut().attach(src, src_path, false)?;
    vol.adopt_store_length(src)
        .map_err(|e| Failure::input(e.to_string()))?;
    let dst = vol
        .add_entry("dst")
        .map_err(|e| Failure::input(e.to_string()))?;
    vol.data_mut().create_at(dst, dst_path)?;
    let report = run_copy(&mut stack, src, dst, options, json)?;
    let verified = if args.verify {
        Some(matches!(
            compare(&stack, src, 0, dst, 0, report.total_bytes).map_err(|e| Failure::input(e.to_string()))?,
            StepStatus::Status(s) if s.is_success()
        ))
    } else {
        None
    };
    let stats = stack.volume().data().stats();
    emit(
        out,
        &args.src,
        &args.dst,
        DataPath::Store {
            kind: "host-files",
            stats: &stats,
        },
        &report,
        verified,
        json,
    )?;
    Ok(if verified == Some(false) { 1 } else { 0 })
}

fn copy_in_scenario(
    out: &mut dyn Write,
    args: &CopyArgs,
    path: &Path,
    options: &CopyOptions,
    json: bool,
) -> CmdResult {
    let scenario = Scenario::load(path).map_err(|e| Failure::input(e.to_string()))?;
    let mut stack = scenario
        .build(MemStore::new())
        .map_err(|e| Failure::input(e.to_string()))?;
    let id = |name: &str| {
        stack.volume().id_of(name).ok_or_else(|| {
            Failure::input(format!("{}: no [[file]] named {name:?}", path.display()))
        })
    };
    let (src, dst) = (id(&args.src)?, id(&args.dst)?);
    let report = run_copy(&mut stack, src, dst, options, json)?;
    let same = compare(&stack, src, 0, dst, 0, report.total_bytes)
        .map_err(|e| Failure::input(e.to_string()))?;
    let verified = matches!(same, StepStatus::Status(s) if s.is_success());
    let stats = stack.volume().data().stats();
    emit(
        out,
        &args.src,
        &args.dst,
        DataPath::Store {
            kind: "memory",
            stats: &stats,
        },
        &report,
        Some(verified),
        json,
    )?;
    Ok(if verified { 0 } else { 1 })
}

/// Where a copy's bytes went, as the backend that ran it can tell.
#[derive(Clone, Copy, Debug)]
pub(crate) enum DataPath<'a> {
    /// The simulated stack: the store's own offload copy (`copy_file_range(2)` between host
    /// files, a memory copy in memory) and its counters.
    Store {
        /// `memory` or `host-files`.
        kind: &'a str,
        /// The store's counters.
        stats: &'a StoreStats,
    },
    /// Real Windows handles: offload writes are carried out below the file system (the token's
    /// storage); every classic byte is read into odxctl's buffer (`ReadFile`) and written from
    /// it (`WriteFile`).
    #[cfg_attr(
        not(windows),
        allow(
            dead_code,
            reason = "built by the Windows backend; rendered by the tests here"
        )
    )]
    Windows {
        /// Bytes `WriteFile` wrote from odxctl's buffer.
        through_buffer: u64,
    },
}

impl DataPath<'_> {
    fn backend(&self) -> &str {
        match self {
            Self::Store { kind, .. } => kind,
            Self::Windows { .. } => "windows",
        }
    }

    /// Bytes of the classic copy that passed through odxctl's buffer.
    fn through_odxctl(&self, r: &CopyReport) -> u64 {
        match self {
            Self::Store { .. } => r.fallback_bytes,
            Self::Windows { through_buffer } => *through_buffer,
        }
    }

    fn offload_text(&self, r: &CopyReport) -> String {
        match self {
            Self::Store { kind, stats } if *kind == "host-files" => format!(
                "offload writes {} inside the store (copy_file_range on host files) and {} through the store's buffer{}",
                bytes(stats.copies.in_kernel),
                bytes(stats.copies.through_user_buffer),
                stats
                    .kernel_copy_fallback
                    .as_ref()
                    .map_or_else(String::new, |w| format!(" ({w})"))
            ),
            Self::Store { stats, .. } => format!(
                "offload writes {} inside the in-memory store",
                bytes(stats.copies.in_kernel + stats.copies.through_user_buffer)
            ),
            Self::Windows { .. } => format!(
                "offload writes {} moved below the file system by the token's storage, none of it through odxctl",
                bytes(r.offloaded_bytes)
            ),
        }
    }
}

pub(crate) fn emit(
    out: &mut dyn Write,
    src: &str,
    dst: &str,
    path: DataPath<'_>,
    r: &CopyReport,
    verified: Option<bool>,
    json: bool,
) -> std::io::Result<()> {
    let backend = path.backend();
    let through_odxctl = path.through_odxctl(r);
    if json {
        let fallback = r.fallback.map_or(Value::Null, |f| {
            json!({
                "reason": f.to_string(),
                "status": f.status().map(|s| s.to_string()),
                "ntstatus": f.status().map(|s| format!("0x{:08X}", s.0)),
                "win32": f.status().and_then(|s| s.to_win32()).map(|w| w.0),
                "at": r.fallback_at,
            })
        });
        let (in_kernel, user_buffer, kernel_fallback) = match path {
            DataPath::Store { stats, .. } => (
                Value::from(stats.copies.in_kernel),
                Value::from(stats.copies.through_user_buffer),
                json!(stats.kernel_copy_fallback),
            ),
            DataPath::Windows { .. } => (Value::Null, Value::Null, Value::Null),
        };
        let doc = json!({
            "src": src,
            "dst": dst,
            "backend": backend,
            "total_bytes": r.total_bytes,
            "offloaded_bytes": r.offloaded_bytes,
            "zero_bytes": r.zero_bytes,
            "fallback_bytes": r.fallback_bytes,
            "offloaded_percent": r.offloaded_percent(),
            "fallback": fallback,
            "offload_reads": r.offload_reads,
            "offload_writes": r.offload_writes,
            "truncated_reads": r.truncated_reads,
            "truncated_writes": r.truncated_writes,
            "elapsed_ms": r.elapsed.as_secs_f64() * 1000.0,
            "throughput_bytes_per_s": r.throughput(),
            "data_path": {
                "offload": path.offload_text(r),
                "through_odxctl_buffer_bytes": through_odxctl,
            },
            "in_kernel_bytes": in_kernel,
            "user_buffer_bytes": user_buffer,
            "kernel_copy_fallback": kernel_fallback,
            "verified": verified,
        });
        return writeln!(out, "{doc}");
    }
    writeln!(
        out,
        "copied {src} -> {dst}: {} in {:.3} s ({}/s) on the {backend} stack",
        bytes(r.total_bytes),
        r.elapsed.as_secs_f64(),
        bytes(r.throughput() as u64)
    )?;
    writeln!(
        out,
        "  offloaded      {} bytes ({:.1}%): {} offload read(s), {} offload write(s), {} truncated read(s), {} truncated write(s)",
        r.offloaded_bytes + r.zero_bytes,
        r.offloaded_percent(),
        r.offload_reads,
        r.offload_writes,
        r.truncated_reads,
        r.truncated_writes
    )?;
    if r.zero_bytes > 0 {
        writeln!(
            out,
            "                 of which {} bytes known zero (ALL_ZERO_BEYOND_CURRENT_RANGE), not transferred",
            r.zero_bytes
        )?;
    }
    match (r.fallback, r.fallback_at) {
        (Some(cause), Some(at)) => {
            writeln!(
                out,
                "  classic copy   {} bytes from offset {at}: {cause}",
                r.fallback_bytes
            )?;
            if let Some(status) = cause.status() {
                writeln!(
                    out,
                    "                 {}: {}",
                    status_line(status),
                    meaning(status)
                )?;
            }
        }
        _ => writeln!(out, "  classic copy   0 bytes")?,
    }
    writeln!(
        out,
        "  data movement  {}; classic copy {} read into odxctl's buffer and written from it{}",
        path.offload_text(r),
        bytes(through_odxctl),
        if matches!(path, DataPath::Windows { .. }) {
            " (ReadFile/WriteFile)"
        } else {
            ""
        }
    )?;
    if let Some(v) = verified {
        writeln!(
            out,
            "  verified       {}",
            if v { "byte-identical" } else { "DIFFERENT" }
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use odx_core::NtStatus;
    use odx_sim::copy_engine::FallbackCause;

    use super::*;

    /// A copy that fell back at offset 0 because the volume does not support offload, as
    /// Windows answers on storage without ODX.
    fn fell_back(total: u64) -> CopyReport {
        CopyReport {
            total_bytes: total,
            fallback_bytes: total,
            fallback_at: Some(0),
            fallback: Some(FallbackCause::ReadFailed(NtStatus::STATUS_NOT_SUPPORTED)),
            ..CopyReport::default()
        }
    }

    fn render(path: DataPath<'_>, r: &CopyReport, json: bool) -> String {
        let mut out = Vec::new();
        emit(&mut out, "a", "b", path, r, Some(true), json).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_windows_summary_says_every_classic_byte_went_through_odxctls_buffer() {
        let r = fell_back(64 << 20);
        let text = render(
            DataPath::Windows {
                through_buffer: 64 << 20,
            },
            &r,
            false,
        );
        assert!(text.contains("on the windows stack"), "{text}");
        assert!(
            text.contains("classic copy 64.0 MiB read into odxctl's buffer and written from it (ReadFile/WriteFile)"),
            "{text}"
        );
        assert!(
            text.contains("offload writes 0 B moved below the file system"),
            "{text}"
        );
        assert!(!text.contains("copy_file_range"), "{text}");
        let v: Value = serde_json::from_str(&render(
            DataPath::Windows {
                through_buffer: 64 << 20,
            },
            &r,
            true,
        ))
        .unwrap();
        assert_eq!(v["data_path"]["through_odxctl_buffer_bytes"], 64 << 20);
        assert_eq!(v["in_kernel_bytes"], Value::Null);
        assert_eq!(v["backend"], "windows");
    }

    #[test]
    fn the_host_files_summary_names_copy_file_range() {
        let stats = StoreStats::default();
        let text = render(
            DataPath::Store {
                kind: "host-files",
                stats: &stats,
            },
            &fell_back(4096),
            false,
        );
        assert!(
            text.contains("inside the store (copy_file_range on host files)"),
            "{text}"
        );
        assert!(
            text.contains("classic copy 4.0 KiB read into odxctl's buffer"),
            "{text}"
        );
    }
}
