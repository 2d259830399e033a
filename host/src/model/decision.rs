//! Decisions: what Handoff answers for a work item, and why.

use serde::{Deserialize, Serialize};

use super::{Tier, TriggerKind};
use crate::bindings::wit;
use crate::fault::Fault;

/// The outcome of evaluating one work item through the policy set.
///
/// Everything except `metering` is a pure function of the item and the exact
/// plugin versions (recorded by digest), so a decision can be replayed and
/// compared byte for byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The work item's id.
    pub id: String,
    /// Who must act: the highest tier any plugin returned.
    pub tier: Tier,
    /// The tier's level, 0 to 3, for consumers that compare numbers.
    pub level: u8,
    /// The driving plugin's reason code, or `proceed` when no plugin escalated.
    pub reason_code: String,
    /// The driving plugin's reason, for the human or the agent.
    pub reason: String,
    /// The plugin whose verdict decided; null when every plugin said `none`.
    pub driver: Option<String>,
    /// The human role the driver asked for.
    pub role: Option<String>,
    /// Acknowledge target in seconds, from the driver.
    pub ack_sla_secs: Option<u32>,
    /// Resolve target in seconds, from the driver.
    pub resolve_sla_secs: Option<u32>,
    /// Guidance for the agent when the tier is `self-correct`.
    pub guidance: Option<String>,
    /// Whether a rule or a probabilistic judgement drove the decision.
    pub trigger: Option<TriggerKind>,
    /// The policy-set generation that produced this decision.
    pub generation: u64,
    /// Every plugin's view, in evaluation order.
    pub verdicts: Vec<PluginVerdict>,
    /// What the evaluation cost. The only field that may differ between two
    /// evaluations of the same item by the same policies.
    pub metering: Metering,
}

/// What one evaluation cost, in total and per plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metering {
    /// Microseconds from the first plugin call to the decision.
    pub elapsed_us: f64,
    /// Per plugin, in evaluation order.
    pub plugins: Vec<PluginMetering>,
}

/// What one plugin's evaluation cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginMetering {
    /// The plugin.
    pub plugin: String,
    /// Fuel consumed by the three stages.
    pub fuel: u64,
    /// Wall time, in microseconds, including instantiation when one was needed.
    pub wall_us: f64,
    /// Peak linear memory of the instance, in bytes.
    pub memory_bytes: u64,
}

/// One plugin's complete answer for an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginVerdict {
    /// The plugin's name in the policy set (its file name without `.wasm`).
    pub plugin: String,
    /// The policy's own version, from its metadata.
    pub version: String,
    /// SHA-256 of the exact component bytes that decided, as `sha256:<hex>`.
    pub digest: String,
    /// Stage 1 output; null if the plugin faulted before producing it.
    pub classification: Option<Classification>,
    /// Stage 2 output; null if the plugin faulted before producing it.
    pub assessment: Option<Assessment>,
    /// The plugin's verdict, or the one its failure mode substituted after a
    /// fault; null only when a fault made the plugin be skipped (`ignore`).
    pub verdict: Option<Verdict>,
    /// The fault, if the plugin misbehaved. Never absent when it did.
    pub fault: Option<Fault>,
}

/// Stage 1 output, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// Labels the plugin attached.
    pub labels: Vec<String>,
    /// Codes of the mandated rules that fired.
    pub rules_fired: Vec<String>,
}

/// One piece of evidence behind a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Signal name.
    pub name: String,
    /// Contribution to the risk, in [0, 1].
    pub weight: f64,
    /// What was observed.
    pub detail: String,
}

/// Stage 2 output, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// Risk in [0, 1].
    pub risk: f64,
    /// The plugin's confidence in its risk estimate, in [0, 1].
    pub confidence: f64,
    /// The why, strongest first.
    pub signals: Vec<Signal>,
}

/// Stage 3 output, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Who must act, according to this plugin.
    pub tier: Tier,
    /// Machine-readable reason.
    pub reason_code: String,
    /// Human-readable reason.
    pub reason: String,
    /// Required human role.
    pub role: Option<String>,
    /// Acknowledge target in seconds.
    pub ack_sla_secs: Option<u32>,
    /// Resolve target in seconds.
    pub resolve_sla_secs: Option<u32>,
    /// Guidance for a self-correction.
    pub guidance: Option<String>,
    /// Rule or probabilistic.
    pub trigger: TriggerKind,
}

impl From<wit::Classification> for Classification {
    fn from(c: wit::Classification) -> Self {
        Classification {
            labels: c.labels,
            rules_fired: c.rules_fired,
        }
    }
}

impl From<wit::Assessment> for Assessment {
    fn from(a: wit::Assessment) -> Self {
        Assessment {
            risk: a.risk,
            confidence: a.confidence,
            signals: a
                .signals
                .into_iter()
                .map(|s| Signal {
                    name: s.name,
                    weight: s.weight,
                    detail: s.detail,
                })
                .collect(),
        }
    }
}

