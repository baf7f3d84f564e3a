//! The decision journal, read back through the port on both sides and compared record by record.
//!
//! After a scenario's steps the harness is the client of both ports: the image's (connect,
//! `ReadJournal` pages, disconnect, as `odxctl log` does) and the simulator's
//! (`odx_sim::Stack::port_request`, odx-core's `serve::handle_request`). Requests and replies
//! are odx-core's wire types (`ReadJournalMessage`, `JournalPageHeader`, `JournalRecordWire`);
//! nothing comes from the driver's types. Pages of [`PAGE_RECORDS`] records are read from
//! sequence 0, following `next_seq` until a page copies nothing and skips nothing; `lost` is
//! summed. Each page is checked (kind, length, `copied` records, sequence numbers rising from
//! where the page was asked), then the two journals are compared: how `ReadJournal` answered,
//! the records lost, where the journal ends, and every record field by field.
//!
//! Compared: `seq`, `time`, `volume`, `op`, `offset`, `length`, `decided_by`, `rule`, `status`,
//! `bytes_done`, `completed`, `process_id`, the process name and the file name (with their
//! "cut" flags), then every other byte of the 200-byte record (the remaining flag bits, the
//! reserved bytes and the name units past each name's length). A record of a step listed in
//! [`crate::diff::KNOWN_DIFFERENCES`] as a status difference may differ in `status` (exactly the
//! two listed statuses) and `decided_by` (a different check gave that status) and nothing else;
//! a record of a facts-only step must be identical.

use anyhow::{Result, anyhow};
use odx_core::governance::DecidedBy;
use odx_core::port::governance::{
    JournalPageHeader, JournalRecordWire, RECORD_COMPLETED, RECORD_FILE_CUT, RECORD_HAS_RULE,
    RECORD_PROCESS_CUT, ReadJournalMessage,
};
use odx_core::port::{MESSAGE_MAGIC, MessageKind, PROTOCOL_VERSION};
use odx_core::{NtStatus, WireStruct};
use odx_sim::scenario::decided_by_label;

use crate::diff::{Difference, KnownDifference};
use crate::driver::LoadedDriver;

/// Records asked for per page: few, so that most scenarios' journals take several pages (the
/// paging itself is exercised on both sides, not only the first page).
pub const PAGE_RECORDS: u32 = 4;

/// More pages than any journal can need (1024 records, one per page, plus the lost ones): a
/// port whose `next_seq` does not advance ends the read with a problem, not a hang.
const MAX_PAGES: usize = 1 << 16;

/// One side's port: a `ReadJournal` and the output buffer's length in, the status and the reply
/// bytes out.
pub type PortSend<'a> = dyn FnMut(&[u8], usize) -> Result<(NtStatus, Vec<u8>)> + 'a;

/// One side's journal, as its port gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JournalRead {
    /// The first `ReadJournal` failed (`STATUS_NOT_SUPPORTED`: no journal is kept).
    Refused {
        /// The status.
        status: NtStatus,
        /// Reply bytes that came with it (none, on either side).
        reply_len: usize,
    },
    /// Every page.
    Read {
        /// The records, oldest first.
        records: Vec<JournalRecordWire>,
        /// Records lost (overwritten before they were read), summed over the pages.
        lost: u64,
        /// Where the last page said the next one starts: the journal's head.
        next_seq: u64,
        /// Pages read, the last (empty) one included.
        pages: usize,
    },
}

impl JournalRead {
    /// The records (none when refused).
    #[must_use]
    pub fn records(&self) -> &[JournalRecordWire] {
        match self {
            Self::Refused { .. } => &[],
            Self::Read { records, .. } => records,
        }
    }

    /// The records, to doctor in a test.
    pub fn records_mut(&mut self) -> Option<&mut Vec<JournalRecordWire>> {
        match self {
            Self::Refused { .. } => None,
            Self::Read { records, .. } => Some(records),
        }
    }

    /// `ReadJournal` messages this read took.
    #[must_use]
    pub const fn pages(&self) -> usize {
        match self {
            Self::Refused { .. } => 1,
            Self::Read { pages, .. } => *pages,
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Refused { status, reply_len } => {
                format!("ReadJournal refused with {status} ({reply_len} reply bytes)")
            }
            Self::Read {
                records,
                lost,
                next_seq,
                ..
            } => format!(
                "a journal of {} records ({lost} lost, next sequence {next_seq})",
                records.len()
            ),
        }
    }
}

