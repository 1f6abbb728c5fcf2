//! The spend cap and the audit trail around the order ledger: what happens
//! to a placeOrder before and after its `OrderLedger` call.
//!
//! 1. A key with an `order_amount_per_day` first reserves the order's
//!    amount in the `KeyRegistry` (one call, the only one the caller waits
//!    for): over the cap, the answer is `429 quota_exceeded` and nothing is
//!    sent (the registry records the refusal in the same call).
//! 2. The ledger places the order exactly as without a cap
//!    ([`crate::objects::ledger::send`]).
//! 3. What its answer means (`plumgate_core::audit::classify`: placed,
//!    replayed, refused, unknown...; `audit::with_fate`: not `unknown` when
//!    the ledger knows nothing was placed) settles the reservation and becomes an
//!    audit entry, in one registry call made after the answer has gone
//!    (`waitUntil`): a key without a cap pays no time for either. The call
//!    is retried if no answer comes (the registry takes each request id
//!    once; an error it answers is not retried: its writes may be partly
//!    done), and after the last try an error line
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
use plumgate_core::ledger::{unsent, LOOK_WAIT_MS};
use plumgate_core::logline::{event, Trace};
use plumgate_core::secret;
use plumgate_core::wire::registry::{Op, Reply, Request};
use serde_json::Value;
use worker::{console_error, Context, Env};

/// Attempts at the settling call that get no answer, 1 s then 2 s apart
/// (the registry may be restarting in a deploy; all within `waitUntil`'s
/// time).
const SETTLE_ATTEMPTS: usize = 3;
const SETTLE_PAUSE_MS: i64 = 1_000;

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
    let (mut held, mut created) = (false, false);
    if let Some(cap) = caller.limits.order_amount_per_day {
        let from_static = caller.source == KeySource::Static;
        let req = Request { cap: Some(cap), from_static, ..Request::of_attempt(&attempt) };
        match registry::call(env, Op::Reserve, &req).await {
            Ok(Reply { error: Some(e), .. }) | Err(e) => return (Err(unsent(e)), Trace::default()),
            Ok(r) => (held, created) = (r.held, r.created),
        }
    }
    let (reply, lost) = ledger::send(env, account, data, fingerprint).await;
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
            let refused = loop {
                tried += 1;
                match registry::call(&env, Op::Settle, &settle).await {
                    Ok(Reply { error: None, .. }) => return,
                    // The registry answered with an error (its storage): not
                    // sent again, since its writes may be partly done (a
                    // second settle would count the hold's request twice).
                    Ok(_) => break true,
                    Err(_) if tried < SETTLE_ATTEMPTS => pause(SETTLE_PAUSE_MS * tried as i64).await,
                    Err(_) => break false,
                }
            };
            // The key's usage and audit trail miss this order: said once, loudly.
            let po_fp = secret::fingerprint(&attempt.po_number);
            console_error!(
                "{}",
                event(&[
                    ("event", "registry_settle_failed".into()),
                    ("level", "error".into()),
                    ("key", attempt.key.as_str().into()),
                    ("po_fp", po_fp.as_str().into()),
                    ("attempts", (tried as i64).into()),
                    ("why", if refused { "the registry answered with an error" } else { "no answer" }.into()),
                ])
            );
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
