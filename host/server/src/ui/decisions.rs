//! The compliance side of the audit trail: search every record by item,
//! tier, plugin, reason code and time; a decision's explanation; the whole
//! story of one piece of work (its decisions and every handoff event, in
//! the chain's order); and whether the chain verifies. It reads the same
//! log, with the same filter, as `GET /v1/audit`.

use std::sync::Arc;

use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::Value;

use super::access::{Viewer, encode_component};
use super::explain;
use super::layout::{Problem, api_error_box, instant, respond, shell, tier_badge};
use super::query_of;
use crate::app::App;
use crate::compliance::{AuditQuery, read_log, search as audit_search, verification};
use crate::error::ApiError;
use handoff_audit::{Body, Entry};
use handoff_model::{Named, Tier};

/// `GET /ui/decisions`: the search form, the chain's status, the matches
/// (newest first).
pub async fn search(
    State(app): State<Arc<App>>,
    Extension(viewer): Extension<Viewer>,
    RawQuery(raw): RawQuery,
) -> Response {
    let raw = raw.unwrap_or_default();
    let parsed = query_of::<AuditQuery>(Some(&with_zones(&raw)));
    let fields: Vec<(String, String)> = serde_urlencoded::from_str(&raw).unwrap_or_default();
    let value = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (entries, error) = match parsed {
        Ok(query) => match audit_search(&app, query).await {
            Ok(entries) => (entries, None),
            Err(error) => (Vec::new(), Some(error)),
        },
        Err(error) => (Vec::new(), Some(error)),
    };
    let chain = verification(&app).await;
    let status = error.as_ref().map_or(StatusCode::OK, ApiError::status);
    let body = html! {
        h1 { "Decisions" }
        (chain_status(&chain))
        form.search method="get" action="/ui/decisions" aria-label="Search the audit log" {
            label { "Item" input name="item" value=(value("item")); }
            label { "Tier"
                select name="tier" {
                    option value="" { "any" }
                    @for tier in [Tier::None, Tier::SelfCorrect, Tier::Operator, Tier::Executive] {
                        option value=(tier.as_str()) selected[value("tier") == tier.as_str()] { (tier.as_str()) }
                    }
                }
            }
            label { "Plugin" input name="plugin" value=(value("plugin")); }
            label { "Reason code" input name="reason_code" value=(value("reason_code")) placeholder="auth-limit"; }
            label { "Since (UTC)" input name="since" value=(value("since")) placeholder="2026-12-01T09:00"; }
            label { "Until (UTC)" input name="until" value=(value("until")); }
            label { "At most" input name="limit" value=(value("limit")) placeholder="100" size="6"; }
            button type="submit" { "Search" }
        }
        @if let Some(error) = &error { (api_error_box(error)) }
        p.muted { (entries.len()) " record(s), newest first." }
        table {
            caption.visually-hidden { "Matching audit records" }
            thead { tr { th { "Seq" } th { "When" } th { "What" } th { "Item" } th { "Tier" } th { "By" } th { "Reason" } } }
            tbody {
                @for entry in entries.iter().rev() { (row(entry)) }
            }
        }
    };
    respond(status, shell(Some(&viewer), "decisions", "Decisions", body))
}

/// A `datetime-local` value (`2026-12-01T09:00`) is UTC here: the API
/// takes RFC 3339, so the zone is added before the same parser reads it.
fn with_zones(raw: &str) -> String {
    let fields: Vec<(String, String)> = serde_urlencoded::from_str(raw).unwrap_or_default();
    let fields: Vec<(String, String)> = fields
        .into_iter()
        .map(|(name, value)| {
            let value = value.trim().to_string();
            let bare = value.len() == 16 && value.as_bytes().get(10) == Some(&b'T');
            let value = if (name == "since" || name == "until") && bare {
                format!("{value}:00Z")
            } else {
                value
            };
            (name, value)
        })
        .collect();
    serde_urlencoded::to_string(&fields).unwrap_or_default()
}

fn chain_status(chain: &Result<Value, ApiError>) -> Markup {
    html! {
        section.card #chain aria-label="Audit chain" {
            @match chain {
                Ok(v) if v["intact"] == true => {
                    span.ok { "Chain intact" } ": "
                    (v["records"]) " records in " (v["files"]) " file(s), seq "
                    (v["first_seq"]) "–" (v["last_seq"]) ", every hash verified from record 1."
                }
                Ok(v) => {
                    span.bad { "Chain broken" } ": " (v["error"].as_str().unwrap_or("unknown"))
                }
                Err(error) => (api_error_box(error)),
            }
        }
    }
}

