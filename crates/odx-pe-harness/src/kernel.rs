//! The mock kernel: `extern "win64"` replacements for every function odxflt.sys imports from
//! `ntoskrnl.exe` and `fltmgr.sys`, answering from a simulated volume and recording every call.
//!
//! State lives in a thread-local [`Kernel`] installed by [`install`] (one loaded image per
//! thread). Every replacement borrows it only for its own bookkeeping, never while calling back
//! into the image, so callbacks that call the kernel again (teardown during
//! `FltUnregisterFilter`) work. A replacement never panics: misuse is recorded in
//! [`Kernel::errors`] and answered with a failure status, as a checked build of the kernel would.

use std::alloc::Layout;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::c_void;

use odx_core::NtStatus;
use windows_sys::Wdk::Foundation::{DRIVER_OBJECT, FILE_OBJECT};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CALLBACK_DATA, FLT_CONTEXT_REGISTRATION, FLT_OPERATION_REGISTRATION, FLT_REGISTRATION,
    FLT_RELATED_OBJECTS, FLT_SET_CONTEXT_KEEP_IF_EXISTS, FLT_SET_CONTEXT_REPLACE_IF_EXISTS,
    FLTFL_CALLBACK_DATA_DIRTY, FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD,
};
use windows_sys::Wdk::Storage::FileSystem::{
    FILE_BASIC_INFORMATION, FILE_FS_SECTOR_SIZE_INFORMATION, FILE_STANDARD_INFORMATION,
    FileBasicInformation, FileFsSectorSizeInformation, FileFsSizeInformation,
    FileStandardInformation,
};
use windows_sys::Wdk::System::SystemServices::FILE_FS_SIZE_INFORMATION;
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

/// The opaque handles the mock Filter Manager hands out.
pub const FILTER_HANDLE: isize = 0x0DF1_0001;
/// The one volume.
pub const VOLUME_HANDLE: isize = 0x0DF1_0002;
/// The one instance.
pub const INSTANCE_HANDLE: isize = 0x0DF1_0003;

/// `IRP_MJ_OPERATION_END`.
const OPERATION_END: u8 = 0x80;
/// `FLT_CONTEXT_END`.
const CONTEXT_END: u16 = 0xFFFF;
/// Most rows read from a registration table before giving up on a missing end marker.
const MAX_ROWS: usize = 64;

const STATUS_INVALID_INFO_CLASS: NtStatus = NtStatus(0xC000_0003);
const STATUS_INFO_LENGTH_MISMATCH: NtStatus = NtStatus(0xC000_0004);
const STATUS_NOT_FOUND: NtStatus = NtStatus(0xC000_0225);
const STATUS_FLT_CONTEXT_ALREADY_DEFINED: NtStatus = NtStatus(0xC01C_0002);
const STATUS_INVALID_PARAMETER: NtStatus = NtStatus::STATUS_INVALID_PARAMETER;

/// The kernel's `NTSTATUS` for a core status.
#[must_use]
pub const fn nt(status: NtStatus) -> i32 {
    i32::from_ne_bytes(status.0.to_ne_bytes())
}

/// A core status from the kernel's `NTSTATUS`.
#[must_use]
pub const fn core(status: i32) -> NtStatus {
    NtStatus(u32::from_ne_bytes(status.to_ne_bytes()))
}

/// `PFLT_PRE_OPERATION_CALLBACK` as the image implements it (Win64 ABI).
pub type PreFn = unsafe extern "win64" fn(
    *mut FLT_CALLBACK_DATA,
    *const FLT_RELATED_OBJECTS,
    *mut *mut c_void,
) -> i32;
/// `PFLT_POST_OPERATION_CALLBACK`.
pub type PostFn = unsafe extern "win64" fn(
    *mut FLT_CALLBACK_DATA,
    *const FLT_RELATED_OBJECTS,
    *const c_void,
    u32,
) -> i32;
/// `PFLT_INSTANCE_SETUP_CALLBACK`.
pub type SetupFn = unsafe extern "win64" fn(*const FLT_RELATED_OBJECTS, u32, u32, i32) -> i32;
/// `PFLT_INSTANCE_TEARDOWN_CALLBACK`.
pub type TeardownFn = unsafe extern "win64" fn(*const FLT_RELATED_OBJECTS, u32);
/// `PFLT_INSTANCE_QUERY_TEARDOWN_CALLBACK`.
pub type QueryTeardownFn = unsafe extern "win64" fn(*const FLT_RELATED_OBJECTS, u32) -> i32;
/// `PFLT_FILTER_UNLOAD_CALLBACK`.
pub type UnloadFn = unsafe extern "win64" fn(u32) -> i32;

/// One row of the captured operation registration (addresses inside the image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperationRow {
    /// `MajorFunction`.
    pub major_function: u8,
    /// `Flags`.
    pub flags: u32,
    /// `PreOperation` address.
    pub pre: Option<usize>,
    /// `PostOperation` address.
    pub post: Option<usize>,
}

/// One row of the captured context registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextRow {
    /// `ContextType`.
    pub context_type: u16,
    /// `Size`.
    pub size: usize,
    /// `PoolTag`.
    pub pool_tag: u32,
    /// A cleanup callback is registered.
    pub cleanup: bool,
}

/// The `FLT_REGISTRATION` the image passed to `FltRegisterFilter`, copied out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registration {
    /// `Size`.
    pub size: u16,
    /// `Version`.
    pub version: u16,
    /// `Flags`.
    pub flags: u32,
    /// Operations up to the end marker.
    pub operations: Vec<OperationRow>,
    /// Contexts up to the end marker.
    pub contexts: Vec<ContextRow>,
    /// `FilterUnloadCallback`.
    pub unload: Option<usize>,
    /// `InstanceSetupCallback`.
    pub instance_setup: Option<usize>,
    /// `InstanceQueryTeardownCallback`.
    pub instance_query_teardown: Option<usize>,
    /// `InstanceTeardownStartCallback`.
    pub instance_teardown_start: Option<usize>,
    /// `InstanceTeardownCompleteCallback`.
    pub instance_teardown_complete: Option<usize>,
}

impl Registration {
    /// Every callback address, for the check that all lie inside the image.
    pub fn callbacks(&self) -> impl Iterator<Item = usize> + '_ {
        self.operations
            .iter()
            .flat_map(|op| [op.pre, op.post])
            .chain([
                self.unload,
                self.instance_setup,
                self.instance_query_teardown,
                self.instance_teardown_start,
                self.instance_teardown_complete,
            ])
            .flatten()
    }
}

