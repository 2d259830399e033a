//! The report's pure parts: threshold walks, percentiles, option checks.

use super::*;

fn close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "{actual} is not {expected}"
    );
}

#[test]
fn a_threshold_passes_once_enough_agree() {
    // 40 approvals at 0.50..0.89 and one correction at 0.45: with α = 0.1
    // and δ = 0.05, every threshold down to 0.50 bounds the error rate
    // under 0.1 from n = 29 on (1 − 0.05^(1/29) = 0.0981), and 0.45 adds
    // the error.
    let mut resolved: Vec<(f64, bool)> = (0..40)
        .map(|i| (0.50 + f64::from(i) / 100.0, false))
        .collect();
    resolved.push((0.45, true));
    let suggestion = suggest_threshold(&resolved, 0.1, 0.05);
    let threshold = suggestion.threshold.unwrap();
    close(threshold, 0.50);
    assert_eq!((suggestion.n, suggestion.errors), (40, 0));
    close(
        suggestion.upper_bound.unwrap(),
        1.0 - 0.05_f64.powf(1.0 / 40.0),
    );
    // The walk stopped at the first failure, 0.45.
    let last = suggestion.steps.last().unwrap();
    assert_eq!((last.n, last.errors), (41, 1));
    assert!(last.upper_bound > 0.1);
}

#[test]
fn percentiles_use_the_middle_and_the_nearest_rank() {
    let mut values: Vec<f64> = (1..=20).map(f64::from).collect();
    let p = percentiles(&mut values).unwrap();
    assert_eq!((p.median, p.p95), (10.5, 19.0));
    assert_eq!(percentiles(&mut []), None);
}

#[test]
fn options_out_of_range_are_named() {
    let bad = ReportOptions {
        cost_per_agent_attempt: -1.0,
        ..ReportOptions::default()
    };
    assert_eq!(bad.validate().unwrap_err().field, "cost-per-agent-attempt");
    let bad = ReportOptions {
        cost_per_human_minute: f64::NAN,
        ..ReportOptions::default()
    };
    assert_eq!(bad.validate().unwrap_err().field, "cost-per-human-minute");
    let bad = ReportOptions {
        delta: 1.0,
        ..ReportOptions::default()
    };
    assert_eq!(bad.validate().unwrap_err().field, "delta");
    assert_eq!(ReportOptions::default().validate(), Ok(()));
}
