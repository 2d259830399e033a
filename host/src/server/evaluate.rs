//! `POST /v1/evaluate`: agents send one item or a batch and get each
//! decision, with what dispatch did about it and the handoff id to poll.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use super::app::App;
use super::body;
use super::error::ApiError;
use crate::dispatch::Dispatched;
use crate::model::{Decision, InputError, WorkItem};

/// One item's answer.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// The decision, field for field as `handoff eval` prints it.
    #[serde(flatten)]
    pub decision: Decision,
    /// What was done: proceed, retry with guidance, or handed off.
    pub dispatch: Dispatched,
    /// The handoff to poll at `GET /v1/handoffs/{id}`, when one was made.
    pub handoff_id: Option<String>,
}

/// A batch's answers, in request order.
#[derive(Debug, Serialize)]
pub struct BatchOutcome {
    /// One per item.
    pub results: Vec<Outcome>,
}

/// Decides, audits and dispatches. A decision is only answered once its
/// audit record is written: the log fails closed, and so does the request.
pub async fn evaluate(
    State(app): State<Arc<App>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body?;
    let (items, batch) = parse_items(&body, app.config.max_batch)?;
    let worker = app.clone();
    let slot = app.evaluation_slot().await;
    let decided = tokio::task::spawn_blocking(move || {
        let decided = decide(&worker, items);
        drop(slot);
        decided
    })
    .await
    .map_err(|e| ApiError::internal("evaluation did not finish", e))??;
    let mut results = Vec::with_capacity(decided.len());
    for (item, decision) in decided {
        app.metrics.observe_decision(&decision);
        let dispatch = app.dispatcher.dispatch(&item, &decision).await?;
        let handoff_id = match &dispatch {
            Dispatched::Handoff { id, .. } => Some(id.clone()),
            _ => None,
        };
        results.push(Outcome {
            decision,
            dispatch,
            handoff_id,
        });
    }
    let json = if batch {
        serde_json::to_value(BatchOutcome { results })
    } else {
        match results.pop() {
            Some(outcome) => serde_json::to_value(outcome),
            None => return Err(ApiError::bad_request("no item to evaluate")),
        }
    };
    json.map(Json)
        .map_err(|e| ApiError::internal("cannot encode the decision", e))
}

/// One item (an object) or a batch (an array of them), every item valid.
fn parse_items(bytes: &[u8], max_batch: usize) -> Result<(Vec<WorkItem>, bool), ApiError> {
    let value: Value = body::parse(bytes)?;
    let (items, batch) = match value {
        Value::Array(values) => {
            if values.is_empty() {
                return Err(ApiError::bad_request("the batch is empty"));
            }
            if values.len() > max_batch {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "batch-too-large",
                    format!(
                        "a batch may hold {max_batch} items; this one holds {}",
                        values.len()
                    ),
                ));
            }
            let items = values
                .into_iter()
                .enumerate()
                .map(|(index, value)| body::from_value::<WorkItem>(value, &format!("[{index}]")))
                .collect::<Result<Vec<_>, _>>()?;
            (items, true)
        }
        value @ Value::Object(_) => (vec![body::from_value::<WorkItem>(value, "")?], false),
        _ => {
            return Err(ApiError::bad_request(
                "the body must be a work item (a JSON object) or a batch (an array of them)",
            ));
        }
    };
    for (index, item) in items.iter().enumerate() {
        if let Err(InputError::Invalid { field, reason }) = item.validate() {
            let field = if batch {
                format!("[{index}].{field}")
            } else {
                field.to_string()
            };
            return Err(ApiError::invalid_field(
                field.clone(),
                format!("`{field}` {reason}"),
            ));
        }
    }
    Ok((items, batch))
}

/// Evaluates and audits every item on this blocking thread.
fn decide(app: &App, items: Vec<WorkItem>) -> Result<Vec<(WorkItem, Decision)>, ApiError> {
    app.evaluators.with(|evaluator| {
        items
            .into_iter()
            .map(|item| {
                let decision = evaluator.evaluate(&item)?;
                app.audit.record_decision(&item, &decision).map_err(|e| {
                    tracing::error!(error = %e, item = %item.id, "cannot record a decision");
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "audit-unavailable",
                        "the decision could not be recorded in the audit log, so it is not \
                         given; the server log has the detail",
                    )
                })?;
                Ok((item, decision))
            })
            .collect()
    })
}
