use std::collections::BTreeMap;
use std::time::Duration;

use hookrelay_metrics::outcome;
use hookrelay_model::retry::RetryPolicy;
use hookrelay_model::webhook::{BodyFormat, Secret, WebhookUpdate};
use hookrelay_model::wire::{self, DeliveryMessage};
use hookrelay_store::Cipher;
use hookrelay_store::deliveries::{self, DeliveryStatus};
use hookrelay_store::environments;
use hookrelay_store::webhooks::{self};
use hookrelay_tests::stack::{event, webhook};
use hookrelay_tests::{Behaviour, TestStack, wait_until};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

async fn running() -> TestStack {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    stack
}

#[tokio::test]
async fn json_body_is_the_payload_without_private_fields_with_receiver_headers() {
    let stack = running().await;
    let mut w = webhook("acme", "managed", &stack.receiver.url("/managed"));
    w.secret = Some(Secret::new("s3cret"));
    stack.create_webhook(w).await;
    let e = event(
        "acme",
        "headless_import_needs_review",
        json!({
            "payload": {"event": "headless_import_needs_review", "data": {"id": "imp-1", "headless": {"status": "NEEDS_REVIEW", "review_url": "https://secret", "original_file_download": "https://file"}}},
            "private_fields": ["/data/headless/review_url", "/data/headless/original_file_download"]
        }),
    );
    stack.publish(&e).await;
    let got = stack.receiver.wait_for("/managed", 1, WAIT).await;
    let r = &got[0];
    assert_eq!(
        r.json(),
        json!({"event": "headless_import_needs_review", "data": {"id": "imp-1", "headless": {"status": "NEEDS_REVIEW"}}})
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    // base64(":s3cret"): the secret is the password, the username is empty.
    assert_eq!(
        r.header("authorization").as_deref(),
        Some("Basic OnMzY3JldA==")
    );
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(r.header("webhook-id"), Some(d[0].id.to_string()));
    assert!(
        r.header("webhook-timestamp")
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 1_700_000_000
    );
    assert!(r.header("user-agent").unwrap().starts_with("hookrelay/"));
    assert_eq!(r.header("x-hookrelay-event-id"), Some(e.id.to_string()));
    assert_eq!(d[0].status, DeliveryStatus::Delivered);
}

#[tokio::test]
async fn basic_webhooks_post_only_the_upload_id_form_encoded() {
    let stack = running().await;
    let with_upload = event(
        "acme",
        "import_completed",
        json!({"webhook_url": stack.receiver.url("/basic"), "upload_id": "7df3a66d-b7bb-4da6-9244-b4e22c7d7ab0"}),
    );
    let without = event(
        "acme",
        "import_completed",
        json!({"webhook_url": stack.receiver.url("/basic")}),
    );
    stack.publish(&with_upload).await;
    stack.publish(&without).await;
    let got = stack.receiver.wait_for("/basic", 2, WAIT).await;
    let bodies: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(r.body.to_vec()).unwrap())
        .collect();
    assert!(
        bodies.contains(&"uploadId=7df3a66d-b7bb-4da6-9244-b4e22c7d7ab0".to_owned()),
        "{bodies:?}"
    );
    assert!(
        bodies.contains(&format!("uploadId={}", without.id)),
        "defaults to the event id: {bodies:?}"
    );
    assert!(
        got.iter()
            .all(|r| r.header("content-type").as_deref()
                == Some("application/x-www-form-urlencoded"))
    );
    assert!(got.iter().all(|r| r.header("authorization").is_none()));
}

