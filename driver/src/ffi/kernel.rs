//! The `ntoskrnl.exe` functions odxflt calls, declared here (not through `windows-sys`, whose
//! `Wdk` declarations bind many kernel routines to `ntdll.dll`), and safe wrappers over them.

use core::ffi::c_void;
use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::registration::POOL_TAG;

/// `NonPagedPoolNx` (Windows 8+): completion contexts are touched in post-operation, which can
/// run at `DISPATCH_LEVEL`.
const NON_PAGED_POOL_NX: i32 = 512;

/// `MANUALLY_INITIATED_CRASH1` (bugcodes.h): the code for a deliberate stop, used by the panic
/// backstop. Parameter 1 is odxflt's pool tag, parameter 2 the panicking source line.
pub const BUGCHECK_CODE: u32 = 0xDEAD_DEAD;

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
