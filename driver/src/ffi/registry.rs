//! `Parameters\DefaultPolicy` and `Parameters\OffloadBackoffSeconds` under the service key, read once at load with `ZwOpenKey` /
//! `ZwQueryValueKey` (declared here with a raw-dylib link to `ntoskrnl.exe`, not through
//! `windows-sys`' `ntdll.dll` declarations) and closed with `ObCloseHandle` (windows-sys declares
//! it from `ntoskrnl.exe`; its `ZwClose` is bound to `ntdll.dll` and, being in an enabled
//! feature, would win the `__imp_ZwClose` symbol over a declaration of our own). The bytes are
//! interpreted by [`crate::volumes::registry_source`].

use core::ffi::c_void;
use core::ptr::{null, null_mut};

use odx_core::governance::JournalMode;
use odx_core::port::RegistrySource;
use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows_sys::Wdk::System::SystemServices::ObCloseHandle;
use windows_sys::Win32::Foundation::{
    HANDLE, NTSTATUS, OBJ_CASE_INSENSITIVE, OBJ_KERNEL_HANDLE, UNICODE_STRING,
};

use super::kernel::PoolBytes;
use super::{core_status, nt_success};
use crate::volumes::{BackoffSource, backoff_source, journal_mode, registry_source};

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
/// `Journal` (REG_DWORD: 0 off, 1 decisions, 2 decisions named).
static JOURNAL: [u16; 7] = ascii_utf16("Journal");
/// `Rules` (REG_MULTI_SZ, one rule per string).
static RULES: [u16; 5] = ascii_utf16("Rules");

/// `REG_MULTI_SZ`.
const REG_MULTI_SZ: u32 = 7;
crate::pin_constant!(REG_MULTI_SZ => "REG_MULTI_SZ");

/// Longest `Rules` value read (bytes of UTF-16): twice the port's `RULES_TEXT_MAX`, since the
/// registry holds UTF-16 and the port UTF-8. A longer value is not read (no rules, all
/// rejected: reported as one rejected line).
const RULES_VALUE_MAX: usize = 2 * odx_core::port::governance::RULES_TEXT_MAX;
/// Longest rule string taken (UTF-8 bytes); a longer one is a rejected line.
pub const RULE_LINE_MAX: usize = 4096;
/// What a string that is not valid UTF-16 or longer than [`RULE_LINE_MAX`] becomes: a line the
/// parser rejects (a lone U+FFFD is no field), so the count and line numbers stay right.
pub const UNCONVERTIBLE_LINE: &str = "\u{FFFD}";

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
    /// `Journal`.
    pub journal: JournalMode,
}

/// `RegistryPath\Parameters\DefaultPolicy`, `...\OffloadBackoffSeconds` and `...\Journal` (one
/// open of the key, three value queries), and `...\Rules` into the rule set.
pub fn parameters(registry_path: *const UNICODE_STRING) -> Parameters {
    let absent = Parameters {
        policy: RegistrySource::Absent,
        backoff: BackoffSource::Absent,
        journal: JournalMode::DEFAULT,
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
    load_rules(&parameters);
    Parameters {
        policy: registry_source(query(&parameters, &DEFAULT_POLICY).bytes()),
        backoff: backoff_source(query(&parameters, &OFFLOAD_BACKOFF_SECONDS).bytes()),
        journal: journal_mode(query(&parameters, &JOURNAL).bytes()),
    }
}

/// `Parameters\Rules` into the rule set, leniently (`RuleSet::load_lines`): bad lines are
/// skipped and counted ([`crate::volumes::RulesLoad`]), never a failed load. Absent: no rules.
fn load_rules(parameters: &Key) {
    let name = counted(&RULES);
    let mut needed = 0u32;
    // SAFETY: a size probe: no buffer, length 0; `needed` receives the size. PASSIVE_LEVEL.
    let status = unsafe {
        ZwQueryValueKey(
            parameters.0,
            &name,
            KEY_VALUE_PARTIAL_INFORMATION,
            null_mut(),
            0,
            &mut needed,
        )
    };
    if !TOO_LARGE.contains(&core_status(status).0) {
        return; // absent (or empty without data): no rules
    }
    let needed = usize::try_from(needed).unwrap_or(usize::MAX);
    if needed > RULES_VALUE_MAX.saturating_add(DATA_OFFSET) {
        crate::volumes::VOLUMES.rules_loaded(0, 1);
        return;
    }
    let Some(mut value) = PoolBytes::zeroed(needed) else {
        crate::volumes::VOLUMES.rules_loaded(0, 1);
        return;
    };
    let mut got = 0u32;
    let length = u32::try_from(needed).unwrap_or(0);
    // SAFETY: `value` is `length` writable bytes, 8-byte aligned pool; PASSIVE_LEVEL.
    let status = unsafe {
        ZwQueryValueKey(
            parameters.0,
            &name,
            KEY_VALUE_PARTIAL_INFORMATION,
            value.as_mut_slice().as_mut_ptr().cast(),
            length,
            &mut got,
        )
    };
    let bytes = value.as_slice();
    let word = |at: usize| {
        bytes
            .get(at..at.saturating_add(4))
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_le_bytes)
    };
    if !nt_success(status) || word(TYPE_OFFSET) != REG_MULTI_SZ {
        crate::volumes::VOLUMES.rules_loaded(0, 1);
        return;
    }
    let data_len = usize::try_from(word(LENGTH_OFFSET)).unwrap_or(0);
    let data = bytes
        .get(DATA_OFFSET..DATA_OFFSET.saturating_add(data_len))
        .unwrap_or_default();
    // UTF-8 is at most 3 bytes per UTF-16 unit (a surrogate pair: 4 bytes for 2 units), plus a
    // separator per string.
    let Some(mut text) = PoolBytes::zeroed(data.len().saturating_mul(2).saturating_add(16)) else {
        crate::volumes::VOLUMES.rules_loaded(0, 1);
        return;
    };
    let used = multi_sz_to_lines(data, text.as_mut_slice());
    let lines = text.as_slice().get(..used).unwrap_or_default();
    let report = super::rules::write(|set| {
        set.load_lines(
            lines
                .split(|b| *b == 0)
                .map(|line| core::str::from_utf8(line).unwrap_or(UNCONVERTIBLE_LINE)),
        )
    });
    crate::volumes::VOLUMES.rules_loaded(report.accepted, report.rejected);
}

