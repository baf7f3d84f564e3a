//! Panic probe: `extern "C"` entry points over odx-core's request path (control-code test,
//! pre-operation with validation and verdict, post-operation with the completion mapping, the
//! parsers, the port message parser). Every input comes through a raw pointer, so nothing is
//! constant-folded; after LTO the object holds exactly the code these paths can reach. If that
//! code can panic, `core::panicking::*` (or another panic entry) is in the object, and
//! scripts/panic-check.sh lists the call sites.
//!
//! The panic handler never returns and is not itself a panic call site: it only exists because
//! a `no_std` cdylib must have one.

#![no_std]

use core::slice;

use odx_core::complete::{complete_read, complete_write};
use odx_core::filter::{
    BufferedRequest, LowerAnswer, PostContext, PreEnv, PreOp, StorageAt, post_operation,
    pre_operation, pre_operation_in,
};
use odx_core::flags::{FileAttributes, StreamMarkers, VolumeFlags};
use odx_core::governance::{
    Governance, Journal, JournalAt, JournalSeq, RuleSet, VolumeNames, text_lines,
};
use odx_core::iomgr::RequestorMode;
use odx_core::policy::PolicyMode;
use odx_core::port::governance::{write_journal_page, write_rules_text};
use odx_core::port::{PortRequest, parse_request};
use odx_core::rules::{LengthAlignment, TinyFile};
use odx_core::stats::VolumeStats;
use odx_core::storage::{StorageCapability, StorageState};
use odx_core::wire::{
    OffloadReadInput, OffloadReadOutput, OffloadWriteInput, OffloadWriteOutput, StorageOffloadToken,
};
use odx_core::{
    ByteRange, FileSystemKind, HandleFacts, LockIntent, NtStatus, OffloadFacts, OffloadOp,
    OffloadRequest, ReadContext, Rules, SectorSize, StreamKind, StreamSizes, Verdict, VolumeFacts,
    WireStruct, WriteContext, decide_read, decide_write,
};

#[panic_handler]
fn on_panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

/// Raw facts, as a driver holds them before wrapping them in the core's types.
#[repr(C)]
pub struct RawFacts {
    /// 0 NTFS, 1 ReFS, other: anything else.
    pub file_system: u32,
    /// Logical sector size (not a power of two → 512).
    pub sector_size: u32,
    /// `VolumeFlags` bits.
    pub volume_flags: u32,
    /// Granted access bits: ignored (odxflt makes no access check); kept for the layout.
    pub granted: u32,
    /// Non-zero: handle cleaned up.
    pub closed: u32,
    /// File attributes.
    pub attributes: u32,
    /// Stream markers.
    pub markers: u32,
    /// Non-zero: delete pending.
    pub delete_pending: u32,
    /// Non-zero: the lock query reports a conflict.
    pub lock_conflict: u32,
    /// Which query fails (0..=4), other: none.
    pub failing: u32,
    /// Its status.
    pub failure: u32,
    /// Padding.
    pub reserved: u32,
    /// Maximum file size.
    pub max_file_size: u64,
    /// End of file.
    pub end_of_file: u64,
    /// Valid data length.
    pub valid_data_length: u64,
}

/// Raw rules.
#[repr(C)]
pub struct RawRules {
    /// `short_buffer`.
    pub short_buffer: u32,
    /// 0 strict, other: except at end of file.
    pub copy_length_alignment: u32,
    /// `write_beyond_vdl`.
    pub write_beyond_vdl: u32,
    /// 0 none, 1 below sector, other: below page.
    pub tiny_file: u32,
    /// `dismounted_write`.
    pub dismounted_write: u32,
    /// `broken_lower_contract`.
    pub broken_lower_contract: u32,
}

fn rules(raw: &RawRules) -> Rules {
    Rules {
        short_buffer: NtStatus(raw.short_buffer),
        copy_length_alignment: if raw.copy_length_alignment == 0 {
            LengthAlignment::Strict
        } else {
            LengthAlignment::ExceptAtEndOfFile
        },
        write_beyond_vdl: NtStatus(raw.write_beyond_vdl),
        tiny_file: match raw.tiny_file {
            0 => TinyFile::NoRule,
            1 => TinyFile::BelowSector,
            _ => TinyFile::BelowPage,
        },
        dismounted_write: NtStatus(raw.dismounted_write),
        broken_lower_contract: NtStatus(raw.broken_lower_contract),
    }
}

