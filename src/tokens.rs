//! The access-token cache in front of the `TokenAuthority`.
//!
//! Lookup order (contract §4.3): isolate memory, then the `TOKEN_CACHE` KV
//! namespace, then the Durable Object. A cached grant carries `recheck_at_ms`
//! (set by the authority from the token state machine): before that instant
//! the hot path does no KV or DO call at all. The refresh token never comes
//! here; only the access token and its timing do.
//!
//! One authority per Xoxoday account: the Durable Object's name and the KV
//! key derive from the base URL and client id ([`account`]), so another
//! account's token is never served.
//!
//! One lookup per isolate at a time: requests that find memory cold while
//! another request's lookup is running wait for it (at most
//! `plumgate_core::token::JOIN_WAIT_MS`, in case that request is cancelled)
//! and take the grant it leaves in memory, instead of each reading KV and
//! calling the Durable Object. Each waiter waits on a promise of its own,
//! made in its own request, which the leading request resolves.

use crate::authority::{Op, Reply, AUTHORITY_HEADER};
use crate::promise;
use crate::util::now_ms;
use plumgate_core::config::Config;
use plumgate_core::errors::ApiError;
use plumgate_core::secret::fingerprint;
use plumgate_core::token::storage::{account_id, authority_name, kv_token_key};
use plumgate_core::token::{joins_lookup, Refusal, JOIN_WAIT_MS};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use worker::js_sys::{self, Function, Promise, Reflect};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{console_error, Env, Headers, Method, Request, RequestInit};

/// KV binding name.
pub const KV_BINDING: &str = "TOKEN_CACHE";
/// Durable Object binding name.
pub const DO_BINDING: &str = "TOKEN_AUTHORITY";

/// The Xoxoday account `cfg` talks to (see
/// `plumgate_core::token::storage::account_id`).
pub fn account(cfg: &Config) -> String {
    account_id(&cfg.oauth_url, cfg.client_id.expose_secret())
}

/// An access token handed out by the authority.
#[derive(Clone, Serialize, Deserialize)]
pub struct Grant {
    /// The bearer token for Xoxoday.
    pub access_token: String,
    /// Its expiry (epoch ms).
    pub expires_at_ms: i64,
    /// Ask again after this instant (epoch ms).
    pub recheck_at_ms: i64,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("access_token", &"[redacted]")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("recheck_at_ms", &self.recheck_at_ms)
            .finish()
    }
}

impl Grant {
    /// Fingerprint of the access token (for "token T was rejected").
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.access_token)
    }
    fn usable(&self, now: i64) -> bool {
        now < self.recheck_at_ms && now < self.expires_at_ms
    }
}

thread_local! {
    static MEMORY: RefCell<Option<Grant>> = const { RefCell::new(None) };
    /// The token lookup running in this isolate, if any.
    static LOOKUP: RefCell<Option<Lookup>> = const { RefCell::new(None) };
    static LOOKUP_IDS: Cell<u64> = const { Cell::new(0) };
}

/// A running lookup and the resolve functions of the requests waiting for it.
struct Lookup {
    id: u64,
    started_ms: i64,
    waiters: Vec<Function>,
}

/// Held by the request doing the isolate's lookup. Dropping it (the lookup
/// is over, however it ended) wakes the waiters, who then read memory.
struct Lead {
    id: u64,
}

impl Lead {
    fn start(now: i64) -> Lead {
        let id = LOOKUP_IDS.with(|c| {
            c.set(c.get() + 1);
            c.get()
        });
        // A stale lookup being replaced: its waiters look for themselves.
        let stale = LOOKUP.with(|l| l.borrow_mut().replace(Lookup { id, started_ms: now, waiters: Vec::new() }));
        wake(stale.map(|s| s.waiters).unwrap_or_default());
        Lead { id }
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        let waiters = LOOKUP.with(|l| {
            let mut l = l.borrow_mut();
            match l.as_ref() {
                Some(lookup) if lookup.id == self.id => l.take().map(|s| s.waiters).unwrap_or_default(),
                _ => Vec::new(),
            }
        });
        wake(waiters);
    }
}

