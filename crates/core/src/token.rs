//! The Xoxoday token lifecycle, sans I/O.
//!
//! Owns: the token authority's persisted state ([`AuthorityState`]), the
//! state machine that decides what a request, a cron tick, a forced refresh
//! or an upstream rejection should do ([`plan`]), building the refresh and
//! validate requests and parsing their answers leniently, the retry/backoff
//! policy, and the status body of `GET /v1/token`.
//!
//! Not here: the Durable Object that runs these decisions with real `fetch`
//! and storage (`src/authority.rs`), and the isolate/KV caches in front of it.
//!
//! Rules (contract §4):
//! - A refresh answer that carries an access token is never discarded, even
//!   when its other fields are odd; a missing `refresh_token` keeps the old one.
//! - Two windows: inside the early window (default: under 7 days left, moved
//!   earlier by up to 10 % jitter per token) the current token keeps being
//!   served while one background refresh runs; inside the last minutes
//!   (`must_refresh_secs`) or once expired, the request waits for the refresh.
//! - Transport errors, timeouts, 5xx, 429, `server_error` and
//!   `temporarily_unavailable` are transient: bounded retries, then a
//!   jittered backoff while a still-valid token keeps being served.
//!   `invalid_grant`, `invalid_token`, other 4xx are final: `reauth_required`
//!   and no further refresh until the operator sets a new bootstrap token.
//! - A refresh token that has been rotated away is remembered by fingerprint
//!   and never used again, even if the operator sets it again.

use crate::secret::{AccessToken, ClientId, ClientSecret, RefreshToken};
use crate::time::rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Access-token lifetime assumed when an answer gives none (15 days, the
/// documented Reward API lifetime).
pub const DEFAULT_ACCESS_TTL_MS: i64 = 1_296_000_000;
/// Refresh-token lifetime assumed when an answer gives none (30 days).
pub const DEFAULT_REFRESH_TTL_MS: i64 = 2_592_000_000;
/// How many rotated-away refresh-token fingerprints are remembered.
pub const SPENT_MEMORY: usize = 64;

/// How long a request waits for another request's token lookup in the same
/// isolate before it looks the token up itself (the other request may have
/// been cancelled, or its lookup may be stuck behind a slow refresh).
pub const JOIN_WAIT_MS: i64 = 3_000;

/// Should a request that finds the isolate's token cold wait for the lookup
/// another request started at `started_ms`, rather than start its own? Yes
/// while that lookup is younger than [`JOIN_WAIT_MS`]. A lookup "from the
/// future" (the clock went back) is treated as stale, so a wrong clock costs
/// extra lookups, never a wait.
///
/// Coalescing here saves the KV read and the Durable Object call each
/// concurrent request would otherwise make; the single upstream refresh is
/// the Durable Object's guarantee either way (contract §4.2).
pub fn joins_lookup(started_ms: i64, now_ms: i64) -> bool {
    (0..JOIN_WAIT_MS).contains(&(now_ms - started_ms))
}

/// Tuning of the refresh windows and retries.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenPolicy {
    /// Refresh in the background when less than this remains (default 7 days).
    pub early_refresh_secs: u64,
    /// Make requests wait for a refresh when less than this remains (default 5 min).
    pub must_refresh_secs: u64,
    /// Never refresh more often than this, unless the token is unusable or a
    /// person asks (default 60 s). Stops loops when upstream issues short or
    /// rejected tokens.
    pub min_refresh_interval_secs: u64,
    /// Timeout of one refresh call (default 15 s).
    pub refresh_timeout_ms: u64,
    /// Attempts of one refresh run before giving up (default 3).
    pub max_attempts: u32,
    /// First retry delay inside a run (default 250 ms, doubling, jittered).
    pub retry_base_ms: u64,
    /// First backoff after a failed run (default 30 s, doubling, jittered).
    pub backoff_base_ms: u64,
    /// Longest backoff (default 30 min).
    pub backoff_max_ms: u64,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            early_refresh_secs: 7 * 86_400,
            must_refresh_secs: 300,
            min_refresh_interval_secs: 60,
            refresh_timeout_ms: 15_000,
            max_attempts: 3,
            retry_base_ms: 250,
            backoff_base_ms: 30_000,
            backoff_max_ms: 1_800_000,
        }
    }
}

