//! Hostile input end to end: garbage at the ingest API gets a clear 4xx, garbage on
//! the events exchange is dead-lettered with its reason while the router keeps
//! working, and randomized tenants with colliding keys and ids never cross.

use std::collections::HashSet;
use std::time::Duration;

use hookrelay_tests::stack::{event, webhook};
use hookrelay_tests::{TestStack, wait_until};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// `n` values of `strategy`, the same on every run.
fn samples<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

/// Bodies an attacker or a broken client might send: random bytes, and a valid
/// envelope with one field made wrong in every way that field can be wrong.
fn hostile_bodies() -> Vec<Vec<u8>> {
    let mut bodies = samples(prop::collection::vec(any::<u8>(), 0..300), 150);
    let required = ["id", "tenant", "type", "occurred_at"];
    let wrong_required = [
        json!(null),
        json!(7),
        json!([1, 2]),
        json!({"x": {}}),
        json!("a\u{0}b"),
        json!(true),
        json!(""),
    ];
    let optional = [
        "webhook_keys",
        "webhook_url",
        "development_mode",
        "trigger_type",
        "private_fields",
    ];
    let wrong_optional = [json!(7), json!({"x": {}}), json!("\u{0}"), json!([[]])];
    let mangled = required
        .iter()
        .flat_map(|f| wrong_required.iter().map(move |v| (*f, v.clone())))
        .chain(
            optional
                .iter()
                .flat_map(|f| wrong_optional.iter().map(move |v| (*f, v.clone()))),
        );
    for (field, bad) in mangled {
        let mut e = json!({"id": "e", "tenant": "acme", "type": "x", "occurred_at": "2024-01-24T16:13:25Z", "payload": {}});
        e[field] = bad;
        bodies.push(serde_json::to_vec(&e).unwrap());
    }
    bodies.push(format!("{}{}", "[".repeat(50_000), "]".repeat(50_000)).into_bytes());
    bodies.push(b"{\"id\": \"\xff\xfe\"}".to_vec());
    bodies.push(b"[]".to_vec());
    bodies.push(b"[{}]".to_vec());
    bodies
}

#[tokio::test]
async fn ingest_answers_every_hostile_body_with_a_clear_4xx() {
    let stack = TestStack::new().await;
    let url = format!("{}/v1/events", stack.serve_api(None, 64 * 1024).await);
    let http = reqwest::Client::new();
    let bodies = hostile_bodies();
    for body in &bodies {
        let res = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = res.status();
        let answer: Value = res.json().await.expect("a JSON error body");
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE,
            "{status} for {:?}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    let huge = vec![b'x'; 64 * 1024 + 1];
    let res = http
        .post(&url)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        stack.queue_len(&stack.topology.router_queue()).await,
        0,
        "nothing hostile was published"
    );
}

#[tokio::test]
async fn poison_on_the_events_exchange_is_dead_lettered_and_the_router_goes_on() {
    let mut stack = TestStack::new().await;
    let router = stack.start_router().await;
    stack
        .create_webhook(webhook("acme", "ok", &stack.receiver.url("/ok")))
        .await;
    let poison = samples(prop::collection::vec(any::<u8>(), 0..200), 40);
    for body in &poison {
        stack.publish_raw("acme.garbage", body).await;
    }
    let good = event("acme", "file_uploaded", json!({}));
    stack.publish(&good).await;
    let letters = stack.dead_letters(poison.len(), WAIT).await;
    assert_eq!(letters.len(), poison.len());
    for l in &letters {
        assert_eq!(
            l.header("x-hookrelay-reason").as_deref(),
            Some("invalid event")
        );
        assert!(l.header("x-hookrelay-error").is_some_and(|e| !e.is_empty()));
    }
    let bodies: HashSet<&[u8]> = letters.iter().map(|l| l.body.as_slice()).collect();
    assert!(
        poison.iter().all(|p| bodies.contains(p.as_slice())),
        "each kept as sent"
    );
    wait_until("the good event is routed", WAIT, || async {
        stack.deliveries_of("acme", &good.id).await.len() == 1
    })
    .await;
    assert!(router.metrics.is_consuming(hookrelay_router::ROLE));
}

