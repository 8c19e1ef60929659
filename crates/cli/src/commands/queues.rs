//! `hookrelay queues`: how many messages wait in each of hookrelay's queues.

use hookrelay_amqp::{self as amqp, ConnectRetry};
use serde::Serialize;

use super::print;
use crate::config::Common;

#[derive(Serialize)]
struct Depth {
    queue: String,
    messages: u32,
    consumers: u32,
}

pub async fn run(common: &Common, json: bool) -> anyhow::Result<()> {
    let topology = common.topology();
    let connection =
        amqp::connect(&common.amqp_url, "hookrelay-cli", ConnectRetry::default()).await?;
    let mut names = vec![topology.router_queue(), topology.deliveries_queue()];
    names.extend(
        topology
            .delays()
            .iter()
            .map(|d| topology.delay_queue_name(*d)),
    );
    names.push(topology.dead_letter_queue());
    let mut depths = Vec::new();
    for name in names {
        // A passive declare only reads; a missing queue closes the channel, so each
        // gets its own.
        let channel = connection.create_channel().await?;
        match amqp::inspect_queue(&channel, &name).await {
            Ok(q) => depths.push(Depth {
                queue: name,
                messages: q.message_count(),
                consumers: q.consumer_count(),
            }),
            Err(_) => tracing::debug!(queue = %name, "queue not declared yet"),
        }
    }
    let rows = depths
        .iter()
        .map(|d| {
            vec![
                d.queue.clone(),
                d.messages.to_string(),
                d.consumers.to_string(),
            ]
        })
        .collect();
    print(json, &depths, &["QUEUE", "MESSAGES", "CONSUMERS"], rows);
    Ok(())
}
