//! Names and the rules' lock: `FltGetFileNameInformation` / `FltParseFileNameInformation` /
//! `FltReleaseFileNameInformation`, `FltGetVolumeName` / `FltGetVolumeGuidName`,
//! `FltGetRequestorProcess` / `FltGetRequestorProcessId`, `SeLocateProcessImageName`,
//! `KeQuerySystemTimePrecise`, and the push locks (`FltInitializePushLock`,
//! `FltAcquirePushLockShared` / `Exclusive`, `FltReleasePushLock`).
//!
//! What the mocks hand out comes from the scenario (device, GUID name, each file's path, the
//! requesting process and its id), never from what the driver expects. Structures are laid out
//! by the golden table: `FLT_FILE_NAME_INFORMATION` from its documentation page (neither header
//! set has it), `UNICODE_STRING` from both.
//!
//! | Routine | IRQL (its page) | Failures | Checked |
//! |---|---|---|---|
//! | `FltGetFileNameInformation` | <= APC_LEVEL | `STATUS_FLT_INVALID_NAME_REQUEST`, `STATUS_OBJECT_PATH_NOT_FOUND`, `STATUS_INSUFFICIENT_RESOURCES` (faults) | a structure never released is a leak; an unknown callback data / file object is misuse |
//! | `FltParseFileNameInformation` | <= APC_LEVEL | `STATUS_INVALID_PARAMETER`, `STATUS_INSUFFICIENT_RESOURCES` (faults) | only a structure handed out and not released |
//! | `FltReleaseFileNameInformation` | <= APC_LEVEL | — | releasing one not held is misuse |
//! | `FltGetVolumeName` | <= APC_LEVEL | `STATUS_BUFFER_TOO_SMALL` (and `BufferSizeNeeded`), `STATUS_INVALID_PARAMETER` | |
//! | `FltGetVolumeGuidName` | PASSIVE_LEVEL | as above | |
//! | `FltGetRequestorProcess` / `...Id` | <= DISPATCH_LEVEL | — | |
//! | `SeLocateProcessImageName` | PASSIVE_LEVEL | `STATUS_NOT_FOUND` (no process image: the scenario's empty `process`), faults | the buffer is pool: not freed (`ExFreePoolWithTag(p, 0)`) = pool leak |
//! | `KeQuerySystemTimePrecise` | any | — | answers the scenario clock in 100-ns ticks |
//! | push locks | <= APC_LEVEL | — (VOID) | acquire before initialise, release without acquire, exclusive while shared or exclusive held on the (one) thread, shared while exclusive held: misuse (the machine would hang); held when a callback returns: misuse |

use std::collections::{BTreeMap, HashMap};
use std::ffi::c_void;

use odx_core::NtStatus;

use super::fault::Point;
use super::{Block, Call, allocate, nt, with};
use crate::layouts::{Blob, read, shapes, write};

const PASSIVE_LEVEL: u8 = 0;
const APC_LEVEL: u8 = 1;
const DISPATCH_LEVEL: u8 = 2;
const STATUS_NOT_FOUND: NtStatus = NtStatus(0xC000_0225);
const STATUS_FLT_INVALID_NAME_REQUEST: NtStatus = NtStatus(0xC01C_0005);

/// The pool tag the mock gives `SeLocateProcessImageName`'s block (the kernel's is not
/// documented; odxflt frees with tag 0, which matches any).
pub const IMAGE_NAME_TAG: u32 = u32::from_le_bytes(*b"SeIn");

/// The default device name (the scenario's `[volume] device_name`).
pub const DEFAULT_DEVICE_NAME: &str = r"\Device\HarddiskVolume1";
/// The default volume GUID name.
pub const DEFAULT_GUID_NAME: &str = r"\??\Volume{0d1f0000-0000-4000-8000-00000000d15c}";
/// The default requesting process (`[[step]] process`).
pub const DEFAULT_PROCESS: &str = "odx-copy.exe";
/// The default requesting process id.
pub const DEFAULT_PROCESS_ID: u32 = 4242;
/// The default file path (`[[file]] path`).
pub const DEFAULT_PATH: &str = r"\odx\file.bin";

/// Who sends the next request and on which file (the scenario's step and file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepNames {
    /// The file's path from the volume root.
    pub path: String,
    /// The process (`robocopy.exe`, or a full image path with a `\`); empty: the image query
    /// fails with `STATUS_NOT_FOUND`.
    pub process: String,
    /// Its id.
    pub process_id: u32,
}

