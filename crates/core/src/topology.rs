//! Every RabbitMQ name and argument hookrelay uses (docs/topology.md describes them).
//!
//! `declare` is idempotent and every role calls it at start, so any role can be the
//! first to come up. Queue arguments are fixed here, never defaulted by the broker, so
//! RabbitMQ 3.10 and 4.x behave the same.

use std::time::Duration;

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

/// How often a work-queue message may be handed out before the broker dead-letters it.
/// Guards against a message that crashes its consumer every time (a poison message
/// the code did not foresee).
pub const DELIVERY_LIMIT: i32 = 10;

/// The dead-letter queue's delivery limit: as high as AMQP allows, never reached.
/// (`-1`, "unlimited" on RabbitMQ 4, drops returned messages on 3.x.)
pub const DEAD_LETTER_DELIVERY_LIMIT: i32 = i32::MAX;

/// Delay queues always declared besides the configured retry delays, so that a
/// `Retry-After` and the per-webhook deferral have a queue close to what they ask for.
const DELAY_LADDER: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(300),
];

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("declaring {what} `{name}` failed: {source}")]
    Declare {
        what: &'static str,
        name: String,
        source: lapin::Error,
    },
    #[error("AMQP name `{0}` is longer than 255 bytes; use a shorter prefix")]
    NameTooLong(String),
}

/// The names derived from one prefix, and the delay queues of one retry set-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    delays: Vec<Duration>,
    /// `x-expires` on every queue: only tests set it, as a safety net.
    queue_expires: Option<Duration>,
}

impl Topology {
    /// `retry_delays` are the sender's delays between attempts; `max_delay` caps
    /// `Retry-After` and bounds which ladder queues exist.
    pub fn new(prefix: impl Into<String>, retry_delays: &[Duration], max_delay: Duration) -> Self {
        let mut delays: Vec<Duration> = retry_delays
            .iter()
            .copied()
            .chain(DELAY_LADDER.iter().copied().filter(|d| *d <= max_delay))
            .chain(std::iter::once(max_delay))
            .filter(|d| !d.is_zero())
            .collect();
        delays.sort();
        delays.dedup();
        Self {
            prefix: prefix.into(),
            delays,
            queue_expires: None,
        }
    }

    /// Queues delete themselves after being unused this long (tests only).
    pub fn with_queue_expiry(mut self, after: Duration) -> Self {
        self.queue_expires = Some(after);
        self
    }

    /// Topic exchange upstreams publish to, routing key `{tenant}.{type}`.
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    /// The router's work queue, bound to the events exchange with `#`.
    pub fn router_queue(&self) -> String {
        format!("{}.router", self.prefix)
    }

    /// Topic exchange the router fans deliveries out to, routing key `{tenant}`.
    pub fn deliveries_exchange(&self) -> String {
        format!("{}.deliveries", self.prefix)
    }

    /// The sender's work queue.
    pub fn deliveries_queue(&self) -> String {
        format!("{}.deliveries", self.prefix)
    }

