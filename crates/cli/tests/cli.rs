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

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hookrelay"))
            .args(args)
            .env(
                "HOOKRELAY_DATABASE_URL",
                format!("postgres://postgres@127.0.0.1:5432/{}", self.database),
            )
            .env("HOOKRELAY_AMQP_PREFIX", &self.prefix)
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
                let topology = hookrelay_core::Topology::new(
                    &prefix,
                    &[Duration::from_secs(5), Duration::from_secs(30)],
                    Duration::from_secs(300),
                );
                let retry = hookrelay_core::amqp::ConnectRetry {
                    attempts: 1,
                    max_delay: Duration::from_millis(10),
                };
                if let Ok(conn) = hookrelay_core::amqp::connect(
                    "amqp://guest:guest@127.0.0.1:5672/%2f",
                    "cli-test-cleanup",
                    retry,
                )
                .await
                    && let Ok(channel) = conn.create_channel().await
                {
                    let _ = topology.delete(&channel).await;
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
        vars.contains("HOST") && vars.contains("api***") && !vars.contains("api.acme.test"),
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
