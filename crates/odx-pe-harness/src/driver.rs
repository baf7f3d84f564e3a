//! The loaded odxflt.sys as the mock Filter Manager drives it: `DriverEntry`, instance setup,
//! one `IRP_MJ_FILE_SYSTEM_CONTROL` at a time through the captured pre/post-operation callbacks,
//! teardown and unload.

use std::ffi::c_void;

use anyhow::{Context, Result, anyhow, bail, ensure};
use odx_core::NtStatus;
use windows_sys::Wdk::Foundation::{DRIVER_OBJECT, FILE_OBJECT, KTRANSACTION};
use windows_sys::Wdk::Storage::FileSystem::FSRTL_COMMON_FCB_HEADER;
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CALLBACK_DATA, FLT_IO_PARAMETER_BLOCK, FLT_PARAMETERS, FLT_PREOP_COMPLETE,
    FLT_PREOP_SUCCESS_NO_CALLBACK, FLT_PREOP_SUCCESS_WITH_CALLBACK, FLTFL_CALLBACK_DATA_DIRTY,
    FLTFL_CALLBACK_DATA_IRP_OPERATION, FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT,
};
use windows_sys::Wdk::System::SystemServices::{IRP_MJ_FILE_SYSTEM_CONTROL, KernelMode, UserMode};
use windows_sys::Win32::Foundation::UNICODE_STRING;
use windows_sys::Win32::System::Ioctl::FILE_DEVICE_DISK_FILE_SYSTEM;

use crate::kernel::{
    self, Call, FileInfo, InstanceState, KernelResolver, Leaks, PostFn, PreFn, Registration,
    SetupFn, TeardownFn, UnloadFn, VolumeInfo, core, nt,
};
use crate::pe::Image;

/// `DriverEntry`.
type DriverEntryFn = unsafe extern "win64" fn(*mut DRIVER_OBJECT, *const UNICODE_STRING) -> i32;

/// `FSRTL_FLAG_ADVANCED_FCB_HEADER`.
const FSRTL_FLAG_ADVANCED_FCB_HEADER: u8 = 0x40;
/// `FO_CLEANUP_COMPLETE`.
const FO_CLEANUP_COMPLETE: u32 = 0x4000;

/// An NTFS stream control block as far as odxflt looks into it: the FCB header first.
#[repr(C, align(16))]
struct StreamControlBlock {
    header: FSRTL_COMMON_FCB_HEADER,
    /// The rest of an advanced header and NTFS's own fields (never read by a filter).
    rest: [u8; 128],
}

/// What the file object a request arrives on carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileObjectFacts {
    /// `FILE_OBJECT.ReadAccess`.
    pub read_access: bool,
    /// `FILE_OBJECT.WriteAccess`.
    pub write_access: bool,
    /// `FO_CLEANUP_COMPLETE` in `Flags`.
    pub cleanup_complete: bool,
    /// `FLT_RELATED_OBJECTS.Transaction` is set (TxF).
    pub transacted: bool,
    /// The stream's FCB header: `ValidDataLength` (with `FileSize`, `AllocationSize`).
    pub valid_data_length: i64,
    /// `FltQueryInformationFile` answers.
    pub info: FileInfo,
}

/// One `IRP_MJ_FILE_SYSTEM_CONTROL` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsControlRequest {
    /// `MinorFunction`.
    pub minor_function: u8,
    /// `FsControlCode`.
    pub code: u32,
    /// The caller's input (copied into the system buffer).
    pub input: Vec<u8>,
    /// `OutputBufferLength`.
    pub output_len: usize,
    /// `RequestorMode` is `KernelMode`.
    pub kernel_requestor: bool,
    /// The file object.
    pub file: FileObjectFacts,
}

/// What the pre-operation callback returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreResult {
    /// No instance on the volume: the filter never saw the request.
    NotAttached,
    /// `FLT_PREOP_SUCCESS_NO_CALLBACK`.
    NoCallback,
    /// `FLT_PREOP_SUCCESS_WITH_CALLBACK` (the request went down and post-operation ran).
    WithCallback,
    /// `FLT_PREOP_COMPLETE`.
    Complete,
}

/// The answer of the layers below the filter: status and `IoStatus.Information`.
pub type Below<'a> = &'a mut dyn FnMut(&mut [u8], usize) -> (NtStatus, usize);

