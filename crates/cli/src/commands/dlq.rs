//! `hookrelay dlq list|summary|show|replay|purge`: the dead-letter queue, read and changed
//! through the same code as the admin API's `/v1/dead-letter` routes.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use hookrelay_admin::dlq::{self, DeadMessage, Dlq, Filter, ReplayOptions, Summary};
use hookrelay_amqp::{self as amqp, ConnectRetry};
use hookrelay_store as store;

use super::{print, write_out};
use crate::config::{Common, Output};

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead-lettered messages, oldest first; the queue is left as it was.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Show at most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        output: Output,
    },
    /// Dead letters counted by tenant, webhook and reason, with the oldest and newest
    /// of each group; the queue is left as it was.
    Summary {
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        output: Output,
    },
    /// One message in full: headers and body.
    Show {
        /// Its message id, delivery id or event id.
        id: String,
        #[command(flatten)]
        output: Output,
    },
    /// Send matching messages back for a fresh round of attempts.
    Replay {
        #[command(flatten)]
        filter: FilterArgs,
        /// Count what would be replayed; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// At most this many messages per second (`50/s` or `50`).
        #[arg(long, value_parser = parse_rate)]
        rate: Option<f64>,
        #[command(flatten)]
        output: Output,
    },
    /// Delete matching messages for good.
    Purge {
        #[command(flatten)]
        filter: FilterArgs,
        /// Required: purged messages cannot be recovered.
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    #[arg(long)]
    tenant: Option<String>,
    /// Webhook id or key (a key in --tenant, or in every tenant without it).
    #[arg(long)]
    webhook: Option<String>,
    /// Part of the reason, any case (`exhausted`, `invalid event`).
    #[arg(long)]
    reason: Option<String>,
    /// Only these message, delivery or event ids; repeat for several.
    #[arg(long = "id")]
    ids: Vec<String>,
}

impl From<FilterArgs> for Filter {
    fn from(a: FilterArgs) -> Self {
        Filter {
            tenant: a.tenant,
            webhook: a.webhook,
            reason: a.reason,
            ids: a.ids,
            webhook_ids: None,
        }
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let n = s.trim().trim_end_matches("/s").trim();
    match n.parse::<f64>() {
        Ok(r) if r > 0.0 && r.is_finite() => Ok(r),
        _ => Err(format!("`{s}` is not a rate like `50/s`")),
    }
}

/// What a command that reads the dead-letter queue holds open: the topology, a small
/// database pool and a broker connection (tried three times, briefly).
pub(crate) struct Opened {
    topology: hookrelay_model::Topology,
    pool: deadpool_postgres::Pool,
    connection: lapin::Connection,
}

impl Opened {
    pub(crate) async fn open(common: &Common) -> anyhow::Result<Self> {
        let retry = ConnectRetry {
            attempts: 3,
            max_delay: Duration::from_secs(1),
        };
        Ok(Self {
            topology: common.topology(),
            pool: store::pool(&common.database_url, 2, store::Workload::Queries)?,
            connection: amqp::connect(&common.amqp_url, "hookrelay-cli", retry).await?,
        })
    }

    pub(crate) async fn close(self) -> anyhow::Result<()> {
        self.connection
            .close(200, "done".into())
            .await
            .context("closing the RabbitMQ connection")
    }

    pub(crate) fn dlq(&self) -> Dlq<'_> {
        Dlq {
            connection: &self.connection,
            topology: &self.topology,
            pool: &self.pool,
        }
    }
}

