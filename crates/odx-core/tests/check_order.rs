//! Where two rules collide, the earlier one in the documented order decides. For every pair of
//! checks (a, b) with a before b, a request violating both must be decided by a — with a's
//! outcome: its status, or (for `BeyondValidData`, the rule odxflt leaves to the file system) the
//! request forwarded exactly as the caller sent it. The violations are built to be independent,
//! so each pair is a real collision (e.g. a sparse file with an unaligned offset is refused for
//! alignment).

mod common;

use common::*;
use odx_core::flags::{FileAttributes, VolumeFlags};
use odx_core::validate::{READ_ORDER, WRITE_ORDER};
use odx_core::*;
use zerocopy::IntoBytes;

#[derive(Clone, Debug)]
struct Case {
    offset: u64,
    length: u64,
    size_field: Option<u32>,
    input_len: Option<usize>,
    output_len: usize,
    facts: Facts,
}

impl Case {
    fn new(op: OffloadOp) -> Self {
        Self {
            offset: 0,
            length: 4096,
            size_field: None,
            input_len: None,
            output_len: if op == OffloadOp::Read { 528 } else { 16 },
            facts: Facts::default(),
        }
    }

    fn violate(&mut self, op: OffloadOp, check: Check) {
        let f = &mut self.facts;
        match check {
            Check::FileSystemImplementsOffload => {
                *f = f
                    .clone()
                    .with_volume(|v| v.file_system = FileSystemKind::Other);
            }
            Check::VolumeMounted => {
                *f = f
                    .clone()
                    .with_volume(|v| v.flags |= VolumeFlags::DISMOUNTED)
            }
            Check::HandleOpen => *f = f.clone().closed(),
            Check::VolumeWritable => {
                *f = f.clone().with_volume(|v| v.flags |= VolumeFlags::READ_ONLY)
            }
            Check::OffloadSupported => {
                let bit = if op == OffloadOp::Read {
                    VolumeFlags::OFFLOAD_READ_SUPPORTED
                } else {
                    VolumeFlags::OFFLOAD_WRITE_SUPPORTED
                };
                *f = f.clone().with_volume(|v| v.flags.remove(bit));
            }
            Check::InputLength => {
                self.input_len = Some(if op == OffloadOp::Read { 31 } else { 543 })
            }
            Check::OutputLength => self.output_len = if op == OffloadOp::Read { 527 } else { 15 },
            Check::Alignment => self.offset |= 1,
            Check::SizeField => self.size_field = Some(7),
            Check::RangeOverflow => {
                self.offset = u64::MAX - 511;
                self.length = 1024;
            }
            Check::ZeroLength => self.length = 0,
            Check::StreamKind => *f = f.clone().attributes(FileAttributes::SPARSE_FILE),
            Check::StreamDeleted => *f = f.clone().deleted(),
            Check::MaxFileSize => *f = f.clone().with_volume(|v| v.max_file_size = 4095),
            Check::LockConflict => *f = f.clone().lock(0, u64::MAX, true, OTHER),
            Check::EndOfFile => set_sizes(f, 0, 0),
            Check::TinyFile => {
                self.offset = 0;
                set_sizes(f, 100, 100);
            }
            Check::BeyondValidData => {
                if op == OffloadOp::Write {
                    self.offset = 4096;
                }
                let eof = f.sizes.map(|s| s.end_of_file).unwrap_or(MIB);
                set_sizes(f, eof, 0);
            }
            Check::Forward | Check::FactUnavailable(_) => unreachable!(),
        }
    }

