//! Fails when a benchmark ratio breaks its budget.
//!
//! Reads the medians criterion wrote for a `cargo bench` run and checks
//! ratios measured in that one run, never absolute times: on shared, noisy
//! machines both sides of a ratio mostly see the same noise.
//!
//! Mostly, not always: a burst of load from a neighbour can land on one side
//! of a ratio only. So `benches/guard` keeps a copy of each run's results and
//! re-measures when a budget breaks; given several runs (`--criterion` more
//! than once), each ratio is judged by its best run. A regression breaks the
//! budget in every run; a noisy minute does not.
//!
//! Usage: `guard [--criterion DIR]... [--budget NAME=MAX]...`, where NAME is
//! one of the ratios printed (for example `--budget fresh/warm=2`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

/// A guarded ratio: numerator and denominator benchmark ids, and the budget.
///
/// Budgets sit about 30% above the ratios measured when they were set (see
/// BENCHMARKS.md): they catch regressions, and are not the design targets,
/// some of which are not met yet.
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
            budget: 7.0,
            why: "both reference policies through the sandbox vs the same code natively",
        },
        Ratio {
            name: "sandboxed/native:compliance-limits",
            numerator: "warm/compliance-limits",
            denominator: "native/compliance-limits",
            budget: 6.0,
            why: "rule-based policy, sandboxed vs native",
        },
        Ratio {
            name: "sandboxed/native:confidence-gate",
            numerator: "warm/confidence-gate",
            denominator: "native/confidence-gate",
            budget: 9.0,
            why: "probabilistic policy, sandboxed vs native",
        },
        Ratio {
            name: "metered/unmetered",
            numerator: "metering/fuel+epoch",
            denominator: "metering/none",
            budget: 1.6,
            why: "fuel and epoch deadlines vs no metering",
        },
        Ratio {
            name: "fresh/warm",
            numerator: "fresh/both",
            denominator: "warm/both",
            budget: 35.0,
            why: "a fresh pooled instance per item vs warm reuse",
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

fn run() -> anyhow::Result<bool> {
    let mut dirs = Vec::new();
    let mut overrides = BTreeMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--criterion" => dirs.push(PathBuf::from(
                args.next().context("--criterion needs a directory")?,
            )),
            "--budget" => {
                let spec = args.next().context("--budget needs NAME=MAX")?;
                let (name, max) = spec.split_once('=').context("--budget takes NAME=MAX")?;
                let max: f64 = max
                    .parse()
                    .with_context(|| format!("budget {max:?} is not a number"))?;
                overrides.insert(name.to_string(), max);
            }
            other => bail!(
                "unknown argument {other:?}; usage: guard [--criterion DIR]... [--budget NAME=MAX]..."
            ),
        }
    }
    if dirs.is_empty() {
        dirs.push(default_criterion_dir());
    }
    let mut ratios = ratios();
    for (name, max) in &overrides {
        let ratio = ratios
            .iter_mut()
            .find(|r| r.name == name)
            .with_context(|| format!("no ratio named {name:?}"))?;
        ratio.budget = *max;
    }

    let mut ok = true;
    println!(
        "{:<36} {:>12} {:>12} {:>8} {:>8} {:>5}  result",
        "ratio", "numerator", "denominator", "ratio", "budget", "run"
    );
    for ratio in &ratios {
        let (run, top, bottom) = best_run(&dirs, ratio)?;
        let value = top / bottom;
        let pass = value <= ratio.budget;
        ok &= pass;
        println!(
            "{:<36} {:>10.0}ns {:>10.0}ns {:>8.2} {:>8.2} {:>2}/{:<2}  {}  ({})",
            ratio.name,
            top,
            bottom,
            value,
            ratio.budget,
            run + 1,
            dirs.len(),
            if pass { "ok" } else { "BROKEN" },
            ratio.why
        );
    }
    if !ok {
        eprintln!("guard: a ratio budget is broken");
    }
    Ok(ok)
}

/// The run (index into `dirs`) with the lowest value of `ratio`, and its
/// numerator and denominator medians.
fn best_run(dirs: &[PathBuf], ratio: &Ratio) -> anyhow::Result<(usize, f64, f64)> {
    let mut best: Option<(usize, f64, f64)> = None;
    for (run, dir) in dirs.iter().enumerate() {
        let top = median_ns(dir, ratio.numerator)?;
        let bottom = median_ns(dir, ratio.denominator)?;
        if best.is_none_or(|(_, t, b)| top / bottom < t / b) {
            best = Some((run, top, bottom));
        }
    }
    best.context("no criterion results to read")
}

/// The median of benchmark `id` (`group/function`) from criterion's estimates.
fn median_ns(dir: &Path, id: &str) -> anyhow::Result<f64> {
    let path = dir.join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no estimates for {id} at {}; run the benchmarks first",
            path.display()
        )
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    json["median"]["point_estimate"]
        .as_f64()
        .with_context(|| format!("{} has no median", path.display()))
}

fn default_criterion_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("criterion")
}
