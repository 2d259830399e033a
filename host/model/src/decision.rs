//! Decisions: what Handoff answers for a work item, and why.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Fault, Tier, TriggerKind};

/// The outcome of evaluating one work item through the policy set.
///
/// Everything except `metering` is a pure function of the item and the exact
/// plugin versions (recorded by digest), so a decision can be replayed and
/// compared byte for byte.
///
/// In JSON the deciding verdict's fields sit at the top level, beside the
/// tier's `level` and the `driver` (see [`DecisionJson`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The work item's id.
    pub id: String,
    /// Who must act and why: the driving plugin's verdict (the highest tier
    /// any plugin returned, the first in evaluation order among equals), or
    /// the host's own when no plugin escalated (trigger null) or none could
    /// decide.
    pub verdict: Verdict<Option<TriggerKind>>,
    /// The plugin whose verdict decided; null when no plugin's did.
    pub driver: Option<String>,
    /// The policy-set generation that produced this decision.
    pub generation: u64,
    /// Every plugin's view, in evaluation order.
    pub verdicts: Vec<PluginVerdict>,
    /// What the plugins running in shadow said: recorded beside the
    /// decision so a pilot can compare them with what decided, and never
    /// part of `combine`. Empty (and absent from JSON) when nothing runs in
    /// shadow, so decisions without a pilot read as they always did.
    pub shadow: Vec<PluginVerdict>,
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
    /// Per shadow plugin: metered apart, so a pilot's cost is visible and
    /// never mixed into what the enforcing set costs. `elapsed_us` does not
    /// include it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shadow: Vec<PluginMetering>,
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
    /// The configured snapshot the instance started from (`sha256:<hex>`),
    /// when the plugin has one: the same for every load of the same
    /// component and configuration. Absent when the instance ran its
    /// `configure` live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
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

/// Who must act and why: a plugin's stage 3 output, and (with an optional
/// trigger) the part of a [`Decision`] that the driving verdict decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict<T = TriggerKind> {
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
    /// Rule or probabilistic. In a decision, null when no policy escalated.
    pub trigger: T,
}

impl Verdict {
    /// This verdict as the one that decides an item.
    fn deciding(self) -> Verdict<Option<TriggerKind>> {
        let Verdict {
            tier,
            reason_code,
            reason,
            role,
            ack_sla_secs,
            resolve_sla_secs,
            guidance,
            trigger,
        } = self;
        Verdict {
            tier,
            reason_code,
            reason,
            role,
            ack_sla_secs,
            resolve_sla_secs,
            guidance,
            trigger: Some(trigger),
        }
    }
}

impl<T: Default> Verdict<T> {
    /// The host's own verdict: `tier` for `reason_code`, with no role, SLA
    /// or guidance of a plugin's.
    fn host(tier: Tier, reason_code: &str, reason: String, trigger: T) -> Self {
        Verdict {
            tier,
            reason_code: reason_code.to_string(),
            reason,
            role: None,
            ack_sla_secs: None,
            resolve_sla_secs: None,
            guidance: None,
            trigger,
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
            .filter_map(|pv| Some((pv, pv.verdict.as_ref()?)))
            .filter(|(_, v)| v.tier > Tier::None)
            .fold(
                None::<(&PluginVerdict, &Verdict)>,
                |best, candidate| match best {
                    Some(best) if best.1.tier >= candidate.1.tier => Some(best),
                    _ => Some(candidate),
                },
            );
        let (verdict, driver) = match driver {
            Some((pv, v)) => (v.clone().deciding(), Some(pv.plugin.clone())),
            None if verdicts.iter().all(|pv| pv.verdict.is_none()) => (
                Verdict::host(
                    Tier::Operator,
                    "plugin-fault.no-verdict",
                    "Every policy faulted and was skipped, so nothing decided; a human must."
                        .to_string(),
                    Some(TriggerKind::Rule),
                ),
                None,
            ),
            None => (
                Verdict::host(
                    Tier::None,
                    "proceed",
                    format!("No policy escalated ({} consulted).", verdicts.len()),
                    None,
                ),
                None,
            ),
        };
        Decision {
            id,
            verdict,
            driver,
            generation,
            verdicts,
            shadow: Vec::new(),
            metering,
        }
    }

    /// What the enforcing plugins' verdicts combine to, before the host's
    /// settlement (a self-correction past its limit): the side of a pilot
    /// comparison that the shadow's replacement is measured against.
    pub fn as_enforced(&self) -> Decision {
        Decision::combine(
            self.id.clone(),
            self.generation,
            self.verdicts.clone(),
            self.metering.clone(),
        )
    }

    /// What this item's decision would have been had the shadow plugin
    /// `shadow` been promoted: its verdict in place of the plugin it pilots
    /// (see [`piloted`]), or added when that plugin does not serve. None
    /// when `shadow` did not run on this item.
    pub fn as_if_promoted(&self, shadow: &str) -> Option<Decision> {
        let candidate = self.shadow.iter().find(|pv| pv.plugin == shadow)?;
        let base = piloted(shadow);
        let mut verdicts = self.verdicts.clone();
        match verdicts.iter_mut().find(|pv| pv.plugin == base) {
            Some(slot) => *slot = candidate.clone(),
            None => verdicts.push(candidate.clone()),
        }
        Some(Decision::combine(
            self.id.clone(),
            self.generation,
            verdicts,
            self.metering.clone(),
        ))
    }

    /// Who must act.
    pub fn tier(&self) -> Tier {
        self.verdict.tier
    }

    /// The deciding reason code (`proceed` when no plugin escalated).
    pub fn reason_code(&self) -> &str {
        &self.verdict.reason_code
    }
}

/// The plugin a shadow pilots: `confidence-gate` for
/// `confidence-gate@candidate`. A shadow without a label pilots a policy
/// that does not serve yet, under its own name.
pub fn piloted(shadow: &str) -> &str {
    shadow.split_once('@').map_or(shadow, |(base, _)| base)
}

/// A decision as JSON: the deciding verdict's fields flat at the top level,
/// in the order decisions have always been written, with the tier's level
/// beside the tier. Borrowed when writing, so that printing or auditing a
/// decision copies nothing.
#[derive(Serialize, Deserialize)]
struct DecisionJson<'a> {
    id: Cow<'a, str>,
    tier: Tier,
    /// Derived from the tier; read back but not trusted.
    level: u8,
    reason_code: Cow<'a, str>,
    reason: Cow<'a, str>,
    driver: Cow<'a, Option<String>>,
    role: Cow<'a, Option<String>>,
    ack_sla_secs: Option<u32>,
    resolve_sla_secs: Option<u32>,
    guidance: Cow<'a, Option<String>>,
    trigger: Option<TriggerKind>,
    generation: u64,
    verdicts: Cow<'a, [PluginVerdict]>,
    #[serde(default, skip_serializing_if = "<[PluginVerdict]>::is_empty")]
    shadow: Cow<'a, [PluginVerdict]>,
    metering: Cow<'a, Metering>,
}

