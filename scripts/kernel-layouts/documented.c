/*
 * Kernel-layout probe for what neither Wine's nor mingw-w64's headers define: the definitions
 * as learn.microsoft.com documents them, written here as plain C (no headers at all) and laid
 * out by the compiler with natural x86-64 alignment. Compiled by scripts/kernel-layouts.sh
 * with x86_64-w64-mingw32-gcc -S -nostdinc. Every item names its documentation page.
 *
 * Where a header set also defines an item (the FLT_FILESYSTEM_TYPE enumerators up to
 * FLT_FSTYPE_OPENAFS, STANDARD_RIGHTS_ALL), the script cross-checks the documented value
 * against it.
 *
 * A documented correction (KL_CORRECTS, probe.h) is the one exception: a header value that the
 * documentation contradicts, named with the header set, the header and the value it has there.
 * The table then records the documented value, and says in its source that the header
 * disagrees; merge.pl fails when the header no longer has the value stated here (in
 * particular once it is fixed, so that the correction is removed, not left to go stale). Any
 * other disagreement still fails.
 *
 * Where a page names a constant without its value, the value is the WDK header's, checked
 * against Microsoft's Win32 metadata (the windows-sys crate's Wdk modules, generated from it).
 *
 * Not here: FSRTL_FLAG_ADVANCED_FCB_HEADER. No such name exists: the WDK's ntifs.h and the
 * FSRTL_COMMON_FCB_HEADER / FSRTL_ADVANCED_FCB_HEADER pages call the 0x40 flag
 * FSRTL_FLAG_ADVANCED_HEADER, which the table takes from mingw-w64 under that name.
 */
#include "probe.h"

typedef unsigned char UCHAR;
typedef unsigned short USHORT;
typedef unsigned int ULONG; /* 32 bits on Windows x64 (LLP64) */
typedef struct _FLT_FILTER *PFLT_FILTER;
typedef struct _FLT_VOLUME *PFLT_VOLUME;
typedef struct _FLT_INSTANCE *PFLT_INSTANCE;
typedef struct _FILE_OBJECT *PFILE_OBJECT;
typedef struct _KTRANSACTION *PKTRANSACTION;

#define KL_DOCS "documented: https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/"
#define KL_WIN32_DOCS "documented: https://learn.microsoft.com/en-us/windows/win32/"
/* For a page that names a constant but does not give its value. */
#define KL_WDK_VALUE(header) " (value: the WDK's " header ", as Microsoft's Win32 metadata has it)"

/* fltkernel.h; Wine declares only the pointer type. */
typedef struct _FLT_RELATED_OBJECTS {
    USHORT Size;
    USHORT TransactionContext;
    PFLT_FILTER Filter;
    PFLT_VOLUME Volume;
    PFLT_INSTANCE Instance;
    PFILE_OBJECT FileObject;
    PKTRANSACTION Transaction;
} FLT_RELATED_OBJECTS;

/* ntddk.h; mingw-w64 has the FileFsSectorSizeInformation class but not the structure. */
typedef struct _FILE_FS_SECTOR_SIZE_INFORMATION {
    ULONG LogicalBytesPerSector;
    ULONG PhysicalBytesPerSectorForAtomicity;
    ULONG PhysicalBytesPerSectorForPerformance;
    ULONG FileSystemEffectivePhysicalBytesPerSectorForAtomicity;
    ULONG Flags;
    ULONG ByteOffsetForSectorAlignment;
    ULONG ByteOffsetForPartitionAlignment;
} FILE_FS_SECTOR_SIZE_INFORMATION;

