//! One compiled plugin: a component checked against the sandbox and the
//! contract, linked, and trial-run for its metadata, ready to instantiate.
//! Whether it may serve (its fixtures) is the loader's question.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use handoff_model::{CompileOrigin, FaultKind, TriggerKind};
use wasmtime::Store;

use crate::bindings::{Calls, Contract, Exports};
use crate::component::{
    ComponentError, Import, check_contract, check_header, digest_text, imports_of, refused, sha256,
};
use crate::engine::{EPOCH_TICK, Meters};
use crate::manifest::Manifest;
use crate::output_check;
use crate::runtime::Runtime;
use crate::sandbox::PluginState;
use crate::snapshot::{Snapshot, snapshot};
use crate::stats::{PluginStats, StatsSnapshot};
use crate::trap::classify;

/// The largest component the host snapshots after `configure`. A
/// snapshot costs two more compiles at load (the instrumented copy and the
/// snapshot itself), which for a Rust policy is a few hundred milliseconds
/// and for an interpreter-sized component half a minute.
pub const SNAPSHOT_MAX_COMPONENT_BYTES: usize = 4 << 20;

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
    /// Built for another version of the contract.
    #[error("the component's contract version is wrong: {0}")]
    Version(String),
    /// Imports the capability policy refuses, each named.
    #[error("the component imports what the sandbox refuses: {0}")]
    Forbidden(String),
    /// Exports of the wrong shape, or an import of the wrong type.
    #[error("the component does not fit the handoff:policy@0.1.0 world: {0:#}")]
    World(wasmtime::Error),
    /// Instantiating, reading metadata or configuring failed.
    #[error("the plugin failed its trial run: {kind}{detail}")]
    Trial {
        /// The fault, as it would be recorded live.
        kind: FaultKind,
        /// Where and what (starting with `: ` or ` in metadata: `).
        detail: String,
    },
    /// The plugin refused its configuration.
    #[error("the plugin refused its configuration: {0}")]
    Config(String),
    /// What the plugin says about itself breaks the contract.
    #[error("the plugin's metadata is invalid: {0}")]
    Metadata(String),
}

impl PluginError {
    /// Whether the trial ran out of wall-clock time: the one failure a busy
    /// machine can cause (see [`crate::busy_machine`]).
    pub(crate) fn missed_deadline(&self) -> bool {
        matches!(
            self,
            PluginError::Trial {
                kind: FaultKind::DeadlineExceeded,
                ..
            }
        )
    }
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
    /// What an operator should know about this version though it loaded:
    /// no manifest, or a file name that is not the policy's own.
    pub warnings: Vec<String>,
    /// What the trust gate found: the signatures, which count, and whether
    /// the activation policy and the lock are met. Kept so that the
    /// serving version's signers are shown and audited, not re-derived.
    pub trust: handoff_trust::Examination,
    /// SHA-256 of the manifest it serves with (`sha256:<hex>`), when it has
    /// one: with `digest`, exactly which files a signature or lock covers.
    pub manifest_digest: Option<String>,
    /// SHA-256 of the component bytes.
    sha: [u8; 32],
    config: Arc<BTreeMap<String, String>>,
    exports: Exports,
    /// The component after `configure`, when it could be snapshotted: what
    /// every new instance starts from.
    snapshot: Option<Snapshot>,
    /// Why there is no snapshot, when making one failed.
    pub snapshot_refused: Option<String>,
    meters: Meters,
    stats: PluginStats,
    /// Whether an instance's exports were checked against the capped
    /// result types; every call after that skips the check.
    types_checked: AtomicBool,
    /// Warm evaluations so far, for picking the `fresh-sample` share.
    warm_runs: AtomicU64,
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
            PluginError::Trial {
                kind: failure.kind,
                detail: format!(": {}", failure.detail),
            }
        }
    }
}

/// A live instance of a plugin, with the store that owns it.
pub(crate) struct Instance {
    /// The store. Discarded, never reused, after any trap.
    pub(crate) store: Store<PluginState>,
    /// The exports the host calls.
    pub(crate) calls: Calls,
    /// Evaluations this instance has served.
    pub(crate) served: u64,
}

impl Plugin {
    /// The contract version the plugin was built for: what its item is
    /// lowered as, and what `inspect` and the policy list report.
    pub fn contract(&self) -> Contract {
        self.exports.contract()
    }
}

impl Plugin {
    /// Compiles (or loads from the cache), checks and links `bytes` as
    /// plugin `name`. Its metadata is read by [`Plugin::trial`].
    pub(crate) fn compile(
        runtime: &Runtime,
        name: &str,
        bytes: &[u8],
        manifest: Manifest,
    ) -> Result<Plugin, PluginError> {
        check_header(bytes)?;
        let sha = sha256(bytes);
        let (component, compiled) = runtime.compile(bytes, &sha).map_err(ComponentError::from)?;
        let imports = imports_of(&component, runtime.engine());
        check_contract(&imports).map_err(PluginError::Version)?;
        let forbidden: Vec<&str> = refused(&imports).map(|i| i.name.as_str()).collect();
        if !forbidden.is_empty() {
            return Err(PluginError::Forbidden(forbidden.join(", ")));
        }
        let instance_pre = runtime
            .linker()
            .instantiate_pre(&component)
            .map_err(PluginError::World)?;
        let exports = Exports::new(instance_pre).map_err(PluginError::World)?;
        let plugin = Plugin {
            name: Arc::from(name),
            digest: digest_text(&sha),
            sha,
            config: Arc::new(manifest.config.clone()),
            compiled,
            load_ms: 0.0,
            imports,
            warnings: Vec::new(),
            trust: handoff_trust::Examination::default(),
            manifest_digest: None,
            manifest,
            info: PolicyInfo {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                triggers: Vec::new(),
            },
            exports,
            snapshot: None,
            snapshot_refused: None,
            meters: runtime.meters(),
            stats: PluginStats::default(),
            types_checked: AtomicBool::new(false),
            warm_runs: AtomicU64::new(0),
        };
        Ok(plugin)
    }