impl Serialize for Decision {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let v = &self.verdict;
        DecisionJson {
            id: Cow::Borrowed(&self.id),
            tier: v.tier,
            level: v.tier.level(),
            reason_code: Cow::Borrowed(&v.reason_code),
            reason: Cow::Borrowed(&v.reason),
            driver: Cow::Borrowed(&self.driver),
            role: Cow::Borrowed(&v.role),
            ack_sla_secs: v.ack_sla_secs,
            resolve_sla_secs: v.resolve_sla_secs,
            guidance: Cow::Borrowed(&v.guidance),
            trigger: v.trigger,
            generation: self.generation,
            verdicts: Cow::Borrowed(&self.verdicts),
            shadow: Cow::Borrowed(&self.shadow),
            metering: Cow::Borrowed(&self.metering),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Decision {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = DecisionJson::deserialize(deserializer)?;
        Ok(Decision {
            id: json.id.into_owned(),
            verdict: Verdict {
                tier: json.tier,
                reason_code: json.reason_code.into_owned(),
                reason: json.reason.into_owned(),
                role: json.role.into_owned(),
                ack_sla_secs: json.ack_sla_secs,
                resolve_sla_secs: json.resolve_sla_secs,
                guidance: json.guidance.into_owned(),
                trigger: json.trigger,
            },
            driver: json.driver.into_owned(),
            generation: json.generation,
            verdicts: json.verdicts.into_owned(),
            shadow: json.shadow.into_owned(),
            metering: json.metering.into_owned(),
        })
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
                shadow: vec![],
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
            (d.tier(), d.tier().level(), d.driver.as_deref()),
            (Tier::Operator, 2, Some("b"))
        );
        assert_eq!(d.reason_code(), "b.code");
    }

    #[test]
    fn all_none_has_no_driver() {
        let d = combine(vec![pv("a", Tier::None), pv("b", Tier::None)]);
        assert_eq!(
            (d.tier(), d.driver.as_deref(), d.reason_code()),
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
            (d.tier(), d.reason_code()),
            (Tier::Operator, "plugin-fault.no-verdict")
        );
    }

    #[test]
    fn json_keeps_the_flat_field_order_and_reads_back() {
        let d = combine(vec![pv("a", Tier::Operator)]);
        let json = serde_json::to_string(&d).unwrap();
        let keys: Vec<&str> = [
            "\"id\"",
            "\"tier\"",
            "\"level\"",
            "\"reason_code\"",
            "\"reason\"",
            "\"driver\"",
            "\"role\"",
            "\"ack_sla_secs\"",
            "\"resolve_sla_secs\"",
            "\"guidance\"",
            "\"trigger\"",
            "\"generation\"",
            "\"verdicts\"",
        ]
        .into_iter()
        .collect();
        let positions: Vec<usize> = keys.iter().map(|k| json.find(k).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
        assert!(
            json.starts_with(r#"{"id":"x","tier":"operator","level":2,"#),
            "{json}"
        );
        let back: Decision = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        let none = combine(vec![pv("a", Tier::None)]);
        let json = serde_json::to_string(&none).unwrap();
        assert!(json.contains(r#""trigger":null"#), "{json}");
        assert_eq!(serde_json::from_str::<Decision>(&json).unwrap(), none);
    }
}