/// The bytes of a `ReadJournal` from `from_seq`, at most `max_records` (odx-core's layout).
#[must_use]
pub fn read_journal_message(from_seq: u64, max_records: u32) -> Vec<u8> {
    let mut bytes = vec![0u8; ReadJournalMessage::SIZE];
    let _ = ReadJournalMessage::new(from_seq, max_records).serialize_into(&mut bytes);
    bytes
}

/// The output buffer a page of `records` needs.
#[must_use]
pub fn page_capacity(records: u32) -> usize {
    JournalPageHeader::SIZE + JournalRecordWire::SIZE * usize::try_from(records).unwrap_or(0)
}

/// One page's checked contents: `(next_seq, lost, records)`.
fn parse_page(reply: &[u8], from_seq: u64, max: u32) -> Result<(u64, u64, Vec<JournalRecordWire>)> {
    let head = JournalPageHeader::parse(reply)
        .map_err(|e| anyhow!("page from sequence {from_seq}: {e}"))?;
    let h = &head.header;
    if h.magic.get() != MESSAGE_MAGIC
        || h.version.get() != PROTOCOL_VERSION
        || h.kind.get() != MessageKind::JournalPage as u16
    {
        return Err(anyhow!(
            "page from sequence {from_seq}: header magic {:#x}, version {}, kind {} is not a JournalPage",
            h.magic.get(),
            h.version.get(),
            h.kind.get()
        ));
    }
    let copied = usize::try_from(head.copied.get())?;
    let expected = JournalPageHeader::SIZE + copied * JournalRecordWire::SIZE;
    if usize::try_from(h.length.get())? != reply.len() || reply.len() != expected {
        return Err(anyhow!(
            "page from sequence {from_seq}: {} reply bytes, header length {}, {copied} records ({expected} bytes)",
            reply.len(),
            h.length.get()
        ));
    }
    if head.copied.get() > max {
        return Err(anyhow!(
            "page from sequence {from_seq}: {copied} records for at most {max} asked"
        ));
    }
    let records = reply
        .get(JournalPageHeader::SIZE..)
        .unwrap_or_default()
        .chunks_exact(JournalRecordWire::SIZE)
        .map(JournalRecordWire::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let next_seq = head.next_seq.get();
    let mut at = from_seq;
    for record in &records {
        let seq = record.seq.get();
        if seq < at || seq >= next_seq {
            return Err(anyhow!(
                "page from sequence {from_seq} (next {next_seq}): record {seq} out of order"
            ));
        }
        at = seq + 1;
    }
    let accounted = u64::try_from(records.len())?.saturating_add(head.lost.get());
    if next_seq.saturating_sub(from_seq) != accounted {
        return Err(anyhow!(
            "page from sequence {from_seq}: next {next_seq} but {} records and {} lost",
            records.len(),
            head.lost.get()
        ));
    }
    Ok((next_seq, head.lost.get(), records))
}

/// Reads the whole journal through `send` (one `ReadJournal` in, `(status, reply)` out) in pages
/// of `page_records` (the output buffer holds that many; at least one).
///
/// # Errors
/// A page is malformed, the port fails after the first page, or `next_seq` never stops.
pub fn read_all(send: &mut PortSend<'_>, page_records: u32) -> Result<JournalRead> {
    if page_records == 0 {
        return Err(anyhow!(
            "ReadJournal pages of 0 records: a page must hold at least one"
        ));
    }
    let mut records = Vec::new();
    let (mut from, mut lost, mut pages) = (0_u64, 0_u64, 0_usize);
    while pages < MAX_PAGES {
        let (status, reply) = send(
            &read_journal_message(from, page_records),
            page_capacity(page_records),
        )?;
        pages += 1;
        if !status.is_success() {
            if pages == 1 {
                return Ok(JournalRead::Refused {
                    status,
                    reply_len: reply.len(),
                });
            }
            return Err(anyhow!(
                "ReadJournal from sequence {from} (page {pages}) failed with {status}"
            ));
        }
        let (next, page_lost, page) = parse_page(&reply, from, page_records)?;
        lost = lost.saturating_add(page_lost);
        let done = page.is_empty() && next == from;
        records.extend(page);
        from = next;
        if done {
            return Ok(JournalRead::Read {
                records,
                lost,
                next_seq: from,
                pages,
            });
        }
    }
    Err(anyhow!(
        "ReadJournal: {MAX_PAGES} pages and the journal has not ended (next sequence {from})"
    ))
}

/// The image's journal, through its communication port (connect, pages, disconnect).
///
/// # Errors
/// The image has no port, refuses the client, or answers a malformed page.
pub fn read_image(driver: &mut LoadedDriver, page_records: u32) -> Result<JournalRead> {
    let connected = driver.port_connect()?;
    if !connected.is_success() {
        return Err(anyhow!(
            "the image's port refused the client with {connected}"
        ));
    }
    let read = read_all(
        &mut |message, reply_len| driver.port_message(Some(message), reply_len),
        page_records,
    );
    driver.port_disconnect()?;
    read
}

/// The simulator's journal, through its port handler (`Stack::port_request`).
///
/// # Errors
/// A malformed page.
pub fn read_simulator<S: odx_sim::DataStore>(
    stack: &mut odx_sim::Stack<S>,
    page_records: u32,
) -> Result<JournalRead> {
    read_all(
        &mut |message, reply_len| {
            Ok(match stack.port_request(message, reply_len) {
                Ok(reply) => (NtStatus::STATUS_SUCCESS, reply),
                Err(status) => (status, Vec::new()),
            })
        },
        page_records,
    )
}

fn text(units: impl Iterator<Item = u16>, cut: bool) -> String {
    let units: Vec<u16> = units.collect();
    let mut s = format!("{:?}", String::from_utf16_lossy(&units));
    if cut {
        s.push_str(" (cut)");
    }
    s
}

fn decided(code: u16) -> String {
    DecidedBy::from_code(code).map_or_else(|| format!("unknown code {code:#06x}"), decided_by_label)
}

/// The compared fields of a record, by name, in the order a mismatch is reported.
#[must_use]
pub fn fields(r: &JournalRecordWire) -> Vec<(&'static str, String)> {
    let flags = r.flags.get();
    vec![
        ("seq", r.seq.get().to_string()),
        ("time", r.time.get().to_string()),
        ("volume", r.volume.get().to_string()),
        (
            "op",
            r.op()
                .map_or_else(|| format!("code {}", r.op.get()), |op| format!("{op:?}")),
        ),
        ("offset", r.offset.get().to_string()),
        ("length", r.length.get().to_string()),
        ("decided_by", decided(r.decided_by.get())),
        ("rule", format!("{:?}", r.rule())),
        ("status", NtStatus(r.status.get()).to_string()),
        ("bytes_done", r.bytes_done.get().to_string()),
        ("completed", (flags & RECORD_COMPLETED != 0).to_string()),
        ("process_id", r.process_id.get().to_string()),
        (
            "process name",
            text(r.process_units(), flags & RECORD_PROCESS_CUT != 0),
        ),
        (
            "file name",
            text(r.file_units(), flags & RECORD_FILE_CUT != 0),
        ),
    ]
}

/// Flag bits [`fields`] shows.
const SHOWN_FLAGS: u16 = RECORD_COMPLETED | RECORD_PROCESS_CUT | RECORD_FILE_CUT | RECORD_HAS_RULE;

/// The record with every field [`fields`] shows zeroed: what is left (other flag bits, the
/// reserved bytes, the rule word when no rule is flagged, name units past each name's length)
/// must be the same bytes on both sides.
fn rest(r: &JournalRecordWire) -> JournalRecordWire {
    let mut r = *r;
    for word in [
        &mut r.seq,
        &mut r.time,
        &mut r.process_id,
        &mut r.offset,
        &mut r.length,
        &mut r.bytes_done,
    ] {
        word.set(0);
    }
    r.volume.set(0);
    r.status.set(0);
    r.op.set(0);
    r.decided_by.set(0);
    if r.rule().is_some() {
        r.rule.set(0);
    }
    r.flags.set(r.flags.get() & !SHOWN_FLAGS);
    for unit in r.process_name.iter_mut().take(usize::from(r.process_len)) {
        unit.set(0);
    }
    for unit in r.file_name.iter_mut().take(usize::from(r.file_len)) {
        unit.set(0);
    }
    r.process_len = 0;
    r.file_len = 0;
    r
}

/// How a scenario's journals legitimately differ (beyond the status of a step listed in
/// [`crate::diff::KNOWN_DIFFERENCES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalDifference {
    /// The simulator journals the scenario's requests; the image's journal stays empty (no
    /// record, nothing lost, next sequence 0): odxflt never decides a request there.
    ImageKeepsNone,
    /// In the record of `step` exactly these fields differ, with exactly these values
    /// (`(field, simulator, binary)`, spelt as [`fields`] spells them); every other field must
    /// agree.
    Fields {
        /// 0-based step index.
        step: usize,
        /// `(field, simulator's value, binary's value)`.
        fields: &'static [(&'static str, &'static str, &'static str)],
    },
}

