//! Alerts to the operator's webhook (`ALERT_WEBHOOK_URL`), decided without
//! I/O.
//!
//! Owns: which change fires which alert ([`review`] for the token
//! authority's state, [`observe_balance`] for the wallet balance plumgate
//! sees); that each fires once per change of condition (`firing` when it
//! starts, `resolved` when it clears, nothing while it holds); what is
//! posted (a Slack-compatible `text` and structured fields);
//! when a failed delivery is tried again ([`after_attempt`],
//! [`retry_delay_ms`]); the isolate's side of the balance check
//! ([`balance_report`]); and what `GET /v1/token` shows of the last alert
//! ([`last_alert`]).
//!
//! Where it runs: in the `TokenAuthority` Durable Object, one per Xoxoday
//! account, which is both where the token conditions change and the one
//! place per account that can dedupe what many isolates see of the
//! balance. The alert is part of the authority's state (the `alert_*`
//! fields of [`AuthorityState`]: plain fields, no struct of its own, which
//! would cost the worker's wasm a decoder): it is decided in the same
//! `commit` as the change that causes it and stored in the same write, so
//! no change is stored without its alert. The object's alarm then delivers
//! it ([`next_delivery`], [`after_attempt`]), and retries survive the
//! object's eviction.
//!
//! Conditions (one token condition at a time, in this order of precedence,
//! and the balance beside it):
//! - `reauth_required`: the refresh token is dead;
//! - `credentials_rejected`: Xoxoday rejects the client id/secret;
//! - `tokens_rejected`: the loop guard holds refreshes back (Xoxoday
//!   rejected more than ten of plumgate's access tokens within an hour, or
//!   more than 24 within a day, `token::check`), so callers get `502` until
//!   it lets go; resolved at
//!   the first change after that (usually the refresh that follows);
//! - `refresh_failing`: `ALERT_REFRESH_FAILURES` (default 3) refresh runs
//!   failed in a row (transient failures and rate-limit answers; a success
//!   or a new bootstrap token resets the count, so the condition cannot
//!   flap between the threshold and zero);
//! - `balance_low`: the last balance seen is below `BALANCE_ALERT_BELOW`.
//!   No band around the threshold: the balance only falls with orders and
//!   rises with top-ups, so it crosses once per top-up cycle, and a band
//!   would keep a wallet topped up to just above the threshold "low".
//!
//! When one token condition replaces another (`refresh_failing`, then
//! `reauth_required`), one alert says so: the new one `firing`, with
//! `replaces` naming the old. When the last clears: that one `resolved`.
//!
//! Nothing in an alert comes from a caller or from Xoxoday's answer bodies
//! beyond numbers: the sentences are plumgate's own (`last_error` is the
//! same safe sentence `GET /v1/token` shows), so no token, secret, key or
//! voucher code can be in one.
//!
//! Not here: the alarm, the `fetch` to the webhook and the state's storage
//! (`src/objects/authority.rs`), and the isolate's memory of what it
//! reported (`src/tokens.rs`).

use crate::http::{HttpAnswer, HttpRequest, NoAnswer};
use crate::ops::decimal_text;
use crate::secret::WebhookUrl;
use crate::time::rfc3339;
use crate::token::check::guard_until_ms;
use crate::token::{AuthorityState, TokenPolicy};
use crate::wire::authority::AlertView;
use serde::Serialize;

/// How long one delivery waits for the receiver.
pub const DELIVERY_TIMEOUT_MS: u64 = 10_000;
/// First retry after a failed delivery (doubling, jittered).
pub const RETRY_BASE_MS: u64 = 5_000;
/// Longest wait between two deliveries of one alert.
pub const RETRY_MAX_MS: u64 = 600_000;
/// An alert not delivered within this long after it was raised is given up.
pub const GIVE_UP_MS: i64 = 86_400_000;
/// Undelivered alerts kept (the outbox); beyond this the oldest is dropped.
pub const MAX_PENDING: usize = 8;
/// Why an alert was not sent.
pub const NOT_CONFIGURED: &str = "not sent: ALERT_WEBHOOK_URL is not set";

/// The `state` of an alert that starts a condition.
pub const FIRING: &str = "firing";
/// The `state` of an alert that ends one.
pub const RESOLVED: &str = "resolved";

