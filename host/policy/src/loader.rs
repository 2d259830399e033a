//! Loading one plugin from its source, the way every path into a running
//! host does it (start, reload, replay candidates): parse the manifest,
//! compile the component, trial-run it, then pass every fixture. Only a
//! plugin that does all of that may serve, and only then is its compiled
//! code kept in the artifact cache.
//!
//! A load is judged by deterministic budgets (fuel, memory, output caps),
//! not by how busy the machine is: a deadline the machine made the plugin
//! miss is tried again (see [`crate::busy_machine`]).

use std::time::{Duration, Instant};

use handoff_model::{FaultKind, TriggerKind};
use handoff_trust::UnitDigests;

use crate::busy_machine::retry_when_busy;
use crate::fixtures::{self, FixtureFailure};
use crate::manifest::{Manifest, ManifestError};
use crate::plugin::{Plugin, PluginError};
use crate::runtime::Runtime;
use crate::source::{PluginSource, Rejection};

/// Why a plugin did not load. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The component could not become a plugin.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The manifest was refused.
    #[error("invalid manifest: {0}")]
    Manifest(#[from] ManifestError),
    /// A self-test case in the manifest did not get its expected verdict.
    #[error(transparent)]
    Fixture(#[from] FixtureFailure),
}

impl LoadError {
    /// Whether the manifest, rather than the component, is at fault: a
    /// refused configuration or a failing fixture is the manifest's doing.
    fn blames_manifest(&self) -> bool {
        matches!(
            self,
            LoadError::Manifest(_)
                | LoadError::Fixture(_)
                | LoadError::Plugin(PluginError::Config(_))
        )
    }

    /// Whether a wall-clock deadline failed the load.
    fn deadline(&self) -> bool {
        match self {
            LoadError::Plugin(error) => error.missed_deadline(),
            LoadError::Fixture(failure) => failure.fault == Some(FaultKind::DeadlineExceeded),
            LoadError::Manifest(_) => false,
        }
    }
}

/// Loads one source; on failure, names the file at fault and why.
pub(crate) fn load(runtime: &Runtime, source: &PluginSource) -> Result<Plugin, Rejection> {
    let started = Instant::now();
    // The trust gate first: a version the activation policy or the lock
    // refuses is never compiled, let alone run.
    let digests = UnitDigests::of(&source.wasm, source.manifest.as_deref());
    let trust = runtime
        .trust()
        .admit(&source.name, &digests, source.signatures.as_deref())?;
    match load_plugin(runtime, source) {
        Ok(mut plugin) => {
            plugin.trust = trust;
            plugin.manifest_digest = digests.manifest;
            plugin.remember(runtime);
            plugin.load_ms = started.elapsed().as_secs_f64() * 1000.0;
            plugin.warnings = crate::claims::warnings(&plugin, source.manifest.is_some());
            for warning in &plugin.warnings {
                tracing::warn!(plugin = %plugin.name, %warning, "plugin loaded with a warning");
            }
            Ok(plugin)
        }
        Err(error) => {
            let extension = if error.blames_manifest() {
                "toml"
            } else {
                "wasm"
            };
            Err(Rejection {
                file: format!("{}.{extension}", source.name),
                reason: error.to_string(),
            })
        }
    }
}

fn load_plugin(runtime: &Runtime, source: &PluginSource) -> Result<Plugin, LoadError> {
    let manifest = match &source.manifest {
        Some(text) => Manifest::parse(text)?,
        None => Manifest::default(),
    };
    check_pilot_name(&source.name, &manifest)?;
    let deadline = Duration::from_millis(manifest.limits.deadline_ms);
    let mut plugin = Plugin::compile(runtime, &source.name, &source.wasm, manifest)?;
    retry_when_busy(&source.name, deadline, LoadError::deadline, |attempt| {
        plugin.trial()?;
        if attempt == 1 && runtime.snapshots() {
            plugin.take_snapshot(runtime, &source.wasm);
        }
        check_fixtures(&mut plugin)
    })?;
    check_calibration(&plugin)?;
    check_instance(&plugin)?;
    plugin.reset_stats();
    Ok(plugin)
}

/// Runs the fixtures on instances of the snapshot, when there is one. A
/// snapshot that fails a fixture the live component passes is a snapshot
/// bug, not the plugin's: it is dropped, with the reason, and the plugin
/// serves with live `configure`.
fn check_fixtures(plugin: &mut Plugin) -> Result<(), LoadError> {
    let Err(failure) = fixtures::check(plugin) else {
        return Ok(());
    };
    if plugin.snapshot_digest().is_none() {
        return Err(failure.into());
    }
    plugin.drop_snapshot(format!("the snapshot failed a fixture: {failure}"));
    fixtures::check(plugin)?;
    tracing::warn!(plugin = %plugin.name, "a configured snapshot decided differently; serving with live configure");
    Ok(())
}

/// A file named `NAME@LABEL` is a pilot version of `NAME`: it must run in
/// shadow, or the two would both enforce (and claim one policy). The label
/// keeps promotion unambiguous: exactly one `@`, something on each side.
pub(crate) fn check_pilot_name(name: &str, manifest: &Manifest) -> Result<(), ManifestError> {
    let Some((base, label)) = name.split_once('@') else {
        return Ok(());
    };
    let reason = if base.is_empty() || label.is_empty() || label.contains('@') {
        format!(
            "`{name}` is not a pilot name: a pilot version is called NAME@LABEL, with one `@`, \
             for example `confidence-gate@candidate`"
        )
    } else if manifest.mode != crate::manifest::Mode::Shadow {
        format!(
            "`{name}` is a pilot version of `{base}` and must run in shadow: set \
             `mode = \"shadow\"` (promote it to make it enforce)"
        )
    } else {
        return Ok(());
    };
    Err(ManifestError::Config {
        key: "mode".into(),
        reason,
    })
}

/// A `[calibrate]` entry must name a probabilistic trigger the plugin
/// declares: a rule-based trigger is mandated and never tuned from feedback.
pub(crate) fn check_calibration(plugin: &Plugin) -> Result<(), ManifestError> {
    for trigger in plugin.manifest.calibrate.keys() {
        let declared = plugin.info.triggers.iter().find(|t| &t.code == trigger);
        let reason = match declared {
            None => format!("the plugin declares no trigger `{trigger}`"),
            Some(t) if t.kind != TriggerKind::Probabilistic => {
                format!(
                    "trigger `{trigger}` is rule-based; only probabilistic triggers are calibrated"
                )
            }
            Some(_) => continue,
        };
        return Err(ManifestError::Config {
            key: format!("calibrate.{trigger}"),
            reason,
        });
    }
    Ok(())
}

/// A manifest that says which policy it configures must sit beside that
/// policy: a manifest copied next to the wrong component is caught here.
fn check_instance(plugin: &Plugin) -> Result<(), ManifestError> {
    match &plugin.manifest.policy {
        Some(policy) if *policy != plugin.info.name => Err(ManifestError::Config {
            key: "policy".into(),
            reason: format!(
                "says this file is an instance of `{policy}`, but the component beside it is \
                 `{}`",
                plugin.info.name
            ),
        }),
        _ => Ok(()),
    }
}
