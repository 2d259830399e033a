//! The handoff store on PostgreSQL: what several hosts share.
//!
//! The tables are the embedded store's (see
//! `migrations/postgres/`, applied at start by sqlx's migrator under its
//! advisory lock, so nodes starting together migrate once). What differs is
//! how writers meet:
//!
//! - **Claims** take the earliest-deadline row for the role with
//!   `FOR UPDATE SKIP LOCKED`: two nodes claiming at once take different
//!   handoffs, and neither waits for the other.
//! - **Changes by id** (acknowledge, resolve, renew, release, escalate)
//!   lock their row with `FOR UPDATE` and decide on what they read under
//!   the lock, so a breach seen by every node's clock escalates once.
//! - **Events are appended in commit order.** A `BIGSERIAL` is handed out
//!   when a row is inserted, not when it commits, so two transactions can
//!   commit their events out of order, and a reader following the log by
//!   position (the audit forwarder) would skip the later-numbered one that
//!   committed first. Every transaction therefore takes its row locks
//!   first and then, just before it appends events, a transaction-level
//!   advisory lock held to its commit: events commit in the order of their
//!   numbers, and since nothing holding that lock waits for a row, it
//!   cannot deadlock.
//! - **Changes are announced.** The transaction that appends events also
//!   sends a `NOTIFY` on [`CHANGES`], delivered to every node when it
//!   commits; each node's listener wakes what waits on it
//!   ([`PgStore::changed`]: long polls, the queue's live page), and what
//!   waits still polls, because a notification sent while a node's
//!   listener reconnects is lost.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Postgres, QueryBuilder, Row, Transaction};
use tokio::sync::Notify;

use super::generations::{Generations, PUBLISHED};
use super::group_commit::{GroupCommit, GroupWriter};
use super::handoff::{AttemptRecord, Handoff, HandoffState, PriorHandoff, Resolution};
use super::ledger::Ledger;
use super::rows::{self, millis};
use super::sqlite::Commit;
use super::store::{
    Breach, DecisionRow, Escalation, Event, HandoffStore, ListFilter, NewHandoff, QueueDepth,
    StoreError,
};
use handoff_audit::Body;
use handoff_model::{HandoffEvent, Named, Tier};

/// The schema's versions, embedded in the binary: a node never depends on
/// files beside it to create or upgrade the store it serves.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "handoffs",
        include_str!("../migrations/postgres/0001_handoffs.sql"),
    ),
    (
        2,
        "claim order",
        include_str!("../migrations/postgres/0002_claim_order.sql"),
    ),
    (
        3,
        "policy generations",
        include_str!("../migrations/postgres/0003_policy_generations.sql"),
    ),
    (
        4,
        "audit chains",
        include_str!("../migrations/postgres/0004_audit_chains.sql"),
    ),
    (
        5,
        "policy signatures",
        include_str!("../migrations/postgres/0005_policy_signatures.sql"),
    ),
];

/// Connections per node. A node's writers are the HTTP handlers (claims,
/// acknowledgements, resolutions, enqueued handoffs), the routine decision
/// rows and one SLA clock; each holds a connection for one short
/// transaction, so eight keep a 2-core node busy without queueing. One
/// more is the change listener's, held for the node's life, and
/// [`KEY_LOCK_CONNECTIONS`] more hold idempotency keys: a fleet of N nodes
/// needs `13 * N` of the server's `max_connections` (100 by default) plus
/// whatever else uses the database.
pub const POOL_SIZE: u32 = 8;

/// Connections per node that hold submissions' idempotency keys while
/// they are decided (see [`PgStore::hold_keys`]), in a pool of their own:
/// a holder also writes through the main pool, so holders drawing on it
/// could take every connection and wait forever for one more.
pub const KEY_LOCK_CONNECTIONS: u32 = 4;

/// The channel on which committed changes to handoffs are announced.
pub const CHANGES: &str = "handoff_changes";

/// How long the listener waits before it connects again after failing to.
const LISTEN_RETRY: StdDuration = StdDuration::from_secs(1);

/// How long a write waits for a pooled connection before it fails.
const ACQUIRE_TIMEOUT: StdDuration = StdDuration::from_secs(10);

/// The advisory lock every transaction takes just before it appends
/// events (see the module documentation). Any fixed number serves; this
/// one spells `handoff`.
const EVENT_ORDER_LOCK: i64 = 0x68_61_6e_64_6f_66_66;

