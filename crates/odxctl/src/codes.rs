//! Turning what a user types into table rows of odx-core's status table.

use odx_core::status::StatusInfo;
use odx_core::{NtStatus, Win32Error};

/// What a code resolved to.
#[derive(Debug)]
pub struct Resolved {
    /// The Win32 code when the query was one (several statuses may map to it).
    pub win32_query: Option<Win32Error>,
    /// The matching rows.
    pub rows: Vec<&'static StatusInfo>,
}

fn by_win32(code: u32) -> Vec<&'static StatusInfo> {
    Win32Error(code).statuses().collect()
}

fn by_status(code: u32) -> Vec<&'static StatusInfo> {
    NtStatus(code).info().into_iter().collect()
}

/// Resolves a Win32 number (`4440`), hex (`0x1158`, `0xC000A2A1`), a negative decimal NTSTATUS
/// (`-1073741811`) or a `STATUS_`/`ERROR_` name, case-insensitively.
///
/// # Errors
/// A one-line message naming what is wrong.
pub fn resolve(query: &str) -> Result<Resolved, String> {
    let q = query.trim();
    let unknown_number = |n: u32| {
        format!(
            "unknown code {q:?} ({n:#x}): not an NTSTATUS or Win32 code that ODX requests return"
        )
    };
    if let Some(hex) = q.strip_prefix("0x").or_else(|| q.strip_prefix("0X")) {
        let n = u32::from_str_radix(hex, 16)
            .map_err(|_| format!("unknown code {q:?}: not a 32-bit hexadecimal number"))?;
        let rows = by_status(n);
        if !rows.is_empty() {
            return Ok(Resolved {
                win32_query: None,
                rows,
            });
        }
        let rows = by_win32(n);
        if rows.is_empty() {
            return Err(unknown_number(n));
        }
        return Ok(Resolved {
            win32_query: Some(Win32Error(n)),
            rows,
        });
    }
    if let Ok(signed) = q.parse::<i64>() {
        let n = u32::try_from(signed)
            .or_else(|_| i32::try_from(signed).map(|v| v as u32))
            .map_err(|_| format!("unknown code {q:?}: out of the 32-bit range"))?;
        let rows = by_win32(n);
        if !rows.is_empty() && signed >= 0 {
            return Ok(Resolved {
                win32_query: Some(Win32Error(n)),
                rows,
            });
        }
        let rows = by_status(n);
        if rows.is_empty() {
            return Err(unknown_number(n));
        }
        return Ok(Resolved {
            win32_query: None,
            rows,
        });
    }
    let upper = q.to_ascii_uppercase();
    let as_status = || NtStatus::from_name(q).map(|s| by_status(s.0));
    let as_win32 = || {
        Win32Error::from_name(q).map(|w| Resolved {
            win32_query: Some(w),
            rows: by_win32(w.0),
        })
    };
    let found = if upper.starts_with("ERROR_") {
        as_win32()
    } else if upper.starts_with("STATUS_") {
        as_status().map(|rows| Resolved {
            win32_query: None,
            rows,
        })
    } else {
        as_status()
            .map(|rows| Resolved {
                win32_query: None,
                rows,
            })
            .or_else(as_win32)
    };
    found.filter(|r| !r.rows.is_empty()).ok_or_else(|| {
        format!("unknown code {q:?}: not a number and not a STATUS_ or ERROR_ name that ODX requests return")
    })
}

/// `STATUS_X (0xC0000000, Win32 87)`.
pub fn status_line(status: NtStatus) -> String {
    match status.to_win32() {
        Some(w) => format!("{status} ({:#010X}, Win32 {})", status.0, w.0),
        None => format!("{status} ({:#010X})", status.0),
    }
}

/// The one-line meaning of a status, or a placeholder.
pub fn meaning(status: NtStatus) -> &'static str {
    status
        .info()
        .map_or("(not in odxflt's status table)", |i| i.meaning)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(q: &str) -> Vec<&'static str> {
        resolve(q)
            .map(|r| r.rows.iter().map(|r| r.name).collect())
            .unwrap_or_default()
    }

    #[test]
    fn numbers_hex_and_names_resolve() {
        assert_eq!(names("4440"), ["STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED"]);
        assert_eq!(names("0x1158"), ["STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED"]);
        assert_eq!(
            names("0xC000A2A1"),
            ["STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED"]
        );
        assert_eq!(
            names("0xc000a2a4"),
            ["STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED"]
        );
        assert_eq!(
            names("error_offload_write_flt_not_supported"),
            ["STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED"]
        );
        assert_eq!(
            names("STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED"),
            ["STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED"]
        );
        assert_eq!(names("invalid_token"), ["STATUS_INVALID_TOKEN"]);
        assert_eq!(names("-1073741811"), ["STATUS_INVALID_PARAMETER"]);
    }

    #[test]
    fn a_shared_win32_code_lists_every_status() {
        assert_eq!(names("5"), ["STATUS_ACCESS_DENIED", "STATUS_FILE_DELETED"]);
        assert_eq!(
            names("19"),
            ["STATUS_MEDIA_WRITE_PROTECTED", "STATUS_TOO_LATE"]
        );
        assert_eq!(
            resolve("6").map(|r| r.win32_query),
            Ok(Some(Win32Error(6))).map_err(|e: String| e)
        );
    }

    #[test]
    fn unknown_codes_are_errors() {
        assert!(resolve("9999").is_err());
        assert!(resolve("0xZZ").is_err());
        assert!(resolve("STATUS_DISMOUNTED_VOLUME").is_err());
        assert!(resolve("banana").is_err());
        assert!(resolve("99999999999").is_err());
    }
}
