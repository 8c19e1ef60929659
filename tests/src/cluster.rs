//! A real 3-node RabbitMQ cluster on this machine, for the fault run: three
//! `rabbitmq-server` nodes with their own node names, ports and data folders under
//! `/tmp/hookrelay-cluster-*`, joined into one cluster. It runs the scripts in
//! /usr/lib/rabbitmq/bin directly, as root (the /usr/sbin wrappers switch to a user
//! who cannot write the folder), all with one `HOME`, so that nodes and CLI share
//! one Erlang cookie. The machine's own broker on 5672 is not part of it. Every node is killed and the
//! folder removed when the `Cluster` is dropped, after a panic too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPTS: &str = "/usr/lib/rabbitmq/bin";

/// The queues as `name type leader members` lines, from the node itself: in
/// namespaces, `list_queues` has the other nodes answer the CLI's node directly, whose
/// name (`…@localhost.localdomain`) they cannot reach from their own namespaces.
const LIST_QUEUES: &str = "lists:foreach(fun(Q) -> {resource, _, _, N} = amqqueue:get_name(Q), \
    L = case amqqueue:get_pid(Q) of {_, Node} -> Node; P -> node(P) end, \
    io:format(\"~s ~s ~s ~b~n\", [N, amqqueue:get_type(Q), L, \
    length(maps:get(nodes, amqqueue:get_type_state(Q), []))]) end, rabbit_amqqueue:list()).";

/// [`LIST_QUEUES`]'s lines as the JSON `list_queues` gives.
fn from_lines(out: &str) -> String {
    let queues: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|line| {
            let [name, kind, leader, members] = line.split(' ').collect::<Vec<_>>()[..] else {
                return None;
            };
            let kind = if kind == "rabbit_quorum_queue" { "quorum" } else { kind };
            let members: Vec<&str> = vec![leader; members.parse().ok()?];
            Some(serde_json::json!({"name": name, "type": kind, "leader": leader, "members": members}))
        })
        .collect();
    serde_json::Value::from(queues).to_string()
}

/// How long the dead-letter worker waits for a confirm before it resends (below).
pub const DLX_RESEND_MS: u64 = 5000;

#[derive(Debug, Clone)]
pub struct Node {
    /// `hookrelay-cN-PID@localhost`: the process id keeps two runs from colliding
    /// in epmd; in a network namespace, `PREFIX@IP` (a long name).
    pub name: String,
    /// Where clients reach it: 127.0.0.1, or its namespace's address.
    pub host: String,
    pub amqp_port: u16,
    pub dist_port: u16,
    /// The network namespace it runs in (with an epmd of its own), if any.
    pub netns: Option<String>,
    dir: PathBuf,
}

impl Node {
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@{}:{}/%2f", self.host, self.amqp_port)
    }

    /// A RabbitMQ script run for this node: in its namespace, with long names there.
    fn script(&self, name: &str, home: &Path) -> Command {
        let program = format!("{SCRIPTS}/{name}");
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, &program]);
                c.env("RABBITMQ_USE_LONGNAME", "true")
                    // This machine's rabbitmq-env.conf binds distribution to 127.0.0.1.
                    .env("RABBITMQ_CONF_ENV_FILE", home.join("rabbitmq-env.conf"));
                c
            }
            None => Command::new(program),
        };
        command.env("HOME", home).current_dir(home);
        command
    }

    /// The node's Erlang VM, from the pid file `rabbitmq-server` writes.
    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
    }
}

#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    dir: PathBuf,
    killed: std::sync::Mutex<Vec<String>>,
}

/// A hookrelay queue as the cluster sees it.
#[derive(Debug, Clone)]
pub struct QueueLeader {
    pub queue: String,
    pub kind: String,
    pub leader: String,
    pub members: usize,
}

