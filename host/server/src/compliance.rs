//! What compliance and operations read: the serving policies with their
//! limits and capabilities, the audit trail (verified or queried), the
//! feedback report, and a replay of recent decisions against a candidate
//! policy that is never activated.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{StatusCode, header};
use chrono::{DateTime, Utc};
use handoff_pipeline::fleet_audit;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::app::App;
use super::error::ApiError;
use handoff_audit::{AuditLog, Body, Entry, Filter, VerifyError, query, verify};
use handoff_dispatch::{FeedbackReport, ReportOptions, feedback_report};
use handoff_model::{CompileOrigin, FailureMode, Tier};
use handoff_pipeline::calibration;
use handoff_pipeline::replay::{ReplayReport, replay};
use handoff_policy::limits::Limits;
use handoff_policy::manifest::{InstanceReuse, Mode};
use handoff_policy::reload::PluginStatus;
use handoff_policy::{Contract, Evaluator, Import, Plugin, TriggerInfo};
use handoff_trust::{Activation, Examination};

/// The policy set as compliance reviews it.
#[derive(Debug, Serialize)]
pub struct PoliciesView {
    /// The generation serving now.
    pub generation: u64,
    /// The directory the server watches.
    pub dir: String,
    /// The activation policy every version must meet to serve.
    pub activation: Activation,
    /// Whether a lock file pins the exact versions allowed to serve.
    pub locked: bool,
    /// The fleet's published generation this node serves, once it serves
    /// one: from then on the directory no longer changes what serves.
    pub fleet_generation: Option<u64>,
    /// Every loaded plugin, enabled or not, in evaluation order.
    pub plugins: Vec<PluginView>,
    /// Per plugin: what serves, and the last reload that failed.
    pub status: Vec<PluginStatus>,
}

/// One loaded plugin: what it is, what it may consume and what it can touch.
#[derive(Debug, Serialize)]
pub struct PluginView {
    /// Name in the set.
    pub name: String,
    /// The policy's own version.
    pub version: String,
    /// What it is for.
    pub description: String,
    /// SHA-256 of the component.
    pub digest: String,
    /// Whether it evaluates.
    pub enabled: bool,
    /// Whether it decides (`enforce`) or is piloted beside (`shadow`).
    pub mode: Mode,
    /// Its place in evaluation order.
    pub order: i32,
    /// What a fault turns into.
    pub failure_mode: FailureMode,
    /// Fuel, deadline, memory, tables, instances.
    pub limits: Limits,
    /// Warm or fresh instances.
    pub instance_reuse: InstanceReuse,
    /// The triggers it implements.
    pub triggers: Vec<TriggerInfo>,
    /// Every import and the sandbox's answer to it.
    pub capabilities: Vec<Import>,
    /// Compiled or from the cache.
    #[serde(flatten)]
    pub compile: CompileOrigin,
    /// Time to load, validate and self-test it.
    pub load_ms: f64,
    /// What an operator should know though it loaded: no manifest (it runs
    /// with defaults and no fixture), a file name not the policy's own.
    pub warnings: Vec<String>,
    /// The contract version it was built for, `handoff:policy@0.2.0`
    /// say: what its item is passed as.
    pub contract: Contract,
    /// SHA-256 of its manifest, when it has one.
    pub manifest_digest: Option<String>,
    /// Its signatures, who signed in which role, and whether the activation
    /// policy (and the lock) were met when it was admitted.
    pub trust: Examination,
}

impl PluginView {
    fn of(plugin: &Plugin) -> PluginView {
        PluginView {
            name: plugin.name.to_string(),
            version: plugin.info.version.clone(),
            description: plugin.info.description.clone(),
            digest: plugin.digest.clone(),
            enabled: plugin.manifest.enabled,
            mode: plugin.manifest.mode,
            order: plugin.manifest.order,
            failure_mode: plugin.manifest.failure_mode,
            limits: plugin.manifest.limits,
            instance_reuse: plugin.manifest.instance_reuse,
            triggers: plugin.info.triggers.clone(),
            capabilities: plugin.imports.clone(),
            compile: plugin.compiled.clone(),
            load_ms: plugin.load_ms,
            warnings: plugin.warnings.clone(),
            contract: plugin.contract(),
            manifest_digest: plugin.manifest_digest.clone(),
            trust: plugin.trust.clone(),
        }
    }
}

