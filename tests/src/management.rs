//! A RabbitMQ node of its own with the management plugin, for the test of the
//! management API client. The machine's broker on 5672 has no management plugin,
//! and enabling one there would change a broker that other runs share (and want
//! port 15672), so this starts a separate node (as `cluster` does: the scripts in
//! /usr/lib/rabbitmq/bin, its own name, ports and folder under `/tmp`), and kills it
//! and removes the folder when dropped, after a panic too.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPTS: &str = "/usr/lib/rabbitmq/bin";

pub struct ManagedBroker {
    pub amqp_port: u16,
    pub management_port: u16,
    dir: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl ManagedBroker {
    /// Starts the node and waits until AMQP and the management API answer (about
    /// 15 s; two minutes at most).
    pub fn start() -> Self {
        let id = std::process::id();
        let dir = PathBuf::from(format!("/tmp/hookrelay-mgmt-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("node folder");
        let broker = Self {
            amqp_port: free_port(),
            management_port: free_port(),
            dir,
        };
        std::fs::write(broker.dir.join("plugins"), "[rabbitmq_management].").expect("plugins");
        std::fs::write(
            broker.dir.join("rabbitmq.conf"),
            format!(
                "management.tcp.port = {}\nmanagement.tcp.ip = 127.0.0.1\n\
                 collect_statistics_interval = 500\n",
                broker.management_port
            ),
        )
        .expect("rabbitmq.conf");
        let started = Command::new(format!("{SCRIPTS}/rabbitmq-server"))
            .arg("-detached")
            .current_dir(&broker.dir)
            .env("HOME", &broker.dir)
            .env(
                "RABBITMQ_NODENAME",
                format!("hookrelay-mgmt-{id}@localhost"),
            )
            .env("RABBITMQ_NODE_PORT", broker.amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_MNESIA_BASE", broker.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", broker.dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", broker.dir.join("plugins"))
            .env("RABBITMQ_CONFIG_FILE", broker.dir.join("rabbitmq"))
            .env("RABBITMQ_PID_FILE", broker.dir.join("pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(started, "rabbitmq-server did not start");
        let deadline = Instant::now() + Duration::from_secs(120);
        for port in [broker.amqp_port, broker.management_port] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "the management node did not listen on {port} within 2 minutes (logs in {})",
                    broker.dir.join("log").display()
                );
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        broker
    }

    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.amqp_port)
    }

    pub fn management_url(&self) -> String {
        format!("http://guest:guest@127.0.0.1:{}", self.management_port)
    }
}

impl Drop for ManagedBroker {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.dir.join("pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        if let Some(pid) = pid {
            let _ = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
