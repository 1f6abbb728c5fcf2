use super::*;
use crate::secret::{AccessToken, RefreshToken};
use crate::token::{AccessSlot, RefreshSlot};
use serde_json::{json, Value};

const T0: i64 = 1_795_626_582_000;
const DAY: i64 = 86_400_000;

fn policy() -> AlertPolicy {
    AlertPolicy { webhook: true, refresh_failures: 3, balance_below: Some(1000.0), deployment: "rewards-prod".into() }
}

fn healthy() -> AuthorityState {
    AuthorityState {
        access: Some(AccessSlot { token: AccessToken::new("at-SECRET"), expires_at_ms: T0 + 10 * DAY, obtained_at_ms: T0, rejected: false }),
        refresh: Some(RefreshSlot { token: RefreshToken::new("rt-SECRET"), expires_at_ms: T0 + 30 * DAY, expiry_known: true }),
        refresh_count: 1,
        last_refresh_at_ms: Some(T0),
        ..Default::default()
    }
}

fn review_at(s: &mut AuthorityState, now: i64) -> Option<Raised> {
    review(s, now, &policy(), &TokenPolicy::default())
}

/// The newest body in the outbox, parsed.
fn newest(s: &AuthorityState) -> Value {
    serde_json::from_str(s.alert_outbox.last().expect("an alert waits")).expect("JSON")
}

fn assert_no_secret(s: &AuthorityState) {
    let text = serde_json::to_string(s).unwrap();
    let alerts: Vec<&String> = s.alert_outbox.iter().collect();
    let alerts = format!("{alerts:?} {:?} {:?}", s.alert_error, s.alert_last_event);
    assert!(!alerts.contains("at-SECRET") && !alerts.contains("rt-SECRET"), "{alerts}");
    assert!(text.contains("at-SECRET"), "the state itself does hold the token");
}

fn raise_reauth(s: &mut AuthorityState, now: i64) -> Raised {
    s.reauth_reason = Some("refresh token rejected: HTTP 400 invalid_grant".into());
    s.alert_condition = None;
    review_at(s, now).expect("an alert")
}

#[test]
fn token_condition_every_arm_in_order() {
    let p = policy();
    let mut s = healthy();
    assert_eq!(token_condition(&s, T0, &p), None);
    s.consecutive_failures = 2;
    assert_eq!(token_condition(&s, T0, &p), None, "under ALERT_REFRESH_FAILURES");
    s.consecutive_failures = 3;
    assert_eq!(token_condition(&s, T0, &p), Some(Condition::RefreshFailing));
    // Eleven confirmed rejections within the hour, the current token one of them.
    s.confirmed_rejections_ms = (0..11).map(|i| T0 - 3_000_000 + i * 1_000).collect();
    assert_eq!(token_condition(&s, T0, &p), Some(Condition::RefreshFailing), "the current token is not rejected: no guard");
    s.access.as_mut().unwrap().rejected = true;
    assert_eq!(token_condition(&s, T0, &p), Some(Condition::TokensRejected), "the loop guard before failures");
    assert_eq!(token_condition(&s, T0 + 600_001, &p), Some(Condition::RefreshFailing), "the oldest left the window: the guard let go");
    // ... or twenty-five within a day, however spread out (one every 50 minutes).
    s.confirmed_rejections_ms = (0..25).map(|i| T0 - 86_000_000 + i * 3_000_000).collect();
    assert_eq!(token_condition(&s, T0, &p), Some(Condition::TokensRejected), "the daily rule");
    assert_eq!(token_condition(&s, T0 + 400_000, &p), Some(Condition::RefreshFailing), "the oldest left the day");
    s.credentials_rejected_fp = Some("cfp".into());
    assert_eq!(token_condition(&s, T0, &p), Some(Condition::CredentialsRejected), "credentials before the guard");
    s.reauth_reason = Some("dead".into());
    assert_eq!(token_condition(&s, T0, &p), Some(Condition::ReauthRequired), "a dead refresh token first");
    // Raised at 3, it holds with ALERT_REFRESH_FAILURES raised to 10 until a refresh succeeds.
    let mut f = healthy();
    f.consecutive_failures = 5;
    f.alert_condition = Some("refresh_failing".into());
    let ten = AlertPolicy { refresh_failures: 10, ..p.clone() };
    assert_eq!(token_condition(&f, T0, &ten), Some(Condition::RefreshFailing), "not recovered by a higher threshold");
    f.consecutive_failures = 0;
    assert_eq!(token_condition(&f, T0, &ten), None, "a refresh succeeded");
    f.consecutive_failures = 5;
    f.alert_condition = None;
    assert_eq!(token_condition(&f, T0, &ten), None, "never raised: under the threshold");
    // A value the operator set and not yet proven holds an open condition.
    let mut held = healthy();
    held.refresh_proof_due = true;
    assert_eq!(token_condition(&held, T0, &p), None, "nothing open, nothing held");
    held.alert_condition = Some("credentials_rejected".into());
    assert_eq!(token_condition(&held, T0, &p), Some(Condition::CredentialsRejected));
    let zero = AlertPolicy { refresh_failures: 0, ..p };
    assert_eq!(token_condition(&AuthorityState::default(), T0, &zero), None, "a threshold of 0 counts as 1");
    for c in Condition::ALL {
        assert_eq!(Condition::from_name(c.as_str()), Some(c));
    }
    assert_eq!(Condition::from_name("paused"), None);
}

