//! RabbitMQ plumbing every role and the producer share: connecting with backoff,
//! confirmed publishing, message headers and trace context (`trace`), the topology's
//! declaration (`topology`), dead-letter publishing (`deadletter`), queue inspection,
//! and the consumer supervisor every role consumes through (`consumer`).

pub mod addresses;
pub mod consumer;
pub mod deadletter;
mod headers;
pub mod topology;
pub mod trace;

pub use addresses::{Address, AddressError};
pub use headers::{HeaderExtractor, HeaderInjector, Headers, header_text};
pub use topology::TopologyError;

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use hookrelay_model::Topology;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use lapin::{Confirmation, PublisherConfirm};

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("cannot connect to RabbitMQ at {nodes} after {attempts} attempts: {source}")]
    Connect {
        /// The nodes tried, as `host:port` (no credentials).
        nodes: String,
        attempts: usize,
        source: lapin::Error,
    },
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error("RabbitMQ error: {0}")]
    Broker(#[from] lapin::Error),
    #[error(
        "message to exchange `{exchange}` with routing key `{routing_key}` was unroutable: no queue is bound for it"
    )]
    Unroutable {
        exchange: String,
        routing_key: String,
    },
    #[error("broker refused (nacked) the message to `{exchange}`")]
    Nacked { exchange: String },
    #[error("`{0}` is longer than the 255 bytes AMQP allows here")]
    TooLong(String),
    #[error("the broker ended the consumer (queue deleted or channel closed)")]
    ConsumerEnded,
    #[error(transparent)]
    Topology(#[from] TopologyError),
}

/// How hard to try reaching the broker before giving up.
#[derive(Debug, Clone, Copy)]
pub struct ConnectRetry {
    pub attempts: usize,
    pub max_delay: Duration,
}

impl Default for ConnectRetry {
    fn default() -> Self {
        Self {
            attempts: 10,
            max_delay: Duration::from_secs(10),
        }
    }
}

/// Connects, retrying with exponential backoff and jitter. `url` is one AMQP URL or a
/// comma-separated list of them (the nodes of a cluster): every attempt tries each
/// node in turn, starting after the node the last attempt of this process ended on,
/// so a dead node is not always the first one waited for. `name` shows in the
/// broker's connection list.
pub async fn connect(url: &str, name: &str, retry: ConnectRetry) -> Result<Connection, AmqpError> {
    let nodes = addresses::parse(url)?;
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(retry.max_delay)
        .with_max_times(retry.attempts.saturating_sub(1))
        .with_jitter();
    (|| connect_any(&nodes, name))
        .retry(backoff)
        .notify(|err, wait| {
            tracing::warn!(error = %err, retry_in = ?wait, "RabbitMQ not reachable; retrying");
        })
        .await
        .map_err(|source| AmqpError::Connect {
            nodes: addresses::nodes(&nodes),
            attempts: retry.attempts,
            source,
        })
}

/// One attempt: each node once, in turn; the last node's error if none answers.
async fn connect_any(nodes: &[Address], name: &str) -> Result<Connection, lapin::Error> {
    let mut last = None;
    for i in addresses::round(nodes.len(), addresses::next_start()) {
        let node = &nodes[i];
        // The next attempt, here or in another connect of this process, begins after
        // this node, whether it answers or not.
        addresses::tried(i);
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        match Connection::connect(node.url(), properties).await {
            Ok(connection) => {
                tracing::info!(node = %node, connection = name, "connected to RabbitMQ");
                return Ok(connection);
            }
            Err(e) => {
                if nodes.len() > 1 {
                    tracing::warn!(node = %node, error = %e, "RabbitMQ node not reachable; trying the next");
                }
                last = Some(e);
            }
        }
    }
    // Unreachable: `addresses::parse` never returns an empty list.
    Err(last.unwrap_or_else(|| {
        let none = std::io::Error::new(std::io::ErrorKind::InvalidInput, "no RabbitMQ address");
        lapin::ErrorKind::IOError(std::sync::Arc::new(none)).into()
    }))
}

/// A channel in confirm mode: every publish on it is acknowledged by the broker.
pub async fn confirm_channel(connection: &Connection) -> Result<Channel, AmqpError> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Closes a connection: its open channels first, then the connection itself. A
/// channel whose last handle is dropped closes itself in the background; if its
/// connection is closing by then, lapin logs that close as a connection error (on
/// every graceful stop), so whoever closes a connection closes its channels first.
pub async fn close(connection: &Connection, channels: &[Channel], reason: &str) {
    for channel in channels {
        if channel.status().connected() {
            let _ = channel.close(200, reason.into()).await;
        }
    }
    let _ = connection.close(200, reason.into()).await;
}

/// Whether a new consumer first waits for the queue's other consumers to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sole {
    /// It consumes at once.
    No,
    /// It waits until the queue lists no consumer (see `Supervisor::sole`).
    Wait,
    /// It waits until the queue lists no consumer, but no longer than this from the
    /// queue's first answer: for a role whose own earlier consumer, on a node that
    /// closed its connection, may stay listed after the queue wrote it off.
    WaitAtMost(std::time::Duration),
}

