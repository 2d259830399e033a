//! Charts drawn by the server as inline SVG: lines for rates and times,
//! stacked bars for counts. No script and no library in the browser; each
//! chart carries its numbers as a table for screen readers and as a
//! tooltip on every point. Colours come from the style sheet's series
//! classes (`s0`…`s6`), so the content security policy needs no inline
//! style.

use maud::{Markup, html};

/// One named series, a value (or a gap) per interval.
pub struct Series {
    /// The legend's name.
    pub name: String,
    /// One per label; `None` where there is nothing to measure.
    pub values: Vec<Option<f64>>,
}

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 30.0;
const SERIES_CLASSES: usize = 7;

/// How a chart writes its values.
pub type Format = fn(f64) -> String;

/// A line per series over the intervals. `ceiling` fixes the top of the
/// scale (1.0 for a share); otherwise it is the largest value.
pub fn lines(
    id: &str,
    title: &str,
    labels: &[String],
    series: &[Series],
    format: Format,
    ceiling: Option<f64>,
) -> Markup {
    let top = ceiling.unwrap_or_else(|| {
        largest(
            series
                .iter()
                .flat_map(|s| s.values.iter().flatten().copied()),
        )
    });
    let x = |i: usize| x_of(i, labels.len());
    let y = |v: f64| y_of(v, top);
    html! {
        figure.chart #(id) {
            h2 { (title) }
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(summary(title, labels, series, format)) {
                (axes(labels, top, format))
                @for (n, s) in series.iter().enumerate() {
                    @for path in segments(&s.values, &x, &y) {
                        polyline class={ "line s" (n % SERIES_CLASSES) } points=(path) {}
                    }
                    @for (i, v) in s.values.iter().enumerate() {
                        @if let Some(v) = v {
                            circle class={ "s" (n % SERIES_CLASSES) } cx=(fmt(x(i))) cy=(fmt(y(*v))) r="3" {
                                title { (s.name) ", " (labels.get(i).map_or("", String::as_str)) ": " (format(*v)) }
                            }
                        }
                    }
                }
            }
            (legend(series))
            (data_table(title, labels, series, format))
        }
    }
}

/// Bars per interval, one segment per series, stacked.
pub fn stacked(
    id: &str,
    title: &str,
    labels: &[String],
    series: &[Series],
    format: Format,
) -> Markup {
    let totals: Vec<f64> = (0..labels.len())
        .map(|i| {
            series
                .iter()
                .filter_map(|s| s.values.get(i).copied().flatten())
                .sum()
        })
        .collect();
    let top = largest(totals.iter().copied());
    let slot = (WIDTH - LEFT - RIGHT) / labels.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    let mut rects = Vec::new();
    for interval in 0..labels.len() {
        let mut base = 0.0;
        for (n, s) in series.iter().enumerate() {
            if let Some(value) = s
                .values
                .get(interval)
                .copied()
                .flatten()
                .filter(|v| *v > 0.0)
            {
                rects.push(Rect {
                    series: n,
                    interval,
                    value,
                    y0: y_of(base, top),
                    y1: y_of(base + value, top),
                });
                base += value;
            }
        }
    }
    html! {
        figure.chart #(id) {
            h2 { (title) }
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(summary(title, labels, series, format)) {
                (axes(labels, top, format))
                @for r in &rects {
                    rect class={ "s" (r.series % SERIES_CLASSES) }
                        x=(fmt(LEFT + slot * r.interval as f64 + (slot - bar) / 2.0)) y=(fmt(r.y1))
                        width=(fmt(bar)) height=(fmt((r.y0 - r.y1).max(0.5))) {
                        title { (series[r.series].name) ", " (labels[r.interval]) ": " (format(r.value)) }
                    }
                }
            }
            (legend(series))
            (data_table(title, labels, series, format))
        }
    }
}

struct Rect {
    series: usize,
    interval: usize,
    value: f64,
    y0: f64,
    y1: f64,
}

fn largest(values: impl Iterator<Item = f64>) -> f64 {
    let top = values.filter(|v| v.is_finite()).fold(0.0_f64, f64::max);
    if top > 0.0 { top } else { 1.0 }
}

fn x_of(i: usize, count: usize) -> f64 {
    let slot = (WIDTH - LEFT - RIGHT) / count.max(1) as f64;
    LEFT + slot * (i as f64 + 0.5)
}

