//! Where the volume's bytes live. Two backends behind one trait: [`MemStore`] keeps a `Vec<u8>`
//! per file; [`HostStore`] keeps real files on the host and moves offloaded data inside the kernel
//! with `copy_file_range(2)`, so token data never passes through a user buffer.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
#[cfg(unix)]
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
#[cfg(windows)]
use windows_positional::FileExt;

/// Identifies a file of the simulated volume (also the token engine's `SourceId`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u64);

/// Bytes a bounded user-space copy moves at a time (fallback paths only).
pub const COPY_BUFFER: usize = 1024 * 1024;

/// How the bytes of an in-store copy moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CopyStats {
    /// Bytes moved without entering user space (`copy_file_range`, or an in-memory copy).
    pub in_kernel: u64,
    /// Bytes moved through a bounded user buffer because the kernel copy was unavailable.
    pub through_user_buffer: u64,
}

/// Totals of a store's data movement, for reports.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Offload copies.
    pub copies: CopyStats,
    /// Why the kernel copy was not used, the first time it failed (EXDEV, ENOSYS, …).
    pub kernel_copy_fallback: Option<String>,
}

/// The bytes of the volume's files. Offsets past a file's length read as zero.
pub trait DataStore {
    /// Short name for reports ("memory", "host-files").
    fn kind(&self) -> &'static str;
    /// Creates an empty file.
    ///
    /// # Errors
    /// I/O errors of the backend.
    fn create(&mut self, id: FileId, name: &str) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self, id: FileId) -> io::Result<u64>;
    /// Sets the length (extends with zeros or truncates).
    ///
    /// # Errors
    /// I/O errors of the backend.
    fn set_len(&mut self, id: FileId, len: u64) -> io::Result<()>;
    /// Reads up to `buf.len()` bytes at `offset`; returns the count (short at end of file).
    ///
    /// # Errors
    /// I/O errors of the backend.
    fn read_at(&self, id: FileId, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes all of `data` at `offset`, extending the file if needed.
    ///
    /// # Errors
    /// I/O errors of the backend.
    fn write_at(&mut self, id: FileId, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Writes `len` zero bytes at `offset` (within the current length).
    ///
    /// # Errors
    /// I/O errors of the backend.
    fn zero_range(&mut self, id: FileId, offset: u64, len: u64) -> io::Result<()>;
    /// Copies `len` bytes from `src` at `src_offset` to `dst` at `dst_offset` inside the store
    /// (the storage array's data movement). Both ranges lie within their files.
    ///
    /// # Errors
    /// I/O errors of the backend.
    fn copy_range(
        &mut self,
        src: FileId,
        src_offset: u64,
        dst: FileId,
        dst_offset: u64,
        len: u64,
    ) -> io::Result<CopyStats>;
    /// Data-movement totals.
    fn stats(&self) -> StoreStats;
}

fn not_found(id: FileId) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no file with id {}", id.0))
}

fn to_usize(value: u64) -> io::Result<usize> {
    usize::try_from(value)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))
}

/// In-memory files.
#[derive(Debug, Default)]
pub struct MemStore {
    files: HashMap<FileId, Vec<u8>>,
    stats: StoreStats,
}

/// The largest file the in-memory store accepts (a scenario asking for more is malformed, not an
/// out-of-memory abort).
pub const MEM_MAX_FILE: u64 = 1 << 30;

impl MemStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn file(&self, id: FileId) -> io::Result<&Vec<u8>> {
        self.files.get(&id).ok_or_else(|| not_found(id))
    }

    fn file_mut(&mut self, id: FileId) -> io::Result<&mut Vec<u8>> {
        self.files.get_mut(&id).ok_or_else(|| not_found(id))
    }
}