/// The access token currently held.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessSlot {
    /// The token.
    pub token: AccessToken,
    /// When it expires (epoch ms).
    pub expires_at_ms: i64,
    /// When plumgate obtained it (epoch ms).
    pub obtained_at_ms: i64,
    /// Upstream answered 401 to it.
    #[serde(default)]
    pub rejected: bool,
}

/// The refresh token currently held. Never leaves the authority.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshSlot {
    /// The token.
    pub token: RefreshToken,
    /// When it expires (epoch ms), from the answer or estimated.
    pub expires_at_ms: i64,
    /// Whether `expires_at_ms` came from upstream.
    #[serde(default)]
    pub expiry_known: bool,
}

/// Everything the token authority persists (one storage value, written
/// atomically).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuthorityState {
    /// Current access token.
    pub access: Option<AccessSlot>,
    /// Current refresh token.
    pub refresh: Option<RefreshSlot>,
    /// Set when the refresh token is dead; a person must act.
    pub reauth_reason: Option<String>,
    /// Fingerprint of the bootstrap `XOXODAY_REFRESH_TOKEN` last seen and handled.
    pub adopted_bootstrap_fp: Option<String>,
    /// Fingerprint of the bootstrap `XOXODAY_ACCESS_TOKEN` last seen and handled.
    #[serde(default)]
    pub adopted_access_fp: Option<String>,
    /// Fingerprints of refresh tokens rotated away (newest last).
    pub spent_refresh_fps: Vec<String>,
    /// Successful refreshes since the authority was created.
    pub refresh_count: u64,
    /// Last successful refresh (epoch ms).
    pub last_refresh_at_ms: Option<i64>,
    /// Last refresh failure, a safe sentence.
    pub last_error: Option<String>,
    /// When `last_error` happened (epoch ms).
    pub last_error_at_ms: Option<i64>,
    /// Failed refresh runs since the last success.
    pub consecutive_failures: u32,
    /// No background refresh before this (epoch ms).
    pub next_attempt_at_ms: Option<i64>,
    /// Per-token jitter in [0, 1): moves the early window earlier by up to 10 %.
    pub jitter: f64,
}

/// Token state reported by `GET /v1/token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// Nothing obtained yet.
    Uninitialized,
    /// Valid, outside the early window.
    Fresh,
    /// Valid, inside the early window (a background refresh is due).
    Stale,
    /// Expired or rejected by upstream.
    Expired,
    /// The refresh token is dead; a person must generate tokens again.
    ReauthRequired,
}

impl TokenState {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Uninitialized => "uninitialized",
            TokenState::Fresh => "fresh",
            TokenState::Stale => "stale",
            TokenState::Expired => "expired",
            TokenState::ReauthRequired => "reauth_required",
        }
    }
}

/// What asked the authority for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A caller needs a token.
    Request,
    /// Upstream answered 401 to the access token with this fingerprint.
    Rejected(String),
    /// The cron keep-alive.
    Cron,
    /// A person asked for a refresh (`POST /v1/token/refresh`).
    Forced,
}

/// What the authority should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Hand out the current access token.
    Serve,
    /// Hand out the current token and refresh in the background.
    ServeAndRefresh,
    /// Refresh first, then hand out the new token.
    RefreshThenServe,
    /// The refresh token is dead.
    Reauth,
    /// Refreshing is backing off after failures and no usable token exists.
    Backoff {
        /// Seconds until the next attempt.
        retry_after_secs: u64,
    },
}

impl AuthorityState {
    fn access_usable(&self, now_ms: i64) -> bool {
        self.access.as_ref().is_some_and(|a| !a.rejected && a.expires_at_ms > now_ms)
    }

    /// The instant the early window opens: the earlier of the access and
    /// (known) refresh expiry, minus the jittered early window.
    pub fn early_point_ms(&self, policy: &TokenPolicy) -> Option<i64> {
        let access = self.access.as_ref()?;
        let mut end = access.expires_at_ms;
        if let Some(r) = &self.refresh {
            end = end.min(r.expires_at_ms);
        }
        let window = policy.early_refresh_secs as f64 * 1000.0 * (1.0 + 0.1 * self.jitter.clamp(0.0, 1.0));
        Some(end - window as i64)
    }

