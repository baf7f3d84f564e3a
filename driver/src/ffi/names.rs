//! Names, asked only when the core needs them (a rule names a process or a path, or the journal
//! records names): the file's path from the volume root, the requesting process's image, and
//! at instance setup the volume's device and GUID names.
//!
//! - **File path**: `FltGetFileNameInformation(Data, FLT_FILE_NAME_OPENED |
//!   FLT_FILE_NAME_QUERY_DEFAULT)`, `FltParseFileNameInformation`, path = `Name` without its
//!   `Volume` prefix, `FltReleaseFileNameInformation` on drop (every path, failures included:
//!   a failed parse still releases). OPENED, not NORMALIZED: fltkernel/nf-fltkernel-
//!   fltgetfilenameinformation and "FLT_FILE_NAME_OPTIONS" describe the opened name as the name
//!   the file was opened with, and the normalized one as the full long-name path, which Filter
//!   Manager builds by querying every parent directory's long name (a directory walk on a cache
//!   miss). A rule compares a volume-relative prefix or extension; the opened name serves that
//!   (a short-name component, `PROGRA~1`, is the one case where the two differ: documented in
//!   docs/driver.md). QUERY_DEFAULT: the cache first, then the file system. IRQL <= APC_LEVEL.
//! - **Process image**: `FltGetRequestorProcess(Data)` (the requestor's `EPROCESS`, from the
//!   callback data's thread, <= DISPATCH_LEVEL) and `SeLocateProcessImageName` (PASSIVE_LEVEL
//!   only: not called above it), whose buffer is freed on drop with `ExFreePoolWithTag(.., 0)`.
//!   Not cached per process: see docs/driver.md ("Process image names: no cache").
//! - **Process id**: `FltGetRequestorProcessId(Data)` (<= DISPATCH_LEVEL): the requestor's, the
//!   same process the image is of.

use core::ffi::c_void;
use core::ptr::{NonNull, null_mut};

use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CALLBACK_DATA, FLT_FILE_NAME_INFORMATION, FltGetFileNameInformation,
    FltGetRequestorProcess, FltGetRequestorProcessId, FltGetVolumeGuidName, FltGetVolumeName,
    FltParseFileNameInformation, FltReleaseFileNameInformation, PFLT_VOLUME,
};
use windows_sys::Win32::Foundation::{NTSTATUS, UNICODE_STRING};

use super::kernel::{APC_LEVEL, PASSIVE_LEVEL, current_irql, free_kernel_block};
use super::nt_success;

/// `FLT_FILE_NAME_OPENED`.
pub const FLT_FILE_NAME_OPENED: u32 = 0x02;
/// `FLT_FILE_NAME_QUERY_DEFAULT`.
pub const FLT_FILE_NAME_QUERY_DEFAULT: u32 = 0x0100;

crate::pin_constant!(
    FLT_FILE_NAME_OPENED => "FLT_FILE_NAME_OPENED",
    FLT_FILE_NAME_QUERY_DEFAULT => "FLT_FILE_NAME_QUERY_DEFAULT",
);

#[cfg_attr(
    target_os = "windows",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")
)]
unsafe extern "system" {
    /// `NTSTATUS SeLocateProcessImageName(PEPROCESS, PUNICODE_STRING *)` (ntifs, PASSIVE_LEVEL).
    fn SeLocateProcessImageName(process: *mut c_void, image: *mut *mut UNICODE_STRING) -> NTSTATUS;
}

/// The callback data of the operation in progress, for the Filter Manager routines that take
/// it. Only [`super::callbacks::CallbackData::request`] makes one, from the callback's own
/// `FLT_CALLBACK_DATA`, so it is valid (or NULL) while the request's callback runs; it is not
/// kept beyond the pre-operation.
#[derive(Clone, Copy, Debug)]
pub struct RequestData(*const FLT_CALLBACK_DATA);

