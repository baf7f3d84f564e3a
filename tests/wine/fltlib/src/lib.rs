//! A test-only `fltlib.dll` (never shipped): the Filter Manager user-mode library as odxctl.exe
//! uses it, answered from a scenario file (docs/scenarios.md) instead of a kernel.
//!
//! - `FilterVolumeInstanceFindFirst/Next/Close` with `InstanceAggregateStandardInformation`:
//!   odxflt (altitude 370031, `SupportedFeatures` 0x3) and every other filter the scenario
//!   attaches (`Scenario::attached_filters`), as minifilter records laid out at the offsets
//!   below (checked against mingw-w64's `fltuserstructures.h` by tests/wine/fltlib/layout.c);
//! - `FilterConnectCommunicationPort` (`\OdxfltPort` only) and `FilterSendMessage`: the
//!   scenario's stack after its steps ran, through `odx_sim::Stack::port_request` — odx-core's
//!   `serve::handle_request`, the function the driver's message callback calls.
//!
//! The scenario is the file named by `ODX_TEST_FLTLIB_SCENARIO`; without it, odxflt is not
//! loaded (no port, no instance). What it cannot show: how the real fltlib reports a status the
//! driver returns (this one returns `HRESULT_FROM_NT`, as odxctl expects), the real records'
//! volume and instance names, access checks on the port.

use odx_core::flags::SupportedFeatures;
use odx_sim::scenario::Scenario;
use odx_sim::{MemStore, Stack};

/// odxflt's altitude (inf/odxflt.inx).
pub const ODXFLT_ALTITUDE: &str = "370031";

/// `INSTANCE_AGGREGATE_STANDARD_INFORMATION` with the `MiniFilter` variant (NTDDI_WIN8):
/// byte offsets of its fields. tests/wine/fltlib/layout.c asserts each against mingw-w64's
/// header (the values are passed to it from this file).
pub mod layout {
    /// `NextEntryOffset`.
    pub const NEXT_ENTRY_OFFSET: usize = 0;
    /// `Flags` (`FLTFL_IASI_IS_MINIFILTER`).
    pub const FLAGS: usize = 4;
    /// `Type.MiniFilter.Flags`.
    pub const MF_FLAGS: usize = 8;
    /// `Type.MiniFilter.FrameID`.
    pub const MF_FRAME_ID: usize = 12;
    /// `Type.MiniFilter.VolumeFileSystemType`.
    pub const MF_VOLUME_FILE_SYSTEM_TYPE: usize = 16;
    /// `Type.MiniFilter.InstanceNameLength` (then `…BufferOffset`).
    pub const MF_INSTANCE_NAME_LENGTH: usize = 20;
    /// `Type.MiniFilter.AltitudeLength` (then `…BufferOffset`).
    pub const MF_ALTITUDE_LENGTH: usize = 24;
    /// `Type.MiniFilter.VolumeNameLength` (then `…BufferOffset`).
    pub const MF_VOLUME_NAME_LENGTH: usize = 28;
    /// `Type.MiniFilter.FilterNameLength` (then `…BufferOffset`).
    pub const MF_FILTER_NAME_LENGTH: usize = 32;
    /// `Type.MiniFilter.SupportedFeatures`.
    pub const MF_SUPPORTED_FEATURES: usize = 36;
    /// `sizeof(INSTANCE_AGGREGATE_STANDARD_INFORMATION)`: the names follow.
    pub const SIZE: usize = 40;
    /// `FLTFL_IASI_IS_MINIFILTER`.
    pub const FLTFL_IASI_IS_MINIFILTER: u32 = 1;
    /// `FLT_FSTYPE_NTFS`.
    pub const FLT_FSTYPE_NTFS: u32 = 2;
}

/// One filter instance on the volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Filter name.
    pub filter: String,
    /// Altitude.
    pub altitude: String,
    /// `SupportedFeatures`.
    pub features: u32,
}

