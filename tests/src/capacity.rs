//! What users live with: the rate the pipeline sustains at a steady offered load
//! with bounded latency, on a database that may already hold months of history.
//!
//! A run keeps one stack (router and sender as child processes, one tallying
//! receiver, one webhook per [`Lane`] of the run's [`Mix`]) and offers steady rates
//! in steps; each step publishes at its rate for a while, then waits for its
//! deliveries to arrive. The capacity is the highest step whose delivered rate kept
//! up with the offered one (≥ 98 %), whose p99 publish→receive stayed within a
//! second, and that lost nothing. A soak is one long step read minute by minute.
//! Each step also gives the CPU each role, the services and the whole machine spent
//! per delivery. The ordered scenario (tests/src/ordered.rs) runs the same steps
//! with two webhooks, one of them ordered.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use hookrelay_model::Event;
use serde::Serialize;
use serde_json::json;

use crate::TestStack;
use crate::bench::{
    Child, Scenario, broker_ceiling, broker_ceiling_chunked, delivery_key, percentile, publish,
    spawn_role, tally_key, usage,
};
use crate::db_work::{self, DbCounters, DbPerDelivery};
use crate::ordered::{self, HotKey, OutOfOrder};
use crate::receiver::{Behaviour, Receiver, Tally};
use crate::stack::{event, webhook};
use crate::statements;

/// A step is sustained when it delivered at least this share of the offered rate...
const KEPT_UP: f64 = 0.98;
/// ... with its p99 publish→receive within this...
const P99_BOUND_MS: f64 = 1000.0;
/// Clock ticks per second of the CPU times in /proc (USER_HZ).
const TICKS_PER_SEC: f64 = 100.0;

#[derive(Debug, Clone)]
pub struct Plan {
    /// Offered events per second, in order.
    pub rates: Vec<u32>,
    pub step: Duration,
    pub payload_bytes: usize,
    /// Events (each with its delivery and attempt) stored before the run, spread
    /// over the 30 days before it.
    pub history: usize,
    /// Keep offering higher rates after one was not sustained.
    pub keep_going: bool,
    /// Read each step in windows this long (a soak reads minute by minute); `None`:
    /// the step is one window.
    pub window: Option<Duration>,
    /// The webhooks and the events each step offers.
    pub mix: Mix,
    /// The receiver's latencies of the hot-key sub-runs, one run each after the
    /// steps (the ordered scenario); none: no sub-run.
    pub hot_keys: Vec<Duration>,
}

/// What a run offers: its webhooks and the events of each step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mix {
    /// One webhook receiving every event (fan-out 1): the capacity and soak runs.
    One,
    /// Two webhooks on one receiver, one `ordered` and one not, each subscribed to an
    /// event type of its own; events alternate between them, the ordered ones'
    /// `ordering_key` spread over `keys` keys.
    Ordered { keys: usize },
    /// One ordered webhook whose receiver answers after `latency`; every event
    /// carries the same key.
    HotKey { latency: Duration },
}

/// One webhook of a run: its key, its path on the receiver, the type of its events,
/// whether it is ordered, and how long the receiver takes to answer it.
#[derive(Debug, Clone)]
pub struct Lane {
    pub key: &'static str,
    pub path: &'static str,
    pub event_type: &'static str,
    pub ordered: bool,
    pub latency: Option<Duration>,
}

impl Mix {
    pub fn lanes(self) -> Vec<Lane> {
        let lane = |key, path, event_type, ordered| Lane {
            key,
            path,
            event_type,
            ordered,
            latency: None,
        };
        match self {
            Self::One => vec![lane("w0", "/ok/w0", "import_completed", false)],
            Self::Ordered { .. } => vec![
                lane("ordered", "/ok/ordered", "import_ordered", true),
                lane("unordered", "/ok/unordered", "import_unordered", false),
            ],
            Self::HotKey { latency } => vec![Lane {
                latency: Some(latency),
                ..lane("hot", "/slow/hot", "import_ordered", true)
            }],
        }
    }

    /// The ordering key of the run's `i`th event, when its lane is ordered.
    fn ordering_key(self, i: usize) -> Option<String> {
        match self {
            Self::One => None,
            Self::Ordered { keys } => Some(format!("key-{}", spread(i as u64) % keys as u64)),
            Self::HotKey { .. } => Some("hot".to_owned()),
        }
    }
}

