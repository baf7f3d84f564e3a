//! The Windows copy engine's offload algorithm (odx-spec §6.1), generic over the five operations
//! it needs ([`CopyOps`]), so the same code drives the simulated stack ([`StackCopy`]) and, later,
//! real Windows handles.
//!
//! 1. Pre-size the destination (`SetEndOfFile`): an offload write never starts at or beyond end
//!    of file.
//! 2. `FSCTL_OFFLOAD_READ` the rest of the source (length rounded up to a sector; truncation at
//!    end of file is the storage's job) → token and `TransferLength`.
//! 3. `FSCTL_OFFLOAD_WRITE` the token's data in chunks (256 MiB by default); a shorter
//!    `LengthWritten` is a truncation: continue at the returned length.
//! 4. Continue with the next offload read at the end of what the token covered; if the read set
//!    `ALL_ZERO_BEYOND_CURRENT_RANGE`, the rest of the (pre-sized, empty) destination is already
//!    zero.
//! 5. Any failure: copy the rest with ordinary reads and writes from where offload stopped,
//!    through a bounded buffer, and report why.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use odx_core::NtStatus;
use odx_core::flags::{AccessMask, OffloadReadFlags};
use odx_core::wire::StorageOffloadToken;

use crate::stack::{HandleId, Stack};
use crate::store::{COPY_BUFFER, DataStore, FileId};
use crate::volume::SimError;

/// An offload read's answer, as the copy engine uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenAnswer {
    /// Bytes the token stands for.
    pub transfer_length: u64,
    /// The data after the token's range, up to end of file, is zero.
    pub all_zero_beyond: bool,
    /// The token.
    pub token: StorageOffloadToken,
}

/// What the copy engine needs from a source/destination pair.
pub trait CopyOps {
    /// Source length in bytes.
    ///
    /// # Errors
    /// The source cannot be queried.
    fn source_len(&mut self) -> io::Result<u64>;
    /// Logical sector size of the volumes (offload lengths are multiples of it).
    fn sector_size(&self) -> u64;
    /// `SetEndOfFile` on the destination.
    ///
    /// # Errors
    /// The destination cannot be resized.
    fn set_dest_len(&mut self, len: u64) -> io::Result<()>;
    /// `FSCTL_OFFLOAD_READ` on the source.
    ///
    /// # Errors
    /// The final NTSTATUS of a failed request.
    fn offload_read(&mut self, offset: u64, length: u64) -> Result<TokenAnswer, NtStatus>;
    /// `FSCTL_OFFLOAD_WRITE` on the destination; returns `LengthWritten`.
    ///
    /// # Errors
    /// The final NTSTATUS of a failed request.
    fn offload_write(
        &mut self,
        offset: u64,
        length: u64,
        transfer_offset: u64,
        token: &StorageOffloadToken,
    ) -> Result<u64, NtStatus>;
    /// Ordinary read of the source.
    ///
    /// # Errors
    /// The read failed.
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Ordinary write of the destination.
    ///
    /// # Errors
    /// The write failed.
    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
}

/// Copy engine settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyOptions {
    /// Bytes per offload write (CopyFileEx: 256 MiB).
    pub chunk: u64,
    /// Do not try offload (`COPY_FILE_NO_OFFLOAD`, robocopy `/NOOFFLOAD`).
    pub no_offload: bool,
    /// Files smaller than this are copied the classic way (Windows: 256 KiB).
    pub min_offload_size: u64,
    /// `TokenTimeToLive` for offload reads (0 = the storage's default).
    pub ttl_ms: u32,
}

/// CopyFileEx's offload write chunk.
pub const DEFAULT_CHUNK: u64 = 256 * 1024 * 1024;
/// The size under which the Windows copy engine does not try offload.
pub const MIN_OFFLOAD_SIZE: u64 = 256 * 1024;

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            chunk: DEFAULT_CHUNK,
            no_offload: false,
            min_offload_size: MIN_OFFLOAD_SIZE,
            ttl_ms: 0,
        }
    }
}

/// Why (part of) a copy went the classic way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackCause {
    /// Offload was switched off by the caller.
    Disabled,
    /// The file is smaller than [`CopyOptions::min_offload_size`].
    SmallFile,
    /// `FSCTL_OFFLOAD_READ` failed with this status.
    ReadFailed(NtStatus),
    /// `FSCTL_OFFLOAD_WRITE` failed with this status.
    WriteFailed(NtStatus),
    /// An offload step succeeded without moving anything.
    NoProgress,
}