/// The instances a scenario puts on its volume: odxflt first, then the scenario's filters.
#[must_use]
pub fn instances(scenario: &Scenario) -> Vec<Instance> {
    let odxflt = Instance {
        filter: "odxflt".to_owned(),
        altitude: ODXFLT_ALTITUDE.to_owned(),
        features: SupportedFeatures::ODXFLT.bits(),
    };
    std::iter::once(odxflt)
        .chain(scenario.attached_filters().into_iter().map(|f| Instance {
            filter: f.name,
            altitude: f.altitude,
            features: f.features,
        }))
        .collect()
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn put16(record: &mut [u8], at: usize, value: u16) {
    record[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

fn put32(record: &mut [u8], at: usize, value: u32) {
    record[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// The `InstanceAggregateStandardInformation` record of `instance` on `volume`: the fixed part,
/// then the instance, altitude, volume and filter names (UTF-16LE, not NUL-terminated), each
/// located by its byte length and its offset from the start of the record.
///
/// # Panics
/// A name longer than 32 767 characters.
#[must_use]
pub fn record(instance: &Instance, volume: &str) -> Vec<u8> {
    use layout::*;
    let names = [
        (
            MF_INSTANCE_NAME_LENGTH,
            utf16(&format!("{} Instance", instance.filter)),
        ),
        (MF_ALTITUDE_LENGTH, utf16(&instance.altitude)),
        (MF_VOLUME_NAME_LENGTH, utf16(volume)),
        (MF_FILTER_NAME_LENGTH, utf16(&instance.filter)),
    ];
    let mut record = vec![0u8; SIZE];
    put32(&mut record, NEXT_ENTRY_OFFSET, 0);
    put32(&mut record, FLAGS, FLTFL_IASI_IS_MINIFILTER);
    put32(&mut record, MF_FLAGS, 0);
    put32(&mut record, MF_FRAME_ID, 0);
    put32(&mut record, MF_VOLUME_FILE_SYSTEM_TYPE, FLT_FSTYPE_NTFS);
    put32(&mut record, MF_SUPPORTED_FEATURES, instance.features);
    for (field, bytes) in names {
        let offset = u16::try_from(record.len()).expect("record below 64 KiB");
        let length = u16::try_from(bytes.len()).expect("name below 64 KiB");
        put16(&mut record, field, length);
        put16(&mut record, field + 2, offset);
        record.extend(bytes);
    }
    record
}

/// What the library answers from.
pub struct State {
    /// The scenario's stack after its steps ran; `None`: odxflt is not loaded.
    pub stack: Option<Stack<MemStore>>,
    /// The volume's filter instances.
    pub instances: Vec<Instance>,
}

impl State {
    /// From `ODX_TEST_FLTLIB_SCENARIO` (unset: nothing loaded).
    ///
    /// # Errors
    /// The scenario cannot be loaded or its steps cannot run.
    pub fn from_env() -> Result<Self, String> {
        let Some(path) = std::env::var_os("ODX_TEST_FLTLIB_SCENARIO") else {
            return Ok(Self {
                stack: None,
                instances: Vec::new(),
            });
        };
        let scenario = Scenario::load(std::path::Path::new(&path)).map_err(|e| e.to_string())?;
        let (_, stack) = scenario
            .run_keeping_stack(MemStore::new())
            .map_err(|e| format!("{}: {e}", scenario.path))?;
        Ok(Self {
            stack: Some(stack),
            instances: instances(&scenario),
        })
    }
}

#[cfg(windows)]
mod exports;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_locate_their_names_from_the_record_start() {
        let i = Instance {
            filter: "contosoav".to_owned(),
            altitude: "328010".to_owned(),
            features: 1,
        };
        let r = record(&i, "D:");
        let u16_at = |at: usize| usize::from(u16::from_le_bytes([r[at], r[at + 1]]));
        let name = |field: usize| {
            let (len, off) = (u16_at(field), u16_at(field + 2));
            String::from_utf16(
                &r[off..off + len]
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect::<Vec<_>>(),
            )
            .unwrap()
        };
        assert_eq!(name(layout::MF_FILTER_NAME_LENGTH), "contosoav");
        assert_eq!(name(layout::MF_ALTITUDE_LENGTH), "328010");
        assert_eq!(name(layout::MF_VOLUME_NAME_LENGTH), "D:");
        assert_eq!(name(layout::MF_INSTANCE_NAME_LENGTH), "contosoav Instance");
        assert_eq!(r[layout::MF_SUPPORTED_FEATURES], 1);
        assert_eq!(r[layout::FLAGS], 1);
        assert_eq!(u16_at(layout::MF_INSTANCE_NAME_LENGTH + 2), layout::SIZE);
    }
}
