//! `handoff serve`: the HTTP API agents, operators and compliance work
//! against, over the same live policies, audit log and handoff store the
//! other commands use.
//!
//! - [`routes`]: the route table, each route with the roles it admits;
//! - [`auth`] and [`config`]: bearer tokens per role, and the config file;
//! - [`evaluate`], [`handoffs`], [`compliance`] and [`monitoring`]: the
//!   handlers, by who calls them;
//! - [`body`] and [`error`]: JSON in with the failing field named, JSON
//!   errors out;
//! - [`metrics`]: the Prometheus exposition;
//! - [`app`]: the state they share.

pub mod app;
pub mod auth;
pub mod body;
pub mod compliance;
pub mod config;
pub mod error;
pub mod evaluate;
pub mod handoffs;
pub mod metrics;
pub mod monitoring;
pub mod routes;

use std::future::Future;
use std::sync::Arc;

pub use app::App;
pub use auth::{Role, Tokens};
pub use config::{ConfigError, ServerConfig, check_exposure};
pub use metrics::Metrics;
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
