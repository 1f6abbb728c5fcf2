//! plumgate: the Workers shell.
//!
//! This crate is the thin layer between the Cloudflare Workers runtime and
//! `plumgate-core`. It owns only I/O: reading the environment, the clock and
//! randomness; `fetch` to Xoxoday; KV, Durable Object and cache calls; and
//! turning core decisions into HTTP responses. Every rule (who may call what,
//! when to refresh, what a valid request is, what a log line holds, what a
//! Durable Object answers) lives in the core, where it is tested on the host.
//!
//! Modules, from the entry point down (each imports only modules below it,
//! so there are no import circles; `scripts/check-layers.mjs` checks it):
//! - [`routes`]: the router and the per-request pipeline (request id, the
//!   one log line, errors).
//! - [`keys`]: the admin routes of runtime keys and the audit trail.
//! - [`callers`]: who is calling (`GATEWAY_KEYS`, then the isolate's copy
//!   of the runtime key directory) and their `requests_per_minute`.
//! - [`gateway`]: the forwarding policy of an operation call (ledger,
//!   edge cache, limiter, the call, stale copies).
//! - [`orders`]: the spend cap and the audit trail around the ledger.
//! - [`objects`]: the Durable Objects, each a thin shell over core
//!   decisions plus its client: [`objects::ledger`] (`OrderLedger`),
//!   [`objects::limiter`] (`RateLimiter`), [`objects::registry`]
//!   (`KeyRegistry`) and [`objects::authority`] (`TokenAuthority`).
//! - [`limits`]: the isolate's side of the shared rate limiter (leases
//!   spent from memory, penalties reported).
//! - [`plum`]: the Plum API client (the call with the current token, the one
//!   retry after a confirmed rejection).
//! - [`tokens`]: the access-token cache in front of the authority (isolate
//!   memory, then KV).
//! - [`edge_cache`]: response caching (a byte-bounded LRU, then the Cache
//!   API), fresh and stale.
//! - [`respond`]: every response plumgate builds itself.
//! - [`settings`]: configuration from the Worker environment, parsed once
//!   per isolate.
//! - [`runtime`]: the glue to the Workers runtime (promises, `fetch`, the
//!   request and response adapters, start-up, the clock, Durable Object
//!   stubs), with why each piece exists and what pins it.

pub mod callers;
pub mod edge_cache;
pub mod gateway;
pub mod limits;
pub mod keys;
pub mod objects;
pub mod orders;
pub mod plum;
pub mod respond;
pub mod routes;
pub mod runtime;
pub mod settings;
pub mod tokens;

/// The wasm heap's allocator: talc instead of Rust's default dlmalloc.
/// Allocation was a fifth of the hot path's wasm time in profiles (malloc,
/// free and their callers); with talc the module is 1.3 KB gzip smaller and
/// paired A/B runs of the hot path measured 0.984× and 0.980× the CPU per
/// request (BENCHMARKS.md, 2026-11-30). Single-threaded, as every isolate is.
#[cfg(all(not(target_feature = "atomics"), target_family = "wasm"))]
#[global_allocator]
static TALC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

use plumgate_core::jsontext::to_text;
use runtime::http::{into_runtime, Incoming};
use wasm_bindgen::prelude::{wasm_bindgen, JsValue};
use worker::{web_sys, worker_sys, Context, Env, ScheduledEvent};

/// Runs once, when the runtime instantiates the module.
#[wasm_bindgen(start)]
pub fn start() {
    runtime::start::schedule_futures_with_promises();
}

/// Every HTTP request. Takes the runtime's request as is (see
/// [`runtime::http::Incoming`] for why not `worker::Request`). Exported by
/// hand, not with workers-rs's `#[event(fetch)]`, for the reason
/// `runtime::object` gives.
///
/// Runs on [`runtime::exec`]'s queue rather than as an `async fn` export
/// on `wasm-bindgen-futures`' (that module says why).
#[wasm_bindgen]
pub fn fetch(req: web_sys::Request, env: Env, ctx: worker_sys::Context) -> js_sys::Promise {
    runtime::exec::spawn_promise(async move {
        let response = routes::handle(Incoming::new(req), env, Context::new(ctx)).await;
        Ok(into_runtime(response).into())
    })
}

/// Cron keep-alive: asks the authority to refresh when the pair is in its
/// early window, so the 30-day refresh token never lapses for lack of traffic.
#[wasm_bindgen]
pub async fn scheduled(event: worker_sys::ScheduledEvent, env: Env, _ctx: worker_sys::ScheduleContext) -> Result<JsValue, JsValue> {
    let event = ScheduledEvent::from(event);
    match settings::load(&env) {
        Ok(cfg) => tokens::cron_tick(&env, &cfg, &event.cron()).await,
        Err(problems) => {
            // A map, not `json!`: see `routes::health`.
            let mut line = serde_json::Map::new();
            line.insert("event".into(), "cron_failed".into());
            line.insert("error".into(), "misconfigured".into());
            line.insert("problems".into(), problems.to_vec().into());
            runtime::log_error(&to_text(&serde_json::Value::Object(line)));
        }
    }
    Ok(JsValue::UNDEFINED)
}
