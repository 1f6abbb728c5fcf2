//! Talking to Xoxoday's Plum API without I/O: the call itself
//! ([`api_request`]), and reading the answers: which 401s may be about the
//! access token (ask the token authority to check it) and which pass
//! straight through, which answers are a rate-limit penalty (stop calling
//! that operation until it ends; the one scan for Xoxoday's rate-limit
//! answer, also used on token endpoint answers), which are a success, and
//! the wallet balance a getBalance answer shows ([`balance_value`]), and
//! which are not JSON at all ([`unreadable_answer`]).
//!
//! Xoxoday has three error shapes (xoxoday-api.md §1.8, §3.9): OAuth
//! `{error, error_description}`, Plum `{code, errorId, errorInfo, error}` and
//! rate-limit `{errors: [{message, penaltySeconds}]}` (sometimes an object
//! instead of an array). The status of the rate-limit answer is undocumented,
//! so the body decides, whatever the status.

use crate::errors::ApiError;
use crate::http::HttpRequest;
use crate::lenient::{lenient_f64, lenient_i64};
use crate::secret::AccessToken;
use crate::text::contains;
use serde::Deserialize;
use serde_json::Value;

/// `POST {OAUTH_URL}/v1/oauth/api` with `body` (a Plum envelope) and
/// `token` as bearer.
pub fn api_request(api_url: String, token: &AccessToken, body: &str) -> HttpRequest {
    let token = token.expose_secret();
    let mut bearer = String::with_capacity(7 + token.len());
    bearer.push_str("Bearer ");
    bearer.push_str(token);
    HttpRequest {
        method: "POST",
        url: api_url,
        headers: vec![
            ("authorization", bearer),
            ("content-type", "application/json".into()),
            ("accept", "application/json".into()),
        ],
        body: Some(body.to_string()),
    }
}

/// What a Plum API answer says about the access token (contract §4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api401 {
    /// Nothing to do with the token: not a 401 and no token error named, or
    /// a rate-limit answer under any status (its penalty is the answer: a
    /// check and a retry would prolong it).
    NotUnauthorized,
    /// An answer that can be about the token: a 401 with `PIPE10013`
    /// ("Invalid authorization header"), the OAuth `invalid_token`, or no
    /// `errorId` at all (any OAuth error, an empty or non-JSON body); or a
    /// short answer of any other 2xx–4xx status whose body names the token
    /// ([`names_a_token_error`]: xoxoday-api.md §1.4 documents such bodies
    /// with unconfirmed statuses, and Xoxoday's advice is to refresh on any
    /// 4xx). Only these go to the token authority, which checks the token
    /// before anything is spent.
    TokenCandidate,
    /// A 401 with any other `errorId`: `PLE10019` (international orders not
    /// allowed), `PIPE10015`–`17` (user or company disabled, IP not
    /// whitelisted), and whatever Xoxoday adds. A new token cannot fix these;
    /// the caller gets Xoxoday's status and body unchanged and the authority
    /// is never asked (a caller must not be able to make plumgate rotate).
    PassThrough,
}

/// The one Plum `errorId` that is about the access token.
const TOKEN_ERROR_ID: &str = "PIPE10013";

/// Xoxoday's message id for tokens a Super Admin's password reset killed
/// (`{"success":0,"error_message_id":"auth.token_error"}`, xoxoday-api.md §1.4).
pub const TOKEN_ERROR_MESSAGE: &str = "auth.token_error";

/// Longest answer other than a 401 read for a token error: error bodies are
/// short, and a catalog page must cost the hot path nothing.
const TOKEN_ERROR_BODY_MAX: usize = 1024;

/// Does a body name a dead token in one of Xoxoday's documented ways:
/// `errorId` `PIPE10013`, the OAuth `invalid_token`, or `auth.token_error`
/// (as `error_message_id` or `message`)? Never with an `errorId` naming
/// another cause (`PIPE10017`, IP not whitelisted, with any other words).
pub fn names_a_token_error(v: &Value) -> bool {
    let names = |k: &str, what: &str| v.get(k).and_then(Value::as_str) == Some(what);
    if v.get("errorId").and_then(Value::as_str).is_some_and(|id| id != TOKEN_ERROR_ID) {
        return false;
    }
    names("errorId", TOKEN_ERROR_ID)
        || names("error", "invalid_token")
        || names("error_message_id", TOKEN_ERROR_MESSAGE)
        || names("message", TOKEN_ERROR_MESSAGE)
}

/// The words of Xoxoday's OAuth refusal of a request's authorization
/// header (xoxoday-api.md §1.8: `{"error": "invalid_request",
/// "error_description": "missing/invalid parameters authorization
/// header"}`, its status undocumented).
const HEADER_REFUSED: &str = "authorization header";

