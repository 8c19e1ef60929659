//! Every counter hookrelay keeps, in Prometheus form. Roles count here; `/metrics`
//! renders it; tests read the same values.

mod depths;
mod pending;
pub mod webhooks;

pub use depths::sample_queue_depths;
pub use pending::{PendingSampler, sample_pending};
pub use webhooks::{DEFAULT_MAX_WEBHOOKS, Pending};

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

type Labels = Vec<(&'static str, String)>;

const PREFIX: &str = "hookrelay";

/// Registers `metric` and notes the names of the series it renders.
fn define<M: prometheus_client::registry::Metric + TypedMetric>(
    registry: &mut Registry,
    series: &mut Vec<String>,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    metric: M,
) {
    let family = match &unit {
        Some(unit) => format!("{PREFIX}_{name}_{}", unit.as_str()),
        None => format!("{PREFIX}_{name}"),
    };
    let suffixes: &[&str] = match M::TYPE {
        MetricType::Counter => &["_total"],
        MetricType::Histogram => &["_bucket", "_sum", "_count"],
        _ => &[""],
    };
    series.extend(suffixes.iter().map(|s| format!("{family}{s}")));
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, metric),
        None => registry.register(name, help, metric),
    }
}
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Request → answer buckets, in seconds.
const ATTEMPT_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Event received → delivered buckets, in seconds: milliseconds on the happy path,
/// up to a day through retries, backlogs and redeliveries.
const E2E_BUCKETS: [f64; 17] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    21600.0, 86400.0,
];

fn attempt_histogram() -> Histogram {
    Histogram::new(ATTEMPT_BUCKETS)
}

fn label(key: &'static str, value: &str) -> Labels {
    vec![(key, value.to_owned())]
}

/// Router outcomes per consumed event.
pub mod event {
    pub const ROUTED: &str = "routed";
    pub const DUPLICATE: &str = "duplicate";
    pub const INVALID: &str = "invalid";
}

/// The outcome of one webhook attempt, as its attempt record says
/// (`delivery_attempts.outcome`).
pub mod attempt {
    pub const DELIVERED: &str = "delivered";
    /// Failed, and another attempt is scheduled.
    pub const RETRY: &str = "retry";
    /// Failed, and no attempt follows: dead-lettered.
    pub const FAILED: &str = "failed";
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
    /// Held, not attempted: over its webhook's rate limit (sent as the rate allows).
    pub const RATE_LIMITED: &str = "rate_limited";
    /// Waiting, not attempted: an earlier delivery of its ordering key is not
    /// settled (sent when it is).
    pub const WAITING: &str = "waiting";
}

pub struct Metrics {
    registry: Registry,
    /// Every series name `/metrics` can hold (see [`Metrics::series_names`]).
    series: Vec<String>,
    events: Family<Labels, Counter>,
    deliveries_published: Counter,
    outcomes: Family<Labels, Counter>,
    attempts: Family<Labels, Counter>,
    attempt_seconds: Histogram,
    dead_lettered: Family<Labels, Counter>,
    schema_violations: Family<Labels, Counter>,
    in_flight: Family<Labels, Gauge>,
    consuming: Family<Labels, Gauge>,
    consumer_sessions: Family<Labels, Counter>,
    queue_messages: Family<Labels, Gauge>,
    events_accepted: Counter,
    webhooks_disabled: Counter,
    seats: webhooks::Seats,
    webhook_attempts: Family<Labels, Counter>,
    webhook_attempt_seconds: Histograms,
    e2e_seconds: Histogram,
    /// What the histogram counted, for readers (its own count is not public).
    e2e_count: AtomicU64,
    breaker_open: Family<Labels, Gauge>,
    keys_blocked: Gauge,
    pending: Family<Labels, Gauge>,
    pending_age: Family<Labels, Gauge<f64, AtomicU64>>,
    /// The pending label sets of the last sample: those missing from the next are
    /// set to 0.
    pending_seen: Mutex<HashSet<Labels>>,
}

