//! The contract's types, with the conveniences policies reach for.
//!
//! What a policy returns are the very types `wit-bindgen` generates,
//! re-exported, so a result crosses the component boundary without a
//! conversion layer. The item is the exception: `handoff:policy@0.2.0`
//! passes its strings as spans of one string (one allocation in the guest
//! instead of one per string, see `wit/0.2.0/policy.wit`), and the SDK
//! hands the policy the same owned [`WorkItem`] it always had, cut from it.

use crate::bindings::handoff::policy::types as wire;
pub use crate::bindings::handoff::policy::types::{
    Assessment, Classification, PolicyInfo, Signal, Tier, TriggerInfo, TriggerKind, Verdict,
};

/// An amount of money at stake, in the currency's minor units (cents for
/// USD), so that no floating-point rounding touches money.
#[derive(Clone, Debug, PartialEq)]
pub struct Money {
    /// Amount in minor units. Negative amounts are allowed (credits).
    pub minor: i64,
    /// ISO 4217 code, upper case, for example `USD` or `EUR`.
    pub currency: String,
}

/// One unit of agent work the host asks the policy about.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkItem {
    /// The caller's identifier for this unit of work. Resubmissions of the
    /// same work (after a self-correction) reuse the same id.
    pub id: String,
    /// What the agent is about to do: `refund`, `reply`, `tool-call`, ...
    pub kind: String,
    /// Which agent produced the work.
    pub agent: String,
    /// The agent's output or request text the policy may inspect.
    pub text: String,
    /// The agent's own confidence in this work, in [0, 1].
    pub confidence: f64,
    /// Money at stake, when the work moves money.
    pub amount: Option<Money>,
    /// Customer segment, for example `enterprise` or `consumer`.
    pub segment: Option<String>,
    /// How many times the agent already tried this work and was sent back
    /// to self-correct. Zero on the first submission.
    pub attempts: u32,
    /// Free-form attributes from the caller, sorted by key.
    pub attributes: Vec<(String, String)>,
}

impl From<wire::WorkItem> for WorkItem {
    /// Cuts the item's fields from its strings. The host only sends spans
    /// inside them on character boundaries; one that is not is the host's
    /// bug, and the call traps saying so rather than guess.
    fn from(item: wire::WorkItem) -> Self {
        let strings = item.strings.as_str();
        let cut = |span: wire::Span| -> String {
            let start = span.start as usize;
            strings
                .get(start..start.saturating_add(span.len as usize))
                .unwrap_or_else(|| panic!("the host sent a span outside the item's strings"))
                .to_string()
        };
        WorkItem {
            id: cut(item.id),
            kind: cut(item.kind),
            agent: cut(item.agent),
            text: cut(item.text),
            confidence: item.confidence,
            amount: item.amount.map(|m| Money {
                minor: m.minor,
                currency: cut(m.currency),
            }),
            segment: item.segment.map(cut),
            attempts: item.attempts,
            attributes: item
                .attributes
                .iter()
                .map(|a| (cut(a.key), cut(a.value)))
                .collect(),
        }
    }
}

impl Tier {
    /// The escalation level: 0 (`none`) to 3 (`executive`). Higher wins when
    /// several policies disagree.
    pub fn level(self) -> u8 {
        match self {
            Tier::None => 0,
            Tier::SelfCorrect => 1,
            Tier::Operator => 2,
            Tier::Executive => 3,
        }
    }
}

impl WorkItem {
    /// The value of attribute `key`, if the caller sent one.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Classification {
    /// Whether a compliance-mandated rule fired.
    pub fn rule_fired(&self) -> bool {
        !self.rules_fired.is_empty()
    }

    /// Whether `label` was attached.
    pub fn has_label(&self, label: &str) -> bool {
        self.labels.iter().any(|l| l == label)
    }
}

impl Verdict {
    /// A verdict that lets the agent proceed.
    pub fn proceed(
        reason_code: impl Into<String>,
        reason: impl Into<String>,
        trigger: TriggerKind,
    ) -> Self {
        Verdict {
            tier: Tier::None,
            reason_code: reason_code.into(),
            reason: reason.into(),
            role: None,
            ack_sla_secs: None,
            resolve_sla_secs: None,
            guidance: None,
            trigger,
        }
    }

    /// A verdict sending the agent back to retry, with guidance on what to change.
    pub fn self_correct(
        reason_code: impl Into<String>,
        reason: impl Into<String>,
        guidance: impl Into<String>,
        trigger: TriggerKind,
    ) -> Self {
        Verdict {
            tier: Tier::SelfCorrect,
            guidance: Some(guidance.into()),
            ..Verdict::proceed(reason_code, reason, trigger)
        }
    }

    /// A verdict handing the work to humans at `tier` (`operator` or `executive`).
    pub fn escalate(
        tier: Tier,
        reason_code: impl Into<String>,
        reason: impl Into<String>,
        trigger: TriggerKind,
    ) -> Self {
        Verdict {
            tier,
            ..Verdict::proceed(reason_code, reason, trigger)
        }
    }

    /// The same verdict routed to `role`.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }

    /// The same verdict with acknowledge and resolve targets, in seconds.
    pub fn with_sla(mut self, ack_secs: Option<u32>, resolve_secs: Option<u32>) -> Self {
        self.ack_sla_secs = ack_secs;
        self.resolve_sla_secs = resolve_secs;
        self
    }
}

impl Signal {
    /// A named piece of evidence with its weight in [0, 1] (clamped).
    pub fn new(name: impl Into<String>, weight: f64, detail: impl Into<String>) -> Self {
        Signal {
            name: name.into(),
            weight: if weight.is_nan() {
                0.0
            } else {
                weight.clamp(0.0, 1.0)
            },
            detail: detail.into(),
        }
    }
}

impl TriggerInfo {
    /// Describes one trigger for `metadata`.
    pub fn new(code: &str, kind: TriggerKind, description: &str) -> Self {
        TriggerInfo {
            code: code.to_string(),
            kind,
            description: description.to_string(),
        }
    }
}