impl FallbackCause {
    /// The status involved, if any.
    #[must_use]
    pub const fn status(&self) -> Option<NtStatus> {
        match self {
            Self::ReadFailed(s) | Self::WriteFailed(s) => Some(*s),
            Self::Disabled | Self::SmallFile | Self::NoProgress => None,
        }
    }
}

impl fmt::Display for FallbackCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disabled => f.write_str("offload disabled (--no-offload)"),
            Self::SmallFile => write!(
                f,
                "file smaller than the offload minimum (copy engines copy small files the classic way)"
            ),
            Self::ReadFailed(s) => write!(f, "FSCTL_OFFLOAD_READ failed with {s}"),
            Self::WriteFailed(s) => write!(f, "FSCTL_OFFLOAD_WRITE failed with {s}"),
            Self::NoProgress => f.write_str("an offload step returned 0 bytes"),
        }
    }
}

/// What a copy did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CopyReport {
    /// Source length.
    pub total_bytes: u64,
    /// Bytes written by offload writes.
    pub offloaded_bytes: u64,
    /// Bytes not transferred because the offload read said they are zero (the pre-sized
    /// destination already reads zero there).
    pub zero_bytes: u64,
    /// Bytes copied with ordinary reads and writes.
    pub fallback_bytes: u64,
    /// Where the fallback started.
    pub fallback_at: Option<u64>,
    /// Why there was a fallback.
    pub fallback: Option<FallbackCause>,
    /// Offload reads issued (successful).
    pub offload_reads: u32,
    /// Offload writes issued (successful).
    pub offload_writes: u32,
    /// Offload reads answered with fewer bytes than asked.
    pub truncated_reads: u32,
    /// Offload writes answered with fewer bytes than asked.
    pub truncated_writes: u32,
    /// Wall time.
    pub elapsed: Duration,
}

impl CopyReport {
    /// Share of the file handled by offload (written or known zero), 0..=100.
    #[must_use]
    pub fn offloaded_percent(&self) -> f64 {
        if self.total_bytes == 0 {
            return 0.0;
        }
        (self.offloaded_bytes + self.zero_bytes) as f64 * 100.0 / self.total_bytes as f64
    }

    /// Bytes per second over the wall time.
    #[must_use]
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs <= 0.0 {
            0.0
        } else {
            self.total_bytes as f64 / secs
        }
    }
}

fn round_up(value: u64, sector: u64) -> u64 {
    value.div_ceil(sector).saturating_mul(sector)
}

