//! `compliance-limits`: the rule-based reference policy.
//!
//! Three compliance-mandated triggers, all deterministic:
//! - authorization limits per kind of work and currency (operator above one
//!   limit, executive above a higher one; an unconfigured currency for a
//!   limited kind cannot be authorized and goes to an operator);
//! - phrase classes (legal threats, self-harm, data deletion, regulator
//!   complaints), each with its own tier, role and SLA;
//! - exhausted self-corrections: `attempts >= max-attempts` goes to an operator.
//!
//! When several fire, the highest tier wins; among equals, the first in the
//! order above.

use handoff_sdk::prelude::*;

mod rules;

pub use rules::{PhraseRule, Rule};

/// The configured policy.
#[derive(Debug, Clone)]
pub struct ComplianceLimits {
    /// Limits per kind of work, by kind name.
    limits: Vec<(String, TierLimits)>,
    phrase_rules: Vec<PhraseRule>,
    phrases: PhraseSet,
    max_attempts: u32,
    operator_role: String,
    executive_role: String,
}

const NAME: &str = "compliance-limits";

impl Policy for ComplianceLimits {
    fn info() -> PolicyInfo {
        PolicyInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Compliance-mandated escalations: authorization limits per kind and \
                          currency, regulatory and safety phrases, and exhausted self-corrections."
                .into(),
            triggers: vec![
                TriggerInfo::new(
                    "auth-limit",
                    TriggerKind::Rule,
                    "Money at stake above the configured operator or executive limit for the \
                     kind of work and currency, or in a currency with no configured limit.",
                ),
                TriggerInfo::new(
                    "phrase",
                    TriggerKind::Rule,
                    "Text rules of a configured class (legal threat, self-harm, data deletion, \
                     regulator complaint) matching the work's text: whole normalised words, \
                     phrases, prefixes, alternatives, proximity and negation.",
                ),
                TriggerInfo::new(
                    "attempts",
                    TriggerKind::Rule,
                    "The agent already self-corrected `max-attempts` times without passing.",
                ),
            ],
        }
    }

    fn configure(config: &Config) -> Result<Self, ConfigError> {
        let limits = config
            .children("limits")
            .into_iter()
            .map(|kind| {
                Ok((
                    kind.to_string(),
                    TierLimits::from_config(config, &format!("limits.{kind}"))?,
                ))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let phrase_rules = config
            .children("phrases")
            .into_iter()
            .map(|class| PhraseRule::from_config(config, class))
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let phrases = PhraseSet::new(
            phrase_rules
                .iter()
                .map(|rule| (rule.class.clone(), rule.phrases.clone())),
        )
        .map_err(|e| {
            ConfigError::new(
                format!("phrases.{}.match.{}", e.class, e.index),
                e.error.to_string(),
            )
        })?;
        let max_attempts: u32 = config.parse_or("max-attempts", 3)?;
        if max_attempts == 0 {
            return Err(ConfigError::new("max-attempts", "must be at least 1"));
        }
        Ok(ComplianceLimits {
            limits,
            phrase_rules,
            phrases,
            max_attempts,
            operator_role: config.string_or("operator-role", "operator"),
            executive_role: config.string_or("executive-role", "executive"),
        })
    }

    fn classify(&self, item: &WorkItem) -> Classification {
        classification_of(item, self.rules(item).iter())
    }

    fn score(&self, item: &WorkItem, classification: &Classification) -> Assessment {
        let explained = explained(self.rules_classified(item, classification));
        self.assess(item, classification, &explained)
    }

    fn escalate(
        &self,
        item: &WorkItem,
        classification: &Classification,
        _assessment: &Assessment,
    ) -> Verdict {
        let explained = explained(self.rules_classified(item, classification));
        self.decide(&explained)
    }

    /// The three stages in one pass: the rules are found once (the text
    /// scanned once) and each explanation written once, where calling the
    /// stages in turn would find them three times and explain them twice.
    /// Same results as `classify`, `score` and `escalate`; a unit test
    /// holds the two paths to each other.
    fn evaluate(&self, item: &WorkItem) -> (Classification, Assessment, Verdict) {
        let explained = explained(self.rules(item));
        let classification = classification_of(item, explained.iter().map(|(rule, _)| rule));
        let assessment = self.assess(item, &classification, &explained);
        let verdict = self.decide(&explained);
        (classification, assessment, verdict)
    }
}

/// Each rule with its explanation, written once.
fn explained(rules: Vec<Rule<'_>>) -> Vec<(Rule<'_>, String)> {
    rules
        .into_iter()
        .map(|rule| {
            let why = rule.explain();
            (rule, why)
        })
        .collect()
}

fn classification_of<'r, 'p: 'r>(
    item: &WorkItem,
    rules: impl ExactSizeIterator<Item = &'r Rule<'p>>,
) -> Classification {
    let mut labels = Vec::with_capacity(rules.len() + 1);
    labels.push(["kind.", &item.kind].concat());
    let mut rules_fired = Vec::with_capacity(rules.len());
    for rule in rules {
        labels.push(rule.label());
        rules_fired.push(rule.code());
    }
    Classification {
        labels,
        rules_fired,
    }
}

