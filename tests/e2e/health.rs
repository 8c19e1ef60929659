//! Health you can alert on: per-webhook metrics under a cap, the end-to-end latency,
//! the pending gauges from the database, `hookrelay stats` (and `GET /v1/stats`),
//! and `hookrelay queues` with and without the management API.

use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use hookrelay_metrics::{Metrics, PendingSampler, attempt};
use hookrelay_model::shutdown;
use hookrelay_store::pending::{self, Watermarks};
use hookrelay_tests::management::ManagedBroker;
use hookrelay_tests::stack::{event, webhook};
use hookrelay_tests::{Behaviour, TestStack, hookrelay_binary, wait_until};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn attempts_and_latency_are_labelled_by_webhook_key_up_to_the_cap() {
    let mut stack = TestStack::new().await;
    // Two pairs get their own series; the third is counted under `_other`.
    stack.metrics = Arc::new(Metrics::with_max_webhooks(2));
    stack.start_router().await;
    stack.start_sender().await;
    stack.receiver.respond("/orders", Behaviour::Status(200));
    stack.receiver.respond(
        "/flaky",
        // 429 is retried under the default policy.
        Behaviour::Sequence(vec![Behaviour::Status(429), Behaviour::Status(200)]),
    );
    stack.receiver.respond("/late", Behaviour::Status(200));
    for (key, path, types) in [
        ("orders", "/orders", "first"),
        ("flaky", "/flaky", "first"),
        ("late", "/late", "second"),
    ] {
        let mut new = webhook("acme", key, &stack.receiver.url(path));
        new.event_types = vec![types.into()];
        stack.create_webhook(new).await;
    }
    let first = event("acme", "first", json!({}));
    stack.publish(&first).await;
    stack.wait_settled("acme", &first.id, 2, WAIT).await;
    let second = event("acme", "second", json!({}));
    stack.publish(&second).await;
    stack.wait_settled("acme", &second.id, 1, WAIT).await;

    let m = &stack.metrics;
    // Counted just after the outcome is committed: wait for the last of them.
    wait_until("three delivered attempts are counted", WAIT, || async {
        m.delivered_after_count() == 3
    })
    .await;
    assert_eq!(m.webhook_attempts("acme", "orders", attempt::DELIVERED), 1);
    assert_eq!(m.webhook_attempts("acme", "flaky", attempt::RETRY), 1);
    assert_eq!(m.webhook_attempts("acme", "flaky", attempt::DELIVERED), 1);
    assert_eq!(m.webhook_attempts("acme", "late", attempt::DELIVERED), 0);
    assert_eq!(
        m.webhook_attempts("_other", "_other", attempt::DELIVERED),
        1
    );
    // Every delivered attempt is seen end to end, and the old series still count.
    assert_eq!(m.delivered_after_count(), 3);
    assert_eq!(m.attempts("2xx"), 3);
    let text = m.render();
    for line in [
        "hookrelay_webhook_attempt_duration_seconds_count{tenant=\"acme\",webhook=\"flaky\"} 2",
        "hookrelay_webhook_attempt_duration_seconds_count{tenant=\"_other\",webhook=\"_other\"} 1",
        "hookrelay_delivery_e2e_duration_seconds_count 3",
        "hookrelay_sender_attempt_duration_seconds_count 4",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}

#[tokio::test]
async fn pending_gauges_follow_the_database_per_webhook_and_one_off_url() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.receiver.respond("/slow", Behaviour::Status(200));
    stack.receiver.respond("/basic", Behaviour::Status(200));
    stack
        .create_webhook(webhook("acme", "slow", &stack.receiver.url("/slow")))
        .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let e = event("acme", "x", json!({}));
        stack.publish(&e).await;
        ids.push(e.id.to_string());
    }
    let basic = event(
        "acme",
        "x",
        json!({"webhook_url": stack.receiver.url("/basic")}),
    );
    stack.publish(&basic).await;
    wait_until("the router created every delivery", WAIT, || async {
        let mut n = 0;
        for id in ids.iter().chain([&basic.id.to_string()]) {
            n += stack.deliveries_of("acme", id).await.len();
        }
        n == 4
    })
    .await;

    // No sender yet: everything is pending.
    let (trigger, stop) = shutdown::channel();
    let (pool, metrics) = (stack.db.pool.clone(), Arc::clone(&stack.metrics));
    let sampler = PendingSampler {
        every: Duration::from_millis(100),
        lookback: Duration::from_secs(3600),
    };
    let sampling = tokio::spawn(async move {
        hookrelay_metrics::sample_pending(&pool, &metrics, sampler, stop).await;
    });
    let m = Arc::clone(&stack.metrics);
    wait_until(
        "3 pending for slow and 1 for one-off URLs",
        WAIT,
        || async { m.pending("acme", "slow").0 == 3 && m.pending("acme", "_url").0 == 1 },
    )
    .await;
    let text = m.render();
    assert!(
        text.contains("hookrelay_pending_deliveries{tenant=\"acme\",webhook=\"slow\"} 3"),
        "{text}"
    );
    // The oldest is as old as the first event's delivery, and it grows.
    let age = m.pending("acme", "slow").1;
    assert!(age > 0.0 && age < 60.0, "{age}");
    wait_until("the oldest pending age grows", WAIT, || async {
        m.pending("acme", "slow").1 > age
    })
    .await;

    stack.start_sender().await;
    wait_until("nothing is pending once delivered", WAIT, || async {
        m.pending("acme", "slow") == (0, 0.0) && m.pending("acme", "_url") == (0, 0.0)
    })
    .await;
    trigger.trigger();
    sampling.await.unwrap();
}

