//! A node of a fleet: following the policy generations published to the
//! shared store, and validating a directory before it is published.
//!
//! The follower wakes when a generation is announced and polls every
//! [`FLEET_POLL`] in case an announcement was missed (a listener
//! reconnecting). It validates the newest generation here, with this
//! node's own limits, and swaps it in whole ([`LivePolicies::adopt`]) or
//! refuses it whole, keeping what served. Each pass it reports what it
//! serves, which is what `GET /v1/fleet` shows; a node that stops
//! reporting is down or cut off from the store.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use handoff_dispatch::{Generations, NodeReport, PublishedUnit, RejectedGeneration, StoreError};
use handoff_policy::reload::LivePolicies;
use handoff_policy::{
    DirError, PluginSource, PolicySet, Rejection, Runtime, describe_all, read_sources,
};
use tokio::task::JoinHandle;

/// How often a node looks for a generation it was not told about, and
/// says it is alive.
pub const FLEET_POLL: Duration = Duration::from_secs(5);

/// Who this node is, as the fleet sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetMember {
    /// Its name, unique in the fleet and kept across restarts.
    pub node: String,
    /// Where its API listens, for operators reading `GET /v1/fleet`.
    pub address: Option<String>,
}

/// Why a directory cannot be published. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The directory cannot be read.
    #[error(transparent)]
    Dir(#[from] DirError),
    /// The directory holds no policy.
    #[error("{0} holds no policy (no NAME.wasm): nothing to publish")]
    Empty(String),
    /// A unit failed validation.
    #[error("{} of the policies in {dir} failed validation, so nothing was published: {}", .rejections.len(), describe_all(.rejections))]
    Invalid {
        /// The directory.
        dir: String,
        /// Every failure.
        rejections: Vec<Rejection>,
    },
    /// The store refused it.
    #[error("cannot store the generation: {0}")]
    Store(#[from] StoreError),
}

/// Validates every unit of `dir` as a node would (compile, imports, trial
/// run, fixtures, one file per policy) and, only if all pass, stores them
/// as the fleet's next generation. Returns its number.
pub async fn publish(
    runtime: &Runtime,
    dir: &Path,
    generations: &Generations,
    publisher: &str,
) -> Result<u64, PublishError> {
    let (sources, orphans) = read_sources(dir, runtime.limits())?;
    if sources.is_empty() && orphans.is_empty() {
        return Err(PublishError::Empty(dir.display().to_string()));
    }
    let set = {
        let runtime = runtime.clone();
        let sources = sources.clone();
        tokio::task::spawn_blocking(move || PolicySet::load(&runtime, sources, 0))
            .await
            .map_err(|e| PublishError::Invalid {
                dir: dir.display().to_string(),
                rejections: vec![Rejection {
                    file: dir.display().to_string(),
                    reason: format!("validation stopped: {e}"),
                }],
            })?
    };
    let mut rejections = orphans;
    rejections.extend(set.rejected().iter().cloned());
    if rejections.is_empty() && set.plugins().is_empty() {
        rejections.push(Rejection {
            file: dir.display().to_string(),
            reason: "no enabled, enforcing policy: every node would let every item through".into(),
        });
    }
    if !rejections.is_empty() {
        return Err(PublishError::Invalid {
            dir: dir.display().to_string(),
            rejections,
        });
    }
    let units: Vec<PublishedUnit> = sources
        .into_iter()
        .map(|source| PublishedUnit {
            name: source.name,
            wasm: source.wasm,
            manifest: source.manifest,
            signatures: source.signatures,
        })
        .collect();
    Ok(generations.publish(&units, publisher, Utc::now()).await?)
}

/// Follows the fleet's generations in the background until dropped.
pub struct Follower {
    task: JoinHandle<()>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Brings `live` to the fleet's newest generation now (so a node starting
/// after a publish serves it from its first request), then follows the
/// fleet in the background.
pub async fn follow(
    live: Arc<LivePolicies>,
    generations: Generations,
    member: FleetMember,
) -> Follower {
    let mut node = Node {
        live,
        generations,
        member,
        rejected: None,
    };
    node.sync().await;
    let task = tokio::spawn(async move {
        loop {
            let published = node.generations.published().clone();
            let woken = published.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(FLEET_POLL) => {}
            }
            node.sync().await;
        }
    });
    Follower { task }
}

/// One node's follower state.
struct Node {
    live: Arc<LivePolicies>,
    generations: Generations,
    member: FleetMember,
    /// The newest generation refused here, so it is not tried again.
    rejected: Option<RejectedGeneration>,
}

impl Node {
    /// Adopts the newest generation if it is new here, and reports.
    async fn sync(&mut self) {
        if let Err(error) = self.adopt_newest().await {
            tracing::warn!(%error, "cannot read the fleet's policy generations; serving what serves");
        }
        let report = NodeReport {
            node: self.member.node.clone(),
            address: self.member.address.clone(),
            seen_at: Utc::now(),
            serving: self.live.fleet_generation(),
            local_generation: self.live.generation(),
            rejected: self.rejected.clone(),
        };
        if let Err(error) = self.generations.report(&report).await {
            tracing::warn!(%error, "cannot report to the fleet");
        }
    }

    async fn adopt_newest(&mut self) -> Result<(), StoreError> {
        let Some(latest) = self.generations.latest().await? else {
            return Ok(());
        };
        let serving = self.live.fleet_generation();
        let refused = self.rejected.as_ref().map(|r| r.generation);
        if serving.is_some_and(|s| s >= latest) || refused == Some(latest) {
            return Ok(());
        }
        let limits = self.live.runtime().limits();
        let units = match self
            .generations
            .units(
                latest,
                limits.max_component_bytes,
                limits.max_manifest_bytes,
            )
            .await?
        {
            Ok(units) => units,
            Err(oversized) => {
                let unit = oversized.file.rsplit_once('.').map_or("", |(name, _)| name);
                let rejection = Rejection {
                    file: oversized.file.clone(),
                    reason: oversized.to_string(),
                };
                let refused = self.live.refuse(latest, unit, rejection);
                self.refused(latest, refused.to_string());
                return Ok(());
            }
        };
        let sources: Vec<PluginSource> = units
            .into_iter()
            .map(|unit| PluginSource {
                name: unit.name,
                wasm: unit.wasm,
                manifest: unit.manifest,
                signatures: unit.signatures,
            })
            .collect();
        let live = self.live.clone();
        let adopted = tokio::task::spawn_blocking(move || live.adopt(latest, sources)).await;
        match adopted {
            Ok(Ok(local)) => {
                tracing::info!(
                    generation = latest,
                    local,
                    "serving the fleet's policy generation"
                );
                self.rejected = None;
            }
            Ok(Err(refused)) => self.refused(latest, refused.to_string()),
            Err(stopped) => self.refused(latest, format!("validation stopped: {stopped}")),
        }
        Ok(())
    }

    /// Remembers (and from the next report, tells the fleet) that
    /// `generation` was refused here.
    fn refused(&mut self, generation: u64, reason: String) {
        tracing::warn!(generation, %reason, "refused the fleet's policy generation");
        self.rejected = Some(RejectedGeneration {
            generation,
            reason,
            at: Utc::now(),
        });
    }
}
