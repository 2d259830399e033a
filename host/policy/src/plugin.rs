//! One compiled plugin: a component checked against the sandbox and the
//! contract, linked, and trial-run for its metadata, ready to instantiate.
//! Whether it may serve (its fixtures) is the loader's question.

use std::collections::BTreeMap;
use std::sync::Arc;

use handoff_model::{CompileOrigin, FaultKind, TriggerKind};
use wasmtime::Store;

use crate::bindings::{Policy, PolicyPre};
use crate::component::{
    ComponentError, Import, check_header, digest_text, imports_of, refused, sha256,
};
use crate::engine::{EPOCH_TICK, Meters};
use crate::manifest::Manifest;
use crate::runtime::Runtime;
use crate::sandbox::PluginState;
use crate::stats::{PluginStats, StatsSnapshot};
use crate::trap::classify;

/// What a policy says about itself, from its `metadata` export.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PolicyInfo {
    /// The policy's own name.
    pub name: String,
    /// The policy's own version.
    pub version: String,
    /// What the policy is for.
    pub description: String,
    /// The triggers it implements.
    pub triggers: Vec<TriggerInfo>,
}

/// One trigger a policy implements.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TriggerInfo {
    /// Reason-code prefix.
    pub code: String,
    /// Rule or probabilistic.
    pub kind: TriggerKind,
    /// What it looks for.
    pub description: String,
}

/// Why a component could not become a plugin. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Not a component, or one that does not compile.
    #[error(transparent)]
    Component(#[from] ComponentError),
    /// Imports the capability policy refuses, each named.
    #[error("the component imports what the sandbox refuses: {0}")]
    Forbidden(String),
    /// Exports of the wrong shape, or an import of the wrong type.
    #[error("the component does not fit the handoff:policy@0.1.0 world: {0:#}")]
    World(wasmtime::Error),
    /// Instantiating, reading metadata or configuring failed.
    #[error("the plugin failed its trial run: {0}")]
    Trial(String),
    /// The plugin refused its configuration.
    #[error("the plugin refused its configuration: {0}")]
    Config(String),
}

/// A plugin ready to evaluate.
pub struct Plugin {
    /// Name in the policy set: the file name without `.wasm`.
    pub name: Arc<str>,
    /// SHA-256 of the component bytes, as `sha256:<hex>`.
    pub digest: String,
    /// The operator's manifest.
    pub manifest: Manifest,
    /// The policy's metadata, read once at load.
    pub info: PolicyInfo,
    /// Whether the code was compiled or came from the artifact cache.
    pub compiled: CompileOrigin,
    /// Time to compile or load, validate and self-test it, in milliseconds:
    /// what a lifecycle record reports, so slow policies show up in review.
    pub load_ms: f64,
    /// Every import and what the sandbox grants it: the capability report
    /// compliance reviews for the serving version.
    pub imports: Vec<Import>,
    config: Arc<BTreeMap<String, String>>,
    pre: PolicyPre<PluginState>,
    meters: Meters,
    stats: PluginStats,
}

/// Why a new instance could not be made ready.
#[derive(Debug, Clone, PartialEq)]
pub struct StartFailure {
    /// The fault, as it is recorded when this happens during evaluation.
    pub kind: FaultKind,
    /// What happened.
    pub detail: String,
    /// True when the plugin's own `configure` refused its configuration.
    pub config_refused: bool,
}

impl From<StartFailure> for PluginError {
    fn from(failure: StartFailure) -> Self {
        if failure.config_refused {
            PluginError::Config(failure.detail)
        } else {
            PluginError::Trial(format!("{}: {}", failure.kind, failure.detail))
        }
    }
}

/// A live instance of a plugin, with the store that owns it.
pub(crate) struct Instance {
    /// The store. Discarded, never reused, after any trap.
    pub(crate) store: Store<PluginState>,
    /// Typed access to the exports.
    pub(crate) policy: Policy,
    /// Evaluations this instance has served.
    pub(crate) calls: u64,
}

