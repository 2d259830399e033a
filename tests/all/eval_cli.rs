//! The `handoff` binary as a user runs it.

use crate::common::*;
use serde_json::Value;

fn decisions(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("every stdout line is a decision"))
        .collect()
}

fn sample() -> String {
    std::fs::read_to_string(examples_dir().join("sample.jsonl")).unwrap()
}

#[test]
fn evaluates_the_sample_with_the_embedded_policies() {
    let sample_path = examples_dir().join("sample.jsonl");
    let out = handoff(&["eval", "--input", sample_path.to_str().unwrap()], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let lines = sample().lines().filter(|l| !l.trim().is_empty()).count();
    assert!(lines >= 30, "the sample has at least 30 items");
    let decisions = decisions(&out.stdout);
    assert_eq!(decisions.len(), lines);
    for tier in ["none", "self-correct", "operator", "executive"] {
        assert!(
            decisions.iter().any(|d| d["tier"] == tier),
            "no {tier} decision in the sample"
        );
    }
    for d in &decisions {
        for field in [
            "id",
            "tier",
            "level",
            "reason_code",
            "reason",
            "driver",
            "verdicts",
            "metering",
        ] {
            assert!(d.get(field).is_some(), "decision lacks {field}: {d}");
        }
        assert_eq!(d["verdicts"].as_array().unwrap().len(), 2);
    }
    assert!(stderr.contains(&format!("{lines} decided")), "{stderr}");
    assert!(stderr.contains("0 failed"), "{stderr}");
}

#[test]
fn same_input_gives_identical_decisions_apart_from_metering() {
    let run = || {
        let out = handoff(&["eval"], &sample());
        assert!(out.status.success());
        decisions(&out.stdout)
            .into_iter()
            .map(|mut d| {
                let metering = d.as_object_mut().unwrap().remove("metering");
                assert!(metering.is_some());
                d
            })
            .collect::<Vec<_>>()
    };
    let (first, second) = (run(), run());
    assert!(!first.is_empty());
    assert_eq!(first, second);
}

#[test]
fn malformed_lines_are_reported_by_number_and_skipped() {
    let good = r#"{"id":"ok-1","kind":"reply","agent":"a","text":"hello","confidence":0.9}"#;
    let input = [
        good,
        r#"{"id":"x","kind":"reply""#, // 2: truncated
        r#"{"id":"x","kind":"reply","agent":"a","text":"t"}"#, // 3: missing confidence
        r#"{"id":"x","kind":"reply","agent":"a","text":"t","confidence":"high"}"#, // 4: wrong type
        r#"{"id":"x","kind":"reply","agent":"a","text":"t","confidence":1.2}"#, // 5: out of range
        r#"{"id":"x","kind":"reply","agent":"a","text":"t","confidence":0.5,"colour":1}"#, // 6: unknown field
        "",                            // 7: blank, skipped
        "[1,2,3]",                     // 8: not an object
        &good.replace("ok-1", "ok-2"), // 9
    ]
    .join("\n");
    let out = handoff(&["eval"], &input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let ids: Vec<Value> = decisions(&out.stdout)
        .into_iter()
        .map(|d| d["id"].clone())
        .collect();
    assert_eq!(ids, vec!["ok-1", "ok-2"]);
    for (line, needle) in [
        (2, "EOF"),
        (3, "missing field `confidence`"),
        (4, "invalid type"),
        (5, "`confidence`"),
        (6, "unknown field `colour`"),
        (8, "invalid type"),
    ] {
        let report = stderr
            .lines()
            .find(|l| l.starts_with(&format!("handoff: line {line}:")))
            .unwrap_or_else(|| panic!("no report for line {line} in: {stderr}"));
        assert!(report.contains(needle), "line {line}: {report}");
    }
    assert!(
        !stderr.contains("line 7:"),
        "a blank line is not an error: {stderr}"
    );
    assert!(
        stderr.contains("2 decided") && stderr.contains("6 failed"),
        "{stderr}"
    );
}

#[test]
fn invalid_utf8_is_one_bad_line() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .arg("eval")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = b"\xff\xfe\n".to_vec();
    input.extend_from_slice(
        br#"{"id":"ok","kind":"reply","agent":"a","text":"t","confidence":0.9}"#,
    );
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(decisions(&out.stdout).len(), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1: not UTF-8"));
}

#[test]
fn a_policy_directory_with_a_bad_file_still_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    write_reference_policies(dir.path());
    std::fs::write(dir.path().join("junk.wasm"), b"junk").unwrap();
    let out = handoff(
        &["eval", "--policies", dir.path().to_str().unwrap()],
        &sample(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("rejected junk.wasm: not a WebAssembly file"),
        "{stderr}"
    );
    assert_eq!(decisions(&out.stdout).len(), sample().lines().count());
}

#[test]
fn no_loadable_policy_is_a_hard_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = handoff(
        &["eval", "--policies", dir.path().to_str().unwrap()],
        &sample(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no enabled policy loaded"));
}

#[test]
fn inspect_reports_world_imports_and_digest() {
    let dir = tempfile::tempdir().unwrap();
    write_reference_policies(dir.path());
    let path = dir.path().join("compliance-limits.wasm");
    let out = handoff(&["inspect", path.to_str().unwrap()], "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("handoff:policy/policy@0.2.0 (fits)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("granted  handoff:policy/host@0.2.0"),
        "{stdout}"
    );
    assert!(stdout.contains("stubbed  wasi:cli/environment"), "{stdout}");
    assert!(!stdout.contains("REFUSED"), "{stdout}");
    for export in ["metadata", "configure", "classify", "score", "escalate"] {
        assert!(stdout.contains(export), "missing export {export}: {stdout}");
    }
    let digest = handoff_policy::digest_of(&std::fs::read(&path).unwrap());
    assert!(stdout.contains(&digest), "{stdout}");

    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"junk").unwrap();
    let out = handoff(&["inspect", junk.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a WebAssembly file"));
}

#[test]
fn help_documents_every_command() {
    let out = handoff(&["--help"], "");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for command in ["eval", "inspect"] {
        assert!(help.contains(command), "{help}");
    }
    let eval_help = String::from_utf8_lossy(&handoff(&["eval", "--help"], "").stdout).to_string();
    assert!(
        eval_help.contains("--policies") && eval_help.contains("--input"),
        "{eval_help}"
    );
}

#[test]
fn stats_show_calls_and_faults_per_plugin() {
    let dir = tempfile::tempdir().unwrap();
    write_reference_policies(dir.path());
    std::fs::write(
        dir.path().join("zz-hostile.wasm"),
        handoff_test_fixtures::HOSTILE,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("zz-hostile.toml"),
        "order = 99\n[config]\nmode = \"panic\"\n",
    )
    .unwrap();
    let out = handoff(
        &[
            "eval",
            "--stats",
            "--policies",
            dir.path().to_str().unwrap(),
        ],
        &sample(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let items = sample().lines().count();
    let row = |plugin: &str| {
        stderr
            .lines()
            .find(|l| l.starts_with(plugin))
            .unwrap_or_else(|| panic!("no stats row for {plugin}: {stderr}"))
            .to_string()
    };
    assert!(
        row("zz-hostile").contains(&format!("panic {items}")),
        "{stderr}"
    );
    let healthy = row("compliance-limits");
    assert!(
        healthy.contains(&format!(" {items} ")) && healthy.ends_with(" -"),
        "{healthy}"
    );
    // Every decision carries the fault: the hostile plugin escalates each item.
    let decisions = decisions(&out.stdout);
    assert!(decisions.iter().all(|d| d["level"].as_u64() >= Some(2)));
    assert!(
        decisions
            .iter()
            .any(|d| d["reason_code"] == "plugin-fault.panic")
    );
}
