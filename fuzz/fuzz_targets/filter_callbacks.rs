//! The filter's two callbacks (`filter::pre_operation` / `post_operation`) over an arbitrary
//! METHOD_BUFFERED system buffer: arbitrary policy mode, facts, rules, buffer size,
//! `InputBufferLength` / `OutputBufferLength` (either may exceed the buffer), then an arbitrary
//! answer from below. Checks: `Information` never exceeds `OutputBufferLength` or the buffer,
//! output only with success, nothing is written beyond the output length, a rewritten input is
//! the trimmed request, a pass-through (failed fact query) leaves the buffer as sent, veto asks no
//! fact, and the counters add up (`seen = forwarded + completed`).

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use odx_core::filter::{
    BufferedRequest, LowerAnswer, PostContext, PreOp, post_operation, pre_operation,
};
use odx_core::policy::PolicyMode;
use odx_core::stats::VolumeStats;
use odx_core::wire::{
    OffloadReadInput, OffloadReadOutput, OffloadWriteInput, OffloadWriteOutput, StorageOffloadToken,
};
use odx_core::{NtStatus, OffloadOp, WireStruct};
use odx_fuzz::{FactsMirror, Len, Num, RecordingFacts, RulesMirror};
use zerocopy::IntoBytes;

#[derive(Arbitrary, Debug)]
struct Input {
    write: bool,
    mode: u8,
    facts: FactsMirror,
    rules: RulesMirror,
    offset: Num,
    length: Num,
    transfer_offset: Num,
    size_ok: bool,
    input_len: Len,
    output_len: Len,
    buffer_len: Len,
    fill: u8,
    below: u32,
    below_success: bool,
    information: Len,
    answer_length: Num,
    answer_flags: u32,
}

