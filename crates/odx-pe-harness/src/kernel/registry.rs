//! The registry: `ZwOpenKey` (the service key and its `Parameters` subkey exist, nothing else),
//! `ZwQueryValueKey` (`Parameters\DefaultPolicy` as a REG_DWORD when the scenario sets a policy,
//! `Parameters\OffloadBackoffSeconds` as a REG_DWORD with the scenario's `[storage] backoff_seconds`,
//! `Parameters\Journal` as a REG_DWORD with the scenario's `[volume] journal`,
//! `Parameters\Rules` as a REG_MULTI_SZ of the scenario's `[[rule]]` texts) and `ObCloseHandle`. All PASSIVE_LEVEL. `OBJECT_ATTRIBUTES`, `UNICODE_STRING` and
//! `KEY_VALUE_PARTIAL_INFORMATION` are read and written by the table's offsets.

use std::ffi::c_void;

use odx_core::NtStatus;

use super::fault::Point;
use super::{Call, STATUS_INVALID_INFO_CLASS, STATUS_INVALID_PARAMETER, nt, with};
use crate::layouts::{Blob, read, shapes};

/// The service key's path as `DriverEntry` receives it.
pub const SERVICE_KEY: &str = r"\Registry\Machine\System\CurrentControlSet\Services\odxflt";
const STATUS_OBJECT_NAME_NOT_FOUND: NtStatus = NtStatus(0xC000_0034);
const STATUS_BUFFER_OVERFLOW: NtStatus = NtStatus(0x8000_0005);
const STATUS_BUFFER_TOO_SMALL: NtStatus = NtStatus(0xC000_0023);

/// REG_MULTI_SZ data: each string UTF-16LE and NUL-terminated, then an empty string.
#[must_use]
pub fn multi_sz(strings: &[String]) -> Vec<u8> {
    let mut data = Vec::new();
    for string in strings {
        for unit in string.encode_utf16().chain([0]) {
            data.extend_from_slice(&unit.to_le_bytes());
        }
    }
    data.extend_from_slice(&[0, 0]);
    data
}
const PASSIVE_LEVEL: u8 = 0;

pub(super) fn resolve(symbol: &str) -> Option<usize> {
    Some(match symbol {
        "ZwOpenKey" => zw_open_key as *const () as usize,
        "ZwQueryValueKey" => zw_query_value_key as *const () as usize,
        "ObCloseHandle" => ob_close_handle as *const () as usize,
        _ => return None,
    })
}

/// A `UNICODE_STRING` the image passes, as text.
fn read_unicode(string: *const c_void) -> Option<String> {
    if string.is_null() {
        return None;
    }
    let l = shapes().unicode_string;
    // SAFETY: the image passes a valid UNICODE_STRING (checked non-NULL) for the call: USHORT
    // Length and PWSTR Buffer at the table's offsets.
    let length: u16 = unsafe { read(string, l.length) };
    // SAFETY: as above.
    let buffer: usize = unsafe { read(string, l.buffer) };
    if buffer == 0 {
        return Some(String::new());
    }
    let units = usize::from(length) / 2;
    // SAFETY: `Buffer` holds `Length` bytes of UTF-16, valid for the call.
    let text = unsafe { std::slice::from_raw_parts(buffer as *const u16, units) };
    Some(String::from_utf16_lossy(text))
}

/// A `UNICODE_STRING` the harness passes (the registry path of `DriverEntry`): the structure
/// and the UTF-16 text it points to, kept alive together.
#[derive(Debug)]
pub struct OwnedUnicode {
    /// The structure.
    pub string: Blob,
    _text: Vec<u16>,
}

impl OwnedUnicode {
    /// `text` as a `UNICODE_STRING` (Length = MaximumLength = its bytes).
    ///
    /// # Errors
    /// Longer than a `UNICODE_STRING` can describe.
    pub fn new(text: &str) -> anyhow::Result<Self> {
        let text: Vec<u16> = text.encode_utf16().collect();
        let bytes = u16::try_from(text.len() * 2)?;
        let l = shapes().unicode_string;
        let mut string = Blob::new(l.size);
        string.put::<u16>(l.length, bytes);
        string.put::<u16>(l.maximum_length, bytes);
        string.put::<usize>(l.buffer, text.as_ptr() as usize);
        Ok(Self {
            string,
            _text: text,
        })
    }
}

/// `ZwOpenKey`.
unsafe extern "win64" fn zw_open_key(
    key: *mut *mut c_void,
    _access: u32,
    attributes: *const c_void,
) -> i32 {
    if attributes.is_null() || key.is_null() {
        return nt(STATUS_INVALID_PARAMETER);
    }
    let l = shapes().object_attributes;
    // SAFETY: the image's OBJECT_ATTRIBUTES (checked non-NULL), valid for the call; ObjectName
    // and RootDirectory at the table's offsets.
    let name: usize = unsafe { read(attributes, l.object_name) };
    // SAFETY: as above.
    let root: usize = unsafe { read(attributes, l.root_directory) };
    // SAFETY: as above: ULONG Length.
    let declared: u32 = unsafe { read(attributes, l.length) };
    let name = read_unicode(name as *const c_void).unwrap_or_default();
    let opened = with(|k| {
        k.calls.push(Call::OpenKey);
        k.require_irql("ZwOpenKey", PASSIVE_LEVEL);
        if let Some(status) = k.faults.hit(Point::OpenKey) {
            return Err(status);
        }
        if usize::try_from(declared).ok() != Some(l.size) {
            k.error(format!(
                "ZwOpenKey: OBJECT_ATTRIBUTES.Length {declared}, not sizeof(OBJECT_ATTRIBUTES) = {}",
                l.size
            ));
            return Err(STATUS_INVALID_PARAMETER);
        }
        let path = if root == 0 {
            name.clone()
        } else {
            let Some(parent) = k.keys.get(&root) else {
                k.error(format!("ZwOpenKey: unknown root handle {root:#x}"));
                return Err(STATUS_INVALID_PARAMETER);
            };
            format!(r"{parent}\{name}")
        };
        let known = path.eq_ignore_ascii_case(SERVICE_KEY)
            || path.eq_ignore_ascii_case(&format!(r"{SERVICE_KEY}\Parameters"));
        if !known {
            return Err(STATUS_OBJECT_NAME_NOT_FOUND);
        }
        k.next_key += 4;
        let handle = k.next_key;
        k.keys.insert(handle, path);
        Ok(handle)
    })
    .unwrap_or(Err(STATUS_INVALID_PARAMETER));
    match opened {
        Ok(handle) => {
            // SAFETY: the image's out pointer (checked non-NULL).
            unsafe { key.write(handle as *mut c_void) };
            nt(NtStatus::STATUS_SUCCESS)
        }
        Err(status) => nt(status),
    }
}

