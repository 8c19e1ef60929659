//! A webhook's own delivery policy, enforced by two sender processes' worth of
//! senders together: a rate limit with a burst (over it, deliveries are held and
//! sent oldest first as the rate allows) and a cap on requests in flight.

use std::collections::HashSet;
use std::time::Duration;

use hookrelay_metrics::outcome;
use hookrelay_store::deliveries::DeliveryStatus;
use hookrelay_tests::receiver::{Behaviour, Received};
use hookrelay_tests::stack::{event, webhook};
use hookrelay_tests::{TestStack, wait_until};
use serde_json::json;
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(30);

/// The most requests that arrived within any window of `width` (starting at each
/// arrival).
fn most_within(received: &[Received], width: Duration) -> usize {
    let mut at: Vec<Instant> = received.iter().map(|r| r.at).collect();
    at.sort();
    (0..at.len())
        .map(|i| at[i..].iter().take_while(|t| **t < at[i] + width).count())
        .max()
        .unwrap_or(0)
}

fn event_ids(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .filter_map(|r| r.header("x-hookrelay-event-id"))
        .collect()
}

async fn all_delivered(stack: &TestStack, ids: &[String]) {
    wait_until("every delivery is delivered", WAIT, || async {
        for id in ids {
            let d = stack.deliveries_of("acme", id).await;
            if d.len() != 1 || d[0].status != DeliveryStatus::Delivered {
                return false;
            }
        }
        true
    })
    .await;
}

#[tokio::test]
async fn a_rate_limit_holds_across_two_senders_and_everything_goes_once() {
    let mut stack = TestStack::new().await;
    let mut new = webhook("acme", "limited", &stack.receiver.url("/limited"));
    new.rate_limit = Some("10/s".parse().unwrap());
    new.rate_burst = Some(2);
    stack.create_webhook(new).await;
    stack.start_router().await;
    stack.start_sender().await;
    stack.start_sender().await;

    let mut ids = Vec::new();
    for n in 0..25 {
        let e = event("acme", "order_placed", json!({"payload": {"n": n}}));
        stack.publish(&e).await;
        ids.push(e.id.to_string());
    }
    let received = stack.receiver.wait_for("/limited", 25, WAIT).await;
    all_delivered(&stack, &ids).await;

    // 10/s with a burst of 2: at most 2 + 10 in any second (one more for the
    // edges of a window), and the last no sooner than 2.3 s after the first (2.0 s asserted).
    let per_second = most_within(&received, Duration::from_secs(1));
    assert!(per_second <= 13, "{per_second} requests within one second");
    let first = received.iter().map(|r| r.at).min().unwrap();
    let last = received.iter().map(|r| r.at).max().unwrap();
    assert!(
        last - first >= Duration::from_millis(2_000),
        "25 requests at 10/s took only {:?}",
        last - first
    );
    let got = event_ids(&stack.receiver.received_on("/limited"));
    assert_eq!(got.len(), 25, "each event once, nothing twice");
    assert_eq!(
        got.iter().collect::<HashSet<_>>(),
        ids.iter().collect::<HashSet<_>>()
    );
    assert!(
        stack.metrics.outcomes(outcome::RATE_LIMITED) >= 10,
        "the ones over the rate were held, not sent"
    );
    let c = stack.db.client().await;
    let left: i64 = c
        .query_one("SELECT count(*) FROM rate_held", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "nothing left waiting for the rate");
    // The releaser's next round finds nothing left and says so.
    wait_until("the backlog is drained", WAIT, || async {
        let backlog: bool = c
            .query_one("SELECT backlog FROM webhook_rates", &[])
            .await
            .unwrap()
            .get(0);
        !backlog
    })
    .await;
}

