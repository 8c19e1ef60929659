//! Dead-letter tools on a real queue: listing changes nothing, replay gives each
//! message a fresh round and empties the queue, a replay killed midway loses nothing,
//! purge removes only what matches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hookrelay_admin::dlq::{self, Dlq, Filter, ReplayOptions};
use hookrelay_amqp::{self as amqp, ConnectRetry};
use hookrelay_store::deliveries::DeliveryStatus;
use hookrelay_tests::stack::{event, webhook};
use hookrelay_tests::{AMQP_URL, Behaviour, TestStack, wait_until};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// A running stack whose `/down` webhook has failed `n` events, all dead-lettered.
async fn with_dead_letters(n: usize) -> (TestStack, Vec<String>) {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    stack.receiver.respond("/down", Behaviour::Status(500));
    stack
        .create_webhook(webhook("acme", "down", &stack.receiver.url("/down")))
        .await;
    let mut ids = Vec::new();
    for _ in 0..n {
        let e = event("acme", "file_uploaded", json!({}));
        stack.publish(&e).await;
        ids.push(e.id.to_string());
    }
    for id in &ids {
        stack.wait_settled("acme", id, 1, WAIT).await;
    }
    let dlq = stack.topology.dead_letter_queue();
    stack.wait_queue_len(&dlq, n as u32, WAIT).await;
    (stack, ids)
}

async fn connect() -> lapin::Connection {
    amqp::connect(AMQP_URL, "dlq-test", ConnectRetry::default())
        .await
        .unwrap()
}

/// The dead-letter tools on this stack's topology and database.
fn tools<'a>(stack: &'a TestStack, connection: &'a lapin::Connection) -> Dlq<'a> {
    Dlq {
        connection,
        topology: &stack.topology,
        pool: &stack.db.pool,
    }
}

fn quiet() -> &'static (dyn Fn(u64, u64) + Send + Sync) {
    &|_, _| {}
}

/// A replay of every message, quietly, with the stack's topology and database.
async fn replay_all(
    stack: &TestStack,
    connection: &lapin::Connection,
    dry_run: bool,
) -> dlq::Summary {
    let dlq = tools(stack, connection);
    let options = ReplayOptions {
        dry_run,
        rate: None,
        progress: quiet(),
    };
    dlq::replay(&dlq, &Filter::default(), &options)
        .await
        .unwrap()
}

#[tokio::test]
async fn listing_leaves_the_queue_unchanged_in_count_and_order() {
    let (stack, ids) = with_dead_letters(5).await;
    let connection = connect().await;
    let dlq = tools(&stack, &connection);
    let first = dlq::list(&dlq, &Filter::default(), 100).await.unwrap();
    let order: Vec<_> = first.iter().map(|m| m.event_id.clone().unwrap()).collect();
    let mut sorted = order.clone();
    sorted.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(sorted, expected, "every dead letter listed once");
    assert!(
        first
            .iter()
            .all(|m| m.reason.as_deref() == Some("not retryable"))
    );
    assert!(
        first
            .iter()
            .all(|m| m.last_status.as_deref() == Some("500"))
    );
    assert!(first.iter().all(|m| m.tenant.as_deref() == Some("acme")));

    let queue = stack.topology.dead_letter_queue();
    stack.wait_queue_len(&queue, 5, WAIT).await;
    for _ in 0..3 {
        let again = dlq::list(&dlq, &Filter::default(), 100).await.unwrap();
        let again: Vec<_> = again.iter().map(|m| m.event_id.clone().unwrap()).collect();
        assert_eq!(again, order, "same messages, same order");
    }
    stack.wait_queue_len(&queue, 5, WAIT).await;

    let filtered = Filter {
        ids: vec![order[2].clone()],
        ..Filter::default()
    };
    let one = dlq::list(&dlq, &filtered, 100).await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].position, 3);
    let shown = dlq::show(&dlq, &order[2]).await.unwrap();
    assert_eq!(shown.body["event_id"], order[2].as_str());
    assert!(shown.headers.contains_key("x-hookrelay-reason"));
    let none = Filter {
        tenant: Some("globex".into()),
        ..Filter::default()
    };
    assert!(dlq::list(&dlq, &none, 100).await.unwrap().is_empty());
    stack.wait_queue_len(&queue, 5, WAIT).await;
}

