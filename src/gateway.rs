//! Forwarding a validated Plum operation to Xoxoday.
//!
//! Owns the upstream call of an operation: the canonical envelope, the
//! bearer from the token cache, the one retry after a token rejection
//! (contract §4.6), and passing Xoxoday's status and body through unchanged.

use crate::net::{self, Answer, Failure};
use crate::tokens::{self, Grant};
use crate::util::bytes_response;
use plumgate_core::auth::Caller;
use plumgate_core::config::Config;
use plumgate_core::errors::ApiError;
use plumgate_core::logline::RequestLog;
use plumgate_core::ops::{self, Operation};
use plumgate_core::token::HttpRequest;
use plumgate_core::upstream::is_token_rejection;
use serde_json::Value;
use worker::{Context, Env, Response};

/// Forward `op` with `data` and answer with Xoxoday's status and body.
pub async fn forward(
    env: &Env,
    _ctx: &Context,
    cfg: &Config,
    _caller: &Caller,
    op: Operation,
    data: Value,
    log: &mut RequestLog,
) -> Result<Response, ApiError> {
    let envelope = ops::build_envelope(op, data);
    let body = envelope.to_string();
    let timeout = if op == Operation::PlaceOrder { cfg.order_timeout_ms } else { cfg.upstream_timeout_ms } as u64;
    let answer = call_with_token(env, cfg, &body, timeout, log).await?;
    log.upstream_status = Some(answer.status);
    Ok(passthrough(answer))
}

/// Call the Plum API with the current token; on a token rejection, have the
/// authority replace that token and retry exactly once.
pub async fn call_with_token(
    env: &Env,
    cfg: &Config,
    body: &str,
    timeout_ms: u64,
    log: &mut RequestLog,
) -> Result<Answer, ApiError> {
    let (grant, _) = tokens::access_token(env).await?;
    let first = send(cfg, &grant, body, timeout_ms).await?;
    if !is_token_rejection(first.status, &first.body) {
        return Ok(first);
    }
    log.upstream_status = Some(first.status);
    log.note = Some("token_replaced");
    let replacement = tokens::replace_rejected(env, &grant).await?;
    let second = send(cfg, &replacement, body, timeout_ms).await?;
    if is_token_rejection(second.status, &second.body) {
        log.upstream_status = Some(second.status);
        return Err(ApiError::upstream_unauthorized());
    }
    Ok(second)
}

async fn send(cfg: &Config, grant: &Grant, body: &str, timeout_ms: u64) -> Result<Answer, ApiError> {
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
        Failure::Timeout => ApiError::upstream_timeout(format!("Xoxoday did not answer within {timeout_ms} ms")),
        Failure::Transport => ApiError::upstream_error("could not reach Xoxoday (transport error)"),
    })
}

/// Xoxoday's status and body, unchanged.
pub fn passthrough(answer: Answer) -> Response {
    bytes_response(answer.status, answer.body, "application/json; charset=utf-8")
}
