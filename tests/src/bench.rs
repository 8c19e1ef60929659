//! The end-to-end benchmark: hookrelay against the broker's own ceiling, on this
//! machine's RabbitMQ and Postgres, with the roles in this process and the harness's
//! receiver, tallying only, on 127.0.0.1. Used by `cargo xtask bench` and by a CI
//! smoke test.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use hookrelay_amqp::{self as amqp, ConnectRetry, Headers};
use hookrelay_metrics::event as routed;
use hookrelay_model::Event;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use serde::Serialize;
use serde_json::json;

use crate::receiver::{Behaviour, Received, Receiver, unix_micros};
use crate::stack::{event, webhook};
use crate::{AMQP_URL, TestStack, wait_until};

/// One benchmark run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub events: usize,
    pub fanout: usize,
    pub payload_bytes: usize,
    /// Events per second to publish at; 0 = as fast as possible.
    pub rate: u32,
    /// Of the `fanout` webhooks, how many answer 429 every time.
    pub throttled: usize,
    /// Add one webhook that never answers.
    pub hanging: bool,
}

impl Scenario {
    /// The same run without its bad endpoints (no hanging webhook, none answering
    /// 429): what its healthy webhooks' throughput is compared with. `None` for a
    /// scenario that has none.
    pub fn without_bad_endpoints(&self) -> Option<Self> {
        if !self.hanging && self.throttled == 0 {
            return None;
        }
        Some(Self {
            name: format!("{}: baseline without them", self.name),
            fanout: self.fanout - self.throttled,
            throttled: 0,
            hanging: false,
            ..self.clone()
        })
    }

    pub fn new(name: &str, events: usize, fanout: usize, payload_bytes: usize) -> Self {
        Self {
            name: name.to_owned(),
            events,
            fanout,
            payload_bytes,
            rate: 0,
            throttled: 0,
            hanging: false,
        }
    }
}

/// Where the router and sender run.
#[derive(Debug, Clone)]
pub enum Roles {
    /// Tasks in this process (CPU and memory are reported for the whole process).
    InProcess,
    /// `hookrelay serve --roles router` and `--roles sender` child processes of this
    /// binary, each measured on its own.
    Processes(std::path::PathBuf),
}

/// CPU seconds used during the run and peak resident memory of one role.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoleUsage {
    pub cpu_seconds: f64,
    pub peak_rss_mib: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub events: usize,
    pub fanout: usize,
    pub payload_bytes: usize,
    pub rate: u32,
    pub expected_deliveries: usize,
    pub deliveries_per_sec: f64,
    pub events_routed_per_sec: f64,
    pub broker_ceiling_msgs_per_sec: f64,
    pub ratio_to_ceiling: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub lost: usize,
    pub duplicates: usize,
    pub seconds: f64,
    /// `in-process` or `processes`.
    pub roles: String,
    /// This process: the receiver and publisher, and the roles when in-process.
    pub bench_process: RoleUsage,
    /// Present when the roles ran as processes.
    pub router: Option<RoleUsage>,
    pub sender: Option<RoleUsage>,
    /// With bad endpoints: the healthy deliveries/s as a share of the same run's
    /// without them (1.0: they cost nothing).
    pub healthy_ratio: Option<f64>,
}

/// A delivery's tally key: its event and the webhook's path. More than one 2xx
/// answer under a key is a duplicate, whatever its `webhook-id` (a delivery fanned
/// out twice has two).
pub(crate) fn delivery_key(event_id: &str, path: &str) -> String {
    format!("{event_id} {path}")
}

pub(crate) fn tally_key(r: &Received) -> String {
    delivery_key(
        &r.header("x-hookrelay-event-id").unwrap_or_default(),
        &r.path,
    )
}

/// The path of webhook `w{i}`: the scenario's first `throttled` answer 429.
fn hook_path(s: &Scenario, i: usize) -> String {
    let kind = if i < s.throttled { "429" } else { "ok" };
    format!("/{kind}/w{i}")
}

pub(crate) fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

/// (CPU seconds, peak RSS MiB) of a process (`self` or a pid), from /proc.
pub(crate) fn usage(pid: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    (ticks / 100.0, hwm_kib / 1024.0)
}

/// Publishes awaiting their confirm at once when the ceiling is measured: enough
/// that the broker never waits for the publisher.
const CONFIRM_WINDOW: usize = 2000;
/// The ceiling's consumer: its prefetch, and one `multiple` ack per this many
/// messages (as a consumer that coalesces its acks does).
const CEILING_PREFETCH: u16 = 300;
const ACK_EVERY: usize = 50;

