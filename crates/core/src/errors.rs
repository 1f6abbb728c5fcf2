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
#[cfg(test)]
use serde::{Deserialize, Deserializer};
use serde::{Serialize, Serializer};
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

use crate::http::NoAnswer;
use crate::upstream::RATE_LIMIT_MESSAGE;

/// Every code plumgate answers with (contract §3, §8 and the issues since).
/// The wire name of each is [`ErrorCode::as_str`]; nothing else spells a
/// code, so a code cannot be misspelt in one place and matched in another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 400: the body is not JSON.
    InvalidJson,
    /// 400: a field breaks the operation's rules.
    InvalidRequest,
    /// 401: missing, malformed or unknown gateway key.
    Unauthorized,
    /// 403: the key lacks the scope.
    Forbidden,
    /// 404: no such route.
    NotFound,
    /// 404: no such operation.
    UnknownOperation,
    /// 405.
    MethodNotAllowed,
    /// 409: a `poNumber` reused with another order body.
    IdempotencyConflict,
    /// 409: placeOrder's fate is not known yet (plumgate is reconciling it).
    OrderInProgress,
    /// 413: body over 64 KiB.
    PayloadTooLarge,
    /// 429: a Xoxoday penalty (or a throttled forced refresh).
    RateLimited,
    /// 429: the caller key's own limit (`requests_per_minute`,
    /// `order_amount_per_day`).
    QuotaExceeded,
    /// 502: transport failure or unreadable upstream answer.
    UpstreamError,
    /// 502: upstream still rejects the token.
    UpstreamUnauthorized,
    /// 503: the refresh token is dead.
    ReauthRequired,
    /// 503: Xoxoday rejects the client id/secret.
    CredentialsRejected,
    /// 503: configuration problems.
    Misconfigured,
    /// 504.
    UpstreamTimeout,
    /// 500: a bug.
    InternalError,
}

impl ErrorCode {
    /// Every code, in contract order.
    pub const ALL: [ErrorCode; 19] = [
        ErrorCode::InvalidJson,
        ErrorCode::InvalidRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::UnknownOperation,
        ErrorCode::MethodNotAllowed,
        ErrorCode::IdempotencyConflict,
        ErrorCode::OrderInProgress,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::QuotaExceeded,
        ErrorCode::UpstreamError,
        ErrorCode::UpstreamUnauthorized,
        ErrorCode::ReauthRequired,
        ErrorCode::CredentialsRejected,
        ErrorCode::Misconfigured,
        ErrorCode::UpstreamTimeout,
        ErrorCode::InternalError,
    ];