    /// Fanout exchange for everything that could not be handled.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dead-letter", self.prefix)
    }

    /// The one queue operators inspect and replay from.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead-letter", self.prefix)
    }

    /// The delay queue that holds a message for `delay` (published to through the
    /// default exchange with this name as routing key).
    pub fn delay_queue_name(&self, delay: Duration) -> String {
        format!("{}.delay.{}ms", self.prefix, delay.as_millis())
    }

    /// Every delay queue's delay, shortest first.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// The shortest delay queue that waits at least `wanted` (the longest if none does).
    pub fn delay_at_least(&self, wanted: Duration) -> Duration {
        self.delays
            .iter()
            .copied()
            .find(|d| *d >= wanted)
            .or_else(|| self.delays.last().copied())
            .unwrap_or(wanted)
    }

    /// Declares all exchanges, queues and bindings. Safe to call concurrently and often.
    pub async fn declare(&self, channel: &Channel) -> Result<(), TopologyError> {
        self.declare_ingress(channel).await?;
        let deliveries = self.deliveries_exchange();
        self.exchange(channel, &deliveries, ExchangeKind::Topic)
            .await?;
        let sender = self.deliveries_queue();
        self.queue(channel, &sender, self.work_queue_args()).await?;
        self.bind(channel, &sender, &deliveries, "#").await?;

        for delay in &self.delays {
            let name = self.delay_queue_name(*delay);
            self.queue(channel, &name, self.delay_queue_args(*delay))
                .await?;
        }
        Ok(())
    }

    /// Declares what publishing events needs: the events exchange, the router's queue
    /// (so nothing published is unroutable) and the dead-letter exchange and queue.
    /// Upstream publishers call this; they need not know the sender's retry delays.
    pub async fn declare_ingress(&self, channel: &Channel) -> Result<(), TopologyError> {
        let events = self.events_exchange();
        let dlx = self.dead_letter_exchange();
        self.exchange(channel, &events, ExchangeKind::Topic).await?;
        self.exchange(channel, &dlx, ExchangeKind::Fanout).await?;

        // The dead-letter queue itself has no dead-letter exchange: it is the end.
        let dlq = self.dead_letter_queue();
        self.queue(channel, &dlq, self.dead_letter_queue_args())
            .await?;
        self.bind(channel, &dlq, &dlx, "#").await?;

        let router = self.router_queue();
        self.queue(channel, &router, self.work_queue_args()).await?;
        self.bind(channel, &router, &events, "#").await
    }

    /// Deletes everything `declare` made (test clean-up; never used by the roles).
    pub async fn delete(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let mut queues = vec![
            self.router_queue(),
            self.deliveries_queue(),
            self.dead_letter_queue(),
        ];
        queues.extend(self.delays.iter().map(|d| self.delay_queue_name(*d)));
        for q in queues {
            channel
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
        for x in [
            self.events_exchange(),
            self.deliveries_exchange(),
            self.dead_letter_exchange(),
        ] {
            channel
                .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
                .await?;
        }
        Ok(())
    }

    fn quorum_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), long_string("quorum"));
        if let Some(expires) = self.queue_expires {
            args.insert("x-expires".into(), millis(expires));
        }
        args
    }

    /// The dead-letter queue: operators read it by taking messages and handing them
    /// back, which a quorum queue counts as deliveries; RabbitMQ 4 would drop a
    /// message after 20 such reads by default. The highest limit never drops one.
    fn dead_letter_queue_args(&self) -> FieldTable {
        let mut args = self.quorum_args();
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(DEAD_LETTER_DELIVERY_LIMIT),
        );
        args
    }

    /// Work queues: quorum, bounded redelivery, at-least-once dead-lettering.
    fn work_queue_args(&self) -> FieldTable {
        let mut args = self.quorum_args();
        args.insert(
            "x-dead-letter-exchange".into(),
            long_string(&self.dead_letter_exchange()),
        );
        args.insert(
            "x-dead-letter-strategy".into(),
            long_string("at-least-once"),
        );
        // at-least-once dead-lettering requires reject-publish overflow.
        args.insert("x-overflow".into(), long_string("reject-publish"));
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(DELIVERY_LIMIT),
        );
        args
    }

    /// Delay queues: nobody consumes them; after the TTL the broker dead-letters the
    /// message through the default exchange straight into the deliveries queue.
    fn delay_queue_args(&self, delay: Duration) -> FieldTable {
        let mut args = self.quorum_args();
        args.insert("x-message-ttl".into(), millis(delay));
        args.insert("x-dead-letter-exchange".into(), long_string(""));
        args.insert(
            "x-dead-letter-routing-key".into(),
            long_string(&self.deliveries_queue()),
        );
        args.insert(
            "x-dead-letter-strategy".into(),
            long_string("at-least-once"),
        );
        args.insert("x-overflow".into(), long_string("reject-publish"));
        args
    }

    async fn exchange(
        &self,
        channel: &Channel,
        name: &str,
        kind: ExchangeKind,
    ) -> Result<(), TopologyError> {
        let options = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .exchange_declare(short(name)?, kind, options, FieldTable::default())
            .await
            .map_err(|source| TopologyError::Declare {
                what: "exchange",
                name: name.to_owned(),
                source,
            })
    }

    async fn queue(
        &self,
        channel: &Channel,
        name: &str,
        args: FieldTable,
    ) -> Result<(), TopologyError> {
        let options = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .queue_declare(short(name)?, options, args)
            .await
            .map(|_| ())
            .map_err(|source| TopologyError::Declare {
                what: "queue",
                name: name.to_owned(),
                source,
            })
    }

    async fn bind(
        &self,
        channel: &Channel,
        queue: &str,
        exchange: &str,
        key: &str,
    ) -> Result<(), TopologyError> {
        channel
            .queue_bind(
                short(queue)?,
                short(exchange)?,
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|source| TopologyError::Declare {
                what: "binding of queue",
                name: queue.to_owned(),
                source,
            })
    }
}

fn short(name: &str) -> Result<ShortString, TopologyError> {
    ShortString::try_new(name.to_owned()).map_err(|_| TopologyError::NameTooLong(name.to_owned()))
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.to_owned()))
}

fn millis(d: Duration) -> AMQPValue {
    let ms = d.as_millis();
    match i32::try_from(ms) {
        Ok(v) => AMQPValue::LongInt(v),
        Err(_) => AMQPValue::LongLongInt(i64::try_from(ms).unwrap_or(i64::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix() {
        let t = Topology::new(
            "hookrelay",
            &[Duration::from_secs(5)],
            Duration::from_secs(300),
        );
        assert_eq!(t.events_exchange(), "hookrelay.events");
        assert_eq!(t.router_queue(), "hookrelay.router");
        assert_eq!(t.deliveries_queue(), "hookrelay.deliveries");
        assert_eq!(t.dead_letter_queue(), "hookrelay.dead-letter");
        assert_eq!(
            t.delay_queue_name(Duration::from_millis(1500)),
            "hookrelay.delay.1500ms"
        );
    }

    #[test]
    fn delays_merge_configured_and_ladder_up_to_the_cap() {
        let t = Topology::new(
            "p",
            &[Duration::from_millis(200), Duration::from_secs(5)],
            Duration::from_secs(10),
        );
        let secs: Vec<u128> = t.delays().iter().map(|d| d.as_millis()).collect();
        assert_eq!(secs, vec![200, 1000, 5000, 10000]);
        assert_eq!(
            t.delay_at_least(Duration::from_millis(300)),
            Duration::from_secs(1)
        );
        assert_eq!(
            t.delay_at_least(Duration::from_secs(60)),
            Duration::from_secs(10)
        );
    }
}
