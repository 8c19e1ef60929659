//! The event catalog (`/v1/event-types`), schema validation of payloads
//! (`HOOKRELAY_SCHEMA_VALIDATION`) and the delivery-health series behind the charts.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use hookrelay_tests::TestStack;

use crate::admin::Api;

const OPERATOR: &str = "operator-token";

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