/// splitmix64: a fixed, well-spread sequence, so that every run puts the same
/// events on the same keys, some keys closer together than others.
fn spread(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Makes the events of a run: the lanes in turn, each event with its lane's type
/// (and key, for an ordered lane).
pub(crate) struct EventSource {
    mix: Mix,
    lanes: Vec<Lane>,
    blob: String,
    made: usize,
}

impl EventSource {
    pub(crate) fn new(mix: Mix, payload_bytes: usize) -> Self {
        Self {
            mix,
            lanes: mix.lanes(),
            blob: "x".repeat(payload_bytes.saturating_sub(80)),
            made: 0,
        }
    }

    /// The next `n` events, each with the index of its lane.
    fn next(&mut self, n: usize) -> Vec<(usize, Event)> {
        (0..n)
            .map(|_| {
                let i = self.made;
                self.made += 1;
                let lane = i % self.lanes.len();
                (lane, self.event(i, &self.lanes[lane]))
            })
            .collect()
    }

    fn event(&self, i: usize, lane: &Lane) -> Event {
        let mut extra = json!({"payload": {"event": lane.event_type, "data": {"blob": self.blob}}});
        if lane.ordered {
            extra["ordering_key"] = json!(self.mix.ordering_key(i));
        }
        event("bench", lane.event_type, extra)
    }
}

/// CPU (share of one core) and memory of one process or group during a window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Load {
    pub cpu_percent: f64,
    pub rss_mib: f64,
}

/// CPU milliseconds per delivery of each role, service, and the whole machine (all
/// cores) over a window: its CPU seconds × 1000 / the deliveries that arrived in it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuPerDelivery {
    pub router: f64,
    pub sender: f64,
    pub postgres: f64,
    pub rabbitmq: f64,
    pub bench: f64,
    pub machine: f64,
}

/// Rate, latency and completeness of a window's deliveries (all, or one webhook's).
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub offered_per_sec: f64,
    pub delivered_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Deliveries that had not arrived when the drain limit passed.
    pub missing: usize,
    pub duplicates: usize,
    pub sustained: bool,
}

/// One webhook's figures in a step of a run with several (or an ordered one).
#[derive(Debug, Clone, Serialize)]
pub struct WebhookFigures {
    pub path: String,
    pub ordered: bool,
    #[serde(flatten)]
    pub figures: Figures,
    /// For an ordered webhook: receipts out of the recorded order (must be 0).
    pub out_of_order: Option<OutOfOrder>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Every webhook's deliveries together; sustained only if each webhook's were.
    #[serde(flatten)]
    pub figures: Figures,
    pub router: Load,
    pub sender: Load,
    /// Every `postgres` process, and RabbitMQ's `beam.smp`, summed.
    pub postgres: Load,
    pub rabbitmq: Load,
    /// This process: the publisher and the receiver.
    pub bench: Load,
    /// The whole machine's CPU in use, % of all its cores.
    pub machine_busy_percent: f64,
    pub seconds: f64,
    /// Deliveries that arrived while the step was offered: the window its CPU
    /// figures are read over.
    pub deliveries_while_offered: usize,
    /// `None` when nothing arrived while the step was offered.
    pub cpu_ms_per_delivery: Option<CpuPerDelivery>,
    /// The database's WAL, syncs, commits and rows per delivery, over the same window.
    pub db_per_delivery: Option<DbPerDelivery>,
    /// Per webhook, for a run with more than one or an ordered one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookFigures>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub history_events: usize,
    pub history_fill_seconds: f64,
    /// The median of [`Self::ceiling_runs`]: pipelined confirms, `multiple` acks.
    pub broker_ceiling_msgs_per_sec: f64,
    /// Each measurement of the ceiling, before the run and after it.
    pub ceiling_runs: Vec<f64>,
    /// The old method's median (chunks of 500 confirmed in turn, single acks),
    /// measured beside each of the above for comparison.
    pub chunked_ceiling_msgs_per_sec: f64,
    pub chunked_ceiling_runs: Vec<f64>,
    pub steps: Vec<Step>,
    /// The highest sustained offered rate (deliveries/s at fan-out 1).
    pub capacity_per_sec: Option<f64>,
    /// Of the broker ceiling (pipelined).
    pub ratio_to_ceiling: Option<f64>,
    /// The run's top statements (`pg_stat_statements`), or why there are none.
    pub statements: Result<Vec<statements::Statement>, String>,
    /// Deliveries that arrived over the run, for the statements' time per delivery.
    pub deliveries: usize,
    /// The hot-key sub-runs of the ordered scenario.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hot_keys: Vec<HotKey>,
}

