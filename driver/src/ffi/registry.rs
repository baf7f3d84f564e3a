//! `Parameters\DefaultPolicy` and `Parameters\OffloadBackoffSeconds` under the service key, read once at load with `ZwOpenKey` /
//! `ZwQueryValueKey` (declared here with a raw-dylib link to `ntoskrnl.exe`, not through
//! `windows-sys`' `ntdll.dll` declarations) and closed with `ObCloseHandle` (windows-sys declares
//! it from `ntoskrnl.exe`; its `ZwClose` is bound to `ntdll.dll` and, being in an enabled
//! feature, would win the `__imp_ZwClose` symbol over a declaration of our own). The bytes are
//! interpreted by [`crate::volumes::registry_source`].

use core::ffi::c_void;
use core::ptr::{null, null_mut};

use odx_core::port::RegistrySource;
use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows_sys::Wdk::System::SystemServices::ObCloseHandle;
use windows_sys::Win32::Foundation::{
    HANDLE, NTSTATUS, OBJ_CASE_INSENSITIVE, OBJ_KERNEL_HANDLE, UNICODE_STRING,
};

use super::{core_status, nt_success};
use crate::volumes::{BackoffSource, backoff_source, registry_source};

#[cfg_attr(
    target_os = "windows",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")
)]
unsafe extern "system" {
    fn ZwOpenKey(key: *mut HANDLE, access: u32, attributes: *const OBJECT_ATTRIBUTES) -> NTSTATUS;
    fn ZwQueryValueKey(
        key: HANDLE,
        name: *const UNICODE_STRING,
        class: i32,
        information: *mut c_void,
        length: u32,
        result_length: *mut u32,
    ) -> NTSTATUS;
}

/// `KernelMode` (`KPROCESSOR_MODE`).
const KERNEL_MODE: i8 = 0;
/// `KEY_READ`.
const KEY_READ: u32 = 0x0002_0019;
/// `KeyValuePartialInformation`.
const KEY_VALUE_PARTIAL_INFORMATION: i32 = 2;

// KEY_READ is not in either header set's table (it is STANDARD_RIGHTS_READ | KEY_QUERY_VALUE |
// KEY_ENUMERATE_SUB_KEYS | KEY_NOTIFY, winnt.h); the rest is pinned.
crate::pin_constant!(
    KERNEL_MODE => "KernelMode",
    KEY_VALUE_PARTIAL_INFORMATION => "KeyValuePartialInformation",
);
/// `STATUS_BUFFER_OVERFLOW` and `STATUS_BUFFER_TOO_SMALL`: a value larger than a DWORD.
const TOO_LARGE: [u32; 2] = [0x8000_0005, 0xC000_0023];

const fn ascii_utf16<const N: usize>(text: &str) -> [u16; N] {
    let bytes = text.as_bytes();
    let mut out = [0u16; N];
    let mut i = 0;
    while i < N && i < bytes.len() {
        // `i` < N and < bytes.len(): in bounds (const evaluation).
        #[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
        {
            out[i] = bytes[i] as u16;
            i += 1;
        }
    }
    out
}

static PARAMETERS: [u16; 10] = ascii_utf16("Parameters");
static DEFAULT_POLICY: [u16; 13] = ascii_utf16("DefaultPolicy");
static OFFLOAD_BACKOFF_SECONDS: [u16; 21] = ascii_utf16("OffloadBackoffSeconds");

fn counted(text: &'static [u16]) -> UNICODE_STRING {
    let bytes = u16::try_from(core::mem::size_of_val(text)).unwrap_or(0);
    UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        // The kernel only reads the name.
        Buffer: text.as_ptr().cast_mut(),
    }
}

/// An open registry key, closed on drop.
struct Key(HANDLE);

