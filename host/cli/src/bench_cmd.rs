//! `handoff bench`: what each plugin costs per evaluation, as percentiles
//! of wall time, fuel and peak memory, like `opa bench`.
//!
//! The plugins run exactly as they serve (their manifests' limits and
//! instance reuse, in the sandbox), on the items given or, by default, on
//! their own fixtures' items. Wall time is this machine today; fuel and
//! memory are properties of the plugin and the input, the same anywhere.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use handoff_model::WorkItem;
use handoff_policy::testing::sources_at;
use handoff_policy::{Evaluator, PolicySet, Runtime, read_regular};
use serde::Serialize;

use super::output::terminal;

/// The largest input file read: far more items than a benchmark needs.
const MAX_INPUT_BYTES: usize = 64 << 20;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Policy directories, or `NAME.wasm` files (each with its `NAME.toml`).
    #[arg(value_name = "DIR|FILE", required = true)]
    paths: Vec<PathBuf>,
    /// Work items, one JSON object per line. Defaults to the plugins'
    /// fixture items.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// How many evaluations to measure, cycling through the items.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    count: u64,
    /// Print one JSON object per plugin instead of the table.
    #[arg(long)]
    json: bool,
}

/// Percentiles of one measure.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Spread {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct PluginBench {
    plugin: String,
    evaluations: usize,
    faults: usize,
    wall_us: Spread,
    fuel: Spread,
    memory_kib: Spread,
}

pub fn run(runtime: &Runtime, args: BenchArgs) -> anyhow::Result<ExitCode> {
    let mut sources = Vec::new();
    for path in &args.paths {
        let (found, rejected) = sources_at(path, runtime)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.error))?;
        if let Some(rejection) = rejected.first() {
            bail!("{}", terminal(&rejection.to_string()));
        }
        sources.extend(found);
    }
    let set = PolicySet::load(runtime, sources, 1);
    if let Some(rejection) = set.rejected().first() {
        bail!(
            "{} (run `handoff test` for every case)",
            terminal(&rejection.to_string())
        );
    }
    if set.plugins().is_empty() {
        bail!("no enabled plugin to measure");
    }
    let items = match &args.input {
        Some(path) => read_items(path)?,
        None => set
            .plugins()
            .iter()
            .flat_map(|p| p.manifest.fixtures.iter().map(|f| f.item.clone()))
            .collect(),
    };
    if items.is_empty() {
        bail!("nothing to evaluate: the plugins have no fixtures; pass --input FILE");
    }
    let results = measure(Arc::new(set), &items, args.count)?;
    if args.json {
        for result in &results {
            println!("{}", serde_json::to_string(result)?);
        }
    } else {
        print!("{}", render(&results, items.len()));
    }
    Ok(ExitCode::SUCCESS)
}

fn read_items(path: &std::path::Path) -> anyhow::Result<Vec<WorkItem>> {
    let bytes = read_regular(path, MAX_INPUT_BYTES)
        .with_context(|| format!("cannot read input {}", path.display()))?;
    let text =
        String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            WorkItem::from_json(line.trim()).map_err(|e| {
                anyhow::anyhow!(
                    "{} line {}: {}",
                    path.display(),
                    index + 1,
                    terminal(&e.to_string())
                )
            })
        })
        .collect()
}

fn measure(
    set: Arc<PolicySet>,
    items: &[WorkItem],
    count: u64,
) -> anyhow::Result<Vec<PluginBench>> {
    let names: Vec<String> = set.plugins().iter().map(|p| p.name.to_string()).collect();
    let mut evaluator = Evaluator::new(set);
    // One pass first: instantiation and first-call costs are not the
    // steady state a serving host sees.
    for item in items {
        evaluator.evaluate(item).context("warming up")?;
    }
    let mut samples: Vec<Samples> = names.iter().map(|_| Samples::default()).collect();
    for item in items.iter().cycle().take(count as usize) {
        let decision = evaluator.evaluate(item).context("evaluating")?;
        for metering in &decision.metering.plugins {
            let Some(at) = names.iter().position(|n| *n == metering.plugin) else {
                continue;
            };
            let faulted = decision
                .verdicts
                .iter()
                .any(|v| v.plugin == metering.plugin && v.fault.is_some());
            let sample = &mut samples[at];
            sample.wall_us.push(metering.wall_us);
            sample.fuel.push(metering.fuel as f64);
            sample
                .memory_kib
                .push(metering.memory_bytes as f64 / 1024.0);
            sample.faults += usize::from(faulted);
        }
    }
    Ok(names
        .into_iter()
        .zip(samples)
        .map(|(plugin, mut s)| PluginBench {
            plugin,
            evaluations: s.wall_us.len(),
            faults: s.faults,
            wall_us: spread(&mut s.wall_us),
            fuel: spread(&mut s.fuel),
            memory_kib: spread(&mut s.memory_kib),
        })
        .collect())
}

/// One plugin's measurements, one entry per evaluation.
#[derive(Default)]
struct Samples {
    wall_us: Vec<f64>,
    fuel: Vec<f64>,
    memory_kib: Vec<f64>,
    faults: usize,
}

/// Nearest-rank percentiles.
fn spread(values: &mut [f64]) -> Spread {
    values.sort_by(f64::total_cmp);
    let at = |p: f64| {
        if values.is_empty() {
            return 0.0;
        }
        let rank = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
        values[rank - 1]
    };
    Spread {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: at(1.0),
    }
}

fn render(results: &[PluginBench], items: usize) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:>6} {:>6}  {:>28}  {:>30}  {:>16}",
        "plugin",
        "evals",
        "faults",
        "wall µs p50/p90/p99/max",
        "fuel p50/p99/max",
        "memory KiB max"
    );
    for r in results {
        let _ = writeln!(
            out,
            "{:<24} {:>6} {:>6}  {:>28}  {:>30}  {:>16}",
            terminal(&r.plugin),
            r.evaluations,
            r.faults,
            format!(
                "{:.1}/{:.1}/{:.1}/{:.1}",
                r.wall_us.p50, r.wall_us.p90, r.wall_us.p99, r.wall_us.max
            ),
            format!("{:.0}/{:.0}/{:.0}", r.fuel.p50, r.fuel.p99, r.fuel.max),
            format!("{:.0}", r.memory_kib.max),
        );
    }
    let _ = writeln!(
        out,
        "over {items} distinct items; wall time is this machine now, fuel and memory are not"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = spread(&mut values);
        assert_eq!((s.p50, s.p90, s.p99, s.max), (50.0, 90.0, 99.0, 100.0));
        let s = spread(&mut [7.0]);
        assert_eq!((s.p50, s.max), (7.0, 7.0));
        assert_eq!(spread(&mut []).max, 0.0);
    }
}
