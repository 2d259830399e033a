//! The contract's types, with the conveniences policies reach for.
//!
//! These are the very types `wit-bindgen` generates, re-exported, so a value
//! crosses the component boundary without any conversion layer in between.

pub use crate::bindings::handoff::policy::types::{
    Assessment, Classification, Money, PolicyInfo, Signal, Tier, TriggerInfo, TriggerKind, Verdict,
    WorkItem,
};

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
