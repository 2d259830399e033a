//! `handoff replay`: what a candidate policy set would have decided for
//! every recorded item. The review step before promoting a policy.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use handoff_audit::{query, verify};
use handoff_model::{Named, Tier};
use handoff_pipeline::replay::{ReplayReport, replay};
use handoff_policy::{Evaluator, Runtime};
use strum::VariantArray;

use super::PolicyArgs;
use super::audit::expand;
use super::output::terminal;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Audit files, or directories of them, to replay. They are only read.
    #[arg(long = "audit", value_name = "FILE|DIR", required = true, num_args = 1..)]
    audit: Vec<PathBuf>,
    /// The candidate policy set.
    #[command(flatten)]
    policies: PolicyArgs,
    /// Print the report as one JSON object instead of a matrix and a list.
    #[arg(long)]
    json: bool,
    /// Exit 1 when any decision would change: for a promotion gate in CI.
    #[arg(long)]
    fail_on_change: bool,
}

pub fn run(runtime: &Runtime, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let files = expand(&args.audit)?;
    // Replay what the log says, but say so when the log cannot be trusted.
    if let Err(error) = verify(&files) {
        eprintln!(
            "handoff: warning: the audit log does not verify ({error}); replaying its sound records"
        );
    }
    let entries = query::read(&files)?;
    let set = Arc::new(args.policies.load(runtime)?);
    // A fresh instance per item: a plugin that depends on what it decided
    // before shows up as a change instead of reproducing its drift.
    let mut candidate = Evaluator::fresh(set);
    let report = replay(&entries, &mut candidate);
    if args.json {
        let json = serde_json::to_string_pretty(&report).context("cannot write the report")?;
        println!("{json}");
    } else {
        print!("{}", render(&report));
    }
    Ok(if args.fail_on_change && !report.changed.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The report as a reader wants it: counts, the tier matrix, every change.
fn render(report: &ReplayReport) -> String {
    let mut out = format!(
        "replayed {} decisions: {} changed, {} masked (not replayable) skipped, {} failed\n\n",
        report.replayed,
        report.changed.len(),
        report.skipped_masked,
        report.failed.len()
    );
    out.push_str(&format!("{:<14}", "old \\ new"));
    for tier in Tier::VARIANTS {
        out.push_str(&format!("{:>14}", tier.as_str()));
    }
    out.push('\n');
    for &old in Tier::VARIANTS {
        out.push_str(&format!("{:<14}", old.as_str()));
        for &new in Tier::VARIANTS {
            let n = report.matrix[old.level() as usize][new.level() as usize];
            out.push_str(&format!("{n:>14}"));
        }
        out.push('\n');
    }
    if !report.changed.is_empty() {
        out.push_str("\nchanged:\n");
        for change in &report.changed {
            out.push_str(&format!(
                "  seq {} item {}: {} -> {}\n    was {}: {}\n    now {}: {}\n",
                change.seq,
                terminal(&change.id),
                change.old_tier,
                change.new_tier,
                terminal(&change.old_reason_code),
                terminal(&change.old_reason),
                terminal(&change.new_reason_code),
                terminal(&change.new_reason)
            ));
        }
    }
    for (seq, reason) in &report.failed {
        out.push_str(&format!("failed: seq {seq}: {}\n", terminal(reason)));
    }
    out
}
