//! `hookrelay events list|show|purge`: a tenant's stored events, and the retention
//! purge (the api role runs the same purge in the background).

use anyhow::Context;
use clap::Subcommand;
use hookrelay_admin::retention;
use hookrelay_store::{self as store, events};
use time::OffsetDateTime;

use super::{print, write_out};
use crate::config::{Common, Output};

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// A tenant's events, newest first.
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long = "session")]
        session_id: Option<String>,
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Received at or after: RFC 3339, a date (`2026-11-23`) or a span ago (`90m`, `2d`).
        #[arg(long, value_parser = crate::config::cli_time)]
        since: Option<OffsetDateTime>,
        /// Received before: RFC 3339, a date or a span ago.
        #[arg(long, value_parser = crate::config::cli_time)]
        until: Option<OffsetDateTime>,
        /// The `next_cursor` of the previous page.
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[command(flatten)]
        output: Output,
    },
    /// One event: its envelope as stored.
    Show {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        output: Output,
    },
    /// Delete events past their tenant's retention period, with their deliveries
    /// and attempts.
    Purge {
        /// Show what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Apply retention as of this time (RFC 3339, a date or a span ago) instead of now.
        #[arg(long, value_parser = crate::config::cli_time)]
        as_of: Option<OffsetDateTime>,
        /// Retention of tenants without their own period.
        #[arg(long, env = "HOOKRELAY_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(i32).range(1..))]
        retention_days: i32,
        #[command(flatten)]
        output: Output,
    },
}

pub async fn run(common: &Common, command: EventsCommand) -> anyhow::Result<()> {
    let pool = store::pool(&common.database_url, 2, store::Workload::Queries)?;
    match command {
        EventsCommand::List {
            tenant,
            session_id,
            event_type,
            since,
            until,
            cursor,
            limit,
            output,
        } => {
            let filter = events::EventFilter {
                session_id,
                event_type,
                since,
                until,
            };
            let after = cursor.as_deref().map(events::Cursor::decode).transpose()?;
            let db = pool.get().await.context("connecting to Postgres")?;
            let page = events::list(&db, &tenant, &filter, after.as_ref(), limit).await?;
            if page.is_empty() {
                store::tenants::known(&db, &tenant).await?;
            }
            let rows = page
                .iter()
                .map(|e| {
                    vec![
                        e.id.clone(),
                        e.event_type.clone(),
                        e.session_id.clone().unwrap_or_else(|| "-".into()),
                        super::short_time(e.received_at),
                    ]
                })
                .collect();
            print(
                output.json,
                &page,
                &["EVENT", "TYPE", "SESSION", "RECEIVED"],
                rows,
            );
            if let (false, Some(last)) = (output.json, page.last())
                && page.len() as i64 == limit
            {
                eprintln!("next page: --cursor {}", events::Cursor::of(last).encode());
            }
        }
        EventsCommand::Show { tenant, id, output } => {
            // The default adds a line of what and when above the envelope as stored.
            let db = pool.get().await.context("connecting to Postgres")?;
            let event = events::find(&db, &tenant, &id).await?;
            if !output.json {
                write_out(&format!(
                    "event `{}` of tenant `{}`, type `{}`, received {}:",
                    event.id,
                    event.tenant,
                    event.event_type,
                    super::short_time(event.received_at)
                ));
            }
            write_out(&serde_json::to_string_pretty(&event)?);
        }
        EventsCommand::Purge {
            dry_run,
            as_of,
            retention_days,
            output,
        } => {
            let now = as_of.unwrap_or_else(OffsetDateTime::now_utc);
            let plan = retention::plan(&pool, now, retention_days).await?;
            if !dry_run {
                retention::purge(&pool, now, retention_days).await?;
            }
            let rows = plan
                .iter()
                .map(|p| {
                    vec![
                        p.tenant.clone(),
                        p.retention_days.to_string(),
                        super::short_time(p.cutoff),
                        p.events.to_string(),
                        p.deliveries.to_string(),
                        p.attempts.to_string(),
                    ]
                })
                .collect();
            print(
                output.json,
                &plan,
                &[
                    "TENANT",
                    "DAYS",
                    "RECEIVED BEFORE",
                    "EVENTS",
                    "DELIVERIES",
                    "ATTEMPTS",
                ],
                rows,
            );
            if !output.json {
                let verb = if dry_run { "would delete" } else { "deleted" };
                let total: i64 = plan.iter().map(|p| p.events).sum();
                eprintln!("{verb} {total} events");
            }
        }
    }
    Ok(())
}
