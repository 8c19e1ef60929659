//! `hookrelay serve`: the flags made into [`Settings`], then the composition root
//! (`hookrelay_server::Application`) run until SIGTERM or Ctrl-C.

use hookrelay_router::RouterConfig;
use hookrelay_sender::{BreakerConfig, SenderConfig};
use hookrelay_server::{Application, Roles, Settings};

use crate::config::{Common, Role, ServeArgs};

pub async fn run(common: &Common, args: &ServeArgs) -> anyhow::Result<()> {
    // Listening from the first moment: a SIGTERM while migrating or waiting for the
    // broker stops cleanly (exit 0), not by the signal's default action.
    let mut stopping = std::pin::pin!(stop_signal());
    let settings = settings(common, args)?;
    let app = tokio::select! {
        built = Application::build(settings) => built?,
        () = &mut stopping => {
            tracing::info!("stopped during start-up");
            return Ok(());
        }
    };
    tracing::info!(roles = ?args.roles, addr = %app.addr(), "hookrelay running");
    app.run_until_stopped(stopping).await?;
    Ok(())
}

/// The settings of `serve`, from its flags and the shared ones.
pub fn settings(common: &Common, args: &ServeArgs) -> anyhow::Result<Settings> {
    let cipher = common.cipher()?;
    let mut router = RouterConfig::new(&common.amqp_url, common.topology());
    router.prefetch = args.router_prefetch;
    router.batch_size = args.router_batch_size;
    router.deliveries_per_message = usize::from(args.router_deliveries_per_message);
    router.max_event_bytes = args.max_event_bytes;
    router.schema_validation = args.schema_validation;
    let mut sender = SenderConfig::new(&common.amqp_url, common.topology(), common.schedule());
    sender.cipher = cipher.clone();
    sender.concurrency = args.sender_concurrency;
    sender.per_webhook_concurrency = args.per_webhook_concurrency;
    sender.slow_after = args.per_webhook_slow_after.0;
    sender.http_timeout = args.http_timeout.0;
    sender.amqp_destination_idle = args.amqp_destination_idle.0;
    sender.shutdown_grace = args.shutdown_grace.0;
    sender.disable_failing_after = args.disable_failing_after.0;
    sender.retry_sweep_after = args.retry_sweep_after.0;
    sender.breaker = BreakerConfig {
        failures: args.breaker_failures.0,
        hanging_after: args.breaker_hanging_after.0,
        cooldown: args.breaker_cooldown.0,
    };
    sender.destinations = hookrelay_sender::guard::Destinations {
        allow_private: args.allow_private_destinations,
        allowed: args.allowed_destinations.clone(),
    };
    // Parsed here, not by clap: clap's error would repeat the value, password and all.
    sender.egress_proxy = args
        .egress_proxy
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(str::parse::<hookrelay_sender::egress::EgressProxy>)
        .transpose()
        .map_err(|e| anyhow::anyhow!("HOOKRELAY_EGRESS_PROXY (--egress-proxy): {e}"))?;
    Ok(Settings {
        amqp_url: common.amqp_url.clone(),
        database_url: common.database_url.clone(),
        topology: common.topology(),
        roles: Roles {
            api: args.roles.contains(&Role::Api),
            router: args.roles.contains(&Role::Router),
            sender: args.roles.contains(&Role::Sender),
        },
        http_addr: args.http_addr,
        api_token: args.api_token.clone(),
        max_event_bytes: args.max_event_bytes,
        database_pool_size: args.database_pool_size,
        cipher,
        router,
        sender,
        retention_days: args.retention_days,
        retention_interval: args.retention_interval.0,
        metrics_max_webhooks: args.metrics_max_webhooks,
        metrics_pending_lookback: args.metrics_pending_lookback.0,
        portal_links: args.portal.links(),
        portal: args.portal.settings()?,
        schema_validation: args.schema_validation,
    })
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
