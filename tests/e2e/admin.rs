//! The admin API: webhooks, environments, tenants, events, deliveries, redelivery,
//! authentication and tenant isolation, over real HTTP.

use std::time::Duration;

use hookrelay_tests::stack::{event, webhook};
use hookrelay_tests::{Behaviour, TestStack, wait_until};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// A client for one served API.
pub(crate) struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    pub(crate) async fn new(stack: &TestStack, token: Option<&str>) -> Self {
        Self::at(stack.serve_api(token, 1 << 20).await, token)
    }

    /// The API served at `base`.
    pub(crate) fn at(base: String, token: Option<&str>) -> Self {
        Self {
            base,
            token: token.map(str::to_owned),
            http: reqwest::Client::new(),
        }
    }

    /// The same API, called with another token.
    pub(crate) fn with_token(&self, token: &str) -> Self {
        Self {
            base: self.base.clone(),
            token: Some(token.to_owned()),
            http: self.http.clone(),
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
}

#[tokio::test]
async fn webhooks_are_managed_with_clear_errors() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack, None).await;
    let url = stack.receiver.url("/a");
    let (status, created) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({"key": "orders", "url": url, "event_types": ["file_uploaded"], "secret": "s3cret"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["tenant"], "acme");
    assert_eq!(created["secret"], "********", "secrets are never echoed");
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, body) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({"key": "orders", "url": url}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (status, body) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({"key": "k2", "url": "ftp://x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "url", "{body}");
    let (status, body) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({"key": "k3", "url": url, "format": "xml"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "format", "{body}");
    let (status, body) = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({"key": "k4", "url": url, "colour": "red"}),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("colour")),
        "unknown fields are refused by name: {body}"
    );
    let (status, body) = api
        .post("/v1/tenants/acme/webhooks", json!({"key": "k5"}))
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("url")),
        "a missing field is named: {body}"
    );

    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("/v1/tenants/acme/webhooks/{id}"),
            Some(json!({"key": "orders-v2"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["key"], "orders-v2");
    let (status, body) = api.get("/v1/tenants/acme/webhooks/orders-v2").await;
    assert_eq!(
        (status, body["id"].as_str()),
        (StatusCode::OK, Some(id.as_str()))
    );

    let (_, body) = api
        .post(
            &format!("/v1/tenants/acme/webhooks/{id}/disable"),
            json!({}),
        )
        .await;
    assert_eq!(body["enabled"], false);
    assert_eq!(body["disabled_reason"], "disabled by an operator");
    let (_, body) = api
        .post(&format!("/v1/tenants/acme/webhooks/{id}/enable"), json!({}))
        .await;
    assert_eq!(body["enabled"], true);

    // Another tenant sees nothing of it.
    let (status, _) = api.get(&format!("/v1/tenants/other/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/tenants/other/webhooks/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/tenants/acme/webhooks/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api.get(&format!("/v1/tenants/acme/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn webhook_lists_are_paged() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack, None).await;
    for i in 0..5 {
        let (status, _) = api
            .post(
                "/v1/tenants/acme/webhooks",
                json!({"key": format!("k{i}"), "url": stack.receiver.url("/x")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/tenants/acme/webhooks?limit=2&cursor={c}"),
            None => "/v1/tenants/acme/webhooks?limit=2".to_owned(),
        };
        let (status, page) = api.get(&path).await;
        assert_eq!(status, StatusCode::OK);
        for w in page["data"].as_array().unwrap() {
            keys.push(w["key"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(keys, ["k0", "k1", "k2", "k3", "k4"]);
    let (status, body) = api.get("/v1/tenants/acme/webhooks?limit=0").await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("limit"))
    );
}

#[tokio::test]
async fn every_admin_route_needs_the_token_and_openapi_describes_them() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack, Some("sesame")).await;
    let anonymous = Api {
        base: api.base.clone(),
        token: None,
        http: reqwest::Client::new(),
    };
    for path in [
        "/v1/tenants/acme/webhooks",
        "/v1/tenants/acme/events",
        "/v1/tenants/acme/deliveries",
        "/v1/tenants/acme/environments",
        "/v1/tenants/acme",
        "/v1/dead-letter",
    ] {
        let (status, _) = anonymous.get(path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, body) = api.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (status, spec) = anonymous.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let paths = spec["paths"].as_object().expect("openapi paths");
    for path in [
        "/v1/events",
        "/v1/tenants/{tenant}",
        "/v1/tenants/{tenant}/webhooks",
        "/v1/tenants/{tenant}/webhooks/{id}",
        "/v1/tenants/{tenant}/environments/{name}",
        "/v1/tenants/{tenant}/events",
        "/v1/tenants/{tenant}/events/{id}",
        "/v1/tenants/{tenant}/deliveries",
        "/v1/tenants/{tenant}/deliveries/{id}/attempts",
        "/v1/tenants/{tenant}/deliveries/{id}/redeliver",
        "/v1/dead-letter",
        "/v1/dead-letter/replay",
        "/v1/dead-letter/purge",
    ] {
        assert!(paths.contains_key(path), "openapi.json lacks {path}");
    }
}

#[tokio::test]
async fn environment_values_are_never_echoed_in_full() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack, None).await;
    let (status, body) = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/environments/Production",
            Some(json!({"variables": {"API_TOKEN": "tok_live_123456"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["variables"]["API_TOKEN"], "********");
    assert!(
        !body.to_string().contains("tok"),
        "not even a prefix: {body}"
    );
    let (_, list) = api.get("/v1/tenants/acme/environments").await;
    assert!(!list.to_string().contains("123456"), "{list}");
    let (status, body) = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/environments/Production",
            Some(json!({"variables": {"bad-name": "x"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api
        .call(
            Method::DELETE,
            "/v1/tenants/acme/environments/Production/variables/API_TOKEN",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["variables"], json!({}));
}

#[tokio::test]
async fn retention_is_set_per_tenant() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack, None).await;
    let (_, body) = api.get("/v1/tenants/acme").await;
    assert_eq!(
        body,
        json!({"tenant": "acme", "retention_days": null, "effective_retention_days": 30})
    );
    let (status, body) = api
        .call(
            Method::PUT,
            "/v1/tenants/acme",
            Some(json!({"retention_days": 7})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["effective_retention_days"], 7);
    // JSON's `14.0` is the whole number its schema (`integer`) allows.
    let (status, body) = api
        .call(
            Method::PUT,
            "/v1/tenants/acme",
            Some(json!({"retention_days": 14.0})),
        )
        .await;
    assert_eq!(
        (status, &body["effective_retention_days"]),
        (StatusCode::OK, &json!(14))
    );
    for bad in [json!(0), json!(36_501), json!(7.5), json!(1e12)] {
        let (status, body) = api
            .call(
                Method::PUT,
                "/v1/tenants/acme",
                Some(json!({"retention_days": bad})),
            )
            .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("retention_days")),
            "{bad}: {body}"
        );
    }
}

/// Events of two tenants with the same ids: each tenant sees its own only.
#[tokio::test]
async fn events_api_filters_pages_stably_and_isolates_tenants() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    let api = Api::new(&stack, None).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let session = if i % 2 == 0 { "s-even" } else { "s-odd" };
        let mut a = event("acme", "file_uploaded", json!({"session_id": session}));
        a.id = format!("evt-{i}").parse().unwrap();
        let mut b = event("globex", "file_uploaded", json!({"session_id": session}));
        b.id = format!("evt-{i}").parse().unwrap();
        stack.publish(&a).await;
        stack.publish(&b).await;
        ids.push(a.id.to_string());
    }
    let stored = |tenant: &'static str, n: usize| {
        let api = &api;
        async move {
            wait_until(&format!("{n} events of {tenant} stored"), WAIT, || async {
                let (_, page) = api
                    .get(&format!("/v1/tenants/{tenant}/events?limit=100"))
                    .await;
                page["data"].as_array().map(Vec::len) == Some(n)
            })
            .await;
        }
    };
    stored("acme", 6).await;
    stored("globex", 6).await;

    let (_, page1) = api.get("/v1/tenants/acme/events?limit=4").await;
    let first: Vec<String> = page1["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["tenant"], "acme");
            e["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(first.len(), 4);
    // New events arrive between pages: they come before page one, not inside.
    for i in 6..9 {
        let mut late = event("acme", "file_uploaded", json!({}));
        late.id = format!("evt-{i}").parse().unwrap();
        stack.publish(&late).await;
    }
    stored("acme", 9).await;
    let cursor = page1["next_cursor"].as_str().expect("a next page");
    let (_, page2) = api
        .get(&format!("/v1/tenants/acme/events?limit=4&cursor={cursor}"))
        .await;
    let second: Vec<String> = page2["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let mut all: Vec<String> = first.iter().chain(&second).cloned().collect();
    all.sort();
    assert_eq!(
        all, ids,
        "the six first events, each once, across both pages"
    );

    let (_, odd) = api.get("/v1/tenants/acme/events?session_id=s-odd").await;
    let odd: Vec<&str> = odd["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(odd.len(), 3);
    assert!(
        odd.iter()
            .all(|id| ["evt-1", "evt-3", "evt-5"].contains(id))
    );
    let (_, none) = api.get("/v1/tenants/acme/events?type=other").await;
    assert_eq!(none["data"], json!([]));
    let (_, future) = api
        .get("/v1/tenants/acme/events?since=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(future["data"], json!([]));
    let (status, body) = api.get("/v1/tenants/acme/events?since=yesterday").await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("since"))
    );
    let (status, body) = api.get("/v1/tenants/acme/events?cursor=garbage").await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("cursor"))
    );

    let (status, one) = api.get("/v1/tenants/globex/events/evt-7").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "globex has no evt-7: {one}");
    let (status, one) = api.get("/v1/tenants/globex/events/evt-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["event"]["tenant"], "globex");
    assert_eq!(one["deliveries"], json!([]));
}

/// A failed delivery redelivered by hand: a fresh round of attempts, recorded after
/// the first ones, on the same delivery row.
#[tokio::test]
async fn a_failed_delivery_is_redelivered_with_new_attempts() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    let api = Api::new(&stack, None).await;
    stack.receiver.respond(
        "/flaky",
        Behaviour::Sequence(vec![
            Behaviour::Status(429),
            Behaviour::Status(429),
            Behaviour::Status(429),
            Behaviour::Status(429),
            Behaviour::Status(200),
        ]),
    );
    let hook = stack
        .create_webhook(webhook("acme", "flaky", &stack.receiver.url("/flaky")))
        .await;
    let e = event("acme", "file_uploaded", json!({}));
    stack.publish(&e).await;
    let settled = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(settled[0].status.as_str(), "failed");
    let id = settled[0].id;

    let (_, failed) = api
        .get(&format!(
            "/v1/tenants/acme/deliveries?status=failed&webhook_id={}",
            hook.id
        ))
        .await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 1, "{failed}");
    let (status, body) = api
        .post(
            &format!("/v1/tenants/other/deliveries/{id}/redeliver"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = api
        .post(
            &format!("/v1/tenants/acme/deliveries/{id}/redeliver"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, _) = api
        .post(
            &format!("/v1/tenants/acme/deliveries/{id}/redeliver"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "already pending again");

    wait_until("the redelivered delivery is delivered", WAIT, || async {
        let (_, d) = api.get(&format!("/v1/tenants/acme/deliveries/{id}")).await;
        d["status"] == "delivered"
    })
    .await;
    let (_, attempts) = api
        .get(&format!("/v1/tenants/acme/deliveries/{id}/attempts"))
        .await;
    let numbers: Vec<i64> = attempts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attempt"].as_i64().unwrap())
        .collect();
    let codes: Vec<i64> = attempts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        [1, 2, 3, 4, 5],
        "the second round's retries continue the count"
    );
    assert_eq!(codes, [429, 429, 429, 429, 200]);
    let (status, _) = api
        .get(&format!("/v1/tenants/other/deliveries/{id}/attempts"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        stack.deliveries_of("acme", &e.id).await.len(),
        1,
        "dedup holds"
    );
}

/// "All failed deliveries of a webhook since a time", by the API.
#[tokio::test]
async fn failed_deliveries_of_a_webhook_are_redelivered_together() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    let api = Api::new(&stack, None).await;
    stack.receiver.respond("/down", Behaviour::Status(500));
    let hook = stack
        .create_webhook(webhook("acme", "down", &stack.receiver.url("/down")))
        .await;
    let events: Vec<_> = (0..3)
        .map(|_| event("acme", "file_uploaded", json!({})))
        .collect();
    for e in &events {
        stack.publish(e).await;
    }
    for e in &events {
        stack.wait_settled("acme", &e.id, 1, WAIT).await;
    }
    stack.receiver.respond("/down", Behaviour::Status(200));
    let (status, summary) = api
        .post(
            &format!("/v1/tenants/acme/webhooks/{}/redeliver", hook.key),
            json!({"since": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["requeued"], 3);
    stack.receiver.wait_for("/down", 6, WAIT).await;
    for e in &events {
        wait_until("delivered after redelivery", WAIT, || async {
            stack.deliveries_of("acme", &e.id).await[0].status.as_str() == "delivered"
        })
        .await;
    }
    let (status, body) = api
        .post(
            &format!("/v1/tenants/acme/webhooks/{}/redeliver", hook.key),
            json!({"since": "soon"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// A tenant token opens its tenant's routes and nothing else; the events API with it
/// never returns another tenant's events, whatever the filters.
#[tokio::test]
async fn a_tenant_token_sees_its_tenant_only() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    let operator = Api::new(&stack, Some("operator-secret")).await;
    let (status, made) = operator
        .post("/v1/tenants/acme/tokens", json!({"name": "embed"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let token = made["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("hrt_"));
    let (_, listed) = operator.get("/v1/tenants/acme/tokens").await;
    assert!(
        !listed.to_string().contains(&token),
        "tokens are shown once"
    );

    for tenant in ["acme", "globex"] {
        let mut e = event(tenant, "file_uploaded", json!({"session_id": "shared"}));
        e.id = "same-id".parse().unwrap();
        stack.publish(&e).await;
    }
    wait_until("both events stored", WAIT, || async {
        let (_, a) = operator.get("/v1/tenants/acme/events").await;
        let (_, g) = operator.get("/v1/tenants/globex/events").await;
        a["data"].as_array().map(Vec::len) == Some(1)
            && g["data"].as_array().map(Vec::len) == Some(1)
    })
    .await;

    let acme = Api {
        base: operator.base.clone(),
        token: Some(token.clone()),
        http: reqwest::Client::new(),
    };
    let (status, own) = acme.get("/v1/tenants/acme/events?session_id=shared").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(own["data"].as_array().unwrap().len(), 1);
    assert_eq!(own["data"][0]["tenant"], "acme");
    for path in [
        "/v1/tenants/globex/events",
        "/v1/tenants/globex/events?session_id=shared",
        "/v1/tenants/globex/events/same-id",
        "/v1/tenants/globex/webhooks",
        "/v1/tenants/acme/tokens",
        "/v1/dead-letter",
        "/v1/tenants/acm%65/events",
    ] {
        let (status, body) = acme.get(path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }
    let (status, _) = acme.post("/v1/events", json!({})).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "ingest is for the operator's token"
    );

    let (status, _) = operator
        .call(Method::DELETE, "/v1/tenants/acme/tokens/embed", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = acme.get("/v1/tenants/acme/events").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revoked token stops at once"
    );
}

/// A front end's token reads; only a token made with the `write` scope changes things,
/// and only the operator or such a token sees an event's private fields.
#[tokio::test]
async fn a_tenant_token_is_read_only_unless_made_with_the_write_scope() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    let operator = Api::new(&stack, Some("operator-secret")).await;
    let as_token = |token: &Value| Api {
        base: operator.base.clone(),
        token: Some(token.as_str().unwrap().to_owned()),
        http: reqwest::Client::new(),
    };
    let (status, read) = operator
        .post("/v1/tenants/acme/tokens", json!({"name": "embed"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{read}");
    assert_eq!(read["scope"], "read", "read-only unless asked");
    let (_, write) = operator
        .post(
            "/v1/tenants/acme/tokens",
            json!({"name": "backend", "scope": "write"}),
        )
        .await;
    assert_eq!(write["scope"], "write", "{write}");
    let (status, bad) = operator
        .post(
            "/v1/tenants/acme/tokens",
            json!({"name": "x", "scope": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    assert_eq!(bad["field"], "scope", "{bad}");
    let (reader, writer) = (as_token(&read["token"]), as_token(&write["token"]));

    let hook = json!({"key": "orders", "url": "https://example.com/hook"});
    let (status, refused) = reader.post("/v1/tenants/acme/webhooks", hook.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("read-only"),
        "{refused}"
    );
    for (method, path) in [
        (
            Method::DELETE,
            "/v1/tenants/acme/environments/Production/variables/X",
        ),
        (Method::PUT, "/v1/tenants/acme"),
    ] {
        let (status, body) = reader.call(method, path, Some(json!({}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }
    let (status, made) = writer.post("/v1/tenants/acme/webhooks", hook).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let (status, listed) = reader.get("/v1/tenants/acme/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"][0]["key"], "orders");

    let private = event(
        "acme",
        "file_uploaded",
        json!({"payload": {"data": {"ssn": "123-45-6789", "name": "a.csv"}},
            "private_fields": ["/data/ssn"]}),
    );
    stack.publish(&private).await;
    let path = format!("/v1/tenants/acme/events/{}", private.id);
    wait_until("the event is stored", WAIT, || async {
        operator.get(&path).await.0 == StatusCode::OK
    })
    .await;
    let (_, seen) = reader.get(&path).await;
    assert_eq!(
        seen["event"]["envelope"]["payload"],
        json!({"data": {"name": "a.csv"}})
    );
    assert!(!seen.to_string().contains("123-45-6789"), "{seen}");
    let (_, page) = reader.get("/v1/tenants/acme/events").await;
    assert!(!page.to_string().contains("123-45-6789"), "{page}");
    for whole in [writer.get(&path).await.1, operator.get(&path).await.1] {
        assert_eq!(
            whole["event"]["envelope"]["payload"]["data"]["ssn"],
            "123-45-6789"
        );
    }
    let (_, tokens) = operator.get("/v1/tenants/acme/tokens").await;
    let scopes: Vec<&str> = tokens["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["write", "read"], "by name: backend, embed");
}

#[tokio::test]
async fn every_error_is_json_and_names_what_was_wrong() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack, None).await;
    let cases = [
        (
            Method::GET,
            "/v1/tenants/acme/webhooks?limit=abc",
            StatusCode::BAD_REQUEST,
            Some("limit"),
        ),
        (
            Method::GET,
            "/v1/tenants/acme/events?limit=-1",
            StatusCode::BAD_REQUEST,
            Some("limit"),
        ),
        (
            Method::GET,
            "/v1/dead-letter?colour=red",
            StatusCode::BAD_REQUEST,
            Some("colour"),
        ),
        // The tenant of the path is checked on every tenant route, not only on lists.
        (
            Method::GET,
            "/v1/tenants/ac%20me/webhooks/orders",
            StatusCode::BAD_REQUEST,
            Some("tenant"),
        ),
        (
            Method::GET,
            "/v1/tenants/ac%20me/deliveries/x/attempts",
            StatusCode::BAD_REQUEST,
            Some("tenant"),
        ),
        (
            Method::GET,
            "/v1/tenants/acme/nothing-here",
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            Method::DELETE,
            "/v1/tenants/acme/events",
            StatusCode::METHOD_NOT_ALLOWED,
            None,
        ),
        (
            Method::POST,
            "/v1/tenants/acme/deliveries/0191f7a4-0000-7000-8000-000000000000/redeliver",
            StatusCode::NOT_FOUND,
            None,
        ),
    ];
    for (method, path, expected, field) in cases {
        let (status, body) = api.call(method.clone(), path, None).await;
        assert_eq!(status, expected, "{method} {path}: {body}");
        assert!(
            body["error"].is_string(),
            "{method} {path}: not a JSON error: {body}"
        );
        assert_eq!(body["field"].as_str(), field, "{method} {path}: {body}");
    }
}

#[tokio::test]
async fn the_openapi_document_refers_to_the_served_envelope_schema() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack, Some("sesame")).await;
    let (_, spec) = api.get("/openapi.json").await;
    let reference = spec["components"]["schemas"]["EventEnvelope"]["$ref"]
        .as_str()
        .expect("the envelope is a reference to its schema file");
    let (status, schema) = api.get(&format!("/{reference}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        schema,
        serde_json::from_str::<Value>(include_str!("../../docs/event-envelope.schema.json"))
            .unwrap()
    );
    assert_eq!(
        spec["info"]["version"],
        env!("CARGO_PKG_VERSION"),
        "openapi.json names this version"
    );
}

/// The committed documents are the ones the code generates (`cargo xtask docs`).
#[test]
fn the_committed_documents_are_what_the_code_generates() {
    use hookrelay_server::api::{document, render};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (file, generated) in [
        ("docs/openapi.json", render(&document())),
        (
            "docs/event-envelope.schema.json",
            render(&hookrelay_model::envelope::json_schema()),
        ),
    ] {
        let committed = std::fs::read_to_string(root.join(file)).unwrap_or_default();
        assert!(
            committed == generated,
            "{file} differs from what the code generates: run `cargo xtask docs`"
        );
    }
}

/// `#[schema(pattern = ...)]` takes a literal only, so the rules' patterns are copied
/// into attributes: every copy in the document must be the rule's own.
#[test]
fn the_documented_patterns_are_the_rules_patterns() {
    use hookrelay_model::{template, text, webhook};
    fn collect(value: &Value, found: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    if let Some(pattern) = v.get("pattern").and_then(Value::as_str) {
                        found.push((k.clone(), pattern.to_owned()));
                    }
                    collect(v, found);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect(v, found)),
            _ => {}
        }
    }
    let doc = serde_json::to_value(hookrelay_server::api::document()).unwrap();
    let mut found = Vec::new();
    collect(&doc, &mut found);
    let of = |name: &str| -> Vec<&str> {
        found
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, p)| p.as_str())
            .collect()
    };
    assert!(of("signing_secret").len() >= 3, "{found:?}");
    assert!(
        of("signing_secret")
            .iter()
            .all(|p| *p == webhook::SIGNING_SECRET_PATTERN)
    );
    assert!(of("url").len() >= 2, "{found:?}");
    assert!(
        of("url")
            .iter()
            .all(|p| *p == template::URL_TEMPLATE_PATTERN)
    );
    assert!(of("rate_limit").len() >= 2, "{found:?}");
    assert!(
        of("rate_limit")
            .iter()
            .all(|p| *p == hookrelay_model::rate::RATE_PATTERN)
    );
    assert!(
        of("key").iter().all(|p| *p == text::NO_CONTROL_PATTERN),
        "key: {found:?}"
    );
    // A name is free text, or an event type's (the catalog's), as the envelope says.
    let envelope = hookrelay_model::envelope::json_schema();
    let event_type = envelope["properties"]["type"]["pattern"].as_str();
    assert!(event_type.is_some());
    assert!(
        of("name")
            .iter()
            .all(|p| *p == text::NO_CONTROL_PATTERN || Some(*p) == event_type),
        "name: {found:?}"
    );
}

/// One operation of the served document: where, how, and the statuses it documents.
struct Operation {
    path: String,
    method: Method,
    statuses: Vec<u16>,
    /// The JSON body an example in the document gives it, if any.
    example: Option<Value>,
    takes_body: bool,
}

fn operations(spec: &Value) -> Vec<Operation> {
    let schemas = &spec["components"]["schemas"];
    let mut found = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            let statuses = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|s| s.parse().expect("a status code"))
                .collect();
            let json = &op["requestBody"]["content"]["application/json"];
            let example = json.get("example").cloned().or_else(|| {
                let name = json["schema"]["$ref"].as_str()?.rsplit('/').next()?;
                schemas[name].get("example").cloned()
            });
            found.push(Operation {
                path: path.clone(),
                method,
                statuses,
                example,
                takes_body: !json.is_null(),
            });
        }
    }
    assert!(found.len() >= 30, "found only {} operations", found.len());
    found
}

/// A path of the document with its parameters filled in.
fn fill(path: &str, tenant: &str, id: &str) -> String {
    path.replace("{tenant}", tenant)
        .replace("{id}", id)
        .replace("{name}", "Production")
        .replace("{variable}", "HOST")
}

const SOME_ID: &str = "0191f7a4-0000-7000-8000-000000000000";

async fn answer(
    http: &reqwest::Client,
    base: &str,
    method: &Method,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let mut req = http.request(method.clone(), format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The answer is one its operation documents, and an error is the JSON error.
fn documented(op: &Operation, path: &str, case: &str, (status, body): (u16, Value)) {
    assert!(
        op.statuses.contains(&status),
        "{} {path} ({case}) answered {status}, which openapi.json does not document for it \
         (documents {:?}): {body}",
        op.method,
        op.statuses
    );
    if status >= 400 {
        assert!(
            body["error"].is_string(),
            "{} {path} ({case}): {status} is not the JSON error: {body}",
            op.method
        );
    }
}

/// The document lists exactly what is served: every documented operation reaches a
/// handler (not the unknown-route answer), and on a documented path every method it
/// does not list answers the JSON 405.
#[tokio::test]
async fn openapi_json_documents_exactly_the_routes_served() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack, None).await;
    let (_, spec) = api.get("/openapi.json").await;
    for (path, item) in spec["paths"].as_object().unwrap() {
        let concrete = fill(path, "acme", SOME_ID);
        for method in [
            Method::GET,
            Method::PUT,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
        ] {
            let listed = item.get(method.as_str().to_lowercase()).is_some();
            let (status, body) = answer(&api.http, &api.base, &method, &concrete, None, None).await;
            let text = body.to_string();
            if listed {
                assert!(
                    !text.contains("see /openapi.json"),
                    "{method} {path} is documented but not served: {status} {text}"
                );
            } else {
                assert_eq!(
                    (status, text.contains("method not allowed")),
                    (405, true),
                    "{method} {path} is served but not documented: {status} {text}"
                );
            }
        }
    }
}

/// Every answer the server gives is documented for its operation: each operation of
/// the document is called with bad parameters and bodies, without a token, with a
/// tenant token of another tenant, with the database and the broker down, with a
/// database that errs, and with secrets sealed under another key.
#[tokio::test]
async fn every_answer_is_documented_for_its_operation() {
    let mut stack = TestStack::new().await;
    stack.cipher = hookrelay_store::Cipher::from_base64_key(KEY_A).unwrap();
    let mut sealed = webhook("acme", "sealed", &stack.receiver.url("/sealed"));
    sealed.secret = Some(hookrelay_model::webhook::Secret::new("s3cret"));
    stack.create_webhook(sealed).await;
    let open = Api::new(&stack, None).await;
    let (_, spec) = open.get("/openapi.json").await;
    let ops = operations(&spec);

    // Parameters and bodies the handlers refuse, or accept.
    let big = vec![b' '; 3 << 20];
    for op in &ops {
        let good = fill(&op.path, "acme", SOME_ID);
        let mut cases = vec![("as is", good.clone(), None)];
        if op.path.contains("{tenant}") {
            cases.push(("bad tenant", fill(&op.path, "ac%20me", SOME_ID), None));
        }
        if op.path.contains("{id}") {
            cases.push(("bad id", fill(&op.path, "acme", "not%20an%20id"), None));
            cases.push(("sealed secret", fill(&op.path, "acme", "sealed"), None));
        }
        if op.takes_body {
            for (case, body) in [
                ("empty object", b"{}".to_vec()),
                ("not JSON", b"{".to_vec()),
                ("not an object", b"\"text\"".to_vec()),
                ("too large", big.clone()),
            ] {
                cases.push((case, good.clone(), Some(body)));
            }
        }
        for (case, path, body) in cases {
            let got = answer(&open.http, &open.base, &op.method, &path, None, body).await;
            documented(op, &path, case, got);
        }
    }

    // The token's answers: none, and another tenant's.
    let guarded = stack.serve_api(Some("sesame"), 1 << 20).await;
    let (_, made) = answer(
        &open.http,
        &guarded,
        &Method::POST,
        "/v1/tenants/acme/tokens",
        Some("sesame"),
        Some(br#"{"name": "embed"}"#.to_vec()),
    )
    .await;
    let acme = made["token"].as_str().expect("a tenant token").to_owned();
    for op in ops.iter().filter(|op| op.path.starts_with("/v1")) {
        let path = fill(&op.path, "globex", SOME_ID);
        let got = answer(&open.http, &guarded, &op.method, &path, None, None).await;
        documented(op, &path, "no token", got);
        let got = answer(&open.http, &guarded, &op.method, &path, Some(&acme), None).await;
        documented(op, &path, "another tenant's token", got);
    }

    // The database and the broker down, and a tenant token that cannot be checked.
    let mut down = stack.api_state(Some("sesame"), 1 << 20);
    let nowhere = hookrelay_store::pool(
        "postgres://postgres@127.0.0.1:9/nowhere",
        2,
        hookrelay_store::Workload::Queries,
    )
    .unwrap();
    down.pool = nowhere.clone();
    if let Some(admin) = down.admin.as_mut() {
        admin.pool = nowhere;
        admin.amqp_url = "amqp://guest:guest@127.0.0.1:9/%2f".into();
    }
    let down = hookrelay_tests::stack::serve_app(down).await;
    let calls = ops
        .iter()
        .filter(|op| op.path.starts_with("/v1"))
        .map(|op| {
            let (down, http) = (&down, &open.http);
            async move {
                let path = fill(&op.path, "acme", SOME_ID);
                let body = op.example.as_ref().map(|e| e.to_string().into_bytes());
                let got = answer(http, down, &op.method, &path, Some("sesame"), body).await;
                documented(op, &path, "database and broker down", got);
                let got = answer(http, down, &op.method, &path, Some("hrt_unknown"), None).await;
                documented(op, &path, "token check without a database", got);
            }
        });
    futures_util::future::join_all(calls).await;

    // A database that answers but errs (no tables): what is the server's fault.
    let broken = hookrelay_tests::db::TestDb::new().await;
    broken
        .client()
        .await
        .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        .await
        .unwrap();
    let mut failing = stack.api_state(None, 1 << 20);
    failing.pool = broken.pool.clone();
    if let Some(admin) = failing.admin.as_mut() {
        admin.pool = broken.pool.clone();
    }
    let failing = hookrelay_tests::stack::serve_app(failing).await;
    for op in ops.iter().filter(|op| op.path.starts_with("/v1")) {
        let path = fill(&op.path, "acme", SOME_ID);
        let body = op.example.as_ref().map(|e| e.to_string().into_bytes());
        let got = answer(&open.http, &failing, &op.method, &path, None, body).await;
        documented(op, &path, "database errors", got);
    }
}

/// The document is no stricter than the server the other way round either: every
/// request body example it gives is accepted (not refused as a bad request).
#[tokio::test]
async fn every_documented_example_is_accepted() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    let api = Api::new(&stack, None).await;
    let (_, spec) = api.get("/openapi.json").await;
    let mut tried = 0;
    for op in operations(&spec) {
        let Some(example) = &op.example else {
            continue;
        };
        let path = fill(&op.path, "acme", SOME_ID);
        let body = Some(example.to_string().into_bytes());
        let (status, body) = answer(&api.http, &api.base, &op.method, &path, None, body).await;
        assert!(
            ![400, 413, 422].contains(&status),
            "{} {path} refused its own documented example {example}: {status} {body}",
            op.method
        );
        tried += 1;
    }
    assert!(tried >= 8, "only {tried} examples");
}

const KEY_A: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY_B: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// A secret the deployment's key cannot open is the server's fault: 500 with a safe
/// message (the details go to the log), never a client's 400.
#[tokio::test]
async fn a_secret_sealed_with_another_key_answers_500_with_a_safe_message() {
    let mut stack = TestStack::new().await;
    stack.cipher = hookrelay_store::Cipher::from_base64_key(KEY_A).unwrap();
    let mut sealed = webhook("acme", "sealed", &stack.receiver.url("/sealed"));
    sealed.secret = Some(hookrelay_model::webhook::Secret::new("s3cret"));
    stack.create_webhook(sealed).await;
    for cipher in [
        hookrelay_store::Cipher::from_base64_key(KEY_B).unwrap(),
        hookrelay_store::Cipher::none(),
    ] {
        stack.cipher = cipher;
        let api = Api::new(&stack, None).await;
        for path in [
            "/v1/tenants/acme/webhooks/sealed",
            "/v1/tenants/acme/webhooks",
        ] {
            let (status, body) = api.get(path).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {body}");
            assert_eq!(
                body,
                json!({"error": "internal error; the server log has the details"}),
                "{path}: no field, no detail of the key"
            );
        }
    }
}

/// A redelivery joins the event's trace: the receiver's new POST carries the same
/// trace id, which the delivery shows operators.
#[tokio::test]
async fn a_redelivery_continues_the_events_trace() {
    let mut stack = TestStack::new().await;
    stack.start_router().await;
    stack.start_sender().await;
    let api = Api::new(&stack, None).await;
    stack.receiver.respond(
        "/traced",
        Behaviour::Sequence(vec![Behaviour::Status(500), Behaviour::Status(200)]),
    );
    stack
        .create_webhook(webhook("acme", "traced", &stack.receiver.url("/traced")))
        .await;
    let e = event("acme", "x", json!({}));
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    stack
        .publish_traced(&e, &format!("00-{trace}-00f067aa0ba902b7-01"))
        .await;
    let d = stack.wait_settled("acme", &e.id, 1, WAIT).await;
    assert_eq!(d[0].status.as_str(), "failed");
    let (_, shown) = api
        .get(&format!("/v1/tenants/acme/deliveries/{}", d[0].id))
        .await;
    assert_eq!(shown["trace_id"], trace, "{shown}");
    let (status, body) = api
        .post(
            &format!("/v1/tenants/acme/deliveries/{}/redeliver", d[0].id),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let got = stack.receiver.wait_for("/traced", 2, WAIT).await;
    let again = got[1]
        .header("traceparent")
        .expect("the redelivery is traced");
    assert_eq!(again.split('-').nth(1), Some(trace), "{again}");
}

/// A NUL byte (Postgres text cannot hold one) anywhere a value is accepted is a 400
/// naming the field, never a 500 carrying the database's words.
#[tokio::test]
async fn a_nul_byte_anywhere_is_a_400_naming_the_field() {
    let stack = TestStack::new().await;
    let api = Api::new(&stack, None).await;
    let url = stack.receiver.url("/a");
    let mut refused = Vec::new();
    for list in ["event_types", "schema_ids", "import_identifiers"] {
        let mut body = json!({"key": format!("k-{list}"), "url": url});
        body[list] = json!(["fine", "a\u{0}b"]);
        let answer = api.post("/v1/tenants/acme/webhooks", body).await;
        refused.push((list.to_owned(), answer));
    }
    let answer = api
        .call(
            Method::PUT,
            "/v1/tenants/acme/environments/Production",
            Some(json!({"variables": {"HOST": "a\u{0}b"}})),
        )
        .await;
    refused.push(("variables.HOST".into(), answer));
    let answer = api
        .post("/v1/tenants/acme/tokens", json!({"name": "a\u{0}b"}))
        .await;
    refused.push(("name".into(), answer));
    // A Basic auth secret is opaque but still a header value (found by schemathesis:
    // it was stored as text and answered 500).
    let answer = api
        .post(
            "/v1/tenants/acme/webhooks",
            json!({"key": "with-secret", "url": url, "secret": "pass\u{0}word"}),
        )
        .await;
    refused.push(("secret".into(), answer));
    let answer = api.get("/v1/tenants/acme/events?session_id=a%00b").await;
    refused.push(("session_id".into(), answer));
    let answer = api.get("/v1/tenants/acme/events/a%00b").await;
    refused.push(("id".into(), answer));

    for (field, (status, body)) in refused {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {body}");
        let named = body["field"].as_str().unwrap_or_default();
        assert!(named.starts_with(&field), "{field}: {body}");
        let text = body.to_string().to_lowercase();
        assert!(
            !text.contains("postgres") && !text.contains("sqlstate") && !text.contains("0x00"),
            "{field}: the database's error leaked: {body}"
        );
    }
}

#[tokio::test]
async fn deliveries_list_newest_first_and_page_backwards() {
    let stack = TestStack::new().await;
    let hook = stack
        .create_webhook(webhook("bench", "history", "http://127.0.0.1:9/history"))
        .await;
    hookrelay_tests::capacity::fill_history(&stack, 5, hook.id).await;
    let base = stack.serve_api(None, 1 << 20).await;
    let http = reqwest::Client::new();
    let page = |cursor: Option<String>| {
        let http = http.clone();
        let mut url = format!("{base}/v1/tenants/bench/deliveries?order=newest&limit=2");
        if let Some(c) = cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let mut seen: Vec<String> = Vec::new();
    let mut cursor = None;
    loop {
        let p = page(cursor).await;
        seen.extend(
            p["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap().to_owned()),
        );
        cursor = p["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    let mut newest_first = seen.clone();
    newest_first.sort();
    newest_first.reverse();
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen, newest_first, "newest first, every delivery once");

    let bad = http
        .get(format!("{base}/v1/tenants/bench/deliveries?order=sideways"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), reqwest::StatusCode::BAD_REQUEST);
    assert_eq!(bad.json::<Value>().await.unwrap()["field"], "order");
}
