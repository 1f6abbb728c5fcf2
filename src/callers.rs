//! Who is calling, and may they: the key behind a request and its
//! `requests_per_minute`, in the isolate.
//!
//! A key is looked up in `GATEWAY_KEYS` first, then (if it has the shape
//! of a runtime key, `pgk_` and 48 hex) in this isolate's copy of the
//! registry's *directory* of runtime keys: no round trip for a key seen
//! recently, however many keys there are. When the copy may be used, how
//! often it is refreshed and what a miss costs is
//! `plumgate_core::keys` (`freshness`, `recheck_miss`, and `Syncs`, which
//! decides when a key the copy cannot admit may call the registry and
//! whether a reply may replace the copy): in short, a revoked key is refused
//! everywhere within 8 s (at once here when this isolate revoked it), and a
//! flood of unknown keys makes at most one registry call per second per
//! isolate, failed calls counted. A request that finds a sync in flight
//! waits for it (`runtime::wait`) and looks again, rather than being refused
//! beside it or making a call of its own.
//!
//! The same sync carries the usage this isolate counted (requests per key,
//! the latest minute's count, the last request) to the registry, and
//! brings back each reported key's count of the minute across isolates,
//! which [`admit`] adds to its own count for `requests_per_minute`
//! (`plumgate_core::quota`), with the usage a sync in flight carries. A
//! sync runs after the request that finds it due, in the request's
//! `waitUntil`, so callers never wait for it unless the copy is too old to
//! use. Usage is therefore reported at most a few seconds late; what an
//! isolate counted since its last sync is lost if the isolate is evicted
//! first.

use crate::objects::registry;
use crate::runtime::clock::now_ms;
use crate::runtime::defer::defer;
use plumgate_core::auth::{AuthError, Caller};
use plumgate_core::config::Config;
use plumgate_core::errors::ApiError;
use crate::runtime::wait::{pause, POLL_MS};
use plumgate_core::keys::{self, Credential, Look, Recheck, Syncs, Ticket, KEY_PREFIX, KEY_RANDOM_BYTES, SYNC_STALE_MS};
use plumgate_core::quota::{check_rate, keep_count, rate_minute, Counter, UsageDelta};
use plumgate_core::secret::CallerKey;
use plumgate_core::time::minute_of;
use plumgate_core::wire::registry::{Op, Request};
use std::cell::RefCell;
use worker::{Context, Env};

/// The isolate's copy of the directory and its unsent usage.
#[derive(Default)]
struct Book {
    directory: Vec<Credential>,
    version: Option<String>,
    /// When the copy was fetched (`None`: never, or thrown away).
    fetched_ms: Option<i64>,
    /// Usage counted since the last sync was sent, one per key id (what
    /// was sent and not yet answered is in `syncs`).
    pending: Vec<UsageDelta>,
    /// Each key's count of its latest minute across isolates, at the last
    /// sync (a few keys per isolate: a list is smaller than a map).
    shared: Vec<(String, Counter)>,
    /// Every sync's start and end, the usage in flight, the floor.
    syncs: Syncs,
}

thread_local! {
    static BOOK: RefCell<Book> = RefCell::new(Book::default());
}

/// The caller whose key is `key`.
///
/// # Errors
/// `401 unauthorized` for a key that is no one's (or, the copy not
/// having it, that may not make the isolate ask now: `Syncs::recheck`);
/// `502` / `503` when the registry is needed (a runtime key, the copy too
/// old) and cannot be reached, or did not answer the isolate's last try,
/// or (`502`) key changes made here, or replies slower than
/// `keys::MAX_AGE_MS`, kept its replies from being kept.
pub async fn identify(env: &Env, cfg: &Config, key: &CallerKey) -> Result<Caller, ApiError> {
    let unknown = || ApiError::unauthorized(AuthError::Unknown.message());
    match cfg.gateway_keys.authenticate_key(key) {
        Ok(caller) => return Ok(caller),
        Err(AuthError::Unknown) => {}
        Err(e) => return Err(ApiError::unauthorized(e.message())),
    }
    // Only a key of the runtime shape can be in the directory: anything
    // else is unknown without a look.
    let k = key.expose_secret();
    if !(k.len() == KEY_PREFIX.len() + 2 * KEY_RANDOM_BYTES && k.starts_with(KEY_PREFIX)) {
        return Err(unknown());
    }
    // A key that waits for another request's sync (on this request's own
    // timer: `runtime::wait`) looks again; `Syncs::recheck` stops the wait
    // once that sync is stale (the count only guards a clock that stands).
    for _ in 0..=SYNC_STALE_MS / POLL_MS {
        let now = now_ms();
        let seen = match BOOK.with(|b| {
            let b = b.borrow();
            keys::look(&b.directory, b.fetched_ms, key, now)
        }) {
            Look::Caller(caller) => return Ok(caller),
            Look::Unknown => return Err(unknown()),
            Look::Ask(seen) => seen,
        };
        match BOOK.with(|b| b.borrow().syncs.recheck(seen, now)) {
            Recheck::Sync => break,
            Recheck::Refuse => return Err(unknown()),
            Recheck::Fail(e) => return Err(e),
            Recheck::Wait(max_ms) => pause(max_ms.min(POLL_MS)).await,
        }
    }
    // A reply to a sync begun before this isolate changed a key, or
    // `keys::MAX_AGE_MS` or more before it came, is not kept (it could hold
    // a key revoked since), nor one a later sync's failure overtook: ask
    // once more, then give up with a retry (keys keep changing here, or
    // the registry is slow or failing), not with "unknown".
    for _ in 0..2 {
        if sync(env).await? {
            return lookup(key, now_ms()).ok_or_else(unknown);
        }
    }
    Err(keys::directory_changing())
}

