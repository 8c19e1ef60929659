//! Retry policy: which failures are retried (per webhook) and when (per deployment).
//!
//! The default is the OneSchema rule: retry when the request timed out or the answer
//! was 408 or 429, at most twice. A webhook may widen it (`5xx`, `connect`, any code).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::deadletter::DeadLetterReason;

/// One condition under which a failed attempt is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RetryOn {
    /// The request did not complete within the HTTP timeout.
    Timeout,
    /// No connection could be made, or it broke before an answer.
    Connect,
    /// Any 5xx answer.
    ServerError,
    /// One exact status code.
    Status(u16),
}

impl fmt::Display for RetryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("timeout"),
            Self::Connect => f.write_str("connect"),
            Self::ServerError => f.write_str("5xx"),
            Self::Status(code) => write!(f, "{code}"),
        }
    }
}

/// A condition is a string (it goes through `FromStr`/`Display`), so its schema is
/// written out: the three words or a code from 400 to 599.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for RetryOn {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
        let words = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["timeout", "connect", "5xx"]));
        let code = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[45][0-9][0-9]$"));
        AnyOfBuilder::new()
            .item(words)
            .item(code)
            .description(Some(
                "A condition under which a failed attempt is retried: `timeout` (no answer \
                 within the HTTP timeout), `connect` (no connection, or it broke before an \
                 answer), `5xx` (any 5xx answer) or one exact status code from 400 to 599. \
                 Responses list them in canonical form, sorted (timeout, connect, 5xx, then \
                 codes ascending) without duplicates. On input the words are matched \
                 case-insensitively and surrounding whitespace is ignored.",
            ))
            .examples(["timeout", "5xx", "429"])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for RetryOn {
    fn name() -> std::borrow::Cow<'static, str> {
        "RetryCondition".into()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a retry condition; use timeout, connect, 5xx or a status code such as 503")]
pub struct RetryOnError(pub String);

impl FromStr for RetryOn {
    type Err = RetryOnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "timeout" => Ok(Self::Timeout),
            "connect" => Ok(Self::Connect),
            "5xx" => Ok(Self::ServerError),
            other => other
                .parse::<u16>()
                .ok()
                .filter(|c| (400..=599).contains(c))
                .map(Self::Status)
                .ok_or_else(|| RetryOnError(s.to_owned())),
        }
    }
}

/// The conditions a webhook retries on. The default is `["timeout", "408", "429"]`;
/// an empty list never retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(default = json!(["timeout", "408", "429"])))]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct RetryPolicy(Vec<RetryOn>);

impl Default for RetryPolicy {
    fn default() -> Self {
        Self(vec![
            RetryOn::Timeout,
            RetryOn::Status(408),
            RetryOn::Status(429),
        ])
    }
}

impl RetryPolicy {
    pub fn new(mut conditions: Vec<RetryOn>) -> Self {
        conditions.sort();
        conditions.dedup();
        Self(conditions)
    }

    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, RetryOnError> {
        items
            .iter()
            .map(|s| s.as_ref().parse())
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }

    pub fn conditions(&self) -> &[RetryOn] {
        &self.0
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// Whether a failed attempt with this outcome may be tried again.
    pub fn retries(&self, failure: &Failure) -> bool {
        self.0.iter().any(|c| match (c, failure) {
            (RetryOn::Timeout, Failure::Timeout) => true,
            (RetryOn::Connect, Failure::Connect) => true,
            (RetryOn::ServerError, Failure::Status(code)) => (500..=599).contains(code),
            (RetryOn::Status(want), Failure::Status(code)) => want == code,
            _ => false,
        })
    }
}

impl TryFrom<Vec<String>> for RetryPolicy {
    type Error = RetryOnError;

    fn try_from(v: Vec<String>) -> Result<Self, Self::Error> {
        Self::parse(&v)
    }
}

impl From<RetryPolicy> for Vec<String> {
    fn from(p: RetryPolicy) -> Self {
        p.to_strings()
    }
}

/// How an attempt failed, as far as the retry decision cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    Connect,
    /// A non-2xx answer (3xx included: redirects are not followed).
    Status(u16),
    /// Cannot succeed by trying again (bad URL, unresolved variable, blocked address).
    Permanent,
}

