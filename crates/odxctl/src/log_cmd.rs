//! `odxctl log [--follow] [--json]`: odxflt's decision journal, read through the port in pages
//! (`ReadJournal`): every offload request odxflt saw, what decided it (a rule, a check, the
//! volume's mode), and how it ended. Records overwritten before they were read are reported as
//! lost.

use std::io::Write;

use odx_core::governance::DecidedBy;
use odx_core::governance::journal::STATUS_PENDING;
use odx_core::port::governance::{
    JournalPageHeader, JournalRecordWire, RECORD_COMPLETED, RECORD_FILE_CUT, RECORD_PROCESS_CUT,
    ReadJournalMessage,
};
use odx_core::wire::WireStruct;
use odx_core::{NtStatus, OffloadOp};
use odx_sim::scenario::decided_by_label;
use serde_json::{Value, json};
use zerocopy::IntoBytes;

use crate::codes::status_line;
use crate::port_cmd::PortClient;
use crate::text::table;
use crate::{CmdResult, Failure};

/// Records asked for per page.
pub const PAGE_RECORDS: u32 = 64;

/// What a record's `time` counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Windows system time (100-ns ticks since 1601-01-01 UTC): the driver's journal.
    #[cfg_attr(not(windows), allow(dead_code))]
    System,
    /// The simulated stack's clock (100-ns ticks since the scenario started).
    Simulated,
}

/// One page of the journal.
#[derive(Debug)]
pub struct Page {
    /// Where the next page starts.
    pub next_seq: u64,
    /// Records lost between the asked sequence number and `next_seq`.
    pub lost: u64,
    /// The records.
    pub records: Vec<JournalRecordWire>,
}

/// Reads one page from `from_seq` on.
///
/// # Errors
/// The port refused (`STATUS_NOT_SUPPORTED`: odxflt keeps no journal) or answered garbage.
pub fn read_page<C: PortClient + ?Sized>(client: &mut C, from_seq: u64) -> Result<Page, Failure> {
    let request = ReadJournalMessage::new(from_seq, PAGE_RECORDS);
    let capacity = JournalPageHeader::SIZE
        + JournalRecordWire::SIZE * usize::try_from(PAGE_RECORDS).unwrap_or(64);
    let reply = client
        .send(request.as_bytes(), capacity)
        .map_err(|s| Failure {
            code: 1,
            message: if s == NtStatus::STATUS_NOT_SUPPORTED {
                // What a filter without a journal answers (odxflt with Parameters\Journal = 0).
                format!(
                    "odxflt keeps no journal (ReadJournal answered {}): its Parameters\\Journal is 0; set it to 1 (every decision) or 2 (every decision, named) and restart the driver",
                    status_line(s)
                )
            } else {
                format!("ReadJournal: odxflt answered {}", status_line(s))
            },
        })?;
    let malformed = || Failure {
        code: 1,
        message: "ReadJournal: odxflt's reply is malformed".to_owned(),
    };
    let head = JournalPageHeader::parse(&reply).map_err(|_| malformed())?;
    let copied = usize::try_from(head.copied.get()).map_err(|_| malformed())?;
    let body = reply.get(JournalPageHeader::SIZE..).ok_or_else(malformed)?;
    let records = body
        .chunks_exact(JournalRecordWire::SIZE)
        .take(copied)
        .map(|c| JournalRecordWire::parse(c).map_err(|_| malformed()))
        .collect::<Result<Vec<_>, _>>()?;
    if records.len() != copied {
        return Err(malformed());
    }
    Ok(Page {
        next_seq: head.next_seq.get(),
        lost: head.lost.get(),
        records,
    })
}

