//! The edge cache's rules, without I/O: how much an isolate keeps
//! ([`ByteLru`], bounded by bytes), how long an answer is fresh and how
//! long a stale copy is kept ([`Cached`], [`stale_secs`]), and when a stale
//! copy answers instead of an error ([`stale_instead_of`]).
//!
//! **Memory.** An isolate has 128 MB, and wasm memory never shrinks: once
//! grown for a cache, it stays grown. So the isolate's copy of the cache is
//! bounded by bytes, not entries: at most [`MAX_TOTAL_BYTES`] (4 MiB) of
//! answers and keys, no answer over [`MAX_ENTRY_BYTES`] (1 MiB; a
//! getVouchers page of 100 products with long terms is a few hundred KiB),
//! least recently used evicted first. The per-location Cache API holds the
//! rest, outside the isolate, answers too large for memory included (up to
//! [`MAX_CACHE_API_BYTES`], fresh only); it does nothing on `*.workers.dev`.
//!
//! **Stale copies.** When Xoxoday errs or penalises, or plumgate's own
//! limiter refuses, a catalog answer (getFilters, getVouchers) past its
//! lifetime is served with `x-plumgate-cache: stale` rather than an error,
//! for up to [`CATALOG_STALE_SECS`] (a day, which covers getVouchers' daily
//! cap) after it expired; so is a fresh one an admin bypassed (the copy is
//! not the answer Xoxoday gave this call, which is what `stale` says). A
//! getBalance answer is kept only [`BALANCE_STALE_SECS`] (two minutes) past
//! its lifetime: a wallet figure changes with every order, so an old one is
//! served only to bridge a short wait, above all plumgate's own limiter's
//! when several locations refill the balance within its one budget (10 calls
//! a minute: two locations at the 10 s default already ask 12 times), where
//! its callers got `429` and no figure at all.
//!
//! **One fill at a time.** Concurrent requests of an isolate that miss the
//! same storable entry would each call Xoxoday and spend the operation's
//! per-minute budget (15 getBalance calls at once spent a minute of it).
//! So the first goes upstream and the others wait for the copy its answer
//! leaves in memory ([`joins_fill`], polling at [`fill_poll_ms`]). A fill
//! that ends in a timeout or a penalty hands that to its waiters; one that
//! leaves nothing else (an answer not to keep, a request that went away)
//! lets each go on by itself, without waiting again ([`next_look`]).

use crate::ops::{CacheClass, CacheKey};
use std::collections::HashMap;

/// Most bytes of answers and keys an isolate keeps.
pub const MAX_TOTAL_BYTES: usize = 4 * 1024 * 1024;

/// Largest answer kept in an isolate's memory.
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;

/// Largest answer kept in the Cache API (outside the isolate's memory): a
/// whole catalogue asked for in one page (`limit: 10000`, as some clients
/// do) is megabytes, and is cached like any page (fresh only: no stale
/// copy of an answer over [`MAX_ENTRY_BYTES`]). Each hit still reads it
/// whole into the isolate, hence a bound well under its 128 MB.
pub const MAX_CACHE_API_BYTES: usize = 8 * 1024 * 1024;

/// How long a catalog answer is kept after it expired, for errors and
/// penalties.
pub const CATALOG_STALE_SECS: u64 = 86_400;

/// How long a getBalance answer is kept after it expired, for errors and
/// penalties: longer than the limiter's longest wait for a getBalance call
/// at its documented budget (a minute and a lease: `Retry-After` of at
/// most about 68 s) and Xoxoday's 60 s penalty, so a copy still fresh when
/// the wait began covers it; short, since the figure changes with orders.
pub const BALANCE_STALE_SECS: u64 = 120;

/// Bytes counted per entry beyond its key and body (the entry's own fields
/// and the map slots).
const ENTRY_OVERHEAD: usize = 64;

/// How long an answer of `class` is served stale after it expired.
pub fn stale_secs(class: CacheClass) -> u64 {
    match class {
        CacheClass::Catalog => CATALOG_STALE_SECS,
        CacheClass::Balance => BALANCE_STALE_SECS,
    }
}