    /// Current state.
    pub fn state(&self, now_ms: i64, policy: &TokenPolicy) -> TokenState {
        if self.reauth_reason.is_some() {
            return TokenState::ReauthRequired;
        }
        match &self.access {
            None => TokenState::Uninitialized,
            Some(_) if !self.access_usable(now_ms) => TokenState::Expired,
            Some(_) => match self.early_point_ms(policy) {
                Some(p) if now_ms >= p => TokenState::Stale,
                _ => TokenState::Fresh,
            },
        }
    }

    fn in_backoff(&self, now_ms: i64) -> Option<u64> {
        match self.next_attempt_at_ms {
            Some(t) if t > now_ms => Some(((t - now_ms) as u64).div_ceil(1000)),
            _ => None,
        }
    }

    fn refreshed_recently(&self, now_ms: i64, policy: &TokenPolicy) -> bool {
        self.last_refresh_at_ms
            .is_some_and(|t| now_ms - t < (policy.min_refresh_interval_secs * 1000) as i64)
    }

    /// When an isolate holding the current token should ask again (epoch ms).
    /// Before this instant a cached copy may be used without any KV or DO call.
    pub fn recheck_at_ms(&self, now_ms: i64, policy: &TokenPolicy) -> i64 {
        let Some(a) = &self.access else { return now_ms };
        let must = a.expires_at_ms - (policy.must_refresh_secs * 1000) as i64;
        match self.early_point_ms(policy) {
            // Inside the early window: keep using the token, but look again
            // soon so the refreshed one is picked up.
            Some(p) if now_ms >= p => (now_ms + 30_000).min(a.expires_at_ms),
            Some(p) => p.min(must),
            None => now_ms,
        }
    }
}

/// Decide what to do for `trigger` at `now_ms`.
pub fn plan(state: &AuthorityState, trigger: &Trigger, now_ms: i64, policy: &TokenPolicy) -> Plan {
    let usable = state.access_usable(now_ms);
    if state.reauth_reason.is_some() {
        // Keep serving a still-valid access token: the operator has until it
        // expires to set a new refresh token. Nothing refreshes meanwhile.
        return match trigger {
            Trigger::Request if usable => Plan::Serve,
            _ => Plan::Reauth,
        };
    }
    if state.refresh.is_none() {
        return if usable { Plan::Serve } else { Plan::Reauth };
    }
    if let Trigger::Rejected(fp) = trigger {
        let current_fp = state.access.as_ref().map(|a| a.token.fingerprint());
        if current_fp.as_deref() != Some(fp.as_str()) {
            // Someone already replaced the rejected token.
            return if usable { Plan::Serve } else { refresh_or_backoff(state, now_ms) };
        }
        // The current token was rejected. A token obtained moments ago that is
        // rejected again will not be helped by another refresh: hand it out
        // and let the caller's single retry fail (no loop).
        return if state.refreshed_recently(now_ms, policy) {
            Plan::Serve
        } else {
            Plan::RefreshThenServe
        };
    }
    if matches!(trigger, Trigger::Forced) {
        return Plan::RefreshThenServe;
    }
    if !usable {
        return refresh_or_backoff(state, now_ms);
    }
    let access = state.access.as_ref().expect("usable implies access");
    let must_point = access.expires_at_ms - (policy.must_refresh_secs * 1000) as i64;
    let may_refresh = state.in_backoff(now_ms).is_none() && !state.refreshed_recently(now_ms, policy);
    if now_ms >= must_point {
        return if may_refresh { Plan::RefreshThenServe } else { Plan::Serve };
    }
    match state.state(now_ms, policy) {
        TokenState::Stale if may_refresh => Plan::ServeAndRefresh,
        _ => Plan::Serve,
    }
}

fn refresh_or_backoff(state: &AuthorityState, now_ms: i64) -> Plan {
    match state.in_backoff(now_ms) {
        Some(secs) => Plan::Backoff { retry_after_secs: secs.max(1) },
        None => Plan::RefreshThenServe,
    }
}

// ---------------------------------------------------------------------------
// Bootstrap adoption
// ---------------------------------------------------------------------------