#[tokio::test]
async fn replay_gives_each_message_a_new_round_and_empties_the_queue() {
    let (stack, ids) = with_dead_letters(6).await;
    stack.receiver.respond("/down", Behaviour::Status(200));
    let connection = connect().await;
    let summary = replay_all(&stack, &connection, true).await;
    assert_eq!((summary.matched, summary.done), (6, 0));
    let queue = stack.topology.dead_letter_queue();
    stack.wait_queue_len(&queue, 6, WAIT).await;

    let summary = replay_all(&stack, &connection, false).await;
    assert_eq!((summary.matched, summary.done), (6, 6), "{summary:?}");
    stack.wait_queue_len(&queue, 0, WAIT).await;
    stack.receiver.wait_for("/down", 12, WAIT).await;
    for id in &ids {
        let d = stack.wait_settled("acme", id, 1, WAIT).await;
        assert_eq!(d[0].status, DeliveryStatus::Delivered);
        let attempts = stack.attempts_of(d[0].id).await;
        let numbers: Vec<i32> = attempts.iter().map(|a| a.attempt).collect();
        assert_eq!(numbers, [1, 2], "the replay's attempt follows the first");
    }
    // Replaying an empty queue is a no-op, not an error.
    let summary = replay_all(&stack, &connection, false).await;
    assert_eq!(summary.scanned, 0);
}

/// A replay whose process dies midway: its connection drops with messages taken.
/// Running it again finishes the job; each delivery is sent once, none is lost.
#[tokio::test]
async fn a_replay_killed_halfway_loses_nothing_and_doubles_nothing() {
    let (stack, ids) = with_dead_letters(8).await;
    stack.receiver.respond("/down", Behaviour::Status(200));
    let topology = stack.topology.clone();
    let pool = stack.db.pool.clone();
    let seen = Arc::new(AtomicU64::new(0));
    let progress_seen = Arc::clone(&seen);
    let connection = Arc::new(connect().await);
    let task_connection = Arc::clone(&connection);
    let run = tokio::spawn(async move {
        let dlq = Dlq {
            connection: &task_connection,
            topology: &topology,
            pool: &pool,
        };
        let progress = move |scanned: u64, _total: u64| {
            progress_seen.store(scanned, Ordering::SeqCst);
        };
        let options = ReplayOptions {
            dry_run: false,
            rate: Some(5.0),
            progress: &progress,
        };
        let _ = dlq::replay(&dlq, &Filter::default(), &options).await;
    });
    wait_until("the replay is halfway", WAIT, || async {
        seen.load(Ordering::SeqCst) >= 4
    })
    .await;
    // The process dies: its work stops and its connection drops with messages taken.
    run.abort();
    let _ = run.await;
    connection.close(320, "killed".into()).await.unwrap();
    let queue = stack.topology.dead_letter_queue();
    let left = stack.queue_len(&queue).await;
    assert!((1..8).contains(&left), "stopped midway: {left} left");

    // The operator runs it again until the queue is empty.
    let connection = connect().await;
    let dlq = tools(&stack, &connection);
    let options = ReplayOptions {
        dry_run: false,
        rate: None,
        progress: quiet(),
    };
    wait_until("replays empty the dead-letter queue", WAIT, || async {
        dlq::replay(&dlq, &Filter::default(), &options)
            .await
            .unwrap();
        stack.queue_len(&queue).await == 0
    })
    .await;
    for id in &ids {
        let d = stack.wait_settled("acme", id, 1, WAIT).await;
        assert_eq!(d[0].status, DeliveryStatus::Delivered, "{id}");
    }
    // 8 failed first attempts, then exactly one successful send per delivery.
    let received = stack.receiver.wait_for("/down", 16, WAIT).await;
    let mut per_delivery = std::collections::HashMap::<String, usize>::new();
    for r in &received[8..] {
        *per_delivery
            .entry(r.header("webhook-id").unwrap())
            .or_default() += 1;
    }
    assert_eq!(per_delivery.len(), 8);
    assert!(per_delivery.values().all(|n| *n == 1), "{per_delivery:?}");
}