/// Four tenants with the same webhook keys and the same event ids, events naming
/// random keys: every delivery goes to a webhook of the event's own tenant.
#[tokio::test]
async fn randomized_tenants_with_colliding_keys_and_ids_never_cross() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    let tenants = ["t0", "t1", "t2", "t3"];
    let mut owner = std::collections::HashMap::new();
    for tenant in tenants {
        for key in ["k0", "k1", "k2"] {
            let w = stack
                .create_webhook(webhook(
                    tenant,
                    key,
                    &stack.receiver.url(&format!("/{tenant}/{key}")),
                ))
                .await;
            owner.insert(w.id, tenant);
        }
    }
    let picks = samples(
        (
            prop::sample::select(tenants.to_vec()),
            0u32..20,
            prop::option::of(prop::collection::vec(
                prop::sample::select(vec!["k0", "k1", "k2", "k9"]),
                1..3,
            )),
        ),
        120,
    );
    let mut published = HashSet::new();
    for (tenant, n, keys) in &picks {
        let mut e = event(tenant, "file_uploaded", json!({}));
        e.id = format!("shared-{n}").parse().unwrap();
        e.webhook_keys = keys
            .as_ref()
            .map(|k| k.iter().map(|s| (*s).to_owned()).collect());
        stack.publish(&e).await;
        published.insert(((*tenant).to_owned(), e.id.clone()));
    }
    let db = stack.db.client().await;
    wait_until("every distinct event is stored", WAIT, || async {
        let n: i64 = db
            .query_one("SELECT count(*) FROM events", &[])
            .await
            .unwrap()
            .get(0);
        n as usize == published.len()
    })
    .await;
    wait_until("every delivery is published", WAIT, || async {
        let n: i64 = db
            .query_one("SELECT count(*) FROM deliveries WHERE NOT published", &[])
            .await
            .unwrap()
            .get(0);
        n == 0
    })
    .await;
    // What must be there: the first copy of each (tenant, id) decides (the others are
    // duplicates), and it goes to its tenant's webhooks it names, or to all three.
    let mut first: std::collections::HashMap<(String, String), Option<Vec<&str>>> =
        std::collections::HashMap::new();
    for (tenant, n, keys) in &picks {
        first
            .entry(((*tenant).to_owned(), format!("shared-{n}")))
            .or_insert_with(|| keys.clone());
    }
    let expected: HashSet<(String, String, String)> = first
        .iter()
        .flat_map(|((tenant, id), keys)| {
            ["k0", "k1", "k2"]
                .into_iter()
                .filter(|k| keys.as_ref().is_none_or(|named| named.contains(k)))
                .map(|k| (tenant.clone(), id.clone(), k.to_owned()))
        })
        .collect();
    let rows = db
        .query(
            "SELECT d.tenant, d.event_id, w.key, w.tenant AS owner FROM deliveries d \
             JOIN webhooks w ON w.id = d.webhook_id",
            &[],
        )
        .await
        .unwrap();
    for r in &rows {
        assert_eq!(
            r.get::<_, String>("owner"),
            r.get::<_, String>("tenant"),
            "delivery crossed tenants"
        );
    }
    let stored: HashSet<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get("tenant"), r.get("event_id"), r.get("key")))
        .collect();
    assert_eq!(rows.len(), stored.len(), "a delivery was created twice");
    assert_eq!(stored, expected, "exactly the deliveries the rules give");

    // And what the receivers got: each POST on its own tenant's path, each expected
    // delivery once.
    stack.start_sender().await;
    stack.receiver.wait_for_total(expected.len(), WAIT).await;
    let received: Vec<(String, String, String)> = stack
        .receiver
        .all()
        .iter()
        .map(|r| {
            let mut path = r.path.trim_start_matches('/').split('/');
            let tenant = path.next().unwrap_or_default().to_owned();
            let key = path.next().unwrap_or_default().to_owned();
            (
                tenant,
                r.header("x-hookrelay-event-id").unwrap_or_default(),
                key,
            )
        })
        .collect();
    assert_eq!(received.len(), expected.len(), "one POST per delivery");
    assert_eq!(received.into_iter().collect::<HashSet<_>>(), expected);
}
