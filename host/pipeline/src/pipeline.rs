//! The path every work item takes, whoever submits it: decide, record the
//! decision in the audit trail, then act on it (dispatch). `serve`, `watch`
//! and `eval` all submit here, so the rule that holds the product together
//! is written once: a decision is answered only after its audit record is
//! written, and an audit log that cannot record stops the answer.

use std::sync::Arc;

use handoff_audit::{AuditError, AuditLog};
use handoff_dispatch::{
    Dispatched, Dispatcher, Remembered, Settled, Store, StoreError, idempotency_key,
};
use handoff_model::{Decision, Tier, WorkItem};
use handoff_policy::{EvalError, EvaluatorPool};

use super::evaluator_threads::EvaluatorThreads;

/// Where evaluation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On the thread that submits, which must be one that is not a worker
    /// of the runtime (a command line's main thread inside `block_on` on a
    /// multi-thread runtime): evaluation then leaves the runtime's context
    /// for its duration (`block_in_place`), so a plugin's blocking WASI call
    /// cannot stall or re-enter it.
    Inline,
    /// On this many dedicated evaluator threads, fed from one bounded
    /// queue: for a server, whose async workers must never run untrusted
    /// code, and whose evaluators (each holding warm instances from a
    /// finite pool) must stay bounded under a burst.
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
    /// The answer an identical earlier submission got, given again: nothing
    /// was decided, recorded or dispatched for this one.
    pub replayed: bool,
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
    #[error("cannot record the decision on `{item}`{} in the audit log: {source}", and_others(*others))]
    Audit {
        /// The item, or the first of a submission's items: they are
        /// recorded together, so none of them was.
        item: String,
        /// How many more of the submission's items went unrecorded.
        others: usize,
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
    threads: Option<EvaluatorThreads>,
    audit: Option<Arc<AuditLog>>,
    dispatcher: Option<Arc<Dispatcher<Store>>>,
    submissions: KeyLocks,
}

impl Pipeline {
    /// A pipeline evaluating with `evaluators` where `placement` says,
    /// recording in `audit` and dispatching through `dispatcher` when they
    /// are given. Fails only when the evaluator threads cannot be started.
    pub fn new(
        evaluators: EvaluatorPool,
        placement: Placement,
        audit: Option<Arc<AuditLog>>,
        dispatcher: Option<Arc<Dispatcher<Store>>>,
    ) -> std::io::Result<Self> {
        let threads = match placement {
            Placement::Inline => None,
            Placement::Blocking(count) => Some(EvaluatorThreads::start(count)?),
        };
        Ok(Pipeline {
            evaluators,
            threads,
            audit,
            dispatcher,
            submissions: KeyLocks::default(),
        })
    }

    /// The evaluators, for the pool's size and the policies they follow.
    pub fn evaluators(&self) -> &EvaluatorPool {
        &self.evaluators
    }

    /// Decides every item, records each decision, then dispatches each, in
    /// order. The first error ends the submission: items before it are
    /// already recorded (and dispatched, if the error came from dispatch;
    /// routine items are stored together, so a failed commit leaves every
    /// item of its group recorded in the audit log but not stored).
    pub async fn submit(
        self: &Arc<Self>,
        items: Vec<WorkItem>,
    ) -> Result<Vec<Answer>, PipelineError> {
        self.submit_by(items, None).await
    }

    /// [`Pipeline::submit`], with the authenticated submitter recorded in
    /// each decision's audit record.
    ///
    /// Submissions are idempotent where it matters: a decision that puts
    /// work on a person (a self-correction or a handoff) is remembered under
    /// the item's [`idempotency_key`], and an identical submission (an agent
    /// retrying after a timeout, or the same item posted twice at once) is
    /// answered with the same decision and the same handoff, recorded and
    /// acted on once. A `none` decision needs no memory: deciding it again
    /// gives the same answer and changes nothing.
    pub async fn submit_by(
        self: &Arc<Self>,
        items: Vec<WorkItem>,
        principal: Option<String>,
    ) -> Result<Vec<Answer>, PipelineError> {
        let this = self.clone();
        let runtime = tokio::runtime::Handle::current();
        let who = principal.clone();
        let steps = self
            .offload(move || this.decide(items, who.as_deref(), &runtime))
            .await??;
        let mut answers: Vec<Option<Answer>> = Vec::with_capacity(steps.len());
        let mut recorded = Vec::with_capacity(steps.len());
        let mut held = Vec::new();
        for (index, step) in steps.into_iter().enumerate() {
            answers.push(None);
            match step {
                Step::Recorded(item, settled) => recorded.push((index, item, settled)),
                Step::Held(item, decision) => held.push((index, item, decision)),
            }
        }
        for (index, answer) in self.act_many(recorded).await? {
            answers[index] = Some(answer);
        }
        if !held.is_empty() {
            for (index, answer) in self.submit_held(held, principal).await? {
                answers[index] = Some(answer);
            }
        }
        answers
            .into_iter()
            .map(|a| a.ok_or_else(|| PipelineError::Interrupted("an item got no answer".into())))
            .collect()
    }

