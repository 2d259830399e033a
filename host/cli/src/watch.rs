//! `handoff watch`: a running host that evaluates items as they arrive and
//! hot-reloads its policy directory, printing every reload as it happens.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use handoff_model::WorkItem;
use handoff_pipeline::{Observers, Pipeline, PipelineError, Placement};
use handoff_policy::Runtime;
use tokio::runtime::Runtime as Tokio;

use super::host_args::HostArgs;
use super::output::{terminal, write_answer};

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
    // One worker keeps the SLA clocks ticking while this thread waits for
    // input; items are decided on this thread.
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("handoff-watch")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let host = tokio.block_on(args.host.open(
        runtime,
        Placement::Inline,
        Observers::default(),
        &super::node_name(),
    ))?;
    if let Some(live) = host.policies().live() {
        eprintln!("handoff: watching {} for changes", live.dir().display());
    }
    let pipeline = host.pipeline().clone();
    let mut out = io::stdout().lock();
    match &args.input {
        None => {}
        Some(path) if path.as_os_str() == "-" => {
            for (index, line) in io::stdin().lock().split(b'\n').enumerate() {
                let line = line.context("cannot read stdin")?;
                evaluate_line(&tokio, &pipeline, &mut out, index + 1, &line)?;
            }
        }
        Some(path) => follow(path, |number, line| {
            evaluate_line(&tokio, &pipeline, &mut out, number, line)
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

/// Submits one input line and prints its decision, or reports why not.
fn evaluate_line(
    tokio: &Tokio,
    pipeline: &Arc<Pipeline>,
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
    let item = match WorkItem::from_json(text) {
        Ok(item) => item,
        Err(error) => {
            eprintln!("handoff: line {number}: {}", terminal(&error.to_string()));
            return Ok(());
        }
    };
    // Audited before it is printed; a log that cannot record stops the
    // host rather than let decisions go unrecorded.
    match tokio.block_on(pipeline.submit(vec![item])) {
        Ok(answers) => {
            for answer in &answers {
                write_answer(out, answer)?;
            }
            out.flush().context("cannot write a decision")
        }
        Err(PipelineError::Undecided(error)) => {
            eprintln!("handoff: line {number}: {}", terminal(&error.to_string()));
            Ok(())
        }
        Err(error) => Err(error).with_context(|| format!("line {number}: stopping")),
    }
}
