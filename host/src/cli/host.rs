//! What the long-running commands (`watch`, `serve`) share: a data
//! directory holding the policy directory, the artifact cache and the audit
//! log, and a live, watched policy set recorded in that log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use handoff_host::audit::AuditLog;
use handoff_host::reload::{LifecycleEvent, LifecycleSink, LivePolicies, WatchOptions, Watcher};
use handoff_host::{Runtime, embedded};

use super::audit::AuditLogArgs;

/// A running host's policies and audit log.
pub struct LiveHost {
    /// The live set.
    pub live: Arc<LivePolicies>,
    /// The audit log every decision and policy change goes to.
    pub audit: Arc<AuditLog>,
    /// Keeps the directory watched while it lives.
    _watcher: Watcher,
}

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

impl LiveHost {
    /// Opens the audit log, loads the policy directory (seeding the default
    /// one) and starts watching it. Every lifecycle event is recorded in the
    /// log, printed, and handed to `observe`.
    pub fn open(
        runtime: &Runtime,
        args: &HostArgs,
        observe: impl Fn(&LifecycleEvent) + Send + Sync + 'static,
    ) -> anyhow::Result<LiveHost> {
        let dir = policy_dir(args.policies.as_deref(), &args.data)?;
        let mut runtime = runtime.clone();
        if !args.no_cache {
            runtime = runtime
                .with_cache(&args.data.join("cache"))
                .context("cannot open the artifact cache")?;
        }
        let audit_dir = args
            .audit
            .dir
            .clone()
            .unwrap_or_else(|| args.data.join("audit"));
        let audit = Arc::new(args.audit.open(&audit_dir)?);
        let sink = {
            let audit = audit.clone();
            move |event: &LifecycleEvent| {
                eprintln!("handoff: {event}");
                audit.record(event);
                observe(event);
            }
        };
        let live = LivePolicies::open(runtime, &dir, Arc::new(sink))?;
        let debounce = Duration::from_millis(args.debounce_ms);
        let watcher = Watcher::start(live.clone(), WatchOptions::with_debounce(debounce))?;
        let set = live.current();
        eprintln!(
            "handoff: serving {} (generation {}, {} enabled; audit log in {})",
            dir.display(),
            set.generation(),
            set.plugins().len(),
            audit_dir.display()
        );
        Ok(LiveHost {
            live,
            audit,
            _watcher: watcher,
        })
    }
}

/// The directory to serve: the one named, or `policies/` in the data
/// directory, seeded with the reference policies on first use so that an
/// operator can edit them live.
fn policy_dir(named: Option<&Path>, data: &Path) -> anyhow::Result<PathBuf> {
    if let Some(dir) = named {
        return Ok(dir.to_path_buf());
    }
    let dir = data.join("policies");
    if !dir.exists() {
        embedded::write_to(&dir)
            .with_context(|| format!("cannot create policy directory {}", dir.display()))?;
        eprintln!(
            "handoff: created {} with the reference policies",
            dir.display()
        );
    }
    Ok(dir)
}
