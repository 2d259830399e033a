//! Tier dispatch: real evaluations, real stores (SQLite on disk, and the
//! same tests again on PostgreSQL, `on_both_stores!`), a manual clock for
//! the SLA deadlines.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::common::*;
use crate::stores::{Backend, TestStore, on_both_stores};
use chrono::{DateTime, Duration, TimeZone, Utc};
use handoff_dispatch::report::suggest_threshold;
use handoff_dispatch::{
    Breach, DispatchConfig, Dispatched, Dispatcher, EXHAUSTED, HandoffState, HandoffStore,
    ListFilter, ManualClock, Outcome, Resolution, SlaEvent, SqliteStore, Store, StoreError,
};
use handoff_model::{Tier, WorkItem};
use handoff_policy::Evaluator;
use serde_json::json;

type Host = Dispatcher<Store>;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap()
}

struct Setup {
    clock: Arc<ManualClock>,
    host: Host,
    evaluator: Evaluator,
}

async fn setup(store: &TestStore) -> Setup {
    setup_with(store, DispatchConfig::default()).await
}

async fn setup_with(store: &TestStore, config: DispatchConfig) -> Setup {
    let clock = Arc::new(ManualClock::new(start()));
    let store = store.open().await;
    Setup {
        host: Dispatcher::new(store, clock.clone(), config),
        clock,
        evaluator: Evaluator::new(set_of(handoff_pipeline::reference::sources())),
    }
}

async fn reopen(store: &TestStore, clock: &Arc<ManualClock>) -> Host {
    let store = store.open().await;
    Dispatcher::new(store, clock.clone(), DispatchConfig::default())
}

impl Setup {
    async fn submit(&mut self, item: &WorkItem) -> Dispatched {
        let decision = decide(&mut self.evaluator, item);
        self.host.dispatch(item, &decision).await.unwrap()
    }

    /// Submits `item` and returns the handoff id it must produce.
    async fn handoff(&mut self, item: &WorkItem) -> String {
        match self.submit(item).await {
            Dispatched::Handoff { id, .. } => id,
            other => panic!("{} was not handed off: {other:?}", item.id),
        }
    }

    fn advance(&self, seconds: i64) {
        self.clock.advance(Duration::seconds(seconds));
    }
}

fn reply(id: &str, confidence: f64) -> WorkItem {
    item(json!({"id": id, "confidence": confidence}))
}

/// A refund over the operator limit: an operator handoff for `finance-operator`.
fn big_refund(id: &str) -> WorkItem {
    item(json!({"id": id, "kind": "refund", "confidence": 0.8,
        "amount": {"minor": 60_000, "currency": "USD"}}))
}

/// A refund over the executive limit.
fn huge_refund(id: &str) -> WorkItem {
    item(json!({"id": id, "kind": "refund", "confidence": 0.8,
        "amount": {"minor": 750_000, "currency": "USD"}}))
}

fn approved(warranted: bool) -> Resolution {
    Resolution {
        outcome: Outcome::Approved,
        note: "checked".into(),
        warranted,
    }
}

