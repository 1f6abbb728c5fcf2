//! Forwarding a validated Plum operation to Xoxoday.
//!
//! Owns the upstream side of an operation call, in this order:
//! 1. placeOrder goes to its `OrderLedger` (idempotency, reconciliation),
//!    with the key's spend cap and the audit trail around it
//!    ([`crate::orders`]); the ledger asks the limiter itself;
//! 2. getFilters / getVouchers / getBalance are served from the edge cache
//!    when fresh (`x-plumgate-cache: hit`), before anything else, so no
//!    penalty or spent budget ever refuses an answer plumgate already has;
//!    an admin's `Cache-Control: no-cache` skips the cache (`bypass`). The
//!    key holds only the fields that change Xoxoday's answer
//!    (`plumgate_core::ops::cache_key`); a catalog call with a field
//!    outside it skips the cache (its answer may differ). Concurrent
//!    misses of one entry in an isolate make one call: the others wait for
//!    its answer (`edge_cache::shared_fill`; their log line notes
//!    `shared_fill`), the timeout or penalty it ended in, or Xoxoday's
//!    answer it did not keep (to waiters that sent the same envelope);
//! 3. the shared limiter (`limits::admit`): under Xoxoday's penalty, or with
//!    the operation's per-minute budget spent, `429 rate_limited` with
//!    `Retry-After`, without calling upstream (contract §6);
//! 4. the canonical envelope goes out through the Plum client
//!    ([`crate::plum`]) with the bearer from the token cache; a 401 that can
//!    be about the token is checked by the token authority (Xoxoday's token
//!    check): a confirmed rejection gets one replacement and one retry, a
//!    valid token's 401 and every other 401 pass through unchanged
//!    (contract §4.6);
//! 5. Xoxoday's status and body come back unchanged; a rate-limit answer is
//!    reported to the limiter (every isolate stops calling) and answered
//!    `429 rate_limited`; an answer whose body is not JSON is none of
//!    Xoxoday's and is answered `502 upstream_error`
//!    (`plumgate_core::upstream::unreadable_answer`).
//!
//! Where 3, 4 or 5 end in a penalty or a failure (`plumgate_core::edge::
//! stale_instead_of`) and the edge cache still holds a copy of the answer
//! (expired, or fresh behind an admin's bypass), that copy is the
//! answer (`x-plumgate-cache: stale`: not this call's answer from
//! Xoxoday).
//!
//! With `BALANCE_ALERT_BELOW` set, the balance a getBalance answer from
//! Xoxoday shows goes back in the [`Trace`] for the alert check (cached
//! answers repeat a balance already seen, so they are not looked at).
//!
//! A drop-in query plumgate does not know (`forward_unvalidated`) takes
//! only step 4: the envelope as sent, no cache, no limiter (Xoxoday
//! documents no budget for it; its answer comes back as Xoxoday gave it,
//! except one that is not JSON (`502`, as in step 5) and a rate-limit
//! one, which is `429 rate_limited` with `Retry-After` as for every
//! operation, and the query is then answered so, unsent,
//! until that penalty ends, by the isolate that met it:
//! `plumgate_core::limits::unvalidated`), and placeOrder's long timeout,
//! since an unknown mutation may be an order.

use crate::edge_cache::{self, Shared};
use crate::limits::{self, Admitted};
use crate::orders;
use crate::plum;
use crate::respond::{bytes_response, passthrough, JSON};
use crate::runtime::clock::now_ms;
use crate::runtime::http::Outgoing;
use plumgate_core::auth::Caller;
use plumgate_core::config::Config;
use plumgate_core::edge::{after_answer, stale_instead_of, stale_secs, AfterAnswer, Cached, Freshness};
use plumgate_core::errors::{ApiError, ErrorStyle};
use plumgate_core::logline::Trace;
use plumgate_core::ops::{self, CacheClass, Operation, Prepared};
use plumgate_core::upstream::{api_penalty, balance_value, is_plum_success, unreadable_answer, unvalidated_penalty};
use serde_json::Value;
use worker::{Context, Env};

