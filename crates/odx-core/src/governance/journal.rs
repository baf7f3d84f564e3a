//! The decision journal: a fixed ring of the last `N` decisions, written from any CPU at up to
//! `DISPATCH_LEVEL` without a lock and without waiting, read in pages by one or more readers
//! that never hold up a writer.
//!
//! - A writer claims a sequence number with one `fetch_add` on the head; sequence `s` lives in
//!   slot `s % N`.
//! - Each slot is a seqlock: a version word `((s + 1) << 3) | state` and the record encoded in
//!   [`WORDS`] `AtomicU64` words. A writer moves the version to an odd "busy" state with a
//!   compare-and-swap (only from an older sequence's stable state), stores the words with
//!   `Relaxed` stores after a `Release` fence, and publishes the stable state with a `Release`
//!   store. A reader loads the version (`Acquire`), copies the words, issues an `Acquire` fence
//!   and loads the version again: a record is returned only when both loads agree on a stable
//!   state of the sequence asked for, so a torn record is never returned.
//! - A writer that finds its slot busy (a writer or completer `N` sequences older still at work)
//!   spins for a bounded number of rounds, then drops its record and marks the slot, so readers
//!   count it as lost instead of waiting for it. A writer that finds a newer sequence already
//!   there (it was lapped while it stalled) drops its record the same way.
//! - Two-phase use: [`Journal::record_forwarded`] in pre-operation returns the sequence;
//!   [`Journal::complete`] in post-operation fills in the final status and bytes done, if the slot
//!   still holds that sequence (otherwise the completion is lost, and counted).
//!
//! Memory: [`SLOT_BYTES`] (200) bytes per record plus 24 bytes, so `Journal<1024>` is 204,824
//! bytes of non-paged memory.

use core::hint::spin_loop;
use core::sync::atomic::{AtomicU64, Ordering, fence};

use crate::ctl::OffloadOp;
use crate::facts::FactKind;
use crate::policy::PolicyMode;
use crate::status::NtStatus;
use crate::validate::Check;

/// What produced a request's outcome, with a stable 16-bit encoding ([`DecidedBy::code`]):
/// `0x0000` unknown, `0x01mm` a volume mode, `0x02cc` a check, `0x03kk` a failed fact query,
/// `0x8000 | i` rule `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecidedBy {
    /// Not recorded.
    Unknown,
    /// The volume's mode, no rule matching (veto refused it; monitor forwarded it untouched).
    Mode(PolicyMode),
    /// The checks (enforce, by the volume's mode or by a rule): the check that completed the
    /// request, [`Check::Forward`] when it was forwarded, [`Check::FactUnavailable`] when it was
    /// passed through.
    Check(Check),
    /// A rule's veto or monitor action (its index in the rule set).
    Rule(u16),
}

/// The checks other than [`Check::FactUnavailable`], by code (index + 1). Append only.
const CHECKS: [Check; 19] = [
    Check::FileSystemImplementsOffload,
    Check::VolumeMounted,
    Check::HandleOpen,
    Check::VolumeWritable,
    Check::OffloadSupported,
    Check::InputLength,
    Check::OutputLength,
    Check::Alignment,
    Check::SizeField,
    Check::RangeOverflow,
    Check::ZeroLength,
    Check::StreamKind,
    Check::StreamDeleted,
    Check::MaxFileSize,
    Check::LockConflict,
    Check::EndOfFile,
    Check::TinyFile,
    Check::BeyondValidData,
    Check::Forward,
];

/// The fact kinds, by code (index). Append only.
const FACTS: [FactKind; 5] = [
    FactKind::Volume,
    FactKind::Handle,
    FactKind::StreamKind,
    FactKind::StreamSizes,
    FactKind::Locks,
];

