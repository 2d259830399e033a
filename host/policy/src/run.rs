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

use crate::bindings::{ContractItem, OverCap, Stages};
use crate::manifest::InstanceReuse;
use crate::output_check::{self, Violation};
use crate::plugin::{Instance, Plugin};
use crate::sandbox::Captured;
use crate::trap::classify;

/// How a plugin's run went wrong: a trap to classify, or a checked violation.
enum Failure {
    Trap(wasmtime::Error),
    Violation(Violation),
}

/// Whatever stages completed before a failure.
#[derive(Default, PartialEq)]
struct Progress {
    classification: Option<Classification>,
    assessment: Option<Assessment>,
    verdict: Option<Verdict>,
}

pub(crate) fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// Whether instances may be reused across items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// As the plugin's manifest says (`instance-reuse`, `recycle-after`),
    /// and, when `sample` is set, with a share of warm runs checked on a
    /// fresh instance (`fresh-sample`).
    AsManifest {
        /// Whether this run may be one of the checked share.
        sample: bool,
    },
    /// A fresh instance for every item, whatever the manifest says: how a
    /// replay makes a plugin that depends on what it decided before show
    /// up as a change.
    Never,
}

/// What one run of a plugin on an item produced and cost.
struct Attempt {
    progress: Progress,
    fault: Option<Fault>,
    fuel: u64,
    memory_bytes: u64,
    dropped: u64,
    /// Whether the instance was a warm one, reused from an earlier item.
    warm: bool,
}

/// Runs the three stages of one plugin, on its warm instance (creating one
/// if needed) unless `reuse` says otherwise, and turns any failure into a
/// recorded fault. A share of warm runs (the manifest's `fresh-sample`) is
/// repeated on a fresh instance: a plugin whose answer depends on what its
/// warm instance decided before gets a `nondeterministic` fault.
pub(crate) fn run_plugin(
    plugin: &Plugin,
    slot: &mut Option<Instance>,
    item: &ContractItem<'_>,
    reuse: Reuse,
) -> (PluginVerdict, PluginMetering) {
    let started = Instant::now();
    let mut attempt = attempt(plugin, slot, item, reuse);
    let sample = matches!(reuse, Reuse::AsManifest { sample: true });
    if sample && attempt.warm && attempt.fault.is_none() && plugin.sample_fresh() {
        let mut fresh = None;
        let check = self::attempt(plugin, &mut fresh, item, Reuse::Never);
        if check.fault.is_none() && check.progress != attempt.progress {
            // The warm instance's state is what differs: it serves no more.
            *slot = None;
            attempt.fault = Some(fault_of(
                plugin,
                FaultKind::Nondeterministic,
                "evaluate",
                format!(
                    "a fresh instance decided {}, the warm one {}: the plugin's answer \
                     depends on what it decided before",
                    describe(&check.progress),
                    describe(&attempt.progress)
                ),
            ));
        }
    }

    let wall = started.elapsed();
    let Attempt {
        progress,
        fault,
        fuel,
        memory_bytes,
        dropped,
        ..
    } = attempt;
    plugin
        .stats()
        .record(fuel, wall, fault.as_ref().map(|f| f.kind), dropped);
    let verdict = match &fault {
        Some(fault) => {
            tracing::warn!(plugin = &*plugin.name, kind = %fault.kind, stage = fault.stage, detail = ?fault.detail, "plugin fault");
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
        snapshot: plugin.snapshot_digest().map(str::to_string),
    };
    (record, cost)
}

/// `tier (reason-code)` of a run's verdict, for a fault's detail.
fn describe(progress: &Progress) -> String {
    progress.verdict.as_ref().map_or_else(
        || "nothing".to_string(),
        |v| format!("{} ({})", v.tier, v.reason_code),
    )
}

/// One run of the three stages in `slot`'s instance.
fn attempt(
    plugin: &Plugin,
    slot: &mut Option<Instance>,
    item: &ContractItem<'_>,
    reuse: Reuse,
) -> Attempt {
    let mut attempt = Attempt {
        progress: Progress::default(),
        fault: None,
        fuel: 0,
        memory_bytes: 0,
        dropped: 0,
        warm: slot.is_some(),
    };
    let instance = match instance_for(plugin, slot) {
        Ok(instance) => instance,
        Err(fault) => {
            attempt.fault = Some(fault);
            return attempt;
        }
    };
    plugin.arm(&mut instance.store);
    instance.store.data_mut().reseed(item.seed);
    let result = stages(instance, item, &mut attempt.progress);
    attempt.fuel = plugin.fuel_used(&instance.store);
    let state = instance.store.data();
    attempt.memory_bytes = state.peak_memory() as u64;
    let output = state.capture().take();
    attempt.dropped = output.dropped;
    log_output(plugin, &output);
    instance.served += 1;
    let spent = match (reuse, plugin.manifest.instance_reuse) {
        (Reuse::Never, _) | (_, InstanceReuse::Fresh) => true,
        (Reuse::AsManifest { .. }, InstanceReuse::Warm) => {
            instance.served >= plugin.manifest.recycle_after
        }
    };
    // A trapped store may be in any state: never reuse it. An instance that
    // returned a bad value is intact and may serve on.
    let trapped = match result {
        Ok(()) => false,
        Err((stage, Failure::Violation((kind, detail)))) => {
            attempt.fault = Some(fault_of(plugin, kind, stage, detail));
            false
        }
        Err((stage, Failure::Trap(error))) => {
            let (kind, detail) = classify(&error, state.limit_refused());
            attempt.fault = Some(fault_of(plugin, kind, stage, detail));
            true
        }
    };
    if spent || trapped {
        *slot = None;
    }
    attempt
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
    item: &ContractItem<'_>,
    progress: &mut Progress,
) -> Result<(), (&'static str, Failure)> {
    let Instance { store, calls, .. } = instance;
    let Stages {
        classification,
        assessment,
        verdict,
    } = calls
        .evaluate(&mut *store, item)
        .map_err(|e| ("evaluate", Failure::Trap(e)))?
        .into_stages();
    let classification = classification
        .map_err(too_large)
        .and_then(|c| output_check::classification(&c).map(|()| c))
        .map_err(|v| ("classify", Failure::Violation(v)))?;
    progress.classification = Some(classification);
    let assessment = assessment
        .map_err(too_large)
        .and_then(|a| output_check::assessment(&a).map(|()| a))
        .map_err(|v| ("score", Failure::Violation(v)))?;
    progress.assessment = Some(assessment);
    let verdict = verdict
        .map_err(too_large)
        .and_then(|v| output_check::verdict(&v).map(|()| v))
        .map_err(|v| ("escalate", Failure::Violation(v)))?;
    progress.verdict = Some(verdict);
    Ok(())
}

fn too_large(over: OverCap) -> Violation {
    (FaultKind::OutputTooLarge, over.to_string())
}

/// Hands what the plugin wrote to the host's log, attributed to it.
fn log_output(plugin: &Plugin, output: &Captured) {
    if !output.text.is_empty() {
        tracing::debug!(
            plugin = &*plugin.name,
            output = ?output.text.trim_end(),
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
