//! plumgate: the Workers shell.
//!
//! This crate is the thin layer between the Cloudflare Workers runtime and
//! `plumgate-core`. It owns only I/O: reading the environment, the clock and
//! randomness; `fetch` to Xoxoday; KV, Durable Object and cache calls; and
//! turning core decisions into HTTP responses. Every rule (who may call what,
//! when to refresh, what a valid request is, what a log line holds) lives in
//! the core, where it is tested on the host.
//!
//! Modules:
//! - [`settings`]: configuration from the Worker environment, parsed once per isolate.
//! - [`routes`]: the router and the per-request pipeline (request id, logging, errors).
//! - [`gateway`]: forwarding Plum operations to Xoxoday.
//! - [`orders`]: the `OrderLedger` Durable Object (placeOrder idempotency and reconciliation).
//! - [`edge_cache`]: response caching and rate-limit penalties.
//! - [`tokens`]: the access-token cache in front of the authority (isolate memory, then KV).
//! - [`authority`]: the `TokenAuthority` Durable Object, the only refresher.
//! - [`net`]: outbound `fetch` with a timeout and no redirects.
//! - [`promise`]: awaiting JS promises without per-await closures.
//! - [`util`]: clock, randomness, response helpers.

pub mod authority;
pub mod edge_cache;
pub mod gateway;
pub mod net;
pub mod orders;
pub mod promise;
pub mod routes;
pub mod settings;
pub mod tokens;
pub mod util;

use wasm_bindgen::prelude::wasm_bindgen;
use worker::{event, web_sys, Context, Env, Result, ScheduleContext, ScheduledEvent};

/// Runs once, when the runtime instantiates the module.
#[wasm_bindgen(start)]
pub fn start() {
    util::schedule_futures_with_promises();
    util::intern_constants();
}

/// Every HTTP request. Takes the runtime's request as is (see
/// [`routes::Incoming`] for why not `worker::Request`).
#[event(fetch)]
pub async fn fetch(req: web_sys::Request, env: Env, _ctx: Context) -> Result<web_sys::Response> {
    Ok(util::into_runtime(routes::handle(routes::Incoming::new(req), env).await))
}

/// Cron keep-alive: asks the authority to refresh when the pair is in its
/// early window, so the 30-day refresh token never lapses for lack of traffic.
#[event(scheduled)]
pub async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    match settings::load(&env) {
        Ok(cfg) => tokens::cron_tick(&env, &cfg, &event.cron()).await,
        Err(problems) => worker::console_error!("{}", serde_json::json!({"event": "cron_failed", "error": "misconfigured", "problems": &problems[..]})),
    }
}
