//! The feedback report: how the agents, the people and the policies
//! perform, measured on pieces of work rather than on decisions, and a
//! calibration of each probabilistic trigger from what people decided.
//!
//! Everything here is a pure function of the stored history and the
//! instant it is read at, so every figure can be checked against a
//! constructed history whose answers are computed by hand. README's
//! "Feedback report" section defines each figure.
//!
//! - [`work`]: decisions and handoffs grouped into pieces of work;
//! - [`calibration`]: threshold suggestions with an error bound;
//! - [`series`]: the same figures per interval, for charts over time.

pub mod calibration;
pub mod series;
mod work;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::handoff::{Handoff, HandoffState, Outcome};
use crate::store::{DecisionRow, Event};
pub use calibration::{
    Calibration, CalibrationReport, CalibrationTarget, Evidence, ThresholdStep,
    ThresholdSuggestion, calibrate, clopper_pearson_upper, suggest_threshold, suggest_weighted,
};
use work::{Route, Work};

/// Prices for the cost estimate, and the calibration target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportOptions {
    /// What a minute of a person's time costs.
    pub cost_per_human_minute: f64,
    /// What one attempt of the agent costs (a decided submission: compute,
    /// the model call).
    pub cost_per_agent_attempt: f64,
    /// Minutes of people's time a piece of work takes, when no finished
    /// work measures it.
    pub default_human_minutes: f64,
    /// The error rate a suggested threshold must stay under (α).
    pub target_error: f64,
    /// The chance the bound is wrong (δ).
    pub delta: f64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            cost_per_human_minute: 1.0,
            cost_per_agent_attempt: 0.05,
            default_human_minutes: 10.0,
            target_error: 0.01,
            delta: 0.05,
        }
    }
}

/// A report option out of range, named as the command line and the API
/// spell it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct OptionError {
    /// `cost-per-human-minute`, `target-error`, ...
    pub field: &'static str,
    /// What it must be.
    pub reason: &'static str,
}

impl ReportOptions {
    /// Refuses a cost that is negative or not a number, and an α or δ
    /// outside (0, 1): a report computed from them would mean nothing.
    pub fn validate(&self) -> Result<(), OptionError> {
        for (field, value) in [
            ("cost-per-human-minute", self.cost_per_human_minute),
            ("cost-per-agent-attempt", self.cost_per_agent_attempt),
            ("default-human-minutes", self.default_human_minutes),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(OptionError {
                    field,
                    reason: "must be a finite number, zero or more",
                });
            }
        }
        for (field, value) in [("target-error", self.target_error), ("delta", self.delta)] {
            if !(value > 0.0 && value < 1.0) {
                return Err(OptionError {
                    field,
                    reason: "must be strictly between 0 and 1",
                });
            }
        }
        Ok(())
    }
}

/// What the report is computed from: everything the store holds.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Every decision.
    pub decisions: Vec<DecisionRow>,
    /// Every handoff.
    pub handoffs: Vec<Handoff>,
    /// Every handoff event: where claims, releases and lease expiries are.
    pub events: Vec<Event>,
}

/// Median and 95th percentile, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// 50th percentile (the mean of the middle two for an even count).
    pub median: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
}

/// How people resolved handoffs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcomes {
    /// The agent's work stood.
    pub approved: u64,
    /// A person changed it.
    pub corrected: u64,
    /// It must not go out.
    pub rejected: u64,
}

/// Service levels of handoffs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sla {
    /// Handoffs whose SLA is decided: resolved, or open past a deadline.
    pub judged: u64,
    /// Of those, resolved with every deadline met.
    pub met: u64,
    /// Open handoffs past a deadline (escalated or not): counted as missed.
    pub open_breached: u64,
    /// `met / judged`.
    pub compliance: Option<f64>,
}

