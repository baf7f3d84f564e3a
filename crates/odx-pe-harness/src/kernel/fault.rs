//! Fault injection: one failable kernel routine made to fail once, at one position (its n-th
//! call in the run), with a status its documentation (or, for file queries, NTFS) can return.
//! `odx-pe-harness --faults` counts the calls of every routine in a clean run of a scenario,
//! then re-runs the scenario once per (routine, position, status) (crate::faults).

use std::collections::BTreeMap;

use odx_core::NtStatus;

/// `STATUS_OBJECT_NAME_NOT_FOUND`.
const STATUS_OBJECT_NAME_NOT_FOUND: NtStatus = NtStatus(0xC000_0034);
/// `STATUS_OBJECT_NAME_COLLISION`.
const STATUS_OBJECT_NAME_COLLISION: NtStatus = NtStatus(0xC000_0035);
/// `STATUS_FLT_CONTEXT_ALREADY_DEFINED`.
const STATUS_FLT_CONTEXT_ALREADY_DEFINED: NtStatus = NtStatus(0xC01C_0002);
/// `STATUS_FLT_NOT_INITIALIZED`.
const STATUS_FLT_NOT_INITIALIZED: NtStatus = NtStatus(0xC01C_0007);
/// `STATUS_NOT_FOUND`.
const STATUS_NOT_FOUND: NtStatus = NtStatus(0xC000_0225);
/// `STATUS_FLT_NO_DEVICE_OBJECT`.
const STATUS_FLT_NO_DEVICE_OBJECT: NtStatus = NtStatus(0xC01C_0019);
/// `STATUS_INVALID_DEVICE_REQUEST`.
const STATUS_INVALID_DEVICE_REQUEST: NtStatus = NtStatus(0xC000_0010);
const STATUS_FLT_INVALID_NAME_REQUEST: NtStatus = NtStatus(0xC01C_0005);
const STATUS_OBJECT_PATH_NOT_FOUND: NtStatus = NtStatus(0xC000_003A);

/// A kernel routine the image calls that may fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Point {
    /// `FltQueryInformationFile`.
    QueryInformationFile,
    /// `FltAllocateContext`.
    AllocateContext,
    /// `FltSetInstanceContext`.
    SetInstanceContext,
    /// `FltGetInstanceContext`.
    GetInstanceContext,
    /// `ExAllocatePoolWithTag` (returns NULL).
    AllocatePool,
    /// `FltQueryVolumeInformation`.
    QueryVolumeInformation,
    /// `FltIsVolumeWritable`.
    IsVolumeWritable,
    /// `ZwOpenKey`.
    OpenKey,
    /// `ZwQueryValueKey`.
    QueryValueKey,
    /// `FltBuildDefaultSecurityDescriptor`.
    BuildDefaultSecurityDescriptor,
    /// `FltCreateCommunicationPort`.
    CreateCommunicationPort,
    /// `FltRegisterFilter`.
    RegisterFilter,
    /// `FltStartFiltering`.
    StartFiltering,
    /// `FltGetDiskDeviceObject` (no disk device under the volume).
    GetDiskDeviceObject,
    /// `IoBuildDeviceIoControlRequest` (returns NULL: no IRP).
    BuildIrp,
    /// The disk completes the property query with a failure.
    StorageQuery,
    /// The disk answers the property query `STATUS_PENDING` and completes it in the wait.
    PendQuery,
    /// `FltGetFileNameInformation`.
    FileName,
    /// `FltParseFileNameInformation`.
    ParseFileName,
    /// `SeLocateProcessImageName`.
    ProcessImage,
    /// `FltGetVolumeName` / `FltGetVolumeGuidName`.
    VolumeName,
}

impl Point {
    /// Every failable routine.
    pub const ALL: [Self; 21] = [
        Self::QueryInformationFile,
        Self::AllocateContext,
        Self::SetInstanceContext,
        Self::GetInstanceContext,
        Self::AllocatePool,
        Self::QueryVolumeInformation,
        Self::IsVolumeWritable,
        Self::OpenKey,
        Self::QueryValueKey,
        Self::BuildDefaultSecurityDescriptor,
        Self::CreateCommunicationPort,
        Self::RegisterFilter,
        Self::StartFiltering,
        Self::GetDiskDeviceObject,
        Self::BuildIrp,
        Self::StorageQuery,
        Self::PendQuery,
        Self::FileName,
        Self::ParseFileName,
        Self::ProcessImage,
        Self::VolumeName,
    ];

