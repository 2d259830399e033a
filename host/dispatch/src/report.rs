//! Feedback: how the policies perform against what humans decided, and a
//! confidence threshold suggested from human resolutions.
//!
//! Everything here is a pure function of the stored history, so the
//! figures can be checked against a constructed history whose answers are
//! known.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::handoff::{Handoff, HandoffState};
use super::store::DecisionRow;
use handoff_model::Tier;

/// Prices for the cost estimate, and the calibration target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportOptions {
    /// What a minute of a human's time costs.
    pub cost_per_human_minute: f64,
    /// What handling one item autonomously costs (compute, the agent).
    pub cost_per_autonomous_item: f64,
    /// Minutes a human would spend on an item, when the history has no
    /// resolved handoffs to measure it from.
    pub default_human_minutes: f64,
    /// The error rate the suggested threshold must stay under (α).
    pub target_error: f64,
    /// The chance the bound is wrong (δ).
    pub delta: f64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            cost_per_human_minute: 1.0,
            cost_per_autonomous_item: 0.05,
            default_human_minutes: 10.0,
            target_error: 0.01,
            delta: 0.05,
        }
    }
}

/// Median and 95th percentile, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// 50th percentile.
    pub median: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
}

/// The figures for one policy, one reason code, or everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Decisions dispatched.
    pub decisions: u64,
    /// Of those, handed to a human (operator or executive).
    pub escalations: u64,
    /// `escalations / decisions`.
    pub escalation_rate: Option<f64>,
    /// Handoffs resolved.
    pub resolved: u64,
    /// Share of resolved handoffs the human judged warranted.
    pub warranted_share: Option<f64>,
    /// Share of resolved handoffs resolved by the first human to claim
    /// them, with no release, lease expiry or escalation.
    pub first_contact_resolution: Option<f64>,
    /// Time from enqueue to acknowledgement.
    pub time_to_acknowledge: Option<Percentiles>,
    /// Time from enqueue to resolution.
    pub time_to_resolve: Option<Percentiles>,
    /// Share of resolved handoffs that met every deadline.
    pub sla_compliance: Option<f64>,
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
    /// The Clopper–Pearson upper bound on their error rate.
    pub upper_bound: Option<f64>,
    /// When no threshold passes: more resolved items needed, assuming
    /// they carry no errors (the least data that could ever pass).
    pub more_needed: Option<u64>,
    /// Every threshold walked, highest first, up to the first that failed.
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
    /// The one-sided upper bound at level δ.
    pub upper_bound: f64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackReport {
    /// Across everything.
    pub overall: Figures,
    /// By the plugin that drove the decision (`-` for none).
    pub by_policy: BTreeMap<String, Figures>,
    /// By reason code.
    pub by_reason_code: BTreeMap<String, Figures>,
    /// Items the agents handled without a human.
    pub autonomous_items: u64,
    /// Minutes of human time an item takes, measured or assumed.
    pub human_minutes_per_item: f64,
    /// `autonomous_items × (human minutes × cost per minute − cost per
    /// autonomous item)`.
    pub estimated_cost_avoided: f64,
    /// The calibration.
    pub threshold: ThresholdSuggestion,
}

/// Computes the report from the stored history.
pub fn feedback_report(
    decisions: &[DecisionRow],
    handoffs: &[Handoff],
    options: &ReportOptions,
) -> FeedbackReport {
    let figures = |keep: &dyn Fn(Option<&str>, &str) -> bool| {
        let decisions: Vec<_> = decisions
            .iter()
            .filter(|d| keep(d.driver.as_deref(), &d.reason_code))
            .collect();
        let handoffs: Vec<_> = handoffs
            .iter()
            .filter(|h| keep(h.driver.as_deref(), &h.reason_code))
            .collect();
        figures_of(&decisions, &handoffs)
    };
    let policies: std::collections::BTreeSet<String> = decisions
        .iter()
        .map(|d| policy_key(d.driver.as_deref()))
        .collect();
    let codes: std::collections::BTreeSet<&str> =
        decisions.iter().map(|d| d.reason_code.as_str()).collect();
    let by_policy = policies
        .into_iter()
        .map(|p| {
            let f = figures(&|driver, _| policy_key(driver) == p);
            (p, f)
        })
        .collect();
    let by_reason_code = codes
        .into_iter()
        .map(|c| (c.to_string(), figures(&|_, code| code == c)))
        .collect();

    let autonomous_items = decisions.iter().filter(|d| !is_human(d.tier)).count() as u64;
    let resolve_minutes: Vec<f64> = handoffs
        .iter()
        .filter_map(|h| Some((h.resolved_at? - h.created_at).num_milliseconds() as f64 / 60_000.0))
        .collect();
    let human_minutes_per_item = if resolve_minutes.is_empty() {
        options.default_human_minutes
    } else {
        resolve_minutes.iter().sum::<f64>() / resolve_minutes.len() as f64
    };
    let estimated_cost_avoided = autonomous_items as f64
        * (human_minutes_per_item * options.cost_per_human_minute
            - options.cost_per_autonomous_item);
    let resolved: Vec<(f64, bool)> = handoffs
        .iter()
        .filter_map(|h| {
            Some((
                h.confidence,
                h.resolution.as_ref()?.outcome.agent_was_wrong(),
            ))
        })
        .collect();
    FeedbackReport {
        overall: figures(&|_, _| true),
        by_policy,
        by_reason_code,
        autonomous_items,
        human_minutes_per_item,
        estimated_cost_avoided,
        threshold: suggest_threshold(&resolved, options.target_error, options.delta),
    }
}

