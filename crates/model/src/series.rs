//! Delivery health over time: attempts per interval by outcome and their latency
//! percentiles, the numbers behind every chart (console, portal, API). The window and
//! its intervals are decided here; the store counts, and [`Series::fill`] gives every
//! interval a point, zero where nothing happened.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::Invalid;

/// Intervals in a window, whatever its length: hourly points over a day.
pub const POINTS: i64 = 24;
/// The default window, and the longest one.
pub const DEFAULT_HOURS: i64 = 24;
pub const MAX_HOURS: i64 = 24 * 7;

/// The attempts that started in one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = SeriesPoint))]
pub struct Point {
    /// The interval's start; it lasts `interval_seconds`.
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// Attempts that delivered (a 2xx answer).
    pub delivered: u64,
    /// Attempts that failed and were retried later.
    pub retried: u64,
    /// Attempts that failed for good (the delivery failed).
    pub failed: u64,
    /// Median time from request to answer, in milliseconds; null without attempts.
    pub p50_ms: Option<f64>,
    /// 99th percentile of the same; null without attempts.
    pub p99_ms: Option<f64>,
}

impl Point {
    fn empty(start: OffsetDateTime) -> Self {
        Self {
            start,
            delivered: 0,
            retried: 0,
            failed: 0,
            p50_ms: None,
            p99_ms: None,
        }
    }

    pub fn attempts(&self) -> u64 {
        self.delivered + self.retried + self.failed
    }
}

/// A tenant's (or one webhook's) attempts per interval over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = DeliverySeries))]
pub struct Series {
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    pub interval_seconds: i64,
    /// One per interval, oldest first, every interval of the window.
    pub points: Vec<Point>,
}

/// The window ending with the interval that holds `now`: [`POINTS`] intervals of
/// `hours / POINTS`, aligned to whole intervals since the epoch so that every replica
/// and every refresh cuts the same intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub since: OffsetDateTime,
    pub until: OffsetDateTime,
    pub interval: Duration,
}

impl Window {
    /// `hours`: 1 to [`MAX_HOURS`], [`DEFAULT_HOURS`] when absent.
    pub fn ending(now: OffsetDateTime, hours: Option<i64>) -> Result<Self, Invalid> {
        let hours = hours.unwrap_or(DEFAULT_HOURS);
        if !(1..=MAX_HOURS).contains(&hours) {
            return Err(Invalid::new("hours", format!("must be 1 to {MAX_HOURS}")));
        }
        let step = hours * 3600 / POINTS;
        let now_s = now.unix_timestamp();
        let end = now_s - now_s.rem_euclid(step) + step;
        let at = |s: i64| OffsetDateTime::from_unix_timestamp(s).unwrap_or(now);
        Ok(Self {
            since: at(end - step * POINTS),
            until: at(end),
            interval: Duration::seconds(step),
        })
    }
}

impl Series {
    /// Every interval of `window`, with the counted `points` where there are some (a
    /// point outside the window is dropped).
    pub fn fill(window: Window, counted: Vec<Point>) -> Self {
        let step = window.interval.whole_seconds().max(1);
        let mut points: Vec<Point> = (0..POINTS)
            .map(|i| Point::empty(window.since + Duration::seconds(i * step)))
            .collect();
        for p in counted {
            let i = (p.start - window.since).whole_seconds().div_euclid(step);
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| points.get_mut(i)) {
                *slot = Point {
                    start: slot.start,
                    ..p
                };
            }
        }
        Self {
            since: window.since,
            until: window.until,
            interval_seconds: step,
            points,
        }
    }

    /// The window's totals: attempts by outcome.
    pub fn totals(&self) -> (u64, u64, u64) {
        self.points.iter().fold((0, 0, 0), |(d, r, f), p| {
            (d + p.delivered, r + p.retried, f + p.failed)
        })
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn windows_are_whole_aligned_intervals_ending_after_now() {
        let now = datetime!(2026-12-07 10:17:30 UTC);
        let cases = [
            (
                None,
                datetime!(2026-12-06 11:00 UTC),
                datetime!(2026-12-07 11:00 UTC),
                3600,
            ),
            (
                Some(1),
                datetime!(2026-12-07 09:20 UTC),
                datetime!(2026-12-07 10:20 UTC),
                150,
            ),
            (
                Some(168),
                datetime!(2026-11-30 16:00 UTC),
                datetime!(2026-12-07 16:00 UTC),
                25200,
            ),
        ];
        for (hours, since, until, step) in cases {
            let w = Window::ending(now, hours).unwrap();
            assert_eq!((w.since, w.until), (since, until), "{hours:?}");
            assert_eq!(w.interval.whole_seconds(), step);
        }
        for bad in [0, -1, 169] {
            assert_eq!(Window::ending(now, Some(bad)).unwrap_err().field, "hours");
        }
    }

    #[test]
    fn every_interval_gets_a_point_and_counted_ones_keep_their_numbers() {
        let w = Window::ending(datetime!(2026-12-07 10:17 UTC), None).unwrap();
        let counted = Point {
            start: datetime!(2026-12-07 10:00 UTC),
            delivered: 5,
            retried: 2,
            failed: 1,
            p50_ms: Some(12.0),
            p99_ms: Some(80.0),
        };
        let outside = Point {
            start: datetime!(2026-12-01 00:00 UTC),
            ..counted.clone()
        };
        let s = Series::fill(w, vec![counted.clone(), outside]);
        assert_eq!(s.points.len(), 24);
        assert_eq!(s.points[0].start, w.since);
        assert_eq!(s.points[23], counted, "the last interval holds now");
        assert_eq!(s.points[22].attempts(), 0);
        assert_eq!(s.points[22].p50_ms, None);
        assert_eq!(s.totals(), (5, 2, 1));
    }
}
