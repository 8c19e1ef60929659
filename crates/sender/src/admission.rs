//! Whether a delivery goes ahead, before any request: pure rules over what the sender
//! found out, each gate a function from facts to an [`Admission`], unit-tested as a
//! table. `outcome` gathers the facts (the limiter, the row, the rate bucket, the
//! shared slots) and acts on the answer. No I/O here (checked by
//! `architecture::the_sender_decides_without_io`).
//!
//! The gates, in the order a delivery meets them: [`before_load`] (its webhook hangs:
//! no database work), [`on_load`] (its row and its webhook), [`on_rate`] (the
//! webhook's rate limit), [`on_wait`] (a slot of the webhook's cap, in this sender
//! and across senders). [`on_order`] (an ordered webhook's key: every earlier
//! delivery settled) follows [`on_load`], before the rate and the cap, so a waiting
//! delivery takes no token and no slot.

use std::time::Duration;

use hookrelay_model::DeadLetterReason;

/// What to do with a delivery at a gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admission {
    /// On to the next gate; past the last, send.
    Go,
    /// Back to a delay queue for at least this long, no attempt counted.
    Defer(Duration),
    /// Open the webhook's breaker for `reason`, then hold the delivery (defer it for
    /// `otherwise` when the breaker cannot be opened).
    Trip { reason: String, otherwise: Duration },
    /// Parked in its row until what holds it ends.
    Hold(Hold),
    /// Nothing to send: ack.
    Ack,
    /// Refused without a request.
    DeadLetter(DeadLetterReason),
}

/// What holds a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Its webhook is paused, disabled, or its breaker is open (and this is not the
    /// breaker's probe): resuming, enabling or closing publishes it again.
    Webhook,
    /// Over the webhook's rate: the rate releaser publishes it when the rate allows.
    Rate,
    /// Behind an earlier delivery of its ordering key: the one that settles it (or
    /// resumes or skips the blocked key) publishes it.
    Turn,
}

/// A webhook whose requests hang: how long the oldest one sent has had no answer,
/// and how many this sender has in flight to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hang {
    pub oldest: Duration,
    pub in_flight: usize,
}

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Every slot is taken by requests that answer in time, or by deliveries not
    /// sent yet: waited this long. Throttled by the cap, never hanging.
    Busy(Duration),
    /// Every slot is taken and the oldest request sent has had no answer for long.
    Hanging(Hang),
}

/// The deployment's settings the gates read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rules {
    /// A request sent and unanswered this long trips the webhook's breaker.
    pub hanging_after: Option<Duration>,
    /// The shortest wait of a deferred delivery; the longest is five times this.
    pub defer_delay: Duration,
}

/// What the sender knows of a delivery once its row is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Row {
    /// Still to be sent (not delivered, failed or held already).
    pub pending: bool,
    pub webhook: Webhook,
    /// The breaker's probe: sent although the breaker is open.
    pub probe: bool,
}

/// The delivery's webhook, as its row found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Webhook {
    /// A one-off URL from the event (Dromo's basic webhooks).
    OneOff,
    Deleted,
    OfAnotherTenant,
    Stored {
        paused: bool,
        enabled: bool,
        breaker_open: bool,
    },
}

/// The webhook's rate bucket's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rate {
    Within,
    Over,
    /// The delivery was settled meanwhile.
    Settled,
}

/// Before any database work: a webhook at its cap whose requests hang.
pub(crate) fn before_load(hang: Option<Hang>, rules: &Rules) -> Admission {
    hang.map_or(Admission::Go, |hang| on_wait(Wait::Hanging(hang), rules))
}