/// What the simulated volume answers to the volume queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VolumeInfo {
    /// `FLT_FSTYPE_*` passed to instance setup.
    pub filesystem_type: i32,
    /// `FILE_FS_SECTOR_SIZE_INFORMATION.LogicalBytesPerSector`.
    pub logical_bytes_per_sector: u32,
    /// `FILE_FS_SIZE_INFORMATION.BytesPerSector`.
    pub bytes_per_sector: u32,
    /// `FILE_FS_SIZE_INFORMATION.SectorsPerAllocationUnit`.
    pub sectors_per_allocation_unit: u32,
    /// `FltIsVolumeWritable`.
    pub writable: bool,
}

/// What `FltQueryInformationFile` answers for one file object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileInfo {
    /// `FILE_BASIC_INFORMATION.FileAttributes`.
    pub attributes: u32,
    /// `FILE_STANDARD_INFORMATION.EndOfFile`.
    pub end_of_file: i64,
    /// `AllocationSize`.
    pub allocation_size: i64,
    /// `DeletePending`.
    pub delete_pending: bool,
    /// `Directory`.
    pub directory: bool,
}

/// One recorded call into the mock kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `FltRegisterFilter`.
    RegisterFilter,
    /// `FltStartFiltering`.
    StartFiltering,
    /// `FltUnregisterFilter`.
    UnregisterFilter,
    /// `FltAllocateContext` (type).
    AllocateContext(u16),
    /// `FltSetVolumeContext` (operation).
    SetVolumeContext(i32),
    /// `FltGetVolumeContext`.
    GetVolumeContext,
    /// `FltReleaseContext`.
    ReleaseContext,
    /// `FltQueryVolumeInformation` (class).
    QueryVolumeInformation(i32),
    /// `FltIsVolumeWritable`.
    IsVolumeWritable,
    /// `FltQueryInformationFile` (class).
    QueryInformationFile(i32),
    /// `FltSetCallbackDataDirty`.
    SetCallbackDataDirty,
    /// `ExAllocatePoolWithTag` (bytes, tag).
    AllocatePool(usize, u32),
    /// `ExFreePoolWithTag` (tag).
    FreePool(u32),
    /// `ZwOpenKey`.
    OpenKey,
    /// `ZwQueryValueKey`.
    QueryValueKey,
    /// `ObCloseHandle`.
    CloseHandle,
    /// `FltBuildDefaultSecurityDescriptor` / `FltFreeSecurityDescriptor`.
    SecurityDescriptor,
    /// `FltCreateCommunicationPort`.
    CreateCommunicationPort,
    /// `FltCloseCommunicationPort` / `FltCloseClientPort`.
    ClosePort,
}

impl Call {
    /// Whether the call gathers a fact about the request or touches a context (what a
    /// "no callback" request must never cost).
    #[must_use]
    pub const fn is_fact_or_context(&self) -> bool {
        matches!(
            self,
            Self::AllocateContext(_)
                | Self::SetVolumeContext(_)
                | Self::GetVolumeContext
                | Self::ReleaseContext
                | Self::QueryVolumeInformation(_)
                | Self::IsVolumeWritable
                | Self::QueryInformationFile(_)
        )
    }
}

#[derive(Debug)]
struct Block {
    layout: Layout,
    tag: u32,
}

#[derive(Debug)]
struct ContextBlock {
    layout: Layout,
    context_type: u16,
    references: u32,
}

/// Instance state of the one volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceState {
    /// No instance (not set up, or declined).
    None,
    /// Attached.
    Attached,
    /// Teardown started (requests in flight still arrive).
    TearingDown,
    /// Torn down.
    Detached,
}

/// What is left over after unload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leaks {
    /// Pool blocks never freed: (bytes, tag).
    pub pool: Vec<(usize, u32)>,
    /// Contexts still referenced: (type, references).
    pub contexts: Vec<(u16, u32)>,
    /// Other kernel objects left open (registry keys, security descriptors, ports).
    pub objects: Vec<String>,
}

impl Leaks {
    /// Nothing leaked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pool.is_empty() && self.contexts.is_empty() && self.objects.is_empty()
    }

    /// Leaked objects.
    #[must_use]
    pub fn count(&self) -> usize {
        self.pool.len() + self.contexts.len() + self.objects.len()
    }
}

/// The mock kernel's state.
#[derive(Debug)]
pub struct Kernel {
    /// Every call, in order.
    pub calls: Vec<Call>,
    /// Misuse detected (bad handles, double frees, wrong tags, over-released contexts).
    pub errors: Vec<String>,
    /// The captured registration.
    pub registration: Option<Registration>,
    /// `FltStartFiltering` was called.
    pub started: bool,
    /// `FltUnregisterFilter` was called.
    pub unregistered: bool,
    /// The instance on the volume.
    pub instance: InstanceState,
    /// The volume's answers.
    pub volume: VolumeInfo,
    pool: BTreeMap<usize, Block>,
    contexts: BTreeMap<usize, ContextBlock>,
    volume_context: Option<usize>,
    files: HashMap<usize, FileInfo>,
    /// `Parameters\DefaultPolicy` (REG_DWORD) under the service key, if set.
    pub default_policy: Option<u32>,
    /// Registry keys open: handle → path.
    keys: BTreeMap<usize, String>,
    next_key: usize,
    /// Security descriptors from `FltBuildDefaultSecurityDescriptor` not yet freed.
    descriptors: BTreeMap<usize, Layout>,
    /// The server port (`FltCreateCommunicationPort`) while open.
    pub server_port: Option<isize>,
    /// Ports ever created.
    pub ports_created: usize,
    /// Pool allocations made (ever).
    pub pool_allocations: usize,
    /// Context references taken (allocate + get + set, ever).
    pub context_references: usize,
}

thread_local! {
    static KERNEL: RefCell<Option<Kernel>> = const { RefCell::new(None) };
}

