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
//! `plumgate_core::edge::stale_secs` (a day for the catalog, never for the
//! balance).
//!
//! One fill per entry at a time in an isolate ([`Fill`], the rule is
//! `plumgate_core::edge::joins_fill`): a request that misses an entry
//! another request is already fetching waits for it ([`shared_fill`]) on
//! timers of its own (`runtime::wait` says why), and reads memory.

use crate::runtime::clock::now_ms;
use crate::runtime::cache;
use crate::runtime::http::Outgoing;
use crate::runtime::wait::pause;
use plumgate_core::config::Config;
use plumgate_core::edge::{cache_url, fill_poll_ms, joins_fill, ByteLru, Cached, Freshness, MAX_ENTRY_BYTES, MAX_TOTAL_BYTES};
use plumgate_core::ops::CacheKey;
use std::cell::{Cell, RefCell};

thread_local! {
    static MEMORY: RefCell<ByteLru<Cached>> = RefCell::new(ByteLru::new(MAX_TOTAL_BYTES, MAX_ENTRY_BYTES));
    /// The fills running in this isolate: URL, id, start.
    static FILLS: RefCell<Vec<(String, u64, i64)>> = const { RefCell::new(Vec::new()) };
    static FILL_IDS: Cell<u64> = const { Cell::new(0) };
}

/// Held by the request fetching an entry from Xoxoday. Dropping it (the
/// request is over, however it ended) ends the fill: its waiters then read
/// memory, and go on by themselves if the fill left nothing there.
pub struct Fill {
    id: u64,
}

impl Drop for Fill {
    fn drop(&mut self) {
        FILLS.with(|f| f.borrow_mut().retain(|(_, id, _)| *id != self.id));
    }
}

/// The id of the fill of `url` running in this isolate, if it is young
/// enough to wait for.
fn running_fill(url: &str, now: i64, timeout_ms: u32) -> Option<u64> {
    FILLS.with(|f| f.borrow().iter().find(|(u, _, started)| u == url && joins_fill(*started, now, timeout_ms)).map(|(_, id, _)| *id))
}

/// After a miss of `url`: the fresh copy another request's running fill
/// left in memory (`Ok`), waited for while that fill runs; or, when there
/// is none to wait for or it left none, this request's own [`Fill`]
/// (`Err`), to hold until its answer is stored.
pub async fn shared_fill(url: &str, timeout_ms: u32) -> Result<Cached, Fill> {
    let start = now_ms();
    if let Some(id) = running_fill(url, start, timeout_ms) {
        loop {
            pause(fill_poll_ms(now_ms() - start)).await;
            let now = now_ms();
            if let Some(c) = MEMORY.with(|m| m.borrow_mut().get(url).cloned()).filter(|c| c.freshness(now) == Freshness::Fresh) {
                return Ok(c);
            }
            if running_fill(url, now, timeout_ms) != Some(id) {
                break;
            }
        }
    }
    let id = FILL_IDS.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    // An older fill of this URL is past waiting for: this one replaces it.
    FILLS.with(|f| {
        let mut f = f.borrow_mut();
        f.retain(|(u, _, _)| u != url);
        f.push((url.to_owned(), id, now_ms()));
    });
    Err(Fill { id })
}

/// The Cache API URL of a key, for the Xoxoday account `cfg` talks to
/// (`plumgate_core::edge::cache_url` says why the account).
pub fn url(cfg: &Config, key: &CacheKey) -> String {
    cache_url(cfg.account_id(), key)
}

/// The entry under `url`, fresh or stale; `None` when there is none still
/// of use.
pub async fn get(url: &str) -> Option<Cached> {
    let now = now_ms();
    let in_memory = MEMORY.with(|m| m.borrow_mut().get(url).cloned());
    if let Some(c) = in_memory {
        if c.freshness(now) != Freshness::Gone {
            return Some(c);
        }
        MEMORY.with(|m| m.borrow_mut().remove(url));
    }
    let entry = cache::get(url).await?;
    let stamp = |name: &str| entry.header(name).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let (fresh_until_ms, stale_until_ms) = (stamp("x-plumgate-expires"), stamp("x-plumgate-stale-until"));
    let status = entry.status();
    let c = Cached { status, body: Vec::new(), fresh_until_ms, stale_until_ms: stale_until_ms.max(fresh_until_ms) };
    if c.freshness(now) == Freshness::Gone {
        return None;
    }
    let body = entry.body().await.ok()?;
    let c = Cached { body, ..c };
    remember(url, &c);
    Some(c)
}

/// Store a successful answer, fresh for `ttl_secs` and stale `stale_secs`
/// longer. Answers over the entry bound are not stored anywhere.
pub async fn put(url: &str, status: u16, body: &[u8], ttl_secs: u32, stale_secs: u64) {
    if ttl_secs == 0 || body.len() > MAX_ENTRY_BYTES {
        return;
    }
    let c = Cached::new(status, body.to_vec(), now_ms(), u64::from(ttl_secs), stale_secs);
    remember(url, &c);
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