/// How the broker ceiling is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CeilingMethod {
    /// Confirms pipelined ([`CONFIRM_WINDOW`] outstanding, never waited for per
    /// chunk), acks `multiple` every [`ACK_EVERY`] messages: the broker's physical
    /// limit.
    Pipelined,
    /// The first method: chunks of 500, each chunk's confirms awaited before the
    /// next is published, every message acked on its own. It under-reads the broker
    /// by a third or more; kept to compare with the old figures.
    Chunked,
}

/// Raw persistent publish + consume with pipelined confirms through lapin on one
/// quorum queue: the most this broker moves per second here, the yardstick for
/// hookrelay.
pub async fn broker_ceiling(messages: usize, payload_bytes: usize) -> f64 {
    ceiling(messages, payload_bytes, CeilingMethod::Pipelined).await
}

/// The ceiling as it was first measured (chunks of 500, single acks): lower than
/// [`broker_ceiling`], printed beside it so the change of yardstick shows.
pub async fn broker_ceiling_chunked(messages: usize, payload_bytes: usize) -> f64 {
    ceiling(messages, payload_bytes, CeilingMethod::Chunked).await
}

async fn ceiling(messages: usize, payload_bytes: usize, method: CeilingMethod) -> f64 {
    let queue = CeilingQueue::declare().await;
    let (prefetch, ack_every) = match method {
        CeilingMethod::Pipelined => (CEILING_PREFETCH, ACK_EVERY),
        CeilingMethod::Chunked => (500, 1),
    };
    let consumer = queue.consume(prefetch).await;
    let body = vec![b'x'; payload_bytes];
    let started = Instant::now();
    let reader = tokio::spawn(read_and_ack(consumer, messages, ack_every));
    match method {
        CeilingMethod::Pipelined => publish_pipelined(&queue, &body, messages).await,
        CeilingMethod::Chunked => publish_in_chunks(&queue, &body, messages).await,
    }
    reader.await.expect("reader");
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    queue.delete().await;
    rate
}

/// A durable quorum queue of its own, on a connection of its own.
struct CeilingQueue {
    conn: lapin::Connection,
    publish: lapin::Channel,
    consume: lapin::Channel,
    name: String,
}

impl CeilingQueue {
    async fn declare() -> Self {
        let conn = amqp::connect(AMQP_URL, "hookrelay-bench-ceiling", ConnectRetry::default())
            .await
            .expect("broker");
        let publish = amqp::confirm_channel(&conn).await.expect("channel");
        let consume = conn.create_channel().await.expect("channel");
        let name = crate::unique_name("t.ceiling", '.');
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(LongString::from("quorum")),
        );
        let options = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        publish
            .queue_declare(name.as_str().into(), options, args)
            .await
            .expect("declare");
        Self {
            conn,
            publish,
            consume,
            name,
        }
    }

    async fn consume(&self, prefetch: u16) -> lapin::Consumer {
        self.consume
            .basic_qos(prefetch, Default::default())
            .await
            .expect("qos");
        self.consume
            .basic_consume(
                self.name.as_str().into(),
                "ceiling".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume")
    }

    async fn start_publish(&self, i: usize, body: &[u8]) -> amqp::PendingPublish {
        let props = amqp::persistent(&i.to_string(), Headers::new().into_table()).expect("props");
        amqp::start_publish(&self.publish, "", &self.name, body, props)
            .await
            .expect("publish")
    }

    async fn delete(self) {
        let _ = self
            .publish
            .queue_delete(self.name.as_str().into(), QueueDeleteOptions::default())
            .await;
        amqp::close(
            &self.conn,
            &[self.publish, self.consume],
            "ceiling measured",
        )
        .await;
    }
}

/// Takes `messages` messages, acking once per `every` (`multiple` when more than
/// one) and the remainder with the last.
async fn read_and_ack(mut consumer: lapin::Consumer, messages: usize, every: usize) {
    let ack = BasicAckOptions {
        multiple: every > 1,
    };
    for i in 1..=messages {
        let Some(Ok(d)) = consumer.next().await else {
            break;
        };
        if i.is_multiple_of(every) || i == messages {
            d.acker.ack(ack).await.expect("ack");
        }
    }
}

/// Publishes with at most [`CONFIRM_WINDOW`] confirms outstanding: each publish
/// waits only for the oldest unsettled one beyond the window, never for a chunk.
async fn publish_pipelined(queue: &CeilingQueue, body: &[u8], messages: usize) {
    let mut pending = FuturesUnordered::new();
    for i in 0..messages {
        pending.push(queue.start_publish(i, body).await.confirmed());
        if pending.len() >= CONFIRM_WINDOW
            && let Some(confirmed) = pending.next().await
        {
            confirmed.expect("confirm");
        }
    }
    while let Some(confirmed) = pending.next().await {
        confirmed.expect("confirm");
    }
}

