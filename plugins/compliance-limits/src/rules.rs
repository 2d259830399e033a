//! The rules `compliance-limits` enforces, and the verdict each one produces.

use handoff_sdk::prelude::*;

/// A configured phrase class: what matches, and who must handle it.
#[derive(Debug, Clone, PartialEq)]
pub struct PhraseRule {
    pub class: String,
    pub phrases: Vec<String>,
    pub tier: Tier,
    pub role: Option<String>,
    pub ack_sla_secs: Option<u32>,
    pub resolve_sla_secs: Option<u32>,
    pub reason: String,
}

impl PhraseRule {
    /// Reads `phrases.<class>.{match,tier,role,ack-sla-secs,resolve-sla-secs,reason}`.
    pub fn from_config(config: &Config, class: &str) -> Result<Self, ConfigError> {
        let key = |field: &str| format!("phrases.{class}.{field}");
        let phrases: Vec<String> = config
            .list(&key("match"))
            .into_iter()
            .map(str::to_string)
            .collect();
        if phrases.is_empty() {
            return Err(ConfigError::new(
                key("match"),
                "expected at least one phrase",
            ));
        }
        let tier = match config.get(&key("tier")).unwrap_or("operator") {
            "operator" => Tier::Operator,
            "executive" => Tier::Executive,
            other => {
                return Err(ConfigError::new(
                    key("tier"),
                    format!("expected `operator` or `executive`, got {other:?}"),
                ));
            }
        };
        let positive = |field: &str| -> Result<Option<u32>, ConfigError> {
            match config.parse::<u32>(&key(field))? {
                Some(0) => Err(ConfigError::new(
                    key(field),
                    "an SLA must be at least one second",
                )),
                other => Ok(other),
            }
        };
        Ok(PhraseRule {
            class: class.to_string(),
            phrases,
            tier,
            role: config.get(&key("role")).map(str::to_string),
            ack_sla_secs: positive("ack-sla-secs")?,
            resolve_sla_secs: positive("resolve-sla-secs")?,
            reason: config.string_or(
                &key("reason"),
                &format!("The text contains a phrase of class `{class}`, which mandates a human."),
            ),
        })
    }
}

/// One rule that fired for an item.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule<'a> {
    /// Money at stake above a configured limit.
    LimitExceeded {
        kind: String,
        tier: Tier,
        limit: u64,
        amount: Money,
    },
    /// Money at stake in a currency with no limit for a limited kind.
    UnknownCurrency { kind: String, currency: String },
    /// A mandated phrase class matched.
    Phrase(&'a PhraseRule),
    /// The agent used up its self-corrections.
    AttemptsExhausted { attempts: u32, max: u32 },
}

impl Rule<'_> {
    /// The machine-readable reason code.
    pub fn code(&self) -> String {
        match self {
            Rule::LimitExceeded {
                tier: Tier::Executive,
                ..
            } => "auth-limit.executive".into(),
            Rule::LimitExceeded { .. } => "auth-limit.exceeded".into(),
            Rule::UnknownCurrency { .. } => "auth-limit.unknown-currency".into(),
            Rule::Phrase(rule) => ["phrase.", &rule.class].concat(),
            Rule::AttemptsExhausted { .. } => "attempts.exhausted".into(),
        }
    }

    /// The classification label.
    pub fn label(&self) -> String {
        match self {
            Rule::LimitExceeded { kind, .. } => [kind.as_str(), ".over-limit"].concat(),
            Rule::UnknownCurrency { kind, .. } => [kind.as_str(), ".unknown-currency"].concat(),
            Rule::Phrase(rule) => ["phrase.", &rule.class].concat(),
            Rule::AttemptsExhausted { .. } => "attempts.exhausted".into(),
        }
    }

    /// The tier this rule mandates.
    pub fn tier(&self) -> Tier {
        match self {
            Rule::LimitExceeded { tier, .. } => *tier,
            Rule::Phrase(rule) => rule.tier,
            Rule::UnknownCurrency { .. } | Rule::AttemptsExhausted { .. } => Tier::Operator,
        }
    }

    /// A sentence for the human who receives the handoff.
    pub fn explain(&self) -> String {
        match self {
            Rule::LimitExceeded {
                kind,
                tier,
                limit,
                amount,
            } => {
                let limit = Money {
                    minor: *limit as i64,
                    currency: amount.currency.clone(),
                };
                let who = if *tier == Tier::Executive {
                    "executive"
                } else {
                    "operator"
                };
                Line::new()
                    .text(kind)
                    .text(" of ")
                    .money(amount)
                    .text(" exceeds the ")
                    .text(who)
                    .text(" authorization limit of ")
                    .money(&limit)
                    .text(".")
                    .into()
            }
            Rule::UnknownCurrency { kind, currency } => format!(
                "No authorization limit is configured for {kind} in {currency}, so it cannot be \
                 approved automatically."
            ),
            Rule::Phrase(rule) => rule.reason.clone(),
            Rule::AttemptsExhausted { attempts, max } => format!(
                "The agent has already self-corrected {attempts} times (limit {max}) without passing."
            ),
        }
    }

    /// The verdict this rule produces, with its explanation `why` (what
    /// [`Rule::explain`] says, written once by the caller).
    pub fn verdict(&self, why: String, operator_role: &str, executive_role: &str) -> Verdict {
        let tier = self.tier();
        let verdict = Verdict::escalate(tier, self.code(), why, TriggerKind::Rule);
        match self {
            Rule::Phrase(rule) => {
                let role = rule
                    .role
                    .clone()
                    .unwrap_or_else(|| default_role(tier, operator_role, executive_role));
                verdict
                    .with_role(role)
                    .with_sla(rule.ack_sla_secs, rule.resolve_sla_secs)
            }
            _ => verdict.with_role(default_role(tier, operator_role, executive_role)),
        }
    }
}

fn default_role(tier: Tier, operator_role: &str, executive_role: &str) -> String {
    if tier == Tier::Executive {
        executive_role
    } else {
        operator_role
    }
    .to_string()
}
