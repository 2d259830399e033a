//! A fleet: three real `handoff serve` processes on loopback sharing one
//! PostgreSQL store (a schema of the test's own), each with its own data
//! directory and audit chain.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::TwoPerson;
use crate::serve::{Server, audit_verify, item, urgent_policies};
use crate::stores::{Backend, TestStore};
use serde_json::{Value, json};
use sqlx::Connection;

/// Seconds a claim holds a handoff in the fleet: short, so that a dead
/// node's handoffs come back within the test.
const LEASE_SECS: &str = "5";

/// One node's data directory, its policies seeded with the reference
/// policies, the safety rule's acknowledge deadline cut to a second (so
/// that every node's SLA clock sees it pass), and a configuration whose
/// long polls never look at the store on their own: only a change
/// announced by the store wakes them.
fn node_dir(root: &Path, name: &str) -> PathBuf {
    let data = root.join(name);
    urgent_policies(&data, "");
    std::fs::write(
        data.join("serve.toml"),
        "poll-interval-ms = 3600000\nmax-wait-secs = 600\n",
    )
    .unwrap();
    data
}

/// A PostgreSQL store of the test's own, for the fleet to share.
fn fleet_store() -> TestStore {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(TestStore::new(Backend::Postgres))
}

fn start_node(data: &Path, store: &TestStore) -> Server {
    let config = data.join("serve.toml");
    let name = data.file_name().unwrap().to_str().unwrap();
    Server::start_with(
        data,
        &[
            "--lease-secs",
            LEASE_SECS,
            "--config",
            config.to_str().unwrap(),
            "--node",
            name,
        ],
        |command| {
            // Through the environment, as an operator would keep a
            // password out of the process list.
            command.env("HANDOFF_STORE", store.spec());
        },
    )
}

/// What `work` makes of a connection to the fleet's store.
fn on_store<T>(store: &TestStore, work: impl AsyncFnOnce(&mut sqlx::PgConnection) -> T) -> T {
    let url = store.spec();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
            let done = work(&mut db).await;
            db.close().await.unwrap();
            done
        })
}

/// Rows of one query on the fleet's store.
fn count(store: &TestStore, sql: &str) -> i64 {
    on_store(store, async |db| {
        sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
    })
}

/// Runs statements on the fleet's store.
fn execute(store: &TestStore, sql: &str) {
    on_store(store, async |db| {
        sqlx::raw_sql(sql).execute(db).await.unwrap();
    })
}

/// `handoff publish DIR` to the fleet's store: whether it succeeded, and
/// what it printed (stdout, then stderr).
fn publish(dir: &Path, store: &TestStore) -> (bool, String) {
    let dir = dir.to_str().unwrap();
    handoff(&["publish", dir, "--as", "release-bot"], store)
}

/// Runs `handoff ARGS` with `HANDOFF_STORE` naming the fleet's store:
/// whether it succeeded, and what it printed (stdout, then stderr).
fn handoff(args: &[&str], store: &TestStore) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(args)
        .env("HANDOFF_STORE", store.spec())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// A copy of `data`'s policies in which confidence-gate sends back any
