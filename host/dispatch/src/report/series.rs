//! The report over time: the same figures as [`feedback_report`], for each
//! interval of the history, so that a dashboard can draw how escalation,
//! SLA compliance and cost move rather than one total.
//!
//! A piece of work belongs to the interval its decision was made in, and a
//! handoff to the interval it was enqueued in, with all of its events: a
//! handoff resolved the next day still counts where the work arrived.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{Figures, History, ReportOptions, feedback_report};
use handoff_model::Tier;

/// Interval widths to choose from, in seconds: a minute up to thirty days.
const WIDTHS: &[i64] = &[
    60,
    5 * 60,
    15 * 60,
    3600,
    6 * 3600,
    86_400,
    7 * 86_400,
    30 * 86_400,
];

/// One interval of the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interval {
    /// Its first instant.
    pub start: DateTime<Utc>,
    /// The instant after its last.
    pub end: DateTime<Utc>,
    /// Decisions made in it, by the tier dispatch gave them.
    pub decisions_by_tier: BTreeMap<Tier, u64>,
    /// Handoffs enqueued in it, by the role they went to.
    pub handoffs_by_role: BTreeMap<String, u64>,
    /// The report's figures on the work that arrived in it.
    pub figures: Figures,
}

/// The history cut into equal intervals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// The width of each interval, in seconds.
    pub width_secs: i64,
    /// Oldest first; the last one holds `now`.
    pub intervals: Vec<Interval>,
}

/// The history up to `now` in at most `max_intervals` intervals of the
/// narrowest width that fits (a minute, five, fifteen, an hour, six, a day,
/// a week, thirty days), aligned to multiples of that width. Empty when
/// nothing was decided.
pub fn over_time(
    history: &History,
    now: DateTime<Utc>,
    options: &ReportOptions,
    max_intervals: usize,
) -> Series {
    let Some(first) = history.decisions.iter().map(|d| d.at).min() else {
        return Series {
            width_secs: WIDTHS[0],
            intervals: Vec::new(),
        };
    };
    let max_intervals = max_intervals.max(1) as i64;
    let span = (now - first).num_seconds().max(0);
    let width = WIDTHS
        .iter()
        .copied()
        .find(|w| span / w < max_intervals)
        .unwrap_or(WIDTHS[WIDTHS.len() - 1]);
    let start = first.timestamp().div_euclid(width) * width;
    let count = ((now.timestamp() - start) / width + 1).clamp(1, max_intervals);
    // With the widest width, a very long history keeps its newest intervals.
    let start = now.timestamp().div_euclid(width) * width - (count - 1) * width;
    let intervals = (0..count)
        .filter_map(|i| {
            let from = DateTime::from_timestamp(start + i * width, 0)?;
            Some(interval(
                history,
                from,
                from + Duration::seconds(width),
                now,
                options,
            ))
        })
        .collect();
    Series {
        width_secs: width,
        intervals,
    }
}

fn interval(
    history: &History,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
    options: &ReportOptions,
) -> Interval {
    let within = |at: DateTime<Utc>| start <= at && at < end;
    let decisions: Vec<_> = history
        .decisions
        .iter()
        .filter(|d| within(d.at))
        .cloned()
        .collect();
    let handoffs: Vec<_> = history
        .handoffs
        .iter()
        .filter(|h| within(h.created_at))
        .cloned()
        .collect();
    let ids: BTreeSet<&str> = handoffs.iter().map(|h| h.id.as_str()).collect();
    let events = history
        .events
        .iter()
        .filter(|e| ids.contains(e.handoff.as_str()))
        .cloned()
        .collect();
    let mut decisions_by_tier = BTreeMap::new();
    for decision in &decisions {
        *decisions_by_tier.entry(decision.tier).or_insert(0) += 1;
    }
    let mut handoffs_by_role = BTreeMap::new();
    for handoff in &handoffs {
        *handoffs_by_role.entry(handoff.role.clone()).or_insert(0) += 1;
    }
    let part = History {
        decisions,
        handoffs,
        events,
    };
    Interval {
        start,
        end,
        decisions_by_tier,
        handoffs_by_role,
        figures: feedback_report(&part, now, options, &[]).overall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DecisionRow;

    fn decided(at: DateTime<Utc>, tier: Tier) -> DecisionRow {
        DecisionRow {
            item_id: format!("i-{}", at.timestamp()),
            tier,
            driver: None,
            reason_code: "x".into(),
            trigger: None,
            confidence: 0.9,
            at,
            audit: Vec::new(),
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn the_narrowest_width_that_fits_is_chosen_and_aligned() {
        let history = History {
            decisions: vec![
                decided(at(0), Tier::None),
                decided(at(30), Tier::Operator),
                decided(at(3000), Tier::None),
            ],
            ..History::default()
        };
        let series = over_time(&history, at(3100), &ReportOptions::default(), 24);
        // 3,100 s in at most 24 intervals: five minutes is the first width
        // that fits (eleven intervals).
        assert_eq!(series.width_secs, 300);
        assert_eq!(series.intervals.len(), 11);
        assert_eq!(series.intervals[0].start.timestamp() % 300, 0);
        let first = &series.intervals[0];
        assert_eq!(first.decisions_by_tier.get(&Tier::None), Some(&1));
        assert_eq!(first.decisions_by_tier.get(&Tier::Operator), Some(&1));
        assert_eq!(first.figures.decisions, 2);
        let last = series.intervals.last().unwrap();
        assert!(last.start <= at(3100) && at(3100) < last.end);
        assert_eq!(last.figures.decisions, 1);
        let total: u64 = series.intervals.iter().map(|i| i.figures.decisions).sum();
        assert_eq!(total, 3, "every decision is in exactly one interval");
    }

    #[test]
    fn a_long_history_keeps_its_newest_intervals() {
        let history = History {
            decisions: vec![
                decided(at(0), Tier::None),
                decided(at(400 * 86_400), Tier::None),
            ],
            ..History::default()
        };
        let series = over_time(&history, at(400 * 86_400), &ReportOptions::default(), 12);
        assert_eq!(series.width_secs, 30 * 86_400);
        assert_eq!(series.intervals.len(), 12);
        assert_eq!(series.intervals.last().unwrap().figures.decisions, 1);
    }

    #[test]
    fn no_decision_no_interval() {
        let series = over_time(&History::default(), at(0), &ReportOptions::default(), 24);
        assert!(series.intervals.is_empty());
    }
}
