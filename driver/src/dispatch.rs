//! The driver's part of a request, without the kernel: hand the system buffer to the core
//! filter (`odx_core::filter`: policy, verdict, buffer rewrite, completion mapping) and turn its
//! answer into what the callbacks return. No rule is decided here; every status and every length
//! comes from `odx_core`.

use core::num::NonZeroU64;

use odx_core::filter::{self, PreEnv, PreOp, StorageAt};
use odx_core::governance::JournalSeq;
use odx_core::policy::PolicyMode;
use odx_core::stats::VolumeStats;
use odx_core::{NtStatus, OffloadFacts, OffloadOp, Rules};

pub use odx_core::filter::PostContext;

use crate::request::SystemBuffer;

/// What the pre-operation callback does with the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreAction {
    /// `FLT_PREOP_COMPLETE` with `IoStatus` = (`status`, `information`); the output, if any, is
    /// already in the buffer.
    Complete {
        /// `IoStatus.Status`.
        status: NtStatus,
        /// `IoStatus.Information`.
        information: usize,
    },
    /// `FLT_PREOP_SUCCESS_WITH_CALLBACK` with `context` as completion context.
    Forward {
        /// Handed to post-operation.
        context: PostContext,
        /// The input in the system buffer was rewritten (a trimmed `CopyLength`). The parameter
        /// block is unchanged, so the callback data is not marked dirty.
        input_rewritten: bool,
        /// The request's journal record, completed in post-operation.
        journal_seq: Option<u64>,
    },
    /// `FLT_PREOP_SUCCESS_NO_CALLBACK`: the request goes down exactly as the caller sent it and
    /// the file system decides (a fact query failed; already counted by the core).
    PassThrough,
}

/// The final `IoStatus` of a forwarded request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostAction {
    /// `IoStatus.Status`.
    pub status: NtStatus,
    /// `IoStatus.Information`.
    pub information: usize,
}

/// The completion context odxflt hands from pre- to post-operation: the core's context and the
/// volume's slot in [`crate::volumes::VOLUMES`], through which post-operation (≤ DISPATCH_LEVEL)
/// reaches the volume's counters without a context lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The core's post-operation context.
    pub context: PostContext,
    /// The volume's statistics slot (`None`: not counted).
    pub slot: Option<u32>,
    /// The journal record to complete (`None`: none was made).
    pub journal: Option<JournalTicket>,
}

/// A forwarded request's journal record as the completion context keeps it: its sequence
/// number plus one, so the `Option` costs no word of its own (the context is 48 bytes, not 56,
/// in every pending request's pool block and in the pre-operation trampoline's frame, which is
/// live across the checks' kernel calls). Sequence `u64::MAX` gets no ticket: that record stays
/// pending, as one overwritten before its completion would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalTicket(NonZeroU64);

impl JournalTicket {
    /// The ticket of record `seq`.
    #[must_use]
    pub fn new(seq: u64) -> Option<Self> {
        NonZeroU64::new(seq.wrapping_add(1)).map(Self)
    }

    /// The record's sequence number.
    #[must_use]
    pub const fn seq(self) -> u64 {
        self.0.get().wrapping_sub(1)
    }
}

/// Pre-operation: the core filter's pre-operation over the system buffer, under `env` (the
/// volume's mode, the conflict choices, the governance rules in force, the volume's counters
/// and the journal).
pub fn pre_operation<F: OffloadFacts + ?Sized>(
    op: OffloadOp,
    buffer: &mut SystemBuffer<'_>,
    facts: &mut F,
    env: &PreEnv<'_>,
) -> PreAction {
    action(filter::pre_operation_in(buffer.buffered(op), facts, env))
}

/// The driver's part of the core's answer.
#[inline(always)]
fn action(pre: PreOp) -> PreAction {
    match pre {
        PreOp::Complete {
            status,
            information,
            ..
        } => PreAction::Complete {
            status,
            information,
        },
        PreOp::Forward {
            context,
            input_rewritten,
            journal_seq,
            ..
        } => PreAction::Forward {
            context,
            input_rewritten,
            journal_seq,
        },
        PreOp::PassThrough { .. } => PreAction::PassThrough,
    }
}

