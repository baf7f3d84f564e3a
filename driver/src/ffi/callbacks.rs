//! Borrowed views of Filter Manager's callback arguments and one generic `extern "system"`
//! trampoline per callback kind. A trampoline turns raw pointers into views, calls safe code,
//! and maps the answer back to `FLT_*` values; it never panics and never unwinds.

use core::ffi::c_void;

use odx_core::NtStatus;
use windows_sys::Wdk::Foundation::FILE_OBJECT;
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CALLBACK_DATA, FLT_POSTOP_CALLBACK_STATUS, FLT_POSTOP_FINISHED_PROCESSING,
    FLT_PREOP_CALLBACK_STATUS, FLT_PREOP_COMPLETE, FLT_PREOP_SUCCESS_NO_CALLBACK,
    FLT_PREOP_SUCCESS_WITH_CALLBACK, FLT_RELATED_OBJECTS, FLTFL_POST_OPERATION_DRAINING,
    PFLT_FILTER, PFLT_INSTANCE, PFLT_VOLUME,
};
use windows_sys::Win32::Foundation::NTSTATUS;

use super::kernel::PoolBox;
use super::views::{FltIoParameterBlock, FsControlBuffered};
use super::{core_status, nt};
use crate::registration::IRP_MJ_FILE_SYSTEM_CONTROL;
use crate::request::{FsControl, SystemBuffer};

/// `FLT_CALLBACK_DATA` of the operation in progress, borrowed for one callback.
pub struct CallbackData<'a> {
    data: &'a mut FLT_CALLBACK_DATA,
}

impl core::fmt::Debug for CallbackData<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CallbackData")
            .field("flags", &self.data.Flags)
            .finish_non_exhaustive()
    }
}

impl CallbackData<'_> {
    /// The parameter block, through odxflt's own view (pinned to the layout table; the
    /// `windows-sys` declaration of its `Parameters` union is wrong, see [`super::views`]).
    fn iopb(&self) -> Option<&FltIoParameterBlock> {
        let iopb = self.data.Iopb.cast::<FltIoParameterBlock>();
        // SAFETY: Filter Manager passes callback data whose `Iopb` points to the parameter block
        // of this operation, valid for the whole callback (the borrow of `self`); the view is a
        // prefix of FLT_IO_PARAMETER_BLOCK with the kernel's offsets (pinned at compile time).
        unsafe { iopb.as_ref() }
    }

    /// The file-system control request, or `None` for any other operation.
    #[must_use]
    pub fn fs_control(&self) -> Option<FsControl> {
        let iopb = self.iopb()?;
        if iopb.major_function != IRP_MJ_FILE_SYSTEM_CONTROL {
            return None;
        }
        // SAFETY: for IRP_MJ_FILE_SYSTEM_CONTROL the parameters union holds FileSystemControl,
        // and `Common` is the prefix every variant shares; the minor is checked by
        // `FsControl::offload_op` before the code is used.
        let common = unsafe { iopb.parameters.file_system_control.common };
        Some(FsControl {
            minor_function: iopb.minor_function,
            code: common.fs_control_code.0,
        })
    }

    /// The `Buffered` parameters (both offload codes are METHOD_BUFFERED).
    fn buffered(&self) -> Option<FsControlBuffered> {
        let iopb = self.iopb()?;
        // SAFETY: only called for IRP_MJ_FILE_SYSTEM_CONTROL with an offload control code, both
        // METHOD_BUFFERED: the parameters are the `Buffered` variant.
        Some(unsafe { iopb.parameters.file_system_control.buffered })
    }

    /// The METHOD_BUFFERED system buffer of an offload FSCTL, viewed for its input and output
    /// lengths.
    pub fn system_buffer(&mut self) -> SystemBuffer<'_> {
        let Some(buffered) = self.buffered() else {
            return SystemBuffer::empty();
        };
        let (input_len, output_len) = (
            buffered.input_buffer_length.0,
            buffered.output_buffer_length,
        );
        let bytes = SystemBuffer::allocation(input_len, output_len);
        let start = buffered.system_buffer.cast::<u8>();
        if start.is_null() || bytes == 0 {
            return SystemBuffer::empty();
        }
        // SAFETY: for METHOD_BUFFERED the I/O manager allocates one non-paged system buffer of
        // max(InputBufferLength, OutputBufferLength) bytes; it stays valid and is not accessed
        // by anyone else while this operation is in the filter's callback.
        let all = unsafe { core::slice::from_raw_parts_mut(start, bytes) };
        SystemBuffer::new(all, input_len, output_len)
    }

    /// The callback data itself, for the Filter Manager routines that take it
    /// (`FltGetFileNameInformation`, `FltGetRequestorProcess`, `FltGetRequestorProcessId`);
    /// valid for the callback.
    #[must_use]
    pub fn request(&self) -> super::names::RequestData {
        super::names::RequestData::new(&raw const *self.data)
    }

    /// `RequestorMode` (`KernelMode` 0, `UserMode` 1; offset pinned in `views`).
    #[must_use]
    pub fn requestor_kernel(&self) -> bool {
        self.data.RequestorMode == 0
    }

    /// `IoStatus` as the layer below left it (post-operation).
    #[must_use]
    pub fn io_status(&self) -> (NtStatus, usize) {
        // SAFETY: `IoStatus.Anonymous` is the Status/Pointer union; Status is what the file
        // system writes on completion.
        let status = unsafe { self.data.IoStatus.Anonymous.Status };
        (core_status(status), self.data.IoStatus.Information)
    }

    /// Sets `IoStatus`.
    pub fn set_io_status(&mut self, status: NtStatus, information: usize) {
        self.data.IoStatus.Anonymous.Status = nt(status);
        self.data.IoStatus.Information = information;
    }
}