/// Is `v` Xoxoday's OAuth refusal of the authorization header? plumgate
/// always sends one, so from the Plum API, under any status, it can be
/// about the access token: a candidate ([`Api401::TokenCandidate`]), which
/// costs a token check; the check's own answers are read more strictly
/// (`token::check`: its verdict spends a refresh). Should the check refuse
/// the header too (something on the way strips it), its failures replace
/// the token after 10 minutes, as for a 401 header refusal.
fn refuses_the_header(v: &Value) -> bool {
    v.get("error").and_then(Value::as_str) == Some("invalid_request")
        && v.get("error_description").and_then(Value::as_str).is_some_and(|d| contains(d.as_bytes(), HEADER_REFUSED.as_bytes()))
}

/// Classify an answer of the Plum API (see [`Api401`]).
pub fn classify_api_401(status: u16, body: &[u8]) -> Api401 {
    if status != 401 {
        // Cheap first: most answers are long or name nothing of the kind.
        let short = (200..500).contains(&status) && body.len() <= TOKEN_ERROR_BODY_MAX;
        let named = short && (contains(body, b"token") || contains(body, TOKEN_ERROR_ID.as_bytes()) || contains(body, HEADER_REFUSED.as_bytes()));
        let token = named && !may_be_rate_limit(status, body) && serde_json::from_slice::<Value>(body).is_ok_and(|v| names_a_token_error(&v) || refuses_the_header(&v));
        return if token { Api401::TokenCandidate } else { Api401::NotUnauthorized };
    }
    if may_be_rate_limit(status, body) {
        return Api401::NotUnauthorized;
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Api401::TokenCandidate;
    };
    match v.get("errorId") {
        // An errorId that is not a string (a number, null) names nothing
        // plumgate knows: treat it like a missing one.
        Some(Value::String(id)) if id == TOKEN_ERROR_ID => Api401::TokenCandidate,
        Some(Value::String(_)) => Api401::PassThrough,
        _ => Api401::TokenCandidate,
    }
}

/// The message id of Xoxoday's rate-limit answer.
pub const RATE_LIMIT_MESSAGE: &str = "auth.request_limit_exceeded";

/// Default penalty when a rate-limit answer gives none.
pub const DEFAULT_PENALTY_SECS: u64 = 60;

/// Longest penalty plumgate believes (a day).
const MAX_PENALTY_SECS: u64 = 86_400;

/// Top-level keys whose value [`RATE_LIMIT_MESSAGE`] marks a Plum API
/// answer as the rate limit.
const API_NAMING_KEYS: &[&str] = &["message"];

/// The same for a token endpoint answer (refresh, token check), which also
/// names it as `error_message_id` or `error`.
pub const TOKEN_NAMING_KEYS: &[&str] = &["message", "error_message_id", "error"];

/// What a Plum API rate-limit answer says about how long to stay away
/// (how long plumgate then does is `limits::penalty_until`'s decision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Xoxoday named the penalty: `penaltySeconds` in the body, or a
    /// `Retry-After` header (seconds, at most a day).
    Stated(u64),
    /// A rate-limit answer that names no duration (an HTTP 429 without
    /// `Retry-After`, a bare `auth.request_limit_exceeded`).
    Unstated,
    /// A daily cap: the older getVouchers limit of 500 calls per 24 h,
    /// answered with HTTP 429 and no duration (xoxoday-api.md §3.9; not an
    /// HTML page, which is a proxy's), or any rate-limit answer that says
    /// "daily".
    Daily,
}

/// If this Plum API answer (to operation `op`) is Xoxoday's rate-limit
/// answer, what it says ([`Observed`]). Every shape counts: HTTP 429 (any
/// body), `errors` as an array or an object, a top-level `message` of
/// [`RATE_LIMIT_MESSAGE`] whatever the status. Without a stated duration, a
/// getVouchers 429 that is neither the per-minute answer
/// (`auth.request_limit_exceeded`) nor an HTML page, or any answer
/// mentioning "daily", is the daily cap.
pub fn api_penalty(op: &str, status: u16, body: &[u8], retry_after_header: Option<&str>) -> Option<Observed> {
    let (stated, per_minute) = scan_penalty(status, body, retry_after_header, API_NAMING_KEYS)?;
    if let Some(secs) = stated {
        return Some(Observed::Stated(secs.min(MAX_PENALTY_SECS)));
    }
    let daily = contains_ignoring_case(body, b"daily") || (op == DAILY_CAPPED_OP && status == 429 && !per_minute && !is_markup(body));
    Some(if daily { Observed::Daily } else { Observed::Unstated })
}

