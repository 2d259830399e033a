//! Runs work items through a policy set: classify → score → escalate in
//! every enabled plugin, then combines the verdicts into one decision.
//!
//! An `Evaluator` belongs to one worker thread and keeps one warm instance
//! per plugin, so the steady-state cost of a decision is the calls
//! themselves, not instantiation. Every plugin call runs under its budget;
//! any misbehaviour becomes a recorded fault and never a decision of its
//! own, and a store that trapped is discarded, never reused.

use std::sync::Arc;
use std::time::Instant;

use handoff_model::{Decision, InputError, Metering, WorkItem};

use crate::bindings::ContractItem;
use crate::plugin::{Instance, Plugin};
use crate::policy_set::PolicySet;
use crate::run::{Reuse, micros, run_plugin};

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
    reuse: Reuse,
}

impl Evaluator {
    /// An evaluator for `set`, for use on the calling thread. Instances are
    /// created on first use.
    pub fn new(set: Arc<PolicySet>) -> Self {
        // Pays the thread-local setup now, not inside the first evaluation.
        wasmtime::Engine::tls_eager_initialize();
        let warm = running(&set).map(|_| None).collect();
        Evaluator {
            set,
            warm,
            reuse: Reuse::AsManifest { sample: true },
        }
    }

    /// An evaluator that gives every plugin a fresh instance for every
    /// item, whatever the manifests say: what a replay uses, so that a
    /// plugin whose answer depends on the items before it shows up as a
    /// change instead of reproducing its drift.
    pub fn fresh(set: Arc<PolicySet>) -> Self {
        Evaluator {
            reuse: Reuse::Never,
            ..Evaluator::new(set)
        }
    }

    /// The policy set this evaluator runs.
    pub fn policy_set(&self) -> &Arc<PolicySet> {
        &self.set
    }

    /// Switches to `set`, typically the next generation of a live set.
    /// Warm instances of plugins the two sets share are kept: a reload of
    /// one plugin costs the others nothing.
    pub fn retarget(&mut self, set: Arc<PolicySet>) {
        let mut old: Vec<(Arc<Plugin>, Option<Instance>)> = running(&self.set)
            .cloned()
            .zip(self.warm.drain(..))
            .collect();
        self.warm = running(&set)
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
        let contract_item = ContractItem::new(item);
        let count = self.set.plugins().len();
        let (enforcing, shadows) = self.warm.split_at_mut(count);
        let mut verdicts = Vec::with_capacity(count);
        let mut metering = Vec::with_capacity(count);
        for (plugin, slot) in self.set.plugins().iter().zip(enforcing) {
            let (verdict, cost) = run_plugin(plugin, slot, &contract_item, self.reuse);
            verdicts.push(verdict);
            metering.push(cost);
        }
        let elapsed_us = micros(started.elapsed());
        // Shadows run after the decision is made, on the same converted
        // item; nothing they return reaches `combine`.
        let mut shadow = Vec::with_capacity(shadows.len());
        let mut shadow_metering = Vec::with_capacity(shadows.len());
        for (plugin, slot) in self.set.shadows().iter().zip(shadows) {
            let (verdict, cost) = run_plugin(plugin, slot, &contract_item, self.reuse);
            shadow.push(verdict);
            shadow_metering.push(cost);
        }
        let metering = Metering {
            elapsed_us,
            plugins: metering,
            shadow: shadow_metering,
        };
        let mut decision =
            Decision::combine(item.id.clone(), self.set.generation(), verdicts, metering);
        decision.shadow = shadow;
        Ok(decision)
    }
}

/// The plugins an evaluator runs, each with a warm slot: enforcing, then
/// shadow.
fn running(set: &PolicySet) -> impl Iterator<Item = &Arc<Plugin>> {
    set.plugins().iter().chain(set.shadows())
}
