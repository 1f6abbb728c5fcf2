//! The token endpoints on the wire: building the refresh and token-check
//! requests and reading their answers leniently (contract §4.9).
//!
//! A refresh answer that carries an access token is never discarded, even
//! when its other fields are odd; a missing `refresh_token` keeps the old
//! one. One carrying a new pair is a success whatever its HTTP status.
//! What each kind of failure means for the run is [`RefreshOutcome`]; what
//! the run then does is `token::run`.

use super::{TokenPolicy, DEFAULT_ACCESS_TTL_MS};
use crate::http::{HttpAnswer, HttpRequest, NoAnswer};
use crate::lenient::{access_expiry_ms, epoch_ms};
use crate::secret::{AccessToken, ClientId, ClientSecret, RefreshToken};
use crate::upstream::{penalty_named_by, RATE_LIMIT_MESSAGE, TOKEN_NAMING_KEYS};
use serde_json::{json, Value};

/// `POST {OAUTH_URL}/v1/oauth/token/user` with the JSON refresh grant.
pub fn build_refresh_request(
    refresh_url: &str,
    client_id: &ClientId,
    client_secret: &ClientSecret,
    refresh_token: &RefreshToken,
) -> HttpRequest {
    let body = json!({
        "grant_type": "refresh_token",
        "refresh_token": refresh_token.expose_secret(),
        "client_id": client_id.expose_secret(),
        "client_secret": client_secret.expose_secret(),
    });
    HttpRequest {
        method: "POST",
        url: refresh_url.to_string(),
        headers: vec![
            ("content-type", "application/json".into()),
            ("accept", "application/json".into()),
        ],
        body: Some(crate::jsontext::to_text(&body)),
    }
}

/// `GET {OAUTH_URL}/v1/oauth/token` with the access token as bearer.
pub fn build_validate_request(validate_url: &str, access: &AccessToken) -> HttpRequest {
    HttpRequest {
        method: "GET",
        url: validate_url.to_string(),
        headers: vec![
            ("authorization", format!("Bearer {}", access.expose_secret())),
            ("accept", "application/json".into()),
        ],
        body: None,
    }
}

/// A successful token answer, normalised.
#[derive(Debug, Clone)]
pub struct TokenAnswer {
    /// New access token.
    pub access_token: AccessToken,
    /// Its expiry (epoch ms).
    pub access_expires_at_ms: i64,
    /// New refresh token, when the answer has one.
    pub refresh_token: Option<RefreshToken>,
    /// Refresh-token expiry (epoch ms), when given.
    pub refresh_expires_at_ms: Option<i64>,
}

/// How a refresh attempt ended.
#[derive(Debug, Clone)]
pub enum RefreshOutcome {
    /// New tokens.
    Success(TokenAnswer),
    /// Worth retrying soon; the sentence is safe to show.
    Transient(String),
    /// No answer within the call's timeout. The refresh may have rotated
    /// the pair upstream: retrying at once gains nothing (see
    /// [`super::run::next_step`]).
    Timeout(String),
    /// Xoxoday's refresh rate limit: no attempt before the penalty ends.
    RateLimited {
        /// The penalty Xoxoday announced (or the default).
        penalty_secs: u64,
        /// Safe sentence.
        reason: String,
    },
    /// The refresh token is rejected; a person must act.
    Final(String),
    /// The client id/secret are rejected; the refresh token is not to blame.
    CredentialsRejected(String),
    /// A 2xx answer with a new refresh token but no access token: the
    /// rotation happened upstream (the token held may be dead already), so
    /// the new refresh token is kept and the next refresh uses it; the run
    /// ends as a failure (backoff), the access token held stays.
    RefreshOnly {
        /// The new refresh token.
        refresh_token: RefreshToken,
        /// Its expiry (epoch ms), when given.
        refresh_expires_at_ms: Option<i64>,
        /// Safe sentence.
        message: String,
    },
}

use crate::upstream::TOKEN_ERROR_MESSAGE;

