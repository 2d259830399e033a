//! Runs work items through a policy set: classify → score → escalate in
//! every enabled plugin, then combines the verdicts into one decision.
//!
//! An `Evaluator` belongs to one worker thread and keeps one warm instance
//! per plugin, so the steady-state cost of a decision is the calls
//! themselves, not instantiation. Every plugin call runs under its budget;
//! any misbehaviour becomes a recorded [`Fault`] and never a decision of its
//! own, and a store that trapped is discarded, never reused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bindings::wit;
use crate::fault::{Fault, FaultKind, classify};
use crate::manifest::InstanceReuse;
use crate::model::{Decision, InputError, Metering, PluginMetering, PluginVerdict, WorkItem};
use crate::output_check::{self, Violation};
use crate::plugin::{Instance, Plugin};
use crate::policy_set::PolicySet;

/// Why an item got no decision. Plugin faults are not here: they are part of
/// the decision.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The item itself is invalid.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Evaluating with no enabled plugin would wave everything through.
    #[error("no policy is loaded, so nothing can decide; refusing to let work through unchecked")]
    NoPolicies,
}

/// Evaluates items on one thread with warm plugin instances.
pub struct Evaluator {
    set: Arc<PolicySet>,
    warm: Vec<Option<Instance>>,
}

impl Evaluator {
    /// An evaluator for `set`, for use on the calling thread. Instances are
    /// created on first use.
    pub fn new(set: Arc<PolicySet>) -> Self {
        // Pays the thread-local setup now, not inside the first evaluation.
        wasmtime::Engine::tls_eager_initialize();
        let warm = set.plugins().iter().map(|_| None).collect();
        Evaluator { set, warm }
    }

    /// The policy set this evaluator runs.
    pub fn policy_set(&self) -> &Arc<PolicySet> {
        &self.set
    }

    /// Switches to `set`, typically the next generation of a live set.
    /// Warm instances of plugins the two sets share are kept: a reload of
    /// one plugin costs the others nothing.
    pub fn retarget(&mut self, set: Arc<PolicySet>) {
        let mut old: Vec<(Arc<crate::plugin::Plugin>, Option<Instance>)> = self
            .set
            .plugins()
            .iter()
            .cloned()
            .zip(self.warm.drain(..))
            .collect();
        self.warm = set
            .plugins()
            .iter()
            .map(|plugin| {
                old.iter_mut()
                    .find(|(candidate, _)| Arc::ptr_eq(candidate, plugin))
                    .and_then(|(_, instance)| instance.take())
            })
            .collect();
        self.set = set;
    }

    /// Decides one item.
    pub fn evaluate(&mut self, item: &WorkItem) -> Result<Decision, EvalError> {
        item.validate()?;
        if self.set.plugins().is_empty() {
            return Err(EvalError::NoPolicies);
        }
        let started = Instant::now();
        let wit_item = item.to_wit();
        let count = self.set.plugins().len();
        let mut verdicts = Vec::with_capacity(count);
        let mut metering = Vec::with_capacity(count);
        for (plugin, slot) in self.set.plugins().iter().zip(self.warm.iter_mut()) {
            let (verdict, cost) = run_plugin(plugin, slot, &wit_item);
            verdicts.push(verdict);
            metering.push(cost);
        }
        let metering = Metering {
            elapsed_us: micros(started.elapsed()),
            plugins: metering,
        };
        Ok(Decision::combine(
            item.id.clone(),
            self.set.generation(),
            verdicts,
            metering,
        ))
    }
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// How a plugin's run went wrong: a trap to classify, or a checked violation.
enum Failure {
    Trap(wasmtime::Error),
    Violation(Violation),
}

/// Whatever stages completed before a failure.
#[derive(Default)]
struct Progress {
    classification: Option<wit::Classification>,
    assessment: Option<wit::Assessment>,
    verdict: Option<wit::Verdict>,
}

/// Runs the three stages of one plugin on its warm instance, creating one
/// if needed, and turns any failure into a recorded fault.
pub(crate) fn run_plugin(
    plugin: &Plugin,
    slot: &mut Option<Instance>,
    item: &wit::WorkItem,
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
            let result = stages(instance, item, &mut progress);
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
        None => progress.verdict.map(Into::into),
    };
    let record = PluginVerdict {
        plugin: plugin.name.to_string(),
        version: plugin.info.version.clone(),
        digest: plugin.digest.clone(),
        classification: progress.classification.map(Into::into),
        assessment: progress.assessment.map(Into::into),
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
    output_check::classification(&classification)
        .map_err(|v| ("classify", Failure::Violation(v)))?;
    progress.classification = Some(classification);
    output_check::assessment(&assessment).map_err(|v| ("score", Failure::Violation(v)))?;
    progress.assessment = Some(assessment);
    output_check::verdict(&verdict).map_err(|v| ("escalate", Failure::Violation(v)))?;
    progress.verdict = Some(verdict);
    Ok(())
}

/// Hands what the plugin wrote to the host's log, attributed to it.
fn log_output(plugin: &Plugin, output: &crate::sandbox::Captured) {
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