/// What one request did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsControlResult {
    /// The pre-operation verdict.
    pub pre: PreResult,
    /// Final `IoStatus.Status`.
    pub status: NtStatus,
    /// Final `IoStatus.Information`.
    pub information: usize,
    /// The first `Information` bytes of the system buffer (what the I/O manager copies out).
    pub output: Vec<u8>,
    /// Calls the image made while handling the request (pre, below, post).
    pub calls: Vec<Call>,
    /// Calls made during pre-operation only.
    pub pre_calls: Vec<Call>,
    /// `FLTFL_CALLBACK_DATA_DIRTY` was set.
    pub dirty: bool,
    /// The pre-operation rewrote the input bytes.
    pub input_rewritten: bool,
    /// The status the layers below answered (when the request went down).
    pub below: Option<NtStatus>,
}

impl FsControlResult {
    /// `FltQueryInformationFile` calls of a class.
    #[must_use]
    pub fn queries(&self, class: i32) -> usize {
        self.calls
            .iter()
            .filter(|c| **c == Call::QueryInformationFile(class))
            .count()
    }
}

/// A loaded and started odxflt.sys with its mock kernel (thread-local: one per thread).
pub struct LoadedDriver {
    image: Image,
    registration: Registration,
    driver_object: Box<DRIVER_OBJECT>,
    unloaded: bool,
}

impl std::fmt::Debug for LoadedDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedDriver")
            .field("image", &self.image)
            .field("registration", &self.registration)
            .finish_non_exhaustive()
    }
}

fn checked<F: Copy>(image: &Image, address: usize) -> Result<F> {
    ensure!(
        image.contains(address),
        "callback {address:#x} is outside the image"
    );
    ensure!(
        size_of::<F>() == size_of::<usize>(),
        "not a function pointer"
    );
    // SAFETY: `F` is one of this module's `unsafe extern "win64" fn` types (pointer-sized,
    // checked) and `address` is the image's own code for that callback, taken from the
    // registration the image passed to FltRegisterFilter.
    Ok(unsafe { std::mem::transmute_copy::<usize, F>(&address) })
}

impl LoadedDriver {
    /// Loads the image, installs a fresh mock kernel for `volume`, calls `DriverEntry`.
    ///
    /// # Errors
    /// Loading fails, `DriverEntry` fails, or the filter did not register and start.
    pub fn load(image_bytes: &[u8], volume: VolumeInfo) -> Result<Self> {
        Self::load_with_policy(image_bytes, volume, None)
    }

    /// [`Self::load`] with `Parameters\DefaultPolicy` (REG_DWORD) set under the service key.
    ///
    /// # Errors
    /// As [`Self::load`].
    pub fn load_with_policy(
        image_bytes: &[u8],
        volume: VolumeInfo,
        default_policy: Option<u32>,
    ) -> Result<Self> {
        let image = Image::load(image_bytes, &KernelResolver)?;
        kernel::install(volume, default_policy)?;
        let mut driver = Self {
            image,
            registration: Registration::default(),
            driver_object: Box::default(),
            unloaded: false,
        };
        let entry = driver
            .image
            .export("DriverEntry")
            .ok_or_else(|| anyhow!("the image does not export DriverEntry"))?;
        let entry: DriverEntryFn = checked(&driver.image, entry)?;
        let mut path: Vec<u16> = kernel::SERVICE_KEY.encode_utf16().collect();
        let bytes = u16::try_from(path.len() * 2).context("registry path too long")?;
        let registry = UNICODE_STRING {
            Length: bytes,
            MaximumLength: bytes,
            Buffer: path.as_mut_ptr(),
        };
        let object: *mut DRIVER_OBJECT = &mut *driver.driver_object;
        // SAFETY: DriverEntry of the loaded image, called once with a driver object and registry
        // path that outlive the call; its imports are bound to this module's kernel.
        let status = core(unsafe { entry(object, &registry) });
        ensure!(status.is_success(), "DriverEntry failed with {status}");
        let (registration, started) = kernel::with(|k| (k.registration.clone(), k.started))
            .ok_or_else(|| anyhow!("mock kernel missing"))?;
        driver.registration =
            registration.ok_or_else(|| anyhow!("FltRegisterFilter not called"))?;
        ensure!(started, "FltStartFiltering not called");
        for address in driver.registration.callbacks() {
            ensure!(
                driver.image.contains(address),
                "registered callback {address:#x} is outside the image"
            );
        }
        Ok(driver)
    }

