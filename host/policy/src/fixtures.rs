//! Self-tests shipped in a manifest: `[[fixture]]` cases that every load of
//! the plugin must pass before it may serve.
//!
//! A fixture runs the plugin alone, on an instance of its own, under the
//! plugin's real limits and configuration, so a case that passes here is a
//! case the plugin decides the same way live. A fault is a failure, never a
//! pass, even under the `ignore` failure mode.
//!
//! The cases run twice: in order on one instance, then in reverse order on
//! another. A plugin whose answer to a case depends on the cases before it
//! (state kept in a warm instance) is refused: live, the same item must get
//! the same verdict whatever came before it.

use handoff_model::{FaultKind, PluginVerdict, Tier};

use crate::bindings::ContractItem;
use crate::manifest::Fixture;
use crate::plugin::{Instance, Plugin};
use crate::run::{Reuse, run_plugin};

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
    /// The fault, when the case faulted.
    pub fault: Option<FaultKind>,
}

/// Runs every fixture of `plugin`'s manifest, in order and then in reverse
/// order on another instance, stopping at the first failure.
pub(crate) fn check(plugin: &Plugin) -> Result<(), FixtureFailure> {
    match run_cases(plugin, false)
        .into_iter()
        .find_map(|case| case.result.err())
    {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}

/// One fixture case as `handoff test` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseOutcome {
    /// The case's name; the order check is reported as a case of its own.
    pub name: String,
    /// Passed, or how it failed.
    pub result: Result<(), FixtureFailure>,
    /// The reason code the plugin answered, when it answered: what trigger
    /// coverage is read from.
    pub reason_code: Option<String>,
}

/// The name the order check is reported under.
pub const ORDER_CHECK: &str = "(the same answers in reverse order, on a fresh instance)";

/// Runs the cases, in order and then in reverse order on another instance;
/// with `keep_going`, every case runs and reports, else the first failure
/// ends the run.
pub(crate) fn run_cases(plugin: &Plugin, keep_going: bool) -> Vec<CaseOutcome> {
    run_fixtures(plugin, &plugin.manifest.fixtures, keep_going)
}

/// [`run_cases`] over any cases: the manifest's and a side file's together.
pub(crate) fn run_fixtures(
    plugin: &Plugin,
    fixtures: &[Fixture],
    keep_going: bool,
) -> Vec<CaseOutcome> {
    let mut outcomes = Vec::with_capacity(fixtures.len() + 1);
    if fixtures.is_empty() {
        return outcomes;
    }
    let mut instance = None;
    let mut first = Vec::with_capacity(fixtures.len());
    for fixture in fixtures {
        let result = check_one(plugin, &mut instance, fixture);
        let answered = match &result {
            Ok(record) => record.verdict.as_ref().map(|v| v.reason_code.clone()),
            Err(_) => None,
        };
        let failed = result.is_err();
        outcomes.push(CaseOutcome {
            name: fixture.name.clone(),
            reason_code: answered,
            result: result.as_ref().map(|_| ()).map_err(Clone::clone),
        });
        if failed {
            if !keep_going {
                return outcomes;
            }
            // A failed case may have faulted the instance: start afresh.
            instance = None;
        }
        first.push(result.ok());
    }
    let mut instance = None;
    let mut order = Ok(());
    for (fixture, earlier) in fixtures.iter().zip(&first).rev() {
        let Some(earlier) = earlier else { continue };
        let again = run_case(plugin, &mut instance, fixture);
        let same = again.classification == earlier.classification
            && again.assessment == earlier.assessment
            && again.verdict == earlier.verdict;
        if !same {
            order = Err(FixtureFailure {
                name: fixture.name.clone(),
                expected: "the same answer whatever ran before it".into(),
                got: "another answer when the fixtures ran in reverse order on a fresh \
                      instance: the plugin depends on what it decided before"
                    .into(),
                fault: Some(FaultKind::Nondeterministic),
            });
            break;
        }
    }
    outcomes.push(CaseOutcome {
        name: ORDER_CHECK.into(),
        result: order,
        reason_code: None,
    });
    outcomes
}

/// Runs one case and checks its verdict; returns what the plugin answered.
fn check_one(
    plugin: &Plugin,
    instance: &mut Option<Instance>,
    fixture: &Fixture,
) -> Result<PluginVerdict, FixtureFailure> {
    let expected = describe(fixture.expect, fixture.expect_reason_code.as_deref());
    let fail = |got: String| FixtureFailure {
        name: fixture.name.clone(),
        expected: expected.clone(),
        got,
        fault: None,
    };
    fixture
        .item
        .validate()
        .map_err(|e| fail(format!("an invalid item: {e}")))?;
    let record = run_case(plugin, instance, fixture);
    if let Some(fault) = &record.fault {
        return Err(FixtureFailure {
            fault: Some(fault.kind),
            ..fail(format!(
                "a {} fault in {}: {}",
                fault.kind, fault.stage, fault.detail
            ))
        });
    }
    let Some(verdict) = &record.verdict else {
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
    Ok(record)
}

/// Runs one case on `instance` (or a new one), as live evaluation would.
fn run_case(plugin: &Plugin, instance: &mut Option<Instance>, fixture: &Fixture) -> PluginVerdict {
    let reuse = Reuse::AsManifest { sample: false };
    run_plugin(plugin, instance, &ContractItem::new(&fixture.item), reuse).0
}

fn describe(tier: Tier, reason_code: Option<&str>) -> String {
    match reason_code {
        Some(code) => format!("{tier} with reason code `{code}`"),
        None => tier.to_string(),
    }
}