/// Publishes in chunks of 500, each chunk's confirms awaited before the next.
async fn publish_in_chunks(queue: &CeilingQueue, body: &[u8], messages: usize) {
    for chunk in (0..messages).collect::<Vec<_>>().chunks(500) {
        let mut pending = Vec::with_capacity(chunk.len());
        for &i in chunk {
            pending.push(queue.start_publish(i, body).await);
        }
        amqp::confirm_all(pending).await.expect("confirm");
    }
}

pub(crate) fn events_for(s: &Scenario) -> Vec<Event> {
    let blob = "x".repeat(s.payload_bytes.saturating_sub(80));
    (0..s.events)
        .map(|_| {
            event(
                "bench",
                "import_completed",
                json!({"payload": {"event": "import_completed", "data": {"blob": blob}}}),
            )
        })
        .collect()
}

/// Publishes at the scenario's rate; returns when each event was sent (microseconds
/// since the Unix epoch, by event id).
pub(crate) async fn publish(
    stack: &TestStack,
    s: &Scenario,
    events: Vec<Event>,
) -> HashMap<String, u64> {
    let chunk = if s.rate == 0 {
        200
    } else {
        (s.rate as usize / 100).max(1)
    };
    let mut sent = HashMap::with_capacity(events.len());
    if s.rate == 0 {
        for batch in events.chunks(chunk) {
            let stamp = unix_micros();
            stack.publisher.publish_batch(batch).await.expect("publish");
            sent.extend(batch.iter().map(|e| (e.id.to_string(), stamp)));
        }
        return sent;
    }
    // At a steady rate each tick's chunk goes out on time, whatever the confirms of
    // the chunks before it take: waiting for them would offer less than the rate.
    let tick = Duration::from_secs_f64(chunk as f64 / f64::from(s.rate));
    let mut next = tokio::time::Instant::now();
    let mut in_flight = tokio::task::JoinSet::new();
    for batch in events.chunks(chunk) {
        tokio::time::sleep_until(next).await;
        next += tick;
        let stamp = unix_micros();
        sent.extend(batch.iter().map(|e| (e.id.to_string(), stamp)));
        let (publisher, batch) = (std::sync::Arc::clone(&stack.publisher), batch.to_vec());
        in_flight.spawn(async move { publisher.publish_batch(&batch).await });
    }
    while let Some(done) = in_flight.join_next().await {
        done.expect("publish task").expect("publish");
    }
    sent
}

/// A role running as a child `hookrelay serve` process.
pub struct Child {
    pub(crate) process: std::process::Child,
    /// Where its HTTP endpoints answer (`ip:port`).
    http: String,
}

/// A test that panics must not leave roles running: they would go on consuming.
impl Drop for Child {
    fn drop(&mut self) {
        if matches!(self.process.try_wait(), Ok(None)) {
            self.kill_9();
        }
    }
}

impl Child {
    /// SIGKILL: no shutdown, no flush, unacked messages return to their queues.
    pub fn kill_9(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    /// Whether the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.process.try_wait(), Ok(None))
    }

    pub(crate) fn pid(&self) -> String {
        self.process.id().to_string()
    }

    pub(crate) async fn metric(&self, name: &str) -> f64 {
        let url = format!("http://{}/metrics", self.http);
        let text = match reqwest::get(&url).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    pub(crate) fn stop(mut self) -> RoleUsage {
        let (cpu, rss) = usage(&self.pid());
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid()])
            .status();
        let _ = self.process.wait();
        RoleUsage {
            cpu_seconds: cpu,
            peak_rss_mib: rss,
        }
    }
}

pub(crate) async fn spawn_role(binary: &std::path::Path, stack: &TestStack, role: &str) -> Child {
    let child = start_role(binary, stack, role);
    let ready = format!("http://{}/readyz", child.http);
    wait_until(
        &format!("{role} ready"),
        Duration::from_secs(30),
        || async {
            reqwest::get(&ready)
                .await
                .is_ok_and(|r| r.status().is_success())
        },
    )
    .await;
    child
}

/// Starts `hookrelay serve --roles ROLE` for the stack without waiting for it.
pub fn start_role(binary: &std::path::Path, stack: &TestStack, role: &str) -> Child {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    start_role_at(
        binary,
        stack,
        role,
        None,
        &format!("127.0.0.1:{port}"),
        &[("HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS", "true")],
        std::process::Stdio::inherit(),
    )
}