/// `KEY_VALUE_PARTIAL_INFORMATION.Type` / `.DataLength` / `.Data` (pinned in `views`).
const TYPE_OFFSET: usize = 4;
const LENGTH_OFFSET: usize = 8;
const DATA_OFFSET: usize = 12;

/// Converts REG_MULTI_SZ data (UTF-16LE strings, each NUL-terminated, an empty string ending
/// the list) into UTF-8 strings separated by NUL bytes in `out`; returns the bytes used. A
/// string that is not valid UTF-16 or longer than [`RULE_LINE_MAX`] becomes
/// [`UNCONVERTIBLE_LINE`].
pub fn multi_sz_to_lines(data: &[u8], out: &mut [u8]) -> usize {
    let mut units = data
        .chunks_exact(2)
        .map(|pair| {
            u16::from_le_bytes([
                pair.first().copied().unwrap_or(0),
                pair.get(1).copied().unwrap_or(0),
            ])
        })
        .peekable();
    let mut used = 0usize;
    let mut first = true;
    while units.peek().is_some() {
        let string = units.by_ref().take_while(|unit| *unit != 0);
        let start = used;
        let mut bad = false;
        let mut empty = true;
        if !first {
            if let Some(slot) = out.get_mut(used) {
                *slot = 0;
                used = used.saturating_add(1);
            }
        }
        let line_start = used;
        for decoded in char::decode_utf16(string) {
            empty = false;
            let Ok(c) = decoded else {
                bad = true;
                continue;
            };
            let mut buf = [0u8; 4];
            let encoded = c.encode_utf8(&mut buf).as_bytes();
            let end = used.saturating_add(encoded.len());
            match out.get_mut(used..end) {
                Some(slot) if end.saturating_sub(line_start) <= RULE_LINE_MAX && !bad => {
                    // Zipped, not `copy_from_slice`: its length check is a panic site.
                    for (to, from) in slot.iter_mut().zip(encoded) {
                        *to = *from;
                    }
                    used = end;
                }
                _ => bad = true,
            }
        }
        if empty && units.peek().is_none() {
            // The list's terminating empty string: not a line.
            used = start;
            break;
        }
        if bad {
            used = line_start;
            let marker = UNCONVERTIBLE_LINE.as_bytes();
            let end = used.saturating_add(marker.len());
            if let Some(slot) = out.get_mut(used..end) {
                for (to, from) in slot.iter_mut().zip(marker) {
                    *to = *from;
                }
                used = end;
            }
        }
        first = false;
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multi(strings: &[&[u16]]) -> std::vec::Vec<u8> {
        let mut data = std::vec::Vec::new();
        for s in strings {
            for u in *s {
                data.extend_from_slice(&u.to_le_bytes());
            }
            data.extend_from_slice(&[0, 0]);
        }
        data.extend_from_slice(&[0, 0]);
        data
    }

    fn lines(data: &[u8]) -> std::vec::Vec<std::string::String> {
        let mut out = std::vec![0u8; data.len() * 2 + 16];
        let used = multi_sz_to_lines(data, &mut out);
        out[..used]
            .split(|b| *b == 0)
            .map(|l| std::string::String::from_utf8(l.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn multi_sz_strings_become_lines_and_bad_ones_a_rejected_line() {
        let a: std::vec::Vec<u16> = "veto process=robocopy.exe".encode_utf16().collect();
        let b: std::vec::Vec<u16> = "monitor max_length=262144".encode_utf16().collect();
        let lone = [0xD800_u16, 0x41];
        let data = multi(&[&a, &lone, &b]);
        assert_eq!(
            lines(&data),
            [
                "veto process=robocopy.exe",
                UNCONVERTIBLE_LINE,
                "monitor max_length=262144"
            ]
        );
        let long: std::vec::Vec<u16> = std::iter::repeat_n(0x61, RULE_LINE_MAX + 1).collect();
        assert_eq!(lines(&multi(&[&long])), [UNCONVERTIBLE_LINE]);
        // The marker is rejected by the parser, never taken as a blank line.
        let mut set = odx_core::governance::RuleSet::new();
        let report = set.load_lines([UNCONVERTIBLE_LINE]);
        assert_eq!((report.accepted, report.rejected), (0, 1));
    }

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
