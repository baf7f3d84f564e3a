//! The mock kernel: `extern "win64"` replacements for every function odxflt.sys imports from
//! `ntoskrnl.exe` and `fltmgr.sys`, answering from a simulated volume and recording every call.
//! One module per kernel area: [`pool`], [`filter`] (registration, instances, related objects),
//! [`context`], [`query`] (file and volume information), [`registry`], [`port`] and [`irql`]
//! (the processor's IRQL, the one privileged instruction the image may execute, SEH).
//!
//! Every structure the mock reads from or writes for the image is laid out by the golden table
//! ([`crate::layouts`]), never by the driver's or `windows-sys`' Rust types.
//!
//! State lives in a thread-local [`Kernel`] installed by [`install`] (one loaded image per
//! thread). Every replacement borrows it only for its own bookkeeping, never while calling back
//! into the image, so callbacks that call the kernel again (teardown during
//! `FltUnregisterFilter`) work. A replacement never panics: misuse is recorded in
//! [`Kernel::errors`] and answered with a failure status, as a checked build of the kernel would.

pub mod context;
pub mod fault;
pub mod filter;
pub mod irql;
pub mod names;
pub mod pool;
pub mod port;
pub mod query;
pub mod registry;
pub mod storage;

use std::alloc::Layout;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::c_void;

use odx_core::NtStatus;

pub use filter::{
    ContextRow, OperationRow, PostFn, PreFn, QueryTeardownFn, Registration, SetupFn, TeardownFn,
    UnloadFn, related_objects,
};
pub use registry::SERVICE_KEY;

/// The opaque filter handle the mock Filter Manager hands out.
pub const FILTER_HANDLE: isize = 0x0DF1_0001;
/// The one volume.
pub const VOLUME_HANDLE: isize = 0x0DF1_0002;
/// The first instance; instance `n` is `INSTANCE_HANDLE + 0x100 * n`.
pub const INSTANCE_HANDLE: isize = 0x0DF1_0003;

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
    /// The disk's answer to the copy-offload property query (`[storage] query`).
    pub storage: storage::DiskAnswer,
    /// `Parameters\OffloadBackoffSeconds` (REG_DWORD) under the service key, if set.
    pub backoff_seconds: Option<u32>,
    /// `Parameters\Journal` (REG_DWORD) under the service key, if set.
    pub journal: Option<u32>,
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
    /// `FltSetInstanceContext` (operation).
    SetInstanceContext(i32),
    /// `FltGetInstanceContext`.
    GetInstanceContext,
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
    /// The image read CR8 (`KeGetCurrentIrql`, emulated).
    ReadIrql,
    /// `FltGetDiskDeviceObject`.
    GetDiskDeviceObject,
    /// `ObfDereferenceObject`.
    DereferenceObject,
    /// `KeInitializeEvent`.
    InitializeEvent,
    /// `IoBuildDeviceIoControlRequest`.
    BuildDeviceIoControlRequest,
    /// `IofCallDriver`.
    CallDriver,
    /// `KeWaitForSingleObject`.
    WaitForSingleObject,
    /// `KeQueryUnbiasedInterruptTime`.
    QueryInterruptTime,
    /// `FltGetFileNameInformation`.
    GetFileNameInformation,
    /// `FltParseFileNameInformation`.
    ParseFileNameInformation,
    /// `FltReleaseFileNameInformation`.
    ReleaseFileNameInformation,
    /// `FltGetVolumeName` (false) / `FltGetVolumeGuidName` (true).
    GetVolumeName(bool),
    /// `FltGetRequestorProcess`.
    GetRequestorProcess,
    /// `FltGetRequestorProcessId`.
    GetRequestorProcessId,
    /// `SeLocateProcessImageName`.
    LocateProcessImageName,
    /// `KeQuerySystemTimePrecise`.
    QuerySystemTime,
    /// A push-lock routine.
    PushLock(names::LockOp),
    /// `IoVolumeDeviceToDosName`.
    VolumeDeviceToDosName,
}

