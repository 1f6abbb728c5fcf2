//! The Xoxoday token lifecycle, sans I/O.
//!
//! Owns: the token authority's persisted state ([`AuthorityState`]), the
//! state machine that decides what a request, a cron tick or a forced
//! refresh should do ([`plan`]), applying a refresh's outcome, the
//! retry/backoff policy, and the status body of `GET /v1/token`
//! ([`status`]). The alerts the authority raises and keeps with this state
//! are `crate::alert`'s. Submodules hold the rest of the authority's rules:
//! - [`serve`]: what the authority does with one call and what it answers
//!   (the decisions its Durable Object shell runs, in order);
//! - [`check`]: an upstream 401 is checked before anything is spent;
//! - [`run`]: each step of a refresh run and what to answer after it;
//! - [`refresh`]: the refresh and token-check requests and their answers;
//! - [`adopt`]: the bootstrap tokens and client credentials the operator sets;
//! - [`storage`]: loading or refusing stored state, the per-account names,
//!   the one-time import of the previous version's state;
//! - [`cache`]: the access-token caches in front of the authority (isolate
//!   memory, KV): when a grant may be used, how long KV keeps one, how an
//!   isolate shares one lookup, and what the worker makes of a reply.
//!
//! Not here: the Durable Object that runs these decisions with real `fetch`
//! and storage (`src/objects/authority.rs`), the isolate/KV caches' I/O
//! (`src/tokens.rs`), and the protocol between them (`crate::wire::authority`).
//!
//! Rules (contract §4):
//! - A refresh answer that carries an access token is never discarded, even
//!   when its other fields are odd; a missing `refresh_token` keeps the old one.
//! - Two windows: inside the early window (default: under 7 days left, moved
//!   earlier by up to 10 % jitter per token) the current token keeps being
//!   served while one background refresh runs; inside the last minutes
//!   (`must_refresh_secs`, at most a quarter of the token's life) or once
//!   expired, the request waits for the refresh.
//! - Transport errors, timeouts, 5xx, `server_error` and
//!   `temporarily_unavailable` are transient: bounded retries, then a
//!   jittered backoff while a still-valid token keeps being served.
//! - Xoxoday's refresh rate-limit answer (`auth.request_limit_exceeded`, in
//!   any of its shapes, or HTTP 429) stops the run at once: no attempt of
//!   any kind until its penalty (plus jitter) ends.
//! - `invalid_grant`, `invalid_token`, `auth.token_error` and other 4xx are
//!   final: `reauth_required` and no further refresh until the operator sets
//!   a new bootstrap token. `invalid_client` / `unauthorized_client` blame the
//!   client id/secret, not the refresh token: `credentials_rejected`, which
//!   clears by itself when those secrets change; the refresh token is kept,
//!   and the admin's forced refresh may try the same secrets again (Xoxoday
//!   may have rejected right ones; a rejection spends nothing).
//! - A refresh token that has been rotated away is remembered by fingerprint
//!   and never used again, even if the operator sets it again.
//! - A live refresh token that a new bootstrap token displaces is kept
//!   aside until the new one has refreshed; should Xoxoday refuse the new
//!   one as dead first, the run goes back to it at once ([`run::fall_back`]),
//!   and `reauth_required` comes only if it is refused too.
//! - No caller can cause a rotation: an upstream 401 only marks the token
//!   rejected after Xoxoday's own token check says it is invalid
//!   ([`check`]), and a forced refresh is allowed at most once per
//!   `min_refresh_interval_secs` while the token is usable or the client
//!   id/secret stand rejected.

pub mod adopt;
pub mod cache;
pub mod check;
mod decode;
pub mod refresh;
pub mod run;
pub mod serve;
pub mod storage;

pub use adopt::{adopt_bootstrap, adopt_credentials, credentials_fingerprint, Adoption};
pub use refresh::{
    build_refresh_request, build_validate_request, parse_refresh_response, parse_validate_response, RefreshOutcome,
    TokenAnswer,
};