fn wake(waiters: Vec<Function>) {
    for resolve in waiters {
        let _ = resolve.call0(&JsValue::UNDEFINED);
    }
}

/// If another request's lookup is young enough to join, a promise (made in
/// this request) that settles when it ends, or after `JOIN_WAIT_MS`.
fn join_lookup(now: i64) -> Option<Promise> {
    LOOKUP.with(|l| {
        let mut l = l.borrow_mut();
        let lookup = l.as_mut().filter(|lk| joins_lookup(lk.started_ms, now))?;
        let mut resolver = None;
        let waiting = Promise::new(&mut |resolve, _reject| resolver = Some(resolve));
        let resolve = resolver?;
        // The timer bounds the wait if the leading request never finishes.
        let global = js_sys::global();
        let set_timeout: Function = Reflect::get(&global, &JsValue::from_str("setTimeout")).ok()?.dyn_into().ok()?;
        set_timeout.call2(&global, &resolve, &JsValue::from_f64(JOIN_WAIT_MS as f64)).ok()?;
        lookup.waiters.push(resolve);
        Some(waiting)
    })
}

fn from_memory(now: i64) -> Option<Grant> {
    MEMORY.with(|m| m.borrow().clone()).filter(|g| g.usable(now))
}

/// Where a token came from (for logs and benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Isolate memory.
    Memory,
    /// KV.
    Kv,
    /// The Durable Object.
    Authority,
    /// Another request's lookup in this isolate, waited for.
    Shared,
}

impl Source {
    /// Name for the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Memory => "memory",
            Source::Kv => "kv",
            Source::Authority => "authority",
            Source::Shared => "shared",
        }
    }
}

/// A usable access token for an upstream call.
pub async fn access_token(env: &Env, cfg: &Config) -> Result<(Grant, Source), ApiError> {
    if let Some(g) = from_memory(now_ms()) {
        return Ok((g, Source::Memory));
    }
    if let Some(waiting) = join_lookup(now_ms()) {
        // Settles when the other lookup ends or the wait runs out; either
        // way memory says whether it left a grant.
        let _ = promise::settled(&waiting).await;
        if let Some(g) = from_memory(now_ms()) {
            return Ok((g, Source::Shared));
        }
    }
    let _lead = Lead::start(now_ms());
    let account = account(cfg);
    if let Ok(kv) = env.kv(KV_BINDING) {
        if let Ok(Some(g)) = kv.get(&kv_token_key(&account)).json::<Grant>().await {
            if g.usable(now_ms()) {
                remember(&g);
                return Ok((g, Source::Kv));
            }
        }
    }
    let reply = call(env, &account, Op::Token, None).await?;
    grant_of(reply).map(|g| (g, Source::Authority))
}

/// What the authority decided about a token Xoxoday answered 401 to.
pub enum Checked {
    /// Xoxoday's token check says it is valid: pass the 401 on unchanged.
    PassThrough,
    /// Use this token (the rejected one was replaced) and retry once.
    Replaced(Grant),
}

/// Xoxoday answered 401 (a token candidate) to `rejected`: the authority
/// checks it and replaces it only if Xoxoday confirms it is invalid and it
/// is still the current token.
pub async fn check_rejected(env: &Env, cfg: &Config, rejected: &Grant) -> Result<Checked, ApiError> {
    let fp = rejected.fingerprint();
    let reply = call(env, &account(cfg), Op::Check, Some(json!({ "fp": fp }))).await?;
    if reply.pass_through {
        return Ok(Checked::PassThrough);
    }
    // The authority no longer hands this token out (confirmed rejected, or
    // already replaced): forget it here too, whatever else the reply says.
    if reply.grant.as_ref().is_none_or(|g| g.fingerprint() != fp) {
        MEMORY.with(|m| {
            let mut m = m.borrow_mut();
            if m.as_ref().is_some_and(|g| g.fingerprint() == fp) {
                *m = None;
            }
        });
    }
    // An error wins over a grant here: a failed check hands back the
    // unconfirmed current token, which must not be retried.
    if let Some(e) = reply.error {
        return Err(e.into_api_error());
    }
    grant_of(reply).map(Checked::Replaced)
}

