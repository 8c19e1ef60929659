//! What every module of the sender shares: its settings and their defaults, the
//! handle a sender runs with, its errors and its name. Modules reach these here, not
//! through the crate root (which only declares, re-exports and starts the role).

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use hookrelay_metrics::Metrics;
use hookrelay_model::Topology;
use hookrelay_model::retry::RetrySchedule;

/// Deliveries a sender has in flight at once unless configured
/// (`HOOKRELAY_SENDER_CONCURRENCY`): throughput is about this over the receivers'
/// latency, and a task in flight costs a few KiB.
pub const DEFAULT_CONCURRENCY: u16 = 256;

/// Requests in flight to one webhook per sender unless configured
/// (`HOOKRELAY_PER_WEBHOOK_CONCURRENCY`) or set on the webhook (`max_in_flight`): an
/// eighth of the concurrency, so a slow endpoint holds at most that share of the
/// slots while it is deferred and its breaker trips.
pub const DEFAULT_PER_WEBHOOK_CONCURRENCY: usize = 32;

/// The defaults of what operators may set (each flag of `hookrelay serve` takes its
/// default from here; docs/configuration.md lists them).
pub mod defaults {
    use std::time::Duration;

    /// `HOOKRELAY_HTTP_TIMEOUT`
    pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
    /// `HOOKRELAY_PER_WEBHOOK_SLOW_AFTER`
    pub const SLOW_AFTER: Duration = Duration::from_secs(1);
    /// `HOOKRELAY_SHUTDOWN_GRACE`
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
    /// `HOOKRELAY_DISABLE_FAILING_AFTER`: five days.
    pub const DISABLE_FAILING_AFTER: Option<Duration> = Some(Duration::from_secs(5 * 24 * 3600));
    /// `HOOKRELAY_AMQP_DESTINATION_IDLE`: a connection to a webhook's broker is
    /// closed after this long without a publish.
    pub const AMQP_DESTINATION_IDLE: Duration = Duration::from_secs(60);
    /// `HOOKRELAY_RETRY_SWEEP_AFTER`
    pub const RETRY_SWEEP_AFTER: Option<Duration> = Some(Duration::from_secs(300));
}

#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub amqp_url: String,
    pub topology: Topology,
    pub schedule: RetrySchedule,
    /// Deliveries in flight at once (the consumer prefetch is half as much again, for
    /// finished deliveries whose coalesced ack has not gone out yet).
    pub concurrency: u16,
    /// Deliveries in flight to one webhook at once. More wait for a slot while the
    /// webhook answers within `slow_after`; past that they go to a delay queue, so a
    /// slow endpoint cannot take every slot.
    pub per_webhook_concurrency: usize,
    pub slow_after: Duration,
    /// How long a deferred delivery waits before it is tried again.
    pub defer_delay: Duration,
    /// How long a POST, or a publish to a webhook's broker up to its confirm, may take.
    pub http_timeout: Duration,
    /// A connection to a webhook's broker (an `amqp://` URL) is closed after this
    /// long without a publish.
    pub amqp_destination_idle: Duration,
    /// Bytes of a response body kept in the attempt log.
    pub response_snippet_bytes: usize,
    /// How long in-flight deliveries may take to finish at shutdown.
    pub shutdown_grace: Duration,
    /// A webhook failing every delivery for this long is disabled at its next
    /// failure; `None` never disables for that.
    pub disable_failing_after: Option<Duration>,
    /// How often one process asks whether a failing webhook has failed for that long.
    pub disable_check_every: Duration,
    /// How often a sender looks for disabled webhooks whose announcement did not go
    /// out (it also looks at every start).
    pub announce_every: Duration,
    /// Where deliveries may go: public addresses only, unless allowed here.
    pub destinations: crate::guard::Destinations,
    /// The HTTP CONNECT proxy every delivery leaves through (`HOOKRELAY_EGRESS_PROXY`);
    /// `None` connects directly. The guard checks destinations either way.
    pub egress_proxy: Option<crate::egress::EgressProxy>,
    /// Opens the stored webhook secrets (`HOOKRELAY_SECRET_KEY`).
    pub cipher: hookrelay_store::Cipher,
    /// When a webhook's circuit breaker trips, and how long it stays open.
    pub breaker: BreakerConfig,
    /// A retry this much overdue (its delay-queue message late or lost) is sent
    /// again from its row; `None` never does.
    pub retry_sweep_after: Option<Duration>,
}

impl SenderConfig {
    pub fn new(amqp_url: impl Into<String>, topology: Topology, schedule: RetrySchedule) -> Self {
        Self {
            amqp_url: amqp_url.into(),
            topology,
            schedule,
            concurrency: DEFAULT_CONCURRENCY,
            per_webhook_concurrency: DEFAULT_PER_WEBHOOK_CONCURRENCY,
            slow_after: defaults::SLOW_AFTER,
            defer_delay: Duration::from_secs(1),
            http_timeout: defaults::HTTP_TIMEOUT,
            amqp_destination_idle: defaults::AMQP_DESTINATION_IDLE,
            response_snippet_bytes: 1024,
            shutdown_grace: defaults::SHUTDOWN_GRACE,
            destinations: crate::guard::Destinations::default(),
            egress_proxy: None,
            disable_failing_after: defaults::DISABLE_FAILING_AFTER,
            disable_check_every: Duration::from_secs(60),
            announce_every: Duration::from_secs(60),
            cipher: hookrelay_store::Cipher::none(),
            breaker: BreakerConfig::default(),
            retry_sweep_after: defaults::RETRY_SWEEP_AFTER,
        }
    }
}

/// What a round of a sender's background loops (breaker probes, rate releases, the
/// retry sweep) can fail on: each logs it and tries again next round.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoopError {
    #[error(transparent)]
    Store(#[from] hookrelay_store::StoreError),
    #[error(transparent)]
    Broker(#[from] hookrelay_amqp::AmqpError),
}

impl From<deadpool_postgres::PoolError> for LoopError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Store(e.into())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error(transparent)]
    HttpClient(#[from] crate::request::ClientError),
}

#[derive(Clone)]
pub struct Sender {
    pub config: Arc<SenderConfig>,
    pub pool: Pool,
    pub metrics: Arc<Metrics>,
}

/// The role name in metrics and logs.
pub const ROLE: &str = "sender";

impl Sender {
    pub fn new(config: SenderConfig, pool: Pool, metrics: Arc<Metrics>) -> Self {
        Self {
            config: Arc::new(config),
            pool,
            metrics,
        }
    }
}

/// When a webhook's breaker trips, and how long it stays open before a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failed attempts in a row (timeouts, refused connections, 408 and 5xx answers)
    /// that trip it; `None`: failures never do.
    pub failures: Option<u32>,
    /// At its cap of requests in flight, the oldest sent and unanswered this long
    /// trips it (time spent waiting for a slot does not count); `None`: hanging
    /// never does.
    pub hanging_after: Option<Duration>,
    /// How long it stays open before a probe, and between probes.
    pub cooldown: Duration,
}

impl BreakerConfig {
    /// The defaults of `HOOKRELAY_BREAKER_FAILURES`, `_HANGING_AFTER` and `_COOLDOWN`.
    pub const DEFAULT: Self = Self {
        failures: Some(10),
        hanging_after: Some(Duration::from_secs(2)),
        cooldown: Duration::from_secs(30),
    };
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}
