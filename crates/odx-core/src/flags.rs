//! Flag sets. Values that exist on Windows carry the SDK's bit values, so the driver can hand the
//! raw field to `from_bits_retain` and the simulator can print what Windows would print.

use bitflags::bitflags;

bitflags! {
    /// `FILE_ATTRIBUTE_*` bits (`FILE_BASIC_INFORMATION.FileAttributes`). Only the ones that decide
    /// offload are named; others are kept by `from_bits_retain` and ignored.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct FileAttributes: u32 {
        /// `FILE_ATTRIBUTE_DIRECTORY`.
        const DIRECTORY = 0x0000_0010;
        /// `FILE_ATTRIBUTE_SPARSE_FILE`.
        const SPARSE_FILE = 0x0000_0200;
        /// `FILE_ATTRIBUTE_COMPRESSED`.
        const COMPRESSED = 0x0000_0800;
        /// `FILE_ATTRIBUTE_ENCRYPTED` (EFS).
        const ENCRYPTED = 0x0000_4000;
    }
}

impl FileAttributes {
    /// The attributes with which NTFS refuses offload for the stream.
    pub const OFFLOAD_REFUSING: Self = Self::DIRECTORY
        .union(Self::SPARSE_FILE)
        .union(Self::COMPRESSED)
        .union(Self::ENCRYPTED);
}

bitflags! {
    /// Facts about a stream that are not attributes.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct StreamMarkers: u32 {
        /// The file object is bound to a TxF transaction.
        const TRANSACTED = 0x0000_0001;
        /// An NTFS metadata file (`$Mft`, `$LogFile`, …) or another non-user file.
        const METADATA = 0x0000_0002;
        /// The stream is not a data stream (for example a named non-`$DATA` attribute).
        const NON_DATA_STREAM = 0x0000_0004;
    }
}

bitflags! {
    /// Volume state as seen by the filter.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct VolumeFlags: u32 {
        /// Mounted read-only or write-protected media.
        const READ_ONLY = 0x0000_0001;
        /// The volume has been dismounted.
        const DISMOUNTED = 0x0000_0002;
        /// MS-FSA `Volume.IsOffloadReadSupported`: cleared when the storage answered that it cannot
        /// offload, sticky until remount.
        const OFFLOAD_READ_SUPPORTED = 0x0000_0004;
        /// MS-FSA `Volume.IsOffloadWriteSupported`.
        const OFFLOAD_WRITE_SUPPORTED = 0x0000_0008;
    }
}

bitflags! {
    /// `SUPPORTED_FS_FEATURES_*`: a filter's `SupportedFeatures` registry value.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct SupportedFeatures: u32 {
        /// `SUPPORTED_FS_FEATURES_OFFLOAD_READ` (Windows 8).
        const OFFLOAD_READ = 0x0000_0001;
        /// `SUPPORTED_FS_FEATURES_OFFLOAD_WRITE` (Windows 8).
        const OFFLOAD_WRITE = 0x0000_0002;
        /// `SUPPORTED_FS_FEATURES_QUERY_OPEN` (Windows 10 1703).
        const QUERY_OPEN = 0x0000_0004;
        /// `SUPPORTED_FS_FEATURES_BYPASS_IO` (Windows 11).
        const BYPASS_IO = 0x0000_0008;
    }
}

impl SupportedFeatures {
    /// What odxflt declares in its INF: both offload bits (0x3).
    pub const ODXFLT: Self = Self::OFFLOAD_READ.union(Self::OFFLOAD_WRITE);
}

bitflags! {
    /// `FSCTL_OFFLOAD_READ_OUTPUT.Flags`. Only bit 0 is defined by the SDK header and MS-FSCC
    /// (conflict C-1: the WDK page's other values exist in no header).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct OffloadReadFlags: u32 {
        /// `OFFLOAD_READ_FLAG_ALL_ZERO_BEYOND_CURRENT_RANGE`: data after the returned range, up to
        /// end of file, is logically zero.
        const ALL_ZERO_BEYOND_CURRENT_RANGE = 0x0000_0001;
    }
}

bitflags! {
    /// Granted access of a handle, `ACCESS_MASK` bits that matter for offload.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct AccessMask: u32 {
        /// `FILE_READ_DATA` (= `FILE_READ_ACCESS` in control codes).
        const READ_DATA = 0x0000_0001;
        /// `FILE_WRITE_DATA` (= `FILE_WRITE_ACCESS` in control codes).
        const WRITE_DATA = 0x0000_0002;
        /// `FILE_APPEND_DATA`.
        const APPEND_DATA = 0x0000_0004;
    }
}

bitflags! {
    /// `STORAGE_OFFLOAD_WRITE_OUTPUT.OffloadWriteFlags` (storage layer).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct StorageOffloadWriteFlags: u32 {
        /// `STORAGE_OFFLOAD_WRITE_RANGE_TRUNCATED`.
        const RANGE_TRUNCATED = 0x0001;
        /// `STORAGE_OFFLOAD_TOKEN_INVALID`.
        const TOKEN_INVALID = 0x0002;
    }
}