struct Facts<'a>(&'a RawFacts);

impl Facts<'_> {
    fn answer<T>(&self, index: u32, value: T) -> Result<T, NtStatus> {
        if self.0.failing == index {
            Err(NtStatus(self.0.failure))
        } else {
            Ok(value)
        }
    }
}

impl OffloadFacts for Facts<'_> {
    fn volume(&mut self) -> Result<VolumeFacts, NtStatus> {
        let raw = self.0;
        self.answer(
            0,
            VolumeFacts {
                file_system: match raw.file_system {
                    0 => FileSystemKind::Ntfs,
                    1 => FileSystemKind::Refs,
                    _ => FileSystemKind::Other,
                },
                sector_size: SectorSize::new(raw.sector_size).unwrap_or_default(),
                flags: VolumeFlags::from_bits_retain(raw.volume_flags),
                max_file_size: raw.max_file_size,
            },
        )
    }
    fn handle(&mut self) -> Result<HandleFacts, NtStatus> {
        let raw = self.0;
        self.answer(
            1,
            HandleFacts {
                closed: raw.closed != 0,
            },
        )
    }
    fn stream_kind(&mut self) -> Result<StreamKind, NtStatus> {
        let raw = self.0;
        self.answer(
            2,
            StreamKind {
                attributes: FileAttributes::from_bits_retain(raw.attributes),
                markers: StreamMarkers::from_bits_retain(raw.markers),
            },
        )
    }
    fn stream_sizes(&mut self) -> Result<StreamSizes, NtStatus> {
        let raw = self.0;
        self.answer(
            3,
            StreamSizes {
                end_of_file: raw.end_of_file,
                valid_data_length: raw.valid_data_length,
                delete_pending: raw.delete_pending != 0,
            },
        )
    }
    fn lock_conflict(&mut self, _range: ByteRange, _intent: LockIntent) -> Result<bool, NtStatus> {
        let raw = self.0;
        self.answer(4, raw.lock_conflict != 0)
    }
    fn process_image(&mut self) -> Option<&[u16]> {
        None
    }
    fn file_path(&mut self) -> Option<&[u16]> {
        None
    }
    fn known_names(&self) -> (Option<&[u16]>, Option<&[u16]>) {
        (None, None)
    }
}

/// Raw post-operation context (what the driver keeps as the completion context).
#[repr(C)]
pub struct RawContext {
    /// 0 read, 1 write, other: observe.
    pub kind: u32,
    /// Non-zero: `zero_beyond_forwarded`.
    pub zero_beyond_forwarded: u32,
    /// Sector size.
    pub sector_size: u32,
    /// Observe: 0 read, other write.
    pub observe_write: u32,
    /// Requested length.
    pub requested_length: u64,
    /// Forwarded length.
    pub forwarded_length: u64,
}

fn context(raw: &RawContext) -> PostContext {
    let sector_size = SectorSize::new(raw.sector_size).unwrap_or_default();
    match raw.kind {
        0 => PostContext::Read(ReadContext {
            requested_length: raw.requested_length,
            forwarded_length: raw.forwarded_length,
            zero_beyond_forwarded: raw.zero_beyond_forwarded != 0,
            sector_size,
        }),
        1 => PostContext::Write(WriteContext {
            requested_length: raw.requested_length,
            forwarded_length: raw.forwarded_length,
            sector_size,
        }),
        _ => PostContext::Observe {
            op: if raw.observe_write == 0 {
                OffloadOp::Read
            } else {
                OffloadOp::Write
            },
            requested_length: raw.requested_length,
        },
    }
}

