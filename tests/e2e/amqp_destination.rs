//! Webhooks whose destination is a broker (`amqp://`): each delivery published to a
//! vhost of its own on the machine's RabbitMQ (made with `rabbitmqctl` and a user of
//! its own), persistent and confirmed, with the Standard Webhooks headers as message
//! headers; the credentials sealed and masked; a missing exchange, refused
//! credentials and an unroutable message are failed attempts under the webhook's
//! retry policy, then dead letters naming why; the SSRF guard checks the broker.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use hookrelay_model::retry::RetryPolicy;
use hookrelay_model::webhook::Secret;
use hookrelay_store::deliveries::DeliveryStatus;
use hookrelay_tests::TestStack;
use hookrelay_tests::broker_vhost::BrokerVhost;
use hookrelay_tests::stack::{event, webhook};
use lapin::types::AMQPValue;
use serde_json::json;

use crate::admin::Api;

const WAIT: Duration = Duration::from_secs(20);
const KEY: &str = "q0Rq3kC2sS1KcmKx0fZ2mJ8wTnH4bV7yLpE6aD9uXcI=";
const SIGNING: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A stack whose roles and API seal and open with a secret key.
async fn sealed_stack() -> TestStack {
    let mut stack = TestStack::new().await;
    stack.cipher = hookrelay_store::Cipher::from_base64_key(KEY).unwrap();
    stack
}

async fn stored(stack: &TestStack, key: &str) -> (String, Option<String>) {
    let row = stack
        .db
        .client()
        .await
        .query_one(
            "SELECT url, url_credentials FROM webhooks WHERE key = $1",
            &[&key],
        )
        .await
        .unwrap();
    (row.get("url"), row.get("url_credentials"))
}