#[test]
fn reauth_required_fires_once_then_resolves_once() {
    let mut s = healthy();
    assert_eq!(review_at(&mut s, T0), None, "healthy: nothing");
    assert!(s.alert_outbox.is_empty() && s.alert_condition.is_none() && last_alert(&s).is_none());

    s.reauth_reason = Some("refresh token rejected: HTTP 400 invalid_grant".into());
    s.last_error = s.reauth_reason.clone();
    let raised = review_at(&mut s, T0 + 1000).expect("an alert");
    assert_eq!(raised, Raised { event: "reauth_required", state: FIRING, deliver: true });
    assert_eq!(s.alert_condition.as_deref(), Some("reauth_required"));
    let b = newest(&s);
    assert_eq!(b["event"], "reauth_required");
    assert_eq!(b["state"], "firing");
    assert_eq!(b["at"], crate::time::rfc3339(T0 + 1000));
    assert_eq!(b["deployment"], "rewards-prod");
    assert_eq!(b["token_state"], "reauth_required");
    let message = b["message"].as_str().unwrap();
    assert!(message.contains("invalid_grant") && message.contains("XOXODAY_REFRESH_TOKEN"), "{message}");
    // How long callers are still served: the operator's deadline, the
    // access token's expiry (README: a valid access token is served).
    let until = crate::time::rfc3339(T0 + 10 * DAY);
    assert!(
        message.ends_with(&format!(". Calls are served with the current access token until {until} at the latest, then get 503 reauth_required.")),
        "{message}"
    );
    assert_eq!(b["text"], format!("plumgate [rewards-prod] ALERT reauth_required: {message}"));
    for absent in ["replaces", "failures", "balance", "threshold"] {
        assert!(b.get(absent).is_none(), "{absent} in {b}");
    }
    assert_eq!((s.alert_attempts, s.alert_next_at_ms, s.alert_error.as_deref()), (0, Some(T0 + 1000), None));
    let view = last_alert(&s).unwrap();
    assert_eq!((view.event.as_str(), view.state.as_str(), view.at.as_str()), ("reauth_required", "firing", b["at"].as_str().unwrap()));
    assert_eq!((view.delivered, view.attempts, view.next_attempt_at), (false, 0, Some(crate::time::rfc3339(T0 + 1000))));

    // While the state holds: no repeat, however often it is reviewed.
    for i in 0..5 {
        assert_eq!(review_at(&mut s, T0 + 2000 + i), None);
    }
    assert_eq!(s.alert_outbox.len(), 1);

    // The operator sets a new refresh token: the same condition, resolved.
    s.reauth_reason = None;
    let raised = review_at(&mut s, T0 + 60_000).expect("the recovery alert");
    assert_eq!(raised, Raised { event: "reauth_required", state: RESOLVED, deliver: true });
    assert!(s.alert_condition.is_none());
    let b = newest(&s);
    assert_eq!((b["event"].as_str(), b["state"].as_str()), (Some("reauth_required"), Some("resolved")));
    assert_eq!(b["token_state"], "fresh");
    assert!(b["text"].as_str().unwrap().starts_with("plumgate [rewards-prod] RESOLVED reauth_required: No longer reauth_required"));
    assert!(b.get("replaces").is_none());
    assert_eq!(review_at(&mut s, T0 + 61_000), None);
    assert_eq!(s.alert_outbox.len(), 2, "both wait, in order");
    assert_no_secret(&s);
}

#[test]
fn refresh_failures_fire_at_the_threshold_and_resolve_on_success() {
    let mut s = healthy();
    s.last_error = Some("refresh failed: HTTP 503 server_error".into());
    for n in 1..3 {
        s.consecutive_failures = n;
        assert_eq!(review_at(&mut s, T0), None, "{n} failures");
    }
    s.consecutive_failures = 3;
    s.next_attempt_at_ms = Some(T0 + 90_000);
    let raised = review_at(&mut s, T0).unwrap();
    assert_eq!((raised.event, raised.state), ("refresh_failing", FIRING));
    let b = newest(&s);
    assert_eq!(b["failures"], 3);
    assert_eq!(b["token_state"], "fresh", "the access token is still served");
    let message = b["message"].as_str().unwrap();
    assert!(message.starts_with("3 token refresh runs failed in a row (ALERT_REFRESH_FAILURES is 3)"), "{message}");
    assert!(message.contains("HTTP 503") && message.contains(&crate::time::rfc3339(T0 + 90_000)), "{message}");
    assert!(message.contains("next attempt with the first cron run after"), "a fresh token is retried by the cron: {message}");
    assert!(message.ends_with("serves the current access token while it is valid (token state: fresh)."), "{message}");
    // With no usable access token, it says what callers get instead.
    let mut gone = healthy();
    (gone.last_error, gone.consecutive_failures, gone.next_attempt_at_ms) = (s.last_error.clone(), 3, Some(T0 + 90_000));
    gone.access.as_mut().unwrap().rejected = true;
    review_at(&mut gone, T0).unwrap();
    let message = newest(&gone)["message"].as_str().unwrap().to_string();
    assert!(message.contains("next attempt at "), "{message}");
    assert!(message.ends_with("has no usable access token meanwhile: calls answer 502, 504 or, under a refresh penalty, 429 (token state: expired)."), "{message}");
    s.consecutive_failures = 4;
    assert_eq!(review_at(&mut s, T0 + 1), None, "more failures: the same condition");
    s.consecutive_failures = 0;
    s.last_error = None;
    let raised = review_at(&mut s, T0 + 2).unwrap();
    assert_eq!((raised.event, raised.state), ("refresh_failing", RESOLVED));
    let b = newest(&s);
    assert!(b.get("failures").is_none());
    assert!(b["message"].as_str().unwrap().starts_with("Token refresh recovered"));
}