#[tokio::test]
async fn url_templates_resolve_per_environment_and_unresolved_ones_fail_without_a_request() {
    let stack = running().await;
    let c = stack.db.client().await;
    let addr = stack.receiver.addr.to_string();
    environments::set(
        &c,
        "acme",
        "Production",
        &BTreeMap::from([
            ("HOST".into(), addr.clone()),
            ("PATH".into(), "prod".into()),
        ]),
    )
    .await
    .unwrap();
    environments::set(
        &c,
        "acme",
        "Sandbox",
        &BTreeMap::from([
            ("HOST".into(), addr.clone()),
            ("PATH".into(), "sandbox".into()),
        ]),
    )
    .await
    .unwrap();
    environments::set(
        &c,
        "globex",
        "Staging",
        &BTreeMap::from([("HOST".into(), addr), ("PATH".into(), "stolen".into())]),
    )
    .await
    .unwrap();
    stack
        .create_webhook(webhook("acme", "templated", "http://{{HOST}}/{{PATH}}"))
        .await;

    let prod = event(
        "acme",
        "embed_initialized",
        json!({"environment": "Production"}),
    );
    let sandbox = event(
        "acme",
        "embed_initialized",
        json!({"environment": "Sandbox"}),
    );
    let staging = event(
        "acme",
        "embed_initialized",
        json!({"environment": "Staging"}),
    );
    for e in [&prod, &sandbox, &staging] {
        stack.publish(e).await;
    }
    stack.receiver.wait_for("/prod", 1, WAIT).await;
    stack.receiver.wait_for("/sandbox", 1, WAIT).await;
    let failed = stack.wait_settled("acme", &staging.id, 1, WAIT).await;
    assert_eq!(failed[0].status, DeliveryStatus::Failed);
    let error = failed[0].last_error.clone().unwrap();
    assert!(
        error.contains("{{HOST}}") && error.contains("Staging"),
        "{error}"
    );
    let letters = stack.dead_letters(1, WAIT).await;
    assert_eq!(
        letters[0].header(wire::HEADER_REASON).as_deref(),
        Some("permanent failure")
    );
    assert!(
        stack.receiver.received_on("/stolen").is_empty(),
        "another tenant's variables are never used"
    );
    assert_eq!(stack.receiver.all().len(), 2);
}

#[tokio::test]
async fn a_2xx_is_delivered_once_with_its_attempt_recorded() {
    let stack = running().await;
    stack.receiver.respond("/ok", Behaviour::Status(204));
    stack
        .create_webhook(webhook("acme", "ok", &stack.receiver.url("/ok")))
        .await;
    let e = event("acme", "x", json!({}));
    stack.publish(&e).await;
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered);
    let attempts = stack.attempts_of(d[0].id).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status_code, Some(204));
    assert_eq!(attempts[0].outcome, "delivered");
    assert!(attempts[0].latency_ms > 0.0);
    assert_eq!(stack.receiver.received_on("/ok").len(), 1);
}

#[tokio::test]
async fn a_429_is_tried_three_times_then_dead_lettered_with_the_reason() {
    let stack = running().await;
    stack.receiver.respond("/busy", Behaviour::Status(429));
    let w = stack
        .create_webhook(webhook("acme", "busy", &stack.receiver.url("/busy")))
        .await;
    let e = event("acme", "x", json!({}));
    stack.publish(&e).await;
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Failed);
    assert_eq!(d[0].attempts, 3);
    assert_eq!(d[0].last_status, Some(429));
    let attempts = stack.attempts_of(d[0].id).await;
    let outcomes: Vec<&str> = attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["retry", "retry", "failed"]);
    assert!(attempts.iter().all(|a| a.status_code == Some(429)));
    assert_eq!(stack.receiver.received_on("/busy").len(), 3);
    let got = stack.receiver.received_on("/busy");
    assert!(
        got.iter()
            .all(|r| r.header("webhook-id") == got[0].header("webhook-id")),
        "same webhook-id on every retry"
    );
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(200),
        "retry waits its delay"
    );

    let letters = stack.dead_letters(1, WAIT).await;
    let l = &letters[0];
    assert_eq!(
        l.header(wire::HEADER_REASON).as_deref(),
        Some("retries exhausted")
    );
    assert_eq!(l.header(wire::HEADER_LAST_STATUS).as_deref(), Some("429"));
    assert_eq!(l.header(wire::HEADER_ATTEMPTS).as_deref(), Some("3"));
    assert_eq!(l.header(wire::HEADER_WEBHOOK_ID), Some(w.id.to_string()));
    assert_eq!(l.header(wire::HEADER_EVENT_ID), Some(e.id.to_string()));
    let body = DeliveryMessage::from_json(&l.body).unwrap();
    assert_eq!(body.delivery_id, d[0].id);
}