/// Pre-operation as the driver runs it: the control-code test, then policy, validation, verdict
/// and the buffer rewrite. Returns the status of a completion, or a marker: 1 = forward, 2 =
/// forward with the input rewritten, 3 = pass through.
///
/// # Safety
/// `buffer` is valid for `buffer_len` bytes; `facts`, `rules` and `stats` are valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn odx_probe_pre_operation(
    code: u32,
    mode: u32,
    buffer: *mut u8,
    buffer_len: usize,
    input_len: usize,
    output_len: usize,
    facts: *const RawFacts,
    raw_rules: *const RawRules,
    stats: *const VolumeStats,
    information: *mut usize,
) -> u32 {
    let Some(op) = OffloadOp::from_fsctl(code) else {
        return u32::MAX;
    };
    // SAFETY: the caller guarantees `buffer` is valid for `buffer_len` bytes.
    let buffer = unsafe { slice::from_raw_parts_mut(buffer, buffer_len) };
    // SAFETY: the caller guarantees `facts` points to a RawFacts.
    let facts = unsafe { &*facts };
    // SAFETY: the caller guarantees `raw_rules` points to a RawRules.
    let rules = rules(unsafe { &*raw_rules });
    // SAFETY: the caller guarantees `stats` points to a VolumeStats.
    let stats = unsafe { &*stats };
    let mode = PolicyMode::from_u32(mode).unwrap_or_default();
    let request = BufferedRequest {
        op,
        buffer,
        input_len,
        output_len,
    };
    match pre_operation(request, mode, &mut Facts(facts), &rules, Some(stats)) {
        PreOp::Complete {
            status,
            information: info,
            ..
        } => {
            // SAFETY: the caller guarantees `information` is writable.
            unsafe { information.write(info) };
            status.0
        }
        PreOp::Forward {
            input_rewritten, ..
        } => u32::from(input_rewritten) + 1,
        PreOp::PassThrough { .. } => 3,
    }
}

/// Post-operation: the completion mapping and the output rewrite.
///
/// # Safety
/// As for [`odx_probe_pre_operation`]; `ctx` is valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn odx_probe_post_operation(
    ctx: *const RawContext,
    below: u32,
    below_information: usize,
    buffer: *mut u8,
    buffer_len: usize,
    output_len: usize,
    raw_rules: *const RawRules,
    stats: *const VolumeStats,
    information: *mut usize,
) -> u32 {
    // SAFETY: the caller guarantees `buffer` is valid for `buffer_len` bytes.
    let buffer = unsafe { slice::from_raw_parts_mut(buffer, buffer_len) };
    // SAFETY: the caller guarantees `ctx` points to a RawContext.
    let ctx = context(unsafe { &*ctx });
    // SAFETY: the caller guarantees `raw_rules` points to a RawRules.
    let rules = rules(unsafe { &*raw_rules });
    // SAFETY: the caller guarantees `stats` points to a VolumeStats.
    let stats = unsafe { &*stats };
    let answer = LowerAnswer {
        status: NtStatus(below),
        information: below_information,
        buffer,
        output_len,
    };
    // The storage's learning and the journal's completion are on the path too: a refusal from
    // below starts a back-off, a forwarded record is completed.
    let storage = StorageState::new(StorageCapability::Unknown, below);
    let journal = Journal::<4>::new();
    let (status, info) = post_operation(
        &ctx,
        answer,
        &rules,
        Some(stats),
        Some(StorageAt {
            state: &storage,
            now: u64::from(below),
        }),
        Some(JournalSeq {
            log: &journal,
            seq: below_information as u64,
        }),
    );
    // SAFETY: the caller guarantees `information` is writable.
    unsafe { information.write(info) };
    status.0
}

