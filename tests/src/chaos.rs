//! The fault run: thousands of events through router and sender child processes
//! while they are killed with SIGKILL at random moments and restarted, optionally
//! with RabbitMQ and Postgres stopped and started mid-run, against a receiver that
//! answers 429, 500 and slowly. Afterwards it checks the promise, from the database,
//! the dead-letter queue and what the receiver saw, and returns the figures.
//! Used by `cargo xtask chaos` and by an end-to-end test (kills only). With a
//! [`Cluster`], it runs on a 3-node RabbitMQ cluster instead and SIGKILLs the node
//! leading the most hookrelay queues mid-run (`cargo xtask chaos --cluster`).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookrelay_model::Event;
use serde::Serialize;
use serde_json::json;

use crate::bench::{Child, start_role};
use crate::cluster::Cluster;
use crate::receiver::{Behaviour, Received, Receiver};
use crate::stack::{event, webhook};
use crate::{TestStack, wait_until};

#[derive(Debug, Clone)]
pub struct Options {
    pub events: usize,
    /// Senders running at once (each killed and restarted on its own).
    pub senders: usize,
    /// Stop and start RabbitMQ (`rabbitmqctl stop_app` / `start_app`) mid-run.
    pub restart_broker: bool,
    /// Restart Postgres (`pg_ctlcluster ... restart`) mid-run.
    pub restart_database: bool,
    /// Time between kills, at random within this range.
    pub kill_every: (Duration, Duration),
    /// How long everything may take to settle after the last fault.
    pub settle_within: Duration,
    /// Pause between batches of 50 published events: how long the events flow, and
    /// so how many kills land while they do.
    pub publish_pause: Duration,
    /// SIGKILL router and senders at random (`kill_every`).
    pub kill_roles: bool,
    /// Run on this cluster instead of this machine's broker, and kill the node
    /// leading the most queues once a quarter of the events have been delivered.
    pub cluster: Option<Arc<Cluster>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            events: 2000,
            senders: 2,
            restart_broker: false,
            restart_database: false,
            kill_every: (Duration::from_millis(300), Duration::from_millis(900)),
            settle_within: Duration::from_secs(120),
            publish_pause: Duration::from_millis(10),
            kill_roles: true,
            cluster: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    pub events: usize,
    pub router_kills: usize,
    pub sender_kills: usize,
    pub broker_restarts: usize,
    pub database_restarts: usize,
    pub seconds: f64,
    pub deliveries: i64,
    pub delivered: i64,
    pub failed: i64,
    pub dead_lettered: usize,
    /// POSTs the receiver answered 2xx beyond the first per delivery.
    pub receiver_duplicates: usize,
    /// What duplicates may number: what each killed or cut-off role can have had
    /// unacked (a sender's concurrency, a router's batch).
    pub duplicate_bound: usize,
    /// The senders' in-flight gauges just before each sender kill, summed: what the
    /// kills really interrupted.
    pub in_flight_at_kills: usize,
    /// Probe events published after each broker or database restart and delivered by
    /// the very processes that lived through it (no kill meanwhile): they reconnected
    /// by themselves.
    pub probes_after_restarts: usize,
    /// Cluster nodes killed (SIGKILL), and the one killed.
    pub node_kills: usize,
    pub node_killed: String,
    /// Of the run's queues (all quorum, on all three nodes), how many it led.
    pub queues_led_by_killed: usize,
    pub queues: usize,
    /// The leaders after the kill, one per queue.
    pub leaders_after_kill: Vec<String>,
    /// From the kill to the next delivery the receiver answered 2xx for the first
    /// time (an HTTP request already in flight at the kill can make this short).
    pub pause_after_kill_ms: Option<f64>,
    /// The longest gap between two such first deliveries from the kill until the
    /// last event was published: how long deliveries really stopped.
    pub longest_gap_after_kill_ms: Option<f64>,
}

/// A sender's unacked messages can be at most its concurrency (the default).
pub(crate) const SENDER_IN_FLIGHT: usize = hookrelay_sender::DEFAULT_CONCURRENCY as usize;
/// A router's unacked events can be at most its prefetch (the default); a router
/// taking them again sends their never-attempted deliveries again.
pub(crate) const ROUTER_UNACKED: usize = hookrelay_router::DEFAULT_PREFETCH as usize;
/// Probe events published after each restart.
const PROBES: usize = 50;