#[tokio::test]
async fn purge_removes_only_what_matches() {
    let (stack, ids) = with_dead_letters(4).await;
    let connection = connect().await;
    let dlq = tools(&stack, &connection);
    let two = Filter {
        ids: ids[..2].to_vec(),
        ..Filter::default()
    };
    let dry = dlq::purge(&dlq, &two, true).await.unwrap();
    assert_eq!((dry.matched, dry.done), (2, 0));
    let done = dlq::purge(&dlq, &two, false).await.unwrap();
    assert_eq!((done.matched, done.done), (2, 2));
    let queue = stack.topology.dead_letter_queue();
    stack.wait_queue_len(&queue, 2, WAIT).await;
    let left: Vec<_> = dlq::list(&dlq, &Filter::default(), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.event_id.unwrap())
        .collect();
    let mut expected = ids[2..].to_vec();
    expected.sort();
    let mut left_sorted = left.clone();
    left_sorted.sort();
    assert_eq!(left_sorted, expected);
}

/// A delivery whose message the broker dead-lettered itself (its delivery limit
/// reached: no reason of ours, the row still pending) is sent again by a replay, not
/// taken for one in flight and dropped.
#[tokio::test]
async fn a_delivery_the_broker_dead_lettered_is_replayed() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack
        .create_webhook(webhook("acme", "later", &stack.receiver.url("/later")))
        .await;
    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    // No sender yet: the delivery is committed, published and waiting.
    let deliveries = stack.topology.deliveries_queue();
    stack.wait_queue_len(&deliveries, 1, WAIT).await;
    let waiting = stack.drain_queue(&deliveries).await;
    assert_eq!(waiting.len(), 1);
    // What the broker does at the delivery limit: the message as it was, to the
    // dead-letter exchange, with only its own x-death headers.
    let properties = waiting[0].properties.clone();
    amqp::publish_confirmed(
        &stack.channel,
        &stack.topology.dead_letter_exchange(),
        "",
        &waiting[0].body,
        properties,
    )
    .await
    .unwrap();
    let queue = stack.topology.dead_letter_queue();
    stack.wait_queue_len(&queue, 1, WAIT).await;
    assert_eq!(
        stack.deliveries_of("acme", &e.id).await[0].status,
        DeliveryStatus::Pending
    );

    stack.start_sender().await;
    let summary = replay_all(&stack, &connect().await, false).await;
    assert_eq!((summary.matched, summary.done), (1, 1), "{summary:?}");
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered);
    assert_eq!(stack.receiver.received_on("/later").len(), 1);
    stack.wait_queue_len(&queue, 0, WAIT).await;
}

#[tokio::test]
async fn a_batch_message_the_broker_dead_lettered_is_replayed_whole() {
    let mut stack = TestStack::new().await;
    stack
        .create_webhook(webhook("acme", "later", &stack.receiver.url("/later")))
        .await;
    let events: Vec<_> = (0..5)
        .map(|_| event("acme", "file_uploaded", json!({})))
        .collect();
    // Queued before a router runs, the five go in one message.
    let waiting = stack.routed_together(&events).await;
    assert_eq!(waiting.len(), 1);
    // The broker at the delivery limit: the message as it was, to the dead-letter
    // exchange, with only its own x-death headers.
    amqp::publish_confirmed(
        &stack.channel,
        &stack.topology.dead_letter_exchange(),
        "",
        &waiting[0].body,
        waiting[0].properties.clone(),
    )
    .await
    .unwrap();
    let queue = stack.topology.dead_letter_queue();
    stack.wait_queue_len(&queue, 1, WAIT).await;

    stack.start_sender().await;
    let summary = replay_all(&stack, &connect().await, false).await;
    assert_eq!((summary.matched, summary.done), (1, 1), "{summary:?}");
    for e in &events {
        let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
        assert_eq!(d[0].status, DeliveryStatus::Delivered, "{:?}", d[0]);
    }
    assert_eq!(stack.receiver.received_on("/later").len(), 5);
    stack.wait_queue_len(&queue, 0, WAIT).await;
}

