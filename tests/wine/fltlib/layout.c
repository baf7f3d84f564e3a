/* The record layout the test fltlib.dll writes (tests/wine/fltlib/src/lib.rs, module `layout`)
 * against mingw-w64's fltuserstructures.h, a header neither odxctl (windows-sys) nor the test
 * DLL is built from. tests/wine/odxctl-wine.sh passes each Rust constant as -DODX_NAME=VALUE and
 * compiles this file with -fsyntax-only: a mismatch is a compile error naming the field. */
#define _WIN32_WINNT 0x0602
#define NTDDI_VERSION 0x06020000
#include <windows.h>
#include <fltuser.h>
#include <stddef.h>

typedef INSTANCE_AGGREGATE_STANDARD_INFORMATION R;

#define AT(field, value) _Static_assert(offsetof(R, field) == (value), #field " is not at " #value)

AT(NextEntryOffset, ODX_NEXT_ENTRY_OFFSET);
AT(Flags, ODX_FLAGS);
AT(Type.MiniFilter.Flags, ODX_MF_FLAGS);
AT(Type.MiniFilter.FrameID, ODX_MF_FRAME_ID);
AT(Type.MiniFilter.VolumeFileSystemType, ODX_MF_VOLUME_FILE_SYSTEM_TYPE);
AT(Type.MiniFilter.InstanceNameLength, ODX_MF_INSTANCE_NAME_LENGTH);
AT(Type.MiniFilter.InstanceNameBufferOffset, ODX_MF_INSTANCE_NAME_LENGTH + 2);
AT(Type.MiniFilter.AltitudeLength, ODX_MF_ALTITUDE_LENGTH);
AT(Type.MiniFilter.AltitudeBufferOffset, ODX_MF_ALTITUDE_LENGTH + 2);
AT(Type.MiniFilter.VolumeNameLength, ODX_MF_VOLUME_NAME_LENGTH);
AT(Type.MiniFilter.VolumeNameBufferOffset, ODX_MF_VOLUME_NAME_LENGTH + 2);
AT(Type.MiniFilter.FilterNameLength, ODX_MF_FILTER_NAME_LENGTH);
AT(Type.MiniFilter.FilterNameBufferOffset, ODX_MF_FILTER_NAME_LENGTH + 2);
AT(Type.MiniFilter.SupportedFeatures, ODX_MF_SUPPORTED_FEATURES);
_Static_assert(sizeof(R) == ODX_SIZE, "sizeof(INSTANCE_AGGREGATE_STANDARD_INFORMATION) is not ODX_SIZE");
_Static_assert(FLTFL_IASI_IS_MINIFILTER == ODX_FLTFL_IASI_IS_MINIFILTER, "FLTFL_IASI_IS_MINIFILTER");
_Static_assert(FLT_FSTYPE_NTFS == ODX_FLT_FSTYPE_NTFS, "FLT_FSTYPE_NTFS");
_Static_assert(InstanceAggregateStandardInformation == 3, "InstanceAggregateStandardInformation");