#[test]
fn a_condition_replacing_another_says_so_and_credentials_resolve() {
    let mut s = healthy();
    s.consecutive_failures = 3;
    assert_eq!(review_at(&mut s, T0).unwrap().event, "refresh_failing");
    s.reauth_reason = Some("refresh token rejected: HTTP 400 invalid_grant".into());
    let raised = review_at(&mut s, T0 + 1).unwrap();
    assert_eq!((raised.event, raised.state), ("reauth_required", FIRING));
    assert_eq!(newest(&s)["replaces"], "refresh_failing");

    let mut s = healthy();
    s.credentials_rejected_fp = Some("cfp".into());
    s.last_error = Some("client credentials rejected: HTTP 401 invalid_client".into());
    let raised = review_at(&mut s, T0).unwrap();
    assert_eq!((raised.event, raised.state), ("credentials_rejected", FIRING));
    let b = newest(&s);
    assert!(b["message"].as_str().unwrap().contains("XOXODAY_CLIENT_SECRET"));
    let until = crate::time::rfc3339(T0 + 10 * DAY);
    assert!(b["message"].as_str().unwrap().ends_with(&format!("change. Calls are served with the current access token until {until} at the latest, then get 503 credentials_rejected.")), "{b}");
    assert_eq!(b["token_state"], "credentials_rejected");
    s.credentials_rejected_fp = None;
    let raised = review_at(&mut s, T0 + 1).unwrap();
    assert_eq!((raised.event, raised.state), ("credentials_rejected", RESOLVED));
    let resolved = newest(&s)["message"].as_str().unwrap().to_owned();
    assert!(resolved.starts_with("No longer credentials_rejected"));
    // A forced refresh that passed with the same secrets clears it too
    // (README: If the secrets were right): the message names that way, not
    // only a change of secrets the operator never made.
    assert!(resolved.contains("forced refresh"), "{resolved}");
}

#[test]
fn an_alert_ends_only_once_what_the_operator_set_has_refreshed() {
    use crate::token::{adopt_bootstrap, adopt_credentials, apply_failure, apply_success, TokenAnswer};
    let tp = TokenPolicy::default();
    let answer = || TokenAnswer { access_token: AccessToken::new("at-2"), access_expires_at_ms: T0 + 15 * DAY, refresh_token: Some(RefreshToken::new("rt-2")), refresh_expires_at_ms: None };
    // reauth_required, then a new XOXODAY_REFRESH_TOKEN: taken into use
    // (tried at once), not yet proven: nothing raised, still firing.
    let mut s = healthy();
    raise_reauth(&mut s, T0);
    assert!(adopt_bootstrap(&mut s, &RefreshToken::new("rt-new"), None, T0 + 1000).adopted_refresh);
    assert_eq!(review_at(&mut s, T0 + 1000), None);
    assert_eq!(s.alert_condition.as_deref(), Some("reauth_required"));
    // Refused: reauth_required again, the same condition: nothing new.
    let mut refused = s.clone();
    apply_failure(&mut refused, true, "refresh token rejected: HTTP 400 invalid_token".into(), T0 + 2000, 0.0, &tp);
    assert_eq!(review_at(&mut refused, T0 + 2000), None);
    // Failing for other reasons: refresh_failing replaces it at the threshold.
    let mut failing = s.clone();
    for i in 1..=3 {
        apply_failure(&mut failing, false, "refresh failed: HTTP 503".into(), T0 + i * 1000, 0.0, &tp);
        let raised = review_at(&mut failing, T0 + i * 1000).map(|r| (r.event, r.state));
        assert_eq!(raised, (i == 3).then_some(("refresh_failing", FIRING)), "failure {i}");
    }
    assert_eq!(newest(&failing)["replaces"], "reauth_required");
    // Its refresh passes: resolved, and it says how.
    apply_success(&mut s, answer(), T0 + 3000, 0.0);
    let raised = review_at(&mut s, T0 + 3000).unwrap();
    assert_eq!((raised.event, raised.state), ("reauth_required", RESOLVED));
    let b = newest(&s);
    assert_eq!(b["token_state"], "fresh");
    assert_eq!(b["message"], "No longer reauth_required: a refresh with the new XOXODAY_REFRESH_TOKEN or client id/secret passed (token state: fresh).");
    // credentials_rejected, then a new client secret: the same.
    let mut c = healthy();
    c.credentials_rejected_fp = Some("cfp".into());
    assert_eq!(review_at(&mut c, T0).unwrap().state, FIRING);
    assert!(adopt_credentials(&mut c, "cfp-2"));
    assert_eq!(review_at(&mut c, T0 + 1), None, "not yet proven");
    apply_success(&mut c, answer(), T0 + 2, 0.0);
    let raised = review_at(&mut c, T0 + 2).unwrap();
    assert_eq!((raised.event, raised.state), ("credentials_rejected", RESOLVED));
    // No alert open: a value set in place of a live one raises nothing.
    let mut quiet = healthy();
    adopt_bootstrap(&mut quiet, &RefreshToken::new("rt-new"), None, T0);
    assert!(quiet.refresh_proof_due);
    assert_eq!(review_at(&mut quiet, T0), None);
}

