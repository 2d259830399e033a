//! Calibration that closes the loop: a threshold change proposed from the
//! evidence, and applied only when a second, different person with the
//! approver role approves it. Proposals and approvals live in the audit
//! trail itself (`calibration-proposed`, `calibration-approved`), so the
//! record of who wanted what, on which evidence, and who agreed is the
//! tamper-evident one; nothing else holds them.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::app::App;
use super::body;
use super::compliance::{ReportQuery, read_log, report_options};
use super::error::ApiError;
use super::handoffs::{MaybeCaller, acting};
use super::pilot::change_error;
use handoff_audit::Body;
use handoff_dispatch::{ThresholdStep, feedback_report};
use handoff_model::{CalibrationEvidence, LifecycleEvent};
use handoff_pipeline::calibration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ProposeBody {
    plugin: String,
    trigger: String,
    target_error: Option<f64>,
    delta: Option<f64>,
    /// Who proposes, on a server without credentials.
    by: Option<String>,
}

/// A proposal as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Proposal {
    /// Its id.
    pub proposal: String,
    /// When it was proposed.
    pub at: DateTime<Utc>,
    /// The plugin whose manifest would change.
    pub plugin: String,
    /// The trigger.
    pub trigger: String,
    /// The `[config]` key.
    pub config_key: String,
    /// The key's value when proposed.
    pub from: f64,
    /// The value proposed.
    pub to: f64,
    /// The manifest change, as a person reads it.
    pub change: String,
    /// What it rests on.
    pub evidence: CalibrationEvidence,
    /// Who proposed it.
    pub proposed_by: String,
    /// Who approved it, once someone has.
    pub approved_by: Option<String>,
    /// The generation it first served in, once approved.
    pub generation: Option<u64>,
}

/// What proposing answers: the proposal, and every threshold the walk
/// tested (n, errors and bound per candidate).
#[derive(Debug, Serialize)]
pub struct Proposed {
    /// The proposal.
    #[serde(flatten)]
    pub proposal: Proposal,
    /// The walk behind it.
    pub steps: Vec<ThresholdStep>,
}

/// `POST /v1/calibration/proposals`: proposes setting a probabilistic
/// trigger's threshold to the value calibration suggests now.
pub async fn propose(
    State(app): State<Arc<App>>,
    caller: MaybeCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Proposed>), ApiError> {
    let request: ProposeBody = body::parse(&body?)?;
    let by = acting(caller, request.by.as_deref(), "by")?;
    let options = report_options(&ReportQuery {
        target_error: request.target_error,
        delta: request.delta,
        ..ReportQuery::default()
    })?;
    let (history, now) = app.dispatcher.history().await?;
    let targets = calibration::targets_of_set(&app.live.current());
    let report = feedback_report(&history, now, &options, &targets);
    let found = report
        .calibration
        .triggers
        .iter()
        .find(|c| c.plugin == request.plugin && c.trigger == request.trigger)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no probabilistic trigger `{}` of plugin `{}` to calibrate: it needs a \
                 `[calibrate]` entry in the plugin's manifest and resolved handoffs",
                request.trigger, request.plugin
            ))
        })?;
    let unable = |why: String| ApiError::new(StatusCode::CONFLICT, "no-suggestion", why);
    let (Some(config_key), Some(from)) = (found.config_key.clone(), found.current) else {
        return Err(unable(format!(
            "`{}` of `{}` names no configuration key with a value ([calibrate] in its \
             manifest), so there is nothing to change",
            request.trigger, request.plugin
        )));
    };
    let suggestion = &found.suggestion;
    let (Some(to), Some(upper_bound)) = (suggestion.threshold, suggestion.upper_bound) else {
        return Err(unable(format!(
            "the evidence suggests no threshold yet: {} more resolved items are needed at the \
             least",
            suggestion.more_needed.unwrap_or(1)
        )));
    };
    if to == from {
        return Err(unable(format!(
            "`{config_key}` is already {from}, the value the evidence suggests"
        )));
    }
    let evidence = CalibrationEvidence {
        n: suggestion.n,
        errors: suggestion.errors,
        effective_n: suggestion.effective_n,
        effective_errors: suggestion.effective_errors,
        upper_bound,
        target_error: suggestion.target_error,
        delta: suggestion.delta,
    };
    let event = LifecycleEvent::CalibrationProposed {
        proposal: proposal_id(&request.plugin, &config_key, to, &by, now),
        plugin: request.plugin,
        trigger: request.trigger,
        config_key,
        from,
        to,
        evidence,
        by,
    };
    let proposal = Proposal::of(&event, now);
    record(&app, event).await?;
    Ok((
        StatusCode::CREATED,
        Json(Proposed {
            proposal: proposal.ok_or_else(|| {
                ApiError::internal("a proposal could not be described", "not a proposal event")
            })?,
            steps: suggestion.steps.clone(),
        }),
    ))
}

