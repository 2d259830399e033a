//! Checkpoints of the store's write-ahead log, off the commit path.
//!
//! SQLite folds its WAL back into the database file (a checkpoint, ending
//! in an `fsync`) inside whichever commit carries the log past
//! `wal_autocheckpoint` pages. On a busy server that is a commit every few
//! dozen milliseconds, and the request waiting on it waits for the sync:
//! a store's commits then cost one request in a hundred tens of
//! milliseconds. Here a task checkpoints passively on a connection of the
//! pool every [`INTERVAL`], which never blocks a writer or a reader, and the
//! automatic checkpoint stays only as a backstop at [`BACKSTOP_PAGES`], for
//! a log this task cannot keep up with.
//!
//! A passive checkpoint under constant writing never catches up with the
//! end of the log, so the log is started over only by the backstop: the
//! commit that reaches it finds nearly everything already copied, and
//! pays for little more than the sync. (Starting the log over from this
//! task with a `RESTART` checkpoint was measured too: it holds the writers
//! while it waits, and the server's p99 doubled.)

use std::time::Duration;

use sqlx::SqlitePool;
use tokio::sync::watch;

/// How often the log is folded into the database.
const INTERVAL: Duration = Duration::from_millis(100);

/// The log size (in pages) at which a commit checkpoints itself all the
/// same, and so where a log written without pause starts over: 80 MB of
/// 4 KiB pages at most on disk, reused, and truncated at close.
pub(crate) const BACKSTOP_PAGES: u32 = 20_000;

/// The running checkpoint task; it stops when told to or when the last
/// handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct WalCheckpoints {
    stop: watch::Sender<bool>,
}

impl WalCheckpoints {
    /// Starts the task on the current runtime; `None` outside one, and the
    /// store then keeps SQLite's own automatic checkpoints.
    pub(crate) fn start(pool: &SqlitePool) -> Option<WalCheckpoints> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (stop, stopped) = watch::channel(false);
        runtime.spawn(checkpoint_until_stopped(pool.clone(), stopped));
        Some(WalCheckpoints { stop })
    }

    /// Stops the task; a checkpoint under way finishes and gives its
    /// connection back to the pool.
    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }
}

async fn checkpoint_until_stopped(pool: SqlitePool, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            changed = stopped.changed() => {
                if changed.is_err() || *stopped.borrow() {
                    return;
                }
            }
            () = tokio::time::sleep(INTERVAL) => {
                if pool.is_closed() {
                    return;
                }
                // A failed checkpoint loses nothing: the log keeps every
                // commit, and the next one (or the backstop) folds it.
                if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await
                {
                    tracing::debug!(%error, "cannot checkpoint the store's write-ahead log");
                }
            }
        }
    }
}
