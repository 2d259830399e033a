//! Every human action and SLA clock action on a handoff reaches the
//! hash-chained audit log, exactly once and in store order: through the
//! live server, after changes made by `handoff queue` while no host ran,
//! and across a `kill -9`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::serve::{Server, audit_verify, item};

fn records(data: &Path) -> Vec<Value> {
    crate::serve_trust::audit_records(&data.join("audit"))
}

fn handoff_events(data: &Path) -> Vec<Value> {
    records(data)
        .into_iter()
        .filter(|r| r["type"] == "handoff")
        .map(|r| r["event"].clone())
        .collect()
}

/// The store's own event positions.
fn store_events(data: &Path) -> Vec<i64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use handoff_dispatch::HandoffStore;
        let store = handoff_dispatch::SqliteStore::open(data).await.unwrap();
        let events = store.events(None).await.unwrap();
        store.close().await;
        events.iter().map(|e| e.seq).collect()
    })
}

fn refund(server: &Server, id: &str) -> String {
    let (status, decided) = server.post(
        "/v1/evaluate",
        None,
        &item(id, "refund", 0.9, Some(125_000)),
    );
    assert_eq!(status, 200, "{decided}");
    decided["handoff_id"].as_str().unwrap().to_string()
}

#[test]
fn every_human_action_is_in_the_audit_chain() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let id = refund(&server, "h-1");
    let claim = json!({"role": "finance-operator", "worker": "alice"});
    assert_eq!(server.post("/v1/queue/claim", None, &claim).0, 200);
    let alice = json!({"worker": "alice"});
    assert_eq!(
        server
            .post(&format!("/v1/handoffs/{id}/ack"), None, &alice)
            .0,
        200
    );
    assert_eq!(
        server
            .post(&format!("/v1/handoffs/{id}/release"), None, &alice)
            .0,
        200
    );
    let claim = json!({"role": "finance-operator", "worker": "bob"});
    assert_eq!(server.post("/v1/queue/claim", None, &claim).0, 200);
    let (status, resolved) = server.post(
        &format!("/v1/handoffs/{id}/resolve"),
        None,
        &json!({"worker": "bob", "outcome": "corrected", "correction": "refund 500.00 USD",
                "note": "capped at the limit", "warranted": true}),
    );
    assert_eq!(status, 200, "{resolved}");
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");

    let events = handoff_events(&data);
    let story: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("enqueued", None),
        ("claimed", Some("alice")),
        ("acknowledged", Some("alice")),
        ("released", Some("alice")),
        ("claimed", Some("bob")),
        ("resolved", Some("bob")),
    ];
    assert_eq!(story.len(), expected.len(), "{story:?}");
    for ((kind, actor), (want_kind, want_actor)) in story.iter().zip(expected) {
        assert_eq!(kind, want_kind, "{story:?}");
        if let Some(want_actor) = want_actor {
            assert_eq!(actor, want_actor, "{story:?}");
        }
    }
    for event in &events {
        assert_eq!(event["item"], "h-1");
        assert_eq!(event["handoff"], id.as_str());
    }
    let resolution = &events[5]["detail"];
    assert!(
        resolution.to_string().contains("refund 500.00 USD")
            && resolution.to_string().contains("capped at the limit"),
        "the resolution's fields are recorded: {resolution}"
    );
    let positions: Vec<i64> = events
        .iter()
        .map(|e| e["store_seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        positions,
        store_events(&data),
        "exactly the store's events, in order"
    );
    let (intact, said) = audit_verify(&data);
    assert!(intact, "{said}");

    // The whole story of the work, from the audit log alone.
    let shown = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["audit", "show", "--item", "h-1", "--table"])
        .arg(data.join("audit"))
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert_eq!(
        shown.lines().filter(|l| l.contains(" decision ")).count(),
        1,
        "{shown}"
    );
    assert_eq!(
        shown.lines().filter(|l| l.contains(" handoff ")).count(),
        6,
        "{shown}"
    );

    // A tampered human action is a break in the chain.
    let file = handoff_audit::log_files(&data.join("audit")).unwrap()[0].clone();
    let text = std::fs::read_to_string(&file).unwrap();
    let forged = text.replacen("\"actor\":\"bob\"", "\"actor\":\"alice\"", 1);
    assert_ne!(forged, text);
    std::fs::write(&file, forged).unwrap();
    let (intact, said) = audit_verify(&data);
    assert!(!intact && said.contains("edited"), "{said}");
}

