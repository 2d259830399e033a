//! The report as a person reads it.

use std::fmt::Write;

use handoff_dispatch::FeedbackReport;
use handoff_dispatch::report::{Figures, Percentiles};

use super::output::terminal;

fn pct(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
}

fn secs(value: Option<Percentiles>) -> String {
    value.map_or("-".into(), |p| format!("{:.0}s / {:.0}s", p.median, p.p95))
}

fn row(out: &mut String, name: &str, f: &Figures) {
    let _ = writeln!(
        out,
        "{:<30} {:>9} {:>9} {:>8} {:>9} {:>10} {:>8} {:>19} {:>19} {:>8}",
        terminal(name),
        f.decisions,
        f.escalations,
        pct(f.escalation_rate),
        f.resolved,
        pct(f.warranted_share),
        pct(f.first_contact_resolution),
        secs(f.time_to_acknowledge),
        secs(f.time_to_resolve),
        pct(f.sla_compliance),
    );
}

/// Tables by policy and by reason code, the cost estimate and the
/// threshold suggestion.
pub fn render(report: &FeedbackReport) -> String {
    let mut out = String::new();
    let header = format!(
        "{:<30} {:>9} {:>9} {:>8} {:>9} {:>10} {:>8} {:>19} {:>19} {:>8}\n",
        "",
        "decisions",
        "escalated",
        "rate",
        "resolved",
        "warranted",
        "FCR",
        "ack median/p95",
        "resolve median/p95",
        "in SLA"
    );
    out.push_str(&header.replacen(&format!("{:<30}", ""), &format!("{:<30}", "policy"), 1));
    for (policy, figures) in &report.by_policy {
        row(&mut out, policy, figures);
    }
    row(&mut out, "(all)", &report.overall);
    out.push('\n');
    out.push_str(&header.replacen(&format!("{:<30}", ""), &format!("{:<30}", "reason code"), 1));
    for (code, figures) in &report.by_reason_code {
        row(&mut out, code, figures);
    }
    let _ = writeln!(
        out,
        "\n{} items handled autonomously; at {:.1} human minutes each, estimated cost avoided: {:.2}",
        report.autonomous_items, report.human_minutes_per_item, report.estimated_cost_avoided
    );
    let t = &report.threshold;
    match t.threshold {
        Some(threshold) => {
            let _ = writeln!(
                out,
                "suggested confidence threshold: {threshold} ({} resolved at or above it, {} corrected or rejected; error rate ≤ {:.4} with {:.0}% confidence, target {})",
                t.n,
                t.errors,
                t.upper_bound.unwrap_or(1.0),
                (1.0 - t.delta) * 100.0,
                t.target_error
            );
            let _ = writeln!(
                out,
                "humans only see escalated items: review a random sample of autonomous ones before adopting it"
            );
        }
        None => {
            let _ = writeln!(
                out,
                "no confidence threshold can be suggested yet: at least {} more resolved items are needed for an error rate under {} with {:.0}% confidence",
                t.more_needed.unwrap_or(0),
                t.target_error,
                (1.0 - t.delta) * 100.0
            );
        }
    }
    out
}