fn schema_labels(event_type: &str, mode: &str) -> Labels {
    vec![
        ("event_type", event_type.to_owned()),
        ("mode", mode.to_owned()),
    ]
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::with_max_webhooks(DEFAULT_MAX_WEBHOOKS)
    }

    /// At most `max_webhooks` (tenant, webhook) pairs get series of their own; the
    /// rest are counted under `{tenant="_other",webhook="_other"}`.
    pub fn with_max_webhooks(max_webhooks: usize) -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let mut series = Vec::new();
        let events = Family::<Labels, Counter>::default();
        define(
            &mut registry,
            &mut series,
            "router_events",
            "Events consumed by the router, by outcome",
            None,
            events.clone(),
        );
        let deliveries_published = Counter::default();
        define(
            &mut registry,
            &mut series,
            "router_deliveries_published",
            "Delivery messages published by the router (confirmed)",
            None,
            deliveries_published.clone(),
        );
        let outcomes = Family::<Labels, Counter>::default();
        define(
            &mut registry,
            &mut series,
            "sender_deliveries",
            "Delivery messages handled by the sender, by outcome",
            None,
            outcomes.clone(),
        );
        let attempts = Family::<Labels, Counter>::default();
        define(
            &mut registry,
            &mut series,
            "sender_attempts",
            "Webhook requests, by status class",
            None,
            attempts.clone(),
        );
        let attempt_seconds = attempt_histogram();
        define(
            &mut registry,
            &mut series,
            "sender_attempt_duration",
            "Time from sending a webhook request to its answer",
            Some(Unit::Seconds),
            attempt_seconds.clone(),
        );
        let dead_lettered = Family::<Labels, Counter>::default();
        define(
            &mut registry,
            &mut series,
            "dead_lettered",
            "Messages sent to the dead-letter queue, by role and reason",
            None,
            dead_lettered.clone(),
        );
        let schema_violations = Family::<Labels, Counter>::default();
        define(
            &mut registry,
            &mut series,
            "schema_violations",
            "Events whose payload broke their type's schema in the event catalog, by \
             event type and HOOKRELAY_SCHEMA_VALIDATION mode (warn: delivered; enforce: \
             refused at ingest or dead-lettered)",
            None,
            schema_violations.clone(),
        );
        let in_flight = Family::<Labels, Gauge>::default();
        define(
            &mut registry,
            &mut series,
            "in_flight",
            "Messages being handled now, by role",
            None,
            in_flight.clone(),
        );
        let consuming = Family::<Labels, Gauge>::default();
        define(
            &mut registry,
            &mut series,
            "consuming",
            "1 while the role consumes its queue",
            None,
            consuming.clone(),
        );
        let consumer_sessions = Family::<Labels, Counter>::default();
        define(
            &mut registry,
            &mut series,
            "consumer_sessions",
            "Times the role began consuming its queue: one, plus one per reconnection",
            None,
            consumer_sessions.clone(),
        );
        let queue_messages = Family::<Labels, Gauge>::default();
        define(
            &mut registry,
            &mut series,
            "queue_messages",
            "Messages ready in a queue when last sampled",
            None,
            queue_messages.clone(),
        );
        let events_accepted = Counter::default();
        define(
            &mut registry,
            &mut series,
            "api_events_accepted",
            "Events accepted by the ingest API (confirmed)",
            None,
            events_accepted.clone(),
        );
        let webhooks_disabled = Counter::default();
        define(
            &mut registry,
            &mut series,
            "sender_webhooks_disabled",
            "Webhooks the sender disabled (410 Gone, or failing for the configured period)",
            None,
            webhooks_disabled.clone(),
        );
        let webhook_attempts = Family::<Labels, Counter>::default();
        define(
            &mut registry,
            &mut series,
            "webhook_attempts",
            "Webhook attempts by tenant, webhook key and outcome (delivered, retry, failed)",
            None,
            webhook_attempts.clone(),
        );
        let webhook_attempt_seconds: Histograms =
            Family::new_with_constructor(attempt_histogram as fn() -> Histogram);
        define(
            &mut registry,
            &mut series,
            "webhook_attempt_duration",
            "Time from sending a webhook request to its answer, by tenant and webhook key",
            Some(Unit::Seconds),
            webhook_attempt_seconds.clone(),
        );
        let e2e_seconds = Histogram::new(E2E_BUCKETS);
        define(
            &mut registry,
            &mut series,
            "delivery_e2e_duration",
            "Time from the router receiving an event to a delivered attempt of one of its deliveries",
            Some(Unit::Seconds),
            e2e_seconds.clone(),
        );
        let breaker_open = Family::<Labels, Gauge>::default();
        define(
            &mut registry,
            &mut series,
            "webhook_breaker_open",
            "1 while the webhook's circuit breaker is open, 0 while closed (for _other: how many are open)",
            None,
            breaker_open.clone(),
        );
        let keys_blocked = Gauge::default();
        define(
            &mut registry,
            &mut series,
            "ordering_keys_blocked",
            "Ordering keys held back by a failed delivery of an ordered webhook with on_failure: block, when last sampled",
            None,
            keys_blocked.clone(),
        );
        let pending = Family::<Labels, Gauge>::default();
        define(
            &mut registry,
            &mut series,
            "pending_deliveries",
            "Deliveries pending in the database, by tenant and webhook key, when last sampled",
            None,
            pending.clone(),
        );
        let pending_age = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        define(
            &mut registry,
            &mut series,
            "pending_oldest_age",
            "Age of the oldest pending delivery, by tenant and webhook key, when last sampled",
            Some(Unit::Seconds),
            pending_age.clone(),
        );
        Self {
            registry,
            series,
            seats: webhooks::Seats::new(max_webhooks),
            webhook_attempts,
            webhook_attempt_seconds,
            e2e_seconds,
            e2e_count: AtomicU64::new(0),
            breaker_open,
            keys_blocked,
            pending,
            pending_age,
            pending_seen: Mutex::default(),
            events,
            deliveries_published,
            outcomes,
            attempts,
            attempt_seconds,
            dead_lettered,
            schema_violations,
            in_flight,
            consuming,
            consumer_sessions,
            queue_messages,
            events_accepted,
            webhooks_disabled,
        }
    }

    /// Every series name `/metrics` can hold, whether or not it has a value yet
    /// (a labelled family is rendered only once it has one): counters with
    /// `_total`, histograms with `_bucket`, `_sum` and `_count`. What dashboards and
    /// alerts may refer to.
    pub fn series_names(&self) -> &[String] {
        &self.series
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

    pub fn dead_letter(&self, role: &str, reason: &hookrelay_model::DeadLetterReason) {
        let labels = vec![("role", role.to_owned()), ("reason", reason.to_string())];
        self.dead_lettered.get_or_create(&labels).inc();
    }

    pub fn dead_letters(&self, role: &str, reason: &hookrelay_model::DeadLetterReason) -> u64 {
        let labels = vec![("role", role.to_owned()), ("reason", reason.to_string())];
        self.dead_lettered.get_or_create(&labels).get()
    }

    /// An event whose payload broke its type's schema. `event_type` is a catalog
    /// type (only those have schemas), so the label's values are bounded.
    pub fn schema_violation(&self, event_type: &str, mode: &str) {
        self.schema_violations
            .get_or_create(&schema_labels(event_type, mode))
            .inc();
    }

    pub fn schema_violations(&self, event_type: &str, mode: &str) -> u64 {
        self.schema_violations
            .get_or_create(&schema_labels(event_type, mode))
            .get()
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

    /// Each start is a session of its own (counted), each stop ends it.
    pub fn set_consuming(&self, role: &str, on: bool) {
        self.consuming
            .get_or_create(&label("role", role))
            .set(i64::from(on));
        if on {
            self.consumer_sessions
                .get_or_create(&label("role", role))
                .inc();
        }
    }

    /// Sessions the role began: 1 plus its reconnections.
    pub fn consumer_sessions(&self, role: &str) -> u64 {
        self.consumer_sessions
            .get_or_create(&label("role", role))
            .get()
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

    /// One webhook attempt that was recorded: `webhook` is the webhook's key
    /// ([`webhooks::ONE_OFF`] for an event's `webhook_url`), `outcome` one of
    /// [`attempt`], `seconds` the request's time to its answer (`None` when no
    /// request was made: the URL could not be built or its destination is blocked).
    pub fn webhook_attempt(
        &self,
        tenant: &str,
        webhook: &str,
        outcome: &str,
        seconds: Option<f64>,
    ) {
        let mut labels = self.seats.labels(tenant, webhook);
        if let Some(seconds) = seconds {
            self.webhook_attempt_seconds
                .get_or_create(&labels)
                .observe(seconds);
        }
        labels.push(("outcome", outcome.to_owned()));
        self.webhook_attempts.get_or_create(&labels).inc();
    }

    /// Attempts counted under these labels (`tenant`, `webhook` as exported, so
    /// `_other` reads the overflow).
    pub fn webhook_attempts(&self, tenant: &str, webhook: &str, outcome: &str) -> u64 {
        let labels = vec![
            ("tenant", tenant.to_owned()),
            ("webhook", webhook.to_owned()),
            ("outcome", outcome.to_owned()),
        ];
        self.webhook_attempts.get(&labels).map_or(0, |c| c.get())
    }

    /// A delivered attempt, `seconds` after its event was received by the router.
    pub fn delivered_after(&self, seconds: f64) {
        self.e2e_seconds.observe(seconds.max(0.0));
        self.e2e_count
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many deliveries the end-to-end histogram has seen.
    pub fn delivered_after_count(&self) -> u64 {
        self.e2e_count.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The breaker of a webhook (by tenant and key) opened or closed.
    pub fn set_breaker_open(&self, tenant: &str, webhook: &str, open: bool) {
        let (labels, value) = self.seats.breaker(tenant, webhook, open);
        self.breaker_open.get_or_create(&labels).set(value);
    }

    /// How many ordering keys a failure blocks, as last sampled.
    pub fn set_keys_blocked(&self, n: i64) {
        self.keys_blocked.set(n);
    }

    /// The breaker gauge under these labels, as exported.
    pub fn breaker_open(&self, tenant: &str, webhook: &str) -> i64 {
        let labels = vec![
            ("tenant", tenant.to_owned()),
            ("webhook", webhook.to_owned()),
        ];
        self.breaker_open.get(&labels).map_or(0, |g| g.get())
    }

    /// One sample of what is pending: every pair in it is set, every pair of the
    /// previous sample missing from it is set to 0.
    pub fn set_pending(&self, samples: &[Pending]) {
        let folded = webhooks::fold(&self.seats, samples);
        let mut seen = self
            .pending_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for labels in seen.iter().filter(|l| !folded.contains_key(*l)) {
            self.pending.get_or_create(labels).set(0);
            self.pending_age.get_or_create(labels).set(0.0);
        }
        seen.clear();
        for (labels, (count, age)) in folded {
            self.pending
                .get_or_create(&labels)
                .set(i64::try_from(count).unwrap_or(i64::MAX));
            self.pending_age.get_or_create(&labels).set(age);
            seen.insert(labels);
        }
    }

    /// Pending count and oldest age under these labels, as exported.
    pub fn pending(&self, tenant: &str, webhook: &str) -> (i64, f64) {
        let labels = vec![
            ("tenant", tenant.to_owned()),
            ("webhook", webhook.to_owned()),
        ];
        (
            self.pending.get(&labels).map_or(0, |g| g.get()),
            self.pending_age.get(&labels).map_or(0.0, |g| g.get()),
        )
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
        m.dead_letter(
            "sender",
            &hookrelay_model::DeadLetterReason::RetriesExhausted,
        );
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

    #[test]
    fn webhook_series_are_labelled_by_tenant_and_key_up_to_the_cap() {
        let m = Metrics::with_max_webhooks(1);
        m.webhook_attempt("acme", "orders", attempt::DELIVERED, Some(0.02));
        m.webhook_attempt("acme", "billing", attempt::RETRY, Some(0.02));
        m.webhook_attempt("beta", "x", attempt::RETRY, Some(0.02));
        let text = m.render();
        assert!(
            text.contains(
                "hookrelay_webhook_attempts_total{tenant=\"acme\",webhook=\"orders\",outcome=\"delivered\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "hookrelay_webhook_attempts_total{tenant=\"_other\",webhook=\"_other\",outcome=\"retry\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "hookrelay_webhook_attempt_duration_seconds_bucket{le=\"0.025\",tenant=\"acme\",webhook=\"orders\"} 1"
            ) || text.contains(
                "hookrelay_webhook_attempt_duration_seconds_bucket{tenant=\"acme\",webhook=\"orders\",le=\"0.025\"} 1"
            ),
            "{text}"
        );
        assert_eq!(m.webhook_attempts("_other", "_other", attempt::RETRY), 2);
    }

    #[test]
    fn pending_pairs_missing_from_a_sample_drop_to_zero() {
        let m = Metrics::new();
        let one = |webhook: &str, count, age| Pending {
            tenant: "acme".into(),
            webhook: webhook.into(),
            count,
            oldest_age_seconds: age,
        };
        m.set_pending(&[one("a", 3, 12.5), one("b", 1, 2.0)]);
        assert_eq!(m.pending("acme", "a"), (3, 12.5));
        m.set_pending(&[one("b", 2, 4.0)]);
        assert_eq!(m.pending("acme", "a"), (0, 0.0));
        assert_eq!(m.pending("acme", "b"), (2, 4.0));
        let text = m.render();
        assert!(
            text.contains(
                "hookrelay_pending_oldest_age_seconds{tenant=\"acme\",webhook=\"b\"} 4.0"
            ),
            "{text}"
        );
    }

    #[test]
    fn every_series_is_named_before_it_has_a_value() {
        let m = Metrics::new();
        let names = m.series_names();
        for name in [
            "hookrelay_router_events_total",
            "hookrelay_sender_attempt_duration_seconds_bucket",
            "hookrelay_queue_messages",
            "hookrelay_pending_oldest_age_seconds",
            "hookrelay_webhook_breaker_open",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
        // Each named series is one the text shows once it has a value.
        m.set_breaker_open("a", "b", true);
        m.queue_depth("q", 1);
        let text = m.render();
        assert!(text.contains("\nhookrelay_webhook_breaker_open{"), "{text}");
        assert!(text.contains("\nhookrelay_queue_messages{"), "{text}");
    }

    #[test]
    fn the_breaker_gauge_is_one_while_open() {
        let m = Metrics::new();
        m.set_breaker_open("acme", "orders", true);
        assert!(
            m.render()
                .contains("hookrelay_webhook_breaker_open{tenant=\"acme\",webhook=\"orders\"} 1")
        );
        m.set_breaker_open("acme", "orders", false);
        assert_eq!(m.breaker_open("acme", "orders"), 0);
        m.delivered_after(0.3);
        assert_eq!(m.delivered_after_count(), 1);
        assert!(
            m.render()
                .contains("hookrelay_delivery_e2e_duration_seconds_bucket{le=\"0.5\"} 1")
        );
    }
}
