//! The consumer supervisor every role consumes through: it comes back by itself when
//! the broker ends its consumer, and a shutdown stops it at once, even while it
//! cannot reach the broker.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use hookrelay_amqp::consumer::{Ended, Session, Supervisor};
use hookrelay_amqp::{self as amqp, AmqpError};
use hookrelay_model::Topology;
use hookrelay_model::shutdown::{self, Shutdown, ShutdownTrigger};
use hookrelay_tests::{AMQP_URL, TestStack, wait_until};
use lapin::options::{BasicAckOptions, QueueDeleteOptions};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A handler that acks every message and passes its body on, counting its sessions.
async fn forward(
    session: Session,
    mut shutdown: Shutdown,
    sessions: &AtomicUsize,
    bodies: &mpsc::UnboundedSender<Vec<u8>>,
) -> Ended<Infallible> {
    sessions.fetch_add(1, Ordering::SeqCst);
    let mut consumer = session.consumer;
    loop {
        let next = tokio::select! {
            n = consumer.next() => n,
            () = shutdown.wait() => return Ended::Stopped,
        };
        let delivery = match next {
            Some(Ok(d)) => d,
            Some(Err(e)) => return Ended::Lost(e.into()),
            None => return Ended::Lost(AmqpError::ConsumerEnded),
        };
        if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
            return Ended::Lost(e.into());
        }
        let _ = bodies.send(delivery.data);
    }
}

/// A supervisor running `forward` in the background.
struct Running {
    trigger: ShutdownTrigger,
    task: JoinHandle<Result<(), Infallible>>,
    sessions: Arc<AtomicUsize>,
    bodies: mpsc::UnboundedReceiver<Vec<u8>>,
}

fn start(url: &str, topology: &Topology) -> Running {
    let supervisor = Supervisor {
        role: "test",
        url: url.to_owned(),
        topology: topology.clone(),
        queue: topology.router_queue(),
        prefetch: 10,
        sole: false,
    };
    let sessions = Arc::new(AtomicUsize::new(0));
    let (forwarded, bodies) = mpsc::unbounded_channel();
    let (trigger, stop) = shutdown::channel();
    let counted = Arc::clone(&sessions);
    let task = tokio::spawn(async move {
        supervisor
            .run(stop, |session, shutdown| {
                forward(session, shutdown, &counted, &forwarded)
            })
            .await
    });
    Running {
        trigger,
        task,
        sessions,
        bodies,
    }
}

impl Running {
    fn sessions(&self) -> usize {
        self.sessions.load(Ordering::SeqCst)
    }

    async fn next_body(&mut self) -> Vec<u8> {
        tokio::time::timeout(Duration::from_secs(10), self.bodies.recv())
            .await
            .expect("a message within 10 s")
            .expect("the handler is running")
    }

    /// Shuts down and checks that `run` returned Ok within `limit`.
    async fn stop_within(self, limit: Duration) {
        self.trigger.trigger();
        let stopped = tokio::time::timeout(limit, self.task)
            .await
            .unwrap_or_else(|_| panic!("not stopped within {limit:?} of the shutdown"));
        assert!(matches!(stopped, Ok(Ok(()))));
    }
}

/// Whether `queue` exists with one consumer, looked at on a channel of its own (a
/// look at a missing queue closes its channel).
async fn consumed(stack: &TestStack, queue: &str) -> bool {
    let Ok(channel) = stack.connection.create_channel().await else {
        return false;
    };
    let found = amqp::inspect_queue(&channel, queue).await;
    let _ = channel.close(200, "done".into()).await;
    found.is_ok_and(|q| q.consumer_count() == 1)
}

#[tokio::test]
async fn a_consumer_whose_queue_is_deleted_declares_it_again_and_resumes() {
    let stack = TestStack::new().await;
    let queue = stack.topology.router_queue();
    let mut running = start(AMQP_URL, &stack.topology);
    wait_until("the supervisor consumes", Duration::from_secs(10), || {
        consumed(&stack, &queue)
    })
    .await;
    stack.publish_raw("acme.first", b"first").await;
    assert_eq!(running.next_body().await, b"first");

    stack
        .channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .expect("delete the queue");
    wait_until(
        "the queue is declared again and consumed",
        Duration::from_secs(15),
        || consumed(&stack, &queue),
    )
    .await;
    stack.publish_raw("acme.second", b"second").await;
    assert_eq!(running.next_body().await, b"second");
    assert_eq!(running.sessions(), 2, "one reconnection");

    running.stop_within(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_shutdown_while_the_broker_cannot_be_reached_returns_at_once() {
    // A "broker" that hangs up on every connection: the supervisor keeps trying.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let tries = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&tries);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let topology = Topology::new(
        format!("t.{}", uuid::Uuid::new_v4().simple()),
        &[Duration::from_secs(1)],
        Duration::from_secs(1),
    );
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let running = start(&url, &topology);
    // Past the second try it is waiting out a backoff between connection attempts.
    wait_until(
        "the supervisor tried twice",
        Duration::from_secs(10),
        || {
            let tries = Arc::clone(&tries);
            async move { tries.load(Ordering::SeqCst) >= 2 }
        },
    )
    .await;

    assert_eq!(running.sessions(), 0, "never consumed");
    running.stop_within(Duration::from_secs(1)).await;
}
