//! The diagnosis probe on Windows: file attributes (`GetFileAttributesW`), size and logical
//! sector (`GetFileSizeEx`, `FileStorageInfo`), the volume (`GetVolumePathNameW`,
//! `GetVolumeInformationW`, `GetVolumeNameForVolumeMountPointW`), every filter instance on it
//! with altitude and `SupportedFeatures` (`FilterVolumeInstanceFindFirst/Next`,
//! `InstanceAggregateStandardInformation`), `FilterSupportedFeaturesMode` (registry), the
//! storage's copy-offload property (`IOCTL_STORAGE_QUERY_PROPERTY`,
//! `StorageDeviceCopyOffloadProperty` → `DEVICE_COPY_OFFLOAD_DESCRIPTOR`), the disk number
//! (`IOCTL_STORAGE_GET_DEVICE_NUMBER`) and odxflt's policy (its port).

use std::mem::size_of;
use std::ptr::{null, null_mut};

use odx_core::flags::{FileAttributes, SupportedFeatures, VolumeFlags};
use odx_core::iomgr::FilterSupportedFeaturesMode;
use odx_core::policy::PolicyMode;
use odx_core::port::{ALL_VOLUMES, MessageHeader, MessageKind, PolicyReply};
use odx_core::wire::WireStruct;
use odx_core::{FileSystemKind, SectorSize, StreamKind, VolumeFacts};
use windows_sys::Win32::Foundation::{HANDLE, MAX_PATH};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, FILE_FLAG_BACKUP_SEMANTICS, FILE_READ_ATTRIBUTES, FILE_SHARE_DELETE,
    FILE_SHARE_READ, FILE_SHARE_WRITE, GetFileAttributesW, GetFileSizeEx, GetVolumeInformationW,
    GetVolumeNameForVolumeMountPointW, GetVolumePathNameW, INVALID_FILE_ATTRIBUTES, OPEN_EXISTING,
};
use windows_sys::Win32::Storage::InstallableFileSystems::{
    FLTFL_IASI_IS_MINIFILTER, FilterVolumeInstanceFindClose, FilterVolumeInstanceFindFirst,
    FilterVolumeInstanceFindNext, INSTANCE_AGGREGATE_STANDARD_INFORMATION,
    InstanceAggregateStandardInformation,
};
use windows_sys::Win32::System::IO::DeviceIoControl;
use windows_sys::Win32::System::Ioctl::{
    DEVICE_COPY_OFFLOAD_DESCRIPTOR, IOCTL_STORAGE_GET_DEVICE_NUMBER, IOCTL_STORAGE_QUERY_PROPERTY,
    PropertyStandardQuery, STORAGE_DEVICE_NUMBER, STORAGE_PROPERTY_QUERY,
    StorageDeviceCopyOffloadProperty,
};
use windows_sys::Win32::System::Registry::{HKEY_LOCAL_MACHINE, RRF_RT_REG_DWORD, RegGetValueW};
use zerocopy::IntoBytes;

/// `FILE_READ_ONLY_VOLUME` (`GetVolumeInformationW` flags).
const FILE_READ_ONLY_VOLUME: u32 = 0x0008_0000;

use super::copy::logical_sector;
use super::port::FilterPort;
use super::{Handle, from_wide, wide};
use crate::diagnose::{
    FileFact, FilterFact, OdxfltStorage, Probe, RuleView, StorageFact, VolumeFact,
};
use crate::port_cmd::{PortClient, sole_volume_stats};

/// Probes the running system.
#[derive(Debug, Default)]
pub struct WindowsProbe {
    policy: Option<Option<PolicyMode>>,
    storage: Option<Option<OdxfltStorage>>,
}

impl WindowsProbe {
    /// A probe.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// odxflt's default policy through its port (`None`: not loaded or not reachable). The
    /// port indexes volumes by odxflt's slot, which user mode cannot map to a volume name;
    /// the default (which `odxctl policy` sets for every volume) is reported.
    fn odxflt_policy(&mut self) -> Option<PolicyMode> {
        *self.policy.get_or_insert_with(|| {
            let mut port = FilterPort::connect().ok()?;
            let query =
                MessageHeader::new(MessageKind::QueryPolicy, MessageHeader::SIZE, ALL_VOLUMES);
            let reply = port.send(query.as_bytes(), PolicyReply::SIZE).ok()?;
            let reply = PolicyReply::parse(&reply).ok()?;
            PolicyMode::from_u32(reply.mode.get())
        })
    }

