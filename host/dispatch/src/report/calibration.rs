//! Calibration: a confidence threshold suggested from human resolutions,
//! with a bound on the error rate it would let through, for each
//! probabilistic trigger that names the configuration key it lives in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dispatcher::EXHAUSTED;
use crate::handoff::Handoff;
use handoff_model::TriggerKind;

/// Where one probabilistic trigger's confidence threshold lives: a
/// plugin's `[calibrate]` entry, with the value it has now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationTarget {
    /// The plugin.
    pub plugin: String,
    /// The trigger's code (the reason-code prefix, `confidence`).
    pub trigger: String,
    /// The configuration key that holds its threshold.
    pub config_key: String,
    /// The key's value in the policy as it is now, when known.
    pub current: Option<f64>,
}

/// The calibration of one probabilistic trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The plugin whose trigger it is.
    pub plugin: String,
    /// The trigger's code.
    pub trigger: String,
    /// The configuration key the suggestion would change; none when the
    /// plugin's manifest names none for this trigger, so there is nothing
    /// to change.
    pub config_key: Option<String>,
    /// The key's value now.
    pub current: Option<f64>,
    /// The value to set the key to: the suggested threshold, when there is
    /// a key and a threshold passed.
    pub suggested: Option<f64>,
    /// The walk behind it.
    pub suggestion: ThresholdSuggestion,
}

/// What calibration learned from, and what it left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationReport {
    /// One entry per probabilistic trigger with a `[calibrate]` key or a
    /// resolved handoff, by plugin and trigger.
    pub triggers: Vec<Calibration>,
    /// Resolved handoffs a rule-based trigger drove: mandated, never tuned.
    pub excluded_rule_based: u64,
    /// Resolved handoffs the host made itself (self-correction exhausted,
    /// no plugin could decide): no plugin threshold produced them.
    pub excluded_host_made: u64,
    /// Resolved reviews of sampled autonomous items, weighted into every
    /// threshold of the plugins that consulted them.
    #[serde(default)]
    pub reviewed: u64,
}

/// Calibrates every probabilistic trigger from the resolved handoffs it
/// drove: the agent's confidence, and whether the human found the agent
/// wrong. A handoff belongs to the trigger whose code prefixes its reason
/// code (`confidence.low` to `confidence`).
pub fn calibrate(
    handoffs: &[&Handoff],
    targets: &[CalibrationTarget],
    target_error: f64,
    delta: f64,
) -> CalibrationReport {
    let mut samples: BTreeMap<(String, String), Vec<Evidence>> = BTreeMap::new();
    for target in targets {
        samples
            .entry((target.plugin.clone(), target.trigger.clone()))
            .or_default();
    }
    let (mut excluded_rule_based, mut excluded_host_made) = (0, 0);
    let mut reviews = Vec::new();
    for handoff in handoffs {
        let Some(resolution) = &handoff.resolution else {
            continue;
        };
        if let Some(review) = &handoff.payload.review {
            reviews.push((handoff, resolution, review.probability));
            continue;
        }
        let trigger = handoff.payload.decision.verdict.trigger;
        match (&handoff.driver, trigger) {
            (Some(_), Some(TriggerKind::Rule)) => excluded_rule_based += 1,
            (Some(plugin), Some(TriggerKind::Probabilistic))
                if handoff.reason_code != EXHAUSTED =>
            {
                let code = handoff.reason_code.split('.').next().unwrap_or_default();
                samples
                    .entry((plugin.clone(), code.to_string()))
                    .or_default()
                    .push(Evidence {
                        confidence: handoff.confidence,
                        wrong: resolution.outcome.agent_was_wrong(),
                        weight: 1.0,
                    });
            }
            _ => excluded_host_made += 1,
        }
    }
    // A reviewed autonomous item passed every trigger of every plugin that
    // consulted it: it is evidence for each of their thresholds, weighted
    // by the inverse of the probability it had of being reviewed.
    let mut reviewed = 0;
    for (handoff, resolution, probability) in reviews {
        if probability.is_nan() || probability <= 0.0 {
            continue;
        }
        reviewed += 1;
        let consulted = &handoff.payload.decision.verdicts;
        for ((plugin, _), evidence) in samples.iter_mut() {
            if consulted.iter().any(|v| &v.plugin == plugin) {
                evidence.push(Evidence {
                    confidence: handoff.confidence,
                    wrong: resolution.outcome.agent_was_wrong(),
                    weight: 1.0 / probability,
                });
            }
        }
    }
    let triggers = samples
        .into_iter()
        .map(|((plugin, trigger), resolved)| {
            let target = targets
                .iter()
                .find(|t| t.plugin == plugin && t.trigger == trigger);
            let suggestion = suggest_weighted(&resolved, target_error, delta);
            Calibration {
                config_key: target.map(|t| t.config_key.clone()),
                current: target.and_then(|t| t.current),
                suggested: target.and(suggestion.threshold),
                suggestion,
                plugin,
                trigger,
            }
        })
        .collect();
    CalibrationReport {
        triggers,
        excluded_rule_based,
        excluded_host_made,
        reviewed,
    }
}

