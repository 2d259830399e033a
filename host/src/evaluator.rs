//! Runs work items through a policy set: classify → score → escalate in
//! every enabled plugin, then combines the verdicts into one decision.
//!
//! An `Evaluator` belongs to one worker thread and keeps one warm instance
//! per plugin, so the steady-state cost of a decision is the calls
//! themselves, not instantiation.

use std::sync::Arc;
use std::time::Instant;

use crate::bindings::wit;
use crate::model::{Decision, InputError, PluginVerdict, Timing, WorkItem};
use crate::plugin::{Instance, LoadError, Plugin};
use crate::policy_set::PolicySet;

/// Why an item got no decision.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The item itself is invalid.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Evaluating with no enabled plugin would wave everything through.
    #[error("no policy is loaded, so nothing can decide; refusing to let work through unchecked")]
    NoPolicies,
    /// A plugin could not be instantiated.
    #[error("plugin `{plugin}` could not start: {source}")]
    Instantiate {
        /// The plugin.
        plugin: String,
        /// Why.
        #[source]
        source: LoadError,
    },
    /// A plugin trapped during a stage.
    #[error("plugin `{plugin}` failed in `{stage}`: {source:#}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// `classify`, `score` or `escalate`.
        stage: &'static str,
        /// The trap.
        source: wasmtime::Error,
    },
}

/// Evaluates items on one thread with warm plugin instances.
pub struct Evaluator {
    set: Arc<PolicySet>,
    warm: Vec<Option<Instance>>,
}

impl Evaluator {
    /// An evaluator for `set`. Instances are created on first use.
    pub fn new(set: Arc<PolicySet>) -> Self {
        let warm = set.plugins().iter().map(|_| None).collect();
        Evaluator { set, warm }
    }

    /// The policy set this evaluator runs.
    pub fn policy_set(&self) -> &Arc<PolicySet> {
        &self.set
    }

    /// Decides one item.
    pub fn evaluate(&mut self, item: &WorkItem) -> Result<Decision, EvalError> {
        item.validate()?;
        if self.set.plugins().is_empty() {
            return Err(EvalError::NoPolicies);
        }
        let started = Instant::now();
        let wit_item = item.to_wit();
        let mut verdicts = Vec::with_capacity(self.set.plugins().len());
        for (plugin, slot) in self.set.plugins().iter().zip(self.warm.iter_mut()) {
            verdicts.push(run_plugin(plugin, slot, &wit_item)?);
        }
        let timing = Timing {
            elapsed_us: started.elapsed().as_secs_f64() * 1e6,
        };
        Ok(Decision::combine(
            item.id.clone(),
            self.set.generation(),
            verdicts,
            timing,
        ))
    }
}

/// Runs the three stages of one plugin on its warm instance, creating the
/// instance if needed. Any trap discards the instance: a trapped store is
/// never reused.
fn run_plugin(
    plugin: &Plugin,
    slot: &mut Option<Instance>,
    item: &wit::WorkItem,
) -> Result<PluginVerdict, EvalError> {
    let instance = match slot {
        Some(instance) => instance,
        None => slot.insert(
            plugin
                .instantiate()
                .map_err(|source| EvalError::Instantiate {
                    plugin: plugin.name.to_string(),
                    source,
                })?,
        ),
    };
    let result = stages(instance, item);
    match result {
        Ok((classification, assessment, verdict)) => Ok(PluginVerdict {
            plugin: plugin.name.to_string(),
            version: plugin.info.version.clone(),
            digest: plugin.digest.clone(),
            classification: classification.into(),
            assessment: assessment.into(),
            verdict: verdict.into(),
        }),
        Err((stage, source)) => {
            *slot = None;
            Err(EvalError::Trap {
                plugin: plugin.name.to_string(),
                stage,
                source,
            })
        }
    }
}

type StageOutput = (wit::Classification, wit::Assessment, wit::Verdict);

fn stages(
    instance: &mut Instance,
    item: &wit::WorkItem,
) -> Result<StageOutput, (&'static str, wasmtime::Error)> {
    let Instance { store, policy } = instance;
    let classification = policy
        .call_classify(&mut *store, item)
        .map_err(|e| ("classify", e))?;
    let assessment = policy
        .call_score(&mut *store, item, &classification)
        .map_err(|e| ("score", e))?;
    let verdict = policy
        .call_escalate(&mut *store, item, &classification, &assessment)
        .map_err(|e| ("escalate", e))?;
    Ok((classification, assessment, verdict))
}
