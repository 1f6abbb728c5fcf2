//! Edge caching of getFilters, getVouchers and getBalance (contract §2),
//! with stale copies kept for errors and penalties.
//!
//! Two layers: isolate memory, a least-recently-used map bounded by bytes
//! (`plumgate_core::edge`: 4 MiB in all, 1 MiB an answer), then the Workers
//! Cache API for the whole location. The Cache API is a no-op on
//! `*.workers.dev`, so the memory layer is what makes a hit there. Only
//! successful answers (`data.<op>.status == 1`) of calls whose key covers
//! all their fields are stored (`plumgate_core::ops::cache_key`); an entry
//! is fresh for its lifetime and kept stale after it for
//! `plumgate_core::edge::stale_secs` (a day for the catalog, two minutes
//! for the balance).
//!
//! One fill per entry at a time in an isolate ([`Fill`], the rule is
//! `plumgate_core::edge::joins_fill`): a request that misses an entry
//! another request is already fetching waits for it ([`shared_fill`]) on
//! timers of its own (`runtime::wait` says why), and takes the copy it
//! left in memory, the failure it ended in (a timeout, a penalty) or
//! Xoxoday's answer it did not keep (a 5xx in Xoxoday's shape), so a
//! hanging or failing Xoxoday costs every waiter one call, not one each.
//! What a waiter does after each look is `plumgate_core::edge::next_look`.

use crate::runtime::clock::now_ms;
use crate::runtime::cache;
use crate::runtime::http::Outgoing;
use crate::runtime::wait::pause;
use plumgate_core::config::Config;
use plumgate_core::errors::ApiError;
use plumgate_core::edge::{
    cache_url, fill_poll_ms, joins_fill, next_look, ByteLru, Cached, FillState, Freshness, NextLook, MAX_CACHE_API_BYTES, MAX_ENTRY_BYTES,
    MAX_TOTAL_BYTES,
};
use plumgate_core::ops::CacheKey;
use std::cell::{Cell, RefCell};

thread_local! {
    static MEMORY: RefCell<ByteLru<Cached>> = RefCell::new(ByteLru::new(MAX_TOTAL_BYTES, MAX_ENTRY_BYTES));
    /// The fills of this isolate, running and just ended.
    static FILLS: RefCell<Vec<FillEntry>> = const { RefCell::new(Vec::new()) };
    static FILL_IDS: Cell<u64> = const { Cell::new(0) };
}

/// How long an ended fill stays listed, for its waiters' next look (they
/// look at least every 250 ms: `plumgate_core::edge::fill_poll_ms`).
const ENDED_KEPT_MS: i64 = 1_000;

struct FillEntry {
    url: String,
    /// The exact call (the envelope sent): an answer not kept is shared
    /// only with waiters that sent the same bytes (a key covers fields
    /// that change a success, not what an error may be about).
    sent: String,
    id: u64,
    state: FillState<Left>,
    /// When it ended.
    ended_ms: i64,
}

/// What a fill that left no copy in memory ended in, for its waiters.
#[derive(Clone)]
pub enum Left {
    /// A failure of plumgate's own (a timeout, a penalty, an unreadable answer).
    Failed(ApiError),
    /// An answer of Xoxoday's not kept (an error in its JSON shape, a
    /// `status: 0`): each waiter would only have asked again and spent
    /// the operation's budget (a getBalance 502 ten times over).
    Answer(Cached),
}

/// Held by the request fetching an entry from Xoxoday. Dropping it (the
/// request is over, however it ended) ends the fill: its waiters then
/// take the copy it left in memory, or what it recorded
/// ([`Fill::failed`], [`Fill::answered`]), or else go on by themselves.
pub struct Fill {
    id: u64,
    left: Option<Left>,
}

impl Fill {
    /// The fill ended in `e` (a timeout, a penalty, a failure): its waiters
    /// get it too rather than each meeting it again.
    pub fn failed(&mut self, e: &ApiError) {
        self.left = Some(Left::Failed(e.clone()));
    }

    /// The fill ended in Xoxoday's answer `status`/`body`, not stored: its
    /// waiters get it too (one no larger than an entry may be).
    pub fn answered(&mut self, status: u16, body: &[u8]) {
        if body.len() <= MAX_ENTRY_BYTES {
            self.left = Some(Left::Answer(Cached { status, body: body.to_vec(), fresh_until_ms: 0, stale_until_ms: 0 }));
        }
    }
}

impl Drop for Fill {
    fn drop(&mut self) {
        let (now, left) = (now_ms(), self.left.take());
        FILLS.with(|f| {
            if let Some(e) = f.borrow_mut().iter_mut().find(|e| e.id == self.id) {
                (e.state, e.ended_ms) = (FillState::Ended(left), now);
            }
        });
    }
}

/// What a request that missed an entry does ([`shared_fill`]).
pub enum Shared {
    /// Answer with the copy another request's fill left in memory.
    Hit(Cached),
    /// Answer with the failure that fill ended in.
    Failed(ApiError),
    /// Answer with Xoxoday's answer that fill got and did not keep.
    Answer(Cached),
    /// Fetch it: this request's fill, to hold until its answer is stored.
    Lead(Fill),
}

