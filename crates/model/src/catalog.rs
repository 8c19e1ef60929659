//! The event catalog's rules: what an event type's entry may hold, and (with the
//! `schema` feature) the check of an event's payload against its type's JSON Schema.
//!
//! A type's schema and example describe the event's `payload`: the JSON object JSON
//! webhooks receive as their body (minus `private_fields`), not the envelope around it.
//! The envelope itself has its own fixed schema (`envelope::json_schema`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Invalid, text};

/// Longest description of an event type, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4_000;

/// What the router and the ingest API do with an event whose payload breaks its
/// type's schema (`HOOKRELAY_SCHEMA_VALIDATION`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaValidation {
    /// Nothing is checked.
    #[default]
    Off,
    /// Delivered as usual; logged (without payload values) and counted.
    Warn,
    /// Refused at the ingest API (400), dead-lettered by the router.
    Enforce,
}

impl SchemaValidation {
    pub const ALL: [Self; 3] = [Self::Off, Self::Warn, Self::Enforce];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Warn => "warn",
            Self::Enforce => "enforce",
        }
    }
}

impl fmt::Display for SchemaValidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SchemaValidation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s.trim())
            .ok_or_else(|| format!("`{s}` is not a schema validation mode: off, warn or enforce"))
    }
}

/// An event type as written (created whole, or what an update leaves). `schema` and
/// `example` describe the payload. Unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = NewEventType, example = json!({
    "name": "import_completed",
    "description": "An import finished and its rows are ready.",
    "schema": {"type": "object", "required": ["data"]},
    "example": {"event": "import_completed", "data": {"id": "025f399f"}}
})))]
#[serde(deny_unknown_fields)]
pub struct EventTypeFields {
    /// The event type as in envelopes (`type`): ASCII letters, digits, `_`, `-`, `.`
    /// and `:`; 1 to 120 bytes.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.:-]{1,120}$"))]
    pub name: String,
    /// What the event means, for the people who subscribe to it (up to 4,000
    /// characters).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 4000))]
    pub description: String,
    /// A JSON Schema (draft 2020-12, an object) the payload must satisfy; absent or
    /// null: not checked. It must compile; no `$ref` is fetched.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub schema: Option<serde_json::Value>,
    /// An example payload (an object); it must satisfy `schema`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub example: Option<serde_json::Value>,
    #[serde(default)]
    pub deprecated: bool,
}

/// A change to an event type: absent fields stay; `schema` or `example` null removes
/// it. Unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"deprecated": true})))]
#[serde(deny_unknown_fields)]
pub struct EventTypeUpdate {
    /// A new name (renames the type; webhooks keep the names they subscribe to).
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.:-]{1,120}$"))]
    pub name: Option<String>,
    #[cfg_attr(feature = "openapi", schema(max_length = 4000))]
    pub description: Option<String>,
    #[serde(default, with = "crate::webhook::double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub schema: Option<Option<serde_json::Value>>,
    #[serde(default, with = "crate::webhook::double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub example: Option<Option<serde_json::Value>>,
    pub deprecated: Option<bool>,
}

impl EventTypeUpdate {
    /// `current` with this change made.
    pub fn apply(self, current: EventTypeFields) -> EventTypeFields {
        EventTypeFields {
            name: self.name.unwrap_or(current.name),
            description: self.description.unwrap_or(current.description),
            schema: self.schema.unwrap_or(current.schema),
            example: self.example.unwrap_or(current.example),
            deprecated: self.deprecated.unwrap_or(current.deprecated),
        }
    }
}

/// An event type's name: the envelope's `type` rule.
pub fn check_name(name: &str) -> Result<(), Invalid> {
    crate::envelope::check_event_type("name", name)
}

pub fn check_description(description: &str) -> Result<(), Invalid> {
    text::check_chars("description", description, MAX_DESCRIPTION_CHARS)
}

/// Why a payload breaks its type's schema: where (a JSON pointer into the payload)
/// and which rule. Its text holds no value of the payload (payloads carry personal
/// data; the text goes into logs, dead-letter headers and 400s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payload{path}: {message} (schema rule `{rule}`)")]
pub struct Violation {
    /// The failing value's JSON pointer within the payload (RFC 6901; empty for the
    /// payload itself).
    pub path: String,
    /// The schema keyword that failed (`required`, `type`, `minimum`...).
    pub rule: String,
    /// What the rule says, with the value masked.
    pub message: String,
}

impl Violation {
    /// The field a 400 names: `payload` and the pointer (`payload/data/id`).
    pub fn field(&self) -> String {
        format!("payload{}", self.path)
    }
}

#[cfg(feature = "schema")]
pub use compiled::{CompiledSchema, check, check_example, compile};

#[cfg(feature = "schema")]
impl EventTypeFields {
    /// Every rule of an entry: its name, its description, a schema that compiles, an
    /// example (an object) that satisfies it. The error names the field.
    pub fn check(&self) -> Result<(), Invalid> {
        check_name(&self.name)?;
        check_description(&self.description)?;
        let schema = self
            .schema
            .as_ref()
            .map(|s| compile("schema", s))
            .transpose()?;
        if let Some(example) = &self.example {
            check_example(schema.as_ref(), example)?;
        }
        Ok(())
    }
}

#[cfg(feature = "schema")]
mod compiled {
    use serde_json::Value;

    use super::Violation;
    use crate::Invalid;

    /// A type's schema, compiled once (it is the costly part) and shared.
    pub type CompiledSchema = jsonschema::Validator;