impl RequestData {
    /// Wraps the callback's data (`CallbackData::request`).
    pub(crate) const fn new(data: *const FLT_CALLBACK_DATA) -> Self {
        Self(data)
    }
}

/// The UTF-16 units of a counted string (`Length` bytes), or `None` for no buffer.
///
/// # Safety
/// `string` describes `Length` readable bytes at `Buffer` for `'a`.
unsafe fn units<'a>(string: &UNICODE_STRING) -> Option<&'a [u16]> {
    let buffer = NonNull::new(string.Buffer)?;
    let len = usize::from(string.Length / 2);
    // SAFETY: forwarded from the caller.
    Some(unsafe { core::slice::from_raw_parts(buffer.as_ptr().cast_const(), len) })
}

/// A file-name information structure Filter Manager handed out, released on drop.
#[derive(Debug)]
pub struct FileName(NonNull<FLT_FILE_NAME_INFORMATION>);

impl FileName {
    /// The opened name of the request's file, parsed; `None` when it cannot be learnt (the
    /// query or the parse failed, or IRQL is above APC_LEVEL).
    #[must_use]
    pub fn query(data: RequestData) -> Option<Self> {
        let data = data.0;
        if data.is_null() || current_irql() > APC_LEVEL {
            return None;
        }
        let mut info: *mut FLT_FILE_NAME_INFORMATION = null_mut();
        // SAFETY: `data` is the callback data of the pre-operation in progress (IRQL <=
        // APC_LEVEL, checked); `info` is a valid out pointer.
        let status = unsafe {
            FltGetFileNameInformation(
                data,
                FLT_FILE_NAME_OPENED | FLT_FILE_NAME_QUERY_DEFAULT,
                &mut info,
            )
        };
        if !nt_success(status) {
            return None;
        }
        let name = Self(NonNull::new(info)?);
        // SAFETY: a structure FltGetFileNameInformation returned and that `name` still holds.
        let parsed = unsafe { FltParseFileNameInformation(name.0.as_ptr()) };
        // On failure `name` is dropped here: released.
        nt_success(parsed).then_some(name)
    }

    /// The path from the volume root: `Name` after its `Volume` prefix.
    #[must_use]
    pub fn path(&self) -> Option<&[u16]> {
        // SAFETY: the structure is Filter Manager's, valid until released in drop.
        let info = unsafe { self.0.as_ref() };
        // SAFETY: `Name` describes `Length` bytes of the structure's buffer, valid until release.
        let name = unsafe { units(&info.Name) }?;
        let volume = usize::from(info.Volume.Length / 2);
        name.get(volume..)
    }
}

impl Drop for FileName {
    fn drop(&mut self) {
        // SAFETY: returned by FltGetFileNameInformation, released exactly once.
        unsafe { FltReleaseFileNameInformation(self.0.as_ptr()) };
    }
}

/// `SeLocateProcessImageName`'s buffer, freed on drop.
#[derive(Debug)]
pub struct ProcessImage(NonNull<UNICODE_STRING>);

impl ProcessImage {
    /// The requestor's image name (`\Device\HarddiskVolume1\Windows\System32\robocopy.exe`);
    /// `None` when it cannot be learnt or IRQL is above PASSIVE_LEVEL.
    #[must_use]
    pub fn query(data: RequestData) -> Option<Self> {
        let data = data.0;
        if data.is_null() || current_irql() > PASSIVE_LEVEL {
            return None;
        }
        // SAFETY: the callback data of the operation in progress (<= DISPATCH_LEVEL).
        let process = unsafe { FltGetRequestorProcess(data) };
        if process == 0 {
            return None;
        }
        let mut image: *mut UNICODE_STRING = null_mut();
        // SAFETY: `process` is the requestor, referenced by the operation for its duration;
        // PASSIVE_LEVEL (checked); `image` is a valid out pointer.
        let status = unsafe { SeLocateProcessImageName(process as *mut c_void, &mut image) };
        let image = NonNull::new(image)?;
        let held = Self(image);
        nt_success(status).then_some(held)
    }