use crate::alert::last_alert;
use crate::errors::ApiError;
use crate::secret::{AccessToken, RefreshToken};
use crate::time::{rfc3339, secs_to_ms, secs_until};
use crate::wire::authority::TokenStatus;
#[cfg(test)]
use serde::Deserialize;
use serde::Serialize;

/// Access-token lifetime assumed when an answer gives none (15 days, the
/// documented Reward API lifetime).
pub const DEFAULT_ACCESS_TTL_MS: i64 = 1_296_000_000;
/// Refresh-token lifetime assumed when an answer gives none (30 days).
pub const DEFAULT_REFRESH_TTL_MS: i64 = 2_592_000_000;
/// How many rotated-away refresh-token fingerprints are remembered: 256,
/// about five years of rotations at the default pace (one every eight
/// days), so an earlier `XOXODAY_REFRESH_TOKEN` put back (a stale secret,
/// a rollback of secrets) is refused rather than taken in place of the
/// live refresh token, then found dead (`reauth_required`). 16 hex
/// characters each: the stored state grows by at most ~5 KB.
pub const SPENT_MEMORY: usize = 256;

/// Tuning of the refresh windows and retries.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenPolicy {
    /// Refresh in the background when less than this remains (default 7 days).
    pub early_refresh_secs: u64,
    /// Make requests wait for a refresh when less than this remains (default 5 min).
    pub must_refresh_secs: u64,
    /// Never refresh more often than this, unless the token is unusable
    /// (default 60 s); also the forced-refresh throttle. Stops loops when
    /// upstream issues tokens shorter than the refresh windows (a token
    /// that lives less than this is still refreshed once it expires, once
    /// per its life, each request then waiting for the refresh).
    pub min_refresh_interval_secs: u64,
    /// How long a request waits for a refresh (or a token check) it needs
    /// (default 15 s). The refresh itself keeps running in the Durable
    /// Object after the request stops waiting.
    pub refresh_timeout_ms: u64,
    /// Timeout of one call to the refresh endpoint (default 5 min): long,
    /// because a slow answer cut off under strict rotation loses the pair.
    pub refresh_call_timeout_ms: u64,
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
            refresh_call_timeout_ms: 300_000,
            max_attempts: 3,
            retry_base_ms: 250,
            backoff_base_ms: 30_000,
            backoff_max_ms: 1_800_000,
        }
    }
}

/// The access token currently held. Only `token` is required when stored
/// state is read: a slot without a token is no slot.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
pub struct AccessSlot {
    /// The token.
    pub token: AccessToken,
    /// When it expires (epoch ms); missing means "expired", which only
    /// costs a refresh.
    #[serde(default)]
    pub expires_at_ms: i64,
    /// When plumgate obtained it (epoch ms).
    #[serde(default)]
    pub obtained_at_ms: i64,
    /// Xoxoday's token check confirmed that upstream rejects it.
    #[serde(default)]
    pub rejected: bool,
}

/// The refresh token currently held. Never leaves the authority.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
pub struct RefreshSlot {
    /// The token.
    pub token: RefreshToken,
    /// When it expires (epoch ms), from the answer or estimated.
    #[serde(default)]
    pub expires_at_ms: i64,
    /// Whether `expires_at_ms` came from upstream.
    #[serde(default)]
    pub expiry_known: bool,
}

