//! Reading Xoxoday's Plum API answers: which ones mean "your access token
//! was rejected" (refresh once and retry) and which ones are a rate-limit
//! penalty (stop calling that operation until it ends).
//!
//! Xoxoday has three error shapes (xoxoday-api.md §1.8, §3.9): OAuth
//! `{error, error_description}`, Plum `{code, errorId, errorInfo, error}` and
//! rate-limit `{errors: [{message, penaltySeconds}]}` (sometimes an object
//! instead of an array). The status of the rate-limit answer is undocumented,
//! so the body decides, whatever the status.

use serde_json::Value;

/// Plum 401s that a new token cannot fix: user or company disabled, IP not
/// whitelisted. Refreshing on these would only burn refresh calls.
const NOT_TOKEN_401: [&str; 3] = ["PIPE10015", "PIPE10016", "PIPE10017"];

/// Does this answer mean the access token itself was rejected?
pub fn is_token_rejection(status: u16, body: &[u8]) -> bool {
    if status != 401 {
        return false;
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return true;
    };
    if let Some(id) = v.get("errorId").and_then(Value::as_str) {
        return !NOT_TOKEN_401.contains(&id);
    }
    true
}

/// Default penalty when a rate-limit answer gives none.
pub const DEFAULT_PENALTY_SECS: u64 = 60;

/// If this answer is a rate-limit penalty, how many seconds it lasts.
pub fn rate_limit_penalty(status: u16, body: &[u8], retry_after_header: Option<&str>) -> Option<u64> {
    // Hot path: most answers are neither 429 nor mention the limit; don't
    // parse them here (a catalog page can be hundreds of KiB).
    if status != 429 && !contains(body, b"request_limit_exceeded") {
        return None;
    }
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let from_body = v.as_ref().and_then(|v| {
        let errors = v.get("errors")?;
        let list: Vec<&Value> = match errors {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        list.into_iter()
            .find(|e| {
                e.get("message").and_then(Value::as_str) == Some("auth.request_limit_exceeded")
            })
            .map(|e| {
                e.get("penaltySeconds")
                    .and_then(crate::token::lenient_i64)
                    .filter(|s| *s > 0)
                    .map(|s| s as u64)
                    .unwrap_or(DEFAULT_PENALTY_SECS)
            })
    });
    let top_message = v
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str)
        == Some("auth.request_limit_exceeded");
    let header = retry_after_header.and_then(|h| h.trim().parse::<u64>().ok()).filter(|s| *s > 0);
    if let Some(secs) = from_body {
        return Some(secs.min(86_400));
    }
    if status == 429 || top_message {
        return Some(header.unwrap_or(DEFAULT_PENALTY_SECS).min(86_400));
    }
    None
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rejections() {
        let plum = br#"{"code":401,"errorId":"PIPE10013","errorInfo":"Plum Pro APIs: Invalid authorization header","error":"x"}"#;
        assert!(is_token_rejection(401, plum));
        assert!(is_token_rejection(401, br#"{"error":"invalid_token","error_description":"invalid/expired token"}"#));
        assert!(is_token_rejection(401, b"<html>"));
        assert!(!is_token_rejection(401, br#"{"code":401,"errorId":"PIPE10017","errorInfo":"Access restricted for this IP"}"#));
        assert!(!is_token_rejection(403, plum));
        assert!(!is_token_rejection(200, b"{}"));
    }

    #[test]
    fn penalties() {
        let arr = br#"{"errors":[{"message":"auth.request_limit_exceeded","penaltySeconds":42}]}"#;
        assert_eq!(rate_limit_penalty(200, arr, None), Some(42));
        assert_eq!(rate_limit_penalty(429, arr, None), Some(42));
        let obj = br#"{"errors":{"message":"auth.request_limit_exceeded","penaltySeconds":"7"}}"#;
        assert_eq!(rate_limit_penalty(400, obj, None), Some(7));
        assert_eq!(rate_limit_penalty(429, b"", Some("15")), Some(15));
        assert_eq!(
            rate_limit_penalty(429, br#"{"code":429,"error":"rate_limit_exceeded"}"#, None),
            Some(DEFAULT_PENALTY_SECS)
        );
        assert_eq!(rate_limit_penalty(200, br#"{"message":"auth.request_limit_exceeded"}"#, None), Some(60));
        assert_eq!(rate_limit_penalty(200, br#"{"data":{}}"#, None), None);
        assert_eq!(rate_limit_penalty(500, b"oops", Some("5")), None);
    }
}