    /// Dispatches recorded decisions together, in order: the routine ones
    /// are stored in one commit ([`Dispatcher::dispatch_settled_many`]).
    async fn act_many(
        &self,
        recorded: Vec<(usize, WorkItem, Settled)>,
    ) -> Result<Vec<(usize, Answer)>, PipelineError> {
        let dispatched = match &self.dispatcher {
            Some(dispatcher) if !recorded.is_empty() => {
                let settled: Vec<(&WorkItem, &Settled)> = recorded
                    .iter()
                    .map(|(_, item, settled)| (item, settled))
                    .collect();
                let done = dispatcher.dispatch_settled_many(&settled).await.map_err(
                    |(failed, source)| PipelineError::Dispatch {
                        item: settled[failed].0.id.clone(),
                        source,
                    },
                )?;
                done.into_iter().map(Some).collect()
            }
            _ => vec![None; recorded.len()],
        };
        Ok(recorded
            .into_iter()
            .zip(dispatched)
            .map(|((index, item, settled), dispatched)| {
                let answer = Answer {
                    item,
                    decision: settled.decision,
                    dispatched,
                    replayed: false,
                };
                (index, answer)
            })
            .collect())
    }

    /// Dispatches a recorded decision.
    async fn act(&self, item: WorkItem, settled: Settled) -> Result<Answer, PipelineError> {
        let dispatched = match &self.dispatcher {
            Some(dispatcher) => Some(dispatcher.dispatch_settled(&item, &settled).await.map_err(
                |source| PipelineError::Dispatch {
                    item: item.id.clone(),
                    source,
                },
            )?),
            None => None,
        };
        Ok(Answer {
            item,
            decision: settled.decision,
            dispatched,
            replayed: false,
        })
    }

    /// The held decisions (those that put work on a person): under a lock
    /// per idempotency key, answered from memory when an identical
    /// submission was answered before, otherwise settled, recorded,
    /// dispatched and remembered. Keys are locked in sorted order, so two
    /// batches never wait on each other.
    async fn submit_held(
        self: &Arc<Self>,
        held: Vec<(usize, WorkItem, Decision)>,
        principal: Option<String>,
    ) -> Result<Vec<(usize, Answer)>, PipelineError> {
        let Some(dispatcher) = self.dispatcher.clone() else {
            return Err(PipelineError::Interrupted("held without a store".into()));
        };
        let keyed: Vec<(usize, String, WorkItem, Decision)> = held
            .into_iter()
            .map(|(index, item, decision)| (index, idempotency_key(&item), item, decision))
            .collect();
        let mut keys: Vec<String> = keyed.iter().map(|(_, key, ..)| key.clone()).collect();
        keys.sort();
        keys.dedup();
        let mut guards = Vec::with_capacity(keys.len());
        for key in &keys {
            guards.push(self.submissions.lock(key).await);
        }
        let dispatch_error = |item: &WorkItem| {
            let item = item.id.clone();
            move |source| PipelineError::Dispatch { item, source }
        };
        // Then against the other hosts sharing the store, if any.
        let held_keys = match dispatcher.store().hold_keys(&keys).await {
            Ok(held) => held,
            Err(source) => {
                let item = keyed.first().map(|(_, _, item, _)| item.id.clone());
                return Err(PipelineError::Dispatch {
                    item: item.unwrap_or_default(),
                    source,
                });
            }
        };
        let mut answered = Vec::with_capacity(keyed.len());
        let mut fresh = Vec::new();
        let mut first_of_key: std::collections::HashMap<String, usize> = Default::default();
        for (index, key, item, decision) in keyed {
            if let Some(remembered) = dispatcher
                .answer_of(&key)
                .await
                .map_err(dispatch_error(&item))?
            {
                answered.push((index, replay(item, remembered)));
            } else if first_of_key.contains_key(&key) {
                // The same item twice in one batch: answered like the first.
                fresh.push((index, key, item, None));
            } else {
                first_of_key.insert(key.clone(), index);
                fresh.push((index, key, item, Some(decision)));
            }
        }
        let to_record: Vec<(WorkItem, Decision)> = fresh
            .iter()
            .filter_map(|(_, _, item, decision)| Some((item.clone(), decision.clone()?)))
            .collect();
        let this = self.clone();
        let runtime = tokio::runtime::Handle::current();
        let recorded = self
            .offload(move || this.settle_and_record(to_record, principal.as_deref(), &runtime))
            .await??;
        let mut recorded = recorded.into_iter();
        let mut by_key: std::collections::HashMap<String, Remembered> = Default::default();
        for (index, key, item, decision) in fresh {
            if decision.is_none() {
                if let Some(remembered) = by_key.get(&key) {
                    answered.push((index, replay(item, remembered.clone())));
                }
                continue;
            }
            let Some((item, settled)) = recorded.next() else {
                return Err(PipelineError::Interrupted(
                    "an item was not recorded".into(),
                ));
            };
            let answer = self.act(item, settled).await?;
            if let Some(dispatched) = &answer.dispatched {
                let remembered = Remembered {
                    decision: answer.decision.clone(),
                    dispatched: dispatched.clone(),
                };
                dispatcher
                    .remember(&key, &answer.item, &remembered)
                    .await
                    .map_err(dispatch_error(&answer.item))?;
                by_key.insert(key, remembered);
            }
            answered.push((index, answer));
        }
        held_keys.release().await;
        drop(guards);
        Ok(answered)
    }