#[tokio::test]
async fn a_cap_in_flight_holds_across_two_senders() {
    let mut stack = TestStack::new().await;
    stack
        .receiver
        .respond("/capped", Behaviour::Slow(Duration::from_millis(300), 200));
    let mut new = webhook("acme", "capped", &stack.receiver.url("/capped"));
    new.max_in_flight = Some(2);
    stack.create_webhook(new).await;
    stack.start_router().await;
    stack.start_sender().await;
    stack.start_sender().await;

    let mut ids = Vec::new();
    for _ in 0..12 {
        let e = event("acme", "order_placed", json!({}));
        stack.publish(&e).await;
        ids.push(e.id.to_string());
    }
    let received = stack.receiver.wait_for("/capped", 12, WAIT).await;
    all_delivered(&stack, &ids).await;
    // Each answer takes 300 ms and a slot frees only after it: with 2 slots, no
    // window shorter than that holds a third request.
    let at_once = most_within(&received, Duration::from_millis(250));
    assert!(
        at_once <= 2,
        "{at_once} requests in flight at once (cap 2; each sender alone allows 8)"
    );
    assert_eq!(event_ids(&stack.receiver.received_on("/capped")).len(), 12);
}

/// The rate's releaser reads webhooks without a cipher: a webhook whose secret and
/// custom headers are sealed is released like any other, and its held deliveries
/// go with them opened by the sender.
#[tokio::test]
async fn held_deliveries_of_a_webhook_with_sealed_secrets_are_released_at_its_rate() {
    use hookrelay_model::headers::CustomHeaders;
    use hookrelay_model::webhook::Secret;
    let mut stack = TestStack::new().await;
    stack.cipher =
        hookrelay_store::Cipher::from_base64_key("q0Rq3kC2sS1KcmKx0fZ2mJ8wTnH4bV7yLpE6aD9uXcI=")
            .unwrap();
    let mut new = webhook("acme", "sealed", &stack.receiver.url("/sealed"));
    new.rate_limit = Some("10/s".parse().unwrap());
    new.rate_burst = Some(1);
    new.secret = Some(Secret::new("basic-pass"));
    new.headers = CustomHeaders::new([("X-Api-Key".to_owned(), Secret::new("k-1"))]);
    stack.create_webhook(new).await;
    stack.start_router().await;
    stack.start_sender().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let e = event("acme", "order_placed", json!({}));
        stack.publish(&e).await;
        ids.push(e.id.to_string());
    }
    let received = stack.receiver.wait_for("/sealed", 5, WAIT).await;
    all_delivered(&stack, &ids).await;
    for r in &received {
        assert_eq!(r.header("x-api-key").as_deref(), Some("k-1"));
        assert_eq!(
            r.header("authorization").as_deref(),
            Some("Basic OmJhc2ljLXBhc3M=")
        );
    }
    assert!(
        stack.metrics.outcomes(outcome::RATE_LIMITED) >= 1,
        "some were held for the rate and released"
    );
}

#[tokio::test]
async fn a_paused_rate_limited_webhook_resumes_within_its_rate() {
    let mut stack = TestStack::new().await;
    let mut new = webhook("acme", "slowly", &stack.receiver.url("/slowly"));
    new.rate_limit = Some("5/s".parse().unwrap());
    new.rate_burst = Some(1);
    stack.create_webhook(new).await;
    let base = stack.serve_api(None, 1 << 20).await;
    let http = reqwest::Client::new();
    let pause = http
        .post(format!("{base}/v1/tenants/acme/webhooks/slowly/pause"))
        .send()
        .await
        .unwrap();
    assert!(pause.status().is_success());
    stack.start_router().await;
    stack.start_sender().await;
    let mut ids = Vec::new();
    for _ in 0..8 {
        let e = event("acme", "order_placed", json!({}));
        stack.publish(&e).await;
        ids.push(e.id.to_string());
    }
    wait_until("all eight are held", WAIT, || async {
        let mut held = 0;
        for id in &ids {
            held += stack
                .deliveries_of("acme", id)
                .await
                .iter()
                .filter(|d| d.status == DeliveryStatus::Held)
                .count();
        }
        held == 8
    })
    .await;
    let resume = http
        .post(format!("{base}/v1/tenants/acme/webhooks/slowly/resume"))
        .send()
        .await
        .unwrap();
    assert!(resume.status().is_success());
    let received = stack.receiver.wait_for("/slowly", 8, WAIT).await;
    all_delivered(&stack, &ids).await;
    let first = received.iter().map(|r| r.at).min().unwrap();
    let last = received.iter().map(|r| r.at).max().unwrap();
    assert!(
        last - first >= Duration::from_millis(1_200),
        "8 released at 5/s took only {:?}",
        last - first
    );
    assert_eq!(event_ids(&stack.receiver.received_on("/slowly")).len(), 8);
}

