//! Building and running a process: `Application::build(settings)` migrates, connects
//! and starts every role the settings name, binds the HTTP server and starts the
//! background loops, each under [`supervise`](crate::supervise); `run_until_stopped`
//! returns when asked to stop (after in-flight work finished) or when any task ends
//! on its own, which is an error.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hookrelay_admin::http::AdminState;
use hookrelay_admin::retention;
use hookrelay_amqp::ConnectRetry;
use hookrelay_metrics::Metrics;
use hookrelay_model::Topology;
use hookrelay_model::catalog::SchemaValidation;
use hookrelay_model::shutdown::{self, Shutdown, ShutdownTrigger};
use hookrelay_producer::{PublishError, Publisher};
use hookrelay_router::{Router, RouterConfig};
use hookrelay_sender::{Sender, SenderConfig};
use hookrelay_store::{self as store, Cipher, StoreError};

use crate::api::{self, ApiState};
pub use crate::supervise::TaskError as RunError;
use crate::supervise::Tasks;

/// How often queue depths (every process) and pending deliveries (the api role) are
/// sampled for `/metrics`.
const QUEUE_SAMPLE_EVERY: Duration = Duration::from_secs(15);

/// Which roles this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub api: bool,
    pub router: bool,
    pub sender: bool,
}

/// Everything a process needs to run, already parsed. The role crates state their
/// defaults (`RouterConfig::new`, `SenderConfig::new`); the binary's flags take
/// theirs from the same constants.
#[derive(Debug, Clone)]
pub struct Settings {
    pub amqp_url: String,
    pub database_url: String,
    pub topology: Topology,
    pub roles: Roles,
    pub http_addr: SocketAddr,
    /// Bearer token of the `/v1` routes; none: open, on loopback only.
    pub api_token: Option<String>,
    pub max_event_bytes: usize,
    /// Connections per pool: the router and sender share one, the api role has its own.
    pub database_pool_size: usize,
    /// Opens and seals webhook secrets (the api role).
    pub cipher: Cipher,
    pub router: RouterConfig,
    pub sender: SenderConfig,
    pub retention_days: i32,
    pub retention_interval: Duration,
    pub metrics_max_webhooks: usize,
    pub metrics_pending_lookback: Duration,
    /// Where portal links point and how long they last.
    pub portal_links: hookrelay_admin::portal::Links,
    /// The customer portal's theme and framing.
    pub portal: hookrelay_portal::Settings,
    /// Payloads checked against the event catalog at ingest (`enforce`); the
    /// router has its own copy in `router`.
    pub schema_validation: SchemaValidation,
}