#[tokio::test]
async fn a_timeout_is_tried_three_times() {
    let stack = running().await;
    stack.receiver.respond("/hang", Behaviour::Hang);
    stack
        .create_webhook(webhook("acme", "hang", &stack.receiver.url("/hang")))
        .await;
    let e = event("acme", "x", json!({}));
    stack.publish(&e).await;
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Failed);
    let attempts = stack.attempts_of(d[0].id).await;
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts.iter().all(
            |a| a.status_code.is_none() && a.error.as_deref().unwrap().starts_with("timed out")
        )
    );
    assert!(
        attempts.iter().all(|a| a.latency_ms >= 500.0),
        "waited the full timeout"
    );
    assert_eq!(
        stack.dead_letters(1, WAIT).await[0]
            .header(wire::HEADER_REASON)
            .as_deref(),
        Some("retries exhausted")
    );
}

#[tokio::test]
async fn a_500_is_not_retried_by_default_but_is_when_the_policy_says_5xx() {
    let stack = running().await;
    stack.receiver.respond("/default", Behaviour::Status(500));
    stack.receiver.respond("/widened", Behaviour::Status(503));
    stack
        .create_webhook(webhook("acme", "default", &stack.receiver.url("/default")))
        .await;
    let mut widened = webhook("acme", "widened", &stack.receiver.url("/widened"));
    widened.retry_on = RetryPolicy::parse(&["timeout", "429", "5xx"]).unwrap();
    stack.create_webhook(widened).await;
    let e = event("acme", "x", json!({}));
    stack.publish(&e).await;
    stack.wait_settled("acme", &e.id, 2, WAIT).await;
    assert_eq!(stack.receiver.received_on("/default").len(), 1);
    assert_eq!(stack.receiver.received_on("/widened").len(), 3);
    let letters = stack.dead_letters(2, WAIT).await;
    let mut reasons: Vec<String> = letters
        .iter()
        .map(|l| l.header(wire::HEADER_REASON).unwrap())
        .collect();
    reasons.sort();
    assert_eq!(reasons, vec!["not retryable", "retries exhausted"]);
}

#[tokio::test]
async fn retry_after_is_honoured_within_the_cap() {
    let stack = running().await;
    // The stack's retry delays are 200ms and 400ms; Retry-After asks for more.
    stack.receiver.respond(
        "/later",
        Behaviour::Sequence(vec![
            Behaviour::RetryAfter(429, "1".into()),
            Behaviour::Status(200),
        ]),
    );
    stack.receiver.respond(
        "/capped",
        Behaviour::Sequence(vec![
            Behaviour::RetryAfter(503, "3600".into()),
            Behaviour::Status(200),
        ]),
    );
    stack
        .create_webhook(webhook("acme", "later", &stack.receiver.url("/later")))
        .await;
    let mut capped = webhook("acme", "capped", &stack.receiver.url("/capped"));
    capped.retry_on = RetryPolicy::parse(&["503"]).unwrap();
    stack.create_webhook(capped).await;
    let e = event("acme", "x", json!({}));
    stack.publish(&e).await;
    let later = stack.receiver.wait_for("/later", 2, WAIT).await;
    assert!(
        later[1].at - later[0].at >= Duration::from_secs(1),
        "waited Retry-After: {:?}",
        later[1].at - later[0].at
    );
    // Capped at 2s (the stack's retry-after max) instead of an hour.
    let capped = stack.receiver.wait_for("/capped", 2, WAIT).await;
    assert!(capped[1].at - capped[0].at >= Duration::from_secs(2));
    let d = stack.wait_settled("acme", &e.id, 2, WAIT).await;
    assert!(d.iter().all(|d| d.status == DeliveryStatus::Delivered));
}

