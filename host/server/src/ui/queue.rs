//! The operators' side: open handoffs by deadline, one handoff with its
//! whole transfer payload, and the actions on it (claim, acknowledge,
//! renew, release, resolve). Every action goes through the same dispatcher
//! calls and input checks as the API, so a form refuses exactly what the
//! API refuses, with the same message, shown on the page.

use std::sync::Arc;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::access::{Viewer, encode_component};
use super::explain;
use super::layout::{Problem, api_error_box, countdown, instant, respond, shell, tier_badge};
use super::query_of;
use crate::app::App;
use crate::error::ApiError;
use crate::handoffs::{LeaseVerb, nonempty, resolution_of, resolve_as};
use handoff_dispatch::{Handoff, HandoffState, ListFilter, QueueDepth};
use handoff_model::{Named, Tier};

/// The most rows the queue shows; the filters narrow it.
const MAX_ROWS: usize = 500;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueFilter {
    role: Option<String>,
    tier: Option<Tier>,
}

impl QueueFilter {
    fn query(&self) -> String {
        let mut pairs = Vec::new();
        if let Some(role) = &self.role {
            pairs.push(format!("role={}", encode_component(role)));
        }
        if let Some(tier) = self.tier {
            pairs.push(format!("tier={}", tier.as_str()));
        }
        pairs.join("&")
    }
}

/// `GET /ui/queue`.
pub async fn page(
    State(app): State<Arc<App>>,
    Extension(viewer): Extension<Viewer>,
    RawQuery(raw): RawQuery,
) -> Response {
    match query_of::<QueueFilter>(raw.as_deref()) {
        Ok(filter) => queue_page(&app, &viewer, &filter, None, StatusCode::OK).await,
        Err(error) => queue_error(&app, &viewer, error).await,
    }
}

/// The unfiltered queue with `error` above it, answered with its status.
async fn queue_error(app: &App, viewer: &Viewer, error: ApiError) -> Response {
    let status = error.status();
    let notice = Some(Notice::Error(error));
    queue_page(app, viewer, &QueueFilter::default(), notice, status).await
}

enum Notice {
    Error(ApiError),
    Info(String),
}

