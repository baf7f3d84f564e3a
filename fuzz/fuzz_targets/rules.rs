//! Governance rules (issue 15): the text parser on arbitrary lines and the matcher on a subject
//! derived from the input.
//!
//! - Every accepted rule round-trips through `Display` and `parse_rule`, and so does the set.
//! - The lenient and the strict loader agree: a clean report is the strict set; otherwise the
//!   strict loader fails on the first reported line, and `try_load_lines` leaves the set it was
//!   given as it was.
//! - The first-match answer equals evaluating each rule on its own, in order.
//! - Each lazy query is made at most once per evaluation, never when no rule needs it, never for
//!   an empty set.

#![no_main]

use libfuzzer_sys::fuzz_target;
use odx_core::OffloadOp;
use odx_core::governance::{Needs, RuleSet, RuleSubject, VolumeNames, parse_rule};
use odx_core::iomgr::RequestorMode;

const PROCESSES: &[&str] = &[
    "robocopy.exe",
    "\\Device\\HarddiskVolume2\\Windows\\System32\\ROBOCOPY.EXE",
    "backup agent.exe",
    "été.exe",
    "",
];
const PATHS: &[&str] = &[
    "\\Backups\\Daily\\db.vhdx",
    "\\backupsold\\x.VHDX",
    "\\VM Images\\a.vhd:stream:$DATA",
    "\\",
    "",
];
const VOLUMES: &[&str] = &["D:", "\\Device\\HarddiskVolume3", "e:\\", ""];

struct Subject {
    op: OffloadOp,
    requestor: RequestorMode,
    length: u64,
    volume: Vec<u16>,
    process: Option<Vec<u16>>,
    path: Option<Vec<u16>>,
    size: Option<u64>,
    calls: [u32; 3],
}

impl RuleSubject for Subject {
    fn op(&self) -> OffloadOp {
        self.op
    }
    fn requestor(&self) -> RequestorMode {
        self.requestor
    }
    fn length(&self) -> u64 {
        self.length
    }
    fn volume(&self) -> VolumeNames<'_> {
        VolumeNames {
            device: &self.volume,
            dos: &[],
            guid: &[],
        }
    }
    fn process_image(&mut self) -> Option<&[u16]> {
        self.calls[0] += 1;
        self.process.as_deref()
    }
    fn file_path(&mut self) -> Option<&[u16]> {
        self.calls[1] += 1;
        self.path.as_deref()
    }
    fn file_size(&mut self) -> Option<u64> {
        self.calls[2] += 1;
        self.size
    }
}

fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

/// A name for the subject: from the fixed list, from an accepted rule's own field (so that rules
/// do match), or missing (the query fails).
fn pick(sel: u8, list: &[&str], from_rules: &[String]) -> Option<Vec<u16>> {
    match sel % 4 {
        0 => None,
        1 if !from_rules.is_empty() => {
            Some(utf16(&from_rules[usize::from(sel / 4) % from_rules.len()]))
        }
        _ => Some(utf16(list[usize::from(sel / 4) % list.len()])),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 20 {
        return;
    }
    let (head, text) = data.split_at(20);
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text.split('\n').collect();

    // Parse: lenient and strict agree; accepted rules round-trip.
    let (set, report) = RuleSet::parse_lines(lines.iter().copied());
    assert_eq!(set.len(), report.accepted);
    for rule in set.rules() {
        let shown = rule.to_string();
        assert_eq!(parse_rule(&shown), Ok(*rule), "{shown}");
    }
    let shown = set.to_string();
    assert_eq!(RuleSet::try_parse_lines(shown.lines()).as_ref(), Ok(&set));
    let mut previous = RuleSet::new();
    previous.push(parse_rule("veto process=x.exe").unwrap());
    let before = previous.clone();
    match RuleSet::try_parse_lines(lines.iter().copied()) {
        Ok(strict) => {
            assert!(report.is_clean(), "{report}");
            assert_eq!(strict, set);
            assert_eq!(
                previous.try_load_lines(lines.iter().copied()),
                Ok(set.len())
            );
            assert_eq!(previous, set);
        }
        Err(e) => {
            assert_eq!(report.errors().first(), Some(&e));
            assert!(e.to_string().starts_with(&format!("line {}: ", e.line)));
            assert_eq!(previous.try_load_lines(lines.iter().copied()), Err(e));
            assert_eq!(previous, before);
        }
    }
    for (i, line) in lines.iter().enumerate() {
        if let Err(e) = parse_rule(line) {
            let _ = (i, e.to_string(), e.field());
        }
    }

    // Match: a subject from the header bytes.
    let processes: Vec<String> = set
        .rules()
        .iter()
        .filter_map(|r| r.process.map(|p| p.to_string()))
        .collect();
    let paths: Vec<String> = set
        .rules()
        .iter()
        .filter_map(|r| {
            r.path
                .map(|p| format!("{p}{}", r.ext.map(|e| e.to_string()).unwrap_or_default()))
        })
        .collect();
    let volumes: Vec<String> = set
        .rules()
        .iter()
        .filter_map(|r| r.volume.map(|v| v.to_string()))
        .collect();
    let num = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().unwrap());
    let small = |v: u64, b: u8| {
        if b & 1 == 0 {
            v % (1 << ((b >> 1) % 48))
        } else {
            v
        }
    };
    let make = || Subject {
        op: if head[0] & 1 == 0 {
            OffloadOp::Read
        } else {
            OffloadOp::Write
        },
        requestor: if head[0] & 2 == 0 {
            RequestorMode::User
        } else {
            RequestorMode::Kernel
        },
        length: small(num(4), head[1]),
        volume: pick(head[2] | 2, VOLUMES, &volumes).unwrap_or_default(),
        process: pick(head[3], PROCESSES, &processes),
        path: pick(head[12], PATHS, &paths),
        size: (head[13] & 1 == 1).then(|| small(num(12).rotate_left(8), head[14])),
        calls: [0; 3],
    };
    let mut subject = make();
    let answer = set.evaluate(&mut subject);
    assert!(subject.calls.iter().all(|&n| n <= 1), "{:?}", subject.calls);
    let needs = set.needs();
    assert!(needs.contains(Needs::PROCESS) || subject.calls[0] == 0);
    assert!(needs.contains(Needs::PATH) || subject.calls[1] == 0);
    assert!(needs.contains(Needs::SIZE) || subject.calls[2] == 0);
    if set.is_empty() {
        assert_eq!(subject.calls, [0; 3]);
    }

    // The same answer, one rule at a time.
    let mut reference = None;
    for (i, rule) in set.rules().iter().enumerate() {
        let mut alone = RuleSet::new();
        alone.push(*rule);
        if alone.evaluate(&mut make()).is_some() {
            reference = Some((i, rule.action));
            break;
        }
    }
    assert_eq!(answer, reference);
});
