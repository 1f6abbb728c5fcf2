//! The upstream's error and success shapes, and lenient readers for input
//! fields. Owns: the Plum-style error `{code, errorId, errorInfo, error}`,
//! the OAuth-style error `{error, error_description}` (the rate-limit bodies
//! are `faults::RateLimitShape`'s), money formatting, and coercion of
//! JSON values that real clients send either as numbers or as strings
//! (a number field's value as a string; a text field takes a string only,
//! unless the `text_numbers` reading, [`numbers_as_text`]).

use serde_json::{json, Map, Value};

/// A Plum Pro API error: answered with HTTP status = `code`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlumError {
    pub status: u16,
    pub error_id: &'static str,
    pub info: String,
    pub error: String,
}

impl PlumError {
    pub fn new(
        status: u16,
        error_id: &'static str,
        info: impl Into<String>,
        error: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error_id,
            info: info.into(),
            error: error.into(),
        }
    }

    /// 400 PLE10001: the generic validation error.
    pub fn validation(error: impl Into<String>) -> Self {
        Self::new(400, "PLE10001", "Validation error", error)
    }

    pub fn body(&self) -> Value {
        json!({
            "code": self.status,
            "errorId": self.error_id,
            "errorInfo": self.info,
            "error": self.error,
        })
    }
}

/// 401 for a missing/invalid/expired/revoked bearer on `/v1/oauth/api`.
pub fn unauthorized_body() -> Value {
    json!({
        "code": 401,
        "errorId": "PIPE10013",
        "errorInfo": "Plum Pro APIs: Invalid authorization header",
        "error": "Eg: invalid authorization header!",
    })
}

/// The body Xoxoday shows once a Super Admin's password reset has ended
/// the tokens (xoxoday-api.md §1.4).
pub fn token_error_body() -> Value {
    json!({ "success": 0, "error_message_id": "auth.token_error" })
}

/// OAuth-style error body used by the token endpoints.
pub fn oauth_error(error: &str, description: &str) -> Value {
    json!({ "error": error, "error_description": description })
}

/// HTTP 200 with Xoxoday's failure flag for `op`, `data.<op>.status` 0
/// ("1 for success and 0 for failure", xoxoday-api.md §2), `message` the
/// sandbox's words (Xoxoday documents none).
pub fn failure_flag(op: &str, message: &str) -> Value {
    answer_of(op, json!({ "status": 0, "message": message }))
}

/// A success envelope `{"data":{"<key>":{"status":1,"data":...}}}`.
pub fn success(key: &str, data: Value) -> Value {
    answer_of(key, json!({ "status": 1, "data": data }))
}

/// `{"data":{"<key>": answer}}`, the Plum API's envelope of an answer.
fn answer_of(key: &str, answer: Value) -> Value {
    let mut inner = Map::new();
    inner.insert(key.to_owned(), answer);
    json!({ "data": Value::Object(inner) })
}

/// Cents as a JSON number: integral amounts without a fraction, others with
/// at most two decimals.
pub fn money(cents: i64) -> Value {
    if cents % 100 == 0 {
        Value::from(cents / 100)
    } else {
        Value::from(cents as f64 / 100.0)
    }
}

/// A float amount as JSON, integral values without a fraction.
pub fn amount(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        Value::from((v * 10_000.0).round() / 10_000.0)
    }
}

// ----- input readers -----
//
// Xoxoday's documents give each input field a type: an integer (`limit`,
// `page`, `quantity`, `productId`, `orderId`), a number (`denomination`,
// price filters), a 0/1 flag, a string, an object. Real clients send the
// numbers also as strings (`"25"`), which Xoxoday accepts. These readers
// accept exactly that — a JSON number of the right kind or a plain string of
// digits (with one decimal point for numbers): no sign, exponent, spaces or
// booleans — and answer anything else with `400 PLE10001` naming the field,
// so a gateway that forwarded something Xoxoday would refuse cannot pass its
// tests here. An optional field may be absent or `null`.

