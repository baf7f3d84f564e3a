//! The port's governance messages (protocol version 3): replace and read the rules, read the
//! decision journal in pages.
//!
//! - `SetRules`: the header, then the rules as UTF-8 text, one rule per line (`\n`, a `\r`
//!   before it ignored), at most [`RULES_TEXT_MAX`] bytes. Replaced as a whole or not at all:
//!   the reply ([`RulesReply`]) names the first bad line and the filter keeps its rules.
//! - `QueryRules`: the header; the reply is [`RulesTextHeader`] and the rules as text
//!   (`Display` of the set, what `odxctl rules save` writes).
//! - `ReadJournal` ([`ReadJournalMessage`]): records from a sequence number on; the reply is
//!   [`JournalPageHeader`] and `copied` [`JournalRecordWire`]s.

use core::fmt::Write as _;

use static_assertions::const_assert_eq;
use zerocopy::byteorder::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{MessageHeader, MessageKind};
use crate::ctl::OffloadOp;
use crate::governance::journal::{
    DecidedBy, FILE_NAME_UNITS, PROCESS_NAME_UNITS, Record, ShortName,
};
use crate::governance::request::DecisionLog;
use crate::governance::{LineError, RuleSet};
use crate::status::NtStatus;
use crate::wire::WireStruct;

/// The longest rule text a `SetRules` message or a `QueryRules` reply carries (64 rules of
/// about 1.2 KiB at most each, with room).
pub const RULES_TEXT_MAX: usize = 128 * 1024;
/// Bytes of a rejected line's error text kept in [`RulesReply`].
pub const ERROR_TEXT_BYTES: usize = 160;

/// `RulesReply`: what a `SetRules` did. 192 bytes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct RulesReply {
    /// Header, kind `RulesReply`.
    pub header: MessageHeader,
    /// Rules now in force.
    pub rule_count: U32,
    /// The first bad line (from 1), 0 when the rules were replaced.
    pub error_line: U32,
    /// Bytes of `error_text` used.
    pub error_len: U32,
    /// Zero.
    pub reserved: U32,
    /// `LineError`'s text (`line 3: bad value for op (expected …)`), UTF-8, cut at
    /// [`ERROR_TEXT_BYTES`] on a character boundary.
    pub error_text: [u8; ERROR_TEXT_BYTES],
}
const_assert_eq!(size_of::<RulesReply>(), 192);

impl WireStruct for RulesReply {
    const NAME: &'static str = "ODXFLT_RULES_REPLY";
}

/// A `core::fmt::Write` into a fixed buffer that stops (and remembers it) when full, cutting at
/// a character boundary.
struct Cut<'a> {
    out: &'a mut [u8],
    len: usize,
    full: bool,
}

impl core::fmt::Write for Cut<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for c in s.chars() {
            let mut utf8 = [0_u8; 4];
            let bytes = c.encode_utf8(&mut utf8).as_bytes();
            let end = self.len.saturating_add(bytes.len());
            match self.out.get_mut(self.len..end) {
                Some(slot) => {
                    // Element by element: `copy_from_slice` has a length check the compiler
                    // cannot drop when `end` saturates (a panic site in the panic check).
                    for (to, from) in slot.iter_mut().zip(bytes) {
                        *to = *from;
                    }
                    self.len = end;
                }
                None => {
                    self.full = true;
                    return Err(core::fmt::Error);
                }
            }
        }
        Ok(())
    }
}

impl RulesReply {
    /// The reply to a `SetRules`: `rule_count` in force, and the error if the set was refused.
    #[must_use]
    pub fn new(rule_count: usize, error: Option<&LineError>) -> Self {
        let mut text = [0_u8; ERROR_TEXT_BYTES];
        let (line, len) = match error {
            Some(e) => {
                let mut w = Cut {
                    out: &mut text,
                    len: 0,
                    full: false,
                };
                let _ = write!(w, "{e}");
                (e.line, w.len)
            }
            None => (0, 0),
        };
        Self {
            header: MessageHeader::new(MessageKind::RulesReply, Self::SIZE, super::ALL_VOLUMES),
            rule_count: U32::new(u32::try_from(rule_count).unwrap_or(u32::MAX)),
            error_line: U32::new(u32::try_from(line).unwrap_or(u32::MAX)),
            error_len: U32::new(u32::try_from(len).unwrap_or(0)),
            reserved: U32::new(0),
            error_text: text,
        }
    }

