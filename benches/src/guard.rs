//! Fails when a ratio between instruction counts breaks its budget.
//!
//! Reads the counts callgrind measured (through gungraun) for one run of
//! the `instructions` bench and checks ratios between them, never absolute
//! figures. Instruction counts do not move when a neighbour loads the
//! machine, so one run decides: a broken budget is a regression, not noise.
//! (Wall-clock ratios did break under load; BENCHMARKS.md keeps the times.)
//!
//! Usage:
//! - `guard --prepare-cache DIR`: compiles the benchmarked policies into an
//!   artifact cache natively, so that nothing compiles under valgrind;
//! - `guard --instructions FILE [--budget NAME=MAX]...`: FILE is gungraun's
//!   `--output-format=json` output, one benchmark per line; NAME is one of
//!   the ratios printed (for example `--budget fresh/warm=2`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::Value;

/// A guarded ratio: numerator and denominator benchmark ids, and the budget.
///
/// Budgets sit 10 to 15% above the ratios measured when they were set (see
/// BENCHMARKS.md): counts are repeatable, so a tight budget is not fragile.
/// They catch regressions and are not the design targets.
struct Ratio {
    name: &'static str,
    numerator: &'static str,
    denominator: &'static str,
    budget: f64,
    why: &'static str,
}

fn ratios() -> Vec<Ratio> {
    vec![
        Ratio {
            name: "sandboxed/native",
            numerator: "warm/both",
            denominator: "native/both",
            budget: 6.4,
            why: "both reference policies through the sandbox vs the same code natively",
        },
        Ratio {
            name: "sandboxed/native:compliance-limits",
            numerator: "warm/compliance_limits",
            denominator: "native/compliance_limits",
            budget: 5.4,
            why: "rule-based policy, sandboxed vs native",
        },
        Ratio {
            name: "sandboxed/native:confidence-gate",
            numerator: "warm/confidence_gate",
            denominator: "native/confidence_gate",
            budget: 9.4,
            why: "probabilistic policy, sandboxed vs native",
        },
        Ratio {
            name: "host-path/both",
            numerator: "warm/trivial",
            denominator: "warm/both",
            budget: 0.31,
            why: "a policy that does nothing, through the same host path, vs both",
        },
        Ratio {
            name: "metered/unmetered",
            numerator: "warm/both",
            denominator: "metering/none",
            budget: 1.58,
            why: "fuel and epoch deadlines vs no metering",
        },
        Ratio {
            name: "fresh/warm",
            numerator: "fresh/both",
            denominator: "warm/both",
            budget: 3.0,
            why: "a fresh pooled instance per item, from the snapshot, vs warm reuse",
        },
        Ratio {
            name: "snapshot/live-configure",
            numerator: "fresh/both",
            denominator: "fresh/both_live",
            budget: 0.06,
            why: "fresh instances from the configured snapshot vs running configure",
        },
    ]
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("guard: error: {error:#}");
            ExitCode::from(2)
        }
    }
}

const USAGE: &str =
    "usage: guard --prepare-cache DIR | guard --instructions FILE [--budget NAME=MAX]...";

fn run() -> anyhow::Result<bool> {
    let mut results = None;
    let mut overrides = BTreeMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--prepare-cache" => {
                let dir = PathBuf::from(args.next().context("--prepare-cache needs a directory")?);
                handoff_benches::instructions::prepare_cache(&dir)
                    .with_context(|| format!("cannot fill the artifact cache {}", dir.display()))?;
                return Ok(true);
            }
            "--instructions" => {
                results = Some(PathBuf::from(
                    args.next().context("--instructions needs a file")?,
                ))
            }
            "--budget" => {
                let spec = args.next().context("--budget needs NAME=MAX")?;
                let (name, max) = spec.split_once('=').context("--budget takes NAME=MAX")?;
                let max: f64 = max
                    .parse()
                    .with_context(|| format!("budget {max:?} is not a number"))?;
                overrides.insert(name.to_string(), max);
            }
            other => bail!("unknown argument {other:?}; {USAGE}"),
        }
    }
    let results = results.context(USAGE)?;
    let counts = read_counts(&results)?;
    let mut ratios = ratios();
    for (name, max) in &overrides {
        let ratio = ratios
            .iter_mut()
            .find(|r| r.name == name)
            .with_context(|| format!("no ratio named {name:?}"))?;
        ratio.budget = *max;
    }

    println!("{:<24} {:>12}", "benchmark", "instructions");
    for (id, count) in &counts {
        println!("{id:<24} {count:>12}");
    }
    println!();
    let mut ok = true;
    println!("{:<36} {:>8} {:>8}  result", "ratio", "ratio", "budget");
    for ratio in &ratios {
        let top = count_of(&counts, ratio.numerator)?;
        let bottom = count_of(&counts, ratio.denominator)?;
        let value = top as f64 / bottom as f64;
        let pass = value <= ratio.budget;
        ok &= pass;
        println!(
            "{:<36} {:>8.2} {:>8.2}  {}  ({})",
            ratio.name,
            value,
            ratio.budget,
            if pass { "ok" } else { "BROKEN" },
            ratio.why
        );
    }
    if !ok {
        eprintln!("guard: a ratio budget is broken");
    }
    Ok(ok)
}

fn count_of(counts: &BTreeMap<String, u64>, id: &str) -> anyhow::Result<u64> {
    match counts.get(id) {
        Some(0) => bail!("benchmark {id} counted no instructions"),
        Some(count) => Ok(*count),
        None => bail!("no instruction count for {id}; the instructions bench did not run it"),
    }
}

/// Instructions per benchmark (`function/id`, as `warm/both`), from
/// gungraun's JSON lines.
fn read_counts(path: &Path) -> anyhow::Result<BTreeMap<String, u64>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {}; run the instructions bench first",
            path.display()
        )
    })?;
    let mut counts = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        if !line.trim_start().starts_with('{') {
            continue;
        }
        let summary: Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {} is not JSON", path.display(), number + 1))?;
        let function = summary["function_name"]
            .as_str()
            .with_context(|| format!("line {} names no function", number + 1))?;
        let id = summary["id"].as_str().unwrap_or("");
        let count = instructions(&summary)
            .with_context(|| format!("line {} ({function}/{id}) has no Ir count", number + 1))?;
        counts.insert(format!("{function}/{id}"), count);
    }
    if counts.is_empty() {
        bail!("{} holds no benchmark results", path.display());
    }
    Ok(counts)
}

/// The `Ir` (instructions executed) of a summary's callgrind profile,
/// summed over the process's threads: `data.total.metrics.Ir.values.new`
/// in gungraun's summary format (schema v6).
fn instructions(summary: &Value) -> Option<u64> {
    summary["profiles"]
        .as_array()?
        .iter()
        .find_map(|profile| profile["data"]["total"]["metrics"]["Ir"]["values"]["new"].as_u64())
}
