//! One plugin's run on one item: the single `evaluate` call on a warm or
//! fresh instance, under its budget, with every failure turned into a
//! recorded [`Fault`] and the failure mode's substitute verdict.
//!
//! Shared by live evaluation and by the fixtures every load must pass, so a
//! fixture that passes is a case the plugin decides the same way live.

use std::time::{Duration, Instant};

use handoff_model::{
    Assessment, Classification, Fault, FaultKind, PluginMetering, PluginVerdict, Verdict,
};

use crate::bindings::{since_v0_1_0, wit};
use crate::manifest::InstanceReuse;
use crate::output_check::{self, Violation};
use crate::plugin::{Instance, Plugin};
use crate::sandbox::Captured;
use crate::trap::classify;

/// The item as the contract carries it: converted once per evaluation and
/// lent to every plugin.
pub(crate) struct ContractItem(wit::WorkItem);

impl ContractItem {
    pub(crate) fn new(item: &handoff_model::WorkItem) -> Self {
        ContractItem(since_v0_1_0::work_item(item))
    }
}

/// How a plugin's run went wrong: a trap to classify, or a checked violation.
enum Failure {
    Trap(wasmtime::Error),
    Violation(Violation),
}

/// Whatever stages completed before a failure.
#[derive(Default)]
struct Progress {
    classification: Option<Classification>,
    assessment: Option<Assessment>,
    verdict: Option<Verdict>,
}

pub(crate) fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// Runs the three stages of one plugin on its warm instance, creating one
/// if needed, and turns any failure into a recorded fault.
pub(crate) fn run_plugin(
    plugin: &Plugin,
    slot: &mut Option<Instance>,
    item: &ContractItem,
) -> (PluginVerdict, PluginMetering) {
    let started = Instant::now();
    let mut progress = Progress::default();
    let mut fuel = 0;
    let mut memory_bytes = 0;
    let mut dropped = 0;

    let fault = match instance_for(plugin, slot) {
        Err(fault) => Some(fault),
        Ok(instance) => {
            plugin.arm(&mut instance.store);
            let result = stages(instance, &item.0, &mut progress);
            fuel = plugin.fuel_used(&instance.store);
            let state = instance.store.data();
            memory_bytes = state.peak_memory() as u64;
            let output = state.capture().take();
            dropped = output.dropped;
            log_output(plugin, &output);
            instance.calls += 1;
            let spent = match plugin.manifest.instance_reuse {
                InstanceReuse::Fresh => true,
                InstanceReuse::Warm => instance.calls >= plugin.manifest.recycle_after,
            };
            // A trapped store may be in any state: never reuse it. An
            // instance that returned a bad value is intact and may serve on.
            let (fault, trapped) = match result {
                Ok(()) => (None, false),
                Err((stage, Failure::Violation((kind, detail)))) => {
                    (Some(fault_of(plugin, kind, stage, detail)), false)
                }
                Err((stage, Failure::Trap(error))) => {
                    let (kind, detail) = classify(&error, state.limit_refused(), &output.text);
                    (Some(fault_of(plugin, kind, stage, detail)), true)
                }
            };
            if spent || trapped {
                *slot = None;
            }
            fault
        }
    };

    let wall = started.elapsed();
    plugin
        .stats()
        .record(fuel, wall, fault.as_ref().map(|f| f.kind), dropped);
    let verdict = match &fault {
        Some(fault) => {
            tracing::warn!(plugin = &*plugin.name, kind = %fault.kind, stage = fault.stage, detail = fault.detail, "plugin fault");
            fault.substitute_verdict(&plugin.name)
        }
        None => progress.verdict,
    };
    let record = PluginVerdict {
        plugin: plugin.name.to_string(),
        version: plugin.info.version.clone(),
        digest: plugin.digest.clone(),
        classification: progress.classification,
        assessment: progress.assessment,
        verdict,
        fault,
    };
    let cost = PluginMetering {
        plugin: plugin.name.to_string(),
        fuel,
        wall_us: micros(wall),
        memory_bytes,
    };
    (record, cost)
}

/// The warm instance, or a new one; a failure to start is a fault of the
/// `instantiate` stage.
fn instance_for<'a>(
    plugin: &Plugin,
    slot: &'a mut Option<Instance>,
) -> Result<&'a mut Instance, Fault> {
    match slot {
        Some(instance) => Ok(instance),
        None => {
            let instance = plugin
                .instantiate()
                .map_err(|failure| fault_of(plugin, failure.kind, "instantiate", failure.detail))?;
            Ok(slot.insert(instance))
        }
    }
}

fn fault_of(plugin: &Plugin, kind: FaultKind, stage: &str, detail: String) -> Fault {
    Fault {
        kind,
        stage: stage.to_string(),
        detail,
        failure_mode: plugin.manifest.failure_mode,
    }
}

/// Runs the three stages in one `evaluate` call (one copy of the item into
/// the guest instead of three), then checks each stage's output in order,
/// attributing a violation to the stage that produced it. A trap cannot be
/// attributed to a stage inside the single call, so it is recorded as
/// `evaluate`.
fn stages(
    instance: &mut Instance,
    item: &wit::WorkItem,
    progress: &mut Progress,
) -> Result<(), (&'static str, Failure)> {
    let Instance { store, policy, .. } = instance;
    let wit::Evaluation {
        classification,
        assessment,
        verdict,
    } = policy
        .call_evaluate(&mut *store, item)
        .map_err(|e| ("evaluate", Failure::Trap(e)))?;
    let classification = Classification::from(classification);
    output_check::classification(&classification)
        .map_err(|v| ("classify", Failure::Violation(v)))?;
    progress.classification = Some(classification);
    let assessment = Assessment::from(assessment);
    output_check::assessment(&assessment).map_err(|v| ("score", Failure::Violation(v)))?;
    progress.assessment = Some(assessment);
    let verdict = Verdict::from(verdict);
    output_check::verdict(&verdict).map_err(|v| ("escalate", Failure::Violation(v)))?;
    progress.verdict = Some(verdict);
    Ok(())
}

/// Hands what the plugin wrote to the host's log, attributed to it.
fn log_output(plugin: &Plugin, output: &Captured) {
    if !output.text.is_empty() {
        tracing::debug!(
            plugin = &*plugin.name,
            output = output.text.trim_end(),
            "plugin output"
        );
    }
    if output.dropped > 0 {
        tracing::warn!(
            plugin = &*plugin.name,
            dropped = output.dropped,
            "plugin output over its log-bytes limit was dropped"
        );
    }
}