impl Failure {
    /// The failure as an operator reads it: `HTTP 500`, `a timeout`, ...
    fn described(&self) -> String {
        match self {
            Self::Timeout => "a timeout".into(),
            Self::Connect => "a failed connection".into(),
            Self::Status(code) => format!("HTTP {code}"),
            Self::Permanent => "a permanent failure".into(),
        }
    }
}

/// What follows a failed attempt: another after a wait, or none, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again after at least this long (the schedule's delay, lengthened by a
    /// `Retry-After` up to its cap).
    Retry { after: Duration },
    /// That was the last attempt: `reason` goes in the dead letter, `why` (the rule
    /// that applied, for `deliveries show`) on the failed delivery.
    GiveUp {
        reason: DeadLetterReason,
        why: String,
    },
}

/// The one rule after a failed attempt: retried when the webhook's policy retries
/// this failure and the schedule has an attempt left in the round
/// (`attempt_in_round` is 1-based).
pub fn after_failure(
    failure: &Failure,
    policy: &RetryPolicy,
    attempt_in_round: u32,
    retry_after: Option<Duration>,
    schedule: &RetrySchedule,
) -> AfterFailure {
    let reason = if *failure == Failure::Permanent {
        DeadLetterReason::PermanentFailure
    } else if !policy.retries(failure) {
        DeadLetterReason::NotRetryable
    } else if let Some(after) = schedule.delay_after(attempt_in_round, retry_after) {
        return AfterFailure::Retry { after };
    } else {
        DeadLetterReason::RetriesExhausted
    };
    let why = match reason {
        DeadLetterReason::PermanentFailure => "permanent failure: trying again cannot \
            succeed (the URL, its variables or its address refuse it)"
            .to_owned(),
        DeadLetterReason::NotRetryable => format!(
            "not retryable: {} is not in the webhook's retry_on [{}]",
            failure.described(),
            policy.to_strings().join(", ")
        ),
        _ => format!(
            "retries exhausted: attempt {attempt_in_round} of the {} the retry schedule \
             allows (HOOKRELAY_RETRY_DELAYS)",
            schedule.max_attempts()
        ),
    };
    AfterFailure::GiveUp { reason, why }
}

/// When attempts happen: the delays between them, and the cap on `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    /// Delay before attempt 2, 3, ...; its length is the number of retries.
    pub delays: Vec<Duration>,
    /// Longest `Retry-After` honoured.
    pub retry_after_max: Duration,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            delays: vec![Duration::from_secs(5), Duration::from_secs(30)],
            retry_after_max: Duration::from_secs(300),
        }
    }
}

