//! `hookrelay publish --file EVENT.json`.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use hookrelay_amqp::ConnectRetry;
use hookrelay_model::envelope::parse_one_or_many;
use hookrelay_producer::Publisher;

use crate::config::Common;

pub async fn run(
    common: &Common,
    file: &Path,
    max_event_bytes: usize,
) -> anyhow::Result<Vec<String>> {
    let body = if file == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading stdin")?;
        buf
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))?
    };
    // The file may hold many events; the limit is per event, as the router applies it.
    let events = parse_one_or_many(&body, body.len())
        .with_context(|| format!("{} is not a valid event envelope", file.display()))?;
    for (i, event) in events.iter().enumerate() {
        let size = event.to_json().len();
        if size > max_event_bytes {
            bail!(
                "event [{i}] (`{}`) is {size} bytes, over the limit of {max_event_bytes} (HOOKRELAY_MAX_EVENT_BYTES)",
                event.id
            );
        }
    }
    let publisher =
        Publisher::connect(&common.amqp_url, common.topology(), ConnectRetry::default()).await?;
    publisher.publish_batch(&events).await?;
    let ids: Vec<String> = events.into_iter().map(|e| e.id.into()).collect();
    for id in &ids {
        tracing::info!(event_id = %id, "published");
    }
    Ok(ids)
}