/// The failed attempts' errors of the one delivery of `event_id`, once it failed.
async fn failed_attempts(stack: &TestStack, event_id: &str) -> Vec<String> {
    let settled = stack.wait_settled("acme", event_id, 1, WAIT).await;
    assert_eq!(settled[0].status, DeliveryStatus::Failed, "{settled:?}");
    stack
        .attempts_of(settled[0].id)
        .await
        .into_iter()
        .map(|a| {
            assert_eq!(a.status_code, None, "no HTTP status for a broker");
            a.error.unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn an_amqp_webhook_publishes_each_delivery_persistent_signed_and_confirmed() {
    let broker = BrokerVhost::create().await;
    let (connection, channel) = broker.connect().await;
    BrokerVhost::exchange_with_queue(&channel, "orders", "orders.created", "created").await;
    BrokerVhost::exchange_with_queue(&channel, "orders", "orders.env", "from-env").await;
    let mut stack = sealed_stack().await;
    stack.start_router().await;
    let mut config = stack.sender_config();
    config.amqp_destination_idle = Duration::from_secs(3);
    stack.start_sender_with(config).await;
    let api = Api::new(&stack, None).await;

    let (status, created) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({
                "key": "orders",
                "url": broker.url(),
                "amqp_exchange": "orders",
                "amqp_routing_key": "created",
                "signing_secret": SIGNING,
                "secret": "basic-auth-is-for-http",
                "headers": {"x-team": "payments"},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let masked = format!("amqp://********@127.0.0.1:5672/{}", broker.vhost);
    assert_eq!(created["url"], masked.as_str(), "credentials masked");
    assert!(!created.to_string().contains(&broker.password), "{created}");
    assert_eq!(created["amqp_exchange"], "orders");
    assert_eq!(created["amqp_routing_key"], "created");
    let (url, credentials) = stored(&stack, "orders").await;
    assert_eq!(url, masked);
    let credentials = credentials.expect("credentials stored");
    assert!(credentials.starts_with("enc:v1:"), "sealed: {credentials}");
    assert!(!credentials.contains(&broker.password));

    // The password from the event's environment, `{{VARIABLES}}` as in HTTP URLs.
    let mut variables = BTreeMap::new();
    variables.insert("BROKER_PASSWORD".to_owned(), broker.password.clone());
    hookrelay_store::environments::set(&stack.db.client().await, "acme", "Production", &variables)
        .await
        .unwrap();
    let templated = format!(
        "amqp://{}:{{{{BROKER_PASSWORD}}}}@127.0.0.1:5672/{}",
        broker.user, broker.vhost
    );
    let (status, body) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({
                "key": "orders-env",
                "url": templated,
                "amqp_exchange": "orders",
                "amqp_routing_key": "from-env",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let e = event(
        "acme",
        "file_uploaded",
        json!({"environment": "Production", "payload": {"event": "file_uploaded", "data": {"rows": 7}}}),
    );
    stack.publish(&e).await;
    let settled = stack.wait_settled("acme", &e.id, 2, WAIT).await;
    assert!(
        settled
            .iter()
            .all(|d| d.status == DeliveryStatus::Delivered),
        "{settled:?}"
    );

    for queue in ["orders.created", "orders.env"] {
        let got = BrokerVhost::take(&channel, queue)
            .await
            .unwrap_or_else(|| panic!("a message in {queue}"));
        assert_eq!(
            got.json(),
            json!({"event": "file_uploaded", "data": {"rows": 7}}),
            "the payload as a POST carries it"
        );
        let id = got.header("webhook-id").expect("webhook-id");
        assert!(
            settled.iter().any(|d| d.id.to_string() == id),
            "webhook-id is the delivery id: {id}"
        );
        assert_eq!(
            got.properties.message_id().as_ref().map(|m| m.as_str()),
            Some(id.as_str()),
            "message_id is the Standard Webhooks message id"
        );
        assert_eq!(got.properties.delivery_mode(), &Some(2), "persistent");
        assert_eq!(
            got.properties.content_type().as_ref().map(|c| c.as_str()),
            Some("application/json")
        );
        assert_eq!(
            got.header(hookrelay_model::wire::HEADER_EVENT_ID)
                .as_deref(),
            Some(e.id.as_str())
        );
        let timestamp = got.header("webhook-timestamp").expect("webhook-timestamp");
        assert!(
            got.header("authorization").is_none(),
            "Basic auth is for HTTP"
        );
        assert!(!format!("{:?}", got.properties).contains("basic-auth-is-for-http"));
        if queue == "orders.created" {
            assert_eq!(got.header("x-team").as_deref(), Some("payments"));
            let signature = got.header("webhook-signature").expect("signed");
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert("webhook-id", id.parse().unwrap());
            headers.insert("webhook-timestamp", timestamp.parse().unwrap());
            headers.insert("webhook-signature", signature.parse().unwrap());
            standardwebhooks::Webhook::new(SIGNING)
                .unwrap()
                .verify(&got.body, &headers)
                .expect("signed as a POST is");
        }
        let headers = got.properties.headers().clone().unwrap_or_default();
        for (name, value) in headers.inner() {
            assert!(matches!(value, AMQPValue::LongString(_)), "{name} is text");
        }
    }
    for d in &settled {
        let attempts = stack.attempts_of(d.id).await;
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].status_code, None);
        assert_eq!(attempts[0].error, None);
    }

    // One pooled connection for the two webhooks (same broker, vhost and user),
    // closed once idle.
    assert_eq!(
        broker.connections_of_user().await,
        2,
        "the test's and the sender's"
    );
    hookrelay_tests::wait_until("the idle connection is closed", WAIT, || async {
        broker.connections_of_user().await == 1
    })
    .await;
    // A later delivery opens it again.
    let again = event(
        "acme",
        "file_uploaded",
        json!({"environment": "Production"}),
    );
    stack.publish(&again).await;
    let settled = stack.wait_settled("acme", &again.id, 2, WAIT).await;
    assert!(
        settled
            .iter()
            .all(|d| d.status == DeliveryStatus::Delivered)
    );
    assert!(
        BrokerVhost::take(&channel, "orders.created")
            .await
            .is_some()
    );

    // The mask given back keeps the credentials; another URL replaces them.
    let (status, updated) = api
        .call(
            Method::PATCH,
            "/v1/tenants/acme/webhooks/orders",
            Some(json!({"url": masked, "amqp_routing_key": "created"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let (_, kept) = stored(&stack, "orders").await;
    assert_eq!(kept.as_deref(), Some(credentials.as_str()));
    let _ = connection.close(200, "done".into()).await;
}

#[tokio::test]
async fn amqp_webhooks_are_refused_without_an_exchange_and_http_ones_with_one() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack, None).await;
    for (body, field) in [
        (
            json!({"key": "a", "url": "amqp://u:p@broker.test/vh"}),
            "amqp_exchange",
        ),
        (
            json!({"key": "b", "url": "https://a.test/x", "amqp_exchange": "x"}),
            "amqp_exchange",
        ),
        (
            json!({"key": "c", "url": "amqp://********@broker.test/vh", "amqp_exchange": "x"}),
            "url",
        ),
        (
            json!({"key": "d", "url": "amqp://broker.test/vh", "amqp_exchange": "x".repeat(256)}),
            "amqp_exchange",
        ),
    ] {
        let (status, answer) = api.post("/v1/tenants/acme/webhooks", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
        assert!(!answer.to_string().contains("u:p"), "{answer}");
    }
    // What the store sees whole: an exchange given alone to an HTTP webhook, a
    // broker URL given alone to one without an exchange.
    let (status, _) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({"key": "http", "url": "https://a.test/x"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for (change, field) in [
        (json!({"amqp_exchange": "x"}), "amqp_exchange"),
        (json!({"amqp_routing_key": "k"}), "amqp_routing_key"),
        (json!({"url": "amqp://u:p@broker.test/vh"}), "amqp_exchange"),
    ] {
        let (status, answer) = api
            .call(
                Method::PATCH,
                "/v1/tenants/acme/webhooks/http",
                Some(change.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{change}: {answer}");
        assert_eq!(answer["field"], field, "{change}: {answer}");
    }
    // A broker webhook moved to an HTTP URL drops its exchange and credentials.
    let (status, created) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({"key": "mq", "url": "amqp://u:p@broker.test/vh", "amqp_exchange": "x", "amqp_routing_key": "k"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, moved) = api
        .call(
            Method::PATCH,
            "/v1/tenants/acme/webhooks/mq",
            Some(json!({"url": "https://a.test/y"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["amqp_exchange"], serde_json::Value::Null);
    assert_eq!(moved["amqp_routing_key"], serde_json::Value::Null);
    assert_eq!(stored(&stack, "mq").await.1, None, "credentials removed");
}

#[tokio::test]
async fn a_missing_exchange_fails_each_attempt_then_dead_letters_naming_it() {
    let broker = BrokerVhost::create().await;
    let (connection, channel) = broker.connect().await;
    BrokerVhost::exchange_with_queue(&channel, "orders", "orders", "k").await;
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    // Two webhooks on one connection (same broker, vhost and user): the missing
    // exchange's refusals never fail the other's publishes.
    let mut fine = None;
    for (key, exchange) in [("nowhere", "no-such-exchange"), ("fine", "orders")] {
        let mut w = webhook("acme", key, &broker.url());
        w.amqp_exchange = Some(exchange.into());
        w.amqp_routing_key = Some("k".into());
        w.retry_on = RetryPolicy::parse(&["connect"]).unwrap();
        fine = Some(stack.create_webhook(w).await.id);
    }
    let events: Vec<_> = (0..3)
        .map(|_| event("acme", "file_uploaded", json!({})))
        .collect();
    for e in &events {
        stack.publish(e).await;
    }

    let letters = stack.dead_letters(3, WAIT).await;
    for e in &events {
        let settled = stack.wait_settled("acme", &e.id, 2, WAIT).await;
        for d in settled {
            let attempts = stack.attempts_of(d.id).await;
            let errors: Vec<String> = attempts
                .iter()
                .map(|a| a.error.clone().unwrap_or_default())
                .collect();
            if d.webhook_id == fine {
                assert_eq!(d.status, DeliveryStatus::Delivered, "{errors:?}");
                assert_eq!(errors, vec![String::new()], "never the other's refusal");
                continue;
            }
            assert_eq!(d.status, DeliveryStatus::Failed);
            assert_eq!(
                errors.len(),
                3,
                "the first attempt and two retries: {errors:?}"
            );
            for error in &errors {
                assert!(
                    error.contains("no-such-exchange") && error.contains("NOT_FOUND"),
                    "{error}"
                );
            }
        }
    }
    assert_eq!(broker_messages(&channel, "orders").await, 3);
    for letter in &letters {
        let reason = letter.header(hookrelay_model::wire::HEADER_ERROR);
        assert!(
            reason
                .as_deref()
                .is_some_and(|r| r.contains("no-such-exchange")),
            "{reason:?}"
        );
    }
    // The channel the broker closed is opened again for the next delivery.
    BrokerVhost::exchange_with_queue(&channel, "no-such-exchange", "q", "k").await;
    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    let settled = stack.wait_settled("acme", &e.id, 2, WAIT).await;
    assert!(
        settled
            .iter()
            .all(|d| d.status == DeliveryStatus::Delivered),
        "{settled:?}"
    );
    assert!(BrokerVhost::take(&channel, "q").await.is_some());
    let _ = connection.close(200, "done".into()).await;
}

/// Takes every message in `queue`; how many there were.
async fn broker_messages(channel: &lapin::Channel, queue: &str) -> usize {
    let mut n = 0;
    while BrokerVhost::take(channel, queue).await.is_some() {
        n += 1;
    }
    n
}

#[tokio::test]
async fn refused_credentials_fail_with_access_refused_under_the_retry_policy() {
    let broker = BrokerVhost::create().await;
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    // The default policy (timeout, 408, 429) does not retry a refusal.
    let mut w = webhook(
        "acme",
        "wrong-pw",
        &broker.url_with(&broker.user, "not-the-password"),
    );
    w.amqp_exchange = Some(String::new());
    w.amqp_routing_key = Some("q".into());
    stack.create_webhook(w).await;
    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    let letters = stack.dead_letters(1, WAIT).await;
    let errors = failed_attempts(&stack, &e.id).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("access refused"), "{}", errors[0]);
    assert!(!errors[0].contains("not-the-password"), "{}", errors[0]);
    let reason = letters[0].header(hookrelay_model::wire::HEADER_ERROR);
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains("access refused")),
        "{reason:?}"
    );
}

#[tokio::test]
async fn an_unroutable_message_is_a_failed_attempt() {
    let broker = BrokerVhost::create().await;
    let (connection, channel) = broker.connect().await;
    BrokerVhost::exchange_with_queue(&channel, "orders", "bound", "bound-key").await;
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    let mut w = webhook("acme", "unbound", &broker.url());
    w.amqp_exchange = Some("orders".into());
    w.amqp_routing_key = Some("nobody-binds-this".into());
    w.retry_on = RetryPolicy::parse(&["connect"]).unwrap();
    stack.create_webhook(w).await;
    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    stack.dead_letters(1, WAIT).await;
    let errors = failed_attempts(&stack, &e.id).await;
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|e| e.starts_with("unroutable") && e.contains("nobody-binds-this")),
        "{errors:?}"
    );
    assert!(BrokerVhost::take(&channel, "bound").await.is_none());
    let _ = connection.close(200, "done".into()).await;
}

#[tokio::test]
async fn the_ssrf_guard_checks_the_brokers_address() {
    let broker = BrokerVhost::create().await;
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    let mut config = stack.sender_config();
    config.destinations.allow_private = false;
    stack.start_sender_with(config).await;
    // By name: the guard checks what the name resolves to, as for HTTP.
    let url = broker.url().replace("@127.0.0.1:", "@localhost:");
    let mut w = webhook("acme", "loopback", &url);
    w.amqp_exchange = Some(String::new());
    w.amqp_routing_key = Some("q".into());
    w.retry_on = RetryPolicy::parse(&["connect", "timeout"]).unwrap();
    w.secret = None::<Secret>;
    stack.create_webhook(w).await;
    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    stack.dead_letters(1, WAIT).await;
    let errors = failed_attempts(&stack, &e.id).await;
    assert_eq!(errors.len(), 1, "blocked for good: {errors:?}");
    assert!(
        errors[0].starts_with("destination blocked: localhost is "),
        "{}",
        errors[0]
    );
    assert_eq!(broker.connections_of_user().await, 0, "never connected");
}

const TOKEN: &str = "amqp-destination-operator-token";

/// The portal's endpoint form (plain HTTP, as a browser without script posts it)
/// takes a broker URL with its exchange and routing key, shows the URL masked, and
/// saving the masked URL back keeps the credentials.
#[tokio::test]
async fn the_portal_endpoint_form_takes_a_broker_url_exchange_and_routing_key() {
    let broker = BrokerVhost::create().await;
    let (connection, channel) = broker.connect().await;
    BrokerVhost::exchange_with_queue(&channel, "orders", "portal", "created").await;
    let mut stack = sealed_stack().await;
    stack.start_router().await;
    stack.start_sender().await;
    let base = stack.serve_portal(Some(TOKEN), &[]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let link = crate::portal::mint_with(&base, "acme", TOKEN, json!({})).await;
    let session = crate::portal::open(&base, &link).await;
    let page = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let form = page(format!("{session}/endpoints")).await;
    assert!(
        form.contains("name=\"amqp_exchange\""),
        "the form has the fields"
    );
    assert!(form.contains("name=\"amqp_routing_key\""));
    let at = form.find("name=\"csrf\" value=\"").expect("a CSRF token") + 19;
    let csrf = form[at..at + form[at..].find('"').unwrap()].to_owned();
    let post = |to: String, fields: Vec<(&'static str, String)>| {
        let http = http.clone();
        async move {
            let answer = http.post(to).form(&fields).send().await.unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        }
    };

    let (status, created) = post(
        format!("{session}/endpoints"),
        vec![
            ("csrf", csrf.clone()),
            ("key", "mq".into()),
            ("url", broker.url()),
            ("amqp_exchange", "orders".into()),
            ("amqp_routing_key", "created".into()),
        ],
    )
    .await;
    assert_eq!(status, 303, "{created}");
    let shown = page(format!("{session}/endpoints/mq")).await;
    let masked = format!("amqp://********@127.0.0.1:5672/{}", broker.vhost);
    assert!(shown.contains(&masked), "{shown}");
    assert!(!shown.contains(&broker.password), "{shown}");
    assert!(
        shown.contains("published to exchange <code>orders</code>"),
        "{shown}"
    );
    let (_, credentials) = stored(&stack, "mq").await;
    let credentials = credentials.expect("sealed credentials");

    // The edit form shows the masked URL; saving it keeps the credentials.
    let (status, saved) = post(
        format!("{session}/endpoints/mq"),
        vec![
            ("csrf", csrf.clone()),
            ("url", masked.clone()),
            ("amqp_exchange", "orders".into()),
            ("amqp_routing_key", "created".into()),
        ],
    )
    .await;
    assert_eq!(status, 303, "{saved}");
    assert_eq!(stored(&stack, "mq").await.1, Some(credentials));

    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    let settled = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(settled[0].status, DeliveryStatus::Delivered, "{settled:?}");
    let got = BrokerVhost::take(&channel, "portal")
        .await
        .expect("published");
    assert_eq!(
        got.header("webhook-id").as_deref(),
        Some(settled[0].id.to_string().as_str())
    );
    // The message log lists what the message carried: no user agent, no Basic auth.
    let message = page(format!("{session}/deliveries/{}", settled[0].id)).await;
    assert!(message.contains("webhook-id: "), "{message}");
    assert!(!message.contains("user-agent"), "{message}");
    let _ = connection.close(200, "done".into()).await;
}

/// The console's webhook form (a real browser) makes a webhook that publishes to a
/// broker; its page shows the destination and the URL masked.
#[tokio::test]
async fn the_console_form_makes_a_webhook_that_publishes_to_a_broker() {
    let broker = BrokerVhost::create().await;
    let stack = sealed_stack().await;
    let base = stack.serve_api(Some(TOKEN), 1 << 20).await;
    let browser = hookrelay_tests::Browser::start().await;
    crate::console::sign_in(&browser, &base, TOKEN).await;
    browser
        .goto(&format!("{base}/console/tenants/acme/webhooks"))
        .await;
    browser.wait_heading("New webhook in acme").await;
    browser.fill("#key", "mq").await;
    browser.fill("#url", &broker.url()).await;
    browser.fill("#amqp_routing_key", "created").await;
    browser.click("form.stack button[type=submit]").await;
    browser.wait_heading("Webhook mq").await;
    let shown = browser.page_text().await;
    let masked = format!("amqp://********@127.0.0.1:5672/{}", broker.vhost);
    assert!(shown.contains(&masked), "{shown}");
    assert!(!shown.contains(&broker.password), "{shown}");
    assert!(
        shown.contains("published to exchange (default) with routing key created"),
        "an empty exchange is the default one: {shown}"
    );
    browser.screenshot("webhook-amqp").await;
    // Saving the settings as shown keeps the credentials.
    let (_, credentials) = stored(&stack, "mq").await;
    browser
        .click("section[aria-labelledby=edit] button[type=submit]")
        .await;
    browser.wait_text(".notice", "Saved").await;
    assert_eq!(stored(&stack, "mq").await.1, credentials);
    assert!(credentials.is_some_and(|c| c.starts_with("enc:v1:")));
}

/// Runs `hookrelay` on the stack's database with the stack's secret key.
fn hookrelay(stack: &TestStack, args: &[&str]) -> std::process::Output {
    std::process::Command::new(hookrelay_tests::hookrelay_binary())
        .args(args)
        .env("HOOKRELAY_DATABASE_URL", &stack.db.url)
        .env("HOOKRELAY_SECRET_KEY", KEY)
        .env_remove("HOOKRELAY_WEBHOOK_SECRET")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("hookrelay runs")
}

/// The CLI creates a webhook that publishes to a broker, prints its URL masked with
/// the exchange and routing key, and changes the routing key keeping the credentials.
#[tokio::test]
async fn the_cli_creates_and_updates_a_webhook_that_publishes_to_a_broker() {
    let broker = BrokerVhost::create().await;
    let (connection, channel) = broker.connect().await;
    BrokerVhost::exchange_with_queue(&channel, "orders", "cli", "updated").await;
    let mut stack = sealed_stack().await;
    stack.start_router().await;
    stack.start_sender().await;
    let url = broker.url();
    let out = hookrelay(
        &stack,
        &[
            "webhooks",
            "create",
            "--tenant",
            "acme",
            "--key",
            "mq",
            "--url",
            &url,
            "--amqp-exchange",
            "orders",
            "--amqp-routing-key",
            "created",
        ],
    );
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let masked = format!("amqp://********@127.0.0.1:5672/{}", broker.vhost);
    // The table may shorten the URL.
    assert!(
        shown.contains("amqp://********@127.0.0.1:5672/amqpdest_vh_"),
        "{shown}"
    );
    assert!(shown.contains("orders -> created"), "{shown}");
    assert!(!shown.contains(&broker.password), "{shown}");

    let out = hookrelay(
        &stack,
        &[
            "webhooks",
            "update",
            "--tenant",
            "acme",
            "mq",
            "--amqp-routing-key",
            "updated",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = hookrelay(
        &stack,
        &["webhooks", "get", "--tenant", "acme", "mq", "--json"],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["url"], masked.as_str());
    assert_eq!(json["amqp_routing_key"], "updated");
    assert!(json.get("url_credentials").is_none(), "{json}");

    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    let settled = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(settled[0].status, DeliveryStatus::Delivered, "{settled:?}");
    assert!(BrokerVhost::take(&channel, "cli").await.is_some());
    let _ = connection.close(200, "done".into()).await;
}

/// A broker that accepts the connection and never answers is a timeout (retried
/// under `timeout`); a port where nothing listens, a refused connection.
#[tokio::test]
async fn a_silent_broker_times_out_and_a_closed_port_is_a_refused_connection() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let holding = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    for (key, port) in [("silent", silent_port), ("closed", closed_port)] {
        let mut w = webhook("acme", key, &format!("amqp://u:p@127.0.0.1:{port}/%2f"));
        w.amqp_exchange = Some("x".into());
        w.event_types = vec![key.into()];
        stack.create_webhook(w).await;
    }
    let silent_event = event("acme", "silent", json!({}));
    stack.publish(&silent_event).await;
    let errors = failed_attempts(&stack, &silent_event.id).await;
    assert_eq!(errors.len(), 3, "retried as timeouts: {errors:?}");
    assert!(
        errors
            .iter()
            .all(|e| e == "timed out after 500ms: no confirm from the broker"),
        "{errors:?}"
    );
    let closed_event = event("acme", "closed", json!({}));
    stack.publish(&closed_event).await;
    let errors = failed_attempts(&stack, &closed_event.id).await;
    assert_eq!(
        errors.len(),
        1,
        "the default policy does not retry it: {errors:?}"
    );
    assert!(errors[0].starts_with("connection refused"), "{errors:?}");
    holding.abort();
}
