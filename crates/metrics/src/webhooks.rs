//! Series labelled by tenant and webhook key, with a cap on how many (tenant,
//! webhook) pairs get series of their own: past the cap, a pair is counted under
//! `{tenant="_other",webhook="_other"}`, so a deployment with many webhooks cannot
//! make `/metrics` (or Prometheus) grow without bound.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The label value of every pair past the cap (tenant and webhook both).
pub const OTHER: &str = "_other";
/// The webhook label of a one-off basic webhook (an event's `webhook_url`).
pub const ONE_OFF: &str = "_url";
/// How many (tenant, webhook) pairs get their own series by default
/// (`HOOKRELAY_METRICS_MAX_WEBHOOKS`).
pub const DEFAULT_MAX_WEBHOOKS: usize = 500;

/// Which pairs have a seat (their own series), first come first served, for the
/// life of the process.
pub(crate) struct Seats {
    max: usize,
    state: Mutex<SeatState>,
}

#[derive(Default)]
struct SeatState {
    seated: HashSet<(String, String)>,
    /// Pairs past the cap whose breaker is open: `_other` shows how many.
    open_breakers: HashSet<(String, String)>,
}

impl Seats {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SeatState> {
        // A panic elsewhere while holding it leaves sets that are still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The `tenant` and `webhook` label values of a pair: its own, or [`OTHER`].
    pub(crate) fn labels(&self, tenant: &str, webhook: &str) -> Vec<(&'static str, String)> {
        let seated = self.seat(tenant, webhook);
        pair_labels(seated, tenant, webhook)
    }

    fn seat(&self, tenant: &str, webhook: &str) -> bool {
        let mut state = self.lock();
        let key = (tenant.to_owned(), webhook.to_owned());
        if state.seated.contains(&key) {
            return true;
        }
        if state.seated.len() < self.max {
            state.seated.insert(key);
            return true;
        }
        false
    }

    /// For the breaker gauge: the labels, and the value to set (1/0 for a seated
    /// pair; for `_other`, how many overflowed pairs are open).
    pub(crate) fn breaker(
        &self,
        tenant: &str,
        webhook: &str,
        open: bool,
    ) -> (Vec<(&'static str, String)>, i64) {
        if self.seat(tenant, webhook) {
            return (pair_labels(true, tenant, webhook), i64::from(open));
        }
        let mut state = self.lock();
        let key = (tenant.to_owned(), webhook.to_owned());
        if open {
            state.open_breakers.insert(key);
        } else {
            state.open_breakers.remove(&key);
        }
        let n = i64::try_from(state.open_breakers.len()).unwrap_or(i64::MAX);
        (pair_labels(false, tenant, webhook), n)
    }
}

fn pair_labels(seated: bool, tenant: &str, webhook: &str) -> Vec<(&'static str, String)> {
    if seated {
        vec![
            ("tenant", tenant.to_owned()),
            ("webhook", webhook.to_owned()),
        ]
    } else {
        vec![("tenant", OTHER.to_owned()), ("webhook", OTHER.to_owned())]
    }
}

/// What the database says is pending for one webhook (or a tenant's one-off URLs).
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub tenant: String,
    /// The webhook's key, or [`ONE_OFF`].
    pub webhook: String,
    pub count: u64,
    /// Age of the oldest pending delivery, in seconds.
    pub oldest_age_seconds: f64,
}

/// Folds samples into label sets: pairs past the cap are summed (count) and maxed
/// (age) under `_other`.
pub(crate) fn fold(
    seats: &Seats,
    samples: &[Pending],
) -> HashMap<Vec<(&'static str, String)>, (u64, f64)> {
    let mut out: HashMap<Vec<(&'static str, String)>, (u64, f64)> = HashMap::new();
    for s in samples {
        let entry = out
            .entry(seats.labels(&s.tenant, &s.webhook))
            .or_insert((0, 0.0));
        entry.0 += s.count;
        entry.1 = entry.1.max(s.oldest_age_seconds);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_past_the_cap_share_the_other_labels() {
        let seats = Seats::new(2);
        assert_eq!(seats.labels("a", "one")[1].1, "one");
        assert_eq!(seats.labels("a", "two")[1].1, "two");
        assert_eq!(seats.labels("b", "three")[0].1, OTHER);
        assert_eq!(seats.labels("b", "three")[1].1, OTHER);
        // A seated pair keeps its seat.
        assert_eq!(seats.labels("a", "one")[1].1, "one");
    }

    #[test]
    fn open_breakers_past_the_cap_are_counted() {
        let seats = Seats::new(0);
        assert_eq!(seats.breaker("a", "x", true).1, 1);
        assert_eq!(seats.breaker("a", "y", true).1, 2);
        assert_eq!(seats.breaker("a", "x", false).1, 1);
    }
}
