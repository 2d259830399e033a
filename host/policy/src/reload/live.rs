//! The live policy set of a running host, and how a reload replaces it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use arc_swap::{ArcSwap, Guard};
use chrono::{DateTime, Utc};
use handoff_model::{ActivePlugin, CompileOrigin, LifecycleEvent, SignerRecord};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::sink::LifecycleSink;
use crate::claims;
use crate::component::digest_of;
use crate::loader;
use crate::plugin::Plugin;
use crate::policy_dir::{self, DirError, Unit};
use crate::policy_set::PolicySet;
use crate::runtime::Runtime;
use crate::source::{PluginSource, Rejection};

/// The policy set a running host serves, reloadable unit by unit from its
/// directory.
pub struct LivePolicies {
    runtime: Runtime,
    dir: PathBuf,
    current: ArcSwap<PolicySet>,
    registry: Mutex<Registry>,
    /// Every plugin's status as of the last reload: published, not locked,
    /// so that reading it never waits for a reload in progress.
    published: ArcSwap<Vec<PluginStatus>>,
    sink: Arc<dyn LifecycleSink>,
}

/// The reload lock, held: whoever has it is the one changing the set.
pub(super) type RegistryGuard<'a> = MutexGuard<'a, Registry>;

/// Reload bookkeeping. Its lock serialises reloads: one loader at a time,
/// never on the evaluation path.
pub(super) struct Registry {
    generation: u64,
    units: BTreeMap<String, UnitState>,
    /// The fleet generation served, once one was adopted: from then on the
    /// fleet decides what serves, not the directory.
    fleet: Option<u64>,
}

impl Registry {
    /// The content digest of `name`'s serving version.
    pub(super) fn served(&self, name: &str) -> Option<[u8; 32]> {
        self.units.get(name).and_then(|unit| unit.served)
    }

    /// `name`'s bookkeeping, made if new.
    pub(super) fn unit(&mut self, name: &str) -> &mut UnitState {
        let unit = self.units.entry(name.to_string()).or_default();
        unit.status.plugin = name.to_string();
        unit
    }

    /// Counts a new generation and returns its number.
    pub(super) fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// Records that `name` serves `serving`, from files with `content`.
    pub(super) fn serve(&mut self, name: &str, content: [u8; 32], serving: Serving) {
        let unit = self.unit(name);
        unit.served = Some(content);
        unit.failed = None;
        supersede(unit);
        unit.status.serving = Some(serving);
    }

    /// Forgets `name`, unloaded.
    pub(super) fn forget(&mut self, name: &str) {
        self.units.remove(name);
    }

    /// From now on the fleet's generation `generation` is what serves.
    pub(super) fn follow_fleet(&mut self, generation: u64) {
        self.fleet = Some(generation);
    }

    /// The fleet generation served, if one was adopted.
    pub(super) fn fleet(&self) -> Option<u64> {
        self.fleet
    }
}

#[derive(Default)]
pub(super) struct UnitState {
    status: PluginStatus,
    /// Content digest (component and manifest) of the serving version.
    served: Option<[u8; 32]>,
    /// Content digest of the last version that failed, so that an event
    /// that changed nothing does not re-run and re-report the same failure.
    failed: Option<[u8; 32]>,
}

/// What the host knows about one plugin: what serves, and what last failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PluginStatus {
    /// Plugin name.
    pub plugin: String,
    /// The version serving now, if any.
    pub serving: Option<Serving>,
    /// The most recent failed reload, kept after a later success so an
    /// operator can still see what went wrong and when; `superseded_at`
    /// says whether it is still the state of the files.
    pub last_error: Option<ReloadFailure>,
}

/// The serving version of a plugin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Serving {
    /// The policy's own version.
    pub version: String,
    /// SHA-256 of the component.
    pub digest: String,
    /// Whether its manifest enables it.
    pub enabled: bool,
    /// The generation it started serving in.
    pub since_generation: u64,
    /// When it started serving.
    pub since: DateTime<Utc>,
    /// Compiled or from the cache.
    #[serde(flatten)]
    pub compile: CompileOrigin,
    /// What the operator should know though it loaded (no manifest, a file
    /// name that is not the policy's own).
    pub warnings: Vec<String>,
    /// The signatures that counted when it was admitted.
    pub signers: Vec<handoff_trust::Signer>,
}

/// A reload that did not take effect.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReloadFailure {
    /// The file at fault.
    pub file: String,
    /// What is wrong.
    pub reason: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// When the directory next held a version that serves (a fix, or the
    /// serving files put back): from then on the failure is history, not
    /// what the files say.
    pub superseded_at: Option<DateTime<Utc>>,
}