/// confidence under 0.85 (its fixtures still pass): a reply at 0.8, which
/// proceeds on the reference policies, is then a self-correction, so which
/// set serves shows in a decision.
fn stricter_policies(data: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(data.join("policies")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    let manifest = to.join("confidence-gate.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("self-correct-below = 0.75"));
    std::fs::write(
        &manifest,
        text.replacen("self-correct-below = 0.75", "self-correct-below = 0.85", 1),
    )
    .unwrap();
}

/// The tier `node` gives a reply at confidence 0.8.
fn tier_of_a_fairly_sure_reply(node: &Server, id: &str) -> String {
    let (status, decided) = node.post("/v1/evaluate", None, &item(id, "reply", 0.8, None));
    assert_eq!(status, 200, "{decided}");
    decided["tier"].as_str().unwrap().to_string()
}

/// Waits until `node`'s view of the fleet satisfies `done`, and returns it.
fn wait_for_fleet(node: &Server, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, fleet) = node.get("/v1/fleet", None);
        assert_eq!(status, 200, "{fleet}");
        if done(&fleet) {
            return fleet;
        }
        assert!(Instant::now() < deadline, "{what}: {fleet}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// Claims and resolves `role`'s handoffs through `node` as `worker` until
/// the queue stays empty for `idle`, recording each claim.
fn work_the_queue(
    node: &Server,
    worker: &str,
    role: &str,
    idle: Duration,
    claims: &Mutex<Vec<(String, String)>>,
) {
    let mut empty_since = None;
    loop {
        let (status, claimed) = node.post(
            "/v1/queue/claim",
            None,
            &json!({"role": role, "worker": worker}),
        );
        assert_eq!(status, 200, "{claimed}");
        let Some(id) = claimed["handoff"]["id"].as_str() else {
            let since = *empty_since.get_or_insert_with(Instant::now);
            if since.elapsed() > idle {
                return;
            }
            thread::sleep(Duration::from_millis(100));
            continue;
        };
        empty_since = None;
        claims
            .lock()
            .unwrap()
            .push((id.to_string(), worker.to_string()));
        let (status, resolved) = node.post(
            &format!("/v1/handoffs/{id}/resolve"),
            None,
            &json!({"worker": worker, "outcome": "approved", "note": "checked", "warranted": true}),
        );
        assert_eq!(status, 200, "{worker} resolves {id}: {resolved}");
    }
}

#[test]
fn three_nodes_share_one_postgresql_store_and_lose_nothing_when_one_dies() {
    let store = fleet_store();
    let root = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .map(|name| node_dir(root.path(), name))
        .collect();
    let mut nodes: Vec<Server> = dirs.iter().map(|dir| start_node(dir, &store)).collect();
    for node in &nodes {
        assert!(
            node.stderr().contains("handoff store postgres://"),
            "each node names its store: {}",
            node.stderr()
        );
        assert!(!node.stderr().contains("handoffs.db"));
    }

    // 2,000 evaluations spread over the three nodes in batches; every
    // 20th refund is over the operator limit and goes to finance.
    let mut handoffs = BTreeSet::new();
    let mut evaluated = 0;
    for batch in 0..20 {
        let items: Vec<Value> = (0..100)
            .map(|n| {
                let i = batch * 100 + n;
                if i % 20 == 0 {
                    item(&format!("big-{i}"), "refund", 0.9, Some(125_000))
                } else {
                    item(&format!("ok-{i}"), "reply", 0.95, None)
                }
            })
            .collect();
        let node = &nodes[batch % 3];
        let (status, answers) = node.post("/v1/evaluate", None, &json!(items));
        assert_eq!(status, 200, "{answers}");
        for answer in answers["results"].as_array().unwrap() {
            evaluated += 1;
            if let Some(id) = answer["handoff_id"].as_str() {
                assert_eq!(answer["dispatch"]["role"], "finance-operator");
                assert!(handoffs.insert(id.to_string()), "{id} handed off twice");
            }
        }
    }
    assert_eq!(evaluated, 2000);
    assert_eq!(handoffs.len(), 100);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM decisions"), 2000);

    // An urgent item: every node's SLA clock sees its deadline pass.
    let mut urgent = item("urgent-1", "reply", 0.9, None);
    urgent["text"] = json!("I want to end my life");
    let (status, decided) = nodes[1].post("/v1/evaluate", None, &urgent);
    assert_eq!(status, 200, "{decided}");
    let urgent_id = decided["handoff_id"].as_str().unwrap().to_string();

    // Node c's workers take ten handoffs, and node c dies holding them.
    let mut held_by_c = BTreeSet::new();
    for n in 0..10 {
        let (status, claimed) = nodes[2].post(
            "/v1/queue/claim",
            None,
            &json!({"role": "finance-operator", "worker": format!("carol-{n}")}),
        );
        assert_eq!(status, 200, "{claimed}");
        held_by_c.insert(claimed["handoff"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(held_by_c.len(), 10, "ten different handoffs");
    nodes[2].kill();

    // Workers on the two live nodes drain the queue at once; node c's
    // handoffs come back when their leases run out.
    let survivors: Vec<Arc<Server>> = nodes.drain(..2).map(Arc::new).collect();
    let claims = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..6)
        .map(|n| {
            let node = survivors[n % 2].clone();
            let claims = claims.clone();
            thread::spawn(move || {
                work_the_queue(
                    &node,
                    &format!("worker-{n}"),
                    "finance-operator",
                    Duration::from_secs(12),
                    &claims,
                )
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let claims = claims.lock().unwrap().clone();
    let mut by_handoff: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, worker) in &claims {
        by_handoff.entry(id).or_default().push(worker);
    }
    let twice: Vec<_> = by_handoff.iter().filter(|(_, w)| w.len() > 1).collect();
    assert!(twice.is_empty(), "held twice: {twice:?}");
    let claimed: BTreeSet<String> = by_handoff.keys().map(|id| id.to_string()).collect();
    assert_eq!(
        claimed, handoffs,
        "every handoff claimed once more, none lost"
    );
    let by_node: BTreeMap<&str, usize> =
        claims.iter().fold(BTreeMap::new(), |mut counts, (_, w)| {
            let node = if w.trim_start_matches("worker-").parse::<usize>().unwrap() % 2 == 0 {
                "a"
            } else {
                "b"
            };
            *counts.entry(node).or_default() += 1;
            counts
        });
    assert_eq!(
        by_node.len(),
        2,
        "both live nodes served claims: {by_node:?}"
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM events WHERE kind = 'lease-expired'"
        ),
        10,
        "each of node c's leases expired once"
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM handoffs WHERE role = 'finance-operator' AND state <> 'resolved'"
        ),
        0
    );

    // The urgent item's deadline passed on every node's clock; it was
    // escalated once.
    let deadline = Instant::now() + Duration::from_secs(60);
    let escalated = loop {
        let (_, handoff) = survivors[0].get(&format!("/v1/handoffs/{urgent_id}"), None);
        if handoff["tier"] == "executive" {
            break handoff;
        }
        assert!(Instant::now() < deadline, "no escalation: {handoff}");
        thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(escalated["escalations"], 1);
    assert_eq!(
        count(
            &store,
            &format!(
                "SELECT COUNT(*) FROM events WHERE kind = 'escalated' AND handoff = '{urgent_id}'"
            )
        ),
        1
    );

    // An agent long-polls node b for ten minutes while node a's operator
    // resolves: only the store's notification can wake it (b's own look
    // at the store is an hour away), so an answer long before the poll's
    // deadline is that notification's doing.
    let (_, decided) = survivors[0].post(
        "/v1/evaluate",
        None,
        &item("poll-1", "refund", 0.9, Some(125_000)),
    );
    let id = decided["handoff_id"].as_str().unwrap().to_string();
    let (answered, answer) = std::sync::mpsc::channel();
    let poller = {
        let node = survivors[1].clone();
        let id = id.clone();
        thread::spawn(move || {
            let _ = answered.send(node.get(&format!("/v1/handoffs/{id}?wait=600"), None));
        })
    };
    // The poll is waiting before the resolution (or it would answer at
    // once, proving nothing).
    thread::sleep(Duration::from_millis(500));
    assert!(answer.try_recv().is_err(), "the poll answered early");
    let (status, claimed) = survivors[0].post(
        "/v1/queue/claim",
        None,
        &json!({"role": "finance-operator", "worker": "alice"}),
    );
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["handoff"]["id"], id.as_str());
    let (status, _) = survivors[0].post(
        &format!("/v1/handoffs/{id}/resolve"),
        None,
        &json!({"worker": "alice", "outcome": "approved", "warranted": true}),
    );
    assert_eq!(status, 200);
    let (status, polled) = answer
        .recv_timeout(Duration::from_secs(300))
        .expect("the long poll on b was not woken by the resolution on a");
    assert_eq!(status, 200);
    assert_eq!(polled["state"], "resolved", "{polled}");
    poller.join().unwrap();

    // Node c comes back, and a stricter policy set is published: every
    // node, c included, serves it, and decides by it.
    let mut survivors: Vec<Server> = survivors
        .into_iter()
        .map(|server| Arc::try_unwrap(server).unwrap_or_else(|_| panic!("a worker still runs")))
        .collect();
    survivors.push(start_node(&dirs[2], &store));
    let nodes = survivors;
    for node in &nodes {
        assert_eq!(
            tier_of_a_fairly_sure_reply(node, &format!("before-{}", node.address())),
            "none"
        );
    }
    let stricter = root.path().join("stricter");
    stricter_policies(&dirs[0], &stricter);
    let (published, said) = publish(&stricter, &store);
    assert!(published, "{said}");
    assert!(said.contains("published generation 1"), "{said}");
    let fleet = wait_for_fleet(&nodes[0], "every node serves generation 1", |fleet| {
        let nodes = fleet["nodes"].as_array().unwrap();
        nodes.len() == 3
            && nodes
                .iter()
                .all(|n| n["serving"] == 1 && n["current"] == true)
    });
    assert_eq!(fleet["latest"]["publisher"], "release-bot");
    let names: Vec<&str> = fleet["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    for node in &nodes {
        let (_, policies) = node.get("/v1/policies", None);
        assert_eq!(policies["fleet_generation"], 1, "{policies}");
        assert_eq!(
            tier_of_a_fairly_sure_reply(node, &format!("after-{}", node.address())),
            "self-correct",
            "{} decides by the published generation",
            node.address()
        );
    }

    // Each node's own chain verifies, the dead one's included, in the
    // store and in the node's audit directory, which copies it exactly.
    for server in nodes {
        let (status, log) = server.stop();
        assert!(status.success(), "{log}");
    }
    let (verified, said) = audit_verify_store(&store);
    assert!(verified, "{said}");
    for name in ["a", "b", "c"] {
        assert!(said.contains(&format!("node {name}: verified")), "{said}");
    }
    assert!(said.contains("verified 3 chains"), "{said}");
    for dir in &dirs {
        let (verified, said) = audit_verify(dir);
        assert!(verified, "{}: {said}", dir.display());
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            audit_lines(dir),
            chain_in_store(&store, name),
            "node {name}'s audit directory is not a copy of its chain"
        );
    }
    // Every decision and every handoff event has its record, and no
    // record lacks its change: they were committed together.
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM decisions"),
        count(
            &store,
            r#"SELECT COUNT(*) FROM audit_records WHERE line LIKE '%,"type":"decision",%'"#
        ),
    );
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM events"),
        count(
            &store,
            r#"SELECT COUNT(*) FROM audit_records WHERE line LIKE '%,"type":"handoff",%'"#
        ),
    );
}

/// `handoff audit verify --store`: whether every chain verified, and what
/// it printed.
fn audit_verify_store(store: &TestStore) -> (bool, String) {
    handoff(&["audit", "verify", "--store", &store.spec()], store)
}

/// The records of a node's audit directory, in order.
fn audit_lines(data: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("audit"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.starts_with("audit-0") && name.ends_with(".jsonl")
        })
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|file| {
            std::fs::read_to_string(file)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `node`'s chain as the store holds it.
fn chain_in_store(store: &TestStore, node: &str) -> Vec<String> {
    let node = node.to_string();
    on_store(store, async move |db| {
        sqlx::query_scalar("SELECT line FROM audit_records WHERE node = $1 ORDER BY seq")
            .bind(node)
            .fetch_all(db)
            .await
            .unwrap()
    })
}

#[test]
fn a_change_and_its_audit_record_commit_together_or_not_at_all() {
    let store = fleet_store();
    // A store no node has recorded in verifies nothing, and says so.
    let (verified, said) = audit_verify_store(&store);
    assert!(!verified, "{said}");
    assert!(said.contains("no audit chains in this store"), "{said}");
    let root = tempfile::tempdir().unwrap();
    let data = node_dir(root.path(), "solo");
    let node = start_node(&data, &store);

    // Over the operator limit: a decision and a handoff, each recorded in
    // the node's chain in the store, naming the node.
    let (status, decided) = node.post(
        "/v1/evaluate",
        None,
        &item("first", "refund", 0.9, Some(125_000)),
    );
    assert_eq!(status, 200, "{decided}");
    let (status, trail) = node.get("/v1/audit?item=first", None);
    assert_eq!(status, 200, "{trail}");
    let records = trail.as_array().unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["type"] == "decision" && r["node"] == "solo"),
        "{trail}"
    );
    let changes = || {
        (
            count(&store, "SELECT COUNT(*) FROM decisions"),
            count(&store, "SELECT COUNT(*) FROM handoffs"),
            count(&store, "SELECT COUNT(*) FROM events"),
            count(&store, "SELECT COUNT(*) FROM audit_records"),
        )
    };
    let before = changes();

    // A row squatting on the chain's next place makes every append fail:
    // the decision, the handoff and its event are not committed either,
    // and the agent hears so.
    execute(
        &store,
        "INSERT INTO audit_records
            SELECT node, seq + 1, 'squatter' FROM audit_heads WHERE node = 'solo'",
    );
    let (status, refused) = node.post(
        "/v1/evaluate",
        None,
        &item("second", "refund", 0.9, Some(125_000)),
    );
    assert_ne!(status, 200, "{refused}");
    let (status, refused) = node.post("/v1/evaluate", None, &item("routine", "reply", 0.95, None));
    assert_ne!(status, 200, "{refused}");
    let (status, claim) = node.post(
        "/v1/queue/claim",
        None,
        &json!({"role": "finance-operator", "worker": "alice"}),
    );
    assert_ne!(status, 200, "{claim}");
    let after = changes();
    assert_eq!(
        (after.0, after.1, after.2, after.3),
        (before.0, before.1, before.2, before.3 + 1),
        "only the squatter was added"
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM handoffs WHERE state = 'queued'"
        ),
        1,
        "the refused claim left the handoff queued"
    );

    // Once it is gone, the same work goes through.
    execute(&store, "DELETE FROM audit_records WHERE line = 'squatter'");
    let (status, decided) = node.post(
        "/v1/evaluate",
        None,
        &item("second", "refund", 0.9, Some(125_000)),
    );
    assert_eq!(status, 200, "{decided}");
    let (status, claim) = node.post(
        "/v1/queue/claim",
        None,
        &json!({"role": "finance-operator", "worker": "alice"}),
    );
    assert_eq!(status, 200, "{claim}");
    let (status, verified) = node.get("/v1/audit/verify", None);
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["intact"], true, "{verified}");
    assert_eq!(verified["nodes"][0]["node"], "solo", "{verified}");
    let (status, log) = node.stop();
    assert!(status.success(), "{log}");
    assert_eq!(audit_lines(&data), chain_in_store(&store, "solo"));
    let (verified, said) = audit_verify_store(&store);
    assert!(verified, "{said}");
    // A compliance query over the fleet's chains tells the first item's
    // story: its decision, then its handoff's events.
    let (shown, said) = handoff(
        &["audit", "show", "--store", &store.spec(), "--item", "first"],
        &store,
    );
    assert!(shown, "{said}");
    let story: Vec<Value> = said
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let kinds: Vec<&str> = story
        .iter()
        .map(|record| match record["type"].as_str().unwrap() {
            "handoff" => record["event"]["kind"].as_str().unwrap(),
            other => other,
        })
        .collect();
    assert_eq!(kinds, ["decision", "enqueued", "claimed"], "{said}");
    assert!(
        story.iter().all(|record| record["node"] == "solo"),
        "{said}"
    );

    // A record edited in the store is found, by node and position.
    let edit = |from: &str, to: &str| {
        execute(
            &store,
            &format!(
                "UPDATE audit_records SET line = replace(line, '{from}', '{to}')
                  WHERE node = 'solo' AND line LIKE '%{from}%'"
            ),
        )
    };
    edit(r#""id":"second""#, r#""id":"secund""#);
    let (verified, said) = audit_verify_store(&store);
    assert!(!verified, "{said}");
    assert!(said.contains("node solo: broken: edited"), "{said}");
    edit(r#""id":"secund""#, r#""id":"second""#);
    let (verified, said) = audit_verify_store(&store);
    assert!(verified, "undoing the edit restores the chain: {said}");

    // So is one cut off the end, against the head the store names.
    execute(
        &store,
        "DELETE FROM audit_records WHERE node = 'solo'
            AND seq = (SELECT MAX(seq) FROM audit_records WHERE node = 'solo')",
    );
    let (verified, said) = audit_verify_store(&store);
    assert!(!verified, "{said}");
    assert!(said.contains("node solo: broken: truncated"), "{said}");
}

#[test]
fn the_same_submission_sent_to_two_nodes_at_once_is_decided_once() {
    let store = fleet_store();
    let root = tempfile::tempdir().unwrap();
    let nodes: Vec<Arc<Server>> = ["a", "b"]
        .iter()
        .map(|name| Arc::new(start_node(&node_dir(root.path(), name), &store)))
        .collect();

    // Each item, over the operator limit, is posted to both nodes at the
    // same instant, as an agent retrying on a second node would.
    const ITEMS: usize = 40;
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let senders: Vec<_> = nodes
        .iter()
        .map(|node| {
            let node = node.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                (0..ITEMS)
                    .map(|i| {
                        barrier.wait();
                        let (status, answer) = node.post(
                            "/v1/evaluate",
                            None,
                            &item(&format!("twice-{i}"), "refund", 0.9, Some(125_000)),
                        );
                        assert_eq!(status, 200, "{answer}");
                        answer
                    })
                    .collect::<Vec<Value>>()
            })
        })
        .collect();
    let answers: Vec<Vec<Value>> = senders.into_iter().map(|s| s.join().unwrap()).collect();
    let mut replayed = 0;
    for (i, (a, b)) in answers[0].iter().zip(&answers[1]).enumerate() {
        assert!(a["handoff_id"].is_string(), "{a}");
        assert_eq!(a["handoff_id"], b["handoff_id"], "item {i}: {a} / {b}");
        replayed += usize::from(a["replayed"] == true) + usize::from(b["replayed"] == true);
    }
    assert_eq!(replayed, ITEMS, "each item answered once from memory");
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM handoffs"),
        ITEMS as i64,
        "one handoff per item"
    );
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM decisions"),
        ITEMS as i64,
        "one decision row per item"
    );
}