fuzz_target!(|x: Input| {
    let op = if x.write {
        OffloadOp::Write
    } else {
        OffloadOp::Read
    };
    let mode = PolicyMode::ALL[usize::from(x.mode) % 3];
    let rules = x.rules.rules();
    let sector = x.facts.volume.sector();
    let (in_size, out_size) = match op {
        OffloadOp::Read => (OffloadReadInput::SIZE, OffloadReadOutput::SIZE),
        OffloadOp::Write => (OffloadWriteInput::SIZE, OffloadWriteOutput::SIZE),
    };
    let input_len = x.input_len.value(in_size);
    let output_len = x.output_len.value(out_size);
    let buffer_len = x.buffer_len.alloc_value(in_size.max(out_size));
    let mut buffer = vec![x.fill; buffer_len];
    let (offset, length) = (x.offset.value(sector), x.length.value(sector));
    let mut bytes = match op {
        OffloadOp::Read => OffloadReadInput::new(offset, length, 0).as_bytes().to_vec(),
        OffloadOp::Write => OffloadWriteInput::new(
            offset,
            length,
            x.transfer_offset.value(sector),
            StorageOffloadToken::zero_data(),
        )
        .as_bytes()
        .to_vec(),
    };
    if !x.size_ok {
        bytes[0] ^= 1;
    }
    for (dst, src) in buffer.iter_mut().zip(&bytes) {
        *dst = *src;
    }
    let original = buffer.clone();

    let mut facts = RecordingFacts::new(x.facts);
    let stats = VolumeStats::new();
    let request = BufferedRequest {
        op,
        buffer: &mut buffer,
        input_len,
        output_len,
    };
    let pre = pre_operation(request, mode, &mut facts, &rules, Some(&stats));
    let out_cap = output_len.min(buffer_len);

    if mode == PolicyMode::Veto {
        assert!(facts.asked.is_empty(), "veto asked for facts");
    }
    let context = match pre {
        PreOp::Complete {
            status,
            information,
            check,
        } => {
            assert!(information <= out_cap);
            assert!(information == 0 || status == NtStatus::STATUS_SUCCESS);
            assert!(!status.is_success() || information > 0 || check.is_some());
            assert_eq!(
                &buffer[information..],
                &original[information..],
                "wrote past the output"
            );
            assert_eq!(mode == PolicyMode::Veto, check.is_none());
            let c = stats.op(op).counts();
            assert_eq!((c.seen, c.completed, c.forwarded), (1, 1, 0));
            return;
        }
        PreOp::PassThrough { check } => {
            assert_eq!(mode, PolicyMode::Enforce);
            let failing = x
                .facts
                .failing_kind()
                .expect("pass-through without a failed query");
            assert_eq!(check, odx_core::Check::FactUnavailable(failing));
            assert_eq!(buffer, original, "a pass-through changed the buffer");
            let c = stats.op(op).counts();
            assert_eq!(
                (c.seen, c.forwarded, c.completed, c.fact_failed),
                (1, 1, 0, 1)
            );
            return;
        }
        PreOp::Forward {
            context,
            input_rewritten,
            check,
            journal_seq,
        } => {
            assert_eq!(journal_seq, None, "no journal was given");
            assert_eq!(context.op(), op);
            assert_ne!(mode, PolicyMode::Veto);
            // Monitored: no check decided; enforced: the one that let it down.
            assert_eq!(check.is_none(), mode == PolicyMode::Monitor);
            match context {
                PostContext::Observe { .. } => {
                    assert_eq!(mode, PolicyMode::Monitor);
                    assert!(!input_rewritten);
                }
                PostContext::Read(ctx) => {
                    assert_eq!(mode, PolicyMode::Enforce);
                    if input_rewritten {
                        let fwd = OffloadReadInput::parse(&buffer).expect("rewrote garbage");
                        assert_eq!(fwd.copy_length.get(), ctx.forwarded_length);
                        let mut restored = buffer.clone();
                        restored[0x18..0x20].copy_from_slice(&original[0x18..0x20]);
                        assert_eq!(restored, original, "only CopyLength is rewritten");
                        assert!(ctx.forwarded_length < ctx.requested_length);
                    }
                }
                PostContext::Write(ctx) => {
                    assert_eq!(mode, PolicyMode::Enforce);
                    if input_rewritten {
                        let fwd = OffloadWriteInput::parse(&buffer).expect("rewrote garbage");
                        assert_eq!(fwd.copy_length.get(), ctx.forwarded_length);
                        let mut restored = buffer.clone();
                        restored[0x10..0x18].copy_from_slice(&original[0x10..0x18]);
                        assert_eq!(restored, original, "only CopyLength is rewritten");
                        assert!(ctx.forwarded_length < ctx.requested_length);
                    }
                }
            }
            if !input_rewritten {
                assert_eq!(buffer, original, "buffer changed without a rewrite");
            }
            context
        }
    };

    // The answer from below, written into the shared buffer.
    let answered = x.answer_length.value(sector);
    let answer = match op {
        OffloadOp::Read => OffloadReadOutput::new(
            odx_core::flags::OffloadReadFlags::from_bits_retain(x.answer_flags),
            answered,
            StorageOffloadToken::zero_data(),
        )
        .as_bytes()
        .to_vec(),
        OffloadOp::Write => OffloadWriteOutput::new(answered).as_bytes().to_vec(),
    };
    for (dst, src) in buffer.iter_mut().zip(&answer) {
        *dst = *src;
    }
    let before_post = buffer.clone();
    let below = if x.below_success {
        NtStatus::STATUS_SUCCESS
    } else {
        NtStatus(x.below)
    };
    let information = x.information.value(out_size);
    let (status, info) = post_operation(
        &context,
        LowerAnswer {
            status: below,
            information,
            buffer: &mut buffer,
            output_len,
        },
        &rules,
        Some(&stats),
        None,
        None,
    );
    match context {
        PostContext::Observe { .. } => {
            assert_eq!(
                (status, info),
                (below, information),
                "monitor changed the answer"
            );
            assert_eq!(buffer, before_post);
        }
        PostContext::Read(_) | PostContext::Write(_) => {
            assert!(info <= out_cap);
            assert!(info == 0 || status == NtStatus::STATUS_SUCCESS);
            assert_eq!(
                &buffer[out_cap..],
                &before_post[out_cap..],
                "wrote past the output"
            );
            if !below.is_success() {
                assert!(!status.is_success());
                assert_eq!(info, 0);
            }
        }
    }
    let c = stats.op(op).counts();
    assert_eq!(c.seen, 1);
    assert_eq!(c.seen, c.forwarded + c.completed);
    assert!(c.fact_failed <= c.forwarded);
});
