//! Settings from the command line and the environment: every knob has a flag and a
//! `HOOKRELAY_` variable. The commands' own arguments live with each command.

use std::net::SocketAddr;

use clap::{Args, ValueEnum};
use hookrelay_model::Topology;
use hookrelay_model::catalog::SchemaValidation;
use hookrelay_model::config::{self as defaults, Span, SpanList, SpanOrOff};
use hookrelay_model::retry::RetrySchedule;
use hookrelay_sender::{BreakerConfig, defaults as sender};

/// Settings every command shares.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// RabbitMQ URL, or the URLs of a cluster's nodes, comma-separated (tried in turn).
    #[arg(long, global = true, env = "HOOKRELAY_AMQP_URL", hide_env_values = true, default_value = defaults::DEFAULT_AMQP_URL)]
    pub amqp_url: String,
    /// Postgres URL; must name a database (`migrate` creates it if missing).
    #[arg(long, global = true, env = "HOOKRELAY_DATABASE_URL", hide_env_values = true, default_value = defaults::DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Prefix of every exchange and queue name.
    #[arg(long = "amqp-prefix", global = true, env = "HOOKRELAY_AMQP_PREFIX", default_value = defaults::DEFAULT_PREFIX)]
    pub prefix: String,
    /// Delays before each retry; their number is the number of retries.
    #[arg(long, global = true, env = "HOOKRELAY_RETRY_DELAYS", default_value_t = SpanList(RetrySchedule::default().delays))]
    pub retry_delays: SpanList,
    /// Longest `Retry-After` honoured.
    #[arg(long, global = true, env = "HOOKRELAY_RETRY_AFTER_MAX", default_value_t = Span(RetrySchedule::default().retry_after_max))]
    pub retry_after_max: Span,
    /// Key that encrypts webhook secrets at rest: base64 of 32 bytes. Every process
    /// that reads or writes webhooks needs the same one.
    #[arg(
        long,
        global = true,
        env = "HOOKRELAY_SECRET_KEY",
        hide_env_values = true
    )]
    pub secret_key: Option<String>,
    /// RabbitMQ management API (`http://user:password@host:15672`), for the unacked
    /// counts of `hookrelay queues`; without it they show as unknown.
    #[arg(
        long,
        global = true,
        env = "HOOKRELAY_RABBITMQ_MANAGEMENT_URL",
        hide_env_values = true
    )]
    pub rabbitmq_management_url: Option<String>,
    /// Log format: text for people, json for machines.
    #[arg(
        long,
        global = true,
        env = "HOOKRELAY_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Threads running the process's async work; the number of cores when not set.
    /// One per role process on a host shared with RabbitMQ and Postgres costs each
    /// delivery 12-20 % less CPU in the roles (docs/performance.md, 2026-12-07).
    #[arg(long, global = true, env = "HOOKRELAY_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
}

/// A positive count, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountOrOff(pub Option<u32>);

impl std::str::FromStr for CountOrOff {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(CountOrOff(None));
        }
        match s.parse::<u32>() {
            Ok(n) if n > 0 => Ok(CountOrOff(Some(n))),
            _ => Err(format!(
                "`{s}` is neither a positive whole number nor `off`"
            )),
        }
    }
}

