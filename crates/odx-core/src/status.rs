//! NTSTATUS values that offload requests can end with, their Win32 counterparts, and what each
//! means to a caller. One table ([`STATUS_TABLE`]) is the single source for names, mappings,
//! `odxctl explain` and the driver's completion statuses.
//!
//! Values come from the SDK's `ntstatus.h` / `winerror.h`; the NTSTATUS→Win32 column is what
//! `RtlNtStatusToDosError` returns (Wine's generated table; the four offload codes are also 1:1 in
//! the SDK's message texts). See docs/status-codes.md.

use core::fmt;

/// An NTSTATUS value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NtStatus(pub u32);

/// A Win32 error code, as `GetLastError` returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Win32Error(pub u32);

macro_rules! statuses {
    ($( $name:ident = $value:literal ;)*) => {
        impl NtStatus {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                pub const $name: NtStatus = NtStatus($value);
            )*
        }
    };
}

statuses! {
    STATUS_SUCCESS = 0x0000_0000;
    STATUS_INVALID_HANDLE = 0xC000_0008;
    STATUS_INVALID_PARAMETER = 0xC000_000D;
    STATUS_INVALID_DEVICE_REQUEST = 0xC000_0010;
    STATUS_END_OF_FILE = 0xC000_0011;
    STATUS_ACCESS_DENIED = 0xC000_0022;
    STATUS_BUFFER_TOO_SMALL = 0xC000_0023;
    STATUS_FILE_LOCK_CONFLICT = 0xC000_0054;
    STATUS_INSUFFICIENT_RESOURCES = 0xC000_009A;
    STATUS_MEDIA_WRITE_PROTECTED = 0xC000_00A2;
    STATUS_NOT_SUPPORTED = 0xC000_00BB;
    STATUS_FILE_DELETED = 0xC000_0123;
    STATUS_FILE_CLOSED = 0xC000_0128;
    STATUS_TOO_LATE = 0xC000_0189;
    STATUS_VOLUME_DISMOUNTED = 0xC000_026E;
    STATUS_BEYOND_VDL = 0xC000_0432;
    STATUS_DEVICE_FEATURE_NOT_SUPPORTED = 0xC000_0463;
    STATUS_DEVICE_UNREACHABLE = 0xC000_0464;
    STATUS_INVALID_TOKEN = 0xC000_0465;
    STATUS_DEVICE_INSUFFICIENT_RESOURCES = 0xC000_0468;
    STATUS_INVALID_OFFSET_ALIGNMENT = 0xC000_0474;
    STATUS_OPERATION_IN_PROGRESS = 0xC000_0476;
    STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED = 0xC000_A2A1;
    STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED = 0xC000_A2A2;
    STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED = 0xC000_A2A3;
    STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED = 0xC000_A2A4;
    STATUS_FLT_INTERNAL_ERROR = 0xC01C_000A;
    STATUS_FLT_VOLUME_NOT_FOUND = 0xC01C_0014;
    STATUS_REVISION_MISMATCH = 0xC000_0059;
}

/// Rows in [`STATUS_TABLE`] (fixed, so per-status counters can be arrays).
pub const STATUS_COUNT: usize = 28;

/// How the Windows copy engine (CopyFile2/CopyFileEx, so Explorer, robocopy, PowerShell) reacts
/// to a failed offload step (odx-spec §6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyEngineReaction {
    /// The step succeeded (possibly truncated: the engine continues at the returned length).
    Continue,
    /// The engine copies this file (from the failure point on) with ordinary reads and writes,
    /// and tries offload again for the next file.
    FallBackForFile,
    /// The engine falls back and records the volume (or volume pair) as unable to offload in its
    /// per-process cache, so later copies in that process skip offload for a while.
    FallBackAndRememberVolume,
    /// Never reaches the engine's offload logic in normal use (argument or usage errors); the
    /// engine still falls back to a classic copy.
    FallBackCallerError,
}

