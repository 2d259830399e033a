//! Whether the store takes work: what readiness reports. Every store
//! operation the dispatcher runs says whether the database answered; after
//! a failure the store counts as unavailable until a write succeeds again,
//! whether a real one or the probe readiness runs.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::store::StoreError;

/// The store's state, as readiness reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreHealth {
    /// Operations succeed.
    Available,
    /// The last operation failed in the database (a full disk, an I/O
    /// error, a lost connection).
    Unavailable {
        /// Since the first failure.
        since: DateTime<Utc>,
    },
}

/// How often a probe write runs while the store is unavailable.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(crate) struct HealthTracker {
    failing: Mutex<Option<Failing>>,
}

#[derive(Clone, Copy)]
struct Failing {
    since: DateTime<Utc>,
    next_probe: Instant,
}

impl HealthTracker {
    /// Notes how an operation went: a database failure marks the store
    /// unavailable; a successful write (never a read: a full disk still
    /// reads) marks it available. Errors about the request (no such
    /// handoff, not the claimant) say nothing about the store.
    pub(crate) fn observe<T>(&self, result: &Result<T, StoreError>, wrote: bool) {
        match result {
            Ok(_) if wrote => self.set(None),
            Ok(_) => {}
            Err(error) if is_unavailability(error) => {
                let mut failing = self.lock();
                if failing.is_none() {
                    tracing::error!(%error, "the handoff store failed; reporting not ready");
                    *failing = Some(Failing {
                        since: Utc::now(),
                        next_probe: Instant::now(),
                    });
                }
            }
            Err(_) => {}
        }
    }

    /// The current state, and whether a probe is due (which the caller
    /// then runs and reports through [`HealthTracker::observe`]).
    pub(crate) fn check(&self) -> (StoreHealth, bool) {
        let mut failing = self.lock();
        match failing.as_mut() {
            None => (StoreHealth::Available, false),
            Some(state) => {
                let due = Instant::now() >= state.next_probe;
                if due {
                    state.next_probe = Instant::now() + PROBE_INTERVAL;
                }
                (StoreHealth::Unavailable { since: state.since }, due)
            }
        }
    }

    fn set(&self, value: Option<Failing>) {
        let mut failing = self.lock();
        if failing.is_some() && value.is_none() {
            tracing::warn!("the handoff store works again");
        }
        *failing = value;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Failing>> {
        self.failing.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether an error means the database itself is failing, rather than the
/// request being wrong or a writer being busy.
fn is_unavailability(error: &StoreError) -> bool {
    match error {
        StoreError::Database(error) => match error {
            sqlx::Error::Database(db) => {
                let code = db.code().and_then(|c| c.parse::<i64>().ok()).unwrap_or(0) & 0xff;
                // SQLITE_READONLY, IOERR, CORRUPT, FULL, CANTOPEN, NOTADB.
                matches!(code, 8 | 10 | 11 | 13 | 14 | 26)
            }
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            _ => false,
        },
        StoreError::Damaged { .. } => true,
        _ => false,
    }
}