/// The first key of the advisory locks on idempotency keys (the second is
/// a hash of the key): a two-key lock never meets the one-key locks above.
const SUBMISSION_LOCKS: i32 = 0x6964_656d; // "idem"

/// Rows per multi-row `INSERT`: 7 parameters each, far under PostgreSQL's
/// 65,535.
const ROWS_PER_STATEMENT: usize = 1000;

/// The next deadline, in SQL: acknowledge until acknowledged, then resolve.
const NEXT_DEADLINE: &str =
    "CASE WHEN acked_at IS NULL THEN ack_deadline ELSE resolve_deadline END";

/// The embedded migrations, as sqlx's migrator takes them.
#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<Vec<Migration>, sqlx::error::BoxDynError>>
                + Send
                + 's,
        >,
    > {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The PostgreSQL handoff store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The address without its password, for messages.
    shown: String,
    /// Woken whenever any node commits a change to a handoff.
    changed: Arc<Notify>,
    /// Connections that hold idempotency keys, opened when first needed.
    key_locks: PgPool,
    /// Published policy generations, on the same pool.
    generations: Generations,
    /// Every node's audit chain, and this node's name in it.
    ledger: Ledger,
    /// Routine decision rows from concurrent requests, committed together
    /// with their audit records.
    decisions: GroupCommit,
}

