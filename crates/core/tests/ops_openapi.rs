//! Keeps `openapi.json`'s request schemas and `ops::prepare` in step.
//!
//! There is no JSON Schema validator among the core's dependencies, so
//! instead of validating arbitrary bodies this walks the document's own
//! statements about each operation's data (its example, `required`, the
//! value form each field has, the defaults) and checks that the code agrees
//! with each one. The value forms (`Count`, `Amount`, `Flag`, …) are checked
//! on the sample values of `value_forms.json`; the same samples are checked
//! against the forms' schemas by `tests/e2e/schema.test.mjs`, which has a
//! JSON Schema validator. A rule changed on one side only fails here or
//! there.
// A test: clippy.toml's one-JSON-reader rule is about what goes into the wasm.
#![allow(clippy::disallowed_methods)]

use plumgate_core::ops::{
    build_envelope, defaults, parse_envelope, prepare, validate, Operation, ParsedEnvelope,
    ValidationError, OPENAPI_JSON,
};
use serde_json::{json, Map, Value};

const VALUE_FORMS: &str = include_str!("value_forms.json");

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

/// The object branch of a data schema: the schema itself, or the branch of
/// its `anyOf` that is an object (getFilters and getBalance also take `[]`).
fn object_schema(schema: &Value) -> Value {
    if schema["type"] == "object" {
        return schema.clone();
    }
    schema["anyOf"]
        .as_array()
        .and_then(|a| a.iter().find(|b| b["type"] == "object"))
        .cloned()
        .expect("an object schema or an anyOf with an object branch")
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

/// The value form of a property: `(form name, nullable)` for `{"$ref":
/// "#/components/schemas/<form>"}` or `{"anyOf": [{"$ref": …}, {"type":
/// "null"}]}`; `None` for a schema of its own.
fn form_of(prop: &Value) -> Option<(String, bool)> {
    let name = |r: &Value| {
        r.get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .map(str::to_owned)
    };
    if let Some(n) = name(prop) {
        return Some((n, false));
    }
    let branches = prop["anyOf"].as_array()?;
    match branches.as_slice() {
        [r, null] if null == &json!({"type": "null"}) => name(r).map(|n| (n, true)),
        _ => None,
    }
}

#[test]
fn every_example_is_valid_and_extensible() {
    let doc = doc();
    for op in Operation::ALL {
        let mut data = example(&doc, op);
        assert_eq!(check(op, &data), Ok(()), "{op}");
        data.insert("notInTheSchema".into(), json!({"any": ["thing"]}));
        assert_eq!(check(op, &data), Ok(()), "{op}: extra fields are allowed");
        let schema = object_schema(&data_schema(&doc, op));
        assert_ne!(schema["additionalProperties"], false, "{op}");
    }
}

#[test]
fn the_drop_in_example_parses() {
    let doc = doc();
    let body = &doc["paths"]["/chef/v1/oauth/api"]["post"]["requestBody"];
    let envelope = &body["content"]["application/json"]["example"];
    let Ok(ParsedEnvelope::Known(op, data)) = parse_envelope(envelope) else {
        panic!("the example envelope parses");
    };
    assert_eq!(validate(op, &data), Ok(()));
    assert_eq!(&build_envelope(op, data), envelope);
}

#[test]
fn required_fields_agree() {
    let doc = doc();
    for op in Operation::ALL {
        let schema = object_schema(&data_schema(&doc, op));
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
                // null is missing too.
                data.insert(name.clone(), Value::Null);
                assert_eq!(check(op, &data).map_err(|e| e.field), Err(format!("data.{name}")), "{op}: {name} = null");
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

/// Every field whose schema is a value form accepts the form's valid
/// samples and refuses its invalid ones, naming the field; a nullable
/// (optional) field takes `null` too.
#[test]
fn value_forms_agree() {
    let doc = doc();
    let forms: Value = serde_json::from_str(VALUE_FORMS).expect("value_forms.json is JSON");
    let mut fields_checked = 0;
    let mut forms_seen = std::collections::BTreeSet::new();
    for op in Operation::ALL {
        let schema = object_schema(&data_schema(&doc, op));
        let Some(props) = schema["properties"].as_object() else {
            continue;
        };
        let base = example(&doc, op);
        for (name, prop) in props {
            let Some((form, nullable)) = form_of(prop) else {
                continue;
            };
            let samples = &forms[&form];
            assert!(samples.is_object(), "{op}.{name}: form {form} has samples");
            forms_seen.insert(form.clone());
            let field = format!("data.{name}");
            let try_value = |value: &Value| {
                let mut data = base.clone();
                data.insert(name.clone(), value.clone());
                // A date range must stay in order while one end moves.
                match name.as_str() {
                    "startDate" => data.insert("endDate".into(), json!("9999-12-31")),
                    "endDate" => data.insert("startDate".into(), json!("0001-01-01")),
                    _ => None,
                };
                check(op, &data)
            };
            for v in samples["valid"].as_array().unwrap() {
                assert_eq!(try_value(v), Ok(()), "{op}.{name} ({form}) = {v}");
            }
            let refused = samples["invalid"].as_array().unwrap().iter().chain(
                samples["code_refuses"].as_array().into_iter().flatten(),
            );
            for v in refused {
                if v.is_null() && nullable {
                    assert_eq!(try_value(v), Ok(()), "{op}.{name} = null: optional");
                    continue;
                }
                let err = try_value(v).expect_err(&format!("{op}.{name} ({form}) = {v} must be refused"));
                assert_eq!(err.field, field, "{op}.{name} = {v}");
            }
            fields_checked += 1;
        }
    }
    assert!(fields_checked >= 30, "checked {fields_checked} fields");
    for form in ["Count", "Amount", "Flag", "Text", "JsonObject", "Date"] {
        assert!(forms_seen.contains(form), "{form} is used by some field");
    }
    // Price is the form of a price bound's value (minPrice, maxPrice);
    // `price` itself is text (a range, as getFilters lists them).
    let filter = &doc["components"]["schemas"]["VoucherFilter"];
    let price = &filter["allOf"][0]["anyOf"][1]["properties"]["value"];
    assert_eq!(form_of(price), Some(("Price".into(), false)));
    assert_eq!(filter["allOf"][0]["anyOf"][0]["properties"]["key"]["not"]["enum"], json!(["minPrice", "maxPrice"]));
    for v in forms["Text"]["valid"].as_array().unwrap().iter().chain([&json!("0 - 1000")]) {
        let data = json!({"filters": [{"key": "price", "value": v}]});
        assert_eq!(validate(Operation::GetVouchers, &data), Ok(()), "price = {v}");
    }
    for key in ["minPrice", "maxPrice"] {
        let with = |v: &Value| {
            let data = json!({"limit": 1, "page": 1, "filters": [{"key": key, "value": v}]});
            validate(Operation::GetVouchers, &data).map_err(|e| e.field)
        };
        for v in forms["Price"]["valid"].as_array().unwrap() {
            assert_eq!(with(v), Ok(()), "{key} = {v}");
        }
        for v in forms["Price"]["invalid"].as_array().unwrap() {
            assert_eq!(with(v), Err("data.filters[0].value".into()), "{key} = {v}");
        }
    }
}

/// The `default`s the document states are the ones `prepare` fills in.
#[test]
fn defaults_agree() {
    let doc = doc();
    let mut stated = Vec::new();
    for op in Operation::ALL {
        let schema = object_schema(&data_schema(&doc, op));
        for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
            if let Some(d) = prop.get("default") {
                stated.push((op, name.clone(), d.clone()));
            }
        }
    }
    let filled: Vec<(Operation, String, Value)> =
        defaults().map(|(op, name, v)| (op, name.to_owned(), v)).collect();
    let sorted = |list: &[(Operation, String, Value)]| {
        let mut l: Vec<String> = list.iter().map(|(op, n, v)| format!("{op}.{n}={v}")).collect();
        l.sort();
        l
    };
    assert_eq!(sorted(&stated), sorted(&filled));
    assert_eq!(filled.len(), 4);
    for (op, name, value) in filled {
        let mut data = example(&doc, op);
        data.remove(&name);
        if op == Operation::GetOrderDetails && name == "orderId" {
            data.insert("poNumber".into(), json!("PO-1"));
        }
        let sent = prepare(op, Value::Object(data)).expect("valid");
        assert_eq!(sent[&name], value, "{op}.{name}");
    }
}

/// The drop-in envelope schema has a branch for every known query (and the
/// payment report's alias), and its branch for unknown queries excludes
/// exactly those.
#[test]
fn envelope_branches_agree() {
    let doc = doc();
    let env = &doc["components"]["schemas"]["Envelope"];
    let branches = env["anyOf"].as_array().expect("anyOf");
    let mut known: Vec<String> = Vec::new();
    for b in branches {
        let q = &b["properties"]["query"];
        if let Some(c) = q["const"].as_str() {
            known.push(c.into());
        } else if let Some(e) = q["enum"].as_array() {
            known.extend(e.iter().filter_map(Value::as_str).map(str::to_owned));
        }
    }
    let mut expected: Vec<String> = Operation::ALL.iter().map(|op| op.query().to_owned()).collect();
    expected.push("plumProAPI.mutation.getPaymentReport".into());
    let (mut a, mut b) = (known.clone(), expected.clone());
    a.sort();
    b.sort();
    assert_eq!(a, b);
    for q in &known {
        let env = json!({"query": q, "variables": {"data": {}}, "data": {"data": {}}});
        assert!(matches!(parse_envelope(&env), Ok(ParsedEnvelope::Known(..))), "{q}");
    }
    let unknown = branches.last().expect("the last branch is for unknown queries");
    let q = &unknown["properties"]["query"];
    assert_eq!(q["pattern"], "^plumProAPI\\.[A-Za-z0-9_]{1,64}\\.[A-Za-z0-9_]{1,64}$");
    // Excluded: every known operation's name under any kind and in any
    // case (the code takes each for that operation), and the payment
    // report's alias in its one spelling (another is an unknown query).
    let any_case = |name: &str| name.chars().map(|c| if c.is_ascii_alphabetic() { format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase()) } else { c.to_string() }).collect::<String>();
    let names: Vec<String> = Operation::ALL.iter().map(|op| any_case(op.name())).collect();
    let excluded = &q["not"]["anyOf"];
    assert_eq!(excluded[0]["pattern"].as_str().unwrap(), format!("^plumProAPI\\.[A-Za-z0-9_]{{1,64}}\\.({})$", names.join("|")));
    assert_eq!(excluded[1]["const"], "plumProAPI.mutation.getPaymentReport");
    assert_eq!(excluded.as_array().unwrap().len(), 2);
    for q in ["plumProAPI.query.placeOrder", "plumProAPI.mutation.GETBALANCE", "plumProAPI.x.PaymentHistory"] {
        let env = json!({"query": q, "variables": {"data": {}}});
        assert!(!matches!(parse_envelope(&env), Ok(ParsedEnvelope::Unvalidated(_))), "{q}: a known operation, not an unknown query");
    }
    let env = json!({"query": "plumProAPI.query.getPaymentReport"});
    assert_eq!(parse_envelope(&env), Ok(ParsedEnvelope::Unvalidated("getPaymentReport".into())), "the alias in another spelling is no known query");
    let env = json!({"query": "plumProAPI.mutation.someNewOperation"});
    assert_eq!(parse_envelope(&env), Ok(ParsedEnvelope::Unvalidated("someNewOperation".into())));
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

/// Under `/chef/` every error plumgate makes is documented in Xoxoday's
/// shapes, never in `/v1`'s `{"error": {...}}`.
#[test]
fn drop_in_errors_are_xoxoday_shaped() {
    let doc = doc();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/chef/") {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                let response = resolve(&doc, response);
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                let ok = [
                    "#/components/schemas/XoxodayError",
                    "#/components/schemas/XoxodayErrorOrUpstream",
                    "#/components/schemas/OAuthError",
                    "#/components/schemas/UpstreamBody",
                ];
                assert!(ok.contains(&schema.as_str().unwrap_or("")), "{method} {path} {status}: {schema}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "{checked}");
    let codes = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("PLUMGATE_{}", c.as_str().unwrap().to_uppercase()))
        .collect::<Vec<_>>();
    assert_eq!(doc["components"]["schemas"]["XoxodayError"]["properties"]["errorId"]["enum"], json!(codes));
}

/// The CORS the document and the README state (contract §1) is `cors`':
/// the preflight's methods, headers and lifetime, and the headers a
/// browser may read.
#[test]
fn cors_as_stated() {
    use plumgate_core::cors::{ALLOW_HEADERS, ALLOW_METHODS, EXPOSE_HEADERS, MAX_AGE_SECS};
    let doc = doc();
    let info = doc["info"]["description"].as_str().unwrap();
    let readme = include_str!("../../../README.md");
    let row = readme.lines().find(|l| l.starts_with("| `ALLOWED_ORIGINS` |")).expect("README's ALLOWED_ORIGINS row");
    for (what, text) in [("openapi info", info), ("README", row)] {
        assert!(text.contains("OPTIONS"), "{what} states the preflight");
        assert!(text.contains(EXPOSE_HEADERS), "{what}: exposed headers `{EXPOSE_HEADERS}`");
        assert!(text.contains(ALLOW_METHODS), "{what}: allowed methods `{ALLOW_METHODS}`");
        assert!(text.contains(ALLOW_HEADERS), "{what}: allowed headers `{ALLOW_HEADERS}`");
        let max_age = [format!("Max-Age `{MAX_AGE_SECS}`"), format!("Max-Age: {MAX_AGE_SECS}")];
        assert!(max_age.iter().any(|m| text.contains(m.as_str())), "{what}: max age {MAX_AGE_SECS}");
    }
}

/// `x-plumgate-replayed` is on any answer of Xoxoday's that a placeOrder
/// request gets from another attempt (the ledger's stored answer, the
/// call in flight it joined, a refusal settled while no request waited):
/// a 200 or a refusal's 4xx. So every such response of placeOrder, on
/// both bases, declares it; a 413 or 429 is always plumgate's own.
/// And nowhere else: the worker sets it only when it renders the order
/// ledger's reply (`src/objects/ledger/client.rs`, `render`), which only a
/// placeOrder asks for (`src/gateway.rs`, `forward`), on Xoxoday's answer
/// alone; and the ledger never answers with a 5xx of Xoxoday's (`ledger::
/// after_place`: a 5xx leaves the order's fate open, it is checked, and
/// the caller gets plumgate's error or the order found). No other
/// operation's response, and no 5xx, 413 or 429, declares it.
#[test]
fn replayed_is_declared_where_it_can_come_and_only_there() {
    let doc = doc();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(responses) = operation.get("responses").and_then(Value::as_object) else {
                continue;
            };
            // The drop-in route is placeOrder too when its envelope says so.
            let places = matches!(path.as_str(), "/v1/ops/placeOrder" | "/chef/v1/oauth/api");
            for (status, response) in responses {
                let can_come = places && (status == "200" || status.starts_with('4')) && status != "413" && status != "429";
                let response = resolve(&doc, response);
                let declared = response["headers"].as_object().is_some_and(|h| h.contains_key("x-plumgate-replayed"));
                assert_eq!(declared, can_come, "{method} {path} {status}: x-plumgate-replayed declared iff it can come");
                checked += usize::from(can_come);
            }
        }
    }
    assert!(checked >= 14, "{checked}");
    let said = doc["components"]["headers"]["XPlumgateReplayed"]["description"].as_str().unwrap();
    assert!(said.contains("joined") && said.contains("refusal"), "the header's description names the joined call and refusals: {said}");
}

