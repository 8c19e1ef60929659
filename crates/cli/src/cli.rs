//! The command line: `hookrelay <command>`, the commands' arguments and the settings
//! they share (`config`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hookrelay_model::config::parse_duration;

use crate::commands::{
    deliveries, dlq, environments, event_types, events, portal, stats, tenants, tokens, webhooks,
};
use crate::config::{Common, Output, ServeArgs};

#[derive(Debug, Parser)]
#[command(
    name = "hookrelay",
    version,
    about = "Durable, queue-backed webhook delivery"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the database if missing and apply migrations.
    Migrate,
    /// Run roles: api (ingest and health), router, sender.
    Serve(ServeArgs),
    /// Publish events from a JSON file (one envelope or an array; `-` for stdin).
    Publish {
        #[arg(long, short)]
        file: PathBuf,
        /// Largest event the router accepts; larger ones are refused here.
        #[arg(long, env = "HOOKRELAY_MAX_EVENT_BYTES", default_value_t = hookrelay_model::envelope::DEFAULT_MAX_EVENT_BYTES)]
        max_event_bytes: usize,
        #[command(flatten)]
        output: crate::config::Output,
    },
    /// Manage webhooks.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Manage environments and their URL variables.
    #[command(subcommand)]
    Environments(environments::EnvironmentsCommand),
    /// Delivery logs (every attempt) and manual redelivery.
    #[command(subcommand)]
    Deliveries(deliveries::DeliveriesCommand),
    /// A tenant's stored events, and the retention purge.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// Per-tenant settings: the retention period.
    #[command(subcommand)]
    Tenants(tenants::TenantsCommand),
    /// Tokens that open one tenant's API routes (the events API for an embed).
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Customer portal links: mint, list, revoke; a tenant's portal theme.
    #[command(subcommand)]
    Portal(portal::PortalCommand),
    /// The audit log: every change made through the API, the console and the portal.
    #[command(subcommand)]
    Audit(portal::AuditCommand),
    /// The event catalog: event types with their payload schema and example.
    #[command(subcommand)]
    EventTypes(event_types::EventTypesCommand),
    /// The dead-letter queue: list, show, replay, purge.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Per tenant and webhook: deliveries of the last hour and day by status, and
    /// the dead letters waiting.
    Stats(stats::StatsArgs),
    /// Messages waiting in each of hookrelay's queues (the dead-letter queue
    /// included): ready, and unacked (with HOOKRELAY_RABBITMQ_MANAGEMENT_URL).
    Queues {
        #[command(flatten)]
        output: Output,
    },
    /// Exit 0 when the URL answers 200 (container health checks).
    Probe {
        #[arg(default_value = "http://127.0.0.1:8080/readyz")]
        url: String,
        #[arg(long, default_value = "3s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Print the HTTP API's OpenAPI document (docs/openapi.json), or the event
    /// envelope's JSON Schema (docs/event-envelope.schema.json).
    Openapi {
        /// Print the event envelope's JSON Schema instead.
        #[arg(long)]
        envelope_schema: bool,
    },
    /// Run a small receiver that logs every webhook it gets (for demos and compose).
    Receiver {
        #[arg(
            long,
            env = "HOOKRELAY_RECEIVER_ADDR",
            default_value = "127.0.0.1:9000"
        )]
        addr: SocketAddr,
    },
}