/// Does an answer with this status (Xoxoday's, or plumgate's own error)
/// give way to a stale copy? A rate-limit refusal or penalty (429) and a
/// failure (5xx: Xoxoday down, a timeout, a transport or token problem)
/// do; a definite answer (any other) does not.
pub fn stale_instead_of(status: u16) -> bool {
    status == 429 || status >= 500
}

/// What a cacheable call does with Xoxoday's answer (readable, not a
/// penalty: those are refusals, [`stale_instead_of`] their status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAnswer {
    /// A copy is at hand and the answer is a failure it stands in for: the
    /// copy answers this request; the answer is not stored, and the
    /// requests waiting for this call's fill get it as it is.
    ServeStale,
    /// Xoxoday's success (`status` 1 in a 200) under a key that may be
    /// stored: stored, where the fill's waiters find it, and answered.
    Store,
    /// Answered as it is, not stored; the fill's waiters get it as it is.
    PassOn,
}

/// [`AfterAnswer`] for an answer with HTTP `status`, Xoxoday's success flag
/// (`success`), a stale copy at hand or not, and a key that may be stored
/// (`storable`: a cacheable operation whose body holds no field plumgate
/// does not know).
pub fn after_answer(status: u16, success: bool, stale_at_hand: bool, storable: bool) -> AfterAnswer {
    if stale_at_hand && stale_instead_of(status) {
        AfterAnswer::ServeStale
    } else if success && storable {
        AfterAnswer::Store
    } else {
        AfterAnswer::PassOn
    }
}

/// How much longer than the upstream timeout a fill may run before its
/// waiters stop waiting for it: its call to Xoxoday starts after the fill
/// does (the limiter's check, the token), so it ends a little after
/// `UPSTREAM_TIMEOUT_MS` of the fill's age.
pub const FILL_GRACE_MS: i64 = 5_000;

/// Should a request that misses an entry wait for the fill of it another
/// request of the isolate started at `started_ms`, rather than call
/// Xoxoday itself? Yes while that fill is younger than the upstream
/// timeout, `timeout_ms`, and [`FILL_GRACE_MS`]; an older one belongs to a
/// request that is gone, and a fill "from the future" (the clock went back)
/// is not waited on, so a wrong clock costs calls, never a wait.
pub fn joins_fill(started_ms: i64, now_ms: i64, timeout_ms: u32) -> bool {
    (0..i64::from(timeout_ms) + FILL_GRACE_MS).contains(&(now_ms - started_ms))
}

/// How long a request that has waited `waited_ms` for a fill sleeps before
/// it looks again: 5 ms at first (a cached answer is usually a few
/// milliseconds away), a quarter of the wait so far after that, and at
/// most 250 ms, so a 30 s wait for a slow Xoxoday is about 130 looks, not
/// 6,000.
pub fn fill_poll_ms(waited_ms: i64) -> i64 {
    (waited_ms / 4).clamp(5, 250)
}

/// A fill as a waiter finds it when it looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FillState<E> {
    /// Still running, since `started_ms`.
    Running {
        /// When it started (epoch ms).
        started_ms: i64,
    },
    /// Over, with what its waiters share if it left no copy in memory:
    /// the failure it ended in (a timeout, a penalty, an unreadable answer:
    /// the failures [`stale_instead_of`] names) or Xoxoday's answer that
    /// was not one to keep; `None` when it left a copy, or nothing to share.
    Ended(Option<E>),
}

/// What a waiter does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextLook<E> {
    /// Sleep ([`fill_poll_ms`]) and look again.
    Wait,
    /// Answer with what the fill ended in (its failure, or the answer it
    /// did not keep).
    Failed(E),
    /// Go on by itself: fetch the entry, as a fill of its own.
    Lead,
    /// The fill ran too long to wait for, or is no longer listed (a
    /// request past waiting for it leads one of its own in its place):
    /// join a younger fill of the entry if there is one (another of its
    /// waiters may lead one by now: one call for the rest, not one each),
    /// else lead.
    Rejoin,
}

