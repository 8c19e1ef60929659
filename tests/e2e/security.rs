//! Security features on the real pipeline: the SSRF guard and signatures.

use std::time::Duration;

use hookrelay_metrics::outcome;
use hookrelay_model::webhook::Secret;
use hookrelay_sender::guard::Destinations;
use hookrelay_store::deliveries::DeliveryStatus;
use hookrelay_store::webhooks::{self};
use hookrelay_tests::stack::{event, webhook};
use hookrelay_tests::{Behaviour, TestStack};
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
    assert!(
        got[0].header("authorization").is_some(),
        "Basic auth still sent"
    );
    let other = "whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldCBhdCBhbGwh";
    assert!(
        verify(other, &got[0]).is_err(),
        "another secret does not verify"
    );

    let (_, new) = webhooks::rotate_signing_secret(
        &stack.db.client().await,
        &stack.cipher,
        "acme",
        "signed",
        None,
        true,
    )
    .await
    .unwrap();
    let hookrelay_model::signing::NewKey::Secret(new) = new else {
        panic!("an HMAC webhook rotates to a secret")
    };
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
        &stack.cipher,
        "acme",
        "signed",
        None,
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        listed.signing_secrets.len(),
        1,
        "rotation without keep drops the old"
    );
    let shown = serde_json::to_string(&listed).unwrap();
    assert!(!shown.contains("whsec_"), "secrets never show: {shown}");
}

/// 410 Gone: the webhook is disabled with the reason, and a subscribed webhook of the
/// tenant hears about it through a `hookrelay.webhook_disabled` event.
#[tokio::test]
async fn gone_disables_the_webhook_and_announces_it() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    stack.receiver.respond("/gone", Behaviour::Status(410));
    let mut gone = webhook("acme", "gone", &stack.receiver.url("/gone"));
    gone.event_types = vec!["file_uploaded".into()];
    let gone = stack.create_webhook(gone).await;
    let mut ops = webhook("acme", "ops", &stack.receiver.url("/ops"));
    ops.event_types = vec![hookrelay_sender::WEBHOOK_DISABLED.into()];
    stack.create_webhook(ops).await;
    // A catch-all webhook does not get hookrelay's own events.
    stack
        .create_webhook(webhook("acme", "all", &stack.receiver.url("/all")))
        .await;

    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    let d = stack.wait_settled("acme", &e.id, 2, WAIT).await;
    assert!(d.iter().any(|d| d.status == DeliveryStatus::Failed));
    let announced = stack.receiver.wait_for("/ops", 1, WAIT).await;
    let body = announced[0].json();
    assert_eq!(body["event"], "hookrelay.webhook_disabled");
    assert_eq!(body["data"]["webhook_id"], gone.id.to_string());
    assert_eq!(body["data"]["reason"], "the receiver answered 410 Gone");
    let now = webhooks::get(&stack.db.client().await, &stack.cipher, "acme", "gone")
        .await
        .unwrap();
    assert!(!now.enabled);
    assert_eq!(
        now.disabled_reason.as_deref(),
        Some("the receiver answered 410 Gone")
    );

    // Disabled: the next event reaches the catch-all only; the disabled webhook's
    // delivery is held until it is enabled (or discarded).
    let next = event("acme", "file_uploaded", json!({}));
    stack.publish(&next).await;
    let d = stack.wait_settled("acme", &next.id, 2, WAIT).await;
    let held = d.iter().find(|d| d.webhook_id == Some(gone.id)).unwrap();
    assert_eq!(held.status, DeliveryStatus::Held);
    assert_eq!(held.attempts, 0);
    assert_eq!(stack.receiver.received_on("/gone").len(), 1);
    assert_eq!(stack.receiver.received_on("/all").len(), 2);
}