impl CopyEngineReaction {
    /// A sentence for humans.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Continue => {
                "copy continues; on truncation the engine issues the next offload at the returned length"
            }
            Self::FallBackForFile => {
                "the copy engine copies the rest of this file with ordinary reads and writes (per file, from where offload stopped) and tries offload again for the next file"
            }
            Self::FallBackAndRememberVolume => {
                "the copy engine falls back to ordinary reads and writes and caches the volume (pair) as not offload-capable for this process, so further copies skip ODX until the cache resets"
            }
            Self::FallBackCallerError => {
                "a caller or buffer error: the copy engine's own requests never hit it, direct callers must fix the request; copy tools fall back to a classic copy"
            }
        }
    }
}

/// Everything known about one status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusInfo {
    /// The NTSTATUS.
    pub status: NtStatus,
    /// Symbolic NTSTATUS name (`STATUS_…`).
    pub name: &'static str,
    /// What `RtlNtStatusToDosError` returns, where it is known.
    pub win32: Option<Win32Error>,
    /// Symbolic Win32 name (`ERROR_…`), where known.
    pub win32_name: Option<&'static str>,
    /// One line: what the status means for an offload request.
    pub meaning: &'static str,
    /// Likely causes, most common first.
    pub causes: &'static str,
    /// What copy engines do about it.
    pub reaction: CopyEngineReaction,
}

const fn row(
    status: NtStatus,
    name: &'static str,
    win32: u32,
    win32_name: &'static str,
    meaning: &'static str,
    causes: &'static str,
    reaction: CopyEngineReaction,
) -> StatusInfo {
    StatusInfo {
        status,
        name,
        win32: Some(Win32Error(win32)),
        win32_name: Some(win32_name),
        meaning,
        causes,
        reaction,
    }
}

use CopyEngineReaction as R;

