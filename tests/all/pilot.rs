//! Piloting policies on live traffic: shadow versions beside the enforcing
//! set on a real `handoff serve`, the pilot report, promotion and rollback
//! under load, and calibration proposals that need a second person.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use serde_json::{Value, json};

use super::common::{examples_dir, handoff, write_reference_policies};
use super::serve::{AGENT, COMPLIANCE, OPERATOR, Server, config_with_tokens, item};
use handoff_test_fixtures::HOSTILE;

/// Runs `handoff` against a server with `token` in $HANDOFF_TOKEN.
fn remote(args: &[&str], token: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(args)
        .env("HANDOFF_TOKEN", token)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("handoff runs")
}

/// The hostile test plugin installed as shadow version `name`, misbehaving
/// in `mode`.
fn hostile_shadow(policies: &Path, name: &str, mode: &str) {
    fs::write(policies.join(format!("{name}.wasm")), HOSTILE).unwrap();
    fs::write(
        policies.join(format!("{name}.toml")),
        format!("mode = \"shadow\"\npolicy = \"hostile\"\n[config]\nmode = \"{mode}\"\n"),
    )
    .unwrap();
}

/// A data directory under `dir` whose policy directory holds the reference
/// policies: `(data, policies)`.
fn reference_data(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    let policies = data.join("policies");
    fs::create_dir_all(&policies).unwrap();
    write_reference_policies(&policies);
    (data, policies)
}

