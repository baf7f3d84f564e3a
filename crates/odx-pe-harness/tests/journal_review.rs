//! The decision journal read back through both ports and compared record by record: the
//! comparison fails the scenario for any field that differs (each field doctored in turn, on
//! either side), for a missing record and for a documented difference that does not occur;
//! it excuses a documented difference's fields and nothing else; with the journal off both
//! sides refuse `ReadJournal` alike; and a journal that wrapped loses the same records on both
//! sides. Skips when the cross-built image is absent.

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use odx_core::NtStatus;
use odx_core::governance::{DecidedBy, JournalMode};
use odx_core::port::governance::{JournalRecordWire, RECORD_COMPLETED, RECORD_FILE_CUT};
use odx_core::validate::Check;
use odx_pe_harness::diff::{self, KNOWN_JOURNAL_DIFFERENCES, ScenarioReport};
use odx_pe_harness::journal::{
    self, JournalDifference, JournalRead, JournalReport, KnownJournalDifference,
};
use odx_sim::MemStore;
use odx_sim::scenario::Scenario;

fn image() -> Option<Vec<u8>> {
    diff::built_image()
}

fn scenario(name: &str) -> Scenario {
    diff::scenario_named(name).unwrap_or_else(|e| panic!("{e:#}"))
}

fn run(image: &[u8], scenario: &Scenario) -> ScenarioReport {
    diff::run_scenario(image, scenario, diff::KNOWN_DIFFERENCES).unwrap()
}

fn journal(report: &ScenarioReport) -> &JournalReport {
    report.journal.as_ref().expect("the journals were compared")
}

/// The report with one side's journal changed by `doctor` and compared again.
fn doctored(
    report: &ScenarioReport,
    side: Side,
    doctor: impl FnOnce(&mut JournalRead),
) -> ScenarioReport {
    let mut report = report.clone();
    let journal = report.journal.as_mut().expect("compared");
    doctor(match side {
        Side::Simulator => &mut journal.simulator,
        Side::Binary => &mut journal.binary,
    });
    journal.recompare(KNOWN_JOURNAL_DIFFERENCES);
    report
}

#[derive(Clone, Copy, Debug)]
enum Side {
    Simulator,
    Binary,
}

fn record_mut(read: &mut JournalRead, seq: u64) -> &mut JournalRecordWire {
    read.records_mut()
        .expect("a journal")
        .iter_mut()
        .find(|r| r.seq.get() == seq)
        .expect("the record")
}

fn problems(report: &ScenarioReport) -> String {
    report.describe_problems().join("\n")
}

#[test]
fn each_doctored_field_fails_the_scenario_naming_the_record_and_the_field() {
    let Some(image) = image() else { return };
    let report = run(&image, &scenario("rules_veto_process.toml"));
    assert!(report.ok(), "{}", problems(&report));
    let j = journal(&report);
    assert_eq!(
        (j.comparison.identical, j.comparison.documented),
        (5, 0),
        "{:?}",
        j.comparison
    );
    // Record 2: robocopy.exe's write, vetoed by rule 0 (names recorded: a rule matched).
    let original = *journal(&report)
        .binary
        .records()
        .iter()
        .find(|r| r.seq.get() == 2)
        .unwrap();
    assert_eq!(original.rule(), Some(0));
    assert!(original.process_len > 0 && original.file_len > 0);
    type Doctor = fn(&mut JournalRecordWire);
    let cases: [(&str, Doctor); 16] = [
        ("seq", |r| r.seq.set(7)),
        ("time", |r| r.time.set(r.time.get() + 1)),
        ("volume", |r| r.volume.set(1)),
        ("op", |r| r.op.set(0)),
        ("offset", |r| r.offset.set(4096)),
        ("length", |r| r.length.set(1)),
        ("decided_by", |r| {
            r.decided_by.set(DecidedBy::Check(Check::EndOfFile).code());
        }),
        ("rule", |r| r.rule.set(1)),
        ("status", |r| r.status.set(NtStatus::STATUS_SUCCESS.0)),
        ("bytes_done", |r| r.bytes_done.set(65536)),
        ("completed", |r| {
            r.flags.set(r.flags.get() & !RECORD_COMPLETED);
        }),
        ("process_id", |r| r.process_id.set(1)),
        ("process name", |r| {
            r.process_name[0].set(u16::from(b'R'));
        }),
        ("file name", |r| r.file_len -= 1),
        ("file name", |r| {
            r.flags.set(r.flags.get() | RECORD_FILE_CUT)
        }),
        ("the record's other bytes", |r| r.reserved[0] = 1),
    ];
    for side in [Side::Binary, Side::Simulator] {
        for (field, doctor) in cases {
            let bad = doctored(&report, side, |read| doctor(record_mut(read, 2)));
            assert!(
                !bad.ok(),
                "{side:?}: {field} doctored, the scenario still passes"
            );
            let text = problems(&bad);
            let seq = if field == "seq" && matches!(side, Side::Simulator) {
                // The simulator's record names the step that wrote seq 2; 7 was written by none.
                "journal record seq 7 (written by no step of the simulator)".to_owned()
            } else {
                "journal record seq 2 (step 2, line 41)".to_owned()
            };
            let wanted = format!("rules_veto_process.toml: {seq}: {field}");
            assert!(
                text.contains(&wanted),
                "{side:?}: {field} doctored: wanted {wanted:?} in\n{text}"
            );
        }
    }
    // One message as the run prints it.
    let bad = doctored(&report, Side::Binary, |read| {
        record_mut(read, 2).bytes_done.set(65536);
    });
    assert_eq!(
        bad.describe_problems(),
        [
            "rules_veto_process.toml: journal record seq 2 (step 2, line 41): bytes_done: simulator 0, binary 65536"
        ]
    );
}

