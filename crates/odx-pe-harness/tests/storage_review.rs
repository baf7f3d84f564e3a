//! Issue 13 on the shipped image: the storage property query at instance setup (device object
//! dereferenced on every path, the IRP never touched after IofCallDriver, the pending path
//! waits), a storage without copy offload refused without a file query, and a refusal from below
//! answered as STATUS_NOT_SUPPORTED with the back-off the mock clock ends. Skips when the
//! cross-built image is absent.

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use odx_core::NtStatus;
use odx_core::storage::TICKS_PER_SECOND;
use odx_core::wire::{OffloadReadInput, OffloadReadOutput, WireStruct};
use odx_pe_harness::diff;
use odx_pe_harness::driver::{FileObjectFacts, FsControlRequest, LoadedDriver, PreResult};
use odx_pe_harness::kernel::fault::{Fault, Point};
use odx_pe_harness::kernel::storage::DiskAnswer;
use odx_pe_harness::kernel::{self, Call, FileInfo, VolumeInfo};
use odx_pe_harness::layouts::shapes;
use odx_sim::VolumeConfig;

const MIB: i64 = 1 << 20;

fn image() -> Option<Vec<u8>> {
    diff::built_image()
}

fn volume(answer: DiskAnswer, backoff: Option<u32>) -> VolumeInfo {
    let mut volume = diff::volume_info(&VolumeConfig::default()).0;
    volume.storage = answer;
    volume.backoff_seconds = backoff;
    volume
}

fn descriptor() -> DiskAnswer {
    DiskAnswer::Descriptor(odx_sim::disk::default_limits(&VolumeConfig::default()))
}

fn read_request() -> FsControlRequest {
    let mut input = vec![0u8; OffloadReadInput::SIZE];
    OffloadReadInput::new(0, 65536, 0)
        .serialize_into(&mut input)
        .unwrap();
    FsControlRequest {
        pre_irql: 0,
        post_irql: 0,
        minor_function: shapes().constants.irp_mn_user_fs_request,
        code: odx_core::FSCTL_OFFLOAD_READ,
        input,
        output_len: OffloadReadOutput::SIZE,
        kernel_requestor: false,
        file: FileObjectFacts {
            read_access: true,
            write_access: true,
            valid_data_length: MIB,
            info: FileInfo {
                attributes: 0x20,
                end_of_file: MIB,
                allocation_size: MIB,
                ..FileInfo::default()
            },
            ..FileObjectFacts::default()
        },
    }
}

fn count(calls: &[Call], call: Call) -> usize {
    calls.iter().filter(|c| **c == call).count()
}

/// Loads, sets up one instance, checks misuse and leaks after unload; returns the setup calls
/// and the instance setup status.
fn setup_and_unload(volume: VolumeInfo, fault: Option<Fault>) -> (Vec<Call>, NtStatus) {
    let image = image().expect("image");
    let load = LoadedDriver::load_with_fault(&image, volume, None, fault).expect("loads");
    let odx_pe_harness::driver::Load::Started(mut driver) = load else {
        panic!("DriverEntry failed");
    };
    let status = driver.setup_instance().expect("setup");
    let calls = driver.calls();
    let errors = driver.errors();
    assert!(errors.is_empty(), "kernel misuse: {errors:?}");
    let leaks = driver.unload().expect("unloads");
    assert!(leaks.is_empty(), "{leaks:?}");
    (calls, status)
}

#[test]
fn the_device_object_is_dereferenced_on_every_path() {
    if image().is_none() {
        return;
    }
    let answers = [
        descriptor(),
        DiskAnswer::NotSupported,
        DiskAnswer::Fails(NtStatus::STATUS_INVALID_DEVICE_REQUEST),
        DiskAnswer::NoDisk,
    ];
    for answer in answers {
        let (calls, status) = setup_and_unload(volume(answer, None), None);
        assert_eq!(status, NtStatus::STATUS_SUCCESS, "{answer:?}");
        let got = count(&calls, Call::GetDiskDeviceObject);
        let dropped = count(&calls, Call::DereferenceObject);
        assert_eq!(got, 1, "{answer:?}");
        // No disk: FltGetDiskDeviceObject failed, nothing to drop, no IRP.
        let expected = usize::from(answer != DiskAnswer::NoDisk);
        assert_eq!(dropped, expected, "{answer:?}");
        assert_eq!(count(&calls, Call::CallDriver), expected, "{answer:?}");
    }
    // Each failure on the way: no IRP, the query failing with each status, the pending path.
    for (point, status) in [
        (Point::BuildIrp, NtStatus::STATUS_INSUFFICIENT_RESOURCES),
        (Point::StorageQuery, NtStatus::STATUS_NOT_SUPPORTED),
        (
            Point::StorageQuery,
            NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED,
        ),
        (Point::StorageQuery, NtStatus::STATUS_INSUFFICIENT_RESOURCES),
        (Point::PendQuery, NtStatus::STATUS_SUCCESS),
        (Point::GetDiskDeviceObject, NtStatus(0xC01C_0019)),
    ] {
        let fault = Fault {
            point,
            nth: 0,
            status,
        };
        let (calls, setup) = setup_and_unload(volume(descriptor(), None), Some(fault));
        assert_eq!(setup, NtStatus::STATUS_SUCCESS, "{point:?}");
        assert_eq!(
            count(&calls, Call::GetDiskDeviceObject)
                - usize::from(point == Point::GetDiskDeviceObject),
            count(&calls, Call::DereferenceObject),
            "{point:?}: every reference taken is dropped"
        );
    }
}

