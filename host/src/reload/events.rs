//! Policy lifecycle events: what changed in the live policy set, and why a
//! version was refused.

use serde::Serialize;

use crate::policy_set::PolicySet;
use crate::runtime::CompileOrigin;

/// One change (or refused change) to the live policy set.
///
/// Serialized with an `event` tag, so a log of them reads as JSON Lines of
/// `{"event": "swapped", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum LifecycleEvent {
    /// A plugin that was not serving now serves.
    Loaded {
        /// Plugin name.
        plugin: String,
        /// The policy's own version.
        version: String,
        /// SHA-256 of the component.
        digest: String,
        /// The generation it first serves in.
        generation: u64,
        /// Compiled or from the cache.
        #[serde(flatten)]
        compile: CompileOrigin,
        /// Time to read, compile or load, validate and test it.
        load_ms: f64,
    },
    /// A new version of a serving plugin replaced the old one.
    Swapped {
        /// Plugin name.
        plugin: String,
        /// The new version's own version string.
        version: String,
        /// SHA-256 of the new component.
        digest: String,
        /// SHA-256 of the component it replaced.
        previous_digest: String,
        /// The generation the new version first serves in.
        generation: u64,
        /// Compiled or from the cache.
        #[serde(flatten)]
        compile: CompileOrigin,
        /// Time to read, compile or load, validate and test it.
        load_ms: f64,
    },
    /// A version failed validation and does not serve.
    Rejected {
        /// Plugin name.
        plugin: String,
        /// The file at fault.
        file: String,
        /// What is wrong with it.
        reason: String,
        /// SHA-256 of the refused component, when it could be read.
        digest: Option<String>,
        /// SHA-256 of the version that keeps serving, if any.
        still_serving: Option<String>,
    },
    /// A plugin's component was deleted and it no longer serves.
    Unloaded {
        /// Plugin name.
        plugin: String,
        /// SHA-256 of the component that stopped serving.
        digest: String,
        /// The first generation without it.
        generation: u64,
    },
    /// A plugin misbehaved while deciding an item.
    Fault {
        /// Plugin name.
        plugin: String,
        /// SHA-256 of the component that faulted.
        digest: String,
        /// The item being decided.
        item: String,
        /// What happened, and what the failure mode made of it.
        fault: crate::fault::Fault,
    },
    /// A compiled artifact in the cache was bad and was recompiled.
    CacheRecompiled {
        /// Plugin name.
        plugin: String,
        /// SHA-256 of the component.
        digest: String,
        /// What was wrong with the cached artifact.
        reason: String,
    },
}

impl LifecycleEvent {
    /// What loading `set` in one go amounts to: `loaded` for every plugin
    /// (enabled or not), `rejected` for every file that did not load. A host
    /// that loads once at start (`handoff eval`) records these, so its audit
    /// trail says which versions decided, like a watching host's does.
    pub fn of_set(set: &PolicySet) -> Vec<LifecycleEvent> {
        let loaded =
            set.plugins()
                .iter()
                .chain(set.disabled())
                .map(|plugin| LifecycleEvent::Loaded {
                    plugin: plugin.name.to_string(),
                    version: plugin.info.version.clone(),
                    digest: plugin.digest.clone(),
                    generation: set.generation(),
                    compile: plugin.compiled.clone(),
                    load_ms: plugin.load_ms,
                });
        let rejected = set.rejected().iter().map(|rejection| {
            let plugin = std::path::Path::new(&rejection.file)
                .file_stem()
                .map_or_else(
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

    /// The plugin the event is about.
    pub fn plugin(&self) -> &str {
        match self {
            LifecycleEvent::Loaded { plugin, .. }
            | LifecycleEvent::Swapped { plugin, .. }
            | LifecycleEvent::Rejected { plugin, .. }
            | LifecycleEvent::Unloaded { plugin, .. }
            | LifecycleEvent::Fault { plugin, .. }
            | LifecycleEvent::CacheRecompiled { plugin, .. } => plugin,
        }
    }
}

impl std::fmt::Display for LifecycleEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = |digest: &str| digest.chars().take(19).collect::<String>();
        let origin = |compile: &CompileOrigin| match compile {
            CompileOrigin::Compiled => "compiled",
            CompileOrigin::Cached => "from cache",
            CompileOrigin::Recompiled { .. } => "recompiled",
        };
        match self {
            LifecycleEvent::Loaded {
                plugin,
                version,
                digest,
                generation,
                compile,
                load_ms,
            } => write!(
                f,
                "loaded {plugin}@{version} {} as generation {generation} ({}, {load_ms:.1} ms)",
                short(digest),
                origin(compile)
            ),
            LifecycleEvent::Swapped {
                plugin,
                version,
                digest,
                previous_digest,
                generation,
                compile,
                load_ms,
            } => write!(
                f,
                "swapped {plugin} {} -> {plugin}@{version} {} as generation {generation} ({}, {load_ms:.1} ms)",
                short(previous_digest),
                short(digest),
                origin(compile)
            ),
            LifecycleEvent::Rejected {
                file,
                reason,
                still_serving,
                ..
            } => {
                write!(f, "rejected {file}: {reason}")?;
                match still_serving {
                    Some(digest) => write!(f, " (still serving {})", short(digest)),
                    None => write!(f, " (not serving)"),
                }
            }
            LifecycleEvent::Unloaded {
                plugin,
                digest,
                generation,
            } => write!(
                f,
                "unloaded {plugin} {} as of generation {generation}",
                short(digest)
            ),
            LifecycleEvent::Fault {
                plugin,
                item,
                fault,
                ..
            } => write!(
                f,
                "fault in {plugin} on {item}: {} in {} ({})",
                fault.kind, fault.stage, fault.detail
            ),
            LifecycleEvent::CacheRecompiled { plugin, reason, .. } => {
                write!(f, "recompiled {plugin}: bad cache entry ({reason})")
            }
        }
    }
}

/// Where lifecycle events go. Called in event order, while the reload that
/// caused them holds its lock, so an implementation should be quick.
pub trait LifecycleSink: Send + Sync {
    /// Records one event.
    fn record(&self, event: &LifecycleEvent);
}

impl<F: Fn(&LifecycleEvent) + Send + Sync> LifecycleSink for F {
    fn record(&self, event: &LifecycleEvent) {
        self(event)
    }
}
