//! Xoxoday's rate limits, decided without I/O: the per-minute budget of
//! each operation, the shared limiter's accounting (the `RateLimiter`
//! Durable Object's decisions, [`lease`](mod@lease)), what an isolate does with the
//! calls it was lent ([`local`]), how long to stay away after Xoxoday
//! penalises an operation ([`penalty_until`]), and the penalty an isolate
//! keeps for a drop-in query plumgate does not know ([`unvalidated`]).
//!
//! # Why a Durable Object, and why leases
//! Xoxoday counts calls per client, so every isolate and every location of
//! a deployment spends one budget. The count must be strongly consistent:
//! Workers KV is eventually consistent (a write can take 60 s or more to be
//! seen elsewhere, and allows one write per second per key), so isolates
//! reading it would each believe the budget untouched and together overrun
//! it, and a penalty one isolate learnt would reach the others after the
//! minute it lasts. The Rate Limiting binding counts per location and
//! approximately. One `RateLimiter` object per Xoxoday account is the one
//! place that knows.
//!
//! Asking that object before every call would put a Durable Object round
//! trip on every request. Instead an isolate borrows a few calls at a time
//! (a *lease*, usable for [`LEASE_MS`]) and spends them from memory; only
//! when they run out or expire does it ask again. A lease's calls count
//! against the budget from the moment they are lent until [`WINDOW_MS`]
//! and [`TRANSIT_MS`] after the lease expires (the last call made under it
//! has reached Xoxoday, and left its minute, by then), so the calls lent
//! in any 60 s never exceed the budget whenever they are spent: at most the
//! budget per 67 s goes out. Leases
//! start at one call and double while an isolate spends them before they
//! expire, never above a tenth of the budget ([`max_lease`]), so calls
//! sitting unspent in an idle isolate cannot starve the others for long.
//!
//! The object also holds each operation's penalty and returns it with
//! every lease: an isolate learns of a penalty another isolate met at its
//! next lease (within [`LEASE_MS`]), and one it met itself at once.
//!
//! # Penalties ([`penalty_until`])
//! - Xoxoday names a duration (`penaltySeconds`, `Retry-After`): exactly
//!   that.
//! - It names none: 60 s, doubling for each penalty that follows within
//!   [`STRIKE_RESET_MS`] of the previous one's end, at most an hour. A 429
//!   without `Retry-After` is thus never retried every minute for ever.
//! - The daily cap (getVouchers, 500 calls per 24 h): until the next day
//!   boundary ([`next_day_boundary`]); once both calendar readings are
//!   refuted, no later than a day after the cap was first met (a rolling
//!   24 h window, [`daily_until`]). A cap met again more than
//!   [`DAILY_PROBE_MS`] after the first call lent once the last penalty
//!   ended is a new day's cap.
//!
//! A penalty is never shortened by a later report of the same one (several
//! isolates may report it), and reports during a penalty do not escalate.
//! Where plumgate guessed the end (the last two), the first call lent after
//! it is the probe, lent alone, and no other goes for
//! [`lease::PROBE_HOLD_MS`]: a penalty still on costs one refused call, not
//! one per isolate asking at its end. Refused daily probes add no strikes.

use crate::ops::Operation;
use crate::upstream::Observed;
#[cfg(test)]
use serde::Deserialize;
use serde::Serialize;

pub mod lease;
pub mod local;
pub mod unvalidated;

pub use lease::{lease, penalise, LeaseAnswer, LimiterState};
pub use local::{Admit, Local, Refusal, Why};

/// Xoxoday's counting window.
pub const WINDOW_MS: i64 = 60_000;

/// How long an isolate may spend the calls of one lease.
pub const LEASE_MS: i64 = 5_000;

/// How much later than it leaves the isolate a call may reach Xoxoday (the
/// token, the connection): a lease's calls count this much longer than
/// [`WINDOW_MS`] after it expires, so a call spent at a lease's end and one
/// lent when it stops counting never meet in one of Xoxoday's minutes. (A
/// call held up longer, such as one waiting for a token refresh, is not
/// covered.)
pub const TRANSIT_MS: i64 = 2_000;

/// How long after its lease expires a grant counts against the budget.
pub(crate) const COUNTED_MS: i64 = WINDOW_MS + TRANSIT_MS;

/// A penalty that follows the previous one's end within this long counts
/// as a repeat (the unstated duration doubles).
pub const STRIKE_RESET_MS: i64 = 600_000;

/// The first unstated penalty.
pub const UNSTATED_FIRST_SECS: u64 = 60;

/// The longest unstated penalty.
pub const UNSTATED_MAX_SECS: u64 = 3_600;

/// Largest budget `XOXODAY_RATE_LIMITS` accepts for one operation.
pub const MAX_BUDGET: u32 = 1_000_000;