/// Every status in odx-spec §3, in ascending value order.
pub static STATUS_TABLE: &[StatusInfo] = &[
    row(
        NtStatus::STATUS_SUCCESS,
        "STATUS_SUCCESS",
        0,
        "ERROR_SUCCESS",
        "the offload step completed, possibly for fewer bytes than asked (truncation)",
        "normal completion; a shorter TransferLength/LengthWritten is a truncation, not an error",
        R::Continue,
    ),
    row(
        NtStatus::STATUS_INVALID_HANDLE,
        "STATUS_INVALID_HANDLE",
        6,
        "ERROR_INVALID_HANDLE",
        "the handle the request was sent on is not valid",
        "the handle was closed or never referred to a file",
        R::FallBackCallerError,
    ),
    row(
        NtStatus::STATUS_INVALID_PARAMETER,
        "STATUS_INVALID_PARAMETER",
        87,
        "ERROR_INVALID_PARAMETER",
        "a field of the request is invalid",
        "FileOffset, CopyLength or TransferOffset not a multiple of the logical sector size; Size field wrong; FileOffset+CopyLength overflows or exceeds the volume's maximum file size; file smaller than a sector; offload write starting beyond valid data length",
        R::FallBackCallerError,
    ),
    row(
        NtStatus::STATUS_INVALID_DEVICE_REQUEST,
        "STATUS_INVALID_DEVICE_REQUEST",
        1,
        "ERROR_INVALID_FUNCTION",
        "the file system does not implement offload (only NTFS does), or the handle is not a file handle",
        "FAT, exFAT or ReFS volume; a handle to a volume or device instead of a file",
        R::FallBackAndRememberVolume,
    ),
    row(
        NtStatus::STATUS_END_OF_FILE,
        "STATUS_END_OF_FILE",
        38,
        "ERROR_HANDLE_EOF",
        "FileOffset is at or beyond end of file",
        "reading past the source's end; an offload write into a destination that was not pre-sized with SetEndOfFile",
        R::FallBackForFile,
    ),
    row(
        NtStatus::STATUS_ACCESS_DENIED,
        "STATUS_ACCESS_DENIED",
        5,
        "ERROR_ACCESS_DENIED",
        "the handle lacks the access the control code requires",
        "offload read on a handle without FILE_READ_DATA, offload write without FILE_WRITE_DATA; a filter that blocks offload the wrong way",
        R::FallBackForFile,
    ),
    row(
        NtStatus::STATUS_BUFFER_TOO_SMALL,
        "STATUS_BUFFER_TOO_SMALL",
        122,
        "ERROR_INSUFFICIENT_BUFFER",
        "the input or output buffer is shorter than the structure",
        "InputBufferLength below 32 (read) / 544 (write), or OutputBufferLength below 528 (read) / 16 (write)",
        R::FallBackCallerError,
    ),
    row(
        NtStatus::STATUS_FILE_LOCK_CONFLICT,
        "STATUS_FILE_LOCK_CONFLICT",
        33,
        "ERROR_LOCK_VIOLATION",
        "a byte-range lock conflicts with the range",
        "another handle holds an exclusive lock over the source range; any shared lock, or another handle's exclusive lock, over the destination range",
        R::FallBackForFile,
    ),
    row(
        NtStatus::STATUS_INSUFFICIENT_RESOURCES,
        "STATUS_INSUFFICIENT_RESOURCES",
        1450,
        "ERROR_NO_SYSTEM_RESOURCES",
        "the system ran out of a resource (pool, storage command slots)",
        "memory pressure; the storage stack could not build the offload command",
        R::FallBackForFile,
    ),
    row(
        NtStatus::STATUS_MEDIA_WRITE_PROTECTED,
        "STATUS_MEDIA_WRITE_PROTECTED",
        19,
        "ERROR_WRITE_PROTECT",
        "the destination volume is read-only",
        "read-only volume or write-protected media",
        R::FallBackAndRememberVolume,
    ),
    row(
        NtStatus::STATUS_NOT_SUPPORTED,
        "STATUS_NOT_SUPPORTED",
        50,
        "ERROR_NOT_SUPPORTED",
        "the volume is marked as unable to offload, or a filter refuses offload",
        "the storage answered that it cannot offload (NTFS then marks the volume until remount); an encryption, compression or scanning filter vetoes ODX",
        R::FallBackAndRememberVolume,
    ),
    row(
        NtStatus::STATUS_FILE_DELETED,
        "STATUS_FILE_DELETED",
        5,
        "ERROR_ACCESS_DENIED",
        "the stream is deleted or delete-pending",
        "the file was deleted (delete on close / disposition set) while the copy was running",
        R::FallBackForFile,
    ),
    row(
        NtStatus::STATUS_FILE_CLOSED,
        "STATUS_FILE_CLOSED",
        6,
        "ERROR_INVALID_HANDLE",
        "the handle has already been cleaned up",
        "request issued on a file object after its last handle was closed",
        R::FallBackCallerError,
    ),
    row(
        NtStatus::STATUS_TOO_LATE,
        "STATUS_TOO_LATE",
        19,
        "ERROR_WRITE_PROTECT",
        "a write arrived after the volume was dismounted or shut down",
        "volume dismount or system shutdown during the copy",
        R::FallBackAndRememberVolume,
    ),
    row(
        NtStatus::STATUS_VOLUME_DISMOUNTED,
        "STATUS_VOLUME_DISMOUNTED",
        21,
        "ERROR_NOT_READY",
        "the volume has been dismounted",
        "the volume was dismounted (FSCTL_DISMOUNT_VOLUME, removal, failover) while handles were open",
        R::FallBackAndRememberVolume,
    ),
    row(
        NtStatus::STATUS_BEYOND_VDL,
        "STATUS_BEYOND_VDL",
        1289,
        "ERROR_BEYOND_VDL",
        "an offload write starts beyond the destination's valid data length",
        "the destination was extended with SetEndOfFile and the write skips over unwritten space",
        R::FallBackForFile,
    ),
    row(
        NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED,
        "STATUS_DEVICE_FEATURE_NOT_SUPPORTED",
        316,
        "ERROR_DEVICE_FEATURE_NOT_SUPPORTED",
        "the storage device does not implement copy offload",
        "a disk or array without T10 POPULATE TOKEN / WRITE USING TOKEN; NTFS then stops trying offload on the volume until remount",
        R::FallBackAndRememberVolume,
    ),
    row(
        NtStatus::STATUS_DEVICE_UNREACHABLE,
        "STATUS_DEVICE_UNREACHABLE",
        321,
        "ERROR_DEVICE_UNREACHABLE",
        "the destination storage cannot reach the source storage",
        "source and destination LUNs on different arrays or array families",
        R::FallBackAndRememberVolume,
    ),
    row(
        NtStatus::STATUS_INVALID_TOKEN,
        "STATUS_INVALID_TOKEN",
        315,
        "ERROR_INVALID_TOKEN",
        "the token is unknown, expired or was invalidated",
        "the token's lifetime ran out; the source range was written after the token was made; the token was forged, altered or comes from another array (the copy engine treats a first write at offset 0 failing this way as an unreachable volume pair)",
        R::FallBackForFile,
    ),
    row(
        NtStatus::STATUS_DEVICE_INSUFFICIENT_RESOURCES,
        "STATUS_DEVICE_INSUFFICIENT_RESOURCES",
        322,
        "ERROR_DEVICE_NO_RESOURCES",
        "the storage device ran out of offload resources (storage status, not documented for the FSCTLs)",
        "too many live tokens or concurrent copy operations on the array",
        R::FallBackForFile,
    ),
    row(
        NtStatus::STATUS_INVALID_OFFSET_ALIGNMENT,
        "STATUS_INVALID_OFFSET_ALIGNMENT",
        327,
        "ERROR_OFFSET_ALIGNMENT_VIOLATION",
        "the storage rejected an offset alignment (storage status, not documented for the FSCTLs)",
        "the array's offload granularity is coarser than the logical sector size",
        R::FallBackForFile,
    ),
    row(
        NtStatus::STATUS_OPERATION_IN_PROGRESS,
        "STATUS_OPERATION_IN_PROGRESS",
        329,
        "ERROR_OPERATION_IN_PROGRESS",
        "an operation is still in progress with the device (storage status, not documented for the FSCTLs)",
        "the array is still processing a previous token operation",
        R::FallBackForFile,
    ),
    row(
        NtStatus::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED,
        "STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED",
        4440,
        "ERROR_OFFLOAD_READ_FLT_NOT_SUPPORTED",
        "a file system filter on the source volume has not opted in to offload read",
        "an attached minifilter or legacy filter lacks SupportedFeatures bit 0x1 (see `fltmc instances -v`, column SprtFtrs); FilterSupportedFeaturesMode = 1; a filter vetoes offload read by policy",
        R::FallBackAndRememberVolume,
    ),
    row(
        NtStatus::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED,
        "STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED",
        4441,
        "ERROR_OFFLOAD_WRITE_FLT_NOT_SUPPORTED",
        "a file system filter on the destination volume has not opted in to offload write",
        "an attached minifilter or legacy filter lacks SupportedFeatures bit 0x2 (see `fltmc instances -v`, column SprtFtrs); FilterSupportedFeaturesMode = 1; a filter vetoes offload write by policy",
        R::FallBackAndRememberVolume,
    ),
    row(
        NtStatus::STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED,
        "STATUS_OFFLOAD_READ_FILE_NOT_SUPPORTED",
        4442,
        "ERROR_OFFLOAD_READ_FILE_NOT_SUPPORTED",
        "offload read is not supported for this source file",
        "the source is compressed, encrypted (EFS), sparse, transacted (TxF), an NTFS metadata file, a directory or another non-data stream; also resident or deduplicated files",
        R::FallBackForFile,
    ),
    row(
        NtStatus::STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED,
        "STATUS_OFFLOAD_WRITE_FILE_NOT_SUPPORTED",
        4443,
        "ERROR_OFFLOAD_WRITE_FILE_NOT_SUPPORTED",
        "offload write is not supported for this destination file",
        "the destination is compressed, encrypted (EFS), sparse, transacted (TxF), an NTFS metadata file, a directory or another non-data stream",
        R::FallBackForFile,
    ),
    StatusInfo {
        status: NtStatus::STATUS_FLT_INTERNAL_ERROR,
        name: "STATUS_FLT_INTERNAL_ERROR",
        win32: None,
        win32_name: None,
        meaning: "FsRtlGetSupportedFeatures failed: the device object is not in a file-system stack",
        causes: "an offload request sent to a device that is not a mounted file system",
        reaction: R::FallBackAndRememberVolume,
    },
    StatusInfo {
        status: NtStatus::STATUS_FLT_VOLUME_NOT_FOUND,
        name: "STATUS_FLT_VOLUME_NOT_FOUND",
        win32: None,
        win32_name: None,
        meaning: "FsRtlGetSupportedFeatures failed: Filter Manager does not know the volume",
        causes: "the volume went away between open and the offload request",
        reaction: R::FallBackAndRememberVolume,
    },
];

