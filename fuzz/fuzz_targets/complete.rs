//! The completion mapping: `complete_read` / `complete_write` with arbitrary contexts, statuses
//! from below and output bytes. A failure is mapped through the table and never carries output;
//! a success carries output only when the answer keeps the lower contract (non-zero for a read,
//! never above what was forwarded, sector aligned); otherwise the configured refusal.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use odx_core::complete::{complete_read, complete_write, map_failure};
use odx_core::flags::OffloadReadFlags;
use odx_core::wire::{OffloadReadOutput, OffloadWriteOutput, StorageOffloadToken};
use odx_core::{NtStatus, OffloadOp, ReadContext, SectorSize, WireStruct, WriteContext};
use odx_fuzz::{Len, Num, RulesMirror, buffer_of};
use zerocopy::IntoBytes;

#[derive(Arbitrary, Debug)]
enum Below {
    Success,
    Known(u8),
    Raw(u32),
}

const KNOWN: &[NtStatus] = &[
    NtStatus::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED,
    NtStatus::STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED,
    NtStatus::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED,
    NtStatus::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED,
    NtStatus::STATUS_ACCESS_DENIED,
    NtStatus::STATUS_INVALID_OFFSET_ALIGNMENT,
    NtStatus::STATUS_DEVICE_INSUFFICIENT_RESOURCES,
    NtStatus::STATUS_OPERATION_IN_PROGRESS,
    NtStatus::STATUS_INVALID_TOKEN,
    NtStatus::STATUS_END_OF_FILE,
];

impl Below {
    fn status(&self) -> NtStatus {
        match self {
            Self::Success => NtStatus::STATUS_SUCCESS,
            Self::Known(i) => KNOWN[usize::from(*i) % KNOWN.len()],
            Self::Raw(v) => NtStatus(*v),
        }
    }
}

/// The answer's length field: relative to what was forwarded, or anything.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Answer {
    Forwarded,
    ForwardedMinus(Num),
    ForwardedPlus(u16),
    Other(Num),
}

impl Answer {
    fn value(self, forwarded: u64, sector: SectorSize) -> u64 {
        match self {
            Self::Forwarded => forwarded,
            Self::ForwardedMinus(n) => forwarded.saturating_sub(n.value(sector)),
            Self::ForwardedPlus(n) => forwarded.saturating_add(u64::from(n)),
            Self::Other(n) => n.value(sector),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    write: bool,
    rules: RulesMirror,
    sector_log2: u8,
    /// No longer part of the completion context (post-operation never needed it); kept so the
    /// seed corpus decodes as before.
    _file_offset: Num,
    requested: Num,
    forwarded: Num,
    zero_beyond_forwarded: bool,
    below: Below,
    size: u32,
    flags: u32,
    answer: Answer,
    token_head: [u8; 16],
    output_len: Len,
    fill: u8,
}

fuzz_target!(|x: Input| {
    let rules = x.rules.rules();
    let sector = SectorSize::new(1u32 << (x.sector_log2 % 17)).unwrap_or_default();
    let forwarded = x.forwarded.value(sector);
    let below = x.below.status();
    let answered = x.answer.value(forwarded, sector);

    if x.write {
        let ctx = WriteContext {
            requested_length: x.requested.value(sector),
            forwarded_length: forwarded,
            sector_size: sector,
        };
        let mut wire = OffloadWriteOutput::new(answered);
        wire.size.set(x.size);
        wire.flags.set(x.flags);
        let out = buffer_of(wire.as_bytes(), x.output_len.alloc_value(16), x.fill);
        let c = complete_write(&ctx, below, &out, &rules);
        assert_eq!(c.output.is_some(), c.status == NtStatus::STATUS_SUCCESS);
        if !below.is_success() {
            assert_eq!(c.status, map_failure(OffloadOp::Write, below));
            assert!(!c.status.is_success());
        } else if let Some(answer) = c.output {
            let parsed = OffloadWriteOutput::parse(&out).expect("success from a short output");
            // What the caller sees: the completion written in place over the answer.
            let mut seen = out.clone();
            assert_eq!(c.write_output(&mut seen), 16);
            assert_eq!(seen[16..], out[16..], "nothing written past the output");
            let o = OffloadWriteOutput::parse(&seen).unwrap();
            assert_eq!(o, OffloadWriteOutput::new(parsed.length_written.get()));
            assert_eq!(answer.length_written, o.length_written.get());
            assert!(o.length_written.get() <= forwarded);
            assert!(sector.is_aligned(o.length_written.get()));
            let mut short = [0u8; 15];
            assert_eq!(
                c.write_output(&mut short),
                0,
                "a short buffer is left alone"
            );
            assert_eq!(short, [0u8; 15]);
        } else {
            assert_eq!(c.status, rules.broken_lower_contract);
            let kept = OffloadWriteOutput::parse(&out).is_ok_and(|p| {
                let n = p.length_written.get();
                n <= forwarded && sector.is_aligned(n)
            });
            assert!(!kept, "refused an answer that keeps the contract");
        }
    } else {
        let ctx = ReadContext {
            requested_length: x.requested.value(sector),
            forwarded_length: forwarded,
            zero_beyond_forwarded: x.zero_beyond_forwarded,
            sector_size: sector,
        };
        let mut token = StorageOffloadToken::zeroed();
        token.as_mut_bytes()[..16].copy_from_slice(&x.token_head);
        let mut wire =
            OffloadReadOutput::new(OffloadReadFlags::from_bits_retain(x.flags), answered, token);
        wire.size.set(x.size);
        let out = buffer_of(wire.as_bytes(), x.output_len.alloc_value(528), x.fill);
        let c = complete_read(&ctx, below, &out, &rules);
        assert_eq!(c.output.is_some(), c.status == NtStatus::STATUS_SUCCESS);
        if !below.is_success() {
            assert_eq!(c.status, map_failure(OffloadOp::Read, below));
            assert!(!c.status.is_success());
        } else if let Some(answer) = c.output {
            let parsed = OffloadReadOutput::parse(&out).expect("success from a short output");
            // What the caller sees: the completion written in place over the answer.
            let mut seen = out.clone();
            assert_eq!(c.write_output(&mut seen), 528);
            assert_eq!(seen[528..], out[528..], "nothing written past the output");
            let o = OffloadReadOutput::parse(&seen).unwrap();
            assert_eq!(answer.transfer_length, o.transfer_length.get());
            assert_eq!(answer.flags.bits(), o.flags.get());
            let transfer = o.transfer_length.get();
            assert_eq!(transfer, parsed.transfer_length.get());
            assert!(transfer > 0 && transfer <= forwarded);
            assert!(sector.is_aligned(transfer));
            assert_eq!(o.size.get(), 528);
            assert_eq!(o.token, parsed.token, "the token passes through untouched");
            let zero = OffloadReadFlags::ALL_ZERO_BEYOND_CURRENT_RANGE.bits();
            if x.zero_beyond_forwarded {
                assert_eq!(o.flags.get() & zero != 0, transfer == forwarded);
                assert_eq!(o.flags.get() & !zero, parsed.flags.get() & !zero);
            } else {
                assert_eq!(o.flags.get(), parsed.flags.get());
            }
        } else {
            assert_eq!(c.status, rules.broken_lower_contract);
            let kept = OffloadReadOutput::parse(&out).is_ok_and(|p| {
                let n = p.transfer_length.get();
                n > 0 && n <= forwarded && sector.is_aligned(n)
            });
            assert!(!kept, "refused an answer that keeps the contract");
        }
    }
});
