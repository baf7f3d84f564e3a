//! What the storage under a volume says about copy offload, asked once at instance setup
//! (PASSIVE_LEVEL): `FltGetDiskDeviceObject` for the volume, then `IOCTL_STORAGE_QUERY_PROPERTY`
//! (`StorageDeviceCopyOffloadProperty`, `PropertyStandardQuery`) built with
//! `IoBuildDeviceIoControlRequest` and sent with `IofCallDriver` (the export behind the
//! `IoCallDriver` macro), waited for with `KeWaitForSingleObject` when it pends, the device object
//! dereferenced with `ObfDereferenceObject` on every path. The answer is interpreted by
//! `odx_core::storage::StorageCapability::from_query`; nothing is decided here.
//!
//! The I/O manager owns the IRP `IoBuildDeviceIoControlRequest` returns: it frees it when the
//! request completes, so odxflt never frees it and never touches it after `IofCallDriver`.

use core::ffi::c_void;

use odx_core::NtStatus;
use odx_core::storage::{
    PROPERTY_STANDARD_QUERY, STORAGE_DEVICE_COPY_OFFLOAD_PROPERTY, STORAGE_PROPERTY_QUERY_SIZE,
    StorageCapability, descriptor,
};
use windows_sys::Wdk::Foundation::DEVICE_OBJECT;
use windows_sys::Wdk::Storage::FileSystem::Minifilters::FltGetDiskDeviceObject;
use windows_sys::Win32::Foundation::{NTSTATUS, UNICODE_STRING};
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;
use windows_sys::Win32::System::Ioctl::STORAGE_PROPERTY_QUERY;

use super::callbacks::RelatedObjects;
use super::kernel::{PASSIVE_LEVEL, current_irql, free_kernel_block};
use super::names::VolumeName;
use super::{core_status, nt_success};

#[cfg_attr(
    target_os = "windows",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")
)]
unsafe extern "system" {
    fn IoBuildDeviceIoControlRequest(
        code: u32,
        device: *mut DEVICE_OBJECT,
        input: *mut c_void,
        input_length: u32,
        output: *mut c_void,
        output_length: u32,
        internal: u8,
        event: *mut KEvent,
        io_status: *mut IO_STATUS_BLOCK,
    ) -> *mut c_void;
    // FASTCALL in wdm.h: on x64 there is one calling convention, the one "system" names.
    fn IofCallDriver(device: *mut DEVICE_OBJECT, irp: *mut c_void) -> NTSTATUS;
    fn KeInitializeEvent(event: *mut KEvent, kind: i32, state: u8);
    fn KeWaitForSingleObject(
        object: *mut c_void,
        reason: i32,
        mode: i8,
        alertable: u8,
        timeout: *const i64,
    ) -> NTSTATUS;
    fn ObfDereferenceObject(object: *mut c_void) -> isize;
    /// `NTSTATUS IoVolumeDeviceToDosName(PVOID VolumeDeviceObject, PUNICODE_STRING DosName)`.
    fn IoVolumeDeviceToDosName(
        volume_device: *mut c_void,
        dos_name: *mut UNICODE_STRING,
    ) -> NTSTATUS;
}

/// `IOCTL_STORAGE_QUERY_PROPERTY` (ntddstor.h: `CTL_CODE(IOCTL_STORAGE_BASE, 0x0500,
/// METHOD_BUFFERED, FILE_ANY_ACCESS)`).
pub const IOCTL_STORAGE_QUERY_PROPERTY: u32 = 0x002D_1400;
/// `NotificationEvent` (`EVENT_TYPE`): stays signalled once set; the I/O manager sets it once.
const NOTIFICATION_EVENT: i32 = 0;
/// `Executive` (`KWAIT_REASON`).
const EXECUTIVE: i32 = 0;
/// `KernelMode` (`KPROCESSOR_MODE`).
const KERNEL_MODE: i8 = 0;
/// `STATUS_PENDING`.
const STATUS_PENDING: NtStatus = NtStatus(0x0000_0103);
/// `STATUS_FLT_NO_DEVICE_OBJECT`: what `FltGetDiskDeviceObject` documents for a volume without a
/// disk (network, some virtual volumes).
pub const STATUS_FLT_NO_DEVICE_OBJECT: NtStatus = NtStatus(0xC01C_0019);