/// Everything the token authority persists (one storage value, written
/// atomically).
///
/// Forward compatible: every field has a default (a state written by an
/// older version, which lacks newer fields, still loads), and fields this
/// version does not know are ignored (a state written by a newer version
/// still loads after a rollback; such fields are not written back: keeping
/// them would cost the worker's wasm ~2 KB gzip, and none of them holds
/// the token pair, which lives in fields every version knows; only
/// `displaced_refresh`, a fallback, is lost so, and the held pair with
/// it stands as that version would have left it; `chain_refresh_fp` too,
/// and it is written again at the next refresh). State that
/// still cannot be read is never replaced: see [`storage::load_state`].
///
/// Read by hand in `decode` (the derive's reader was 15.9 KB of wasm), with
/// the same rules; this struct and its two slots derive `Deserialize` only
/// for the test that holds `decode` to them.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
#[serde(default)]
pub struct AuthorityState {
    /// Current access token.
    pub access: Option<AccessSlot>,
    /// Current refresh token.
    pub refresh: Option<RefreshSlot>,
    /// The live refresh token a new `XOXODAY_REFRESH_TOKEN` displaced,
    /// kept until the new value proves itself: its first successful
    /// refresh spends this one ([`run::finish_run`]); should Xoxoday refuse
    /// it as a dead token instead, this one is held again and the chain
    /// goes on from it ([`run::fall_back`]). Never leaves the object. The
    /// token alone, not its slot: it is refreshed at once when held again,
    /// and that answer says its successor's expiry (a slot here would cost
    /// the worker's wasm its own reader, ~150 B gzip).
    pub displaced_refresh: Option<RefreshToken>,
    /// Set when the refresh token is dead; a person must act.
    pub reauth_reason: Option<String>,
    /// Fingerprint of the bootstrap `XOXODAY_REFRESH_TOKEN` last seen and handled.
    pub adopted_bootstrap_fp: Option<String>,
    /// Fingerprint of the refresh token the chain goes on from: the last
    /// one a refresh answer issued or confirmed, or a value set with no
    /// live chain (the first seed, under `reauth_required`). When a new
    /// value is set while one token is held and another kept aside, it
    /// says which of the two is kept ([`adopt::adopt_bootstrap`]).
    pub chain_refresh_fp: Option<String>,
    /// Fingerprint of the bootstrap `XOXODAY_ACCESS_TOKEN` last seen and handled.
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
    /// Xoxoday's refresh rate-limit penalty, jitter included: no refresh
    /// attempt of any kind before this (epoch ms).
    pub penalty_until_ms: Option<i64>,
    /// Written (and stored) before a refresh is sent, cleared when its run
    /// ends: found set when the state is loaded, the authority stopped
    /// while a refresh was in flight (an eviction, a deploy), and Xoxoday
    /// may have rotated the pair without plumgate learning the new one
    /// ([`run::interrupted`]).
    pub refresh_sent_at_ms: Option<i64>,
    /// Set while Xoxoday rejects the configured client id/secret: the
    /// [`credentials_fingerprint`] of the pair it rejected (the reason and
    /// time are `last_error` and `last_error_at_ms`); with `reauth_reason`,
    /// the pair configured when the refresh token was refused (a change
    /// clears both: [`adopt::adopt_credentials`]). Plain fields here and
    /// below rather than small structs: each struct in an `Option` costs
    /// the worker's wasm its own decoder.
    pub credentials_rejected_fp: Option<String>,
    /// Fingerprint of the access token the last token check was about
    /// (see [`check`]; read through [`AuthorityState::last_check`]).
    pub last_check_fp: Option<String>,
    /// When it was made (epoch ms).
    pub last_check_at_ms: Option<i64>,
    /// What it said: `valid`, `invalid` or `failed`.
    pub last_check_result: Option<String>,
    /// Since when the checks of that token have all failed (epoch ms; see
    /// [`check::CHECK_FAILING_MS`]).
    pub check_failing_since_ms: Option<i64>,
    /// Until when Xoxoday's rate-limit penalty on its token check runs
    /// (epoch ms): no check is sent before then (see [`check`]).
    pub check_penalty_until_ms: Option<i64>,
    /// When Xoxoday's token check confirmed a rejection (epoch ms), newest
    /// last, inside the loop guard's daily window, the newest
    /// `GUARD_DAY_LIMIT + 1` at most (see [`check`]).
    pub confirmed_rejections_ms: Vec<i64>,
    /// The per-account authority this object's state was handed to (the
    /// previous version's single authority only; see [`storage`]). A
    /// retired object never serves or refreshes again.
    pub retired_to: Option<String>,
    /// When it was handed over (epoch ms).
    pub retired_at_ms: Option<i64>,
    /// The token condition the last token alert was about
    /// (`alert::Condition`'s name), `None` while there is none
    /// (`alert::review`).
    pub alert_condition: Option<String>,
    /// The last balance reported was below `BALANCE_ALERT_BELOW`.
    pub alert_balance_low: bool,
    /// A refresh token or client id/secret the operator set in place of
    /// others has not refreshed yet: it is tried at once (the early window
    /// counts as open, [`AuthorityState::early_point_ms`]), and a token
    /// alert it was set to end stays open until it has
    /// (`alert::token_condition`). The first seed is not: its first
    /// refresh comes when it is needed. Cleared by a successful refresh.
    pub refresh_proof_due: bool,
    /// When the newest balance report applied was seen (epoch ms); older
    /// reports arriving later are ignored.
    pub alert_balance_seen_at_ms: Option<i64>,
    /// Alerts not yet delivered, oldest first: the JSON bodies to post
    /// (`alert`; at most `alert::MAX_PENDING`).
    pub alert_outbox: Vec<String>,
    /// Delivery attempts of the first alert of the outbox so far; once the
    /// outbox is empty, those the last alert took.
    pub alert_attempts: u32,
    /// When the first alert of the outbox is tried (again) (epoch ms).
    pub alert_next_at_ms: Option<i64>,
    /// When its first attempt was due: the give-up clock (epoch ms).
    pub alert_head_since_ms: Option<i64>,
    /// Why its last attempt failed; once the outbox is empty, why the last
    /// alert was not delivered (a safe sentence).
    pub alert_error: Option<String>,
    /// The last alert raised: its event, `firing` or `resolved`, and when.
    pub alert_last_event: Option<String>,
    /// See `alert_last_event`.
    pub alert_last_state: Option<String>,
    /// See `alert_last_event` (epoch ms).
    pub alert_last_at_ms: Option<i64>,
    /// The receiver accepted the last alert.
    pub alert_last_delivered: bool,
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
    /// Xoxoday rejects the client id/secret; a person must set them right.
    CredentialsRejected,
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
            TokenState::CredentialsRejected => "credentials_rejected",
        }
    }
}