impl Default for StepNames {
    fn default() -> Self {
        Self {
            path: DEFAULT_PATH.to_owned(),
            process: DEFAULT_PROCESS.to_owned(),
            process_id: DEFAULT_PROCESS_ID,
        }
    }
}

impl StepNames {
    /// The image path `SeLocateProcessImageName` answers: the process itself when it holds a
    /// `\`, else `\Device\HarddiskVolume1\Windows\System32\<process>`.
    #[must_use]
    pub fn image(&self) -> Option<String> {
        if self.process.is_empty() {
            None
        } else if self.process.contains('\\') {
            Some(self.process.clone())
        } else {
            Some(format!(
                r"\Device\HarddiskVolume1\Windows\System32\{}",
                self.process
            ))
        }
    }
}

/// One push lock's state (one thread: shared holders are this thread's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct LockState {
    shared: u32,
    exclusive: bool,
}

/// The names model and the push locks.
#[derive(Debug)]
pub struct NameModel {
    /// `FltGetVolumeName`'s answer.
    pub device_name: String,
    /// `FltGetVolumeGuidName`'s answer.
    pub guid_name: String,
    /// `IoVolumeDeviceToDosName`'s answer (empty: the volume has no drive letter).
    pub dos_name: String,
    /// `Parameters\Rules` (REG_MULTI_SZ), one string per rule; `None`: no such value.
    pub registry_rules: Option<Vec<String>>,
    /// The next request's process and file.
    pub step: StepNames,
    /// File object → the names of its request.
    requests: HashMap<usize, StepNames>,
    /// Outstanding `FLT_FILE_NAME_INFORMATION`s: address → (allocation, parsed).
    infos: BTreeMap<usize, (Blob, Vec<u16>, bool)>,
    /// Name structures handed out (ever).
    pub infos_handed_out: usize,
    /// Push locks by address.
    locks: BTreeMap<usize, LockState>,
    /// `EPROCESS` stand-ins handed out: address → the requestor's names.
    processes: BTreeMap<usize, StepNames>,
}

impl Default for NameModel {
    fn default() -> Self {
        Self {
            device_name: DEFAULT_DEVICE_NAME.to_owned(),
            guid_name: DEFAULT_GUID_NAME.to_owned(),
            dos_name: "C:".to_owned(),
            registry_rules: None,
            step: StepNames::default(),
            requests: HashMap::new(),
            infos: BTreeMap::new(),
            infos_handed_out: 0,
            locks: BTreeMap::new(),
            processes: BTreeMap::new(),
        }
    }
}

thread_local! {
    static PRESET: std::cell::RefCell<Option<NameModel>> = const { std::cell::RefCell::new(None) };
}

/// What the next [`super::install`] on this thread starts with: the scenario's volume names
/// and `[[rule]]` texts, which `DriverEntry` reads.
pub fn preset(
    device_name: &str,
    dos_name: &str,
    guid_name: &str,
    registry_rules: Option<Vec<String>>,
) {
    PRESET.with(|cell| {
        *cell.borrow_mut() = Some(NameModel {
            device_name: device_name.to_owned(),
            dos_name: dos_name.to_owned(),
            guid_name: guid_name.to_owned(),
            registry_rules,
            ..NameModel::default()
        });
    });
}

/// The preset (once), or the defaults.
pub(super) fn take_preset() -> NameModel {
    PRESET
        .with(|cell| cell.borrow_mut().take())
        .unwrap_or_default()
}

impl NameModel {
    /// The request on `file_object` is the current step's.
    pub fn begin_request(&mut self, file_object: *const c_void) {
        self.requests
            .insert(file_object as usize, self.step.clone());
    }

    /// The request on `file_object` is over.
    pub fn end_request(&mut self, file_object: *const c_void) {
        self.requests.remove(&(file_object as usize));
    }

    /// File-name structures not released.
    #[must_use]
    pub fn outstanding(&self) -> usize {
        self.infos.len()
    }

    /// Push locks held now (shared holders + exclusive).
    #[must_use]
    pub fn locks_held(&self) -> u32 {
        self.locks
            .values()
            .map(|l| l.shared + u32::from(l.exclusive))
            .sum()
    }

