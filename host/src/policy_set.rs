//! A policy set: the plugins that evaluate together, loaded from a
//! directory or from the reference policies embedded in the binary.
//!
//! Loading is forgiving per plugin and strict per file: one bad component or
//! manifest is rejected with its file name and reason, and every other plugin
//! still loads.

use std::path::Path;
use std::sync::Arc;

use crate::manifest::Manifest;
use crate::plugin::{LoadError, Plugin};
use crate::policy_dir::{self, DirError, Unit};
use crate::runtime::Runtime;

/// A component and its manifest, before loading.
#[derive(Debug, Clone)]
pub struct PluginSource {
    /// The plugin's name: the component's file name without `.wasm`.
    pub name: String,
    /// The component bytes.
    pub wasm: Vec<u8>,
    /// The manifest text, when there is one.
    pub manifest: Option<String>,
}

/// A file that did not become a plugin, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    /// The file at fault, as the operator named it.
    pub file: String,
    /// What is wrong, in words that say what to fix.
    pub reason: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.reason)
    }
}

/// The plugins that evaluate together, in evaluation order.
pub struct PolicySet {
    generation: u64,
    plugins: Vec<Arc<Plugin>>,
    disabled: Vec<Arc<Plugin>>,
    rejected: Vec<Rejection>,
}

impl PolicySet {
    /// Loads every source, keeping those that pass and recording the rest.
    pub fn load(runtime: &Runtime, sources: Vec<PluginSource>, generation: u64) -> PolicySet {
        let mut loaded = Vec::new();
        let mut rejected = Vec::new();
        for source in sources {
            match load_one(runtime, &source) {
                Ok(plugin) => loaded.push(Arc::new(plugin)),
                Err((file, error)) => {
                    tracing::warn!(file, %error, "plugin rejected");
                    rejected.push(Rejection {
                        file,
                        reason: error.to_string(),
                    });
                }
            }
        }
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
        let (mut plugins, mut disabled): (Vec<_>, Vec<_>) =
            loaded.into_iter().partition(|p| p.manifest.enabled);
        let evaluation_order = |a: &Arc<Plugin>, b: &Arc<Plugin>| {
            (a.manifest.order, &a.name).cmp(&(b.manifest.order, &b.name))
        };
        plugins.sort_by(evaluation_order);
        disabled.sort_by(evaluation_order);
        PolicySet {
            generation,
            plugins,
            disabled,
            rejected,
        }
    }

    /// Loads `dir`: every `NAME.wasm`, each with its optional `NAME.toml`.
    pub fn load_dir(runtime: &Runtime, dir: &Path, generation: u64) -> Result<PolicySet, DirError> {
        let (sources, mut orphans) = read_dir_sources(dir)?;
        let mut set = PolicySet::load(runtime, sources, generation);
        set.rejected.append(&mut orphans);
        Ok(set)
    }

    /// The reference policies built into the binary.
    pub fn embedded(runtime: &Runtime) -> PolicySet {
        PolicySet::load(runtime, crate::embedded::sources(), 1)
    }

    /// The generation number every decision of this set records.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every loaded plugin, enabled ones first.
    pub fn loaded(&self) -> impl Iterator<Item = &Arc<Plugin>> {
        self.plugins.iter().chain(&self.disabled)
    }

    /// The loaded plugin called `name`, enabled or not.
    pub fn get(&self, name: &str) -> Option<&Arc<Plugin>> {
        self.loaded().find(|p| &*p.name == name)
    }

    /// Enabled plugins, in evaluation order.
    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    /// Plugins that loaded but are disabled by their manifest.
    pub fn disabled(&self) -> &[Arc<Plugin>] {
        &self.disabled
    }

    /// Running totals for every loaded plugin, enabled ones first.
    pub fn stats(&self) -> Vec<crate::stats::StatsSnapshot> {
        self.loaded().map(|p| p.stats_snapshot()).collect()
    }

    /// Files that did not load, with reasons.
    pub fn rejected(&self) -> &[Rejection] {
        &self.rejected
    }
}

/// Loads one source; on failure, names the file at fault.
pub fn load_one(runtime: &Runtime, source: &PluginSource) -> Result<Plugin, (String, LoadError)> {
    let manifest = match &source.manifest {
        Some(text) => Manifest::parse(text)
            .map_err(|e| (format!("{}.toml", source.name), LoadError::Manifest(e)))?,
        None => Manifest::default(),
    };
    Plugin::load(runtime, &source.name, &source.wasm, manifest).map_err(|e| {
        // A refused configuration or a failing fixture is the manifest's
        // doing, not the component's.
        let file = match e {
            LoadError::Fixture(_) | LoadError::Config(_) | LoadError::Manifest(_) => {
                format!("{}.toml", source.name)
            }
            _ => format!("{}.wasm", source.name),
        };
        (file, e)
    })
}

/// Reads every unit of `dir`. Manifests without a component come back as
/// rejections: an operator who dropped one in expects it to do something.
pub fn read_dir_sources(dir: &Path) -> Result<(Vec<PluginSource>, Vec<Rejection>), DirError> {
    let mut sources = Vec::new();
    let mut rejected = Vec::new();
    for name in policy_dir::unit_names(dir)? {
        match policy_dir::read_unit(dir, &name) {
            Unit::Present(source) => sources.push(source),
            Unit::Unreadable(rejection) => rejected.push(rejection),
            Unit::ManifestOnly => rejected.push(policy_dir::orphan_manifest(&name)),
            Unit::Absent => {}
        }
    }
    Ok((sources, rejected))
}
