//! `handoff serve`: the HTTP API agents, operators and compliance work
//! against, over a running host (`handoff_pipeline::Host`): the same live
//! policies, pipeline, audit log and handoff store the other commands use.
//!
//! - `routes`: the route table, each route with the roles it admits;
//! - `auth` and `config`: bearer tokens per role, and the config file;
//! - `evaluate`, `handoffs`, `compliance` and `monitoring`: the
//!   handlers, by who calls them;
//! - `body` and `error`: JSON in with the failing field named, JSON
//!   errors out;
//! - `metrics`: the Prometheus exposition;
//! - `app`: the state they share.

mod app;
mod auth;
mod body;
mod compliance;
mod config;
mod error;
mod evaluate;
mod handoffs;
mod metrics;
mod monitoring;
mod routes;

use std::future::Future;
use std::sync::Arc;

pub use app::{App, IncompleteHost};
pub use auth::{Role, Tokens};
pub use config::{ConfigError, ServerConfig, check_exposure};
pub use metrics::Metrics;
pub use monitoring::OPENAPI;
pub use routes::{ROUTES, Route, router};

/// Serves `app` on `listener` until `shutdown` completes, then stops taking
/// connections and lets the requests in flight finish. What they decided is
/// in the audit log by then: a decision is recorded before it is answered.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router(app).map_err(std::io::Error::other)?;
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