/// Once the row is loaded (`None`: no row with the delivery's id).
pub(crate) fn on_load(row: Option<Row>) -> Admission {
    let Some(row) = row else {
        return Admission::DeadLetter(DeadLetterReason::DeliveryNotFound);
    };
    if !row.pending {
        // A redelivered message after a crash, or a duplicate publish.
        return Admission::Ack;
    }
    match row.webhook {
        Webhook::OneOff => Admission::Go,
        Webhook::Deleted => Admission::DeadLetter(DeadLetterReason::WebhookDeleted),
        Webhook::OfAnotherTenant => Admission::DeadLetter(DeadLetterReason::WebhookOfAnotherTenant),
        Webhook::Stored {
            paused,
            enabled,
            breaker_open,
        } => {
            let held_by_people = paused || !enabled;
            let held_by_breaker = breaker_open && !row.probe;
            if held_by_people || held_by_breaker {
                Admission::Hold(Hold::Webhook)
            } else {
                Admission::Go
            }
        }
    }
}

/// Where a sequenced delivery stands behind the earlier ones of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Unsequenced, or every earlier delivery of its key is settled.
    Free,
    /// An earlier delivery is still pending (retrying, held, deferred).
    Waiting,
    /// An earlier delivery failed for good and the webhook blocks the key.
    Blocked,
}

/// An ordered webhook's key goes one delivery at a time: one whose predecessor is
/// not settled, or failed and blocks the key, waits in its row, no attempt counted,
/// until whoever settles the predecessor (or resumes or skips the key) releases it.
pub(crate) fn on_order(order: Order) -> Admission {
    match order {
        Order::Free => Admission::Go,
        Order::Waiting | Order::Blocked => Admission::Hold(Hold::Turn),
    }
}

/// After asking the webhook's rate bucket.
pub(crate) fn on_rate(rate: Rate) -> Admission {
    match rate {
        Rate::Within => Admission::Go,
        Rate::Over => Admission::Hold(Hold::Rate),
        Rate::Settled => Admission::Ack,
    }
}

/// No slot of the webhook's cap was given. Only requests sent and unanswered for
/// `hanging_after` trip the breaker; waiting is deferred, for longer the longer the
/// endpoint has hung, so a dead one does not cycle its deliveries every second.
pub(crate) fn on_wait(wait: Wait, rules: &Rules) -> Admission {
    let defer = |waited: Duration| waited.clamp(rules.defer_delay, rules.defer_delay * 5);
    match wait {
        Wait::Busy(waited) => Admission::Defer(defer(waited)),
        Wait::Hanging(hang)
            if rules
                .hanging_after
                .is_some_and(|limit| hang.oldest >= limit) =>
        {
            Admission::Trip {
                reason: hanging_reason(hang),
                otherwise: defer(hang.oldest),
            }
        }
        Wait::Hanging(hang) => Admission::Defer(defer(hang.oldest)),
    }
}

