//! Security features on the real pipeline: the SSRF guard.

use std::time::Duration;

use hookrelay_core::store::deliveries::DeliveryStatus;
use hookrelay_sender::guard::Destinations;
use hookrelay_tests::TestStack;
use hookrelay_tests::stack::{event, webhook};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// A stack whose sender runs with `destinations` instead of the tests' "allow all".
async fn guarded(destinations: Destinations) -> TestStack {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    let mut config = stack.sender_config();
    config.destinations = destinations;
    stack.start_sender_with(config).await;
    stack
}

#[tokio::test]
async fn loopback_destinations_are_refused_by_default_by_address_and_by_name() {
    let stack = guarded(Destinations::default()).await;
    let port = stack.receiver.addr.port();
    let mut by_ip = webhook("acme", "ip", &stack.receiver.url("/ip"));
    by_ip.event_types = vec!["a".into()];
    stack.create_webhook(by_ip).await;
    // A name that resolves to loopback is refused after resolution.
    let mut by_name = webhook("acme", "name", &format!("http://localhost:{port}/name"));
    by_name.event_types = vec!["b".into()];
    stack.create_webhook(by_name).await;
    let a = event("acme", "a", json!({}));
    let b = event("acme", "b", json!({}));
    stack.publish(&a).await;
    stack.publish(&b).await;
    for e in [&a, &b] {
        let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
        assert_eq!(d[0].status, DeliveryStatus::Failed);
        let error = d[0].last_error.clone().unwrap_or_default();
        assert!(error.contains("destination blocked"), "{error}");
        assert_eq!(d[0].attempts, 1, "blocked for good, not retried");
    }
    let letters = stack.dead_letters(2, WAIT).await;
    assert!(
        letters
            .iter()
            .all(|l| l.header("x-hookrelay-reason").as_deref() == Some("permanent failure"))
    );
    assert!(
        stack.receiver.all().is_empty(),
        "nothing reached the receiver"
    );
}

#[tokio::test]
async fn an_allowlisted_network_is_reached() {
    let stack = guarded(Destinations {
        allow_private: false,
        allowed: vec!["127.0.0.0/8".parse().unwrap()],
    })
    .await;
    stack
        .create_webhook(webhook("acme", "ok", &stack.receiver.url("/ok")))
        .await;
    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    stack.receiver.wait_for("/ok", 1, WAIT).await;
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered);
}
