//! A model of Xoxoday's refresh endpoint, driven with random sequences of
//! what happens to a token authority, against the token machine of
//! `plumgate_core::token` (`plan`, `run::{sending, fall_back, next_step,
//! finish_run, interrupted}`, `check::{plan_check, apply_check}`,
//! `adopt::adopt`, `storage::load_state`), as the Durable Object's shell
//! calls them. The unit tests beside each function pin chosen cases; this
//! owns the promises that hold only across sequences of them, where a
//! combination nobody wrote down breaks one (F1 was such: see
//! [`f1_second_value_after_a_fall_back_keeps_the_live_token`]).
//!
//! The promises checked, after every step or at every decision:
//! - A live refresh token is never dropped (README: "Never loses a rotated
//!   refresh token"; `token.rs`: "A live refresh token that a new bootstrap
//!   token displaces is kept aside until the new one has refreshed"): the
//!   token Xoxoday issued last, while Xoxoday still takes it, is held as
//!   `refresh` or `displaced_refresh`. The two documented losses are exempt:
//!   a refresh in flight when the authority stops (`run::interrupted`), whose
//!   new pair never reached plumgate, and a token a wrong client secret got
//!   refused as dead, replaced by a new value set under `reauth_required`
//!   (README: put the right secret back first and generate nothing).
//! - A refresh answer that rotates is read as one, carrying its new refresh
//!   token ("A refresh answer that carries an access token is never
//!   discarded, even when its other fields are odd"), whatever its
//!   `expires_in` looks like, a trailing page or a byte order mark.
//! - No refresh while Xoxoday's penalty runs ("no attempt of any kind until
//!   its penalty (plus jitter) ends"), under `reauth_required` ("no further
//!   refresh until the operator sets a new bootstrap token"), or while the
//!   client id/secret stand rejected, except the admin's forced refresh
//!   ("the admin's forced refresh may try the same secrets again"); none
//!   inside a backoff or past the loop guard except a forced one (`check.rs`:
//!   "A forced refresh is not held back"). No token check inside the check's
//!   own penalty ("holds every further check back until its penalty ends").
//! - The loop guard, exactly (`check.rs`): a rejected token is refreshed
//!   unless more than `GUARD_LIMIT` confirmed rejections fall within the
//!   hour or more than `GUARD_DAY_LIMIT` within the day, and the refusal's
//!   `Retry-After` is when "the oldest confirmation inside that window
//!   leaves it (with both, the later end)". Confirmations stamped after
//!   `now` (a clock that stepped back) are dropped at the next confirmation
//!   and count for nothing meanwhile (the unit test
//!   `confirmations_from_a_clock_ahead_neither_count_nor_stay`).
//! - Bounds: a run's retries stay within `max_attempts` and their delays
//!   within `retry_base_ms` doubled; a failed run's backoff is 30 s doubling
//!   to 30 min, jittered by ×[0.5, 1) (`backoff_ms`); a penalty ends after
//!   Xoxoday's penalty plus "up to 10 % of it (at least up to one second)"
//!   (`run::penalty_end_ms`); every `Retry-After` is at least 1 s.
//! - The state as stored (JSON text) loads back as the same state
//!   (`storage::load_state`), so an eviction changes nothing.
//! - The token held is never one remembered as spent; the spent list and
//!   the confirmations stay within `SPENT_MEMORY` and `GUARD_DAY_LIMIT + 1`.
//! - `status`, `retry_at_ms`, `recheck_at_ms` and `cache::grant` answer for
//!   every state reached (`retry_at` is in the future).
//!
//! The model (each rule commented where it acts): Xoxoday's endpoint keeps
//! the set of refresh tokens it takes (strict rotation) and answers a
//! penalty, a 5xx, nothing, a wrong client secret, a dead token, or a
//! rotation in one of its odd shapes; the authority stops mid-refresh now
//! and then; 401s go through the token check, in storms minutes apart;
//! the operator sets new or earlier `XOXODAY_REFRESH_TOKEN` values and
//! client secrets; evictions store and reload the state; the clock runs
//! forward by seconds to days and now and then steps back (up to two
//! days). A third of the seeds use other refresh windows. The default run
//! must reach every kind of event the promises are about (`Seen`), so a
//! change to the model that stops testing one fails too.
//!
//! Deterministic: seeds `0..N`, each its own sequence; a failure names its
//! seed and step. `PLUMGATE_MODEL_SEEDS=N` runs N seeds instead of the
//! default [`SEEDS`] × [`STEPS`] (a deeper local run, best with
//! `--release`: 3000 seeds take about 35 s). In the debug profile the
//! default takes 3–4 s on two cores.

