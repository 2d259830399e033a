//! What each tier does with a decision, and the queue operations humans
//! use, with time from a [`Clock`].

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::clock::Clock;
use super::forward::{EventForwarder, EventSink, ForwardError};
use super::handoff::{
    AttemptRecord, DrivingReason, Handoff, Resolution, ReviewSample, TransferPayload,
};
use super::health::{HealthTracker, StoreHealth};
use super::report::History;
use super::store::{
    Breach, DecisionRow, Escalation, HandoffStore, ListFilter, NewHandoff, QueueDepth, StoreError,
};
use handoff_model::{Decision, Tier, WorkItem};

/// Who gets a tier's handoffs, and how fast they must act.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierPolicy {
    /// The role a handoff goes to when the verdict names none.
    pub role: String,
    /// Acknowledge within this many seconds, unless the verdict says.
    pub ack_secs: u32,
    /// Resolve within this many seconds, unless the verdict says.
    pub resolve_secs: u32,
}

/// How decisions become handoffs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatchConfig {
    /// Self-corrections allowed per item id; the next one goes to an
    /// operator.
    pub max_self_corrections: u32,
    /// Level 2.
    pub operator: TierPolicy,
    /// Level 3.
    pub executive: TierPolicy,
    /// How long a claim holds before the handoff returns to the queue.
    pub lease_secs: u32,
    /// Which autonomous items are also sent to people for review.
    #[serde(default)]
    pub review: ReviewSampling,
}

/// Sampled review of autonomous work: a known share of items decided
/// `none` also go to a review queue, without holding the agent back, so
/// that the humans see an unbiased sample of what the agent did alone and
/// not only what was escalated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReviewSampling {
    /// The share of `none` items sampled, in [0, 1]; 0 turns sampling off.
    pub rate: f64,
    /// The share for items of a kind, where it differs from `rate`.
    pub kinds: std::collections::BTreeMap<String, f64>,
    /// The queue the samples go to.
    pub role: String,
    /// Acknowledge target, seconds.
    pub ack_secs: u32,
    /// Resolve target, seconds. A review past it is flagged, never
    /// escalated: nothing waits on it.
    pub resolve_secs: u32,
    /// Seeds the draws. Each item's draw is a hash of the seed and the
    /// submission, so a rerun of the same traffic samples the same items.
    pub seed: u64,
}

impl Default for ReviewSampling {
    /// Off; when turned on, a `reviewer` queue with a day to act.
    fn default() -> Self {
        ReviewSampling {
            rate: 0.0,
            kinds: std::collections::BTreeMap::new(),
            role: "reviewer".into(),
            ack_secs: 24 * 3600,
            resolve_secs: 24 * 3600,
            seed: 0,
        }
    }
}

impl ReviewSampling {
    /// Refuses a rate outside [0, 1], naming it.
    pub fn validate(&self) -> Result<(), String> {
        let rates = std::iter::once(("rate".to_string(), self.rate)).chain(
            self.kinds
                .iter()
                .map(|(kind, rate)| (format!("kinds.{kind}"), *rate)),
        );
        for (key, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("review.{key} must be between 0 and 1, got {rate}"));
            }
        }
        Ok(())
    }

    /// The inclusion probability of an item of `kind`.
    pub fn probability(&self, kind: &str) -> f64 {
        self.kinds.get(kind).copied().unwrap_or(self.rate)
    }

    /// The draw of the submission with idempotency key `key`, uniform in
    /// [0, 1): the top 53 bits of SHA-256 of the seed and the key.
    pub fn draw(&self, key: &str) -> f64 {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(self.seed.to_be_bytes());
        hasher.update(key.as_bytes());
        let hash = hasher.finalize();
        let mut top = [0u8; 8];
        top.copy_from_slice(&hash[..8]);
        (u64::from_be_bytes(top) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Whether the submission is sampled, and how: none when it is not.
    pub fn sample(&self, item: &WorkItem) -> Option<ReviewSample> {
        let probability = self.probability(&item.kind);
        if probability <= 0.0 {
            return None;
        }
        let draw = self.draw(&idempotency_key(item));
        (draw < probability).then_some(ReviewSample { probability, draw })
    }
}

impl Default for DispatchConfig {
    /// PagerDuty-like defaults: an operator acknowledges within 15 minutes
    /// and resolves within 4 hours; an executive within 5 minutes and
    /// 1 hour. Leases last 10 minutes.
    fn default() -> Self {
        DispatchConfig {
            max_self_corrections: 3,
            operator: TierPolicy {
                role: "operator".into(),
                ack_secs: 15 * 60,
                resolve_secs: 4 * 3600,
            },
            executive: TierPolicy {
                role: "executive".into(),
                ack_secs: 5 * 60,
                resolve_secs: 3600,
            },
            lease_secs: 10 * 60,
            review: ReviewSampling::default(),
        }
    }
}

impl DispatchConfig {
    fn policy(&self, tier: Tier) -> &TierPolicy {
        match tier {
            Tier::Executive => &self.executive,
            _ => &self.operator,
        }
    }
}

/// What the agent is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Dispatched {
    /// Go ahead.
    Proceed,
    /// Retry with this guidance; this was self-correction `attempt`.
    Retry {
        /// What to do differently.
        guidance: Option<String>,
        /// This attempt's number, from 1.
        attempt: u32,
        /// How many are allowed before a human takes over.
        max: u32,
    },
    /// A human has it now.
    Handoff {
        /// The handoff to poll.
        id: String,
        /// Its tier.
        tier: Tier,
        /// The role it went to.
        role: String,
    },
}

