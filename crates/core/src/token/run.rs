//! A refresh run, step by step, and what the authority answers after it.
//!
//! The Durable Object runs one refresh at a time (a shared future that every
//! request needing a refresh joins). Each attempt's answer is read by
//! [`super::parse_refresh_response`]; [`next_step`] says whether to try
//! again inside the run; [`finish_run`] applies the last outcome to the
//! state (which the shell then persists); [`answer_after_run`] says what
//! each waiting request gets. How long a request waits is [`wait_limit_ms`].
//!
//! Who waits for what: background, cron and forced refreshes are never cut
//! short by a request's patience. The refresh call's own timeout is long
//! (`refresh_call_timeout_ms`, minutes), because under strict rotation an
//! answer cut off is a pair lost. A request that needs a refresh stops
//! waiting after `refresh_timeout_ms` (`REFRESH_TIMEOUT_MS`); the run goes on
//! in the Durable Object and its answer is kept.

use super::{adopt_refresh, apply_failure, apply_success, backoff_ms, retry_delay_ms, AuthorityState, Refusal, RefreshOutcome, TokenPolicy, Trigger};
use crate::time::{secs_to_ms, secs_until};
use serde::{Deserialize, Serialize};

/// After one attempt: try again, or end the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Try again after this delay.
    Retry {
        /// Milliseconds.
        delay_ms: u64,
    },
    /// End the run with the last outcome ([`finish_run`]).
    Stop,
}

/// After attempt number `attempt` (1-based) ended with `outcome`.
///
/// Only a transient failure (transport error, 5xx, `server_error`, an
/// unreadable answer) is retried inside the run, with a jittered delay, up
/// to `max_attempts`. Everything else ends the run at once: success; a
/// rate-limit answer (trying again prolongs the penalty); a dead refresh
/// token or rejected credentials (trying again cannot help); and a timeout
/// (the refresh may have rotated upstream after minutes of waiting; another
/// attempt right away would meet the same slowness, so the backoff decides).
pub fn next_step(outcome: &RefreshOutcome, attempt: u32, rand01: f64, policy: &TokenPolicy) -> Step {
    match outcome {
        RefreshOutcome::Transient(_) if attempt < policy.max_attempts => {
            Step::Retry { delay_ms: retry_delay_ms(attempt, rand01, policy) }
        }
        _ => Step::Stop,
    }
}

/// How a run ended (shared with every request that joined it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunEnd {
    /// New tokens, persisted.
    Refreshed,
    /// Failed; backing off.
    Failed {
        /// The last attempt timed out.
        timeout: bool,
        /// Safe sentence.
        message: String,
    },
    /// Xoxoday's refresh penalty.
    RateLimited,
    /// The refresh token is dead.
    Reauth,
    /// The client id/secret are rejected.
    CredentialsRejected,
}

/// The loud line a run's end calls for: the event name and what a person
/// must do. Only ends a person must know about have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alert {
    /// The log line's `event`.
    pub event: &'static str,
    /// The log line's `action`.
    pub action: &'static str,
}

impl RunEnd {
    /// The alert this end calls for, if any.
    pub fn alert(&self) -> Option<Alert> {
        let (event, action) = match self {
            RunEnd::Refreshed | RunEnd::Failed { .. } => return None,
            RunEnd::Reauth => ("reauth_required", "generate new tokens in the Xoxoday dashboard and set XOXODAY_REFRESH_TOKEN"),
            RunEnd::CredentialsRejected => {
                ("credentials_rejected", "set the right XOXODAY_CLIENT_ID / XOXODAY_CLIENT_SECRET; the refresh token is kept")
            }
            RunEnd::RateLimited => ("token_refresh_rate_limited", "no refresh attempt until retry_at"),
        };
        Some(Alert { event, action })
    }
}

/// When a refresh penalty of `penalty_secs` announced at `now_ms` ends for
/// plumgate: the penalty plus a jitter of up to 10 % of it (at least up to
/// one second), so several deployments sharing a client do not all come
/// back at the same instant.
pub fn penalty_end_ms(now_ms: i64, penalty_secs: u64, rand01: f64) -> i64 {
    let penalty_ms = secs_to_ms(penalty_secs);
    let spread = (penalty_ms / 10).max(1000) as f64;
    now_ms.saturating_add(penalty_ms).saturating_add((spread * rand01.clamp(0.0, 1.0)) as i64)
}

/// The start of `last_error` after a refresh run that never ended.
pub const INTERRUPTED: &str = "refresh interrupted";

/// A refresh attempt is about to be sent at `now_ms`: the mark the caller
/// stores before sending it ([`AuthorityState::refresh_sent_at_ms`]).
pub fn sending(state: &mut AuthorityState, now_ms: i64) {
    state.refresh_sent_at_ms = Some(now_ms);
}

/// The state as loaded by a new instance of the authority: a refresh mark
/// left set means the last instance stopped while a refresh was in flight
/// (an eviction, a deploy), and Xoxoday may have rotated the pair then.
/// Counted as a failed run, with `last_error` saying so: the cron refreshes
/// at its next run (where Xoxoday lets the old refresh token live a few
/// hours more, that recovers the pair; where it does not, the refresh is
/// refused, and `reauth_required` says why) rather than days later in the
/// early window. Returns whether the state changed.
///
/// The failed attempt is dated when it was sent, not when the mark was
/// found: the state is not written here, so every instance that loads it
/// finds the mark again, and dated at its load, the forced refresh's
/// throttle (`last_attempt_at_ms`) would start afresh at each load (an
/// object evicted between two forced refreshes a minute apart would
/// refuse every one until the cron's write).
pub fn interrupted(state: &mut AuthorityState, now_ms: i64) -> bool {
    let Some(sent_at_ms) = state.refresh_sent_at_ms.take() else {
        return false;
    };
    state.last_error = Some(format!("{INTERRUPTED}: the token authority stopped (an eviction or a deploy) while a refresh was in flight"));
    state.last_error_at_ms = Some(sent_at_ms.min(now_ms));
    state.consecutive_failures = state.consecutive_failures.saturating_add(1);
    state.next_attempt_at_ms = None;
    true
}

/// What an attempt that gets retried leaves for the end of its run: the
/// message of the first attempt that may have rotated the pair
/// ([`super::refresh::answer_lost`]), which [`finish_run`] reports if the run ends on a dead
/// refresh token. `earlier` is what the run's previous attempts left.
pub fn lost_in_run(earlier: Option<String>, outcome: &RefreshOutcome) -> Option<String> {
    // The first such attempt: the pair may have rotated there.
    earlier.or_else(|| match outcome {
        RefreshOutcome::Transient(m) | RefreshOutcome::Timeout(m) if super::refresh::answer_lost(m) => Some(m.clone()),
        _ => None,
    })
}

/// The start of `last_error` once plumgate went back to the refresh token
/// a refused `XOXODAY_REFRESH_TOKEN` had displaced ([`fall_back`]). Kept
/// through the successful refreshes that follow (the operator should know
/// the value set is not the one in use), until another failure or a new
/// value replaces it.
pub const REFUSED_BOOTSTRAP: &str = "the XOXODAY_REFRESH_TOKEN set was refused";