/// The unsent usage of key `id`, made empty if there is none yet.
fn pending_of<'a>(pending: &'a mut Vec<UsageDelta>, id: &str) -> &'a mut UsageDelta {
    match pending.iter().position(|d| d.id == id) {
        Some(i) => &mut pending[i],
        None => {
            pending.push(UsageDelta { id: id.to_owned(), ..UsageDelta::default() });
            let last = pending.len() - 1;
            &mut pending[last]
        }
    }
}

fn lookup(key: &CallerKey, now: i64) -> Option<Caller> {
    BOOK.with(|b| keys::identify(&b.borrow().directory, key, now))
}

/// Count one request of `caller`, unless it is over its
/// `requests_per_minute`; start a background sync when one is due.
///
/// # Errors
/// `429 quota_exceeded` naming the limit (the request is not counted).
pub fn admit(env: &Env, ctx: &Context, caller: &Caller) -> Result<(), ApiError> {
    let now = now_ms();
    let due = BOOK.with(|b| {
        let mut b = b.borrow_mut();
        let shared = b.shared.iter().find(|(id, _)| *id == caller.id).map_or(Counter::default(), |(_, c)| *c);
        let minute = rate_minute(shared, now);
        let shared = shared.at(minute);
        let pending = b.pending.iter().find(|d| d.id == caller.id).map_or(0, |d| d.counter().at(minute));
        // Sent but not yet in `shared`: still this isolate's to count.
        let sending = b.syncs.sending(&caller.id, minute);
        check_rate(caller.limits.requests_per_minute, shared.saturating_add(pending).saturating_add(sending), now)?;
        pending_of(&mut b.pending, &caller.id).count_in(minute, now);
        // Begun here, so the requests after this one see it in flight.
        Ok::<_, ApiError>(b.syncs.background_due(b.fetched_ms, now).then(|| begin(&mut b, now)))
    })?;
    if let Some(begun) = due {
        let env = env.clone();
        defer(
            ctx,
            Box::pin(async move {
                let _ = finish(&env, begun).await;
            }),
        );
    }
    Ok(())
}

/// A sync begun: its request, its ticket, when it began.
struct Begun {
    json: String,
    ticket: Ticket,
    at_ms: i64,
}

/// Begin a sync at `now`: the usage counted so far goes in the request
/// (and stays counted, in `syncs`, until the reply holds it).
fn begin(b: &mut Book, now: i64) -> Begun {
    let req = Request { version: b.version.clone(), usage: std::mem::take(&mut b.pending), ..Request::default() };
    Begun { json: req.to_json(), ticket: b.syncs.start(req.usage, now), at_ms: now }
}

/// Report the usage counted so far and refresh the directory: `Ok(true)`
/// when the copy is now at least as young as this sync (its reply replaced
/// or refreshed it, or a sync begun after it did), `Ok(false)` when a key
/// changed in this isolate while it was in flight, it began
/// `keys::MAX_AGE_MS` or more before its reply came (its directory could
/// honour a key revoked since), a sync begun after it ended first and
/// failed, or the reply said "current" of another version than the
/// copy's, replaced meanwhile by an earlier sync's late reply
/// (`keys::reply_applies`): the reply's counts are kept, not its directory.
async fn sync(env: &Env) -> Result<bool, ApiError> {
    let begun = BOOK.with(|b| begin(&mut b.borrow_mut(), now_ms()));
    finish(env, begun).await
}

/// Send a sync [`begin`] made and keep what its reply says ([`sync`]).
async fn finish(env: &Env, begun: Begun) -> Result<bool, ApiError> {
    let Begun { json, ticket, at_ms: now } = begun;
    let sent = registry::call_json(env, Op::Sync, json).await;
    let reply = sent.and_then(|r| match r.error {
        Some(e) => Err(e),
        None => Ok(r),
    });
    BOOK.with(|b| {
        let mut b = b.borrow_mut();
        let b = &mut *b;
        let (current, usage) = b.syncs.end(ticket, reply.as_ref().err(), now_ms());
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                // Not counted there: count it with the next sync.
                for d in &usage {
                    pending_of(&mut b.pending, &d.id).merge(d);
                }
                return Err(e);
            }
        };
        let applies = current
            && keys::reply_applies(b.version.as_deref(), reply.version.as_deref(), reply.directory.is_some());
        if applies {
            if let Some(dir) = reply.directory {
                b.directory = dir;
            }
            b.version = reply.version;
            b.fetched_ms = Some(now);
        }
        // These counts include `usage`, dropped here in the same step; a
        // reply overtaken by a later one leaves the later one's counts.
        for c in reply.counts {
            let counter = c.counter();
            keep_count(&mut b.shared, c.id, counter, minute_of(now));
        }
        // (Not kept, overtaken by a later sync's reply: the copy is younger
        // than this one's would be, and no second sync is needed.)
        Ok(b.fetched_ms >= Some(now))
    })
}

/// Throw the copy away (after this isolate changed a key): the next
/// request of a runtime key fetches a new one, and no sync begun before
/// can put the old one back.
pub fn invalidate() {
    BOOK.with(|b| {
        let mut b = b.borrow_mut();
        b.fetched_ms = None;
        b.syncs.invalidate();
    });
}

/// Sync now (before `GET /v1/keys`, so its `last_used_at` and requests
/// include this isolate's latest counts). A failure is left to the next
/// sync.
pub async fn flush(env: &Env) {
    let _ = sync(env).await;
}