/// The low byte of a check's code: its place in [`CHECKS`] plus one. Exhaustive on purpose: a new
/// [`Check`] does not compile until it has a code (append it to [`CHECKS`] too; a test checks
/// that the two agree).
const fn check_code(check: Check) -> u16 {
    match check {
        Check::FileSystemImplementsOffload => 1,
        Check::VolumeMounted => 2,
        Check::HandleOpen => 3,
        Check::VolumeWritable => 4,
        Check::OffloadSupported => 5,
        Check::InputLength => 6,
        Check::OutputLength => 7,
        Check::Alignment => 8,
        Check::SizeField => 9,
        Check::RangeOverflow => 10,
        Check::ZeroLength => 11,
        Check::StreamKind => 12,
        Check::StreamDeleted => 13,
        Check::MaxFileSize => 14,
        Check::LockConflict => 15,
        Check::EndOfFile => 16,
        Check::TinyFile => 17,
        Check::BeyondValidData => 18,
        Check::Forward => 19,
        Check::FactUnavailable(_) => 0,
    }
}

/// The low byte of a failed fact's code: its place in [`FACTS`] (exhaustive, like
/// [`check_code`]).
const fn fact_code(kind: FactKind) -> u16 {
    match kind {
        FactKind::Volume => 0,
        FactKind::Handle => 1,
        FactKind::StreamKind => 2,
        FactKind::StreamSizes => 3,
        FactKind::Locks => 4,
    }
}

impl DecidedBy {
    /// The stable encoding. A rule index above `0x7FFF` (no rule set holds that many) encodes as
    /// [`DecidedBy::Unknown`].
    #[must_use]
    pub fn code(self) -> u16 {
        match self {
            Self::Unknown => 0,
            Self::Mode(m) => 0x0100 | u16::try_from(m.as_u32()).unwrap_or(0xFF),
            Self::Check(Check::FactUnavailable(k)) => 0x0300 | fact_code(k),
            Self::Check(c) => 0x0200 | check_code(c),
            Self::Rule(i) if i < 0x8000 => 0x8000 | i,
            Self::Rule(_) => 0,
        }
    }

    /// From the encoding; `None` for a code nothing has.
    #[must_use]
    pub fn from_code(code: u16) -> Option<Self> {
        let low = usize::from(code & 0xFF);
        match code & 0xFF00 {
            _ if code == 0 => Some(Self::Unknown),
            _ if code & 0x8000 != 0 => Some(Self::Rule(code & 0x7FFF)),
            0x0100 => u32::try_from(low)
                .ok()
                .and_then(PolicyMode::from_u32)
                .map(Self::Mode),
            0x0200 => CHECKS.get(low.checked_sub(1)?).copied().map(Self::Check),
            0x0300 => FACTS
                .get(low)
                .map(|k| Self::Check(Check::FactUnavailable(*k))),
            _ => None,
        }
    }
}

/// Up to `N` UTF-16 units of a longer name, and whether it was cut.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShortName<const N: usize> {
    units: [u16; N],
    len: u8,
    truncated: bool,
}

fn is_high_surrogate(u: u16) -> bool {
    (0xD800..0xDC00).contains(&u)
}

fn is_low_surrogate(u: u16) -> bool {
    (0xDC00..0xE000).contains(&u)
}

impl<const N: usize> ShortName<N> {
    /// No units.
    pub const EMPTY: Self = Self {
        units: [0; N],
        len: 0,
        truncated: false,
    };

    fn from_units(kept: &[u16], truncated: bool) -> Self {
        let mut units = [0u16; N];
        let n = kept.len().min(N);
        if let (Some(dst), Some(src)) = (units.get_mut(..n), kept.get(..n)) {
            dst.copy_from_slice(src);
        }
        Self {
            units,
            len: u8::try_from(n).unwrap_or(0),
            truncated,
        }
    }