async fn event_kinds(host: &Host, id: &str) -> Vec<String> {
    host.store()
        .events(Some(id))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

on_both_stores!(
    #[tokio::test]
    none_proceeds_and_is_counted
);
async fn none_proceeds_and_is_counted(backend: Backend) {
    let store = TestStore::new(backend).await;
    let mut s = setup(&store).await;
    assert_eq!(s.submit(&reply("ok-1", 0.95)).await, Dispatched::Proceed);
    let decisions = s.host.store().decisions().await.unwrap();
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].tier, Tier::None);
    assert!(
        s.host
            .list(&ListFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

on_both_stores!(
    #[tokio::test]
    self_correction_retries_then_hands_to_an_operator
);
async fn self_correction_retries_then_hands_to_an_operator(backend: Backend) {
    let store = TestStore::new(backend).await;
    let mut s = setup(&store).await;
    let item = reply("sc-1", 0.70);
    for attempt in 1..=3 {
        match s.submit(&item).await {
            Dispatched::Retry {
                guidance,
                attempt: got,
                max,
            } => {
                assert_eq!((got, max), (attempt, 3));
                assert!(guidance.is_some_and(|g| !g.is_empty()));
            }
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
    // A different item has its own count.
    assert!(matches!(
        s.submit(&reply("sc-2", 0.70)).await,
        Dispatched::Retry { attempt: 1, .. }
    ));
    let Dispatched::Handoff { id, tier, role } = s.submit(&item).await else {
        panic!("the fourth self-correction must go to a human")
    };
    assert_eq!((tier, role.as_str()), (Tier::Operator, "operator"));
    let handoff = s.host.store().get(&id).await.unwrap();
    assert_eq!(handoff.reason_code, EXHAUSTED);
    assert_eq!(handoff.payload.attempts, 4);
    // The decision of record says where the work went; the plugins'
    // verdicts still say what they said.
    assert_eq!(handoff.payload.decision.tier(), Tier::Operator);
    assert_eq!(handoff.payload.decision.reason_code(), EXHAUSTED);
    assert!(
        handoff
            .payload
            .decision
            .verdicts
            .iter()
            .filter_map(|v| v.verdict.as_ref())
            .any(|v| v.tier == Tier::SelfCorrect)
    );
    assert!(handoff.payload.driving_reason.reason.contains("limit 3"));
}

on_both_stores!(
    #[tokio::test]
    an_operator_handoff_lives_its_whole_life_with_context
);
async fn an_operator_handoff_lives_its_whole_life_with_context(backend: Backend) {
    let store = TestStore::new(backend).await;
    let mut s = setup(&store).await;
    let item = big_refund("op-1");
    let Dispatched::Handoff { id, tier, role } = s.submit(&item).await else {
        panic!("not handed off")
    };
    assert_eq!((tier, role.as_str()), (Tier::Operator, "finance-operator"));

    let queued = s.host.list(&ListFilter::default()).await.unwrap();
    assert_eq!(queued.len(), 1);
    let handoff = &queued[0];
    assert_eq!(handoff.state, HandoffState::Queued);
    // The verdict's SLA, or the operator defaults: 15 minutes and 4 hours.
    let ack = handoff.payload.decision.verdict.ack_sla_secs.unwrap_or(900);
    assert_eq!(
        handoff.ack_deadline,
        start() + Duration::seconds(ack.into())
    );
    // The transfer payload: the item, every plugin's three stages, the reason.
    assert_eq!(handoff.payload.item, item);
    assert_eq!(handoff.payload.decision.verdicts.len(), 2);
    for verdict in &handoff.payload.decision.verdicts {
        assert!(verdict.classification.is_some() && verdict.assessment.is_some());
        assert!(verdict.verdict.is_some());
    }
    assert_eq!(
        handoff.payload.driving_reason.reason_code,
        "auth-limit.exceeded"
    );
    assert!(handoff.payload.prior_handoffs.is_empty());

    assert!(
        s.host.claim("legal", "carol").await.unwrap().is_none(),
        "wrong role"
    );
    s.advance(60);
    let claimed = s.host.claim(&role, "alice").await.unwrap().unwrap();
    assert_eq!(claimed.id, id);
    assert_eq!(claimed.state, HandoffState::Claimed);
    assert_eq!(claimed.lease_owner.as_deref(), Some("alice"));
    assert!(s.host.claim(&role, "bob").await.unwrap().is_none(), "held");
    let not_hers = s.host.acknowledge(&id, "bob").await.unwrap_err();
    assert!(
        matches!(not_hers, StoreError::NotClaimant { .. }),
        "{not_hers}"
    );
    assert!(
        not_hers.to_string().contains("held by `alice`"),
        "{not_hers}"
    );

    s.advance(60);
    let acked = s.host.acknowledge(&id, "alice").await.unwrap();
    assert_eq!(acked.state, HandoffState::Acknowledged);
    assert_eq!(acked.acked_at, Some(start() + Duration::seconds(120)));
    s.advance(300);
    let resolution = Resolution {
        outcome: Outcome::Corrected {
            correction: "refund 400.00 USD, the rest as store credit".into(),
        },
        note: "customer agreed".into(),
        warranted: true,
    };
    let done = s.host.resolve(&id, "alice", &resolution).await.unwrap();
    assert_eq!(done.state, HandoffState::Resolved);
    assert_eq!(done.resolution.as_ref(), Some(&resolution));
    assert!(!done.breached);
    assert!(matches!(
        s.host.resolve(&id, "alice", &resolution).await,
        Err(StoreError::Resolved(_))
    ));
    assert_eq!(
        event_kinds(&s.host, &id).await,
        ["enqueued", "claimed", "acknowledged", "resolved"]
    );

    // The same item again: the new handoff knows about the first.
    let second = s.handoff(&item).await;
    let again = s.host.store().get(&second).await.unwrap();
    assert_eq!(again.payload.prior_handoffs.len(), 1);
    assert_eq!(again.payload.prior_handoffs[0].id, id);
    assert_eq!(again.payload.prior_handoffs[0].resolution, Some(resolution));
}

on_both_stores!(
    #[tokio::test]
    an_executive_handoff_alerts_once_when_its_deadline_passes
);
async fn an_executive_handoff_alerts_once_when_its_deadline_passes(backend: Backend) {
    let store = TestStore::new(backend).await;
    let mut s = setup(&store).await;
    let Dispatched::Handoff { id, tier, role } = s.submit(&huge_refund("ex-1")).await else {
        panic!("not handed off")
    };
    assert_eq!(tier, Tier::Executive);
    let handoff = s.host.store().get(&id).await.unwrap();
    s.clock
        .advance(handoff.ack_deadline - start() - Duration::seconds(1));
    assert!(s.host.enforce_sla().await.unwrap().is_empty(), "not yet");
    s.advance(2);
    assert_eq!(
        s.host.enforce_sla().await.unwrap(),
        [SlaEvent::Alert {
            id: id.clone(),
            breach: Breach::Acknowledge
        }]
    );
    assert!(s.host.enforce_sla().await.unwrap().is_empty(), "once");
    let claimed = s.host.claim(&role, "erin").await.unwrap().unwrap();
    assert_eq!(claimed.tier, Tier::Executive, "no tier above executive");
    s.host.acknowledge(&id, "erin").await.unwrap();
    let done = s.host.resolve(&id, "erin", &approved(true)).await.unwrap();
    assert!(done.breached);
    assert_eq!(
        event_kinds(&s.host, &id).await,
        ["enqueued", "alert", "claimed", "acknowledged", "resolved"]
    );
}

on_both_stores!(
    #[tokio::test]
    an_expired_lease_returns_the_handoff_to_the_queue
);
async fn an_expired_lease_returns_the_handoff_to_the_queue(backend: Backend) {
    let store = TestStore::new(backend).await;
    let mut s = setup(&store).await;
    let id = s.handoff(&big_refund("lease-1")).await;
    let lease = i64::from(s.host.config().lease_secs);
    s.host
        .claim("finance-operator", "alice")
        .await
        .unwrap()
        .unwrap();
    s.advance(lease - 1);
    assert!(
        s.host
            .claim("finance-operator", "bob")
            .await
            .unwrap()
            .is_none()
    );
    let listed = s.host.list(&ListFilter::default()).await.unwrap();
    assert_eq!(listed[0].state, HandoffState::Claimed);

    assert_eq!(s.host.get(&id).await.unwrap().state, HandoffState::Claimed);

    s.advance(1);
    let listed = s.host.list(&ListFilter::default()).await.unwrap();
    assert_eq!(listed[0].state, HandoffState::Queued, "lists as queued");
    let one = s.host.get(&id).await.unwrap();
    assert_eq!(one.state, HandoffState::Queued, "reads as queued");
    assert!(one.lease_owner.is_none());
    let taken = s
        .host
        .claim("finance-operator", "bob")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((taken.id.as_str(), taken.claims), (id.as_str(), 2));
    let late = s.host.acknowledge(&id, "alice").await.unwrap_err();
    assert!(late.to_string().contains("held by `bob`"), "{late}");
    s.advance(100);
    let acked = s.host.acknowledge(&id, "bob").await.unwrap();
    assert_eq!(
        acked.lease_expires,
        Some(s.clock_now() + Duration::seconds(lease)),
        "acknowledging renews the lease"
    );

    // Releasing hands it back at once.
    s.host.release(&id, "bob").await.unwrap();
    let back = s
        .host
        .claim("finance-operator", "carol")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.state, HandoffState::Acknowledged, "the ack stands");
    assert_eq!(
        event_kinds(&s.host, &id).await,
        [
            "enqueued",
            "claimed",
            "lease-expired",
            "claimed",
            "acknowledged",
            "released",
            "claimed"
        ]
    );
}

on_both_stores!(
    #[tokio::test]
    a_missed_operator_deadline_escalates_to_executive
);
async fn a_missed_operator_deadline_escalates_to_executive(backend: Backend) {
    let store = TestStore::new(backend).await;
    let mut s = setup(&store).await;
    s.handoff(&big_refund("sla-1")).await;
    s.handoff(&big_refund("sla-2")).await;
    let id = s
        .host
        .claim("finance-operator", "alice")
        .await
        .unwrap()
        .unwrap()
        .id;
    let before = s.host.store().get(&id).await.unwrap();
    s.clock
        .advance(before.ack_deadline - start() + Duration::seconds(1));

    let events = s.host.enforce_sla().await.unwrap();
    // Alice's ten-minute lease ran out before the fifteen-minute deadline.
    assert_eq!(
        events[0],
        SlaEvent::LeaseExpired {
            id: id.clone(),
            holder: "alice".into()
        }
    );
    assert_eq!(
        events.len(),
        3,
        "both missed their acknowledgement: {events:?}"
    );
    assert!(events.contains(&SlaEvent::Escalated {
        id: id.clone(),
        breach: Breach::Acknowledge,
        from: Tier::Operator,
        to: Tier::Executive
    }));
    let now = s.clock_now();
    let risen = s.host.store().get(&id).await.unwrap();
    let exec = &s.host.config().executive;
    assert_eq!(risen.tier, Tier::Executive);
    assert_eq!(risen.role, exec.role);
    assert_eq!(risen.state, HandoffState::Queued);
    assert_eq!(risen.lease_owner, None, "the operator's claim is void");
    assert_eq!(risen.escalations, 1);
    assert!(risen.breached);
    assert_eq!(
        risen.ack_deadline,
        now + Duration::seconds(exec.ack_secs.into())
    );
    assert!(matches!(
        s.host.acknowledge(&id, "alice").await,
        Err(StoreError::NotClaimant { .. })
    ));

    // Acknowledged in time at the new tier, but never resolved: an alert.
    s.host.claim(&exec.role, "erin").await.unwrap();
    s.host.acknowledge(&id, "erin").await.unwrap();
    s.advance(i64::from(exec.resolve_secs) + 1);
    let events = s.host.enforce_sla().await.unwrap();
    assert!(events.contains(&SlaEvent::Alert {
        id: id.clone(),
        breach: Breach::Resolve
    }));
}

impl Setup {
    fn clock_now(&self) -> DateTime<Utc> {
        use handoff_dispatch::Clock;
        self.clock.now()
    }
}

on_both_stores!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    the_background_sla_clock_escalates_without_waiting_for_real_deadlines
);
async fn the_background_sla_clock_escalates_without_waiting_for_real_deadlines(backend: Backend) {
    let store = TestStore::new(backend).await;
    let mut s = setup(&store).await;
    let id = s.handoff(&big_refund("tick-1")).await;
    let host = Arc::new(s.host);
    let (sender, mut events) = tokio::sync::broadcast::channel(16);
    let clock_task = handoff_dispatch::spawn_sla_clock(
        host.clone(),
        std::time::Duration::from_millis(20),
        sender,
    );
    // Fifteen minutes pass on the manual clock; the task notices at its
    // next tick.
    s.clock.advance(Duration::minutes(16));
    let event = tokio::time::timeout(std::time::Duration::from_secs(30), events.recv())
        .await
        .expect("the SLA clock acted")
        .unwrap();
    assert_eq!(
        event,
        SlaEvent::Escalated {
            id: id.clone(),
            breach: Breach::Acknowledge,
            from: Tier::Operator,
            to: Tier::Executive
        }
    );
    clock_task.stop().await;
    assert_eq!(host.store().get(&id).await.unwrap().tier, Tier::Executive);
}

on_both_stores!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    stopping_the_sla_clock_lets_its_tick_finish_and_leaves_the_store_writable
);
async fn stopping_the_sla_clock_lets_its_tick_finish_and_leaves_the_store_writable(
    backend: Backend,
) {
    let store = TestStore::new(backend).await;
    let mut s = setup(&store).await;
    s.handoff(&big_refund("stop-0")).await;
    let host = Arc::new(s.host);
    for n in 0..60u64 {
        let (sender, _events) = tokio::sync::broadcast::channel(16);
        let clock = handoff_dispatch::spawn_sla_clock(
            host.clone(),
            std::time::Duration::from_millis(1),
            sender,
        );
        // Stopped at a different point of its ticks each time: every tick
        // opens a write transaction.
        tokio::time::sleep(std::time::Duration::from_micros(250 * (n % 9))).await;
        clock.stop().await;
        // A tick left holding the write lock would make this write wait out
        // the store's busy timeout and fail.
        host.store()
            .record_autonomous_many(vec![proceed_row(format!("after-stop-{n}"))])
            .await
            .unwrap_or_else(|error| panic!("write {n} after the clock stopped: {error}"));
    }
    assert_eq!(host.store().decisions().await.unwrap().len(), 1 + 60);
}

on_both_stores!(
    #[tokio::test]
    a_restart_mid_lifecycle_loses_nothing_and_the_clocks_still_run
);
async fn a_restart_mid_lifecycle_loses_nothing_and_the_clocks_still_run(backend: Backend) {
    let store = TestStore::new(backend).await;
    let mut s = setup(&store).await;
    let held = s.handoff(&big_refund("rs-1")).await;
    let waiting = s.handoff(&huge_refund("rs-2")).await;
    s.host.claim("finance-operator", "alice").await.unwrap();
    s.host.acknowledge(&held, "alice").await.unwrap();
    s.host.store().close().await;
    drop(s.host);

    // The host was down for two hours.
    s.clock.advance(Duration::hours(2));
    let host = reopen(&store, &s.clock).await;
    let resumed = host.store().get(&held).await.unwrap();
    assert_eq!(resumed.state, HandoffState::Acknowledged);
    // alice's lease ran out while the host was down, so it is back in the
    // queue with its acknowledgement; she claims it again and finishes.
    let again = host
        .claim("finance-operator", "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, held);
    host.resolve(&held, "alice", &approved(true)).await.unwrap();

    // The executive deadlines missed while down are caught at once.
    let events = host.enforce_sla().await.unwrap();
    assert!(
        events.contains(&SlaEvent::Alert {
            id: waiting.clone(),
            breach: Breach::Acknowledge
        }),
        "{events:?}"
    );
    assert_eq!(host.store().decisions().await.unwrap().len(), 2);
    assert_eq!(
        event_kinds(&host, &held).await,
        [
            "enqueued",
            "claimed",
            "acknowledged",
            "lease-expired",
            "claimed",
            "resolved"
        ]
    );
}

on_both_stores!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    concurrent_claimers_never_claim_a_handoff_twice
);
async fn concurrent_claimers_never_claim_a_handoff_twice(backend: Backend) {
    let store = TestStore::new(backend).await;
    let mut s = setup(&store).await;
    let mut all = BTreeSet::new();
    for i in 0..60 {
        all.insert(s.handoff(&big_refund(&format!("cc-{i}"))).await);
    }
    // Two stores on one file: two processes sharing a queue.
    let second = Arc::new(reopen(&store, &s.clock).await);
    let first = Arc::new(s.host);
    let claimers: Vec<_> = (0..16)
        .map(|n| {
            let host = if n % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(h) = host
                    .claim("finance-operator", &format!("worker-{n}"))
                    .await
                    .unwrap()
                {
                    mine.push(h.id);
                }
                mine
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.unwrap());
    }
    let unique: BTreeSet<String> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), 60, "every handoff claimed exactly once");
    assert_eq!(unique, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_committed_rows_are_all_stored_and_closing_lets_the_file_go() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let row = |task: usize, n: usize| proceed_row(format!("gc-{task}-{n}"));
    // Many callers at once, some with several rows: the writer groups them.
    let callers: Vec<_> = (0..24)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..20 {
                    let rows: Vec<_> = (0..1 + n % 3).map(|k| row(task, n * 10 + k)).collect();
                    store.record_autonomous_many(rows).await.unwrap();
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap();
    }
    let stored: BTreeSet<String> = store
        .decisions()
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.item_id)
        .collect();
    let expected: BTreeSet<String> = (0..24)
        .flat_map(|task| {
            (0..20)
                .flat_map(move |n| (0..1 + n % 3).map(move |k| format!("gc-{task}-{}", n * 10 + k)))
        })
        .collect();
    assert_eq!(stored, expected);

    // Closing closes the writer's own connection too: the write-ahead log
    // is folded in, and no descriptor of this process holds the file once
    // sqlx's connection threads (which finish in the background) are done.
    store.close().await;
    let wal = dir.path().join("handoffs.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "the write-ahead log was not folded in"
    );
    let db = std::fs::canonicalize(dir.path().join("handoffs.db")).unwrap();
    let holding = || {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter(|target| target.starts_with(&db))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while holding() > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        holding(),
        0,
        "a connection was left open on the closed store"
    );
    // A commit after the close is an error, never a hang or a silent loss.
    let late = store.record_autonomous_many(vec![row(99, 0)]).await;
    assert!(late.is_err(), "{late:?}");
    let reopened = SqliteStore::open(dir.path()).await.unwrap();
    assert_eq!(reopened.decisions().await.unwrap().len(), expected.len());
}