#[test]
fn a_missing_record_or_another_head_fails_the_scenario() {
    let Some(image) = image() else { return };
    let report = run(&image, &scenario("read_write_basic.toml"));
    assert!(report.ok(), "{}", problems(&report));
    assert_eq!(journal(&report).comparison.identical, 2);
    let bad = doctored(&report, Side::Binary, |read| {
        read.records_mut().unwrap().pop();
    });
    let text = problems(&bad);
    assert!(!bad.ok());
    assert!(
        text.contains("journal: simulator 2 records, binary 1 records"),
        "{text}"
    );
    let bad = doctored(&report, Side::Binary, |read| {
        if let JournalRead::Read { next_seq, lost, .. } = read {
            *next_seq += 1;
            *lost += 1;
        }
    });
    let text = problems(&bad);
    assert!(
        text.contains("journal: records lost: simulator 0, binary 1")
            && text.contains("journal: next sequence (the journal's head): simulator 2, binary 3"),
        "{text}"
    );
}

#[test]
fn a_documented_difference_excuses_its_fields_only_and_must_occur() {
    let Some(image) = image() else { return };
    // Step 0: the simulator refuses the locked range (check LockConflict,
    // STATUS_FILE_LOCK_CONFLICT), the image reaches end of file (check EndOfFile,
    // STATUS_END_OF_FILE): KNOWN_DIFFERENCES lists the statuses, KNOWN_JOURNAL_DIFFERENCES the
    // check.
    let report = run(&image, &scenario("lock_before_eof.toml"));
    assert!(report.ok(), "{}", problems(&report));
    let c = &journal(&report).comparison;
    assert_eq!((c.identical, c.documented), (1, 1), "{c:?}");
    assert!(
        c.documented_lines
            .iter()
            .any(|l| l.contains("decided_by: simulator check LockConflict, binary check EndOfFile")),
        "{:?}",
        c.documented_lines
    );
    // Another field of the documented record is not excused.
    let bad = doctored(&report, Side::Binary, |read| {
        record_mut(read, 0).offset.set(0);
    });
    assert!(
        problems(&bad).contains(
            "journal record seq 0 (step 0, line 13): offset: simulator 2097152, binary 0"
        ),
        "{}",
        problems(&bad)
    );
    // Another value of the documented field is not excused either.
    let bad = doctored(&report, Side::Binary, |read| {
        record_mut(read, 0)
            .decided_by
            .set(DecidedBy::Check(Check::Forward).code());
    });
    assert!(
        problems(&bad).contains(
            "journal record seq 0 (step 0, line 13): decided_by: simulator check LockConflict, binary check Forward"
        ),
        "{}",
        problems(&bad)
    );
    // Without the table the check is a difference.
    let mut bare = journal(&report).clone();
    bare.recompare(&[]);
    assert!(
        bare.comparison.problems.iter().any(|p| p.contains(
            "decided_by: simulator check LockConflict, binary check EndOfFile"
        )),
        "{:?}",
        bare.comparison.problems
    );
    // A listed difference that does not occur fails.
    let basic = run(&image, &scenario("read_write_basic.toml"));
    let mut stale = journal(&basic).clone();
    stale.recompare(&[KnownJournalDifference {
        scenario: "read_write_basic.toml",
        difference: JournalDifference::Fields {
            step: 0,
            fields: &[("bytes_done", "65536", "0")],
        },
        reason: "test",
    }]);
    assert!(
        stale
            .comparison
            .problems
            .iter()
            .any(|p| p.contains("journal: listed difference did not occur")),
        "{:?}",
        stale.comparison.problems
    );
    let mut stale = journal(&basic).clone();
    stale.recompare(&[KnownJournalDifference {
        scenario: "read_write_basic.toml",
        difference: JournalDifference::ImageKeepsNone,
        reason: "test",
    }]);
    assert!(!stale.comparison.ok(), "{:?}", stale.comparison);
}

