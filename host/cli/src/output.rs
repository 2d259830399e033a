//! How the commands that decide print an answer: the decision as JSON, one
//! per line, with a `dispatch` field when the host acted on it.

use std::io::Write;

use anyhow::Context;
use handoff_dispatch::Dispatched;
use handoff_model::Decision;
use handoff_pipeline::Answer;
use serde::Serialize;

/// A decision and what dispatch did about it, as one JSON object.
#[derive(Serialize)]
struct DispatchedDecision<'a> {
    #[serde(flatten)]
    decision: &'a Decision,
    dispatch: &'a Dispatched,
}

/// Writes `answer` as one line of JSON.
pub fn write_answer(out: &mut impl Write, answer: &Answer) -> anyhow::Result<()> {
    match &answer.dispatched {
        Some(dispatch) => serde_json::to_writer(
            &mut *out,
            &DispatchedDecision {
                decision: &answer.decision,
                dispatch,
            },
        ),
        None => serde_json::to_writer(&mut *out, &answer.decision),
    }
    .context("cannot write a decision")?;
    out.write_all(b"\n").context("cannot write a decision")
}