/// A documented journal difference, with the reason. The run fails when a listed difference
/// does not occur, as for [`crate::diff::KNOWN_DIFFERENCES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownJournalDifference {
    /// Scenario file name.
    pub scenario: &'static str,
    /// What differs.
    pub difference: JournalDifference,
    /// Why.
    pub reason: &'static str,
}

/// The step a record belongs to: its index, scenario line, and the documented difference that
/// applies to the step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordStep {
    /// The record's sequence number (the simulator's `FsctlOutcome::journal_seq`).
    pub seq: u64,
    /// 0-based step index.
    pub step: usize,
    /// Line in the scenario file.
    pub line: usize,
    /// The step's documented difference, if any.
    pub known: Option<KnownDifference>,
    /// What the scenario says the caller sent — `("Read" | "Write", FileOffset, CopyLength)` —
    /// when its input is a whole structure: both sides' records must say the same (a check
    /// against the scenario, not against the other side, which runs the same core).
    pub asked: Option<(&'static str, u64, u64)>,
}

/// What the comparison found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JournalComparison {
    /// Records identical on both sides.
    pub identical: usize,
    /// Records that differ only as documented (or, with [`JournalDifference::ImageKeepsNone`],
    /// the simulator's records the image does not keep).
    pub documented: usize,
    /// One line per documented difference that occurred, with its reason.
    pub documented_lines: Vec<String>,
    /// Both sides refused `ReadJournal` alike (the journal is off).
    pub refused: bool,
    /// `ReadJournal` messages sent to (the simulator, the image).
    pub pages: (usize, usize),
    /// Records lost on the simulator's side (equal on the image's, or a problem says so).
    pub lost: u64,
    /// One line per disagreement, naming the record's sequence number, its step and the field.
    pub problems: Vec<String>,
}

