//! The instance context: allocated and set at instance setup, looked up once per request, and
//! released on every path by [`InstanceContextRef`]'s `Drop`.
//!
//! Per instance, not per volume: Filter Manager allows several instances of one filter on a
//! volume (`fltmc attach -i`), and each has its own statistics slot and its own teardown. A
//! volume context would be shared by them, replaced by the second setup and marked by the first
//! teardown.

use core::ffi::c_void;
use core::ops::Deref;
use core::ptr::NonNull;

use odx_core::NtStatus;
use windows_sys::Wdk::Foundation::NonPagedPoolNx;
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_SET_CONTEXT_KEEP_IF_EXISTS, FltAllocateContext, FltGetInstanceContext, FltReleaseContext,
    FltSetInstanceContext, PFLT_CONTEXT, PFLT_FILTER, PFLT_INSTANCE,
};

use super::{core_status, nt_success};
use crate::registration::FLT_INSTANCE_CONTEXT;
use crate::volume::InstanceContext;

/// `STATUS_NOT_FOUND`.
const STATUS_NOT_FOUND: NtStatus = NtStatus(0xC000_0225);

crate::pin_constant!(
    STATUS_NOT_FOUND.0 => "STATUS_NOT_FOUND",
    NonPagedPoolNx => "NonPagedPoolNx",
    windows_sys::Wdk::Storage::FileSystem::Minifilters::FLT_SET_CONTEXT_KEEP_IF_EXISTS => "FLT_SET_CONTEXT_KEEP_IF_EXISTS",
);

/// One reference to an instance context; released when dropped.
#[derive(Debug)]
pub struct InstanceContextRef {
    context: NonNull<InstanceContext>,
}

impl InstanceContextRef {
    /// Takes ownership of one reference to `raw`.
    ///
    /// # Safety
    /// `raw` is NULL or an instance context of this filter carrying a reference the caller owns.
    unsafe fn from_raw(raw: PFLT_CONTEXT) -> Option<Self> {
        NonNull::new(raw.cast::<InstanceContext>()).map(|context| Self { context })
    }

    /// Allocates a context holding `value` (not yet attached to a volume).
    ///
    /// # Errors
    /// The status of `FltAllocateContext`.
    pub fn allocate(filter: PFLT_FILTER, value: InstanceContext) -> Result<Self, NtStatus> {
        let mut raw: PFLT_CONTEXT = core::ptr::null_mut();
        let size = core::mem::size_of::<InstanceContext>();
        // SAFETY: `filter` is this filter's handle (from the related objects), the context type
        // is registered with exactly this size, and `raw` is a valid out pointer.
        let status = unsafe {
            FltAllocateContext(filter, FLT_INSTANCE_CONTEXT, size, NonPagedPoolNx, &mut raw)
        };
        if !nt_success(status) {
            return Err(core_status(status));
        }
        let pointer = NonNull::new(raw.cast::<InstanceContext>())
            .ok_or(NtStatus::STATUS_INSUFFICIENT_RESOURCES)?;
        // SAFETY: FltAllocateContext returned `size` writable bytes, aligned for any context
        // (pool alignment); the memory is uninitialised, so it is written, not assigned.
        unsafe { pointer.write(value) };
        // SAFETY: the allocation carries the one reference the caller now owns.
        unsafe { Self::from_raw(raw) }.ok_or(NtStatus::STATUS_INSUFFICIENT_RESOURCES)
    }

    /// Attaches this context to `instance` (the one being set up, which has none yet). The
    /// reference held by `self` is released on return; Filter Manager keeps its own until the
    /// instance is deleted.
    ///
    /// # Errors
    /// The status of `FltSetInstanceContext`.
    pub fn set_on(self, instance: PFLT_INSTANCE) -> Result<(), NtStatus> {
        let raw = self.context.as_ptr().cast::<c_void>();
        // SAFETY: `instance` is the instance being set up, `raw` a context of this filter
        // allocated for instances; with KEEP_IF_EXISTS and a NULL old-context slot nothing is
        // replaced or returned.
        let status = unsafe {
            FltSetInstanceContext(
                instance,
                FLT_SET_CONTEXT_KEEP_IF_EXISTS,
                raw,
                core::ptr::null_mut(),
            )
        };
        if nt_success(status) {
            Ok(())
        } else {
            Err(core_status(status))
        }
    }

    /// Looks up the context of `instance`.
    ///
    /// # Errors
    /// The status of `FltGetInstanceContext` (`STATUS_NOT_FOUND` when setup attached none).
    pub fn get(instance: PFLT_INSTANCE) -> Result<Self, NtStatus> {
        let mut raw: PFLT_CONTEXT = core::ptr::null_mut();
        // SAFETY: `instance` comes from the related objects of the current callback; `raw` is a
        // valid out pointer that receives a referenced context on success. IRQL <= APC_LEVEL
        // (instance callbacks and pre-operation); the context is in non-paged pool.
        let status = unsafe { FltGetInstanceContext(instance, &mut raw) };
        if !nt_success(status) {
            return Err(core_status(status));
        }
        // SAFETY: on success `raw` is this filter's instance context with a reference for us.
        unsafe { Self::from_raw(raw) }.ok_or(STATUS_NOT_FOUND)
    }
}

impl Deref for InstanceContextRef {
    type Target = InstanceContext;

    fn deref(&self) -> &InstanceContext {
        // SAFETY: the context was initialised by `allocate` and stays alive while a reference
        // (this one) is held; InstanceContext is only read or updated atomically.
        unsafe { self.context.as_ref() }
    }
}

impl Drop for InstanceContextRef {
    fn drop(&mut self) {
        // SAFETY: `self` owns exactly one reference to the context, released once here.
        unsafe { FltReleaseContext(self.context.as_ptr().cast::<c_void>()) };
    }
}