#[test]
fn the_pending_path_waits_and_reads_the_completed_descriptor() {
    let Some(image) = image() else { return };
    for pend in [false, true] {
        let mut driver = LoadedDriver::load(&image, volume(descriptor(), None)).expect("loads");
        kernel::with(|k| k.storage.pend = Some(pend));
        assert_eq!(
            driver.setup_instance().expect("setup"),
            NtStatus::STATUS_SUCCESS
        );
        let calls = driver.calls();
        assert_eq!(count(&calls, Call::WaitForSingleObject), usize::from(pend));
        let pended = kernel::with(|k| k.storage.pended).unwrap();
        assert_eq!(pended, usize::from(pend));
        // Either way the image learned the descriptor: the port reports "supported".
        let capability = kernel::with(|k| k.storage.queries).unwrap();
        assert_eq!(capability, 1);
        let errors = driver.errors();
        assert!(errors.is_empty(), "kernel misuse: {errors:?}");
        let leaks = driver.unload().expect("unloads");
        assert!(leaks.is_empty(), "{leaks:?}");
    }
}

#[test]
fn the_irp_is_never_touched_after_iofcalldriver() {
    // The mock makes the IRP's page inaccessible when it is sent; a touch would be recorded as
    // misuse (and the page opened again). The shipped image has none, on both paths.
    let Some(image) = image() else { return };
    for pend in [false, true] {
        let mut driver = LoadedDriver::load(&image, volume(descriptor(), None)).expect("loads");
        kernel::with(|k| k.storage.pend = Some(pend));
        driver.setup_instance().expect("setup");
        let (_, _) = (driver.calls(), ());
        let errors = driver.errors();
        assert!(
            !errors.iter().any(|e| e.contains("after IofCallDriver")),
            "{errors:?}"
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert!(driver.unload().expect("unloads").is_empty());
    }
}

#[test]
fn storage_without_offload_is_refused_without_a_file_query() {
    let Some(image) = image() else { return };
    let mut driver =
        LoadedDriver::load(&image, volume(DiskAnswer::NotSupported, None)).expect("loads");
    driver.setup_instance().expect("setup");
    let mut below = |_: &mut [u8], _: usize| -> (NtStatus, usize) {
        panic!("a request on storage without copy offload must not go down")
    };
    let result = driver
        .fs_control(&read_request(), &mut below)
        .expect("runs");
    assert_eq!(result.pre, PreResult::Complete);
    assert_eq!(result.status, NtStatus::STATUS_NOT_SUPPORTED);
    assert_eq!(
        result
            .calls
            .iter()
            .filter(|c| matches!(c, Call::QueryInformationFile(_)))
            .count(),
        0,
        "{:?}",
        result.calls
    );
    assert!(driver.errors().is_empty(), "{:?}", driver.errors());
    assert!(driver.unload().expect("unloads").is_empty());
}

#[test]
fn a_feature_refusal_from_below_is_not_supported_and_backs_off_until_the_clock_passes() {
    let Some(image) = image() else { return };
    let mut driver = LoadedDriver::load(&image, volume(descriptor(), Some(60))).expect("loads");
    driver.setup_instance().expect("setup");
    let mut refused = |_: &mut [u8], _: usize| (NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED, 0);
    let first = driver
        .fs_control(&read_request(), &mut refused)
        .expect("runs");
    assert_eq!(first.pre, PreResult::WithCallback);
    assert_eq!(
        first.below,
        Some(NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED)
    );
    assert_eq!(
        first.status,
        NtStatus::STATUS_NOT_SUPPORTED,
        "the documented code"
    );
    // Refused early for the whole back-off: 59 s later still, 60 s later no more.
    let mut never = |_: &mut [u8], _: usize| -> (NtStatus, usize) {
        panic!("no request goes down during the back-off")
    };
    kernel::with(|k| k.storage.now += 59 * TICKS_PER_SECOND);
    let during = driver
        .fs_control(&read_request(), &mut never)
        .expect("runs");
    assert_eq!(
        (during.pre, during.status),
        (PreResult::Complete, NtStatus::STATUS_NOT_SUPPORTED)
    );
    assert!(
        !during
            .calls
            .iter()
            .any(|c| matches!(c, Call::QueryInformationFile(_))),
        "refused before any file fact"
    );
    kernel::with(|k| k.storage.now += TICKS_PER_SECOND);
    let mut works = |buffer: &mut [u8], _: usize| {
        let output = OffloadReadOutput::new(
            odx_core::flags::OffloadReadFlags::empty(),
            65536,
            odx_core::wire::StorageOffloadToken::zero_data(),
        );
        output.serialize_into(buffer).unwrap();
        (NtStatus::STATUS_SUCCESS, OffloadReadOutput::SIZE)
    };
    let after = driver
        .fs_control(&read_request(), &mut works)
        .expect("runs");
    assert_eq!(
        (after.pre, after.status),
        (PreResult::WithCallback, NtStatus::STATUS_SUCCESS)
    );
    assert!(driver.errors().is_empty(), "{:?}", driver.errors());
    assert!(driver.unload().expect("unloads").is_empty());
}
