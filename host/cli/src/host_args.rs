//! What the long-running commands (`watch`, `serve`) share: a data
//! directory holding the policy directory, the artifact cache, the audit log
//! and the handoff store, turned into a running host.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use handoff_audit::{CheckpointKey, CheckpointOptions};
use handoff_dispatch::{DispatchConfig, ReviewSampling, SlaEvent};
use handoff_model::LifecycleEvent;
use handoff_pipeline::{Host, HostConfig, Observers, Placement, PolicySetup, policy_dir};
use handoff_policy::Runtime;

use super::audit::AuditLogArgs;
use super::output::terminal;
use super::store_arg::StoreArg;

/// Where a long-running host keeps things, as `watch` and `serve` take it.
#[derive(Debug, clap::Args)]
pub struct HostArgs {
    /// Directory of policies to serve and hot-reload. Defaults to
    /// `policies/` under the data directory, created with the reference
    /// policies when it does not exist yet.
    #[arg(long, value_name = "DIR")]
    pub policies: Option<PathBuf>,
    /// Where the host keeps its state: the default policy directory, the
    /// cache of compiled policies (`cache/`), the audit log (`audit/`) and
    /// the handoff queues (`handoffs.db`).
    #[arg(long, value_name = "DIR", default_value = "handoff-data")]
    pub data: PathBuf,
    /// The handoff store.
    #[command(flatten)]
    pub store: StoreArg,
    /// Quiet interval, in milliseconds, before a file written in place is
    /// reloaded (a copy may still be in progress). A file renamed into place
    /// is complete and reloads after 10 ms.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub debounce_ms: u64,
    /// Compile every policy at start instead of using the artifact cache.
    #[arg(long)]
    pub no_cache: bool,
    /// The audit trail. A running host always keeps one: in `audit/` under
    /// the data directory unless `--audit` names another.
    #[command(flatten)]
    pub audit: AuditLogArgs,
    /// The Ed25519 key that signs audit checkpoints, created (owner-only)
    /// if missing, with its public key beside it as `<FILE>.pub`. Keep it
    /// where whoever can write the audit log cannot read it.
    /// [default: DATA/keys/audit-checkpoint.key]
    #[arg(long, value_name = "FILE")]
    pub checkpoint_key: Option<PathBuf>,
    /// The witness file signed checkpoints are appended to, apart from the
    /// audit directory; the handoff store keeps a copy of each too.
    /// [default: DATA/witness/audit-checkpoints.jsonl]
    #[arg(long, value_name = "FILE")]
    pub checkpoint_witness: Option<PathBuf>,
    /// Sign a checkpoint after this many new audit records...
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub checkpoint_records: u64,
    /// ...or this many seconds after the first record not yet anchored,
    /// whichever comes first; and always at shutdown.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub checkpoint_secs: u64,
    /// Also send this share of the items decided `none` to the `reviewer`
    /// queue, without holding the agent back, so humans see an unbiased
    /// sample of autonomous work; calibration weights each review by the
    /// inverse of this probability. 0 turns sampling off.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub review_rate: f64,
    /// A different review share for items of one kind, as KIND=SHARE
    /// (for example `refund=0.1`); repeatable.
    #[arg(long, value_name = "KIND=SHARE")]
    pub review_kind: Vec<String>,
    /// Seeds which items are sampled for review: the same traffic with the
    /// same seed samples the same items.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub review_seed: u64,
    /// How long a claim holds a handoff: past it, another worker (or, in a
    /// fleet, another node's worker) may claim it, so work held by someone
    /// who vanished, or by a node that died, is never stuck.
    #[arg(long, value_name = "SECS", default_value_t = DispatchConfig::default().lease_secs,
          value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub lease_secs: u32,
}

