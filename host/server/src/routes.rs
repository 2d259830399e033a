//! The route table: every route with the roles it admits, in one place, so
//! that the router, the access rules and the OpenAPI file cannot drift
//! apart (a test holds the file to this table and the live server to both).

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodRouter, get, post};
use tower_http::catch_panic::CatchPanicLayer;

use super::app::App;
use super::auth::{Guard, Role, require};
use super::{compliance, evaluate, fleet, handoffs, monitoring, pilot, proposals};

/// One route of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path, with `{param}` placeholders as in OpenAPI.
    pub path: &'static str,
    /// The OpenAPI `operationId`.
    pub operation: &'static str,
    /// Who may call it; empty means anyone (health, metrics).
    pub roles: &'static [Role],
}

const AGENT: &[Role] = &[Role::Agent];
const ANY_ROLE: &[Role] = &[Role::Agent, Role::Operator, Role::Compliance];
const OPERATOR: &[Role] = &[Role::Operator];
const OPERATOR_OR_COMPLIANCE: &[Role] = &[Role::Operator, Role::Compliance];
const COMPLIANCE: &[Role] = &[Role::Compliance];
const READS_POLICY: &[Role] = &[Role::Operator, Role::Compliance, Role::Approver];
const CHANGES_POLICY: &[Role] = &[Role::Operator, Role::Approver];
const APPROVER: &[Role] = &[Role::Approver];
const OPEN: &[Role] = &[];

/// Every route.
pub const ROUTES: &[Route] = &[
    route("POST", "/v1/evaluate", "evaluate", AGENT),
    route("GET", "/v1/handoffs/{id}", "getHandoff", ANY_ROLE),
    route("GET", "/v1/queue", "listQueue", OPERATOR_OR_COMPLIANCE),
    route("POST", "/v1/queue/claim", "claimHandoff", OPERATOR),
    route(
        "POST",
        "/v1/handoffs/{id}/ack",
        "acknowledgeHandoff",
        OPERATOR,
    ),
    route(
        "POST",
        "/v1/handoffs/{id}/resolve",
        "resolveHandoff",
        OPERATOR,
    ),
    route("POST", "/v1/handoffs/{id}/renew", "renewHandoff", OPERATOR),
    route(
        "POST",
        "/v1/handoffs/{id}/release",
        "releaseHandoff",
        OPERATOR,
    ),
    route(
        "GET",
        "/v1/policies",
        "listPolicies",
        OPERATOR_OR_COMPLIANCE,
    ),
    route("GET", "/v1/fleet", "listFleet", OPERATOR_OR_COMPLIANCE),
    route("GET", "/v1/audit", "queryAudit", COMPLIANCE),
    route("GET", "/v1/audit/verify", "verifyAudit", COMPLIANCE),
    route("GET", "/v1/report", "feedbackReport", COMPLIANCE),
    route("POST", "/v1/replay", "replayCandidate", COMPLIANCE),
    route("GET", "/v1/pilot", "pilotReport", READS_POLICY),
    route(
        "POST",
        "/v1/policies/{name}/promote",
        "promotePolicy",
        CHANGES_POLICY,
    ),
    route(
        "GET",
        "/v1/calibration/proposals",
        "listProposals",
        READS_POLICY,
    ),
    route(
        "POST",
        "/v1/calibration/proposals",
        "proposeCalibration",
        READS_POLICY,
    ),
    route(
        "POST",
        "/v1/calibration/proposals/{id}/approve",
        "approveProposal",
        APPROVER,
    ),
    route("GET", "/metrics", "metrics", OPEN),
    route("GET", "/healthz", "healthz", OPEN),
    route("GET", "/readyz", "readyz", OPEN),
    route("GET", "/openapi.json", "openapi", OPEN),
];

const fn route(
    method: &'static str,
    path: &'static str,
    operation: &'static str,
    roles: &'static [Role],
) -> Route {
    Route {
        method,
        path,
        operation,
        roles,
    }
}

/// The handler of an operation.
fn handler(operation: &str, app: &Arc<App>) -> Option<MethodRouter<Arc<App>>> {
    let candidate_limit = DefaultBodyLimit::max(app.config.candidate_limit_bytes);
    Some(match operation {
        "evaluate" => post(evaluate::evaluate),
        "getHandoff" => get(handoffs::get),
        "listQueue" => get(handoffs::list),
        "claimHandoff" => post(handoffs::claim),
        "acknowledgeHandoff" => post(handoffs::acknowledge),
        "renewHandoff" => post(handoffs::renew),
        "resolveHandoff" => post(handoffs::resolve),
        "releaseHandoff" => post(handoffs::release),
        "listPolicies" => get(compliance::policies),
        "listFleet" => get(fleet::fleet),
        "queryAudit" => get(compliance::audit_query),
        "verifyAudit" => get(compliance::audit_verify),
        "feedbackReport" => get(compliance::feedback),
        "replayCandidate" => post(compliance::candidate_replay).layer(candidate_limit),
        "pilotReport" => get(pilot::report),
        "promotePolicy" => post(pilot::promote),
        "listProposals" => get(proposals::list),
        "proposeCalibration" => post(proposals::propose),
        "approveProposal" => post(proposals::approve),
        "metrics" => get(monitoring::metrics),
        "healthz" => get(monitoring::healthz),
        "readyz" => get(monitoring::readyz),
        "openapi" => get(monitoring::openapi),
        _ => return None,
    })
}

/// Why the router could not be built: a table entry without a handler.
#[derive(Debug, thiserror::Error)]
#[error("route {method} {path} names operation `{operation}`, which has no handler")]
pub struct MissingHandler {
    method: &'static str,
    path: &'static str,
    operation: &'static str,
}

/// The router: every route of [`ROUTES`] behind its access rule, JSON 404s
/// for the rest, a body limit, and panics turned into 500s.
pub fn router(app: Arc<App>) -> Result<Router, MissingHandler> {
    let mut router = Router::new();
    for entry in ROUTES {
        let handler = handler(entry.operation, &app).ok_or(MissingHandler {
            method: entry.method,
            path: entry.path,
            operation: entry.operation,
        })?;
        let guard = Guard {
            identities: app.identities.clone(),
            roles: entry.roles,
        };
        router = router.route(
            entry.path,
            handler.route_layer(from_fn_with_state(guard, require)),
        );
    }
    Ok(router
        .merge(super::ui::router(&app))
        .fallback(monitoring::no_route)
        .layer(DefaultBodyLimit::max(app.config.body_limit_bytes))
        .layer(CatchPanicLayer::custom(on_panic))
        .with_state(app))
}

/// A panic in a handler is a bug; it answers 500 and leaves the server up.
fn on_panic(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    super::error::ApiError::internal("the request hit a bug in the server", "handler panicked")
        .into_response()
}
