//! Errors made by plumgate itself (contract §3) and their wire form.
//!
//! Upstream answers, success or error, are passed through unchanged and
//! never come through here. Every message is a fixed or composed sentence
//! that names fields and variables, never values: nothing in an error body
//! may carry a token, secret, key or voucher code.

use serde_json::{json, Value};

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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