pub async fn run(common: &Common, command: DlqCommand) -> anyhow::Result<()> {
    let opened = Opened::open(common).await?;
    let dlq = opened.dlq();
    match command {
        DlqCommand::List {
            filter,
            limit,
            output,
        } => {
            let found = dlq::list(&dlq, &filter.into(), limit).await?;
            let ids: Vec<uuid::Uuid> = found
                .iter()
                .filter_map(|m| m.webhook_id.as_deref().and_then(|w| w.parse().ok()))
                .collect();
            let db = opened.pool.get().await.context("connecting to Postgres")?;
            let keys = store::webhooks::keys_of(&db, &ids).await?;
            print_list(&found, &keys, output.json);
        }
        DlqCommand::Summary { filter, output } => {
            let groups = dlq::summarize(&dlq, &filter.into()).await?;
            let rows = groups
                .iter()
                .map(|g| {
                    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                    vec![
                        text(&g.tenant),
                        g.webhook_key
                            .clone()
                            .or_else(|| g.webhook_id.clone())
                            .unwrap_or_else(|| "-".into()),
                        text(&g.reason.as_ref().map(ToString::to_string)),
                        g.count.to_string(),
                        text(&g.oldest),
                        text(&g.newest),
                    ]
                })
                .collect();
            print(
                output.json,
                &groups,
                &["TENANT", "WEBHOOK", "REASON", "COUNT", "OLDEST", "NEWEST"],
                rows,
            );
        }
        DlqCommand::Show { id, output } => {
            let found = dlq::show(&dlq, &id).await?;
            if output.json {
                write_out(&serde_json::to_string_pretty(&found)?);
            } else {
                let ids: Vec<uuid::Uuid> = found
                    .webhook_id
                    .as_deref()
                    .and_then(|w| w.parse().ok())
                    .into_iter()
                    .collect();
                let db = opened.pool.get().await.context("connecting to Postgres")?;
                let keys = store::webhooks::keys_of(&db, &ids).await?;
                show_one(&found, &keys)?;
            }
        }
        DlqCommand::Replay {
            filter,
            dry_run,
            rate,
            output,
        } => {
            let progress = super::Progress::new(!output.json && !dry_run, "messages");
            let options = ReplayOptions {
                dry_run,
                rate,
                progress: &|done, total| progress.show(done, Some(total)),
            };
            let summary = dlq::replay(&dlq, &filter.into(), &options).await;
            progress.finish();
            print_summary("replayed", &summary?, output.json);
        }
        DlqCommand::Purge {
            filter,
            yes,
            dry_run,
            output,
        } => {
            if !yes && !dry_run {
                bail!("purge deletes messages for good: add --yes (or --dry-run to count them)");
            }
            let summary = dlq::purge(&dlq, &filter.into(), dry_run).await?;
            print_summary("purged", &summary, output.json);
        }
    }
    opened.close().await
}

/// Dead letters as a table, each webhook by its key (its id once it is deleted).
fn print_list(
    found: &[DeadMessage],
    keys: &std::collections::HashMap<uuid::Uuid, String>,
    json: bool,
) {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let webhook = |m: &DeadMessage| {
        m.webhook_id
            .as_deref()
            .and_then(|w| w.parse::<uuid::Uuid>().ok())
            .and_then(|id| keys.get(&id).cloned())
            .or_else(|| m.webhook_id.clone())
            .unwrap_or_else(|| "-".into())
    };
    let rows = found
        .iter()
        .map(|m| {
            vec![
                m.position.to_string(),
                dash(&m.event_id),
                dash(&m.tenant),
                webhook(m),
                dash(&m.reason.as_ref().map(ToString::to_string)),
                dash(&m.last_status),
                dash(&m.attempts),
                dash(&m.dead_lettered_at),
            ]
        })
        .collect();
    print(
        json,
        &found,
        &[
            "#", "EVENT", "TENANT", "WEBHOOK", "REASON", "LAST", "ATTEMPTS", "WHEN",
        ],
        rows,
    );
}

fn print_summary(verb: &str, s: &Summary, json: bool) {
    if json {
        write_out(&serde_json::to_string_pretty(s).unwrap_or_default());
        return;
    }
    let mut line = if s.dry_run {
        format!(
            "dry run: {} of {} messages match; nothing changed",
            s.matched, s.scanned
        )
    } else {
        format!("{verb} {} of {} messages matched", s.done, s.matched)
    };
    if s.already_settled > 0 {
        line.push_str(&format!(
            "; {} removed without sending (their delivery was delivered or re-queued since)",
            s.already_settled
        ));
    }
    if s.left > 0 {
        line.push_str(&format!(
            "; {} left in the queue (delivery deleted by retention, or source unknown)",
            s.left
        ));
    }
    write_out(&line);
}

/// One dead letter for a person: what it is and why, one field a line, then its body.
fn show_one(
    m: &dlq::DeadMessage,
    keys: &std::collections::HashMap<uuid::Uuid, String>,
) -> anyhow::Result<()> {
    let webhook = m.webhook_id.as_deref().map(|w| {
        w.parse()
            .ok()
            .and_then(|id| keys.get(&id))
            .map_or_else(|| w.to_owned(), |key| format!("{key} ({w})"))
    });
    let fields = [
        ("reason", m.reason.as_ref().map(ToString::to_string)),
        ("error", m.error.clone()),
        ("tenant", m.tenant.clone()),
        ("webhook", webhook),
        ("event", m.event_id.clone()),
        ("delivery", m.delivery_id.clone()),
        ("attempts", m.attempts.clone()),
        ("last status", m.last_status.clone()),
        ("dead-lettered at", m.dead_lettered_at.clone()),
        ("from queue", m.source_queue.clone()),
        ("position", Some(m.position.to_string())),
    ];
    let rows = fields
        .into_iter()
        .filter_map(|(name, value)| Some(vec![name.to_owned(), value?]))
        .collect();
    write_out(&super::table::render(&["FIELD", "VALUE"], rows));
    write_out(&format!("\nbody ({} bytes):", m.body_bytes));
    write_out(&match &m.body {
        serde_json::Value::String(text) => text.clone(),
        other => serde_json::to_string_pretty(other)?,
    });
    Ok(())
}
