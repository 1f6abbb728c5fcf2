//! The access-token caches in front of the authority (contract §4.3):
//! isolate memory, then the `TOKEN_CACHE` KV namespace, then the Durable
//! Object.
//!
//! Owns, without I/O: the grant the authority hands out ([`grant`]) and
//! how long KV keeps it ([`kv_ttl_secs`]); when a cached grant may be used
//! (`wire::authority::Grant::usable`); how an isolate shares one lookup
//! among concurrent requests ([`joins_lookup`]); what the worker makes of
//! the authority's replies ([`after_check`], [`admin_answer`]); and the
//! names of where a token came from, for the log ([`Source`]).

use super::{AuthorityState, TokenPolicy};
use crate::errors::ApiError;
use crate::wire::authority::{Grant, Reply};

/// How long a request waits for another request's token lookup in the same
/// isolate before it looks the token up itself (the other request may have
/// been cancelled, or its lookup may be stuck behind a slow refresh).
pub const JOIN_WAIT_MS: i64 = 3_000;

/// KV rejects an `expirationTtl` under 60 s.
pub const KV_MIN_TTL_SECS: u64 = 60;

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

/// Where a token came from (for logs and benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Isolate memory.
    Memory,
    /// KV.
    Kv,
    /// The Durable Object.
    Authority,
    /// Another request's lookup in this isolate, waited for.
    Shared,
}

impl Source {
    /// Name for the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Memory => "memory",
            Source::Kv => "kv",
            Source::Authority => "authority",
            Source::Shared => "shared",
        }
    }
}

/// The grant the authority hands out at `now_ms`: its access token while
/// usable (present, not rejected, unexpired), with the instant an isolate
/// should ask again.
pub fn grant(state: &AuthorityState, now_ms: i64, policy: &TokenPolicy) -> Option<Grant> {
    let a = state.access.as_ref().filter(|_| state.access_usable(now_ms))?;
    Some(Grant { access_token: a.token.clone(), expires_at_ms: a.expires_at_ms, recheck_at_ms: state.recheck_at_ms(now_ms, policy) })
}

/// How long KV keeps `grant` (whole seconds until its recheck point), or
/// `None` when that is under KV's minimum: then other isolates ask the
/// authority, which is cheap that close to a refresh.
pub fn kv_ttl_secs(grant: &Grant, now_ms: i64) -> Option<u64> {
    let secs = (grant.recheck_at_ms - now_ms) / 1000;
    u64::try_from(secs).ok().filter(|s| *s >= KV_MIN_TTL_SECS)
}

/// The grant a reply carries, or why there is none.
pub fn grant_of<S>(reply: Reply<S>) -> Result<Grant, ApiError> {
    match (reply.grant, reply.error) {
        (Some(g), _) => Ok(g),
        (None, Some(e)) => Err(e),
        (None, None) => Err(ApiError::upstream_error("no access token available")),
    }
}

/// What the authority decided about a token Xoxoday answered 401 to.
#[derive(Debug)]
pub enum Checked {
    /// Xoxoday's token check says it is valid: pass the 401 on unchanged.
    PassThrough,
    /// Use this token (the rejected one was replaced) and retry once.
    Replaced(Grant),
}

/// The worker's reading of the reply to a check of the token with
/// fingerprint `fp`: whether the isolate must forget that token (the
/// authority no longer hands it out: confirmed rejected, or replaced
/// already; whatever else the reply says), and what the caller does.
/// An error wins over a grant: a failed check hands back the unconfirmed
/// current token, which must not be retried.
pub fn after_check<S>(reply: Reply<S>, fp: &str) -> (bool, Result<Checked, ApiError>) {
    if reply.pass_through {
        return (false, Ok(Checked::PassThrough));
    }
    let forget = reply.grant.as_ref().is_none_or(|g| g.fingerprint() != fp);
    match reply.error {
        Some(e) => (forget, Err(e)),
        None => (forget, grant_of(reply).map(Checked::Replaced)),
    }
}