/// The words that tell a caller a placeOrder 5xx placed nothing are a
/// wire rule (the typed client reads them): placeOrder's description and
/// the 500 and 502 answers quote them exactly as the ledger writes them.
#[test]
fn safe_to_retry_words_are_quoted() {
    let doc = doc();
    let quoted = format!("`{}`", plumgate_core::ledger::SAFE_TO_RETRY);
    let place = doc["paths"]["/v1/ops/placeOrder"]["post"]["description"].as_str().unwrap();
    assert!(place.contains(&quoted), "placeOrder's description quotes the ledger's words");
    for name in ["OpsBadGateway", "OpsInternalError"] {
        let said = doc["components"]["responses"][name]["description"].as_str().unwrap();
        assert!(said.contains(&quoted), "{name} quotes the ledger's words: {said}");
    }
}

/// `LimitsInput` states `quota::Limits`' rules: requests_per_minute's
/// range, and order_amount_per_day's (above 0, at most the cap, a string
/// written as `Amount`'s), checked on `value_forms.json`'s amounts.
#[test]
fn limits_agree() {
    use plumgate_core::quota::{Limits, MAX_ORDER_AMOUNT_PER_DAY, MAX_REQUESTS_PER_MINUTE};
    let doc = doc();
    let schemas = &doc["components"]["schemas"];
    let props = &schemas["LimitsInput"]["properties"];
    let rpm = &props["requests_per_minute"];
    assert_eq!(rpm["minimum"], 1);
    assert_eq!(rpm["maximum"], MAX_REQUESTS_PER_MINUTE);
    let parse = |member: &str, v: &Value| Limits::parse(&json!({ member: v }), "limits").is_ok();
    for (v, ok) in [(json!(0), false), (json!(1), true), (json!(MAX_REQUESTS_PER_MINUTE), true), (json!(MAX_REQUESTS_PER_MINUTE + 1), false)] {
        assert_eq!(parse("requests_per_minute", &v), ok, "requests_per_minute = {v}");
    }

    let max = MAX_ORDER_AMOUNT_PER_DAY / 1_000_000;
    let amount = &props["order_amount_per_day"];
    let branch = |t: &str| amount["anyOf"].as_array().unwrap().iter().find(|b| b["type"] == t).cloned().expect(t);
    assert_eq!(branch("number")["exclusiveMinimum"], 0);
    assert_eq!(branch("number")["maximum"], max);
    // The string branch's pattern is held to the parser by
    // `order_amount_string_pattern_is_quotas_rule`.
    let said = amount["description"].as_str().unwrap();
    assert!(said.contains(&format!("at most {max}")), "the description states the cap: {said}");

    let forms: Value = serde_json::from_str(VALUE_FORMS).unwrap();
    for v in forms["Amount"]["invalid"].as_array().unwrap() {
        if !v.is_null() {
            assert!(!parse("order_amount_per_day", v), "order_amount_per_day = {v} is refused, as Amount");
        }
    }
    // Amount's valid values, within the cap and not below a millionth
    // (amounts are kept in millionths), are taken; the others are not.
    for v in forms["Amount"]["valid"].as_array().unwrap() {
        let f = v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap();
        let ok = (0.000_001..=max as f64).contains(&f);
        assert_eq!(parse("order_amount_per_day", v), ok, "order_amount_per_day = {v}");
    }
    for (v, ok) in [(json!(max), true), (json!(max.to_string()), true), (json!(format!("{}", max + 1)), false), (json!("0"), false)] {
        assert_eq!(parse("order_amount_per_day", &v), ok, "order_amount_per_day = {v}");
    }
}