/// The Plum API's refusals of the account rather than of a token
/// (xoxoday-api.md §1.8): user disabled, company disabled, IP not
/// whitelisted.
const ACCOUNT_REFUSALS: [&str; 3] = ["PIPE10015", "PIPE10016", "PIPE10017"];

/// OAuth error codes that mean "retry later".
fn transient_oauth_code(code: &str) -> bool {
    matches!(code, "server_error" | "temporarily_unavailable")
}

/// OAuth error codes that blame the client id/secret, not the refresh token.
fn credentials_oauth_code(code: &str) -> bool {
    matches!(code, "invalid_client" | "unauthorized_client")
}

/// Parse a refresh answer. Never fails on odd fields if an access token is
/// present (with a 2xx status, or with a refresh token whatever the status):
/// a successful rotation must not be lost. `retry_after` is the answer's
/// `Retry-After` header.
pub fn parse_refresh_response(status: u16, body: &[u8], retry_after: Option<&str>, now_ms: i64) -> RefreshOutcome {
    // After one byte order mark (a proxy or server may write one), and
    // whatever follows the JSON: unread, a rotation that happened would be
    // lost. Every reading below takes the same body.
    let body = &*crate::jsontext::token_answer(body);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let obj = parsed.as_ref().and_then(Value::as_object);

    // A success: a 2xx body with an access token (a missing refresh token
    // keeps the one held), or, whatever the status says, a body with a new
    // pair: the rotation happened upstream, and dropping the answer would
    // lose the only live refresh token (contract §4.1). Half a pair outside
    // 2xx proves no rotation, and is classified below as before.
    if let Some(o) = obj {
        if let Some(at) = token_field(o, "access_token") {
            if (200..300).contains(&status) || token_field(o, "refresh_token").is_some() {
                return RefreshOutcome::Success(normalise_answer(o, at, now_ms));
            }
        }
    }
    if let Some(penalty_secs) = penalty_named_by(status, body, retry_after, TOKEN_NAMING_KEYS) {
        return RefreshOutcome::RateLimited {
            penalty_secs,
            reason: format!("refresh rate-limited by Xoxoday (HTTP {status}, {RATE_LIMIT_MESSAGE}): penalty {penalty_secs} s"),
        };
    }
    // Not an answer of Xoxoday's token endpoint: no such path (404, 405:
    // XOXODAY_OAUTH_URL wrong) or an HTML page (a proxy's or a firewall's).
    // The grant never reached the endpoint, so nothing rotated: tried again
    // with backoff, never taken for a dead refresh token (which would send
    // the operator to regenerate tokens that are fine). Other 4xx answers,
    // JSON or plain, stay a rejection: Xoxoday documents no body for one.
    if matches!(status, 404 | 405) || ((400..500).contains(&status) && parsed.is_none() && body.trim_ascii_start().starts_with(b"<")) {
        return RefreshOutcome::Transient(format!(
            "refresh failed: HTTP {status}, not an answer of Xoxoday's token endpoint (check XOXODAY_OAUTH_URL, or a proxy or firewall on the way)"
        ));
    }
    let oauth_error = obj.and_then(|o| o.get("error")).and_then(Value::as_str).map(str::to_string);
    let message_id = obj
        .and_then(|o| o.get("message").or_else(|| o.get("error_message_id")))
        .and_then(Value::as_str)
        .map(str::to_string);
    // The Plum API's own refusal of the account, not of the token
    // (`PIPE10015`–`17`: user or company disabled, IP not whitelisted,
    // xoxoday-api.md §1.8): nothing rotated and the token is not to blame;
    // taken for a dead one, the operator would be sent to regenerate tokens
    // that are fine, and fixing the account would not bring plumgate back.
    if let (400..=499, Some(id)) = (status, obj.and_then(|o| o.get("errorId")).and_then(Value::as_str)) {
        if let Some(id) = ACCOUNT_REFUSALS.iter().find(|known| **known == id) {
            return RefreshOutcome::Transient(format!(
                "refresh failed: HTTP {status} {id}, Xoxoday refused the account (user or company disabled, or IP not whitelisted), not the refresh token: kept, retried with backoff"
            ));
        }
    }
    if let Some(code) = oauth_error.as_deref() {
        let code = safe_code(code);
        if transient_oauth_code(&code) {
            return RefreshOutcome::Transient(format!("refresh failed: HTTP {status} {code}"));
        }
        if credentials_oauth_code(&code) {
            return RefreshOutcome::CredentialsRejected(format!(
                "client credentials rejected: HTTP {status} {code} (check XOXODAY_CLIENT_ID and XOXODAY_CLIENT_SECRET)"
            ));
        }
        if (400..500).contains(&status) || matches!(code.as_str(), "invalid_grant" | "invalid_token") {
            return RefreshOutcome::Final(format!("refresh token rejected: HTTP {status} {code}"));
        }
    }
    if message_id.as_deref() == Some(TOKEN_ERROR_MESSAGE) {
        return RefreshOutcome::Final(format!("refresh token rejected: HTTP {status} {TOKEN_ERROR_MESSAGE}"));
    }
    // Half a pair in a 2xx that is no error: the refresh token is new, and
    // under strict rotation the only live one.
    if let (200..=299, Some(o)) = (status, obj) {
        if let Some(rt) = token_field(o, "refresh_token") {
            return RefreshOutcome::RefreshOnly {
                refresh_token: RefreshToken::new(rt),
                refresh_expires_at_ms: refresh_expiry_ms(o, now_ms),
                message: format!("refresh answer without access_token (HTTP {status}): its new refresh token is kept, and the next refresh uses it"),
            };
        }
    }
    match status {
        200..=299 => RefreshOutcome::Transient(format!("refresh answer unreadable (HTTP {status}, no access_token)")),
        408 => RefreshOutcome::Transient("refresh failed: HTTP 408".into()),
        // Final, as the contract has every refresh-token 4xx (§4.7). With no
        // JSON object (empty, plain words), the words say a layer on the way
        // (a load balancer's bare 403) may have answered instead: Xoxoday
        // documents no body for this refusal (xoxoday-api.md §1.8 item 4),
        // and new tokens would meet the same layer.
        400..=499 if obj.is_none() => RefreshOutcome::Final(format!(
            "refresh token rejected: HTTP {status} with no JSON answer (a proxy or firewall on the way may have answered: fix the path first, or new tokens meet the same)"
        )),
        400..=499 => RefreshOutcome::Final(format!("refresh token rejected: HTTP {status}")),
        _ => RefreshOutcome::Transient(format!("refresh failed: HTTP {status}")),
    }
}