/// After a look that found no fresh copy in memory: what a waiter does,
/// given the fill it waits for (`None`: no longer listed).
pub fn next_look<E>(fill: Option<FillState<E>>, now_ms: i64, timeout_ms: u32) -> NextLook<E> {
    match fill {
        Some(FillState::Running { started_ms }) if joins_fill(started_ms, now_ms, timeout_ms) => NextLook::Wait,
        Some(FillState::Ended(Some(e))) => NextLook::Failed(e),
        // Its waiters lead at once, side by side: joining one another's
        // fills would only chain their calls one after another.
        Some(FillState::Ended(None)) => NextLook::Lead,
        _ => NextLook::Rejoin,
    }
}

/// A cached answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    /// Xoxoday's status.
    pub status: u16,
    /// Xoxoday's body.
    pub body: Vec<u8>,
    /// Fresh until then (epoch ms).
    pub fresh_until_ms: i64,
    /// Served stale until then.
    pub stale_until_ms: i64,
}

/// How a cached answer stands at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it (`hit`).
    Fresh,
    /// Only instead of an error (`stale`).
    Stale,
    /// Of no use any more.
    Gone,
}

impl Cached {
    /// A successful answer stored at `now_ms` for `ttl_secs`, kept stale
    /// `stale_secs` longer.
    pub fn new(status: u16, body: Vec<u8>, now_ms: i64, ttl_secs: u64, stale_secs: u64) -> Cached {
        let fresh_until_ms = crate::time::add_secs(now_ms, ttl_secs);
        Cached { status, body, fresh_until_ms, stale_until_ms: crate::time::add_secs(fresh_until_ms, stale_secs) }
    }

    /// Where it stands at `now_ms`.
    pub fn freshness(&self, now_ms: i64) -> Freshness {
        if now_ms < self.fresh_until_ms {
            Freshness::Fresh
        } else if now_ms < self.stale_until_ms {
            Freshness::Stale
        } else {
            Freshness::Gone
        }
    }

    /// Does this copy from the Cache API replace `held`, an isolate's
    /// copy in memory of the same entry, at `now_ms`? Only one still of use
    /// and filled later: every isolate's copies go stale at the same
    /// instant, and the first to fill again puts the new copy in the Cache
    /// API, which the others must take rather than call Xoxoday each.
    pub fn replaces(&self, held: Option<&Cached>, now_ms: i64) -> bool {
        now_ms < self.stale_until_ms && held.is_none_or(|h| self.fresh_until_ms > h.fresh_until_ms)
    }

    /// Bytes it counts for, under `key`.
    pub fn weight(&self, key: &str) -> usize {
        self.body.len() + key.len() + ENTRY_OVERHEAD
    }
}

/// A map bounded by the total weight of its entries, evicting the least
/// recently used first. Lookups are O(1); an eviction scans the entries for
/// the oldest (O(n), on a cache miss that has to make room only; n is a few
/// hundred answers at most: a use-order index would cost the worker's wasm
/// a tree map's code for nothing it notices).
#[derive(Debug)]
pub struct ByteLru<V> {
    map: HashMap<String, Slot<V>>,
    tick: u64,
    bytes: usize,
    max_bytes: usize,
    max_entry: usize,
}

#[derive(Debug)]
struct Slot<V> {
    value: V,
    weight: usize,
    /// When it was last used.
    tick: u64,
}

