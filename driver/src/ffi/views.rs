//! The kernel structures odxflt reads or writes, each pinned to the golden layout table
//! ([`super::layouts`]). Where `windows-sys` declares a structure correctly, its type is used
//! and pinned; where it does not, the driver declares its own `#[repr(C)]` view here.
//!
//! `windows-sys` 0.61.2 is wrong for `FLT_PARAMETERS`: it drops the `POINTER_ALIGNMENT`
//! (`DECLSPEC_ALIGN(8)` on 64-bit) that fltKernel.h puts on `InputBufferLength` and the control
//! code, so its `FileSystemControl.Buffered` offsets are 0/4/8/16 where Windows' are 0/8/16/24
//! (windows-rs issues #4404, #4967). The views below carry the alignment explicitly
//! ([`PointerAligned`]), and the pins make any such disagreement a build error.
//! docs/driver.md ("Where the layouts come from") lists every structure and its source.

use core::ffi::c_void;

use windows_sys::Wdk::Foundation::{DRIVER_OBJECT, FILE_OBJECT, OBJECT_ATTRIBUTES};
use windows_sys::Wdk::Storage::FileSystem::Minifilters::{
    FLT_CALLBACK_DATA, FLT_CONTEXT_REGISTRATION, FLT_FILE_NAME_INFORMATION,
    FLT_OPERATION_REGISTRATION, FLT_REGISTRATION, FLT_RELATED_OBJECTS,
};
use windows_sys::Wdk::Storage::FileSystem::{
    FILE_BASIC_INFORMATION, FILE_FS_SECTOR_SIZE_INFORMATION, FILE_STANDARD_INFORMATION,
};
use windows_sys::Wdk::System::SystemServices::{
    FILE_FS_SIZE_INFORMATION, KEY_VALUE_PARTIAL_INFORMATION,
};
use windows_sys::Win32::Foundation::UNICODE_STRING;
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

use crate::{pin_constant, pin_layout};

/// A field declared `POINTER_ALIGNMENT` in the WDK headers: aligned to a pointer (8 bytes on
/// 64-bit Windows), so the next field starts at the next multiple of 8.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(8))]
pub struct PointerAligned<T>(pub T);

/// `FLT_PARAMETERS.FileSystemControl.Common`: the prefix every FS-request variant shares.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct FsControlCommon {
    /// `OutputBufferLength`.
    pub output_buffer_length: u32,
    /// `InputBufferLength` (`POINTER_ALIGNMENT`).
    pub input_buffer_length: PointerAligned<u32>,
    /// `FsControlCode` (`POINTER_ALIGNMENT`).
    pub fs_control_code: PointerAligned<u32>,
}

/// `FLT_PARAMETERS.FileSystemControl.Buffered` (METHOD_BUFFERED, as both offload FSCTLs are).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct FsControlBuffered {
    /// `OutputBufferLength`.
    pub output_buffer_length: u32,
    /// `InputBufferLength` (`POINTER_ALIGNMENT`).
    pub input_buffer_length: PointerAligned<u32>,
    /// `FsControlCode` (`POINTER_ALIGNMENT`).
    pub fs_control_code: PointerAligned<u32>,
    /// `SystemBuffer`.
    pub system_buffer: *mut c_void,
}

/// `FLT_PARAMETERS.FileSystemControl`, the variants odxflt reads (the union of the WDK has more:
/// `VerifyVolume`, `MountVolume`, `Direct`, `Neither`; the view is a prefix of it).
#[derive(Clone, Copy)]
#[repr(C)]
pub union FileSystemControl {
    /// `Common`.
    pub common: FsControlCommon,
    /// `Buffered`.
    pub buffered: FsControlBuffered,
}

/// `FLT_PARAMETERS`, as far as odxflt reads it: the kernel's union, of which odxflt only ever
/// reads the `FileSystemControl` member (at offset 0, as every member is), so the view is a
/// struct holding that one member.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct FltParameters {
    /// `FileSystemControl`.
    pub file_system_control: FileSystemControl,
}

impl core::fmt::Debug for FileSystemControl {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FileSystemControl { .. }")
    }
}

