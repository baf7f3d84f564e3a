//! The volume context: allocated and set at instance setup, looked up per request, and released
//! on every path by [`VolumeContextRef`]'s `Drop`.

use core::ffi::c_void;
use core::ops::Deref;
use core::ptr::NonNull;

use odx_core::NtStatus;
use windows_sys::Wdk::Foundation::NonPagedPoolNx;
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_SET_CONTEXT_REPLACE_IF_EXISTS, FltAllocateContext, FltGetVolumeContext, FltReleaseContext,
    FltSetVolumeContext, PFLT_CONTEXT, PFLT_FILTER, PFLT_VOLUME,
};

use super::{core_status, nt_success};
use crate::registration::FLT_VOLUME_CONTEXT;
use crate::volume::VolumeContext;

/// `STATUS_NOT_FOUND`.
const STATUS_NOT_FOUND: NtStatus = NtStatus(0xC000_0225);

/// One reference to a volume context; released when dropped.
#[derive(Debug)]
pub struct VolumeContextRef {
    context: NonNull<VolumeContext>,
}

impl VolumeContextRef {
    /// Takes ownership of one reference to `raw`.
    ///
    /// # Safety
    /// `raw` is NULL or a volume context of this filter carrying a reference the caller owns.
    unsafe fn from_raw(raw: PFLT_CONTEXT) -> Option<Self> {
        NonNull::new(raw.cast::<VolumeContext>()).map(|context| Self { context })
    }

    /// Allocates a context holding `value` (not yet attached to a volume).
    ///
    /// # Errors
    /// The status of `FltAllocateContext`.
    pub fn allocate(filter: PFLT_FILTER, value: VolumeContext) -> Result<Self, NtStatus> {
        let mut raw: PFLT_CONTEXT = core::ptr::null_mut();
        let size = core::mem::size_of::<VolumeContext>();
        // SAFETY: `filter` is this filter's handle (from the related objects), the context type
        // is registered with exactly this size, and `raw` is a valid out pointer.
        let status = unsafe {
            FltAllocateContext(filter, FLT_VOLUME_CONTEXT, size, NonPagedPoolNx, &mut raw)
        };
        if !nt_success(status) {
            return Err(core_status(status));
        }
        let pointer = NonNull::new(raw.cast::<VolumeContext>())
            .ok_or(NtStatus::STATUS_INSUFFICIENT_RESOURCES)?;
        // SAFETY: FltAllocateContext returned `size` writable bytes, aligned for any context
        // (pool alignment); the memory is uninitialised, so it is written, not assigned.
        unsafe { pointer.write(value) };
        // SAFETY: the allocation carries the one reference the caller now owns.
        unsafe { Self::from_raw(raw) }.ok_or(NtStatus::STATUS_INSUFFICIENT_RESOURCES)
    }

    /// Attaches this context to `volume`, replacing a context left from an earlier instance (whose
    /// reference Filter Manager drops). The reference held by `self` is released on return.
    ///
    /// # Errors
    /// The status of `FltSetVolumeContext`.
    pub fn set_on(self, volume: PFLT_VOLUME) -> Result<(), NtStatus> {
        let raw = self.context.as_ptr().cast::<c_void>();
        // SAFETY: `volume` is the volume being set up, `raw` a context of this filter allocated
        // for volumes; a NULL old-context slot lets Filter Manager release a replaced context.
        let status = unsafe {
            FltSetVolumeContext(
                volume,
                FLT_SET_CONTEXT_REPLACE_IF_EXISTS,
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

    /// Looks up the context of `volume`.
    ///
    /// # Errors
    /// The status of `FltGetVolumeContext` (`STATUS_NOT_FOUND` when setup did not attach one).
    pub fn get(filter: PFLT_FILTER, volume: PFLT_VOLUME) -> Result<Self, NtStatus> {
        let mut raw: PFLT_CONTEXT = core::ptr::null_mut();
        // SAFETY: `filter` and `volume` come from the related objects of the current callback;
        // `raw` is a valid out pointer that receives a referenced context on success.
        let status = unsafe { FltGetVolumeContext(filter, volume, &mut raw) };
        if !nt_success(status) {
            return Err(core_status(status));
        }
        // SAFETY: on success `raw` is this filter's volume context with a reference for us.
        unsafe { Self::from_raw(raw) }.ok_or(STATUS_NOT_FOUND)
    }
}

impl Deref for VolumeContextRef {
    type Target = VolumeContext;

    fn deref(&self) -> &VolumeContext {
        // SAFETY: the context was initialised by `allocate` and stays alive while a reference
        // (this one) is held; VolumeContext is only read or updated atomically.
        unsafe { self.context.as_ref() }
    }
}

impl Drop for VolumeContextRef {
    fn drop(&mut self) {
        // SAFETY: `self` owns exactly one reference to the context, released once here.
        unsafe { FltReleaseContext(self.context.as_ptr().cast::<c_void>()) };
    }
}
