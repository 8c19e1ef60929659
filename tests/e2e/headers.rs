//! Custom headers per webhook on the real pipeline: set through the API, the CLI and
//! the console, sent with every delivery to a receiver on 127.0.0.1, sealed in the
//! database, masked when read back, and refused by name where HTTP or hookrelay
//! owns the header.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use hookrelay_store::deliveries::DeliveryStatus;
use hookrelay_tests::stack::event;
use hookrelay_tests::{Behaviour, Browser, TestStack, hookrelay_binary};
use serde_json::{Value, json};

use crate::admin::Api;

const WAIT: Duration = Duration::from_secs(20);
const KEY: &str = "q0Rq3kC2sS1KcmKx0fZ2mJ8wTnH4bV7yLpE6aD9uXcI=";
const API_KEY: &str = "k-3f9a1c-gateway-key";

/// A stack whose roles and API seal and open with a secret key.
async fn sealed_stack() -> TestStack {
    let mut stack = TestStack::new().await;
    stack.cipher = hookrelay_store::Cipher::from_base64_key(KEY).unwrap();
    stack
}

/// The `headers` column of a webhook as stored: name to stored value.
async fn stored_headers(stack: &TestStack, key: &str) -> serde_json::Map<String, Value> {
    let row = stack
        .db
        .client()
        .await
        .query_one("SELECT headers FROM webhooks WHERE key = $1", &[&key])
        .await
        .unwrap();
    let headers: Value = row.get("headers");
    headers.as_object().cloned().unwrap()
}

