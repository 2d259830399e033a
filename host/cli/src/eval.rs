//! `handoff eval`: JSON Lines of work items in, JSON Lines of decisions out.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use handoff_dispatch::{DispatchConfig, StoreLocation};
use handoff_model::{Tier, WorkItem};
use handoff_pipeline::{Host, HostConfig, Observers, PipelineError, Placement, PolicySetup};
use handoff_policy::{EvalError, Runtime, StatsSnapshot};
use strum::VariantArray;

use super::PolicyArgs;
use super::audit::AuditLogArgs;
use super::output::{terminal, write_answer};

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    policies: PolicyArgs,
    /// Work items, one JSON object per line. Reads stdin when absent or `-`.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// After the summary, print each plugin's totals to stderr: calls, faults
    /// by kind, fuel and wall time.
    #[arg(long)]
    stats: bool,
    #[command(flatten)]
    audit: AuditLogArgs,
    /// Act on each decision as a host would: track self-corrections and
    /// enqueue `operator` and `executive` handoffs in the store in DIR
    /// (`handoffs.db`). Each printed decision gains a `dispatch` field.
    #[arg(long, value_name = "DIR")]
    dispatch: Option<PathBuf>,
}

pub fn run(runtime: &Runtime, args: EvalArgs) -> anyhow::Result<ExitCode> {
    let set = Arc::new(args.policies.load(runtime)?);
    let input: Box<dyn BufRead> = match &args.input {
        Some(path) if path.as_os_str() != "-" => {
            Box::new(BufReader::new(File::open(path).with_context(|| {
                format!("cannot open input {}", path.display())
            })?))
        }
        _ => Box::new(io::stdin().lock()),
    };
    let audit = match &args.audit.dir {
        Some(dir) => Some(args.audit.setup(dir)?),
        None => None,
    };
    let config = HostConfig {
        policies: PolicySetup::Fixed(set.clone()),
        cache: None,
        audit,
        store: args.dispatch.clone().map(StoreLocation::Embedded),
        dispatch: DispatchConfig::default(),
        sla_clock: false,
        placement: Placement::Inline,
        node: super::node_name(),
    };
    // Items are decided on this thread; the runtime's one worker serves the
    // store.
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("handoff-eval")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let host = tokio.block_on(Host::open(runtime, config, Observers::default()))?;
    let pipeline = host.pipeline().clone();
    let mut out = BufWriter::new(io::stdout().lock());
    let mut by_tier: BTreeMap<Tier, usize> = Tier::VARIANTS.iter().map(|t| (*t, 0)).collect();
    let mut failed = 0usize;

    // Split on bytes, not `lines()`, so one line of invalid UTF-8 is reported
    // and skipped like any other bad line instead of ending the run.
    for (index, line) in input.split(b'\n').enumerate() {
        let number = index + 1;
        let line = line.with_context(|| format!("cannot read input at line {number}"))?;
        let text = match std::str::from_utf8(&line) {
            Ok(text) => text.trim(),
            Err(e) => {
                eprintln!("handoff: line {number}: not UTF-8: {e}");
                failed += 1;
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        let submitted = WorkItem::from_json(text)
            .map_err(|e| PipelineError::Undecided(EvalError::from(e)))
            .map(|item| tokio.block_on(pipeline.submit(vec![item])));
        // A decision is printed only once it is in the audit log: a log (or
        // a store) that cannot record stops the run rather than let
        // decisions go unrecorded.
        match submitted.and_then(|answers| answers) {
            Ok(answers) => {
                for answer in &answers {
                    *by_tier.entry(answer.decision.tier()).or_default() += 1;
                    write_answer(&mut out, answer)?;
                }
            }
            Err(PipelineError::Undecided(error)) => {
                eprintln!("handoff: line {number}: {}", terminal(&error.to_string()));
                failed += 1;
            }
            Err(error) => {
                return Err(error).with_context(|| format!("line {number}: stopping"));
            }
        }
    }
    out.flush().context("cannot write decisions")?;
    if let Some(log) = host.audit() {
        log.flush().context("cannot flush the audit log")?;
        let last = match log.files() {
            Ok(files) => format!("{} file(s), next seq {}", files.len(), log.next_seq()),
            Err(error) => error.to_string(),
        };
        eprintln!("handoff: audit log {}: {last}", log.dir().display());
    }
    tokio
        .block_on(host.close())
        .context("cannot flush the audit log")?;

    let evaluated: usize = by_tier.values().sum();
    let tiers: Vec<String> = by_tier.iter().map(|(t, n)| format!("{t} {n}")).collect();
    eprintln!(
        "handoff: {evaluated} decided ({}); {failed} failed; policies: {}",
        tiers.join(", "),
        set.plugins()
            .iter()
            .map(|p| format!("{}@{}", p.name, p.info.version))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if args.stats {
        print_stats(&set.stats());
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_stats(stats: &[StatsSnapshot]) {
    eprintln!(
        "{:<24} {:>8} {:>10} {:>14} {:>12} {:>12}  faults",
        "plugin", "calls", "instances", "fuel", "wall ms", "dropped B"
    );
    for s in stats {
        let faults = if s.faults.is_empty() {
            "-".to_string()
        } else {
            s.faults
                .iter()
                .map(|(kind, n)| format!("{kind} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        eprintln!(
            "{:<24} {:>8} {:>10} {:>14} {:>12.3} {:>12}  {faults}",
            s.plugin,
            s.calls,
            s.instances,
            s.fuel,
            s.wall_us as f64 / 1000.0,
            s.output_dropped
        );
    }
}
