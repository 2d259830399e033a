//! The embedded handoff store: SQLite in WAL mode, in the data directory.
//!
//! Every state change runs in a `BEGIN IMMEDIATE` transaction, so a
//! transaction that reads before it writes never has to upgrade its lock;
//! SQLite then serializes writers, which is what makes a claim exclusive.
//! (A decision's own row is a single `INSERT`, atomic by itself.) Other
//! processes (`handoff queue ...` beside a running host) wait on the busy
//! timeout rather than fail.

use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::group_commit::GroupCommit;
use super::handoff::{AttemptRecord, Handoff, HandoffState, PriorHandoff, Resolution};
use super::rows::{self, millis};
use super::sqlite_writer::{self, SqliteWriter};
use super::store::{
    Breach, DecisionRow, Escalation, Event, HandoffStore, ListFilter, NewHandoff, QueueDepth,
    StoreError,
};
use super::wal_checkpoint::{self, WalCheckpoints};
use handoff_model::{HandoffEvent, Named, Tier};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY,
    item_id TEXT NOT NULL,
    tier TEXT NOT NULL,
    driver TEXT,
    reason_code TEXT NOT NULL,
    confidence REAL NOT NULL,
    at INTEGER NOT NULL,
    trigger TEXT
);
CREATE INDEX IF NOT EXISTS decisions_by_item ON decisions (item_id);
CREATE TABLE IF NOT EXISTS attempts (
    item_id TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    last_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS handoffs (
    id TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    tier TEXT NOT NULL,
    role TEXT NOT NULL,
    state TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    driver TEXT,
    confidence REAL NOT NULL,
    created_at INTEGER NOT NULL,
    ack_deadline INTEGER NOT NULL,
    resolve_deadline INTEGER NOT NULL,
    lease_owner TEXT,
    lease_expires INTEGER,
    claims INTEGER NOT NULL DEFAULT 0,
    acked_at INTEGER,
    resolved_at INTEGER,
    resolution TEXT,
    escalations INTEGER NOT NULL DEFAULT 0,
    breached INTEGER NOT NULL DEFAULT 0,
    ack_breach_handled INTEGER NOT NULL DEFAULT 0,
    resolve_breach_handled INTEGER NOT NULL DEFAULT 0,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS handoffs_by_role ON handoffs (role, state);
CREATE INDEX IF NOT EXISTS handoffs_by_item ON handoffs (item_id);
-- Claims read open handoffs in this order (the claim query's ORDER BY, word
-- for word), so a claim stops at the first row it may take instead of
-- sorting the role's whole queue.
CREATE INDEX IF NOT EXISTS handoffs_claim_order ON handoffs (
    role,
    (CASE WHEN acked_at IS NULL THEN ack_deadline ELSE resolve_deadline END),
    created_at,
    id
) WHERE state <> 'resolved';
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    handoff TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_handoff ON events (handoff);
CREATE TABLE IF NOT EXISTS probe (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS attempt_history (
    item_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (item_id, attempt)
);
CREATE TABLE IF NOT EXISTS submissions (
    key TEXT PRIMARY KEY,
    item_id TEXT NOT NULL,
    answer TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq INTEGER PRIMARY KEY,
    line TEXT NOT NULL
);
"#;

/// Brings a store made by an earlier version up to [`SCHEMA`]: columns
/// added since are added, empty, before the schema's own statements run
/// (an index on a new column would otherwise fail on an old table).
async fn upgrade(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    const ADDED: &[(&str, &str, &str)] = &[("decisions", "trigger", "TEXT")];
    for (table, column, kind) in ADDED {
        let columns = sqlx::query(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .fetch_all(pool)
            .await?;
        let exists = columns.iter().any(|row| {
            row.try_get::<String, _>("name")
                .is_ok_and(|name| name == *column)
        });
        if !columns.is_empty() && !exists {
            sqlx::query(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// `PRAGMA quick_check`, and a refusal naming what is wrong when it finds
/// anything: a damaged store would take work it cannot give back (handoffs
/// that can never be claimed).
async fn check_integrity(pool: &SqlitePool, path: &Path) -> Result<(), StoreError> {
    let findings: Vec<String> = sqlx::query_scalar("PRAGMA quick_check(5)")
        .fetch_all(pool)
        .await
        .map_err(|e| damaged_or(e, path))?;
    if findings.len() == 1 && findings[0] == "ok" {
        return Ok(());
    }
    pool.close().await;
    Err(StoreError::Damaged {
        path: path.display().to_string(),
        detail: findings.join("; "),
    })
}

/// SQLite's "corrupt" and "not a database" as [`StoreError::Damaged`].
fn damaged_or(error: sqlx::Error, path: &Path) -> StoreError {
    let code = match &error {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<i64>().ok()),
        _ => None,
    };
    match code.map(|c| c & 0xff) {
        Some(SQLITE_CORRUPT | SQLITE_NOTADB) => StoreError::Damaged {
            path: path.display().to_string(),
            detail: match &error {
                sqlx::Error::Database(db) => db.message().to_string(),
                other => other.to_string(),
            },
        },
        _ => StoreError::Database(error),
    }
}

const SQLITE_CORRUPT: i64 = 11;
const SQLITE_NOTADB: i64 = 26;

/// The next deadline, in SQL: acknowledge until acknowledged, then resolve.
const NEXT_DEADLINE: &str =
    "CASE WHEN acked_at IS NULL THEN ack_deadline ELSE resolve_deadline END";

/// When a committed change is on stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Commit {
    /// Synced at every commit (`synchronous = FULL`): a committed change
    /// survives a power cut. Costs an `fsync` per state change, which
    /// bounds a server at a few thousand decisions a second.
    #[default]
    Synced,
    /// Written to the WAL at every commit and synced at checkpoints
    /// (`synchronous = NORMAL`): a committed change survives a crash or kill
    /// of the process; a power cut can lose the last commits, never corrupt
    /// the database. What the audit log's `batch` durability promises too.
    Written,
}

/// The SQLite handoff store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
    decisions: GroupCommit,
    /// The task folding the write-ahead log into the database.
    checkpoints: Option<WalCheckpoints>,
}

impl SqliteStore {
    /// Opens (creating if needed) `handoffs.db` in `dir`, syncing every
    /// commit to disk.
    pub async fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(dir, Commit::Synced).await
    }

    /// Opens (creating if needed) `handoffs.db` in `dir`, with `commit`
    /// deciding when a commit is on stable storage.
    pub async fn open_with(dir: &Path, commit: Commit) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Corrupt {
            what: dir.display().to_string(),
            detail: format!("cannot create the data directory: {e}"),
        })?;
        let path = dir.join("handoffs.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match commit {
                Commit::Synced => SqliteSynchronous::Full,
                Commit::Written => SqliteSynchronous::Normal,
            })
            .busy_timeout(StdDuration::from_secs(30))
            .foreign_keys(true);
        // Inside a runtime the log is checkpointed by a task of its own,
        // off the commit path; a commit checkpoints only as a backstop.
        let in_runtime = tokio::runtime::Handle::try_current().is_ok();
        let options = if in_runtime {
            options.pragma(
                "wal_autocheckpoint",
                wal_checkpoint::BACKSTOP_PAGES.to_string(),
            )
        } else {
            options
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await
            .map_err(|e| damaged_or(e, &path))?;
        check_integrity(&pool, &path).await?;
        upgrade(&pool).await.map_err(|e| damaged_or(e, &path))?;
        sqlx::raw_sql(SCHEMA)
            .execute(&pool)
            .await
            .map_err(|e| damaged_or(e, &path))?;
        let decisions = GroupCommit::start(SqliteWriter::new(&pool, options));
        let checkpoints = WalCheckpoints::start(&pool);
        Ok(SqliteStore {
            pool,
            path,
            decisions,
            checkpoints,
        })
    }

    /// The audit checkpoints kept in the store at `path` (a `handoffs.db`),
    /// oldest first, as their JSON lines. Opens it read-only and never
    /// creates it: this is how a verifier reads the store's copy.
    pub async fn read_checkpoints(path: &Path) -> Result<Vec<String>, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .create_if_missing(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| damaged_or(e, path))?;
        let lines = sqlx::query_scalar("SELECT line FROM audit_checkpoints ORDER BY seq")
            .fetch_all(&pool)
            .await;
        pool.close().await;
        Ok(lines?)
    }

    /// Keeps a copy of an audit checkpoint: a second witness, apart from
    /// the checkpoint file.
    pub async fn record_checkpoint(&self, seq: u64, line: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT OR IGNORE INTO audit_checkpoints (seq, line) VALUES (?, ?)")
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .bind(line)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.stop();
        }
        self.decisions.close().await;
        // Fold the write-ahead log into the database, so that a store
        // closed cleanly is one self-contained file (to copy, back up or
        // check). Best effort: another process may hold it open.
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
        {
            tracing::debug!(%error, "cannot fold the store's write-ahead log at close");
        }
        self.pool.close().await;
        // sqlx's `close` can return while a connection is still on its way
        // back to the pool (a spawned task returns it), and that connection
        // then waits in the closed pool's idle queue, holding the file open
        // for the pool's life. Closing again closes what has come back:
        // until the pool is empty, within a bound.
        for _ in 0..100 {
            if self.pool.size() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            let _ = tokio::time::timeout(std::time::Duration::from_millis(100), self.pool.close())
                .await;
        }
    }

    async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn fetch(tx: &mut Transaction<'static, Sqlite>, id: &str) -> Result<Handoff, StoreError> {
        let row = sqlx::query("SELECT * FROM handoffs WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        rows::handoff(&row)
    }

    /// The handoff `id`, if `worker` holds a live lease on it: what every
    /// change only the holder may make starts with.
    async fn held(
        tx: &mut Transaction<'static, Sqlite>,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
    ) -> Result<Handoff, StoreError> {
        let handoff = Self::fetch(tx, id).await?;
        rows::check_holder(&handoff, worker, now)?;
        Ok(handoff)
    }
}

async fn insert_event(
    tx: &mut Transaction<'static, Sqlite>,
    handoff: &str,
    at: DateTime<Utc>,
    kind: &str,
    actor: &str,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO events (handoff, at, kind, actor, detail) VALUES (?, ?, ?, ?, ?)")
        .bind(handoff)
        .bind(millis(at))
        .bind(kind)
        .bind(actor)
        .bind(detail.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records `kind` against the handoff, reads back its new state and commits
/// both, so that a state change never lands without its event.
async fn commit_with_event(
    mut tx: Transaction<'static, Sqlite>,
    handoff: &str,
    at: DateTime<Utc>,
    kind: &str,
    actor: &str,
    detail: serde_json::Value,
) -> Result<Handoff, StoreError> {
    insert_event(&mut tx, handoff, at, kind, actor, detail).await?;
    let changed = SqliteStore::fetch(&mut tx, handoff).await?;
    tx.commit().await?;
    Ok(changed)
}

impl HandoffStore for SqliteStore {
    async fn record_autonomous(&self, decision: &DecisionRow) -> Result<(), StoreError> {
        self.record_autonomous_many(vec![decision.clone()]).await
    }

    async fn record_autonomous_many(&self, decisions: Vec<DecisionRow>) -> Result<(), StoreError> {
        match self.decisions.commit(decisions).await {
            Ok(committed) => committed,
            Err(rows) => sqlite_writer::insert_pooled(&self.pool, &rows).await,
        }
    }

    async fn count_attempt(&self, item_id: &str, at: DateTime<Utc>) -> Result<u32, StoreError> {
        let mut tx = self.write().await?;
        let count: i64 = sqlx::query_scalar(
            "INSERT INTO attempts (item_id, count, last_at) VALUES (?, 1, ?)
             ON CONFLICT (item_id) DO UPDATE SET count = count + 1, last_at = excluded.last_at
             RETURNING count",
        )
        .bind(item_id)
        .bind(millis(at))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(count as u32)
    }

    async fn attempts(&self, item_id: &str) -> Result<u32, StoreError> {
        let count: Option<i64> = sqlx::query_scalar("SELECT count FROM attempts WHERE item_id = ?")
            .bind(item_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(count.unwrap_or(0) as u32)
    }

    async fn prior(&self, item_id: &str) -> Result<Vec<PriorHandoff>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, tier, state, reason_code, resolution, created_at FROM handoffs
             WHERE item_id = ? ORDER BY created_at, id",
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
             VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
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
        sqlite_writer::insert_statement(&[decision])
            .build()
            .execute(&mut *tx)
            .await?;
        let detail = rows::enqueued_detail(decision, handoff);
        insert_event(&mut tx, &handoff.id, at, "enqueued", "dispatcher", detail).await?;
        let stored = Self::fetch(&mut tx, &handoff.id).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn claim(
        &self,
        role: &str,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Handoff>, StoreError> {
        let mut tx = self.write().await?;
        let next = sqlx::query(&format!(
            "SELECT * FROM handoffs WHERE role = ? AND state <> 'resolved'
               AND (state = 'queued' OR (state IN ('claimed', 'acknowledged') AND lease_expires <= ?))
             ORDER BY {NEXT_DEADLINE}, created_at, id LIMIT 1"
        ))
        .bind(role)
        .bind(millis(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = next else {
            return Ok(None);
        };
        let before = rows::handoff(&row)?;
        if let Some(previous) = &before.lease_owner
            && before.state != HandoffState::Queued
        {
            insert_event(
                &mut tx,
                &before.id,
                now,
                "lease-expired",
                previous,
                json!({"expired_at": before.lease_expires}),
            )
            .await?;
        }
        let expires = now + lease;
        sqlx::query(
            "UPDATE handoffs SET
                state = CASE WHEN acked_at IS NULL THEN 'claimed' ELSE 'acknowledged' END,
                lease_owner = ?, lease_expires = ?, claims = claims + 1
             WHERE id = ?",
        )
        .bind(worker)
        .bind(millis(expires))
        .bind(&before.id)
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            &before.id,
            now,
            "claimed",
            worker,
            json!({"lease_expires": expires}),
        )
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
        let handoff = Self::held(&mut tx, id, worker, now).await?;
        if handoff.acked_at.is_some() {
            return Ok(handoff);
        }
        sqlx::query(
            "UPDATE handoffs SET state = 'acknowledged', acked_at = ?,
                lease_expires = MAX(lease_expires, ?) WHERE id = ?",
        )
        .bind(millis(now))
        .bind(millis(now + lease))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let late = now > handoff.ack_deadline;
        commit_with_event(tx, id, now, "acknowledged", worker, json!({"late": late})).await
    }

    async fn resolve(
        &self,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
        resolution: &Resolution,
    ) -> Result<Handoff, StoreError> {
        let mut tx = self.write().await?;
        let handoff = Self::held(&mut tx, id, worker, now).await?;
        let stored = rows::to_json_text(resolution, || format!("resolution of {id}"))?;
        let late = rows::resolved_late(&handoff, now);
        sqlx::query(
            "UPDATE handoffs SET state = 'resolved', resolved_at = ?, acked_at = COALESCE(acked_at, ?),
                resolution = ?, lease_owner = NULL, lease_expires = NULL,
                breached = breached OR ?
             WHERE id = ?",
        )
        .bind(millis(now))
        .bind(millis(now))
        .bind(stored)
        .bind(late)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let detail = json!({"resolution": resolution, "late": late});
        commit_with_event(tx, id, now, "resolved", worker, detail).await
    }

    async fn renew(
        &self,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Handoff, StoreError> {
        let mut tx = self.write().await?;
        let handoff = Self::held(&mut tx, id, worker, now).await?;
        let expires = now + lease;
        sqlx::query("UPDATE handoffs SET lease_expires = MAX(lease_expires, ?) WHERE id = ?")
            .bind(millis(expires))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let detail =
            json!({"lease_expires": expires.max(handoff.lease_expires.unwrap_or(expires))});
        commit_with_event(tx, id, now, "renewed", worker, detail).await
    }

    async fn expire_leases(&self, now: DateTime<Utc>) -> Result<Vec<(String, String)>, StoreError> {
        let mut tx = self.write().await?;
        let rows = sqlx::query(
            "SELECT id, lease_owner, lease_expires FROM handoffs
              WHERE state IN ('claimed', 'acknowledged') AND lease_owner IS NOT NULL
                AND lease_expires <= ?
              ORDER BY lease_expires, id LIMIT 500",
        )
        .bind(millis(now))
        .fetch_all(&mut *tx)
        .await?;
        let mut expired = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("id")?;
            let holder: String = row.try_get("lease_owner")?;
            let until = rows::time(row.try_get("lease_expires")?);
            sqlx::query(
                "UPDATE handoffs SET state = 'queued', lease_owner = NULL, lease_expires = NULL
                  WHERE id = ?",
            )
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            insert_event(
                &mut tx,
                &id,
                now,
                "lease-expired",
                &holder,
                json!({"expired_at": until}),
            )
            .await?;
            expired.push((id, holder));
        }
        tx.commit().await?;
        Ok(expired)
    }

    async fn release(
        &self,
        id: &str,
        worker: &str,
        now: DateTime<Utc>,
    ) -> Result<Handoff, StoreError> {
        let mut tx = self.write().await?;
        Self::held(&mut tx, id, worker, now).await?;
        sqlx::query(
            "UPDATE handoffs SET state = 'queued', lease_owner = NULL, lease_expires = NULL WHERE id = ?",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        commit_with_event(tx, id, now, "released", worker, json!({})).await
    }

    async fn probe(&self) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        )
        .bind(millis(Utc::now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Handoff, StoreError> {
        let row = sqlx::query("SELECT * FROM handoffs WHERE id = ?")
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
            "SELECT * FROM handoffs WHERE (? IS NULL OR role = ?) AND (? IS NULL OR item_id = ?)
             ORDER BY state = 'resolved', {NEXT_DEADLINE}, created_at, id"
        ))
        .bind(&filter.role)
        .bind(&filter.role)
        .bind(&filter.item_id)
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
            "SELECT * FROM handoffs WHERE state != 'resolved' AND (
                (acked_at IS NULL AND ack_deadline <= ? AND ack_breach_handled = 0)
                OR (resolve_deadline <= ? AND resolve_breach_handled = 0))
             ORDER BY created_at, id",
        )
        .bind(millis(now))
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
        let handoff = Self::fetch(&mut tx, id).await?;
        if handoff.tier != from || handoff.state == HandoffState::Resolved {
            return Ok(false);
        }
        // A new tier starts new clocks, and a new human starts afresh.
        sqlx::query(
            "UPDATE handoffs SET tier = ?, role = ?, state = 'queued', lease_owner = NULL,
                lease_expires = NULL, acked_at = NULL, ack_deadline = ?, resolve_deadline = ?,
                escalations = escalations + 1, breached = 1,
                ack_breach_handled = 0, resolve_breach_handled = 0
             WHERE id = ?",
        )
        .bind(to.tier.as_str())
        .bind(&to.role)
        .bind(millis(to.ack_deadline))
        .bind(millis(to.resolve_deadline))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        insert_event(
            &mut tx,
            id,
            now,
            "escalated",
            "sla",
            rows::escalated_detail(&handoff, from, breach, to),
        )
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
            "UPDATE handoffs SET {column} = 1, breached = 1 WHERE id = ? AND {column} = 0 AND state != 'resolved'"
        ))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        let handoff = Self::fetch(&mut tx, id).await?;
        insert_event(
            &mut tx,
            id,
            now,
            "alert",
            "sla",
            rows::alert_detail(&handoff, breach),
        )
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
            "INSERT OR REPLACE INTO attempt_history (item_id, attempt, entry) VALUES (?, ?, ?)",
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
            "SELECT entry FROM attempt_history WHERE item_id = ? ORDER BY attempt",
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
            sqlx::query_scalar("SELECT answer FROM submissions WHERE key = ?")
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
            "INSERT OR IGNORE INTO submissions (key, item_id, answer, at) VALUES (?, ?, ?, ?)",
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
            "SELECT e.seq, e.handoff, h.item_id, e.at, e.kind, e.actor, e.detail \
             FROM events e LEFT JOIN handoffs h ON h.id = e.handoff \
             WHERE e.seq > ? ORDER BY e.seq LIMIT ?",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::handoff_event).collect()
    }

    async fn events(&self, handoff: Option<&str>) -> Result<Vec<Event>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM events WHERE (? IS NULL OR handoff = ?) ORDER BY seq")
                .bind(handoff)
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
                CASE WHEN state != 'queued' AND (lease_expires IS NULL OR lease_expires <= ?)
                     THEN 'queued' ELSE state END AS live_state,
                COUNT(*) AS n
             FROM handoffs WHERE state != 'resolved'
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A store made before decisions recorded their trigger kind opens, keeps
    /// its rows (with no trigger kind), and records the kind from then on.
    #[tokio::test]
    async fn a_store_from_an_earlier_version_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("handoffs.db");
        let old = SqlitePoolOptions::new()
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE decisions (seq INTEGER PRIMARY KEY, item_id TEXT NOT NULL,
                tier TEXT NOT NULL, driver TEXT, reason_code TEXT NOT NULL,
                confidence REAL NOT NULL, at INTEGER NOT NULL);
             INSERT INTO decisions (item_id, tier, driver, reason_code, confidence, at)
                VALUES ('old', 'none', NULL, 'proceed', 0.9, 0);",
        )
        .execute(&old)
        .await
        .unwrap();
        old.close().await;

        let store = SqliteStore::open(dir.path()).await.unwrap();
        let row = DecisionRow {
            item_id: "new".into(),
            tier: Tier::Operator,
            driver: Some("gate".into()),
            reason_code: "confidence.low".into(),
            trigger: Some(handoff_model::TriggerKind::Probabilistic),
            confidence: 0.4,
            at: rows::time(1_000),
            audit: Vec::new(),
        };
        store.record_autonomous(&row).await.unwrap();
        let decisions = store.decisions().await.unwrap();
        assert_eq!(decisions.len(), 2);
        assert_eq!(
            (decisions[0].item_id.as_str(), decisions[0].trigger),
            ("old", None)
        );
        assert_eq!(decisions[1], row);
        store.close().await;
        // Opening again changes nothing.
        let again = SqliteStore::open(dir.path()).await.unwrap();
        assert_eq!(again.decisions().await.unwrap().len(), 2);
    }
}