/// `order_amount_per_day` as a string: `LimitsInput`'s pattern matches
/// what `quota::Limits` takes (a decimal string, leading zeros allowed,
/// above 0 and at most the cap), run as written (its classes and counts
/// read alike in ECMA and the `regex` crate) on samples on both sides of
/// every edge: the cap, the least millionth, the forms Amount refuses. A
/// string it matches is also one of Amount's. The parser reads a string
/// as an `f64` rounded to the millionth, so digits past the millionth
/// can tip it either way where no pattern follows (`rounded`): there the
/// pattern asks for less, never more, than the parser takes.
#[test]
fn order_amount_string_pattern_is_quotas_rule() {
    use plumgate_core::quota::Limits;
    let doc = doc();
    let schemas = &doc["components"]["schemas"];
    let string_branch = |schema: &Value| {
        let branch = schema["anyOf"].as_array().unwrap().iter().find(|b| b["type"] == "string").cloned().expect("a string branch");
        regex::Regex::new(branch["pattern"].as_str().unwrap()).expect("the pattern compiles")
    };
    let pattern = string_branch(&schemas["LimitsInput"]["properties"]["order_amount_per_day"]);
    let amount = string_branch(&schemas["Amount"]);
    let taken = |s: &str| Limits::parse(&json!({ "order_amount_per_day": s }), "limits").is_ok();
    let forms: Value = serde_json::from_str(VALUE_FORMS).unwrap();
    let form_strings = ["valid", "invalid"].into_iter().flat_map(|k| forms["Amount"][k].as_array().unwrap().iter().filter_map(Value::as_str));
    let rounded = ["0.0000009", "1000000000.0000001"];
    let samples = [
        "1", "0.5", "25", "25.50", "500", "2500.50", "010", "01", "10.0", "0.01", "0.000001", "000.000001", "0.0000010",
        "1.0000001", "999999999", "999999999.999999", "999999999.9999999999", "1000000000", "01000000000", "1000000000.0",
        "1000000000.000000", "1000000000.000001", "1000000000.01", "1000000000.1", "1000000001", "1000000010", "2000000000.5",
        "9999999999", "10000000000", "0", "0.0", "00.00", "0.0000001", "0.0000004", "", "1e3", "1E3", "1e9", "-5", "+5",
        ".5", "5.", " 5", "5 ", "1,5", "1_000", "0x10", "abc", "Infinity", "NaN", "\u{661}",
    ];
    let mut checked = 0;
    for s in samples.into_iter().chain(form_strings).filter(|s| !rounded.contains(s)) {
        assert_eq!(pattern.is_match(s), taken(s), "order_amount_per_day = {s:?}: the pattern matches iff quota::Limits takes it");
        assert!(!pattern.is_match(s) || amount.is_match(s), "{s:?}: written as Amount's strings");
        checked += 1;
    }
    assert!(checked >= 60, "{checked}");
    for s in rounded {
        assert!(!pattern.is_match(s) && taken(s), "{s:?}: past the millionth, the parser rounds; the pattern does not take it");
    }
}

