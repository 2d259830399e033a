//! Liveness, readiness, metrics and the API description: the routes a
//! load balancer, Prometheus and a client generator call without a token.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::app::App;
use super::error::ApiError;

/// The API description that ships with the server, checked against the
/// routes by the test suite.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: ready to decide: at least one policy serves and the store
/// answers. Otherwise a 503 saying which is missing.
pub async fn readyz(State(app): State<Arc<App>>) -> Response {
    let set = app.live.current();
    let policies = set.plugins().len();
    let store = app.dispatcher.depth().await;
    let ready = policies > 0 && store.is_ok();
    let body = json!({
        "ready": ready,
        "generation": set.generation(),
        "policies": policies,
        "store": store.map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string()),
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