/// OAuth error codes plumgate names in status bodies. Anything else is
/// reported as "unrecognised": an upstream body may echo a token.
const KNOWN_OAUTH_CODES: [&str; 9] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_token",
    "server_error",
    "temporarily_unavailable",
];

fn safe_code(code: &str) -> String {
    match KNOWN_OAUTH_CODES.iter().find(|k| **k == code) {
        Some(k) => (*k).to_string(),
        None => "unrecognised_error".to_string(),
    }
}

/// The token in field `key` of a token answer: a non-empty string.
fn token_field<'a>(o: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    o.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A success's fields, leniently (contract §4.9): a missing or odd lifetime
/// takes the documented default.
fn normalise_answer(o: &serde_json::Map<String, Value>, at: &str, now_ms: i64) -> TokenAnswer {
    TokenAnswer {
        access_token: AccessToken::new(at),
        access_expires_at_ms: access_expiry_ms(o, now_ms).unwrap_or(now_ms.saturating_add(DEFAULT_ACCESS_TTL_MS)),
        refresh_token: token_field(o, "refresh_token").map(RefreshToken::new),
        refresh_expires_at_ms: refresh_expiry_ms(o, now_ms),
    }
}

/// The answer's `refresh_token_expiry`, when it is a time still to come.
fn refresh_expiry_ms(o: &serde_json::Map<String, Value>, now_ms: i64) -> Option<i64> {
    o.get("refresh_token_expiry").and_then(epoch_ms).filter(|t| *t > now_ms)
}

