//! The access-token cache in front of the `TokenAuthority`.
//!
//! Lookup order (contract §4.3): isolate memory, then the `TOKEN_CACHE` KV
//! namespace, then the Durable Object. A cached grant carries `recheck_at_ms`
//! (set by the authority from the token state machine): before that instant
//! the hot path does no KV or DO call at all. The refresh token never comes
//! here; only the access token and its timing do.
//!
//! One authority per Xoxoday account: the Durable Object's name and the KV
//! key derive from the base URL and client id (`Config::account_id`), so
//! another account's token is never served.
//!
//! This module is the authority's client: it sends the typed calls of
//! `plumgate_core::wire::authority` (through `objects::authority::call`)
//! and keeps what the replies hand out; what a reply means is decided by
//! `plumgate_core::token::cache`.
//!
//! One lookup per isolate at a time: requests that find memory cold while
//! another request's lookup is running wait for it (at most
//! `plumgate_core::token::cache::JOIN_WAIT_MS`, in case that request is cancelled)
//! and take the grant it leaves in memory, instead of each reading KV and
//! calling the Durable Object (each on a timer of its own: `runtime::wait`).
//!
//! Also the isolate's side of the balance alert ([`balance_seen`]): the
//! balance a getBalance answer from Xoxoday showed is reported to the
//! authority, which dedupes across isolates, only when this isolate's view
//! crosses `BALANCE_ALERT_BELOW` (or is its first, or its last report is
//! five minutes old), after the response.

use crate::objects::authority::{self as authority_object, KV_BINDING};
use crate::runtime::clock::now_ms;
use crate::runtime::defer::defer;
use crate::runtime::wait::{pause, POLL_MS};
use crate::runtime::kv;
use plumgate_core::alert::balance_report;
use plumgate_core::config::Config;
use plumgate_core::errors::ApiError;
use crate::runtime::{error_event, log_event};
use plumgate_core::token::cache::{admin_answer, after_check, grant_of, joins_lookup, status_of, Checked, Source, JOIN_WAIT_MS};
use plumgate_core::token::storage::{authority_name, kv_token_key};
use plumgate_core::wire::authority::{Call, Grant, Reply};
use serde_json::Value;
use std::cell::{Cell, RefCell};
use worker::{Context, Env};

thread_local! {
    static MEMORY: RefCell<Option<Grant>> = const { RefCell::new(None) };
    /// The token lookup running in this isolate, if any.
    static LOOKUP: RefCell<Option<Lookup>> = const { RefCell::new(None) };
    static LOOKUP_IDS: Cell<u64> = const { Cell::new(0) };
    /// The side of `BALANCE_ALERT_BELOW` this isolate last reported, and
    /// when (`Some((true, t))`: below, at `t`), `None` before its first report.
    static BALANCE_REPORTED: Cell<Option<(bool, i64)>> = const { Cell::new(None) };
}

/// A running lookup.
struct Lookup {
    id: u64,
    started_ms: i64,
}

/// Held by the request doing the isolate's lookup. Dropping it (the lookup
/// is over, however it ended) ends it: its waiters then read memory.
struct Lead {
    id: u64,
}

impl Lead {
    fn start(now: i64) -> Lead {
        let id = LOOKUP_IDS.with(|c| {
            c.set(c.get() + 1);
            c.get()
        });
        // A stale lookup is replaced: its waiters look for themselves.
        LOOKUP.with(|l| *l.borrow_mut() = Some(Lookup { id, started_ms: now }));
        Lead { id }
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        LOOKUP.with(|l| {
            let mut l = l.borrow_mut();
            if l.as_ref().is_some_and(|lookup| lookup.id == self.id) {
                *l = None;
            }
        });
    }
}

/// The lookup another request of this isolate is running, if it is young
/// enough to wait for: its id.
fn running_lookup(now: i64) -> Option<u64> {
    LOOKUP.with(|l| l.borrow().as_ref().filter(|lk| joins_lookup(lk.started_ms, now)).map(|lk| lk.id))
}

fn from_memory(now: i64) -> Option<Grant> {
    MEMORY.with(|m| m.borrow().clone()).filter(|g| g.usable(now))
}

