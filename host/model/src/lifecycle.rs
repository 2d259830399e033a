//! Policy lifecycle events: what changed in the live policy set, and why a
//! version was refused. The runtime produces them; the audit trail keeps
//! them, typed, beside the decisions they explain.

use serde::{Deserialize, Serialize};

use crate::Fault;

/// Where a plugin's compiled code came from. Recorded so that an operator
/// can see a restart did not recompile, and so that a corrupt cache entry is
/// never silent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "compile")]
pub enum CompileOrigin {
    /// Compiled now; there is no cache or it had no entry.
    Compiled,
    /// Loaded from a verified cache entry.
    Cached,
    /// The cache entry was bad and was recompiled.
    Recompiled {
        /// What was wrong with the entry.
        reason: String,
    },
}

/// One change (or refused change) to the live policy set.
///
/// Serialized with an `event` tag, so a log of them reads as JSON Lines of
/// `{"event": "swapped", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
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
        fault: Fault,
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
    /// The event's name, as in its `event` field: `loaded`, `swapped`, ...
    pub fn name(&self) -> &'static str {
        self.into()
    }

    /// The work item, for a fault while deciding one.
    pub fn item(&self) -> Option<&str> {
        match self {
            LifecycleEvent::Fault { item, .. } => Some(item),
            _ => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FailureMode, FaultKind};

    /// The audit trail stores events typed and reads them back: every
    /// variant, with the compile origin flattened into it, must round-trip.
    #[test]
    fn every_event_reads_back_as_written() {
        let events = [
            LifecycleEvent::Loaded {
                plugin: "p".into(),
                version: "1.0.0".into(),
                digest: "sha256:aa".into(),
                generation: 1,
                compile: CompileOrigin::Cached,
                load_ms: 1.5,
            },
            LifecycleEvent::Swapped {
                plugin: "p".into(),
                version: "1.1.0".into(),
                digest: "sha256:bb".into(),
                previous_digest: "sha256:aa".into(),
                generation: 2,
                compile: CompileOrigin::Recompiled {
                    reason: "checksum mismatch".into(),
                },
                load_ms: 160.0,
            },
            LifecycleEvent::Rejected {
                plugin: "p".into(),
                file: "p.toml".into(),
                reason: "bad".into(),
                digest: None,
                still_serving: Some("sha256:bb".into()),
            },
            LifecycleEvent::Unloaded {
                plugin: "p".into(),
                digest: "sha256:bb".into(),
                generation: 3,
            },
            LifecycleEvent::Fault {
                plugin: "p".into(),
                digest: "sha256:bb".into(),
                item: "i-1".into(),
                fault: Fault {
                    kind: FaultKind::Trap,
                    stage: "evaluate".into(),
                    detail: "unreachable".into(),
                    failure_mode: FailureMode::Escalate,
                },
            },
            LifecycleEvent::CacheRecompiled {
                plugin: "p".into(),
                digest: "sha256:bb".into(),
                reason: "bad header".into(),
            },
        ];
        for event in events {
            let json = serde_json::to_string(&event).unwrap();
            assert!(
                json.starts_with(&format!("{{\"event\":\"{}\"", event.name())),
                "{json}"
            );
            let back: LifecycleEvent = serde_json::from_str(&json).unwrap();
            assert_eq!(back, event, "{json}");
        }
    }
}
