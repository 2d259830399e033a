//! A policy set: the plugins that evaluate together, loaded from a
//! directory or from the reference policies embedded in the binary.
//!
//! Loading is forgiving per plugin and strict per file: one bad component or
//! manifest is rejected with its file name and reason, and every other plugin
//! still loads.

use std::path::Path;
use std::sync::Arc;

use handoff_model::LifecycleEvent;

use crate::claims;
use crate::loader;
use crate::plugin::Plugin;
use crate::policy_dir::{self, DirError};
use crate::runtime::Runtime;
use crate::source::{PluginSource, Rejection};

/// The plugins that evaluate together, in evaluation order.
pub struct PolicySet {
    generation: u64,
    plugins: Vec<Arc<Plugin>>,
    shadows: Vec<Arc<Plugin>>,
    disabled: Vec<Arc<Plugin>>,
    rejected: Vec<Rejection>,
}

impl PolicySet {
    /// Loads every source, keeping those that pass and recording the rest.
    pub fn load(runtime: &Runtime, sources: Vec<PluginSource>, generation: u64) -> PolicySet {
        let mut loaded = Vec::new();
        let mut rejected = Vec::new();
        for source in sources {
            match loader::load(runtime, &source) {
                Ok(plugin) => loaded.push(plugin),
                Err(rejection) => rejected.push(rejection),
            }
        }
        let (loaded, duplicates) = claims::refuse_duplicates(loaded);
        rejected.extend(duplicates);
        for rejection in &rejected {
            tracing::warn!(
                file = rejection.file,
                reason = rejection.reason,
                "plugin rejected"
            );
        }
        let loaded = loaded.into_iter().map(Arc::new).collect();
        PolicySet::assemble(generation, loaded, rejected)
    }

    /// A set of already loaded plugins: how a reload builds the next
    /// generation, sharing every unchanged plugin (and its warm instances
    /// and totals) with the previous one.
    pub fn assemble(
        generation: u64,
        loaded: Vec<Arc<Plugin>>,
        rejected: Vec<Rejection>,
    ) -> PolicySet {
        let (enabled, mut disabled): (Vec<_>, Vec<_>) =
            loaded.into_iter().partition(|p| p.manifest.enabled);
        let (mut shadows, mut plugins): (Vec<_>, Vec<_>) = enabled
            .into_iter()
            .partition(|p| p.manifest.mode == crate::manifest::Mode::Shadow);
        let evaluation_order = |a: &Arc<Plugin>, b: &Arc<Plugin>| {
            (a.manifest.order, &a.name).cmp(&(b.manifest.order, &b.name))
        };
        plugins.sort_by(evaluation_order);
        shadows.sort_by(evaluation_order);
        disabled.sort_by(evaluation_order);
        PolicySet {
            generation,
            plugins,
            shadows,
            disabled,
            rejected,
        }
    }

    /// Loads `dir`: every `NAME.wasm`, each with its optional `NAME.toml`.
    pub fn load_dir(runtime: &Runtime, dir: &Path, generation: u64) -> Result<PolicySet, DirError> {
        let (sources, mut orphans) = policy_dir::read_sources(dir, runtime.limits())?;
        let mut set = PolicySet::load(runtime, sources, generation);
        set.rejected.append(&mut orphans);
        Ok(set)
    }

    /// The generation number every decision of this set records.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every loaded plugin: enforcing, then shadow, then disabled.
    pub fn loaded(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.plugins
            .iter()
            .chain(&self.shadows)
            .chain(&self.disabled)
    }

    /// The loaded plugin called `name`, enabled or not.
    pub fn get(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.loaded().find(|p| &*p.name == name)
    }

    /// Enabled enforcing plugins, in evaluation order: the ones that decide.
    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    /// Enabled plugins running in shadow, in evaluation order: recorded,
    /// never deciding.
    pub fn shadows(&self) -> &[Arc<Plugin>] {
        &self.shadows
    }

    /// Plugins that loaded but are disabled by their manifest.
    pub fn disabled(&self) -> &[Arc<Plugin>] {
        &self.disabled
    }

    /// Running totals for every loaded plugin, enabled ones first.
    pub fn stats(&self) -> Vec<crate::StatsSnapshot> {
        self.loaded().map(|p| p.stats_snapshot()).collect()
    }

    /// Files that did not load, with reasons.
    pub fn rejected(&self) -> &[Rejection] {
        &self.rejected
    }

    /// What loading this set in one go amounts to: `loaded` for every
    /// plugin (enabled or not), `rejected` for every file that did not load.
    /// A host that loads once at start (`handoff eval`) records these, so
    /// its audit trail says which versions decided, like a watching host's
    /// does.
    pub fn lifecycle_events(&self) -> Vec<LifecycleEvent> {
        let loaded = self.loaded().map(|plugin| LifecycleEvent::Loaded {
            plugin: plugin.name.to_string(),
            version: plugin.info.version.clone(),
            digest: plugin.digest.clone(),
            generation: self.generation,
            compile: plugin.compiled.clone(),
            load_ms: plugin.load_ms,
        });
        let rejected = self.rejected.iter().map(|rejection| {
            let plugin = Path::new(&rejection.file).file_stem().map_or_else(
                || rejection.file.clone(),
                |s| s.to_string_lossy().into_owned(),
            );
            LifecycleEvent::Rejected {
                plugin,
                file: rejection.file.clone(),
                reason: rejection.reason.clone(),
                digest: None,
                still_serving: None,
            }
        });
        loaded.chain(rejected).collect()
    }
}
