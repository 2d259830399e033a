//! Shared set-up for the benchmarks: the sample workload, the reference
//! policies as sandboxed sets, and the same policies natively.

use std::sync::Arc;

use handoff_model::WorkItem;
use handoff_pipeline::reference;
use handoff_policy::manifest::Manifest;
use handoff_policy::{PluginSource, PolicySet, Runtime};
use handoff_sdk::{Config, Policy};

pub mod instructions;

/// The sample workload shipped in `examples/`.
pub const SAMPLE: &str = include_str!("../../examples/sample.jsonl");

/// The reference policies benchmarked one by one.
pub const POLICIES: [&str; 2] = ["compliance-limits", "confidence-gate"];

/// The sample's items.
pub fn sample_items() -> Vec<WorkItem> {
    SAMPLE
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| WorkItem::from_json(line).expect("the sample is valid"))
        .collect()
}

/// `n` items cycling through the sample.
pub fn batch(n: usize) -> Vec<WorkItem> {
    sample_items().into_iter().cycle().take(n).collect()
}

/// The item used for single-item latency: a refund over the operator limit,
/// which exercises limits, phrases, bands and anomalies.
pub fn representative_item() -> WorkItem {
    sample_items()
        .into_iter()
        .next()
        .expect("the sample is not empty")
}

/// The embedded source of reference policy `name`, with `extra` prepended
/// to its manifest (top-level keys such as `instance-reuse`).
pub fn source(name: &str, extra: &str) -> PluginSource {
    let mut source = reference::sources()
        .into_iter()
        .find(|s| s.name == name)
        .expect("a reference policy");
    source.manifest = source.manifest.map(|m| format!("{extra}\n{m}"));
    source
}

/// A policy set of the named reference policies with `extra` manifest lines.
pub fn set(runtime: &Runtime, names: &[&str], extra: &str) -> Arc<PolicySet> {
    set_of(
        runtime,
        names.iter().map(|name| source(name, extra)).collect(),
    )
}

/// A policy set of `sources`, every one of which must load.
pub fn set_of(runtime: &Runtime, sources: Vec<PluginSource>) -> Arc<PolicySet> {
    let set = PolicySet::load(runtime, sources, 1);
    assert!(set.rejected().is_empty(), "{:?}", set.rejected());
    Arc::new(set)
}

/// The configuration a reference policy's shipped manifest gives it.
pub fn native_config(name: &str) -> Config {
    let manifest = reference::POLICIES
        .iter()
        .find(|p| p.name == name)
        .map(|p| Manifest::parse(p.manifest).expect("the shipped manifest parses"))
        .expect("a reference policy");
    Config::from_pairs(manifest.config)
}

/// The reference policies compiled natively: the baseline the sandbox is
/// measured against. Same code as the components, configured the same way.
pub struct Native {
    pub compliance: compliance_limits::ComplianceLimits,
    pub gate: confidence_gate::ConfidenceGate,
}

impl Native {
    /// Configures both policies from their shipped manifests.
    pub fn new() -> Self {
        Native {
            compliance: compliance_limits::ComplianceLimits::configure(&native_config(
                "compliance-limits",
            ))
            .expect("shipped config is valid"),
            gate: confidence_gate::ConfidenceGate::configure(&native_config("confidence-gate"))
                .expect("shipped config is valid"),
        }
    }
}

impl Default for Native {
    fn default() -> Self {
        Native::new()
    }
}

/// The item as the native policies take it.
pub fn to_sdk(item: &WorkItem) -> handoff_sdk::WorkItem {
    handoff_sdk::WorkItem {
        id: item.id.clone(),
        kind: item.kind.clone(),
        agent: item.agent.clone(),
        text: item.text.clone(),
        confidence: item.confidence,
        amount: item.amount.as_ref().map(|m| handoff_sdk::Money {
            minor: m.minor,
            currency: m.currency.clone(),
        }),
        segment: item.segment.clone(),
        attempts: item.attempts,
        attributes: item
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}