/// Xoxoday's documented per-minute limit of `op` (xoxoday-api.md §3.9,
/// "rate-limiting", updated Jan 2026). paymentHistory is not in the table:
/// it gets 50, the lowest limit of the documented read operations other
/// than getBalance (a report that scans payments is no cheaper for Xoxoday
/// than a catalog page), so plumgate cannot overrun it whichever of the
/// documented tiers applies, short of getBalance's.
pub fn documented_budget(op: Operation) -> u32 {
    match op {
        Operation::GetOrderDetails | Operation::GetOrderHistory => 200,
        Operation::PlaceOrder => 100,
        Operation::GetBalance => 10,
        Operation::GetFilters | Operation::GetVouchers | Operation::PaymentHistory => 50,
    }
}

/// The per-minute budget of every operation: the documented ones, or
/// `XOXODAY_RATE_LIMITS`' (an account Xoxoday granted other limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budgets([u32; 7]);

impl Default for Budgets {
    fn default() -> Self {
        Budgets(Operation::ALL.map(documented_budget))
    }
}

impl Budgets {
    /// The budget of `op`.
    pub fn of(&self, op: Operation) -> u32 {
        self.0[index(op)]
    }

    /// `XOXODAY_RATE_LIMITS`: a JSON object of per-minute limits by
    /// operation name (`{"getBalance": 30}`); operations it leaves out keep
    /// the documented limit.
    ///
    /// # Errors
    /// A sentence naming the variable (never its value) when it is not
    /// such an object, names an unknown operation, or gives a limit that is
    /// not a whole number from 1 to [`MAX_BUDGET`].
    pub fn parse(text: &str) -> Result<Budgets, String> {
        const RULE: &str = "XOXODAY_RATE_LIMITS must be a JSON object of per-minute limits by operation name (whole numbers from 1 to 1000000)";
        let v: serde_json::Value = crate::jsontext::from_text(text).map_err(|_| RULE.to_string())?;
        let obj = v.as_object().ok_or_else(|| RULE.to_string())?;
        if crate::jsontext::repeats_a_member(text.as_bytes(), &v) {
            return Err("XOXODAY_RATE_LIMITS names an operation twice".into());
        }
        let mut out = Budgets::default();
        for (name, limit) in obj {
            let op = Operation::from_name(name).ok_or_else(|| "XOXODAY_RATE_LIMITS names an unknown operation; expected operation names such as getBalance".to_string())?;
            let n = limit.as_u64().filter(|n| (1..=u64::from(MAX_BUDGET)).contains(n)).ok_or_else(|| RULE.to_string())?;
            out.0[index(op)] = n as u32;
        }
        Ok(out)
    }
}

/// `op`'s position in [`Operation::ALL`].
fn index(op: Operation) -> usize {
    Operation::ALL.iter().position(|o| *o == op).unwrap_or(0)
}

/// The most calls one lease lends: a tenth of the budget, at least one.
pub fn max_lease(budget: u32) -> u32 {
    (budget / 10).max(1)
}

/// A penalty on one operation, as the limiter keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
pub struct Penalty {
    /// No call before this (epoch ms).
    pub until_ms: i64,
    /// How many penalties in a row (each within [`STRIKE_RESET_MS`] of the
    /// previous one's end).
    pub strikes: u32,
    /// When the daily cap was first met, while it may still be the same
    /// one (less than a day ago); `None` for other penalties.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_since_ms: Option<i64>,
    /// When the first call after its end was lent (the probe: lent alone,
    /// [`lease::PROBE_HOLD_MS`]); for a daily cap also whether a cap met
    /// again is the same one refusing the probe (soon after it) or a new
    /// day's. A stated penalty, whose end Xoxoday named, is not probed: its
    /// report's time is here from the start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_lent_ms: Option<i64>,
}

/// How long Xoxoday's penalty lasts, given what it said (`observed`), the
/// operation's previous penalty, and the time. See the module docs.
pub fn penalty_until(previous: Option<Penalty>, observed: Observed, now_ms: i64) -> Penalty {
    let running = previous.filter(|p| p.until_ms > now_ms);
    let strikes = match (running, previous) {
        // The same penalty reported again: no escalation.
        (Some(p), _) => p.strikes.max(1),
        // A daily cap's refused probes are no strikes: its length does not
        // count them, and a minute's penalty soon after would.
        (None, Some(p)) if now_ms - p.until_ms < STRIKE_RESET_MS => p.strikes.saturating_add(u32::from(observed != Observed::Daily)).max(1),
        _ => 1,
    };
    // The daily cap met less than a day ago may be the same one still: when
    // this refusal comes during its penalty, or within DAILY_PROBE_MS of the
    // first call lent after it (the probe, whenever traffic sent it; none
    // lent yet: nothing went through). Met again later, calls went through
    // meanwhile: a new day's cap, counted from now.
    let mut daily_since_ms = previous
        .filter(|p| p.until_ms > now_ms || p.first_lent_ms.is_none_or(|t| now_ms - t < DAILY_PROBE_MS))
        .and_then(|p| p.daily_since_ms)
        .filter(|s| now_ms - s < DAY_MS);
    let until = match observed {
        Observed::Stated(secs) => crate::time::add_secs(now_ms, secs.max(1)),
        Observed::Unstated => crate::time::add_secs(now_ms, unstated_secs(strikes)),
        Observed::Daily => {
            let since = *daily_since_ms.get_or_insert(now_ms);
            daily_until(since, now_ms)
        }
    };
    // Stated, nothing to probe: unless a guessed penalty's end or a daily
    // cap's probe still stands (a stated report during either).
    let first_lent_ms = match observed {
        Observed::Stated(_) if daily_since_ms.is_none() && running.is_none_or(|p| p.first_lent_ms.is_some()) => Some(now_ms),
        _ => None,
    };
    Penalty { until_ms: until.max(running.map_or(i64::MIN, |p| p.until_ms)), strikes, daily_since_ms, first_lent_ms }
}

