//! The operator console in a real browser (headless Chromium through chromedriver):
//! what an operator and a tenant do there, and what another site cannot make it do.
//! Every page visited is saved under `target/console-screenshots/`.

use std::time::Duration;

use fantoccini::Locator;
use hookrelay_model::access::Scope;
use hookrelay_store::deliveries::DeliveryStatus;
use hookrelay_store::tokens;
use hookrelay_tests::stack::{event, webhook};
use hookrelay_tests::{Behaviour, Browser, TestStack, wait_until};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "console-operator-token";

pub(crate) async fn sign_in(browser: &Browser, base: &str, token: &str) {
    browser.goto(&format!("{base}/console")).await;
    // Nobody is signed in yet: the console sends the browser to sign in.
    assert_eq!(browser.current_url().await.path(), "/console/sign-in");
    browser.fill("#token", token).await;
    browser.click("button[type=submit]").await;
    browser.wait_heading("Overview").await;
}

async fn status_of(stack: &TestStack, tenant: &str, event_id: &str) -> Option<DeliveryStatus> {
    let d = stack.deliveries_of(tenant, event_id).await;
    d.first().map(|d| d.status)
}

async fn wait_status(stack: &TestStack, tenant: &str, event_id: &str, status: DeliveryStatus) {
    wait_until(&format!("{event_id} is {status:?}"), WAIT, || async {
        status_of(stack, tenant, event_id).await == Some(status)
    })
    .await;
}