mod seeded;

use plumgate_core::http::NoAnswer;
use plumgate_core::secret::RefreshToken;
use plumgate_core::time::secs_until;
use plumgate_core::token::check::{self, apply_check, plan_check, CheckOutcome, CheckPlan};
use plumgate_core::token::refresh::refresh_without_answer;
use plumgate_core::token::run::{answer_after_run, fall_back, finish_run, interrupted, lost_in_run, next_step, sending, RunEnd, Step};
use plumgate_core::token::{
    self as tk, adopt::adopt, adopt_credentials, parse_refresh_response, plan, storage::load_state, AuthorityState, Plan,
    RefreshOutcome, Refusal, TokenPolicy, Trigger,
};
use seeded::{replayable, seeds, Rng};
use serde_json::{json, Value};
use std::collections::HashSet;

/// Seeds of a default run, and the steps of each (see the module doc).
const SEEDS: u64 = 30;
const STEPS: u64 = 3_000;

const T0: i64 = 1_795_626_582_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// Xoxoday's refresh endpoint: the refresh tokens it takes (strict
/// rotation: a rotation kills the token sent), and whether the client
/// id/secret configured now are right.
struct Server {
    live: HashSet<String>,
    creds_ok: bool,
    /// Tokens issued so far (their names).
    issued_n: u64,
}

/// The loop guard as `check.rs` words it, over the model's own list of
/// confirmations: until when it holds, if it does.
fn model_guard(confirmed: &[i64], now: i64) -> Option<i64> {
    let mut inside: Vec<i64> = confirmed.iter().copied().filter(|t| *t <= now && now - t < check::GUARD_DAY_WINDOW_MS).collect();
    inside.sort_unstable();
    let day = inside.len();
    let hour = inside.iter().filter(|t| now - **t < check::GUARD_WINDOW_MS).count();
    // Each rule holds until the oldest of the newest limit + 1 leaves its window.
    let hour_end = (hour > check::GUARD_LIMIT).then(|| inside[day - check::GUARD_LIMIT - 1] + check::GUARD_WINDOW_MS);
    let day_end = (day > check::GUARD_DAY_LIMIT).then(|| inside[day - check::GUARD_DAY_LIMIT - 1] + check::GUARD_DAY_WINDOW_MS);
    hour_end.max(day_end)
}

fn secret(t: Option<&RefreshToken>) -> Option<&str> {
    t.map(RefreshToken::expose_secret)
}

fn held_secret(s: &AuthorityState) -> Option<&str> {
    secret(s.refresh.as_ref().map(|r| &r.token))
}

/// Is `rt` held, as the refresh token or the one kept aside?
fn holds(s: &AuthorityState, rt: &str) -> bool {
    held_secret(s) == Some(rt) || secret(s.displaced_refresh.as_ref()) == Some(rt)
}

/// What the default run must reach, or the model has stopped testing it.
#[derive(Default)]
struct Seen {
    refreshes: u64,
    fall_backs: u64,
    penalties: u64,
    reauths: u64,
    credentials_rejected: u64,
    interrupted: u64,
    guard_refusals: u64,
    spent_values_set: u64,
    reloads: u64,
}