/// `FLT_RELATED_OBJECTS`, borrowed for one callback.
#[derive(Clone, Copy)]
pub struct RelatedObjects<'a> {
    objects: &'a FLT_RELATED_OBJECTS,
}

impl core::fmt::Debug for RelatedObjects<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RelatedObjects")
            .field("filter", &self.objects.Filter)
            .field("volume", &self.objects.Volume)
            .field("instance", &self.objects.Instance)
            .finish_non_exhaustive()
    }
}

impl<'a> RelatedObjects<'a> {
    /// The filter.
    #[must_use]
    pub const fn filter(&self) -> PFLT_FILTER {
        self.objects.Filter
    }

    /// The volume.
    #[must_use]
    pub const fn volume(&self) -> PFLT_VOLUME {
        self.objects.Volume
    }

    /// The instance.
    #[must_use]
    pub const fn instance(&self) -> PFLT_INSTANCE {
        self.objects.Instance
    }

    /// Raw file object pointer, for `FltQueryInformationFile`.
    #[must_use]
    pub const fn file_object_ptr(&self) -> *const FILE_OBJECT {
        self.objects.FileObject
    }

    /// `FILE_OBJECT.Flags`, read on its own through a raw pointer: the I/O manager and the file
    /// system update the file object's fields while the request is in flight (`Flags` with
    /// interlocked operations), so no reference to the whole structure is formed.
    #[must_use]
    pub fn file_object_flags(&self) -> Option<u32> {
        let file_object = self.objects.FileObject;
        if file_object.is_null() {
            return None;
        }
        // SAFETY: the file object is referenced by Filter Manager for the callback (non-NULL
        // above); only the field's address is taken, no reference is created.
        let flags = unsafe { &raw const (*file_object).Flags };
        // SAFETY: `Flags` is an aligned ULONG inside the live file object (offset pinned in
        // `views`); the kernel updates it atomically, so it is read atomically.
        let flags = unsafe { core::sync::atomic::AtomicU32::from_ptr(flags.cast_mut()) };
        Some(flags.load(core::sync::atomic::Ordering::Relaxed))
    }

    /// The file object is enlisted in a (TxF) transaction.
    #[must_use]
    pub fn transacted(&self) -> bool {
        !self.objects.Transaction.is_null()
    }
}