impl NtStatus {
    /// Position of this status in [`STATUS_TABLE`], if it is there.
    #[must_use]
    pub fn table_index(self) -> Option<usize> {
        STATUS_TABLE.iter().position(|row| row.status == self)
    }

    /// `NT_SUCCESS`: severity success or informational.
    #[must_use]
    pub const fn is_success(self) -> bool {
        (self.0 as i32) >= 0
    }

    /// The table row of this status, if it is one odxflt knows.
    #[must_use]
    pub fn info(self) -> Option<&'static StatusInfo> {
        STATUS_TABLE.iter().find(|row| row.status == self)
    }

    /// Symbolic name, if known.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        self.info().map(|row| row.name)
    }

    /// `RtlNtStatusToDosError` for the statuses in the table.
    #[must_use]
    pub fn to_win32(self) -> Option<Win32Error> {
        self.info().and_then(|row| row.win32)
    }

    /// Looks up a status by its NTSTATUS name (case-insensitive, with or without `STATUS_`).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        let bare = strip_prefix_ignore_case(name, "STATUS_").unwrap_or(name);
        STATUS_TABLE
            .iter()
            .find(|row| {
                strip_prefix_ignore_case(row.name, "STATUS_")
                    .is_some_and(|n| n.eq_ignore_ascii_case(bare))
            })
            .map(|row| row.status)
    }
}

