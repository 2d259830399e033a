//! Policy authoring: `handoff test` as a CI gate over real components.

use std::path::Path;

use crate::common::*;

fn test(args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["test"];
    all.extend(args);
    let out = handoff(&all, "");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn handoff_test_reports_every_case_and_fails_the_gate_on_any() {
    let dir = tempfile::tempdir().unwrap();
    write_reference_policies(dir.path());
    let (code, text) = test(&[path(dir.path())]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("confidence-gate.wasm confidence-gate@0.1.0"),
        "{text}"
    );
    assert!(
        text.contains("  PASS  low confidence goes to an operator"),
        "{text}"
    );
    assert!(text.contains("FAIL: 0"), "{text}");

    // Break one case: exit 1, the case named with what it got, and every
    // other case, in both plugins, still reported.
    let manifest = dir.path().join("confidence-gate.toml");
    let text_before = std::fs::read_to_string(&manifest).unwrap();
    let broken = text_before.replacen(
        "expect-reason-code = \"confidence.low\"",
        "expect-reason-code = \"confidence.lower\"",
        1,
    );
    assert_ne!(broken, text_before);
    std::fs::write(&manifest, &broken).unwrap();
    let (code, text) = test(&[path(dir.path())]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(
            "  FAIL  low confidence goes to an operator: expected operator with reason code \
             `confidence.lower`, got operator with reason code `confidence.low`"
        ),
        "{text}"
    );
    assert!(
        text.contains("  PASS  an unusual amount is an anomaly"),
        "{text}"
    );
    assert!(text.contains("compliance-limits.wasm"), "{text}");

    // One file, as JSON: one object per plugin.
    let wasm = dir.path().join("confidence-gate.wasm");
    let out = handoff(&["test", "--json", path(&wasm)], "");
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<&str> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["low confidence goes to an operator"]);

    // A manifest without a component cannot pass; a component without a
    // manifest is warned about, with every trigger untested.
    std::fs::write(&manifest, &text_before).unwrap();
    std::fs::write(dir.path().join("orphan.toml"), "enabled = true\n").unwrap();
    let (code, text) = test(&[path(dir.path())]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("orphan.toml") && text.contains("ERROR"),
        "{text}"
    );
    std::fs::remove_file(dir.path().join("orphan.toml")).unwrap();
    std::fs::remove_file(&manifest).unwrap();
    let (code, text) = test(&[path(&wasm)]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("WARN  no manifest"), "{text}");
    assert!(
        text.contains("triggers no fixture exercises: confidence, anomaly"),
        "{text}"
    );

    // Nothing there.
    let (code, text) = test(&[path(&dir.path().join("missing"))]);
    assert_ne!(code, Some(0));
    assert!(text.contains("no such file or directory"), "{text}");
}
