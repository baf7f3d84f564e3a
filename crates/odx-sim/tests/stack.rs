//! The stack's structure: which layer decides, which facts odxflt asks for, sticky volume flags,
//! and the copy engine over both stores.

use odx_core::flags::{
    AccessMask, FileAttributes, OffloadReadFlags, StreamMarkers, SupportedFeatures, VolumeFlags,
};
use odx_core::iomgr::{FilterSupportedFeaturesMode, RequestorMode};
use odx_core::validate::Check;
use odx_core::wire::{OffloadReadInput, OffloadReadOutput, OffloadWriteInput, StorageOffloadToken};
use odx_core::{FactKind, NtStatus, WireStruct};
use odx_sim::copy_engine::{CopyOptions, FallbackCause, StackCopy, copy};
use odx_sim::scenario::{Scenario, StepStatus, compare};
use odx_sim::{DataStore, DecidedBy, FileId, HostStore, MemStore, Stack, VolumeConfig};

fn stack_with(filters: Vec<u32>, config: VolumeConfig) -> (Stack<MemStore>, FileId) {
    let filters = filters
        .into_iter()
        .map(SupportedFeatures::from_bits_retain)
        .collect();
    let mut stack = Stack::new(
        config,
        MemStore::new(),
        filters,
        FilterSupportedFeaturesMode::Normal,
    );
    let vol = stack.volume_mut();
    let id = vol.create_file("f").unwrap();
    vol.write_data(id, 0, &vec![7u8; 1 << 20]).unwrap();
    (stack, id)
}

fn read_request(offset: u64, length: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; OffloadReadInput::SIZE];
    OffloadReadInput::new(offset, length, 0)
        .serialize_into(&mut bytes)
        .unwrap();
    bytes
}

#[test]
fn a_misaligned_request_never_queries_stream_facts() {
    let (mut stack, id) = stack_with(vec![], VolumeConfig::default());
    let h = stack.open(id, AccessMask::READ_DATA).unwrap();
    let out = stack.fsctl(
        h,
        odx_core::FSCTL_OFFLOAD_READ,
        &read_request(100, 4096),
        528,
        RequestorMode::User,
    );
    assert_eq!(out.status, NtStatus::STATUS_INVALID_PARAMETER);
    assert_eq!(out.decided_by, DecidedBy::Odxflt(Check::Alignment));
    assert_eq!(out.facts.get(FactKind::Volume), 1);
    assert_eq!(out.facts.get(FactKind::Handle), 1);
    assert_eq!(out.facts.get(FactKind::StreamKind), 0);
    assert_eq!(out.facts.get(FactKind::StreamSizes), 0);
    assert_eq!(out.facts.get(FactKind::Locks), 0);
}

#[test]
fn a_forwarded_request_asks_each_fact_once() {
    let (mut stack, id) = stack_with(vec![3], VolumeConfig::default());
    let h = stack.open(id, AccessMask::READ_DATA).unwrap();
    let out = stack.fsctl(
        h,
        odx_core::FSCTL_OFFLOAD_READ,
        &read_request(0, 65536),
        528,
        RequestorMode::User,
    );
    assert_eq!(out.status, NtStatus::STATUS_SUCCESS);
    assert_eq!(
        out.decided_by,
        DecidedBy::Below {
            below: NtStatus::STATUS_SUCCESS
        }
    );
    for kind in [
        FactKind::Volume,
        FactKind::Handle,
        FactKind::StreamKind,
        FactKind::StreamSizes,
        FactKind::Locks,
    ] {
        assert_eq!(out.facts.get(kind), 1, "{kind:?}");
    }
    let answer = OffloadReadOutput::parse(&out.output).unwrap();
    assert_eq!(answer.transfer_length.get(), 65536);
    assert_eq!(answer.size.get(), 528);
}

#[test]
fn the_io_manager_refuses_before_odxflt_asks_anything() {
    let (mut stack, id) = stack_with(vec![3, 0], VolumeConfig::default());
    let h = stack.open(id, AccessMask::READ_DATA).unwrap();
    let out = stack.fsctl(
        h,
        odx_core::FSCTL_OFFLOAD_READ,
        &read_request(0, 65536),
        528,
        RequestorMode::User,
    );
    assert_eq!(out.status, NtStatus::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED);
    assert_eq!(out.decided_by, DecidedBy::IoManager);
    assert_eq!(out.facts.total(), 0);
    assert!(out.output.is_empty());
}