/// What one reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// The new generation, when the live set changed.
    pub generation: Option<u64>,
    /// Plugins loaded, swapped or unloaded.
    pub changed: Vec<String>,
    /// Plugins whose new version was refused.
    pub rejected: Vec<String>,
    /// Plugins whose content had not changed.
    pub unchanged: Vec<String>,
}

/// A change staged during a reload, published with the new generation.
enum Staged {
    Load {
        plugin: Arc<Plugin>,
        previous: Option<String>,
        load_ms: f64,
        /// The unit's content digest, recorded as served once it activates.
        content: [u8; 32],
    },
    Unload {
        digest: String,
    },
}

impl LivePolicies {
    /// Loads every unit of `dir` as the first generation. Plugins that fail
    /// are reported through `sink` and in their status, like any reload.
    pub fn open(
        runtime: Runtime,
        dir: &Path,
        sink: Arc<dyn LifecycleSink>,
    ) -> Result<Arc<LivePolicies>, DirError> {
        let live = Arc::new(LivePolicies {
            runtime,
            dir: dir.to_path_buf(),
            current: ArcSwap::from_pointee(PolicySet::assemble(0, Vec::new(), Vec::new())),
            published: ArcSwap::from_pointee(Vec::new()),
            registry: Mutex::new(Registry {
                generation: 0,
                units: BTreeMap::new(),
                fleet: None,
            }),
            sink,
        });
        live.reload_all()?;
        Ok(live)
    }

    /// The directory being served.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The runtime plugins are compiled with.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The set serving now. Holding it keeps that generation alive, so a
    /// caller evaluating with it finishes on it even if a reload happens.
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// The set serving now, without taking a reference count: what an
    /// evaluator checks before every item.
    pub(crate) fn load_current(&self) -> Guard<Arc<PolicySet>> {
        self.current.load()
    }

    /// The generation serving now.
    pub fn generation(&self) -> u64 {
        self.current.load().generation()
    }

    /// Every plugin the host has seen, serving or not, by name.
    pub fn status(&self) -> Vec<PluginStatus> {
        self.published.load().as_ref().clone()
    }

    /// The serving set with `wasm` loaded as plugin `name`, with
    /// `manifest` (else the manifest `name` has in the directory, if any)
    /// and `signatures` (never the directory's: a signature covers the
    /// files it was made over, and a candidate brings its own), validated
    /// exactly as a reload would validate it but never activated:
    /// what a replay of a candidate runs. Every other plugin is the serving
    /// one, shared.
    pub fn candidate(
        &self,
        name: &str,
        wasm: Vec<u8>,
        manifest: Option<String>,
        signatures: Option<String>,
    ) -> Result<(PolicySet, Arc<Plugin>), Rejection> {
        let manifest = match manifest {
            Some(text) => Some(text),
            None => self.directory_manifest(name)?,
        };
        let source = PluginSource {
            name: name.to_string(),
            wasm,
            manifest,
            signatures,
        };
        let candidate = Arc::new(loader::load(&self.runtime, &source)?);
        let current = self.current();
        let plugins = current
            .loaded()
            .filter(|p| &*p.name != name)
            .cloned()
            .chain([candidate.clone()])
            .collect();
        Ok((PolicySet::assemble(0, plugins, Vec::new()), candidate))
    }

    /// The manifest the directory holds for `name`, if any.
    fn directory_manifest(&self, name: &str) -> Result<Option<String>, Rejection> {
        Ok(
            match policy_dir::read_unit(&self.dir, name, self.runtime.limits()) {
                Unit::Present(source) => source.manifest,
                Unit::Unreadable(rejection) => return Err(rejection),
                Unit::ManifestOnly | Unit::Absent => {
                    let path = self.dir.join(format!("{name}.toml"));
                    match crate::files::read_regular(
                        &path,
                        self.runtime.limits().max_manifest_bytes,
                    ) {
                        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
                        Err(_) => None,
                    }
                }
            },
        )
    }

    /// Reloads every unit in the directory, and unloads any that vanished.
    pub fn reload_all(&self) -> Result<ReloadOutcome, DirError> {
        let mut names = policy_dir::unit_names(&self.dir)?;
        let mut registry = self.registry();
        if follows_fleet(&registry) {
            return Ok(ReloadOutcome::default());
        }
        names.extend(registry.units.keys().cloned());
        Ok(self.reload_locked(&mut registry, names))
    }