    /// The code as the contract spells it (`"rate_limited"`).
    pub fn as_str(self) -> &'static str {
        self.names().0
    }

    /// The `errorId` of the Xoxoday-shaped body: `PLUMGATE_` and the code
    /// in capitals (`PLUMGATE_RATE_LIMITED`). Xoxoday's own ids (`PIPE…`,
    /// `PLE…`) never start with it, so a client can tell who answered.
    pub fn error_id(self) -> &'static str {
        self.names().1
    }

    /// A short title for the Xoxoday-shaped body's `errorInfo`.
    pub fn title(self) -> &'static str {
        self.names().2
    }

    /// The code named `name`, if plumgate knows it.
    pub fn from_name(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Code, errorId and title, in one table.
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            ErrorCode::InvalidJson => ("invalid_json", "PLUMGATE_INVALID_JSON", "Invalid JSON"),
            ErrorCode::InvalidRequest => ("invalid_request", "PLUMGATE_INVALID_REQUEST", "Invalid request"),
            ErrorCode::Unauthorized => ("unauthorized", "PLUMGATE_UNAUTHORIZED", "Invalid gateway key"),
            ErrorCode::Forbidden => ("forbidden", "PLUMGATE_FORBIDDEN", "Scope missing"),
            ErrorCode::NotFound => ("not_found", "PLUMGATE_NOT_FOUND", "Not found"),
            ErrorCode::UnknownOperation => ("unknown_operation", "PLUMGATE_UNKNOWN_OPERATION", "Unknown operation"),
            ErrorCode::MethodNotAllowed => ("method_not_allowed", "PLUMGATE_METHOD_NOT_ALLOWED", "Method not allowed"),
            ErrorCode::IdempotencyConflict => {
                ("idempotency_conflict", "PLUMGATE_IDEMPOTENCY_CONFLICT", "poNumber already used for another order")
            }
            ErrorCode::OrderInProgress => {
                ("order_in_progress", "PLUMGATE_ORDER_IN_PROGRESS", "The order's fate is not known yet")
            }
            ErrorCode::PayloadTooLarge => ("payload_too_large", "PLUMGATE_PAYLOAD_TOO_LARGE", "Payload too large"),
            ErrorCode::RateLimited => ("rate_limited", "PLUMGATE_RATE_LIMITED", "Rate limit penalty"),
            ErrorCode::QuotaExceeded => ("quota_exceeded", "PLUMGATE_QUOTA_EXCEEDED", "Key limit reached"),
            ErrorCode::UpstreamError => ("upstream_error", "PLUMGATE_UPSTREAM_ERROR", "Upstream error"),
            ErrorCode::UpstreamUnauthorized => {
                ("upstream_unauthorized", "PLUMGATE_UPSTREAM_UNAUTHORIZED", "Upstream rejected the token")
            }
            ErrorCode::ReauthRequired => {
                ("reauth_required", "PLUMGATE_REAUTH_REQUIRED", "Xoxoday tokens must be generated again")
            }
            ErrorCode::CredentialsRejected => {
                ("credentials_rejected", "PLUMGATE_CREDENTIALS_REJECTED", "Xoxoday rejected the client credentials")
            }
            ErrorCode::Misconfigured => ("misconfigured", "PLUMGATE_MISCONFIGURED", "Misconfigured"),
            ErrorCode::UpstreamTimeout => ("upstream_timeout", "PLUMGATE_UPSTREAM_TIMEOUT", "Upstream timeout"),
            ErrorCode::InternalError => ("internal_error", "PLUMGATE_INTERNAL_ERROR", "Internal error"),
        }
    }
}

// On the wire (between a Durable Object and the worker) a code is its
// contract name. A name this version does not know (a newer Durable Object
// during a deploy) reads as `internal_error`; the status and message it
// came with are kept.
impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(ErrorCode::from_name(&name).unwrap_or(ErrorCode::InternalError))
    }
}

