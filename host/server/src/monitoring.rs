//! Liveness, readiness, metrics and the API description: the routes a
//! load balancer, Prometheus and a client generator call without a token.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use handoff_audit::AuditHealth;
use handoff_dispatch::StoreHealth;

use super::app::App;
use super::error::ApiError;

/// The API description that ships with the server, checked against the
/// routes by the test suite.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: ready exactly when an evaluation would be taken: a
/// policy serves, the audit log takes appends and the store takes work.
/// Otherwise a 503 whose `reasons` say which is missing, as stable codes
/// (`no-policies`, `audit-stopped`, `store-unavailable`); the server log
/// has the detail. A stopped audit log and a failed store are retried here
/// (at most once a second each), so readiness returns by itself once the
/// fault clears.
pub async fn readyz(State(app): State<Arc<App>>) -> Response {
    let set = app.live.current();
    let policies = set.plugins().len();
    let audit = app.audit.health();
    let store = app.dispatcher.health().await;
    let mut reasons = Vec::new();
    if policies == 0 {
        reasons.push("no-policies");
    }
    let audit = match audit {
        AuditHealth::Writing => json!({"state": "writing"}),
        AuditHealth::Stopped {
            since,
            refused,
            retrying,
        } => {
            reasons.push("audit-stopped");
            json!({"state": "stopped", "since": since, "refused": refused, "retrying": retrying})
        }
    };
    let store = match store {
        StoreHealth::Available => json!({"state": "available"}),
        StoreHealth::Unavailable { since } => {
            reasons.push("store-unavailable");
            json!({"state": "unavailable", "since": since})
        }
    };
    let ready = reasons.is_empty();
    let body = json!({
        "ready": ready,
        "reasons": reasons,
        "generation": set.generation(),
        "policies": policies,
        "audit": audit,
        "store": store,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(app): State<Arc<App>>) -> Result<Response, ApiError> {
    let depth = app.dispatcher.depth().await?;
    let text = app
        .metrics
        .render(&depth, app.pipeline.evaluators().size())
        .map_err(|e| ApiError::internal("cannot render metrics", e))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Any path the API does not have.
pub async fn no_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no-route",
        "no such route; GET /openapi.json lists them",
    )
}
