//! The loaded odxflt.sys as the mock Filter Manager drives it: `DriverEntry`, instance setup,
//! one `IRP_MJ_FILE_SYSTEM_CONTROL` at a time through the captured pre/post-operation callbacks,
//! teardown and unload.

use std::ffi::c_void;

use anyhow::{Context, Result, anyhow, bail, ensure};
use odx_core::NtStatus;

use crate::kernel::fault::Fault;
use crate::kernel::registry::OwnedUnicode;
use crate::kernel::{
    self, Call, FileInfo, INSTANCE_HANDLE, InstanceState, KernelResolver, Leaks, PostFn, PreFn,
    Registration, SetupFn, TeardownFn, UnloadFn, VolumeInfo, core, irql, nt,
};
use crate::layouts::{Blob, shapes};
use crate::pe::Image;

/// `PFLT_CONNECT_NOTIFY`.
type PortConnectFn =
    unsafe extern "win64" fn(isize, *const c_void, *const c_void, u32, *mut *mut c_void) -> i32;
/// `PFLT_MESSAGE_NOTIFY`.
type PortMessageFn =
    unsafe extern "win64" fn(*const c_void, *const c_void, u32, *mut c_void, u32, *mut u32) -> i32;

/// `DriverEntry`.
type DriverEntryFn = unsafe extern "win64" fn(*mut c_void, *const c_void) -> i32;

/// `FILE_DEVICE_DISK_FILE_SYSTEM` (the volume device type instance setup is offered).
const FILE_DEVICE_DISK_FILE_SYSTEM: u32 = 0x0000_0008;
/// `NodeTypeCode` of an NTFS stream control block (any non-zero value; odxflt does not read it).
const NTFS_NTC_SCB_DATA: i16 = 0x0705;
/// Bytes of a stream control block beyond its FCB header (never read by a filter).
const SCB_TAIL: usize = 128;

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
    /// `FsContext` belongs to another driver (a filter below, not NTFS): its header has no
    /// `FSRTL_FLAG_ADVANCED_HEADER`, or it is advanced but its `ValidDataLength` is
    /// whatever that driver keeps there.
    pub foreign_header: Option<ForeignHeader>,
    /// `FltQueryInformationFile` answers.
    pub info: FileInfo,
}

/// What a foreign `FsContext` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForeignHeader {
    /// A common FCB header without `FSRTL_FLAG_ADVANCED_HEADER`.
    NotAdvanced,
    /// An advanced header whose `ValidDataLength` is this (e.g. a bogus 0).
    Advanced(i64),
}

/// One `IRP_MJ_FILE_SYSTEM_CONTROL` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsControlRequest {
    /// IRQL of the pre-operation callback (PASSIVE_LEVEL or APC_LEVEL for an FSCTL).
    pub pre_irql: u8,
    /// IRQL of the post-operation callback (up to DISPATCH_LEVEL).
    pub post_irql: u8,
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
    /// The pre-operation changed the parameter block (what makes callback data dirty).
    pub parameters_changed: bool,
    /// The pre-operation rewrote the input bytes in the system buffer.
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

/// What `DriverEntry` did.
#[derive(Debug)]
pub enum Load {
    /// Registered and started.
    Started(LoadedDriver),
    /// `DriverEntry` failed (as it may when a kernel routine fails).
    Refused {
        /// Its status.
        status: NtStatus,
        /// What it left behind.
        leaks: Leaks,
        /// Misuse recorded.
        errors: Vec<String>,
    },
}