impl<V> ByteLru<V> {
    /// Empty, holding at most `max_bytes` in all and `max_entry` in one
    /// entry.
    pub fn new(max_bytes: usize, max_entry: usize) -> Self {
        ByteLru { map: HashMap::new(), tick: 0, bytes: 0, max_bytes, max_entry: max_entry.min(max_bytes) }
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The entry under `key`, now the most recently used.
    pub fn get(&mut self, key: &str) -> Option<&V> {
        let tick = self.next_tick();
        let slot = self.map.get_mut(key)?;
        slot.tick = tick;
        Some(&slot.value)
    }

    /// Keep `value` under `key`, counting `weight` bytes, evicting the
    /// least recently used entries until it fits. An entry heavier than the
    /// entry bound is not kept (and any older one under `key` goes): `false`.
    pub fn insert(&mut self, key: &str, value: V, weight: usize) -> bool {
        self.remove(key);
        if weight > self.max_entry {
            return false;
        }
        while self.bytes + weight > self.max_bytes {
            let Some(oldest) = self.map.iter().min_by_key(|(_, s)| s.tick).map(|(k, _)| k.clone()) else { break };
            self.remove(&oldest);
        }
        let tick = self.next_tick();
        self.map.insert(key.to_string(), Slot { value, weight, tick });
        self.bytes += weight;
        true
    }

    /// Drop the entry under `key`.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let slot = self.map.remove(key)?;
        self.bytes -= slot.weight;
        Some(slot.value)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The Cache API URL of `key` (`ops::cache_key`) for `account`
/// (`Config::account_id`: the Xoxoday base URL and client id), under the
/// entry lifetime `ttl_secs` now configured for it. `v3`: keys of fields,
/// with stale copies, per account. The Cache API is shared by every Worker
/// of a zone: without the account, a staging and a production plumgate (or
/// one whose credentials changed) would answer with each other's catalog
/// and balance. Without the lifetime, an entry stored under a longer one
/// would stay fresh for it after the operator shortened it (prices
/// changed: `CATALOG_CACHE_TTL_SECS` 21600 → 60 would still serve
/// six-hour-old pages); a new lifetime starts the cache afresh (a value
/// used again within its lifetime plus a day finds its entries again).
pub fn cache_url(account: &str, ttl_secs: u32, key: &CacheKey) -> String {
    format!("https://plumgate.internal/cache/v3/{account}/{ttl_secs}s/{}", key.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_is_joined_while_younger_than_the_upstream_timeout_and_a_grace() {
        const T0: i64 = 1_800_000_000_000;
        assert!(joins_fill(T0, T0, 30_000));
        assert!(joins_fill(T0, T0 + 30_000, 30_000), "its call started after it, and may still be timing out");
        assert!(joins_fill(T0, T0 + 34_999, 30_000));
        assert!(!joins_fill(T0, T0 + 35_000, 30_000), "the timeout and the grace passed: its request is gone");
        assert!(!joins_fill(T0, T0 - 1, 30_000), "clock went back: do not wait on it");
    }

    #[test]
    fn a_waiter_waits_while_the_fill_runs_takes_its_failure_or_leads() {
        const T0: i64 = 1_800_000_000_000;
        let look = |fill: Option<FillState<&'static str>>, now: i64| next_look(fill, now, 30_000);
        assert_eq!(look(Some(FillState::Running { started_ms: T0 }), T0 + 100), NextLook::Wait);
        assert_eq!(look(Some(FillState::Running { started_ms: T0 }), T0 + 30_000), NextLook::Wait, "its call may still be timing out");
        assert_eq!(look(Some(FillState::Running { started_ms: T0 }), T0 + 35_000), NextLook::Rejoin, "too old: another waiter may lead by now");
        assert_eq!(look(Some(FillState::Running { started_ms: T0 }), T0 - 1), NextLook::Rejoin, "clock went back: not waited on");
        assert_eq!(look(Some(FillState::Ended(Some("504 upstream_timeout"))), T0 + 30_000), NextLook::Failed("504 upstream_timeout"));
        assert_eq!(look(Some(FillState::Ended(None)), T0 + 500), NextLook::Lead, "left nothing to share");
        assert_eq!(look(None, T0 + 500), NextLook::Rejoin, "no longer listed: replaced by another waiter's fill, perhaps");
    }

    #[test]
    fn fill_polls_start_short_and_grow_to_a_bound() {
        assert_eq!([0, 20, 40, 400, 1_000, 30_000, -5].map(fill_poll_ms), [5, 5, 10, 100, 250, 250, 5]);
        let (mut waited, mut looks) = (0, 0);
        while waited < 30_000 {
            waited += fill_poll_ms(waited);
            looks += 1;
        }
        assert!((100..200).contains(&looks), "{looks} looks in a 30 s wait");
    }

    #[test]
    fn cache_urls_are_per_account() {
        use crate::ops::{cache_key, Operation};
        let data = serde_json::json!({"limit": 5, "page": 1});
        let key = cache_key(Operation::GetVouchers, &data).expect("catalog calls have a key");
        let url = |oauth_url: &str, client_id: &str| cache_url(&crate::token::storage::account_id(oauth_url, client_id), 21_600, &key);
        let prod = url("https://accounts.xoxoday.com/chef", "client-a");
        assert!(prod.starts_with("https://plumgate.internal/cache/v3/") && prod.ends_with(&format!("/21600s/{}", key.id)), "{prod}");
        let account = crate::token::storage::account_id("https://accounts.xoxoday.com/chef", "client-a");
        assert_ne!(prod, cache_url(&account, 60, &key), "another lifetime: entries stored under the old one are not served");
        assert_ne!(prod, url("https://stagingaccount.xoxoday.com/chef", "client-a"), "another environment");
        assert_ne!(prod, url("https://accounts.xoxoday.com/chef", "client-b"), "another account");
        assert_eq!(prod, url("https://ACCOUNTS.xoxoday.com/chef/", "client-a"), "the same account however the URL is written");
    }

    const T0: i64 = 1_796_032_800_000;

    #[test]
    fn freshness_then_staleness_then_gone() {
        let c = Cached::new(200, b"{}".to_vec(), T0, 10, 30);
        assert_eq!((c.fresh_until_ms, c.stale_until_ms), (T0 + 10_000, T0 + 40_000));
        assert_eq!(c.freshness(T0), Freshness::Fresh);
        assert_eq!(c.freshness(T0 + 9_999), Freshness::Fresh);
        assert_eq!(c.freshness(T0 + 10_000), Freshness::Stale);
        assert_eq!(c.freshness(T0 + 39_999), Freshness::Stale);
        assert_eq!(c.freshness(T0 + 40_000), Freshness::Gone);
        let balance = Cached::new(200, vec![], T0, 10, stale_secs(CacheClass::Balance));
        assert_eq!(balance.freshness(T0 + 10_000), Freshness::Stale, "a balance goes stale for two minutes");
        assert_eq!(balance.freshness(T0 + 129_999), Freshness::Stale);
        assert_eq!(balance.freshness(T0 + 130_000), Freshness::Gone, "then it is gone");
        assert_eq!(stale_secs(CacheClass::Catalog), 86_400);
        assert_eq!(c.weight("k"), 2 + 1 + ENTRY_OVERHEAD);
    }

    #[test]
    fn a_stale_copy_in_memory_gives_way_to_a_later_fill_in_the_cache_api() {
        const T0: i64 = 1_800_000_000_000;
        // Isolate A's copy, filled at T0 (60 s fresh, a day stale); B
        // filled the entry again at T0 + 61 s.
        let held = Cached::new(200, b"old".to_vec(), T0, 60, 86_400);
        let refilled = Cached::new(200, b"new".to_vec(), T0 + 61_000, 60, 86_400);
        let now = T0 + 62_000;
        assert_eq!(held.freshness(now), Freshness::Stale);
        assert!(refilled.replaces(Some(&held), now), "the later fill is taken, not a call to Xoxoday");
        assert!(!held.replaces(Some(&refilled), now), "never an older copy over a newer one");
        assert!(!held.clone().replaces(Some(&held), now), "the same copy: kept as it is");
        assert!(held.replaces(None, now), "nothing in memory: a stale copy is still of use");
        assert!(!held.replaces(None, T0 + 60_000 + 86_400_000), "but not one gone");
    }

    #[test]
    fn an_answer_is_stored_on_success_and_stood_in_for_on_failure() {
        use AfterAnswer::{PassOn, ServeStale, Store};
        // (status, success, a copy at hand, storable) -> what happens.
        for (status, success, stale, storable, then) in [
            (200, true, false, true, Store),
            (200, true, true, true, Store),
            (200, true, false, false, PassOn),
            (200, false, false, true, PassOn),
            (200, false, true, true, PassOn),
            (404, false, true, true, PassOn),
            (502, false, true, true, ServeStale),
            (503, false, true, false, ServeStale),
            (502, false, false, true, PassOn),
            (500, false, false, false, PassOn),
        ] {
            assert_eq!(after_answer(status, success, stale, storable), then, "{status} {success} {stale} {storable}");
        }
    }

    #[test]
    fn stale_copies_answer_only_for_penalties_and_failures() {
        for s in [429, 500, 502, 503, 504] {
            assert!(stale_instead_of(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 409, 422] {
            assert!(!stale_instead_of(s), "{s}");
        }
        // Between the penalty and the failures: definite answers too.
        for s in [428, 430, 451, 499] {
            assert!(!stale_instead_of(s), "{s}: a definite answer, not a failure a copy stands in for");
        }
    }

    #[test]
    fn the_cache_is_bounded_by_bytes_least_recently_used_out_first() {
        let mut lru = ByteLru::new(100, 60);
        assert!(lru.insert("a", 1, 30));
        assert!(lru.insert("b", 2, 30));
        assert!(lru.insert("c", 3, 30));
        assert_eq!((lru.bytes(), lru.len()), (90, 3));
        // Using "a" makes "b" the oldest.
        assert_eq!(lru.get("a"), Some(&1));
        assert!(lru.insert("d", 4, 30));
        assert_eq!(lru.get("b"), None, "least recently used went first");
        assert_eq!(["a", "c", "d"].map(|k| lru.get(k).copied()), [Some(1), Some(3), Some(4)]);
        assert_eq!(lru.bytes(), 90);
        // A heavy entry evicts as many as it takes.
        assert!(lru.insert("e", 5, 60));
        assert_eq!(lru.bytes(), 90);
        assert_eq!(["a", "c", "d", "e"].map(|k| lru.get(k).copied()), [None, None, Some(4), Some(5)]);
        // Too heavy for one entry: not kept, and the old value under its key goes.
        assert!(!lru.insert("d", 6, 61));
        assert_eq!(lru.get("d"), None);
        assert_eq!((lru.bytes(), lru.len()), (60, 1));
        // Replacing an entry counts its new weight only.
        assert!(lru.insert("e", 7, 10));
        assert_eq!(lru.bytes(), 10);
        assert_eq!(lru.get("e"), Some(&7));
        assert_eq!(lru.remove("e"), Some(7));
        assert!(lru.is_empty() && lru.bytes() == 0);
        assert_eq!(lru.remove("e"), None);
    }

    /// An entry bound above the total bound is the total bound: an entry
    /// heavier than the whole cache is not kept, and the count stays within it.
    #[test]
    fn an_entry_bound_above_the_total_is_the_total() {
        let mut lru = ByteLru::new(50, 100);
        assert!(lru.insert("a", 1, 20));
        assert!(!lru.insert("b", 2, 60), "heavier than the whole cache");
        assert_eq!(lru.get("b"), None);
        assert_eq!((lru.get("a").copied(), lru.bytes()), (Some(1), 20), "and nothing was evicted for it");
        assert!(lru.insert("c", 3, 50), "the whole cache: the rest goes");
        assert_eq!((lru.len(), lru.bytes()), (1, 50));
    }

    #[test]
    fn the_bound_holds_whatever_comes_in() {
        let mut lru = ByteLru::new(MAX_TOTAL_BYTES, MAX_ENTRY_BYTES);
        let mut seed = 42u64;
        for i in 0..5_000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let weight = (seed >> 33) as usize % (MAX_ENTRY_BYTES + MAX_ENTRY_BYTES / 4);
            let key = format!("k{}", seed % 300);
            let kept = lru.insert(&key, i, weight);
            assert_eq!(kept, weight <= MAX_ENTRY_BYTES);
            assert!(lru.bytes() <= MAX_TOTAL_BYTES);
            if i % 7 == 0 {
                lru.get(&format!("k{}", i % 300));
            }
        }
        assert!(lru.len() > 1);
        assert_eq!(lru.bytes(), lru.map.values().map(|s| s.weight).sum::<usize>(), "the count agrees with the entries");
    }

    /// README: "bounded by bytes (4 MiB, 1 MiB an answer)", and the Cache
    /// API keeps an answer up to 8 MiB.
    #[test]
    fn the_bounds_are_the_readmes() {
        assert_eq!((MAX_TOTAL_BYTES, MAX_ENTRY_BYTES, MAX_CACHE_API_BYTES), (4 << 20, 1 << 20, 8 << 20));
    }
}