/// What asked the authority for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A caller needs a token (also after a token check, see [`check`]).
    Request,
    /// The cron keep-alive.
    Cron,
    /// A person asked for a refresh (`POST /v1/token/refresh`).
    Forced,
}

/// Why the authority hands out no token (or why a forced refresh did not
/// happen). The Durable Object sends [`Refusal::api_error`] to the worker
/// (an [`ApiError`]: a flat struct costs far less wasm to decode than this
/// enum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The refresh token is dead: `503 reauth_required`.
    ReauthRequired,
    /// Xoxoday rejects the client id/secret: `503 credentials_rejected`.
    CredentialsRejected,
    /// Xoxoday's refresh rate-limit penalty runs: `429 rate_limited`.
    RefreshPenalty {
        /// Seconds until it ends.
        retry_after_secs: u64,
    },
    /// A forced refresh within `TOKEN_MIN_REFRESH_INTERVAL_SECS` of the
    /// last refresh attempt, while the token is usable or the client
    /// id/secret stand rejected: `429 rate_limited`.
    Throttled {
        /// Seconds until a forced refresh is allowed.
        retry_after_secs: u64,
    },
    /// The loop guard of [`check`]: `502 upstream_unauthorized`.
    LoopGuard {
        /// Confirmed rejections inside the deciding rule's window.
        rejections: u32,
        /// That window: "an hour" or "a day".
        within: &'static str,
        /// Seconds until the next refresh is allowed.
        retry_after_secs: u64,
    },
    /// Refreshing backs off after failed runs: `502 upstream_error`.
    Backoff {
        /// Seconds until the next attempt.
        retry_after_secs: u64,
    },
    /// The refresh run failed: `502 upstream_error`.
    RefreshFailed {
        /// Safe sentence.
        message: String,
        /// Seconds until the next attempt, when known.
        retry_after_secs: Option<u64>,
    },
    /// The refresh call timed out: `504 upstream_timeout`.
    RefreshTimedOut {
        /// Safe sentence.
        message: String,
        /// Seconds until the next attempt, when known.
        retry_after_secs: Option<u64>,
    },
    /// The request stopped waiting for a refresh that is still running in
    /// the authority (its answer will be kept): `504 upstream_timeout`.
    StillRefreshing {
        /// How long the request waited (ms).
        waited_ms: u64,
    },
    /// A refresh succeeded but its token is not usable: `502 upstream_error`.
    NoUsableToken,
    /// Xoxoday's token check failed, so plumgate could not tell whether the
    /// token was revoked, and spent nothing: `502 upstream_error`.
    CheckFailed {
        /// Safe sentence.
        message: String,
        /// Seconds until a check is tried again.
        retry_after_secs: u64,
    },
    /// The stored state cannot be read and is left untouched:
    /// `503 misconfigured`.
    StateUnreadable {
        /// Safe sentence (where it is and why it cannot be read).
        message: String,
    },
    /// Configuration problems: `503 misconfigured`.
    Misconfigured {
        /// One sentence per problem.
        problems: Vec<String>,
    },
    /// Durable Object storage or a Durable Object call failed:
    /// `502 upstream_error`.
    Unavailable {
        /// Safe sentence.
        message: String,
    },
}

