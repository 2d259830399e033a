//! What the long-running commands (`watch`, `serve`) share: a data
//! directory holding the policy directory, the artifact cache, the audit log
//! and the handoff store, turned into a running host.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use handoff_dispatch::{DispatchConfig, SlaEvent};
use handoff_model::LifecycleEvent;
use handoff_pipeline::{Host, HostConfig, Observers, Placement, PolicySetup, policy_dir};
use handoff_policy::Runtime;

use super::audit::AuditLogArgs;
use super::output::terminal;

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
        let config = HostConfig {
            policies: PolicySetup::Watched {
                dir: dir.clone(),
                debounce: Duration::from_millis(self.debounce_ms),
            },
            cache: (!self.no_cache).then(|| self.data.join("cache")),
            audit: Some(self.audit.setup(&audit_dir)?),
            store: Some(self.data.clone()),
            dispatch: DispatchConfig::default(),
            sla_clock: true,
            placement,
        };
        let host = Host::open(runtime, config, printing(observers)).await?;
        let set = host.policies().current();
        eprintln!(
            "handoff: serving {} (generation {}, {} enabled; audit log in {})",
            dir.display(),
            set.generation(),
            set.plugins().len(),
            audit_dir.display()
        );
        Ok(host)
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