/// `hookrelay serve --roles ROLE` for `stack`, serving its HTTP endpoints on `http`
/// (`ip:port`), inside the network namespace `netns` if one is given (`ip netns exec`
/// runs the binary in the same process), with `env` besides the stack's, its logs to
/// `stderr`.
pub fn start_role_at(
    binary: &std::path::Path,
    stack: &TestStack,
    role: &str,
    netns: Option<&str>,
    http: &str,
    env: &[(&str, &str)],
    stderr: std::process::Stdio,
) -> Child {
    let mut command = match netns {
        Some(ns) => {
            let mut c = std::process::Command::new("ip");
            c.args(["netns", "exec", ns]).arg(binary);
            c
        }
        None => std::process::Command::new(binary),
    };
    let process = command
        .args(["serve", "--roles", role, "--http-addr", http])
        .env("HOOKRELAY_DATABASE_URL", &stack.db.url)
        .env("HOOKRELAY_AMQP_URL", &stack.amqp_url)
        .env("HOOKRELAY_AMQP_PREFIX", &stack.prefix)
        .env("HOOKRELAY_RETRY_DELAYS", "200ms,400ms")
        .env("HOOKRELAY_RETRY_AFTER_MAX", "2s")
        .env("RUST_LOG", "error")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("hookrelay serve starts");
    Child {
        process,
        http: http.to_owned(),
    }
}

