//! What happened to a handoff, as the audit trail records it: every human
//! action and every SLA clock action, with who did it and when, so that
//! "who decided what" is provable from the hash chain and not only from a
//! database row anyone holding the file could edit.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One state change of a handoff. The handoff store writes it in the same
/// transaction as the change; the host then appends it to the audit log,
/// in store order, exactly once (see `handoff-pipeline`'s reconciliation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffEvent {
    /// Its position in the store's event log: the key that makes
    /// forwarding it to the audit log exactly-once.
    pub store_seq: i64,
    /// The handoff.
    pub handoff: String,
    /// The work item the handoff is about.
    pub item: String,
    /// `enqueued`, `claimed`, `acknowledged`, `resolved`, `released`,
    /// `escalated` or `alert`.
    pub kind: String,
    /// Who did it: the acting principal, or `sla` for the clocks.
    pub actor: String,
    /// When the store recorded it.
    pub at: DateTime<Utc>,
    /// What changed (the role claimed from, the outcome, correction and
    /// note of a resolution, the tiers of an escalation, ...).
    pub detail: serde_json::Value,
}
