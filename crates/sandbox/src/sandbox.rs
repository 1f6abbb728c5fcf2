//! The sandbox as one plain value, with no I/O and no async: every request
//! is a method taking the raw input and the wall-clock time (`wall` ms) and
//! returning what to answer. Owns: the refresh/validate/api request flows
//! (auth → parse → rate limit → operation), fault application, counters,
//! the recent-request log, admin actions, reset, and the state-file format.
//! The HTTP layer (`http.rs`) adds sleeping, concurrency tracking and I/O.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::catalog::catalog;
use crate::config::{CheckExpiresIn, Config, RefreshLimit, DeadAccessAnswer, DeadCheckAnswer, DuplicateAnswer, PaymentReportShape, RefreshExpiry, Rotation, OPS};
use crate::faults::{echo_header_body, ApiFaultMode, DetailsFaultMode, Fault, Faults, OrderErrorId, OrderFaultMode, OrderStatus, ProxyFaultMode, ProxyRoute, RateLimitShape, RefreshFaultMode, ValidateFaultMode};
use crate::orders::{not_found, order_details_json, place_order_json, Ledger};
use crate::plum::{
    failure_flag, flag, money, numbers_as_text, oauth_error, success, token_error_body, unauthorized_body, PlumError,
};
use crate::ratelimit::RateLimiter;
use crate::tokens::{new_token, Issued, TokenStore, PAIR_CAP};

const STATE_VERSION: u32 = 1;
const REQUEST_LOG_CAP: usize = 1000;
const LOGGED_BODY_MAX: usize = 64 * 1024;
const TOKEN_LEN: usize = 64;

/// Client credentials and the bootstrap pair valid on a fresh start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub access_token: String,
}

impl Default for Credentials {
    fn default() -> Self {
        Self {
            client_id: "plumgate-dev-client".into(),
            client_secret: "plumgate-dev-secret".into(),
            refresh_token: "plumgate-dev-refresh-token".into(),
            access_token: "plumgate-dev-access-token".into(),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub refresh_calls: u64,
    pub refresh_success: u64,
    pub refresh_failures: u64,
    pub validate_calls: u64,
    pub api_calls: BTreeMap<&'static str, u64>,
    pub unauthorized_api_calls: u64,
    pub orders: u64,
    pub resend_mails: u64,
    pub rate_limited_calls: u64,
    pub spent_refresh_tokens_used: u64,
    /// Refresh calls answered with the rate-limit answer (fault or penalty).
    pub refresh_rate_limited: u64,
    /// Token checks answered with the rate-limit answer (fault or penalty).
    pub validate_rate_limited: u64,
    /// Authorised API calls answered with an injected 401.
    pub api_401_faults: u64,
    /// API calls refused by a daily cap.
    pub daily_limited_calls: u64,
    /// Answers replaced by a proxy fault's page.
    pub proxy_pages: u64,
    /// Refresh and API calls whose `Content-Type` was not
    /// `application/json` (Xoxoday requires it, xoxoday-api.md §1.3 and
    /// the API's headers; answered as usual here, counted so a test can
    /// tell).
    pub not_json_content_type: u64,
    /// API calls whose envelope's `tag` is missing or not `"plumProAPI"`
    /// (every documented call carries it, xoxoday-api.md §2:
    /// `{"query", "tag": "plumProAPI", "variables"}`; answered as usual
    /// here, counted so a test can tell).
    pub not_plum_tag: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub op: Option<String>,
    pub body: Value,
    pub authorized: bool,
    pub status: u16,
}

/// What the refresh endpoint answers.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshOutcome {
    Answer {
        status: u16,
        body: Value,
    },
    /// Sleep `ms`, then answer.
    HangThen {
        ms: u64,
        status: u16,
        body: Value,
    },
    /// Send the status line and headers, then break the body (rotate_then_drop).
    Drop {
        status: u16,
    },
    /// The rate-limit answer; `Retry-After` only with the HTTP 429 shape.
    Limited {
        status: u16,
        body: Value,
        retry_after_secs: Option<u64>,
    },
    /// A proxy fault's page (`text/html`) with `status`, after `delay_ms`
    /// (the delay of the answer it replaced, if any).
    Page {
        status: u16,
        delay_ms: u64,
    },
}

/// A rate-limit penalty (of the refresh endpoint or the token check)
/// started by a `rate_limited` fault or by `refresh_limit`.
#[derive(Debug, Clone, Copy)]
struct Penalty {
    /// When it started (sandbox time): a clock moved back before it ends it.
    start_ms: i64,
    until_ms: i64,
    shape: RateLimitShape,
    status: u16,
    /// Started by `refresh_limit` (ends when the limit is turned off).
    by_limit: bool,
}

/// What `/v1/oauth/api` answers; `delay_after_ms` is slept before answering.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiOutcome {
    pub status: u16,
    pub body: Value,
    /// A proxy fault's page goes out instead of `body` (`text/html`).
    pub page: bool,
    pub op: Option<&'static str>,
    pub delay_after_ms: u64,
    /// `Retry-After`: an API `rate_limited` fault in the HTTP 429 shape.
    pub retry_after_secs: Option<u64>,
}

#[derive(Serialize)]
struct StateRef<'a> {
    version: u32,
    config: &'a Config,
    tokens: &'a TokenStore,
    ledger: &'a Ledger,
}

/// The persisted part: config, token tables, wallet and orders.
#[derive(Deserialize)]
pub struct StateFile {
    #[allow(dead_code)]
    version: u32,
    config: Config,
    tokens: TokenStore,
    ledger: Ledger,
}

