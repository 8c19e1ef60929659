//! Every counter hookrelay keeps, in Prometheus form. Roles count here; `/metrics`
//! renders it; tests read the same values.

mod depths;

pub use depths::sample_queue_depths;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

type Labels = Vec<(&'static str, String)>;

fn label(key: &'static str, value: &str) -> Labels {
    vec![(key, value.to_owned())]
}

/// Router outcomes per consumed event.
pub mod event {
    pub const ROUTED: &str = "routed";
    pub const DUPLICATE: &str = "duplicate";
    pub const INVALID: &str = "invalid";
}

/// Sender outcomes per delivery message.
pub mod outcome {
    pub const DELIVERED: &str = "delivered";
    pub const RETRIED: &str = "retried";
    pub const FAILED: &str = "failed";
    /// Parked in a delay queue because its webhook was slow (no attempt counted).
    pub const DEFERRED: &str = "deferred";
    /// A redelivered message whose delivery was already settled.
    pub const ALREADY_SETTLED: &str = "already_settled";
    /// Held, not attempted: its webhook is paused (resuming sends it).
    pub const HELD: &str = "held";
}

pub struct Metrics {
    registry: Registry,
    events: Family<Labels, Counter>,
    deliveries_published: Counter,
    outcomes: Family<Labels, Counter>,
    attempts: Family<Labels, Counter>,
    attempt_seconds: Histogram,
    dead_lettered: Family<Labels, Counter>,
    in_flight: Family<Labels, Gauge>,
    consuming: Family<Labels, Gauge>,
    queue_messages: Family<Labels, Gauge>,
    events_accepted: Counter,
    webhooks_disabled: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hookrelay");
        let events = Family::<Labels, Counter>::default();
        registry.register(
            "router_events",
            "Events consumed by the router, by outcome",
            events.clone(),
        );
        let deliveries_published = Counter::default();
        registry.register(
            "router_deliveries_published",
            "Delivery messages published by the router (confirmed)",
            deliveries_published.clone(),
        );
        let outcomes = Family::<Labels, Counter>::default();
        registry.register(
            "sender_deliveries",
            "Delivery messages handled by the sender, by outcome",
            outcomes.clone(),
        );
        let attempts = Family::<Labels, Counter>::default();
        registry.register(
            "sender_attempts",
            "Webhook requests, by status class",
            attempts.clone(),
        );
        let attempt_seconds = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ]);
        registry.register_with_unit(
            "sender_attempt_duration",
            "Time from sending a webhook request to its answer",
            Unit::Seconds,
            attempt_seconds.clone(),
        );
        let dead_lettered = Family::<Labels, Counter>::default();
        registry.register(
            "dead_lettered",
            "Messages sent to the dead-letter queue, by role and reason",
            dead_lettered.clone(),
        );
        let in_flight = Family::<Labels, Gauge>::default();
        registry.register(
            "in_flight",
            "Messages being handled now, by role",
            in_flight.clone(),
        );
        let consuming = Family::<Labels, Gauge>::default();
        registry.register(
            "consuming",
            "1 while the role consumes its queue",
            consuming.clone(),
        );
        let queue_messages = Family::<Labels, Gauge>::default();
        registry.register(
            "queue_messages",
            "Messages ready in a queue when last sampled",
            queue_messages.clone(),
        );
        let events_accepted = Counter::default();
        registry.register(
            "api_events_accepted",
            "Events accepted by the ingest API (confirmed)",
            events_accepted.clone(),
        );
        let webhooks_disabled = Counter::default();
        registry.register(
            "sender_webhooks_disabled",
            "Webhooks the sender disabled (410 Gone, or failing for the configured period)",
            webhooks_disabled.clone(),
        );
        Self {
            registry,
            events,
            deliveries_published,
            outcomes,
            attempts,
            attempt_seconds,
            dead_lettered,
            in_flight,
            consuming,
            queue_messages,
            events_accepted,
            webhooks_disabled,
        }
    }

    pub fn webhook_disabled(&self) {
        self.webhooks_disabled.inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    pub fn event(&self, outcome: &str, n: u64) {
        self.events
            .get_or_create(&label("outcome", outcome))
            .inc_by(n);
    }

    pub fn events(&self, outcome: &str) -> u64 {
        self.events.get_or_create(&label("outcome", outcome)).get()
    }

    pub fn published(&self, n: u64) {
        self.deliveries_published.inc_by(n);
    }

    pub fn published_total(&self) -> u64 {
        self.deliveries_published.get()
    }

    pub fn outcome(&self, outcome: &str) {
        self.outcomes
            .get_or_create(&label("outcome", outcome))
            .inc();
    }

    pub fn outcomes(&self, outcome: &str) -> u64 {
        self.outcomes
            .get_or_create(&label("outcome", outcome))
            .get()
    }

    /// One webhook request: `class` is `2xx`..`5xx`, `timeout` or `connect`.
    pub fn attempt(&self, class: &str, seconds: f64) {
        self.attempts.get_or_create(&label("class", class)).inc();
        self.attempt_seconds.observe(seconds);
    }

    pub fn attempts(&self, class: &str) -> u64 {
        self.attempts.get_or_create(&label("class", class)).get()
    }

    pub fn dead_letter(&self, role: &str, reason: &str) {
        let labels = vec![("role", role.to_owned()), ("reason", reason.to_owned())];
        self.dead_lettered.get_or_create(&labels).inc();
    }

    pub fn dead_letters(&self, role: &str, reason: &str) -> u64 {
        let labels = vec![("role", role.to_owned()), ("reason", reason.to_owned())];
        self.dead_lettered.get_or_create(&labels).get()
    }

    /// Counts one message in flight for `role` until the guard is dropped.
    pub fn track_in_flight(&self, role: &str) -> InFlight {
        let gauge = self.in_flight.get_or_create(&label("role", role)).clone();
        gauge.inc();
        InFlight(gauge)
    }

    /// Messages `role` is handling now.
    pub fn in_flight(&self, role: &str) -> i64 {
        self.in_flight.get_or_create(&label("role", role)).get()
    }

    pub fn set_consuming(&self, role: &str, on: bool) {
        self.consuming
            .get_or_create(&label("role", role))
            .set(i64::from(on));
    }

    pub fn is_consuming(&self, role: &str) -> bool {
        self.consuming.get_or_create(&label("role", role)).get() == 1
    }

    pub fn queue_depth(&self, queue: &str, messages: u32) {
        self.queue_messages
            .get_or_create(&label("queue", queue))
            .set(i64::from(messages));
    }

    pub fn accepted(&self, n: u64) {
        self.events_accepted.inc_by(n);
    }
}

/// Decrements the in-flight gauge when dropped.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The status class label of an HTTP answer.
pub fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_units_and_labels() {
        let m = Metrics::new();
        m.event(event::ROUTED, 3);
        m.attempt("2xx", 0.02);
        m.dead_letter("sender", "retries exhausted");
        let text = m.render();
        assert!(
            text.contains("hookrelay_router_events_total{outcome=\"routed\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("hookrelay_sender_attempt_duration_seconds_bucket{le=\"0.025\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "hookrelay_dead_lettered_total{role=\"sender\",reason=\"retries exhausted\"} 1"
            ),
            "{text}"
        );
        assert_eq!(m.events(event::ROUTED), 3);
        let guard = m.track_in_flight("sender");
        assert!(
            m.render()
                .contains("hookrelay_in_flight{role=\"sender\"} 1")
        );
        drop(guard);
        assert!(
            m.render()
                .contains("hookrelay_in_flight{role=\"sender\"} 0")
        );
    }
}