/// What adopting the configured bootstrap tokens changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Adoption {
    /// A new bootstrap refresh token was taken into use.
    pub adopted_refresh: bool,
    /// The bootstrap refresh token was already spent and was ignored.
    pub ignored_spent: bool,
    /// A new bootstrap access token should be validated and, if valid, used.
    pub validate_access: bool,
}

/// Take the configured bootstrap refresh token into use when the operator
/// has set a new one (first seed, or recovery from `reauth_required`).
/// A value that plumgate already rotated away is never reused.
pub fn adopt_bootstrap(
    state: &mut AuthorityState,
    bootstrap_refresh: &RefreshToken,
    bootstrap_access: Option<&AccessToken>,
    now_ms: i64,
) -> Adoption {
    let mut out = Adoption::default();
    let fp = bootstrap_refresh.fingerprint();
    if state.adopted_bootstrap_fp.as_deref() != Some(fp.as_str()) {
        state.adopted_bootstrap_fp = Some(fp.clone());
        let current = state.refresh.as_ref().map(|r| r.token.fingerprint());
        if state.spent_refresh_fps.contains(&fp) {
            out.ignored_spent = true;
        } else if current.as_deref() != Some(fp.as_str()) {
            if let Some(old) = state.refresh.take() {
                remember_spent(state, old.token.fingerprint());
            }
            state.refresh = Some(RefreshSlot {
                token: bootstrap_refresh.clone(),
                expires_at_ms: now_ms + DEFAULT_REFRESH_TTL_MS,
                expiry_known: false,
            });
            state.reauth_reason = None;
            state.consecutive_failures = 0;
            state.next_attempt_at_ms = None;
            out.adopted_refresh = true;
        }
    }
    if let Some(at) = bootstrap_access {
        let afp = at.fingerprint();
        if state.adopted_access_fp.as_deref() != Some(afp.as_str()) {
            state.adopted_access_fp = Some(afp);
            // Only worth it when we hold no usable access token.
            out.validate_access = !state.access_usable(now_ms);
        }
    }
    out
}

fn remember_spent(state: &mut AuthorityState, fp: String) {
    if !state.spent_refresh_fps.contains(&fp) {
        state.spent_refresh_fps.push(fp);
    }
    let n = state.spent_refresh_fps.len();
    if n > SPENT_MEMORY {
        state.spent_refresh_fps.drain(..n - SPENT_MEMORY);
    }
}

// ---------------------------------------------------------------------------
// Wire: requests and answers
// ---------------------------------------------------------------------------

/// An HTTP request to make, built without I/O. `Debug` hides the body
/// (it carries the client secret and refresh token).
#[derive(Clone)]
pub struct HttpRequest {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Absolute URL.
    pub url: String,
    /// Headers to send.
    pub headers: Vec<(&'static str, String)>,
    /// JSON body.
    pub body: Option<String>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers.iter().map(|(k, _)| *k).collect::<Vec<_>>())
            .field("body", &self.body.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

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
        body: Some(body.to_string()),
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
    /// Worth retrying later; the sentence is safe to show.
    Transient(String),
    /// The refresh token (or client) is rejected; a person must act.
    Final(String),
}

/// Read a number that may arrive as a JSON number or a numeric string.
pub fn lenient_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| s.parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| f as i64))
        }
        _ => None,
    }
}

/// An epoch stamp that should be milliseconds; values that look like seconds
/// (before the year 5138 in seconds = under 1e11) are scaled.
fn epoch_ms(v: &Value) -> Option<i64> {
    let n = lenient_i64(v)?;
    if n <= 0 {
        None
    } else if n < 100_000_000_000 {
        Some(n * 1000)
    } else {
        Some(n)
    }
}

/// OAuth error codes that mean "retry later".
fn transient_oauth_code(code: &str) -> bool {
    matches!(code, "server_error" | "temporarily_unavailable")
}

