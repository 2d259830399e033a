//! Group commit of decision rows: the one write every decision makes.
//!
//! Each `INSERT` committed alone costs a round trip to the database's
//! worker and a commit; on a busy server most of that is threads waking
//! each other. Here one writer task takes every row waiting when it is
//! free, from any number of requests, and commits them in one transaction
//! of multi-row inserts. A caller is answered only once its rows are
//! committed, so nothing is acknowledged before it is durable per the
//! store's commit mode. Under light load a group is one row and costs what
//! a lone insert did; under heavy load a commit carries many.

use handoff_model::Named;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::sqlite::millis;
use super::store::{DecisionRow, StoreError};

/// How many submissions may wait for the writer before senders wait too:
/// back-pressure instead of an unbounded queue.
const QUEUE: usize = 1024;

/// The most rows one transaction carries. A group stops growing here, so
/// a commit's latency stays bounded whatever the load.
const GROUP_ROWS: usize = 2048;

/// Rows per `INSERT` statement: 7 parameters each, well under SQLite's
/// 32766-parameter limit.
const ROWS_PER_STATEMENT: usize = 500;

/// Hands decision rows to the writer task.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommit {
    /// None outside a tokio runtime: every commit is then the caller's.
    queue: Option<mpsc::Sender<Pending>>,
}

/// One caller's rows, and where to say they are committed.
struct Pending {
    rows: Vec<DecisionRow>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

impl GroupCommit {
    /// Starts the writer on the current runtime, if there is one. It stops
    /// when the last handle is dropped.
    pub(crate) fn start(pool: &SqlitePool) -> GroupCommit {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return GroupCommit { queue: None };
        };
        let (queue, waiting) = mpsc::channel(QUEUE);
        runtime.spawn(write_groups(pool.clone(), waiting));
        GroupCommit { queue: Some(queue) }
    }

    /// Commits `rows` together, in one transaction with whatever else is
    /// waiting. When the writer is gone (its runtime shut down) the rows
    /// are committed here instead: the writer is a speed-up, never a point
    /// of failure.
    pub(crate) async fn commit(
        &self,
        pool: &SqlitePool,
        rows: Vec<DecisionRow>,
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let Some(queue) = &self.queue else {
            return insert_all(pool, &rows).await;
        };
        let (done, committed) = oneshot::channel();
        match queue.send(Pending { rows, done }).await {
            Ok(()) => match committed.await {
                Ok(result) => result,
                // The writer stopped holding our rows, uncommitted.
                Err(_) => Err(StoreError::Database(sqlx::Error::PoolClosed)),
            },
            Err(mpsc::error::SendError(pending)) => insert_all(pool, &pending.rows).await,
        }
    }
}

/// The writer: takes every submission waiting, up to [`GROUP_ROWS`] rows,
/// commits them, and answers each.
async fn write_groups(pool: SqlitePool, mut waiting: mpsc::Receiver<Pending>) {
    while let Some(first) = waiting.recv().await {
        let mut rows = first.rows.len();
        let mut group = vec![first];
        while rows < GROUP_ROWS {
            match waiting.try_recv() {
                Ok(next) => {
                    rows += next.rows.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        commit_group(&pool, group).await;
    }
}

/// Commits a group in one transaction. If that fails, each submission is
/// committed on its own, so that one caller's failure (a row the database
/// refuses) is that caller's alone and every caller gets its own error.
async fn commit_group(pool: &SqlitePool, group: Vec<Pending>) {
    if group.len() > 1 {
        let all: Vec<&DecisionRow> = group.iter().flat_map(|p| &p.rows).collect();
        if insert_refs(pool, &all).await.is_ok() {
            for pending in group {
                let _ = pending.done.send(Ok(()));
            }
            return;
        }
    }
    for pending in group {
        let result = insert_all(pool, &pending.rows).await;
        // A caller that went away no longer needs its answer.
        let _ = pending.done.send(result);
    }
}

async fn insert_all(pool: &SqlitePool, rows: &[DecisionRow]) -> Result<(), StoreError> {
    let rows: Vec<&DecisionRow> = rows.iter().collect();
    insert_refs(pool, &rows).await
}

/// Inserts `rows` in one transaction: all of them or none. A single row
/// needs no transaction of its own, being one atomic statement.
async fn insert_refs(pool: &SqlitePool, rows: &[&DecisionRow]) -> Result<(), StoreError> {
    if rows.len() <= ROWS_PER_STATEMENT {
        return Ok(insert_statement(rows)
            .build()
            .execute(pool)
            .await
            .map(drop)?);
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        insert_statement(chunk).build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One multi-row `INSERT` of `rows` (the one way a decision row is
/// written, a handoff's included).
pub(crate) fn insert_statement<'a>(rows: &'a [&'a DecisionRow]) -> QueryBuilder<'a, Sqlite> {
    let mut insert = QueryBuilder::new(
        "INSERT INTO decisions (item_id, tier, driver, reason_code, trigger, confidence, at) ",
    );
    insert.push_values(rows, |mut values, row| {
        values
            .push_bind(&row.item_id)
            .push_bind(row.tier.as_str())
            .push_bind(&row.driver)
            .push_bind(&row.reason_code)
            .push_bind(row.trigger.map(|t| t.as_str()))
            .push_bind(row.confidence)
            .push_bind(millis(row.at));
    });
    insert
}