/// Pre-operation with governance rules parsed from `text` (the port's strict loader, then the
/// registry's lenient one), names from `process` / `path`, and a journal; then a journal page
/// through the port's reply writer.
///
/// # Safety
/// Every pointer valid for its length; `facts`, `raw_rules`, `stats` point to their types.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn odx_probe_governed(
    code: u32,
    mode: u32,
    text: *const u8,
    text_len: usize,
    names: *const u16,
    names_len: usize,
    buffer: *mut u8,
    buffer_len: usize,
    input_len: usize,
    output_len: usize,
    facts: *const RawFacts,
    raw_rules: *const RawRules,
    stats: *const VolumeStats,
    reply: *mut u8,
    reply_len: usize,
) -> u32 {
    static JOURNAL: Journal<8> = Journal::new();
    let Some(op) = OffloadOp::from_fsctl(code) else {
        return u32::MAX;
    };
    // SAFETY: the caller guarantees each pointer is valid for its length and type.
    let (text, names, buffer, facts, raw_rules, stats, reply) = unsafe {
        (
            slice::from_raw_parts(text, text_len),
            slice::from_raw_parts(names, names_len),
            slice::from_raw_parts_mut(buffer, buffer_len),
            &*facts,
            &*raw_rules,
            &*stats,
            slice::from_raw_parts_mut(reply, reply_len),
        )
    };
    let text = core::str::from_utf8(text).unwrap_or_default();
    let mut set = RuleSet::new();
    if set.try_load_lines(text_lines(text)).is_err() {
        let _ = set.load_lines(text_lines(text));
    }
    let (process, path) = names.split_at(names.len() / 2);
    let mut facts = Named {
        facts: Facts(facts),
        process,
        path,
    };
    let rules = rules(raw_rules);
    let request = BufferedRequest {
        op,
        buffer,
        input_len,
        output_len,
    };
    let env = PreEnv {
        mode: PolicyMode::from_u32(mode).unwrap_or_default(),
        rules: &rules,
        stats: Some(stats),
        governance: Some(Governance {
            rules: &set,
            volume: VolumeNames {
                device: path,
                dos: process,
                guid: &[],
            },
            requestor: if mode & 0x100 == 0 {
                RequestorMode::User
            } else {
                RequestorMode::Kernel
            },
        }),
        journal: Some(JournalAt {
            log: &JOURNAL,
            time: u64::from(code),
            volume: mode,
            process_id: u64::from(mode),
            names: mode & 0x200 != 0,
        }),
    };
    let pre = pre_operation_in(request, &mut facts, &env);
    let page = write_journal_page(&JOURNAL, u64::from(code), mode, reply).unwrap_or(0);
    let text_reply = write_rules_text(&set, reply).unwrap_or(0);
    let verdict = match pre {
        PreOp::Complete { status, .. } => status.0,
        PreOp::Forward { .. } => 1,
        PreOp::PassThrough { .. } => 3,
    };
    verdict ^ u32::try_from(page ^ text_reply).unwrap_or(0)
}

struct Named<'a> {
    facts: Facts<'a>,
    process: &'a [u16],
    path: &'a [u16],
}

impl OffloadFacts for Named<'_> {
    fn volume(&mut self) -> Result<VolumeFacts, NtStatus> {
        self.facts.volume()
    }
    fn handle(&mut self) -> Result<HandleFacts, NtStatus> {
        self.facts.handle()
    }
    fn stream_kind(&mut self) -> Result<StreamKind, NtStatus> {
        self.facts.stream_kind()
    }
    fn stream_sizes(&mut self) -> Result<StreamSizes, NtStatus> {
        self.facts.stream_sizes()
    }
    fn lock_conflict(&mut self, range: ByteRange, intent: LockIntent) -> Result<bool, NtStatus> {
        self.facts.lock_conflict(range, intent)
    }
    fn process_image(&mut self) -> Option<&[u16]> {
        (!self.process.is_empty()).then_some(self.process)
    }
    fn file_path(&mut self) -> Option<&[u16]> {
        (!self.path.is_empty()).then_some(self.path)
    }
    fn known_names(&self) -> (Option<&[u16]>, Option<&[u16]>) {
        (
            (!self.process.is_empty()).then_some(self.process),
            (!self.path.is_empty()).then_some(self.path),
        )
    }
}

