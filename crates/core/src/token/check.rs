//! Confirm before spending: what the token authority does when the Plum API
//! answers 401 to an access token (contract §4.6).
//!
//! Only a 401 that can be about the token reaches the authority
//! ([`crate::upstream::classify_api_401`]); every other 401 passes straight
//! through and never touches it. For a candidate the authority asks
//! Xoxoday's token check (`GET {OAUTH_URL}/v1/oauth/token` with that
//! bearer; it rotates nothing), one check at a time per token (the Durable
//! Object shares the check in flight, like a refresh), and then:
//!
//! - **invalid**: the token is marked rejected (only if it is still the
//!   current one: compare-and-replace) and replaced at once, whatever the
//!   time since the last refresh; the caller retries once with the new one;
//! - **valid**: nothing is refreshed; the caller gets Xoxoday's 401 status
//!   and body unchanged;
//! - **the check itself failed** (transport, timeout, 5xx, an unreadable or
//!   rate-limited answer, or a 4xx that names a cause other than the
//!   token: [`about_the_token`]): nothing is refreshed, because a rotation
//!   on no evidence is exactly what callers must not be able to cause; the
//!   caller gets `502 upstream_error` saying so, with `Retry-After`, and
//!   `last_error` says so too. A rate-limited check also holds every
//!   further check back until its penalty ends (`penaltySeconds`,
//!   `Retry-After`, or the default penalty; `check_penalty_until_ms`):
//!   asking again inside it would only prolong it (contract §6), so the
//!   callers' `Retry-After` is the penalty's rest. Once every check of the token has failed
//!   for [`CHECK_FAILING_MS`] while the API kept answering 401, the 401s
//!   are evidence enough: the token is replaced as if the check had
//!   said "invalid" (and counts toward the loop guard), so a revoked token
//!   is not kept for days behind a token check that is down.
//!
//! Repeated candidates for one token reuse the verdict: a "valid" verdict
//! for [`VALID_VERDICT_MS`] (so a token Xoxoday's API and its check disagree
//! about costs at most one check a minute, not one per call), a failed check
//! for [`FAILED_VERDICT_MS`].
//!
//! **Loop guard.** If the check keeps confirming rejections of the tokens
//! Xoxoday has just issued (API and check disagreeing with the refresh
//! endpoint, or a revocation loop), every confirmation would cost a
//! rotation. At most [`GUARD_LIMIT`] confirmed rejections within
//! [`GUARD_WINDOW_MS`] (an hour), and at most [`GUARD_DAY_LIMIT`] within
//! [`GUARD_DAY_WINDOW_MS`] (a day), lead to a refresh; past either, callers
//! get `502 upstream_unauthorized` with `Retry-After` until the oldest
//! confirmation inside that window leaves it (with both, the later end).
//! The hour's rule stops a burst; the day's stops a source of endless
//! rejections from costing ten rotations every hour, each a chance for
//! Xoxoday's refresh rate limit to take the refresh token. Real revocations
//! (a dashboard regeneration, a password reset, another admin's tokens)
//! come a few a day and never meet it. A forced refresh is not held back.

use super::{AuthorityState, Refusal};
use crate::http::{HttpAnswer, NoAnswer};
use crate::lenient::lenient_i64;
use crate::time::secs_until;
use crate::upstream::{classify_api_401, names_a_token_error, penalty_named_by, Api401, TOKEN_NAMING_KEYS};
use serde_json::Value;

/// A "valid" verdict answers further candidates for the same token this
/// long (ms) without another check.
pub const VALID_VERDICT_MS: i64 = 60_000;
/// A failed check answers further candidates for the same token this long
/// (ms) without another check.
pub const FAILED_VERDICT_MS: i64 = 5_000;
/// How long every check of a token must have failed, while the API keeps
/// answering it 401, before it is replaced without a verdict (10 minutes:
/// at most six such rotations an hour, fewer under the loop guard).
pub const CHECK_FAILING_MS: i64 = 600_000;
/// At most this many confirmed rejections within [`GUARD_WINDOW_MS`] lead
/// to a refresh.
pub const GUARD_LIMIT: usize = 10;
/// The loop guard's window (one hour).
pub const GUARD_WINDOW_MS: i64 = 3_600_000;
/// At most this many confirmed rejections within [`GUARD_DAY_WINDOW_MS`]
/// lead to a refresh.
pub const GUARD_DAY_LIMIT: usize = 24;
/// The loop guard's daily window (24 hours).
pub const GUARD_DAY_WINDOW_MS: i64 = 86_400_000;

/// What Xoxoday's token check said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckResult {
    /// The token is valid.
    Valid,
    /// The token is invalid (revoked, expired, unknown).
    Invalid,
    /// No verdict: the check failed.
    Failed,
}

impl CheckResult {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckResult::Valid => "valid",
            CheckResult::Invalid => "invalid",
            CheckResult::Failed => "failed",
        }
    }

    fn from_name(name: &str) -> Option<CheckResult> {
        [CheckResult::Valid, CheckResult::Invalid, CheckResult::Failed].into_iter().find(|r| r.as_str() == name)
    }
}

/// The last check (stored as the state's `last_check_*` fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRecord {
    /// Fingerprint of the token checked.
    pub fp: String,
    /// When (epoch ms).
    pub at_ms: i64,
    /// What it said.
    pub result: CheckResult,
}

impl AuthorityState {
    /// The last token check, if one is recorded (and readable).
    pub fn last_check(&self) -> Option<CheckRecord> {
        Some(CheckRecord {
            fp: self.last_check_fp.clone()?,
            at_ms: self.last_check_at_ms?,
            result: CheckResult::from_name(self.last_check_result.as_deref()?)?,
        })
    }

    /// The current access token, if it is the one with fingerprint `fp`
    /// (the compare of compare-and-replace).
    pub fn current_access(&self, fp: &str) -> Option<&super::AccessSlot> {
        self.access.as_ref().filter(|a| a.token.fingerprint() == fp)
    }

    /// Forget the last check, when it was of `fp`.
    pub(super) fn clear_last_check(&mut self, fp: &str) {
        if self.last_check_fp.as_deref() == Some(fp) {
            self.last_check_fp = None;
            self.last_check_at_ms = None;
            self.last_check_result = None;
        }
    }

    pub(super) fn set_last_check(&mut self, c: CheckRecord) {
        self.last_check_fp = Some(c.fp);
        self.last_check_at_ms = Some(c.at_ms);
        self.last_check_result = Some(c.result.as_str().to_string());
    }
}

/// A token check's answer, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Valid; its expiry when the answer gives one.
    Valid {
        /// Epoch ms.
        expires_at_ms: Option<i64>,
    },
    /// Invalid.
    Invalid,
    /// No verdict; a safe sentence.
    Failed(String),
    /// No verdict: Xoxoday rate-limited the check (HTTP `status`) for
    /// `penalty_secs`; no check goes out until that has passed.
    RateLimited {
        /// The answer's status.
        status: u16,
        /// The penalty it named (or the default penalty).
        penalty_secs: u64,
    },
}

