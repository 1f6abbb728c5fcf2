//! The one JSON log line per request (contract §7).
//!
//! Only the fields listed here ever reach the log: no headers, bodies,
//! tokens, keys, voucher codes or PINs, because there is no field for them.

use crate::time::rfc3339;
use serde_json::json;

/// What is logged about one request.
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    /// Start time (epoch ms).
    pub start_ms: i64,
    /// Request id (also sent as `x-request-id`).
    pub request_id: String,
    /// HTTP method.
    pub method: String,
    /// Route pattern, e.g. `/v1/ops/{operation}` (never the raw path).
    pub route: &'static str,
    /// Operation name when the route has one.
    pub operation: Option<&'static str>,
    /// Caller key id when authenticated.
    pub caller: Option<String>,
    /// Status answered.
    pub status: u16,
    /// Status Xoxoday answered, when called.
    pub upstream_status: Option<u16>,
    /// `hit`, `miss` or `bypass` for cacheable operations.
    pub cache: Option<&'static str>,
    /// plumgate's error code, when it made the error.
    pub error: Option<&'static str>,
    /// Extra markers: `replayed`, `reconciled`, `token_replaced`.
    pub note: Option<&'static str>,
    /// Where the access token came from: `memory`, `kv` or `authority`.
    pub token: Option<&'static str>,
}

impl RequestLog {
    /// The log line, given the end time.
    pub fn line(&self, end_ms: i64) -> String {
        json!({
            "time": rfc3339(self.start_ms),
            "level": if self.status >= 500 { "error" } else if self.status >= 400 { "warn" } else { "info" },
            "request_id": self.request_id,
            "method": self.method,
            "route": self.route,
            "operation": self.operation,
            "caller": self.caller,
            "status": self.status,
            "upstream_status": self.upstream_status,
            "cache": self.cache,
            "error": self.error,
            "note": self.note,
            "token": self.token,
            "duration_ms": (end_ms - self.start_ms).max(0),
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_the_contract_fields() {
        let l = RequestLog {
            start_ms: 1_795_626_582_000,
            request_id: "r1".into(),
            method: "POST".into(),
            route: "/v1/ops/{operation}",
            operation: Some("getBalance"),
            caller: Some("billing-fn".into()),
            status: 200,
            upstream_status: Some(200),
            cache: Some("miss"),
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::from_str(&l.line(1_795_626_582_012)).unwrap();
        assert_eq!(v["time"], "2026-11-25T17:09:42.000Z");
        assert_eq!(v["duration_ms"], 12);
        assert_eq!(v["operation"], "getBalance");
        assert_eq!(v["caller"], "billing-fn");
        assert_eq!(v["cache"], "miss");
        assert_eq!(v["level"], "info");
    }
}
