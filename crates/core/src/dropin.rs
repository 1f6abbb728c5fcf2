//! Xoxoday's token endpoints on the drop-in base, answered with gateway
//! keys.
//!
//! Every Xoxoday client first gets an access token: `POST
//! {OAUTH_URL}/v1/oauth/token/user` with a refresh token (and often checks
//! one with `GET {OAUTH_URL}/v1/oauth/token`). So that such a client works
//! against plumgate with only its base URL and credentials changed, the
//! drop-in base answers both, with the caller's gateway key standing in for
//! both tokens:
//! - the refresh endpoint takes the key as `refresh_token` (JSON, as
//!   Xoxoday documents, or form-encoded, as `golang.org/x/oauth2` posts it),
//!   ignores `client_id` / `client_secret` (and an `Authorization: Basic`
//!   header carrying them), and answers Xoxoday's token shape with
//!   `access_token` and `refresh_token` both set to that same key;
//! - the validation endpoint takes it as the bearer and answers the same
//!   way, without the refresh token.
//!
//! Nothing here ever holds or returns a Xoxoday credential: the only secret
//! in an answer is the key its caller just presented.
//!
//! Lifetimes: clients schedule their refresh from `expires_in` (Xoxoday's
//! MCP client refreshes 5 minutes before the end, `x/oauth2` 10 seconds
//! before, others at the end). plumgate answers what Xoxoday answers for a
//! fresh pair — `expires_in` 1296000 (15 days) and a refresh token good for
//! 30 days — so every client keeps the rhythm it was written for: a refresh
//! every 15 days, each answered with the same key. A key that ends sooner
//! (a runtime key's `expires_at`, a rotated key's grace period) is answered
//! with the time it has left, so the client's own expiry tells it when. A
//! key removed or revoked stops working at once whatever the client
//! believes about its expiry (the API answers 401, the refresh
//! `invalid_grant`).
//!
//! Which token paths: Xoxoday documents `/v1/oauth/token/{token_type}` with
//! `user` for the Reward API; public clients also post to `.../bearer`
//! (x/oauth2 builds it from `token_type`) and `.../access_token`. All three
//! are answered alike ([`TOKEN_TYPES`]).

use crate::auth::{parse_bearer, AuthError, Caller, CallerKeys};
use crate::jsontext::Object;
use crate::secret::CallerKey;
use crate::time::add_secs;
use serde_json::{Map, Value};

/// The `{token_type}`s of `POST /chef/v1/oauth/token/{token_type}`.
pub const TOKEN_TYPES: [&str; 3] = ["user", "bearer", "access_token"];

/// `expires_in` of every token answer: Xoxoday's access-token lifetime.
pub const EXPIRES_IN_SECS: i64 = 1_296_000;

/// Lifetime of the refresh token a token answer states: Xoxoday's 30 days.
pub const REFRESH_LIFETIME_SECS: i64 = 2_592_000;

/// An answer in Xoxoday's OAuth error shape, `{error, error_description}`
/// (plus plumgate's `request_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OAuthError {
    /// HTTP status.
    pub status: u16,
    /// The OAuth error code (`invalid_grant`, …), also logged.
    pub error: &'static str,
    /// Xoxoday's description for it.
    pub description: &'static str,
}

impl OAuthError {
    /// 400 `invalid_request`: a parameter is missing or unreadable.
    pub const INVALID_REQUEST: OAuthError = OAuthError {
        status: 400,
        error: "invalid_request",
        description: "missing/invalid parameters",
    };
    /// 400 `unsupported_grant_type`: a grant other than `refresh_token`.
    pub const UNSUPPORTED_GRANT_TYPE: OAuthError = OAuthError {
        status: 400,
        error: "unsupported_grant_type",
        description: "grant type not supported",
    };
    /// 400 `invalid_grant`: the refresh token is no gateway key.
    pub const INVALID_GRANT: OAuthError = OAuthError {
        status: 400,
        error: "invalid_grant",
        description: "invalid/expired token",
    };
    /// 401 `invalid_request`: no bearer to validate.
    pub const MISSING_BEARER: OAuthError = OAuthError {
        status: 401,
        error: "invalid_request",
        description: "missing/invalid parameters authorization header",
    };
    /// 401 `invalid_token`: the bearer is no gateway key.
    pub const INVALID_TOKEN: OAuthError = OAuthError {
        status: 401,
        error: "invalid_token",
        description: "invalid/expired token",
    };