impl std::fmt::Display for CountOrOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("off"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Common {
    pub fn schedule(&self) -> RetrySchedule {
        RetrySchedule {
            delays: self.retry_delays.0.clone(),
            retry_after_max: self.retry_after_max.0,
        }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.prefix, &self.retry_delays.0, self.retry_after_max.0)
    }

    /// Seals and opens webhook secrets with `HOOKRELAY_SECRET_KEY`, if set.
    pub fn cipher(&self) -> anyhow::Result<hookrelay_store::Cipher> {
        use anyhow::Context;
        hookrelay_store::Cipher::from_optional_key(self.secret_key.as_deref())
            .context("HOOKRELAY_SECRET_KEY")
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Roles to run in this process.
    #[arg(
        long,
        env = "HOOKRELAY_ROLES",
        default_value = "api,router,sender",
        value_delimiter = ','
    )]
    pub roles: Vec<Role>,
    /// HTTP address of this process: probes and /metrics always, ingest with the api role.
    #[arg(long, env = "HOOKRELAY_HTTP_ADDR", default_value = defaults::DEFAULT_HTTP_ADDR)]
    pub http_addr: SocketAddr,
    /// Bearer token required by /v1 routes; required to bind a non-loopback address.
    #[arg(long, env = "HOOKRELAY_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Largest accepted event (and ingest request body), in bytes.
    #[arg(long, env = "HOOKRELAY_MAX_EVENT_BYTES", default_value_t = hookrelay_model::envelope::DEFAULT_MAX_EVENT_BYTES)]
    pub max_event_bytes: usize,
    /// Timeout of one webhook request.
    #[arg(long, env = "HOOKRELAY_HTTP_TIMEOUT", default_value_t = Span(sender::HTTP_TIMEOUT))]
    pub http_timeout: Span,
    /// A connection to a webhook's broker (an amqp:// URL) is closed after this long
    /// without a publish.
    #[arg(long, env = "HOOKRELAY_AMQP_DESTINATION_IDLE", default_value_t = Span(sender::AMQP_DESTINATION_IDLE))]
    pub amqp_destination_idle: Span,
    /// Deliveries in flight at once per sender.
    #[arg(long, env = "HOOKRELAY_SENDER_CONCURRENCY", default_value_t = hookrelay_sender::DEFAULT_CONCURRENCY)]
    pub sender_concurrency: u16,
    /// Deliveries in flight at once to one webhook.
    #[arg(long, env = "HOOKRELAY_PER_WEBHOOK_CONCURRENCY", default_value_t = hookrelay_sender::DEFAULT_PER_WEBHOOK_CONCURRENCY)]
    pub per_webhook_concurrency: usize,
    /// A webhook whose oldest request in flight is older than this stops queueing
    /// deliveries in memory; they wait in a delay queue instead.
    #[arg(long, env = "HOOKRELAY_PER_WEBHOOK_SLOW_AFTER", default_value_t = Span(sender::SLOW_AFTER))]
    pub per_webhook_slow_after: Span,
    /// Let deliveries reach loopback, private and other non-public addresses (local
    /// stacks); by default they are refused (SSRF guard).
    #[arg(long, env = "HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_private_destinations: bool,
    /// Non-public networks deliveries may reach nonetheless, comma-separated CIDRs.
    #[arg(long, env = "HOOKRELAY_ALLOWED_DESTINATIONS", value_delimiter = ',')]
    pub allowed_destinations: Vec<ipnet::IpNet>,
    /// An HTTP CONNECT or SOCKS5 proxy every delivery leaves through,
    /// `http://[user:password@]host:port` or `socks5://[user:password@]host:port` (a
    /// fixed egress receivers can allow-list). The sender still resolves and checks
    /// each destination and asks the proxy for the checked address. Off by default.
    #[arg(long, env = "HOOKRELAY_EGRESS_PROXY", hide_env_values = true)]
    pub egress_proxy: Option<String>,
    /// Send a retry again from its row once it is this overdue (its delay-queue
    /// message late or lost); `off` never does.
    #[arg(long, env = "HOOKRELAY_RETRY_SWEEP_AFTER", default_value_t = SpanOrOff(sender::RETRY_SWEEP_AFTER))]
    pub retry_sweep_after: SpanOrOff,
    /// Disable a webhook once every delivery to it has failed for this long (at its
    /// next failure); `off` never does. A 410 Gone answer disables at once.
    #[arg(long, env = "HOOKRELAY_DISABLE_FAILING_AFTER", default_value_t = SpanOrOff(sender::DISABLE_FAILING_AFTER))]
    pub disable_failing_after: SpanOrOff,
    /// Failed attempts in a row (timeouts, refused connections, 408, 5xx) that open a
    /// webhook's circuit breaker; `off` never does.
    #[arg(long, env = "HOOKRELAY_BREAKER_FAILURES", default_value_t = CountOrOff(BreakerConfig::DEFAULT.failures))]
    pub breaker_failures: CountOrOff,
    /// A webhook at its cap of requests in flight whose oldest request sent has had
    /// no answer this long opens its breaker (waiting for a slot does not count, so
    /// it need not exceed the slow-after time); `off` never does.
    #[arg(long, env = "HOOKRELAY_BREAKER_HANGING_AFTER", default_value_t = SpanOrOff(BreakerConfig::DEFAULT.hanging_after))]
    pub breaker_hanging_after: SpanOrOff,
    /// How long an open breaker waits before its probe, and between probes.
    #[arg(long, env = "HOOKRELAY_BREAKER_COOLDOWN", default_value_t = Span(BreakerConfig::DEFAULT.cooldown))]
    pub breaker_cooldown: Span,
    /// Unacked events a router holds at once.
    #[arg(long, env = "HOOKRELAY_ROUTER_PREFETCH", default_value_t = hookrelay_router::DEFAULT_PREFETCH)]
    pub router_prefetch: u16,
    /// Events per router transaction at most; a router works on prefetch / batch
    /// size batches at once.
    #[arg(long, env = "HOOKRELAY_ROUTER_BATCH_SIZE", default_value_t = hookrelay_router::DEFAULT_BATCH_SIZE)]
    pub router_batch_size: usize,
    /// Deliveries one router → sender message carries at most (a batch's
    /// deliveries of one tenant share messages); 1: one message per delivery.
    #[arg(long, env = "HOOKRELAY_ROUTER_DELIVERIES_PER_MESSAGE", default_value_t = hookrelay_router::DEFAULT_DELIVERIES_PER_MESSAGE, value_parser = clap::value_parser!(u16).range(1..))]
    pub router_deliveries_per_message: u16,
    /// Postgres connections per pool: the router and sender share one, the api
    /// role has its own.
    #[arg(long, env = "HOOKRELAY_DATABASE_POOL_SIZE", default_value_t = 16)]
    pub database_pool_size: usize,
    /// Days an event (with its deliveries and attempts) is kept, unless its tenant
    /// sets its own period. Enforced by the api role.
    #[arg(long, env = "HOOKRELAY_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(i32).range(1..))]
    pub retention_days: i32,
    /// How often the api role deletes expired events.
    #[arg(long, env = "HOOKRELAY_RETENTION_INTERVAL", default_value = "1h")]
    pub retention_interval: Span,
    /// Tenant and webhook pairs that get metric series of their own; the rest are
    /// counted under `tenant="_other",webhook="_other"`.
    #[arg(long, env = "HOOKRELAY_METRICS_MAX_WEBHOOKS", default_value_t = hookrelay_metrics::DEFAULT_MAX_WEBHOOKS)]
    pub metrics_max_webhooks: usize,
    /// How far back the api role's pending gauges look for pending deliveries.
    #[arg(long, env = "HOOKRELAY_METRICS_PENDING_LOOKBACK", default_value = "1h")]
    pub metrics_pending_lookback: Span,
    #[command(flatten)]
    pub portal: PortalArgs,
    /// Checking event payloads against their type's JSON Schema in the event catalog:
    /// `off`; `warn` (delivered, logged without values and counted); `enforce` (a 400
    /// at the ingest API, dead-lettered by the router). Schemas are cached for 10 s.
    #[arg(long, env = "HOOKRELAY_SCHEMA_VALIDATION", default_value = "off")]
    pub schema_validation: SchemaValidation,
    /// How long in-flight work may take to finish after SIGTERM.
    #[arg(long, env = "HOOKRELAY_SHUTDOWN_GRACE", default_value_t = Span(sender::SHUTDOWN_GRACE))]
    pub shutdown_grace: Span,
}

