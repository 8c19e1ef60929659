//! The `hookrelay` binary as a user runs it, against the real Postgres and RabbitMQ.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

struct Env {
    database: String,
    prefix: String,
}

impl Env {
    fn new() -> Self {
        Self {
            database: format!("t_{}", uuid::Uuid::new_v4().simple()),
            prefix: format!("t.{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// `hookrelay ARGS` on this test's database and prefix.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hookrelay"));
        command
            .args(args)
            .env("HOOKRELAY_DATABASE_URL", self.url())
            .env("HOOKRELAY_AMQP_PREFIX", &self.prefix);
        command
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hookrelay runs");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    fn spawn(&self, args: &[&str]) -> Running {
        Running(
            self.command(args)
                // The test receivers listen on 127.0.0.1.
                .env("HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS", "true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("hookrelay starts"),
        )
    }

    /// `hookrelay ARGS` against a broker that never answers (nothing listens on
    /// port 9).
    fn spawn_without_broker(&self, args: &[&str]) -> Running {
        Running(
            self.command(args)
                .env("HOOKRELAY_AMQP_URL", "amqp://guest:guest@127.0.0.1:9/%2f")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("hookrelay starts"),
        )
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.database)
    }

    /// One SQL count in this test's database.
    fn count(&self, sql: &str) -> i64 {
        count_at(&self.url(), sql)
    }

    fn wait_count(&self, sql: &str, at_least: i64, within: Duration) -> i64 {
        let deadline = std::time::Instant::now() + within;
        loop {
            let n = self.count(sql);
            if n >= at_least {
                return n;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {sql} >= {at_least} (now {n})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, None);
        assert!(
            out.status.success(),
            "hookrelay {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// One SQL count, on a runtime of its own (these tests are synchronous).
fn count_at(url: &str, sql: &str) -> i64 {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0)
    })
}

/// A `hookrelay` child process, killed if a test ends (or panics) before it stops.
struct Running(std::process::Child);

impl std::ops::Deref for Running {
    type Target = std::process::Child;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let name = self.database.clone();
        let prefix = self.prefix.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let topology = hookrelay_model::Topology::new(
                    &prefix,
                    &[Duration::from_secs(5), Duration::from_secs(30)],
                    Duration::from_secs(300),
                );
                let retry = hookrelay_amqp::ConnectRetry {
                    attempts: 1,
                    max_delay: Duration::from_millis(10),
                };
                if let Ok(conn) = hookrelay_amqp::connect(
                    "amqp://guest:guest@127.0.0.1:5672/%2f",
                    "cli-test-cleanup",
                    retry,
                )
                .await
                    && let Ok(channel) = conn.create_channel().await
                {
                    let _ = hookrelay_amqp::topology::delete(&topology, &channel).await;
                }
                let (c, conn) = tokio_postgres::connect(
                    "postgres://postgres@127.0.0.1:5432/postgres",
                    tokio_postgres::NoTls,
                )
                .await
                .unwrap();
                tokio::spawn(conn);
                let _ = c
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

#[test]
fn webhooks_create_round_trips_and_a_duplicate_key_is_refused() {
    let env = Env::new();
    env.ok(&["migrate"]);
    env.ok(&["migrate"]);
    let created: Value = serde_json::from_str(&env.ok(&[
        "webhooks",
        "create",
        "--tenant",
        "acme",
        "--key",
        "event_webhook",
        "--url",
        "https://{{HOST}}/hooks",
        "--event-types",
        "embed_initialized,file_uploaded",
        "--secret",
        "pw",
        "--retry-on",
        "timeout,429,5xx",
        "--json",
    ]))
    .unwrap();
    assert_eq!(created["key"], "event_webhook");
    assert_eq!(
        created["event_types"],
        serde_json::json!(["embed_initialized", "file_uploaded"])
    );
    assert_eq!(created["secret"], "********", "the secret is never printed");
    assert_eq!(
        created["retry_on"],
        serde_json::json!(["timeout", "5xx", "429"])
    );

    let got: Value = serde_json::from_str(&env.ok(&[
        "webhooks",
        "get",
        "--tenant",
        "acme",
        "event_webhook",
        "--json",
    ]))
    .unwrap();
    assert_eq!(got, created);

    let dup = env.run(
        &[
            "webhooks",
            "create",
            "--tenant",
            "acme",
            "--key",
            "event_webhook",
            "--url",
            "https://x.test/",
        ],
        None,
    );
    assert!(!dup.status.success());
    let stderr = String::from_utf8_lossy(&dup.stderr);
    assert!(
        stderr.contains("already exists in tenant `acme`"),
        "{stderr}"
    );

    env.ok(&[
        "webhooks",
        "create",
        "--tenant",
        "globex",
        "--key",
        "event_webhook",
        "--url",
        "https://x.test/",
    ]);
    let table = env.ok(&["webhooks", "list", "--tenant", "acme"]);
    assert!(table.starts_with("ID"), "{table}");
    assert_eq!(
        table.lines().count(),
        2,
        "header and acme's one webhook: {table}"
    );

    env.ok(&[
        "webhooks",
        "update",
        "--tenant",
        "acme",
        "event_webhook",
        "--key",
        "renamed",
        "--enabled",
        "false",
    ]);
    let renamed: Value = serde_json::from_str(
        &env.ok(&["webhooks", "get", "--tenant", "acme", "renamed", "--json"]),
    )
    .unwrap();
    assert_eq!(renamed["enabled"], false);
    env.ok(&["webhooks", "delete", "--tenant", "acme", "renamed"]);
    let gone = env.run(&["webhooks", "get", "--tenant", "acme", "renamed"], None);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("not found"));

