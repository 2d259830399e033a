//! Loading a policy directory: bad files are rejected by name and reason,
//! and everything else still loads.

use std::fs;

use crate::common::*;
use handoff_model::Tier;
use handoff_policy::{EvalError, Evaluator, PolicySet};
use serde_json::json;

fn reason_for<'a>(set: &'a PolicySet, file: &str) -> &'a str {
    set.rejected()
        .iter()
        .find(|r| r.file == file)
        .map(|r| r.reason.as_str())
        .unwrap_or_else(|| panic!("{file} was not rejected; rejections: {:?}", set.rejected()))
}

#[test]
fn bad_files_are_rejected_and_the_rest_load() {
    let dir = tempfile::tempdir().unwrap();
    write_reference_policies(dir.path());
    let gate_wasm = fs::read(dir.path().join("confidence-gate.wasm")).unwrap();

    // A valid component whose manifest is not valid TOML.
    fs::write(dir.path().join("bad-toml.wasm"), &gate_wasm).unwrap();
    fs::write(dir.path().join("bad-toml.toml"), "enabled = [unclosed").unwrap();
    // A manifest with a misspelt key.
    fs::write(dir.path().join("typo.wasm"), &gate_wasm).unwrap();
    fs::write(dir.path().join("typo.toml"), "enabld = true\n").unwrap();
    // A configuration value the plugin itself refuses.
    fs::write(dir.path().join("bad-config.wasm"), &gate_wasm).unwrap();
    fs::write(
        dir.path().join("bad-config.toml"),
        "[config]\nescalate-below = 1.5\n",
    )
    .unwrap();
    // Not WebAssembly, a core module, and a manifest with no component.
    fs::write(
        dir.path().join("notes.wasm"),
        b"these are not the bytes you want",
    )
    .unwrap();
    fs::write(dir.path().join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    fs::write(dir.path().join("lonely.toml"), "enabled = true\n").unwrap();
    // A disabled plugin loads but does not evaluate; hidden files are ignored.
    fs::write(dir.path().join("spare.wasm"), &gate_wasm).unwrap();
    fs::write(
        dir.path().join("spare.toml"),
        "enabled = false\npolicy = \"confidence-gate\"\n",
    )
    .unwrap();
    fs::write(dir.path().join(".partial.wasm"), b"\0asm").unwrap();

    let set = PolicySet::load_dir(runtime(), dir.path(), 1).unwrap();
    let loaded: Vec<&str> = set.plugins().iter().map(|p| &*p.name).collect();
    assert_eq!(loaded, vec!["compliance-limits", "confidence-gate"]);
    let disabled: Vec<&str> = set.disabled().iter().map(|p| &*p.name).collect();
    assert_eq!(disabled, vec!["spare"]);
    assert_eq!(set.rejected().len(), 6, "{:?}", set.rejected());

    assert!(reason_for(&set, "bad-toml.toml").contains("invalid manifest"));
    assert!(reason_for(&set, "typo.toml").contains("enabld"));
    let refused = reason_for(&set, "bad-config.toml");
    assert!(
        refused.contains("config key `escalate-below`") && refused.contains("1.5"),
        "{refused}"
    );
    assert!(reason_for(&set, "notes.wasm").contains("not a WebAssembly file"));
    assert!(reason_for(&set, "core.wasm").contains("core WebAssembly module, not a component"));
    assert!(reason_for(&set, "lonely.toml").contains("expected lonely.wasm"));

    // The plugins that loaded still decide.
    let mut ev = Evaluator::new(std::sync::Arc::new(set));
    let d = ev.evaluate(&refund(60_000, "USD")).unwrap();
    assert_eq!(d.tier(), Tier::Operator);
}

#[test]
fn a_missing_directory_is_an_error_naming_it() {
    let err = PolicySet::load_dir(runtime(), std::path::Path::new("/no/such/policies"), 1)
        .err()
        .expect("a missing directory fails");
    assert!(err.to_string().contains("/no/such/policies"), "{err}");
}

#[test]
fn an_empty_set_refuses_to_decide() {
    let mut ev = Evaluator::new(set_of(vec![]));
    assert!(matches!(
        ev.evaluate(&item(json!({}))),
        Err(EvalError::NoPolicies)
    ));
}

#[test]
fn invalid_items_are_refused_before_any_plugin_runs() {
    let mut ev = evaluator(vec![reference("confidence-gate")]);
    let mut bad = item(json!({}));
    bad.confidence = f64::NAN;
    let err = ev.evaluate(&bad).unwrap_err();
    assert!(err.to_string().contains("`confidence`"), "{err}");
}