/// Installs a fresh kernel on this thread.
///
/// # Errors
/// A kernel is already installed on this thread.
pub fn install(volume: VolumeInfo, default_policy: Option<u32>) -> anyhow::Result<()> {
    KERNEL.with(|cell| {
        let mut slot = cell
            .try_borrow_mut()
            .map_err(|_| anyhow::anyhow!("kernel state busy"))?;
        anyhow::ensure!(
            slot.is_none(),
            "a mock kernel is already installed on this thread"
        );
        *slot = Some(Kernel {
            calls: Vec::new(),
            errors: Vec::new(),
            registration: None,
            started: false,
            unregistered: false,
            instance: InstanceState::None,
            volume,
            pool: BTreeMap::new(),
            contexts: BTreeMap::new(),
            volume_context: None,
            files: HashMap::new(),
            default_policy,
            keys: BTreeMap::new(),
            next_key: 0x0DF1_1000,
            descriptors: BTreeMap::new(),
            server_port: None,
            ports_created: 0,
            pool_allocations: 0,
            context_references: 0,
        });
        Ok(())
    })
}

/// Removes this thread's kernel, freeing whatever the image left behind.
pub fn uninstall() {
    let kernel = KERNEL.with(|cell| cell.try_borrow_mut().ok().and_then(|mut k| k.take()));
    if let Some(mut kernel) = kernel {
        for (address, block) in std::mem::take(&mut kernel.pool) {
            // SAFETY: `address` was allocated with exactly this layout in ExAllocatePoolWithTag
            // and is still owned by the map; the image is no longer called.
            unsafe { std::alloc::dealloc(address as *mut u8, block.layout) };
        }
        for (address, layout) in std::mem::take(&mut kernel.descriptors) {
            // SAFETY: allocated with this layout by FltBuildDefaultSecurityDescriptor.
            unsafe { std::alloc::dealloc(address as *mut u8, layout) };
        }
        for (address, block) in std::mem::take(&mut kernel.contexts) {
            // SAFETY: as above, for FltAllocateContext's allocation.
            unsafe { std::alloc::dealloc(address as *mut u8, block.layout) };
        }
    }
}

/// Runs `f` on this thread's kernel (`None` when none is installed or it is busy).
pub fn with<R>(f: impl FnOnce(&mut Kernel) -> R) -> Option<R> {
    KERNEL.with(|cell| {
        cell.try_borrow_mut()
            .ok()
            .and_then(|mut slot| slot.as_mut().map(f))
    })
}

impl Kernel {
    fn error(&mut self, message: String) {
        self.errors.push(message);
    }

    /// Makes `file_object` answer `info` to `FltQueryInformationFile`.
    pub fn set_file(&mut self, file_object: *const FILE_OBJECT, info: FileInfo) {
        self.files.insert(file_object as usize, info);
    }

    /// Forgets a file object.
    pub fn remove_file(&mut self, file_object: *const FILE_OBJECT) {
        self.files.remove(&(file_object as usize));
    }

    /// Pool blocks outstanding now.
    #[must_use]
    pub fn pool_outstanding(&self) -> usize {
        self.pool.len()
    }

    /// References held on contexts now, excluding Filter Manager's own reference on the
    /// attached volume context.
    #[must_use]
    pub fn context_references_held(&self) -> u32 {
        let total: u32 = self.contexts.values().map(|c| c.references).sum();
        let ours = u32::from(self.volume_context.is_some());
        total.saturating_sub(ours)
    }

    /// What is left after unload.
    #[must_use]
    pub fn leaks(&self) -> Leaks {
        Leaks {
            pool: self
                .pool
                .values()
                .map(|b| (b.layout.size(), b.tag))
                .collect(),
            contexts: self
                .contexts
                .values()
                .map(|c| (c.context_type, c.references))
                .collect(),
            objects: self
                .keys
                .values()
                .map(|k| format!("registry key {k}"))
                .chain(
                    self.descriptors
                        .keys()
                        .map(|a| format!("security descriptor {a:#x}")),
                )
                .chain(
                    self.server_port
                        .map(|p| format!("communication port {p:#x}")),
                )
                .collect(),
        }
    }

    fn release(&mut self, address: usize) {
        let Some(block) = self.contexts.get_mut(&address) else {
            self.error(format!(
                "FltReleaseContext({address:#x}): not a live context"
            ));
            return;
        };
        block.references = block.references.saturating_sub(1);
        if block.references > 0 {
            return;
        }
        if self.volume_context == Some(address) {
            self.error(format!(
                "FltReleaseContext({address:#x}): last reference released while attached (over-release)"
            ));
            self.volume_context = None;
        }
        if let Some(block) = self.contexts.remove(&address) {
            // SAFETY: the context was allocated with this layout in FltAllocateContext and its
            // last reference is gone.
            unsafe { std::alloc::dealloc(address as *mut u8, block.layout) };
        }
    }

    /// Filter Manager drops its reference on the attached volume context (volume gone or
    /// filter unregistered).
    fn detach_volume_context(&mut self) {
        if let Some(address) = self.volume_context.take() {
            self.release(address);
        }
    }
}

/// The replacement for `library!symbol`, if the harness implements it.
#[must_use]
pub fn resolve(library: &str, symbol: &str) -> Option<usize> {
    let library = library.to_ascii_lowercase();
    let address = match (library.as_str(), symbol) {
        ("ntoskrnl.exe", "ExAllocatePoolWithTag") => {
            ex_allocate_pool_with_tag as *const () as usize
        }
        ("ntoskrnl.exe", "ExFreePoolWithTag") => ex_free_pool_with_tag as *const () as usize,
        ("ntoskrnl.exe", "ZwOpenKey") => zw_open_key as *const () as usize,
        ("ntoskrnl.exe", "ZwQueryValueKey") => zw_query_value_key as *const () as usize,
        ("ntoskrnl.exe", "ObCloseHandle") => ob_close_handle as *const () as usize,
        ("fltmgr.sys", "FltBuildDefaultSecurityDescriptor") => {
            flt_build_default_security_descriptor as *const () as usize
        }
        ("fltmgr.sys", "FltFreeSecurityDescriptor") => {
            flt_free_security_descriptor as *const () as usize
        }
        ("fltmgr.sys", "FltCreateCommunicationPort") => {
            flt_create_communication_port as *const () as usize
        }
        ("fltmgr.sys", "FltCloseCommunicationPort") => {
            flt_close_communication_port as *const () as usize
        }
        ("fltmgr.sys", "FltCloseClientPort") => flt_close_client_port as *const () as usize,
        ("fltmgr.sys", "FltRegisterFilter") => flt_register_filter as *const () as usize,
        ("fltmgr.sys", "FltStartFiltering") => flt_start_filtering as *const () as usize,
        ("fltmgr.sys", "FltUnregisterFilter") => flt_unregister_filter as *const () as usize,
        ("fltmgr.sys", "FltAllocateContext") => flt_allocate_context as *const () as usize,
        ("fltmgr.sys", "FltSetVolumeContext") => flt_set_volume_context as *const () as usize,
        ("fltmgr.sys", "FltGetVolumeContext") => flt_get_volume_context as *const () as usize,
        ("fltmgr.sys", "FltReleaseContext") => flt_release_context as *const () as usize,
        ("fltmgr.sys", "FltQueryVolumeInformation") => {
            flt_query_volume_information as *const () as usize
        }
        ("fltmgr.sys", "FltIsVolumeWritable") => flt_is_volume_writable as *const () as usize,
        ("fltmgr.sys", "FltQueryInformationFile") => {
            flt_query_information_file as *const () as usize
        }
        ("fltmgr.sys", "FltSetCallbackDataDirty") => {
            flt_set_callback_data_dirty as *const () as usize
        }
        _ => return None,
    };
    Some(address)
}