#[test]
fn without_a_webhook_alerts_are_recorded_not_sent() {
    let p = AlertPolicy { webhook: false, ..policy() };
    let mut s = healthy();
    s.reauth_reason = Some("dead".into());
    let raised = review(&mut s, T0, &p, &TokenPolicy::default()).unwrap();
    assert!(!raised.deliver);
    assert!(s.alert_outbox.is_empty());
    assert_eq!((next_delivery(&s, T0 + DAY), next_due_ms(&s)), (None, None));
    let view = last_alert(&s).unwrap();
    assert_eq!((view.event.as_str(), view.delivered, view.attempts, view.next_attempt_at), ("reauth_required", false, 0, None));
    assert_eq!(view.error.as_deref(), Some(NOT_CONFIGURED));
    // Alerts that waited when the webhook was unset are not sent either.
    let mut s = healthy();
    raise_reauth(&mut s, T0);
    s.reauth_reason = None;
    review(&mut s, T0 + 1, &p, &TokenPolicy::default()).unwrap();
    assert!(s.alert_outbox.is_empty());
    assert_eq!(last_alert(&s).unwrap().error.as_deref(), Some(NOT_CONFIGURED));
}

#[test]
fn a_condition_name_this_version_does_not_know_counts_as_none() {
    let mut s = healthy();
    s.alert_condition = Some("paused".into());
    assert_eq!(review_at(&mut s, T0), None, "healthy and nothing known alerted: nothing");
    s.reauth_reason = Some("dead".into());
    assert_eq!(review_at(&mut s, T0).unwrap().event, "reauth_required");
}

#[test]
fn balance_crossings_fire_once_and_resolve() {
    let p = policy();
    let mut s = healthy();
    let seen = |value, at| BalanceSeen { value, seen_at_ms: at };
    // Two reports seen in the same millisecond: the second applies too.
    let mut same = healthy();
    assert_eq!(observe_balance(&mut same, seen(5000.0, T0), T0, &p), (true, None));
    assert!(observe_balance(&mut same, seen(10.0, T0), T0, &p).1.is_some(), "a crossing in the same millisecond alerts");
    // First view, above the threshold: recorded, no alert.
    assert_eq!(observe_balance(&mut s, seen(5000.0, T0), T0, &p), (true, None));
    assert_eq!(s.alert_balance_seen_at_ms, Some(T0));
    // Exactly at the threshold is not below it.
    assert_eq!(observe_balance(&mut s, seen(1000.0, T0 + 1), T0 + 1, &p), (true, None));
    // Below: one alert.
    let (changed, raised) = observe_balance(&mut s, seen(950.5, T0 + 2), T0 + 2, &p);
    let raised = raised.unwrap();
    assert!(changed && s.alert_balance_low);
    assert_eq!((raised.event, raised.state), ("balance_low", FIRING));
    let b = newest(&s);
    assert_eq!((b["balance"].as_f64(), b["threshold"].as_f64()), (Some(950.5), Some(1000.0)));
    assert!(b.get("token_state").is_none());
    assert!(b["message"].as_str().unwrap().contains("950.5, below BALANCE_ALERT_BELOW (1000)"), "{b}");
    // Still below, from any isolate: no repeat.
    assert_eq!(observe_balance(&mut s, seen(10.0, T0 + 3), T0 + 3, &p), (true, None));
    // A report seen before the newest one applied (another isolate, late): ignored.
    assert_eq!(observe_balance(&mut s, seen(5000.0, T0 + 1), T0 + 4, &p), (false, None));
    assert!(s.alert_balance_low);
    // Not a number: ignored.
    assert_eq!(observe_balance(&mut s, seen(f64::NAN, T0 + 5), T0 + 5, &p), (false, None));
    // Topped up: resolved, once.
    let (_, raised) = observe_balance(&mut s, seen(20_000.0, T0 + 6), T0 + 6, &p);
    let raised = raised.unwrap();
    assert_eq!((raised.event, raised.state), ("balance_low", RESOLVED));
    assert!(newest(&s)["message"].as_str().unwrap().contains("back at 20000"));
    assert_eq!(observe_balance(&mut s, seen(20_000.0, T0 + 7), T0 + 7, &p), (true, None));
    // Off: nothing recorded.
    let off = AlertPolicy { balance_below: None, ..p.clone() };
    assert_eq!(observe_balance(&mut s, seen(1.0, T0 + 8), T0 + 8, &off), (false, None));
    assert_eq!(s.alert_balance_seen_at_ms, Some(T0 + 7));
    // An isolate whose clock runs ahead does not block the next reports.
    observe_balance(&mut s, seen(20_000.0, T0 + DAY), T0 + 9, &p);
    assert_eq!(s.alert_balance_seen_at_ms, Some(T0 + 9));
    assert!(observe_balance(&mut s, seen(5.0, T0 + 10), T0 + 10, &p).1.is_some());
    // Balance alerts and the token condition are independent.
    assert!(s.alert_condition.is_none());
    // Firing, then BALANCE_ALERT_BELOW unset: no balance is looked at any
    // more, so the next review resolves it, once, saying why.
    assert!(s.alert_balance_low);
    assert_eq!(review_at(&mut s, T0 + 11), None, "still watched: nothing");
    let raised = review(&mut s, T0 + 12, &off, &TokenPolicy::default()).unwrap();
    assert_eq!((raised.event, raised.state), ("balance_low", RESOLVED));
    assert!(!s.alert_balance_low);
    let b = newest(&s);
    assert!(b["message"].as_str().unwrap().starts_with("BALANCE_ALERT_BELOW is no longer set"), "{b}");
    assert!(b.get("balance").is_none() && b.get("threshold").is_none(), "{b}");
    assert_eq!(review(&mut s, T0 + 13, &off, &TokenPolicy::default()), None, "once");
}