    /// The error text, if the rules were refused.
    #[must_use]
    pub fn error(&self) -> Option<&str> {
        if self.error_line.get() == 0 {
            return None;
        }
        let len = usize::try_from(self.error_len.get()).unwrap_or(0);
        let bytes = self.error_text.get(..len).unwrap_or_default();
        Some(core::str::from_utf8(bytes).unwrap_or("(error text is not UTF-8)"))
    }
}

/// The fixed start of a `QueryRules` reply; `text_len` bytes of UTF-8 rule text follow.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct RulesTextHeader {
    /// Header, kind `RulesText`; `length` = 24 + `text_len`.
    pub header: MessageHeader,
    /// Rules in force.
    pub rule_count: U32,
    /// Bytes of text after this header.
    pub text_len: U32,
}
const_assert_eq!(size_of::<RulesTextHeader>(), 24);

impl WireStruct for RulesTextHeader {
    const NAME: &'static str = "ODXFLT_RULES_TEXT";
}

/// Writes the `QueryRules` reply for `set` into `reply`; returns its length.
///
/// # Errors
/// `STATUS_BUFFER_TOO_SMALL` when the text does not fit.
pub fn write_rules_text(set: &RuleSet, reply: &mut [u8]) -> Result<usize, NtStatus> {
    let (head, body) = reply
        .split_at_mut_checked(RulesTextHeader::SIZE)
        .ok_or(NtStatus::STATUS_BUFFER_TOO_SMALL)?;
    let mut w = Cut {
        out: body,
        len: 0,
        full: false,
    };
    if write!(w, "{set}").is_err() || w.full {
        return Err(NtStatus::STATUS_BUFFER_TOO_SMALL);
    }
    let total = RulesTextHeader::SIZE.saturating_add(w.len);
    let header = RulesTextHeader {
        header: MessageHeader::new(MessageKind::RulesText, total, super::ALL_VOLUMES),
        rule_count: U32::new(u32::try_from(set.rules().len()).unwrap_or(u32::MAX)),
        text_len: U32::new(u32::try_from(w.len).unwrap_or(u32::MAX)),
    };
    header
        .serialize_into(head)
        .map_err(|_| NtStatus::STATUS_BUFFER_TOO_SMALL)?;
    Ok(total)
}

/// `ReadJournal` request: 32 bytes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct ReadJournalMessage {
    /// Header, kind `ReadJournal`.
    pub header: MessageHeader,
    /// The first sequence number wanted (the previous page's `next_seq`; 0 for the oldest kept).
    pub from_seq: U64,
    /// At most this many records (0: as many as the reply buffer holds).
    pub max_records: U32,
    /// Zero.
    pub reserved: U32,
}
const_assert_eq!(size_of::<ReadJournalMessage>(), 32);

impl WireStruct for ReadJournalMessage {
    const NAME: &'static str = "ODXFLT_READ_JOURNAL";
}

impl ReadJournalMessage {
    /// A request.
    #[must_use]
    pub fn new(from_seq: u64, max_records: u32) -> Self {
        Self {
            header: MessageHeader::new(MessageKind::ReadJournal, Self::SIZE, super::ALL_VOLUMES),
            from_seq: U64::new(from_seq),
            max_records: U32::new(max_records),
            reserved: U32::new(0),
        }
    }
}