/// One error answer: status, code and a human sentence. Crosses from a
/// Durable Object to the worker as itself (`{"status", "code", "message",
/// "retry_after_secs"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Machine code from contract §3.
    pub code: ErrorCode,
    /// Human sentence.
    pub message: String,
    /// Seconds for `Retry-After`, when the caller should come back later.
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    fn new(status: u16, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after_secs: None }
    }

    /// Set `Retry-After`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// 400 `invalid_json`.
    pub fn invalid_json() -> Self {
        Self::new(400, ErrorCode::InvalidJson, "the request body is not valid JSON")
    }
    /// 400 `invalid_request` naming the field.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(400, ErrorCode::InvalidRequest, message)
    }
    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, ErrorCode::Unauthorized, message)
    }
    /// 403 `forbidden` naming the missing scope.
    pub fn forbidden(scope: &str) -> Self {
        Self::new(403, ErrorCode::Forbidden, format!("this key lacks the `{scope}` scope"))
    }
    /// 403 `forbidden` for a query plumgate does not know: only keys with
    /// the `*` scope may send one (unvalidated).
    pub fn forbidden_unvalidated() -> Self {
        Self::new(
            403,
            ErrorCode::Forbidden,
            "an unknown plumProAPI query is forwarded (unvalidated) only for keys with the `*` scope, which this key lacks",
        )
    }
    /// 404 `not_found`.
    pub fn not_found() -> Self {
        Self::new(404, ErrorCode::NotFound, "no such route")
    }
    /// 404 `unknown_operation`.
    pub fn unknown_operation() -> Self {
        Self::new(
            404,
            ErrorCode::UnknownOperation,
            "unknown operation; expected one of getFilters, getVouchers, getBalance, placeOrder, getOrderDetails, getOrderHistory, paymentHistory",
        )
    }
    /// 404 `unknown_operation` on the drop-in route, which names an
    /// operation by its whole query, not by the name `/v1/ops/` takes.
    pub fn unknown_query() -> Self {
        Self::new(
            404,
            ErrorCode::UnknownOperation,
            "unknown query; expected plumProAPI.<query or mutation>.<operation>, such as plumProAPI.query.getBalance or plumProAPI.mutation.placeOrder",
        )
    }
    /// 405 `method_not_allowed`.
    pub fn method_not_allowed(allowed: &str) -> Self {
        Self::new(405, ErrorCode::MethodNotAllowed, format!("method not allowed; use {allowed}"))
    }
    /// 409 `idempotency_conflict`.
    pub fn idempotency_conflict() -> Self {
        Self::new(
            409,
            ErrorCode::IdempotencyConflict,
            "this poNumber was already used with a different order body; use a new poNumber for a new order",
        )
    }
    /// 409 `idempotency_conflict`: Xoxoday already holds another order
    /// (another product, quantity or denomination) under this poNumber.
    pub fn idempotency_conflict_upstream() -> Self {
        Self::new(
            409,
            ErrorCode::IdempotencyConflict,
            "Xoxoday already holds a different order under this poNumber, so this one was not placed; use a new poNumber for a new order",
        )
    }
    /// 409 `order_in_progress`: the order's fate is not known yet
    /// (`message` says why); the same poNumber and body again after `secs`.
    pub fn order_in_progress(message: impl Into<String>, secs: u64) -> Self {
        Self::new(409, ErrorCode::OrderInProgress, message).retry_after(secs)
    }
    /// 413 `payload_too_large`.
    pub fn payload_too_large() -> Self {
        Self::new(413, ErrorCode::PayloadTooLarge, "request body is over 64 KiB")
    }
    /// 429 `rate_limited`.
    pub fn rate_limited(operation: &str, secs: u64) -> Self {
        Self::new(
            429,
            ErrorCode::RateLimited,
            format!("Xoxoday has put {operation} under a rate-limit penalty; retry after {secs} s"),
        )
        .retry_after(secs)
    }
    /// 429 `rate_limited` with a sentence of its own (a token-refresh
    /// penalty, the forced-refresh throttle).
    pub fn rate_limited_because(message: impl Into<String>, secs: u64) -> Self {
        Self::new(429, ErrorCode::RateLimited, message).retry_after(secs)
    }
    /// 429 `quota_exceeded` without `Retry-After`: no wait makes room (an
    /// order larger than the key's whole daily cap).
    pub fn quota_exceeded_for_good(message: impl Into<String>) -> Self {
        Self::new(429, ErrorCode::QuotaExceeded, message)
    }
    /// 429 `quota_exceeded`: the caller key's own limit; `message` names
    /// the limit.
    pub fn quota_exceeded(message: impl Into<String>, secs: u64) -> Self {
        Self::new(429, ErrorCode::QuotaExceeded, message).retry_after(secs)
    }
    /// 502 `upstream_error`.
    pub fn upstream_error(message: impl Into<String>) -> Self {
        Self::new(502, ErrorCode::UpstreamError, message)
    }
    /// 502 `upstream_unauthorized`.
    pub fn upstream_unauthorized() -> Self {
        Self::new(
            502,
            ErrorCode::UpstreamUnauthorized,
            "Xoxoday rejected the access token again after one refresh",
        )
    }
    /// 502 `upstream_unauthorized` with a sentence of its own.
    pub fn upstream_unauthorized_because(message: impl Into<String>) -> Self {
        Self::new(502, ErrorCode::UpstreamUnauthorized, message)
    }
    /// 503 `credentials_rejected`: Xoxoday blamed the client id or secret.
    pub fn credentials_rejected() -> Self {
        Self::new(
            503,
            ErrorCode::CredentialsRejected,
            "Xoxoday rejected the client credentials: set the right XOXODAY_CLIENT_ID and XOXODAY_CLIENT_SECRET (Xoxoday dashboard, Settings → API → Reward API); plumgate retries once they change",
        )
    }
    /// 503 `reauth_required`.
    pub fn reauth_required() -> Self {
        Self::new(
            503,
            ErrorCode::ReauthRequired,
            "the Xoxoday refresh token is no longer valid: generate new tokens in the Xoxoday dashboard (Settings → API → Reward API) and set XOXODAY_REFRESH_TOKEN again",
        )
    }
    /// 503 `misconfigured`.
    pub fn misconfigured(problems: &[String]) -> Self {
        Self::new(503, ErrorCode::Misconfigured, format!("plumgate is misconfigured: {}", problems.join("; ")))
    }
    /// 504 `upstream_timeout`.
    pub fn upstream_timeout(message: impl Into<String>) -> Self {
        Self::new(504, ErrorCode::UpstreamTimeout, message)
    }
    /// 500 `internal_error`: a bug; details go to the log, not the caller.
    pub fn internal() -> Self {
        Self::new(500, ErrorCode::InternalError, "internal error; the request id identifies it in the logs")
    }

    /// An error as it crosses from a Durable Object (its serde form), read
    /// from a JSON tree (`crate::stored`'s rules, held to the derive's by
    /// a test): a code this version does not know is `internal_error`.
    /// `None` for anything but an object with a status, a code and a
    /// message.
    pub fn from_value(v: &Value) -> Option<ApiError> {
        crate::stored::object(v, ApiError::from_fields)
    }

    pub(crate) fn from_fields(o: &crate::stored::Fields) -> Option<ApiError> {
        use crate::stored::{count, get, need, opt, status, text};
        let code = |v: &Value| v.as_str().map(|name| ErrorCode::from_name(name).unwrap_or(ErrorCode::InternalError));
        Some(ApiError {
            status: need(o, "status", status)?,
            code: need(o, "code", code)?,
            message: need(o, "message", text)?,
            retry_after_secs: get(o, "retry_after_secs", |v| opt(v, count)).ok()?,
        })
    }

    /// `{"error": {"code", "message", "request_id"}}`.
    pub fn body(&self, request_id: &str) -> Value {
        json!({"error": {"code": self.code.as_str(), "message": self.message, "request_id": request_id}})
    }

    /// The body in `style`.
    pub fn body_in(&self, style: ErrorStyle, request_id: &str) -> Value {
        crate::jsontext::from_text(&self.body_text(style, request_id)).unwrap_or_default()
    }

    /// The body in `style`, as the text sent: written straight from the
    /// fields (`jsontext`), the same JSON as [`ApiError::body`] and
    /// [`ApiError::xoxoday_body`].
    pub fn body_text(&self, style: ErrorStyle, request_id: &str) -> String {
        match style {
            ErrorStyle::Plumgate => {
                let inner = Object::new()
                    .str("code", self.code.as_str())
                    .str("message", &self.message)
                    .str("request_id", request_id)
                    .finish();
                Object::new().raw("error", &inner).finish()
            }
            ErrorStyle::Xoxoday => {
                let mut body = Object::new()
                    .num("code", self.status)
                    .str("errorId", self.code.error_id())
                    .str("errorInfo", &format!("plumgate: {}", self.code.title()))
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

    /// Xoxoday's Plum API error shape: `{"code": <status>, "errorId",
    /// "errorInfo": "plumgate: <title>", "error": <message>, "request_id"}`;
    /// a rate-limit penalty adds `"errors": [{"message":
    /// "auth.request_limit_exceeded", "penaltySeconds": n}]`.
    pub fn xoxoday_body(&self, request_id: &str) -> Value {
        let mut body = json!({
            "code": self.status,
            "errorId": self.code.error_id(),
            "errorInfo": format!("plumgate: {}", self.code.title()),
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

/// Why a Plum API call gave the caller no answer from Xoxoday.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No answer within the timeout (ms).
    Timeout(u64),
    /// Transport failure.
    Transport,
    /// Token problems (reauth, authority down, rejected twice): nothing
    /// was executed upstream.
    Api(ApiError),
}

impl CallError {
    /// A call that got no answer within `timeout_ms`, or none at all.
    pub fn without_answer(why: NoAnswer, timeout_ms: u64) -> CallError {
        match why {
            NoAnswer::Timeout => CallError::Timeout(timeout_ms),
            NoAnswer::Transport => CallError::Transport,
        }
    }

    /// The caller-facing error.
    pub fn into_api(self) -> ApiError {
        match self {
            CallError::Timeout(ms) => ApiError::upstream_timeout(format!("Xoxoday did not answer within {ms} ms")),
            CallError::Transport => ApiError::upstream_error("no answer from Xoxoday (transport error)"),
            CallError::Api(e) => e,
        }
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
            ApiError::idempotency_conflict_upstream(),
            ApiError::order_in_progress("x", 5),
            ApiError::payload_too_large(),
            ApiError::rate_limited("getBalance", 3),
            ApiError::rate_limited_because("x", 4),
            ApiError::quota_exceeded("x", 5),
            ApiError::upstream_error("x"),
            ApiError::upstream_unauthorized(),
            ApiError::upstream_unauthorized_because("x"),
            ApiError::reauth_required(),
            ApiError::credentials_rejected(),
            ApiError::misconfigured(&["x".into()]),
            ApiError::upstream_timeout("x"),
            ApiError::internal(),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for e in all {
            seen.insert(e.code.as_str());
            let text = serde_json::to_string(&e).unwrap();
            let back: ApiError = serde_json::from_str(&text).unwrap();
            assert_eq!(back, e);
            assert_eq!(ApiError::from_value(&serde_json::from_str(&text).unwrap()), Some(e), "read from a tree too");
        }
        assert_eq!(ApiError::from_value(&json!({"status": 429})), None, "no message");
        assert_eq!(ApiError::from_value(&json!({"status": 418, "code": "teapot", "message": "m"})).unwrap().code, ErrorCode::InternalError);
        assert_eq!(seen.len(), ErrorCode::ALL.len(), "every code has a constructor");
        // A code this version does not know (a newer Durable Object during
        // a deploy) keeps its status and message as `internal_error`.
        let odd: ApiError = serde_json::from_str(r#"{"status":418,"code":"teapot","message":"m"}"#).unwrap();
        assert_eq!((odd.status, odd.code, odd.message.as_str(), odd.retry_after_secs), (418, ErrorCode::InternalError, "m", None));
    }

    #[test]
    fn the_reader_agrees_with_serdes_derive() {
        use crate::stored::agree;
        let full = json!({"status": 429, "code": "rate_limited", "message": "m", "retry_after_secs": 3});
        let read = |b: &[u8]| crate::stored::parse(b, ApiError::from_fields);
        let (read, refused) = agree::check::<ApiError>(&agree::texts(&full, &[]), read);
        assert!(read > 15 && refused > 70, "{read} read, {refused} refused");
    }

    /// The wire form is pinned: a change to it is a change to this test.
    #[test]
    fn wire_json_is_pinned() {
        let e = ApiError::rate_limited("getBalance", 3);
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"status":429,"code":"rate_limited","message":"Xoxoday has put getBalance under a rate-limit penalty; retry after 3 s","retry_after_secs":3}"#
        );
        assert_eq!(
            serde_json::to_string(&ApiError::not_found()).unwrap(),
            r#"{"status":404,"code":"not_found","message":"no such route","retry_after_secs":null}"#
        );
    }

    /// Every code's three names, as the contract and Xoxoday-shaped bodies
    /// spell them.
    #[test]
    fn code_names_are_the_contract_s() {
        let names: Vec<(&str, &str)> = ErrorCode::ALL.iter().map(|c| (c.as_str(), c.error_id())).collect();
        assert_eq!(
            names,
            [
                ("invalid_json", "PLUMGATE_INVALID_JSON"),
                ("invalid_request", "PLUMGATE_INVALID_REQUEST"),
                ("unauthorized", "PLUMGATE_UNAUTHORIZED"),
                ("forbidden", "PLUMGATE_FORBIDDEN"),
                ("not_found", "PLUMGATE_NOT_FOUND"),
                ("unknown_operation", "PLUMGATE_UNKNOWN_OPERATION"),
                ("method_not_allowed", "PLUMGATE_METHOD_NOT_ALLOWED"),
                ("idempotency_conflict", "PLUMGATE_IDEMPOTENCY_CONFLICT"),
                ("order_in_progress", "PLUMGATE_ORDER_IN_PROGRESS"),
                ("payload_too_large", "PLUMGATE_PAYLOAD_TOO_LARGE"),
                ("rate_limited", "PLUMGATE_RATE_LIMITED"),
                ("quota_exceeded", "PLUMGATE_QUOTA_EXCEEDED"),
                ("upstream_error", "PLUMGATE_UPSTREAM_ERROR"),
                ("upstream_unauthorized", "PLUMGATE_UPSTREAM_UNAUTHORIZED"),
                ("reauth_required", "PLUMGATE_REAUTH_REQUIRED"),
                ("credentials_rejected", "PLUMGATE_CREDENTIALS_REJECTED"),
                ("misconfigured", "PLUMGATE_MISCONFIGURED"),
                ("upstream_timeout", "PLUMGATE_UPSTREAM_TIMEOUT"),
                ("internal_error", "PLUMGATE_INTERNAL_ERROR"),
            ]
        );
        for c in ErrorCode::ALL {
            assert_eq!(c.error_id(), format!("PLUMGATE_{}", c.as_str().to_ascii_uppercase()));
            assert_eq!(ErrorCode::from_name(c.as_str()), Some(c));
            assert_ne!(c.title(), c.as_str());
        }
        assert_eq!(ErrorCode::from_name("teapot"), None);
    }

    #[test]
    fn a_call_without_an_answer() {
        let t = CallError::without_answer(NoAnswer::Timeout, 30_000);
        assert_eq!(t, CallError::Timeout(30_000));
        let e = t.into_api();
        assert_eq!((e.status, e.code, e.message.as_str()), (504, ErrorCode::UpstreamTimeout, "Xoxoday did not answer within 30000 ms"));
        let e = CallError::without_answer(NoAnswer::Transport, 1).into_api();
        assert_eq!((e.status, e.code), (502, ErrorCode::UpstreamError));
        assert_eq!(CallError::Api(ApiError::reauth_required()).into_api(), ApiError::reauth_required());
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
                assert_eq!(sent, want, "{:?} {style:?}", e.code);
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
            ApiError::order_in_progress("m", 3),
            ApiError::payload_too_large(),
            ApiError::rate_limited("getBalance", 1),
            ApiError::quota_exceeded("m", 1),
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
            assert_eq!(b["code"], e.status, "{:?}", e.code);
            assert_eq!(b["error"], e.message.as_str());
            assert_eq!(b["request_id"], "r");
            let id = b["errorId"].as_str().unwrap();
            assert!(id.starts_with("PLUMGATE_") && !id.contains(char::is_lowercase), "{id}");
            assert!(ids.insert(id.to_owned()), "{id} repeats");
            let info = b["errorInfo"].as_str().unwrap();
            assert!(info.starts_with("plumgate: ") && !info.ends_with(e.code.as_str()), "{info}");
            assert_eq!(b.get("errors").is_some(), e.status == 429, "{:?}", e.code);
        }
    }

    /// The text sent in Xoxoday's shape is `xoxoday_body` for errors with a
    /// `Retry-After` too: only a 429 carries the rate-limit shape, not a 409
    /// `order_in_progress` (a client would read it as a penalty).
    #[test]
    fn only_a_429_is_sent_with_the_penalty_shape() {
        for e in [ApiError::order_in_progress("m", 5), ApiError::quota_exceeded("m", 7), ApiError::rate_limited_because("m", 9)] {
            let sent: Value = serde_json::from_str(&e.body_text(ErrorStyle::Xoxoday, "r")).unwrap();
            assert_eq!(sent, e.xoxoday_body("r"), "{:?}", e.code);
            assert_eq!(sent.get("errors").is_some(), e.status == 429, "{:?}", e.code);
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
        assert_eq!(
            crate::upstream::api_penalty("placeOrder", 429, text.as_bytes(), None),
            Some(crate::upstream::Observed::Stated(37))
        );
    }
}
