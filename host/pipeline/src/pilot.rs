//! The pilot report: what a shadow version would change if it enforced,
//! measured on the live traffic it ran beside, from the audit log.
//!
//! Unlike a replay, nothing is re-evaluated: every decision record already
//! holds the shadow's verdict for that very item, so the comparison is the
//! candidate's answer on production traffic at the time, with the
//! production versions beside it. Each decision is compared as the
//! enforcing plugins' verdicts combine (before the host's settlement) with
//! the same verdicts where the shadow's replaces the version it pilots.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use handoff_audit::{Body, Entry};
use handoff_model::{Decision, Named, Tier, piloted};

/// Which records a pilot report reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PilotWindow {
    /// One shadow version only (`NAME@LABEL`); all of them when absent.
    pub shadow: Option<String>,
    /// Records at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Records before this time.
    pub until: Option<DateTime<Utc>>,
}

/// Who handles each tier when a verdict names no role: the dispatch
/// configuration's defaults, so workload is counted per real queue.
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultRoles {
    /// Level 2.
    pub operator: String,
    /// Level 3.
    pub executive: String,
    /// Resolve target of a level 2 handoff whose verdict names none, seconds.
    pub operator_resolve_secs: u32,
    /// Resolve target of a level 3 handoff whose verdict names none, seconds.
    pub executive_resolve_secs: u32,
}

/// The pilot of every shadow version in the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PilotReport {
    /// The first and last decision record read.
    pub from: Option<DateTime<Utc>>,
    /// See `from`.
    pub to: Option<DateTime<Utc>>,
    /// The days the per-day figures divide by: the window asked for, else
    /// the span of the records, at least one hour.
    pub days: f64,
    /// One entry per shadow version seen, by name.
    pub shadows: Vec<ShadowPilot>,
}

/// One shadow version against what enforced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowPilot {
    /// The shadow version (`NAME@LABEL`).
    pub shadow: String,
    /// The enforcing plugin it pilots (`NAME`).
    pub pilots: String,
    /// The component digests it ran as.
    pub digests: Vec<String>,
    /// Decisions it ran beside.
    pub decisions: u64,
    /// `matrix[enforced][shadow]`: decisions whose tier as enforced was
    /// `enforced` and would have been `shadow` (indexed by level).
    pub matrix: [[u64; 4]; 4],
    /// Every decision whose tier or reason code would change.
    pub changed: Vec<PilotChange>,
    /// Share of decisions whose tier would change.
    pub changed_share: f64,
    /// Human workload per day, by tier and role, as enforced and as it
    /// would be.
    pub workload: Vec<Workload>,
    /// Handoffs (operator and executive) per day, as enforced and as it
    /// would be, and the relative change.
    pub handoffs_per_day: Change,
    /// Hours of resolve-SLA commitments opened per day (the sum of every
    /// handoff's resolve target): how much human time the queues promise.
    pub sla_hours_per_day: Change,
    /// Decisions on which the shadow faulted.
    pub faults: u64,
    /// `faults / decisions`.
    pub fault_rate: f64,
    /// Faults by kind.
    pub fault_kinds: BTreeMap<String, u64>,
    /// The shadow's wall time per evaluation, microseconds.
    pub latency_us: Option<Latency>,
    /// The wall time of the version it pilots, on the same decisions.
    pub pilots_latency_us: Option<Latency>,
}

/// A figure as enforced and as the shadow would make it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Change {
    /// As enforced.
    pub enforced: f64,
    /// As it would be.
    pub shadow: f64,
    /// `shadow / enforced - 1`; none when nothing was enforced.
    pub relative: Option<f64>,
}

/// One queue's load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    /// The tier.
    pub tier: Tier,
    /// The role that would handle it.
    pub role: String,
    /// Per day, as enforced and as it would be.
    pub per_day: Change,
}

/// Percentiles of a latency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// One decision the shadow would change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PilotChange {
    /// The decision record.
    pub seq: u64,
    /// When it was decided.
    pub at: DateTime<Utc>,
    /// The item.
    pub id: String,
    /// As enforced.
    pub enforced_tier: Tier,
    /// As enforced.
    pub enforced_reason_code: String,
    /// As enforced.
    pub enforced_reason: String,
    /// As the shadow would decide.
    pub shadow_tier: Tier,
    /// As the shadow would decide.
    pub shadow_reason_code: String,
    /// As the shadow would decide.
    pub shadow_reason: String,
}

