//! The isolate's side of the shared rate limiter: before each call to
//! Xoxoday, [`admit`] spends one of the calls this isolate was lent, from
//! memory; only when none is left does it ask the `RateLimiter` object for
//! a lease (`objects::limiter`). After Xoxoday's rate-limit answer,
//! [`report`] refuses the operation here at once and tells the object, so
//! every other isolate learns it with its next lease.
//!
//! What each answer means is `plumgate_core::limits::Local`'s decision;
//! this module keeps one per operation in isolate memory and makes the
//! calls it asks for. Each request that must ask makes its own call (a
//! promise another request made cannot be awaited in Workers); the leases
//! they bring back are pooled here for every request of the isolate.
//!
//! When the limiter cannot be asked (no binding, unreachable), the call
//! goes ahead: Xoxoday's own penalty is the backstop, and the request's log
//! line says `"note":"limiter_unavailable"`.

use crate::objects::limiter;
use crate::runtime::clock::now_ms;
use plumgate_core::config::Config;
use plumgate_core::errors::ApiError;
use plumgate_core::limits::unvalidated::Held;
use plumgate_core::limits::{penalty_until, refusal_error, secs_until, Admit, Local};
use plumgate_core::ops::Operation;
use plumgate_core::upstream::Observed;
use plumgate_core::wire::limiter::Call;
use std::cell::RefCell;
use worker::Env;

thread_local! {
    /// Per operation, in `Operation::ALL` order; then the drop-in query
    /// plumgate does not know under a penalty this isolate met
    /// (`plumgate_core::limits::unvalidated`).
    static LOCAL: RefCell<([Local; 7], Held)> = RefCell::default();
}

fn with_local<T>(op: Operation, f: impl FnOnce(&mut Local) -> T) -> T {
    let i = Operation::ALL.iter().position(|o| *o == op).unwrap_or(0);
    LOCAL.with(|l| f(&mut l.borrow_mut().0[i]))
}

/// What [`admit`] decided.
pub enum Admitted {
    /// Call Xoxoday.
    Go,
    /// Call Xoxoday; the limiter could not be asked.
    Unchecked,
    /// Do not: `429 rate_limited` with `Retry-After`.
    Refused(ApiError),
}

/// May a call of `op` go to Xoxoday now?
pub async fn admit(env: &Env, cfg: &Config, op: Operation) -> Admitted {
    let budget = cfg.rate_limits.of(op);
    let want = match with_local(op, |l| l.admit(now_ms())) {
        Admit::Go => return Admitted::Go,
        Admit::Refuse(r) => return Admitted::Refused(refusal_error(op, r, budget, now_ms())),
        Admit::Ask { want } => want,
    };
    let Some(answer) = limiter::call(env, cfg.account_id(), &Call::Lease { op, want }).await else {
        return Admitted::Unchecked;
    };
    let now = now_ms();
    match with_local(op, |l| l.take_lease(&answer, now)) {
        Admit::Go | Admit::Ask { .. } => Admitted::Go,
        Admit::Refuse(r) => Admitted::Refused(refusal_error(op, r, budget, now)),
    }
}

/// Xoxoday answered `op` with its rate-limit answer (`observed`): refuse it
/// here until the penalty ends (this isolate's reading, at once) and tell
/// the limiter, whose answer then stands, sooner or later (it knows the
/// earlier penalties), but never before a duration Xoxoday stated to this
/// isolate ends (`Local::settle_penalty`). Returns the seconds it lasts.
pub async fn report(env: &Env, cfg: &Config, op: Operation, observed: Observed) -> u64 {
    let now = now_ms();
    let mut until = penalty_until(None, observed, now).until_ms;
    with_local(op, |l| l.met(until, matches!(observed, Observed::Stated(_))));
    if let Some(shared) = limiter::call(env, cfg.account_id(), &Call::Penalise { op, observed }).await.and_then(|a| a.penalty_until_ms) {
        until = with_local(op, |l| l.settle_penalty(shared));
    }
    secs_until(until, now_ms())
}

/// A drop-in `query` plumgate does not know, still under the penalty
/// Xoxoday answered it with in this isolate: its `429 rate_limited`, and
/// nothing is sent.
pub fn unvalidated_held(query: &str) -> Option<ApiError> {
    let secs = LOCAL.with(|l| l.borrow().1.left(query, now_ms()))?;
    Some(ApiError::rate_limited("this query", secs))
}

/// Xoxoday answered the unknown `query` with a penalty of `secs`: hold it
/// back in this isolate until it ends.
pub fn unvalidated_penalised(query: &str, secs: u64) {
    LOCAL.with(|l| l.borrow_mut().1.start(query, secs, now_ms()));
}
