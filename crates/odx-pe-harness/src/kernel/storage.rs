//! The storage under the volume, as odxflt asks it at instance setup: `FltGetDiskDeviceObject`
//! (fltmgr.sys), `IoBuildDeviceIoControlRequest`, `IofCallDriver`, `KeInitializeEvent`,
//! `KeWaitForSingleObject`, `ObfDereferenceObject` and the clock, `KeQueryUnbiasedInterruptTime`
//! (ntoskrnl.exe). Each checks the IRQL its documentation allows (docs/pe-harness.md, "IRQL").
//!
//! The disk answers from the scenario's `[storage]` (`odx_sim::scenario::StorageSpec`): a
//! `DEVICE_COPY_OFFLOAD_DESCRIPTOR` laid out here by the golden table (never by odx-core's
//! `to_descriptor`), `STATUS_DEVICE_FEATURE_NOT_SUPPORTED` (what the storage class driver answers
//! for a disk without copy offload: classpnp's `ClasspDeviceCopyOffloadProperty`), another
//! failure, or no disk device at all. The
//! request is modelled as the documented METHOD_BUFFERED IRP: `IoBuildDeviceIoControlRequest`
//! copies the input into a system buffer the IRP owns; the disk reads the query from it and
//! writes the descriptor into it; completion copies `Information` bytes (at most
//! `OutputBufferLength`) to the caller's output buffer, writes the caller's `IO_STATUS_BLOCK`,
//! signals the caller's event and frees the IRP. The disk completes either at once or, every
//! other query (and whenever a test asks), answers `STATUS_PENDING` and completes "later": when
//! the caller waits on the event.
//!
//! Misuse recorded: a device-object reference not dropped (a leak at unload), a dereference of an
//! object without a reference, an IRP sent twice, built and never sent (a leak), sent to another
//! device, or read or written after `IofCallDriver` (the IRP is a page of its own, made
//! inaccessible when it is sent: a touch faults, the fault handler records it and opens the page
//! again so the run goes on), a wait on an event nobody will signal (reported, not hung), a wait
//! with a NULL timeout at DISPATCH_LEVEL or above, an event that was never initialised.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

use odx_core::NtStatus;
use odx_core::storage::CopyOffloadLimits;

use super::fault::Point;
use super::{Call, STATUS_INVALID_PARAMETER, nt, with};
use crate::layouts::{Blob, shapes, table};

const PASSIVE_LEVEL: u8 = 0;
const DISPATCH_LEVEL: u8 = 2;
/// The opaque disk device object: a block of its own (the image never reads a field).
const DEVICE_BYTES: usize = 64;
const PAGE: usize = 4096;

/// What the disk answers to the property query (from the scenario's `[storage]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskAnswer {
    /// `STATUS_SUCCESS` with a descriptor of these limits.
    Descriptor(CopyOffloadLimits),
    /// No copy offload: `STATUS_DEVICE_FEATURE_NOT_SUPPORTED`, the class driver's answer for a
    /// disk without the Block Device ROD Limits VPD page.
    NotSupported,
    /// This failure status.
    Fails(NtStatus),
    /// No disk device object under the volume.
    NoDisk,
}

/// The storage model's state in the mock kernel.
#[derive(Debug)]
pub struct StorageModel {
    /// The disk's answer.
    pub answer: DiskAnswer,
    /// `Parameters\OffloadBackoffSeconds` as the registry serves it (`None`: absent).
    pub backoff_seconds: Option<u32>,
    /// The interrupt time `KeQueryUnbiasedInterruptTime` answers (100-ns ticks; the scenario's
    /// `advance_ms` moves it, as it moves the simulator's clock).
    pub now: u64,
    /// Answer `STATUS_PENDING` first: `None` alternates per query, `Some` forces.
    pub pend: Option<bool>,
    /// Queries the disk answered.
    pub queries: usize,
    /// Queries answered with `STATUS_PENDING` (then completed in the wait).
    pub pended: usize,
    device: Option<Box<[u64; DEVICE_BYTES / 8]>>,
    /// References on the device object held by the image.
    pub device_references: u32,
    events: BTreeMap<usize, bool>,
    irps: BTreeMap<usize, Irp>,
    /// IRPs the image sent (pages kept inaccessible until unload, so a late touch is seen).
    sent: Vec<usize>,
}