    /// The image.
    #[must_use]
    pub const fn image(&self) -> &Image {
        &self.image
    }

    /// The captured registration.
    #[must_use]
    pub const fn registration(&self) -> &Registration {
        &self.registration
    }

    /// Calls made so far.
    #[must_use]
    pub fn calls(&self) -> Vec<Call> {
        kernel::with(|k| k.calls.clone()).unwrap_or_default()
    }

    /// Misuse the mock kernel recorded.
    #[must_use]
    pub fn errors(&self) -> Vec<String> {
        kernel::with(|k| k.errors.clone()).unwrap_or_default()
    }

    /// Instance setup on the volume. Returns the callback's status (success = attached).
    ///
    /// # Errors
    /// The image registered no instance setup callback.
    pub fn setup_instance(&mut self) -> Result<NtStatus> {
        let setup = self
            .registration
            .instance_setup
            .ok_or_else(|| anyhow!("no InstanceSetupCallback"))?;
        let setup: SetupFn = checked(&self.image, setup)?;
        let filesystem_type = kernel::with(|k| k.volume.filesystem_type).unwrap_or(0);
        let objects = kernel::related_objects(std::ptr::null(), std::ptr::null());
        // SAFETY: the image's instance setup callback, with related objects valid for the call.
        let status = core(unsafe {
            setup(
                &objects,
                FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT,
                FILE_DEVICE_DISK_FILE_SYSTEM,
                filesystem_type,
            )
        });
        kernel::with(|k| {
            k.instance = if status.is_success() {
                InstanceState::Attached
            } else {
                InstanceState::None
            };
        });
        Ok(status)
    }

    /// Instance teardown start (e.g. `FLTFL_INSTANCE_TEARDOWN_VOLUME_DISMOUNT`): requests that
    /// still arrive are the ones in flight during a dismount.
    ///
    /// # Errors
    /// Not attached, or no teardown callback.
    pub fn teardown_start(&mut self, reason: u32) -> Result<()> {
        let state = kernel::with(|k| k.instance).unwrap_or(InstanceState::None);
        ensure!(state == InstanceState::Attached, "instance is {state:?}");
        if let Some(start) = self.registration.instance_teardown_start {
            let start: TeardownFn = checked(&self.image, start)?;
            let objects = kernel::related_objects(std::ptr::null(), std::ptr::null());
            // SAFETY: the image's teardown-start callback with valid related objects.
            unsafe { start(&objects, reason) };
        }
        kernel::with(|k| k.instance = InstanceState::TearingDown);
        Ok(())
    }

    fn fs_control_callbacks(&self) -> Result<Option<(PreFn, Option<PostFn>)>> {
        let Some(row) = self
            .registration
            .operations
            .iter()
            .find(|op| u32::from(op.major_function) == IRP_MJ_FILE_SYSTEM_CONTROL)
        else {
            return Ok(None);
        };
        let Some(pre) = row.pre else {
            return Ok(None);
        };
        let post = row.post.map(|p| checked(&self.image, p)).transpose()?;
        Ok(Some((checked(&self.image, pre)?, post)))
    }