#[test]
fn the_threshold_suggestion_stops_at_the_first_failing_bound() {
    let mut resolved = Vec::new();
    resolved.extend(std::iter::repeat_n((0.95, false), 300));
    resolved.extend(std::iter::repeat_n((0.85, false), 100));
    resolved.extend(std::iter::repeat_n((0.75, false), 80));
    resolved.extend(std::iter::repeat_n((0.75, true), 20));
    // Would pass again lower down: fixed-sequence testing never looks.
    resolved.extend(std::iter::repeat_n((0.60, false), 5000));
    let s = suggest_threshold(&resolved, 0.01, 0.05);
    assert_eq!(s.threshold, Some(0.85));
    assert_eq!((s.n, s.errors), (400, 0));
    let bound = 1.0 - 0.05f64.powf(1.0 / 400.0);
    assert!((s.upper_bound.unwrap() - bound).abs() < 1e-12);
    assert_eq!(s.steps.len(), 3);
    assert!(s.steps[2].upper_bound > 0.01);
    assert_eq!(s.more_needed, None);

    // Too little data: say how much more.
    let few = vec![(0.9, false); 50];
    let s = suggest_threshold(&few, 0.01, 0.05);
    assert_eq!(s.threshold, None);
    // With no errors the bound is 1 - δ^(1/n): under 1% from n = 299.
    assert_eq!(s.more_needed, Some(249));
    assert_eq!(
        suggest_threshold(&vec![(0.9, false); 298], 0.01, 0.05).threshold,
        None
    );
    assert_eq!(
        suggest_threshold(&vec![(0.9, false); 299], 0.01, 0.05).threshold,
        Some(0.9)
    );
}