/// The resolver the loader uses.
#[derive(Debug)]
pub struct KernelResolver;

impl crate::pe::Resolver for KernelResolver {
    fn resolve(&self, library: &str, symbol: &str) -> Option<usize> {
        resolve(library, symbol)
    }
}

fn fill_pattern(address: *mut u8, bytes: usize) {
    // SAFETY: `address` is a fresh allocation of at least `bytes` bytes (callers below).
    unsafe { address.write_bytes(0xA5, bytes) };
}

fn allocate(bytes: usize) -> Option<(usize, Layout)> {
    let layout = Layout::from_size_align(bytes.max(1), 16).ok()?;
    // SAFETY: the layout has a non-zero size.
    let address = unsafe { std::alloc::alloc(layout) };
    if address.is_null() {
        return None;
    }
    // Pool is not zeroed: a pattern shows reliance on zeroed memory.
    fill_pattern(address, layout.size());
    Some((address as usize, layout))
}

/// `ExAllocatePoolWithTag`.
unsafe extern "win64" fn ex_allocate_pool_with_tag(
    _pool_type: i32,
    bytes: usize,
    tag: u32,
) -> *mut c_void {
    with(|k| {
        k.calls.push(Call::AllocatePool(bytes, tag));
        let Some((address, layout)) = allocate(bytes) else {
            return std::ptr::null_mut();
        };
        k.pool.insert(address, Block { layout, tag });
        k.pool_allocations += 1;
        address as *mut c_void
    })
    .unwrap_or(std::ptr::null_mut())
}

/// `ExFreePoolWithTag`.
unsafe extern "win64" fn ex_free_pool_with_tag(pointer: *mut c_void, tag: u32) {
    with(|k| {
        k.calls.push(Call::FreePool(tag));
        let address = pointer as usize;
        match k.pool.remove(&address) {
            Some(block) if block.tag == tag => {
                // SAFETY: allocated with this layout by ex_allocate_pool_with_tag, removed from
                // the map so it is freed once.
                unsafe { std::alloc::dealloc(pointer.cast(), block.layout) };
            }
            Some(block) => {
                k.error(format!(
                    "ExFreePoolWithTag({address:#x}, {tag:#x}): allocated with tag {:#x} (BAD_POOL_CALLER)",
                    block.tag
                ));
                k.pool.insert(address, block);
            }
            None => k.error(format!(
                "ExFreePoolWithTag({address:#x}): not an outstanding allocation (double free?)"
            )),
        }
    });
}

fn read_registration(registration: *const FLT_REGISTRATION) -> Result<Registration, String> {
    if registration.is_null() {
        return Err("NULL registration".to_owned());
    }
    // SAFETY: the image passes a pointer to its FLT_REGISTRATION; `Size` (the first field) is
    // always present.
    let size = unsafe { registration.cast::<u16>().read_unaligned() };
    let wanted = usize::from(size).min(size_of::<FLT_REGISTRATION>());
    if wanted < std::mem::offset_of!(FLT_REGISTRATION, GenerateFileNameCallback) {
        return Err(format!("registration Size {size} is too small"));
    }
    let mut copy = FLT_REGISTRATION::default();
    // SAFETY: the image's structure has `Size` bytes; at most that many (and at most the
    // structure's size) are copied into a local of the full size.
    unsafe {
        std::ptr::copy_nonoverlapping(
            registration.cast::<u8>(),
            (&raw mut copy).cast::<u8>(),
            wanted,
        );
    }
    let mut out = Registration {
        size,
        version: copy.Version,
        flags: copy.Flags,
        unload: copy.FilterUnloadCallback.map(|f| f as usize),
        instance_setup: copy.InstanceSetupCallback.map(|f| f as usize),
        instance_query_teardown: copy.InstanceQueryTeardownCallback.map(|f| f as usize),
        instance_teardown_start: copy.InstanceTeardownStartCallback.map(|f| f as usize),
        instance_teardown_complete: copy.InstanceTeardownCompleteCallback.map(|f| f as usize),
        ..Registration::default()
    };
    let mut row = copy.OperationRegistration;
    for _ in 0..MAX_ROWS {
        if row.is_null() {
            break;
        }
        // SAFETY: the operation table is an array ending with IRP_MJ_OPERATION_END; rows are
        // read one at a time up to that marker (or MAX_ROWS).
        let op: FLT_OPERATION_REGISTRATION = unsafe { row.read_unaligned() };
        if op.MajorFunction == OPERATION_END {
            break;
        }
        out.operations.push(OperationRow {
            major_function: op.MajorFunction,
            flags: op.Flags,
            pre: op.PreOperation.map(|f| f as usize),
            post: op.PostOperation.map(|f| f as usize),
        });
        row = row.wrapping_add(1);
    }
    let mut row = copy.ContextRegistration;
    for _ in 0..MAX_ROWS {
        if row.is_null() {
            break;
        }
        // SAFETY: the context table is an array ending with FLT_CONTEXT_END, read row by row.
        let context: FLT_CONTEXT_REGISTRATION = unsafe { row.read_unaligned() };
        if context.ContextType == CONTEXT_END {
            break;
        }
        out.contexts.push(ContextRow {
            context_type: context.ContextType,
            size: context.Size,
            pool_tag: context.PoolTag,
            cleanup: context.ContextCleanupCallback.is_some(),
        });
        row = row.wrapping_add(1);
    }
    Ok(out)
}