/// The fixed start of a `JournalPage` reply; `copied` records follow.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct JournalPageHeader {
    /// Header, kind `JournalPage`.
    pub header: MessageHeader,
    /// Where the next page starts.
    pub next_seq: U64,
    /// Records between `from_seq` and `next_seq` that were overwritten before this read (or
    /// torn, or dropped by a busy writer): lost to this reader.
    pub lost: U64,
    /// Records that follow.
    pub copied: U32,
    /// Zero.
    pub reserved: U32,
}
const_assert_eq!(size_of::<JournalPageHeader>(), 40);

impl WireStruct for JournalPageHeader {
    const NAME: &'static str = "ODXFLT_JOURNAL_PAGE";
}

/// Record flag: the final status and bytes are filled in.
pub const RECORD_COMPLETED: u16 = 0x0001;
/// Record flag: the process name was cut.
pub const RECORD_PROCESS_CUT: u16 = 0x0002;
/// Record flag: the file name was cut (its tail is kept).
pub const RECORD_FILE_CUT: u16 = 0x0004;
/// Record flag: `rule` is set.
pub const RECORD_HAS_RULE: u16 = 0x0008;

/// One journal record on the wire: 200 bytes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct JournalRecordWire {
    /// Sequence number.
    pub seq: U64,
    /// When (100-ns ticks of system time).
    pub time: U64,
    /// Requesting process id.
    pub process_id: U64,
    /// `FileOffset`.
    pub offset: U64,
    /// `CopyLength`.
    pub length: U64,
    /// Bytes done (read: `TransferLength`; write: `LengthWritten`).
    pub bytes_done: U64,
    /// The volume's index.
    pub volume: U32,
    /// Final status (`STATUS_PENDING` while a forwarded request has not completed).
    pub status: U32,
    /// 0 read, 1 write.
    pub op: U16,
    /// [`DecidedBy::code`].
    pub decided_by: U16,
    /// The matched rule's index (with [`RECORD_HAS_RULE`]).
    pub rule: U16,
    /// `RECORD_*` flags.
    pub flags: U16,
    /// Units used in `process_name`.
    pub process_len: u8,
    /// Units used in `file_name`.
    pub file_len: u8,
    /// Zero.
    pub reserved: [u8; 6],
    /// The head of the process image's file name, UTF-16.
    pub process_name: [U16; PROCESS_NAME_UNITS],
    /// The tail of the file's path, UTF-16.
    pub file_name: [U16; FILE_NAME_UNITS],
}
const_assert_eq!(
    size_of::<JournalRecordWire>(),
    72 + 2 * (PROCESS_NAME_UNITS + FILE_NAME_UNITS)
);
const_assert_eq!(size_of::<JournalRecordWire>(), 200);

impl WireStruct for JournalRecordWire {
    const NAME: &'static str = "ODXFLT_JOURNAL_RECORD";
}

fn wide<const N: usize>(name: &ShortName<N>) -> ([U16; N], u8) {
    let mut out = [U16::new(0); N];
    for (slot, unit) in out.iter_mut().zip(name.units()) {
        *slot = U16::new(*unit);
    }
    (out, u8::try_from(name.units().len()).unwrap_or(0))
}

impl From<&Record> for JournalRecordWire {
    fn from(r: &Record) -> Self {
        let (process_name, process_len) = wide(&r.process_name);
        let (file_name, file_len) = wide(&r.file_name);
        let mut flags = 0;
        if r.completed {
            flags |= RECORD_COMPLETED;
        }
        if r.process_name.is_truncated() {
            flags |= RECORD_PROCESS_CUT;
        }
        if r.file_name.is_truncated() {
            flags |= RECORD_FILE_CUT;
        }
        if r.rule.is_some() {
            flags |= RECORD_HAS_RULE;
        }
        Self {
            seq: U64::new(r.seq),
            time: U64::new(r.time),
            process_id: U64::new(r.process_id),
            offset: U64::new(r.offset),
            length: U64::new(r.length),
            bytes_done: U64::new(r.bytes_done),
            volume: U32::new(r.volume),
            status: U32::new(r.status.0),
            op: U16::new(match r.op {
                OffloadOp::Read => 0,
                OffloadOp::Write => 1,
            }),
            decided_by: U16::new(r.decided_by.code()),
            rule: U16::new(r.rule.unwrap_or(0)),
            flags: U16::new(flags),
            process_len,
            file_len,
            reserved: [0; 6],
            process_name,
            file_name,
        }
    }
}

