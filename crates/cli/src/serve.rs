//! `hookrelay serve`: runs the chosen roles in one process until SIGTERM or Ctrl-C,
//! with one HTTP server for probes, metrics and (with the api role) ingest.

use std::sync::Arc;

use anyhow::{Context, bail};
use hookrelay_admin::http::AdminState;
use hookrelay_admin::retention;
use hookrelay_amqp::ConnectRetry;
use hookrelay_metrics::Metrics;
use hookrelay_model::shutdown::{self, Shutdown};
use hookrelay_producer::Publisher;
use hookrelay_router::{Router, RouterConfig};
use hookrelay_sender::{Sender, SenderConfig};
use hookrelay_store as store;
use tokio::task::JoinSet;

use crate::api::{self, ApiState};
use crate::config::{Common, Role, ServeArgs};

/// How often queue depths (every process) and pending deliveries (the api role) are
/// sampled for `/metrics`.
const QUEUE_SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

pub async fn run(common: &Common, args: &ServeArgs) -> anyhow::Result<()> {
    // Listening from the first moment: a SIGTERM while migrating or waiting for the
    // broker stops cleanly (exit 0), not by the signal's default action.
    let mut stopping = std::pin::pin!(stop_signal());
    let (trigger, mut roles) = tokio::select! {
        started = start(common, args) => started?,
        () = &mut stopping => {
            tracing::info!("stopped during start-up");
            return Ok(());
        }
    };
    tracing::info!(roles = ?args.roles, addr = %args.http_addr, "hookrelay running");

    tokio::select! {
        () = &mut stopping => tracing::info!("stopping"),
        Some(done) = roles.join_next() => {
            trigger.trigger();
            done.context("a role panicked")??;
            bail!("a role stopped unexpectedly");
        }
    }
    trigger.trigger();
    while let Some(done) = roles.join_next().await {
        done.context("a role panicked")??;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Migrates, connects and starts every role; returns what stops them and their tasks.
async fn start(
    common: &Common,
    args: &ServeArgs,
) -> anyhow::Result<(shutdown::ShutdownTrigger, JoinSet<anyhow::Result<()>>)> {
    let api_role = args.roles.contains(&Role::Api);
    if api_role && !args.http_addr.ip().is_loopback() && args.api_token.is_none() {
        bail!(
            "refusing to serve the API on {} without HOOKRELAY_API_TOKEN: set a token or bind 127.0.0.1",
            args.http_addr
        );
    }
    store::migrate(&common.database_url)
        .await
        .context("applying database migrations")?;
    // Connections are opened when first needed: a process without the api role
    // never opens the first pool, one with only the api role never the second.
    let pool = store::pool(
        &common.database_url,
        args.database_pool_size,
        store::Workload::Queries,
    )?;
    let delivery_pool = store::pool(
        &common.database_url,
        args.database_pool_size,
        store::Workload::Delivery,
    )?;
    let metrics = Arc::new(Metrics::with_max_webhooks(args.metrics_max_webhooks));
    let (trigger, stop) = shutdown::channel();
    let mut roles = JoinSet::new();

    let publisher = if api_role {
        let p = Publisher::connect(&common.amqp_url, common.topology(), ConnectRetry::default())
            .await
            .context("api: connecting to RabbitMQ")?;
        Some(Arc::new(p))
    } else {
        None
    };
    let mut consumers = Vec::new();
    for role in &args.roles {
        match role {
            Role::Api => {}
            Role::Router => {
                consumers.push(hookrelay_router::ROLE);
                spawn_router(
                    &mut roles,
                    common,
                    args,
                    delivery_pool.clone(),
                    Arc::clone(&metrics),
                    stop.clone(),
                );
            }
            Role::Sender => {
                consumers.push(hookrelay_sender::ROLE);
                spawn_sender(
                    &mut roles,
                    common,
                    args,
                    delivery_pool.clone(),
                    Arc::clone(&metrics),
                    stop.clone(),
                )?;
            }
        }
    }
    if !consumers.is_empty() {
        tokio::spawn(store::replan_as_tables_grow(
            delivery_pool.clone(),
            stop.clone(),
        ));
    }
    {
        let (url, topology, metrics, stop) = (
            common.amqp_url.clone(),
            common.topology(),
            Arc::clone(&metrics),
            stop.clone(),
        );
        tokio::spawn(async move {
            hookrelay_metrics::sample_queue_depths(
                &url,
                &topology,
                &metrics,
                QUEUE_SAMPLE_EVERY,
                stop,
            )
            .await;
        });
    }
    let admin = match api_role {
        true => Some(
            AdminState::new(
                pool.clone(),
                common.cipher()?,
                common.topology(),
                common.amqp_url.clone(),
                args.retention_days,
            )
            .with_portal(args.portal.links()),
        ),
        false => None,
    };
    if api_role {
        // One role samples what is pending from the database: the api role, which
        // runs the other periodic database work (retention).
        let (pool, metrics, stop) = (pool.clone(), Arc::clone(&metrics), stop.clone());
        let sampler = hookrelay_metrics::PendingSampler {
            every: QUEUE_SAMPLE_EVERY,
            lookback: args.metrics_pending_lookback,
        };
        tokio::spawn(async move {
            hookrelay_metrics::sample_pending(&pool, &metrics, sampler, stop).await;
        });
    }
    if api_role {
        let (pool, days, every, mut stop) = (
            pool.clone(),
            args.retention_days,
            args.retention_interval,
            stop.clone(),
        );
        tokio::spawn(async move {
            retention::run(pool, days, every, async move { stop.wait().await }).await;
        });
    }
    let state = ApiState {
        publisher,
        admin,
        pool,
        api_token: args.api_token.clone(),
        max_event_bytes: args.max_event_bytes,
        metrics,
        consumers,
        portal: args.portal.settings()?,
        schema_validation: args.schema_validation,
    };
    spawn_http(&mut roles, args, state, stop).await?;
    Ok((trigger, roles))
}

async fn spawn_http(
    roles: &mut JoinSet<anyhow::Result<()>>,
    args: &ServeArgs,
    state: ApiState,
    mut stop: Shutdown,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding {} (HOOKRELAY_HTTP_ADDR)", args.http_addr))?;
    roles.spawn(async move {
        axum::serve(listener, api::app(state))
            .with_graceful_shutdown(async move { stop.wait().await })
            .await
            .context("HTTP server failed")
    });
    Ok(())
}

fn spawn_router(
    roles: &mut JoinSet<anyhow::Result<()>>,
    common: &Common,
    args: &ServeArgs,
    pool: store::DbPool,
    metrics: Arc<Metrics>,
    stop: Shutdown,
) {
    let mut config = RouterConfig::new(&common.amqp_url, common.topology());
    config.prefetch = args.router_prefetch;
    config.batch_size = args.router_batch_size;
    config.max_event_bytes = args.max_event_bytes;
    config.schema_validation = args.schema_validation;
    let router = Router::new(config, pool, metrics);
    roles.spawn(async move { router.run(stop).await.context("router failed") });
}

fn spawn_sender(
    roles: &mut JoinSet<anyhow::Result<()>>,
    common: &Common,
    args: &ServeArgs,
    pool: store::DbPool,
    metrics: Arc<Metrics>,
    stop: Shutdown,
) -> anyhow::Result<()> {
    let mut config = SenderConfig::new(&common.amqp_url, common.topology(), common.schedule());
    config.cipher = common.cipher()?;
    config.concurrency = args.sender_concurrency;
    config.per_webhook_concurrency = args.per_webhook_concurrency;
    config.slow_after = args.per_webhook_slow_after;
    config.http_timeout = args.http_timeout;
    config.shutdown_grace = args.shutdown_grace;
    config.disable_failing_after = args.disable_failing_after.0;
    config.retry_sweep_after = args.retry_sweep_after.0;
    config.breaker = hookrelay_sender::BreakerConfig {
        failures: args.breaker_failures.0,
        hanging_after: args.breaker_hanging_after.0,
        cooldown: args.breaker_cooldown,
    };
    config.destinations = hookrelay_sender::guard::Destinations {
        allow_private: args.allow_private_destinations,
        allowed: args.allowed_destinations.clone(),
    };
    let sender = Sender::new(config, pool, metrics);
    roles.spawn(async move { sender.run(stop).await.context("sender failed") });
    Ok(())
}

/// SIGTERM (orchestrators) or Ctrl-C (people). The SIGTERM handler is registered
/// when this is called, not when first awaited.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
