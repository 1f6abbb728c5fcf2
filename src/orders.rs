//! The spend cap and the audit trail around the order ledger: what happens
//! to a placeOrder before and after its `OrderLedger` call.
//!
//! 1. A key with an `order_amount_per_day` first reserves the order's
//!    amount in the `KeyRegistry` (one call, the only one the caller waits
//!    for): over the cap, the answer is `429 quota_exceeded` and nothing is
//!    sent (the registry records the refusal in the same call). Over the
//!    cap, or with no answer from the registry, the ledger is then asked (a
//!    look, never a placement; `plumgate_core::ledger::look_after`): a retry
//!    of an order it holds gets the ledger's answer, its stored one replayed
//!    or its call in flight waited for (`plumgate_core::ledger::after_reservation`),
//!    and its audit entry then says so (`record`, replacing the refusal's).
//! 2. The ledger places the order exactly as without a cap
//!    ([`crate::objects::ledger::send`]).
//! 3. What its answer means (`plumgate_core::audit::classify`: placed,
//!    replayed, refused, unknown...; `audit::with_fate`: not `unknown` when
//!    the ledger knows nothing was placed) settles the reservation and becomes an
//!    audit entry, in one registry call made after the answer has gone
//!    (`waitUntil`): a key without a cap pays no time for either. The call
//!    is retried if no answer comes (`plumgate_core::registry::settle_retry`
//!    decides), and after the last try an error line
//!    (`registry_settle_failed`) says the key's usage and audit trail miss
//!    the order.
//!    When the ledger's answer was lost (the caller got `502
//!    upstream_error`: the order may exist), the ledger is first asked
//!    what became of it ([`crate::objects::ledger::look`], never a
//!    placement; at most `LOOK_WAIT_MS`), and the entry and the hold
//!    settle on that (`plumgate_core::audit::after_lost_answer`) rather
//!    than stay `unknown` until the caller retries.

use crate::objects::{ledger, registry};
use crate::runtime::defer::defer;
use crate::runtime::http::Outgoing;
use crate::runtime::wait::{pause, within};
use plumgate_core::audit::{self, Answered, Attempt};
use plumgate_core::auth::{Caller, KeySource};
use plumgate_core::errors::{ApiError, ErrorCode, ErrorStyle};
use plumgate_core::ledger::{after_reservation, look_after, unsent, LOOK_WAIT_MS};
use crate::runtime::error_event;
use plumgate_core::logline::Trace;
use plumgate_core::registry::{settle_retry, SettleNext, SettleTry};
use plumgate_core::secret;
use plumgate_core::wire::registry::{Op, Reply, Request};
use serde_json::Value;
use worker::{Context, Env};

/// Place a validated order for `caller` on `account` (see the module
/// docs); the answer and the trace are the ledger's.
#[allow(clippy::too_many_arguments)]
pub async fn place(
    env: &Env,
    ctx: &Context,
    account: &str,
    caller: &Caller,
    data: Value,
    fingerprint: String,
    request_id: &str,
    style: ErrorStyle,
) -> (Result<Outgoing, ApiError>, Trace) {
    let attempt = Attempt::of_order(&caller.id, &data, &fingerprint, request_id);
    let (mut held, mut created, mut turned_away) = (false, false, None);
    if let Some(cap) = caller.limits.order_amount_per_day {
        let from_static = caller.source == KeySource::Static;
        let req = Request { cap: Some(cap), from_static, ..Request::of_attempt(&attempt) };
        match registry::call(env, Op::Reserve, &req).await {
            Ok(Reply { error: Some(e), .. }) | Err(e) if !look_after(&e) => return (Err(unsent(e)), Trace::default()),
            Ok(Reply { error: Some(e), .. }) | Err(e) => turned_away = Some(e),
            Ok(r) => (held, created) = (r.held, r.created),
        }
    }
    // Turned away, it may still be the retry of an order the ledger holds:
    // the ledger is asked (a look, never a placement) for its answer.
    let (reply, lost) = ledger::send(env, account, data, fingerprint, turned_away.is_none()).await;
    if let Some(e) = turned_away {
        return match after_reservation(e, lost.is_none().then_some(reply)) {
            Ok(reply) => {
                // Its audit entry says what the caller got (one try, after
                // the answer; failing, the refusal's entry stands).
                let (answer, trace) = ledger::render(reply, style, request_id);
                let record = Request::of_attempt(&attempt).with_result(audit::classify(answered(&answer, &trace)));
                let env = env.clone();
                defer(ctx, Box::pin(async move { drop(registry::call(&env, Op::Record, &record).await) }));
                (answer, trace)
            }
            Err(e) => (Err(e), Trace::default()),
        };
    }
    let fate = reply.fate;
    let (answer, trace) = ledger::render(reply, style, request_id);
    let result = audit::with_fate(audit::classify(answered(&answer, &trace)), fate);
    let env = env.clone();
    defer(
        ctx,
        Box::pin(async move {
            let result = match &lost {
                Some(lost) => match within(LOOK_WAIT_MS, ledger::look(&env, lost)).await {
                    Some(Some(look)) => audit::after_lost_answer(result, &look),
                    _ => result,
                },
                None => result,
            };
            let settle = Request { held, created, ..Request::of_attempt(&attempt) }.with_result(result);
            let mut tried = 0;
            let why = loop {
                tried += 1;
                let last = match registry::call(&env, Op::Settle, &settle).await {
                    Ok(Reply { error: None, .. }) => SettleTry::Settled,
                    Ok(_) => SettleTry::Refused,
                    Err(_) => SettleTry::NoAnswer,
                };
                match settle_retry(last, tried) {
                    SettleNext::Done => return,
                    SettleNext::Retry { after_ms } => pause(after_ms).await,
                    SettleNext::GiveUp { why } => break why,
                }
            };
            // The key's usage and audit trail miss this order: said once, loudly.
            let po_fp = secret::fingerprint(&attempt.po_number);
            error_event(&[
                ("event", "registry_settle_failed".into()),
                ("level", "error".into()),
                ("key", attempt.key.as_str().into()),
                ("po_fp", po_fp.as_str().into()),
                ("attempts", i64::from(tried).into()),
                ("why", why.into()),
            ]);
        }),
    );
    (answer, trace)
}

/// The ledger's answer as the caller got it: plumgate's error (the trace
/// names its code) or Xoxoday's answer with the ledger's headers.
fn answered<'a>(answer: &'a Result<Outgoing, ApiError>, trace: &Trace) -> Answered<'a> {
    match answer {
        Err(e) => Answered::Error { status: e.status, code: e.code },
        Ok(resp) => {
            let status = resp.status_code();
            if let Some(code) = trace.error {
                return Answered::Error { status, code: ErrorCode::from_name(code).unwrap_or(ErrorCode::InternalError) };
            }
            let flag = |name: &str| resp.header(name) == Some("true");
            let body = resp.body();
            Answered::Answer { status, body, replayed: flag("x-plumgate-replayed"), reconciled: flag("x-plumgate-reconciled") }
        }
    }
}