fn y_of(value: f64, top: f64) -> f64 {
    let share = (value / top).clamp(0.0, 1.0);
    HEIGHT - BOTTOM - share * (HEIGHT - BOTTOM - TOP)
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

/// Runs of consecutive values, as `points` lists: a gap breaks the line.
fn segments(
    values: &[Option<f64>],
    x: &dyn Fn(usize) -> f64,
    y: &dyn Fn(f64) -> f64,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => current.push(format!("{},{}", fmt(x(i)), fmt(y(*v)))),
            None if !current.is_empty() => out.push(std::mem::take(&mut current).join(" ")),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current.join(" "));
    }
    out
}

fn axes(labels: &[String], top: f64, format: Format) -> Markup {
    let every = labels.len().div_ceil(6).max(1);
    html! {
        @for step in 0..=2 {
            @let v = top * step as f64 / 2.0;
            line.grid x1=(LEFT) x2=(WIDTH - RIGHT) y1=(fmt(y_of(v, top))) y2=(fmt(y_of(v, top))) {}
            text x=(LEFT - 6.0) y=(fmt(y_of(v, top) + 4.0)) text-anchor="end" { (format(v)) }
        }
        line.axis x1=(LEFT) x2=(WIDTH - RIGHT) y1=(HEIGHT - BOTTOM) y2=(HEIGHT - BOTTOM) {}
        @for (i, label) in labels.iter().enumerate() {
            @if i % every == 0 {
                text x=(fmt(x_of(i, labels.len()))) y=(HEIGHT - BOTTOM + 16.0) text-anchor="middle" { (label) }
            }
        }
    }
}

fn legend(series: &[Series]) -> Markup {
    html! {
        ul.legend {
            @for (n, s) in series.iter().enumerate() {
                li class={ "s" (n % SERIES_CLASSES) } { (s.name) }
            }
        }
    }
}

fn summary(title: &str, labels: &[String], series: &[Series], format: Format) -> String {
    let latest: Vec<String> = series
        .iter()
        .filter_map(|s| {
            s.values
                .iter()
                .rev()
                .flatten()
                .next()
                .map(|v| format!("{} {}", s.name, format(*v)))
        })
        .collect();
    match labels.last() {
        Some(last) if !latest.is_empty() => {
            format!("{title}; latest ({last}): {}", latest.join(", "))
        }
        _ => format!("{title}: nothing measured yet"),
    }
}

fn data_table(title: &str, labels: &[String], series: &[Series], format: Format) -> Markup {
    html! {
        table.visually-hidden {
            caption { (title) }
            thead { tr { th { "Interval" } @for s in series { th { (s.name) } } } }
            tbody {
                @for (i, label) in labels.iter().enumerate() {
                    tr {
                        td { (label) }
                        @for s in series {
                            td { (s.values.get(i).copied().flatten().map(format).unwrap_or_else(|| "—".into())) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn percent(v: f64) -> String {
        format!("{:.0}%", v * 100.0)
    }

    #[test]
    fn a_gap_breaks_the_line_and_points_carry_their_values() {
        let labels: Vec<String> = ["09:00", "09:05", "09:10"].map(String::from).to_vec();
        let series = [Series {
            name: "operator".into(),
            values: vec![Some(0.5), None, Some(0.25)],
        }];
        let svg = lines("c", "Escalation", &labels, &series, percent, Some(1.0)).into_string();
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains("operator, 09:10: 25%"), "{svg}");
        assert!(svg.contains("latest (09:10): operator 25%"), "{svg}");
    }

    #[test]
    fn bars_stack_to_their_total() {
        let labels = vec!["a".to_string()];
        let series = [
            Series {
                name: "x".into(),
                values: vec![Some(3.0)],
            },
            Series {
                name: "y".into(),
                values: vec![Some(1.0)],
            },
        ];
        let svg = stacked("b", "Load", &labels, &series, |v| format!("{v}")).into_string();
        assert_eq!(svg.matches("<rect").count(), 2);
        // The scale's top is the total, 4, and its label is on the axis.
        assert!(svg.contains(">4</text>"), "{svg}");
        assert!(svg.contains("x, a: 3"), "{svg}");
    }

    #[test]
    fn names_are_escaped() {
        let labels = vec!["a".to_string()];
        let series = [Series {
            name: "<b>".into(),
            values: vec![Some(1.0)],
        }];
        let svg = stacked("b", "Load", &labels, &series, |v| format!("{v}")).into_string();
        assert!(!svg.contains("<b>"));
    }
}