/// The watermarks keep a long-pending delivery in view round after round, while
/// settled history and what is older than the lookback are not read as pending.
#[tokio::test]
async fn a_long_pending_delivery_stays_counted_from_round_to_round() {
    let stack = TestStack::new().await;
    let hook = stack
        .create_webhook(webhook("acme", "stuck", "https://example.test/stuck"))
        .await;
    let db = stack.db.client().await;
    for (id, age, status) in [
        ("old-delivered", "3 hours", "delivered"),
        ("beyond-lookback", "2 hours", "pending"),
        ("stuck", "30 minutes", "pending"),
        ("recent-delivered", "1 minute", "delivered"),
    ] {
        db.execute(
            "INSERT INTO events (tenant, id, type, occurred_at, received_at, envelope) \
             VALUES ('acme', $1, 'x', now(), now() - $2::text::interval, '{}')",
            &[&id, &age],
        )
        .await
        .unwrap();
        db.execute(
            "INSERT INTO deliveries (id, tenant, event_id, webhook_id, status, published, created_at) \
             VALUES ($1, 'acme', $2, $3, $4, true, now() - $5::text::interval)",
            &[&uuid::Uuid::now_v7(), &id, &hook.id, &status, &age],
        )
        .await
        .unwrap();
    }
    let mut client = stack.db.pool.get().await.unwrap();
    let mut marks = Watermarks::default();
    for round in 0..3 {
        let sample = pending::sample(&mut client, &mut marks, Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(sample.rows.len(), 1, "round {round}: {:?}", sample.rows);
        let row = &sample.rows[0];
        assert_eq!((row.webhook_key.as_deref(), row.count), (Some("stuck"), 1));
        let age = (sample.now - row.oldest).whole_minutes();
        assert_eq!(age, 30, "round {round}");
    }
}

fn hookrelay(stack: &TestStack, args: &[&str], envs: &[(&str, String)]) -> Output {
    let mut command = Command::new(hookrelay_binary());
    command
        .args(args)
        .env("HOOKRELAY_DATABASE_URL", &stack.db.url)
        .env("HOOKRELAY_AMQP_URL", &stack.amqp_url)
        .env("HOOKRELAY_AMQP_PREFIX", &stack.prefix)
        .env_remove("HOOKRELAY_RABBITMQ_MANAGEMENT_URL")
        .stdin(Stdio::null());
    for (k, v) in envs {
        command.env(k, v);
    }
    let out = command.output().expect("hookrelay runs");
    assert!(
        out.status.success(),
        "hookrelay {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn entry<'a>(data: &'a Value, key: Option<&str>) -> &'a Value {
    data.as_array()
        .unwrap()
        .iter()
        .find(|e| e["webhook_key"].as_str() == key)
        .unwrap_or_else(|| panic!("no entry for {key:?} in {data}"))
}

#[tokio::test]
async fn stats_count_recent_deliveries_by_status_and_the_dead_letters() {
    // The CLI declares the dead-letter queue as production does (no test expiry).
    let mut stack = TestStack::for_processes().await;
    stack.start_router().await;
    stack.start_sender().await;
    stack.receiver.respond("/ok", Behaviour::Status(200));
    // 400 is not retried: failed and dead-lettered at once.
    stack.receiver.respond("/bad", Behaviour::Status(400));
    let ok = stack
        .create_webhook(webhook("acme", "ok", &stack.receiver.url("/ok")))
        .await;
    stack
        .create_webhook(webhook("acme", "bad", &stack.receiver.url("/bad")))
        .await;
    stack
        .create_webhook(webhook("acme", "paused", &stack.receiver.url("/ok")))
        .await;
    stack
        .create_webhook(webhook("globex", "quiet", &stack.receiver.url("/ok")))
        .await;
    hookrelay_store::webhooks::set_paused(
        &stack.db.client().await,
        &stack.cipher,
        "acme",
        "paused",
        true,
    )
    .await
    .unwrap();
    for _ in 0..2 {
        let e = event("acme", "x", json!({}));
        stack.publish(&e).await;
        stack.wait_settled("acme", &e.id, 3, WAIT).await;
    }
    // A delivery of three hours ago: in the last day, not in the last hour.
    let db = stack.db.client().await;
    db.execute(
        "INSERT INTO events (tenant, id, type, occurred_at, envelope) \
         VALUES ('acme', 'earlier', 'x', now(), '{}')",
        &[],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO deliveries (id, tenant, event_id, webhook_id, status, published, created_at) \
         VALUES ($1, 'acme', 'earlier', $2, 'delivered', true, now() - interval '3 hours')",
        &[&uuid::Uuid::now_v7(), &ok.id],
    )
    .await
    .unwrap();
    let dlq = stack.topology.dead_letter_queue();
    stack.wait_queue_len(&dlq, 2, WAIT).await;

    let api = stack.serve_api(Some("op"), 1 << 20).await;
    let http = reqwest::Client::new();
    let get = |query: &'static str| {
        let (http, api) = (http.clone(), api.clone());
        async move {
            let r = http
                .get(format!("{api}/v1/stats{query}"))
                .bearer_auth("op")
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = get("?tenant=acme").await;
    assert_eq!(status, 200, "{body}");
    let data = &body["data"];
    assert_eq!(data.as_array().unwrap().len(), 3, "{data}");
    let zero = json!({"delivered": 0, "failed": 0, "pending": 0, "held": 0});
    let ok_entry = entry(data, Some("ok"));
    assert_eq!(
        ok_entry["last_hour"],
        json!({"delivered": 2, "failed": 0, "pending": 0, "held": 0})
    );
    assert_eq!(ok_entry["last_day"]["delivered"], 3);
    assert_eq!(ok_entry["dead_letters"], 0);
    let bad = entry(data, Some("bad"));
    assert_eq!(bad["last_hour"]["failed"], 2);
    assert_eq!(bad["dead_letters"], 2);
    let last_error = bad["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("400"),
        "the newest failure's error: {bad}"
    );
    assert_eq!(
        ok_entry["last_error"],
        Value::Null,
        "none of its deliveries failed"
    );
    let paused = entry(data, Some("paused"));
    assert_eq!(paused["last_day"]["held"], 2);
    assert_ne!(paused["last_day"], zero);

    let (status, body) = get("?tenant=acme&webhook=bad").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 1, "{body}");
    let (status, body) = get("?tenant=globex").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(entry(&body["data"], Some("quiet"))["last_day"], zero);
    let (status, body) = get("?tenant=acme&webhook=nope").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(get("?colour=red").await.0, 400);

    // The CLI prints the same numbers (as numbers), and a table.
    let out = hookrelay(&stack, &["stats", "--tenant", "acme", "--json"], &[]);
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(&printed, data);
    let out = hookrelay(&stack, &["stats", "--webhook", &ok.id.to_string()], &[]);
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("TENANT") && lines[0].contains("24H DELIVERED"),
        "{table}"
    );
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[1]
            .split_whitespace()
            .eq(["acme", "ok", "2", "0", "0", "0", "3", "0", "0", "0", "0"]),
        "{table}"
    );
}

