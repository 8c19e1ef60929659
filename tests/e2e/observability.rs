use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookrelay_cli::config::LogFormat;
use hookrelay_cli::telemetry;
use hookrelay_model::webhook::Secret;
use hookrelay_server::api::{ApiState, app};
use hookrelay_tests::stack::{event, webhook};
use hookrelay_tests::{Behaviour, TestStack};
use opentelemetry::trace::TraceId;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// Log lines written by the subscriber under test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines written as JSON (`LogFormat::Json`), parsed.
    fn json_lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// The production subscriber, writing logs to a buffer and spans to memory. The
/// runtime is current-thread so every role's task sees it.
fn install(
    format: LogFormat,
) -> (
    Captured,
    InMemorySpanExporter,
    SdkTracerProvider,
    tracing::subscriber::DefaultGuard,
) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = telemetry::subscriber(format, &provider, move || writer.clone());
    let guard = tracing::subscriber::set_default(subscriber);
    (logs, exporter, provider, guard)
}

#[tokio::test(flavor = "current_thread")]
async fn one_trace_spans_publish_route_attempt_and_reaches_the_receiver() {
    let (_logs, exporter, provider, _guard) = install(LogFormat::Text);
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    stack.receiver.respond(
        "/traced",
        Behaviour::Sequence(vec![Behaviour::Status(429), Behaviour::Status(200)]),
    );
    stack
        .create_webhook(webhook("acme", "traced", &stack.receiver.url("/traced")))
        .await;
    let e = event("acme", "x", json!({}));
    stack.publish(&e).await;
    let got = stack.receiver.wait_for("/traced", 2, WAIT).await;
    stack.wait_settled("acme", &e.id, 1, WAIT).await;
    stack.stop_roles().await;
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let publish = spans
        .iter()
        .find(|s| s.name == "publish")
        .expect("a publish span");
    let trace_id: TraceId = publish.span_context.trace_id();
    let in_trace = |name: &str| {
        spans
            .iter()
            .filter(|s| s.name == name && s.span_context.trace_id() == trace_id)
            .count()
    };
    assert_eq!(
        in_trace("route"),
        1,
        "the route span continues the publish trace"
    );
    assert_eq!(
        in_trace("attempt"),
        2,
        "both attempts (429, then 200) are in the trace"
    );
    for r in &got {
        let traceparent = r.header("traceparent").expect("traceparent sent");
        assert!(
            traceparent.contains(&trace_id.to_string()),
            "{traceparent} carries {trace_id}"
        );
    }
    let stored = stack.trace_id_of(&e.id).await;
    assert_eq!(
        stored,
        Some(trace_id.to_string()),
        "operators can jump from the delivery to its trace"
    );
}

