//! `cargo xtask chaos [--events N] [--senders N] [--no-broker] [--no-database]`
//! `cargo xtask chaos --cluster [--events N] [--senders N] [--cluster-ports AMQP,DIST]`
//! `cargo xtask chaos --hosts [--rate N] [--short]`
//!
//! The fault run (tests/src/chaos.rs) with the roles as release child processes:
//! SIGKILLs all along, and RabbitMQ and Postgres stopped and started mid-run where
//! this machine lets us control them. With `--cluster`: a 3-node RabbitMQ cluster
//! started for the run (AMQP on 5681-5683 by default), the roles given all three
//! nodes, and the node leading the most queues SIGKILLed mid-run, nothing else.
//! With `--hosts`: every part on a host of its own (network namespaces), and network
//! faults one after another under a steady load (tests/src/chaos_hosts.rs); `--short`
//! cuts every fault to a few seconds. Prints the figures, or fails on a broken promise.

use std::sync::Arc;
use std::time::Duration;

use hookrelay_tests::chaos::{self, Options};
use hookrelay_tests::chaos_hosts;
use hookrelay_tests::cluster::Cluster;

fn value(argv: &[String], name: &str) -> Option<String> {
    argv.iter()
        .position(|x| x == name)
        .and_then(|i| argv.get(i + 1))
        .cloned()
}

/// Whether a service-control command is here and may be run by us.
fn controllable(program: &str, probe: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(probe)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::main]
async fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let binary = value(&argv, "--hookrelay").expect("--hookrelay PATH (cargo xtask chaos sets it)");
    if argv.iter().any(|a| a == "--cluster") {
        cluster(&argv, &binary).await;
        return;
    }
    if argv.iter().any(|a| a == "--hosts") {
        hosts(&argv, &binary).await;
        return;
    }
    let broker = !argv.iter().any(|a| a == "--no-broker");
    let database = !argv.iter().any(|a| a == "--no-database");
    let restart_broker = broker && controllable("rabbitmqctl", &["-q", "status"]);
    let restart_database = database && controllable("pg_lsclusters", &[]);
    if broker && !restart_broker {
        eprintln!("chaos: rabbitmqctl is not usable here: RabbitMQ will not be restarted");
    }
    if database && !restart_database {
        eprintln!("chaos: pg_ctlcluster is not usable here: Postgres will not be restarted");
    }
    let options = Options {
        events: value(&argv, "--events")
            .and_then(|v| v.parse().ok())
            .unwrap_or(5000),
        senders: value(&argv, "--senders")
            .and_then(|v| v.parse().ok())
            .unwrap_or(2),
        restart_broker,
        restart_database,
        kill_every: (Duration::from_millis(300), Duration::from_millis(1200)),
        settle_within: Duration::from_secs(300),
        // 5000 events over about 10 s: kills keep landing while they flow.
        publish_pause: Duration::from_millis(100),
        ..Options::default()
    };
    eprintln!("chaos: {options:?}");
    let figures = chaos::run(std::path::Path::new(&binary), &options).await;
    println!(
        "{}",
        serde_json::to_string_pretty(&figures).unwrap_or_default()
    );
    println!(
        "chaos: {} events, {} router and {} sender kills, {} broker and {} database restarts in {:.1} s: \
         {} delivered, {} failed (all in the dead-letter queue), 0 lost, 0 fanned out twice, \
         {} duplicate POSTs (bound {})",
        figures.events,
        figures.router_kills,
        figures.sender_kills,
        figures.broker_restarts,
        figures.database_restarts,
        figures.seconds,
        figures.delivered,
        figures.failed,
        figures.receiver_duplicates,
        figures.duplicate_bound
    );
}

