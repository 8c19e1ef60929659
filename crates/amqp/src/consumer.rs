//! The consumer supervisor: how every role consumes. It connects, declares the
//! topology, sets the prefetch, starts consuming, and hands each connection's channel
//! and consumer to the role's handler; when the handler reports the broker lost (the
//! connection, channel or consumer ended), it reconnects with backoff, until
//! shutdown. While a session runs, a watchdog asks the broker every few seconds
//! whether the queue still has a consumer: a quorum queue can forget one registered
//! while its leader was being elected (seen on RabbitMQ 3.10 when a cluster node was
//! killed), which would leave the role connected and idle for good. Twice none, and
//! the watchdog closes the channel, so the handler winds down and the supervisor
//! consumes again.
//!
//! A `sole` role waits for the queue to list no consumer before it consumes, also
//! when it reconnects; but a quorum queue keeps listing a consumer whose node it
//! cannot reach (a node cut off and paused by `pause_minority`, or killed) until the
//! node is back, though it handed that consumer's messages back when it lost the
//! node. So after the broker itself ended the role's connection, the wait on
//! reconnecting is bounded ([`AFTER_BROKER_CLOSED`]).

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::{FutureExt, StreamExt};
use hookrelay_model::Topology;
use hookrelay_model::shutdown::Shutdown;
use lapin::{Channel, Consumer};

use crate::{AmqpError, Sole, inspect_queue, open_consumer};

/// Longest pause between two tries to consume again.
const RECONNECT_MAX: Duration = Duration::from_secs(10);

/// Pauses between tries to consume again: 200 ms doubling up to 10 s, for as long as
/// it takes; back to 200 ms once a connection consumed.
const RECONNECT: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(200))
    .with_max_delay(RECONNECT_MAX)
    .without_max_times();

/// How long a `sole` role, reconnecting after the broker ended its connection, waits
/// for the queue to stop listing its earlier consumer: a node that can reach the queue
/// tells it at once that the channel is gone; one that cannot is written off by the
/// queue, which hands the consumer's messages back, but keeps listing it.
pub const AFTER_BROKER_CLOSED: Duration = Duration::from_secs(5);

/// How often the watchdog looks at the queue's consumers.
const WATCH_EVERY: Duration = Duration::from_secs(2);
/// Looks in a row that found no consumer before the session is ended.
const WATCH_STRIKES: u32 = 2;

/// What a role consumes, and under which name it logs and connects.
#[derive(Debug, Clone)]
pub struct Supervisor {
    /// The role's name in logs; the connection and the consumer are named
    /// `hookrelay-{role}`.
    pub role: &'static str,
    pub url: String,
    pub topology: Topology,
    pub queue: String,
    /// Unacked messages the broker hands over at once.
    pub prefetch: u16,
    /// Consume only once the queue has no other consumer: for a role of which one
    /// consumes at a time (the router, in queue order) and whose caller makes sure
    /// no other starts meanwhile. Within one [`Supervisor::run`], a consumer still
    /// listed on reconnecting is then this role's own earlier one: after the broker
    /// ended that connection, it is waited for [`AFTER_BROKER_CLOSED`] at most.
    pub sole: bool,
}

/// One connection's consuming, handed to the role's handler.
pub struct Session {
    /// In confirm mode, with the topology declared: publish follow-ups on it.
    pub channel: Channel,
    pub consumer: Consumer,
}

/// Why a handler gave its session back.
#[derive(Debug)]
pub enum Ended<E> {
    /// Shutdown was asked for and the handler wound down: the supervisor returns.
    Stopped,
    /// The connection, channel or consumer ended: the supervisor reconnects.
    Lost(AmqpError),
    /// The role cannot go on: the supervisor returns the error.
    Failed(E),
}

impl Supervisor {
    /// Consumes until `shutdown` fires or the handler fails. `handle` is called once
    /// per connection and owns it until it returns; the connection is closed after,
    /// which hands whatever the handler left unacked back to the queue.
    pub async fn run<E, F, Fut>(&self, mut shutdown: Shutdown, mut handle: F) -> Result<(), E>
    where
        F: FnMut(Session, Shutdown) -> Fut,
        Fut: Future<Output = Ended<E>>,
    {
        let role = self.role;
        let name = format!("hookrelay-{role}");
        let mut pauses = RECONNECT.build();
        // Whether the broker ended this run's last connection (see `sole`).
        let mut broker_closed = false;
        while !shutdown.is_triggered() {
            let sole = match (self.sole, broker_closed) {
                (false, _) => Sole::No,
                (true, false) => Sole::Wait,
                (true, true) => Sole::WaitAtMost(AFTER_BROKER_CLOSED),
            };
            let opened = tokio::select! {
                o = open_consumer(&self.url, &name, &self.topology, (&self.queue, self.prefetch, sole)) => o,
                () = shutdown.wait() => break,
            };
            let pause = match opened {
                Ok((connection, channel, consumer)) => {
                    pauses = RECONNECT.build();
                    let mut events = Box::pin(connection.events_listener());
                    let mut channels = vec![channel.clone()];
                    let watchdog = match connection.create_channel().await {
                        Ok(look) => {
                            channels.push(look.clone());
                            Some(tokio::spawn(watch(
                                role,
                                look,
                                channel.clone(),
                                self.queue.clone(),
                                shutdown.clone(),
                            )))
                        }
                        Err(e) => {
                            tracing::warn!(role, error = %e, "{role} cannot open its watchdog channel");
                            None
                        }
                    };
                    let ended = handle(Session { channel, consumer }, shutdown.clone()).await;
                    if let Some(w) = watchdog {
                        w.abort();
                    }
                    crate::close(&connection, &channels, &format!("{role} stopping")).await;
                    // The connection's own error says who ended it; else the handler's.
                    let mut first_error = None;
                    while let Some(Some(event)) = events.next().now_or_never() {
                        if let lapin::Event::Error(e) = event {
                            first_error.get_or_insert(e);
                        }
                    }
                    broker_closed = match (&first_error, &ended) {
                        (Some(e), _) | (None, Ended::Lost(AmqpError::Broker(e))) => {
                            closed_by_broker(e)
                        }
                        (None, _) => false,
                    };
                    match ended {
                        Ended::Stopped => break,
                        Ended::Failed(e) => return Err(e),
                        Ended::Lost(e) => {
                            tracing::warn!(role, error = %e, "{role} lost the broker; reconnecting");
                        }
                    }
                    pauses.next().unwrap_or(RECONNECT_MAX)
                }
                Err(e) => {
                    let pause = pauses.next().unwrap_or(RECONNECT_MAX);
                    tracing::warn!(role, error = %e, retry_in = ?pause, "{role} cannot start consuming");
                    pause
                }
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shutdown.wait() => break,
            }
        }
        tracing::info!(role, "{role} stopped");
        Ok(())
    }
}