/// `ZwQueryValueKey`.
unsafe extern "win64" fn zw_query_value_key(
    key: *mut c_void,
    name: *const c_void,
    class: i32,
    information: *mut c_void,
    length: u32,
    result_length: *mut u32,
) -> i32 {
    let name = read_unicode(name).unwrap_or_default();
    let s = shapes();
    let value = with(|k| {
        k.calls.push(Call::QueryValueKey);
        k.require_irql("ZwQueryValueKey", PASSIVE_LEVEL);
        if let Some(status) = k.faults.hit(Point::QueryValueKey) {
            return Err(status);
        }
        let Some(path) = k.keys.get(&(key as usize)).cloned() else {
            k.error(format!("ZwQueryValueKey: unknown key {:#x}", key as usize));
            return Err(STATUS_INVALID_PARAMETER);
        };
        if class != s.constants.key_value_partial_information {
            return Err(STATUS_INVALID_INFO_CLASS);
        }
        let parameters = path.eq_ignore_ascii_case(&format!(r"{SERVICE_KEY}\Parameters"));
        let value = if name.eq_ignore_ascii_case("DefaultPolicy") {
            k.default_policy
                .map(|v| (s.constants.reg_dword, v.to_le_bytes().to_vec()))
        } else if name.eq_ignore_ascii_case("OffloadBackoffSeconds") {
            k.storage
                .backoff_seconds
                .map(|v| (s.constants.reg_dword, v.to_le_bytes().to_vec()))
        } else if name.eq_ignore_ascii_case("Journal") {
            k.volume
                .journal
                .map(|v| (s.constants.reg_dword, v.to_le_bytes().to_vec()))
        } else if name.eq_ignore_ascii_case("Rules") {
            k.names
                .registry_rules
                .as_ref()
                .map(|rules| (s.constants.reg_multi_sz, multi_sz(rules)))
        } else {
            None
        };
        match (parameters, value) {
            (true, Some(value)) => Ok(value),
            _ => Err(STATUS_OBJECT_NAME_NOT_FOUND),
        }
    })
    .unwrap_or(Err(STATUS_INVALID_PARAMETER));
    let (value_type, data) = match value {
        Ok(value) => value,
        Err(status) => return nt(status),
    };
    let l = s.key_value_partial_information;
    // The structure up to Data, then the data bytes.
    let total = l.data + data.len();
    let mut answer = Blob::new(total.max(l.size));
    answer.put::<u32>(l.title_index, 0);
    answer.put::<u32>(l.type_field, value_type);
    answer.put::<u32>(l.data_length, u32::try_from(data.len()).unwrap_or(u32::MAX));
    for (i, byte) in data.iter().enumerate() {
        answer.put::<u8>(l.data + i, *byte);
    }
    if !result_length.is_null() {
        // SAFETY: the image's out pointer (checked non-NULL).
        unsafe { result_length.write(u32::try_from(total).unwrap_or(u32::MAX)) };
    }
    // ZwQueryValueKey's page: a buffer too small for the fixed part is STATUS_BUFFER_TOO_SMALL,
    // one that holds it but not the data STATUS_BUFFER_OVERFLOW.
    if information.is_null() || (length as usize) < l.data {
        return nt(STATUS_BUFFER_TOO_SMALL);
    }
    if (length as usize) < total {
        return nt(STATUS_BUFFER_OVERFLOW);
    }
    // SAFETY: the image's buffer holds `length` >= `total` bytes (checked); the blob has at
    // least `total`.
    unsafe {
        std::ptr::copy_nonoverlapping(
            answer.as_ptr().cast::<u8>().cast_const(),
            information.cast::<u8>(),
            total,
        );
    }
    nt(NtStatus::STATUS_SUCCESS)
}

/// `ObCloseHandle`: closes a registry key opened by `zw_open_key`.
unsafe extern "win64" fn ob_close_handle(handle: *mut c_void, _mode: i8) -> i32 {
    nt(with(|k| {
        k.calls.push(Call::CloseHandle);
        k.require_irql("ObCloseHandle", PASSIVE_LEVEL);
        if k.keys.remove(&(handle as usize)).is_some() {
            NtStatus::STATUS_SUCCESS
        } else {
            k.error(format!(
                "ObCloseHandle: unknown handle {:#x}",
                handle as usize
            ));
            STATUS_INVALID_PARAMETER
        }
    })
    .unwrap_or(STATUS_INVALID_PARAMETER))
}