#[tokio::test]
async fn custom_headers_go_with_every_delivery_sealed_at_rest_and_masked_when_read() {
    let mut stack = sealed_stack().await;
    stack.start_router().await;
    stack.start_sender().await;
    // The first attempt fails (retried on 5xx): the retry carries the headers too.
    stack.receiver.respond(
        "/gw",
        Behaviour::Sequence(vec![Behaviour::Status(503), Behaviour::Status(200)]),
    );
    let api = Api::new(&stack, None).await;
    let (status, created) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({
                "key": "gw",
                "url": stack.receiver.url("/gw"),
                "retry_on": ["5xx"],
                "headers": {"X-Api-Key": API_KEY, "X-Team": "payments team"},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["headers"],
        json!({"x-api-key": "********", "x-team": "********"}),
        "names in lower case, values masked"
    );

    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    let got = stack.receiver.wait_for("/gw", 2, WAIT).await;
    for (i, request) in got.iter().enumerate() {
        assert_eq!(
            request.header("x-api-key").as_deref(),
            Some(API_KEY),
            "attempt {}",
            i + 1
        );
        assert_eq!(request.header("x-team").as_deref(), Some("payments team"));
        assert_eq!(
            request.header("content-type").as_deref(),
            Some("application/json"),
            "hookrelay's own headers stay"
        );
        assert!(request.header("webhook-id").is_some());
    }
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(d[0].status, DeliveryStatus::Delivered);

    // Read back: names only, through every read of the API.
    for path in ["/v1/tenants/acme/webhooks/gw", "/v1/tenants/acme/webhooks"] {
        let (status, body) = api.get(path).await;
        assert_eq!(status, StatusCode::OK);
        let text = body.to_string();
        assert!(text.contains("x-api-key"), "{text}");
        assert!(
            !text.contains(API_KEY) && !text.contains("payments team"),
            "{text}"
        );
    }
    // At rest: sealed, each with a fresh nonce; the names in clear.
    let stored = stored_headers(&stack, "gw").await;
    let mut names: Vec<&String> = stored.keys().collect();
    names.sort();
    assert_eq!(names, ["x-api-key", "x-team"]);
    for value in stored.values() {
        let value = value.as_str().unwrap();
        assert!(value.starts_with("enc:v1:"), "{value}");
        assert!(!value.contains(API_KEY) && !value.contains("payments"));
    }

    // Replaced as a whole, then removed.
    let (status, body) = api
        .call(
            Method::PATCH,
            "/v1/tenants/acme/webhooks/gw",
            Some(json!({"headers": {"X-Other": "o"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["headers"], json!({"x-other": "********"}));
    let (status, body) = api
        .call(
            Method::PATCH,
            "/v1/tenants/acme/webhooks/gw",
            Some(json!({"url": stack.receiver.url("/gw")})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["headers"], json!({"x-other": "********"}), "kept");
    let (_, body) = api
        .call(
            Method::PATCH,
            "/v1/tenants/acme/webhooks/gw",
            Some(json!({"headers": null})),
        )
        .await;
    assert_eq!(body["headers"], json!({}));
    assert!(stored_headers(&stack, "gw").await.is_empty());
}

/// Each header HTTP or hookrelay owns is refused with a 400 naming it, on create and
/// on update; nothing is stored.
#[tokio::test]
async fn each_refused_header_answers_400_naming_it() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack, None).await;
    let url = stack.receiver.url("/x");
    let refused = [
        "Connection",
        "Keep-Alive",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
        "Content-Type",
        "Content-Encoding",
        "webhook-id",
        "Webhook-Timestamp",
        "webhook-signature",
        "User-Agent",
        "traceparent",
        "tracestate",
        "X-Hookrelay-Event-Id",
        "x-hookrelay-attempt",
        "X Bad Name",
    ];
    let (status, body) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({"key": "ok", "url": url, "headers": {"X-Api-Key": "k"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for name in refused {
        let (status, body) = api
            .post(
                "/v1/tenants/acme/webhooks",
                json!({"key": "refused", "url": url, "headers": {name: "v-1"}}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_eq!(
            body["field"].as_str(),
            Some(format!("headers.{name}").as_str()),
            "{body}"
        );
        assert!(body["error"].as_str().unwrap().contains(name), "{body}");
        let (status, body) = api
            .call(
                Method::PATCH,
                "/v1/tenants/acme/webhooks/ok",
                Some(json!({"headers": {"X-Fine": "f", name: "v-1"}})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_eq!(
            body["field"].as_str(),
            Some(format!("headers.{name}").as_str())
        );
    }
    // Values HTTP cannot carry, named by their header and never echoed.
    for value in ["two\r\nlines", "caf\u{e9}", " padded"] {
        let (status, body) = api
            .post(
                "/v1/tenants/acme/webhooks",
                json!({"key": "refused", "url": url, "headers": {"X-Val": value}}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["field"], "headers.X-Val");
        assert!(!body.to_string().contains(value.trim()), "{body}");
    }
    // Too many, too large.
    let many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("x-h{i}"), json!("v"))).collect();
    let too_long = "v".repeat(2049);
    for (headers, problem) in [
        (Value::Object(many), "at most 16"),
        (json!({"X-Big": too_long}), "longer than 2048"),
    ] {
        let (status, body) = api
            .post(
                "/v1/tenants/acme/webhooks",
                json!({"key": "refused", "url": url, "headers": headers}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["error"].as_str().unwrap().contains(problem), "{body}");
    }

    // Authorization: the operator's, unless the webhook has Basic auth, whichever is
    // set first.
    let (status, body) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({"key": "basic", "url": url, "secret": "pw", "headers": {"Authorization": "Bearer t"}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "headers.Authorization");
    let (status, body) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({"key": "bearer", "url": url, "headers": {"Authorization": "Bearer t"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "without Basic auth: {body}");
    let (status, body) = api
        .call(
            Method::PATCH,
            "/v1/tenants/acme/webhooks/bearer",
            Some(json!({"secret": "pw"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "headers.authorization", "{body}");
    let (status, body) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({"key": "basic", "url": url, "secret": "pw"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = api
        .call(
            Method::PATCH,
            "/v1/tenants/acme/webhooks/basic",
            Some(json!({"headers": {"Authorization": "Bearer t"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "headers.authorization", "{body}");
    // Removing the secret in the same change lets it in.
    let (status, body) = api
        .call(
            Method::PATCH,
            "/v1/tenants/acme/webhooks/basic",
            Some(json!({"secret": null, "headers": {"Authorization": "Bearer t"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let names: Vec<String> = stack
        .db
        .client()
        .await
        .query("SELECT key FROM webhooks ORDER BY key", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        names,
        ["basic", "bearer", "ok"],
        "nothing refused is stored"
    );
    assert_eq!(
        stored_headers(&stack, "ok")
            .await
            .keys()
            .collect::<Vec<_>>(),
        ["x-api-key"],
        "a refused update changed nothing"
    );
}

/// Runs `hookrelay` on the stack's database with the stack's secret key.
fn hookrelay(stack: &TestStack, args: &[&str]) -> std::process::Output {
    std::process::Command::new(hookrelay_binary())
        .args(args)
        .env("HOOKRELAY_DATABASE_URL", &stack.db.url)
        .env("HOOKRELAY_SECRET_KEY", KEY)
        .env_remove("HOOKRELAY_WEBHOOK_SECRET")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("hookrelay runs")
}

#[tokio::test]
async fn the_cli_sets_replaces_and_clears_custom_headers_and_shows_only_their_names() {
    let mut stack = sealed_stack().await;
    stack.start_router().await;
    stack.start_sender().await;
    let url = stack.receiver.url("/cli");
    let out = hookrelay(
        &stack,
        &[
            "webhooks",
            "create",
            "--tenant",
            "acme",
            "--key",
            "cli",
            "--url",
            &url,
            "--header",
            &format!("X-Api-Key: {API_KEY}"),
            "--header",
            "X-Team:payments",
        ],
    );
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        shown.contains("x-api-key: ********") && shown.contains("x-team: ********"),
        "{shown}"
    );
    assert!(!shown.contains(API_KEY), "{shown}");
    let stored = stored_headers(&stack, "cli").await;
    assert!(
        stored
            .values()
            .all(|v| v.as_str().unwrap().starts_with("enc:v1:")),
        "{stored:?}"
    );

    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    let got = stack.receiver.wait_for("/cli", 1, WAIT).await;
    assert_eq!(got[0].header("x-api-key").as_deref(), Some(API_KEY));
    assert_eq!(got[0].header("x-team").as_deref(), Some("payments"));

    let out = hookrelay(
        &stack,
        &["webhooks", "get", "--tenant", "acme", "cli", "--json"],
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["headers"],
        json!({"x-api-key": "********", "x-team": "********"})
    );

    // A malformed one is named by its place, its text never shown.
    let out = hookrelay(
        &stack,
        &[
            "webhooks",
            "update",
            "--tenant",
            "acme",
            "cli",
            "--header",
            "X-Api-Key k-never-shown",
        ],
    );
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("--header number 1") && !error.contains("k-never-shown"),
        "{error}"
    );
    // Refused by name; nothing changes.
    let out = hookrelay(
        &stack,
        &[
            "webhooks",
            "update",
            "--tenant",
            "acme",
            "cli",
            "--header",
            "Host: evil",
        ],
    );
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(error.contains("headers.Host"), "{error}");
    assert_eq!(stored_headers(&stack, "cli").await.len(), 2);

    let out = hookrelay(
        &stack,
        &[
            "webhooks", "update", "--tenant", "acme", "cli", "--header", "X-New: n",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stored_headers(&stack, "cli")
            .await
            .keys()
            .collect::<Vec<_>>(),
        ["x-new"],
        "replaced as a whole"
    );
    let out = hookrelay(
        &stack,
        &[
            "webhooks",
            "update",
            "--tenant",
            "acme",
            "cli",
            "--clear-headers",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stored_headers(&stack, "cli").await.is_empty());
}

const TOKEN: &str = "headers-operator-token";

/// The console's webhook form takes custom headers one per line, refuses one that
/// HTTP owns beside the field, shows them by name only, and the delivery carries
/// them.
#[tokio::test]
async fn the_console_form_sets_custom_headers_and_shows_only_their_names() {
    let mut stack = sealed_stack().await;
    stack.start_router().await;
    stack.start_sender().await;
    let base = stack.serve_api(Some(TOKEN), 1 << 20).await;
    let browser = Browser::start().await;
    crate::console::sign_in(&browser, &base, TOKEN).await;
    browser
        .goto(&format!("{base}/console/tenants/acme/webhooks"))
        .await;
    browser.wait_heading("New webhook in acme").await;
    browser.fill("#key", "gw").await;
    browser.fill("#url", &stack.receiver.url("/console")).await;
    browser
        .fill(
            "#headers",
            &format!("X-Api-Key: {API_KEY}\nHost: evil.example"),
        )
        .await;
    browser.click("form.stack button[type=submit]").await;
    let complaint = browser.text_of("#headers-error").await;
    assert!(complaint.contains("Host"), "{complaint}");
    assert_eq!(stack.webhook_count().await, 0);
    browser.screenshot("webhook-headers-refused").await;

    browser.fill("#url", &stack.receiver.url("/console")).await;
    browser
        .fill(
            "#headers",
            &format!("X-Api-Key: {API_KEY}\nX-Team: payments"),
        )
        .await;
    browser.click("form.stack button[type=submit]").await;
    browser.wait_heading("Webhook gw").await;
    let shown = browser.page_text().await;
    assert!(
        shown.contains("x-api-key: ********") && shown.contains("x-team: ********"),
        "{shown}"
    );
    assert!(!shown.contains(API_KEY), "{shown}");
    browser.screenshot("webhook-headers").await;

    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    let got = stack.receiver.wait_for("/console", 1, WAIT).await;
    assert_eq!(got[0].header("x-api-key").as_deref(), Some(API_KEY));

    // Saving the settings without typing headers keeps them; the box removes them.
    browser
        .click("section[aria-labelledby=edit] button[type=submit]")
        .await;
    browser.wait_text(".notice", "Saved").await;
    assert_eq!(stored_headers(&stack, "gw").await.len(), 2);
    browser.click("#clear_headers").await;
    browser
        .click("section[aria-labelledby=edit] button[type=submit]")
        .await;
    // The page said "Saved" already: wait for the change itself.
    hookrelay_tests::wait_until("the headers are removed", WAIT, || async {
        stored_headers(&stack, "gw").await.is_empty()
    })
    .await;
    browser.wait_text("#headers-now", "Now: none").await;
}

/// The portal's endpoint form (plain HTTP, as a browser without script posts it):
/// custom headers set on create, refused by name, shown masked, removed on edit.
#[tokio::test]
async fn the_portal_endpoint_form_sets_custom_headers_and_shows_only_their_names() {
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
    let at = form.find("name=\"csrf\" value=\"").expect("a CSRF token") + 19;
    let csrf = form[at..at + form[at..].find('"').unwrap()].to_owned();
    let url = stack.receiver.url("/portal");
    let post = |to: String, fields: Vec<(&'static str, String)>| {
        let http = http.clone();
        async move {
            let answer = http.post(to).form(&fields).send().await.unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        }
    };

    let (status, refused) = post(
        format!("{session}/endpoints"),
        vec![
            ("csrf", csrf.clone()),
            ("key", "gw".into()),
            ("url", url.clone()),
            (
                "headers",
                format!("X-Api-Key: {API_KEY}\nwebhook-signature: v1,x"),
            ),
        ],
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused.contains("headers-error"), "beside the field");
    assert!(refused.contains("webhook-signature"), "{refused}");
    assert!(!refused.contains(API_KEY), "never shown again");
    assert_eq!(stack.webhook_count().await, 0);

    let (status, created) = post(
        format!("{session}/endpoints"),
        vec![
            ("csrf", csrf.clone()),
            ("key", "gw".into()),
            ("url", url.clone()),
            ("headers", format!("X-Api-Key: {API_KEY}")),
        ],
    )
    .await;
    assert_eq!(status, 303, "{created}");
    let shown = page(format!("{session}/endpoints/gw")).await;
    assert!(shown.contains("x-api-key: ********"), "{shown}");
    assert!(!shown.contains(API_KEY), "{shown}");
    assert!(
        stored_headers(&stack, "gw").await["x-api-key"]
            .as_str()
            .unwrap()
            .starts_with("enc:v1:")
    );

    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    let got = stack.receiver.wait_for("/portal", 1, WAIT).await;
    assert_eq!(got[0].header("x-api-key").as_deref(), Some(API_KEY));
    // The message log's request headers name it, masked.
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    let message = page(format!("{session}/deliveries/{}", d[0].id)).await;
    assert!(
        message.contains("x-api-key: •••••••• (masked)"),
        "{message}"
    );
    assert!(!message.contains(API_KEY), "{message}");

    let (status, saved) = post(
        format!("{session}/endpoints/gw"),
        vec![
            ("csrf", csrf.clone()),
            ("url", url.clone()),
            ("clear_headers", "on".into()),
        ],
    )
    .await;
    assert_eq!(status, 303, "{saved}");
    assert!(stored_headers(&stack, "gw").await.is_empty());
}