impl JournalComparison {
    /// Nothing disagreed.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Both journals of a scenario and their comparison (kept, so a test can doctor one side and
/// compare again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalReport {
    /// The scenario file name.
    pub scenario: String,
    /// The simulator's journal.
    pub simulator: JournalRead,
    /// The image's journal.
    pub binary: JournalRead,
    /// Which step wrote which of the simulator's records.
    pub steps: Vec<RecordStep>,
    /// `[volume] journal` is not `off`.
    pub journal_on: bool,
    /// The result.
    pub comparison: JournalComparison,
}

impl JournalReport {
    /// Compares `simulator` with `binary` (see [`compare`]).
    #[must_use]
    pub fn new(
        scenario: &str,
        simulator: JournalRead,
        binary: JournalRead,
        steps: Vec<RecordStep>,
        journal_on: bool,
        known: &[KnownJournalDifference],
    ) -> Self {
        let comparison = compare(scenario, &simulator, &binary, &steps, journal_on, known);
        Self {
            scenario: scenario.to_owned(),
            simulator,
            binary,
            steps,
            journal_on,
            comparison,
        }
    }

    /// Compares again (after a test changed a side).
    pub fn recompare(&mut self, known: &[KnownJournalDifference]) {
        self.comparison = compare(
            &self.scenario,
            &self.simulator,
            &self.binary,
            &self.steps,
            self.journal_on,
            known,
        );
    }
}

