//! `handoff pilot`: what every shadow version would change if it enforced,
//! from the decisions it ran beside, with a promotion gate for CI.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use handoff_audit::{query, verify};
use handoff_dispatch::DispatchConfig;
use handoff_model::{Named, Tier};
use handoff_pipeline::pilot::{DefaultRoles, Gate, PilotReport, PilotWindow, ShadowPilot, pilot};
use strum::VariantArray;

use super::audit::expand;
use super::output::terminal;

#[derive(Debug, clap::Args)]
pub struct PilotArgs {
    /// Audit files, or directories of them. They are only read.
    #[arg(long = "audit", value_name = "FILE|DIR", required = true, num_args = 1..)]
    audit: Vec<PathBuf>,
    /// One shadow version (`NAME@LABEL`); every one in the log otherwise.
    #[arg(long, value_name = "NAME@LABEL")]
    shadow: Option<String>,
    /// Decisions at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    since: Option<DateTime<Utc>>,
    /// Decisions before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    until: Option<DateTime<Utc>>,
    /// A promotion gate: exit 1 if any limit is broken. Limits are
    /// changed-share, fault-rate, handoffs-increase (relative, 0.1 = +10%),
    /// p99-us and min-decisions, as KEY=VALUE; repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    fail_on: Vec<String>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(args: PilotArgs) -> anyhow::Result<ExitCode> {
    let gate = Gate::parse(&args.fail_on).map_err(|e| anyhow::anyhow!("--fail-on {e}"))?;
    let files = expand(&args.audit)?;
    if let Err(error) = verify(&files) {
        eprintln!(
            "handoff: warning: the audit log does not verify ({}); reporting on its sound records",
            terminal(&error.to_string())
        );
    }
    let entries = query::read(&files)?;
    let defaults = DispatchConfig::default();
    let roles = DefaultRoles {
        operator: defaults.operator.role,
        executive: defaults.executive.role,
        operator_resolve_secs: defaults.operator.resolve_secs,
        executive_resolve_secs: defaults.executive.resolve_secs,
    };
    let window = PilotWindow {
        shadow: args.shadow,
        since: args.since,
        until: args.until,
    };
    let report = pilot(&entries, &window, &roles);
    let breaches: Vec<String> = report
        .shadows
        .iter()
        .flat_map(|shadow| gate.breaches(shadow))
        .collect();
    if args.json {
        let json = serde_json::to_string_pretty(&serde_json::json!({
            "report": report,
            "breaches": breaches,
        }))
        .context("cannot write the report")?;
        println!("{json}");
    } else {
        print!("{}", render(&report));
    }
    for breach in &breaches {
        eprintln!("handoff: gate: {}", terminal(breach));
    }
    if report.shadows.is_empty() {
        eprintln!("handoff: no shadow version ran in this window");
    }
    Ok(if breaches.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn render(report: &PilotReport) -> String {
    let mut out = String::new();
    for shadow in &report.shadows {
        out.push_str(&render_one(shadow, report.days));
    }
    // Escaped line by line: reasons and ids come from plugins and agents,
    // and only the report's own newlines may reach the terminal.
    out.lines()
        .map(|line| terminal(line).into_owned() + "\n")
        .collect()
}

fn render_one(pilot: &ShadowPilot, days: f64) -> String {
    let mut out = format!(
        "{} (pilots {}) beside {} decisions over {days:.2} days: {:.1}% would change tier, \
         {} faults ({:.2}%)\n\n",
        pilot.shadow,
        pilot.pilots,
        pilot.decisions,
        pilot.changed_share * 100.0,
        pilot.faults,
        pilot.fault_rate * 100.0
    );
    out.push_str(&format!("{:<16}", "enforced \\ shadow"));
    for tier in Tier::VARIANTS {
        out.push_str(&format!("{:>14}", tier.as_str()));
    }
    out.push('\n');
    for &old in Tier::VARIANTS {
        out.push_str(&format!("{:<16}", old.as_str()));
        for &new in Tier::VARIANTS {
            let n = pilot.matrix[old.level() as usize][new.level() as usize];
            out.push_str(&format!("{n:>14}"));
        }
        out.push('\n');
    }
    out.push_str("\nworkload per day        enforced    shadow\n");
    for row in &pilot.workload {
        out.push_str(&format!(
            "  {:<10} {:<12}{:>9.1}{:>10.1}\n",
            row.tier.as_str(),
            row.role,
            row.per_day.enforced,
            row.per_day.shadow
        ));
    }
    out.push_str(&format!(
        "  handoffs              {:>9.1}{:>10.1}\n  SLA hours committed   {:>9.1}{:>10.1}\n",
        pilot.handoffs_per_day.enforced,
        pilot.handoffs_per_day.shadow,
        pilot.sla_hours_per_day.enforced,
        pilot.sla_hours_per_day.shadow
    ));
    if let Some(latency) = pilot.latency_us {
        out.push_str(&format!(
            "latency µs: shadow p50 {:.1} p99 {:.1}",
            latency.p50, latency.p99
        ));
        if let Some(base) = pilot.pilots_latency_us {
            out.push_str(&format!(
                "; enforcing p50 {:.1} p99 {:.1}",
                base.p50, base.p99
            ));
        }
        out.push('\n');
    }
    if !pilot.changed.is_empty() {
        out.push_str("\nwould change:\n");
        for change in &pilot.changed {
            out.push_str(&format!(
                "  #{} {}: {} {} ({}) -> {} {} ({})\n",
                change.seq,
                change.id,
                change.enforced_tier.as_str(),
                change.enforced_reason_code,
                change.enforced_reason,
                change.shadow_tier.as_str(),
                change.shadow_reason_code,
                change.shadow_reason
            ));
        }
    }
    out.push('\n');
    out
}