    /// Runs `work` where this pipeline evaluates: inline, or on one of its
    /// evaluator threads. Anything that instantiates plugins (a replay of a
    /// candidate, say) goes through here too. Work that has started runs
    /// to its end on its thread even when the caller goes away, so no more
    /// than the configured number ever run at once.
    pub async fn offload<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, PipelineError> {
        let Some(threads) = &self.threads else {
            return Ok(tokio::task::block_in_place(work));
        };
        threads
            .run(work)
            .await
            .map_err(|e| PipelineError::Interrupted(e.to_string()))
    }

    /// Evaluates every item with one evaluator of the pool, and records
    /// together each decision that no earlier submission can have
    /// answered; a decision that puts work on a person is held for
    /// [`Pipeline::submit_held`] when the host dispatches. An item that
    /// cannot be decided ends the submission, the items before it recorded.
    fn decide(
        &self,
        items: Vec<WorkItem>,
        principal: Option<&str>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Vec<Step>, PipelineError> {
        let (decided, failure) = self.evaluators.with(|evaluator| {
            let mut decided = Vec::with_capacity(items.len());
            for item in items {
                match evaluator.evaluate(&item) {
                    Ok(decision) => decided.push((item, decision)),
                    Err(error) => return (decided, Some(error)),
                }
            }
            (decided, None)
        });
        // Held decisions keep their place; the routine ones, recorded
        // together, fill the places left open, in order.
        let holds = self.dispatcher.is_some();
        let mut steps: Vec<Option<Step>> = Vec::with_capacity(decided.len());
        let mut routine = Vec::with_capacity(decided.len());
        for (item, decision) in decided {
            if holds && decision.tier() != Tier::None {
                steps.push(Some(Step::Held(item, decision)));
            } else {
                steps.push(None);
                routine.push((item, decision));
            }
        }
        let recorded = self.settle_and_record(routine, principal, runtime)?;
        if let Some(error) = failure {
            return Err(error.into());
        }
        let mut recorded = recorded
            .into_iter()
            .map(|(item, settled)| Step::Recorded(item, settled));
        steps
            .into_iter()
            .map(|step| step.or_else(|| recorded.next()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| PipelineError::Interrupted("an item was not recorded".into()))
    }

    /// Settles decisions already made, then records them together. When
    /// one cannot be settled, those before it are recorded and the error
    /// is returned.
    fn settle_and_record(
        &self,
        decided: Vec<(WorkItem, Decision)>,
        principal: Option<&str>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Vec<(WorkItem, Settled)>, PipelineError> {
        let mut settled = Vec::with_capacity(decided.len());
        let mut failure = None;
        for (item, decision) in decided {
            match self.settle(&item, decision, runtime) {
                Ok(one) => settled.push((item, one)),
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        self.record(&mut settled, principal)?;
        match failure {
            Some(error) => Err(error),
            None => Ok(settled),
        }
    }

    /// Settles one decision (a self-correction's attempt count, and whether
    /// it ran out), so that its record states the tier the work really
    /// went to. It needs the store, reached through `runtime` from this
    /// thread, which is never one of its workers.
    fn settle(
        &self,
        item: &WorkItem,
        decision: Decision,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Settled, PipelineError> {
        let mut settled = match &self.dispatcher {
            Some(dispatcher) if decision.tier() == Tier::SelfCorrect => runtime
                .block_on(dispatcher.settle(item, decision))
                .map_err(|source| PipelineError::Dispatch {
                    item: item.id.clone(),
                    source,
                })?,
            _ => Settled {
                audit: Vec::new(),
                decision,
                attempt: None,
                escalation_role: None,
            },
        };
        if settled.decision.tier() == Tier::Operator {
            settled.escalation_role = self.escalation_role_of(settled.decision.driver.as_deref());
        }
        Ok(settled)
    }

    /// Records settled decisions in the audit log, together (one write).
    /// When the log copies a shared store's chain, the records are only
    /// serialized here, and go with the decisions' rows: the store chains
    /// them in the same transaction, and the decision is answered once
    /// that commits.
    fn record(
        &self,
        settled: &mut [(WorkItem, Settled)],
        principal: Option<&str>,
    ) -> Result<(), PipelineError> {
        let (Some(audit), Some((first, _))) = (&self.audit, settled.first()) else {
            return Ok(());
        };
        let first = first.id.clone();
        let decisions: Vec<(&WorkItem, &Decision)> = settled
            .iter()
            .map(|(item, settled)| (item, &settled.decision))
            .collect();
        let recorded = if audit.is_copy_of_store() {
            audit.decision_bodies(&decisions, principal).map(Some)
        } else {
            audit.record_decisions(&decisions, principal).map(|_| None)
        };
        let count = decisions.len();
        let bodies = recorded.map_err(|source| {
            tracing::error!(error = %source, item = %first, count, "cannot record decisions");
            PipelineError::Audit {
                item: first.clone(),
                others: count - 1,
                source,
            }
        })?;
        if let Some(bodies) = bodies {
            for ((_, settled), bodies) in settled.iter_mut().zip(bodies) {
                settled.audit = bodies;
            }
        }
        Ok(())
    }
}

/// ` and N others`, for an error that names the first of several items.
fn and_others(others: usize) -> String {
    match others {
        0 => String::new(),
        1 => " and 1 other".to_string(),
        n => format!(" and {n} others"),
    }
}

impl Pipeline {
    /// The role a missed deadline of `driver`'s handoffs escalates to, as
    /// its manifest names it in the serving set.
    fn escalation_role_of(&self, driver: Option<&str>) -> Option<String> {
        let driver = driver?;
        let set = self.evaluators.policies().current();
        set.plugins()
            .iter()
            .find(|plugin| &*plugin.name == driver)
            .and_then(|plugin| plugin.manifest.escalation_role.clone())
    }
}

/// An item after evaluation.
enum Step {
    /// Recorded: ready to dispatch.
    Recorded(WorkItem, Settled),
    /// Puts work on a person: checked against earlier identical
    /// submissions before it is recorded.
    Held(WorkItem, Decision),
}

/// The answer an identical earlier submission got.
fn replay(item: WorkItem, remembered: Remembered) -> Answer {
    Answer {
        item,
        decision: remembered.decision,
        dispatched: Some(remembered.dispatched),
        replayed: true,
    }
}

/// One lock per idempotency key in flight, so that identical submissions
/// arriving together are answered one after the other: the first decides,
/// the rest find its answer.
#[derive(Default)]
struct KeyLocks {
    locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A held key lock; the key's entry goes when its last holder does.
struct KeyGuard<'a> {
    locks: &'a KeyLocks,
    key: String,
    lock: Arc<tokio::sync::Mutex<()>>,
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl KeyLocks {
    async fn lock(&self, key: &str) -> KeyGuard<'_> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(key.to_string()).or_default().clone()
        };
        let held = lock.clone().lock_owned().await;
        KeyGuard {
            locks: self,
            key: key.to_string(),
            lock,
            _held: held,
        }
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let mut locks = self.locks.locks.lock().unwrap_or_else(|p| p.into_inner());
        // The map's reference and this guard's: nobody else waits.
        if Arc::strong_count(&self.lock) <= 3 {
            locks.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unrecorded(others: usize) -> String {
        PipelineError::Audit {
            item: "refund-7".into(),
            others,
            source: AuditError::Io {
                file: "audit-000001.jsonl".into(),
                source: std::io::ErrorKind::StorageFull.into(),
            },
        }
        .to_string()
    }

    #[test]
    fn an_unrecorded_submission_is_named_by_its_first_item_and_how_many_more() {
        assert!(
            unrecorded(0)
                .starts_with("cannot record the decision on `refund-7` in the audit log: "),
            "{}",
            unrecorded(0)
        );
        assert!(unrecorded(1).contains("`refund-7` and 1 other in the audit log"));
        assert!(unrecorded(99).contains("`refund-7` and 99 others in the audit log"));
    }
}
