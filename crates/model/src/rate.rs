//! A webhook's delivery policy: a rate limit with a burst, and a cap on requests in
//! flight, both enforced across every sender process together.
//!
//! The rate is a GCRA (generic cell rate algorithm) bucket: its whole state is one
//! time, the theoretical arrival time (TAT), kept in the database so that every
//! sender shares it. This module is the arithmetic; `hookrelay_store::rates` keeps
//! the state and the sender applies it. (`governor` implements the same algorithm,
//! but over state in the process's memory, which is what this must not be.)

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

use crate::error::Invalid;

/// The most requests a rate may allow per period, and the largest burst.
pub const MAX_COUNT: u32 = 100_000;
/// The largest cap on requests in flight.
pub const MAX_IN_FLIGHT: u16 = 1_000;

/// Exactly the texts [`Rate`] parses, as the OpenAPI document states them
/// (`#[schema(pattern)]` takes a literal only: a test checks every copy is this one).
pub const RATE_PATTERN: &str = r"^(?:[1-9][0-9]{0,4}|100000)/[smh]$";

/// `COUNT/s`, `COUNT/m` or `COUNT/h`: at most COUNT requests per period, spread
/// evenly (one every period / COUNT), plus the burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    count: u32,
    period: Period,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Second,
    Minute,
    Hour,
}

impl Period {
    fn length(self) -> Duration {
        match self {
            Self::Second => Duration::from_secs(1),
            Self::Minute => Duration::from_secs(60),
            Self::Hour => Duration::from_secs(3600),
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Self::Second => "s",
            Self::Minute => "m",
            Self::Hour => "h",
        }
    }
}

impl Rate {
    /// `count/s`.
    pub const fn per_second(count: u32) -> Self {
        Self {
            count,
            period: Period::Second,
        }
    }

    /// The time between two requests at the steady rate.
    pub fn interval(&self) -> Duration {
        self.period.length() / self.count.max(1)
    }

    /// The requests allowed per period: the default burst.
    pub fn count(&self) -> u32 {
        self.count
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.period.suffix())
    }
}

impl FromStr for Rate {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Invalid> {
        let wrong = |why: &str| Invalid::new("rate_limit", format!("`{s}` {why}"));
        let (count, period) = s
            .split_once('/')
            .ok_or_else(|| wrong("is not COUNT/s, COUNT/m or COUNT/h (e.g. 50/s)"))?;
        let period = match period {
            "s" => Period::Second,
            "m" => Period::Minute,
            "h" => Period::Hour,
            _ => return Err(wrong("has a period that is not s, m or h")),
        };
        let count: u32 = count
            .parse()
            .ok()
            .filter(|c| (1..=MAX_COUNT).contains(c) && !count.starts_with('0'))
            .ok_or_else(|| wrong(&format!("needs a COUNT from 1 to {MAX_COUNT}")))?;
        Ok(Self { count, period })
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A rate with its burst: how many requests may go at once after a quiet spell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub rate: Rate,
    pub burst: u32,
}

/// What [`Bucket::take`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// How many of those asked for may go now.
    pub granted: u32,
    /// The bucket's state to store.
    pub tat: OffsetDateTime,
}

impl Bucket {
    /// No burst means the rate's own count (one period's worth).
    pub fn new(rate: Rate, burst: Option<u32>) -> Result<Self, Invalid> {
        let burst = burst.unwrap_or(rate.count);
        if !(1..=MAX_COUNT).contains(&burst) {
            return Err(Invalid::new(
                "rate_burst",
                format!("must be from 1 to {MAX_COUNT}, not {burst}"),
            ));
        }
        Ok(Self { rate, burst })
    }

    /// How far ahead of now the TAT may run: the burst's worth of intervals.
    fn tolerance(&self) -> Duration {
        self.rate.interval() * (self.burst - 1)
    }

    /// Takes up to `wanted` requests at `now` from a bucket whose state is `tat`
    /// (none: never used, full).
    pub fn take(&self, tat: Option<OffsetDateTime>, now: OffsetDateTime, wanted: u32) -> Taken {
        let start = tat.map_or(now, |t| t.max(now));
        let interval = self.rate.interval();
        let horizon = now + self.tolerance();
        let granted = if start > horizon {
            0
        } else {
            let room = (horizon - start).unsigned_abs();
            let whole = room.as_nanos() / interval.as_nanos().max(1);
            u32::try_from(whole).unwrap_or(u32::MAX).saturating_add(1)
        }
        .min(wanted)
        .min(self.burst);
        Taken {
            granted,
            tat: if granted == 0 {
                tat.unwrap_or(now)
            } else {
                start + interval * granted
            },
        }
    }
}

