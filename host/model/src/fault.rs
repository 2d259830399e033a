//! Plugin faults and what they turn into.
//!
//! The promise to compliance teams: any misbehaviour ends in a known,
//! recorded, human-safe outcome. A fault is never a decision: it is
//! classified into one [`FaultKind`], recorded in the decision, and turned
//! into a verdict by the plugin's [`FailureMode`].

use serde::{Deserialize, Serialize};

use crate::{Tier, TriggerKind, Verdict};

crate::named_enum! {
    /// What went wrong inside a plugin.
    #[derive(PartialOrd, Ord)]
    pub enum FaultKind ("fault kind") {
        /// A WebAssembly trap: out-of-bounds access, stack overflow, `unreachable`...
        Trap,
        /// The guest panicked (a trap whose captured stderr carries a panic message).
        Panic,
        /// The evaluation used up its fuel.
        FuelExhausted,
        /// The evaluation ran past its wall-clock deadline.
        DeadlineExceeded,
        /// The plugin asked for more memory, tables or instances than allowed.
        MemoryLimit,
        /// A returned string or list is over the host's cap.
        OutputTooLarge,
        /// A returned value breaks the contract (a score outside [0, 1], NaN, an
        /// SLA of zero, ...).
        InvalidVerdict,
        /// The same item got another answer on a fresh instance than on the
        /// warm one: the plugin depends on what it decided before.
        Nondeterministic,
    }
}

impl FaultKind {
    /// Position in `FaultKind::VARIANTS`, for per-kind counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a plugin's fault turns into, chosen per plugin in its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureMode {
    /// Fail to a human: the plugin's verdict becomes `operator`. The default,
    /// because a policy that cannot decide must not wave work through.
    #[default]
    Escalate,
    /// Fail closed: the plugin's verdict becomes `executive`.
    Deny,
    /// Skip the plugin for this item and record the skip. For advisory
    /// policies only; if every plugin is skipped, the item still goes to an
    /// operator.
    Ignore,
}

/// One fault, as recorded in the decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// What went wrong.
    pub kind: FaultKind,
    /// Where: `instantiate`, `classify`, `score` or `escalate`.
    pub stage: String,
    /// The specifics, for the person debugging the plugin.
    pub detail: String,
    /// The failure mode that was applied.
    pub failure_mode: FailureMode,
}

impl Fault {
    /// The verdict the failure mode substitutes for the plugin's own, or
    /// `None` when the plugin is skipped.
    pub fn substitute_verdict(&self, plugin: &str) -> Option<Verdict> {
        let tier = match self.failure_mode {
            FailureMode::Escalate => Tier::Operator,
            FailureMode::Deny => Tier::Executive,
            FailureMode::Ignore => return None,
        };
        Some(Verdict {
            tier,
            reason_code: format!("plugin-fault.{}", self.kind),
            reason: format!(
                "Policy `{plugin}` failed ({} in {}: {}), so a human must decide.",
                self.kind, self.stage, self.detail
            ),
            role: None,
            ack_sla_secs: None,
            resolve_sla_secs: None,
            guidance: None,
            trigger: TriggerKind::Rule,
        })
    }
}