    /// Trial-runs the plugin: an instance accepts its configuration and
    /// reads its metadata, under the plugin's limits. A component that
    /// cannot do that is refused at load rather than failing on live work.
    pub(crate) fn trial(&mut self) -> Result<(), PluginError> {
        let mut trial = self.instantiate()?;
        self.arm(&mut trial.store);
        self.info = match trial.calls.metadata(&mut trial.store) {
            Ok(info) => {
                let info = info.into_info().map_err(|over| PluginError::Trial {
                    kind: FaultKind::OutputTooLarge,
                    detail: format!(" in metadata: {over}"),
                })?;
                output_check::policy_info(&info).map_err(PluginError::Metadata)?;
                info
            }
            Err(error) => {
                let state = trial.store.data();
                log_trial_output(&self.name, &state.capture().take().text);
                let (kind, detail) = classify(&error, state.limit_refused());
                return Err(PluginError::Trial {
                    kind,
                    detail: format!(" in metadata: {detail}"),
                });
            }
        };
        Ok(())
    }

    /// Snapshots the component after `configure` (see [`crate::snapshot`]),
    /// so that new instances start configured. When that is impossible the
    /// plugin keeps running `configure` live and the reason is kept.
    pub(crate) fn take_snapshot(&mut self, runtime: &Runtime, wasm: &[u8]) {
        if wasm.len() > SNAPSHOT_MAX_COMPONENT_BYTES {
            self.snapshot = None;
            self.snapshot_refused = Some(format!(
                "the component is over {} MiB: toolchains that build components that large \
                 (componentize-py, componentize-js) snapshot their initialised interpreter \
                 already, and two more compiles of it would triple its load time",
                SNAPSHOT_MAX_COMPONENT_BYTES >> 20
            ));
            return;
        }
        let made = snapshot(runtime, wasm, &self.config, self.manifest.limits, |store| {
            self.arm(store)
        });
        match made {
            Ok(made) => {
                self.snapshot = Some(made);
                self.snapshot_refused = None;
            }
            Err(error) => {
                tracing::info!(plugin = %self.name, %error, "serving without a configured snapshot");
                self.snapshot = None;
                self.snapshot_refused = Some(error.to_string());
            }
        }
    }

    /// Stops instantiating from the snapshot: for a snapshot that did not
    /// decide as the live component does.
    pub(crate) fn drop_snapshot(&mut self, why: String) {
        self.snapshot = None;
        self.snapshot_refused = Some(why);
    }

    /// The digest of the snapshot new instances start from, if any.
    pub fn snapshot_digest(&self) -> Option<&str> {
        self.snapshot.as_ref().map(|s| s.digest.as_str())
    }

    /// A fresh, configured instance in a store of its own. Instantiation and
    /// `configure` run under the plugin's limits like any evaluation; an
    /// instance of the snapshot is configured already and skips it.
    pub(crate) fn instantiate(&self) -> Result<Instance, StartFailure> {
        self.stats.record_instance();
        let state = PluginState::new(self.config.clone(), self.manifest.limits);
        let exports = self.snapshot.as_ref().map_or(&self.exports, |s| &s.exports);
        let mut store = Store::new(exports.engine(), state);
        store.limiter(|state| state);
        self.arm(&mut store);
        let failed = |store: &Store<PluginState>, error: wasmtime::Error| {
            let state = store.data();
            log_trial_output(&self.name, &state.capture().take().text);
            let (kind, detail) = classify(&error, state.limit_refused());
            StartFailure {
                kind,
                detail,
                config_refused: false,
            }
        };
        let calls = match exports.instantiate(&mut store) {
            Ok(calls) => calls,
            Err(error) => return Err(failed(&store, error)),
        };
        if !self.types_checked.load(Ordering::Relaxed) {
            if let Err(error) = calls.check_types(&store) {
                return Err(StartFailure {
                    kind: FaultKind::InvalidVerdict,
                    detail: format!("the exports do not have the contract's types: {error:#}"),
                    config_refused: false,
                });
            }
            self.types_checked.store(true, Ordering::Relaxed);
        }
        if self.snapshot.is_some() {
            return Ok(Instance {
                store,
                calls,
                served: 0,
            });
        }
        match calls.configure(&mut store) {
            Ok(Ok(())) => Ok(Instance {
                store,
                calls,
                served: 0,
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

    /// Keeps this plugin's compiled code in the runtime's artifact cache:
    /// for a version that passed validation.
    pub(crate) fn remember(&self, runtime: &Runtime) {
        runtime.remember(&self.sha, self.exports.component());
        if let Some(snapshot) = &self.snapshot {
            snapshot.remember(runtime);
        }
    }

    /// Whether this warm evaluation is one of the manifest's `fresh-sample`
    /// share, to be checked on a fresh instance: every n-th, n = 1 / share.
    pub(crate) fn sample_fresh(&self) -> bool {
        let share = self.manifest.fresh_sample;
        if share <= 0.0 {
            return false;
        }
        let every = (1.0 / share).round().max(1.0) as u64;
        (self.warm_runs.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(every)
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

/// What a plugin wrote before it failed to start, for the person debugging
/// it: to the host's debug log, escaped, never into a decision.
fn log_trial_output(plugin: &str, output: &str) {
    if !output.is_empty() {
        tracing::debug!(plugin, output = ?output, "plugin output before it failed to start");
    }
}