/// If the answer to a drop-in query plumgate does not know is Xoxoday's
/// rate-limit answer (any shape [`api_penalty`] reads), the penalty in
/// seconds to answer the caller with (the default when it names none). No
/// daily reading: no such cap is documented for an unknown operation.
pub fn unvalidated_penalty(status: u16, body: &[u8], retry_after_header: Option<&str>) -> Option<u64> {
    penalty_named_by(status, body, retry_after_header, API_NAMING_KEYS)
}

/// An HTML (or XML) page: a proxy's or a firewall's 429, not Xoxoday's,
/// whose cap answers in JSON or with no body. Read as the daily cap it
/// would stop getVouchers' misses until midnight; unstated, its penalty
/// doubles from a minute while it repeats.
fn is_markup(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<')
}

/// The one operation with a documented daily cap.
const DAILY_CAPPED_OP: &str = "getVouchers";

/// If this answer is Xoxoday's rate-limit answer, its penalty in seconds
/// (the default penalty when it names none). Every shape counts: HTTP 429
/// (any body; `Retry-After` or the default penalty), `errors` as an array
/// or an object with `penaltySeconds`, and a top-level key of
/// `naming_keys` whose value is [`RATE_LIMIT_MESSAGE`] (whatever the
/// status, 200 included). Used on the token endpoints' answers, and on
/// the Plum API's for a drop-in query plumgate does not know
/// ([`unvalidated_penalty`]).
pub fn penalty_named_by(status: u16, body: &[u8], retry_after_header: Option<&str>, naming_keys: &[&str]) -> Option<u64> {
    let (stated, _) = scan_penalty(status, body, retry_after_header, naming_keys)?;
    Some(stated.unwrap_or(DEFAULT_PENALTY_SECS).min(MAX_PENALTY_SECS))
}

/// Whether an answer can be a rate-limit answer at all: HTTP 429, or a
/// body that mentions `request_limit_exceeded`. Every reading of a
/// penalty starts here, and only such an answer needs its `Retry-After`
/// header, so the shell reads that header only when this is true.
///
/// Hot path: most answers are neither; they are not parsed (a catalog page
/// can be hundreds of KiB), only searched once.
pub fn may_be_rate_limit(status: u16, body: &[u8]) -> bool {
    status == 429 || contains(body, b"request_limit_exceeded")
}

/// The one scan for a rate-limit answer: `None` when it is not one; else
/// the duration it states (body first, then the header), and whether it is
/// Xoxoday's per-minute answer (it names [`RATE_LIMIT_MESSAGE`]).
fn scan_penalty(status: u16, body: &[u8], retry_after_header: Option<&str>, naming_keys: &[&str]) -> Option<(Option<u64>, bool)> {
    if !may_be_rate_limit(status, body) {
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
            .find(|e| e.get("message").and_then(Value::as_str) == Some(RATE_LIMIT_MESSAGE))
            .map(|e| e.get("penaltySeconds").and_then(lenient_i64).filter(|s| *s > 0).map(|s| s as u64))
    });
    let header = || retry_after_header.and_then(|h| h.trim().parse::<u64>().ok()).filter(|s| *s > 0);
    if let Some(secs) = from_body {
        return Some((secs.or_else(header), true));
    }
    let named = v.as_ref().is_some_and(|v| {
        naming_keys.iter().any(|k| v.get(*k).and_then(Value::as_str) == Some(RATE_LIMIT_MESSAGE))
    });
    if status == 429 || named {
        return Some((header(), named));
    }
    None
}

/// ASCII-case-insensitive substring search (`needle` in lower case); only
/// run on answers already known to be rate-limit answers.
fn contains_ignoring_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

/// Is this a successful Plum answer for the operation named `op`: HTTP 200
/// and `data.<op>.status == 1` (a number or a numeric string)?
///
/// Reads only that one field. Everything else in the body (a catalog page
/// can be hundreds of KiB) is skipped by the parser without being built into
/// a tree, which is most of the cost of a cache miss otherwise. A body that
/// is not JSON, or has no such field, is not a success.
pub fn is_plum_success(op: &str, status: u16, body: &[u8]) -> bool {
    plum_status(op, status, body) == Some(1)
}

/// Is this a 200 answer with Xoxoday's failure flag, `data.<op>.status` 0
/// ("1 for success and 0 for failure", xoxoday-api.md §3)?
pub fn is_plum_failure(op: &str, status: u16, body: &[u8]) -> bool {
    plum_status(op, status, body) == Some(0)
}