/// `FLT_IO_PARAMETER_BLOCK` up to and including the parameters odxflt reads.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct FltIoParameterBlock {
    /// `IrpFlags`.
    pub irp_flags: u32,
    /// `MajorFunction`.
    pub major_function: u8,
    /// `MinorFunction`.
    pub minor_function: u8,
    /// `OperationFlags`.
    pub operation_flags: u8,
    /// `Reserved`.
    pub reserved: u8,
    /// `TargetFileObject`.
    pub target_file_object: *mut c_void,
    /// `TargetInstance`.
    pub target_instance: *mut c_void,
    /// `Parameters`.
    pub parameters: FltParameters,
}

pin_layout!(prefix FltParameters = "FLT_PARAMETERS" {
    file_system_control.common.output_buffer_length => "FileSystemControl.Common.OutputBufferLength",
    file_system_control.common.input_buffer_length => "FileSystemControl.Common.InputBufferLength",
    file_system_control.common.fs_control_code => "FileSystemControl.Common.FsControlCode",
    file_system_control.buffered.output_buffer_length => "FileSystemControl.Buffered.OutputBufferLength",
    file_system_control.buffered.input_buffer_length => "FileSystemControl.Buffered.InputBufferLength",
    file_system_control.buffered.fs_control_code => "FileSystemControl.Buffered.FsControlCode",
    file_system_control.buffered.system_buffer => "FileSystemControl.Buffered.SystemBuffer",
});

pin_layout!(prefix FltIoParameterBlock = "FLT_IO_PARAMETER_BLOCK" {
    irp_flags => "IrpFlags",
    major_function => "MajorFunction",
    minor_function => "MinorFunction",
    operation_flags => "OperationFlags",
    reserved => "Reserved",
    target_file_object => "TargetFileObject",
    target_instance => "TargetInstance",
    parameters => "Parameters",
});

// windows-sys declares these correctly; pinned, not replaced.
pin_layout!(FLT_CALLBACK_DATA = "FLT_CALLBACK_DATA" {
    Flags => "Flags",
    Thread => "Thread",
    Iopb => "Iopb",
    IoStatus => "IoStatus",
    IoStatus.Anonymous.Status => "IoStatus.Status",
    IoStatus.Information => "IoStatus.Information",
    TagData => "TagData",
    RequestorMode => "RequestorMode",
});

pin_layout!(FLT_RELATED_OBJECTS = "FLT_RELATED_OBJECTS" {
    Size => "Size",
    TransactionContext => "TransactionContext",
    Filter => "Filter",
    Volume => "Volume",
    Instance => "Instance",
    FileObject => "FileObject",
    Transaction => "Transaction",
});

// windows-sys declares it correctly; pinned (ffi::names reads Name and Volume).
pin_layout!(FLT_FILE_NAME_INFORMATION = "FLT_FILE_NAME_INFORMATION" {
    Size => "Size",
    NamesParsed => "NamesParsed",
    Format => "Format",
    Name => "Name",
    Volume => "Volume",
    Share => "Share",
    Extension => "Extension",
    Stream => "Stream",
    FinalComponent => "FinalComponent",
    ParentDir => "ParentDir",
});

pin_layout!(FLT_REGISTRATION = "FLT_REGISTRATION" {
    Size => "Size",
    Version => "Version",
    Flags => "Flags",
    ContextRegistration => "ContextRegistration",
    OperationRegistration => "OperationRegistration",
    FilterUnloadCallback => "FilterUnloadCallback",
    InstanceSetupCallback => "InstanceSetupCallback",
    InstanceQueryTeardownCallback => "InstanceQueryTeardownCallback",
    InstanceTeardownStartCallback => "InstanceTeardownStartCallback",
    InstanceTeardownCompleteCallback => "InstanceTeardownCompleteCallback",
    GenerateFileNameCallback => "GenerateFileNameCallback",
    NormalizeNameComponentCallback => "NormalizeNameComponentCallback",
    NormalizeContextCleanupCallback => "NormalizeContextCleanupCallback",
    TransactionNotificationCallback => "TransactionNotificationCallback",
    NormalizeNameComponentExCallback => "NormalizeNameComponentExCallback",
    SectionNotificationCallback => "SectionNotificationCallback",
});