/// Fills the stack's database with `events` stored events of tenant `bench`, each
/// with one delivered delivery to `webhook_id` and its attempt, received over the
/// 30 days before now, then vacuums and analyzes the tables as autovacuum would have
/// and checkpoints.
pub async fn fill_history(stack: &TestStack, events: usize, webhook_id: uuid::Uuid) -> f64 {
    if events == 0 {
        return 0.0;
    }
    let started = Instant::now();
    let db = stack.db.client().await;
    // The days of the 30 the database has no partition for (V23).
    let now = time::OffsetDateTime::now_utc();
    let from = now - time::Duration::days(30);
    hookrelay_store::partitions::create(&db, from - time::Duration::days(1), now)
        .await
        .expect("partitions of the history");
    fill_span(&db, webhook_id, 1, events, from, now).await;
    settle(&db).await;
    started.elapsed().as_secs_f64()
}

/// Stores `events` events of tenant `bench` as [`fill_history`] does, numbered from
/// `first` (`history-{n}`: spans numbered apart do not collide), received evenly
/// over `from` to `to` (the last one at `to`). The days must have their partitions.
pub(crate) async fn fill_span(
    db: &tokio_postgres::Client,
    webhook_id: uuid::Uuid,
    first: i64,
    events: usize,
    from: time::OffsetDateTime,
    to: time::OffsetDateTime,
) {
    let n = events as i64;
    // Ids sort by time like the now_v7 ids the router makes: the primary key index
    // then grows at its right edge, as in production.
    db.batch_execute("SET synchronous_commit = off")
        .await
        .expect("session");
    for (low, high) in chunks(n, 100_000) {
        let (low, high) = (first - 1 + low, first - 1 + high);
        db.execute(
            "WITH g AS (SELECT i, $5::timestamptz + ($6::timestamptz - $5::timestamptz) * ((i - $7 + 1)::float8 / $3) AS t \
               FROM generate_series($1::bigint, $2::bigint) i), \
             ev AS (INSERT INTO events (tenant, id, type, session_id, occurred_at, received_at, envelope) \
               SELECT 'bench', 'history-' || i, 'import_completed', 'session-' || (i % 5000), t, t, \
                 json_build_object('id', 'history-' || i, 'tenant', 'bench', 'type', 'import_completed', \
                   'occurred_at', to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
                   'payload', json_build_object('event', 'import_completed', \
                     'data', json_build_object('blob', repeat('x', 900)))) FROM g), \
             ek AS (INSERT INTO event_keys (tenant, id, received_at) SELECT 'bench', 'history-' || i, t FROM g), \
             d AS (INSERT INTO deliveries (id, tenant, event_id, webhook_id, status, published, \
                 attempts, last_attempt_at, last_status, created_at, updated_at) \
               SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7000' \
                   || '8' || lpad(to_hex(i), 15, '0'))::uuid, \
                 'bench', 'history-' || i, $4, 'delivered', true, 1, t, 200, t, t FROM g \
               RETURNING id, tenant, event_id, webhook_id, created_at), \
             dk AS (INSERT INTO delivery_targets (tenant, event_id, target, delivery_id) \
               SELECT tenant, event_id, webhook_id, id FROM d) \
             INSERT INTO delivery_attempts (delivery_id, attempt, started_at, latency_ms, status_code, outcome) \
               SELECT id, 1, created_at, 12.5, 200, 'delivered' FROM d",
            &[&low, &high, &(n as f64), &webhook_id, &from, &to, &first],
        )
        .await
        .expect("fill history");
    }
}

/// VACUUM (ANALYZE) and CHECKPOINT after a fill: see the comment within.
pub(crate) async fn settle(db: &tokio_postgres::Client) {
    // A database holding months of history has been vacuumed and checkpointed since:
    // without this, autovacuum's first pass over the new rows and the flush of the
    // fill's dirty pages would run during the first steps and be read as their cost.
    // One statement each: VACUUM cannot run in the transaction a batch would be.
    for statement in [
        "VACUUM (ANALYZE) events, deliveries, delivery_attempts",
        "CHECKPOINT",
    ] {
        db.batch_execute(statement).await.expect(statement);
    }
}