/// The same tools over the admin API: list, show (404 for an unknown id), a purge
/// that must be confirmed, a dry run that changes nothing, a replay that empties
/// the queue.
#[tokio::test]
async fn the_admin_api_lists_shows_replays_and_purges_dead_letters() {
    let (stack, ids) = with_dead_letters(3).await;
    let base = stack.serve_api(None, 1 << 20).await;
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        let mut request = http.request(method, format!("{base}{path}"));
        if let Some(b) = body {
            request = request.json(&b);
        }
        async move {
            let res = request.send().await.unwrap();
            let status = res.status().as_u16();
            (
                status,
                res.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let queue = stack.topology.dead_letter_queue();

    let (status, list) = call(
        reqwest::Method::GET,
        "/v1/dead-letter?reason=not%20retryable",
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"].as_array().unwrap().len(), 3, "{list}");
    let (status, one) = call(
        reqwest::Method::GET,
        &format!("/v1/dead-letter/{}", ids[1]),
        None,
    )
    .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["event_id"], ids[1].as_str());
    assert_eq!(one["headers"]["x-hookrelay-reason"], "not retryable");
    let (status, missing) = call(reqwest::Method::GET, "/v1/dead-letter/no-such-id", None).await;
    assert_eq!(status, 404, "{missing}");

    let (status, refused) = call(
        reqwest::Method::POST,
        "/v1/dead-letter/purge",
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, refused["field"].as_str()),
        (400, Some("confirm")),
        "{refused}"
    );
    // Rates no pause fits are refused, not a panicking handler.
    for rate in [json!(5e-324), json!(1e300), json!(0), json!(-1)] {
        let (status, refused) = call(
            reqwest::Method::POST,
            "/v1/dead-letter/replay",
            Some(json!({"rate": rate})),
        )
        .await;
        assert_eq!(
            (status, refused["field"].as_str()),
            (400, Some("rate")),
            "rate {rate}: {refused}"
        );
    }
    let (status, dry) = call(
        reqwest::Method::POST,
        "/v1/dead-letter/replay",
        Some(json!({"dry_run": true})),
    )
    .await;
    assert_eq!(
        (status, &dry["matched"], &dry["done"]),
        (200, &json!(3), &json!(0)),
        "{dry}"
    );
    stack.wait_queue_len(&queue, 3, WAIT).await;

    let (status, purged) = call(
        reqwest::Method::POST,
        "/v1/dead-letter/purge",
        Some(json!({"ids": [ids[0]], "confirm": true})),
    )
    .await;
    assert_eq!((status, &purged["done"]), (200, &json!(1)), "{purged}");
    stack.receiver.respond("/down", Behaviour::Status(200));
    let (status, replayed) = call(
        reqwest::Method::POST,
        "/v1/dead-letter/replay",
        Some(json!({})),
    )
    .await;
    assert_eq!((status, &replayed["done"]), (200, &json!(2)), "{replayed}");
    stack.wait_queue_len(&queue, 0, WAIT).await;
    for id in &ids[1..] {
        wait_until("the replayed delivery is delivered", WAIT, || async {
            stack.deliveries_of("acme", id).await[0].status == DeliveryStatus::Delivered
        })
        .await;
    }
    assert_eq!(
        stack.deliveries_of("acme", &ids[0]).await[0].status,
        DeliveryStatus::Failed,
        "the purged one stays failed"
    );
}

/// A publisher cannot steer the dead-letter tools: an invalid event whose body is a
/// delivery message naming another tenant's delivery, with `x-hookrelay-*` headers
/// claiming that delivery, is listed as the event it is, and replaying everything
/// leaves the other tenant's delivery alone.
#[tokio::test]
async fn an_upstream_cannot_make_a_dead_letter_pass_for_another_tenants_delivery() {
    use hookrelay_model::wire::{self, DeliveryMessage};
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    stack
        .create_webhook(webhook("victim", "hook", &stack.receiver.url("/victim")))
        .await;
    let e = event("victim", "file_uploaded", json!({}));
    stack.publish(&e).await;
    let theirs = stack.wait_settled("victim", &e.id, 1, WAIT).await[0].clone();
    assert_eq!(theirs.status, DeliveryStatus::Delivered);

    let forged = DeliveryMessage {
        delivery_id: theirs.id,
        tenant: "victim".into(),
        event_id: e.id.to_string(),
        webhook_id: theirs.webhook_id,
        attempt: 1,
        attempts_before: 0,
        probe: false,
        rate_counted: false,
    };
    let headers = amqp::Headers::new()
        .text(wire::HEADER_TENANT, "victim")
        .text(wire::HEADER_DELIVERY_ID, theirs.id.to_string())
        .text(wire::HEADER_EVENT_ID, e.id.clone())
        .text(wire::HEADER_SOURCE_QUEUE, stack.topology.deliveries_queue())
        .text(wire::HEADER_REASON, "retries exhausted")
        .text("X-HookRelay-Tenant", "victim")
        .into_table();
    amqp::publish_confirmed(
        &stack.channel,
        &stack.topology.events_exchange(),
        "attacker.file_uploaded",
        &forged.to_json(),
        amqp::persistent("forged", headers).unwrap(),
    )
    .await
    .unwrap();
    let queue = stack.topology.dead_letter_queue();
    stack.wait_queue_len(&queue, 1, WAIT).await;

    let connection = connect().await;
    let dlq = tools(&stack, &connection);
    let listed = dlq::list(&dlq, &Filter::default(), 10).await.unwrap();
    let [letter] = listed.as_slice() else {
        panic!("one dead letter expected: {listed:?}");
    };
    assert_eq!(letter.kind, dlq::Kind::Event, "{letter:?}");
    assert_eq!(letter.reason.as_deref(), Some("invalid event"));
    // The body's own `tenant` is an event's claim like any other event's; what must
    // not happen is that it passes for the victim's delivery.
    assert_eq!(letter.delivery_id, None, "{letter:?}");
    assert_eq!(letter.webhook_id, None, "{letter:?}");
    assert!(
        !letter
            .headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case(wire::HEADER_TENANT)
                && letter.headers[k] == json!("victim")),
        "the publisher's own x-hookrelay-* headers are dropped: {:?}",
        letter.headers
    );

    replay_all(&stack, &connection, false).await;
    let after = stack.deliveries_of("victim", &e.id).await;
    assert_eq!(after[0].status, DeliveryStatus::Delivered, "{after:?}");
    assert_eq!(after[0].attempts, 1, "{after:?}");
    assert_eq!(stack.attempts_of(theirs.id).await.len(), 1);
}

