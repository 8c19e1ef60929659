//! `hookrelay event-types list|get|create|update|delete`: the event catalog. Writes
//! go through `hookrelay_admin::catalog`, the checks `/v1/event-types` applies.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use hookrelay_admin::catalog;
use hookrelay_model::catalog::{EventTypeFields, EventTypeUpdate};
use hookrelay_store::event_types::{self, EventType};
use hookrelay_store::{self as store};
use serde_json::Value;

use super::{print, write_out};
use crate::config::{Common, Output};

#[derive(Debug, Subcommand)]
pub enum EventTypesCommand {
    /// Every event type of the catalog.
    List {
        #[command(flatten)]
        output: Output,
    },
    /// One event type, with its schema and example (JSON).
    Get { name: String },
    /// Add an event type. The schema must compile (JSON Schema 2020-12) and the
    /// example satisfy it; both describe the event's payload.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// A file holding the payload's JSON Schema (`-` for stdin).
        #[arg(long)]
        schema_file: Option<PathBuf>,
        /// A file holding an example payload.
        #[arg(long)]
        example_file: Option<PathBuf>,
        #[arg(long)]
        deprecated: bool,
    },
    /// Change an event type: only what is given changes.
    Update {
        name: String,
        #[arg(long)]
        rename: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, conflicts_with = "no_schema")]
        schema_file: Option<PathBuf>,
        /// Remove the schema (payloads of the type are no longer checked).
        #[arg(long)]
        no_schema: bool,
        #[arg(long, conflicts_with = "no_example")]
        example_file: Option<PathBuf>,
        #[arg(long)]
        no_example: bool,
        #[arg(long)]
        deprecated: Option<bool>,
    },
    /// Remove an event type from the catalog (its events are still delivered).
    Delete { name: String },
}

pub async fn run(common: &Common, command: EventTypesCommand) -> anyhow::Result<()> {
    let pool = store::pool(&common.database_url, 2, store::Workload::Queries)?;
    let db = pool.get().await.context("connecting to Postgres")?;
    match command {
        EventTypesCommand::List { output } => {
            let list = event_types::list(&db).await?;
            let rows = list
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        yes_no(t.schema.is_some()),
                        yes_no(t.example.is_some()),
                        yes_no(t.deprecated),
                        t.description.clone(),
                    ]
                })
                .collect();
            print(
                output.json,
                &list,
                &["NAME", "SCHEMA", "EXAMPLE", "DEPRECATED", "DESCRIPTION"],
                rows,
            );
        }
        EventTypesCommand::Get { name } => show(&event_types::get(&db, &name).await?)?,
        EventTypesCommand::Create {
            name,
            description,
            schema_file,
            example_file,
            deprecated,
        } => {
            let fields = EventTypeFields {
                name,
                description,
                schema: schema_file.as_deref().map(read_json).transpose()?,
                example: example_file.as_deref().map(read_json).transpose()?,
                deprecated,
            };
            show(&catalog::create(&db, &fields).await?)?;
        }
        EventTypesCommand::Update {
            name,
            rename,
            description,
            schema_file,
            no_schema,
            example_file,
            no_example,
            deprecated,
        } => {
            let change = EventTypeUpdate {
                name: rename,
                description,
                schema: file_or_clear(schema_file.as_deref(), no_schema)?,
                example: file_or_clear(example_file.as_deref(), no_example)?,
                deprecated,
            };
            show(&catalog::update(&db, &name, change).await?)?;
        }
        EventTypesCommand::Delete { name } => {
            event_types::delete(&db, &name).await?;
            write_out(&format!("deleted event type `{name}`"));
        }
    }
    Ok(())
}

fn show(t: &EventType) -> anyhow::Result<()> {
    write_out(&serde_json::to_string_pretty(t)?);
    Ok(())
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

/// A new value from a file, null with the `--no-…` flag, or unchanged.
fn file_or_clear(file: Option<&Path>, clear: bool) -> anyhow::Result<Option<Option<Value>>> {
    if clear {
        return Ok(Some(None));
    }
    Ok(file.map(read_json).transpose()?.map(Some))
}

fn read_json(file: &Path) -> anyhow::Result<Value> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))
}