/// Whether the broker's side ended a connection (reset or closed it): then its
/// channels are gone on the broker too. A connection this process gave up on (a
/// missed heartbeat, a timeout) may still be open there, its consumer holding
/// messages until the broker notices.
fn closed_by_broker(error: &lapin::Error) -> bool {
    use std::io::ErrorKind as Io;
    match error.kind() {
        lapin::ErrorKind::IOError(e) => matches!(
            e.kind(),
            Io::ConnectionReset | Io::ConnectionAborted | Io::UnexpectedEof | Io::BrokenPipe
        ),
        // `connection.close` from the broker (a node stopping: connection-forced).
        lapin::ErrorKind::ProtocolError(_) => true,
        _ => false,
    }
}

/// Closes `consuming` once `look` has found no consumer on `queue` [`WATCH_STRIKES`]
/// times in a row, or the queue gone (a deleted quorum queue was seen to leave its
/// consumer uncancelled: the role consumed nothing until restarted); returns then, or
/// at shutdown (a handler draining has cancelled its consumer on purpose).
async fn watch(
    role: &'static str,
    look: Channel,
    consuming: Channel,
    queue: String,
    mut shutdown: Shutdown,
) {
    let mut strikes = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(WATCH_EVERY) => {}
            () = shutdown.wait() => return,
        }
        // A queue between leaders may not answer at once; that is no verdict.
        let consumers = match tokio::time::timeout(WATCH_EVERY, inspect_queue(&look, &queue)).await
        {
            Ok(Ok(q)) => q.consumer_count(),
            Ok(Err(e)) => {
                // The queue is gone (or the connection, and closing costs nothing):
                // the next session declares it again.
                tracing::warn!(role, %queue, error = %e, "{role} cannot see its queue; consuming again");
                let _ = consuming.close(200, "the queue is gone".into()).await;
                return;
            }
            Err(_) => continue,
        };
        strikes = if consumers == 0 { strikes + 1 } else { 0 };
        if strikes >= WATCH_STRIKES {
            tracing::warn!(role, %queue, "the broker lists no consumer on the queue; consuming again");
            let _ = consuming
                .close(200, "the broker lost this consumer".into())
                .await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConnectRetry, connect};

    /// Needs the RabbitMQ of `cargo xtask test` (127.0.0.1:5672).
    const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

    #[test]
    fn only_a_connection_the_broker_ended_is_closed_by_the_broker() {
        use std::io::{Error, ErrorKind as Io};
        let io = |kind: Io| lapin::Error::from(Error::new(kind, "test"));
        for ended in [
            Io::ConnectionReset,
            Io::ConnectionAborted,
            Io::UnexpectedEof,
            Io::BrokenPipe,
        ] {
            assert!(closed_by_broker(&io(ended)), "{ended:?}");
        }
        for ours in [Io::TimedOut, Io::HostUnreachable, Io::ConnectionRefused] {
            assert!(!closed_by_broker(&io(ours)), "{ours:?}");
        }
        let heartbeat = lapin::Error::from(lapin::ErrorKind::MissingHeartbeatError);
        assert!(!closed_by_broker(&heartbeat));
    }

    #[tokio::test]
    async fn the_watchdog_ends_a_session_whose_queue_is_gone() {
        let connection = connect(URL, "hookrelay-test-watchdog", ConnectRetry::default())
            .await
            .expect("RabbitMQ must run at 127.0.0.1:5672 (cargo xtask test starts it)");
        let consuming = connection.create_channel().await.expect("channel");
        let look = connection.create_channel().await.expect("channel");
        let (_trigger, shutdown) = hookrelay_model::shutdown::channel();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let queue = format!("t.watchdog-{}-{nanos}.gone", std::process::id());
        let watching = watch("test", look, consuming.clone(), queue, shutdown);
        tokio::time::timeout(WATCH_EVERY * 3, watching)
            .await
            .expect("the watchdog returns once it finds the queue gone");
        assert!(
            !consuming.status().connected(),
            "the session's channel is closed, so its handler ends and the role reconnects"
        );
        let _ = connection.close(200, "done".into()).await;
    }
}
