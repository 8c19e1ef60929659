//! The ordered scenario (`cargo xtask bench --scenario ordered`): the capacity steps
//! with two webhooks on one receiver, one `ordered` and one not, and the check that
//! the ordered one received every key's events in the order the router recorded
//! them; then hot-key sub-runs, where one key's rate is bounded by how fast the
//! receiver answers. The steps themselves are tests/src/capacity.rs's.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::bench::{percentile, sustained_rate};
use crate::capacity::{self, EventSource, Mix, Plan, Rig, Roles, Step};
use crate::receiver::Tally;

/// A hot key is offered this multiple of what its receiver can take one at a time
/// (1/latency), so that the receiver's latency, not the offer, bounds it...
const HOT_OVER_BOUND: f64 = 1.5;
/// ... for at most this long (a modest backlog that drains within the step's limit
/// once a key's next delivery follows its predecessor at once).
const HOT_SECONDS: Duration = Duration::from_secs(10);

/// Where the router placed each sequenced delivery: event id → (ordering key, seq).
pub(crate) type Recorded = HashMap<String, (String, i64)>;

/// Receipts out of the recorded order.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct OutOfOrder {
    /// Deliveries received (first or again) after the first receipt of a delivery
    /// of the same key recorded after them.
    pub receipts: usize,
    /// Keys with at least one.
    pub keys: usize,
}

/// One hot-key sub-run: one ordered key, the receiver answering after `latency_ms`.
#[derive(Debug, Clone, Serialize)]
pub struct HotKey {
    pub latency_ms: f64,
    /// 1/latency: the most one key can take when each delivery waits for the answer
    /// to the one before.
    pub bound_per_sec: f64,
    pub offered_per_sec: f64,
    /// The key's deliveries per second, from the arrival of the first 10 % to the
    /// last arrival.
    pub delivered_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub missing: usize,
    pub duplicates: usize,
    pub out_of_order: OutOfOrder,
    /// The receiver's own time per request, measured (median, ms): `latency_ms` plus
    /// its timer's rounding and scheduling.
    pub answer_ms: f64,
    /// hookrelay's time per delivery of the key, seen from the receiver: from its
    /// answer to one request to the arrival of the next (median and 90th
    /// percentile, ms, past the first 10 %).
    pub between_p50_ms: f64,
    pub between_p90_ms: f64,
}

/// The receiver's time per request and the gaps between one answer and the next
/// request, in arrival order, past the first 10 % (as [`sustained_rate`]).
/// Both sorted, in microseconds.
fn answers_and_gaps(tallies: &HashMap<String, Tally>) -> (Vec<u64>, Vec<u64>) {
    let mut requests: Vec<(Instant, Instant)> = tallies
        .values()
        .map(|t| (t.first_arrived_at, t.first_at))
        .collect();
    requests.sort_unstable();
    let warm = requests.len() / 10;
    let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let mut answers: Vec<u64> = requests[warm..]
        .iter()
        .map(|(arrived, answered)| us(answered.saturating_duration_since(*arrived)))
        .collect();
    let mut gaps: Vec<u64> = requests[warm..]
        .windows(2)
        .map(|w| us(w[1].0.saturating_duration_since(w[0].1)))
        .collect();
    answers.sort_unstable();
    gaps.sort_unstable();
    (answers, gaps)
}

/// The sequence the router gave every delivery of the rig's ordered webhooks.
pub(crate) async fn recorded(rig: &Rig) -> Recorded {
    let ordered: Vec<uuid::Uuid> = rig
        .lanes
        .iter()
        .zip(&rig.hooks)
        .filter(|(lane, _)| lane.ordered)
        .map(|(_, id)| *id)
        .collect();
    if ordered.is_empty() {
        return Recorded::new();
    }
    rig.stack
        .db
        .client()
        .await
        .query(
            "SELECT event_id, ordering_key, seq FROM deliveries \
             WHERE webhook_id = ANY($1) AND seq IS NOT NULL",
            &[&ordered],
        )
        .await
        .expect("recorded sequences")
        .into_iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect()
}

/// Out-of-order receipts among `expected` (tally key → event id), key by key in
/// the recorded order.
pub(crate) fn out_of_order(
    expected: &HashMap<String, String>,
    tallies: &HashMap<String, Tally>,
    recorded: &Recorded,
) -> OutOfOrder {
    let mut by_key: HashMap<&str, Vec<Receipts>> = HashMap::new();
    for (tally_key, event_id) in expected {
        if let (Some(t), Some((key, seq))) = (tallies.get(tally_key), recorded.get(event_id)) {
            by_key.entry(key).or_default().push(Receipts {
                seq: *seq,
                first: t.first_arrived_at,
                last: t.last_arrived_at,
            });
        }
    }
    let mut out = OutOfOrder::default();
    for receipts in by_key.values_mut() {
        let late = late_receipts(receipts);
        out.receipts += late;
        out.keys += usize::from(late > 0);
    }
    out
}

/// When one delivery's requests (answered 2xx) came in.
#[derive(Debug, Clone, Copy)]
struct Receipts {
    seq: i64,
    first: Instant,
    last: Instant,
}

/// Of one key's deliveries, how many were received (first or again) after the first
/// receipt of one recorded after them.
fn late_receipts(key: &mut [Receipts]) -> usize {
    key.sort_unstable_by_key(|r| std::cmp::Reverse(r.seq));
    let mut first_of_later: Option<Instant> = None;
    let mut late = 0;
    for r in key.iter() {
        late += usize::from(first_of_later.is_some_and(|later| r.last > later));
        first_of_later = Some(first_of_later.map_or(r.first, |later| later.min(r.first)));
    }
    late
}