/// `data.<op>.status` of a 200 answer whose body is JSON throughout.
fn plum_status(op: &str, status: u16, body: &[u8]) -> Option<i64> {
    if status != 200 {
        return None;
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let found = serde::de::DeserializeSeed::deserialize(FieldPath { path: &["data", op, "status"] }, &mut de);
    let flag = found.ok().flatten().as_ref().and_then(lenient_i64);
    de.end().ok().and(flag)
}

/// The wallet balance in a successful getBalance answer,
/// `data.getBalance.data.value` (a number or a numeric string; Xoxoday
/// sends `{"points", "value", "currency"}`), read the way
/// [`is_plum_success`] reads its field: the rest of the body is skipped.
/// `None` for any other answer.
pub fn balance_value(status: u16, body: &[u8]) -> Option<f64> {
    if !is_plum_success("getBalance", status, body) {
        return None;
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let found = serde::de::DeserializeSeed::deserialize(FieldPath { path: &["data", "getBalance", "data", "value"] }, &mut de);
    found.ok().flatten().as_ref().and_then(lenient_f64)
}

/// `data.<op>.data` of a successful answer (Xoxoday's result: for
/// placeOrder, the order), read as [`is_plum_success`] reads the flag.
/// `None` for any other answer or when the field is missing.
pub fn plum_data(op: &str, status: u16, body: &[u8]) -> Option<Value> {
    if !is_plum_success(op, status, body) {
        return None;
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde::de::DeserializeSeed::deserialize(FieldPath { path: &["data", op, "data"] }, &mut de).ok().flatten()
}

/// Whether `body` is JSON text (any value; validated, not kept).
pub fn is_json(body: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

/// `502 upstream_error` for an answer whose body is not JSON, which
/// plumgate does not pass on as Xoxoday's (contract §2 passes on "Xoxoday's
/// status and JSON body unchanged"; §3 answers an "unreadable upstream
/// answer" with `upstream_error`). Xoxoday answers every call with JSON, so
/// such a body (an HTML page from a proxy or load balancer in front of it,
/// an empty or cut-off body) is not Xoxoday's answer, and a caller that
/// parses it would fail on it. `None` for a JSON body, whatever the status.
/// (Rate-limit answers are recognised before this, by status or by
/// words.) A status outside 200–599 is refused too, whatever the body: the
/// runtime cannot answer with it (its `Response` throws), so passed on it
/// became a bare 500 without `x-request-id`.
pub fn unreadable_answer(status: u16, body: &[u8]) -> Option<ApiError> {
    let what = if !(200..=599).contains(&status) {
        "a status outside 200-599"
    } else if is_json(body) {
        return None;
    } else if body.iter().all(u8::is_ascii_whitespace) {
        "an empty body"
    } else {
        "a body that is not JSON"
    };
    Some(ApiError::upstream_error(format!("Xoxoday answered HTTP {status} with {what}; nothing of it is passed on")))
}

/// Deserializes the value at `path` (object keys) and skips the rest;
/// `None` when the path does not exist or leads through a non-object.
struct FieldPath<'p> {
    path: &'p [&'p str],
}

impl<'de> serde::de::DeserializeSeed<'de> for FieldPath<'_> {
    type Value = Option<Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        match self.path.split_first() {
            None => Value::deserialize(d).map(Some),
            Some(_) => d.deserialize_any(self),
        }
    }
}

