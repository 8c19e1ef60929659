//! The customer portal: a customer's journey in an iframe on another site (headless
//! Chromium), and what a session cannot reach or do: another tenant's data, another
//! key, a change when read-only, a link used twice, late or revoked, a frame on a
//! site not allowed. Screenshots under `target/console-screenshots/portal-*.png`.

use std::time::Duration;

use fantoccini::Locator;
use hookrelay_store::deliveries::DeliveryStatus;

use crate::catalog::table_totals;
use hookrelay_tests::host::HostPage;
use hookrelay_tests::stack::{event, webhook};
use hookrelay_tests::{Behaviour, Browser, TestStack, wait_until};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
pub(crate) const TOKEN: &str = "portal-operator-token";

/// A `/v1` request with a bearer token: its status and JSON answer (null if none).
async fn call(
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status();
    let text = answer.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Mints a link as the product's backend does: the operator's token, one POST.
pub(crate) async fn mint(base: &str, tenant: &str, body: Value) -> Value {
    mint_with(base, tenant, TOKEN, body).await
}

/// [`mint`] with a stack's own operator token.
pub(crate) async fn mint_with(base: &str, tenant: &str, token: &str, body: Value) -> Value {
    let url = format!("{base}/v1/tenants/{tenant}/portal-sessions");
    let (status, minted) = call(reqwest::Method::POST, url, token, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    minted
}

/// Revokes a minted link's session, as the operator.
async fn revoke(base: &str, minted: &Value) -> StatusCode {
    let id = minted["id"].as_str().unwrap();
    let url = format!("{base}/v1/tenants/acme/portal-sessions/{id}");
    call(reqwest::Method::DELETE, url, TOKEN, None).await.0
}

/// A client that follows no redirect, to see where a link sends it.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// Opens a link; returns the session's base (`{base}/portal/s/{session}`).
pub(crate) async fn open(base: &str, link: &Value) -> String {
    let answer = client()
        .get(link["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let to = answer.headers()["location"].to_str().unwrap();
    format!("{base}{}", to.trim_end_matches('/'))
}

pub(crate) async fn get(url: &str) -> (StatusCode, String) {
    let answer = client().get(url).send().await.unwrap();
    (answer.status(), answer.text().await.unwrap())
}

pub(crate) async fn post(url: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let answer = client().post(url).form(form).send().await.unwrap();
    (answer.status(), answer.text().await.unwrap())
}

/// The CSRF token of the forms of a page.
pub(crate) fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token");
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

async fn status_of(stack: &TestStack, event_id: &str) -> Option<DeliveryStatus> {
    stack
        .deliveries_of("acme", event_id)
        .await
        .first()
        .map(|d| d.status)
}

/// The id of the event the frame shows (`/portal/s/.../events/{id}`).
async fn shown_event(browser: &Browser) -> String {
    let url = browser
        .client()
        .execute("return window.location.pathname;", vec![])
        .await
        .unwrap();
    let path = url.as_str().unwrap().to_owned();
    path.rsplit('/').next().unwrap().to_owned()
}

/// Waits until the page's notice (after an action) starts with `start`.
async fn wait_notice(browser: &Browser, start: &str) {
    wait_until(&format!("a notice starting {start:?}"), WAIT, || async {
        match browser.client().find(Locator::Css(".notice")).await {
            Ok(n) => n.text().await.is_ok_and(|t| t.starts_with(start)),
            Err(_) => false,
        }
    })
    .await;
}

/// Through the navigation, as a customer goes: the endpoints, then one.
async fn to_endpoint(browser: &Browser, key: &str) {
    browser.click("nav a").await;
    browser.wait_heading("Endpoints").await;
    browser.click(&format!("a[href$='/endpoints/{key}']")).await;
    browser.wait_heading(&format!("Endpoint {key}")).await;
}

#[tokio::test]
async fn a_customer_runs_an_endpoint_in_an_iframe_on_another_site() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    let host = HostPage::serve().await;
    let base = stack.serve_portal(Some(TOKEN), &[&host.origin]).await;
    // The product's catalog: the customer picks from it.
    let catalog = [
        ("order.created", json!({"order_id": "o-1", "total": 12.5})),
        ("order.paid", json!({"order_id": "o-1", "paid": true})),
        ("order.legacy", json!({"order_id": "o-0"})),
    ];
    for (name, example) in &catalog {
        let url = format!("{base}/v1/event-types");
        let fields = json!({
            "name": name,
            "description": format!("Sent when {name} happens."),
            "schema": {"type": "object", "required": ["order_id"]},
            "example": example,
            "deprecated": *name == "order.legacy",
        });
        let (status, answer) = call(reqwest::Method::POST, url, TOKEN, Some(fields)).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let link = mint(&base, "acme", json!({})).await;
    assert!(
        link["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{base}/portal/open/"))
    );
    host.frame(link["url"].as_str().unwrap());

    let browser = Browser::start().await;
    browser.goto(&host.url()).await;
    browser
        .client()
        .enter_frame(0)
        .await
        .expect("the portal's frame");
    browser.wait_heading("Endpoints").await;
    browser.screenshot("portal-endpoints-empty").await;

    // A new endpoint, a wrong URL first: refused beside its field.
    browser.click("a.button").await;
    browser.wait_heading("New endpoint").await;
    browser.fill("#key", "orders").await;
    browser.fill("#url", "ftp://nowhere").await;
    let offered = browser.text_of("fieldset#event_types").await;
    assert!(
        offered.contains("Sent when order.created happens.") && !offered.contains("order.legacy"),
        "the catalog's types with their description, not the deprecated one: {offered}"
    );
    browser.click("input[value='order.created']").await;
    browser.click("input[value='order.paid']").await;
    browser.click("form.stack button[type=submit]").await;
    let complaint = browser.text_of("#url-error").await;
    assert!(complaint.contains("http"), "{complaint}");
    browser.fill("#url", &stack.receiver.url("/orders")).await;
    browser.click("form.stack button[type=submit]").await;
    browser.wait_heading("Endpoint orders").await;
    browser.screenshot("portal-endpoint").await;

    // The signing secret, revealed once.
    browser.click("form[action$='/rotate-secret'] button").await;
    browser.wait_heading("Your signing secret").await;
    let secret = browser.text_of("#signing-secret").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    browser.screenshot("portal-signing-secret").await;
    browser.click("main a").await;
    browser.wait_heading("Endpoint orders").await;
    assert!(
        !browser.page_text().await.contains(&secret),
        "shown once only"
    );

    // An example, delivered, signed with that secret, its attempt shown.
    browser.click("form[action$='/send-example'] button").await;
    wait_until("the example is shown delivered", WAIT, || async {
        browser.page_text().await.contains("delivered")
    })
    .await;
    let example = shown_event(&browser).await;
    assert!(example.starts_with("example-"), "{example}");
    browser.screenshot("portal-example-delivered").await;
    let got = stack.receiver.wait_for("/orders", 1, WAIT).await;
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&got[0].body, &got[0].headers)
        .expect("signed with the secret the portal showed");
    assert_eq!(got[0].json(), catalog[0].1, "the catalog's example");
    browser.click("tbody td a[href*='/deliveries/']").await;
    browser.wait_heading("Delivery").await;
    let attempt = browser.text_of("main table tbody").await;
    assert!(
        attempt.contains("delivered") && attempt.contains("200"),
        "{attempt}"
    );
    // The request as sent: its body and headers, the signature masked.
    let body = browser.text_of("pre.json").await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), catalog[0].1);
    browser.click("details summary").await;
    let headers = browser.text_of("pre.headers").await;
    // (webhook-timestamp is the attempt's start, to the second: not compared.)
    for name in [
        "webhook-id",
        "x-hookrelay-event-id",
        "x-hookrelay-event-type",
    ] {
        let sent = got[0].header(name).unwrap();
        assert!(
            headers.contains(&format!("{name}: {sent}")),
            "{name} in {headers}"
        );
    }
    assert!(
        headers.contains("webhook-signature: v1,•••••••• (masked)"),
        "{headers}"
    );
    assert!(!headers.contains(&got[0].header("webhook-signature").unwrap()));
    browser.screenshot("portal-delivery").await;

    // The endpoint fails: the failure is shown; fixed, the failed ones go again
    // after a dry-run count.
    let since = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let chart = || async {
        let table = browser.wait_for(".charts table").await;
        table_totals(&table.html(true).await.unwrap())
    };
    to_endpoint(&browser, "orders").await;
    let before = chart().await;
    assert!(
        before[0] >= 1 && before[2] == 0,
        "delivered, retried, failed: {before:?}"
    );
    stack.receiver.respond("/orders", Behaviour::Status(500));
    let failing = event("acme", "order.paid", json!({"webhook_keys": ["orders"]}));
    stack.publish(&failing).await;
    wait_until("the delivery failed", WAIT, || async {
        status_of(&stack, &failing.id).await == Some(DeliveryStatus::Failed)
    })
    .await;
    to_endpoint(&browser, "orders").await;
    let after = chart().await;
    assert!(
        after[2] > before[2],
        "the chart counts the failure: {before:?} then {after:?}"
    );
    browser.screenshot("portal-endpoint-chart").await;
    browser.click("a[href*='/messages?endpoint=orders']").await;
    browser.wait_heading("Message log").await;
    let log = browser.text_of("main table tbody").await;
    assert!(log.contains("failed") && log.contains("500"), "{log}");
    browser.screenshot("portal-message-log-failed").await;
    stack.receiver.respond("/orders", Behaviour::Status(200));
    to_endpoint(&browser, "orders").await;
    browser.fill("#since", &since).await;
    browser
        .click("form[action$='/redeliver-failed'] button")
        .await;
    browser.wait_heading("Redeliver failed messages").await;
    let dry_run = browser.text_of("#dry-run").await;
    assert!(dry_run.starts_with("1 failed"), "{dry_run}");
    browser.screenshot("portal-redeliver-dry-run").await;
    assert_eq!(
        status_of(&stack, &failing.id).await,
        Some(DeliveryStatus::Failed),
        "a dry run changes nothing"
    );
    browser
        .click("form[action$='/redeliver-failed'] button")
        .await;
    browser.wait_heading("Endpoint orders").await;
    wait_notice(&browser, "1 failed").await;
    wait_until("the failed delivery went again", WAIT, || async {
        status_of(&stack, &failing.id).await == Some(DeliveryStatus::Delivered)
    })
    .await;

    // Pause and resume from the portal.
    browser.click("form[action$='/pause'] button").await;
    wait_notice(&browser, "Paused").await;
    browser.click("form[action$='/resume'] button").await;
    wait_notice(&browser, "Resumed").await;

    // At phone width, nothing sticks out of the frame sideways.
    browser.client().enter_parent_frame().await.unwrap();
    browser.set_size(390, 844).await;
    browser.client().enter_frame(0).await.unwrap();
    let fits = browser
        .client()
        .execute(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits, json!(true), "the portal fits a phone's width");
    browser.screenshot("portal-phone").await;

    // Every change above is in the audit log, as the portal session's.
    let audit: Value = call(
        reqwest::Method::GET,
        format!("{base}/v1/audit?tenant=acme"),
        TOKEN,
        None,
    )
    .await
    .1;
    let who = format!("portal session {}", link["id"].as_str().unwrap());
    let entries = audit["data"].as_array().unwrap();
    for what in [
        "/webhooks",
        "/rotate-signing-secret",
        "/redeliver",
        "/pause",
        "/resume",
    ] {
        assert!(
            entries.iter().any(|e| e["actor"] == who.as_str()
                && e["via"] == "portal"
                && e["path"].as_str().unwrap().ends_with(what)),
            "{what} in {audit:#}"
        );
    }
    let all: Value = call(
        reqwest::Method::GET,
        format!("{base}/v1/audit"),
        TOKEN,
        None,
    )
    .await
    .1;
    let published: Vec<&Value> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"] == "/v1/events")
        .collect();
    assert_eq!(
        published.len(),
        1,
        "the example, not the upstream's event: {all:#}"
    );
    assert_eq!(published[0]["actor"], who.as_str());
}