/// One hot-key sub-run on a stack of its own: one ordered key offered
/// [`HOT_OVER_BOUND`] × 1/latency for the plan's step time (at most [`HOT_SECONDS`]).
pub(crate) async fn hot_key(binary: &Path, latency: Duration, plan: &Plan) -> HotKey {
    let bound = 1.0 / latency.as_secs_f64();
    let rate = (HOT_OVER_BOUND * bound).round() as u32;
    let step = plan.step.min(HOT_SECONDS);
    eprintln!(
        "hot key: the receiver answering after {latency:?}, offering {rate} events/s for {step:?} ..."
    );
    let mix = Mix::HotKey { latency };
    let rig = Rig::new(mix.lanes()).await;
    let roles = Roles::start(binary, &rig.stack).await;
    let mut source = EventSource::new(mix, plan.payload_bytes);
    let one = Plan {
        rates: vec![rate],
        step,
        window: None,
        mix,
        ..plan.clone()
    };
    let read = capacity::step(&rig, &roles, &mut source, &one, rate).await;
    roles.stop();
    rig.stack.publisher.close().await;
    let tallies = rig.receiver.tallies();
    let mut arrivals: Vec<std::time::Instant> =
        tallies.values().map(|t| t.first_at.into_std()).collect();
    arrivals.sort_unstable();
    let (answers, gaps) = answers_and_gaps(&tallies);
    let f = &read[0].figures;
    let out_of_order = read[0].webhooks[0].out_of_order.unwrap_or_default();
    HotKey {
        latency_ms: latency.as_secs_f64() * 1000.0,
        bound_per_sec: bound,
        offered_per_sec: f.offered_per_sec,
        delivered_per_sec: sustained_rate(&arrivals),
        p50_ms: f.p50_ms,
        p99_ms: f.p99_ms,
        max_ms: f.max_ms,
        missing: f.missing,
        duplicates: f.duplicates,
        out_of_order,
        answer_ms: percentile(&answers, 0.5),
        between_p50_ms: percentile(&gaps, 0.5),
        between_p90_ms: percentile(&gaps, 0.9),
    }
}

/// Each webhook's figures step by step, for a run with several (empty otherwise).
pub fn webhooks_table(steps: &[Step]) -> String {
    if steps.iter().all(|s| s.webhooks.is_empty()) {
        return String::new();
    }
    let mut out = String::from(
        "\nper webhook (out of order: receipts of a key's event after the first receipt of one recorded after it; must be 0):\n\n\
         | step offered/s | webhook | offered/s | delivered/s | p50 ms | p99 ms | max ms | missing | dup | sustained | out of order (keys) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in steps {
        for w in &s.webhooks {
            let f = &w.figures;
            out.push_str(&format!(
                "| {:.0} | {}{} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} |\n",
                s.figures.offered_per_sec,
                w.path,
                if w.ordered { " (ordered)" } else { "" },
                f.offered_per_sec,
                f.delivered_per_sec,
                f.p50_ms,
                f.p99_ms,
                f.max_ms,
                f.missing,
                f.duplicates,
                if f.sustained { "yes" } else { "no" },
                w.out_of_order.map_or_else(
                    || "-".to_owned(),
                    |o| format!("{} ({})", o.receipts, o.keys)
                ),
            ));
        }
    }
    out
}

/// The hot-key sub-runs: one key's delivered rate beside 1/latency.
pub fn hot_keys_table(runs: &[HotKey]) -> String {
    if runs.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\nhot key (one ordered key; missing: not delivered by the step's limit):\n\n\
         | receiver latency ms | 1/latency /s | receiver's time per request ms (measured) | hookrelay from an answer to the next request ms p50 / p90 | offered/s | delivered/s | p50 ms | p99 ms | max ms | missing | dup | out of order |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for h in runs {
        out.push_str(&format!(
            "| {:.0} | {:.0} | {:.2} | {:.2} / {:.2} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} |\n",
            h.latency_ms,
            h.bound_per_sec,
            h.answer_ms,
            h.between_p50_ms,
            h.between_p90_ms,
            h.offered_per_sec,
            h.delivered_per_sec,
            h.p50_ms,
            h.p99_ms,
            h.max_ms,
            h.missing,
            h.duplicates,
            h.out_of_order.receipts,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    fn receipts(base: Instant, seq: i64, first: u64, last: u64) -> Receipts {
        Receipts {
            seq,
            first: at(base, first),
            last: at(base, last),
        }
    }

    #[test]
    fn a_key_received_in_its_recorded_order_has_no_late_receipt() {
        let t = Instant::now();
        let mut key = [
            receipts(t, 2, 10, 10),
            receipts(t, 1, 0, 5),
            receipts(t, 3, 20, 20),
        ];
        assert_eq!(late_receipts(&mut key), 0);
    }

    #[test]
    fn an_event_received_after_a_later_ones_first_receipt_is_late() {
        let t = Instant::now();
        // 1 came in again after 2's first receipt; 3 overtook 2.
        let mut key = [
            receipts(t, 1, 0, 15),
            receipts(t, 2, 10, 10),
            receipts(t, 3, 5, 5),
        ];
        assert_eq!(late_receipts(&mut key), 2);
    }
}
