//! Forwarding a validated Plum operation to Xoxoday.
//!
//! Owns the upstream side of an operation call, in this order:
//! 1. placeOrder goes to its `OrderLedger` (idempotency, reconciliation);
//! 2. an operation under a Xoxoday rate-limit penalty is answered
//!    `429 rate_limited` without calling upstream (contract §6);
//! 3. getFilters / getVouchers / getBalance are served from the edge cache
//!    when fresh (`x-plumgate-cache: hit`), unless an admin sends
//!    `Cache-Control: no-cache` (`bypass`);
//! 4. the canonical envelope goes out with the bearer from the token cache;
//!    a 401 that can be about the token is checked by the token authority
//!    (Xoxoday's token check): a confirmed rejection gets one replacement
//!    and one retry, a valid token's 401 and every other 401 pass through
//!    unchanged (contract §4.6);
//! 5. Xoxoday's status and body come back unchanged (a rate-limit answer is
//!    turned into `429 rate_limited` and starts the penalty).
//!
//! A drop-in query plumgate does not know (`forward_unvalidated`) takes
//! only step 4: the envelope as sent, no cache, no penalty bookkeeping (its
//! answer, a rate-limit one included, comes back as Xoxoday gave it), and
//! placeOrder's long timeout, since an unknown mutation may be an order.

use crate::edge_cache;
use crate::net::{self, Answer, Failure};
use crate::orders;
use crate::tokens::{self, Checked, Grant};
use crate::util::bytes_response;
use plumgate_core::config::Config;
use plumgate_core::errors::{ApiError, ErrorStyle};
use plumgate_core::logline::RequestLog;
use plumgate_core::ops::{self, CacheClass, Operation, Prepared};
use plumgate_core::token::HttpRequest;
use plumgate_core::upstream::{classify_api_401, is_plum_success, rate_limit_penalty, Api401};
use serde_json::Value;
use worker::{Env, Response};

/// How the caller asked about the edge cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Use the cache.
    Normal,
    /// Admin sent `Cache-Control: no-cache`: go upstream, refresh the entry.
    Bypass,
}

/// Forward `op` with its prepared data; `style` is the error form of the
/// route (the order ledger renders its own errors).
pub async fn forward(
    env: &Env,
    cfg: &Config,
    op: Operation,
    prepared: Prepared,
    mode: CacheMode,
    style: ErrorStyle,
    log: &mut RequestLog,
) -> Result<Response, ApiError> {
    let Prepared { data, fingerprint } = prepared;
    if op == Operation::PlaceOrder {
        let request_id = log.request_id.clone();
        let fingerprint = fingerprint.unwrap_or_else(|| ops::order_fingerprint(&data));
        return orders::place(env, data, fingerprint, &request_id, style, log).await;
    }
    if let Some(secs) = edge_cache::penalty_left(op).await {
        return Err(ApiError::rate_limited(op.name(), secs));
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
            log.cache = Some("hit");
            let mut resp = bytes_response(status, body, "application/json; charset=utf-8");
            let _ = resp.headers_mut().set("x-plumgate-cache", "hit");
            return Ok(resp);
        } else {
            cache_state = Some("miss");
        }
    }
    log.cache = cache_state;

    let envelope = ops::envelope_text(op, &data);
    let answer = call_with_token(env, cfg, &envelope, cfg.upstream_timeout_ms as u64, log)
        .await
        .map_err(CallError::into_api)?;
    log.upstream_status = Some(answer.status);
    if let Some(secs) = rate_limit_penalty(answer.status, &answer.body, answer.retry_after.as_deref()) {
        edge_cache::set_penalty(op, secs).await;
        return Err(ApiError::rate_limited(op.name(), secs));
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
    Ok(resp)
}

/// Forward a drop-in envelope whose query plumgate does not know, as sent.
pub async fn forward_unvalidated(env: &Env, cfg: &Config, envelope: &Value, log: &mut RequestLog) -> Result<Response, ApiError> {
    let body = envelope.to_string();
    let answer = call_with_token(env, cfg, &body, cfg.order_timeout_ms as u64, log)
        .await
        .map_err(CallError::into_api)?;
    log.upstream_status = Some(answer.status);
    Ok(passthrough(answer))
}

/// Why an upstream call gave no answer.
#[derive(Debug, Clone)]
pub enum CallError {
    /// No answer within the timeout (ms).
    Timeout(u64),
    /// Transport failure.
    Transport,
    /// Token problems (reauth, authority down, rejected twice).
    Api(ApiError),
}

impl CallError {
    /// The caller-facing error.
    pub fn into_api(self) -> ApiError {
        match self {
            CallError::Timeout(ms) => ApiError::upstream_timeout(format!("Xoxoday did not answer within {ms} ms")),
            CallError::Transport => ApiError::upstream_error("could not reach Xoxoday (transport error)"),
            CallError::Api(e) => e,
        }
    }
}

/// Call the Plum API with the current token. On a 401 that can be about
/// the token, the authority checks it: confirmed invalid, it is replaced and
/// the call is retried exactly once; valid, Xoxoday's 401 is the answer.
/// Any other 401 is the answer at once: no caller can make plumgate spend
/// a rotation.
pub async fn call_with_token(
    env: &Env,
    cfg: &Config,
    body: &str,
    timeout_ms: u64,
    log: &mut RequestLog,
) -> Result<Answer, CallError> {
    let (grant, source) = tokens::access_token(env, cfg).await.map_err(CallError::Api)?;
    log.token = Some(source.as_str());
    let first = send(cfg, &grant, body, timeout_ms).await?;
    if classify_api_401(first.status, &first.body) != Api401::TokenCandidate {
        return Ok(first);
    }
    log.upstream_status = Some(first.status);
    let replacement = match tokens::check_rejected(env, cfg, &grant).await.map_err(CallError::Api)? {
        Checked::PassThrough => {
            log.note = Some("token_valid");
            return Ok(first);
        }
        Checked::Replaced(g) => g,
    };
    log.note = Some("token_replaced");
    let second = send(cfg, &replacement, body, timeout_ms).await?;
    if classify_api_401(second.status, &second.body) == Api401::TokenCandidate {
        log.upstream_status = Some(second.status);
        return Err(CallError::Api(ApiError::upstream_unauthorized()));
    }
    Ok(second)
}

async fn send(cfg: &Config, grant: &Grant, body: &str, timeout_ms: u64) -> Result<Answer, CallError> {
    let req = HttpRequest {
        method: "POST",
        url: cfg.api_url(),
        headers: vec![
            ("authorization", format!("Bearer {}", grant.access_token)),
            ("content-type", "application/json".into()),
            ("accept", "application/json".into()),
        ],
        body: Some(body.to_string()),
    };
    net::send(&req, timeout_ms).await.map_err(|f| match f {
        Failure::Timeout => CallError::Timeout(timeout_ms),
        Failure::Transport => CallError::Transport,
    })
}

/// Xoxoday's status and body, unchanged.
pub fn passthrough(answer: Answer) -> Response {
    bytes_response(answer.status, answer.body, "application/json; charset=utf-8")
}