/// Copies the source to the destination; `progress` gets the bytes done so far.
///
/// # Errors
/// Only when the classic path fails too (or the sizes cannot be queried/set).
pub fn copy<O: CopyOps + ?Sized>(
    ops: &mut O,
    options: &CopyOptions,
    progress: &mut dyn FnMut(u64),
) -> io::Result<CopyReport> {
    let started = Instant::now();
    let total = ops.source_len()?;
    ops.set_dest_len(0)?;
    ops.set_dest_len(total)?;
    let sector = ops.sector_size().max(1);
    let chunk = (options.chunk / sector).max(1) * sector;
    let mut report = CopyReport {
        total_bytes: total,
        ..CopyReport::default()
    };
    let mut pos = 0u64;
    let cause = if options.no_offload {
        Some(FallbackCause::Disabled)
    } else if total < options.min_offload_size {
        Some(FallbackCause::SmallFile)
    } else {
        offload_loop(ops, total, sector, chunk, &mut pos, &mut report, progress)
    };
    if pos < total {
        report.fallback = cause;
        report.fallback_at = Some(pos);
        report.fallback_bytes = classic_copy(ops, pos, total, progress)?;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

fn offload_loop<O: CopyOps + ?Sized>(
    ops: &mut O,
    total: u64,
    sector: u64,
    chunk: u64,
    pos: &mut u64,
    report: &mut CopyReport,
    progress: &mut dyn FnMut(u64),
) -> Option<FallbackCause> {
    while *pos < total {
        let want = round_up(total - *pos, sector);
        let answer = match ops.offload_read(*pos, want) {
            Ok(a) if a.transfer_length == 0 => return Some(FallbackCause::NoProgress),
            Ok(a) => a,
            Err(status) => return Some(FallbackCause::ReadFailed(status)),
        };
        report.offload_reads += 1;
        if answer.transfer_length < want {
            report.truncated_reads += 1;
        }
        let mut t = 0u64;
        while t < answer.transfer_length && *pos + t < total {
            let len = chunk.min(answer.transfer_length - t);
            match ops.offload_write(*pos + t, len, t, &answer.token) {
                Ok(0) => {
                    advance(pos, t, total, report, progress);
                    return Some(FallbackCause::NoProgress);
                }
                Ok(written) => {
                    report.offload_writes += 1;
                    if written < len {
                        report.truncated_writes += 1;
                    }
                    t += written;
                    progress((*pos + t).min(total));
                }
                Err(status) => {
                    advance(pos, t, total, report, progress);
                    return Some(FallbackCause::WriteFailed(status));
                }
            }
        }
        advance(pos, t, total, report, progress);
        if answer.all_zero_beyond && t >= answer.transfer_length && *pos < total {
            report.zero_bytes = total - *pos;
            *pos = total;
            progress(total);
        }
    }
    None
}

fn advance(
    pos: &mut u64,
    t: u64,
    total: u64,
    report: &mut CopyReport,
    progress: &mut dyn FnMut(u64),
) {
    let done = t.min(total - *pos);
    report.offloaded_bytes += done;
    *pos += done;
    progress(*pos);
}

fn classic_copy<O: CopyOps + ?Sized>(
    ops: &mut O,
    from: u64,
    total: u64,
    progress: &mut dyn FnMut(u64),
) -> io::Result<u64> {
    let mut buf =
        vec![0u8; usize::try_from((total - from).min(COPY_BUFFER as u64)).unwrap_or(COPY_BUFFER)];
    let mut pos = from;
    while pos < total {
        let want = usize::try_from((total - pos).min(buf.len() as u64)).unwrap_or(buf.len());
        let chunk = buf.get_mut(..want).unwrap_or_default();
        let n = ops.read(pos, chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the source shrank during the copy",
            ));
        }
        ops.write(pos, chunk.get(..n).unwrap_or_default())?;
        pos += n as u64;
        progress(pos);
    }
    Ok(total - from)
}

/// A status as an I/O error (plain reads and writes of the simulated stack).
fn status_error(what: &str, status: NtStatus) -> io::Error {
    io::Error::other(format!("{what} failed with {status}"))
}

/// [`CopyOps`] over two handles of a simulated [`Stack`].
#[derive(Debug)]
pub struct StackCopy<'a, S> {
    stack: &'a mut Stack<S>,
    src: HandleId,
    dst: HandleId,
}

impl<'a, S: DataStore> StackCopy<'a, S> {
    /// Opens the source for read and the destination for write on `stack`.
    ///
    /// # Errors
    /// Unknown files.
    pub fn open(stack: &'a mut Stack<S>, src: FileId, dst: FileId) -> Result<Self, SimError> {
        let src = stack.open(src, AccessMask::READ_DATA)?;
        let dst = stack.open(dst, AccessMask::READ_DATA | AccessMask::WRITE_DATA)?;
        Ok(Self { stack, src, dst })
    }
}

impl<S: DataStore> CopyOps for StackCopy<'_, S> {
    fn source_len(&mut self) -> io::Result<u64> {
        self.stack
            .end_of_file(self.src)
            .map_err(|s| status_error("query source size", s))
    }

    fn sector_size(&self) -> u64 {
        u64::from(self.stack.volume().config().sector_size.get())
    }

    fn set_dest_len(&mut self, len: u64) -> io::Result<()> {
        self.stack
            .set_end_of_file(self.dst, len)
            .map_err(|s| status_error("SetEndOfFile", s))
    }

    fn offload_read(&mut self, offset: u64, length: u64) -> Result<TokenAnswer, NtStatus> {
        let r = self.stack.offload_read(self.src, offset, length, 0)?;
        Ok(TokenAnswer {
            transfer_length: r.transfer_length,
            all_zero_beyond: r
                .flags
                .contains(OffloadReadFlags::ALL_ZERO_BEYOND_CURRENT_RANGE),
            token: r.token,
        })
    }

    fn offload_write(
        &mut self,
        offset: u64,
        length: u64,
        transfer_offset: u64,
        token: &StorageOffloadToken,
    ) -> Result<u64, NtStatus> {
        self.stack
            .offload_write(self.dst, offset, length, transfer_offset, token)
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.stack
            .read(self.src, offset, buf)
            .map_err(|s| status_error("ReadFile", s))
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.stack
            .write(self.dst, offset, data)
            .map_err(|s| status_error("WriteFile", s))
    }
}
