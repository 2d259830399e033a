//! Self-tests shipped in a manifest: `[[fixture]]` cases that every load of
//! the plugin must pass before it may serve.
//!
//! A fixture runs the plugin alone, on an instance of its own, under the
//! plugin's real limits and configuration, so a case that passes here is a
//! case the plugin decides the same way live. A fault is a failure, never a
//! pass, even under the `ignore` failure mode.

use handoff_model::Tier;

use crate::manifest::Fixture;
use crate::plugin::{Instance, Plugin};
use crate::run::{ContractItem, run_plugin};

/// The first fixture case that did not get its expected verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fixture `{name}` failed: expected {expected}, got {got}")]
pub struct FixtureFailure {
    /// The case's name.
    pub name: String,
    /// What the manifest expects, as a tier and optionally a reason code.
    pub expected: String,
    /// What the plugin returned instead, or the fault it hit.
    pub got: String,
}

/// Runs every fixture of `plugin`'s manifest, stopping at the first failure.
pub(crate) fn check(plugin: &Plugin) -> Result<(), FixtureFailure> {
    if plugin.manifest.fixtures.is_empty() {
        return Ok(());
    }
    let mut instance = None;
    for fixture in &plugin.manifest.fixtures {
        check_one(plugin, &mut instance, fixture)?;
    }
    Ok(())
}

fn check_one(
    plugin: &Plugin,
    instance: &mut Option<Instance>,
    fixture: &Fixture,
) -> Result<(), FixtureFailure> {
    let expected = describe(fixture.expect, fixture.expect_reason_code.as_deref());
    let fail = |got: String| FixtureFailure {
        name: fixture.name.clone(),
        expected: expected.clone(),
        got,
    };
    fixture
        .item
        .validate()
        .map_err(|e| fail(format!("an invalid item: {e}")))?;
    let (record, _) = run_plugin(plugin, instance, &ContractItem::new(&fixture.item));
    if let Some(fault) = &record.fault {
        return Err(fail(format!(
            "a {} fault in {}: {}",
            fault.kind, fault.stage, fault.detail
        )));
    }
    let Some(verdict) = record.verdict else {
        return Err(fail("no verdict".into()));
    };
    let reason_matches = fixture
        .expect_reason_code
        .as_ref()
        .is_none_or(|code| *code == verdict.reason_code);
    if verdict.tier != fixture.expect || !reason_matches {
        return Err(fail(format!(
            "{} ({})",
            describe(verdict.tier, Some(&verdict.reason_code)),
            verdict.reason
        )));
    }
    Ok(())
}

fn describe(tier: Tier, reason_code: Option<&str>) -> String {
    match reason_code {
        Some(code) => format!("{tier} with reason code `{code}`"),
        None => tier.to_string(),
    }
}
