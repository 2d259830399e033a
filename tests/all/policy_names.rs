//! One policy, one file: a file that claims a policy another file already
//! has is refused, at start and on reload; a declared instance is not; and
//! what an author is likely to get wrong loads with a warning that says so.
//! Also the two reload cases that used to mislead: a manifest written before
//! its component, and a serving manifest put back after a bad one.

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::common::*;
use handoff_model::LifecycleEvent;
use handoff_policy::reload::{LifecycleSink, LivePolicies, PluginStatus};
use handoff_policy::{PolicySet, Runtime};

const GATE: &str = "confidence-gate";

fn gate() -> Vec<u8> {
    reference(GATE).wasm
}

/// A live host over the reference policies, recording lifecycle events.
fn live(dir: &Path) -> (Arc<LivePolicies>, Arc<Mutex<Vec<LifecycleEvent>>>) {
    write_reference_policies(dir);
    let events = Arc::new(Mutex::new(Vec::new()));
    let recorded = events.clone();
    let sink: Arc<dyn LifecycleSink> = Arc::new(move |event: &LifecycleEvent| {
        recorded.lock().unwrap().push(event.clone());
    });
    let live = LivePolicies::open(Runtime::new().unwrap(), dir, sink).unwrap();
    (live, events)
}

fn status(live: &LivePolicies, plugin: &str) -> Option<PluginStatus> {
    live.status().into_iter().find(|s| s.plugin == plugin)
}

fn rejections(events: &Mutex<Vec<LifecycleEvent>>) -> Vec<(String, String)> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            LifecycleEvent::Rejected { plugin, reason, .. } => {
                Some((plugin.clone(), reason.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_second_file_claiming_a_policy_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    write_reference_policies(dir.path());
    // What `cargo build` writes beside what the operator installed, and a
    // copy under an unrelated name: both claim `confidence-gate`.
    fs::write(dir.path().join("confidence_gate.wasm"), gate()).unwrap();
    fs::write(dir.path().join("aaa.wasm"), gate()).unwrap();
    // A deliberate second instance says so, and must say the right policy.
    fs::write(dir.path().join("gate-eu.wasm"), gate()).unwrap();
    fs::write(
        dir.path().join("gate-eu.toml"),
        "policy = \"confidence-gate\"\n[config]\nescalate-below = 0.5\n",
    )
    .unwrap();
    fs::write(dir.path().join("wrong.wasm"), gate()).unwrap();
    fs::write(dir.path().join("wrong.toml"), "policy = \"pii-guard\"\n").unwrap();

    let set = PolicySet::load_dir(runtime(), dir.path(), 1).unwrap();
    let mut loaded: Vec<&str> = set.plugins().iter().map(|p| &*p.name).collect();
    loaded.sort_unstable();
    assert_eq!(
        loaded,
        vec!["compliance-limits", GATE, "gate-eu"],
        "{:?}",
        set.rejected()
    );
    let refused = |file: &str| {
        set.rejected()
            .iter()
            .find(|r| r.file == file)
            .map(|r| r.reason.clone())
            .unwrap_or_else(|| panic!("{file} not refused: {:?}", set.rejected()))
    };
    // The file named after the policy keeps it, whatever sorts first.
    for file in ["aaa.wasm", "confidence_gate.wasm"] {
        let reason = refused(file);
        assert!(
            reason.contains("declares policy `confidence-gate`, which confidence-gate.wasm"),
            "{reason}"
        );
        assert!(reason.contains("policy = \"confidence-gate\""), "{reason}");
    }
    let reason = refused("wrong.toml");
    assert!(
        reason.contains("instance of `pii-guard`") && reason.contains("`confidence-gate`"),
        "{reason}"
    );
    assert_eq!(set.rejected().len(), 3, "{:?}", set.rejected());
    // A declared instance is not a misnamed file.
    assert!(set.get("gate-eu").unwrap().warnings.is_empty());
}

#[test]
fn a_duplicate_arriving_on_reload_is_refused_and_the_holder_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let (live, events) = live(dir.path());
    let serving = live.current().get(GATE).unwrap().digest.clone();
    fs::write(dir.path().join("confidence_gate.wasm"), gate()).unwrap();
    let outcome = live.reload_all().unwrap();
    assert_eq!(outcome.rejected, vec!["confidence_gate".to_string()]);
    assert_eq!(outcome.generation, None);
    assert!(live.current().get("confidence_gate").is_none());
    assert_eq!(live.current().get(GATE).unwrap().digest, serving);
    let rejected = rejections(&events);
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].0, "confidence_gate");
    assert!(
        rejected[0].1.contains("one policy, one file"),
        "{}",
        rejected[0].1
    );
    let failure = status(&live, "confidence_gate")
        .unwrap()
        .last_error
        .unwrap();
    assert_eq!(failure.file, "confidence_gate.wasm");
    // The set says what failed even though nothing new serves.
    assert!(
        live.current()
            .rejected()
            .iter()
            .any(|r| r.file == "confidence_gate.wasm")
    );
}

