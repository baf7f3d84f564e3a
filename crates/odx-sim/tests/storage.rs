//! The `[storage]` table and `op = "stat"`: parsing, defaults, the disk's answer, and what the
//! simulated odxflt does with it (through the port as `odxctl stats` sees it).

use odx_core::NtStatus;
use odx_core::OffloadOp;
use odx_core::port::{MessageHeader, MessageKind, StatsReply};
use odx_core::storage::{CopyOffloadLimits, StorageCapability, TICKS_PER_SECOND};
use odx_core::wire::WireStruct;
use odx_sim::MemStore;
use odx_sim::scenario::{QueryKind, Scenario, StorageQuery, StorageSpec};
use zerocopy::IntoBytes;

fn parse(text: &str) -> Result<Scenario, String> {
    Scenario::parse(text, "t.toml").map_err(|e| e.to_string())
}

#[test]
fn without_a_storage_table_the_disk_describes_the_volume_s_engine() {
    let s = parse("[volume]\nmax_transfer = 1048576\nmax_ttl_ms = 60000\n").unwrap();
    assert_eq!(s.storage.query, QueryKind::Descriptor);
    assert_eq!(s.storage.backoff_seconds, 180);
    let l = s.storage.limits;
    assert_eq!(l.maximum_transfer_size, 1 << 20);
    assert_eq!(l.optimal_transfer_count, 1 << 20);
    // Per-descriptor lengths are in logical blocks (the descriptor's page): 1 MiB of 512-byte
    // sectors.
    assert_eq!(l.maximum_transfer_length_per_descriptor, (1 << 20) / 512);
    assert_eq!(
        (l.maximum_token_lifetime, l.default_token_lifetime),
        (60, 30)
    );
    assert_eq!(
        (
            l.maximum_data_descriptors,
            l.optimal_transfer_length_granularity
        ),
        (64, 1)
    );
    assert_eq!(StorageSpec::default().query(), {
        let d = parse("").unwrap().storage;
        d.query()
    });
}

#[test]
fn each_query_answers_with_its_status_and_bytes() {
    let answer = |t: &str| parse(t).unwrap().storage.answer();
    let (status, bytes) = answer("[storage]\nmaximum_data_descriptors = 8\n").unwrap();
    assert_eq!(status, NtStatus::STATUS_SUCCESS);
    assert_eq!(bytes.len(), 48);
    let limits = CopyOffloadLimits::from_descriptor(&bytes).unwrap();
    assert_eq!(limits.maximum_data_descriptors, 8);
    // The storage class driver's answers: Version = 1 in a descriptor, and
    // DEVICE_FEATURE_NOT_SUPPORTED for a disk without copy offload.
    assert_eq!(&bytes[0..8], &[1, 0, 0, 0, 48, 0, 0, 0]);
    assert_eq!(
        answer("[storage]\nquery = \"not_supported\"\n"),
        Some((NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED, Vec::new()))
    );
    assert_eq!(
        answer("[storage]\nquery = \"fails\"\n"),
        Some((NtStatus::STATUS_INVALID_DEVICE_REQUEST, Vec::new()))
    );
    assert_eq!(
        answer("[storage]\nquery = \"fails\"\nquery_status = \"STATUS_INSUFFICIENT_RESOURCES\"\n"),
        Some((NtStatus::STATUS_INSUFFICIENT_RESOURCES, Vec::new()))
    );
    assert_eq!(answer("[storage]\nquery = \"no_disk\"\n"), None);
    let s = parse("[storage]\nquery = \"no_disk\"\nbackoff_seconds = 0\n").unwrap();
    assert_eq!(s.storage.query(), StorageQuery::NoDisk);
    assert_eq!(s.volume_config().backoff_seconds, 0);
}