async fn queue_page(
    app: &App,
    viewer: &Viewer,
    filter: &QueueFilter,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response {
    let rows = match open_handoffs(app, filter).await {
        Ok(rows) => rows,
        Err(error) => {
            return Problem::from(error)
                .with_viewer(viewer.clone())
                .into_response();
        }
    };
    let depth = app.dispatcher.depth().await.unwrap_or_default();
    let mut roles: Vec<String> = depth.iter().map(|d| d.role.clone()).collect();
    roles.sort();
    roles.dedup();
    let query = filter.query();
    let body = html! {
        h1 { "Queue " span.muted #live-status aria-live="polite" { "" } }
        @match &notice {
            Some(Notice::Error(error)) => (api_error_box(error)),
            Some(Notice::Info(text)) => div.notice role="status" { (text) },
            None => {}
        }
        form.search method="get" action="/ui/queue" aria-label="Filter the queue" {
            label { "Role" input name="role" value=[filter.role.as_deref()] list="roles"; }
            datalist #roles { @for role in &roles { option value=(role) {} } }
            label { "Tier"
                select name="tier" {
                    option value="" { "any" }
                    @for tier in [Tier::Operator, Tier::Executive] {
                        option value=(tier.as_str()) selected[filter.tier == Some(tier)] { (tier.as_str()) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @if viewer.may("claimHandoff") {
            form.inline method="post" action="/ui/queue/claim" aria-label="Claim the most urgent handoff of a role" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                label { "Claim the most urgent of role"
                    input name="role" list="roles" value=[filter.role.as_deref().or(roles.first().map(String::as_str))];
                }
                button type="submit" { "Claim next" }
            }
        }
        div #queue-live data-live={ "/ui/queue/rows?" (query) } { (live_region(&depth, &rows)) }
    };
    respond(status, shell(Some(viewer), "queue", "Queue", body))
}

/// `GET /ui/queue/rows`: the live part of the page alone (the counts and
/// the table), for the refresh the event stream triggers.
pub async fn rows(State(app): State<Arc<App>>, RawQuery(raw): RawQuery) -> Response {
    let result = async {
        let filter = query_of::<QueueFilter>(raw.as_deref())?;
        let rows = open_handoffs(&app, &filter).await?;
        let depth = app.dispatcher.depth().await?;
        Ok::<_, ApiError>((depth, rows))
    }
    .await;
    match result {
        Ok((depth, rows)) => respond(StatusCode::OK, live_region(&depth, &rows)),
        Err(error) => respond(error.status(), api_error_box(&error)),
    }
}

/// The counts by tier, role and state, and the open handoffs.
fn live_region(depth: &[QueueDepth], rows: &[Handoff]) -> Markup {
    html! {
        ul.chips aria-label="Open handoffs by tier, role and state" {
            @for d in depth {
                li { (tier_badge(d.tier)) " " (d.role) " · " (d.state.as_str()) ": " strong { (d.count) } }
            }
            @if depth.is_empty() { li { "No open handoffs" } }
        }
        table {
            caption.visually-hidden { "Open handoffs, earliest deadline first" }
            thead { tr {
                th { "Next deadline" } th { "For" } th { "Tier" } th { "Role" } th { "Item" }
                th { "Reason" } th { "State" } th { "Held by" }
            } }
            tbody { (table_rows(rows)) }
        }
    }
}

async fn open_handoffs(app: &App, filter: &QueueFilter) -> Result<Vec<Handoff>, ApiError> {
    let listed = app
        .dispatcher
        .list(&ListFilter {
            role: filter.role.clone(),
            state: None,
            item_id: None,
        })
        .await?;
    let mut open: Vec<Handoff> = listed
        .into_iter()
        .filter(|h| h.state != HandoffState::Resolved)
        .filter(|h| filter.tier.is_none_or(|t| h.tier == t))
        .collect();
    open.sort_by_key(Handoff::next_deadline);
    open.truncate(MAX_ROWS);
    Ok(open)
}

fn table_rows(rows: &[Handoff]) -> Markup {
    let now = Utc::now();
    html! {
        @if rows.is_empty() {
            tr { td colspan="8" .muted { "Nothing is waiting." } }
        }
        @for h in rows {
            tr.breached[h.breached || h.next_deadline() < now] data-handoff=(h.id) {
                td { (countdown(h.next_deadline(), now)) }
                td { @if h.acked_at.is_none() { "acknowledge" } @else { "resolve" } }
                td { (tier_badge(h.tier)) }
                td { (h.role) }
                td { a href={ "/ui/handoffs/" (encode_component(&h.id)) } { (h.item_id) } }
                td { code { (h.reason_code) } }
                td { (h.state.as_str()) }
                td { (h.lease_owner.as_deref().unwrap_or("—")) }
            }
        }
    }
}

/// `GET /ui/handoffs/{id}`.
pub async fn handoff(
    State(app): State<Arc<App>>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> Response {
    handoff_page(&app, &viewer, &id, None, None).await
}

async fn handoff_page(
    app: &App,
    viewer: &Viewer,
    id: &str,
    error: Option<ApiError>,
    draft: Option<&ResolveForm>,
) -> Response {
    let handoff = match app.dispatcher.get(id).await {
        Ok(h) => h,
        Err(e) => {
            return Problem::from(ApiError::from(e))
                .with_viewer(viewer.clone())
                .into_response();
        }
    };
    let status = error.as_ref().map_or(StatusCode::OK, ApiError::status);
    let title = format!("Handoff {}", handoff.id);
    let body = html! {
        h1 { (title) " " (tier_badge(handoff.tier)) }
        @if let Some(error) = &error { (api_error_box(error)) }
        div.grid2 {
            section.card aria-label="State" { (facts(&handoff)) }
            section.card aria-label="Actions" { (actions(&handoff, viewer, draft)) }
        }
        @if let Some(resolution) = &handoff.resolution {
            section.card aria-label="Resolution" {
                h2 { "Resolution" }
                dl.facts {
                    dt { "Outcome" } dd #resolved-outcome { (resolution.outcome.name()) }
                    @if let Some(correction) = resolution_correction(resolution) { dt { "Correction" } dd { (correction) } }
                    dt { "Note" } dd { (resolution.note) }
                    dt { "Warranted" } dd { @if resolution.warranted { "yes" } @else { "no" } }
                }
            }
        }
        (payload(&handoff, viewer))
    };
    respond(status, shell(Some(viewer), "queue", &title, body))
}

fn resolution_correction(resolution: &handoff_dispatch::Resolution) -> Option<&str> {
    match &resolution.outcome {
        handoff_dispatch::Outcome::Corrected { correction } => Some(correction),
        _ => None,
    }
}

fn facts(h: &Handoff) -> Markup {
    let now = Utc::now();
    let open = h.state != HandoffState::Resolved;
    html! {
        dl.facts {
            dt { "State" } dd #state { (h.state.as_str()) }
            dt { "Role" } dd { (h.role) }
            dt { "Item" } dd { code { (h.item_id) } }
            dt { "Reason" } dd { code { (h.reason_code) } }
            dt { "Driver" } dd { (h.driver.as_deref().unwrap_or("the host")) }
            dt { "Held by" } dd { (h.lease_owner.as_deref().unwrap_or("nobody")) }
            @if let Some(until) = h.lease_expires { dt { "Lease until" } dd { (instant(until)) } }
            dt { "Created" } dd { (instant(h.created_at)) }
            dt { "Acknowledge" } dd {
                @match h.acked_at {
                    Some(at) => { "done " (instant(at)) },
                    None if open => (countdown(h.ack_deadline, now)),
                    None => "never",
                }
            }
            dt { "Resolve" } dd {
                @match h.resolved_at {
                    Some(at) => { "done " (instant(at)) },
                    None => (countdown(h.resolve_deadline, now)),
                }
            }
            dt { "Claims" } dd { (h.claims) }
            dt { "Escalations" } dd { (h.escalations) }
            dt { "SLA" } dd { @if h.breached { span.bad { "breached" } } @else { span.ok { "met so far" } } }
        }
    }
}

fn actions(h: &Handoff, viewer: &Viewer, draft: Option<&ResolveForm>) -> Markup {
    let mine = h.lease_owner.as_deref() == Some(viewer.principal.name.as_str());
    let path = format!("/ui/handoffs/{}", encode_component(&h.id));
    let hidden = html! { input type="hidden" name="csrf" value=(viewer.csrf); };
    html! {
        h2 { "Actions" }
        @if h.state == HandoffState::Resolved {
            p.muted { "Resolved: nothing left to do." }
        } @else if !viewer.may("claimHandoff") {
            p.muted { "Your role can read the queue but not work it." }
        } @else if h.lease_owner.is_none() {
            p { "Waiting in " strong { (h.role) } "." }
            form.inline method="post" action="/ui/queue/claim" {
                (hidden)
                input type="hidden" name="role" value=(h.role);
                button type="submit" { "Claim the most urgent of " (h.role) }
            }
        } @else if !mine {
            p { "Held by " strong { (h.lease_owner.as_deref().unwrap_or("")) } "." }
        } @else {
            div {
                @if h.acked_at.is_none() && viewer.may("acknowledgeHandoff") {
                    form.inline method="post" action={ (path) "/ack" } { (hidden) button type="submit" { "Acknowledge" } }
                }
                @if viewer.may("renewHandoff") {
                    form.inline method="post" action={ (path) "/renew" } { (hidden) button.secondary type="submit" { "Renew lease" } }
                }
                @if viewer.may("releaseHandoff") {
                    form.inline method="post" action={ (path) "/release" } { (hidden) button.secondary type="submit" { "Release" } }
                }
            }
            @if viewer.may("resolveHandoff") {
                (resolve_form(&path, viewer, draft))
            }
        }
    }
}

fn resolve_form(path: &str, viewer: &Viewer, draft: Option<&ResolveForm>) -> Markup {
    let outcome = draft
        .and_then(|d| d.outcome.as_deref())
        .unwrap_or("approved");
    let warranted = draft.and_then(|d| d.warranted.as_deref());
    html! {
        form.stack method="post" action={ (path) "/resolve" } aria-label="Resolve" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            label for="outcome" { "Outcome" }
            select #outcome name="outcome" {
                @for o in ["approved", "corrected", "rejected"] {
                    option value=(o) selected[o == outcome] { (o) }
                }
            }
            label for="correction" { "Correction (what the agent should have done; for corrected)" }
            input #correction name="correction" value=[draft.and_then(|d| d.correction.as_deref())];
            label for="note" { "Note" }
            textarea #note name="note" rows="2" { (draft.and_then(|d| d.note.as_deref()).unwrap_or("")) }
            fieldset {
                legend { "Was handing this to a person warranted?" }
                label { input type="radio" name="warranted" value="yes" checked[warranted == Some("yes")]; " yes" }
                " "
                label { input type="radio" name="warranted" value="no" checked[warranted == Some("no")]; " no" }
            }
            button type="submit" { "Resolve" }
        }
    }
}

fn payload(h: &Handoff, viewer: &Viewer) -> Markup {
    let p = &h.payload;
    html! {
        section.card aria-label="Transfer payload" {
            h2 { "The work" }
            (explain::item(&p.item))
            @if viewer.may("queryAudit") {
                p { a href={ "/ui/work/" (encode_component(&p.item.id)) } { "The whole story of " (p.item.id) } }
            }
        }
        section.card aria-label="Driving reason" {
            h2 { "Why it is here" }
            p {
                strong { (p.driving_reason.plugin.as_deref().unwrap_or("the host")) } ": "
                code { (p.driving_reason.reason_code) } " — " (p.driving_reason.reason)
            }
            @if let Some(role) = &p.escalation_role { p.muted { "A missed operator deadline escalates to " (role) "." } }
            (explain::decision(&p.decision))
        }
        section.card aria-label="History" {
            h2 { "Attempts (" (p.attempts) ")" }
            @if p.history.is_empty() { p.muted { "The agent made no self-correction attempt." } }
            ol {
                @for a in &p.history {
                    li {
                        (instant(a.at)) " " (tier_badge(a.tier)) " " code { (a.reason_code) } " — " (a.reason)
                        pre { (a.text) }
                        @if let Some(g) = &a.guidance { p { "Guidance: " (g) } }
                    }
                }
            }
            h2 { "Prior handoffs" }
            @if p.prior_handoffs.is_empty() { p.muted { "None." } }
            ul {
                @for prior in &p.prior_handoffs {
                    li {
                        a href={ "/ui/handoffs/" (encode_component(&prior.id)) } { (prior.id) } " "
                        (tier_badge(prior.tier)) " " (prior.state.as_str()) " " code { (prior.reason_code) }
                        @if let Some(r) = &prior.resolution { " → " (r.outcome.name()) }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ClaimForm {
    role: Option<String>,
}

/// `POST /ui/queue/claim`.
pub async fn claim(
    State(app): State<Arc<App>>,
    Extension(viewer): Extension<Viewer>,
    form: Result<Form<ClaimForm>, FormRejection>,
) -> Response {
    let result = async {
        let Form(form) = form.map_err(form_error)?;
        let role = nonempty("role", form.role.as_deref().unwrap_or(""))?.to_string();
        let claimed = app.dispatcher.claim(&role, &viewer.principal.name).await?;
        Ok::<_, ApiError>((role, claimed))
    }
    .await;
    match result {
        Ok((_, Some(handoff))) => {
            Redirect::to(&format!("/ui/handoffs/{}", encode_component(&handoff.id))).into_response()
        }
        Ok((role, None)) => {
            let filter = QueueFilter {
                role: Some(role.clone()),
                tier: None,
            };
            let notice = Notice::Info(format!("Nothing is waiting for {role}."));
            queue_page(&app, &viewer, &filter, Some(notice), StatusCode::OK).await
        }
        Err(error) => queue_error(&app, &viewer, error).await,
    }
}

/// A form that could not be read, as the API words an unreadable body.
fn form_error(rejection: FormRejection) -> ApiError {
    ApiError::bad_request(rejection.body_text())
}

/// `POST /ui/handoffs/{id}/ack`.
pub async fn acknowledge(
    app: State<Arc<App>>,
    viewer: Extension<Viewer>,
    id: Path<String>,
) -> Response {
    lease(app, viewer, id, LeaseVerb::Acknowledge).await
}

/// `POST /ui/handoffs/{id}/renew`.
pub async fn renew(app: State<Arc<App>>, viewer: Extension<Viewer>, id: Path<String>) -> Response {
    lease(app, viewer, id, LeaseVerb::Renew).await
}

/// `POST /ui/handoffs/{id}/release`.
pub async fn release(
    app: State<Arc<App>>,
    viewer: Extension<Viewer>,
    id: Path<String>,
) -> Response {
    lease(app, viewer, id, LeaseVerb::Release).await
}

async fn lease(
    State(app): State<Arc<App>>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    verb: LeaseVerb,
) -> Response {
    let result = verb.apply(&app, &id, &viewer.principal.name).await;
    match result {
        Ok(_) if matches!(verb, LeaseVerb::Release) => Redirect::to("/ui/queue").into_response(),
        Ok(_) => Redirect::to(&format!("/ui/handoffs/{}", encode_component(&id))).into_response(),
        Err(error) => handoff_page(&app, &viewer, &id, Some(error), None).await,
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ResolveForm {
    outcome: Option<String>,
    correction: Option<String>,
    note: Option<String>,
    warranted: Option<String>,
}

/// `POST /ui/handoffs/{id}/resolve`.
pub async fn resolve(
    State(app): State<Arc<App>>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    form: Result<Form<ResolveForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => {
            return handoff_page(&app, &viewer, &id, Some(form_error(rejection)), None).await;
        }
    };
    let result = async {
        let warranted = match form.warranted.as_deref() {
            Some("yes") => true,
            Some("no") => false,
            _ => {
                return Err(ApiError::invalid_field(
                    "warranted",
                    "`warranted` is required: say whether handing this to a person was warranted",
                ));
            }
        };
        let correction = form.correction.clone().filter(|c| !c.trim().is_empty());
        let resolution = resolution_of(
            form.outcome.as_deref().unwrap_or(""),
            correction,
            form.note.clone().unwrap_or_default(),
            warranted,
        )?;
        resolve_as(&app, &id, &viewer.principal.name, &resolution).await
    }
    .await;
    match result {
        Ok(_) => Redirect::to(&format!("/ui/handoffs/{}", encode_component(&id))).into_response(),
        Err(error) => handoff_page(&app, &viewer, &id, Some(error), Some(&form)).await,
    }
}