/// Pre-operation with nothing configured: the core filter's plain pre-operation over the system
/// buffer under the volume's `mode` (what [`pre_operation`] does with no rules and no journal).
pub fn pre_operation_plain<F: OffloadFacts + ?Sized>(
    op: OffloadOp,
    mode: PolicyMode,
    buffer: &mut SystemBuffer<'_>,
    facts: &mut F,
    stats: Option<&VolumeStats>,
) -> PreAction {
    action(filter::pre_operation(
        buffer.buffered(op),
        mode,
        facts,
        &Rules::DOCUMENTED,
        stats,
    ))
}

/// Post-operation: the core filter's completion mapping; `below` and `information` are the
/// `IoStatus` the file system set. Output is read and written within `OutputBufferLength`. The
/// core learns a refusal from the storage into `storage` (the volume's back-off).
pub fn post_operation(
    context: &PostContext,
    below: NtStatus,
    information: usize,
    buffer: &mut SystemBuffer<'_>,
    stats: Option<&VolumeStats>,
    storage: Option<StorageAt<'_>>,
    journal: Option<JournalSeq<'_>>,
) -> PostAction {
    let (status, information) = filter::post_operation(
        context,
        buffer.answer(below, information),
        &Rules::DOCUMENTED,
        stats,
        storage,
        journal,
    );
    PostAction {
        status,
        information,
    }
}

#[cfg(test)]
mod tests {
    use odx_core::flags::OffloadReadFlags;
    use odx_core::governance::{Governance, JournalAt};
    use odx_core::policy::PolicyMode;
    use odx_core::wire::WireStruct;
    use odx_core::wire::{
        OffloadReadInput, OffloadReadOutput, OffloadWriteInput, OffloadWriteOutput,
        StorageOffloadToken,
    };
    use odx_core::{
        ByteRange, HandleFacts, LockIntent, SectorSize, StreamKind, StreamSizes, VolumeFacts,
    };
    use odx_core::{ReadContext, WriteContext};

    use super::*;

    /// [`super::pre_operation`] with the environment's parts as the driver's callback builds
    /// them.
    fn pre_operation<F: OffloadFacts + ?Sized>(
        op: OffloadOp,
        mode: PolicyMode,
        buffer: &mut SystemBuffer<'_>,
        facts: &mut F,
        stats: Option<&VolumeStats>,
        governance: Option<Governance<'_>>,
        journal: Option<JournalAt<'_>>,
    ) -> PreAction {
        let env = PreEnv {
            mode,
            rules: &Rules::DOCUMENTED,
            stats,
            governance,
            journal,
        };
        super::pre_operation(op, buffer, facts, &env)
    }

    /// A file of `eof` bytes, `vdl` of them valid, on the default NTFS volume.
    struct File {
        eof: u64,
        vdl: u64,
    }

    impl OffloadFacts for File {
        fn process_image(&mut self) -> Option<&[u16]> {
            None
        }
        fn file_path(&mut self) -> Option<&[u16]> {
            None
        }
        fn known_names(&self) -> (Option<&[u16]>, Option<&[u16]>) {
            (None, None)
        }
        fn volume(&mut self) -> Result<VolumeFacts, NtStatus> {
            Ok(VolumeFacts::ntfs_default())
        }
        fn handle(&mut self) -> Result<HandleFacts, NtStatus> {
            Ok(HandleFacts { closed: false })
        }
        fn stream_kind(&mut self) -> Result<StreamKind, NtStatus> {
            Ok(StreamKind::default())
        }
        fn stream_sizes(&mut self) -> Result<StreamSizes, NtStatus> {
            Ok(StreamSizes {
                end_of_file: self.eof,
                valid_data_length: self.vdl,
                delete_pending: false,
            })
        }
        fn lock_conflict(&mut self, _: ByteRange, _: LockIntent) -> Result<bool, NtStatus> {
            Ok(false)
        }
    }

