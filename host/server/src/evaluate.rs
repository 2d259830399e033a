//! `POST /v1/evaluate`: agents send one item or a batch and get each
//! decision, with what dispatch did about it and the handoff id to poll.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use handoff_dispatch::Dispatched;
use handoff_model::{Decision, InputError, WorkItem};
use serde::Serialize;
use serde::de::{DeserializeSeed, Deserializer, Error as _, IgnoredAny, SeqAccess, Visitor};

use super::app::App;
use super::auth::Caller;
use super::body;
use super::error::ApiError;

/// One item's answer, as JSON.
#[derive(Debug, Serialize)]
pub struct EvaluateAnswer {
    /// The decision, field for field as `handoff eval` prints it.
    #[serde(flatten)]
    pub decision: Decision,
    /// What was done: proceed, retry with guidance, or handed off.
    pub dispatch: Option<Dispatched>,
    /// The handoff to poll at `GET /v1/handoffs/{id}`, when one was made.
    pub handoff_id: Option<String>,
    /// True when this is the answer an identical earlier submission got,
    /// given again (nothing new was decided, recorded or handed off).
    pub replayed: bool,
}

/// A batch's answers, in request order.
#[derive(Debug, Serialize)]
pub struct BatchAnswer {
    /// One per item.
    pub results: Vec<EvaluateAnswer>,
}

/// Decides, audits and dispatches through the host's pipeline: a decision
/// is only answered once its audit record is written, with the submitting
/// principal.
pub async fn evaluate(
    State(app): State<Arc<App>>,
    caller: Option<Extension<Caller>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    let (items, batch) = parse_items(&body, app.config.max_batch)?;
    let principal = caller.map(|Extension(Caller(principal))| principal.name.clone());
    let answers = app.pipeline.submit_by(items, principal).await?;
    let mut results: Vec<EvaluateAnswer> = answers
        .into_iter()
        .map(|answer| {
            if !answer.replayed {
                app.metrics.observe_decision(&answer.decision);
            }
            EvaluateAnswer {
                handoff_id: answer.handoff_id().map(str::to_string),
                replayed: answer.replayed,
                decision: answer.decision,
                dispatch: answer.dispatched,
            }
        })
        .collect();
    // Encoded straight to bytes: a batch's answers are never built as a
    // JSON tree first.
    let json = if batch {
        serde_json::to_vec(&BatchAnswer { results })
    } else {
        match results.pop() {
            Some(answer) => serde_json::to_vec(&answer),
            None => return Err(ApiError::bad_request("no item to evaluate")),
        }
    };
    let json = json.map_err(|e| ApiError::internal("cannot encode the decision", e))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// Reads a batch's items and stops at the first one past `max`, before
/// reading it: an oversized batch is refused as such, whatever its later
/// items hold, and without being read to the end.
struct BoundedBatch<'a> {
    max: usize,
    /// Set when the batch holds more than `max` items.
    too_many: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for BoundedBatch<'_> {
    type Value = Vec<WorkItem>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BoundedBatch<'_> {
    type Value = Vec<WorkItem>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an array of work items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        loop {
            if items.len() == self.max {
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    self.too_many.set(true);
                    return Err(A::Error::custom("the batch holds too many items"));
                }
                return Ok(items);
            }
            match seq.next_element::<WorkItem>()? {
                Some(item) => items.push(item),
                None => return Ok(items),
            }
        }
    }
}

/// One item (an object) or a batch (an array of them), every item valid.
/// The first byte says which, so the body is read once, straight into
/// items.
fn parse_items(bytes: &[u8], max_batch: usize) -> Result<(Vec<WorkItem>, bool), ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let (items, batch) = match first {
        Some(b'[') => {
            let too_many = Cell::new(false);
            let seed = BoundedBatch {
                max: max_batch,
                too_many: &too_many,
            };
            let items = match body::parse_with(bytes, seed) {
                Ok(items) => items,
                Err(_) if too_many.get() => {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "batch-too-large",
                        format!("a batch may hold {max_batch} items; this one holds more"),
                    ));
                }
                Err(error) => return Err(error),
            };
            if items.is_empty() {
                return Err(ApiError::bad_request("the batch is empty"));
            }
            (items, true)
        }
        Some(b'{') => (vec![body::parse::<WorkItem>(bytes)?], false),
        _ => {
            // Not JSON at all, or JSON of neither shape: say which.
            let _: IgnoredAny = body::parse(bytes)?;
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