/// When a daily cap first met at `since_ms` and met again at `now_ms` ends:
/// the next day boundary ([`next_day_boundary`]), or a day after
/// `since_ms` (and a minute, for the clocks) if that comes first.
///
/// The third reading of "500 calls per 24 h" is a rolling window. Under it
/// the cap lifts as the oldest call of the window turns a day old, which is
/// before a day has passed since the cap was met, but need not be at a
/// midnight: waiting for boundaries alone could wait up to 18.5 h past it.
/// The day bound comes before the next boundary only after a probe at both
/// the UTC and the IST midnight was refused, that is, when both calendar
/// readings are refuted; so it costs those readings no call.
pub fn daily_until(since_ms: i64, now_ms: i64) -> i64 {
    let rolling = since_ms.saturating_add(DAY_MS + 60_000);
    let boundary = next_day_boundary(now_ms);
    if rolling > now_ms {
        boundary.min(rolling)
    } else {
        boundary
    }
}

/// The unstated penalty after `strikes` penalties in a row: 60 s, 120 s,
/// 240 s, … at most an hour.
pub fn unstated_secs(strikes: u32) -> u64 {
    let doublings = strikes.saturating_sub(1).min(16);
    (UNSTATED_FIRST_SECS << doublings).min(UNSTATED_MAX_SECS)
}

/// Midnight in India (IST, UTC+05:30) is 18:30 UTC.
const IST_MIDNIGHT_UTC_MS: i64 = (18 * 60 + 30) * 60_000;
const DAY_MS: i64 = 86_400_000;

/// A daily cap met again within this of the first call lent after the last
/// one's penalty (an hour) may be that same cap (a rolling window's,
/// refusing the probe); met again later, calls went through in between: a
/// new day's cap. (A new calendar day's cap met within an hour of its
/// first call thus costs one probe.)
pub const DAILY_PROBE_MS: i64 = 3_600_000;

/// When the daily cap ends: the next midnight in India (IST), or the next
/// midnight UTC if that comes first.
///
/// Xoxoday does not say when its day starts. It states its daily schedule
/// in IST (the catalog refreshes at 00:00, 06:00, 12:00 and 18:00 IST, FX
/// rates at 03:01 IST; xoxoday-api.md §3.2), and the company runs on Indian
/// time, so IST midnight is the likeliest reset. Because that is an
/// inference, plumgate also tries once at UTC midnight when that comes
/// first: if the cap is still on, that one call is answered 429 again and
/// the wait goes on to IST midnight. Either reading costs at most one
/// refused call a day, and never a day of waiting for nothing. (A rolling
/// 24 h window, which neither midnight need end, is [`daily_until`]'s.)
pub fn next_day_boundary(now_ms: i64) -> i64 {
    let next_after = |offset: i64| {
        let day_start = (now_ms - offset).div_euclid(DAY_MS) * DAY_MS + offset;
        day_start + DAY_MS
    };
    next_after(0).min(next_after(IST_MIDNIGHT_UTC_MS))
}

/// The `429 rate_limited` a refused call gets (`budget`: the operation's).
pub fn refusal_error(op: Operation, refusal: Refusal, budget: u32, now_ms: i64) -> crate::errors::ApiError {
    let secs = secs_until(refusal.until_ms, now_ms);
    match refusal.why {
        Why::Penalty => crate::errors::ApiError::rate_limited(op.name(), secs),
        Why::Budget => crate::errors::ApiError::rate_limited_because(
            format!(
                "plumgate keeps {op} under Xoxoday's limit of {budget} calls a minute, and this minute's calls are spent; retry after {secs} s"
            ),
            secs,
        ),
    }
}

/// Whole seconds from `now_ms` until `until_ms`, at least 1 (for
/// `Retry-After`).
pub fn secs_until(until_ms: i64, now_ms: i64) -> u64 {
    crate::time::secs_until(until_ms, now_ms).max(1)
}

#[cfg(test)]
mod tests;
