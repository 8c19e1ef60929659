//! Every RabbitMQ name and argument hookrelay uses (docs/topology.md describes them).
//!
//! Pure names and arguments; `hookrelay-amqp` declares them. Declaring is idempotent
//! and every role does it at start, so any role can be the first to come up. Queue arguments are fixed here, never defaulted by the broker, so
//! RabbitMQ 3.10 and 4.x behave the same.

use std::time::Duration;

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

    /// Everything the roles need: [`Self::ingress`], then the deliveries exchange,
    /// the sender's queue and the delay queues.
    pub fn declarations(&self) -> Declarations {
        let mut all = self.ingress();
        let deliveries = self.deliveries_exchange();
        let sender = self.deliveries_queue();
        all.exchanges.push(Exchange {
            name: deliveries.clone(),
            kind: ExchangeKind::Topic,
        });
        all.queues.push(Queue {
            name: sender.clone(),
            args: self.work_queue_args(),
        });
        all.bindings.push(Binding {
            queue: sender,
            exchange: deliveries,
            key: "#".into(),
        });
        for delay in &self.delays {
            all.queues.push(Queue {
                name: self.delay_queue_name(*delay),
                args: self.delay_queue_args(*delay),
            });
        }
        all
    }

    /// What publishing events needs: the events exchange, the router's queue (so
    /// nothing published is unroutable) and the dead-letter exchange and queue.
    /// Upstream publishers declare this; they need not know the sender's retry delays.
    pub fn ingress(&self) -> Declarations {
        let events = self.events_exchange();
        let dlx = self.dead_letter_exchange();
        let dlq = self.dead_letter_queue();
        let router = self.router_queue();
        Declarations {
            exchanges: vec![
                Exchange {
                    name: events.clone(),
                    kind: ExchangeKind::Topic,
                },
                Exchange {
                    name: dlx.clone(),
                    kind: ExchangeKind::Fanout,
                },
            ],
            queues: vec![
                // The dead-letter queue itself has no dead-letter exchange: it is the end.
                Queue {
                    name: dlq.clone(),
                    args: self.dead_letter_queue_args(),
                },
                Queue {
                    name: router.clone(),
                    args: self.work_queue_args(),
                },
            ],
            bindings: vec![
                Binding {
                    queue: dlq,
                    exchange: dlx,
                    key: "#".into(),
                },
                Binding {
                    queue: router,
                    exchange: events,
                    key: "#".into(),
                },
            ],
        }
    }

    /// Every queue `declarations` makes, work queues first.
    pub fn queues(&self) -> Vec<String> {
        let mut queues = vec![
            self.router_queue(),
            self.deliveries_queue(),
            self.dead_letter_queue(),
        ];
        queues.extend(self.delays.iter().map(|d| self.delay_queue_name(*d)));
        queues
    }

    /// Every exchange `declarations` makes.
    pub fn exchanges(&self) -> Vec<String> {
        vec![
            self.events_exchange(),
            self.deliveries_exchange(),
            self.dead_letter_exchange(),
        ]
    }

    fn quorum_args(&self) -> Vec<(&'static str, Arg)> {
        let mut args = vec![("x-queue-type", Arg::text("quorum"))];
        if let Some(expires) = self.queue_expires {
            args.push(("x-expires", Arg::millis(expires)));
        }
        args
    }

    /// The dead-letter queue: operators read it by taking messages and handing them
    /// back, which a quorum queue counts as deliveries; RabbitMQ 4 would drop a
    /// message after 20 such reads by default. The highest limit never drops one.
    fn dead_letter_queue_args(&self) -> Vec<(&'static str, Arg)> {
        let mut args = self.quorum_args();
        args.push((
            "x-delivery-limit",
            Arg::Int(i64::from(DEAD_LETTER_DELIVERY_LIMIT)),
        ));
        args
    }

    /// Work queues: quorum, bounded redelivery, at-least-once dead-lettering.
    fn work_queue_args(&self) -> Vec<(&'static str, Arg)> {
        let mut args = self.quorum_args();
        args.extend([
            (
                "x-dead-letter-exchange",
                Arg::Text(self.dead_letter_exchange()),
            ),
            ("x-dead-letter-strategy", Arg::text("at-least-once")),
            // at-least-once dead-lettering requires reject-publish overflow.
            ("x-overflow", Arg::text("reject-publish")),
            ("x-delivery-limit", Arg::Int(i64::from(DELIVERY_LIMIT))),
        ]);
        args
    }

    /// Delay queues: nobody consumes them; after the TTL the broker dead-letters the
    /// message through the default exchange straight into the deliveries queue.
    fn delay_queue_args(&self, delay: Duration) -> Vec<(&'static str, Arg)> {
        let mut args = self.quorum_args();
        args.extend([
            ("x-message-ttl", Arg::millis(delay)),
            ("x-dead-letter-exchange", Arg::text("")),
            (
                "x-dead-letter-routing-key",
                Arg::Text(self.deliveries_queue()),
            ),
            ("x-dead-letter-strategy", Arg::text("at-least-once")),
            ("x-overflow", Arg::text("reject-publish")),
        ]);
        args
    }
}

/// Exchanges, queues and bindings to declare, in order (exchanges, then queues, then
/// bindings), all durable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Declarations {
    pub exchanges: Vec<Exchange>,
    pub queues: Vec<Queue>,
    pub bindings: Vec<Binding>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    Topic,
    Fanout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub name: String,
    pub kind: ExchangeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub name: String,
    pub args: Vec<(&'static str, Arg)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub queue: String,
    pub exchange: String,
    pub key: String,
}

/// A queue argument's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Text(String),
    Int(i64),
}

impl Arg {
    fn text(s: &str) -> Self {
        Self::Text(s.to_owned())
    }

    fn millis(d: Duration) -> Self {
        Self::Int(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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