/// The figures for one policy, reason code, trigger kind, or everything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Pieces of work (distinct item ids).
    pub work: u64,
    /// Decisions made on them (first submissions and retries).
    pub decisions: u64,
    /// Work that finished without a person.
    pub autonomous: u64,
    /// Work a person got at least once, finished or not.
    pub with_people: u64,
    /// Work still with the agent: sent back, not resubmitted yet.
    pub with_agent: u64,
    /// `autonomous / (autonomous + with_people)`: of the work whose route is
    /// settled, the share that needed no person.
    pub autonomous_share: Option<f64>,
    /// Of the settled work sent back to self-correct at least once, the
    /// share that then finished without a person.
    pub self_correction_recovery: Option<f64>,
    /// Work with people whose every handoff is resolved.
    pub finished_with_people: u64,
    /// Of that, the share the first person to take it resolved: one
    /// handoff, claimed once, never escalated.
    pub first_contact_resolution: Option<f64>,
    /// Handoffs made.
    pub handoffs: u64,
    /// How the resolved ones ended.
    pub outcomes: Outcomes,
    /// Of resolved handoffs, the share people judged warranted.
    pub warranted_share: Option<f64>,
    /// From first submission to final outcome, over finished work (agent
    /// or person), in seconds.
    pub time_to_value: Option<Percentiles>,
    /// Time people held a resolved handoff (claim to release, lease expiry,
    /// escalation or resolution, summed), in seconds.
    pub human_handling: Option<Percentiles>,
    /// Time a resolved handoff waited for a person (its life minus the
    /// time held), in seconds.
    pub queue_wait: Option<Percentiles>,
    /// All time people held handoffs, open ones until now, in minutes.
    pub human_minutes: f64,
    /// Service levels.
    pub sla: Sla,
    /// Σ over autonomous work of (minutes a person would have spent ×
    /// cost per minute − the agent's attempts × cost per attempt).
    pub cost_avoided: f64,
}

/// The unit costs used and the human time they were applied to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Costs {
    /// As given.
    pub cost_per_human_minute: f64,
    /// As given.
    pub cost_per_agent_attempt: f64,
    /// Minutes of people's time per piece of work finished with people:
    /// measured when `measured_on` is above zero, else the default given.
    pub human_minutes_per_work: f64,
    /// How many finished pieces of work it was measured on.
    pub measured_on: u64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackReport {
    /// The instant open handoffs and held leases were judged at.
    pub as_of: DateTime<Utc>,
    /// Across all work.
    pub overall: Figures,
    /// By the plugin that first intervened (`-` for none).
    pub by_policy: BTreeMap<String, Figures>,
    /// By the reason code that first intervened.
    pub by_reason_code: BTreeMap<String, Figures>,
    /// By `rule`, `probabilistic` or `none`.
    pub by_trigger_kind: BTreeMap<String, Figures>,
    /// The cost model.
    pub costs: Costs,
    /// Threshold suggestions for probabilistic triggers.
    pub calibration: CalibrationReport,
}

/// Computes the report on `history` as of `now`. `targets` are the
/// `[calibrate]` entries of the policies, naming the key each suggestion
/// would change.
pub fn feedback_report(
    history: &History,
    now: DateTime<Utc>,
    options: &ReportOptions,
    targets: &[CalibrationTarget],
) -> FeedbackReport {
    let pieces = work::pieces(&history.decisions, &history.handoffs);
    let mut events: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for event in &history.events {
        events.entry(&event.handoff).or_default().push(event);
    }
    for list in events.values_mut() {
        list.sort_by_key(|e| e.seq);
    }
    // Each handoff's held time, walked from its events once: every group
    // below reads it again.
    let held_by_id: BTreeMap<&str, f64> = history
        .handoffs
        .iter()
        .map(|h| {
            let events = events.get(h.id.as_str()).map_or(&[][..], Vec::as_slice);
            (h.id.as_str(), work::held_seconds(events, now))
        })
        .collect();
    let held = |handoff: &Handoff| held_by_id.get(handoff.id.as_str()).copied().unwrap_or(0.0);

    let finished_minutes: Vec<f64> = pieces
        .iter()
        .filter(|w| w.route == Route::WithPeople && w.finished_at.is_some())
        .map(|w| w.handoffs.iter().map(|h| held(h)).sum::<f64>() / 60.0)
        .collect();
    let costs = Costs {
        cost_per_human_minute: options.cost_per_human_minute,
        cost_per_agent_attempt: options.cost_per_agent_attempt,
        human_minutes_per_work: if finished_minutes.is_empty() {
            options.default_human_minutes
        } else {
            finished_minutes.iter().sum::<f64>() / finished_minutes.len() as f64
        },
        measured_on: finished_minutes.len() as u64,
    };

    let context = Context {
        now,
        held: &held,
        costs: &costs,
    };
    let all: Vec<&Work> = pieces.iter().collect();
    let attributions: Vec<_> = pieces.iter().map(Work::attribution).collect();
    let by = |key: &dyn Fn(&work::Attribution) -> &str| {
        let mut groups: BTreeMap<String, Vec<&Work>> = BTreeMap::new();
        for (piece, attribution) in pieces.iter().zip(&attributions) {
            groups
                .entry(key(attribution).to_string())
                .or_default()
                .push(piece);
        }
        groups
            .into_iter()
            .map(|(name, group)| (name, context.figures(&group)))
            .collect()
    };
    let handoffs: Vec<&Handoff> = history.handoffs.iter().collect();
    FeedbackReport {
        as_of: now,
        overall: context.figures(&all),
        by_policy: by(&|a| &a.policy),
        by_reason_code: by(&|a| &a.reason_code),
        by_trigger_kind: by(&|a| &a.trigger_kind),
        calibration: calibrate(&handoffs, targets, options.target_error, options.delta),
        costs,
    }
}