impl Refusal {
    /// The caller-facing error.
    pub fn api_error(&self) -> ApiError {
        let with = |e: ApiError, secs: Option<u64>| match secs {
            Some(s) => e.retry_after(s.max(1)),
            None => e,
        };
        match self {
            Refusal::ReauthRequired => ApiError::reauth_required(),
            Refusal::CredentialsRejected => ApiError::credentials_rejected(),
            Refusal::RefreshPenalty { retry_after_secs } => ApiError::rate_limited_because(
                format!(
                    "Xoxoday has put token refreshes under a rate-limit penalty (auth.request_limit_exceeded): no refresh before it ends; retry after {} s",
                    retry_after_secs.max(&1)
                ),
                (*retry_after_secs).max(1),
            ),
            Refusal::Throttled { retry_after_secs } => ApiError::rate_limited_because(
                format!(
                    "the last refresh attempt was less than TOKEN_MIN_REFRESH_INTERVAL_SECS ago; a forced refresh is allowed again in {} s",
                    retry_after_secs.max(&1)
                ),
                (*retry_after_secs).max(1),
            ),
            Refusal::LoopGuard { rejections, within, retry_after_secs } => with(
                ApiError::upstream_unauthorized_because(format!(
                    "Xoxoday keeps rejecting its access tokens ({rejections} confirmed rejections within {within}); plumgate pauses refreshing to avoid a refresh loop: retry after {} s",
                    retry_after_secs.max(&1)
                )),
                Some(*retry_after_secs),
            ),
            Refusal::Backoff { retry_after_secs } => with(
                ApiError::upstream_error("Xoxoday token refresh: token refresh is failing; plumgate is backing off"),
                Some(*retry_after_secs),
            ),
            Refusal::RefreshFailed { message, retry_after_secs } => {
                with(ApiError::upstream_error(format!("Xoxoday token refresh: {message}")), *retry_after_secs)
            }
            Refusal::RefreshTimedOut { message, retry_after_secs } => {
                with(ApiError::upstream_timeout(format!("Xoxoday token refresh: {message}")), *retry_after_secs)
            }
            Refusal::StillRefreshing { waited_ms } => ApiError::upstream_timeout(format!(
                "Xoxoday token refresh: no answer within REFRESH_TIMEOUT_MS ({waited_ms} ms); the refresh keeps running and its answer will be kept: retry shortly"
            ))
            .retry_after(2),
            Refusal::NoUsableToken => ApiError::upstream_error("Xoxoday token refresh: the refresh produced no usable token"),
            Refusal::CheckFailed { message, retry_after_secs } => with(
                ApiError::upstream_error(format!(
                    "Xoxoday answered 401 to the access token and its token check failed ({message}); plumgate does not refresh without confirmation before 10 minutes of failed checks"
                )),
                Some(*retry_after_secs),
            ),
            Refusal::StateUnreadable { message } => ApiError::misconfigured(std::slice::from_ref(message)),
            Refusal::Misconfigured { problems } => ApiError::misconfigured(problems),
            Refusal::Unavailable { message } => ApiError::upstream_error(message.clone()),
        }
    }
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
    /// Hand out nothing (or, for a forced refresh, do not refresh).
    Refuse(Refusal),
}

