//! The `--hosts` fault run: RabbitMQ (three nodes), Postgres, two routers, two
//! senders and the receiver each on a host of its own ([`crate::hosts`]), a steady
//! load of events flowing all along, and network faults one after another:
//!
//! 1. `steady`: no fault, for a baseline;
//! 2. `partition`: the RabbitMQ node leading the most queues cut from the other two
//!    (clients still reach it), then healed; `pause_minority` must pause it;
//! 3. `sender-db`: the link between one sender and Postgres cut (30 s);
//! 4. `router-links`: every packet the routers send held 200 ms, 5 % dropped;
//! 5. `sender-broker`: one sender cut from all three nodes while it has deliveries
//!    in flight.
//!
//! After each fault is healed, every event published during the phase must be
//! settled (delivered or failed) within `settle_within`, with one delivery each;
//! repeated POSTs stay within what the cut-off roles can have had unacked, and the
//! receiver must answer a first delivery within `resume_within` of the heal. At the
//! end, the fault run's own check ([`crate::chaos`]) of every event.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookrelay_model::Event;
use serde::Serialize;
use serde_json::json;

use crate::TestStack;
use crate::bench::{Child, start_role_at};
use crate::chaos::{
    self, Figures, ROUTER_UNACKED, SENDER_IN_FLIGHT, answer, fresh_connection, webhook_id,
};
use crate::cluster::Cluster;
use crate::hosts::Net;
use crate::receiver::{Behaviour, Receiver};
use crate::stack::{event, webhook};
use crate::timeline::{self, PublishLog, Sampler};

#[derive(Debug, Clone)]
pub struct Options {
    /// Events published per second, all along.
    pub rate: usize,
    pub steady: Duration,
    /// How long the node stays cut from the others.
    pub partition: Duration,
    pub database_cut: Duration,
    pub degraded: Duration,
    pub broker_cut: Duration,
    /// Held this long, and dropped at this rate, on the routers' links.
    pub delay: Duration,
    pub loss: f64,
    /// How long a phase's events may take to settle after its heal.
    pub settle_within: Duration,
    /// The stated time: deliveries resume this soon after a heal.
    pub resume_within: Duration,
    /// The stated time: deliveries go on this soon after the partitioned node paused
    /// itself (checked when the cut lasts that long after the pause).
    pub after_pause: Duration,
    /// The roles' AMQP heartbeat (`?heartbeat=` on their URLs), seconds.
    pub heartbeat: u16,
    /// Erlang's `net_ticktime` on the nodes, seconds: how soon a node is seen gone.
    pub net_ticktime: u16,
    /// Where Postgres's `initdb` and `pg_ctl` are.
    pub postgres_bin: std::path::PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            rate: 100,
            steady: Duration::from_secs(15),
            partition: Duration::from_secs(45),
            database_cut: Duration::from_secs(30),
            degraded: Duration::from_secs(30),
            broker_cut: Duration::from_secs(30),
            delay: Duration::from_millis(200),
            loss: 0.05,
            settle_within: Duration::from_secs(180),
            resume_within: Duration::from_secs(30),
            after_pause: Duration::from_secs(10),
            heartbeat: 10,
            net_ticktime: 10,
            postgres_bin: "/usr/lib/postgresql/15/bin".into(),
        }
    }
}

/// One phase's figures: over the events published from its start until its heal.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Phase {
    pub name: String,
    pub fault: String,
    pub fault_seconds: f64,
    pub published: usize,
    pub delivered: usize,
    pub failed: usize,
    /// Published events without a settled delivery `settle_within` after the heal.
    pub lost: usize,
    /// Deliveries beyond one per event.
    pub fanned_out_twice: usize,
    /// Repeated 2xx POSTs at the receiver from the phase's start until it caught up.
    pub duplicates: usize,
    pub duplicate_bound: usize,
    /// From the heal to the receiver's next first delivery.
    pub resume_ms: Option<f64>,
    /// The longest time without a first delivery, from the fault until caught up.
    pub longest_pause_ms: f64,
    /// From the heal until every event published so far was settled.
    pub caught_up_seconds: f64,
    /// What else the phase saw (a node paused and back, in-flight at the cut).
    pub note: String,
}