/// `GET /v1/policies`.
pub async fn policies(State(app): State<Arc<App>>) -> Json<PoliciesView> {
    Json(policies_view(&app))
}

/// The serving policy set, as the API and the dashboard show it.
pub(crate) fn policies_view(app: &App) -> PoliciesView {
    let set = app.live.current();
    let plugins = set.loaded().map(|p| PluginView::of(p)).collect();
    PoliciesView {
        generation: set.generation(),
        dir: app.live.dir().display().to_string(),
        activation: app.live.runtime().trust().activation(),
        locked: app.live.runtime().trust().lock().is_some(),
        fleet_generation: app.live.fleet_generation(),
        plugins,
        status: app.live.status(),
    }
}

/// `GET /v1/audit/verify`: whether the chain is intact, and where it breaks
/// if not. A broken chain is a finding, so it is a 200 with `intact: false`.
pub async fn audit_verify(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    Ok(Json(verification(&app).await?))
}

/// Whether the chain is intact, as `GET /v1/audit/verify` answers it. On a
/// node of a fleet, also every node's chain in the shared store (`nodes`),
/// and `intact` only if all of them are.
pub(crate) async fn verification(app: &App) -> Result<Value, ApiError> {
    let mut local = file_verification(app).await?;
    let Some(ledger) = app.dispatcher.store().ledger() else {
        return Ok(local);
    };
    let chains = fleet_audit::verify_fleet(ledger)
        .await
        .map_err(|e| ApiError::internal("cannot read the audit chains", e))?;
    let mut intact = local["intact"] == Value::Bool(true);
    let nodes: Vec<Value> = chains
        .iter()
        .map(|chain| match &chain.outcome {
            Ok(verified) => json!({
                "node": chain.head.node,
                "intact": true,
                "records": verified.records,
            }),
            Err(error) => {
                intact = false;
                json!({"node": chain.head.node, "intact": false, "error": error.to_string()})
            }
        })
        .collect();
    local["intact"] = Value::Bool(intact);
    local["nodes"] = Value::Array(nodes);
    Ok(local)
}

/// Whether this host's audit files hold an intact chain.
async fn file_verification(app: &App) -> Result<Value, ApiError> {
    let audit = app.audit.clone();
    let outcome = tokio::task::spawn_blocking(move || log_files(&audit).map(|f| verify(&f)))
        .await
        .map_err(|e| ApiError::internal("verification did not finish", e))??;
    Ok(match outcome {
        Ok(verified) => json!({
            "intact": true,
            "records": verified.records,
            "files": verified.files,
            "first_seq": verified.first_seq,
            "last_seq": verified.last_seq,
        }),
        Err(VerifyError::Broken(at)) => json!({
            "intact": false,
            "error": at.to_string(),
            "seq": at.seq,
            "kind": at.kind,
            "file": at.file,
            "line": at.line,
        }),
        Err(error) => json!({"intact": false, "error": error.to_string()}),
    })
}

/// What an audit search asks for: the API's query string and the
/// dashboard's search form alike.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub(crate) tier: Option<Tier>,
    pub(crate) plugin: Option<String>,
    pub(crate) reason_code: Option<String>,
    pub(crate) item: Option<String>,
    pub(crate) since: Option<DateTime<Utc>>,
    pub(crate) until: Option<DateTime<Utc>>,
    /// The most recent this many matches (default 100, at most 10,000).
    pub(crate) limit: Option<usize>,
}

/// `GET /v1/audit`: matching records, oldest first, as stored.
pub async fn audit_query(
    State(app): State<Arc<App>>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let Query(query) = query?;
    let matching = search(&app, query).await?;
    // Only the records answered are turned back into JSON values.
    Ok(Json(
        matching
            .iter()
            .map(|entry| serde_json::from_str(&entry.line).unwrap_or(Value::Null))
            .collect(),
    ))
}

