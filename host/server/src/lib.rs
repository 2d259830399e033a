//! `handoff serve`: the HTTP API agents, operators and compliance work
//! against, over a running host (`handoff_pipeline::Host`): the same live
//! policies, pipeline, audit log and handoff store the other commands use.
//!
//! - `routes`: the route table, each route with the roles it admits;
//! - `auth`, `jwt` and `config`: principals and their credentials (token
//!   digests, JWTs), and the config file;
//! - `connections`: the accept loop, connection limits and timeouts, and
//!   the shutdown deadline;
//! - `evaluate`, `handoffs`, `compliance`, `fleet` and `monitoring`: the
//!   handlers, by who calls them;
//! - `body` and `error`: JSON in with the failing field named, JSON
//!   errors out;
//! - `metrics`: the Prometheus exposition;
//! - `ui`: the intervention dashboard, web pages over the same data and
//!   under the same access rules;
//! - `app`: the state they share.

mod app;
mod auth;
mod body;
mod compliance;
mod config;
mod connections;
mod error;
mod evaluate;
mod fleet;
mod handoffs;
mod jwt;
mod metrics;
mod monitoring;
mod pilot;
mod proposals;
mod routes;
mod ui;

use std::future::Future;
use std::sync::Arc;

pub use app::{App, IncompleteHost};
pub use auth::{Identities, Principal, Role, token_digest};
pub use config::{ConfigError, ServerConfig, check_exposure};
pub use connections::ConnectionLimits;
pub use jwt::{JwksError, JwtConfig};
pub use metrics::Metrics;
pub use monitoring::OPENAPI;
pub use routes::{MissingHandler, ROUTES, Route, router};
pub use ui::{Sessions, UI_ROUTES, UiRoute};

/// Serves `app` on `listener` until `shutdown` completes, then stops taking
/// connections and lets the requests in flight finish, up to the
/// configured shutdown deadline. What they decided is in the audit log by
/// then: a decision is recorded before it is answered.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), MissingHandler> {
    let limits = app.config.connection_limits();
    let router = router(app.clone())?;
    let shutdown = async move {
        shutdown.await;
        app.closing.send_replace(true);
    };
    connections::serve(listener, router, limits, shutdown).await;
    Ok(())
}