/// After an attempt that ended with `outcome`: when Xoxoday refused the refresh token
/// held as a dead one while the live token a new `XOXODAY_REFRESH_TOKEN`
/// displaced is kept (`displaced_refresh`: the new value never refreshed),
/// that token is held again, and the run's next attempt (at once: it reads
/// the held token) uses it, rather than the run ending in
/// `reauth_required`. Once per run (`once`: the run fell back already):
/// the two swap places, the refused value kept aside in its turn, so the
/// run ends on the second refusal as on any dead token, and a later run
/// (the client id/secret changed: a wrong secret may be answered as a dead
/// token) that sees the token held refused goes back to the other one.
/// Returns whether it fell back (the caller then tries again; the state is
/// stored with that attempt's mark).
///
/// Only a dead-token answer counts: rejected credentials, a penalty, a 5xx
/// or a timeout say nothing against the new value, which stays held (the
/// displaced token with it).
///
/// After a refresh with the new value that got no answer (a timeout, a
/// 5xx, the authority stopping mid-refresh), Xoxoday may have rotated the
/// new value's pair, which plumgate never received: then the refusal
/// proves no wrong value, and going back still masks nothing. The token
/// kept aside was never sent since it was displaced, so it is exactly as
/// live as it was (if Xoxoday killed it with the new value's generation,
/// it is refused in turn, and that is `reauth_required` as before), and
/// the lost pair is one plumgate never held. (`last_error` then reads as
/// a refusal; the lost answer was the `last_error` before it. Saying
/// both would cost the worker's wasm ~50 B gzip.)
///
/// The refused value is not remembered as spent (plumgate did not rotate
/// it); it stays adopted by fingerprint, so it is not taken into use
/// again while it is the value set. The token held again gets the
/// default lifetime, marked unknown: the run refreshes it at once, and
/// that answer says its successor's.
pub fn fall_back(state: &mut AuthorityState, outcome: &RefreshOutcome, now_ms: i64, once: bool) -> bool {
    let RefreshOutcome::Final(reason) = outcome else { return false };
    if once {
        return false;
    }
    let Some(kept) = state.displaced_refresh.take() else { return false };
    state.last_error = Some(format!("{REFUSED_BOOTSTRAP} ({reason}); the refresh token held before is kept"));
    state.last_error_at_ms = Some(now_ms);
    state.displaced_refresh = state
        .refresh
        .replace(super::RefreshSlot { token: kept, expires_at_ms: now_ms.saturating_add(super::DEFAULT_REFRESH_TTL_MS), expiry_known: false })
        .map(|r| r.token);
    true
}

/// After a refresh answer (a whole one or half of one), applied: the
/// refresh token held is the chain's (issued or confirmed by it), and the
/// one a new `XOXODAY_REFRESH_TOKEN` displaced, superseded, is remembered
/// as spent.
fn proven(state: &mut AuthorityState) {
    state.chain_refresh_fp = state.refresh.as_ref().map(|r| r.token.fingerprint());
    if let Some(old) = state.displaced_refresh.take() {
        super::remember_spent(state, old.fingerprint());
    }
}

/// Apply the run's last outcome to `state` and say how the run ended.
/// `rand01` is a fresh random number in [0, 1) (token jitter, backoff and
/// penalty jitter); `client_fp` is [`super::credentials_fingerprint`] of the
/// configured client id/secret; `lost` is [`lost_in_run`] of the run's
/// earlier attempts. The caller persists `state` afterwards, before anyone
/// uses a new token.
pub fn finish_run(
    state: &mut AuthorityState,
    outcome: RefreshOutcome,
    now_ms: i64,
    rand01: f64,
    client_fp: &str,
    policy: &TokenPolicy,
    lost: Option<&str>,
) -> RunEnd {
    state.refresh_sent_at_ms = None;
    match outcome {
        RefreshOutcome::Success(answer) => {
            apply_success(state, answer, now_ms, rand01);
            proven(state);
            RunEnd::Refreshed
        }
        RefreshOutcome::Transient(message) => {
            apply_failure(state, false, message.clone(), now_ms, rand01, policy);
            RunEnd::Failed { timeout: false, message }
        }
        RefreshOutcome::Timeout(message) => {
            apply_failure(state, false, message.clone(), now_ms, rand01, policy);
            RunEnd::Failed { timeout: true, message }
        }
        RefreshOutcome::RefreshOnly { refresh_token, refresh_expires_at_ms, message } => {
            // Kept before anything else: under strict rotation it is the
            // only live refresh token. It worked, so neither it nor the
            // client id/secret are to blame for anything.
            adopt_refresh(state, refresh_token, refresh_expires_at_ms, now_ms);
            proven(state);
            state.reauth_reason = None;
            state.credentials_rejected_fp = None;
            apply_failure(state, false, message.clone(), now_ms, rand01, policy);
            RunEnd::Failed { timeout: false, message }
        }
        RefreshOutcome::RateLimited { penalty_secs, reason } => {
            state.last_error = Some(reason);
            state.last_error_at_ms = Some(now_ms);
            state.consecutive_failures = state.consecutive_failures.saturating_add(1);
            // Xoxoday's penalty (its stated one, or a flat minute: its
            // documented answer states none) holds everything. After other
            // failed runs in a row it also counts as one: the streak's
            // backoff (30 s doubling to 30 min) keeps requests and the cron
            // from trying again once the penalty is over, so an endpoint
            // that keeps refusing is asked a few times an hour, not once a
            // minute ("an unusual number of requests to the Refresh Token
            // API" can get the tokens invalidated). Like any backoff it lets
            // a forced refresh through and ends with a new refresh token.
            state.penalty_until_ms = Some(penalty_end_ms(now_ms, penalty_secs, rand01));
            if state.consecutive_failures > 1 {
                let backoff = backoff_ms(state.consecutive_failures, rand01, policy);
                state.next_attempt_at_ms = Some(now_ms.saturating_add(i64::try_from(backoff).unwrap_or(i64::MAX)));
            }
            RunEnd::RateLimited
        }
        RefreshOutcome::Final(reason) => {
            // After a refresh that got no answer (earlier in this run, or
            // the run before), a dead refresh token most likely means that
            // refresh rotated the pair: say so, as the person who must act
            // will want to know why.
            let before = state.last_error.as_deref().filter(|m| super::refresh::answer_lost(m));
            let reason = match lost.or(before) {
                Some(last) => format!(
                    "{reason}, after the refresh before it failed ({last}): Xoxoday may have rotated the pair then, and plumgate never received it"
                ),
                _ => reason,
            };
            apply_failure(state, true, reason, now_ms, rand01, policy);
            // Remember the client pair that was refused: Xoxoday documents
            // no answer for a wrong client secret, and one in another
            // shape than `invalid_client` reads as a dead refresh token.
            // Should the operator then fix the secret, that token (never
            // spent) gets one more try ([`super::adopt::adopt_credentials`]).
            state.credentials_rejected_fp = Some(client_fp.to_string());
            RunEnd::Reauth
        }
        RefreshOutcome::CredentialsRejected(reason) => {
            // The refresh token was not used up: it stays, unspent.
            state.last_error = Some(reason);
            state.last_error_at_ms = Some(now_ms);
            state.next_attempt_at_ms = None;
            state.credentials_rejected_fp = Some(client_fp.to_string());
            RunEnd::CredentialsRejected
        }
    }
}

/// How long a request with `trigger` waits for a refresh it needs: a
/// request (or a token check) stops at `refresh_timeout_ms`; cron and forced
/// refreshes wait for the run to end (bounded by the call's own timeout).
pub fn wait_limit_ms(trigger: Trigger, policy: &TokenPolicy) -> Option<u64> {
    match trigger {
        Trigger::Request => Some(policy.refresh_timeout_ms),
        Trigger::Cron | Trigger::Forced => None,
    }
}