/// How the receiver treats a delivery, chosen by its id so each run is checkable:
/// 1 in 25 always 500 (fails for good), 1 in 10 answers 429 once, 1 in 20 is slow,
/// 1 in 50 has its connection dropped mid-request at the first attempt (a connection
/// error: not retried by default, so it fails for good too).
fn behaviour(webhook_id: &str) -> u32 {
    webhook_id
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 100
}

pub(crate) fn expect_failed(webhook_id: &str) -> bool {
    let b = behaviour(webhook_id);
    b < 4 || (19..21).contains(&b)
}

/// The receiver's answer to one request, by [`behaviour`] and the attempt number.
pub(crate) fn answer(request: &Received) -> Behaviour {
    let b = behaviour(&webhook_id(request));
    let first = request
        .header("x-hookrelay-attempt")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1)
        == 1;
    match b {
        0..4 => Behaviour::Status(500),
        4..14 if first => Behaviour::Status(429),
        4..19 => Behaviour::Slow(Duration::from_millis(150), 200),
        19..21 if first => Behaviour::DropConnection,
        _ => Behaviour::Status(200),
    }
}

/// The receiver tallies its 2xx answers per webhook-id.
pub(crate) fn webhook_id(request: &Received) -> String {
    request.header("webhook-id").unwrap_or_default()
}

/// A small deterministic generator for kill timing and victims.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn between(&mut self, (lo, hi): (Duration, Duration)) -> Duration {
        let span = hi.saturating_sub(lo).as_millis().max(1) as u64;
        lo + Duration::from_millis(self.next() % span)
    }
}

fn run_command(program: &str, args: &[&str]) {
    let ok = std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "`{program} {}` failed", args.join(" "));
}

fn postgres_version() -> String {
    std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .max()
        })
        .unwrap_or_else(|| "15".into())
}

/// Publishes, retrying through broker outages: the publisher reconnects by itself.
/// Returns when the last batch was confirmed.
async fn publish_all(
    publisher: Arc<hookrelay_producer::Publisher>,
    events: Vec<Event>,
    pause: Duration,
) -> Instant {
    for batch in events.chunks(50) {
        publish_through_outages(&publisher, batch).await;
        tokio::time::sleep(pause).await;
    }
    Instant::now()
}

