//! Payload filters: conditions on an event's payload that a webhook's events must
//! meet, beside its event types and triggers. Written as JSON, checked when the
//! webhook is saved (an error names the wrong part, `filter.all[1].gt`), applied by
//! the router to the payload as published.
//!
//! ```json
//! {"all": [
//!   {"path": "data.status", "eq": "completed"},
//!   {"path": "data.rows", "gte": 100},
//!   {"not": {"path": "data.test", "exists": true}},
//!   {"any": [{"path": "data.region", "in": ["eu", "uk"]}, {"path": "data.vip", "eq": true}]}
//! ]}
//! ```

use serde_json::{Map, Value};

use crate::Invalid;

/// How many conditions (tests and combinators) one filter may hold: matching runs for
/// every event, so a filter's cost is bounded, and so is its depth.
pub const MAX_CONDITIONS: usize = 64;
/// The most segments a path may have.
pub const MAX_PATH_SEGMENTS: usize = 16;

/// A checked filter. Build it with [`PayloadFilter::parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct PayloadFilter {
    root: Node,
    /// The JSON it was parsed from, as stored and shown.
    source: Value,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Test { path: Vec<String>, test: Test },
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    Eq(Value),
    In(Vec<Value>),
    Exists(bool),
    Compare(Comparison, f64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Comparison {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl PayloadFilter {
    /// Checks `value` as a filter; the error names the wrong part, from `field`.
    pub fn parse(field: &str, value: &Value) -> Result<Self, Invalid> {
        let mut count = 0;
        let root = node(field, value, &mut count)?;
        Ok(Self {
            root,
            source: value.clone(),
        })
    }

    /// The filter as written.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// Whether `payload` meets the filter.
    pub fn matches(&self, payload: &Value) -> bool {
        eval(&self.root, payload)
    }
}

fn node(field: &str, value: &Value, count: &mut usize) -> Result<Node, Invalid> {
    // Counted before going deeper: the count bounds the recursion too.
    *count += 1;
    if *count > MAX_CONDITIONS {
        return Err(Invalid::new(
            field,
            format!("holds more than {MAX_CONDITIONS} conditions"),
        ));
    }
    let Some(map) = value.as_object() else {
        return Err(Invalid::new(
            field,
            "must be an object: {\"path\": ..., \"eq\": ...}, {\"all\": [...]}, {\"any\": [...]} or {\"not\": ...}",
        ));
    };
    for combinator in ["all", "any", "not"] {
        if let Some(inner) = map.get(combinator) {
            only(field, map, &[combinator])?;
            let here = format!("{field}.{combinator}");
            return match (combinator, inner) {
                ("not", inner) => Ok(Node::Not(Box::new(node(&here, inner, count)?))),
                (_, Value::Array(items)) if !items.is_empty() => {
                    let nodes = items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| node(&format!("{here}[{i}]"), item, count))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok(if combinator == "all" {
                        Node::All(nodes)
                    } else {
                        Node::Any(nodes)
                    })
                }
                _ => Err(Invalid::new(here, "must be a non-empty array of filters")),
            };
        }
    }
    let path = path(field, map.get("path"))?;
    let tests: Vec<&str> = ["eq", "in", "exists", "gt", "gte", "lt", "lte"]
        .into_iter()
        .filter(|t| map.contains_key(*t))
        .collect();
    let [name] = tests.as_slice() else {
        return Err(Invalid::new(
            field,
            "needs exactly one of `eq`, `in`, `exists`, `gt`, `gte`, `lt`, `lte` beside `path`",
        ));
    };
    only(field, map, &["path", name])?;
    let given = &map[*name];
    let here = format!("{field}.{name}");
    let test = match *name {
        "eq" => Test::Eq(given.clone()),
        "in" => match given {
            Value::Array(items) if !items.is_empty() => Test::In(items.clone()),
            _ => return Err(Invalid::new(here, "must be a non-empty array of values")),
        },
        "exists" => match given {
            Value::Bool(b) => Test::Exists(*b),
            _ => return Err(Invalid::new(here, "must be true or false")),
        },
        other => {
            let Some(n) = given.as_f64() else {
                return Err(Invalid::new(here, "must be a number"));
            };
            let comparison = match other {
                "gt" => Comparison::Gt,
                "gte" => Comparison::Gte,
                "lt" => Comparison::Lt,
                _ => Comparison::Lte,
            };
            Test::Compare(comparison, n)
        }
    };
    Ok(Node::Test { path, test })
}

/// Refuses keys other than `allowed`, naming the first.
fn only(field: &str, map: &Map<String, Value>, allowed: &[&str]) -> Result<(), Invalid> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(extra) => Err(Invalid::new(
            field,
            format!(
                "`{extra}` is not expected here (beside {})",
                allowed.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

fn path(field: &str, given: Option<&Value>) -> Result<Vec<String>, Invalid> {
    let here = format!("{field}.path");
    let Some(Value::String(text)) = given else {
        return Err(Invalid::new(
            here,
            "must be a path into the payload like `data.status`",
        ));
    };
    crate::text::check_text(&here, text, crate::text::MAX_KEY_CHARS)?;
    let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return Err(Invalid::new(here, format!("`{text}` has an empty segment")));
    }
    if segments.len() > MAX_PATH_SEGMENTS {
        return Err(Invalid::new(
            here,
            format!("has more than {MAX_PATH_SEGMENTS} segments"),
        ));
    }
    Ok(segments)
}

fn eval(node: &Node, payload: &Value) -> bool {
    match node {
        Node::All(nodes) => nodes.iter().all(|n| eval(n, payload)),
        Node::Any(nodes) => nodes.iter().any(|n| eval(n, payload)),
        Node::Not(inner) => !eval(inner, payload),
        Node::Test { path, test } => {
            let found = lookup(payload, path);
            match test {
                Test::Exists(wanted) => found.is_some() == *wanted,
                Test::Eq(want) => found.is_some_and(|v| same(v, want)),
                Test::In(options) => found.is_some_and(|v| options.iter().any(|o| same(v, o))),
                Test::Compare(how, bound) => {
                    found.and_then(Value::as_f64).is_some_and(|n| match how {
                        Comparison::Gt => n > *bound,
                        Comparison::Gte => n >= *bound,
                        Comparison::Lt => n < *bound,
                        Comparison::Lte => n <= *bound,
                    })
                }
            }
        }
    }
}

/// Numbers compare by value (`1` equals `1.0`); everything else as JSON.
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

/// The value at `path`: object keys, and array indexes written as numbers.
fn lookup<'a>(payload: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(payload, |here, segment| match here {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// The filter's grammar as a JSON Schema, for the OpenAPI document. The count limit
/// ([`MAX_CONDITIONS`]) is beyond it; its description states it.
#[cfg(feature = "openapi")]
pub struct FilterSchema;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for FilterSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            ArrayBuilder, ObjectBuilder, OneOfBuilder, SchemaType, Type,
        };
        use utoipa::openapi::{Ref, RefOr, schema::Schema};
        let itself = || Ref::from_schema_name("PayloadFilter");
        let path = || {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(crate::text::MAX_KEY_CHARS))
                .pattern(Some(PATH_PATTERN))
                .description(Some("Dotted keys into the payload; numbers index arrays."))
        };
        let test = |name: &str, value: RefOr<Schema>| -> Schema {
            ObjectBuilder::new()
                .property("path", path())
                .property(name, value)
                .required("path")
                .required(name)
                .additional_properties(Some(
                    utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
                ))
                .into()
        };
        let number = || ObjectBuilder::new().schema_type(Type::Number).into();
        let combinator = |name: &str, inner: RefOr<Schema>| -> Schema {
            ObjectBuilder::new()
                .property(name, inner)
                .required(name)
                .additional_properties(Some(
                    utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
                ))
                .into()
        };
        let list = || {
            ArrayBuilder::new()
                .items(itself())
                .min_items(Some(1))
                .into()
        };
        OneOfBuilder::new()
            .item(test(
                "eq",
                ObjectBuilder::new()
                    .schema_type(SchemaType::AnyValue)
                    .into(),
            ))
            .item(test("in", ArrayBuilder::new().min_items(Some(1)).into()))
            .item(test(
                "exists",
                ObjectBuilder::new().schema_type(Type::Boolean).into(),
            ))
            .item(test("gt", number()))
            .item(test("gte", number()))
            .item(test("lt", number()))
            .item(test("lte", number()))
            .item(combinator("all", list()))
            .item(combinator("any", list()))
            .item(combinator("not", itself().into()))
            .description(Some(format!(
                "A condition on the payload (`eq`, `in`, `exists`, `gt`, `gte`, `lt`, `lte` on \
                 a `path`), or `all`, `any`, `not` of filters; at most {MAX_CONDITIONS} \
                 conditions in all."
            )))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for FilterSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "PayloadFilter".into()
    }
}