    /// Compiles a JSON Schema (draft 2020-12, whatever `$schema` says otherwise is
    /// refused by the meta-schema check). No `$ref` is fetched: the crate is built
    /// without HTTP or file resolving, so a remote reference is an error here.
    pub fn compile(field: &str, schema: &Value) -> Result<CompiledSchema, Invalid> {
        // `true` and `false` are schemas too, but one that accepts everything is no
        // schema (leave it out) and one that refuses everything no event type.
        if !schema.is_object() {
            return Err(Invalid::new(field, "must be a JSON Schema object"));
        }
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(schema)
            .map_err(|e| {
                let at = e.instance_path().to_string();
                let at = if at.is_empty() {
                    String::new()
                } else {
                    format!(" at `{at}`")
                };
                Invalid::new(
                    field,
                    format!("is not a valid JSON Schema (2020-12){at}: {e}"),
                )
            })
    }

    /// The first way `payload` breaks `schema`, if any.
    pub fn check(schema: &CompiledSchema, payload: &Value) -> Result<(), Violation> {
        match schema.iter_errors(payload).next() {
            None => Ok(()),
            Some(e) => Err(Violation {
                path: e.instance_path().to_string(),
                rule: e.kind().keyword().to_owned(),
                message: e.masked().to_string(),
            }),
        }
    }

    /// An example must be an object (a payload is) and satisfy the type's schema.
    pub fn check_example(schema: Option<&CompiledSchema>, example: &Value) -> Result<(), Invalid> {
        if !example.is_object() {
            return Err(Invalid::new(
                "example",
                "must be a JSON object: the payload an event of this type carries",
            ));
        }
        match schema.map(|s| check(s, example)) {
            Some(Err(v)) => Err(Invalid::new(
                "example",
                format!("does not satisfy the schema: {v}"),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(all(test, feature = "schema"))]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> CompiledSchema {
        compile(
            "schema",
            &json!({
                "type": "object",
                "required": ["data"],
                "properties": {"data": {"type": "object", "properties": {
                    "rows": {"type": "integer", "minimum": 0},
                    "email": {"type": "string"}
                }}}
            }),
        )
        .unwrap()
    }

    #[test]
    fn a_payload_is_checked_naming_the_path_and_rule_without_its_values() {
        let s = schema();
        let cases = [
            (json!({"data": {"rows": 3}}), None),
            (json!({}), Some(("", "required"))),
            (
                json!({"data": {"rows": -1}}),
                Some(("/data/rows", "minimum")),
            ),
            (
                json!({"data": {"email": 12345678}}),
                Some(("/data/email", "type")),
            ),
        ];
        for (payload, expected) in cases {
            let got = check(&s, &payload).err();
            assert_eq!(
                got.as_ref().map(|v| (v.path.as_str(), v.rule.as_str())),
                expected,
                "{payload}"
            );
            if let Some(v) = got {
                assert!(!v.to_string().contains("12345678"), "{v}");
                assert!(!v.to_string().contains("-1"), "{v}");
            }
        }
    }

    #[test]
    fn a_schema_that_is_not_one_is_refused_naming_the_field() {
        for bad in [
            json!({"type": "objekt"}),
            json!({"minimum": "three"}),
            json!("a string"),
            json!(false),
            json!({"$ref": "https://example.com/schema.json"}),
        ] {
            let Err(e) = compile("schema", &bad) else {
                panic!("{bad} compiled");
            };
            assert_eq!(e.field, "schema", "{bad}");
        }
    }

    #[test]
    fn an_example_must_be_an_object_satisfying_the_schema() {
        let s = schema();
        assert!(check_example(Some(&s), &json!({"data": {"rows": 1}})).is_ok());
        assert!(check_example(None, &json!({"anything": 1})).is_ok());
        for bad in [json!([1]), json!({"data": {"rows": "x"}})] {
            assert_eq!(check_example(Some(&s), &bad).unwrap_err().field, "example");
        }
    }

    #[test]
    fn an_entry_is_checked_field_by_field() {
        let good = EventTypeFields {
            name: "import_completed".into(),
            description: "done".into(),
            schema: Some(json!({"type": "object", "required": ["data"]})),
            example: Some(json!({"data": {}})),
            deprecated: false,
        };
        assert!(good.check().is_ok());
        type Change = fn(&mut EventTypeFields);
        let cases: [(Change, &str); 4] = [
            (|f| f.name = "has space".into(), "name"),
            (|f| f.description = "\u{7}".into(), "description"),
            (|f| f.schema = Some(json!({"type": 5})), "schema"),
            (|f| f.example = Some(json!({"other": 1})), "example"),
        ];
        for (change, field) in cases {
            let mut f = good.clone();
            change(&mut f);
            assert_eq!(f.check().unwrap_err().field, field);
        }
    }

    #[test]
    fn an_update_keeps_absent_fields_and_clears_null_ones() {
        let current = EventTypeFields {
            name: "a".into(),
            description: "d".into(),
            schema: Some(json!({})),
            example: Some(json!({})),
            deprecated: false,
        };
        let change: EventTypeUpdate =
            serde_json::from_value(json!({"schema": null, "deprecated": true})).unwrap();
        let after = change.apply(current.clone());
        assert_eq!(after.schema, None);
        assert_eq!(after.example, current.example);
        assert_eq!(after.description, "d");
        assert!(after.deprecated);
    }

    #[test]
    fn modes_parse_from_their_names_only() {
        for mode in SchemaValidation::ALL {
            assert_eq!(mode.as_str().parse::<SchemaValidation>(), Ok(mode));
        }
        assert!("strict".parse::<SchemaValidation>().is_err());
        assert_eq!(SchemaValidation::default(), SchemaValidation::Off);
    }

    #[test]
    fn a_violation_names_the_payload_field() {
        let v = Violation {
            path: "/data/id".into(),
            rule: "required".into(),
            message: "m".into(),
        };
        assert_eq!(v.field(), "payload/data/id");
    }
}