/// A whole number of at least 0 from a JSON integer (`10`, `10.0`) or a
/// string of ASCII digits; `None` otherwise. Values beyond 10^15 are `None`.
pub fn whole(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < 1.0e15)
                .map(|f| f as u64)
        }),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    }
}

/// A finite number from a JSON number or a decimal string (`"25"`,
/// `"25.50"`); `None` otherwise.
pub fn decimal(v: &Value) -> Option<f64> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let ok = match s.split_once('.') {
                Some((i, f)) => digits(i) && digits(f),
                None => digits(s),
            };
            if ok {
                s.parse::<f64>().ok()
            } else {
                None
            }
        }
        _ => None,
    }
    .filter(|f| f.is_finite())
}

/// A 0/1 flag: `0`, `1`, `"0"` or `"1"`; `None` otherwise.
pub fn flag_value(v: &Value) -> Option<bool> {
    match v {
        Value::String(s) if s == "0" => Some(false),
        Value::String(s) if s == "1" => Some(true),
        Value::Number(_) => match whole(v) {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        _ => None,
    }
}

fn present<'a>(input: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    input.get(key).filter(|v| !v.is_null())
}

/// An integer of at least 1 (`limit`, `page`, `quantity`). Absent or null
/// → `default`, or "is required" without one.
pub fn count(input: &Map<String, Value>, key: &str, default: Option<u64>) -> Result<u64, PlumError> {
    match present(input, key) {
        None => default.ok_or_else(|| PlumError::validation(format!("{key} is required"))),
        Some(v) => whole(v)
            .filter(|n| *n >= 1)
            .ok_or_else(|| PlumError::validation(format!("{key} must be a positive integer"))),
    }
}

/// getVouchers' `page`: required, an integer of at least 0, where 0 reads
/// as the first page. Xoxoday documents pages from 1; a published client
/// (blueromans/XoxoDay) sends 0 on every call and uses the answer as the
/// first page, so Xoxoday took it then.
pub fn page_from_zero(input: &Map<String, Value>, key: &str) -> Result<u64, PlumError> {
    match present(input, key) {
        None => Err(PlumError::validation(format!("{key} is required"))),
        Some(v) => whole(v).map(|n| n.max(1)).ok_or_else(|| PlumError::validation(format!("{key} must be an integer of at least 0"))),
    }
}

/// getVouchers' `limit`: required, an integer of at least 0, where 0 reads
/// as no limit (`None`). Xoxoday documents no meaning for 0; PHP scripts
/// send `'limit'=>'0','page'=>'0'` to production and print the catalogue
/// they get, so Xoxoday took it then, as every product is the reading here.
pub fn limit_from_zero(input: &Map<String, Value>, key: &str) -> Result<Option<u64>, PlumError> {
    match present(input, key) {
        None => Err(PlumError::validation(format!("{key} is required"))),
        Some(v) => whole(v).map(|n| (n > 0).then_some(n)).ok_or_else(|| PlumError::validation(format!("{key} must be an integer of at least 0"))),
    }
}

/// A required number above 0 (`denomination`).
pub fn positive_number(input: &Map<String, Value>, key: &str) -> Result<f64, PlumError> {
    present(input, key)
        .and_then(decimal)
        .filter(|d| *d > 0.0)
        .ok_or_else(|| PlumError::validation(format!("{key} is required and must be a positive number")))
}

/// A 0/1 flag. Absent or null: an error when `required` (GitBook stars the
/// field), else off.
pub fn flag(input: &Map<String, Value>, key: &str, required: bool) -> Result<bool, PlumError> {
    match present(input, key) {
        None if required => Err(PlumError::validation(format!("{key} is required (0 or 1)"))),
        None => Ok(false),
        Some(v) => flag_value(v).ok_or_else(|| PlumError::validation(format!("{key} must be 0 or 1"))),
    }
}