impl Call {
    /// Whether the call gathers a fact about the request or touches a context (what a
    /// "no callback" request must never cost).
    #[must_use]
    pub const fn is_fact_or_context(&self) -> bool {
        matches!(
            self,
            Self::AllocateContext(_)
                | Self::SetInstanceContext(_)
                | Self::GetInstanceContext
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

/// The state of one instance of the filter on the volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceState {
    /// Setup declined (or never offered).
    None,
    /// Attached.
    Attached,
    /// Teardown started (requests in flight still arrive).
    TearingDown,
    /// Torn down.
    Detached,
}

/// One instance: its opaque handle, state and instance context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instance {
    /// `PFLT_INSTANCE`.
    pub handle: isize,
    /// Where it is in its life.
    pub state: InstanceState,
    /// The context set with `FltSetInstanceContext` (Filter Manager holds one reference).
    context: Option<usize>,
}

impl Instance {
    /// A new instance being set up.
    #[must_use]
    pub const fn new(handle: isize) -> Self {
        Self {
            handle,
            state: InstanceState::None,
            context: None,
        }
    }
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
    /// Misuse detected (bad handles, double frees, wrong tags, over-released contexts, calls
    /// above the IRQL a routine's documentation allows).
    pub errors: Vec<String>,
    /// The captured registration.
    pub registration: Option<Registration>,
    /// `FltStartFiltering` was called.
    pub started: bool,
    /// `FltUnregisterFilter` was called.
    pub unregistered: bool,
    /// The instances on the volume, in setup order.
    pub instances: Vec<Instance>,
    /// The volume's answers.
    pub volume: VolumeInfo,
    /// The processor's current IRQL (what CR8 reads), set by the harness around callbacks.
    pub irql: u8,
    /// The next `FltQueryInformationFile` fails with this status (a fault the documentation
    /// allows: e.g. STATUS_FILE_DELETED, STATUS_INSUFFICIENT_RESOURCES).
    pub fail_next_file_query: Option<NtStatus>,
    /// The one fault to inject in this run, and how often each failable routine was called.
    pub faults: fault::Faults,
    pool: BTreeMap<usize, Block>,
    contexts: BTreeMap<usize, ContextBlock>,
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
    /// Its callbacks.
    pub port_callbacks: Option<port::PortCallbacks>,
    /// The connected client, if any.
    pub connection: Option<port::Connection>,
    /// Ports ever created.
    pub ports_created: usize,
    /// Pool allocations made (ever).
    pub pool_allocations: usize,
    /// Context references taken (allocate + get + set, ever).
    pub context_references: usize,
    /// The disk under the volume and the clock.
    pub storage: storage::StorageModel,
    /// Names (volume, files, processes), the registry's rules and the push locks.
    pub names: names::NameModel,
}

thread_local! {
    static KERNEL: RefCell<Option<Kernel>> = const { RefCell::new(None) };
}

/// Installs a fresh kernel on this thread (and the CR8 emulation, once per process).
///
/// # Errors
/// A kernel is already installed on this thread, or the layout table lacks what the mock needs.
pub fn install(volume: VolumeInfo, default_policy: Option<u32>) -> anyhow::Result<()> {
    crate::layouts::shapes_checked()?;
    irql::install_cr8_emulation()?;
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
            instances: Vec::new(),
            volume,
            irql: 0,
            fail_next_file_query: None,
            faults: fault::Faults::default(),
            pool: BTreeMap::new(),
            contexts: BTreeMap::new(),
            files: HashMap::new(),
            default_policy,
            keys: BTreeMap::new(),
            next_key: 0x0DF1_1000,
            descriptors: BTreeMap::new(),
            server_port: None,
            port_callbacks: None,
            connection: None,
            ports_created: 0,
            pool_allocations: 0,
            context_references: 0,
            storage: storage::StorageModel::new(volume.storage, volume.backoff_seconds),
            names: names::take_preset(),
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
        storage::release(&mut kernel.storage);
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

    /// Records misuse when the current IRQL is above what `routine`'s documentation allows
    /// (docs/pe-harness.md, "IRQL", has the table with the pages).
    fn require_irql(&mut self, routine: &str, max: u8) -> bool {
        if self.irql > max {
            let irql = self.irql;
            self.error(format!(
                "{routine} called at IRQL {irql}; its documentation allows at most {max}"
            ));
            return false;
        }
        true
    }

    /// Makes `file_object` answer `info` to `FltQueryInformationFile`.
    pub fn set_file(&mut self, file_object: *const c_void, info: FileInfo) {
        self.files.insert(file_object as usize, info);
    }

    /// Forgets a file object.
    pub fn remove_file(&mut self, file_object: *const c_void) {
        self.files.remove(&(file_object as usize));
    }

    /// Pool blocks outstanding now.
    #[must_use]
    pub fn pool_outstanding(&self) -> usize {
        self.pool.len()
    }

    /// What a request must not leave behind, after it: `None` when nothing is held, else a line
    /// naming each count (pool blocks, context references, file names, push locks).
    #[must_use]
    pub fn held_after_request(&self) -> Option<String> {
        let (pool, references, names, locks) = (
            self.pool_outstanding(),
            self.context_references_held(),
            self.names.outstanding(),
            self.names.locks_held(),
        );
        (pool != 0 || references != 0 || names != 0 || locks != 0).then(|| {
            format!(
                "{pool} pool blocks outstanding, {references} context references held, {names} file names not released, {locks} push locks held"
            )
        })
    }

    /// The instance with `handle`.
    fn instance_mut(&mut self, handle: isize) -> Option<&mut Instance> {
        self.instances.iter_mut().find(|i| i.handle == handle)
    }

    /// The state of instance `index` (in setup order).
    #[must_use]
    pub fn instance_state(&self, index: usize) -> InstanceState {
        self.instances
            .get(index)
            .map_or(InstanceState::None, |i| i.state)
    }

    /// References held on contexts now, excluding Filter Manager's own reference on each
    /// attached instance context.
    #[must_use]
    pub fn context_references_held(&self) -> u32 {
        let total: u32 = self.contexts.values().map(|c| c.references).sum();
        let ours = self
            .instances
            .iter()
            .filter(|i| i.context.is_some())
            .count();
        total.saturating_sub(u32::try_from(ours).unwrap_or(u32::MAX))
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
                .chain(storage::leaks(&self.storage))
                .chain(self.names.leaks())
                .collect(),
        }
    }
}

