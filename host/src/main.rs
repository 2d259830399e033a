//! `handoff`: decide, for every unit of AI-agent work, whether the agent may
//! proceed or a human must step in.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_tracing();
    match cli::run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("handoff: error: {error:#}");
            ExitCode::from(2)
        }
    }
}