/// Token status for `GET /v1/token`.
pub async fn status(env: &Env, cfg: &Config) -> Result<Value, ApiError> {
    let reply = call(env, &account(cfg), Op::Status, None).await?;
    match reply.error {
        Some(e) if reply.status.is_null() => Err(e.into_api_error()),
        _ => Ok(reply.status),
    }
}

/// `POST /v1/token/refresh`: a forced refresh (shared with any in flight;
/// throttled while the token is usable).
pub async fn force_refresh(env: &Env, cfg: &Config) -> Result<Value, ApiError> {
    status_or_refusal(call(env, &account(cfg), Op::Refresh, None).await?)
}

/// `POST /v1/token/recover`: set unreadable stored state aside.
pub async fn recover(env: &Env, cfg: &Config) -> Result<Value, ApiError> {
    status_or_refusal(call(env, &account(cfg), Op::Recover, None).await?)
}

fn status_or_refusal(reply: Reply) -> Result<Value, ApiError> {
    if let Some(g) = &reply.grant {
        remember(g);
    }
    match reply.error {
        Some(e) => Err(e.into_api_error()),
        None => Ok(reply.status),
    }
}

/// The scheduled keep-alive.
pub async fn cron_tick(env: &Env, cfg: &Config, cron: &str) {
    match call(env, &account(cfg), Op::Cron, None).await {
        Ok(r) => worker::console_log!(
            "{}",
            json!({"event": "cron", "cron": cron, "state": r.status.get("state"), "error": r.error.as_ref().map(|e| e.code.clone())})
        ),
        Err(e) => console_error!("{}", json!({"event": "cron_failed", "cron": cron, "error": e.code})),
    }
}

fn remember(g: &Grant) {
    MEMORY.with(|m| *m.borrow_mut() = Some(g.clone()));
}

fn grant_of(reply: Reply) -> Result<Grant, ApiError> {
    if let Some(g) = reply.grant {
        remember(&g);
        return Ok(g);
    }
    Err(match reply.error {
        Some(e) => e.into_api_error(),
        None => ApiError::upstream_error("no access token available"),
    })
}

async fn call(env: &Env, account: &str, op: Op, body: Option<Value>) -> Result<Reply, ApiError> {
    call_authority(env, &authority_name(account), op, body).await
}

/// Send `op` to the authority named `name`.
pub async fn call_authority(env: &Env, name: &str, op: Op, body: Option<Value>) -> Result<Reply, ApiError> {
    let stub = env
        .durable_object(DO_BINDING)
        .and_then(|ns| ns.get_by_name(name))
        .map_err(|_| ApiError::misconfigured(&[format!("{DO_BINDING} binding is missing")]))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post);
    let headers = Headers::new();
    headers.set(AUTHORITY_HEADER, name).map_err(|_| ApiError::internal())?;
    init.with_headers(headers);
    if let Some(b) = body {
        init.with_body(Some(b.to_string().into()));
    }
    let req = Request::new_with_init(&format!("https://authority/{}", op.name()), &init)
        .map_err(|_| ApiError::internal())?;
    let mut resp = stub.fetch_with_request(req).await.map_err(|e| {
        console_error!("{}", json!({"event": "authority_call_failed", "op": op.name(), "detail": e.to_string()}));
        Refusal::Unavailable { message: "the token authority is unavailable".into() }.api_error()
    })?;
    resp.json::<Reply>().await.map_err(|_| ApiError::internal())
}