/// Is a 4xx of the token check about the token itself (contract §4.6)? A
/// 401 goes by the Plum API's table of 401s ([`classify_api_401`]):
/// `PIPE10013`, an OAuth error or no `errorId` at all can be about the
/// token; any other `errorId` (`PIPE10015`–`17`: user or company disabled,
/// IP not whitelisted) names another cause. Any other 4xx is not the
/// check's documented answer to a dead token (a firewall's 403, say), so it
/// counts only when its body names the token
/// ([`crate::upstream::names_a_token_error`]; the statuses of those bodies
/// are unconfirmed).
fn about_the_token(status: u16, body: &[u8], v: Option<&Value>) -> bool {
    if status == 401 {
        return classify_api_401(401, body) == Api401::TokenCandidate;
    }
    v.is_some_and(names_a_token_error)
}

/// Read a token check's answer (xoxoday-api.md §1.6): 2xx is valid unless
/// its body says otherwise (`error`, or `success: 0`); a 4xx is invalid
/// when it is about the token ([`about_the_token`]), else no verdict;
/// anything else (5xx, a rate-limit body) is no verdict; a rate-limit
/// answer in any shape (`retry_after`: its `Retry-After` header) names its
/// penalty.
pub fn parse_check_response(status: u16, body: &[u8], retry_after: Option<&str>, now_ms: i64) -> CheckOutcome {
    // Read up to its JSON's end, as a refresh answer is.
    let body = &*crate::jsontext::token_answer(body);
    if let Some(penalty_secs) = penalty_named_by(status, body, retry_after, TOKEN_NAMING_KEYS) {
        return CheckOutcome::RateLimited { status, penalty_secs };
    }
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let says = |k: &str| v.as_ref().and_then(|v| v.get(k));
    match status {
        200..=299 => {
            let refused = says("error").is_some_and(|e| !e.is_null())
                || says("success").and_then(lenient_i64) == Some(0);
            if refused {
                CheckOutcome::Invalid
            } else {
                CheckOutcome::Valid { expires_at_ms: super::parse_validate_response(status, body, now_ms) }
            }
        }
        400..=499 if about_the_token(status, body, v.as_ref()) => CheckOutcome::Invalid,
        401 | 403 => CheckOutcome::Failed(format!("token check answered HTTP {status} without naming the token as its cause")),
        _ => CheckOutcome::Failed(format!("token check answered HTTP {status}")),
    }
}

/// Read what a token check got: an answer, or none within `timeout_ms`
/// (a failed check, never a verdict).
pub fn read_check(got: &Result<HttpAnswer, NoAnswer>, now_ms: i64, timeout_ms: u64) -> CheckOutcome {
    match got {
        Ok(ans) => parse_check_response(ans.status, &ans.body, ans.retry_after.as_deref(), now_ms),
        Err(NoAnswer::Timeout) => CheckOutcome::Failed(format!("no answer within {timeout_ms} ms")),
        Err(NoAnswer::Transport) => CheckOutcome::Failed("transport error".into()),
    }
}

impl CheckOutcome {
    /// What the check said, as recorded and logged.
    pub fn result(&self) -> CheckResult {
        match self {
            CheckOutcome::Valid { .. } => CheckResult::Valid,
            CheckOutcome::Invalid => CheckResult::Invalid,
            CheckOutcome::Failed(_) | CheckOutcome::RateLimited { .. } => CheckResult::Failed,
        }
    }

    /// Why there is no verdict, as said to callers and in `last_error`
    /// (empty for a verdict).
    fn failure(self) -> String {
        match self {
            CheckOutcome::Failed(message) => message,
            CheckOutcome::RateLimited { status, penalty_secs } => format!("token check rate-limited by Xoxoday (HTTP {status}) for {penalty_secs} s"),
            CheckOutcome::Valid { .. } | CheckOutcome::Invalid => String::new(),
        }
    }
}

/// What to do with a candidate, decided before or after the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckVerdict {
    /// Hand out the current token as for a plain request (the candidate is
    /// no longer current, or it is confirmed rejected and must be
    /// replaced: [`super::plan`] decides how).
    Serve,
    /// The token is valid: the caller passes Xoxoday's 401 on unchanged.
    PassThrough,
    /// Answer this error.
    Refuse(Refusal),
}

/// Before a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckPlan {
    /// Decided without asking Xoxoday.
    Verdict(CheckVerdict),
    /// Ask Xoxoday's token check (or join the check in flight).
    Check,
}

/// Decide what a candidate 401 for the token with fingerprint `fp` needs.
pub fn plan_check(state: &AuthorityState, fp: &str, now_ms: i64) -> CheckPlan {
    let Some(current) = state.current_access(fp) else {
        // Already replaced (or never ours): the caller retries with the
        // current token.
        return CheckPlan::Verdict(CheckVerdict::Serve);
    };
    if current.rejected {
        return CheckPlan::Verdict(CheckVerdict::Serve);
    }
    let recent = state.last_check().filter(|c| c.fp == fp && now_ms >= c.at_ms);
    match recent {
        Some(c) if c.result == CheckResult::Valid && now_ms - c.at_ms < VALID_VERDICT_MS => {
            CheckPlan::Verdict(CheckVerdict::PassThrough)
        }
        _ if state.check_penalty_until_ms.is_some_and(|t| t > now_ms) => CheckPlan::Verdict(CheckVerdict::Refuse(Refusal::CheckFailed {
            message: "Xoxoday rate-limited its token check; plumgate asks again once the penalty ends".into(),
            retry_after_secs: retry_secs(state.check_penalty_until_ms.unwrap_or(now_ms), now_ms),
        })),
        Some(c) if c.result == CheckResult::Failed && now_ms - c.at_ms < FAILED_VERDICT_MS => {
            CheckPlan::Verdict(CheckVerdict::Refuse(Refusal::CheckFailed {
                message: "a check of this token failed moments ago".into(),
                retry_after_secs: retry_secs(c.at_ms + FAILED_VERDICT_MS, now_ms),
            }))
        }
        _ => CheckPlan::Check,
    }
}

/// Xoxoday rate-limited a token check for `penalty_secs`: no check goes
/// out before the returned end (a later penalty never shortens an earlier).
pub fn note_check_penalty(state: &mut AuthorityState, penalty_secs: u64, now_ms: i64) -> i64 {
    let until = now_ms.saturating_add(crate::time::secs_to_ms(penalty_secs));
    let until = state.check_penalty_until_ms.filter(|t| *t > until).unwrap_or(until);
    state.check_penalty_until_ms = Some(until);
    until
}

