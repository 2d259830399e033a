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
//!
//! The writer keeps a connection of its own rather than borrowing one from
//! the pool per group: a pooled connection is pinged by sqlx on every
//! return (a second round trip to its worker thread) and returned by a
//! spawned task, which together cost more than the insert.

use handoff_model::Named;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Sqlite, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::rows::millis;
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
    queue: Option<mpsc::Sender<Message>>,
}

/// What the writer is asked to do.
enum Message {
    /// Commit these rows.
    Rows(Pending),
    /// Close the writer's connection and stop, saying so when done: the
    /// store is closing and its file must be let go.
    Close(oneshot::Sender<()>),
}

/// One caller's rows, and where to say they are committed.
struct Pending {
    rows: Vec<DecisionRow>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

impl GroupCommit {
    /// Starts the writer on the current runtime, if there is one, with its
    /// own connection made from `options` (the pool's). It stops when the
    /// last handle is dropped or [`GroupCommit::close`] is called.
    pub(crate) fn start(pool: &SqlitePool, options: SqliteConnectOptions) -> GroupCommit {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return GroupCommit { queue: None };
        };
        let (queue, waiting) = mpsc::channel(QUEUE);
        let writer = Writer {
            pool: pool.clone(),
            options,
            connection: None,
        };
        runtime.spawn(writer.run(waiting));
        GroupCommit { queue: Some(queue) }
    }

    /// Commits `rows` together, in one transaction with whatever else is
    /// waiting. When the writer is gone (its runtime shut down, or the
    /// store closed) the rows are committed here instead, through the
    /// pool: the writer is a speed-up, never a point of failure.
    pub(crate) async fn commit(
        &self,
        pool: &SqlitePool,
        rows: Vec<DecisionRow>,
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let Some(queue) = &self.queue else {
            return insert_pooled(pool, &rows).await;
        };
        let (done, committed) = oneshot::channel();
        match queue.send(Message::Rows(Pending { rows, done })).await {
            Ok(()) => match committed.await {
                Ok(result) => result,
                // The writer stopped holding our rows, uncommitted.
                Err(_) => Err(StoreError::Database(sqlx::Error::PoolClosed)),
            },
            Err(mpsc::error::SendError(message)) => match message {
                Message::Rows(pending) => insert_pooled(pool, &pending.rows).await,
                Message::Close(_) => Ok(()),
            },
        }
    }

    /// Commits what is waiting, closes the writer's connection and stops
    /// the writer; later commits go through the pool.
    pub(crate) async fn close(&self) {
        let Some(queue) = &self.queue else {
            return;
        };
        let (closed, done) = oneshot::channel();
        if queue.send(Message::Close(closed)).await.is_ok() {
            let _ = done.await;
        }
    }
}

/// The writer task's state: its connection, opened when first needed and
/// opened again after a failure.
struct Writer {
    pool: SqlitePool,
    options: SqliteConnectOptions,
    connection: Option<SqliteConnection>,
}

impl Writer {
    /// Takes every submission waiting, up to [`GROUP_ROWS`] rows, commits
    /// them, and answers each; until closed or every sender is gone.
    async fn run(mut self, mut waiting: mpsc::Receiver<Message>) {
        let mut closing = None;
        while let Some(message) = waiting.recv().await {
            let first = match message {
                Message::Rows(pending) => pending,
                Message::Close(closed) => {
                    closing = Some(closed);
                    break;
                }
            };
            // Let the tasks already woken submit theirs first: under load
            // the group grows for the cost of one turn of the scheduler
            // (single-item requests 14.7k to 15.8k req/s), and when idle
            // the writer carries on at once.
            tokio::task::yield_now().await;
            let mut rows = first.rows.len();
            let mut group = vec![first];
            while rows < GROUP_ROWS {
                match waiting.try_recv() {
                    Ok(Message::Rows(next)) => {
                        rows += next.rows.len();
                        group.push(next);
                    }
                    Ok(Message::Close(closed)) => {
                        closing = Some(closed);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(group).await;
            if closing.is_some() {
                break;
            }
        }
        // Rows sent after the close are refused by the closed queue, so
        // their senders commit them through the pool themselves.
        waiting.close();
        while let Ok(message) = waiting.try_recv() {
            match message {
                Message::Rows(pending) => self.commit_group(vec![pending]).await,
                Message::Close(closed) => {
                    let _ = closed.send(());
                }
            }
        }
        if let Some(connection) = self.connection.take()
            && let Err(error) = connection.close().await
        {
            tracing::debug!(%error, "cannot close the decision writer's connection");
        }
        if let Some(closed) = closing {
            let _ = closed.send(());
        }
    }

    /// Commits a group in one transaction. If that fails, each submission
    /// is committed on its own, so that one caller's failure (a row the
    /// database refuses) is that caller's alone and every caller gets its
    /// own error.
    async fn commit_group(&mut self, group: Vec<Pending>) {
        if group.len() > 1 {
            let all: Vec<&DecisionRow> = group.iter().flat_map(|p| &p.rows).collect();
            if self.insert(&all).await.is_ok() {
                for pending in group {
                    let _ = pending.done.send(Ok(()));
                }
                return;
            }
        }
        for pending in group {
            let rows: Vec<&DecisionRow> = pending.rows.iter().collect();
            let result = self.insert(&rows).await;
            // A caller that went away no longer needs its answer.
            let _ = pending.done.send(result);
        }
    }

    /// Inserts on the writer's connection, opening it first if needed. A
    /// connection that fails is dropped, to be opened afresh next time; one
    /// that cannot be opened leaves the insert to the pool.
    async fn insert(&mut self, rows: &[&DecisionRow]) -> Result<(), StoreError> {
        if self.connection.is_none() {
            match self.options.connect().await {
                Ok(connection) => self.connection = Some(connection),
                Err(error) => {
                    tracing::warn!(%error, "the decision writer cannot open its connection; using the pool");
                    let mut pooled = self.pool.acquire().await?;
                    return insert_refs(&mut pooled, rows).await;
                }
            }
        }
        let Some(connection) = self.connection.as_mut() else {
            return Err(StoreError::Database(sqlx::Error::PoolClosed));
        };
        let result = insert_refs(connection, rows).await;
        if result.is_err() {
            self.connection = None;
        }
        result
    }
}

/// Inserts `rows` in one transaction through a connection of the pool.
async fn insert_pooled(pool: &SqlitePool, rows: &[DecisionRow]) -> Result<(), StoreError> {
    let rows: Vec<&DecisionRow> = rows.iter().collect();
    let mut pooled = pool.acquire().await?;
    insert_refs(&mut pooled, &rows).await
}

/// Inserts `rows` in one transaction: all of them or none. A single
/// statement needs no transaction of its own, being atomic.
async fn insert_refs(
    connection: &mut SqliteConnection,
    rows: &[&DecisionRow],
) -> Result<(), StoreError> {
    if rows.len() <= ROWS_PER_STATEMENT {
        return Ok(insert_statement(rows)
            .build()
            .execute(&mut *connection)
            .await
            .map(drop)?);
    }
    let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
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
