//! `cargo xtask bench [--scenario NAME|all] [--events N] [--fanout N] [--rate N]
//! [--payload-bytes N] [--json PATH]`
//!
//! End-to-end deliveries/s and publish→receive latency of hookrelay (router and sender
//! as child processes of `--hookrelay PATH`, which `cargo xtask bench` passes, else
//! in this process; RabbitMQ and Postgres on this machine; a local receiver), checked
//! for lost and duplicate deliveries, beside the broker's own ceiling (raw persistent
//! publish + consume with confirms) so the result reads as a ratio.
//!
//! `--fanout`, `--rate` or `--payload-bytes` without `--scenario` make one custom
//! run; `--scenario` takes a scenario's exact name.
//!
//! `--scenario capacity [--steps 250,500,...] [--step-seconds 20] [--history N]`:
//! steady offered rates in steps, the sustained capacity (see
//! tests/src/capacity.rs), on a database that already holds N events.
//! `--scenario soak [--rate N] [--minutes 10] [--history N]`: one steady rate read
//! minute by minute (RSS per role, p99).
//! Both print, per step, the CPU milliseconds each role (router, sender), the
//! services (postgres, rabbitmq), the bench and the whole machine spent per
//! delivery, and the broker ceiling measured two ways: pipelined confirms with
//! `multiple` acks (the yardstick) and the old chunks of 500 with single acks.
//!
//! `--scenario cold --rate N [--step-seconds 20] [--window-seconds N]`: a fresh stack (new database, roles
//! just started, nothing warmed up) offered N events/s from its first second, read
//! as one capacity step: what a deployment under traffic or a restart into a backlog
//! meets. Its database work per delivery (rows seq-scanned, rows by index) beside a
//! ladder's step at the same rate shows what a cold start costs. With
//! `--window-seconds 2`, a row per two seconds: how the first seconds differ.
//! `--scenario ordered [--steps ...] [--step-seconds 20] [--keys 1000]
//! [--hot-latencies-ms 5,20]`: the capacity steps with two webhooks on one receiver
//! (different paths), one `ordered: true` and one unordered, each subscribed to an
//! event type of its own (fan-out 1 per event); events alternate between them at
//! the step's rate, the ordered ones with an `ordering_key` spread over `--keys`
//! keys. Per step and webhook: delivered/s, p50/p99/max, missing, duplicates,
//! sustained, and for the ordered one the receipts out of order (a receipt of a
//! key's event after the first receipt of an event the router recorded after it:
//! must be 0). Then one hot-key sub-run per latency, each on a stack of its own:
//! one ordered key only, offered 1.5 × 1/latency for up to 10 s, the receiver
//! answering every request after that latency; the key's delivered rate is printed
//! beside 1/latency, its bound when each delivery waits for its predecessor's
//! answer. See tests/src/ordered.rs.
//! `--scenario dedup [--rounds 20]`: what exact de-duplication across day partitions
//! (V23's key tables) costs the router per event, beside the unique keys before it;
//! see tests/src/dedup_cost.rs.
//! `--scenario console [--history N]`: each console page's, portal page's and events
//! API read's (`/v1/tenants/{t}/events` and `/deliveries`, filtered, a second page by
//! cursor, one event, one delivery and its attempts, with the API token) time on a
//! database holding N events (100,000 unless given), see tests/src/console_bench.rs.
//! `--scenario retention [--rate 1500] [--day-events 300000] [--history 1000000]
//! [--window-seconds 5]`: a steady rate (half this machine's capacity unless given)
//! read in windows before, during and after one retention round (the api role's)
//! that drops a day of `--day-events` events past the 30-day period, beside
//! `--history` events kept; the round's duration and what it dropped, the load's
//! rate and p99 during it against before, and the disk after it against what the
//! remaining rows need. See tests/src/retention_bench.rs.

use hookrelay_tests::bench::{self, Report, Scenario};
use hookrelay_tests::capacity;

