//! The `ntoskrnl.exe` functions odxflt calls, declared here (not through `windows-sys`, whose
//! `Wdk` declarations bind many kernel routines to `ntdll.dll`), and safe wrappers over them.

use core::ffi::c_void;
use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::registration::POOL_TAG;

/// `NonPagedPoolNx` (Windows 8+): completion contexts are touched in post-operation, which can
/// run at `DISPATCH_LEVEL`.
const NON_PAGED_POOL_NX: i32 = 512;

crate::pin_constant!(NON_PAGED_POOL_NX => "NonPagedPoolNx");

// The IRQL is read from CR8, which only x64 has (ARM64 keeps it in the processor control
// region). A Windows build for another architecture would silently run at "PASSIVE_LEVEL" and
// query files at raised IRQL: refuse to build it until it has its own `current_irql`.
#[cfg(all(target_os = "windows", not(target_arch = "x86_64")))]
compile_error!("odxflt reads the IRQL from CR8 (x64 only): add current_irql for this architecture");

/// odxflt's own bugcheck code, for the panic backstop: `0x204F_4458` ("ODX" with bit 29, the
/// customer bit of NTSTATUS-style codes, set), so a dump names odxflt and the code can never be
/// mistaken for one of Microsoft's (bugcodes.h; `MANUALLY_INITIATED_CRASH1`, 0xDEADDEAD, means
/// "a person asked for this crash"). Parameter 1 is odxflt's pool tag, parameter 2 the
/// panicking source line.
pub const BUGCHECK_CODE: u32 = 0x2000_0000 | u32::from_be_bytes([0, b'O', b'D', b'X']);

#[cfg_attr(
    target_os = "windows",
    link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")
)]
unsafe extern "system" {
    /// Stops the system. Takes no pointers and never returns, so calling it is safe.
    safe fn KeBugCheckEx(code: u32, p1: usize, p2: usize, p3: usize, p4: usize) -> !;
    fn ExAllocatePoolWithTag(pool_type: i32, bytes: usize, tag: u32) -> *mut c_void;
    fn ExFreePoolWithTag(pointer: *mut c_void, tag: u32);
}

#[cfg(target_os = "windows")]
#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    /// Takes no arguments and may be called at any IRQL (wdm.h; Windows 7 and later).
    safe fn KeQueryUnbiasedInterruptTime() -> u64;
    /// `VOID KeQuerySystemTimePrecise(PLARGE_INTEGER CurrentTime)`: Windows 8 and later, any
    /// IRQL (wdm/nf-wdm-kequerysystemtimeprecise).
    fn KeQuerySystemTimePrecise(current_time: *mut i64);
}

/// System time now (100-ns ticks since 1601, UTC): the decision journal's clock
/// (`KeQuerySystemTimePrecise`, any IRQL, Windows 8+). The journal records when a decision was
/// made in wall-clock time, which an administrator compares with other logs; the unbiased
/// interrupt time (the back-off's clock) is not a date.
#[cfg(target_os = "windows")]
#[must_use]
pub fn system_time() -> u64 {
    let mut now = 0_i64;
    // SAFETY: `now` is a valid LARGE_INTEGER out location; the routine may be called at any IRQL.
    unsafe { KeQuerySystemTimePrecise(&mut now) };
    u64::try_from(now).unwrap_or(0)
}

/// Host builds: the host test clock.
#[cfg(not(target_os = "windows"))]
#[must_use]
pub fn system_time() -> u64 {
    HOST_TIME.load(core::sync::atomic::Ordering::Relaxed)
}

/// A byte buffer in non-paged pool (the port's message buffers, the registry's rules), freed on
/// drop. Zero-filled at allocation.
#[derive(Debug)]
pub struct PoolBytes {
    pointer: NonNull<u8>,
    len: usize,
}

impl PoolBytes {
    /// `len` zeroed bytes (`len` > 0), or `None` when the pool has none.
    #[must_use]
    pub fn zeroed(len: usize) -> Option<Self> {
        if len == 0 {
            return None;
        }
        // SAFETY: ExAllocatePoolWithTag may be called at IRQL <= DISPATCH_LEVEL for non-paged
        // pool; callers run at PASSIVE_LEVEL; it returns NULL or `len` bytes.
        let raw = unsafe { ExAllocatePoolWithTag(NON_PAGED_POOL_NX, len, POOL_TAG) };
        let pointer = NonNull::new(raw.cast::<u8>())?;
        // SAFETY: `pointer` is a fresh allocation of `len` writable bytes.
        unsafe { core::ptr::write_bytes(pointer.as_ptr(), 0, len) };
        Some(Self { pointer, len })
    }

