//! Keeps `openapi.json`'s request schemas and `ops::validate` in step.
//!
//! There is no JSON Schema validator among the core's dependencies, so
//! instead of validating arbitrary bodies this walks the document's own
//! statements about each operation's data (its example, `required`,
//! `minimum` / `maximum`, `maxLength`, `enum`) and checks that the code
//! agrees with each one. A rule changed on one side only fails here.

use plumgate_core::ops::{
    build_envelope, parse_envelope, validate, Operation, ValidationError, OPENAPI_JSON,
};
use serde_json::{json, Map, Value};

fn doc() -> Value {
    serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON")
}

/// The request body schema of `POST /v1/ops/{op}`, `$ref` resolved.
fn data_schema(doc: &Value, op: Operation) -> Value {
    let body = &doc["paths"][format!("/v1/ops/{}", op.name())]["post"]["requestBody"];
    assert_eq!(body["required"], true, "{op}");
    let schema = &body["content"]["application/json"]["schema"];
    resolve(doc, schema).clone()
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .expect("$ref resolves"),
        None => schema,
    }
}

fn example(doc: &Value, op: Operation) -> Map<String, Value> {
    let body = &doc["paths"][format!("/v1/ops/{}", op.name())]["post"]["requestBody"];
    body["content"]["application/json"]["example"]
        .as_object()
        .unwrap_or_else(|| panic!("{op}: the request body has an example object"))
        .clone()
}

fn check(op: Operation, data: &Map<String, Value>) -> Result<(), ValidationError> {
    validate(op, &Value::Object(data.clone()))
}

#[test]
fn every_example_is_valid_and_extensible() {
    let doc = doc();
    for op in Operation::ALL {
        let mut data = example(&doc, op);
        assert_eq!(check(op, &data), Ok(()), "{op}");
        data.insert("notInTheSchema".into(), json!({"any": ["thing"]}));
        assert_eq!(check(op, &data), Ok(()), "{op}: extra fields are allowed");
        let schema = data_schema(&doc, op);
        assert_eq!(schema["type"], "object", "{op}");
        assert_ne!(schema["additionalProperties"], false, "{op}");
    }
}

#[test]
fn the_drop_in_example_parses() {
    let doc = doc();
    let body = &doc["paths"]["/chef/v1/oauth/api"]["post"]["requestBody"];
    let envelope = &body["content"]["application/json"]["example"];
    let (op, data) = parse_envelope(envelope).expect("the example envelope parses");
    assert_eq!(validate(op, &data), Ok(()));
    assert_eq!(&build_envelope(op, data), envelope);
}

#[test]
fn required_fields_agree() {
    let doc = doc();
    for op in Operation::ALL {
        let schema = data_schema(&doc, op);
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let example = example(&doc, op);
        for name in example.keys() {
            let mut data = example.clone();
            data.remove(name);
            let result = check(op, &data);
            if required.contains(&name.as_str()) {
                let err = result.expect_err(&format!("{op}: {name} is required"));
                assert_eq!(err.field, format!("data.{name}"), "{op}");
            } else if op != Operation::GetOrderDetails {
                // getOrderDetails' "one of poNumber / orderId" is an anyOf,
                // checked in the unit tests.
                assert_eq!(result, Ok(()), "{op}: {name} is optional");
            }
        }
        for name in &required {
            assert!(
                example.contains_key(*name),
                "{op}: the example has required {name}"
            );
        }
    }
}

/// For every top-level property with a simple bound, the value just past it
/// is rejected on that field, and (for integers) the bound itself passes.
#[test]
fn bounds_agree() {
    let doc = doc();
    for op in Operation::ALL {
        let schema = data_schema(&doc, op);
        let Some(props) = schema["properties"].as_object() else {
            continue;
        };
        let base = example(&doc, op);
        for (name, prop) in props {
            let field = format!("data.{name}");
            let try_value = |value: Value| {
                let mut data = base.clone();
                data.insert(name.clone(), value);
                check(op, &data)
            };
            let rejects = |value: Value| {
                let err = try_value(value.clone())
                    .expect_err(&format!("{op}: {name} = {value} must be rejected"));
                assert_eq!(err.field, field, "{op}: {name} = {value}");
            };
            if prop["type"] == "integer" {
                if let Some(min) = prop["minimum"].as_i64() {
                    rejects(json!(min - 1));
                    assert_eq!(try_value(json!(min)), Ok(()), "{op}: {name} = {min}");
                }
                if let Some(max) = prop["maximum"].as_i64() {
                    rejects(json!(max + 1));
                    assert_eq!(try_value(json!(max)), Ok(()), "{op}: {name} = {max}");
                }
                if let Some(values) = prop["enum"].as_array() {
                    for v in values {
                        assert_eq!(try_value(v.clone()), Ok(()), "{op}: {name} = {v}");
                    }
                    rejects(json!(2));
                    rejects(json!(-1));
                }
                rejects(json!("1"));
                rejects(json!(1.5));
            }
            if prop["type"] == "string" {
                if let Some(max) = prop["maxLength"].as_u64() {
                    let max = usize::try_from(max).unwrap();
                    rejects(json!("1".repeat(max + 1)));
                }
                rejects(json!(1));
            }
            if prop["type"] == "object" {
                rejects(json!([]));
                if prop.get("required").is_none() {
                    assert_eq!(try_value(json!({})), Ok(()), "{op}: {name} = {{}}");
                }
            }
            if prop["type"] == "number" {
                if let Some(min) = prop["exclusiveMinimum"].as_f64() {
                    rejects(json!(min));
                    assert_eq!(try_value(json!(min + 0.5)), Ok(()), "{op}: {name}");
                }
                rejects(json!("1"));
            }
        }
    }
}

/// Contract §2: every response carries `x-request-id`, so the document says
/// so for every response of every route (schema-driven tests hold the worker
/// to it).
#[test]
fn every_response_declares_x_request_id() {
    let doc = doc();
    let paths = doc["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            let Some(responses) = operation.get("responses").and_then(Value::as_object) else {
                continue;
            };
            for (status, response) in responses {
                let response = resolve(&doc, response);
                let has = response
                    .get("headers")
                    .and_then(Value::as_object)
                    .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("x-request-id")));
                assert!(has, "{method} {path} {status} declares x-request-id");
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "checked {checked} responses");
}