    /// odxflt's view of the storage (its stats reply's storage section) when it is attached to
    /// exactly one volume: the port indexes volumes by slot, which user mode cannot map to a
    /// name, so with several volumes `odxctl stats` is where each one's state is shown.
    fn odxflt_storage(&mut self) -> Option<OdxfltStorage> {
        self.storage
            .get_or_insert_with(|| {
                let mut port = FilterPort::connect().ok()?;
                let reply = sole_volume_stats(&mut port)?;
                OdxfltStorage::from_reply(&reply)
            })
            .clone()
    }
}

fn open_for_query(path: &str, access: u32) -> Option<Handle> {
    let name = wide(path);
    // SAFETY: `name` is NUL-terminated and outlives the call; no security attributes or
    // template; backup semantics so that directories open too.
    let raw = unsafe {
        CreateFileW(
            name.as_ptr(),
            access,
            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
            null(),
            OPEN_EXISTING,
            FILE_FLAG_BACKUP_SEMANTICS,
            null_mut(),
        )
    };
    Handle::checked(raw, path).ok()
}

fn ioctl<T: Default>(handle: HANDLE, code: u32, input: &[u8]) -> Option<T> {
    let mut out = T::default();
    let mut returned = 0u32;
    let in_len = u32::try_from(input.len()).ok()?;
    let out_len = u32::try_from(size_of::<T>()).ok()?;
    // SAFETY: the handle is open; `input` and `out` are valid for their lengths for the
    // (synchronous) call; `returned` is a valid out pointer.
    let ok = unsafe {
        DeviceIoControl(
            handle,
            code,
            input.as_ptr().cast(),
            in_len,
            (&raw mut out).cast(),
            out_len,
            &mut returned,
            null_mut(),
        )
    };
    (ok != 0).then_some(out)
}