/// A usable access token for an upstream call, and where it came from.
pub async fn access_token(env: &Env, cfg: &Config) -> Result<(Grant, Source), ApiError> {
    if let Some(g) = from_memory(now_ms()) {
        return Ok((g, Source::Memory));
    }
    if let Some(id) = running_lookup(now_ms()) {
        // Wait for it (on this request's own timer: `runtime::wait`) while
        // it runs and is young enough; then memory says whether it left a
        // grant.
        for _ in 0..=JOIN_WAIT_MS / POLL_MS {
            pause(POLL_MS).await;
            if let Some(g) = from_memory(now_ms()) {
                return Ok((g, Source::Shared));
            }
            if running_lookup(now_ms()) != Some(id) {
                break;
            }
        }
    }
    let _lead = Lead::start(now_ms());
    let account = cfg.account_id();
    if let Some(g) = kv::get(env, KV_BINDING, &kv_token_key(account)).await.and_then(|t| Grant::read(&t)) {
        if g.usable(now_ms()) {
            remember(&g);
            return Ok((g, Source::Kv));
        }
    }
    let g = grant_of(call(env, account, &Call::Token).await?)?;
    remember(&g);
    Ok((g, Source::Authority))
}

/// Xoxoday answered 401 (a token candidate) to `rejected`: the authority
/// checks it and replaces it only if Xoxoday confirms it is invalid and it
/// is still the current token.
pub async fn check_rejected(env: &Env, cfg: &Config, rejected: &Grant) -> Result<Checked, ApiError> {
    let fp = rejected.fingerprint();
    let reply = call(env, cfg.account_id(), &Call::Check { fp: fp.clone() }).await?;
    let (forget, checked) = after_check(reply, &fp);
    if forget {
        MEMORY.with(|m| {
            let mut m = m.borrow_mut();
            if m.as_ref().is_some_and(|g| g.fingerprint() == fp) {
                *m = None;
            }
        });
    }
    if let Ok(Checked::Replaced(g)) = &checked {
        remember(g);
    }
    checked
}

/// Token status for `GET /v1/token`.
pub async fn status(env: &Env, cfg: &Config) -> Result<Value, ApiError> {
    status_of(call(env, cfg.account_id(), &Call::Status).await?)
}

/// `POST /v1/token/refresh`: a forced refresh (shared with any in flight;
/// throttled while the token is usable, or while the client id/secret
/// stand rejected).
pub async fn force_refresh(env: &Env, cfg: &Config) -> Result<Value, ApiError> {
    admin(call(env, cfg.account_id(), &Call::Refresh).await?)
}

/// `POST /v1/token/recover`: set unreadable stored state aside.
pub async fn recover(env: &Env, cfg: &Config) -> Result<Value, ApiError> {
    admin(call(env, cfg.account_id(), &Call::Recover).await?)
}

fn admin(reply: Reply<Value>) -> Result<Value, ApiError> {
    let (grant, answer) = admin_answer(reply);
    if let Some(g) = &grant {
        remember(g);
    }
    answer
}

/// The scheduled keep-alive.
pub async fn cron_tick(env: &Env, cfg: &Config, cron: &str) {
    match call(env, cfg.account_id(), &Call::Cron).await {
        Ok(r) => log_event(&[
            ("cron", cron.into()),
            ("error", r.error.as_ref().map(|e| e.code.as_str()).into()),
            ("event", "cron".into()),
            ("state", r.status.as_ref().and_then(|s| s.get("state")).and_then(Value::as_str).into()),
        ]),
        Err(e) => error_event(&[("cron", cron.into()), ("error", e.code.as_str().into()), ("event", "cron_failed".into())]),
    }
}

/// A getBalance answer from Xoxoday showed `balance`: when this isolate's
/// view crosses `BALANCE_ALERT_BELOW` (or is its first, or its last report
/// is five minutes old: `alert::balance_report`), report it to the
/// authority, which decides whether that is a change for the account
/// (`alert::observe_balance`). Deferred (`wait_until`): the caller's response does
/// not wait. A report that does not arrive is made again on the next
/// answer.
pub fn balance_seen(env: &Env, ctx: &Context, cfg: &Config, balance: f64) {
    let (before, seen_at_ms) = (BALANCE_REPORTED.with(Cell::get), now_ms());
    let Some(low) = balance_report(cfg.balance_alert_below, balance, before, seen_at_ms) else { return };
    BALANCE_REPORTED.with(|r| r.set(Some((low, seen_at_ms))));
    let (env, account) = (env.clone(), cfg.account_id().to_owned());
    defer(ctx, Box::pin(async move {
        let reply = call(&env, &account, &Call::Balance { value: balance, seen_at_ms }).await;
        if !matches!(reply, Ok(Reply { error: None, .. })) {
            BALANCE_REPORTED.with(|r| {
                if r.get() == Some((low, seen_at_ms)) {
                    r.set(before);
                }
            });
            error_event(&[("event", "balance_report_failed".into())]);
        }
    }));
}

fn remember(g: &Grant) {
    MEMORY.with(|m| *m.borrow_mut() = Some(g.clone()));
}

async fn call(env: &Env, account: &str, call: &Call) -> Result<Reply<Value>, ApiError> {
    authority_object::call(env, &authority_name(account), call).await
}