/// Every record of the audit log under `data`, in order.
fn audit_records(data: &Path) -> Vec<Value> {
    let mut files: Vec<PathBuf> = fs::read_dir(data.join("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|file| {
            fs::read_to_string(file)
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str::<Value>(line).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn lifecycle<'a>(records: &'a [Value], event: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    records
        .iter()
        .filter(move |r| r["type"] == "lifecycle" && r["event"]["event"] == event)
        .map(|r| &r["event"])
}

fn sample_items() -> Vec<Value> {
    let text = fs::read_to_string(examples_dir().join("sample.jsonl")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn level(tier: &str) -> usize {
    ["none", "self-correct", "operator", "executive"]
        .iter()
        .position(|t| *t == tier)
        .unwrap_or_else(|| panic!("no tier {tier}"))
}

#[test]
fn shadows_never_decide_are_recorded_everywhere_and_the_pilot_counts_them_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (data, policies) = reference_data(dir.path());
    // The same items through the reference policies alone: what every
    // tier must stay.
    let items = sample_items();
    let lines: String = items.iter().map(|i| format!("{i}\n")).collect();
    let baseline = handoff(&["eval", "--no-cache"], &lines);
    assert!(baseline.status.success(), "{baseline:?}");
    let baseline: Vec<Value> = String::from_utf8_lossy(&baseline.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(baseline.len(), items.len());

    hostile_shadow(&policies, "confidence-gate@escalate", "escalate");
    hostile_shadow(&policies, "compliance-limits@trap", "panic");
    let config = config_with_tokens(dir.path(), "");
    let server = Server::start(&data, &["--config", config.to_str().unwrap()]);

    let mut expected = [[0u64; 4]; 4];
    for (item, before) in items.iter().zip(&baseline) {
        let (status, decided) = server.post("/v1/evaluate", Some(AGENT), item);
        assert_eq!(status, 200, "{decided}");
        // Neither the shadow that escalates everything nor the one that
        // traps changed anything the enforcing set decided.
        for field in ["tier", "reason_code", "driver", "verdicts"] {
            assert_eq!(decided[field], before[field], "{field} of {}", item["id"]);
        }
        let shadow = decided["shadow"].as_array().expect("shadow verdicts");
        let names: Vec<&str> = shadow
            .iter()
            .map(|v| v["plugin"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["compliance-limits@trap", "confidence-gate@escalate"]
        );
        assert_eq!(shadow[1]["verdict"]["tier"], "operator");
        assert!(shadow[1]["fault"].is_null());
        assert_eq!(shadow[0]["fault"]["kind"], "panic", "{}", shadow[0]);
        let metered: Vec<&str> = decided["metering"]["shadow"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["plugin"].as_str().unwrap())
            .collect();
        assert_eq!(metered, names, "metered apart");
        // As if promoted: the escalating shadow in confidence-gate's place.
        let others = decided["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["plugin"] != "confidence-gate")
            .filter_map(|v| v["verdict"]["tier"].as_str())
            .map(level)
            .max()
            .unwrap_or(0);
        let recorded = decided["tier"].as_str().unwrap();
        expected[level(recorded)][others.max(2)] += 1;
    }

    // Every decision record holds both shadows' verdicts; every trap is a
    // fault record of its own.
    let records = audit_records(&data);
    let decisions: Vec<&Value> = records.iter().filter(|r| r["type"] == "decision").collect();
    assert_eq!(decisions.len(), items.len());
    for record in &decisions {
        assert_eq!(record["decision"]["shadow"].as_array().unwrap().len(), 2);
    }
    let trapped = lifecycle(&records, "fault")
        .filter(|e| e["plugin"] == "compliance-limits@trap")
        .count();
    assert_eq!(trapped, items.len());

    let (status, report) = server.get("/v1/pilot", Some(COMPLIANCE));
    assert_eq!(status, 200, "{report}");
    let shadows = report["shadows"].as_array().unwrap();
    let escalate = shadows
        .iter()
        .find(|s| s["shadow"] == "confidence-gate@escalate")
        .unwrap();
    assert_eq!(escalate["pilots"], "confidence-gate");
    assert_eq!(escalate["decisions"], items.len() as u64);
    assert_eq!(escalate["matrix"], json!(expected));
    assert_eq!(escalate["faults"], 0);
    // Every item below operator would change tier; some at operator only
    // change reason (the shadow takes the lead in the gate's place).
    let would_change: u64 = (0..2).map(|i| expected[i][2]).sum();
    let changed = escalate["changed"].as_array().unwrap();
    let tier_changed = changed
        .iter()
        .filter(|c| c["enforced_tier"] != c["shadow_tier"])
        .count() as u64;
    assert_eq!(tier_changed, would_change);
    assert!(would_change > 0);
    for change in changed {
        assert_eq!(change["shadow_reason_code"], "hostile.route");
        assert!(
            change["enforced_reason"]
                .as_str()
                .is_some_and(|r| !r.is_empty())
        );
    }
    assert!(
        escalate["handoffs_per_day"]["shadow"].as_f64().unwrap()
            > escalate["handoffs_per_day"]["enforced"].as_f64().unwrap()
    );
    assert!(escalate["latency_us"]["p99"].as_f64().unwrap() > 0.0);
    let trap = shadows
        .iter()
        .find(|s| s["shadow"] == "compliance-limits@trap")
        .unwrap();
    assert_eq!(trap["faults"], items.len() as u64);
    assert_eq!(trap["fault_rate"], 1.0);
    assert_eq!(trap["fault_kinds"]["panic"], items.len() as u64);

    // The gate, over the API and on the command line.
    let (status, gated) = server.get("/v1/pilot?fail_on=fault-rate=0.5", Some(COMPLIANCE));
    assert_eq!(status, 200);
    let breaches = gated["breaches"].as_array().unwrap();
    assert_eq!(breaches.len(), 1, "{breaches:?}");
    assert!(
        breaches[0]
            .as_str()
            .unwrap()
            .contains("compliance-limits@trap")
    );
    let (status, bad) = server.get("/v1/pilot?fail_on=faults=1", Some(COMPLIANCE));
    assert_eq!(status, 400, "{bad}");
    assert!(
        bad["error"]["message"].as_str().unwrap().contains("faults"),
        "{bad}"
    );
    let audit = data.join("audit");
    let audit = audit.to_str().unwrap();
    let failed = handoff(
        &["pilot", "--audit", audit, "--fail-on", "fault-rate=0.5"],
        "",
    );
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    assert!(String::from_utf8_lossy(&failed.stderr).contains("fault-rate"));
    let passed = handoff(
        &[
            "pilot",
            "--audit",
            audit,
            "--shadow",
            "confidence-gate@escalate",
            "--fail-on",
            "fault-rate=0.5",
            "--fail-on",
            &format!("min-decisions={}", items.len()),
        ],
        "",
    );
    assert_eq!(passed.status.code(), Some(0), "{passed:?}");
    let text = String::from_utf8_lossy(&passed.stdout);
    assert!(
        text.contains("confidence-gate@escalate (pilots confidence-gate)"),
        "{text}"
    );
    assert!(text.lines().count() > 10, "one figure per line: {text}");
    assert!(
        text.contains("\nself-correct "),
        "the matrix has a row per tier: {text}"
    );
    assert!(!text.contains("compliance-limits@trap"), "{text}");

    // A pilot version that would enforce is refused with the reason.
    fs::write(policies.join("pii-guard@bad.wasm"), HOSTILE).unwrap();
    fs::write(
        policies.join("pii-guard@bad.toml"),
        "policy = \"hostile\"\n[config]\nmode = \"escalate\"\n",
    )
    .unwrap();
    server.wait_stderr("pii-guard@bad.toml");
    assert!(
        server.stderr().contains("must run in shadow"),
        "{}",
        server.stderr()
    );
}

/// The reference confidence gate as shadow `confidence-gate@candidate`,
/// escalating below `threshold` instead of 0.60.
fn candidate_gate(policies: &Path, threshold: &str) {
    let manifest = fs::read_to_string(policies.join("confidence-gate.toml")).unwrap();
    assert!(manifest.contains("escalate-below = 0.60"));
    fs::copy(
        policies.join("confidence-gate.wasm"),
        policies.join("confidence-gate@candidate.wasm"),
    )
    .unwrap();
    fs::write(
        policies.join("confidence-gate@candidate.toml"),
        format!(
            "mode = \"shadow\"\n{}",
            manifest.replace(
                "escalate-below = 0.60",
                &format!("escalate-below = {threshold}")
            )
        ),
    )
    .unwrap();
}

#[test]
fn promotion_and_rollback_are_atomic_under_load_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (data, policies) = reference_data(dir.path());
    candidate_gate(&policies, "0.70");
    let config = config_with_tokens(dir.path(), "");
    let server = Arc::new(Server::start(
        &data,
        &["--config", config.to_str().unwrap()],
    ));
    // 0.65: proceeds under 0.60 (self-corrects, in the band below 0.75),
    // escalates under the candidate's 0.70.
    let probe = |id: &str| {
        let (status, decided) =
            server.post("/v1/evaluate", Some(AGENT), &item(id, "reply", 0.65, None));
        assert_eq!(status, 200, "{decided}");
        decided
    };
    let before = probe("probe-0");
    assert_eq!(before["tier"], "self-correct");
    assert_eq!(before["shadow"][0]["verdict"]["tier"], "operator");

    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..2)
        .map(|worker| {
            let (server, stop) = (server.clone(), stop.clone());
            thread::spawn(move || {
                let mut generations = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) || n < 20 {
                    let body = item(&format!("load-{worker}-{n}"), "reply", 0.95, None);
                    let (status, decided) = server.post("/v1/evaluate", Some(AGENT), &body);
                    assert_eq!(
                        status, 200,
                        "request {n} of worker {worker} failed: {decided}"
                    );
                    generations.push(decided["generation"].as_u64().unwrap());
                    n += 1;
                }
                generations
            })
        })
        .collect();

    let (status, promoted) = server.post(
        "/v1/policies/confidence-gate@candidate/promote",
        Some(OPERATOR),
        &json!({}),
    );
    assert_eq!(status, 200, "{promoted}");
    let first = promoted["generation"].as_u64().unwrap();
    assert_eq!(promoted["plugin"], "confidence-gate");
    let after = probe("probe-1");
    assert_eq!(after["tier"], "operator", "the candidate enforces: {after}");
    assert_eq!(after["generation"].as_u64().unwrap(), first);
    // The replaced version runs on in shadow, under the candidate's name.
    assert_eq!(after["shadow"][0]["plugin"], "confidence-gate@candidate");
    assert_eq!(after["shadow"][0]["verdict"]["tier"], "self-correct");
    let enforcing = fs::read_to_string(policies.join("confidence-gate.toml")).unwrap();
    assert!(
        enforcing.contains("escalate-below = 0.70") && enforcing.contains("mode = \"enforce\"")
    );
    assert!(
        enforcing.contains("# Agent confidence below this"),
        "comments kept"
    );

    // Rollback is the same command again, here from the command line.
    let rolled_back = remote(
        &[
            "promote",
            "confidence-gate@candidate",
            "--server",
            server.base(),
        ],
        OPERATOR,
    );
    assert!(rolled_back.status.success(), "{rolled_back:?}");
    let rolled_back: Value = serde_json::from_slice(&rolled_back.stdout).unwrap();
    assert!(rolled_back["generation"].as_u64().unwrap() > first);
    assert_eq!(probe("probe-2")["tier"], "self-correct");

    stop.store(true, Ordering::Relaxed);
    for worker in load {
        let generations = worker.join().expect("no request failed");
        assert!(
            generations.windows(2).all(|w| w[0] <= w[1]),
            "generations went back: {generations:?}"
        );
    }

    // Not a shadow, or not there: refused, nothing changed.
    let (status, refused) = server.post(
        "/v1/policies/confidence-gate/promote",
        Some(OPERATOR),
        &json!({}),
    );
    assert_eq!(status, 409, "{refused}");
    let (status, _) = server.post(
        "/v1/policies/pii-guard@nothing/promote",
        Some(OPERATOR),
        &json!({}),
    );
    assert_eq!(status, 404);
    let (status, _) = server.post(
        "/v1/policies/confidence-gate@candidate/promote",
        Some(AGENT),
        &json!({}),
    );
    assert_eq!(status, 403);

    let records = audit_records(&data);
    let promotions: Vec<&Value> = lifecycle(&records, "promoted").collect();
    assert_eq!(promotions.len(), 2, "{promotions:?}");
    for promotion in &promotions {
        assert!(
            promotion["by"]
                .as_str()
                .unwrap()
                .starts_with("operator-token-")
        );
        assert_eq!(promotion["shadow"], "confidence-gate@candidate");
    }
    assert_ne!(promotions[0]["digest"], Value::Null);
}

#[test]
fn a_threshold_changes_only_when_a_second_person_approves() {
    use sha2::Digest;
    let hex = |token: &str| hex::encode(sha2::Sha256::digest(token.as_bytes()));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("serve.toml");
    fs::write(
        &config,
        format!(
            "[[principals]]\nname = \"bot\"\nroles = [\"agent\"]\ntoken-sha256 = [\"{}\"]\n\
             [[principals]]\nname = \"ana\"\nroles = [\"operator\", \"approver\"]\ntoken-sha256 = [\"{}\"]\n\
             [[principals]]\nname = \"ben\"\nroles = [\"approver\"]\ntoken-sha256 = [\"{}\"]\n",
            hex("bot-token"),
            hex("ana-token"),
            hex("ben-token"),
        ),
    )
    .unwrap();
    let server = Server::start(&data, &["--config", config.to_str().unwrap()]);
    // Items the confidence gate escalates, each resolved as right.
    let escalate_and_approve = |confidences: &[f64], prefix: &str| {
        for (i, confidence) in confidences.iter().enumerate() {
            let (status, decided) = server.post(
                "/v1/evaluate",
                Some("bot-token"),
                &item(&format!("{prefix}-{i}"), "reply", *confidence, None),
            );
            assert_eq!(status, 200, "{decided}");
            assert_eq!(decided["reason_code"], "confidence.low", "{decided}");
            let (status, claimed) = server.post(
                "/v1/queue/claim",
                Some("ana-token"),
                &json!({"role": "support-operator"}),
            );
            assert_eq!(status, 200, "{claimed}");
            let id = claimed["handoff"]["id"].as_str().unwrap();
            let (status, resolved) = server.post(
                &format!("/v1/handoffs/{id}/resolve"),
                Some("ana-token"),
                &json!({"outcome": "approved", "warranted": false}),
            );
            assert_eq!(status, 200, "{resolved}");
        }
    };
    // At or above 0.45 first: the gate's own fixture pins 0.40 as
    // escalated, so a threshold of 0.40 would fail it (below).
    let confidences: Vec<f64> = (0..10).map(|i| 0.45 + 0.01 * f64::from(i)).collect();
    escalate_and_approve(&confidences, "low");
    // α = δ = 0.2 needs 8 items at or above a threshold (ln 0.2 / ln 0.8 =
    // 7.2), so the walk starts at the third lowest confidence; with no
    // errors it passes all the way down to the lowest, where all 10 are at
    // or above and the bound is 1 - 0.2^(1/10) = 0.1487 < 0.2.
    let (status, proposed) = server.post(
        "/v1/calibration/proposals",
        Some("ana-token"),
        &json!({"plugin": "confidence-gate", "trigger": "confidence",
                "target-error": 0.2, "delta": 0.2}),
    );
    assert_eq!(status, 201, "{proposed}");
    let expected = confidences[0];
    assert!(
        (proposed["to"].as_f64().unwrap() - expected).abs() < 1e-9,
        "{proposed}"
    );
    assert_eq!(proposed["from"], 0.6);
    assert_eq!(proposed["evidence"]["n"], 10);
    assert_eq!(proposed["evidence"]["errors"], 0);
    let bound = 1.0 - 0.2f64.powf(1.0 / 10.0);
    assert!((proposed["evidence"]["upper_bound"].as_f64().unwrap() - bound).abs() < 1e-9);
    assert_eq!(proposed["steps"].as_array().unwrap().len(), 3, "{proposed}");
    assert_eq!(proposed["proposed_by"], "ana");
    let id = proposed["proposal"].as_str().unwrap().to_string();

    // Nothing changed yet; the proposer cannot approve; an operator cannot.
    let manifest = || fs::read_to_string(data.join("policies/confidence-gate.toml")).unwrap();
    assert!(manifest().contains("escalate-below = 0.60"));
    let approve = format!("/v1/calibration/proposals/{id}/approve");
    let (status, refused) = server.post(&approve, Some("ana-token"), &json!({}));
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "same-person", "{refused}");
    assert!(manifest().contains("escalate-below = 0.60"));
    let (status, _) = server.post(&approve, Some("bot-token"), &json!({}));
    assert_eq!(status, 403);

    let refused = remote(
        &["calibrate", "approve", &id, "--server", server.base()],
        "ana-token",
    );
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot also approve"));
    let approved = remote(
        &["calibrate", "approve", &id, "--server", server.base()],
        "ben-token",
    );
    assert!(approved.status.success(), "{approved:?}");
    let approved: Value = serde_json::from_slice(&approved.stdout).unwrap();
    assert_eq!(approved["approved_by"], "ben");
    let generation = approved["generation"].as_u64().unwrap();
    assert!(
        manifest().contains(&format!("escalate-below = {expected}")),
        "{}",
        manifest()
    );
    // Live through the reload: 0.5 was escalated, now it is not.
    let (_, decided) = server.post(
        "/v1/evaluate",
        Some("bot-token"),
        &item("after", "reply", 0.5, None),
    );
    assert_eq!(decided["generation"].as_u64().unwrap(), generation);
    assert_ne!(decided["reason_code"], "confidence.low", "{decided}");
    let (status, again) = server.post(&approve, Some("ben-token"), &json!({}));
    assert_eq!(status, 409, "{again}");
    let (status, listed) = server.get("/v1/calibration/proposals", Some("ben-token"));
    assert_eq!(status, 200);
    assert_eq!(listed[0]["approved_by"], "ben");

    let records = audit_records(&data);
    let proposed: Vec<&Value> = lifecycle(&records, "calibration-proposed").collect();
    assert_eq!(proposed.len(), 1);
    assert_eq!(proposed[0]["by"], "ana");
    let approved: Vec<&Value> = lifecycle(&records, "calibration-approved").collect();
    assert_eq!(approved.len(), 1);
    assert_eq!(
        (&approved[0]["proposed_by"], &approved[0]["approved_by"]),
        (&json!("ana"), &json!("ben"))
    );
    assert_eq!(approved[0]["generation"].as_u64().unwrap(), generation);
    assert!(lifecycle(&records, "swapped").any(|e| e["plugin"] == "confidence-gate"));

    // Evidence down to 0.40 now proposes 0.40, which the gate's fixture
    // refuses: the approval fails with the reason, the serving version and
    // its files stay, and the proposal stays open.
    escalate_and_approve(&[0.40, 0.41, 0.42, 0.43, 0.44], "lower");
    let (status, proposed) = server.post(
        "/v1/calibration/proposals",
        Some("ana-token"),
        &json!({"plugin": "confidence-gate", "trigger": "confidence",
                "target-error": 0.2, "delta": 0.2}),
    );
    assert_eq!(status, 201, "{proposed}");
    assert_eq!(
        (&proposed["from"], &proposed["to"]),
        (&json!(expected), &json!(0.4))
    );
    let id = proposed["proposal"].as_str().unwrap();
    let (status, refused) = server.post(
        &format!("/v1/calibration/proposals/{id}/approve"),
        Some("ben-token"),
        &json!({}),
    );
    assert_eq!(status, 422, "{refused}");
    let reason = refused["error"]["message"].as_str().unwrap();
    assert!(
        reason.contains("low confidence goes to an operator"),
        "{reason}"
    );
    assert!(manifest().contains(&format!("escalate-below = {expected}")));
    let (_, listed) = server.get("/v1/calibration/proposals", Some("ben-token"));
    assert!(listed[1]["approved_by"].is_null(), "{listed}");
    let records = audit_records(&data);
    assert!(
        lifecycle(&records, "rejected")
            .any(|e| e["plugin"] == "confidence-gate" && e["still_serving"].is_string()),
        "the refused approval is audited"
    );
    let (_, decided) = server.post(
        "/v1/evaluate",
        Some("bot-token"),
        &item("still", "reply", 0.42, None),
    );
    assert_eq!(
        decided["generation"].as_u64().unwrap(),
        generation,
        "{decided}"
    );
}