impl Plugin {
    /// Compiles (or loads from the cache), checks and links `bytes` as
    /// plugin `name`, then trial-runs it: an instance reads its metadata and
    /// accepts its configuration. A component that cannot do that is
    /// refused here, at load, rather than failing on live work.
    pub(crate) fn compile(
        runtime: &Runtime,
        name: &str,
        bytes: &[u8],
        manifest: Manifest,
    ) -> Result<Plugin, PluginError> {
        check_header(bytes)?;
        let sha = sha256(bytes);
        let (component, compiled) = runtime
            .compile(bytes, &sha)
            .map_err(ComponentError::Compile)?;
        let imports = imports_of(&component, runtime.engine());
        let forbidden: Vec<&str> = refused(&imports).map(|i| i.name.as_str()).collect();
        if !forbidden.is_empty() {
            return Err(PluginError::Forbidden(forbidden.join(", ")));
        }
        let instance_pre = runtime
            .linker()
            .instantiate_pre(&component)
            .map_err(PluginError::World)?;
        let pre = PolicyPre::new(instance_pre).map_err(PluginError::World)?;
        let mut plugin = Plugin {
            name: Arc::from(name),
            digest: digest_text(&sha),
            config: Arc::new(manifest.config.clone()),
            compiled,
            load_ms: 0.0,
            imports,
            manifest,
            info: PolicyInfo {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                triggers: Vec::new(),
            },
            pre,
            meters: runtime.meters(),
            stats: PluginStats::default(),
        };
        let mut trial = plugin.instantiate()?;
        plugin.arm(&mut trial.store);
        plugin.info = match trial.policy.call_metadata(&mut trial.store) {
            Ok(info) => info.into(),
            Err(error) => {
                let state = trial.store.data();
                let output = state.capture().take();
                let (kind, detail) = classify(&error, state.limit_refused(), &output.text);
                return Err(PluginError::Trial(format!("{kind} in metadata: {detail}")));
            }
        };
        Ok(plugin)
    }

    /// A fresh, configured instance in a store of its own. Instantiation and
    /// `configure` run under the plugin's limits like any evaluation.
    pub(crate) fn instantiate(&self) -> Result<Instance, StartFailure> {
        self.stats.record_instance();
        let state = PluginState::new(self.config.clone(), self.manifest.limits);
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| state);
        self.arm(&mut store);
        let failed = |store: &Store<PluginState>, error: wasmtime::Error| {
            let state = store.data();
            let output = state.capture().take();
            let (kind, detail) = classify(&error, state.limit_refused(), &output.text);
            StartFailure {
                kind,
                detail,
                config_refused: false,
            }
        };
        let policy = match self.pre.instantiate(&mut store) {
            Ok(policy) => policy,
            Err(error) => return Err(failed(&store, error)),
        };
        match policy.call_configure(&mut store) {
            Ok(Ok(())) => Ok(Instance {
                store,
                policy,
                calls: 0,
            }),
            Ok(Err(refusal)) => Err(StartFailure {
                kind: FaultKind::Trap,
                detail: refusal,
                config_refused: true,
            }),
            Err(error) => Err(failed(&store, error)),
        }
    }

    /// Gives `store` a full budget: the manifest's fuel and a deadline
    /// `deadline-ms` from now.
    pub(crate) fn arm(&self, store: &mut Store<PluginState>) {
        let limits = self.manifest.limits;
        if self.meters.fuel {
            // Cannot fail: fuel is enabled on the engine.
            let _ = store.set_fuel(limits.fuel);
        }
        if self.meters.epoch {
            let tick_ms = EPOCH_TICK.as_millis().max(1) as u64;
            store.set_epoch_deadline(limits.deadline_ms.div_ceil(tick_ms));
        }
    }

    /// Fuel consumed since the last [`Plugin::arm`].
    pub(crate) fn fuel_used(&self, store: &Store<PluginState>) -> u64 {
        if !self.meters.fuel {
            return 0;
        }
        let left = store.get_fuel().unwrap_or(0);
        self.manifest.limits.fuel.saturating_sub(left)
    }

    /// The live counters.
    pub(crate) fn stats(&self) -> &PluginStats {
        &self.stats
    }

    /// Starts the totals from zero: self-tests at load are not traffic.
    pub(crate) fn reset_stats(&mut self) {
        self.stats = PluginStats::default();
    }

    /// A copy of the totals.
    pub fn stats_snapshot(&self) -> StatsSnapshot {
        self.stats.snapshot(&self.name)
    }
}