impl Phase {
    /// When first deliveries resumed after the heal, as printed.
    pub fn resumed(&self) -> String {
        self.resume_ms
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.0} ms"))
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HostsFigures {
    pub phases: Vec<Phase>,
    pub run: Figures,
    pub rabbitmq: String,
    pub partition_handling: String,
    /// Broken promises: resumes later than stated, phases that did not settle.
    pub violations: Vec<String>,
}

const HOSTS: [&str; 9] = [
    "rmq1", "rmq2", "rmq3", "pg", "router1", "router2", "sender1", "sender2", "receiver",
];
/// The run's routers and senders: two of each.
const ROUTERS: usize = 2;
const SENDERS: usize = 2;
const ROLE_PORT: u16 = 9100;
const RECEIVER_PORT: u16 = 8080;

/// Publishes `rate` events a second in ten batches, through outages (each batch tried
/// again every 250 ms, for up to 2 minutes), until `stop`; each confirmed batch is
/// appended to `published`, and when it was confirmed (or a try failed) to `log`.
async fn load(
    publisher: Arc<hookrelay_producer::Publisher>,
    rate: usize,
    published: Arc<Mutex<Vec<Event>>>,
    log: Arc<Mutex<PublishLog>>,
    stop: Arc<AtomicBool>,
) {
    let batch = (rate / 10).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        let events: Vec<Event> = (0..batch)
            .map(|_| event("chaos", "file_uploaded", json!({})))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        while let Err(e) = publisher.publish_batch(&events).await {
            assert!(
                Instant::now() < deadline,
                "publishing failed for 2 minutes: {e}"
            );
            if let Ok(mut l) = log.lock() {
                l.failures.push((Instant::now(), e.to_string()));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if let Ok(mut l) = log.lock() {
            l.confirmed.push((Instant::now(), events.len()));
        }
        if let Ok(mut p) = published.lock() {
            p.extend(events);
        }
    }
}

struct Run<'a> {
    stack: &'a TestStack,
    receiver: &'a Receiver,
    published: Arc<Mutex<Vec<Event>>>,
    options: &'a Options,
    /// Where the next phase's events start in `published`.
    next: usize,
}

/// Where a phase began.
struct Mark {
    from: usize,
    duplicates: usize,
    fault_at: Instant,
}

impl Run<'_> {
    fn duplicates(&self) -> usize {
        self.receiver
            .tallies()
            .values()
            .map(|t| t.answered as usize - 1)
            .sum()
    }

    fn begin(&self) -> Mark {
        Mark {
            from: self.next,
            duplicates: self.duplicates(),
            fault_at: Instant::now(),
        }
    }

    fn published_len(&self) -> usize {
        self.published.lock().map(|p| p.len()).unwrap_or_default()
    }

