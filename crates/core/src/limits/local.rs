//! An isolate's side of the shared limiter: the calls it was lent, per
//! operation ([`Local`]), spent from memory without a Durable Object round
//! trip ([`Local::admit`]), and what a lease answer or a penalty changes
//! ([`Local::take_lease`], [`Local::block`]).

use super::lease::LeaseAnswer;

/// Most calls an isolate asks for at once (the limiter lends at most a
/// tenth of the budget anyway).
pub const MAX_WANT: u32 = 1_000;

/// Why a call is refused before it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Xoxoday has put the operation under a penalty.
    Penalty,
    /// plumgate's own count: the operation's per-minute budget is spent.
    Budget,
}

/// A call refused until `until_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// No call before this.
    pub until_ms: i64,
    /// Why.
    pub why: Why,
}

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Call Xoxoday (one lent call is spent).
    Go,
    /// Ask the limiter for this many calls first.
    Ask {
        /// How many.
        want: u32,
    },
    /// Answer `429 rate_limited` (or serve a stale copy).
    Refuse(Refusal),
}

/// One operation's calls in this isolate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Local {
    /// Leases being spent: (calls left, spendable until).
    leases: Vec<(u32, i64)>,
    /// Size of the last lease.
    last_size: u32,
    /// When the last lease expires: asking again before that means demand
    /// outgrows its size.
    last_until_ms: i64,
    /// Refused until then (a penalty, or a spent budget).
    blocked: Option<Refusal>,
    /// The latest end of a penalty Xoxoday stated to this isolate: the
    /// limiter's word never ends a penalty before it ([`Local::met`]).
    stated_until_ms: i64,
}

impl Local {
    /// May a call go out now? A penalty refuses; a lent call is spent if
    /// there is one; a spent budget refuses until a call frees up;
    /// otherwise ask the limiter: for twice the last lease when it ran out
    /// before it expired (demand outgrew it), else for one call.
    pub fn admit(&mut self, now_ms: i64) -> Admit {
        if let Some(r) = self.blocked.filter(|r| r.until_ms > now_ms) {
            if r.why == Why::Penalty {
                return Admit::Refuse(r);
            }
        } else {
            self.blocked = None;
        }
        self.leases.retain(|(left, until)| *left > 0 && *until > now_ms);
        // Spend from the lease that expires first.
        if let Some(l) = self.leases.iter_mut().min_by_key(|(_, until)| *until) {
            l.0 -= 1;
            return Admit::Go;
        }
        if let Some(r) = self.blocked {
            return Admit::Refuse(r);
        }
        let ran_out_early = now_ms < self.last_until_ms;
        let want = if ran_out_early { self.last_size.saturating_mul(2).clamp(1, MAX_WANT) } else { 1 };
        Admit::Ask { want }
    }

    /// The limiter answered a request's lease: spend one of the calls for
    /// that request (or, with none lent, any still left here), else refuse.
    pub fn take_lease(&mut self, answer: &LeaseAnswer, now_ms: i64) -> Admit {
        if let Some(until) = answer.penalty_until_ms.filter(|u| *u > now_ms) {
            self.block(until, Why::Penalty);
            return Admit::Refuse(Refusal { until_ms: until, why: Why::Penalty });
        }
        // A penalty this isolate met while the lease was asked for (the
        // limiter had not heard of it yet): the lent calls would only
        // prolong it, and a spent budget must not take its place.
        if let Some(r) = self.blocked.filter(|r| r.why == Why::Penalty && r.until_ms > now_ms) {
            return Admit::Refuse(r);
        }
        let until = answer.retry_at_ms.unwrap_or(now_ms + 1_000).max(now_ms + 1);
        if answer.calls == 0 {
            // None lent: wait until one frees up.
            self.blocked = Some(Refusal { until_ms: until, why: Why::Budget });
        } else if answer.until_ms > now_ms {
            self.last_size = answer.calls;
            self.last_until_ms = answer.until_ms;
            if answer.calls > 1 {
                self.leases.push((answer.calls - 1, answer.until_ms));
            }
            return Admit::Go;
        }
        // (A lease that ran out before its answer came, a slow limiter,
        // lends nothing: its call would reach Xoxoday after the limiter
        // stopped counting it. Only this request waits: the next asks again.)
        // A call another request of this isolate was lent meanwhile still
        // goes; otherwise refuse.
        match self.admit(now_ms) {
            Admit::Ask { .. } => Admit::Refuse(Refusal { until_ms: until, why: Why::Budget }),
            other => other,
        }
    }

    /// Xoxoday's penalty, learnt by this isolate: refuse until `until_ms`;
    /// lent calls are dropped (they would only prolong it).
    pub fn block(&mut self, until_ms: i64, why: Why) {
        if why == Why::Penalty {
            self.leases.clear();
        }
        let later = self.blocked.filter(|b| b.why == why && b.until_ms > until_ms).map_or(until_ms, |b| b.until_ms);
        self.blocked = Some(Refusal { until_ms: later, why });
    }

    /// Xoxoday's penalty, met by this isolate's call: [`Local::block`], and
    /// a duration Xoxoday `stated` is remembered, so that no word of the
    /// limiter ends the penalty sooner (its answer to an earlier, shorter
    /// report of this isolate may come after a longer one was met).
    pub fn met(&mut self, until_ms: i64, stated: bool) {
        self.block(until_ms, Why::Penalty);
        if stated {
            self.stated_until_ms = self.stated_until_ms.max(until_ms);
        }
    }

    /// The limiter's word on a penalty this isolate met and reported: refuse
    /// until `until_ms`, even when that is sooner than this isolate's own
    /// reading ([`Local::block`]), but never before a duration Xoxoday stated
    /// to this isolate ends ([`Local::met`]). The limiter knows the earlier
    /// penalties (a daily cap probed at each reading of Xoxoday's day ends
    /// sooner than a first one would); every other isolate goes by it too.
    /// Returns the end kept.
    pub fn settle_penalty(&mut self, until_ms: i64) -> i64 {
        let until_ms = until_ms.max(self.stated_until_ms);
        self.blocked = Some(Refusal { until_ms, why: Why::Penalty });
        until_ms
    }

    /// Calls left in this isolate (for tests and the log).
    pub fn left(&self, now_ms: i64) -> u32 {
        self.leases.iter().filter(|(_, until)| *until > now_ms).map(|(left, _)| *left).sum()
    }
}
