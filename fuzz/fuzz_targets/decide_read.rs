//! `decide_read` with arbitrary facts, rules, input bytes and buffer lengths. Checks that the
//! decision is deterministic, agrees with `decide`, that the check it names is actually true of
//! the request, that a forwarded request is well formed and trimmed only downwards (and not at
//! all when the valid-data-length rule is left to the file system), that a failed query is a
//! pass-through, and that no fact is asked for after a failed query or before the buffer checks
//! passed.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use odx_core::flags::VolumeFlags;
use odx_core::rules::{LengthAlignment, PAGE_SIZE, TinyFile};
use odx_core::wire::{OffloadReadInput, OffloadReadOutput};
use odx_core::{
    Check, FactKind, FileSystemKind, LockIntent, NtStatus, OffloadOp, OffloadRequest,
    OffloadVerdict, ReadContext, Verdict, WireStruct, decide, decide_read,
};
use odx_fuzz::{FactsMirror, Len, Num, RecordingFacts, RulesMirror, SizeField, buffer_of};
use zerocopy::IntoBytes;

#[derive(Arbitrary, Debug)]
struct Input {
    facts: FactsMirror,
    rules: RulesMirror,
    size: SizeField,
    flags: u32,
    ttl: u32,
    reserved: u32,
    offset: Num,
    length: Num,
    input_len: Len,
    fill: u8,
    output_len: Len,
}

