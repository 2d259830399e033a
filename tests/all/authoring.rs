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

/// Where policy crates made by tests build: shared across runs, so that
/// only the first run compiles the SDK's dependencies for the guest target.
fn authoring_target_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/authoring-guests")
}

fn handoff_in(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", authoring_target_dir())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("handoff runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn a_new_policy_builds_outside_the_workspace_tests_and_hot_loads() {
    // Outside the repository: nothing of the workspace's Cargo.toml applies.
    let outside = tempfile::Builder::new()
        .prefix("handoff-new-")
        .tempdir_in(std::env::temp_dir())
        .unwrap();
    let (code, text) = handoff_in(outside.path(), &["new", "pii-guard"]);
    assert_eq!(code, Some(0), "{text}");
    let crate_dir = outside.path().join("pii-guard");
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "policy.toml",
        "README.md",
        ".gitignore",
    ] {
        assert!(crate_dir.join(file).is_file(), "{file} missing");
    }
    // The guest profile the reference policies use.
    let cargo_toml = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    for line in [
        "lto = true",
        "codegen-units = 1",
        "opt-level = 3",
        "[workspace]",
    ] {
        assert!(cargo_toml.contains(line), "{line} not in:\n{cargo_toml}");
    }
    // Creating it again refuses rather than overwrites.
    let (code, text) = handoff_in(outside.path(), &["new", "pii-guard"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("already exists"), "{text}");
    let (code, text) = handoff_in(outside.path(), &["new", "Pii_Guard"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("lower-case letters"), "{text}");

    // Built: named after the policy, not cargo's `pii_guard.wasm`.
    let (code, text) = handoff_in(&crate_dir, &["build"]);
    assert_eq!(code, Some(0), "{text}");
    let dist = crate_dir.join("dist");
    assert!(dist.join("pii-guard.wasm").is_file(), "{text}");
    assert!(dist.join("pii-guard.toml").is_file(), "{text}");
    assert!(!dist.join("pii_guard.wasm").exists());
    assert!(text.contains("pii-guard@0.1.0"), "{text}");

    let (code, text) = handoff_in(&crate_dir, &["test", "dist"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("  PASS  a mandated phrase goes to a human"),
        "{text}"
    );
    assert!(text.contains("FAIL: 0"), "{text}");
    assert!(!text.contains("triggers no fixture exercises"), "{text}");

    // A broken fixture fails the gate, naming the case and what it got.
    let policy_toml = crate_dir.join("policy.toml");
    let good = std::fs::read_to_string(&policy_toml).unwrap();
    let broken = good.replacen(
        "name = \"routine work proceeds\"\nexpect = \"none\"",
        "name = \"routine work proceeds\"\nexpect = \"executive\"",
        1,
    );
    assert_ne!(broken, good, "the template's first fixture changed");
    std::fs::write(&policy_toml, &broken).unwrap();
    let (code, text) = handoff_in(&crate_dir, &["build"]);
    assert_eq!(code, Some(0), "building does not run fixtures: {text}");
    let (code, text) = handoff_in(&crate_dir, &["test", "dist"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("  FAIL  routine work proceeds: expected executive"),
        "{text}"
    );
    assert!(
        text.contains("  PASS  low confidence goes to a human"),
        "{text}"
    );

    // Fixed, and built straight into a running server's policy directory:
    // it loads, and decides.
    std::fs::write(&policy_toml, &good).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = crate::serve::Server::start(data.path(), &[]);
    let policies = data.path().join("policies");
    assert!(policies.is_dir());
    let (code, text) = handoff_in(&crate_dir, &["build", "--out", path(&policies)]);
    assert_eq!(code, Some(0), "{text}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let (_, listed) = server.get("/v1/policies", None);
        let serving = listed["plugins"]
            .as_array()
            .is_some_and(|plugins| plugins.iter().any(|p| p["name"] == "pii-guard"));
        if serving {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pii-guard never served: {listed}\n{}",
            server.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let item = serde_json::json!({
        "id": "new-1", "kind": "reply", "agent": "bot", "confidence": 0.95,
        "text": "Let me speak to a human, please."
    });
    let (status, decided) = server.post("/v1/evaluate", None, &item);
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["tier"], "operator", "{decided}");
    assert_eq!(decided["reason_code"], "phrase.matched", "{decided}");
    // Loaded manifest-first, with no rejection on the way.
    assert!(
        !server.stderr().contains("rejected pii-guard"),
        "{}",
        server.stderr()
    );
}

/// A `multipart/form-data` body of named parts.
pub(crate) fn multipart(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "handoff-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, bytes) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[test]
fn the_replay_api_backtests_a_candidate_manifest() {
    let data = tempfile::tempdir().unwrap();
    let server = crate::serve::Server::start(data.path(), &[]);
    for (id, confidence) in [("c-1", 0.7), ("c-2", 0.95), ("c-3", 0.72)] {
        let item = serde_json::json!({
            "id": id, "kind": "reply", "agent": "bot", "confidence": confidence,
            "text": "Your order ships tomorrow."
        });
        assert_eq!(server.post("/v1/evaluate", None, &item).0, 200);
    }
    let gate = std::fs::read(data.path().join("policies/confidence-gate.wasm")).unwrap();
    let replay = "/v1/replay?plugin=confidence-gate";

    // Stricter thresholds: the two middling items now go to an operator.
    let stricter = b"[config]\nescalate-below = 0.8\nself-correct-below = 0.9\n";
    let (content_type, body) = multipart(&[("component", &gate), ("manifest", stricter)]);
    let (status, replayed) = server.post_as(replay, &content_type, &body);
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed["report"]["replayed"], 3, "{replayed}");
    let changed: Vec<&str> = replayed["report"]["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(changed, vec!["c-1", "c-3"], "{replayed}");
    assert!(
        replayed["report"]["changed"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["new_tier"] == "operator"),
        "{replayed}"
    );
    // Backtested, not installed: the serving manifest is untouched.
    let (_, policies) = server.get("/v1/policies", None);
    assert_eq!(policies["generation"], 1, "a replay activates nothing");

    // New fixtures are run first: one that fails is the answer, named.
    let failing = format!(
        "{}\n[[fixture]]\nname = \"0.85 proceeds\"\nexpect = \"none\"\n\
         item = {{ kind = \"reply\", confidence = 0.85 }}\n",
        std::str::from_utf8(stricter).unwrap()
    );
    let (content_type, body) = multipart(&[("component", &gate), ("manifest", failing.as_bytes())]);
    let (status, refused) = server.post_as(replay, &content_type, &body);
    assert_eq!(status, 422, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("0.85 proceeds"), "{message}");

    // A new name with no manifest anywhere: it replays, and says so.
    let (content_type, body) = multipart(&[("component", &gate)]);
    let (status, replayed) = server.post_as("/v1/replay?plugin=gate-two", &content_type, &body);
    assert_eq!(status, 200, "{replayed}");
    let warnings = replayed["candidate"]["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("no manifest")),
        "{replayed}"
    );

    // Malformed forms are refused by part name.
    let (content_type, body) = multipart(&[("manifest", stricter)]);
    let (status, refused) = server.post_as(replay, &content_type, &body);
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["field"], "component", "{refused}");
    let (content_type, body) = multipart(&[("component", &gate), ("extra", b"x")]);
    let (status, refused) = server.post_as(replay, &content_type, &body);
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown part"),
        "{refused}"
    );
    let (content_type, body) = multipart(&[("component", &gate), ("manifest", b"\xff\xfe")]);
    let (status, refused) = server.post_as(replay, &content_type, &body);
    assert_eq!(
        (status, refused["error"]["field"].as_str()),
        (400, Some("manifest"))
    );
}

#[test]
fn handoff_bench_reports_percentiles_per_plugin() {
    let dir = tempfile::tempdir().unwrap();
    write_reference_policies(dir.path());
    let sample = examples_dir().join("sample.jsonl");
    let out = handoff(
        &[
            "bench",
            path(dir.path()),
            "--input",
            path(&sample),
            "--count",
            "40",
            "--json",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let mut plugins: Vec<&str> = rows.iter().map(|r| r["plugin"].as_str().unwrap()).collect();
    plugins.sort_unstable();
    assert_eq!(plugins, vec!["compliance-limits", "confidence-gate"]);
    for row in &rows {
        assert_eq!(row["evaluations"], 40, "{row}");
        assert_eq!(row["faults"], 0, "{row}");
        for measure in ["wall_us", "fuel", "memory_kib"] {
            let value = |p: &str| row[measure][p].as_f64().unwrap();
            assert!(value("p50") > 0.0, "{row}");
            assert!(value("p50") <= value("p90"), "{row}");
            assert!(value("p90") <= value("p99"), "{row}");
            assert!(value("p99") <= value("max"), "{row}");
        }
    }

    // By default the plugins' own fixtures are the items; the table says so.
    let out = handoff(&["bench", path(dir.path()), "--count", "20"], "");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(table.contains("wall µs p50/p90/p99/max"), "{table}");
    assert!(table.contains("confidence-gate"), "{table}");

    // A bad input line is named.
    let input = dir.path().join("items.jsonl");
    std::fs::write(&input, "{\"id\": \"x\"}\n").unwrap();
    let out = handoff(&["bench", path(dir.path()), "--input", path(&input)], "");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("items.jsonl line 1"), "{said}");
}

#[test]
fn a_side_file_of_cases_runs_with_the_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    write_reference_policies(dir.path());
    let cases = dir.path().join("confidence-gate.cases.jsonl");
    std::fs::write(
        &cases,
        concat!(
            r#"{"name": "0.55 goes to an operator", "expect": "operator", "expect-reason-code": "confidence.low", "item": {"kind": "reply", "confidence": 0.55}}"#,
            "\n\n",
            r#"{"name": "0.99 claimed to escalate", "expect": "executive", "item": {"kind": "reply", "confidence": 0.99}}"#,
            "\n",
        ),
    )
    .unwrap();
    let (code, text) = test(&[path(dir.path())]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("with the cases of confidence-gate.cases.jsonl"),
        "{text}"
    );
    assert!(text.contains("  PASS  0.55 goes to an operator"), "{text}");
    assert!(
        text.contains("  FAIL  0.99 claimed to escalate: expected executive"),
        "{text}"
    );
    // The manifest's own fixtures still ran, and a load ignores the file.
    assert!(
        text.contains("  PASS  low confidence goes to an operator"),
        "{text}"
    );
    let set = handoff_policy::PolicySet::load_dir(runtime(), dir.path(), 1).unwrap();
    assert!(set.rejected().is_empty(), "{:?}", set.rejected());

    // A malformed case is named by its line, and fails the gate.
    std::fs::write(&cases, "{\"name\": \"x\", \"expect\": \"operator\"}\n").unwrap();
    let (code, text) = test(&[path(dir.path())]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("confidence-gate.cases.jsonl"), "{text}");
    assert!(text.contains("line 1: missing field `item`"), "{text}");
}
