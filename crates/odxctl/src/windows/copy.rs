//! The copy engine (`odx_sim::copy_engine::copy`, the same code the simulated backend runs) over
//! two Windows file handles: `FSCTL_OFFLOAD_READ` / `FSCTL_OFFLOAD_WRITE` through
//! `DeviceIoControl`, `SetFileInformationByHandle(FileEndOfFileInfo)`, `ReadFile` / `WriteFile`
//! at explicit offsets, the logical sector size from `FileStorageInfo`. The summary counts the
//! bytes `WriteFile` wrote from odxctl's buffer (every classic byte); offload writes move their
//! data below the file system and are counted by the copy engine.

use std::io::{self, Write};
use std::mem::size_of;
use std::ptr::{null, null_mut};

use odx_core::flags::OffloadReadFlags;
use odx_core::wire::{
    OffloadReadInput, OffloadReadOutput, OffloadWriteInput, OffloadWriteOutput,
    StorageOffloadToken, WireStruct,
};
use odx_core::{FSCTL_OFFLOAD_READ, FSCTL_OFFLOAD_WRITE, NtStatus};
use odx_sim::copy_engine::{CopyOps, CopyOptions, TokenAnswer, copy};
use windows_sys::Win32::Foundation::{GENERIC_READ, GENERIC_WRITE};
use windows_sys::Win32::Storage::FileSystem::{
    CREATE_ALWAYS, CreateFileW, FILE_ATTRIBUTE_NORMAL, FILE_END_OF_FILE_INFO, FILE_SHARE_READ,
    FILE_STORAGE_INFO, FileEndOfFileInfo, FileStorageInfo, GetFileInformationByHandleEx,
    GetFileSizeEx, OPEN_EXISTING, ReadFile, SetFileInformationByHandle, WriteFile,
};
use windows_sys::Win32::System::IO::{DeviceIoControl, OVERLAPPED};

use super::{Handle, last_status, wide};
use crate::CmdResult;
use crate::copy_cmd::{CopyArgs, DataPath, emit};

/// [`CopyOps`] over a source and a destination handle.
#[derive(Debug)]
pub struct WinCopy {
    src: Handle,
    dst: Handle,
    sector: u64,
    /// Bytes `WriteFile` wrote from odxctl's buffer.
    through_buffer: u64,
}

fn open(path: &str, access: u32, share: u32, disposition: u32) -> io::Result<Handle> {
    let name = wide(path);
    // SAFETY: `name` is NUL-terminated and outlives the call; no security attributes or
    // template.
    let raw = unsafe {
        CreateFileW(
            name.as_ptr(),
            access,
            share,
            null(),
            disposition,
            FILE_ATTRIBUTE_NORMAL,
            null_mut(),
        )
    };
    Handle::checked(raw, path)
}

/// The logical sector size of the volume a handle is on (`FileStorageInfo`).
#[must_use]
pub fn logical_sector(handle: &Handle) -> Option<u32> {
    let mut info = FILE_STORAGE_INFO::default();
    let size = u32::try_from(size_of::<FILE_STORAGE_INFO>()).ok()?;
    // SAFETY: `info` is a FILE_STORAGE_INFO of `size` bytes; the handle is open.
    let ok = unsafe {
        GetFileInformationByHandleEx(handle.0, FileStorageInfo, (&raw mut info).cast(), size)
    };
    (ok != 0).then_some(info.LogicalBytesPerSector)
}

fn overlapped_at(offset: u64) -> OVERLAPPED {
    let mut o = OVERLAPPED::default();
    o.Anonymous.Anonymous.Offset = (offset & 0xFFFF_FFFF) as u32;
    o.Anonymous.Anonymous.OffsetHigh = (offset >> 32) as u32;
    o
}