/// Why a process could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "refusing to serve the API on {0} without HOOKRELAY_API_TOKEN: set a token or bind 127.0.0.1"
    )]
    OpenApiOffLoopback(SocketAddr),
    #[error("applying database migrations: {0}")]
    Migrate(#[source] StoreError),
    #[error("database pool: {0}")]
    Pool(#[source] StoreError),
    #[error("api: connecting to RabbitMQ: {0}")]
    Broker(#[source] PublishError),
    #[error("binding {addr} (HOOKRELAY_HTTP_ADDR): {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A started process: its roles, HTTP server and loops running.
pub struct Application {
    addr: SocketAddr,
    trigger: ShutdownTrigger,
    tasks: Tasks,
}

impl Application {
    /// Migrates, connects and starts every role; binds the HTTP server.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let roles = settings.roles;
        if roles.api && !settings.http_addr.ip().is_loopback() && settings.api_token.is_none() {
            return Err(StartupError::OpenApiOffLoopback(settings.http_addr));
        }
        store::migrate(&settings.database_url)
            .await
            .map_err(StartupError::Migrate)?;
        // Connections are opened when first needed: a process without the api role
        // never opens the first pool, one with only the api role never the second.
        let size = settings.database_pool_size;
        let pool = store::pool(&settings.database_url, size, store::Workload::Queries)
            .map_err(StartupError::Pool)?;
        let delivery_pool = store::pool(&settings.database_url, size, store::Workload::Delivery)
            .map_err(StartupError::Pool)?;
        let metrics = Arc::new(Metrics::with_max_webhooks(settings.metrics_max_webhooks));
        let (trigger, stop) = shutdown::channel();
        let mut tasks = Tasks::default();

        let publisher = match roles.api {
            true => Some(Arc::new(
                Publisher::connect(
                    &settings.amqp_url,
                    settings.topology.clone(),
                    ConnectRetry::default(),
                )
                .await
                .map_err(StartupError::Broker)?,
            )),
            false => None,
        };
        let consumers = start_consumers(&mut tasks, &settings, &delivery_pool, &metrics, &stop);
        start_samplers(&mut tasks, &settings, &metrics, &stop);
        let admin = roles.api.then(|| {
            start_api_loops(&mut tasks, &settings, &pool, &metrics, &stop);
            AdminState::new(
                pool.clone(),
                settings.cipher.clone(),
                settings.topology.clone(),
                settings.amqp_url.clone(),
                settings.retention_days,
            )
            .with_portal(settings.portal_links.clone())
        });
        let state = ApiState {
            publisher,
            admin,
            pool,
            api_token: settings.api_token.clone(),
            max_event_bytes: settings.max_event_bytes,
            metrics,
            consumers,
            portal: settings.portal.clone(),
            schema_validation: settings.schema_validation,
        };
        let addr = serve_http(&mut tasks, settings.http_addr, state, stop).await?;
        Ok(Self {
            addr,
            trigger,
            tasks,
        })
    }

    /// Where the HTTP server listens (its port chosen by the OS for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Runs until `stop` resolves, then lets every task finish; or until a task ends
    /// on its own, which stops the others and is returned.
    pub async fn run_until_stopped(
        mut self,
        stop: impl Future<Output = ()>,
    ) -> Result<(), RunError> {
        tokio::select! {
            () = stop => tracing::info!("stopping"),
            Some(ended) = self.tasks.first_end() => {
                tracing::error!(error = %ended, "stopping: a task ended on its own");
                self.trigger.trigger();
                // What the others say while stopping is logged by drain.
                let _ = self.tasks.drain().await;
                return Err(ended);
            }
        }
        self.trigger.trigger();
        self.tasks.drain().await?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The router and the sender, when asked for, and the re-planning they share.
fn start_consumers(
    tasks: &mut Tasks,
    settings: &Settings,
    pool: &store::DbPool,
    metrics: &Arc<Metrics>,
    stop: &Shutdown,
) -> Vec<&'static str> {
    let mut consumers = Vec::new();
    if settings.roles.router {
        consumers.push(hookrelay_router::ROLE);
        let router = Router::new(settings.router.clone(), pool.clone(), Arc::clone(metrics));
        let stop = stop.clone();
        tasks.spawn(
            hookrelay_router::ROLE,
            async move { router.run(stop).await },
        );
    }
    if settings.roles.sender {
        consumers.push(hookrelay_sender::ROLE);
        let sender = Sender::new(settings.sender.clone(), pool.clone(), Arc::clone(metrics));
        let stop = stop.clone();
        tasks.spawn(
            hookrelay_sender::ROLE,
            async move { sender.run(stop).await },
        );
    }
    if !consumers.is_empty() {
        tasks.spawn_loop(
            "statement re-planning",
            store::replan_as_tables_grow(pool.clone(), stop.clone()),
        );
    }
    consumers
}

/// Queue depths, sampled by every process.
fn start_samplers(tasks: &mut Tasks, settings: &Settings, metrics: &Arc<Metrics>, stop: &Shutdown) {
    let (url, topology, metrics, stop) = (
        settings.amqp_url.clone(),
        settings.topology.clone(),
        Arc::clone(metrics),
        stop.clone(),
    );
    tasks.spawn_loop("queue depth sampler", async move {
        hookrelay_metrics::sample_queue_depths(&url, &topology, &metrics, QUEUE_SAMPLE_EVERY, stop)
            .await;
    });
}

/// The api role's periodic database work: the pending gauges and retention.
fn start_api_loops(
    tasks: &mut Tasks,
    settings: &Settings,
    pool: &store::DbPool,
    metrics: &Arc<Metrics>,
    stop: &Shutdown,
) {
    let sampler = hookrelay_metrics::PendingSampler {
        every: QUEUE_SAMPLE_EVERY,
        lookback: settings.metrics_pending_lookback,
    };
    let (sample_pool, metrics, sample_stop) = (pool.clone(), Arc::clone(metrics), stop.clone());
    tasks.spawn_loop("pending sampler", async move {
        hookrelay_metrics::sample_pending(&sample_pool, &metrics, sampler, sample_stop).await;
    });
    let (pool, days, every, mut stop) = (
        pool.clone(),
        settings.retention_days,
        settings.retention_interval,
        stop.clone(),
    );
    tasks.spawn_loop("retention", async move {
        retention::run(pool, days, every, async move { stop.wait().await }).await;
    });
}

async fn serve_http(
    tasks: &mut Tasks,
    addr: SocketAddr,
    state: ApiState,
    mut stop: Shutdown,
) -> Result<SocketAddr, StartupError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartupError::Bind { addr, source })?;
    tasks.spawn("HTTP server", async move {
        axum::serve(listener, api::app(state))
            .with_graceful_shutdown(async move { stop.wait().await })
            .await
    });
    Ok(bound)
}