    /// The image path.
    #[must_use]
    pub fn units(&self) -> Option<&[u16]> {
        // SAFETY: SeLocateProcessImageName's block, valid until freed in drop.
        let string = unsafe { self.0.as_ref() };
        // SAFETY: the counted string and its text are one block, valid until freed in drop.
        unsafe { units(string) }
    }
}

impl Drop for ProcessImage {
    fn drop(&mut self) {
        // SAFETY: SeLocateProcessImageName's block, freed once.
        unsafe { free_kernel_block(self.0.as_ptr().cast::<c_void>()) };
    }
}

/// The requestor's process id (`FltGetRequestorProcessId`).
#[must_use]
pub fn requestor_process_id(data: RequestData) -> u64 {
    let data = data.0;
    if data.is_null() {
        return 0;
    }
    // SAFETY: the callback data of the operation in progress (<= DISPATCH_LEVEL).
    u64::from(unsafe { FltGetRequestorProcessId(data) })
}

/// Units kept of a volume name (device: `\Device\HarddiskVolume12` is 24; GUID:
/// `\??\Volume{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}` is 48).
pub const VOLUME_NAME_UNITS: usize = 64;

/// A volume name kept in the instance context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VolumeName {
    units: [u16; VOLUME_NAME_UNITS],
    len: u16,
}

impl VolumeName {
    /// No name (the query failed or the name is longer than [`VOLUME_NAME_UNITS`]).
    pub const NONE: Self = Self {
        units: [0; VOLUME_NAME_UNITS],
        len: 0,
    };

    /// A copy of `units` (empty when longer than [`VOLUME_NAME_UNITS`]).
    #[must_use]
    pub fn from_units(units: &[u16]) -> Self {
        let mut name = Self::NONE;
        if units.len() <= VOLUME_NAME_UNITS {
            for (to, from) in name.units.iter_mut().zip(units) {
                *to = *from;
            }
            name.len = u16::try_from(units.len()).unwrap_or(0);
        }
        name
    }

    /// The name.
    #[must_use]
    pub fn units(&self) -> &[u16] {
        self.units.get(..usize::from(self.len)).unwrap_or_default()
    }
}

type VolumeQuery =
    unsafe extern "system" fn(PFLT_VOLUME, *mut UNICODE_STRING, *mut u32) -> NTSTATUS;

fn volume_name(volume: PFLT_VOLUME, query: VolumeQuery) -> VolumeName {
    let mut name = VolumeName::NONE;
    let bytes = u16::try_from(VOLUME_NAME_UNITS * 2).unwrap_or(0);
    let mut string = UNICODE_STRING {
        Length: 0,
        MaximumLength: bytes,
        Buffer: name.units.as_mut_ptr(),
    };
    let mut needed = 0_u32;
    // SAFETY: `volume` is the instance's volume at setup (PASSIVE_LEVEL); `string` describes
    // `bytes` writable bytes of `name`; `needed` is a valid out location.
    let status = unsafe { query(volume, &mut string, &mut needed) };
    if nt_success(status) {
        name.len = (string.Length / 2).min(u16::try_from(VOLUME_NAME_UNITS).unwrap_or(0));
    }
    name
}

/// `FltGetVolumeName` (the device name) and `FltGetVolumeGuidName`, PASSIVE_LEVEL (instance
/// setup). A failure (too long: `STATUS_BUFFER_TOO_SMALL`; no GUID name: e.g. a volume the
/// mount manager does not know) leaves that name empty: a rule naming it does not match.
#[must_use]
pub fn volume_names(volume: PFLT_VOLUME) -> (VolumeName, VolumeName) {
    (
        volume_name(volume, FltGetVolumeName),
        volume_name(volume, FltGetVolumeGuidName),
    )
}
