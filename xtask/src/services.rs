//! Makes sure RabbitMQ and Postgres answer on 127.0.0.1: use them if they are up,
//! else start local installations, else docker compose, else say what to install.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;

struct Service {
    name: &'static str,
    port: u16,
    /// Command that starts a local installation, if it is installed.
    start: fn() -> Option<Command>,
    compose_service: &'static str,
    install_hint: &'static str,
}

const SERVICES: [Service; 2] = [
    Service {
        name: "PostgreSQL",
        port: 5432,
        start: start_postgres,
        compose_service: "postgres",
        install_hint: "apt-get install postgresql (trust auth for user postgres on 127.0.0.1), or run Docker",
    },
    Service {
        name: "RabbitMQ",
        port: 5672,
        start: start_rabbitmq,
        compose_service: "rabbitmq",
        install_hint: "apt-get install rabbitmq-server (user guest/guest), or run Docker",
    },
];

pub fn ensure() -> anyhow::Result<()> {
    for service in &SERVICES {
        ensure_one(service)?;
    }
    Ok(())
}

/// The tools the tests run besides the services: stop before the run, saying what to
/// install, rather than fail one test late in it.
pub fn ensure_tools() -> anyhow::Result<()> {
    if !on_path("promtool") {
        bail!(
            "promtool (checks deploy/prometheus/alerts.yaml) is not installed: \
             apt-get update && apt-get install -y prometheus"
        );
    }
    eprintln!("xtask: promtool is installed");
    Ok(())
}

fn up(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

fn wait_up(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if up(port) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

fn ensure_one(s: &Service) -> anyhow::Result<()> {
    if up(s.port) {
        eprintln!("xtask: {} is up on 127.0.0.1:{}", s.name, s.port);
        return Ok(());
    }
    if let Some(mut cmd) = (s.start)() {
        eprintln!("xtask: starting the local {} ({cmd:?})", s.name);
        let started = cmd.status().is_ok_and(|st| st.success());
        if started && wait_up(s.port, Duration::from_secs(90)) {
            return Ok(());
        }
        eprintln!("xtask: the local {} did not come up", s.name);
    }
    if docker_available() {
        eprintln!("xtask: starting {} with docker compose", s.name);
        let ok = Command::new("docker")
            .args(["compose", "up", "-d", "--wait", s.compose_service])
            .status()
            .is_ok_and(|st| st.success());
        if ok && wait_up(s.port, Duration::from_secs(90)) {
            return Ok(());
        }
    }
    bail!(
        "{} is not reachable on 127.0.0.1:{} and could not be started. Install it: {}",
        s.name,
        s.port,
        s.install_hint
    )
}

fn docker_available() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn start_postgres() -> Option<Command> {
    if !on_path("pg_ctlcluster") {
        return None;
    }
    let version = std::fs::read_dir(Path::new("/etc/postgresql"))
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()?;
    let mut cmd = Command::new("pg_ctlcluster");
    cmd.args(["--skip-systemctl-redirect", &version, "main", "start"]);
    Some(cmd)
}

fn start_rabbitmq() -> Option<Command> {
    if !on_path("rabbitmq-server") {
        return None;
    }
    let mut cmd = Command::new("rabbitmq-server");
    cmd.arg("-detached");
    Some(cmd)
}