fn write_request(offset: u64, length: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; OffloadWriteInput::SIZE];
    OffloadWriteInput::new(offset, length, 0, StorageOffloadToken::zero_data())
        .serialize_into(&mut bytes)
        .unwrap();
    bytes
}

#[test]
fn a_kernel_requestor_is_not_refused_on_the_handle_access_bits() {
    // 4c: the I/O manager checks user-mode callers; kernel-mode callers are trusted. odxflt makes
    // no access check of its own, and NTFS makes none for offload (MS-FSA): the request succeeds.
    let (mut stack, id) = stack_with(vec![], VolumeConfig::default());
    let none = stack.open(id, AccessMask::empty()).unwrap();
    let requests = [
        (odx_core::FSCTL_OFFLOAD_READ, read_request(0, 65536), 528),
        (odx_core::FSCTL_OFFLOAD_WRITE, write_request(0, 4096), 16),
    ];
    for (code, input, output_len) in &requests {
        let out = stack.fsctl(none, *code, input, *output_len, RequestorMode::Kernel);
        assert_eq!(out.status, NtStatus::STATUS_SUCCESS, "{code:#x}");
        assert_eq!(
            out.decided_by,
            DecidedBy::Below {
                below: NtStatus::STATUS_SUCCESS
            },
            "{code:#x}"
        );
        let user = stack.fsctl(none, *code, input, *output_len, RequestorMode::User);
        assert_eq!(user.status, NtStatus::STATUS_ACCESS_DENIED, "{code:#x}");
        assert_eq!(user.decided_by, DecidedBy::IoManager);
        assert_eq!(user.facts.total(), 0);
    }
}

#[test]
fn valid_data_length_only_trims_in_odxflt_and_ntfs_answers_beyond_it() {
    // 4b: VDL 64 KiB of a 1 MiB file. Beyond it, odxflt forwards untouched and NTFS (the model's
    // MS-FSA read 14 / write 16) answers; the caller sees the same answer as before.
    let (mut stack, id) = stack_with(vec![], VolumeConfig::default());
    stack.volume_mut().set_valid_data_length(id, 65536).unwrap();
    let h = stack
        .open(id, AccessMask::READ_DATA | AccessMask::WRITE_DATA)
        .unwrap();
    let success = DecidedBy::Below {
        below: NtStatus::STATUS_SUCCESS,
    };
    // (offset, length, TransferLength): the zero token covers the range up to EOF.
    for (offset, length, transfer) in [(65536, 65536, 65536), ((1 << 20) - 4096, 1 << 20, 4096)] {
        let out = stack.fsctl(
            h,
            odx_core::FSCTL_OFFLOAD_READ,
            &read_request(offset, length),
            528,
            RequestorMode::User,
        );
        assert_eq!(out.status, NtStatus::STATUS_SUCCESS, "read at {offset}");
        assert_eq!(out.decided_by, success, "read at {offset}: NTFS answers");
        let answer = OffloadReadOutput::parse(&out.output).unwrap();
        assert!(answer.token.is_zero_data());
        assert_eq!(
            answer.read_flags(),
            OffloadReadFlags::ALL_ZERO_BEYOND_CURRENT_RANGE
        );
        assert_eq!(answer.transfer_length.get(), transfer, "read at {offset}");
    }
    // Starting below VDL and running past it: still trimmed by odxflt, with the zero flag.
    let out = stack.fsctl(
        h,
        odx_core::FSCTL_OFFLOAD_READ,
        &read_request(0, 131072),
        528,
        RequestorMode::User,
    );
    assert_eq!(out.decided_by, success);
    let answer = OffloadReadOutput::parse(&out.output).unwrap();
    assert_eq!(answer.transfer_length.get(), 65536);
    assert!(!answer.token.is_zero_data());
    assert_eq!(
        answer.read_flags(),
        OffloadReadFlags::ALL_ZERO_BEYOND_CURRENT_RANGE
    );
    // A write beyond VDL: NTFS refuses it (C-4), odxflt passes the refusal through.
    let out = stack.fsctl(
        h,
        odx_core::FSCTL_OFFLOAD_WRITE,
        &write_request(131072, 4096),
        16,
        RequestorMode::User,
    );
    assert_eq!(out.status, NtStatus::STATUS_INVALID_PARAMETER);
    assert_eq!(
        out.decided_by,
        DecidedBy::Below {
            below: NtStatus::STATUS_INVALID_PARAMETER
        }
    );
}