pin_layout!(FLT_OPERATION_REGISTRATION = "FLT_OPERATION_REGISTRATION" {
    MajorFunction => "MajorFunction",
    Flags => "Flags",
    PreOperation => "PreOperation",
    PostOperation => "PostOperation",
    Reserved1 => "Reserved1",
});

pin_layout!(FLT_CONTEXT_REGISTRATION = "FLT_CONTEXT_REGISTRATION" {
    ContextType => "ContextType",
    Flags => "Flags",
    ContextCleanupCallback => "ContextCleanupCallback",
    Size => "Size",
    PoolTag => "PoolTag",
    ContextAllocateCallback => "ContextAllocateCallback",
    ContextFreeCallback => "ContextFreeCallback",
    Reserved1 => "Reserved1",
});

// odxflt reads one field of the file object: `Flags` (FO_CLEANUP_COMPLETE).
pin_layout!(FILE_OBJECT = "FILE_OBJECT" {
    Type => "Type",
    Size => "Size",
    Flags => "Flags",
});

pin_layout!(FILE_BASIC_INFORMATION = "FILE_BASIC_INFORMATION" {
    CreationTime => "CreationTime",
    LastAccessTime => "LastAccessTime",
    LastWriteTime => "LastWriteTime",
    ChangeTime => "ChangeTime",
    FileAttributes => "FileAttributes",
});

pin_layout!(FILE_STANDARD_INFORMATION = "FILE_STANDARD_INFORMATION" {
    AllocationSize => "AllocationSize",
    EndOfFile => "EndOfFile",
    NumberOfLinks => "NumberOfLinks",
    DeletePending => "DeletePending",
    Directory => "Directory",
});

pin_layout!(FILE_FS_SECTOR_SIZE_INFORMATION = "FILE_FS_SECTOR_SIZE_INFORMATION" {
    LogicalBytesPerSector => "LogicalBytesPerSector",
    PhysicalBytesPerSectorForAtomicity => "PhysicalBytesPerSectorForAtomicity",
    PhysicalBytesPerSectorForPerformance => "PhysicalBytesPerSectorForPerformance",
    FileSystemEffectivePhysicalBytesPerSectorForAtomicity => "FileSystemEffectivePhysicalBytesPerSectorForAtomicity",
    Flags => "Flags",
    ByteOffsetForSectorAlignment => "ByteOffsetForSectorAlignment",
    ByteOffsetForPartitionAlignment => "ByteOffsetForPartitionAlignment",
});

pin_layout!(FILE_FS_SIZE_INFORMATION = "FILE_FS_SIZE_INFORMATION" {
    TotalAllocationUnits => "TotalAllocationUnits",
    AvailableAllocationUnits => "AvailableAllocationUnits",
    SectorsPerAllocationUnit => "SectorsPerAllocationUnit",
    BytesPerSector => "BytesPerSector",
});

pin_layout!(IO_STATUS_BLOCK = "IO_STATUS_BLOCK" {
    Anonymous.Status => "Status",
    Anonymous.Pointer => "Pointer",
    Information => "Information",
});

pin_layout!(UNICODE_STRING = "UNICODE_STRING" {
    Length => "Length",
    MaximumLength => "MaximumLength",
    Buffer => "Buffer",
});

pin_layout!(OBJECT_ATTRIBUTES = "OBJECT_ATTRIBUTES" {
    Length => "Length",
    RootDirectory => "RootDirectory",
    ObjectName => "ObjectName",
    Attributes => "Attributes",
    SecurityDescriptor => "SecurityDescriptor",
    SecurityQualityOfService => "SecurityQualityOfService",
});

pin_layout!(prefix KEY_VALUE_PARTIAL_INFORMATION = "KEY_VALUE_PARTIAL_INFORMATION" {
    TitleIndex => "TitleIndex",
    Type => "Type",
    DataLength => "DataLength",
    Data => "Data",
});