/// `decide_read` / `decide_write` directly, writing the completion output or the forwarded
/// input into `out`.
///
/// # Safety
/// `input` valid for `input_len` bytes, `out` for `out_len` bytes; `facts`, `rules` valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn odx_probe_decide(
    write: u32,
    input: *const u8,
    input_len: usize,
    output_len: usize,
    facts: *const RawFacts,
    raw_rules: *const RawRules,
    out: *mut u8,
    out_len: usize,
) -> u32 {
    // SAFETY: the caller guarantees `input` is valid for `input_len` bytes.
    let input = unsafe { slice::from_raw_parts(input, input_len) };
    // SAFETY: the caller guarantees `out` is valid for `out_len` bytes.
    let out = unsafe { slice::from_raw_parts_mut(out, out_len) };
    // SAFETY: the caller guarantees `facts` points to a RawFacts.
    let mut facts = Facts(unsafe { &*facts });
    // SAFETY: the caller guarantees `raw_rules` points to a RawRules.
    let rules = rules(unsafe { &*raw_rules });
    let request = OffloadRequest { input, output_len };
    if write == 0 {
        match decide_read(request, &mut facts, &rules).verdict {
            Verdict::Complete(c) => {
                c.write_output(out);
                c.status.0
            }
            Verdict::Forward(f) => {
                if f.rewrite(out) {
                    1
                } else {
                    2
                }
            }
            Verdict::PassThrough => 3,
        }
    } else {
        match decide_write(request, &mut facts, &rules).verdict {
            Verdict::Complete(c) => {
                c.write_output(out);
                c.status.0
            }
            Verdict::Forward(f) => {
                if f.rewrite(out) {
                    1
                } else {
                    2
                }
            }
            Verdict::PassThrough => 3,
        }
    }
}

/// `complete_read` / `complete_write` directly.
///
/// # Safety
/// `bytes` valid for `len` bytes, `out` for `out_len`; `ctx`, `rules` valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn odx_probe_complete(
    ctx: *const RawContext,
    below: u32,
    bytes: *const u8,
    len: usize,
    raw_rules: *const RawRules,
    out: *mut u8,
    out_len: usize,
) -> u32 {
    // SAFETY: the caller guarantees `bytes` is valid for `len` bytes.
    let bytes = unsafe { slice::from_raw_parts(bytes, len) };
    // SAFETY: the caller guarantees `out` is valid for `out_len` bytes.
    let out = unsafe { slice::from_raw_parts_mut(out, out_len) };
    // SAFETY: the caller guarantees `ctx` points to a RawContext.
    let ctx = context(unsafe { &*ctx });
    // SAFETY: the caller guarantees `raw_rules` points to a RawRules.
    let rules = rules(unsafe { &*raw_rules });
    match ctx {
        PostContext::Read(c) => {
            let done = complete_read(&c, NtStatus(below), bytes, &rules);
            done.write_output(out);
            done.status.0
        }
        PostContext::Write(c) => {
            let done = complete_write(&c, NtStatus(below), bytes, &rules);
            done.write_output(out);
            done.status.0
        }
        PostContext::Observe { .. } => 0,
    }
}

/// Every wire parser: parse `bytes` as structure `which` and serialise it into `out`.
///
/// # Safety
/// `bytes` valid for `len` bytes, `out` for `out_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn odx_probe_parse(
    which: u32,
    bytes: *const u8,
    len: usize,
    out: *mut u8,
    out_len: usize,
) -> usize {
    // SAFETY: the caller guarantees `bytes` is valid for `len` bytes.
    let bytes = unsafe { slice::from_raw_parts(bytes, len) };
    // SAFETY: the caller guarantees `out` is valid for `out_len` bytes.
    let out = unsafe { slice::from_raw_parts_mut(out, out_len) };
    fn go<T: WireStruct>(bytes: &[u8], out: &mut [u8]) -> usize {
        T::parse(bytes)
            .ok()
            .and_then(|v| v.serialize_into(out).ok())
            .unwrap_or(0)
    }
    match which {
        0 => go::<OffloadReadInput>(bytes, out),
        1 => go::<OffloadReadOutput>(bytes, out),
        2 => go::<OffloadWriteInput>(bytes, out),
        3 => go::<OffloadWriteOutput>(bytes, out),
        _ => go::<StorageOffloadToken>(bytes, out),
    }
}

/// The port message parser.
///
/// # Safety
/// `bytes` valid for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn odx_probe_port(bytes: *const u8, len: usize) -> u32 {
    // SAFETY: the caller guarantees `bytes` is valid for `len` bytes.
    let bytes = unsafe { slice::from_raw_parts(bytes, len) };
    match parse_request(bytes) {
        Ok(PortRequest::QueryStats { volume } | PortRequest::QueryPolicy { volume }) => volume,
        Ok(PortRequest::SetPolicy { mode, .. }) => mode.as_u32(),
        // Requests without a body (a new kind lands here until it gets its own arm).
        Ok(_) => 0x100,
        Err(status) => status.0,
    }
}