/// The breaker's reason, with the requests really in flight.
fn hanging_reason(hang: Hang) -> String {
    let requests = if hang.in_flight == 1 {
        "request"
    } else {
        "requests"
    };
    format!(
        "hanging: no answer for {:.1}s with {} {requests} in flight",
        hang.oldest.as_secs_f64(),
        hang.in_flight
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn rules() -> Rules {
        Rules {
            hanging_after: Some(S(2)),
            defer_delay: S(1),
        }
    }

    fn hang(oldest: Duration, in_flight: usize) -> Hang {
        Hang { oldest, in_flight }
    }

    #[test]
    fn a_key_goes_one_at_a_time_and_the_rest_wait_their_turn_in_their_rows() {
        for (order, expected) in [
            (Order::Free, Admission::Go),
            (Order::Waiting, Admission::Hold(Hold::Turn)),
            (Order::Blocked, Admission::Hold(Hold::Turn)),
        ] {
            assert_eq!(on_order(order), expected, "{order:?}");
        }
    }

    #[test]
    fn a_slot_not_given() {
        let off = Rules {
            hanging_after: None,
            ..rules()
        };
        let table = [
            // Busy: deferred for what it waited, within 1..5 × the defer delay.
            (Wait::Busy(MS(300)), rules(), Admission::Defer(S(1))),
            (Wait::Busy(S(1)), rules(), Admission::Defer(S(1))),
            (Wait::Busy(S(60)), rules(), Admission::Defer(S(5))),
            // Hanging but not for the limit yet: deferred.
            (
                Wait::Hanging(hang(MS(1500), 3)),
                rules(),
                Admission::Defer(MS(1500)),
            ),
            // Hanging for the limit: tripped, with the requests really in flight.
            (
                Wait::Hanging(hang(S(2), 1)),
                rules(),
                Admission::Trip {
                    reason: "hanging: no answer for 2.0s with 1 request in flight".into(),
                    otherwise: S(2),
                },
            ),
            (
                Wait::Hanging(hang(S(30), 4)),
                rules(),
                Admission::Trip {
                    reason: "hanging: no answer for 30.0s with 4 requests in flight".into(),
                    otherwise: S(5),
                },
            ),
            // Hanging never trips when turned off.
            (Wait::Hanging(hang(S(30), 4)), off, Admission::Defer(S(5))),
        ];
        for (wait, rules, want) in table {
            assert_eq!(on_wait(wait, &rules), want, "{wait:?}");
        }
    }

    /// However long a delivery waited for a slot, and whatever the hanging limit,
    /// waiting alone never trips (the busy-endpoint bug).
    #[test]
    fn waiting_never_trips() {
        for waited in [MS(1), S(1), S(2), S(3600)] {
            for limit in [MS(1), S(1), S(2)] {
                let rules = Rules {
                    hanging_after: Some(limit),
                    defer_delay: S(1),
                };
                let got = on_wait(Wait::Busy(waited), &rules);
                assert!(matches!(got, Admission::Defer(_)), "{waited:?}: {got:?}");
            }
        }
    }

    #[test]
    fn before_load_only_a_hang_stops_a_delivery() {
        assert_eq!(before_load(None, &rules()), Admission::Go);
        assert_eq!(
            before_load(Some(hang(MS(1100), 2)), &rules()),
            Admission::Defer(MS(1100))
        );
        assert!(matches!(
            before_load(Some(hang(S(3), 2)), &rules()),
            Admission::Trip { .. }
        ));
    }

    #[test]
    fn a_loaded_row() {
        let stored = |paused, enabled, breaker_open| Webhook::Stored {
            paused,
            enabled,
            breaker_open,
        };
        let row = |pending, webhook, probe| {
            Some(Row {
                pending,
                webhook,
                probe,
            })
        };
        let held = Admission::Hold(Hold::Webhook);
        let table = [
            (
                None,
                Admission::DeadLetter(DeadLetterReason::DeliveryNotFound),
            ),
            (
                row(false, stored(false, true, false), false),
                Admission::Ack,
            ),
            (row(false, Webhook::Deleted, false), Admission::Ack),
            (row(true, Webhook::OneOff, false), Admission::Go),
            (
                row(true, Webhook::Deleted, false),
                Admission::DeadLetter(DeadLetterReason::WebhookDeleted),
            ),
            (
                row(true, Webhook::OfAnotherTenant, false),
                Admission::DeadLetter(DeadLetterReason::WebhookOfAnotherTenant),
            ),
            (row(true, stored(false, true, false), false), Admission::Go),
            (row(true, stored(true, true, false), false), held.clone()),
            (row(true, stored(false, false, false), false), held.clone()),
            (row(true, stored(false, true, true), false), held.clone()),
            // The probe goes through an open breaker, never through a pause.
            (row(true, stored(false, true, true), true), Admission::Go),
            (row(true, stored(true, true, true), true), held.clone()),
            (row(true, stored(false, false, true), true), held),
        ];
        for (row, want) in table {
            assert_eq!(on_load(row), want, "{row:?}");
        }
    }

    #[test]
    fn the_rate_bucket() {
        assert_eq!(on_rate(Rate::Within), Admission::Go);
        assert_eq!(on_rate(Rate::Over), Admission::Hold(Hold::Rate));
        assert_eq!(on_rate(Rate::Settled), Admission::Ack);
    }
}
