//! `cargo xtask demo`: hookrelay end to end on this machine. Starts a demo receiver and
//! `hookrelay serve`, registers webhooks from both seeds, publishes the examples in
//! docs/examples, and prints each event's deliveries and attempts.
//!
//! It uses its own database (`hookrelay_demo`) and prefix (`hookrelay-demo`), so it
//! never touches a real installation's data.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::cargo::cargo;
use crate::services;

const TENANT: &str = "acme";
const DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/hookrelay_demo";
const PREFIX: &str = "hookrelay-demo";

/// The binary and where its data goes: `--database-url` and `--prefix` override the
/// demo's own, so a test can run the demo beside others.
struct Demo {
    bin: PathBuf,
    database_url: String,
    prefix: String,
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Child processes, stopped with SIGTERM (and waited for) when dropped.
struct Running(Vec<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for child in &mut self.0 {
            let _ = child.wait();
        }
    }
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    services::ensure()?;
    let root = workspace_root();
    step("building hookrelay");
    let ok = cargo()
        .args(["build", "--quiet", "-p", "hookrelay-cli"])
        .current_dir(&root)
        .status()?
        .success();
    anyhow::ensure!(ok, "cargo build failed");
    let demo = Demo {
        bin: crate::cargo::binary(&root, "debug", "hookrelay")?,
        database_url: flag(args, "--database-url").unwrap_or_else(|| DATABASE_URL.into()),
        prefix: flag(args, "--prefix").unwrap_or_else(|| PREFIX.into()),
    };

    step("migrating the demo database");
    hookrelay(&demo, &["migrate"])?;

    let receiver_port = free_port()?;
    let api_port = free_port()?;
    let receiver_addr = format!("127.0.0.1:{receiver_port}");
    let mut running = Running(Vec::new());
    step(&format!(
        "starting the demo receiver on {receiver_addr} and hookrelay serve (api on 127.0.0.1:{api_port})"
    ));
    running.0.push(spawn(
        &demo,
        &["receiver", "--addr", &receiver_addr],
        "receiver",
    )?);
    running.0.push(spawn(
        &demo,
        &[
            "serve",
            "--http-addr",
            &format!("127.0.0.1:{api_port}"),
            // The demo receiver is on this machine.
            "--allow-private-destinations",
            "true",
        ],
        "serve",
    )?);
    wait_http(&format!("127.0.0.1:{api_port}"), Duration::from_secs(30))?;

    step("loading the event catalog: a type per seed example, its schema from docs/catalog");
    load_catalog(&demo, &root)?;

    step("registering webhooks");
    register_webhooks(&demo, &receiver_addr)?;

    step("publishing the seed examples from docs/examples");
    let run_id = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let events = prepared_examples(&root, run_id, &receiver_addr)?;
    let file = std::env::temp_dir().join(format!("hookrelay-demo-{run_id}.json"));
    std::fs::write(&file, serde_json::to_vec_pretty(&events)?)?;
    hookrelay(&demo, &["publish", "--file", &file.to_string_lossy()])?;

    step(
        "waiting for every delivery to settle (the unreachable webhook retries, then dead-letters)",
    );
    for event in &events {
        let id = event["id"].as_str().unwrap_or_default();
        wait_settled(&demo, id, Duration::from_secs(60))?;
    }
    for event in &events {
        let id = event["id"].as_str().unwrap_or_default();
        println!(
            "\nevent {id} ({})",
            event["type"].as_str().unwrap_or_default()
        );
        hookrelay(
            &demo,
            &["deliveries", "list", "--tenant", TENANT, "--event", id],
        )?;
    }
    step("the queues: the unreachable webhook's delivery waits in the dead-letter queue");
    hookrelay(&demo, &["queues"])?;
    step("the dead-letter queue: what failed for good in this run, and why");
    let mut dlq = vec!["dlq", "list"];
    for event in &events {
        dlq.extend(["--id", event["id"].as_str().unwrap_or_default()]);
    }
    hookrelay(&demo, &dlq)?;
    step("stopping (the receiver's log above shows each POST it got)");
    drop(running);
    let _ = std::fs::remove_file(file);
    Ok(())
}

fn step(text: &str) {
    println!("\n==> {text}");
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn command(demo: &Demo, args: &[&str]) -> Command {
    let mut cmd = Command::new(&demo.bin);
    cmd.args(args)
        .env("HOOKRELAY_DATABASE_URL", &demo.database_url)
        .env("HOOKRELAY_AMQP_PREFIX", &demo.prefix)
        .env("HOOKRELAY_RETRY_DELAYS", "1s,2s")
        .env("HOOKRELAY_RETRY_AFTER_MAX", "5s")
        .env("HOOKRELAY_HTTP_TIMEOUT", "2s")
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,hookrelay_cli=info".into()),
        );
    cmd
}

fn hookrelay(demo: &Demo, args: &[&str]) -> anyhow::Result<()> {
    let status = command(demo, args)
        .status()
        .with_context(|| format!("running hookrelay {}", args.join(" ")))?;
    anyhow::ensure!(status.success(), "hookrelay {} failed", args.join(" "));
    Ok(())
}

fn spawn(demo: &Demo, args: &[&str], what: &str) -> anyhow::Result<Child> {
    command(demo, args)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting the {what}"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_http(addr: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("hookrelay serve did not listen on {addr} within {within:?}")
}