/// A decision as it will be recorded and acted on (see
/// [`Dispatcher::settle`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    /// The decision of record.
    pub decision: Decision,
    /// For a self-correction (or one that ran out), the attempt it was.
    pub attempt: Option<u32>,
    /// Where a missed operator deadline escalates, when the driving plugin
    /// names a role for it.
    pub escalation_role: Option<String>,
    /// Its audit records, serialized, when the store chains them in the
    /// same transaction as the decision's row (a fleet's store); empty
    /// when the audit log recorded them already.
    pub audit: Vec<String>,
}

/// The row of a settled decision, carrying its audit records.
fn row_of(item: &WorkItem, settled: &Settled, now: DateTime<Utc>) -> DecisionRow {
    DecisionRow {
        audit: settled.audit.clone(),
        ..DecisionRow::of(item, &settled.decision, now)
    }
}

/// What a submission was answered, kept for its identical repeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Remembered {
    /// The decision of record.
    pub decision: Decision,
    /// What was done about it.
    pub dispatched: Dispatched,
}

/// The idempotency key of a submission: its item id and the SHA-256 of the
/// item as JSON. The same item submitted again (an agent retrying after a
/// timeout) has the same key and gets the same answer; the same id with
/// other content is a new attempt at the same work.
pub fn idempotency_key(item: &WorkItem) -> String {
    use sha2::{Digest, Sha256};
    // A struct of strings, numbers and a sorted map always serializes.
    let bytes = serde_json::to_vec(item).unwrap_or_default();
    format!("{}:{}", item.id, hex::encode(Sha256::digest(&bytes)))
}

/// Something the SLA clocks did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum SlaEvent {
    /// A breach moved a handoff up a tier.
    Escalated {
        /// The handoff.
        id: String,
        /// Which deadline was missed.
        breach: Breach,
        /// The tier it left.
        from: Tier,
        /// The tier it is now.
        to: Tier,
    },
    /// A worker's lease ran out: the handoff is back in its queue.
    LeaseExpired {
        /// The handoff.
        id: String,
        /// Who held it.
        holder: String,
    },
    /// An executive deadline was missed: nobody is left to escalate to.
    Alert {
        /// The handoff.
        id: String,
        /// Which deadline was missed.
        breach: Breach,
    },
}

/// Routes decisions to their tier's outcome and runs the human queue.
pub struct Dispatcher<S> {
    store: S,
    clock: Arc<dyn Clock>,
    config: DispatchConfig,
    health: HealthTracker,
    forwarder: Option<EventForwarder>,
}

impl<S: HandoffStore> Dispatcher<S> {
    /// A dispatcher over `store`, telling time by `clock`.
    pub fn new(store: S, clock: Arc<dyn Clock>, config: DispatchConfig) -> Self {
        Dispatcher {
            store,
            clock,
            config,
            health: HealthTracker::default(),
            forwarder: None,
        }
    }