/// Every record from `from_seq` on, page after page, until a page comes back empty. Returns
/// the records, the total lost and where to continue.
///
/// # Errors
/// [`read_page`]'s.
pub fn read_all<C: PortClient + ?Sized>(
    client: &mut C,
    from_seq: u64,
) -> Result<(Vec<JournalRecordWire>, u64, u64), Failure> {
    let (mut records, mut lost, mut next) = (Vec::new(), 0u64, from_seq);
    loop {
        let page = read_page(client, next)?;
        lost = lost.saturating_add(page.lost);
        let empty = page.records.is_empty();
        records.extend(page.records);
        if empty || page.next_seq == next {
            next = page.next_seq;
            break;
        }
        next = page.next_seq;
    }
    Ok((records, lost, next))
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
const fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

/// A record's time as text.
#[must_use]
pub fn time_text(ticks: u64, clock: Clock) -> String {
    const TICKS: u64 = 10_000_000;
    match clock {
        Clock::Simulated => format!("t+{}.{:07}s", ticks / TICKS, ticks % TICKS),
        Clock::System => {
            // 1601-01-01 to 1970-01-01: 11644473600 s.
            let Some(unix) = (ticks / TICKS).checked_sub(11_644_473_600) else {
                return format!("{ticks} (before 1970)");
            };
            let days = i64::try_from(unix / 86_400).unwrap_or(0);
            let (y, m, d) = civil(days);
            let s = unix % 86_400;
            format!(
                "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:07}Z",
                s / 3600,
                s / 60 % 60,
                s % 60,
                ticks % TICKS
            )
        }
    }
}

fn units_text(units: impl Iterator<Item = u16>) -> String {
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

fn process_text(r: &JournalRecordWire) -> String {
    let mut name = units_text(r.process_units());
    if r.flags.get() & RECORD_PROCESS_CUT != 0 {
        name.push('…');
    }
    if name.is_empty() {
        "?".to_owned()
    } else {
        name
    }
}

fn file_text(r: &JournalRecordWire) -> String {
    let name = units_text(r.file_units());
    if name.is_empty() {
        "?".to_owned()
    } else if r.flags.get() & RECORD_FILE_CUT != 0 {
        format!("…{name}")
    } else {
        name
    }
}

/// What decided, with the matched rule when a rule's enforce action sent it to the checks.
fn decided_text(r: &JournalRecordWire) -> String {
    let label = r.decided_by().map_or_else(
        || format!("code {:#06x}", r.decided_by.get()),
        decided_by_label,
    );
    match (r.decided_by(), r.rule()) {
        (Some(DecidedBy::Check(_)), Some(rule)) => format!("{label} (rule {rule}: enforce)"),
        _ => label,
    }
}

fn completed(r: &JournalRecordWire) -> bool {
    r.flags.get() & RECORD_COMPLETED != 0
}

fn status_text(r: &JournalRecordWire) -> String {
    let status = NtStatus(r.status.get());
    if !completed(r) && status == STATUS_PENDING {
        return "pending (passed through, or not back yet)".to_owned();
    }
    match status.to_win32() {
        Some(w) if !status.is_success() => format!("{status} ({})", w.0),
        _ => status.to_string(),
    }
}

const fn op_text(op: Option<OffloadOp>) -> &'static str {
    match op {
        Some(OffloadOp::Read) => "read",
        Some(OffloadOp::Write) => "write",
        None => "?",
    }
}

/// One record as JSON.
#[must_use]
pub fn record_json(r: &JournalRecordWire, clock: Clock) -> Value {
    let status = NtStatus(r.status.get());
    json!({
        "seq": r.seq.get(),
        "time": r.time.get(),
        "time_text": time_text(r.time.get(), clock),
        "volume": r.volume.get(),
        "process_id": r.process_id.get(),
        "process": units_text(r.process_units()),
        "process_cut": r.flags.get() & RECORD_PROCESS_CUT != 0,
        "file": units_text(r.file_units()),
        "file_cut": r.flags.get() & RECORD_FILE_CUT != 0,
        "op": op_text(r.op()),
        "offset": r.offset.get(),
        "length": r.length.get(),
        "decided_by": r.decided_by().map(decided_by_label),
        "rule": r.rule(),
        "completed": completed(r),
        "status": status.to_string(),
        "ntstatus": format!("0x{:08X}", status.0),
        "win32": status.to_win32().map(|w| w.0),
        "bytes_done": r.bytes_done.get(),
    })
}

fn rows(records: &[JournalRecordWire], clock: Clock) -> Vec<Vec<String>> {
    records
        .iter()
        .map(|r| {
            vec![
                r.seq.get().to_string(),
                time_text(r.time.get(), clock),
                r.volume.get().to_string(),
                r.process_id.get().to_string(),
                process_text(r),
                file_text(r),
                op_text(r.op()).to_owned(),
                r.offset.get().to_string(),
                r.length.get().to_string(),
                decided_text(r),
                status_text(r),
                r.bytes_done.get().to_string(),
            ]
        })
        .collect()
}

const HEADER: [&str; 12] = [
    "seq",
    "time",
    "vol",
    "pid",
    "process",
    "file",
    "op",
    "offset",
    "length",
    "decided by",
    "status",
    "bytes",
];

fn write_records(
    out: &mut dyn Write,
    records: &[JournalRecordWire],
    clock: Clock,
    with_header: bool,
) -> std::io::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let t = table(&HEADER, &rows(records, clock));
    for line in t.lines().skip(usize::from(!with_header)) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn lost_line(lost: u64) -> String {
    format!(
        "{lost} record(s) lost: overwritten (the journal keeps the last {}) before they were read",
        odx_sim::stack::JOURNAL_CAPACITY
    )
}

/// `odxctl log`: every record in the journal; with `follow` (a wait between polls), then every
/// new one, for ever.
///
/// # Errors
/// The port refused.
pub fn run<C: PortClient + ?Sized>(
    out: &mut dyn Write,
    client: &mut C,
    clock: Clock,
    follow: Option<&dyn Fn()>,
    json: bool,
) -> CmdResult {
    let (records, lost, mut next) = read_all(client, 0)?;
    match follow {
        None if json => {
            let doc = json!({
                "records": records.iter().map(|r| record_json(r, clock)).collect::<Vec<_>>(),
                "lost": lost,
                "next_seq": next,
            });
            writeln!(out, "{doc}")?;
        }
        None => {
            if records.is_empty() {
                writeln!(
                    out,
                    "the journal is empty: odxflt has decided no offload request yet"
                )?;
            }
            write_records(out, &records, clock, true)?;
            if lost > 0 {
                writeln!(out, "{}", lost_line(lost))?;
            }
        }
        Some(wait) => {
            // One JSON object (or one table row) per record as it arrives.
            let mut header = true;
            let mut emit = |out: &mut dyn Write, records: &[JournalRecordWire], lost: u64| {
                if json {
                    for r in records {
                        writeln!(out, "{}", record_json(r, clock))?;
                    }
                    if lost > 0 {
                        writeln!(out, "{}", json!({ "lost": lost }))?;
                    }
                } else {
                    write_records(out, records, clock, header)?;
                    header &= records.is_empty();
                    if lost > 0 {
                        writeln!(out, "{}", lost_line(lost))?;
                    }
                }
                out.flush()
            };
            emit(out, &records, lost)?;
            loop {
                wait();
                let (records, lost, after) = read_all(client, next)?;
                next = after;
                emit(out, &records, lost)?;
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::{Clock, civil, time_text};

    #[test]
    fn times_read_as_dates_or_simulated_seconds() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(19_723), (2024, 1, 1));
        // 2024-02-29 12:34:56.1234567 UTC in FILETIME ticks.
        let unix: u64 = 1_709_210_096;
        let ticks = (unix + 11_644_473_600) * 10_000_000 + 1_234_567;
        assert_eq!(
            time_text(ticks, Clock::System),
            "2024-02-29 12:34:56.1234567Z"
        );
        assert_eq!(time_text(15_000_000, Clock::Simulated), "t+1.5000000s");
        assert_eq!(time_text(5, Clock::System), "5 (before 1970)");
    }
}