/// `[]` is data for an operation whose data needs nothing (PHP writes an
/// empty object so): where `validate` takes it, the schema has the
/// empty-array branch; where a field is required, neither takes it.
#[test]
fn empty_array_data_agrees() {
    let doc = doc();
    let empty_branch = json!({"type": "array", "maxItems": 0});
    for op in Operation::ALL {
        let schema = data_schema(&doc, op);
        let has = schema["anyOf"].as_array().is_some_and(|a| a.contains(&empty_branch));
        let takes = validate(op, &json!([])).is_ok();
        assert_eq!(has, takes, "{op}: [] as data (the code takes it: {takes})");
        if takes {
            assert_eq!(prepare(op, json!([])).expect("valid"), prepare(op, json!({})).expect("valid"), "{op}: [] is sent as {{}}");
        }
    }
}

/// A catalog call with a field plumgate does not know is never answered
/// from the cache (the operations' descriptions say so): the fields the
/// cache key holds (`ops::cache_key`'s table) are exactly the ones the data
/// schema names, and a call with any of them is storable.
#[test]
fn cache_key_fields_are_the_schemas() {
    let doc = doc();
    let table = include_str!("../src/ops/cache_key.rs");
    for op in [Operation::GetFilters, Operation::GetVouchers] {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("//! | {} |", op.name())))
            .unwrap_or_else(|| panic!("{op}: a row in cache_key.rs's table"));
        let mut keyed: Vec<&str> = row
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|f| f.split(['.', '[']).next().unwrap())
            .collect();
        keyed.sort_unstable();
        keyed.dedup();
        // The code's own list: the `known` fields of the op's arm.
        let arm = format!("Operation::{}{} => {{", op.name()[..1].to_uppercase(), &op.name()[1..]);
        let known = table[table.find("let known").unwrap()..].split(arm.as_str()).nth(1).expect("the op's arm");
        let known = &known[known.find("&[").unwrap() + 2..];
        let mut known: Vec<&str> = known[..known.find(']').unwrap()].split(',').map(|f| f.trim().trim_matches('"')).collect();
        known.sort_unstable();
        assert_eq!(known, keyed, "{op}: cache_key.rs's table lists its known fields");
        let schema = object_schema(&data_schema(&doc, op));
        let mut named: Vec<&str> = schema["properties"].as_object().unwrap().keys().map(String::as_str).collect();
        named.sort_unstable();
        assert_eq!(named, keyed, "{op}: the schema's fields are the cache key's");
        for name in named {
            let key = plumgate_core::ops::cache_key(op, &json!({ name: "x" })).expect("cacheable");
            assert!(key.storable, "{op}.{name} is a field of the key");
        }
        let key = plumgate_core::ops::cache_key(op, &json!({"notInTheSchema": "x"})).unwrap();
        assert!(!key.storable, "{op}: an unknown field is not");
    }
}

