//! The Plum API client: one call to `POST {OAUTH_URL}/v1/oauth/api` with
//! the current access token, and the one retry contract §4.6 allows.
//!
//! The request is built by the core (`plumgate_core::upstream::api_request`)
//! and sent by `runtime::net`; the token comes from the token cache
//! (`tokens`). Used by the gateway for every operation and by the order
//! ledger for placeOrder and its reconciliation. What it saw (where the
//! token came from, a 401 and what the authority made of it) comes back as
//! a [`Trace`] for the caller's log line.

use crate::runtime::net;
use crate::tokens;
use plumgate_core::config::Config;
use plumgate_core::errors::{ApiError, CallError};
use plumgate_core::http::HttpAnswer;
use plumgate_core::logline::Trace;
use plumgate_core::secret::redact_token;
use plumgate_core::token::cache::Checked;
use plumgate_core::upstream::{api_request, classify_api_401, Api401};
use plumgate_core::wire::authority::Grant;
use worker::Env;

/// Call the Plum API with `body` (an envelope) and the current token,
/// waiting at most `timeout_ms` for each answer. On a 401 that can be about
/// the token, the authority checks it: confirmed invalid, it is replaced
/// and the call is retried exactly once; valid, Xoxoday's 401 is the
/// answer. Any other 401 is the answer at once: no caller can make
/// plumgate spend a rotation.
pub async fn call_with_token(env: &Env, cfg: &Config, body: &str, timeout_ms: u64) -> (Result<HttpAnswer, CallError>, Trace) {
    let mut trace = Trace::default();
    let result = call(env, cfg, body, timeout_ms, &mut trace).await;
    (result, trace)
}

async fn call(env: &Env, cfg: &Config, body: &str, timeout_ms: u64, trace: &mut Trace) -> Result<HttpAnswer, CallError> {
    let (grant, source) = tokens::access_token(env, cfg).await.map_err(CallError::Api)?;
    trace.token = Some(source.as_str());
    let first = send(cfg, &grant, body, timeout_ms).await?;
    if classify_api_401(first.status, &first.body) != Api401::TokenCandidate {
        return Ok(first);
    }
    trace.upstream_status = Some(first.status);
    let replacement = match tokens::check_rejected(env, cfg, &grant).await.map_err(CallError::Api)? {
        Checked::PassThrough => {
            trace.note = Some("token_valid");
            return Ok(first);
        }
        Checked::Replaced(g) => g,
    };
    trace.note = Some("token_replaced");
    let second = send(cfg, &replacement, body, timeout_ms).await?;
    if classify_api_401(second.status, &second.body) == Api401::TokenCandidate {
        trace.upstream_status = Some(second.status);
        return Err(CallError::Api(ApiError::upstream_unauthorized()));
    }
    Ok(second)
}

async fn send(cfg: &Config, grant: &Grant, body: &str, timeout_ms: u64) -> Result<HttpAnswer, CallError> {
    let req = api_request(cfg.api_url(), &grant.access_token, body);
    let mut answer = net::send(&req, timeout_ms).await.map_err(|why| CallError::without_answer(why, timeout_ms))?;
    // Every answer reaches a caller in some form: one that quotes the token
    // sent (an error repeating the request's header) must not hand it on.
    redact_token(&mut answer.body, grant.access_token.expose_secret());
    Ok(answer)
}
