//! Hosts of the run's own on this machine, for the `--hosts` fault run: one network
//! namespace per host (`ip netns`), each with a veth pair whose other end is on one
//! bridge, addresses in a `10.231.N.0/24` that no interface here uses yet, and this
//! process on the bridge's `.1`. Links between hosts can be cut (`iptables ... -j
//! DROP` inside both namespaces, a silent drop like a pulled cable) and healed, and a
//! host's outgoing packets delayed and dropped at random (an `NFQUEUE` this process
//! holds each packet in, plus iptables' `statistic` match: this machine's kernel has
//! no `netem` qdisc).
//!
//! Everything is named with the run's prefix `hrh<pid>` (interfaces ≤ 15
//! characters) and removed when the [`Net`] is dropped, after a panic too: the
//! processes left in its namespaces are killed, then the namespaces (with their
//! veths), the bridge and the run's folder go. [`Net::create`] first removes what
//! runs of a process that no longer exists left behind.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Every name this run creates starts with `hrh` and the process id.
const PREFIX: &str = "hrh";

#[derive(Debug, Clone)]
pub struct Host {
    /// Its role in the run: `rmq1`, `pg`, `router1`, `receiver`, ...
    pub name: String,
    pub netns: String,
    pub ip: Ipv4Addr,
}

/// A host's outgoing packets held and dropped: see [`Net::degrade`].
struct Degraded {
    host: usize,
    rules: Vec<Vec<String>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub struct Net {
    /// `hrh<pid>`.
    pub prefix: String,
    /// The bridge's address: this process's on the run's subnet.
    pub gateway: Ipv4Addr,
    pub hosts: Vec<Host>,
    bridge: String,
    dir: PathBuf,
    degraded: Vec<Degraded>,
}

/// Why this machine cannot make hosts of its own, if it cannot: the reason to print
/// when the run is skipped.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("cannot create network namespaces: not root".into());
    }
    for tool in ["ip", "iptables"] {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    let probe = format!("{PREFIX}{}-probe", std::process::id());
    let made = quiet(&["ip", "netns", "add", &probe]);
    let _ = quiet(&["ip", "netns", "del", &probe]);
    if !made {
        return Some("cannot create a network namespace (`ip netns add` failed)".into());
    }
    None
}