/// What the decisions need from the configuration
/// (`config::Config::alert_policy`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertPolicy {
    /// `ALERT_WEBHOOK_URL` is set: alerts are delivered (else only recorded).
    pub webhook: bool,
    /// `ALERT_REFRESH_FAILURES`.
    pub refresh_failures: u32,
    /// `BALANCE_ALERT_BELOW`; `None`: no balance alerts.
    pub balance_below: Option<f64>,
    /// The `deployment` field (`config::Config::deployment`).
    pub deployment: String,
}

/// A condition an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The refresh token is dead.
    ReauthRequired,
    /// Xoxoday rejects the client id/secret.
    CredentialsRejected,
    /// The loop guard holds refreshes back.
    TokensRejected,
    /// Refresh runs keep failing.
    RefreshFailing,
    /// The wallet balance is below `BALANCE_ALERT_BELOW`.
    BalanceLow,
}

impl Condition {
    /// Every condition.
    pub const ALL: [Condition; 5] = [
        Condition::ReauthRequired,
        Condition::CredentialsRejected,
        Condition::TokensRejected,
        Condition::RefreshFailing,
        Condition::BalanceLow,
    ];

    /// The alert's `event`.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::ReauthRequired => "reauth_required",
            Condition::CredentialsRejected => "credentials_rejected",
            Condition::TokensRejected => "tokens_rejected",
            Condition::RefreshFailing => "refresh_failing",
            Condition::BalanceLow => "balance_low",
        }
    }

    /// The condition named `name`, if any.
    pub fn from_name(name: &str) -> Option<Condition> {
        Condition::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// An alert just raised: what the shell logs, and whether to deliver it
/// (set the alarm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    /// Its event.
    pub event: &'static str,
    /// [`FIRING`] or [`RESOLVED`].
    pub state: &'static str,
    /// It waits for delivery (a webhook is configured).
    pub deliver: bool,
}

/// The token condition `state` is in at `now_ms`, if any.
pub fn token_condition(state: &AuthorityState, now_ms: i64, policy: &AlertPolicy) -> Option<Condition> {
    if state.reauth_reason.is_some() {
        Some(Condition::ReauthRequired)
    } else if state.credentials_rejected_fp.is_some() {
        Some(Condition::CredentialsRejected)
    } else if state.access.as_ref().is_some_and(|a| a.rejected) && guard_until_ms(state, now_ms).is_some() {
        Some(Condition::TokensRejected)
    } else if state.consecutive_failures >= policy.refresh_failures.max(1)
        // Once raised, it holds until a refresh succeeds: ALERT_REFRESH_FAILURES
        // raised meanwhile does not make failing refreshes "recovered".
        || (state.consecutive_failures > 0 && state.alert_condition.as_deref() == Some(Condition::RefreshFailing.as_str()))
    {
        Some(Condition::RefreshFailing)
    } else if state.refresh_proof_due {
        // What the operator set has not refreshed yet (it is tried at
        // once): the condition it was set to end holds until it has.
        state.alert_condition.as_deref().and_then(Condition::from_name)
    } else {
        None
    }
}

/// After every change of the authority's state (its one `commit`): has
/// the token condition changed since the last alert? Then raise the alert
/// that says so (stored in `state`, which the caller persists).
pub fn review(state: &mut AuthorityState, now_ms: i64, policy: &AlertPolicy, tokens: &TokenPolicy) -> Option<Raised> {
    let before = state.alert_condition.as_deref().and_then(Condition::from_name);
    let now = token_condition(state, now_ms, policy);
    if before == now {
        return unwatched(state, now_ms, policy);
    }
    state.alert_condition = now.map(|c| c.as_str().to_string());
    let token_state = state.state(now_ms, tokens).as_str();
    let (condition, resolved) = match (now, before) {
        (Some(c), _) => (c, false),
        (None, Some(b)) => (b, true),
        (None, None) => return None,
    };
    let message = token_message(state, condition, resolved, now_ms, policy, token_state);
    let alert = Alert {
        condition,
        resolved,
        message,
        token_state: Some(token_state),
        replaces: if resolved { None } else { before },
        failures: (condition == Condition::RefreshFailing && !resolved).then_some(state.consecutive_failures),
        balance: None,
        threshold: None,
    };
    Some(raise(state, &alert, now_ms, policy))
}