#[test]
fn changes_made_while_no_host_ran_are_recorded_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    refund(&server, "q-1");
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    assert_eq!(handoff_events(&data).len(), 1, "the enqueue");

    let claimed = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args([
            "queue",
            "claim",
            "--role",
            "finance-operator",
            "--worker",
            "carol",
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        claimed.status.success(),
        "{}",
        String::from_utf8_lossy(&claimed.stderr)
    );
    assert_eq!(
        handoff_events(&data).len(),
        1,
        "no host has recorded it yet"
    );

    let server = Server::start(&data, &[]);
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    let events = handoff_events(&data);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1]["kind"], "claimed");
    assert_eq!(events[1]["actor"], "carol");
    let positions: Vec<i64> = events
        .iter()
        .map(|e| e["store_seq"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, store_events(&data));
}

#[test]
fn a_kill_9_neither_loses_nor_repeats_a_handoff_event() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]);
    for n in 0..15 {
        let id = refund(&server, &format!("k-{n}"));
        let claim = json!({"role": "finance-operator", "worker": "dana"});
        let (status, claimed) = server.post("/v1/queue/claim", None, &claim);
        assert_eq!(status, 200, "claim {n}: {claimed}\n{}", server.stderr());
        let (status, resolved) = server.post(
            &format!("/v1/handoffs/{id}/resolve"),
            None,
            &json!({"worker": "dana", "outcome": "approved", "warranted": true}),
        );
        assert_eq!(status, 200, "resolve {n}: {resolved}\n{}", server.stderr());
    }
    server.kill();
    let server = Server::start(&data, &[]);
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");

    let positions: Vec<i64> = handoff_events(&data)
        .iter()
        .map(|e| e["store_seq"].as_i64().unwrap())
        .collect();
    let distinct: BTreeSet<i64> = positions.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        positions.len(),
        "no event is recorded twice"
    );
    assert_eq!(
        positions,
        store_events(&data),
        "every event is recorded, in order"
    );
    assert_eq!(positions.len(), 45);
    let (intact, said) = audit_verify(&data);
    assert!(intact, "{said}");
}

#[test]
fn an_exhausted_self_correction_is_recorded_at_operator_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    // Each attempt is a corrected resubmission: other content, same work.
    let attempt_of = |n: u32| {
        let mut unsure = item("sc-1", "reply", 0.70, None);
        unsure["text"] = json!(format!("Customer asks about order 4411 (attempt {n})"));
        unsure
    };
    for attempt in 1..=3 {
        let (status, decided) = server.post("/v1/evaluate", None, &attempt_of(attempt));
        assert_eq!(status, 200, "{decided}");
        assert_eq!(decided["tier"], "self-correct", "attempt {attempt}");
        assert_eq!(decided["dispatch"]["attempt"], attempt);
    }
    let (status, decided) = server.post("/v1/evaluate", None, &attempt_of(4));
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["tier"], "operator", "{decided}");
    assert_eq!(decided["reason_code"], "self-correct.exhausted");
    assert_eq!(decided["dispatch"]["action"], "handoff");
    let id = decided["handoff_id"].as_str().unwrap().to_string();
    let (_, handoff) = server.get(&format!("/v1/handoffs/{id}"), None);
    assert_eq!(handoff["tier"], "operator");
    assert_eq!(handoff["reason_code"], "self-correct.exhausted");
    assert_eq!(handoff["payload"]["decision"]["tier"], "operator");
    // The operator sees every attempt: what the agent sent and was told.
    let history = handoff["payload"]["history"].as_array().unwrap();
    assert_eq!(history.len(), 4, "{history:?}");
    for (n, attempt) in history.iter().enumerate() {
        assert_eq!(attempt["attempt"], n + 1);
        assert!(
            attempt["text"]
                .as_str()
                .unwrap()
                .ends_with(&format!("(attempt {})", n + 1)),
            "{attempt}"
        );
    }
    assert!(
        history[..3]
            .iter()
            .all(|a| a["tier"] == "self-correct" && a["guidance"].is_string())
    );
    assert_eq!(history[3]["tier"], "operator");
    assert_eq!(history[3]["reason_code"], "self-correct.exhausted");
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");

    let decisions: Vec<Value> = records(&data)
        .into_iter()
        .filter(|r| r["type"] == "decision")
        .collect();
    assert_eq!(decisions.len(), 4);
    assert_eq!(decisions[3]["decision"]["tier"], "operator");
    assert_eq!(
        decisions[3]["decision"]["reason_code"],
        "self-correct.exhausted"
    );
    let stored = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use handoff_dispatch::HandoffStore;
            let store = handoff_dispatch::SqliteStore::open(&data).await.unwrap();
            let rows = store.decisions().await.unwrap();
            store.close().await;
            rows
        });
    let last = stored.last().unwrap();
    assert_eq!(
        (last.tier, last.reason_code.as_str()),
        (handoff_model::Tier::Operator, "self-correct.exhausted")
    );
}