impl<'de> serde::de::Visitor<'de> for FieldPath<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (head, rest) = self.path.split_first().expect("visited with a non-empty path");
        // A repeated key: the last one counts, as when parsing into a tree.
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == *head {
                found = map.next_value_seed(FieldPath { path: rest })?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious implementation `is_plum_success` must agree with.
    fn reference(op: &str, status: u16, body: &[u8]) -> bool {
        if status != 200 {
            return false;
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else { return false };
        let inner = v.get("data").and_then(|d| d.get(op));
        inner.and_then(|i| i.get("status")).and_then(lenient_i64) == Some(1)
    }

    /// The shell reads `Retry-After` only where this says yes, so every
    /// answer a penalty reading looks at must pass it: a 429 (whatever the
    /// body) and the limit message under any status.
    #[test]
    fn only_a_possible_rate_limit_answer_needs_its_retry_after() {
        let limit = br#"{"error":"auth.request_limit_exceeded"}"#;
        for (status, body, want) in [
            (429, &b""[..], true),
            (429, &b"{}"[..], true),
            (200, &limit[..], true),
            (400, &limit[..], true),
            (200, &br#"{"data":{"getOrderHistory":{"status":1}}}"#[..], false),
            (503, &b"upstream down"[..], false),
        ] {
            assert_eq!(may_be_rate_limit(status, body), want, "{status} {:?}", String::from_utf8_lossy(body));
            // And a penalty is read only from such an answer, header or not.
            if !want {
                assert_eq!(api_penalty("getVouchers", status, body, Some("30")), None);
                assert_eq!(penalty_named_by(status, body, Some("30"), TOKEN_NAMING_KEYS), None);
            }
        }
        assert_eq!(api_penalty("getOrderHistory", 429, b"", Some("30")), Some(Observed::Stated(30)));
    }

    #[test]
    fn the_balance_of_a_successful_get_balance_answer() {
        let cases: &[(u16, &str, Option<f64>)] = &[
            (200, r#"{"data":{"getBalance":{"status":1,"data":{"points":950,"value":950,"currency":"USD"}}}}"#, Some(950.0)),
            (200, r#"{"data":{"getBalance":{"data":{"value":"1250.75","currency":"INR"},"status":"1"}}}"#, Some(1250.75)),
            (200, r#"{"data":{"getBalance":{"status":1,"data":{"value":0.5}}}}"#, Some(0.5)),
            (200, r#"{"data":{"getBalance":{"status":0,"data":{"value":950}}}}"#, None),
            (502, r#"{"data":{"getBalance":{"status":1,"data":{"value":950}}}}"#, None),
            (200, r#"{"data":{"getBalance":{"status":1,"data":{"currency":"USD"}}}}"#, None),
            (200, r#"{"data":{"getBalance":{"status":1,"data":{"value":"lots"}}}}"#, None),
            (200, r#"{"data":{"getBalance":{"status":1,"data":[950]}}}"#, None),
            (200, r#"{"data":{"getVouchers":{"status":1,"data":{"value":950}}}}"#, None),
            (200, "not json", None),
        ];
        for (status, body, want) in cases {
            assert_eq!(balance_value(*status, body.as_bytes()), *want, "{status} {body}");
        }
    }

    #[test]
    fn plum_success_reads_only_data_op_status() {
        let big: String = (0..2000).map(|i| format!(r#"{{"productId":{i},"name":"card \"{i}\"","status":1}},"#)).collect();
        let cases: Vec<(&str, u16, String, bool)> = vec![
            ("getVouchers", 200, r#"{"data":{"getVouchers":{"status":1,"data":[]}}}"#.into(), true),
            ("getVouchers", 200, r#"{"data":{"getVouchers":{"data":[],"status":"1"}}}"#.into(), true),
            ("getVouchers", 200, format!(r#"{{"data":{{"getVouchers":{{"data":[{}{{}}],"status":1}}}}}}"#, big), true),
            ("getVouchers", 200, r#"{"data":{"getVouchers":{"status":0}}}"#.into(), false),
            ("getVouchers", 201, r#"{"data":{"getVouchers":{"status":1}}}"#.into(), false),
            ("getVouchers", 200, r#"{"data":{"getFilters":{"status":1}}}"#.into(), false),
            ("getVouchers", 200, r#"{"data":{"getVouchers":[{"status":1}]}}"#.into(), false),
            ("getVouchers", 200, r#"{"data":[{"getVouchers":{"status":1}}]}"#.into(), false),
            ("getVouchers", 200, r#"{"getVouchers":{"status":1}}"#.into(), false),
            ("getVouchers", 200, r#"{"data":null}"#.into(), false),
            ("getVouchers", 200, r#"{"data":{"getVouchers":{"status":true}}}"#.into(), false),
            ("getVouchers", 200, r#"{"data":{"getVouchers":{"status":1.0}}}"#.into(), true),
            ("getVouchers", 200, r#"{"data":{"getVouchers":{"status":1}}}"#.into(), true),
            ("getVouchers", 200, r#"{"errors":[{"message":"x"}],"data":{"getVouchers":{"status":1}}}"#.into(), true),
            ("getVouchers", 200, r#"{"data":{"getVouchers":{"status":1}}} trailing"#.into(), false),
            ("getVouchers", 200, r#"{"data":{"getVouchers":{"status":1}"#.into(), false),
            ("getVouchers", 200, "".into(), false),
            ("getVouchers", 200, "[1,2,3]".into(), false),
            ("getVouchers", 200, "1".into(), false),
            ("getVouchers", 200, r#""data""#.into(), false),
            ("placeOrder", 200, r#"{"data":{"placeOrder":{"status":1,"data":{"orderId":7}}}}"#.into(), true),
            ("getVouchers", 200, r#"{"data":{"getVouchers":{"status":1}},"data":{"getVouchers":{"status":0}}}"#.into(), false),
            ("getVouchers", 200, r#"{"data":{"getVouchers":{"status":0,"status":1}}}"#.into(), true),
        ];
        for (op, status, body, want) in &cases {
            assert_eq!(is_plum_success(op, *status, body.as_bytes()), *want, "{op} {status} {}", &body[..body.len().min(80)]);
            assert_eq!(reference(op, *status, body.as_bytes()), *want, "reference disagrees on {}", &body[..body.len().min(80)]);
        }
    }

    #[test]
    fn api_401s_are_classified() {
        use Api401::*;
        let cases: &[(u16, &str, Api401)] = &[
            (401, r#"{"code":401,"errorId":"PIPE10013","errorInfo":"Plum Pro APIs: Invalid authorization header","error":"x"}"#, TokenCandidate),
            (401, r#"{"error":"invalid_token","error_description":"invalid/expired token"}"#, TokenCandidate),
            (401, r#"{"error":"invalid_request","error_description":"missing/invalid parameters authorization header"}"#, TokenCandidate),
            (401, r#"{"error":"Unauthorized"}"#, TokenCandidate),
            (401, "", TokenCandidate),
            (401, "<html>401</html>", TokenCandidate),
            (401, r#"{"errorId":null}"#, TokenCandidate),
            (401, r#"{"errorId":13}"#, TokenCandidate),
            (401, r#"{"code":401,"errorId":"PLE10019","errorInfo":"International orders not allowed"}"#, PassThrough),
            (401, r#"{"code":401,"errorId":"PIPE10015","errorInfo":"Plum Pro APIs: User is disabled"}"#, PassThrough),
            (401, r#"{"code":401,"errorId":"PIPE10016","errorInfo":"Plum Pro APIs: Company is disabled"}"#, PassThrough),
            (401, r#"{"code":401,"errorId":"PIPE10017","errorInfo":"Access restricted for this IP"}"#, PassThrough),
            (401, r#"{"code":401,"errorId":"PIPE99999","error":"invalid_token"}"#, PassThrough),
            // A rate-limit answer under 401 is the rate limit's.
            (401, r#"{"message":"auth.request_limit_exceeded"}"#, NotUnauthorized),
            (401, r#"{"errors":[{"message":"auth.request_limit_exceeded","penaltySeconds":30}]}"#, NotUnauthorized),
            // Other statuses: only a short body that names the token.
            (403, r#"{"errorId":"PIPE10013"}"#, TokenCandidate),
            (200, r#"{"success":0,"error_message_id":"auth.token_error"}"#, TokenCandidate),
            (400, r#"{"success":0,"error_message_id":"auth.token_error"}"#, TokenCandidate),
            (400, r#"{"message":"auth.token_error"}"#, TokenCandidate),
            (403, r#"{"error":"invalid_token","error_description":"invalid/expired token"}"#, TokenCandidate),
            (403, r#"{"error":"access_denied","error_description":"no token here"}"#, NotUnauthorized),
            // The OAuth refusal of the authorization header (xoxoday-api.md §1.8), its status undocumented.
            (400, r#"{"error":"invalid_request","error_description":"missing/invalid parameters authorization header"}"#, TokenCandidate),
            (403, r#"{"error":"invalid_request","error_description":"missing/invalid parameters authorization header"}"#, TokenCandidate),
            (400, r#"{"error":"invalid_request","error_description":"missing/invalid parameters"}"#, NotUnauthorized),
            (400, r#"{"error":"invalid_grant","error_description":"bad authorization header"}"#, NotUnauthorized),
            (403, r#"{"code":403,"errorId":"PIPE10017","error":"invalid_token"}"#, NotUnauthorized),
            (400, r#"{"code":400,"errorId":"PLE10011","error":"invalid_token"}"#, NotUnauthorized),
            (400, r#"{"code":400,"errorId":"PLE10001","errorInfo":"Validation error","error":"token"}"#, NotUnauthorized),
            (429, r#"{"error":"invalid_token","message":"auth.request_limit_exceeded"}"#, NotUnauthorized),
            (500, r#"{"error":"invalid_token"}"#, NotUnauthorized),
            (200, r#"{"data":{"getBalance":{"status":1,"data":[{"value":5,"token":"invalid_token"}]}}}"#, NotUnauthorized),
            (200, "{}", NotUnauthorized),
            (500, "", NotUnauthorized),
        ];
        for (status, body, want) in cases {
            assert_eq!(classify_api_401(*status, body.as_bytes()), *want, "{status} {body}");
        }
        // A long answer is never read for one (a catalog page).
        let long = format!(r#"{{"error":"invalid_token","pad":"{}"}}"#, "x".repeat(1100));
        assert_eq!(classify_api_401(200, long.as_bytes()), NotUnauthorized);
        assert_eq!(classify_api_401(401, long.as_bytes()), TokenCandidate);
        // Read up to TOKEN_ERROR_BODY_MAX (1,024 bytes) and not a byte more.
        let sized = |len: usize| format!(r#"{{"error":"invalid_token","pad":"{}"}}"#, "x".repeat(len - 34));
        assert_eq!(sized(1024).len(), 1024);
        assert_eq!(classify_api_401(403, sized(1024).as_bytes()), TokenCandidate, "1,024 bytes are read");
        assert_eq!(classify_api_401(403, sized(1025).as_bytes()), NotUnauthorized, "1,025 are not");
    }

    #[test]
    fn penalties() {
        use Observed::*;
        let p = |status, body: &[u8], header| api_penalty("getOrderHistory", status, body, header);
        let arr = br#"{"errors":[{"message":"auth.request_limit_exceeded","penaltySeconds":42}]}"#;
        assert_eq!(p(200, arr, None), Some(Stated(42)));
        assert_eq!(p(429, arr, None), Some(Stated(42)));
        let obj = br#"{"errors":{"message":"auth.request_limit_exceeded","penaltySeconds":"7"}}"#;
        assert_eq!(p(400, obj, None), Some(Stated(7)));
        assert_eq!(p(429, b"", Some("15")), Some(Stated(15)));
        assert_eq!(p(429, br#"{"code":429,"error":"rate_limit_exceeded"}"#, None), Some(Unstated));
        assert_eq!(p(429, b"", Some("soon")), Some(Unstated), "an unreadable Retry-After states nothing");
        assert_eq!(p(429, b"", Some(" 15 ")), Some(Stated(15)), "spaces around a Retry-After are not part of it");
        assert_eq!(p(200, br#"{"message":"auth.request_limit_exceeded"}"#, None), Some(Unstated));
        let no_secs = br#"{"errors":[{"message":"auth.request_limit_exceeded"}]}"#;
        assert_eq!(p(200, no_secs, Some("9")), Some(Stated(9)), "the header when the body names no duration");
        assert_eq!(p(200, no_secs, None), Some(Unstated));
        // A zero states nothing (a 1 s penalty would have every isolate
        // call into a live one each second): the unstated reading, and a
        // zero in the body leaves the header to speak.
        let zero = br#"{"errors":[{"message":"auth.request_limit_exceeded","penaltySeconds":0}]}"#;
        assert_eq!(p(429, zero, None), Some(Unstated));
        assert_eq!(p(429, zero, Some("9")), Some(Stated(9)));
        assert_eq!(p(429, b"", Some("0")), Some(Unstated));
        assert_eq!(p(200, no_secs, Some("0")), Some(Unstated));
        assert_eq!(p(200, br#"{"data":{}}"#, None), None);
        assert_eq!(p(500, b"oops", Some("5")), None);
        // A Plum API answer names the limit only as `message`; a token
        // endpoint answer also as `error_message_id` or `error`.
        let id = br#"{"success":0,"error_message_id":"auth.request_limit_exceeded"}"#;
        assert_eq!(p(200, id, None), None);
        assert_eq!(penalty_named_by(200, id, Some("12"), TOKEN_NAMING_KEYS), Some(12));
        assert_eq!(penalty_named_by(400, br#"{"error":"auth.request_limit_exceeded"}"#, None, TOKEN_NAMING_KEYS), Some(60));
        assert_eq!(penalty_named_by(429, b"", None, TOKEN_NAMING_KEYS), Some(DEFAULT_PENALTY_SECS));
        assert_eq!(p(429, b"", Some("999999")), Some(Stated(86_400)), "at most a day");
        assert_eq!(penalty_named_by(429, b"", Some("999999"), TOKEN_NAMING_KEYS), Some(86_400));
    }

    #[test]
    fn an_unknown_querys_rate_limit_answer_is_a_penalty() {
        let u = unvalidated_penalty;
        // Every shape an operation's answer is read in, whatever the status.
        assert_eq!(u(429, b"", None), Some(DEFAULT_PENALTY_SECS), "an empty 429");
        assert_eq!(u(429, b"<html>Too Many Requests</html>", Some("7")), Some(7), "a proxy's page, its Retry-After");
        assert_eq!(u(200, br#"{"errors":[{"message":"auth.request_limit_exceeded","penaltySeconds":30}]}"#, None), Some(30));
        assert_eq!(u(401, br#"{"errors":{"message":"auth.request_limit_exceeded","penaltySeconds":45}}"#, None), Some(45));
        assert_eq!(u(200, br#"{"message":"auth.request_limit_exceeded"}"#, None), Some(DEFAULT_PENALTY_SECS));
        assert_eq!(u(429, b"", Some("999999")), Some(86_400), "at most a day");
        // No daily reading, and the other answers pass through.
        assert_eq!(u(429, br#"{"message":"daily limit reached"}"#, None), Some(DEFAULT_PENALTY_SECS));
        assert_eq!(u(200, br#"{"data":{"someNewOperation":{"status":1}}}"#, Some("5")), None);
        assert_eq!(u(400, br#"{"code":400,"errorId":"PLE10001","errorInfo":"Invalid query"}"#, None), None);
        assert_eq!(u(200, br#"{"success":0,"error_message_id":"auth.request_limit_exceeded"}"#, None), None, "a token endpoint's naming only");
    }

    #[test]
    fn the_daily_cap_is_told_apart() {
        use Observed::*;
        // The documented daily answer (xoxoday-api.md §3.9), no Retry-After.
        let daily = br#"{"code":429,"error":"rate_limit_exceeded","message":"Daily request limit of 500 reached for getVouchers API."}"#;
        assert_eq!(api_penalty("getVouchers", 429, daily, None), Some(Daily));
        // "daily" anywhere marks the daily cap, for any operation.
        assert_eq!(api_penalty("getFilters", 429, daily, None), Some(Daily));
        // A bare 429 to getVouchers: not the per-minute answer, so the older daily cap.
        assert_eq!(api_penalty("getVouchers", 429, b"", None), Some(Daily));
        assert_eq!(api_penalty("getBalance", 429, b"", None), Some(Unstated));
        // A proxy's or firewall's HTML 429 is not Xoxoday's cap: unstated,
        // unless it says "daily".
        assert_eq!(api_penalty("getVouchers", 429, b"\r\n <html><body>Too Many Requests</body></html>", None), Some(Unstated));
        assert_eq!(api_penalty("getVouchers", 429, b"<?xml version=\"1.0\"?><Error/>", None), Some(Unstated));
        assert_eq!(api_penalty("getVouchers", 429, b"<p>daily quota</p>", None), Some(Daily));
        assert_eq!(api_penalty("getVouchers", 429, b"Too Many Requests", None), Some(Daily), "plain text: may be the cap's");
        // The per-minute answer to getVouchers stays per-minute.
        let minute = br#"{"errors":[{"message":"auth.request_limit_exceeded"}]}"#;
        assert_eq!(api_penalty("getVouchers", 429, minute, None), Some(Unstated));
        assert_eq!(api_penalty("getVouchers", 429, br#"{"message":"auth.request_limit_exceeded"}"#, None), Some(Unstated));
        // A stated duration always wins.
        assert_eq!(api_penalty("getVouchers", 429, daily, Some("30")), Some(Stated(30)));
        assert!(contains_ignoring_case(b"A DAILY cap", b"daily"));
        assert!(!contains_ignoring_case(b"dail", b"daily"));
    }

    /// The Plum API call as xoxoday-api.md §2 documents it: `POST` to the
    /// one endpoint, `Authorization: Bearer <access_token>` and
    /// `Content-Type: application/json` (both required), and the examples'
    /// `Accept: application/json`; the envelope as given.
    #[test]
    fn the_api_request_is_the_documented_call() {
        let r = api_request("https://x.example/chef/v1/oauth/api".into(), &AccessToken::new("at-1"), r#"{"query":"q"}"#);
        assert_eq!((r.method, r.url.as_str(), r.body.as_deref()), ("POST", "https://x.example/chef/v1/oauth/api", Some(r#"{"query":"q"}"#)));
        let headers: Vec<(&str, &str)> = r.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(headers, [("authorization", "Bearer at-1"), ("content-type", "application/json"), ("accept", "application/json")]);
    }

    #[test]
    fn only_json_answers_are_passed_on() {
        use crate::errors::ErrorCode;
        for body in [&br#"{"data":{"getOrderHistory":{"status":1,"data":[]}}}"#[..], b" {\"code\":400,\"errorId\":\"PLE10001\"} \n", b"[]", b"0"] {
            assert!(is_json(body));
            assert_eq!(unreadable_answer(200, body), None);
            assert_eq!(unreadable_answer(400, body), None);
            assert_eq!(unreadable_answer(599, body), None);
        }
        let page = b"<html><body>502 Bad Gateway</body></html>";
        for (status, body, says) in [
            (200, &page[..], "HTTP 200 with a body that is not JSON"),
            (502, &page[..], "HTTP 502 with a body that is not JSON"),
            (200, b"", "HTTP 200 with an empty body"),
            (204, b" \r\n", "HTTP 204 with an empty body"),
            (200, br#"{"data":{"getOrderHistory":{"status":1"#, "with a body that is not JSON"),
            (200, br#"{"a":1} trailing"#, "with a body that is not JSON"),
            (600, br#"{"code":600}"#, "HTTP 600 with a status outside 200-599"),
            (999, b"{}", "HTTP 999 with a status outside 200-599"),
            (199, b"{}", "HTTP 199 with a status outside 200-599"),
        ] {
            let e = unreadable_answer(status, body).expect("refused");
            assert_eq!((e.status, e.code), (502, ErrorCode::UpstreamError));
            assert!(e.message.contains(says), "{}", e.message);
            assert!(!e.message.contains("Bad Gateway"), "nothing of the body is quoted");
        }
    }
}