/// Parse a validate-token answer: the access token's expiry, if it is valid.
pub fn parse_validate_response(status: u16, body: &[u8], now_ms: i64) -> Option<i64> {
    if !(200..300).contains(&status) {
        return None;
    }
    let v = crate::jsontext::leading_json(body)?;
    access_expiry_ms(v.as_object()?, now_ms)
}

/// What a refresh attempt that got no answer means: a timeout (the call's
/// own, minutes long; the refresh may have happened upstream) or a
/// transport failure (worth retrying soon).
pub fn refresh_without_answer(why: NoAnswer, policy: &TokenPolicy) -> RefreshOutcome {
    match why {
        NoAnswer::Timeout => RefreshOutcome::Timeout(format!("{TIMED_OUT} {} s", policy.refresh_call_timeout_ms / 1000)),
        NoAnswer::Transport => RefreshOutcome::Transient(NO_ANSWER.into()),
    }
}

const TIMED_OUT: &str = "refresh timed out after";
const NO_ANSWER: &str = "refresh failed: no answer from Xoxoday (transport error)";

/// May the refresh that failed with `message` have rotated the pair without
/// plumgate learning the new one ([`super::run::finish_run`] says so when
/// the next refresh finds the refresh token dead)? Yes when it reached
/// Xoxoday's token endpoint, or may have: no answer (a timeout, a transport
/// error), a 5xx (a gateway's 502 or 504 can come after the endpoint
/// rotated), an unreadable 2xx, a run cut short ([`super::run::INTERRUPTED`]).
/// No for a rate limit, and for a 4xx: the endpoint's own refusal of the
/// moment, or an answer that is not the endpoint's (a 404, an HTML page:
/// the grant never reached it). (Prefixes only: a substring search would
/// cost the wasm its own searcher.)
pub fn answer_lost(message: &str) -> bool {
    ["refresh failed", "refresh timed out", "refresh answer unreadable", super::run::INTERRUPTED].iter().any(|p| message.starts_with(p))
        && !message.starts_with("refresh failed: HTTP 4")
}