/// Parse a refresh answer. Never fails on odd fields if an access token is
/// present: a successful rotation must not be lost.
pub fn parse_refresh_response(status: u16, body: &[u8], now_ms: i64) -> RefreshOutcome {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let obj = parsed.as_ref().and_then(Value::as_object);

    // A body with an access token is a success whatever the status says.
    if let Some(o) = obj {
        if let Some(at) = o.get("access_token").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            if (200..300).contains(&status) {
                return RefreshOutcome::Success(normalise_answer(o, at, now_ms));
            }
        }
    }
    let oauth_error = obj.and_then(|o| o.get("error")).and_then(Value::as_str).map(str::to_string);
    let message_id = obj
        .and_then(|o| o.get("message").or_else(|| o.get("error_message_id")))
        .and_then(Value::as_str)
        .map(str::to_string);
    let rate_limited = status == 429
        || message_id.as_deref() == Some("auth.request_limit_exceeded")
        || body_mentions_rate_limit(parsed.as_ref());

    if rate_limited {
        return RefreshOutcome::Transient(format!("refresh rate-limited by Xoxoday (HTTP {status})"));
    }
    if let Some(code) = oauth_error.as_deref() {
        let code = safe_code(code);
        if transient_oauth_code(&code) {
            return RefreshOutcome::Transient(format!("refresh failed: HTTP {status} {code}"));
        }
        if (400..500).contains(&status) || matches!(code.as_str(), "invalid_grant" | "invalid_token" | "invalid_client" | "unauthorized_client") {
            return RefreshOutcome::Final(format!("refresh token rejected: HTTP {status} {code}"));
        }
    }
    if message_id.as_deref() == Some("auth.token_error") {
        return RefreshOutcome::Final(format!("refresh token rejected: HTTP {status} auth.token_error"));
    }
    match status {
        200..=299 => RefreshOutcome::Transient(format!("refresh answer unreadable (HTTP {status}, no access_token)")),
        408 => RefreshOutcome::Transient("refresh failed: HTTP 408".into()),
        400..=499 => RefreshOutcome::Final(format!("refresh token rejected: HTTP {status}")),
        _ => RefreshOutcome::Transient(format!("refresh failed: HTTP {status}")),
    }
}

