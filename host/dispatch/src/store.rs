//! The storage contract behind the dispatcher.
//!
//! Shaped for more than the embedded SQLite store: every operation that
//! changes a handoff is one call that the store makes atomic together with
//! its event, and claiming is "take the earliest-deadline handoff for this
//! role that nobody holds", which a server database does with
//! `SELECT ... FOR UPDATE SKIP LOCKED` so that many hosts can share a queue.

use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::handoff::{
    AttemptRecord, Handoff, HandoffState, PriorHandoff, Resolution, TransferPayload,
};
use handoff_model::{Decision, HandoffEvent, Tier, TriggerKind, WorkItem};

/// One dispatched decision, kept for the report's rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRow {
    /// The item id.
    pub item_id: String,
    /// The tier the item ended at after dispatch (a self-correction past
    /// the limit counts as `operator`).
    pub tier: Tier,
    /// The plugin that drove it.
    pub driver: Option<String>,
    /// Its reason code.
    pub reason_code: String,
    /// Whether a mandated rule or a probabilistic judgement drove it; none
    /// when no trigger fired.
    pub trigger: Option<TriggerKind>,
    /// The agent's confidence.
    pub confidence: f64,
    /// When it was dispatched.
    pub at: DateTime<Utc>,
    /// Its audit records (the decision's, then its faults'), serialized,
    /// for a store that chains them in the same transaction as this row
    /// (a fleet's); empty when the audit log has them already. Never read
    /// back.
    pub audit: Vec<String>,
}

impl DecisionRow {
    /// The row for `decision` on `item`, dispatched `at`.
    pub fn of(item: &WorkItem, decision: &Decision, at: DateTime<Utc>) -> Self {
        DecisionRow {
            item_id: item.id.clone(),
            tier: decision.tier(),
            driver: decision.driver.clone(),
            reason_code: decision.reason_code().to_string(),
            trigger: decision.verdict.trigger,
            confidence: item.confidence,
            at,
            audit: Vec::new(),
        }
    }
}

/// A handoff to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewHandoff {
    /// Its id.
    pub id: String,
    /// The tier.
    pub tier: Tier,
    /// The role that may claim it.
    pub role: String,
    /// Acknowledge by then.
    pub ack_deadline: DateTime<Utc>,
    /// Resolve by then.
    pub resolve_deadline: DateTime<Utc>,
    /// The transfer payload.
    pub payload: TransferPayload,
}

/// Where a breached handoff goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Escalation {
    /// The new tier.
    pub tier: Tier,
    /// The role that may claim it now.
    pub role: String,
    /// The new acknowledge deadline.
    pub ack_deadline: DateTime<Utc>,
    /// The new resolve deadline.
    pub resolve_deadline: DateTime<Utc>,
}

/// Which SLA clock ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::Display)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Breach {
    /// Not acknowledged in time.
    Acknowledge,
    /// Not resolved in time.
    Resolve,
}

/// A state change, as recorded with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the store's event log.
    pub seq: i64,
    /// The handoff it is about.
    pub handoff: String,
    /// When.
    pub at: DateTime<Utc>,
    /// `enqueued`, `claimed`, `acknowledged`, `renewed`, `resolved`,
    /// `released`, `lease-expired`, `escalated` or `alert`.
    pub kind: String,
    /// Who did it (`sla` for the clocks).
    pub actor: String,
    /// The specifics, as JSON.
    pub detail: serde_json::Value,
}

/// Which handoffs to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this role.
    pub role: Option<String>,
    /// Only this state. An expired lease lists as `queued`.
    pub state: Option<HandoffState>,
    /// Only this item.
    pub item_id: Option<String>,
}

/// How many unresolved handoffs wait in one queue, in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// The tier.
    pub tier: Tier,
    /// The role the queue serves.
    pub role: String,
    /// `queued`, `claimed` or `acknowledged`.
    pub state: HandoffState,
    /// How many.
    pub count: u64,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No handoff has the id.
    #[error("no handoff `{0}`")]
    NotFound(String),
    /// The worker does not hold a live lease on the handoff.
    #[error("handoff `{id}` is not claimed by `{worker}`{}", .holder.as_ref().map(|h| format!(" (held by `{h}`)")).unwrap_or_else(|| " (its lease expired or it was never claimed)".into()))]
    NotClaimant {
        /// The handoff.
        id: String,
        /// Who asked.
        worker: String,
        /// Who holds it, if anyone does.
        holder: Option<String>,
    },
    /// The handoff is already resolved.
    #[error("handoff `{0}` is already resolved")]
    Resolved(String),
    /// The database failed.
    #[error("handoff store: {0}")]
    Database(#[from] sqlx::Error),
    /// The database file is damaged: it is refused rather than served,
    /// because a damaged store takes work it cannot give back.
    #[error(
        "the handoff store {path} is damaged ({detail}); it was not opened. Stop every \
         host using it, move it aside, and restore it from a backup, or salvage what is \
         readable with `sqlite3 {path} .recover | sqlite3 handoffs-recovered.db` and put \
         that in its place. Every decision stays in the audit log either way"
    )]
    Damaged {
        /// The database file.
        path: String,
        /// What the integrity check found.
        detail: String,
    },
    /// The address given for a PostgreSQL store is not one.
    #[error("the handoff store address {address} is not usable: {detail}")]
    Address {
        /// The address, without its password.
        address: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The database's schema could not be created or brought up to date
    /// (for example, it was made by a newer version of Handoff).
    #[error("the handoff store's schema cannot be brought up to date: {0}")]
    Schema(String),
    /// A stored value could not be read back.
    #[error("handoff store holds a bad value in {what}: {detail}")]
    Corrupt {
        /// Which column or record.
        what: String,
        /// What is wrong.
        detail: String,
    },
}