impl ComplianceLimits {
    fn assess(
        &self,
        item: &WorkItem,
        classification: &Classification,
        explained: &[(Rule<'_>, String)],
    ) -> Assessment {
        let mut signals: Vec<Signal> = explained
            .iter()
            .map(|(rule, why)| Signal::new(rule.code(), 1.0, why.clone()))
            .collect();
        if let (Some(amount), Some(limits)) = (&item.amount, self.limits_for(&item.kind))
            && let LimitBreach::Within { share } = limits.check(amount)
        {
            signals.push(Signal::new(
                "auth-limit.share",
                share,
                Line::new()
                    .money(amount)
                    .text(" is ")
                    .fixed(share * 100.0, 0)
                    .text("% of the lowest limit"),
            ));
        }
        let attempts_share = f64::from(item.attempts) / f64::from(self.max_attempts);
        if item.attempts > 0 && !classification.rule_fired() {
            signals.push(Signal::new(
                "attempts.share",
                attempts_share,
                Line::new()
                    .int(item.attempts.into())
                    .text(" of ")
                    .int(self.max_attempts.into())
                    .text(" self-corrections used"),
            ));
        }
        signals.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        let risk = if classification.rule_fired() {
            1.0
        } else {
            // No rule fired: risk is how close the work came to one, kept
            // below 1 so it never reads as a mandated escalation.
            signals.first().map_or(0.0, |s| s.weight * 0.9)
        };
        Assessment {
            risk,
            // Rules are deterministic: the policy is certain of its reading.
            confidence: 1.0,
            signals,
        }
    }

    fn decide(&self, explained: &[(Rule<'_>, String)]) -> Verdict {
        // Highest tier wins; `max_by_key` keeps the last of equals, so search
        // in reverse to keep the first.
        let Some((driver, why)) = explained
            .iter()
            .rev()
            .max_by_key(|(rule, _)| rule.tier().level())
        else {
            return Verdict::proceed(
                "compliance.clear",
                "No authorization limit, mandated phrase or retry limit applies.",
                TriggerKind::Rule,
            );
        };
        driver.verdict(why.clone(), &self.operator_role, &self.executive_role)
    }

    fn limits_for(&self, kind: &str) -> Option<&TierLimits> {
        self.limits
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, limits)| limits)
    }

    /// Every rule that fires for `item`, in precedence order.
    pub fn rules(&self, item: &WorkItem) -> Vec<Rule<'_>> {
        self.rules_with(item, &self.phrases.matching_classes(&item.text))
    }

    /// As [`ComplianceLimits::rules`], with the phrase classes read from the
    /// classification instead of matching the text again: the text is
    /// scanned once per item, in `classify`.
    fn rules_classified(&self, item: &WorkItem, classification: &Classification) -> Vec<Rule<'_>> {
        let classes: Vec<&str> = classification
            .rules_fired
            .iter()
            .filter_map(|code| code.strip_prefix("phrase."))
            .collect();
        self.rules_with(item, &classes)
    }