#[test]
fn a_generation_a_node_refuses_leaves_it_serving_the_one_before() {
    let store = fleet_store();
    let root = tempfile::tempdir().unwrap();
    let data = node_dir(root.path(), "solo");
    let node = start_node(&data, &store);

    // A directory with one bad unit is refused whole, and nothing stored.
    let broken = root.path().join("broken");
    stricter_policies(&data, &broken);
    std::fs::write(broken.join("evil.wasm"), b"not a component").unwrap();
    let (published, said) = publish(&broken, &store);
    assert!(!published, "{said}");
    assert!(said.contains("evil.wasm"), "{said}");
    assert!(said.contains("nothing was published"), "{said}");
    assert_eq!(count(&store, "SELECT COUNT(*) FROM policy_generations"), 0);

    // A good one serves.
    let stricter = root.path().join("stricter");
    stricter_policies(&data, &stricter);
    let (published, said) = publish(&stricter, &store);
    assert!(published, "{said}");
    wait_for_fleet(&node, "the node serves generation 1", |fleet| {
        fleet["nodes"][0]["serving"] == 1
    });
    assert_eq!(
        tier_of_a_fairly_sure_reply(&node, "strict-1"),
        "self-correct"
    );

    // A generation that never passed `handoff publish` (written straight
    // into the store: a tampered database, an old publisher) is validated
    // by the node, refused, and said so; generation 1 keeps serving.
    execute(
        &store,
        "INSERT INTO policy_components VALUES ('sha256:forged', 'not a component'::bytea);
         INSERT INTO policy_generations VALUES (2, 0, 'mallory');
         INSERT INTO policy_units SELECT 2, name, component, manifest FROM policy_units
            WHERE generation = 1 AND name <> 'confidence-gate';
         INSERT INTO policy_units VALUES (2, 'confidence-gate', 'sha256:forged', NULL);
         SELECT pg_notify('handoff_policies', '2');",
    );
    let fleet = wait_for_fleet(&node, "the node refuses generation 2", |fleet| {
        fleet["nodes"][0]["rejected"]["generation"] == 2
    });
    let solo = &fleet["nodes"][0];
    assert_eq!(solo["serving"], 1, "{fleet}");
    assert_eq!(solo["current"], false, "{fleet}");
    let reason = solo["rejected"]["reason"].as_str().unwrap();
    assert!(reason.contains("confidence-gate.wasm"), "{reason}");
    assert!(reason.contains("not a WebAssembly file"), "{reason}");
    let (_, policies) = node.get("/v1/policies", None);
    assert_eq!(policies["fleet_generation"], 1, "{policies}");
    assert_eq!(
        tier_of_a_fairly_sure_reply(&node, "strict-2"),
        "self-correct"
    );

    // An empty generation would let every item through: refused too.
    execute(
        &store,
        "INSERT INTO policy_generations VALUES (3, 0, 'mallory');
         SELECT pg_notify('handoff_policies', '3');",
    );
    let fleet = wait_for_fleet(&node, "the node refuses generation 3", |fleet| {
        fleet["nodes"][0]["rejected"]["generation"] == 3
    });
    let reason = fleet["nodes"][0]["rejected"]["reason"].as_str().unwrap();
    assert!(reason.contains("let every item through"), "{reason}");
    assert_eq!(fleet["nodes"][0]["serving"], 1, "{fleet}");
    assert_eq!(
        tier_of_a_fairly_sure_reply(&node, "strict-3"),
        "self-correct"
    );

    // The refusal is on the node's console and in its audit trail.
    let (status, log) = node.stop();
    assert!(status.success(), "{log}");
    assert!(log.contains("rejected confidence-gate.wasm"), "{log}");
    let (verified, said) = audit_verify(&data);
    assert!(verified, "{said}");
    let trail: String = std::fs::read_dir(data.join("audit"))
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default())
        .collect();
    assert!(
        trail
            .lines()
            .any(|line| line.contains("\"rejected\"") && line.contains("not a WebAssembly file")),
        "no rejection in the audit trail"
    );
}