    fn read_buffer(offset: u64, length: u64) -> std::vec::Vec<u8> {
        let mut bytes = std::vec![0_u8; 528];
        OffloadReadInput::new(offset, length, 0)
            .serialize_into(&mut bytes)
            .unwrap();
        bytes
    }

    fn write_buffer(offset: u64, length: u64) -> std::vec::Vec<u8> {
        let mut bytes = std::vec![0_u8; 544];
        let input = OffloadWriteInput::new(offset, length, 0, StorageOffloadToken::zero_data());
        input.serialize_into(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn a_refused_request_completes_with_the_core_status_and_no_output() {
        let mut bytes = read_buffer(100, 4096);
        let mut buffer = SystemBuffer::new(&mut bytes, 32, 528);
        let action = pre_operation(
            OffloadOp::Read,
            PolicyMode::Enforce,
            &mut buffer,
            &mut File {
                eof: 1 << 20,
                vdl: 1 << 20,
            },
            None,
            None,
            None,
        );
        assert_eq!(
            action,
            PreAction::Complete {
                status: NtStatus::STATUS_INVALID_PARAMETER,
                information: 0
            }
        );
    }

    #[test]
    fn a_read_beyond_vdl_goes_down_untouched_for_ntfs_to_answer() {
        // Valid data length comes from an unlocked FCB header: it may trim, never answer.
        let mut bytes = read_buffer(8192, 4096);
        let before = bytes.clone();
        let mut buffer = SystemBuffer::new(&mut bytes, 32, 528);
        let action = pre_operation(
            OffloadOp::Read,
            PolicyMode::Enforce,
            &mut buffer,
            &mut File {
                eof: 1 << 20,
                vdl: 4096,
            },
            None,
            None,
            None,
        );
        assert_eq!(
            action,
            PreAction::Forward {
                context: PostContext::Read(ReadContext::untouched(4096, SectorSize::DEFAULT)),
                input_rewritten: false,
                journal_seq: None,
            }
        );
        assert_eq!(bytes, before);
        // NTFS's zero-token answer passes through post-operation unchanged.
        let answer = OffloadReadOutput::new(
            OffloadReadFlags::ALL_ZERO_BEYOND_CURRENT_RANGE,
            4096,
            StorageOffloadToken::zero_data(),
        );
        answer.serialize_into(&mut bytes).unwrap();
        let PreAction::Forward { context, .. } = action else {
            unreachable!()
        };
        let mut buffer = SystemBuffer::new(&mut bytes, 32, 528);
        let post = post_operation(
            &context,
            NtStatus::STATUS_SUCCESS,
            528,
            &mut buffer,
            None,
            None,
            None,
        );
        assert_eq!(
            post,
            PostAction {
                status: NtStatus::STATUS_SUCCESS,
                information: 528
            }
        );
        let output = OffloadReadOutput::parse(&bytes).unwrap();
        assert!(output.token.is_zero_data());
        assert_eq!(output.transfer_length.get(), 4096);
        assert!(
            output
                .read_flags()
                .contains(OffloadReadFlags::ALL_ZERO_BEYOND_CURRENT_RANGE)
        );
    }

    #[test]
    fn a_storage_refusal_is_answered_as_not_supported_and_backs_off() {
        use odx_core::storage::{StorageCapability, StorageState};
        let storage = StorageState::new(StorageCapability::Unknown, 180);
        let mut bytes = read_buffer(0, 4096);
        let mut buffer = SystemBuffer::new(&mut bytes, 32, 528);
        let action = post_operation(
            &PostContext::Read(ReadContext::untouched(4096, SectorSize::DEFAULT)),
            NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED,
            0,
            &mut buffer,
            None,
            Some(StorageAt {
                state: &storage,
                now: 1_000,
            }),
            None,
        );
        assert_eq!(action.status, NtStatus::STATUS_NOT_SUPPORTED);
        assert!(storage.backoff_until(OffloadOp::Read, 1_001).is_some());
        assert!(storage.backoff_until(OffloadOp::Write, 1_001).is_none());
    }

    #[test]
    fn a_failed_fact_query_is_a_pass_through_without_callback() {
        struct NoSizes;
        impl OffloadFacts for NoSizes {
            fn process_image(&mut self) -> Option<&[u16]> {
                None
            }
            fn file_path(&mut self) -> Option<&[u16]> {
                None
            }
            fn known_names(&self) -> (Option<&[u16]>, Option<&[u16]>) {
                (None, None)
            }
            fn volume(&mut self) -> Result<VolumeFacts, NtStatus> {
                Ok(VolumeFacts::ntfs_default())
            }
            fn handle(&mut self) -> Result<HandleFacts, NtStatus> {
                Ok(HandleFacts::default())
            }
            fn stream_kind(&mut self) -> Result<StreamKind, NtStatus> {
                Ok(StreamKind::default())
            }
            fn stream_sizes(&mut self) -> Result<StreamSizes, NtStatus> {
                Err(NtStatus::STATUS_INSUFFICIENT_RESOURCES)
            }
            fn lock_conflict(&mut self, _: ByteRange, _: LockIntent) -> Result<bool, NtStatus> {
                Ok(false)
            }
        }
        let stats = VolumeStats::new();
        let mut bytes = write_buffer(0, 4096);
        let before = bytes.clone();
        let mut buffer = SystemBuffer::new(&mut bytes, 544, 16);
        let action = pre_operation(
            OffloadOp::Write,
            PolicyMode::Enforce,
            &mut buffer,
            &mut NoSizes,
            Some(&stats),
            None,
            None,
        );
        assert_eq!(action, PreAction::PassThrough);
        assert_eq!(bytes, before);
        let write = stats.write.counts();
        assert_eq!(
            (
                write.seen,
                write.forwarded,
                write.completed,
                write.fact_failed
            ),
            (1, 1, 0, 1)
        );
    }

    #[test]
    fn a_trimmed_read_rewrites_copy_length_in_the_buffer() {
        let mut bytes = read_buffer(0, 1 << 20);
        let mut buffer = SystemBuffer::new(&mut bytes, 32, 528);
        let action = pre_operation(
            OffloadOp::Read,
            PolicyMode::Enforce,
            &mut buffer,
            &mut File {
                eof: 1 << 20,
                vdl: 5000,
            },
            None,
            None,
            None,
        );
        let PreAction::Forward {
            context: PostContext::Read(context),
            input_rewritten,
            ..
        } = action
        else {
            panic!("expected a forwarded read, got {action:?}");
        };
        assert!(input_rewritten);
        assert_eq!(context.forwarded_length, 5120);
        assert_eq!(
            OffloadReadInput::parse(&bytes).unwrap().copy_length.get(),
            5120
        );
    }

    #[test]
    fn an_untrimmed_forward_leaves_the_buffer_alone() {
        let mut bytes = write_buffer(0, 4096);
        let before = bytes.clone();
        let mut buffer = SystemBuffer::new(&mut bytes, 544, 16);
        let action = pre_operation(
            OffloadOp::Write,
            PolicyMode::Enforce,
            &mut buffer,
            &mut File {
                eof: 1 << 20,
                vdl: 1 << 20,
            },
            None,
            None,
            None,
        );
        assert!(matches!(
            action,
            PreAction::Forward {
                context: PostContext::Write(_),
                input_rewritten: false,
                journal_seq: None,
            }
        ));
        assert_eq!(bytes, before);
    }

    fn read_context(forwarded: u64, zero_beyond: bool) -> PostContext {
        PostContext::Read(ReadContext {
            requested_length: 1 << 20,
            forwarded_length: forwarded,
            zero_beyond_forwarded: zero_beyond,
            sector_size: SectorSize::DEFAULT,
        })
    }

    #[test]
    fn post_read_keeps_the_zero_flag_when_the_answer_covers_the_trimmed_range() {
        let mut bytes = std::vec![0_u8; 528];
        let answer = OffloadReadOutput::new(
            OffloadReadFlags::empty(),
            5120,
            StorageOffloadToken::zero_data(),
        );
        answer.serialize_into(&mut bytes).unwrap();
        let mut buffer = SystemBuffer::new(&mut bytes, 32, 528);
        let action = post_operation(
            &read_context(5120, true),
            NtStatus::STATUS_SUCCESS,
            528,
            &mut buffer,
            None,
            None,
            None,
        );
        assert_eq!(
            action,
            PostAction {
                status: NtStatus::STATUS_SUCCESS,
                information: 528
            }
        );
        let output = OffloadReadOutput::parse(&bytes).unwrap();
        assert!(
            output
                .read_flags()
                .contains(OffloadReadFlags::ALL_ZERO_BEYOND_CURRENT_RANGE)
        );
    }

    #[test]
    fn post_read_refuses_an_answer_longer_than_asked() {
        let mut bytes = std::vec![0_u8; 528];
        let answer = OffloadReadOutput::new(
            OffloadReadFlags::empty(),
            8192,
            StorageOffloadToken::zero_data(),
        );
        answer.serialize_into(&mut bytes).unwrap();
        let mut buffer = SystemBuffer::new(&mut bytes, 32, 528);
        let action = post_operation(
            &read_context(4096, false),
            NtStatus::STATUS_SUCCESS,
            528,
            &mut buffer,
            None,
            None,
            None,
        );
        assert_eq!(
            action,
            PostAction {
                status: Rules::DOCUMENTED.broken_lower_contract,
                information: 0
            }
        );
    }

    #[test]
    fn post_maps_failures_from_below_through_the_core_table() {
        let mut bytes = std::vec![0_u8; 528];
        let mut buffer = SystemBuffer::new(&mut bytes, 32, 528);
        let action = post_operation(
            &read_context(4096, false),
            NtStatus::STATUS_ACCESS_DENIED,
            0,
            &mut buffer,
            None,
            None,
            None,
        );
        assert_eq!(
            action.status,
            NtStatus::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED
        );
        assert_eq!(action.information, 0);
        let lock = post_operation(
            &read_context(4096, false),
            NtStatus::STATUS_FILE_LOCK_CONFLICT,
            0,
            &mut buffer,
            None,
            None,
            None,
        );
        assert_eq!(lock.status, NtStatus::STATUS_FILE_LOCK_CONFLICT);
    }

    /// What `Odxflt::abandoned` asks of post-operation when a forward's completion context
    /// cannot be allocated: STATUS_INSUFFICIENT_RESOURCES "from below" stays itself (no row of
    /// the completion table maps it), nothing is returned or written, and the volume counts one
    /// failure below.
    #[test]
    fn an_abandoned_forward_completes_with_insufficient_resources_and_is_counted() {
        let contexts = [
            read_context(4096, false),
            PostContext::Write(WriteContext {
                requested_length: 1 << 20,
                forwarded_length: 4096,
                sector_size: SectorSize::DEFAULT,
            }),
        ];
        for context in contexts {
            let mut bytes = std::vec![0x5A_u8; 544];
            let before = bytes.clone();
            let mut buffer = SystemBuffer::new(&mut bytes, 544, 528);
            let stats = VolumeStats::new();
            let action = post_operation(
                &context,
                NtStatus::STATUS_INSUFFICIENT_RESOURCES,
                0,
                &mut buffer,
                Some(&stats),
                None,
                None,
            );
            assert_eq!(
                (action.status, action.information),
                (NtStatus::STATUS_INSUFFICIENT_RESOURCES, 0),
                "{context:?}"
            );
            assert_eq!(bytes, before, "{context:?}: the buffer is left as it was");
            let counts = stats.op(context.op()).counts();
            assert_eq!(
                (counts.failed_below, counts.bytes_offloaded),
                (1, 0),
                "{context:?}"
            );
        }
    }

    #[test]
    fn post_never_reads_or_writes_past_the_output_length() {
        // A layer below that claims more output than the caller's 16-byte buffer holds.
        let mut bytes = std::vec![0xAB_u8; 544];
        OffloadWriteOutput::new(4096)
            .serialize_into(&mut bytes)
            .unwrap();
        let mut buffer = SystemBuffer::new(&mut bytes, 544, 16);
        let context = PostContext::Write(WriteContext {
            requested_length: 4096,
            forwarded_length: 4096,
            sector_size: SectorSize::DEFAULT,
        });
        let action = post_operation(
            &context,
            NtStatus::STATUS_SUCCESS,
            544,
            &mut buffer,
            None,
            None,
            None,
        );
        assert_eq!(
            action,
            PostAction {
                status: NtStatus::STATUS_SUCCESS,
                information: 16
            }
        );
        assert!(bytes.get(16..).unwrap().iter().all(|b| *b == 0xAB));
        assert_eq!(context.op(), OffloadOp::Write);
    }

    #[test]
    fn veto_policy_refuses_without_asking_a_fact() {
        struct NoFacts;
        impl OffloadFacts for NoFacts {
            fn process_image(&mut self) -> Option<&[u16]> {
                None
            }
            fn file_path(&mut self) -> Option<&[u16]> {
                None
            }
            fn known_names(&self) -> (Option<&[u16]>, Option<&[u16]>) {
                (None, None)
            }
            fn volume(&mut self) -> Result<VolumeFacts, NtStatus> {
                panic!("veto must not ask")
            }
            fn handle(&mut self) -> Result<HandleFacts, NtStatus> {
                panic!("veto must not ask")
            }
            fn stream_kind(&mut self) -> Result<StreamKind, NtStatus> {
                panic!("veto must not ask")
            }
            fn stream_sizes(&mut self) -> Result<StreamSizes, NtStatus> {
                panic!("veto must not ask")
            }
            fn lock_conflict(&mut self, _: ByteRange, _: LockIntent) -> Result<bool, NtStatus> {
                panic!("veto must not ask")
            }
        }
        let mut bytes = write_buffer(0, 4096);
        let mut buffer = SystemBuffer::new(&mut bytes, 544, 16);
        let action = pre_operation(
            OffloadOp::Write,
            PolicyMode::Veto,
            &mut buffer,
            &mut NoFacts,
            None,
            None,
            None,
        );
        assert_eq!(
            action,
            PreAction::Complete {
                status: NtStatus::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED,
                information: 0
            }
        );
    }

    #[test]
    fn a_forwarded_request_is_counted_in_pre_and_post_operation() {
        let stats = VolumeStats::new();
        let mut bytes = read_buffer(0, 8192);
        let mut buffer = SystemBuffer::new(&mut bytes, 32, 528);
        let mut file = File {
            eof: 1 << 20,
            vdl: 1 << 20,
        };
        let action = pre_operation(
            OffloadOp::Read,
            PolicyMode::Enforce,
            &mut buffer,
            &mut file,
            Some(&stats),
            None,
            None,
        );
        let PreAction::Forward { context, .. } = action else {
            panic!("a plain read is forwarded: {action:?}")
        };
        let answer = OffloadReadOutput::new(
            OffloadReadFlags::empty(),
            4096,
            StorageOffloadToken::zero_data(),
        );
        answer.serialize_into(&mut bytes).unwrap();
        let mut buffer = SystemBuffer::new(&mut bytes, 32, 528);
        let action = post_operation(
            &context,
            NtStatus::STATUS_SUCCESS,
            528,
            &mut buffer,
            Some(&stats),
            None,
            None,
        );
        assert_eq!(action.status, NtStatus::STATUS_SUCCESS);
        let read = stats.read.counts();
        assert_eq!((read.seen, read.forwarded, read.completed), (1, 1, 0));
        assert_eq!((read.bytes_offloaded, read.truncated), (4096, 1));
        let mut bytes = read_buffer(100, 4096);
        let mut buffer = SystemBuffer::new(&mut bytes, 32, 528);
        let _ = pre_operation(
            OffloadOp::Read,
            PolicyMode::Enforce,
            &mut buffer,
            &mut file,
            Some(&stats),
            None,
            None,
        );
        assert_eq!(stats.read.counts().completed, 1);
    }
}