/* fltuserstructures.h; both header sets stop at FLT_FSTYPE_OPENAFS. */
typedef enum _FLT_FILESYSTEM_TYPE {
    FLT_FSTYPE_UNKNOWN,
    FLT_FSTYPE_RAW,
    FLT_FSTYPE_NTFS,
    FLT_FSTYPE_FAT,
    FLT_FSTYPE_CDFS,
    FLT_FSTYPE_UDFS,
    FLT_FSTYPE_LANMAN,
    FLT_FSTYPE_WEBDAV,
    FLT_FSTYPE_RDPDR,
    FLT_FSTYPE_NFS,
    FLT_FSTYPE_MS_NETWARE,
    FLT_FSTYPE_NETWARE,
    FLT_FSTYPE_BSUDF,
    FLT_FSTYPE_MUP,
    FLT_FSTYPE_RSFX,
    FLT_FSTYPE_ROXIO_UDF1,
    FLT_FSTYPE_ROXIO_UDF2,
    FLT_FSTYPE_ROXIO_UDF3,
    FLT_FSTYPE_TACIT,
    FLT_FSTYPE_FS_REC,
    FLT_FSTYPE_INCD,
    FLT_FSTYPE_INCD_FAT,
    FLT_FSTYPE_EXFAT,
    FLT_FSTYPE_PSFS,
    FLT_FSTYPE_GPFS,
    FLT_FSTYPE_NPFS,
    FLT_FSTYPE_MSFS,
    FLT_FSTYPE_CSVFS,
    FLT_FSTYPE_REFS,
    FLT_FSTYPE_OPENAFS,
    FLT_FSTYPE_CIMFS
} FLT_FILESYSTEM_TYPE;

/* winioctl.h (WDK): the control codes of offloaded data transfers. MS-FSCC 2.3 lists
 * FSCTL_OFFLOAD_READ 0x00094264 and FSCTL_OFFLOAD_WRITE 0x00098268; the WDK defines them with
 * FILE_READ_ACCESS and FILE_WRITE_ACCESS, and the I/O manager checks the caller's handle for
 * that access. Wine 8.0's winioctl.h has FILE_ANY_ACCESS: corrected below. */
#define FILE_DEVICE_FILE_SYSTEM 0x00000009
#define METHOD_BUFFERED 0
#define FILE_ANY_ACCESS 0
#define FILE_READ_ACCESS 0x0001
#define FILE_WRITE_ACCESS 0x0002
#define CTL_CODE(DeviceType, Function, Method, Access) \
    (((DeviceType) << 16) | ((Access) << 14) | ((Function) << 2) | (Method))
#define FSCTL_OFFLOAD_READ CTL_CODE(FILE_DEVICE_FILE_SYSTEM, 153, METHOD_BUFFERED, FILE_READ_ACCESS)
#define FSCTL_OFFLOAD_WRITE CTL_CODE(FILE_DEVICE_FILE_SYSTEM, 154, METHOD_BUFFERED, FILE_WRITE_ACCESS)
_Static_assert(FSCTL_OFFLOAD_READ == 0x00094264, "MS-FSCC 2.3: FSCTL_OFFLOAD_READ is 0x00094264");
_Static_assert(FSCTL_OFFLOAD_WRITE == 0x00098268, "MS-FSCC 2.3: FSCTL_OFFLOAD_WRITE is 0x00098268");
#define KL_MS_FSCC "documented: MS-FSCC 2.3 " \
    "(https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-fscc/efbfe127-73ad-4140-9967-ec6500e66d5e)"

/* fltkernel.h: the terminators of the registration arrays. */
#define IRP_MJ_OPERATION_END ((UCHAR)0x80)
#define FLT_CONTEXT_END 0xffff

/* fltkernel.h: FLT_REGISTRATION.Version. FLT_REGISTRATION_VERSION is the value for
 * FLT_MGR_WIN8 (Windows 8 and later), the FLT_REGISTRATION that has SectionNotificationCallback. */
#define FLT_REGISTRATION_VERSION_0201 0x0201
#define FLT_REGISTRATION_VERSION_0202 0x0202
#define FLT_REGISTRATION_VERSION_0203 0x0203
#define FLT_REGISTRATION_VERSION FLT_REGISTRATION_VERSION_0203