fn chunks(n: i64, size: i64) -> Vec<(i64, i64)> {
    (0..(n + size - 1) / size)
        .map(|k| (k * size + 1, ((k + 1) * size).min(n)))
        .collect()
}

/// The broker ceiling measured both ways, every measurement kept.
#[derive(Default)]
pub(crate) struct Ceilings {
    pub(crate) pipelined: Vec<f64>,
    pub(crate) chunked: Vec<f64>,
}

impl Ceilings {
    pub(crate) async fn measure(&mut self, times: usize, payload_bytes: usize) {
        for _ in 0..times {
            self.pipelined
                .push(broker_ceiling(20_000, payload_bytes).await);
            self.chunked
                .push(broker_ceiling_chunked(20_000, payload_bytes).await);
        }
    }
}

/// One stack: its tallying receiver and one webhook per lane.
pub(crate) struct Rig {
    pub(crate) stack: TestStack,
    pub(crate) receiver: Receiver,
    pub(crate) lanes: Vec<Lane>,
    /// The webhooks' ids, in the lanes' order.
    pub(crate) hooks: Vec<uuid::Uuid>,
}

impl Rig {
    pub(crate) async fn new(lanes: Vec<Lane>) -> Self {
        let stack = TestStack::for_processes().await;
        let receiver = Receiver::tallying(tally_key).await;
        let mut hooks = Vec::with_capacity(lanes.len());
        for lane in &lanes {
            if let Some(pause) = lane.latency {
                receiver.respond(lane.path, Behaviour::Slow(pause, 200));
            }
            let mut new = webhook("bench", lane.key, &receiver.url(lane.path));
            new.ordered = lane.ordered;
            // Several webhooks: each takes its own type, so each event has fan-out 1.
            if lanes.len() > 1 {
                new.event_types = vec![lane.event_type.to_owned()];
            }
            hooks.push(stack.create_webhook(new).await.id);
        }
        Self {
            stack,
            receiver,
            lanes,
            hooks,
        }
    }
}

/// The router and the sender as `hookrelay serve` child processes.
pub(crate) struct Roles {
    pub(crate) router: Child,
    pub(crate) sender: Child,
}

impl Roles {
    pub(crate) async fn start(binary: &Path, stack: &TestStack) -> Self {
        Self {
            router: spawn_role(binary, stack, "router").await,
            sender: spawn_role(binary, stack, "sender").await,
        }
    }

    pub(crate) fn stop(self) {
        self.router.stop();
        self.sender.stop();
    }
}

/// Runs the plan: the mix's webhooks, roles as child processes of `binary`.
pub async fn run(plan: &Plan, binary: &Path) -> Report {
    // The ceiling moves from minute to minute on a shared machine (9,800 to 16,800
    // msg/s within an hour here): measured three times before the run and twice after
    // it, the median is the yardstick and the spread is printed beside it.
    let mut ceilings = Ceilings::default();
    ceilings.measure(3, plan.payload_bytes).await;
    let rig = Rig::new(plan.mix.lanes()).await;
    let history_fill_seconds = fill_history(&rig.stack, plan.history, rig.hooks[0]).await;
    // Counted from here: the roles' statements, not the history's.
    let counting = statements::reset().await;
    let roles = Roles::start(binary, &rig.stack).await;
    let steps = offer_steps(&rig, &roles, plan).await;
    roles.stop();
    rig.stack.publisher.close().await;
    let mut hot_keys = Vec::new();
    for &latency in &plan.hot_keys {
        hot_keys.push(ordered::hot_key(binary, latency, plan).await);
    }
    ceilings.measure(2, plan.payload_bytes).await;
    let ceiling = median(&ceilings.pipelined);
    let statements = if counting {
        statements::top(&rig.stack.db.name, 6).await
    } else {
        Err(
            "pg_stat_statements is not loaded; see docs/performance.md, 'Profiling the database'"
                .into(),
        )
    };
    let capacity = capacity(&steps);
    Report {
        history_events: plan.history,
        history_fill_seconds,
        broker_ceiling_msgs_per_sec: ceiling,
        chunked_ceiling_msgs_per_sec: median(&ceilings.chunked),
        ceiling_runs: ceilings.pipelined,
        chunked_ceiling_runs: ceilings.chunked,
        capacity_per_sec: capacity,
        ratio_to_ceiling: capacity.map(|c| c / ceiling),
        steps,
        statements,
        deliveries: rig.receiver.tallies().len(),
        hot_keys,
    }
}