fn row(entry: &Entry) -> Markup {
    let r = &entry.record;
    let seq_link = html! { a href={ "/ui/decisions/" (r.seq) } { (r.seq) } };
    match &r.body {
        Body::Decision(d) => html! {
            tr {
                td { (seq_link) }
                td { (instant(r.ts)) }
                td { "decision" }
                td { a href={ "/ui/work/" (encode_component(&d.decision.id)) } { (d.decision.id) } }
                td { (tier_badge(d.decision.tier())) }
                td { (d.decision.driver.as_deref().unwrap_or("host")) }
                td { code { (d.decision.reason_code()) } }
            }
        },
        Body::Handoff { event } => html! {
            tr {
                td { (seq_link) }
                td { (instant(r.ts)) }
                td { "handoff " (event.kind) }
                td { a href={ "/ui/work/" (encode_component(&event.item)) } { (event.item) } }
                td {}
                td { (event.actor) }
                td { code { (event.handoff) } }
            }
        },
        Body::Lifecycle { event } => html! {
            tr {
                td { (seq_link) }
                td { (instant(r.ts)) }
                td { "policy " (<&'static str>::from(event)) }
                td {}
                td {}
                td { (lifecycle_plugin(event)) }
                td {}
            }
        },
        other => html! {
            tr {
                td { (seq_link) } td { (instant(r.ts)) } td { (kind_of(other)) } td {} td {} td {} td {}
            }
        },
    }
}

fn lifecycle_plugin(event: &handoff_model::LifecycleEvent) -> String {
    serde_json::to_value(event)
        .ok()
        .and_then(|v| v["plugin"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn kind_of(body: &Body) -> &'static str {
    match body {
        Body::Decision(_) => "decision",
        Body::Lifecycle { .. } => "policy",
        Body::Handoff { .. } => "handoff",
        Body::Recovery { .. } => "recovery",
        Body::Outage { .. } => "outage",
    }
}

/// `GET /ui/decisions/{seq}`: one record, explained.
pub async fn explain(
    State(app): State<Arc<App>>,
    Extension(viewer): Extension<Viewer>,
    Path(seq): Path<String>,
) -> Response {
    let problem = |e: ApiError| Problem::from(e).with_viewer(viewer.clone()).into_response();
    let Ok(seq) = seq.parse::<u64>() else {
        return problem(ApiError::invalid_field(
            "seq",
            "`seq` must be a record's sequence number",
        ));
    };
    let audit = app.audit.clone();
    let found = tokio::task::spawn_blocking(move || {
        read_log(&audit).map(|entries| entries.into_iter().find(|e| e.record.seq == seq))
    })
    .await
    .map_err(|e| ApiError::internal("the audit log could not be read", e))
    .and_then(|r| r);
    let entry = match found {
        Ok(Some(entry)) => entry,
        Ok(None) => {
            return problem(ApiError::not_found(format!(
                "the audit log has no record {seq}"
            )));
        }
        Err(error) => return problem(error),
    };
    let r = &entry.record;
    let title = format!("Record {seq}");
    let body = html! {
        h1 { (title) }
        dl.facts {
            dt { "Recorded" } dd { (instant(r.ts)) }
            dt { "Hash" } dd { code { (r.hash) } }
            dt { "Previous" } dd { code { (r.prev) } }
            @if let Body::Decision(d) = &r.body {
                    dt { "Submitted by" } dd { (d.principal.as_deref().unwrap_or("—")) }
                    dt { "Policy generation" } dd { (d.generation) }
                    dt { "Replayable" } dd { @if d.replayable { "yes" } @else { "no (masked fields)" } }
                    @if !d.masked.is_empty() { dt { "Masked" } dd { (d.masked.join(", ")) } }
            }
        }
        @match &r.body {
            Body::Decision(d) => {
                h2 { "Components that decided" }
                table {
                    thead { tr { th { "Plugin" } th { "SHA-256" } } }
                    tbody { @for (plugin, digest) in &d.digests { tr { td { (plugin) } td { code { (digest) } } } } }
                }
                section.card { h2 { "Decision" } (explain::decision(&d.decision)) }
                section.card {
                    h2 { "The item, as recorded" }
                    @match serde_json::from_value::<handoff_model::WorkItem>(d.item.clone()) {
                        Ok(item) => (explain::item(&item)),
                        Err(_) => (explain::raw(&d.item)),
                    }
                    p { a href={ "/ui/work/" (encode_component(&d.decision.id)) } { "The whole story of " (d.decision.id) } }
                }
            }
            other => {
                h2 { (kind_of(other)) }
                (explain::raw(&serde_json::to_value(other).unwrap_or(Value::Null)))
            }
        }
    };
    respond(
        StatusCode::OK,
        shell(Some(&viewer), "decisions", &title, body),
    )
}

/// `GET /ui/work/{item}`: every record about one piece of work, in order.
pub async fn story(
    State(app): State<Arc<App>>,
    Extension(viewer): Extension<Viewer>,
    Path(item): Path<String>,
) -> Response {
    let query = AuditQuery {
        item: Some(item.clone()),
        limit: Some(10_000),
        ..AuditQuery::default()
    };
    let entries = match audit_search(&app, query).await {
        Ok(entries) => entries,
        Err(error) => return Problem::from(error).with_viewer(viewer).into_response(),
    };
    let title = format!("The story of {item}");
    let body = html! {
        h1 { (title) }
        @if entries.is_empty() { (api_error_box(&ApiError::not_found(format!("the audit log holds nothing about item `{item}`")))) }
        ol.timeline {
            @for entry in &entries {
                li { (story_line(entry)) }
            }
        }
    };
    respond(
        StatusCode::OK,
        shell(Some(&viewer), "decisions", &title, body),
    )
}

fn story_line(entry: &Entry) -> Markup {
    let r = &entry.record;
    html! {
        (instant(r.ts)) " · "
        a href={ "/ui/decisions/" (r.seq) } { "record " (r.seq) } " · "
        @match &r.body {
            Body::Decision(d) => {
                "decided " (tier_badge(d.decision.tier())) " by " (d.decision.driver.as_deref().unwrap_or("the host"))
                ": " code { (d.decision.reason_code()) } " — " (d.decision.verdict.reason)
            }
            Body::Handoff { event } => {
                "handoff " code { (event.handoff) } " " strong { (event.kind) } " by " (event.actor)
                @if let Some(resolution) = event.detail.get("resolution") {
                    " → " (resolution["outcome"].as_str().unwrap_or(""))
                    @if let Some(correction) = resolution["correction"].as_str() { ": " (correction) }
                }
            }
            other => (kind_of(other)),
        }
    }
}