crate::pin_constant!(
    IOCTL_STORAGE_QUERY_PROPERTY => "IOCTL_STORAGE_QUERY_PROPERTY",
    STORAGE_DEVICE_COPY_OFFLOAD_PROPERTY => "StorageDeviceCopyOffloadProperty",
    PROPERTY_STANDARD_QUERY => "PropertyStandardQuery",
    NOTIFICATION_EVENT => "NotificationEvent",
    EXECUTIVE => "Executive",
    KERNEL_MODE => "KernelMode",
    STATUS_PENDING.0 => "STATUS_PENDING",
    STATUS_FLT_NO_DEVICE_OBJECT.0 => "STATUS_FLT_NO_DEVICE_OBJECT",
    NtStatus::STATUS_NOT_SUPPORTED.0 => "STATUS_NOT_SUPPORTED",
    NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED.0 => "STATUS_DEVICE_FEATURE_NOT_SUPPORTED",
    NtStatus::STATUS_INVALID_DEVICE_REQUEST.0 => "STATUS_INVALID_DEVICE_REQUEST",
);

/// `KEVENT`, as opaque storage of its size and alignment (the kernel initialises and signals
/// it; odxflt never reads a field).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(8))]
pub struct KEvent([u8; 24]);

crate::pin_layout!(KEvent = "KEVENT" {});

/// `DEVICE_COPY_OFFLOAD_DESCRIPTOR` as bytes (its size and alignment; the core reads the fields
/// at the offsets pinned below).
#[repr(C, align(8))]
struct DescriptorBytes([u8; descriptor::STRUCT_SIZE]);

// The core's descriptor offsets (odx_core::storage::descriptor), pinned to the table
// (mingw-w64's ntddstor.h): the driver hands the core exactly these bytes.
crate::pin_offsets!("DEVICE_COPY_OFFLOAD_DESCRIPTOR" size descriptor::STRUCT_SIZE {
    descriptor::VERSION => "Version",
    descriptor::SIZE => "Size",
    descriptor::MAXIMUM_TOKEN_LIFETIME => "MaximumTokenLifetime",
    descriptor::DEFAULT_TOKEN_LIFETIME => "DefaultTokenLifetime",
    descriptor::MAXIMUM_TRANSFER_SIZE => "MaximumTransferSize",
    descriptor::OPTIMAL_TRANSFER_COUNT => "OptimalTransferCount",
    descriptor::MAXIMUM_DATA_DESCRIPTORS => "MaximumDataDescriptors",
    descriptor::MAXIMUM_TRANSFER_LENGTH_PER_DESCRIPTOR => "MaximumTransferLengthPerDescriptor",
    descriptor::OPTIMAL_TRANSFER_LENGTH_PER_DESCRIPTOR => "OptimalTransferLengthPerDescriptor",
    descriptor::OPTIMAL_TRANSFER_LENGTH_GRANULARITY => "OptimalTransferLengthGranularity",
});

crate::pin_layout!(STORAGE_PROPERTY_QUERY = "STORAGE_PROPERTY_QUERY" {
    PropertyId => "PropertyId",
    QueryType => "QueryType",
    AdditionalParameters => "AdditionalParameters",
});
const _: () = assert!(
    core::mem::size_of::<STORAGE_PROPERTY_QUERY>() == STORAGE_PROPERTY_QUERY_SIZE,
    "odx_core::storage::STORAGE_PROPERTY_QUERY_SIZE differs from the table"
);

/// The disk device object under a volume, referenced by `FltGetDiskDeviceObject`; the
/// reference is dropped (`ObfDereferenceObject`) when this goes out of scope, on every path.
struct DiskDevice(*mut DEVICE_OBJECT);

