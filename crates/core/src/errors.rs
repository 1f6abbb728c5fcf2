//! Errors made by plumgate itself (contract §3) and their wire forms.
//!
//! Upstream answers, success or error, are passed through unchanged and
//! never come through here. Every message is a fixed or composed sentence
//! that names fields and variables, never values: nothing in an error body
//! may carry a token, secret, key or voucher code.
//!
//! One error has two wire forms ([`ErrorStyle`]), chosen by the route:
//! - plumgate's own routes (`/v1/...`) answer contract §3's
//!   `{"error": {"code", "message", "request_id"}}`;
//! - the drop-in base (`/chef/...`), where unchanged Xoxoday clients call,
//!   answers in Xoxoday's Plum API error shape, which those clients parse:
//!   `{"code": <HTTP status>, "errorId": "PLUMGATE_<CODE>", "errorInfo",
//!   "error", "request_id"}`. A rate-limit penalty also carries Xoxoday's
//!   rate-limit shape, `"errors": [{"message": "auth.request_limit_exceeded",
//!   "penaltySeconds": n}]`, so a client that backs off on Xoxoday's
//!   penalty backs off on plumgate's too.

use crate::jsontext::Object;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Which wire form an error takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorStyle {
    /// Contract §3: `{"error": {"code", "message", "request_id"}}`.
    #[default]
    Plumgate,
    /// Xoxoday's Plum API error shape (plus `request_id`).
    Xoxoday,
}

impl ErrorStyle {
    /// Is this Xoxoday's form? (How the order ledger is told, as a flag.)
    pub fn is_xoxoday(self) -> bool {
        self == ErrorStyle::Xoxoday
    }

    /// The form for a request path: Xoxoday's under `/chef`, plumgate's
    /// everywhere else.
    pub fn for_path(path: &str) -> ErrorStyle {
        if path == "/chef" || path.starts_with("/chef/") {
            ErrorStyle::Xoxoday
        } else {
            ErrorStyle::Plumgate
        }
    }
}

/// The message of Xoxoday's rate-limit answer.
pub const RATE_LIMIT_MESSAGE: &str = "auth.request_limit_exceeded";

/// Every code plumgate answers with (contract §3 and its additions).
pub const CODES: [&str; 17] = [
    "invalid_json",
    "invalid_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "unknown_operation",
    "method_not_allowed",
    "idempotency_conflict",
    "payload_too_large",
    "rate_limited",
    "upstream_error",
    "upstream_unauthorized",
    "reauth_required",
    "credentials_rejected",
    "misconfigured",
    "upstream_timeout",
    "internal_error",
];