#[tokio::test]
async fn a_deleted_webhook_is_dead_lettered_and_a_disabled_one_holds_without_a_post() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    let off = stack
        .create_webhook(webhook("acme", "off", &stack.receiver.url("/off")))
        .await;
    let gone = stack
        .create_webhook(webhook("acme", "gone", &stack.receiver.url("/gone")))
        .await;
    let e = event("acme", "x", json!({}));
    stack.publish(&e).await;
    wait_until("routed", WAIT, || async {
        stack
            .deliveries_of("acme", &e.id)
            .await
            .iter()
            .filter(|d| d.published)
            .count()
            == 2
    })
    .await;
    // Changed after routing, before sending.
    let c = stack.db.client().await;
    webhooks::update(
        &c,
        &Cipher::none(),
        "acme",
        &off.key,
        &WebhookUpdate {
            enabled: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    webhooks::delete(&c, "acme", &gone.key).await.unwrap();
    stack.start_sender().await;
    let d = stack.wait_settled("acme", &e.id, 2, WAIT).await;
    let status_of = |id| d.iter().find(|d| d.webhook_id == Some(id)).unwrap().status;
    assert_eq!(status_of(gone.id), DeliveryStatus::Failed);
    assert_eq!(
        status_of(off.id),
        DeliveryStatus::Held,
        "a disabled webhook's delivery waits for it to be enabled"
    );
    let letters = stack.dead_letters(1, WAIT).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].header(wire::HEADER_REASON).as_deref(),
        Some("webhook deleted")
    );
    assert!(stack.receiver.all().is_empty());
}

#[tokio::test]
async fn a_restarted_sender_loses_nothing_and_does_not_repost_delivered_ones() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack
        .create_webhook(webhook("acme", "a", &stack.receiver.url("/a")))
        .await;
    let sender = stack.start_sender().await;
    let events: Vec<_> = (0..40).map(|_| event("acme", "x", json!({}))).collect();
    stack.publisher.publish_batch(&events).await.unwrap();
    wait_until("some delivered", WAIT, || async {
        sender.metrics.outcomes(outcome::DELIVERED) >= 5
    })
    .await;
    stack.stop_roles().await;
    let delivered_before = stack.receiver.received_on("/a").len();

    // The messages a stopped sender did not ack are redelivered to the new one; the
    // rows already delivered are acked without a POST.
    stack.start_router().await;
    let second = stack.start_sender().await;
    for e in &events {
        stack.publish(e).await; // upstream retries too: still de-duplicated
    }
    for e in &events {
        stack.wait_settled("acme", &e.id, 1, WAIT).await;
    }
    let got = stack.receiver.received_on("/a");
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.header("x-hookrelay-event-id").unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "every event arrived");
    assert_eq!(
        got.len(),
        40,
        "none twice (before restart: {delivered_before})"
    );
    assert_eq!(second.metrics.outcomes(outcome::FAILED), 0);
}

