//! The event catalog (`/v1/event-types`), schema validation of payloads
//! (`HOOKRELAY_SCHEMA_VALIDATION`) and the delivery-health series behind the charts.

use std::time::Duration;

use hookrelay_model::catalog::SchemaValidation;
use hookrelay_model::wire;
use hookrelay_store::deliveries::DeliveryStatus;
use hookrelay_tests::stack::{event, serve_app, webhook};
use hookrelay_tests::{Behaviour, Browser, TestStack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::admin::Api;
use crate::console::sign_in;

const OPERATOR: &str = "operator-token";
const WAIT: Duration = Duration::from_secs(20);

/// The schema the tests' `import_completed` type has: a payload with `data.rows`, a
/// whole number of at least 0.
fn import_schema() -> Value {
    json!({
        "type": "object",
        "required": ["data"],
        "properties": {"data": {
            "type": "object",
            "required": ["rows"],
            "properties": {"rows": {"type": "integer", "minimum": 0}}
        }}
    })
}

pub(crate) async fn create_import_type(api: &Api) {
    let (status, body) = api
        .post(
            "/v1/event-types",
            json!({
                "name": "import_completed",
                "description": "An import finished.",
                "schema": import_schema(),
                "example": {"data": {"rows": 433}}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn the_catalog_is_managed_by_the_operator_with_clear_errors_and_read_by_tenants() {
    let stack = TestStack::new().await;
    let operator = Api::new(&stack, Some(OPERATOR)).await;
    create_import_type(&operator).await;

    let (status, got) = operator.get("/v1/event-types/import_completed").await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["schema"], import_schema());
    assert_eq!(got["example"], json!({"data": {"rows": 433}}));
    assert_eq!(got["deprecated"], false);

    // Each broken write is a 400 naming its field, and changes nothing.
    let refused = [
        (json!({"name": "has space"}), "name"),
        (json!({"name": "t", "schema": {"type": "objekt"}}), "schema"),
        (
            json!({"name": "t", "schema": {"minimum": "three"}}),
            "schema",
        ),
        (
            json!({"name": "t", "schema": import_schema(), "example": {"data": {"rows": -1}}}),
            "example",
        ),
        (json!({"name": "t", "example": [1, 2]}), "example"),
        (json!({"name": "t", "colour": "red"}), "colour"),
    ];
    for (body, field) in refused {
        let (status, answer) = operator.post("/v1/event-types", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {answer}");
        assert_eq!(answer["field"], field, "{body} -> {answer}");
    }
    let (status, _) = operator
        .post("/v1/event-types", json!({"name": "import_completed"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A change is checked whole: a new schema must accept the example kept.
    let path = "/v1/event-types/import_completed";
    let stricter = json!({"schema": {"type": "object", "required": ["other"]}});
    let (status, answer) = operator.call(Method::PATCH, path, Some(stricter)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["field"], "example");
    let change = json!({"deprecated": true, "description": "Use import_finished."});
    let (status, changed) = operator.call(Method::PATCH, path, Some(change)).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["deprecated"], true);
    assert_eq!(
        changed["schema"],
        import_schema(),
        "what was not named stays"
    );

    // A tenant token reads the catalog, whatever its scope, and changes nothing.
    let (_, token) = operator
        .post(
            "/v1/tenants/acme/tokens",
            json!({"name": "backend", "scope": "write"}),
        )
        .await;
    let tenant = operator.with_token(token["token"].as_str().unwrap());
    let (status, listed) = tenant.get("/v1/event-types").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["data"][0]["name"], "import_completed");
    let (status, _) = tenant.get(path).await;
    assert_eq!(status, StatusCode::OK);
    for (method, body) in [
        (Method::POST, Some(json!({"name": "mine"}))),
        (Method::PATCH, Some(json!({"deprecated": false}))),
        (Method::DELETE, None),
    ] {
        let target = if method == Method::POST {
            "/v1/event-types"
        } else {
            path
        };
        let (status, answer) = tenant.call(method.clone(), target, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {target}: {answer}");
    }

    let (status, _) = operator.call(Method::DELETE, path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, answer) = operator.get(path).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
}

/// The demo's catalog (docs/catalog) compiles, and every seed example's payload in
/// docs/examples satisfies its type's schema.
#[test]
fn the_seed_examples_satisfy_the_documented_schemas() {
    use hookrelay_model::catalog::EventTypeFields;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |path: std::path::PathBuf| -> Value {
        serde_json::from_slice(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let mut checked = 0;
    for file in std::fs::read_dir(root.join("docs/examples")).unwrap() {
        let event = read(file.unwrap().path());
        let name = event["type"].as_str().unwrap().to_owned();
        let entry = read(root.join("docs/catalog").join(format!("{name}.json")));
        let fields = EventTypeFields {
            name: name.clone(),
            description: entry["description"].as_str().unwrap().to_owned(),
            schema: Some(entry["schema"].clone()),
            example: Some(event["payload"].clone()),
            deprecated: false,
        };
        fields.check().unwrap_or_else(|e| panic!("{name}: {e}"));
        checked += 1;
    }
    assert!(checked >= 6);
}

/// A stack whose router checks payloads in `mode`, with the `import_completed` type
/// in the catalog and a webhook for every event at `/hooks`; and an API served with
/// the same mode.
async fn validating_stack(mode: SchemaValidation) -> (TestStack, Api) {
    let mut stack = TestStack::new().await;
    let mut state = stack.api_state(Some(OPERATOR), 1 << 20);
    state.schema_validation = mode;
    // The api and the router count in one registry, as in one `serve` process.
    state.metrics = std::sync::Arc::clone(&stack.metrics);
    let api = Api::at(serve_app(state).await, Some(OPERATOR));
    create_import_type(&api).await;
    stack
        .create_webhook(webhook("acme", "all", &stack.receiver.url("/hooks")))
        .await;
    let mut config = stack.router_config();
    config.schema_validation = mode;
    stack.start_router_with(config).await;
    stack.start_sender().await;
    (stack, api)
}

fn import_event(rows: Value) -> hookrelay_model::Event {
    let mut e = event("acme", "import_completed", json!({}));
    e.payload = json!({"event": "import_completed", "data": {"rows": rows}});
    e
}

#[tokio::test]
async fn enforced_a_bad_payload_is_a_400_at_ingest_and_a_dead_letter_naming_the_path() {
    let (stack, api) = validating_stack(SchemaValidation::Enforce).await;

    // Over HTTP: refused whole, naming the path and the rule; nothing published.
    let bad = serde_json::to_value(import_event(json!(-1))).unwrap();
    let (status, answer) = api.post("/v1/events", bad.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["field"], "payload/data/rows", "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("minimum"), "{error}");
    assert!(
        !error.contains("-1"),
        "no payload value in the answer: {error}"
    );
    let good = serde_json::to_value(import_event(json!(3))).unwrap();
    let (status, answer) = api.post("/v1/events", json!([good, bad])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["field"], "[1].payload/data/rows", "{answer}");
    assert_eq!(
        stack
            .metrics
            .schema_violations("import_completed", "enforce"),
        2
    );

    // A type outside the catalog passes; a good payload is accepted.
    let other = serde_json::to_value(event("acme", "not_in_catalog", json!({}))).unwrap();
    let (status, answer) = api.post("/v1/events", json!([good, other])).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    stack.receiver.wait_for("/hooks", 2, WAIT).await;

    // Over AMQP: the router dead-letters it with the path and the rule.
    let bad = import_event(json!("many"));
    stack.publish(&bad).await;
    let letters = stack.dead_letters(1, WAIT).await;
    assert_eq!(
        letters[0].header(wire::HEADER_REASON).as_deref(),
        Some("schema violation")
    );
    let error = letters[0].header(wire::HEADER_ERROR).unwrap_or_default();
    assert!(error.contains("payload/data/rows"), "{error}");
    assert!(error.contains("`type`"), "{error}");
    assert_eq!(
        letters[0].json()["id"],
        bad.id.as_str(),
        "the event kept whole"
    );
    assert_eq!(
        stack
            .metrics
            .schema_violations("import_completed", "enforce"),
        3
    );
    assert!(stack.deliveries_of("acme", &bad.id).await.is_empty());
    assert_eq!(stack.receiver.received_on("/hooks").len(), 2);
}

/// Posts an event whose payload breaks the schema and waits until it is delivered.
async fn bad_payload_is_delivered(stack: &TestStack, api: &Api) {
    let bad = import_event(json!(-5));
    let (status, answer) = api
        .post("/v1/events", serde_json::to_value(&bad).unwrap())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let delivered = stack.wait_settled("acme", &bad.id, 1, WAIT).await;
    assert_eq!(delivered[0].status, DeliveryStatus::Delivered);
}

#[tokio::test]
async fn warned_a_bad_payload_is_delivered_and_counted() {
    let (stack, api) = validating_stack(SchemaValidation::Warn).await;
    bad_payload_is_delivered(&stack, &api).await;
    stack.publish(&import_event(json!(1))).await;
    stack.receiver.wait_for("/hooks", 2, WAIT).await;
    assert_eq!(
        stack.metrics.schema_violations("import_completed", "warn"),
        1
    );
    assert_eq!(
        stack.queue_len(&stack.topology.dead_letter_queue()).await,
        0
    );
}

#[tokio::test]
async fn off_nothing_is_checked() {
    let (stack, api) = validating_stack(SchemaValidation::Off).await;
    bad_payload_is_delivered(&stack, &api).await;
    for mode in ["warn", "enforce"] {
        assert_eq!(stack.metrics.schema_violations("import_completed", mode), 0);
    }
}

/// Attempts by outcome summed over every interval of a chart's table (the rows of
/// `table.visually-hidden`: interval, delivered, retried, failed, p50, p99).
pub(crate) fn table_totals(html: &str) -> [u64; 3] {
    let mut totals = [0; 3];
    for row in html.split("<tr>").skip(2) {
        let cells: Vec<u64> = row
            .split("<td>")
            .skip(1)
            .take(3)
            .map(|c| c.split('<').next().unwrap_or("").parse().unwrap_or(0))
            .collect();
        for (total, n) in totals.iter_mut().zip(cells) {
            *total += n;
        }
    }
    totals
}

#[tokio::test]
async fn after_deliveries_and_failures_the_charts_count_them_for_the_tenant_and_the_webhook() {
    let mut stack = TestStack::new().await;
    let mut ok = webhook("acme", "ok", &stack.receiver.url("/ok"));
    ok.event_types = vec!["a".into()];
    let mut bad = webhook("acme", "bad", &stack.receiver.url("/bad"));
    bad.event_types = vec!["b".into()];
    stack.create_webhook(ok).await;
    stack.create_webhook(bad).await;
    // 429 is retried: two retries, then the third attempt fails for good.
    stack.receiver.respond("/bad", Behaviour::Status(429));
    stack.start_router().await;
    stack.start_sender().await;
    let events: Vec<_> = ["a", "a", "a", "b", "b"]
        .into_iter()
        .map(|t| event("acme", t, json!({})))
        .collect();
    for e in &events {
        stack.publish(e).await;
    }
    for e in &events {
        stack.wait_settled("acme", &e.id, 1, WAIT).await;
    }

    // The API: one point per interval, summing to what happened.
    let api = Api::new(&stack, Some(OPERATOR)).await;
    let sum = |series: &Value| -> [u64; 3] {
        let mut t = [0; 3];
        for p in series["points"].as_array().unwrap() {
            for (i, k) in ["delivered", "retried", "failed"].iter().enumerate() {
                t[i] += p[k].as_u64().unwrap();
            }
        }
        t
    };
    let (status, tenant) = api.get("/v1/tenants/acme/stats/series").await;
    assert_eq!(status, StatusCode::OK, "{tenant}");
    assert_eq!(tenant["points"].as_array().unwrap().len(), 24);
    assert_eq!(sum(&tenant), [3, 4, 2]);
    let (_, one) = api
        .get("/v1/tenants/acme/stats/series?webhook=bad&hours=6")
        .await;
    assert_eq!(sum(&one), [0, 4, 2]);
    assert_eq!(one["interval_seconds"], 900);
    let last = one["points"].as_array().unwrap().iter().rev();
    assert!(
        last.filter_map(|p| p["p99_ms"].as_f64()).next().is_some(),
        "latency where there were attempts: {one}"
    );
    let (status, answer) = api.get("/v1/tenants/acme/stats/series?hours=0").await;
    assert_eq!(
        (status, &answer["field"]),
        (StatusCode::BAD_REQUEST, &json!("hours"))
    );
    let (status, _) = api.get("/v1/tenants/acme/stats/series?webhook=nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, other) = api.get("/v1/tenants/globex/stats/series").await;
    assert_eq!(sum(&other), [0, 0, 0], "another tenant's are not counted");

    // The console: the overview's and the webhook page's charts, and their tables.
    let base = stack.serve_api(Some(OPERATOR), 1 << 20).await;
    let browser = Browser::start().await;
    sign_in(&browser, &base, OPERATOR).await;
    browser.goto(&format!("{base}/console?tenant=acme")).await;
    let table = browser.wait_for(".charts table").await;
    assert_eq!(table_totals(&table.html(true).await.unwrap()), [3, 4, 2]);
    let caption = browser.text_of(".charts figcaption").await;
    assert!(
        caption.contains("3 delivered, 4 retried, 2 failed"),
        "{caption}"
    );
    browser.screenshot("overview-charts").await;
    browser.set_size(390, 844).await;
    let overflow = browser
        .client()
        .execute(
            "const page = document.documentElement; \
             const wide = [...document.querySelectorAll('body *')] \
               .filter(e => !e.closest('.scroll') && e.getBoundingClientRect().right > page.clientWidth + 1) \
               .map(e => e.tagName + '.' + e.className + ':' + e.textContent.slice(0, 30)); \
             return [page.scrollWidth, page.clientWidth, wide.slice(0, 8)]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        overflow[0], overflow[1],
        "the page fits a phone's width: {overflow}"
    );
    browser.screenshot("overview-charts-phone").await;
    browser.set_size(1280, 900).await;

    browser
        .goto(&format!("{base}/console/tenants/acme/webhooks/bad"))
        .await;
    browser.wait_heading("Webhook bad").await;
    let table = browser.wait_for(".charts table").await;
    assert_eq!(table_totals(&table.html(true).await.unwrap()), [0, 4, 2]);
    browser.screenshot("webhook-charts").await;

    // The catalog, read-only, with each type's schema and example.
    create_import_type(&api).await;
    browser.goto(&format!("{base}/console/event-types")).await;
    browser.wait_heading("Event types").await;
    let entry = browser.text_of("section.event-type").await;
    assert!(entry.contains("import_completed"), "{entry}");
    assert!(entry.contains("An import finished."), "{entry}");
    browser.click("section.event-type details summary").await;
    let schema = browser.text_of("section.event-type details pre").await;
    assert!(schema.contains("\"minimum\": 0"), "{schema}");
    browser.screenshot("event-types").await;
}