#[tokio::test]
async fn a_wrong_policy_is_refused_naming_the_field_and_null_removes_one() {
    let stack = TestStack::new().await;
    let base = stack.serve_api(None, 1 << 20).await;
    let http = reqwest::Client::new();
    let hooks = format!("{base}/v1/tenants/acme/webhooks");
    let url = stack.receiver.url("/p");
    for (body, field, says) in [
        (
            json!({"key": "a", "url": url, "rate_limit": "50/d"}),
            "rate_limit",
            "period",
        ),
        (
            json!({"key": "a", "url": url, "rate_limit": "0/s"}),
            "rate_limit",
            "COUNT",
        ),
        (
            json!({"key": "a", "url": url, "rate_burst": 5}),
            "rate_burst",
            "needs a rate_limit",
        ),
        (
            json!({"key": "a", "url": url, "max_in_flight": 0}),
            "max_in_flight",
            "from 1",
        ),
    ] {
        let res = http.post(&hooks).json(&body).send().await.unwrap();
        assert_eq!(res.status(), reqwest::StatusCode::BAD_REQUEST, "{body}");
        let err: serde_json::Value = res.json().await.unwrap();
        assert_eq!(err["field"], field, "{err}");
        assert!(err["error"].as_str().unwrap().contains(says), "{err}");
    }
    let res = http
        .post(&hooks)
        .json(&json!({"key": "a", "url": url, "rate_limit": "600/m", "max_in_flight": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::CREATED);
    let created: serde_json::Value = res.json().await.unwrap();
    assert_eq!(created["rate_limit"], "600/m");
    assert_eq!(created["rate_burst"], serde_json::Value::Null);
    assert_eq!(created["max_in_flight"], 3);

    let patch = |body: serde_json::Value| http.patch(format!("{hooks}/a")).json(&body).send();
    let removed: serde_json::Value = patch(json!({"rate_limit": null, "max_in_flight": null}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(removed["rate_limit"], serde_json::Value::Null, "{removed}");
    assert_eq!(
        removed["max_in_flight"],
        serde_json::Value::Null,
        "{removed}"
    );
    let res = patch(json!({"rate_burst": 10})).await.unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::BAD_REQUEST);
    let err: serde_json::Value = res.json().await.unwrap();
    assert_eq!(err["field"], "rate_burst", "{err}");
}

#[tokio::test]
async fn a_delivery_over_the_rate_waits_held_and_says_why() {
    let mut stack = TestStack::new().await;
    let mut new = webhook("acme", "hourly", &stack.receiver.url("/hourly"));
    new.rate_limit = Some("1/h".parse().unwrap());
    stack.create_webhook(new).await;
    stack.start_router().await;
    stack.start_sender().await;
    let first = event("acme", "order_placed", json!({}));
    let second = event("acme", "order_placed", json!({}));
    stack.publish(&first).await;
    stack.receiver.wait_for("/hourly", 1, WAIT).await;
    stack.publish(&second).await;
    wait_until("the second is held for the rate", WAIT, || async {
        stack
            .deliveries_of("acme", &second.id)
            .await
            .iter()
            .any(|d| d.status == DeliveryStatus::Held)
    })
    .await;
    let id = stack.deliveries_of("acme", &second.id).await[0].id;
    let out = std::process::Command::new(hookrelay_tests::hookrelay_binary())
        .args(["deliveries", "show", "--tenant", "acme", &id.to_string()])
        .env("HOOKRELAY_DATABASE_URL", &stack.db.url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("held: over its webhook's rate limit"),
        "{text}"
    );
    assert_eq!(
        stack.receiver.received_on("/hourly").len(),
        1,
        "one an hour"
    );
}
