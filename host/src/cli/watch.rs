//! `handoff watch`: a running host that evaluates items as they arrive and
//! hot-reloads its policy directory, printing every reload as it happens.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use handoff_host::audit::AuditLog;
use handoff_host::model::WorkItem;
use handoff_host::reload::{
    LifecycleEvent, LifecycleSink, LiveEvaluator, LivePolicies, WatchOptions, Watcher,
};
use handoff_host::{EvalError, Runtime, embedded};

use super::audit::AuditLogArgs;
use super::dispatching::{Dispatching, annotated};

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Directory of policies to serve and watch. Defaults to `policies/`
    /// under the data directory, created with the reference policies when
    /// it does not exist yet.
    #[arg(long, value_name = "DIR")]
    policies: Option<PathBuf>,
    /// Where the host keeps its state: the default policy directory, the
    /// cache of compiled policies (`cache/`), the audit log (`audit/`) and
    /// the handoff queues (`handoffs.db`).
    #[arg(long, value_name = "DIR", default_value = "handoff-data")]
    data: PathBuf,
    /// Work items, one JSON object per line, evaluated as they arrive. `-`
    /// reads stdin; a file is followed like `tail -f`. Without it, the host
    /// only watches and reports reloads.
    #[arg(long, value_name = "FILE|-")]
    input: Option<PathBuf>,
    /// Quiet interval, in milliseconds, before a file written in place is
    /// reloaded (a copy may still be in progress). A file renamed into place
    /// is complete and reloads after 10 ms.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    debounce_ms: u64,
    /// Compile every policy at start instead of using the artifact cache.
    #[arg(long)]
    no_cache: bool,
    /// The audit trail. A watching host always keeps one: in `audit/` under
    /// the data directory unless `--audit` names another.
    #[command(flatten)]
    audit: AuditLogArgs,
}

/// How often a followed input file is checked for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

pub fn run(runtime: &Runtime, args: WatchArgs) -> anyhow::Result<ExitCode> {
    let dir = policy_dir(&args)?;
    let mut runtime = runtime.clone();
    if !args.no_cache {
        runtime = runtime
            .with_cache(&args.data.join("cache"))
            .context("cannot open the artifact cache")?;
    }
    let audit_dir = args
        .audit
        .dir
        .clone()
        .unwrap_or_else(|| args.data.join("audit"));
    let audit = Arc::new(args.audit.open(&audit_dir)?);
    let sink = {
        let audit = audit.clone();
        move |event: &LifecycleEvent| {
            eprintln!("handoff: {event}");
            audit.record(event);
        }
    };
    let live = LivePolicies::open(runtime, &dir, Arc::new(sink))?;
    let dispatching = Dispatching::open(&args.data, true)?;
    let options = WatchOptions::with_debounce(Duration::from_millis(args.debounce_ms));
    let _watcher = Watcher::start(live.clone(), options)?;
    let set = live.current();
    eprintln!(
        "handoff: watching {} (generation {}, {} serving; audit log in {})",
        dir.display(),
        set.generation(),
        set.plugins().len(),
        audit_dir.display()
    );

    let mut evaluator = LiveEvaluator::new(live);
    let mut out = io::stdout().lock();
    match &args.input {
        None => {}
        Some(path) if path.as_os_str() == "-" => {
            for (index, line) in io::stdin().lock().split(b'\n').enumerate() {
                let line = line.context("cannot read stdin")?;
                evaluate_line(
                    &mut evaluator,
                    &audit,
                    &dispatching,
                    &mut out,
                    index + 1,
                    &line,
                )?;
            }
        }
        Some(path) => follow(path, |number, line| {
            evaluate_line(&mut evaluator, &audit, &dispatching, &mut out, number, line)
        })?,
    }
    // The input ended; the host keeps serving reloads until it is stopped.
    loop {
        std::thread::park();
    }
}

/// The directory to serve, seeding the default one on first use.
fn policy_dir(args: &WatchArgs) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &args.policies {
        return Ok(dir.clone());
    }
    let dir = args.data.join("policies");
    if !dir.exists() {
        embedded::write_to(&dir)
            .with_context(|| format!("cannot create policy directory {}", dir.display()))?;
        eprintln!(
            "handoff: created {} with the reference policies",
            dir.display()
        );
    }
    Ok(dir)
}

/// Reads `path` line by line, then keeps reading lines appended to it. A
/// line is only handed on once its newline has been written.
fn follow(
    path: &Path,
    mut on_line: impl FnMut(usize, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("cannot open input {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        let read = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read input {}", path.display()))?;
        if read == 0 || line.last() != Some(&b'\n') {
            std::thread::sleep(FOLLOW_INTERVAL);
            continue;
        }
        number += 1;
        on_line(number, &line)?;
        line.clear();
    }
}

/// Evaluates one input line and prints its decision, or reports why not.
fn evaluate_line(
    evaluator: &mut LiveEvaluator,
    audit: &AuditLog,
    dispatching: &Dispatching,
    out: &mut impl Write,
    number: usize,
    line: &[u8],
) -> anyhow::Result<()> {
    let text = match std::str::from_utf8(line) {
        Ok(text) => text.trim(),
        Err(e) => {
            eprintln!("handoff: line {number}: not UTF-8: {e}");
            return Ok(());
        }
    };
    if text.is_empty() {
        return Ok(());
    }
    let decision = WorkItem::from_json(text)
        .map_err(EvalError::from)
        .and_then(|item| evaluator.evaluate(&item).map(|d| (item, d)));
    match decision {
        Ok((item, decision)) => {
            // Audited before it is printed; a log that cannot record stops
            // the host rather than let decisions go unrecorded.
            audit
                .record_decision(&item, &decision)
                .with_context(|| format!("line {number}: cannot record the decision; stopping"))?;
            let dispatched = dispatching.dispatch(&item, &decision)?;
            serde_json::to_writer(&mut *out, &annotated(&decision, &dispatched))
                .context("cannot write a decision")?;
            out.write_all(b"\n").context("cannot write a decision")?;
            out.flush().context("cannot write a decision")?;
        }
        Err(error) => eprintln!("handoff: line {number}: {error}"),
    }
    Ok(())
}