#[test]
fn operators_work_the_queue_from_the_command_line() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().to_str().unwrap();
    let sample = std::fs::read_to_string(examples_dir().join("sample.jsonl")).unwrap();
    let out = handoff(&["eval", "--dispatch", data], &sample);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let handed: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|d| d["dispatch"]["action"] == "handoff")
        .collect();
    let humans = lines
        .iter()
        .filter(|d| d["tier"] == "operator" || d["tier"] == "executive")
        .count();
    assert_eq!(handed.len(), humans, "every human tier is handed off");
    assert!(lines.iter().any(|d| d["dispatch"]["action"] == "proceed"));
    assert!(lines.iter().any(|d| d["dispatch"]["action"] == "retry"));

    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--data", data]);
        handoff(&all, "")
    };
    let listed = run(&["queue", "list", "--json"]);
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).lines().count(),
        humans
    );
    // The table keeps its columns whatever the values' lengths.
    let table = run(&["queue", "list"]);
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    let holder_column = table.lines().next().unwrap().find("holder").unwrap();
    for row in table.lines().skip(1) {
        let prefix: String = row.chars().take(holder_column).collect();
        assert_eq!(prefix.chars().count(), holder_column, "{table}");
        assert!(
            prefix.ends_with("  "),
            "a value ran into the holder column:\n{table}"
        );
    }

    let claimed = run(&[
        "queue",
        "claim",
        "--role",
        "finance-operator",
        "--worker",
        "alice",
    ]);
    assert!(
        claimed.status.success(),
        "{}",
        String::from_utf8_lossy(&claimed.stderr)
    );
    let claimed_json: serde_json::Value = serde_json::from_slice(&claimed.stdout).unwrap();
    let handoff_json = &claimed_json["handoff"];
    let id = handoff_json["id"].as_str().unwrap().to_string();
    assert_eq!(handoff_json["lease_owner"], "alice");
    assert!(handoff_json["payload"]["decision"]["verdicts"].is_array());
    assert!(run(&["queue", "ack", &id, "--worker", "bob"]).status.code() != Some(0));
    assert!(
        run(&["queue", "ack", &id, "--worker", "alice"])
            .status
            .success()
    );
    let renewed = run(&["queue", "renew", &id, "--worker", "alice"]);
    assert!(String::from_utf8_lossy(&renewed.stdout).starts_with(&format!("renewed {id} until ")));
    assert!(
        !run(&["queue", "renew", &id, "--worker", "bob"])
            .status
            .success()
    );
    let missing = run(&[
        "queue",
        "resolve",
        &id,
        "--worker",
        "alice",
        "--outcome",
        "corrected",
        "--warranted",
        "true",
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--correction"));
    let resolved = run(&[
        "queue",
        "resolve",
        &id,
        "--worker",
        "alice",
        "--outcome",
        "corrected",
        "--correction",
        "refund 400.00 USD",
        "--note",
        "agreed with the customer",
        "--warranted",
        "true",
    ]);
    assert!(
        resolved.status.success(),
        "{}",
        String::from_utf8_lossy(&resolved.stderr)
    );
    let shown: serde_json::Value =
        serde_json::from_slice(&run(&["queue", "show", &id]).stdout).unwrap();
    let kinds: Vec<&str> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["enqueued", "claimed", "acknowledged", "renewed", "resolved"]
    );

    let report: serde_json::Value =
        serde_json::from_slice(&run(&["report", "--json"]).stdout).unwrap();
    let overall = &report["overall"];
    assert_eq!(overall["decisions"], lines.len());
    assert_eq!(overall["handoffs"], humans);
    assert_eq!(overall["outcomes"]["corrected"], 1);
    assert_eq!(overall["warranted_share"], 1.0);
    assert_eq!(overall["finished_with_people"], 1);
    // The reference policies' calibration key, read from their manifests;
    // the one resolution came from a rule and is left out.
    let calibration = &report["calibration"];
    assert_eq!(calibration["excluded_rule_based"], 1);
    let gate = calibration["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["plugin"] == "confidence-gate" && t["trigger"] == "confidence")
        .unwrap();
    assert_eq!(gate["config_key"], "escalate-below");
    assert_eq!(gate["current"], 0.6);
    let text = String::from_utf8(run(&["report"]).stdout).unwrap();
    assert!(
        text.contains("confidence-gate/confidence: keep `escalate-below`"),
        "{text}"
    );
    let bad = run(&["report", "--cost-per-agent-attempt=-1"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--cost-per-agent-attempt"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let none = run(&["queue", "claim", "--role", "nobody", "--worker", "alice"]);
    assert_eq!(none.status.code(), Some(1));
}

/// P(X ≤ k) for X ~ Binomial(n, p), summed directly: the test's own
/// arithmetic, independent of the crate's.
fn binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
    let mut term = (1.0 - p).powi(n as i32); // P(X = 0)
    let mut total = term;
    for i in 1..=k {
        term *= (n - i + 1) as f64 / i as f64 * p / (1.0 - p);
        total += term;
    }
    total
}

#[tokio::test]
async fn a_known_share_of_autonomous_work_is_sampled_for_review_without_holding_the_agent() {
    let store = TestStore::new(Backend::Sqlite).await;
    let config = DispatchConfig {
        review: handoff_dispatch::ReviewSampling {
            rate: 0.02,
            seed: 20_261_202,
            ..Default::default()
        },
        ..DispatchConfig::default()
    };
    let mut setup = setup_with(&store, config).await;
    const N: u64 = 10_000;
    for i in 0..N {
        let item = reply(&format!("auto-{i}"), 0.97);
        assert_eq!(
            setup.submit(&item).await,
            Dispatched::Proceed,
            "{}",
            item.id
        );
    }
    let (history, _) = setup.host.history().await.unwrap();
    let reviews: Vec<_> = history
        .handoffs
        .iter()
        .filter(|h| h.role == "reviewer")
        .collect();
    assert_eq!(
        reviews.len(),
        history.handoffs.len(),
        "only reviews were made"
    );
    let sampled = reviews.len() as u64;
    // The central 99.9% of Binomial(10,000, 0.02): P(X < low) ≤ 0.0005 and
    // P(X > high) ≤ 0.0005.
    let low = (0..N).find(|&k| binomial_cdf(k, N, 0.02) > 0.0005).unwrap();
    let high = (0..N)
        .find(|&k| binomial_cdf(k, N, 0.02) >= 0.9995)
        .unwrap();
    assert!(
        (150..=160).contains(&low) && (240..=250).contains(&high),
        "{low}..{high}"
    );
    assert!(
        (low..=high).contains(&sampled),
        "{sampled} sampled, outside {low}..={high}"
    );
    for review in &reviews {
        assert_eq!(review.tier, Tier::None);
        assert_eq!(review.state, HandoffState::Queued);
        let sample = review.payload.review.expect("recorded as a review");
        assert_eq!(sample.probability, 0.02);
        assert!(sample.draw < 0.02);
        assert_eq!(review.payload.decision.tier(), Tier::None);
    }
    // The same traffic with the same seed samples the same items.
    let config = DispatchConfig::default().review;
    let again = handoff_dispatch::ReviewSampling {
        rate: 0.02,
        seed: 20_261_202,
        ..config
    };
    let resampled = (0..N)
        .filter(|i| again.sample(&reply(&format!("auto-{i}"), 0.97)).is_some())
        .count() as u64;
    assert_eq!(resampled, sampled);

    // A review past its deadline is flagged, never escalated: nothing
    // waits on it.
    setup.advance(2 * 24 * 3600);
    let events = setup.host.enforce_sla().await.unwrap();
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, SlaEvent::Escalated { .. })),
        "{events:?}"
    );
    let (history, _) = setup.host.history().await.unwrap();
    assert!(history.handoffs.iter().all(|h| h.tier == Tier::None));
}

