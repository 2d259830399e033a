//! `handoff inspect`: what a component is, what it may touch, and who
//! vouched for it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use handoff_policy::inspect::inspect;
use handoff_policy::{Runtime, read_regular};

use super::signing::{UnitFiles, describe};

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
    // Who vouched for it: the manifest and signatures beside it, judged by
    // the trust configuration this command runs under.
    let unit = UnitFiles::read(&args.file, runtime.limits())?;
    let trust = runtime.trust().examine(
        &unit.name,
        &unit.digests,
        unit.signatures.as_deref(),
        chrono::Utc::now(),
    );
    if args.json {
        let mut json = serde_json::to_value(&report)?;
        if let Some(object) = json.as_object_mut() {
            object.insert("trust".into(), serde_json::to_value(&trust)?);
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("file:    {}", args.file.display());
        print!("{report}");
        println!("trust:");
        print!("{}", describe(&unit.name, &unit.digests, &trust));
    }
    let loadable = report.world.is_ok() && report.refused().next().is_none() && trust.met;
    Ok(if loadable {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
