//! `handoff watch`: a running host that evaluates items as they arrive and
//! hot-reloads its policy directory, printing every reload as it happens.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use handoff_host::audit::AuditLog;
use handoff_host::model::WorkItem;
use handoff_host::reload::LiveEvaluator;
use handoff_host::{EvalError, Runtime};

use super::dispatching::{Dispatching, annotated};
use super::host::{HostArgs, LiveHost};

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    #[command(flatten)]
    host: HostArgs,
    /// Work items, one JSON object per line, evaluated as they arrive. `-`
    /// reads stdin; a file is followed like `tail -f`. Without it, the host
    /// only watches and reports reloads.
    #[arg(long, value_name = "FILE|-")]
    input: Option<PathBuf>,
}

/// How often a followed input file is checked for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

pub fn run(runtime: &Runtime, args: WatchArgs) -> anyhow::Result<ExitCode> {
    let host = LiveHost::open(runtime, &args.host, |_| {})?;
    let dispatching = Dispatching::open(&args.host.data, true)?;
    eprintln!(
        "handoff: watching {} for changes",
        host.live.dir().display()
    );
    let audit = host.audit.clone();
    let live = host.live.clone();

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
