//! `cargo xtask chaos [--events N] [--senders N] [--no-broker] [--no-database]`
//!
//! The fault run (tests/src/chaos.rs) with the roles as release child processes:
//! SIGKILLs all along, and RabbitMQ and Postgres stopped and started mid-run where
//! this machine lets us control them. Prints the figures, or fails on a broken
//! promise.

use std::time::Duration;

use hookrelay_tests::chaos::{self, Options};

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