    let bad = env.run(
        &[
            "webhooks",
            "create",
            "--tenant",
            "acme",
            "--key",
            "k",
            "--url",
            "https://x.test/",
            "--retry-on",
            "sometimes",
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`sometimes` is not a retry condition"));

    let vars = env.ok(&[
        "environments",
        "set",
        "--tenant",
        "acme",
        "--name",
        "Production",
        "--var",
        "HOST=api.acme.test",
    ]);
    assert!(
        vars.contains("HOST") && vars.contains("********") && !vars.contains("api"),
        "{vars}"
    );
}

#[test]
fn publish_reads_stdin_and_names_the_bad_field() {
    let env = Env::new();
    let event = r#"{"id": "e-1", "tenant": "acme", "type": "file_uploaded", "occurred_at": "2024-01-24T16:13:25Z", "payload": {}}"#;
    let out = env.run(&["publish", "--file", "-"], Some(event));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("e-1"));

    let bad = r#"[{"id": "e-2", "tenant": "acme", "type": "x", "occurred_at": "not a date", "payload": {}}]"#;
    let out = env.run(&["publish", "--file", "-"], Some(bad));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[0].occurred_at"), "{stderr}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    child.wait().unwrap()
}

#[test]
fn sigterm_during_deliveries_exits_cleanly_and_loses_nothing() {
    let env = Env::new();
    env.ok(&["migrate"]);
    let receiver_port = free_port();
    let mut receiver = env.spawn(&["receiver", "--addr", &format!("127.0.0.1:{receiver_port}")]);
    wait_listening(receiver_port);
    env.ok(&[
        "webhooks",
        "create",
        "--tenant",
        "acme",
        "--key",
        "k",
        "--url",
        &format!("http://127.0.0.1:{receiver_port}/hook"),
    ]);
    let serve_args = |port: u16| {
        vec![
            "serve".to_owned(),
            "--http-addr".to_owned(),
            format!("127.0.0.1:{port}"),
        ]
    };
    let port = free_port();
    let args = serve_args(port);
    let mut serve = env.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    wait_listening(port);

    let events: Vec<serde_json::Value> = (0..400)
        .map(|i| serde_json::json!({"id": format!("e-{i}"), "tenant": "acme", "type": "x", "occurred_at": "2024-01-24T16:13:25Z", "payload": {"n": i}}))
        .collect();
    let out = env.run(
        &["publish", "--file", "-"],
        Some(&serde_json::to_string(&events).unwrap()),
    );
    assert!(out.status.success());
    env.wait_count(
        "SELECT count(*) FROM deliveries WHERE status = 'delivered'",
        1,
        Duration::from_secs(30),
    );
    let status = terminate(&mut serve);
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
    let delivered_at_stop = env.count("SELECT count(*) FROM deliveries WHERE status = 'delivered'");

    let port = free_port();
    let args = serve_args(port);
    let mut again = env.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
    env.wait_count(
        "SELECT count(*) FROM deliveries WHERE status = 'delivered'",
        400,
        Duration::from_secs(60),
    );
    assert_eq!(env.count("SELECT count(*) FROM events"), 400);
    assert_eq!(
        env.count("SELECT count(*) FROM deliveries"),
        400,
        "one delivery per event"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM deliveries WHERE status <> 'delivered'"),
        0
    );
    eprintln!("delivered before SIGTERM: {delivered_at_stop} of 400");
    assert!(terminate(&mut again).success());
    terminate(&mut receiver);
}

/// An operator's round: failed deliveries are found, inspected and replayed with
/// the CLI alone, and retention is previewed without deleting.
#[test]
fn operator_finds_inspects_and_replays_dead_letters() {
    let env = Env::new();
    env.ok(&["migrate"]);
    let closed = free_port();
    env.ok(&[
        "webhooks",
        "create",
        "--tenant",
        "acme",
        "--key",
        "k",
        "--url",
        &format!("http://127.0.0.1:{closed}/hook"),
    ]);
    let port = free_port();
    let mut serve = env.spawn(&["serve", "--http-addr", &format!("127.0.0.1:{port}")]);
    wait_listening(port);
    let events: Vec<Value> = (0..3)
        .map(|i| serde_json::json!({"id": format!("e-{i}"), "tenant": "acme", "type": "x", "occurred_at": "2024-01-24T16:13:25Z", "payload": {}}))
        .collect();
    let out = env.run(
        &["publish", "--file", "-"],
        Some(&serde_json::to_string(&events).unwrap()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.wait_count(
        "SELECT count(*) FROM deliveries WHERE status = 'failed'",
        3,
        Duration::from_secs(30),
    );

    let failed: Value = serde_json::from_str(&env.ok(&[
        "deliveries",
        "list",
        "--tenant",
        "acme",
        "--status",
        "failed",
        "--json",
    ]))
    .unwrap();
    assert_eq!(failed.as_array().unwrap().len(), 3);
    // Times as people write them: a span ago, a date.
    for since in ["1h", "2000-01-01"] {
        let recent: Value = serde_json::from_str(&env.ok(&[
            "deliveries",
            "list",
            "--tenant",
            "acme",
            "--since",
            since,
            "--json",
        ]))
        .unwrap();
        assert_eq!(recent.as_array().unwrap().len(), 3, "--since {since}");
    }
    let none: Value = serde_json::from_str(&env.ok(&[
        "deliveries",
        "list",
        "--tenant",
        "acme",
        "--since",
        "2999-01-01",
        "--json",
    ]))
    .unwrap();
    assert_eq!(none, serde_json::json!([]));
    let listed = wait_for_dead_letters(&env, 3);
    assert!(
        listed.iter().all(|m| m["reason"] == "not retryable"),
        "{listed:?}"
    );
    let table = env.ok(&["dlq", "list"]);
    assert!(
        table.contains("not retryable") && table.contains("e-1"),
        "{table}"
    );
    // Tables name webhooks by key, not by id.
    let hook: Value =
        serde_json::from_str(&env.ok(&["webhooks", "get", "--tenant", "acme", "k", "--json"]))
            .unwrap();
    let id = hook["id"].as_str().unwrap();
    let deliveries = env.ok(&["deliveries", "list", "--tenant", "acme"]);
    for shown in [&table, &deliveries] {
        assert!(!shown.contains(id), "{shown}");
        let header = shown.lines().next().unwrap();
        let column = header
            .find("WEBHOOK")
            .or_else(|| header.find("TARGET"))
            .unwrap();
        assert!(
            shown
                .lines()
                .skip(1)
                .all(|l| l.get(column..column + 2) == Some("k ")),
            "{shown}"
        );
    }
    let shown: Value = serde_json::from_str(&env.ok(&["dlq", "show", "e-1", "--json"])).unwrap();
    assert_eq!(shown["body"]["event_id"], "e-1");
    let readable = env.ok(&["dlq", "show", "e-1"]);
    assert!(readable.starts_with("FIELD"), "{readable}");
    assert!(
        readable.contains("\"event_id\": \"e-1\""),
        "the body follows: {readable}"
    );

    let refused = env.run(&["dlq", "purge"], None);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));

    let in_40_days = time_in_days(40);
    let preview = env.ok(&["events", "purge", "--dry-run", "--as-of", &in_40_days]);
    assert!(preview.contains("acme"), "{preview}");
    assert_eq!(
        env.count("SELECT count(*) FROM events"),
        3,
        "a dry run deletes nothing"
    );

    // The endpoint is fixed; one command sends every dead letter again.
    let receiver_port = free_port();
    let mut receiver = env.spawn(&["receiver", "--addr", &format!("127.0.0.1:{receiver_port}")]);
    wait_listening(receiver_port);
    env.ok(&[
        "webhooks",
        "update",
        "--tenant",
        "acme",
        "k",
        "--url",
        &format!("http://127.0.0.1:{receiver_port}/hook"),
    ]);
    let replayed = env.ok(&["dlq", "replay"]);
    assert!(replayed.contains("replayed 3 of 3"), "{replayed}");
    env.wait_count(
        "SELECT count(*) FROM deliveries WHERE status = 'delivered'",
        3,
        Duration::from_secs(30),
    );
    let left: Value = serde_json::from_str(&env.ok(&["dlq", "list", "--json"])).unwrap();
    assert_eq!(left, serde_json::json!([]));
    assert!(terminate(&mut serve).success());
    terminate(&mut receiver);
}

/// Dead letters reach the queue a moment after their delivery row says failed.
fn wait_for_dead_letters(env: &Env, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let listed: Value = serde_json::from_str(&env.ok(&["dlq", "list", "--json"])).unwrap();
        let listed = listed.as_array().unwrap().clone();
        if listed.len() >= n {
            return listed;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} dead letters expected"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn time_in_days(days: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::days(days))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The api role on an address others can reach needs a token: `serve` refuses to
/// start without one, saying what to do, and touches nothing.
#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let env = Env::new();
    let out = env.run(
        &["serve", "--roles", "api", "--http-addr", "0.0.0.0:0"],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HOOKRELAY_API_TOKEN"), "{err}");
    let created = count_at(
        "postgres://postgres@127.0.0.1:5432/postgres",
        &format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{}'",
            env.database
        ),
    );
    assert_eq!(created, 0, "refused before touching anything");
}

/// `/readyz` answers 503, naming what is not ready, while a consuming role cannot
/// reach the broker, and 200 with the same body shape once everything runs.
#[test]
fn readiness_says_what_is_not_ready() {
    let env = Env::new();
    env.ok(&["migrate"]);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut down = env.spawn_without_broker(&["serve", "--roles", "router", "--http-addr", &addr]);
    wait_listening(port);
    let (status, body) = get_json(&format!("http://{addr}/readyz"));
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["consuming"]["router"], false, "{body}");
    assert_eq!(body["database"], true, "{body}");
    terminate(&mut down);

    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut up = env.spawn(&["serve", "--roles", "router", "--http-addr", &addr]);
    wait_listening(port);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get_json(&format!("http://{addr}/readyz"));
        if status == 200 {
            assert_eq!(body["consuming"]["router"], true, "{body}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never ready: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    terminate(&mut up);
}

/// A plain HTTP/1.1 GET: (status, JSON body).
fn get_json(url: &str) -> (u16, Value) {
    use std::io::Read;
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// SIGTERM while `serve` still waits for the broker at start-up: a clean stop, exit 0.
#[test]
fn sigterm_during_start_up_stops_cleanly() {
    let env = Env::new();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = env.spawn_without_broker(&["serve", "--roles", "api", "--http-addr", &addr]);
    // Migrated (its database exists): it is now retrying the broker, which never answers.
    let query = format!(
        "SELECT count(*) FROM pg_database WHERE datname = '{}'",
        env.database
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while count_at("postgres://postgres@127.0.0.1:5432/postgres", &query) == 0 {
        assert!(std::time::Instant::now() < deadline, "never migrated");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = terminate(&mut child);
    assert!(status.success(), "{status:?}");
}

/// Whatever `RUST_LOG` asks for, no secret and no private field reaches a log line:
/// not from the operator commands that take them, not from `serve` while it
/// delivers with them (tokio-postgres logs every query's parameters at debug).
#[test]
fn no_secret_or_private_field_is_logged_even_at_trace() {
    const BASIC: &str = "basic-pass-7f3a0c";
    const SIGNING: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VARIABLE: &str = "variable-value-91c2e";
    const PRIVATE: &str = "private-review-url-5d1e";
    let env = Env::new();
    env.ok(&["migrate"]);
    let receiver_port = free_port();
    let mut receiver = env.spawn(&["receiver", "--addr", &format!("127.0.0.1:{receiver_port}")]);
    wait_listening(receiver_port);
    let traced = |args: &[&str]| {
        let out = env.command(args).env("RUST_LOG", "trace").output().unwrap();
        assert!(
            out.status.success(),
            "hookrelay {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let mut logs = traced(&[
        "webhooks",
        "create",
        "--tenant",
        "acme",
        "--key",
        "k",
        "--url",
        &format!("http://127.0.0.1:{receiver_port}/{{{{PATH}}}}"),
        "--secret",
        BASIC,
        "--signing-secret",
        SIGNING,
    ]);
    logs += &traced(&[
        "environments",
        "set",
        "--tenant",
        "acme",
        "--name",
        "Production",
        "--var",
        &format!("PATH={VARIABLE}"),
    ]);
    logs += &traced(&["webhooks", "get", "--tenant", "acme", "k"]);

    let log_file = std::env::temp_dir().join(format!("{}.serve.log", env.prefix));
    let port = free_port();
    let mut serve = env
        .command(&["serve", "--http-addr", &format!("127.0.0.1:{port}")])
        .env("HOOKRELAY_ALLOW_PRIVATE_DESTINATIONS", "true")
        .env("RUST_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .unwrap();
    wait_listening(port);
    let event = serde_json::json!({
        "id": "e-private", "tenant": "acme", "type": "import_completed",
        "occurred_at": "2024-01-24T16:13:25Z", "environment": "Production",
        "private_fields": ["/data/review_url"],
        "payload": {"event": "import_completed", "data": {"review_url": PRIVATE}}
    });
    let published = env.run(&["publish", "--file", "-"], Some(&event.to_string()));
    assert!(published.status.success());
    env.wait_count(
        "SELECT count(*) FROM deliveries WHERE status = 'delivered'",
        1,
        Duration::from_secs(30),
    );
    assert!(terminate(&mut serve).success());
    terminate(&mut receiver);
    logs += &std::fs::read_to_string(&log_file).unwrap();
    let _ = std::fs::remove_file(&log_file);

    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "hookrelay's own debug lines are kept"
    );
    for secret in [BASIC, SIGNING, &SIGNING[6..], VARIABLE, PRIVATE] {
        let line = logs.lines().find(|l| l.contains(secret));
        assert!(line.is_none(), "`{secret}` was logged: {line:?}");
    }
}

/// `--help` of every command names the variables that hold URLs and secrets, never
/// their values: a password in `HOOKRELAY_DATABASE_URL` must not reach a terminal
/// (or a CI log) because someone asked for help.
#[test]
fn help_never_shows_the_values_of_secret_variables() {
    // (variable, value, the part that must never show)
    let secrets = [
        (
            "HOOKRELAY_DATABASE_URL",
            "postgres://u:db-pw-3e1@db.invalid/h",
            "db-pw-3e1",
        ),
        (
            "HOOKRELAY_AMQP_URL",
            "amqp://u:amqp-pw-8c2@mq.invalid/%2f",
            "amqp-pw-8c2",
        ),
        (
            "HOOKRELAY_RABBITMQ_MANAGEMENT_URL",
            "http://u:mgmt-pw-4f9@mq.invalid:15672",
            "mgmt-pw-4f9",
        ),
        ("HOOKRELAY_API_TOKEN", "api-token-5a7", "api-token-5a7"),
        ("HOOKRELAY_SECRET_KEY", "secret-key-0d4", "secret-key-0d4"),
        (
            "HOOKRELAY_WEBHOOK_SECRET",
            "webhook-secret-b6f",
            "webhook-secret-b6f",
        ),
        (
            "HOOKRELAY_WEBHOOK_SIGNING_SECRET",
            "whsec_signing-9a0",
            "signing-9a0",
        ),
    ];
    let help = |path: &[String]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hookrelay"));
        command.args(path).arg("--help");
        for (name, value, _) in secrets {
            command.env(name, value);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{path:?} --help");
        String::from_utf8(out.stdout).unwrap()
    };
    // Every command and subcommand, from the `Commands:` lists of the help itself.
    let mut pending: Vec<Vec<String>> = vec![vec![]];
    let mut seen = 0;
    while let Some(path) = pending.pop() {
        let text = help(&path);
        seen += 1;
        for (name, _, secret) in secrets {
            assert!(
                !text.contains(secret),
                "`hookrelay {} --help` shows {name}",
                path.join(" ")
            );
        }
        let commands = text
            .split("Commands:")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").next())
            .unwrap_or_default();
        for line in commands.lines() {
            match line.split_whitespace().next() {
                Some(name) if name != "help" => {
                    let mut next = path.clone();
                    next.push(name.to_owned());
                    pending.push(next);
                }
                _ => {}
            }
        }
    }
    assert!(seen > 20, "walked {seen} commands");
}

/// What an upstream publisher sends reaches the operator's terminal only as text:
/// an event id of 70,000 characters carrying terminal escapes is dead-lettered by
/// the router, and `dlq list` still prints, cut short and escaped.
#[test]
fn dlq_list_prints_a_huge_hostile_event_id_cut_and_escaped() {
    let env = Env::new();
    env.ok(&["migrate"]);
    let port = free_port();
    let mut serve = env.spawn(&[
        "serve",
        "--roles",
        "router",
        "--http-addr",
        &format!("127.0.0.1:{port}"),
    ]);
    wait_listening(port);
    let id = format!("\u{1b}]0;pwned\u{7}\r{}", "x".repeat(70_000));
    let event = serde_json::json!({"id": id, "tenant": "acme", "type": "x", "occurred_at": "2024-01-24T16:13:25Z", "payload": {}});
    publish_raw(&env, &serde_json::to_vec(&event).unwrap());
    let listed = wait_for_dead_letters(&env, 1);
    assert_eq!(
        listed[0]["event_id"],
        id.as_str(),
        "JSON keeps the value whole"
    );

    let out = env.run(&["dlq", "list"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        !table.contains('\u{1b}') && !table.contains('\u{7}') && !table.contains('\r'),
        "{table:?}"
    );
    assert!(table.contains("\\u{1b}]0;pwned\\u{7}\\r"), "{table}");
    assert!(table.lines().all(|l| l.chars().count() < 1000), "{table}");
    assert!(table.contains('…'), "{table}");
    assert!(terminate(&mut serve).success());
}

/// Publishes `body` to this test's events exchange as an upstream service would,
/// bypassing the CLI's own checks.
fn publish_raw(env: &Env, body: &[u8]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let topology = hookrelay_model::Topology::new(
            &env.prefix,
            &[Duration::from_secs(5), Duration::from_secs(30)],
            Duration::from_secs(300),
        );
        let conn = hookrelay_amqp::connect(
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            "cli-test-publisher",
            hookrelay_amqp::ConnectRetry::default(),
        )
        .await
        .unwrap();
        let channel = hookrelay_amqp::confirm_channel(&conn).await.unwrap();
        // As upstream publishers do: whichever of them and the router starts first.
        hookrelay_amqp::topology::declare_ingress(&topology, &channel)
            .await
            .unwrap();
        let properties = hookrelay_amqp::persistent("raw-1", Default::default()).unwrap();
        hookrelay_amqp::publish_confirmed(
            &channel,
            &topology.events_exchange(),
            "acme.x",
            body,
            properties,
        )
        .await
        .unwrap();
    });
}

/// `tenants list` names every tenant with webhooks, tokens or settings.
#[test]
fn tenants_list_names_every_configured_tenant() {
    let env = Env::new();
    env.ok(&["migrate"]);
    env.ok(&[
        "webhooks",
        "create",
        "--tenant",
        "acme",
        "--key",
        "k",
        "--url",
        "https://example.com/h",
    ]);
    // Commands that show a secret once speak JSON too, numbers and all.
    let token: Value = serde_json::from_str(&env.ok(&[
        "tokens", "create", "--tenant", "globex", "--name", "embed", "--json",
    ]))
    .unwrap();
    assert!(
        token["token"].as_str().unwrap().starts_with("hrt_"),
        "{token}"
    );
    assert_eq!(token["scope"], "read");
    let rotated: Value = serde_json::from_str(&env.ok(&[
        "webhooks",
        "rotate-signing-secret",
        "--tenant",
        "acme",
        "k",
        "--json",
    ]))
    .unwrap();
    assert_eq!(rotated["webhook"]["key"], "k");
    assert!(
        rotated["signing_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_"),
        "{rotated}"
    );
    assert_eq!(
        rotated["webhook"]["signing_secrets"],
        serde_json::json!(["********"])
    );
    env.ok(&[
        "tenants",
        "set",
        "--tenant",
        "initech",
        "--retention-days",
        "7",
    ]);
    let listed: Value = serde_json::from_str(&env.ok(&["tenants", "list", "--json"])).unwrap();
    assert_eq!(
        listed,
        serde_json::json!([
            {"tenant": "acme", "webhooks": 1, "tokens": 0, "retention_days": null},
            {"tenant": "globex", "webhooks": 0, "tokens": 1, "retention_days": null},
            {"tenant": "initech", "webhooks": 0, "tokens": 0, "retention_days": 7},
        ])
    );
    let table = env.ok(&["tenants", "list"]);
    assert!(
        table.lines().next().unwrap().starts_with("TENANT"),
        "{table}"
    );
}

/// A comma-separated `HOOKRELAY_AMQP_URL`: a dead first node is passed over, and an
/// empty entry is named by its position, its neighbours' passwords never shown.
#[test]
fn a_list_of_broker_urls_skips_a_dead_node_and_names_an_empty_entry() {
    let queues = |amqp_url: &str| {
        Command::new(env!("CARGO_BIN_EXE_hookrelay"))
            .args(["queues", "--amqp-prefix"])
            .arg(format!("t.cli-list-{}", std::process::id()))
            .env("HOOKRELAY_AMQP_URL", amqp_url)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = queues("amqp://guest:guest@127.0.0.1:9/%2f , amqp://guest:guest@127.0.0.1:5672/%2f");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = queues("amqp://u:list-pw-41@127.0.0.1:9/%2f,,amqp://u:list-pw-42@127.0.0.1:9/%2f");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("address 2 of 3"), "{stderr}");
    assert!(!stderr.contains("list-pw"), "{stderr}");
}

#[test]
fn portal_links_are_minted_listed_and_revoked_and_the_audit_log_is_listed() {
    let env = Env::new();
    env.ok(&["migrate"]);
    let url = env.ok(&[
        "portal",
        "link",
        "--tenant",
        "acme",
        "--read-only",
        "--ttl",
        "15m",
        "--webhook",
        "orders",
        "--event-type",
        "order.created",
        "--public-url",
        "https://hooks.example",
    ]);
    assert!(
        url.trim()
            .starts_with("https://hooks.example/portal/open/hpl_"),
        "{url}"
    );
    let sessions: Value =
        serde_json::from_str(&env.ok(&["portal", "sessions", "--tenant", "acme", "--json"]))
            .unwrap();
    let session = &sessions[0];
    assert_eq!(session["state"], "unopened");
    assert_eq!(session["read_only"], true);
    assert_eq!(session["webhook_keys"], serde_json::json!(["orders"]));
    assert_eq!(session["created_by"], "cli");
    let id = session["id"].as_str().unwrap();
    env.ok(&["portal", "revoke", "--tenant", "acme", id]);
    let sessions: Value =
        serde_json::from_str(&env.ok(&["portal", "sessions", "--tenant", "acme", "--json"]))
            .unwrap();
    assert_eq!(sessions[0]["state"], "revoked");
    // A link's lifetime is bounded, and the error names it.
    let out = env.run(&["portal", "link", "--tenant", "acme", "--ttl", "3d"], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("24h"),
        "{out:?}"
    );
    let audit: Value =
        serde_json::from_str(&env.ok(&["audit", "list", "--tenant", "acme", "--json"])).unwrap();
    assert!(
        audit.as_array().unwrap().is_empty(),
        "the CLI's own commands are not API changes"
    );
}
