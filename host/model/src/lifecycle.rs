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
    /// A generation began serving: every plugin in it, enforcing or in
    /// shadow, with the digests of its files and the keys that vouched for
    /// them, so that the trail alone says which code could decide from
    /// here on, and who approved it.
    Generation {
        /// The host's generation number.
        generation: u64,
        /// The activation policy it was admitted under: `off`, `signed` or
        /// `two-person`.
        activation: String,
        /// Every plugin serving in it, by name.
        plugins: Vec<ActivePlugin>,
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
    /// A shadow version was promoted to enforcing, and the version it
    /// replaced went on in shadow under the shadow's name: one generation,
    /// so no item saw both or neither. Promoting again rolls back.
    Promoted {
        /// The enforcing plugin's name.
        plugin: String,
        /// The shadow's name (`plugin@label`), which the replaced version
        /// now runs under.
        shadow: String,
        /// SHA-256 of the component that enforces now.
        digest: String,
        /// SHA-256 of the component that enforced before, if any did.
        previous_digest: Option<String>,
        /// The first generation with the promoted version enforcing.
        generation: u64,
        /// Who promoted it.
        by: String,
    },
    /// Someone proposed changing a probabilistic trigger's threshold, on
    /// the calibration evidence recorded here. Nothing changes until a
    /// second person approves.
    CalibrationProposed {
        /// The proposal's id, which the approval names.
        proposal: String,
        /// The plugin whose manifest would change.
        plugin: String,
        /// The trigger calibrated.
        trigger: String,
        /// The `[config]` key that holds its threshold.
        config_key: String,
        /// The key's value when proposed.
        from: f64,
        /// The value proposed.
        to: f64,
        /// The evidence at the proposed threshold: items at or above it,
        /// the errors humans found among them (both weighted by inverse
        /// sampling probability), and the error bound.
        evidence: CalibrationEvidence,
        /// Who proposed it.
        by: String,
    },
    /// A second person approved a proposal and it was applied as a new
    /// policy version through the normal validated reload.
    CalibrationApproved {
        /// The proposal approved.
        proposal: String,
        /// The plugin version that now carries the change (the plugin
        /// itself, or `plugin@calibrated` when applied in shadow first).
        plugin: String,
        /// The key changed.
        config_key: String,
        /// Its value before.
        from: f64,
        /// Its value now.
        to: f64,
        /// Who proposed it.
        proposed_by: String,
        /// Who approved it: never the proposer.
        approved_by: String,
        /// The generation the change first serves in.
        generation: u64,
    },
}

/// One plugin of a generation, as the audit trail records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivePlugin {
    /// Plugin name.
    pub plugin: String,
    /// SHA-256 of the component.
    pub digest: String,
    /// SHA-256 of its manifest; absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    /// The signatures that counted when it was admitted.
    pub signers: Vec<SignerRecord>,
}

/// A signature that counted: which key, whose, in what role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerRecord {
    /// The key's id.
    pub key: String,
    /// Who holds it, as the trust store names them.
    pub holder: String,
    /// `author` or `reviewer`.
    pub role: String,
}

/// What a threshold proposal rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationEvidence {
    /// Resolved items at or above the proposed threshold.
    pub n: u64,
    /// Of those, how many the humans found wrong.
    pub errors: u64,
    /// The effective sample size after weighting sampled reviews by their
    /// inverse inclusion probability (Kish).
    pub effective_n: f64,
    /// The weighted error count scaled to `effective_n`.
    pub effective_errors: f64,
    /// The Clopper–Pearson upper bound on the error rate at or above it.
    pub upper_bound: f64,
    /// α, the error rate the bound must stay under.
    pub target_error: f64,
    /// δ, the chance the bound is wrong.
    pub delta: f64,
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

    /// Whether the event is about plugin `name`: a generation is about
    /// every plugin serving in it.
    pub fn concerns(&self, name: &str) -> bool {
        match self {
            LifecycleEvent::Generation { plugins, .. } => plugins.iter().any(|p| p.plugin == name),
            other => other.plugin() == name,
        }
    }

    /// The plugin the event is about; empty for an event about the whole
    /// set (a generation).
    pub fn plugin(&self) -> &str {
        match self {
            LifecycleEvent::Generation { .. } => "",
            LifecycleEvent::Loaded { plugin, .. }
            | LifecycleEvent::Swapped { plugin, .. }
            | LifecycleEvent::Rejected { plugin, .. }
            | LifecycleEvent::Unloaded { plugin, .. }
            | LifecycleEvent::Fault { plugin, .. }
            | LifecycleEvent::CacheRecompiled { plugin, .. }
            | LifecycleEvent::Promoted { plugin, .. }
            | LifecycleEvent::CalibrationProposed { plugin, .. }
            | LifecycleEvent::CalibrationApproved { plugin, .. } => plugin,
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
            LifecycleEvent::Generation {
                generation,
                activation,
                plugins,
            } => {
                write!(
                    f,
                    "generation {generation} serves {} plugins (activation {activation})",
                    plugins.len()
                )?;
                for (at, active) in plugins.iter().enumerate() {
                    let separator = if at == 0 { ": " } else { "; " };
                    write!(f, "{separator}{} {}", active.plugin, short(&active.digest))?;
                    if !active.signers.is_empty() {
                        let signers: Vec<String> = active
                            .signers
                            .iter()
                            .map(|s| format!("{} ({}, {})", s.key, s.holder, s.role))
                            .collect();
                        write!(f, " signed by {}", signers.join(", "))?;
                    }
                }
                Ok(())
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
            LifecycleEvent::Promoted {
                plugin,
                shadow,
                digest,
                generation,
                by,
                ..
            } => write!(
                f,
                "promoted {shadow} {} to enforce as {plugin} in generation {generation} (by {by}); \
                 the version it replaced runs in shadow as {shadow}",
                short(digest)
            ),
            LifecycleEvent::CalibrationProposed {
                proposal,
                plugin,
                config_key,
                from,
                to,
                by,
                ..
            } => write!(
                f,
                "proposal {proposal}: {plugin} {config_key} {from} -> {to} (by {by}; awaits a \
                 second person's approval)"
            ),
            LifecycleEvent::CalibrationApproved {
                proposal,
                plugin,
                config_key,
                from,
                to,
                proposed_by,
                approved_by,
                generation,
            } => write!(
                f,
                "proposal {proposal} applied: {plugin} {config_key} {from} -> {to} in generation \
                 {generation} (proposed by {proposed_by}, approved by {approved_by})"
            ),
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
            LifecycleEvent::Promoted {
                plugin: "p".into(),
                shadow: "p@candidate".into(),
                digest: "sha256:cc".into(),
                previous_digest: Some("sha256:bb".into()),
                generation: 4,
                by: "ops".into(),
            },
            LifecycleEvent::CalibrationProposed {
                proposal: "c-1".into(),
                plugin: "p".into(),
                trigger: "confidence".into(),
                config_key: "escalate-below".into(),
                from: 0.6,
                to: 0.7,
                evidence: CalibrationEvidence {
                    n: 100,
                    errors: 1,
                    effective_n: 100.0,
                    effective_errors: 1.0,
                    upper_bound: 0.04,
                    target_error: 0.05,
                    delta: 0.05,
                },
                by: "ana".into(),
            },
            LifecycleEvent::CalibrationApproved {
                proposal: "c-1".into(),
                plugin: "p".into(),
                config_key: "escalate-below".into(),
                from: 0.6,
                to: 0.7,
                proposed_by: "ana".into(),
                approved_by: "ben".into(),
                generation: 5,
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
