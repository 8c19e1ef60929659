//! How deep each of the topology's queues is and who consumes it: the console's
//! overview shows the roles' readiness by their consumers.

use hookrelay_amqp as amqp;
use hookrelay_model::Topology;
use lapin::Connection;
use serde::Serialize;

use crate::AdminError;

#[derive(Debug, Clone, Serialize)]
pub struct QueueDepth {
    pub name: String,
    /// Ready messages (not those a consumer holds unacknowledged); none when the
    /// queue does not exist.
    pub messages: Option<u32>,
    pub consumers: Option<u32>,
}

/// Every queue of the topology, work queues first; a missing queue is shown as such.
pub async fn depths(
    connection: &Connection,
    topology: &Topology,
) -> Result<Vec<QueueDepth>, AdminError> {
    let mut out = Vec::new();
    for name in topology.queues() {
        // A look at a missing queue closes its channel: one channel per look.
        let channel = connection
            .create_channel()
            .await
            .map_err(amqp::AmqpError::from)?;
        let found = amqp::inspect_queue(&channel, &name).await.ok();
        let _ = channel.close(200, "looked".into()).await;
        out.push(QueueDepth {
            name,
            messages: found.as_ref().map(|q| q.message_count()),
            consumers: found.as_ref().map(|q| q.consumer_count()),
        });
    }
    Ok(out)
}
