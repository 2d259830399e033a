//! `handoff test`: run every plugin's fixtures and report each case, as a
//! CI gate: the exit code is 1 if anything failed, whatever else passed.

use std::path::PathBuf;
use std::process::ExitCode;

use handoff_policy::Runtime;
use handoff_policy::testing::{PluginTest, sources_at, test_source};

use super::output::terminal;

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Policy directories, or `NAME.wasm` files (each with its `NAME.toml`
    /// beside it).
    #[arg(value_name = "DIR|FILE", default_value = ".")]
    paths: Vec<PathBuf>,
    /// Print one JSON object per plugin instead of the report.
    #[arg(long)]
    json: bool,
}

pub fn run(runtime: &Runtime, args: TestArgs) -> anyhow::Result<ExitCode> {
    let mut tests: Vec<PluginTest> = Vec::new();
    for path in &args.paths {
        if !path.exists() {
            anyhow::bail!("{}: no such file or directory", path.display());
        }
        let (sources, rejected) = sources_at(path, runtime)
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.source))?;
        for rejection in rejected {
            tests.push(PluginTest {
                file: rejection.file,
                policy: None,
                manifest: false,
                error: Some(rejection.reason),
                cases: Vec::new(),
                untested_triggers: Vec::new(),
            });
        }
        tests.extend(sources.iter().map(|source| test_source(runtime, source)));
    }
    if tests.is_empty() {
        eprintln!("handoff: no policies found to test");
        return Ok(ExitCode::from(2));
    }
    if args.json {
        for test in &tests {
            println!("{}", serde_json::to_string(test)?);
        }
    } else {
        print!("{}", render(&tests));
    }
    Ok(if tests.iter().all(PluginTest::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The report, in the style of `opa test -v`.
fn render(tests: &[PluginTest]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let (mut passed, mut failed) = (0, 0);
    for test in tests {
        let policy = test.policy.as_deref().map(terminal).unwrap_or_default();
        let _ = writeln!(out, "{} {policy}", terminal(&test.file));
        if let Some(error) = &test.error {
            failed += 1;
            let _ = writeln!(out, "  ERROR {}", terminal(error));
        }
        if !test.manifest && test.error.is_none() {
            let _ = writeln!(
                out,
                "  WARN  no manifest: it would run with the default settings and has no fixtures"
            );
        }
        for case in &test.cases {
            if case.passed {
                passed += 1;
                let _ = writeln!(out, "  PASS  {}", terminal(&case.name));
            } else {
                failed += 1;
                let _ = writeln!(
                    out,
                    "  FAIL  {}: expected {}, got {}",
                    terminal(&case.name),
                    terminal(case.expected.as_deref().unwrap_or("-")),
                    terminal(case.got.as_deref().unwrap_or("-"))
                );
            }
        }
        if !test.untested_triggers.is_empty() {
            let names: Vec<_> = test.untested_triggers.iter().map(|t| terminal(t)).collect();
            let _ = writeln!(out, "  triggers no fixture exercises: {}", names.join(", "));
        }
    }
    let _ = writeln!(out, "{}", "-".repeat(60));
    let _ = writeln!(out, "PASS: {passed}, FAIL: {failed}");
    out
}
