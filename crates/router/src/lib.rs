//! The router: consumes `{prefix}.router`, de-duplicates events by (tenant, id) in
//! Postgres and fans each new event out to one delivery message per matching webhook.
//!
//! Architecture invariant: the router never performs HTTP. An event is acked only after
//! its delivery rows are committed and every delivery message is confirmed.

mod consume;
mod lead;
mod route;
mod turn;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use hookrelay_metrics::Metrics;
use hookrelay_model::Topology;
use hookrelay_model::catalog::SchemaValidation;
use hookrelay_model::shutdown::Shutdown;
use hookrelay_store::event_types::{SCHEMA_CACHE_TTL, Schemas};

pub use consume::run;

/// Unacked events a router holds unless configured (`HOOKRELAY_ROUTER_PREFETCH`).
pub const DEFAULT_PREFETCH: u16 = 200;
/// Events per transaction at most unless configured (`HOOKRELAY_ROUTER_BATCH_SIZE`).
/// The router works on prefetch / batch size batches at once.
pub const DEFAULT_BATCH_SIZE: usize = 100;
/// Deliveries one router → sender message carries at most unless configured
/// (`HOOKRELAY_ROUTER_DELIVERIES_PER_MESSAGE`).
pub const DEFAULT_DELIVERIES_PER_MESSAGE: u16 = 50;

/// Everything the router role needs besides the database pool.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    pub amqp_url: String,
    pub topology: Topology,
    /// Unacked events the broker may hand this router at once.
    pub prefetch: u16,
    /// Events handled in one database transaction at most; prefetch / batch size
    /// batches are handled at once.
    pub batch_size: usize,
    /// How long to wait for more events to fill a batch. Zero takes what the broker has
    /// already handed over: under load batches fill by themselves, and at low rates no
    /// event waits for company.
    pub batch_wait: Duration,
    /// A batch's deliveries of one tenant share broker messages, this many to each
    /// at most; 1 publishes one message per delivery (what senders of releases
    /// before batches read).
    pub deliveries_per_message: usize,
    pub max_event_bytes: usize,
    /// Whether payloads are checked against their type's schema in the event catalog
    /// (`HOOKRELAY_SCHEMA_VALIDATION`): `enforce` dead-letters an event that breaks
    /// it, `warn` logs and counts it and routes it as usual.
    pub schema_validation: SchemaValidation,
    /// Test hook: simulate a crash at a chosen point. Never set in production.
    #[doc(hidden)]
    pub fault: Option<Fault>,
}

impl RouterConfig {
    pub fn new(amqp_url: impl Into<String>, topology: Topology) -> Self {
        Self {
            amqp_url: amqp_url.into(),
            topology,
            prefetch: DEFAULT_PREFETCH,
            batch_size: DEFAULT_BATCH_SIZE,
            batch_wait: Duration::ZERO,
            deliveries_per_message: usize::from(DEFAULT_DELIVERIES_PER_MESSAGE),
            max_event_bytes: hookrelay_model::envelope::DEFAULT_MAX_EVENT_BYTES,
            schema_validation: SchemaValidation::Off,
            fault: None,
        }
    }
}

/// Points where a test can make the router stop dead, as a kill -9 would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// After the delivery rows are committed, before any delivery is published.
    CrashAfterCommit,
    /// The first try of each batch commits, then fails as if the commit's answer had
    /// been lost on the way (a dropped connection): the batch is tried again.
    LoseCommitAnswer,
}

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("injected fault {0:?}")]
    Injected(Fault),
}

/// The handle `run` needs: config, database, metrics.
#[derive(Clone)]
pub struct Router {
    pub config: Arc<RouterConfig>,
    pub pool: Pool,
    pub metrics: Arc<Metrics>,
    /// The catalog's compiled schemas, unless validation is off.
    schemas: Option<Arc<Schemas>>,
}

/// The role name in metrics and logs.
pub const ROLE: &str = "router";

impl Router {
    pub fn new(config: RouterConfig, pool: Pool, metrics: Arc<Metrics>) -> Self {
        let schemas = (config.schema_validation != SchemaValidation::Off)
            .then(|| Arc::new(Schemas::new(pool.clone(), SCHEMA_CACHE_TTL)));
        Self {
            config: Arc::new(config),
            pool,
            metrics,
            schemas,
        }
    }

    /// Runs until `shutdown` fires.
    pub async fn run(&self, shutdown: Shutdown) -> Result<(), RouterError> {
        run(self.clone(), shutdown).await
    }
}