    /// The first `N` units of `name` (one fewer rather than half a surrogate pair).
    #[must_use]
    pub fn head(name: &[u16]) -> Self {
        let cap = N.min(usize::from(u8::MAX));
        if name.len() <= cap {
            return Self::from_units(name, false);
        }
        let mut n = cap;
        if name
            .get(n.saturating_sub(1))
            .is_some_and(|u| is_high_surrogate(*u))
        {
            n = n.saturating_sub(1);
        }
        Self::from_units(name.get(..n).unwrap_or(&[]), true)
    }

    /// The last `N` units of `name` (one fewer rather than half a surrogate pair).
    #[must_use]
    pub fn tail(name: &[u16]) -> Self {
        let cap = N.min(usize::from(u8::MAX));
        let Some(mut start) = name.len().checked_sub(cap) else {
            return Self::from_units(name, false);
        };
        if start == 0 {
            return Self::from_units(name, false);
        }
        if name.get(start).is_some_and(|u| is_low_surrogate(*u)) {
            start = start.saturating_add(1);
        }
        Self::from_units(name.get(start..).unwrap_or(&[]), true)
    }

    /// The units kept.
    #[must_use]
    pub fn units(&self) -> &[u16] {
        self.units.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The name was longer than what is kept.
    #[must_use]
    pub const fn is_truncated(&self) -> bool {
        self.truncated
    }
}

impl<const N: usize> core::fmt::Debug for ShortName<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("\"")?;
        for c in char::decode_utf16(self.units().iter().copied()) {
            core::fmt::Write::write_char(f, c.unwrap_or(char::REPLACEMENT_CHARACTER))?;
        }
        f.write_str(if self.truncated { "\" (cut)" } else { "\"" })
    }
}

/// UTF-16 units of the process name a record keeps (the head of the image file name).
pub const PROCESS_NAME_UNITS: usize = 16;
/// UTF-16 units of the file name a record keeps (the tail of the path).
pub const FILE_NAME_UNITS: usize = 48;

/// What a writer records about one decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// When (100-ns ticks; the caller's clock, e.g. `KeQuerySystemTimePrecise`).
    pub time: u64,
    /// The volume's index (the port's volume slot).
    pub volume: u32,
    /// The requesting process's id.
    pub process_id: u64,
    /// The process image name or path; the record keeps the head of its file name part.
    pub process_image: &'a [u16],
    /// The file's name or path; the record keeps its tail.
    pub file_name: &'a [u16],
    /// Read or write.
    pub op: OffloadOp,
    /// `FileOffset`.
    pub offset: u64,
    /// `CopyLength`.
    pub length: u64,
    /// The rule that matched, if one did (whatever its action).
    pub rule: Option<u16>,
    /// What produced the outcome.
    pub decided_by: DecidedBy,
}

/// One decision as a reader gets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number (0 for the first record ever written).
    pub seq: u64,
    /// [`Event::time`].
    pub time: u64,
    /// [`Event::volume`].
    pub volume: u32,
    /// [`Event::process_id`].
    pub process_id: u64,
    /// The head of the process image's file name.
    pub process_name: ShortName<PROCESS_NAME_UNITS>,
    /// The tail of the file name.
    pub file_name: ShortName<FILE_NAME_UNITS>,
    /// [`Event::op`].
    pub op: OffloadOp,
    /// [`Event::offset`].
    pub offset: u64,
    /// [`Event::length`].
    pub length: u64,
    /// [`Event::rule`].
    pub rule: Option<u16>,
    /// [`Event::decided_by`].
    pub decided_by: DecidedBy,
    /// The final fields are filled in: recorded complete, or completed in post-operation. A
    /// forwarded request not yet completed has `status` = `STATUS_PENDING` and `bytes_done` = 0.
    pub completed: bool,
    /// The final status.
    pub status: NtStatus,
    /// Bytes tokenised (read) or written (write).
    pub bytes_done: u64,
}

