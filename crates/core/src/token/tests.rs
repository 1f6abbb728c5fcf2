//! Host tests of the token lifecycle, with time passed in.
use super::*;
use crate::secret::{ClientId, ClientSecret};
use serde_json::{json, Value};

/// The status body as JSON, as `GET /v1/token` sends it.
fn status_json(state: &AuthorityState, now_ms: i64, policy: &TokenPolicy) -> Value {
    serde_json::to_value(status(state, now_ms, policy)).unwrap()
}

const DAY: i64 = 86_400_000;
const T0: i64 = 1_795_626_582_000; // 2026-11-25T17:09:42Z

fn policy() -> TokenPolicy {
    TokenPolicy::default()
}

/// A state holding tokens obtained at T0 with the given access lifetime.
fn seeded(access_ttl_ms: i64) -> AuthorityState {
    let mut s = AuthorityState::default();
    adopt_bootstrap(&mut s, &RefreshToken::new("rt-boot"), None, T0);
    apply_success(
        &mut s,
        TokenAnswer {
            access_token: AccessToken::new("at-1"),
            access_expires_at_ms: T0 + access_ttl_ms,
            refresh_token: Some(RefreshToken::new("rt-1")),
            refresh_expires_at_ms: Some(T0 + 30 * DAY),
        },
        T0,
        0.0,
    );
    s
}

#[test]
fn uninitialized_needs_refresh_after_seed() {
    let mut s = AuthorityState::default();
    assert_eq!(s.state(T0, &policy()), TokenState::Uninitialized);
    // Before any bootstrap there is nothing to refresh with.
    assert_eq!(plan(&s, Trigger::Request, T0, &policy()), Plan::Refuse(Refusal::ReauthRequired));
    let a = adopt_bootstrap(&mut s, &RefreshToken::new("rt-boot"), None, T0);
    assert!(a.adopted_refresh);
    assert!(!s.refresh_proof_due, "the first seed is proven by its first refresh, when it is needed");
    assert_eq!(plan(&s, Trigger::Request, T0, &policy()), Plan::RefreshThenServe);
}

#[test]
fn windows_fresh_stale_must_expired() {
    let s = seeded(15 * DAY);
    let p = policy();
    assert_eq!(s.state(T0, &p), TokenState::Fresh);
    assert_eq!(plan(&s, Trigger::Request, T0 + DAY, &p), Plan::Serve);
    assert_eq!(plan(&s, Trigger::Cron, T0 + DAY, &p), Plan::Serve);
    // 7 days left (jitter 0): stale, background refresh.
    let stale_at = T0 + 8 * DAY;
    assert_eq!(s.state(stale_at, &p), TokenState::Stale);
    assert_eq!(plan(&s, Trigger::Request, stale_at, &p), Plan::ServeAndRefresh);
    assert_eq!(plan(&s, Trigger::Cron, stale_at, &p), Plan::ServeAndRefresh);
    // In the last minutes, refreshed "in the future" (the clock went back
    // since): no throttle, as for a forced refresh; otherwise requests
    // would be served the dying token until the clock caught up.
    let last_minute = T0 + 15 * DAY - 60_000;
    let mut ahead = s.clone();
    ahead.last_refresh_at_ms = Some(last_minute + 30_000);
    assert_eq!(plan(&ahead, Trigger::Request, last_minute, &p), Plan::RefreshThenServe);
    ahead.last_refresh_at_ms = Some(last_minute - 30_000);
    assert_eq!(plan(&ahead, Trigger::Request, last_minute, &p), Plan::Serve, "30 s ago: within the interval");
    // A failed refresh of the fresh token (forced): the cron tries again
    // once the backoff has passed; requests keep being served.
    let mut failing = s.clone();
    failing.consecutive_failures = 1;
    failing.next_attempt_at_ms = Some(T0 + DAY + 15_000);
    assert_eq!(plan(&failing, Trigger::Cron, T0 + DAY, &p), Plan::Serve, "in its backoff");
    assert_eq!(plan(&failing, Trigger::Cron, T0 + DAY + 15_000, &p), Plan::ServeAndRefresh);
    assert_eq!(plan(&failing, Trigger::Request, T0 + DAY + 15_000, &p), Plan::Serve);
    // Just outside 7 days: fresh.
    assert_eq!(s.state(stale_at - 1000, &p), TokenState::Fresh);
    // Last minutes: the request waits.
    let must = T0 + 15 * DAY - 200_000;
    assert_eq!(plan(&s, Trigger::Request, must, &p), Plan::RefreshThenServe);
    // Expired.
    assert_eq!(s.state(T0 + 15 * DAY, &p), TokenState::Expired);
    assert_eq!(plan(&s, Trigger::Request, T0 + 15 * DAY, &p), Plan::RefreshThenServe);
}

#[test]
fn jitter_moves_the_early_window_earlier_by_at_most_ten_percent() {
    let mut s = seeded(15 * DAY);
    let p = policy();
    s.jitter = 0.999;
    let early = s.early_point_ms(&p).unwrap();
    let plain = T0 + 15 * DAY - 7 * DAY;
    assert!(early < plain && early >= plain - (7 * DAY) / 10, "{early} vs {plain}");
}

#[test]
fn refresh_token_expiry_opens_the_early_window_too() {
    // A refresh token that ends before the access token is refreshed
    // halfway through the life the last refresh gave it (5 days here).
    let mut s = seeded(15 * DAY);
    s.refresh.as_mut().unwrap().expires_at_ms = T0 + 5 * DAY;
    assert_eq!(s.state(T0 + 2 * DAY, &policy()), TokenState::Fresh);
    assert_eq!(s.state(T0 + 5 * DAY / 2, &policy()), TokenState::Stale);
    // One handed over without a refresh (the bootstrap): the whole window.
    s.last_refresh_at_ms = None;
    assert_eq!(s.state(T0 + DAY, &policy()), TokenState::Stale);
}

#[test]
fn a_refresh_token_expiry_that_rotation_does_not_move_makes_no_refresh_loop() {
    // One reading of Xoxoday's docs: every rotated refresh token keeps the
    // chain's first expiry. 2 days left, 15-day access tokens, a 7-day
    // window: each refresh leaves the end where it was. Refresh whenever
    // the plan asks (a request every minute), count the refreshes.
    let p = policy();
    let end = T0 + 2 * DAY;
    let mut s = seeded(15 * DAY);
    s.refresh.as_mut().unwrap().expires_at_ms = end;
    let mut refreshes = 0;
    let mut now = T0;
    while now < end {
        if plan(&s, Trigger::Request, now, &p) == Plan::ServeAndRefresh {
            refreshes += 1;
            let answer = TokenAnswer {
                access_token: AccessToken::new(format!("at-{refreshes}")),
                access_expires_at_ms: now + 15 * DAY,
                refresh_token: Some(RefreshToken::new(format!("rt-{refreshes}"))),
                refresh_expires_at_ms: Some(end),
            };
            apply_success(&mut s, answer, now, 0.0);
        }
        now += 60_000;
    }
    // Halving: at 1 day left, 12 h, 6 h, … down to the minute: about
    // log2(2 days / 1 minute), where the full window asked once a minute
    // for two days (2,880).
    assert!((8..=14).contains(&refreshes), "{refreshes} refreshes");
    // A refresh that renews the end (the other reading) is refreshed in
    // the access token's window only.
    let mut s = seeded(15 * DAY);
    assert_eq!(s.early_point_ms(&p), Some(T0 + 8 * DAY));
    s.refresh.as_mut().unwrap().expires_at_ms = T0 + 30 * DAY;
    assert_eq!(s.state(T0 + 7 * DAY, &p), TokenState::Fresh);
}