#[tokio::test]
async fn a_hanging_endpoint_does_not_hold_back_a_healthy_one() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    let mut config = stack.sender_config();
    config.concurrency = 4;
    config.per_webhook_concurrency = 2;
    config.http_timeout = Duration::from_secs(30);
    stack.start_sender_with(config).await;
    stack.receiver.respond("/slow", Behaviour::Hang);
    let mut slow = webhook("acme", "slow", &stack.receiver.url("/slow"));
    slow.event_types = vec!["to_slow".into()];
    stack.create_webhook(slow).await;
    let mut fast = webhook("acme", "fast", &stack.receiver.url("/fast"));
    fast.event_types = vec!["to_fast".into()];
    stack.create_webhook(fast).await;
    // The slow endpoint's deliveries are first in the queue and outnumber the slots.
    let slow_events: Vec<_> = (0..10)
        .map(|_| event("acme", "to_slow", json!({})))
        .collect();
    stack.publisher.publish_batch(&slow_events).await.unwrap();
    stack.receiver.wait_for("/slow", 2, WAIT).await;
    let fast_events: Vec<_> = (0..20)
        .map(|_| event("acme", "to_fast", json!({})))
        .collect();
    stack.publisher.publish_batch(&fast_events).await.unwrap();
    stack.receiver.wait_for("/fast", 20, WAIT).await;
    assert!(
        stack.receiver.received_on("/slow").len() <= 2,
        "never more than the per-webhook cap in flight"
    );
    for e in &slow_events {
        assert_eq!(
            stack.deliveries_of("acme", &e.id).await[0].status,
            DeliveryStatus::Pending
        );
    }
}

#[tokio::test]
async fn json_format_can_be_switched_to_form_on_a_stored_webhook() {
    let stack = running().await;
    let mut w = webhook("acme", "form", &stack.receiver.url("/form"));
    w.format = BodyFormat::Form;
    stack.create_webhook(w).await;
    let e = event("acme", "import_completed", json!({"upload_id": "u-1"}));
    stack.publish(&e).await;
    let got = stack.receiver.wait_for("/form", 1, WAIT).await;
    assert_eq!(&got[0].body[..], b"uploadId=u-1");
}

#[tokio::test]
async fn the_upstream_traceparent_reaches_the_receiver_and_the_delivery_row() {
    let stack = running().await;
    stack
        .create_webhook(webhook("acme", "traced", &stack.receiver.url("/traced")))
        .await;
    let e = event("acme", "x", json!({}));
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    stack.publish_traced(&e, traceparent).await;
    let got = stack.receiver.wait_for("/traced", 1, WAIT).await;
    assert_eq!(got[0].header("traceparent").as_deref(), Some(traceparent));
    let row = stack.trace_id_of(&e.id).await;
    assert_eq!(row.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_counts_as_a_failure() {
    let stack = running().await;
    stack.receiver.respond("/moved", Behaviour::Status(302));
    stack
        .create_webhook(webhook("acme", "moved", &stack.receiver.url("/moved")))
        .await;
    let e = event("acme", "x", json!({}));
    stack.publish(&e).await;
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Failed);
    assert_eq!(d[0].last_status, Some(302));
    assert_eq!(stack.receiver.received_on("/moved").len(), 1);
    assert!(
        stack.receiver.received_on("/followed").is_empty(),
        "the redirect was not followed"
    );
    assert_eq!(
        stack.dead_letters(1, WAIT).await[0]
            .header(wire::HEADER_REASON)
            .as_deref(),
        Some("not retryable")
    );
}

/// A receiver answering with NUL bytes (which Postgres text refuses) gets one POST
/// per delivery, its answer stored with the NUL replaced; the deliveries recorded in
/// the same batch are not disturbed.
#[tokio::test]
async fn a_response_with_nul_bytes_is_recorded_and_not_posted_again() {
    let stack = running().await;
    stack
        .receiver
        .respond("/nul", Behaviour::Body(200, b"ok\0then\0more".to_vec()));
    stack
        .create_webhook(webhook("acme", "nul", &stack.receiver.url("/nul")))
        .await;
    stack
        .create_webhook(webhook("acme", "plain", &stack.receiver.url("/plain")))
        .await;
    let events: Vec<_> = (0..20).map(|_| event("acme", "x", json!({}))).collect();
    for e in &events {
        stack.publish(e).await;
    }
    for e in &events {
        let ds = stack.wait_settled("acme", &e.id, 2, WAIT).await;
        for d in &ds {
            assert_eq!(d.status, DeliveryStatus::Delivered, "{d:?}");
            let attempts = stack.attempts_of(d.id).await;
            assert_eq!(attempts.len(), 1, "{attempts:?}");
        }
    }
    assert_eq!(
        stack.receiver.received_on("/nul").len(),
        20,
        "one POST each"
    );
    assert_eq!(
        stack.receiver.received_on("/plain").len(),
        20,
        "one POST each"
    );
    let d = stack.deliveries_of("acme", &events[0].id).await;
    let snippets: Vec<_> =
        futures_util::future::join_all(d.iter().map(|d| stack.attempts_of(d.id)))
            .await
            .into_iter()
            .flatten()
            .filter_map(|a| a.response_snippet)
            .collect();
    assert!(
        snippets.iter().any(|s| s == "ok\u{FFFD}then\u{FFFD}more"),
        "{snippets:?}"
    );
}

/// Two copies of one delivery message can be in flight (a replay beside a late
/// redelivery): a failed attempt recorded after a delivered one keeps the delivery
/// delivered, and both attempts stay in its log.
#[tokio::test]
async fn a_late_failure_never_undoes_a_delivery() {
    let stack = running().await;
    stack
        .create_webhook(webhook("acme", "ok", &stack.receiver.url("/ok")))
        .await;
    let e = event("acme", "x", json!({}));
    stack.publish(&e).await;
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered);
    let late = deliveries::AttemptRecord {
        delivery_id: d[0].id,
        attempt: 2,
        started_at: time::OffsetDateTime::now_utc(),
        latency_ms: 1.0,
        status_code: Some(500),
        error: Some("HTTP 500".into()),
        response_snippet: None,
        status: DeliveryStatus::Failed,
        next_attempt_at: None,
        why_failed: None,
    };
    deliveries::record_attempts(&stack.db.client().await, &[late])
        .await
        .unwrap();
    deliveries::mark_failed(&stack.db.client().await, d[0].id, "webhook disabled")
        .await
        .unwrap();
    let after = stack.deliveries_of("acme", &e.id).await;
    assert_eq!(after[0].status, DeliveryStatus::Delivered);
    assert_eq!(stack.attempts_of(d[0].id).await.len(), 2);
}

