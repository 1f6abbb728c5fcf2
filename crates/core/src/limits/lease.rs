//! The `RateLimiter` Durable Object's accounting: what it keeps
//! ([`LimiterState`], stored whole as JSON under [`STATE_KEY`]) and what it
//! answers to a lease request ([`lease`]) or a penalty report
//! ([`penalise`]). See the parent module for why leases and how they count.

use super::{max_lease, penalty_until, Penalty, COUNTED_MS, LEASE_MS, STRIKE_RESET_MS};
use crate::stored::{get, int, list, need, object, opt_int, slot, small_count, text, Fields};
use crate::upstream::Observed;
#[cfg(test)]
use serde::Deserialize;
use serde::Serialize;

/// Storage key of the limiter's state.
pub const STATE_KEY: &str = "limits";

/// After a penalty whose end plumgate guessed (a daily cap's, or one
/// Xoxoday named no length for), the first call lent is lent alone, and no
/// other for this long: time for its answer and, if it is refused, the
/// report that starts the next penalty. A penalty still on then costs one
/// refused call, not one per isolate that asked meanwhile.
pub const PROBE_HOLD_MS: i64 = 5_000;

/// Calls lent to one isolate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
pub struct Grant {
    /// When they were lent (epoch ms).
    pub at_ms: i64,
    /// How many.
    pub calls: u32,
    /// Spendable until then; they count against the budget until
    /// [`super::WINDOW_MS`] and [`super::TRANSIT_MS`] after it.
    pub until_ms: i64,
}

/// One operation's account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
pub struct OpState {
    /// The operation's name.
    pub op: String,
    /// Leases still counting against the budget.
    #[serde(default)]
    pub grants: Vec<Grant>,
    /// The latest penalty (kept after it ends, for escalation).
    #[serde(default)]
    pub penalty: Option<Penalty>,
}

/// Everything the limiter keeps, one account per operation met. Fields a
/// later version adds have defaults, so every version reads every other's
/// state. (A list rather than a map by name: there are seven operations,
/// and a map type would cost the worker's wasm its own code.) Read by hand
/// ([`load`], with `crate::stored`); the derive is for the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
pub struct LimiterState {
    /// Per operation.
    #[serde(default)]
    pub ops: Vec<OpState>,
}

impl LimiterState {
    /// The account of operation `op`, made on first use.
    fn account(&mut self, op: &str) -> &mut OpState {
        match self.ops.iter().position(|a| a.op == op) {
            Some(i) => &mut self.ops[i],
            None => {
                self.ops.push(OpState { op: op.to_string(), ..OpState::default() });
                self.ops.last_mut().expect("just pushed")
            }
        }
    }

    /// The account of operation `op`, if it has one.
    pub fn of(&self, op: &str) -> Option<&OpState> {
        self.ops.iter().find(|a| a.op == op)
    }
}

/// What the limiter answers, to a lease request or a penalty report (read
/// by hand: `wire::limiter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
pub struct LeaseAnswer {
    /// Calls lent (0: none).
    pub calls: u32,
    /// Spendable until then.
    pub until_ms: i64,
    /// Xoxoday's penalty on the operation, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub penalty_until_ms: Option<i64>,
    /// No call lent because the budget is spent: when one frees up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at_ms: Option<i64>,
}

impl OpState {
    /// Drop grants that no longer count, and the calls that still do.
    fn occupied(&mut self, now_ms: i64) -> u64 {
        self.grants.retain(|g| g.until_ms.saturating_add(COUNTED_MS) > now_ms);
        self.grants.iter().map(|g| u64::from(g.calls)).sum()
    }

    fn running_penalty(&self, now_ms: i64) -> Option<i64> {
        self.penalty.map(|p| p.until_ms).filter(|u| *u > now_ms)
    }
}