impl WinCopy {
    /// Opens `src` for reading and creates (or truncates) `dst`.
    ///
    /// # Errors
    /// Either file cannot be opened.
    pub fn open(src: &str, dst: &str) -> io::Result<Self> {
        let src = open(src, GENERIC_READ, FILE_SHARE_READ, OPEN_EXISTING)?;
        let dst = open(dst, GENERIC_READ | GENERIC_WRITE, 0, CREATE_ALWAYS)?;
        let sector = logical_sector(&src)
            .into_iter()
            .chain(logical_sector(&dst))
            .max()
            .unwrap_or(512);
        Ok(Self {
            src,
            dst,
            sector: u64::from(sector),
            through_buffer: 0,
        })
    }

    /// Reads up to `buf.len()` bytes at `offset` of `handle` (0 at end of file).
    fn read_at(handle: &Handle, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut overlapped = overlapped_at(offset);
        let mut done = 0u32;
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        // SAFETY: the handle is open for synchronous reads; `buf` is valid for `len` bytes;
        // OVERLAPPED only carries the offset and lives for the call.
        let ok = unsafe { ReadFile(handle.0, buf.as_mut_ptr(), len, &mut done, &mut overlapped) };
        if ok == 0 {
            let err = io::Error::last_os_error();
            // ERROR_HANDLE_EOF: a read at end of file.
            if err.raw_os_error() == Some(38) {
                return Ok(0);
            }
            return Err(err);
        }
        Ok(usize::try_from(done).unwrap_or(0))
    }

    /// Whether the first `len` bytes of the destination equal the source's (both read back
    /// through `ReadFile`, 1 MiB at a time).
    ///
    /// # Errors
    /// A read fails.
    pub fn same_bytes(&self, len: u64) -> io::Result<bool> {
        const CHUNK: usize = 1 << 20;
        let (mut a, mut b) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
        let mut at = 0u64;
        while at < len {
            let want = usize::try_from((len - at).min(CHUNK as u64)).unwrap_or(CHUNK);
            let (a, b) = (&mut a[..want], &mut b[..want]);
            for (handle, buf) in [(&self.src, &mut *a), (&self.dst, &mut *b)] {
                let mut got = 0;
                while got < want {
                    let n = Self::read_at(handle, at + got as u64, &mut buf[got..])?;
                    if n == 0 {
                        return Ok(false);
                    }
                    got += n;
                }
            }
            if a != b {
                return Ok(false);
            }
            at += want as u64;
        }
        Ok(true)
    }

    fn fsctl(
        handle: &Handle,
        code: u32,
        input: &[u8],
        output: &mut [u8],
    ) -> Result<usize, NtStatus> {
        let mut returned = 0u32;
        let in_len = u32::try_from(input.len()).map_err(|_| NtStatus::STATUS_INVALID_PARAMETER)?;
        let out_len =
            u32::try_from(output.len()).map_err(|_| NtStatus::STATUS_INVALID_PARAMETER)?;
        // SAFETY: the handle is open for synchronous I/O; the buffers are valid for their
        // lengths for the whole call; `returned` is a valid out pointer; no OVERLAPPED.
        let ok = unsafe {
            DeviceIoControl(
                handle.0,
                code,
                input.as_ptr().cast(),
                in_len,
                output.as_mut_ptr().cast(),
                out_len,
                &mut returned,
                null_mut(),
            )
        };
        if ok == 0 {
            return Err(last_status());
        }
        Ok(usize::try_from(returned).unwrap_or(0))
    }
}

impl CopyOps for WinCopy {
    fn source_len(&mut self) -> io::Result<u64> {
        let mut size = 0i64;
        // SAFETY: the handle is open; `size` is a valid out pointer.
        if unsafe { GetFileSizeEx(self.src.0, &mut size) } == 0 {
            return Err(io::Error::last_os_error());
        }
        u64::try_from(size).map_err(|_| io::Error::other("negative file size"))
    }

    fn sector_size(&self) -> u64 {
        self.sector
    }

