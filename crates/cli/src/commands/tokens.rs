//! `hookrelay tokens create|list|revoke`: tokens that open one tenant's API routes.

use anyhow::Context;
use clap::Subcommand;
use hookrelay_model::access::Scope;
use hookrelay_store::{self as store, tokens};

use super::{print, write_out};
use crate::config::{Common, Output};

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token; it is printed once and cannot be shown again.
    Create {
        #[arg(long)]
        tenant: String,
        /// A name to tell tokens apart (`embed-frontend`).
        #[arg(long)]
        name: String,
        /// `read`: GET only, events without their private fields (for front ends);
        /// `write`: also changes webhooks, environments and settings.
        #[arg(long, default_value = "read")]
        scope: Scope,
        #[command(flatten)]
        output: Output,
    },
    /// A tenant's tokens (names and dates, never the tokens).
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        output: Output,
    },
    /// Revoke a token by name; it stops working at once.
    Revoke {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        #[command(flatten)]
        output: Output,
    },
}

pub async fn run(common: &Common, command: TokensCommand) -> anyhow::Result<()> {
    let pool = store::pool(&common.database_url, 2, store::Workload::Queries)?;
    let db = pool.get().await.context("connecting to Postgres")?;
    match command {
        TokensCommand::Create {
            tenant,
            name,
            scope,
            output,
        } => {
            let (token, secret) = tokens::create(&db, &tenant, &name, scope).await?;
            if output.json {
                // As the API answers: the token's record and its secret, shown this once.
                let mut shown = serde_json::to_value(&token)?;
                shown["token"] = secret.expose().into();
                write_out(&serde_json::to_string_pretty(&shown)?);
            } else {
                write_out(secret.expose());
            }
        }
        TokensCommand::List { tenant, output } => {
            let list = tokens::list(&db, &tenant).await?;
            if list.is_empty() {
                store::tenants::known(&db, &tenant).await?;
            }
            let rows = list
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.scope.to_string(),
                        t.id.to_string(),
                        super::short_time(t.created_at),
                    ]
                })
                .collect();
            print(
                output.json,
                &list,
                &["NAME", "SCOPE", "ID", "CREATED"],
                rows,
            );
        }
        TokensCommand::Revoke {
            tenant,
            name,
            output,
        } => {
            tokens::revoke(&db, &tenant, &name).await?;
            if output.json {
                let result = serde_json::json!({"tenant": tenant, "revoked": name});
                write_out(&serde_json::to_string_pretty(&result)?);
            } else {
                write_out(&format!("revoked token `{name}` of tenant `{tenant}`"));
            }
        }
    }
    Ok(())
}