    /// The decision, and the input bytes the caller sent.
    fn decide(&self, op: OffloadOp) -> (Decision<OffloadVerdict>, Vec<u8>) {
        let mut bytes = match op {
            OffloadOp::Read => read_input(self.offset, self.length).as_bytes().to_vec(),
            OffloadOp::Write => write_input(self.offset, self.length, 0).as_bytes().to_vec(),
        };
        if let Some(size) = self.size_field {
            bytes[..4].copy_from_slice(&size.to_le_bytes());
        }
        if let Some(len) = self.input_len {
            bytes.truncate(len);
        }
        let mut facts = self.facts.clone();
        let d = decide(
            op,
            OffloadRequest {
                input: &bytes,
                output_len: self.output_len,
            },
            &mut facts,
            &Rules::DOCUMENTED,
        );
        (d, bytes)
    }
}

fn set_sizes(f: &mut Facts, end_of_file: u64, valid_data_length: u64) {
    let deleted = f.sizes.map(|s| s.delete_pending).unwrap_or(false);
    f.sizes = Ok(StreamSizes {
        end_of_file,
        valid_data_length,
        delete_pending: deleted,
    });
}

/// What a decision does with the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Completed by odxflt with this status.
    Completes(NtStatus),
    /// Forwarded exactly as the caller sent it, with a post-operation that passes the file
    /// system's answer through (nothing trimmed, no zero flag of odxflt's own).
    ForwardedUntouched,
    /// Forwarded, possibly trimmed.
    Forwarded,
    /// Passed through without a post-operation.
    PassedThrough,
}

fn outcome(d: &Decision<OffloadVerdict>, sent: &[u8]) -> Outcome {
    match d.verdict {
        OffloadVerdict::Read(Verdict::Complete(c)) => Outcome::Completes(c.status),
        OffloadVerdict::Write(Verdict::Complete(c)) => Outcome::Completes(c.status),
        OffloadVerdict::Read(Verdict::Forward(f)) => {
            let mut forwarded = sent.to_vec();
            f.rewrite(&mut forwarded);
            if forwarded == sent
                && f.context
                    == ReadContext::untouched(f.context.requested_length, f.context.sector_size)
            {
                Outcome::ForwardedUntouched
            } else {
                Outcome::Forwarded
            }
        }
        OffloadVerdict::Write(Verdict::Forward(f)) => {
            let mut forwarded = sent.to_vec();
            f.rewrite(&mut forwarded);
            if forwarded == sent
                && f.context
                    == WriteContext::untouched(f.context.requested_length, f.context.sector_size)
            {
                Outcome::ForwardedUntouched
            } else {
                Outcome::Forwarded
            }
        }
        OffloadVerdict::Read(Verdict::PassThrough)
        | OffloadVerdict::Write(Verdict::PassThrough) => Outcome::PassedThrough,
    }
}

/// The outcome each check ends a request with under `Rules::DOCUMENTED`.
fn outcome_of_check(op: OffloadOp, check: Check) -> Outcome {
    match check {
        Check::BeyondValidData => Outcome::ForwardedUntouched,
        _ => Outcome::Completes(status_of_check(op, check)),
    }
}

/// The status each completing check ends a request with under `Rules::DOCUMENTED`.
fn status_of_check(op: OffloadOp, check: Check) -> NtStatus {
    use NtStatus as N;
    match (check, op) {
        (Check::FileSystemImplementsOffload, _) => N::STATUS_INVALID_DEVICE_REQUEST,
        (Check::VolumeMounted, _) => N::STATUS_VOLUME_DISMOUNTED,
        (Check::HandleOpen, _) => N::STATUS_FILE_CLOSED,
        (Check::VolumeWritable, _) => N::STATUS_MEDIA_WRITE_PROTECTED,
        (Check::OffloadSupported, _) => N::STATUS_NOT_SUPPORTED,
        (Check::InputLength | Check::OutputLength, _) => N::STATUS_BUFFER_TOO_SMALL,
        (
            Check::Alignment
            | Check::SizeField
            | Check::RangeOverflow
            | Check::MaxFileSize
            | Check::TinyFile,
            _,
        ) => N::STATUS_INVALID_PARAMETER,
        (Check::ZeroLength, _) => N::STATUS_SUCCESS,
        (Check::StreamKind, OffloadOp::Read) => N::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED,
        (Check::StreamKind, OffloadOp::Write) => N::STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED,
        (Check::StreamDeleted, _) => N::STATUS_FILE_DELETED,
        (Check::LockConflict, _) => N::STATUS_FILE_LOCK_CONFLICT,
        (Check::EndOfFile, _) => N::STATUS_END_OF_FILE,
        (Check::BeyondValidData | Check::Forward | Check::FactUnavailable(_), _) => {
            unreachable!("{check:?} completes nothing")
        }
    }
}