/// A string field; absent or null → "". A number is refused like any other
/// form: xoxoday-api.md types these fields "string" and nowhere says a
/// number is taken for one. (The `text_numbers` reading turns numbers into
/// their text before the readers see them: [`numbers_as_text`].)
pub fn text(input: &Map<String, Value>, key: &str) -> Result<String, PlumError> {
    match present(input, key) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(PlumError::validation(format!("{key} must be a string"))),
    }
}

/// `input` with a JSON number in each field `op` reads as text ([`text`],
/// and getVouchers' text filters' values) written as its text: the
/// `text_numbers` reading, which takes `"tag": 12` for `"tag": "12"`.
/// Nothing else changes.
pub fn numbers_as_text(op: &str, input: &Map<String, Value>) -> Map<String, Value> {
    let mut out = input.clone();
    let as_text = |v: &mut Value| {
        if let Value::Number(n) = v {
            *v = Value::String(n.to_string());
        }
    };
    for key in text_fields(op) {
        if let Some(v) = out.get_mut(key) {
            as_text(v);
        }
    }
    if op == "getVouchers" {
        if let Some(Value::Array(filters)) = out.get_mut("filters") {
            for f in filters.iter_mut().filter_map(Value::as_object_mut) {
                let text_key = matches!(f.get("key"), Some(Value::String(k)) if crate::catalog::TEXT_FILTER_KEYS.contains(&k.as_str()));
                if let (true, Some(v)) = (text_key, f.get_mut("value")) {
                    as_text(v);
                }
            }
        }
    }
    out
}

/// The top-level fields each operation reads with [`text`].
fn text_fields(op: &str) -> Vec<&'static str> {
    match op {
        "getFilters" => vec!["filterGroupCode", "includeFilters", "excludeFilters"],
        "getVouchers" => vec!["includeProducts", "excludeProducts", "categoryType", "categoryTypes"],
        "placeOrder" => ["poNumber", "email", "contact", "tag"].into_iter().chain(crate::orders::SHIPPING_FIELDS).collect(),
        "getOrderDetails" => vec!["poNumber"],
        "getOrderHistory" => vec!["tag"],
        _ => Vec::new(),
    }
}

