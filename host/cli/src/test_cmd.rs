//! `handoff test`: run every plugin's fixtures and report each case, as a
//! CI gate: the exit code is 1 if anything failed, whatever else passed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use handoff_policy::manifest::parse_cases;
use handoff_policy::testing::{PluginTest, side_cases_path, sources_at, test_source};
use handoff_policy::{FileError, Runtime, read_regular};

use super::output::terminal;

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Policy directories, or `NAME.wasm` files (each with its `NAME.toml`
    /// beside it). A `NAME.cases.jsonl` beside a unit adds its cases.
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
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.error))?;
        for rejection in rejected {
            tests.push(failed(rejection.file, rejection.reason));
        }
        let dir = if path.is_dir() {
            path.as_path()
        } else {
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
        };
        for source in &sources {
            let side = side_cases_path(dir, &source.name);
            let file = side
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let cases = match read_regular(&side, MAX_SIDE_FILE_BYTES) {
                Err(FileError::NotFound) => None,
                Err(e) => {
                    tests.push(failed(file, e.to_string()));
                    continue;
                }
                Ok(bytes) => match String::from_utf8(bytes)
                    .map_err(|_| "not UTF-8 text".to_string())
                    .and_then(|text| parse_cases(&text))
                {
                    Ok(cases) => Some(cases),
                    Err(reason) => {
                        tests.push(failed(file, reason));
                        continue;
                    }
                },
            };
            let mut test = test_source(runtime, source, cases.as_deref().unwrap_or_default());
            test.side_file = cases.map(|_| file);
            tests.push(test);
        }
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

/// The largest side file of cases read.
const MAX_SIDE_FILE_BYTES: usize = 64 << 20;

/// A file that could not be tested at all.
fn failed(file: String, reason: String) -> PluginTest {
    PluginTest {
        file,
        policy: None,
        manifest: false,
        error: Some(reason),
        cases: Vec::new(),
        untested_triggers: Vec::new(),
        side_file: None,
    }
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
        if let Some(side) = &test.side_file {
            let _ = writeln!(out, "  with the cases of {}", terminal(side));
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
