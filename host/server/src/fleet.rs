//! `GET /v1/fleet`: which node serves which published policy generation,
//! and any node's refusal, as each node last reported it to the store the
//! fleet shares.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use handoff_dispatch::{GenerationSummary, NodeReport};
use handoff_pipeline::fleet::FLEET_POLL;
use serde::Serialize;

use super::app::App;
use super::error::ApiError;

/// A node that has not reported for this many follower passes is shown as
/// silent: down, or cut off from the store.
const SILENT_AFTER_POLLS: i64 = 3;

/// The fleet as one node sees it in the shared store.
#[derive(Debug, Serialize)]
pub struct FleetView {
    /// The newest published generation, with its units by digest.
    pub latest: Option<GenerationSummary>,
    /// Every node that has reported, by name.
    pub nodes: Vec<NodeView>,
}

/// One node, as it last reported.
#[derive(Debug, Serialize)]
pub struct NodeView {
    /// What it said.
    #[serde(flatten)]
    pub report: NodeReport,
    /// Whether it serves the newest published generation.
    pub current: bool,
    /// Whether it has stopped reporting.
    pub silent: bool,
}

/// `GET /v1/fleet`.
pub async fn fleet(State(app): State<Arc<App>>) -> Result<Json<FleetView>, ApiError> {
    let Some(generations) = app.dispatcher.store().generations() else {
        return Err(ApiError::not_found(
            "this host is not part of a fleet: its store is the embedded SQLite one, which \
             one host uses alone (start every node with --store postgres://…)",
        ));
    };
    let unavailable = |e| ApiError::internal("cannot read the fleet from the store", e);
    let latest = match generations.latest().await.map_err(unavailable)? {
        Some(generation) => generations.summary(generation).await.map_err(unavailable)?,
        None => None,
    };
    let newest = latest.as_ref().map(|summary| summary.generation);
    let silent_before = Utc::now()
        - chrono::Duration::milliseconds(
            SILENT_AFTER_POLLS * i64::try_from(FLEET_POLL.as_millis()).unwrap_or(i64::MAX / 4),
        );
    let nodes = generations
        .nodes()
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|report| NodeView {
            current: newest.is_some() && report.serving == newest,
            silent: is_silent(report.seen_at, silent_before),
            report,
        })
        .collect();
    Ok(Json(FleetView { latest, nodes }))
}

fn is_silent(seen_at: DateTime<Utc>, silent_before: DateTime<Utc>) -> bool {
    seen_at < silent_before
}