#[test]
fn the_same_submission_five_times_at_once_makes_one_handoff() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = std::sync::Arc::new(Server::start(&data, &[]));
    let refund = item("dup-1", "refund", 0.9, Some(125_000));
    let answers: Vec<Value> = (0..5)
        .map(|_| {
            let server = server.clone();
            let refund = refund.clone();
            std::thread::spawn(move || server.post("/v1/evaluate", None, &refund))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| {
            let (status, answer) = t.join().unwrap();
            assert_eq!(status, 200, "{answer}");
            answer
        })
        .collect();
    let ids: BTreeSet<&str> = answers
        .iter()
        .map(|a| a["handoff_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one handoff for one piece of work: {ids:?}");
    assert_eq!(
        answers.iter().filter(|a| a["replayed"] == true).count(),
        4,
        "the first decided, the rest were given its answer"
    );
    let (_, queue) = server.get("/v1/queue?item=dup-1", None);
    assert_eq!(queue.as_array().unwrap().len(), 1, "{queue}");

    // A retry after a timeout, later: the same answer again.
    let (_, again) = server.post("/v1/evaluate", None, &refund);
    assert_eq!(again["handoff_id"], answers[0]["handoff_id"]);
    assert_eq!(again["replayed"], true);
    // The same work with other content is a new attempt at it: a new
    // decision and handoff, which carries the first as a prior one.
    let mut changed = refund.clone();
    changed["text"] = json!("Customer asks about order 4411, now with a receipt");
    let (_, retried) = server.post("/v1/evaluate", None, &changed);
    assert_eq!(retried["replayed"], false);
    let second = retried["handoff_id"].as_str().unwrap();
    assert!(!ids.contains(second));
    let (_, handoff) = server.get(&format!("/v1/handoffs/{second}"), None);
    assert_eq!(
        handoff["payload"]["prior_handoffs"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{handoff}"
    );
    assert_eq!(handoff["payload"]["prior_handoffs"][0]["state"], "queued");
    // The prior handoff is shown as it is now, not as it was.
    let first = answers[0]["handoff_id"].as_str().unwrap();
    let (_, claimed) = server.post(
        "/v1/queue/claim",
        None,
        &json!({"role": "finance-operator", "worker": "erin"}),
    );
    assert_eq!(
        claimed["handoff"]["id"], first,
        "the earliest deadline first"
    );
    let (status, _) = server.post(
        &format!("/v1/handoffs/{first}/resolve"),
        None,
        &json!({"worker": "erin", "outcome": "rejected", "note": "duplicate", "warranted": true}),
    );
    assert_eq!(status, 200);
    let (_, handoff) = server.get(&format!("/v1/handoffs/{second}"), None);
    let prior = &handoff["payload"]["prior_handoffs"][0];
    assert_eq!(prior["state"], "resolved", "{prior}");
    assert_eq!(prior["resolution"]["outcome"], "rejected", "{prior}");

    let server = std::sync::Arc::try_unwrap(server).ok().unwrap();
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    let decided: Vec<Value> = records(&data)
        .into_iter()
        .filter(|r| r["type"] == "decision")
        .collect();
    assert_eq!(decided.len(), 2, "recorded once per distinct submission");
    let enqueued = handoff_events(&data)
        .iter()
        .filter(|e| e["kind"] == "enqueued")
        .count();
    assert_eq!(enqueued, 2);
}
