//! `decide_write` with arbitrary facts, rules, tokens, input bytes and buffer lengths. Same
//! properties as `decide_read`, plus: a forwarded write never extends the file (unless it goes
//! down untouched for the file system's valid-data-length rule) and never ends beyond the
//! volume's maximum file size.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use odx_core::flags::VolumeFlags;
use odx_core::rules::{LengthAlignment, PAGE_SIZE, TinyFile};
use odx_core::wire::{OffloadWriteInput, OffloadWriteOutput, StorageOffloadToken};
use odx_core::{
    Check, FactKind, FileSystemKind, LockIntent, NtStatus, OffloadOp, OffloadRequest,
    OffloadVerdict, Verdict, WireStruct, WriteContext, decide, decide_write,
};
use odx_fuzz::{FactsMirror, Len, Num, RecordingFacts, RulesMirror, SizeField, buffer_of};
use zerocopy::IntoBytes;

#[derive(Arbitrary, Debug)]
enum TokenChoice {
    Zero,
    Vendor(u32, [u8; 32]),
    Header(u32, u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    facts: FactsMirror,
    rules: RulesMirror,
    size: SizeField,
    flags: u32,
    offset: Num,
    length: Num,
    transfer_offset: Num,
    token: TokenChoice,
    input_len: Len,
    fill: u8,
    output_len: Len,
}

fuzz_target!(|x: Input| {
    let rules = x.rules.rules();
    let sector = x.facts.volume.sector();
    let token = match x.token {
        TokenChoice::Zero => StorageOffloadToken::zero_data(),
        TokenChoice::Vendor(t, key) => {
            let mut id = [0u8; 504];
            id[..32].copy_from_slice(&key);
            StorageOffloadToken::vendor(t, id)
        }
        TokenChoice::Header(t, len) => {
            let mut token = StorageOffloadToken::zeroed();
            token.token_type.set(t);
            token.token_id_length.set(len);
            token
        }
    };
    let mut wire = OffloadWriteInput::new(
        x.offset.value(sector),
        x.length.value(sector),
        x.transfer_offset.value(sector),
        token,
    );
    wire.size.set(x.size.value(OffloadWriteInput::SIZE));
    wire.flags.set(x.flags);
    let input = buffer_of(
        wire.as_bytes(),
        x.input_len.alloc_value(OffloadWriteInput::SIZE),
        x.fill,
    );
    let output_len = x.output_len.value(OffloadWriteOutput::SIZE);
    let request = OffloadRequest {
        input: &input,
        output_len,
    };

    let mut facts = RecordingFacts::new(x.facts);
    let d = decide_write(request, &mut facts, &rules);

    let mut again = RecordingFacts::new(x.facts);
    let d2 = decide(OffloadOp::Write, request, &mut again, &rules);
    assert_eq!(d2.check, d.check);
    assert_eq!(d2.verdict, OffloadVerdict::Write(d.verdict));
    assert_eq!(again.asked, facts.asked);

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
    let parsed = OffloadWriteInput::parse(&input).ok();
    let (offset, length, transfer_offset) = parsed.map_or((0, 0, 0), |p| {
        (
            p.file_offset.get(),
            p.copy_length.get(),
            p.transfer_offset.get(),
        )
    });
    let strict = rules.copy_length_alignment == LengthAlignment::Strict;

    if matches!(
        d.check,
        Check::InputLength
            | Check::OutputLength
            | Check::SizeField
            | Check::RangeOverflow
            | Check::ZeroLength
            | Check::OffloadSupported
            | Check::VolumeWritable
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
        assert_eq!(intent, LockIntent::Exclusive);
        assert_eq!((range.offset, range.length), (offset, length));
    }

    match d.verdict {
        Verdict::Complete(c) => {
            assert_eq!(
                c.output.is_some(),
                c.status == NtStatus::STATUS_SUCCESS,
                "{d:?}"
            );
            if c.output.is_some() {
                assert!(output_len >= OffloadWriteOutput::SIZE);
                let mut buf = [0xA5u8; 24];
                assert_eq!(c.write_output(&mut buf), 16);
                assert!(
                    buf[16..].iter().all(|&b| b == 0xA5),
                    "nothing past the output"
                );
                assert_eq!(d.check, Check::ZeroLength);
                assert_eq!(length, 0);
                assert_eq!(
                    OffloadWriteOutput::parse(&buf).unwrap(),
                    OffloadWriteOutput::new(0)
                );
            }
            match d.check {
                Check::FileSystemImplementsOffload => {
                    assert_ne!(vol.file_system, FileSystemKind::Ntfs);
                    assert_eq!(c.status, NtStatus::STATUS_INVALID_DEVICE_REQUEST);
                }
                Check::VolumeMounted => {
                    assert!(vol.flags.contains(VolumeFlags::DISMOUNTED));
                    assert_eq!(c.status, rules.dismounted_write);
                }
                Check::HandleOpen => assert!(handle.closed),
                Check::VolumeWritable => {
                    assert!(vol.flags.contains(VolumeFlags::READ_ONLY));
                    assert_eq!(c.status, NtStatus::STATUS_MEDIA_WRITE_PROTECTED);
                }
                Check::OffloadSupported => {
                    assert!(!vol.flags.contains(VolumeFlags::OFFLOAD_WRITE_SUPPORTED));
                }
                Check::InputLength => {
                    assert!(input.len() < OffloadWriteInput::SIZE);
                    assert_eq!(c.status, rules.short_buffer);
                }
                Check::OutputLength => {
                    assert!(output_len < OffloadWriteOutput::SIZE);
                    assert_eq!(c.status, rules.short_buffer);
                }
                Check::Alignment => {
                    assert!(
                        !sector.is_aligned(offset)
                            || !sector.is_aligned(length)
                            || !sector.is_aligned(transfer_offset)
                    );
                    assert_eq!(c.status, NtStatus::STATUS_INVALID_PARAMETER);
                }
                Check::SizeField => assert_ne!(x.size.value(544), 544),
                Check::RangeOverflow => assert!(offset.checked_add(length).is_none()),
                Check::StreamKind => {
                    assert!(kind.refuses_offload());
                    assert_eq!(c.status, NtStatus::STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED);
                }
                Check::StreamDeleted => assert!(sizes.delete_pending),
                Check::MaxFileSize => {
                    assert!(offset + length > vol.max_file_size);
                    assert_eq!(c.status, NtStatus::STATUS_INVALID_PARAMETER);
                }
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
                Check::FactUnavailable(_) | Check::BeyondValidData | Check::Forward => {
                    panic!("{:?} completes a write", d.check)
                }
            }
        }
        Verdict::PassThrough => {
            let Check::FactUnavailable(k) = d.check else {
                panic!("pass-through from {:?}", d.check)
            };
            assert_eq!(Some(k), x.facts.failing_kind());
            assert_eq!(facts.asked.last(), Some(&k));
        }
        Verdict::Forward(f) => {
            assert_eq!(vol.file_system, FileSystemKind::Ntfs);
            assert!(!vol.flags.contains(VolumeFlags::DISMOUNTED));
            assert!(!vol.flags.contains(VolumeFlags::READ_ONLY));
            assert!(vol.flags.contains(VolumeFlags::OFFLOAD_WRITE_SUPPORTED));
            assert!(!handle.closed);
            assert!(input.len() >= 544 && output_len >= 16);
            let parsed = parsed.expect("forwarded an unparsable input");
            // What the file system sees: the caller's bytes with the forward applied in place.
            let mut sent = input.clone();
            assert_eq!(f.rewrite(&mut sent), f.trimmed());
            assert_eq!(sent.len(), input.len());
            let forwarded = OffloadWriteInput::parse(&sent).unwrap();
            assert_eq!(forwarded.copy_length.get(), f.copy_length());
            let mut other_bytes = sent.clone();
            other_bytes[0x10..0x18].copy_from_slice(&input[0x10..0x18]);
            assert_eq!(other_bytes, input, "only CopyLength may change, in place");
            assert_eq!(parsed.size.get(), 544);
            assert!(sector.is_aligned(offset) && sector.is_aligned(transfer_offset));
            let end = offset
                .checked_add(length)
                .expect("forwarded an overflowing range");
            assert!(end <= vol.max_file_size);
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
                // MS-FSA write 16 is the file system's: the write goes down exactly as sent.
                assert!(offset > vdl);
                assert_eq!(sent, input);
                assert_eq!(f.context, WriteContext::untouched(length, sector));
                return;
            }
            assert_eq!(d.check, Check::Forward);
            assert!(offset <= vdl);
            let ctx = f.context;
            assert_eq!(ctx.requested_length, length);
            assert_eq!(ctx.sector_size, sector);
            assert!(ctx.forwarded_length > 0 && ctx.forwarded_length <= length);
            assert_eq!(forwarded.copy_length.get(), ctx.forwarded_length);
            assert_eq!(f.trimmed(), ctx.forwarded_length != length);
            let mut same = forwarded;
            same.copy_length = parsed.copy_length;
            assert_eq!(same, parsed, "only CopyLength may change");
            // Never extends the file beyond its last sector.
            let sector_eof = sector.round_up(sizes.end_of_file).unwrap_or(u64::MAX);
            assert!(offset + ctx.forwarded_length <= sector_eof);
            if f.trimmed() {
                assert_eq!(offset + ctx.forwarded_length, sector_eof);
            }
        }
    }
});