/// Read what one refresh attempt got: an answer, or none.
pub fn read_refresh(got: &Result<HttpAnswer, NoAnswer>, now_ms: i64, policy: &TokenPolicy) -> RefreshOutcome {
    match got {
        Ok(ans) => parse_refresh_response(ans.status, &ans.body, ans.retry_after.as_deref(), now_ms),
        Err(why) => refresh_without_answer(*why, policy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_626_582_000;

    #[test]
    fn the_plum_apis_refusal_of_the_account_is_not_a_dead_refresh_token() {
        for id in ["PIPE10017", "PIPE10015", "PIPE10016"] {
            let body = format!(r#"{{"code":401,"errorId":"{id}","errorInfo":"Access restricted for this IP","error":"Plum Pro APIs: refused"}}"#);
            match parse_refresh_response(401, body.as_bytes(), None, T0) {
                RefreshOutcome::Transient(m) => {
                    assert!(m.starts_with(&format!("refresh failed: HTTP 401 {id}, Xoxoday refused the account")), "{m}");
                    assert!(!answer_lost(&m), "the grant was refused, nothing rotated: {m}");
                }
                other => panic!("{id}: {other:?}"),
            }
        }
        // The token's own errorId, any other errorId, and no errorId stay
        // what their words say: a rejection of the token, or of the client.
        for body in [
            r#"{"code":401,"errorId":"PIPE10013"}"#,
            r#"{"error":"invalid_token"}"#,
            r#"{"code":400,"errorId":"PLE99999","error":"invalid_grant"}"#,
            r#"{"code":400,"errorId":"secret token abc","error":"Refresh token expired"}"#,
        ] {
            assert!(matches!(parse_refresh_response(400, body.as_bytes(), None, T0), RefreshOutcome::Final(_)), "{body}");
        }
        let client = br#"{"code":401,"errorId":"PLE99999","error":"invalid_client"}"#;
        assert!(matches!(parse_refresh_response(401, client, None, T0), RefreshOutcome::CredentialsRejected(_)));
        // A pair wins over any errorId; a 5xx with one is transient as before.
        let pair = br#"{"errorId":"PIPE10017","access_token":"at","refresh_token":"rt"}"#;
        assert!(matches!(parse_refresh_response(401, pair, None, T0), RefreshOutcome::Success(_)));
        assert!(matches!(parse_refresh_response(503, br#"{"errorId":"PIPE10017"}"#, None, T0), RefreshOutcome::Transient(_)));
    }

    #[test]
    fn an_attempt_without_an_answer() {
        let p = TokenPolicy::default();
        match read_refresh(&Err(NoAnswer::Timeout), T0, &p) {
            RefreshOutcome::Timeout(m) => assert_eq!(m, "refresh timed out after 300 s"),
            other => panic!("{other:?}"),
        }
        match read_refresh(&Err(NoAnswer::Transport), T0, &p) {
            RefreshOutcome::Transient(m) => assert_eq!(m, "refresh failed: no answer from Xoxoday (transport error)"),
            other => panic!("{other:?}"),
        }
        let ok = HttpAnswer { status: 200, body: br#"{"access_token":"at","expires_in":"10"}"#.to_vec(), retry_after: None };
        match read_refresh(&Ok(ok), T0, &p) {
            RefreshOutcome::Success(a) => assert_eq!(a.access_expires_at_ms, T0 + 10_000),
            other => panic!("{other:?}"),
        }
        let limited = HttpAnswer { status: 429, body: Vec::new(), retry_after: Some("30".into()) };
        assert!(matches!(read_refresh(&Ok(limited), T0, &p), RefreshOutcome::RateLimited { penalty_secs: 30, .. }));
    }

    /// A body carrying a new pair is a rotation that happened upstream,
    /// whatever the status (contract §4.1): dropping it would lose the only
    /// live refresh token. Read as leniently as a 2xx one (§4.9).
    #[test]
    fn a_token_pair_is_a_success_whatever_the_status() {
        let pair = format!(r#"{{"success":0,"access_token":"at-new","expires_in":"1296000","refresh_token":"rt-new","refresh_token_expiry":"{}"}}"#, T0 + 1000);
        for status in [201, 302, 400, 401, 403, 408, 429, 500, 503] {
            match parse_refresh_response(status, pair.as_bytes(), Some("30"), T0) {
                RefreshOutcome::Success(a) => {
                    assert_eq!(a.access_token.expose_secret(), "at-new");
                    assert_eq!(a.refresh_token.as_ref().map(RefreshToken::expose_secret), Some("rt-new"));
                    assert_eq!((a.access_expires_at_ms, a.refresh_expires_at_ms), (T0 + 1_296_000_000, Some(T0 + 1000)));
                }
                other => panic!("HTTP {status}: {other:?}"),
            }
        }
        // No lifetime at all: the defaults, never discarded.
        let bare = br#"{"access_token":"at-new","refresh_token":"rt-new","expires_in":"garbage"}"#;
        assert!(matches!(parse_refresh_response(500, bare, None, T0), RefreshOutcome::Success(_)));
        // Half a pair outside 2xx is no rotation: classified as before.
        let cases: &[(u16, &str, &str)] = &[
            (429, r#"{"access_token":"at","message":"auth.request_limit_exceeded"}"#, "rate"),
            (400, r#"{"refresh_token":"rt","errors":[{"message":"auth.request_limit_exceeded","penaltySeconds":5}]}"#, "rate"),
            (400, r#"{"access_token":"at","error":"invalid_grant"}"#, "final"),
            (401, r#"{"access_token":"at","refresh_token":""}"#, "final"),
            (503, r#"{"access_token":"","refresh_token":"rt"}"#, "transient"),
            (500, r#"{"access_token":7,"refresh_token":"rt"}"#, "transient"),
            (401, r#"{"refresh_token":"rt","error":"invalid_client"}"#, "credentials"),
        ];
        for (status, body, want) in cases {
            let got = parse_refresh_response(*status, body.as_bytes(), None, T0);
            let kind = match got {
                RefreshOutcome::RateLimited { .. } => "rate",
                RefreshOutcome::Final(_) => "final",
                RefreshOutcome::Transient(_) => "transient",
                RefreshOutcome::CredentialsRejected(_) => "credentials",
                _ => "other",
            };
            assert_eq!(kind, *want, "{status} {body}");
        }
        // A 2xx with an access token alone is a success, as it always was
        // (the refresh token held is kept).
        let only_access = br#"{"access_token":"at-new","expires_in":10}"#;
        assert!(matches!(parse_refresh_response(200, only_access, None, T0), RefreshOutcome::Success(a) if a.refresh_token.is_none()));
        // After a byte order mark (a proxy's or server's): the rotation is
        // read, not lost as an unreadable answer.
        let bom = b"\xEF\xBB\xBF{\"access_token\":\"at-new\",\"refresh_token\":\"rt-new\",\"expires_in\":10}";
        assert!(matches!(parse_refresh_response(200, bom, None, T0), RefreshOutcome::Success(a) if a.refresh_token.is_some()));
        assert_eq!(parse_validate_response(200, b"\xEF\xBB\xBF{\"expires_in\":10}", T0), Some(T0 + 10_000));
        // Bytes after the JSON (a proxy's comment, the answer twice): the
        // rotation is read too.
        for tail in [&b"\n<!-- served by edge-7 -->"[..], b"{\"access_token\":\"x\"}", b"\0\0"] {
            let body = [&bom[3..], tail].concat();
            assert!(matches!(parse_refresh_response(200, &body, None, T0), RefreshOutcome::Success(a) if a.refresh_token.is_some()), "{tail:?}");
        }
        assert_eq!(parse_validate_response(200, b"{\"expires_in\":10}\n<!-- edge -->", T0), Some(T0 + 10_000));
        // A penalty or a refusal with such a tail reads as without it: one
        // body, one reading (a penalty missed here would be taken for a
        // dead refresh token: reauth_required).
        let limited = b"{\"message\":\"auth.request_limit_exceeded\"}\n<!-- edge -->";
        assert!(matches!(parse_refresh_response(400, limited, None, T0), RefreshOutcome::RateLimited { .. }));
        assert!(matches!(parse_refresh_response(400, &limited[..41], None, T0), RefreshOutcome::RateLimited { .. }));
        // A cut-off answer is still unreadable.
        assert!(!matches!(parse_refresh_response(200, &bom[3..30], None, T0), RefreshOutcome::Success(_)));
    }

    /// A 2xx with a new refresh token and no access token: the rotation
    /// happened, so the refresh token is kept (never dropped as unreadable);
    /// an error in the same body still reads as that error.
    #[test]
    fn half_a_pair_in_a_2xx_keeps_its_refresh_token() {
        let later = T0 + 86_400_000;
        for body in [
            format!(r#"{{"refresh_token":"rt-new","refresh_token_expiry":"{later}"}}"#),
            format!(r#"{{"access_token":"","refresh_token":"rt-new","refresh_token_expiry":{later},"success":1}}"#),
            format!(r#"{{"access_token":null,"refresh_token":"rt-new","refresh_token_expiry":{later}}}"#),
        ] {
            match parse_refresh_response(200, body.as_bytes(), None, T0) {
                RefreshOutcome::RefreshOnly { refresh_token, refresh_expires_at_ms, message } => {
                    assert_eq!(refresh_token.expose_secret(), "rt-new");
                    assert_eq!(refresh_expires_at_ms, Some(later));
                    assert_eq!(message, "refresh answer without access_token (HTTP 200): its new refresh token is kept, and the next refresh uses it");
                    assert!(!answer_lost(&message), "nothing was lost");
                    assert!(!message.contains("rt-new"));
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        // No expiry given (or one in the past): unknown, the default applies later.
        match parse_refresh_response(201, br#"{"refresh_token":"rt-new","refresh_token_expiry":5}"#, None, T0) {
            RefreshOutcome::RefreshOnly { refresh_expires_at_ms, .. } => assert_eq!(refresh_expires_at_ms, None),
            other => panic!("{other:?}"),
        }
        // An error in the body wins: it is no rotation.
        let cases: &[(&str, &str)] = &[
            (r#"{"refresh_token":"rt","message":"auth.request_limit_exceeded"}"#, "rate"),
            (r#"{"refresh_token":"rt","error":"invalid_grant"}"#, "final"),
            (r#"{"refresh_token":"rt","success":0,"error_message_id":"auth.token_error"}"#, "final"),
            (r#"{"refresh_token":"rt","error":"server_error"}"#, "transient"),
            (r#"{"refresh_token":""}"#, "transient"),
            (r#"{"refresh_token":7}"#, "transient"),
        ];
        for (body, want) in cases {
            let kind = match parse_refresh_response(200, body.as_bytes(), None, T0) {
                RefreshOutcome::RateLimited { .. } => "rate",
                RefreshOutcome::Final(_) => "final",
                RefreshOutcome::Transient(_) => "transient",
                other => panic!("{body}: {other:?}"),
            };
            assert_eq!(kind, *want, "{body}");
        }
    }

    #[test]
    fn a_validate_answer_with_a_huge_lifetime_saturates() {
        let body = format!(r#"{{"expires_in":{}}}"#, i64::MAX);
        assert_eq!(parse_validate_response(200, body.as_bytes(), T0), Some(i64::MAX));
        assert_eq!(parse_validate_response(401, body.as_bytes(), T0), None);
    }

    /// The account refusal at every 4xx (not only 401), the token's own
    /// error codes whatever the status, and the whole 2xx range.
    #[test]
    fn each_classification_holds_across_its_range() {
        let account = br#"{"code":400,"errorId":"PIPE10017","error":"Plum Pro APIs: refused"}"#;
        match parse_refresh_response(400, account, None, T0) {
            RefreshOutcome::Transient(m) => assert!(m.contains("refused the account"), "{m}"),
            other => panic!("a 400 refusal of the account is no dead refresh token: {other:?}"),
        }
        for status in [200, 500] {
            let got = parse_refresh_response(status, br#"{"error":"invalid_token"}"#, None, T0);
            assert!(matches!(got, RefreshOutcome::Final(_)), "HTTP {status}: {got:?}");
        }
        assert!(matches!(parse_refresh_response(299, br#"{"access_token":"at-new","expires_in":10}"#, None, T0), RefreshOutcome::Success(_)));
        assert!(matches!(parse_refresh_response(299, br#"{"refresh_token":"rt-new"}"#, None, T0), RefreshOutcome::RefreshOnly { .. }));
        assert_eq!(parse_validate_response(299, br#"{"expires_in":10}"#, T0), Some(T0 + 10_000));
        assert_eq!(parse_validate_response(300, br#"{"expires_in":10}"#, T0), None, "a 300 is no 2xx: its lifetime is not read");
        let lone = parse_refresh_response(300, br#"{"refresh_token":"rt-new"}"#, None, T0);
        assert!(matches!(lone, RefreshOutcome::Transient(_)), "half a pair is kept from a 2xx only (a redirect is not followed): {lone:?}");
    }

    /// The token check sends the access token as a bearer token (RFC 6750),
    /// and asks for JSON.
    #[test]
    fn the_validate_request_carries_a_bearer_token() {
        let v = build_validate_request("https://x/chef/v1/oauth/token", &AccessToken::new("atok"));
        assert_eq!((v.method, v.url.as_str(), v.body), ("GET", "https://x/chef/v1/oauth/token", None));
        assert_eq!(v.headers, [("authorization", "Bearer atok".to_owned()), ("accept", "application/json".to_owned())]);
    }
}
