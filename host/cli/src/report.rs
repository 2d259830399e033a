//! `handoff report`: the feedback report on a data directory's history,
//! as a table or as the JSON `GET /v1/report` answers.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use handoff_dispatch::{CalibrationTarget, DispatchConfig, ReportOptions, feedback_report};
use handoff_pipeline::{calibration, reference};
use handoff_policy::manifest::Manifest;

use super::queue::{open, runtime};
use super::store_arg::StoreArg;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The data directory whose `handoffs.db` holds the history.
    #[arg(long, value_name = "DIR", default_value = "handoff-data")]
    data: PathBuf,
    /// The handoff store.
    #[command(flatten)]
    store: StoreArg,
    /// What a minute of a human's time costs.
    #[arg(long, default_value_t = ReportOptions::default().cost_per_human_minute)]
    cost_per_human_minute: f64,
    /// What one attempt of the agent costs (each decided submission).
    #[arg(long, default_value_t = ReportOptions::default().cost_per_agent_attempt)]
    cost_per_agent_attempt: f64,
    /// Minutes of people's time per piece of work, until finished work
    /// measures it.
    #[arg(long, default_value_t = ReportOptions::default().default_human_minutes)]
    default_human_minutes: f64,
    /// α: the error rate the suggested threshold must stay under.
    #[arg(long, default_value_t = ReportOptions::default().target_error)]
    target_error: f64,
    /// δ: the chance the error bound is wrong.
    #[arg(long, default_value_t = ReportOptions::default().delta)]
    delta: f64,
    /// The policy directory whose manifests' `[calibrate]` keys the
    /// calibration names. Defaults to `policies/` in the data directory,
    /// else the reference policies built in.
    #[arg(long, value_name = "DIR")]
    policies: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let options = ReportOptions {
        cost_per_human_minute: args.cost_per_human_minute,
        cost_per_agent_attempt: args.cost_per_agent_attempt,
        default_human_minutes: args.default_human_minutes,
        target_error: args.target_error,
        delta: args.delta,
    };
    options.validate().map_err(|e| anyhow::anyhow!("--{e}"))?;
    let targets = calibration_targets(&args)?;
    runtime()?.block_on(async {
        let host = open(
            &args.store.location(&args.data)?,
            DispatchConfig::default().lease_secs,
        )
        .await?;
        let (history, now) = host.history().await?;
        host.store().close().await;
        let report = feedback_report(&history, now, &options, &targets);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", super::report_text::render(&report));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The `[calibrate]` keys of the policies the history was decided by, as
/// near as the command line can tell: the directory named, the data
/// directory's own, or the reference policies.
fn calibration_targets(args: &ReportArgs) -> anyhow::Result<Vec<CalibrationTarget>> {
    let dir = match &args.policies {
        Some(dir) if !dir.is_dir() => {
            anyhow::bail!("--policies {}: not a directory", dir.display())
        }
        Some(dir) => Some(dir.clone()),
        None => Some(args.data.join("policies")).filter(|dir| dir.is_dir()),
    };
    if let Some(dir) = dir {
        return Ok(calibration::targets_in_dir(&dir));
    }
    let manifests = reference::POLICIES
        .iter()
        .map(|p| Manifest::parse(p.manifest).map(|m| (p.name, m)))
        .collect::<Result<Vec<_>, _>>()
        .context("a built-in reference manifest does not parse")?;
    Ok(calibration::targets(
        manifests.iter().map(|(name, m)| (*name, m)),
    ))
}
