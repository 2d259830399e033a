//! Replay: re-evaluating recorded items against a candidate policy set, to
//! see what a new version would change before it goes live.
//!
//! Replay reads the log and writes nothing: the candidate's decisions go
//! only into the report.

use serde::Serialize;

use handoff_audit::{Body, Entry};
use handoff_model::{Tier, WorkItem};
use handoff_policy::Evaluator;

/// What a replay found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplayReport {
    /// Decisions re-evaluated.
    pub replayed: u64,
    /// `matrix[old][new]`: how many items moved from tier `old` to `new`
    /// (indexed by level).
    pub matrix: [[u64; 4]; 4],
    /// Every item whose tier or reason code changed.
    pub changed: Vec<Change>,
    /// Records skipped because masking made them not replayable.
    pub skipped_masked: u64,
    /// Records whose item could not be re-evaluated, with the reason.
    pub failed: Vec<(u64, String)>,
}

/// One item whose decision changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The record's sequence number.
    pub seq: u64,
    /// The item id.
    pub id: String,
    /// The recorded tier.
    pub old_tier: Tier,
    /// The candidate's tier.
    pub new_tier: Tier,
    /// The recorded reason code.
    pub old_reason_code: String,
    /// The recorded reason.
    pub old_reason: String,
    /// The candidate's reason code.
    pub new_reason_code: String,
    /// The candidate's reason.
    pub new_reason: String,
}

/// Re-evaluates every replayable decision in `entries` with `candidate`.
pub fn replay(entries: &[Entry], candidate: &mut Evaluator) -> ReplayReport {
    let mut report = ReplayReport::default();
    for entry in entries {
        let Body::Decision(record) = &entry.record.body else {
            continue;
        };
        if !record.replayable {
            report.skipped_masked += 1;
            continue;
        }
        let seq = entry.record.seq;
        let item: WorkItem = match serde_json::from_value(record.item.clone()) {
            Ok(item) => item,
            Err(e) => {
                report.failed.push((seq, format!("the recorded item: {e}")));
                continue;
            }
        };
        let new = match candidate.evaluate(&item) {
            Ok(decision) => decision,
            Err(e) => {
                report.failed.push((seq, e.to_string()));
                continue;
            }
        };
        let (old, new) = (&record.decision.verdict, new.verdict);
        report.replayed += 1;
        report.matrix[old.tier.level() as usize][new.tier.level() as usize] += 1;
        if old.tier != new.tier || old.reason_code != new.reason_code {
            report.changed.push(Change {
                seq,
                id: record.decision.id.clone(),
                old_tier: old.tier,
                new_tier: new.tier,
                old_reason_code: old.reason_code.clone(),
                old_reason: old.reason.clone(),
                new_reason_code: new.reason_code,
                new_reason: new.reason,
            });
        }
    }
    report
}