/// Durable handoff queues, feedback and their event log.
///
/// Every method that changes a handoff commits the change and its
/// [`Event`] together, or neither.
pub trait HandoffStore: Send + Sync {
    /// Records a decision that went to no human: it proceeded, or the agent
    /// retries.
    fn record_autonomous(
        &self,
        decision: &DecisionRow,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records many such decisions at once, all or none: the rows of one
    /// submission, committed together rather than one commit each.
    fn record_autonomous_many(
        &self,
        decisions: Vec<DecisionRow>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Counts one more self-correction of `item_id` and returns the total.
    fn count_attempt(
        &self,
        item_id: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Self-corrections seen for `item_id`.
    fn attempts(&self, item_id: &str) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Earlier handoffs of `item_id`, oldest first.
    fn prior(
        &self,
        item_id: &str,
    ) -> impl Future<Output = Result<Vec<PriorHandoff>, StoreError>> + Send;

    /// Records the decision and enqueues its handoff, together.
    fn enqueue(
        &self,
        decision: &DecisionRow,
        handoff: &NewHandoff,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Handoff, StoreError>> + Send;

    /// Leases the earliest-deadline handoff for `role` that is queued or
    /// whose lease has expired, to `worker` until `now + lease`.
    fn claim(
        &self,
        role: &str,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> impl Future<Output = Result<Option<Handoff>, StoreError>> + Send;

    /// Acknowledges a handoff `worker` holds, renewing the lease to
    /// `now + lease`: acknowledging is the sign someone is at work on it.
    fn acknowledge(
        &self,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> impl Future<Output = Result<Handoff, StoreError>> + Send;

    /// Resolves a handoff `worker` holds.
    fn resolve(
        &self,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
        resolution: &Resolution,
    ) -> impl Future<Output = Result<Handoff, StoreError>> + Send;

    /// Extends the lease `worker` holds to `now + lease`: the heartbeat of
    /// someone still at work on a handoff that takes longer than a lease.
    fn renew(
        &self,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> impl Future<Output = Result<Handoff, StoreError>> + Send;

    /// Puts every unresolved handoff whose lease ran out at or before `now`
    /// back in the queue, recording `lease-expired` for each, so the audit
    /// log says when a person stopped holding the work rather than when the
    /// next person happened to claim it. Returns the ids and who held them.
    fn expire_leases(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;

    /// Gives a handoff `worker` holds back to the queue.
    fn release(
        &self,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Handoff, StoreError>> + Send;

    /// Proves the store takes changes, with a write that changes nothing
    /// anybody reads: how readiness finds out that a failed store works
    /// again.
    fn probe(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One handoff, as stored.
    fn get(&self, id: &str) -> impl Future<Output = Result<Handoff, StoreError>> + Send;

    /// Handoffs matching `filter`, earliest deadline first.
    fn list(
        &self,
        filter: &ListFilter,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Handoff>, StoreError>> + Send;

    /// Unresolved handoffs with a deadline at or before `now` that has not
    /// been acted on yet, with which deadline.
    fn breached(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<(Handoff, Breach)>, StoreError>> + Send;

    /// Moves a breached handoff up a tier, back to the queue with new
    /// deadlines, if it is still at `from` and unresolved. Returns whether
    /// it moved.
    fn escalate(
        &self,
        id: &str,
        from: Tier,
        breach: Breach,
        to: &Escalation,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records an alert for a breach that cannot go higher, once per
    /// handoff and deadline. Returns whether it was new.
    fn alert(
        &self,
        id: &str,
        breach: Breach,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Keeps one self-correction attempt of an item, for the transfer
    /// payload of a later handoff.
    fn record_attempt(
        &self,
        item_id: &str,
        attempt: &AttemptRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The attempts kept for an item, oldest first.
    fn attempt_history(
        &self,
        item_id: &str,
    ) -> impl Future<Output = Result<Vec<AttemptRecord>, StoreError>> + Send;

    /// The answer kept for the submission with idempotency key `key`.
    fn answer_of(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Keeps the answer given to the submission with idempotency key `key`
    /// (the first one kept wins).
    fn keep_answer(
        &self,
        key: &str,
        item_id: &str,
        answer: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` events after store position `after`, oldest first,
    /// each with its handoff's item: what is forwarded to the audit log.
    fn events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<HandoffEvent>, StoreError>> + Send;

    /// Events, oldest first; of one handoff when `handoff` is set.
    fn events(
        &self,
        handoff: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Event>, StoreError>> + Send;

    /// Every recorded decision, for the report.
    fn decisions(&self) -> impl Future<Output = Result<Vec<DecisionRow>, StoreError>> + Send;

    /// Unresolved handoffs counted by tier, role and state, as monitoring
    /// scrapes them: counted by the database, never loaded. An expired lease
    /// counts as `queued`.
    fn depth(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<QueueDepth>, StoreError>> + Send;

    /// The position of the newest event (0 for none): one indexed read, so
    /// that a live view can tell cheaply whether anything changed, whoever
    /// changed it (this process, another host, `handoff queue`).
    fn newest_event(&self) -> impl Future<Output = Result<i64, StoreError>> + Send;
}
