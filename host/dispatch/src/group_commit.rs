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
//! What a commit is belongs to the store ([`GroupWriter`]): SQLite's
//! writer keeps a connection of its own (`sqlite_writer`); PostgreSQL's
//! chains the rows' audit records in the same transaction.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use super::store::{DecisionRow, StoreError};

/// How many submissions may wait for the writer before senders wait too:
/// back-pressure instead of an unbounded queue.
const QUEUE: usize = 1024;

/// The most rows one transaction carries. A group stops growing here, so
/// a commit's latency stays bounded whatever the load.
const GROUP_ROWS: usize = 2048;

/// How a store commits a group of decision rows.
pub(crate) trait GroupWriter: Send + 'static {
    /// Commits `rows` in one transaction: all of them or none.
    fn insert(
        &mut self,
        rows: &[&DecisionRow],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Lets go of what the writer holds (its connection), at close.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

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
    /// Let go of the writer's connection and stop, saying so when done:
    /// the store is closing.
    Close(oneshot::Sender<()>),
}

/// One caller's rows, and where to say they are committed.
struct Pending {
    rows: Vec<DecisionRow>,
    done: oneshot::Sender<Result<(), StoreError>>,
}

impl GroupCommit {
    /// Starts `writer` on the current runtime, if there is one. It stops
    /// when the last handle is dropped or [`GroupCommit::close`] is called.
    pub(crate) fn start(writer: impl GroupWriter) -> GroupCommit {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return GroupCommit { queue: None };
        };
        let (queue, waiting) = mpsc::channel(QUEUE);
        runtime.spawn(run(writer, waiting));
        GroupCommit { queue: Some(queue) }
    }

    /// Commits `rows` together, in one transaction with whatever else is
    /// waiting. When the writer is gone (its runtime shut down, or the
    /// store closed) the rows come back (`Err`), for the caller to commit
    /// itself: the writer is a speed-up, never a point of failure.
    pub(crate) async fn commit(
        &self,
        rows: Vec<DecisionRow>,
    ) -> Result<Result<(), StoreError>, Vec<DecisionRow>> {
        if rows.is_empty() {
            return Ok(Ok(()));
        }
        let Some(queue) = &self.queue else {
            return Err(rows);
        };
        let (done, committed) = oneshot::channel();
        match queue.send(Message::Rows(Pending { rows, done })).await {
            Ok(()) => Ok(match committed.await {
                Ok(result) => result,
                // The writer stopped holding our rows, uncommitted.
                Err(_) => Err(StoreError::Database(sqlx::Error::PoolClosed)),
            }),
            Err(mpsc::error::SendError(message)) => match message {
                Message::Rows(pending) => Err(pending.rows),
                Message::Close(_) => Ok(Ok(())),
            },
        }
    }

    /// Commits what is waiting, lets the writer's connection go and stops
    /// the writer; later commits are the callers'.
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

/// Takes every submission waiting, up to [`GROUP_ROWS`] rows, commits
/// them, and answers each; until closed or every sender is gone.
async fn run(mut writer: impl GroupWriter, mut waiting: mpsc::Receiver<Message>) {
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
        commit_group(&mut writer, group).await;
        if closing.is_some() {
            break;
        }
    }
    // Rows sent after the close are refused by the closed queue, so
    // their senders commit them through the pool themselves.
    waiting.close();
    while let Ok(message) = waiting.try_recv() {
        match message {
            Message::Rows(pending) => commit_group(&mut writer, vec![pending]).await,
            Message::Close(closed) => {
                let _ = closed.send(());
            }
        }
    }
    writer.close().await;
    if let Some(closed) = closing {
        let _ = closed.send(());
    }
}

/// Commits a group in one transaction. If that fails, each submission
/// is committed on its own, so that one caller's failure (a row the
/// database refuses) is that caller's alone and every caller gets its
/// own error.
async fn commit_group(writer: &mut impl GroupWriter, group: Vec<Pending>) {
    if group.len() > 1 {
        let all: Vec<&DecisionRow> = group.iter().flat_map(|p| &p.rows).collect();
        if writer.insert(&all).await.is_ok() {
            for pending in group {
                let _ = pending.done.send(Ok(()));
            }
            return;
        }
    }
    for pending in group {
        let rows: Vec<&DecisionRow> = pending.rows.iter().collect();
        let result = writer.insert(&rows).await;
        // A caller that went away no longer needs its answer.
        let _ = pending.done.send(result);
    }
}