impl Win32Error {
    /// Every table row whose status maps to this Win32 code (several NTSTATUS values can share
    /// one Win32 code, e.g. 5 ERROR_ACCESS_DENIED).
    pub fn statuses(self) -> impl Iterator<Item = &'static StatusInfo> {
        STATUS_TABLE
            .iter()
            .filter(move |row| row.win32 == Some(self))
    }

    /// Symbolic name, if known.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        self.statuses().find_map(|row| row.win32_name)
    }

    /// Looks up a Win32 code by name (case-insensitive, with or without `ERROR_`).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        let bare = strip_prefix_ignore_case(name, "ERROR_").unwrap_or(name);
        STATUS_TABLE.iter().find_map(|row| {
            let n = row.win32_name?;
            let n = strip_prefix_ignore_case(n, "ERROR_")?;
            n.eq_ignore_ascii_case(bare).then_some(row.win32).flatten()
        })
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

impl fmt::Debug for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name}({:#010x})", self.0),
            None => write!(f, "NtStatus({:#010x})", self.0),
        }
    }
}

impl fmt::Display for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{:#010X}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// odx-spec §3, column "Win32 via RtlNtStatusToDosError", row by row.
    #[test]
    fn ntstatus_to_win32_matches_the_spec_table() {
        let expected: &[(u32, u32)] = &[
            (0x0000_0000, 0),
            (0xC000_0010, 1),
            (0xC000_000D, 87),
            (0xC000_026E, 21),
            (0xC000_00BB, 50),
            (0xC000_A2A1, 4440),
            (0xC000_A2A2, 4441),
            (0xC000_A2A3, 4442),
            (0xC000_A2A4, 4443),
            (0xC000_0189, 19),
            (0xC000_0123, 5),
            (0xC000_0128, 6),
            (0xC000_0008, 6),
            (0xC000_0054, 33),
            (0xC000_0011, 38),
            (0xC000_00A2, 19),
            (0xC000_009A, 1450),
            (0xC000_0023, 122),
            (0xC000_0432, 1289),
            (0xC000_0463, 316),
            (0xC000_0464, 321),
            (0xC000_0465, 315),
            (0xC000_0022, 5),
            (0xC000_0476, 329),
            (0xC000_0474, 327),
            (0xC000_0468, 322),
        ];
        for &(status, win32) in expected {
            assert_eq!(
                NtStatus(status).to_win32(),
                Some(Win32Error(win32)),
                "{status:#x}"
            );
        }
        assert_eq!(NtStatus::STATUS_FLT_VOLUME_NOT_FOUND.to_win32(), None);
        assert_eq!(NtStatus::STATUS_FLT_INTERNAL_ERROR.to_win32(), None);
    }