#[test]
fn ntfs_answers_a_write_beyond_vdl_with_the_c4_choice() {
    // Conflict C-4 is now the file system model's answer (odxflt forwards such a write).
    let (mut stack, id) = stack_with(vec![], VolumeConfig::default());
    stack.volume_mut().set_valid_data_length(id, 4096).unwrap();
    let handle = odx_sim::odxflt::HandleState {
        file: id,
        granted: AccessMask::empty(),
        open: odx_sim::stack::self_open(id),
        key: 0,
        closed: false,
    };
    for status in [
        NtStatus::STATUS_INVALID_PARAMETER,
        NtStatus::STATUS_BEYOND_VDL,
    ] {
        let rules = odx_core::Rules {
            write_beyond_vdl: status,
            ..odx_core::Rules::DOCUMENTED
        };
        let mut buffer = write_request(8192, 4096);
        let answer = odx_sim::ntfs::validate_then_execute(
            stack.volume_mut(),
            odx_core::OffloadOp::Write,
            handle,
            &mut buffer,
            OffloadWriteInput::SIZE,
            16,
            &rules,
        );
        assert_eq!((answer.status, answer.information), (status, 0));
    }
    // At VDL the rule does not answer: the write is executed.
    let mut buffer = write_request(4096, 4096);
    assert_eq!(
        odx_sim::ntfs::valid_data_rule(
            stack.volume(),
            odx_core::OffloadOp::Write,
            id,
            &mut buffer,
            OffloadWriteInput::SIZE,
            16,
            &odx_core::Rules::DOCUMENTED,
        ),
        None
    );
}

#[test]
fn storage_refusal_is_answered_not_supported_and_backs_off_the_operation() {
    let config = VolumeConfig {
        storage_offload_read: false,
        backoff_seconds: 180,
        ..VolumeConfig::default()
    };
    let (mut stack, id) = stack_with(vec![], config);
    let h = stack.open(id, AccessMask::READ_DATA).unwrap();
    let read = |stack: &mut Stack<MemStore>| {
        stack.fsctl(
            h,
            odx_core::FSCTL_OFFLOAD_READ,
            &read_request(0, 4096),
            528,
            RequestorMode::User,
        )
    };
    // The descriptor said "supported": forwarded; the storage's DEVICE_FEATURE_NOT_SUPPORTED
    // reaches the caller as NOT_SUPPORTED and starts the read back-off.
    let first = read(&mut stack);
    assert_eq!(first.status, NtStatus::STATUS_NOT_SUPPORTED);
    assert_eq!(
        first.decided_by,
        DecidedBy::Below {
            below: NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED
        }
    );
    // NTFS's own sticky IsOffloadReadSupported is cleared (MS-FSA read 16) ...
    assert!(
        !stack
            .volume()
            .flags()
            .contains(VolumeFlags::OFFLOAD_READ_SUPPORTED)
    );
    // ... and odxflt's back-off is its own.
    let until = stack
        .storage_state()
        .backoff_until(odx_core::OffloadOp::Read, stack.interrupt_time());
    assert_eq!(until, Some(180 * odx_core::storage::TICKS_PER_SECOND));
    for _ in 0..3 {
        let again = read(&mut stack);
        assert_eq!(again.status, NtStatus::STATUS_NOT_SUPPORTED);
        assert_eq!(again.decided_by, DecidedBy::Odxflt(Check::OffloadSupported));
        assert_eq!(again.facts.get(FactKind::StreamKind), 0);
        assert_eq!(again.facts.get(FactKind::StreamSizes), 0);
    }
    assert!(
        stack
            .odxflt_volume_facts()
            .flags
            .contains(VolumeFlags::OFFLOAD_WRITE_SUPPORTED),
        "writes have their own back-off"
    );
    // The period ends: forwarded again; NTFS still refuses (its flag is sticky), odxflt backs
    // off again from then.
    stack.advance_ms(180_000);
    let later = read(&mut stack);
    assert_eq!(later.status, NtStatus::STATUS_NOT_SUPPORTED);
    assert_eq!(
        later.decided_by,
        DecidedBy::Below {
            below: NtStatus::STATUS_NOT_SUPPORTED
        }
    );
    assert_eq!(
        stack
            .storage_state()
            .backoff_until(odx_core::OffloadOp::Read, stack.interrupt_time()),
        Some(360 * odx_core::storage::TICKS_PER_SECOND)
    );
}