impl DataStore for MemStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn create(&mut self, id: FileId, _name: &str) -> io::Result<()> {
        self.files.insert(id, Vec::new());
        Ok(())
    }

    fn len(&self, id: FileId) -> io::Result<u64> {
        Ok(self.file(id)?.len() as u64)
    }

    fn set_len(&mut self, id: FileId, len: u64) -> io::Result<()> {
        if len > MEM_MAX_FILE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{len} bytes is more than the in-memory store holds per file ({MEM_MAX_FILE})"
                ),
            ));
        }
        let len = to_usize(len)?;
        self.file_mut(id)?.resize(len, 0);
        Ok(())
    }

    fn read_at(&self, id: FileId, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let data = self.file(id)?;
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        let Some(tail) = data.get(start..) else {
            return Ok(0);
        };
        let n = tail.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), tail.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }

    fn write_at(&mut self, id: FileId, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range overflows"))?;
        if end > self.len(id)? {
            self.set_len(id, end)?;
        }
        let start = to_usize(offset)?;
        let file = self.file_mut(id)?;
        if let Some(dst) = file.get_mut(start..start.saturating_add(data.len())) {
            dst.copy_from_slice(data);
        }
        Ok(())
    }

    fn zero_range(&mut self, id: FileId, offset: u64, len: u64) -> io::Result<()> {
        let (start, len) = (to_usize(offset)?, to_usize(len)?);
        let file = self.file_mut(id)?;
        if let Some(dst) = file.get_mut(start..start.saturating_add(len)) {
            dst.fill(0);
        }
        Ok(())
    }

    fn copy_range(
        &mut self,
        src: FileId,
        src_offset: u64,
        dst: FileId,
        dst_offset: u64,
        len: u64,
    ) -> io::Result<CopyStats> {
        let (s, d, n) = (to_usize(src_offset)?, to_usize(dst_offset)?, to_usize(len)?);
        let bad = || io::Error::new(io::ErrorKind::InvalidInput, "copy range outside the file");
        if src == dst {
            let file = self.file_mut(src)?;
            if s.saturating_add(n) > file.len() || d.saturating_add(n) > file.len() {
                return Err(bad());
            }
            file.copy_within(s..s.saturating_add(n), d);
        } else {
            let chunk = self
                .file(src)?
                .get(s..s.saturating_add(n))
                .ok_or_else(bad)?
                .to_vec();
            self.file_mut(dst)?
                .get_mut(d..d.saturating_add(n))
                .ok_or_else(bad)?
                .copy_from_slice(&chunk);
        }
        let stats = CopyStats {
            in_kernel: len,
            through_user_buffer: 0,
        };
        self.stats.copies.in_kernel = self.stats.copies.in_kernel.saturating_add(len);
        Ok(stats)
    }

    fn stats(&self) -> StoreStats {
        self.stats.clone()
    }
}

/// Real files on the host.
#[derive(Debug, Default)]
pub struct HostStore {
    dir: Option<PathBuf>,
    files: HashMap<FileId, (PathBuf, File)>,
    stats: StoreStats,
    kernel_copy_disabled: bool,
}

impl HostStore {
    /// A store whose [`DataStore::create`] makes files named after the simulated file inside `dir`.
    #[must_use]
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            dir: Some(dir.to_path_buf()),
            ..Self::default()
        }
    }

    /// A store of explicitly attached paths ([`HostStore::attach`]).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Attaches an existing host file (opened read-only when `writable` is false).
    ///
    /// # Errors
    /// The open error, naming the path.
    pub fn attach(&mut self, id: FileId, path: &Path, writable: bool) -> io::Result<()> {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
            })?;
        self.files.insert(id, (path.to_path_buf(), file));
        Ok(())
    }

    /// Creates (or truncates) a host file at `path` and attaches it.
    ///
    /// # Errors
    /// The create error, naming the path.
    pub fn create_at(&mut self, id: FileId, path: &Path) -> io::Result<()> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display()))
            })?;
        self.files.insert(id, (path.to_path_buf(), file));
        Ok(())
    }

    /// The host path of a file.
    #[must_use]
    pub fn path(&self, id: FileId) -> Option<&Path> {
        self.files.get(&id).map(|(p, _)| p.as_path())
    }

    fn file(&self, id: FileId) -> io::Result<&File> {
        self.files
            .get(&id)
            .map(|(_, f)| f)
            .ok_or_else(|| not_found(id))
    }

    /// Copies through a bounded buffer; handles overlapping ranges of one file by copying
    /// backwards when the destination lies after the source.
    fn copy_buffered(
        &self,
        src: FileId,
        src_offset: u64,
        dst: FileId,
        dst_offset: u64,
        len: u64,
    ) -> io::Result<()> {
        let (from, to) = (self.file(src)?, self.file(dst)?);
        let mut buf = vec![0u8; COPY_BUFFER.min(to_usize(len)?.max(1))];
        let backwards = src == dst && dst_offset > src_offset;
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(buf.len() as u64);
            let at = if backwards { len - done - n } else { done };
            let chunk = buf.get_mut(..to_usize(n)?).unwrap_or_default();
            from.read_exact_at(chunk, src_offset + at)?;
            to.write_all_at(chunk, dst_offset + at)?;
            done += n;
        }
        Ok(())
    }

    /// `copy_file_range(2)` until `len` bytes moved. `Ok(false)` when the kernel cannot do it
    /// for these files (EXDEV, ENOSYS, EOPNOTSUPP, EINVAL before any byte moved).
    #[cfg(not(target_os = "linux"))]
    #[allow(clippy::unused_self, clippy::unnecessary_wraps)]
    fn copy_in_kernel(
        &mut self,
        _src: FileId,
        _src_offset: u64,
        _dst: FileId,
        _dst_offset: u64,
        _len: u64,
    ) -> io::Result<Option<String>> {
        Ok(Some("copy_file_range(2) exists on Linux only".to_owned()))
    }

    #[cfg(target_os = "linux")]
    fn copy_in_kernel(
        &mut self,
        src: FileId,
        src_offset: u64,
        dst: FileId,
        dst_offset: u64,
        len: u64,
    ) -> io::Result<Option<String>> {
        use std::os::fd::AsRawFd;
        let (from, to) = (self.file(src)?.as_raw_fd(), self.file(dst)?.as_raw_fd());
        let to_off = |v: u64| {
            libc::loff_t::try_from(v)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))
        };
        let mut off_in = to_off(src_offset)?;
        let mut off_out = to_off(dst_offset)?;
        let mut left = len;
        while left > 0 {
            let want = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
            // SAFETY: `from` and `to` are open descriptors owned by `self.files` for the whole
            // call; `off_in`/`off_out` are valid, exclusively borrowed `loff_t` locals.
            let n = unsafe { libc::copy_file_range(from, &mut off_in, to, &mut off_out, want, 0) };
            if n < 0 {
                let err = io::Error::last_os_error();
                let code = err.raw_os_error().unwrap_or(0);
                let unsupported = [libc::EXDEV, libc::ENOSYS, libc::EOPNOTSUPP, libc::EINVAL];
                if left == len && unsupported.contains(&code) {
                    return Ok(Some(format!("copy_file_range failed ({err})")));
                }
                if code == libc::EINTR {
                    continue;
                }
                return Err(err);
            }
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "copy_file_range reached the end of the source",
                ));
            }
            left = left.saturating_sub(n as u64);
        }
        Ok(None)
    }
}

