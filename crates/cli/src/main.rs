use std::process::ExitCode;

use clap::Parser;
use hookrelay_cli::cli::{Cli, Command};
use hookrelay_cli::commands::{
    self, deliveries, dlq, environments, event_types, events, portal, publish, queues, receiver,
    stats, tenants, tokens, webhooks,
};
use hookrelay_cli::{serve, telemetry};

/// Errors reach the user as one plain chain of causes, not a backtrace.
fn main() -> ExitCode {
    match start() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn start() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Probes run often and must stay quiet and quick: no telemetry, no runtime.
    if let Command::Probe { url, timeout } = &cli.command {
        return commands::probe::run(url, *timeout);
    }
    // Documents are derived from the code alone: nothing to connect to or configure.
    if let Command::Openapi { envelope_schema } = &cli.command {
        let text = if *envelope_schema {
            hookrelay_server::api::render(&hookrelay_model::envelope::json_schema())
        } else {
            hookrelay_server::api::render(&hookrelay_server::api::document())
        };
        commands::write_out(text.trim_end());
        return Ok(());
    }
    let telemetry = telemetry::init(cli.common.log_format)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = cli.common.worker_threads {
        runtime.worker_threads(usize::from(threads));
    }
    let runtime = runtime.enable_all().build()?;
    let result = runtime.block_on(run(cli));
    // The exporter's blocking client must not be dropped inside the runtime.
    drop(runtime);
    telemetry.shutdown();
    result
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let common = &cli.common;
    // A malformed key stops every command at once, not the first that needs it.
    common.cipher()?;
    match cli.command {
        Command::Migrate => {
            hookrelay_store::migrate(&common.database_url).await?;
            tracing::info!("database is up to date");
        }
        Command::Serve(args) => serve::run(common, &args).await?,
        Command::Publish {
            file,
            max_event_bytes,
            output,
        } => {
            let ids = publish::run(common, &file, max_event_bytes).await?;
            commands::print(
                output.json,
                &ids,
                &["PUBLISHED"],
                ids.iter().map(|i| vec![i.clone()]).collect(),
            );
        }
        Command::Webhooks(c) => webhooks::run(common, c).await?,
        Command::Environments(c) => environments::run(common, c).await?,
        Command::Deliveries(c) => deliveries::run(common, c).await?,
        Command::Events(c) => events::run(common, c).await?,
        Command::Tenants(c) => tenants::run(common, c).await?,
        Command::Dlq(c) => dlq::run(common, c).await?,
        Command::Tokens(c) => tokens::run(common, c).await?,
        Command::Portal(c) => portal::run(common, c).await?,
        Command::Audit(c) => portal::run_audit(common, c).await?,
        Command::EventTypes(c) => event_types::run(common, c).await?,
        Command::Stats(args) => stats::run(common, args).await?,
        Command::Queues { output } => queues::run(common, output.json).await?,
        Command::Probe { .. } | Command::Openapi { .. } => {
            unreachable!("handled before the runtime starts")
        }
        Command::Receiver { addr } => receiver::run(addr).await?,
    }
    Ok(())
}