/// The highest sustained offered rate.
fn capacity(steps: &[Step]) -> Option<f64> {
    steps
        .iter()
        .filter(|s| s.figures.sustained)
        .map(|s| s.figures.offered_per_sec)
        .fold(None, |best: Option<f64>, r| {
            Some(best.map_or(r, |b| b.max(r)))
        })
}

/// The plan's steps in turn, until one is not sustained (unless it keeps going).
async fn offer_steps(rig: &Rig, roles: &Roles, plan: &Plan) -> Vec<Step> {
    let mut source = EventSource::new(plan.mix, plan.payload_bytes);
    let mut steps = Vec::new();
    for &rate in &plan.rates {
        eprintln!("offering {rate} events/s for {:?} ...", plan.step);
        let read = step(rig, roles, &mut source, plan, rate).await;
        let sustained = read.iter().all(|s| s.figures.sustained);
        for s in &read {
            eprintln!("  {}", progress("offered", &s.figures));
            for w in &s.webhooks {
                eprintln!("    {}: {}", w.path, progress("", &w.figures));
            }
        }
        steps.extend(read);
        if !sustained && !plan.keep_going {
            break;
        }
    }
    steps
}

fn progress(label: &str, f: &Figures) -> String {
    format!(
        "{label} {:.0}/s delivered {:.0}/s p50 {:.1} ms p99 {:.1} ms missing {}{}",
        f.offered_per_sec,
        f.delivered_per_sec,
        f.p50_ms,
        f.p99_ms,
        f.missing,
        if f.sustained { "" } else { "  (not sustained)" }
    )
    .trim_start()
    .to_owned()
}

/// One step: publishes at `rate` for the plan's step time, waits for its deliveries
/// (a bounded while), and reads it in windows.
pub(crate) async fn step(
    rig: &Rig,
    roles: &Roles,
    source: &mut EventSource,
    plan: &Plan,
    rate: u32,
) -> Vec<Step> {
    let window = plan.window.unwrap_or(plan.step);
    let windows = (plan.step.as_secs_f64() / window.as_secs_f64())
        .round()
        .max(1.0) as usize;
    let mut pace = Scenario::new("step", 0, 1, plan.payload_bytes);
    pace.rate = rate;
    let per_window = (f64::from(rate) * window.as_secs_f64()) as usize;
    let mut offers = Vec::with_capacity(windows);
    for _ in 0..windows {
        offers.push(Offer::publish(rig, roles, source, &pace, per_window).await);
    }
    read_offers(rig, &offers, Duration::from_secs(30).max(plan.step)).await
}