/// `FltRegisterFilter`.
unsafe extern "win64" fn flt_register_filter(
    driver: *const DRIVER_OBJECT,
    registration: *const FLT_REGISTRATION,
    filter: *mut isize,
) -> i32 {
    let parsed = read_registration(registration);
    let status = with(|k| {
        k.calls.push(Call::RegisterFilter);
        if driver.is_null() || filter.is_null() {
            k.error("FltRegisterFilter: NULL driver object or out pointer".to_owned());
            return STATUS_INVALID_PARAMETER;
        }
        if k.registration.is_some() {
            k.error("FltRegisterFilter called twice".to_owned());
            return STATUS_INVALID_PARAMETER;
        }
        match parsed {
            Ok(registration) => {
                k.registration = Some(registration);
                NtStatus::STATUS_SUCCESS
            }
            Err(message) => {
                k.error(format!("FltRegisterFilter: {message}"));
                STATUS_INVALID_PARAMETER
            }
        }
    })
    .unwrap_or(STATUS_INVALID_PARAMETER);
    if status.is_success() {
        // SAFETY: `filter` is the image's non-NULL out pointer (checked above).
        unsafe { filter.write(FILTER_HANDLE) };
    }
    nt(status)
}

fn check_filter(k: &mut Kernel, function: &str, filter: isize) -> bool {
    if filter == FILTER_HANDLE && k.registration.is_some() && !k.unregistered {
        true
    } else {
        k.error(format!("{function}: bad filter handle {filter:#x}"));
        false
    }
}

/// `FltStartFiltering`.
unsafe extern "win64" fn flt_start_filtering(filter: isize) -> i32 {
    nt(with(|k| {
        k.calls.push(Call::StartFiltering);
        if !check_filter(k, "FltStartFiltering", filter) {
            return STATUS_INVALID_PARAMETER;
        }
        k.started = true;
        NtStatus::STATUS_SUCCESS
    })
    .unwrap_or(STATUS_INVALID_PARAMETER))
}

/// `FltUnregisterFilter`: tears the instance down (teardown start and complete callbacks), then
/// frees the filter's contexts (drops Filter Manager's references).
unsafe extern "win64" fn flt_unregister_filter(filter: isize) {
    let teardown = with(|k| {
        k.calls.push(Call::UnregisterFilter);
        if !check_filter(k, "FltUnregisterFilter", filter) {
            return None;
        }
        let registration = k.registration.clone().unwrap_or_default();
        let state = k.instance;
        Some((registration, state))
    })
    .flatten();
    let Some((registration, state)) = teardown else {
        return;
    };
    let objects = related_objects(std::ptr::null(), std::ptr::null());
    if state == InstanceState::Attached {
        if let Some(start) = registration.instance_teardown_start {
            // SAFETY: the address is the image's PFLT_INSTANCE_TEARDOWN_CALLBACK (checked to lie
            // inside the image at load), a Win64 function of this signature.
            let start = unsafe { std::mem::transmute::<usize, TeardownFn>(start) };
            // SAFETY: valid related objects for the one instance, PASSIVE_LEVEL.
            unsafe { start(&objects, FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD) };
        }
    }
    if matches!(state, InstanceState::Attached | InstanceState::TearingDown) {
        if let Some(complete) = registration.instance_teardown_complete {
            // SAFETY: as above, for the teardown-complete callback.
            let complete = unsafe { std::mem::transmute::<usize, TeardownFn>(complete) };
            // SAFETY: as above.
            unsafe { complete(&objects, FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD) };
        }
    }
    with(|k| {
        if matches!(state, InstanceState::Attached | InstanceState::TearingDown) {
            k.instance = InstanceState::Detached;
        }
        k.detach_volume_context();
        k.unregistered = true;
    });
}

/// The related objects for the one instance.
#[must_use]
pub fn related_objects(
    file_object: *const FILE_OBJECT,
    transaction: *const windows_sys::Wdk::Foundation::KTRANSACTION,
) -> FLT_RELATED_OBJECTS {
    FLT_RELATED_OBJECTS {
        Size: u16::try_from(size_of::<FLT_RELATED_OBJECTS>()).unwrap_or(u16::MAX),
        TransactionContext: 0,
        Filter: FILTER_HANDLE,
        Volume: VOLUME_HANDLE,
        Instance: INSTANCE_HANDLE,
        FileObject: file_object,
        Transaction: transaction,
    }
}