    /// The statuses the routine's documentation lists (file queries: also what NTFS answers
    /// for a deleted file or a dismounted volume), each injected in turn.
    #[must_use]
    pub const fn statuses(self) -> &'static [NtStatus] {
        match self {
            Self::QueryInformationFile => &[
                NtStatus::STATUS_FILE_DELETED,
                NtStatus::STATUS_INVALID_PARAMETER,
                NtStatus::STATUS_VOLUME_DISMOUNTED,
                NtStatus::STATUS_INSUFFICIENT_RESOURCES,
            ],
            Self::AllocateContext | Self::AllocatePool | Self::BuildDefaultSecurityDescriptor => {
                &[NtStatus::STATUS_INSUFFICIENT_RESOURCES]
            }
            Self::SetInstanceContext => &[
                STATUS_FLT_CONTEXT_ALREADY_DEFINED,
                NtStatus::STATUS_INSUFFICIENT_RESOURCES,
            ],
            Self::GetInstanceContext => &[STATUS_NOT_FOUND],
            Self::QueryVolumeInformation => &[
                STATUS_INVALID_DEVICE_REQUEST,
                NtStatus::STATUS_INSUFFICIENT_RESOURCES,
            ],
            Self::IsVolumeWritable => &[
                NtStatus::STATUS_INSUFFICIENT_RESOURCES,
                STATUS_INVALID_DEVICE_REQUEST,
            ],
            Self::OpenKey => &[
                STATUS_OBJECT_NAME_NOT_FOUND,
                NtStatus::STATUS_INSUFFICIENT_RESOURCES,
            ],
            Self::QueryValueKey => &[NtStatus::STATUS_INSUFFICIENT_RESOURCES],
            Self::CreateCommunicationPort => &[
                STATUS_OBJECT_NAME_COLLISION,
                NtStatus::STATUS_INSUFFICIENT_RESOURCES,
            ],
            Self::RegisterFilter => &[
                STATUS_FLT_NOT_INITIALIZED,
                NtStatus::STATUS_INSUFFICIENT_RESOURCES,
            ],
            Self::StartFiltering => &[NtStatus::STATUS_INSUFFICIENT_RESOURCES],
            // fltkernel/nf-fltkernel-fltgetdiskdeviceobject.
            Self::GetDiskDeviceObject => &[STATUS_FLT_NO_DEVICE_OBJECT],
            Self::BuildIrp => &[NtStatus::STATUS_INSUFFICIENT_RESOURCES],
            // What a storage stack answers IOCTL_STORAGE_QUERY_PROPERTY for this property: no
            // copy offload, a stack that does not know the property, the feature missing, no
            // memory.
            Self::StorageQuery => &[
                NtStatus::STATUS_NOT_SUPPORTED,
                STATUS_INVALID_DEVICE_REQUEST,
                NtStatus::STATUS_DEVICE_FEATURE_NOT_SUPPORTED,
                NtStatus::STATUS_INSUFFICIENT_RESOURCES,
            ],
            // Not a failure: the answer arrives later (the status is not used).
            Self::PendQuery => &[NtStatus::STATUS_SUCCESS],
            // fltkernel/nf-fltkernel-fltgetfilenameinformation: an invalid name request (e.g.
            // a paging file, or a query Filter Manager cannot make in this context), the path
            // gone (a rename or delete in flight), no memory.
            Self::FileName => &[
                STATUS_FLT_INVALID_NAME_REQUEST,
                STATUS_OBJECT_PATH_NOT_FOUND,
                NtStatus::STATUS_INSUFFICIENT_RESOURCES,
            ],
            // fltkernel/nf-fltkernel-fltparsefilenameinformation: STATUS_INVALID_PARAMETER
            // ("the FileNameInformation structure is malformed") or no memory.
            Self::ParseFileName => &[
                NtStatus::STATUS_INVALID_PARAMETER,
                NtStatus::STATUS_INSUFFICIENT_RESOURCES,
            ],
            // ntifs/nf-ntifs-selocateprocessimagename lists STATUS_NOT_FOUND.
            Self::ProcessImage => &[STATUS_NOT_FOUND, NtStatus::STATUS_INSUFFICIENT_RESOURCES],
            // fltkernel/nf-fltkernel-fltgetvolumename: STATUS_BUFFER_TOO_SMALL,
            // STATUS_INVALID_PARAMETER.
            Self::VolumeName => &[
                NtStatus::STATUS_BUFFER_TOO_SMALL,
                NtStatus::STATUS_INVALID_PARAMETER,
            ],
        }
    }
}

/// One fault: `point` fails on its `nth` call (0-based) with `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The routine.
    pub point: Point,
    /// Which call of it.
    pub nth: usize,
    /// What it answers.
    pub status: NtStatus,
}

/// The fault of a run and the call counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// The fault to inject (consumed when it fires).
    pub plan: Option<Fault>,
    /// Calls of each failable routine so far.
    pub calls: BTreeMap<Point, usize>,
    /// The fault fired.
    pub fired: bool,
}

impl Faults {
    /// Counts a call of `point`; `Some(status)` when this call is the one to fail.
    pub fn hit(&mut self, point: Point) -> Option<NtStatus> {
        let count = self.calls.entry(point).or_insert(0);
        let nth = *count;
        *count += 1;
        match self.plan {
            Some(fault) if fault.point == point && fault.nth == nth => {
                self.plan = None;
                self.fired = true;
                Some(fault.status)
            }
            _ => None,
        }
    }
}
