//! `hookrelay portal link|sessions|revoke|theme` and `hookrelay audit list`: customer
//! portal links, and the audit log of changes.

use anyhow::Context;
use clap::Subcommand;
use hookrelay_admin::portal::{self, Ask};
use hookrelay_model::config::parse_duration;
use hookrelay_model::portal::{Limits, Theme};
use hookrelay_store::{self as store, audit};

use super::{print, write_out};
use crate::config::{Common, Output, PortalArgs, cli_time};

#[derive(Debug, Subcommand)]
pub enum PortalCommand {
    /// Mint a single-use portal link for a tenant; prints it.
    Link {
        #[arg(long)]
        tenant: String,
        /// The session sees but changes nothing.
        #[arg(long)]
        read_only: bool,
        /// How long the link may wait to be opened (default HOOKRELAY_PORTAL_LINK_TTL).
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<std::time::Duration>,
        /// Only this webhook key (repeat for more); default: every one.
        #[arg(long = "webhook")]
        webhooks: Vec<String>,
        /// Only this event type (repeat for more); default: every type.
        #[arg(long = "event-type")]
        event_types: Vec<String>,
        #[command(flatten)]
        portal: PortalArgs,
        #[command(flatten)]
        output: Output,
    },
    /// A tenant's portal sessions and their state.
    Sessions {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        output: Output,
    },
    /// Revoke a portal session (or its unopened link) by id.
    Revoke {
        #[arg(long)]
        tenant: String,
        id: uuid::Uuid,
    },
    /// Set a tenant's own portal theme (unset values fall back to HOOKRELAY_PORTAL_*).
    Theme {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        logo_url: Option<String>,
        /// `#rgb` or `#rrggbb`.
        #[arg(long)]
        accent: Option<String>,
    },
}

pub async fn run(common: &Common, command: PortalCommand) -> anyhow::Result<()> {
    let pool = store::pool(&common.database_url, 2, store::Workload::Queries)?;
    let db = pool.get().await.context("connecting to Postgres")?;
    match command {
        PortalCommand::Link {
            tenant,
            read_only,
            ttl,
            webhooks,
            event_types,
            portal: settings,
            output,
        } => {
            let ask = Ask {
                read_only,
                link_ttl: ttl,
                session_ttl: None,
                limits: Limits {
                    webhook_keys: webhooks,
                    event_types,
                },
            };
            let minted = portal::mint(&db, &settings.links(), &tenant, ask, "cli", None).await?;
            if output.json {
                write_out(&serde_json::to_string_pretty(&minted)?);
            } else {
                write_out(&minted.url);
            }
        }
        PortalCommand::Sessions { tenant, output } => {
            let list = store::portal::list(&db, &tenant).await?;
            let rows = list
                .iter()
                .map(|s| {
                    vec![
                        s.id.to_string(),
                        s.state.to_owned(),
                        if s.read_only {
                            "read-only"
                        } else {
                            "read-write"
                        }
                        .to_owned(),
                        s.limits.webhook_keys.join(","),
                        s.limits.event_types.join(","),
                        s.created_by.clone(),
                        super::short_time(s.created_at),
                    ]
                })
                .collect();
            print(
                output.json,
                &list,
                &[
                    "ID",
                    "STATE",
                    "ACCESS",
                    "WEBHOOKS",
                    "EVENT TYPES",
                    "BY",
                    "CREATED",
                ],
                rows,
            );
        }
        PortalCommand::Revoke { tenant, id } => {
            store::portal::revoke(&db, &tenant, id).await?;
            write_out(&format!("revoked portal session {id} of tenant `{tenant}`"));
        }
        PortalCommand::Theme {
            tenant,
            name,
            logo_url,
            accent,
        } => {
            let theme = Theme {
                name,
                logo_url,
                accent,
            };
            store::portal::set_theme(&db, &tenant, &theme).await?;
            write_out(&serde_json::to_string_pretty(&theme)?);
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Changes made through the API, the console and the portal, newest first.
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// RFC 3339, a date, or a span ago (`1h`, `2d`).
        #[arg(long, value_parser = cli_time)]
        since: Option<time::OffsetDateTime>,
        #[arg(long, value_parser = cli_time)]
        until: Option<time::OffsetDateTime>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[command(flatten)]
        output: Output,
    },
}

pub async fn run_audit(common: &Common, command: AuditCommand) -> anyhow::Result<()> {
    let pool = store::pool(&common.database_url, 2, store::Workload::Queries)?;
    let db = pool.get().await.context("connecting to Postgres")?;
    let AuditCommand::List {
        tenant,
        since,
        until,
        limit,
        output,
    } = command;
    let filter = audit::AuditFilter {
        tenant,
        since,
        until,
    };
    let list = audit::list(&db, &filter, None, limit.clamp(1, 500)).await?;
    let rows = list
        .iter()
        .map(|e| {
            vec![
                super::short_time(e.at),
                e.tenant.clone().unwrap_or_default(),
                e.actor.clone(),
                e.via.clone(),
                format!("{} {}", e.method, e.path),
                e.status.to_string(),
            ]
        })
        .collect();
    print(
        output.json,
        &list,
        &["AT", "TENANT", "WHO", "VIA", "WHAT", "STATUS"],
        rows,
    );
    Ok(())
}