/// The customer portal: where its links point, how long they last, its look and
/// who may frame it. `serve` and `hookrelay portal link` share them.
#[derive(Debug, Clone, Args)]
pub struct PortalArgs {
    /// The base URL customers reach the api role at; portal links start with it.
    #[arg(
        long,
        env = "HOOKRELAY_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
    /// How long a portal link may wait to be opened (at most 24h).
    #[arg(long, env = "HOOKRELAY_PORTAL_LINK_TTL", default_value_t = Span(hookrelay_model::portal::DEFAULT_LINK_TTL))]
    pub portal_link_ttl: Span,
    /// How long the portal session a link opens lasts (at most 24h).
    #[arg(long, env = "HOOKRELAY_PORTAL_SESSION_TTL", default_value_t = Span(hookrelay_model::portal::DEFAULT_SESSION_TTL))]
    pub portal_session_ttl: Span,
    /// Origins that may frame the portal, comma-separated CSP sources (`'self'`,
    /// `https://app.example`); `'none'`: no site may.
    #[arg(long, env = "HOOKRELAY_PORTAL_FRAME_ANCESTORS", default_value = "'self'", value_delimiter = ',', value_parser = frame_ancestor)]
    pub portal_frame_ancestors: Vec<String>,
    /// The organisation's name at the top of portal pages (a tenant's own wins).
    #[arg(long, env = "HOOKRELAY_PORTAL_NAME")]
    pub portal_name: Option<String>,
    /// An http(s) URL of the logo shown beside the name.
    #[arg(long, env = "HOOKRELAY_PORTAL_LOGO_URL")]
    pub portal_logo_url: Option<String>,
    /// The accent colour of portal pages: `#rgb` or `#rrggbb`.
    #[arg(long, env = "HOOKRELAY_PORTAL_ACCENT")]
    pub portal_accent: Option<String>,
}