/// What a request gets after waiting for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The current (usable) access token.
    Grant,
    /// No token.
    Refuse(Refusal),
}

/// What a request with `trigger` gets after a run ended with `end` (`None`:
/// it stopped waiting at its own limit while the run continues).
///
/// A usable token is handed out whatever the run did (a failed refresh in
/// the last minutes of a still-valid token costs callers nothing), except
/// that a forced refresh reports its failure: the person who asked must
/// see it. Without a usable token, the run's end decides the error.
pub fn answer_after_run(state: &AuthorityState, trigger: Trigger, end: Option<&RunEnd>, now_ms: i64, policy: &TokenPolicy) -> Answer {
    let usable = state.access_usable(now_ms);
    let reported = trigger == Trigger::Forced && !matches!(end, Some(RunEnd::Refreshed) | None);
    if usable && !reported {
        return Answer::Grant;
    }
    let retry = state.retry_at_ms(now_ms).map(|t| secs_until(t, now_ms).max(1));
    Answer::Refuse(match end {
        None => Refusal::StillRefreshing { waited_ms: wait_limit_ms(trigger, policy).unwrap_or(0) },
        Some(RunEnd::Refreshed) => Refusal::NoUsableToken,
        Some(RunEnd::Failed { timeout: true, message }) => {
            Refusal::RefreshTimedOut { message: message.clone(), retry_after_secs: retry }
        }
        Some(RunEnd::Failed { timeout: false, message }) => {
            Refusal::RefreshFailed { message: message.clone(), retry_after_secs: retry }
        }
        Some(RunEnd::RateLimited) => {
            Refusal::RefreshPenalty { retry_after_secs: state.penalty_left_secs(now_ms).unwrap_or(1) }
        }
        Some(RunEnd::Reauth) => Refusal::ReauthRequired,
        Some(RunEnd::CredentialsRejected) => Refusal::CredentialsRejected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{AccessToken, RefreshToken};
    use crate::token::{parse_refresh_response, plan, status, AccessSlot, Plan, RefreshSlot, TokenAnswer};

    fn status_json(state: &AuthorityState, now_ms: i64, policy: &TokenPolicy) -> serde_json::Value {
        serde_json::to_value(status(state, now_ms, policy)).unwrap()
    }

    const T0: i64 = 1_795_626_582_000;

    fn seeded() -> AuthorityState {
        AuthorityState {
            access: Some(AccessSlot {
                token: AccessToken::new("at-1"),
                expires_at_ms: T0 + 10 * 86_400_000,
                obtained_at_ms: T0,
                rejected: false,
            }),
            refresh: Some(RefreshSlot { token: RefreshToken::new("rt-1"), expires_at_ms: T0 + 30 * 86_400_000, expiry_known: true }),
            last_refresh_at_ms: Some(T0),
            refresh_count: 1,
            // rt-1 came from that refresh.
            chain_refresh_fp: Some(RefreshToken::new("rt-1").fingerprint()),
            ..Default::default()
        }
    }

    #[test]
    fn next_step_every_arm() {
        let p = TokenPolicy::default();
        let answer = TokenAnswer {
            access_token: AccessToken::new("a"),
            access_expires_at_ms: T0,
            refresh_token: None,
            refresh_expires_at_ms: None,
        };
        assert_eq!(next_step(&RefreshOutcome::Transient("x".into()), 1, 1.0, &p), Step::Retry { delay_ms: 250 });
        assert_eq!(next_step(&RefreshOutcome::Transient("x".into()), 2, 0.0, &p), Step::Retry { delay_ms: 250 });
        assert_eq!(next_step(&RefreshOutcome::Transient("x".into()), 3, 1.0, &p), Step::Stop, "bounded: three attempts");
        assert_eq!(next_step(&RefreshOutcome::Success(answer), 1, 0.5, &p), Step::Stop);
        assert_eq!(next_step(&RefreshOutcome::Timeout("x".into()), 1, 0.5, &p), Step::Stop);
        assert_eq!(
            next_step(&RefreshOutcome::RateLimited { penalty_secs: 60, reason: "x".into() }, 1, 0.5, &p),
            Step::Stop,
            "a rate-limit answer stops the run at once"
        );
        assert_eq!(next_step(&RefreshOutcome::Final("x".into()), 1, 0.5, &p), Step::Stop);
        assert_eq!(next_step(&RefreshOutcome::CredentialsRejected("x".into()), 1, 0.5, &p), Step::Stop);
        let half = RefreshOutcome::RefreshOnly { refresh_token: RefreshToken::new("r"), refresh_expires_at_ms: None, message: "x".into() };
        assert_eq!(next_step(&half, 1, 0.5, &p), Step::Stop, "the backoff decides when the new refresh token is used");
    }

    #[test]
    fn alerts_for_the_ends_a_person_must_know() {
        assert_eq!(RunEnd::Refreshed.alert(), None);
        assert_eq!(RunEnd::Failed { timeout: true, message: "x".into() }.alert(), None);
        let events: Vec<&str> =
            [RunEnd::Reauth, RunEnd::CredentialsRejected, RunEnd::RateLimited].iter().map(|e| e.alert().unwrap().event).collect();
        assert_eq!(events, ["reauth_required", "credentials_rejected", "token_refresh_rate_limited"]);
        assert!(RunEnd::Reauth.alert().unwrap().action.contains("XOXODAY_REFRESH_TOKEN"));
        assert!(RunEnd::CredentialsRejected.alert().unwrap().action.contains("XOXODAY_CLIENT_SECRET"));
    }

    #[test]
    fn penalty_end_has_bounded_jitter() {
        assert_eq!(penalty_end_ms(T0, u64::MAX, 1.0), i64::MAX, "saturates");
        assert_eq!(penalty_end_ms(T0, 60, 0.0), T0 + 60_000);
        assert_eq!(penalty_end_ms(T0, 60, 1.0), T0 + 66_000);
        assert_eq!(penalty_end_ms(T0, 3, 1.0), T0 + 4_000, "at least up to a second");
        assert_eq!(penalty_end_ms(T0, 3, 0.5), T0 + 3_500);
    }

    /// Every shape of the refresh rate-limit answer stops everything until
    /// the penalty ends, and `GET /v1/token` says so.
    #[test]
    fn rate_limit_answers_stop_all_attempts_until_the_penalty_ends() {
        let p = TokenPolicy::default();
        let shapes: &[(u16, &str, Option<&str>, u64)] = &[
            (429, r#"{"message":"auth.request_limit_exceeded"}"#, None, 60),
            (429, "", Some("30"), 30),
            (400, r#"{"errors":[{"message":"auth.request_limit_exceeded","penaltySeconds":45}]}"#, None, 45),
            (200, r#"{"errors":{"message":"auth.request_limit_exceeded","penaltySeconds":"20"}}"#, None, 20),
            (403, r#"{"message":"auth.request_limit_exceeded"}"#, None, 60),
            (200, r#"{"success":0,"message":"auth.request_limit_exceeded"}"#, None, 60),
            (200, r#"{"success":0,"error_message_id":"auth.request_limit_exceeded"}"#, Some("12"), 12),
        ];
        for (status, body, retry_after, secs) in shapes {
            let outcome = parse_refresh_response(*status, body.as_bytes(), *retry_after, T0);
            match &outcome {
                RefreshOutcome::RateLimited { penalty_secs, reason } => {
                    assert_eq!(penalty_secs, secs, "{status} {body}");
                    assert!(reason.contains("auth.request_limit_exceeded"), "{reason}");
                }
                other => panic!("{status} {body}: {other:?}"),
            }
            assert_eq!(next_step(&outcome, 1, 0.5, &p), Step::Stop);
            let mut s = seeded();
            let now = T0 + 9 * 86_400_000; // stale: a background refresh would be due
            let end = finish_run(&mut s, outcome, now, 0.0, "cfp", &p, None);
            assert_eq!(end, RunEnd::RateLimited);
            let until = now + (*secs as i64) * 1000;
            assert_eq!(s.penalty_until_ms, Some(until));
            // Requests keep the usable token; nothing refreshes, not even
            // a person's forced refresh or the cron.
            assert_eq!(plan(&s, Trigger::Request, now + 1, &p), Plan::Serve);
            assert!(matches!(plan(&s, Trigger::Forced, now + 1, &p), Plan::Refuse(Refusal::RefreshPenalty { .. })));
            assert!(matches!(plan(&s, Trigger::Cron, now + 1, &p), Plan::Refuse(Refusal::RefreshPenalty { .. })));
            let status = status_json(&s, now + 1, &p);
            assert!(status["last_error"].as_str().unwrap().contains("auth.request_limit_exceeded"));
            assert_eq!(status["retry_at"], crate::time::rfc3339(until));
            // Once it ends: the background refresh is due again.
            assert_eq!(plan(&s, Trigger::Request, until, &p), Plan::ServeAndRefresh);
            assert!(status_json(&s, until, &p)["retry_at"].is_null());
            // Without a usable token, callers get 429 with the time left.
            s.access.as_mut().unwrap().rejected = true;
            match plan(&s, Trigger::Request, now + 1000, &p) {
                Plan::Refuse(r @ Refusal::RefreshPenalty { .. }) => {
                    let e = r.api_error();
                    assert_eq!((e.status, e.code.as_str()), (429, "rate_limited"));
                    assert_eq!(e.retry_after_secs, Some(*secs - 1));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    /// A refresh endpoint that answers every attempt with its rate-limit
    /// error (no duration, as documented): the penalties grow like the
    /// failure backoff, so an hour sees a handful of attempts, whether a
    /// usable token is served meanwhile or none is left; a stated penalty
    /// longer than the backoff still holds in full.
    #[test]
    fn a_refresh_endpoint_that_keeps_rate_limiting_is_asked_a_few_times_an_hour() {
        let p = TokenPolicy::default();
        let limited = || parse_refresh_response(400, br#"{"message":"auth.request_limit_exceeded"}"#, None, T0);
        for usable in [true, false] {
            let mut s = seeded();
            if !usable {
                s.access.as_mut().unwrap().rejected = true;
            }
            let start = T0 + 9 * 86_400_000; // stale: a background refresh is due
            let mut attempts = Vec::new();
            for second in 0..3600 {
                let now = start + second * 1000;
                match plan(&s, Trigger::Request, now, &p) {
                    Plan::ServeAndRefresh | Plan::RefreshThenServe => {
                        attempts.push(second);
                        let rand01 = (second % 7) as f64 / 7.0;
                        assert_eq!(finish_run(&mut s, limited(), now, rand01, "cfp", &p, None), RunEnd::RateLimited);
                    }
                    Plan::Serve => assert!(usable),
                    // Xoxoday's penalty (429), then the backoff (502 with Retry-After).
                    Plan::Refuse(r) => assert!(matches!(r.api_error().status, 429 | 502), "{r:?}"),
                }
            }
            assert!((5..=10).contains(&attempts.len()), "usable {usable}: attempts at {attempts:?}");
            // The first penalty is Xoxoday's minute, the gaps then grow.
            assert!(attempts[1] - attempts[0] >= 60 && attempts[1] - attempts[0] <= 66, "{attempts:?}");
            assert!(attempts.windows(2).last().is_some_and(|w| w[1] - w[0] >= 900), "{attempts:?}");
        }
        // Three in a row, then Xoxoday states an hour: the hour holds.
        let mut s = seeded();
        s.consecutive_failures = 3;
        let stated = parse_refresh_response(400, br#"{"errors":[{"message":"auth.request_limit_exceeded","penaltySeconds":3600}]}"#, None, T0);
        finish_run(&mut s, stated, T0, 0.0, "cfp", &p, None);
        assert_eq!(s.penalty_until_ms, Some(T0 + 3_600_000));
        // Six failed runs, then a penalty of no stated length: Xoxoday's
        // minute is the penalty (429), the streak's backoff comes after it;
        // the operator's ways out stay open: a forced refresh once the
        // minute is over, and a new refresh token, which ends the backoff.
        let mut s = seeded();
        s.access.as_mut().unwrap().rejected = true;
        s.consecutive_failures = 6;
        finish_run(&mut s, limited(), T0, 0.0, "cfp", &p, None);
        assert_eq!(s.penalty_until_ms, Some(T0 + 60_000), "the penalty is Xoxoday's alone");
        assert!(matches!(plan(&s, Trigger::Request, T0 + 1_000, &p), Plan::Refuse(Refusal::RefreshPenalty { .. })));
        let later = T0 + 70_000;
        assert!(matches!(plan(&s, Trigger::Request, later, &p), Plan::Refuse(Refusal::Backoff { .. })));
        assert_eq!(plan(&s, Trigger::Forced, later, &p), Plan::RefreshThenServe);
        crate::token::adopt::adopt(&mut s, &RefreshToken::new("rt-new"), None, "cfp", later);
        assert_eq!(plan(&s, Trigger::Request, later, &p), Plan::RefreshThenServe);
    }

    #[test]
    fn finish_run_every_arm() {
        let p = TokenPolicy::default();
        let now = T0 + 1000;
        // Success.
        let mut s = seeded();
        s.penalty_until_ms = Some(now - 1);
        let answer = TokenAnswer {
            access_token: AccessToken::new("at-2"),
            access_expires_at_ms: now + 86_400_000,
            refresh_token: Some(RefreshToken::new("rt-2")),
            refresh_expires_at_ms: None,
        };
        assert_eq!(finish_run(&mut s, RefreshOutcome::Success(answer), now, 0.2, "cfp", &p, None), RunEnd::Refreshed);
        assert_eq!(s.refresh_count, 2);
        assert_eq!(s.penalty_until_ms, None);
        assert!(s.spent_refresh_fps.contains(&RefreshToken::new("rt-1").fingerprint()));
        // Transient and timeout: backoff.
        let mut s = seeded();
        let end = finish_run(&mut s, RefreshOutcome::Transient("refresh failed: HTTP 503".into()), now, 0.0, "cfp", &p, None);
        assert_eq!(end, RunEnd::Failed { timeout: false, message: "refresh failed: HTTP 503".into() });
        assert_eq!(s.next_attempt_at_ms, Some(now + 15_000));
        let end = finish_run(&mut s, RefreshOutcome::Timeout("timed out".into()), now, 0.0, "cfp", &p, None);
        assert_eq!(end, RunEnd::Failed { timeout: true, message: "timed out".into() });
        assert_eq!(s.consecutive_failures, 2);
        // Dead refresh token.
        let mut s = seeded();
        assert_eq!(finish_run(&mut s, RefreshOutcome::Final("refresh token rejected: HTTP 400 invalid_grant".into()), now, 0.0, "cfp", &p, None), RunEnd::Reauth);
        assert_eq!(s.reauth_reason.as_deref(), Some("refresh token rejected: HTTP 400 invalid_grant"));
        // ... after a refresh that got no answer (timeout, transport error):
        // the reason says where the pair most likely went.
        for lost in [
            crate::token::refresh::refresh_without_answer(crate::http::NoAnswer::Timeout, &p),
            crate::token::refresh::refresh_without_answer(crate::http::NoAnswer::Transport, &p),
        ] {
            let mut s = seeded();
            finish_run(&mut s, lost, now, 0.0, "cfp", &p, None);
            finish_run(&mut s, RefreshOutcome::Final("refresh token rejected: HTTP 400 invalid_grant".into()), now + 60_000, 0.0, "cfp", &p, None);
            let why = s.reauth_reason.clone().unwrap();
            assert!(why.starts_with("refresh token rejected: HTTP 400 invalid_grant, after the refresh before it failed (refresh "), "{why}");
            assert!(why.contains("may have rotated the pair"), "{why}");
        }
        // ... also when the attempt without an answer was earlier in the
        // same run (a transport error is retried at once).
        let lost = lost_in_run(None, &crate::token::refresh::refresh_without_answer(crate::http::NoAnswer::Transport, &p));
        assert_eq!(lost.as_deref(), Some("refresh failed: no answer from Xoxoday (transport error)"));
        let lost = lost_in_run(lost, &RefreshOutcome::Transient("refresh failed: HTTP 503".into()));
        assert!(lost.is_some(), "a later answered attempt does not clear it: the pair may have rotated at the first");
        let mut s = seeded();
        finish_run(&mut s, RefreshOutcome::Final("refresh token rejected: HTTP 400 invalid_grant".into()), now, 0.0, "cfp", &p, lost.as_deref());
        let why = s.reauth_reason.clone().unwrap();
        assert!(why.contains("after the refresh before it failed (refresh failed: no answer from Xoxoday (transport error))"), "{why}");
        // ... after a 5xx or an unreadable 2xx as well: the endpoint was
        // reached, and a gateway's 502 or 504 can come after it rotated.
        for failed in ["refresh failed: HTTP 502", "refresh failed: HTTP 503 server_error", "refresh answer unreadable (HTTP 200, no access_token)"] {
            assert_eq!(lost_in_run(None, &RefreshOutcome::Transient(failed.into())).as_deref(), Some(failed));
            let mut s = seeded();
            finish_run(&mut s, RefreshOutcome::Transient(failed.into()), now, 0.0, "cfp", &p, None);
            finish_run(&mut s, RefreshOutcome::Final("refresh token rejected: HTTP 400 invalid_grant".into()), now + 60_000, 0.0, "cfp", &p, None);
            assert!(s.reauth_reason.clone().unwrap().contains(&format!("after the refresh before it failed ({failed}): Xoxoday may have rotated")));
        }
        // ... but not after a rate limit, or an answer that never was the
        // token endpoint's (the grant did not reach it).
        for answered in [
            "refresh rate-limited by Xoxoday (HTTP 429, auth.request_limit_exceeded): penalty 60 s",
            "refresh failed: HTTP 404, not an answer of Xoxoday's token endpoint (check XOXODAY_OAUTH_URL, or a proxy or firewall on the way)",
        ] {
            assert_eq!(lost_in_run(None, &RefreshOutcome::Transient(answered.into())), None, "{answered}");
            let mut s = seeded();
            s.last_error = Some(answered.into());
            finish_run(&mut s, RefreshOutcome::Final("refresh token rejected: HTTP 400 invalid_grant".into()), now + 60_000, 0.0, "cfp", &p, None);
            assert_eq!(s.reauth_reason.as_deref(), Some("refresh token rejected: HTTP 400 invalid_grant"));
        }
        // Half a pair: the new refresh token is held at once (the old one
        // remembered as spent), the access token held stays, and the run
        // counts as failed (backoff, no alert).
        let mut s = seeded();
        s.credentials_rejected_fp = Some("old".into());
        let half = RefreshOutcome::RefreshOnly {
            refresh_token: RefreshToken::new("rt-2"),
            refresh_expires_at_ms: Some(now + 86_400_000),
            message: "refresh answer without access_token (HTTP 200): its new refresh token is kept, and the next refresh uses it".into(),
        };
        let end = finish_run(&mut s, half, now, 0.0, "cfp", &p, None);
        assert!(matches!(&end, RunEnd::Failed { timeout: false, message } if message.starts_with("refresh answer without access_token")), "{end:?}");
        assert_eq!(end.alert(), None);
        let held = s.refresh.clone().unwrap();
        assert_eq!((held.token.expose_secret(), held.expires_at_ms, held.expiry_known), ("rt-2", now + 86_400_000, true));
        assert!(s.spent_refresh_fps.contains(&RefreshToken::new("rt-1").fingerprint()));
        assert_eq!(s.access.as_ref().unwrap().token.expose_secret(), "at-1");
        assert_eq!((s.consecutive_failures, s.next_attempt_at_ms, s.refresh_count), (1, Some(now + 15_000), 1));
        assert_eq!(s.credentials_rejected_fp, None);
        // ... and a dead refresh token afterwards is not blamed on a lost answer.
        finish_run(&mut s, RefreshOutcome::Final("refresh token rejected: HTTP 400 invalid_grant".into()), now + 60_000, 0.0, "cfp", &p, None);
        assert_eq!(s.reauth_reason.as_deref(), Some("refresh token rejected: HTTP 400 invalid_grant"));
        // No expiry given: the default lifetime, marked unknown.
        let mut s = seeded();
        let half = RefreshOutcome::RefreshOnly { refresh_token: RefreshToken::new("rt-2"), refresh_expires_at_ms: None, message: "m".into() };
        finish_run(&mut s, half, now, 0.0, "cfp", &p, None);
        let held = s.refresh.clone().unwrap();
        assert_eq!((held.expires_at_ms, held.expiry_known), (now + crate::token::DEFAULT_REFRESH_TTL_MS, false));
        // Credentials: the refresh token stays and is not spent.
        let mut s = seeded();
        let end = finish_run(&mut s, RefreshOutcome::CredentialsRejected("client credentials rejected".into()), now, 0.0, "cfp", &p, None);
        assert_eq!(end, RunEnd::CredentialsRejected);
        assert_eq!(s.refresh.as_ref().unwrap().token.expose_secret(), "rt-1");
        assert!(s.spent_refresh_fps.is_empty());
        assert!(s.reauth_reason.is_none());
        assert_eq!(s.credentials_rejected_fp.as_deref(), Some("cfp"));
        assert_eq!(s.state(now, &p), crate::token::TokenState::CredentialsRejected);
    }

    #[test]
    fn a_refused_new_bootstrap_falls_back_once_to_the_live_token_it_displaced() {
        use crate::token::adopt_bootstrap;
        let p = TokenPolicy::default();
        let now = T0 + 1000;
        let fp = |t: &str| RefreshToken::new(t).fingerprint();
        let dead = || RefreshOutcome::Final("refresh token rejected: HTTP 400 invalid_token".into());
        let held = |s: &AuthorityState| s.refresh.as_ref().unwrap().token.expose_secret().to_string();
        // rt-1 live; the operator sets rt-new (a typo, another account's, an old value).
        let displaced = || {
            let mut s = seeded();
            assert!(adopt_bootstrap(&mut s, &RefreshToken::new("rt-new"), None, T0).adopted_refresh);
            s
        };
        let answer = |rt: Option<&str>| TokenAnswer {
            access_token: AccessToken::new("at-2"),
            access_expires_at_ms: now + 86_400_000,
            refresh_token: rt.map(RefreshToken::new),
            refresh_expires_at_ms: None,
        };

        let aside = |s: &AuthorityState| s.displaced_refresh.as_ref().map(|d| d.expose_secret().to_string());
        // Refused as dead: rt-1 is held again, the refused value aside in
        // its turn, nothing spent, no reauth_required.
        let mut s = displaced();
        assert!(fall_back(&mut s, &dead(), now, false));
        assert_eq!((held(&s).as_str(), aside(&s).as_deref(), s.reauth_reason.as_deref()), ("rt-1", Some("rt-new"), None));
        assert!(s.spent_refresh_fps.is_empty());
        let why = s.last_error.clone().unwrap();
        assert_eq!(why, "the XOXODAY_REFRESH_TOKEN set was refused (refresh token rejected: HTTP 400 invalid_token); the refresh token held before is kept");
        assert_eq!(s.last_error_at_ms, Some(now));
        // A refresh is still due at once (the held token's, next in the run).
        assert_eq!((s.state(now, &p), s.refresh_proof_due), (crate::token::TokenState::Stale, true));
        // Once per run: a second refusal in the same run ends it.
        assert!(!fall_back(&mut s.clone(), &dead(), now, true));
        // rt-1 refreshes: the chain goes on from it, the note stays, no alert;
        // the refused value is superseded (spent) and stays adopted, so it
        // is not taken again.
        let end = finish_run(&mut s, RefreshOutcome::Success(answer(Some("rt-2"))), now + 1, 0.0, "cfp", &p, None);
        assert_eq!((end.alert(), held(&s).as_str(), aside(&s)), (None, "rt-2", None));
        assert_eq!((s.state(now + 1, &p), s.refresh_proof_due), (crate::token::TokenState::Fresh, false));
        assert_eq!(s.spent_refresh_fps, vec![fp("rt-1"), fp("rt-new")], "rotated away, then superseded");
        assert_eq!(s.last_error.as_deref(), Some(why.as_str()));
        assert_eq!((s.last_error_at_ms, s.consecutive_failures), (None, 0));
        assert!(!adopt_bootstrap(&mut s, &RefreshToken::new("rt-new"), None, now + 2).adopted_refresh);
        // ... and stays through later refreshes, until another failure replaces it.
        finish_run(&mut s, RefreshOutcome::Success(answer(Some("rt-3"))), now + 3, 0.0, "cfp", &p, None);
        assert_eq!(s.last_error.as_deref(), Some(why.as_str()));
        finish_run(&mut s, RefreshOutcome::Transient("refresh failed: HTTP 503".into()), now + 4, 0.0, "cfp", &p, None);
        finish_run(&mut s, RefreshOutcome::Success(answer(Some("rt-4"))), now + 5, 0.0, "cfp", &p, None);
        assert_eq!(s.last_error, None);

        // Refused too: reauth_required as without a token kept aside.
        let mut s = displaced();
        assert!(fall_back(&mut s, &dead(), now, false));
        assert!(!fall_back(&mut s, &dead(), now, true));
        assert_eq!(finish_run(&mut s, dead(), now, 0.0, "cfp", &p, None), RunEnd::Reauth);
        assert_eq!((s.reauth_reason.as_deref(), held(&s).as_str()), (Some("refresh token rejected: HTTP 400 invalid_token"), "rt-1"));
        // A wrong client secret may be answered as a dead token: once the
        // secret changes, the run that follows tries rt-1, and on its
        // refusal the new value again (it was kept, not lost).
        let mut w = s.clone();
        assert!(crate::token::adopt_credentials(&mut w, "cfp-fixed"));
        assert!(fall_back(&mut w, &dead(), now + 1, false));
        assert_eq!((held(&w).as_str(), aside(&w).as_deref()), ("rt-new", Some("rt-1")));
        assert_eq!(s.state(now, &p), crate::token::TokenState::ReauthRequired);

        // Nothing else is a refusal of the new value: it stays held, rt-1 aside.
        let others = [
            RefreshOutcome::CredentialsRejected("client credentials rejected: HTTP 401 invalid_client".into()),
            RefreshOutcome::RateLimited { penalty_secs: 60, reason: "refresh rate-limited".into() },
            RefreshOutcome::Transient("refresh failed: HTTP 503".into()),
            RefreshOutcome::Timeout("refresh timed out".into()),
        ];
        for outcome in others {
            let mut s = displaced();
            assert!(!fall_back(&mut s, &outcome, now, false), "{outcome:?}");
            let end = finish_run(&mut s, outcome.clone(), now, 0.0, "cfp", &p, None);
            assert_eq!(held(&s), "rt-new", "{outcome:?}");
            assert_eq!(s.displaced_refresh.as_ref().map(|d| d.expose_secret()), Some("rt-1"), "{outcome:?}");
            assert!(s.spent_refresh_fps.is_empty() && end != RunEnd::Reauth, "{outcome:?}");
        }
        // Without a token kept aside, a dead token is no fallback.
        let mut s = seeded();
        assert!(!fall_back(&mut s, &dead(), now, false));
        assert_eq!(held(&s), "rt-1");

        // Fallen back, and rt-1's own refresh got a passing failure (a 5xx):
        // rt-1 is held unproven, the refused value aside. Another value set
        // now keeps rt-1 aside, the live chain (the refused value is
        // dropped, nothing spent), so that value's refusal falls back to
        // rt-1, not to the first refused value and `reauth_required`.
        // So too for a state written before `chain_refresh_fp`: the first
        // value set names the token it displaces.
        for legacy in [false, true] {
            let mut s = seeded();
            if legacy {
                s.chain_refresh_fp = None;
            }
            adopt_bootstrap(&mut s, &RefreshToken::new("rt-new"), None, T0);
            assert!(fall_back(&mut s, &dead(), now, false));
            finish_run(&mut s, RefreshOutcome::Transient("refresh failed: HTTP 503".into()), now, 0.0, "cfp", &p, None);
            assert!(adopt_bootstrap(&mut s, &RefreshToken::new("rt-second"), None, now + 1).adopted_refresh);
            assert_eq!((held(&s).as_str(), aside(&s).as_deref()), ("rt-second", Some("rt-1")), "{legacy}");
            assert!(s.spent_refresh_fps.is_empty());
            assert!(fall_back(&mut s, &dead(), now + 2, false));
            assert_eq!((held(&s).as_str(), aside(&s).as_deref()), ("rt-1", Some("rt-second")), "{legacy}");
        }

        // The new value refreshes (a whole answer, one without a new
        // refresh token, half an answer): rt-1 is superseded, spent.
        let halves = [
            RefreshOutcome::Success(answer(Some("rt-2"))),
            RefreshOutcome::Success(answer(None)),
            RefreshOutcome::RefreshOnly { refresh_token: RefreshToken::new("rt-2"), refresh_expires_at_ms: None, message: "m".into() },
        ];
        for outcome in halves {
            let mut s = displaced();
            finish_run(&mut s, outcome.clone(), now, 0.0, "cfp", &p, None);
            assert!(s.displaced_refresh.is_none(), "{outcome:?}");
            assert!(s.spent_refresh_fps.contains(&fp("rt-1")), "{outcome:?}");
            assert!(!fall_back(&mut s, &dead(), now + 1, false), "{outcome:?}: proven, nothing to go back to");
        }

        // The new value's refresh got no answer (it may have rotated its
        // pair), then it is refused: rt-1, never sent meanwhile, is held
        // again all the same (with the default lifetime, until its own
        // refresh says more), and the run tries it.
        let mut s = displaced();
        finish_run(&mut s, crate::token::refresh::refresh_without_answer(crate::http::NoAnswer::Timeout, &p), now, 0.0, "cfp", &p, None);
        assert!(s.displaced_refresh.is_some(), "no answer is no refusal");
        assert!(fall_back(&mut s, &dead(), now + 60_000, false));
        assert!(s.last_error.clone().unwrap().starts_with(REFUSED_BOOTSTRAP));
        let slot = s.refresh.clone().unwrap();
        assert_eq!((slot.token.expose_secret(), slot.expires_at_ms, slot.expiry_known), ("rt-1", now + 60_000 + crate::token::DEFAULT_REFRESH_TTL_MS, false));
        // ... and should rt-1 be refused too, the reason is its own, not the
        // lost answer's (the shell starts the run's record of lost answers
        // afresh for the token held again).
        assert_eq!(finish_run(&mut s, dead(), now + 60_001, 0.0, "cfp", &p, None), RunEnd::Reauth);
        assert_eq!(s.reauth_reason.as_deref(), Some("refresh token rejected: HTTP 400 invalid_token"));
    }

    #[test]
    fn a_refresh_cut_short_by_the_authority_stopping_is_a_failed_run_the_cron_retries() {
        let p = TokenPolicy::default();
        let now = T0 + 86_400_000;
        // Nothing in flight: nothing to say.
        let mut s = seeded();
        assert!(!interrupted(&mut s, now));
        // Marked before sending; a run that ends clears the mark, whatever its end.
        sending(&mut s, now);
        assert_eq!(s.refresh_sent_at_ms, Some(now));
        finish_run(&mut s, RefreshOutcome::Transient("refresh failed: HTTP 502".into()), now + 1, 0.0, "cfp", &p, None);
        assert_eq!(s.refresh_sent_at_ms, None);
        // A new instance finds the mark: the last one stopped mid-refresh.
        let mut s = seeded();
        sending(&mut s, now);
        assert!(interrupted(&mut s, now + 5_000));
        assert_eq!(s.refresh_sent_at_ms, None);
        let why = s.last_error.clone().unwrap();
        assert_eq!(why, "refresh interrupted: the token authority stopped (an eviction or a deploy) while a refresh was in flight");
        assert_eq!((s.consecutive_failures, s.last_error_at_ms), (1, Some(now)), "dated when it was sent");
        assert!(!interrupted(&mut s, now + 6_000), "once");
        // The token is still fresh; the cron (not requests) refreshes now.
        assert_eq!(s.state(now + 6_000, &p), crate::token::TokenState::Fresh);
        assert_eq!(crate::token::plan(&s, Trigger::Cron, now + 6_000, &p), crate::token::Plan::ServeAndRefresh);
        assert_eq!(crate::token::plan(&s, Trigger::Request, now + 6_000, &p), crate::token::Plan::Serve);
        // Refused (strict rotation: the pair was rotated then): the reason says where it went.
        finish_run(&mut s, RefreshOutcome::Final("refresh token rejected: HTTP 400 invalid_grant".into()), now + 60_000, 0.0, "cfp", &p, None);
        let why = s.reauth_reason.clone().unwrap();
        assert!(why.contains("after the refresh before it failed (refresh interrupted: "), "{why}");
        // Accepted (the old token still lives a while): recovered, nothing left of it.
        let mut s = seeded();
        sending(&mut s, now);
        interrupted(&mut s, now + 5_000);
        let answer = crate::token::TokenAnswer {
            access_token: AccessToken::new("at-2"),
            access_expires_at_ms: now + 15 * 86_400_000,
            refresh_token: Some(RefreshToken::new("rt-2")),
            refresh_expires_at_ms: None,
        };
        assert_eq!(finish_run(&mut s, RefreshOutcome::Success(answer), now + 60_000, 0.0, "cfp", &p, None), RunEnd::Refreshed);
        assert_eq!((s.last_error.as_deref(), s.consecutive_failures), (None, 0));
    }

    /// The interrupted attempt counts for the forced refresh's throttle from
    /// when it was sent. The mark is not written back when found, so every
    /// instance that loads the state finds it again: dated at the load, the
    /// throttle would start afresh at each one, and an operator whose
    /// forced refreshes come a minute apart (the `Retry-After`), with the
    /// object evicted between them, was refused every time until the
    /// cron's write.
    #[test]
    fn an_interrupted_refresh_throttles_a_forced_one_from_when_it_was_sent_not_from_each_load() {
        let p = TokenPolicy::default();
        let now = T0 + 86_400_000;
        let interval = secs_to_ms(p.min_refresh_interval_secs);
        let mut stored = seeded();
        sending(&mut stored, now);
        // Loaded at once (a restart moments later): the attempt was just made.
        let mut s = stored.clone();
        assert!(interrupted(&mut s, now + 1_000));
        assert!(matches!(crate::token::plan(&s, Trigger::Forced, now + 1_000, &p), crate::token::Plan::Refuse(Refusal::Throttled { .. })));
        // Every later load of the same stored state, past the interval after
        // the attempt, lets a forced refresh through.
        for load_at in [now + interval + 1_000, now + 2 * interval + 5_000] {
            let mut s = stored.clone();
            assert!(interrupted(&mut s, load_at));
            assert_eq!(s.last_error_at_ms, Some(now));
            assert_eq!(crate::token::plan(&s, Trigger::Forced, load_at, &p), crate::token::Plan::RefreshThenServe, "loaded at +{} ms", load_at - now);
        }
        // A mark dated after the load (another machine's clock) is dated at the load.
        let mut s = stored.clone();
        assert!(interrupted(&mut s, now - 3_000));
        assert_eq!(s.last_error_at_ms, Some(now - 3_000));
    }

    /// A forced refresh sent during a backoff and cut short by the authority
    /// stopping: the backoff ends with it, so the cron's next run recovers
    /// the pair rather than waiting the backoff out.
    #[test]
    fn an_interrupted_refresh_ends_the_backoff_it_was_sent_in() {
        let p = TokenPolicy::default();
        let now = T0 + 86_400_000;
        let mut s = seeded();
        s.consecutive_failures = 3;
        s.next_attempt_at_ms = Some(now + 600_000);
        assert_eq!(crate::token::plan(&s, Trigger::Forced, now, &p), crate::token::Plan::RefreshThenServe);
        sending(&mut s, now);
        assert!(interrupted(&mut s, now + 1_000));
        assert_eq!((s.consecutive_failures, s.next_attempt_at_ms), (4, None));
        assert_eq!(crate::token::plan(&s, Trigger::Cron, now + 2_000, &p), crate::token::Plan::ServeAndRefresh);
    }

    /// A rate-limit answer after one failed run in a row counts as the
    /// second: the streak's backoff follows the penalty.
    #[test]
    fn a_rate_limit_after_one_failed_run_backs_off_as_the_second() {
        let p = TokenPolicy::default();
        let mut s = seeded();
        finish_run(&mut s, RefreshOutcome::Transient("refresh failed: HTTP 503".into()), T0, 1.0, "cfp", &p, None);
        finish_run(&mut s, RefreshOutcome::RateLimited { penalty_secs: 10, reason: "rate-limited".into() }, T0 + 40_000, 1.0, "cfp", &p, None);
        assert_eq!(s.consecutive_failures, 2);
        assert_eq!(s.next_attempt_at_ms, Some(T0 + 40_000 + 60_000), "30 s doubled, after a 10 s penalty");
        // The first failure of a streak is the penalty alone.
        let mut s = seeded();
        finish_run(&mut s, RefreshOutcome::RateLimited { penalty_secs: 10, reason: "rate-limited".into() }, T0, 1.0, "cfp", &p, None);
        assert_eq!(s.next_attempt_at_ms, None);
    }

    /// A dead refresh token after answers lost both in the run before and
    /// in this run: the reason names this run's, the attempt just before
    /// the refusal.
    #[test]
    fn a_refusal_names_the_lost_answer_of_its_own_run_first() {
        let p = TokenPolicy::default();
        let mut s = seeded();
        s.last_error = Some("refresh timed out after 300000 ms".into());
        let dead = RefreshOutcome::Final("refresh token rejected: HTTP 400 invalid_grant".into());
        finish_run(&mut s, dead, T0, 0.0, "cfp", &p, Some("refresh failed: HTTP 502"));
        let why = s.reauth_reason.unwrap();
        assert!(why.contains("(refresh failed: HTTP 502)") && !why.contains("timed out"), "{why}");
    }

    /// Rejected client credentials end any backoff: nothing refreshes by
    /// itself until the secrets change, so `GET /v1/token` shows no
    /// `retry_at`.
    #[test]
    fn rejected_credentials_show_no_retry_at() {
        let p = TokenPolicy::default();
        let mut s = seeded();
        finish_run(&mut s, RefreshOutcome::Transient("refresh failed: HTTP 503".into()), T0, 1.0, "cfp", &p, None);
        assert!(s.next_attempt_at_ms.is_some());
        let end = finish_run(&mut s, RefreshOutcome::CredentialsRejected("client credentials rejected: HTTP 401 invalid_client".into()), T0 + 1, 1.0, "cfp", &p, None);
        assert_eq!(end, RunEnd::CredentialsRejected);
        assert!(status_json(&s, T0 + 2, &p)["retry_at"].is_null());
    }

    #[test]
    fn wait_limits() {
        let p = TokenPolicy::default();
        assert_eq!(wait_limit_ms(Trigger::Request, &p), Some(15_000));
        assert_eq!(wait_limit_ms(Trigger::Cron, &p), None);
        assert_eq!(wait_limit_ms(Trigger::Forced, &p), None);
        assert_eq!(p.refresh_call_timeout_ms, 300_000, "the call itself may take minutes");
    }

    #[test]
    fn answer_after_run_every_arm() {
        let p = TokenPolicy::default();
        let now = T0 + 1000;
        let usable = seeded();
        let mut dead = seeded();
        dead.access.as_mut().unwrap().rejected = true;
        let failed = RunEnd::Failed { timeout: false, message: "refresh failed: HTTP 503".into() };
        let timed_out = RunEnd::Failed { timeout: true, message: "timed out".into() };

        // A usable token is served after anything, to requests and cron.
        for end in [None, Some(&RunEnd::Refreshed), Some(&failed), Some(&RunEnd::Reauth), Some(&RunEnd::RateLimited)] {
            assert_eq!(answer_after_run(&usable, Trigger::Request, end, now, &p), Answer::Grant, "{end:?}");
            assert_eq!(answer_after_run(&usable, Trigger::Cron, end, now, &p), Answer::Grant, "{end:?}");
        }
        // A forced refresh reports its failure even with a usable token.
        assert_eq!(answer_after_run(&usable, Trigger::Forced, Some(&RunEnd::Refreshed), now, &p), Answer::Grant);
        assert!(matches!(
            answer_after_run(&usable, Trigger::Forced, Some(&failed), now, &p),
            Answer::Refuse(Refusal::RefreshFailed { .. })
        ));
        // No usable token: the end decides.
        let mut backing_off = dead.clone();
        backing_off.next_attempt_at_ms = Some(now + 20_500);
        assert_eq!(
            answer_after_run(&backing_off, Trigger::Request, Some(&failed), now, &p),
            Answer::Refuse(Refusal::RefreshFailed { message: "refresh failed: HTTP 503".into(), retry_after_secs: Some(21) })
        );
        assert_eq!(
            answer_after_run(&dead, Trigger::Request, Some(&timed_out), now, &p),
            Answer::Refuse(Refusal::RefreshTimedOut { message: "timed out".into(), retry_after_secs: None })
        );
        assert_eq!(
            answer_after_run(&dead, Trigger::Request, None, now, &p),
            Answer::Refuse(Refusal::StillRefreshing { waited_ms: 15_000 })
        );
        assert_eq!(answer_after_run(&dead, Trigger::Request, Some(&RunEnd::Refreshed), now, &p), Answer::Refuse(Refusal::NoUsableToken));
        assert_eq!(answer_after_run(&dead, Trigger::Request, Some(&RunEnd::Reauth), now, &p), Answer::Refuse(Refusal::ReauthRequired));
        assert_eq!(
            answer_after_run(&dead, Trigger::Request, Some(&RunEnd::CredentialsRejected), now, &p),
            Answer::Refuse(Refusal::CredentialsRejected)
        );
        let mut penalised = dead.clone();
        penalised.penalty_until_ms = Some(now + 30_000);
        assert_eq!(
            answer_after_run(&penalised, Trigger::Request, Some(&RunEnd::RateLimited), now, &p),
            Answer::Refuse(Refusal::RefreshPenalty { retry_after_secs: 30 })
        );
        // The caller-facing codes.
        let codes: Vec<(u16, &str)> = [
            Refusal::StillRefreshing { waited_ms: 15_000 },
            Refusal::RefreshTimedOut { message: "t".into(), retry_after_secs: Some(3) },
            Refusal::RefreshFailed { message: "f".into(), retry_after_secs: None },
            Refusal::NoUsableToken,
            Refusal::ReauthRequired,
            Refusal::CredentialsRejected,
        ]
        .iter()
        .map(|r| {
            let e = r.api_error();
            (e.status, e.code.as_str())
        })
        .collect();
        assert_eq!(
            codes,
            vec![
                (504, "upstream_timeout"),
                (504, "upstream_timeout"),
                (502, "upstream_error"),
                (502, "upstream_error"),
                (503, "reauth_required"),
                (503, "credentials_rejected")
            ]
        );
        let still = Refusal::StillRefreshing { waited_ms: 15_000 }.api_error();
        assert!(still.message.contains("keeps running"), "{}", still.message);
        assert_eq!(still.retry_after_secs, Some(2));
    }

    /// A run that timed out and now backs off tells the waiting request
    /// when to come back (504 with `Retry-After`), as a failed one does.
    #[test]
    fn a_timed_out_run_that_backs_off_says_when_to_retry() {
        let p = TokenPolicy::default();
        let now = T0 + 1000;
        let mut s = seeded();
        s.access.as_mut().unwrap().rejected = true;
        let end = finish_run(&mut s, RefreshOutcome::Timeout("refresh timed out".into()), now, 1.0, "cfp", &p, None);
        let answer = answer_after_run(&s, Trigger::Request, Some(&end), now, &p);
        assert_eq!(answer, Answer::Refuse(Refusal::RefreshTimedOut { message: "refresh timed out".into(), retry_after_secs: Some(30) }));
        let Answer::Refuse(r) = answer else { unreachable!() };
        assert_eq!((r.api_error().status, r.api_error().retry_after_secs), (504, Some(30)));
    }
}