    /// Sends every handoff event to `sink` (the audit log), starting after
    /// store position `through` (the newest event the sink already holds).
    pub fn with_event_sink(mut self, sink: EventSink, through: i64) -> Self {
        self.forwarder = Some(EventForwarder::new(sink, through));
        self
    }

    /// Forwards the events not yet forwarded, in store order. A refusal
    /// leaves them in the store for the next round; each store write and
    /// each SLA tick runs one.
    pub async fn forward_events(&self) -> Result<usize, ForwardError> {
        match &self.forwarder {
            Some(forwarder) => forwarder.forward(&self.store).await,
            None => Ok(0),
        }
    }

    async fn forward_after_write(&self) {
        if let Err(error) = self.forward_events().await {
            tracing::warn!(%error, "handoff events wait in the store for the audit log");
        }
    }

    /// Whether the store takes work. While it does not, each call (at most
    /// one a second) probes it with a write, so that it reports available
    /// again by itself once the fault clears.
    pub async fn health(&self) -> StoreHealth {
        let (health, probe_due) = self.health.check();
        if !probe_due {
            return health;
        }
        let probed = self.store.probe().await;
        self.health.observe(&probed, true);
        self.health.check().0
    }

    /// Runs a store operation and notes whether the store answered.
    async fn tracked<T>(
        &self,
        wrote: bool,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let result = operation.await;
        self.health.observe(&result, wrote);
        result
    }

    /// `result`, after forwarding the events it may have written.
    async fn forwarded<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if result.is_ok() {
            self.forward_after_write().await;
        }
        result
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &DispatchConfig {
        &self.config
    }

    /// Acts on a decision: approval, guidance, or a handoff in the queue.
    /// [`Dispatcher::settle`] first, then [`Dispatcher::dispatch_settled`].
    pub async fn dispatch(
        &self,
        item: &WorkItem,
        decision: &Decision,
    ) -> Result<Dispatched, StoreError> {
        let settled = self.settle(item, decision.clone()).await?;
        self.dispatch_settled(item, &settled).await
    }

    /// What the decision of record is, before it is recorded anywhere: a
    /// self-correction counts an attempt for the item (the host's count,
    /// never the agent's), and one past `max_self_corrections` becomes an
    /// `operator` decision with reason code `self-correct.exhausted`, so
    /// that the answer, the audit record and the store all say where the
    /// work went. The plugins' own verdicts stay as they were.
    pub async fn settle(&self, item: &WorkItem, decision: Decision) -> Result<Settled, StoreError> {
        if decision.tier() != Tier::SelfCorrect {
            return Ok(Settled {
                audit: Vec::new(),
                decision,
                attempt: None,
                escalation_role: None,
            });
        }
        let now = self.clock.now();
        let attempt = self
            .tracked(true, self.store.count_attempt(&item.id, now))
            .await?;
        let max = self.config.max_self_corrections;
        let mut decision = decision;
        let plugin_said = decision.verdict.clone();
        if attempt > max {
            let verdict = &mut decision.verdict;
            verdict.reason = format!(
                "{} The agent has self-corrected {max} times already (limit {max}).",
                verdict.reason
            );
            verdict.tier = Tier::Operator;
            verdict.reason_code = EXHAUSTED.into();
            verdict.role = Some(self.config.operator.role.clone());
            verdict.guidance = None;
            verdict.ack_sla_secs = None;
            verdict.resolve_sla_secs = None;
        }
        let record = AttemptRecord {
            attempt,
            at: now,
            text: item.text.clone(),
            tier: decision.tier(),
            reason_code: decision.verdict.reason_code.clone(),
            reason: plugin_said.reason,
            guidance: plugin_said.guidance,
        };
        self.tracked(true, self.store.record_attempt(&item.id, &record))
            .await?;
        Ok(Settled {
            audit: Vec::new(),
            decision,
            attempt: Some(attempt),
            escalation_role: None,
        })
    }

    /// Acts on a settled decision.
    pub async fn dispatch_settled(
        &self,
        item: &WorkItem,
        settled: &Settled,
    ) -> Result<Dispatched, StoreError> {
        let dispatched = self
            .tracked(true, self.dispatch_untracked(item, settled))
            .await;
        if matches!(dispatched, Ok(Dispatched::Handoff { .. })) {
            self.forward_after_write().await;
        }
        dispatched
    }