impl Cluster {
    /// The nodes' names, as printed: `a, b, c`.
    pub fn names(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Starts three nodes with AMQP on `amqp_base + 1..=3` and distribution on
    /// `dist_base + 1..=3`, and joins the second and third to the first. About 30 s.
    pub fn start(amqp_base: u16, dist_base: u16) -> Self {
        let id = std::process::id();
        let dir = PathBuf::from(format!("/tmp/hookrelay-cluster-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        let nodes: Vec<Node> = (1..=3)
            .map(|i| Node {
                name: format!("hookrelay-c{i}-{id}@localhost"),
                host: "127.0.0.1".into(),
                amqp_port: amqp_base + i,
                dist_port: dist_base + i,
                netns: None,
                dir: dir.join(format!("n{i}")),
            })
            .collect();
        for node in &nodes {
            for port in [node.amqp_port, node.dist_port] {
                assert!(
                    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
                    "port {port} is taken: choose other cluster ports"
                );
            }
        }
        Self::launch(nodes, dir, "")
    }

    /// Starts one node in each of the network namespaces `hosts` (`(namespace,
    /// address)`), named `PREFIX@ADDRESS` (long names), each with an epmd of its own
    /// and AMQP on 5672 at its address, with `config` (rabbitmq.conf lines) on every
    /// node, and joins them. Data under `dir`, removed when dropped.
    pub fn start_in(prefix: &str, hosts: &[(String, String)], dir: PathBuf, config: &str) -> Self {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cluster folder");
        std::fs::write(dir.join("rabbitmq-env.conf"), "").expect("rabbitmq-env.conf");
        let nodes: Vec<Node> = hosts
            .iter()
            .enumerate()
            .map(|(i, (ns, ip))| Node {
                name: format!("{prefix}@{ip}"),
                host: ip.clone(),
                amqp_port: 5672,
                dist_port: 25672,
                netns: Some(ns.clone()),
                dir: dir.join(format!("n{}", i + 1)),
            })
            .collect();
        for node in &nodes {
            if let Some(ns) = &node.netns {
                let epmd = Command::new("ip")
                    .args(["netns", "exec", ns, "epmd", "-daemon"])
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(epmd, "epmd did not start in {ns}");
            }
        }
        Self::launch(nodes, dir, config)
    }

    fn launch(nodes: Vec<Node>, dir: PathBuf, config: &str) -> Self {
        // From here on, whatever started is stopped again if starting fails.
        let cluster = Self {
            nodes,
            dir,
            killed: std::sync::Mutex::new(Vec::new()),
        };
        for node in &cluster.nodes {
            std::fs::create_dir_all(&node.dir).expect("cluster node folder");
            // No plugins: the management plugin would want port 15672 on every node.
            std::fs::write(node.dir.join("plugins"), "[].").expect("plugins file");
            std::fs::write(node.dir.join("rabbitmq.conf"), config).expect("rabbitmq.conf");
            // RabbitMQ 3.10's at-least-once dead-letter worker (the delay queues' way
            // back to the deliveries queue) can sit on messages after a leader change
            // until this timeout (3 minutes by default on 3.10.8) resends them.
            std::fs::write(
                node.dir.join("advanced.config"),
                format!(
                    "[{{rabbit, [{{dead_letter_worker_publisher_confirm_timeout, {DLX_RESEND_MS}}}]}}]."
                ),
            )
            .expect("advanced.config");
            // An Erlang crash dump lands in the working folder: not the repository.
            let started = node
                .script("rabbitmq-server", &cluster.dir)
                .arg("-detached")
                .env("RABBITMQ_NODENAME", &node.name)
                .env("RABBITMQ_NODE_PORT", node.amqp_port.to_string())
                .env("RABBITMQ_DIST_PORT", node.dist_port.to_string())
                .env("RABBITMQ_MNESIA_BASE", node.dir.join("mnesia"))
                .env("RABBITMQ_LOG_BASE", node.dir.join("log"))
                .env("RABBITMQ_ENABLED_PLUGINS_FILE", node.dir.join("plugins"))
                .env("RABBITMQ_CONFIG_FILE", node.dir.join("rabbitmq"))
                .env(
                    "RABBITMQ_ADVANCED_CONFIG_FILE",
                    node.dir.join("advanced.config"),
                )
                .env("RABBITMQ_PID_FILE", node.dir.join("pid"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(started, "rabbitmq-server {} did not start", node.name);
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        for node in &cluster.nodes {
            while std::net::TcpStream::connect((node.host.as_str(), node.amqp_port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "{} did not listen on {} within 2 minutes (logs in {})",
                    node.name,
                    node.amqp_port,
                    node.dir.join("log").display()
                );
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        let first = cluster.nodes[0].name.clone();
        for node in &cluster.nodes[1..] {
            cluster.ctl(&node.name, &["stop_app"]);
            cluster.ctl(&node.name, &["join_cluster", &first]);
            cluster.ctl(&node.name, &["start_app"]);
        }
        let running = cluster.ctl(&first, &["cluster_status", "--formatter", "json"]);
        let status: serde_json::Value =
            serde_json::from_str(&running).expect("cluster_status is JSON");
        let running = status["running_nodes"].as_array().map_or(0, Vec::len);
        assert_eq!(running, 3, "the cluster runs three nodes: {status}");
        cluster
    }

    /// The comma-separated list of the nodes' AMQP URLs: `HOOKRELAY_AMQP_URL`.
    pub fn amqp_url(&self) -> String {
        self.nodes
            .iter()
            .map(Node::amqp_url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The RabbitMQ version of the first node running.
    pub fn version(&self) -> String {
        let node = self.running().next().map(|n| n.name.clone());
        node.map(|n| self.ctl(&n, &["version"]).trim().to_owned())
            .unwrap_or_default()
    }

    fn running(&self) -> impl Iterator<Item = &Node> {
        let killed = self.killed.lock().map(|k| k.clone()).unwrap_or_default();
        self.nodes.iter().filter(move |n| !killed.contains(&n.name))
    }

    /// `rabbitmqctl -n NODE ARGS` (in the node's namespace), its output; panics when
    /// it fails.
    pub fn ctl(&self, node: &str, args: &[&str]) -> String {
        self.try_ctl(node, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `rabbitmqctl -n NODE ARGS` (in the node's namespace): its output, or what it
    /// said when it failed.
    pub fn try_ctl(&self, node: &str, args: &[&str]) -> Result<String, String> {
        let placed = self
            .nodes
            .iter()
            .find(|n| n.name == node)
            .expect("a node of this cluster");
        let out = placed
            .script("rabbitmqctl", &self.dir)
            .args(["-q", "-n", node])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("rabbitmqctl runs: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "rabbitmqctl -n {node} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The nodes that `node` sees running in its cluster (`cluster_status`).
    pub fn running_as_seen_by(&self, node: &str) -> Vec<String> {
        self.try_ctl(node, &["cluster_status", "--formatter", "json"])
            .ok()
            .and_then(|out| serde_json::from_str::<serde_json::Value>(&out).ok())
            .and_then(|status| {
                status["running_nodes"].as_array().map(|nodes| {
                    nodes
                        .iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    /// The queues whose names start with `prefix`, with their type, leader and
    /// member count, as a running node reports them.
    pub fn queues(&self, prefix: &str) -> Vec<QueueLeader> {
        let nodes: Vec<String> = self.running().map(|n| n.name.clone()).collect();
        assert!(!nodes.is_empty(), "a node runs");
        // A busy node can time out listing (`Some queue(s) are unresponsive`): ask
        // again, another node each time.
        let mut failures = Vec::new();
        let namespaced = self.nodes.iter().any(|n| n.netns.is_some());
        let listed = (0..6)
            .find_map(|attempt| {
                let node = &nodes[attempt % nodes.len()];
                let listed = if namespaced {
                    self.try_ctl(node, &["eval", LIST_QUEUES])
                        .map(|out| from_lines(&out))
                } else {
                    self.try_ctl(
                        node,
                        &[
                            "list_queues",
                            "name",
                            "type",
                            "leader",
                            "members",
                            "--formatter",
                            "json",
                        ],
                    )
                };
                listed.map_err(|e| failures.push(e)).ok()
            })
            .unwrap_or_else(|| panic!("listing the queues failed six times: {failures:?}"));
        let queues: Vec<serde_json::Value> =
            serde_json::from_str(&listed).expect("list_queues is JSON");
        let text = |q: &serde_json::Value, k: &str| q[k].as_str().unwrap_or_default().to_owned();
        queues
            .iter()
            .filter(|q| text(q, "name").starts_with(prefix))
            .map(|q| QueueLeader {
                queue: text(q, "name"),
                kind: text(q, "type"),
                leader: text(q, "leader"),
                members: q["members"].as_array().map_or(0, Vec::len),
            })
            .collect()
    }

    /// The node leading the most of `queues`, and how many it leads.
    pub fn busiest_leader(queues: &[QueueLeader]) -> Option<(String, usize)> {
        let mut led: HashMap<&str, usize> = HashMap::new();
        for q in queues {
            *led.entry(q.leader.as_str()).or_default() += 1;
        }
        led.into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
            .map(|(node, n)| (node.to_owned(), n))
    }

    /// SIGKILL to the node's Erlang VM: no goodbye to clients or peers.
    pub fn kill(&self, node: &str) {
        let n = self
            .nodes
            .iter()
            .find(|n| n.name == node)
            .expect("a node of this cluster");
        let pid = n.pid().expect("the node's pid file");
        kill_9(pid);
        if let Ok(mut killed) = self.killed.lock() {
            killed.push(node.to_owned());
        }
    }

    /// Copies each node's log folder to `to/rmqN-log` (the folder itself is removed
    /// with the cluster).
    pub fn keep_logs(&self, to: &Path) {
        for (i, node) in self.nodes.iter().enumerate() {
            let into = to.join(format!("rmq{}-log", i + 1));
            let _ = std::fs::create_dir_all(&into);
            let logs = std::fs::read_dir(node.dir.join("log"))
                .into_iter()
                .flatten();
            for entry in logs.flatten() {
                let _ = std::fs::copy(entry.path(), into.join(entry.file_name()));
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn kill_9(pid: u32) {
    let _ = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            match node.pid() {
                Some(pid) => kill_9(pid),
                // Started but no pid file yet: ask it to stop.
                None => {
                    let _ = node
                        .script("rabbitmqctl", &self.dir)
                        .args(["-q", "-n", &node.name, "stop"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(leader: &str) -> QueueLeader {
        QueueLeader {
            queue: "q".into(),
            kind: "quorum".into(),
            leader: leader.into(),
            members: 3,
        }
    }

    #[test]
    fn the_busiest_leader_leads_the_most_queues() {
        let queues = [q("b"), q("a"), q("b"), q("c")];
        assert_eq!(Cluster::busiest_leader(&queues), Some(("b".into(), 2)));
        assert_eq!(Cluster::busiest_leader(&[]), None);
    }
}
