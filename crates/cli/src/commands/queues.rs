//! `hookrelay queues`: how many messages wait in each of hookrelay's queues, ready
//! and (through the RabbitMQ management API, when configured) unacked.

use hookrelay_amqp::{self as amqp, ConnectRetry};
use serde::Serialize;

use super::{note, print};
use crate::config::Common;
use crate::management;

#[derive(Serialize)]
struct Depth {
    queue: String,
    /// Ready messages.
    messages: u32,
    /// Delivered to a consumer, not yet acked; `null` when unknown (no management API).
    unacked: Option<u64>,
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
    let unacked = match &common.rabbitmq_management_url {
        None => {
            note(
                "unacked: unknown (-) without HOOKRELAY_RABBITMQ_MANAGEMENT_URL; AMQP tells ready messages and consumers only",
            );
            None
        }
        Some(url) => match management::queue_counts(url, &common.amqp_url).await {
            Ok(counts) => Some(counts),
            Err(e) => {
                note(&format!("unacked: unknown (-): {e}"));
                None
            }
        },
    };
    let mut depths = Vec::new();
    for name in names {
        // A passive declare only reads; a missing queue closes the channel, so each
        // gets its own.
        let channel = connection.create_channel().await?;
        match amqp::inspect_queue(&channel, &name).await {
            Ok(q) => depths.push(Depth {
                unacked: unacked
                    .as_ref()
                    .map(|c| c.get(&name).map_or(0, |q| q.messages_unacknowledged)),
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
                d.unacked.map_or_else(|| "-".to_owned(), |n| n.to_string()),
                d.consumers.to_string(),
            ]
        })
        .collect();
    print(
        json,
        &depths,
        &["QUEUE", "MESSAGES", "UNACKED", "CONSUMERS"],
        rows,
    );
    Ok(())
}
