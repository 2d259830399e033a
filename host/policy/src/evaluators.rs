//! Evaluators for a running host: each follows the policies being served
//! (a fixed set, or a live directory that reloads), and a pool lends them
//! to whichever thread evaluates next.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::Guard;
use handoff_model::{Decision, WorkItem};

use crate::evaluator::{EvalError, Evaluator};
use crate::policy_set::PolicySet;
use crate::reload::LivePolicies;

/// The policies a host serves: loaded once, or live from a directory.
#[derive(Clone)]
pub enum Policies {
    /// One set for the life of the host (`handoff eval`).
    Fixed(Arc<PolicySet>),
    /// A directory that hot-reloads (`watch`, `serve`).
    Live(Arc<LivePolicies>),
}

impl Policies {
    /// The set serving now. Holding it keeps that generation alive.
    pub fn current(&self) -> Arc<PolicySet> {
        match self {
            Policies::Fixed(set) => set.clone(),
            Policies::Live(live) => live.current(),
        }
    }

    /// The live directory, when there is one.
    pub fn live(&self) -> Option<&Arc<LivePolicies>> {
        match self {
            Policies::Fixed(_) => None,
            Policies::Live(live) => Some(live),
        }
    }
}

impl From<Arc<PolicySet>> for Policies {
    fn from(set: Arc<PolicySet>) -> Self {
        Policies::Fixed(set)
    }
}

impl From<Arc<LivePolicies>> for Policies {
    fn from(live: Arc<LivePolicies>) -> Self {
        Policies::Live(live)
    }
}

/// An evaluator that follows the policies served: each evaluation runs on
/// the generation serving when it starts.
pub struct LiveEvaluator {
    policies: Policies,
    inner: Evaluator,
}

impl LiveEvaluator {
    /// An evaluator for the calling thread.
    pub fn new(policies: impl Into<Policies>) -> Self {
        let policies = policies.into();
        let inner = Evaluator::new(policies.current());
        LiveEvaluator { policies, inner }
    }

    /// Decides one item on the current generation.
    pub fn evaluate(&mut self, item: &WorkItem) -> Result<Decision, EvalError> {
        if let Policies::Live(live) = &self.policies {
            let current = live.load_current();
            if !Arc::ptr_eq(&current, self.inner.policy_set()) {
                self.inner.retarget(Guard::into_inner(current));
            }
        }
        self.inner.evaluate(item)
    }

    /// The set the last evaluation ran on.
    pub fn policy_set(&self) -> &Arc<PolicySet> {
        self.inner.policy_set()
    }
}

/// Evaluators are per thread of work (each holds warm plugin instances), so
/// a thread borrows one for a piece of work and gives it back. The pool
/// grows to the number of threads evaluating at once and no further.
pub struct EvaluatorPool {
    policies: Policies,
    idle: Mutex<Vec<LiveEvaluator>>,
    created: AtomicUsize,
}

impl EvaluatorPool {
    /// An empty pool over `policies`.
    pub fn new(policies: Policies) -> Self {
        EvaluatorPool {
            policies,
            idle: Mutex::new(Vec::new()),
            created: AtomicUsize::new(0),
        }
    }

    /// The policies the pool's evaluators follow.
    pub fn policies(&self) -> &Policies {
        &self.policies
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
            LiveEvaluator::new(self.policies.clone())
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