/// Runs one scenario end to end and measures it.
pub async fn run(s: &Scenario, ceiling: f64, roles: &Roles) -> Report {
    let mut stack = match roles {
        Roles::InProcess => TestStack::new().await,
        Roles::Processes(_) => TestStack::for_processes().await,
    };
    let receiver = Receiver::tallying(tally_key).await;
    for i in 0..s.fanout {
        let path = hook_path(s, i);
        if i < s.throttled {
            receiver.respond(&path, Behaviour::Status(429));
        }
        stack
            .create_webhook(webhook("bench", &format!("w{i}"), &receiver.url(&path)))
            .await;
    }
    if s.hanging {
        receiver.respond("/hang/h", Behaviour::Hang);
        stack
            .create_webhook(webhook("bench", "hanging", &receiver.url("/hang/h")))
            .await;
    }
    let children = match roles {
        Roles::InProcess => {
            let mut sender = stack.sender_config();
            sender.http_timeout = Duration::from_secs(10);
            stack.start_sender_with(sender).await;
            stack.start_router().await;
            None
        }
        Roles::Processes(binary) => Some((
            spawn_role(binary, &stack, "router").await,
            spawn_role(binary, &stack, "sender").await,
        )),
    };
    let cpu_at_start = |pid: &str| usage(pid).0;
    let (cpu_before, _) = usage("self");
    let (router_cpu_before, sender_cpu_before) = match &children {
        Some((r, s)) => (cpu_at_start(&r.pid()), cpu_at_start(&s.pid())),
        None => (0.0, 0.0),
    };
    let events = events_for(s);
    // Tally key → event id, for every delivery that should arrive.
    let expected: HashMap<String, String> = events
        .iter()
        .flat_map(|e| {
            (s.throttled..s.fanout)
                .map(|i| (delivery_key(&e.id, &hook_path(s, i)), e.id.to_string()))
        })
        .collect();
    let started = Instant::now();
    let sent = publish(&stack, s, events).await;
    let limit = Duration::from_secs(60 + (expected.len() / 200) as u64);
    let routed = || async {
        match &children {
            Some((router, _)) => {
                router
                    .metric("hookrelay_router_events_total{outcome=\"routed\"}")
                    .await as u64
            }
            None => stack.metrics.events(routed::ROUTED),
        }
    };
    // Until every expected delivery arrived, or the limit: then what is missing is
    // reported as lost rather than hidden behind a timeout.
    let mut routing_done: Option<Duration> = None;
    let mut polls = 0u32;
    loop {
        let arrived = receiver.tallied();
        if routing_done.is_none() && polls.is_multiple_of(4) && routed().await >= s.events as u64 {
            routing_done = Some(started.elapsed());
        }
        polls += 1;
        if arrived >= expected.len() || started.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let elapsed = started.elapsed();
    let routed_at = routed().await;
    // Duplicates come from messages still in flight: count once the sender is idle
    // and its queue empty (a scenario with a hanging endpoint never is: 3 s then).
    let quiet_by = Instant::now() + Duration::from_secs(3);
    while Instant::now() < quiet_by {
        let in_flight = match &children {
            Some((_, sender)) => sender.metric("hookrelay_in_flight{role=\"sender\"}").await as i64,
            None => stack.metrics.in_flight(hookrelay_sender::ROLE),
        };
        if in_flight == 0 && stack.queue_len(&stack.topology.deliveries_queue()).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (cpu_after, rss) = usage("self");
    let (router_usage, sender_usage) = match children {
        Some((router, sender)) => {
            let mut r = router.stop();
            let mut s = sender.stop();
            r.cpu_seconds -= router_cpu_before;
            s.cpu_seconds -= sender_cpu_before;
            (Some(r), Some(s))
        }
        None => {
            stack.stop_roles().await;
            (None, None)
        }
    };
    stack.publisher.close().await;

    let tallies = receiver.tallies();
    let lost = expected
        .keys()
        .filter(|k| !tallies.contains_key(*k))
        .count();
    let unexpected = tallies
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .count();
    let duplicates = tallies
        .values()
        .map(|t| t.answered as usize - 1)
        .sum::<usize>()
        + unexpected;
    // Publish → first arrival, per delivery.
    let mut latencies: Vec<u64> = expected
        .iter()
        .filter_map(|(key, event_id)| {
            Some(
                tallies
                    .get(key)?
                    .first_unix_us
                    .saturating_sub(*sent.get(event_id)?),
            )
        })
        .collect();
    latencies.sort_unstable();
    let mut arrivals: Vec<Instant> = tallies.values().map(|t| t.first_at.into_std()).collect();
    arrivals.sort_unstable();
    let deliveries_per_sec = sustained_rate(&arrivals);
    let routing_time = routing_done.unwrap_or(elapsed).as_secs_f64().max(1e-3);
    Report {
        scenario: s.name.clone(),
        events: s.events,
        fanout: s.fanout,
        payload_bytes: s.payload_bytes,
        rate: s.rate,
        expected_deliveries: expected.len(),
        deliveries_per_sec,
        events_routed_per_sec: routed_at as f64 / routing_time,
        broker_ceiling_msgs_per_sec: ceiling,
        ratio_to_ceiling: if ceiling > 0.0 {
            deliveries_per_sec / ceiling
        } else {
            0.0
        },
        p50_ms: percentile(&latencies, 0.50),
        p90_ms: percentile(&latencies, 0.90),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: percentile(&latencies, 1.0),
        lost,
        duplicates,
        seconds: elapsed.as_secs_f64(),
        roles: match roles {
            Roles::InProcess => "in-process".into(),
            Roles::Processes(_) => "processes".into(),
        },
        bench_process: RoleUsage {
            cpu_seconds: cpu_after - cpu_before,
            peak_rss_mib: rss,
        },
        router: router_usage,
        sender: sender_usage,
        healthy_ratio: None,
    }
}

/// Deliveries per second after the warm-up: from the arrival of the first 10 % to
/// the last arrival.
pub(crate) fn sustained_rate(arrivals: &[Instant]) -> f64 {
    let warm = arrivals.len() / 10;
    match (arrivals.get(warm), arrivals.last()) {
        (Some(from), Some(to)) if to > from => {
            (arrivals.len() - 1 - warm) as f64 / (*to - *from).as_secs_f64()
        }
        _ => 0.0,
    }
}

/// The table printed on stdout.
pub fn table(reports: &[Report]) -> String {
    let mut out = String::from(
        "| scenario | events | fan-out | payload | rate | deliveries/s | events/s | ceiling msg/s | ratio | p50 ms | p90 ms | p99 ms | max ms | lost | dup | healthy vs. baseline | CPU s router/sender/bench | peak RSS MiB router/sender/bench |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.events,
            r.fanout,
            r.payload_bytes,
            if r.rate == 0 { "max".to_owned() } else { r.rate.to_string() },
            r.deliveries_per_sec,
            r.events_routed_per_sec,
            r.broker_ceiling_msgs_per_sec,
            r.ratio_to_ceiling,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.max_ms,
            r.lost,
            r.duplicates,
            r.healthy_ratio
                .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}")),
            usage_cell(r, |u| format!("{:.1}", u.cpu_seconds)),
            usage_cell(r, |u| format!("{:.0}", u.peak_rss_mib)),
        ));
    }
    out
}

/// `router/sender/bench` figures, or the bench process's alone when in-process.
fn usage_cell(r: &Report, f: impl Fn(&RoleUsage) -> String) -> String {
    match (&r.router, &r.sender) {
        (Some(router), Some(sender)) => {
            format!("{}/{}/{}", f(router), f(sender), f(&r.bench_process))
        }
        _ => format!("-/-/{} (in-process)", f(&r.bench_process)),
    }
}