#[tokio::test]
async fn an_operator_runs_a_webhook_from_sign_in_to_a_replayed_dead_letter() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    let base = stack.serve_api(Some(TOKEN), 1 << 20).await;
    let browser = Browser::start().await;

    browser.goto(&format!("{base}/console")).await;
    browser.screenshot("sign-in").await;
    sign_in(&browser, &base, TOKEN).await;
    let session = browser
        .cookies()
        .await
        .into_iter()
        .find(|c| c.name() == "hookrelay_console")
        .expect("a session cookie");
    assert_eq!(session.http_only(), Some(true));
    // fantoccini's cookie type does not export its SameSite enum: its name it is.
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");
    assert!(
        !session.value().contains(TOKEN),
        "the cookie holds a session id, not the token"
    );

    // Create a webhook; a wrong URL first, refused beside its field.
    browser
        .goto(&format!("{base}/console/tenants/acme/webhooks"))
        .await;
    browser.wait_heading("New webhook in acme").await;
    browser.fill("#key", "orders").await;
    browser.fill("#url", "ftp://nowhere").await;
    browser.click("form.stack button[type=submit]").await;
    let complaint = browser.text_of("#url-error").await;
    assert!(complaint.contains("http"), "{complaint}");
    browser.screenshot("webhook-new-refused").await;
    browser.fill("#url", &stack.receiver.url("/orders")).await;
    browser.fill("#event_types", "order.created").await;
    browser.click("#ordered").await;
    browser.click("form.stack button[type=submit]").await;
    browser.wait_heading("Webhook orders").await;
    let shown = browser.page_text().await;
    assert!(
        shown.contains("ordered per ordering key; after a key's head fails for good: skip"),
        "{shown}"
    );
    browser.screenshot("webhook").await;

    // An event, its delivery and its attempts.
    let first = event("acme", "order.created", json!({}));
    stack.publish(&first).await;
    wait_status(&stack, "acme", &first.id, DeliveryStatus::Delivered).await;
    browser
        .goto(&format!(
            "{base}/console/deliveries?tenant=acme&event_id={}",
            first.id
        ))
        .await;
    browser.wait_heading("Events & deliveries of acme").await;
    browser.screenshot("deliveries").await;
    browser.click("tbody th a").await;
    wait_until("the delivery page", WAIT, || async {
        browser.current_url().await.path().contains("/deliveries/")
    })
    .await;
    let delivery = browser.page_text().await;
    assert!(delivery.contains("delivered"), "{delivery}");
    assert!(
        delivery.contains("#1") && delivery.contains("HTTP 200"),
        "{delivery}"
    );
    browser.screenshot("delivery").await;
    browser
        .goto(&format!("{base}/console/tenants/acme/events/{}", first.id))
        .await;
    browser.wait_heading(&format!("Event {}", first.id)).await;
    browser.screenshot("event").await;

    // Pause: the next event is held; resume: it is sent.
    let webhook_page = format!("{base}/console/tenants/acme/webhooks/orders");
    browser.goto(&webhook_page).await;
    browser.click("form[action$='/pause'] button").await;
    browser.wait_text(".notice", "Paused").await;
    let held = event("acme", "order.created", json!({}));
    stack.publish(&held).await;
    wait_status(&stack, "acme", &held.id, DeliveryStatus::Held).await;
    browser.screenshot("webhook-paused").await;
    browser.click("form[action$='/resume'] button").await;
    browser.wait_text(".notice", "Resumed").await;
    wait_status(&stack, "acme", &held.id, DeliveryStatus::Delivered).await;

    // A new signing secret is shown once, on its own page.
    browser.goto(&webhook_page).await;
    browser
        .click("form[action$='/rotate-signing-secret'] button")
        .await;
    let secret = browser.text_of("code.secret").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    browser.screenshot("signing-secret").await;
    browser.goto(&webhook_page).await;
    assert!(
        !browser.page_text().await.contains(&secret),
        "shown once only"
    );

    // A test event, for this webhook only.
    browser.goto(&webhook_page).await;
    browser.click("form[action$='/test'] button").await;
    wait_until("the test event is shown delivered", WAIT, || async {
        browser.client().refresh().await.expect("reload");
        browser.page_text().await.contains("delivered")
    })
    .await;
    let tested = stack.receiver.received_on("/orders");
    assert_eq!(tested.len(), 3, "two events and the test event");
    assert_eq!(tested[2].json()["data"]["test"], true);
    browser.screenshot("event-test").await;

    // A delivery that keeps failing is dead-lettered; replayed after a dry run once
    // its receiver answers again.
    stack.receiver.respond("/flaky", Behaviour::Status(500));
    stack
        .create_webhook(webhook("acme", "flaky", &stack.receiver.url("/flaky")))
        .await;
    let failing = event("acme", "order.failed", json!({}));
    stack.publish(&failing).await;
    let dlq = stack.topology.dead_letter_queue();
    stack.wait_queue_len(&dlq, 1, WAIT).await;
    stack.receiver.respond("/flaky", Behaviour::Status(200));
    // Its health: the last error of the day beside the webhook.
    browser
        .goto(&format!("{base}/console/webhooks?tenant=acme"))
        .await;
    let flaky_row = browser.text_of("tbody tr:nth-child(2)").await;
    assert!(
        flaky_row.contains("flaky") && flaky_row.contains("500"),
        "{flaky_row}"
    );
    browser.goto(&format!("{base}/console/dead-letters")).await;
    browser.wait_heading("Dead letters").await;
    assert!(browser.page_text().await.contains("flaky"));
    browser.screenshot("dead-letters").await;
    // The group's messages, and one of them whole.
    browser.click("tbody td a[href*='reason=']").await;
    browser
        .click("tbody th a[href*='/dead-letters/message/']")
        .await;
    wait_until("the dead letter's page", WAIT, || async {
        browser.page_text().await.contains("Dead letter ")
    })
    .await;
    assert!(browser.page_text().await.contains(failing.id.as_str()));
    browser.screenshot("dead-letter").await;
    browser.goto(&format!("{base}/console/dead-letters")).await;
    browser.click("form[action$='/replay'] button").await;
    browser.wait_heading("Replay dead letters").await;
    assert_eq!(browser.text_of("#dry-run .count").await, "1");
    assert_eq!(
        stack.queue_len(&dlq).await,
        1,
        "a dry run leaves the queue as it was"
    );
    browser.screenshot("dead-letters-dry-run").await;
    browser.click("form[action$='/replay'] button").await;
    // The replay runs as a job; its page shows the progress, then what it did.
    wait_until("the replay job reports its outcome", WAIT, || async {
        browser
            .page_text()
            .await
            .contains("1 of 1 matching messages replayed")
    })
    .await;
    browser.screenshot("dead-letters-replayed").await;
    wait_until("the replayed delivery is delivered", WAIT, || async {
        stack
            .deliveries_of("acme", &failing.id)
            .await
            .iter()
            .any(|d| d.status == DeliveryStatus::Delivered)
    })
    .await;
    // The console's changes are in the audit log, the replay job's among them.
    let audit: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/v1/audit"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let by_console = |path: &str| {
        audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["via"] == "console" && e["actor"] == "operator" && e["path"] == path)
    };
    assert!(by_console("/v1/dead-letter/replay"), "{audit:#}");
    assert!(
        by_console("/v1/tenants/acme/webhooks/orders/pause"),
        "{audit:#}"
    );

    browser
        .goto(&format!("{base}/console/settings?tenant=acme"))
        .await;
    browser.wait_heading("Settings of acme").await;
    browser.screenshot("settings").await;
    browser.goto(&format!("{base}/console")).await;
    browser.wait_heading("Overview").await;
    browser.screenshot("overview").await;
    browser
        .goto(&format!("{base}/console/webhooks?tenant=acme"))
        .await;
    browser.screenshot("webhooks").await;
    browser.set_size(390, 844).await;
    browser.screenshot("webhooks-phone").await;

    browser.click("form.sign-out button").await;
    browser.wait_heading("hookrelay console").await;
    browser.goto(&format!("{base}/console")).await;
    assert_eq!(
        browser.current_url().await.path(),
        "/console/sign-in",
        "signed out"
    );
}