    /// What is left: name structures never released.
    #[must_use]
    pub fn leaks(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .infos
            .keys()
            .map(|a| {
                format!(
                    "FLT_FILE_NAME_INFORMATION {a:#x} from FltGetFileNameInformation never released"
                )
            })
            .collect();
        for (address, lock) in &self.locks {
            if lock.shared > 0 || lock.exclusive {
                out.push(format!("push lock {address:#x} still held ({lock:?})"));
            }
        }
        out
    }
}

pub(super) fn resolve_fltmgr(symbol: &str) -> Option<usize> {
    Some(match symbol {
        "FltGetFileNameInformation" => flt_get_file_name_information as *const () as usize,
        "FltParseFileNameInformation" => flt_parse_file_name_information as *const () as usize,
        "FltReleaseFileNameInformation" => flt_release_file_name_information as *const () as usize,
        "FltGetVolumeName" => flt_get_volume_name as *const () as usize,
        "FltGetVolumeGuidName" => flt_get_volume_guid_name as *const () as usize,
        "FltGetRequestorProcess" => flt_get_requestor_process as *const () as usize,
        "FltGetRequestorProcessId" => flt_get_requestor_process_id as *const () as usize,
        "FltInitializePushLock" => flt_initialize_push_lock as *const () as usize,
        "FltAcquirePushLockShared" => flt_acquire_push_lock_shared as *const () as usize,
        "FltAcquirePushLockExclusive" => flt_acquire_push_lock_exclusive as *const () as usize,
        "FltReleasePushLock" => flt_release_push_lock as *const () as usize,
        _ => return None,
    })
}

pub(super) fn resolve_ntoskrnl(symbol: &str) -> Option<usize> {
    Some(match symbol {
        "SeLocateProcessImageName" => se_locate_process_image_name as *const () as usize,
        "KeQuerySystemTimePrecise" => ke_query_system_time_precise as *const () as usize,
        "KeBugCheckEx" => ke_bug_check_ex as *const () as usize,
        "IoVolumeDeviceToDosName" => io_volume_device_to_dos_name as *const () as usize,
        _ => return None,
    })
}

/// The file object of the callback data's request (`Iopb->TargetFileObject`).
fn target_file_object(data: *const c_void) -> usize {
    if data.is_null() {
        return 0;
    }
    let s = shapes();
    // SAFETY: the harness's own callback data, lent to the image for the callback: a pointer at
    // the table's `Iopb` offset.
    let iopb: usize = unsafe { read(data, s.callback_data.iopb) };
    if iopb == 0 {
        return 0;
    }
    // SAFETY: the harness's own parameter block.
    unsafe { read(iopb as *const c_void, s.iopb.target_file_object) }
}

fn utf16(text: &str) -> Vec<u16> {
    text.encode_utf16().collect()
}

/// Writes a counted string at `offset` of `blob`: `units` starting `start` units into `text`.
fn put_string(blob: &mut Blob, offset: usize, text: &[u16], start: usize, units: usize) {
    let l = shapes().unicode_string;
    let bytes = u16::try_from(units * 2).unwrap_or(u16::MAX);
    blob.put::<u16>(offset + l.length, bytes);
    blob.put::<u16>(offset + l.maximum_length, bytes);
    let address = if units == 0 {
        0
    } else {
        text.as_ptr().wrapping_add(start) as usize
    };
    blob.put::<usize>(offset + l.buffer, address);
}