#[test]
fn an_isolate_reports_its_first_view_each_crossing_and_its_side_again_after_a_while() {
    let below = Some(1000.0);
    assert_eq!(balance_report(None, 5.0, None, T0), None, "off");
    assert_eq!(balance_report(below, 5000.0, None, T0), Some(false), "first view");
    assert_eq!(balance_report(below, 4000.0, Some((false, T0)), T0 + 1), None, "same side");
    assert_eq!(balance_report(below, 999.0, Some((false, T0)), T0 + 1), Some(true), "crossed below");
    assert_eq!(balance_report(below, 10.0, Some((true, T0)), T0 + 1), None);
    assert_eq!(balance_report(below, 1000.0, Some((true, T0)), T0 + 1), Some(false), "at the threshold: not below");
    // Another isolate may have reported a top-up since: the same side is
    // reported again once this isolate's report is five minutes old.
    assert_eq!(balance_report(below, 10.0, Some((true, T0)), T0 + BALANCE_REPORT_EVERY_MS - 1), None);
    assert_eq!(balance_report(below, 10.0, Some((true, T0)), T0 + BALANCE_REPORT_EVERY_MS), Some(true));
    assert_eq!(balance_report(below, 10.0, Some((true, T0)), T0 - 1), Some(true), "a clock gone back");
}

#[test]
fn a_drain_after_another_isolates_top_up_still_fires() {
    // Isolate A reported "low", isolate B then "high" (resolved); A, still
    // remembering "low", sees the wallet drained again later.
    let p = AlertPolicy { balance_below: Some(1000.0), ..policy() };
    let mut s = healthy();
    let seen = |value: f64, at: i64| BalanceSeen { value, seen_at_ms: at };
    assert_eq!(balance_report(p.balance_below, 900.0, None, T0), Some(true));
    assert_eq!(observe_balance(&mut s, seen(900.0, T0), T0, &p).1.map(|r| r.state), Some(FIRING));
    assert_eq!(observe_balance(&mut s, seen(5000.0, T0 + 60_000), T0 + 60_000, &p).1.map(|r| r.state), Some(RESOLVED));
    let later = T0 + BALANCE_REPORT_EVERY_MS + 1;
    assert_eq!(balance_report(p.balance_below, 800.0, Some((true, T0)), later), Some(true), "A reports again");
    assert_eq!(observe_balance(&mut s, seen(800.0, later), later, &p).1.map(|r| r.state), Some(FIRING));
}