    /// Reloads the named units: each is read, validated and, if it passes,
    /// swapped in; one new generation covers every change.
    pub fn reload<I, S>(&self, names: I) -> ReloadOutcome
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let names = names.into_iter().map(Into::into).collect();
        let mut registry = self.registry();
        if follows_fleet(&registry) {
            return ReloadOutcome::default();
        }
        self.reload_locked(&mut registry, names)
    }

    /// Refuses staged versions that claim a policy name another file
    /// already has (see `claims`): a serving holder keeps it; between two
    /// newcomers the file named after the policy wins, then the first.
    fn resolve_claims(
        &self,
        current: &PolicySet,
        registry: &mut Registry,
        staged: Vec<(String, Staged)>,
        events: &mut Vec<LifecycleEvent>,
        outcome: &mut ReloadOutcome,
    ) -> Vec<(String, Staged)> {
        let unloading: BTreeSet<&str> = staged
            .iter()
            .filter(|(_, change)| matches!(change, Staged::Unload { .. }))
            .map(|(name, _)| name.as_str())
            .collect();
        let serving_holder = |name: &str, claimed: &str| {
            current
                .loaded()
                .find(|p| {
                    &*p.name != name
                        && claims::claims_name(p)
                        && p.info.name == claimed
                        && !unloading.contains(&*p.name)
                        && !staged.iter().any(|(n, _)| n == &*p.name)
                })
                .map(|p| p.name.to_string())
        };
        let mut kept: Vec<(String, Staged)> = Vec::with_capacity(staged.len());
        let mut refused: Vec<(String, Arc<Plugin>, [u8; 32], String)> = Vec::new();
        for (name, change) in &staged {
            let Staged::Load {
                plugin, content, ..
            } = change
            else {
                continue;
            };
            if !claims::claims_name(plugin) {
                continue;
            }
            if let Some(holder) = serving_holder(name, &plugin.info.name) {
                refused.push((name.clone(), plugin.clone(), *content, holder));
            }
        }
        for (name, change) in staged {
            if refused.iter().any(|(n, ..)| *n == name) {
                continue;
            }
            let Staged::Load {
                plugin, content, ..
            } = &change
            else {
                kept.push((name, change));
                continue;
            };
            let rival = kept.iter().position(|(_, other)| {
                matches!(other, Staged::Load { plugin: p, .. }
                    if claims::claims_name(p) && p.info.name == plugin.info.name)
            });
            let rival = rival.filter(|_| claims::claims_name(plugin));
            match rival {
                None => kept.push((name, change)),
                Some(at) => {
                    let Staged::Load {
                        plugin: rival_plugin,
                        content: rival_content,
                        ..
                    } = &kept[at].1
                    else {
                        unreachable!("only loads are rivals")
                    };
                    if claims::prefers(plugin, rival_plugin) {
                        refused.push((
                            kept[at].0.clone(),
                            rival_plugin.clone(),
                            *rival_content,
                            name.clone(),
                        ));
                        kept[at] = (name, change);
                    } else {
                        refused.push((name, plugin.clone(), *content, kept[at].0.clone()));
                    }
                }
            }
        }
        for (name, plugin, content, holder) in refused {
            let unit = registry.units.entry(name.clone()).or_default();
            unit.failed = Some(content);
            let serving = current.get(&name).map(|p| p.digest.clone());
            let rejection = claims::duplicate(&plugin, &holder);
            events.push(reject(
                unit,
                rejection,
                Some(plugin.digest.clone()),
                serving,
            ));
            outcome.rejected.push(name);
        }
        kept
    }

    pub(super) fn registry(&self) -> RegistryGuard<'_> {
        // A panic while reloading cannot leave the registry half-updated in
        // a way that matters: the live set is only ever replaced whole.
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Where lifecycle events go.
    pub(super) fn sink(&self) -> &dyn LifecycleSink {
        &*self.sink
    }

    pub(super) fn reload_locked(
        &self,
        registry: &mut Registry,
        names: BTreeSet<String>,
    ) -> ReloadOutcome {
        let current = self.current.load_full();
        let mut outcome = ReloadOutcome::default();
        let mut staged: Vec<(String, Staged)> = Vec::new();
        let mut events = Vec::new();
        for name in names {
            let unit = registry.units.entry(name.clone()).or_default();
            unit.status.plugin.clone_from(&name);
            let serving = current.get(&name).map(|p| p.digest.clone());
            match policy_dir::read_unit(&self.dir, &name, self.runtime.limits()) {
                Unit::Present(source) => {
                    let content = content_digest(&source);
                    if unit.served == Some(content) && unit.failed.is_some() {
                        // The serving files are back (a bad manifest undone,
                        // say): the failure no longer describes the files,
                        // and the same bad version must be reported again
                        // if it returns.
                        unit.failed = None;
                        supersede(unit);
                        tracing::info!(plugin = name, "the serving version's files are back");
                    }
                    if unit.served == Some(content) || unit.failed == Some(content) {
                        outcome.unchanged.push(name);
                        continue;
                    }
                    let started = Instant::now();
                    match loader::load(&self.runtime, &source) {
                        Ok(plugin) => {
                            if let CompileOrigin::Recompiled { reason } = &plugin.compiled {
                                events.push(LifecycleEvent::CacheRecompiled {
                                    plugin: name.clone(),
                                    digest: plugin.digest.clone(),
                                    reason: reason.clone(),
                                });
                            }
                            staged.push((
                                name,
                                Staged::Load {
                                    plugin: Arc::new(plugin),
                                    previous: serving,
                                    load_ms: started.elapsed().as_secs_f64() * 1e3,
                                    content,
                                },
                            ));
                        }
                        Err(rejection) => {
                            unit.failed = Some(content);
                            let digest = Some(digest_of(&source.wasm));
                            events.push(reject(unit, rejection, digest, serving));
                            outcome.rejected.push(name);
                        }
                    }
                }
                Unit::Unreadable(rejection) => {
                    unit.failed = None;
                    events.push(reject(unit, rejection, None, serving));
                    outcome.rejected.push(name);
                }
                missing @ (Unit::Absent | Unit::ManifestOnly) => {
                    unit.served = None;
                    unit.failed = None;
                    if let Some(digest) = serving {
                        staged.push((name.clone(), Staged::Unload { digest }));
                    }
                    if matches!(missing, Unit::ManifestOnly) {
                        // Not a failure: a manifest is often written before
                        // its component, and the component's arrival is
                        // what loads the unit.
                        tracing::info!(plugin = name, "a manifest waits for {name}.wasm");
                    }
                    // Nothing serves and nothing failed: nothing to report.
                    if unit.status.serving.is_none() && unit.status.last_error.is_none() {
                        registry.units.remove(&name);
                    }
                }
            }
        }

        let staged = self.resolve_claims(&current, registry, staged, &mut events, &mut outcome);
        let rejected_now = |registry: &Registry| -> Vec<Rejection> {
            registry
                .units
                .values()
                .filter(|unit| unit.failed.is_some())
                .filter_map(|unit| unit.status.last_error.as_ref())
                .map(|failure| Rejection {
                    file: failure.file.clone(),
                    reason: failure.reason.clone(),
                })
                .collect()
        };
        if staged.is_empty() {
            let rejected = rejected_now(registry);
            if rejected.as_slice() != current.rejected() {
                // Same plugins, same generation: only what failed changed.
                let plugins = current.loaded().cloned().collect();
                let set = PolicySet::assemble(current.generation(), plugins, rejected);
                self.current.store(Arc::new(set));
            }
        } else {
            registry.generation += 1;
            let generation = registry.generation;
            let mut plugins: BTreeMap<String, Arc<Plugin>> = current
                .loaded()
                .map(|p| (p.name.to_string(), p.clone()))
                .collect();
            let now = Utc::now();
            for (name, change) in staged {
                let unit = registry.units.entry(name.clone()).or_default();
                match change {
                    Staged::Load {
                        plugin,
                        previous,
                        load_ms,
                        content,
                    } => {
                        unit.served = Some(content);
                        unit.failed = None;
                        supersede(unit);
                        unit.status.serving = Some(Serving {
                            version: plugin.info.version.clone(),
                            digest: plugin.digest.clone(),
                            enabled: plugin.manifest.enabled,
                            since_generation: generation,
                            since: now,
                            compile: plugin.compiled.clone(),
                            warnings: plugin.warnings.clone(),
                            signers: plugin.trust.signers(),
                        });
                        events.push(loaded_event(&plugin, previous, generation, load_ms));
                        plugins.insert(name.clone(), plugin);
                    }
                    Staged::Unload { digest } => {
                        unit.status.serving = None;
                        plugins.remove(&name);
                        events.push(LifecycleEvent::Unloaded {
                            plugin: name.clone(),
                            digest,
                            generation,
                        });
                    }
                }
                outcome.changed.push(name);
            }
            let rejected = rejected_now(registry);
            let set = PolicySet::assemble(generation, plugins.into_values().collect(), rejected);
            events.push(self.generation_event(&set));
            self.current.store(Arc::new(set));
            outcome.generation = Some(generation);
        }

        self.finish(registry, &events);
        outcome
    }

    /// What the audit trail records of a new generation: every plugin in
    /// it, with its files' digests and the signers that vouched for them.
    pub(super) fn generation_event(&self, set: &PolicySet) -> LifecycleEvent {
        LifecycleEvent::Generation {
            generation: set.generation(),
            activation: self.runtime.trust().activation().name().to_string(),
            plugins: set
                .loaded()
                .map(|plugin| ActivePlugin {
                    plugin: plugin.name.to_string(),
                    digest: plugin.digest.clone(),
                    manifest_digest: plugin.manifest_digest.clone(),
                    signers: plugin
                        .trust
                        .signers()
                        .into_iter()
                        .map(|signer| SignerRecord {
                            key: signer.key,
                            holder: signer.holder,
                            role: signer.role.name().to_string(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Replaces the serving set.
    pub(super) fn store_set(&self, set: PolicySet) {
        self.current.store(Arc::new(set));
    }

    /// Publishes every plugin's status and reports `events`: the end of
    /// every change to the set, the lock still held so that statuses and
    /// events come out in the order the changes were made.
    pub(super) fn finish(&self, registry: &Registry, events: &[LifecycleEvent]) {
        self.published.store(Arc::new(
            registry
                .units
                .values()
                .map(|unit| unit.status.clone())
                .collect(),
        ));
        for event in events {
            match event {
                LifecycleEvent::Rejected { .. } => tracing::warn!(%event, "policy reload"),
                _ => tracing::info!(%event, "policy reload"),
            }
            self.sink.record(event);
        }
    }
}

/// Whether the fleet decides what serves: a directory change is then
/// noted and left alone.
fn follows_fleet(registry: &Registry) -> bool {
    match registry.fleet {
        Some(generation) => {
            tracing::warn!(
                generation,
                "the policy directory changed, but this node serves the fleet's generation \
                 {generation}: publish changes with `handoff publish`"
            );
            true
        }
        None => false,
    }
}

/// Marks the unit's last failure as no longer describing its files.
fn supersede(unit: &mut UnitState) {
    if let Some(failure) = &mut unit.status.last_error
        && failure.superseded_at.is_none()
    {
        failure.superseded_at = Some(Utc::now());
    }
}

/// Records a refused version in the unit's status and describes it.
pub(super) fn reject(
    unit: &mut UnitState,
    rejection: Rejection,
    digest: Option<String>,
    still_serving: Option<String>,
) -> LifecycleEvent {
    unit.status.last_error = Some(ReloadFailure {
        file: rejection.file.clone(),
        reason: rejection.reason.clone(),
        at: Utc::now(),
        superseded_at: None,
    });
    LifecycleEvent::Rejected {
        plugin: unit.status.plugin.clone(),
        file: rejection.file,
        reason: rejection.reason,
        digest,
        still_serving,
    }
}

pub(super) fn loaded_event(
    plugin: &Plugin,
    previous: Option<String>,
    generation: u64,
    load_ms: f64,
) -> LifecycleEvent {
    let plugin_name = plugin.name.to_string();
    let version = plugin.info.version.clone();
    let digest = plugin.digest.clone();
    let compile = plugin.compiled.clone();
    match previous {
        Some(previous_digest) => LifecycleEvent::Swapped {
            plugin: plugin_name,
            version,
            digest,
            previous_digest,
            generation,
            compile,
            load_ms,
        },
        None => LifecycleEvent::Loaded {
            plugin: plugin_name,
            version,
            digest,
            generation,
            compile,
            load_ms,
        },
    }
}

/// Identifies a unit's content: the component, its manifest and its
/// signatures together, since changing any changes what serves or who
/// vouched for it.
pub(super) fn content_digest(source: &PluginSource) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(Sha256::digest(&source.wasm));
    match &source.manifest {
        Some(text) => {
            hasher.update([1]);
            hasher.update(text.as_bytes());
        }
        None => hasher.update([0]),
    }
    // Signatures too: signing a refused version must retry it, and a new
    // signer of a serving one is a change the audit trail should show.
    match &source.signatures {
        Some(text) => {
            hasher.update([1]);
            hasher.update(Sha256::digest(text.as_bytes()));
        }
        None => hasher.update([0]),
    }
    hasher.finalize().into()
}
