//! The queue-depth gauges: sampled from the broker by passive declares.

use hookrelay_amqp::{ConnectRetry, connect, inspect_queue};
use hookrelay_model::Topology;
use hookrelay_model::shutdown::Shutdown;
use lapin::{Channel, Connection};

use crate::Metrics;

/// Samples the ready-message count of every queue into `metrics`, every `every`,
/// until `shutdown`. Passive declares are cheap: the broker answers from memory.
pub async fn sample_queue_depths(
    url: &str,
    topology: &Topology,
    metrics: &Metrics,
    every: std::time::Duration,
    mut shutdown: Shutdown,
) {
    let queues = topology.queues();
    let mut link: Option<(Connection, Channel)> = None;
    loop {
        // Wait first: the roles declare their queues as they start, and a passive
        // declare of a queue not there yet closes the channel with a logged error.
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.wait() => {}
        }
        if shutdown.is_triggered() {
            break;
        }
        if link.as_ref().is_none_or(|(_, ch)| !ch.status().connected()) {
            let once = ConnectRetry {
                attempts: 1,
                max_delay: every,
            };
            link = match connect(url, "hookrelay-metrics", once).await {
                Ok(conn) => conn.create_channel().await.ok().map(|ch| (conn, ch)),
                Err(_) => None,
            };
        }
        if let Some((_, channel)) = &link {
            for queue in &queues {
                match inspect_queue(channel, queue).await {
                    Ok(q) => metrics.queue_depth(queue, q.message_count()),
                    // A missing queue closes the channel; reopen on the next round.
                    Err(_) => break,
                }
            }
        }
    }
}