struct Model {
    s: AuthorityState,
    srv: Server,
    p: TokenPolicy,
    now: i64,
    /// Confirmed rejections, as `check.rs` promises to count them.
    confirmed: Vec<i64>,
    /// The refresh token Xoxoday issued last (or the first bootstrap), if
    /// plumgate received it: while live, it must be held.
    issued: Option<String>,
    client_fp: String,
    /// Bootstrap values set so far (`boot-0` … ).
    boot_n: u64,
    /// A storm: 401s the check confirms, minutes apart (the loop guard's ground).
    storm: bool,
    /// The last refresh answer was a wrong secret's, read as a dead token.
    secret_seemed_dead: bool,
}

fn is_refresh(p: &Plan) -> bool {
    matches!(p, Plan::RefreshThenServe | Plan::ServeAndRefresh)
}

impl Model {
    fn new(p: TokenPolicy) -> Model {
        let mut s = AuthorityState::default();
        adopt(&mut s, &RefreshToken::new("boot-0"), None, "cfp", T0);
        Model {
            s,
            srv: Server { live: HashSet::from(["boot-0".to_string()]), creds_ok: true, issued_n: 0 },
            p,
            now: T0,
            confirmed: vec![],
            issued: Some("boot-0".into()),
            client_fp: "cfp".into(),
            boot_n: 0,
            storm: false,
            secret_seemed_dead: false,
        }
    }

