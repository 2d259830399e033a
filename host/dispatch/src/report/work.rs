//! Pieces of work: the decisions and handoffs of one item id, read as one
//! story with a route, an outcome time and the human time it took.
//!
//! The report measures work, not decisions: three self-correction retries
//! that end with a person are one piece of work a person handled, not
//! three autonomous decisions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::handoff::{Handoff, HandoffState};
use crate::store::{DecisionRow, Event};
use handoff_model::{Named, Tier};

/// Where a piece of work went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// It finished without a person: its latest decision let it proceed.
    Autonomous,
    /// It is still with the agent: sent back to self-correct, not
    /// resubmitted yet.
    WithAgent,
    /// A person got it at least once.
    WithPeople,
}

/// One piece of work.
#[derive(Debug)]
pub(super) struct Work<'a> {
    /// Its decisions, oldest first.
    pub decisions: Vec<&'a DecisionRow>,
    /// Its handoffs, oldest first.
    pub handoffs: Vec<&'a Handoff>,
    /// Where it went.
    pub route: Route,
    /// When it reached its final outcome; none while it is open.
    pub finished_at: Option<DateTime<Utc>>,
}

/// The attribution of a piece of work: the decision that first did not let
/// it proceed (the trigger that intervened), or, for work that always
/// proceeded, its latest decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Attribution {
    /// The driving plugin, `-` for none.
    pub policy: String,
    /// The reason code.
    pub reason_code: String,
    /// `rule`, `probabilistic` or `none`.
    pub trigger_kind: String,
}

impl<'a> Work<'a> {
    /// When it was first submitted.
    pub fn first_at(&self) -> Option<DateTime<Utc>> {
        let decided = self.decisions.first().map(|d| d.at);
        let handed = self.handoffs.iter().map(|h| h.created_at).min();
        decided.into_iter().chain(handed).min()
    }

    /// How many times the agent's work was decided on: what the agent's
    /// attempts cost.
    pub fn attempts(&self) -> u64 {
        self.decisions.len().max(1) as u64
    }

    /// Whether it was sent back to self-correct at least once.
    pub fn self_corrected(&self) -> bool {
        self.decisions.iter().any(|d| d.tier == Tier::SelfCorrect)
    }

    /// Whether the first person who took it resolved it: one handoff,
    /// claimed once, never escalated, resolved.
    pub fn first_contact(&self) -> bool {
        matches!(self.handoffs.as_slice(), [only]
            if only.state == HandoffState::Resolved && only.claims == 1 && only.escalations == 0)
    }

    pub fn attribution(&self) -> Attribution {
        let deciding = self
            .decisions
            .iter()
            .find(|d| d.tier != Tier::None)
            .or(self.decisions.last());
        match (deciding, self.handoffs.first()) {
            (Some(d), _) => Attribution {
                policy: d.driver.clone().unwrap_or_else(|| "-".into()),
                reason_code: d.reason_code.clone(),
                trigger_kind: d.trigger.map_or("none", |t| t.as_str()).into(),
            },
            // A handoff whose decision row is gone: attribute it to what
            // the handoff itself says.
            (None, Some(h)) => Attribution {
                policy: h.driver.clone().unwrap_or_else(|| "-".into()),
                reason_code: h.reason_code.clone(),
                trigger_kind: h
                    .payload
                    .decision
                    .verdict
                    .trigger
                    .map_or("none", |t| t.as_str())
                    .into(),
            },
            (None, None) => Attribution {
                policy: "-".into(),
                reason_code: "-".into(),
                trigger_kind: "none".into(),
            },
        }
    }
}

/// Groups the history by item id, in item-id order.
pub(super) fn pieces<'a>(decisions: &'a [DecisionRow], handoffs: &'a [Handoff]) -> Vec<Work<'a>> {
    let mut by_item: BTreeMap<&str, (Vec<&DecisionRow>, Vec<&Handoff>)> = BTreeMap::new();
    for decision in decisions {
        by_item
            .entry(&decision.item_id)
            .or_default()
            .0
            .push(decision);
    }
    for handoff in handoffs {
        by_item.entry(&handoff.item_id).or_default().1.push(handoff);
    }
    by_item
        .into_values()
        .map(|(mut decisions, mut handoffs)| {
            decisions.sort_by_key(|d| d.at);
            handoffs.sort_by_key(|h| h.created_at);
            let (route, finished_at) = route_of(&decisions, &handoffs);
            Work {
                decisions,
                handoffs,
                route,
                finished_at,
            }
        })
        .collect()
}

/// A piece of work is finished when no handoff of it is open and its
/// latest event is a resolution or a decision that let it proceed; it
/// finished at that event.
fn route_of(decisions: &[&DecisionRow], handoffs: &[&Handoff]) -> (Route, Option<DateTime<Utc>>) {
    let latest = decisions.last();
    let to_people = !handoffs.is_empty() || decisions.iter().any(|d| d.tier.needs_human());
    if !to_people {
        return match latest {
            Some(d) if d.tier == Tier::None => (Route::Autonomous, Some(d.at)),
            _ => (Route::WithAgent, None),
        };
    }
    if handoffs.is_empty() || handoffs.iter().any(|h| h.state != HandoffState::Resolved) {
        return (Route::WithPeople, None);
    }
    let resolved = handoffs.iter().filter_map(|h| h.resolved_at).max();
    let finished = match (latest, resolved) {
        // Resubmitted after the last resolution: that decision is where the
        // work stands.
        (Some(d), Some(r)) if d.at > r => (d.tier == Tier::None).then_some(d.at),
        (_, r) => r,
    };
    (Route::WithPeople, finished)
}

/// Time a person held a handoff: from each claim to the release,
/// resolution, escalation or lease expiry that ended it (an expired lease
/// counts until it ran out); a lease still held counts until `now`.
pub(super) fn held_seconds(events: &[&Event], now: DateTime<Utc>) -> f64 {
    let mut since: Option<DateTime<Utc>> = None;
    let mut millis = 0_i64;
    let mut end = |since: &mut Option<DateTime<Utc>>, at: DateTime<Utc>| {
        if let Some(start) = since.take() {
            millis += (at - start).num_milliseconds().max(0);
        }
    };
    for event in events {
        match event.kind.as_str() {
            "claimed" => {
                end(&mut since, event.at);
                since = Some(event.at);
            }
            "released" | "resolved" | "escalated" => end(&mut since, event.at),
            "lease-expired" => {
                let expired = event
                    .detail
                    .get("expired_at")
                    .and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok())
                    .map_or(event.at, |at| at.min(event.at));
                end(&mut since, expired);
            }
            _ => {}
        }
    }
    end(&mut since, now);
    millis as f64 / 1000.0
}

/// Whether a handoff met its SLA: `Some(true)` when resolved in time,
/// `Some(false)` when a deadline was missed (resolved late, escalated, or
/// open past a deadline at `now`), none while open and still in time.
pub(super) fn sla_met(handoff: &Handoff, now: DateTime<Utc>) -> Option<bool> {
    if handoff.breached {
        return Some(false);
    }
    if handoff.state == HandoffState::Resolved {
        return Some(true);
    }
    (handoff.next_deadline() <= now).then_some(false)
}
