//! The simulated stack as a [`Probe`]: a scenario's `[volume]`, `[[filter]]` and `[[file]]`
//! tables (steps are not run) give the same facts Windows would.

use odx_core::flags::SupportedFeatures;
use odx_core::iomgr::FilterSupportedFeaturesMode;
use odx_core::{StreamKind, VolumeFacts};
use odx_sim::scenario::Scenario;
use odx_sim::{MemStore, Stack};

use crate::diagnose::{FileFact, FilterFact, Probe, StorageFact, VolumeFact};

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
        let stack = scenario
            .build(MemStore::new())
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

    fn volume(&self) -> VolumeFact {
        let config = self.stack.volume().config();
        let facts: VolumeFacts = self.stack.volume().facts();
        VolumeFact {
            name: "sim:0".to_owned(),
            facts,
            filters: self.filters.clone(),
            policy: Some(self.stack.policy()),
            storage: Some(StorageFact {
                read: config.storage_offload_read,
                write: config.storage_offload_write,
                max_transfer: config.max_transfer,
                optimal_transfer: config.max_transfer,
                default_ttl_ms: config.default_ttl_ms,
                max_ttl_ms: config.max_ttl_ms,
            }),
            storage_id: Some("simulated array".to_owned()),
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
}