/// Connects, declares the topology, and starts consuming `queue` with `prefetch`
/// unacked messages at most: how every role begins (through `consumer::Supervisor`).
/// `sole`: whether it first waits until the queue has no consumer.
pub async fn open_consumer(
    url: &str,
    role: &str,
    topology: &Topology,
    (queue, prefetch, sole): (&str, u16, Sole),
) -> Result<(Connection, Channel, lapin::Consumer), AmqpError> {
    let connection = connect(url, role, ConnectRetry::default()).await?;
    let channel = confirm_channel(&connection).await?;
    topology::declare(topology, &channel).await?;
    match sole {
        Sole::No => {}
        Sole::Wait => wait_for_no_consumer(&channel, queue, role, None).await?,
        Sole::WaitAtMost(limit) => {
            wait_for_no_consumer(&channel, queue, role, Some(limit)).await?;
        }
    }
    channel
        .basic_qos(prefetch, lapin::options::BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            short(queue)?,
            role.into(),
            lapin::options::BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(%queue, prefetch, "{role} consuming");
    Ok((connection, channel, consumer))
}

/// Returns once `queue` has no consumer: the one before has closed its channel, so
/// what it left unacked is back in the queue, ahead of everything else, before this
/// consumer takes anything (RabbitMQ hands a consumer that is already waiting the
/// ready messages before the returned ones). With `at_most`: returns anyway that long
/// after the queue first answered.
async fn wait_for_no_consumer(
    channel: &Channel,
    queue: &str,
    role: &str,
    at_most: Option<std::time::Duration>,
) -> Result<(), AmqpError> {
    let mut since: Option<std::time::Instant> = None;
    loop {
        let consumers = inspect_queue(channel, queue).await?.consumer_count();
        if consumers == 0 {
            return Ok(());
        }
        let first = *since.get_or_insert_with(|| {
            tracing::info!(%queue, "{role} waiting for the queue's other consumer to go");
            std::time::Instant::now()
        });
        if let Some(limit) = at_most.filter(|limit| first.elapsed() >= *limit) {
            // A quorum queue keeps listing a consumer whose node it cannot reach
            // (rabbit_fifo's `suspected_down`, counted by queue.declare-ok) until the
            // node is back, though it handed that consumer's messages back already.
            tracing::warn!(%queue, consumers, waited = ?limit, "{role}'s earlier consumer is still listed, on a node the queue cannot reach; consuming");
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

pub fn short(s: &str) -> Result<ShortString, AmqpError> {
    ShortString::try_new(s.to_owned()).map_err(|_| AmqpError::TooLong(s.to_owned()))
}

/// A queue as the broker sees it now (ready messages, consumers), by a passive
/// declare, which changes nothing. One for a queue that does not exist closes
/// `channel`: give each such look a channel of its own.
pub async fn inspect_queue(channel: &Channel, queue: &str) -> Result<lapin::Queue, AmqpError> {
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    Ok(channel
        .queue_declare(short(queue)?, passive, FieldTable::default())
        .await?)
}

/// Persistent properties with a message id, as every hookrelay message has.
pub fn persistent(message_id: &str, headers: FieldTable) -> Result<BasicProperties, AmqpError> {
    Ok(BasicProperties::default()
        .with_message_id(short(message_id)?)
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_timestamp(unix_now())
        .with_headers(headers))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Starts a mandatory publish; await the result with [`confirmed`]. Starting many and
/// awaiting them together pipelines the confirms.
pub async fn start_publish(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<PendingPublish, AmqpError> {
    let confirm = channel
        .basic_publish(
            short(exchange)?,
            short(routing_key)?,
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            properties,
        )
        .await?;
    Ok(PendingPublish {
        confirm,
        exchange: exchange.to_owned(),
        routing_key: routing_key.to_owned(),
    })
}

/// A publish waiting for the broker's confirm.
pub struct PendingPublish {
    confirm: PublisherConfirm,
    exchange: String,
    routing_key: String,
}

impl PendingPublish {
    /// Ok only once the broker has taken responsibility for the message.
    pub async fn confirmed(self) -> Result<(), AmqpError> {
        match self.confirm.await? {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)) => {
                Err(AmqpError::Unroutable {
                    exchange: self.exchange,
                    routing_key: self.routing_key,
                })
            }
            Confirmation::Nack(None) | Confirmation::NotRequested => Err(AmqpError::Nacked {
                exchange: self.exchange,
            }),
        }
    }
}

/// Publishes one message and waits for its confirm.
pub async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<(), AmqpError> {
    start_publish(channel, exchange, routing_key, body, properties)
        .await?
        .confirmed()
        .await
}

/// Publishes the message of a delivery sent again (a redelivery, a replay, a release
/// of held deliveries, a breaker's probe) to the deliveries exchange, confirmed, as a
/// child of the delivery's stored trace.
pub async fn publish_reopened(
    channel: &Channel,
    topology: &Topology,
    message: &hookrelay_model::wire::DeliveryMessage,
    trace_id: Option<&str>,
) -> Result<(), AmqpError> {
    use tracing::Instrument;
    let span = tracing::info_span!(
        "redeliver",
        delivery_id = %message.delivery_id,
        event_id = %message.event_id
    );
    let properties = reopened_properties(&span, message, trace_id)?;
    publish_confirmed(
        channel,
        &topology.deliveries_exchange(),
        &message.tenant,
        &message.to_json(),
        properties,
    )
    .instrument(span)
    .await
}

/// The properties of a reopened delivery's message: persistent, its trace continued
/// under `span` from the trace id its row keeps.
pub fn reopened_properties(
    span: &tracing::Span,
    message: &hookrelay_model::wire::DeliveryMessage,
    trace_id: Option<&str>,
) -> Result<BasicProperties, AmqpError> {
    let headers = trace::continue_stored(span, trace_id, Headers::new());
    persistent(&message.delivery_id.to_string(), headers.into_table())
}

/// Awaits every pending confirm; the first failure is returned after all settled.
pub async fn confirm_all(pending: Vec<PendingPublish>) -> Result<(), AmqpError> {
    let results =
        futures_util::future::join_all(pending.into_iter().map(PendingPublish::confirmed)).await;
    results.into_iter().collect()
}
