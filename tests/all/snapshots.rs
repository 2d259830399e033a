//! Configured snapshots, and the decisions performance work must not
//! change.
//!
//! `tests/golden/sample-decisions.jsonl` holds what `handoff eval` decided
//! for `examples/sample.jsonl`, each line as printed with its `metering`
//! cut out and each component digest written `<component>` (a digest
//! changes with every rebuild of a reference policy, and issue 21 changed
//! `compliance-limits`' code). It was recorded by the host as it was
//! before the snapshots, the pool tuning and the one-pass
//! `compliance-limits` of issue 21. A change to any other byte of a
//! decision fails here. To record a deliberate change, run the test with
//! `HANDOFF_BLESS=1` and review the diff.

use crate::common::*;
use handoff_model::WorkItem;
use handoff_policy::{Evaluator, PolicySet, Runtime};
use std::sync::Arc;

const GOLDEN: &str = "tests/golden/sample-decisions.jsonl";

/// `line` with its `"metering":{…}` member removed and its component
/// digests written `<component>`, every other byte kept.
fn comparable(line: &str) -> String {
    let digest = "\"digest\":\"sha256:";
    let mut out = without_metering(line);
    let mut from = 0;
    while let Some(at) = out[from..].find(digest) {
        let start = from + at + "\"digest\":\"".len();
        let end = start + "sha256:".len() + 64;
        out.replace_range(start..end, "<component>");
        from = start;
    }
    out
}

/// `line` with its `"metering":{…}` member removed, every other byte kept.
fn without_metering(line: &str) -> String {
    let key = ",\"metering\":{";
    let start = line
        .find(key)
        .unwrap_or_else(|| panic!("a decision without metering: {line}"));
    let body = start + key.len() - 1;
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, c) in line[body..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' if !in_string => depth += 1,
            '}' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    let end = body + offset + 1;
                    return format!("{}{}", &line[..start], &line[end..]);
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced metering in {line}")
}

#[test]
fn sample_decisions_are_byte_identical_to_the_recorded_ones_apart_from_metering() {
    let sample = examples_dir().join("sample.jsonl");
    let out = handoff(&["eval", "--input", sample.to_str().unwrap()], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decided: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(comparable)
        .collect();
    let golden = examples_dir().join("..").join(GOLDEN);
    if std::env::var_os("HANDOFF_BLESS").is_some() {
        std::fs::write(&golden, decided.join("\n") + "\n").unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap();
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(
        decided.len(),
        expected.len(),
        "one decision per sample item"
    );
    for (number, (got, want)) in decided.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "decision {} of the sample changed", number + 1);
    }
}

fn reference_set() -> Arc<PolicySet> {
    reference_set_on(runtime())
}

fn reference_set_on(runtime: &Runtime) -> Arc<PolicySet> {
    let set = PolicySet::load(
        runtime,
        vec![reference("compliance-limits"), reference("confidence-gate")],
        1,
    );
    assert!(set.rejected().is_empty(), "{:?}", set.rejected());
    Arc::new(set)
}

fn snapshot_of(set: &PolicySet, name: &str) -> String {
    let plugin = set
        .plugins()
        .iter()
        .find(|p| &*p.name == name)
        .unwrap_or_else(|| panic!("no plugin {name}"));
    plugin
        .snapshot_digest()
        .unwrap_or_else(|| panic!("{name} has no snapshot: {:?}", plugin.snapshot_refused))
        .to_string()
}

#[test]
fn metering_names_the_snapshot_every_instance_started_from() {
    let set = reference_set();
    for plugin in set.plugins() {
        let digest = snapshot_of(&set, &plugin.name);
        assert!(
            digest.starts_with("sha256:") && digest.len() == 71,
            "{digest}"
        );
        assert_ne!(digest, plugin.digest, "a snapshot is a new component");
    }
    let item = WorkItem::from_json(
        r#"{"id":"s-1","kind":"refund","agent":"a","text":"Refund issued.","confidence":0.9,
            "amount":{"minor":120000,"currency":"USD"}}"#,
    )
    .unwrap();
    // Warm instances and a fresh one per item both start from the snapshot.
    for mut evaluator in [Evaluator::new(set.clone()), Evaluator::fresh(set.clone())] {
        let decision = evaluator.evaluate(&item).unwrap();
        assert_eq!(decision.metering.plugins.len(), 2);
        for (cost, plugin) in decision.metering.plugins.iter().zip(set.plugins()) {
            assert_eq!(cost.plugin, &*plugin.name);
            assert_eq!(cost.snapshot.as_deref(), plugin.snapshot_digest());
        }
    }
}

/// The snapshot is a function of the component and its configuration: the
/// same on every load (so a replay names the same one), another for
/// another configuration.
#[test]
fn a_snapshot_is_the_same_for_the_same_component_and_configuration() {
    let first = reference_set();
    let second = reference_set();
    assert_eq!(
        snapshot_of(&first, "compliance-limits"),
        snapshot_of(&second, "compliance-limits")
    );
    let edited = with_manifest_edit(
        reference("compliance-limits"),
        "max-attempts = 3",
        "max-attempts = 4",
    );
    let third = PolicySet::load(runtime(), vec![edited], 1);
    assert!(third.rejected().is_empty(), "{:?}", third.rejected());
    assert_ne!(
        snapshot_of(&third, "compliance-limits"),
        snapshot_of(&first, "compliance-limits")
    );
}

/// A snapshot instance decides as a live `configure` does, item by item,
/// warm and fresh, on the whole sample.
#[test]
fn snapshot_instances_decide_as_live_configure_does() {
    let set = reference_set();
    let live_runtime = Runtime::new().unwrap().with_snapshots(false);
    let live = reference_set_on(&live_runtime);
    for plugin in live.plugins() {
        assert_eq!(plugin.snapshot_digest(), None);
    }
    let items: Vec<WorkItem> = std::fs::read_to_string(examples_dir().join("sample.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| WorkItem::from_json(l).unwrap())
        .collect();
    let mut warm = Evaluator::new(set.clone());
    let mut fresh = Evaluator::fresh(set.clone());
    let mut configured = Evaluator::fresh(live);
    for item in &items {
        let expected = configured.evaluate(item).unwrap();
        assert!(
            expected
                .metering
                .plugins
                .iter()
                .all(|c| c.snapshot.is_none())
        );
        for decision in [warm.evaluate(item).unwrap(), fresh.evaluate(item).unwrap()] {
            assert_eq!(decision.verdicts, expected.verdicts, "{}", item.id);
            assert_eq!(decision.tier(), expected.tier(), "{}", item.id);
        }
    }
}