#[test]
fn short_access_tokens_are_refreshed_halfway_through_not_once_a_minute() {
    // Upstream hands out 1-day tokens: a 7-day window would hold each one
    // stale from the start. Refresh whenever the plan asks (a request every
    // minute for three days), count the refreshes.
    let p = policy();
    let mut s = seeded(DAY);
    assert_eq!(s.early_point_ms(&p), Some(T0 + DAY / 2));
    assert_eq!(s.state(T0 + 1000, &p), TokenState::Fresh);
    let mut refreshes = 0;
    let mut now = T0;
    while now < T0 + 3 * DAY {
        assert!(s.access_usable(now), "never expired");
        if plan(&s, Trigger::Request, now, &p) == Plan::ServeAndRefresh {
            refreshes += 1;
            let answer = TokenAnswer {
                access_token: AccessToken::new(format!("at-{refreshes}")),
                access_expires_at_ms: now + DAY,
                refresh_token: Some(RefreshToken::new(format!("rt-{refreshes}"))),
                refresh_expires_at_ms: Some(now + 30 * DAY),
            };
            apply_success(&mut s, answer, now, 0.0);
        }
        now += 60_000;
    }
    assert_eq!(refreshes, 5, "every 12 h (the full window: 4,320, one a minute)");
}

#[test]
fn minute_tokens_are_refreshed_in_the_background_not_with_requests_waiting() {
    // Upstream hands out 4-minute tokens, less than the must-refresh window
    // (5 min): each would be inside it from the start, and every request
    // after the minimum interval would wait for a refresh (29 in 30 min).
    // Now: refreshed halfway through, in the background, none waited for.
    let p = policy();
    let mut s = seeded(4 * 60_000);
    let (mut background, mut waited) = (0, 0);
    let mut now = T0;
    while now < T0 + 30 * 60_000 {
        assert!(s.access_usable(now), "never expired");
        let step = plan(&s, Trigger::Request, now, &p);
        match step {
            Plan::ServeAndRefresh => background += 1,
            Plan::RefreshThenServe => waited += 1,
            _ => {}
        }
        if matches!(step, Plan::ServeAndRefresh | Plan::RefreshThenServe) {
            let answer = TokenAnswer {
                access_token: AccessToken::new(format!("at-{now}")),
                access_expires_at_ms: now + 4 * 60_000,
                refresh_token: None,
                refresh_expires_at_ms: None,
            };
            apply_success(&mut s, answer, now, 0.0);
        }
        now += 10_000;
    }
    assert_eq!((background, waited), (14, 0), "at 2, 4, … 28 minutes, in the background");
    // The request waits only in the last quarter of such a token's life.
    let s = seeded(4 * 60_000);
    assert_eq!(plan(&s, Trigger::Request, T0 + 3 * 60_000 - 1, &p), Plan::ServeAndRefresh);
    assert_eq!(plan(&s, Trigger::Request, T0 + 3 * 60_000, &p), Plan::RefreshThenServe);
    assert_eq!(s.recheck_at_ms(T0 + 1000, &p), T0 + 2 * 60_000, "an isolate looks again at the early point");
}

#[test]
fn min_interval_holds_refreshes_apart_even_in_the_last_minutes() {
    let mut s = seeded(DAY);
    let p = policy();
    let just = T0 + DAY - 200_000;
    s.last_refresh_at_ms = Some(just - 1000);
    assert_eq!(plan(&s, Trigger::Request, just, &p), Plan::Serve, "refreshed 1 s ago");
    assert_eq!(plan(&s, Trigger::Request, just + 60_000, &p), Plan::RefreshThenServe);
}

#[test]
fn a_rejected_token_is_replaced_whatever_the_time_since_the_last_refresh() {
    let mut s = seeded(15 * DAY);
    let p = policy();
    let fp = AccessToken::new("at-1").fingerprint();
    assert!(mark_rejected(&mut s, &fp));
    // One second after the refresh, well inside the minimum interval.
    assert_eq!(plan(&s, Trigger::Request, T0 + 1000, &p), Plan::RefreshThenServe);
    assert_eq!(plan(&s, Trigger::Cron, T0 + 1000, &p), Plan::RefreshThenServe);
}

#[test]
fn mark_rejected_makes_token_expired() {
    let mut s = seeded(15 * DAY);
    let fp = AccessToken::new("at-1").fingerprint();
    assert!(mark_rejected(&mut s, &fp));
    assert!(!mark_rejected(&mut s, &fp), "only once");
    assert_eq!(s.state(T0 + 1000, &policy()), TokenState::Expired);
}

#[test]
fn forced_refresh_is_throttled_while_the_token_is_usable() {
    let mut s = seeded(15 * DAY);
    let p = policy();
    // Refreshed at T0: one forced refresh per TOKEN_MIN_REFRESH_INTERVAL_SECS.
    assert_eq!(plan(&s, Trigger::Forced, T0 + 10, &p), Plan::Refuse(Refusal::Throttled { retry_after_secs: 60 }));
    assert_eq!(plan(&s, Trigger::Forced, T0 + 59_001, &p), Plan::Refuse(Refusal::Throttled { retry_after_secs: 1 }));
    assert_eq!(plan(&s, Trigger::Forced, T0 + 60_000, &p), Plan::RefreshThenServe);
    // A failed run counts as an attempt too.
    apply_failure(&mut s, false, "refresh failed: HTTP 503".into(), T0 + 100_000, 0.0, &p);
    assert_eq!(plan(&s, Trigger::Forced, T0 + 130_000, &p), Plan::Refuse(Refusal::Throttled { retry_after_secs: 30 }));
    // It overrides the backoff once the interval has passed.
    assert!(s.next_attempt_at_ms.unwrap() > T0 + 100_000);
    assert_eq!(plan(&s, Trigger::Forced, T0 + 100_000 + 60_000, &p), Plan::RefreshThenServe);
    // An unusable token: no throttle.
    let mut r = seeded(15 * DAY);
    mark_rejected(&mut r, &AccessToken::new("at-1").fingerprint());
    assert_eq!(plan(&r, Trigger::Forced, T0 + 10, &p), Plan::RefreshThenServe);
    // Never before the first refresh either (a bootstrap access token).
    let mut b = AuthorityState::default();
    adopt_bootstrap(&mut b, &RefreshToken::new("rt"), None, T0);
    apply_validated_access(&mut b, AccessToken::new("at"), T0 + 10 * DAY, T0);
    assert_eq!(plan(&b, Trigger::Forced, T0 + 1, &p), Plan::RefreshThenServe);
    // A clock that went back does not throttle.
    assert_eq!(plan(&seeded(15 * DAY), Trigger::Forced, T0 - 5, &p), Plan::RefreshThenServe);
    // The caller-facing answer.
    let e = Refusal::Throttled { retry_after_secs: 42 }.api_error();
    assert_eq!((e.status, e.code.as_str(), e.retry_after_secs), (429, "rate_limited", Some(42)));
    assert!(e.message.contains("TOKEN_MIN_REFRESH_INTERVAL_SECS"), "{}", e.message);
    // A dead refresh token refuses.
    s.reauth_reason = Some("x".into());
    assert_eq!(plan(&s, Trigger::Forced, T0 + 10 * DAY, &p), Plan::Refuse(Refusal::ReauthRequired));
}