#[test]
fn deliveries_go_out_in_order_when_due() {
    let mut s = healthy();
    raise_reauth(&mut s, T0);
    s.reauth_reason = None;
    review_at(&mut s, T0 + 10).unwrap();
    assert_eq!(next_due_ms(&s), Some(T0));
    assert_eq!(next_delivery(&s, T0 - 1), None, "not yet");
    // Handed over to a per-account authority: that one delivers; here nothing.
    let mut retired = s.clone();
    retired.retired_to = Some("account:a".into());
    assert_eq!((next_delivery(&retired, T0 + 10), next_due_ms(&retired)), (None, None));
    assert_eq!(retired.alert_outbox, s.alert_outbox, "kept for a repeated hand-over");
    let first = next_delivery(&s, T0 + 10).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&first).unwrap()["state"], "firing");
    // The last alert waits behind the first: no attempts of its own yet.
    let view = last_alert(&s).unwrap();
    assert_eq!((view.state.as_str(), view.attempts, view.error), ("resolved", 0, None));
    // The first fails: the second (due) waits behind it.
    let failed = Attempt::Failed("the receiver answered HTTP 500".into());
    assert_eq!(after_attempt(&mut s, &first, &failed, T0 + 20, 1.0), AfterAttempt::Retry(T0 + 5_020));
    assert_eq!(next_delivery(&s, T0 + 30), None, "the resolved alert never overtakes the firing one");
    assert_eq!(next_due_ms(&s), Some(T0 + 5_020));
    assert_eq!(last_alert(&s).unwrap().next_attempt_at, Some(crate::time::rfc3339(T0 + 5_020)));
    assert_eq!(after_attempt(&mut s, &first, &Attempt::Accepted, T0 + 5_100, 0.0), AfterAttempt::Delivered);
    // The second is next, at once, with fresh counters.
    let second = next_delivery(&s, T0 + 5_100).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&second).unwrap()["state"], "resolved");
    assert_eq!((s.alert_attempts, s.alert_error.as_deref()), (0, None));
    assert!(!last_alert(&s).unwrap().delivered, "the last alert is not the delivered one");
    assert_eq!(after_attempt(&mut s, &first, &Attempt::Accepted, T0 + 5_150, 0.0), AfterAttempt::Gone, "not the one waiting");
    assert_eq!(after_attempt(&mut s, &second, &failed, T0 + 5_200, 0.0), AfterAttempt::Retry(T0 + 7_700));
    assert_eq!(after_attempt(&mut s, &second, &Attempt::Accepted, T0 + 7_700, 0.0), AfterAttempt::Delivered);
    assert_eq!((next_delivery(&s, T0 + DAY), next_due_ms(&s)), (None, None));
    let view = last_alert(&s).unwrap();
    assert_eq!((view.event.as_str(), view.state.as_str(), view.delivered, view.attempts), ("reauth_required", "resolved", true, 2));
    assert_eq!((view.error, view.next_attempt_at), (None, None));
    assert!(s.alert_outbox.is_empty(), "no body is kept once delivered");
    // A new alert after a delivered one is not delivered until its own
    // attempt is accepted.
    raise_reauth(&mut s, T0 + DAY);
    let view = last_alert(&s).unwrap();
    assert_eq!((view.event.as_str(), view.state.as_str(), view.delivered), ("reauth_required", "firing", false));
}