    /// Acts on many settled decisions, in order, with the rows of those
    /// that need nothing but their row (proceed, retry) committed together:
    /// one commit for a batch of routine work instead of one per item. On
    /// error, says which item failed (for a group, its first item); the
    /// items before that group are dispatched.
    pub async fn dispatch_settled_many(
        &self,
        settled: &[(&WorkItem, &Settled)],
    ) -> Result<Vec<Dispatched>, (usize, StoreError)> {
        let mut dispatched = Vec::with_capacity(settled.len());
        let mut rows = Vec::new();
        let mut first_row = 0;
        let now = self.clock.now();
        for (index, (item, one)) in settled.iter().enumerate() {
            if let Some((row, answer)) = self.autonomous(item, one, now) {
                if rows.is_empty() {
                    first_row = index;
                }
                rows.push(row);
                dispatched.push(answer);
                continue;
            }
            self.commit_rows(&mut rows)
                .await
                .map_err(|e| (first_row, e))?;
            dispatched.push(
                self.dispatch_settled(item, one)
                    .await
                    .map_err(|e| (index, e))?,
            );
        }
        self.commit_rows(&mut rows)
            .await
            .map_err(|e| (first_row, e))?;
        Ok(dispatched)
    }

    /// Commits the decision rows gathered so far, together.
    async fn commit_rows(&self, rows: &mut Vec<DecisionRow>) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(rows);
        self.tracked(true, self.store.record_autonomous_many(rows))
            .await
    }

    /// The row and the answer of a decision that needs nothing else: it
    /// proceeds unsampled, or the agent retries. None when it needs a
    /// queue (a handoff, or a sampled review).
    fn autonomous(
        &self,
        item: &WorkItem,
        settled: &Settled,
        now: DateTime<Utc>,
    ) -> Option<(DecisionRow, Dispatched)> {
        let verdict = &settled.decision.verdict;
        let answer = match verdict.tier {
            Tier::None if self.config.review.sample(item).is_none() => Dispatched::Proceed,
            Tier::SelfCorrect => Dispatched::Retry {
                guidance: verdict.guidance.clone(),
                attempt: settled.attempt.unwrap_or(1),
                max: self.config.max_self_corrections,
            },
            _ => return None,
        };
        Some((row_of(item, settled, now), answer))
    }

    async fn dispatch_untracked(
        &self,
        item: &WorkItem,
        settled: &Settled,
    ) -> Result<Dispatched, StoreError> {
        let now = self.clock.now();
        if let Some((row, answer)) = self.autonomous(item, settled, now) {
            self.store.record_autonomous(&row).await?;
            return Ok(answer);
        }
        let decision = &settled.decision;
        let verdict = &decision.verdict;
        let row = row_of(item, settled, now);
        let reason = DrivingReason {
            plugin: decision.driver.clone(),
            reason_code: verdict.reason_code.clone(),
            reason: verdict.reason.clone(),
        };
        let tier = verdict.tier;
        if tier == Tier::None {
            // Sampled for review, as `autonomous` found.
            match self.config.review.sample(item) {
                Some(sample) => {
                    self.enqueue_review(item, settled, &row, reason, sample, now)
                        .await?
                }
                None => self.store.record_autonomous(&row).await?,
            }
            return Ok(Dispatched::Proceed);
        }
        let policy = self.config.policy(tier);
        let role = verdict.role.clone().unwrap_or_else(|| policy.role.clone());
        let payload = TransferPayload {
            item: item.clone(),
            decision: decision.clone(),
            driving_reason: reason,
            attempts: self.store.attempts(&item.id).await?,
            history: self.store.attempt_history(&item.id).await?,
            prior_handoffs: self.store.prior(&item.id).await?,
            escalation_role: settled.escalation_role.clone(),
            review: None,
        };
        let handoff = NewHandoff {
            id: new_id(),
            tier,
            role: role.clone(),
            ack_deadline: now + seconds(verdict.ack_sla_secs.unwrap_or(policy.ack_secs)),
            resolve_deadline: now
                + seconds(verdict.resolve_sla_secs.unwrap_or(policy.resolve_secs)),
            payload,
        };
        let stored = self.store.enqueue(&row, &handoff, now).await?;
        tracing::info!(id = %stored.id, %tier, %role, item = %item.id, "handoff enqueued");
        Ok(Dispatched::Handoff {
            id: stored.id,
            tier,
            role,
        })
    }

    /// Puts a sampled autonomous item in the review queue, with its
    /// decision row in the same transaction. The agent has already been
    /// told to proceed.
    async fn enqueue_review(
        &self,
        item: &WorkItem,
        settled: &Settled,
        row: &DecisionRow,
        reason: DrivingReason,
        sample: ReviewSample,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let review = &self.config.review;
        let handoff = NewHandoff {
            id: new_id(),
            tier: Tier::None,
            role: review.role.clone(),
            ack_deadline: now + seconds(review.ack_secs),
            resolve_deadline: now + seconds(review.resolve_secs),
            payload: TransferPayload {
                item: item.clone(),
                decision: settled.decision.clone(),
                driving_reason: reason,
                attempts: self.store.attempts(&item.id).await?,
                history: Vec::new(),
                prior_handoffs: self.store.prior(&item.id).await?,
                escalation_role: None,
                review: Some(sample),
            },
        };
        let stored = self.store.enqueue(row, &handoff, now).await?;
        tracing::info!(id = %stored.id, item = %item.id, probability = sample.probability, "autonomous item sampled for review");
        Ok(())
    }

    /// The answer given to an earlier identical submission, if any: the
    /// decision and what was done about it.
    pub async fn answer_of(&self, key: &str) -> Result<Option<Remembered>, StoreError> {
        let Some(text) = self.tracked(false, self.store.answer_of(key)).await? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                what: "submissions.answer".into(),
                detail: e.to_string(),
            })
    }

    /// Keeps the answer to a submission, for its identical repeats.
    pub async fn remember(
        &self,
        key: &str,
        item: &WorkItem,
        answer: &Remembered,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(answer).map_err(|e| StoreError::Corrupt {
            what: "submissions.answer".into(),
            detail: e.to_string(),
        })?;
        self.tracked(
            true,
            self.store
                .keep_answer(key, &item.id, &text, self.clock.now()),
        )
        .await
    }

    /// Claims the most urgent handoff for `role`.
    pub async fn claim(&self, role: &str, worker: &str) -> Result<Option<Handoff>, StoreError> {
        let lease = seconds(self.config.lease_secs);
        let result = self
            .tracked(
                true,
                self.store.claim(role, worker, self.clock.now(), lease),
            )
            .await;
        match self.forwarded(result).await? {
            Some(handoff) => Ok(Some(self.with_current_priors(handoff).await?)),
            None => Ok(None),
        }
    }

    /// Acknowledges a claimed handoff.
    pub async fn acknowledge(&self, id: &str, worker: &str) -> Result<Handoff, StoreError> {
        let lease = seconds(self.config.lease_secs);
        let result = self
            .tracked(
                true,
                self.store.acknowledge(id, worker, self.clock.now(), lease),
            )
            .await;
        self.forwarded(result).await
    }

    /// Resolves a claimed handoff.
    pub async fn resolve(
        &self,
        id: &str,
        worker: &str,
        resolution: &Resolution,
    ) -> Result<Handoff, StoreError> {
        let result = self
            .tracked(
                true,
                self.store.resolve(id, worker, self.clock.now(), resolution),
            )
            .await;
        self.forwarded(result).await
    }

    /// Extends the lease on a handoff the worker holds.
    pub async fn renew(&self, id: &str, worker: &str) -> Result<Handoff, StoreError> {
        let lease = seconds(self.config.lease_secs);
        let result = self
            .tracked(true, self.store.renew(id, worker, self.clock.now(), lease))
            .await;
        self.forwarded(result).await
    }

    /// Everything the feedback report is computed from, read as of now.
    pub async fn history(&self) -> Result<(History, DateTime<Utc>), StoreError> {
        let history = History {
            decisions: self.tracked(false, self.store.decisions()).await?,
            handoffs: self.list(&ListFilter::default()).await?,
            events: self.tracked(false, self.store.events(None)).await?,
        };
        Ok((history, self.clock.now()))
    }

    /// Returns a claimed handoff to the queue.
    pub async fn release(&self, id: &str, worker: &str) -> Result<Handoff, StoreError> {
        let result = self
            .tracked(true, self.store.release(id, worker, self.clock.now()))
            .await;
        self.forwarded(result).await
    }

    /// One handoff as it stands now: an expired lease shows as queued, and
    /// its prior handoffs as they are now (resolved, say), not as they were
    /// when it was made.
    pub async fn get(&self, id: &str) -> Result<Handoff, StoreError> {
        let handoff = self.tracked(false, self.store.get(id)).await?;
        self.with_current_priors(handoff.as_of(self.clock.now()))
            .await
    }

    async fn with_current_priors(&self, mut handoff: Handoff) -> Result<Handoff, StoreError> {
        if handoff.payload.prior_handoffs.is_empty() {
            return Ok(handoff);
        }
        let now = self.store.prior(&handoff.item_id).await?;
        for prior in &mut handoff.payload.prior_handoffs {
            if let Some(current) = now.iter().find(|p| p.id == prior.id) {
                *prior = current.clone();
            }
        }
        Ok(handoff)
    }

    /// Unresolved handoffs by tier, role and state, for monitoring.
    pub async fn depth(&self) -> Result<Vec<QueueDepth>, StoreError> {
        self.tracked(false, self.store.depth(self.clock.now()))
            .await
    }

    /// The store's newest event position: it moves whenever any handoff
    /// changes, which is what live views watch.
    pub async fn newest_event(&self) -> Result<i64, StoreError> {
        self.tracked(false, self.store.newest_event()).await
    }

    /// Handoffs matching `filter`.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<Handoff>, StoreError> {
        self.tracked(false, self.store.list(filter, self.clock.now()))
            .await
    }

    /// Acts on every missed deadline: an operator handoff rises to
    /// executive with fresh clocks; a missed executive deadline raises an
    /// alert. Safe to run from several places at once: each breach is
    /// acted on once.
    pub async fn enforce_sla(&self) -> Result<Vec<SlaEvent>, StoreError> {
        let enforced = self.enforce_sla_untracked().await;
        let wrote = enforced.as_ref().is_ok_and(|events| !events.is_empty());
        self.health.observe(&enforced, wrote);
        // Every tick, also for changes other processes made.
        self.forward_after_write().await;
        enforced
    }

    async fn enforce_sla_untracked(&self) -> Result<Vec<SlaEvent>, StoreError> {
        let now = self.clock.now();
        let mut events = Vec::new();
        for (id, holder) in self.store.expire_leases(now).await? {
            tracing::info!(%id, %holder, "lease expired; back in the queue");
            events.push(SlaEvent::LeaseExpired { id, holder });
        }
        for (handoff, breach) in self.store.breached(now).await? {
            // A review holds nothing up, and an executive has no one above:
            // both are flagged once, never escalated.
            if handoff.tier == Tier::Executive || handoff.payload.review.is_some() {
                if self.store.alert(&handoff.id, breach, now).await? {
                    tracing::error!(id = %handoff.id, %breach, "executive SLA breached");
                    events.push(SlaEvent::Alert {
                        id: handoff.id,
                        breach,
                    });
                }
                continue;
            }
            let policy = &self.config.executive;
            // The driving plugin's own specialist, or the host's default.
            let role = handoff
                .payload
                .escalation_role
                .clone()
                .unwrap_or_else(|| policy.role.clone());
            let to = Escalation {
                tier: Tier::Executive,
                role,
                ack_deadline: now + seconds(policy.ack_secs),
                resolve_deadline: now + seconds(policy.resolve_secs),
            };
            if self
                .store
                .escalate(&handoff.id, handoff.tier, breach, &to, now)
                .await?
            {
                tracing::warn!(id = %handoff.id, %breach, "SLA breached; escalated to executive");
                events.push(SlaEvent::Escalated {
                    id: handoff.id,
                    breach,
                    from: handoff.tier,
                    to: Tier::Executive,
                });
            }
        }
        Ok(events)
    }
}