impl DiskDevice {
    fn of(objects: RelatedObjects<'_>) -> Result<Self, NtStatus> {
        let mut disk: *mut DEVICE_OBJECT = core::ptr::null_mut();
        // SAFETY: the volume is the one of the instance being set up (PASSIVE_LEVEL, within the
        // documented <= DISPATCH_LEVEL); `disk` is a valid out pointer, left untouched on error.
        let status = unsafe { FltGetDiskDeviceObject(objects.volume(), &mut disk) };
        if !nt_success(status) {
            return Err(core_status(status));
        }
        if disk.is_null() {
            return Err(STATUS_FLT_NO_DEVICE_OBJECT);
        }
        Ok(Self(disk))
    }
}

impl Drop for DiskDevice {
    fn drop(&mut self) {
        // SAFETY: the pointer carries the one reference FltGetDiskDeviceObject took for us,
        // released exactly once here (ObDereferenceObject: IRQL <= DISPATCH_LEVEL).
        let _ = unsafe { ObfDereferenceObject(self.0.cast::<c_void>()) };
    }
}

/// The volume's DOS name (`E:`) through its device object: `IoVolumeDeviceToDosName`
/// (ntifs/nf-ntifs-iovolumedevicetodosname: PASSIVE_LEVEL, special kernel APCs enabled — instance
/// setup; it asks the mount manager and allocates the answer's buffer, which the caller frees
/// with `ExFreePool`, here `ExFreePoolWithTag(.., 0)`). Any failure (no disk device, no drive
/// letter: a volume mounted only on a folder or not at all) leaves the name empty.
fn dos_name(disk: &DiskDevice) -> VolumeName {
    let mut name = UNICODE_STRING {
        Length: 0,
        MaximumLength: 0,
        Buffer: core::ptr::null_mut(),
    };
    // SAFETY: `disk` is the referenced device object of the volume being set up
    // (PASSIVE_LEVEL); `name` is a valid out UNICODE_STRING.
    let status = unsafe { IoVolumeDeviceToDosName(disk.0.cast::<c_void>(), &mut name) };
    if !nt_success(status) || name.Buffer.is_null() {
        return VolumeName::NONE;
    }
    let len = usize::from(name.Length / 2);
    // SAFETY: on success the routine's buffer holds `Length` bytes of the name.
    let units = unsafe { core::slice::from_raw_parts(name.Buffer.cast_const(), len) };
    let kept = VolumeName::from_units(units);
    // SAFETY: the routine allocated the buffer for us; freed once, with ExFreePool's tag 0.
    unsafe { free_kernel_block(name.Buffer.cast::<c_void>()) };
    kept
}

/// [`query_capability`] and the volume's DOS name, with one disk device reference.
#[must_use]
pub fn query_storage(objects: RelatedObjects<'_>) -> (StorageCapability, VolumeName) {
    if current_irql() != PASSIVE_LEVEL {
        return (StorageCapability::Unknown, VolumeName::NONE);
    }
    let Ok(disk) = DiskDevice::of(objects) else {
        return (StorageCapability::Unknown, VolumeName::NONE);
    };
    let dos = dos_name(&disk);
    let capability = match send_query(&disk) {
        Ok((status, returned)) => StorageCapability::from_query(status, returned.as_slice()),
        Err(_) => StorageCapability::Unknown,
    };
    (capability, dos)
}

/// What the storage under the volume of `objects` says about copy offload. Every failure on the
/// way (no disk, no IRP, a failed or unanswered query) is `Unknown`; only the storage's own
/// `STATUS_NOT_SUPPORTED` is `NotSupported` (`StorageCapability::from_query`).
#[must_use]
pub fn query_capability(objects: RelatedObjects<'_>) -> StorageCapability {
    // Instance setup runs at PASSIVE_LEVEL; the request and the wait below need it
    // (IoBuildDeviceIoControlRequest: PASSIVE_LEVEL).
    if current_irql() != PASSIVE_LEVEL {
        return StorageCapability::Unknown;
    }
    let Ok(disk) = DiskDevice::of(objects) else {
        return StorageCapability::Unknown;
    };
    match send_query(&disk) {
        Ok((status, returned)) => StorageCapability::from_query(status, returned.as_slice()),
        Err(_) => StorageCapability::Unknown,
    }
    // `disk` is dropped here: the reference is released after the request has completed.
}