impl Record {
    /// A record with every field zero (to initialise a page buffer).
    pub const EMPTY: Self = Self {
        seq: 0,
        time: 0,
        volume: 0,
        process_id: 0,
        process_name: ShortName::EMPTY,
        file_name: ShortName::EMPTY,
        op: OffloadOp::Read,
        offset: 0,
        length: 0,
        rule: None,
        decided_by: DecidedBy::Unknown,
        completed: false,
        status: NtStatus::STATUS_SUCCESS,
        bytes_done: 0,
    };
}

impl Default for Record {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// What [`Journal::read_page`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PageResult {
    /// The sequence to ask for next.
    pub next_seq: u64,
    /// Records copied to the front of the page.
    pub copied: usize,
    /// Records between the sequence asked for and `next_seq` that were overwritten (or dropped)
    /// before this reader got to them.
    pub lost: u64,
}

/// The journal's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct JournalStats {
    /// Sequence numbers handed out (records written or dropped).
    pub recorded: u64,
    /// Records dropped by their writer (slot busy or already overwritten).
    pub dropped: u64,
    /// Completions that found their record gone (overwritten, dropped, or already completed).
    pub lost_completions: u64,
}

/// `STATUS_PENDING`: the status of a forwarded request not yet completed.
pub const STATUS_PENDING: NtStatus = NtStatus(0x0000_0103);

/// Words per encoded record.
pub const WORDS: usize = 23;
/// Bytes per slot: the version, the drop mark and the record words.
pub const SLOT_BYTES: usize = 8 * (WORDS + 2);

const W_TIME: usize = 0;
const W_PID: usize = 1;
const W_OFFSET: usize = 2;
const W_LENGTH: usize = 3;
const W_BYTES: usize = 4;
const W_VOLUME_STATUS: usize = 5;
const W_META: usize = 6;
const W_PROCESS: usize = 7;
const W_FILE: usize = W_PROCESS + PROCESS_NAME_UNITS / 4;

static_assertions::const_assert_eq!(W_FILE + FILE_NAME_UNITS / 4, WORDS);
static_assertions::const_assert_eq!(PROCESS_NAME_UNITS % 4, 0);
static_assertions::const_assert_eq!(FILE_NAME_UNITS % 4, 0);

const WRITING: u64 = 1;
const PENDING: u64 = 2;
const COMPLETING: u64 = 3;
const COMPLETED: u64 = 4;

/// Rounds a writer waits for a busy slot before dropping its record.
const WRITER_ROUNDS: u32 = 64;
/// Times a reader re-reads a slot that changed under it before leaving it for the next page.
const READER_ROUNDS: u32 = 8;

fn version(seq: u64, state: u64) -> Option<u64> {
    seq.checked_add(1)?.checked_mul(8)?.checked_add(state)
}

/// (sequence, state) of a version; `None` for a slot never written.
fn decode_version(v: u64) -> Option<(u64, u64)> {
    let seq = v.wrapping_shr(3).checked_sub(1)?;
    Some((seq, v & 7))
}

struct Slot {
    version: AtomicU64,
    /// One more than the newest sequence dropped in this slot.
    dropped: AtomicU64,
    words: [AtomicU64; WORDS],
}

impl Slot {
    const fn new() -> Self {
        Self {
            version: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            words: [const { AtomicU64::new(0) }; WORDS],
        }
    }
}

/// The first `cap` units of `name` (one fewer rather than half a surrogate pair), and whether
/// it was cut: what [`ShortName::head`] keeps, as a borrowed slice.
fn head_units(name: &[u16], cap: usize) -> (&[u16], bool) {
    if name.len() <= cap {
        return (name, false);
    }
    let mut n = cap;
    if name
        .get(n.saturating_sub(1))
        .is_some_and(|u| is_high_surrogate(*u))
    {
        n = n.saturating_sub(1);
    }
    (name.get(..n).unwrap_or(&[]), true)
}

