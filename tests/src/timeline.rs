//! Where a pause in first deliveries sits, for the `--hosts` run's partition: when
//! the run's publisher had its batches confirmed, when the router stored deliveries,
//! and when the receiver saw first POSTs, each as its longest gap from the fault on;
//! and, with `HOOKRELAY_HOSTS_LOGS`, what the nodes said meanwhile (queue leaders,
//! consumers, client connections), sampled into `partition.log`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::Cluster;

/// What the run's publisher saw: each batch's confirm, each failed try.
#[derive(Debug, Default)]
pub struct PublishLog {
    /// When a batch was confirmed, and how many events it held.
    pub confirmed: Vec<(Instant, usize)>,
    /// When a try failed (the batch is tried again), and why.
    pub failures: Vec<(Instant, String)>,
}

/// The longest time between two of `times` (seconds from the fault, sorted), counted
/// from 0 to `until`: `(length, from, to)`.
pub fn longest_gap(times: &[f64], until: f64) -> (f64, f64, f64) {
    let mut best = (0.0, 0.0, 0.0);
    let mut previous = 0.0;
    for &t in times.iter().filter(|t| **t >= 0.0 && **t <= until) {
        if t - previous > best.0 {
            best = (t - previous, previous, t);
        }
        previous = t;
    }
    if until - previous > best.0 {
        best = (until - previous, previous, until);
    }
    best
}

/// One stage's longest gap, as printed: `22.1 s (+12.0 to +34.1 s)`.
pub fn gap_text(times: &[f64], until: f64) -> String {
    let (gap, from, to) = longest_gap(times, until);
    format!("{gap:.1} s (+{from:.1} to +{to:.1} s)")
}

/// Counts per second of each stage, as table lines for `partition.log`.
pub fn per_second(stages: &[(&str, &[f64])], until: f64) -> String {
    let seconds = until.ceil().max(0.0) as usize;
    let mut out = format!(
        "| s from the fault | {} |\n|---|{}\n",
        stages.iter().map(|s| s.0).collect::<Vec<_>>().join(" | "),
        "---|".repeat(stages.len())
    );
    for s in 0..seconds {
        let counts: Vec<String> = stages
            .iter()
            .map(|(_, times)| {
                times
                    .iter()
                    .filter(|t| **t >= s as f64 && **t < (s + 1) as f64)
                    .count()
                    .to_string()
            })
            .collect();
        out.push_str(&format!("| {s} | {} |\n", counts.join(" | ")));
    }
    out
}

/// Each quorum queue as the node sees it: the leader in the metadata store, the
/// leader its own Ra member knows, consumers and ready messages in that member's
/// state (1 s timeouts: a member between leaders may not answer).
const QUEUES: &str = "lists:foreach(fun(Q) -> {resource, _, _, N} = amqqueue:get_name(Q), \
    {Ra, Meta} = amqqueue:get_pid(Q), \
    L = case catch ra:members({Ra, node()}, 1000) of {ok, _, {_, LN}} -> LN; E1 -> E1 end, \
    C = case catch ra:local_query({Ra, node()}, fun rabbit_fifo:query_consumer_count/1, 1000) of {ok, {_, CN}, _} -> CN; E2 -> E2 end, \
    R = case catch ra:local_query({Ra, node()}, fun rabbit_fifo:query_messages_ready/1, 1000) of {ok, {_, RN}, _} -> RN; E3 -> E3 end, \
    io:format(\"queue ~s metadata_leader=~s ra_leader=~p consumers=~p ready=~p~n\", [N, Meta, L, C, R]) end, \
    rabbit_amqqueue:list()).";

/// The node's client connections: the name the client gave it, its peer address.
const CONNECTIONS: &str = "case catch rabbit:is_running() of true -> \
    lists:foreach(fun(P) -> case catch rabbit_reader:info(P, [client_properties, peer_host]) of \
    [{client_properties, C}, {peer_host, H}] -> N = case lists:keyfind(<<\"connection_name\">>, 1, C) of \
    {_, _, Name} -> Name; false -> <<\"?\">> end, io:format(\"connection ~s from ~p~n\", [N, H]); \
    E -> io:format(\"connection ~p~n\", [E]) end end, \
    rabbit_networking:connections_local()); R -> io:format(\"not running (~p)~n\", [R]) end.";

/// Samples the nodes until dropped, into `partition.log` in the logs folder.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling if `HOOKRELAY_HOSTS_LOGS` names a folder: `majority` is asked
    /// for the queues, every node for its connections, over and over (each
    /// `rabbitmqctl` takes about a second), each answer stamped with its time from
    /// `fault_at`.
    pub fn start(cluster: Arc<Cluster>, majority: String, fault_at: Instant) -> Option<Self> {
        let dir = PathBuf::from(std::env::var_os("HOOKRELAY_HOSTS_LOGS")?);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("partition.log"))
            .ok()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let nodes: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
            while !stopping.load(Ordering::SeqCst) {
                let mut asks = vec![(majority.clone(), QUEUES)];
                asks.extend(nodes.iter().map(|n| (n.clone(), CONNECTIONS)));
                for (node, eval) in asks {
                    let asked = fault_at.elapsed().as_secs_f64();
                    let answer = cluster
                        .try_ctl(&node, &["eval", eval])
                        .unwrap_or_else(|e| format!("failed: {e}"));
                    let _ = writeln!(
                        file,
                        "+{asked:.1} s to +{:.1} s ({}) {node}:\n{}",
                        fault_at.elapsed().as_secs_f64(),
                        utc_now(),
                        answer.trim_end()
                    );
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Some(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Appends `text` to `name` in the logs folder, if `HOOKRELAY_HOSTS_LOGS` names one.
pub fn keep(name: &str, text: &str) {
    if let Some(dir) = std::env::var_os("HOOKRELAY_HOSTS_LOGS") {
        let path = PathBuf::from(dir).join(name);
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(text.as_bytes());
        }
    }
}

/// Now, as `HH:MM:SS.mmm` UTC.
pub fn utc_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_counts_from_the_fault_to_the_end() {
        assert_eq!(longest_gap(&[1.0, 2.0, 10.0, 11.0], 12.0), (8.0, 2.0, 10.0));
        assert_eq!(longest_gap(&[], 5.0), (5.0, 0.0, 5.0));
        assert_eq!(longest_gap(&[1.0], 9.0), (8.0, 1.0, 9.0));
        // Before the fault or after the end: not counted.
        assert_eq!(longest_gap(&[-3.0, 4.0, 20.0], 6.0), (4.0, 0.0, 4.0));
    }

    #[test]
    fn per_second_counts_each_stage() {
        let table = per_second(&[("a", &[0.1, 0.2, 1.5]), ("b", &[2.5])], 3.0);
        assert!(table.contains("| 0 | 2 | 0 |"), "{table}");
        assert!(table.contains("| 1 | 1 | 0 |"), "{table}");
        assert!(table.contains("| 2 | 0 | 1 |"), "{table}");
    }
}