/// What a pre-operation handler decided.
#[derive(Debug)]
pub enum PreOutcome<C> {
    /// Not ours: `FLT_PREOP_SUCCESS_NO_CALLBACK`.
    NoCallback,
    /// `FLT_PREOP_COMPLETE` with this `IoStatus` (output already in the buffer).
    Complete(NtStatus, usize),
    /// `FLT_PREOP_SUCCESS_WITH_CALLBACK`, handing `C` to post-operation.
    WithCallback(C),
}

/// Where a completion context waits between pre- and post-operation.
pub trait ContextPool {
    /// Moves `value` out to the pool; `None` when the pool is exhausted.
    fn store<T: Copy>(value: T) -> Option<*mut c_void>;

    /// Takes back a value stored by [`Self::store`] and frees its slot.
    ///
    /// # Safety
    /// `raw` is NULL or came from `Self::store::<T>` and has not been taken back before.
    unsafe fn take<T: Copy>(raw: *const c_void) -> Option<T>;
}

/// Non-paged pool (`ExAllocatePoolWithTag`): the driver's [`ContextPool`].
#[derive(Debug)]
pub struct NonPagedPool;

impl ContextPool for NonPagedPool {
    fn store<T: Copy>(value: T) -> Option<*mut c_void> {
        PoolBox::new(value).map(PoolBox::into_raw)
    }

    unsafe fn take<T: Copy>(raw: *const c_void) -> Option<T> {
        // SAFETY: forwarded from the caller: `raw` came from `store::<T>`, i.e. from
        // `PoolBox::<T>::into_raw`, and is taken back once; the box frees it on drop.
        let boxed = unsafe { PoolBox::<T>::from_raw(raw) };
        boxed.map(|boxed| boxed.get())
    }
}