/// `--cluster`: the node kill on a 3-node cluster, without role kills or restarts, so
/// that the pause it prints is the node's alone.
async fn cluster(argv: &[String], binary: &str) {
    let (amqp_base, dist_base) = value(argv, "--cluster-ports")
        .and_then(|v| {
            let (a, d) = v.split_once(',')?;
            Some((a.parse().ok()?, d.parse().ok()?))
        })
        .unwrap_or((5680, 25680));
    eprintln!("chaos: starting a 3-node RabbitMQ cluster (AMQP on {amqp_base} + 1..3)");
    let started = std::time::Instant::now();
    let cluster = Arc::new(Cluster::start(amqp_base, dist_base));
    eprintln!(
        "chaos: cluster of {} up in {:.0} s, RabbitMQ {}",
        cluster.names(),
        started.elapsed().as_secs_f64(),
        cluster.version()
    );
    let options = Options {
        events: value(argv, "--events")
            .and_then(|v| v.parse().ok())
            .unwrap_or(5000),
        senders: value(argv, "--senders")
            .and_then(|v| v.parse().ok())
            .unwrap_or(2),
        kill_roles: false,
        settle_within: Duration::from_secs(180),
        // 5000 events over about 15 s: the kill lands a quarter of the way in.
        publish_pause: Duration::from_millis(150),
        cluster: Some(Arc::clone(&cluster)),
        ..Options::default()
    };
    eprintln!("chaos: {options:?}");
    let figures = chaos::run(std::path::Path::new(binary), &options).await;
    println!(
        "{}",
        serde_json::to_string_pretty(&figures).unwrap_or_default()
    );
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} ms"));
    println!(
        "chaos --cluster: {} events on 3 nodes, node {} (leader of {} of the {} quorum queues) \
         killed with SIGKILL mid-run, in {:.1} s: {} delivered, {} failed (all in the \
         dead-letter queue), 0 lost, 0 fanned out twice, {} duplicate POSTs (bound {}); \
         next delivery {} after the kill, longest pause {}; new leaders {:?}",
        figures.events,
        figures.node_killed,
        figures.queues_led_by_killed,
        figures.queues,
        figures.seconds,
        figures.delivered,
        figures.failed,
        figures.receiver_duplicates,
        figures.duplicate_bound,
        ms(figures.pause_after_kill_ms),
        ms(figures.longest_gap_after_kill_ms),
        figures.leaders_after_kill
    );
}

/// `--hosts`: the network faults, one after another, each part on a host of its own.
async fn hosts(argv: &[String], binary: &str) {
    if let Some(reason) = hookrelay_tests::hosts::unavailable() {
        eprintln!("chaos --hosts: skipped: {reason}");
        return;
    }
    let mut options = chaos_hosts::Options::default();
    if let Some(rate) = value(argv, "--rate").and_then(|v| v.parse().ok()) {
        options.rate = rate;
    }
    if argv.iter().any(|a| a == "--short") {
        options.steady = Duration::from_secs(5);
        options.partition = Duration::from_secs(25);
        options.database_cut = Duration::from_secs(8);
        options.degraded = Duration::from_secs(8);
        options.broker_cut = Duration::from_secs(25);
    }
    eprintln!("chaos --hosts: {options:?}");
    let figures = chaos_hosts::run(std::path::Path::new(binary), &options).await;
    println!(
        "{}",
        serde_json::to_string_pretty(&figures).unwrap_or_default()
    );
    println!(
        "chaos --hosts: RabbitMQ {} (3 nodes, {}), Postgres, 2 routers, 2 senders and the receiver on 9 hosts; {:.0} s",
        figures.rabbitmq, figures.partition_handling, figures.run.seconds
    );
    println!(
        "| phase | fault | fault time | published | delivered | failed | lost | fanned out twice | duplicate POSTs (bound) | resumed after the heal | longest pause | caught up after the heal | note |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for p in &figures.phases {
        println!(
            "| {} | {} | {:.0} s | {} | {} | {} | {} | {} | {} ({}) | {} | {:.1} s | {:.1} s | {} |",
            p.name,
            p.fault,
            p.fault_seconds,
            p.published,
            p.delivered,
            p.failed,
            p.lost,
            p.fanned_out_twice,
            p.duplicates,
            p.duplicate_bound,
            p.resumed(),
            p.longest_pause_ms / 1000.0,
            p.caught_up_seconds,
            p.note
        );
    }
    println!(
        "chaos --hosts: all {} events: {} delivered, {} failed ({} dead-letter messages), 0 lost, 0 fanned out twice, {} duplicate POSTs (bound {})",
        figures.run.events,
        figures.run.delivered,
        figures.run.failed,
        figures.run.dead_lettered,
        figures.run.receiver_duplicates,
        figures.run.duplicate_bound
    );
    if !figures.violations.is_empty() {
        for v in &figures.violations {
            eprintln!("chaos --hosts: broken: {v}");
        }
        std::process::exit(1);
    }
}
