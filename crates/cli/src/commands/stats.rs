//! `hookrelay stats`: per tenant and webhook key, the deliveries of the last hour and
//! the last day by status, and the dead letters waiting; the same function as the
//! admin API's `GET /v1/stats`.

use clap::Args;
use hookrelay_admin::stats;

use super::print;
use crate::config::{Common, Output};

#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// Only this tenant's webhooks.
    #[arg(long)]
    tenant: Option<String>,
    /// Only this webhook: its id, or its key (in --tenant, or in every tenant).
    #[arg(long)]
    webhook: Option<String>,
    #[command(flatten)]
    output: Output,
}

/// The WEBHOOK cell of a tenant's one-off URL deliveries.
const ONE_OFF: &str = "(one-off URLs)";

pub async fn run(common: &Common, args: StatsArgs) -> anyhow::Result<()> {
    let opened = super::dlq::Opened::open(common).await?;
    let dlq = opened.dlq();
    let found = stats::collect(&dlq, args.tenant, args.webhook).await?;
    let rows = found
        .iter()
        .map(|s| {
            let (h, d) = (&s.last_hour, &s.last_day);
            vec![
                s.tenant.clone(),
                s.webhook_key.clone().unwrap_or_else(|| ONE_OFF.to_owned()),
                h.delivered.to_string(),
                h.failed.to_string(),
                h.pending.to_string(),
                h.held.to_string(),
                d.delivered.to_string(),
                d.failed.to_string(),
                d.pending.to_string(),
                d.held.to_string(),
                s.dead_letters.to_string(),
                s.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print(
        args.output.json,
        &found,
        &[
            "TENANT",
            "WEBHOOK",
            "1H DELIVERED",
            "1H FAILED",
            "1H PENDING",
            "1H HELD",
            "24H DELIVERED",
            "24H FAILED",
            "24H PENDING",
            "24H HELD",
            "DEAD LETTERS",
            "LAST ERROR (24H)",
        ],
        rows,
    );
    opened.close().await
}
