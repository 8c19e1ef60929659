//! Security features on the real pipeline: the SSRF guard and signatures.

use std::time::Duration;

use hookrelay_core::store::deliveries::DeliveryStatus;
use hookrelay_core::store::webhooks::{self, Secret};
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

/// Signatures checked by the Standard Webhooks reference library, through a
/// rotation in which the old and the new secret both sign.
#[tokio::test]
async fn posts_carry_standard_webhooks_signatures_that_survive_rotation() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut w = webhook("acme", "signed", &stack.receiver.url("/signed"));
    w.signing_secret = Some(Secret::new(old));
    w.secret = Some(Secret::new("basic-pass"));
    stack.create_webhook(w).await;

    let first = event("acme", "file_uploaded", json!({"payload": {"n": 1}}));
    stack.publish(&first).await;
    let got = stack.receiver.wait_for("/signed", 1, WAIT).await;
    let verify = |secret: &str, r: &hookrelay_tests::receiver::Received| {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(&r.body, &r.headers)
    };
    verify(old, &got[0]).expect("signed with the secret");
    assert!(got[0].header("authorization").is_some(), "Basic auth still sent");
    let other = "whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldCBhdCBhbGwh";
    assert!(verify(other, &got[0]).is_err(), "another secret does not verify");

    let (_, new) = webhooks::rotate_signing_secret(
        &stack.db.client().await,
        "acme",
        "signed",
        None,
        true,
    )
    .await
    .unwrap();
    assert!(new.expose().starts_with("whsec_"));
    let second = event("acme", "file_uploaded", json!({"payload": {"n": 2}}));
    stack.publish(&second).await;
    let got = stack.receiver.wait_for("/signed", 2, WAIT).await;
    let signatures = got[1].header("webhook-signature").unwrap();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    verify(old, &got[1]).expect("the previous secret still verifies");
    verify(new.expose(), &got[1]).expect("the new secret verifies");

    let (listed, _) = webhooks::rotate_signing_secret(
        &stack.db.client().await,
        "acme",
        "signed",
        None,
        false,
    )
    .await
    .unwrap();
    assert_eq!(listed.signing_secrets.len(), 1, "rotation without keep drops the old");
    let shown = serde_json::to_string(&listed).unwrap();
    assert!(!shown.contains("whsec_"), "secrets never show: {shown}");
}