pub struct Sandbox {
    creds: Credentials,
    pub config: Config,
    tokens: TokenStore,
    ledger: Ledger,
    limiter: RateLimiter,
    faults: Faults,
    refresh_penalty: Option<Penalty>,
    /// The token check's penalty (`faults/validate` `rate_limited`).
    validate_penalty: Option<Penalty>,
    /// When the refresh calls in `refresh_limit`'s window came (sandbox
    /// time; at most `calls + 1` kept; emptied when the limit starts a
    /// penalty).
    recent_refreshes: VecDeque<i64>,
    counters: Counters,
    requests: VecDeque<RequestRecord>,
    /// Prefix for product image URLs, e.g. `http://127.0.0.1:8788`.
    asset_base: String,
    dirty: bool,
}

enum Reject {
    Plum(PlumError),
    Limited(u64),
    /// Over a daily cap of this many calls.
    Daily(&'static str, u32),
    /// An injected operation fault: its status and body.
    Fault(u16, Value),
}

impl From<PlumError> for Reject {
    fn from(e: PlumError) -> Self {
        Reject::Plum(e)
    }
}

/// The op name for a `query` string (only the documented seven).
pub fn op_for_query(query: &str) -> Option<&'static str> {
    Some(match query {
        "plumProAPI.mutation.getFilters" => "getFilters",
        "plumProAPI.mutation.getVouchers" => "getVouchers",
        "plumProAPI.query.getBalance" => "getBalance",
        "plumProAPI.mutation.placeOrder" => "placeOrder",
        "plumProAPI.mutation.getOrderDetails" => "getOrderDetails",
        "plumProAPI.mutation.getOrderHistory" => "getOrderHistory",
        "plumProAPI.mutation.paymentHistory" => "paymentHistory",
        _ => return None,
    })
}

