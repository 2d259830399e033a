//! The report as a person reads it: one table per breakdown, the cost
//! model, and each probabilistic trigger's calibration.

use std::collections::BTreeMap;
use std::fmt::Write;

use handoff_dispatch::FeedbackReport;
use handoff_dispatch::report::{Calibration, Figures, Percentiles};

use super::output::{fit, terminal};

const NAME: usize = 28;

fn pct(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
}

/// A duration pair, in the largest unit that keeps it short.
fn span(value: Option<Percentiles>) -> String {
    let one = |secs: f64| {
        if secs < 120.0 {
            format!("{secs:.0}s")
        } else if secs < 7200.0 {
            format!("{:.0}m", secs / 60.0)
        } else {
            format!("{:.1}h", secs / 3600.0)
        }
    };
    value.map_or("-".into(), |p| format!("{}/{}", one(p.median), one(p.p95)))
}

fn header(out: &mut String, first: &str) {
    let _ = writeln!(
        out,
        "{:<NAME$} {:>6} {:>6} {:>7} {:>6} {:>6} {:>13} {:>13} {:>13} {:>7} {:>10}",
        first,
        "work",
        "agent",
        "auto",
        "people",
        "FCR",
        "value med/95",
        "handle med/95",
        "wait med/95",
        "in SLA",
        "avoided"
    );
}

fn row(out: &mut String, name: &str, f: &Figures) {
    let _ = writeln!(
        out,
        "{:<NAME$} {:>6} {:>6} {:>7} {:>6} {:>6} {:>13} {:>13} {:>13} {:>7} {:>10.2}",
        fit(&terminal(name), NAME),
        f.work,
        f.with_agent,
        pct(f.autonomous_share),
        f.with_people,
        pct(f.first_contact_resolution),
        span(f.time_to_value),
        span(f.human_handling),
        span(f.queue_wait),
        pct(f.sla.compliance),
        f.cost_avoided,
    );
}

fn table(out: &mut String, first: &str, groups: &BTreeMap<String, Figures>, all: &Figures) {
    header(out, first);
    for (name, figures) in groups {
        row(out, name, figures);
    }
    row(out, "(all)", all);
    out.push('\n');
}

fn calibration(out: &mut String, c: &Calibration) {
    let s = &c.suggestion;
    let name = format!("{}/{}", terminal(&c.plugin), terminal(&c.trigger));
    let confidence = (1.0 - s.delta) * 100.0;
    match (&c.config_key, s.threshold) {
        (None, _) => {
            let _ = writeln!(
                out,
                "{name}: not calibrated: its manifest names no [calibrate] key for `{}`",
                terminal(&c.trigger)
            );
        }
        (Some(key), Some(threshold)) => {
            let now = c.current.map_or("unknown".into(), |v| v.to_string());
            let _ = writeln!(
                out,
                "{name}: set `{}` to {threshold} (now {now}): of {} resolved at or above it, {} \
                 corrected or rejected; error rate ≤ {:.4} with {confidence:.0}% confidence \
                 (target {})",
                terminal(key),
                s.n,
                s.errors,
                s.upper_bound.unwrap_or(1.0),
                s.target_error
            );
        }
        (Some(key), None) => {
            let _ = writeln!(
                out,
                "{name}: keep `{}`: at least {} more resolved handoffs are needed for an error \
                 rate under {} with {confidence:.0}% confidence",
                terminal(key),
                s.more_needed.unwrap_or(0),
                s.target_error
            );
        }
    }
}

/// The whole report as text.
pub fn render(report: &FeedbackReport) -> String {
    let mut out = String::new();
    let all = &report.overall;
    let _ = writeln!(
        out,
        "{} pieces of work, {} decisions, {} handoffs, as of {}\n",
        all.work,
        all.decisions,
        all.handoffs,
        report.as_of.to_rfc3339()
    );
    table(&mut out, "policy", &report.by_policy, all);
    table(&mut out, "reason code", &report.by_reason_code, all);
    table(&mut out, "trigger kind", &report.by_trigger_kind, all);
    let costs = &report.costs;
    let basis = if costs.measured_on > 0 {
        format!(
            "measured over the {} finished with people",
            costs.measured_on
        )
    } else {
        "assumed: no work finished with people yet".into()
    };
    let _ = writeln!(
        out,
        "cost avoided {:.2}: {} pieces of work finished without a person, at {:.1} minutes of \
         people's time each ({basis}) × {} per minute, less {} per agent attempt",
        all.cost_avoided,
        all.autonomous,
        costs.human_minutes_per_work,
        costs.cost_per_human_minute,
        costs.cost_per_agent_attempt
    );
    let _ = writeln!(
        out,
        "SLA: {} of {} judged handoffs met every deadline; {} open past a deadline",
        all.sla.met, all.sla.judged, all.sla.open_breached
    );
    out.push('\n');
    let cal = &report.calibration;
    if cal.triggers.is_empty() {
        let _ = writeln!(out, "calibration: no probabilistic trigger to calibrate");
    }
    for trigger in &cal.triggers {
        calibration(&mut out, trigger);
    }
    let _ = writeln!(
        out,
        "calibration leaves out resolutions of rule-based triggers (mandated, never tuned): {}, \
         and of handoffs the host made: {}. People only see escalated work: review a random \
         sample of autonomous work before adopting a lower threshold",
        cal.excluded_rule_based, cal.excluded_host_made
    );
    out
}