/// Webhooks from both seeds: (key, URL, options). The event webhook's URL takes its
/// host from the `Production` environment; nothing listens on port 9, so the last one
/// is retried on connection errors, then dead-lettered.
const WEBHOOKS: [(&str, &str, &[&str]); 3] = [
    (
        "dromo-managed",
        "http://{receiver}/dromo/managed",
        &[
            "--event-types",
            "import_completed,headless_import_needs_review,headless_import_failed",
            "--import-identifiers",
            "contacts",
        ],
    ),
    (
        "event_webhook",
        "http://{{RECEIVER}}/oneschema/events",
        &[
            "--secret",
            "demo-secret",
            "--event-types",
            "embed_initialized,columns_mapped",
        ],
    ),
    (
        "unreachable",
        "http://127.0.0.1:9/down",
        &["--event-types", "columns_mapped", "--retry-on", "connect"],
    ),
];

/// Registers [`WEBHOOKS`], deleting them first so the demo can run again.
fn register_webhooks(demo: &Demo, receiver: &str) -> anyhow::Result<()> {
    let variable = format!("RECEIVER={receiver}");
    hookrelay(
        demo,
        &[
            "environments",
            "set",
            "--tenant",
            TENANT,
            "--name",
            "Production",
            "--var",
            &variable,
        ],
    )?;
    for (key, url, options) in WEBHOOKS {
        let _ = command(demo, &["webhooks", "delete", "--tenant", TENANT, key])
            .stderr(Stdio::null())
            .status();
        let url = url.replace("{receiver}", receiver);
        let mut args = vec![
            "webhooks", "create", "--tenant", TENANT, "--key", key, "--url", &url,
        ];
        args.extend_from_slice(options);
        hookrelay(demo, &args)?;
    }
    Ok(())
}

/// The examples' event types into the catalog: each with its description and schema
/// from `docs/catalog/{type}.json` and, as its example, the payload of its richest
/// example in docs/examples (`hookrelay event-types create` checks that it satisfies
/// the schema).
fn load_catalog(demo: &Demo, root: &Path) -> anyhow::Result<()> {
    let mut examples: std::collections::BTreeMap<String, Value> = Default::default();
    for event in read_examples(root)? {
        let name = event["type"].as_str().unwrap_or_default().to_owned();
        let payload = event["payload"].clone();
        let richer = examples
            .get(&name)
            .is_none_or(|kept| kept.to_string().len() < payload.to_string().len());
        if richer {
            examples.insert(name, payload);
        }
    }
    let dir = std::env::temp_dir().join(format!("hookrelay-demo-catalog-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for (name, example) in &examples {
        let entry_path = root.join("docs/catalog").join(format!("{name}.json"));
        let entry: Value = serde_json::from_slice(&std::fs::read(&entry_path)?)
            .with_context(|| format!("parsing {}", entry_path.display()))?;
        let schema = dir.join(format!("{name}.schema.json"));
        let example_file = dir.join(format!("{name}.example.json"));
        std::fs::write(&schema, serde_json::to_vec_pretty(&entry["schema"])?)?;
        std::fs::write(&example_file, serde_json::to_vec_pretty(example)?)?;
        let _ = command(demo, &["event-types", "delete", name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let (schema, example_file) = (schema.to_string_lossy(), example_file.to_string_lossy());
        hookrelay(
            demo,
            &[
                "event-types",
                "create",
                name,
                "--description",
                entry["description"].as_str().unwrap_or_default(),
                "--schema-file",
                &schema,
                "--example-file",
                &example_file,
            ],
        )?;
    }
    let _ = std::fs::remove_dir_all(dir);
    hookrelay(demo, &["event-types", "list"])
}

/// Every example in docs/examples, by file name.
fn read_examples(root: &Path) -> anyhow::Result<Vec<Value>> {
    let dir = root.join("docs/examples");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            serde_json::from_slice(&std::fs::read(path)?)
                .with_context(|| format!("parsing {}", path.display()))
        })
        .collect()
}

/// The examples with ids unique to this run (hookrelay would rightly drop repeats),
/// and the basic webhook pointed at the demo receiver.
fn prepared_examples(root: &Path, run_id: u64, receiver: &str) -> anyhow::Result<Vec<Value>> {
    let mut events = read_examples(root)?;
    for event in &mut events {
        let id = format!("{}-demo{run_id}", event["id"].as_str().unwrap_or("event"));
        event["id"] = Value::String(id);
        if event.get("webhook_url").is_some() {
            event["webhook_url"] = Value::String(format!("http://{receiver}/dromo/basic"));
        }
    }
    Ok(events)
}

fn wait_settled(demo: &Demo, event_id: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let out = command(
            demo,
            &[
                "deliveries",
                "list",
                "--tenant",
                TENANT,
                "--event",
                event_id,
                "--json",
            ],
        )
        .stderr(Stdio::null())
        .output()?;
        let logs: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if let Some(list) = logs.as_array()
            && list.iter().all(|d| d["status"] != "pending")
            && (!list.is_empty() || Instant::now() + within / 2 > deadline)
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    bail!("deliveries of {event_id} did not settle within {within:?}")
}