/// One human verdict on an item: the agent's confidence, whether the human
/// found the agent wrong, and the item's weight (the inverse of its
/// probability of being seen: 1 for an escalation, which a human always
/// sees; 1/p for a review sampled with probability p).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// The agent's confidence.
    pub confidence: f64,
    /// Whether the human corrected or rejected the agent.
    pub wrong: bool,
    /// Inverse inclusion probability.
    pub weight: f64,
}

/// A suggested confidence threshold, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdSuggestion {
    /// α: the error rate to stay under.
    pub target_error: f64,
    /// δ: the chance the bound is wrong.
    pub delta: f64,
    /// The lowest threshold whose bound stays under α, if any does.
    pub threshold: Option<f64>,
    /// Resolved items at or above it.
    pub n: u64,
    /// Of those, how many the humans corrected or rejected.
    pub errors: u64,
    /// `n` after weighting: Kish's effective sample size.
    #[serde(default)]
    pub effective_n: f64,
    /// The weighted error rate times `effective_n`.
    #[serde(default)]
    pub effective_errors: f64,
    /// The Clopper–Pearson upper bound on their error rate.
    pub upper_bound: Option<f64>,
    /// When no threshold passes: more resolved items needed, assuming
    /// they carry no errors (the least data that could ever pass).
    pub more_needed: Option<u64>,
    /// Every threshold tested, highest first, up to the first that failed
    /// (thresholds with too few items to ever pass are not tested).
    pub steps: Vec<ThresholdStep>,
}

/// One threshold tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdStep {
    /// τ.
    pub threshold: f64,
    /// Resolved items with confidence ≥ τ.
    pub n: u64,
    /// Of those, corrected or rejected.
    pub errors: u64,
    /// `n` after weighting by inverse inclusion probability (Kish).
    #[serde(default)]
    pub effective_n: f64,
    /// The weighted error rate times `effective_n`.
    #[serde(default)]
    pub effective_errors: f64,
    /// The one-sided upper bound at level δ.
    pub upper_bound: f64,
}

/// Fixed-sequence testing: walk thresholds from high to low, bound the
/// error rate of the items at or above each with Clopper–Pearson at level
/// `delta`, stop at the first bound over `target_error`, and suggest the
/// last threshold that passed (Geifman & El-Yaniv 2017; Angelopoulos et
/// al., Learn then Test, 2021).
///
/// The walk starts at the highest threshold with enough items at or above
/// it that zero errors could pass (`ln δ / ln(1 − α)`): a threshold with
/// fewer can never pass, and testing it first would end every walk at
/// once. Where the walk starts depends only on the confidences, never on
/// what the humans decided, so the sequence is still fixed before any
/// outcome is looked at and the guarantee holds.
///
/// `resolved` is each resolved item's agent confidence and whether the
/// human found the agent wrong. Humans only see escalated items, so the
/// bound speaks for items like those; sample autonomous items for review
/// to cover the rest.
pub fn suggest_threshold(
    resolved: &[(f64, bool)],
    target_error: f64,
    delta: f64,
) -> ThresholdSuggestion {
    let evidence: Vec<Evidence> = resolved
        .iter()
        .map(|&(confidence, wrong)| Evidence {
            confidence,
            wrong,
            weight: 1.0,
        })
        .collect();
    suggest_weighted(&evidence, target_error, delta)
}