/// Publishes `batch`, trying again through broker outages (the publisher reconnects
/// by itself) for up to 2 minutes.
pub(crate) async fn publish_through_outages(
    publisher: &hookrelay_producer::Publisher,
    batch: &[Event],
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while let Err(e) = publisher.publish_batch(batch).await {
        assert!(
            Instant::now() < deadline,
            "publishing failed for 2 minutes: {e}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A database connection that answers: those from before a restart are gone.
pub(crate) async fn fresh_connection(stack: &TestStack) -> deadpool_postgres::Object {
    loop {
        match stack.db.pool.get().await {
            Ok(c) if c.simple_query("SELECT 1").await.is_ok() => return c,
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// After a broker or database restart: with no kill meanwhile, fresh events must be
/// delivered or dead-lettered by the processes that lived through the restart, which
/// proves they reconnected by themselves.
async fn probe(
    stack: &TestStack,
    events: &mut Vec<Event>,
    router: &mut Child,
    senders: &mut [Child],
    options: &Options,
) {
    let probes: Vec<Event> = (0..PROBES)
        .map(|_| event("chaos", "file_uploaded", json!({})))
        .collect();
    publish_through_outages(&stack.publisher, &probes).await;
    events.extend(probes.iter().cloned());
    let db = fresh_connection(stack).await;
    let ids: Vec<String> = probes.into_iter().map(|e| e.id.into()).collect();
    wait_until(
        "the probes settled by the same processes",
        options.settle_within,
        || async {
            db.query_one(
                "SELECT count(*) FROM deliveries WHERE event_id = ANY($1) \
                 AND status IN ('delivered', 'failed')",
                &[&ids],
            )
            .await
            .is_ok_and(|r| r.get::<_, i64>(0) as usize == ids.len())
        },
    )
    .await;
    for child in std::iter::once(router).chain(senders.iter_mut()) {
        assert!(
            matches!(child.process.try_wait(), Ok(None)),
            "a role exited during the restart instead of reconnecting"
        );
    }
}

/// Whether all `total` deliveries have a final status. `held` is not one: a
/// webhook's circuit breaker tripped by the faults (a machine saturated by an
/// election can leave requests unanswered for seconds) holds them until its probe
/// closes it and they are sent.
async fn settled(db: &deadpool_postgres::Object, total: usize) -> bool {
    db.query_one(
        "SELECT count(*) FILTER (WHERE status IN ('delivered', 'failed')) AS done \
         FROM deliveries",
        &[],
    )
    .await
    .is_ok_and(|r| r.get::<_, i64>("done") as usize >= total)
}

pub async fn run(binary: &Path, options: &Options) -> Figures {
    let stack = match &options.cluster {
        Some(cluster) => TestStack::for_processes_on(&cluster.amqp_url()).await,
        None => TestStack::for_processes().await,
    };
    let receiver = Receiver::tallying(webhook_id).await;
    receiver.respond("/hook", Behaviour::PerRequest(answer));
    stack
        .create_webhook(webhook("chaos", "hook", &receiver.url("/hook")))
        .await;

    let started = Instant::now();
    let mut router = start_role(binary, &stack, "router");
    let mut senders: Vec<Child> = (0..options.senders)
        .map(|_| start_role(binary, &stack, "sender"))
        .collect();
    let mut events: Vec<Event> = (0..options.events)
        .map(|_| event("chaos", "file_uploaded", json!({})))
        .collect();
    let publishing = tokio::spawn(publish_all(
        Arc::clone(&stack.publisher),
        events.clone(),
        options.publish_pause,
    ));

    let mut figures = Figures::default();
    let mut killed_at = None;
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    // Faults while events flow and until every delivery is settled: kills all along,
    // one broker and one database restart early on.
    let mut round = 0;
    loop {
        let done = publishing.is_finished() && round >= 6 && {
            match stack.db.pool.get().await {
                Ok(db) => settled(&db, events.len()).await,
                Err(_) => false,
            }
        };
        if done || round >= 400 {
            break;
        }
        round += 1;
        tokio::time::sleep(dice.between(options.kill_every)).await;
        if let Some(cluster) = &options.cluster
            && killed_at.is_none()
            && receiver.tallied() >= options.events / 4
        {
            killed_at = Some(kill_busiest_leader(cluster, &stack, &mut figures));
            // Fresh events, delivered by the same processes: they found another node.
            probe(&stack, &mut events, &mut router, &mut senders, options).await;
            figures.probes_after_restarts += PROBES;
            figures.leaders_after_kill = cluster
                .queues(&stack.prefix)
                .into_iter()
                .map(|q| q.leader)
                .collect();
        }
        if options.kill_roles && dice.next().is_multiple_of(3) {
            router.kill_9();
            figures.router_kills += 1;
            router = start_role(binary, &stack, "router");
        } else if options.kill_roles {
            let i = (dice.next() as usize) % senders.len();
            figures.in_flight_at_kills += senders[i]
                .metric("hookrelay_in_flight{role=\"sender\"}")
                .await as usize;
            senders[i].kill_9();
            figures.sender_kills += 1;
            senders[i] = start_role(binary, &stack, "sender");
        }
        if round == 3 && options.restart_broker {
            run_command("rabbitmqctl", &["-q", "stop_app"]);
            tokio::time::sleep(Duration::from_secs(3)).await;
            run_command("rabbitmqctl", &["-q", "start_app"]);
            figures.broker_restarts += 1;
            probe(&stack, &mut events, &mut router, &mut senders, options).await;
            figures.probes_after_restarts += PROBES;
        }
        if round == 5 && options.restart_database {
            let version = postgres_version();
            run_command(
                "pg_ctlcluster",
                &["--skip-systemctl-redirect", &version, "main", "restart"],
            );
            figures.database_restarts += 1;
            probe(&stack, &mut events, &mut router, &mut senders, options).await;
            figures.probes_after_restarts += PROBES;
        }
    }
    let published_at = publishing.await.expect("publishing finished");
    let db = fresh_connection(&stack).await;
    wait_until("every delivery settled", options.settle_within, || {
        settled(&db, events.len())
    })
    .await;
    figures.seconds = started.elapsed().as_secs_f64();
    figures.events = events.len();
    check(&stack, &db, &events, &receiver, &mut figures, options).await;
    if let Some(killed_at) = killed_at {
        assert!(
            killed_at < published_at,
            "the node was killed after publishing ended: publish for longer"
        );
        let (pause, gap) = pause_after(&receiver, killed_at, published_at);
        figures.pause_after_kill_ms = pause;
        figures.longest_gap_after_kill_ms = gap;
    }
    router.kill_9();
    for s in &mut senders {
        s.kill_9();
    }
    figures
}

async fn check(
    stack: &TestStack,
    db: &deadpool_postgres::Object,
    events: &[Event],
    receiver: &Receiver,
    figures: &mut Figures,
    options: &Options,
) {
    // A sender kill can repeat at most what that sender had unacked; a router kill,
    // the delivery messages of its unacked events (sent again, both copies in flight
    // at once); a restart, what every sender had.
    // A node kill can cut off every role at once, like a restart.
    figures.duplicate_bound = (figures.sender_kills
        + (figures.broker_restarts + figures.database_restarts + figures.node_kills)
            * options.senders)
        * SENDER_IN_FLIGHT
        + (figures.router_kills + figures.node_kills) * ROUTER_UNACKED;
    check_outcomes(stack, db, events, receiver, figures).await;
}

/// The promise after a run whose every delivery is settled: each event stored once
/// with exactly one delivery, each delivery delivered (and received) or failed (and
/// dead-lettered) as the receiver's rule says, and no more repeated POSTs than
/// `figures.duplicate_bound`. Fills in the counts of `figures`.
pub(crate) async fn check_outcomes(
    stack: &TestStack,
    db: &deadpool_postgres::Object,
    events: &[Event],
    receiver: &Receiver,
    figures: &mut Figures,
) {
    let stored: i64 = db
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored as usize, events.len(), "every event stored once");
    let rows = db
        .query("SELECT id, event_id, status FROM deliveries", &[])
        .await
        .unwrap();
    figures.deliveries = rows.len() as i64;
    assert_eq!(rows.len(), events.len(), "exactly one delivery per event");
    let per_event: HashSet<String> = rows.iter().map(|r| r.get("event_id")).collect();
    assert_eq!(per_event.len(), events.len(), "no event fanned out twice");

    let dead = stack
        .drain_queue_fresh(&stack.topology.dead_letter_queue())
        .await;
    figures.dead_lettered = dead.len();
    let dead_ids: HashSet<String> = dead
        .iter()
        .filter(|m| m.header("x-hookrelay-reason").is_some())
        .filter_map(|m| m.header("x-hookrelay-delivery-id"))
        .collect();
    let ok = receiver.tallies();
    for r in &rows {
        let id: uuid::Uuid = r.get("id");
        let id = id.to_string();
        let status: String = r.get("status");
        match status.as_str() {
            "delivered" => {
                figures.delivered += 1;
                assert!(ok.contains_key(&id), "delivered {id} was never received");
                assert!(!expect_failed(&id), "{id} cannot have been delivered");
            }
            "failed" => {
                figures.failed += 1;
                assert!(
                    dead_ids.contains(&id),
                    "failed {id} is not in the dead-letter queue"
                );
                assert!(expect_failed(&id), "{id} should have been delivered");
            }
            other => panic!("delivery {id} is {other}"),
        }
    }
    figures.receiver_duplicates = ok.values().map(|t| t.answered as usize - 1).sum();
    assert!(
        figures.receiver_duplicates <= figures.duplicate_bound,
        "{} duplicates, more than the {} in flight at the faults",
        figures.receiver_duplicates,
        figures.duplicate_bound
    );
}

/// Finds the node leading the most of the run's queues (checking they are quorum
/// queues on all three nodes) and SIGKILLs it; returns when.
fn kill_busiest_leader(cluster: &Cluster, stack: &TestStack, figures: &mut Figures) -> Instant {
    let queues = cluster.queues(&stack.prefix);
    assert_eq!(
        queues.len(),
        stack.topology.queues().len(),
        "every queue of the run is on the cluster"
    );
    for q in &queues {
        assert_eq!(q.kind, "quorum", "{} is a quorum queue", q.queue);
        assert_eq!(q.members, 3, "{} has a member on every node", q.queue);
    }
    let (node, led) = Cluster::busiest_leader(&queues).expect("the queues have leaders");
    cluster.kill(&node);
    let at = Instant::now();
    figures.node_kills += 1;
    figures.node_killed = node;
    figures.queues_led_by_killed = led;
    figures.queues = queues.len();
    at
}

/// From the receiver's first 2xx answers: the time from `killed` to the next one,
/// and the longest gap between two of them (or from `killed` to the first) until
/// `until`, in milliseconds.
fn pause_after(receiver: &Receiver, killed: Instant, until: Instant) -> (Option<f64>, Option<f64>) {
    let mut after: Vec<Instant> = receiver
        .tallies()
        .values()
        .map(|t| t.first_at.into_std())
        .filter(|at| *at > killed)
        .collect();
    after.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pause = after.first().map(|first| ms(*first - killed));
    let mut previous = killed;
    let mut gap = None::<f64>;
    for at in after.into_iter().take_while(|at| *at <= until) {
        let g = ms(at - previous);
        gap = Some(gap.map_or(g, |longest| longest.max(g)));
        previous = at;
    }
    (pause, gap)
}
