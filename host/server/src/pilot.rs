//! Piloting policies: the pilot report of every shadow version against
//! what enforces, and promoting a shadow version to enforce.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::app::App;
use super::body;
use super::compliance::read_log;
use super::error::ApiError;
use super::handoffs::{MaybeCaller, acting};
use handoff_pipeline::pilot::{DefaultRoles, Gate, PilotReport, PilotWindow, pilot};
use handoff_policy::reload::ChangeError;

/// `GET /v1/pilot` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PilotQuery {
    /// One shadow version (`NAME@LABEL`).
    shadow: Option<String>,
    /// Records at or after (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Records before (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// Promotion gate limits, `KEY=VALUE` separated by commas
    /// (`changed-share=0.05,fault-rate=0.01`).
    fail_on: Option<String>,
}

/// A pilot report, and the gate's verdict when one was asked for.
#[derive(Debug, Serialize)]
pub struct PilotView {
    /// The report.
    #[serde(flatten)]
    pub report: PilotReport,
    /// Every limit broken; empty when the gate passes or none was given.
    pub breaches: Vec<String>,
}

/// `GET /v1/pilot`: every shadow version against what enforces, over the
/// audit log's decisions in the window.
pub async fn report(
    State(app): State<Arc<App>>,
    query: Result<Query<PilotQuery>, QueryRejection>,
) -> Result<Json<PilotView>, ApiError> {
    let Query(query) = query?;
    Ok(Json(pilot_view(&app, query).await?))
}

/// The pilot report as the API and the dashboard show it.
pub(crate) async fn pilot_view(app: &App, query: PilotQuery) -> Result<PilotView, ApiError> {
    let limits: Vec<String> = query
        .fail_on
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|limit| !limit.is_empty())
        .map(String::from)
        .collect();
    let gate = Gate::parse(&limits).map_err(|e| ApiError::invalid_field("fail_on", e))?;
    let window = PilotWindow {
        shadow: query.shadow,
        since: query.since,
        until: query.until,
    };
    let roles = default_roles(app);
    let audit = app.audit.clone();
    let report = tokio::task::spawn_blocking(move || {
        read_log(&audit).map(|entries| pilot(&entries, &window, &roles))
    })
    .await
    .map_err(|e| ApiError::internal("the pilot report did not finish", e))??;
    let breaches = report
        .shadows
        .iter()
        .flat_map(|shadow| gate.breaches(shadow))
        .collect();
    Ok(PilotView { report, breaches })
}

/// The queues a tier goes to when a verdict names none.
fn default_roles(app: &App) -> DefaultRoles {
    let config = app.dispatcher.config();
    DefaultRoles {
        operator: config.operator.role.clone(),
        executive: config.executive.role.clone(),
        operator_resolve_secs: config.operator.resolve_secs,
        executive_resolve_secs: config.executive.resolve_secs,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteBody {
    /// Who promotes, on a server without credentials.
    by: Option<String>,
}

/// What a promotion answers.
#[derive(Debug, Serialize)]
pub struct Promoted {
    /// The plugin that enforces the promoted version now.
    pub plugin: String,
    /// The name the replaced version runs under in shadow.
    pub shadow: String,
    /// The first generation with the promoted version enforcing.
    pub generation: u64,
    /// Who promoted it.
    pub by: String,
}

/// `POST /v1/policies/{name}/promote`: the shadow version `name`
/// (`NAME@LABEL`) enforces from the next generation on, and the version it
/// replaces goes on in shadow as `name`. Promoting `name` again rolls back.
pub async fn promote(
    State(app): State<Arc<App>>,
    caller: MaybeCaller,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Promoted>, ApiError> {
    let request: PromoteBody = body::parse_optional(&body?)?;
    let by = acting(caller, request.by.as_deref(), "by")?;
    let live = app.live.clone();
    let who = by.clone();
    let promotion = tokio::task::spawn_blocking(move || live.promote(&name, &who))
        .await
        .map_err(|e| ApiError::internal("the promotion did not finish", e))?
        .map_err(change_error)?;
    Ok(Json(Promoted {
        plugin: promotion.plugin,
        shadow: promotion.shadow,
        generation: promotion.generation,
        by,
    }))
}

/// A refused change to the policy directory, as the API answers it.
pub(crate) fn change_error(error: ChangeError) -> ApiError {
    let (status, code) = match &error {
        ChangeError::Invalid(_) => (StatusCode::CONFLICT, "change-invalid"),
        ChangeError::NotServing(_) => (StatusCode::NOT_FOUND, "not-serving"),
        ChangeError::Refused { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "version-rejected"),
        ChangeError::Io(_) => {
            return ApiError::internal("the policy directory could not be written", error);
        }
    };
    ApiError::new(status, code, error.to_string())
}
