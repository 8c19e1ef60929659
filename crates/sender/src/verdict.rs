//! What an attempt's answer means for its delivery: pure rules, unit-tested as a
//! table; `outcome` records and follows up. No I/O here (checked by
//! `architecture::the_sender_decides_without_io`).

use std::time::Duration;

use hookrelay_model::DeadLetterReason;
use hookrelay_model::Topology;
use hookrelay_model::retry::{self, AfterFailure, Failure, RetryPolicy, RetrySchedule};

/// What follows an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A 2xx answer.
    Delivered,
    /// Tried again after this long: the schedule's wait (or the `Retry-After`
    /// asked, within bounds) rounded up to a delay queue that exists.
    Retry { after: Duration },
    /// No attempt follows: dead-lettered for `reason`, recorded failed with `why`.
    GiveUp {
        reason: DeadLetterReason,
        why: String,
    },
}

/// The attempt's answer as the verdict reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answered {
    /// None: a 2xx answer.
    pub failure: Option<Failure>,
    pub retry_after: Option<Duration>,
    /// 1-based, within the round (a replay starts a new round).
    pub attempt_in_round: u32,
}

pub(crate) fn verdict(
    answered: Answered,
    policy: &RetryPolicy,
    schedule: &RetrySchedule,
    topology: &Topology,
) -> Verdict {
    let Some(failure) = answered.failure else {
        return Verdict::Delivered;
    };
    match retry::after_failure(
        &failure,
        policy,
        answered.attempt_in_round,
        answered.retry_after,
        schedule,
    ) {
        AfterFailure::Retry { after } => Verdict::Retry {
            after: topology.delay_at_least(after),
        },
        AfterFailure::GiveUp { reason, why } => Verdict::GiveUp { reason, why },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn every_answer_class_and_the_attempt_budget() {
        let schedule = RetrySchedule::default();
        let topology = Topology::new("t", &schedule.delays, schedule.retry_after_max);
        let seed = RetryPolicy::default();
        let wide = RetryPolicy::parse(&["timeout", "connect", "5xx"]).unwrap();
        let answered = |failure, retry_after, attempt_in_round| Answered {
            failure,
            retry_after,
            attempt_in_round,
        };
        let retry = |after| Ok(after);
        let table: Vec<(Answered, &RetryPolicy, Result<Duration, &str>)> = vec![
            (answered(None, None, 1), &seed, Err("delivered")),
            (answered(None, None, 3), &seed, Err("delivered")),
            (
                answered(Some(Failure::Timeout), None, 1),
                &seed,
                retry(S(5)),
            ),
            (
                answered(Some(Failure::Timeout), None, 2),
                &seed,
                retry(S(30)),
            ),
            (
                answered(Some(Failure::Timeout), None, 3),
                &seed,
                Err("retries exhausted"),
            ),
            (
                answered(Some(Failure::Status(408)), None, 1),
                &seed,
                retry(S(5)),
            ),
            (
                answered(Some(Failure::Status(429)), Some(S(12)), 1),
                &seed,
                retry(topology.delay_at_least(S(12))),
            ),
            (
                answered(Some(Failure::Status(429)), Some(S(86_400)), 1),
                &seed,
                retry(topology.delay_at_least(S(300))),
            ),
            (
                answered(Some(Failure::Status(500)), None, 1),
                &seed,
                Err("not retryable"),
            ),
            (
                answered(Some(Failure::Status(500)), None, 1),
                &wide,
                retry(S(5)),
            ),
            (
                answered(Some(Failure::Status(404)), None, 1),
                &wide,
                Err("not retryable"),
            ),
            (
                answered(Some(Failure::Connect), None, 1),
                &seed,
                Err("not retryable"),
            ),
            (
                answered(Some(Failure::Connect), None, 2),
                &wide,
                retry(S(30)),
            ),
            (
                answered(Some(Failure::Permanent), None, 1),
                &wide,
                Err("permanent failure"),
            ),
        ];
        for (answered, policy, want) in table {
            let got = verdict(answered, policy, &schedule, &topology);
            match (&got, want) {
                (Verdict::Delivered, Err("delivered")) => {}
                (Verdict::Retry { after }, Ok(want)) => {
                    assert_eq!(*after, want, "{answered:?}");
                    assert!(*after >= S(5), "a delay queue's wait");
                }
                (Verdict::GiveUp { reason, why }, Err(want)) => {
                    assert_eq!(reason.as_str(), want, "{answered:?}");
                    assert!(why.starts_with(want), "{why}");
                }
                _ => panic!("{answered:?}: {got:?}, wanted {want:?}"),
            }
        }
    }
}
