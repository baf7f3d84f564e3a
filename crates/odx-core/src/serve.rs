//! The communication port's message handling, written once for the driver and the simulator:
//! request bytes in, reply bytes out, over a [`PortTarget`] (the volumes' statistics and
//! policies). The driver's message callback and `odx_sim::Stack::port_request` both call
//! [`handle_request`]; neither repeats a rule of the protocol.

use crate::policy::PolicyMode;
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
}