struct Context<'a> {
    now: DateTime<Utc>,
    held: &'a dyn Fn(&Handoff) -> f64,
    costs: &'a Costs,
}

impl Context<'_> {
    fn figures(&self, pieces: &[&Work]) -> Figures {
        let count = |route: Route| pieces.iter().filter(|w| w.route == route).count();
        let (autonomous, with_people, with_agent) = (
            count(Route::Autonomous),
            count(Route::WithPeople),
            count(Route::WithAgent),
        );
        let settled_self_corrected: Vec<_> = pieces
            .iter()
            .filter(|w| w.route != Route::WithAgent && w.self_corrected())
            .collect();
        let recovered = settled_self_corrected
            .iter()
            .filter(|w| w.route == Route::Autonomous)
            .count();
        let finished_with_people: Vec<_> = pieces
            .iter()
            .filter(|w| w.route == Route::WithPeople && w.finished_at.is_some())
            .collect();
        let first_contact = finished_with_people
            .iter()
            .filter(|w| w.first_contact())
            .count();

        let handoffs: Vec<&Handoff> = pieces.iter().flat_map(|w| w.handoffs.clone()).collect();
        let resolved: Vec<&Handoff> = handoffs
            .iter()
            .copied()
            .filter(|h| h.state == HandoffState::Resolved)
            .collect();
        let mut outcomes = Outcomes::default();
        for resolution in resolved.iter().filter_map(|h| h.resolution.as_ref()) {
            match resolution.outcome {
                Outcome::Approved => outcomes.approved += 1,
                Outcome::Corrected { .. } => outcomes.corrected += 1,
                Outcome::Rejected => outcomes.rejected += 1,
            }
        }
        let warranted = resolved
            .iter()
            .filter(|h| h.resolution.as_ref().is_some_and(|r| r.warranted))
            .count();

        let mut time_to_value: Vec<f64> = pieces
            .iter()
            .filter_map(|w| Some(seconds(w.finished_at? - w.first_at()?)))
            .collect();
        let mut handling = Vec::new();
        let mut waiting = Vec::new();
        for handoff in &resolved {
            let held = (self.held)(handoff);
            handling.push(held);
            if let Some(resolved_at) = handoff.resolved_at {
                waiting.push((seconds(resolved_at - handoff.created_at) - held).max(0.0));
            }
        }
        let human_minutes = handoffs.iter().map(|h| (self.held)(h)).sum::<f64>() / 60.0 + 0.0;

        let mut sla = Sla::default();
        for handoff in &handoffs {
            if let Some(met) = work::sla_met(handoff, self.now) {
                sla.judged += 1;
                sla.met += u64::from(met);
                if !met && handoff.state != HandoffState::Resolved {
                    sla.open_breached += 1;
                }
            }
        }
        sla.compliance = share(sla.met as usize, sla.judged as usize);

        let per_work = self.costs.human_minutes_per_work * self.costs.cost_per_human_minute;
        let cost_avoided = pieces
            .iter()
            .filter(|w| w.route == Route::Autonomous)
            .map(|w| per_work - w.attempts() as f64 * self.costs.cost_per_agent_attempt)
            // An empty float sum is -0.0: report nothing avoided as 0.
            .sum::<f64>()
            + 0.0;

        Figures {
            work: pieces.len() as u64,
            decisions: pieces.iter().map(|w| w.decisions.len() as u64).sum(),
            autonomous: autonomous as u64,
            with_people: with_people as u64,
            with_agent: with_agent as u64,
            autonomous_share: share(autonomous, autonomous + with_people),
            self_correction_recovery: share(recovered, settled_self_corrected.len()),
            finished_with_people: finished_with_people.len() as u64,
            first_contact_resolution: share(first_contact, finished_with_people.len()),
            handoffs: handoffs.len() as u64,
            outcomes,
            warranted_share: share(warranted, resolved.len()),
            time_to_value: percentiles(&mut time_to_value),
            human_handling: percentiles(&mut handling),
            queue_wait: percentiles(&mut waiting),
            human_minutes,
            sla,
            cost_avoided,
        }
    }
}

fn seconds(span: chrono::Duration) -> f64 {
    span.num_milliseconds() as f64 / 1000.0
}

fn share(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Median (mean of the middle two for an even count) and nearest-rank p95.
fn percentiles(values: &mut [f64]) -> Option<Percentiles> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    let rank = (0.95 * n as f64).ceil() as usize;
    Some(Percentiles {
        median,
        p95: values[rank.clamp(1, n) - 1],
    })
}

#[cfg(test)]
mod tests;