/// How long callers are still served under a condition that refuses them
/// with `503 <condition>` once no usable access token is left: the
/// operator's deadline. "At the latest": Xoxoday can still reject the
/// token sooner.
fn served_until(state: &AuthorityState, now_ms: i64, condition: Condition) -> String {
    let code = condition.as_str();
    match state.access.as_ref().filter(|_| state.access_usable(now_ms)) {
        Some(a) => format!(" Calls are served with the current access token until {} at the latest, then get 503 {code}.", rfc3339(a.expires_at_ms)),
        None => format!(" Calls get 503 {code} now."),
    }
}

fn token_message(
    state: &AuthorityState,
    condition: Condition,
    resolved: bool,
    now_ms: i64,
    policy: &AlertPolicy,
    token_state: &str,
) -> String {
    let why = state.last_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
    match (condition, resolved) {
        (Condition::ReauthRequired, false) => format!(
            "The Xoxoday refresh token is dead{why}. Generate new tokens in the Xoxoday dashboard and set XOXODAY_REFRESH_TOKEN.{}",
            served_until(state, now_ms, condition)
        ),
        (Condition::CredentialsRejected, false) => format!(
            "Xoxoday rejects the client id or secret{why}. Set the right XOXODAY_CLIENT_ID / XOXODAY_CLIENT_SECRET; the refresh token is kept, and refreshing resumes once they change.{}",
            served_until(state, now_ms, condition)
        ),
        (Condition::TokensRejected, false) => format!(
            "Xoxoday keeps rejecting new access tokens{why}. Callers get 502 upstream_unauthorized meanwhile. Look for whoever regenerates tokens elsewhere (another admin, another system on this client)."
        ),
        (Condition::RefreshFailing, false) => {
            // A fresh token is refreshed again only by the cron.
            let when = if token_state == "fresh" { "with the first cron run after" } else { "at" };
            let next = state.retry_at_ms(now_ms).map(|t| format!(", next attempt {when} {}", rfc3339(t))).unwrap_or_default();
            // Without a usable access token callers are refused meanwhile.
            let serving = match token_state {
                "fresh" | "stale" => "serves the current access token while it is valid",
                _ => "has no usable access token meanwhile: calls answer 502, 504 or, under a refresh penalty, 429",
            };
            format!(
                "{} token refresh run{} failed in a row (ALERT_REFRESH_FAILURES is {}){why}. plumgate keeps trying with backoff{next} and {serving} (token state: {token_state}).",
                state.consecutive_failures,
                if state.consecutive_failures == 1 { "" } else { "s" },
                policy.refresh_failures
            )
        }
        (Condition::ReauthRequired, true) => {
            format!("No longer reauth_required: a refresh with the new XOXODAY_REFRESH_TOKEN or client id/secret passed (token state: {token_state}).")
        }
        (Condition::CredentialsRejected, true) => format!(
            "No longer credentials_rejected: a refresh with new client id/secret or XOXODAY_REFRESH_TOKEN, or a forced refresh, passed (token state: {token_state})."
        ),
        (Condition::TokensRejected, true) => {
            format!("The loop guard let go: plumgate refreshes rejected tokens again (token state: {token_state}).")
        }
        (Condition::RefreshFailing, true) => format!(
            "Token refresh recovered: a refresh succeeded (token state: {token_state})."
        ),
        (Condition::BalanceLow, _) => String::new(),
    }
}

/// A `balance_low` that fired while `BALANCE_ALERT_BELOW` was set, which
/// is now unset: no balance will be looked at again, so it would never
/// resolve. It resolves now (at the authority's next call, which reviews
/// its state), saying why.
fn unwatched(state: &mut AuthorityState, now_ms: i64, policy: &AlertPolicy) -> Option<Raised> {
    if !state.alert_balance_low || policy.balance_below.is_some() {
        return None;
    }
    state.alert_balance_low = false;
    let alert = Alert {
        condition: Condition::BalanceLow,
        resolved: true,
        message: "BALANCE_ALERT_BELOW is no longer set: plumgate stopped watching the Xoxoday wallet balance.".into(),
        token_state: None,
        replaces: None,
        failures: None,
        balance: None,
        threshold: None,
    };
    Some(raise(state, &alert, now_ms, policy))
}

/// A balance an isolate saw in a getBalance answer from Xoxoday.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BalanceSeen {
    /// `data.getBalance.data.value`.
    pub value: f64,
    /// When the isolate saw it (epoch ms, its clock).
    pub seen_at_ms: i64,
}

