//! Per-webhook control: pausing holds a webhook's deliveries, new and already queued,
//! with no attempt and nothing dead-lettered, and resuming sends them once; a disabled
//! webhook holds too; backfill; payload filters.

use std::time::Duration;

use hookrelay_metrics::outcome;
use hookrelay_model::retry::RetryPolicy;
use hookrelay_store::deliveries::DeliveryStatus;
use hookrelay_tests::receiver::Behaviour;
use hookrelay_tests::stack::{event, webhook};
use hookrelay_tests::{TestStack, wait_until};
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

async fn post(base: &str, path: &str) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn statuses(stack: &TestStack, ids: &[String]) -> Vec<DeliveryStatus> {
    let mut out = Vec::new();
    for id in ids {
        out.extend(
            stack
                .deliveries_of("acme", id)
                .await
                .iter()
                .map(|d| d.status),
        );
    }
    out
}

#[tokio::test]
async fn a_paused_webhook_holds_every_delivery_and_resume_sends_them_once() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    let base = stack.serve_api(None, 1 << 20).await;
    stack
        .create_webhook(webhook("acme", "orders", &stack.receiver.url("/orders")))
        .await;

    // Queued before the pause: the sender is not running yet.
    let queued = event("acme", "order_placed", json!({}));
    stack.publish(&queued).await;
    wait_until("the first delivery is queued", WAIT, || async {
        stack.deliveries_of("acme", &queued.id).await.len() == 1
    })
    .await;
    let (status, paused) = post(&base, "/v1/tenants/acme/webhooks/orders/pause").await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert!(paused["paused_at"].is_string(), "{paused}");

    // One at a time, so that each is older than the next: events routed in the same
    // moment (in batches the router handles at once) have no order between them.
    let mut ids = vec![queued.id.to_string()];
    for _ in 0..3 {
        let e = event("acme", "order_placed", json!({}));
        stack.publish(&e).await;
        wait_until("the event's delivery is created", WAIT, || async {
            stack.deliveries_of("acme", &e.id).await.len() == 1
        })
        .await;
        ids.push(e.id.to_string());
    }
    stack.start_sender().await;
    wait_until("all four deliveries are held", WAIT, || async {
        let s = statuses(&stack, &ids).await;
        s.len() == 4 && s.iter().all(|s| *s == DeliveryStatus::Held)
    })
    .await;
    assert!(
        stack.metrics.outcomes(outcome::HELD) >= 1,
        "the queued one was held by the sender"
    );
    for id in &ids {
        let d = &stack.deliveries_of("acme", id).await[0];
        assert_eq!(d.attempts, 0, "held, not attempted");
    }
    assert!(
        stack.receiver.all().is_empty(),
        "nothing was sent while paused"
    );
    let dlq = stack.topology.dead_letter_queue();
    assert_eq!(
        stack.queue_len(&dlq).await,
        0,
        "nothing aged into the dead-letter queue"
    );
    let (_, again) = post(&base, "/v1/tenants/acme/webhooks/orders/pause").await;
    assert_eq!(
        again["paused_at"], paused["paused_at"],
        "pausing twice changes nothing"
    );

    let (status, resumed) = post(&base, "/v1/tenants/acme/webhooks/orders/resume").await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert!(resumed["webhook"]["paused_at"].is_null(), "{resumed}");
    assert_eq!(resumed["released"]["requeued"], 4, "{resumed}");
    let released: Vec<String> = resumed["released"]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["delivery_id"].as_str().unwrap().to_owned())
        .collect();
    let mut created = Vec::new();
    for id in &ids {
        created.push(stack.deliveries_of("acme", id).await[0].id.to_string());
    }
    assert_eq!(released, created, "released oldest first");
    stack.receiver.wait_for("/orders", 4, WAIT).await;
    wait_until("all four are delivered", WAIT, || async {
        statuses(&stack, &ids).await == vec![DeliveryStatus::Delivered; 4]
    })
    .await;
    let (_, twice) = post(&base, "/v1/tenants/acme/webhooks/orders/resume").await;
    assert_eq!(
        twice["released"]["requeued"], 0,
        "nothing is sent twice: {twice}"
    );
    assert_eq!(
        stack.receiver.all().len(),
        4,
        "each event reached the receiver once"
    );

    // Resumed: new events are sent at once again.
    let after = event("acme", "order_placed", json!({}));
    stack.publish(&after).await;
    let d = stack.wait_settled("acme", &after.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered);
}

