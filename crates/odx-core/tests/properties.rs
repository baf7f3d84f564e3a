//! Property tests: no input panics, parse ∘ serialise is the identity, and verdict invariants.

mod common;

use common::*;
use odx_core::complete::{complete_read, complete_write};
use odx_core::flags::{FileAttributes, StreamMarkers, VolumeFlags};
use odx_core::wire::*;
use odx_core::*;
use proptest::prelude::*;
use zerocopy::IntoBytes;

fn facts_strategy() -> impl Strategy<Value = Facts> {
    (
        (0u8..3, 0u32..16, 0u32..16, any::<u64>()),
        any::<bool>(),
        (any::<u32>(), 0u32..8),
        (any::<u64>(), any::<u64>(), any::<bool>()),
        prop::collection::vec(
            (any::<u64>(), any::<u64>(), any::<bool>(), any::<bool>()),
            0..4,
        ),
    )
        .prop_map(
            |(
                (fs, sector_shift, vflags, max),
                closed,
                (attrs, markers),
                (eof, vdl, del),
                locks,
            )| {
                let mut f = Facts {
                    volume: Ok(VolumeFacts {
                        file_system: [
                            FileSystemKind::Ntfs,
                            FileSystemKind::Refs,
                            FileSystemKind::Other,
                        ][usize::from(fs)],
                        sector_size: SectorSize::new(1 << sector_shift).unwrap(),
                        flags: VolumeFlags::from_bits_retain(vflags),
                        max_file_size: max,
                    }),
                    handle: Ok(HandleFacts { closed }),
                    kind: Ok(StreamKind {
                        attributes: FileAttributes::from_bits_retain(attrs),
                        markers: StreamMarkers::from_bits_retain(markers),
                    }),
                    sizes: Ok(StreamSizes {
                        end_of_file: eof,
                        valid_data_length: vdl,
                        delete_pending: del,
                    }),
                    ..Facts::default()
                };
                for (offset, length, exclusive, mine) in locks {
                    f = f.lock(offset, length, exclusive, if mine { ME } else { OTHER });
                }
                f
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_buffer_of_0_to_600_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..=600), out in 0usize..=600, facts in facts_strategy()) {
        for op in [OffloadOp::Read, OffloadOp::Write] {
            let mut f = facts.clone();
            let d = decide(op, OffloadRequest { input: &bytes, output_len: out }, &mut f, &Rules::DOCUMENTED);
            // a completion with output always fits the caller's output buffer
            let info = match d.verdict {
                OffloadVerdict::Read(Verdict::Complete(c)) => c.information(),
                OffloadVerdict::Write(Verdict::Complete(c)) => c.information(),
                _ => 0,
            };
            prop_assert!(info <= out);
        }
        let _ = OffloadReadInput::parse(&bytes);
        let _ = OffloadWriteInput::parse(&bytes);
        let _ = OffloadReadOutput::parse(&bytes);
        let _ = OffloadWriteOutput::parse(&bytes);
        let _ = StorageOffloadToken::parse(&bytes);
    }

    #[test]
    fn every_buffer_length_from_0_to_600_is_handled(len in 0usize..=600) {
        let input = write_input(0, 4096, 0);
        let mut bytes = input.as_bytes().to_vec();
        bytes.resize(len, 0);
        let mut f = Facts::default();
        let d = decide_write(OffloadRequest { input: &bytes, output_len: len }, &mut f, &Rules::DOCUMENTED);
        if len < 544 {
            prop_assert_eq!(status_of(&d.verdict), Some(NtStatus::STATUS_BUFFER_TOO_SMALL));
        } else {
            prop_assert!(matches!(d.verdict, Verdict::Forward(_)));
        }
        let mut out = vec![0u8; len];
        let res = OffloadReadOutput::new(Default::default(), 512, StorageOffloadToken::zero_data()).serialize_into(&mut out);
        prop_assert_eq!(res.is_ok(), len >= 528);
    }

    #[test]
    fn forward_never_grows_the_range_and_stays_aligned(offset in any::<u64>(), length in any::<u64>(), facts in facts_strategy()) {
        let sector = facts.volume.unwrap().sector_size;
        let input = OffloadReadInput::new(sector.round_down(offset), sector.round_down(length), 0);
        let mut f = facts.clone();
        if let Verdict::Forward(fwd) = read(&input, &mut f).verdict {
            prop_assert!(fwd.context.forwarded_length <= input.copy_length.get());
            prop_assert!(fwd.context.forwarded_length > 0);
            prop_assert!(sector.is_aligned(fwd.context.forwarded_length));
            let eof = f.sizes.unwrap().end_of_file;
            prop_assert!(input.file_offset.get() < eof);
            // Only CopyLength changes, in place.
            let mut bytes = input.as_bytes().to_vec();
            prop_assert_eq!(fwd.rewrite(&mut bytes), fwd.trimmed());
            let mut expected = input;
            expected.copy_length.set(fwd.copy_length());
            prop_assert_eq!(&bytes[..], expected.as_bytes());
        }
        let winput = OffloadWriteInput::new(sector.round_down(offset), sector.round_down(length), 0, StorageOffloadToken::zero_data());
        let mut f = facts;
        let d = write(&winput, &mut f);
        if let Verdict::Forward(fwd) = d.verdict {
            let eof = f.sizes.unwrap().end_of_file;
            let end = winput.file_offset.get() + fwd.context.forwarded_length;
            prop_assert!(fwd.context.forwarded_length <= winput.copy_length.get());
            let mut bytes = winput.as_bytes().to_vec();
            prop_assert_eq!(fwd.rewrite(&mut bytes), fwd.trimmed());
            let mut expected = winput;
            expected.copy_length.set(fwd.copy_length());
            prop_assert_eq!(&bytes[..], expected.as_bytes(), "only CopyLength changes");
            if d.check == Check::BeyondValidData {
                // Left to the file system: exactly as sent, not even trimmed at end of file.
                prop_assert_eq!(&bytes[..], winput.as_bytes());
                prop_assert!(!fwd.trimmed());
            } else {
                prop_assert_eq!(d.check, Check::Forward);
                prop_assert!(end <= sector.round_up(eof).unwrap_or(u64::MAX), "a write never extends the file");
            }
        }
    }

    #[test]
    fn parse_of_serialise_is_identity(bytes in prop::collection::vec(any::<u8>(), 544)) {
        let w = OffloadWriteInput::parse(&bytes).unwrap();
        let mut out = vec![0u8; 544];
        prop_assert_eq!(w.serialize_into(&mut out), Ok(544));
        prop_assert_eq!(&out, &bytes);
        prop_assert_eq!(OffloadWriteInput::parse(&out).unwrap(), w);
        let r = OffloadReadOutput::parse(&bytes).unwrap();
        let mut out = vec![0u8; 528];
        r.serialize_into(&mut out).unwrap();
        prop_assert_eq!(&out[..], &bytes[..528]);
        let i = OffloadReadInput::parse(&bytes).unwrap();
        prop_assert_eq!(i.as_bytes(), &bytes[..32]);
        let o = OffloadWriteOutput::parse(&bytes).unwrap();
        prop_assert_eq!(o.as_bytes(), &bytes[..16]);
        let t = StorageOffloadToken::parse(&bytes).unwrap();
        prop_assert_eq!(t.as_bytes(), &bytes[..512]);
    }

    #[test]
    fn completion_never_panics_and_never_grows(status in any::<u32>(), bytes in prop::collection::vec(any::<u8>(), 0..=600), fwd in any::<u64>(), zero in any::<bool>(), shift in 0u32..16) {
        let sector = SectorSize::new(1 << shift).unwrap();
        let rctx = ReadContext { requested_length: fwd, forwarded_length: fwd, zero_beyond_forwarded: zero, sector_size: sector };
        let c = complete_read(&rctx, NtStatus(status), &bytes, &Rules::DOCUMENTED);
        if let Some(out) = c.output {
            prop_assert!(out.transfer_length <= fwd && out.transfer_length > 0);
        }
        let wctx = WriteContext { requested_length: fwd, forwarded_length: fwd, sector_size: sector };
        let c = complete_write(&wctx, NtStatus(status), &bytes, &Rules::DOCUMENTED);
        if let Some(out) = c.output {
            prop_assert!(out.length_written <= fwd);
        }
    }

    #[test]
    fn wire_layout_fields_are_little_endian_at_their_offsets(offset in any::<u64>(), length in any::<u64>(), ttl in any::<u32>()) {
        let i = OffloadReadInput::new(offset, length, ttl);
        let b = i.as_bytes();
        prop_assert_eq!(&b[0..4], &32u32.to_le_bytes());
        prop_assert_eq!(&b[8..12], &ttl.to_le_bytes());
        prop_assert_eq!(&b[16..24], &offset.to_le_bytes());
        prop_assert_eq!(&b[24..32], &length.to_le_bytes());
    }
}