/// [`suggest_threshold`] on weighted evidence. At each threshold the
/// error rate is the Horvitz–Thompson estimate (errors and items each
/// summed by weight), and the bound is Clopper–Pearson on Kish's
/// effective sample size `(Σw)² / Σw²` with the error count that rate
/// implies, rounded against the suggestion (errors up, items down). With
/// every weight 1 this is exactly the unweighted walk.
pub fn suggest_weighted(
    resolved: &[Evidence],
    target_error: f64,
    delta: f64,
) -> ThresholdSuggestion {
    let mut candidates: Vec<f64> = resolved
        .iter()
        .map(|e| e.confidence)
        .filter(|c| c.is_finite())
        .collect();
    candidates.sort_by(|a, b| b.total_cmp(a));
    candidates.dedup();
    let mut suggestion = ThresholdSuggestion {
        target_error,
        delta,
        threshold: None,
        n: 0,
        errors: 0,
        effective_n: 0.0,
        effective_errors: 0.0,
        upper_bound: None,
        more_needed: None,
        steps: Vec::new(),
    };
    // With no errors the bound is 1 - δ^(1/n), which is at most α from
    // n = ln δ / ln(1 - α) (about ln(1/δ)/α) on.
    let needed = (delta.ln() / (1.0 - target_error).ln()).ceil() as u64;
    for threshold in candidates {
        let at_or_above: Vec<&Evidence> = resolved
            .iter()
            .filter(|e| e.confidence >= threshold && e.weight.is_finite() && e.weight > 0.0)
            .collect();
        let weight: f64 = at_or_above.iter().map(|e| e.weight).sum();
        let square: f64 = at_or_above.iter().map(|e| e.weight * e.weight).sum();
        let wrong_weight: f64 = at_or_above
            .iter()
            .filter(|e| e.wrong)
            .map(|e| e.weight)
            .sum();
        let effective_n = if square > 0.0 {
            weight * weight / square
        } else {
            0.0
        };
        let effective_errors = if weight > 0.0 {
            wrong_weight / weight * effective_n
        } else {
            0.0
        };
        // Rounded against the suggestion, with slack for float error.
        let bound_n = (effective_n + 1e-9).floor() as u64;
        let bound_errors = (effective_errors - 1e-9).ceil().max(0.0) as u64;
        if bound_n < needed {
            continue;
        }
        let n = at_or_above.len() as u64;
        let errors = at_or_above.iter().filter(|e| e.wrong).count() as u64;
        let upper_bound = clopper_pearson_upper(bound_errors, bound_n, delta);
        suggestion.steps.push(ThresholdStep {
            threshold,
            n,
            errors,
            effective_n,
            effective_errors,
            upper_bound,
        });
        if upper_bound > target_error {
            break;
        }
        suggestion.threshold = Some(threshold);
        suggestion.n = n;
        suggestion.errors = errors;
        suggestion.effective_n = effective_n;
        suggestion.effective_errors = effective_errors;
        suggestion.upper_bound = Some(upper_bound);
    }
    if suggestion.threshold.is_none() {
        suggestion.more_needed = Some(needed.saturating_sub(resolved.len() as u64).max(1));
    }
    suggestion
}

/// The one-sided Clopper–Pearson upper bound on a binomial proportion
/// after `k` errors in `n` trials: the `p` at which seeing `k` or fewer
/// errors has probability `delta`.
pub fn clopper_pearson_upper(k: u64, n: u64, delta: f64) -> f64 {
    if n == 0 || k >= n {
        return 1.0;
    }
    if k == 0 {
        // Closed form: (1 - p)^n = delta.
        return 1.0 - delta.powf(1.0 / n as f64);
    }
    // P(X ≤ k) falls as p rises: bisect for the p where it equals delta.
    let (mut low, mut high) = (k as f64 / n as f64, 1.0);
    for _ in 0..100 {
        let mid = (low + high) / 2.0;
        if binomial_cdf(k, n, mid) > delta {
            low = mid;
        } else {
            high = mid;
        }
    }
    high
}

/// P(X ≤ k) for X ~ Binomial(n, p), summed in log space so large n does
/// not underflow.
fn binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
    if p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return if k >= n { 1.0 } else { 0.0 };
    }
    let (ln_p, ln_q) = (p.ln(), (1.0 - p).ln());
    let mut ln_choose = 0.0_f64; // ln C(n, 0)
    let mut total = 0.0;
    for i in 0..=k.min(n) {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        total += (ln_choose + i as f64 * ln_p + (n - i) as f64 * ln_q).exp();
    }
    total.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn clopper_pearson_matches_published_values() {
        // Zero errors: 1 - δ^(1/n).
        assert!(close(clopper_pearson_upper(0, 10, 0.05), 0.258_866, 1e-6));
        // 1 in 10 at one-sided 95%: 0.3942 (the two-sided 90% interval's
        // upper end, as tabulated).
        assert!(close(clopper_pearson_upper(1, 10, 0.05), 0.394_163, 1e-5));
        // 5 in 100: 0.1023.
        assert!(close(clopper_pearson_upper(5, 100, 0.05), 0.102_3, 1e-3));
        assert_eq!(clopper_pearson_upper(3, 3, 0.05), 1.0);
        assert_eq!(clopper_pearson_upper(0, 0, 0.05), 1.0);
    }
}