#[test]
fn calibration_weights_sampled_reviews_by_inverse_probability() {
    use handoff_dispatch::report::{Evidence, suggest_weighted};
    // A constructed history. Escalated: 40 items at confidence 0.5, 4 of
    // them wrong (weight 1: a human sees every escalation). Reviewed: 30
    // autonomous items at 0.9, sampled with probability 0.1 (weight 10), 1
    // of them wrong: they stand for 300 autonomous items, of which about 10
    // were wrong, so the true error rate at or above 0.9 is 1/30.
    let mut evidence = Vec::new();
    for i in 0..40 {
        evidence.push(Evidence {
            confidence: 0.5,
            wrong: i < 4,
            weight: 1.0,
        });
    }
    for i in 0..30 {
        evidence.push(Evidence {
            confidence: 0.9,
            wrong: i < 1,
            weight: 10.0,
        });
    }
    let suggestion = suggest_weighted(&evidence, 0.2, 0.1);
    // By hand. At 0.9: Σw = 300, Σw² = 3000, n_eff = 300²/3000 = 30;
    // weighted error rate 10/300, so 1 error in 30: the one-sided 90%
    // Clopper–Pearson bound for 1 in 30 is 0.1236.
    // At 0.5: Σw = 340, Σw² = 3040, n_eff = 38.03 → 38 items; weighted
    // error rate 14/340 = 0.0412, times 38.03 = 1.566 → 2 errors; the bound
    // for 2 in 38 is 0.1341. Both are under α = 0.2: the suggestion is 0.5.
    let steps = &suggestion.steps;
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(
        (steps[0].threshold, steps[0].n, steps[0].errors),
        (0.9, 30, 1)
    );
    assert!((steps[0].effective_n - 30.0).abs() < 1e-9);
    assert!((steps[0].effective_errors - 1.0).abs() < 1e-9);
    assert!(
        (steps[0].upper_bound - 0.1236).abs() < 5e-4,
        "{}",
        steps[0].upper_bound
    );
    assert_eq!(
        (steps[1].threshold, steps[1].n, steps[1].errors),
        (0.5, 70, 5)
    );
    assert!(
        (steps[1].effective_n - 38.026).abs() < 1e-3,
        "{}",
        steps[1].effective_n
    );
    assert!((steps[1].effective_errors - 1.566).abs() < 1e-3);
    assert!(
        (steps[1].upper_bound - 0.1341).abs() < 5e-4,
        "{}",
        steps[1].upper_bound
    );
    assert_eq!(suggestion.threshold, Some(0.5));
    // Unweighted, the 30 reviews would count as 30 items, not 300: the
    // same history would look like 5 errors in 70 (7%) where the weighted
    // estimate is 14 in 340 (4%).
    let unweighted: Vec<(f64, bool)> = evidence.iter().map(|e| (e.confidence, e.wrong)).collect();
    assert_eq!(suggest_threshold(&unweighted, 0.2, 0.1).steps[1].n, 70);
}