#[tokio::test]
async fn a_tenant_token_sees_its_own_tenant_and_changes_nothing_when_read_only() {
    let stack = TestStack::new().await;
    stack
        .create_webhook(webhook("acme", "mine", "http://127.0.0.1:9/mine"))
        .await;
    stack
        .create_webhook(webhook("globex", "theirs", "http://127.0.0.1:9/theirs"))
        .await;
    let (_, token) = tokens::create(&stack.db.client().await, "acme", "front", Scope::Read)
        .await
        .unwrap();
    let base = stack.serve_api(Some(TOKEN), 1 << 20).await;
    let browser = Browser::start().await;
    sign_in(&browser, &base, token.expose()).await;
    let overview = browser.page_text().await;
    assert!(
        overview.contains("acme") && !overview.contains("globex"),
        "{overview}"
    );
    let to_dead_letters = browser
        .client()
        .find_all(Locator::Css("a[href='/console/dead-letters']"))
        .await
        .unwrap();
    assert!(
        to_dead_letters.is_empty(),
        "the dead-letter queue is the operator's"
    );
    browser.screenshot("tenant-overview").await;

    browser.goto(&format!("{base}/console/webhooks")).await;
    browser.wait_heading("Webhooks of acme").await;
    let list = browser.page_text().await;
    assert!(list.contains("mine") && !list.contains("theirs"), "{list}");
    assert!(
        !list.contains("New webhook"),
        "a read-only token creates nothing"
    );
    browser.screenshot("tenant-webhooks").await;

    for other in [
        "/console/webhooks?tenant=globex",
        "/console/tenants/globex/webhooks/theirs",
        "/console/deliveries?tenant=globex",
        "/console/settings?tenant=globex",
        "/console/dead-letters",
    ] {
        browser.goto(&format!("{base}{other}")).await;
        let text = browser.page_text().await;
        assert!(!text.contains("theirs"), "{other}: {text}");
        assert!(text.contains("Something went wrong"), "{other}: {text}");
    }
}