/// An event over the size limit is dead-lettered as a 16 KiB sample that says how
/// big it was, and the tools show it as cut.
#[tokio::test]
async fn an_oversized_event_is_dead_lettered_as_a_bounded_sample() {
    let mut stack = TestStack::new().await;
    let mut config = stack.router_config();
    config.max_event_bytes = 64 * 1024;
    stack.start_router_with(config).await;
    let id = "huge-event-1";
    let mut body =
        format!(r#"{{"id": "{id}", "tenant": "acme", "type": "x", "padding": ""#).into_bytes();
    body.resize(3 * 1024 * 1024, b'x');
    body.extend_from_slice(b"\"}");
    stack.publish_raw("acme.x", &body).await;
    let queue = stack.topology.dead_letter_queue();
    stack.wait_queue_len(&queue, 1, WAIT).await;

    let connection = connect().await;
    let dlq = tools(&stack, &connection);
    let listed = dlq::list(&dlq, &Filter::default(), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    let m = &listed[0];
    assert_eq!(m.reason.as_deref(), Some("invalid event"));
    assert!(
        m.error.as_deref().unwrap().contains("over the limit"),
        "{m:?}"
    );
    assert_eq!(m.body_bytes, body.len() as u64);
    assert!(m.body_truncated);
    let sample = m.body.as_str().unwrap();
    assert_eq!(
        sample.len(),
        hookrelay_model::wire::DEAD_LETTER_SAMPLE_BYTES
    );
    assert!(
        sample.contains(id),
        "the sample names the event: {}",
        &sample[..80]
    );

    let letters = stack.dead_letters(1, WAIT).await;
    assert_eq!(
        letters[0].body.len(),
        hookrelay_model::wire::DEAD_LETTER_SAMPLE_BYTES,
        "the queue holds the sample, not 3 MiB"
    );
}

/// However large the dead letters, one listing answers with bodies cut to 64 KiB and
/// at most about 16 MiB in all, whatever its `limit`.
#[tokio::test]
async fn a_listing_is_bounded_in_bytes() {
    let stack = TestStack::new().await;
    let body = vec![b'y'; 200 * 1024];
    let headers = amqp::Headers::new()
        .text("x-hookrelay-source-queue", stack.topology.router_queue())
        .into_table();
    for i in 0..300 {
        amqp::publish_confirmed(
            &stack.channel,
            &stack.topology.dead_letter_exchange(),
            "acme.x",
            &body,
            amqp::persistent(&format!("m-{i}"), headers.clone()).unwrap(),
        )
        .await
        .unwrap();
    }
    let connection = connect().await;
    let dlq = tools(&stack, &connection);
    let listed = dlq::list(&dlq, &Filter::default(), 500).await.unwrap();
    let json = serde_json::to_vec(&listed).unwrap();
    assert!(
        json.len() <= dlq::MAX_LISTING_BYTES + 2 * dlq::MAX_SHOWN_BODY_BYTES,
        "{} bytes",
        json.len()
    );
    assert!(
        listed.len() >= 200 && listed.len() < 300,
        "stops at the byte bound: {} listed",
        listed.len()
    );
    assert!(
        listed
            .iter()
            .all(|m| m.body_truncated && m.body_bytes == 200 * 1024)
    );
    assert_eq!(
        listed[0].body.as_str().unwrap().len(),
        dlq::MAX_SHOWN_BODY_BYTES
    );
    stack
        .wait_queue_len(&stack.topology.dead_letter_queue(), 300, WAIT)
        .await;
}

/// Operators name webhooks by key: the summary groups by tenant, webhook key and
/// reason; a filter takes the key (with its tenant), and an unknown key is an error,
/// never an empty answer.
#[tokio::test]
async fn dead_letters_are_summarized_and_filtered_by_webhook_key() {
    let (stack, _) = with_dead_letters(3).await;
    let connection = connect().await;
    let dlq = tools(&stack, &connection);
    let groups = dlq::summarize(&dlq, &Filter::default()).await.unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    let g = &groups[0];
    assert_eq!(
        (
            g.tenant.as_deref(),
            g.webhook_key.as_deref(),
            g.reason.as_deref(),
            g.count
        ),
        (Some("acme"), Some("down"), Some("not retryable"), 3)
    );
    assert!(g.oldest.is_some() && g.oldest <= g.newest, "{g:?}");

    let by_key = Filter {
        tenant: Some("acme".into()),
        webhook: Some("down".into()),
        ..Filter::default()
    };
    let options = ReplayOptions {
        dry_run: true,
        rate: None,
        progress: quiet(),
    };
    let counted = dlq::replay(&dlq, &by_key, &options).await.unwrap();
    assert_eq!(
        counted.matched, 3,
        "the key selects the webhook's dead letters"
    );
    assert_eq!(dlq::list(&dlq, &by_key, 10).await.unwrap().len(), 3);

    let keyless = Filter {
        webhook: Some("down".into()),
        ..Filter::default()
    };
    assert_eq!(
        dlq::list(&dlq, &keyless, 10).await.unwrap().len(),
        3,
        "without a tenant, a key names its webhooks in every tenant"
    );
    let unknown = Filter {
        tenant: Some("acme".into()),
        webhook: Some("nope".into()),
        ..Filter::default()
    };
    let err = dlq::replay(&dlq, &unknown, &options).await.unwrap_err();
    assert!(err.to_string().contains("`nope`"), "{err}");
    stack
        .wait_queue_len(&stack.topology.dead_letter_queue(), 3, WAIT)
        .await;
}