/// Waits for the windows' deliveries (up to `limit` after the last was offered:
/// what has not arrived by then is reported missing), and reads each window.
pub(crate) async fn read_offers(rig: &Rig, offers: &[Offer], limit: Duration) -> Vec<Step> {
    let drained_by = Instant::now() + limit;
    while Instant::now() < drained_by {
        let tallies = rig.receiver.tallies();
        if offers.iter().all(|o| o.arrived(&tallies)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tallies = rig.receiver.tallies();
    let recorded = ordered::recorded(rig).await;
    offers
        .iter()
        .map(|o| o.read(rig, &tallies, &recorded))
        .collect()
}

/// One window's offer: what it expects on each lane, when each event went out, and
/// the usage around it.
pub(crate) struct Offer {
    /// Per lane: tally key → event id.
    expected: Vec<HashMap<String, String>>,
    sent: HashMap<String, u64>,
    pub(crate) started: Instant,
    pub(crate) published_in: Duration,
    before: Sample,
    after: Sample,
    db_before: DbCounters,
    db_after: DbCounters,
}

impl Offer {
    pub(crate) async fn publish(
        rig: &Rig,
        roles: &Roles,
        source: &mut EventSource,
        pace: &Scenario,
        n: usize,
    ) -> Self {
        let events = source.next(n);
        let mut expected = vec![HashMap::new(); rig.lanes.len()];
        for (lane, e) in &events {
            let key = delivery_key(&e.id, rig.lanes[*lane].path);
            expected[*lane].insert(key, e.id.to_string());
        }
        let events = events.into_iter().map(|(_, e)| e).collect();
        let db_before = DbCounters::take(&rig.stack).await;
        let before = Sample::take(roles);
        let started = Instant::now();
        let sent = publish(&rig.stack, pace, events).await;
        let published_in = started.elapsed();
        let after = Sample::take(roles);
        let db_after = DbCounters::take(&rig.stack).await;
        Self {
            expected,
            sent,
            started,
            published_in,
            before,
            after,
            db_before,
            db_after,
        }
    }

    fn arrived(&self, tallies: &HashMap<String, Tally>) -> bool {
        self.expected
            .iter()
            .all(|lane| lane.keys().all(|k| tallies.contains_key(k)))
    }

    fn read(
        &self,
        rig: &Rig,
        tallies: &HashMap<String, Tally>,
        recorded: &ordered::Recorded,
    ) -> Step {
        let all: HashMap<String, String> = self.expected.iter().flatten().map(owned).collect();
        let lanes: Vec<Figures> = self
            .expected
            .iter()
            .map(|lane| self.figures(lane, tallies))
            .collect();
        let mut figures = self.figures(&all, tallies);
        figures.sustained &= lanes.iter().all(|f| f.sustained);
        let per_webhook = rig.lanes.len() > 1 || rig.lanes.iter().any(|l| l.ordered);
        let webhooks = if per_webhook {
            self.per_webhook(rig, lanes, tallies, recorded)
        } else {
            Vec::new()
        };
        let secs = self.published_in.as_secs_f64();
        let (before, after) = (&self.before, &self.after);
        let deliveries = self.arrived_while_offered(tallies);
        Step {
            figures,
            router: Load::between(&before.router, &after.router, secs),
            sender: Load::between(&before.sender, &after.sender, secs),
            postgres: Load::between(&before.postgres, &after.postgres, secs),
            rabbitmq: Load::between(&before.rabbitmq, &after.rabbitmq, secs),
            bench: Load::between(&before.bench, &after.bench, secs),
            machine_busy_percent: before.machine.busy_percent_until(&after.machine),
            seconds: secs,
            deliveries_while_offered: deliveries,
            cpu_ms_per_delivery: CpuPerDelivery::between(before, after, deliveries),
            db_per_delivery: DbPerDelivery::between(&self.db_before, &self.db_after, deliveries),
            webhooks,
        }
    }

    fn per_webhook(
        &self,
        rig: &Rig,
        lanes: Vec<Figures>,
        tallies: &HashMap<String, Tally>,
        recorded: &ordered::Recorded,
    ) -> Vec<WebhookFigures> {
        rig.lanes
            .iter()
            .zip(lanes)
            .zip(&self.expected)
            .map(|((lane, figures), expected)| WebhookFigures {
                path: lane.path.to_owned(),
                ordered: lane.ordered,
                figures,
                out_of_order: lane
                    .ordered
                    .then(|| ordered::out_of_order(expected, tallies, recorded)),
            })
            .collect()
    }

    /// The figures of the deliveries `expected` (tally key → event id).
    fn figures(
        &self,
        expected: &HashMap<String, String>,
        tallies: &HashMap<String, Tally>,
    ) -> Figures {
        let mut latencies: Vec<u64> = Vec::with_capacity(expected.len());
        let mut arrivals: Vec<Instant> = Vec::with_capacity(expected.len());
        let mut duplicates = 0;
        for (key, event_id) in expected {
            if let (Some(t), Some(sent)) = (tallies.get(key), self.sent.get(event_id)) {
                latencies.push(t.first_unix_us.saturating_sub(*sent));
                arrivals.push(t.first_at.into_std());
                duplicates += t.answered as usize - 1;
            }
        }
        latencies.sort_unstable();
        let p50_ms = percentile(&latencies, 0.50);
        let secs = self.published_in.as_secs_f64();
        let offered = expected.len() as f64 / secs;
        // Deliveries that arrived in the offered window, shifted by the median
        // latency: how fast they came out while they were going in.
        let shift = Duration::from_secs_f64(p50_ms / 1000.0);
        let (from, to) = (
            self.started + shift,
            self.started + self.published_in + shift,
        );
        let in_window = arrivals.iter().filter(|a| **a >= from && **a <= to).count();
        let delivered = in_window as f64 / secs;
        let missing = expected.len() - latencies.len();
        let p99_ms = percentile(&latencies, 0.99);
        Figures {
            offered_per_sec: offered,
            delivered_per_sec: delivered,
            p50_ms,
            p99_ms,
            max_ms: percentile(&latencies, 1.0),
            missing,
            duplicates,
            sustained: delivered >= KEPT_UP * offered && p99_ms <= P99_BOUND_MS && missing == 0,
        }
    }

    /// Deliveries (of any window) that first arrived while this one was published:
    /// the work its CPU samples saw done.
    fn arrived_while_offered(&self, tallies: &HashMap<String, Tally>) -> usize {
        let (from, to) = (self.started, self.started + self.published_in);
        tallies
            .values()
            .filter(|t| (from..=to).contains(&t.first_at.into_std()))
            .count()
    }
}

fn owned((k, v): (&String, &String)) -> (String, String) {
    (k.clone(), v.clone())
}

impl CpuPerDelivery {
    fn between(before: &Sample, after: &Sample, deliveries: usize) -> Option<Self> {
        if deliveries == 0 {
            return None;
        }
        let ms = |cpu_seconds: f64| cpu_seconds * 1000.0 / deliveries as f64;
        let role = |b: &Usage, a: &Usage| ms(a.cpu_seconds - b.cpu_seconds);
        Some(Self {
            router: role(&before.router, &after.router),
            sender: role(&before.sender, &after.sender),
            postgres: role(&before.postgres, &after.postgres),
            rabbitmq: role(&before.rabbitmq, &after.rabbitmq),
            bench: role(&before.bench, &after.bench),
            machine: ms(before.machine.busy_seconds_until(&after.machine)),
        })
    }
}

/// CPU seconds so far and resident MiB now, of one process or group.
struct Usage {
    cpu_seconds: f64,
    rss_mib: f64,
}

impl Usage {
    fn of(pid: &str) -> Self {
        Self {
            cpu_seconds: usage(pid).0,
            rss_mib: rss_mib(pid),
        }
    }
}

impl Load {
    /// CPU as a share of one core over `seconds`, and memory at the end.
    fn between(before: &Usage, after: &Usage, seconds: f64) -> Self {
        Self {
            cpu_percent: 100.0 * (after.cpu_seconds - before.cpu_seconds) / seconds,
            rss_mib: after.rss_mib,
        }
    }
}

/// The usage of the roles and the services at one moment.
struct Sample {
    router: Usage,
    sender: Usage,
    postgres: Usage,
    rabbitmq: Usage,
    bench: Usage,
    machine: Jiffies,
}

impl Sample {
    fn take(roles: &Roles) -> Self {
        Self {
            router: Usage::of(&roles.router.pid()),
            sender: Usage::of(&roles.sender.pid()),
            postgres: by_name("postgres"),
            rabbitmq: by_name("beam.smp"),
            bench: Usage::of("self"),
            machine: Jiffies::now(),
        }
    }
}

/// The machine's CPU time so far, busy and in all (`/proc/stat`, every core).
struct Jiffies {
    busy: u64,
    total: u64,
}

impl Jiffies {
    fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
        let total: u64 = fields.iter().take(8).sum();
        let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
        Self {
            busy: total.saturating_sub(idle),
            total,
        }
    }

    /// CPU seconds spent on every core together until `later`.
    fn busy_seconds_until(&self, later: &Self) -> f64 {
        later.busy.saturating_sub(self.busy) as f64 / TICKS_PER_SEC
    }

    fn busy_percent_until(&self, later: &Self) -> f64 {
        let total = later.total.saturating_sub(self.total).max(1) as f64;
        100.0 * later.busy.saturating_sub(self.busy) as f64 / total
    }
}

/// Resident memory now (not the peak), MiB.
fn rss_mib(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// CPU seconds and resident MiB of every process whose command is `name`, summed.
fn by_name(name: &str) -> Usage {
    let mut sum = Usage {
        cpu_seconds: 0.0,
        rss_mib: 0.0,
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return sum;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| pid.chars().all(|c| c.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .for_each(|pid| {
            let one = Usage::of(&pid);
            sum.cpu_seconds += one.cpu_seconds;
            sum.rss_mib += one.rss_mib;
        });
    sum
}

pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// The step table printed on stdout.
pub fn table(report: &Report) -> String {
    let mut out = format!(
        "history: {} events (filled in {:.0} s)\n{}\n{}\n\n",
        report.history_events,
        report.history_fill_seconds,
        ceiling_line(
            "broker ceiling (pipelined confirms, multiple acks)",
            report.broker_ceiling_msgs_per_sec,
            &report.ceiling_runs,
        ),
        ceiling_line(
            "old method (chunks of 500, single acks), for comparison only",
            report.chunked_ceiling_msgs_per_sec,
            &report.chunked_ceiling_runs,
        ),
    );
    out.push_str(&steps_table(&report.steps));
    out.push_str(&cpu_table(&report.steps));
    out.push_str(&db_work::table(
        report
            .steps
            .iter()
            .map(|s| (s.figures.offered_per_sec, s.db_per_delivery.as_ref())),
    ));
    out.push_str(&ordered::webhooks_table(&report.steps));
    out.push_str(&ordered::hot_keys_table(&report.hot_keys));
    match (report.capacity_per_sec, report.ratio_to_ceiling) {
        (Some(c), Some(r)) => out.push_str(&format!(
            "\nsustained capacity: {c:.0} deliveries/s (fan-out 1), {r:.3} of the broker ceiling (pipelined)\n"
        )),
        _ => out.push_str("\nno step was sustained\n"),
    }
    match &report.statements {
        Ok(top) => {
            out.push_str("\nthe database's top statements over the run (pg_stat_statements):\n\n");
            out.push_str(&statements::table(top, report.deliveries));
        }
        Err(why) => out.push_str(&format!("\nno statement figures: {why}\n")),
    }
    out
}

/// `LABEL: M msg/s (median of N: LOW to HIGH, before and after the run)`.
pub(crate) fn ceiling_line(label: &str, median: f64, runs: &[f64]) -> String {
    let low = runs.iter().copied().fold(f64::INFINITY, f64::min);
    let high = runs.iter().copied().fold(0.0, f64::max);
    format!(
        "{label}: {median:.0} msg/s (median of {}: {low:.0} to {high:.0}, before and after the run)",
        runs.len()
    )
}

fn steps_table(steps: &[Step]) -> String {
    let mut out = String::from(
        "| offered/s | delivered/s | p50 ms | p99 ms | max ms | missing | dup | sustained | CPU % router / sender / postgres / rabbitmq / bench | machine busy % | RSS MiB router / sender |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in steps {
        let f = &s.figures;
        out.push_str(&format!(
            "| {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {:.0} / {:.0} / {:.0} / {:.0} / {:.0} | {:.0} | {:.0} / {:.0} |\n",
            f.offered_per_sec,
            f.delivered_per_sec,
            f.p50_ms,
            f.p99_ms,
            f.max_ms,
            f.missing,
            f.duplicates,
            if f.sustained { "yes" } else { "no" },
            s.router.cpu_percent,
            s.sender.cpu_percent,
            s.postgres.cpu_percent,
            s.rabbitmq.cpu_percent,
            s.bench.cpu_percent,
            s.machine_busy_percent,
            s.router.rss_mib,
            s.sender.rss_mib,
        ));
    }
    out
}

/// CPU milliseconds per delivery, step by step.
fn cpu_table(steps: &[Step]) -> String {
    let mut out = String::from(
        "\nCPU ms per delivery (CPU seconds while the step was offered × 1000 / deliveries that arrived meanwhile):\n\n\
         | offered/s | deliveries | router | sender | postgres | rabbitmq | bench | machine (all cores) |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for s in steps {
        let cells = match &s.cpu_ms_per_delivery {
            Some(c) => format!(
                "{:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3}",
                c.router, c.sender, c.postgres, c.rabbitmq, c.bench, c.machine
            ),
            None => "- | - | - | - | - | -".to_owned(),
        };
        out.push_str(&format!(
            "| {:.0} | {} | {cells} |\n",
            s.figures.offered_per_sec, s.deliveries_while_offered
        ));
    }
    out
}