/* fltkernel.h: FLT_POST_OPERATION_FLAGS. */
#define FLTFL_POST_OPERATION_DRAINING 0x00000001

/* fltkernel.h: FLT_CALLBACK_DATA.Flags. */
#define FLTFL_CALLBACK_DATA_REISSUE_MASK 0x0000ffff
#define FLTFL_CALLBACK_DATA_IRP_OPERATION 0x00000001
#define FLTFL_CALLBACK_DATA_FAST_IO_OPERATION 0x00000002
#define FLTFL_CALLBACK_DATA_FS_FILTER_OPERATION 0x00000004
#define FLTFL_CALLBACK_DATA_SYSTEM_BUFFER 0x00000008
#define FLTFL_CALLBACK_DATA_GENERATED_IO 0x00010000
#define FLTFL_CALLBACK_DATA_REISSUED_IO 0x00020000
#define FLTFL_CALLBACK_DATA_DRAINING_IO 0x00040000
#define FLTFL_CALLBACK_DATA_POST_OPERATION 0x00080000
#define FLTFL_CALLBACK_DATA_NEW_SYSTEM_BUFFER 0x00100000
#define FLTFL_CALLBACK_DATA_DIRTY 0x80000000

/* fltkernel.h: FLT_INSTANCE_SETUP_FLAGS. */
#define FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT 0x00000001
#define FLTFL_INSTANCE_SETUP_MANUAL_ATTACHMENT 0x00000002
#define FLTFL_INSTANCE_SETUP_NEWLY_MOUNTED_VOLUME 0x00000004
#define FLTFL_INSTANCE_SETUP_DETACHED_VOLUME 0x00000008

/* fltkernel.h: the context type Wine's list of FLT_*_CONTEXT lacks (Windows 8 and later). */
#define FLT_SECTION_CONTEXT 0x0040

/* fltkernel.h */
typedef enum _FLT_SET_CONTEXT_OPERATION {
    FLT_SET_CONTEXT_REPLACE_IF_EXISTS,
    FLT_SET_CONTEXT_KEEP_IF_EXISTS
} FLT_SET_CONTEXT_OPERATION;

/* winnt.h / wdm.h: the standard rights, bits 16-20 of an ACCESS_MASK (secauthz/access-mask);
 * STANDARD_RIGHTS_ALL combines them (secauthz/standard-access-rights). Cross-checked against
 * both header sets: it is the part of FLT_PORT_ALL_ACCESS that the headers define. */
#define DELETE 0x00010000
#define READ_CONTROL 0x00020000
#define WRITE_DAC 0x00040000
#define WRITE_OWNER 0x00080000
#define SYNCHRONIZE 0x00100000
#define STANDARD_RIGHTS_ALL (DELETE | READ_CONTROL | WRITE_DAC | WRITE_OWNER | SYNCHRONIZE)

/* fltkernel.h: the access rights of a minifilter communication port. */
#define FLT_PORT_CONNECT 0x0001
#define FLT_PORT_ALL_ACCESS (FLT_PORT_CONNECT | STANDARD_RIGHTS_ALL)

/* fltkernel.h; neither header set has the file-name structure or its option flags (issue 15). */
typedef struct _KL_UNICODE_STRING {
    USHORT Length;
    USHORT MaximumLength;
    unsigned short *Buffer;
} UNICODE_STRING; /* ntdef.h's layout; pinned against both header sets as UNICODE_STRING */
typedef USHORT FLT_FILE_NAME_PARSED_FLAGS;
typedef ULONG FLT_FILE_NAME_OPTIONS;
typedef struct _FLT_FILE_NAME_INFORMATION {
    USHORT Size;
    FLT_FILE_NAME_PARSED_FLAGS NamesParsed;
    FLT_FILE_NAME_OPTIONS Format;
    UNICODE_STRING Name;
    UNICODE_STRING Volume;
    UNICODE_STRING Share;
    UNICODE_STRING Extension;
    UNICODE_STRING Stream;
    UNICODE_STRING FinalComponent;
    UNICODE_STRING ParentDir;
} FLT_FILE_NAME_INFORMATION;
#define FLT_FILE_NAME_NORMALIZED 0x01
#define FLT_FILE_NAME_OPENED 0x02
#define FLT_FILE_NAME_QUERY_DEFAULT 0x0100
#define FLT_FILE_NAME_QUERY_CACHE_ONLY 0x0200
#define STATUS_FLT_INVALID_NAME_REQUEST 0xC01C0005L

