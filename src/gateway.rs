//! Forwarding a validated Plum operation to Xoxoday.
//!
//! Owns the upstream side of an operation call, in this order:
//! 1. placeOrder goes to its `OrderLedger` (idempotency, reconciliation),
//!    with the key's spend cap and the audit trail around it
//!    ([`crate::orders`]);
//! 2. an operation under a Xoxoday rate-limit penalty is answered
//!    `429 rate_limited` without calling upstream (contract §6);
//! 3. getFilters / getVouchers / getBalance are served from the edge cache
//!    when fresh (`x-plumgate-cache: hit`), unless an admin sends
//!    `Cache-Control: no-cache` (`bypass`);
//! 4. the canonical envelope goes out through the Plum client
//!    ([`crate::plum`]) with the bearer from the token cache; a 401 that can
//!    be about the token is checked by the token authority (Xoxoday's token
//!    check): a confirmed rejection gets one replacement and one retry, a
//!    valid token's 401 and every other 401 pass through unchanged
//!    (contract §4.6);
//! 5. Xoxoday's status and body come back unchanged (a rate-limit answer is
//!    turned into `429 rate_limited` and starts the penalty).
//!
//! A drop-in query plumgate does not know (`forward_unvalidated`) takes
//! only step 4: the envelope as sent, no cache, no penalty bookkeeping (its
//! answer, a rate-limit one included, comes back as Xoxoday gave it), and
//! placeOrder's long timeout, since an unknown mutation may be an order.

use crate::edge_cache;
use crate::orders;
use crate::plum;
use crate::respond::{bytes_response, passthrough, JSON};
use plumgate_core::auth::Caller;
use plumgate_core::config::Config;
use plumgate_core::errors::{ApiError, ErrorStyle};
use plumgate_core::logline::Trace;
use plumgate_core::ops::{self, CacheClass, Operation, Prepared};
use plumgate_core::upstream::{is_plum_success, rate_limit_penalty};
use serde_json::Value;
use worker::{Context, Env, Response};

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
) -> (Result<Response, ApiError>, Trace) {
    let Prepared { data, fingerprint } = prepared;
    if op == Operation::PlaceOrder {
        let fingerprint = fingerprint.unwrap_or_else(|| ops::order_fingerprint(&data));
        return orders::place(env, ctx, caller, data, fingerprint, request_id, style).await;
    }
    if let Some(secs) = edge_cache::penalty_left(op).await {
        return (Err(ApiError::rate_limited(op.name(), secs)), Trace::default());
    }
    let ttl = match op.cache_class() {
        Some(CacheClass::Catalog) => Some(cfg.catalog_cache_ttl_secs),
        Some(CacheClass::Balance) => Some(cfg.balance_cache_ttl_secs),
        None => None,
    };
    let cache_key = ttl.map(|_| edge_cache::key(op, &data));
    let mut cache_state = None;
    if let (Some(ttl), Some(key)) = (ttl, cache_key.as_deref()) {
        if ttl == 0 || mode == CacheMode::Bypass {
            cache_state = Some("bypass");
        } else if let Some((status, body)) = edge_cache::get(key).await {
            let mut resp = bytes_response(status, body, JSON);
            let _ = resp.headers_mut().set("x-plumgate-cache", "hit");
            return (Ok(resp), Trace { cache: Some("hit"), ..Trace::default() });
        } else {
            cache_state = Some("miss");
        }
    }

    let envelope = ops::envelope_text(op, &data);
    let (called, trace) = plum::call_with_token(env, cfg, &envelope, cfg.upstream_timeout_ms as u64).await;
    let mut trace = Trace { cache: cache_state, ..trace };
    let answer = match called {
        Ok(a) => a,
        Err(e) => return (Err(e.into_api()), trace),
    };
    trace.upstream_status = Some(answer.status);
    if let Some(secs) = rate_limit_penalty(answer.status, &answer.body, answer.retry_after.as_deref()) {
        edge_cache::set_penalty(op, secs).await;
        return (Err(ApiError::rate_limited(op.name(), secs)), trace);
    }
    if let (Some(ttl), Some(key)) = (ttl, cache_key.as_deref()) {
        if is_plum_success(op.name(), answer.status, &answer.body) {
            edge_cache::put(key, answer.status, &answer.body, ttl).await;
        }
    }
    let mut resp = passthrough(answer);
    if let Some(state) = cache_state {
        let _ = resp.headers_mut().set("x-plumgate-cache", state);
    }
    (Ok(resp), trace)
}

/// Forward a drop-in envelope whose query plumgate does not know, as sent.
pub async fn forward_unvalidated(env: &Env, cfg: &Config, envelope: &Value) -> (Result<Response, ApiError>, Trace) {
    let body = envelope.to_string();
    let (called, mut trace) = plum::call_with_token(env, cfg, &body, cfg.order_timeout_ms as u64).await;
    match called {
        Ok(answer) => {
            trace.upstream_status = Some(answer.status);
            (Ok(passthrough(answer)), trace)
        }
        Err(e) => (Err(e.into_api()), trace),
    }
}
