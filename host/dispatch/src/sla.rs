//! The SLA clocks as a background task.
//!
//! Deadlines live in the store as absolute times, so the clocks need no
//! state of their own: after a restart the first tick catches every
//! deadline missed while the host was down.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::dispatcher::{Dispatcher, SlaEvent};
use super::store::HandoffStore;

/// How long stopping the clock waits for a tick under way before it drops
/// it all the same.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// A running SLA clock, stopped with [`SlaClock::stop`] (or by dropping
/// it, at its next tick).
///
/// Stopping lets a tick under way finish rather than dropping it where it
/// stands: a tick dropped inside the store's `BEGIN IMMEDIATE` can leave its
/// connection back in the pool with the transaction open (sqlx cannot
/// always roll back a transaction whose `BEGIN` was cancelled), and every
/// later write, the store's close included, would then wait on its lock.
#[derive(Debug)]
pub struct SlaClock {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SlaClock {
    /// Stops the clock once its tick under way, if any, is done; waits at
    /// most ten seconds for it.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let mut task = self.task;
        match tokio::time::timeout(STOP_WAIT, &mut task).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "the SLA clock failed"),
            Err(_) => {
                tracing::warn!("an SLA tick did not finish in time; dropping it");
                task.abort();
            }
        }
    }
}

/// Runs [`Dispatcher::enforce_sla`] every `every` until stopped, sending
/// what it did to `events` (subscribers may come and go).
pub fn spawn_sla_clock<S: HandoffStore + 'static>(
    dispatcher: Arc<Dispatcher<S>>,
    every: Duration,
    events: broadcast::Sender<SlaEvent>,
) -> SlaClock {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                // Told to stop, or the handle is gone.
                _ = stopped.changed() => return,
            }
            match dispatcher.enforce_sla().await {
                Ok(done) => {
                    for event in done {
                        // No subscriber is fine: the store has the record.
                        let _ = events.send(event);
                    }
                }
                Err(error) => tracing::error!(%error, "SLA clock could not run; retrying"),
            }
            if *stopped.borrow() {
                return;
            }
        }
    });
    SlaClock { stop, task }
}