/// `FltGetFileNameInformation` (<= APC_LEVEL).
unsafe extern "win64" fn flt_get_file_name_information(
    data: *const c_void,
    options: u32,
    out: *mut *mut c_void,
) -> i32 {
    let file_object = target_file_object(data);
    let s = shapes();
    let c = s.constants;
    nt(with(|k| {
        k.calls.push(Call::GetFileNameInformation);
        if !k.require_irql("FltGetFileNameInformation", APC_LEVEL) {
            return STATUS_FLT_INVALID_NAME_REQUEST;
        }
        if out.is_null() {
            k.error("FltGetFileNameInformation: NULL FileNameInformation".to_owned());
            return NtStatus::STATUS_INVALID_PARAMETER;
        }
        let format = options & 0xFF;
        if format != c.flt_file_name_opened && format != c.flt_file_name_normalized {
            k.error(format!(
                "FltGetFileNameInformation: options {options:#x} name no format odxflt documents"
            ));
            return NtStatus::STATUS_INVALID_PARAMETER;
        }
        if let Some(status) = k.faults.hit(Point::FileName) {
            return status;
        }
        let Some(step) = k.names.requests.get(&file_object).cloned() else {
            k.error(format!(
                "FltGetFileNameInformation: callback data of no request in flight (file object {file_object:#x})"
            ));
            return NtStatus::STATUS_INVALID_PARAMETER;
        };
        let mut text = utf16(&k.names.device_name);
        text.extend(utf16(&step.path));
        let f = s.file_name_information;
        let mut blob = Blob::new(f.size);
        blob.put::<u16>(f.size_field, u16::try_from(f.size).unwrap_or(u16::MAX));
        blob.put::<u16>(f.names_parsed, 0);
        blob.put::<u32>(f.format, format);
        put_string(&mut blob, f.name, &text, 0, text.len());
        let address = blob.as_ptr() as usize;
        k.names.infos.insert(address, (blob, text, false));
        k.names.infos_handed_out += 1;
        // SAFETY: the image's out pointer (checked non-NULL).
        unsafe { out.write(address as *mut c_void) };
        NtStatus::STATUS_SUCCESS
    })
    .unwrap_or(NtStatus::STATUS_INVALID_PARAMETER))
}

/// `FltParseFileNameInformation` (<= APC_LEVEL): fills `Volume`, `ParentDir`,
/// `FinalComponent`, `Extension` (substrings of `Name`).
unsafe extern "win64" fn flt_parse_file_name_information(info: *mut c_void) -> i32 {
    nt(with(|k| {
        k.calls.push(Call::ParseFileNameInformation);
        k.require_irql("FltParseFileNameInformation", APC_LEVEL);
        let device_units = k.names.device_name.encode_utf16().count();
        if !k.names.infos.contains_key(&(info as usize)) {
            k.error(format!(
                "FltParseFileNameInformation({:#x}): not a structure FltGetFileNameInformation handed out (or released)",
                info as usize
            ));
            return NtStatus::STATUS_INVALID_PARAMETER;
        }
        if let Some(status) = k.faults.hit(Point::ParseFileName) {
            return status;
        }
        let f = shapes().file_name_information;
        let Some((blob, text, parsed)) = k.names.infos.get_mut(&(info as usize)) else {
            return NtStatus::STATUS_INVALID_PARAMETER;
        };
        let len = text.len();
        let last_slash = text.iter().rposition(|u| *u == u16::from(b'\\')).unwrap_or(0);
        let final_start = (last_slash + 1).min(len);
        let dot = text[final_start..]
            .iter()
            .rposition(|u| *u == u16::from(b'.'))
            .map(|d| final_start + d + 1);
        put_string(blob, f.volume, text, 0, device_units.min(len));
        put_string(
            blob,
            f.parent_dir,
            text,
            device_units.min(len),
            final_start.saturating_sub(device_units),
        );
        put_string(blob, f.final_component, text, final_start, len - final_start);
        match dot {
            Some(start) => put_string(blob, f.extension, text, start, len - start),
            None => put_string(blob, f.extension, text, 0, 0),
        }
        put_string(blob, f.share, text, 0, 0);
        put_string(blob, f.stream, text, 0, 0);
        // FLTFL_FILE_NAME_PARSED_FINAL_COMPONENT | _EXTENSION | _STREAM | _PARENT_DIR.
        blob.put::<u16>(f.names_parsed, 0x0F);
        *parsed = true;
        NtStatus::STATUS_SUCCESS
    })
    .unwrap_or(NtStatus::STATUS_INVALID_PARAMETER))
}

/// `FltReleaseFileNameInformation` (<= APC_LEVEL).
unsafe extern "win64" fn flt_release_file_name_information(info: *mut c_void) {
    with(|k| {
        k.calls.push(Call::ReleaseFileNameInformation);
        k.require_irql("FltReleaseFileNameInformation", APC_LEVEL);
        if k.names.infos.remove(&(info as usize)).is_none() {
            k.error(format!(
                "FltReleaseFileNameInformation({:#x}): not held (released twice, or never handed out)",
                info as usize
            ));
        }
    });
}

