/*
 * Kernel-layout probe for what neither Wine's nor mingw-w64's headers define: the definitions
 * as learn.microsoft.com documents them, written here as plain C (no headers at all) and laid
 * out by the compiler with natural x86-64 alignment. Compiled by scripts/kernel-layouts.sh
 * with x86_64-w64-mingw32-gcc -S -nostdinc. Every item names its documentation page.
 *
 * Where a header set also defines an item (the FLT_FILESYSTEM_TYPE enumerators up to
 * FLT_FSTYPE_OPENAFS), the script cross-checks the documented value against it.
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
}
