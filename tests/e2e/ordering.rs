//! Ordered delivery per ordering key (docs/delivery-semantics.md, "Ordered
//! webhooks"): the contract (an event's `ordering_key`, a webhook's `ordered` and
//! `on_failure`) and the router's sequence per (webhook, key).

use hookrelay_tests::TestStack;
use serde_json::{Value, json};

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
