//! Adopting a whole policy set at once: how a node of a fleet takes a
//! published generation.
//!
//! A directory reload takes what passes, unit by unit. A fleet generation is
//! all or nothing: every node must serve the same set, so one unit that
//! fails here (a host limit stricter than the publisher's, a component the
//! node cannot compile) refuses the whole generation, and the node keeps
//! serving what it served. Once a node has adopted one, its directory no
//! longer changes what it serves: the fleet's generations do.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use handoff_model::LifecycleEvent;

use super::live::{LivePolicies, Serving, content_digest, loaded_event, reject};
use crate::claims;
use crate::component::digest_of;
use crate::loader;
use crate::plugin::Plugin;
use crate::policy_set::PolicySet;
use crate::source::{PluginSource, Rejection, describe_all};

/// A fleet generation this node refused. It serves what it served before.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("generation {generation} was refused, and the serving policies kept: {}", describe_all(.rejections))]
pub struct GenerationRefused {
    /// The fleet generation.
    pub generation: u64,
    /// Every unit that failed here, and why.
    pub rejections: Vec<Rejection>,
}

/// A unit of the generation, validated here.
struct Accepted {
    plugin: Arc<Plugin>,
    content: [u8; 32],
    /// Newly loaded (with its load time), or the serving one kept.
    load_ms: Option<f64>,
}

impl LivePolicies {
    /// Serves exactly `sources`, fleet generation `generation`, if every one
    /// of them passes validation here; otherwise serves what it served and
    /// says why. Plugins whose files are the serving ones are kept, warm
    /// instances and totals included; plugins not in `sources` are
    /// unloaded. Returns the host's new local generation.
    pub fn adopt(
        &self,
        generation: u64,
        sources: Vec<PluginSource>,
    ) -> Result<u64, GenerationRefused> {
        let mut registry = self.registry();
        let current = self.current();
        let mut accepted: BTreeMap<String, Accepted> = BTreeMap::new();
        let mut refused: Vec<(String, Rejection, Option<String>)> = Vec::new();
        let mut events = Vec::new();
        for source in sources {
            let content = content_digest(&source);
            let serving = current
                .get(&source.name)
                .filter(|_| registry.served(&source.name) == Some(content));
            if let Some(plugin) = serving {
                let plugin = plugin.clone();
                accepted.insert(
                    source.name.clone(),
                    Accepted {
                        plugin,
                        content,
                        load_ms: None,
                    },
                );
                continue;
            }
            let started = Instant::now();
            match loader::load(self.runtime(), &source) {
                Ok(plugin) => {
                    accepted.insert(
                        source.name.clone(),
                        Accepted {
                            plugin: Arc::new(plugin),
                            content,
                            load_ms: Some(started.elapsed().as_secs_f64() * 1e3),
                        },
                    );
                }
                Err(rejection) => refused.push((
                    source.name.clone(),
                    rejection,
                    Some(digest_of(&source.wasm)),
                )),
            }
        }
        refused.extend(duplicate_claims(&accepted));
        let enforcing = accepted.values().any(|unit| {
            unit.plugin.manifest.enabled
                && unit.plugin.manifest.mode != crate::manifest::Mode::Shadow
        });
        if refused.is_empty() && !enforcing {
            // Serving it would let every item through unexamined.
            refused.push((
                String::new(),
                Rejection {
                    file: format!("generation {generation}"),
                    reason: "it holds no enabled, enforcing policy, so serving it would let \
                             every item through"
                        .into(),
                },
                None,
            ));
        }
        if !refused.is_empty() {
            let rejections = refused.iter().map(|(_, r, _)| r.clone()).collect();
            for (name, rejection, digest) in refused {
                if name.is_empty() {
                    // About the generation as a whole, not one plugin.
                    events.push(LifecycleEvent::Rejected {
                        plugin: rejection.file.clone(),
                        file: rejection.file,
                        reason: rejection.reason,
                        digest: None,
                        still_serving: None,
                    });
                    continue;
                }
                let serving = current.get(&name).map(|p| p.digest.clone());
                let unit = registry.unit(&name);
                events.push(reject(unit, rejection, digest, serving));
            }
            self.finish(&registry, &events);
            return Err(GenerationRefused {
                generation,
                rejections,
            });
        }

        let local = registry.next_generation();
        let now = Utc::now();
        for plugin in current.loaded() {
            if !accepted.contains_key(&*plugin.name) {
                registry.forget(&plugin.name);
                events.push(LifecycleEvent::Unloaded {
                    plugin: plugin.name.to_string(),
                    digest: plugin.digest.clone(),
                    generation: local,
                });
            }
        }
        let mut plugins = Vec::with_capacity(accepted.len());
        for (name, unit) in accepted {
            if let Some(load_ms) = unit.load_ms {
                let previous = current.get(&name).map(|p| p.digest.clone());
                events.push(loaded_event(&unit.plugin, previous, local, load_ms));
                registry.serve(
                    &name,
                    unit.content,
                    Serving {
                        version: unit.plugin.info.version.clone(),
                        digest: unit.plugin.digest.clone(),
                        enabled: unit.plugin.manifest.enabled,
                        since_generation: local,
                        since: now,
                        compile: unit.plugin.compiled.clone(),
                        warnings: unit.plugin.warnings.clone(),
                        signers: unit.plugin.trust.signers(),
                    },
                );
            }
            plugins.push(unit.plugin);
        }
        registry.follow_fleet(generation);
        let set = PolicySet::assemble(local, plugins, Vec::new());
        events.push(self.generation_event(&set));
        self.store_set(set);
        self.finish(&registry, &events);
        Ok(local)
    }

    /// Refuses fleet generation `generation` for a reason found before its
    /// files were read (one too big to copy, say): recorded like any
    /// refused version, with the serving one kept.
    pub fn refuse(&self, generation: u64, unit: &str, rejection: Rejection) -> GenerationRefused {
        let mut registry = self.registry();
        let serving = self.current().get(unit).map(|p| p.digest.clone());
        let event = reject(registry.unit(unit), rejection.clone(), None, serving);
        self.finish(&registry, &[event]);
        GenerationRefused {
            generation,
            rejections: vec![rejection],
        }
    }

    /// The fleet generation this host serves, once it has adopted one.
    pub fn fleet_generation(&self) -> Option<u64> {
        self.registry().fleet()
    }
}

/// Refusals of units that claim a policy name another unit of the same
/// generation claims: a published set must be unambiguous.
fn duplicate_claims(
    accepted: &BTreeMap<String, Accepted>,
) -> Vec<(String, Rejection, Option<String>)> {
    let mut refused = Vec::new();
    let units: Vec<&Arc<Plugin>> = accepted.values().map(|unit| &unit.plugin).collect();
    for (at, plugin) in units.iter().enumerate() {
        if !claims::claims_name(plugin) {
            continue;
        }
        let holder = units[..at]
            .iter()
            .find(|other| claims::claims_name(other) && other.info.name == plugin.info.name);
        if let Some(holder) = holder {
            refused.push((
                plugin.name.to_string(),
                claims::duplicate(plugin, &holder.name),
                Some(plugin.digest.clone()),
            ));
        }
    }
    refused
}