    /// `{"error", "error_description", "request_id"}`, as text.
    pub fn body(&self, request_id: &str) -> String {
        Object::new()
            .str("error", self.error)
            .str("error_description", self.description)
            .str("request_id", request_id)
            .finish()
    }
}

/// The gateway key a refresh request presents as its `refresh_token`.
///
/// The body is form-encoded when `content_type` says so, otherwise JSON (and
/// a body that is not JSON is tried as a form unless it was labelled JSON).
/// `grant_type` must be `refresh_token`; `client_id` and `client_secret` are
/// ignored.
///
/// # Errors
/// [`OAuthError::INVALID_REQUEST`] for an unreadable body or a missing
/// parameter, [`OAuthError::UNSUPPORTED_GRANT_TYPE`] for another grant.
pub fn refresh_key(content_type: Option<&str>, body: &[u8]) -> Result<CallerKey, OAuthError> {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    let params = if crate::text::contains(ct.as_bytes(), b"application/x-www-form-urlencoded") {
        form(body)?
    } else {
        match crate::jsontext::request_json::<Value>(body) {
            Ok(Value::Object(obj)) => obj,
            Ok(_) => return Err(OAuthError::INVALID_REQUEST),
            Err(_) if !crate::text::contains(ct.as_bytes(), b"json") => form(body)?,
            Err(_) => return Err(OAuthError::INVALID_REQUEST),
        }
    };
    match params.get("grant_type") {
        Some(Value::String(g)) if g == "refresh_token" => {}
        Some(Value::String(g)) if !g.is_empty() => return Err(OAuthError::UNSUPPORTED_GRANT_TYPE),
        _ => return Err(OAuthError::INVALID_REQUEST),
    }
    match params.get("refresh_token") {
        Some(Value::String(t)) if !t.is_empty() => Ok(CallerKey::new(t.as_str())),
        _ => Err(OAuthError::INVALID_REQUEST),
    }
}

/// The caller whose key a refresh request presented.
///
/// # Errors
/// [`OAuthError::INVALID_GRANT`] when it is no configured key.
pub fn grant(keys: &CallerKeys, key: &CallerKey) -> Result<Caller, OAuthError> {
    keys.authenticate_key(key).map_err(|_| OAuthError::INVALID_GRANT)
}

/// The caller whose key an `Authorization: Bearer` header presents to the
/// validation endpoint.
///
/// # Errors
/// [`OAuthError::MISSING_BEARER`] without a header,
/// [`OAuthError::INVALID_TOKEN`] for any other header that names no key.
pub fn bearer(keys: &CallerKeys, header: Option<&str>) -> Result<(Caller, CallerKey), OAuthError> {
    let key = bearer_key(header)?;
    let caller = keys.authenticate_key(&key).map_err(|_| OAuthError::INVALID_TOKEN)?;
    Ok((caller, key))
}

/// The key an `Authorization: Bearer` header presents to the validation
/// endpoint, before anyone has looked it up (a runtime key is looked up in
/// the worker's copy of the key directory).
///
/// # Errors
/// [`OAuthError::MISSING_BEARER`] without a header,
/// [`OAuthError::INVALID_TOKEN`] for a header no key can be in.
pub fn bearer_key(header: Option<&str>) -> Result<CallerKey, OAuthError> {
    parse_bearer(header).map_err(|e| match e {
        AuthError::Missing => OAuthError::MISSING_BEARER,
        AuthError::Malformed | AuthError::Unknown => OAuthError::INVALID_TOKEN,
    })
}