/// The reason code of a handoff made because self-correction ran out.
pub const EXHAUSTED: &str = "self-correct.exhausted";

fn seconds(secs: u32) -> Duration {
    Duration::seconds(i64::from(secs))
}

/// `h-` and 16 random hex digits.
fn new_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No entropy source: fall back on the time, still unique enough
        // together with the primary key check.
        bytes = chrono::Utc::now()
            .timestamp_nanos_opt()
            .unwrap_or_default()
            .to_be_bytes();
    }
    format!("h-{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use handoff_model::{Metering, PluginVerdict, TriggerKind, Verdict};

    use super::*;
    use crate::{HandoffState, ManualClock, Outcome, SqliteStore};

    /// A decision as the policy runtime would make it, built by hand: the
    /// dispatcher needs no plugin, only the verdict.
    fn decision(id: &str, tier: Tier, role: Option<&str>) -> Decision {
        let verdict = Verdict {
            tier,
            reason_code: "test.rule".into(),
            reason: "a test verdict".into(),
            role: role.map(str::to_string),
            ack_sla_secs: None,
            resolve_sla_secs: None,
            guidance: (tier == Tier::SelfCorrect).then(|| "try again".to_string()),
            trigger: TriggerKind::Rule,
        };
        let plugin = PluginVerdict {
            plugin: "test".into(),
            version: "1".into(),
            digest: "sha256:00".into(),
            classification: None,
            assessment: None,
            verdict: Some(verdict),
            fault: None,
        };
        let metering = Metering {
            elapsed_us: 0.0,
            plugins: vec![],
            shadow: vec![],
        };
        Decision::combine(id.into(), 1, vec![plugin], metering)
    }

    fn item(id: &str) -> WorkItem {
        WorkItem::from_json(&format!(
            r#"{{"id":"{id}","kind":"reply","agent":"a","text":"t","confidence":0.5}}"#
        ))
        .unwrap()
    }

    #[tokio::test]
    async fn tiers_route_to_retry_or_a_queue_on_a_real_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        let start = Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let config = DispatchConfig {
            max_self_corrections: 1,
            ..DispatchConfig::default()
        };
        let host = Dispatcher::new(store, clock.clone(), config);

        let none = host
            .dispatch(&item("a"), &decision("a", Tier::None, None))
            .await
            .unwrap();
        assert_eq!(none, Dispatched::Proceed);
        let retry = host
            .dispatch(&item("b"), &decision("b", Tier::SelfCorrect, None))
            .await
            .unwrap();
        assert!(
            matches!(
                retry,
                Dispatched::Retry {
                    attempt: 1,
                    max: 1,
                    ..
                }
            ),
            "{retry:?}"
        );
        let Dispatched::Handoff { id, tier, role } = host
            .dispatch(&item("b"), &decision("b", Tier::SelfCorrect, None))
            .await
            .unwrap()
        else {
            panic!("a second self-correction past the limit goes to a human")
        };
        assert_eq!((tier, role.as_str()), (Tier::Operator, "operator"));
        let queued = host.store().get(&id).await.unwrap();
        assert_eq!(queued.reason_code, EXHAUSTED);
        assert_eq!(queued.ack_deadline, start + Duration::minutes(15));

        let Dispatched::Handoff { id, .. } = host
            .dispatch(&item("c"), &decision("c", Tier::Executive, Some("cfo")))
            .await
            .unwrap()
        else {
            panic!("an executive verdict is handed off")
        };
        let claimed = host.claim("cfo", "dana").await.unwrap().unwrap();
        assert_eq!(claimed.id, id);
        clock.advance(Duration::seconds(30));
        let resolution = Resolution {
            outcome: Outcome::Rejected,
            note: "no".into(),
            warranted: true,
        };
        let resolved = host.resolve(&id, "dana", &resolution).await.unwrap();
        assert_eq!(resolved.state, HandoffState::Resolved);
        assert!(!resolved.breached);
        let rows = host.store().decisions().await.unwrap();
        let tiers: Vec<Tier> = rows.iter().map(|r| r.tier).collect();
        assert_eq!(
            tiers,
            [
                Tier::None,
                Tier::SelfCorrect,
                Tier::Operator,
                Tier::Executive
            ]
        );
    }
}