/// The last `cap` units of `name` (one fewer rather than half a surrogate pair), and whether it
/// was cut: what [`ShortName::tail`] keeps.
fn tail_units(name: &[u16], cap: usize) -> (&[u16], bool) {
    let Some(mut start) = name.len().checked_sub(cap) else {
        return (name, false);
    };
    if start == 0 {
        return (name, false);
    }
    if name.get(start).is_some_and(|u| is_low_surrogate(*u)) {
        start = start.saturating_add(1);
    }
    (name.get(start..).unwrap_or(&[]), true)
}

/// Stores `units` four to a word into the first words of `out`. Words past the name keep an
/// older record's units: the record's length (in its meta word) bounds what a reader unpacks
/// ([`unpack_units`] zeroes the rest), so a record without names writes no name word at all.
fn store_units(out: &[AtomicU64], units: &[u16]) {
    for (word, chunk) in out.iter().zip(units.chunks(4)) {
        let mut w = 0u64;
        for (shift, unit) in [0_u32, 16, 32, 48].into_iter().zip(chunk) {
            w |= u64::from(*unit).wrapping_shl(shift);
        }
        word.store(w, Ordering::Relaxed);
    }
}

fn unpack_units<const N: usize>(words: &[u64], len: u8, truncated: bool) -> ShortName<N> {
    let mut units = [0u16; N];
    for (k, u) in units.iter_mut().enumerate() {
        let w = words.get(k / 4).copied().unwrap_or(0);
        let shift = u32::try_from(k % 4).unwrap_or(0).wrapping_mul(16);
        *u = u16::try_from(w.wrapping_shr(shift) & 0xFFFF).unwrap_or(0);
    }
    let len = len.min(u8::try_from(N).unwrap_or(u8::MAX));
    if let Some(rest) = units.get_mut(usize::from(len)..) {
        rest.fill(0);
    }
    ShortName {
        units,
        len,
        truncated,
    }
}

fn op_code(op: OffloadOp) -> u64 {
    match op {
        OffloadOp::Read => 0,
        OffloadOp::Write => 1,
    }
}

/// Writes the record of `e` into a claimed slot's words (`Relaxed`: the caller fences and
/// publishes). Field by field, straight into the atomics: no word array, no name copies, so the
/// writer's frame stays small on the kernel stack (issue 12's budget; a 184-byte array and two
/// name copies made it 480 + 384 bytes).
fn store_record(words: &[AtomicU64; WORDS], e: &Event<'_>, status: NtStatus, bytes_done: u64) {
    let cap = |n: usize| n.min(usize::from(u8::MAX));
    let (process, process_cut) = head_units(
        super::final_component(e.process_image),
        cap(PROCESS_NAME_UNITS),
    );
    let (file, file_cut) = tail_units(e.file_name, cap(FILE_NAME_UNITS));
    let len = |units: &[u16]| u64::from(u8::try_from(units.len()).unwrap_or(0));
    let meta = u64::from(e.decided_by.code())
        | u64::from(e.rule.unwrap_or(u16::MAX)).wrapping_shl(16)
        | op_code(e.op).wrapping_shl(32)
        | u64::from(process_cut).wrapping_shl(40)
        | u64::from(file_cut).wrapping_shl(41)
        | len(process).wrapping_shl(48)
        | len(file).wrapping_shl(56);
    let put = |i: usize, v: u64| {
        if let Some(word) = words.get(i) {
            word.store(v, Ordering::Relaxed);
        }
    };
    put(W_TIME, e.time);
    put(W_PID, e.process_id);
    put(W_OFFSET, e.offset);
    put(W_LENGTH, e.length);
    put(W_BYTES, bytes_done);
    put(
        W_VOLUME_STATUS,
        u64::from(e.volume) | u64::from(status.0).wrapping_shl(32),
    );
    put(W_META, meta);
    store_units(words.get(W_PROCESS..W_FILE).unwrap_or(&[]), process);
    store_units(words.get(W_FILE..).unwrap_or(&[]), file);
}

