//! `handoff eval`: JSON Lines of work items in, JSON Lines of decisions out.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use handoff_host::audit::AuditLog;
use handoff_host::model::{Tier, WorkItem};
use handoff_host::reload::{LifecycleEvent, LifecycleSink};
use handoff_host::{Evaluator, Runtime};

use super::PolicyArgs;
use super::audit::AuditLogArgs;
use super::dispatching::{Dispatching, annotated};

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
    let audit = match &args.audit.dir {
        Some(dir) => {
            let log = args.audit.open(dir)?;
            for event in LifecycleEvent::of_set(&set) {
                log.record(&event);
            }
            Some(log)
        }
        None => None,
    };
    let input: Box<dyn BufRead> = match &args.input {
        Some(path) if path.as_os_str() != "-" => {
            Box::new(BufReader::new(File::open(path).with_context(|| {
                format!("cannot open input {}", path.display())
            })?))
        }
        _ => Box::new(io::stdin().lock()),
    };
    let dispatching = match &args.dispatch {
        Some(dir) => Some(Dispatching::open(dir, false)?),
        None => None,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let mut evaluator = Evaluator::new(set.clone());
    let mut by_tier: BTreeMap<Tier, usize> = Tier::ALL.iter().map(|t| (*t, 0)).collect();
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
        let decision = WorkItem::from_json(text)
            .map_err(handoff_host::EvalError::from)
            .and_then(|item| evaluator.evaluate(&item).map(|d| (item, d)));
        match decision {
            Ok((item, decision)) => {
                // A decision is only printed once its audit record is
                // appended (and, with `sync`, on disk): the log fails
                // closed, and so does the run.
                if let Some(log) = &audit {
                    log.record_decision(&item, &decision).with_context(|| {
                        format!("line {number}: cannot record the decision; stopping")
                    })?;
                }
                *by_tier.entry(decision.tier).or_default() += 1;
                match &dispatching {
                    Some(dispatching) => {
                        let dispatched = dispatching.dispatch(&item, &decision)?;
                        serde_json::to_writer(&mut out, &annotated(&decision, &dispatched))
                    }
                    None => serde_json::to_writer(&mut out, &decision),
                }
                .context("cannot write a decision")?;
                out.write_all(b"\n").context("cannot write a decision")?;
            }
            Err(error) => {
                eprintln!("handoff: line {number}: {error}");
                failed += 1;
            }
        }
    }
    out.flush().context("cannot write decisions")?;
    if let Some(log) = &audit {
        log.flush().context("cannot flush the audit log")?;
        let last = audit_summary(log);
        eprintln!("handoff: audit log {}: {last}", log.dir().display());
    }

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

/// Where the log ended, for the run summary.
fn audit_summary(log: &AuditLog) -> String {
    match log.files() {
        Ok(files) => format!("{} file(s), next seq {}", files.len(), log.next_seq()),
        Err(error) => error.to_string(),
    }
}

fn print_stats(stats: &[handoff_host::stats::StatsSnapshot]) {
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
