//! [`KernelSource`] for a live request: the facts cached in the instance context (looked up once
//! per request by the caller), the `FILE_OBJECT`, the related transaction and
//! `FltQueryInformationFile` (PASSIVE_LEVEL only). Nothing is read through `FsContext`: the FCB
//! header there may belong to another driver (`crate::facts`, valid data length).

use core::ffi::c_void;

use odx_core::storage::StorageState;
use odx_core::{NtStatus, VolumeFacts};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FltIsVolumeWritable, FltQueryInformationFile, FltQueryVolumeInformation,
};
use windows_sys::Wdk::Storage::FileSystem::{
    FILE_BASIC_INFORMATION, FILE_FS_SECTOR_SIZE_INFORMATION, FILE_INFORMATION_CLASS,
    FILE_STANDARD_INFORMATION, FS_INFORMATION_CLASS, FileBasicInformation,
    FileFsSectorSizeInformation, FileFsSizeInformation, FileStandardInformation,
};
use windows_sys::Wdk::System::SystemServices::FILE_FS_SIZE_INFORMATION;
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

use super::callbacks::RelatedObjects;
use super::kernel::{PASSIVE_LEVEL, current_irql, interrupt_time};
use super::names::{FileName, ProcessImage, RequestData};
use super::{core_status, nt_success};
use crate::facts::{FileObjectState, KernelSource, StandardInformation};
use crate::volume::{RawVolume, with_storage};

/// `FILE_STANDARD_INFORMATION` as bytes (its size and alignment; fields by pinned offset).
#[derive(Clone, Copy, Default)]
#[repr(C, align(8))]
struct StandardBytes([u8; core::mem::size_of::<FILE_STANDARD_INFORMATION>()]);

/// `FILE_STANDARD_INFORMATION.EndOfFile` (pinned in `views`).
const END_OF_FILE: usize = core::mem::offset_of!(FILE_STANDARD_INFORMATION, EndOfFile);
/// `FILE_STANDARD_INFORMATION.DeletePending` (pinned in `views`).
const DELETE_PENDING: usize = core::mem::offset_of!(FILE_STANDARD_INFORMATION, DeletePending);

/// `STATUS_INVALID_DEVICE_STATE`: what a file query answers when the request arrived above
/// PASSIVE_LEVEL, where `FltQueryInformationFile` may not be called. The core then passes the
/// request through untouched, like any failed fact query.
pub const STATUS_RAISED_IRQL: NtStatus = NtStatus(0xC000_0184);

/// The kernel side of one request's facts. The names it queried are held until it is dropped
/// (when pre-operation returns): the file name released, the image buffer freed, on every path.
#[derive(Debug)]
pub struct RequestSource<'a> {
    objects: RelatedObjects<'a>,
    volume: VolumeFacts,
    storage: &'a StorageState,
    data: RequestData,
    file_name: Option<FileName>,
    file_asked: bool,
    image: Option<ProcessImage>,
    image_asked: bool,
}

impl<'a> RequestSource<'a> {
    /// Facts about the request whose related objects are `objects`, on an instance whose
    /// context holds `volume` and whose storage is `storage`.
    #[must_use]
    pub const fn new(
        objects: RelatedObjects<'a>,
        volume: VolumeFacts,
        storage: &'a StorageState,
        data: RequestData,
    ) -> Self {
        Self {
            objects,
            volume,
            storage,
            data,
            file_name: None,
            file_asked: false,
            image: None,
            image_asked: false,
        }
    }

    /// `FltQueryInformationFile` for a fixed-size information class.
    fn query<T: Default>(&self, class: FILE_INFORMATION_CLASS) -> Result<T, NtStatus> {
        // FltQueryInformationFile: IRQL PASSIVE_LEVEL. An FSCTL's pre-operation may run at
        // APC_LEVEL (e.g. sent by a filter above holding a fast mutex).
        if current_irql() > PASSIVE_LEVEL {
            return Err(STATUS_RAISED_IRQL);
        }
        let mut info = T::default();
        let length = u32::try_from(core::mem::size_of::<T>())
            .map_err(|_| NtStatus::STATUS_INVALID_PARAMETER)?;
        let file_object = self.objects.file_object_ptr();
        if file_object.is_null() {
            return Err(NtStatus::STATUS_INVALID_HANDLE);
        }
        let buffer: *mut c_void = (&raw mut info).cast();
        // SAFETY: the instance and file object come from this operation's related objects (the
        // file object is referenced for the callback); `buffer` is `length` writable bytes of the
        // structure the class returns; pre-operation of an FSCTL runs at PASSIVE_LEVEL.
        // `LengthReturned` is optional (learn.microsoft.com, fltkernel.h FltQueryInformationFile:
        // "[out, optional]") and is not needed: both classes are fixed-size, a success fills the
        // structure. Not asking keeps this frame 16 bytes smaller, and it is live across the call.
        let status = unsafe {
            FltQueryInformationFile(
                self.objects.instance(),
                file_object,
                buffer,
                length,
                class,
                core::ptr::null_mut(),
            )
        };
        if nt_success(status) {
            Ok(info)
        } else {
            Err(core_status(status))
        }
    }
}

