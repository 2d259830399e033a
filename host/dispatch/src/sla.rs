//! The SLA clocks as a background task.
//!
//! Deadlines live in the store as absolute times, so the clocks need no
//! state of their own: after a restart the first tick catches every
//! deadline missed while the host was down.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::dispatcher::{Dispatcher, SlaEvent};
use super::store::HandoffStore;

/// Runs [`Dispatcher::enforce_sla`] every `every`, forever, sending what
/// it did to `events` (subscribers may come and go).
pub fn spawn_sla_clock<S: HandoffStore + 'static>(
    dispatcher: Arc<Dispatcher<S>>,
    every: Duration,
    events: broadcast::Sender<SlaEvent>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match dispatcher.enforce_sla().await {
                Ok(done) => {
                    for event in done {
                        // No subscriber is fine: the store has the record.
                        let _ = events.send(event);
                    }
                }
                Err(error) => tracing::error!(%error, "SLA clock could not run; retrying"),
            }
        }
    })
}
