//! A policy set: the plugins that evaluate together, loaded from a
//! directory or from the reference policies embedded in the binary.
//!
//! Loading is forgiving per plugin and strict per file: one bad component or
//! manifest is rejected with its file name and reason, and every other plugin
//! still loads.

use std::path::Path;
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::Linker;

use crate::engine::{Meters, new_engine};
use crate::manifest::Manifest;
use crate::plugin::{LoadError, Plugin};
use crate::sandbox::{PluginState, new_linker};

/// The engine and linker every plugin of a process shares.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    meters: Meters,
    linker: Arc<Linker<PluginState>>,
}

impl Runtime {
    /// Creates the process-wide engine and sandbox linker, with every meter on.
    pub fn new() -> wasmtime::Result<Self> {
        Runtime::with_meters(Meters::default())
    }

    /// A runtime with chosen meters: only benchmarks measuring what metering
    /// costs should turn any off.
    pub fn with_meters(meters: Meters) -> wasmtime::Result<Self> {
        let engine = new_engine(meters)?;
        let linker = Arc::new(new_linker(&engine)?);
        Ok(Runtime {
            engine,
            meters,
            linker,
        })
    }

    /// Which meters are compiled in.
    pub fn meters(&self) -> Meters {
        self.meters
    }

    /// The shared engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The sandbox linker.
    pub fn linker(&self) -> &Linker<PluginState> {
        &self.linker
    }
}

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

/// Why a policy directory could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot read policy directory {dir}: {source}")]
pub struct DirError {
    /// The directory.
    pub dir: String,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
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
        let mut plugins = Vec::new();
        let mut disabled = Vec::new();
        let mut rejected = Vec::new();
        for source in sources {
            match load_one(runtime, &source) {
                Ok(plugin) if plugin.manifest.enabled => plugins.push(Arc::new(plugin)),
                Ok(plugin) => disabled.push(Arc::new(plugin)),
                Err((file, error)) => {
                    tracing::warn!(file, %error, "plugin rejected");
                    rejected.push(Rejection {
                        file,
                        reason: error.to_string(),
                    });
                }
            }
        }
        plugins.sort_by(|a, b| (a.manifest.order, &a.name).cmp(&(b.manifest.order, &b.name)));
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
        self.plugins
            .iter()
            .chain(&self.disabled)
            .map(|p| p.stats_snapshot())
            .collect()
    }

    /// Files that did not load, with reasons.
    pub fn rejected(&self) -> &[Rejection] {
        &self.rejected
    }
}

fn load_one(runtime: &Runtime, source: &PluginSource) -> Result<Plugin, (String, LoadError)> {
    let manifest = match &source.manifest {
        Some(text) => Manifest::parse(text)
            .map_err(|e| (format!("{}.toml", source.name), LoadError::Manifest(e)))?,
        None => Manifest::default(),
    };
    Plugin::load(
        runtime.engine(),
        runtime.meters(),
        runtime.linker(),
        &source.name,
        &source.wasm,
        manifest,
    )
    .map_err(|e| (format!("{}.wasm", source.name), e))
}

/// Reads the components and manifests of `dir`. Manifests without a
/// component come back as rejections: an operator who dropped one in
/// expects it to do something.
fn read_dir_sources(dir: &Path) -> Result<(Vec<PluginSource>, Vec<Rejection>), DirError> {
    let dir_error = |source| DirError {
        dir: dir.display().to_string(),
        source,
    };
    let mut wasm = Vec::new();
    let mut manifests = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_error)? {
        let path = entry.map_err(dir_error)?.path();
        let (Some(stem), Some(ext)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        // Editors and atomic writers leave hidden temporaries; never load them.
        if stem.starts_with('.') || !path.is_file() {
            continue;
        }
        match ext {
            "wasm" => wasm.push((stem.to_string(), path.clone())),
            "toml" => manifests.push(stem.to_string()),
            _ => {}
        }
    }
    wasm.sort();
    manifests.sort();

    let mut sources = Vec::new();
    let mut rejected = Vec::new();
    for (name, path) in &wasm {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                rejected.push(Rejection {
                    file: format!("{name}.wasm"),
                    reason: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        let manifest_path = dir.join(format!("{name}.toml"));
        let manifest = match manifests.binary_search(name) {
            Ok(_) => match std::fs::read_to_string(&manifest_path) {
                Ok(text) => Some(text),
                Err(e) => {
                    rejected.push(Rejection {
                        file: format!("{name}.toml"),
                        reason: format!("cannot read: {e}"),
                    });
                    continue;
                }
            },
            Err(_) => None,
        };
        sources.push(PluginSource {
            name: name.clone(),
            wasm: bytes,
            manifest,
        });
    }
    for name in manifests {
        if wasm.binary_search_by(|(w, _)| w.cmp(&name)).is_err() {
            rejected.push(Rejection {
                file: format!("{name}.toml"),
                reason: format!("a manifest without a component: expected {name}.wasm beside it"),
            });
        }
    }
    Ok((sources, rejected))
}