impl StorageModel {
    /// A disk that answers `answer`, `Parameters\OffloadBackoffSeconds` = `backoff_seconds`.
    #[must_use]
    pub const fn new(answer: DiskAnswer, backoff_seconds: Option<u32>) -> Self {
        Self {
            answer,
            backoff_seconds,
            now: 0,
            pend: None,
            queries: 0,
            pended: 0,
            device: None,
            device_references: 0,
            events: BTreeMap::new(),
            irps: BTreeMap::new(),
            sent: Vec::new(),
        }
    }
}

impl StorageModel {
    /// The disk device object's address, once `FltGetDiskDeviceObject` has handed it out.
    #[must_use]
    pub fn device_address(&self) -> Option<usize> {
        self.device.as_ref().map(|d| d.as_ptr() as usize)
    }
}

impl Default for StorageModel {
    fn default() -> Self {
        Self::new(
            DiskAnswer::Descriptor(odx_sim::disk::default_limits(
                &odx_sim::VolumeConfig::default(),
            )),
            None,
        )
    }
}

/// One IRP built by `IoBuildDeviceIoControlRequest`.
#[derive(Debug)]
struct Irp {
    device: usize,
    code: u32,
    system_buffer: Vec<u8>,
    output: usize,
    output_length: usize,
    event: usize,
    io_status: usize,
    /// Sent with `IofCallDriver`.
    sent: bool,
    /// Completion deferred to the wait: (status, information).
    pending: Option<(NtStatus, usize)>,
}

/// The pages of sent IRPs, made inaccessible (bit 0 set once the image touched one), for the
/// fault handler; process-wide, each page belongs to one thread's kernel.
static SENT: [AtomicUsize; 64] = [const { AtomicUsize::new(0) }; 64];