/// Every JSON 2xx answer has an example (README: so a generator gives
/// usable types), the document itself excepted; the drop-in token
/// endpoints' are what `dropin` answers for the example's key and time.
#[test]
fn every_json_success_has_an_example() {
    let doc = doc();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(responses) = operation.get("responses").and_then(Value::as_object) else {
                continue;
            };
            for (status, response) in responses {
                let json = &resolve(&doc, response)["content"]["application/json"];
                if !status.starts_with('2') || json.is_null() || path == "/openapi.json" {
                    continue;
                }
                assert!(json.get("example").is_some() || json.get("examples").is_some(), "{method} {path} {status} has an example");
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "{checked}");

    use plumgate_core::dropin::{refresh_answer, validation_answer, EXPIRES_IN_SECS};
    use plumgate_core::secret::CallerKey;
    let refresh = &doc["paths"]["/chef/v1/oauth/token/{token_type}"]["post"]["responses"]["200"]["content"]["application/json"]["example"];
    let validation = &doc["paths"]["/chef/v1/oauth/token"]["get"]["responses"]["200"]["content"]["application/json"]["example"];
    for (example, answer) in [(refresh, refresh_answer as fn(&CallerKey, Option<i64>, i64) -> String), (validation, validation_answer)] {
        let key = example["access_token"].as_str().unwrap();
        // A runtime key's shape (`keys::KEY_PREFIX` and 48 hex), obviously
        // not a real one.
        assert!(key.len() == 52 && key.starts_with("pgk_") && key[4..].bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
        let expiry: i64 = example["access_token_expiry"].as_str().unwrap().parse().unwrap();
        let now = expiry - EXPIRES_IN_SECS * 1000;
        let made: Value = serde_json::from_str(&answer(&CallerKey::new(key), None, now)).unwrap();
        assert_eq!(&made, example, "the example is dropin's answer at {now}");
    }
}

/// The drop-in route answers a cacheable operation's every outcome with
/// `x-plumgate-cache` as `/v1/ops` does (routes.rs sets it on the way
/// out), Xoxoday's answers passed through included: each status declares
/// it where the `/v1/ops` route's does (a 413 comes before the envelope
/// names the operation).
#[test]
fn drop_in_declares_the_cache_header_as_ops_does() {
    let doc = doc();
    let ops = doc["paths"]["/v1/ops/getVouchers"]["post"]["responses"].as_object().unwrap();
    let chef = doc["paths"]["/chef/v1/oauth/api"]["post"]["responses"].as_object().unwrap();
    let declares = |r: &Value| resolve(&doc, r)["headers"].get("x-plumgate-cache").is_some();
    let mut checked = 0;
    for (status, response) in ops {
        if status == "413" || !declares(response) {
            continue;
        }
        assert!(chef.get(status).is_some_and(&declares), "drop-in {status} declares x-plumgate-cache");
        checked += 1;
    }
    assert!(checked >= 12, "{checked}");
}

/// The OAuth error shape the document's description gives is the
/// OAuthError schema's, which is `dropin::OAuthError::body`'s.
#[test]
fn oauth_error_shape_as_stated() {
    let doc = doc();
    let body: Value = serde_json::from_str(&plumgate_core::dropin::OAuthError::INVALID_GRANT.body("rid")).unwrap();
    let members: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    let required: Vec<&str> = doc["components"]["schemas"]["OAuthError"]["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let (mut a, mut b) = (members.clone(), required);
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);
    let shape = format!("`{{{}}}`", members.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(", "));
    assert!(doc["info"]["description"].as_str().unwrap().contains(&shape), "the info gives the OAuth shape {shape}");
    let readme = include_str!("../../../README.md");
    assert!(readme.contains(&shape), "README gives the OAuth shape {shape}");
}
