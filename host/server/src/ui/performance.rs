//! The performance gates of `handoff report`, as pictures over time:
//! escalation rate by tier, SLA compliance, first-contact resolution, time
//! to value, human workload by role and cost avoided, with the report's
//! overall figures above them. The figures are the report's own
//! (`handoff_dispatch::report::series` cuts the same history into
//! intervals), so the page and `GET /v1/report` never disagree.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Extension, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::access::Viewer;
use super::charts::{Series, lines, stacked};
use super::layout::{Problem, instant, respond, shell};
use super::query_of;
use crate::app::App;
use crate::compliance::{ReportQuery, report_options};
use crate::error::ApiError;
use handoff_dispatch::report::series::{Series as Intervals, over_time};
use handoff_dispatch::{FeedbackReport, feedback_report};
use handoff_model::{Named, Tier};
use handoff_pipeline::calibration;

/// The most intervals a chart shows.
const INTERVALS: usize = 24;

/// `GET /ui/performance`, with the report's query parameters (costs,
/// calibration target).
pub async fn page(
    State(app): State<Arc<App>>,
    Extension(viewer): Extension<Viewer>,
    RawQuery(raw): RawQuery,
) -> Response {
    let computed = async {
        let query = query_of::<ReportQuery>(raw.as_deref())?;
        let options = report_options(&query)?;
        let (history, now) = app.dispatcher.history().await?;
        let targets = calibration::targets_of_set(&app.pipeline.evaluators().policies().current());
        let report = feedback_report(&history, now, &options, &targets);
        let intervals = over_time(&history, now, &options, INTERVALS);
        Ok::<_, ApiError>((report, intervals))
    }
    .await;
    let (report, intervals) = match computed {
        Ok(computed) => computed,
        Err(error) => return Problem::from(error).with_viewer(viewer).into_response(),
    };
    let body = html! {
        h1 { "Performance" }
        p.muted { "As of " (instant(report.as_of)) "; each point is the work that arrived in one interval of "
            (width_text(intervals.width_secs)) "." }
        (headline(&report))
        @if intervals.intervals.is_empty() {
            p.notice { "Nothing has been decided yet: the charts start with the first decision." }
        } @else {
            div.charts { (charts(&intervals)) }
        }
    };
    respond(
        StatusCode::OK,
        shell(Some(&viewer), "performance", "Performance", body),
    )
}

fn width_text(secs: i64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{} day(s)", s / 86_400),
        s if s % 3600 == 0 => format!("{} hour(s)", s / 3600),
        s => format!("{} minute(s)", s / 60),
    }
}

fn share(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), percent)
}

fn percent(v: f64) -> String {
    format!("{:.0}%", v * 100.0)
}

fn minutes(v: f64) -> String {
    if v.abs() < 1.0 {
        format!("{:.0} s", v * 60.0)
    } else {
        format!("{v:.1} min")
    }
}

fn count(v: f64) -> String {
    format!("{v:.0}")
}

fn money(v: f64) -> String {
    // No "-0" for a cost that rounds to nothing.
    let rounded = v.round();
    format!("{}", if rounded == 0.0 { 0.0 } else { rounded })
}

fn headline(report: &FeedbackReport) -> Markup {
    let o = &report.overall;
    html! {
        ul.chips #headline aria-label="Overall" {
            li { "Work " strong { (o.work) } }
            li { "Autonomous " strong { (share(o.autonomous_share)) } }
            li { "SLA compliance " strong { (share(o.sla.compliance)) } }
            li { "First-contact resolution " strong { (share(o.first_contact_resolution)) } }
            li { "Time to value (median) " strong { (o.time_to_value.map_or_else(|| "—".into(), |p| minutes(p.median / 60.0))) } }
            li { "Cost avoided " strong { (money(o.cost_avoided)) } }
        }
    }
}

fn charts(intervals: &Intervals) -> Markup {
    let list = &intervals.intervals;
    let daily = intervals.width_secs >= 86_400;
    let labels: Vec<String> = list
        .iter()
        .map(|i| {
            if daily {
                i.start.format("%m-%d").to_string()
            } else {
                i.start.format("%H:%M").to_string()
            }
        })
        .collect();
    let rate = |tier: Tier| Series {
        name: tier.as_str().to_string(),
        values: list
            .iter()
            .map(|i| {
                let total: u64 = i.decisions_by_tier.values().sum();
                (total > 0)
                    .then(|| *i.decisions_by_tier.get(&tier).unwrap_or(&0) as f64 / total as f64)
            })
            .collect(),
    };
    let one =
        |name: &str, f: &dyn Fn(&handoff_dispatch::report::series::Interval) -> Option<f64>| {
            Series {
                name: name.to_string(),
                values: list.iter().map(f).collect(),
            }
        };
    let roles: BTreeSet<&String> = list
        .iter()
        .flat_map(|i| i.handoffs_by_role.keys())
        .collect();
    let workload: Vec<Series> = roles
        .iter()
        .map(|role| Series {
            name: role.to_string(),
            values: list
                .iter()
                .map(|i| i.handoffs_by_role.get(*role).map(|n| *n as f64))
                .collect(),
        })
        .collect();
    html! {
        (lines("escalation", "Escalation rate by tier", &labels,
            &[rate(Tier::SelfCorrect), rate(Tier::Operator), rate(Tier::Executive)], percent, Some(1.0)))
        (lines("sla", "SLA compliance", &labels,
            &[one("met", &|i| i.figures.sla.compliance)], percent, Some(1.0)))
        (lines("fcr", "First-contact resolution", &labels,
            &[one("first contact", &|i| i.figures.first_contact_resolution)], percent, Some(1.0)))
        (lines("ttv", "Time to value", &labels,
            &[one("median", &|i| i.figures.time_to_value.map(|p| p.median / 60.0)),
              one("95th percentile", &|i| i.figures.time_to_value.map(|p| p.p95 / 60.0))], minutes, None))
        (stacked("workload", "Human workload by role (handoffs)", &labels, &workload, count))
        (stacked("cost", "Cost avoided", &labels,
            &[one("cost avoided", &|i| Some(i.figures.cost_avoided))], money))
    }
}