impl AuthorityState {
    /// Is the current access token usable (present, not rejected, unexpired)?
    pub fn access_usable(&self, now_ms: i64) -> bool {
        self.access.as_ref().is_some_and(|a| !a.rejected && a.expires_at_ms > now_ms)
    }

    /// The instant the early window opens: the earlier of the access and
    /// (known) refresh expiry, each minus the jittered early window, at
    /// most half the life the token had when the last refresh handed it out.
    /// For the access token: one a refresh hands out with less life than the
    /// window (Xoxoday documents 15 days, but does not promise it) would
    /// otherwise be stale from the start, and refreshed once a minute (the
    /// minimum interval) for as long as calls come. For the refresh token: one reading of Xoxoday's docs keeps
    /// a chain's first expiry through every rotation, so a refresh inside
    /// the window leaves it there, and a full window would ask for another
    /// refresh at once (one a minute, the minimum interval, for days: the
    /// "unusual number of requests" that gets tokens revoked). Halving
    /// instead refreshes a few times as that end nears, while a refresh
    /// token that is renewed with a short life is still refreshed halfway
    /// through it.
    pub fn early_point_ms(&self, policy: &TokenPolicy) -> Option<i64> {
        let access = self.access.as_ref()?;
        if self.refresh_proof_due {
            return Some(i64::MIN);
        }
        let window = (policy.early_refresh_secs as f64 * 1000.0 * (1.0 + 0.1 * self.jitter.clamp(0.0, 1.0))) as i64;
        // A token handed over without a refresh (the bootstrap): the whole window.
        let early = |expires_at_ms: i64| {
            let half_life = self.last_refresh_at_ms.map_or(i64::MAX, |t| expires_at_ms.saturating_sub(t) / 2);
            expires_at_ms - window.min(half_life.max(0))
        };
        let mut point = early(access.expires_at_ms);
        if let Some(r) = &self.refresh {
            point = point.min(early(r.expires_at_ms));
        }
        Some(point)
    }

    /// Current state.
    pub fn state(&self, now_ms: i64, policy: &TokenPolicy) -> TokenState {
        if self.reauth_reason.is_some() {
            return TokenState::ReauthRequired;
        }
        if self.credentials_rejected_fp.is_some() {
            return TokenState::CredentialsRejected;
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
            Some(t) if t > now_ms => Some(secs_until(t, now_ms)),
            _ => None,
        }
    }

    /// Seconds left of Xoxoday's refresh rate-limit penalty, if one runs.
    pub fn penalty_left_secs(&self, now_ms: i64) -> Option<u64> {
        match self.penalty_until_ms {
            Some(t) if t > now_ms => Some(secs_until(t, now_ms).max(1)),
            _ => None,
        }
    }