impl Proposal {
    /// The proposal a `calibration-proposed` event records, made at `at`;
    /// none for any other event.
    fn of(event: &LifecycleEvent, at: DateTime<Utc>) -> Option<Proposal> {
        let LifecycleEvent::CalibrationProposed {
            proposal,
            plugin,
            trigger,
            config_key,
            from,
            to,
            evidence,
            by,
        } = event
        else {
            return None;
        };
        Some(Proposal {
            proposal: proposal.clone(),
            at,
            plugin: plugin.clone(),
            trigger: trigger.clone(),
            config_key: config_key.clone(),
            from: *from,
            to: *to,
            change: format!("{plugin}.toml: [config] {config_key} = {from} -> {to}"),
            evidence: evidence.clone(),
            proposed_by: by.clone(),
            approved_by: None,
            generation: None,
        })
    }
}

/// `GET /v1/calibration/proposals`: every proposal, oldest first, with
/// its approval once there is one.
pub async fn list(State(app): State<Arc<App>>) -> Result<Json<Vec<Proposal>>, ApiError> {
    Ok(Json(proposals(&app).await?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    /// Apply the change as the shadow version `PLUGIN@calibrated`, to pilot
    /// it before it enforces.
    #[serde(default)]
    shadow: bool,
    /// Who approves, on a server without credentials.
    by: Option<String>,
}

/// `POST /v1/calibration/proposals/{id}/approve`: a second person applies
/// the proposal as a new policy version, through the validated reload.
pub async fn approve(
    State(app): State<Arc<App>>,
    caller: MaybeCaller,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Proposal>, ApiError> {
    let request: ApproveBody = body::parse_optional(&body?)?;
    let by = acting(caller, request.by.as_deref(), "by")?;
    // One approval at a time, so that two approvers of one proposal cannot
    // both apply it.
    let _one_at_a_time = app.approvals.lock().await;
    let mut proposal = proposals(&app)
        .await?
        .into_iter()
        .find(|p| p.proposal == id)
        .ok_or_else(|| ApiError::not_found(format!("no calibration proposal `{id}`")))?;
    if let Some(approver) = &proposal.approved_by {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already-approved",
            format!("proposal `{id}` was already approved by {approver}"),
        ));
    }
    if proposal.proposed_by == by {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "same-person",
            format!(
                "{by} proposed `{id}` and cannot also approve it: a threshold is never changed \
                 by one person alone; another approver must"
            ),
        ));
    }
    let current = app.live.current();
    let now = current
        .get(&proposal.plugin)
        .and_then(|p| p.manifest.config.get(&proposal.config_key))
        .and_then(|v| v.parse::<f64>().ok());
    if now != Some(proposal.from) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "stale-proposal",
            format!(
                "`{}` of `{}` is {} now, not the {} the proposal was made against: propose \
                 again on the current evidence",
                proposal.config_key,
                proposal.plugin,
                now.map_or("unset".to_string(), |v| v.to_string()),
                proposal.from
            ),
        ));
    }
    let live = app.live.clone();
    let (plugin, key, to, shadow) = (
        proposal.plugin.clone(),
        proposal.config_key.clone(),
        proposal.to,
        request.shadow,
    );
    let (carrier, generation) =
        tokio::task::spawn_blocking(move || live.set_config(&plugin, &key, to, shadow))
            .await
            .map_err(|e| ApiError::internal("the approval did not finish", e))?
            .map_err(change_error)?;
    let event = LifecycleEvent::CalibrationApproved {
        proposal: id,
        plugin: carrier,
        config_key: proposal.config_key.clone(),
        from: proposal.from,
        to: proposal.to,
        proposed_by: proposal.proposed_by.clone(),
        approved_by: by.clone(),
        generation,
    };
    record(&app, event).await?;
    proposal.approved_by = Some(by);
    proposal.generation = Some(generation);
    Ok(Json(proposal))
}

/// Every proposal in the audit trail, with its approval.
async fn proposals(app: &App) -> Result<Vec<Proposal>, ApiError> {
    let audit = app.audit.clone();
    let entries = tokio::task::spawn_blocking(move || read_log(&audit))
        .await
        .map_err(|e| ApiError::internal("the audit log could not be read", e))??;
    let mut found: Vec<Proposal> = Vec::new();
    for entry in entries {
        let Body::Lifecycle { event } = entry.record.body else {
            continue;
        };
        if let Some(proposal) = Proposal::of(&event, entry.record.ts) {
            found.push(proposal);
            continue;
        }
        if let LifecycleEvent::CalibrationApproved {
            proposal,
            approved_by,
            generation,
            ..
        } = event
            && let Some(p) = found.iter_mut().find(|p| p.proposal == proposal)
        {
            p.approved_by = Some(approved_by);
            p.generation = Some(generation);
        }
    }
    Ok(found)
}

/// Records `event` in the audit trail, off the async workers.
async fn record(app: &App, event: LifecycleEvent) -> Result<(), ApiError> {
    let audit = app.audit.clone();
    tokio::task::spawn_blocking(move || audit.record_lifecycle(&event))
        .await
        .map_err(|e| ApiError::internal("the audit log did not answer", e))?
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit-unavailable",
                format!("the audit log cannot record, so nothing was changed: {e}"),
            )
        })?;
    Ok(())
}

/// A proposal's id: unique per proposer, change and instant.
fn proposal_id(plugin: &str, key: &str, to: f64, by: &str, at: DateTime<Utc>) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in [plugin, key, &to.to_string(), by, &at.to_rfc3339()] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    format!("cal-{}", hex::encode(&hasher.finalize()[..6]))
}