impl JournalRecordWire {
    /// The operation.
    #[must_use]
    pub fn op(&self) -> Option<OffloadOp> {
        match self.op.get() {
            0 => Some(OffloadOp::Read),
            1 => Some(OffloadOp::Write),
            _ => None,
        }
    }

    /// What decided, if the code is one this build knows.
    #[must_use]
    pub fn decided_by(&self) -> Option<DecidedBy> {
        DecidedBy::from_code(self.decided_by.get())
    }

    /// The matched rule, if any.
    #[must_use]
    pub fn rule(&self) -> Option<u16> {
        (self.flags.get() & RECORD_HAS_RULE != 0).then(|| self.rule.get())
    }

    /// The process name's units.
    pub fn process_units(&self) -> impl Iterator<Item = u16> + '_ {
        self.process_name
            .iter()
            .take(usize::from(self.process_len))
            .map(|u| u.get())
    }

    /// The file name's units.
    pub fn file_units(&self) -> impl Iterator<Item = u16> + '_ {
        self.file_name
            .iter()
            .take(usize::from(self.file_len))
            .map(|u| u.get())
    }
}

/// Records read from the journal at a time while a page is written: a few hundred bytes of
/// stack, so the port callback's frame stays below one page (no stack probe in the kernel).
const CHUNK: usize = 4;

/// Writes the `JournalPage` reply: records from `from_seq` on, at most `max_records` (0: as many
/// as fit in `reply`), read through `log`. Returns the reply's length.
///
/// # Errors
/// `STATUS_BUFFER_TOO_SMALL` when `reply` cannot hold the header.
pub fn write_journal_page(
    log: &dyn DecisionLog,
    from_seq: u64,
    max_records: u32,
    reply: &mut [u8],
) -> Result<usize, NtStatus> {
    let (head, body) = reply
        .split_at_mut_checked(JournalPageHeader::SIZE)
        .ok_or(NtStatus::STATUS_BUFFER_TOO_SMALL)?;
    let fit = body.len() / JournalRecordWire::SIZE;
    let wanted = match usize::try_from(max_records) {
        Ok(0) | Err(_) => fit,
        Ok(n) => n.min(fit),
    };
    let mut scratch = [Record::EMPTY; CHUNK];
    let (mut next, mut lost, mut copied) = (from_seq, 0_u64, 0_usize);
    let mut slots = body.chunks_exact_mut(JournalRecordWire::SIZE);
    while copied < wanted {
        let want = wanted.saturating_sub(copied).min(CHUNK);
        let page = log.read_page(next, scratch.get_mut(..want).unwrap_or_default());
        lost = lost.saturating_add(page.lost);
        next = page.next_seq;
        let got = scratch.get(..page.copied.min(want)).unwrap_or_default();
        for record in got {
            let Some(out) = slots.next() else { break };
            JournalRecordWire::from(record)
                .serialize_into(out)
                .map_err(|_| NtStatus::STATUS_BUFFER_TOO_SMALL)?;
            copied = copied.saturating_add(1);
        }
        if got.len() < want {
            break;
        }
    }
    let total =
        JournalPageHeader::SIZE.saturating_add(copied.saturating_mul(JournalRecordWire::SIZE));
    let header = JournalPageHeader {
        header: MessageHeader::new(MessageKind::JournalPage, total, super::ALL_VOLUMES),
        next_seq: U64::new(next),
        lost: U64::new(lost),
        copied: U32::new(u32::try_from(copied).unwrap_or(u32::MAX)),
        reserved: U32::new(0),
    };
    header
        .serialize_into(head)
        .map_err(|_| NtStatus::STATUS_BUFFER_TOO_SMALL)?;
    Ok(total)
}
