//! Handoffs: work a human must act on, its state, and how it ended.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use handoff_model::{Decision, Tier, WorkItem};

handoff_model::named_enum! {
    /// Where a handoff is in its life.
    pub enum HandoffState ("handoff state") {
        /// Waiting for someone with the role to claim it.
        Queued,
        /// Claimed under a lease, not yet acknowledged.
        Claimed,
        /// The claimant has acknowledged it and is working on it.
        Acknowledged,
        /// Done, with an outcome.
        Resolved,
    }
}

/// What the human decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Outcome {
    /// The agent's work stands as it was.
    Approved,
    /// The human changed the work; the correction is what went out instead.
    Corrected {
        /// What the human changed it to.
        correction: String,
    },
    /// The work must not go out.
    Rejected,
}

impl Outcome {
    /// The outcome's name: `approved`, `corrected` or `rejected`.
    pub fn name(&self) -> &'static str {
        self.into()
    }

    /// The outcome named `name`, with the correction a `corrected` outcome
    /// must carry and the others must not: one rule for every way a human
    /// resolves (the command line and the API).
    pub fn from_parts(name: &str, correction: Option<String>) -> Result<Outcome, OutcomeError> {
        let correction = correction.filter(|c| !c.trim().is_empty());
        match (name, correction) {
            ("approved", None) => Ok(Outcome::Approved),
            ("rejected", None) => Ok(Outcome::Rejected),
            ("corrected", Some(correction)) => Ok(Outcome::Corrected { correction }),
            ("corrected", None) => Err(OutcomeError::MissingCorrection),
            ("approved" | "rejected", Some(_)) => Err(OutcomeError::StrayCorrection(name.into())),
            (other, _) => Err(OutcomeError::Unknown(other.into())),
        }
    }

    /// Whether the agent's work was wrong: what threshold calibration counts
    /// as an error.
    pub fn agent_was_wrong(&self) -> bool {
        !matches!(self, Outcome::Approved)
    }
}

/// Why a resolution's outcome is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutcomeError {
    /// Not one of the three outcomes.
    #[error("unknown outcome `{0}`; expected approved, corrected or rejected")]
    Unknown(String),
    /// `corrected` without saying what went out instead.
    #[error("outcome `corrected` needs a correction saying what went out instead")]
    MissingCorrection,
    /// A correction on an outcome that changed nothing.
    #[error("a correction only goes with outcome `corrected`, not `{0}`")]
    StrayCorrection(String),
}

/// A human's resolution of a handoff: the feedback that calibrates policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// What was decided.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The human's note.
    pub note: String,
    /// Whether the escalation was warranted: a human's verdict on the
    /// policy, as opposed to on the agent.
    pub warranted: bool,
}

/// Everything the human needs to act without going back to the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferPayload {
    /// The work item as submitted.
    pub item: WorkItem,
    /// The decision: every plugin's classification, assessment and verdict,
    /// with its version and digest.
    pub decision: Decision,
    /// The reason that drove the tier.
    pub driving_reason: DrivingReason,
    /// Self-correction attempts the host has seen for this item id.
    pub attempts: u32,
    /// Each of those attempts as submitted: its text, the verdict and the
    /// guidance the agent got, oldest first.
    #[serde(default)]
    pub history: Vec<AttemptRecord>,
    /// Earlier handoffs of the same item id, oldest first.
    pub prior_handoffs: Vec<PriorHandoff>,
    /// Where a missed operator deadline escalates: the role the driving
    /// plugin's manifest names (`escalation-role`); none means the host's
    /// executive role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_role: Option<String>,
    /// Set when this is a sampled review of work the agent did on its own
    /// (decided `none`): the agent was never held, and the probability lets
    /// calibration weight the human's verdict so the estimate is unbiased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewSample>,
}

/// How an autonomous item came to be reviewed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReviewSample {
    /// The probability with which items like it are sampled: its inclusion
    /// probability, whose inverse is its weight in calibration.
    pub probability: f64,
    /// The item's draw in [0, 1): sampled because it fell below the
    /// probability. Derived from the item and the sampling seed, so the
    /// same submission is always sampled the same way.
    pub draw: f64,
}

/// One self-correction attempt of a piece of work, as the operator who
/// takes it over sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Its number, from 1.
    pub attempt: u32,
    /// When it was decided.
    pub at: DateTime<Utc>,
    /// What the agent submitted.
    pub text: String,
    /// The tier it was given (`self-correct`, or `operator` for the one
    /// that ran out).
    pub tier: Tier,
    /// Why, as a code.
    pub reason_code: String,
    /// Why, for a person.
    pub reason: String,
    /// What the agent was told to do differently.
    pub guidance: Option<String>,
}

/// The reason behind a handoff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrivingReason {
    /// The plugin whose verdict decided, if any.
    pub plugin: Option<String>,
    /// Machine-readable code.
    pub reason_code: String,
    /// Human-readable reason.
    pub reason: String,
}

/// A summary of an earlier handoff of the same item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorHandoff {
    /// Its id.
    pub id: String,
    /// Its tier.
    pub tier: Tier,
    /// Its state.
    pub state: HandoffState,
    /// Its reason code.
    pub reason_code: String,
    /// How it ended, if it has.
    pub resolution: Option<Resolution>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A handoff as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handoff {
    /// Unique id (`h-` and 16 hex digits).
    pub id: String,
    /// The work item's id.
    pub item_id: String,
    /// `operator` or `executive`; rises on an SLA breach.
    pub tier: Tier,
    /// The role that may claim it.
    pub role: String,
    /// Where it is in its life.
    pub state: HandoffState,
    /// The decision's reason code.
    pub reason_code: String,
    /// The plugin that drove the decision.
    pub driver: Option<String>,
    /// The agent's confidence in the item: what calibration learns from.
    pub confidence: f64,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// Acknowledge by then.
    pub ack_deadline: DateTime<Utc>,
    /// Resolve by then.
    pub resolve_deadline: DateTime<Utc>,
    /// Who holds the lease, if anyone.
    pub lease_owner: Option<String>,
    /// When the lease runs out.
    pub lease_expires: Option<DateTime<Utc>>,
    /// How many times it was claimed (1 for a first-contact resolution).
    pub claims: u32,
    /// When it was acknowledged.
    pub acked_at: Option<DateTime<Utc>>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// How it ended.
    pub resolution: Option<Resolution>,
    /// How many tiers it rose on SLA breaches.
    pub escalations: u32,
    /// Whether any SLA deadline was missed.
    pub breached: bool,
    /// Everything the human needs.
    pub payload: TransferPayload,
}

impl Handoff {
    /// The handoff as it stands at `now`: an unresolved handoff whose lease
    /// has run out is back in the queue (claiming it again is what records
    /// that), whatever its stored state still says.
    pub fn as_of(mut self, now: DateTime<Utc>) -> Handoff {
        let expired = self.state != HandoffState::Resolved
            && self.lease_expires.is_some_and(|until| until <= now);
        if expired {
            self.state = HandoffState::Queued;
            self.lease_owner = None;
            self.lease_expires = None;
        }
        self
    }

    /// The deadline that matters now: acknowledge until acknowledged, then
    /// resolve. The queue serves earliest first.
    pub fn next_deadline(&self) -> DateTime<Utc> {
        if self.acked_at.is_none() {
            self.ack_deadline
        } else {
            self.resolve_deadline
        }
    }
}