/// `FltAllocateContext`.
unsafe extern "win64" fn flt_allocate_context(
    filter: isize,
    context_type: u16,
    size: usize,
    _pool_type: i32,
    returned: *mut *mut c_void,
) -> i32 {
    let result = with(|k| {
        k.calls.push(Call::AllocateContext(context_type));
        if !check_filter(k, "FltAllocateContext", filter) || returned.is_null() {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let registered = k
            .registration
            .as_ref()
            .and_then(|r| r.contexts.iter().find(|c| c.context_type == context_type))
            .copied();
        let Some(row) = registered else {
            k.error(format!(
                "FltAllocateContext: context type {context_type:#x} not registered"
            ));
            return Err(STATUS_INVALID_PARAMETER);
        };
        if row.size != size {
            k.error(format!(
                "FltAllocateContext: size {size} differs from the registered {}",
                row.size
            ));
            return Err(STATUS_INVALID_PARAMETER);
        }
        let (address, layout) = allocate(size).ok_or(NtStatus::STATUS_INSUFFICIENT_RESOURCES)?;
        k.contexts.insert(
            address,
            ContextBlock {
                layout,
                context_type,
                references: 1,
            },
        );
        k.context_references += 1;
        Ok(address)
    })
    .unwrap_or(Err(STATUS_INVALID_PARAMETER));
    match result {
        Ok(address) => {
            // SAFETY: `returned` is the image's non-NULL out pointer (checked above).
            unsafe { returned.write(address as *mut c_void) };
            nt(NtStatus::STATUS_SUCCESS)
        }
        Err(status) => nt(status),
    }
}

/// `FltSetVolumeContext`.
unsafe extern "win64" fn flt_set_volume_context(
    volume: isize,
    operation: i32,
    new_context: *mut c_void,
    old_context: *mut *mut c_void,
) -> i32 {
    let result = with(|k| {
        k.calls.push(Call::SetVolumeContext(operation));
        let address = new_context as usize;
        if volume != VOLUME_HANDLE || !k.contexts.contains_key(&address) {
            k.error(format!(
                "FltSetVolumeContext: bad volume {volume:#x} or context {address:#x}"
            ));
            return (Err(STATUS_INVALID_PARAMETER), None);
        }
        let existing = k.volume_context;
        match (existing, operation) {
            (Some(old), FLT_SET_CONTEXT_KEEP_IF_EXISTS) => {
                let returned = (!old_context.is_null()).then(|| {
                    if let Some(block) = k.contexts.get_mut(&old) {
                        block.references += 1;
                        k.context_references += 1;
                    }
                    old
                });
                (Err(STATUS_FLT_CONTEXT_ALREADY_DEFINED), returned)
            }
            (_, FLT_SET_CONTEXT_REPLACE_IF_EXISTS) | (None, FLT_SET_CONTEXT_KEEP_IF_EXISTS) => {
                if let Some(block) = k.contexts.get_mut(&address) {
                    block.references += 1;
                    k.context_references += 1;
                }
                k.volume_context = Some(address);
                let returned = existing.and_then(|old| {
                    if old_context.is_null() {
                        // Filter Manager drops its reference on the replaced context.
                        k.release(old);
                        None
                    } else {
                        // Its reference passes to the caller.
                        Some(old)
                    }
                });
                (Ok(()), returned)
            }
            _ => {
                k.error(format!("FltSetVolumeContext: operation {operation}"));
                (Err(STATUS_INVALID_PARAMETER), None)
            }
        }
    })
    .unwrap_or((Err(STATUS_INVALID_PARAMETER), None));
    if !old_context.is_null() {
        let value = result.1.map_or(std::ptr::null_mut(), |a| a as *mut c_void);
        // SAFETY: `old_context` is the image's non-NULL out pointer.
        unsafe { old_context.write(value) };
    }
    nt(match result.0 {
        Ok(()) => NtStatus::STATUS_SUCCESS,
        Err(status) => status,
    })
}

/// `FltGetVolumeContext`.
unsafe extern "win64" fn flt_get_volume_context(
    filter: isize,
    volume: isize,
    context: *mut *mut c_void,
) -> i32 {
    let result = with(|k| {
        k.calls.push(Call::GetVolumeContext);
        if !check_filter(k, "FltGetVolumeContext", filter)
            || volume != VOLUME_HANDLE
            || context.is_null()
        {
            k.error(format!("FltGetVolumeContext: bad volume {volume:#x}"));
            return Err(STATUS_INVALID_PARAMETER);
        }
        let address = k.volume_context.ok_or(STATUS_NOT_FOUND)?;
        if let Some(block) = k.contexts.get_mut(&address) {
            block.references += 1;
            k.context_references += 1;
        }
        Ok(address)
    })
    .unwrap_or(Err(STATUS_INVALID_PARAMETER));
    match result {
        Ok(address) => {
            // SAFETY: `context` is the image's non-NULL out pointer (checked above).
            unsafe { context.write(address as *mut c_void) };
            nt(NtStatus::STATUS_SUCCESS)
        }
        Err(status) => nt(status),
    }
}

/// `FltReleaseContext`.
unsafe extern "win64" fn flt_release_context(context: *mut c_void) {
    with(|k| {
        k.calls.push(Call::ReleaseContext);
        k.release(context as usize);
    });
}

fn write_out<T>(buffer: *mut c_void, length: u32, value: T) -> Result<(), NtStatus> {
    if buffer.is_null() || (length as usize) < size_of::<T>() {
        return Err(STATUS_INFO_LENGTH_MISMATCH);
    }
    // SAFETY: the caller's buffer is non-NULL and holds at least size_of::<T>() bytes.
    unsafe { buffer.cast::<T>().write_unaligned(value) };
    Ok(())
}

/// `FltQueryVolumeInformation`.
unsafe extern "win64" fn flt_query_volume_information(
    instance: isize,
    iosb: *mut IO_STATUS_BLOCK,
    buffer: *mut c_void,
    length: u32,
    class: i32,
) -> i32 {
    let volume = with(|k| {
        k.calls.push(Call::QueryVolumeInformation(class));
        if instance != INSTANCE_HANDLE {
            k.error(format!(
                "FltQueryVolumeInformation: bad instance {instance:#x}"
            ));
            return None;
        }
        Some(k.volume)
    })
    .flatten();
    let Some(volume) = volume else {
        return nt(STATUS_INVALID_PARAMETER);
    };
    let (result, written) = match class {
        c if c == FileFsSectorSizeInformation => {
            let info = FILE_FS_SECTOR_SIZE_INFORMATION {
                LogicalBytesPerSector: volume.logical_bytes_per_sector,
                PhysicalBytesPerSectorForAtomicity: volume.logical_bytes_per_sector,
                PhysicalBytesPerSectorForPerformance: volume.logical_bytes_per_sector,
                FileSystemEffectivePhysicalBytesPerSectorForAtomicity: volume
                    .logical_bytes_per_sector,
                Flags: 0,
                ByteOffsetForSectorAlignment: 0,
                ByteOffsetForPartitionAlignment: 0,
            };
            (
                write_out(buffer, length, info),
                size_of::<FILE_FS_SECTOR_SIZE_INFORMATION>(),
            )
        }
        c if c == FileFsSizeInformation => {
            let info = FILE_FS_SIZE_INFORMATION {
                TotalAllocationUnits: 1 << 24,
                AvailableAllocationUnits: 1 << 23,
                SectorsPerAllocationUnit: volume.sectors_per_allocation_unit,
                BytesPerSector: volume.bytes_per_sector,
            };
            (
                write_out(buffer, length, info),
                size_of::<FILE_FS_SIZE_INFORMATION>(),
            )
        }
        _ => (Err(STATUS_INVALID_INFO_CLASS), 0),
    };
    let status = result.err().unwrap_or(NtStatus::STATUS_SUCCESS);
    if !iosb.is_null() {
        let block = IO_STATUS_BLOCK {
            Anonymous: windows_sys::Win32::System::IO::IO_STATUS_BLOCK_0 { Status: nt(status) },
            Information: if status.is_success() { written } else { 0 },
        };
        // SAFETY: `iosb` is the caller's non-NULL status block.
        unsafe { iosb.write_unaligned(block) };
    }
    nt(status)
}

/// `FltIsVolumeWritable`.
unsafe extern "win64" fn flt_is_volume_writable(object: *const c_void, writable: *mut bool) -> i32 {
    let answer = with(|k| {
        k.calls.push(Call::IsVolumeWritable);
        let handle = object as isize;
        if !matches!(handle, VOLUME_HANDLE | INSTANCE_HANDLE) || writable.is_null() {
            k.error(format!("FltIsVolumeWritable: bad object {handle:#x}"));
            return None;
        }
        Some(k.volume.writable)
    })
    .flatten();
    match answer {
        Some(value) => {
            // SAFETY: `writable` is the caller's non-NULL out pointer (checked above).
            unsafe { writable.write(value) };
            nt(NtStatus::STATUS_SUCCESS)
        }
        None => nt(STATUS_INVALID_PARAMETER),
    }
}

/// `FltQueryInformationFile`.
unsafe extern "win64" fn flt_query_information_file(
    instance: isize,
    file_object: *const FILE_OBJECT,
    buffer: *mut c_void,
    length: u32,
    class: i32,
    returned: *mut u32,
) -> i32 {
    let file = with(|k| {
        k.calls.push(Call::QueryInformationFile(class));
        if instance != INSTANCE_HANDLE {
            k.error(format!(
                "FltQueryInformationFile: bad instance {instance:#x}"
            ));
            return None;
        }
        let file = k.files.get(&(file_object as usize)).copied();
        if file.is_none() {
            k.error(format!(
                "FltQueryInformationFile: unknown file object {:#x}",
                file_object as usize
            ));
        }
        file
    })
    .flatten();
    let Some(file) = file else {
        return nt(STATUS_INVALID_PARAMETER);
    };
    let (result, written) = match class {
        c if c == FileBasicInformation => (
            write_out(
                buffer,
                length,
                FILE_BASIC_INFORMATION {
                    CreationTime: 0,
                    LastAccessTime: 0,
                    LastWriteTime: 0,
                    ChangeTime: 0,
                    FileAttributes: file.attributes,
                },
            ),
            size_of::<FILE_BASIC_INFORMATION>(),
        ),
        c if c == FileStandardInformation => (
            write_out(
                buffer,
                length,
                FILE_STANDARD_INFORMATION {
                    AllocationSize: file.allocation_size,
                    EndOfFile: file.end_of_file,
                    NumberOfLinks: 1,
                    DeletePending: file.delete_pending,
                    Directory: file.directory,
                },
            ),
            size_of::<FILE_STANDARD_INFORMATION>(),
        ),
        _ => (Err(STATUS_INVALID_INFO_CLASS), 0),
    };
    if let Err(status) = result {
        return nt(status);
    }
    if !returned.is_null() {
        // SAFETY: `returned` is the caller's non-NULL out pointer.
        unsafe { returned.write(u32::try_from(written).unwrap_or(u32::MAX)) };
    }
    nt(NtStatus::STATUS_SUCCESS)
}

/// `FltSetCallbackDataDirty`.
unsafe extern "win64" fn flt_set_callback_data_dirty(data: *mut FLT_CALLBACK_DATA) {
    let ok = with(|k| {
        k.calls.push(Call::SetCallbackDataDirty);
        if data.is_null() {
            k.error("FltSetCallbackDataDirty(NULL)".to_owned());
        }
        !data.is_null()
    })
    .unwrap_or(false);
    if ok {
        // SAFETY: `data` is the callback data of the operation in progress (non-NULL), owned by
        // the harness and lent to the image for the callback.
        let flags = unsafe { &raw mut (*data).Flags };
        // SAFETY: `flags` points into that live structure.
        let old = unsafe { flags.read() };
        // SAFETY: as above.
        unsafe { flags.write(old | FLTFL_CALLBACK_DATA_DIRTY) };
    }
}

/// The service key's path as `DriverEntry` receives it.
pub const SERVICE_KEY: &str = r"\Registry\Machine\System\CurrentControlSet\Services\odxflt";
const STATUS_OBJECT_NAME_NOT_FOUND: NtStatus = NtStatus(0xC000_0034);
const STATUS_BUFFER_OVERFLOW: NtStatus = NtStatus(0x8000_0005);
const REG_DWORD: u32 = 4;
const KEY_VALUE_PARTIAL_INFORMATION: i32 = 2;

fn read_unicode(string: *const windows_sys::Win32::Foundation::UNICODE_STRING) -> Option<String> {
    if string.is_null() {
        return None;
    }
    // SAFETY: the image passes a valid UNICODE_STRING (checked non-NULL) for the call.
    let string = unsafe { string.read_unaligned() };
    if string.Buffer.is_null() {
        return Some(String::new());
    }
    let units = usize::from(string.Length) / 2;
    // SAFETY: `Buffer` holds `Length` bytes of UTF-16, valid for the call.
    let text = unsafe { std::slice::from_raw_parts(string.Buffer, units) };
    Some(String::from_utf16_lossy(text))
}

/// `ZwOpenKey`: the service key and its `Parameters` subkey exist; nothing else does.
unsafe extern "win64" fn zw_open_key(
    key: *mut *mut c_void,
    _access: u32,
    attributes: *const windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES,
) -> i32 {
    if attributes.is_null() || key.is_null() {
        return nt(STATUS_INVALID_PARAMETER);
    }
    // SAFETY: the image's OBJECT_ATTRIBUTES (checked non-NULL), valid for the call.
    let attributes = unsafe { attributes.read_unaligned() };
    let name = read_unicode(attributes.ObjectName).unwrap_or_default();
    let root = attributes.RootDirectory as usize;
    let opened = with(|k| {
        k.calls.push(Call::OpenKey);
        let path = if root == 0 {
            name.clone()
        } else {
            let Some(parent) = k.keys.get(&root) else {
                k.error(format!("ZwOpenKey: unknown root handle {root:#x}"));
                return Err(STATUS_INVALID_PARAMETER);
            };
            format!(r"{parent}\{name}")
        };
        let known = path.eq_ignore_ascii_case(SERVICE_KEY)
            || path.eq_ignore_ascii_case(&format!(r"{SERVICE_KEY}\Parameters"));
        if !known {
            return Err(STATUS_OBJECT_NAME_NOT_FOUND);
        }
        k.next_key += 4;
        let handle = k.next_key;
        k.keys.insert(handle, path);
        Ok(handle)
    })
    .unwrap_or(Err(STATUS_INVALID_PARAMETER));
    match opened {
        Ok(handle) => {
            // SAFETY: the image's out pointer (checked non-NULL).
            unsafe { key.write(handle as *mut c_void) };
            nt(NtStatus::STATUS_SUCCESS)
        }
        Err(status) => nt(status),
    }
}

/// `ZwQueryValueKey`: `Parameters\DefaultPolicy` as a REG_DWORD when the scenario sets a policy.
unsafe extern "win64" fn zw_query_value_key(
    key: *mut c_void,
    name: *const windows_sys::Win32::Foundation::UNICODE_STRING,
    class: i32,
    information: *mut c_void,
    length: u32,
    result_length: *mut u32,
) -> i32 {
    let name = read_unicode(name).unwrap_or_default();
    let value = with(|k| {
        k.calls.push(Call::QueryValueKey);
        let Some(path) = k.keys.get(&(key as usize)).cloned() else {
            k.error(format!("ZwQueryValueKey: unknown key {:#x}", key as usize));
            return Err(STATUS_INVALID_PARAMETER);
        };
        if class != KEY_VALUE_PARTIAL_INFORMATION {
            return Err(STATUS_INVALID_INFO_CLASS);
        }
        let is_policy = path.eq_ignore_ascii_case(&format!(r"{SERVICE_KEY}\Parameters"))
            && name.eq_ignore_ascii_case("DefaultPolicy");
        match (is_policy, k.default_policy) {
            (true, Some(policy)) => Ok(policy),
            _ => Err(STATUS_OBJECT_NAME_NOT_FOUND),
        }
    })
    .unwrap_or(Err(STATUS_INVALID_PARAMETER));
    let policy = match value {
        Ok(policy) => policy,
        Err(status) => return nt(status),
    };
    // KEY_VALUE_PARTIAL_INFORMATION: TitleIndex, Type, DataLength, Data.
    let mut bytes = Vec::with_capacity(16);
    for word in [0, REG_DWORD, 4, policy] {
        bytes.extend_from_slice(&u32::to_le_bytes(word));
    }
    if !result_length.is_null() {
        // SAFETY: the image's out pointer (checked non-NULL).
        unsafe { result_length.write(16) };
    }
    if information.is_null() || (length as usize) < bytes.len() {
        return nt(STATUS_BUFFER_OVERFLOW);
    }
    // SAFETY: the image's buffer holds `length` >= 16 bytes (checked).
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), information.cast(), bytes.len()) };
    nt(NtStatus::STATUS_SUCCESS)
}