fuzz_target!(|x: Input| {
    let rules = x.rules.rules();
    let sector = x.facts.volume.sector();
    let mut wire = OffloadReadInput::new(x.offset.value(sector), x.length.value(sector), x.ttl);
    wire.size.set(x.size.value(OffloadReadInput::SIZE));
    wire.flags.set(x.flags);
    wire.reserved.set(x.reserved);
    let input = buffer_of(
        wire.as_bytes(),
        x.input_len.alloc_value(OffloadReadInput::SIZE),
        x.fill,
    );
    let output_len = x.output_len.value(OffloadReadOutput::SIZE);
    let request = OffloadRequest {
        input: &input,
        output_len,
    };

    let mut facts = RecordingFacts::new(x.facts);
    let d = decide_read(request, &mut facts, &rules);

    // Deterministic, and `decide` is the same function.
    let mut again = RecordingFacts::new(x.facts);
    let d2 = decide(OffloadOp::Read, request, &mut again, &rules);
    assert_eq!(d2.check, d.check);
    assert_eq!(d2.verdict, OffloadVerdict::Read(d.verdict));
    assert_eq!(again.asked, facts.asked);

    // Each fact is asked for at most once; a failed query is the last one.
    for (i, kind) in facts.asked.iter().enumerate() {
        assert!(
            !facts.asked[..i].contains(kind),
            "{kind:?} asked twice: {:?}",
            facts.asked
        );
    }
    if let Some(failing) = x.facts.failing_kind()
        && let Some(pos) = facts.asked.iter().position(|k| *k == failing)
    {
        assert_eq!(
            pos + 1,
            facts.asked.len(),
            "query after a failed {failing:?}"
        );
        assert_eq!(d.check, Check::FactUnavailable(failing));
        assert_eq!(d.verdict, Verdict::PassThrough);
    }

    let vol = x.facts.volume.facts();
    let handle = x.facts.handle();
    let kind = x.facts.stream_kind();
    let sizes = x.facts.stream_sizes();
    let parsed = OffloadReadInput::parse(&input).ok();
    let (offset, length) = parsed.map_or((0, 0), |p| (p.file_offset.get(), p.copy_length.get()));
    let strict = rules.copy_length_alignment == LengthAlignment::Strict;

    // The stream queries cost a FltQueryInformationFile: never made for a request the buffer
    // checks already refuse.
    if matches!(
        d.check,
        Check::InputLength
            | Check::OutputLength
            | Check::SizeField
            | Check::RangeOverflow
            | Check::ZeroLength
            | Check::OffloadSupported
            | Check::HandleOpen
            | Check::VolumeMounted
            | Check::FileSystemImplementsOffload
    ) || (d.check == Check::Alignment && strict)
    {
        assert!(!facts.was_asked(FactKind::StreamKind));
        assert!(!facts.was_asked(FactKind::StreamSizes));
        assert!(!facts.was_asked(FactKind::Locks));
    }
    if let Some((range, intent)) = facts.lock_query {
        assert_eq!(intent, LockIntent::Shared);
        assert_eq!((range.offset, range.length), (offset, length));
    }

    match d.verdict {
        Verdict::Complete(c) => {
            // Output only with success, success only with output, and it fits the buffer.
            assert_eq!(
                c.output.is_some(),
                c.status == NtStatus::STATUS_SUCCESS,
                "{d:?}"
            );
            if c.output.is_some() {
                assert!(output_len >= OffloadReadOutput::SIZE);
                // Written straight into the output buffer, nothing past it.
                let mut buf = vec![0xA5u8; OffloadReadOutput::SIZE + 8];
                assert_eq!(c.write_output(&mut buf), OffloadReadOutput::SIZE);
                assert!(buf[OffloadReadOutput::SIZE..].iter().all(|&b| b == 0xA5));
                let mut short = vec![0xA5u8; OffloadReadOutput::SIZE - 1];
                assert_eq!(c.write_output(&mut short), 0);
                assert!(
                    short.iter().all(|&b| b == 0xA5),
                    "a short buffer is left alone"
                );
                let out = OffloadReadOutput::parse(&buf).unwrap();
                assert_eq!(out.size.get(), 528);
                assert!(
                    out.token.is_zero_data(),
                    "the filter only answers with the zero token"
                );
                // The only answer odxflt gives itself: valid data length never answers.
                match d.check {
                    Check::ZeroLength => {
                        assert_eq!(length, 0);
                        assert_eq!(out.transfer_length.get(), 0);
                    }
                    other => panic!("success from {other:?}"),
                }
            }
            // The named check is true of the request.
            match d.check {
                Check::FileSystemImplementsOffload => {
                    assert_ne!(vol.file_system, FileSystemKind::Ntfs);
                    assert_eq!(c.status, NtStatus::STATUS_INVALID_DEVICE_REQUEST);
                }
                Check::VolumeMounted => {
                    assert!(vol.flags.contains(VolumeFlags::DISMOUNTED));
                    assert_eq!(c.status, NtStatus::STATUS_VOLUME_DISMOUNTED);
                }
                Check::HandleOpen => assert!(handle.closed),
                Check::OffloadSupported => {
                    assert!(!vol.flags.contains(VolumeFlags::OFFLOAD_READ_SUPPORTED));
                }
                Check::InputLength => {
                    assert!(input.len() < OffloadReadInput::SIZE);
                    assert_eq!(c.status, rules.short_buffer);
                }
                Check::OutputLength => {
                    assert!(output_len < OffloadReadOutput::SIZE);
                    assert_eq!(c.status, rules.short_buffer);
                }
                Check::Alignment => {
                    assert!(!sector.is_aligned(offset) || !sector.is_aligned(length));
                    assert_eq!(c.status, NtStatus::STATUS_INVALID_PARAMETER);
                }
                Check::SizeField => assert_ne!(x.size.value(32), 32),
                Check::RangeOverflow => assert!(offset.checked_add(length).is_none()),
                Check::StreamKind => {
                    assert!(kind.refuses_offload());
                    assert_eq!(c.status, NtStatus::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED);
                }
                Check::StreamDeleted => assert!(sizes.delete_pending),
                Check::LockConflict => {
                    assert!(x.facts.lock_conflict);
                    assert_eq!(c.status, NtStatus::STATUS_FILE_LOCK_CONFLICT);
                }
                Check::EndOfFile => {
                    assert!(offset >= sizes.end_of_file);
                    assert_eq!(c.status, NtStatus::STATUS_END_OF_FILE);
                }
                Check::TinyFile => {
                    let limit = match rules.tiny_file {
                        TinyFile::NoRule => 0,
                        TinyFile::BelowSector => u64::from(sector.get()),
                        TinyFile::BelowPage => PAGE_SIZE,
                    };
                    assert!(sizes.end_of_file < limit);
                }
                Check::ZeroLength => {}
                Check::FactUnavailable(_)
                | Check::BeyondValidData
                | Check::MaxFileSize
                | Check::VolumeWritable
                | Check::Forward => {
                    panic!("{:?} completes a read", d.check)
                }
            }
        }
        Verdict::PassThrough => {
            // Only a failed query passes a request through, and it is the failing one.
            let Check::FactUnavailable(k) = d.check else {
                panic!("pass-through from {:?}", d.check)
            };
            assert_eq!(Some(k), x.facts.failing_kind());
            assert_eq!(facts.asked.last(), Some(&k));
        }
        Verdict::Forward(f) => {
            // Every check passed (the access bits of the handle are no check at all).
            assert_eq!(vol.file_system, FileSystemKind::Ntfs);
            assert!(!vol.flags.contains(VolumeFlags::DISMOUNTED));
            assert!(vol.flags.contains(VolumeFlags::OFFLOAD_READ_SUPPORTED));
            assert!(!handle.closed);
            assert!(input.len() >= 32 && output_len >= 528);
            let parsed = parsed.expect("forwarded an unparsable input");
            // What the file system sees: the caller's bytes with the forward applied in place.
            let mut sent = input.clone();
            assert_eq!(f.rewrite(&mut sent), f.trimmed());
            assert_eq!(sent.len(), input.len());
            let forwarded = OffloadReadInput::parse(&sent).unwrap();
            assert_eq!(forwarded.copy_length.get(), f.copy_length());
            let mut other_bytes = sent.clone();
            other_bytes[0x18..0x20].copy_from_slice(&input[0x18..0x20]);
            assert_eq!(other_bytes, input, "only CopyLength may change, in place");
            assert_eq!(parsed.size.get(), 32);
            assert!(sector.is_aligned(offset));
            let end = offset
                .checked_add(length)
                .expect("forwarded an overflowing range");
            assert!(length > 0 && !kind.refuses_offload() && !sizes.delete_pending);
            assert!(!x.facts.lock_conflict);
            assert!(offset < sizes.end_of_file);
            assert_eq!(x.facts.failing_kind().filter(|k| facts.was_asked(*k)), None);
            if strict {
                assert!(sector.is_aligned(length));
            } else if !sector.is_aligned(length) {
                assert_eq!(end, sizes.end_of_file);
            }
            let vdl = sizes.valid_data_length.min(sizes.end_of_file);
            if d.check == Check::BeyondValidData {
                // MS-FSA read 14 is the file system's: the request goes down exactly as sent.
                assert!(offset >= vdl);
                assert_eq!(sent, input);
                assert_eq!(f.context, ReadContext::untouched(length, sector));
                return;
            }
            assert_eq!(d.check, Check::Forward);
            assert!(offset < vdl);
            // The forwarded request: same input, CopyLength trimmed (never grown, never to 0).
            let ctx = f.context;
            assert_eq!(ctx.requested_length, length);
            assert_eq!(ctx.sector_size, sector);
            assert!(ctx.forwarded_length > 0 && ctx.forwarded_length <= length);
            assert_eq!(forwarded.copy_length.get(), ctx.forwarded_length);
            assert_eq!(f.trimmed(), ctx.forwarded_length != length);
            let mut same = forwarded;
            same.copy_length = parsed.copy_length;
            assert_eq!(same, parsed, "only CopyLength may change");
            if f.trimmed() {
                // Trimmed at valid data length rounded up to a sector.
                let vdl = sizes.valid_data_length.min(sizes.end_of_file);
                let sector_vdl = sector.round_up(vdl).unwrap_or(u64::MAX);
                assert_eq!(offset + ctx.forwarded_length, sector_vdl);
                assert!(sector.is_aligned(ctx.forwarded_length));
            }
            if ctx.zero_beyond_forwarded {
                assert!(f.trimmed());
                assert!(sizes.valid_data_length < sizes.end_of_file);
            }
        }
    }
});