/* ntifs.h: FsRtlGetSupportedFeatures (neither header set has them). */
#define SUPPORTED_FS_FEATURES_OFFLOAD_READ 0x00000001
#define SUPPORTED_FS_FEATURES_OFFLOAD_WRITE 0x00000002

void kl_probe(void)
{
    KL_SOURCE(FLT_RELATED_OBJECTS, KL_DOCS "fltkernel/ns-fltkernel-_flt_related_objects");
    KL_SIZE(FLT_RELATED_OBJECTS);
    KL_FIELD(FLT_RELATED_OBJECTS, Size);
    KL_FIELD(FLT_RELATED_OBJECTS, TransactionContext);
    KL_FIELD(FLT_RELATED_OBJECTS, Filter);
    KL_FIELD(FLT_RELATED_OBJECTS, Volume);
    KL_FIELD(FLT_RELATED_OBJECTS, Instance);
    KL_FIELD(FLT_RELATED_OBJECTS, FileObject);
    KL_FIELD(FLT_RELATED_OBJECTS, Transaction);

    KL_SOURCE(FILE_FS_SECTOR_SIZE_INFORMATION,
              KL_DOCS "ntddk/ns-ntddk-_file_fs_sector_size_information");
    KL_SIZE(FILE_FS_SECTOR_SIZE_INFORMATION);
    KL_FIELD(FILE_FS_SECTOR_SIZE_INFORMATION, LogicalBytesPerSector);
    KL_FIELD(FILE_FS_SECTOR_SIZE_INFORMATION, PhysicalBytesPerSectorForAtomicity);
    KL_FIELD(FILE_FS_SECTOR_SIZE_INFORMATION, PhysicalBytesPerSectorForPerformance);
    KL_FIELD(FILE_FS_SECTOR_SIZE_INFORMATION, FileSystemEffectivePhysicalBytesPerSectorForAtomicity);
    KL_FIELD(FILE_FS_SECTOR_SIZE_INFORMATION, Flags);
    KL_FIELD(FILE_FS_SECTOR_SIZE_INFORMATION, ByteOffsetForSectorAlignment);
    KL_FIELD(FILE_FS_SECTOR_SIZE_INFORMATION, ByteOffsetForPartitionAlignment);

    /* One source line for every FLT_FSTYPE_* enumerator below. */
    KL_SOURCE(FLT_FSTYPE_*,
              KL_DOCS "fltuserstructures/ne-fltuserstructures-_flt_filesystem_type");
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
    KL_CONST(FLT_FSTYPE_CIMFS);

    /* Documented corrections: the documented value, then the header value it replaces. */
    KL_SOURCE(FSCTL_OFFLOAD_READ, KL_MS_FSCC " / WDK winioctl.h (FILE_READ_ACCESS)");
    KL_CONST(FSCTL_OFFLOAD_READ);
    KL_CORRECTS(FSCTL_OFFLOAD_READ, wine, "winioctl.h",
                CTL_CODE(FILE_DEVICE_FILE_SYSTEM, 153, METHOD_BUFFERED, FILE_ANY_ACCESS),
                "FILE_ANY_ACCESS");
    KL_SOURCE(FSCTL_OFFLOAD_WRITE, KL_MS_FSCC " / WDK winioctl.h (FILE_WRITE_ACCESS)");
    KL_CONST(FSCTL_OFFLOAD_WRITE);
    KL_CORRECTS(FSCTL_OFFLOAD_WRITE, wine, "winioctl.h",
                CTL_CODE(FILE_DEVICE_FILE_SYSTEM, 154, METHOD_BUFFERED, FILE_ANY_ACCESS),
                "FILE_ANY_ACCESS");

    KL_SOURCE(IRP_MJ_OPERATION_END, KL_DOCS "fltkernel/ns-fltkernel-_flt_operation_registration"
              KL_WDK_VALUE("fltkernel.h"));
    KL_CONST(IRP_MJ_OPERATION_END);
    KL_SOURCE(FLT_CONTEXT_END, KL_DOCS "fltkernel/ns-fltkernel-_flt_context_registration"
              KL_WDK_VALUE("fltkernel.h"));
    KL_CONST(FLT_CONTEXT_END);
    KL_SOURCE(FLT_SECTION_CONTEXT, KL_DOCS "fltkernel/ns-fltkernel-_flt_context_registration"
              KL_WDK_VALUE("fltkernel.h"));
    KL_CONST(FLT_SECTION_CONTEXT);

    KL_SOURCE(FLT_REGISTRATION_VERSION_*, KL_DOCS "fltkernel/ns-fltkernel-_flt_registration"
              KL_WDK_VALUE("fltkernel.h"));
    KL_SOURCE(FLT_REGISTRATION_VERSION, KL_DOCS "fltkernel/ns-fltkernel-_flt_registration"
              ", Version (minifilters must set it to FLT_REGISTRATION_VERSION; value:"
              " FLT_REGISTRATION_VERSION_0203, the WDK's fltkernel.h for FLT_MGR_WIN8, Windows 8"
              " and later, as Microsoft's Win32 metadata has it)");
    KL_CONST(FLT_REGISTRATION_VERSION_0201);
    KL_CONST(FLT_REGISTRATION_VERSION_0202);
    KL_CONST(FLT_REGISTRATION_VERSION_0203);
    KL_CONST(FLT_REGISTRATION_VERSION);

    KL_SOURCE(FLTFL_POST_OPERATION_DRAINING,
              KL_DOCS "fltkernel/nc-fltkernel-pflt_post_operation_callback"
              KL_WDK_VALUE("fltkernel.h"));
    KL_CONST(FLTFL_POST_OPERATION_DRAINING);

    KL_SOURCE(FLTFL_CALLBACK_DATA_*, KL_DOCS "fltkernel/ns-fltkernel-_flt_callback_data, Flags"
              KL_WDK_VALUE("fltkernel.h"));
    KL_CONST(FLTFL_CALLBACK_DATA_REISSUE_MASK);
    KL_CONST(FLTFL_CALLBACK_DATA_IRP_OPERATION);
    KL_CONST(FLTFL_CALLBACK_DATA_FAST_IO_OPERATION);
    KL_CONST(FLTFL_CALLBACK_DATA_FS_FILTER_OPERATION);
    KL_CONST(FLTFL_CALLBACK_DATA_SYSTEM_BUFFER);
    KL_CONST(FLTFL_CALLBACK_DATA_GENERATED_IO);
    KL_CONST(FLTFL_CALLBACK_DATA_REISSUED_IO);
    KL_CONST(FLTFL_CALLBACK_DATA_DRAINING_IO);
    KL_CONST(FLTFL_CALLBACK_DATA_POST_OPERATION);
    KL_CONST(FLTFL_CALLBACK_DATA_NEW_SYSTEM_BUFFER);
    KL_CONST(FLTFL_CALLBACK_DATA_DIRTY);

    KL_SOURCE(FLTFL_INSTANCE_SETUP_*,
              KL_DOCS "fltkernel/nc-fltkernel-pflt_instance_setup_callback, Flags");
    KL_CONST(FLTFL_INSTANCE_SETUP_AUTOMATIC_ATTACHMENT);
    KL_CONST(FLTFL_INSTANCE_SETUP_MANUAL_ATTACHMENT);
    KL_CONST(FLTFL_INSTANCE_SETUP_NEWLY_MOUNTED_VOLUME);
    KL_CONST(FLTFL_INSTANCE_SETUP_DETACHED_VOLUME);

    KL_SOURCE(FLT_SET_CONTEXT_*, KL_DOCS "fltkernel/nf-fltkernel-fltsetinstancecontext"
              ", Operation (FLT_SET_CONTEXT_OPERATION)" KL_WDK_VALUE("fltkernel.h"));
    KL_CONST(FLT_SET_CONTEXT_REPLACE_IF_EXISTS);
    KL_CONST(FLT_SET_CONTEXT_KEEP_IF_EXISTS);

    KL_SOURCE(STANDARD_RIGHTS_ALL, KL_WIN32_DOCS "secauthz/standard-access-rights"
              " (DELETE, READ_CONTROL, WRITE_DAC, WRITE_OWNER, SYNCHRONIZE: bits 16-20 of"
              " secauthz/access-mask)");
    KL_CONST(STANDARD_RIGHTS_ALL);
    KL_SOURCE(FLT_PORT_CONNECT, KL_DOCS "fltkernel/nf-fltkernel-fltbuilddefaultsecuritydescriptor"
              KL_WDK_VALUE("fltkernel.h"));
    KL_CONST(FLT_PORT_CONNECT);
    KL_SOURCE(FLT_PORT_ALL_ACCESS,
              KL_DOCS "fltkernel/nf-fltkernel-fltbuilddefaultsecuritydescriptor"
              " (FLT_PORT_CONNECT | STANDARD_RIGHTS_ALL)");
    KL_CONST(FLT_PORT_ALL_ACCESS);

    KL_SOURCE(SUPPORTED_FS_FEATURES_*, KL_DOCS "ntifs/nf-ntifs-fsrtlgetsupportedfeatures");
    KL_CONST(SUPPORTED_FS_FEATURES_OFFLOAD_READ);
    KL_CONST(SUPPORTED_FS_FEATURES_OFFLOAD_WRITE);

    KL_SOURCE(FLT_FILE_NAME_INFORMATION,
              KL_DOCS "fltkernel/ns-fltkernel-_flt_file_name_information");
    KL_SIZE(FLT_FILE_NAME_INFORMATION);
    KL_FIELD(FLT_FILE_NAME_INFORMATION, Size);
    KL_FIELD(FLT_FILE_NAME_INFORMATION, NamesParsed);
    KL_FIELD(FLT_FILE_NAME_INFORMATION, Format);
    KL_FIELD(FLT_FILE_NAME_INFORMATION, Name);
    KL_FIELD(FLT_FILE_NAME_INFORMATION, Volume);
    KL_FIELD(FLT_FILE_NAME_INFORMATION, Share);
    KL_FIELD(FLT_FILE_NAME_INFORMATION, Extension);
    KL_FIELD(FLT_FILE_NAME_INFORMATION, Stream);
    KL_FIELD(FLT_FILE_NAME_INFORMATION, FinalComponent);
    KL_FIELD(FLT_FILE_NAME_INFORMATION, ParentDir);
    KL_SOURCE(FLT_FILE_NAME_*,
              KL_DOCS "fltkernel/nf-fltkernel-fltgetfilenameinformation" KL_WDK_VALUE("fltKernel.h"));
    KL_CONST(FLT_FILE_NAME_NORMALIZED);
    KL_CONST(FLT_FILE_NAME_OPENED);
    KL_CONST(FLT_FILE_NAME_QUERY_DEFAULT);
    KL_CONST(FLT_FILE_NAME_QUERY_CACHE_ONLY);
    KL_SOURCE(STATUS_FLT_INVALID_NAME_REQUEST,
              KL_DOCS "fltkernel/nf-fltkernel-fltgetfilenameinformation" KL_WDK_VALUE("ntstatus.h"));
    KL_STATUS(STATUS_FLT_INVALID_NAME_REQUEST);
}