#[test]
fn after_attempt_every_arm() {
    // Failures: backoff, the error shown, then given up after 24 h.
    let mut s = healthy();
    raise_reauth(&mut s, T0);
    let body = next_delivery(&s, T0).unwrap();
    let why = Attempt::Failed("no answer (connection failed)".into());
    let mut now = T0;
    let mut waits = Vec::new();
    loop {
        match after_attempt(&mut s, &body, &why, now, 1.0) {
            AfterAttempt::Retry(at) => {
                assert_eq!(s.alert_attempts as usize, waits.len() + 1);
                let view = last_alert(&s).unwrap();
                assert_eq!(view.error.as_deref(), Some("no answer (connection failed)"));
                assert_eq!(view.next_attempt_at, Some(crate::time::rfc3339(at)));
                assert!(!view.delivered);
                waits.push(at - now);
                now = at;
            }
            AfterAttempt::GaveUp => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(&waits[..5], &[5_000, 10_000, 20_000, 40_000, 80_000]);
    assert!(waits.iter().all(|w| *w <= RETRY_MAX_MS as i64));
    assert!(now <= T0 + GIVE_UP_MS && now > T0 + GIVE_UP_MS - RETRY_MAX_MS as i64, "tried for a day");
    let view = last_alert(&s).unwrap();
    assert_eq!(view.attempts as usize, waits.len() + 1);
    assert!(view.error.unwrap().starts_with("given up after 24 h: no answer"));
    assert_eq!((view.next_attempt_at, view.delivered), (None, false));
    assert_eq!(next_delivery(&s, now + DAY), None);
    // Once finished, another report about it changes nothing.
    assert_eq!(after_attempt(&mut s, &body, &Attempt::Accepted, now, 0.0), AfterAttempt::Gone);
    // The webhook was unset meanwhile: not sent.
    let mut s = healthy();
    raise_reauth(&mut s, T0);
    let body = next_delivery(&s, T0).unwrap();
    assert_eq!(after_attempt(&mut s, &body, &Attempt::NotConfigured, T0, 0.0), AfterAttempt::NotSent);
    assert_eq!(last_alert(&s).unwrap().error.as_deref(), Some(NOT_CONFIGURED));
    assert_eq!(next_due_ms(&s), None);
    let names: Vec<&str> = [AfterAttempt::Delivered, AfterAttempt::Retry(1), AfterAttempt::GaveUp, AfterAttempt::NotSent, AfterAttempt::Gone]
        .iter()
        .map(|a| a.as_str())
        .collect();
    assert_eq!(names, ["delivered", "retry", "given_up", "not_sent", "gone"]);
}

#[test]
fn retry_delays_double_with_jitter_up_to_the_cap() {
    assert_eq!(retry_delay_ms(1, 1.0), 5_000);
    assert_eq!(retry_delay_ms(1, 0.0), 2_500);
    assert_eq!(retry_delay_ms(2, 1.0), 10_000);
    assert_eq!(retry_delay_ms(8, 1.0), RETRY_MAX_MS);
    assert_eq!(retry_delay_ms(1000, 1.0), RETRY_MAX_MS, "no overflow");
    assert_eq!(retry_delay_ms(0, 1.0), 5_000);
}

#[test]
fn receivers_accept_with_any_2xx() {
    let answer = |status| Ok(HttpAnswer { status, body: b"{\"token\":\"x\"}".to_vec(), retry_after: None });
    for status in [200, 201, 204, 299] {
        assert_eq!(read_attempt(&answer(status)), Attempt::Accepted, "{status}");
    }
    for status in [300, 301, 400, 404, 429, 500, 503] {
        assert_eq!(read_attempt(&answer(status)), Attempt::Failed(format!("the receiver answered HTTP {status}")));
    }
    assert_eq!(read_attempt(&Err(NoAnswer::Timeout)), Attempt::Failed("no answer within 10 s".into()));
    assert_eq!(read_attempt(&Err(NoAnswer::Transport)), Attempt::Failed("no answer (connection failed)".into()));
}

#[test]
fn at_most_max_pending_undelivered_alerts_are_kept() {
    let mut s = healthy();
    raise_reauth(&mut s, T0);
    let body = next_delivery(&s, T0).unwrap();
    after_attempt(&mut s, &body, &Attempt::Failed("x".into()), T0, 1.0);
    for i in 1..(MAX_PENDING as i64 + 3) {
        s.reauth_reason = if i % 2 == 0 { Some("dead".into()) } else { None };
        review_at(&mut s, T0 + i).unwrap();
    }
    assert_eq!(s.alert_outbox.len(), MAX_PENDING);
    let first: Value = serde_json::from_str(&s.alert_outbox[0]).unwrap();
    assert_eq!(first["at"], crate::time::rfc3339(T0 + 3), "the oldest went first");
    let last: Value = serde_json::from_str(s.alert_outbox.last().unwrap()).unwrap();
    assert_eq!(last["at"], crate::time::rfc3339(T0 + MAX_PENDING as i64 + 2));
    assert_eq!((s.alert_attempts, s.alert_next_at_ms), (0, Some(T0 + MAX_PENDING as i64 + 2)), "the new oldest is due at once");
}

#[test]
fn the_request_posts_json_and_its_debug_shows_no_secret() {
    let url = WebhookUrl::new("https://hooks.example.com/services/T0/B0/SECRET");
    let r = webhook_request(&url, r#"{"text":"x"}"#);
    assert_eq!((r.method, r.url.as_str(), r.body.as_deref()), ("POST", url.expose_secret(), Some(r#"{"text":"x"}"#)));
    assert!(r.headers.contains(&("content-type", "application/json".into())));
    assert!(!format!("{r:?}").contains("SECRET"), "{r:?}");
}

#[test]
fn slack_text_is_escaped_and_every_payload_has_the_fields() {
    let p = AlertPolicy { deployment: "<prod & eu>".into(), ..policy() };
    let mut s = healthy();
    s.credentials_rejected_fp = Some("cfp".into());
    review(&mut s, T0, &p, &TokenPolicy::default()).unwrap();
    let b = newest(&s);
    assert_eq!(b["deployment"], "<prod & eu>");
    assert!(b["text"].as_str().unwrap().starts_with("plumgate [&lt;prod &amp; eu&gt;] ALERT credentials_rejected: "));
    observe_balance(&mut s, BalanceSeen { value: 1.0, seen_at_ms: T0 }, T0, &p).1.unwrap();
    let b = newest(&s);
    for field in ["text", "event", "state", "message", "at", "deployment"] {
        assert!(b[field].is_string(), "{field} in {b}");
    }
    assert_eq!(b, json!({
        "text": b["text"], "event": "balance_low", "state": "firing", "message": b["message"],
        "at": "2026-11-25T17:09:42.000Z", "deployment": "<prod & eu>", "balance": 1.0, "threshold": 1000.0,
    }));
    assert_no_secret(&s);
}

#[test]
fn the_loop_guard_fires_tokens_rejected_once_and_resolves_with_the_next_change_after_it() {
    let mut s = healthy();
    s.confirmed_rejections_ms = (0..11).map(|i| T0 - 3_000_000 + i * 1_000).collect();
    s.access.as_mut().unwrap().rejected = true;
    s.last_error = Some("loop guard: Xoxoday rejected 11 of its access tokens within an hour, so plumgate pauses refreshing until 2026-11-25T17:49:43.000Z".into());
    let r = review_at(&mut s, T0).expect("an alert");
    assert_eq!((r.event, r.state, r.deliver), ("tokens_rejected", FIRING, true));
    let body = newest(&s);
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("Xoxoday keeps rejecting new access tokens (loop guard: Xoxoday rejected 11"), "{text}");
    assert!(text.contains("502 upstream_unauthorized"), "{text}");
    // Only confirmed rejections of the token count: an account refusal
    // (user or company disabled, an IP allowlist) passes through to
    // callers and never reaches the guard, so the alert does not send the
    // operator there.
    assert!(text.contains("whoever regenerates tokens elsewhere") && !text.contains("allowlist"), "{text}");
    assert_eq!(review_at(&mut s, T0 + 1_000), None, "still held: nothing more");
    // The guard's window moved on; the refresh that follows is the next change.
    s.access = healthy().access;
    let r = review_at(&mut s, T0 + 700_000).expect("resolved");
    assert_eq!((r.event, r.state), ("tokens_rejected", RESOLVED));
    assert!(newest(&s)["message"].as_str().unwrap().starts_with("The loop guard let go"), "{}", newest(&s));
    assert_no_secret(&s);
}

/// The Slack escape writes what the three `str::replace` calls it stands
/// for wrote.
#[test]
fn slack_escape_is_the_three_replaces() {
    for t in ["", "&", "<>", "a & b < c > d", "&amp;", "é<é>é&", "no markup", "<<&&>>"] {
        assert_eq!(slack_escape(t), t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"), "{t:?}");
    }
}

/// A stale access token (inside the early window) is still served: the
/// `refresh_failing` message says so and names the next attempt's time,
/// not the cron; one failure is "1 token refresh run".
#[test]
fn refresh_failing_with_a_stale_token_says_it_is_still_served() {
    let mut s = healthy();
    // A day left of the life the last refresh gave: inside the early window.
    (s.access.as_mut().unwrap().expires_at_ms, s.last_refresh_at_ms) = (T0 + DAY, Some(T0 - 10 * DAY));
    (s.consecutive_failures, s.next_attempt_at_ms) = (1, Some(T0 + 90_000));
    let one = AlertPolicy { refresh_failures: 1, ..policy() };
    review(&mut s, T0, &one, &TokenPolicy::default()).unwrap();
    let message = newest(&s)["message"].as_str().unwrap().to_string();
    assert!(message.starts_with("1 token refresh run failed in a row (ALERT_REFRESH_FAILURES is 1)"), "{message}");
    assert!(message.contains(&format!("next attempt at {}", crate::time::rfc3339(T0 + 90_000))), "{message}");
    assert!(message.ends_with("serves the current access token while it is valid (token state: stale)."), "{message}");
}

/// An alert is tried until a retry would come more than `GIVE_UP_MS`
/// after it was first due: a retry exactly then is still made.
#[test]
fn a_retry_due_exactly_a_day_after_the_alert_is_still_made() {
    let mut s = healthy();
    raise_reauth(&mut s, T0);
    let body = next_delivery(&s, T0).unwrap();
    s.alert_attempts = 19;
    let failed = Attempt::Failed("the receiver answered HTTP 500".into());
    let at = T0 + GIVE_UP_MS - RETRY_MAX_MS as i64;
    let mut later = s.clone();
    assert_eq!(after_attempt(&mut s, &body, &failed, at, 1.0), AfterAttempt::Retry(T0 + GIVE_UP_MS));
    assert_eq!(after_attempt(&mut later, &body, &failed, at + 1, 1.0), AfterAttempt::GaveUp);
}

/// While the last alert waits behind an earlier one, `last_alert` shows
/// none of the earlier one's attempts or error as its own, only when the
/// queue is tried next.
#[test]
fn the_last_alert_waiting_behind_another_shows_no_attempts_of_its_own() {
    let mut s = healthy();
    raise_reauth(&mut s, T0);
    s.reauth_reason = None;
    review_at(&mut s, T0 + 10).unwrap();
    let first = next_delivery(&s, T0 + 10).unwrap();
    let failed = Attempt::Failed("the receiver answered HTTP 500".into());
    assert_eq!(after_attempt(&mut s, &first, &failed, T0 + 20, 1.0), AfterAttempt::Retry(T0 + 5_020));
    assert_eq!((s.alert_attempts, s.alert_error.as_deref()), (1, Some("the receiver answered HTTP 500")), "the head's");
    let view = last_alert(&s).unwrap();
    assert_eq!((view.state.as_str(), view.attempts, view.error), ("resolved", 0, None));
    assert_eq!(view.next_attempt_at, Some(crate::time::rfc3339(T0 + 5_020)));
}

/// The deadline in the two alerts that end in `503`: served until the
/// access token's expiry while it is usable; refused now once it is
/// rejected, expired or missing (not "once no valid access token is left",
/// which left the operator to work out which).
#[test]
fn refusing_alerts_say_until_when_calls_are_served() {
    let message = |s: &AuthorityState| newest(s)["message"].as_str().unwrap().to_owned();
    let expires = T0 + 10 * DAY;
    for (condition, code) in [(0, "reauth_required"), (1, "credentials_rejected")] {
        let raise_at = |s: &mut AuthorityState, now: i64| {
            if condition == 0 {
                s.reauth_reason = Some("dead".into());
            } else {
                s.credentials_rejected_fp = Some("cfp".into());
            }
            assert_eq!(review_at(s, now).expect("an alert").event, code);
        };
        let mut s = healthy();
        raise_at(&mut s, expires - 1);
        assert!(message(&s).ends_with(&format!(" until {} at the latest, then get 503 {code}.", crate::time::rfc3339(expires))), "{}", message(&s));
        // At its expiry the token is no longer served (`access_usable`).
        let mut s = healthy();
        raise_at(&mut s, expires);
        assert!(message(&s).ends_with(&format!(". Calls get 503 {code} now.")), "{}", message(&s));
        let mut s = healthy();
        s.access.as_mut().unwrap().rejected = true;
        raise_at(&mut s, T0 + 1);
        assert!(message(&s).ends_with(&format!(". Calls get 503 {code} now.")), "{}", message(&s));
        let mut s = healthy();
        s.access = None;
        raise_at(&mut s, T0 + 1);
        assert!(message(&s).ends_with(&format!(". Calls get 503 {code} now.")), "{}", message(&s));
    }
}
