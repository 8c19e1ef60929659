//! Ordered delivery per ordering key (docs/delivery-semantics.md, "Ordered
//! webhooks"): the contract (an event's `ordering_key`, a webhook's `ordered` and
//! `on_failure`) and the router's sequence per (webhook, key).

use std::collections::BTreeMap;
use std::time::Duration;

use hookrelay_model::retry::RetryPolicy;
use hookrelay_model::webhook::OnFailure;
use hookrelay_tests::db::answered_attempt;
use hookrelay_tests::receiver::{Behaviour, Received};
use hookrelay_tests::stack::{event, webhook};
use hookrelay_tests::{TestStack, wait_until};
use serde_json::{Value, json};
use time::OffsetDateTime;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn ordered_and_on_failure_are_set_shown_and_changed_and_a_wrong_one_is_named() {
    let stack = TestStack::new().await;
    let base = stack.serve_api(None, 1 << 20).await;
    let http = reqwest::Client::new();
    let hooks = format!("{base}/v1/tenants/acme/webhooks");
    let url = stack.receiver.url("/o");

    let plain: Value = http
        .post(&hooks)
        .json(&json!({"key": "plain", "url": url}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plain["ordered"], false, "{plain}");
    assert_eq!(plain["on_failure"], "skip", "{plain}");

    for (body, field) in [
        (
            json!({"key": "a", "url": url, "on_failure": "halt"}),
            "on_failure",
        ),
        (json!({"key": "a", "url": url, "ordered": "yes"}), "ordered"),
    ] {
        let res = http.post(&hooks).json(&body).send().await.unwrap();
        assert_eq!(res.status(), reqwest::StatusCode::BAD_REQUEST, "{body}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["field"], field, "{err}");
    }

    let res = http
        .post(&hooks)
        .json(&json!({"key": "a", "url": url, "ordered": true, "on_failure": "block"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["ordered"], true, "{created}");
    assert_eq!(created["on_failure"], "block", "{created}");

    let changed: Value = http
        .patch(format!("{hooks}/a"))
        .json(&json!({"on_failure": "skip"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        changed["ordered"], true,
        "a field not given is kept: {changed}"
    );
    assert_eq!(changed["on_failure"], "skip", "{changed}");
    let shown: Value = http
        .get(format!("{hooks}/a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["on_failure"], "skip", "{shown}");
    assert_eq!(shown["ordered"], true, "{shown}");
}

#[tokio::test]
async fn an_ordering_key_is_refused_naming_it_when_wrong_and_kept_when_right() {
    let stack = TestStack::new().await;
    let base = stack.serve_api(None, 1 << 20).await;
    let http = reqwest::Client::new();
    let envelope = |key: Value| {
        json!({"id": "e1", "tenant": "acme", "type": "order.created",
               "occurred_at": "2026-12-07T03:00:00Z", "payload": {}, "ordering_key": key})
    };
    for bad in [json!(""), json!("k".repeat(256)), json!("a\u{1b}b")] {
        let res = http
            .post(format!("{base}/v1/events"))
            .json(&envelope(bad.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), reqwest::StatusCode::BAD_REQUEST, "{bad}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["field"], "ordering_key", "{err}");
    }
    let res = http
        .post(format!("{base}/v1/events"))
        .json(&envelope(json!("order-42")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::ACCEPTED);
}

/// Waits until `count` (a `SELECT count(*)`) says `n`.
async fn wait_count(stack: &TestStack, what: &str, count: &str, n: usize) {
    let n = i64::try_from(n).unwrap();
    wait_until(what, WAIT, || async {
        let got: i64 = stack
            .db
            .client()
            .await
            .query_one(count, &[])
            .await
            .unwrap()
            .get(0);
        got == n
    })
    .await;
}

/// Each key's deliveries to `webhook` as (event id, seq), in seq order.
async fn sequenced(stack: &TestStack, webhook: uuid::Uuid) -> BTreeMap<String, Vec<(String, i64)>> {
    let rows = stack
        .db
        .client()
        .await
        .query(
            "SELECT ordering_key, event_id, seq FROM deliveries WHERE webhook_id = $1 \
             ORDER BY ordering_key, seq",
            &[&webhook],
        )
        .await
        .unwrap();
    let mut keys: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for row in rows {
        let key: Option<String> = row.get(0);
        let seq: Option<i64> = row.get(2);
        keys.entry(key.unwrap_or_default())
            .or_default()
            .push((row.get(1), seq.unwrap_or(0)));
    }
    keys
}

/// One router handling many small batches at once (a later batch's transaction can
/// commit before an earlier one's): every key's sequence is the publish order,
/// numbered 1, 2, 3... without gaps; an unordered webhook's deliveries, and events
/// without a key, have no sequence.
#[tokio::test]
async fn one_router_numbers_each_key_in_publish_order_across_concurrent_batches() {
    const KEYS: usize = 10;
    const PER_KEY: usize = 30;
    let mut stack = TestStack::new().await;
    let url = stack.receiver.url("/o");
    let mut ordered = webhook("acme", "ordered", &url);
    ordered.ordered = true;
    let ordered = stack.create_webhook(ordered).await;
    let unordered = stack
        .create_webhook(webhook("acme", "unordered", &url))
        .await;
    let mut config = stack.router_config();
    config.batch_size = 3;
    config.prefetch = 60;
    stack.start_router_with(config).await;

    // Interleaved: key 0's first, key 1's first, ..., key 0's second, ...; and an
    // event without a key now and then.
    let mut published: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut events = Vec::new();
    for n in 0..PER_KEY {
        for k in 0..KEYS {
            let key = format!("order-{k}");
            let e = event("acme", "order.changed", json!({"ordering_key": key}));
            published.entry(key).or_default().push(e.id.to_string());
            events.push(e);
        }
        if n % 5 == 0 {
            events.push(event("acme", "order.changed", json!({})));
        }
    }
    for chunk in events.chunks(25) {
        stack.publisher.publish_batch(chunk).await.unwrap();
    }

    let total = events.len();
    let routed = "SELECT count(*) FROM deliveries";
    wait_count(&stack, "every event routed", routed, 2 * total).await;

    let keys = sequenced(&stack, ordered.id).await;
    for (key, ids) in &published {
        let got = &keys[key];
        let seqs: Vec<i64> = got.iter().map(|(_, s)| *s).collect();
        let expected: Vec<i64> = (1..=i64::try_from(PER_KEY).unwrap()).collect();
        assert_eq!(seqs, expected, "key {key}: numbered 1.. without gaps");
        let order: Vec<&String> = got.iter().map(|(id, _)| id).collect();
        assert_eq!(
            order,
            ids.iter().collect::<Vec<_>>(),
            "key {key}: publish order"
        );
    }
    assert_eq!(
        keys[""].len(),
        total - KEYS * PER_KEY,
        "keyless: no sequence"
    );
    assert!(keys[""].iter().all(|(_, s)| *s == 0));
    let plain = sequenced(&stack, unordered.id).await;
    assert_eq!(plain.len(), 1, "an unordered webhook sequences nothing");
    assert!(plain[""].iter().all(|(_, s)| *s == 0));
    stack.stop_roles().await;
}

/// Whether the receiver answers a delivery's first attempt 503: about one in five,
/// chosen by its `webhook-id`, so the test knows which receipts failed.
fn fails_first(delivery_id: &str) -> bool {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    delivery_id.hash(&mut h);
    h.finish().is_multiple_of(5)
}

fn attempt_of(r: &Received) -> u32 {
    r.header("x-hookrelay-attempt")
        .and_then(|a| a.parse().ok())
        .unwrap_or(0)
}

/// 503 (retryable by the webhook's policy) to about 20 % of first attempts, and
/// every answer after up to 100 ms.
fn flaky(r: &Received) -> Behaviour {
    let id = r.header("webhook-id").unwrap_or_default();
    let pause = Duration::from_millis(u64::from(id.bytes().map(u32::from).sum::<u32>() % 100));
    if attempt_of(r) == 1 && fails_first(&id) {
        Behaviour::Slow(pause, 503)
    } else {
        Behaviour::Slow(pause, 200)
    }
}

/// Per key, the event ids of the first successful receipt of each event, in the
/// order received. `repeats`: whether an event may be answered 2xx more than once
/// (a sender killed after the answer, before its record, sends it again).
fn first_successes(received: &[Received], repeats: bool) -> BTreeMap<String, Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in received {
        let id = r.header("webhook-id").unwrap_or_default();
        if attempt_of(r) == 1 && fails_first(&id) {
            continue;
        }
        let body = r.json();
        let event = r.header("x-hookrelay-event-id").unwrap_or_default();
        if !seen.insert(event.clone()) {
            assert!(repeats, "{event} answered 2xx twice");
            continue;
        }
        keys.entry(body["key"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(event);
    }
    keys
}

/// Waits until every event of `published` was answered 2xx on `path`; then each key's
/// first 2xx receipts are in publish order and none was answered 2xx twice.
async fn each_key_answered_in_order(
    stack: &TestStack,
    path: &str,
    published: &BTreeMap<String, Vec<String>>,
) {
    let total: usize = published.values().map(Vec::len).sum();
    wait_until("every event answered 2xx", WAIT, || async {
        let received = stack.receiver.received_on(path);
        first_successes(&received, false)
            .values()
            .map(Vec::len)
            .sum::<usize>()
            == total
    })
    .await;
    let received = stack.receiver.received_on(path);
    assert_eq!(&first_successes(&received, false), published);
}

/// Publishes `per_key` events for each of `keys` keys, interleaved; returns each
/// key's event ids in publish order.
async fn publish_interleaved(
    stack: &TestStack,
    keys: usize,
    per_key: usize,
) -> BTreeMap<String, Vec<String>> {
    let mut published: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut events = Vec::new();
    for n in 0..per_key {
        for k in 0..keys {
            let key = format!("order-{k}");
            let mut e = event("acme", "order.changed", json!({"ordering_key": key}));
            e.payload = json!({"key": key, "n": n});
            published.entry(key).or_default().push(e.id.to_string());
            events.push(e);
        }
    }
    for chunk in events.chunks(25) {
        stack.publisher.publish_batch(chunk).await.unwrap();
    }
    published
}

/// Deliveries of a receipt that failed on purpose (a retryable 503 to a first attempt).
fn failing(received: &[Received]) -> usize {
    received
        .iter()
        .filter(|r| attempt_of(r) == 1 && fails_first(&r.header("webhook-id").unwrap_or_default()))
        .count()
}

/// What a run kills with SIGKILL a third of the way through.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kill {
    Nothing,
    ASender,
    /// The router that consumes; the other takes over.
    TheLeadingRouter,
}

/// How many consume the router queue now.
async fn router_consumers(stack: &TestStack) -> u32 {
    let queue = stack.topology.router_queue();
    hookrelay_amqp::inspect_queue(&stack.channel, &queue)
        .await
        .unwrap()
        .consumer_count()
}

/// Two routers and two senders (`hookrelay serve` processes), a receiver failing a
/// fifth of first attempts with a retryable 503 and answering within 100 ms, 50 keys x
/// 40 events published interleaved: per key, the first successful receipt of each
/// event is in publish order, none is lost, and none is answered 2xx twice unless a
/// role was killed (see `repeats` below). One router
/// consumes at a time. Fails with the sender's gate removed, the router's turn, or
/// the routers' lead.
async fn fifty_keys_through_two_routers_and_two_senders(kill: Kill) {
    const KEYS: usize = 50;
    const PER_KEY: usize = 40;
    let stack = TestStack::for_processes().await;
    stack.receiver.respond("/o", Behaviour::PerRequest(flaky));
    let mut new = webhook("acme", "ordered", &stack.receiver.url("/o"));
    new.ordered = true;
    new.retry_on = RetryPolicy::parse(&["5xx".to_owned()]).unwrap();
    stack.create_webhook(new).await;
    let binary = hookrelay_tests::hookrelay_binary();
    let start = |role| hookrelay_tests::bench::start_role(&binary, &stack, role);
    // The first router leads: it consumes before the second starts.
    let mut leading = start("router");
    wait_until("the first router consumes", WAIT, || async {
        router_consumers(&stack).await == 1
    })
    .await;
    let mut standing_by = start("router");
    let mut senders = [start("sender"), start("sender")];

    let published = publish_interleaved(&stack, KEYS, PER_KEY).await;
    let answered_2xx = || {
        let received = stack.receiver.received_on("/o");
        received.len() - failing(&received)
    };
    wait_until("a third answered", Duration::from_secs(120), || async {
        answered_2xx() >= KEYS * PER_KEY / 3
    })
    .await;
    match kill {
        Kill::Nothing => {}
        Kill::ASender => senders[0].kill_9(),
        Kill::TheLeadingRouter => leading.kill_9(),
    }
    // A killed sender may have had an answer it did not record; a killed router may
    // have published a delivery's message without acking its event, and the next
    // router sends what it finds unsent again (docs/delivery-semantics.md): either
    // may make a delivery arrive twice, never out of order.
    let repeats = kill != Kill::Nothing;
    wait_until(
        "every event answered 2xx",
        Duration::from_secs(180),
        || async {
            let received = stack.receiver.received_on("/o");
            first_successes(&received, repeats)
                .values()
                .map(Vec::len)
                .sum::<usize>()
                >= KEYS * PER_KEY
        },
    )
    .await;
    let received = stack.receiver.received_on("/o");
    assert!(failing(&received) > 0, "some first attempts failed");
    assert_eq!(first_successes(&received, repeats), published);
    assert!(standing_by.is_running(), "the second router is up");
    assert_eq!(
        router_consumers(&stack).await,
        1,
        "one router consumes at a time"
    );
}

#[tokio::test]
async fn two_routers_and_two_senders_deliver_each_key_in_order_through_retries() {
    fifty_keys_through_two_routers_and_two_senders(Kill::Nothing).await;
}

#[tokio::test]
async fn each_key_stays_in_order_when_a_sender_is_killed_mid_run() {
    fifty_keys_through_two_routers_and_two_senders(Kill::ASender).await;
}

#[tokio::test]
async fn each_key_stays_in_order_when_the_leading_router_is_killed_mid_run() {
    fifty_keys_through_two_routers_and_two_senders(Kill::TheLeadingRouter).await;
}

/// The hand-over: the sender that settles a key's delivery sends the next one itself,
/// with no message through the broker. If it dies while it sends it, the delivery is
/// not lost: once its lease is over (here 21 s: the 10 s HTTP timeout, 1 s slow-after,
/// 10 s), another sender's sweep publishes it, and the key goes on in order. Fails
/// with the sweep's look at lapsed leases removed (the delivery stays pending).
#[tokio::test]
async fn a_kept_delivery_whose_sender_dies_is_sent_after_its_lease() {
    let stack = TestStack::for_processes().await;
    stack.receiver.respond(
        "/o",
        Behaviour::Sequence(vec![
            // The first is slow, so the two after it wait for their turn.
            Behaviour::Slow(Duration::from_millis(500), 200),
            Behaviour::Hang,
            Behaviour::Status(200),
        ]),
    );
    let mut new = webhook("acme", "ordered", &stack.receiver.url("/o"));
    new.ordered = true;
    stack.create_webhook(new).await;
    let binary = hookrelay_tests::hookrelay_binary();
    let start = |role| hookrelay_tests::bench::start_role(&binary, &stack, role);
    let _router = start("router");
    wait_until("the router consumes", WAIT, || async {
        router_consumers(&stack).await == 1
    })
    .await;
    let mut first = start("sender");
    let published = publish_interleaved(&stack, 1, 3).await;
    wait_until("the second event's request hangs", WAIT, || async {
        stack.receiver.received_on("/o").len() >= 2
    })
    .await;
    first.kill_9();
    let _second = start("sender");
    wait_until("the rest answered", Duration::from_secs(90), || async {
        stack.receiver.received_on("/o").len() >= 4
    })
    .await;
    let events: Vec<String> = stack
        .receiver
        .received_on("/o")
        .iter()
        .map(|r| r.header("x-hookrelay-event-id").unwrap_or_default())
        .collect();
    let e = &published["order-0"];
    assert_eq!(
        events,
        [e[0].clone(), e[1].clone(), e[1].clone(), e[2].clone()],
        "in order, the lost one again"
    );
}

/// A kept delivery (the hand-over's) is the turn sweep's to find until a message for
/// it is out: its retry's record leaves it unpublished, due when the retry is, so a
/// sender that dies between that record and the retry's message loses nothing for
/// longer than the sweep's period. Once the message is out (marked published) the
/// sweep leaves it to the message. Failed on the first hand-over, whose record marked
/// the row published: such a delivery waited for `HOOKRELAY_RETRY_SWEEP_AFTER` (5 min).
#[tokio::test]
async fn a_kept_delivery_whose_retry_is_recorded_but_not_published_is_the_sweeps() {
    use hookrelay_store::deliveries::{DeliveryStatus, record_attempts};
    use hookrelay_store::turns::{self, Handing};

    let mut stack = TestStack::new().await;
    let mut new = webhook("acme", "ordered", &stack.receiver.url("/o"));
    new.ordered = true;
    let hook = stack.create_webhook(new).await;
    stack.start_router().await;
    publish_interleaved(&stack, 1, 2).await;
    wait_count(&stack, "both routed", "SELECT count(*) FROM deliveries", 2).await;
    stack.stop_roles().await;
    let mut db = stack.db.client().await;
    let rows = db
        .query(
            "SELECT id, seq FROM deliveries WHERE webhook_id = $1 ORDER BY seq",
            &[&hook.id],
        )
        .await
        .unwrap();
    let (first, second): (uuid::Uuid, uuid::Uuid) = (rows[0].get(0), rows[1].get(0));
    let status: String = db
        .query_one("SELECT status FROM deliveries WHERE id = $1", &[&second])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "waiting", "created waiting behind the first");
    record_attempts(
        &db,
        &[answered_attempt(
            first,
            OffsetDateTime::now_utc(),
            DeliveryStatus::Delivered,
            None,
        )],
    )
    .await
    .unwrap();
    let kept = turns::release_after(
        &mut db,
        hook.id,
        "order-0",
        1,
        Handing::Keep {
            lease: Duration::from_secs(60),
        },
    )
    .await
    .unwrap();
    assert_eq!(kept.next.as_ref().map(|n| n.delivery.id), Some(second));
    kept.commit().await.unwrap();
    assert!(
        turns::lapsed(&db, 10).await.unwrap().is_empty(),
        "within its lease"
    );

    // Its attempt failed and the retry, due a second ago, is recorded; its message
    // never went out.
    let due = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    record_attempts(
        &db,
        &[answered_attempt(
            second,
            OffsetDateTime::now_utc(),
            DeliveryStatus::Pending,
            Some(due),
        )],
    )
    .await
    .unwrap();
    assert_eq!(turns::lapsed(&db, 10).await.unwrap(), vec![second]);

    // The sweep and the sender's retry message both go for it: the one that takes
    // the row second finds it published and sends nothing (the sweep's transaction
    // is held open while the sender's waits on the row).
    let mut sweep = stack.db.client().await;
    let reopened = turns::reopen_lapsed(&mut sweep, second).await.unwrap();
    assert_eq!(reopened.next.as_ref().map(|n| n.delivery.id), Some(second));
    let mut sender = stack.db.client().await;
    let retry = tokio::spawn(async move {
        let taken = turns::take_publication(&mut sender, second).await.unwrap();
        taken.is_some()
    });
    wait_until("the retry waits on the row", WAIT, || async {
        waiting_on_a_lock(&db).await == 1
    })
    .await;
    reopened.commit().await.unwrap();
    assert!(!retry.await.unwrap(), "published by the sweep: not again");
    assert!(
        turns::lapsed(&db, 10).await.unwrap().is_empty(),
        "its message is out"
    );

    // The other way round: the sender's publication first, the sweep finds nothing.
    db.execute(
        "UPDATE deliveries SET published = false, next_attempt_at = now() - interval '1s' \
         WHERE id = $1",
        &[&second],
    )
    .await
    .unwrap();
    let mut sender = stack.db.client().await;
    let publication = turns::take_publication(&mut sender, second)
        .await
        .unwrap()
        .expect("unpublished: the sender's to publish");
    let sweep = tokio::spawn(async move {
        let mut sweep = sweep;
        let reopened = turns::reopen_lapsed(&mut sweep, second).await.unwrap();
        reopened.next.is_some()
    });
    wait_until("the sweep waits on the row", WAIT, || async {
        waiting_on_a_lock(&db).await == 1
    })
    .await;
    publication.commit().await.unwrap();
    assert!(!sweep.await.unwrap(), "published by the sender: not again");
}

/// How many sessions of this test's database wait for a lock.
async fn waiting_on_a_lock(db: &tokio_postgres::Client) -> i64 {
    db.query_one(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// `settle_and_keep` (the hand-over's one transaction) records the head's attempt
/// and keeps the next delivery of its key when it waits; and a delivery that starts
/// to wait while the head settles is never stranded: it is either released by the
/// settle or sees its turn free. Both are made to queue on the key's lock, so they
/// run one after the other in either order.
#[tokio::test]
async fn settling_a_head_keeps_the_next_or_lets_it_go_never_strands_it() {
    use hookrelay_store::deliveries::DeliveryStatus;
    use hookrelay_store::turns::{self, Place};

    let mut stack = TestStack::new().await;
    let mut new = webhook("acme", "ordered", &stack.receiver.url("/o"));
    new.ordered = true;
    let hook = stack.create_webhook(new).await;
    stack.start_router().await;
    publish_interleaved(&stack, 1, 4).await;
    wait_count(&stack, "all routed", "SELECT count(*) FROM deliveries", 4).await;
    stack.stop_roles().await;
    let db = stack.db.client().await;
    // The router created all but the first waiting; as messages that reach a sender
    // (a backfill's, a replay's) they are pending, for the sender's park.
    db.execute(
        "UPDATE deliveries SET status = 'pending', published = true, next_attempt_at = NULL \
         WHERE webhook_id = $1 AND seq > 1",
        &[&hook.id],
    )
    .await
    .unwrap();
    let ids: Vec<uuid::Uuid> = db
        .query(
            "SELECT id FROM deliveries WHERE webhook_id = $1 ORDER BY seq",
            &[&hook.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let place = |seq| Place {
        webhook_id: hook.id,
        key: "order-0".to_owned(),
        seq,
    };
    let delivered = |id| {
        answered_attempt(
            id,
            OffsetDateTime::now_utc(),
            DeliveryStatus::Delivered,
            None,
        )
    };
    let lease = Duration::from_secs(60);
    let cipher = stack.cipher.clone();
    let status = |id| {
        let db = &db;
        async move {
            let row = db
                .query_one(
                    "SELECT status, published FROM deliveries WHERE id = $1",
                    &[&id],
                )
                .await
                .unwrap();
            (row.get::<_, String>(0), row.get::<_, bool>(1))
        }
    };

    // The second waits: settling the first records it and keeps the second.
    let mut a = stack.db.client().await;
    assert!(
        turns::wait_turn(&mut a, ids[1], &place(2), lease)
            .await
            .unwrap()
    );
    let next = turns::settle_and_keep(&mut a, &cipher, &delivered(ids[0]), &place(1), lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.next.delivery.id, ids[1]);
    let job = next
        .job
        .expect("the kept delivery loaded in the transaction");
    assert_eq!(
        (job.id, job.status, job.turn),
        (ids[1], DeliveryStatus::Pending, turns::Turn::Free),
        "loaded as it goes: pending, its turn come"
    );
    assert_eq!(status(ids[0]).await, ("delivered".to_owned(), true));
    assert_eq!(
        status(ids[1]).await,
        ("pending".to_owned(), false),
        "kept: pending, no message"
    );
    let attempts: i64 = db
        .query_one(
            "SELECT count(*) FROM delivery_attempts WHERE delivery_id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 1, "the head's attempt recorded");

    // The third starts to wait (a sender's park) while the second settles, then the
    // fourth (a router's park, in its batch's transaction) while the third settles:
    // whichever takes the key's lock first, the waiter goes (released, or free to
    // send), and waits for nothing.
    for n in [2, 3] {
        let mut holder = stack.db.client().await;
        let hold = holder.transaction().await.unwrap();
        hold.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1::text || '/' || $2, 0))",
            &[&hook.id.to_string(), &"order-0"],
        )
        .await
        .unwrap();
        let mut b = stack.db.client().await;
        let (settling, waiter) = (ids[n - 1], ids[n]);
        let (place_settling, place_waiter) = (place(n as i64), place(n as i64 + 1));
        let record = delivered(settling);
        let by_router = n == 3;
        let waits = tokio::spawn(async move {
            if by_router {
                let tx = b.transaction().await.unwrap();
                let key = [(place_waiter.webhook_id, place_waiter.key.as_str())];
                let parked = turns::park_new(&tx, &[waiter], &key, lease).await.unwrap();
                tx.commit().await.unwrap();
                !parked.is_empty()
            } else {
                turns::wait_turn(&mut b, waiter, &place_waiter, lease)
                    .await
                    .unwrap()
            }
        });
        let mut settler = stack.db.client().await;
        let cipher = cipher.clone();
        let settles = tokio::spawn(async move {
            turns::settle_and_keep(&mut settler, &cipher, &record, &place_settling, lease)
                .await
                .unwrap()
        });
        wait_until("both queue on the key's lock", WAIT, || async {
            waiting_on_a_lock(&db).await == 2
        })
        .await;
        hold.commit().await.unwrap();
        let (waited, released) = (waits.await.unwrap(), settles.await.unwrap());
        assert_eq!(
            released.map(|n| n.next.delivery.id),
            waited.then_some(waiter),
            "released exactly when it waited ({n})"
        );
        assert_eq!(status(waiter).await.0, "pending", "not stranded ({n})");
    }
}

/// Runs the `hookrelay` binary on the stack's database; returns what it printed.
fn cli(stack: &TestStack, command: &[&str], args: &[&str]) -> String {
    let out = std::process::Command::new(hookrelay_tests::hookrelay_binary())
        .args(command)
        .args(args)
        .args(["--database-url", &stack.db.url])
        .env_remove("HOOKRELAY_SECRET_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The head's first round fails for good (HTTP 500 is not in the default retry_on);
/// every other answer is 200.
fn head_fails_once(r: &Received) -> Behaviour {
    if r.json()["n"] == 1 && attempt_of(r) == 1 {
        Behaviour::Status(500)
    } else {
        Behaviour::Status(200)
    }
}

/// The `n` of each 2xx receipt on `path`, in the order received.
fn answered(stack: &TestStack, path: &str) -> Vec<i64> {
    stack
        .receiver
        .received_on(path)
        .iter()
        .filter(|r| !(r.json()["n"] == 1 && attempt_of(r) == 1))
        .map(|r| r.json()["n"].as_i64().unwrap_or(-1))
        .collect()
}

/// `skip` goes on after the key's failed head; `block` holds the rest of the key
/// until `resume-key` (the head again, then the rest in order) or `skip-key` (the
/// rest without it), each through the admin API.
#[tokio::test]
async fn block_holds_a_key_until_resumed_or_skipped_and_skip_goes_on() {
    let mut stack = TestStack::new().await;
    let base = stack.serve_api(None, 1 << 20).await;
    let http = reqwest::Client::new();
    let mut ids = BTreeMap::new();
    for (key, on_failure) in [
        ("skip", OnFailure::Skip),
        ("resume", OnFailure::Block),
        ("skipkey", OnFailure::Block),
    ] {
        let path = format!("/{key}");
        stack
            .receiver
            .respond(&path, Behaviour::PerRequest(head_fails_once));
        let mut new = webhook("acme", key, &stack.receiver.url(&path));
        new.ordered = true;
        new.on_failure = on_failure;
        new.event_types = vec![format!("{key}.changed")];
        ids.insert(key, stack.create_webhook(new).await.id);
    }
    stack.start_router().await;
    let mut config = stack.sender_config();
    config.defer_delay = Duration::from_millis(200);
    stack.start_sender_with(config).await;
    let mut events = Vec::new();
    for n in 0..4 {
        for key in ["skip", "resume", "skipkey"] {
            let mut e = event(
                "acme",
                &format!("{key}.changed"),
                json!({"ordering_key": "k"}),
            );
            e.payload = json!({"n": n});
            events.push(e);
        }
    }
    stack.publisher.publish_batch(&events).await.unwrap();

    wait_until("skip went on after its head", WAIT, || async {
        answered(&stack, "/skip") == [0, 2, 3]
    })
    .await;
    stack.dead_letters(3, WAIT).await;
    // A blocked key's next delivery waits in its row behind the failed one: listed
    // by the API and counted for the gauge; nothing more is sent until an operator acts.
    let blocked = |hook: &'static str| {
        let url = format!("{base}/v1/tenants/acme/webhooks/{hook}/blocked-keys");
        let http = http.clone();
        async move {
            let keys: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            keys
        }
    };
    for hook in ["resume", "skipkey"] {
        wait_until(&format!("{hook}'s key listed blocked"), WAIT, || async {
            let keys = blocked(hook).await;
            keys.as_array().is_some_and(|k| k.len() == 1)
                && keys[0]["key"] == "k"
                && keys[0]["failed_seq"] == 2
        })
        .await;
    }
    assert_eq!(blocked("skip").await, json!([]), "skip blocks nothing");
    let counted = hookrelay_store::turns::blocked_keys(&stack.db.client().await).await;
    assert_eq!(counted.unwrap(), 2, "what the gauge reports");
    assert_eq!(answered(&stack, "/resume"), [0], "block holds the rest");
    assert_eq!(answered(&stack, "/skipkey"), [0], "block holds the rest");

    let resumed = http
        .post(format!(
            "{base}/v1/tenants/acme/webhooks/resume/keys/k/resume"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), reqwest::StatusCode::OK);
    let summary: Value = resumed.json().await.unwrap();
    assert_eq!(summary["requeued"], 1, "{summary}");
    wait_until(
        "resume sent the head again, then the rest",
        WAIT,
        || async { answered(&stack, "/resume") == [0, 1, 2, 3] },
    )
    .await;

    let skipped = http
        .post(format!(
            "{base}/v1/tenants/acme/webhooks/skipkey/keys/k/skip"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(skipped.status(), reqwest::StatusCode::OK);
    assert_eq!(skipped.json::<Value>().await.unwrap()["skipped_through"], 2);
    wait_until(
        "skip-key let the rest go without the head",
        WAIT,
        || async { answered(&stack, "/skipkey") == [0, 2, 3] },
    )
    .await;
    // The CLI's skip-key is the same: nothing failed is left on the resumed key.
    let out = cli(
        &stack,
        &[
            "deliveries",
            "skip-key",
            "--tenant",
            "acme",
            "--webhook",
            "resume",
        ],
        &["--key", "k", "--json"],
    );
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["skipped_through"],
        0,
        "{out}"
    );
    // `deliveries show` tells a delivery's key and number: the resumed head is 2nd.
    let head = &stack.deliveries_of("acme", &events[4].id).await[0];
    let shown = cli(
        &stack,
        &["deliveries", "show", "--tenant", "acme"],
        &[&head.id.to_string()],
    );
    assert!(shown.contains("ordering key `k`, number 2"), "{shown}");
    let missing = http
        .post(format!(
            "{base}/v1/tenants/acme/webhooks/skipkey/keys/nope/skip"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);
    stack.stop_roles().await;
}

/// Deliveries held by a pause are released together on resume, and still reach the
/// receiver one at a time in publish order.
#[tokio::test]
async fn pause_and_resume_keep_each_key_in_order() {
    const KEYS: usize = 3;
    const PER_KEY: usize = 6;
    let mut stack = TestStack::new().await;
    let base = stack.serve_api(None, 1 << 20).await;
    let http = reqwest::Client::new();
    stack.receiver.respond("/o", Behaviour::PerRequest(flaky));
    let mut new = webhook("acme", "ordered", &stack.receiver.url("/o"));
    new.ordered = true;
    new.retry_on = RetryPolicy::parse(&["5xx".to_owned()]).unwrap();
    stack.create_webhook(new).await;
    let hook = format!("{base}/v1/tenants/acme/webhooks/ordered");
    let paused = http.post(format!("{hook}/pause")).send().await.unwrap();
    assert_eq!(paused.status(), reqwest::StatusCode::OK);
    stack.start_router().await;
    for _ in 0..2 {
        let mut config = stack.sender_config();
        config.defer_delay = Duration::from_millis(200);
        stack.start_sender_with(config).await;
    }
    let published = publish_interleaved(&stack, KEYS, PER_KEY).await;
    let held = "SELECT count(*) FROM deliveries WHERE status = 'held'";
    wait_count(&stack, "every delivery held", held, KEYS * PER_KEY).await;
    assert!(stack.receiver.received_on("/o").is_empty());

    let resumed = http.post(format!("{hook}/resume")).send().await.unwrap();
    assert_eq!(resumed.status(), reqwest::StatusCode::OK);
    each_key_answered_in_order(&stack, "/o", &published).await;
    stack.stop_roles().await;
}

/// A backfill of an ordered webhook created after its events numbers them in the
/// order they were recorded, and they reach the receiver one at a time in that order.
#[tokio::test]
async fn a_backfill_of_an_ordered_webhook_delivers_each_key_in_order() {
    const KEYS: usize = 5;
    const PER_KEY: usize = 8;
    let mut stack = TestStack::new().await;
    let base = stack.serve_api(None, 1 << 20).await;
    stack.start_router().await;
    for _ in 0..2 {
        stack.start_sender().await;
    }
    let published = publish_interleaved(&stack, KEYS, PER_KEY).await;
    let recorded = "SELECT count(*) FROM events";
    wait_count(&stack, "every event recorded", recorded, KEYS * PER_KEY).await;

    stack
        .receiver
        .respond("/late", Behaviour::PerRequest(flaky));
    let mut new = webhook("acme", "late", &stack.receiver.url("/late"));
    new.ordered = true;
    new.retry_on = RetryPolicy::parse(&["5xx".to_owned()]).unwrap();
    stack.create_webhook(new).await;
    let res = reqwest::Client::new()
        .post(format!("{base}/v1/tenants/acme/webhooks/late/backfill"))
        .json(&json!({"since": "2000-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    each_key_answered_in_order(&stack, "/late", &published).await;
    stack.stop_roles().await;
}

/// A delivery created behind an unsettled one of its key waits in its row from the
/// start: the router publishes no message for it (a sender would only load it and
/// park it, under the key's lock that the release of the one before needs), and the
/// sender that settles the one before sends it. Fails on a router that publishes
/// every delivery it creates (three messages, two parked by the sender).
#[tokio::test]
async fn a_delivery_behind_an_unsettled_one_of_its_key_is_created_waiting_with_no_message() {
    let mut stack = TestStack::new().await;
    stack.receiver.respond(
        "/o",
        Behaviour::Sequence(vec![
            // The head is answered late, so the two after it are routed meanwhile.
            Behaviour::Slow(Duration::from_secs(4), 200),
            Behaviour::Status(200),
        ]),
    );
    let mut new = webhook("acme", "ordered", &stack.receiver.url("/o"));
    new.ordered = true;
    let ordered = stack.create_webhook(new).await;
    stack.start_router().await;
    let mut config = stack.sender_config();
    // The head's answer comes in time: it is not retried.
    config.http_timeout = Duration::from_secs(10);
    stack.start_sender_with(config).await;
    let key = json!({"ordering_key": "order-0"});
    let events: Vec<_> = (0..3)
        .map(|_| event("acme", "order.changed", key.clone()))
        .collect();
    stack.publisher.publish_batch(&events[..1]).await.unwrap();
    wait_until("the head is being sent", WAIT, || async {
        !stack.receiver.received_on("/o").is_empty()
    })
    .await;
    stack.publisher.publish_batch(&events[1..]).await.unwrap();
    let waiting = "SELECT count(*) FROM deliveries WHERE status = 'waiting' AND NOT published";
    wait_count(&stack, "the two behind the head routed", waiting, 2).await;
    assert_eq!(
        stack.receiver.received_on("/o").len(),
        1,
        "the head is still unanswered"
    );
    assert_eq!(
        stack.metrics.published_total(),
        1,
        "the router published the head's message only"
    );
    assert_eq!(
        stack.metrics.outcomes(hookrelay_metrics::outcome::WAITING),
        0,
        "no sender parked anything"
    );

    wait_until("all three answered", WAIT, || async {
        stack.receiver.received_on("/o").len() == 3
    })
    .await;
    let got: Vec<String> = stack
        .receiver
        .received_on("/o")
        .iter()
        .map(|r| r.header("x-hookrelay-event-id").unwrap_or_default())
        .collect();
    let sent: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(got, sent, "in the order published");
    let keys = sequenced(&stack, ordered.id).await;
    assert_eq!(keys["order-0"].len(), 3);
    stack.stop_roles().await;
}