/// `ObCloseHandle`: closes a registry key opened by `zw_open_key`.
unsafe extern "win64" fn ob_close_handle(handle: *mut c_void, _mode: i8) -> i32 {
    nt(with(|k| {
        k.calls.push(Call::CloseHandle);
        if k.keys.remove(&(handle as usize)).is_some() {
            NtStatus::STATUS_SUCCESS
        } else {
            k.error(format!(
                "ObCloseHandle: unknown handle {:#x}",
                handle as usize
            ));
            STATUS_INVALID_PARAMETER
        }
    })
    .unwrap_or(STATUS_INVALID_PARAMETER))
}

/// `FltBuildDefaultSecurityDescriptor`.
unsafe extern "win64" fn flt_build_default_security_descriptor(
    descriptor: *mut *mut c_void,
    _access: u32,
) -> i32 {
    let built = with(|k| {
        k.calls.push(Call::SecurityDescriptor);
        let (address, layout) = allocate(64)?;
        k.descriptors.insert(address, layout);
        Some(address)
    })
    .flatten();
    match (built, descriptor.is_null()) {
        (Some(address), false) => {
            // SAFETY: the image's out pointer (checked non-NULL).
            unsafe { descriptor.write(address as *mut c_void) };
            nt(NtStatus::STATUS_SUCCESS)
        }
        _ => nt(NtStatus::STATUS_INSUFFICIENT_RESOURCES),
    }
}

