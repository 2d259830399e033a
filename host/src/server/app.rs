//! What every request handler shares: the live policies, evaluators, the
//! audit log, the dispatcher and the metrics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::auth::Tokens;
use super::config::ServerConfig;
use super::metrics::Metrics;
use crate::audit::AuditLog;
use crate::dispatch::{Dispatcher, SqliteStore};
use crate::reload::{LiveEvaluator, LivePolicies};

/// The running server's state.
pub struct App {
    /// The policies serving now, hot-reloaded from their directory.
    pub live: Arc<LivePolicies>,
    /// Evaluators with warm instances, lent to one request at a time.
    pub evaluators: EvaluatorPool,
    /// One permit per evaluator: what bounds the pool.
    evaluation_slots: Arc<Semaphore>,
    /// The tamper-evident record of every decision and policy change.
    pub audit: Arc<AuditLog>,
    /// Tier dispatch on the durable store.
    pub dispatcher: Arc<Dispatcher<SqliteStore>>,
    /// What `/metrics` reports.
    pub metrics: Arc<Metrics>,
    /// Who may call what.
    pub tokens: Arc<Tokens>,
    /// Limits on requests.
    pub config: ServerConfig,
    /// Woken whenever this server resolves a handoff, so that long polls
    /// answer at once instead of at their next check.
    pub resolved: Notify,
}

impl App {
    /// Assembles the state.
    pub fn new(
        live: Arc<LivePolicies>,
        audit: Arc<AuditLog>,
        dispatcher: Arc<Dispatcher<SqliteStore>>,
        metrics: Arc<Metrics>,
        tokens: Tokens,
        config: ServerConfig,
    ) -> App {
        App {
            evaluators: EvaluatorPool::new(live.clone()),
            evaluation_slots: Arc::new(Semaphore::new(config.evaluator_count())),
            live,
            audit,
            dispatcher,
            metrics,
            tokens: Arc::new(tokens),
            config,
            resolved: Notify::new(),
        }
    }
}

impl App {
    /// Waits for a free evaluator slot. The blocking task that evaluates
    /// (or replays) owns it, so that even when the client goes away at most
    /// [`ServerConfig::evaluator_count`] evaluators exist.
    pub async fn evaluation_slot(&self) -> Option<OwnedSemaphorePermit> {
        // The semaphore is never closed; `None` would mean it was.
        self.evaluation_slots.clone().acquire_owned().await.ok()
    }
}

/// Evaluators are per thread of work (each holds warm plugin instances), so
/// blocking tasks borrow one for a request and give it back. The pool grows
/// to the number of requests evaluating at once and no further.
pub struct EvaluatorPool {
    live: Arc<LivePolicies>,
    idle: Mutex<Vec<LiveEvaluator>>,
    created: AtomicUsize,
}

impl EvaluatorPool {
    /// An empty pool over `live`.
    pub fn new(live: Arc<LivePolicies>) -> Self {
        EvaluatorPool {
            live,
            idle: Mutex::new(Vec::new()),
            created: AtomicUsize::new(0),
        }
    }

    /// Runs `work` with an evaluator of the pool.
    pub fn with<R>(&self, work: impl FnOnce(&mut LiveEvaluator) -> R) -> R {
        let borrowed = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut evaluator = borrowed.unwrap_or_else(|| {
            self.created.fetch_add(1, Ordering::Relaxed);
            LiveEvaluator::new(self.live.clone())
        });
        let result = work(&mut evaluator);
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(evaluator);
        result
    }

    /// Evaluators created so far: the pool's size, since none is dropped.
    pub fn size(&self) -> usize {
        self.created.load(Ordering::Relaxed)
    }
}