/// End-to-end deliveries/s and publish→receive latency of hookrelay, beside the
/// broker's own ceiling (run through `cargo xtask bench`).
#[derive(clap::Parser)]
#[command(name = "cargo xtask bench", bin_name = "cargo xtask bench")]
struct Args {
    /// A scenario's exact name, `all`, `custom`, `capacity`, `cold`, `soak`,
    /// `ordered`, `dedup`, `console` or `retention`.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Events per burst scenario (5,000 unless given; fan-out N scenarios publish
    /// events / N).
    #[arg(long)]
    events: Option<usize>,
    /// Webhooks per event (a custom run).
    #[arg(long)]
    fanout: Option<usize>,
    /// Events/s: a custom run's pace, a soak's steady rate, a cold start's rate, or the
    /// load during a retention round (1,500 unless given).
    #[arg(long)]
    rate: Option<u32>,
    /// Payload size of a custom run.
    #[arg(long)]
    payload_bytes: Option<usize>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<String>,
    /// The hookrelay binary whose `serve` runs the roles (`cargo xtask bench` passes
    /// the release build); without it, the roles run in this process.
    #[arg(long)]
    hookrelay: Option<String>,
    /// Capacity steps in events/s.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "250,500,1000,1500,2000,2500,3000,3500,4000,4500,5000,6000"
    )]
    steps: Vec<u32>,
    /// Seconds each capacity step is offered.
    #[arg(long, default_value_t = 20)]
    step_seconds: u64,
    /// Events of history the database holds before the run (30 days of them).
    #[arg(long, default_value_t = 0)]
    history: usize,
    /// Events of the day past the retention period (`--scenario retention`).
    #[arg(long, default_value_t = 300_000)]
    day_events: usize,
    /// Ordering keys the ordered scenario spreads its ordered events over.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// The receiver's latencies (ms) of the ordered scenario's hot-key sub-runs.
    #[arg(long, value_delimiter = ',', default_value = "5,20")]
    hot_latencies_ms: Vec<u64>,
    /// Minutes a soak runs.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Rounds of ten 100-event batches per schema (`--scenario dedup`).
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Read a cold start in windows of this many seconds (a row each: the first
    /// seconds beside the rest); the whole step unless given. A retention run's
    /// windows: 5 s unless given.
    #[arg(long)]
    window_seconds: Option<u64>,
    /// Passed by `cargo bench` to every bench binary; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn scenarios(a: &Args) -> Vec<Scenario> {
    let e = a.events.unwrap_or(5000);
    let mut rate500 = Scenario::new("rate-500/s", e, 1, 1024);
    rate500.rate = 500;
    let mut throttled = Scenario::new("fanout-20, 5% answer 429", (e / 20).max(1), 20, 1024);
    throttled.throttled = 1;
    let mut hanging = Scenario::new("fanout-1 + 1 endpoint hanging", e, 1, 1024);
    hanging.hanging = true;
    let all = vec![
        Scenario::new("fanout-1", e, 1, 1024),
        Scenario::new("fanout-10", (e / 10).max(1), 10, 1024),
        Scenario::new("fanout-1, 16 KiB", (e / 2).max(1), 1, 16384),
        throttled,
        hanging,
        rate500,
    ];
    let custom = a.fanout.is_some() || a.rate.is_some() || a.payload_bytes.is_some();
    if a.scenario == "custom" || (a.scenario == "all" && custom) {
        let mut s = Scenario::new(
            "custom",
            e,
            a.fanout.unwrap_or(1),
            a.payload_bytes.unwrap_or(1024),
        );
        s.rate = a.rate.unwrap_or(0);
        return vec![s];
    }
    if a.scenario == "all" {
        return all;
    }
    let names: Vec<String> = all.iter().map(|s| format!("`{}`", s.name)).collect();
    let chosen: Vec<Scenario> = all.into_iter().filter(|s| s.name == a.scenario).collect();
    assert!(
        !chosen.is_empty(),
        "no scenario named `{}`; the scenarios are {}, `all` and `custom`",
        a.scenario,
        names.join(", ")
    );
    chosen
}

/// `--scenario capacity`, `cold`, `soak` and `ordered`: steady rates on one stack.
async fn steady(a: &Args) {
    let binary = a.hookrelay.as_ref().expect(
        "capacity, cold, soak and ordered runs need --hookrelay (cargo xtask bench passes it)",
    );
    let webhooks = match a.scenario.as_str() {
        "ordered" => format!(
            "two webhooks (one ordered, its keys over {}), fan-out 1 each",
            a.keys
        ),
        _ => "fan-out 1".to_owned(),
    };
    println!(
        "hookrelay bench ({}): router and sender as `{binary} serve` child processes; {webhooks}, 1 KiB payloads; RabbitMQ and Postgres on this machine",
        a.scenario
    );
    let report = capacity::run(&plan(a), std::path::Path::new(binary)).await;
    println!("\n{}", capacity::table(&report));
    if let Some(path) = &a.json {
        let body = serde_json::to_string_pretty(&report).expect("json");
        std::fs::write(path, body).expect("write --json file");
        println!("wrote {path}");
    }
    let bad: Vec<_> = report
        .steps
        .iter()
        .filter(|s| s.figures.duplicates > 0)
        .collect();
    assert!(bad.is_empty(), "duplicate deliveries: {bad:?}");
    let hot: Vec<_> = report
        .hot_keys
        .iter()
        .filter(|h| h.duplicates > 0)
        .collect();
    assert!(hot.is_empty(), "duplicate deliveries of a hot key: {hot:?}");
    let late = report
        .steps
        .iter()
        .flat_map(|s| &s.webhooks)
        .filter_map(|w| w.out_of_order)
        .chain(report.hot_keys.iter().map(|h| h.out_of_order))
        .map(|o| o.receipts)
        .sum::<usize>();
    assert_eq!(late, 0, "receipts out of their key's order");
}

