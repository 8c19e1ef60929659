//! Charts of delivery health, drawn on the server as SVG (no script, no library):
//! attempts per interval by outcome, and their latency's median and 99th percentile.
//! A pure function of the series (`GET /v1/tenants/{tenant}/stats/series`), shared
//! by every page that shows one (console and portal). Each chart scales to its
//! container (a `viewBox`, width 100%), and its numbers are also a table that only
//! screen readers see.

use hookrelay_model::series::{Point, Series};
use maud::{Markup, html};
use time::OffsetDateTime;

/// The drawing's own units; it scales to the width it is given.
const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 150.0;
/// Room for the axis labels: left (numbers) and below (times).
const LEFT: f64 = 40.0;
const BOTTOM: f64 = 18.0;
const TOP: f64 = 6.0;

/// The three outcomes, their names and colours, bottom of the stack first.
const OUTCOMES: [(&str, &str); 3] = [
    ("delivered", "#1a7f37"),
    ("retried", "#9a6700"),
    ("failed", "#cf222e"),
];
const P50_COLOUR: &str = "#0969da";
const P99_COLOUR: &str = "#8250df";

fn count(p: &Point, outcome: &str) -> u64 {
    match outcome {
        "delivered" => p.delivered,
        "retried" => p.retried,
        _ => p.failed,
    }
}

/// Both charts of `series`, captioned with what they are about (`of`, e.g. `tenant
/// acme`), and the table of their numbers.
/// The section, headed "Delivery health", of the API's answer to
/// `GET /v1/tenants/{tenant}/stats/series` (the console's and the portal's pages);
/// a series the API refused is said in its place, and the rest of the page is still
/// shown.
pub fn section(answer: Result<serde_json::Value, crate::kit::api::Refused>, of: &str) -> Markup {
    let drawn = match answer {
        Ok(value) => match serde_json::from_value::<Series>(value) {
            Ok(series) => delivery_health(&series, of),
            Err(e) => html! { p.error { "The series could not be read: " (e) } },
        },
        Err(refused) => html! { p.error { "The series could not be read: " (refused.error) } },
    };
    html! {
        section aria-labelledby="health" {
            h2 #health { "Delivery health, last 24 hours" }
            (drawn)
        }
    }
}

pub fn delivery_health(series: &Series, of: &str) -> Markup {
    let (delivered, retried, failed) = series.totals();
    html! {
        div.charts {
            figure.chart {
                figcaption {
                    "Attempts per " (span_name(series.interval_seconds)) " of " (of) ": "
                    (delivered) " delivered, " (retried) " retried, " (failed) " failed"
                }
                (outcome_bars(series))
                ul.legend aria-hidden="true" {
                    @for (name, colour) in OUTCOMES {
                        li { svg.swatch viewBox="0 0 10 10" width="10" height="10" { rect width="10" height="10" fill=(colour) {} } " " (name) }
                    }
                }
            }
            figure.chart {
                figcaption { "Latency of " (of) " (ms): median and 99th percentile" }
                (latency_lines(series))
                ul.legend aria-hidden="true" {
                    li { svg.swatch viewBox="0 0 10 10" width="10" height="10" { rect width="10" height="10" fill=(P50_COLOUR) {} } " p50" }
                    li { svg.swatch viewBox="0 0 10 10" width="10" height="10" { rect width="10" height="10" fill=(P99_COLOUR) {} } " p99" }
                }
            }
            (numbers(series, of))
        }
    }
}

/// The numbers of both charts, for screen readers (and anyone who copies them).
fn numbers(series: &Series, of: &str) -> Markup {
    // Hidden by a wrapper: a table keeps its content's width whatever its own.
    html! {
        div.visually-hidden { table {
            caption { "Delivery attempts and latency of " (of) ", per " (span_name(series.interval_seconds)) " (UTC)" }
            thead { tr {
                th scope="col" { "Interval from" }
                @for (name, _) in OUTCOMES { th scope="col" { (name) } }
                th scope="col" { "p50 ms" } th scope="col" { "p99 ms" }
            } }
            tbody {
                @for p in &series.points {
                    tr {
                        th scope="row" { (time_label(p.start, true)) }
                        @for (name, _) in OUTCOMES { td { (count(p, name)) } }
                        td { (ms(p.p50_ms)) } td { (ms(p.p99_ms)) }
                    }
                }
            }
        } }
    }
}