fn decode(seq: u64, completed: bool, w: &[u64; WORDS]) -> Record {
    let get = |i: usize| w.get(i).copied().unwrap_or(0);
    let meta = get(W_META);
    let byte = |shift: u32| u8::try_from(meta.wrapping_shr(shift) & 0xFF).unwrap_or(0);
    let vs = get(W_VOLUME_STATUS);
    let rule = u16::try_from(meta.wrapping_shr(16) & 0xFFFF).unwrap_or(u16::MAX);
    Record {
        seq,
        time: get(W_TIME),
        volume: u32::try_from(vs & 0xFFFF_FFFF).unwrap_or(0),
        process_id: get(W_PID),
        process_name: unpack_units(
            w.get(W_PROCESS..W_FILE).unwrap_or(&[]),
            byte(48),
            meta & (1 << 40) != 0,
        ),
        file_name: unpack_units(
            w.get(W_FILE..).unwrap_or(&[]),
            byte(56),
            meta & (1 << 41) != 0,
        ),
        op: if byte(32) == 1 {
            OffloadOp::Write
        } else {
            OffloadOp::Read
        },
        offset: get(W_OFFSET),
        length: get(W_LENGTH),
        rule: (rule != u16::MAX).then_some(rule),
        decided_by: DecidedBy::from_code(u16::try_from(meta & 0xFFFF).unwrap_or(0))
            .unwrap_or(DecidedBy::Unknown),
        completed,
        status: NtStatus(u32::try_from(vs.wrapping_shr(32)).unwrap_or(0)),
        bytes_done: get(W_BYTES),
    }
}

enum SlotRead {
    Copied,
    Lost,
    NotYet,
}

/// The decision ring; see the module documentation.
pub struct Journal<const N: usize> {
    head: AtomicU64,
    dropped: AtomicU64,
    lost_completions: AtomicU64,
    slots: [Slot; N],
}

