use hookrelay_amqp::TopologyError;
use hookrelay_amqp::trace;
use hookrelay_amqp::{self as amqp, AmqpError, ConnectRetry, Headers};
use hookrelay_model::{Event, Topology};
use lapin::{Channel, Connection};
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Amqp(#[from] AmqpError),
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("event `{id}` is invalid: {source}")]
    Invalid {
        id: String,
        source: hookrelay_model::EnvelopeError,
    },
}

/// Publishes events to `{prefix}.events` with publisher confirms and persistent
/// delivery. Cheap to share (`Arc<Publisher>`); reconnects on the next publish after
/// the connection was lost.
pub struct Publisher {
    url: String,
    topology: Topology,
    retry: ConnectRetry,
    link: Mutex<Option<Link>>,
}

struct Link {
    connection: Connection,
    channel: Channel,
}

impl Publisher {
    /// Connects (retrying with backoff) and declares what publishing needs.
    pub async fn connect(
        url: &str,
        topology: Topology,
        retry: ConnectRetry,
    ) -> Result<Self, PublishError> {
        let publisher = Self {
            url: url.to_owned(),
            topology,
            retry,
            link: Mutex::new(None),
        };
        publisher.channel().await?;
        Ok(publisher)
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Whether the broker connection is up; if it is down, one quick attempt to
    /// reconnect is made first, so a readiness probe also heals an idle publisher.
    pub async fn is_connected(&self) -> bool {
        let mut link = self.link.lock().await;
        if link
            .as_ref()
            .is_some_and(|l| l.channel.status().connected())
        {
            return true;
        }
        let once = ConnectRetry {
            attempts: 1,
            max_delay: std::time::Duration::from_secs(1),
        };
        match self.open(once).await {
            Ok(l) => {
                *link = Some(l);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "publisher cannot reach RabbitMQ");
                false
            }
        }
    }

    async fn open(&self, retry: ConnectRetry) -> Result<Link, PublishError> {
        let connection = amqp::connect(&self.url, "hookrelay-producer", retry).await?;
        let channel = amqp::confirm_channel(&connection).await?;
        hookrelay_amqp::topology::declare_ingress(&self.topology, &channel).await?;
        Ok(Link {
            connection,
            channel,
        })
    }

    async fn channel(&self) -> Result<Channel, PublishError> {
        let mut link = self.link.lock().await;
        if let Some(l) = link.as_ref()
            && l.channel.status().connected()
        {
            return Ok(l.channel.clone());
        }
        *link = None;
        let opened = self.open(self.retry).await?;
        let channel = opened.channel.clone();
        *link = Some(opened);
        Ok(channel)
    }

    /// Closes the broker connection; a later publish connects again. Close a
    /// publisher before dropping it: dropped connected, lapin logs its channel's close
    /// as a connection error.
    pub async fn close(&self) {
        if let Some(link) = self.link.lock().await.take() {
            amqp::close(&link.connection, &[link.channel], "publisher closed").await;
        }
    }

    /// Publishes one event; returns once the broker confirmed it.
    pub async fn publish(&self, event: &Event) -> Result<(), PublishError> {
        self.publish_batch(std::slice::from_ref(event)).await
    }

    /// Publishes events with pipelined confirms; returns once all are confirmed. On an
    /// error some may have been published: publishing again is safe, hookrelay
    /// de-duplicates by event id.
    pub async fn publish_batch(&self, events: &[Event]) -> Result<(), PublishError> {
        for event in events {
            event.validate().map_err(|source| PublishError::Invalid {
                id: event.id.to_string(),
                source,
            })?;
        }
        let channel = self.channel().await?;
        let exchange = self.topology.events_exchange();
        let mut pending = Vec::with_capacity(events.len());
        for event in events {
            // The span of each publish is the root (or a child of the caller's span) of
            // the event's trace; its context travels in the message headers.
            let span = tracing::info_span!("publish", event_id = %event.id, tenant = %event.tenant, event_type = %event.event_type);
            let headers = trace::inject(&span, None, Headers::new());
            let properties = amqp::persistent(&event.id, headers.into_table())?;
            let publish = amqp::start_publish(
                &channel,
                &exchange,
                &event.routing_key(),
                &event.to_json(),
                properties,
            )
            .await?;
            pending.push(publish);
        }
        amqp::confirm_all(pending).await?;
        tracing::debug!(count = events.len(), "events published");
        Ok(())
    }
}