    /// The bytes.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` initialised bytes owned by `self` until drop.
        unsafe { core::slice::from_raw_parts(self.pointer.as_ptr(), self.len) }
    }

    /// The bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `len` initialised bytes owned exclusively by `self` until drop.
        unsafe { core::slice::from_raw_parts_mut(self.pointer.as_ptr(), self.len) }
    }
}

impl Drop for PoolBytes {
    fn drop(&mut self) {
        // SAFETY: the block came from ExAllocatePoolWithTag with POOL_TAG and is freed once.
        unsafe { ExFreePoolWithTag(self.pointer.as_ptr().cast::<c_void>(), POOL_TAG) };
    }
}

/// Frees a block the kernel allocated for odxflt (`SeLocateProcessImageName`'s image name):
/// `ExFreePoolWithTag(.., 0)`, i.e. `ExFreePool`, "the ExFreeXxx routine that corresponds to
/// the routine used to allocate the buffer" (ntifs/nf-ntifs-selocateprocessimagename), without
/// a tag check (odxflt does not know the kernel's tag).
///
/// # Safety
/// `pointer` is a pool block handed to odxflt to free, not freed before.
pub unsafe fn free_kernel_block(pointer: *mut c_void) {
    // SAFETY: forwarded from the caller; tag 0 is ExFreePool's.
    unsafe { ExFreePoolWithTag(pointer, 0) };
}

/// The interrupt time in 100-ns ticks, the clock of the storage back-off
/// (`odx_core::storage`): `KeQueryUnbiasedInterruptTime` (learn.microsoft.com/windows-hardware/
/// drivers/ddi/wdm/nf-wdm-kequeryunbiasedinterrupttime: any IRQL, Windows 7 and later).
///
/// Not `KeQueryInterruptTime`: on x64 the WDK defines it as a macro that reads
/// `KUSER_SHARED_DATA.InterruptTime` at the fixed kernel address 0xFFFFF78000000008
/// (wdm.h; ntoskrnl exports it only on x86 and ARM, ReactOS' ntoskrnl.spec agrees), which the
/// PE harness cannot map in a Linux process; and not `KeQueryInterruptTimePrecise` (Windows 8.1
/// and later). The unbiased clock does not advance while the machine sleeps or hibernates, so a
/// back-off counts running time; it never goes backwards and does not follow wall-clock changes.
#[cfg(target_os = "windows")]
#[must_use]
pub fn interrupt_time() -> u64 {
    KeQueryUnbiasedInterruptTime()
}

/// Host builds (unit tests): a clock the tests set ([`set_host_interrupt_time`]).
#[cfg(not(target_os = "windows"))]
#[must_use]
pub fn interrupt_time() -> u64 {
    HOST_TIME.load(core::sync::atomic::Ordering::Relaxed)
}

#[cfg(not(target_os = "windows"))]
static HOST_TIME: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Host builds: sets what [`interrupt_time`] answers.
#[cfg(not(target_os = "windows"))]
pub fn set_host_interrupt_time(ticks: u64) {
    HOST_TIME.store(ticks, core::sync::atomic::Ordering::Relaxed);
}

/// `PASSIVE_LEVEL`.
pub const PASSIVE_LEVEL: u8 = 0;
/// `APC_LEVEL`.
pub const APC_LEVEL: u8 = 1;
/// `DISPATCH_LEVEL`.
pub const DISPATCH_LEVEL: u8 = 2;

crate::pin_constant!(
    PASSIVE_LEVEL => "PASSIVE_LEVEL",
    APC_LEVEL => "APC_LEVEL",
    DISPATCH_LEVEL => "DISPATCH_LEVEL",
);

/// `KeGetCurrentIrql`. On x64 the WDK defines it as an inline read of CR8 (wdm.h: `return
/// (KIRQL)__readcr8();`), not as an export, so the driver reads CR8 itself. This is the image's
/// only control-register access; the PE harness emulates exactly this instruction (docs/pe-
/// harness.md, "IRQL").
#[cfg(all(target_os = "windows", target_arch = "x86_64"))]
#[must_use]
pub fn current_irql() -> u8 {
    let cr8: u64;
    // SAFETY: reading CR8 (the task-priority register, which holds the IRQL on x64) has no side
    // effect and is allowed at any IRQL in kernel mode, where the driver runs.
    unsafe {
        core::arch::asm!("mov {}, cr8", out(reg) cr8, options(nomem, nostack, preserves_flags));
    }
    u8::try_from(cr8 & 0xF).unwrap_or(u8::MAX)
}