/// How the caller asked about the edge cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Use the cache.
    Normal,
    /// Admin sent `Cache-Control: no-cache`: go upstream, refresh the entry.
    Bypass,
}

/// Forward `op` with its prepared data for `caller`; `style` and
/// `request_id` are for the error answers the order ledger renders, `ctx`
/// for the work a placeOrder leaves for after its answer. What happened on
/// the way (cache, token, upstream status) comes back as a [`Trace`] for
/// the router's log line, whatever the outcome.
#[allow(clippy::too_many_arguments)]
pub async fn forward(
    env: &Env,
    ctx: &Context,
    cfg: &Config,
    caller: &Caller,
    op: Operation,
    prepared: Prepared,
    mode: CacheMode,
    style: ErrorStyle,
    request_id: &str,
) -> (Result<Outgoing, ApiError>, Trace) {
    let Prepared { data, fingerprint } = prepared;
    if op == Operation::PlaceOrder {
        let fingerprint = fingerprint.unwrap_or_else(|| ops::order_fingerprint(&data));
        return orders::place(env, ctx, cfg.account_id(), caller, data, fingerprint, request_id, style).await;
    }
    let class = op.cache_class();
    let ttl = match class {
        Some(CacheClass::Catalog) => cfg.catalog_cache_ttl_secs,
        Some(CacheClass::Balance) => cfg.balance_cache_ttl_secs,
        None => 0,
    };
    let key = ops::cache_key(op, &data);
    let url = key.as_ref().map(|k| edge_cache::url(cfg, ttl, k));
    let mut trace = Trace::default();
    let mut stale = None;
    // This request's fill of the entry, held until its answer is stored.
    let mut fill = None;
    // The envelope sent, once made.
    let mut envelope = None;
    if let (Some(url), Some(_), Some(key)) = (url.as_deref(), class, key.as_ref()) {
        if !key.storable {
            // A field plumgate does not key on may change the answer (the
            // upstream API grows): no entry is this call's, so none is
            // served, fresh or stale, and its answer is not stored.
            trace.cache = Some(if ttl == 0 || mode == CacheMode::Bypass { "bypass" } else { "miss" });
        } else if ttl == 0 || mode == CacheMode::Bypass {
            trace.cache = Some("bypass");
            // A bypass wants Xoxoday's answer; should Xoxoday fail, the
            // copy plumgate has is still better than an error.
            if ttl > 0 {
                stale = edge_cache::get(url).await;
            }
        } else {
            trace.cache = Some("miss");
            match edge_cache::get(url).await {
                Some(c) if c.freshness(now_ms()) == Freshness::Fresh => {
                    trace.cache = Some("hit");
                    return (Ok(cached(c)), trace);
                }
                other => stale = other,
            }
            let text = envelope.insert(ops::envelope_text(op, &data));
            match edge_cache::shared_fill(url, text, cfg.upstream_timeout_ms).await {
                Shared::Hit(c) => {
                    trace.cache = Some("hit");
                    trace.note = Some("shared_fill");
                    return (Ok(cached(c)), trace);
                }
                Shared::Failed(e) => {
                    trace.note = Some("shared_fill");
                    return or_stale(&mut None, stale, Err(e), trace);
                }
                Shared::Answer(c) => {
                    trace.note = Some("shared_fill");
                    return or_stale(&mut None, stale, Ok(cached(c)), trace);
                }
                Shared::Lead(f) => fill = Some(f),
            }
        }
    }

    match limits::admit(env, cfg, op).await {
        Admitted::Go => {}
        Admitted::Unchecked => trace.note = Some("limiter_unavailable"),
        Admitted::Refused(e) => return or_stale(&mut fill, stale, Err(e), trace),
    }
    let envelope = envelope.unwrap_or_else(|| ops::envelope_text(op, &data));
    let (called, seen) = plum::call_with_token(env, cfg, &envelope, cfg.upstream_timeout_ms as u64).await;
    let trace = Trace { cache: trace.cache, note: seen.note.or(trace.note), ..seen };
    let answer = match called {
        Ok(a) => a,
        Err(e) => return or_stale(&mut fill, stale, Err(e.into_api()), trace),
    };
    let trace = Trace { upstream_status: Some(answer.status), ..trace };
    if let Some(observed) = api_penalty(op.name(), answer.status, &answer.body, answer.retry_after.as_deref()) {
        let secs = limits::report(env, cfg, op, observed).await;
        return or_stale(&mut fill, stale, Err(ApiError::rate_limited(op.name(), secs)), trace);
    }
    if let Some(e) = unreadable_answer(answer.status, &answer.body) {
        return or_stale(&mut fill, stale, Err(e), trace);
    }
    let storable = class.is_some() && url.is_some() && key.as_ref().is_some_and(|k| k.storable);
    let success = is_plum_success(op.name(), answer.status, &answer.body);
    let then = after_answer(answer.status, success, stale.is_some(), storable);
    match (then, class, url.as_deref()) {
        (AfterAnswer::Store, Some(class), Some(url)) => {
            edge_cache::put(url, answer.status, &answer.body, ttl, stale_secs(class)).await;
        }
        // Not kept: the requests waiting for this fill get it as it is.
        _ => {
            if let Some(f) = fill.as_mut() {
                f.answered(answer.status, &answer.body);
            }
        }
    }
    if then == AfterAnswer::ServeStale {
        return or_stale(&mut fill, stale, Ok(passthrough(answer)), trace);
    }
    let mut trace = trace;
    if op == Operation::GetBalance && cfg.balance_alert_below.is_some() {
        trace.balance = balance_value(answer.status, &answer.body);
    }
    or_stale(&mut fill, None, Ok(passthrough(answer)), trace)
}

