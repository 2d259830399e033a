//! The path every work item takes, whoever submits it: decide, record the
//! decision in the audit trail, then act on it (dispatch). `serve`, `watch`
//! and `eval` all submit here, so the rule that holds the product together
//! is written once: a decision is answered only after its audit record is
//! written, and an audit log that cannot record stops the answer.

use std::sync::Arc;

use handoff_audit::{AuditError, AuditLog};
use handoff_dispatch::{Dispatched, Dispatcher, Settled, SqliteStore, StoreError};
use handoff_model::{Decision, Tier, WorkItem};
use handoff_policy::{EvalError, EvaluatorPool};
use tokio::sync::Semaphore;

/// Where evaluation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On the thread that submits, which must be one that is not a worker
    /// of the runtime (a command line's main thread inside `block_on` on a
    /// multi-thread runtime): evaluation then leaves the runtime's context
    /// for its duration (`block_in_place`), so a plugin's blocking WASI call
    /// cannot stall or re-enter it.
    Inline,
    /// On tokio's blocking pool, at most this many submissions at once: for
    /// a server, whose async workers must never run untrusted code, and
    /// whose evaluators (each holding warm instances from a finite pool)
    /// must stay bounded under a burst.
    Blocking(usize),
}

/// One item's answer: its decision and, when the host dispatches, what was
/// done about it.
#[derive(Debug)]
pub struct Answer {
    /// The item as submitted.
    pub item: WorkItem,
    /// The decision, already in the audit trail when there is one.
    pub decision: Decision,
    /// What dispatch did: proceed, retry with guidance, or a handoff.
    pub dispatched: Option<Dispatched>,
}

impl Answer {
    /// The handoff to poll, when one was made.
    pub fn handoff_id(&self) -> Option<&str> {
        match &self.dispatched {
            Some(Dispatched::Handoff { id, .. }) => Some(id),
            _ => None,
        }
    }
}

/// Why a submission got no answer.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The item could not be decided: it is invalid, or no policy serves.
    /// Nothing was recorded for it.
    #[error(transparent)]
    Undecided(#[from] EvalError),
    /// The decision could not be recorded, so it is not given: the audit
    /// trail fails closed, and so does the answer.
    #[error("cannot record the decision on `{item}` in the audit log: {source}")]
    Audit {
        /// The item.
        item: String,
        /// Why.
        #[source]
        source: AuditError,
    },
    /// The decision was recorded but could not be acted on.
    #[error("cannot dispatch the decision on `{item}`: {source}")]
    Dispatch {
        /// The item.
        item: String,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The evaluation thread stopped before it answered.
    #[error("the evaluation did not finish: {0}")]
    Interrupted(String),
}

/// Decides, audits and dispatches work items.
pub struct Pipeline {
    evaluators: EvaluatorPool,
    slots: Option<Arc<Semaphore>>,
    audit: Option<Arc<AuditLog>>,
    dispatcher: Option<Arc<Dispatcher<SqliteStore>>>,
}

impl Pipeline {
    /// A pipeline evaluating with `evaluators` where `placement` says,
    /// recording in `audit` and dispatching through `dispatcher` when they
    /// are given.
    pub fn new(
        evaluators: EvaluatorPool,
        placement: Placement,
        audit: Option<Arc<AuditLog>>,
        dispatcher: Option<Arc<Dispatcher<SqliteStore>>>,
    ) -> Self {
        let slots = match placement {
            Placement::Inline => None,
            Placement::Blocking(count) => Some(Arc::new(Semaphore::new(count.max(1)))),
        };
        Pipeline {
            evaluators,
            slots,
            audit,
            dispatcher,
        }
    }

    /// The evaluators, for the pool's size and the policies they follow.
    pub fn evaluators(&self) -> &EvaluatorPool {
        &self.evaluators
    }

    /// Decides every item, records each decision, then dispatches each, in
    /// order. The first error ends the submission: items before it are
    /// already recorded (and dispatched, if the error came from dispatch).
    pub async fn submit(
        self: &Arc<Self>,
        items: Vec<WorkItem>,
    ) -> Result<Vec<Answer>, PipelineError> {
        self.submit_by(items, None).await
    }

    /// [`Pipeline::submit`], with the authenticated submitter recorded in
    /// each decision's audit record.
    pub async fn submit_by(
        self: &Arc<Self>,
        items: Vec<WorkItem>,
        principal: Option<String>,
    ) -> Result<Vec<Answer>, PipelineError> {
        let this = self.clone();
        let runtime = tokio::runtime::Handle::current();
        let decided = self
            .offload(move || this.decide_and_record(items, principal.as_deref(), &runtime))
            .await??;
        let mut answers = Vec::with_capacity(decided.len());
        for (item, settled) in decided {
            let dispatched = match &self.dispatcher {
                Some(dispatcher) => Some(
                    dispatcher
                        .dispatch_settled(&item, &settled)
                        .await
                        .map_err(|source| PipelineError::Dispatch {
                            item: item.id.clone(),
                            source,
                        })?,
                ),
                None => None,
            };
            answers.push(Answer {
                item,
                decision: settled.decision,
                dispatched,
            });
        }
        Ok(answers)
    }

    /// Runs `work` where this pipeline evaluates: inline, or on the
    /// blocking pool under one of its slots. Anything that instantiates
    /// plugins (a replay of a candidate, say) goes through here too. The
    /// slot is held by the task itself, so even when the caller goes away
    /// no more than the configured number run at once.
    pub async fn offload<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, PipelineError> {
        let Some(slots) = &self.slots else {
            return Ok(tokio::task::block_in_place(work));
        };
        // The semaphore is never closed, so a permit always comes.
        let slot = slots.clone().acquire_owned().await.ok();
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop(slot);
            result
        })
        .await
        .map_err(|e| PipelineError::Interrupted(e.to_string()))
    }

    /// Evaluates, settles and audits every item with one evaluator of the
    /// pool. Settling (a self-correction's attempt count, and whether it ran
    /// out) happens before the audit record, so that the record states the
    /// tier the work really went to; it needs the store, reached through
    /// `runtime` from this thread, which is never one of its workers.
    fn decide_and_record(
        &self,
        items: Vec<WorkItem>,
        principal: Option<&str>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Vec<(WorkItem, Settled)>, PipelineError> {
        self.evaluators.with(|evaluator| {
            items
                .into_iter()
                .map(|item| {
                    let decision = evaluator.evaluate(&item)?;
                    let settled = match &self.dispatcher {
                        Some(dispatcher) if decision.tier() == Tier::SelfCorrect => runtime
                            .block_on(dispatcher.settle(&item, decision))
                            .map_err(|source| PipelineError::Dispatch {
                                item: item.id.clone(),
                                source,
                            })?,
                        _ => Settled {
                            decision,
                            attempt: None,
                        },
                    };
                    let decision = &settled.decision;
                    if let Some(audit) = &self.audit {
                        audit.record_decision(&item, decision, principal).map_err(|source| {
                            tracing::error!(error = %source, item = %item.id, "cannot record a decision");
                            PipelineError::Audit {
                                item: item.id.clone(),
                                source,
                            }
                        })?;
                    }
                    Ok((item, settled))
                })
                .collect()
        })
    }
}
