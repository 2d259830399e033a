//! Handoff events into the audit trail, exactly once and in store order.
//!
//! The store records each state change and its event in one transaction;
//! the audit log is another file, so the two writes cannot be one. The
//! store's event log is therefore the outbox: after every change (and on
//! every SLA tick, which also picks up changes made by `handoff queue` in
//! another process) the host appends the events after the last one it
//! forwarded, in order, and advances its mark only past those the audit
//! log took. When the audit log refuses (a full disk), nothing is lost:
//! the events wait in the store and follow once it resumes. At start the
//! mark is the newest event the audit log already holds, so an event
//! appended just before a crash is not appended again, and one committed
//! to the store but not yet appended is.

use std::sync::Arc;

use tokio::sync::Mutex;

use handoff_model::HandoffEvent;

use super::store::{HandoffStore, StoreError};

/// Where forwarded events go: the audit log. An error keeps the event in
/// the store's outbox for the next attempt.
pub type EventSink = Arc<dyn Fn(&HandoffEvent) -> Result<(), String> + Send + Sync>;

/// How many events one round reads from the store.
const BATCH: u32 = 256;

/// The forwarding state: the sink and the last event it took.
pub(crate) struct EventForwarder {
    sink: EventSink,
    /// The store position of the last event the sink took. The lock also
    /// keeps two rounds from forwarding the same events.
    through: Mutex<i64>,
}

/// Why a round stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit log refused an event; it stays in the outbox.
    #[error("the audit log refused handoff event {store_seq}: {reason}")]
    Refused {
        /// The event's store position.
        store_seq: i64,
        /// Why.
        reason: String,
    },
}

impl EventForwarder {
    pub(crate) fn new(sink: EventSink, through: i64) -> Self {
        EventForwarder {
            sink,
            through: Mutex::new(through),
        }
    }

    /// Forwards every event after the mark; answers how many.
    pub(crate) async fn forward(&self, store: &impl HandoffStore) -> Result<usize, ForwardError> {
        let mut through = self.through.lock().await;
        let mut forwarded = 0;
        loop {
            let events = store.events_after(*through, BATCH).await?;
            let full = events.len() == BATCH as usize;
            for event in &events {
                (self.sink)(event).map_err(|reason| ForwardError::Refused {
                    store_seq: event.store_seq,
                    reason,
                })?;
                *through = event.store_seq;
                forwarded += 1;
            }
            if !full {
                return Ok(forwarded);
            }
        }
    }
}
