//! `hookrelay environments set|unset|list`: variables for `{{NAME}}` in webhook URLs.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use clap::Subcommand;
use hookrelay_store::{self as store, environments};

use super::print;
use crate::config::{Common, Output};

#[derive(Debug, Subcommand)]
pub enum EnvironmentsCommand {
    /// Set variables (other variables of the environment stay).
    Set {
        #[arg(long)]
        tenant: String,
        /// Environment name, as events carry it (`Production`, `Sandbox`).
        #[arg(long)]
        name: String,
        /// KEY=VALUE; repeat for several.
        #[arg(long = "var", required = true)]
        vars: Vec<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Remove variables.
    Unset {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        #[arg(long = "var", required = true)]
        keys: Vec<String>,
        #[command(flatten)]
        output: Output,
    },
    /// List a tenant's environments (values masked).
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        output: Output,
    },
}

pub async fn run(common: &Common, command: EnvironmentsCommand) -> anyhow::Result<()> {
    let pool = store::pool(&common.database_url, 2, store::Workload::Queries)?;
    let db = pool.get().await.context("connecting to Postgres")?;
    let list = match command {
        EnvironmentsCommand::Set {
            tenant,
            name,
            vars,
            output,
        } => {
            let env = environments::set(&db, &tenant, &name, &parse_vars(&vars)?).await?;
            (output.json, vec![env])
        }
        EnvironmentsCommand::Unset {
            tenant,
            name,
            keys,
            output,
        } => {
            let env = environments::unset(&db, &tenant, &name, &keys).await?;
            (output.json, vec![env])
        }
        EnvironmentsCommand::List { tenant, output } => {
            let list = environments::list(&db, &tenant).await?;
            if list.is_empty() {
                store::tenants::known(&db, &tenant).await?;
            }
            (output.json, list)
        }
    };
    let (json, envs) = list;
    let rows = envs
        .iter()
        .flat_map(|e| {
            e.variables
                .iter()
                .map(|(k, v)| vec![e.name.clone(), k.clone(), v.clone()])
                .collect::<Vec<_>>()
        })
        .collect();
    print(json, &envs, &["ENVIRONMENT", "VARIABLE", "VALUE"], rows);
    Ok(())
}

fn parse_vars(vars: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for var in vars {
        let Some((k, v)) = var.split_once('=') else {
            bail!("--var `{var}` is not KEY=VALUE");
        };
        map.insert(k.trim().to_owned(), v.to_owned());
    }
    Ok(map)
}
