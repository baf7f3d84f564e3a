//! The communication port's message handling, written once for the driver and the simulator:
//! request bytes in, reply bytes out, over a [`PortTarget`] (the volumes' statistics and
//! policies). The driver's message callback and `odx_sim::Stack::port_request` both call
//! [`handle_request`]; neither repeats a rule of the protocol.

use crate::governance::{DecisionLog, LineError, RuleSet, text_lines};
use crate::policy::PolicyMode;
use crate::port::governance::{RulesReply, write_journal_page, write_rules_text};
use crate::port::{
    ALL_VOLUMES, ConfigReply, PolicyReply, PortRequest, RegistrySource, StatsReply, StorageWire,
    parse_request,
};
use crate::stats::{OpCounts, VolumeStats};
use crate::status::NtStatus;
use crate::storage::StorageState;
use crate::wire::WireStruct;

/// What the port exposes: attached volumes (by index), their policy and counters, the default.
pub trait PortTarget {
    /// Indices of attached volumes are below this.
    fn volume_slots(&self) -> u32;
    /// Number of attached volumes.
    fn volume_count(&self) -> u32;
    /// The policy and counters of the volume at `index`, `None` when no volume is attached there.
    fn volume(&self, index: u32) -> Option<(PolicyMode, &VolumeStats)>;
    /// Sets the policy of the volume at `index`; `false` when no volume is attached there.
    fn set_volume_policy(&mut self, index: u32, mode: PolicyMode) -> bool;
    /// The default policy (volumes attached later start with it).
    fn default_policy(&self) -> PolicyMode;
    /// Sets the default policy.
    fn set_default_policy(&mut self, mode: PolicyMode);
    /// Where the default came from at load.
    fn registry_source(&self) -> RegistrySource;
    /// The storage state of the volume at `index`, `None` when no volume is attached there.
    fn storage(&self, index: u32) -> Option<&StorageState>;
    /// Interrupt time now (100-ns ticks), for the storage section's back-off ends.
    fn now(&self) -> u64;
    /// Calls `f` with the rules in force (under whatever lock keeps them consistent).
    fn with_rules(&self, f: &mut dyn FnMut(&RuleSet));
    /// Calls `f` with the rules to change, excluding readers for the duration (the request path
    /// sees the old rules or the new ones, never a mix).
    fn with_rules_mut(&mut self, f: &mut dyn FnMut(&mut RuleSet));
    /// The decision journal, if the filter keeps one.
    fn journal(&self) -> Option<&dyn DecisionLog>;
}

fn write_reply<R: WireStruct>(reply: &R, out: &mut [u8]) -> Result<usize, NtStatus> {
    reply
        .serialize_into(out)
        .map_err(|_| NtStatus::STATUS_BUFFER_TOO_SMALL)
}

// Not inlined, like `handle_request`: each stack frame stays below one page, so a kernel caller
// needs no stack probe (`__chkstk`).
#[inline(never)]
fn stats_reply<T: PortTarget + ?Sized>(target: &T, volume: u32) -> Result<StatsReply, NtStatus> {
    let count = target.volume_count();
    if volume == ALL_VOLUMES {
        let (mut read, mut write) = (OpCounts::default(), OpCounts::default());
        for index in 0..target.volume_slots() {
            if let Some((_, stats)) = target.volume(index) {
                read.accumulate(&stats.read.counts());
                write.accumulate(&stats.write.counts());
            }
        }
        return Ok(StatsReply::new(
            volume,
            target.default_policy(),
            count,
            &read,
            &write,
        ));
    }
    let (mode, stats) = target
        .volume(volume)
        .ok_or(NtStatus::STATUS_FLT_VOLUME_NOT_FOUND)?;
    let reply = StatsReply::new(
        volume,
        mode,
        count,
        &stats.read.counts(),
        &stats.write.counts(),
    );
    Ok(match target.storage(volume) {
        Some(storage) => reply.with_storage(StorageWire::new(storage, target.now())),
        None => reply,
    })
}