/// The most recent records matching `query` (100 unless it says, at most
/// 10,000), oldest first.
pub(crate) async fn search(app: &App, query: AuditQuery) -> Result<Vec<Entry>, ApiError> {
    let limit = query.limit.unwrap_or(100).min(10_000);
    let filter = Filter {
        tier: query.tier,
        plugin: query.plugin,
        reason_code: query.reason_code,
        since: query.since,
        until: query.until,
        item: query.item,
    };
    let fleet = match app.dispatcher.store().ledger() {
        // A fleet's trail is every node's chain.
        Some(ledger) => Some(
            fleet_audit::fleet_entries(ledger)
                .await
                .map_err(|e| ApiError::internal("cannot read the audit chains", e))?,
        ),
        None => None,
    };
    let audit = app.audit.clone();
    tokio::task::spawn_blocking(move || {
        let entries = match fleet {
            Some(entries) => entries,
            None => read_log(&audit)?,
        };
        let mut matching: Vec<Entry> = entries
            .into_iter()
            .filter(|entry| filter.matches(&entry.record))
            .collect();
        let skip = matching.len().saturating_sub(limit);
        matching.drain(..skip);
        Ok(matching)
    })
    .await
    .map_err(|e| ApiError::internal("the audit query did not finish", e))?
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReportQuery {
    pub(crate) cost_per_human_minute: Option<f64>,
    pub(crate) cost_per_agent_attempt: Option<f64>,
    pub(crate) default_human_minutes: Option<f64>,
    pub(crate) target_error: Option<f64>,
    pub(crate) delta: Option<f64>,
}

/// `GET /v1/report`: the feedback report, as `handoff report --json`, with
/// calibration keys from the policies serving now.
pub async fn feedback(
    State(app): State<Arc<App>>,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Json<FeedbackReport>, ApiError> {
    let Query(query) = query?;
    let options = report_options(&query)?;
    let (history, now) = app.dispatcher.history().await?;
    let targets = calibration::targets_of_set(&app.pipeline.evaluators().policies().current());
    Ok(Json(feedback_report(&history, now, &options, &targets)))
}

/// The report's options: the defaults, with what the query gives.
pub(crate) fn report_options(query: &ReportQuery) -> Result<ReportOptions, ApiError> {
    let defaults = ReportOptions::default();
    let options = ReportOptions {
        cost_per_human_minute: query
            .cost_per_human_minute
            .unwrap_or(defaults.cost_per_human_minute),
        cost_per_agent_attempt: query
            .cost_per_agent_attempt
            .unwrap_or(defaults.cost_per_agent_attempt),
        default_human_minutes: query
            .default_human_minutes
            .unwrap_or(defaults.default_human_minutes),
        target_error: query.target_error.unwrap_or(defaults.target_error),
        delta: query.delta.unwrap_or(defaults.delta),
    };
    options
        .validate()
        .map_err(|e| ApiError::invalid_field(e.field, format!("`{}` {}", e.field, e.reason)))?;
    Ok(options)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayQuery {
    /// The plugin the candidate replaces (or joins the set as).
    plugin: String,
    /// How many of the most recent decisions to replay (default 1,000).
    recent: Option<usize>,
}

/// What a replay answers.
#[derive(Debug, Serialize)]
pub struct ReplayView {
    /// The candidate, as it would serve.
    pub candidate: PluginView,
    /// What it would have changed.
    pub report: ReplayReport,
}

/// `POST /v1/replay?plugin=NAME`: the body is a candidate component, or a
/// `multipart/form-data` body with a `component` part, an optional
/// `manifest` part (TOML) and an optional `signatures` part (the candidate's
/// `NAME.sig`): new fixtures or configuration backtested before they are
/// installed. It is loaded and validated like a reload (with the candidate
/// manifest, else the one the directory holds for NAME), the host's
/// activation policy and lock included, then the
/// most recent decisions are decided again by the serving set with the
/// candidate in place. Nothing is activated and nothing is written.
pub async fn candidate_replay(
    State(app): State<Arc<App>>,
    query: Result<Query<ReplayQuery>, QueryRejection>,
    request: Request,
) -> Result<Json<ReplayView>, ApiError> {
    let Query(query) = query?;
    let max_manifest = app.live.runtime().limits().max_manifest_bytes;
    let parts = candidate_parts(request, &app, max_manifest).await?;
    let recent = query.recent.unwrap_or(1000);
    let name = query.plugin;
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(ApiError::invalid_field(
            "plugin",
            "`plugin` must be a plugin name, not a path",
        ));
    }
    // Loading the candidate compiles it: off the request path and off the
    // evaluators, one compile at a time (the runtime's compile lane).
    let live = app.live.clone();
    let (name, loaded) = tokio::task::spawn_blocking(move || {
        let loaded = live.candidate(&name, parts.component, parts.manifest, parts.signatures);
        (name, loaded)
    })
    .await
    .map_err(|e| ApiError::internal("the candidate did not load", e))?;
    let (set, candidate) = loaded.map_err(|rejection| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "candidate-rejected",
            format!(
                "the candidate `{name}` would be rejected: {}",
                rejection.reason
            ),
        )
    })?;
    let candidate = PluginView::of(&candidate);
    let audit = app.audit.clone();
    let decisions = tokio::task::spawn_blocking(move || recent_decisions(&audit, recent))
        .await
        .map_err(|e| ApiError::internal("the audit log could not be read", e))??;
    // Replaying evaluates: it runs where evaluations run, under one of
    // their slots, on a fresh instance per item so that a plugin that
    // depends on what it decided before shows up as a change.
    let report = app
        .pipeline
        .offload(move || replay(&decisions, &mut Evaluator::fresh(Arc::new(set))))
        .await?;
    Ok(Json(ReplayView { candidate, report }))
}