#[test]
fn a_component_without_a_manifest_or_under_another_name_loads_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (live, _events) = live(dir.path());
    fs::remove_file(dir.path().join(format!("{GATE}.toml"))).unwrap();
    live.reload([GATE]);
    let serving = status(&live, GATE).unwrap().serving.unwrap();
    assert_eq!(serving.warnings.len(), 1, "{:?}", serving.warnings);
    assert!(
        serving.warnings[0].contains("no manifest (confidence-gate.toml)")
            && serving.warnings[0].contains("no fixture tests it"),
        "{:?}",
        serving.warnings
    );

    // Alone under cargo's file name: it loads, and says what decisions call it.
    fs::remove_file(dir.path().join(format!("{GATE}.wasm"))).unwrap();
    fs::write(dir.path().join("confidence_gate.wasm"), gate()).unwrap();
    live.reload_all().unwrap();
    let serving = status(&live, "confidence_gate").unwrap().serving.unwrap();
    assert!(
        serving.warnings.iter().any(|w| w.contains(
            "its file is confidence_gate.wasm but the policy calls itself `confidence-gate`"
        )),
        "{:?}",
        serving.warnings
    );
    // A plugin installed as intended carries no warning.
    let limits = status(&live, "compliance-limits").unwrap().serving.unwrap();
    assert!(limits.warnings.is_empty(), "{:?}", limits.warnings);
}

#[test]
fn a_manifest_written_before_its_component_is_not_a_rejection() {
    let dir = tempfile::tempdir().unwrap();
    let (live, events) = live(dir.path());
    let manifest = reference(GATE).manifest.unwrap();
    fs::write(
        dir.path().join("gate-two.toml"),
        format!("policy = \"{GATE}\"\n{manifest}"),
    )
    .unwrap();
    let outcome = live.reload(["gate-two"]);
    assert!(outcome.rejected.is_empty(), "{outcome:?}");
    assert!(rejections(&events).is_empty(), "{:?}", rejections(&events));
    assert!(status(&live, "gate-two").is_none());
    // The component arrives: the unit loads with the manifest already there.
    fs::write(dir.path().join("gate-two.wasm"), gate()).unwrap();
    let outcome = live.reload(["gate-two"]);
    assert_eq!(outcome.changed, vec!["gate-two".to_string()]);
    assert!(rejections(&events).is_empty(), "{:?}", rejections(&events));
    let plugin = live.current().get("gate-two").cloned().unwrap();
    assert_eq!(plugin.manifest.policy.as_deref(), Some(GATE));
    assert!(!plugin.manifest.fixtures.is_empty());
}

#[test]
fn putting_the_serving_manifest_back_supersedes_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (live, events) = live(dir.path());
    let manifest_path = dir.path().join(format!("{GATE}.toml"));
    let good = fs::read_to_string(&manifest_path).unwrap();
    let bad = "[config]\nescalate-below = 7\n";
    fs::write(&manifest_path, bad).unwrap();
    assert_eq!(live.reload([GATE]).rejected, vec![GATE.to_string()]);
    assert!(
        live.current()
            .rejected()
            .iter()
            .any(|r| r.file == format!("{GATE}.toml"))
    );
    let failure = status(&live, GATE).unwrap().last_error.unwrap();
    assert!(failure.superseded_at.is_none());

    // The serving manifest, byte for byte: nothing reloads, the failure is
    // history and the set no longer lists it.
    fs::write(&manifest_path, &good).unwrap();
    let outcome = live.reload([GATE]);
    assert_eq!(outcome.unchanged, vec![GATE.to_string()]);
    let failure = status(&live, GATE).unwrap().last_error.unwrap();
    let superseded = failure.superseded_at.expect("the failure is superseded");
    assert!(superseded >= failure.at);
    assert!(
        live.current().rejected().is_empty(),
        "{:?}",
        live.current().rejected()
    );

    // The same bad manifest again is reported again, not taken as seen.
    fs::write(&manifest_path, bad).unwrap();
    assert_eq!(live.reload([GATE]).rejected, vec![GATE.to_string()]);
    assert_eq!(rejections(&events).len(), 2);
    let failure = status(&live, GATE).unwrap().last_error.unwrap();
    assert!(failure.superseded_at.is_none());
}