impl HostArgs {
    /// Starts the host these arguments describe: the policy directory
    /// (seeded on first use) watched and hot-reloaded, the audit log, the
    /// handoff store with its SLA clocks, and evaluation where `placement`
    /// says. Every lifecycle event and SLA breach is printed to stderr and
    /// handed to `observers`.
    pub async fn open(
        &self,
        runtime: &Runtime,
        placement: Placement,
        observers: Observers,
        node: &str,
    ) -> anyhow::Result<Host> {
        let (dir, seeded) =
            policy_dir(self.policies.as_deref(), &self.data).with_context(|| {
                format!(
                    "cannot create a policy directory in {}",
                    self.data.display()
                )
            })?;
        if seeded {
            eprintln!(
                "handoff: created {} with the reference policies",
                dir.display()
            );
        }
        let audit_dir = self
            .audit
            .dir
            .clone()
            .unwrap_or_else(|| self.data.join("audit"));
        let store = self.store.location(&self.data)?;
        let mut audit = self.audit.setup(&audit_dir)?;
        audit.options.checkpoints = Some(self.checkpoints()?);
        let config = HostConfig {
            policies: PolicySetup::Watched {
                dir: dir.clone(),
                debounce: Duration::from_millis(self.debounce_ms),
            },
            cache: (!self.no_cache).then(|| self.data.join("cache")),
            audit: Some(audit),
            store: Some(store.clone()),
            dispatch: DispatchConfig {
                review: self.review()?,
                lease_secs: self.lease_secs,
                ..DispatchConfig::default()
            },
            sla_clock: true,
            placement,
            node: node.to_string(),
        };
        let host = Host::open(runtime, config, printing(observers)).await?;
        let set = host.policies().current();
        eprintln!(
            "handoff: serving {} (generation {}, {} enabled; audit log in {}; handoff store {})",
            dir.display(),
            set.generation(),
            set.plugins().len(),
            audit_dir.display(),
            terminal(&store.to_string())
        );
        Ok(host)
    }
}

impl HostArgs {
    /// Which autonomous items are sampled for review.
    fn review(&self) -> anyhow::Result<ReviewSampling> {
        let mut review = ReviewSampling {
            rate: self.review_rate,
            seed: self.review_seed,
            ..ReviewSampling::default()
        };
        for entry in &self.review_kind {
            let (kind, share) = entry
                .split_once('=')
                .with_context(|| format!("--review-kind {entry:?}: expected KIND=SHARE"))?;
            let share: f64 = share
                .trim()
                .parse()
                .with_context(|| format!("--review-kind {entry:?}: {share:?} is not a number"))?;
            review.kinds.insert(kind.trim().to_string(), share);
        }
        review
            .validate()
            .map_err(|reason| anyhow::anyhow!("--review-rate / --review-kind: {reason}"))?;
        Ok(review)
    }

    /// Where and how often audit checkpoints are signed; the key is read,
    /// or created, now.
    fn checkpoints(&self) -> anyhow::Result<CheckpointOptions> {
        let key_file = self
            .checkpoint_key
            .clone()
            .unwrap_or_else(|| self.data.join("keys").join("audit-checkpoint.key"));
        let key = CheckpointKey::load_or_create(&key_file)?;
        let witness = self
            .checkpoint_witness
            .clone()
            .unwrap_or_else(|| self.data.join("witness").join("audit-checkpoints.jsonl"));
        anyhow::ensure!(
            self.checkpoint_records > 0,
            "--checkpoint-records must be at least 1"
        );
        anyhow::ensure!(
            self.checkpoint_secs > 0,
            "--checkpoint-secs must be at least 1"
        );
        let mut options = CheckpointOptions::new(Arc::new(key), witness);
        options.every_records = self.checkpoint_records;
        options.every = Duration::from_secs(self.checkpoint_secs);
        Ok(options)
    }
}

/// `observers`, with every event also printed to stderr: lifecycle events
/// as `handoff: {event}`, SLA breaches as `handoff: sla {json}`.
fn printing(observers: Observers) -> Observers {
    let lifecycle = observers.lifecycle;
    let sla = observers.sla;
    Observers {
        lifecycle: Some(Arc::new(move |event: &LifecycleEvent| {
            eprintln!("handoff: {}", terminal(&event.to_string()));
            if let Some(observe) = &lifecycle {
                observe(event);
            }
        })),
        sla: Some(Arc::new(move |event: &SlaEvent| {
            if let Some(observe) = &sla {
                observe(event);
            }
            match serde_json::to_string(event) {
                Ok(json) => eprintln!("handoff: sla {json}"),
                Err(error) => tracing::error!(%error, "cannot print an SLA event"),
            }
        })),
    }
}