/// A balance report reached the authority: record it and raise the alert
/// of a crossing. Reports may arrive out of order (each isolate reports on
/// its own); one seen before the newest already applied is ignored.
/// Returns whether the state changed, and the alert.
pub fn observe_balance(state: &mut AuthorityState, seen: BalanceSeen, now_ms: i64, policy: &AlertPolicy) -> (bool, Option<Raised>) {
    let Some(threshold) = policy.balance_below else { return (false, None) };
    // An isolate's clock ahead of this one's must not block later reports.
    let at = seen.seen_at_ms.min(now_ms);
    if state.alert_balance_seen_at_ms.is_some_and(|t| at < t) || !seen.value.is_finite() {
        return (false, None);
    }
    state.alert_balance_seen_at_ms = Some(at);
    let low = seen.value < threshold;
    if low == state.alert_balance_low {
        return (true, None);
    }
    state.alert_balance_low = low;
    let (seen_text, threshold_text) = (decimal_text(seen.value), decimal_text(threshold));
    let message = if low {
        format!(
            "The Xoxoday wallet balance seen by plumgate is {seen_text}, below BALANCE_ALERT_BELOW ({threshold_text}): top it up before orders fail (PLE10010, insufficient balance)."
        )
    } else {
        format!("The Xoxoday wallet balance seen by plumgate is back at {seen_text}, at or above BALANCE_ALERT_BELOW ({threshold_text}).")
    };
    let alert = Alert {
        condition: Condition::BalanceLow,
        resolved: !low,
        message,
        token_state: None,
        replaces: None,
        failures: None,
        balance: Some(seen.value),
        threshold: Some(threshold),
    };
    (true, Some(raise(state, &alert, now_ms, policy)))
}

/// How long an isolate's report of its side stands before it reports the
/// same side again: other isolates' reports may have moved the authority
/// to the other side meanwhile (a top-up one saw, then a drain this one
/// sees on the side it reported last), which this isolate cannot know.
pub const BALANCE_REPORT_EVERY_MS: i64 = 5 * 60_000;

/// The isolate's side, with no round trip on the getBalance path: given
/// `BALANCE_ALERT_BELOW`, the balance in an upstream answer and the side
/// this isolate last reported with when (`Some((true, t))`: below, at `t`;
/// `None`: nothing yet), the side to report to the authority now, if any.
/// An isolate reports its first view (the authority may hold another
/// isolate's older one), each crossing it sees, and its side again once
/// its last report is [`BALANCE_REPORT_EVERY_MS`] old; the authority
/// decides whether that is a change.
pub fn balance_report(below: Option<f64>, value: f64, reported: Option<(bool, i64)>, now_ms: i64) -> Option<bool> {
    let low = value < below?;
    let stands = reported.is_some_and(|(side, at)| side == low && (0..BALANCE_REPORT_EVERY_MS).contains(&(now_ms - at)));
    (!stands).then_some(low)
}

/// What an alert says, before it is written down.
struct Alert<'a> {
    condition: Condition,
    resolved: bool,
    message: String,
    token_state: Option<&'a str>,
    replaces: Option<Condition>,
    failures: Option<u32>,
    balance: Option<f64>,
    threshold: Option<f64>,
}

/// The JSON posted to the webhook. `text` is what Slack (and services
/// that read Slack's incoming-webhook format) show; the other fields are
/// for machines. Fields without a value for this alert are left out.
#[derive(Serialize)]
struct Payload<'a> {
    text: String,
    event: &'a str,
    state: &'a str,
    message: &'a str,
    at: String,
    deployment: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replaces: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failures: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    balance: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold: Option<f64>,
}

/// The body posted for `alert`, raised at `at_ms` by `deployment`.
fn payload(alert: &Alert<'_>, at_ms: i64, deployment: &str) -> String {
    let event = alert.condition.as_str();
    let state = if alert.resolved { RESOLVED } else { FIRING };
    let label = if alert.resolved { "RESOLVED" } else { "ALERT" };
    let text = slack_escape(&format!("plumgate [{deployment}] {label} {event}: {}", alert.message));
    let body = Payload {
        text,
        event,
        state,
        message: &alert.message,
        at: rfc3339(at_ms),
        deployment,
        token_state: alert.token_state,
        replaces: alert.replaces.map(Condition::as_str),
        failures: alert.failures,
        balance: alert.balance,
        threshold: alert.threshold,
    };
    serde_json::to_string(&body).unwrap_or_default()
}