/// Record the check of `fp` and decide. On "invalid" the token is marked
/// rejected (compare-and-replace: only while it is the current token) and
/// the confirmation counts toward the loop guard; a "valid" answer with an
/// earlier expiry than the one held teaches the authority that expiry.
pub fn apply_check(state: &mut AuthorityState, fp: &str, outcome: CheckOutcome, now_ms: i64) -> CheckVerdict {
    // A penalty holds every later check back; the caller waits it out.
    let mut wait_until = now_ms.saturating_add(FAILED_VERDICT_MS);
    let outcome = match outcome {
        CheckOutcome::RateLimited { penalty_secs, .. } => {
            wait_until = wait_until.max(note_check_penalty(state, penalty_secs, now_ms));
            CheckOutcome::Failed(outcome.failure())
        }
        o => o,
    };
    // A refresh replaced the token while it was being checked: no verdict
    // is needed, its successor serves (the caller tries it once), and the
    // failure says nothing about the token in use now.
    if matches!(outcome, CheckOutcome::Failed(_)) && state.current_access(fp).is_none() {
        return CheckVerdict::Serve;
    }
    // A streak of failed checks of this token, none more than
    // CHECK_FAILING_MS after the one before: since when. (Compared field
    // by field: `last_check` here cost the wasm 0.3 KB.)
    // A gap the check's own penalty explains (no check could go out
    // before it ended) does not break the streak, or a penalty of 10
    // minutes or more would keep a revoked token for ever.
    let penalty_end = state.check_penalty_until_ms;
    let streak = state.last_check_fp.as_deref() == Some(fp)
        && state.last_check_result.as_deref() == Some(CheckResult::Failed.as_str())
        && state.last_check_at_ms.is_some_and(|t| now_ms - t < CHECK_FAILING_MS || penalty_end.is_some_and(|p| p >= t && now_ms - p < CHECK_FAILING_MS));
    let failing_since = match &outcome {
        CheckOutcome::Failed(_) if streak => state.check_failing_since_ms.or(state.last_check_at_ms),
        CheckOutcome::Failed(_) => Some(now_ms),
        _ => None,
    };
    state.check_failing_since_ms = failing_since;
    state.set_last_check(CheckRecord { fp: fp.to_string(), at_ms: now_ms, result: outcome.result() });
    let outcome = match (outcome, failing_since) {
        (CheckOutcome::Failed(message), Some(since)) => {
            let replace = now_ms - since >= CHECK_FAILING_MS && state.current_access(fp).is_some();
            state.last_error = Some(if replace {
                "token checks failed for 10 minutes while the Plum API answered 401 to the access token: replaced without a verdict".into()
            } else {
                format!("the token check failed ({message}) after the Plum API answered 401 to the access token")
            });
            // Not `last_error_at_ms`: that is a refresh attempt's, and the
            // forced refresh's throttle reads it. A check failing every 5 s
            // would hold off the admin's way out before the 10 minutes.
            if replace {
                state.check_failing_since_ms = None;
                CheckOutcome::Invalid
            } else {
                CheckOutcome::Failed(message)
            }
        }
        (o, _) => o,
    };
    let current = state.access.as_mut().filter(|a| a.token.fingerprint() == fp);
    match outcome {
        CheckOutcome::Valid { expires_at_ms } => {
            if let (Some(a), Some(exp)) = (current, expires_at_ms) {
                if exp < a.expires_at_ms {
                    a.expires_at_ms = exp;
                }
            }
            CheckVerdict::PassThrough
        }
        CheckOutcome::Invalid => {
            if let Some(a) = current.filter(|a| !a.rejected) {
                a.rejected = true;
                // Replaced at once (contract §4.6), not after the backoff of
                // refreshes that failed before: that backoff was for
                // refreshing a token that still served.
                state.next_attempt_at_ms = None;
                let list = &mut state.confirmed_rejections_ms;
                list.retain(|t| now_ms - t < GUARD_DAY_WINDOW_MS && *t <= now_ms);
                list.push(now_ms);
                let excess = list.len().saturating_sub(GUARD_DAY_LIMIT + 1);
                list.drain(..excess);
                // The guard now holds refreshes back: say so where the
                // operator looks (`GET /v1/token`), until a refresh succeeds.
                if let Some((until, rejections, within)) = guard(state, now_ms) {
                    state.last_error = Some(format!(
                        "loop guard: Xoxoday rejected {rejections} of its access tokens within {within}, so plumgate pauses refreshing until {}",
                        crate::time::rfc3339(until)
                    ));
                    state.last_error_at_ms = Some(now_ms);
                }
            }
            CheckVerdict::Serve
        }
        failed => CheckVerdict::Refuse(Refusal::CheckFailed { message: failed.failure(), retry_after_secs: retry_secs(wait_until, now_ms) }),
    }
}

/// After a check of `fp` (applied to `state`): whether the KV copy must go.
/// Only while the checked token is still the current one and rejected: a
/// token a refresh replaced during the check leaves KV holding its
/// successor, which a "this one is invalid" about the old token must not
/// delete (every new isolate would ask the authority until the next
/// refresh, days later).
pub fn leaves_kv(state: &AuthorityState, fp: &str) -> bool {
    state.current_access(fp).is_some_and(|a| a.rejected)
}

fn retry_secs(until_ms: i64, now_ms: i64) -> u64 {
    secs_until(until_ms, now_ms).max(1)
}

/// While the loop guard holds refreshes back: until when (epoch ms), and
/// the confirmed rejections (how many, within what: "an hour" or "a day")
/// of the rule that decides it. A rule holds until the oldest of the
/// confirmations inside its window that put it over its limit leaves it;
/// with both holding, the later end decides.
pub fn guard(state: &AuthorityState, now_ms: i64) -> Option<(i64, u32, &'static str)> {
    let mut inside: Vec<i64> =
        state.confirmed_rejections_ms.iter().copied().filter(|t| now_ms - t < GUARD_DAY_WINDOW_MS && *t <= now_ms).collect();
    // At most GUARD_DAY_LIMIT + 1 entries: an insertion sort (a general
    // sort would add a few KB to the worker's wasm).
    for i in 1..inside.len() {
        let mut j = i;
        while j > 0 && inside[j - 1] > inside[j] {
            inside.swap(j - 1, j);
            j -= 1;
        }
    }
    // A rule holds while more than its limit are inside its window, until
    // the oldest of the newest limit + 1 leaves it.
    let day = inside.len();
    let hour = inside.iter().filter(|t| now_ms - **t < GUARD_WINDOW_MS).count();
    let hour_end = (hour > GUARD_LIMIT).then(|| (inside[day - GUARD_LIMIT - 1] + GUARD_WINDOW_MS, hour as u32, "an hour"));
    let day_end = (day > GUARD_DAY_LIMIT).then(|| (inside[day - GUARD_DAY_LIMIT - 1] + GUARD_DAY_WINDOW_MS, day as u32, "a day"));
    if hour_end.map(|h| h.0) > day_end.map(|d| d.0) {
        hour_end
    } else {
        day_end
    }
}