impl RetrySchedule {
    /// Attempts in all, the first included.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.delays.len()).unwrap_or(u32::MAX - 1) + 1
    }

    /// How long to wait before the attempt after `attempt` (1-based), or `None` when
    /// it was the last. A `Retry-After` lengthens the wait, up to the cap.
    pub fn delay_after(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
        let planned = *self.delays.get(index)?;
        let asked = retry_after.map(|d| d.min(self.retry_after_max));
        Some(asked.map_or(planned, |a| a.max(planned)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_the_seed_rule() {
        let p = RetryPolicy::default();
        assert!(p.retries(&Failure::Timeout));
        assert!(p.retries(&Failure::Status(408)));
        assert!(p.retries(&Failure::Status(429)));
        assert!(!p.retries(&Failure::Status(500)));
        assert!(!p.retries(&Failure::Status(503)));
        assert!(!p.retries(&Failure::Connect));
        assert!(!p.retries(&Failure::Permanent));
        assert_eq!(p.to_strings(), vec!["timeout", "408", "429"]);
    }

    #[test]
    fn widened_policy() {
        let p = RetryPolicy::parse(&["timeout", "5xx", "connect"]).unwrap();
        assert!(p.retries(&Failure::Status(502)));
        assert!(p.retries(&Failure::Connect));
        assert!(!p.retries(&Failure::Status(429)));
        assert!(!p.retries(&Failure::Permanent));
    }

    /// Every failure class against the default policy, a widened one and the
    /// attempt budget: what follows, and the reason given.
    #[test]
    fn what_follows_a_failure_is_one_rule() {
        use AfterFailure::{GiveUp, Retry};
        let seed = RetryPolicy::default();
        let wide = RetryPolicy::parse(&["timeout", "connect", "5xx"]).unwrap();
        let s = RetrySchedule::default();
        let secs = Duration::from_secs;
        type Row<'a> = (
            Failure,
            &'a RetryPolicy,
            u32,
            Option<Duration>,
            Result<Duration, &'a str>,
        );
        let table: [Row; 12] = [
            (Failure::Timeout, &seed, 1, None, Ok(secs(5))),
            (Failure::Timeout, &seed, 2, None, Ok(secs(30))),
            (Failure::Timeout, &seed, 3, None, Err("retries exhausted")),
            (Failure::Status(429), &seed, 1, Some(secs(60)), Ok(secs(60))),
            (
                Failure::Status(429),
                &seed,
                1,
                Some(secs(3600)),
                Ok(secs(300)),
            ),
            (Failure::Status(408), &seed, 2, Some(secs(1)), Ok(secs(30))),
            (Failure::Status(500), &seed, 1, None, Err("not retryable")),
            (Failure::Connect, &seed, 1, None, Err("not retryable")),
            (Failure::Status(503), &wide, 1, Some(secs(10)), Ok(secs(10))),
            (Failure::Connect, &wide, 3, None, Err("retries exhausted")),
            (Failure::Permanent, &seed, 1, None, Err("permanent failure")),
            (Failure::Permanent, &wide, 1, None, Err("permanent failure")),
        ];
        for (failure, policy, attempt, retry_after, want) in table {
            let got = after_failure(&failure, policy, attempt, retry_after, &s);
            match (&got, want) {
                (Retry { after }, Ok(want)) => assert_eq!(*after, want, "{failure:?}"),
                (GiveUp { reason, why }, Err(want)) => {
                    assert_eq!(reason.as_str(), want, "{failure:?} at {attempt}");
                    assert!(why.starts_with(want), "{why}");
                }
                _ => panic!("{failure:?} at attempt {attempt}: {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn the_reason_a_failure_was_final_names_the_rule() {
        let p = RetryPolicy::default();
        let why = |f: Failure, attempt| match after_failure(
            &f,
            &p,
            attempt,
            None,
            &RetrySchedule::default(),
        ) {
            AfterFailure::GiveUp { why, .. } => why,
            retry => panic!("{retry:?}"),
        };
        assert_eq!(
            why(Failure::Status(500), 1),
            "not retryable: HTTP 500 is not in the webhook's retry_on [timeout, 408, 429]"
        );
        assert!(why(Failure::Connect, 1).contains("a failed connection is not in"));
        assert!(why(Failure::Timeout, 3).starts_with("retries exhausted: attempt 3 of the 3"));
    }

    #[test]
    fn bad_conditions_are_named() {
        let err = RetryPolicy::parse(&["timeout", "sometimes"]).unwrap_err();
        assert_eq!(err.0, "sometimes");
        assert!(RetryPolicy::parse(&["200"]).is_err());
    }

    #[test]
    fn schedule_gives_two_retries_and_honours_retry_after_within_cap() {
        let s = RetrySchedule::default();
        assert_eq!(s.max_attempts(), 3);
        assert_eq!(s.delay_after(1, None), Some(Duration::from_secs(5)));
        assert_eq!(s.delay_after(2, None), Some(Duration::from_secs(30)));
        assert_eq!(s.delay_after(3, None), None);
        assert_eq!(
            s.delay_after(1, Some(Duration::from_secs(60))),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            s.delay_after(1, Some(Duration::from_secs(3600))),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            s.delay_after(2, Some(Duration::from_secs(1))),
            Some(Duration::from_secs(30))
        );
    }
}