/// Failing every delivery for the configured period disables at the next failure; a
/// delivery that got through within the period, even one created before it, keeps
/// the webhook on.
#[tokio::test]
async fn a_webhook_failing_for_the_period_is_disabled() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    let mut config = stack.sender_config();
    config.disable_failing_after = Some(Duration::from_secs(3600));
    config.disable_check_every = Duration::ZERO;
    stack.start_sender_with(config).await;
    stack.receiver.respond(
        "/down",
        Behaviour::Sequence(vec![Behaviour::Status(200), Behaviour::Status(500)]),
    );
    stack
        .create_webhook(webhook("acme", "down", &stack.receiver.url("/down")))
        .await;
    let enabled = || async {
        webhooks::get(&stack.db.client().await, &stack.cipher, "acme", "down")
            .await
            .unwrap()
            .enabled
    };
    // Settled means its disable check ran too: the sender counts the outcome after it.
    let fail_once = || async {
        let before =
            stack.metrics.outcomes(outcome::FAILED) + stack.metrics.outcomes(outcome::DELIVERED);
        let e = event("acme", "file_uploaded", json!({}));
        stack.publish(&e).await;
        let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
        hookrelay_tests::wait_until("the outcome counted", WAIT, || async {
            stack.metrics.outcomes(outcome::FAILED) + stack.metrics.outcomes(outcome::DELIVERED)
                > before
        })
        .await;
        d[0].status
    };
    assert_eq!(fail_once().await, DeliveryStatus::Delivered);
    assert_eq!(fail_once().await, DeliveryStatus::Failed);
    assert!(enabled().await, "one failure is not an hour of failures");
    let stack = &stack;
    let sql = |q: &'static str| async move {
        stack.db.client().await.execute(q, &[]).await.unwrap();
    };
    // Both were created two hours ago; the first got through just now.
    sql("UPDATE deliveries SET created_at = now() - interval '2 hours'").await;
    assert_eq!(fail_once().await, DeliveryStatus::Failed);
    assert!(enabled().await, "a delivery succeeded within the hour");
    // Now nothing got through in the last hour.
    sql("UPDATE deliveries SET created_at = now() - interval '2 hours', last_attempt_at = now() - interval '2 hours'").await;
    assert_eq!(fail_once().await, DeliveryStatus::Failed);
    hookrelay_tests::wait_until("the webhook is disabled", WAIT, || async {
        !enabled().await
    })
    .await;
    let now = webhooks::get(&stack.db.client().await, &stack.cipher, "acme", "down")
        .await
        .unwrap();
    assert_eq!(
        now.disabled_reason.as_deref(),
        Some("every delivery failed for 1h")
    );
}

/// A sender stopped between disabling a webhook and announcing it: the next sender
/// announces it at start, once.
#[tokio::test]
async fn a_disabling_not_yet_announced_is_announced_by_the_next_sender() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    let mut ops = webhook("acme", "ops", &stack.receiver.url("/ops"));
    ops.event_types = vec![hookrelay_sender::WEBHOOK_DISABLED.into()];
    stack.create_webhook(ops).await;
    let gone = stack
        .create_webhook(webhook("acme", "gone", &stack.receiver.url("/gone")))
        .await;
    // What `webhooks::disable` leaves when the sender dies before publishing.
    let disabled = webhooks::disable(
        &stack.db.client().await,
        gone.id,
        "the receiver answered 410 Gone",
    )
    .await
    .unwrap();
    assert!(disabled.is_some());
    stack.start_sender().await;
    let announced = stack.receiver.wait_for("/ops", 1, WAIT).await;
    let body = announced[0].json();
    assert_eq!(body["data"]["webhook_id"], gone.id.to_string());
    assert_eq!(body["data"]["reason"], "the receiver answered 410 Gone");
    hookrelay_tests::wait_until("the announcement noted", WAIT, || async {
        !stack
            .db
            .client()
            .await
            .query_one(
                "SELECT announce_disabled FROM webhooks WHERE id = $1",
                &[&gone.id],
            )
            .await
            .unwrap()
            .get::<_, bool>(0)
    })
    .await;
    let events: i64 = stack
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM events WHERE type = $1",
            &[&hookrelay_sender::WEBHOOK_DISABLED],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(events, 1);
}

/// With a key set, secrets are stored encrypted and still used as they were given.
#[tokio::test]
async fn secrets_are_encrypted_at_rest_when_a_key_is_set() {
    let mut stack = TestStack::new().await;
    stack.cipher =
        hookrelay_store::Cipher::from_base64_key("q0Rq3kC2sS1KcmKx0fZ2mJ8wTnH4bV7yLpE6aD9uXcI=")
            .unwrap();
    stack.start_router().await;
    stack.start_sender().await;
    let signing = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut w = webhook("acme", "enc", &stack.receiver.url("/enc"));
    w.secret = Some(Secret::new("basic-pass"));
    w.signing_secret = Some(Secret::new(signing));
    stack.create_webhook(w).await;
    let row = stack
        .db
        .client()
        .await
        .query_one(
            "SELECT secret, signing_secrets::text AS signing FROM webhooks WHERE key = 'enc'",
            &[],
        )
        .await
        .unwrap();
    let (secret, signing_stored): (String, String) = (row.get("secret"), row.get("signing"));
    assert!(secret.starts_with("enc:v1:"), "{secret}");
    assert!(!secret.contains("basic-pass") && !signing_stored.contains("MfKQ9r8"));

    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    let got = stack.receiver.wait_for("/enc", 1, WAIT).await;
    assert_eq!(
        got[0].header("authorization").as_deref(),
        Some("Basic OmJhc2ljLXBhc3M="),
        "base64(\":basic-pass\")"
    );
    standardwebhooks::Webhook::new(signing)
        .unwrap()
        .verify(&got[0].body, &got[0].headers)
        .expect("signed with the decrypted secret");
}