/// Compares the two journals of `scenario`: how `ReadJournal` answered (with `journal_on`
/// false, `[volume] journal = "off"`, both must refuse alike), records lost, the journal's
/// head, and every record field by field. `steps` maps the simulator's sequence numbers to
/// the steps that wrote them; `known` lists the documented journal differences (those of
/// other scenarios are ignored; one of this scenario's that does not occur is a problem).
#[must_use]
pub fn compare(
    scenario: &str,
    simulator: &JournalRead,
    binary: &JournalRead,
    steps: &[RecordStep],
    journal_on: bool,
    known: &[KnownJournalDifference],
) -> JournalComparison {
    let mut out = JournalComparison {
        pages: (simulator.pages(), binary.pages()),
        ..JournalComparison::default()
    };
    let listed: Vec<&KnownJournalDifference> =
        known.iter().filter(|k| k.scenario == scenario).collect();
    let mut occurred = vec![false; listed.len()];
    compare_into(
        &mut out,
        simulator,
        binary,
        steps,
        journal_on,
        &listed,
        &mut occurred,
    );
    for (k, done) in listed.iter().zip(occurred) {
        if !done {
            out.problems.push(format!(
                "journal: listed difference did not occur: {:?}",
                k.difference
            ));
        }
    }
    out
}

fn compare_into(
    out: &mut JournalComparison,
    simulator: &JournalRead,
    binary: &JournalRead,
    steps: &[RecordStep],
    journal_on: bool,
    listed: &[&KnownJournalDifference],
    occurred: &mut [bool],
) {
    match (simulator, binary) {
        (JournalRead::Refused { .. }, JournalRead::Refused { .. }) if simulator == binary => {
            out.refused = true;
            if journal_on {
                out.problems.push(format!(
                    "journal: [volume] journal is on, but both sides refused ReadJournal ({})",
                    simulator.describe()
                ));
            }
            return;
        }
        (JournalRead::Read { .. }, JournalRead::Read { .. }) => {}
        _ => {
            out.problems.push(format!(
                "journal: simulator {}, binary {}",
                simulator.describe(),
                binary.describe()
            ));
            return;
        }
    }
    if !journal_on {
        out.problems.push(format!(
            "journal: [volume] journal = \"off\", but ReadJournal read {} (simulator) and {} (binary)",
            simulator.describe(),
            binary.describe()
        ));
    }
    let (sim, bin) = (simulator.records(), binary.records());
    // The image keeps no record at all, where that is documented.
    if let Some(index) = listed
        .iter()
        .position(|k| k.difference == JournalDifference::ImageKeepsNone)
    {
        let empty = JournalRead::Read {
            records: Vec::new(),
            lost: 0,
            next_seq: 0,
            pages: binary.pages(),
        };
        if !sim.is_empty() && *binary == empty {
            if let Some(flag) = occurred.get_mut(index) {
                *flag = true;
            }
            out.documented += sim.len();
            out.documented_lines.push(format!(
                "the simulator journals {} records, the image none — {}",
                sim.len(),
                listed.get(index).map_or("", |k| k.reason)
            ));
            return;
        }
    }
    if let (
        JournalRead::Read {
            lost: sim_lost,
            next_seq: sim_next,
            ..
        },
        JournalRead::Read {
            lost: bin_lost,
            next_seq: bin_next,
            ..
        },
    ) = (simulator, binary)
    {
        out.lost = *sim_lost;
        if sim_lost != bin_lost {
            out.problems.push(format!(
                "journal: records lost: simulator {sim_lost}, binary {bin_lost}"
            ));
        }
        if sim_next != bin_next {
            out.problems.push(format!(
                "journal: next sequence (the journal's head): simulator {sim_next}, binary {bin_next}"
            ));
        }
    }
    if sim.len() != bin.len() {
        out.problems.push(format!(
            "journal: simulator {} records, binary {} records",
            sim.len(),
            bin.len()
        ));
    }
    for (s, b) in sim.iter().zip(bin) {
        compare_record(out, s, b, steps, listed, occurred);
    }
}

