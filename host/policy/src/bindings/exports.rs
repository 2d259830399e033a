//! The exports the host calls on a plugin, whichever contract version the
//! plugin was built for, and the item in each version's form.
//!
//! Every version shares `metadata`, `configure` and the result of
//! `evaluate` (wasmtime checks component types by structure, so the capped
//! result types of [`super::lifted`] serve them all); the versions differ
//! in how the item is passed, which is decided here, once per call.

use std::cell::OnceCell;

use handoff_model as model;
use wasmtime::component::{
    Component, ComponentExportIndex, Func, Instance, InstancePre, TypedFunc,
};
use wasmtime::{AsContextMut, Engine, Store};

use super::lifted::{ConfigureOut, EvaluationOut, PolicyInfoOut};
use super::{since_v0_1_0, since_v0_2_0};
use crate::sandbox::{PluginState, seed_for};

/// The contract's package, as a component built for any version imports it.
pub(crate) const PACKAGE: &str = "handoff:policy";

/// A version of the `handoff:policy` contract this host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `handoff:policy@0.1.0`: every string of the item is its own value.
    V0_1_0,
    /// `handoff:policy@0.2.0`: the item's strings in one, with spans.
    V0_2_0,
}

impl Contract {
    /// Every version this host serves, oldest first.
    pub const ALL: [Contract; 2] = [Contract::V0_1_0, Contract::V0_2_0];

    /// The version, as it follows `@` in an import name.
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1_0 => since_v0_1_0::VERSION,
            Contract::V0_2_0 => since_v0_2_0::VERSION,
        }
    }

    /// The version named `version`, if this host serves it.
    pub(crate) fn of_version(version: &str) -> Option<Contract> {
        Contract::ALL.into_iter().find(|c| c.version() == version)
    }

    /// Every served version, as `handoff:policy@0.1.0 and ...`, for messages.
    pub(crate) fn served() -> String {
        Contract::ALL
            .iter()
            .map(|c| format!("{PACKAGE}@{}", c.version()))
            .collect::<Vec<_>>()
            .join(" and ")
    }

    /// The version `component` imports the contract's interfaces at, when
    /// it is one this host serves.
    fn imported_by(component: &Component, engine: &Engine) -> Option<Contract> {
        let prefix = format!("{PACKAGE}/");
        component
            .component_type()
            .imports(engine)
            .filter_map(|(name, _)| name.strip_prefix(&prefix)?.split_once('@'))
            .find_map(|(_, version)| Contract::of_version(version))
    }
}

impl serde::Serialize for Contract {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PACKAGE}@{}", self.version())
    }
}

/// The item as the contracts carry it, with the seed of its random
/// sequence: made once per evaluation and lent to every plugin. Each
/// version's form is built the first time a plugin of that version asks.
pub(crate) struct ContractItem<'a> {
    item: &'a model::WorkItem,
    v0_1_0: OnceCell<since_v0_1_0::wit::WorkItem>,
    v0_2_0: OnceCell<since_v0_2_0::wit::WorkItem>,
    pub(crate) seed: u64,
}

impl<'a> ContractItem<'a> {
    pub(crate) fn new(item: &'a model::WorkItem) -> Self {
        ContractItem {
            item,
            v0_1_0: OnceCell::new(),
            v0_2_0: OnceCell::new(),
            seed: seed_for(&item.id),
        }
    }

    pub(crate) fn v0_1_0(&self) -> &since_v0_1_0::wit::WorkItem {
        self.v0_1_0
            .get_or_init(|| since_v0_1_0::work_item(self.item))
    }

    pub(crate) fn v0_2_0(&self) -> &since_v0_2_0::wit::WorkItem {
        self.v0_2_0
            .get_or_init(|| since_v0_2_0::work_item(self.item))
    }
}

/// Where a component's exports are, found once at load.
pub(crate) struct Exports {
    pre: InstancePre<PluginState>,
    contract: Contract,
    metadata: ComponentExportIndex,
    configure: ComponentExportIndex,
    evaluate: ComponentExportIndex,
}