/// The pilot report of every shadow in `window` over `entries`.
pub fn pilot(entries: &[Entry], window: &PilotWindow, roles: &DefaultRoles) -> PilotReport {
    let mut tally: BTreeMap<String, Tally> = BTreeMap::new();
    let (mut from, mut to) = (None::<DateTime<Utc>>, None::<DateTime<Utc>>);
    for entry in entries {
        let Body::Decision(record) = &entry.record.body else {
            continue;
        };
        let at = entry.record.ts;
        if window.since.is_some_and(|since| at < since) || window.until.is_some_and(|u| at >= u) {
            continue;
        }
        from = Some(from.map_or(at, |f| f.min(at)));
        to = Some(to.map_or(at, |t| t.max(at)));
        let decision = &record.decision;
        if decision.shadow.is_empty() {
            continue;
        }
        // Once per decision, whatever the number of shadows beside it.
        let enforced = decision.as_enforced();
        for shadow in &decision.shadow {
            if window.shadow.as_ref().is_some_and(|s| *s != shadow.plugin) {
                continue;
            }
            let Some(would) = decision.as_if_promoted(&shadow.plugin) else {
                continue;
            };
            tally
                .entry(shadow.plugin.clone())
                .or_default()
                .add(entry, &enforced, &would, shadow, roles);
        }
    }
    let seconds = match (window.since, window.until) {
        (Some(since), Some(until)) => (until - since).num_milliseconds() as f64 / 1e3,
        _ => match (from, to) {
            (Some(from), Some(to)) => (to - from).num_milliseconds() as f64 / 1e3,
            _ => 0.0,
        },
    };
    let days = seconds.max(3600.0) / 86_400.0;
    PilotReport {
        from,
        to,
        days,
        shadows: tally
            .into_iter()
            .map(|(name, tally)| tally.finish(name, days))
            .collect(),
    }
}

#[derive(Default)]
struct Tally {
    digests: Vec<String>,
    decisions: u64,
    matrix: [[u64; 4]; 4],
    changed: Vec<PilotChange>,
    queues: BTreeMap<(Tier, String), (u64, u64)>,
    sla_secs: (f64, f64),
    faults: u64,
    fault_kinds: BTreeMap<String, u64>,
    wall: Vec<f64>,
    pilots_wall: Vec<f64>,
}

impl Tally {
    fn add(
        &mut self,
        entry: &Entry,
        enforced: &Decision,
        would: &Decision,
        shadow: &handoff_model::PluginVerdict,
        roles: &DefaultRoles,
    ) {
        self.decisions += 1;
        if !self.digests.contains(&shadow.digest) {
            self.digests.push(shadow.digest.clone());
        }
        let (old, new) = (&enforced.verdict, &would.verdict);
        self.matrix[old.tier.level() as usize][new.tier.level() as usize] += 1;
        if old.tier != new.tier || old.reason_code != new.reason_code {
            self.changed.push(PilotChange {
                seq: entry.record.seq,
                at: entry.record.ts,
                id: enforced.id.clone(),
                enforced_tier: old.tier,
                enforced_reason_code: old.reason_code.clone(),
                enforced_reason: old.reason.clone(),
                shadow_tier: new.tier,
                shadow_reason_code: new.reason_code.clone(),
                shadow_reason: new.reason.clone(),
            });
        }
        for (side, d) in [(0, enforced), (1, would)] {
            let Some((queue, resolve_secs)) = queue_of(d, roles) else {
                continue;
            };
            let counts = self.queues.entry(queue).or_default();
            if side == 0 {
                counts.0 += 1;
                self.sla_secs.0 += f64::from(resolve_secs);
            } else {
                counts.1 += 1;
                self.sla_secs.1 += f64::from(resolve_secs);
            }
        }
        if let Some(fault) = &shadow.fault {
            self.faults += 1;
            *self
                .fault_kinds
                .entry(fault.kind.as_str().to_string())
                .or_default() += 1;
        }
        let wall = |name: &str, costs: &[handoff_model::PluginMetering]| {
            costs.iter().find(|m| m.plugin == name).map(|m| m.wall_us)
        };
        self.wall
            .extend(wall(&shadow.plugin, &enforced.metering.shadow));
        self.pilots_wall
            .extend(wall(piloted(&shadow.plugin), &enforced.metering.plugins));
    }