/// Settles each item's decision, as the pipeline does before dispatch.
async fn settle_all(s: &mut Setup, items: &[WorkItem]) -> Vec<handoff_dispatch::Settled> {
    let mut settled = Vec::new();
    for item in items {
        let decision = decide(&mut s.evaluator, item);
        settled.push(s.host.settle(item, decision).await.unwrap());
    }
    settled
}

on_both_stores!(
    #[tokio::test]
    a_batch_is_dispatched_in_order_with_its_routine_rows_committed_together
);
async fn a_batch_is_dispatched_in_order_with_its_routine_rows_committed_together(backend: Backend) {
    let store = TestStore::new(backend).await;
    let mut s = setup(&store).await;
    let items = vec![
        reply("b-1", 0.95),
        reply("b-2", 0.70),
        big_refund("b-3"),
        reply("b-4", 0.95),
        huge_refund("b-5"),
        reply("b-6", 0.95),
    ];
    let settled = settle_all(&mut s, &items).await;
    let pairs: Vec<_> = items.iter().zip(&settled).collect();
    let dispatched = s.host.dispatch_settled_many(&pairs).await.unwrap();
    assert_eq!(dispatched.len(), items.len());
    assert_eq!(dispatched[0], Dispatched::Proceed);
    assert!(matches!(
        dispatched[1],
        Dispatched::Retry { attempt: 1, .. }
    ));
    assert!(matches!(
        &dispatched[2],
        Dispatched::Handoff {
            tier: Tier::Operator,
            ..
        }
    ));
    assert_eq!(dispatched[3], Dispatched::Proceed);
    assert!(matches!(
        &dispatched[4],
        Dispatched::Handoff {
            tier: Tier::Executive,
            ..
        }
    ));
    assert_eq!(dispatched[5], Dispatched::Proceed);
    // Every decision is stored once, in submission order, handoffs
    // included: routine rows are flushed before each handoff's own commit.
    let stored = stored_ids(&s.host).await;
    let ids: Vec<&str> = items.iter().map(|item| item.id.as_str()).collect();
    assert_eq!(stored, ids);
    assert_eq!(s.host.list(&ListFilter::default()).await.unwrap().len(), 2);
}