/// `FltGetVolumeName` / `FltGetVolumeGuidName` into the caller's `UNICODE_STRING`.
fn volume_name(
    routine: &str,
    max_irql: u8,
    guid: bool,
    volume: isize,
    name: *mut c_void,
    needed: *mut u32,
) -> i32 {
    let text = with(|k| {
        k.calls.push(Call::GetVolumeName(guid));
        k.require_irql(routine, max_irql);
        if volume != super::VOLUME_HANDLE {
            k.error(format!("{routine}: unknown volume {volume:#x}"));
            return Err(NtStatus::STATUS_INVALID_PARAMETER);
        }
        if let Some(status) = k.faults.hit(Point::VolumeName) {
            return Err(status);
        }
        Ok(utf16(if guid {
            &k.names.guid_name
        } else {
            &k.names.device_name
        }))
    })
    .unwrap_or(Err(NtStatus::STATUS_INVALID_PARAMETER));
    let text = match text {
        Ok(text) => text,
        Err(status) => return nt(status),
    };
    if name.is_null() {
        return nt(NtStatus::STATUS_INVALID_PARAMETER);
    }
    let l = shapes().unicode_string;
    let bytes = text.len() * 2;
    if !needed.is_null() {
        // SAFETY: the image's out pointer (checked non-NULL).
        unsafe { needed.write(u32::try_from(bytes).unwrap_or(u32::MAX)) };
    }
    // SAFETY: the image's UNICODE_STRING (non-NULL): USHORT MaximumLength, PWSTR Buffer.
    let maximum: u16 = unsafe { read(name, l.maximum_length) };
    // SAFETY: as above.
    let buffer: usize = unsafe { read(name, l.buffer) };
    if usize::from(maximum) < bytes || buffer == 0 {
        return nt(NtStatus::STATUS_BUFFER_TOO_SMALL);
    }
    // SAFETY: the image's buffer holds MaximumLength >= bytes bytes (checked).
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buffer as *mut u16, text.len());
    }
    // SAFETY: the image's UNICODE_STRING.
    unsafe { write(name, l.length, u16::try_from(bytes).unwrap_or(u16::MAX)) };
    nt(NtStatus::STATUS_SUCCESS)
}

unsafe extern "win64" fn flt_get_volume_name(
    volume: isize,
    name: *mut c_void,
    needed: *mut u32,
) -> i32 {
    volume_name("FltGetVolumeName", APC_LEVEL, false, volume, name, needed)
}

unsafe extern "win64" fn flt_get_volume_guid_name(
    volume: isize,
    name: *mut c_void,
    needed: *mut u32,
) -> i32 {
    volume_name(
        "FltGetVolumeGuidName",
        PASSIVE_LEVEL,
        true,
        volume,
        name,
        needed,
    )
}

/// `FltGetRequestorProcess` (<= DISPATCH_LEVEL): a stand-in `EPROCESS` for the request's
/// process (kept until the request ends).
unsafe extern "win64" fn flt_get_requestor_process(data: *const c_void) -> usize {
    let file_object = target_file_object(data);
    with(|k| {
        k.calls.push(Call::GetRequestorProcess);
        k.require_irql("FltGetRequestorProcess", DISPATCH_LEVEL);
        let Some(step) = k.names.requests.get(&file_object).cloned() else {
            k.error("FltGetRequestorProcess: callback data of no request in flight".to_owned());
            return 0;
        };
        let address = 0x0DF2_0000_usize + step.process_id as usize * 0x10;
        k.names.processes.insert(address, step);
        address
    })
    .unwrap_or(0)
}

/// `FltGetRequestorProcessId` (<= DISPATCH_LEVEL).
unsafe extern "win64" fn flt_get_requestor_process_id(data: *const c_void) -> u32 {
    let file_object = target_file_object(data);
    with(|k| {
        k.calls.push(Call::GetRequestorProcessId);
        k.require_irql("FltGetRequestorProcessId", DISPATCH_LEVEL);
        k.names
            .requests
            .get(&file_object)
            .map_or(0, |s| s.process_id)
    })
    .unwrap_or(0)
}