    /// After the heal at `healed_at`: waits until the phase's events are settled, and
    /// measures.
    async fn finish(
        &mut self,
        mark: Mark,
        healed_at: Instant,
        name: &str,
        fault: &str,
        duplicate_bound: usize,
        violations: &mut Vec<String>,
    ) -> Phase {
        let until = self.published_len();
        let ids: Vec<String> = self
            .published
            .lock()
            .map(|p| {
                p[mark.from..until]
                    .iter()
                    .map(|e| e.id.to_string())
                    .collect()
            })
            .unwrap_or_default();
        self.next = until;
        let db = fresh_connection(self.stack).await;
        let deadline = healed_at + self.options.settle_within;
        let counts = loop {
            let row = db
                .query_one(
                    "SELECT count(*) AS deliveries, count(DISTINCT event_id) AS events, \
                       count(DISTINCT event_id) FILTER (WHERE status IN ('delivered', 'failed')) AS settled, \
                       count(*) FILTER (WHERE status = 'delivered') AS delivered, \
                       count(*) FILTER (WHERE status = 'failed') AS failed \
                     FROM deliveries WHERE event_id = ANY($1)",
                    &[&ids],
                )
                .await;
            let counts = row.map(|r| {
                ["deliveries", "events", "settled", "delivered", "failed"]
                    .map(|c| r.get::<_, i64>(c) as usize)
            });
            match counts {
                Ok(c) if c[2] == ids.len() || Instant::now() > deadline => break c,
                Err(e) if Instant::now() > deadline => panic!("counting {name}: {e}"),
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        };
        let caught_up_at = Instant::now();
        let [deliveries, events, settled, delivered, failed] = counts;
        let mut firsts: Vec<Instant> = self
            .receiver
            .tallies()
            .values()
            .map(|t| t.first_at.into_std())
            .filter(|at| *at > mark.fault_at && *at <= caught_up_at)
            .collect();
        firsts.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let resume_ms = firsts
            .iter()
            .find(|at| **at >= healed_at)
            .map(|at| ms(*at - healed_at));
        let mut longest = 0.0f64;
        let mut previous = mark.fault_at;
        for at in &firsts {
            longest = longest.max(ms(*at - previous));
            previous = *at;
        }
        let phase = Phase {
            name: name.to_owned(),
            fault: fault.to_owned(),
            fault_seconds: (healed_at - mark.fault_at).as_secs_f64(),
            published: ids.len(),
            delivered,
            failed,
            lost: ids.len() - settled,
            fanned_out_twice: deliveries - events,
            duplicates: self.duplicates() - mark.duplicates,
            duplicate_bound,
            resume_ms,
            longest_pause_ms: longest,
            caught_up_seconds: (caught_up_at - healed_at).as_secs_f64(),
            note: String::new(),
        };
        if phase.lost > 0 {
            violations.push(format!(
                "{name}: {} events not settled {:?} after the heal",
                phase.lost, self.options.settle_within
            ));
        }
        if phase.fanned_out_twice > 0 {
            violations.push(format!(
                "{name}: {} fanned out twice",
                phase.fanned_out_twice
            ));
        }
        if phase.duplicates > duplicate_bound {
            violations.push(format!(
                "{name}: {} duplicate POSTs, more than the bound {duplicate_bound}",
                phase.duplicates
            ));
        }
        match resume_ms {
            Some(r) if r <= ms(self.options.resume_within) => {}
            Some(r) => violations.push(format!(
                "{name}: deliveries resumed {r:.0} ms after the heal, later than {:?}",
                self.options.resume_within
            )),
            None => violations.push(format!("{name}: no delivery after the heal")),
        }
        phase
    }
}

/// A role on its host, serving its endpoints on the host's address.
fn start_role(
    binary: &std::path::Path,
    stack: &TestStack,
    net: &Net,
    role: &str,
    host: &str,
    env: &[(&str, &str)],
) -> Child {
    let h = net.host(host);
    // Warnings and errors to a file per host, kept in HOOKRELAY_HOSTS_LOGS if set.
    let stderr = std::env::var_os("HOOKRELAY_HOSTS_LOGS")
        .and_then(|dir| {
            let dir = std::path::PathBuf::from(dir);
            std::fs::create_dir_all(&dir).ok()?;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("{host}.log")))
                .ok()
        })
        .map_or_else(std::process::Stdio::inherit, std::process::Stdio::from);
    let mut env = env.to_vec();
    if std::env::var_os("HOOKRELAY_HOSTS_LOGS").is_some() {
        // Warnings, and which node each connection went to (hookrelay_amqp's info).
        env.push(("RUST_LOG", "warn,hookrelay_amqp=info"));
    }
    start_role_at(
        binary,
        stack,
        role,
        Some(&h.netns),
        &format!("{}:{ROLE_PORT}", h.ip),
        &env,
        stderr,
    )
}

