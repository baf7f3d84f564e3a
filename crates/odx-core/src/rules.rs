//! Where the sources disagree (odx-spec §8), the choice is made here, once. docs/validation.md
//! explains each choice; change a field of [`Rules::DOCUMENTED`] to change the behaviour
//! everywhere (driver, simulator, tool).

use crate::status::NtStatus;

/// Whether `CopyLength` must be a multiple of the logical sector size (conflict C-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LengthAlignment {
    /// MS-FSA: always, no exception.
    Strict,
    /// WDK structure pages: unless `FileOffset + CopyLength` equals end of file.
    ExceptAtEndOfFile,
}

/// Which files are too small to offload (conflict C-6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TinyFile {
    /// No size rule (MS-FSA has none).
    NoRule,
    /// MS-FSCC: a file smaller than one logical sector is `STATUS_INVALID_PARAMETER`.
    BelowSector,
    /// WDK 2017 pages: a file smaller than `PAGE_SIZE` (4096) is `STATUS_INVALID_PARAMETER`.
    BelowPage,
}

/// `PAGE_SIZE` on x86/x64/ARM64 Windows.
pub const PAGE_SIZE: u64 = 4096;

/// The conflict choices, gathered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// C-5: status for an input or output buffer shorter than the structure.
    pub short_buffer: NtStatus,
    /// C-3: `CopyLength` alignment.
    pub copy_length_alignment: LengthAlignment,
    /// C-4: status for an offload write whose `FileOffset` is beyond valid data length.
    pub write_beyond_vdl: NtStatus,
    /// C-6: the small-file rule.
    pub tiny_file: TinyFile,
    /// C-10: status for an offload write on a dismounted volume (reads always get
    /// `STATUS_VOLUME_DISMOUNTED`; the WDK write page also lists `STATUS_TOO_LATE`).
    pub dismounted_write: NtStatus,
    /// Status when the layer below answers success with an output that breaks the contract
    /// (a length above what was asked, too short an output): refusing keeps a broken lower layer
    /// from making a copy engine skip data it never copied.
    pub broken_lower_contract: NtStatus,
}

impl Rules {
    /// odxflt's choices; see docs/validation.md.
    pub const DOCUMENTED: Self = Self {
        short_buffer: NtStatus::STATUS_BUFFER_TOO_SMALL,
        copy_length_alignment: LengthAlignment::Strict,
        write_beyond_vdl: NtStatus::STATUS_INVALID_PARAMETER,
        tiny_file: TinyFile::BelowSector,
        dismounted_write: NtStatus::STATUS_VOLUME_DISMOUNTED,
        broken_lower_contract: NtStatus::STATUS_NOT_SUPPORTED,
    };
}

impl Default for Rules {
    fn default() -> Self {
        Self::DOCUMENTED
    }
}