fn compare_record(
    out: &mut JournalComparison,
    s: &JournalRecordWire,
    b: &JournalRecordWire,
    steps: &[RecordStep],
    listed: &[&KnownJournalDifference],
    occurred: &mut [bool],
) {
    let seq = s.seq.get();
    let step = steps.iter().find(|r| r.seq == seq);
    let at = step.map_or_else(
        || format!("journal record seq {seq} (written by no step of the simulator)"),
        |r| {
            format!(
                "journal record seq {seq} (step {}, line {})",
                r.step, r.line
            )
        },
    );
    // The documented fields of this record's step.
    let entry = step.and_then(|r| {
        listed.iter().position(
            |k| matches!(k.difference, JournalDifference::Fields { step, .. } if step == r.step),
        )
    });
    let allowed: &[(&str, &str, &str)] = match entry.and_then(|i| listed.get(i)) {
        Some(KnownJournalDifference {
            difference: JournalDifference::Fields { fields, .. },
            ..
        }) => fields,
        _ => &[],
    };
    let mut problems = Vec::new();
    let mut documented = Vec::new();
    let mut seen = Vec::new();
    for ((field, sv), (_, bv)) in fields(s).into_iter().zip(fields(b)) {
        if sv == bv {
            continue;
        }
        // A status listed in KNOWN_DIFFERENCES for the step, exactly.
        let status_listed = field == "status"
            && step.and_then(|r| r.known).is_some_and(|k| {
                matches!(k.difference, Difference::Status { simulator, binary }
                    if simulator.0 == s.status.get() && binary.0 == b.status.get())
            });
        if status_listed {
            let reason = step.and_then(|r| r.known).map_or("", |k| k.reason);
            documented.push(format!(
                "{at}: {field}: simulator {sv}, binary {bv} — {reason}"
            ));
        } else if allowed
            .iter()
            .any(|(f, a, c)| *f == field && *a == sv && *c == bv)
        {
            seen.push(field);
            let reason = entry.and_then(|i| listed.get(i)).map_or("", |k| k.reason);
            documented.push(format!(
                "{at}: {field}: simulator {sv}, binary {bv} — {reason}"
            ));
        } else {
            problems.push(format!("{at}: {field}: simulator {sv}, binary {bv}"));
        }
    }
    // Against the scenario: the range the caller asked, on both sides.
    if let Some((op, offset, length)) = step.and_then(|r| r.asked) {
        let want = [
            ("op", op.to_owned()),
            ("offset", offset.to_string()),
            ("length", length.to_string()),
        ];
        let got = |r: &JournalRecordWire| {
            fields(r)
                .into_iter()
                .filter(|(f, _)| want.iter().any(|(w, _)| w == f))
                .collect::<Vec<_>>()
        };
        for (side, record) in [("simulator", s), ("binary", b)] {
            for ((field, value), (_, wanted)) in got(record).into_iter().zip(&want) {
                if &value != wanted {
                    problems.push(format!(
                        "{at}: {field}: the scenario's request {wanted}, the {side}'s record {value}"
                    ));
                }
            }
        }
    }
    if rest(s) != rest(b) {
        problems.push(format!(
            "{at}: the record's other bytes differ (flag bits outside the named ones: simulator {:#06x}, binary {:#06x}; or the reserved bytes, the rule word without its flag, name units past their length)",
            s.flags.get() & !SHOWN_FLAGS,
            b.flags.get() & !SHOWN_FLAGS
        ));
    }
    if let Some(i) = entry {
        if allowed.iter().all(|(f, _, _)| seen.contains(f)) {
            if let Some(flag) = occurred.get_mut(i) {
                *flag = true;
            }
        }
    }
    if !problems.is_empty() {
        out.problems.extend(problems);
    } else if documented.is_empty() {
        out.identical += 1;
    } else {
        out.documented += 1;
        out.documented_lines.extend(documented);
    }
}

#[cfg(test)]
mod tests {
    use odx_core::port::{ALL_VOLUMES, MessageHeader};

    use super::*;

    fn record(seq: u64) -> JournalRecordWire {
        let mut bytes = vec![0u8; JournalRecordWire::SIZE];
        bytes[..8].copy_from_slice(&seq.to_le_bytes());
        JournalRecordWire::parse(&bytes).unwrap()
    }

    fn page(next_seq: u64, lost: u64, records: &[JournalRecordWire]) -> Vec<u8> {
        let total = JournalPageHeader::SIZE + records.len() * JournalRecordWire::SIZE;
        let mut bytes = vec![0u8; total];
        let header = JournalPageHeader {
            header: MessageHeader::new(MessageKind::JournalPage, total, ALL_VOLUMES),
            next_seq: next_seq.into(),
            lost: lost.into(),
            copied: u32::try_from(records.len()).unwrap().into(),
            reserved: 0.into(),
        };
        header.serialize_into(&mut bytes).unwrap();
        for (r, slot) in records
            .iter()
            .zip(bytes[JournalPageHeader::SIZE..].chunks_exact_mut(JournalRecordWire::SIZE))
        {
            r.serialize_into(slot).unwrap();
        }
        bytes
    }