    /// Sends one `IRP_MJ_FILE_SYSTEM_CONTROL` (METHOD_BUFFERED) through the filter; `below`
    /// answers for the file system and storage when the request goes down.
    ///
    /// # Errors
    /// The image returned an unknown callback status, or the mock kernel is gone.
    pub fn fs_control(
        &mut self,
        request: &FsControlRequest,
        below: Below<'_>,
    ) -> Result<FsControlResult> {
        let mark = kernel::with(|k| k.calls.len()).ok_or_else(|| anyhow!("no kernel"))?;
        let attached = kernel::with(|k| {
            matches!(
                k.instance,
                InstanceState::Attached | InstanceState::TearingDown
            )
        })
        .unwrap_or(false);
        let input_len = u32::try_from(request.input.len()).context("input too long")?;
        let output_len = u32::try_from(request.output_len).context("output too long")?;
        // METHOD_BUFFERED: one system buffer of max(in, out) bytes holding the input.
        let mut system_buffer = vec![0u8; request.input.len().max(request.output_len)];
        if let Some(head) = system_buffer.get_mut(..request.input.len()) {
            head.copy_from_slice(&request.input);
        }
        let callbacks = if attached {
            self.fs_control_callbacks()?
        } else {
            None
        };
        let Some((pre, post)) = callbacks else {
            let (status, information) = below(&mut system_buffer, request.input.len());
            return Ok(finish(
                PreResult::NotAttached,
                status,
                information,
                &system_buffer,
                request.output_len,
                mark,
                mark,
                false,
                false,
                Some(status),
            ));
        };

        // The stream control block and file object the request arrives on.
        let file = request.file;
        let mut scb = Box::new(StreamControlBlock {
            header: FSRTL_COMMON_FCB_HEADER {
                NodeTypeCode: 0x0705,
                NodeByteSize: i16::try_from(size_of::<StreamControlBlock>()).unwrap_or(0),
                Flags: FSRTL_FLAG_ADVANCED_FCB_HEADER,
                AllocationSize: file.info.allocation_size,
                FileSize: file.info.end_of_file,
                ValidDataLength: file.valid_data_length,
                ..FSRTL_COMMON_FCB_HEADER::default()
            },
            rest: [0; 128],
        });
        let mut file_object = Box::new(FILE_OBJECT {
            Type: 5,
            Size: i16::try_from(size_of::<FILE_OBJECT>()).unwrap_or(0),
            FsContext: (&raw mut *scb).cast::<c_void>(),
            ReadAccess: file.read_access,
            WriteAccess: file.write_access,
            Flags: if file.cleanup_complete {
                FO_CLEANUP_COMPLETE
            } else {
                0
            },
            ..FILE_OBJECT::default()
        });
        let file_object_ptr: *mut FILE_OBJECT = &mut *file_object;
        // Any non-NULL KTRANSACTION stands for "enlisted in a transaction"; odxflt only tests it.
        let transaction_marker = Box::new(0u64);
        let transaction: *const KTRANSACTION = if file.transacted {
            (&raw const *transaction_marker).cast()
        } else {
            std::ptr::null()
        };
        kernel::with(|k| k.set_file(file_object_ptr, file.info));

        let mut parameters = FLT_PARAMETERS::default();
        parameters.FileSystemControl.Buffered.OutputBufferLength = output_len;
        parameters.FileSystemControl.Buffered.InputBufferLength = input_len;
        parameters.FileSystemControl.Buffered.FsControlCode = request.code;
        parameters.FileSystemControl.Buffered.SystemBuffer = if system_buffer.is_empty() {
            std::ptr::null_mut()
        } else {
            system_buffer.as_mut_ptr().cast()
        };
        let iopb = Box::new(FLT_IO_PARAMETER_BLOCK {
            IrpFlags: 0,
            MajorFunction: u8::try_from(IRP_MJ_FILE_SYSTEM_CONTROL).unwrap_or(0x0D),
            MinorFunction: request.minor_function,
            OperationFlags: 0,
            Reserved: 0,
            TargetFileObject: file_object_ptr,
            TargetInstance: kernel::INSTANCE_HANDLE,
            Parameters: parameters,
        });
        let mut data = Box::new(FLT_CALLBACK_DATA {
            Flags: FLTFL_CALLBACK_DATA_IRP_OPERATION,
            Iopb: &raw const *iopb,
            RequestorMode: i8::try_from(if request.kernel_requestor {
                KernelMode
            } else {
                UserMode
            })
            .unwrap_or(1),
            ..FLT_CALLBACK_DATA::default()
        });
        let data_ptr: *mut FLT_CALLBACK_DATA = &mut *data;
        let objects = kernel::related_objects(file_object_ptr, transaction);
        let mut completion_context: *mut c_void = std::ptr::null_mut();

        // SAFETY: the image's pre-operation callback for IRP_MJ_FILE_SYSTEM_CONTROL, with
        // callback data, related objects and a completion-context slot that all outlive the
        // call; the system buffer is max(in, out) bytes as the parameters say.
        let verdict = unsafe { pre(data_ptr, &objects, &raw mut completion_context) };
        let pre_mark = kernel::with(|k| k.calls.len()).unwrap_or(mark);
        let input_rewritten = system_buffer.get(..request.input.len()) != Some(&request.input[..]);
        // Filter Manager passes down whatever the parameter block holds now.
        let down_input_len = if data.Iopb.is_null() {
            request.input.len()
        } else {
            // SAFETY: `Iopb` still points to the harness's parameter block (the image may
            // change its fields, not the pointer; checked non-NULL).
            let block = unsafe { &*data.Iopb };
            // SAFETY: an IRP_MJ_FILE_SYSTEM_CONTROL block holds FileSystemControl.
            let control = unsafe { block.Parameters.FileSystemControl };
            // SAFETY: the offload FSCTLs are METHOD_BUFFERED: the Buffered variant.
            let buffered = unsafe { control.Buffered };
            usize::try_from(buffered.InputBufferLength).unwrap_or(0)
        };
        let dirty = data.Flags & FLTFL_CALLBACK_DATA_DIRTY != 0;
        let outcome = match verdict {
            FLT_PREOP_COMPLETE => {
                // SAFETY: IoStatus.Status is the union member a completing filter writes.
                let status = core(unsafe { data.IoStatus.Anonymous.Status });
                (PreResult::Complete, status, data.IoStatus.Information, None)
            }
            FLT_PREOP_SUCCESS_NO_CALLBACK => {
                let (status, information) = below(&mut system_buffer, down_input_len);
                (PreResult::NoCallback, status, information, Some(status))
            }
            FLT_PREOP_SUCCESS_WITH_CALLBACK => {
                let (status, information) = below(&mut system_buffer, down_input_len);
                data.IoStatus.Anonymous.Status = nt(status);
                data.IoStatus.Information = information;
                let post = post.ok_or_else(|| anyhow!("WITH_CALLBACK without a post-operation"))?;
                // SAFETY: the image's post-operation callback, with the same callback data and
                // the completion context its pre-operation set, not draining.
                let post_status = unsafe { post(data_ptr, &objects, completion_context, 0) };
                ensure!(
                    post_status == 0,
                    "post-operation returned {post_status} (not FLT_POSTOP_FINISHED_PROCESSING)"
                );
                // SAFETY: as for FLT_PREOP_COMPLETE.
                let final_status = core(unsafe { data.IoStatus.Anonymous.Status });
                (
                    PreResult::WithCallback,
                    final_status,
                    data.IoStatus.Information,
                    Some(status),
                )
            }
            other => bail!("pre-operation returned {other}"),
        };
        kernel::with(|k| k.remove_file(file_object_ptr));
        // The buffers the image saw must outlive every call into it (they do: dropped here).
        drop((iopb, file_object, scb, transaction_marker));
        let (pre_result, status, information, below_status) = outcome;
        Ok(finish(
            pre_result,
            status,
            information,
            &system_buffer,
            request.output_len,
            mark,
            pre_mark,
            dirty,
            input_rewritten,
            below_status,
        ))
    }