pin_layout!(DRIVER_OBJECT = "DRIVER_OBJECT" {
    Type => "Type",
    Size => "Size",
    DeviceObject => "DeviceObject",
    Flags => "Flags",
    DriverStart => "DriverStart",
    DriverSize => "DriverSize",
    DriverSection => "DriverSection",
    DriverExtension => "DriverExtension",
    DriverName => "DriverName",
    HardwareDatabase => "HardwareDatabase",
    FastIoDispatch => "FastIoDispatch",
    DriverInit => "DriverInit",
    DriverStartIo => "DriverStartIo",
    DriverUnload => "DriverUnload",
    MajorFunction => "MajorFunction",
});

// The windows-sys constants odxflt uses (values checked against the table, not trusted).
pin_constant!(
    windows_sys::Wdk::Storage::FileSystem::Minifilters::FLT_PREOP_SUCCESS_WITH_CALLBACK => "FLT_PREOP_SUCCESS_WITH_CALLBACK",
    windows_sys::Wdk::Storage::FileSystem::Minifilters::FLT_PREOP_SUCCESS_NO_CALLBACK => "FLT_PREOP_SUCCESS_NO_CALLBACK",
    windows_sys::Wdk::Storage::FileSystem::Minifilters::FLT_PREOP_COMPLETE => "FLT_PREOP_COMPLETE",
    windows_sys::Wdk::Storage::FileSystem::Minifilters::FLT_POSTOP_FINISHED_PROCESSING => "FLT_POSTOP_FINISHED_PROCESSING",
    windows_sys::Wdk::Storage::FileSystem::Minifilters::FLTFL_POST_OPERATION_DRAINING => "FLTFL_POST_OPERATION_DRAINING",
    windows_sys::Wdk::Storage::FileSystem::FileBasicInformation => "FileBasicInformation",
    windows_sys::Wdk::Storage::FileSystem::FileStandardInformation => "FileStandardInformation",
    windows_sys::Wdk::Storage::FileSystem::FileFsSizeInformation => "FileFsSizeInformation",
    windows_sys::Wdk::Storage::FileSystem::FileFsSectorSizeInformation => "FileFsSectorSizeInformation",
    windows_sys::Win32::Foundation::OBJ_CASE_INSENSITIVE => "OBJ_CASE_INSENSITIVE",
    windows_sys::Win32::Foundation::OBJ_KERNEL_HANDLE => "OBJ_KERNEL_HANDLE",
    windows_sys::Win32::Foundation::STATUS_FLT_DO_NOT_ATTACH as u32 => "STATUS_FLT_DO_NOT_ATTACH",
);

// The constants odxflt uses, wherever they are declared in the driver.
pin_constant!(
    crate::registration::IRP_MJ_FILE_SYSTEM_CONTROL => "IRP_MJ_FILE_SYSTEM_CONTROL",
    crate::registration::IRP_MN_USER_FS_REQUEST => "IRP_MN_USER_FS_REQUEST",
    crate::registration::IRP_MN_KERNEL_CALL => "IRP_MN_KERNEL_CALL",
    crate::facts::FO_CLEANUP_COMPLETE => "FO_CLEANUP_COMPLETE",
    odx_core::FSCTL_OFFLOAD_READ => "FSCTL_OFFLOAD_READ",
    odx_core::FSCTL_OFFLOAD_WRITE => "FSCTL_OFFLOAD_WRITE",
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The defect of the last review, stated as a test: windows-sys' own `FLT_PARAMETERS` puts
    /// the control code where Windows puts `InputBufferLength`. If windows-sys is ever fixed, this
    /// test says so (and the driver's own view can go).
    #[test]
    fn windows_sys_flt_parameters_still_lacks_pointer_alignment() {
        use windows_sys::Wdk::Storage::FileSystem::Minifilters::FLT_PARAMETERS;
        let theirs =
            core::mem::offset_of!(FLT_PARAMETERS, FileSystemControl.Buffered.FsControlCode);
        let ours =
            core::mem::offset_of!(FltParameters, file_system_control.buffered.fs_control_code);
        assert_eq!(
            super::super::layouts::offset(
                "FLT_PARAMETERS",
                "FileSystemControl.Buffered.FsControlCode"
            ),
            Some(ours)
        );
        assert_eq!((theirs, ours), (8, 16));
    }
}