fn outcome_bars(series: &Series) -> Markup {
    let top = series.points.iter().map(Point::attempts).max().unwrap_or(0);
    let scale = Scale::new(series.points.len(), top as f64);
    let width = fmt((scale.step - 2.0).max(1.0));
    // Each outcome's piece of each interval's stack, bottom first.
    let mut bars = Vec::new();
    for (i, p) in series.points.iter().enumerate() {
        let mut below = 0;
        for (name, colour) in OUTCOMES {
            let n = count(p, name);
            if n > 0 {
                below += n;
                let (y, h) = (scale.y(below as f64), scale.height(n as f64));
                bars.push((fmt(scale.x(i) + 1.0), fmt(y), fmt(h), colour, n, name));
            }
        }
    }
    html! {
        svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } width="100%" preserveAspectRatio="xMidYMid meet" role="presentation" aria-hidden="true" focusable="false" {
            (scale.axes(series, &top.to_string()))
            @for (x, y, h, colour, n, name) in &bars {
                rect x=(x) y=(y) width=(width) height=(h) fill=(colour) {
                    title { (n) " " (name) }
                }
            }
        }
    }
}

fn latency_lines(series: &Series) -> Markup {
    let top = series
        .points
        .iter()
        .filter_map(|p| p.p99_ms.or(p.p50_ms))
        .fold(0.0_f64, f64::max);
    let scale = Scale::new(series.points.len(), top);
    let line = |pick: fn(&Point) -> Option<f64>| -> String {
        series
            .points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                pick(p)
                    .map(|v| format!("{},{}", fmt(scale.x(i) + scale.step / 2.0), fmt(scale.y(v))))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let lines = [
        (line(|p| p.p50_ms), P50_COLOUR),
        (line(|p| p.p99_ms), P99_COLOUR),
    ];
    html! {
        svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } width="100%" preserveAspectRatio="xMidYMid meet" role="presentation" aria-hidden="true" focusable="false" {
            (scale.axes(series, &ms(Some(top))))
            @for (points, colour) in &lines {
                @if !points.is_empty() {
                    polyline points=(points) fill="none" stroke=(colour) stroke-width="2" {}
                    @for xy in points.split(' ') {
                        @let (x, y) = xy.split_once(',').unwrap_or(("0", "0"));
                        circle cx=(x) cy=(y) r="2.5" fill=(colour) {}
                    }
                }
            }
        }
    }
}

/// Where values land in the drawing: `points` columns, values from 0 to `top`.
struct Scale {
    step: f64,
    top: f64,
}

impl Scale {
    fn new(points: usize, top: f64) -> Self {
        Self {
            step: (WIDTH - LEFT) / points.max(1) as f64,
            top: if top > 0.0 { top } else { 1.0 },
        }
    }

    fn x(&self, i: usize) -> f64 {
        LEFT + self.step * i as f64
    }

    fn height(&self, v: f64) -> f64 {
        (HEIGHT - BOTTOM - TOP) * v / self.top
    }

    fn y(&self, v: f64) -> f64 {
        HEIGHT - BOTTOM - self.height(v)
    }