fn policy_key(driver: Option<&str>) -> String {
    driver.unwrap_or("-").to_string()
}

fn is_human(tier: Tier) -> bool {
    matches!(tier, Tier::Operator | Tier::Executive)
}

fn share(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn figures_of(decisions: &[&DecisionRow], handoffs: &[&Handoff]) -> Figures {
    let escalations = decisions.iter().filter(|d| is_human(d.tier)).count();
    let resolved: Vec<&&Handoff> = handoffs
        .iter()
        .filter(|h| h.state == HandoffState::Resolved)
        .collect();
    let warranted = resolved
        .iter()
        .filter(|h| h.resolution.as_ref().is_some_and(|r| r.warranted))
        .count();
    let first_contact = resolved
        .iter()
        .filter(|h| h.claims == 1 && h.escalations == 0)
        .count();
    let within_sla = resolved.iter().filter(|h| !h.breached).count();
    let seconds = |to: fn(&Handoff) -> Option<chrono::DateTime<chrono::Utc>>| {
        let mut values: Vec<f64> = handoffs
            .iter()
            .filter_map(|h| Some((to(h)? - h.created_at).num_milliseconds() as f64 / 1000.0))
            .collect();
        percentiles(&mut values)
    };
    Figures {
        decisions: decisions.len() as u64,
        escalations: escalations as u64,
        escalation_rate: share(escalations, decisions.len()),
        resolved: resolved.len() as u64,
        warranted_share: share(warranted, resolved.len()),
        first_contact_resolution: share(first_contact, resolved.len()),
        time_to_acknowledge: seconds(|h| h.acked_at),
        time_to_resolve: seconds(|h| h.resolved_at),
        sla_compliance: share(within_sla, resolved.len()),
    }
}

/// Median (mean of the middle two for an even count) and nearest-rank p95.
fn percentiles(values: &mut [f64]) -> Option<Percentiles> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    let rank = (0.95 * n as f64).ceil() as usize;
    Some(Percentiles {
        median,
        p95: values[rank.clamp(1, n) - 1],
    })
}

/// Fixed-sequence testing: walk thresholds from high to low, bound the
/// error rate of the items at or above each with Clopper–Pearson at level
/// `delta`, stop at the first bound over `target_error`, and suggest the
/// last threshold that passed (Geifman & El-Yaniv 2017; Angelopoulos et
/// al., Learn then Test, 2021).
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
    let mut candidates: Vec<f64> = resolved
        .iter()
        .map(|(c, _)| *c)
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
        upper_bound: None,
        more_needed: None,
        steps: Vec::new(),
    };
    for threshold in candidates {
        let at_or_above = resolved.iter().filter(|(c, _)| *c >= threshold);
        let n = at_or_above.clone().count() as u64;
        let errors = at_or_above.filter(|(_, wrong)| *wrong).count() as u64;
        let upper_bound = clopper_pearson_upper(errors, n, delta);
        suggestion.steps.push(ThresholdStep {
            threshold,
            n,
            errors,
            upper_bound,
        });
        if upper_bound > target_error {
            break;
        }
        suggestion.threshold = Some(threshold);
        suggestion.n = n;
        suggestion.errors = errors;
        suggestion.upper_bound = Some(upper_bound);
    }
    if suggestion.threshold.is_none() {
        // With no errors the bound is 1 - δ^(1/n), which is at most α from
        // n = ln δ / ln(1 - α) (about ln(1/δ)/α) on.
        let needed = (delta.ln() / (1.0 - target_error).ln()).ceil() as u64;
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

    #[test]
    fn percentiles_use_the_middle_and_the_nearest_rank() {
        let mut values: Vec<f64> = (1..=20).map(f64::from).collect();
        let p = percentiles(&mut values).unwrap();
        assert_eq!((p.median, p.p95), (10.5, 19.0));
        assert_eq!(percentiles(&mut []), None);
    }
}