/// Waits until one of `hosts` answers 2xx on `path` (`/readyz`, `/healthz`).
async fn wait_answer(net: &Net, hosts: &[&str], path: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut why = Vec::new();
        for host in hosts {
            let url = format!("http://{}:{ROLE_PORT}{path}", net.host(host).ip);
            match reqwest::get(&url).await {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => why.push(format!("{host}: {}", r.text().await.unwrap_or_default())),
                Err(e) => why.push(format!("{host}: {e}")),
            }
        }
        assert!(
            Instant::now() < deadline,
            "none of {hosts:?} answered {path} within 60 s: {}",
            why.join("; ")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A sender's in-flight gauge, from its `/metrics` on its host.
async fn in_flight(net: &Net, host: &str) -> f64 {
    let url = format!("http://{}:{ROLE_PORT}/metrics", net.host(host).ip);
    let text = match reqwest::get(&url).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .find(|l| l.starts_with("hookrelay_in_flight{role=\"sender\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn alive(roles: &mut [(&str, Child)], phase: &str) {
    for (host, child) in roles.iter_mut() {
        assert!(
            child.is_running(),
            "{host}'s role exited during {phase} instead of riding it out"
        );
    }
}

pub async fn run(binary: &std::path::Path, options: &Options) -> HostsFigures {
    let started = Instant::now();
    // Declared first, dropped last: whatever runs in its namespaces is killed then.
    let mut net = Net::create(&HOSTS);
    eprintln!(
        "hosts: {} hosts on {} (prefix {})",
        net.hosts.len(),
        net.subnet(),
        net.prefix
    );
    let db_server = net.start_postgres("pg", &options.postgres_bin);
    eprintln!("hosts: postgres at {db_server}");
    let rabbit_hosts: Vec<(String, String)> = ["rmq1", "rmq2", "rmq3"]
        .iter()
        .map(|h| (net.host(h).netns.clone(), net.host(h).ip.to_string()))
        .collect();
    let config = format!(
        "cluster_partition_handling = pause_minority\nnet_ticktime = {}\n\
         # guest may log in from the run's other hosts, not only from loopback.\n\
         loopback_users = none\n",
        options.net_ticktime
    );
    let cluster = Arc::new(Cluster::start_in(
        &net.prefix,
        &rabbit_hosts,
        net.dir().join("rabbitmq"),
        &config,
    ));
    let first = cluster.nodes[0].name.clone();
    let mut figures = HostsFigures {
        rabbitmq: cluster.version(),
        partition_handling: cluster
            .ctl(
                &first,
                &[
                    "eval",
                    "application:get_env(rabbit, cluster_partition_handling).",
                ],
            )
            .trim()
            .to_owned(),
        ..HostsFigures::default()
    };
    eprintln!(
        "hosts: RabbitMQ {} on {} ({}), up {:.0} s after the start",
        figures.rabbitmq,
        cluster.names(),
        figures.partition_handling,
        started.elapsed().as_secs_f64()
    );

    let stack = TestStack::for_processes_with(&cluster.amqp_url(), &db_server).await;
    let receiver = Receiver::tallying_on(webhook_id, net.listen_in("receiver", RECEIVER_PORT));
    receiver.respond("/hook", Behaviour::PerRequest(answer));
    let receiver_ip = net.host("receiver").ip;
    stack
        .create_webhook(webhook(
            "chaos",
            "hook",
            &format!("http://{receiver_ip}:{RECEIVER_PORT}/hook"),
        ))
        .await;

    // The roles' brokers with a short heartbeat, so that a cut link is noticed in
    // seconds; deliveries may reach the receiver's address, and only it.
    let amqp = cluster
        .nodes
        .iter()
        .map(|n| format!("{}?heartbeat={}", n.amqp_url(), options.heartbeat))
        .collect::<Vec<_>>()
        .join(",");
    let allowed = format!("{receiver_ip}/32");
    let env = [
        ("HOOKRELAY_AMQP_URL", amqp.as_str()),
        ("HOOKRELAY_ALLOWED_DESTINATIONS", allowed.as_str()),
    ];
    let mut roles: Vec<(&str, Child)> = [
        ("router1", "router"),
        ("router2", "router"),
        ("sender1", "sender"),
        ("sender2", "sender"),
    ]
    .into_iter()
    .map(|(host, role)| (host, start_role(binary, &stack, &net, role, host, &env)))
    .collect();
    // Every role up; one router consumes at a time (it holds the lead in Postgres),
    // the other stands by, unready, until it takes over.
    for (host, _) in &roles {
        wait_answer(&net, &[host], "/healthz").await;
    }
    wait_answer(&net, &["router1", "router2"], "/readyz").await;
    for host in ["sender1", "sender2"] {
        wait_answer(&net, &[host], "/readyz").await;
    }

    let published = Arc::new(Mutex::new(Vec::new()));
    let publish_log = Arc::new(Mutex::new(PublishLog::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let loading = tokio::spawn(load(
        Arc::clone(&stack.publisher),
        options.rate,
        Arc::clone(&published),
        Arc::clone(&publish_log),
        Arc::clone(&stop),
    ));
    let mut run = Run {
        stack: &stack,
        receiver: &receiver,
        published: Arc::clone(&published),
        options,
        next: 0,
    };
    let mut violations = Vec::new();
    let print = |p: &Phase| {
        eprintln!(
            "hosts: {}: {} published, {} delivered, {} failed, {} lost, {} twice, {} duplicate POSTs (bound {}), resumed {} after the heal, caught up in {:.1} s{}",
            p.name,
            p.published,
            p.delivered,
            p.failed,
            p.lost,
            p.fanned_out_twice,
            p.duplicates,
            p.duplicate_bound,
            p.resumed(),
            p.caught_up_seconds,
            if p.note.is_empty() {
                String::new()
            } else {
                format!("; {}", p.note)
            }
        );
    };

    // 1. No fault.
    let mark = run.begin();
    tokio::time::sleep(options.steady).await;
    let phase = run
        .finish(mark, Instant::now(), "steady", "none", 0, &mut violations)
        .await;
    print(&phase);
    figures.phases.push(phase);
    alive(&mut roles, "steady");

    // 2. The node leading the most queues cut from the other two.
    let queues = cluster.queues(&stack.prefix);
    for q in &queues {
        assert_eq!(q.kind, "quorum", "{} is a quorum queue", q.queue);
        assert_eq!(q.members, 3, "{} has a member on every node", q.queue);
    }
    let (leader, led) = Cluster::busiest_leader(&queues).expect("the queues have leaders");
    let index = cluster
        .nodes
        .iter()
        .position(|n| n.name == leader)
        .expect("a node of the cluster");
    let minority = ["rmq1", "rmq2", "rmq3"][index];
    let majority: Vec<&str> = ["rmq1", "rmq2", "rmq3"]
        .into_iter()
        .filter(|h| *h != minority)
        .collect();
    let majority_node = cluster.nodes[(index + 1) % 3].name.clone();
    let mark = run.begin();
    let fault_at = mark.fault_at;
    let fault_unix_us = crate::receiver::unix_micros();
    let from = mark.from;
    timeline::keep(
        "partition.log",
        &format!(
            "cut {minority} from {majority:?} at {}\n",
            timeline::utc_now()
        ),
    );
    for other in &majority {
        net.cut(minority, other);
    }
    let sampler = Sampler::start(Arc::clone(&cluster), majority_node.clone(), fault_at);
    // pause_minority: the cut-off node must stop its broker on its own.
    let mut paused_after = None;
    while mark.fault_at.elapsed() < options.partition {
        if paused_after.is_none() {
            let running = cluster
                .try_ctl(&leader, &["eval", "rabbit:is_running()."])
                .map(|o| o.trim() == "true")
                .unwrap_or(true);
            if !running {
                paused_after = Some(mark.fault_at.elapsed().as_secs_f64());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for other in &majority {
        net.heal(minority, other);
    }
    let healed_at = Instant::now();
    timeline::keep(
        "partition.log",
        &format!(
            "healed at {} (+{:.1} s)\n",
            timeline::utc_now(),
            (healed_at - fault_at).as_secs_f64()
        ),
    );
    let mut phase = run
        .finish(
            mark,
            healed_at,
            "partition",
            &format!(
                "{minority} (leader of {led} of {} queues) cut from the other nodes",
                queues.len()
            ),
            SENDERS * SENDER_IN_FLIGHT + ROUTERS * ROUTER_UNACKED,
            &mut violations,
        )
        .await;
    // The paused node rejoins by itself once it sees the others.
    let deadline = Instant::now() + Duration::from_secs(120);
    while cluster.running_as_seen_by(&majority_node).len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rejoined = cluster.running_as_seen_by(&majority_node).len() == 3;
    let rejoined_after = healed_at.elapsed().as_secs_f64();
    drop(sampler);
    let stages = partition_stages(&run, &publish_log, from, fault_at, fault_unix_us).await;
    eprintln!("hosts: partition: {stages}");
    // The majority delivers without the cut-off node: once it has paused itself,
    // the roles are on the other two nodes and first deliveries go on.
    let firsts = first_deliveries_since(run.receiver, fault_unix_us);
    let cut = phase.fault_seconds;
    let after_pause = paused_after.map(|p| {
        firsts
            .iter()
            .find(|t| **t >= p)
            .map(|t| t - p)
            .filter(|d| *d <= cut - p)
    });
    phase.note = format!(
        "{} {}; {}{}",
        minority,
        paused_after.map_or_else(
            || "never paused".to_owned(),
            |s| format!("paused itself {s:.0} s into the cut")
        ),
        match after_pause {
            Some(Some(d)) => format!("first delivery {d:.1} s after the pause; "),
            Some(None) => "no first delivery from the pause until the heal; ".to_owned(),
            None => String::new(),
        },
        if rejoined {
            format!("running again {rejoined_after:.0} s after the heal")
        } else {
            "not running again 2 minutes after the heal".to_owned()
        }
    );
    if let (Some(p), Some(after)) = (paused_after, after_pause)
        && cut - p >= options.after_pause.as_secs_f64()
        && after.is_none_or(|d| d > options.after_pause.as_secs_f64())
    {
        violations.push(format!(
            "partition: no first delivery within {:?} of {minority}'s pause ({p:.0} s into a {cut:.0} s cut): the majority did not take over",
            options.after_pause
        ));
    }
    if paused_after.is_none() {
        violations.push(format!(
            "partition: {minority} did not pause (pause_minority)"
        ));
    }
    if !rejoined {
        violations.push(format!("partition: {minority} did not rejoin"));
    }
    print(&phase);
    figures.phases.push(phase);
    alive(&mut roles, "the partition");

    // 3. One sender cut from Postgres.
    let mark = run.begin();
    net.cut("sender1", "pg");
    tokio::time::sleep(options.database_cut).await;
    net.heal("sender1", "pg");
    let phase = run
        .finish(
            mark,
            Instant::now(),
            "sender-db",
            "sender1 cut from Postgres",
            SENDER_IN_FLIGHT,
            &mut violations,
        )
        .await;
    print(&phase);
    figures.phases.push(phase);
    alive(&mut roles, "the database cut");

    // 4. The routers' links slow and lossy.
    let mark = run.begin();
    for host in ["router1", "router2"] {
        net.degrade(host, options.delay, options.loss);
    }
    tokio::time::sleep(options.degraded).await;
    net.restore();
    let phase = run
        .finish(
            mark,
            Instant::now(),
            "router-links",
            &format!(
                "routers' packets held {} ms, {:.0} % dropped",
                options.delay.as_millis(),
                options.loss * 100.0
            ),
            ROUTERS * ROUTER_UNACKED,
            &mut violations,
        )
        .await;
    print(&phase);
    figures.phases.push(phase);
    alive(&mut roles, "the slow links");

    // 5. One sender cut from every node while it has deliveries in flight.
    let mut in_flight_at_cut = 0.0;
    let wait = Instant::now() + Duration::from_secs(20);
    while Instant::now() < wait {
        in_flight_at_cut = in_flight(&net, "sender1").await;
        if in_flight_at_cut > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mark = run.begin();
    for node in ["rmq1", "rmq2", "rmq3"] {
        net.cut("sender1", node);
    }
    tokio::time::sleep(options.broker_cut).await;
    for node in ["rmq1", "rmq2", "rmq3"] {
        net.heal("sender1", node);
    }
    let mut phase = run
        .finish(
            mark,
            Instant::now(),
            "sender-broker",
            "sender1 cut from the three nodes mid-delivery",
            SENDER_IN_FLIGHT,
            &mut violations,
        )
        .await;
    phase.note = format!("{in_flight_at_cut:.0} deliveries in flight at the cut");
    print(&phase);
    figures.phases.push(phase);
    alive(&mut roles, "the broker cut");

    // The end: stop the load, let the last events settle, check every one.
    stop.store(true, Ordering::SeqCst);
    let _ = loading.await;
    let tail = run.begin();
    let phase = run
        .finish(tail, Instant::now(), "tail", "none", 0, &mut violations)
        .await;
    print(&phase);
    let events: Vec<Event> = published.lock().map(|p| p.clone()).unwrap_or_default();
    let db = fresh_connection(&stack).await;
    figures.run.events = events.len();
    figures.run.duplicate_bound = figures.phases.iter().map(|p| p.duplicate_bound).sum();
    chaos::check_outcomes(&stack, &db, &events, &receiver, &mut figures.run).await;
    figures.run.seconds = started.elapsed().as_secs_f64();
    figures.violations = violations;
    for (_, mut child) in roles {
        child.kill_9();
    }
    drop(stack);
    if let Some(dir) = std::env::var_os("HOOKRELAY_HOSTS_LOGS") {
        cluster.keep_logs(std::path::Path::new(&dir));
    }
    drop(cluster);
    drop(net);
    figures
}

/// Where the partition's pause sits: the longest gap from the cut until the phase
/// caught up in the run's publisher's confirms, in the deliveries the router stored
/// and in the receiver's first POSTs, with its failed publishes; the same per second
/// into `partition.log`.
async fn partition_stages(
    run: &Run<'_>,
    log: &Mutex<PublishLog>,
    from: usize,
    fault_at: Instant,
    fault_unix_us: u64,
) -> String {
    let until = fault_at.elapsed().as_secs_f64();
    let since = |at: &Instant| at.saturating_duration_since(fault_at).as_secs_f64();
    let (confirmed, failures) = log
        .lock()
        .map(|l| {
            let confirmed: Vec<f64> = l
                .confirmed
                .iter()
                .filter(|(at, _)| *at > fault_at)
                .flat_map(|(at, n)| std::iter::repeat_n(since(at), *n))
                .collect();
            let failures: Vec<(f64, String)> = l
                .failures
                .iter()
                .filter(|(at, _)| *at > fault_at)
                .map(|(at, e)| (since(at), e.clone()))
                .collect();
            (confirmed, failures)
        })
        .unwrap_or_default();
    let ids: Vec<String> = run
        .published
        .lock()
        .map(|p| {
            p[from.min(p.len())..]
                .iter()
                .map(|e| e.id.to_string())
                .collect()
        })
        .unwrap_or_default();
    let db = fresh_connection(run.stack).await;
    let mut stored: Vec<f64> = db
        .query(
            "SELECT (extract(epoch FROM created_at) * 1000000)::bigint AS us \
             FROM deliveries WHERE event_id = ANY($1)",
            &[&ids],
        )
        .await
        .map(|rows| {
            rows.iter()
                .map(|r| (r.get::<_, i64>("us") - fault_unix_us as i64) as f64 / 1e6)
                .collect()
        })
        .unwrap_or_default();
    stored.sort_by(f64::total_cmp);
    let firsts = first_deliveries_since(run.receiver, fault_unix_us);
    timeline::keep(
        "partition.log",
        &format!(
            "failed publishes (s from the fault, error):\n{}\n{}",
            failures
                .iter()
                .map(|(t, e)| format!("+{t:.1} s {e}\n"))
                .collect::<String>(),
            timeline::per_second(
                &[
                    ("events confirmed to the run's publisher", &confirmed),
                    ("deliveries stored by the router", &stored),
                    ("first POSTs at the receiver", &firsts),
                ],
                until
            )
        ),
    );
    format!(
        "longest gap from the cut: publisher's confirms {}, router's stored deliveries {}, \
         receiver's first POSTs {}; {} failed publishes{}",
        timeline::gap_text(&confirmed, until),
        timeline::gap_text(&stored, until),
        timeline::gap_text(&firsts, until),
        failures.len(),
        failures
            .first()
            .map(|(t, e)| format!(" (first at +{t:.1} s: {e})"))
            .unwrap_or_default()
    )
}

/// When each delivery's first POST arrived, in seconds from `fault_unix_us`, in order.
fn first_deliveries_since(receiver: &Receiver, fault_unix_us: u64) -> Vec<f64> {
    let mut firsts: Vec<f64> = receiver
        .tallies()
        .values()
        .map(|t| (t.first_unix_us as f64 - fault_unix_us as f64) / 1e6)
        .collect();
    firsts.sort_by(f64::total_cmp);
    firsts
}