/// The refresh endpoint's answer for `key` at `now_ms`, as text, in
/// Xoxoday's token shape: `access_token` and `refresh_token` are the key,
/// `expires_in` a number of seconds, the expiry stamps epoch milliseconds
/// written as strings (as Xoxoday's Rewards API reference types them), and
/// Xoxoday's `success` / `status` markers. `until_ms`: when the key stops
/// working, if it does (`Caller::until_ms`); the lifetimes stated are
/// never longer.
///
/// # Security Warning
/// The answer holds the caller's own key; send it only to that caller.
pub fn refresh_answer(key: &CallerKey, until_ms: Option<i64>, now_ms: i64) -> String {
    answer(key, until_ms, now_ms, true)
}

/// The validation endpoint's answer for `key` at `now_ms`, as text: as
/// [`refresh_answer`] without the refresh token and markers. A key does not
/// age, so the time left is the full `expires_in` unless the key ends
/// sooner.
///
/// # Security Warning
/// As [`refresh_answer`].
pub fn validation_answer(key: &CallerKey, until_ms: Option<i64>, now_ms: i64) -> String {
    answer(key, until_ms, now_ms, false)
}

fn answer(key: &CallerKey, until_ms: Option<i64>, now_ms: i64, refresh: bool) -> String {
    // Whole seconds left, at least one (an ended key is not answered).
    let left = |secs: i64| until_ms.map_or(secs, |u| secs.min(((u - now_ms) / 1000).max(1)));
    let expires_in = left(EXPIRES_IN_SECS);
    let mut a = Object::new()
        .str("access_token", key.expose_secret())
        .str("token_type", "bearer")
        // A string of digits, as Xoxoday's own answers carry it (a recorded
        // answer in alldigitalrewards/xoxoday; helsinki-systems/xoxoday's
        // `Token` decodes only that form); every number-reading client
        // named in xoxoday-api.md §4 takes it too.
        .str("expires_in", &expires_in.to_string());
    if refresh {
        a = a.str("refresh_token", key.expose_secret());
    }
    a = a
        .str("access_token_expiry", &add_secs(now_ms, expires_in as u64).to_string())
        .str("refresh_token_expiry", &add_secs(now_ms, left(REFRESH_LIFETIME_SECS) as u64).to_string());
    if refresh {
        a = a.num("success", 1).num("status", 200);
    }
    a.finish()
}

/// An `application/x-www-form-urlencoded` body as a map of strings. A
/// parameter given twice is a bad request (RFC 6749 §3.2).
fn form(body: &[u8]) -> Result<Map<String, Value>, OAuthError> {
    let text = std::str::from_utf8(body).map_err(|_| OAuthError::INVALID_REQUEST)?;
    let mut out = Map::new();
    for pair in crate::text::split(text, "&").filter(|p| !p.is_empty()) {
        let (name, value) = crate::text::split_once(pair, "=").unwrap_or((pair, ""));
        let (name, value) = (percent_decode(name)?, percent_decode(value)?);
        if out.insert(name, Value::String(value)).is_some() {
            return Err(OAuthError::INVALID_REQUEST);
        }
    }
    Ok(out)
}