/// `SeLocateProcessImageName` (PASSIVE_LEVEL): a pool block holding the `UNICODE_STRING` and
/// its text, which the caller frees.
unsafe extern "win64" fn se_locate_process_image_name(
    process: usize,
    out: *mut *mut c_void,
) -> i32 {
    nt(with(|k| {
        k.calls.push(Call::LocateProcessImageName);
        if !k.require_irql("SeLocateProcessImageName", PASSIVE_LEVEL) {
            return NtStatus::STATUS_INVALID_PARAMETER;
        }
        if out.is_null() {
            k.error("SeLocateProcessImageName: NULL pImageFileName".to_owned());
            return NtStatus::STATUS_INVALID_PARAMETER;
        }
        let Some(step) = k.names.processes.get(&process).cloned() else {
            k.error(format!(
                "SeLocateProcessImageName({process:#x}): not a process FltGetRequestorProcess returned"
            ));
            return NtStatus::STATUS_INVALID_PARAMETER;
        };
        if let Some(status) = k.faults.hit(Point::ProcessImage) {
            return status;
        }
        let Some(image) = step.image() else {
            return STATUS_NOT_FOUND;
        };
        let text = utf16(&image);
        let l = shapes().unicode_string;
        let header = l.size.next_multiple_of(8);
        let Some((address, layout)) = allocate(header + text.len() * 2) else {
            return NtStatus::STATUS_INSUFFICIENT_RESOURCES;
        };
        let base = address as *mut c_void;
        let bytes = u16::try_from(text.len() * 2).unwrap_or(u16::MAX);
        // SAFETY: a fresh block of header + text bytes: the string at 0, the text after it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                text.as_ptr(),
                (address + header) as *mut u16,
                text.len(),
            );
        }
        // SAFETY: as above (UNICODE_STRING fields at the table's offsets).
        unsafe { write(base, l.length, bytes) };
        // SAFETY: as above.
        unsafe { write(base, l.maximum_length, bytes) };
        // SAFETY: as above.
        unsafe { write(base, l.buffer, address + header) };
        k.pool.insert(
            address,
            Block {
                layout,
                tag: IMAGE_NAME_TAG,
            },
        );
        // SAFETY: the image's out pointer (checked non-NULL).
        unsafe { out.write(base) };
        NtStatus::STATUS_SUCCESS
    })
    .unwrap_or(NtStatus::STATUS_INVALID_PARAMETER))
}

/// The pool tag the mock gives `IoVolumeDeviceToDosName`'s buffer.
pub const DOS_NAME_TAG: u32 = u32::from_le_bytes(*b"MntD");

/// `IoVolumeDeviceToDosName` (PASSIVE_LEVEL): the mount manager's DOS name of the volume whose
/// device object (`FltGetDiskDeviceObject`'s, referenced) is passed; the buffer is pool the
/// caller frees (`ExFreePool`); no drive letter: `STATUS_OBJECT_NAME_NOT_FOUND`.
unsafe extern "win64" fn io_volume_device_to_dos_name(device: usize, name: *mut c_void) -> i32 {
    nt(with(|k| {
        k.calls.push(Call::VolumeDeviceToDosName);
        if !k.require_irql("IoVolumeDeviceToDosName", PASSIVE_LEVEL) {
            return NtStatus::STATUS_INVALID_PARAMETER;
        }
        // The storage model hands out one disk device object; a reference must be held.
        if device == 0 || k.storage.device_references == 0 || name.is_null() {
            k.error(format!(
                "IoVolumeDeviceToDosName({device:#x}): not the referenced volume device object"
            ));
            return NtStatus::STATUS_INVALID_PARAMETER;
        }
        if let Some(status) = k.faults.hit(Point::VolumeName) {
            return status;
        }
        if k.names.dos_name.is_empty() {
            return NtStatus(0xC000_0034); // STATUS_OBJECT_NAME_NOT_FOUND
        }
        let text = utf16(&k.names.dos_name);
        let Some((address, layout)) = allocate(text.len() * 2) else {
            return NtStatus::STATUS_INSUFFICIENT_RESOURCES;
        };
        // SAFETY: a fresh block of the text's size.
        unsafe { std::ptr::copy_nonoverlapping(text.as_ptr(), address as *mut u16, text.len()) };
        k.pool.insert(
            address,
            Block {
                layout,
                tag: DOS_NAME_TAG,
            },
        );
        let l = shapes().unicode_string;
        let bytes = u16::try_from(text.len() * 2).unwrap_or(u16::MAX);
        // SAFETY: the image's UNICODE_STRING (checked non-NULL), fields at the table's offsets.
        unsafe { write(name, l.length, bytes) };
        // SAFETY: as above.
        unsafe { write(name, l.maximum_length, bytes) };
        // SAFETY: as above.
        unsafe { write(name, l.buffer, address) };
        NtStatus::STATUS_SUCCESS
    })
    .unwrap_or(NtStatus::STATUS_INVALID_PARAMETER))
}