fn policy_of<T: PortTarget + ?Sized>(target: &T, volume: u32) -> Result<PolicyMode, NtStatus> {
    if volume == ALL_VOLUMES {
        return Ok(target.default_policy());
    }
    target
        .volume(volume)
        .map(|(mode, _)| mode)
        .ok_or(NtStatus::STATUS_FLT_VOLUME_NOT_FOUND)
}

/// Replaces `target`'s rules with `text` as a whole (`RuleSet::try_load_lines`: every line is
/// checked before any rule changes), or keeps them and returns the first bad line. Returns the
/// number of rules in force afterwards.
fn replace_rules<T: PortTarget + ?Sized>(target: &mut T, text: &str) -> (usize, Option<LineError>) {
    let mut outcome = (0, None);
    target.with_rules_mut(&mut |set| {
        outcome = match set.try_load_lines(text_lines(text)) {
            Ok(count) => (count, None),
            Err(error) => (set.rules().len(), Some(error)),
        };
    });
    outcome
}

/// Answers one port message: parses `request` ([`parse_request`]), acts on `target`, and writes
/// the reply to the start of `reply` (the caller's output buffer). Returns the reply's length.
///
/// `SetPolicy` with [`ALL_VOLUMES`] sets the default and every attached volume. A reply that does
/// not fit is not written, and nothing is changed by a request whose reply would not fit.
///
/// # Errors
/// The status [`parse_request`] gives for a malformed request; `STATUS_BUFFER_TOO_SMALL` when
/// `reply` cannot hold the reply; `STATUS_FLT_VOLUME_NOT_FOUND` for an index with no volume.
#[inline(never)]
pub fn handle_request<T: PortTarget + ?Sized>(
    request: &[u8],
    reply: &mut [u8],
    target: &mut T,
) -> Result<usize, NtStatus> {
    match parse_request(request)? {
        PortRequest::QueryStats { volume } => {
            if reply.len() < StatsReply::SIZE {
                return Err(NtStatus::STATUS_BUFFER_TOO_SMALL);
            }
            write_reply(&stats_reply(target, volume)?, reply)
        }
        PortRequest::QueryPolicy { volume } => {
            let mode = policy_of(target, volume)?;
            write_reply(
                &PolicyReply::new(volume, mode, target.volume_count()),
                reply,
            )
        }
        PortRequest::SetPolicy { volume, mode } => {
            if reply.len() < PolicyReply::SIZE {
                return Err(NtStatus::STATUS_BUFFER_TOO_SMALL);
            }
            if volume == ALL_VOLUMES {
                target.set_default_policy(mode);
                for index in 0..target.volume_slots() {
                    target.set_volume_policy(index, mode);
                }
            } else if !target.set_volume_policy(volume, mode) {
                return Err(NtStatus::STATUS_FLT_VOLUME_NOT_FOUND);
            }
            let now = policy_of(target, volume)?;
            write_reply(&PolicyReply::new(volume, now, target.volume_count()), reply)
        }
        PortRequest::SetRules { text } => {
            if reply.len() < RulesReply::SIZE {
                return Err(NtStatus::STATUS_BUFFER_TOO_SMALL);
            }
            let (count, error) = replace_rules(target, text);
            write_reply(&RulesReply::new(count, error.as_ref()), reply)
        }
        PortRequest::QueryRules => {
            let mut result = Err(NtStatus::STATUS_BUFFER_TOO_SMALL);
            target.with_rules(&mut |set| result = write_rules_text(set, reply));
            result
        }
        PortRequest::ReadJournal {
            from_seq,
            max_records,
        } => {
            let log = target.journal().ok_or(NtStatus::STATUS_NOT_SUPPORTED)?;
            write_journal_page(log, from_seq, max_records, reply)
        }
        PortRequest::QueryConfig => write_reply(
            &ConfigReply::new(
                target.default_policy(),
                target.registry_source(),
                target.volume_slots(),
            ),
            reply,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::OffloadOp;
    use crate::policy::Governed;
    use crate::port::{MessageHeader, MessageKind, SetPolicyMessage};
    use crate::storage::{CopyOffloadLimits, StorageCapability};
    use zerocopy::IntoBytes;

    const LIMITS: CopyOffloadLimits = CopyOffloadLimits {
        maximum_token_lifetime: 300,
        default_token_lifetime: 30,
        maximum_transfer_size: 1 << 28,
        optimal_transfer_count: 1 << 26,
        maximum_data_descriptors: 64,
        maximum_transfer_length_per_descriptor: 1 << 25,
        optimal_transfer_length_per_descriptor: 1 << 23,
        optimal_transfer_length_granularity: 8,
    };

    /// Slots 0 and 2 attached, slot 1 free.
    struct Three {
        modes: [Option<PolicyMode>; 3],
        stats: [VolumeStats; 3],
        storage: [StorageState; 3],
        default: PolicyMode,
        rules: std::boxed::Box<RuleSet>,
        journal: crate::governance::Journal<8>,
    }

    impl Three {
        fn new() -> Self {
            let t = Self {
                modes: [Some(PolicyMode::Enforce), None, Some(PolicyMode::Monitor)],
                stats: [VolumeStats::new(), VolumeStats::new(), VolumeStats::new()],
                storage: [
                    StorageState::new(StorageCapability::NotSupported, 180),
                    StorageState::default(),
                    StorageState::new(StorageCapability::Supported(LIMITS), 60),
                ],
                default: PolicyMode::Enforce,
                rules: std::boxed::Box::new(RuleSet::new()),
                journal: crate::governance::Journal::new(),
            };
            t.storage[2].learn(OffloadOp::Write, NtStatus::STATUS_NOT_SUPPORTED, 400);
            let veto = Governed::Veto(NtStatus::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED);
            t.stats[0].on_pre_operation(OffloadOp::Read, &veto);
            t.stats[2].on_pre_operation(OffloadOp::Read, &veto);
            t.stats[2].on_post_operation(OffloadOp::Write, NtStatus::STATUS_SUCCESS, 8, 8);
            let passed = Governed::Enforce(crate::validate::Decision {
                verdict: crate::verdict::OffloadVerdict::Write(
                    crate::verdict::Verdict::PassThrough,
                ),
                check: crate::validate::Check::FactUnavailable(crate::facts::FactKind::Handle),
            });
            t.stats[0].on_pre_operation(OffloadOp::Write, &passed);
            t
        }
    }

    impl PortTarget for Three {
        fn volume_slots(&self) -> u32 {
            3
        }
        fn volume_count(&self) -> u32 {
            2
        }
        fn volume(&self, index: u32) -> Option<(PolicyMode, &VolumeStats)> {
            let i = usize::try_from(index).ok()?;
            Some((self.modes.get(i).copied().flatten()?, self.stats.get(i)?))
        }
        fn set_volume_policy(&mut self, index: u32, mode: PolicyMode) -> bool {
            let slot = usize::try_from(index)
                .ok()
                .and_then(|i| self.modes.get_mut(i));
            match slot {
                Some(Some(m)) => {
                    *m = mode;
                    true
                }
                _ => false,
            }
        }
        fn default_policy(&self) -> PolicyMode {
            self.default
        }
        fn set_default_policy(&mut self, mode: PolicyMode) {
            self.default = mode;
        }
        fn registry_source(&self) -> RegistrySource {
            RegistrySource::Invalid(9)
        }
        fn storage(&self, index: u32) -> Option<&StorageState> {
            let i = usize::try_from(index).ok()?;
            self.modes.get(i).copied().flatten()?;
            self.storage.get(i)
        }
        fn now(&self) -> u64 {
            1_000
        }
        fn with_rules(&self, f: &mut dyn FnMut(&RuleSet)) {
            f(&self.rules);
        }
        fn with_rules_mut(&mut self, f: &mut dyn FnMut(&mut RuleSet)) {
            f(&mut self.rules);
        }
        fn journal(&self) -> Option<&dyn DecisionLog> {
            Some(&self.journal)
        }
    }

    fn query(kind: MessageKind, volume: u32) -> MessageHeader {
        MessageHeader::new(kind, MessageHeader::SIZE, volume)
    }

    #[test]
    fn stats_of_one_volume_and_of_all() {
        let mut t = Three::new();
        let mut out = [0u8; StatsReply::SIZE];
        let n = handle_request(
            query(MessageKind::QueryStats, 2).as_bytes(),
            &mut out,
            &mut t,
        );
        assert_eq!(n, Ok(StatsReply::SIZE));
        let r = StatsReply::parse(&out).unwrap();
        assert_eq!(r.read.seen.get(), 1);
        assert_eq!(r.write.bytes_offloaded.get(), 8);
        assert_eq!(r.mode.get(), PolicyMode::Monitor.as_u32());
        assert_eq!(r.volume_count.get(), 2);
        let storage = r.storage.report().unwrap();
        assert_eq!(storage.capability, StorageCapability::Supported(LIMITS));
        assert_eq!(storage.backoff_seconds, 60);
        assert_eq!(storage.now, 1_000);
        assert_eq!(storage.read_backoff_until, None);
        assert_eq!(
            storage.write_backoff_until,
            Some(400 + 60 * crate::storage::TICKS_PER_SECOND),
            "a write refused at t=400 backs off for 60 s"
        );
        let n = handle_request(
            query(MessageKind::QueryStats, ALL_VOLUMES).as_bytes(),
            &mut out,
            &mut t,
        );
        assert_eq!(n, Ok(StatsReply::SIZE));
        let r = StatsReply::parse(&out).unwrap();
        assert_eq!(r.read.seen.get(), 2, "summed over attached volumes");
        assert_eq!(r.read.completed.get(), 2);
        assert_eq!(
            (r.write.fact_failed.get(), r.write.forwarded.get()),
            (1, 1),
            "a pass-through after a failed fact query reaches the reply"
        );
    }

    #[test]
    fn a_short_output_buffer_or_a_free_slot_is_refused() {
        let mut t = Three::new();
        let mut short = [0u8; StatsReply::SIZE - 1];
        assert_eq!(
            handle_request(
                query(MessageKind::QueryStats, 0).as_bytes(),
                &mut short,
                &mut t
            ),
            Err(NtStatus::STATUS_BUFFER_TOO_SMALL)
        );
        let mut out = [0u8; StatsReply::SIZE];
        assert_eq!(
            handle_request(
                query(MessageKind::QueryStats, 1).as_bytes(),
                &mut out,
                &mut t
            ),
            Err(NtStatus::STATUS_FLT_VOLUME_NOT_FOUND)
        );
        assert_eq!(
            handle_request(
                query(MessageKind::QueryPolicy, 7).as_bytes(),
                &mut out,
                &mut t
            ),
            Err(NtStatus::STATUS_FLT_VOLUME_NOT_FOUND)
        );
        let set = SetPolicyMessage::new(0, PolicyMode::Veto);
        let mut tiny = [0u8; PolicyReply::SIZE - 1];
        assert_eq!(
            handle_request(set.as_bytes(), &mut tiny, &mut t),
            Err(NtStatus::STATUS_BUFFER_TOO_SMALL)
        );
        assert_eq!(t.modes[0], Some(PolicyMode::Enforce), "nothing changed");
    }

    #[test]
    fn malformed_requests_get_the_parser_status() {
        let mut t = Three::new();
        let mut out = [0u8; StatsReply::SIZE];
        let mut bad = query(MessageKind::QueryStats, 0);
        bad.version.set(9);
        assert_eq!(
            handle_request(bad.as_bytes(), &mut out, &mut t),
            Err(NtStatus::STATUS_REVISION_MISMATCH)
        );
        assert_eq!(
            handle_request(&[1, 2, 3], &mut out, &mut t),
            Err(NtStatus::STATUS_BUFFER_TOO_SMALL)
        );
    }

    #[test]
    fn set_policy_for_one_volume_and_for_all() {
        let mut t = Three::new();
        let mut out = [0u8; PolicyReply::SIZE];
        let set = SetPolicyMessage::new(2, PolicyMode::Veto);
        assert_eq!(
            handle_request(set.as_bytes(), &mut out, &mut t),
            Ok(PolicyReply::SIZE)
        );
        assert_eq!(
            t.modes,
            [Some(PolicyMode::Enforce), None, Some(PolicyMode::Veto)]
        );
        assert_eq!(
            PolicyReply::parse(&out).unwrap().mode.get(),
            PolicyMode::Veto.as_u32()
        );
        let all = SetPolicyMessage::new(ALL_VOLUMES, PolicyMode::Monitor);
        assert_eq!(
            handle_request(all.as_bytes(), &mut out, &mut t),
            Ok(PolicyReply::SIZE)
        );
        assert_eq!(t.default, PolicyMode::Monitor);
        assert_eq!(
            t.modes,
            [Some(PolicyMode::Monitor), None, Some(PolicyMode::Monitor)]
        );
        let free = SetPolicyMessage::new(1, PolicyMode::Veto);
        assert_eq!(
            handle_request(free.as_bytes(), &mut out, &mut t),
            Err(NtStatus::STATUS_FLT_VOLUME_NOT_FOUND)
        );
    }

    #[test]
    fn config_reports_the_registry_source_and_slots() {
        let mut t = Three::new();
        let mut out = [0u8; ConfigReply::SIZE];
        assert_eq!(
            handle_request(
                query(MessageKind::QueryConfig, ALL_VOLUMES).as_bytes(),
                &mut out,
                &mut t
            ),
            Ok(ConfigReply::SIZE)
        );
        let r = ConfigReply::parse(&out).unwrap();
        assert_eq!(r.registry(), Some(RegistrySource::Invalid(9)));
        assert_eq!(r.volume_slots.get(), 3);
        assert_eq!(r.default_mode.get(), 0);
    }

    #[test]
    fn registry_values_resolve_to_a_mode() {
        assert_eq!(RegistrySource::from_value(None).mode(), PolicyMode::Enforce);
        assert_eq!(
            RegistrySource::from_value(Some(Ok(2))),
            RegistrySource::Valid(PolicyMode::Veto)
        );
        let invalid = RegistrySource::from_value(Some(Ok(7)));
        assert_eq!(invalid, RegistrySource::Invalid(7));
        assert_eq!(invalid.mode(), PolicyMode::Enforce);
        assert_eq!(
            RegistrySource::from_value(Some(Err(()))).mode(),
            PolicyMode::Enforce
        );
        for s in [
            RegistrySource::Absent,
            RegistrySource::Valid(PolicyMode::Monitor),
            RegistrySource::Invalid(3),
            RegistrySource::WrongType,
        ] {
            let (state, value) = s.to_wire();
            assert_eq!(RegistrySource::from_wire(state, value), Some(s));
        }
    }

    #[test]
    fn reset_zeroes_every_counter() {
        let t = Three::new();
        t.stats[2].reset();
        assert_eq!(t.stats[2].read.counts(), OpCounts::default());
        assert_eq!(t.stats[2].write.counts(), OpCounts::default());
    }

    fn set_rules(text: &str) -> std::vec::Vec<u8> {
        let mut msg = MessageHeader::new(
            MessageKind::SetRules,
            MessageHeader::SIZE + text.len(),
            ALL_VOLUMES,
        )
        .as_bytes()
        .to_vec();
        msg.extend_from_slice(text.as_bytes());
        msg
    }

    #[test]
    fn rules_are_replaced_whole_or_not_at_all_and_read_back_as_text() {
        use crate::port::governance::{RulesReply, RulesTextHeader};
        let mut t = Three::new();
        let mut out = [0u8; 4096];
        let n = handle_request(
            &set_rules("veto process=robocopy.exe\r\n# backups\nmonitor max-size=256K\n"),
            &mut out,
            &mut t,
        )
        .unwrap();
        let r = RulesReply::parse(&out[..n]).unwrap();
        assert_eq!((r.rule_count.get(), r.error()), (2, None));

        let n =
            handle_request(&set_rules("enforce\nveto op=sideways\n"), &mut out, &mut t).unwrap();
        let r = RulesReply::parse(&out[..n]).unwrap();
        assert_eq!(r.rule_count.get(), 2, "the previous rules stay");
        assert_eq!(r.error_line.get(), 2);
        assert!(
            r.error().unwrap().starts_with("line 2: bad value for op"),
            "{:?}",
            r.error()
        );

        let n = handle_request(
            query(MessageKind::QueryRules, 0).as_bytes(),
            &mut out,
            &mut t,
        )
        .unwrap();
        let h = RulesTextHeader::parse(&out[..n]).unwrap();
        let text = core::str::from_utf8(&out[RulesTextHeader::SIZE..n]).unwrap();
        assert_eq!(h.rule_count.get(), 2);
        assert_eq!(text, "veto process=robocopy.exe\nmonitor max-size=256K\n");
        assert_eq!(
            handle_request(
                query(MessageKind::QueryRules, 0).as_bytes(),
                &mut out[..30],
                &mut t
            ),
            Err(NtStatus::STATUS_BUFFER_TOO_SMALL)
        );
        // Not UTF-8: refused before anything changes.
        let mut bad = set_rules("veto");
        bad.push(0xFF);
        let len = u32::try_from(bad.len()).unwrap();
        bad[8..12].copy_from_slice(&len.to_le_bytes());
        assert_eq!(
            handle_request(&bad, &mut out, &mut t),
            Err(NtStatus::STATUS_INVALID_PARAMETER)
        );
    }

    #[test]
    fn the_journal_is_read_in_pages_and_an_overrun_is_counted() {
        use crate::governance::journal::{DecidedBy, Event};
        use crate::port::governance::{JournalPageHeader, JournalRecordWire, ReadJournalMessage};
        let mut t = Three::new();
        let name: std::vec::Vec<u16> = "robocopy.exe".encode_utf16().collect();
        for i in 0..11_u64 {
            t.journal.record_completed(
                &Event {
                    time: i,
                    volume: 2,
                    process_id: 7,
                    process_image: &name,
                    file_name: &[],
                    op: OffloadOp::Write,
                    offset: 0,
                    length: 4096 * i,
                    rule: Some(0),
                    decided_by: DecidedBy::Rule(0),
                },
                NtStatus::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED,
                0,
            );
        }
        let mut out = [0u8; JournalPageHeader::SIZE + 2 * JournalRecordWire::SIZE];
        let n = handle_request(ReadJournalMessage::new(0, 0).as_bytes(), &mut out, &mut t).unwrap();
        let h = JournalPageHeader::parse(&out[..n]).unwrap();
        // 11 written into 8 slots: 0..=2 are gone, the page holds 3 and 4.
        assert_eq!((h.copied.get(), h.lost.get(), h.next_seq.get()), (2, 3, 5));
        let first = JournalRecordWire::parse(&out[JournalPageHeader::SIZE..]).unwrap();
        assert_eq!(first.seq.get(), 3);
        assert_eq!(first.decided_by(), Some(DecidedBy::Rule(0)));
        assert_eq!(first.rule(), Some(0));
        assert_eq!(
            std::string::String::from_utf16(&first.process_units().collect::<std::vec::Vec<_>>())
                .unwrap(),
            "robocopy.exe"
        );
        let mut big = [0u8; 4096];
        let n = handle_request(ReadJournalMessage::new(5, 0).as_bytes(), &mut big, &mut t).unwrap();
        let h = JournalPageHeader::parse(&big[..n]).unwrap();
        assert_eq!((h.copied.get(), h.lost.get(), h.next_seq.get()), (6, 0, 11));
        assert_eq!(n, JournalPageHeader::SIZE + 6 * JournalRecordWire::SIZE);
    }
}