impl From<wit::Verdict> for Verdict {
    fn from(v: wit::Verdict) -> Self {
        Verdict {
            tier: v.tier.into(),
            reason_code: v.reason_code,
            reason: v.reason,
            role: v.role,
            ack_sla_secs: v.ack_sla_secs,
            resolve_sla_secs: v.resolve_sla_secs,
            guidance: v.guidance,
            trigger: v.trigger.into(),
        }
    }
}

impl Decision {
    /// Combines the plugins' verdicts: the highest tier wins, and among equal
    /// tiers the first plugin in evaluation order keeps the lead. Plugins
    /// skipped after a fault have no verdict; if every plugin was skipped,
    /// nothing decided, and the item goes to an operator.
    pub fn combine(
        id: String,
        generation: u64,
        verdicts: Vec<PluginVerdict>,
        metering: Metering,
    ) -> Self {
        let driver = verdicts
            .iter()
            .filter_map(|pv| pv.verdict.as_ref().map(|v| (pv, v)))
            .filter(|(_, v)| v.tier > Tier::None)
            .fold(
                None::<(&PluginVerdict, &Verdict)>,
                |best, (pv, v)| match best {
                    Some(best) if best.1.tier >= v.tier => Some(best),
                    _ => Some((pv, v)),
                },
            );
        let nobody_decided = verdicts.iter().all(|pv| pv.verdict.is_none());
        let mut decision = Decision {
            id,
            tier: Tier::None,
            level: 0,
            reason_code: "proceed".to_string(),
            reason: format!("No policy escalated ({} consulted).", verdicts.len()),
            driver: None,
            role: None,
            ack_sla_secs: None,
            resolve_sla_secs: None,
            guidance: None,
            trigger: None,
            generation,
            verdicts: Vec::new(),
            metering,
        };
        if let Some((pv, v)) = driver {
            decision.tier = v.tier;
            decision.level = v.tier.level();
            decision.reason_code = v.reason_code.clone();
            decision.reason = v.reason.clone();
            decision.driver = Some(pv.plugin.clone());
            decision.role = v.role.clone();
            decision.ack_sla_secs = v.ack_sla_secs;
            decision.resolve_sla_secs = v.resolve_sla_secs;
            decision.guidance = v.guidance.clone();
            decision.trigger = Some(v.trigger);
        } else if nobody_decided {
            decision.tier = Tier::Operator;
            decision.level = Tier::Operator.level();
            decision.reason_code = "plugin-fault.no-verdict".to_string();
            decision.reason =
                "Every policy faulted and was skipped, so nothing decided; a human must."
                    .to_string();
            decision.trigger = Some(TriggerKind::Rule);
        }
        decision.verdicts = verdicts;
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(plugin: &str, tier: Tier) -> PluginVerdict {
        PluginVerdict {
            plugin: plugin.into(),
            version: "1".into(),
            digest: "sha256:00".into(),
            classification: Some(Classification {
                labels: vec![],
                rules_fired: vec![],
            }),
            assessment: Some(Assessment {
                risk: 0.0,
                confidence: 1.0,
                signals: vec![],
            }),
            fault: None,
            verdict: Some(Verdict {
                tier,
                reason_code: format!("{plugin}.code"),
                reason: String::new(),
                role: None,
                ack_sla_secs: None,
                resolve_sla_secs: None,
                guidance: None,
                trigger: TriggerKind::Rule,
            }),
        }
    }

    fn combine(verdicts: Vec<PluginVerdict>) -> Decision {
        Decision::combine(
            "x".into(),
            1,
            verdicts,
            Metering {
                elapsed_us: 0.0,
                plugins: vec![],
            },
        )
    }

    #[test]
    fn highest_tier_wins_and_ties_keep_the_first() {
        let d = combine(vec![
            pv("a", Tier::SelfCorrect),
            pv("b", Tier::Operator),
            pv("c", Tier::Operator),
        ]);
        assert_eq!(
            (d.tier, d.level, d.driver.as_deref()),
            (Tier::Operator, 2, Some("b"))
        );
        assert_eq!(d.reason_code, "b.code");
    }

    #[test]
    fn all_none_has_no_driver() {
        let d = combine(vec![pv("a", Tier::None), pv("b", Tier::None)]);
        assert_eq!(
            (d.tier, d.driver, d.reason_code.as_str()),
            (Tier::None, None, "proceed")
        );
        assert_eq!(d.verdicts.len(), 2);
    }

    #[test]
    fn all_skipped_goes_to_an_operator() {
        let mut skipped = pv("a", Tier::None);
        skipped.verdict = None;
        let d = combine(vec![skipped]);
        assert_eq!(
            (d.tier, d.reason_code.as_str()),
            (Tier::Operator, "plugin-fault.no-verdict")
        );
    }
}