/// The exports of one instance.
pub(crate) struct Calls {
    instance: Instance,
    contract: Contract,
    metadata: Func,
    configure: Func,
    evaluate: Func,
}

impl Exports {
    /// Checks that `pre`'s component fits the world of the contract
    /// version it imports (every export of the right type) and finds the
    /// exports the host calls.
    pub(crate) fn new(pre: InstancePre<PluginState>) -> wasmtime::Result<Exports> {
        let component = pre.component();
        let contract = Contract::imported_by(component, pre.engine()).ok_or_else(|| {
            wasmtime::format_err!(
                "it imports no version of {PACKAGE} this host serves ({})",
                Contract::served()
            )
        })?;
        match contract {
            Contract::V0_1_0 => drop(since_v0_1_0::PolicyPre::new(pre.clone())?),
            Contract::V0_2_0 => drop(since_v0_2_0::PolicyPre::new(pre.clone())?),
        }
        let find = |name: &str| {
            component
                .get_export_index(None, name)
                .ok_or_else(|| wasmtime::format_err!("no export `{name}`"))
        };
        Ok(Exports {
            metadata: find("metadata")?,
            configure: find("configure")?,
            evaluate: find("evaluate")?,
            contract,
            pre,
        })
    }

    /// The contract version the component was built for.
    pub(crate) fn contract(&self) -> Contract {
        self.contract
    }

    /// The compiled component.
    pub(crate) fn component(&self) -> &Component {
        self.pre.component()
    }

    /// The engine the component was compiled for.
    pub(crate) fn engine(&self) -> &Engine {
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
            contract: self.contract,
            instance,
        })
    }
}

impl Calls {
    /// Checks that the exports have the types the host lifts their results
    /// as: done once per plugin, so that every call can skip it.
    pub(crate) fn check_types(&self, store: &Store<PluginState>) -> wasmtime::Result<()> {
        self.metadata.typed::<(), (PolicyInfoOut,)>(store)?;
        self.configure.typed::<(), (ConfigureOut,)>(store)?;
        match self.contract {
            Contract::V0_1_0 => drop(
                self.evaluate
                    .typed::<(&since_v0_1_0::wit::WorkItem,), (EvaluationOut,)>(store)?,
            ),
            Contract::V0_2_0 => drop(
                self.evaluate
                    .typed::<(&since_v0_2_0::wit::WorkItem,), (EvaluationOut,)>(store)?,
            ),
        }
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
        let func = unsafe { TypedFunc::<(), (ConfigureOut,)>::new_unchecked(self.configure) };
        Ok(func.call(store, ())?.0.map_err(|refusal| {
            refusal
                .checked()
                .unwrap_or_else(|over| format!("(a refusal too long to keep: {over})"))
        }))
    }

    /// Calls `evaluate`, the three stages in one call, with the item in
    /// the form of the component's contract version.
    pub(crate) fn evaluate(
        &self,
        store: impl AsContextMut<Data = PluginState>,
        item: &ContractItem<'_>,
    ) -> wasmtime::Result<EvaluationOut> {
        match self.contract {
            Contract::V0_1_0 => {
                // SAFETY: `check_types` checked these types on this component.
                let func = unsafe {
                    TypedFunc::<(&since_v0_1_0::wit::WorkItem,), (EvaluationOut,)>::new_unchecked(
                        self.evaluate,
                    )
                };
                Ok(func.call(store, (item.v0_1_0(),))?.0)
            }
            Contract::V0_2_0 => {
                // SAFETY: `check_types` checked these types on this component.
                let func = unsafe {
                    TypedFunc::<(&since_v0_2_0::wit::WorkItem,), (EvaluationOut,)>::new_unchecked(
                        self.evaluate,
                    )
                };
                Ok(func.call(store, (item.v0_2_0(),))?.0)
            }
        }
    }
}