impl DataStore for HostStore {
    fn kind(&self) -> &'static str {
        "host-files"
    }

    fn create(&mut self, id: FileId, name: &str) -> io::Result<()> {
        let dir = self.dir.clone().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "this host store has no directory",
            )
        })?;
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.create_at(id, &dir.join(format!("{}-{safe}", id.0)))
    }

    fn len(&self, id: FileId) -> io::Result<u64> {
        Ok(self.file(id)?.metadata()?.len())
    }

    fn set_len(&mut self, id: FileId, len: u64) -> io::Result<()> {
        self.file(id)?.set_len(len)
    }

    fn read_at(&self, id: FileId, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let file = self.file(id)?;
        let mut got = 0;
        while got < buf.len() {
            let rest = buf.get_mut(got..).unwrap_or_default();
            match file.read_at(rest, offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }

    fn write_at(&mut self, id: FileId, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file(id)?.write_all_at(data, offset)
    }

    fn zero_range(&mut self, id: FileId, offset: u64, len: u64) -> io::Result<()> {
        let file = self.file(id)?;
        let zeros = vec![0u8; COPY_BUFFER.min(to_usize(len)?.max(1))];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(zeros.len() as u64);
            file.write_all_at(zeros.get(..to_usize(n)?).unwrap_or_default(), offset + done)?;
            done += n;
        }
        Ok(())
    }

    fn copy_range(
        &mut self,
        src: FileId,
        src_offset: u64,
        dst: FileId,
        dst_offset: u64,
        len: u64,
    ) -> io::Result<CopyStats> {
        let overlapping = src == dst
            && src_offset < dst_offset.saturating_add(len)
            && dst_offset < src_offset.saturating_add(len);
        let reason = if overlapping {
            Some("source and destination ranges overlap in one file".to_owned())
        } else if self.kernel_copy_disabled {
            Some(String::new())
        } else {
            self.copy_in_kernel(src, src_offset, dst, dst_offset, len)?
        };
        let stats = match reason {
            None => CopyStats {
                in_kernel: len,
                through_user_buffer: 0,
            },
            Some(why) => {
                if !why.is_empty() && !overlapping {
                    self.kernel_copy_disabled = true;
                }
                if self.stats.kernel_copy_fallback.is_none() && !why.is_empty() {
                    self.stats.kernel_copy_fallback = Some(why);
                }
                self.copy_buffered(src, src_offset, dst, dst_offset, len)?;
                CopyStats {
                    in_kernel: 0,
                    through_user_buffer: len,
                }
            }
        };
        self.stats.copies.in_kernel += stats.in_kernel;
        self.stats.copies.through_user_buffer += stats.through_user_buffer;
        Ok(stats)
    }

    fn stats(&self) -> StoreStats {
        self.stats.clone()
    }
}

/// `read_exact_at` / `write_all_at` on Windows (`seek_read` / `seek_write`), so the host-files
/// store builds for Windows targets too (odxctl's Windows build links odx-sim for the copy
/// engine).
#[cfg(windows)]
mod windows_positional {
    use std::fs::File;
    use std::io;
    use std::os::windows::fs::FileExt as _;

    pub(super) trait FileExt {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
        fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
        fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    }

    impl FileExt for File {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            self.seek_read(buf, offset)
        }

        fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
            while !buf.is_empty() {
                let n = self.seek_read(buf, offset)?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short read"));
                }
                buf = buf.get_mut(n..).unwrap_or_default();
                offset += n as u64;
            }
            Ok(())
        }

        fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
            while !buf.is_empty() {
                let n = self.seek_write(buf, offset)?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
                }
                buf = buf.get(n..).unwrap_or_default();
                offset += n as u64;
            }
            Ok(())
        }
    }
}