/// Slack reads `&`, `<` and `>` in `text` as markup: escaped as its docs ask.
fn slack_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for (i, b) in text.bytes().enumerate() {
        let escaped = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            _ => continue,
        };
        out.push_str(&text[from..i]);
        out.push_str(escaped);
        from = i + 1;
    }
    out + &text[from..]
}

/// Write `alert` down: queued, due at once, when a webhook is configured;
/// else as not sent.
fn raise(state: &mut AuthorityState, alert: &Alert<'_>, now_ms: i64, policy: &AlertPolicy) -> Raised {
    let event = alert.condition.as_str();
    let alert_state = if alert.resolved { RESOLVED } else { FIRING };
    state.alert_last_event = Some(event.into());
    state.alert_last_state = Some(alert_state.into());
    state.alert_last_at_ms = Some(now_ms);
    state.alert_last_delivered = false;
    if !policy.webhook {
        state.alert_outbox.clear();
        finish_head(state, Some(NOT_CONFIGURED.into()), 0);
    } else {
        state.alert_outbox.push(payload(alert, now_ms, &policy.deployment));
        if state.alert_outbox.len() == 1 {
            start_head(state, now_ms);
        } else if state.alert_outbox.len() > MAX_PENDING {
            // The oldest goes; the next one is tried at once.
            state.alert_outbox.remove(0);
            start_head(state, now_ms);
        }
    }
    Raised { event, state: alert_state, deliver: policy.webhook }
}

/// The first alert of the outbox is new: no attempts yet, due at `now_ms`.
fn start_head(state: &mut AuthorityState, now_ms: i64) {
    state.alert_attempts = 0;
    state.alert_error = None;
    state.alert_next_at_ms = Some(now_ms);
    state.alert_head_since_ms = Some(now_ms);
}

/// No alert waits any more: the counters stay (they are the last alert's).
fn finish_head(state: &mut AuthorityState, error: Option<String>, attempts: u32) {
    state.alert_attempts = attempts;
    state.alert_error = error;
    state.alert_next_at_ms = None;
    state.alert_head_since_ms = None;
}

/// A delivery to make now: the body of the oldest alert not yet delivered,
/// if its time has come. Alerts go out in the order they were raised, so a
/// receiver never sees a condition resolved before it fired. A retired
/// authority (the previous version's, after the hand-over) delivers
/// nothing: its outbox went with the state, and the new owner delivers it
/// (the retired copy keeps it, so a repeated hand-over carries it again).
pub fn next_delivery(state: &AuthorityState, now_ms: i64) -> Option<String> {
    let body = state.alert_outbox.first().filter(|_| state.retired_to.is_none())?;
    (state.alert_next_at_ms.unwrap_or(now_ms) <= now_ms).then(|| body.clone())
}

/// When the alarm should next deliver (epoch ms), if anything waits.
pub fn next_due_ms(state: &AuthorityState) -> Option<i64> {
    state.alert_outbox.first().filter(|_| state.retired_to.is_none()).map(|_| state.alert_next_at_ms.unwrap_or(0))
}

/// The webhook request for a delivery. (Redirects are not followed: the
/// shell's `fetch` never does.)
pub fn webhook_request(url: &WebhookUrl, body: &str) -> HttpRequest {
    HttpRequest {
        method: "POST",
        url: url.expose_secret().to_string(),
        headers: vec![("content-type", "application/json".into()), ("user-agent", "plumgate-alerts".into())],
        body: Some(body.to_string()),
    }
}

/// How one delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered 2xx.
    Accepted,
    /// It did not: a safe sentence.
    Failed(String),
    /// `ALERT_WEBHOOK_URL` is not set (any more).
    NotConfigured,
}

/// Read what the receiver answered: any 2xx accepts the alert; anything
/// else (another status, a redirect, no answer) is tried again.
pub fn read_attempt(sent: &Result<HttpAnswer, NoAnswer>) -> Attempt {
    match sent {
        Ok(a) if (200..300).contains(&a.status) => Attempt::Accepted,
        Ok(a) => Attempt::Failed(format!("the receiver answered HTTP {}", a.status)),
        Err(NoAnswer::Timeout) => Attempt::Failed(format!("no answer within {} s", DELIVERY_TIMEOUT_MS / 1000)),
        Err(NoAnswer::Transport) => Attempt::Failed("no answer (connection failed)".into()),
    }
}

