//! What odxflt does with its own decision: enforce it, only watch, or refuse offload outright.
//! The mode is per volume, read from the service's `Parameters` key at load and changed at run
//! time through the communication port (`port`).

use crate::ctl::OffloadOp;
use crate::facts::OffloadFacts;
use crate::iomgr::filter_not_supported;
use crate::rules::Rules;
use crate::status::NtStatus;
use crate::validate::{Decision, OffloadRequest, decide};
use crate::verdict::OffloadVerdict;

/// Policy of one volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u32)]
pub enum PolicyMode {
    /// Validate and forward (the default).
    #[default]
    Enforce = 0,
    /// Decide and record, but forward every request untouched and pass every answer through:
    /// odxflt never refuses on its own account.
    Monitor = 1,
    /// Refuse every offload request with `STATUS_OFFLOAD_{READ,WRITE}_FLT_NOT_SUPPORTED`, for
    /// products that must see the data (encryption, scanning, replication).
    Veto = 2,
}

impl PolicyMode {
    /// Every mode.
    pub const ALL: [Self; 3] = [Self::Enforce, Self::Monitor, Self::Veto];

    /// From the registry / wire value; `None` for values no mode has.
    #[must_use]
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            0 => Some(Self::Enforce),
            1 => Some(Self::Monitor),
            2 => Some(Self::Veto),
            _ => None,
        }
    }

    /// The registry / wire value.
    #[must_use]
    pub const fn as_u32(self) -> u32 {
        self as u32
    }

    /// Lower-case name, as `odxctl policy` prints and parses it.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Monitor => "monitor",
            Self::Veto => "veto",
        }
    }

    /// From a name (case-insensitive).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }
}

/// What to do with a request under a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Governed {
    /// Enforce: obey the decision.
    Enforce(Decision<OffloadVerdict>),
    /// Monitor: forward the request untouched; `would` is what enforce would have done.
    Observe {
        /// The decision enforce mode would have obeyed.
        would: Decision<OffloadVerdict>,
    },
    /// Veto: complete at once with this status, asking no fact.
    Veto(NtStatus),
}

/// Applies `mode` to a request: veto asks no fact; monitor decides (for the record) but forwards.
#[inline]
pub fn govern<F: OffloadFacts + ?Sized>(
    mode: PolicyMode,
    op: OffloadOp,
    request: OffloadRequest<'_>,
    facts: &mut F,
    rules: &Rules,
) -> Governed {
    match mode {
        PolicyMode::Veto => Governed::Veto(filter_not_supported(op)),
        PolicyMode::Enforce => Governed::Enforce(decide(op, request, facts, rules)),
        PolicyMode::Monitor => Governed::Observe {
            would: decide(op, request, facts, rules),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::*;
    use crate::flags::FileAttributes;
    use crate::verdict::Verdict;
    use crate::wire::{OffloadReadInput, WireStruct};
    use zerocopy::IntoBytes;

    struct Sparse(u32);
    impl OffloadFacts for Sparse {
        fn volume(&mut self) -> Result<VolumeFacts, NtStatus> {
            self.0 += 1;
            Ok(VolumeFacts::ntfs_default())
        }
        fn handle(&mut self) -> Result<HandleFacts, NtStatus> {
            self.0 += 1;
            Ok(HandleFacts { closed: false })
        }
        fn stream_kind(&mut self) -> Result<StreamKind, NtStatus> {
            self.0 += 1;
            Ok(StreamKind {
                attributes: FileAttributes::SPARSE_FILE,
                ..StreamKind::default()
            })
        }
        fn stream_sizes(&mut self) -> Result<StreamSizes, NtStatus> {
            self.0 += 1;
            Ok(StreamSizes {
                end_of_file: 1 << 20,
                valid_data_length: 1 << 20,
                delete_pending: false,
            })
        }
        fn lock_conflict(&mut self, _: ByteRange, _: LockIntent) -> Result<bool, NtStatus> {
            self.0 += 1;
            Ok(false)
        }
        fn process_image(&mut self) -> Option<&[u16]> {
            self.0 += 1;
            None
        }
        fn file_path(&mut self) -> Option<&[u16]> {
            self.0 += 1;
            None
        }
        fn known_names(&self) -> (Option<&[u16]>, Option<&[u16]>) {
            (None, None)
        }
    }

    fn request(input: &OffloadReadInput) -> OffloadRequest<'_> {
        OffloadRequest {
            input: input.as_bytes(),
            output_len: crate::wire::OffloadReadOutput::SIZE,
        }
    }

    #[test]
    fn veto_refuses_with_the_filter_code_and_asks_no_fact() {
        let input = OffloadReadInput::new(0, 4096, 0);
        let mut facts = Sparse(0);
        let g = govern(
            PolicyMode::Veto,
            OffloadOp::Read,
            request(&input),
            &mut facts,
            &Rules::DOCUMENTED,
        );
        assert_eq!(
            g,
            Governed::Veto(NtStatus::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED)
        );
        assert_eq!(facts.0, 0);
        let g = govern(
            PolicyMode::Veto,
            OffloadOp::Write,
            request(&input),
            &mut facts,
            &Rules::DOCUMENTED,
        );
        assert_eq!(
            g,
            Governed::Veto(NtStatus::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED)
        );
    }

    #[test]
    fn monitor_records_the_refusal_enforce_would_make() {
        let input = OffloadReadInput::new(0, 4096, 0);
        let g = govern(
            PolicyMode::Monitor,
            OffloadOp::Read,
            request(&input),
            &mut Sparse(0),
            &Rules::DOCUMENTED,
        );
        let Governed::Observe { would } = g else {
            panic!("monitor observes")
        };
        assert_eq!(
            would.verdict.completion_status(),
            Some(NtStatus::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED)
        );
        let g = govern(
            PolicyMode::Enforce,
            OffloadOp::Read,
            request(&input),
            &mut Sparse(0),
            &Rules::DOCUMENTED,
        );
        assert!(
            matches!(g, Governed::Enforce(d) if matches!(d.verdict, OffloadVerdict::Read(Verdict::Complete(_))))
        );
    }

    #[test]
    fn mode_values_and_names_round_trip() {
        for m in PolicyMode::ALL {
            assert_eq!(PolicyMode::from_u32(m.as_u32()), Some(m));
            assert_eq!(PolicyMode::from_name(&m.name().to_uppercase()), Some(m));
        }
        assert_eq!(PolicyMode::from_u32(3), None);
        assert_eq!(PolicyMode::from_name("audit"), None);
        assert_eq!(PolicyMode::default(), PolicyMode::Enforce);
    }
}
