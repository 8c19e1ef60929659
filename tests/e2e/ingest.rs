use hookrelay_tests::TestStack;
use hookrelay_tests::stack::event;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn serve(stack: &TestStack, token: Option<&str>, max_event_bytes: usize) -> String {
    stack.serve_api(token, max_event_bytes).await
}

async fn post(url: &str, token: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{url}/v1/events"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn accepted_events_answer_202_with_ids_and_reach_the_queue() {
    let stack = TestStack::new().await;
    let url = serve(&stack, None, 1 << 20).await;
    let one = event("acme", "embed_initialized", json!({}));
    let (status, body) = post(&url, None, one.to_json()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body, json!({"accepted": [one.id]}));

    let a = event("acme", "file_uploaded", json!({}));
    let b = event("acme", "columns_mapped", json!({}));
    let batch = serde_json::to_vec(&json!([a, b])).unwrap();
    let (status, body) = post(&url, None, batch).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body, json!({"accepted": [a.id, b.id]}));
    assert_eq!(
        stack
            .drain_queue(&stack.topology.router_queue())
            .await
            .len(),
        3
    );
}

#[tokio::test]
async fn invalid_events_answer_400_naming_the_field_and_publish_nothing() {
    let stack = TestStack::new().await;
    let url = serve(&stack, None, 1 << 20).await;
    let mut bad = serde_json::to_value(event("acme", "x", json!({}))).unwrap();
    bad["tenant"] = json!("has space");
    let (status, body) = post(&url, None, serde_json::to_vec(&bad).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "tenant");
    assert!(body["error"].as_str().unwrap().contains("tenant"));

    let (status, body) = post(&url, None, b"{not json".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("not valid JSON"));

    let good = event("acme", "x", json!({}));
    let batch = serde_json::to_vec(&json!([good, bad])).unwrap();
    let (status, body) = post(&url, None, batch).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "[1].tenant");
    assert!(
        stack
            .drain_queue(&stack.topology.router_queue())
            .await
            .is_empty(),
        "nothing published"
    );
}

#[tokio::test]
async fn a_token_is_required_when_configured() {
    let stack = TestStack::new().await;
    let url = serve(&stack, Some("s3cret"), 1 << 20).await;
    let e = event("acme", "x", json!({}));
    let (status, body) = post(&url, None, e.to_json()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().unwrap().contains("bearer token"));
    let (status, _) = post(&url, Some("wrong"), e.to_json()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = post(&url, Some("s3cret"), e.to_json()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The scheme's name is case-insensitive.
    for scheme in ["bearer", "BEARER"] {
        let res = reqwest::Client::new()
            .post(format!("{url}/v1/events"))
            .header("authorization", format!("{scheme} s3cret"))
            .header("content-type", "application/json")
            .body(e.to_json())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED, "scheme `{scheme}`");
    }
    let health = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "probes need no token");
    let ready = reqwest::get(format!("{url}/readyz")).await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}

#[tokio::test]
async fn bodies_over_the_limit_answer_413() {
    let stack = TestStack::new().await;
    let url = serve(&stack, None, 2048).await;
    let big = event("acme", "x", json!({"payload": {"blob": "x".repeat(4096)}}));
    let (status, body) = post(&url, None, big.to_json()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body["error"].as_str().unwrap().contains("2048"));
    let small = event("acme", "x", json!({}));
    let (status, _) = post(&url, None, small.to_json()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}