#[tokio::test]
async fn framing_from_a_site_not_allowed_is_refused_by_the_browser() {
    let stack = TestStack::new().await;
    let allowed = HostPage::serve().await;
    let other = HostPage::serve().await;
    let base = stack.serve_portal(Some(TOKEN), &[&allowed.origin]).await;
    let browser = Browser::start().await;
    let frame_text = || async {
        browser.client().enter_frame(0).await.unwrap();
        let text = browser
            .client()
            .execute(
                "return document.body ? document.body.innerText : '';",
                vec![],
            )
            .await
            .map(|v| v.as_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        browser.client().enter_parent_frame().await.unwrap();
        text
    };

    let link = mint(&base, "acme", json!({})).await;
    allowed.frame(link["url"].as_str().unwrap());
    browser.goto(&allowed.url()).await;
    wait_until("the allowed site shows the portal", WAIT, || async {
        frame_text().await.contains("Endpoints")
    })
    .await;

    let link = mint(&base, "acme", json!({})).await;
    other.frame(link["url"].as_str().unwrap());
    browser.goto(&other.url()).await;
    browser.wait_for("iframe").await;
    // The browser asked (the link is used) and refused to show the answer.
    wait_until("the link was asked for", WAIT, || async {
        let sessions = call(
            reqwest::Method::GET,
            format!("{base}/v1/tenants/acme/portal-sessions"),
            TOKEN,
            None,
        )
        .await
        .1;
        sessions["data"][0]["state"] == "live"
    })
    .await;
    let shown = frame_text().await;
    assert!(
        !shown.contains("Endpoints"),
        "framed on a site not allowed: {shown:?}"
    );
    browser.screenshot("portal-framing-refused").await;

    // The console is never framed.
    let (_, headers) = {
        let answer = client()
            .get(format!("{base}/console/sign-in"))
            .send()
            .await
            .unwrap();
        (answer.status(), answer.headers().clone())
    };
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
}

#[tokio::test]
async fn a_read_only_session_sees_no_buttons_and_its_posts_are_refused() {
    let stack = TestStack::new().await;
    stack
        .create_webhook(webhook("acme", "orders", &stack.receiver.url("/orders")))
        .await;
    let base = stack.serve_portal(Some(TOKEN), &[]).await;
    let link = mint(&base, "acme", json!({"read_only": true})).await;
    let session = open(&base, &link).await;

    let (status, list) = get(&format!("{session}/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        list.contains("orders") && list.contains("Read-only"),
        "{list}"
    );
    let (_, endpoint) = get(&format!("{session}/endpoints/orders")).await;
    assert!(endpoint.contains("Endpoint orders"), "{endpoint}");
    for page in [&list, &endpoint] {
        assert!(
            !page.contains("<form method=\"post\"") && !page.contains("<button"),
            "{page}"
        );
    }
    for action in ["pause", "rotate-secret", "send-example", "redeliver-failed"] {
        let (status, page) = post(
            &format!("{session}/endpoints/orders/{action}"),
            &[("csrf", "anything")],
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}");
        assert!(page.contains("read-only"), "{page}");
    }
    let (status, _) = post(
        &format!("{session}/endpoints"),
        &[("key", "x"), ("url", "http://x")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let w = stack.deliveries_of("acme", "none").await;
    assert!(w.is_empty());
}

#[tokio::test]
async fn a_limited_session_never_shows_another_key_and_another_tenant_is_unreachable() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    let mut ids = std::collections::HashMap::new();
    for (tenant, key) in [("acme", "mine"), ("acme", "theirs"), ("globex", "secret")] {
        let w = stack
            .create_webhook(webhook(
                tenant,
                key,
                &stack.receiver.url(&format!("/{key}")),
            ))
            .await;
        ids.insert(key, w.id);
    }
    let ours = event("acme", "order.created", json!({}));
    let other = event("globex", "order.created", json!({}));
    for e in [&ours, &other] {
        stack.publish(e).await;
    }
    stack.wait_settled("acme", &ours.id, 2, WAIT).await;
    stack.wait_settled("globex", &other.id, 1, WAIT).await;
    let theirs_delivery = stack
        .deliveries_of("acme", &ours.id)
        .await
        .into_iter()
        .find(|d| d.webhook_id == Some(ids["theirs"]))
        .unwrap();
    let globex_delivery = stack.deliveries_of("globex", &other.id).await.remove(0);

    let base = stack.serve_portal(Some(TOKEN), &[]).await;
    let link = mint(&base, "acme", json!({"webhook_keys": ["mine"]})).await;
    let session = open(&base, &link).await;

    let (_, list) = get(&format!("{session}/")).await;
    assert!(list.contains("mine") && !list.contains("theirs"), "{list}");
    let (_, log) = get(&format!("{session}/messages")).await;
    assert!(
        !log.contains("theirs") && log.contains(ours.id.as_str()),
        "{log}"
    );
    let (_, shown) = get(&format!("{session}/events/{}", ours.id)).await;
    assert!(!shown.contains("/theirs"), "{shown}");

    // Every URL the portal has, asked for what is not the session's: 404.
    let unreachable = [
        format!("{session}/endpoints/theirs"),
        format!("{session}/endpoints/secret"),
        format!("{session}/messages?endpoint=theirs"),
        format!("{session}/events/{}", other.id),
        format!("{session}/deliveries/{}", theirs_delivery.id),
        format!("{session}/deliveries/{}", globex_delivery.id),
        format!("{session}/deliveries/not-a-uuid"),
    ];
    for url in &unreachable {
        let (status, page) = get(url).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}: {page}");
        assert!(
            !page.contains("globex") && !page.contains("/secret"),
            "{page}"
        );
    }
    let (_, endpoint) = get(&format!("{session}/endpoints/mine")).await;
    let csrf = csrf_of(&endpoint);
    for url in [
        format!("{session}/endpoints/theirs/pause"),
        format!("{session}/endpoints/secret/pause"),
        format!("{session}/deliveries/{}/redeliver", globex_delivery.id),
    ] {
        let (status, _) = post(&url, &[("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}");
    }
    // A new endpoint must use a key of the session's.
    let (status, page) = post(
        &format!("{session}/endpoints"),
        &[
            ("csrf", &csrf),
            ("key", "another"),
            ("url", "http://127.0.0.1:9/x"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("id=\"key-error\""), "{page}");
    // A post without the session's CSRF token changes nothing.
    let (status, _) = post(
        &format!("{session}/endpoints/mine/pause"),
        &[("csrf", "forged")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Operator pages and routes stay closed: the session is no token.
    let (status, _) = get(&format!("{base}/console/webhooks?tenant=acme")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the console asks to sign in");
    let sid = session.rsplit('/').next().unwrap();
    let url = format!("{base}/v1/tenants/acme/webhooks");
    let (status, _) = call(reqwest::Method::GET, url, sid, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn links_used_twice_expired_or_revoked_are_refused_with_a_clear_page() {
    let stack = TestStack::new().await;
    let base = stack.serve_portal(Some(TOKEN), &[]).await;

    let used = mint(&base, "acme", json!({})).await;
    let session = open(&base, &used).await;
    let (status, page) = get(used["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(page.contains("This link was used already"), "{page}");
    assert_eq!(
        get(&format!("{session}/")).await.0,
        StatusCode::OK,
        "the session still works"
    );

    let late = mint(&base, "acme", json!({"ttl": "10m"})).await;
    stack
        .db
        .client()
        .await
        .execute(
            "UPDATE portal_sessions SET link_expires_at = now() - interval '1 second' WHERE id = $1",
            &[&uuid::Uuid::parse_str(late["id"].as_str().unwrap()).unwrap()],
        )
        .await
        .unwrap();
    let (status, page) = get(late["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(page.contains("This link has expired"), "{page}");

    let revoked = mint(&base, "acme", json!({})).await;
    assert_eq!(revoke(&base, &revoked).await, StatusCode::OK);
    let (status, page) = get(revoked["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(page.contains("This link was revoked"), "{page}");

    // Revoking an open session ends it at once.
    revoke(&base, &used).await;
    let (status, page) = get(&format!("{session}/")).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(page.contains("This portal session was revoked"), "{page}");

    // A link minted with a tenant token ends with that token.
    let token: Value = call(
        reqwest::Method::POST,
        format!("{base}/v1/tenants/acme/tokens"),
        TOKEN,
        Some(json!({"name": "backend", "scope": "write"})),
    )
    .await
    .1;
    let minted: Value = call(
        reqwest::Method::POST,
        format!("{base}/v1/tenants/acme/portal-sessions"),
        token["token"].as_str().unwrap(),
        Some(json!({})),
    )
    .await
    .1;
    let by_token = open(&base, &minted).await;
    assert_eq!(get(&format!("{by_token}/")).await.0, StatusCode::OK);
    let url = format!("{base}/v1/tenants/acme/tokens/backend");
    let (status, _) = call(reqwest::Method::DELETE, url, TOKEN, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, page) = get(&format!("{by_token}/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("not valid"), "{page}");

    // Nonsense is refused the same clear way, never a stack trace.
    let (status, page) = get(&format!("{base}/portal/open/hpl_nonsense<script>")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        page.contains("This link is not valid") && !page.contains("<script>"),
        "{page}"
    );
}

#[tokio::test]
async fn the_audit_log_records_api_console_and_portal_changes() {
    let stack = TestStack::new().await;
    stack
        .create_webhook(webhook("acme", "orders", &stack.receiver.url("/orders")))
        .await;
    let base = stack.serve_portal(Some(TOKEN), &[]).await;

    // Through the API.
    let url = format!("{base}/v1/tenants/acme/webhooks/orders/pause");
    let (status, _) = call(reqwest::Method::POST, url, TOKEN, None).await;
    assert!(status.is_success());

    // Through the console: sign in, then a form with its CSRF token.
    let console = client();
    let signed = console
        .post(format!("{base}/console/sign-in"))
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let cookie = signed.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = console
        .get(format!("{base}/console/tenants/acme/webhooks/orders"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let resumed = console
        .post(format!(
            "{base}/console/tenants/acme/webhooks/orders/resume"
        ))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf_of(&page).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), StatusCode::SEE_OTHER);

    // Through the portal.
    let link = mint(&base, "acme", json!({})).await;
    let session = open(&base, &link).await;
    let (_, page) = get(&format!("{session}/endpoints/orders")).await;
    let (status, _) = post(
        &format!("{session}/endpoints/orders/pause"),
        &[("csrf", &csrf_of(&page))],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    // A disabled endpoint offers "Enable", and enabling it works.
    let url = format!("{base}/v1/tenants/acme/webhooks/orders/disable");
    assert!(
        call(reqwest::Method::POST, url, TOKEN, None)
            .await
            .0
            .is_success()
    );
    let (_, page) = get(&format!("{session}/endpoints/orders")).await;
    assert!(
        page.contains("disabled") && page.contains("/enable"),
        "{page}"
    );
    let enable = format!("{session}/endpoints/orders/enable");
    let (status, _) = post(&enable, &[("csrf", &csrf_of(&page))]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = get(&format!("{session}/endpoints/orders?done=Enabled.")).await;
    assert!(!page.contains("/enable\""), "{page}");

    let url = format!("{base}/v1/audit?tenant=acme");
    let audit = call(reqwest::Method::GET, url, TOKEN, None).await.1;
    let seen: Vec<(String, String, String)> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["via"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
                e["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let portal_actor = format!("portal session {}", link["id"].as_str().unwrap());
    let enabled = "/v1/tenants/acme/webhooks/orders/enable";
    let expected = [
        ("portal", portal_actor.as_str(), enabled),
        (
            "portal",
            portal_actor.as_str(),
            "/v1/tenants/acme/webhooks/orders/pause",
        ),
        (
            "console",
            "operator",
            "/v1/tenants/acme/webhooks/orders/resume",
        ),
        ("api", "operator", "/v1/tenants/acme/webhooks/orders/pause"),
    ];
    for (via, actor, path) in expected {
        assert!(
            seen.iter()
                .any(|(v, a, p)| v == via && a == actor && p == path),
            "{via} {actor} {path} in {seen:?}"
        );
    }
    // Newest first, and the portal link's own minting is recorded too.
    assert_eq!(seen[0].0, "portal");
    assert!(seen.iter().any(|(_, _, p)| p.ends_with("/portal-sessions")));
    // Operators only.
    let url = format!("{base}/v1/tenants/acme/tokens");
    let reader = json!({"name": "reader"});
    let tenant = call(reqwest::Method::POST, url, TOKEN, Some(reader))
        .await
        .1;
    let url = format!("{base}/v1/audit");
    let token = tenant["token"].as_str().unwrap();
    let (status, _) = call(reqwest::Method::GET, url, token, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_tenants_theme_shows_and_hostile_values_are_escaped() {
    let stack = TestStack::new().await;
    let hostile = "<script>alert(1)</script>";
    let mut w = webhook(
        "acme",
        "k\"><img src=x onerror=alert(1)>",
        "http://127.0.0.1:9/<b>x</b>",
    );
    w.event_types = vec![hostile.to_owned()];
    stack.create_webhook(w).await;
    let base = stack.serve_portal(Some(TOKEN), &[]).await;

    // A theme value that is not a colour is refused, naming its field.
    let url = format!("{base}/v1/tenants/acme/portal-theme");
    let bad = json!({"accent": "red;}body{display:none"});
    let (status, answer) = call(reqwest::Method::PUT, url.clone(), TOKEN, Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["field"], "accent");
    let theme = json!({"name": "Acme <Webhooks>", "accent": "#0a7cff", "logo_url": "https://cdn.example/logo.png"});
    let (status, _) = call(reqwest::Method::PUT, url, TOKEN, Some(theme)).await;
    assert_eq!(status, StatusCode::OK);

    let link = mint(&base, "acme", json!({})).await;
    let session = open(&base, &link).await;
    let (status, page) = get(&format!("{session}/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Acme &lt;Webhooks&gt;"), "{page}");
    assert!(page.contains("--accent: #0a7cff;"), "{page}");
    assert!(
        page.contains("src=\"https://cdn.example/logo.png\""),
        "{page}"
    );
    assert!(
        !page.contains("<img src=x") && !page.contains("<b>x</b>"),
        "{page}"
    );
    let (_, log) = get(&format!("{session}/messages?event_id={}", "%3Cscript%3E")).await;
    assert!(!log.contains("<script>"), "{log}");
    let answer = client().get(format!("{session}/")).send().await.unwrap();
    let headers = answer.headers();
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "same-origin");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'"),
        "no origin allowed here: {csp}"
    );
}

#[tokio::test]
async fn the_message_log_pages_to_older_messages() {
    let stack = TestStack::new().await;
    let hook = stack
        .create_webhook(webhook("bench", "history", "http://127.0.0.1:9/history"))
        .await;
    hookrelay_tests::capacity::fill_history(&stack, 150, hook.id).await;
    let base = stack.serve_portal(Some(TOKEN), &[]).await;
    let link = mint(&base, "bench", json!({})).await;
    let session = open(&base, &link).await;
    let (_, first) = get(&format!("{session}/messages")).await;
    let at = first
        .find("rel=\"next\" href=\"")
        .expect("a link to older messages");
    let rest = &first[at + "rel=\"next\" href=\"".len()..];
    let older = rest[..rest.find('"').unwrap()].replace("&amp;", "&");
    let (status, second) = get(&format!("{base}{older}")).await;
    assert_eq!(status, StatusCode::OK);
    let ids = |page: &str| -> Vec<String> {
        page.split("/deliveries/")
            .skip(1)
            .map(|s| s[..36].to_owned())
            .collect()
    };
    let (a, b) = (ids(&first), ids(&second));
    assert_eq!(a.len(), 100, "a full first page");
    assert!(
        !b.is_empty() && b.iter().all(|id| !a.contains(id)),
        "older ones, none repeated"
    );
}
