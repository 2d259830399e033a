//! One plugin's stages called one at a time, for the benchmarks that time a
//! single component call. The host itself never does this: it calls the
//! `evaluate` export, all three stages in one call. Only plugins of the
//! newest contract version (what the Rust SDK builds) can be probed.

use std::hint::black_box;

use handoff_model::WorkItem;

use crate::bindings::Contract;
use crate::bindings::since_v0_2_0::{self, Policy, wit};
use crate::plugin::{Instance, Plugin, StartFailure};

/// A warm instance of a plugin with an item already in the contract's form,
/// and the outputs of the earlier stages that the later ones take.
pub struct StageProbe<'a> {
    plugin: &'a Plugin,
    instance: Instance,
    policy: Policy,
    item: wit::WorkItem,
    classification: wit::Classification,
    assessment: wit::Assessment,
}

impl Plugin {
    /// A probe of this plugin's stages on `item`: instantiates it and runs
    /// `classify` and `score` once, so that each stage can then be timed
    /// alone with the inputs it really gets.
    pub fn stage_probe(&self, item: &WorkItem) -> Result<StageProbe<'_>, StartFailure> {
        let failed = |error: wasmtime::Error| StartFailure {
            kind: handoff_model::FaultKind::Trap,
            detail: error.to_string(),
            config_refused: false,
        };
        if self.contract() != Contract::V0_2_0 {
            return Err(failed(wasmtime::format_err!(
                "only {} plugins can be probed stage by stage; this one is {}",
                Contract::V0_2_0,
                self.contract()
            )));
        }
        let mut instance = self.instantiate()?;
        let item = since_v0_2_0::work_item(item);
        self.arm(&mut instance.store);
        let policy = Policy::new(&mut instance.store, instance.calls.instance()).map_err(failed)?;
        let classification = policy
            .call_classify(&mut instance.store, &item)
            .map_err(failed)?;
        let assessment = policy
            .call_score(&mut instance.store, &item, &classification)
            .map_err(failed)?;
        Ok(StageProbe {
            plugin: self,
            instance,
            policy,
            item,
            classification,
            assessment,
        })
    }
}

impl StageProbe<'_> {
    /// One `classify` call, with a full budget.
    pub fn classify(&mut self) -> wasmtime::Result<()> {
        let store = &mut self.instance.store;
        self.plugin.arm(store);
        black_box(self.policy.call_classify(store, &self.item)?);
        Ok(())
    }

    /// One `score` call, with a full budget.
    pub fn score(&mut self) -> wasmtime::Result<()> {
        let store = &mut self.instance.store;
        self.plugin.arm(store);
        black_box(
            self.policy
                .call_score(store, &self.item, &self.classification)?,
        );
        Ok(())
    }

    /// One `escalate` call, with a full budget.
    pub fn escalate(&mut self) -> wasmtime::Result<()> {
        let store = &mut self.instance.store;
        self.plugin.arm(store);
        black_box(self.policy.call_escalate(
            store,
            &self.item,
            &self.classification,
            &self.assessment,
        )?);
        Ok(())
    }
}