/// The token from `Authorization: Bearer <token>` (scheme case-insensitive).
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let (scheme, token) = header?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl Sandbox {
    /// Fresh start: default config, the bootstrap pair, an opening balance.
    pub fn new(creds: Credentials, wall: i64) -> Self {
        let config = Config::default();
        let now = wall.saturating_add(config.clock_offset_secs.saturating_mul(1000));
        let mut tokens = TokenStore::default();
        tokens.insert_pair(
            creds.access_token.clone(),
            creds.refresh_token.clone(),
            now,
            secs_to_ms(config.access_ttl_secs),
            now.saturating_add(secs_to_ms(config.refresh_ttl_secs)),
            None,
        );
        Self::assemble(creds, config, tokens, Ledger::new(now))
    }

    pub fn from_state(creds: Credentials, state: StateFile) -> Self {
        let mut ledger = state.ledger;
        ledger.reindex();
        Self::assemble(creds, state.config, state.tokens, ledger)
    }

    fn assemble(creds: Credentials, config: Config, tokens: TokenStore, ledger: Ledger) -> Self {
        Self {
            creds,
            config,
            tokens,
            ledger,
            limiter: RateLimiter::default(),
            faults: Faults::default(),
            refresh_penalty: None,
            validate_penalty: None,
            recent_refreshes: VecDeque::new(),
            counters: Counters::default(),
            requests: VecDeque::new(),
            asset_base: String::new(),
            dirty: false,
        }
    }

    pub fn parse_state(bytes: &[u8]) -> Result<StateFile, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    pub fn snapshot(&self) -> Result<Vec<u8>, String> {
        let state = StateRef {
            version: STATE_VERSION,
            config: &self.config,
            tokens: &self.tokens,
            ledger: &self.ledger,
        };
        serde_json::to_vec(&state).map_err(|e| e.to_string())
    }

    pub fn set_asset_base(&mut self, base: String) {
        self.asset_base = base;
    }

    /// Whether persisted state changed since the last call.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Sandbox time: wall clock + the configured offset.
    pub fn now(&self, wall: i64) -> i64 {
        wall.saturating_add(self.config.clock_offset_secs.saturating_mul(1000))
    }

    /// A new pair, its refresh token living `refresh_ttl_secs`: a new chain.
    fn issue(&mut self, now: i64) -> Issued {
        self.issue_until(now, now.saturating_add(secs_to_ms(self.config.refresh_ttl_secs)))
    }

    /// A new pair whose refresh token expires at `refresh_expires_ms`.
    fn issue_until(&mut self, now: i64, refresh_expires_ms: i64) -> Issued {
        let access = new_token(TOKEN_LEN);
        let refresh = new_token(TOKEN_LEN);
        let cap = match self.config.rotation {
            Rotation::Strict => None,
            Rotation::Grace => Some(PAIR_CAP),
            Rotation::Single => Some(1),
        };
        self.dirty = true;
        self.tokens.insert_pair(
            access,
            refresh,
            now,
            secs_to_ms(self.config.access_ttl_secs),
            refresh_expires_ms,
            cap,
        )
    }

    /// The pair a refresh with `old` (usable at `now`) gets: under
    /// `refresh_expiry: fixed` its refresh token dies when `old` does.
    fn rotate(&mut self, old: &str, now: i64) -> Issued {
        let keep_alive = match self.config.rotation {
            Rotation::Strict | Rotation::Single => 0,
            Rotation::Grace => secs_to_ms(self.config.grace_secs),
        };
        let chain_end = match self.config.refresh_expiry {
            RefreshExpiry::Renew => None,
            RefreshExpiry::Fixed => self.tokens.refresh_expiry(old),
        };
        self.tokens.mark_rotated(old, now, keep_alive);
        match chain_end {
            Some(end) => self.issue_until(now, end),
            None => self.issue(now),
        }
    }

    fn token_body(&self, t: &Issued) -> Value {
        let c = &self.config;
        let mut body = json!({
            "access_token": t.access_token,
            "token_type": "bearer",
            "expires_in": c.expires_in_as.render(i64::try_from(c.access_ttl_secs).unwrap_or(i64::MAX)),
            "refresh_token": t.refresh_token,
        });
        if c.expiry_fields {
            if let Some(obj) = body.as_object_mut() {
                obj.insert("access_token_expiry".into(), c.expiry_as.render(t.access_expires_ms));
                obj.insert("refresh_token_expiry".into(), c.expiry_as.render(t.refresh_expires_ms));
            }
        }
        if c.extra_fields {
            if let Some(obj) = body.as_object_mut() {
                obj.insert("success".into(), json!(1));
                obj.insert("status".into(), json!(200));
            }
        }
        body
    }

    // ----- POST /chef/v1/oauth/token/user -----

    pub fn refresh(&mut self, body: &[u8], wall: i64) -> RefreshOutcome {
        // The layer in front of Xoxoday, before the call reaches it:
        // nothing rotated, no call Xoxoday saw.
        let proxy = self.faults.take_proxy(ProxyRoute::Refresh, None);
        if let Some(f) = proxy.as_ref().filter(|f| f.mode == ProxyFaultMode::Before) {
            self.counters.proxy_pages += 1;
            return RefreshOutcome::Page { status: f.status, delay_ms: 0 };
        }
        self.counters.refresh_calls += 1;
        let out = self.refresh_inner(body, wall);
        if let Some(f) = proxy {
            // `After`: Xoxoday answered (and may have rotated); the caller
            // gets the page instead, a failure.
            self.counters.proxy_pages += 1;
            self.counters.refresh_failures += 1;
            let delay_ms = match out {
                RefreshOutcome::HangThen { ms, .. } => ms,
                _ => 0,
            };
            return RefreshOutcome::Page { status: f.status, delay_ms };
        }
        match &out {
            RefreshOutcome::Answer { status, body } => self.count_refresh_answer(*status, body),
            // Counted when it is given, after its delay
            // (`note_refresh_answered`), or as a failure if it never is.
            RefreshOutcome::HangThen { .. } => {}
            RefreshOutcome::Limited { .. } => {
                self.counters.refresh_rate_limited += 1;
                self.counters.refresh_failures += 1;
            }
            RefreshOutcome::Drop { .. } | RefreshOutcome::Page { .. } => self.counters.refresh_failures += 1,
        }
        out
    }

    /// A delayed refresh answer (`RefreshOutcome::HangThen`) went out
    /// after its delay: counted now, as any answer is when it is given.
    pub fn note_refresh_answered(&mut self, status: u16, body: &Value) {
        self.count_refresh_answer(status, body);
    }

    /// A delayed refresh answer was never given (the caller hung up
    /// during the delay): a failure.
    pub fn note_refresh_unanswered(&mut self) {
        self.counters.refresh_failures += 1;
    }

    /// `refresh_success` counts only a complete answer: a 2xx carrying
    /// both tokens. Anything else given (an error, the password-reset
    /// body at 200, half a pair, a pair under an error status) is a
    /// failure.
    fn count_refresh_answer(&mut self, status: u16, body: &Value) {
        let has = |k: &str| body.get(k).and_then(Value::as_str).is_some_and(|t| !t.is_empty());
        if (200..300).contains(&status) && has("access_token") && has("refresh_token") {
            self.counters.refresh_success += 1;
        } else {
            self.counters.refresh_failures += 1;
        }
    }

    /// The penalty in `slot` if it runs at `now`; one over, or not started
    /// yet (the clock moved back before it, as the API limiter reads it),
    /// is dropped.
    fn running(slot: &mut Option<Penalty>, now: i64) -> Option<Penalty> {
        if slot.is_some_and(|p| !(p.start_ms <= now && now < p.until_ms)) {
            *slot = None;
        }
        *slot
    }

    fn rate_limited(&self, p: Penalty, now: i64) -> RefreshOutcome {
        let secs = u64::try_from((p.until_ms - now).max(1000).saturating_add(999) / 1000).unwrap_or(1);
        let retry_after_secs = (p.shape == RateLimitShape::Status429).then_some(secs);
        RefreshOutcome::Limited { status: p.status, body: p.shape.body(secs), retry_after_secs }
    }

    /// The penalty a `rate_limited` fault `f` starts at `now`.
    fn penalty_of<M>(f: &Fault<M>, now: i64) -> Penalty {
        Penalty {
            start_ms: now,
            until_ms: now.saturating_add(secs_to_ms(f.penalty_seconds.unwrap_or(60))),
            shape: f.shape.unwrap_or(RateLimitShape::ErrorsArray),
            status: f.status,
            by_limit: false,
        }
    }

    /// Counts a refresh call at `now` in `refresh_limit`'s sliding window:
    /// the limit, when this call is over it.
    fn refresh_window(&mut self, now: i64) -> Option<RefreshLimit> {
        let Some(limit) = self.config.refresh_limit else {
            self.recent_refreshes.clear();
            return None;
        };
        let cap = limit.calls as usize;
        let start = now.saturating_sub(secs_to_ms(limit.window_secs));
        // Calls dated after now (the clock moved back) leave the window, as
        // the API limiter's do.
        self.recent_refreshes.retain(|t| start < *t && *t <= now);
        self.recent_refreshes.push_back(now);
        while self.recent_refreshes.len() > cap + 1 {
            self.recent_refreshes.pop_front();
        }
        (self.recent_refreshes.len() > cap).then_some(limit)
    }

    fn refresh_inner(&mut self, body: &[u8], wall: i64) -> RefreshOutcome {
        let answer = |status: u16, body: Value| RefreshOutcome::Answer { status, body };
        let invalid_request = || {
            answer(
                400,
                oauth_error("invalid_request", "missing/invalid parameters"),
            )
        };
        let now = self.now(wall);
        let over = self.refresh_window(now);
        // A penalty runs: the rate limiter answers before anything else.
        if let Some(p) = Self::running(&mut self.refresh_penalty, now) {
            return self.rate_limited(p, now);
        }
        if let Some(limit) = over {
            // The penalty starts the window afresh, as the API limiter's
            // does: a client that waits the wait this answer gives is let
            // through. Calls made during the penalty still count.
            self.recent_refreshes.clear();
            let p = Penalty {
                start_ms: now,
                until_ms: now.saturating_add(secs_to_ms(limit.penalty_seconds)),
                shape: limit.shape,
                status: limit.shape.default_status(),
                by_limit: true,
            };
            self.refresh_penalty = Some(p);
            let given = serde_json::from_slice::<Value>(body).ok();
            if let Some(rt) = given.as_ref().filter(|_| limit.revoke).and_then(|v| v.get("refresh_token")?.as_str()) {
                self.dirty = true;
                self.tokens.revoke_refresh_token(rt);
            }
            return self.rate_limited(p, now);
        }
        let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
            return invalid_request();
        };
        let field = |k: &str| req.get(k).and_then(Value::as_str);
        if field("client_id") != Some(self.creds.client_id.as_str())
            || field("client_secret") != Some(self.creds.client_secret.as_str())
        {
            return answer(
                401,
                oauth_error("invalid_client", "invalid client credentials"),
            );
        }
        match field("grant_type") {
            Some("refresh_token") => {}
            Some(_) => {
                return answer(
                    400,
                    oauth_error("unsupported_grant_type", "grant type not supported"),
                )
            }
            None => return invalid_request(),
        }
        let Some(old) = field("refresh_token").filter(|t| !t.is_empty()) else {
            return invalid_request();
        };
        let old = old.to_owned();
        let check = self.tokens.check_refresh(&old, now);
        if check.was_rotated {
            self.counters.spent_refresh_tokens_used += 1;
        }
        if !check.usable {
            let c = &self.config;
            return answer(c.dead_refresh_status, c.dead_refresh_answer.body());
        }
        if let Some(f) = self.faults.take_refresh() {
            let server_error =
                json!({ "error": "server_error", "error_description": "internal server error" });
            return match f.mode {
                RefreshFaultMode::ServerError => answer(f.status, server_error),
                RefreshFaultMode::Hang => RefreshOutcome::HangThen {
                    ms: f.hang_ms,
                    status: f.status,
                    body: server_error,
                },
                RefreshFaultMode::InvalidGrant => {
                    answer(f.status, oauth_error("invalid_grant", "invalid/expired token"))
                }
                RefreshFaultMode::RotateThenDrop => {
                    self.rotate(&old, now);
                    RefreshOutcome::Drop { status: f.status }
                }
                RefreshFaultMode::RotateThenDelay => {
                    // With a status other than 200: a new pair under an
                    // error status (never seen; plumgate must keep it).
                    let issued = self.rotate(&old, now);
                    RefreshOutcome::HangThen { ms: f.hang_ms, status: f.status, body: self.token_body(&issued) }
                }
                RefreshFaultMode::RotateRefreshOnly => {
                    let issued = self.rotate(&old, now);
                    let mut body = self.token_body(&issued);
                    if let Some(o) = body.as_object_mut() {
                        for k in ["access_token", "token_type", "expires_in", "access_token_expiry"] {
                            o.remove(k);
                        }
                    }
                    answer(f.status, body)
                }
                RefreshFaultMode::RateLimited => {
                    let p = Self::penalty_of(&f, now);
                    self.refresh_penalty = Some(p);
                    if f.revoke {
                        self.dirty = true;
                        self.tokens.revoke_refresh_token(&old);
                    }
                    self.rate_limited(p, now)
                }
                RefreshFaultMode::TokenError => {
                    // A password reset ends the admin's sessions: every
                    // token issued until then dies, access tokens too.
                    self.dirty = true;
                    self.tokens.revoke_access(now);
                    self.tokens.revoke_refresh(now);
                    answer(f.status, token_error_body())
                }
                RefreshFaultMode::InvalidClient => {
                    answer(f.status, oauth_error("invalid_client", "invalid client credentials"))
                }
                RefreshFaultMode::Account(a) => answer(f.status, a.body(f.status)),
            };
        }
        let issued = self.rotate(&old, now);
        answer(200, self.token_body(&issued))
    }

    // ----- GET /chef/v1/oauth/token -----

    /// The check's answer: a status and body, or the rate-limit answer
    /// (with `Retry-After` in the HTTP 429 shape).
    pub fn validate_token(&mut self, auth: Option<&str>, wall: i64) -> RefreshOutcome {
        // The layer in front of Xoxoday: `before`, nothing is checked;
        // `after`, the check is made and its answer replaced.
        let proxy = self.faults.take_proxy(ProxyRoute::Validate, None);
        if proxy.is_some() {
            self.counters.proxy_pages += 1;
        }
        match proxy {
            Some(f) if f.mode == ProxyFaultMode::Before => RefreshOutcome::Page { status: f.status, delay_ms: 0 },
            Some(f) => {
                self.validate_inner(auth, wall);
                RefreshOutcome::Page { status: f.status, delay_ms: 0 }
            }
            None => {
                // Counted when given, as the refresh route counts: a rate-limit
                // answer a page replaced was never given.
                let out = self.validate_inner(auth, wall);
                if matches!(out, RefreshOutcome::Limited { .. }) {
                    self.counters.validate_rate_limited += 1;
                }
                out
            }
        }
    }

    fn validate_inner(&mut self, auth: Option<&str>, wall: i64) -> RefreshOutcome {
        self.counters.validate_calls += 1;
        let now = self.now(wall);
        // A penalty runs: the rate limiter answers before anything else.
        if let Some(p) = Self::running(&mut self.validate_penalty, now) {
            return self.rate_limited(p, now);
        }
        let Some(token) = bearer(auth) else {
            let body = oauth_error("invalid_request", "missing/invalid parameters authorization header");
            return RefreshOutcome::Answer { status: 401, body };
        };
        if let Some(f) = self.faults.take_validate() {
            let body = match f.mode {
                ValidateFaultMode::RateLimited => {
                    let p = Self::penalty_of(&f, now);
                    self.validate_penalty = Some(p);
                    return self.rate_limited(p, now);
                }
                ValidateFaultMode::ServerError => json!({ "error": "server_error", "error_description": "internal server error" }),
                ValidateFaultMode::Account(a) => a.body(f.status),
            };
            return RefreshOutcome::Answer { status: f.status, body };
        }
        let (status, body) = self.verdict(token, now);
        RefreshOutcome::Answer { status, body }
    }

    /// The check's verdict on `token`.
    fn verdict(&self, token: &str, now: i64) -> (u16, Value) {
        let c = &self.config;
        let Some(a) = self.tokens.access(token, now).cloned() else {
            let body = match c.dead_check_answer {
                DeadCheckAnswer::InvalidToken => oauth_error("invalid_token", "invalid/expired token"),
                DeadCheckAnswer::Unauthorized => json!({ "error": "Unauthorized" }),
                DeadCheckAnswer::TokenError => token_error_body(),
            };
            return (c.dead_check_status, body);
        };
        let refresh_expiry = self.tokens.pair_refresh_expiry(a.pair).unwrap_or(0);
        let expires_in = match c.check_expires_in {
            CheckExpiresIn::Remaining => (a.expires_ms.saturating_sub(now).saturating_add(999) / 1000).max(0),
            // The token's own lifetime, whatever the config says now (a
            // token from an older state file: the configured one).
            CheckExpiresIn::Lifetime => match a.lifetime_ms {
                Some(ms) => ms.saturating_add(999) / 1000,
                None => i64::try_from(c.access_ttl_secs).unwrap_or(i64::MAX),
            },
            CheckExpiresIn::Stamp => a.expires_ms / 1000,
        };
        let mut body = json!({
            "access_token": token,
            "token_type": "bearer",
            "expires_in": c.expires_in_as.render(expires_in),
        });
        if c.check_expiry_fields {
            if let Some(o) = body.as_object_mut() {
                o.insert("access_token_expiry".into(), c.expiry_as.render(a.expires_ms));
                o.insert("refresh_token_expiry".into(), c.expiry_as.render(refresh_expiry));
            }
        }
        (200, body)
    }

    // ----- POST /chef/v1/oauth/api -----

    pub fn api(&mut self, auth: Option<&str>, body: &[u8], wall: i64) -> ApiOutcome {
        let now = self.now(wall);
        let envelope: Option<Value> = serde_json::from_slice(body).ok();
        let query = envelope
            .as_ref()
            .and_then(|v| v.get("query"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let op = query.as_deref().and_then(op_for_query);
        let tag = envelope.as_ref().and_then(|v| v.get("tag"));
        if tag.and_then(Value::as_str) != Some("plumProAPI") {
            self.counters.not_plum_tag += 1;
        }
        // The layer in front of Xoxoday, before the call reaches it.
        let proxy = self.faults.take_proxy(ProxyRoute::Api, op);
        if let Some(f) = proxy.as_ref().filter(|f| f.mode == ProxyFaultMode::Before) {
            self.counters.proxy_pages += 1;
            return ApiOutcome { status: f.status, body: Value::Null, page: true, op, delay_after_ms: 0, retry_after_secs: None };
        }
        if let Some(op) = op {
            *self.counters.api_calls.entry(op).or_insert(0) += 1;
        }
        let authorized = bearer(auth).is_some_and(|t| self.tokens.access(t, now).is_some());
        let mut delay_after_ms = 0;
        let mut retry_after_secs = None;
        // Only the authorisation layer's 401s here, where a dead token's is
        // answered; an operation's own failure once dispatch lets it run.
        let injected = if authorized { self.faults.take_api(op, false) } else { None };
        let (status, resp) = if !authorized {
            self.counters.unauthorized_api_calls += 1;
            let c = &self.config;
            match c.dead_access_answer {
                DeadAccessAnswer::Pipe10013 => (401, unauthorized_body()),
                DeadAccessAnswer::InvalidToken => (c.dead_access_status, oauth_error("invalid_token", "invalid/expired token")),
                DeadAccessAnswer::TokenError => (c.dead_access_status, token_error_body()),
                DeadAccessAnswer::InvalidRequest => {
                    (c.dead_access_status, oauth_error("invalid_request", "missing/invalid parameters authorization header"))
                }
            }
        } else if let Some(f) = injected {
            if f.status == 401 {
                self.counters.api_401_faults += 1;
            }
            match (f.shape, f.penalty_seconds) {
                (Some(shape), Some(secs)) => {
                    self.counters.rate_limited_calls += 1;
                    // Undocumented for the API (xoxoday-api.md §3.9), but a
                    // 429 with the header is what a layer in front of it
                    // answers: the shape that carries it carries it here too.
                    retry_after_secs = (shape == RateLimitShape::Status429).then_some(secs);
                    (f.status, shape.body(secs))
                }
                _ if f.mode == ApiFaultMode::EchoHeader => (f.status, echo_header_body(f.status, auth.unwrap_or_default())),
                _ => (f.status, f.mode.body(f.status, op.unwrap_or_default())),
            }
        } else {
            match self.dispatch(envelope.as_ref(), query.as_deref(), op, now) {
                Ok((v, delay)) => {
                    delay_after_ms = delay;
                    (200, v)
                }
                Err(Reject::Plum(e)) => (e.status, e.body()),
                Err(Reject::Limited(secs)) => {
                    (self.config.rate_limit_status, self.config.rate_limit_shape.body(secs))
                }
                Err(Reject::Daily(op, cap)) => (429, daily_limit_body(op, cap)),
                Err(Reject::Fault(status, body)) => (status, body),
            }
        };
        let logged_body = if body.len() > LOGGED_BODY_MAX {
            json!({ "_sandbox_truncated_bytes": body.len() })
        } else {
            envelope.unwrap_or(Value::Null)
        };
        let logged_op = op
            .map(str::to_owned)
            .or_else(|| query.map(|q| q.chars().take(200).collect()));
        if self.requests.len() >= REQUEST_LOG_CAP {
            self.requests.pop_front();
        }
        self.requests.push_back(RequestRecord {
            op: logged_op,
            body: logged_body,
            authorized,
            status,
        });
        if let Some(f) = proxy {
            // `After`: Xoxoday did its part; the caller sees the page.
            self.counters.proxy_pages += 1;
            return ApiOutcome { status: f.status, body: Value::Null, page: true, op, delay_after_ms, retry_after_secs: None };
        }
        ApiOutcome {
            status,
            body: resp,
            page: false,
            op,
            delay_after_ms,
            retry_after_secs,
        }
    }

    fn dispatch(
        &mut self,
        envelope: Option<&Value>,
        query: Option<&str>,
        op: Option<&'static str>,
        now: i64,
    ) -> Result<(Value, u64), Reject> {
        let Some(env) = envelope.filter(|v| v.is_object()) else {
            return Err(PlumError::new(
                400,
                "PLE10001",
                "Invalid request",
                "request body must be a JSON object {query, tag, variables}",
            )
            .into());
        };
        let Some(op) = op else {
            let shown: String = query.unwrap_or("").chars().take(200).collect();
            return Err(PlumError::new(
                400,
                "PLE10001",
                "Invalid query",
                format!("Unknown query {shown:?}"),
            )
            .into());
        };
        let limit = self.config.rate_limit(op);
        if let Err(secs) = self
            .limiter
            .check(op, limit, self.config.penalty_seconds, now)
        {
            self.counters.rate_limited_calls += 1;
            return Err(Reject::Limited(secs));
        }
        if let Some(cap) = self.config.daily_limit(op) {
            if !self.limiter.daily(op, cap, self.config.daily_window, now) {
                self.counters.daily_limited_calls += 1;
                return Err(Reject::Daily(op, cap));
            }
        }
        // The documented placement of the data (paymentHistory: top-level
        // data.data); an empty array is PHP's empty object.
        let (raw_input, placement) = if op == "paymentHistory" {
            (env.get("data").and_then(|d| d.get("data")), "data.data")
        } else {
            (env.get("variables").and_then(|d| d.get("data")), "variables.data")
        };
        let empty = Map::new();
        let input = match raw_input {
            Some(Value::Object(m)) => m,
            Some(Value::Array(a)) if a.is_empty() => &empty,
            None => return Err(PlumError::validation(format!("{placement} is required")).into()),
            Some(_) => {
                return Err(PlumError::validation(format!("{placement} must be a JSON object")).into())
            }
        };
        // The `text_numbers` reading: a number in a text field is read as
        // its text (by default the readers refuse it).
        let lenient;
        let input = if self.config.text_numbers {
            lenient = numbers_as_text(op, input);
            &lenient
        } else {
            input
        };
        let initial = self.config.initial_balance_cents();
        let ok = |key: &str, data: Value| Ok((success(key, data), 0));
        // Each operation checks its data first; its own failure (an API
        // fault: getBalance's PLE10023, placeOrder's PLE10019) answers only
        // a call those checks let through (`operation_fault`).
        match op {
            "getFilters" => {
                let data = catalog().filters(input, self.config.currency_filter_group)?;
                self.operation_fault(op)?;
                ok(op, data)
            }
            "getVouchers" => {
                let data = catalog().vouchers(input, &self.asset_base)?;
                self.operation_fault(op)?;
                ok(op, pad_terms(data, self.config.terms_bytes))
            }
            "getBalance" => {
                self.operation_fault(op)?;
                let b = money(self.ledger.balance_cents(initial));
                ok(op, json!({ "points": b, "value": b, "currency": "USD" }))
            }
            "placeOrder" => self.place_order(input, now),
            "getOrderDetails" => {
                // GitBook marks sendMailToReceiver required.
                let resend = flag(input, "sendMailToReceiver", true)?;
                let po = input.get("poNumber").and_then(Value::as_str);
                // A malformed lookup is refused before any fault: a fault
                // meets only valid calls (README), a lookup of no order too.
                if let Err(e) = self.ledger.lookup(input).map(|_| ()) {
                    if e.error_id == "PLE10001" {
                        return Err(e.into());
                    }
                }
                self.operation_fault(op)?;
                let found = self.ledger.lookup(input);
                if let Some(f) = self.faults.take_details(po) {
                    return Err(match f.mode {
                        // Xoxoday's failure flag, words of the sandbox's.
                        DetailsFaultMode::StatusZero => return Ok((failure_flag(op, "Failed to fetch order details"), 0)),
                        DetailsFaultMode::NotFound => not_found(),
                        DetailsFaultMode::Ple10021 => {
                            PlumError::new(404, "PLE10021", "Unable to fetch order details", "Unable to fetch order details")
                        }
                        DetailsFaultMode::ServerError => PlumError::new(
                            f.status,
                            "PLE10034",
                            "Failed to process resendVoucher",
                            "Failed to process resendVoucher",
                        ),
                    }
                    .into());
                }
                let order = found?;
                let data = order_details_json(order, self.config.order_recipient, self.config.order_day_zone, now);
                // Only delivered vouchers are mailed again: none of a pending
                // order yet, none of a failed or cancelled one.
                if resend && order.delivered(now) {
                    self.counters.resend_mails += 1;
                }
                ok(op, data)
            }
            "getOrderHistory" => {
                let data = self.ledger.history(input, self.config.order_day_zone, now)?;
                self.operation_fault(op)?;
                ok(op, data)
            }
            "paymentHistory" => {
                let rows = self.ledger.payments(input, initial, self.config.order_day_zone)?;
                self.operation_fault(op)?;
                match self.config.payment_report_shape {
                    PaymentReportShape::Wrapped => ok("getPaymentReport", rows),
                    PaymentReportShape::Flat => Ok((json!({ "data": rows }), 0)),
                }
            }
            _ => Err(PlumError::new(400, "PLE10001", "Invalid query", "Unknown query").into()),
        }
    }

    /// An operation's own failure (an in-operation API fault), for a call
    /// of `op` its checks accepted: the call has passed the limits (and
    /// counts toward them) and carries valid data.
    fn operation_fault(&mut self, op: &'static str) -> Result<(), Reject> {
        match self.faults.take_api(Some(op), true) {
            Some(f) => {
                if f.status == 401 {
                    self.counters.api_401_faults += 1;
                }
                Err(Reject::Fault(f.status, f.mode.body(f.status, op)))
            }
            None => Ok(()),
        }
    }

    fn place_order(
        &mut self,
        input: &Map<String, Value>,
        now: i64,
    ) -> Result<(Value, u64), Reject> {
        let duplicate = self.config.duplicate_answer;
        let req = self
            .ledger
            .validate(input, self.config.initial_balance_cents())
            .map_err(|e| match duplicate {
                DuplicateAnswer::Validation if e.error_id == "PLE10043" => {
                    PlumError::validation("Validation error in place order")
                }
                DuplicateAnswer::Worded if e.error_id == "PLE10043" => PlumError::validation("poNumber already exists"),
                _ => e,
            })?;
        // PLE10019 refuses the order before any order fault is taken.
        self.operation_fault("placeOrder")?;
        let fault = self.faults.take_order();
        let fault_error = |f: &Fault<OrderFaultMode>| {
            let (id, info, error) = f.error_id.unwrap_or(OrderErrorId::Ple10035).words();
            PlumError::new(f.status, id, info, error)
        };
        match fault.as_ref().map(|f| f.mode) {
            Some(OrderFaultMode::FailBeforeCreate) => return Err(fault_error(fault.as_ref().unwrap()).into()),
            Some(OrderFaultMode::StatusZero) => {
                return Ok((failure_flag("placeOrder", "Failed to place order"), 0));
            }
            // In the worded reading too (the other readings keep 409
            // PLE10043: a bare validation error would be a plain refusal).
            Some(OrderFaultMode::Duplicate) if duplicate == DuplicateAnswer::Worded => {
                return Err(PlumError::validation("poNumber already exists").into());
            }
            Some(OrderFaultMode::Duplicate) => {
                let f = fault.as_ref().unwrap();
                return Err(PlumError::new(f.status, "PLE10043", "Duplicate poNumber", "Order with this poNumber already exists").into());
            }
            _ => {}
        }
        let status = match fault.as_ref().and_then(|f| f.order_status) {
            Some(OrderStatus::Failed) => "failed",
            Some(OrderStatus::Cancelled) => "cancelled",
            Some(OrderStatus::CancelledLines) => "cancelled_lines",
            _ => "complete",
        };
        let data = place_order_json(self.ledger.create_with_status(req, now, status), now);
        self.counters.orders += 1;
        self.dirty = true;
        match fault {
            Some(f) if f.mode == OrderFaultMode::FailAfterCreate => Err(fault_error(&f).into()),
            Some(f) if f.mode == OrderFaultMode::HangAfterCreate => {
                Ok((success("placeOrder", data), f.hang_ms))
            }
            _ => Ok((success("placeOrder", data), 0)),
        }
    }

    // ----- admin -----

    pub fn patch_config(&mut self, body: &[u8]) -> Result<Value, String> {
        self.config.apply_patch(body)?;
        self.dirty = true;
        if self.config.refresh_limit.is_none() {
            // Off: its window and a penalty it started go with it (a
            // `rate_limited` fault's penalty runs on).
            self.recent_refreshes.clear();
            self.refresh_penalty = self.refresh_penalty.filter(|p| !p.by_limit);
        }
        Ok(self.config.to_json())
    }

    pub fn expire_access(&mut self, wall: i64) -> usize {
        self.dirty = true;
        self.tokens.expire_access(self.now(wall))
    }

    pub fn revoke_access(&mut self, wall: i64) -> usize {
        self.dirty = true;
        self.tokens.revoke_access(self.now(wall))
    }

    pub fn revoke_refresh(&mut self, wall: i64) -> usize {
        self.dirty = true;
        self.tokens.revoke_refresh(self.now(wall))
    }

    /// Like the dashboard's "Generate Token": a brand-new valid pair. With
    /// `{"revoke_existing": true}` every token issued before dies first, as
    /// when the dashboard regenerates tokens (or another Super Admin does).
    pub fn issue_tokens(&mut self, body: &[u8], wall: i64) -> Result<Value, String> {
        #[derive(Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct IssueRequest {
            #[serde(default)]
            revoke_existing: bool,
        }
        let req: IssueRequest = if body.iter().all(u8::is_ascii_whitespace) {
            IssueRequest::default()
        } else {
            serde_json::from_slice(body).map_err(|e| e.to_string())?
        };
        let now = self.now(wall);
        if req.revoke_existing {
            self.tokens.revoke_access(now);
            self.tokens.revoke_refresh(now);
        }
        let t = self.issue(now);
        Ok(json!({
            "access_token": t.access_token,
            "refresh_token": t.refresh_token,
            "access_token_expiry": t.access_expires_ms,
            "refresh_token_expiry": t.refresh_expires_ms,
        }))
    }

    /// Every token value issued so far (test route `GET /__sandbox/tokens/issued`).
    pub fn issued_tokens(&self) -> Value {
        json!({ "tokens": self.tokens.all_values() })
    }

    /// Every voucher code and PIN of the orders held, delivered or not
    /// (test route `GET /__sandbox/vouchers/issued`): a leak scan looks
    /// for all of them, not only those of the answers a test read.
    pub fn issued_vouchers(&self) -> Value {
        let all: Vec<&str> = self.ledger.orders.iter().flat_map(|o| &o.vouchers).flat_map(|v| [v.code.as_str(), v.pin.as_str()]).collect();
        json!({ "vouchers": all })
    }

    pub fn token_stats(&self, wall: i64) -> Value {
        let (access, refresh) = self.tokens.live_counts(self.now(wall));
        json!({
            "live_access_tokens": access,
            "live_refresh_tokens": refresh,
            "spent_refresh_tokens_used": self.counters.spent_refresh_tokens_used,
        })
    }

    pub fn set_refresh_fault(&mut self, body: &[u8]) -> Result<Value, String> {
        self.faults.set_refresh(body)?;
        Ok(self.faults.to_json())
    }

    pub fn set_validate_fault(&mut self, body: &[u8]) -> Result<Value, String> {
        self.faults.set_validate(body)?;
        Ok(self.faults.to_json())
    }

    pub fn set_api_fault(&mut self, body: &[u8]) -> Result<Value, String> {
        self.faults.set_api(body)?;
        Ok(self.faults.to_json())
    }

    pub fn set_order_fault(&mut self, body: &[u8]) -> Result<Value, String> {
        self.faults.set_order(body)?;
        Ok(self.faults.to_json())
    }

    pub fn set_proxy_fault(&mut self, body: &[u8]) -> Result<Value, String> {
        self.faults.set_proxy(body)?;
        Ok(self.faults.to_json())
    }

    pub fn set_details_fault(&mut self, body: &[u8]) -> Result<Value, String> {
        self.faults.set_details(body)?;
        Ok(self.faults.to_json())
    }

    /// Clears every fault and a penalty one started.
    pub fn clear_faults(&mut self) -> Value {
        self.faults = Faults::default();
        self.refresh_penalty = None;
        self.validate_penalty = None;
        // A `refresh_limit`'s window too: else the next refresh, counted
        // into the still-full window, would start a penalty at once.
        self.recent_refreshes.clear();
        self.faults.to_json()
    }

    pub fn faults_json(&self) -> Value {
        self.faults.to_json()
    }

    pub fn counters_json(&self, concurrent: u64, peak: u64) -> Value {
        let c = &self.counters;
        let api: Map<String, Value> = OPS
            .iter()
            .map(|op| {
                (
                    (*op).to_owned(),
                    json!(c.api_calls.get(op).copied().unwrap_or(0)),
                )
            })
            .collect();
        json!({
            "refresh_calls": c.refresh_calls,
            "refresh_success": c.refresh_success,
            "refresh_failures": c.refresh_failures,
            "peak_concurrent_refreshes": peak,
            "concurrent_refreshes": concurrent,
            "validate_calls": c.validate_calls,
            "api_calls": api,
            "unauthorized_api_calls": c.unauthorized_api_calls,
            "orders": c.orders,
            "resend_mails": c.resend_mails,
            "rate_limited_calls": c.rate_limited_calls,
            "spent_refresh_tokens_used": c.spent_refresh_tokens_used,
            "refresh_rate_limited": c.refresh_rate_limited,
            "validate_rate_limited": c.validate_rate_limited,
            "api_401_faults": c.api_401_faults,
            "daily_limited_calls": c.daily_limited_calls,
            "proxy_pages": c.proxy_pages,
            "not_json_content_type": c.not_json_content_type,
            "not_plum_tag": c.not_plum_tag,
        })
    }

    /// A refresh or API call came without the JSON content type.
    pub fn note_not_json_content_type(&mut self) {
        self.counters.not_json_content_type += 1;
    }

    pub fn reset_counters(&mut self) {
        self.counters = Counters::default();
    }

    pub fn requests_json(&self, limit: usize) -> Value {
        let skip = self.requests.len().saturating_sub(limit);
        Value::Array(
            self.requests
                .iter()
                .skip(skip)
                .filter_map(|r| serde_json::to_value(r).ok())
                .collect(),
        )
    }

    pub fn clear_requests(&mut self) {
        self.requests.clear();
    }

    /// Back to the fresh-start state (keeps credentials and the asset base).
    pub fn reset(&mut self, wall: i64) {
        let base = std::mem::take(&mut self.asset_base);
        *self = Sandbox::new(self.creds.clone(), wall);
        self.asset_base = base;
        self.dirty = true;
    }
}

/// The older getVouchers daily cap's answer (the live rate-limiting page's
/// example; no `Retry-After`).
fn daily_limit_body(op: &str, cap: u32) -> Value {
    json!({ "code": 429, "error": "rate_limit_exceeded", "message": format!("Daily request limit of {cap} reached for {op} API.") })
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}


/// Pad every product's `termsAndConditionsInstructions` in a getVouchers
/// answer to `bytes` (0: left as it is) with more list items.
fn pad_terms(mut page: Value, bytes: u32) -> Value {
    let bytes = bytes as usize;
    if bytes == 0 {
        return page;
    }
    if let Some(products) = page.as_array_mut() {
        for p in products {
            if let Some(Value::String(t)) = p.get_mut("termsAndConditionsInstructions") {
                let item = "<li>Sandbox terms: this voucher is not redeemable anywhere.</li>";
                while t.len() + item.len() <= bytes {
                    t.push_str(item);
                }
            }
        }
    }
    page
}

#[cfg(test)]
mod tests;