    /// A port over a journal holding sequences `oldest..head`, paging like odx-core's.
    fn port(oldest: u64, head: u64) -> impl FnMut(&[u8], usize) -> Result<(NtStatus, Vec<u8>)> {
        move |message, reply_len| {
            let request = ReadJournalMessage::parse(message).unwrap();
            let fit = (reply_len - JournalPageHeader::SIZE) / JournalRecordWire::SIZE;
            let from = request.from_seq.get();
            let start = from.max(oldest);
            let lost = start - from;
            let end = head.min(start + fit as u64);
            let records: Vec<_> = (start..end).map(record).collect();
            Ok((
                NtStatus::STATUS_SUCCESS,
                page(end.max(from), lost, &records),
            ))
        }
    }

    #[test]
    fn pages_are_followed_to_the_end_and_lost_records_summed() {
        let read = read_all(&mut port(3, 11), 4).unwrap();
        let JournalRead::Read {
            records,
            lost,
            next_seq,
            pages,
        } = read
        else {
            panic!("{read:?}")
        };
        assert_eq!(
            records.iter().map(|r| r.seq.get()).collect::<Vec<_>>(),
            (3..11).collect::<Vec<_>>()
        );
        // 8 records in pages of 4 and the empty page that ends the read.
        assert_eq!((lost, next_seq, pages), (3, 11, 3));
    }

    #[test]
    fn a_refusal_is_kept_and_a_later_failure_is_an_error() {
        let mut refuse = |_: &[u8], _: usize| Ok((NtStatus::STATUS_NOT_SUPPORTED, Vec::new()));
        assert_eq!(
            read_all(&mut refuse, 4).unwrap(),
            JournalRead::Refused {
                status: NtStatus::STATUS_NOT_SUPPORTED,
                reply_len: 0
            }
        );
        let mut good = port(0, 6);
        let mut calls = 0;
        let mut fails_later = |m: &[u8], n: usize| {
            calls += 1;
            if calls == 2 {
                Ok((NtStatus::STATUS_INSUFFICIENT_RESOURCES, Vec::new()))
            } else {
                good(m, n)
            }
        };
        let error = read_all(&mut fails_later, 4).unwrap_err().to_string();
        assert!(error.contains("from sequence 4 (page 2)"), "{error}");
    }

    #[test]
    fn malformed_pages_are_errors() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated header", page(1, 0, &[record(0)])[..20].to_vec()),
            ("records out of order", page(2, 0, &[record(1), record(0)])),
            ("next_seq not accounted for", page(9, 0, &[record(0)])),
            (
                "more records than asked",
                page(
                    5,
                    0,
                    &[record(0), record(1), record(2), record(3), record(4)],
                ),
            ),
            ("length and copied disagree", {
                let mut p = page(1, 0, &[record(0)]);
                p.extend_from_slice(&[0; 8]);
                p
            }),
            ("not a JournalPage", {
                let mut p = page(1, 0, &[record(0)]);
                p[6] = MessageKind::RulesReply as u8;
                p
            }),
        ];
        for (what, reply) in cases {
            let mut send = |_: &[u8], _: usize| Ok((NtStatus::STATUS_SUCCESS, reply.clone()));
            assert!(read_all(&mut send, 4).is_err(), "{what} was accepted");
        }
        assert!(read_all(&mut port(0, 1), 0).is_err(), "pages of 0 records");
    }

    #[test]
    fn a_port_whose_journal_never_ends_is_an_error_not_a_hang() {
        // Every page skips one record as lost and copies none.
        let mut endless = |message: &[u8], _: usize| {
            let from = ReadJournalMessage::parse(message).unwrap().from_seq.get();
            Ok((NtStatus::STATUS_SUCCESS, page(from + 1, 1, &[])))
        };
        let error = read_all(&mut endless, 4).unwrap_err().to_string();
        assert!(error.contains("has not ended"), "{error}");
    }
}