#[tokio::test]
async fn a_form_on_another_site_cannot_post_to_the_console() {
    let stack = TestStack::new().await;
    let base = stack.serve_api(Some(TOKEN), 1 << 20).await;
    let target = format!("{base}/console/tenants/acme/webhooks");
    // Another origin (another port of 127.0.0.1) serves a page that posts to the console.
    let evil = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let target = target.clone();
            async move {
                axum::response::Html(format!(
                    "<form id=f method=post action='{target}'>\
                     <input name=key value=forged><input name=url value='http://127.0.0.1:9/x'>\
                     <button>go</button></form>"
                ))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let evil_url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, evil).await });

    let browser = Browser::start().await;
    sign_in(&browser, &base, TOKEN).await;
    browser.goto(&evil_url).await;
    browser.click("#f button").await;
    wait_until("the forged post was answered", WAIT, || async {
        browser.current_url().await.path() == "/console/tenants/acme/webhooks"
    })
    .await;
    let answer = browser.page_text().await;
    assert!(answer.contains("refused"), "{answer}");
    assert_eq!(stack.webhook_count().await, 0, "no webhook was created");
}

#[tokio::test]
async fn a_post_without_the_session_csrf_token_is_refused() {
    let stack = TestStack::new().await;
    let base = stack.serve_api(Some(TOKEN), 1 << 20).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = http
        .post(format!("{base}/console/sign-in"))
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), reqwest::StatusCode::SEE_OTHER);
    let cookie = signed_in
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let forged = http
        .post(format!("{base}/console/tenants/acme/webhooks"))
        .header(reqwest::header::COOKIE, &cookie)
        .form(&[
            ("key", "k"),
            ("url", "http://127.0.0.1:9/x"),
            ("csrf", "guess"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), reqwest::StatusCode::FORBIDDEN);
    assert!(forged.text().await.unwrap().contains("CSRF"));

    let wrong = http
        .post(format!("{base}/console/sign-in"))
        .form(&[("token", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(reqwest::header::SET_COOKIE).is_none());
}

/// An ordered webhook that blocks after a failure: its page lists the blocked key
/// with its failed delivery, and Resume sends that delivery again, then the rest.
#[tokio::test]
async fn an_operator_sees_a_blocked_key_and_resumes_it_from_the_webhook_page() {
    let mut stack = TestStack::new().await;
    stack.receiver.respond(
        "/orders",
        Behaviour::Sequence(vec![Behaviour::Status(500), Behaviour::Status(200)]),
    );
    let mut new = webhook("acme", "orders", &stack.receiver.url("/orders"));
    new.ordered = true;
    new.on_failure = hookrelay_model::webhook::OnFailure::Block;
    stack.create_webhook(new).await;
    stack.start_router().await;
    stack.start_sender().await;
    let (first, second) = (
        event("acme", "order.changed", json!({"ordering_key": "order-7"})),
        event("acme", "order.changed", json!({"ordering_key": "order-7"})),
    );
    stack
        .publisher
        .publish_batch(&[first.clone(), second.clone()])
        .await
        .unwrap();
    wait_status(&stack, "acme", &first.id, DeliveryStatus::Failed).await;
    wait_status(&stack, "acme", &second.id, DeliveryStatus::Waiting).await;

    let base = stack.serve_api(Some(TOKEN), 1 << 20).await;
    let browser = Browser::start().await;
    sign_in(&browser, &base, TOKEN).await;
    browser
        .goto(&format!("{base}/console/tenants/acme/webhooks/orders"))
        .await;
    browser.wait_heading("Webhook orders").await;
    let text = browser
        .text_of("section[aria-labelledby=blocked-keys]")
        .await;
    assert!(
        text.contains("order-7") && text.contains("number 1"),
        "{text}"
    );
    browser.screenshot("webhook-blocked-key").await;
    browser
        .click("section[aria-labelledby=blocked-keys] button[type=submit]")
        .await;
    browser.wait_text("p.notice", "Key order-7 resumed").await;
    wait_status(&stack, "acme", &second.id, DeliveryStatus::Delivered).await;
    let n: Vec<String> = stack
        .receiver
        .received_on("/orders")
        .iter()
        .map(|r| r.header("x-hookrelay-event-id").unwrap_or_default())
        .collect();
    assert_eq!(
        n,
        [&first.id, &first.id, &second.id].map(ToString::to_string)
    );
    let text = browser
        .text_of("section[aria-labelledby=blocked-keys]")
        .await;
    assert!(
        text.contains("No key is blocked") || !text.contains("order-7"),
        "{text}"
    );
}