    /// Xoxoday's answer to one refresh attempt, as a body the real parser
    /// reads: a penalty (8 %), a 5xx (10 %), no answer (4 %); else the
    /// client id/secret refused, the token refused as dead, or a rotation
    /// (90 %; else the same refresh token comes back) in one of the shapes
    /// Xoxoday has been seen to use.
    fn answer(&mut self, rng: &mut Rng) -> RefreshOutcome {
        let now = self.now;
        let sent = held_secret(&self.s).expect("a refresh sends the refresh token held").to_string();
        let roll = rng.below(100);
        if roll < 8 {
            let secs = rng.range(0, 7200);
            return if rng.chance(0.5) {
                parse_refresh_response(429, b"", Some(&secs.to_string()), now)
            } else {
                let body = format!(r#"{{"errors":[{{"message":"auth.request_limit_exceeded","penaltySeconds":{secs}}}]}}"#);
                parse_refresh_response(400, body.as_bytes(), None, now)
            };
        }
        if roll < 18 {
            return parse_refresh_response(*rng.pick(&[500u16, 502, 503, 504]), b"<html>bad gateway</html>", None, now);
        }
        if roll < 22 {
            return refresh_without_answer(NoAnswer::Timeout, &self.p);
        }
        self.secret_seemed_dead = false;
        if !self.srv.creds_ok {
            // A wrong secret may be answered as a dead token (README).
            return if rng.chance(0.3) {
                self.secret_seemed_dead = true;
                parse_refresh_response(400, br#"{"error":"invalid_grant"}"#, None, now)
            } else {
                parse_refresh_response(401, br#"{"error":"invalid_client"}"#, None, now)
            };
        }
        if !self.srv.live.contains(&sent) {
            return parse_refresh_response(400, br#"{"error":"invalid_grant","error_description":"refresh token invalid"}"#, None, now);
        }
        self.srv.issued_n += 1;
        let new_rt = format!("rt-{}", self.srv.issued_n);
        let rotates = rng.chance(0.9);
        // Half an answer: a new refresh token, no access token (5 %).
        let refresh_only = rng.chance(0.05);
        let expires_in = match rng.below(8) {
            0 => json!(rng.range(1, 600)),
            1 => json!(rng.range(1, 3_000_000).to_string()),
            2 => json!(i64::MAX),
            3 => json!("1e300"),
            4 => json!(-5),
            5 => json!("NaN"),
            // An epoch stamp in seconds where a lifetime belongs.
            6 => json!((now / 1000) + rng.range(-100, 2_000_000)),
            _ => json!(1_296_000),
        };
        let mut o = serde_json::Map::new();
        if !refresh_only {
            o.insert("access_token".into(), json!(format!("at-{}", self.srv.issued_n)));
        }
        o.insert("token_type".into(), json!("bearer"));
        o.insert("expires_in".into(), expires_in);
        if rng.chance(0.3) {
            o.insert("refresh_token_expiry".into(), json!(rng.range(-10, now / 1000 + 40 * 86_400)));
        }
        if rotates || refresh_only {
            o.insert("refresh_token".into(), json!(new_rt));
        }
        if rng.chance(0.05) {
            o.insert("odd".into(), json!({"nested": [1, "x", null]}));
        }
        let mut body = plumgate_core::jsontext::to_text(&Value::Object(o)).into_bytes();
        if rng.chance(0.05) {
            body.extend_from_slice(b"\n<!-- edge -->");
        }
        if rng.chance(0.05) {
            body.splice(0..0, *b"\xEF\xBB\xBF");
        }
        // Both tokens under a 4xx status: still a rotation (contract §4.1).
        let status = if rotates && !refresh_only && rng.chance(0.05) { 400 } else { 200 };
        let out = parse_refresh_response(status, &body, None, now);
        if !(rotates || refresh_only) {
            // The token sent stays the live one.
            if matches!(out, RefreshOutcome::Success(_)) {
                self.issued = Some(sent);
            }
            return out;
        }
        self.srv.live.remove(&sent);
        self.srv.live.insert(new_rt.clone());
        match &out {
            RefreshOutcome::Success(a) if !refresh_only => {
                assert_eq!(secret(a.refresh_token.as_ref()), Some(new_rt.as_str()), "a rotation's refresh token lost by the parser");
                assert!(a.access_expires_at_ms > now, "access expiry {} not after now {now}", a.access_expires_at_ms);
            }
            RefreshOutcome::RefreshOnly { refresh_token, .. } if refresh_only => assert_eq!(refresh_token.expose_secret(), new_rt),
            other => panic!("a rotation read as {other:?}: {}", String::from_utf8_lossy(&body)),
        }
        self.issued = Some(new_rt);
        out
    }

    /// A decision of `plan` against the promises (module doc).
    fn check_plan(&self, trigger: Trigger, pl: &Plan, seen: &mut Seen) {
        let (s, now) = (&self.s, self.now);
        let rejected = s.access.as_ref().is_some_and(|a| a.rejected);
        if is_refresh(pl) {
            assert!(s.penalty_until_ms.is_none_or(|t| t <= now), "{trigger:?} refresh inside the penalty ({:?}, now {now})", s.penalty_until_ms);
            assert!(s.reauth_reason.is_none(), "{trigger:?} refresh under reauth_required");
            assert!(s.refresh.is_some(), "{trigger:?} refresh with no refresh token");
            if trigger != Trigger::Forced {
                assert!(s.credentials_rejected_fp.is_none(), "{trigger:?} refresh with the client id/secret rejected");
                assert!(s.next_attempt_at_ms.is_none_or(|t| t <= now), "{trigger:?} refresh inside the backoff");
            }
        }
        // Where nothing else decides first, the guard decides alone.
        let guard_decides = rejected
            && trigger != Trigger::Forced
            && s.reauth_reason.is_none()
            && s.credentials_rejected_fp.is_none()
            && s.refresh.is_some()
            && s.penalty_until_ms.is_none_or(|t| t <= now);
        if guard_decides {
            match (pl, model_guard(&self.confirmed, now)) {
                (Plan::Refuse(Refusal::LoopGuard { retry_after_secs, .. }), Some(until)) => {
                    seen.guard_refusals += 1;
                    assert_eq!(*retry_after_secs, secs_until(until, now).max(1), "the loop guard's Retry-After");
                }
                (Plan::Refuse(Refusal::LoopGuard { .. }), None) => {
                    panic!("a loop guard the model has none of: confirmed {:?}, now {now}", self.confirmed)
                }
                (_, Some(_)) => panic!("the model's loop guard holds, the plan is {pl:?}: confirmed {:?}, now {now}", self.confirmed),
                (_, None) => {}
            }
        }
        if let Plan::Refuse(r) = pl {
            assert!(r.api_error().retry_after_secs.is_none_or(|ra| ra >= 1), "{r:?}: Retry-After 0");
        }
    }

    /// The state after a step against the promises (module doc).
    fn check_state(&self) {
        let s = &self.s;
        if let Some(rt) = self.issued.as_deref().filter(|rt| self.srv.live.contains(*rt)) {
            assert!(
                holds(s, rt),
                "the live refresh token {rt} is dropped: held {:?}, kept aside {:?}, spent: {}",
                held_secret(s),
                secret(s.displaced_refresh.as_ref()),
                s.spent_refresh_fps.contains(&RefreshToken::new(rt).fingerprint())
            );
        }
        if let Some(r) = &s.refresh {
            assert!(!s.spent_refresh_fps.contains(&r.token.fingerprint()), "the refresh token held is on the spent list");
        }
        assert!(s.spent_refresh_fps.len() <= tk::SPENT_MEMORY);
        assert!(s.confirmed_rejections_ms.len() <= check::GUARD_DAY_LIMIT + 1);
        if let Some(t) = s.retry_at_ms(self.now) {
            assert!(t > self.now, "retry_at {t} not after now {}", self.now);
        }
        // Only that they answer: what they answer is their unit tests'.
        tk::status(s, self.now, &self.p);
        s.recheck_at_ms(self.now, &self.p);
        tk::cache::grant(s, self.now, &self.p);
    }

    /// One refresh run, as the shell runs it: attempts until `next_step`
    /// stops, a fall-back at most once, then `finish_run`.
    fn run(&mut self, rng: &mut Rng, trigger: Trigger, seen: &mut Seen) {
        sending(&mut self.s, self.now);
        // The authority stops with the refresh in flight (1 %); Xoxoday may
        // have rotated the pair then (half of those), which plumgate never
        // receives: the documented loss.
        if rng.chance(0.01) {
            seen.interrupted += 1;
            let sent = held_secret(&self.s).unwrap_or_default().to_string();
            if rng.chance(0.5) && self.srv.live.remove(&sent) {
                self.srv.issued_n += 1;
                self.srv.live.insert(format!("rt-lost-{}", self.srv.issued_n));
                self.issued = None;
            }
            self.now += rng.range(1, 60_000);
            assert!(interrupted(&mut self.s, self.now), "the mark of the refresh in flight is gone");
            return;
        }
        let (mut attempt, mut fell_back, mut lost) = (1u32, false, None);
        loop {
            let out = self.answer(rng);
            if matches!(out, RefreshOutcome::Success(_) | RefreshOutcome::RefreshOnly { .. }) {
                seen.refreshes += 1;
            }
            if fall_back(&mut self.s, &out, self.now, fell_back) {
                seen.fall_backs += 1;
                fell_back = true;
                sending(&mut self.s, self.now);
                continue;
            }
            lost = lost_in_run(lost, &out);
            match next_step(&out, attempt, rng.f01(), &self.p) {
                Step::Retry { delay_ms } => {
                    assert!(attempt < self.p.max_attempts, "attempt {attempt} retried");
                    // The base, doubled per attempt, jittered by ×[0.5, 1).
                    let full = self.p.retry_base_ms << (attempt - 1);
                    assert!((full / 2..=full).contains(&delay_ms), "retry delay {delay_ms} after attempt {attempt}");
                    attempt += 1;
                    self.now += delay_ms as i64;
                }
                Step::Stop => {
                    let penalty_ms = match &out {
                        RefreshOutcome::RateLimited { penalty_secs, .. } => Some(*penalty_secs as i64 * 1000),
                        _ => None,
                    };
                    let end = finish_run(&mut self.s, out, self.now, rng.f01(), &self.client_fp, &self.p, lost.as_deref());
                    self.check_run_end(&end, penalty_ms, seen);
                    answer_after_run(&self.s, trigger, Some(&end), self.now, &self.p);
                    return;
                }
            }
        }
    }

    fn check_run_end(&self, end: &RunEnd, penalty_ms: Option<i64>, seen: &mut Seen) {
        let (s, now, p) = (&self.s, self.now, &self.p);
        assert!(s.refresh_sent_at_ms.is_none(), "the in-flight mark outlives the run");
        let backoff = (p.backoff_base_ms.min(p.backoff_max_ms) / 2) as i64..=p.backoff_max_ms as i64;
        match end {
            RunEnd::Failed { .. } => {
                let t = s.next_attempt_at_ms.expect("a backoff after a failed run");
                assert!(backoff.contains(&(t - now)), "backoff of {} ms", t - now);
            }
            RunEnd::RateLimited => {
                seen.penalties += 1;
                let pen = penalty_ms.expect("a penalty ends the run");
                let t = s.penalty_until_ms.expect("a penalty held");
                assert!((pen..=pen + (pen / 10).max(1000)).contains(&(t - now)), "penalty of {} ms for {pen} ms", t - now);
                if let Some(t) = s.next_attempt_at_ms {
                    assert!(backoff.contains(&(t - now)), "backoff of {} ms after a penalty", t - now);
                }
            }
            RunEnd::Refreshed => assert!(s.access.as_ref().is_some_and(|a| !a.rejected), "refreshed, with no new access token"),
            RunEnd::Reauth => seen.reauths += 1,
            RunEnd::CredentialsRejected => seen.credentials_rejected += 1,
        }
    }

    /// An upstream 401 for the access token held: the check flow.
    fn api_401(&mut self, rng: &mut Rng) {
        let Some(fp) = self.s.access.as_ref().map(|a| a.token.fingerprint()) else { return };
        let CheckPlan::Check = plan_check(&self.s, &fp, self.now) else { return };
        assert!(self.s.check_penalty_until_ms.is_none_or(|t| t <= self.now), "a token check inside the check's penalty");
        let was_rejected = self.s.access.as_ref().is_some_and(|a| a.rejected);
        let invalid_share = if self.storm { 8 } else { 5 };
        let outcome = match rng.below(10) {
            n if n < invalid_share => CheckOutcome::Invalid,
            n if n < 9 => match rng.below(5) {
                0 => CheckOutcome::Valid { expires_at_ms: Some(self.now + rng.range(-1000, 10 * DAY)) },
                1 => CheckOutcome::RateLimited { status: 429, penalty_secs: rng.range(0, 1200) as u64 },
                _ => CheckOutcome::Failed("token check answered HTTP 503".into()),
            },
            _ => CheckOutcome::Valid { expires_at_ms: None },
        };
        apply_check(&mut self.s, &fp, outcome, self.now);
        if !was_rejected && self.s.access.as_ref().is_some_and(|a| a.rejected) {
            // A confirmation. Those stamped after now (the clock stepped
            // back) or a day or more before are dropped first, and only the
            // newest GUARD_DAY_LIMIT + 1, all a forward clock needs, stay.
            let now = self.now;
            self.confirmed.retain(|t| *t <= now && now - t < check::GUARD_DAY_WINDOW_MS);
            self.confirmed.push(now);
            let excess = self.confirmed.len().saturating_sub(check::GUARD_DAY_LIMIT + 1);
            self.confirmed.drain(..excess);
        }
    }

    /// The operator sets `XOXODAY_REFRESH_TOKEN`: a new value (live 60 %
    /// of the time, and then half of those from a dashboard regeneration
    /// that kills the old chain), or an earlier one again (20 %).
    fn set_bootstrap(&mut self, rng: &mut Rng, seen: &mut Seen) {
        let value = if self.boot_n > 0 && rng.chance(0.2) {
            let again = RefreshToken::new(format!("boot-{}", rng.below(self.boot_n)));
            seen.spent_values_set += u64::from(self.s.spent_refresh_fps.contains(&again.fingerprint()));
            again
        } else {
            self.boot_n += 1;
            let name = format!("boot-{}", self.boot_n);
            if rng.chance(0.6) {
                if rng.chance(0.5) {
                    self.srv.live.clear();
                }
                self.srv.live.insert(name.clone());
            }
            RefreshToken::new(name)
        };
        if self.s.reauth_reason.is_some() && self.secret_seemed_dead {
            // The documented loss: `reauth_required` after a wrong secret
            // answered as a dead token, and a new value set instead of the
            // right secret (README: "put the right secret back first and
            // generate nothing") spends the token held, live after all.
            self.issued = None;
        }
        adopt(&mut self.s, &value, None, &self.client_fp, self.now);
    }

    /// The client secret changes (right 70 % of the time).
    fn set_credentials(&mut self, rng: &mut Rng) {
        self.srv.creds_ok = rng.chance(0.7);
        self.client_fp = format!("cfp-{}", rng.below(1000));
        adopt_credentials(&mut self.s, &self.client_fp);
    }

    /// Eviction: the state as stored, loaded by a new instance.
    fn reload(&mut self) {
        let text = serde_json::to_string(&self.s).expect("the state is written");
        let back = load_state(Some(&Value::String(text))).unwrap_or_else(|e| panic!("the stored state did not load: {}", e.reason));
        let back = back.expect("the stored state loads as a state");
        assert!((back.jitter - self.s.jitter).abs() < 1e-12, "jitter {} read back as {}", self.s.jitter, back.jitter);
        // Equal but for the last bits of the jitter, compared above.
        let mut a = serde_json::to_value(&back).expect("written");
        let mut b = serde_json::to_value(&self.s).expect("written");
        a["jitter"] = json!(0);
        b["jitter"] = json!(0);
        assert_eq!(a, b, "the state changes across a store and a load");
        self.s = back;
    }

    fn step(&mut self, rng: &mut Rng, seen: &mut Seen) {
        if rng.chance(0.01) {
            self.storm = !self.storm;
        }
        // The clock: mostly seconds to hours, sometimes days; now and then
        // a step back (a few minutes, rarely two days).
        let c = rng.below(1000);
        self.now += if self.storm {
            rng.range(0, 300_000)
        } else if c < 500 {
            rng.range(0, 2_000)
        } else if c < 800 {
            rng.range(0, 120_000)
        } else if c < 950 {
            rng.range(0, 2 * HOUR)
        } else if c < 975 {
            rng.range(0, 3 * DAY)
        } else if c < 995 {
            -rng.range(0, 600_000)
        } else {
            -rng.range(0, 2 * DAY)
        };
        let e = rng.below(1000);
        let plans = if self.storm { 450 } else { 700 };
        if e < plans {
            let trigger = *rng.pick(&[Trigger::Request, Trigger::Request, Trigger::Request, Trigger::Cron, Trigger::Forced]);
            let pl = plan(&self.s, trigger, self.now, &self.p);
            self.check_plan(trigger, &pl, seen);
            if is_refresh(&pl) {
                self.run(rng, trigger, seen);
            }
        } else if e < 940 {
            self.api_401(rng);
        } else if e < 970 {
            self.set_bootstrap(rng, seen);
        } else if e < 985 {
            self.set_credentials(rng);
        } else {
            seen.reloads += 1;
            self.reload();
        }
        self.check_state();
    }
}

#[test]
fn token_machine_keeps_its_promises_over_random_sequences() {
    let mut seen = Seen::default();
    for seed in 0..seeds(SEEDS) {
        let mut rng = Rng::for_seed(seed);
        let mut p = TokenPolicy::default();
        // A third of the seeds with other windows (the operator's settings).
        if seed % 3 == 1 {
            p.early_refresh_secs = rng.range(0, 31_536_000) as u64;
            p.must_refresh_secs = rng.range(0, 86_400) as u64;
            p.min_refresh_interval_secs = rng.range(0, 86_400) as u64;
        }
        let mut m = Model::new(p);
        for step in 0..STEPS {
            replayable(seed, step, || m.step(&mut rng, &mut seen));
        }
    }
    // The model still reaches every path it is here for.
    let Seen { refreshes, fall_backs, penalties, reauths, credentials_rejected, interrupted, guard_refusals, spent_values_set, reloads } = seen;
    seeded::all_reached(&[
        ("refreshes", refreshes),
        ("fall-backs", fall_backs),
        ("penalties", penalties),
        ("reauth_required", reauths),
        ("credentials rejected", credentials_rejected),
        ("interrupted runs", interrupted),
        ("loop guard refusals", guard_refusals),
        ("spent values set again", spent_values_set),
        ("reloads", reloads),
    ]);
}

fn assert_kept_aside(s: &AuthorityState, rt: &str) {
    let spent = s.spent_refresh_fps.contains(&RefreshToken::new(rt).fingerprint());
    assert!(
        secret(s.displaced_refresh.as_ref()) == Some(rt) && !spent,
        "live {rt} dropped: kept aside {:?}, {rt} remembered as spent: {spent}",
        secret(s.displaced_refresh.as_ref())
    );
}

/// F1's ground, at `T0 + 60 s`: `rt-1` is the live token; a wrong value
/// set displaced it, was refused as dead, and the run went back to `rt-1`,
/// whose refresh then met a 503 (every attempt): `rt-1` held unproven,
/// the refused value kept aside.
fn fallen_back_then_failed() -> AuthorityState {
    let (p, now) = (TokenPolicy::default(), T0 + 60_000);
    let mut s = AuthorityState::default();
    adopt(&mut s, &RefreshToken::new("boot-0"), None, "cfp", T0);
    let ok = parse_refresh_response(200, br#"{"access_token":"at-1","refresh_token":"rt-1","expires_in":1296000}"#, None, T0);
    assert_eq!(finish_run(&mut s, ok, T0, 0.5, "cfp", &p, None), RunEnd::Refreshed);
    adopt(&mut s, &RefreshToken::new("boot-typo"), None, "cfp", now);
    assert_kept_aside(&s, "rt-1");
    sending(&mut s, now);
    let dead = parse_refresh_response(400, br#"{"error":"invalid_grant"}"#, None, now);
    assert!(fall_back(&mut s, &dead, now, false), "no fall-back");
    let busy = parse_refresh_response(503, b"", None, now);
    assert!(matches!(finish_run(&mut s, busy, now, 0.5, "cfp", &p, None), RunEnd::Failed { .. }));
    s
}

/// F1 (fixed by `chain_refresh_fp`, which names the live token): a second new
/// `XOXODAY_REFRESH_TOKEN` set after a fall-back and a failed refresh
/// spent the live token and kept the refused value aside; its refusal
/// then ended in `reauth_required`. Guards that the live token is kept
/// aside instead.
#[test]
fn f1_second_value_after_a_fall_back_keeps_the_live_token() {
    let mut s = fallen_back_then_failed();
    adopt(&mut s, &RefreshToken::new("boot-second"), None, "cfp", T0 + 120_000);
    assert_kept_aside(&s, "rt-1");
}

/// F1b (fixed by `chain_refresh_fp`, which names the live token): as F1, with a value plumgate rotated away set in between
/// (an old secret put back; `last_error` says it was refused). That value
/// becomes the one "set before", so the second new value no longer sees
/// that the token kept aside is the refused one, and spends the live one.
#[test]
fn f1b_a_value_rotated_away_set_between_keeps_the_live_token() {
    let mut s = fallen_back_then_failed();
    assert!(adopt(&mut s, &RefreshToken::new("boot-0"), None, "cfp", T0 + 90_000).is_some_and(|a| a.bootstrap.ignored_spent));
    adopt(&mut s, &RefreshToken::new("boot-second"), None, "cfp", T0 + 120_000);
    assert_kept_aside(&s, "rt-1");
}

/// F1c (fixed by `chain_refresh_fp`): the live token, never refreshed yet (the first value set),
/// is displaced by two wrong values in turn, then set again: it is held,
/// the second wrong value kept aside. A new value then takes the one kept
/// aside for the live one and spends the live token.
#[test]
fn f1c_the_value_kept_aside_set_again_then_a_new_one_keeps_it() {
    let mut s = AuthorityState::default();
    for (i, value) in ["boot-0", "typo-1", "typo-2", "boot-0", "boot-new"].into_iter().enumerate() {
        adopt(&mut s, &RefreshToken::new(value), None, "cfp", T0 + i as i64 * 60_000);
    }
    assert_kept_aside(&s, "boot-0");
}