/// The item of every stored decision row, in the order they were stored.
async fn stored_ids(host: &Host) -> Vec<String> {
    let rows = host.store().decisions().await.unwrap();
    rows.into_iter().map(|row| row.item_id).collect()
}

/// Routine replies for each of `callers`, decided up front with one
/// evaluator: what is under test is the store, not evaluation.
fn decided_per_caller(
    s: &mut Setup,
    callers: usize,
    per_caller: usize,
    id: impl Fn(usize, usize) -> String,
) -> Vec<Vec<(WorkItem, handoff_model::Decision)>> {
    (0..callers)
        .map(|caller| {
            (0..per_caller)
                .map(|n| {
                    let item = reply(&id(caller, n), 0.95);
                    let decision = decide(&mut s.evaluator, &item);
                    (item, decision)
                })
                .collect()
        })
        .collect()
}

on_both_stores!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    routine_decisions_from_many_callers_at_once_are_each_committed_once
);
async fn routine_decisions_from_many_callers_at_once_are_each_committed_once(backend: Backend) {
    let store = TestStore::new(backend).await;
    let mut s = setup(&store).await;
    let callers = 32;
    let per_caller = 20;
    let work = decided_per_caller(&mut s, callers, per_caller, |caller, n| {
        format!("c{caller}-{n}")
    });
    let host = Arc::new(s.host);
    let mut tasks = Vec::new();
    for decided in work {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            for (item, decision) in decided {
                assert_eq!(
                    host.dispatch(&item, &decision).await.unwrap(),
                    Dispatched::Proceed
                );
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let clock = Arc::new(ManualClock::new(start()));
    drop(host);
    // Acknowledged means committed: a new store on the same file sees them.
    let reopened = reopen(&store, &clock).await;
    let stored = stored_ids(&reopened).await;
    let unique: BTreeSet<&String> = stored.iter().collect();
    assert_eq!(stored.len(), callers * per_caller);
    assert_eq!(unique.len(), callers * per_caller);
}

on_both_stores!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    a_row_the_database_refuses_fails_only_its_own_caller
);
async fn a_row_the_database_refuses_fails_only_its_own_caller(backend: Backend) {
    let store = TestStore::new(backend).await;
    let mut s = setup(&store).await;
    // The database itself refuses one item's row, as a full disk or a
    // constraint would refuse a real one.
    refuse_poisoned_rows(&store).await;
    let work = decided_per_caller(&mut s, 16, 10, |caller, n| {
        if caller == 3 && n == 5 {
            "poison-1".to_string()
        } else {
            format!("ok{caller}-{n}")
        }
    });
    let host = Arc::new(s.host);
    let mut tasks = Vec::new();
    for decided in work {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for (item, decision) in decided {
                let outcome = host.dispatch(&item, &decision).await;
                outcomes.push((item.id, outcome));
            }
            outcomes
        }));
    }
    let mut failed = Vec::new();
    for task in tasks {
        for (id, outcome) in task.await.unwrap() {
            match outcome {
                Ok(dispatched) => assert_eq!(dispatched, Dispatched::Proceed, "{id}"),
                Err(error) => {
                    assert!(error.to_string().contains("refused by the test"), "{error}");
                    failed.push(id);
                }
            }
        }
    }
    assert_eq!(failed, ["poison-1"]);
    let stored = host.store().decisions().await.unwrap();
    assert_eq!(stored.len(), 159);
    assert!(stored.iter().all(|row| row.item_id.starts_with("ok")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_is_folded_in_by_the_stores_own_task() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(dir.path(), handoff_dispatch::Commit::Written)
        .await
        .unwrap();
    // 2,000 rows of about a kilobyte: 2 MB, a few hundred pages, far below
    // the size at which a commit checkpoints the log itself.
    for batch in 0..20 {
        let rows = (0..100)
            .map(|n| proceed_row(format!("{batch}-{n}-{}", "x".repeat(1000))))
            .collect();
        store.record_autonomous_many(rows).await.unwrap();
    }
    // Only a checkpoint moves committed pages from the log into the
    // database file, so the file growing past the rows' size shows that
    // the store's task ran one, with no commit asking for it.
    let db = dir.path().join("handoffs.db");
    let size = || std::fs::metadata(&db).map_or(0, |m| m.len());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while size() < 2_000_000 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        size() >= 2_000_000,
        "the database file holds {} bytes: the log was not checkpointed",
        size()
    );
    assert_eq!(store.decisions().await.unwrap().len(), 2_000);
    store.close().await;
}