/// While the loop guard holds refreshes back: until when (epoch ms).
pub fn guard_until_ms(state: &AuthorityState, now_ms: i64) -> Option<i64> {
    guard(state, now_ms).map(|g| g.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{AccessToken, RefreshToken};
    use crate::token::{plan, AccessSlot, Plan, RefreshSlot, TokenPolicy, Trigger};

    const T0: i64 = 1_795_626_582_000;

    fn state_with(token: &str) -> AuthorityState {
        AuthorityState {
            access: Some(AccessSlot {
                token: AccessToken::new(token),
                expires_at_ms: T0 + 10 * 86_400_000,
                obtained_at_ms: T0,
                rejected: false,
            }),
            refresh: Some(RefreshSlot { token: RefreshToken::new("rt"), expires_at_ms: T0 + 30 * 86_400_000, expiry_known: true }),
            last_refresh_at_ms: Some(T0),
            ..Default::default()
        }
    }

    fn fp(t: &str) -> String {
        AccessToken::new(t).fingerprint()
    }

    #[test]
    fn check_answers_are_read() {
        let valid = br#"{"access_token":"a","token_type":"bearer","expires_in":1000}"#;
        assert_eq!(parse_check_response(200, valid, None, T0), CheckOutcome::Valid { expires_at_ms: Some(T0 + 1_000_000) });
        assert_eq!(parse_check_response(200, b"{}", None, T0), CheckOutcome::Valid { expires_at_ms: None });
        // A null `error` says no error: valid (else a caller's 401 could
        // cost a rotation).
        let null_error = br#"{"access_token":"a","expires_in":1000,"error":null}"#;
        assert_eq!(parse_check_response(200, null_error, None, T0), CheckOutcome::Valid { expires_at_ms: Some(T0 + 1_000_000) });
        assert_eq!(parse_check_response(200, b"not json", None, T0), CheckOutcome::Valid { expires_at_ms: None });
        assert_eq!(parse_check_response(200, br#"{"success":0,"error_message_id":"auth.token_error"}"#, None, T0), CheckOutcome::Invalid);
        assert_eq!(parse_check_response(200, br#"{"error":"invalid_token"}"#, None, T0), CheckOutcome::Invalid);
        assert_eq!(parse_check_response(401, br#"{"error":"invalid_token","error_description":"invalid/expired token"}"#, None, T0), CheckOutcome::Invalid);
        assert_eq!(parse_check_response(401, b"", None, T0), CheckOutcome::Invalid);
        // Bytes after the JSON (a proxy's tail), or a byte order mark
        // before it: read as the JSON alone, as a refresh answer is.
        assert_eq!(parse_check_response(200, b"{\"success\":0,\"error\":\"invalid token\"}\n<!-- edge -->", None, T0), CheckOutcome::Invalid);
        assert_eq!(parse_check_response(200, b"\xEF\xBB\xBF{\"error\":\"invalid_token\"}", None, T0), CheckOutcome::Invalid);
        assert!(matches!(parse_check_response(429, b"{\"message\":\"auth.request_limit_exceeded\"} ", None, T0), CheckOutcome::RateLimited { .. }));
        assert!(matches!(parse_check_response(403, b"", None, T0), CheckOutcome::Failed(_)), "a bare 403 names no token");
        for (status, body) in [(500, &b""[..]), (503, b"<html>"), (408, b""), (404, b"")] {
            assert!(matches!(parse_check_response(status, body, None, T0), CheckOutcome::Failed(_)), "{status}");
        }
        // Rate-limited, in every shape: no verdict, and the penalty named
        // (the body's, then Retry-After, else the default 60 s).
        for (status, body, retry_after, penalty_secs) in [
            (429, &b""[..], Some("120"), 120),
            (429, b"", None, 60),
            (400, br#"{"errors":[{"message":"auth.request_limit_exceeded","penaltySeconds":5}]}"#, None, 5),
            (200, br#"{"message":"auth.request_limit_exceeded"}"#, None, 60),
        ] {
            assert_eq!(parse_check_response(status, body, retry_after, T0), CheckOutcome::RateLimited { status, penalty_secs }, "{status}");
        }
    }

    /// A 4xx of the token check confirms a dead token only when it can be
    /// about the token (contract §4.6): the Plum API's table of 401s
    /// (`upstream::classify_api_401`) for a 401, and a body naming the
    /// token for any other 4xx. Any other cause is no verdict: nothing is
    /// spent.
    #[test]
    fn a_refusal_naming_another_cause_confirms_nothing() {
        let not_about_the_token: &[(u16, &str)] = &[
            (401, r#"{"code":401,"errorId":"PIPE10017","errorInfo":"Access restricted for this IP"}"#),
            (401, r#"{"code":401,"errorId":"PIPE10015","errorInfo":"Plum Pro APIs: User is disabled"}"#),
            (401, r#"{"code":401,"errorId":"PIPE10016","errorInfo":"Plum Pro APIs: Company is disabled"}"#),
            (401, r#"{"code":401,"errorId":"PIPE99999","error":"invalid_token"}"#),
            (403, ""),
            (403, "<html><body>Access denied (firewall)</body></html>"),
            (403, r#"{"error":"Forbidden"}"#),
            (403, r#"{"code":403,"errorId":"PIPE10017","errorInfo":"Access restricted for this IP"}"#),
            (400, r#"{"error":"invalid_request","error_description":"missing/invalid parameters authorization header"}"#),
            (404, "not found"),
            (403, r#"{"code":403,"errorId":"PIPE10017","error":"invalid_token"}"#),
            (400, r#"{"code":400,"errorId":"PIPE10015","error_message_id":"auth.token_error"}"#),
        ];
        for (status, body) in not_about_the_token {
            match parse_check_response(*status, body.as_bytes(), None, T0) {
                CheckOutcome::Failed(m) => {
                    assert!(m.contains(&format!("HTTP {status}")) && !m.contains("PIPE") && !m.contains("firewall"), "{m}")
                }
                other => panic!("{status} {body}: {other:?}"),
            }
        }
        let about_the_token: &[(u16, &str)] = &[
            (401, r#"{"code":401,"errorId":"PIPE10013","errorInfo":"Plum Pro APIs: Invalid authorization header"}"#),
            (401, r#"{"error":"invalid_token","error_description":"invalid/expired token"}"#),
            (401, r#"{"error":"Unauthorized"}"#),
            (401, ""),
            (401, "<html>401</html>"),
            (403, r#"{"error":"invalid_token","error_description":"invalid/expired token"}"#),
            (403, r#"{"code":403,"errorId":"PIPE10013"}"#),
            (403, r#"{"success":0,"error_message_id":"auth.token_error"}"#),
            // Any other 4xx naming the token (statuses unconfirmed).
            (400, r#"{"error":"invalid_token","error_description":"invalid/expired token"}"#),
            (400, r#"{"success":0,"error_message_id":"auth.token_error"}"#),
        ];
        for (status, body) in about_the_token {
            assert_eq!(parse_check_response(*status, body.as_bytes(), None, T0), CheckOutcome::Invalid, "{status} {body}");
        }
        // Not confirmed: the token stays, nothing counts toward the guard.
        let mut s = state_with("at-1");
        let ip = parse_check_response(401, not_about_the_token[0].1.as_bytes(), None, T0);
        assert!(matches!(apply_check(&mut s, &fp("at-1"), ip, T0), CheckVerdict::Refuse(Refusal::CheckFailed { .. })));
        assert!(!s.access.as_ref().unwrap().rejected && s.confirmed_rejections_ms.is_empty());
    }

    #[test]
    fn a_check_without_an_answer_is_no_verdict() {
        assert_eq!(read_check(&Err(NoAnswer::Timeout), T0, 15_000), CheckOutcome::Failed("no answer within 15000 ms".into()));
        assert_eq!(read_check(&Err(NoAnswer::Transport), T0, 15_000), CheckOutcome::Failed("transport error".into()));
        let invalid = HttpAnswer { status: 401, body: Vec::new(), retry_after: None };
        assert_eq!(read_check(&Ok(invalid), T0, 15_000), CheckOutcome::Invalid);
        let names: Vec<&str> = [CheckOutcome::Valid { expires_at_ms: None }, CheckOutcome::Invalid, CheckOutcome::Failed("x".into())]
            .iter()
            .map(|o| o.result().as_str())
            .collect();
        assert_eq!(names, ["valid", "invalid", "failed"]);
    }

    #[test]
    fn plan_check_every_arm() {
        let s = state_with("at-1");
        // Not the current token (already replaced): serve the current one.
        assert_eq!(plan_check(&s, &fp("at-0"), T0), CheckPlan::Verdict(CheckVerdict::Serve));
        // No token at all: serve (plan decides to refresh).
        assert_eq!(plan_check(&AuthorityState::default(), &fp("at-1"), T0), CheckPlan::Verdict(CheckVerdict::Serve));
        // The current token, never checked: check.
        assert_eq!(plan_check(&s, &fp("at-1"), T0), CheckPlan::Check);
        // Already confirmed rejected: serve (replace).
        let mut r = s.clone();
        r.access.as_mut().unwrap().rejected = true;
        assert_eq!(plan_check(&r, &fp("at-1"), T0), CheckPlan::Verdict(CheckVerdict::Serve));
        // A recent "valid" verdict answers for a minute.
        let mut v = s.clone();
        v.set_last_check(CheckRecord { fp: fp("at-1"), at_ms: T0, result: CheckResult::Valid });
        assert_eq!(plan_check(&v, &fp("at-1"), T0 + 59_999), CheckPlan::Verdict(CheckVerdict::PassThrough));
        assert_eq!(plan_check(&v, &fp("at-1"), T0 + 60_000), CheckPlan::Check);
        assert_eq!(plan_check(&v, &fp("at-1"), T0 - 1), CheckPlan::Check, "clock went back: check again");
        // A recent failed check answers for 5 s.
        let mut f = s.clone();
        f.set_last_check(CheckRecord { fp: fp("at-1"), at_ms: T0, result: CheckResult::Failed });
        match plan_check(&f, &fp("at-1"), T0 + 1000) {
            CheckPlan::Verdict(CheckVerdict::Refuse(Refusal::CheckFailed { retry_after_secs, .. })) => assert_eq!(retry_after_secs, 4),
            other => panic!("{other:?}"),
        }
        assert_eq!(plan_check(&f, &fp("at-1"), T0 + 5000), CheckPlan::Check);
        // A verdict about another token does not count.
        let mut o = s.clone();
        o.set_last_check(CheckRecord { fp: fp("at-0"), at_ms: T0, result: CheckResult::Valid });
        assert_eq!(plan_check(&o, &fp("at-1"), T0 + 1), CheckPlan::Check);
        // An old "invalid" record of this token (not rejected any more?) is no verdict.
        let mut i = s.clone();
        i.set_last_check(CheckRecord { fp: fp("at-1"), at_ms: T0, result: CheckResult::Invalid });
        assert_eq!(plan_check(&i, &fp("at-1"), T0 + 1), CheckPlan::Check);
    }

    #[test]
    fn invalid_marks_rejected_and_refreshes_at_once_inside_the_min_interval() {
        let mut s = state_with("at-1");
        let policy = TokenPolicy::default();
        // Seconds after the last refresh: the minimum interval does not apply.
        let now = T0 + 3_000;
        assert_eq!(apply_check(&mut s, &fp("at-1"), CheckOutcome::Invalid, now), CheckVerdict::Serve);
        assert!(s.access.as_ref().unwrap().rejected);
        assert_eq!(s.confirmed_rejections_ms, vec![now]);
        assert_eq!(s.last_check(), Some(CheckRecord { fp: fp("at-1"), at_ms: now, result: CheckResult::Invalid }));
        assert_eq!(plan(&s, Trigger::Request, now, &policy), Plan::RefreshThenServe);
        assert!(leaves_kv(&s, &fp("at-1")), "a rejected current token leaves KV");
        // A second confirmation of the same token counts once.
        apply_check(&mut s, &fp("at-1"), CheckOutcome::Invalid, now + 1);
        assert_eq!(s.confirmed_rejections_ms.len(), 1);
    }

    #[test]
    fn a_confirmed_rejection_is_replaced_at_once_not_after_an_earlier_backoff() {
        let mut s = state_with("at-1");
        let policy = TokenPolicy::default();
        // Early-window refreshes failed during an outage of the token
        // endpoint: the next attempt is 20 minutes away.
        s.consecutive_failures = 6;
        s.next_attempt_at_ms = Some(T0 + 20 * 60_000);
        let now = T0 + 60_000;
        assert_eq!(plan(&s, Trigger::Request, now, &policy), Plan::Serve, "the token still serves");
        apply_check(&mut s, &fp("at-1"), CheckOutcome::Invalid, now);
        assert_eq!(plan(&s, Trigger::Request, now, &policy), Plan::RefreshThenServe, "not 502 backing off for 19 minutes");
    }

    #[test]
    fn failed_checks_are_no_refresh_attempts_for_the_forced_refresh_throttle() {
        let mut s = state_with("at-1");
        let policy = TokenPolicy::default();
        let t = T0 + 3_600_000;
        // A check every 5 s fails (the Plum API answers 401 to the token).
        for i in 0..30 {
            apply_check(&mut s, &fp("at-1"), CheckOutcome::Failed("token check answered HTTP 503".into()), t + i * 5_000);
            assert_eq!(plan(&s, Trigger::Forced, t + i * 5_000 + 1_000, &policy), Plan::RefreshThenServe, "{i}");
        }
        // A refresh attempt during the streak (a success, a failure) is one:
        // the next forced refresh waits the interval, checks failing or not.
        s.last_refresh_at_ms = Some(t + 190_000);
        assert!(matches!(plan(&s, Trigger::Forced, t + 200_000, &policy), Plan::Refuse(Refusal::Throttled { .. })));
        s.last_refresh_at_ms = Some(t);
        s.last_error_at_ms = Some(t + 190_000);
        assert!(matches!(plan(&s, Trigger::Forced, t + 200_000, &policy), Plan::Refuse(Refusal::Throttled { .. })));
    }

    #[test]
    fn invalid_for_a_token_no_longer_current_changes_nothing() {
        let mut s = state_with("at-2");
        assert_eq!(apply_check(&mut s, &fp("at-1"), CheckOutcome::Invalid, T0), CheckVerdict::Serve);
        assert!(!s.access.as_ref().unwrap().rejected, "compare-and-replace: at-2 stays");
        assert!(s.confirmed_rejections_ms.is_empty());
        assert!(!leaves_kv(&s, &fp("at-1")), "KV holds at-2 now: it stays");
        assert!(!leaves_kv(&s, &fp("at-2")), "at-2 is not rejected");
    }

    #[test]
    fn a_failed_check_of_a_token_replaced_meanwhile_serves_its_successor() {
        for outcome in [
            CheckOutcome::Failed("token check answered HTTP 503".into()),
            CheckOutcome::RateLimited { status: 429, penalty_secs: 60 },
        ] {
            let mut s = state_with("at-2");
            assert_eq!(apply_check(&mut s, &fp("at-1"), outcome, T0), CheckVerdict::Serve);
            assert_eq!((s.last_error.as_deref(), s.check_failing_since_ms), (None, None));
            assert!(!s.access.as_ref().unwrap().rejected);
        }
        // The check's own penalty still holds later checks back.
        let mut s = state_with("at-2");
        apply_check(&mut s, &fp("at-1"), CheckOutcome::RateLimited { status: 429, penalty_secs: 60 }, T0);
        assert_eq!(s.check_penalty_until_ms, Some(T0 + 60_000));
    }

    #[test]
    fn valid_passes_through_and_learns_an_earlier_expiry_only() {
        let mut s = state_with("at-1");
        let held = s.access.as_ref().unwrap().expires_at_ms;
        let v = apply_check(&mut s, &fp("at-1"), CheckOutcome::Valid { expires_at_ms: Some(held + 1000) }, T0);
        assert_eq!(v, CheckVerdict::PassThrough);
        assert_eq!(s.access.as_ref().unwrap().expires_at_ms, held);
        apply_check(&mut s, &fp("at-1"), CheckOutcome::Valid { expires_at_ms: Some(held - 1000) }, T0);
        assert_eq!(s.access.as_ref().unwrap().expires_at_ms, held - 1000);
        apply_check(&mut s, &fp("at-1"), CheckOutcome::Valid { expires_at_ms: None }, T0);
        assert!(!s.access.as_ref().unwrap().rejected);
        assert_eq!(s.last_check().unwrap().result, CheckResult::Valid);
        assert!(s.confirmed_rejections_ms.is_empty());
        assert_eq!(plan(&s, Trigger::Request, T0 + 1, &TokenPolicy::default()), Plan::Serve);
    }

    #[test]
    fn failed_check_spends_nothing() {
        let mut s = state_with("at-1");
        let v = apply_check(&mut s, &fp("at-1"), CheckOutcome::Failed("token check answered HTTP 503".into()), T0);
        assert_eq!(
            v,
            CheckVerdict::Refuse(Refusal::CheckFailed { message: "token check answered HTTP 503".into(), retry_after_secs: 5 })
        );
        assert!(!s.access.as_ref().unwrap().rejected);
        assert_eq!(s.last_check().unwrap().result, CheckResult::Failed);
        let e = match v {
            CheckVerdict::Refuse(r) => r.api_error(),
            _ => unreachable!(),
        };
        assert_eq!((e.status, e.code.as_str(), e.retry_after_secs), (502, "upstream_error", Some(5)));
        assert!(e.message.contains("does not refresh without confirmation"), "{}", e.message);
    }

    #[test]
    fn a_rate_limited_check_holds_every_check_back_until_its_penalty_ends() {
        let refusal = |v: CheckVerdict| match v {
            CheckVerdict::Refuse(r) => r.api_error(),
            other => panic!("{other:?}"),
        };
        let planned = |s: &AuthorityState, at: i64| match plan_check(s, &fp("at-1"), at) {
            CheckPlan::Verdict(v) => Some(refusal(v)),
            CheckPlan::Check => None,
        };
        let mut s = state_with("at-1");
        let e = refusal(apply_check(&mut s, &fp("at-1"), CheckOutcome::RateLimited { status: 429, penalty_secs: 60 }, T0));
        assert_eq!(s.check_penalty_until_ms, Some(T0 + 60_000));
        assert_eq!((e.status, e.code.as_str(), e.retry_after_secs), (502, "upstream_error", Some(60)), "the caller waits out the penalty, not 5 s");
        assert!(e.message.contains("rate-limited by Xoxoday (HTTP 429) for 60 s"), "{}", e.message);
        assert_eq!(s.last_check().unwrap().result, CheckResult::Failed);
        assert!(!s.access.as_ref().unwrap().rejected, "nothing spent");
        // No check inside it (the 5 s of a failed verdict long past); its
        // rest is the callers' Retry-After.
        for (at, left) in [(5_000, 55), (30_000, 30), (59_001, 1)] {
            let e = planned(&s, T0 + at).expect("no check during the penalty");
            assert_eq!((e.status, e.retry_after_secs), (502, Some(left)), "{at}");
            assert!(e.message.contains("rate-limited its token check"), "{}", e.message);
        }
        assert!(planned(&s, T0 + 60_000).is_none(), "over: the next 401 is checked");
        // Another token's candidates wait too: the penalty is the check's.
        let other = AuthorityState { access: state_with("at-2").access, ..s.clone() };
        assert!(matches!(plan_check(&other, &fp("at-2"), T0 + 10_000), CheckPlan::Verdict(CheckVerdict::Refuse(_))));
        // A "valid" verdict from before still answers without a check.
        let mut v = s.clone();
        v.set_last_check(CheckRecord { fp: fp("at-1"), at_ms: T0 + 1_000, result: CheckResult::Valid });
        assert_eq!(plan_check(&v, &fp("at-1"), T0 + 2_000), CheckPlan::Verdict(CheckVerdict::PassThrough));
        // A shorter penalty does not cut a longer one short.
        apply_check(&mut s, &fp("at-1"), CheckOutcome::RateLimited { status: 400, penalty_secs: 5 }, T0 + 1_000);
        assert_eq!(s.check_penalty_until_ms, Some(T0 + 60_000));
        // Rate-limited checks are failed checks of the streak: ten minutes
        // of them, penalties honoured, still replace the token.
        let mut s = state_with("at-1");
        for at in (0..=CHECK_FAILING_MS).step_by(60_000) {
            assert!(planned(&s, T0 + at).is_none(), "{at}: the previous penalty is over");
            apply_check(&mut s, &fp("at-1"), CheckOutcome::RateLimited { status: 429, penalty_secs: 60 }, T0 + at);
        }
        assert!(s.access.as_ref().unwrap().rejected);
        // ... penalties of 10 minutes or more too: the gap they explain
        // keeps the streak, so the token is replaced at the first check
        // after ten minutes of them, not never.
        let mut s = state_with("at-1");
        apply_check(&mut s, &fp("at-1"), CheckOutcome::RateLimited { status: 429, penalty_secs: 900 }, T0);
        assert!(planned(&s, T0 + 899_000).is_some(), "held back for the whole penalty");
        let v = apply_check(&mut s, &fp("at-1"), CheckOutcome::RateLimited { status: 429, penalty_secs: 900 }, T0 + 900_000);
        assert_eq!((v, s.access.as_ref().unwrap().rejected), (CheckVerdict::Serve, true));
        // A gap no penalty explains still starts a streak of its own.
        let mut s = state_with("at-1");
        apply_check(&mut s, &fp("at-1"), CheckOutcome::RateLimited { status: 429, penalty_secs: 60 }, T0);
        apply_check(&mut s, &fp("at-1"), CheckOutcome::Failed("x".into()), T0 + 60_000 + CHECK_FAILING_MS);
        assert_eq!(s.check_failing_since_ms, Some(T0 + 60_000 + CHECK_FAILING_MS));
        assert!(!s.access.as_ref().unwrap().rejected);
    }

    #[test]
    fn a_token_check_that_keeps_failing_does_not_keep_a_rejected_token_for_ever() {
        let policy = TokenPolicy::default();
        let failed = || CheckOutcome::Failed("token check answered HTTP 404".into());
        let mut s = state_with("at-1");
        // Every check fails (the endpoint is down) while the API keeps answering 401.
        for (i, at) in [0, 5_000, 120_000, 599_999].into_iter().enumerate() {
            let v = apply_check(&mut s, &fp("at-1"), failed(), T0 + at);
            assert!(matches!(v, CheckVerdict::Refuse(Refusal::CheckFailed { .. })), "{i}: {v:?}");
            assert!(!s.access.as_ref().unwrap().rejected, "{i}: nothing spent yet");
            assert_eq!(s.check_failing_since_ms, Some(T0), "{i}: the streak's start");
            let why = s.last_error.clone().unwrap();
            assert!(why.starts_with("the token check failed (token check answered HTTP 404) after the Plum API answered 401"), "{why}");
        }
        // Ten minutes of failed checks: the 401s are evidence enough.
        let v = apply_check(&mut s, &fp("at-1"), failed(), T0 + CHECK_FAILING_MS);
        assert_eq!(v, CheckVerdict::Serve);
        assert!(s.access.as_ref().unwrap().rejected);
        assert_eq!(s.check_failing_since_ms, None);
        assert_eq!(s.confirmed_rejections_ms, vec![T0 + CHECK_FAILING_MS], "counts toward the loop guard");
        assert!(s.last_error.clone().unwrap().starts_with("token checks failed for 10 minutes while the Plum API answered 401"));
        assert_eq!(plan(&s, Trigger::Request, T0 + CHECK_FAILING_MS, &policy), Plan::RefreshThenServe);
        // A verdict ends a streak; a check of another token starts its own.
        let mut s = state_with("at-1");
        apply_check(&mut s, &fp("at-1"), failed(), T0);
        apply_check(&mut s, &fp("at-1"), CheckOutcome::Valid { expires_at_ms: None }, T0 + 300_000);
        assert_eq!(s.check_failing_since_ms, None);
        apply_check(&mut s, &fp("at-1"), failed(), T0 + 400_000);
        assert_eq!(s.check_failing_since_ms, Some(T0 + 400_000));
        // Failed checks of a token no longer current replace nothing and
        // leave the current token's streak as it was.
        for at in [500_000, 500_000 + CHECK_FAILING_MS + 1] {
            assert_eq!(apply_check(&mut s, &fp("at-other"), failed(), T0 + at), CheckVerdict::Serve);
            assert_eq!(s.check_failing_since_ms, Some(T0 + 400_000));
        }
        assert!(!s.access.as_ref().unwrap().rejected);
        // A failed check long after the last one starts a streak of its own.
        let mut s = state_with("at-1");
        apply_check(&mut s, &fp("at-1"), failed(), T0);
        let v = apply_check(&mut s, &fp("at-1"), failed(), T0 + 3 * 86_400_000);
        assert!(matches!(v, CheckVerdict::Refuse(_)), "{v:?}");
        assert_eq!(s.check_failing_since_ms, Some(T0 + 3 * 86_400_000));
        assert!(!s.access.as_ref().unwrap().rejected);
    }

    /// Confirmed rejections stamped after now (a clock that went back)
    /// neither count toward the loop guard nor stay stored: they would
    /// pause refreshing on no rejection of this clock's.
    #[test]
    fn confirmations_from_a_clock_ahead_neither_count_nor_stay() {
        let p = TokenPolicy::default();
        let now = T0 + 86_400_000;
        let mut s = state_with("at");
        s.confirmed_rejections_ms = (1..=11).map(|i| now + i * 60_000).collect();
        s.access.as_mut().unwrap().rejected = true;
        assert_eq!(guard(&s, now), None);
        assert_eq!(plan(&s, Trigger::Request, now, &p), Plan::RefreshThenServe);
        let mut s = state_with("at");
        s.confirmed_rejections_ms = vec![now + 3_600_000];
        assert_eq!(apply_check(&mut s, &fp("at"), CheckOutcome::Invalid, now), CheckVerdict::Serve);
        assert_eq!(s.confirmed_rejections_ms, vec![now]);
    }

    /// A failed check recorded without the streak's start (a state written
    /// before `check_failing_since_ms` existed) counts from that check: the
    /// ten minutes are not started again.
    #[test]
    fn a_failing_streak_without_its_start_counts_from_its_last_check() {
        let mut s = state_with("at");
        s.set_last_check(CheckRecord { fp: fp("at"), at_ms: T0, result: CheckResult::Failed });
        assert_eq!(s.check_failing_since_ms, None);
        let failed = || CheckOutcome::Failed("token check answered HTTP 503".into());
        assert!(matches!(apply_check(&mut s, &fp("at"), failed(), T0 + 300_000), CheckVerdict::Refuse(_)));
        assert_eq!(s.check_failing_since_ms, Some(T0));
        assert_eq!(apply_check(&mut s, &fp("at"), failed(), T0 + CHECK_FAILING_MS), CheckVerdict::Serve, "replaced");
        assert!(s.access.as_ref().unwrap().rejected);
    }

    #[test]
    fn loop_guard_allows_ten_confirmed_rejections_an_hour() {
        let policy = TokenPolicy::default();
        let mut s = state_with("at-0");
        let mut now = T0;
        for i in 0..GUARD_LIMIT {
            now += 10_000;
            let token = format!("at-{i}");
            s.access = state_with(&token).access;
            apply_check(&mut s, &fp(&token), CheckOutcome::Invalid, now);
            assert_eq!(plan(&s, Trigger::Request, now, &policy), Plan::RefreshThenServe, "rejection {}", i + 1);
            assert_eq!(s.retry_at_ms(now), None);
            assert_eq!(s.last_error, None);
        }
        // The eleventh within the hour: no refresh until the oldest leaves.
        now += 10_000;
        s.access = state_with("at-x").access;
        apply_check(&mut s, &fp("at-x"), CheckOutcome::Invalid, now);
        let oldest = T0 + 10_000;
        match plan(&s, Trigger::Request, now, &policy) {
            Plan::Refuse(Refusal::LoopGuard { rejections, within, retry_after_secs }) => {
                assert_eq!((rejections, within), (11, "an hour"));
                assert_eq!(retry_after_secs as i64, (oldest + GUARD_WINDOW_MS - now) / 1000);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.retry_at_ms(now), Some(oldest + GUARD_WINDOW_MS));
        // ... and says so where the operator looks.
        assert_eq!(
            s.last_error.as_deref(),
            Some(format!("loop guard: Xoxoday rejected 11 of its access tokens within an hour, so plumgate pauses refreshing until {}", crate::time::rfc3339(oldest + GUARD_WINDOW_MS)).as_str())
        );
        assert_eq!(s.last_error_at_ms, Some(now));
        let e = match plan(&s, Trigger::Request, now, &policy) {
            Plan::Refuse(r) => r.api_error(),
            _ => unreachable!(),
        };
        assert_eq!((e.status, e.code.as_str()), (502, "upstream_unauthorized"));
        // A person may still force a refresh of an unusable token.
        assert_eq!(plan(&s, Trigger::Forced, now, &policy), Plan::RefreshThenServe);
        // Once the oldest confirmation leaves the window, refreshing resumes.
        assert_eq!(plan(&s, Trigger::Request, oldest + GUARD_WINDOW_MS, &policy), Plan::RefreshThenServe);
        // The list never grows past what the guard needs.
        for k in 0..30 {
            let token = format!("at-y{k}");
            s.access = state_with(&token).access;
            apply_check(&mut s, &fp(&token), CheckOutcome::Invalid, now + k);
        }
        assert_eq!(s.confirmed_rejections_ms.len(), GUARD_DAY_LIMIT + 1);
        assert_eq!(s.confirmed_rejections_ms[0], now + 29 - GUARD_DAY_LIMIT as i64, "the oldest dropped");
        // Those older than an hour stay for the daily rule; those older
        // than a day are dropped.
        s.access = state_with("at-z").access;
        apply_check(&mut s, &fp("at-z"), CheckOutcome::Invalid, now + GUARD_WINDOW_MS + 100);
        assert_eq!(s.confirmed_rejections_ms.len(), GUARD_DAY_LIMIT + 1);
        s.access = state_with("at-w").access;
        apply_check(&mut s, &fp("at-w"), CheckOutcome::Invalid, now + GUARD_DAY_WINDOW_MS + 100);
        assert_eq!(s.confirmed_rejections_ms, vec![now + GUARD_WINDOW_MS + 100, now + GUARD_DAY_WINDOW_MS + 100]);
    }

    fn reject(s: &mut AuthorityState, token: &str, at: i64) {
        s.access = state_with(token).access;
        apply_check(s, &fp(token), CheckOutcome::Invalid, at);
    }

    /// The loop guard's refusal at `at`: (rejections, within, Retry-After).
    fn guarded(s: &AuthorityState, at: i64) -> (u32, &'static str, u64) {
        match plan(s, Trigger::Request, at, &TokenPolicy::default()) {
            Plan::Refuse(Refusal::LoopGuard { rejections, within, retry_after_secs }) => (rejections, within, retry_after_secs),
            other => panic!("{other:?}"),
        }
    }

    /// Right after the confirmation at `at`, the loop guard holds until
    /// `until` by the rule of `rejections` `within`: as callers, `retry_at`
    /// and `last_error` are told.
    fn assert_held(s: &AuthorityState, at: i64, until: i64, rejections: u32, within: &str) {
        assert_eq!(guarded(s, at), (rejections, within, ((until - at) / 1000) as u64));
        assert_eq!(s.retry_at_ms(at), Some(until));
        let why = format!("loop guard: Xoxoday rejected {rejections} of its access tokens within {within}, so plumgate pauses refreshing until {}", crate::time::rfc3339(until));
        assert_eq!(s.last_error.as_deref(), Some(why.as_str()));
    }

    #[test]
    fn loop_guard_allows_twenty_four_confirmed_rejections_a_day_however_spread() {
        let policy = TokenPolicy::default();
        let mut s = state_with("at-0");
        // One every 50 minutes: never more than two within an hour.
        let step = 3_000_000;
        for i in 0..GUARD_DAY_LIMIT as i64 {
            let at = T0 + i * step;
            reject(&mut s, &format!("at-{i}"), at);
            assert_eq!(plan(&s, Trigger::Request, at, &policy), Plan::RefreshThenServe, "rejection {}", i + 1);
            assert_eq!((s.retry_at_ms(at), s.last_error.as_deref()), (None, None), "{i}");
        }
        // The twenty-fifth within the day: no refresh until the oldest
        // leaves the day.
        let now = T0 + GUARD_DAY_LIMIT as i64 * step;
        reject(&mut s, "at-x", now);
        let until = T0 + GUARD_DAY_WINDOW_MS;
        assert_held(&s, now, until, 25, "a day");
        let e = match plan(&s, Trigger::Request, now, &policy) {
            Plan::Refuse(r) => r.api_error(),
            _ => unreachable!(),
        };
        assert_eq!((e.status, e.code.as_str(), e.retry_after_secs), (502, "upstream_unauthorized", Some(((until - now) / 1000) as u64)));
        assert!(e.message.contains("(25 confirmed rejections within a day)"), "{}", e.message);
        // A person may still force a refresh.
        assert_eq!(plan(&s, Trigger::Forced, now, &policy), Plan::RefreshThenServe);
        assert_eq!(guarded(&s, until - 1).1, "a day");
        assert_eq!(plan(&s, Trigger::Request, until, &policy), Plan::RefreshThenServe, "the oldest left the day");
        assert_eq!(s.retry_at_ms(until), None);
        // Once the day has moved on, its older confirmations leave it and
        // the list: thirteen went, twelve stay and the new one leads to a
        // refresh.
        let later = T0 + 12 * step + GUARD_DAY_WINDOW_MS;
        reject(&mut s, "at-z", later);
        assert_eq!(s.confirmed_rejections_ms.len(), 13);
        assert_eq!(s.confirmed_rejections_ms[0], T0 + 13 * step);
        assert_eq!(plan(&s, Trigger::Request, later, &policy), Plan::RefreshThenServe);
    }

    #[test]
    fn with_both_rules_holding_the_later_end_decides() {
        let policy = TokenPolicy::default();
        // Fourteen spread over the morning, then a burst within an hour:
        // its eleventh is the twenty-fifth within the day.
        let mut s = state_with("at-0");
        for i in 0..14 {
            reject(&mut s, &format!("at-{i}"), T0 + i * 3_000_000);
        }
        let burst = T0 + 50_000_000;
        for k in 0..10 {
            reject(&mut s, &format!("at-b{k}"), burst + k * 60_000);
            assert_eq!(plan(&s, Trigger::Request, burst + k * 60_000, &policy), Plan::RefreshThenServe, "{k}");
        }
        let now = burst + 600_000;
        reject(&mut s, "at-b10", now);
        // The hour's rule ends at burst + 1 h, the day's later: the day's decides.
        let until = T0 + GUARD_DAY_WINDOW_MS;
        assert_held(&s, now, until, 25, "a day");
        // Past the hour's end the day's still holds.
        assert_eq!(guarded(&s, burst + GUARD_WINDOW_MS).1, "a day");
        assert_eq!(plan(&s, Trigger::Forced, now, &policy), Plan::RefreshThenServe);

        // Fourteen early in the day, then a burst at its end: the day's
        // rule ends first (its oldest leaves), the hour's decides.
        let mut s = state_with("at-0");
        for i in 0..14 {
            reject(&mut s, &format!("at-{i}"), T0 + i * 1_000_000);
        }
        let burst = T0 + GUARD_DAY_WINDOW_MS - 1_800_000;
        for k in 0..11 {
            reject(&mut s, &format!("at-b{k}"), burst + k * 60_000);
        }
        let now = burst + 600_000;
        let until = burst + GUARD_WINDOW_MS;
        assert_held(&s, now, until, 11, "an hour");
        // The day's ended (its oldest left): the hour's still holds.
        assert_eq!(guarded(&s, T0 + GUARD_DAY_WINDOW_MS).1, "an hour");
        assert_eq!(plan(&s, Trigger::Request, until, &policy), Plan::RefreshThenServe);
    }

    /// A rate-limited check is no verdict, in the state and in the
    /// `token_checked` log line: never "invalid", which reads as a
    /// confirmed rejection.
    #[test]
    fn a_rate_limited_check_is_recorded_as_failed() {
        assert_eq!(CheckOutcome::RateLimited { status: 429, penalty_secs: 60 }.result(), CheckResult::Failed);
    }

    /// Every 2xx of the token check is read as one, 299 too.
    #[test]
    fn a_299_check_answer_is_a_2xx() {
        assert_eq!(parse_check_response(299, b"{}", None, T0), CheckOutcome::Valid { expires_at_ms: None });
        assert_eq!(parse_check_response(299, br#"{"error":"invalid_token"}"#, None, T0), CheckOutcome::Invalid);
    }
}
