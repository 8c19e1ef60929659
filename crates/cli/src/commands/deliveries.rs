//! `hookrelay deliveries list|show|redeliver|backfill|resume-key|skip-key`: delivery
//! logs with every attempt, manual redelivery and blocked ordering keys (the same
//! code as the admin API's).

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use hookrelay_admin::{backfill, redeliver};
use hookrelay_amqp::{self as amqp, ConnectRetry};
use hookrelay_store::deliveries::{self, DeliveryFilter, DeliveryStatus};
use hookrelay_store::{self as store, webhooks};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{print, write_out};
use crate::config::{Common, Output};

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// A tenant's deliveries, oldest first, with the answers of every attempt.
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long = "event")]
        event_id: Option<String>,
        /// Webhook id or key.
        #[arg(long)]
        webhook: Option<String>,
        #[arg(long, value_parser = parse_status)]
        status: Option<DeliveryStatus>,
        /// Created at or after: RFC 3339, a date (`2026-11-23`) or a span ago (`90m`, `2d`).
        #[arg(long, value_parser = crate::config::cli_time)]
        since: Option<OffsetDateTime>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[command(flatten)]
        output: Output,
    },
    /// One delivery with every attempt.
    Show {
        #[arg(long)]
        tenant: String,
        id: Uuid,
        #[command(flatten)]
        output: Output,
    },
    /// A fresh round of attempts for one failed delivery, or for every failed
    /// delivery of a webhook since a time.
    Redeliver {
        #[arg(long)]
        tenant: String,
        /// The delivery.
        #[arg(required_unless_present = "webhook", conflicts_with = "webhook")]
        id: Option<Uuid>,
        /// Webhook id or key: redeliver its failed deliveries (with --since).
        #[arg(long, requires = "since")]
        webhook: Option<String>,
        #[arg(long, value_parser = crate::config::cli_time)]
        since: Option<OffsetDateTime>,
        /// With --webhook: count what would be sent again; change nothing.
        #[arg(long, requires = "webhook")]
        dry_run: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Create and send the deliveries a webhook missed for stored events received in
    /// [--since, --until): events from before it existed, or it filtered out then. An
    /// event that already has a delivery to it is left alone.
    Backfill {
        #[arg(long)]
        tenant: String,
        /// Webhook id or key.
        #[arg(long)]
        webhook: String,
        #[arg(long, value_parser = crate::config::cli_time)]
        since: OffsetDateTime,
        #[arg(long, value_parser = crate::config::cli_time)]
        until: Option<OffsetDateTime>,
        /// Comma-separated; only events of these types (any when absent).
        #[arg(long, value_delimiter = ',')]
        event_types: Vec<String>,
        /// Count what would be created; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Resume an ordering key its ordered webhook blocks (`on_failure: block`): the
    /// failed deliveries holding it back get a fresh round of attempts; the key's
    /// later deliveries follow them in order.
    ResumeKey(KeyArgs),
    /// Skip what blocks an ordering key: its failed deliveries stay failed (and in
    /// the dead-letter queue) and hold nothing back; its next delivery goes on.
    SkipKey(KeyArgs),
}

/// One ordering key of one webhook.
#[derive(Debug, Args)]
pub struct KeyArgs {
    #[arg(long)]
    tenant: String,
    /// Webhook id or key.
    #[arg(long)]
    webhook: String,
    /// The events' ordering key.
    #[arg(long)]
    key: String,
    #[command(flatten)]
    output: Output,
}

fn parse_status(s: &str) -> Result<DeliveryStatus, String> {
    serde_json::from_value(serde_json::json!(s))
        .map_err(|_| format!("`{s}` is not pending, delivered, failed, held or waiting"))
}

#[derive(Serialize)]
struct DeliveryLog {
    #[serde(flatten)]
    delivery: deliveries::Delivery,
    attempt_log: Vec<deliveries::Attempt>,
}

pub async fn run(common: &Common, command: DeliveriesCommand) -> anyhow::Result<()> {
    let pool = store::pool(&common.database_url, 2, store::Workload::Queries)?;
    match command {
        DeliveriesCommand::List {
            tenant,
            event_id,
            webhook,
            status,
            since,
            limit,
            output,
        } => {
            let db = pool.get().await.context("connecting to Postgres")?;
            let webhook_id = match webhook {
                Some(w) => Some(webhooks::get(&db, &common.cipher()?, &tenant, &w).await?.id),
                None => None,
            };
            let filter = DeliveryFilter {
                event_id,
                webhook_id,
                status,
                since,
                newest_first: false,
            };
            let found = deliveries::list(&db, &tenant, &filter, None, limit).await?;
            if found.is_empty() {
                store::tenants::known(&db, &tenant).await?;
            }
            let mut logs = Vec::new();
            for delivery in found {
                let attempt_log = deliveries::attempts(&db, delivery.id).await?;
                logs.push(DeliveryLog {
                    delivery,
                    attempt_log,
                });
            }
            let ids: Vec<Uuid> = logs.iter().filter_map(|l| l.delivery.webhook_id).collect();
            let keys = webhooks::keys_of(&db, &ids).await?;
            print_logs(&logs, &keys, output.json);
        }
        DeliveriesCommand::Show { tenant, id, output } => {
            let db = pool.get().await.context("connecting to Postgres")?;
            let delivery = deliveries::get(&db, &tenant, id).await?;
            let attempt_log = deliveries::attempts(&db, id).await?;
            let log = DeliveryLog {
                delivery,
                attempt_log,
            };
            if output.json {
                write_out(&serde_json::to_string_pretty(&log)?);
            } else {
                let ids: Vec<Uuid> = log.delivery.webhook_id.into_iter().collect();
                let keys = webhooks::keys_of(&db, &ids).await?;
                let for_rate = log.delivery.status == DeliveryStatus::Held
                    && store::rates::waits_for_rate(&db, id).await?;
                show_one(&log, &keys, for_rate);
            }
        }
        DeliveriesCommand::Backfill {
            tenant,
            webhook,
            since,
            until,
            event_types,
            dry_run,
            output,
        } => {
            let db = pool.get().await.context("connecting to Postgres")?;
            let webhook = webhooks::get(&db, &common.cipher()?, &tenant, &webhook).await?;
            drop(db);
            let retry = ConnectRetry {
                attempts: 3,
                max_delay: Duration::from_secs(1),
            };
            let connection = amqp::connect(&common.amqp_url, "hookrelay-cli", retry).await?;
            let channel = amqp::confirm_channel(&connection).await?;
            let window = backfill::Window {
                since,
                until,
                event_types,
            };
            let progress = super::Progress::new(!output.json, "events scanned");
            let summary = backfill::run(
                &pool,
                &channel,
                &common.topology(),
                &webhook,
                &window,
                dry_run,
                &|scanned| progress.show(scanned, None),
            )
            .await;
            progress.finish();
            let _ = connection.close(200, "done".into()).await;
            let s = summary?;
            if output.json {
                write_out(&serde_json::to_string_pretty(&s)?);
            } else if s.dry_run {
                write_out(&format!(
                    "dry run: {} of {} events match `{}`; {} deliveries would be created ({} exist); nothing changed",
                    s.matched, s.scanned, webhook.key, s.created, s.existing
                ));
            } else {
                write_out(&format!(
                    "backfilled `{}`: {} of {} events match; {} deliveries created ({} sent, {} held), {} existed",
                    webhook.key, s.matched, s.scanned, s.created, s.sent, s.held, s.existing
                ));
            }
        }
        DeliveriesCommand::Redeliver {
            tenant,
            id,
            webhook,
            since,
            dry_run,
            output,
        } => {
            if let (true, Some(webhook), Some(since)) = (dry_run, &webhook, since) {
                let db = pool.get().await.context("connecting to Postgres")?;
                let w = webhooks::get(&db, &common.cipher()?, &tenant, webhook).await?;
                let n = deliveries::failed_of_webhook(&db, &tenant, w.id, since)
                    .await?
                    .len();
                if output.json {
                    let result =
                        serde_json::json!({"webhook": w.key, "failed": n, "dry_run": true});
                    write_out(&serde_json::to_string_pretty(&result)?);
                } else {
                    write_out(&format!(
                        "dry run: {n} failed deliveries of `{}` since {} would be sent again; nothing changed",
                        w.key,
                        super::short_time(since)
                    ));
                }
                return Ok(());
            }
            let (connection, channel) = broker(common).await?;
            let topology = common.topology();
            let summary = match (id, webhook, since) {
                (Some(id), _, _) => {
                    let one = redeliver::one(&pool, &channel, &topology, &tenant, id).await?;
                    let requeued = u64::from(one.outcome == redeliver::Outcome::Requeued);
                    redeliver::Summary {
                        requeued,
                        skipped: 1 - requeued,
                        deliveries: vec![one],
                    }
                }
                (None, Some(webhook), Some(since)) => {
                    let db = pool.get().await.context("connecting to Postgres")?;
                    let webhook = webhooks::get(&db, &common.cipher()?, &tenant, &webhook).await?;
                    drop(db);
                    let progress = super::Progress::new(!output.json, "deliveries");
                    let summary = redeliver::failed_of_webhook(
                        &pool,
                        &channel,
                        &topology,
                        (&tenant, webhook.id, since),
                        &|done, total| progress.show(done, Some(total)),
                    )
                    .await;
                    progress.finish();
                    summary?
                }
                _ => bail!("give a delivery id, or --webhook with --since"),
            };
            let _ = connection.close(200, "done".into()).await;
            print_summary(output.json, &summary);
        }
        DeliveriesCommand::ResumeKey(args) => {
            let webhook = args.webhook(common, &pool).await?;
            let (connection, channel) = broker(common).await?;
            let key = (args.tenant.as_str(), webhook.id, args.key.as_str());
            let summary = redeliver::resume_key(&pool, &channel, &common.topology(), key).await;
            let _ = connection.close(200, "done".into()).await;
            print_summary(args.output.json, &summary?);
        }
        DeliveriesCommand::SkipKey(args) => {
            let webhook = args.webhook(common, &pool).await?;
            let (connection, channel) = broker(common).await?;
            let key = (args.tenant.as_str(), webhook.id, args.key.as_str());
            let through = redeliver::skip_key(&pool, &channel, &common.topology(), key).await;
            let _ = connection.close(200, "done".into()).await;
            let through = through?;
            if args.output.json {
                let result = serde_json::json!({"skipped_through": through});
                write_out(&serde_json::to_string_pretty(&result)?);
            } else {
                write_out(&format!(
                    "key `{}` of `{}`: failed deliveries up to number {through} hold nothing back",
                    args.key, webhook.key
                ));
            }
        }
    }
    Ok(())
}

impl KeyArgs {
    /// The webhook the arguments name.
    async fn webhook(
        &self,
        common: &Common,
        pool: &store::DbPool,
    ) -> anyhow::Result<hookrelay_model::webhook::Webhook> {
        let db = pool.get().await.context("connecting to Postgres")?;
        Ok(webhooks::get(&db, &common.cipher()?, &self.tenant, &self.webhook).await?)
    }
}

/// A connection and a confirming channel to the broker, for commands that publish.
async fn broker(common: &Common) -> anyhow::Result<(lapin::Connection, lapin::Channel)> {
    let retry = ConnectRetry {
        attempts: 3,
        max_delay: Duration::from_secs(1),
    };
    let connection = amqp::connect(&common.amqp_url, "hookrelay-cli", retry).await?;
    let channel = amqp::confirm_channel(&connection).await?;
    Ok((connection, channel))
}

/// What a redelivery did, one row per delivery.
fn print_summary(json: bool, summary: &redeliver::Summary) {
    let rows = summary
        .deliveries
        .iter()
        .map(|d| {
            vec![
                d.delivery_id.to_string(),
                serde_json::to_value(d.outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    print(json, summary, &["DELIVERY", "OUTCOME"], rows);
}

/// One delivery for a person: its row, what comes next (or why nothing does), and
/// each attempt.
fn show_one(log: &DeliveryLog, keys: &std::collections::HashMap<Uuid, String>, for_rate: bool) {
    print_logs(std::slice::from_ref(log), keys, false);
    let d = &log.delivery;
    let next = match (d.status, d.next_attempt_at, d.why_failed.as_deref()) {
        (DeliveryStatus::Failed, _, Some(why)) => Some(format!("not tried again: {why}")),
        (DeliveryStatus::Pending, Some(at), _) => {
            Some(format!("next attempt at {}", super::short_time(at)))
        }
        (DeliveryStatus::Held, _, _) if for_rate => Some(
            "held: over its webhook's rate limit; sent, oldest first, as the rate allows".into(),
        ),
        (DeliveryStatus::Held, _, _) => Some(
            "held: its webhook is paused, disabled or tripped; sent when it is active again".into(),
        ),
        (DeliveryStatus::Waiting, _, _) => Some(format!(
            "waiting: number {} of ordering key `{}`, sent when the delivery before it is settled; \
             if that one failed and the webhook blocks the key, after \
             `hookrelay deliveries resume-key` or `skip-key`",
            d.seq.unwrap_or_default(),
            d.ordering_key.as_deref().unwrap_or_default(),
        )),
        _ => None,
    };
    if let Some(next) = next {
        write_out(&next);
    }
    if let (Some(key), Some(seq)) = (&d.ordering_key, d.seq) {
        write_out(&format!(
            "ordering key `{key}`, number {seq}: sent after every earlier delivery of the key is settled"
        ));
    }
    if log.attempt_log.is_empty() {
        return;
    }
    let rows = log
        .attempt_log
        .iter()
        .map(|a| {
            vec![
                a.attempt.to_string(),
                super::short_time(a.started_at),
                a.status_code.map_or_else(|| "-".into(), |c| c.to_string()),
                format!("{:.0} ms", a.latency_ms),
                a.outcome.clone(),
                a.error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    write_out("");
    write_out(&super::table::render(
        &[
            "ATTEMPT",
            "STARTED (UTC)",
            "STATUS",
            "LATENCY",
            "OUTCOME",
            "ERROR",
        ],
        rows,
    ));
}

/// Deliveries as a table, each webhook by its key (its id once it is deleted).
fn print_logs(logs: &[DeliveryLog], keys: &std::collections::HashMap<Uuid, String>, json: bool) {
    let rows = logs
        .iter()
        .map(|l| {
            let d = &l.delivery;
            let target = d
                .webhook_id
                .map(|w| keys.get(&w).cloned().unwrap_or_else(|| w.to_string()))
                .or_else(|| d.url.clone())
                .unwrap_or_default();
            let statuses: Vec<String> = l
                .attempt_log
                .iter()
                .map(|a| {
                    a.status_code
                        .map_or_else(|| "error".to_owned(), |s| s.to_string())
                })
                .collect();
            vec![
                d.id.to_string(),
                d.event_id.clone(),
                target,
                d.status.as_str().to_owned(),
                d.attempts.to_string(),
                super::join(&statuses),
                d.last_error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    print(
        json,
        &logs,
        &[
            "DELIVERY",
            "EVENT",
            "TARGET",
            "STATUS",
            "ATTEMPTS",
            "ANSWERS",
            "LAST ERROR",
        ],
        rows,
    );
}
