//! Per-plugin running totals, shared by every worker evaluating the plugin.
//!
//! Relaxed atomics: the totals are for operators and reports, never for
//! decisions, so they need no ordering with anything else.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use handoff_model::FaultKind;
use strum::VariantArray;

/// Live counters for one plugin.
#[derive(Debug, Default)]
pub(crate) struct PluginStats {
    calls: AtomicU64,
    faults: [AtomicU64; FaultKind::VARIANTS.len()],
    fuel: AtomicU64,
    wall_ns: AtomicU64,
    output_dropped: AtomicU64,
    instances: AtomicU64,
}

/// A copy of one plugin's totals.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    /// The plugin.
    pub plugin: String,
    /// Evaluations attempted.
    pub calls: u64,
    /// Faults, by kind (kinds that never happened are left out).
    pub faults: BTreeMap<FaultKind, u64>,
    /// Fuel consumed in total.
    pub fuel: u64,
    /// Wall time in total, in microseconds.
    pub wall_us: u64,
    /// Bytes of plugin output dropped over the log cap.
    pub output_dropped: u64,
    /// Instances created (trial and evaluation instances alike).
    pub instances: u64,
}

impl PluginStats {
    /// Records one evaluation.
    pub(crate) fn record(
        &self,
        fuel: u64,
        wall: Duration,
        fault: Option<FaultKind>,
        output_dropped: u64,
    ) {
        self.calls.fetch_add(1, Relaxed);
        self.fuel.fetch_add(fuel, Relaxed);
        self.wall_ns
            .fetch_add(u64::try_from(wall.as_nanos()).unwrap_or(u64::MAX), Relaxed);
        if let Some(kind) = fault {
            self.faults[kind.index()].fetch_add(1, Relaxed);
        }
        if output_dropped > 0 {
            self.output_dropped.fetch_add(output_dropped, Relaxed);
        }
    }

    /// Records one instantiation.
    pub(crate) fn record_instance(&self) {
        self.instances.fetch_add(1, Relaxed);
    }

    /// The totals so far.
    pub(crate) fn snapshot(&self, plugin: &str) -> StatsSnapshot {
        StatsSnapshot {
            plugin: plugin.to_string(),
            calls: self.calls.load(Relaxed),
            faults: FaultKind::VARIANTS
                .iter()
                .map(|kind| (*kind, self.faults[kind.index()].load(Relaxed)))
                .filter(|(_, count)| *count > 0)
                .collect(),
            fuel: self.fuel.load(Relaxed),
            wall_us: self.wall_ns.load(Relaxed) / 1000,
            output_dropped: self.output_dropped.load(Relaxed),
            instances: self.instances.load(Relaxed),
        }
    }
}