/// What a candidate upload holds.
struct CandidateParts {
    component: Vec<u8>,
    manifest: Option<String>,
    signatures: Option<String>,
}

/// The candidate's files: the whole body as the component, or the
/// `component`, `manifest` and `signatures` parts of a multipart body. All
/// are bounded: the body by the route's limit, the manifest by the load
/// limit, the signatures by the signature file's.
async fn candidate_parts(
    request: Request,
    app: &Arc<App>,
    max_manifest: usize,
) -> Result<CandidateParts, ApiError> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("multipart/form-data"));
    if !multipart {
        let body = Bytes::from_request(request, app).await?;
        return Ok(CandidateParts {
            component: body.to_vec(),
            manifest: None,
            signatures: None,
        });
    }
    let bad = |field: &str, reason: String| ApiError::invalid_field(field, reason);
    let mut form = Multipart::from_request(request, app)
        .await
        .map_err(|e| bad("body", format!("not a multipart form: {e}")))?;
    let (mut component, mut manifest, mut signatures) = (None, None, None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| bad("body", format!("a broken multipart part: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_string();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| bad(&name, format!("cannot read the part: {e}")))?;
        match name.as_str() {
            "component" if component.is_none() => component = Some(bytes.to_vec()),
            "manifest" if manifest.is_none() => {
                manifest = Some(text_part("manifest", &bytes, max_manifest)?);
            }
            "signatures" if signatures.is_none() => {
                signatures = Some(text_part(
                    "signatures",
                    &bytes,
                    handoff_trust::MAX_SIGNATURE_FILE_BYTES,
                )?);
            }
            "component" | "manifest" | "signatures" => {
                return Err(bad(&name, format!("the part `{name}` is given twice")));
            }
            other => {
                return Err(bad(
                    "body",
                    format!(
                        "unknown part {:?}: the parts are `component`, `manifest` and `signatures`",
                        other.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
    }
    let component = component.ok_or_else(|| {
        bad(
            "component",
            "the multipart body has no `component` part".into(),
        )
    })?;
    Ok(CandidateParts {
        component,
        manifest,
        signatures,
    })
}

/// A text part of a candidate upload, within `limit` bytes.
fn text_part(field: &str, bytes: &[u8], limit: usize) -> Result<String, ApiError> {
    if bytes.len() > limit {
        return Err(ApiError::invalid_field(
            field,
            format!("larger than the {limit}-byte limit for `{field}`"),
        ));
    }
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::invalid_field(field, "not UTF-8 text".to_string()))
}

/// The most recent `recent` decision records of the audit log.
fn recent_decisions(audit: &AuditLog, recent: usize) -> Result<Vec<Entry>, ApiError> {
    let mut decisions: Vec<Entry> = read_log(audit)?
        .into_iter()
        .filter(|e| matches!(e.record.body, Body::Decision(_)))
        .collect();
    let skip = decisions.len().saturating_sub(recent);
    decisions.drain(..skip);
    Ok(decisions)
}

/// The audit log's files, with every record appended so far written out.
fn log_files(audit: &AuditLog) -> Result<Vec<PathBuf>, ApiError> {
    audit
        .flush()
        .and_then(|()| audit.files())
        .map_err(|e| ApiError::internal("cannot read the audit log", e))
}

/// Every record of the audit log.
pub(crate) fn read_log(audit: &AuditLog) -> Result<Vec<Entry>, ApiError> {
    query::read(&log_files(audit)?).map_err(|e| ApiError::internal("cannot read the audit log", e))
}