/// kill -9 of a sender while its POST is in flight (sent, not answered, nothing
/// recorded): the next sender POSTs once more, with the same `webhook-id`, and the
/// delivery is delivered once.
#[tokio::test]
async fn a_sender_killed_mid_request_posts_once_more_with_the_same_id() {
    let mut stack = TestStack::for_processes().await;
    stack.receiver.respond(
        "/crash",
        Behaviour::Sequence(vec![Behaviour::Hang, Behaviour::Status(200)]),
    );
    stack
        .create_webhook(webhook("acme", "crash", &stack.receiver.url("/crash")))
        .await;
    stack.start_router().await;
    let binary = hookrelay_tests::hookrelay_binary();
    let mut sender = hookrelay_tests::bench::start_role(&binary, &stack, "sender");
    let e = event("acme", "x", json!({}));
    stack.publish(&e).await;
    stack.receiver.wait_for("/crash", 1, WAIT).await;
    sender.kill_9();
    let _next = hookrelay_tests::bench::start_role(&binary, &stack, "sender");
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered);
    let got = stack.receiver.received_on("/crash");
    assert_eq!(got.len(), 2, "the interrupted POST, then one more");
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    assert_eq!(
        stack.attempts_of(d[0].id).await.len(),
        1,
        "the interrupted one was never recorded"
    );
}