fn body_mentions_rate_limit(v: Option<&Value>) -> bool {
    let Some(errors) = v.and_then(|v| v.get("errors")) else { return false };
    let list: Vec<&Value> = match errors {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    list.iter().any(|e| e.get("message").and_then(Value::as_str) == Some("auth.request_limit_exceeded"))
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

fn normalise_answer(o: &serde_json::Map<String, Value>, at: &str, now_ms: i64) -> TokenAnswer {
    let from_stamp = o.get("access_token_expiry").and_then(epoch_ms).filter(|t| *t > now_ms);
    let from_ttl = o
        .get("expires_in")
        .and_then(lenient_i64)
        .filter(|s| *s > 0)
        .map(|s| now_ms + s.saturating_mul(1000));
    // Both present: trust the earlier one (refreshing early is harmless,
    // refreshing late is an outage).
    let access_expires_at_ms = match (from_stamp, from_ttl) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => now_ms + DEFAULT_ACCESS_TTL_MS,
    };
    TokenAnswer {
        access_token: AccessToken::new(at),
        access_expires_at_ms,
        refresh_token: o
            .get("refresh_token")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(RefreshToken::new),
        refresh_expires_at_ms: o.get("refresh_token_expiry").and_then(epoch_ms).filter(|t| *t > now_ms),
    }
}

/// Parse a validate-token answer: the access token's expiry, if it is valid.
pub fn parse_validate_response(status: u16, body: &[u8], now_ms: i64) -> Option<i64> {
    if !(200..300).contains(&status) {
        return None;
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    let o = v.as_object()?;
    let from_stamp = o.get("access_token_expiry").and_then(epoch_ms).filter(|t| *t > now_ms);
    let from_ttl = o.get("expires_in").and_then(lenient_i64).filter(|s| *s > 0).map(|s| now_ms + s * 1000);
    match (from_stamp, from_ttl) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (Some(a), None) | (None, Some(a)) => Some(a),
        (None, None) => None,
    }
}

// ---------------------------------------------------------------------------
// Applying outcomes
// ---------------------------------------------------------------------------

/// Record a successful refresh. `jitter` is a fresh random number in [0, 1).
/// The caller must persist the state before handing out the new token.
pub fn apply_success(state: &mut AuthorityState, answer: TokenAnswer, now_ms: i64, jitter: f64) {
    if let Some(new_rt) = answer.refresh_token {
        if let Some(old) = state.refresh.take() {
            if old.token.fingerprint() != new_rt.fingerprint() {
                remember_spent(state, old.token.fingerprint());
            }
        }
        state.refresh = Some(RefreshSlot {
            token: new_rt,
            expires_at_ms: answer.refresh_expires_at_ms.unwrap_or(now_ms + DEFAULT_REFRESH_TTL_MS),
            expiry_known: answer.refresh_expires_at_ms.is_some(),
        });
    } else if let (Some(r), Some(t)) = (state.refresh.as_mut(), answer.refresh_expires_at_ms) {
        r.expires_at_ms = t;
        r.expiry_known = true;
    }
    state.access = Some(AccessSlot {
        token: answer.access_token,
        expires_at_ms: answer.access_expires_at_ms,
        obtained_at_ms: now_ms,
        rejected: false,
    });
    state.refresh_count += 1;
    state.last_refresh_at_ms = Some(now_ms);
    state.last_error = None;
    state.last_error_at_ms = None;
    state.consecutive_failures = 0;
    state.next_attempt_at_ms = None;
    state.reauth_reason = None;
    state.jitter = jitter.clamp(0.0, 1.0);
}

/// Record a failed refresh run. `rand01` is a random number in [0, 1) for
/// the backoff jitter.
pub fn apply_failure(state: &mut AuthorityState, outcome_final: bool, reason: String, now_ms: i64, rand01: f64, policy: &TokenPolicy) {
    state.last_error = Some(reason.clone());
    state.last_error_at_ms = Some(now_ms);
    if outcome_final {
        state.reauth_reason = Some(reason);
        state.next_attempt_at_ms = None;
    } else {
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        state.next_attempt_at_ms = Some(now_ms + backoff_ms(state.consecutive_failures, rand01, policy) as i64);
    }
}

/// Mark the access token with fingerprint `fp` as rejected by upstream.
pub fn mark_rejected(state: &mut AuthorityState, fp: &str) -> bool {
    match state.access.as_mut() {
        Some(a) if a.token.fingerprint() == fp && !a.rejected => {
            a.rejected = true;
            true
        }
        _ => false,
    }
}

/// Use a validated bootstrap access token.
pub fn apply_validated_access(state: &mut AuthorityState, token: AccessToken, expires_at_ms: i64, now_ms: i64) {
    state.access = Some(AccessSlot { token, expires_at_ms, obtained_at_ms: now_ms, rejected: false });
}

/// Backoff after `failures` failed runs: base × 2^(failures-1), capped,
/// scaled by a jitter factor in [0.5, 1).
pub fn backoff_ms(failures: u32, rand01: f64, policy: &TokenPolicy) -> u64 {
    let exp = failures.saturating_sub(1).min(20);
    let raw = policy.backoff_base_ms.saturating_mul(1u64 << exp).min(policy.backoff_max_ms);
    (raw as f64 * (0.5 + 0.5 * rand01.clamp(0.0, 1.0))) as u64
}

/// Delay before retry `attempt` (1-based) inside one run.
pub fn retry_delay_ms(attempt: u32, rand01: f64, policy: &TokenPolicy) -> u64 {
    let exp = attempt.saturating_sub(1).min(10);
    let raw = policy.retry_base_ms.saturating_mul(1u64 << exp);
    (raw as f64 * (0.5 + 0.5 * rand01.clamp(0.0, 1.0))) as u64
}

/// The body of `GET /v1/token`: status, never a token.
pub fn status_json(state: &AuthorityState, now_ms: i64, policy: &TokenPolicy) -> Value {
    json!({
        "state": state.state(now_ms, policy).as_str(),
        "access_token_expires_at": state.access.as_ref().map(|a| rfc3339(a.expires_at_ms)),
        "refresh_token_expires_at": state.refresh.as_ref().map(|r| rfc3339(r.expires_at_ms)),
        "last_refresh_at": state.last_refresh_at_ms.map(rfc3339),
        "refresh_count": state.refresh_count,
        "last_error": state.last_error,
    })
}

#[cfg(test)]
mod tests;