impl<const N: usize> Journal<N> {
    /// An empty journal (`const`: it can be a `static` in non-paged data). `N` = 0 records
    /// nothing.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            head: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            lost_completions: AtomicU64::new(0),
            slots: [const { Slot::new() }; N],
        }
    }

    /// The number of records kept.
    #[must_use]
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The next sequence number a writer will get (= records ever recorded or dropped).
    #[must_use]
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> JournalStats {
        JournalStats {
            recorded: self.head.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            lost_completions: self.lost_completions.load(Ordering::Relaxed),
        }
    }

    fn slot(&self, seq: u64) -> Option<&Slot> {
        let n = u64::try_from(N).ok()?;
        let i = usize::try_from(seq.checked_rem(n)?).ok()?;
        self.slots.get(i)
    }

    /// Records a request forwarded down (status `STATUS_PENDING` until
    /// [`Journal::complete`]); returns its sequence number.
    pub fn record_forwarded(&self, event: &Event<'_>) -> u64 {
        self.write(event, PENDING, STATUS_PENDING, 0)
    }

    /// Records a request completed at once (refused, vetoed, answered in pre-operation) or
    /// passed through without a post-operation; returns its sequence number.
    pub fn record_completed(&self, event: &Event<'_>, status: NtStatus, bytes_done: u64) -> u64 {
        self.write(event, COMPLETED, status, bytes_done)
    }

    fn write(&self, event: &Event<'_>, state: u64, status: NtStatus, bytes_done: u64) -> u64 {
        let seq = self.head.fetch_add(1, Ordering::AcqRel);
        let published = self.slot(seq).is_some_and(|slot| {
            let (Some(busy), Some(done)) = (version(seq, WRITING), version(seq, state)) else {
                return false;
            };
            if !Self::claim(slot, seq, busy) {
                slot.dropped
                    .fetch_max(seq.saturating_add(1), Ordering::Release);
                return false;
            }
            fence(Ordering::Release);
            store_record(&slot.words, event, status, bytes_done);
            slot.version.store(done, Ordering::Release);
            true
        });
        if !published {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        seq
    }

    /// Moves `slot` to `busy` from an older sequence's stable state, waiting a bounded number of
    /// rounds for a busy one; `false`: give up (drop the record).
    fn claim(slot: &Slot, seq: u64, busy: u64) -> bool {
        let mut current = slot.version.load(Ordering::Relaxed);
        for _ in 0..WRITER_ROUNDS {
            if let Some((held, state)) = decode_version(current) {
                if held >= seq {
                    return false;
                }
                if state & 1 == 1 {
                    spin_loop();
                    current = slot.version.load(Ordering::Relaxed);
                    continue;
                }
            }
            // Acquire: the previous record's stores happen before ours.
            match slot.version.compare_exchange_weak(
                current,
                busy,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
        false
    }

    /// Fills in the final status and bytes done of forwarded record `seq`; `false` (and counted
    /// in [`JournalStats::lost_completions`]) when the slot no longer holds it pending.
    pub fn complete(&self, seq: u64, status: NtStatus, bytes_done: u64) -> bool {
        let done = self.slot(seq).is_some_and(|slot| {
            let (Some(pending), Some(busy), Some(completed)) = (
                version(seq, PENDING),
                version(seq, COMPLETING),
                version(seq, COMPLETED),
            ) else {
                return false;
            };
            if slot
                .version
                .compare_exchange(pending, busy, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                return false;
            }
            fence(Ordering::Release);
            if let Some(vs) = slot.words.get(W_VOLUME_STATUS) {
                let volume = vs.load(Ordering::Relaxed) & 0xFFFF_FFFF;
                vs.store(
                    volume | u64::from(status.0).wrapping_shl(32),
                    Ordering::Relaxed,
                );
            }
            if let Some(b) = slot.words.get(W_BYTES) {
                b.store(bytes_done, Ordering::Relaxed);
            }
            slot.version.store(completed, Ordering::Release);
            true
        });
        if !done {
            self.lost_completions.fetch_add(1, Ordering::Relaxed);
        }
        done
    }

    fn read_slot(&self, seq: u64, dst: &mut Record) -> SlotRead {
        let Some(slot) = self.slot(seq) else {
            return SlotRead::Lost;
        };
        for _ in 0..READER_ROUNDS {
            let before = slot.version.load(Ordering::Acquire);
            match decode_version(before) {
                Some((held, state)) if held == seq && (state == PENDING || state == COMPLETED) => {
                    let mut words = [0u64; WORDS];
                    for (w, a) in words.iter_mut().zip(&slot.words) {
                        *w = a.load(Ordering::Relaxed);
                    }
                    fence(Ordering::Acquire);
                    if slot.version.load(Ordering::Relaxed) == before {
                        *dst = decode(seq, state == COMPLETED, &words);
                        return SlotRead::Copied;
                    }
                }
                Some((held, _)) if held > seq => return SlotRead::Lost,
                Some((held, _)) if held == seq => spin_loop(),
                _ => {
                    return if slot.dropped.load(Ordering::Acquire) > seq {
                        SlotRead::Lost
                    } else {
                        SlotRead::NotYet
                    };
                }
            }
        }
        SlotRead::NotYet
    }

    /// Copies records from sequence `from_seq` on into `out`, oldest first, stopping when `out`
    /// is full, at the head, or at a record still being written (it comes in the next page).
    /// Records overwritten before this reader got to them are skipped and counted in
    /// [`PageResult::lost`]. Never waits for a writer.
    pub fn read_page(&self, from_seq: u64, out: &mut [Record]) -> PageResult {
        let head = self.head.load(Ordering::Acquire);
        let oldest = head.saturating_sub(u64::try_from(N).unwrap_or(u64::MAX));
        let mut seq = from_seq;
        let mut lost = 0u64;
        if seq < oldest {
            lost = oldest.saturating_sub(seq);
            seq = oldest;
        }
        let mut copied = 0usize;
        while seq < head {
            let Some(dst) = out.get_mut(copied) else {
                break;
            };
            match self.read_slot(seq, dst) {
                SlotRead::Copied => {
                    copied = copied.saturating_add(1);
                }
                SlotRead::Lost => lost = lost.saturating_add(1),
                SlotRead::NotYet => break,
            }
            seq = seq.saturating_add(1);
        }
        PageResult {
            next_seq: seq,
            copied,
            lost,
        }
    }
}

impl<const N: usize> Default for Journal<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> core::fmt::Debug for Journal<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Journal")
            .field("capacity", &N)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_decided_by_round_trips_through_its_code() {
        let mut all = std::vec![
            DecidedBy::Unknown,
            DecidedBy::Rule(0),
            DecidedBy::Rule(63),
            DecidedBy::Rule(0x7FFF)
        ];
        all.extend(PolicyMode::ALL.map(DecidedBy::Mode));
        all.extend(CHECKS.map(DecidedBy::Check));
        all.extend(FACTS.map(|k| DecidedBy::Check(Check::FactUnavailable(k))));
        let mut codes = std::collections::BTreeSet::new();
        for d in all {
            assert_eq!(DecidedBy::from_code(d.code()), Some(d), "{d:?}");
            assert!(codes.insert(d.code()), "{d:?} shares a code");
        }
        // Pinned: the encoding is stable.
        assert_eq!(DecidedBy::Mode(PolicyMode::Veto).code(), 0x0102);
        assert_eq!(
            DecidedBy::Check(Check::FileSystemImplementsOffload).code(),
            0x0201
        );
        assert_eq!(DecidedBy::Check(Check::Forward).code(), 0x0213);
        assert_eq!(
            DecidedBy::Check(Check::FactUnavailable(FactKind::Locks)).code(),
            0x0304
        );
        assert_eq!(DecidedBy::Rule(5).code(), 0x8005);
        assert_eq!(DecidedBy::Rule(0x8000).code(), 0);
        for bad in [0x0001, 0x0103, 0x0200, 0x0214, 0x0305, 0x0400, 0x7FFF] {
            assert_eq!(DecidedBy::from_code(bad), None, "{bad:#06x}");
        }
    }

    #[test]
    fn the_code_tables_agree_with_the_exhaustive_matches() {
        for (i, c) in CHECKS.into_iter().enumerate() {
            assert_eq!(usize::from(check_code(c)), i + 1, "{c:?}");
        }
        for (i, k) in FACTS.into_iter().enumerate() {
            assert_eq!(usize::from(fact_code(k)), i, "{k:?}");
        }
    }

    #[test]
    fn short_names_keep_the_head_or_the_tail_and_never_half_a_pair() {
        let s: std::vec::Vec<u16> = (1..=20).collect();
        let h = ShortName::<16>::head(&s);
        assert_eq!(h.units(), &s[..16]);
        assert!(h.is_truncated());
        let t = ShortName::<16>::tail(&s);
        assert_eq!(t.units(), &s[4..]);
        assert!(t.is_truncated());
        assert!(!ShortName::<16>::tail(&s[..16]).is_truncated());
        let mut pair = std::vec![0x41u16; 15];
        pair.extend([0xD83D, 0xDE00]);
        assert_eq!(ShortName::<16>::head(&pair).units(), &pair[..15]);
        let mut pair = std::vec![0xD83D, 0xDE00];
        pair.extend([0x41u16; 15]);
        assert_eq!(ShortName::<16>::tail(&pair).units(), &pair[2..]);
    }

    #[test]
    fn a_slot_costs_200_bytes() {
        assert_eq!(core::mem::size_of::<Slot>(), SLOT_BYTES);
        assert_eq!(SLOT_BYTES, 200);
        assert_eq!(core::mem::size_of::<Journal<1024>>(), 204_824);
    }
}