    /// The last refresh attempt that ended, successful or not (epoch ms).
    pub fn last_attempt_at_ms(&self) -> Option<i64> {
        match (self.last_refresh_at_ms, self.last_error_at_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    fn refreshed_recently(&self, now_ms: i64, policy: &TokenPolicy) -> bool {
        self.last_refresh_at_ms
            .is_some_and(|t| now_ms - t < secs_to_ms(policy.min_refresh_interval_secs) && now_ms >= t)
    }

    /// When the next automatic refresh attempt may happen, if something
    /// holds it back (a penalty, a backoff, the loop guard); shown as
    /// `retry_at` by `GET /v1/token`.
    pub fn retry_at_ms(&self, now_ms: i64) -> Option<i64> {
        let guard = self
            .access
            .as_ref()
            .filter(|a| a.rejected)
            .and_then(|_| check::guard_until_ms(self, now_ms));
        [self.penalty_until_ms, self.next_attempt_at_ms, guard].into_iter().flatten().filter(|t| *t > now_ms).max()
    }

    /// When an isolate holding the current token should ask again (epoch ms).
    /// Before this instant a cached copy may be used without any KV or DO call.
    pub fn recheck_at_ms(&self, now_ms: i64, policy: &TokenPolicy) -> i64 {
        let Some(a) = &self.access else { return now_ms };
        let must = must_point_ms(a, policy);
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
///
/// Order of the rules: a retired object (it handed its state over: only
/// one authority may refresh a chain, and a request may have passed the
/// shell's own look before the hand-over, then waited on a token check),
/// a dead refresh token, then rejected client
/// credentials (both keep serving a still-valid access token to requests,
/// and never refresh by themselves; for rejected credentials the admin's
/// forced refresh may try the same secrets again, throttled: a rejection
/// spends nothing, and Xoxoday may have rejected a right secret); no
/// refresh token at all; Xoxoday's refresh penalty
/// (nothing may call the refresh endpoint); the forced-refresh throttle; an
/// unusable token (the loop guard for confirmed rejections, then the
/// backoff, else refresh now, whatever the time since the last refresh);
/// then the two windows of a usable token.
pub fn plan(state: &AuthorityState, trigger: Trigger, now_ms: i64, policy: &TokenPolicy) -> Plan {
    if let Some(r) = serve::retired(state) {
        return Plan::Refuse(r);
    }
    let usable = state.access_usable(now_ms);
    let serves = usable && trigger == Trigger::Request;
    if state.reauth_reason.is_some() {
        // Keep serving a still-valid access token: the operator has until it
        // expires to set a new refresh token. Nothing refreshes meanwhile.
        return if serves { Plan::Serve } else { Plan::Refuse(Refusal::ReauthRequired) };
    }
    let rejected_client = state.credentials_rejected_fp.is_some();
    if rejected_client && trigger != Trigger::Forced {
        return if serves { Plan::Serve } else { Plan::Refuse(Refusal::CredentialsRejected) };
    }
    if state.refresh.is_none() {
        return if usable { Plan::Serve } else { Plan::Refuse(Refusal::ReauthRequired) };
    }
    if let Some(secs) = state.penalty_left_secs(now_ms) {
        return if serves { Plan::Serve } else { Plan::Refuse(Refusal::RefreshPenalty { retry_after_secs: secs }) };
    }
    if trigger == Trigger::Forced {
        let interval_ms = secs_to_ms(policy.min_refresh_interval_secs);
        return match state.last_attempt_at_ms() {
            Some(t) if (usable || rejected_client) && now_ms - t < interval_ms && now_ms >= t => {
                Plan::Refuse(Refusal::Throttled { retry_after_secs: secs_until(t + interval_ms, now_ms).max(1) })
            }
            _ => Plan::RefreshThenServe,
        };
    }
    if !usable {
        if state.access.as_ref().is_some_and(|a| a.rejected) {
            if let Some((until, rejections, within)) = check::guard(state, now_ms) {
                return Plan::Refuse(Refusal::LoopGuard {
                    rejections,
                    within,
                    retry_after_secs: secs_until(until, now_ms).max(1),
                });
            }
        }
        return match state.in_backoff(now_ms) {
            Some(secs) => Plan::Refuse(Refusal::Backoff { retry_after_secs: secs.max(1) }),
            None => Plan::RefreshThenServe,
        };
    }
    let access = state.access.as_ref().expect("usable implies access");
    let must_point = must_point_ms(access, policy);
    let may_refresh = state.in_backoff(now_ms).is_none() && !state.refreshed_recently(now_ms, policy);
    if now_ms >= must_point {
        return if may_refresh { Plan::RefreshThenServe } else { Plan::Serve };
    }
    match state.state(now_ms, policy) {
        TokenState::Stale if may_refresh => Plan::ServeAndRefresh,
        // A failed refresh of a fresh token (a forced one) is tried again
        // by the cron once its backoff has passed, so the failure streak
        // (and its alert) ends with the next success, not days later in
        // the early window. Requests do not: isolates serve a fresh token
        // from their cache without asking.
        TokenState::Fresh if trigger == Trigger::Cron && state.consecutive_failures > 0 && may_refresh => Plan::ServeAndRefresh,
        _ => Plan::Serve,
    }
}

/// From when a request waits for a refresh: `must_refresh_secs` before the
/// access token's expiry, at most a quarter of the life it had when plumgate
/// obtained it. A token handed out with under 20 minutes (Xoxoday documents
/// 15 days, but does not promise it) would otherwise be inside the window
/// from the start: a refresh, the request waiting, once a minute (the
/// minimum interval) for as long as calls come. With the early window's
/// half life, such a token is refreshed in the background halfway through.
fn must_point_ms(access: &AccessSlot, policy: &TokenPolicy) -> i64 {
    let quarter_life = access.expires_at_ms.saturating_sub(access.obtained_at_ms) / 4;
    access.expires_at_ms.saturating_sub(secs_to_ms(policy.must_refresh_secs).min(quarter_life.max(0)))
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
// Applying outcomes
// ---------------------------------------------------------------------------

/// Record a successful refresh. `jitter` is a fresh random number in [0, 1).
/// The caller must persist the state before handing out the new token.
pub fn apply_success(state: &mut AuthorityState, answer: TokenAnswer, now_ms: i64, jitter: f64) {
    if let Some(new_rt) = answer.refresh_token {
        adopt_refresh(state, new_rt, answer.refresh_expires_at_ms, now_ms);
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
    // All but the note that a new XOXODAY_REFRESH_TOKEN was refused
    // (`run::fall_back`): it stays while the token held before is in use.
    state.last_error.take_if(|e| !e.starts_with(run::REFUSED_BOOTSTRAP));
    state.last_error_at_ms = None;
    state.consecutive_failures = 0;
    state.next_attempt_at_ms = None;
    state.penalty_until_ms = None;
    state.reauth_reason = None;
    state.credentials_rejected_fp = None;
    state.refresh_proof_due = false;
    state.jitter = jitter.clamp(0.0, 1.0);
}

/// Hold `new_rt`, a refresh token Xoxoday just issued (expiring at
/// `expires_at_ms` when it said so), in place of the one held, which is
/// remembered as spent.
///
/// The same token again (an answer that does not rotate it) keeps what was
/// known of its expiry when this answer says nothing of it.
pub fn adopt_refresh(state: &mut AuthorityState, new_rt: RefreshToken, expires_at_ms: Option<i64>, now_ms: i64) {
    let mut known = None;
    if let Some(old) = state.refresh.take() {
        if old.token.fingerprint() != new_rt.fingerprint() {
            remember_spent(state, old.token.fingerprint());
        } else if old.expiry_known {
            known = Some(old.expires_at_ms);
        }
    }
    let expires_at_ms = expires_at_ms.or(known);
    state.refresh = Some(RefreshSlot {
        token: new_rt,
        expires_at_ms: expires_at_ms.unwrap_or(now_ms.saturating_add(DEFAULT_REFRESH_TTL_MS)),
        expiry_known: expires_at_ms.is_some(),
    });
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
        let backoff = backoff_ms(state.consecutive_failures, rand01, policy);
        state.next_attempt_at_ms = Some(now_ms.saturating_add(i64::try_from(backoff).unwrap_or(i64::MAX)));
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

/// The body of `GET /v1/token`: status, never a token. `retry_at` is when
/// the next automatic refresh attempt may happen while something holds it
/// back (Xoxoday's refresh penalty, a backoff, the loop guard), else null;
/// `last_alert` is the last alert raised (`alert::last_alert`).
pub fn status(state: &AuthorityState, now_ms: i64, policy: &TokenPolicy) -> TokenStatus {
    TokenStatus {
        access_token_expires_at: state.access.as_ref().map(|a| rfc3339(a.expires_at_ms)),
        last_alert: last_alert(state),
        last_error: state.last_error.clone(),
        last_refresh_at: state.last_refresh_at_ms.map(rfc3339),
        refresh_count: state.refresh_count,
        refresh_token_expires_at: state.refresh.as_ref().map(|r| rfc3339(r.expires_at_ms)),
        retry_at: state.retry_at_ms(now_ms).map(rfc3339),
        state: state.state(now_ms, policy).as_str().into(),
    }
}

#[cfg(test)]
mod tests;
