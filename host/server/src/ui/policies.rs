//! What serves now: the generation, each plugin's version, digest, limits,
//! failure mode and capabilities (what the sandbox grants, stubs, denies),
//! the last reload that failed, and the history of policy changes from the
//! audit trail. The plugin facts are those of `GET /v1/policies`.

use handoff_model::Named;
use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use super::access::Viewer;
use super::layout::{api_error_box, digest, instant, respond, shell};
use crate::app::App;
use crate::compliance::{AuditQuery, PluginView, policies_view, search};
use handoff_audit::Body;

/// How many policy changes the history shows.
const HISTORY: usize = 50;

/// `GET /ui/policies`.
pub async fn page(State(app): State<Arc<App>>, Extension(viewer): Extension<Viewer>) -> Response {
    let view = policies_view(&app);
    let history = if viewer.may("queryAudit") {
        Some(reload_history(&app).await)
    } else {
        None
    };
    let pilots = if viewer.may("pilotReport") {
        Some(crate::pilot::pilot_view(&app, crate::pilot::PilotQuery::default()).await)
    } else {
        None
    };
    let body = html! {
        h1 { "Policies" }
        p { "Generation " strong #generation { (view.generation) } " serving from " code { (view.dir) } "." }
        @for plugin in &view.plugins {
            (plugin_card(plugin, view.status.iter().find(|s| s.plugin == plugin.name)))
        }
        @for status in view.status.iter().filter(|s| s.serving.is_none()) {
            section.card {
                h2 { (status.plugin) " " span.bad { "not serving" } }
                @if let Some(failure) = &status.last_error { (failure_text(failure)) }
            }
        }
        @if let Some(pilots) = &pilots {
            h2 { "Pilots in shadow" }
            @match pilots {
                Err(error) => (api_error_box(error)),
                Ok(view) if view.report.shadows.is_empty() => p.muted { "No shadow version has run yet. Pilot one by installing it as NAME@LABEL with mode = \"shadow\"." },
                Ok(view) => { @for pilot in &view.report.shadows { (pilot_card(pilot)) } }
            }
        }
        h2 { "Reload history" }
        @match &history {
            None => p.muted { "The history is in the audit trail, which compliance reads." },
            Some(Err(error)) => (api_error_box(error)),
            Some(Ok(rows)) => {
                @if rows.is_empty() { p.muted { "No policy change recorded yet." } }
                table {
                    caption.visually-hidden { "Policy changes, newest first" }
                    thead { tr { th { "When" } th { "Change" } th { "Plugin" } th { "Version" } th { "Digest" } th { "Generation" } th { "Detail" } } }
                    tbody { @for row in rows { (row) } }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        shell(Some(&viewer), "policies", "Policies", body),
    )
}

/// One shadow version against what it pilots, as `GET /v1/pilot` has it.
fn pilot_card(pilot: &handoff_pipeline::pilot::ShadowPilot) -> Markup {
    const TIERS: [&str; 4] = ["none", "self-correct", "operator", "executive"];
    let per_day =
        |c: &handoff_pipeline::pilot::Change| format!("{:.1} → {:.1}", c.enforced, c.shadow);
    html! {
        section.card data-shadow=(pilot.shadow) aria-label={ "Pilot " (pilot.shadow) } {
            h3 { (pilot.shadow) " " span.muted { "pilots " (pilot.pilots) } }
            dl.facts {
                dt { "Decisions beside" } dd { (pilot.decisions) }
                dt { "Would change tier" } dd { (format!("{:.1}%", pilot.changed_share * 100.0)) " (" (pilot.changed.len()) " items change tier or reason)" }
                dt { "Handoffs per day" } dd { (per_day(&pilot.handoffs_per_day)) }
                dt { "SLA hours per day" } dd { (per_day(&pilot.sla_hours_per_day)) }
                dt { "Faults" } dd { (pilot.faults) " (" (format!("{:.2}%", pilot.fault_rate * 100.0)) ")" }
                @if let Some(latency) = pilot.latency_us {
                    dt { "Latency p50 / p99" } dd { (format!("{:.1} / {:.1} µs", latency.p50, latency.p99)) }
                }
            }
            table.matrix {
                caption { "Enforced tier (rows) against the shadow's (columns)" }
                thead { tr { th { } @for tier in TIERS { th scope="col" { (tier) } } } }
                tbody {
                    @for (row, tier) in TIERS.iter().enumerate() {
                        tr { th scope="row" { (tier) } @for n in pilot.matrix[row] { td { (n) } } }
                    }
                }
            }
        }
    }
}

fn plugin_card(
    plugin: &PluginView,
    status: Option<&handoff_policy::reload::PluginStatus>,
) -> Markup {
    let limits = serde_json::to_value(plugin.limits).unwrap_or(Value::Null);
    html! {
        section.card data-plugin=(plugin.name) aria-label={ "Plugin " (plugin.name) } {
            h2 {
                (plugin.name) " "
                span.version { (plugin.version) } " "
                @if plugin.enabled { span.ok { "enabled" } } @else { span.muted { "disabled" } }
                @if plugin.mode == handoff_policy::manifest::Mode::Shadow { " " span.muted { "in shadow" } }
            }
            p.muted { (plugin.description) }
            dl.facts {
                dt { "Digest" } dd { code.digest-full { (plugin.digest) } }
                dt { "Order" } dd { (plugin.order) }
                dt { "On a fault" } dd { (super::layout::kebab(&plugin.failure_mode)) }
                dt { "Instances" } dd { (super::layout::kebab(&plugin.instance_reuse)) }
                dt { "Limits" } dd { (object_text(&limits)) }
                dt { "Loaded in" } dd { (format!("{:.0} ms", plugin.load_ms)) }
                dt { "Signed by" } dd {
                    @if plugin.trust.signatures.is_empty() { span.muted { "no signature" } }
                    @for (i, check) in plugin.trust.signatures.iter().enumerate() {
                        @if i > 0 { ", " }
                        (check.holder.as_deref().unwrap_or("unknown key")) " (" (check.role) ", key "
                        code { (check.key) } ")"
                        @if !check.counts { " " span.bad { "does not count" } }
                    }
                    " " span.muted { "under activation " (plugin.trust.activation) }
                }
                dt { "Triggers" } dd {
                    @for (i, t) in plugin.triggers.iter().enumerate() {
                        @if i > 0 { ", " }
                        code { (t.code) } " (" (t.kind.as_str()) ")"
                    }
                }
                @if let Some(serving) = status.and_then(|s| s.serving.as_ref()) {
                    dt { "Serving since" } dd { (instant(serving.since)) " (generation " (serving.since_generation) ")" }
                }
                @for warning in &plugin.warnings { dt { "Warning" } dd.bad { (warning) } }
                @if let Some(failure) = status.and_then(|s| s.last_error.as_ref()) {
                    dt { "Last reload error" } dd { (failure_text(failure)) }
                }
            }
            details {
                summary { "Capabilities: what the sandbox gives it (" (plugin.capabilities.len()) " imports)" }
                table {
                    thead { tr { th { "Import" } th { "Kind" } th { "Sandbox" } } }
                    tbody {
                        @for import in &plugin.capabilities {
                            @let grant = serde_json::to_value(import.grant).unwrap_or(Value::Null);
                            tr {
                                td { code { (import.name) } }
                                td { (import.kind) }
                                td { (grant["grant"].as_str().unwrap_or("")) " " span.muted { (grant["note"].as_str().unwrap_or("")) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn failure_text(failure: &handoff_policy::reload::ReloadFailure) -> Markup {
    html! {
        span.bad { (failure.reason) } " in " code { (failure.file) } " at " (instant(failure.at))
        @if let Some(at) = failure.superseded_at { " — superseded " (instant(at)) }
    }
}

fn object_text(value: &Value) -> String {
    value
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(" · ")
        })
        .unwrap_or_default()
}

async fn reload_history(app: &App) -> Result<Vec<Markup>, crate::error::ApiError> {
    let entries = search(
        app,
        AuditQuery {
            limit: Some(10_000),
            ..AuditQuery::default()
        },
    )
    .await?;
    Ok(entries
        .iter()
        .rev()
        .filter_map(|entry| match &entry.record.body {
            Body::Lifecycle { event } => {
                let name: &'static str = event.into();
                (name != "fault").then(|| {
                    let v = serde_json::to_value(event).unwrap_or(Value::Null);
                    let text = |k: &str| v[k].as_str().unwrap_or("").to_string();
                    // A generation names every plugin serving in it and who
                    // signed each: the reason column says so in brief.
                    let (plugin, reason) = match event {
                        handoff_model::LifecycleEvent::Generation { plugins, activation, .. } => (
                            format!("{} plugins", plugins.len()),
                            generation_signers(activation, plugins),
                        ),
                        _ => (text("plugin"), text("reason")),
                    };
                    html! {
                        tr {
                            td { (instant(entry.record.ts)) }
                            td { (name) }
                            td { (plugin) }
                            td { (text("version")) }
                            td { @if let Some(d) = v["digest"].as_str() { (digest(d)) } }
                            td { (v["generation"].as_u64().map(|g| g.to_string()).unwrap_or_default()) }
                            td { (reason) }
                        }
                    }
                })
            }
            _ => None,
        })
        .take(HISTORY)
        .collect())
}

/// A generation's activation policy and each plugin's signers, in one line.
fn generation_signers(activation: &str, plugins: &[handoff_model::ActivePlugin]) -> String {
    let signed: Vec<String> = plugins
        .iter()
        .filter(|p| !p.signers.is_empty())
        .map(|p| {
            let signers: Vec<String> = p
                .signers
                .iter()
                .map(|s| format!("{} {} ({})", s.role, s.holder, s.key))
                .collect();
            format!("{}: {}", p.plugin, signers.join(", "))
        })
        .collect();
    if signed.is_empty() {
        format!("activation {activation}; unsigned")
    } else {
        format!("activation {activation}; {}", signed.join("; "))
    }
}