impl KernelSource for RequestSource<'_> {
    fn process_image(&mut self) -> Option<&[u16]> {
        if !self.image_asked {
            self.image_asked = true;
            self.image = ProcessImage::query(self.data);
        }
        self.image.as_ref().and_then(ProcessImage::units)
    }

    fn file_path(&mut self) -> Option<&[u16]> {
        if !self.file_asked {
            self.file_asked = true;
            self.file_name = FileName::query(self.data);
        }
        self.file_name.as_ref().and_then(FileName::path)
    }

    fn known_names(&self) -> (Option<&[u16]>, Option<&[u16]>) {
        (
            self.image.as_ref().and_then(ProcessImage::units),
            self.file_name.as_ref().and_then(FileName::path),
        )
    }

    fn volume(&mut self) -> Result<VolumeFacts, NtStatus> {
        // The storage's offload flags at the interrupt time of the request (one
        // KeQueryUnbiasedInterruptTime, any IRQL).
        Ok(with_storage(self.volume, self.storage, interrupt_time()))
    }

    fn file_object(&mut self) -> FileObjectState {
        FileObjectState {
            flags: self.objects.file_object_flags().unwrap_or(0),
            ..FileObjectState::default()
        }
    }

    fn transacted(&mut self) -> bool {
        self.objects.transacted()
    }

    fn attributes(&mut self) -> Result<u32, NtStatus> {
        self.query::<FILE_BASIC_INFORMATION>(FileBasicInformation)
            .map(|info| info.FileAttributes)
    }

    fn standard(&mut self) -> Result<StandardInformation, NtStatus> {
        // As bytes: `DeletePending` is a BOOLEAN, which the kernel may set to any non-zero
        // value; windows-sys declares it `bool`, for which only 0 and 1 are valid.
        let info = self.query::<StandardBytes>(FileStandardInformation)?;
        let field = |offset: usize| info.0.get(offset).copied();
        let end_of_file = info
            .0
            .get(END_OF_FILE..END_OF_FILE.saturating_add(8))
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .map_or(0, i64::from_le_bytes);
        Ok(StandardInformation {
            end_of_file,
            delete_pending: field(DELETE_PENDING).is_some_and(|b| b != 0),
        })
    }
}

/// What instance setup learns about the volume: `FltQueryVolumeInformation` for the sector and
/// size classes, `FltIsVolumeWritable`.
#[must_use]
pub fn raw_volume(objects: RelatedObjects<'_>, filesystem_type: i32) -> RawVolume {
    let sector =
        query_volume::<FILE_FS_SECTOR_SIZE_INFORMATION>(objects, FileFsSectorSizeInformation);
    let size = query_volume::<FILE_FS_SIZE_INFORMATION>(objects, FileFsSizeInformation);
    // A BOOLEAN out parameter: a byte, read as one (any non-zero value is TRUE).
    let mut writable = 0_u8;
    let volume = objects.volume() as *const c_void;
    // SAFETY: `volume` is the opaque volume pointer of the instance being set up (PASSIVE_LEVEL);
    // `writable` is a valid one-byte out location for the BOOLEAN.
    let status = unsafe { FltIsVolumeWritable(volume, (&raw mut writable).cast::<bool>()) };
    let writable = writable != 0;
    RawVolume {
        filesystem_type,
        logical_bytes_per_sector: sector.map(|info| info.LogicalBytesPerSector),
        bytes_per_sector: size.map(|info| info.BytesPerSector),
        sectors_per_allocation_unit: size.map(|info| info.SectorsPerAllocationUnit),
        writable: nt_success(status).then_some(writable),
    }
}

fn query_volume<T: Copy>(objects: RelatedObjects<'_>, class: FS_INFORMATION_CLASS) -> Option<T> {
    let mut info = core::mem::MaybeUninit::<T>::zeroed();
    let mut iosb = IO_STATUS_BLOCK::default();
    let length = u32::try_from(core::mem::size_of::<T>()).ok()?;
    // SAFETY: the instance is the one being set up; `info` is `length` writable bytes for the
    // structure of `class`; `iosb` is a valid status block. PASSIVE_LEVEL.
    let status = unsafe {
        FltQueryVolumeInformation(
            objects.instance(),
            &mut iosb,
            info.as_mut_ptr().cast(),
            length,
            class,
        )
    };
    if !nt_success(status) {
        return None;
    }
    // SAFETY: the structures queried here are plain integers, valid for any bit pattern (the
    // buffer was zeroed, and the file system filled it on success).
    Some(unsafe { info.assume_init() })
}
