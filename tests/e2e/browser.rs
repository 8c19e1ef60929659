//! What a web page in the operator's browser can make the API do: nothing. Forged
//! form posts, cross-site `fetch` and DNS rebinding, against the served API.

use hookrelay_tests::TestStack;
use reqwest::header::{CONTENT_TYPE, HOST, ORIGIN};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn create_body(key: &str) -> String {
    json!({"key": key, "url": "http://127.0.0.1:9/hook"}).to_string()
}

#[tokio::test]
async fn without_a_token_a_page_from_another_site_cannot_change_anything() {
    let stack = TestStack::new().await;
    let base = stack.serve_api(None, 1 << 20).await;
    let http = reqwest::Client::new();
    let webhooks = format!("{base}/v1/tenants/acme/webhooks");

    // An HTML form on evil.example: text/plain, no preflight, the browser adds Origin.
    let forged = http
        .post(&webhooks)
        .header(ORIGIN, "https://evil.example")
        .header(CONTENT_TYPE, "text/plain")
        .body(create_body("forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let error: Value = forged.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("evil.example"),
        "{error}"
    );

    // `fetch(..., {mode: "no-cors"})` from a page that hides its origin.
    let hidden = http
        .post(&webhooks)
        .header("sec-fetch-site", "cross-site")
        .header(CONTENT_TYPE, "text/plain")
        .body(create_body("hidden"))
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), StatusCode::FORBIDDEN);

    // No browser headers, but not JSON: refused, since a browser could send it.
    let plain = http
        .post(&webhooks)
        .header(CONTENT_TYPE, "text/plain")
        .body(create_body("plain"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let error: Value = plain.json().await.unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("application/json"),
        "{error}"
    );
    assert_eq!(stack.webhook_count().await, 0, "nothing forged was stored");

    // The same request as a script or the CLI sends it is served.
    let made = http
        .post(&webhooks)
        .header(CONTENT_TYPE, "application/json")
        .body(create_body("real"))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);

    // A bodyless purge from a page is refused too; the queue's route is not reached.
    let purge = http
        .request(Method::POST, format!("{base}/v1/dead-letter/purge"))
        .header(ORIGIN, "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(purge.status(), StatusCode::FORBIDDEN);
    let delete = http
        .delete(format!("{webhooks}/real"))
        .header(ORIGIN, "null")
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        stack.webhook_count().await,
        1,
        "the real webhook is still there"
    );

    // The API's own origin (a page it serves) may change things.
    let port = base.rsplit(':').next().unwrap();
    let same = http
        .delete(format!("{webhooks}/real"))
        .header(ORIGIN, format!("http://127.0.0.1:{port}"))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn without_a_token_a_rebound_dns_name_reads_nothing() {
    let stack = TestStack::new().await;
    let base = stack.serve_api(None, 1 << 20).await;
    let http = reqwest::Client::new();
    let events = format!("{base}/v1/tenants/acme/events");
    let rebound = http
        .get(&events)
        .header(HOST, "rebind.evil.example:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    let error: Value = rebound.json().await.unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("HOOKRELAY_API_TOKEN"),
        "{error}"
    );
    let local = http
        .get(&events)
        .header(HOST, "localhost:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(local.status(), StatusCode::OK);
}

#[tokio::test]
async fn with_a_token_a_cross_site_post_is_refused_before_the_token_is_checked() {
    let stack = TestStack::new().await;
    let base = stack.serve_api(Some("operator-secret"), 1 << 20).await;
    let http = reqwest::Client::new();
    let forged = http
        .post(format!("{base}/v1/tenants/acme/webhooks"))
        .bearer_auth("operator-secret")
        .header(ORIGIN, "https://evil.example")
        .header(CONTENT_TYPE, "application/json")
        .body(create_body("forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    // Behind a proxy with its own name, a token-protected API answers any Host.
    let named = http
        .get(format!("{base}/v1/tenants/acme/webhooks"))
        .bearer_auth("operator-secret")
        .header(HOST, "hookrelay.example")
        .send()
        .await
        .unwrap();
    assert_eq!(named.status(), StatusCode::OK);
    assert_eq!(stack.webhook_count().await, 0);
}