/// One error answer: status, code and a human sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Machine code from contract §3.
    pub code: &'static str,
    /// Human sentence.
    pub message: String,
    /// Seconds for `Retry-After`, when the caller should come back later.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after_secs: None }
    }

    /// Set `Retry-After`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// 400 `invalid_json`.
    pub fn invalid_json() -> Self {
        Self::new(400, "invalid_json", "the request body is not valid JSON")
    }
    /// 400 `invalid_request` naming the field.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", message)
    }
    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "unauthorized", message)
    }
    /// 403 `forbidden` naming the missing scope.
    pub fn forbidden(scope: &str) -> Self {
        Self::new(403, "forbidden", format!("this key lacks the `{scope}` scope"))
    }
    /// 403 `forbidden` for a query plumgate does not know: only keys with
    /// the `*` scope may send one (unvalidated).
    pub fn forbidden_unvalidated() -> Self {
        Self::new(
            403,
            "forbidden",
            "plumgate does not know this operation; it forwards an unknown plumProAPI query (unvalidated) only for keys with the `*` scope, which this key lacks",
        )
    }
    /// 404 `not_found`.
    pub fn not_found() -> Self {
        Self::new(404, "not_found", "no such route")
    }
    /// 404 `unknown_operation`.
    pub fn unknown_operation() -> Self {
        Self::new(
            404,
            "unknown_operation",
            "unknown operation; expected one of getFilters, getVouchers, getBalance, placeOrder, getOrderDetails, getOrderHistory, paymentHistory",
        )
    }
    /// 405 `method_not_allowed`.
    pub fn method_not_allowed(allowed: &str) -> Self {
        Self::new(405, "method_not_allowed", format!("method not allowed; use {allowed}"))
    }
    /// 409 `idempotency_conflict`.
    pub fn idempotency_conflict() -> Self {
        Self::new(
            409,
            "idempotency_conflict",
            "this poNumber was already used with a different order body; use a new poNumber for a new order",
        )
    }
    /// 413 `payload_too_large`.
    pub fn payload_too_large() -> Self {
        Self::new(413, "payload_too_large", "request body is over 64 KiB")
    }
    /// 429 `rate_limited`.
    pub fn rate_limited(operation: &str, secs: u64) -> Self {
        Self::new(
            429,
            "rate_limited",
            format!("Xoxoday has put {operation} under a rate-limit penalty; retry after {secs} s"),
        )
        .retry_after(secs)
    }
    /// 429 `rate_limited` with a sentence of its own (a token-refresh
    /// penalty, the forced-refresh throttle).
    pub fn rate_limited_because(message: impl Into<String>, secs: u64) -> Self {
        Self::new(429, "rate_limited", message).retry_after(secs)
    }
    /// 502 `upstream_error`.
    pub fn upstream_error(message: impl Into<String>) -> Self {
        Self::new(502, "upstream_error", message)
    }
    /// 502 `upstream_unauthorized`.
    pub fn upstream_unauthorized() -> Self {
        Self::new(
            502,
            "upstream_unauthorized",
            "Xoxoday rejected the access token again after one refresh",
        )
    }
    /// 502 `upstream_unauthorized` with a sentence of its own.
    pub fn upstream_unauthorized_because(message: impl Into<String>) -> Self {
        Self::new(502, "upstream_unauthorized", message)
    }
    /// 503 `credentials_rejected`: Xoxoday blamed the client id or secret.
    pub fn credentials_rejected() -> Self {
        Self::new(
            503,
            "credentials_rejected",
            "Xoxoday rejected the client credentials: set the right XOXODAY_CLIENT_ID and XOXODAY_CLIENT_SECRET (Xoxoday dashboard, Settings → API → Reward API); plumgate tries again by itself once they change",
        )
    }
    /// 503 `reauth_required`.
    pub fn reauth_required() -> Self {
        Self::new(
            503,
            "reauth_required",
            "the Xoxoday refresh token is no longer valid: generate new tokens in the Xoxoday dashboard (Settings → API → Reward API) and set XOXODAY_REFRESH_TOKEN again",
        )
    }
    /// 503 `misconfigured`.
    pub fn misconfigured(problems: &[String]) -> Self {
        Self::new(503, "misconfigured", format!("plumgate is misconfigured: {}", problems.join("; ")))
    }
    /// 504 `upstream_timeout`.
    pub fn upstream_timeout(message: impl Into<String>) -> Self {
        Self::new(504, "upstream_timeout", message)
    }
    /// 500 `internal_error`: a bug; details go to the log, not the caller.
    pub fn internal() -> Self {
        Self::new(500, "internal_error", "internal error; the request id identifies it in the logs")
    }

    /// `{"error": {"code", "message", "request_id"}}`.
    pub fn body(&self, request_id: &str) -> Value {
        json!({"error": {"code": self.code, "message": self.message, "request_id": request_id}})
    }

    /// The body in `style`.
    pub fn body_in(&self, style: ErrorStyle, request_id: &str) -> Value {
        serde_json::from_str(&self.body_text(style, request_id)).unwrap_or_default()
    }

    /// The body in `style`, as the text sent: written straight from the
    /// fields (`jsontext`), the same JSON as [`ApiError::body`] and
    /// [`ApiError::xoxoday_body`].
    pub fn body_text(&self, style: ErrorStyle, request_id: &str) -> String {
        match style {
            ErrorStyle::Plumgate => {
                let inner = Object::new()
                    .str("code", self.code)
                    .str("message", &self.message)
                    .str("request_id", request_id)
                    .finish();
                Object::new().raw("error", &inner).finish()
            }
            ErrorStyle::Xoxoday => {
                let mut body = Object::new()
                    .num("code", self.status)
                    .str("errorId", &self.error_id())
                    .str("errorInfo", &format!("plumgate: {}", title(self.code)))
                    .str("error", &self.message)
                    .str("request_id", request_id);
                if let Some(secs) = self.retry_after_secs.filter(|_| self.status == 429) {
                    let penalty = Object::new().str("message", RATE_LIMIT_MESSAGE).num("penaltySeconds", secs).finish();
                    body = body.raw("errors", &format!("[{penalty}]"));
                }
                body.finish()
            }
        }
    }

    /// `PLUMGATE_` and the code in capitals, e.g. `PLUMGATE_RATE_LIMITED`:
    /// the `errorId` of the Xoxoday-shaped body. Xoxoday's own ids
    /// (`PIPE…`, `PLE…`) never start with it, so a client can tell who
    /// answered.
    pub fn error_id(&self) -> String {
        format!("PLUMGATE_{}", self.code.to_ascii_uppercase())
    }

    /// Xoxoday's Plum API error shape: `{"code": <status>, "errorId",
    /// "errorInfo": "plumgate: <title>", "error": <message>, "request_id"}`;
    /// a rate-limit penalty adds `"errors": [{"message":
    /// "auth.request_limit_exceeded", "penaltySeconds": n}]`.
    pub fn xoxoday_body(&self, request_id: &str) -> Value {
        let mut body = json!({
            "code": self.status,
            "errorId": self.error_id(),
            "errorInfo": format!("plumgate: {}", title(self.code)),
            "error": self.message,
            "request_id": request_id,
        });
        if let (Some(secs), Some(obj)) = (self.retry_after_secs.filter(|_| self.status == 429), body.as_object_mut()) {
            obj.insert(
                "errors".into(),
                json!([{"message": RATE_LIMIT_MESSAGE, "penaltySeconds": secs}]),
            );
        }
        body
    }
}