    #[test]
    fn table_is_sorted_unique_and_names_match_constants() {
        assert_eq!(STATUS_TABLE.len(), STATUS_COUNT);
        assert_eq!(NtStatus::STATUS_SUCCESS.table_index(), Some(0));
        assert_eq!(NtStatus::STATUS_REVISION_MISMATCH.table_index(), None);
        for pair in STATUS_TABLE.windows(2) {
            let [a, b] = pair else { unreachable!() };
            assert!(a.status.0 < b.status.0, "{} before {}", a.name, b.name);
        }
        assert_eq!(
            NtStatus::from_name("STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED"),
            Some(NtStatus(0xC000_A2A1))
        );
        assert_eq!(
            NtStatus::from_name("offload_write_file_not_supported"),
            Some(NtStatus(0xC000_A2A4))
        );
        assert_eq!(NtStatus::from_name("STATUS_DISMOUNTED_VOLUME"), None);
        for row in STATUS_TABLE {
            assert_eq!(NtStatus::from_name(row.name), Some(row.status));
            assert!(!row.meaning.is_empty() && !row.causes.is_empty());
        }
    }

    #[test]
    fn win32_reverse_lookup_by_number_and_name() {
        assert_eq!(
            Win32Error(4440).name(),
            Some("ERROR_OFFLOAD_READ_FLT_NOT_SUPPORTED")
        );
        assert_eq!(
            Win32Error::from_name("ERROR_OFFLOAD_WRITE_FLT_NOT_SUPPORTED"),
            Some(Win32Error(4441))
        );
        assert_eq!(
            Win32Error::from_name("error_handle_eof"),
            Some(Win32Error(38))
        );
        let shared: std::vec::Vec<_> = Win32Error(5).statuses().map(|r| r.status).collect();
        assert_eq!(
            shared,
            [
                NtStatus::STATUS_ACCESS_DENIED,
                NtStatus::STATUS_FILE_DELETED
            ]
        );
        assert_eq!(Win32Error(9999).name(), None);
    }

    #[test]
    fn success_is_nt_success_and_errors_are_not() {
        assert!(NtStatus::STATUS_SUCCESS.is_success());
        assert!(!NtStatus::STATUS_INVALID_TOKEN.is_success());
        assert_eq!(
            std::format!("{:?}", NtStatus::STATUS_END_OF_FILE),
            "STATUS_END_OF_FILE(0xc0000011)"
        );
        assert_eq!(std::format!("{}", NtStatus(0xC000_1234)), "0xC0001234");
    }
}
