//! `handoff test`: every fixture of a plugin run and reported on its own,
//! like `opa test -v`, with which of its triggers no fixture exercises.
//!
//! A load stops at the first failing fixture, because a version that fails
//! one must never serve; an author wants every case's verdict at once, and
//! the exit code a CI gate needs. The cases run exactly as a load runs them
//! (the plugin's real limits and configuration, in order and then in reverse
//! order on a fresh instance), so passing here means the load passes too.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use handoff_model::FaultKind;

use crate::busy_machine::retry_when_busy;
use crate::fixtures::{self, CaseOutcome};
use crate::loader;
use crate::manifest::{Fixture, Manifest};
use crate::plugin::{Plugin, PluginError};
use crate::policy_dir::{self, DirError, Unit};
use crate::runtime::Runtime;
use crate::source::{PluginSource, Rejection};

/// What testing one plugin found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginTest {
    /// The component's file.
    pub file: String,
    /// The policy's own name and version, once its metadata was read.
    pub policy: Option<String>,
    /// Whether a manifest sits beside the component. Without one the plugin
    /// runs with defaults and has no fixtures to test.
    pub manifest: bool,
    /// Why it could not be tested (it would not load either).
    pub error: Option<String>,
    /// Every case, in manifest order, then the order check.
    pub cases: Vec<CaseReport>,
    /// Declared triggers whose code no passing case's reason code starts
    /// with.
    pub untested_triggers: Vec<String>,
    /// The side file of cases that ran too (`NAME.cases.jsonl`), if any.
    pub side_file: Option<String>,
}

/// One case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseReport {
    /// The fixture's name.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// What the manifest expects, when it failed.
    pub expected: Option<String>,
    /// What the plugin did instead.
    pub got: Option<String>,
}

impl PluginTest {
    /// Whether everything passed: it could be tested and no case failed.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.cases.iter().all(|c| c.passed)
    }
}

/// The sources at `path`: every unit of a directory, or the one unit a
/// `.wasm` or `.toml` file belongs to. Units that cannot be read come back
/// as rejections.
pub fn sources_at(
    path: &Path,
    runtime: &Runtime,
) -> Result<(Vec<PluginSource>, Vec<Rejection>), DirError> {
    if path.is_dir() {
        return policy_dir::read_sources(path, runtime.limits());
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let not_a_unit = || DirError {
        dir: path.display().to_string(),
        error: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a directory, nor a NAME.wasm or NAME.toml file",
        ),
    };
    let name = policy_dir::unit_name(path).ok_or_else(not_a_unit)?;
    Ok(match policy_dir::read_unit(dir, name, runtime.limits()) {
        Unit::Present(source) => (vec![source], Vec::new()),
        Unit::Unreadable(rejection) => (Vec::new(), vec![rejection]),
        Unit::ManifestOnly => (Vec::new(), vec![policy_dir::orphan_manifest(name)]),
        Unit::Absent => (
            Vec::new(),
            vec![Rejection {
                file: path.display().to_string(),
                reason: "no such file".into(),
            }],
        ),
    })
}

/// The side file of cases beside a unit: `NAME.cases.jsonl`.
pub fn side_cases_path(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{name}.cases.jsonl"))
}

/// Tests one plugin: its manifest's fixtures, then `extra` cases (a side
/// file's), all in one run with one order check.
pub fn test_source(runtime: &Runtime, source: &PluginSource, extra: &[Fixture]) -> PluginTest {
    let mut test = PluginTest {
        file: format!("{}.wasm", source.name),
        policy: None,
        manifest: source.manifest.is_some(),
        error: None,
        cases: Vec::new(),
        untested_triggers: Vec::new(),
        side_file: None,
    };
    let plugin = match prepare(runtime, source) {
        Ok(plugin) => plugin,
        Err(error) => {
            test.error = Some(error);
            return test;
        }
    };
    test.policy = Some(format!("{}@{}", plugin.info.name, plugin.info.version));
    // As a load does: a deadline a busy machine made the plugin miss is
    // tried again; a plugin that really runs too long misses it every time.
    let cases: Vec<Fixture> = plugin
        .manifest
        .fixtures
        .iter()
        .chain(extra)
        .cloned()
        .collect();
    let slow = |outcomes: &Vec<CaseOutcome>| {
        outcomes.iter().any(|o| {
            o.result
                .as_ref()
                .is_err_and(|f| f.fault == Some(FaultKind::DeadlineExceeded))
        })
    };
    let outcomes = retry_when_busy(&source.name, deadline_of(&plugin), slow, |_| {
        let outcomes = fixtures::run_fixtures(&plugin, &cases, true);
        if slow(&outcomes) {
            Err(outcomes)
        } else {
            Ok(outcomes)
        }
    })
    .unwrap_or_else(|outcomes| outcomes);
    test.untested_triggers = untested(&plugin, &outcomes);
    test.cases = outcomes.into_iter().map(report).collect();
    test
}

/// The policy's own metadata, read by compiling and trial-running the
/// component with its manifest's configuration but no fixture: what
/// `handoff build` names the installed file after.
pub fn policy_info(runtime: &Runtime, source: &PluginSource) -> Result<crate::PolicyInfo, String> {
    prepare(runtime, source).map(|plugin| plugin.info)
}

fn prepare(runtime: &Runtime, source: &PluginSource) -> Result<Plugin, String> {
    let manifest = match &source.manifest {
        Some(text) => Manifest::parse(text)
            .map_err(|e| format!("{}.toml: invalid manifest: {e}", source.name))?,
        None => Manifest::default(),
    };
    let wasm = |e: &dyn std::fmt::Display| format!("{}.wasm: {e}", source.name);
    let mut plugin =
        Plugin::compile(runtime, &source.name, &source.wasm, manifest).map_err(|e| wasm(&e))?;
    let deadline = deadline_of(&plugin);
    retry_when_busy(&source.name, deadline, PluginError::missed_deadline, |_| {
        plugin.trial()
    })
    .map_err(|e| wasm(&e))?;
    loader::check_calibration(&plugin)
        .map_err(|e| format!("{}.toml: invalid manifest: {e}", source.name))?;
    Ok(plugin)
}

fn deadline_of(plugin: &Plugin) -> Duration {
    Duration::from_millis(plugin.manifest.limits.deadline_ms)
}

fn untested(plugin: &Plugin, outcomes: &[CaseOutcome]) -> Vec<String> {
    let exercised = |code: &str| {
        outcomes
            .iter()
            .filter_map(|o| o.reason_code.as_deref())
            .any(|reason| {
                reason == code
                    || reason
                        .strip_prefix(code)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
    };
    plugin
        .info
        .triggers
        .iter()
        .map(|t| t.code.clone())
        .filter(|code| !exercised(code))
        .collect()
}

fn report(outcome: CaseOutcome) -> CaseReport {
    match outcome.result {
        Ok(()) => CaseReport {
            name: outcome.name,
            passed: true,
            expected: None,
            got: None,
        },
        Err(failure) => CaseReport {
            name: outcome.name,
            passed: false,
            expected: Some(failure.expected),
            got: Some(failure.got),
        },
    }
}
