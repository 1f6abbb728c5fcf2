//! The upstream's error and success shapes, and lenient readers for input
//! fields. Owns: the Plum-style error `{code, errorId, errorInfo, error}`,
//! the OAuth-style error `{error, error_description}`, the rate-limit body
//! `{errors:[{message, penaltySeconds}]}`, money formatting, and coercion of
//! JSON values that real clients send either as numbers or as strings.

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

/// OAuth-style error body used by the token endpoints.
pub fn oauth_error(error: &str, description: &str) -> Value {
    json!({ "error": error, "error_description": description })
}

/// The per-minute rate-limit body.
pub fn rate_limit_body(penalty_seconds: u64) -> Value {
    json!({ "errors": [{ "message": "auth.request_limit_exceeded", "penaltySeconds": penalty_seconds }] })
}

/// A success envelope `{"data":{"<key>":{"status":1,"data":...}}}`.
pub fn success(key: &str, data: Value) -> Value {
    let mut inner = Map::new();
    inner.insert(key.to_owned(), json!({ "status": 1, "data": data }));
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

/// Non-negative integer from a number (integral) or a numeric string.
pub fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < 1.0e15)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
}

/// Finite float from a number or a numeric string.
pub fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|f| f.is_finite())
}

/// A string field, or a number rendered as a string; `None` for null/absent.
pub fn as_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Truthy flag: 1, "1", true.
pub fn as_flag(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(other) => as_u64(other) == Some(1),
        None => false,
    }
}

/// `limit`/`page` style positive integer. Absent → `default` (if given);
/// present but not a positive integer → validation error.
pub fn positive(
    input: &Map<String, Value>,
    key: &str,
    default: Option<u64>,
) -> Result<u64, PlumError> {
    match input.get(key) {
        None | Some(Value::Null) => {
            default.ok_or_else(|| PlumError::validation(format!("{key} is required")))
        }
        Some(v) => as_u64(v)
            .filter(|n| *n >= 1)
            .ok_or_else(|| PlumError::validation(format!("{key} must be a positive integer"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coercions() {
        assert_eq!(as_u64(&json!(3)), Some(3));
        assert_eq!(as_u64(&json!("7")), Some(7));
        assert_eq!(as_u64(&json!(2.0)), Some(2));
        assert_eq!(as_u64(&json!(2.5)), None);
        assert_eq!(as_u64(&json!(-1)), None);
        assert_eq!(as_f64(&json!("25.5")), Some(25.5));
        assert_eq!(as_f64(&json!("NaN")), None);
        assert!(as_flag(Some(&json!("1"))));
        assert!(!as_flag(Some(&json!(0))));
        assert_eq!(money(25_000_000), json!(250000));
        assert_eq!(money(1050), json!(10.5));
    }
}