/// `KeBugCheckEx`: imported only while the image has a reachable panic site (its backstop,
/// `ffi::kernel::bugcheck`). Reaching it is the machine stopping: the process aborts with the
/// parameters, as the run would on Windows.
unsafe extern "win64" fn ke_bug_check_ex(
    code: u32,
    p1: usize,
    p2: usize,
    p3: usize,
    p4: usize,
) -> ! {
    eprintln!(
        "odx-pe-harness: the image called KeBugCheckEx({code:#x}, {p1:#x}, {p2:#x}, {p3:#x}, {p4:#x}): the machine stops"
    );
    std::process::abort()
}

/// `KeQuerySystemTimePrecise` (any IRQL): the scenario clock, 100-ns ticks (the model's
/// clock, the one `advance_ms` moves; the simulator's journal uses the same).
unsafe extern "win64" fn ke_query_system_time_precise(out: *mut i64) {
    let now = with(|k| {
        k.calls.push(Call::QuerySystemTime);
        k.storage.now
    })
    .unwrap_or(0);
    if !out.is_null() {
        // SAFETY: the image's LARGE_INTEGER (checked non-NULL).
        unsafe { out.write(i64::try_from(now).unwrap_or(i64::MAX)) };
    }
}

/// The push-lock operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockOp {
    /// `FltInitializePushLock`.
    Initialize,
    /// `FltAcquirePushLockShared`.
    Shared,
    /// `FltAcquirePushLockExclusive`.
    Exclusive,
    /// `FltReleasePushLock`.
    Release,
}

fn push_lock(op: LockOp, lock: *mut usize) {
    with(|k| {
        k.calls.push(Call::PushLock(op));
        let routine = match op {
            LockOp::Initialize => "FltInitializePushLock",
            LockOp::Shared => "FltAcquirePushLockShared",
            LockOp::Exclusive => "FltAcquirePushLockExclusive",
            LockOp::Release => "FltReleasePushLock",
        };
        k.require_irql(routine, APC_LEVEL);
        let address = lock as usize;
        if op == LockOp::Initialize {
            if let Some(state) = k.names.locks.get(&address).copied() {
                if state.shared > 0 || state.exclusive {
                    k.error(format!("{routine}({address:#x}): the lock is held"));
                }
            }
            k.names.locks.insert(address, LockState::default());
            if !lock.is_null() {
                // SAFETY: the image's EX_PUSH_LOCK (pointer-sized): initialised to 0 as
                // ExInitializePushLock does.
                unsafe { lock.write(0) };
            }
            return;
        }
        let Some(state) = k.names.locks.get(&address).copied() else {
            k.error(format!("{routine}({address:#x}): never initialised"));
            return;
        };
        let next = match op {
            LockOp::Shared if state.exclusive => {
                k.error(format!(
                    "{routine}({address:#x}): held exclusive by this thread (the system hangs)"
                ));
                return;
            }
            LockOp::Shared => LockState {
                shared: state.shared + 1,
                ..state
            },
            LockOp::Exclusive if state.exclusive || state.shared > 0 => {
                k.error(format!(
                    "{routine}({address:#x}): already held by this thread ({state:?}; push locks are not recursive: the thread hangs)"
                ));
                return;
            }
            LockOp::Exclusive => LockState {
                exclusive: true,
                ..state
            },
            LockOp::Release if state.exclusive => LockState {
                exclusive: false,
                ..state
            },
            LockOp::Release if state.shared > 0 => LockState {
                shared: state.shared - 1,
                ..state
            },
            LockOp::Release => {
                k.error(format!("{routine}({address:#x}): not held"));
                return;
            }
            LockOp::Initialize => state,
        };
        k.names.locks.insert(address, next);
    });
}

unsafe extern "win64" fn flt_initialize_push_lock(lock: *mut usize) {
    push_lock(LockOp::Initialize, lock);
}

unsafe extern "win64" fn flt_acquire_push_lock_shared(lock: *mut usize) {
    push_lock(LockOp::Shared, lock);
}

unsafe extern "win64" fn flt_acquire_push_lock_exclusive(lock: *mut usize) {
    push_lock(LockOp::Exclusive, lock);
}

unsafe extern "win64" fn flt_release_push_lock(lock: *mut usize) {
    push_lock(LockOp::Release, lock);
}