/// The returned bytes of the descriptor buffer.
struct Returned {
    bytes: DescriptorBytes,
    length: usize,
}

impl Returned {
    fn as_slice(&self) -> &[u8] {
        self.bytes.0.get(..self.length).unwrap_or(&[])
    }
}

/// Sends the query to `disk` and waits for it: the final status and the bytes returned.
fn send_query(disk: &DiskDevice) -> Result<(NtStatus, Returned), NtStatus> {
    let mut query = STORAGE_PROPERTY_QUERY {
        PropertyId: i32::from_ne_bytes(STORAGE_DEVICE_COPY_OFFLOAD_PROPERTY.to_ne_bytes()),
        QueryType: i32::from_ne_bytes(PROPERTY_STANDARD_QUERY.to_ne_bytes()),
        AdditionalParameters: [0],
    };
    let mut out = DescriptorBytes([0; descriptor::STRUCT_SIZE]);
    let mut event = KEvent([0; 24]);
    let mut io_status = IO_STATUS_BLOCK::default();
    let input_length = u32::try_from(core::mem::size_of::<STORAGE_PROPERTY_QUERY>())
        .map_err(|_| NtStatus::STATUS_INVALID_PARAMETER)?;
    let output_length =
        u32::try_from(descriptor::STRUCT_SIZE).map_err(|_| NtStatus::STATUS_INVALID_PARAMETER)?;
    // SAFETY: `event` is a KEVENT-sized, 8-aligned, writable location on this stack frame,
    // initialised before it is handed to the I/O manager; KeInitializeEvent: any IRQL.
    unsafe { KeInitializeEvent(&raw mut event, NOTIFICATION_EVENT, 0) };
    // SAFETY: PASSIVE_LEVEL (checked by the caller); `disk` is a referenced device object; the
    // input is copied into the IRP's system buffer before this returns; `out`, `event` and
    // `io_status` stay alive on this frame until the request has completed (below: either the
    // call returned a final status, or the wait returned after the event was signalled).
    let irp = unsafe {
        IoBuildDeviceIoControlRequest(
            IOCTL_STORAGE_QUERY_PROPERTY,
            disk.0,
            (&raw mut query).cast::<c_void>(),
            input_length,
            (&raw mut out).cast::<c_void>(),
            output_length,
            0,
            &raw mut event,
            &raw mut io_status,
        )
    };
    if irp.is_null() {
        return Err(NtStatus::STATUS_INSUFFICIENT_RESOURCES);
    }
    // SAFETY: `irp` was built above for `disk`, which stays referenced across the call; the I/O
    // manager owns the IRP from here on (it frees it at completion) and odxflt never touches it
    // again.
    let status = core_status(unsafe { IofCallDriver(disk.0, irp) });
    let status = if status == STATUS_PENDING {
        // SAFETY: `event` was initialised above and is signalled by the I/O manager when the IRP
        // completes. A KernelMode wait keeps this thread's kernel stack resident, so the
        // completion can write `out` and `io_status` on this frame; non-alertable with no
        // timeout, at PASSIVE_LEVEL (< DISPATCH_LEVEL, as a NULL timeout requires).
        let _ = unsafe {
            KeWaitForSingleObject(
                (&raw mut event).cast::<c_void>(),
                EXECUTIVE,
                KERNEL_MODE,
                0,
                core::ptr::null(),
            )
        };
        // SAFETY: the request has completed (the event is signalled), so the I/O manager has
        // written the status block; it is read on its own, as the union's Status member.
        core_status(unsafe { io_status.Anonymous.Status })
    } else {
        status
    };
    let length = io_status.Information.min(descriptor::STRUCT_SIZE);
    Ok((status, Returned { bytes: out, length }))
}