/// A webhook's delivery policy. Unset parts fall back to the senders' defaults
/// (`--per-webhook-concurrency` per process, no rate limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryPolicy {
    pub bucket: Option<Bucket>,
    /// Requests in flight to the webhook at once, across all senders.
    pub max_in_flight: Option<u16>,
}

/// A cap on requests in flight: 1 to [`MAX_IN_FLIGHT`].
pub fn validate_max_in_flight(n: u16) -> Result<(), Invalid> {
    if (1..=MAX_IN_FLIGHT).contains(&n) {
        Ok(())
    } else {
        Err(Invalid::new(
            "max_in_flight",
            format!("must be from 1 to {MAX_IN_FLIGHT}, not {n}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(rate: &str, burst: u32) -> Bucket {
        Bucket::new(rate.parse().unwrap(), Some(burst)).unwrap()
    }

    #[test]
    fn rates_parse_and_print_the_same() {
        for s in ["50/s", "1/s", "600/m", "3600/h", "100000/s"] {
            assert_eq!(s.parse::<Rate>().unwrap().to_string(), s);
        }
        assert_eq!(
            "50/s".parse::<Rate>().unwrap().interval(),
            Duration::from_millis(20)
        );
        assert_eq!(
            "2/m".parse::<Rate>().unwrap().interval(),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn a_wrong_rate_says_which_part_is_wrong() {
        for (s, why) in [
            ("50", "is not COUNT/s"),
            ("50/d", "period"),
            ("0/s", "COUNT from 1"),
            ("x/s", "COUNT from 1"),
            ("100001/s", "COUNT from 1"),
            ("050/s", "COUNT from 1"),
        ] {
            let e = s.parse::<Rate>().unwrap_err();
            assert_eq!(e.field, "rate_limit");
            assert!(e.to_string().contains(why), "{s}: {e}");
        }
    }

    #[test]
    fn a_full_bucket_grants_the_burst_then_one_per_interval() {
        let b = bucket("10/s", 3);
        let now = OffsetDateTime::UNIX_EPOCH;
        let t = b.take(None, now, 100);
        assert_eq!(t.granted, 3);
        let again = b.take(Some(t.tat), now, 100);
        assert_eq!(again.granted, 0, "the burst is spent");
        let later = b.take(Some(t.tat), now + Duration::from_millis(100), 100);
        assert_eq!(later.granted, 1, "one interval later, one more");
        let quiet = b.take(Some(later.tat), now + Duration::from_secs(60), 100);
        assert_eq!(
            quiet.granted, 3,
            "a quiet spell refills only up to the burst"
        );
    }

    #[test]
    fn one_at_a_time_the_rate_holds_over_a_long_run() {
        let b = bucket("50/s", 5);
        let start = OffsetDateTime::UNIX_EPOCH;
        let mut tat = None;
        let mut sent = 0;
        // Asked every millisecond for ten seconds.
        for ms in 0..10_000 {
            let t = b.take(tat, start + Duration::from_millis(ms), 1);
            sent += t.granted;
            tat = Some(t.tat);
        }
        assert_eq!(sent, 5 + 50 * 10 - 1, "the burst, then 50 a second");
    }

    #[test]
    fn nothing_granted_leaves_the_state_as_it_was() {
        let b = bucket("1/s", 1);
        let now = OffsetDateTime::UNIX_EPOCH;
        let t = b.take(None, now, 1);
        let none = b.take(Some(t.tat), now, 1);
        assert_eq!((none.granted, none.tat), (0, t.tat));
    }

    #[test]
    fn the_burst_and_the_cap_are_bounded() {
        let rate: Rate = "5/s".parse().unwrap();
        assert_eq!(Bucket::new(rate, None).unwrap().burst, 5);
        assert_eq!(Bucket::new(rate, Some(0)).unwrap_err().field, "rate_burst");
        assert!(validate_max_in_flight(0).is_err());
        assert!(validate_max_in_flight(1).is_ok());
        assert!(validate_max_in_flight(1001).is_err());
    }
}
