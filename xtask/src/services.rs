//! Makes sure RabbitMQ and Postgres answer on 127.0.0.1: use them if they are up,
//! else start local installations, else docker compose, else say what to install.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

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

/// A program the tests run besides the services, and the Debian package that has it.
struct Tool {
    name: &'static str,
    /// What the tests use it for, in the messages.
    purpose: &'static str,
    package: &'static str,
    /// Where the tests look for it: `(variable naming it, else this path)`; `None`: PATH.
    at: Option<(&'static str, &'static str)>,
}

const TOOLS: [Tool; 3] = [
    Tool {
        name: "promtool",
        purpose: "checks deploy/prometheus/alerts.yaml",
        package: "prometheus",
        at: None,
    },
    Tool {
        name: "chromium",
        purpose: "the console tests' headless browser",
        package: "chromium",
        at: Some(("HOOKRELAY_CHROMIUM", "/usr/bin/chromium")),
    },
    Tool {
        name: "chromedriver",
        purpose: "drives chromium for the console tests",
        package: "chromium-driver",
        at: Some(("HOOKRELAY_CHROMEDRIVER", "/usr/bin/chromedriver")),
    },
];

/// The tools the tests run besides the services: installed with apt-get when missing
/// and we are root, else stop before the run, saying what to install, rather than fail
/// one test late in it.
pub fn ensure_tools() -> anyhow::Result<()> {
    for (var, _) in TOOLS.iter().filter_map(|t| t.at) {
        if let Some(path) = std::env::var_os(var).filter(|p| !Path::new(p).is_file()) {
            bail!("{var} is set to {}, which is not a file", path.display());
        }
    }
    let missing: Vec<&Tool> = TOOLS.iter().filter(|t| !installed(t)).collect();
    if !missing.is_empty() {
        let mut packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
        packages.dedup();
        let command = format!(
            "apt-get update && apt-get install -y {}",
            packages.join(" ")
        );
        let what = missing
            .iter()
            .map(|t| format!("{} ({})", t.name, t.purpose))
            .collect::<Vec<_>>()
            .join(", ");
        let verb = if missing.len() == 1 { "is" } else { "are" };
        if !(is_root() && on_path("apt-get")) {
            bail!("{what} {verb} not installed: {command}");
        }
        eprintln!("xtask: {what} {verb} not installed; installing with apt-get");
        apt_get(&["update"])?;
        let mut install = vec!["install", "-y"];
        install.extend(&packages);
        apt_get(&install)?;
        if let Some(t) = missing.iter().find(|t| !installed(t)) {
            bail!(
                "{} ({}) is still not installed after {command}",
                t.name,
                t.purpose
            );
        }
    }
    let names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
    eprintln!("xtask: {} are installed", names.join(", "));
    Ok(())
}

/// iptables, for the `--hosts` fault run's cut links and lossy links (this machine
/// kind's kernel has no netem): installed with apt-get when missing and we are root.
/// Without it (or root) the run skips itself, saying why.
pub fn ensure_iptables() -> anyhow::Result<()> {
    if on_path("iptables") || !(is_root() && on_path("apt-get")) {
        return Ok(());
    }
    eprintln!(
        "xtask: iptables (the --hosts fault run's cut and lossy links) is not installed; installing with apt-get"
    );
    apt_get(&["update"])?;
    apt_get(&["install", "-y", "iptables"])
}

/// Why the `--hosts` fault run cannot make hosts here, if it cannot: it needs root
/// (network namespaces), `ip` and `iptables`. The run itself also tries to make a
/// namespace and says so if that fails.
pub fn namespaces_unavailable() -> Option<String> {
    if !is_root() {
        return Some("network namespaces need root, and this is not root".into());
    }
    ["ip", "iptables"]
        .into_iter()
        .find(|tool| !on_path(tool))
        .map(|tool| format!("`{tool}` is not installed (apt-get install iproute2 iptables)"))
}

fn installed(tool: &Tool) -> bool {
    match tool.at {
        Some((var, default)) => std::env::var_os(var)
            .map_or_else(|| Path::new(default).is_file(), |p| Path::new(&p).is_file()),
        None => on_path(tool.name),
    }
}

/// Runs `apt-get <args>` without questions, waiting for another apt's lock.
fn apt_get(args: &[&str]) -> anyhow::Result<()> {
    let mut cmd = Command::new("apt-get");
    cmd.args(["-o", "DPkg::Lock::Timeout=600"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive");
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().context("running apt-get")?;
    if !status.success() {
        bail!("apt-get {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Whether this process runs as root: the effective uid in /proc/self/status, else `id -u`.
fn is_root() -> bool {
    let from_proc = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            Some(line.split_whitespace().nth(2)? == "0")
        });
    from_proc.unwrap_or_else(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.trim_ascii() == b"0")
    })
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