async fn post_json(base: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let res = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A webhook created after its events were stored gets them by a backfill: the dry
/// run counts, the run creates and sends each once, a second run sends nothing.
#[tokio::test]
async fn backfill_sends_a_new_webhook_what_it_missed_once() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    let base = stack.serve_api(None, 1 << 20).await;
    let mut missed = Vec::new();
    for kind in ["a", "a", "b", "a"] {
        let e = event("acme", kind, json!({}));
        stack.publish(&e).await;
        missed.push(e);
    }
    wait_until("the events are stored", WAIT, || async {
        let n: i64 = stack
            .db
            .client()
            .await
            .query_one("SELECT count(*) FROM events", &[])
            .await
            .unwrap()
            .get(0);
        n == 4
    })
    .await;
    stack
        .create_webhook(webhook("acme", "late", &stack.receiver.url("/late")))
        .await;
    // One event after the webhook exists: delivered the usual way, then left alone.
    let live = event("acme", "a", json!({}));
    stack.publish(&live).await;
    stack.wait_settled("acme", &live.id, 1, WAIT).await;

    let window = json!({"since": "2000-01-01T00:00:00Z", "event_types": ["a"], "dry_run": true});
    let path = "/v1/tenants/acme/webhooks/late/backfill";
    let (status, dry) = post_json(&base, path, window.clone()).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(
        (
            &dry["scanned"],
            &dry["matched"],
            &dry["created"],
            &dry["existing"]
        ),
        (&json!(4), &json!(4), &json!(3), &json!(1)),
        "{dry}"
    );
    for e in &missed {
        assert!(
            stack.deliveries_of("acme", &e.id).await.is_empty(),
            "a dry run creates nothing"
        );
    }

    let mut run = window.clone();
    run["dry_run"] = json!(false);
    let (status, done) = post_json(&base, path, run.clone()).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(
        (&done["created"], &done["sent"]),
        (&json!(3), &json!(3)),
        "{done}"
    );
    for e in missed.iter().filter(|e| e.event_type == "a") {
        let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
        assert_eq!(d[0].status, DeliveryStatus::Delivered);
    }
    let b = &missed[2];
    assert!(
        stack.deliveries_of("acme", &b.id).await.is_empty(),
        "type b was not asked for"
    );
    stack.receiver.wait_for("/late", 4, WAIT).await;

    let (_, again) = post_json(&base, path, run).await;
    assert_eq!(
        (&again["created"], &again["existing"]),
        (&json!(0), &json!(4)),
        "{again}"
    );
    assert_eq!(stack.receiver.all().len(), 4, "nothing was sent twice");
}

/// A disabled webhook holds what it is sent instead of dropping it: enabling sends
/// it; or an operator discards it, and it is never sent.
#[tokio::test]
async fn a_disabled_webhook_holds_until_enabled_or_discarded() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    let base = stack.serve_api(None, 1 << 20).await;
    stack
        .create_webhook(webhook("acme", "orders", &stack.receiver.url("/orders")))
        .await;
    let hook = "/v1/tenants/acme/webhooks/orders";
    let (status, _) = post(&base, &format!("{hook}/disable")).await;
    assert_eq!(status, StatusCode::OK);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let e = event("acme", "order_placed", json!({}));
        stack.publish(&e).await;
        ids.push(e.id.to_string());
    }
    wait_until("both deliveries are held", WAIT, || async {
        statuses(&stack, &ids).await == vec![DeliveryStatus::Held; 2]
    })
    .await;
    assert_eq!(
        stack.queue_len(&stack.topology.dead_letter_queue()).await,
        0
    );
    let (_, counted) = post_json(
        &base,
        &format!("{hook}/discard-held"),
        json!({"dry_run": true}),
    )
    .await;
    assert_eq!(counted["discarded"], 2, "{counted}");

    let (status, enabled) = post(&base, &format!("{hook}/enable")).await;
    assert_eq!(status, StatusCode::OK, "{enabled}");
    stack.receiver.wait_for("/orders", 2, WAIT).await;
    wait_until("both are delivered", WAIT, || async {
        statuses(&stack, &ids).await == vec![DeliveryStatus::Delivered; 2]
    })
    .await;

    // Disabled again, then discarded: failed with the reason, never sent.
    post(&base, &format!("{hook}/disable")).await;
    let dropped = event("acme", "order_placed", json!({}));
    stack.publish(&dropped).await;
    wait_until("held", WAIT, || async {
        statuses(&stack, &[dropped.id.to_string()]).await == vec![DeliveryStatus::Held]
    })
    .await;
    let (_, discarded) = post_json(&base, &format!("{hook}/discard-held"), json!({})).await;
    assert_eq!(discarded["discarded"], 1, "{discarded}");
    let d = &stack.deliveries_of("acme", &dropped.id).await[0];
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!(
        d.last_error.as_deref(),
        Some("discarded by an operator while held")
    );
    post(&base, &format!("{hook}/enable")).await;
    assert_eq!(
        stack.receiver.all().len(),
        2,
        "the discarded one is never sent"
    );
}

