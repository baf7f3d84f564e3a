//! File and volume information: `FltQueryVolumeInformation`, `FltIsVolumeWritable`,
//! `FltQueryInformationFile`, answered from the simulated volume and laid out by the table.
//!
//! IRQL: all three PASSIVE_LEVEL (docs/pe-harness.md, "IRQL").

use std::ffi::c_void;

use odx_core::NtStatus;

use super::fault::Point;
use super::{
    Call, Kernel, STATUS_INVALID_INFO_CLASS, STATUS_INVALID_PARAMETER, VOLUME_HANDLE, nt, with,
    write_out,
};
use crate::layouts::{Blob, shapes, write};

const PASSIVE_LEVEL: u8 = 0;

pub(super) fn resolve(symbol: &str) -> Option<usize> {
    Some(match symbol {
        "FltQueryVolumeInformation" => flt_query_volume_information as *const () as usize,
        "FltIsVolumeWritable" => flt_is_volume_writable as *const () as usize,
        "FltQueryInformationFile" => flt_query_information_file as *const () as usize,
        _ => return None,
    })
}

fn known_instance(k: &Kernel, instance: isize) -> bool {
    k.instances.iter().any(|i| i.handle == instance)
}

/// `FltQueryVolumeInformation`.
unsafe extern "win64" fn flt_query_volume_information(
    instance: isize,
    iosb: *mut c_void,
    buffer: *mut c_void,
    length: u32,
    class: i32,
) -> i32 {
    let volume = with(|k| {
        k.calls.push(Call::QueryVolumeInformation(class));
        k.require_irql("FltQueryVolumeInformation", PASSIVE_LEVEL);
        if let Some(status) = k.faults.hit(Point::QueryVolumeInformation) {
            return Some(Err(status));
        }
        if !known_instance(k, instance) {
            k.error(format!(
                "FltQueryVolumeInformation: bad instance {instance:#x}"
            ));
            return None;
        }
        Some(Ok(k.volume))
    })
    .flatten();
    let volume = match volume {
        Some(Ok(volume)) => volume,
        Some(Err(status)) => return nt(status),
        None => return nt(STATUS_INVALID_PARAMETER),
    };
    let s = shapes();
    let c = s.constants;
    let answer = if class == c.file_fs_sector_size_information {
        let l = s.sector_size_information;
        let mut info = Blob::new(l.size);
        for offset in [
            l.logical_bytes_per_sector,
            l.physical_atomicity,
            l.physical_performance,
            l.effective_atomicity,
        ] {
            info.put::<u32>(offset, volume.logical_bytes_per_sector);
        }
        Some(info)
    } else if class == c.file_fs_size_information {
        let l = s.size_information;
        let mut info = Blob::new(l.size);
        info.put::<i64>(l.total_allocation_units, 1 << 24);
        info.put::<i64>(l.available_allocation_units, 1 << 23);
        info.put::<u32>(
            l.sectors_per_allocation_unit,
            volume.sectors_per_allocation_unit,
        );
        info.put::<u32>(l.bytes_per_sector, volume.bytes_per_sector);
        Some(info)
    } else {
        None
    };
    let (status, written) = match &answer {
        Some(info) => match write_out(buffer, length, info) {
            Ok(()) => (NtStatus::STATUS_SUCCESS, info.len()),
            Err(status) => (status, 0),
        },
        None => (STATUS_INVALID_INFO_CLASS, 0),
    };
    if !iosb.is_null() {
        let l = s.io_status_block;
        // SAFETY: `iosb` is the caller's non-NULL IO_STATUS_BLOCK; fields at the table's offsets.
        unsafe { write::<i32>(iosb, l.status, nt(status)) };
        // SAFETY: as above.
        unsafe { write::<usize>(iosb, l.information, written) };
    }
    nt(status)
}

/// `FltIsVolumeWritable`.
unsafe extern "win64" fn flt_is_volume_writable(object: *const c_void, writable: *mut bool) -> i32 {
    let answer = with(|k| {
        k.calls.push(Call::IsVolumeWritable);
        k.require_irql("FltIsVolumeWritable", PASSIVE_LEVEL);
        if let Some(status) = k.faults.hit(Point::IsVolumeWritable) {
            return Some(Err(status));
        }
        let handle = object as isize;
        if !(handle == VOLUME_HANDLE || known_instance(k, handle)) || writable.is_null() {
            k.error(format!("FltIsVolumeWritable: bad object {handle:#x}"));
            return None;
        }
        Some(Ok(k.volume.writable))
    })
    .flatten();
    match answer {
        Some(Err(status)) => nt(status),
        Some(Ok(value)) => {
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
    file_object: *const c_void,
    buffer: *mut c_void,
    length: u32,
    class: i32,
    returned: *mut u32,
) -> i32 {
    let file = with(|k| {
        k.calls.push(Call::QueryInformationFile(class));
        if !k.require_irql("FltQueryInformationFile", PASSIVE_LEVEL) {
            return None;
        }
        if !known_instance(k, instance) {
            k.error(format!(
                "FltQueryInformationFile: bad instance {instance:#x}"
            ));
            return None;
        }
        if let Some(status) = k.fail_next_file_query.take() {
            return Some(Err(status));
        }
        if let Some(status) = k.faults.hit(Point::QueryInformationFile) {
            return Some(Err(status));
        }
        let file = k.files.get(&(file_object as usize)).copied();
        if file.is_none() {
            k.error(format!(
                "FltQueryInformationFile: unknown file object {:#x}",
                file_object as usize
            ));
        }
        file.map(Ok)
    })
    .flatten();
    let file = match file {
        Some(Ok(file)) => file,
        Some(Err(status)) => return nt(status),
        None => return nt(STATUS_INVALID_PARAMETER),
    };
    let s = shapes();
    let c = s.constants;
    let info = if class == c.file_basic_information {
        let l = s.basic_information;
        let mut info = Blob::new(l.size);
        info.put::<u32>(l.file_attributes, file.attributes);
        info
    } else if class == c.file_standard_information {
        let l = s.standard_information;
        let mut info = Blob::new(l.size);
        info.put::<i64>(l.allocation_size, file.allocation_size);
        info.put::<i64>(l.end_of_file, file.end_of_file);
        info.put::<u32>(l.number_of_links, 1);
        info.put::<u8>(l.delete_pending, u8::from(file.delete_pending));
        info.put::<u8>(l.directory, u8::from(file.directory));
        info
    } else {
        return nt(STATUS_INVALID_INFO_CLASS);
    };
    if let Err(status) = write_out(buffer, length, &info) {
        return nt(status);
    }
    if !returned.is_null() {
        // SAFETY: `returned` is the caller's non-NULL out pointer.
        unsafe { returned.write(u32::try_from(info.len()).unwrap_or(u32::MAX)) };
    }
    nt(NtStatus::STATUS_SUCCESS)
}
