//! Handoffs over HTTP: agents fetch outcomes (optionally long-polling),
//! operators list, claim, acknowledge, resolve and release.
//!
//! The acting worker is the authenticated principal. A body may still say
//! `worker`, but only its own name: naming a colleague is refused, so that
//! the queue's leases and the event log always record who really acted.
//! Only an open server (no credentials configured, loopback only) takes
//! the worker from the body.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::app::App;
use super::auth::Caller;
use super::body;
use super::error::ApiError;
use handoff_dispatch::{Handoff, HandoffState, ListFilter, Outcome, OutcomeError, Resolution};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Seconds to wait for a resolution before answering with the current
    /// state.
    wait: Option<u64>,
}

/// An optional authenticated caller: absent on an open server.
pub(crate) type MaybeCaller = Option<Extension<Caller>>;

/// `GET /v1/handoffs/{id}`: the handoff, at once or when it is resolved
/// (with `?wait=SECS`).
pub async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    query: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<Json<Handoff>, ApiError> {
    let Query(query) = query?;
    let wait = Duration::from_secs(query.wait.unwrap_or(0).min(app.config.max_wait_secs));
    let deadline = Instant::now() + wait;
    loop {
        // Registered before the read, so a resolution between the read and
        // the wait still wakes it.
        let changed = app.changed.notified();
        let handoff = app.dispatcher.get(&id).await?;
        let now = Instant::now();
        if handoff.state == HandoffState::Resolved || now >= deadline {
            return Ok(Json(handoff));
        }
        let pause = app.config.poll_interval().min(deadline - now);
        tokio::select! {
            () = changed => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    role: Option<String>,
    state: Option<HandoffState>,
    item: Option<String>,
}

/// `GET /v1/queue`: handoffs, earliest deadline first.
pub async fn list(
    State(app): State<Arc<App>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<Handoff>>, ApiError> {
    let Query(query) = query?;
    let filter = ListFilter {
        role: query.role,
        state: query.state,
        item_id: query.item,
    };
    Ok(Json(app.dispatcher.list(&filter).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimBody {
    role: String,
    worker: Option<String>,
}

/// What a claim got.
#[derive(Debug, Serialize)]
pub struct Claimed {
    /// The handoff now leased to the worker; null when the queue is empty.
    pub handoff: Option<Handoff>,
}

/// `POST /v1/queue/claim`: the most urgent handoff for a role.
pub async fn claim(
    State(app): State<Arc<App>>,
    caller: MaybeCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Claimed>, ApiError> {
    let request: ClaimBody = body::parse(&body?)?;
    let worker = acting_worker(caller, request.worker.as_deref())?;
    let role = nonempty("role", &request.role)?;
    let handoff = app.dispatcher.claim(role, &worker).await?;
    Ok(Json(Claimed { handoff }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkerBody {
    worker: Option<String>,
}

/// What the holder of a lease does with it, with no other input: the API
/// and the dashboard's buttons alike.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LeaseVerb {
    Acknowledge,
    Renew,
    Release,
}

/// `POST /v1/handoffs/{id}/ack`: acknowledge, renewing the lease.
pub async fn acknowledge(
    app: State<Arc<App>>,
    caller: MaybeCaller,
    id: Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Handoff>, ApiError> {
    lease(app, caller, id, body, LeaseVerb::Acknowledge).await
}

/// `POST /v1/handoffs/{id}/renew`: keep holding it, for work that takes
/// longer than one lease.
pub async fn renew(
    app: State<Arc<App>>,
    caller: MaybeCaller,
    id: Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Handoff>, ApiError> {
    lease(app, caller, id, body, LeaseVerb::Renew).await
}

/// `POST /v1/handoffs/{id}/release`: back to the queue.
pub async fn release(
    app: State<Arc<App>>,
    caller: MaybeCaller,
    id: Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Handoff>, ApiError> {
    lease(app, caller, id, body, LeaseVerb::Release).await
}

async fn lease(
    State(app): State<Arc<App>>,
    caller: MaybeCaller,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
    verb: LeaseVerb,
) -> Result<Json<Handoff>, ApiError> {
    let worker = worker_of(caller, body)?;
    Ok(Json(verb.apply(&app, &id, &worker).await?))
}

impl LeaseVerb {
    /// Does it to `id` as `worker`.
    pub(crate) async fn apply(
        self,
        app: &App,
        id: &str,
        worker: &str,
    ) -> Result<Handoff, ApiError> {
        let dispatcher = &app.dispatcher;
        Ok(match self {
            LeaseVerb::Acknowledge => dispatcher.acknowledge(id, worker).await,
            LeaseVerb::Renew => dispatcher.renew(id, worker).await,
            LeaseVerb::Release => dispatcher.release(id, worker).await,
        }?)
    }
}

/// The acting worker, for a body that carries nothing else. An empty body
/// is `{}`.
fn worker_of(caller: MaybeCaller, body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    let request: WorkerBody = body::parse_optional(&body?)?;
    acting_worker(caller, request.worker.as_deref())
}

/// Who acts: the authenticated principal, which a body's `worker` may
/// repeat but never replace; on an open server, the body's `worker`.
fn acting_worker(caller: MaybeCaller, named: Option<&str>) -> Result<String, ApiError> {
    acting(caller, named, "worker")
}

/// The person acting: the caller's principal, or on a server without
/// credentials the name given in body field `field`, which must then be
/// present. A name other than the caller's own is refused.
pub(crate) fn acting(
    caller: MaybeCaller,
    named: Option<&str>,
    field: &'static str,
) -> Result<String, ApiError> {
    match (caller, named) {
        (Some(Extension(Caller(principal))), None) => Ok(principal.name.clone()),
        (Some(Extension(Caller(principal))), Some(named)) => {
            if named.trim() == principal.name {
                Ok(principal.name.clone())
            } else {
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "not-your-identity",
                    format!(
                        "`{field}` names someone other than the caller ({}): the acting person \
                         is the one the credential belongs to; leave `{field}` out",
                        principal.name
                    ),
                )
                .with_field(field))
            }
        }
        (None, Some(named)) => Ok(nonempty(field, named)?.to_string()),
        (None, None) => Err(ApiError::invalid_field(
            field,
            format!(
                "`{field}` is required: this server has no credentials configured, so it \
                 cannot tell who is acting"
            ),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    worker: Option<String>,
    outcome: String,
    correction: Option<String>,
    #[serde(default)]
    note: String,
    warranted: bool,
}

/// `POST /v1/handoffs/{id}/resolve`: the human's outcome, the feedback
/// that calibrates thresholds.
pub async fn resolve(
    State(app): State<Arc<App>>,
    caller: MaybeCaller,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Handoff>, ApiError> {
    let request: ResolveBody = body::parse(&body?)?;
    let worker = acting_worker(caller, request.worker.as_deref())?;
    let resolution = resolution_of(
        &request.outcome,
        request.correction,
        request.note,
        request.warranted,
    )?;
    Ok(Json(resolve_as(&app, &id, &worker, &resolution).await?))
}

/// A resolution from its parts, with the error naming the part at fault:
/// the API and the dashboard's form refuse the same input the same way.
pub(crate) fn resolution_of(
    outcome: &str,
    correction: Option<String>,
    note: String,
    warranted: bool,
) -> Result<Resolution, ApiError> {
    let outcome = Outcome::from_parts(outcome, correction).map_err(|e| {
        let field = match e {
            OutcomeError::Unknown(_) => "outcome",
            OutcomeError::MissingCorrection | OutcomeError::StrayCorrection(_) => "correction",
        };
        ApiError::invalid_field(field, format!("`{field}`: {e}"))
    })?;
    Ok(Resolution {
        outcome,
        note,
        warranted,
    })
}

/// Resolves `id` as `worker` and wakes the long polls waiting for it.
pub(crate) async fn resolve_as(
    app: &App,
    id: &str,
    worker: &str,
    resolution: &Resolution,
) -> Result<Handoff, ApiError> {
    let handoff = app.dispatcher.resolve(id, worker, resolution).await?;
    app.changed.notify_waiters();
    Ok(handoff)
}

pub(crate) fn nonempty<'a>(field: &'static str, value: &'a str) -> Result<&'a str, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::invalid_field(
            field,
            format!("`{field}` must not be empty"),
        ));
    }
    Ok(value)
}