impl Key {
    fn open(root: HANDLE, name: *const UNICODE_STRING) -> Option<Self> {
        let attributes = OBJECT_ATTRIBUTES {
            Length: u32::try_from(core::mem::size_of::<OBJECT_ATTRIBUTES>()).unwrap_or(0),
            RootDirectory: root,
            ObjectName: name,
            Attributes: OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
            SecurityDescriptor: null(),
            SecurityQualityOfService: null(),
        };
        let mut key: HANDLE = null_mut();
        // SAFETY: PASSIVE_LEVEL (DriverEntry); `attributes` and the name it points to outlive
        // the call; `key` is a valid out pointer.
        let status = unsafe { ZwOpenKey(&mut key, KEY_READ, &attributes) };
        // Lazily: a `Key` built for a failed open would close a handle that was never opened
        // on drop (ObCloseHandle of an invalid kernel handle bugchecks with
        // INVALID_KERNEL_HANDLE). Found by the PE harness's fault injection (ZwOpenKey failing).
        if nt_success(status) && !key.is_null() {
            Some(Self(key))
        } else {
            None
        }
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: the handle came from ZwOpenKey with OBJ_KERNEL_HANDLE and is closed once, in
        // kernel mode, at PASSIVE_LEVEL.
        let _ = unsafe { ObCloseHandle(self.0, KERNEL_MODE) };
    }
}

/// What `ZwQueryValueKey(KeyValuePartialInformation)` gave for one value.
enum Value {
    /// No such value (or it could not be read).
    Absent,
    /// Larger than the buffer: not a DWORD.
    TooLarge,
    /// The `KEY_VALUE_PARTIAL_INFORMATION` bytes returned.
    Partial([u8; 32], usize),
}

impl Value {
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Absent => None,
            // Any slice that is not a 4-byte REG_DWORD is read as "wrong type".
            Self::TooLarge => Some(&[]),
            Self::Partial(bytes, used) => bytes.get(..*used),
        }
    }
}

fn query(parameters: &Key, name: &'static [u16]) -> Value {
    let value_name = counted(name);
    // KEY_VALUE_PARTIAL_INFORMATION: 12 bytes of header and a DWORD, u32-aligned.
    let mut buffer = [0u32; 8];
    let mut length = 0u32;
    // SAFETY: PASSIVE_LEVEL; the key is open; `buffer` has the stated size and alignment;
    // `length` is a valid out pointer.
    let status = unsafe {
        ZwQueryValueKey(
            parameters.0,
            &value_name,
            KEY_VALUE_PARTIAL_INFORMATION,
            buffer.as_mut_ptr().cast(),
            u32::try_from(core::mem::size_of_val(&buffer)).unwrap_or(0),
            &mut length,
        )
    };
    if TOO_LARGE.contains(&core_status(status).0) {
        return Value::TooLarge;
    }
    if !nt_success(status) {
        return Value::Absent;
    }
    let mut bytes = [0u8; 32];
    for (chunk, word) in bytes.chunks_exact_mut(4).zip(buffer) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    let used = usize::try_from(length).unwrap_or(0).min(bytes.len());
    Value::Partial(bytes, used)
}

/// The service's `Parameters` as odxflt reads them at load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parameters {
    /// `DefaultPolicy`.
    pub policy: RegistrySource,
    /// `OffloadBackoffSeconds`.
    pub backoff: BackoffSource,
}

/// `RegistryPath\Parameters\DefaultPolicy` and `...\OffloadBackoffSeconds` (one open of the
/// key, two value queries).
pub fn parameters(registry_path: *const UNICODE_STRING) -> Parameters {
    let absent = Parameters {
        policy: RegistrySource::Absent,
        backoff: BackoffSource::Absent,
    };
    if registry_path.is_null() {
        return absent;
    }
    let Some(service) = Key::open(null_mut(), registry_path) else {
        return absent;
    };
    let parameters_name = counted(&PARAMETERS);
    let Some(parameters) = Key::open(service.0, &parameters_name) else {
        return absent;
    };
    Parameters {
        policy: registry_source(query(&parameters, &DEFAULT_POLICY).bytes()),
        backoff: backoff_source(query(&parameters, &OFFLOAD_BACKOFF_SECONDS).bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_counted_utf16_without_a_terminator() {
        let name = counted(&DEFAULT_POLICY);
        assert_eq!(name.Length, 26);
        assert_eq!(
            std::string::String::from_utf16(&PARAMETERS).unwrap(),
            "Parameters"
        );
        assert_eq!(
            std::string::String::from_utf16(&DEFAULT_POLICY).unwrap(),
            "DefaultPolicy"
        );
        assert_eq!(
            std::string::String::from_utf16(&OFFLOAD_BACKOFF_SECONDS).unwrap(),
            "OffloadBackoffSeconds"
        );
    }
}