/// `answer`, unless it is a penalty or a failure and a copy is at hand:
/// then the copy (`x-plumgate-cache: stale`). Such a failure of plumgate's
/// own (a timeout, a penalty) is also what the requests waiting for this
/// request's `fill` get.
fn or_stale(
    fill: &mut Option<edge_cache::Fill>,
    stale: Option<Cached>,
    answer: Result<Outgoing, ApiError>,
    trace: Trace,
) -> (Result<Outgoing, ApiError>, Trace) {
    let status = match &answer {
        Ok(r) => r.status_code(),
        Err(e) => {
            if let (Some(f), true) = (fill.as_mut(), stale_instead_of(e.status)) {
                f.failed(e);
            }
            e.status
        }
    };
    match stale.filter(|c| c.freshness(now_ms()) != Freshness::Gone && stale_instead_of(status)) {
        Some(c) => (Ok(cached(c)), Trace { cache: Some("stale"), ..trace }),
        None => (answer, trace),
    }
}

/// A cached answer (its `x-plumgate-cache` comes from the trace, as every
/// answer's does: `routes::handle`).
fn cached(c: Cached) -> Outgoing {
    bytes_response(c.status, c.body, JSON)
}

/// Forward a drop-in envelope whose query plumgate does not know, as sent.
pub async fn forward_unvalidated(env: &Env, cfg: &Config, envelope: &Value) -> (Result<Outgoing, ApiError>, Trace) {
    let query = envelope.get("query").and_then(Value::as_str).unwrap_or_default();
    if let Some(e) = limits::unvalidated_held(query) {
        return (Err(e), Trace::default());
    }
    let body = plumgate_core::jsontext::to_text(envelope);
    let (called, mut trace) = plum::call_with_token(env, cfg, &body, cfg.order_timeout_ms as u64).await;
    match called {
        Ok(answer) => {
            trace.upstream_status = Some(answer.status);
            if let Some(secs) = unvalidated_penalty(answer.status, &answer.body, answer.retry_after.as_deref()) {
                limits::unvalidated_penalised(query, secs);
                return (Err(ApiError::rate_limited("this query", secs)), trace);
            }
            match unreadable_answer(answer.status, &answer.body) {
                Some(e) => (Err(e), trace),
                None => (Ok(passthrough(answer)), trace),
            }
        }
        Err(e) => (Err(e.into_api()), trace),
    }
}