fn frame_ancestor(s: &str) -> Result<String, String> {
    let s = s.trim();
    hookrelay_console::kit::headers::check_ancestor(s).map(|()| s.to_owned())
}

impl PortalArgs {
    pub fn links(&self) -> hookrelay_admin::portal::Links {
        hookrelay_admin::portal::Links {
            public_url: self.public_url.clone(),
            link_ttl: self.portal_link_ttl.0,
            session_ttl: self.portal_session_ttl.0,
        }
    }

    /// The portal's settings, its theme checked.
    pub fn settings(&self) -> anyhow::Result<hookrelay_portal::Settings> {
        let theme = hookrelay_model::portal::Theme {
            name: self.portal_name.clone(),
            logo_url: self.portal_logo_url.clone(),
            accent: self.portal_accent.clone(),
        };
        theme.check().map_err(|e| {
            let variable = match e.field.as_str() {
                "logo_url" => "HOOKRELAY_PORTAL_LOGO_URL",
                "accent" => "HOOKRELAY_PORTAL_ACCENT",
                _ => "HOOKRELAY_PORTAL_NAME",
            };
            anyhow::anyhow!("{variable}: {}", e.problem)
        })?;
        let ancestors = self
            .portal_frame_ancestors
            .iter()
            .filter(|a| a.as_str() != "'none'")
            .cloned()
            .collect();
        Ok(hookrelay_portal::Settings {
            theme,
            frame_ancestors: ancestors,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    Api,
    Router,
    Sender,
}

/// `--json` on read commands.
#[derive(Debug, Clone, Copy, Args)]
pub struct Output {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `--since` and `--until`: RFC 3339, a date, or a span ago (`1h`, `2d`), from now.
pub fn cli_time(s: &str) -> Result<time::OffsetDateTime, String> {
    hookrelay_model::config::parse_time_at(s, time::OffsetDateTime::now_utc())
}