/// A payload filter is checked when the webhook is saved (the error names the wrong
/// part) and applied by the router: only the events it admits are delivered.
#[tokio::test]
async fn a_payload_filter_is_validated_and_decides_which_events_are_delivered() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    let base = stack.serve_api(None, 1 << 20).await;
    let hooks = "/v1/tenants/acme/webhooks";
    let url = stack.receiver.url("/big");
    let bad = json!({"key": "big", "url": url,
        "filter": {"all": [{"path": "data.status", "eq": "done"}, {"path": "data.rows", "gte": "many"}]}});
    let (status, refused) = post_json(&base, hooks, bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["field"], "filter.all[1].gte", "{refused}");

    let filter =
        json!({"all": [{"path": "data.status", "eq": "done"}, {"path": "data.rows", "gte": 100}]});
    let (status, made) = post_json(
        &base,
        hooks,
        json!({"key": "big", "url": url, "filter": filter}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["filter"], filter, "shown as written");

    let small = event(
        "acme",
        "import",
        json!({"payload": {"data": {"status": "done", "rows": 5}}}),
    );
    let large = event(
        "acme",
        "import",
        json!({"payload": {"data": {"status": "done", "rows": 500}}}),
    );
    stack.publish(&small).await;
    stack.publish(&large).await;
    let d = stack.wait_settled("acme", &large.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered);
    wait_until("the small event is stored", WAIT, || async {
        let n: i64 = stack
            .db
            .client()
            .await
            .query_one(
                "SELECT count(*) FROM events WHERE id = $1",
                &[&small.id.as_str()],
            )
            .await
            .unwrap()
            .get(0);
        n == 1
    })
    .await;
    assert!(
        stack.deliveries_of("acme", &small.id).await.is_empty(),
        "the filter left the small import out"
    );
    assert_eq!(stack.receiver.all().len(), 1);

    // Any JSON value may be compared with, kept as written (a NUL, the largest double).
    let odd = json!({"any": [{"path": "a", "eq": "x\u{0}y"}, {"path": "n", "eq": 1.7976931348623157e308}]});
    let (status, made) = post_json(
        &base,
        hooks,
        json!({"key": "odd", "url": url, "filter": odd}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let shown: Value = reqwest::get(format!("{base}{hooks}/odd"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["filter"], odd, "{shown}");

    // Removed with null: every event of its types again.
    let res = reqwest::Client::new()
        .patch(format!("{base}{hooks}/big"))
        .json(&json!({"filter": null}))
        .send()
        .await
        .unwrap();
    let updated: Value = res.json().await.unwrap();
    assert!(updated["filter"].is_null(), "{updated}");
}

async fn get_json(base: &str, path: &str) -> Value {
    reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn attempts_made(stack: &TestStack, ids: &[String]) -> i32 {
    let mut n = 0;
    for id in ids {
        n += stack
            .deliveries_of("acme", id)
            .await
            .iter()
            .map(|d| d.attempts)
            .sum::<i32>();
    }
    n
}

/// A webhook that keeps failing is tripped: what it gets meanwhile is held, with no
/// attempt and no dead letter; one probe per cool-down is its only traffic; a probe
/// that succeeds closes the breaker and every held delivery is sent once.
#[tokio::test]
async fn a_failing_webhook_trips_its_breaker_and_a_successful_probe_closes_it() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    let mut config = stack.sender_config();
    config.breaker = hookrelay_sender::BreakerConfig {
        failures: Some(3),
        hanging_after: None,
        cooldown: Duration::from_secs(2),
    };
    stack.start_sender_with(config).await;
    let base = stack.serve_api(None, 1 << 20).await;
    stack.receiver.respond("/flaky", Behaviour::Status(503));
    let mut flaky = webhook("acme", "flaky", &stack.receiver.url("/flaky"));
    flaky.retry_on = RetryPolicy::parse(&["timeout", "5xx"]).unwrap();
    stack.create_webhook(flaky).await;
    let hook = "/v1/tenants/acme/webhooks/flaky";

    let mut ids = Vec::new();
    for _ in 0..3 {
        let e = event("acme", "order_placed", json!({}));
        stack.publish(&e).await;
        ids.push(e.id.to_string());
    }
    wait_until("the breaker opens", WAIT, || async {
        get_json(&base, hook).await["breaker"].is_object()
    })
    .await;
    let tripped = get_json(&base, hook).await;
    assert_eq!(
        tripped["breaker"]["reason"], "3 failed attempts in a row (last: HTTP 503)",
        "{tripped}"
    );
    // The gauge comes from the webhook's row, whichever sender tripped it.
    let (trigger, stop) = hookrelay_model::shutdown::channel();
    let (pool, metrics) = (stack.db.pool.clone(), std::sync::Arc::clone(&stack.metrics));
    let sampler = hookrelay_metrics::PendingSampler {
        every: Duration::from_millis(100),
        lookback: Duration::from_secs(3600),
    };
    let sampling = tokio::spawn(async move {
        hookrelay_metrics::sample_pending(&pool, &metrics, sampler, stop).await;
    });
    wait_until("the breaker gauge shows it open", WAIT, || async {
        stack.metrics.breaker_open("acme", "flaky") == 1
    })
    .await;
    assert!(tripped["breaker"]["next_probe_at"].is_string(), "{tripped}");

    // While open: new events are held by the router, the retries of the failed ones
    // by the sender; nothing more is attempted.
    for _ in 0..3 {
        let e = event("acme", "order_placed", json!({}));
        stack.publish(&e).await;
        ids.push(e.id.to_string());
    }
    wait_until("all six deliveries are held", WAIT, || async {
        statuses(&stack, &ids).await == vec![DeliveryStatus::Held; 6]
    })
    .await;
    assert_eq!(
        attempts_made(&stack, &ids).await,
        3,
        "only the first three attempts"
    );
    assert_eq!(
        stack.queue_len(&stack.topology.dead_letter_queue()).await,
        0
    );

    // The first probe fails: one more request, and the breaker stays open.
    stack.receiver.wait_for("/flaky", 4, WAIT).await;
    wait_until("the failed probe is recorded", WAIT, || async {
        attempts_made(&stack, &ids).await == 4
    })
    .await;
    let still = get_json(&base, hook).await;
    assert!(
        still["breaker"].is_object(),
        "a failed probe keeps it open: {still}"
    );
    assert_eq!(
        stack.receiver.received_on("/flaky").len(),
        4,
        "one probe per cool-down, nothing else"
    );

    // The next probe succeeds: closed, and everything held is delivered once.
    stack.receiver.respond("/flaky", Behaviour::Status(200));
    wait_until("all six are delivered", Duration::from_secs(30), || async {
        statuses(&stack, &ids).await == vec![DeliveryStatus::Delivered; 6]
    })
    .await;
    let closed = get_json(&base, hook).await;
    assert!(closed["breaker"].is_null(), "{closed}");
    wait_until("the breaker gauge shows it closed", WAIT, || async {
        stack.metrics.breaker_open("acme", "flaky") == 0
    })
    .await;
    trigger.trigger();
    sampling.await.unwrap();
    let received = stack.receiver.received_on("/flaky");
    let mut delivered: Vec<String> = received
        .iter()
        .skip(4)
        .map(|r| r.header("x-hookrelay-event-id").unwrap_or_default())
        .collect();
    delivered.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(
        delivered, expected,
        "each event delivered once after the close"
    );
    assert!(stack.metrics.outcomes(outcome::HELD) >= 1);
}

/// A hanging webhook is tripped once its cap of requests has hung for the limit: its
/// further deliveries are held (no slot, no delay-queue cycling) while a healthy
/// webhook of the same tenant keeps being delivered.
#[tokio::test]
async fn a_hanging_webhook_trips_its_breaker_and_its_deliveries_wait_held() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    let mut config = trips_hanging(&stack);
    config.per_webhook_concurrency = 2;
    stack.start_sender_with(config).await;
    let base = stack.serve_api(None, 1 << 20).await;
    stack.receiver.respond("/hang", Behaviour::Hang);
    let mut hanging = webhook("acme", "hanging", &stack.receiver.url("/hang"));
    hanging.event_types = vec!["to_hanging".into()];
    stack.create_webhook(hanging).await;
    let mut healthy = webhook("acme", "healthy", &stack.receiver.url("/ok"));
    healthy.event_types = vec!["to_healthy".into()];
    stack.create_webhook(healthy).await;

    let mut ids = Vec::new();
    for _ in 0..6 {
        let e = event("acme", "to_hanging", json!({}));
        stack.publish(&e).await;
        ids.push(e.id.to_string());
    }
    let reason = tripped_reason(&base, "hanging").await;
    assert!(
        reason.starts_with("hanging: no answer for")
            && reason.ends_with("with 2 requests in flight"),
        "{reason}"
    );
    // The two hung requests stay in flight; the other four are held, unattempted.
    wait_until("the four not in flight are held", WAIT, || async {
        let s = statuses(&stack, &ids).await;
        s.iter().filter(|s| **s == DeliveryStatus::Held).count() == 4
    })
    .await;
    assert_eq!(stack.receiver.received_on("/hang").len(), 2);

    let mut healthy_ids = Vec::new();
    for _ in 0..5 {
        let e = event("acme", "to_healthy", json!({}));
        stack.publish(&e).await;
        healthy_ids.push(e.id.to_string());
    }
    stack.receiver.wait_for("/ok", 5, WAIT).await;
    let late = event("acme", "to_hanging", json!({}));
    stack.publish(&late).await;
    wait_until("a new event for it is held by the router", WAIT, || async {
        statuses(&stack, &[late.id.to_string()]).await == vec![DeliveryStatus::Held]
    })
    .await;
    assert_eq!(
        stack.receiver.received_on("/hang").len(),
        2,
        "nothing more was sent to the hanging endpoint"
    );
}

/// The breaker of a webhook must never open while this runs; its state otherwise.
async fn never_tripped(base: &str, key: &str) -> Value {
    let hook = get_json(base, &format!("/v1/tenants/acme/webhooks/{key}")).await;
    assert!(
        hook["breaker"].is_null(),
        "a busy but prompt endpoint was tripped: {}",
        hook["breaker"]
    );
    hook
}

/// A webhook capped at one request in flight across two senders, whose endpoint
/// answers every POST in 0.3 s, gets 20 events at once: deliveries wait for the
/// webhook's slot (longer than the hanging limit), which is throttling, not hanging.
/// Everything is delivered and the breaker never opens (it tripped as "hanging"
/// within seconds when the wait for a slot counted as a request in flight).
#[tokio::test]
async fn a_busy_endpoint_behind_its_cap_across_two_senders_is_throttled_never_tripped() {
    let mut stack = TestStack::new().await;
    stack
        .receiver
        .respond("/busy", Behaviour::Slow(Duration::from_millis(300), 200));
    let mut busy = webhook("acme", "busy", &stack.receiver.url("/busy"));
    busy.max_in_flight = Some(1);
    stack.create_webhook(busy).await;
    let base = stack.serve_api(None, 1 << 20).await;
    stack.start_router().await;
    let mut config = stack.sender_config();
    config.http_timeout = Duration::from_secs(10);
    config.breaker = hookrelay_sender::BreakerConfig {
        failures: None,
        hanging_after: Some(Duration::from_secs(1)),
        cooldown: Duration::from_secs(600),
    };
    stack.start_sender_with(config.clone()).await;
    stack.start_sender_with(config).await;

    let mut ids = Vec::new();
    for _ in 0..20 {
        let e = event("acme", "order_placed", json!({}));
        stack.publish(&e).await;
        ids.push(e.id.to_string());
    }
    wait_until("all 20 are delivered", Duration::from_secs(90), || async {
        never_tripped(&base, "busy").await;
        let s = statuses(&stack, &ids).await;
        s.len() == 20 && s.iter().all(|s| *s == DeliveryStatus::Delivered)
    })
    .await;
    never_tripped(&base, "busy").await;
    assert_eq!(stack.metrics.outcomes(outcome::HELD), 0);
    assert_eq!(stack.receiver.received_on("/busy").len(), 20);
}

/// Without a cap of its own, a prompt endpoint given far more deliveries than the
/// sender's per-webhook concurrency: the ones waiting for a slot past the sender's
/// patience are deferred, and the breaker stays closed.
#[tokio::test]
async fn deliveries_queueing_for_a_prompt_endpoint_never_trip_it() {
    let mut stack = TestStack::new().await;
    stack
        .receiver
        .respond("/queue", Behaviour::Slow(Duration::from_millis(300), 200));
    stack
        .create_webhook(webhook("acme", "queue", &stack.receiver.url("/queue")))
        .await;
    let base = stack.serve_api(None, 1 << 20).await;
    stack.start_router().await;
    let mut config = stack.sender_config();
    config.http_timeout = Duration::from_secs(10);
    config.per_webhook_concurrency = 4;
    config.breaker = hookrelay_sender::BreakerConfig {
        failures: None,
        hanging_after: Some(Duration::from_secs(1)),
        cooldown: Duration::from_secs(600),
    };
    stack.start_sender_with(config).await;

    let mut ids = Vec::new();
    for _ in 0..60 {
        let e = event("acme", "order_placed", json!({}));
        stack.publish(&e).await;
        ids.push(e.id.to_string());
    }
    wait_until("all 60 are delivered", Duration::from_secs(90), || async {
        never_tripped(&base, "queue").await;
        let s = statuses(&stack, &ids).await;
        s.len() == 60 && s.iter().all(|s| *s == DeliveryStatus::Delivered)
    })
    .await;
    never_tripped(&base, "queue").await;
    assert!(
        stack.metrics.outcomes(outcome::DEFERRED) > 0,
        "the ones that waited too long were deferred"
    );
}

/// A truly hanging endpoint behind a cap of one, across two senders, still trips:
/// the reason names the one request really in flight, not a concurrency setting,
/// and nothing more is sent to it.
#[tokio::test]
async fn a_hanging_endpoint_behind_a_cap_of_one_trips_naming_its_one_request() {
    let mut stack = TestStack::new().await;
    stack.receiver.respond("/hang", Behaviour::Hang);
    let mut hanging = webhook("acme", "hanging", &stack.receiver.url("/hang"));
    hanging.max_in_flight = Some(1);
    stack.create_webhook(hanging).await;
    let base = stack.serve_api(None, 1 << 20).await;
    stack.start_router().await;
    let config = trips_hanging(&stack);
    stack.start_sender_with(config.clone()).await;
    stack.start_sender_with(config).await;

    let mut ids = Vec::new();
    for _ in 0..4 {
        let e = event("acme", "order_placed", json!({}));
        stack.publish(&e).await;
        ids.push(e.id.to_string());
    }
    let reason = tripped_reason(&base, "hanging").await;
    assert!(
        reason.starts_with("hanging: no answer for")
            && reason.ends_with("with 1 request in flight"),
        "{reason}"
    );
    wait_until("the three not in flight are held", WAIT, || async {
        let s = statuses(&stack, &ids).await;
        s.iter().filter(|s| **s == DeliveryStatus::Held).count() == 3
    })
    .await;
    assert_eq!(stack.receiver.received_on("/hang").len(), 1);
}

/// A sender that trips a webhook hanging for 0.5 s and does not probe it again
/// while a test runs.
fn trips_hanging(stack: &TestStack) -> hookrelay_sender::SenderConfig {
    let mut config = stack.sender_config();
    config.http_timeout = Duration::from_secs(30);
    config.slow_after = Duration::from_millis(100);
    config.defer_delay = Duration::from_millis(200);
    config.breaker = hookrelay_sender::BreakerConfig {
        failures: None,
        hanging_after: Some(Duration::from_millis(500)),
        cooldown: Duration::from_secs(600),
    };
    config
}

/// Waits for the webhook's breaker to open; its reason.
async fn tripped_reason(base: &str, key: &str) -> String {
    let path = format!("/v1/tenants/acme/webhooks/{key}");
    wait_until("the breaker opens", WAIT, || async {
        get_json(base, &path).await["breaker"].is_object()
    })
    .await;
    let tripped = get_json(base, &path).await;
    tripped["breaker"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