/// Lend up to `want` calls of operation `op` (budget `budget` per minute):
/// none under a penalty (its end is in the answer), none when the budget is
/// spent (when a call frees up is), else `min(want, free calls,
/// max_lease(budget))`, at least one; after a guessed penalty, one (the
/// probe) and then none for [`PROBE_HOLD_MS`] (answered as the penalty).
pub fn lease(state: &mut LimiterState, op: &str, budget: u32, want: u32, now_ms: i64) -> LeaseAnswer {
    let acct = state.account(op);
    let occupied = acct.occupied(now_ms);
    if let Some(until) = acct.running_penalty(now_ms) {
        return LeaseAnswer { calls: 0, until_ms: now_ms, penalty_until_ms: Some(until), retry_at_ms: None };
    }
    let free = u64::from(budget).saturating_sub(occupied);
    if free == 0 {
        // Any grant that stops counting frees at least one call.
        let next = acct.grants.iter().map(|g| g.until_ms.saturating_add(COUNTED_MS)).min().unwrap_or(now_ms + 1_000);
        return LeaseAnswer { calls: 0, until_ms: now_ms, penalty_until_ms: None, retry_at_ms: Some(next) };
    }
    let mut calls = u64::from(want.max(1)).min(free).min(u64::from(max_lease(budget))) as u32;
    // The probe after a guessed penalty, and the hold after it (answered as
    // the penalty's, which it may still be).
    if let Some(p) = acct.penalty.as_mut() {
        match p.first_lent_ms {
            // (One that ended long ago, stored by an earlier version that
            // kept no probe time, is over: no probe.)
            None if p.daily_since_ms.is_some() || now_ms - p.until_ms < STRIKE_RESET_MS => {
                p.first_lent_ms = Some(now_ms);
                calls = 1;
            }
            Some(t) if t >= p.until_ms && now_ms >= t && now_ms - t < PROBE_HOLD_MS => {
                return LeaseAnswer { calls: 0, until_ms: now_ms, penalty_until_ms: Some(t + PROBE_HOLD_MS), retry_at_ms: None };
            }
            _ => {}
        }
    }
    let until_ms = now_ms.saturating_add(LEASE_MS);
    acct.grants.push(Grant { at_ms: now_ms, calls, until_ms });
    LeaseAnswer { calls, until_ms, penalty_until_ms: None, retry_at_ms: None }
}

/// Record Xoxoday's penalty on `op` (as `observed` by an isolate); the
/// answer carries its end.
pub fn penalise(state: &mut LimiterState, op: &str, observed: Observed, now_ms: i64) -> LeaseAnswer {
    let acct = state.account(op);
    let p = penalty_until(acct.penalty, observed, now_ms);
    acct.penalty = Some(p);
    LeaseAnswer { calls: 0, until_ms: now_ms, penalty_until_ms: Some(p.until_ms), retry_at_ms: None }
}

/// The state as stored, read leniently: text that cannot be read is a
/// fresh state (`None` in the second place says so, for the log). Losing
/// it costs at most a minute of exact accounting and a penalty's memory,
/// never the budget of a day: the limiter starts counting again at once.
pub fn load(text: Option<&str>) -> (LimiterState, bool) {
    match text {
        None => (LimiterState::default(), true),
        Some(t) => match crate::stored::parse(t.as_bytes(), state) {
            Some(s) => (s, true),
            None => (LimiterState::default(), false),
        },
    }
}

/// The state from its JSON ([`crate::stored`]'s rules).
fn state(o: &Fields) -> Option<LimiterState> {
    Some(LimiterState { ops: get(o, "ops", |v| list(v, |v| object(v, account))).ok()? })
}

fn account(o: &Fields) -> Option<OpState> {
    Some(OpState {
        op: need(o, "op", text)?,
        grants: get(o, "grants", |v| list(v, |v| object(v, grant))).ok()?,
        penalty: get(o, "penalty", |v| slot(v, penalty)).ok()?,
    })
}

fn grant(o: &Fields) -> Option<Grant> {
    Some(Grant { at_ms: need(o, "at_ms", int)?, calls: need(o, "calls", small_count)?, until_ms: need(o, "until_ms", int)? })
}

fn penalty(o: &Fields) -> Option<Penalty> {
    Some(Penalty {
        until_ms: need(o, "until_ms", int)?,
        strikes: need(o, "strikes", small_count)?,
        daily_since_ms: get(o, "daily_since_ms", opt_int).ok()?,
        first_lent_ms: get(o, "first_lent_ms", opt_int).ok()?,
    })
}