    /// Unload: the filter unload callback (which unregisters), then the leak check.
    ///
    /// # Errors
    /// No unload callback, or unload failed.
    pub fn unload(mut self) -> Result<Leaks> {
        let unload = self
            .registration
            .unload
            .ok_or_else(|| anyhow!("no FilterUnloadCallback"))?;
        let unload: UnloadFn = checked(&self.image, unload)?;
        // SAFETY: the image's unload callback, PASSIVE_LEVEL, no request in flight.
        let status = core(unsafe { unload(0) });
        self.unloaded = true;
        ensure!(status.is_success(), "unload returned {status}");
        let (leaks, unregistered) =
            kernel::with(|k| (k.leaks(), k.unregistered)).ok_or_else(|| anyhow!("no kernel"))?;
        ensure!(unregistered, "unload did not call FltUnregisterFilter");
        Ok(leaks)
    }
}

#[allow(clippy::too_many_arguments)]
fn finish(
    pre: PreResult,
    status: NtStatus,
    information: usize,
    system_buffer: &[u8],
    output_len: usize,
    mark: usize,
    pre_mark: usize,
    dirty: bool,
    input_rewritten: bool,
    below: Option<NtStatus>,
) -> FsControlResult {
    let shown = information.min(system_buffer.len());
    let _ = output_len;
    let (calls, pre_calls) = kernel::with(|k| {
        (
            k.calls.get(mark..).unwrap_or_default().to_vec(),
            k.calls.get(mark..pre_mark).unwrap_or_default().to_vec(),
        )
    })
    .unwrap_or_default();
    FsControlResult {
        pre,
        status,
        information,
        output: system_buffer.get(..shown).unwrap_or_default().to_vec(),
        calls,
        pre_calls,
        dirty,
        input_rewritten,
        below,
    }
}

impl Drop for LoadedDriver {
    fn drop(&mut self) {
        kernel::uninstall();
        let _ = self.unloaded;
    }
}