/// Host builds (unit tests) run at "PASSIVE_LEVEL".
#[cfg(not(all(target_os = "windows", target_arch = "x86_64")))]
#[must_use]
pub const fn current_irql() -> u8 {
    PASSIVE_LEVEL
}

/// Stops the system with [`BUGCHECK_CODE`].
pub fn bugcheck(line: u32) -> ! {
    KeBugCheckEx(BUGCHECK_CODE, POOL_TAG as usize, line as usize, 0, 0)
}

/// One `T` in non-paged pool, tagged [`POOL_TAG`]; freed on drop. Used for completion contexts,
/// which cross from pre- to post-operation as a raw pointer.
#[derive(Debug)]
pub struct PoolBox<T: Copy> {
    pointer: NonNull<T>,
    owns: PhantomData<T>,
}

impl<T: Copy> PoolBox<T> {
    // Pool allocations are 16-byte aligned on x64 and ARM64.
    const FITS_POOL_ALIGNMENT: () = assert!(core::mem::align_of::<T>() <= 16);

    /// Moves `value` into a new pool allocation; `None` when the pool is exhausted.
    pub fn new(value: T) -> Option<Self> {
        let () = Self::FITS_POOL_ALIGNMENT;
        let bytes = core::mem::size_of::<T>();
        // SAFETY: ExAllocatePoolWithTag may be called at IRQL <= DISPATCH_LEVEL for non-paged
        // pool (pre-operation runs at <= APC_LEVEL); it returns NULL or `bytes` bytes.
        let raw = unsafe { ExAllocatePoolWithTag(NON_PAGED_POOL_NX, bytes, POOL_TAG) };
        let pointer = NonNull::new(raw.cast::<T>())?;
        // SAFETY: `pointer` is a fresh, suitably aligned allocation of size_of::<T>() bytes.
        unsafe { pointer.write(value) };
        Some(Self {
            pointer,
            owns: PhantomData,
        })
    }

    /// Gives up ownership: the pointer travels as Filter Manager's completion context.
    #[must_use]
    pub fn into_raw(self) -> *mut c_void {
        let raw = self.pointer.as_ptr().cast::<c_void>();
        core::mem::forget(self);
        raw
    }

    /// Takes back ownership of a pointer made by [`Self::into_raw`].
    ///
    /// # Safety
    /// `raw` is NULL or came from `PoolBox::<T>::into_raw` and has not been taken back before.
    pub unsafe fn from_raw(raw: *const c_void) -> Option<Self> {
        NonNull::new(raw.cast::<T>().cast_mut()).map(|pointer| Self {
            pointer,
            owns: PhantomData,
        })
    }

    /// The value.
    #[must_use]
    pub fn get(&self) -> T {
        // SAFETY: the pointer is owned, initialised in `new` and not yet freed.
        unsafe { self.pointer.read() }
    }
}

impl<T: Copy> Drop for PoolBox<T> {
    fn drop(&mut self) {
        // SAFETY: the allocation came from ExAllocatePoolWithTag with POOL_TAG, is owned by this
        // box and is freed once; `T: Copy` has no destructor to run first. Freeing non-paged
        // pool is allowed at IRQL <= DISPATCH_LEVEL, where post-operation runs.
        unsafe { ExFreePoolWithTag(self.pointer.as_ptr().cast::<c_void>(), POOL_TAG) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backstop_bugchecks_with_a_code_of_odxflts_own() {
        // Not MANUALLY_INITIATED_CRASH1 (bugcodes.h), which means "a person asked for this".
        assert_ne!(BUGCHECK_CODE, 0xDEAD_DEAD);
        assert_eq!(BUGCHECK_CODE, 0x204F_4458);
        assert_ne!(BUGCHECK_CODE & 0x2000_0000, 0, "the customer bit");
        assert_eq!(&BUGCHECK_CODE.to_be_bytes()[1..], b"ODX");
    }

    #[test]
    fn host_builds_run_at_passive_level() {
        assert_eq!(current_irql(), PASSIVE_LEVEL);
    }
}