fn checks(op: OffloadOp) -> Vec<Check> {
    let order = if op == OffloadOp::Read {
        READ_ORDER
    } else {
        WRITE_ORDER
    };
    order
        .iter()
        .copied()
        .filter(|c| *c != Check::Forward)
        .collect()
}

#[test]
fn no_check_refuses_on_the_handle_access_bits() {
    // 4c: the access check is the I/O manager's (user mode) and nobody's (kernel mode): the order
    // has no access check at all, and a request on any handle that is open is decided by the
    // same rules.
    for op in [OffloadOp::Read, OffloadOp::Write] {
        let order = if op == OffloadOp::Read {
            READ_ORDER
        } else {
            WRITE_ORDER
        };
        assert!(
            !order
                .iter()
                .any(|c| format!("{c:?}").to_lowercase().contains("access")),
            "{op:?}: {order:?}"
        );
        let facts = Facts {
            handle: Ok(HandleFacts::default()),
            ..Facts::default()
        };
        let (d, _) = Case {
            facts,
            ..Case::new(op)
        }
        .decide(op);
        assert_eq!(d.check, Check::Forward, "{op:?}");
    }
}

#[test]
fn each_check_alone_decides_with_its_status() {
    for op in [OffloadOp::Read, OffloadOp::Write] {
        for check in checks(op) {
            let mut case = Case::new(op);
            case.violate(op, check);
            let (d, sent) = case.decide(op);
            assert_eq!(d.check, check, "{op:?}: violating only {check:?}");
            assert_eq!(
                outcome(&d, &sent),
                outcome_of_check(op, check),
                "{op:?} {check:?}"
            );
        }
        let (d, _) = Case::new(op).decide(op);
        assert_eq!(d.check, Check::Forward, "{op:?}: the base case forwards");
        assert!(matches!(
            d.verdict,
            OffloadVerdict::Read(Verdict::Forward(_)) | OffloadVerdict::Write(Verdict::Forward(_))
        ));
    }
}

#[test]
fn earlier_check_wins_every_collision() {
    let mut pairs = 0;
    for op in [OffloadOp::Read, OffloadOp::Write] {
        let order = checks(op);
        for (i, &first) in order.iter().enumerate() {
            for &second in &order[i + 1..] {
                let mut case = Case::new(op);
                case.violate(op, second);
                case.violate(op, first);
                let (d, sent) = case.decide(op);
                assert_eq!(
                    d.check, first,
                    "{op:?}: {first:?} must precede {second:?} ({case:?})"
                );
                assert_eq!(
                    outcome(&d, &sent),
                    outcome_of_check(op, first),
                    "{op:?}: {first:?} before {second:?}"
                );
                pairs += 1;
            }
        }
    }
    // 16 read checks and 18 write checks (Forward is not a check): 120 + 153 pairs.
    assert_eq!(pairs, 16 * 15 / 2 + 18 * 17 / 2);
}

#[test]
fn sparse_file_with_unaligned_offset_is_an_alignment_error() {
    let mut facts = Facts::default().attributes(FileAttributes::SPARSE_FILE);
    let d = read(&read_input(100, 4096), &mut facts);
    assert_eq!(
        status_of(&d.verdict),
        Some(NtStatus::STATUS_INVALID_PARAMETER)
    );
    assert_eq!(d.check, Check::Alignment);
}