/// `url` with any password replaced by `***`: what may reach a log or a
/// terminal.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(an address that is not a URL)".into(),
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`;
    /// sqlx's URL parameters apply, `options=-c search_path=...` included),
    /// and creates or upgrades the schema. `commit` `Written` turns off
    /// `synchronous_commit` for this node's sessions: a commit is then
    /// acknowledged before the server syncs it, and a server crash can lose
    /// the last moments of commits, never corrupt the database.
    ///
    /// `node` names the audit chain this host appends to: every decision
    /// and handoff event it commits is chained there in the same
    /// transaction (see [`Ledger`]).
    pub async fn connect(url: &str, commit: Commit, node: &str) -> Result<PgStore, StoreError> {
        let shown = redacted(url);
        let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::Address {
            address: shown.clone(),
            detail: redact_error(&e.to_string(), url),
        })?;
        let options = options.application_name("handoff");
        let options = match commit {
            Commit::Synced => options,
            Commit::Written => options.options([("synchronous_commit", "off")]),
        };
        // One connection first, alone: the pool would retry a refused or
        // misaddressed connection until its timeout and then say only that
        // it timed out, where this says why.
        let first = options.connect().await?;
        let _ = first.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE + 1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await?;
        let migrator = Migrator::new(Embedded)
            .await
            .map_err(|e| StoreError::Schema(e.to_string()))?;
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::Schema(e.to_string()))?;
        let changed = Arc::new(Notify::new());
        let published = Arc::new(Notify::new());
        tokio::spawn(listen(
            pool.clone(),
            Wake {
                changed: changed.clone(),
                published: published.clone(),
            },
            shown.clone(),
        ));
        let key_locks = PgPoolOptions::new()
            .max_connections(KEY_LOCK_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        let ledger = Ledger::new(pool.clone(), node);
        let decisions = GroupCommit::start(PgWriter {
            pool: pool.clone(),
            ledger: ledger.clone(),
        });
        Ok(PgStore {
            generations: Generations::new(pool.clone(), published),
            decisions,
            ledger,
            pool,
            shown,
            changed,
            key_locks,
        })
    }

    /// Woken (`notify_waiters`) when a change to a handoff commits, on this
    /// node or any other, and whenever the listener had to reconnect (a
    /// change may have been missed then). Register with `notified()` before
    /// reading, and keep a fallback poll: a wake-up is a hint, not a
    /// guarantee.
    pub fn changed(&self) -> &Arc<Notify> {
        &self.changed
    }

    /// The fleet's published policy generations, in this store.
    pub fn generations(&self) -> &Generations {
        &self.generations
    }

    /// Every node's audit chain.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Holds `keys` (idempotency keys) for every node sharing the store,
    /// until [`HeldKeys::release`]: an identical submission sent to two
    /// nodes at once is decided by one, and the other finds its answer.
    /// Waits while another node holds any of them. Locks are taken in one
    /// order (by hash) on every node, so two submissions never wait on
    /// each other.
    pub async fn hold_keys(&self, keys: &[String]) -> Result<HeldKeys, StoreError> {
        let mut hashes: Vec<i32> = keys.iter().map(|key| key_hash(key)).collect();
        hashes.sort_unstable();
        hashes.dedup();
        if hashes.is_empty() {
            return Ok(HeldKeys::default());
        }
        let mut held = HeldKeys(Some(self.key_locks.acquire().await?));
        for hash in hashes {
            if let Some(connection) = held.0.as_mut() {
                sqlx::query("SELECT pg_advisory_lock($1, $2)")
                    .bind(SUBMISSION_LOCKS)
                    .bind(hash)
                    .execute(&mut **connection)
                    .await?;
            }
        }
        Ok(held)
    }

    /// The database, without its password.
    pub fn address(&self) -> &str {
        &self.shown
    }

    /// Keeps a copy of an audit checkpoint: a second witness, apart from
    /// the checkpoint file.
    pub async fn record_checkpoint(&self, seq: u64, line: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, line) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(i64::try_from(seq).unwrap_or(i64::MAX))
        .bind(line)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The audit checkpoints kept, oldest first, as their JSON lines.
    pub async fn checkpoints(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT line FROM audit_checkpoints ORDER BY seq")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Closes the pools, waiting for connections to finish.
    pub async fn close(&self) {
        self.decisions.close().await;
        self.key_locks.close().await;
        self.pool.close().await;
    }

    async fn write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// The handoff `id`, its row locked until the transaction ends.
    async fn lock(
        tx: &mut Transaction<'static, Postgres>,
        id: &str,
    ) -> Result<Handoff, StoreError> {
        Self::read(tx, id, "SELECT * FROM handoffs WHERE id = $1 FOR UPDATE").await
    }

    /// The handoff `id`, locked, if `worker` holds a live lease on it.
    async fn held(
        tx: &mut Transaction<'static, Postgres>,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
    ) -> Result<Handoff, StoreError> {
        let handoff = Self::lock(tx, id).await?;
        rows::check_holder(&handoff, worker, now)?;
        Ok(handoff)
    }

    /// The handoff `id` as this transaction sees it.
    async fn fetch(
        tx: &mut Transaction<'static, Postgres>,
        id: &str,
    ) -> Result<Handoff, StoreError> {
        Self::read(tx, id, "SELECT * FROM handoffs WHERE id = $1").await
    }

    /// The handoff `id`, read by `query` (which binds it as `$1`).
    async fn read(
        tx: &mut Transaction<'static, Postgres>,
        id: &str,
        query: &'static str,
    ) -> Result<Handoff, StoreError> {
        let row = sqlx::query(query)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        rows::handoff(&row)
    }
}

/// Idempotency keys held across the fleet (see [`PgStore::hold_keys`]).
/// The embedded store has no other host to hold them against: its
/// `HeldKeys` holds nothing.
#[derive(Debug, Default)]
pub struct HeldKeys(Option<PoolConnection<Postgres>>);

impl HeldKeys {
    /// Lets the keys go, keeping the connection for the pool's next user;
    /// if unlocking fails, the connection is closed instead, which lets
    /// them go too.
    pub async fn release(mut self) {
        let Some(mut connection) = self.0.take() else {
            return;
        };
        let unlocked = sqlx::query("SELECT pg_advisory_unlock_all()")
            .execute(&mut *connection)
            .await;
        if unlocked.is_err() {
            connection.close_on_drop();
        }
    }
}

/// A connection holding locks never goes back to the pool: dropped before
/// [`HeldKeys::release`] (an error, a caller gone, even mid-lock), it
/// closes, and PostgreSQL lets its locks go.
impl Drop for HeldKeys {
    fn drop(&mut self) {
        if let Some(connection) = self.0.as_mut() {
            connection.close_on_drop();
        }
    }
}

/// Where an idempotency key's lock is.
fn key_hash(key: &str) -> i32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.as_bytes());
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Ends `tx` before answering `error`: a refused change has locked its
/// row, and a transaction merely dropped is rolled back only when its
/// connection is next used, so until then a claim would skip the row.
async fn rolled_back<T>(
    tx: Transaction<'static, Postgres>,
    error: StoreError,
) -> Result<T, StoreError> {
    if let Err(rollback) = tx.rollback().await {
        tracing::warn!(%rollback, "cannot roll back a refused change; its connection is dropped");
    }
    Err(error)
}

/// What the listener wakes, by channel.
struct Wake {
    /// On [`CHANGES`].
    changed: Arc<Notify>,
    /// On [`PUBLISHED`].
    published: Arc<Notify>,
}

impl Wake {
    /// Anything may have happened (the listener was not listening).
    fn everything(&self) {
        self.changed.notify_waiters();
        self.published.notify_waiters();
    }
}

/// Follows [`CHANGES`] and [`PUBLISHED`] for as long as the pool is open,
/// waking what waits on each notification, and everything after every
/// reconnection.
async fn listen(pool: PgPool, wake: Wake, shown: String) {
    loop {
        if pool.is_closed() {
            return;
        }
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(store = %shown, %error, "cannot listen for handoff changes; retrying");
                tokio::time::sleep(LISTEN_RETRY).await;
                continue;
            }
        };
        if let Err(error) = listener.listen_all([CHANGES, PUBLISHED]).await {
            tracing::warn!(store = %shown, %error, "cannot listen for handoff changes; retrying");
            tokio::time::sleep(LISTEN_RETRY).await;
            continue;
        }
        // Whatever changed before the listener was in place is seen now.
        wake.everything();
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) if notification.channel() == PUBLISHED => {
                    wake.published.notify_waiters()
                }
                Ok(Some(_)) => wake.changed.notify_waiters(),
                // The connection was lost, and is made again on the next
                // call: anything may have changed in between.
                Ok(None) => wake.everything(),
                // The pool closed, or the connection cannot be made again.
                Err(error) => {
                    if pool.is_closed() {
                        return;
                    }
                    tracing::warn!(store = %shown, %error, "lost the handoff change listener; reconnecting");
                    tokio::time::sleep(LISTEN_RETRY).await;
                    break;
                }
            }
        }
    }
}

/// sqlx's message about `url`, with the password (if any) taken out.
fn redact_error(message: &str, url: &str) -> String {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
    {
        Some(password) if !password.is_empty() => message.replace(&password, "***"),
        _ => message.to_string(),
    }
}

/// One event to append, once the transaction's row locks are held.
struct NewEvent<'a> {
    handoff: &'a str,
    kind: &'a str,
    actor: &'a str,
    detail: serde_json::Value,
}

impl PgStore {
    /// Appends `events` in order, under the event-order lock (see the
    /// module documentation), then chains `records` (a decision's, already
    /// serialized) and each event's own record to this node's audit chain:
    /// call it after the transaction's last row lock.
    async fn append_events(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        at: DateTime<Utc>,
        mut records: Vec<String>,
        events: &[NewEvent<'_>],
    ) -> Result<(), StoreError> {
        if !events.is_empty() {
            // The notification is delivered at commit, once per transaction
            // (PostgreSQL folds identical ones), and never if it rolls back.
            sqlx::query("SELECT pg_advisory_xact_lock($1), pg_notify($2, '')")
                .bind(EVENT_ORDER_LOCK)
                .bind(CHANGES)
                .execute(&mut **tx)
                .await?;
        }
        let at = rows::time(millis(at));
        for event in events {
            let (store_seq, item): (i64, Option<String>) = sqlx::query_as(
                "INSERT INTO events (handoff, at, kind, actor, detail) VALUES ($1, $2, $3, $4, $5)
                 RETURNING seq, (SELECT item_id FROM handoffs WHERE id = $1)",
            )
            .bind(event.handoff)
            .bind(millis(at))
            .bind(event.kind)
            .bind(event.actor)
            .bind(event.detail.to_string())
            .fetch_one(&mut **tx)
            .await?;
            let recorded = Body::Handoff {
                event: HandoffEvent {
                    store_seq,
                    handoff: event.handoff.to_string(),
                    item: item.unwrap_or_default(),
                    kind: event.kind.to_string(),
                    actor: event.actor.to_string(),
                    at,
                    detail: event.detail.clone(),
                },
            };
            records.push(
                serde_json::to_string(&recorded).map_err(|e| StoreError::Corrupt {
                    what: format!("the audit record of event {store_seq}"),
                    detail: e.to_string(),
                })?,
            );
        }
        self.ledger.append(tx, &records).await
    }

    /// Appends one event (after `records`), reads back the handoff's new
    /// state and commits.
    async fn commit_with_event(
        &self,
        mut tx: Transaction<'static, Postgres>,
        at: DateTime<Utc>,
        records: Vec<String>,
        event: NewEvent<'_>,
    ) -> Result<Handoff, StoreError> {
        let id = event.handoff.to_string();
        self.append_events(&mut tx, at, records, &[event]).await?;
        let changed = PgStore::fetch(&mut tx, &id).await?;
        tx.commit().await?;
        Ok(changed)
    }
}

/// The PostgreSQL store's decision writer: a group's rows and their audit
/// records in one transaction, on a pooled connection (sqlx's PostgreSQL
/// pool costs no extra round trip to the same thread, unlike SQLite's).
struct PgWriter {
    pool: PgPool,
    ledger: Ledger,
}

impl GroupWriter for PgWriter {
    async fn insert(&mut self, rows: &[&DecisionRow]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_decisions(&mut tx, rows).await?;
        self.ledger.append(&mut tx, &records_of(rows)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn close(&mut self) {}
}

/// The audit records of decision rows, in order.
fn records_of(decisions: &[&DecisionRow]) -> Vec<String> {
    decisions
        .iter()
        .flat_map(|row| row.audit.iter().cloned())
        .collect()
}

async fn insert_decisions(
    tx: &mut Transaction<'static, Postgres>,
    decisions: &[&DecisionRow],
) -> Result<(), StoreError> {
    for chunk in decisions.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Postgres>::new(
            "INSERT INTO decisions (item_id, tier, driver, reason_code, trigger, confidence, at) ",
        );
        insert.push_values(chunk, |mut values, row| {
            values
                .push_bind(&row.item_id)
                .push_bind(row.tier.as_str())
                .push_bind(&row.driver)
                .push_bind(&row.reason_code)
                .push_bind(row.trigger.map(|t| t.as_str()))
                .push_bind(row.confidence)
                .push_bind(millis(row.at));
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

impl HandoffStore for PgStore {
    async fn record_autonomous(&self, decision: &DecisionRow) -> Result<(), StoreError> {
        self.record_autonomous_many(vec![decision.clone()]).await
    }

    async fn record_autonomous_many(&self, decisions: Vec<DecisionRow>) -> Result<(), StoreError> {
        match self.decisions.commit(decisions).await {
            Ok(committed) => committed,
            Err(rows) => {
                let mut writer = PgWriter {
                    pool: self.pool.clone(),
                    ledger: self.ledger.clone(),
                };
                writer.insert(&rows.iter().collect::<Vec<_>>()).await
            }
        }
    }

    async fn count_attempt(&self, item_id: &str, at: DateTime<Utc>) -> Result<u32, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "INSERT INTO attempts (item_id, count, last_at) VALUES ($1, 1, $2)
             ON CONFLICT (item_id) DO UPDATE SET count = attempts.count + 1,
                last_at = excluded.last_at
             RETURNING count",
        )
        .bind(item_id)
        .bind(millis(at))
        .fetch_one(&self.pool)
        .await?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    async fn attempts(&self, item_id: &str) -> Result<u32, StoreError> {
        let count: Option<i64> =
            sqlx::query_scalar("SELECT count FROM attempts WHERE item_id = $1")
                .bind(item_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(count.map_or(0, |c| u32::try_from(c).unwrap_or(u32::MAX)))
    }

    async fn prior(&self, item_id: &str) -> Result<Vec<PriorHandoff>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, tier, state, reason_code, resolution, created_at FROM handoffs
             WHERE item_id = $1 ORDER BY created_at, id",
        )
        .bind(item_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::prior).collect()
    }

    async fn enqueue(
        &self,
        decision: &DecisionRow,
        handoff: &NewHandoff,
        at: DateTime<Utc>,
    ) -> Result<Handoff, StoreError> {
        let payload =
            rows::to_json_text(&handoff.payload, || format!("payload of {}", handoff.id))?;
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO handoffs (id, item_id, tier, role, state, reason_code, driver, confidence,
                created_at, ack_deadline, resolve_deadline, payload)
             VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&handoff.id)
        .bind(&decision.item_id)
        .bind(handoff.tier.as_str())
        .bind(&handoff.role)
        .bind(&decision.reason_code)
        .bind(&decision.driver)
        .bind(decision.confidence)
        .bind(millis(at))
        .bind(millis(handoff.ack_deadline))
        .bind(millis(handoff.resolve_deadline))
        .bind(payload)
        .execute(&mut *tx)
        .await?;
        insert_decisions(&mut tx, &[decision]).await?;
        let event = NewEvent {
            handoff: &handoff.id,
            kind: "enqueued",
            actor: "dispatcher",
            detail: rows::enqueued_detail(decision, handoff),
        };
        self.commit_with_event(tx, at, decision.audit.clone(), event)
            .await
    }

    async fn claim(
        &self,
        role: &str,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Handoff>, StoreError> {
        let mut tx = self.write().await?;
        // The claim must read `handoffs_claim_order` and stop at its first
        // free row. The planner's statistics lag a burst of enqueues until
        // autovacuum's next analyze (up to a minute); meanwhile, taking the
        // table for nearly empty, it chose a bitmap scan and sorted the
        // role's whole queue, payloads and all, on disk: 22 ms a claim
        // instead of 0.08 ms on 5,000 queued handoffs. With sorting ruled
        // out for this transaction only the index gives the order.
        sqlx::query("SELECT set_config('enable_sort', 'off', true)")
            .execute(&mut *tx)
            .await?;
        let next = sqlx::query(&format!(
            "SELECT * FROM handoffs WHERE role = $1 AND state <> 'resolved'
               AND (state = 'queued' OR (state IN ('claimed', 'acknowledged') AND lease_expires <= $2))
             ORDER BY {NEXT_DEADLINE}, created_at, id LIMIT 1
             FOR UPDATE SKIP LOCKED"
        ))
        .bind(role)
        .bind(millis(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = next else {
            return Ok(None);
        };
        let before = rows::handoff(&row)?;
        let expires = now + lease;
        sqlx::query(
            "UPDATE handoffs SET
                state = CASE WHEN acked_at IS NULL THEN 'claimed' ELSE 'acknowledged' END,
                lease_owner = $1, lease_expires = $2, claims = claims + 1
             WHERE id = $3",
        )
        .bind(worker)
        .bind(millis(expires))
        .bind(&before.id)
        .execute(&mut *tx)
        .await?;
        let mut events = Vec::with_capacity(2);
        if let Some(previous) = &before.lease_owner
            && before.state != HandoffState::Queued
        {
            events.push(NewEvent {
                handoff: &before.id,
                kind: "lease-expired",
                actor: previous,
                detail: json!({"expired_at": before.lease_expires}),
            });
        }
        events.push(NewEvent {
            handoff: &before.id,
            kind: "claimed",
            actor: worker,
            detail: json!({"lease_expires": expires}),
        });
        self.append_events(&mut tx, now, Vec::new(), &events)
            .await?;
        let claimed = Self::fetch(&mut tx, &before.id).await?;
        tx.commit().await?;
        Ok(Some(claimed))
    }

    async fn acknowledge(
        &self,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Handoff, StoreError> {
        let mut tx = self.write().await?;
        let handoff = match Self::held(&mut tx, id, worker, now).await {
            Ok(handoff) => handoff,
            Err(error) => return rolled_back(tx, error).await,
        };
        if handoff.acked_at.is_some() {
            return Ok(handoff);
        }
        sqlx::query(
            "UPDATE handoffs SET state = 'acknowledged', acked_at = $1,
                lease_expires = GREATEST(lease_expires, $2) WHERE id = $3",
        )
        .bind(millis(now))
        .bind(millis(now + lease))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let late = now > handoff.ack_deadline;
        let event = NewEvent {
            handoff: id,
            kind: "acknowledged",
            actor: worker,
            detail: json!({"late": late}),
        };
        self.commit_with_event(tx, now, Vec::new(), event).await
    }

    async fn resolve(
        &self,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
        resolution: &Resolution,
    ) -> Result<Handoff, StoreError> {
        let mut tx = self.write().await?;
        let handoff = match Self::held(&mut tx, id, worker, now).await {
            Ok(handoff) => handoff,
            Err(error) => return rolled_back(tx, error).await,
        };
        let stored = rows::to_json_text(resolution, || format!("resolution of {id}"))?;
        let late = rows::resolved_late(&handoff, now);
        sqlx::query(
            "UPDATE handoffs SET state = 'resolved', resolved_at = $1,
                acked_at = COALESCE(acked_at, $1), resolution = $2, lease_owner = NULL,
                lease_expires = NULL, breached = breached OR $3
             WHERE id = $4",
        )
        .bind(millis(now))
        .bind(stored)
        .bind(late)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let event = NewEvent {
            handoff: id,
            kind: "resolved",
            actor: worker,
            detail: json!({"resolution": resolution, "late": late}),
        };
        self.commit_with_event(tx, now, Vec::new(), event).await
    }

    async fn renew(
        &self,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Handoff, StoreError> {
        let mut tx = self.write().await?;
        let handoff = match Self::held(&mut tx, id, worker, now).await {
            Ok(handoff) => handoff,
            Err(error) => return rolled_back(tx, error).await,
        };
        let expires = now + lease;
        sqlx::query(
            "UPDATE handoffs SET lease_expires = GREATEST(lease_expires, $1) WHERE id = $2",
        )
        .bind(millis(expires))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let event = NewEvent {
            handoff: id,
            kind: "renewed",
            actor: worker,
            detail: json!({"lease_expires": expires.max(handoff.lease_expires.unwrap_or(expires))}),
        };
        self.commit_with_event(tx, now, Vec::new(), event).await
    }

    async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<(String, String)>, StoreError> {
        let mut tx = self.write().await?;
        // Rows another node is changing right now are left to it (or to
        // the next tick): a lease sweep never waits for a claim.
        let rows = sqlx::query(
            "UPDATE handoffs h SET state = 'queued', lease_owner = NULL, lease_expires = NULL
               FROM (SELECT id, lease_owner, lease_expires FROM handoffs
                      WHERE state IN ('claimed', 'acknowledged') AND lease_owner IS NOT NULL
                        AND lease_expires <= $1
                      ORDER BY lease_expires, id LIMIT 500
                      FOR UPDATE SKIP LOCKED) old
              WHERE h.id = old.id
          RETURNING old.id, old.lease_owner, old.lease_expires",
        )
        .bind(millis(now))
        .fetch_all(&mut *tx)
        .await?;
        let mut expired = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("id")?;
            let holder: String = row.try_get("lease_owner")?;
            let until: i64 = row.try_get("lease_expires")?;
            expired.push((until, id, holder));
        }
        expired.sort();
        let events: Vec<NewEvent<'_>> = expired
            .iter()
            .map(|(until, id, holder)| NewEvent {
                handoff: id,
                kind: "lease-expired",
                actor: holder,
                detail: json!({"expired_at": rows::time(*until)}),
            })
            .collect();
        self.append_events(&mut tx, now, Vec::new(), &events)
            .await?;
        drop(events);
        tx.commit().await?;
        Ok(expired
            .into_iter()
            .map(|(_, id, holder)| (id, holder))
            .collect())
    }

    async fn release(
        &self,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
    ) -> Result<Handoff, StoreError> {
        let mut tx = self.write().await?;
        if let Err(error) = Self::held(&mut tx, id, worker, now).await {
            return rolled_back(tx, error).await;
        }
        sqlx::query(
            "UPDATE handoffs SET state = 'queued', lease_owner = NULL, lease_expires = NULL
              WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let event = NewEvent {
            handoff: id,
            kind: "released",
            actor: worker,
            detail: json!({}),
        };
        self.commit_with_event(tx, now, Vec::new(), event).await
    }

    async fn probe(&self) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO probe (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        )
        .bind(millis(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Handoff, StoreError> {
        let row = sqlx::query("SELECT * FROM handoffs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        rows::handoff(&row)
    }

    async fn list(
        &self,
        filter: &ListFilter,
        now: DateTime<Utc>,
    ) -> Result<Vec<Handoff>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT * FROM handoffs WHERE ($1::text IS NULL OR role = $1)
                AND ($2::text IS NULL OR item_id = $2)
             ORDER BY state = 'resolved', {NEXT_DEADLINE}, created_at, id"
        ))
        .bind(&filter.role)
        .bind(&filter.item_id)
        .fetch_all(&self.pool)
        .await?;
        let mut handoffs = Vec::with_capacity(rows.len());
        for row in &rows {
            let handoff = rows::handoff(row)?.as_of(now);
            if filter.state.is_none_or(|state| state == handoff.state) {
                handoffs.push(handoff);
            }
        }
        Ok(handoffs)
    }

    async fn breached(&self, now: DateTime<Utc>) -> Result<Vec<(Handoff, Breach)>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM handoffs WHERE state <> 'resolved' AND (
                (acked_at IS NULL AND ack_deadline <= $1 AND NOT ack_breach_handled)
                OR (resolve_deadline <= $1 AND NOT resolve_breach_handled))
             ORDER BY created_at, id",
        )
        .bind(millis(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| rows::breach_of(row, now)).collect()
    }

    async fn escalate(
        &self,
        id: &str,
        from: Tier,
        breach: Breach,
        to: &Escalation,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        // Under the row lock: whichever node's clock comes second finds the
        // handoff already moved and does nothing.
        let handoff = Self::lock(&mut tx, id).await?;
        if handoff.tier != from || handoff.state == HandoffState::Resolved {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE handoffs SET tier = $1, role = $2, state = 'queued', lease_owner = NULL,
                lease_expires = NULL, acked_at = NULL, ack_deadline = $3, resolve_deadline = $4,
                escalations = escalations + 1, breached = TRUE,
                ack_breach_handled = FALSE, resolve_breach_handled = FALSE
             WHERE id = $5",
        )
        .bind(to.tier.as_str())
        .bind(&to.role)
        .bind(millis(to.ack_deadline))
        .bind(millis(to.resolve_deadline))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let event = NewEvent {
            handoff: id,
            kind: "escalated",
            actor: "sla",
            detail: rows::escalated_detail(&handoff, from, breach, to),
        };
        self.append_events(&mut tx, now, Vec::new(), &[event])
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn alert(
        &self,
        id: &str,
        breach: Breach,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let column = match breach {
            Breach::Acknowledge => "ack_breach_handled",
            Breach::Resolve => "resolve_breach_handled",
        };
        let changed = sqlx::query(&format!(
            "UPDATE handoffs SET {column} = TRUE, breached = TRUE
              WHERE id = $1 AND NOT {column} AND state <> 'resolved'"
        ))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        let handoff = Self::fetch(&mut tx, id).await?;
        let event = NewEvent {
            handoff: id,
            kind: "alert",
            actor: "sla",
            detail: rows::alert_detail(&handoff, breach),
        };
        self.append_events(&mut tx, now, Vec::new(), &[event])
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn record_attempt(
        &self,
        item_id: &str,
        attempt: &AttemptRecord,
    ) -> Result<(), StoreError> {
        let entry = rows::to_json_text(attempt, || "attempt_history.entry".into())?;
        sqlx::query(
            "INSERT INTO attempt_history (item_id, attempt, entry) VALUES ($1, $2, $3)
             ON CONFLICT (item_id, attempt) DO UPDATE SET entry = excluded.entry",
        )
        .bind(item_id)
        .bind(i64::from(attempt.attempt))
        .bind(entry)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn attempt_history(&self, item_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        let entries: Vec<String> = sqlx::query_scalar(
            "SELECT entry FROM attempt_history WHERE item_id = $1 ORDER BY attempt",
        )
        .bind(item_id)
        .fetch_all(&self.pool)
        .await?;
        entries
            .iter()
            .map(|entry| rows::attempt_entry(entry))
            .collect()
    }

    async fn answer_of(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT answer FROM submissions WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn keep_answer(
        &self,
        key: &str,
        item_id: &str,
        answer: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO submissions (key, item_id, answer, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(item_id)
        .bind(answer)
        .bind(millis(at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<HandoffEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.seq, e.handoff, h.item_id, e.at, e.kind, e.actor, e.detail
               FROM events e LEFT JOIN handoffs h ON h.id = e.handoff
              WHERE e.seq > $1 ORDER BY e.seq LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::handoff_event).collect()
    }

    async fn events(&self, handoff: Option<&str>) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM events WHERE ($1::text IS NULL OR handoff = $1) ORDER BY seq",
        )
        .bind(handoff)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::event).collect()
    }

    async fn newest_event(&self) -> Result<i64, StoreError> {
        let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events")
            .fetch_one(&self.pool)
            .await?;
        Ok(newest.unwrap_or(0))
    }

    async fn depth(&self, now: DateTime<Utc>) -> Result<Vec<QueueDepth>, StoreError> {
        let rows = sqlx::query(
            "SELECT tier, role,
                CASE WHEN state <> 'queued' AND (lease_expires IS NULL OR lease_expires <= $1)
                     THEN 'queued' ELSE state END AS live_state,
                COUNT(*) AS n
               FROM handoffs WHERE state <> 'resolved'
              GROUP BY tier, role, live_state ORDER BY tier, role, live_state",
        )
        .bind(millis(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let count: i64 = row.try_get("n")?;
                Ok(QueueDepth {
                    tier: rows::parse(row, "tier")?,
                    role: row.try_get("role")?,
                    state: rows::parse(row, "live_state")?,
                    count: u64::try_from(count).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn decisions(&self) -> Result<Vec<DecisionRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM decisions ORDER BY seq")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::decision).collect()
    }
}