/// A loaded and started odxflt.sys with its mock kernel (thread-local: one per thread).
pub struct LoadedDriver {
    image: Image,
    registration: Registration,
    driver_object: Blob,
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
        match Self::load_with_fault(image_bytes, volume, default_policy, None)? {
            Load::Started(driver) => Ok(driver),
            Load::Refused { status, .. } => bail!("DriverEntry failed with {status}"),
        }
    }

    /// [`Self::load_with_policy`] with one kernel routine made to fail (`kernel::fault`). A
    /// `DriverEntry` that fails is not an error here: what it left behind is returned.
    ///
    /// # Errors
    /// Loading fails, or `DriverEntry` succeeded without registering and starting the filter.
    pub fn load_with_fault(
        image_bytes: &[u8],
        volume: VolumeInfo,
        default_policy: Option<u32>,
        fault: Option<Fault>,
    ) -> Result<Load> {
        let image = Image::load(image_bytes, &KernelResolver)?;
        kernel::install(volume, default_policy)?;
        kernel::with(|k| k.faults.plan = fault);
        let d = shapes().driver_object;
        let mut driver_object = Blob::new(d.size);
        driver_object.put::<i16>(d.type_field, 4); // IO_TYPE_DRIVER
        driver_object.put::<i16>(d.size_field, i16::try_from(d.size).unwrap_or(0));
        let mut driver = Self {
            image,
            registration: Registration::default(),
            driver_object,
            unloaded: false,
        };
        let entry = driver
            .image
            .export("DriverEntry")
            .ok_or_else(|| anyhow!("the image does not export DriverEntry"))?;
        let entry: DriverEntryFn = checked(&driver.image, entry)?;
        let registry = OwnedUnicode::new(kernel::SERVICE_KEY)?;
        irql::set(0);
        // SAFETY: DriverEntry of the loaded image, called once at PASSIVE_LEVEL with a driver
        // object and registry path (laid out by the table) that outlive the call; its imports
        // are bound to this module's kernel.
        let status =
            core(unsafe { entry(driver.driver_object.as_ptr(), registry.string.as_ptr()) });
        if !status.is_success() {
            // Filter Manager never calls a driver whose DriverEntry failed; the image is
            // unmapped. Whatever it left registered, allocated or open is a leak.
            let (leaks, errors, registered) = kernel::with(|k| {
                (
                    k.leaks(),
                    k.errors.clone(),
                    k.registration.is_some() && !k.unregistered,
                )
            })
            .ok_or_else(|| anyhow!("mock kernel missing"))?;
            let mut errors = errors;
            if registered {
                errors.push(format!(
                    "DriverEntry failed with {status} but left the filter registered"
                ));
            }
            driver.unloaded = true;
            return Ok(Load::Refused {
                status,
                leaks,
                errors,
            });
        }
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
        Ok(Load::Started(driver))
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

    /// Instance setup of a new instance on the volume (the first call sets up instance 0, a
    /// second one a second instance, as `fltmc attach -i` does). Returns the callback's status
    /// (success = attached).
    ///
    /// # Errors
    /// The image registered no instance setup callback.
    pub fn setup_instance(&mut self) -> Result<NtStatus> {
        let filesystem_type = kernel::with(|k| k.volume.filesystem_type).unwrap_or(0);
        self.setup_instance_for(filesystem_type)
    }

    /// Instance setup offered for a volume of `filesystem_type` (`FLT_FSTYPE_*`).
    ///
    /// # Errors
    /// The image registered no instance setup callback.
    pub fn setup_instance_for(&mut self, filesystem_type: i32) -> Result<NtStatus> {
        let setup = self
            .registration
            .instance_setup
            .ok_or_else(|| anyhow!("no InstanceSetupCallback"))?;
        let setup: SetupFn = checked(&self.image, setup)?;
        let handle = kernel::with(|k| {
            let handle = INSTANCE_HANDLE + 0x100 * isize::try_from(k.instances.len()).unwrap_or(0);
            k.instances.push(kernel::Instance::new(handle));
            handle
        })
        .ok_or_else(|| anyhow!("no kernel"))?;
        let objects = kernel::related_objects(handle, std::ptr::null(), std::ptr::null());
        irql::set(0);
        let flags = shapes().constants.fltfl_instance_setup_automatic_attachment;
        // SAFETY: the image's instance setup callback at PASSIVE_LEVEL, with related objects
        // valid for the call.
        let status = core(unsafe {
            setup(
                objects.as_ptr(),
                flags,
                FILE_DEVICE_DISK_FILE_SYSTEM,
                filesystem_type,
            )
        });
        kernel::with(|k| {
            if let Some(instance) = k.instances.iter_mut().find(|i| i.handle == handle) {
                instance.state = if status.is_success() {
                    InstanceState::Attached
                } else {
                    InstanceState::None
                };
            }
        });
        Ok(status)
    }

    /// Number of instances offered so far.
    #[must_use]
    pub fn instances(&self) -> usize {
        kernel::with(|k| k.instances.len()).unwrap_or(0)
    }

    fn instance_handle(index: usize) -> Result<(isize, InstanceState)> {
        kernel::with(|k| k.instances.get(index).map(|i| (i.handle, i.state)))
            .flatten()
            .ok_or_else(|| anyhow!("no instance {index}"))
    }

    /// Instance teardown start of instance 0 (e.g. `FLTFL_INSTANCE_TEARDOWN_VOLUME_DISMOUNT`):
    /// requests that still arrive are the ones in flight during the teardown.
    ///
    /// # Errors
    /// Not attached, or no teardown callback.
    pub fn teardown_start(&mut self, reason: u32) -> Result<()> {
        self.teardown_start_on(0, reason)
    }

    /// Instance teardown start of instance `index`.
    ///
    /// # Errors
    /// Not attached, or no teardown callback.
    pub fn teardown_start_on(&mut self, index: usize, reason: u32) -> Result<()> {
        let (handle, state) = Self::instance_handle(index)?;
        ensure!(state == InstanceState::Attached, "instance is {state:?}");
        if let Some(start) = self.registration.instance_teardown_start {
            let start: TeardownFn = checked(&self.image, start)?;
            let objects = kernel::related_objects(handle, std::ptr::null(), std::ptr::null());
            irql::set(0);
            // SAFETY: the image's teardown-start callback with valid related objects.
            unsafe { start(objects.as_ptr(), reason) };
        }
        kernel::with(|k| {
            if let Some(i) = k.instances.get_mut(index) {
                i.state = InstanceState::TearingDown;
            }
        });
        Ok(())
    }

    /// Instance teardown complete of instance `index` (no operation of it is outstanding), then
    /// the instance is deleted and Filter Manager drops its context reference.
    ///
    /// # Errors
    /// Teardown did not start, or no callback.
    pub fn teardown_complete_on(&mut self, index: usize, reason: u32) -> Result<()> {
        let (handle, state) = Self::instance_handle(index)?;
        ensure!(
            state == InstanceState::TearingDown,
            "instance is {state:?}, not tearing down"
        );
        if let Some(complete) = self.registration.instance_teardown_complete {
            let complete: TeardownFn = checked(&self.image, complete)?;
            let objects = kernel::related_objects(handle, std::ptr::null(), std::ptr::null());
            irql::set(0);
            // SAFETY: the image's teardown-complete callback with valid related objects.
            unsafe { complete(objects.as_ptr(), reason) };
        }
        kernel::with(|k| kernel::context::delete_instance(k, handle));
        Ok(())
    }

    fn fs_control_callbacks(&self) -> Result<Option<(PreFn, Option<PostFn>)>> {
        let Some(row) = self
            .registration
            .operations
            .iter()
            .find(|op| op.major_function == shapes().constants.irp_mj_file_system_control)
        else {
            return Ok(None);
        };
        let Some(pre) = row.pre else {
            return Ok(None);
        };
        let post = row.post.map(|p| checked(&self.image, p)).transpose()?;
        Ok(Some((checked(&self.image, pre)?, post)))
    }

    /// Sends one `IRP_MJ_FILE_SYSTEM_CONTROL` (METHOD_BUFFERED) through instance 0.
    ///
    /// # Errors
    /// As [`Self::fs_control_on`].
    pub fn fs_control(
        &mut self,
        request: &FsControlRequest,
        below: Below<'_>,
    ) -> Result<FsControlResult> {
        self.fs_control_on(0, request, below)
    }

    /// Sends one `IRP_MJ_FILE_SYSTEM_CONTROL` (METHOD_BUFFERED) through instance `index`;
    /// `below` answers for the file system and storage when the request goes down. Every
    /// structure the image receives is laid out by the golden table.
    ///
    /// # Errors
    /// The image returned an unknown callback status, or the mock kernel is gone.
    pub fn fs_control_on(
        &mut self,
        index: usize,
        request: &FsControlRequest,
        below: Below<'_>,
    ) -> Result<FsControlResult> {
        self.fs_control_between(index, request, below, &mut |_| Ok(false))
    }

    /// [`Self::fs_control_on`], with `between` run while a forwarded request is outstanding
    /// (after pre-operation and the layers below, before post-operation): it may tear the
    /// instance down or unload; when it returns `true`, post-operation is delivered with
    /// `FLTFL_POST_OPERATION_DRAINING`, as Filter Manager drains outstanding operations during
    /// teardown.
    ///
    /// # Errors
    /// As [`Self::fs_control_on`], or what `between` returns.
    #[allow(clippy::too_many_lines)]
    pub fn fs_control_between(
        &mut self,
        index: usize,
        request: &FsControlRequest,
        below: Below<'_>,
        between: &mut dyn FnMut(&mut Self) -> Result<bool>,
    ) -> Result<FsControlResult> {
        let s = shapes();
        let c = s.constants;
        let mark = kernel::with(|k| k.calls.len()).ok_or_else(|| anyhow!("no kernel"))?;
        let (instance, state) = Self::instance_handle(index).unwrap_or((0, InstanceState::None));
        let attached = matches!(state, InstanceState::Attached | InstanceState::TearingDown);
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
                (status, information),
                &system_buffer,
                (mark, mark),
                (false, false, false),
                Some(status),
            ));
        };

        // The stream control block (an advanced FCB header first) and the file object.
        let file = request.file;
        let h = s.advanced_fcb_header;
        let mut scb = Blob::new(h.size + SCB_TAIL);
        scb.put::<i16>(h.node_type_code, NTFS_NTC_SCB_DATA);
        scb.put::<i16>(h.node_byte_size, i16::try_from(scb.len()).unwrap_or(0));
        let (header_flags, vdl) = match file.foreign_header {
            None => (c.fsrtl_flag_advanced_fcb_header, file.valid_data_length),
            Some(ForeignHeader::NotAdvanced) => (0, file.valid_data_length),
            Some(ForeignHeader::Advanced(vdl)) => (c.fsrtl_flag_advanced_fcb_header, vdl),
        };
        scb.put::<u8>(h.flags, header_flags);
        scb.put::<i64>(h.allocation_size, file.info.allocation_size);
        scb.put::<i64>(h.file_size, file.info.end_of_file);
        scb.put::<i64>(h.valid_data_length, vdl);
        let f = s.file_object;
        let mut file_object = Blob::new(f.size);
        file_object.put::<i16>(f.type_field, 5); // IO_TYPE_FILE
        file_object.put::<i16>(f.size_field, i16::try_from(f.size).unwrap_or(0));
        file_object.put::<usize>(f.fs_context, scb.as_ptr() as usize);
        file_object.put::<u8>(f.read_access, u8::from(file.read_access));
        file_object.put::<u8>(f.write_access, u8::from(file.write_access));
        let flags = if file.cleanup_complete {
            c.fo_cleanup_complete
        } else {
            0
        };
        file_object.put::<u32>(f.flags, flags);
        // Any non-NULL KTRANSACTION stands for "enlisted in a transaction"; odxflt only tests it.
        let transaction_marker = Blob::new(16);
        let transaction = if file.transacted {
            transaction_marker.as_ptr().cast_const()
        } else {
            std::ptr::null()
        };
        kernel::with(|k| {
            k.set_file(file_object.as_ptr(), file.info);
            k.names.begin_request(file_object.as_ptr());
        });

        // FLT_IO_PARAMETER_BLOCK with FLT_PARAMETERS.FileSystemControl.Buffered inside it.
        let (b, p) = (s.iopb, s.parameters);
        let mut iopb = Blob::new(b.size);
        iopb.put::<u8>(b.major_function, c.irp_mj_file_system_control);
        iopb.put::<u8>(b.minor_function, request.minor_function);
        iopb.put::<usize>(b.target_file_object, file_object.as_ptr() as usize);
        iopb.put::<isize>(b.target_instance, instance);
        let params = b.parameters;
        iopb.put::<u32>(params + p.output_buffer_length, output_len);
        iopb.put::<u32>(params + p.input_buffer_length, input_len);
        iopb.put::<u32>(params + p.fs_control_code, request.code);
        let buffer_address = if system_buffer.is_empty() {
            0
        } else {
            system_buffer.as_mut_ptr() as usize
        };
        iopb.put::<usize>(params + p.system_buffer, buffer_address);
        let parameters_before: Vec<u8> = (0..b.size).map(|i| iopb.get::<u8>(i)).collect();
        let d = s.callback_data;
        let mut data = Blob::new(d.size);
        data.put::<u32>(d.flags, c.fltfl_callback_data_irp_operation);
        data.put::<usize>(d.iopb, iopb.as_ptr() as usize);
        let mode = if request.kernel_requestor {
            c.kernel_mode
        } else {
            c.user_mode
        };
        data.put::<i8>(d.requestor_mode, mode);
        let objects =
            kernel::related_objects(instance, file_object.as_ptr().cast_const(), transaction);
        let mut completion_context: *mut c_void = std::ptr::null_mut();

        irql::set(request.pre_irql);
        let reads = irql::cr8_reads();
        // SAFETY: the image's pre-operation callback for IRP_MJ_FILE_SYSTEM_CONTROL, with
        // callback data, related objects and a completion-context slot that all outlive the
        // call; the system buffer is max(in, out) bytes as the parameters say.
        let verdict = unsafe { pre(data.as_ptr(), objects.as_ptr(), &raw mut completion_context) };
        irql::note_reads(reads);
        irql::set(0);
        let pre_mark = kernel::with(|k| k.calls.len()).unwrap_or(mark);
        let input_rewritten = system_buffer.get(..request.input.len()) != Some(&request.input[..]);
        let parameters_changed =
            (0..b.size).any(|i| parameters_before.get(i) != Some(&iopb.get::<u8>(i)));
        ensure!(
            data.get::<usize>(d.iopb) == iopb.as_ptr() as usize,
            "pre-operation replaced Iopb"
        );
        // Filter Manager passes down whatever the parameter block holds now.
        let down_input_len = usize::try_from(iopb.get::<u32>(params + p.input_buffer_length))
            .unwrap_or(0)
            .min(system_buffer.len());
        let dirty = data.get::<u32>(d.flags) & c.fltfl_callback_data_dirty != 0;
        let io_status = |data: &Blob| -> (NtStatus, usize) {
            (
                core(data.get::<i32>(d.status)),
                data.get::<usize>(d.information),
            )
        };
        let outcome = if verdict == c.flt_preop_complete {
            let (status, information) = io_status(&data);
            (PreResult::Complete, status, information, None)
        } else if verdict == c.flt_preop_success_no_callback {
            let (status, information) = below(&mut system_buffer, down_input_len);
            (PreResult::NoCallback, status, information, Some(status))
        } else if verdict == c.flt_preop_success_with_callback {
            let (status, information) = below(&mut system_buffer, down_input_len);
            data.put::<i32>(d.status, nt(status));
            data.put::<usize>(d.information, information);
            let post = post.ok_or_else(|| anyhow!("WITH_CALLBACK without a post-operation"))?;
            let draining = between(self)?;
            let flags = if draining {
                c.fltfl_post_operation_draining
            } else {
                0
            };
            irql::set(request.post_irql);
            let reads = irql::cr8_reads();
            // SAFETY: the image's post-operation callback, with the same callback data and
            // the completion context its pre-operation set (draining or not), once.
            let post_status =
                unsafe { post(data.as_ptr(), objects.as_ptr(), completion_context, flags) };
            irql::note_reads(reads);
            irql::set(0);
            ensure!(
                post_status == c.flt_postop_finished_processing,
                "post-operation returned {post_status} (not FLT_POSTOP_FINISHED_PROCESSING)"
            );
            let (final_status, final_information) = io_status(&data);
            (
                PreResult::WithCallback,
                final_status,
                final_information,
                Some(status),
            )
        } else {
            bail!("pre-operation returned {verdict}");
        };
        kernel::with(|k| {
            k.remove_file(file_object.as_ptr());
            k.names.end_request(file_object.as_ptr());
        });
        // The structures the image saw must outlive every call into it (they do: dropped here).
        drop((iopb, file_object, scb, transaction_marker, objects));
        let (pre_result, status, information, below_status) = outcome;
        Ok(finish(
            pre_result,
            (status, information),
            &system_buffer,
            (mark, pre_mark),
            (dirty, parameters_changed, input_rewritten),
            below_status,
        ))
    }

    /// A client connects to the image's communication port (`FilterConnectCommunicationPort`):
    /// Filter Manager refuses it itself when `MaxConnections` clients are connected
    /// (`STATUS_CONNECTION_COUNT_LIMIT`), else calls the image's connect callback.
    ///
    /// # Errors
    /// The image created no port, or its callback is outside the image.
    pub fn port_connect(&mut self) -> Result<NtStatus> {
        let (callbacks, connected) = kernel::with(|k| (k.port_callbacks, k.connection))
            .ok_or_else(|| anyhow!("no kernel"))?;
        let callbacks = callbacks.ok_or_else(|| anyhow!("the image created no port"))?;
        let connections = i32::from(connected.is_some_and(|c| !c.closed));
        if connections >= callbacks.max_connections {
            return Ok(NtStatus(0xC000_0246)); // STATUS_CONNECTION_COUNT_LIMIT
        }
        let connect: PortConnectFn = checked(&self.image, callbacks.connect)?;
        let mut cookie: *mut c_void = std::ptr::null_mut();
        irql::set(0);
        // SAFETY: the image's PFLT_CONNECT_NOTIFY at PASSIVE_LEVEL, with the client port handle,
        // the server cookie it registered, no connection context, and a valid cookie slot.
        let status = core(unsafe {
            connect(
                kernel::port::CLIENT_HANDLE,
                callbacks.cookie as *const c_void,
                std::ptr::null(),
                0,
                &raw mut cookie,
            )
        });
        if status.is_success() {
            kernel::with(|k| {
                k.connection = Some(kernel::port::Connection {
                    cookie: cookie as usize,
                    closed: false,
                });
            });
        }
        Ok(status)
    }

    /// `FilterSendMessage`: `input` (or NULL) and an output buffer of `output_len` bytes to the
    /// image's message callback; its status and the reply bytes it reported.
    ///
    /// # Errors
    /// No client is connected.
    pub fn port_message(
        &mut self,
        input: Option<&[u8]>,
        output_len: usize,
    ) -> Result<(NtStatus, Vec<u8>)> {
        let (callbacks, connection) = kernel::with(|k| (k.port_callbacks, k.connection))
            .ok_or_else(|| anyhow!("no kernel"))?;
        let callbacks = callbacks.ok_or_else(|| anyhow!("the image created no port"))?;
        let connection = connection
            .filter(|c| !c.closed)
            .ok_or_else(|| anyhow!("no client is connected"))?;
        let message: PortMessageFn = checked(&self.image, callbacks.message)?;
        let mut output = vec![0u8; output_len];
        let mut returned = 0u32;
        let (input_ptr, input_len) = input.map_or((std::ptr::null(), 0), |i| {
            (i.as_ptr().cast::<c_void>(), i.len())
        });
        let output_ptr = if output_len == 0 {
            std::ptr::null_mut()
        } else {
            output.as_mut_ptr().cast::<c_void>()
        };
        irql::set(0);
        // SAFETY: the image's PFLT_MESSAGE_NOTIFY at PASSIVE_LEVEL with the connection's cookie
        // and buffers of the stated lengths (valid for the call), as FilterSendMessage passes
        // them.
        let status = core(unsafe {
            message(
                connection.cookie as *const c_void,
                input_ptr,
                u32::try_from(input_len)?,
                output_ptr,
                u32::try_from(output_len)?,
                &raw mut returned,
            )
        });
        let returned = usize::try_from(returned)?;
        ensure!(
            returned <= output_len,
            "the message callback reported {returned} reply bytes for a {output_len}-byte buffer"
        );
        output.truncate(if status.is_success() { returned } else { 0 });
        Ok((status, output))
    }

    /// The client disconnects (`CloseHandle` on its port): the image's disconnect callback,
    /// which must close the client port.
    ///
    /// # Errors
    /// No client is connected, or the image did not close the client port.
    pub fn port_disconnect(&mut self) -> Result<()> {
        let (callbacks, connection) = kernel::with(|k| (k.port_callbacks, k.connection))
            .ok_or_else(|| anyhow!("no kernel"))?;
        let callbacks = callbacks.ok_or_else(|| anyhow!("the image created no port"))?;
        let connection = connection
            .filter(|c| !c.closed)
            .ok_or_else(|| anyhow!("no client is connected"))?;
        let disconnect: kernel::port::DisconnectFn = checked(&self.image, callbacks.disconnect)?;
        irql::set(0);
        // SAFETY: the image's PFLT_DISCONNECT_NOTIFY at PASSIVE_LEVEL, once for the connection.
        unsafe { disconnect(connection.cookie as *const c_void) };
        let closed = kernel::with(|k| {
            let closed = k.connection.is_some_and(|c| c.closed);
            k.connection = None;
            closed
        })
        .unwrap_or(false);
        ensure!(
            closed,
            "the disconnect callback did not close the client port"
        );
        Ok(())
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
        irql::set(0);
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

fn finish(
    pre: PreResult,
    (status, information): (NtStatus, usize),
    system_buffer: &[u8],
    (mark, pre_mark): (usize, usize),
    (dirty, parameters_changed, input_rewritten): (bool, bool, bool),
    below: Option<NtStatus>,
) -> FsControlResult {
    let shown = information.min(system_buffer.len());
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
        parameters_changed,
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