fn struct_bytes<T>(value: &T) -> &[u8] {
    // SAFETY: `value` is a plain-data `repr(C)` Win32 structure, readable as bytes for its size
    // while borrowed.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}

fn storage(volume_root: &str) -> (Option<StorageFact>, Option<String>) {
    let device = format!("\\\\.\\{}", volume_root.trim_end_matches('\\'));
    let Some(handle) = open_for_query(&device, 0) else {
        return (None, None);
    };
    let query = STORAGE_PROPERTY_QUERY {
        PropertyId: StorageDeviceCopyOffloadProperty,
        QueryType: PropertyStandardQuery,
        AdditionalParameters: [0],
    };
    let descriptor: Option<DEVICE_COPY_OFFLOAD_DESCRIPTOR> =
        ioctl(handle.0, IOCTL_STORAGE_QUERY_PROPERTY, struct_bytes(&query));
    let number: Option<STORAGE_DEVICE_NUMBER> =
        ioctl(handle.0, IOCTL_STORAGE_GET_DEVICE_NUMBER, &[]);
    let fact = descriptor.filter(|d| d.Size > 0).map(|d| StorageFact {
        read: true,
        write: true,
        max_transfer: d.MaximumTransferSize,
        optimal_transfer: d.OptimalTransferCount,
        default_ttl_ms: u64::from(d.DefaultTokenLifetime).saturating_mul(1000),
        max_ttl_ms: u64::from(d.MaximumTokenLifetime).saturating_mul(1000),
    });
    let id = number.map(|n| format!("disk {}", n.DeviceNumber));
    (fact, id)
}

/// A UTF-16 name at `offset`/`length` (bytes) from the start of an instance record.
fn name_at(record: &[u8], offset: u16, length: u16) -> String {
    let start = usize::from(offset);
    let end = start.saturating_add(usize::from(length));
    let bytes = record.get(start..end).unwrap_or_default();
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| {
            u16::from_le_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
        .collect();
    String::from_utf16_lossy(&units)
}

fn parse_instance(record: &[u8]) -> Option<FilterFact> {
    if record.len() < size_of::<INSTANCE_AGGREGATE_STANDARD_INFORMATION>() {
        return None;
    }
    // SAFETY: `record` holds at least one INSTANCE_AGGREGATE_STANDARD_INFORMATION (checked
    // above); read unaligned from the byte buffer.
    let info = unsafe {
        record
            .as_ptr()
            .cast::<INSTANCE_AGGREGATE_STANDARD_INFORMATION>()
            .read_unaligned()
    };
    if info.Flags & FLTFL_IASI_IS_MINIFILTER != 0 {
        // SAFETY: the flag says the union holds the MiniFilter variant.
        let m = unsafe { info.Type.MiniFilter };
        Some(FilterFact {
            name: name_at(record, m.FilterNameBufferOffset, m.FilterNameLength),
            altitude: name_at(record, m.AltitudeBufferOffset, m.AltitudeLength),
            features: Some(SupportedFeatures::from_bits_retain(m.SupportedFeatures)),
        })
    } else {
        // SAFETY: not a minifilter: the union holds the LegacyFilter variant.
        let l = unsafe { info.Type.LegacyFilter };
        Some(FilterFact {
            name: name_at(record, l.FilterNameBufferOffset, l.FilterNameLength),
            altitude: name_at(record, l.AltitudeBufferOffset, l.AltitudeLength),
            features: Some(SupportedFeatures::from_bits_retain(l.SupportedFeatures)),
        })
    }
}

fn filters(volume_root: &str) -> Vec<FilterFact> {
    let name = wide(volume_root.trim_end_matches('\\'));
    let mut found = Vec::new();
    let mut buffer = vec![0u8; 4096];
    let size = u32::try_from(buffer.len()).unwrap_or(4096);
    let mut returned = 0u32;
    let mut find: HANDLE = null_mut();
    // SAFETY: `name` is NUL-terminated; `buffer` is valid for `size` bytes; the out pointers
    // are valid.
    let hr = unsafe {
        FilterVolumeInstanceFindFirst(
            name.as_ptr(),
            InstanceAggregateStandardInformation,
            buffer.as_mut_ptr().cast(),
            size,
            &mut returned,
            &mut find,
        )
    };
    if hr < 0 {
        return found;
    }
    loop {
        let used = usize::try_from(returned).unwrap_or(0).min(buffer.len());
        if let Some(f) = parse_instance(buffer.get(..used).unwrap_or_default()) {
            found.push(f);
        }
        // SAFETY: `find` came from FilterVolumeInstanceFindFirst; `buffer` as above.
        let hr = unsafe {
            FilterVolumeInstanceFindNext(
                find,
                InstanceAggregateStandardInformation,
                buffer.as_mut_ptr().cast(),
                size,
                &mut returned,
            )
        };
        if hr < 0 {
            break;
        }
    }
    // SAFETY: `find` is the open enumeration handle, closed once.
    unsafe { FilterVolumeInstanceFindClose(find) };
    found
}

fn volume_root(path: &str) -> Result<String, String> {
    let name = wide(path);
    let mut root = vec![0u16; MAX_PATH as usize + 1];
    let len = u32::try_from(root.len()).unwrap_or(MAX_PATH);
    // SAFETY: `name` is NUL-terminated; `root` is valid for `len` characters.
    let ok = unsafe { GetVolumePathNameW(name.as_ptr(), root.as_mut_ptr(), len) };
    if ok == 0 {
        return Err(format!("{path}: {}", std::io::Error::last_os_error()));
    }
    Ok(from_wide(&root))
}

fn volume_fact(
    root: &str,
    sector: u32,
    policy: Option<PolicyMode>,
    odxflt_storage: Option<OdxfltStorage>,
) -> VolumeFact {
    let root_w = wide(root);
    let mut fs_name = vec![0u16; 64];
    let mut flags = 0u32;
    let fs_len = u32::try_from(fs_name.len()).unwrap_or(64);
    // SAFETY: `root_w` is NUL-terminated; `fs_name` is valid for `fs_len` characters; unused
    // outputs are NULL.
    let ok = unsafe {
        GetVolumeInformationW(
            root_w.as_ptr(),
            null_mut(),
            0,
            null_mut(),
            null_mut(),
            &mut flags,
            fs_name.as_mut_ptr(),
            fs_len,
        )
    };
    let file_system = match from_wide(&fs_name).as_str() {
        "NTFS" => FileSystemKind::Ntfs,
        "ReFS" => FileSystemKind::Refs,
        _ => FileSystemKind::Other,
    };
    let mut volume_flags =
        VolumeFlags::OFFLOAD_READ_SUPPORTED | VolumeFlags::OFFLOAD_WRITE_SUPPORTED;
    volume_flags.set(
        VolumeFlags::READ_ONLY,
        ok != 0 && flags & FILE_READ_ONLY_VOLUME != 0,
    );
    volume_flags.set(VolumeFlags::DISMOUNTED, ok == 0);
    let mut guid = vec![0u16; 64];
    let guid_len = u32::try_from(guid.len()).unwrap_or(64);
    // SAFETY: `root_w` is a NUL-terminated mount point ending in a backslash; `guid` is
    // valid for `guid_len` characters.
    let named =
        unsafe { GetVolumeNameForVolumeMountPointW(root_w.as_ptr(), guid.as_mut_ptr(), guid_len) };
    let name = if named != 0 {
        format!("{} ({})", root.trim_end_matches('\\'), from_wide(&guid))
    } else {
        root.trim_end_matches('\\').to_owned()
    };
    let (storage, storage_id) = storage(root);
    let filters = filters(root);
    let attached = filters
        .iter()
        .any(|f| f.name.eq_ignore_ascii_case("odxflt"));
    VolumeFact {
        name,
        facts: VolumeFacts {
            file_system,
            sector_size: SectorSize::new(sector).unwrap_or_default(),
            flags: volume_flags,
            max_file_size: VolumeFacts::ntfs_max_file_size(2 * 1024 * 1024),
        },
        filters,
        policy: policy.filter(|_| attached),
        storage,
        storage_id,
        odxflt_storage: odxflt_storage.filter(|_| attached),
    }
}

impl Probe for WindowsProbe {
    fn file(&mut self, path: &str) -> Result<FileFact, String> {
        let name = wide(path);
        // SAFETY: `name` is NUL-terminated.
        let attributes = unsafe { GetFileAttributesW(name.as_ptr()) };
        if attributes == INVALID_FILE_ATTRIBUTES {
            return Err(format!("{path}: {}", std::io::Error::last_os_error()));
        }
        let handle = open_for_query(path, FILE_READ_ATTRIBUTES)
            .ok_or_else(|| format!("{path}: {}", std::io::Error::last_os_error()))?;
        let mut size = 0i64;
        // SAFETY: the handle is open; `size` is a valid out pointer.
        if unsafe { GetFileSizeEx(handle.0, &mut size) } == 0 {
            size = 0;
        }
        let sector = logical_sector(&handle).unwrap_or(512);
        let root = volume_root(path)?;
        let policy = self.odxflt_policy();
        let odxflt_storage = self.odxflt_storage();
        Ok(FileFact {
            path: path.to_owned(),
            size: u64::try_from(size).unwrap_or(0),
            kind: StreamKind {
                attributes: FileAttributes::from_bits_truncate(attributes),
                markers: odx_core::flags::StreamMarkers::empty(),
            },
            volume: volume_fact(&root, sector, policy, odxflt_storage),
        })
    }

    fn supported_features_mode(&mut self) -> FilterSupportedFeaturesMode {
        let key = wide("SYSTEM\\CurrentControlSet\\Control\\FileSystem");
        let value = wide("FilterSupportedFeaturesMode");
        let mut data = 0u32;
        let mut len = 4u32;
        // SAFETY: both names are NUL-terminated; `data` is a DWORD of `len` bytes.
        let status = unsafe {
            RegGetValueW(
                HKEY_LOCAL_MACHINE,
                key.as_ptr(),
                value.as_ptr(),
                RRF_RT_REG_DWORD,
                null_mut(),
                (&raw mut data).cast(),
                &mut len,
            )
        };
        if status == 0 {
            FilterSupportedFeaturesMode::from_registry(data)
        } else {
            FilterSupportedFeaturesMode::Normal
        }
    }

    fn odxflt_rules(&mut self) -> Option<String> {
        let mut port = FilterPort::connect().ok()?;
        crate::rules_cmd::query_rules(&mut port).ok()
    }

    /// The DOS and GUID names of the file's volume and its path from the volume root (the
    /// device name is not learnt: a rule naming it does not match here).
    fn rule_view(&mut self, file: &FileFact) -> Option<RuleView> {
        // GetFullPathNameW (`canonicalize` would import GetFinalPathNameByHandleW).
        let full = std::path::absolute(&file.path).ok()?.display().to_string();
        let full = full.strip_prefix("\\\\?\\").unwrap_or(&full).to_owned();
        let root = volume_root(&full).ok()?;
        let path = full.get(root.len().saturating_sub(1)..)?.to_owned();
        let top = root.trim_end_matches('\\');
        let dos = if top.len() == 2 && top.ends_with(':') {
            top.to_owned()
        } else {
            String::new()
        };
        // `volume_fact` names the volume "C: (\\?\Volume{…}\)"; rules spell it \??\Volume{…}.
        let guid = file
            .volume
            .name
            .split_once('(')
            .and_then(|(_, g)| g.strip_suffix(')'))
            .map(|g| g.trim_end_matches('\\').replacen("\\\\?\\", "\\??\\", 1))
            .unwrap_or_default();
        Some(RuleView {
            device: String::new(),
            dos,
            guid,
            path,
        })
    }
}