/// What became of an alert after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    /// Accepted.
    Delivered,
    /// Tried again at this instant (epoch ms).
    Retry(i64),
    /// Not delivered within [`GIVE_UP_MS`]: no more attempts.
    GaveUp,
    /// No webhook: recorded as not sent.
    NotSent,
    /// The alert is no longer the one waiting (dropped meanwhile): nothing
    /// changed.
    Gone,
}

impl AfterAttempt {
    /// Its name in the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            AfterAttempt::Delivered => "delivered",
            AfterAttempt::Retry(_) => "retry",
            AfterAttempt::GaveUp => "given_up",
            AfterAttempt::NotSent => "not_sent",
            AfterAttempt::Gone => "gone",
        }
    }
}

/// Record how the delivery of the alert with this `body` (the one
/// [`next_delivery`] gave) went at `now_ms` (`rand01`: a random number in
/// [0, 1) for the retry's jitter). An alert is given up once a retry would
/// come more than [`GIVE_UP_MS`] after its first attempt was due.
pub fn after_attempt(state: &mut AuthorityState, body: &str, attempt: &Attempt, now_ms: i64, rand01: f64) -> AfterAttempt {
    if state.alert_outbox.first().map(String::as_str) != Some(body) {
        return AfterAttempt::Gone;
    }
    let attempts = state.alert_attempts.saturating_add(1);
    let last = state.alert_outbox.len() == 1;
    let (outcome, error) = match attempt {
        Attempt::NotConfigured => {
            state.alert_outbox.clear();
            finish_head(state, Some(NOT_CONFIGURED.into()), 0);
            return AfterAttempt::NotSent;
        }
        Attempt::Accepted => (AfterAttempt::Delivered, None),
        Attempt::Failed(why) => {
            let next = now_ms.saturating_add(retry_delay_ms(attempts, rand01) as i64);
            if next <= state.alert_head_since_ms.unwrap_or(now_ms).saturating_add(GIVE_UP_MS) {
                state.alert_attempts = attempts;
                state.alert_error = Some(why.clone());
                state.alert_next_at_ms = Some(next);
                return AfterAttempt::Retry(next);
            }
            (AfterAttempt::GaveUp, Some(format!("given up after 24 h: {why}")))
        }
    };
    state.alert_outbox.remove(0);
    if last {
        state.alert_last_delivered = outcome == AfterAttempt::Delivered;
        finish_head(state, error, attempts);
    } else {
        start_head(state, now_ms);
    }
    outcome
}

/// The wait after the `attempts`-th failed delivery: [`RETRY_BASE_MS`]
/// doubling per attempt, at most [`RETRY_MAX_MS`], scaled by a jitter
/// factor in [0.5, 1).
pub fn retry_delay_ms(attempts: u32, rand01: f64) -> u64 {
    let exp = attempts.saturating_sub(1).min(20);
    let raw = RETRY_BASE_MS.saturating_mul(1u64 << exp).min(RETRY_MAX_MS);
    (raw as f64 * (0.5 + 0.5 * rand01.clamp(0.0, 1.0))) as u64
}

/// What `GET /v1/token` shows as `last_alert`: the last alert raised,
/// whether the receiver accepted it, and its attempts (while it waits
/// behind earlier alerts: none yet, and when the queue is tried next).
pub fn last_alert(state: &AuthorityState) -> Option<AlertView> {
    let (event, alert_state, at) = (state.alert_last_event.as_ref()?, state.alert_last_state.as_ref()?, state.alert_last_at_ms?);
    let behind = state.alert_outbox.len() > 1;
    Some(AlertView {
        at: rfc3339(at),
        attempts: if behind { 0 } else { state.alert_attempts },
        delivered: state.alert_last_delivered,
        error: if behind { None } else { state.alert_error.clone() },
        event: event.clone(),
        next_attempt_at: state.alert_next_at_ms.filter(|_| !state.alert_outbox.is_empty()).map(rfc3339),
        state: alert_state.clone(),
    })
}

#[cfg(test)]
mod tests;