/// Makes the database refuse every decision row whose item starts with
/// `poison`, with the message `refused by the test`.
async fn refuse_poisoned_rows(store: &TestStore) {
    match store.location() {
        handoff_dispatch::StoreLocation::Embedded(dir) => {
            let refused = std::process::Command::new("python3")
                .arg("-c")
                .arg(format!(
                    "import sqlite3; c = sqlite3.connect({:?}); c.execute(\"CREATE TRIGGER refuse BEFORE INSERT ON decisions WHEN NEW.item_id LIKE 'poison%' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END\"); c.commit()",
                    dir.join("handoffs.db").to_str().unwrap()
                ))
                .status()
                .expect("python3 runs");
            assert!(refused.success());
        }
        handoff_dispatch::StoreLocation::Postgres(url) => {
            use sqlx::Connection;
            let mut db = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN
                    IF NEW.item_id LIKE 'poison%' THEN RAISE EXCEPTION 'refused by the test'; END IF;
                    RETURN NEW; END $$ LANGUAGE plpgsql;
                 CREATE TRIGGER refuse BEFORE INSERT ON decisions
                    FOR EACH ROW EXECUTE FUNCTION refuse();",
            )
            .execute(&mut db)
            .await
            .unwrap();
            db.close().await.unwrap();
        }
    }
}

/// A routine decision's row, as the dispatcher stores one.
fn proceed_row(item_id: String) -> handoff_dispatch::DecisionRow {
    handoff_dispatch::DecisionRow {
        item_id,
        tier: Tier::None,
        driver: None,
        reason_code: "proceed".into(),
        trigger: None,
        confidence: 0.9,
        at: start(),
        audit: Vec::new(),
    }
}