/// The worker's reading of the reply to `GET /v1/token`: the status,
/// unless the call was refused before the state was read.
pub fn status_of<S>(reply: Reply<S>) -> Result<S, ApiError> {
    match (reply.status, reply.error) {
        (Some(s), _) => Ok(s),
        (None, Some(e)) => Err(e),
        (None, None) => Err(ApiError::upstream_error("the token authority gave no status")),
    }
}

/// The worker's reading of the reply to a forced refresh or a recovery:
/// the grant to keep in the isolate (if any), and the status, or the
/// refusal (which wins: the person who asked must see it).
pub fn admin_answer<S>(reply: Reply<S>) -> (Option<Grant>, Result<S, ApiError>) {
    let answer = match (reply.error, reply.status) {
        (Some(e), _) => Err(e),
        (None, Some(s)) => Ok(s),
        (None, None) => Err(ApiError::upstream_error("the token authority gave no status")),
    };
    (reply.grant, answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::AccessToken;
    use crate::token::{AccessSlot, RefreshSlot};
    use crate::wire::authority::TokenStatus;

    const T0: i64 = 1_795_626_582_000;
    const DAY: i64 = 86_400_000;

    fn g(token: &str) -> Grant {
        Grant { access_token: AccessToken::new(token), expires_at_ms: T0 + DAY, recheck_at_ms: T0 + 1000 }
    }

    fn status() -> TokenStatus {
        TokenStatus {
            last_alert: None,
            access_token_expires_at: None,
            last_error: None,
            last_refresh_at: None,
            refresh_count: 0,
            refresh_token_expires_at: None,
            retry_at: None,
            state: "uninitialized".into(),
        }
    }

    fn reply(grant: Option<Grant>, error: Option<ApiError>, pass_through: bool) -> Reply {
        Reply { grant, status: Some(status()), error, pass_through, handover: None, start_fresh: false }
    }

    #[test]
    fn a_cold_request_joins_only_a_young_lookup() {
        assert!(joins_lookup(T0, T0), "started this instant");
        assert!(joins_lookup(T0, T0 + JOIN_WAIT_MS - 1));
        assert!(!joins_lookup(T0, T0 + JOIN_WAIT_MS), "too old: its request may be gone");
        assert!(!joins_lookup(T0, T0 - 1), "clock went back: do not wait on it");
        let names: Vec<&str> = [Source::Memory, Source::Kv, Source::Authority, Source::Shared].iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["memory", "kv", "authority", "shared"]);
    }

    #[test]
    fn the_authority_grants_only_a_usable_token() {
        let p = TokenPolicy::default();
        let mut s = AuthorityState {
            access: Some(AccessSlot { token: AccessToken::new("at"), expires_at_ms: T0 + 10 * DAY, obtained_at_ms: T0, rejected: false }),
            refresh: Some(RefreshSlot { token: crate::secret::RefreshToken::new("rt"), expires_at_ms: T0 + 30 * DAY, expiry_known: true }),
            ..Default::default()
        };
        let got = grant(&s, T0, &p).unwrap();
        assert_eq!(got.access_token.expose_secret(), "at");
        assert_eq!(got.expires_at_ms, T0 + 10 * DAY);
        assert_eq!(got.recheck_at_ms, s.recheck_at_ms(T0, &p));
        assert!(grant(&s, T0 + 10 * DAY, &p).is_none(), "expired");
        s.access.as_mut().unwrap().rejected = true;
        assert!(grant(&s, T0, &p).is_none(), "rejected");
        assert!(grant(&AuthorityState::default(), T0, &p).is_none());
    }

    #[test]
    fn kv_keeps_a_grant_until_its_recheck_point_and_at_least_a_minute() {
        let at = |recheck| Grant { recheck_at_ms: recheck, ..g("at") };
        assert_eq!(kv_ttl_secs(&at(T0 + 3_600_000), T0), Some(3_600));
        assert_eq!(kv_ttl_secs(&at(T0 + 60_000), T0), Some(60));
        assert_eq!(kv_ttl_secs(&at(T0 + 60_999), T0), Some(60), "whole seconds, rounded down");
        assert_eq!(kv_ttl_secs(&at(T0 + 59_999), T0), None, "under KV's minimum: not written");
        assert_eq!(kv_ttl_secs(&at(T0 - 1), T0), None);
        assert_eq!(kv_ttl_secs(&at(T0 - 120_000), T0), None, "a recheck point two minutes past is no two minutes' TTL");
    }

    #[test]
    fn replies_to_a_token_request() {
        assert_eq!(grant_of(reply(Some(g("at")), None, false)).unwrap().access_token.expose_secret(), "at");
        assert_eq!(grant_of(reply(None, Some(ApiError::reauth_required()), false)).unwrap_err(), ApiError::reauth_required());
        assert_eq!(grant_of(reply(None, None, false)).unwrap_err().message, "no access token available");
        // A grant with an error (a usable token while a forced refresh failed): the grant.
        assert!(grant_of(reply(Some(g("at")), Some(ApiError::internal()), false)).is_ok());
    }

    #[test]
    fn replies_to_a_check_every_arm() {
        let fp = g("at-1").fingerprint();
        // Valid: pass through, keep the token.
        let (forget, r) = after_check(reply(Some(g("at-1")), None, true), &fp);
        assert!(!forget && matches!(r, Ok(Checked::PassThrough)));
        // Replaced: forget the old one, retry with the new one.
        let (forget, r) = after_check(reply(Some(g("at-2")), None, false), &fp);
        assert!(forget);
        match r {
            Ok(Checked::Replaced(n)) => assert_eq!(n.access_token.expose_secret(), "at-2"),
            other => panic!("{other:?}"),
        }
        // The check failed: the error, and the same token is kept.
        let (forget, r) = after_check(reply(Some(g("at-1")), Some(ApiError::upstream_error("x")), false), &fp);
        assert!(!forget);
        assert_eq!(r.unwrap_err().code, crate::errors::ErrorCode::UpstreamError);
        // Confirmed rejected but no replacement (e.g. reauth): forget it, and the error.
        let (forget, r) = after_check(reply(None, Some(ApiError::reauth_required()), false), &fp);
        assert!(forget);
        assert_eq!(r.unwrap_err(), ApiError::reauth_required());
        // Neither: forget, and say so.
        let (forget, r) = after_check(reply(None, None, false), &fp);
        assert!(forget && r.is_err());
    }

    #[test]
    fn replies_to_the_admin_routes() {
        assert_eq!(status_of(reply(None, Some(ApiError::internal()), false)).unwrap(), status(), "status wins for GET");
        let refused = Reply::<TokenStatus>::refused(ApiError::reauth_required());
        assert_eq!(status_of(refused.clone()).unwrap_err(), ApiError::reauth_required());
        let (grant, answer) = admin_answer(reply(Some(g("at")), None, false));
        assert!(grant.is_some());
        assert_eq!(answer.unwrap(), status());
        let (grant, answer) = admin_answer(reply(Some(g("at")), Some(ApiError::internal()), false));
        assert!(grant.is_some(), "a usable token is still kept");
        assert_eq!(answer.unwrap_err(), ApiError::internal(), "the refusal wins for a forced refresh");
        let (grant, answer) = admin_answer(refused);
        assert!(grant.is_none() && answer.is_err());
    }

    /// README: "after up to 3 s joining another request's lookup" (and the
    /// placeOrder settlement minute that counts on it).
    #[test]
    fn a_lookup_is_joined_for_3_s() {
        assert!(joins_lookup(T0, T0 + 2_999));
        assert!(!joins_lookup(T0, T0 + 3_000));
    }
}
