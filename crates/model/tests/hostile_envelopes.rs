//! Hostile input to the envelope parser: whatever the bytes, parsing returns an
//! event or an error that names what is wrong; it never panics.

use hookrelay_model::envelope::{Event, parse_one_or_many};
use proptest::prelude::*;
use serde_json::{Value, json};

const LIMIT: usize = 64 * 1024;

/// Any JSON value, nested up to a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid envelope with one field replaced by anything.
fn mangled_envelope() -> impl Strategy<Value = Value> {
    let fields = prop::sample::select(vec![
        "id",
        "tenant",
        "type",
        "occurred_at",
        "payload",
        "development_mode",
        "environment",
        "import_identifier",
        "schema_id",
        "session_id",
        "trigger_type",
        "webhook_keys",
        "webhook_url",
        "upload_id",
        "private_fields",
        "unknown",
    ]);
    (fields, any_json()).prop_map(|(field, value)| {
        let mut e = json!({
            "id": "evt-1", "tenant": "acme", "type": "file_uploaded",
            "occurred_at": "2024-01-24T16:13:25Z", "payload": {"a": 1}
        });
        e[field] = value;
        e
    })
}

fn check(body: &[u8]) {
    match parse_one_or_many(body, LIMIT) {
        Ok(events) => {
            for e in events {
                // What parses must also validate and survive a round trip.
                e.validate().expect("a parsed event is valid");
                let again = Event::from_slice(&e.to_json(), LIMIT).expect("round trip");
                assert_eq!(again.id, e.id);
            }
        }
        Err(err) => assert!(!err.to_string().is_empty()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&body);
    }

    #[test]
    fn random_json_never_panics(value in any_json()) {
        check(&serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn one_wrong_field_is_named(envelope in mangled_envelope()) {
        let body = serde_json::to_vec(&envelope).unwrap();
        if let Err(err) = Event::from_slice(&body, LIMIT) {
            prop_assert!(err.field_name().is_some(), "no field named in: {err}");
        }
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [100, 1_000, 100_000] {
        let body = format!(
            r#"{{"id":"e","tenant":"t","type":"x","occurred_at":"2024-01-24T16:13:25Z","payload":{}1{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        check(body.as_bytes());
    }
}

#[test]
fn huge_strings_and_bodies_are_refused_by_size() {
    let huge = "x".repeat(LIMIT * 2);
    let body = json!({"id": huge, "tenant": "t", "type": "x", "occurred_at": "2024-01-24T16:13:25Z", "payload": {}});
    let err = parse_one_or_many(&serde_json::to_vec(&body).unwrap(), LIMIT).unwrap_err();
    assert!(err.to_string().contains("over the limit"), "{err}");
    let long_id = json!({"id": "x".repeat(300), "tenant": "t", "type": "x", "occurred_at": "2024-01-24T16:13:25Z", "payload": {}});
    let err = Event::from_slice(&serde_json::to_vec(&long_id).unwrap(), LIMIT).unwrap_err();
    assert_eq!(err.field_name(), Some("id"));
}

#[test]
fn invalid_utf8_is_an_error() {
    let mut body = br#"{"id":"e","tenant":"t","type":"x","occurred_at":"2024-01-24T16:13:25Z","payload":{"s":""#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe, 0x80]);
    body.extend_from_slice(br#""}}"#);
    assert!(parse_one_or_many(&body, LIMIT).is_err());
}