/// What [`path`] takes: up to 16 non-empty dot-separated segments, no control
/// characters.
pub const PATH_PATTERN: &str =
    r"^[^.\u0000-\u001f\u007f-\u009f]+(\.[^.\u0000-\u001f\u007f-\u009f]+){0,15}$";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn filter(v: Value) -> PayloadFilter {
        PayloadFilter::parse("filter", &v).unwrap()
    }

    fn refused(v: Value) -> Invalid {
        PayloadFilter::parse("filter", &v).unwrap_err()
    }

    #[test]
    fn conditions_combine_with_all_any_and_not() {
        let f = filter(json!({"all": [
            {"path": "data.status", "eq": "completed"},
            {"path": "data.rows", "gte": 100},
            {"not": {"path": "data.test", "exists": true}},
            {"any": [{"path": "data.region", "in": ["eu", "uk"]}, {"path": "data.vip", "eq": true}]}
        ]}));
        let base = json!({"data": {"status": "completed", "rows": 100.0, "region": "eu"}});
        assert!(f.matches(&base));
        let mut test = base.clone();
        test["data"]["test"] = json!(false);
        assert!(
            !f.matches(&test),
            "exists means present, whatever the value"
        );
        let mut us = base.clone();
        us["data"]["region"] = json!("us");
        assert!(!f.matches(&us));
        us["data"]["vip"] = json!(true);
        assert!(f.matches(&us));
        let mut few = base.clone();
        few["data"]["rows"] = json!(99);
        assert!(!f.matches(&few));
        let mut text = base;
        text["data"]["rows"] = json!("100");
        assert!(!f.matches(&text), "a string is not a number");
    }

    #[test]
    fn paths_reach_into_arrays_by_index_and_a_missing_value_meets_nothing_but_not_exists() {
        let f = filter(json!({"path": "items.1.sku", "eq": "b"}));
        assert!(f.matches(&json!({"items": [{"sku": "a"}, {"sku": "b"}]})));
        assert!(!f.matches(&json!({"items": [{"sku": "a"}]})));
        assert!(!filter(json!({"path": "x", "lt": 5})).matches(&json!({})));
        assert!(filter(json!({"path": "x", "exists": false})).matches(&json!({})));
        assert!(filter(json!({"path": "n", "eq": 1})).matches(&json!({"n": 1.0})));
    }

    #[test]
    fn a_wrong_filter_is_refused_naming_its_part() {
        let cases = [
            (
                json!({"all": [{"path": "a", "eq": 1}, {"path": "b", "gt": "x"}]}),
                "filter.all[1].gt",
            ),
            (json!({"any": []}), "filter.any"),
            (json!({"path": "a"}), "filter"),
            (json!({"path": "a", "eq": 1, "in": [1]}), "filter"),
            (json!({"path": "a..b", "eq": 1}), "filter.path"),
            (json!({"path": 3, "eq": 1}), "filter.path"),
            (
                json!({"not": {"path": "a", "exists": "yes"}}),
                "filter.not.exists",
            ),
            (
                json!({"all": [{"path": "a", "eq": 1}], "any": []}),
                "filter",
            ),
            (json!("data.status == 1"), "filter"),
        ];
        for (given, field) in cases {
            assert_eq!(refused(given.clone()).field, field, "{given}");
        }
        let mut deep = json!({"path": "a", "eq": 1});
        for _ in 0..MAX_CONDITIONS {
            deep = json!({"not": deep});
        }
        assert!(refused(deep).problem.contains("more than"));
        let many: Vec<Value> = (0..MAX_CONDITIONS)
            .map(|_| json!({"path": "a", "eq": 1}))
            .collect();
        assert!(refused(json!({"all": many})).problem.contains("more than"));
    }
}
