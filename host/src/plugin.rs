//! One loaded plugin: a compiled, linked, validated component ready to
//! instantiate, with its manifest and identity.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::Store;

use crate::bindings::{Policy, PolicyPre};
use crate::engine::{EPOCH_TICK, Meters};
use crate::fault::{FaultKind, classify};
use crate::manifest::Manifest;
use crate::runtime::{CompileOrigin, Runtime, sha256};
use crate::sandbox::{Grant, PluginState};
use crate::stats::{PluginStats, StatsSnapshot};

/// What a policy says about itself, from its `metadata` export.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PolicyInfo {
    /// The policy's own name.
    pub name: String,
    /// The policy's own version.
    pub version: String,
    /// What the policy is for.
    pub description: String,
    /// The triggers it implements: `(code, kind, description)`.
    pub triggers: Vec<TriggerInfo>,
}

/// One trigger a policy implements.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TriggerInfo {
    /// Reason-code prefix.
    pub code: String,
    /// Rule or probabilistic.
    pub kind: crate::model::TriggerKind,
    /// What it looks for.
    pub description: String,
}

/// Why a component could not become a plugin. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly file (it does not start with the `\\0asm` magic bytes)")]
    NotWasm,
    /// A core module, which cannot implement a WIT world.
    #[error(
        "a core WebAssembly module, not a component; build the policy with \
         `cargo build --target wasm32-wasip2` (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    /// The component failed to compile.
    #[error("the component does not compile: {0:#}")]
    Compile(wasmtime::Error),
    /// Imports the capability policy refuses, each named.
    #[error("the component imports what the sandbox refuses: {0}")]
    Forbidden(String),
    /// Exports of the wrong shape, or an import of the wrong type.
    #[error("the component does not fit the handoff:policy@0.1.0 world: {0:#}")]
    World(wasmtime::Error),
    /// The manifest was refused.
    #[error("invalid manifest: {0}")]
    Manifest(#[from] crate::manifest::ManifestError),
    /// Instantiating, reading metadata or configuring failed.
    #[error("the plugin failed its trial run: {0}")]
    Trial(String),
    /// The plugin refused its configuration.
    #[error("the plugin refused its configuration: {0}")]
    Config(String),
    /// A self-test case in the manifest did not get its expected verdict.
    #[error(transparent)]
    Fixture(#[from] crate::fixtures::FixtureFailure),
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
    pub imports: Vec<crate::inspect::Import>,
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

impl From<StartFailure> for LoadError {
    fn from(failure: StartFailure) -> Self {
        if failure.config_refused {
            LoadError::Config(failure.detail)
        } else {
            LoadError::Trial(format!("{}: {}", failure.kind, failure.detail))
        }
    }
}

/// A live instance of a plugin, with the store that owns it.
pub struct Instance {
    /// The store. Discarded, never reused, after any trap.
    pub store: Store<PluginState>,
    /// Typed access to the exports.
    pub policy: Policy,
    /// Evaluations this instance has served.
    pub calls: u64,
}

impl Plugin {
    /// Compiles (or loads from the cache), links and validates `bytes` as
    /// plugin `name`, then proves it works: a trial instance reads its
    /// metadata and accepts its configuration, and every fixture case in
    /// the manifest gets its expected verdict. A plugin that cannot do that
    /// is refused here, at load, rather than failing on live work.
    pub fn load(
        runtime: &Runtime,
        name: &str,
        bytes: &[u8],
        manifest: Manifest,
    ) -> Result<Plugin, LoadError> {
        let started = std::time::Instant::now();
        check_header(bytes)?;
        let sha = sha256(bytes);
        let digest = format!("sha256:{}", hex::encode(sha));
        let engine = runtime.engine();
        let (component, compiled) = runtime.compile(bytes, &sha).map_err(LoadError::Compile)?;
        let imports = crate::inspect::imports_of(&component, engine);
        let refused: Vec<&str> = imports
            .iter()
            .filter(|i| i.grant == Grant::Refused)
            .map(|i| i.name.as_str())
            .collect();
        if !refused.is_empty() {
            return Err(LoadError::Forbidden(refused.join(", ")));
        }
        let instance_pre = runtime
            .linker()
            .instantiate_pre(&component)
            .map_err(LoadError::World)?;
        let pre = PolicyPre::new(instance_pre).map_err(LoadError::World)?;
        let mut plugin = Plugin {
            name: Arc::from(name),
            digest,
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
        let info = match trial.policy.call_metadata(&mut trial.store) {
            Ok(info) => info,
            Err(error) => {
                let state = trial.store.data();
                let output = state.capture().take();
                let (kind, detail) = classify(&error, state.limit_refused(), &output.text);
                return Err(LoadError::Trial(format!("{kind} in metadata: {detail}")));
            }
        };
        plugin.info = PolicyInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            triggers: info
                .triggers
                .into_iter()
                .map(|t| TriggerInfo {
                    code: t.code,
                    kind: t.kind.into(),
                    description: t.description,
                })
                .collect(),
        };
        drop(trial);
        crate::fixtures::check(&plugin)?;
        // Self-tests are not traffic: the totals start from zero.
        plugin.stats = PluginStats::default();
        plugin.load_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(plugin)
    }

    /// A fresh, configured instance in a store of its own. Instantiation and
    /// `configure` run under the plugin's limits like any evaluation.
    pub fn instantiate(&self) -> Result<Instance, StartFailure> {
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
    pub fn arm(&self, store: &mut Store<PluginState>) {
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
    pub fn fuel_used(&self, store: &Store<PluginState>) -> u64 {
        if !self.meters.fuel {
            return 0;
        }
        let left = store.get_fuel().unwrap_or(0);
        self.manifest.limits.fuel.saturating_sub(left)
    }

    /// The live counters.
    pub fn stats(&self) -> &PluginStats {
        &self.stats
    }

    /// A copy of the totals.
    pub fn stats_snapshot(&self) -> StatsSnapshot {
        self.stats.snapshot(&self.name)
    }
}

/// `sha256:<hex>` of `bytes`: the identity every decision records.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha256(bytes)))
}

/// Every import the capability policy refuses, by name.
/// Tells a core module and a non-wasm file apart from a component before
/// compiling, so the error says what the file actually is.
pub(crate) fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(LoadError::NotWasm);
    }
    // Bytes 4..8: version and layer. Layer 0 is a core module, 1 a component.
    if bytes[6..8] == [0, 0] {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}