/// A short title for `errorInfo`, per code.
fn title(code: &str) -> &str {
    match code {
        "invalid_json" => "Invalid JSON",
        "invalid_request" => "Invalid request",
        "unauthorized" => "Invalid gateway key",
        "forbidden" => "Scope missing",
        "not_found" => "Not found",
        "unknown_operation" => "Unknown operation",
        "method_not_allowed" => "Method not allowed",
        "idempotency_conflict" => "poNumber already used for another order",
        "payload_too_large" => "Payload too large",
        "rate_limited" => "Rate limit penalty",
        "upstream_error" => "Upstream error",
        "upstream_unauthorized" => "Upstream rejected the token",
        "reauth_required" => "Xoxoday tokens must be generated again",
        "credentials_rejected" => "Xoxoday rejected the client credentials",
        "misconfigured" => "Misconfigured",
        "upstream_timeout" => "Upstream timeout",
        "internal_error" => "Internal error",
        other => other,
    }
}

/// An [`ApiError`] as it crosses from a Durable Object to the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// HTTP status.
    pub status: u16,
    /// One of [`CODES`].
    pub code: String,
    /// Human sentence.
    pub message: String,
    /// `Retry-After`.
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
}

impl From<&ApiError> for WireError {
    fn from(e: &ApiError) -> Self {
        WireError { status: e.status, code: e.code.to_string(), message: e.message.clone(), retry_after_secs: e.retry_after_secs }
    }
}