/// After a miss of `url`: wait for the fill of it another request of the
/// isolate is running, if it is young enough, and take what it left; or
/// lead a fill. A waiter that stops waiting for a fill that ran too long
/// (`NextLook::Rejoin`: a refresh and a token check on its way) looks for a
/// younger one before it leads, so that fill's waiters make one call
/// between them, the first to stop leading it, not one each.
pub async fn shared_fill(url: &str, sent: &str, timeout_ms: u32) -> Shared {
    'join: loop {
        let start = now_ms();
        let running = FILLS.with(|f| {
            f.borrow()
                .iter()
                .find(|e| e.url == url && matches!(e.state, FillState::Running { started_ms } if joins_fill(started_ms, start, timeout_ms)))
                .map(|e| (e.id, e.sent == sent))
        });
        let Some((id, same_call)) = running else { break };
        loop {
            pause(fill_poll_ms(now_ms() - start)).await;
            let now = now_ms();
            if let Some(c) = MEMORY.with(|m| m.borrow_mut().get(url).cloned()).filter(|c| c.freshness(now) == Freshness::Fresh) {
                return Shared::Hit(c);
            }
            let look = next_look(FILLS.with(|f| f.borrow().iter().find(|e| e.id == id).map(|e| e.state.clone())), now, timeout_ms);
            let rejoin = matches!(look, NextLook::Rejoin);
            match look {
                NextLook::Wait => {}
                NextLook::Failed(Left::Failed(e)) => return Shared::Failed(e),
                NextLook::Failed(Left::Answer(c)) if same_call => return Shared::Answer(c),
                NextLook::Failed(Left::Answer(_)) | NextLook::Lead | NextLook::Rejoin => {
                    // A copy too large for memory is in the Cache API.
                    if let Some(c) = get(url).await.filter(|c| c.freshness(now_ms()) == Freshness::Fresh) {
                        return Shared::Hit(c);
                    }
                    if rejoin {
                        break;
                    }
                    break 'join;
                }
            }
        }
    }
    // (No await from the look above to the fill's listing below: a waiter
    // that stops after this one finds this fill.)
    let now = now_ms();
    let id = FILL_IDS.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    FILLS.with(|f| {
        let mut f = f.borrow_mut();
        // A running fill of this URL past waiting for is replaced by this
        // one (a young one stays: its waiters go on with it). Ended ones
        // stay a moment, for their waiters' next look.
        f.retain(|e| match e.state {
            FillState::Running { started_ms } => e.url != url || joins_fill(started_ms, now, timeout_ms),
            FillState::Ended(_) => now - e.ended_ms < ENDED_KEPT_MS,
        });
        f.push(FillEntry { url: url.to_owned(), sent: sent.to_owned(), id, state: FillState::Running { started_ms: now }, ended_ms: 0 });
    });
    Shared::Lead(Fill { id, left: None })
}

/// The Cache API URL of a key, for the Xoxoday account `cfg` talks to and
/// the entry lifetime `ttl_secs` configured for it
/// (`plumgate_core::edge::cache_url` says why both).
pub fn url(cfg: &Config, ttl_secs: u32, key: &CacheKey) -> String {
    cache_url(cfg.account_id(), ttl_secs, key)
}

/// The entry under `url`, fresh or stale; `None` when there is none still
/// of use. A stale copy in memory is checked against the Cache API, where
/// another isolate may have filled it again (`Cached::replaces`).
pub async fn get(url: &str) -> Option<Cached> {
    let now = now_ms();
    let mut held = MEMORY.with(|m| m.borrow_mut().get(url).cloned());
    match held.as_ref().map(|c| c.freshness(now)) {
        Some(Freshness::Fresh) => return held,
        Some(Freshness::Gone) => {
            MEMORY.with(|m| m.borrow_mut().remove(url));
            held = None;
        }
        _ => {}
    }
    let Some(entry) = cache::get(url).await else { return held };
    let stamp = |name: &str| entry.header(name).and_then(|v| plumgate_core::jsontext::int_from_text(&v)).unwrap_or(0);
    let (fresh_until_ms, stale_until_ms) = (stamp("x-plumgate-expires"), stamp("x-plumgate-stale-until"));
    let status = entry.status();
    let c = Cached { status, body: Vec::new(), fresh_until_ms, stale_until_ms: stale_until_ms.max(fresh_until_ms) };
    if !c.replaces(held.as_ref(), now) {
        return held;
    }
    let Ok(body) = entry.body().await else { return held };
    let c = Cached { body, ..c };
    if c.body.len() <= MAX_ENTRY_BYTES {
        remember(url, &c);
    }
    Some(c)
}

/// Store a successful answer, fresh for `ttl_secs` and stale `stale_secs`
/// longer: in memory up to the entry bound, in the Cache API up to
/// `MAX_CACHE_API_BYTES`. One too large for memory is kept fresh only: a
/// stale copy is read whole by every request that misses the entry, and
/// megabytes each would crowd the isolate's memory.
pub async fn put(url: &str, status: u16, body: &[u8], ttl_secs: u32, stale_secs: u64) {
    if ttl_secs == 0 || body.len() > MAX_CACHE_API_BYTES {
        return;
    }
    let stale_secs = if body.len() > MAX_ENTRY_BYTES { 0 } else { stale_secs };
    let c = Cached::new(status, body.to_vec(), now_ms(), u64::from(ttl_secs), stale_secs);
    if body.len() <= MAX_ENTRY_BYTES {
        remember(url, &c);
    }
    let max_age = format!("max-age={}", u64::from(ttl_secs) + stale_secs);
    let (expires, stale_until) = (c.fresh_until_ms.to_string(), c.stale_until_ms.to_string());
    let mut entry = Outgoing::new(status, Some(c.body));
    entry.set("content-type", "application/json");
    entry.set("cache-control", max_age);
    entry.set("x-plumgate-expires", expires);
    entry.set("x-plumgate-stale-until", stale_until);
    cache::put(url, entry).await;
}

fn remember(url: &str, c: &Cached) {
    let weight = c.weight(url);
    MEMORY.with(|m| m.borrow_mut().insert(url, c.clone(), weight));
}