/// The replacement for `library!symbol`, if the harness implements it.
#[must_use]
pub fn resolve(library: &str, symbol: &str) -> Option<usize> {
    let library = library.to_ascii_lowercase();
    match library.as_str() {
        "ntoskrnl.exe" => pool::resolve(symbol)
            .or_else(|| registry::resolve(symbol))
            .or_else(|| irql::resolve(symbol))
            .or_else(|| storage::resolve_ntoskrnl(symbol))
            .or_else(|| names::resolve_ntoskrnl(symbol)),
        "fltmgr.sys" => filter::resolve(symbol)
            .or_else(|| storage::resolve_fltmgr(symbol))
            .or_else(|| context::resolve(symbol))
            .or_else(|| query::resolve(symbol))
            .or_else(|| port::resolve(symbol))
            .or_else(|| names::resolve_fltmgr(symbol)),
        _ => None,
    }
}

/// The resolver the loader uses.
#[derive(Debug)]
pub struct KernelResolver;

impl crate::pe::Resolver for KernelResolver {
    fn resolve(&self, library: &str, symbol: &str) -> Option<usize> {
        resolve(library, symbol)
    }
}

/// Fresh memory the way pool hands it out: 16-byte aligned, not zeroed (a pattern shows reliance
/// on zeroed memory).
fn allocate(bytes: usize) -> Option<(usize, Layout)> {
    let layout = Layout::from_size_align(bytes.max(1), 16).ok()?;
    // SAFETY: the layout has a non-zero size.
    let address = unsafe { std::alloc::alloc(layout) };
    if address.is_null() {
        return None;
    }
    // SAFETY: `address` is a fresh allocation of `layout.size()` bytes.
    unsafe { address.write_bytes(0xA5, layout.size()) };
    Some((address as usize, layout))
}

/// Writes a fixed-size answer into the caller's buffer (information classes).
fn write_out(
    buffer: *mut c_void,
    length: u32,
    value: &crate::layouts::Blob,
) -> Result<(), NtStatus> {
    if buffer.is_null() || (length as usize) < value.len() {
        return Err(STATUS_INFO_LENGTH_MISMATCH);
    }
    // SAFETY: the caller's buffer is non-NULL and holds at least `value.len()` bytes; the blob
    // is the harness's own.
    unsafe {
        std::ptr::copy_nonoverlapping(
            value.as_ptr().cast::<u8>().cast_const(),
            buffer.cast::<u8>(),
            value.len(),
        );
    }
    Ok(())
}