/// Runs a command, its output discarded; whether it succeeded.
fn quiet(argv: &[&str]) -> bool {
    Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a command that must succeed; panics with its error output.
fn must(argv: &[&str]) {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("`{}`: {e}", argv.join(" ")));
    assert!(
        out.status.success(),
        "`{}` failed: {}",
        argv.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

fn output(argv: &[&str]) -> String {
    Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The process id in a name `hrh<pid>...`, if it is one of ours.
fn owner(name: &str) -> Option<u32> {
    let digits: String = name
        .strip_prefix(PREFIX)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Kills every process in a namespace, then deletes it (its veths go with it).
fn remove_namespace(ns: &str) {
    for _ in 0..3 {
        let pids = output(&["ip", "netns", "pids", ns]);
        if pids.trim().is_empty() {
            break;
        }
        for pid in pids.split_whitespace() {
            let _ = quiet(&["kill", "-9", pid]);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = quiet(&["ip", "netns", "del", ns]);
}

/// Removes the namespaces, bridges and folders of earlier runs whose process is gone.
pub fn remove_leftovers() {
    for line in output(&["ip", "netns", "list"]).lines() {
        let ns = line.split_whitespace().next().unwrap_or_default();
        if owner(ns).is_some_and(|pid| !alive(pid)) {
            remove_namespace(ns);
        }
    }
    for line in output(&["ip", "-o", "link", "show"]).lines() {
        // `7: hrh123b: <...>` or `8: hrh123v1@if2: <...>`
        let name = line
            .split(':')
            .nth(1)
            .map(|n| n.trim().split('@').next().unwrap_or_default().to_owned())
            .unwrap_or_default();
        if owner(&name).is_some_and(|pid| !alive(pid)) {
            let _ = quiet(&["ip", "link", "del", &name]);
        }
    }
    if let Ok(dir) = std::fs::read_dir("/tmp") {
        for entry in dir.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if owner(&name).is_some_and(|pid| !alive(pid)) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// A `10.231.N.0/24` no address or route of this machine is in.
fn free_subnet() -> u8 {
    let used =
        output(&["ip", "-4", "-o", "addr", "show"]) + &output(&["ip", "-4", "route", "show"]);
    let start = (std::process::id() % 200) as u8 + 20;
    (0..=250u8)
        .map(|i| start.wrapping_add(i).max(1))
        .find(|n| !used.contains(&format!("10.231.{n}.")))
        .expect("a free 10.231.N.0/24")
}

impl Net {
    /// Makes one host per name: a namespace `hrh<pid>-NAME` with `eth0` at
    /// `10.231.N.(10 + i)`, joined by the bridge `hrh<pid>b` at `10.231.N.1`.
    pub fn create(names: &[&str]) -> Self {
        remove_leftovers();
        let prefix = format!("{PREFIX}{}", std::process::id());
        let subnet = free_subnet();
        let gateway = Ipv4Addr::new(10, 231, subnet, 1);
        let dir = PathBuf::from(format!("/tmp/{prefix}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the run's folder");
        let mut net = Self {
            bridge: format!("{prefix}b"),
            prefix,
            gateway,
            hosts: Vec::new(),
            dir,
            degraded: Vec::new(),
        };
        let bridge = net.bridge.clone();
        must(&["ip", "link", "add", &bridge, "type", "bridge"]);
        must(&[
            "ip",
            "addr",
            "add",
            &format!("{gateway}/24"),
            "dev",
            &bridge,
        ]);
        must(&["ip", "link", "set", &bridge, "up"]);
        for (i, name) in names.iter().enumerate() {
            let host = Host {
                name: (*name).to_owned(),
                netns: format!("{}-{name}", net.prefix),
                ip: Ipv4Addr::new(10, 231, subnet, 10 + i as u8),
            };
            let outside = format!("{}v{i}", net.prefix);
            let inside = format!("{}p{i}", net.prefix);
            let ns = host.netns.clone();
            // Pushed first: a failure below still removes the namespace.
            net.hosts.push(host.clone());
            must(&["ip", "netns", "add", &ns]);
            must(&[
                "ip", "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ]);
            must(&["ip", "link", "set", &inside, "netns", &ns]);
            must(&["ip", "-n", &ns, "link", "set", &inside, "name", "eth0"]);
            must(&["ip", "link", "set", &outside, "master", &bridge]);
            must(&["ip", "link", "set", &outside, "up"]);
            must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            must(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            let address = format!("{}/24", host.ip);
            must(&["ip", "-n", &ns, "addr", "add", &address, "dev", "eth0"]);
        }
        net
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// The run's folder (`/tmp/hrh<pid>`), removed with the net.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The subnet, `10.231.N.0/24`.
    pub fn subnet(&self) -> String {
        let [a, b, c, _] = self.gateway.octets();
        format!("{a}.{b}.{c}.0/24")
    }

    /// `ip netns exec NS program`: a command to run on `host`.
    pub fn command(&self, host: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.host(host).netns])
            .arg(program);
        c
    }

    fn iptables(&self, host: &str, action: &str, rule: &[String]) {
        let ns = self.host(host).netns.clone();
        let mut argv: Vec<&str> = vec!["ip", "netns", "exec", &ns, "iptables", "-w", action];
        argv.extend(rule.iter().map(String::as_str));
        must(&argv);
    }

    fn cut_rules(&self, to: &str) -> Vec<Vec<String>> {
        let peer = self.host(to).ip.to_string();
        vec![
            vec![
                "INPUT".into(),
                "-s".into(),
                peer.clone(),
                "-j".into(),
                "DROP".into(),
            ],
            vec![
                "OUTPUT".into(),
                "-d".into(),
                peer,
                "-j".into(),
                "DROP".into(),
            ],
        ]
    }

    /// Cuts the link between two hosts both ways: their packets to each other are
    /// dropped silently (no reset, no error), as on a broken network. Each keeps
    /// every other link.
    pub fn cut(&self, a: &str, b: &str) {
        for (from, to) in [(a, b), (b, a)] {
            for rule in self.cut_rules(to) {
                self.iptables(from, "-I", &rule);
            }
        }
    }

    /// Undoes [`Self::cut`].
    pub fn heal(&self, a: &str, b: &str) {
        for (from, to) in [(a, b), (b, a)] {
            for rule in self.cut_rules(to) {
                self.iptables(from, "-D", &rule);
            }
        }
    }

    /// Every packet `host` sends (on any of its links) is held `delay` and `loss`
    /// (0..1) of them are dropped, as `tc qdisc add dev eth0 root netem delay D
    /// loss L` would do where the kernel has netem: iptables' `statistic` match drops,
    /// and an `NFQUEUE` that a thread of this process, in the host's namespace, hands
    /// back after `delay`.
    pub fn degrade(&mut self, host: &str, delay: Duration, loss: f64) {
        let index = self
            .hosts
            .iter()
            .position(|h| h.name == host)
            .unwrap_or_else(|| panic!("no host {host}"));
        let queue = 1000 + index as u16;
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let netns = self.hosts[index].netns.clone();
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let queue_socket = enter_netns(&netns).and_then(|()| NfQueue::bind(queue));
                match queue_socket {
                    Ok(q) => {
                        let _ = ready_tx.send(Ok(()));
                        q.delay_until(delay, &stop);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
        };
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("NFQUEUE {queue} in {host}: {e}"),
            Err(_) => panic!("the delaying thread of {host} ended"),
        }
        let rules = vec![
            format!("OUTPUT -o eth0 -m statistic --mode random --probability {loss} -j DROP"),
            format!("OUTPUT -o eth0 -j NFQUEUE --queue-num {queue} --queue-bypass"),
        ]
        .into_iter()
        .map(|r| r.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .collect::<Vec<_>>();
        for rule in &rules {
            self.iptables(host, "-A", rule);
        }
        self.degraded.push(Degraded {
            host: index,
            rules,
            stop,
            thread: Some(thread),
        });
    }

    /// Undoes every [`Self::degrade`]: the rules go first, then the held packets are
    /// handed back.
    pub fn restore(&mut self) {
        for mut d in std::mem::take(&mut self.degraded) {
            let host = self.hosts[d.host].name.clone();
            for rule in &d.rules {
                self.iptables(&host, "-D", rule);
            }
            d.stop.store(true, Ordering::SeqCst);
            if let Some(t) = d.thread.take() {
                let _ = t.join();
            }
        }
    }

    /// Starts a Postgres server of its own on `host` (initdb into the run's folder,
    /// as the `postgres` user; trust for the run's subnet; listening on the host's
    /// address only) and returns `postgres://postgres@IP:5432`. It is stopped with
    /// the namespace.
    pub fn start_postgres(&self, host: &str, bin: &Path) -> String {
        let h = self.host(host).clone();
        let dir = self.dir.join("postgres");
        let data = dir.join("data");
        std::fs::create_dir_all(&dir).expect("postgres folder");
        must(&["chown", "postgres:postgres", &dir.to_string_lossy()]);
        let initdb = bin.join("initdb");
        must(&[
            "runuser",
            "-u",
            "postgres",
            "--",
            &initdb.to_string_lossy(),
            "-D",
            &data.to_string_lossy(),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        let hba = data.join("pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba).expect("pg_hba.conf");
        rules.push_str(&format!("host all all {} trust\n", self.subnet()));
        std::fs::write(&hba, rules).expect("pg_hba.conf");
        let options = format!(
            "-c listen_addresses={} -c port=5432 -c unix_socket_directories={} -c max_connections=300",
            h.ip,
            dir.display()
        );
        let pg_ctl = bin.join("pg_ctl");
        must(&[
            "ip",
            "netns",
            "exec",
            &h.netns,
            "runuser",
            "-u",
            "postgres",
            "--",
            &pg_ctl.to_string_lossy(),
            "-D",
            &data.to_string_lossy(),
            "-l",
            &dir.join("log").to_string_lossy(),
            "-o",
            &options,
            "-w",
            "start",
        ]);
        format!("postgres://postgres@{}:5432", h.ip)
    }

    /// A TCP socket listening on `host`'s address and `port`: made in its
    /// namespace, so that connections to it come over that host's link, while this
    /// process serves it.
    pub fn listen_in(&self, host: &str, port: u16) -> std::net::TcpListener {
        let h = self.host(host).clone();
        std::thread::spawn(move || {
            enter_netns(&h.netns)?;
            std::net::TcpListener::bind((h.ip, port)).map_err(|e| e.to_string())
        })
        .join()
        .unwrap_or_else(|_| Err("the thread panicked".into()))
        .unwrap_or_else(|e| panic!("listening in {host}: {e}"))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for d in &mut self.degraded {
            d.stop.store(true, Ordering::SeqCst);
            if let Some(t) = d.thread.take() {
                let _ = t.join();
            }
        }
        for host in &self.hosts {
            remove_namespace(&host.netns);
        }
        // A namespace that a closing socket still holds outlives its deletion for a
        // while, and its veth with it: remove this side, which removes the pair.
        for i in 0..self.hosts.len() {
            let _ = quiet(&["ip", "link", "del", &format!("{}v{i}", self.prefix)]);
        }
        let _ = quiet(&["ip", "link", "del", &self.bridge]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Moves the calling thread into the network namespace `ns`: sockets it makes from
/// then on belong there (and stay there whichever thread uses them).
fn enter_netns(ns: &str) -> Result<(), String> {
    let file =
        std::fs::File::open(format!("/var/run/netns/{ns}")).map_err(|e| format!("{ns}: {e}"))?;
    // SAFETY: a valid namespace file descriptor, and CLONE_NEWNET affects only this
    // thread's network namespace.
    let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(format!("setns {ns}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Just enough of the netfilter queue protocol (netlink, `nfnetlink_queue`) to hold
/// packets and hand them back: bind a queue, copy only the packets' metadata, and
/// answer `NF_ACCEPT` for each packet id when its time comes.
struct NfQueue {
    fd: std::os::fd::OwnedFd,
    queue: u16,
    seq: u32,
}

const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_META: u8 = 1;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NF_ACCEPT: u32 = 1;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

impl NfQueue {
    fn bind(queue: u16) -> Result<Self, String> {
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(format!(
                "netlink socket: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: `raw` is a socket we own from here on.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        // SAFETY: a zeroed sockaddr_nl is valid; family set below.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: `addr` is a sockaddr_nl of the size given.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if r != 0 {
            return Err(format!("netlink bind: {}", std::io::Error::last_os_error()));
        }
        // Wake up every 5 ms to hand back what is due.
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 5000,
        };
        // SAFETY: SO_RCVTIMEO takes a timeval of this size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
        }
        let mut q = Self { fd, queue, seq: 0 };
        // struct nfqnl_msg_config_cmd { u8 command; u8 pad; be16 pf }
        q.send(
            NFQNL_MSG_CONFIG,
            &[(
                NFQA_CFG_CMD,
                &[NFQNL_CFG_CMD_BIND, 0, 0, libc::AF_INET as u8],
            )],
        )?;
        // struct nfqnl_msg_config_params { be32 copy_range; u8 copy_mode } (packed)
        q.send(
            NFQNL_MSG_CONFIG,
            &[(NFQA_CFG_PARAMS, &[0, 0, 0, 0, NFQNL_COPY_META])],
        )?;
        Ok(q)
    }

    /// One netlink message of the queue subsystem, with these attributes.
    fn send(&mut self, kind: u16, attrs: &[(u16, &[u8])]) -> Result<(), String> {
        self.seq += 1;
        let mut body = Vec::new();
        // struct nfgenmsg { u8 family; u8 version; be16 res_id }
        body.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
        body.extend_from_slice(&self.queue.to_be_bytes());
        for (kind, value) in attrs {
            let len = 4 + value.len();
            body.extend_from_slice(&(len as u16).to_ne_bytes());
            body.extend_from_slice(&kind.to_ne_bytes());
            body.extend_from_slice(value);
            body.resize(align4(body.len()), 0);
        }
        let mut msg = Vec::with_capacity(16 + body.len());
        msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | kind).to_ne_bytes());
        msg.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&body);
        // SAFETY: sending our own buffer of the given length.
        let sent = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if sent < 0 {
            return Err(format!("netlink send: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// The packet ids in what one `recv` brought (several messages may come at once).
    fn receive(&self, buf: &mut [u8]) -> Vec<u32> {
        // SAFETY: receiving into our own buffer of its length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            return Vec::new();
        }
        let data = &buf[..n as usize];
        let mut ids = Vec::new();
        let mut at = 0;
        while at + 16 <= data.len() {
            let len = u32::from_ne_bytes(data[at..at + 4].try_into().unwrap_or_default()) as usize;
            let kind = u16::from_ne_bytes(data[at + 4..at + 6].try_into().unwrap_or_default());
            if len < 16 || at + len > data.len() {
                break;
            }
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET {
                // Attributes after the 16-byte header and the 4-byte nfgenmsg.
                let mut a = at + 20;
                while a + 4 <= at + len {
                    let alen =
                        u16::from_ne_bytes(data[a..a + 2].try_into().unwrap_or_default()) as usize;
                    let akind =
                        u16::from_ne_bytes(data[a + 2..a + 4].try_into().unwrap_or_default())
                            & 0x3fff;
                    if alen < 4 {
                        break;
                    }
                    if akind == NFQA_PACKET_HDR && alen >= 8 {
                        ids.push(u32::from_be_bytes(
                            data[a + 4..a + 8].try_into().unwrap_or_default(),
                        ));
                    }
                    a += align4(alen);
                }
            }
            at += align4(len);
        }
        ids
    }

    fn accept(&mut self, id: u32) {
        let mut verdict = Vec::with_capacity(8);
        verdict.extend_from_slice(&NF_ACCEPT.to_be_bytes());
        verdict.extend_from_slice(&id.to_be_bytes());
        let _ = self.send(NFQNL_MSG_VERDICT, &[(NFQA_VERDICT_HDR, &verdict)]);
    }

    /// Hands each packet back `delay` after it came, until `stop`; then hands back
    /// whatever it still holds.
    fn delay_until(mut self, delay: Duration, stop: &AtomicBool) {
        let mut held: VecDeque<(Instant, u32)> = VecDeque::new();
        let mut buf = vec![0u8; 1 << 16];
        while !stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            held.extend(self.receive(&mut buf).into_iter().map(|id| (now, id)));
            while held.front().is_some_and(|(at, _)| at.elapsed() >= delay) {
                if let Some((_, id)) = held.pop_front() {
                    self.accept(id);
                }
            }
        }
        for (_, id) in held {
            self.accept(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_the_run_carry_the_process_id() {
        assert_eq!(owner("hrh1234-rmq1"), Some(1234));
        assert_eq!(owner("hrh1234b"), Some(1234));
        assert_eq!(owner("hrh-x"), None);
        assert_eq!(owner("eth0"), None);
    }
}