/// Called by the SIGSEGV handler for a fault at `address`: when it lies in a sent IRP's page,
/// the page is opened again and the touch marked (the instruction is then retried and
/// succeeds). `false` for any other address.
pub fn fault_on_sent_irp(address: usize) -> bool {
    let page = address & !(PAGE - 1);
    for slot in &SENT {
        let value = slot.load(Ordering::Relaxed);
        if value != 0 && value & !1 == page {
            // SAFETY: `page` is one of the harness's own IRP pages; making it accessible again
            // has no other effect. mprotect is async-signal-safe.
            let ok = unsafe {
                libc::mprotect(
                    page as *mut c_void,
                    PAGE,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            } == 0;
            slot.store(page | 1, Ordering::Relaxed);
            return ok;
        }
    }
    false
}

pub(super) fn resolve_ntoskrnl(symbol: &str) -> Option<usize> {
    Some(match symbol {
        "IoBuildDeviceIoControlRequest" => io_build_device_io_control_request as *const () as usize,
        "IofCallDriver" => iof_call_driver as *const () as usize,
        "KeInitializeEvent" => ke_initialize_event as *const () as usize,
        "KeWaitForSingleObject" => ke_wait_for_single_object as *const () as usize,
        "ObfDereferenceObject" => obf_dereference_object as *const () as usize,
        "KeQueryUnbiasedInterruptTime" => ke_query_unbiased_interrupt_time as *const () as usize,
        _ => return None,
    })
}

pub(super) fn resolve_fltmgr(symbol: &str) -> Option<usize> {
    Some(match symbol {
        "FltGetDiskDeviceObject" => flt_get_disk_device_object as *const () as usize,
        _ => return None,
    })
}

/// Writes `value` at `base + offset` of a structure the image passed in.
///
/// # Safety
/// `base + offset .. + size_of::<T>()` is writable memory of that structure.
unsafe fn poke<T: Copy>(base: usize, offset: usize, value: T) {
    let at = (base as *mut u8).wrapping_add(offset).cast::<T>();
    // SAFETY: forwarded from the caller.
    unsafe { at.write_unaligned(value) };
}

fn constant(name: &str) -> u64 {
    table().and_then(|t| t.constant(name)).unwrap_or(u64::MAX)
}

fn status_constant(name: &str) -> NtStatus {
    NtStatus(u32::try_from(constant(name)).unwrap_or(u32::MAX))
}

/// Records a touch of one of this kernel's sent IRPs that the fault handler saw.
pub(super) fn check_touches(k: &mut super::Kernel) {
    for &page in &k.storage.sent {
        for slot in &SENT {
            if slot
                .compare_exchange(page | 1, page, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                k.errors.push(format!(
                    "the image touched IRP {page:#x} after IofCallDriver; the I/O manager owns and frees it"
                ));
            }
        }
    }
}

/// `FltGetDiskDeviceObject` (fltkernel/nf-fltkernel-fltgetdiskdeviceobject: IRQL <=
/// DISPATCH_LEVEL; `STATUS_FLT_NO_DEVICE_OBJECT`; the object comes referenced).
unsafe extern "win64" fn flt_get_disk_device_object(volume: isize, disk: *mut usize) -> i32 {
    nt(with(|k| {
        k.calls.push(Call::GetDiskDeviceObject);
        check_touches(k);
        k.require_irql("FltGetDiskDeviceObject", DISPATCH_LEVEL);
        if volume != super::VOLUME_HANDLE || disk.is_null() {
            k.error(format!(
                "FltGetDiskDeviceObject: volume {volume:#x}, out pointer {disk:p}"
            ));
            return STATUS_INVALID_PARAMETER;
        }
        if let Some(status) = k.faults.hit(Point::GetDiskDeviceObject) {
            return status;
        }
        if k.storage.answer == DiskAnswer::NoDisk {
            return status_constant("STATUS_FLT_NO_DEVICE_OBJECT");
        }
        let device = k
            .storage
            .device
            .get_or_insert_with(|| Box::new([0xA5A5_A5A5_A5A5_A5A5; DEVICE_BYTES / 8]))
            .as_ptr() as usize;
        k.storage.device_references += 1;
        // SAFETY: the image's out pointer (checked non-NULL).
        unsafe { disk.write(device) };
        NtStatus::STATUS_SUCCESS
    })
    .unwrap_or(STATUS_INVALID_PARAMETER))
}

/// `ObfDereferenceObject` (wdm/nf-wdm-obdereferenceobject: IRQL <= DISPATCH_LEVEL).
unsafe extern "win64" fn obf_dereference_object(object: usize) -> isize {
    with(|k| {
        k.calls.push(Call::DereferenceObject);
        check_touches(k);
        k.require_irql("ObfDereferenceObject", DISPATCH_LEVEL);
        if Some(object) != k.storage.device_address() || k.storage.device_references == 0 {
            k.error(format!(
                "ObfDereferenceObject({object:#x}): not an object the image holds a reference on"
            ));
            return 0;
        }
        k.storage.device_references -= 1;
        isize::try_from(k.storage.device_references).unwrap_or(0)
    })
    .unwrap_or(0)
}

/// `KeInitializeEvent` (wdm/nf-wdm-keinitializeevent: any IRQL): `Header.Type` and
/// `Header.SignalState` at the table's offsets.
unsafe extern "win64" fn ke_initialize_event(event: *mut c_void, kind: i32, state: u8) {
    let t = table();
    let offsets = t.and_then(|t| {
        Ok((
            t.offset("KEVENT", "Header.Type")?,
            t.offset("KEVENT", "Header.Size")?,
            t.offset("KEVENT", "Header.SignalState")?,
            t.size("KEVENT")?,
        ))
    });
    with(|k| {
        k.calls.push(Call::InitializeEvent);
        check_touches(k);
        let Ok((type_at, size_at, signal_at, size)) = offsets else {
            k.error("KEVENT is not in the layout table".into());
            return;
        };
        let kinds = [
            constant("NotificationEvent"),
            constant("SynchronizationEvent"),
        ];
        if event.is_null() || !kinds.contains(&u64::try_from(kind).unwrap_or(u64::MAX)) {
            k.error(format!("KeInitializeEvent({event:p}, type {kind})"));
            return;
        }
        let base = event as usize;
        // SAFETY: the image passes its KEVENT (checked non-NULL), `size` writable bytes.
        unsafe { event.cast::<u8>().write_bytes(0, size) };
        // SAFETY: inside that KEVENT: UCHAR Header.Type at the table's offset.
        unsafe { poke(base, type_at, u8::try_from(kind).unwrap_or(0)) };
        // SAFETY: as above: UCHAR Header.Size (in LONGs).
        unsafe { poke(base, size_at, u8::try_from(size / 4).unwrap_or(0)) };
        // SAFETY: as above: LONG Header.SignalState.
        unsafe { poke(base, signal_at, i32::from(state != 0)) };
        k.storage.events.insert(event as usize, state != 0);
    });
}

/// `IoBuildDeviceIoControlRequest` (wdm/nf-wdm-iobuilddeviceiocontrolrequest: PASSIVE_LEVEL;
/// NULL when the IRP cannot be allocated).
unsafe extern "win64" fn io_build_device_io_control_request(
    code: u32,
    device: usize,
    input: *const u8,
    input_length: u32,
    output: usize,
    output_length: u32,
    internal: u8,
    event: usize,
    io_status: usize,
) -> usize {
    let input = if input.is_null() || input_length == 0 {
        Vec::new()
    } else {
        // SAFETY: the image passes `input_length` readable bytes of input; METHOD_BUFFERED
        // copies them into the system buffer now.
        unsafe { std::slice::from_raw_parts(input, input_length as usize) }.to_vec()
    };
    with(|k| {
        k.calls.push(Call::BuildDeviceIoControlRequest);
        check_touches(k);
        k.require_irql("IoBuildDeviceIoControlRequest", PASSIVE_LEVEL);
        if Some(device) != k.storage.device_address() || k.storage.device_references == 0 {
            k.error(format!(
                "IoBuildDeviceIoControlRequest for device {device:#x}, which the image holds no reference on"
            ));
            return 0;
        }
        if internal != 0 || event == 0 || io_status == 0 {
            k.error(format!(
                "IoBuildDeviceIoControlRequest: internal {internal}, event {event:#x}, status block {io_status:#x}"
            ));
        }
        if !k.storage.events.contains_key(&event) {
            k.error("IoBuildDeviceIoControlRequest: the event was never initialised".into());
        }
        if k.faults.hit(Point::BuildIrp).is_some() {
            return 0;
        }
        // METHOD_BUFFERED: one system buffer of max(input, output) bytes.
        let mut system_buffer = input;
        system_buffer.resize(system_buffer.len().max(output_length as usize), 0);
        // SAFETY: a fresh anonymous page for the IRP (the image only passes its address on).
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if page == libc::MAP_FAILED {
            return 0;
        }
        let irp = page as usize;
        k.storage.irps.insert(
            irp,
            Irp {
                device,
                code,
                system_buffer,
                output,
                output_length: output_length as usize,
                event,
                io_status,
                sent: false,
                pending: None,
            },
        );
        irp
    })
    .unwrap_or(0)
}

/// The disk's answer to the IRP: (status, information), the system buffer written.
fn disk_answers(k: &mut super::Kernel, irp: &mut Irp) -> (NtStatus, usize) {
    k.storage.queries += 1;
    let ioctl = constant("IOCTL_STORAGE_QUERY_PROPERTY");
    if u64::from(irp.code) != ioctl {
        return (status_constant("STATUS_INVALID_DEVICE_REQUEST"), 0);
    }
    let (Ok(query_size), Ok(property_at), Ok(type_at)) = (
        table().and_then(|t| t.size("STORAGE_PROPERTY_QUERY")),
        table().and_then(|t| t.offset("STORAGE_PROPERTY_QUERY", "PropertyId")),
        table().and_then(|t| t.offset("STORAGE_PROPERTY_QUERY", "QueryType")),
    ) else {
        k.error("STORAGE_PROPERTY_QUERY is not in the layout table".into());
        return (STATUS_INVALID_PARAMETER, 0);
    };
    let word = |at: usize| {
        irp.system_buffer
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
    };
    if irp.system_buffer.len() < query_size {
        return (STATUS_INVALID_PARAMETER, 0);
    }
    let (property, query_type) = (word(property_at), word(type_at));
    if property.map(u64::from) != Some(constant("StorageDeviceCopyOffloadProperty"))
        || query_type.map(u64::from) != Some(constant("PropertyStandardQuery"))
    {
        k.error(format!(
            "IOCTL_STORAGE_QUERY_PROPERTY for property {property:?}, query type {query_type:?}"
        ));
        return (STATUS_INVALID_PARAMETER, 0);
    }
    if let Some(status) = k.faults.hit(Point::StorageQuery) {
        return (status, 0);
    }
    match k.storage.answer {
        DiskAnswer::Descriptor(limits) => match descriptor(&limits) {
            Ok(bytes) => {
                // What fits the caller's output buffer (the class driver returns the header
                // only for a short buffer; odxflt always passes the whole structure).
                let n = bytes.len().min(irp.output_length);
                irp.system_buffer[..n].copy_from_slice(&bytes[..n]);
                (NtStatus::STATUS_SUCCESS, n)
            }
            Err(e) => {
                k.error(format!("descriptor: {e:#}"));
                (STATUS_INVALID_PARAMETER, 0)
            }
        },
        DiskAnswer::NotSupported => (NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED, 0),
        DiskAnswer::Fails(status) => (status, 0),
        DiskAnswer::NoDisk => (status_constant("STATUS_FLT_NO_DEVICE_OBJECT"), 0),
    }
}

/// `DEVICE_COPY_OFFLOAD_DESCRIPTOR` for `limits`, laid out by the golden table, with the header
/// the storage class driver writes: `Version` = 1, `Size` = the table's size (classpnp's
/// `ClasspDeviceCopyOffloadProperty`; the structure's page would have `Version` = the size).
/// Field widths: ULONG, ULONG, DWORD64, DWORD64, ULONG, ULONG, ULONG, USHORT.
///
/// # Errors
/// The table lacks the structure or a field.
pub fn descriptor(limits: &CopyOffloadLimits) -> anyhow::Result<Vec<u8>> {
    let t = table()?;
    let name = "DEVICE_COPY_OFFLOAD_DESCRIPTOR";
    let size = t.size(name)?;
    let mut blob = Blob::new(size);
    let size32 = u32::try_from(size)?;
    blob.put::<u32>(t.offset(name, "Version")?, 1);
    blob.put::<u32>(t.offset(name, "Size")?, size32);
    blob.put::<u32>(
        t.offset(name, "MaximumTokenLifetime")?,
        limits.maximum_token_lifetime,
    );
    blob.put::<u32>(
        t.offset(name, "DefaultTokenLifetime")?,
        limits.default_token_lifetime,
    );
    blob.put::<u64>(
        t.offset(name, "MaximumTransferSize")?,
        limits.maximum_transfer_size,
    );
    blob.put::<u64>(
        t.offset(name, "OptimalTransferCount")?,
        limits.optimal_transfer_count,
    );
    blob.put::<u32>(
        t.offset(name, "MaximumDataDescriptors")?,
        limits.maximum_data_descriptors,
    );
    blob.put::<u32>(
        t.offset(name, "MaximumTransferLengthPerDescriptor")?,
        limits.maximum_transfer_length_per_descriptor,
    );
    blob.put::<u32>(
        t.offset(name, "OptimalTransferLengthPerDescriptor")?,
        limits.optimal_transfer_length_per_descriptor,
    );
    blob.put::<u16>(
        t.offset(name, "OptimalTransferLengthGranularity")?,
        limits.optimal_transfer_length_granularity,
    );
    // SAFETY: the blob's own `size` bytes.
    Ok(unsafe { std::slice::from_raw_parts(blob.as_ptr().cast::<u8>(), size) }.to_vec())
}

/// The I/O manager's completion of a buffered IRP built for a caller: `information` bytes (at
/// most OutputBufferLength) of the system buffer copied to the caller's output on success, the
/// caller's status block written, the event signalled, the IRP gone.
fn complete(k: &mut super::Kernel, irp: &Irp, status: NtStatus, information: usize) {
    let io = shapes().io_status_block;
    if status.0 < 0xC000_0000 && irp.output != 0 {
        let n = information
            .min(irp.output_length)
            .min(irp.system_buffer.len());
        // SAFETY: the caller's output buffer of OutputBufferLength bytes, which the caller
        // keeps alive until completion (its event is signalled only after this).
        unsafe {
            std::ptr::copy_nonoverlapping(irp.system_buffer.as_ptr(), irp.output as *mut u8, n);
        }
    }
    // SAFETY: the caller's IO_STATUS_BLOCK, alive until completion; NTSTATUS Status at the
    // table's offset.
    unsafe { poke(irp.io_status, io.status, nt(status)) };
    // SAFETY: as above: ULONG_PTR Information.
    unsafe { poke(irp.io_status, io.information, information) };
    signal(k, irp.event);
}

fn signal(k: &mut super::Kernel, event: usize) {
    let Ok(signal_at) = table().and_then(|t| t.offset("KEVENT", "Header.SignalState")) else {
        return;
    };
    if let Some(state) = k.storage.events.get_mut(&event) {
        *state = true;
        // SAFETY: an event the image initialised with KeInitializeEvent and keeps alive until
        // the IRP completes; LONG SignalState at the table's offset.
        unsafe { poke(event, signal_at, 1_i32) };
    }
}

fn retire_page(irp: usize) {
    if SENT.iter().any(|slot| {
        slot.compare_exchange(0, irp, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }) {
        // SAFETY: the IRP's own page (mapped in io_build_device_io_control_request): made
        // inaccessible, so any later touch by the image faults and is recorded.
        unsafe { libc::mprotect(irp as *mut c_void, PAGE, libc::PROT_NONE) };
    }
}

/// `IofCallDriver` (wdm/nf-wdm-iocalldriver: IRQL <= DISPATCH_LEVEL): the disk's dispatch.
unsafe extern "win64" fn iof_call_driver(device: usize, irp: usize) -> i32 {
    nt(with(|k| {
        k.calls.push(Call::CallDriver);
        check_touches(k);
        k.require_irql("IofCallDriver", DISPATCH_LEVEL);
        let Some(mut request) = k.storage.irps.remove(&irp) else {
            k.error(format!(
                "IofCallDriver with IRP {irp:#x}, which is not an IRP the image built and still owns"
            ));
            return STATUS_INVALID_PARAMETER;
        };
        if request.device != device || k.storage.device_references == 0 {
            k.error(format!(
                "IofCallDriver to device {device:#x}: the IRP was built for {:#x}, references held {}",
                request.device, k.storage.device_references
            ));
        }
        request.sent = true;
        k.storage.sent.push(irp);
        retire_page(irp);
        let (status, information) = disk_answers(k, &mut request);
        let pend = k.storage.pend.unwrap_or(k.storage.queries % 2 == 0)
            || k.faults.hit(Point::PendQuery).is_some();
        if pend {
            // The disk marks the IRP pending and completes it later (before the wait returns).
            k.storage.pended += 1;
            request.pending = Some((status, information));
            k.storage.irps.insert(irp, request);
            return status_constant("STATUS_PENDING");
        }
        complete(k, &request, status, information);
        status
    })
    .unwrap_or(STATUS_INVALID_PARAMETER))
}

/// `KeWaitForSingleObject` (wdm/nf-wdm-kewaitforsingleobject: a NULL timeout only below
/// DISPATCH_LEVEL): completes a pending query whose event this is; an event nobody will signal
/// is reported instead of hanging.
unsafe extern "win64" fn ke_wait_for_single_object(
    object: usize,
    reason: i32,
    mode: i8,
    alertable: u8,
    timeout: *const i64,
) -> i32 {
    nt(with(|k| {
        k.calls.push(Call::WaitForSingleObject);
        check_touches(k);
        if timeout.is_null() && k.irql >= DISPATCH_LEVEL {
            let irql = k.irql;
            k.error(format!(
                "KeWaitForSingleObject with a NULL timeout at IRQL {irql} (must be < DISPATCH_LEVEL)"
            ));
        }
        if u64::try_from(reason).ok() != Some(constant("Executive"))
            || u64::try_from(mode).ok() != Some(constant("KernelMode"))
            || alertable != 0
        {
            k.error(format!(
                "KeWaitForSingleObject(reason {reason}, mode {mode}, alertable {alertable}): \
                 odxflt waits Executive, KernelMode (its stack holds the event, status block and \
                 output), not alertable"
            ));
        }
        let Some(&signalled) = k.storage.events.get(&object) else {
            k.error(format!(
                "KeWaitForSingleObject on {object:#x}, which was never initialised"
            ));
            return STATUS_INVALID_PARAMETER;
        };
        if !signalled {
            let pending = k
                .storage
                .irps
                .iter()
                .find(|(_, irp)| irp.event == object && irp.pending.is_some())
                .map(|(&address, _)| address);
            let Some(address) = pending else {
                k.error(
                    "KeWaitForSingleObject on an event no outstanding request will signal \
                     (the machine would hang here)"
                        .into(),
                );
                return NtStatus::STATUS_SUCCESS;
            };
            if let Some(irp) = k.storage.irps.remove(&address) {
                if let Some((status, information)) = irp.pending {
                    complete(k, &irp, status, information);
                }
            }
        }
        NtStatus::STATUS_SUCCESS
    })
    .unwrap_or(STATUS_INVALID_PARAMETER))
}

/// `KeQueryUnbiasedInterruptTime` (wdm/nf-wdm-kequeryunbiasedinterrupttime: any IRQL).
unsafe extern "win64" fn ke_query_unbiased_interrupt_time() -> u64 {
    with(|k| {
        k.calls.push(Call::QueryInterruptTime);
        k.storage.now
    })
    .unwrap_or(0)
}

/// What the storage model leaves behind: device references and IRPs never sent.
pub(super) fn leaks(model: &StorageModel) -> Vec<String> {
    let mut out = Vec::new();
    if model.device_references > 0 {
        out.push(format!(
            "disk device object: {} reference(s) from FltGetDiskDeviceObject never dropped",
            model.device_references
        ));
    }
    for (address, irp) in &model.irps {
        if irp.pending.is_some() {
            out.push(format!("IRP {address:#x}: pending, never waited for"));
        } else {
            out.push(format!(
                "IRP {address:#x} built by IoBuildDeviceIoControlRequest and never sent"
            ));
        }
    }
    out
}

/// Unmaps the IRP pages.
pub(super) fn release(model: &mut StorageModel) {
    let pages: Vec<usize> = model
        .sent
        .drain(..)
        .chain(std::mem::take(&mut model.irps).into_keys())
        .collect();
    for page in pages {
        for slot in &SENT {
            let value = slot.load(Ordering::Relaxed);
            if value != 0 && value & !1 == page {
                slot.store(0, Ordering::Relaxed);
            }
        }
        // SAFETY: a page mapped by io_build_device_io_control_request, unmapped once.
        unsafe { libc::munmap(page as *mut c_void, PAGE) };
    }
}