    fn finish(mut self, shadow: String, days: f64) -> ShadowPilot {
        let per_day = |(enforced, shadow): (f64, f64)| Change {
            enforced: enforced / days,
            shadow: shadow / days,
            relative: (enforced > 0.0).then(|| shadow / enforced - 1.0),
        };
        let total = self
            .queues
            .values()
            .fold((0.0, 0.0), |(a, b), (x, y)| (a + *x as f64, b + *y as f64));
        let tier_changed: u64 = (0..4)
            .flat_map(|i| (0..4).map(move |j| (i, j)))
            .filter(|(i, j)| i != j)
            .map(|(i, j)| self.matrix[i][j])
            .sum();
        ShadowPilot {
            pilots: piloted(&shadow).to_string(),
            digests: self.digests,
            decisions: self.decisions,
            matrix: self.matrix,
            changed: self.changed,
            changed_share: ratio(tier_changed, self.decisions),
            workload: self
                .queues
                .into_iter()
                .map(|((tier, role), (enforced, shadow))| Workload {
                    tier,
                    role,
                    per_day: per_day((enforced as f64, shadow as f64)),
                })
                .collect(),
            handoffs_per_day: per_day(total),
            sla_hours_per_day: per_day((self.sla_secs.0 / 3600.0, self.sla_secs.1 / 3600.0)),
            faults: self.faults,
            fault_rate: ratio(self.faults, self.decisions),
            fault_kinds: self.fault_kinds,
            latency_us: latency(&mut self.wall),
            pilots_latency_us: latency(&mut self.pilots_wall),
            shadow,
        }
    }
}

/// The queue a decision would put work in, and its resolve target; none
/// when it puts no work on a person.
fn queue_of(decision: &Decision, roles: &DefaultRoles) -> Option<((Tier, String), u32)> {
    let verdict = &decision.verdict;
    let (role, resolve) = match verdict.tier {
        Tier::None | Tier::SelfCorrect => return None,
        Tier::Operator => (&roles.operator, roles.operator_resolve_secs),
        Tier::Executive => (&roles.executive, roles.executive_resolve_secs),
    };
    let role = verdict.role.clone().unwrap_or_else(|| role.clone());
    Some((
        (verdict.tier, role),
        verdict.resolve_sla_secs.unwrap_or(resolve),
    ))
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn latency(values: &mut [f64]) -> Option<Latency> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() as f64 - 1.0) * q).round() as usize];
    Some(Latency {
        p50: at(0.5),
        p95: at(0.95),
        p99: at(0.99),
    })
}

/// A promotion gate: the largest change a pilot may show and still pass,
/// for CI (`handoff pilot --fail-on`). Unset limits are not checked.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Gate {
    /// Largest share of decisions whose tier may change.
    pub changed_share: Option<f64>,
    /// Largest fault rate.
    pub fault_rate: Option<f64>,
    /// Largest relative increase in handoffs per day (0.1 = +10%).
    pub handoffs_increase: Option<f64>,
    /// Largest p99 wall time of the shadow, microseconds.
    pub p99_us: Option<f64>,
    /// Fewest decisions the shadow must have run beside for the report to
    /// count as evidence at all.
    pub min_decisions: Option<u64>,
}

impl Gate {
    /// Parses `KEY=VALUE` limits (`changed-share=0.05`), naming the bad one.
    pub fn parse(limits: &[String]) -> Result<Gate, String> {
        let mut gate = Gate::default();
        for limit in limits {
            let (key, value) = limit.split_once('=').ok_or_else(|| {
                format!("`{limit}`: a limit is KEY=VALUE, like changed-share=0.05")
            })?;
            let number = || {
                value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| format!("`{limit}`: {value:?} is not a non-negative number"))
            };
            match key.trim() {
                "changed-share" => gate.changed_share = Some(number()?),
                "fault-rate" => gate.fault_rate = Some(number()?),
                "handoffs-increase" => gate.handoffs_increase = Some(number()?),
                "p99-us" => gate.p99_us = Some(number()?),
                "min-decisions" => gate.min_decisions = Some(number()? as u64),
                other => {
                    return Err(format!(
                        "`{other}` is not a limit; use changed-share, fault-rate, \
                         handoffs-increase, p99-us or min-decisions"
                    ));
                }
            }
        }
        Ok(gate)
    }

    /// Every limit `pilot` breaks, each saying which and by how much.
    pub fn breaches(&self, pilot: &ShadowPilot) -> Vec<String> {
        let mut breaches = Vec::new();
        let mut over = |name: &str, value: f64, limit: Option<f64>| {
            if let Some(limit) = limit
                && value > limit
            {
                breaches.push(format!("{}: {name} {value:.4} > {limit}", pilot.shadow));
            }
        };
        over("changed-share", pilot.changed_share, self.changed_share);
        over("fault-rate", pilot.fault_rate, self.fault_rate);
        over(
            "handoffs-increase",
            pilot.handoffs_per_day.relative.unwrap_or(0.0),
            self.handoffs_increase,
        );
        over(
            "p99-us",
            pilot.latency_us.map_or(0.0, |l| l.p99),
            self.p99_us,
        );
        if let Some(least) = self.min_decisions
            && pilot.decisions < least
        {
            breaches.push(format!(
                "{}: ran beside {} decisions, fewer than min-decisions {least}",
                pilot.shadow, pilot.decisions
            ));
        }
        breaches
    }
}