#[tokio::test]
async fn metrics_parse_and_move_by_what_happened() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    stack.receiver.respond("/broken", Behaviour::Status(500));
    let mut ok = webhook("acme", "ok", &stack.receiver.url("/ok"));
    ok.event_types = vec!["good".into()];
    stack.create_webhook(ok).await;
    let mut broken = webhook("acme", "broken", &stack.receiver.url("/broken"));
    broken.event_types = vec!["bad".into()];
    stack.create_webhook(broken).await;
    let good: Vec<_> = (0..4).map(|_| event("acme", "good", json!({}))).collect();
    let bad = event("acme", "bad", json!({}));
    stack.publisher.publish_batch(&good).await.unwrap();
    stack.publish(&bad).await;
    stack.publish(&bad).await; // a duplicate
    for e in good.iter().chain([&bad]) {
        stack.wait_settled("acme", &e.id, 1, WAIT).await;
    }

    let state = ApiState {
        publisher: None,
        admin: None,
        pool: stack.db.pool.clone(),
        api_token: Some("t".into()),
        max_event_bytes: 1 << 20,
        metrics: Arc::clone(&stack.metrics),
        consumers: vec![hookrelay_router::ROLE, hookrelay_sender::ROLE],
        portal: Default::default(),
        schema_validation: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app(state)).await });
    let ready = reqwest::get(format!("{url}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200, "database up and both roles consuming");
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let mut samples = std::collections::HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        samples.insert(name.to_owned(), value);
    }
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics text ends with # EOF"
    );
    let get = |k: &str| {
        samples
            .get(k)
            .copied()
            .unwrap_or_else(|| panic!("{k} missing in\n{text}"))
    };
    assert_eq!(
        get(r#"hookrelay_router_events_total{outcome="routed"}"#),
        5.0
    );
    assert_eq!(
        get(r#"hookrelay_router_events_total{outcome="duplicate"}"#),
        1.0
    );
    assert_eq!(get("hookrelay_router_deliveries_published_total"), 5.0);
    assert_eq!(
        get(r#"hookrelay_sender_deliveries_total{outcome="delivered"}"#),
        4.0
    );
    assert_eq!(
        get(r#"hookrelay_sender_deliveries_total{outcome="failed"}"#),
        1.0
    );
    assert_eq!(get(r#"hookrelay_sender_attempts_total{class="2xx"}"#), 4.0);
    assert_eq!(get(r#"hookrelay_sender_attempts_total{class="5xx"}"#), 1.0);
    assert_eq!(get("hookrelay_sender_attempt_duration_seconds_count"), 5.0);
    assert_eq!(
        get(r#"hookrelay_dead_lettered_total{role="sender",reason="not retryable"}"#),
        1.0
    );
    assert_eq!(get(r#"hookrelay_consuming{role="sender"}"#), 1.0);
}

#[tokio::test(flavor = "current_thread")]
async fn logs_name_the_delivery_and_never_show_a_secret() {
    let (logs, _exporter, _provider, _guard) = install(LogFormat::Json);
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    let secret = "s3cr3t-do-not-log";
    stack.receiver.respond("/auth", Behaviour::Status(401));
    let mut w = webhook("acme", "auth", &stack.receiver.url("/auth"));
    w.secret = Some(Secret::new(secret));
    let w = stack.create_webhook(w).await;
    let e = event("acme", "x", json!({}));
    stack.publish(&e).await;
    stack.wait_settled("acme", &e.id, 1, WAIT).await;
    stack.stop_roles().await;

    let text = logs.text();
    assert!(!text.contains(secret), "the secret is in the logs");
    assert!(
        !text.contains("OnMzY3IzdC1kby1ub3QtbG9n"),
        "the Basic credentials are in the logs"
    );
    assert!(
        !text.to_lowercase().contains("authorization"),
        "an Authorization header is in the logs"
    );
    let lines = logs.json_lines();
    let attempt = lines
        .iter()
        .find(|l| l["message"] == "delivery attempt")
        .unwrap_or_else(|| panic!("no attempt line in\n{text}"));
    let span = &attempt["span"];
    assert_eq!(span["event_id"], e.id.as_str());
    assert_eq!(span["tenant"], "acme");
    assert_eq!(span["webhook_id"], w.id.to_string().as_str());
    assert_eq!(
        span["trace_id"].as_str().map(str::len),
        Some(32),
        "{attempt}"
    );
    let dead = lines
        .iter()
        .find(|l| l["message"] == "delivery dead-lettered")
        .expect("dead-letter line");
    assert_eq!(dead["span"]["event_id"], e.id.as_str());
}

/// Roles stopped on purpose, and a publisher closed by its upstream service, say so
/// and log nothing worse: an error line on every graceful stop (a deploy) would page
/// whoever alerts on errors. A publish after a close connects again.
#[tokio::test(flavor = "current_thread")]
async fn a_graceful_stop_logs_no_error() {
    let (logs, _exporter, _provider, _guard) = install(LogFormat::Json);
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    stack
        .create_webhook(webhook("acme", "orders", &stack.receiver.url("/orders")))
        .await;
    stack.publisher.close().await;
    let e = event("acme", "order_placed", json!({}));
    stack.publish(&e).await;
    stack.wait_settled("acme", &e.id, 1, WAIT).await;
    stack.publisher.close().await;
    stack.stop_roles().await;

    let text = logs.text();
    let lines = logs.json_lines();
    for role in ["router", "sender"] {
        let stopped = format!("{role} stopped");
        assert!(
            lines.iter().any(|l| l["message"] == stopped.as_str()),
            "no `{stopped}` line in\n{text}"
        );
    }
    let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert!(
        errors.is_empty(),
        "errors logged while stopping: {errors:?}"
    );
}

/// `/metrics` shows how many messages wait in each queue: three poison events in the
/// dead-letter queue show as 3 there, and the router's queue drained as 0.
#[tokio::test]
async fn queue_depths_are_sampled_into_metrics() {
    let mut stack = TestStack::new().await;
    let _router = stack.start_router().await;
    for _ in 0..3 {
        stack.publish_raw("acme.file_uploaded", b"not json").await;
    }
    let dead_letter = stack.topology.dead_letter_queue();
    stack.wait_queue_len(&dead_letter, 3, WAIT).await;
    let metrics = Arc::new(hookrelay_metrics::Metrics::new());
    let (stop, shutdown) = hookrelay_model::shutdown::channel();
    let sampler = {
        let (topology, metrics) = (stack.topology.clone(), Arc::clone(&metrics));
        tokio::spawn(async move {
            hookrelay_metrics::sample_queue_depths(
                hookrelay_tests::AMQP_URL,
                &topology,
                &metrics,
                Duration::from_millis(50),
                shutdown,
            )
            .await;
        })
    };
    let expected = [
        format!("queue_messages{{queue=\"{dead_letter}\"}} 3"),
        format!(
            "queue_messages{{queue=\"{}\"}} 0",
            stack.topology.router_queue()
        ),
    ];
    hookrelay_tests::wait_until("the depths are sampled", WAIT, || async {
        let text = metrics.render();
        expected
            .iter()
            .all(|line| text.lines().any(|l| l.ends_with(line.as_str())))
    })
    .await;
    drop(stop);
    tokio::time::timeout(WAIT, sampler)
        .await
        .expect("the sampler stops on shutdown")
        .unwrap();
}