#[test]
fn a_refresh_token_refused_under_other_client_secrets_gets_one_more_try_when_they_change() {
    // Xoxoday answers a wrong secret in no documented shape: `invalid_request`
    // reads as a dead refresh token.
    let mut s = seeded(15 * DAY);
    let p = policy();
    let wrong = credentials_fingerprint(&ClientId::new("cid"), &ClientSecret::new("wrong"));
    let right = credentials_fingerprint(&ClientId::new("cid"), &ClientSecret::new("right"));
    let outcome = parse_refresh_response(400, br#"{"error":"invalid_request"}"#, None, T0);
    assert!(matches!(outcome, RefreshOutcome::Final(_)), "{outcome:?}");
    let stale = T0 + 9 * DAY;
    run::finish_run(&mut s, outcome, stale, 0.0, &wrong, &p, None);
    assert_eq!(s.state(stale, &p), TokenState::ReauthRequired);
    assert_eq!(crate::alert::token_condition(&s, stale, &crate::alert::AlertPolicy { webhook: false, refresh_failures: 3, balance_below: None, deployment: String::new() }), Some(crate::alert::Condition::ReauthRequired));
    // The same secrets: it stays; nothing refreshes.
    assert!(!adopt_credentials(&mut s, &wrong));
    assert_eq!(plan(&s, Trigger::Cron, stale, &p), Plan::Refuse(Refusal::ReauthRequired));
    // The operator fixes the secret: the refresh token (never spent) is tried again.
    assert!(adopt_credentials(&mut s, &right));
    assert_eq!((s.reauth_reason.as_deref(), s.credentials_rejected_fp.as_deref()), (None, None));
    assert_eq!(s.refresh.as_ref().unwrap().token.expose_secret(), "rt-1");
    assert_eq!(plan(&s, Trigger::Cron, stale, &p), Plan::ServeAndRefresh);
    // Dead after all: refused again, under the new pair; only another change retries.
    let outcome = parse_refresh_response(400, br#"{"error":"invalid_grant"}"#, None, T0);
    run::finish_run(&mut s, outcome, stale, 0.0, &right, &p, None);
    assert_eq!(s.state(stale, &p), TokenState::ReauthRequired);
    assert!(!adopt_credentials(&mut s, &right));
}

#[test]
fn credentials_rejection_keeps_serving_then_clears_when_the_secrets_change() {
    let mut s = seeded(15 * DAY);
    let p = policy();
    let old_fp = credentials_fingerprint(&ClientId::new("cid"), &ClientSecret::new("wrong"));
    let new_fp = credentials_fingerprint(&ClientId::new("cid"), &ClientSecret::new("right"));
    assert_ne!(old_fp, new_fp);
    assert_eq!(old_fp, credentials_fingerprint(&ClientId::new("cid"), &ClientSecret::new("wrong")));
    assert_ne!(
        credentials_fingerprint(&ClientId::new("ab"), &ClientSecret::new("c")),
        credentials_fingerprint(&ClientId::new("a"), &ClientSecret::new("bc"))
    );
    let outcome = parse_refresh_response(401, br#"{"error":"invalid_client","error_description":"bad"}"#, None, T0);
    assert!(matches!(outcome, RefreshOutcome::CredentialsRejected(_)), "{outcome:?}");
    let stale = T0 + 9 * DAY;
    run::finish_run(&mut s, outcome, stale, 0.0, &old_fp, &p, None);
    assert_eq!(s.state(stale, &p), TokenState::CredentialsRejected);
    assert_eq!(status_json(&s, stale, &p)["state"], "credentials_rejected");
    // The refresh token is neither spent nor dead.
    assert_eq!(s.refresh.as_ref().unwrap().token.expose_secret(), "rt-1");
    assert!(!s.spent_refresh_fps.contains(&RefreshToken::new("rt-1").fingerprint()));
    assert!(s.reauth_reason.is_none());
    // Requests keep the still-valid token; nothing refreshes.
    assert_eq!(plan(&s, Trigger::Request, stale, &p), Plan::Serve);
    assert_eq!(plan(&s, Trigger::Cron, stale, &p), Plan::Refuse(Refusal::CredentialsRejected));
    // The admin's forced refresh may try the same secrets again (a
    // rejection spends nothing; Xoxoday may have rejected right ones), once
    // per TOKEN_MIN_REFRESH_INTERVAL_SECS after the rejection, usable token
    // or not.
    let interval = secs_to_ms(p.min_refresh_interval_secs);
    assert_eq!(s.last_attempt_at_ms(), Some(stale));
    assert_eq!(plan(&s, Trigger::Forced, stale + 1_000, &p), Plan::Refuse(Refusal::Throttled { retry_after_secs: p.min_refresh_interval_secs - 1 }));
    assert_eq!(plan(&s, Trigger::Forced, stale + interval, &p), Plan::RefreshThenServe);
    let dead = T0 + 16 * DAY;
    let mut s_dead = s.clone();
    s_dead.last_error_at_ms = Some(dead);
    assert_eq!(plan(&s_dead, Trigger::Forced, dead + 1_000, &p), Plan::Refuse(Refusal::Throttled { retry_after_secs: p.min_refresh_interval_secs - 1 }), "throttled with no usable token too");
    assert_eq!(plan(&s_dead, Trigger::Forced, dead + interval, &p), Plan::RefreshThenServe);
    assert_eq!(plan(&s_dead, Trigger::Cron, dead + interval, &p), Plan::Refuse(Refusal::CredentialsRejected), "never by itself");
    // A forced refresh that works clears the rejection (the pair adopted).
    let mut retried = s.clone();
    let ok = parse_refresh_response(200, br#"{"access_token":"at-2","refresh_token":"rt-2","expires_in":1296000}"#, None, stale + interval);
    run::finish_run(&mut retried, ok, stale + interval, 0.0, &old_fp, &p, None);
    assert_eq!(retried.state(stale + interval, &p), TokenState::Fresh);
    assert!(retried.credentials_rejected_fp.is_none());
    assert_eq!(plan(&s, Trigger::Request, T0 + 16 * DAY, &p), Plan::Refuse(Refusal::CredentialsRejected));
    let e = Refusal::CredentialsRejected.api_error();
    assert_eq!((e.status, e.code.as_str()), (503, "credentials_rejected"));
    assert!(e.message.contains("XOXODAY_CLIENT_SECRET"), "{}", e.message);
    // Same secrets: nothing changes.
    assert!(!adopt_credentials(&mut s, &old_fp));
    assert_eq!(s.state(stale, &p), TokenState::CredentialsRejected);
    // The operator fixes the secret: cleared, the background refresh resumes.
    assert!(s.last_error.is_some());
    assert!(adopt_credentials(&mut s, &new_fp));
    assert_eq!(s.state(stale, &p), TokenState::Stale);
    // Tried at once, not only in the early window: a fresh token too.
    assert!(s.refresh_proof_due);
    assert_eq!(plan(&s, Trigger::Request, T0 + DAY, &p), Plan::ServeAndRefresh);
    assert_eq!((s.last_error.as_deref(), s.last_error_at_ms), (None, None), "the rejection's reason went with it");
    assert_eq!(plan(&s, Trigger::Request, stale, &p), Plan::ServeAndRefresh);
    assert!(!adopt_credentials(&mut s, &new_fp), "once");
    // unauthorized_client blames the client too; a new bootstrap token also clears it.
    let outcome = parse_refresh_response(400, br#"{"error":"unauthorized_client"}"#, None, T0);
    assert!(matches!(outcome, RefreshOutcome::CredentialsRejected(_)), "{outcome:?}");
    run::finish_run(&mut s, outcome, stale, 0.0, &new_fp, &p, None);
    assert!(s.last_error.is_some());
    assert!(adopt_bootstrap(&mut s, &RefreshToken::new("rt-from-dashboard"), None, stale).adopted_refresh);
    assert!(s.credentials_rejected_fp.is_none());
    assert!(s.last_error.is_none(), "a new refresh token: the old error is history");
    // A penalty's reason stays while the penalty does.
    s.last_error = Some("auth.request_limit_exceeded".into());
    s.penalty_until_ms = Some(stale + 60_000);
    assert!(adopt_bootstrap(&mut s, &RefreshToken::new("rt-from-dashboard-2"), None, stale).adopted_refresh);
    assert_eq!(s.last_error.as_deref(), Some("auth.request_limit_exceeded"));
}

#[test]
fn reauth_serves_a_valid_token_but_never_refreshes() {
    let mut s = seeded(15 * DAY);
    let p = policy();
    apply_failure(&mut s, true, "refresh token rejected: HTTP 400 invalid_grant".into(), T0 + 10, 0.5, &p);
    assert_eq!(s.state(T0 + 10, &p), TokenState::ReauthRequired);
    assert_eq!(plan(&s, Trigger::Request, T0 + 10, &p), Plan::Serve);
    assert_eq!(plan(&s, Trigger::Cron, T0 + 9 * DAY, &p), Plan::Refuse(Refusal::ReauthRequired));
    assert_eq!(plan(&s, Trigger::Request, T0 + 16 * DAY, &p), Plan::Refuse(Refusal::ReauthRequired));
    mark_rejected(&mut s, &AccessToken::new("at-1").fingerprint());
    assert_eq!(plan(&s, Trigger::Request, T0 + 100_000, &p), Plan::Refuse(Refusal::ReauthRequired));
}

#[test]
fn transient_failures_back_off_and_keep_serving() {
    let mut s = seeded(15 * DAY);
    let p = policy();
    let stale_at = T0 + 9 * DAY;
    apply_failure(&mut s, false, "refresh failed: HTTP 503".into(), stale_at, 0.0, &p);
    assert_eq!(s.consecutive_failures, 1);
    assert_eq!(s.last_error.as_deref(), Some("refresh failed: HTTP 503"));
    // Backoff 15 s (30 s × 0.5 jitter): no background refresh meanwhile.
    assert_eq!(plan(&s, Trigger::Request, stale_at + 1000, &p), Plan::Serve);
    assert_eq!(plan(&s, Trigger::Request, stale_at + 16_000, &p), Plan::ServeAndRefresh);
    // An expired token during backoff: callers are told when to retry.
    let mut e = seeded(DAY);
    apply_failure(&mut e, false, "x".into(), T0 + DAY + 1, 0.0, &p);
    assert_eq!(plan(&e, Trigger::Request, T0 + DAY + 2, &p), Plan::Refuse(Refusal::Backoff { retry_after_secs: 15 }));
}

#[test]
fn backoff_grows_and_is_capped() {
    let p = policy();
    assert_eq!(backoff_ms(1, 1.0, &p), 30_000);
    assert_eq!(backoff_ms(2, 1.0, &p), 60_000);
    assert_eq!(backoff_ms(3, 0.0, &p), 60_000);
    assert_eq!(backoff_ms(40, 1.0, &p), 1_800_000);
    // However long the outage, the backoff stays at its cap (no shift past
    // 64 bits wrapping it back to seconds: a refresh storm).
    for failures in [64, 65, 100, u32::MAX] {
        assert_eq!(backoff_ms(failures, 1.0, &p), 1_800_000, "{failures}");
    }
    assert_eq!(retry_delay_ms(1, 1.0, &p), 250);
    assert_eq!(retry_delay_ms(2, 1.0, &p), 500);
    assert_eq!(retry_delay_ms(2, 0.0, &p), 250);
}

#[test]
fn success_rotates_and_remembers_spent_tokens() {
    let mut s = seeded(15 * DAY);
    assert!(s.spent_refresh_fps.contains(&RefreshToken::new("rt-boot").fingerprint()));
    apply_success(
        &mut s,
        TokenAnswer {
            access_token: AccessToken::new("at-2"),
            access_expires_at_ms: T0 + 16 * DAY,
            refresh_token: None,
            refresh_expires_at_ms: None,
        },
        T0 + DAY,
        0.3,
    );
    // No refresh_token in the answer: the old one is kept, not spent.
    assert_eq!(s.refresh.as_ref().unwrap().token.expose_secret(), "rt-1");
    assert_eq!(s.refresh_count, 2);
    // The operator sets the already-spent bootstrap again: it is ignored.
    let a = adopt_bootstrap(&mut s, &RefreshToken::new("rt-boot"), None, T0 + DAY);
    assert!(!a.adopted_refresh);
    assert_eq!(s.refresh.as_ref().unwrap().token.expose_secret(), "rt-1");
}

#[test]
fn an_answer_repeating_the_refresh_token_keeps_its_known_expiry() {
    let mut s = seeded(15 * DAY);
    let pair = |rt: &str, rt_expiry: Option<i64>| TokenAnswer {
        access_token: AccessToken::new("at-2"),
        access_expires_at_ms: T0 + 16 * DAY,
        refresh_token: Some(RefreshToken::new(rt)),
        refresh_expires_at_ms: rt_expiry,
    };
    apply_success(&mut s, pair("rt-2", Some(T0 + 30 * DAY)), T0 + DAY, 0.3);
    // Xoxoday hands the same refresh token back, saying nothing of its
    // expiry: what was known stays (it was shown as 30 days from now).
    apply_success(&mut s, pair("rt-2", None), T0 + 8 * DAY, 0.3);
    let r = s.refresh.as_ref().unwrap();
    assert_eq!((r.expires_at_ms, r.expiry_known), (T0 + 30 * DAY, true));
    assert!(!s.spent_refresh_fps.contains(&RefreshToken::new("rt-2").fingerprint()), "not spent: it is the one held");
    // A new one without an expiry: estimated, as always.
    apply_success(&mut s, pair("rt-3", None), T0 + 9 * DAY, 0.3);
    let r = s.refresh.as_ref().unwrap();
    assert_eq!((r.expires_at_ms, r.expiry_known), (T0 + 9 * DAY + DEFAULT_REFRESH_TTL_MS, false));
    // An estimate is not carried over as if known.
    apply_success(&mut s, pair("rt-3", None), T0 + 10 * DAY, 0.3);
    assert_eq!(s.refresh.as_ref().unwrap().expires_at_ms, T0 + 10 * DAY + DEFAULT_REFRESH_TTL_MS);
}

#[test]
fn same_bootstrap_is_adopted_only_once() {
    let mut s = AuthorityState::default();
    assert!(adopt_bootstrap(&mut s, &RefreshToken::new("rt-boot"), None, T0).adopted_refresh);
    assert!(!adopt_bootstrap(&mut s, &RefreshToken::new("rt-boot"), None, T0).adopted_refresh);
}

#[test]
fn new_bootstrap_recovers_from_reauth() {
    let mut s = seeded(15 * DAY);
    let p = policy();
    let t = T0 + 2 * 60_000; // past the minimum interval since the last refresh
    apply_failure(&mut s, true, "dead".into(), t, 0.0, &p);
    let a = adopt_bootstrap(&mut s, &RefreshToken::new("rt-new-from-dashboard"), None, t + 1);
    assert!(a.adopted_refresh);
    assert!(s.reauth_reason.is_none());
    assert!(s.spent_refresh_fps.contains(&RefreshToken::new("rt-1").fingerprint()));
    // The old access token still serves, and the new value is tried at
    // once, not when the early window opens days later: the operator
    // learns now whether it works. Isolates ask again in 30 s, for the
    // token its refresh brings.
    assert_eq!((s.state(t + 1, &p), s.refresh_proof_due), (TokenState::Stale, true));
    assert_eq!(plan(&s, Trigger::Request, t + 1, &p), Plan::ServeAndRefresh);
    assert_eq!(plan(&s, Trigger::Cron, t + 1, &p), Plan::ServeAndRefresh);
    assert_eq!(s.recheck_at_ms(t + 1, &p), t + 1 + 30_000);
    // Within the minimum interval of the last refresh: served, tried later.
    let mut recent = s.clone();
    recent.last_refresh_at_ms = Some(t);
    assert_eq!(plan(&recent, Trigger::Request, t + 1, &p), Plan::Serve);
    // Nothing usable left: refresh first.
    let mut none = s.clone();
    none.access = None;
    assert_eq!(plan(&none, Trigger::Request, t + 1, &p), Plan::RefreshThenServe);
    // Its first refresh proves it; nothing more is due.
    let answer = TokenAnswer { access_token: AccessToken::new("at-2"), access_expires_at_ms: t + 15 * DAY, refresh_token: Some(RefreshToken::new("rt-2")), refresh_expires_at_ms: None };
    apply_success(&mut s, answer, t + 2, 0.0);
    assert_eq!((s.state(t + 2, &p), s.refresh_proof_due), (TokenState::Fresh, false));
    assert_eq!(plan(&s, Trigger::Cron, t + 2 * 60_000, &p), Plan::Serve);
    // A refused one leaves it due (reauth_required is what shows).
    let mut refused = seeded(15 * DAY);
    adopt_bootstrap(&mut refused, &RefreshToken::new("rt-typo"), None, t);
    apply_failure(&mut refused, true, "dead".into(), t + 1, 0.0, &p);
    assert!(refused.refresh_proof_due);
    assert_eq!(plan(&refused, Trigger::Cron, t + 1, &p), Plan::Refuse(Refusal::ReauthRequired));
}

#[test]
fn a_value_set_in_place_of_a_live_token_is_tried_at_once() {
    // The live chain is kept aside (run::fall_back) while the new value is
    // tried: at once, so a typo shows now, not at the next refresh.
    let mut s = seeded(15 * DAY);
    let p = policy();
    let t = T0 + DAY;
    assert_eq!(plan(&s, Trigger::Cron, t, &p), Plan::Serve);
    adopt_bootstrap(&mut s, &RefreshToken::new("rt-new"), None, t);
    assert_eq!(s.displaced_refresh.as_ref().map(|d| d.expose_secret()), Some("rt-1"));
    assert_eq!(plan(&s, Trigger::Cron, t, &p), Plan::ServeAndRefresh);
    assert_eq!(status_json(&s, t, &p)["state"], "stale");
}

#[test]
fn bootstrap_access_token_is_validated_once() {
    let mut s = AuthorityState::default();
    let at = AccessToken::new("at-boot");
    let a = adopt_bootstrap(&mut s, &RefreshToken::new("rt"), Some(&at), T0);
    assert!(a.validate_access);
    let a = adopt_bootstrap(&mut s, &RefreshToken::new("rt"), Some(&at), T0);
    assert!(!a.validate_access);
    apply_validated_access(&mut s, at, T0 + 10 * DAY, T0);
    // The first seed's refresh token waits until it is needed (README).
    assert_eq!(s.state(T0, &policy()), TokenState::Fresh);
    assert_eq!(plan(&s, Trigger::Cron, T0, &policy()), Plan::Serve);
}

#[test]
fn refresh_request_shape() {
    let r = build_refresh_request(
        "http://127.0.0.1:1/chef/v1/oauth/token/user",
        &ClientId::new("cid"),
        &ClientSecret::new("csecret"),
        &RefreshToken::new("rtok"),
    );
    assert_eq!(r.method, "POST");
    assert_eq!(r.url, "http://127.0.0.1:1/chef/v1/oauth/token/user");
    let body: Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"grant_type":"refresh_token","refresh_token":"rtok","client_id":"cid","client_secret":"csecret"})
    );
    assert!(r.headers.contains(&("content-type", "application/json".into())));
    let dbg = format!("{r:?}");
    assert!(!dbg.contains("csecret") && !dbg.contains("rtok"), "{dbg}");
    let v = build_validate_request("https://x/chef/v1/oauth/token", &AccessToken::new("atok"));
    assert_eq!(v.method, "GET");
    assert!(!format!("{v:?}").contains("atok"));
}

fn success(body: &str) -> TokenAnswer {
    match parse_refresh_response(200, body.as_bytes(), None, T0) {
        RefreshOutcome::Success(a) => a,
        other => panic!("expected success for {body}: {other:?}"),
    }
}

#[test]
fn lenient_token_answers() {
    // Current docs: number expires_in, string ms stamps.
    let a = success(&format!(
        r#"{{"access_token":"a","token_type":"bearer","expires_in":1296000,"refresh_token":"r","access_token_expiry":"{}","refresh_token_expiry":"{}"}}"#,
        T0 + 15 * DAY,
        T0 + 30 * DAY
    ));
    assert_eq!(a.access_expires_at_ms, T0 + 15 * DAY);
    assert_eq!(a.refresh_expires_at_ms, Some(T0 + 30 * DAY));
    assert_eq!(a.refresh_token.unwrap().expose_secret(), "r");
    // expires_in as a string, extra success/status fields, numeric stamps.
    let a = success(&format!(
        r#"{{"success":1,"status":200,"access_token":"a","expires_in":"1296000","refresh_token":"r","access_token_expiry":{},"refresh_token_expiry":{}}}"#,
        T0 + 15 * DAY,
        T0 + 30 * DAY
    ));
    assert_eq!(a.access_expires_at_ms, T0 + 15 * DAY);
    // Legacy: 30-day expires_in, no stamps.
    let a = success(r#"{"access_token":"a","token_type":"bearer","expires_in":2592000,"refresh_token":"r"}"#);
    assert_eq!(a.access_expires_at_ms, T0 + 30 * DAY);
    assert_eq!(a.refresh_expires_at_ms, None);
    // Stamp and expires_in disagree: the earlier wins.
    let a = success(&format!(r#"{{"access_token":"a","expires_in":100,"access_token_expiry":"{}"}}"#, T0 + DAY));
    assert_eq!(a.access_expires_at_ms, T0 + 100_000);
    // Stamps in seconds are scaled.
    let a = success(&format!(r#"{{"access_token":"a","access_token_expiry":{}}}"#, (T0 + DAY) / 1000));
    assert_eq!(a.access_expires_at_ms, T0 + DAY);
    // Nothing about lifetime: the documented 15 days, never discarded.
    let a = success(r#"{"access_token":"a","expires_in":"garbage","refresh_token":"r"}"#);
    assert_eq!(a.access_expires_at_ms, T0 + DEFAULT_ACCESS_TTL_MS);
    assert!(a.refresh_token.is_some());
}

#[test]
fn error_answers_are_classified() {
    let final_cases: &[(u16, &str)] = &[
        (400, r#"{"error":"invalid_grant","error_description":"invalid/expired token"}"#),
        (401, r#"{"error":"invalid_token","error_description":"invalid/expired token"}"#),
        (200, r#"{"success":0,"error_message_id":"auth.token_error"}"#),
        (200, r#"{"success":0,"message":"auth.token_error"}"#),
        (403, "forbidden"),
        (401, ""),
        (500, r#"{"error":"invalid_grant"}"#),
    ];
    for (status, body) in final_cases {
        assert!(
            matches!(parse_refresh_response(*status, body.as_bytes(), None, T0), RefreshOutcome::Final(_)),
            "{status} {body}"
        );
    }
    let transient_cases: &[(u16, &str)] = &[
        (500, r#"{"error":"server_error"}"#),
        (503, "<html>bad gateway</html>"),
        (400, r#"{"error":"temporarily_unavailable"}"#),
        (200, "not json"),
        (408, ""),
        // Not Xoxoday's token endpoint: a wrong XOXODAY_OAUTH_URL, a firewall's page.
        (404, r#"{"error":"not found"}"#),
        (404, ""),
        (405, ""),
        (403, "<!DOCTYPE html><html><body>Access denied</body></html>"),
        (401, "  <html>login</html>"),
    ];
    for (status, body) in transient_cases {
        assert!(
            matches!(parse_refresh_response(*status, body.as_bytes(), None, T0), RefreshOutcome::Transient(_)),
            "{status} {body}"
        );
    }
    // No JSON object: final as every refresh-token 4xx, in words that name
    // the layer a bare answer may come from.
    for (status, body) in [(403, "forbidden"), (401, ""), (400, r#""x""#)] {
        match parse_refresh_response(status, body.as_bytes(), None, T0) {
            RefreshOutcome::Final(why) => assert_eq!(why, format!("refresh token rejected: HTTP {status} with no JSON answer (a proxy or firewall on the way may have answered: fix the path first, or new tokens meet the same)")),
            other => panic!("{status} {body}: {other:?}"),
        }
    }
    match parse_refresh_response(401, br#"{"error":"Unauthorized"}"#, None, T0) {
        RefreshOutcome::Final(why) => assert_eq!(why, "refresh token rejected: HTTP 401 unrecognised_error"),
        other => panic!("{other:?}"),
    }
    // Answers that blame the client id/secret.
    for (status, body) in [(401, r#"{"error":"invalid_client"}"#), (400, r#"{"error":"unauthorized_client","error_description":"x"}"#), (200, r#"{"error":"invalid_client"}"#)] {
        assert!(
            matches!(parse_refresh_response(status, body.as_bytes(), None, T0), RefreshOutcome::CredentialsRejected(_)),
            "{status} {body}"
        );
    }
    // Rate limits in every shape (more in run::tests).
    for (status, body) in [(429, ""), (200, r#"{"message":"auth.request_limit_exceeded"}"#), (400, r#"{"errors":[{"message":"auth.request_limit_exceeded","penaltySeconds":60}]}"#)] {
        assert!(
            matches!(parse_refresh_response(status, body.as_bytes(), None, T0), RefreshOutcome::RateLimited { .. }),
            "{status} {body}"
        );
    }
}

#[test]
fn error_sentences_never_echo_bodies() {
    let body = r#"{"error":"invalid_grant tok-SECRET-123","refresh_token":"tok-SECRET-456"}"#;
    match parse_refresh_response(400, body.as_bytes(), None, T0) {
        RefreshOutcome::Final(m) => assert!(!m.contains("SECRET"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn validate_answer() {
    let body = r#"{"access_token":"a","token_type":"bearer","expires_in":1000}"#;
    assert_eq!(parse_validate_response(200, body.as_bytes(), T0), Some(T0 + 1_000_000));
    assert_eq!(parse_validate_response(401, b"{}", T0), None);
}

#[test]
fn status_body_never_has_tokens() {
    let s = seeded(15 * DAY);
    let v = status_json(&s, T0, &policy());
    assert_eq!(v["state"], "fresh");
    assert_eq!(v["refresh_count"], 1);
    assert_eq!(v["access_token_expires_at"], rfc3339(T0 + 15 * DAY));
    assert_eq!(v["last_refresh_at"], "2026-11-25T17:09:42.000Z");
    assert!(v["last_error"].is_null());
    assert!(v["retry_at"].is_null());
    let text = v.to_string();
    assert!(!text.contains("at-1") && !text.contains("rt-1"), "{text}");
    let empty = status_json(&AuthorityState::default(), T0, &policy());
    assert_eq!(empty["state"], "uninitialized");
    assert!(empty["access_token_expires_at"].is_null());
}

#[test]
fn recheck_points() {
    let s = seeded(15 * DAY);
    let p = policy();
    assert_eq!(s.recheck_at_ms(T0, &p), T0 + 8 * DAY);
    assert_eq!(s.recheck_at_ms(T0 + 9 * DAY, &p), T0 + 9 * DAY + 30_000);
}

#[test]
fn state_persists_round_trip() {
    let s = seeded(15 * DAY);
    let text = serde_json::to_string(&s).unwrap();
    let back: AuthorityState = serde_json::from_str(&text).unwrap();
    assert_eq!(back.refresh.unwrap().token.expose_secret(), "rt-1");
    assert_eq!(back.refresh_count, 1);
    // Debug of the whole state hides tokens.
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("rt-1") && !dbg.contains("at-1"), "{dbg}");
}

/// Every arm of `plan`, in the order the rules apply.
#[test]
fn plan_every_arm() {
    let p = policy();
    let usable = seeded(15 * DAY);
    let mut unusable = seeded(15 * DAY);
    mark_rejected(&mut unusable, &AccessToken::new("at-1").fingerprint());
    let now = T0 + 2 * DAY;
    let refuse = |r: Refusal| Plan::Refuse(r);

    // 0. Retired (handed over): nothing, whatever the trigger or token;
    //    above all no refresh, which would leave the new owner a spent
    //    refresh token.
    for base in [&usable, &unusable] {
        let mut s = base.clone();
        s.retired_to = Some("account:a".into());
        for trigger in [Trigger::Request, Trigger::Cron, Trigger::Forced] {
            assert_eq!(plan(&s, trigger, now, &p), refuse(serve::retired(&s).unwrap()), "{trigger:?}");
        }
    }
    // 1. Dead refresh token.
    let mut s = usable.clone();
    s.reauth_reason = Some("dead".into());
    assert_eq!(plan(&s, Trigger::Request, now, &p), Plan::Serve);
    assert_eq!(plan(&s, Trigger::Cron, now, &p), refuse(Refusal::ReauthRequired));
    let mut s = unusable.clone();
    s.reauth_reason = Some("dead".into());
    assert_eq!(plan(&s, Trigger::Request, now, &p), refuse(Refusal::ReauthRequired));
    // 2. Rejected client credentials.
    let mut s = usable.clone();
    s.credentials_rejected_fp = Some("x".into());
    assert_eq!(plan(&s, Trigger::Request, now, &p), Plan::Serve);
    s.access = None;
    assert_eq!(plan(&s, Trigger::Request, now, &p), refuse(Refusal::CredentialsRejected));
    // 3. No refresh token.
    let mut s = usable.clone();
    s.refresh = None;
    assert_eq!(plan(&s, Trigger::Forced, now, &p), Plan::Serve);
    s.access = None;
    assert_eq!(plan(&s, Trigger::Request, now, &p), refuse(Refusal::ReauthRequired));
    // 4. Refresh penalty.
    let mut s = unusable.clone();
    s.penalty_until_ms = Some(now + 10_000);
    assert_eq!(plan(&s, Trigger::Request, now, &p), refuse(Refusal::RefreshPenalty { retry_after_secs: 10 }));
    // 5. Forced: throttled while usable and recent, else refresh.
    let mut s = usable.clone();
    s.last_refresh_at_ms = Some(now - 1000);
    assert_eq!(plan(&s, Trigger::Forced, now, &p), refuse(Refusal::Throttled { retry_after_secs: 59 }));
    assert_eq!(plan(&usable, Trigger::Forced, now, &p), Plan::RefreshThenServe);
    // 6. Unusable: backoff, else refresh now (the guard is in check::tests).
    let mut s = unusable.clone();
    s.next_attempt_at_ms = Some(now + 5_000);
    assert_eq!(plan(&s, Trigger::Request, now, &p), refuse(Refusal::Backoff { retry_after_secs: 5 }));
    assert_eq!(status_json(&s, now, &p)["retry_at"], rfc3339(now + 5_000));
    assert_eq!(plan(&unusable, Trigger::Request, now, &p), Plan::RefreshThenServe);
    // 7. Usable: the last minutes wait (unless refreshed recently or backing
    //    off), the early window refreshes in the background, else serve.
    let must = T0 + 15 * DAY - 60_000;
    assert_eq!(plan(&usable, Trigger::Request, must, &p), Plan::RefreshThenServe);
    let mut s = usable.clone();
    s.next_attempt_at_ms = Some(must + 1000);
    assert_eq!(plan(&s, Trigger::Request, must, &p), Plan::Serve);
    assert_eq!(plan(&usable, Trigger::Request, T0 + 9 * DAY, &p), Plan::ServeAndRefresh);
    assert_eq!(plan(&usable, Trigger::Request, now, &p), Plan::Serve);
}

/// An earlier `XOXODAY_REFRESH_TOKEN` put back (a stale secret, a rollback
/// of secrets) is not taken again years of rotations later: the live
/// refresh token must not be swapped for a dead one. (64 remembered, as
/// before, lasted about a year and a half of rotations, fewer when an
/// incident forces refreshes.)
#[test]
fn an_earlier_bootstrap_value_is_never_taken_again() {
    let mut s = seeded(15 * DAY);
    let rotate = |s: &mut AuthorityState, to: &str| {
        let answer = TokenAnswer {
            access_token: AccessToken::new(format!("at-{to}")),
            access_expires_at_ms: T0 + 15 * DAY,
            refresh_token: Some(RefreshToken::new(to)),
            refresh_expires_at_ms: None,
        };
        apply_success(s, answer, T0, 0.0);
    };
    // Recovery with a second generated token, then five years of
    // rotations at the default pace.
    assert!(adopt_bootstrap(&mut s, &RefreshToken::new("rt-boot-2"), None, T0).adopted_refresh);
    let five_years = 5 * 365 / 8;
    for i in 0..five_years {
        rotate(&mut s, &format!("rt-{i}"));
    }
    for earlier in ["rt-boot", "rt-boot-2"] {
        let live = s.refresh.as_ref().unwrap().token.fingerprint();
        let a = adopt_bootstrap(&mut s, &RefreshToken::new(earlier), None, T0 + DAY);
        assert!(a.ignored_spent && !a.adopted_refresh, "{earlier}: {a:?}");
        assert_eq!(s.refresh.as_ref().unwrap().token.fingerprint(), live, "{earlier}: the live token stays");
        // The operator reads why in GET /v1/token, through later refreshes.
        let note = "the XOXODAY_REFRESH_TOKEN set was refused: plumgate rotated it away already and never sends it again; set a newly generated one";
        assert_eq!(s.last_error.as_deref(), Some(note));
        rotate(&mut s, &format!("rt-after-{earlier}"));
        assert_eq!(s.last_error.as_deref(), Some(note));
    }
    // A newly generated value is still taken, and the note goes.
    assert!(adopt_bootstrap(&mut s, &RefreshToken::new("rt-boot-3"), None, T0 + DAY).adopted_refresh);
    assert_eq!(s.last_error, None);
    // Set again after another value was ignored: the one held, nothing to do.
    assert!(adopt_bootstrap(&mut s, &RefreshToken::new("rt-boot"), None, T0 + DAY).ignored_spent);
    assert_eq!(adopt_bootstrap(&mut s, &RefreshToken::new("rt-boot-3"), None, T0 + DAY), Adoption::default());
    assert_eq!(s.refresh.as_ref().unwrap().token.fingerprint(), RefreshToken::new("rt-boot-3").fingerprint());
}

#[test]
fn the_spent_memory_keeps_the_newest() {
    let mut s = seeded(15 * DAY);
    for i in 0..300 {
        let answer = TokenAnswer {
            access_token: AccessToken::new(format!("at-{i}")),
            access_expires_at_ms: T0 + 15 * DAY,
            refresh_token: Some(RefreshToken::new(format!("rt-{i}"))),
            refresh_expires_at_ms: None,
        };
        apply_success(&mut s, answer, T0, 0.0);
    }
    let spent = &s.spent_refresh_fps;
    assert_eq!(spent.len(), SPENT_MEMORY);
    assert_eq!(spent.last(), Some(&RefreshToken::new("rt-298").fingerprint()), "the token rotated away last");
    assert!(!spent.contains(&RefreshToken::new("rt-boot").fingerprint()), "the oldest forgotten first");
    assert!(spent.contains(&RefreshToken::new("rt-100").fingerprint()));
}

#[test]
fn a_refresh_answer_without_a_new_refresh_token_may_still_date_the_one_held() {
    let mut s = seeded(15 * DAY);
    let answer = TokenAnswer {
        access_token: AccessToken::new("at-2"),
        access_expires_at_ms: T0 + 16 * DAY,
        refresh_token: None,
        refresh_expires_at_ms: Some(T0 + 20 * DAY),
    };
    apply_success(&mut s, answer, T0 + DAY, 0.0);
    let r = s.refresh.as_ref().unwrap();
    assert_eq!((r.token.fingerprint(), r.expires_at_ms, r.expiry_known), (RefreshToken::new("rt-1").fingerprint(), T0 + 20 * DAY, true));
}

/// `retry_at` (`GET /v1/token`) is the latest of what holds refreshes back,
/// and the loop guard holds back only the replacement of a rejected token:
/// confirmed rejections still inside the hour say nothing while a usable
/// token is held (no `retry_at`), nor against refreshing one that merely
/// expired.
#[test]
fn retry_at_is_the_latest_hold_and_the_loop_guard_needs_a_rejected_token() {
    let p = policy();
    let now = T0 + 2 * DAY;
    let mut s = seeded(15 * DAY);
    s.confirmed_rejections_ms = (1..=11).map(|i| now - i * 60_000).collect();
    assert!(check::guard(&s, now).is_some(), "eleven within the hour");
    assert!(status_json(&s, now, &p)["retry_at"].is_null(), "a usable token: nothing holds it back");
    assert_eq!(plan(&s, Trigger::Request, now, &p), Plan::Serve);
    // Expired, not rejected: refreshed now, not paused by the guard.
    let mut e = seeded(DAY);
    e.confirmed_rejections_ms = (1..=11).map(|i| T0 + DAY - i * 60_000).collect();
    assert_eq!(plan(&e, Trigger::Request, T0 + DAY, &p), Plan::RefreshThenServe);
    // Rejected: the guard holds, and says until when.
    mark_rejected(&mut s, &AccessToken::new("at-1").fingerprint());
    let until = now - 11 * 60_000 + check::GUARD_WINDOW_MS;
    assert!(matches!(plan(&s, Trigger::Request, now, &p), Plan::Refuse(Refusal::LoopGuard { .. })));
    assert_eq!(status_json(&s, now, &p)["retry_at"], rfc3339(until));
    // A penalty and a backoff: the later of the holds.
    let mut h = seeded(15 * DAY);
    h.penalty_until_ms = Some(now + 60_000);
    h.next_attempt_at_ms = Some(now + 900_000);
    assert_eq!(status_json(&h, now, &p)["retry_at"], rfc3339(now + 900_000));
    h.penalty_until_ms = Some(now + 1_000_000);
    assert_eq!(status_json(&h, now, &p)["retry_at"], rfc3339(now + 1_000_000));
}

/// An isolate's cached token is looked at again no later than it expires
/// (inside the early window too), and no later than the last minutes
/// begin, even where the early window is shorter than them
/// (`TOKEN_EARLY_REFRESH_SECS` 0 is allowed).
#[test]
fn recheck_points_never_pass_the_expiry_or_the_last_minutes() {
    let s = seeded(15 * DAY);
    let p = policy();
    assert_eq!(s.recheck_at_ms(T0 + 15 * DAY - 10_000, &p), T0 + 15 * DAY, "expires in 10 s");
    let no_early = TokenPolicy { early_refresh_secs: 0, ..policy() };
    assert_eq!(s.recheck_at_ms(T0, &no_early), T0 + 15 * DAY - 300_000);
}

/// The minimum interval is a minimum: a minute after the last refresh,
/// exactly, the last minutes refresh again.
#[test]
fn the_minimum_interval_ends_at_its_last_millisecond() {
    let mut s = seeded(DAY);
    let p = policy();
    let just = T0 + DAY - 200_000;
    s.last_refresh_at_ms = Some(just - 60_000);
    assert_eq!(plan(&s, Trigger::Request, just, &p), Plan::RefreshThenServe);
    assert_eq!(plan(&s, Trigger::Request, just - 1, &p), Plan::Serve);
}

/// The same refresh token handed back with a new expiry: the answer's
/// expiry is the one kept, not the one known before.
#[test]
fn an_answer_repeating_the_refresh_token_with_an_expiry_dates_it_anew() {
    let mut s = seeded(15 * DAY);
    let answer = TokenAnswer {
        access_token: AccessToken::new("at-2"),
        access_expires_at_ms: T0 + 16 * DAY,
        refresh_token: Some(RefreshToken::new("rt-1")),
        refresh_expires_at_ms: Some(T0 + 40 * DAY),
    };
    apply_success(&mut s, answer, T0 + DAY, 0.0);
    let r = s.refresh.as_ref().unwrap();
    assert_eq!((r.expires_at_ms, r.expiry_known), (T0 + 40 * DAY, true));
}

/// A dead refresh token ends any backoff: nothing refreshes by itself
/// any more, so `GET /v1/token` shows no `retry_at` (the operator's new
/// token is what comes next).
#[test]
fn reauth_required_shows_no_retry_at() {
    let mut s = seeded(15 * DAY);
    let p = policy();
    apply_failure(&mut s, false, "refresh failed: HTTP 503".into(), T0 + DAY, 1.0, &p);
    assert_eq!(status_json(&s, T0 + DAY, &p)["retry_at"], rfc3339(T0 + DAY + 30_000));
    apply_failure(&mut s, true, "refresh token rejected: HTTP 400 invalid_grant".into(), T0 + DAY + 1, 1.0, &p);
    assert_eq!(s.next_attempt_at_ms, None);
    assert!(status_json(&s, T0 + DAY + 1, &p)["retry_at"].is_null());
}

/// A successful refresh (a forced one, say, during a backoff) ends the
/// backoff and draws the new token's own jitter.
#[test]
fn a_success_ends_the_backoff_and_draws_a_new_jitter() {
    let mut s = seeded(15 * DAY);
    let p = policy();
    apply_failure(&mut s, false, "refresh failed: HTTP 503".into(), T0 + DAY, 1.0, &p);
    assert_eq!(s.next_attempt_at_ms, Some(T0 + DAY + 30_000));
    let answer = TokenAnswer {
        access_token: AccessToken::new("at-2"),
        access_expires_at_ms: T0 + 16 * DAY,
        refresh_token: Some(RefreshToken::new("rt-2")),
        refresh_expires_at_ms: None,
    };
    apply_success(&mut s, answer, T0 + DAY + 1, 0.5);
    assert_eq!((s.next_attempt_at_ms, s.jitter), (None, 0.5));
    assert!(status_json(&s, T0 + DAY + 2, &p)["retry_at"].is_null());
}

/// `GET /v1/token` says when the refresh token held expires.
#[test]
fn status_shows_the_refresh_token_expiry() {
    let s = seeded(15 * DAY);
    assert_eq!(status_json(&s, T0, &policy())["refresh_token_expires_at"], rfc3339(T0 + 30 * DAY));
}

/// A failed refresh whose next attempt is unknown invents no
/// `Retry-After`; a known one is at least a second.
#[test]
fn a_refresh_failure_without_a_known_retry_sends_no_retry_after() {
    for r in [
        Refusal::RefreshFailed { message: "f".into(), retry_after_secs: None },
        Refusal::RefreshTimedOut { message: "t".into(), retry_after_secs: None },
    ] {
        assert_eq!(r.api_error().retry_after_secs, None, "{r:?}");
    }
    assert_eq!(Refusal::RefreshFailed { message: "f".into(), retry_after_secs: Some(0) }.api_error().retry_after_secs, Some(1));
}

/// Refreshing backs off: callers get 502 with `Retry-After` saying when
/// the next attempt is.
#[test]
fn the_backoff_refusal_says_when_to_retry() {
    let e = Refusal::Backoff { retry_after_secs: 15 }.api_error();
    assert_eq!((e.status, e.code.as_str(), e.retry_after_secs), (502, "upstream_error", Some(15)));
}

/// `mark_rejected` is compare-and-replace: another token's fingerprint
/// leaves the one held usable.
#[test]
fn mark_rejected_leaves_another_token_alone() {
    let mut s = seeded(15 * DAY);
    assert!(!mark_rejected(&mut s, &AccessToken::new("at-0").fingerprint()));
    assert!(s.access_usable(T0 + 1000));
}

/// A fingerprint remembered twice takes one place of the 256.
#[test]
fn a_spent_token_is_remembered_once() {
    let mut s = AuthorityState::default();
    remember_spent(&mut s, "fp-1".into());
    remember_spent(&mut s, "fp-1".into());
    assert_eq!(s.spent_refresh_fps, vec!["fp-1".to_string()]);
}