#[test]
fn offload_write_raises_vdl_but_never_eof() {
    let (mut stack, src) = stack_with(vec![], VolumeConfig::default());
    let vol = stack.volume_mut();
    let dst = vol.create_file("d").unwrap();
    vol.set_end_of_file(dst, 10_000).unwrap();
    let hs = stack.open(src, AccessMask::READ_DATA).unwrap();
    let hd = stack.open(dst, AccessMask::WRITE_DATA).unwrap();
    let r = stack.offload_read(hs, 0, 16384, 0).unwrap();
    assert_eq!(stack.offload_write(hd, 0, 16384, 0, &r.token), Ok(10_240));
    let e = stack.volume().entry(dst).unwrap();
    assert_eq!((e.end_of_file, e.valid_data_length), (10_000, 10_000));
    assert_eq!(stack.volume().data().len(dst).unwrap(), 10_000);
}

fn copy_stack<S: DataStore>(
    store: S,
    src_attrs: FileAttributes,
    filters: Vec<u32>,
    max_transfer: u64,
) -> (Stack<S>, FileId, FileId) {
    let config = VolumeConfig {
        max_transfer,
        ..VolumeConfig::default()
    };
    let filters = filters
        .into_iter()
        .map(SupportedFeatures::from_bits_retain)
        .collect();
    let mut stack = Stack::new(config, store, filters, FilterSupportedFeaturesMode::Normal);
    let vol = stack.volume_mut();
    let src = vol.create_file("src").unwrap();
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    vol.write_data(src, 0, &data).unwrap();
    vol.set_kind(src, src_attrs, StreamMarkers::empty(), false)
        .unwrap();
    let dst = vol.create_file("dst").unwrap();
    (stack, src, dst)
}

fn identical<S: DataStore>(stack: &Stack<S>, src: FileId, dst: FileId) -> bool {
    let len = stack.volume().entry(src).unwrap().end_of_file;
    stack.volume().entry(dst).unwrap().end_of_file == len
        && compare(stack, src, 0, dst, 0, len).unwrap()
            == StepStatus::Status(NtStatus::STATUS_SUCCESS)
}

#[test]
fn copy_engine_offloads_everything_and_continues_after_truncation() {
    let (mut stack, src, dst) =
        copy_stack(MemStore::new(), FileAttributes::empty(), vec![], 1 << 20);
    let mut ops = StackCopy::open(&mut stack, src, dst).unwrap();
    let options = CopyOptions {
        chunk: 300 * 1024,
        ..CopyOptions::default()
    };
    let report = copy(&mut ops, &options, &mut |_| {}).unwrap();
    assert_eq!(report.total_bytes, 3_000_000);
    assert_eq!(report.offloaded_bytes, 3_000_000);
    assert_eq!(report.fallback_bytes, 0);
    assert_eq!(report.fallback, None);
    // 3 000 000 bytes with 1 MiB per token: three reads, each truncated but the last.
    assert_eq!(report.offload_reads, 3);
    assert_eq!(report.truncated_reads, 2);
    assert!(identical(&stack, src, dst));
}