/// The answer's body is kept in the attempt log, cut at the configured size.
#[tokio::test]
async fn a_long_answer_is_stored_cut_at_the_snippet_size() {
    let stack = running().await;
    stack
        .receiver
        .respond("/long", Behaviour::Body(200, vec![b'a'; 5000]));
    stack
        .create_webhook(webhook("acme", "long", &stack.receiver.url("/long")))
        .await;
    let e = event("acme", "x", json!({}));
    stack.publish(&e).await;
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    let attempts = stack.attempts_of(d[0].id).await;
    let snippet = attempts[0].response_snippet.clone().unwrap_or_default();
    assert_eq!(snippet.len(), stack.sender_config().response_snippet_bytes);
    assert!(snippet.bytes().all(|b| b == b'a'));
}

#[tokio::test]
async fn a_retry_whose_delay_queue_message_is_lost_is_sent_again_from_its_row() {
    let mut stack = TestStack::new().await;
    // Retry-After 2 puts the retry in the 2 s delay queue: time to take it away.
    stack.receiver.respond(
        "/once",
        Behaviour::Sequence(vec![
            Behaviour::RetryAfter(429, "2".into()),
            Behaviour::Status(200),
        ]),
    );
    stack
        .create_webhook(webhook("acme", "once", &stack.receiver.url("/once")))
        .await;
    stack.start_router().await;
    let mut config = stack.sender_config();
    config.retry_sweep_after = Some(Duration::from_millis(500));
    stack.start_sender_with(config).await;
    let e = event("acme", "x", json!({}));
    stack.publish(&e).await;
    let delay_queue = stack
        .topology
        .delay_queue_name(stack.topology.delay_at_least(Duration::from_secs(2)));
    stack
        .wait_queue_len(&delay_queue, 1, Duration::from_secs(2))
        .await;
    // The broker loses the retry (as RabbitMQ 3.10 can leave it stuck).
    assert_eq!(stack.drain_queue(&delay_queue).await.len(), 1);
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered, "{:?}", d[0]);
    assert_eq!(d[0].attempts, 2);
    assert_eq!(stack.receiver.received_on("/once").len(), 2);
}

/// Whether the sender consumes its queue again, looked at on a channel of its own
/// (a look at a missing queue closes its channel).
async fn sender_consumes(stack: &TestStack) -> bool {
    let Ok(channel) = stack.connection.create_channel().await else {
        return false;
    };
    let found = hookrelay_amqp::inspect_queue(&channel, &stack.topology.deliveries_queue()).await;
    let _ = channel.close(200, "done".into()).await;
    found.is_ok_and(|q| q.consumer_count() == 1)
}

/// Deletes the deliveries queue until the sender has begun its `session`th session
/// (counted by its metrics) and consumes the queue it declared again. Reconnecting is
/// a condition, not a speed; and on a loaded broker a quorum queue's delete was seen
/// to answer while the queue stayed, its consumer untouched: then it is deleted again.
async fn reconnect_sender(stack: &TestStack, session: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while stack.metrics.consumer_sessions("sender") < session {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sender did not begin session {session} within 90 s of deleting its queue"
        );
        let _ = stack
            .channel
            .queue_delete(
                stack.topology.deliveries_queue().as_str().into(),
                lapin::options::QueueDeleteOptions::default(),
            )
            .await;
        let ended = tokio::time::Instant::now() + Duration::from_secs(10);
        while stack.metrics.consumer_sessions("sender") < session
            && tokio::time::Instant::now() < ended
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    wait_until("the new session consumes", Duration::from_secs(60), || {
        sender_consumes(stack)
    })
    .await;
}

