//! The admin routes of runtime keys and the audit trail (scope `admin`):
//! `POST /v1/keys`, `GET /v1/keys`, `PATCH /v1/keys/{id}`,
//! `DELETE /v1/keys/{id}`, `POST /v1/keys/{id}/rotate`, `GET /v1/audit`.
//!
//! Each validates the request with the core (`plumgate_core::keys`,
//! `plumgate_core::audit`: a clear `400` before anything is asked), makes
//! a new key where one is needed (24 random bytes from the runtime; only
//! its SHA-256 goes to the registry), asks the `KeyRegistry`, and answers
//! the JSON it gets back, with the new key spliced in where one was made:
//! the only time a key is ever shown. A change made here throws this
//! isolate's directory copy away, so the change holds here at once; other
//! isolates see it within `plumgate_core::keys::MAX_AGE_MS`.

use crate::callers;
use crate::objects::registry;
use crate::respond::json_text;
use crate::runtime::clock::now_ms;
use crate::runtime::http::Outgoing;
use plumgate_core::audit;
use plumgate_core::auth::hash_key;
use plumgate_core::config::Config;
use plumgate_core::errors::ApiError;
use plumgate_core::keys::{self, Credential, KEY_RANDOM_BYTES};
use plumgate_core::secret::CallerKey;
use plumgate_core::wire::registry::{Op, Reply, Request};
use serde_json::Value;
use worker::Env;

/// The `GATEWAY_KEYS` keys as the registry sees them (ids, scopes and
/// limits; no hash).
fn static_keys(cfg: &Config) -> Vec<Credential> {
    cfg.gateway_keys
        .entries()
        .iter()
        .map(|e| Credential { id: e.id.clone(), sha256: String::new(), scopes: e.scopes.clone(), limits: e.limits, until_ms: None })
        .collect()
}

/// The registry's answer body, or its refusal.
async fn ask(env: &Env, op: Op, req: &Request) -> Result<String, ApiError> {
    match registry::call(env, op, req).await? {
        Reply { error: Some(e), .. } => Err(e),
        Reply { body: Some(body), .. } => Ok(body),
        _ => Err(ApiError::internal()),
    }
}

/// A new key and its hash.
fn make_key() -> Result<(CallerKey, String), ApiError> {
    let mut random = [0u8; KEY_RANDOM_BYTES];
    getrandom::fill(&mut random).map_err(|_| ApiError::internal())?;
    let key = keys::new_key(&random);
    let hash = hash_key(key.expose_secret());
    Ok((key, hash))
}

/// The registry's answer to a change of key `id`; static keys change only
/// by a redeploy ([`keys::change_answer`]).
async fn change(env: &Env, cfg: &Config, op: Op, id: &str, req: Request) -> Result<String, ApiError> {
    let req = Request { id: Some(id.to_owned()), ..req };
    keys::change_answer(ask(env, op, &req).await, cfg.gateway_keys.has_id(id))
}

/// `POST /v1/keys`: `201` with the key, shown this once.
pub async fn create(env: &Env, cfg: &Config, body: &Value) -> Result<Outgoing, ApiError> {
    let new = keys::parse_new_key(body, now_ms())?;
    let (key, sha256) = make_key()?;
    let req = Request { static_keys: static_keys(cfg), ..Request::of_new_key(new, sha256) };
    let view = ask(env, Op::Create, &req).await?;
    callers::invalidate();
    Ok(json_text(201, keys::with_key(&view, &key)))
}

/// `GET /v1/keys`: every key, `GATEWAY_KEYS` first, with today's usage.
pub async fn list(env: &Env, cfg: &Config) -> Result<Outgoing, ApiError> {
    callers::flush(env).await;
    let req = Request { static_keys: static_keys(cfg), ..Request::default() };
    Ok(json_text(200, ask(env, Op::List, &req).await?))
}

/// `DELETE /v1/keys/{id}`: revoked (again: the same answer).
pub async fn revoke(env: &Env, cfg: &Config, id: &str) -> Result<Outgoing, ApiError> {
    let view = change(env, cfg, Op::Revoke, id, Request::default()).await?;
    callers::invalidate();
    Ok(json_text(200, view))
}

/// `POST /v1/keys/{id}/rotate` (body: none, or `{"grace_secs"?: n,
/// "current_key"?: key}`): the new key, shown this once.
pub async fn rotate(env: &Env, cfg: &Config, id: &str, body: Option<&Value>) -> Result<Outgoing, ApiError> {
    let (grace_secs, current_sha256) = keys::parse_rotation(body)?;
    let (key, sha256) = make_key()?;
    let req = Request { sha256: Some(sha256), grace_secs: Some(grace_secs), current_sha256, ..Request::default() };
    let view = change(env, cfg, Op::Rotate, id, req).await?;
    callers::invalidate();
    Ok(json_text(200, keys::with_key(&view, &key)))
}

/// `PATCH /v1/keys/{id}` (`{"limits": {...}}`, a merge patch).
pub async fn set_limits(env: &Env, cfg: &Config, id: &str, body: &Value) -> Result<Outgoing, ApiError> {
    let patch = keys::parse_patch(body)?;
    let view = change(env, cfg, Op::Limits, id, Request { patch: Some(patch), ..Request::default() }).await?;
    callers::invalidate();
    Ok(json_text(200, view))
}

/// `GET /v1/audit?from=&to=&key=&cursor=&limit=`.
pub async fn audit_page(env: &Env, params: &[(String, String)]) -> Result<Outgoing, ApiError> {
    let query = audit::parse_query(params)?;
    Ok(json_text(200, ask(env, Op::Audit, &Request::of_query(&query)).await?))
}