/// The pre/post-operation pair of one registered operation.
pub trait OperationHandler {
    /// The completion context, copied out between pre- and post-operation.
    type Context: Copy;
    /// Where the completion context waits.
    type Pool: ContextPool;
    /// Status for a request whose completion context cannot be allocated.
    const NO_CONTEXT_STATUS: NtStatus;
    /// Pre-operation (IRQL <= APC_LEVEL).
    fn pre(data: &mut CallbackData<'_>, objects: RelatedObjects<'_>) -> PreOutcome<Self::Context>;
    /// Whether this request takes [`Self::pre_plain`] instead of [`Self::pre`]: asked first,
    /// for every request of the operation, so it must be a few loads.
    #[must_use]
    fn plain() -> bool {
        false
    }
    /// A second pre-operation for when [`Self::plain`] holds (by default [`Self::pre`]): each
    /// has its own callback body and frame, so the one taken pays nothing for the other.
    fn pre_plain(
        data: &mut CallbackData<'_>,
        objects: RelatedObjects<'_>,
    ) -> PreOutcome<Self::Context> {
        Self::pre(data, objects)
    }
    /// Post-operation (IRQL <= DISPATCH_LEVEL); never called while draining.
    fn post(data: &mut CallbackData<'_>, context: Self::Context);
    /// A request `pre` forwarded whose completion context could not be stored: post-operation
    /// will never run, and this finishes what `pre` began for it. `Some(IoStatus)`: the request
    /// completes now with it; `None`: it goes down untouched without a post-operation
    /// (`FLT_PREOP_SUCCESS_NO_CALLBACK`). By default it completes with
    /// [`Self::NO_CONTEXT_STATUS`], nothing returned.
    fn abandoned(
        data: &mut CallbackData<'_>,
        context: &Self::Context,
    ) -> Option<(NtStatus, usize)> {
        let _ = (data, context);
        Some((Self::NO_CONTEXT_STATUS, 0))
    }
}

/// `PFLT_PRE_OPERATION_CALLBACK` for `H`.
///
/// # Safety
/// Called by Filter Manager with valid callback data, related objects and completion-context
/// slot for this operation.
pub unsafe extern "system" fn pre_operation<H: OperationHandler>(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    completion_context: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    // The same three arguments are passed on and nothing is done after the call: LLVM makes it
    // a jump, so the chosen body's frame is the only one (odx-pe-harness stack analysis).
    if H::plain() {
        // SAFETY: forwarded: this function's contract is the callee's.
        unsafe { pre_operation_as::<H, true>(data, objects, completion_context) }
    } else {
        // SAFETY: as above.
        unsafe { pre_operation_as::<H, false>(data, objects, completion_context) }
    }
}

/// [`pre_operation`]'s body, with [`OperationHandler::pre_plain`] (`PLAIN`) or
/// [`OperationHandler::pre`].
///
/// # Safety
/// As [`pre_operation`].
#[inline(never)]
unsafe extern "system" fn pre_operation_as<H: OperationHandler, const PLAIN: bool>(
    data: *mut FLT_CALLBACK_DATA,
    objects: *const FLT_RELATED_OBJECTS,
    completion_context: *mut *mut c_void,
) -> FLT_PREOP_CALLBACK_STATUS {
    // SAFETY: Filter Manager passes the live callback data of this operation, exclusively ours
    // for the duration of the callback.
    let Some(data) = (unsafe { data.as_mut() }) else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    // SAFETY: same contract for the related objects.
    let Some(objects) = (unsafe { objects.as_ref() }) else {
        return FLT_PREOP_SUCCESS_NO_CALLBACK;
    };
    let mut data = CallbackData { data };
    let objects = RelatedObjects { objects };
    let outcome = if PLAIN {
        H::pre_plain(&mut data, objects)
    } else {
        H::pre(&mut data, objects)
    };
    match outcome {
        PreOutcome::NoCallback => FLT_PREOP_SUCCESS_NO_CALLBACK,
        PreOutcome::Complete(status, information) => {
            data.set_io_status(status, information);
            FLT_PREOP_COMPLETE
        }
        PreOutcome::WithCallback(context) => {
            if completion_context.is_null() {
                // Cannot happen for a registered post-operation; forward without one.
                return FLT_PREOP_SUCCESS_NO_CALLBACK;
            }
            let Some(stored) = H::Pool::store(context) else {
                // Completed, or sent down without a post-operation: either way the completion
                // context returned must be NULL ("Returning FLT_PREOP_SUCCESS_NO_CALLBACK",
                // "Completing an I/O Operation in a Preoperation Callback Routine",
                // learn.microsoft.com/windows-hardware/drivers/ifs).
                // SAFETY: `completion_context` is Filter Manager's non-NULL out slot for this
                // operation (checked above); nothing was stored for it.
                unsafe { completion_context.write(core::ptr::null_mut()) };
                return abandon::<H>(&mut data, &context);
            };
            // SAFETY: `completion_context` is Filter Manager's non-NULL out slot for this
            // operation; the pointer written is taken back exactly once in `post_operation`.
            unsafe { completion_context.write(stored) };
            FLT_PREOP_SUCCESS_WITH_CALLBACK
        }
    }
}

/// A forward without a completion context ([`OperationHandler::abandoned`]): completed now, or
/// sent down without a post-operation. Cold and out of line: the callback bodies' own paths
/// keep their code and frames.
#[cold]
#[inline(never)]
fn abandon<H: OperationHandler>(
    data: &mut CallbackData<'_>,
    context: &H::Context,
) -> FLT_PREOP_CALLBACK_STATUS {
    match H::abandoned(data, context) {
        Some((status, information)) => {
            data.set_io_status(status, information);
            FLT_PREOP_COMPLETE
        }
        None => FLT_PREOP_SUCCESS_NO_CALLBACK,
    }
}

/// `PFLT_POST_OPERATION_CALLBACK` for `H`.
///
/// # Safety
/// Called by Filter Manager with the callback data of an operation whose pre-operation
/// returned `FLT_PREOP_SUCCESS_WITH_CALLBACK` and the completion context it set.
pub unsafe extern "system" fn post_operation<H: OperationHandler>(
    data: *mut FLT_CALLBACK_DATA,
    _objects: *const FLT_RELATED_OBJECTS,
    completion_context: *const c_void,
    flags: u32,
) -> FLT_POSTOP_CALLBACK_STATUS {
    // SAFETY: the context was stored by `H::Pool::store::<H::Context>` in `pre_operation` and
    // Filter Manager hands it to exactly one post-operation call.
    let Some(context) = (unsafe { H::Pool::take::<H::Context>(completion_context) }) else {
        return FLT_POSTOP_FINISHED_PROCESSING;
    };
    // The slot is freed above on every path; while draining nothing else may be touched.
    if flags & FLTFL_POST_OPERATION_DRAINING != 0 {
        return FLT_POSTOP_FINISHED_PROCESSING;
    }
    // SAFETY: Filter Manager passes the live callback data of the completing operation.
    if let Some(data) = unsafe { data.as_mut() } {
        H::post(&mut CallbackData { data }, context);
    }
    FLT_POSTOP_FINISHED_PROCESSING
}

/// Instance setup and teardown of one filter.
pub trait InstanceHandler {
    /// `PFLT_INSTANCE_SETUP_CALLBACK` (PASSIVE_LEVEL): attach or `STATUS_FLT_DO_NOT_ATTACH`.
    fn setup(objects: RelatedObjects<'_>, filesystem_type: i32) -> NtStatus;
    /// `PFLT_INSTANCE_TEARDOWN_CALLBACK`, start (PASSIVE_LEVEL).
    fn teardown_start(objects: RelatedObjects<'_>, reason: u32);
    /// `PFLT_INSTANCE_TEARDOWN_CALLBACK`, complete (PASSIVE_LEVEL; no operation of the instance
    /// is outstanding).
    fn teardown_complete(objects: RelatedObjects<'_>, reason: u32);
}

/// `PFLT_INSTANCE_SETUP_CALLBACK` for `H`.
///
/// # Safety
/// Called by Filter Manager with valid related objects.
pub unsafe extern "system" fn instance_setup<H: InstanceHandler>(
    objects: *const FLT_RELATED_OBJECTS,
    _flags: u32,
    _device_type: u32,
    filesystem_type: i32,
) -> NTSTATUS {
    // SAFETY: Filter Manager passes the related objects of the instance being set up.
    match unsafe { objects.as_ref() } {
        Some(objects) => nt(H::setup(RelatedObjects { objects }, filesystem_type)),
        None => windows_sys::Win32::Foundation::STATUS_FLT_DO_NOT_ATTACH,
    }
}

/// `PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK`: manual detach (`fltmc detach`) is allowed.
///
/// # Safety
/// Called by Filter Manager.
pub unsafe extern "system" fn instance_query_teardown(
    _objects: *const FLT_RELATED_OBJECTS,
    _flags: u32,
) -> NTSTATUS {
    nt(NtStatus::STATUS_SUCCESS)
}

/// `PFLT_INSTANCE_TEARDOWN_CALLBACK` (start) for `H`.
///
/// # Safety
/// Called by Filter Manager with valid related objects.
pub unsafe extern "system" fn instance_teardown_start<H: InstanceHandler>(
    objects: *const FLT_RELATED_OBJECTS,
    reason: u32,
) {
    // SAFETY: Filter Manager passes the related objects of the instance being torn down.
    if let Some(objects) = unsafe { objects.as_ref() } {
        H::teardown_start(RelatedObjects { objects }, reason);
    }
}

/// `PFLT_INSTANCE_TEARDOWN_CALLBACK` (complete) for `H`.
///
/// # Safety
/// Called by Filter Manager with valid related objects.
pub unsafe extern "system" fn instance_teardown_complete<H: InstanceHandler>(
    objects: *const FLT_RELATED_OBJECTS,
    reason: u32,
) {
    // SAFETY: Filter Manager passes the related objects of the instance being torn down.
    if let Some(objects) = unsafe { objects.as_ref() } {
        H::teardown_complete(RelatedObjects { objects }, reason);
    }
}

/// Filter unload.
pub trait UnloadHandler {
    /// `PFLT_FILTER_UNLOAD_CALLBACK` (PASSIVE_LEVEL).
    fn unload(flags: u32) -> NtStatus;
}

/// `PFLT_FILTER_UNLOAD_CALLBACK` for `H`.
///
/// # Safety
/// Called by Filter Manager.
pub unsafe extern "system" fn filter_unload<H: UnloadHandler>(flags: u32) -> NTSTATUS {
    nt(H::unload(flags))
}