    fn rules_with(&self, item: &WorkItem, phrase_classes: &[&str]) -> Vec<Rule<'_>> {
        let mut fired = Vec::new();
        if let (Some(amount), Some(limits)) = (&item.amount, self.limits_for(&item.kind)) {
            match limits.check(amount) {
                LimitBreach::Within { .. } => {}
                LimitBreach::Exceeded { tier, limit } => fired.push(Rule::LimitExceeded {
                    kind: item.kind.clone(),
                    tier,
                    limit,
                    amount: amount.clone(),
                }),
                LimitBreach::UnknownCurrency => fired.push(Rule::UnknownCurrency {
                    kind: item.kind.clone(),
                    currency: amount.currency.clone(),
                }),
            }
        }
        for class in phrase_classes {
            if let Some(rule) = self.phrase_rules.iter().find(|r| r.class == *class) {
                fired.push(Rule::Phrase(rule));
            }
        }
        if item.attempts >= self.max_attempts {
            fired.push(Rule::AttemptsExhausted {
                attempts: item.attempts,
                max: self.max_attempts,
            });
        }
        fired
    }
}

handoff_sdk::export_policy!(ComplianceLimits);
// Stages keep nothing they allocate (no lazy state), so every evaluation's
// memory is reclaimed at once: see `handoff_sdk::scratch`.
handoff_sdk::scratch_allocator!();

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ComplianceLimits {
        ComplianceLimits::configure(&Config::from_pairs([
            ("limits.refund.USD.operator", "1000"),
            ("limits.refund.USD.executive", "5000"),
            ("phrases.legal.match.0", "lawyer"),
            ("phrases.legal.role", "legal"),
            ("max-attempts", "2"),
        ]))
        .unwrap()
    }

    fn item(text: &str, minor: Option<i64>, attempts: u32) -> WorkItem {
        WorkItem {
            id: "1".into(),
            kind: "refund".into(),
            agent: "a".into(),
            text: text.into(),
            confidence: 0.9,
            amount: minor.map(|minor| Money {
                minor,
                currency: "USD".into(),
            }),
            segment: None,
            attempts,
            attributes: vec![],
        }
    }

    /// The one-pass `evaluate` is an optimisation, not a second policy: on
    /// every sample case it answers exactly what the three stages do.
    #[test]
    fn one_pass_evaluation_matches_the_stages() {
        let p = policy();
        let cases = [
            item("ok", Some(1000), 0),
            item("ok", Some(1001), 0),
            item("my lawyer says", Some(9000), 0),
            item("my lawyer says", None, 3),
            item("fine", None, 1),
            item("fine", Some(999), 1),
        ];
        for case in &cases {
            let classification = p.classify(case);
            let assessment = p.score(case, &classification);
            let verdict = p.escalate(case, &classification, &assessment);
            assert_eq!(
                p.evaluate(case),
                (classification, assessment, verdict),
                "{case:?}"
            );
        }
    }

    #[test]
    fn rules_fire_natively() {
        let p = policy();
        assert_eq!(p.evaluate(&item("ok", Some(1000), 0)).2.tier, Tier::None);
        let (c, a, v) = p.evaluate(&item("ok", Some(1001), 0));
        assert_eq!(c.rules_fired, vec!["auth-limit.exceeded"]);
        assert_eq!(a.risk, 1.0);
        assert_eq!(
            (v.tier, v.role.as_deref()),
            (Tier::Operator, Some("operator"))
        );
        assert_eq!(
            p.evaluate(&item("ok", Some(5001), 0)).2.tier,
            Tier::Executive
        );
        let legal = p.evaluate(&item("my LAWYER", None, 0)).2;
        assert_eq!(
            (legal.reason_code.as_str(), legal.role.as_deref()),
            ("phrase.legal", Some("legal"))
        );
        assert_eq!(
            p.evaluate(&item("ok", None, 2)).2.reason_code,
            "attempts.exhausted"
        );
    }

    #[test]
    fn near_misses_raise_risk_without_escalating() {
        let (_, a, v) = policy().evaluate(&item("ok", Some(900), 0));
        assert_eq!(v.tier, Tier::None);
        assert!((a.risk - 0.81).abs() < 1e-9, "risk {}", a.risk);
    }

    #[test]
    fn bad_configuration_names_the_key() {
        let err = ComplianceLimits::configure(&Config::from_pairs([("phrases.x.tier", "boss")]))
            .unwrap_err();
        assert_eq!(err.key, "phrases.x.match");
        let err = ComplianceLimits::configure(&Config::from_pairs([
            ("phrases.x.match", "hi"),
            ("phrases.x.tier", "boss"),
        ]))
        .unwrap_err();
        assert_eq!(err.key, "phrases.x.tier");
        let err =
            ComplianceLimits::configure(&Config::from_pairs([("max-attempts", "0")])).unwrap_err();
        assert_eq!(err.key, "max-attempts");
    }
}