fn plan(a: &Args) -> capacity::Plan {
    let capacity = capacity::Plan {
        rates: a.steps.clone(),
        step: std::time::Duration::from_secs(a.step_seconds),
        payload_bytes: 1024,
        history: a.history,
        keep_going: false,
        window: None,
        mix: capacity::Mix::One,
        hot_keys: Vec::new(),
    };
    match a.scenario.as_str() {
        "cold" => capacity::Plan {
            rates: vec![
                a.rate
                    .expect("a cold start needs --rate (80 % of the capacity)"),
            ],
            window: a.window_seconds.map(std::time::Duration::from_secs),
            ..capacity
        },
        "soak" => capacity::Plan {
            rates: vec![a.rate.expect("a soak needs --rate (half the capacity)")],
            step: std::time::Duration::from_secs(60 * a.minutes),
            keep_going: true,
            window: Some(std::time::Duration::from_secs(60)),
            ..capacity
        },
        "ordered" => capacity::Plan {
            mix: capacity::Mix::Ordered { keys: a.keys },
            hot_keys: a
                .hot_latencies_ms
                .iter()
                .map(|ms| std::time::Duration::from_millis(*ms))
                .collect(),
            ..capacity
        },
        _ => capacity,
    }
}

#[tokio::main]
async fn main() {
    let a = <Args as clap::Parser>::parse();
    if a.scenario == "dedup" {
        println!(
            "hookrelay bench (dedup): the router's event and delivery inserts before V23 and now, {} rounds of 10 batches of 100 events on two fresh databases",
            a.rounds
        );
        let costs = hookrelay_tests::dedup_cost::run(a.rounds).await;
        println!("\n{}", hookrelay_tests::dedup_cost::table(&costs));
        return;
    }
    if a.scenario == "console" {
        let history = if a.history == 0 { 100_000 } else { a.history };
        println!(
            "hookrelay bench (console): pages served in this process, {history} events stored"
        );
        let times = hookrelay_tests::console_bench::run(history).await;
        println!("\n{}", hookrelay_tests::console_bench::table(&times));
        return;
    }
    if a.scenario == "retention" {
        let binary = a
            .hookrelay
            .as_ref()
            .expect("a retention run needs --hookrelay (cargo xtask bench passes it)");
        let plan = hookrelay_tests::retention_bench::Plan {
            rate: a.rate.unwrap_or(1500),
            day_events: a.day_events,
            history: if a.history == 0 { 1_000_000 } else { a.history },
            window: std::time::Duration::from_secs(a.window_seconds.unwrap_or(5)),
        };
        println!(
            "hookrelay bench (retention): router and sender as `{binary} serve` child processes; fan-out 1, 1 KiB payloads; {}/s offered; RabbitMQ and Postgres on this machine",
            plan.rate
        );
        let report =
            hookrelay_tests::retention_bench::run(&plan, std::path::Path::new(binary)).await;
        println!("\n{}", hookrelay_tests::retention_bench::table(&report));
        let dup: usize = report
            .windows
            .iter()
            .map(|w| w.step.figures.duplicates)
            .sum();
        assert_eq!(dup, 0, "duplicate deliveries");
        return;
    }
    if ["capacity", "soak", "ordered", "cold"].contains(&a.scenario.as_str()) {
        return steady(&a).await;
    }
    let list = scenarios(&a);
    let roles = match &a.hookrelay {
        Some(binary) => bench::Roles::Processes(binary.into()),
        None => bench::Roles::InProcess,
    };
    match &roles {
        bench::Roles::Processes(b) => println!(
            "hookrelay bench: router and sender as `{} serve` child processes; receiver and publisher in the bench process; RabbitMQ and Postgres on this machine",
            b.display()
        ),
        bench::Roles::InProcess => println!(
            "hookrelay bench: router and sender in-process with the receiver; RabbitMQ and Postgres on this machine"
        ),
    }
    let mut ceilings = std::collections::HashMap::new();
    let mut reports: Vec<Report> = Vec::new();
    for s in &list {
        let ceiling = match ceilings.get(&s.payload_bytes) {
            Some(c) => *c,
            None => {
                let c = bench::broker_ceiling(20_000, s.payload_bytes).await;
                ceilings.insert(s.payload_bytes, c);
                c
            }
        };
        // A bad endpoint's cost: the healthy throughput against the same run without it.
        let baseline = match s.without_bad_endpoints() {
            Some(b) => {
                eprintln!("running {} ...", b.name);
                let report = bench::run(&b, ceiling, &roles).await;
                let rate = report.deliveries_per_sec;
                reports.push(report);
                Some(rate)
            }
            None => None,
        };
        eprintln!("running {} ...", s.name);
        let mut report = bench::run(s, ceiling, &roles).await;
        report.healthy_ratio = baseline.map(|b| report.deliveries_per_sec / b);
        reports.push(report);
    }
    println!("\n{}", bench::table(&reports));
    if let Some(path) = a.json {
        let body = if reports.len() == 1 {
            serde_json::to_string_pretty(&reports[0])
        } else {
            serde_json::to_string_pretty(&reports)
        };
        std::fs::write(&path, body.expect("json")).expect("write --json file");
        println!("wrote {path}");
    }
    let bad: Vec<_> = reports
        .iter()
        .filter(|r| r.lost > 0 || r.duplicates > 0)
        .collect();
    assert!(bad.is_empty(), "lost or duplicate deliveries: {bad:?}");
}
