//! Edge caching of getFilters, getVouchers and getBalance (contract §2), and
//! the per-operation rate-limit penalties (contract §6).
//!
//! Two layers: isolate memory (bounded), then the Workers Cache API for the
//! whole location. The Cache API is a no-op on `*.workers.dev`, so the memory
//! layer is what makes a hit there. Only successful answers
//! (`data.<op>.status == 1`) are stored; keys are the operation plus a
//! SHA-256 of the canonical request data, so the same query shares one entry
//! whatever the key order.

use crate::runtime::clock::now_ms;
use plumgate_core::ops::{order_fingerprint, Operation};
use plumgate_core::time::{add_secs, secs_until};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use worker::{Cache, Headers, Response};

/// Memory layer bounds.
const MAX_ENTRIES: usize = 128;
const MAX_ENTRY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
struct Entry {
    status: u16,
    body: Vec<u8>,
    expires_at_ms: i64,
}

thread_local! {
    static MEMORY: RefCell<HashMap<String, Entry>> = RefCell::new(HashMap::new());
    static PENALTIES: RefCell<HashMap<&'static str, i64>> = RefCell::new(HashMap::new());
    static PENALTY_CHECKED: RefCell<HashMap<&'static str, i64>> = RefCell::new(HashMap::new());
}

/// The cache key of `op` with `data`.
pub fn key(op: Operation, data: &Value) -> String {
    format!("https://plumgate.internal/cache/{}/{}", op.name(), order_fingerprint(data))
}

/// A cached answer, if fresh.
pub async fn get(key: &str) -> Option<(u16, Vec<u8>)> {
    let now = now_ms();
    let hit = MEMORY.with(|m| m.borrow().get(key).filter(|e| e.expires_at_ms > now).cloned());
    if let Some(e) = hit {
        return Some((e.status, e.body));
    }
    let mut resp = Cache::default().get(key, true).await.ok().flatten()?;
    let status = resp.status_code();
    let expires = resp
        .headers()
        .get("x-plumgate-expires")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    if expires <= now {
        return None;
    }
    let body = resp.bytes().await.ok()?;
    remember(key, status, &body, expires);
    Some((status, body))
}

/// Store a successful answer for `ttl_secs`.
pub async fn put(key: &str, status: u16, body: &[u8], ttl_secs: u32) {
    if ttl_secs == 0 {
        return;
    }
    let expires = add_secs(now_ms(), u64::from(ttl_secs));
    remember(key, status, body, expires);
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    let _ = headers.set("cache-control", &format!("max-age={ttl_secs}"));
    let _ = headers.set("x-plumgate-expires", &expires.to_string());
    if let Ok(resp) = Response::from_bytes(body.to_vec()) {
        let _ = Cache::default().put(key, resp.with_status(status).with_headers(headers)).await;
    }
}

fn remember(key: &str, status: u16, body: &[u8], expires_at_ms: i64) {
    if body.len() > MAX_ENTRY_BYTES {
        return;
    }
    MEMORY.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= MAX_ENTRIES && !m.contains_key(key) {
            let now = now_ms();
            m.retain(|_, e| e.expires_at_ms > now);
            if m.len() >= MAX_ENTRIES {
                if let Some(k) = m.keys().next().cloned() {
                    m.remove(&k);
                }
            }
        }
        m.insert(key.to_string(), Entry { status, body: body.to_vec(), expires_at_ms });
    });
}

fn penalty_key(op: Operation) -> String {
    format!("https://plumgate.internal/penalty/{}", op.name())
}

/// Seconds left of a penalty on `op`, if any.
pub async fn penalty_left(op: Operation) -> Option<u64> {
    let now = now_ms();
    let until = PENALTIES.with(|p| p.borrow().get(op.name()).copied());
    let until = match until {
        Some(u) if u > now => u,
        _ => {
            // Negative cache: consult the shared Cache API at most once per
            // second per operation per isolate.
            let checked = PENALTY_CHECKED.with(|p| p.borrow().get(op.name()).copied());
            if checked.is_some_and(|t| now - t < 1000) {
                return None;
            }
            PENALTY_CHECKED.with(|p| p.borrow_mut().insert(op.name(), now));
            let resp = Cache::default().get(penalty_key(op).as_str(), true).await.ok().flatten()?;
            let u = resp.headers().get("x-plumgate-until").ok().flatten()?.parse::<i64>().ok()?;
            if u <= now {
                return None;
            }
            PENALTIES.with(|p| p.borrow_mut().insert(op.name(), u));
            u
        }
    };
    Some(secs_until(until, now).max(1))
}

/// Record a penalty of `secs` on `op`.
pub async fn set_penalty(op: Operation, secs: u64) {
    let until = add_secs(now_ms(), secs);
    PENALTIES.with(|p| p.borrow_mut().insert(op.name(), until));
    let headers = Headers::new();
    let _ = headers.set("cache-control", &format!("max-age={}", secs.max(1)));
    let _ = headers.set("x-plumgate-until", &until.to_string());
    if let Ok(resp) = Response::from_bytes(Vec::new()) {
        let _ = Cache::default().put(penalty_key(op).as_str(), resp.with_headers(headers)).await;
    }
}
