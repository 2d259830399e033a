//! `handoff inspect`: what a component is and what it may touch.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use handoff_policy::inspect::inspect;
use handoff_policy::{Runtime, read_regular};

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The component to inspect.
    #[arg(value_name = "FILE.wasm")]
    file: PathBuf,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(runtime: &Runtime, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let bytes = read_regular(&args.file, runtime.limits().max_component_bytes)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let report = inspect(runtime, &bytes).with_context(|| format!("{}", args.file.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("file:    {}", args.file.display());
        print!("{report}");
    }
    let loadable = report.world.is_ok() && report.refused().next().is_none();
    Ok(if loadable {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