    fn set_dest_len(&mut self, len: u64) -> io::Result<()> {
        let info = FILE_END_OF_FILE_INFO {
            EndOfFile: i64::try_from(len).map_err(|_| io::Error::other("length too large"))?,
        };
        let size = u32::try_from(size_of::<FILE_END_OF_FILE_INFO>()).unwrap_or(8);
        // SAFETY: `info` is a FILE_END_OF_FILE_INFO of `size` bytes; the handle is open for
        // writing.
        let ok = unsafe {
            SetFileInformationByHandle(
                self.dst.0,
                FileEndOfFileInfo,
                (&raw const info).cast(),
                size,
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn offload_read(&mut self, offset: u64, length: u64) -> Result<TokenAnswer, NtStatus> {
        let input = OffloadReadInput::new(offset, length, 0);
        let mut in_bytes = [0u8; OffloadReadInput::SIZE];
        input
            .serialize_into(&mut in_bytes)
            .map_err(|_| NtStatus::STATUS_INVALID_PARAMETER)?;
        let mut out = [0u8; OffloadReadOutput::SIZE];
        let n = Self::fsctl(&self.src, FSCTL_OFFLOAD_READ, &in_bytes, &mut out)?;
        let output = OffloadReadOutput::parse(out.get(..n).unwrap_or_default())
            .map_err(|_| NtStatus::STATUS_BUFFER_TOO_SMALL)?;
        Ok(TokenAnswer {
            transfer_length: output.transfer_length.get(),
            all_zero_beyond: output
                .read_flags()
                .contains(OffloadReadFlags::ALL_ZERO_BEYOND_CURRENT_RANGE),
            token: output.token,
        })
    }

    fn offload_write(
        &mut self,
        offset: u64,
        length: u64,
        transfer_offset: u64,
        token: &StorageOffloadToken,
    ) -> Result<u64, NtStatus> {
        let input = OffloadWriteInput::new(offset, length, transfer_offset, *token);
        let mut in_bytes = [0u8; OffloadWriteInput::SIZE];
        input
            .serialize_into(&mut in_bytes)
            .map_err(|_| NtStatus::STATUS_INVALID_PARAMETER)?;
        let mut out = [0u8; OffloadWriteOutput::SIZE];
        let n = Self::fsctl(&self.dst, FSCTL_OFFLOAD_WRITE, &in_bytes, &mut out)?;
        OffloadWriteOutput::parse(out.get(..n).unwrap_or_default())
            .map(|o| o.length_written.get())
            .map_err(|_| NtStatus::STATUS_BUFFER_TOO_SMALL)
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        Self::read_at(&self.src, offset, buf)
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut at = 0usize;
        while at < data.len() {
            let rest = data.get(at..).unwrap_or_default();
            let mut overlapped = overlapped_at(offset + at as u64);
            let mut done = 0u32;
            let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
            // SAFETY: the handle is open for synchronous writes; `rest` is valid for `len`
            // bytes; OVERLAPPED only carries the offset and lives for the call.
            let ok =
                unsafe { WriteFile(self.dst.0, rest.as_ptr(), len, &mut done, &mut overlapped) };
            if ok == 0 {
                return Err(io::Error::last_os_error());
            }
            if done == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "WriteFile wrote nothing",
                ));
            }
            at += usize::try_from(done).unwrap_or(rest.len());
            self.through_buffer += u64::from(done);
        }
        Ok(())
    }
}

/// `odxctl copy SRC DST` on Windows: the copy engine over real handles.
///
/// # Errors
/// The files cannot be opened, or the classic path failed too.
pub fn run(out: &mut dyn Write, args: &CopyArgs, options: &CopyOptions, json: bool) -> CmdResult {
    let mut ops = WinCopy::open(&args.src, &args.dst)?;
    let report = copy(&mut ops, options, &mut |_| {}).map_err(|e| crate::Failure {
        code: 1,
        message: format!("copy failed: {e}"),
    })?;
    let verified = if args.verify {
        Some(ops.same_bytes(report.total_bytes)?)
    } else {
        None
    };
    emit(
        out,
        &args.src,
        &args.dst,
        DataPath::Windows {
            through_buffer: ops.through_buffer,
        },
        &report,
        verified,
        json,
    )?;
    Ok(if verified == Some(false) { 1 } else { 0 })
}