/// Form decoding: `+` is a space, `%XX` a byte; the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, OAuthError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                // What `u8::from_str_radix(hex, 16)` reads (a `+` and one
                // digit too), with the one digit reader `route` uses.
                let digit = |at: usize| bytes.get(at).and_then(|&c| char::from(c).to_digit(16)).ok_or(OAuthError::INVALID_REQUEST);
                let high = if bytes.get(i + 1) == Some(&b'+') { 0 } else { digit(i + 1)? };
                // Below 16 each, so the byte is exact.
                #[allow(clippy::cast_possible_truncation)]
                out.push((high * 16 + digit(i + 2)?) as u8);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| OAuthError::INVALID_REQUEST)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::hash_key;
    use serde_json::json;

    fn parsed(text: &str) -> Value {
        serde_json::from_str(text).expect("an answer is JSON")
    }

    const KEY: &str = "pgk_dropin_key_0123456789abcdef";

    #[test]
    fn form_escapes_read_as_from_str_radix_reads_them() {
        // The decoding as first written.
        let first = |s: &str| -> Option<String> {
            let bytes = s.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                match bytes[i] {
                    b'+' => out.push(b' '),
                    b'%' => {
                        let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                        out.push(u8::from_str_radix(hex, 16).ok()?);
                        i += 2;
                    }
                    b => out.push(b),
                }
                i += 1;
            }
            String::from_utf8(out).ok()
        };
        for s in [
            "a%20b", "a+b", "%41%4a%4F%ff", "%C3%A9", "%", "%4", "%4g", "%g4", "%+4", "%+", "%++", "%-4", "%+-", "%00", "%%41", "x%",
            "%c3", "%E2%82%AC", "é%2B", "%é", "%4é", "%+é", " %2b+",
        ] {
            assert_eq!(percent_decode(s).ok(), first(s), "{s:?}");
        }
    }
    const NOW: i64 = 1_795_626_582_000;

    fn keys() -> CallerKeys {
        CallerKeys::parse(&format!(
            r#"[{{"id":"mcp","sha256":"{}","scopes":["catalog"]}}]"#,
            hash_key(KEY)
        ))
        .unwrap()
    }

    fn key_of(ct: Option<&str>, body: &str) -> Result<String, OAuthError> {
        refresh_key(ct, body.as_bytes()).map(|k| k.expose_secret().to_owned())
    }

    #[test]
    fn refresh_requests_in_json_and_form() {
        let json_body = format!(
            r#"{{"grant_type":"refresh_token","refresh_token":"{KEY}","client_id":"anything","client_secret":"ignored"}}"#
        );
        for ct in [Some("application/json"), Some("application/json; charset=utf-8"), None, Some("text/plain")] {
            assert_eq!(key_of(ct, &json_body), Ok(KEY.into()), "{ct:?}");
        }
        // x/oauth2's two styles: credentials in a Basic header (body has
        // none) or in the body; values percent-encoded, `+` for a space.
        let form_ct = Some("application/x-www-form-urlencoded");
        assert_eq!(key_of(form_ct, &format!("grant_type=refresh_token&refresh_token={KEY}")), Ok(KEY.into()));
        assert_eq!(
            key_of(form_ct, &format!("client_id=a%2Bb&client_secret=c+d&grant_type=refresh_token&refresh_token={KEY}")),
            Ok(KEY.into())
        );
        assert_eq!(key_of(form_ct, "grant_type=refresh_token&refresh_token=a%7Eb%2Fc+d"), Ok("a~b/c d".into()));
        // A JSON body that starts with a byte order mark is JSON.
        assert_eq!(key_of(Some("application/json"), &format!("\u{feff}{json_body}")), Ok(KEY.into()));
        // A form sent without the content type is still read.
        assert_eq!(key_of(None, &format!("grant_type=refresh_token&refresh_token={KEY}")), Ok(KEY.into()));
        // Labelled JSON, it is read as JSON only: a form body under that
        // label is refused, not guessed at.
        let form = format!("grant_type=refresh_token&refresh_token={KEY}");
        assert_eq!(key_of(Some("application/json"), &form), Err(OAuthError::INVALID_REQUEST));
    }

    /// The label decides the reading, whatever its case (RFC 9110: media
    /// types are case-insensitive): a form label is read as a form only, a
    /// JSON label as JSON only; empty pairs of a form (`a&&b&`) are skipped.
    #[test]
    fn the_label_decides_the_reading_in_any_case() {
        let json_body = format!(r#"{{"grant_type":"refresh_token","refresh_token":"{KEY}"}}"#);
        let form_body = format!("grant_type=refresh_token&refresh_token={KEY}");
        for ct in ["application/x-www-form-urlencoded", "Application/X-WWW-Form-Urlencoded; charset=UTF-8"] {
            assert_eq!(key_of(Some(ct), &form_body), Ok(KEY.into()), "{ct}");
            assert_eq!(key_of(Some(ct), &json_body), Err(OAuthError::INVALID_REQUEST), "{ct}: JSON under a form label is not guessed at");
        }
        for ct in ["APPLICATION/JSON", "Application/Json; charset=utf-8"] {
            assert_eq!(key_of(Some(ct), &json_body), Ok(KEY.into()), "{ct}");
            assert_eq!(key_of(Some(ct), &form_body), Err(OAuthError::INVALID_REQUEST), "{ct}: a form under a JSON label is not guessed at");
        }
        let form_ct = Some("application/x-www-form-urlencoded");
        assert_eq!(key_of(form_ct, &format!("&grant_type=refresh_token&&refresh_token={KEY}&")), Ok(KEY.into()), "empty pairs are no parameters");
        // As the URL standard reads a form: a name is decoded as a value
        // is, and a pair splits at its first `=` (a raw `=` in a value stays).
        assert_eq!(key_of(form_ct, &format!("grant%5Ftype=refresh%5Ftoken&refresh+token=x&refresh_token={KEY}")), Ok(KEY.into()));
        assert_eq!(key_of(form_ct, "grant_type=refresh_token&refresh_token=a=b=="), Ok("a=b==".into()));
    }

    #[test]
    fn bad_refresh_requests() {
        let form_ct = Some("application/x-www-form-urlencoded");
        let json_ct = Some("application/json");
        for (ct, body, want) in [
            (json_ct, "", OAuthError::INVALID_REQUEST),
            (json_ct, "{", OAuthError::INVALID_REQUEST),
            (json_ct, "[]", OAuthError::INVALID_REQUEST),
            (json_ct, r#"{"refresh_token":"x"}"#, OAuthError::INVALID_REQUEST),
            (json_ct, r#"{"grant_type":"","refresh_token":"x"}"#, OAuthError::INVALID_REQUEST),
            (json_ct, r#"{"grant_type":5,"refresh_token":"x"}"#, OAuthError::INVALID_REQUEST),
            (json_ct, r#"{"grant_type":"refresh_token"}"#, OAuthError::INVALID_REQUEST),
            (json_ct, r#"{"grant_type":"refresh_token","refresh_token":""}"#, OAuthError::INVALID_REQUEST),
            (json_ct, r#"{"grant_type":"refresh_token","refresh_token":7}"#, OAuthError::INVALID_REQUEST),
            (json_ct, r#"{"grant_type":"authorization_code","code":"x"}"#, OAuthError::UNSUPPORTED_GRANT_TYPE),
            (json_ct, r#"{"grant_type":"client_credentials"}"#, OAuthError::UNSUPPORTED_GRANT_TYPE),
            (form_ct, "grant_type=refresh_token", OAuthError::INVALID_REQUEST),
            (form_ct, "grant_type=refresh_token&refresh_token=", OAuthError::INVALID_REQUEST),
            (form_ct, "grant_type=refresh_token&refresh_token=a&refresh_token=b", OAuthError::INVALID_REQUEST),
            (form_ct, "grant_type=refresh_token&refresh_token=%zz", OAuthError::INVALID_REQUEST),
            (form_ct, "grant_type=refresh_token&refresh_token=%4", OAuthError::INVALID_REQUEST),
            (form_ct, "grant_type=refresh_token&refresh_token=%ff", OAuthError::INVALID_REQUEST),
            (form_ct, "grant_type=password&username=a", OAuthError::UNSUPPORTED_GRANT_TYPE),
        ] {
            assert_eq!(key_of(ct, body), Err(want), "{body}");
        }
        assert!(refresh_key(form_ct, &[0xff, b'=']).is_err());
    }

    #[test]
    fn grants_and_bearers() {
        let k = keys();
        assert_eq!(grant(&k, &CallerKey::new(KEY)).unwrap().id, "mcp");
        for bad in ["pgk_dropin_key_0123456789abcdeX", "short", "has space in the middle of it"] {
            assert_eq!(grant(&k, &CallerKey::new(bad)).unwrap_err(), OAuthError::INVALID_GRANT, "{bad}");
        }
        let (caller, key) = bearer(&k, Some(&format!("Bearer {KEY}"))).unwrap();
        assert_eq!((caller.id.as_str(), key.expose_secret()), ("mcp", KEY));
        for (header, want) in [
            (None, OAuthError::MISSING_BEARER),
            (Some(""), OAuthError::MISSING_BEARER),
            (Some("Basic YTpi"), OAuthError::INVALID_TOKEN),
            (Some("Bearer pgk_dropin_key_0123456789abcdeX"), OAuthError::INVALID_TOKEN),
        ] {
            assert_eq!(bearer(&k, header).unwrap_err(), want, "{header:?}");
        }
    }

    #[test]
    fn answers_have_xoxodays_token_shape() {
        let key = CallerKey::new(KEY);
        let r = parsed(&refresh_answer(&key, None, NOW));
        assert_eq!(
            r,
            json!({
                "access_token": KEY, "token_type": "bearer", "expires_in": "1296000", "refresh_token": KEY,
                "access_token_expiry": "1796922582000", "refresh_token_expiry": "1798218582000",
                "success": 1, "status": 200,
            })
        );
        let v = parsed(&validation_answer(&key, None, NOW));
        assert_eq!(
            v,
            json!({
                "access_token": KEY, "token_type": "bearer", "expires_in": "1296000",
                "access_token_expiry": "1796922582000", "refresh_token_expiry": "1798218582000",
            }),
            "the refresh answer without the refresh token and the success markers"
        );
        assert_eq!(v.get("refresh_token"), None);
        assert_eq!(v["access_token"], KEY);
        assert_eq!(v["expires_in"], r["expires_in"]);
        assert_eq!(v["access_token_expiry"], r["access_token_expiry"]);
        // The stamps are epoch ms: 15 and 30 days after now.
        let ms = |s: &Value| s.as_str().unwrap().parse::<i64>().unwrap();
        assert_eq!(ms(&r["access_token_expiry"]) - NOW, 15 * 86_400_000);
        assert_eq!(ms(&r["refresh_token_expiry"]) - NOW, 30 * 86_400_000);
        // A key that ends in an hour says so; one ending in 20 days keeps
        // the 15-day rhythm and a 20-day refresh token.
        let hour = parsed(&refresh_answer(&key, Some(NOW + 3_600_500), NOW));
        assert_eq!(hour["expires_in"], "3600");
        assert_eq!(ms(&hour["access_token_expiry"]) - NOW, 3_600_000);
        assert_eq!(ms(&hour["refresh_token_expiry"]) - NOW, 3_600_000);
        let v = parsed(&validation_answer(&key, Some(NOW + 3_600_500), NOW));
        assert_eq!(v["expires_in"], "3600");
        let days = parsed(&refresh_answer(&key, Some(NOW + 20 * 86_400_000), NOW));
        assert_eq!(days["expires_in"], "1296000");
        assert_eq!(ms(&days["refresh_token_expiry"]) - NOW, 20 * 86_400_000);
        let ending = parsed(&refresh_answer(&key, Some(NOW + 10), NOW));
        assert_eq!(ending["expires_in"], "1", "never 0");
    }

    #[test]
    fn oauth_error_bodies() {
        assert_eq!(
            parsed(&OAuthError::INVALID_GRANT.body("rid")),
            json!({"error": "invalid_grant", "error_description": "invalid/expired token", "request_id": "rid"})
        );
        assert_eq!(parsed(&OAuthError::INVALID_TOKEN.body("a\"b"))["request_id"], "a\"b");
        assert_eq!(OAuthError::INVALID_TOKEN.status, 401);
        assert_eq!(OAuthError::MISSING_BEARER.status, 401);
        assert_eq!(OAuthError::INVALID_GRANT.status, 400);
        assert_eq!(OAuthError::UNSUPPORTED_GRANT_TYPE.status, 400);
    }
}
