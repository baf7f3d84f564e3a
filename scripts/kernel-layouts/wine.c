/*
 * Kernel-layout probe against Wine's headers (Debian's libwine-dev, unpacked, never
 * installed). Compiled by scripts/kernel-layouts.sh with
 *   x86_64-w64-mingw32-gcc -S -nostdinc -I<wine>/windows -I<wine>/msvcrt
 * Only what these headers define is probed here: a field Wine's structure lacks is left out
 * (the script then takes the structure from mingw-w64 and cross-checks the shared fields).
 */
#include <ntstatus.h>
#define WIN32_NO_STATUS
#include <windef.h>
#include <winternl.h>
#include <ddk/fltkernel.h>
#include <winioctl.h>
#include <ntddstor.h>

#include "probe.h"

#define KL_FSCTL_COMMON(u, code)                                     \
    KL_FIELD(FLT_PARAMETERS, u.OutputBufferLength);                  \
    KL_FIELD(FLT_PARAMETERS, u.InputBufferLength);                   \
    KL_FIELD(FLT_PARAMETERS, u.code)

void kl_probe(void)
{
    /* Filter Manager (ddk/fltkernel.h) */
    KL_SIZE(FLT_CALLBACK_DATA);
    KL_FIELD(FLT_CALLBACK_DATA, Flags);
    KL_FIELD(FLT_CALLBACK_DATA, Thread);
    KL_FIELD(FLT_CALLBACK_DATA, Iopb);
    KL_FIELD(FLT_CALLBACK_DATA, IoStatus);
    KL_FIELD(FLT_CALLBACK_DATA, IoStatus.Status);
    KL_FIELD(FLT_CALLBACK_DATA, IoStatus.Pointer);
    KL_FIELD(FLT_CALLBACK_DATA, IoStatus.Information);
    KL_FIELD(FLT_CALLBACK_DATA, TagData);
    KL_FIELD(FLT_CALLBACK_DATA, QueueLinks);
    KL_FIELD(FLT_CALLBACK_DATA, QueueContext);
    KL_FIELD(FLT_CALLBACK_DATA, FilterContext);
    KL_FIELD(FLT_CALLBACK_DATA, RequestorMode);

    KL_SIZE(FLT_IO_PARAMETER_BLOCK);
    KL_FIELD(FLT_IO_PARAMETER_BLOCK, IrpFlags);
    KL_FIELD(FLT_IO_PARAMETER_BLOCK, MajorFunction);
    KL_FIELD(FLT_IO_PARAMETER_BLOCK, MinorFunction);
    KL_FIELD(FLT_IO_PARAMETER_BLOCK, OperationFlags);
    KL_FIELD(FLT_IO_PARAMETER_BLOCK, Reserved);
    KL_FIELD(FLT_IO_PARAMETER_BLOCK, TargetFileObject);
    KL_FIELD(FLT_IO_PARAMETER_BLOCK, TargetInstance);
    KL_FIELD(FLT_IO_PARAMETER_BLOCK, Parameters);

    KL_SIZE(FLT_PARAMETERS);
    KL_FSCTL_COMMON(FileSystemControl.Common, FsControlCode);
    KL_FSCTL_COMMON(FileSystemControl.Buffered, FsControlCode);
    KL_FIELD(FLT_PARAMETERS, FileSystemControl.Buffered.SystemBuffer);
    KL_FSCTL_COMMON(FileSystemControl.Direct, FsControlCode);
    KL_FIELD(FLT_PARAMETERS, FileSystemControl.Direct.InputSystemBuffer);
    KL_FIELD(FLT_PARAMETERS, FileSystemControl.Direct.OutputBuffer);
    KL_FIELD(FLT_PARAMETERS, FileSystemControl.Direct.OutputMdlAddress);
    KL_FSCTL_COMMON(FileSystemControl.Neither, FsControlCode);
    KL_FIELD(FLT_PARAMETERS, FileSystemControl.Neither.InputBuffer);
    KL_FIELD(FLT_PARAMETERS, FileSystemControl.Neither.OutputBuffer);
    KL_FIELD(FLT_PARAMETERS, FileSystemControl.Neither.OutputMdlAddress);
    KL_FIELD(FLT_PARAMETERS, FileSystemControl.VerifyVolume.Vpb);
    KL_FIELD(FLT_PARAMETERS, FileSystemControl.VerifyVolume.DeviceObject);
    /* IRP_MJ_VOLUME_MOUNT: a member of FLT_PARAMETERS itself, not of FileSystemControl. */
    KL_FIELD(FLT_PARAMETERS, MountVolume.DeviceType);
    KL_FSCTL_COMMON(DeviceIoControl.Common, IoControlCode);
    KL_FSCTL_COMMON(DeviceIoControl.Buffered, IoControlCode);
    KL_FIELD(FLT_PARAMETERS, DeviceIoControl.Buffered.SystemBuffer);
    KL_FSCTL_COMMON(DeviceIoControl.Direct, IoControlCode);
    KL_FIELD(FLT_PARAMETERS, DeviceIoControl.Direct.InputSystemBuffer);
    KL_FIELD(FLT_PARAMETERS, DeviceIoControl.Direct.OutputBuffer);
    KL_FIELD(FLT_PARAMETERS, DeviceIoControl.Direct.OutputMdlAddress);
    KL_FSCTL_COMMON(DeviceIoControl.Neither, IoControlCode);
    KL_FIELD(FLT_PARAMETERS, DeviceIoControl.Neither.InputBuffer);
    KL_FIELD(FLT_PARAMETERS, DeviceIoControl.Neither.OutputBuffer);
    KL_FIELD(FLT_PARAMETERS, DeviceIoControl.Neither.OutputMdlAddress);
    KL_FSCTL_COMMON(DeviceIoControl.FastIo, IoControlCode);
    KL_FIELD(FLT_PARAMETERS, DeviceIoControl.FastIo.InputBuffer);
    KL_FIELD(FLT_PARAMETERS, DeviceIoControl.FastIo.OutputBuffer);
    KL_FIELD(FLT_PARAMETERS, QueryFileInformation.Length);
    KL_FIELD(FLT_PARAMETERS, QueryFileInformation.FileInformationClass);
    KL_FIELD(FLT_PARAMETERS, QueryFileInformation.InfoBuffer);
    KL_FIELD(FLT_PARAMETERS, SetFileInformation.Length);
    KL_FIELD(FLT_PARAMETERS, SetFileInformation.FileInformationClass);
    KL_FIELD(FLT_PARAMETERS, SetFileInformation.ParentOfTarget);
    KL_FIELD(FLT_PARAMETERS, SetFileInformation.ReplaceIfExists);
    KL_FIELD(FLT_PARAMETERS, SetFileInformation.AdvanceOnly);
    KL_FIELD(FLT_PARAMETERS, SetFileInformation.ClusterCount);
    KL_FIELD(FLT_PARAMETERS, SetFileInformation.DeleteHandle);
    KL_FIELD(FLT_PARAMETERS, SetFileInformation.InfoBuffer);
    KL_FIELD(FLT_PARAMETERS, QueryVolumeInformation.Length);
    KL_FIELD(FLT_PARAMETERS, QueryVolumeInformation.FsInformationClass);
    KL_FIELD(FLT_PARAMETERS, QueryVolumeInformation.VolumeBuffer);
    KL_FIELD(FLT_PARAMETERS, Create.SecurityContext);
    KL_FIELD(FLT_PARAMETERS, Create.Options);
    KL_FIELD(FLT_PARAMETERS, Create.FileAttributes);
    KL_FIELD(FLT_PARAMETERS, Create.ShareAccess);
    KL_FIELD(FLT_PARAMETERS, Create.EaLength);
    KL_FIELD(FLT_PARAMETERS, Create.EaBuffer);
    KL_FIELD(FLT_PARAMETERS, Create.AllocationSize);
    KL_FIELD(FLT_PARAMETERS, Read.Length);
    KL_FIELD(FLT_PARAMETERS, Read.Key);
    KL_FIELD(FLT_PARAMETERS, Read.ByteOffset);
    KL_FIELD(FLT_PARAMETERS, Read.ReadBuffer);
    KL_FIELD(FLT_PARAMETERS, Read.MdlAddress);
    KL_FIELD(FLT_PARAMETERS, Write.Length);
    KL_FIELD(FLT_PARAMETERS, Write.Key);
    KL_FIELD(FLT_PARAMETERS, Write.ByteOffset);
    KL_FIELD(FLT_PARAMETERS, Write.WriteBuffer);
    KL_FIELD(FLT_PARAMETERS, Write.MdlAddress);

    KL_SIZE(FLT_REGISTRATION);
    KL_FIELD(FLT_REGISTRATION, Size);
    KL_FIELD(FLT_REGISTRATION, Version);
    KL_FIELD(FLT_REGISTRATION, Flags);
    KL_FIELD(FLT_REGISTRATION, ContextRegistration);
    KL_FIELD(FLT_REGISTRATION, OperationRegistration);
    KL_FIELD(FLT_REGISTRATION, FilterUnloadCallback);
    KL_FIELD(FLT_REGISTRATION, InstanceSetupCallback);
    KL_FIELD(FLT_REGISTRATION, InstanceQueryTeardownCallback);
    KL_FIELD(FLT_REGISTRATION, InstanceTeardownStartCallback);
    KL_FIELD(FLT_REGISTRATION, InstanceTeardownCompleteCallback);
    KL_FIELD(FLT_REGISTRATION, GenerateFileNameCallback);
    KL_FIELD(FLT_REGISTRATION, NormalizeNameComponentCallback);
    KL_FIELD(FLT_REGISTRATION, NormalizeContextCleanupCallback);
    KL_FIELD(FLT_REGISTRATION, TransactionNotificationCallback);
    KL_FIELD(FLT_REGISTRATION, NormalizeNameComponentExCallback);
    KL_FIELD(FLT_REGISTRATION, SectionNotificationCallback);

    KL_SIZE(FLT_OPERATION_REGISTRATION);
    KL_FIELD(FLT_OPERATION_REGISTRATION, MajorFunction);
    KL_FIELD(FLT_OPERATION_REGISTRATION, Flags);
    KL_FIELD(FLT_OPERATION_REGISTRATION, PreOperation);
    KL_FIELD(FLT_OPERATION_REGISTRATION, PostOperation);
    KL_FIELD(FLT_OPERATION_REGISTRATION, Reserved1);

    KL_SIZE(FLT_CONTEXT_REGISTRATION);
    KL_FIELD(FLT_CONTEXT_REGISTRATION, ContextType);
    KL_FIELD(FLT_CONTEXT_REGISTRATION, Flags);
    KL_FIELD(FLT_CONTEXT_REGISTRATION, ContextCleanupCallback);
    KL_FIELD(FLT_CONTEXT_REGISTRATION, Size);
    KL_FIELD(FLT_CONTEXT_REGISTRATION, PoolTag);
    KL_FIELD(FLT_CONTEXT_REGISTRATION, ContextAllocateCallback);
    KL_FIELD(FLT_CONTEXT_REGISTRATION, ContextFreeCallback);
    KL_FIELD(FLT_CONTEXT_REGISTRATION, Reserved1);

    /* I/O manager objects (ddk/wdm.h). Wine's FILE_OBJECT stops at CompletionContext. */
    KL_SIZE(FILE_OBJECT);
    KL_FIELD(FILE_OBJECT, Type);
    KL_FIELD(FILE_OBJECT, Size);
    KL_FIELD(FILE_OBJECT, DeviceObject);
    KL_FIELD(FILE_OBJECT, Vpb);
    KL_FIELD(FILE_OBJECT, FsContext);
    KL_FIELD(FILE_OBJECT, FsContext2);
    KL_FIELD(FILE_OBJECT, SectionObjectPointer);
    KL_FIELD(FILE_OBJECT, PrivateCacheMap);
    KL_FIELD(FILE_OBJECT, FinalStatus);
    KL_FIELD(FILE_OBJECT, RelatedFileObject);
    KL_FIELD(FILE_OBJECT, LockOperation);
    KL_FIELD(FILE_OBJECT, DeletePending);
    KL_FIELD(FILE_OBJECT, ReadAccess);
    KL_FIELD(FILE_OBJECT, WriteAccess);
    KL_FIELD(FILE_OBJECT, DeleteAccess);
    KL_FIELD(FILE_OBJECT, SharedRead);
    KL_FIELD(FILE_OBJECT, SharedWrite);
    KL_FIELD(FILE_OBJECT, SharedDelete);
    KL_FIELD(FILE_OBJECT, Flags);
    KL_FIELD(FILE_OBJECT, FileName);
    KL_FIELD(FILE_OBJECT, CurrentByteOffset);
    KL_FIELD(FILE_OBJECT, Waiters);
    KL_FIELD(FILE_OBJECT, Busy);
    KL_FIELD(FILE_OBJECT, LastLock);
    KL_FIELD(FILE_OBJECT, Lock);
    KL_FIELD(FILE_OBJECT, Event);
    KL_FIELD(FILE_OBJECT, CompletionContext);

    KL_SIZE(DRIVER_OBJECT);
    KL_FIELD(DRIVER_OBJECT, Type);
    KL_FIELD(DRIVER_OBJECT, Size);
    KL_FIELD(DRIVER_OBJECT, DeviceObject);
    KL_FIELD(DRIVER_OBJECT, Flags);
    KL_FIELD(DRIVER_OBJECT, DriverStart);
    KL_FIELD(DRIVER_OBJECT, DriverSize);
    KL_FIELD(DRIVER_OBJECT, DriverSection);
    KL_FIELD(DRIVER_OBJECT, DriverExtension);
    KL_FIELD(DRIVER_OBJECT, DriverName);
    KL_FIELD(DRIVER_OBJECT, HardwareDatabase);
    KL_FIELD(DRIVER_OBJECT, FastIoDispatch);
    KL_FIELD(DRIVER_OBJECT, DriverInit);
    KL_FIELD(DRIVER_OBJECT, DriverStartIo);
    KL_FIELD(DRIVER_OBJECT, DriverUnload);
    KL_FIELD(DRIVER_OBJECT, MajorFunction);

    /* Native API structures (winternl.h, winioctl.h, ntddstor.h) */
    KL_SIZE(IO_STATUS_BLOCK);
    KL_FIELD(IO_STATUS_BLOCK, Status);
    KL_FIELD(IO_STATUS_BLOCK, Pointer);
    KL_FIELD(IO_STATUS_BLOCK, Information);

    KL_SIZE(UNICODE_STRING);
    KL_FIELD(UNICODE_STRING, Length);
    KL_FIELD(UNICODE_STRING, MaximumLength);
    KL_FIELD(UNICODE_STRING, Buffer);

    KL_SIZE(OBJECT_ATTRIBUTES);
    KL_FIELD(OBJECT_ATTRIBUTES, Length);
    KL_FIELD(OBJECT_ATTRIBUTES, RootDirectory);
    KL_FIELD(OBJECT_ATTRIBUTES, ObjectName);
    KL_FIELD(OBJECT_ATTRIBUTES, Attributes);
    KL_FIELD(OBJECT_ATTRIBUTES, SecurityDescriptor);
    KL_FIELD(OBJECT_ATTRIBUTES, SecurityQualityOfService);

    KL_SIZE(KEY_VALUE_PARTIAL_INFORMATION);
    KL_FIELD(KEY_VALUE_PARTIAL_INFORMATION, TitleIndex);
    KL_FIELD(KEY_VALUE_PARTIAL_INFORMATION, Type);
    KL_FIELD(KEY_VALUE_PARTIAL_INFORMATION, DataLength);
    KL_FIELD(KEY_VALUE_PARTIAL_INFORMATION, Data);

    KL_SIZE(FILE_BASIC_INFORMATION);
    KL_FIELD(FILE_BASIC_INFORMATION, CreationTime);
    KL_FIELD(FILE_BASIC_INFORMATION, LastAccessTime);
    KL_FIELD(FILE_BASIC_INFORMATION, LastWriteTime);
    KL_FIELD(FILE_BASIC_INFORMATION, ChangeTime);
    KL_FIELD(FILE_BASIC_INFORMATION, FileAttributes);

    KL_SIZE(FILE_STANDARD_INFORMATION);
    KL_FIELD(FILE_STANDARD_INFORMATION, AllocationSize);
    KL_FIELD(FILE_STANDARD_INFORMATION, EndOfFile);
    KL_FIELD(FILE_STANDARD_INFORMATION, NumberOfLinks);
    KL_FIELD(FILE_STANDARD_INFORMATION, DeletePending);
    KL_FIELD(FILE_STANDARD_INFORMATION, Directory);

    KL_SIZE(FILE_FS_SIZE_INFORMATION);
    KL_FIELD(FILE_FS_SIZE_INFORMATION, TotalAllocationUnits);
    KL_FIELD(FILE_FS_SIZE_INFORMATION, AvailableAllocationUnits);
    KL_FIELD(FILE_FS_SIZE_INFORMATION, SectorsPerAllocationUnit);
    KL_FIELD(FILE_FS_SIZE_INFORMATION, BytesPerSector);

    KL_SIZE(STORAGE_PROPERTY_QUERY);
    KL_FIELD(STORAGE_PROPERTY_QUERY, PropertyId);
    KL_FIELD(STORAGE_PROPERTY_QUERY, QueryType);
    KL_FIELD(STORAGE_PROPERTY_QUERY, AdditionalParameters);

    /* The event odxflt waits on for its storage property query (ddk/wdm.h). */
    KL_SIZE(KEVENT);
    KL_FIELD(KEVENT, Header);
    KL_FIELD(KEVENT, Header.Type);
    KL_FIELD(KEVENT, Header.Size);
    KL_FIELD(KEVENT, Header.SignalState);
    KL_FIELD(KEVENT, Header.WaitListHead);

    /* Constants */
    KL_CONST(FLT_FSTYPE_UNKNOWN);
    KL_CONST(FLT_FSTYPE_RAW);
    KL_CONST(FLT_FSTYPE_NTFS);
    KL_CONST(FLT_FSTYPE_FAT);
    KL_CONST(FLT_FSTYPE_CDFS);
    KL_CONST(FLT_FSTYPE_UDFS);
    KL_CONST(FLT_FSTYPE_LANMAN);
    KL_CONST(FLT_FSTYPE_WEBDAV);
    KL_CONST(FLT_FSTYPE_RDPDR);
    KL_CONST(FLT_FSTYPE_NFS);
    KL_CONST(FLT_FSTYPE_MS_NETWARE);
    KL_CONST(FLT_FSTYPE_NETWARE);
    KL_CONST(FLT_FSTYPE_BSUDF);
    KL_CONST(FLT_FSTYPE_MUP);
    KL_CONST(FLT_FSTYPE_RSFX);
    KL_CONST(FLT_FSTYPE_ROXIO_UDF1);
    KL_CONST(FLT_FSTYPE_ROXIO_UDF2);
    KL_CONST(FLT_FSTYPE_ROXIO_UDF3);
    KL_CONST(FLT_FSTYPE_TACIT);
    KL_CONST(FLT_FSTYPE_FS_REC);
    KL_CONST(FLT_FSTYPE_INCD);
    KL_CONST(FLT_FSTYPE_INCD_FAT);
    KL_CONST(FLT_FSTYPE_EXFAT);
    KL_CONST(FLT_FSTYPE_PSFS);
    KL_CONST(FLT_FSTYPE_GPFS);
    KL_CONST(FLT_FSTYPE_NPFS);
    KL_CONST(FLT_FSTYPE_MSFS);
    KL_CONST(FLT_FSTYPE_CSVFS);
    KL_CONST(FLT_FSTYPE_REFS);
    KL_CONST(FLT_FSTYPE_OPENAFS);

    KL_CONST(FLT_PREOP_SUCCESS_WITH_CALLBACK);
    KL_CONST(FLT_PREOP_SUCCESS_NO_CALLBACK);
    KL_CONST(FLT_PREOP_PENDING);
    KL_CONST(FLT_PREOP_DISALLOW_FASTIO);
    KL_CONST(FLT_PREOP_COMPLETE);
    KL_CONST(FLT_PREOP_SYNCHRONIZE);
    KL_CONST(FLT_PREOP_DISALLOW_FSFILTER_IO);
    KL_CONST(FLT_POSTOP_FINISHED_PROCESSING);
    KL_CONST(FLT_POSTOP_MORE_PROCESSING_REQUIRED);
    KL_CONST(FLT_POSTOP_DISALLOW_FSFILTER_IO);

    KL_CONST(FLT_VOLUME_CONTEXT);
    KL_CONST(FLT_INSTANCE_CONTEXT);
    KL_CONST(FLT_FILE_CONTEXT);
    KL_CONST(FLT_STREAM_CONTEXT);
    KL_CONST(FLT_STREAMHANDLE_CONTEXT);
    KL_CONST(FLT_TRANSACTION_CONTEXT);

    KL_CONST(FLTFL_OPERATION_REGISTRATION_SKIP_PAGING_IO);
    KL_CONST(FLTFL_OPERATION_REGISTRATION_SKIP_CACHED_IO);
    KL_CONST(FLTFL_OPERATION_REGISTRATION_SKIP_NON_DASD_IO);
    KL_CONST(FLTFL_INSTANCE_TEARDOWN_MANUAL);
    KL_CONST(FLTFL_INSTANCE_TEARDOWN_FILTER_UNLOAD);
    KL_CONST(FLTFL_INSTANCE_TEARDOWN_MANDATORY_FILTER_UNLOAD);
    KL_CONST(FLTFL_INSTANCE_TEARDOWN_VOLUME_DISMOUNT);
    KL_CONST(FLTFL_INSTANCE_TEARDOWN_INTERNAL_ERROR);

    KL_CONST(IRP_MJ_FILE_SYSTEM_CONTROL);
    KL_CONST(IRP_MJ_LOCK_CONTROL);
    KL_CONST(IRP_MJ_MAXIMUM_FUNCTION);
    KL_CONST(FileBasicInformation);
    KL_CONST(FileStandardInformation);
    KL_CONST(FileFsSizeInformation);
    KL_CONST(KeyValuePartialInformation);
    KL_CONST(REG_DWORD);
    KL_CONST(OBJ_CASE_INSENSITIVE);
    KL_CONST(OBJ_KERNEL_HANDLE);
    KL_CONST(STANDARD_RIGHTS_ALL);
    KL_CONST(NonPagedPool);
    KL_CONST(KernelMode);
    KL_CONST(UserMode);
    KL_STATUS(STATUS_SUCCESS);
    KL_STATUS(STATUS_NOT_FOUND);
    KL_STATUS(STATUS_INSUFFICIENT_RESOURCES);
    KL_CONST(FSCTL_OFFLOAD_READ);
    KL_CONST(FSCTL_OFFLOAD_WRITE);
    KL_CONST(IOCTL_STORAGE_QUERY_PROPERTY);
    KL_CONST(PropertyStandardQuery);
    KL_CONST(NotificationEvent);
    KL_CONST(SynchronizationEvent);
    KL_CONST(Executive);
    KL_STATUS(STATUS_PENDING);
    KL_STATUS(STATUS_NOT_SUPPORTED);
    KL_STATUS(STATUS_INVALID_DEVICE_REQUEST);
    KL_STATUS(STATUS_DEVICE_FEATURE_NOT_SUPPORTED);
}
