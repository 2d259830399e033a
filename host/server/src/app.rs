//! What every request handler shares: the running host's pipeline,
//! policies, audit log and dispatcher, and the server's own metrics, the
//! credentials it accepts and its limits.

use std::sync::Arc;

use handoff_audit::AuditLog;
use handoff_dispatch::{Dispatcher, Store};
use handoff_pipeline::{Host, Pipeline};
use handoff_policy::reload::LivePolicies;
use tokio::sync::{Notify, watch};

use super::auth::Identities;
use super::config::ServerConfig;
use super::metrics::Metrics;
use super::ui::Sessions;

/// The running server's state.
pub struct App {
    /// Where work items go: decide, audit, dispatch.
    pub pipeline: Arc<Pipeline>,
    /// The policies serving now, hot-reloaded from their directory.
    pub live: Arc<LivePolicies>,
    /// The tamper-evident record of every decision and policy change.
    pub audit: Arc<AuditLog>,
    /// Tier dispatch on the durable store.
    pub dispatcher: Arc<Dispatcher<Store>>,
    /// What `/metrics` reports.
    pub metrics: Arc<Metrics>,
    /// Who may call what.
    pub identities: Arc<Identities>,
    /// Limits on requests.
    pub config: ServerConfig,
    /// Woken whenever this server resolves a handoff and, on a PostgreSQL
    /// store, whenever any node commits a change to one, so that long
    /// polls answer at once instead of at their next look at the store.
    pub changed: Arc<Notify>,
    /// The dashboard's signed-in people.
    pub sessions: Sessions,
    /// Set when the server begins to shut down, so that the streams that
    /// never end on their own (the dashboard's live feed) end then.
    pub closing: watch::Sender<bool>,
    /// Held while a calibration proposal is approved, so that one proposal
    /// is never applied twice.
    pub approvals: tokio::sync::Mutex<()>,
}

/// A host missing a part the server needs.
#[derive(Debug, thiserror::Error)]
#[error("the server needs a host with {0}")]
pub struct IncompleteHost(&'static str);

impl App {
    /// The state for serving `host`, which must watch a policy directory,
    /// keep an audit trail and dispatch.
    pub fn new(
        host: &Host,
        metrics: Arc<Metrics>,
        identities: Identities,
        config: ServerConfig,
    ) -> Result<App, IncompleteHost> {
        let dispatcher = host
            .dispatcher()
            .ok_or(IncompleteHost("a handoff store"))?
            .clone();
        let changed = match dispatcher.store() {
            Store::Postgres(store) => store.changed().clone(),
            Store::Sqlite(_) => Arc::new(Notify::new()),
        };
        Ok(App {
            pipeline: host.pipeline().clone(),
            live: host
                .policies()
                .live()
                .ok_or(IncompleteHost("a watched policy directory"))?
                .clone(),
            audit: host
                .audit()
                .ok_or(IncompleteHost("an audit trail"))?
                .clone(),
            dispatcher,
            metrics,
            identities: Arc::new(identities),
            config,
            changed,
            sessions: Sessions::default(),
            closing: watch::channel(false).0,
            approvals: tokio::sync::Mutex::new(()),
        })
    }
}