#[tokio::test]
async fn after_reconnecting_a_lost_retry_is_sent_by_the_first_sweep_that_finds_it() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    let mut config = stack.sender_config();
    // A sweep every 2.5 s; a claimed row comes back to the sweep 10 s later.
    config.retry_sweep_after = Some(Duration::from_secs(10));
    stack.start_sender_with(config).await;
    // Three reconnections: a session's sweep used to outlive it and keep claiming
    // rows it could no longer publish on its closed channel.
    wait_until("the sender consumes", WAIT, || async {
        stack.metrics.consumer_sessions("sender") >= 1 && sender_consumes(&stack).await
    })
    .await;
    for session in 2..=4 {
        reconnect_sender(&stack, session).await;
    }
    let delay_queue = stack
        .topology
        .delay_queue_name(stack.topology.delay_at_least(Duration::from_secs(2)));
    // Each lost retry is found by whichever sweep wakes first; with a stale one
    // among them a retry would wait out another 10 s. Three in turn leave no luck.
    for round in 0..3 {
        let tenant = format!("acme{round}");
        stack.receiver.respond(
            &format!("/{tenant}"),
            Behaviour::Sequence(vec![
                Behaviour::RetryAfter(429, "2".into()),
                Behaviour::Status(200),
            ]),
        );
        stack
            .create_webhook(webhook(
                &tenant,
                "once",
                &stack.receiver.url(&format!("/{tenant}")),
            ))
            .await;
        let e = event(&tenant, "x", json!({}));
        stack.publish(&e).await;
        stack.wait_queue_len(&delay_queue, 1, WAIT).await;
        assert_eq!(stack.drain_queue(&delay_queue).await.len(), 1);
        // The retry was due long ago: overdue past the grace at the next sweep.
        stack
            .db
            .client()
            .await
            .execute(
                "UPDATE deliveries SET next_attempt_at = now() - interval '1 minute' \
                 WHERE tenant = $1 AND event_id = $2",
                &[&tenant, &e.id.as_str()],
            )
            .await
            .expect("backdate the retry");
        let d = stack
            .wait_settled(&tenant, &e.id, 1, Duration::from_secs(7))
            .await;
        assert_eq!(d[0].status, DeliveryStatus::Delivered, "{:?}", d[0]);
        assert_eq!(d[0].attempts, 2);
    }
}

/// Publishes a delivery message body to the deliveries exchange, as a router does.
async fn publish_deliveries(stack: &TestStack, body: &[u8]) {
    let properties = hookrelay_amqp::persistent("batch", Default::default()).unwrap();
    hookrelay_amqp::publish_confirmed(
        &stack.channel,
        &stack.topology.deliveries_exchange(),
        "acme",
        body,
        properties,
    )
    .await
    .expect("publish to the deliveries exchange");
}

#[tokio::test]
async fn a_routers_batch_is_one_message_and_a_batch_sent_again_skips_what_was_settled() {
    let mut stack = TestStack::new().await;
    stack
        .create_webhook(webhook("acme", "a", &stack.receiver.url("/a")))
        .await;
    let events: Vec<_> = (0..20).map(|_| event("acme", "x", json!({}))).collect();
    // Queued before a router runs, the events fill its first batch.
    let messages = stack.routed_together(&events).await;
    assert_eq!(
        messages.len(),
        1,
        "one message for the batch's 20 deliveries"
    );
    let parts = wire::read_batch(&messages[0].body)
        .expect("a batch")
        .expect("readable");
    assert_eq!(parts.len(), 20);

    // The first five alone first, as if the batch had been cut short by a crash.
    stack.start_sender().await;
    publish_deliveries(&stack, &wire::batch_to_json(&parts[..5])).await;
    stack.receiver.wait_for("/a", 5, WAIT).await;
    // The whole batch again: only the fifteen not yet settled are sent.
    publish_deliveries(&stack, &messages[0].body).await;
    for e in &events {
        let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
        assert_eq!(d[0].status, DeliveryStatus::Delivered, "{:?}", d[0]);
        assert_eq!(d[0].attempts, 1, "{:?}", d[0]);
    }
    let got = stack.receiver.received_on("/a");
    let mut ids: Vec<String> = got.iter().filter_map(|r| r.header("webhook-id")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (got.len(), ids.len()),
        (20, 20),
        "each delivery POSTed once"
    );
    // Both messages were acked: nothing comes back once the sender is gone.
    stack.stop_roles().await;
    assert_eq!(stack.queue_len(&stack.topology.deliveries_queue()).await, 0);
}