/// `FltFreeSecurityDescriptor`.
unsafe extern "win64" fn flt_free_security_descriptor(descriptor: *mut c_void) {
    with(|k| {
        k.calls.push(Call::SecurityDescriptor);
        match k.descriptors.remove(&(descriptor as usize)) {
            // SAFETY: allocated with this layout by flt_build_default_security_descriptor.
            Some(layout) => unsafe { std::alloc::dealloc(descriptor.cast(), layout) },
            None => k.error("FltFreeSecurityDescriptor: unknown descriptor".to_owned()),
        }
    });
}

/// The server port handle.
pub const PORT_HANDLE: isize = 0x0DF1_0020;

/// `FltCreateCommunicationPort`: the port is created (no client ever connects in the harness).
#[allow(clippy::too_many_arguments)]
unsafe extern "win64" fn flt_create_communication_port(
    filter: isize,
    port: *mut isize,
    _attributes: *const windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES,
    _cookie: *const c_void,
    _connect: usize,
    _disconnect: usize,
    _message: usize,
    _max_connections: i32,
) -> i32 {
    let status = with(|k| {
        k.calls.push(Call::CreateCommunicationPort);
        if !check_filter(k, "FltCreateCommunicationPort", filter) || port.is_null() {
            return STATUS_INVALID_PARAMETER;
        }
        if k.server_port.is_some() {
            k.error("FltCreateCommunicationPort: a port is already open".to_owned());
            return STATUS_INVALID_PARAMETER;
        }
        k.server_port = Some(PORT_HANDLE);
        k.ports_created += 1;
        NtStatus::STATUS_SUCCESS
    })
    .unwrap_or(STATUS_INVALID_PARAMETER);
    if status.is_success() {
        // SAFETY: the image's out pointer (checked non-NULL).
        unsafe { port.write(PORT_HANDLE) };
    }
    nt(status)
}

/// `FltCloseCommunicationPort`.
unsafe extern "win64" fn flt_close_communication_port(port: isize) {
    with(|k| {
        k.calls.push(Call::ClosePort);
        if k.server_port == Some(port) {
            k.server_port = None;
        } else {
            k.error(format!("FltCloseCommunicationPort: unknown port {port:#x}"));
        }
    });
}

/// `FltCloseClientPort`: no client connects in the harness, so only NULL slots are expected.
unsafe extern "win64" fn flt_close_client_port(_filter: isize, client: *mut isize) {
    with(|k| k.calls.push(Call::ClosePort));
    if !client.is_null() {
        // SAFETY: the image's slot (checked non-NULL); Filter Manager NULLs it on close.
        unsafe { client.write(0) };
    }
}