#[test]
fn copy_engine_falls_back_for_a_sparse_source() {
    let (mut stack, src, dst) = copy_stack(
        MemStore::new(),
        FileAttributes::SPARSE_FILE,
        vec![],
        1 << 28,
    );
    let mut ops = StackCopy::open(&mut stack, src, dst).unwrap();
    let report = copy(&mut ops, &CopyOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(
        report.fallback,
        Some(FallbackCause::ReadFailed(
            NtStatus::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED
        ))
    );
    assert_eq!(
        (
            report.offloaded_bytes,
            report.fallback_bytes,
            report.fallback_at
        ),
        (0, 3_000_000, Some(0))
    );
    assert!(identical(&stack, src, dst));
}

#[test]
fn copy_engine_falls_back_when_a_filter_has_not_opted_in_to_write() {
    let (mut stack, src, dst) =
        copy_stack(MemStore::new(), FileAttributes::empty(), vec![1], 1 << 28);
    let mut ops = StackCopy::open(&mut stack, src, dst).unwrap();
    let report = copy(&mut ops, &CopyOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(
        report.fallback,
        Some(FallbackCause::WriteFailed(
            NtStatus::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED
        ))
    );
    assert_eq!(report.fallback_bytes, 3_000_000);
    assert!(identical(&stack, src, dst));
}

#[test]
fn copy_engine_resumes_the_classic_copy_where_offload_stopped() {
    // The token expires between chunks: the first chunk is offloaded, the rest copied classically.
    struct Expiring<'a, S: DataStore>(StackCopy<'a, S>, u32);
    impl<S: DataStore> odx_sim::copy_engine::CopyOps for Expiring<'_, S> {
        fn source_len(&mut self) -> std::io::Result<u64> {
            self.0.source_len()
        }
        fn sector_size(&self) -> u64 {
            self.0.sector_size()
        }
        fn set_dest_len(&mut self, len: u64) -> std::io::Result<()> {
            self.0.set_dest_len(len)
        }
        fn offload_read(
            &mut self,
            o: u64,
            l: u64,
        ) -> Result<odx_sim::copy_engine::TokenAnswer, NtStatus> {
            self.0.offload_read(o, l)
        }
        fn offload_write(
            &mut self,
            o: u64,
            l: u64,
            t: u64,
            token: &odx_core::wire::StorageOffloadToken,
        ) -> Result<u64, NtStatus> {
            self.1 += 1;
            if self.1 == 2 {
                let mut forged = *token;
                forged.token_id[0] ^= 1;
                return self.0.offload_write(o, l, t, &forged);
            }
            self.0.offload_write(o, l, t, token)
        }
        fn read(&mut self, o: u64, b: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(o, b)
        }
        fn write(&mut self, o: u64, d: &[u8]) -> std::io::Result<()> {
            self.0.write(o, d)
        }
    }
    let (mut stack, src, dst) =
        copy_stack(MemStore::new(), FileAttributes::empty(), vec![], 1 << 28);
    let mut ops = Expiring(StackCopy::open(&mut stack, src, dst).unwrap(), 0);
    let options = CopyOptions {
        chunk: 1 << 20,
        ..CopyOptions::default()
    };
    let report = copy(&mut ops, &options, &mut |_| {}).unwrap();
    assert_eq!(
        report.fallback,
        Some(FallbackCause::WriteFailed(NtStatus::STATUS_INVALID_TOKEN))
    );
    assert_eq!(report.fallback_at, Some(1 << 20));
    assert_eq!(report.offloaded_bytes, 1 << 20);
    assert_eq!(report.fallback_bytes, 3_000_000 - (1 << 20));
    assert!(identical(&stack, src, dst));
}

#[test]
fn host_files_copy_moves_data_inside_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let (mut stack, src, dst) = copy_stack(
        HostStore::in_dir(dir.path()),
        FileAttributes::empty(),
        vec![],
        1 << 28,
    );
    let mut ops = StackCopy::open(&mut stack, src, dst).unwrap();
    let report = copy(&mut ops, &CopyOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(report.offloaded_bytes, 3_000_000);
    assert!(identical(&stack, src, dst));
    let stats = stack.volume().data().stats();
    // copy_file_range works on every Linux file system used here; if it did not, the store
    // says why and moved the bytes through a bounded buffer instead.
    assert_eq!(
        stats.copies.in_kernel + stats.copies.through_user_buffer,
        3_000_000
    );
    assert!(stats.copies.in_kernel == 3_000_000 || stats.kernel_copy_fallback.is_some());
    let a = std::fs::read(stack.volume().data().path(src).unwrap()).unwrap();
    let b = std::fs::read(stack.volume().data().path(dst).unwrap()).unwrap();
    assert!(a == b);
}

#[test]
fn malformed_scenarios_name_the_line() {
    let cases = [
        (
            "[[step]]\nop = \"read\"\nfile = \"x\"\nbogus = 1\n",
            4,
            "unknown field `bogus`",
        ),
        (
            "[[file]]\nname = \"a\"\n\n[[step]]\nop = \"read\"\nfile = \"b\"\n",
            4,
            "unknown file \"b\"",
        ),
        (
            "[[file]]\nname = \"a\"\n[[step]]\nop = \"write\"\nfile = \"a\"\ntoken = \"t9\"\n",
            3,
            "was not stored",
        ),
        (
            "[[file]]\nname = \"a\"\n[[step]]\nop = \"read\"\nfile = \"a\"\nexpect = \"STATUS_NOPE\"\n",
            3,
            "not a known STATUS_",
        ),
        ("[volume]\nsector_size = 1000\n", 1, "power of two"),
        ("[[step]]\nop = \"fly\"\n", 2, "unknown variant"),
        ("[[file]]\nname = \"a\"\nsize = -5\n", 3, ""),
    ];
    for (text, line, needle) in cases {
        let err = Scenario::parse(text, "x.toml").unwrap_err();
        assert_eq!(err.line, line, "{text:?}: {err}");
        assert!(err.message.contains(needle), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
        assert!(
            err.to_string().starts_with(&format!("x.toml:{line}:")),
            "{err}"
        );
    }
}
