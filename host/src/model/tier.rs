//! Tiers and trigger kinds, as they appear in JSON.

use serde::{Deserialize, Serialize};

use crate::bindings::wit;

/// Who must act on a unit of work. Ordered: a higher tier wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    /// The agent proceeds.
    None,
    /// Level 1: automated retry with guidance.
    SelfCorrect,
    /// Level 2: a specialised human operator with full context.
    Operator,
    /// Level 3: executive oversight for systemic risk.
    Executive,
}

impl Tier {
    /// Every tier, lowest first.
    pub const ALL: [Tier; 4] = [
        Tier::None,
        Tier::SelfCorrect,
        Tier::Operator,
        Tier::Executive,
    ];

    /// The escalation level, 0 to 3.
    pub fn level(self) -> u8 {
        self as u8
    }

    /// The name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::None => "none",
            Tier::SelfCorrect => "self-correct",
            Tier::Operator => "operator",
            Tier::Executive => "executive",
        }
    }
}

impl std::str::FromStr for Tier {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|tier| tier.as_str() == s)
            .ok_or_else(|| {
                format!("unknown tier `{s}`; expected none, self-correct, operator or executive")
            })
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<wit::Tier> for Tier {
    fn from(tier: wit::Tier) -> Self {
        match tier {
            wit::Tier::None => Tier::None,
            wit::Tier::SelfCorrect => Tier::SelfCorrect,
            wit::Tier::Operator => Tier::Operator,
            wit::Tier::Executive => Tier::Executive,
        }
    }
}

/// Whether a mandated rule or a probabilistic judgement drove a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerKind {
    /// A compliance-mandated rule.
    Rule,
    /// A judgement from confidence and anomaly signals.
    Probabilistic,
}

impl From<wit::TriggerKind> for TriggerKind {
    fn from(kind: wit::TriggerKind) -> Self {
        match kind {
            wit::TriggerKind::Rule => TriggerKind::Rule,
            wit::TriggerKind::Probabilistic => TriggerKind::Probabilistic,
        }
    }
}