/// An optional object field; an empty array is PHP's empty object.
pub fn object<'a>(input: &'a Map<String, Value>, key: &str) -> Result<Option<&'a Map<String, Value>>, PlumError> {
    match present(input, key) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(Value::Array(a)) if a.is_empty() => Ok(None),
        Some(_) => Err(PlumError::validation(format!("{key} must be an object"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_take_numbers_and_numeric_strings_only() {
        assert_eq!(whole(&json!(3)), Some(3));
        assert_eq!(whole(&json!("7")), Some(7));
        assert_eq!(whole(&json!("007")), Some(7));
        assert_eq!(whole(&json!(2.0)), Some(2));
        for bad in [json!(2.5), json!(-1), json!(" 7"), json!("7 "), json!("+7"), json!("-7"), json!("7.0"),
                    json!("1e3"), json!(""), json!(true), json!(null), json!([7])] {
            assert_eq!(whole(&bad), None, "{bad}");
        }
        assert_eq!(decimal(&json!("25.5")), Some(25.5));
        assert_eq!(decimal(&json!("25")), Some(25.0));
        assert_eq!(decimal(&json!(25.5)), Some(25.5));
        for bad in [json!("NaN"), json!("inf"), json!(" 25"), json!("-25"), json!("2.5e1"), json!(".5"), json!("5."),
                    json!("1,5"), json!(true), json!([])] {
            assert_eq!(decimal(&bad), None, "{bad}");
        }
        assert_eq!(flag_value(&json!("1")), Some(true));
        assert_eq!(flag_value(&json!(0)), Some(false));
        assert_eq!(flag_value(&json!(1.0)), Some(true));
        for bad in [json!(true), json!(false), json!(2), json!("yes"), json!("01"), json!(null)] {
            assert_eq!(flag_value(&bad), None, "{bad}");
        }
        assert_eq!(money(25_000_000), json!(250000));
        assert_eq!(money(1050), json!(10.5));
    }

    #[test]
    fn field_readers() {
        let m = json!({"n": "5", "z": 0, "bad": "x", "nul": null, "f": "1", "t": 12, "o": [], "oo": [1]});
        let m = m.as_object().unwrap();
        assert_eq!(count(m, "n", None), Ok(5));
        assert_eq!(count(m, "nul", Some(10)), Ok(10));
        assert_eq!(count(m, "absent", Some(1)), Ok(1));
        assert_eq!(count(m, "absent", None).unwrap_err().error, "absent is required");
        assert_eq!(count(m, "z", None).unwrap_err().error_id, "PLE10001");
        assert!(count(m, "bad", None).is_err());
        assert_eq!(positive_number(m, "n"), Ok(5.0));
        assert!(positive_number(m, "z").is_err());
        assert_eq!(flag(m, "f", true), Ok(true));
        assert_eq!(flag(m, "absent", false), Ok(false));
        assert!(flag(m, "absent", true).is_err());
        assert!(flag(m, "nul", true).is_err());
        assert!(flag(m, "t", false).is_err());
        assert_eq!(text(m, "n"), Ok("5".into()));
        assert_eq!(text(m, "t").unwrap_err().error, "t must be a string", "a number is not a string");
        assert_eq!(text(m, "z").unwrap_err().error_id, "PLE10001");
        assert_eq!(text(m, "nul"), Ok(String::new()));
        assert!(text(m, "o").is_err());
        assert_eq!(object(m, "o"), Ok(None));
        assert!(object(m, "oo").is_err());
        assert!(object(m, "t").is_err());
    }

    /// The `text_numbers` reading: numbers in the operation's text fields
    /// and text filters become their text; numbers elsewhere (counts,
    /// amounts, prices, unknown filters, other operations' fields) and
    /// other forms stay as they are, for the readers to judge.
    #[test]
    fn numbers_as_text_touches_text_fields_only() {
        let m = |v: Value| v.as_object().unwrap().clone();
        let order = m(json!({"productId": 10100, "quantity": 1, "denomination": 10, "poNumber": 42, "tag": 12,
                             "email": 7, "contact": 1.5, "shippingPostcode": 94105, "orderId": 3, "userMeta": [1]}));
        assert_eq!(Value::Object(numbers_as_text("placeOrder", &order)),
                   json!({"productId": 10100, "quantity": 1, "denomination": 10, "poNumber": "42", "tag": "12",
                          "email": "7", "contact": "1.5", "shippingPostcode": "94105", "orderId": 3, "userMeta": [1]}));
        let vouchers = m(json!({"limit": 10, "page": 1, "includeProducts": 10100, "excludeProducts": true, "filters": [
            {"key": "productName", "value": 7}, {"key": "maxPrice", "value": 100}, {"key": "other", "value": 3}, {"key": 5, "value": 5}, 9]}));
        assert_eq!(Value::Object(numbers_as_text("getVouchers", &vouchers)),
                   json!({"limit": 10, "page": 1, "includeProducts": "10100", "excludeProducts": true, "filters": [
                       {"key": "productName", "value": "7"}, {"key": "maxPrice", "value": 100}, {"key": "other", "value": 3}, {"key": 5, "value": 5}, 9]}));
        assert_eq!(Value::Object(numbers_as_text("getFilters", &m(json!({"filterGroupCode": 1, "includeFilters": 2, "excludeFilters": null})))),
                   json!({"filterGroupCode": "1", "includeFilters": "2", "excludeFilters": null}));
        assert_eq!(Value::Object(numbers_as_text("getOrderDetails", &m(json!({"poNumber": 42, "orderId": 0})))),
                   json!({"poNumber": "42", "orderId": 0}));
        assert_eq!(Value::Object(numbers_as_text("getOrderHistory", &m(json!({"tag": 1, "limit": 2})))), json!({"tag": "1", "limit": 2}));
        let report = m(json!({"tag": 1, "limit": 2}));
        assert_eq!(numbers_as_text("paymentHistory", &report), report);
    }
}