#[test]
fn with_the_journal_off_both_sides_refuse_read_journal_alike() {
    let Some(image) = image() else { return };
    let mut off = scenario("rules_veto_process.toml");
    off.volume.journal = JournalMode::Off.name().to_owned();
    let report = run(&image, &off);
    assert!(report.ok(), "{}", problems(&report));
    let j = journal(&report);
    let refused = JournalRead::Refused {
        status: NtStatus::STATUS_NOT_SUPPORTED,
        reply_len: 0,
    };
    assert_eq!((&j.simulator, &j.binary), (&refused, &refused));
    assert!(j.comparison.refused);
    // An empty journal is not "no journal".
    let bad = doctored(&report, Side::Binary, |read| {
        *read = JournalRead::Read {
            records: Vec::new(),
            lost: 0,
            next_seq: 0,
            pages: 1,
        };
    });
    assert!(
        problems(&bad).contains("journal: simulator ReadJournal refused with STATUS_NOT_SUPPORTED"),
        "{}",
        problems(&bad)
    );
    // And a journal that is on must be readable.
    let mut on = report.clone();
    let j = on.journal.as_mut().unwrap();
    j.journal_on = true;
    j.recompare(KNOWN_JOURNAL_DIFFERENCES);
    assert!(!on.ok());
}

#[test]
fn a_wrapped_journal_loses_the_same_records_on_both_sides() {
    let Some(image) = image() else { return };
    // More requests than the 1024-record ring holds: the oldest are lost, alike.
    let steps = 1100;
    let mut text = String::from(
        "description = \"more requests than the journal holds\"\n\n[[file]]\nname = \"src\"\nsize = 1048576\n",
    );
    for i in 0..steps {
        text.push_str(&format!(
            "\n[[step]]\nop = \"read\"\nfile = \"src\"\noffset = {}\nlength = 4096\nprocess_id = {}\n",
            (i % 256) * 4096,
            1000 + i
        ));
    }
    let wrapped = Scenario::parse(&text, "journal_wrapped.toml").unwrap_or_else(|e| panic!("{e}"));
    let report = run(&image, &wrapped);
    assert!(report.ok(), "{}", problems(&report));
    let j = journal(&report);
    assert_eq!(j.comparison.lost, steps - 1024);
    assert_eq!(j.comparison.identical, 1024);
    let JournalRead::Read {
        records, next_seq, ..
    } = &j.binary
    else {
        panic!("{:?}", j.binary)
    };
    assert_eq!(records.first().map(|r| r.seq.get()), Some(steps - 1024));
    assert_eq!(*next_seq, steps);
    // 1024 records in pages of 4, the first page also skipping the lost ones, and the empty
    // page at the end.
    assert_eq!(j.comparison.pages, (257, 257));
}

#[test]
fn the_simulator_journal_reads_the_same_in_pages_of_any_size() {
    let (_, mut stack) = scenario("rules_set_through_port.toml")
        .run_keeping_stack(MemStore::new())
        .unwrap();
    let whole = journal::read_simulator(&mut stack, 64).unwrap();
    assert!(whole.records().len() > 4, "{whole:?}");
    for page in [1, 2, 3, 4, 5] {
        let read = journal::read_simulator(&mut stack, page).unwrap();
        assert_eq!(read.records(), whole.records(), "pages of {page}");
        let records = u32::try_from(whole.records().len()).unwrap();
        assert_eq!(
            read.pages(),
            usize::try_from(records.div_ceil(page) + 1).unwrap(),
            "pages of {page}"
        );
    }
}
