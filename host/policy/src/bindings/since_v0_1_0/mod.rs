//! `handoff:policy@0.1.0`: typed bindings generated from `wit/policy.wit`
//! (the WIT the guests and the SDK build against, so a contract change the
//! host does not follow fails to compile), the host interface a plugin
//! imports, the exports the host calls, and the conversions between this
//! version's types and the model's.

mod host;
mod lifted;

use handoff_model as model;
use wasmtime::component::{ComponentExportIndex, Func, Instance, InstancePre, Linker, TypedFunc};
use wasmtime::{AsContextMut, Store};

pub(crate) use lifted::{EvaluationOut, PolicyInfoOut, Stages};

use crate::sandbox::PluginState;

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "policy",
});

pub(crate) use handoff::policy::types as wit;

/// The contract's package and version, exactly as a component built for
/// this version imports them.
pub(crate) const PACKAGE: &str = "handoff:policy";
pub(crate) const VERSION: &str = "0.1.0";

/// Links this version's host interfaces: `host` (log lines and the plugin's
/// configuration) and `types` (definitions only).
pub(crate) fn link(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    host::link(linker)
}

/// Links nothing but the `types` instance a component of this world
/// imports for its type definitions.
pub(crate) fn link_types(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    linker.instance(&format!("{PACKAGE}/types@{VERSION}"))?;
    Ok(())
}

/// Where a component's exports are, found once at load.
pub(crate) struct Exports {
    pre: InstancePre<PluginState>,
    metadata: ComponentExportIndex,
    configure: ComponentExportIndex,
    evaluate: ComponentExportIndex,
}

/// The exports of one instance.
pub(crate) struct Calls {
    instance: Instance,
    metadata: Func,
    configure: Func,
    evaluate: Func,
}

impl Exports {
    /// Checks that `pre`'s component fits this version's world (every
    /// export of the right type) and finds the exports the host calls.
    pub(crate) fn new(pre: InstancePre<PluginState>) -> wasmtime::Result<Exports> {
        PolicyPre::new(pre.clone())?;
        let component = pre.component();
        let find = |name: &str| {
            component
                .get_export_index(None, name)
                .ok_or_else(|| wasmtime::format_err!("no export `{name}`"))
        };
        Ok(Exports {
            metadata: find("metadata")?,
            configure: find("configure")?,
            evaluate: find("evaluate")?,
            pre,
        })
    }

    /// The compiled component.
    pub(crate) fn component(&self) -> &wasmtime::component::Component {
        self.pre.component()
    }

    /// The engine the component was compiled for.
    pub(crate) fn engine(&self) -> &wasmtime::Engine {
        self.pre.engine()
    }

    /// Instantiates the component in `store`. The first instance of a
    /// plugin is checked against the capped result types
    /// ([`Calls::check_types`]) before any call.
    pub(crate) fn instantiate(&self, store: &mut Store<PluginState>) -> wasmtime::Result<Calls> {
        let instance = self.pre.instantiate(&mut *store)?;
        let func = |store: &mut Store<PluginState>, index: &ComponentExportIndex| {
            instance
                .get_func(&mut *store, index)
                .ok_or_else(|| wasmtime::format_err!("an export vanished"))
        };
        Ok(Calls {
            metadata: func(store, &self.metadata)?,
            configure: func(store, &self.configure)?,
            evaluate: func(store, &self.evaluate)?,
            instance,
        })
    }
}

impl Calls {
    /// Checks that the exports have the types the host lifts their results
    /// as: done once per plugin, so that every call can skip it.
    pub(crate) fn check_types(&self, store: &Store<PluginState>) -> wasmtime::Result<()> {
        self.metadata.typed::<(), (PolicyInfoOut,)>(store)?;
        self.configure.typed::<(), (lifted::ConfigureOut,)>(store)?;
        self.evaluate
            .typed::<(&wit::WorkItem,), (EvaluationOut,)>(store)?;
        Ok(())
    }

    /// The raw instance, for the stage-by-stage bindings.
    pub(crate) fn instance(&self) -> &Instance {
        &self.instance
    }

    /// Calls `metadata`.
    pub(crate) fn metadata(
        &self,
        store: impl AsContextMut<Data = PluginState>,
    ) -> wasmtime::Result<PolicyInfoOut> {
        // SAFETY: `check_types` checked these types on this component.
        let func = unsafe { TypedFunc::<(), (PolicyInfoOut,)>::new_unchecked(self.metadata) };
        Ok(func.call(store, ())?.0)
    }

    /// Calls `configure`: `Ok(Err(refusal))` when the plugin refuses its
    /// configuration.
    pub(crate) fn configure(
        &self,
        store: impl AsContextMut<Data = PluginState>,
    ) -> wasmtime::Result<Result<(), String>> {
        // SAFETY: `check_types` checked these types on this component.
        let func =
            unsafe { TypedFunc::<(), (lifted::ConfigureOut,)>::new_unchecked(self.configure) };
        Ok(func.call(store, ())?.0.map_err(|refusal| {
            refusal
                .checked()
                .unwrap_or_else(|over| format!("(a refusal too long to keep: {over})"))
        }))
    }

    /// Calls `evaluate`: the three stages in one call.
    pub(crate) fn evaluate(
        &self,
        store: impl AsContextMut<Data = PluginState>,
        item: &wit::WorkItem,
    ) -> wasmtime::Result<EvaluationOut> {
        // SAFETY: `check_types` checked these types on this component.
        let func = unsafe {
            TypedFunc::<(&wit::WorkItem,), (EvaluationOut,)>::new_unchecked(self.evaluate)
        };
        Ok(func.call(store, (item,))?.0)
    }
}

/// The item as this contract passes it to plugins. Built once per
/// evaluation and lent to every plugin.
pub(crate) fn work_item(item: &model::WorkItem) -> wit::WorkItem {
    wit::WorkItem {
        id: item.id.clone(),
        kind: item.kind.clone(),
        agent: item.agent.clone(),
        text: item.text.clone(),
        confidence: item.confidence,
        amount: item.amount.as_ref().map(|m| wit::Money {
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

impl From<wit::Tier> for model::Tier {
    fn from(tier: wit::Tier) -> Self {
        match tier {
            wit::Tier::None => model::Tier::None,
            wit::Tier::SelfCorrect => model::Tier::SelfCorrect,
            wit::Tier::Operator => model::Tier::Operator,
            wit::Tier::Executive => model::Tier::Executive,
        }
    }
}

impl From<wit::TriggerKind> for model::TriggerKind {
    fn from(kind: wit::TriggerKind) -> Self {
        match kind {
            wit::TriggerKind::Rule => model::TriggerKind::Rule,
            wit::TriggerKind::Probabilistic => model::TriggerKind::Probabilistic,
        }
    }
}