/// Signs every unit of `dir` as `author` and `reviewer`.
fn sign_all(dir: &Path, author: &handoff_trust::SignerKey, reviewer: &handoff_trust::SignerKey) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "wasm") {
            continue;
        }
        let wasm = std::fs::read(&path).unwrap();
        let manifest = std::fs::read_to_string(path.with_extension("toml")).ok();
        let signatures = crate::common::signed_by_two(&wasm, manifest.as_deref(), author, reviewer);
        std::fs::write(path.with_extension("sig"), signatures).unwrap();
    }
}

#[test]
fn under_two_person_only_a_signed_generation_is_published_or_served() {
    let store = fleet_store();
    let root = tempfile::tempdir().unwrap();
    let signers = TwoPerson::new(root.path());
    let (alice, bob) = (&signers.alice, &signers.bob);
    let trust = signers.trust_arg();
    let data = node_dir(root.path(), "solo");
    sign_all(&data.join("policies"), alice, bob);
    let config = data.join("serve.toml");
    let node = Server::start_with(
        &data,
        &[
            "--config",
            config.to_str().unwrap(),
            "--node",
            "solo",
            "--trust",
            trust,
        ],
        |command| {
            command.env("HANDOFF_STORE", store.spec());
        },
    );
    assert_eq!(tier_of_a_fairly_sure_reply(&node, "own-1"), "none");

    // Unsigned, the publisher refuses it and stores nothing.
    let stricter = root.path().join("stricter");
    stricter_policies(&data, &stricter);
    for entry in std::fs::read_dir(&stricter).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sig") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let (published, said) = handoff(
        &["publish", stricter.to_str().unwrap(), "--trust", trust],
        &store,
    );
    assert!(!published, "{said}");
    assert!(said.contains("nothing was published"), "{said}");
    assert!(said.contains("has no signature that counts"), "{said}");
    assert_eq!(count(&store, "SELECT COUNT(*) FROM policy_generations"), 0);

    // Signed by an author and a reviewer: published with its signatures,
    // checked again by the node, served.
    sign_all(&stricter, alice, bob);
    let (published, said) = handoff(
        &["publish", stricter.to_str().unwrap(), "--trust", trust],
        &store,
    );
    assert!(published, "{said}");
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM policy_units WHERE signatures IS NOT NULL"
        ),
        2
    );
    wait_for_fleet(&node, "the node serves generation 1", |fleet| {
        fleet["nodes"][0]["serving"] == 1
    });
    assert_eq!(
        tier_of_a_fairly_sure_reply(&node, "strict-1"),
        "self-correct"
    );

    // A generation written straight into the store with the gate's
    // manifest loosened and its signatures kept: the node refuses it.
    execute(
        &store,
        "INSERT INTO policy_generations VALUES (2, 0, 'mallory');
         INSERT INTO policy_units SELECT 2, name, component,
                CASE WHEN name = 'confidence-gate'
                     THEN replace(manifest, 'self-correct-below = 0.85', 'self-correct-below = 0.5')
                     ELSE manifest END,
                signatures
           FROM policy_units WHERE generation = 1;
         SELECT pg_notify('handoff_policies', '2');",
    );
    let fleet = wait_for_fleet(&node, "the node refuses generation 2", |fleet| {
        fleet["nodes"][0]["rejected"]["generation"] == 2
    });
    let reason = fleet["nodes"][0]["rejected"]["reason"].as_str().unwrap();
    assert!(reason.contains("confidence-gate.sig"), "{reason}");
    assert!(
        reason.contains("the manifest changed after it was signed"),
        "{reason}"
    );
    assert_eq!(fleet["nodes"][0]["serving"], 1, "{fleet}");
    assert_eq!(
        tier_of_a_fairly_sure_reply(&node, "strict-2"),
        "self-correct"
    );
    let (status, log) = node.stop();
    assert!(status.success(), "{log}");
}
