//! A fleet node's audit file, kept as a copy of its chain in the store.
//!
//! On a shared store every record is chained in the store, in the same
//! transaction as the change it records (`handoff_dispatch::Ledger`). The
//! node's audit directory copies that chain line for line, so that what
//! reads the file (`handoff audit verify` and `query`, the dashboard,
//! replay, checkpoints) reads exactly the records the store holds. The
//! copy trails the store by a moment: it is woken by this node's own
//! appends and polls as a backstop; whatever it misses (a full disk, a
//! crash) is still in the store, and the next round copies it.

use std::sync::Arc;
use std::time::Duration;

use handoff_audit::{AuditError, AuditLog};
use handoff_dispatch::{Ledger, StoreError};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::host::HostError;

/// Records one copy round reads from the store.
const BATCH: u32 = 512;

/// How often the copy looks for records it was not woken for.
const POLL: Duration = Duration::from_millis(250);

/// The task keeping the audit file a copy of this node's chain.
pub(crate) struct ChainCopy {
    audit: Arc<AuditLog>,
    ledger: Ledger,
    wake: Arc<Notify>,
    /// One round at a time: two would both try to append the same records.
    round: Arc<tokio::sync::Mutex<()>>,
    task: JoinHandle<()>,
}

/// Why a copy round stopped.
#[derive(Debug, thiserror::Error)]
enum CopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("the copy task stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl ChainCopy {
    /// Checks that the audit file holds this node's chain (or nothing),
    /// copies what it lacks, and keeps copying in the background.
    pub(crate) async fn start(
        audit: Arc<AuditLog>,
        ledger: Ledger,
    ) -> Result<ChainCopy, HostError> {
        let refused = |reason: String| HostError::Audit {
            dir: audit.dir().display().to_string(),
            source: AuditError::NotContinued {
                dir: audit.dir().display().to_string(),
                seq: audit.head().0,
                reason,
            },
        };
        let (seq, hash) = audit.head();
        if seq > 0 {
            let store = ledger
                .lines_after(ledger.node(), seq - 1, 1)
                .await
                .map_err(|source| HostError::Store {
                    location: "the audit chains".into(),
                    source,
                })?;
            let same = store
                .first()
                .and_then(|line| handoff_audit::record::decode(line).ok())
                .is_some_and(|record| record.hash == hash);
            if !same {
                return Err(refused(format!(
                    "its last record is not record {seq} of node {:?}'s chain in the store: \
                     the directory holds another chain (give this node its own audit directory, \
                     or its old name)",
                    ledger.node()
                )));
            }
        }
        let round = Arc::new(tokio::sync::Mutex::new(()));
        if let Err(error) = copy_round(&audit, &ledger, &round).await {
            tracing::warn!(%error, "the audit file is behind the store's chain");
        }
        let wake = Arc::new(Notify::new());
        let task = tokio::spawn(keep_copying(
            audit.clone(),
            ledger.clone(),
            wake.clone(),
            round.clone(),
        ));
        Ok(ChainCopy {
            audit,
            ledger,
            wake,
            round,
            task,
        })
    }

    /// A waker for code that appends from outside this module.
    pub(crate) fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Stops copying in the background, after a last round: at shutdown,
    /// so that the file holds every record this node chained.
    pub(crate) async fn finish(self) {
        self.task.abort();
        if let Err(error) = copy_round(&self.audit, &self.ledger, &self.round).await {
            tracing::warn!(%error, "the audit file is behind the store's chain at shutdown");
        }
    }
}

async fn keep_copying(
    audit: Arc<AuditLog>,
    ledger: Ledger,
    wake: Arc<Notify>,
    round: Arc<tokio::sync::Mutex<()>>,
) {
    loop {
        let _ = tokio::time::timeout(POLL, wake.notified()).await;
        if let Err(error) = copy_round(&audit, &ledger, &round).await {
            tracing::debug!(%error, "the audit file is behind the store's chain");
        }
    }
}

/// Copies every record of the node's chain the file lacks.
async fn copy_round(
    audit: &Arc<AuditLog>,
    ledger: &Ledger,
    round: &tokio::sync::Mutex<()>,
) -> Result<usize, CopyError> {
    let _one = round.lock().await;
    let mut copied = 0;
    loop {
        let (seq, _) = audit.head();
        let lines = ledger.lines_after(ledger.node(), seq, BATCH).await?;
        if lines.is_empty() {
            return Ok(copied);
        }
        let count = lines.len();
        let file = audit.clone();
        // File writes (and syncs) stay off the async workers.
        tokio::task::spawn_blocking(move || file.copy(&lines)).await??;
        copied += count;
        if count < BATCH as usize {
            return Ok(copied);
        }
    }
}
