//! `hookrelay tenants list|show|set`: per-tenant settings (the retention period).

use anyhow::Context;
use clap::Subcommand;
use hookrelay_store::{self as store, tenants};

use super::print;
use crate::config::{Common, Output};

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Every tenant with webhooks, settings or tokens.
    List {
        #[command(flatten)]
        output: Output,
    },
    /// A tenant's settings.
    Show {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        output: Output,
    },
    /// Set a tenant's retention period.
    Set {
        #[arg(long)]
        tenant: String,
        /// Days its events are kept.
        #[arg(
            long,
            conflicts_with = "default_retention",
            required_unless_present = "default_retention"
        )]
        retention_days: Option<i32>,
        /// Use the service-wide HOOKRELAY_RETENTION_DAYS again.
        #[arg(long)]
        default_retention: bool,
        #[command(flatten)]
        output: Output,
    },
}

pub async fn run(common: &Common, command: TenantsCommand) -> anyhow::Result<()> {
    let pool = store::pool(&common.database_url, 2, store::Workload::Queries)?;
    let db = pool.get().await.context("connecting to Postgres")?;
    let (settings, json) = match command {
        TenantsCommand::List { output } => {
            let all = tenants::list(&db).await?;
            let rows = all
                .iter()
                .map(|t| {
                    vec![
                        t.tenant.clone(),
                        t.webhooks.to_string(),
                        t.tokens.to_string(),
                        t.retention_days
                            .map_or_else(|| "default".into(), |d| d.to_string()),
                    ]
                })
                .collect();
            print(
                output.json,
                &all,
                &["TENANT", "WEBHOOKS", "TOKENS", "RETENTION DAYS"],
                rows,
            );
            return Ok(());
        }
        TenantsCommand::Show { tenant, output } => {
            tenants::known(&db, &tenant).await?;
            (tenants::get(&db, &tenant).await?, output.json)
        }
        TenantsCommand::Set {
            tenant,
            retention_days,
            output,
            ..
        } => (
            tenants::set_retention(&db, &tenant, retention_days).await?,
            output.json,
        ),
    };
    let days = settings
        .retention_days
        .map_or_else(|| "default".to_owned(), |d| d.to_string());
    print(
        json,
        &settings,
        &["TENANT", "RETENTION DAYS"],
        vec![vec![settings.tenant.clone(), days]],
    );
    Ok(())
}
