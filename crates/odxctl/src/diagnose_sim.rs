//! The simulated stack as a [`Probe`]: a scenario's `[volume]`, `[storage]`, `[[filter]]` and
//! `[[file]]` tables give the same facts Windows would, after the scenario's steps ran (so a
//! back-off odxflt learned from them is there). The storage's property is what user mode's
//! `IOCTL_STORAGE_QUERY_PROPERTY` would return (the disk's descriptor), odxflt's view is its
//! port's stats reply, as on Windows.

use odx_core::flags::SupportedFeatures;
use odx_core::iomgr::FilterSupportedFeaturesMode;
use odx_core::{StreamKind, VolumeFacts};
use odx_sim::scenario::{Scenario, StorageQuery};
use odx_sim::{MemStore, Stack};

use crate::diagnose::{
    FileFact, FilterFact, OdxfltStorage, Probe, RuleView, StorageFact, VolumeFact,
};
use crate::port_cmd::sole_volume_stats;

/// odxflt's altitude (inf/odxflt.inx).
pub const ODXFLT_ALTITUDE: &str = "370031";

/// A scenario's stack, probed.
#[derive(Debug)]
pub struct SimProbe {
    stack: Stack<MemStore>,
    filters: Vec<FilterFact>,
}

impl SimProbe {
    /// Builds the scenario's stack.
    ///
    /// # Errors
    /// The stack cannot be built.
    pub fn new(scenario: &Scenario) -> Result<Self, String> {
        let (_, stack) = scenario
            .run_keeping_stack(MemStore::new())
            .map_err(|e| format!("{}: {e}", scenario.path))?;
        let odxflt = FilterFact {
            name: "odxflt".to_owned(),
            altitude: ODXFLT_ALTITUDE.to_owned(),
            features: Some(SupportedFeatures::ODXFLT),
        };
        let others = scenario.attached_filters().into_iter().map(|f| FilterFact {
            name: f.name,
            altitude: f.altitude,
            features: Some(SupportedFeatures::from_bits_retain(f.features)),
        });
        Ok(Self {
            stack,
            filters: std::iter::once(odxflt).chain(others).collect(),
        })
    }

    fn volume(&mut self) -> VolumeFact {
        let config = self.stack.volume().config();
        let facts: VolumeFacts = self.stack.volume().facts();
        // What user mode's property query returns: the disk's descriptor, if it has one.
        let storage = match config.storage_query() {
            StorageQuery::Descriptor(l) => Some(StorageFact {
                read: true,
                write: true,
                max_transfer: l.maximum_transfer_size,
                optimal_transfer: l.optimal_transfer_count,
                default_ttl_ms: u64::from(l.default_token_lifetime) * 1000,
                max_ttl_ms: u64::from(l.maximum_token_lifetime) * 1000,
            }),
            StorageQuery::NotSupported | StorageQuery::Fails(_) | StorageQuery::NoDisk => None,
        };
        let odxflt_storage =
            sole_volume_stats(&mut self.stack).and_then(|r| OdxfltStorage::from_reply(&r));
        VolumeFact {
            name: "sim:0".to_owned(),
            facts,
            filters: self.filters.clone(),
            policy: Some(self.stack.policy()),
            storage,
            storage_id: Some("simulated array".to_owned()),
            odxflt_storage,
        }
    }
}

impl Probe for SimProbe {
    fn file(&mut self, path: &str) -> Result<FileFact, String> {
        let volume = self.stack.volume();
        let entry = volume
            .id_of(path)
            .and_then(|id| volume.entry(id))
            .ok_or_else(|| format!("the scenario has no [[file]] named {path:?}"))?;
        Ok(FileFact {
            path: path.to_owned(),
            size: entry.end_of_file,
            kind: StreamKind {
                attributes: entry.attributes,
                markers: entry.markers,
            },
            volume: self.volume(),
        })
    }

    fn supported_features_mode(&mut self) -> FilterSupportedFeaturesMode {
        self.stack.supported_features_mode()
    }

    fn odxflt_rules(&mut self) -> Option<String> {
        crate::rules_cmd::query_rules(&mut self.stack).ok()
    }

    fn rule_view(&mut self, file: &FileFact) -> Option<RuleView> {
        let volume = self.stack.volume();
        let entry = volume.id_of(&file.path).and_then(|id| volume.entry(id))?;
        let names = self.stack.volume_names();
        let text = |units: &[u16]| String::from_utf16_lossy(units);
        Some(RuleView {
            device: text(&names.device),
            dos: text(&names.dos),
            guid: text(&names.guid),
            path: text(&entry.path),
        })
    }
}