#[test]
fn malformed_storage_tables_are_errors_with_the_line() {
    for (text, want) in [
        (
            "[storage]\nqueery = \"descriptor\"\n",
            "unknown field `queery`",
        ),
        ("[storage]\nquery = \"maybe\"\n", "unknown variant `maybe`"),
        (
            "[storage]\nquery_status = \"STATUS_NOT_SUPPORTED\"\n",
            "query_status needs query = \"fails\"",
        ),
        (
            "[storage]\nquery = \"fails\"\nquery_status = \"STATUS_BOGUS\"\n",
            "not a known STATUS_ name",
        ),
        (
            "[storage]\nquery = \"fails\"\nquery_status = \"STATUS_SUCCESS\"\n",
            "needs a failure status",
        ),
        (
            "[storage]\nquery = \"not_supported\"\nmaximum_transfer_size = 4096\n",
            "need query = \"descriptor\"",
        ),
    ] {
        let e = parse(text).unwrap_err();
        assert!(e.contains(want), "{text:?}: {e}");
        assert!(e.starts_with("t.toml:"), "{e}");
    }
}

const FILES: &str = "[[file]]\nname = \"f\"\nsize = 8192\nvdl = 4096\n";

#[test]
fn stat_needs_a_file_and_an_expectation_and_reports_a_mismatch_clearly() {
    let e = parse(&format!("{FILES}[[step]]\nop = \"stat\"\nfile = \"f\"\n")).unwrap_err();
    assert!(
        e.contains("needs `expect_size`, `expect_vdl` or both"),
        "{e}"
    );
    let e = parse(&format!(
        "{FILES}[[step]]\nop = \"stat\"\nexpect_size = 1\n"
    ))
    .unwrap_err();
    assert!(e.contains("needs `file`"), "{e}");
    let e = parse(&format!(
        "{FILES}[[step]]\nop = \"read\"\nfile = \"f\"\nexpect_vdl = 1\n"
    ))
    .unwrap_err();
    assert!(e.contains("belong to op = \"stat\""), "{e}");
    let s = parse(&format!(
        "{FILES}[[step]]\nop = \"stat\"\nfile = \"f\"\nexpect_size = 8192\nexpect_vdl = 4096\n\
         [[step]]\nop = \"stat\"\nfile = \"f\"\nexpect_size = 4096\nexpect_vdl = 8192\n"
    ))
    .unwrap();
    let r = s.run(MemStore::new()).unwrap();
    assert!(r.steps[0].expect_ok);
    assert_eq!(r.steps[0].sizes, Some((8192, 4096)));
    assert!(!r.passed);
    assert_eq!(
        r.steps[1].failures,
        vec![
            "file \"f\": end of file is 8192, expected 4096 (expect_size)".to_owned(),
            "file \"f\": valid data length is 4096, expected 8192 (expect_vdl)".to_owned(),
        ]
    );
}

fn stats_of(text: &str) -> StatsReply {
    let s = parse(text).unwrap();
    let (_, mut stack) = s.run_keeping_stack(MemStore::new()).unwrap();
    let header = MessageHeader::new(MessageKind::QueryStats, MessageHeader::SIZE, 0);
    let bytes = stack
        .port_request(header.as_bytes(), StatsReply::SIZE)
        .unwrap();
    StatsReply::parse(&bytes).unwrap()
}

#[test]
fn the_port_reports_the_capability_and_a_learned_back_off_on_the_simulated_clock() {
    let text = "[volume]\noffload_write = false\n[storage]\nbackoff_seconds = 60\n\
        [[file]]\nname = \"d\"\nsize = 65536\n\
        [[step]]\nop = \"advance_ms\"\nms = 5000\nexpect = \"SUCCESS\"\n\
        [[step]]\nop = \"write\"\nfile = \"d\"\nlength = 4096\ntoken = \"zero\"\nexpect = \"NOT_SUPPORTED\"\n\
        [[step]]\nop = \"advance_ms\"\nms = 1000\nexpect = \"SUCCESS\"\n";
    let report = stats_of(text).storage.report().unwrap();
    assert!(matches!(report.capability, StorageCapability::Supported(_)));
    assert_eq!(report.backoff_seconds, 60);
    assert_eq!(report.now, 6 * TICKS_PER_SECOND);
    assert_eq!(report.backoff_until(OffloadOp::Read), None);
    assert_eq!(
        report.backoff_until(OffloadOp::Write),
        Some(65 * TICKS_PER_SECOND),
        "refused at 5 s, backs off for 60 s"
    );
    let none = stats_of("[storage]\nquery = \"not_supported\"\n")
        .storage
        .report()
        .unwrap();
    assert_eq!(none.capability, StorageCapability::NotSupported);
    assert_eq!(none.write_backoff_until, None);
}
