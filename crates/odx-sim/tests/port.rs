//! The simulated stack's communication port: the same messages and handler as the driver's.

use std::path::PathBuf;

use odx_core::NtStatus;
use odx_core::policy::PolicyMode;
use odx_core::port::{
    ALL_VOLUMES, MessageHeader, MessageKind, PolicyReply, SetPolicyMessage, StatsReply,
};
use odx_core::stats::{OpCounts, status_bucket};
use odx_core::wire::WireStruct;
use odx_sim::MemStore;
use odx_sim::scenario::{Scenario, StepStatus};
use zerocopy::IntoBytes;

fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/observability")
        .join(name);
    Scenario::load(&path).unwrap()
}

fn stats(stack: &mut odx_sim::Stack<MemStore>, volume: u32) -> (OpCounts, OpCounts, u32) {
    let query = MessageHeader::new(MessageKind::QueryStats, MessageHeader::SIZE, volume);
    let bytes = stack
        .port_request(query.as_bytes(), StatsReply::SIZE)
        .unwrap();
    let reply = StatsReply::parse(&bytes).unwrap();
    (
        OpCounts::from(&reply.read),
        OpCounts::from(&reply.write),
        reply.mode.get(),
    )
}

#[test]
fn counts_after_a_scenario_match_its_steps() {
    let (result, mut stack) = scenario("stats_counts.toml")
        .run_keeping_stack(MemStore::default())
        .unwrap();
    assert!(result.passed, "{:?}", result.steps);
    let (read, write, mode) = stats(&mut stack, 0);
    assert_eq!(mode, PolicyMode::Enforce.as_u32());
    assert_eq!((read.seen, read.forwarded, read.completed), (3, 1, 2));
    let bucket = status_bucket(NtStatus::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED);
    assert_eq!(read.completed_by_status[bucket], 1);
    let bucket = status_bucket(NtStatus::STATUS_INVALID_PARAMETER);
    assert_eq!(read.completed_by_status[bucket], 1);
    assert_eq!(read.bytes_offloaded, 65536);
    assert_eq!((write.seen, write.forwarded, write.completed), (1, 1, 0));
    assert_eq!(write.bytes_offloaded, 65536);
    assert_eq!(write.failed_below, 0);
    let (all_read, all_write, _) = stats(&mut stack, ALL_VOLUMES);
    assert_eq!(
        (all_read, all_write),
        (read, write),
        "one volume: the sum is the volume"
    );
}

#[test]
fn monitor_forwards_what_enforce_refuses_and_counts_would_refuse() {
    let mut sc = scenario("stats_counts.toml");
    sc.volume.policy = "monitor".to_owned();
    let (result, mut stack) = sc.run_keeping_stack(MemStore::default()).unwrap();
    // The compressed read goes down; NTFS refuses it itself with the same status.
    let packed = result.steps.get(1).unwrap();
    assert_eq!(
        packed.status,
        StepStatus::Status(NtStatus::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED)
    );
    assert!(matches!(
        packed.decided_by,
        Some(odx_sim::DecidedBy::Below { .. })
    ));
    let (read, _, mode) = stats(&mut stack, 0);
    assert_eq!(mode, PolicyMode::Monitor.as_u32());
    assert_eq!((read.seen, read.forwarded, read.completed), (3, 3, 0));
    assert_eq!(read.would_refuse, 2);
    assert_eq!(read.failed_below, 2);
}

#[test]
fn veto_refuses_with_the_filter_codes_and_counts_them() {
    let (result, mut stack) = scenario("policy_veto.toml")
        .run_keeping_stack(MemStore::default())
        .unwrap();
    assert!(result.passed, "{:?}", result.steps);
    let (read, write, mode) = stats(&mut stack, 0);
    assert_eq!(mode, PolicyMode::Veto.as_u32());
    let r = status_bucket(NtStatus::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED);
    let w = status_bucket(NtStatus::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED);
    assert_eq!((read.completed, read.completed_by_status[r]), (1, 1));
    assert_eq!((write.completed, write.completed_by_status[w]), (1, 1));
}

#[test]
fn set_policy_through_the_port_changes_what_the_stack_does() {
    let sc = scenario("stats_counts.toml");
    let mut stack = sc.build(MemStore::default()).unwrap();
    let set = SetPolicyMessage::new(0, PolicyMode::Veto);
    let reply = stack
        .port_request(set.as_bytes(), PolicyReply::SIZE)
        .unwrap();
    assert_eq!(
        PolicyReply::parse(&reply).unwrap().mode.get(),
        PolicyMode::Veto.as_u32()
    );
    assert_eq!(stack.policy(), PolicyMode::Veto);
    let src = stack.volume().id_of("src").unwrap();
    let h = stack
        .open(src, odx_core::flags::AccessMask::READ_DATA)
        .unwrap();
    assert_eq!(
        stack.offload_read(h, 0, 4096, 0).map(|r| r.transfer_length),
        Err(NtStatus::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED)
    );
    let all = SetPolicyMessage::new(ALL_VOLUMES, PolicyMode::Enforce);
    stack
        .port_request(all.as_bytes(), PolicyReply::SIZE)
        .unwrap();
    assert_eq!(
        stack.offload_read(h, 0, 4096, 0).map(|r| r.transfer_length),
        Ok(4096)
    );
    // Short output buffer and unknown volume: the driver's statuses.
    let query = MessageHeader::new(MessageKind::QueryStats, MessageHeader::SIZE, 0);
    assert_eq!(
        stack.port_request(query.as_bytes(), StatsReply::SIZE - 1),
        Err(NtStatus::STATUS_BUFFER_TOO_SMALL)
    );
    let other = MessageHeader::new(MessageKind::QueryPolicy, MessageHeader::SIZE, 1);
    assert_eq!(
        stack.port_request(other.as_bytes(), PolicyReply::SIZE),
        Err(NtStatus::STATUS_FLT_VOLUME_NOT_FOUND)
    );
}

#[test]
fn numbered_and_named_filters_are_both_accepted() {
    let sc = scenario("diagnose_clean.toml");
    let filters = sc.attached_filters();
    assert_eq!(filters.len(), 2);
    assert_eq!(filters[0].name, "filter#1");
    assert_eq!(filters[0].features, 3);
    assert_eq!(filters[1].name, "wcifs");
    assert_eq!(filters[1].altitude, "189900");
    let blocked = scenario("diagnose_filter_read_only.toml");
    let (result, _) = blocked.run_keeping_stack(MemStore::default()).unwrap();
    assert!(result.passed, "{:?}", result.steps);
}