impl WireError {
    /// Back to the error; a code plumgate does not know (a newer Durable
    /// Object during a deploy) becomes `internal_error` with the same status.
    pub fn into_api_error(self) -> ApiError {
        let code = CODES.iter().copied().find(|c| *c == self.code).unwrap_or("internal_error");
        ApiError { status: self.status, code, message: self.message, retry_after_secs: self.retry_after_secs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_crosses_the_wire() {
        let all = [
            ApiError::invalid_json(),
            ApiError::invalid_request("x"),
            ApiError::unauthorized("x"),
            ApiError::forbidden("admin"),
            ApiError::not_found(),
            ApiError::unknown_operation(),
            ApiError::method_not_allowed("GET"),
            ApiError::idempotency_conflict(),
            ApiError::payload_too_large(),
            ApiError::rate_limited("getBalance", 3),
            ApiError::rate_limited_because("x", 4),
            ApiError::upstream_error("x"),
            ApiError::upstream_unauthorized(),
            ApiError::upstream_unauthorized_because("x"),
            ApiError::reauth_required(),
            ApiError::credentials_rejected(),
            ApiError::misconfigured(&["x".into()]),
            ApiError::upstream_timeout("x"),
            ApiError::internal(),
        ];
        for e in all {
            assert!(CODES.contains(&e.code), "{}", e.code);
            let text = serde_json::to_string(&WireError::from(&e)).unwrap();
            let back: WireError = serde_json::from_str(&text).unwrap();
            assert_eq!(back.into_api_error(), e);
        }
        let odd = WireError { status: 418, code: "teapot".into(), message: "m".into(), retry_after_secs: None };
        assert_eq!(odd.into_api_error().code, "internal_error");
    }

    #[test]
    fn body_shape() {
        let e = ApiError::forbidden("orders:write");
        assert_eq!(e.status, 403);
        assert_eq!(
            e.body("rid-1"),
            json!({"error":{"code":"forbidden","message":"this key lacks the `orders:write` scope","request_id":"rid-1"}})
        );
        let r = ApiError::rate_limited("getBalance", 42);
        assert_eq!((r.status, r.retry_after_secs), (429, Some(42)));
    }

    #[test]
    fn style_by_path() {
        for (path, style) in [
            ("/chef/v1/oauth/api", ErrorStyle::Xoxoday),
            ("/chef/v1/oauth/token/user", ErrorStyle::Xoxoday),
            ("/chef", ErrorStyle::Xoxoday),
            ("/chefs", ErrorStyle::Plumgate),
            ("/v1/ops/getBalance", ErrorStyle::Plumgate),
            ("/v1/chef/x", ErrorStyle::Plumgate),
            ("/", ErrorStyle::Plumgate),
        ] {
            assert_eq!(ErrorStyle::for_path(path), style, "{path}");
        }
    }

    #[test]
    fn xoxoday_shape() {
        let e = ApiError::invalid_request("data.quantity must be an integer of at least 1");
        assert_eq!(
            e.body_in(ErrorStyle::Xoxoday, "rid-2"),
            json!({"code": 400, "errorId": "PLUMGATE_INVALID_REQUEST", "errorInfo": "plumgate: Invalid request",
                   "error": "data.quantity must be an integer of at least 1", "request_id": "rid-2"})
        );
        assert_eq!(e.body_in(ErrorStyle::Plumgate, "rid-2"), e.body("rid-2"));
        // The text sent is the same JSON as the bodies, for every error.
        for e in [ApiError::invalid_request("x \"quoted\" é"), ApiError::rate_limited("getBalance", 9), ApiError::internal()] {
            for style in [ErrorStyle::Plumgate, ErrorStyle::Xoxoday] {
                let sent: Value = serde_json::from_str(&e.body_text(style, "r\"id")).unwrap();
                let want = match style {
                    ErrorStyle::Plumgate => e.body("r\"id"),
                    ErrorStyle::Xoxoday => e.xoxoday_body("r\"id"),
                };
                assert_eq!(sent, want, "{} {style:?}", e.code);
            }
        }
        // Every code has an id of its own and a title that is not the code.
        let all = [
            ApiError::invalid_json(),
            ApiError::invalid_request("m"),
            ApiError::unauthorized("m"),
            ApiError::forbidden("catalog"),
            ApiError::not_found(),
            ApiError::unknown_operation(),
            ApiError::method_not_allowed("POST"),
            ApiError::idempotency_conflict(),
            ApiError::payload_too_large(),
            ApiError::rate_limited("getBalance", 1),
            ApiError::upstream_error("m"),
            ApiError::upstream_unauthorized(),
            ApiError::reauth_required(),
            ApiError::credentials_rejected(),
            ApiError::misconfigured(&["X".into()]),
            ApiError::upstream_timeout("m"),
            ApiError::internal(),
        ];
        let mut ids = std::collections::BTreeSet::new();
        for e in &all {
            let b = e.xoxoday_body("r");
            assert_eq!(b["code"], e.status, "{}", e.code);
            assert_eq!(b["error"], e.message.as_str());
            assert_eq!(b["request_id"], "r");
            let id = b["errorId"].as_str().unwrap();
            assert!(id.starts_with("PLUMGATE_") && !id.contains(char::is_lowercase), "{id}");
            assert!(ids.insert(id.to_owned()), "{id} repeats");
            let info = b["errorInfo"].as_str().unwrap();
            assert!(info.starts_with("plumgate: ") && !info.ends_with(e.code), "{info}");
            assert_eq!(b.get("errors").is_some(), e.status == 429, "{}", e.code);
        }
    }

    #[test]
    fn penalty_in_xoxoday_shape() {
        let b = ApiError::rate_limited("placeOrder", 37).xoxoday_body("r");
        assert_eq!(b["errorId"], "PLUMGATE_RATE_LIMITED");
        assert_eq!(b["code"], 429);
        assert_eq!(b["errors"], json!([{"message": "auth.request_limit_exceeded", "penaltySeconds": 37}]));
        // Xoxoday's own reader of that shape finds the penalty in it.
        let text = b.to_string();
        assert_eq!(crate::upstream::rate_limit_penalty(429, text.as_bytes(), None), Some(37));
    }
}