#[tokio::test]
async fn queues_show_unacked_as_unknown_without_the_management_api() {
    let stack = TestStack::new().await;
    let out = hookrelay(&stack, &["queues", "--json"], &[]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let queues = listed.as_array().unwrap();
    assert!(!queues.is_empty());
    assert!(queues.iter().all(|q| q["unacked"].is_null()), "{listed}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("unacked: unknown").count(),
        1,
        "said once: {stderr}"
    );
    assert!(
        stderr.contains("HOOKRELAY_RABBITMQ_MANAGEMENT_URL"),
        "{stderr}"
    );
    let out = hookrelay(&stack, &["queues"], &[]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.lines().next().unwrap().contains("UNACKED"), "{table}");
    let deliveries = table
        .lines()
        .find(|l| l.starts_with(&stack.topology.deliveries_queue()))
        .unwrap();
    assert_eq!(deliveries.split_whitespace().nth(2), Some("-"), "{table}");
}

/// Against a real management plugin, on a node of its own (see
/// `hookrelay_tests::management`).
#[tokio::test]
async fn queues_read_unacked_counts_from_the_management_api() {
    use hookrelay_amqp as amqp;
    use lapin::options::{BasicConsumeOptions, BasicQosOptions};
    let broker = tokio::task::spawn_blocking(ManagedBroker::start)
        .await
        .unwrap();
    let stack = TestStack::for_processes_on(&broker.amqp_url()).await;
    let queue = stack.topology.deliveries_queue();
    for n in 0..3 {
        amqp::publish_confirmed(
            &stack.channel,
            "",
            &queue,
            format!("{n}").as_bytes(),
            amqp::persistent(&format!("m{n}"), Default::default()).unwrap(),
        )
        .await
        .unwrap();
    }
    // A consumer that holds two and acks none.
    let holder = stack.connection.create_channel().await.unwrap();
    holder
        .basic_qos(2, BasicQosOptions::default())
        .await
        .unwrap();
    let _consumer = holder
        .basic_consume(
            queue.as_str().into(),
            "holder".into(),
            BasicConsumeOptions::default(),
            Default::default(),
        )
        .await
        .unwrap();

    let management = broker.management_url();
    let counts = {
        let mut found = None;
        let deadline = tokio::time::Instant::now() + WAIT;
        while found.is_none() {
            let counts = hookrelay_cli::management::queue_counts(&management, &broker.amqp_url())
                .await
                .unwrap();
            found = counts
                .get(&queue)
                .copied()
                .filter(|c| c.messages_unacknowledged == 2 && c.messages_ready == 1);
            assert!(
                tokio::time::Instant::now() < deadline,
                "the management API never showed 2 unacked and 1 ready: {counts:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        found.unwrap()
    };
    assert_eq!(counts.consumers, 1);

    let out = hookrelay(
        &stack,
        &["queues", "--json"],
        &[("HOOKRELAY_RABBITMQ_MANAGEMENT_URL", management.clone())],
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let deliveries = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == queue.as_str())
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(deliveries["messages"], 1, "{listed}");
    assert_eq!(deliveries["unacked"], 2, "{listed}");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["unacked"].is_u64()),
        "{listed}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("unknown"),
        "no note with the management API"
    );

    // A wrong password is said once, without the password, and unacked is unknown.
    let wrong = management.replace("guest:guest", "guest:wrong-pw-7c1");
    let out = hookrelay(
        &stack,
        &["queues", "--json"],
        &[("HOOKRELAY_RABBITMQ_MANAGEMENT_URL", wrong)],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    assert!(!stderr.contains("wrong-pw-7c1"), "{stderr}");
    drop(stack);
    drop(broker);
}

#[tokio::test]
async fn deliveries_show_says_which_rule_stopped_the_retries() {
    let mut stack = TestStack::new().await;
    stack.receiver.respond("/down", Behaviour::Status(500));
    stack
        .create_webhook(webhook("acme", "down", &stack.receiver.url("/down")))
        .await;
    stack.start_router().await;
    stack.start_sender().await;
    let e = event("acme", "order_placed", json!({}));
    stack.publish(&e).await;
    let d = stack
        .wait_settled("acme", &e.id, 1, Duration::from_secs(20))
        .await;
    let id = d[0].id.to_string();
    let why = "not retryable: HTTP 500 is not in the webhook's retry_on [timeout, 408, 429]";
    assert_eq!(d[0].why_failed.as_deref(), Some(why));

    let out = hookrelay(
        &stack,
        &["deliveries", "show", "--tenant", "acme", &id],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("not tried again: {why}")), "{text}");
    assert!(
        text.contains("ATTEMPT") && text.contains("failed"),
        "{text}"
    );
    let out = hookrelay(
        &stack,
        &["deliveries", "show", "--tenant", "acme", &id, "--json"],
        &[],
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["why_failed"], why, "{json}");
    assert_eq!(json["attempts"], 1, "numbers are numbers: {json}");
}

#[tokio::test]
async fn an_unknown_tenant_is_an_error_naming_it_not_an_empty_table() {
    let stack = TestStack::new().await;
    stack
        .create_webhook(webhook("acme", "orders", "http://127.0.0.1:9/"))
        .await;
    for args in [
        &["webhooks", "list", "--tenant", "acmee"][..],
        &["deliveries", "list", "--tenant", "acmee"],
        &["events", "list", "--tenant", "acmee"],
        &["tokens", "list", "--tenant", "acmee"],
        &["environments", "list", "--tenant", "acmee"],
        &["tenants", "show", "--tenant", "acmee"],
    ] {
        let out = Command::new(hookrelay_binary())
            .args(args)
            .env("HOOKRELAY_DATABASE_URL", &stack.db.url)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains("tenant `acmee`"), "{args:?}: {stderr}");
    }
    // A known tenant with nothing of that kind is an empty table, not an error.
    let out = hookrelay(&stack, &["events", "list", "--tenant", "acme"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("EVENT"));
}