    /// The baseline, the top value's line, and the window's first and last times.
    fn axes(&self, series: &Series, top_label: &str) -> Markup {
        let base = HEIGHT - BOTTOM;
        let first = series.points.first().map(|p| p.start);
        // A day or more: the same clock time at both ends, told apart by the date.
        let dated = series.until - series.since >= time::Duration::DAY;
        html! {
            g.axes font-size="10" fill="#57606a" {
                line x1=(LEFT) y1=(fmt(base)) x2=(WIDTH) y2=(fmt(base)) stroke="#8c959f" {}
                line x1=(LEFT) y1=(TOP) x2=(WIDTH) y2=(TOP) stroke="#d0d7de" stroke-dasharray="3 3" {}
                text x=(LEFT - 4.0) y=(TOP + 4.0) text-anchor="end" { (top_label) }
                text x=(LEFT - 4.0) y=(fmt(base)) text-anchor="end" { "0" }
                @if let Some(first) = first {
                    text x=(LEFT) y=(HEIGHT - 4.0) { (time_label(first, dated)) }
                }
                text x=(WIDTH) y=(HEIGHT - 4.0) text-anchor="end" { (time_label(series.until, dated)) }
            }
        }
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "-".to_owned(),
    }
}

/// `HH:MM`, after the date when `with_date`.
fn time_label(t: OffsetDateTime, with_date: bool) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let clock = format!("{:02}:{:02}", t.hour(), t.minute());
    match with_date {
        true => format!("{} {clock}", t.date()),
        false => clock,
    }
}

fn span_name(seconds: i64) -> String {
    match seconds {
        3600 => "hour".to_owned(),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

#[cfg(test)]
mod tests {
    use hookrelay_model::series::Window;
    use time::macros::datetime;

    use super::*;

    fn series(counted: Vec<Point>) -> Series {
        let window = Window::ending(datetime!(2026-12-07 10:17 UTC), None).unwrap();
        Series::fill(window, counted)
    }

    fn point(start: OffsetDateTime, d: u64, r: u64, f: u64) -> Point {
        Point {
            start,
            delivered: d,
            retried: r,
            failed: f,
            p50_ms: Some(12.5),
            p99_ms: Some(240.0),
        }
    }

    #[test]
    fn the_table_holds_every_interval_and_its_numbers() {
        let s = series(vec![point(datetime!(2026-12-07 10:00 UTC), 7, 2, 1)]);
        let html = delivery_health(&s, "tenant acme").into_string();
        assert!(html.contains("7 delivered, 2 retried, 1 failed"), "{html}");
        assert!(html.contains(
            "<th scope=\"row\">2026-12-07 10:00</th><td>7</td><td>2</td><td>1</td><td>12.5</td><td>240</td>"
        ), "{html}");
        assert_eq!(
            html.matches("<tr>").count(),
            25,
            "a header and 24 intervals"
        );
        assert!(html.contains("<td>0</td><td>0</td><td>0</td><td>-</td><td>-</td>"));
    }

    #[test]
    fn each_drawing_marks_the_intervals_with_attempts() {
        let s = series(vec![
            point(datetime!(2026-12-07 09:00 UTC), 2, 0, 0),
            point(datetime!(2026-12-07 10:00 UTC), 4, 3, 1),
        ]);
        type Draw = fn(&Series) -> Markup;
        let cases: [(Draw, &str, usize); 4] = [
            (outcome_bars, "<rect", 4),
            (outcome_bars, "<title>1 failed</title>", 1),
            (latency_lines, "<polyline", 2),
            (latency_lines, "<circle", 4),
        ];
        for (draw, mark, n) in cases {
            let html = draw(&s).into_string();
            assert_eq!(html.matches(mark).count(), n, "{mark}: {html}");
        }
        // The tallest stack (8) fills the plot: its top is at TOP.
        let bars = outcome_bars(&s).into_string();
        assert!(bars.contains(&format!("y=\"{}\"", fmt(TOP))), "{bars}");
    }

    #[test]
    fn it_scales_to_its_container_and_draws_nothing_without_attempts() {
        let html = delivery_health(&series(vec![]), "webhook orders").into_string();
        assert!(html.contains("viewBox=\"0 0 480 150\""));
        assert!(html.contains("width=\"100%\""));
        assert!(!html.contains("<rect x="), "no bars");
        assert!(!html.contains("<polyline"), "no lines");
        assert!(html.contains("0 delivered, 0 retried, 0 failed"));
    }

    #[test]
    fn hostile_names_are_escaped() {
        let html = delivery_health(&series(vec![]), "webhook <script>x</script>").into_string();
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
    }
}
