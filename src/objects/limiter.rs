//! `RateLimiter`: Xoxoday's per-minute budgets and penalties, shared by
//! every isolate and location of a deployment; one Durable Object per
//! Xoxoday account (`plumgate_core::wire::limiter::object_name`), and its
//! client ([`call`]).
//!
//! Why a Durable Object and how leases keep it off the hot path:
//! `plumgate_core::limits`. What it answers is decided there
//! (`limits::lease`, `limits::penalise`); this file decodes the call
//! (`plumgate_core::wire::limiter`), loads the state once per instance,
//! applies the decision, writes the state only through `commit`, and
//! replies. Requests to one object run one at a time up to their storage
//! write (input gates), so two leases never count the same free call.

use crate::respond::bytes_response;
use crate::runtime::clock::now_ms;
use crate::runtime::storage::Storage;
use crate::runtime::stub;
use crate::runtime::http::{Incoming, Outgoing};
use crate::runtime::object::durable_object;
use crate::settings;
use wasm_bindgen::prelude::wasm_bindgen;
use plumgate_core::config::binding;
use plumgate_core::limits::lease::{load, STATE_KEY};
use plumgate_core::limits::{lease, penalise, LimiterState};
use crate::runtime::error_event;
use plumgate_core::wire::limiter::{object_name, Call, LeaseAnswer};
use std::cell::RefCell;
use worker::{Env, State};

/// Binding name of the limiter namespace.
pub const BINDING: &str = binding::RATE_LIMITER;

/// Send `call` to the limiter of `account` (the worker's side). `None`
/// when the limiter cannot be asked (no binding, unreachable, an answer
/// that is no [`LeaseAnswer`]): the caller goes on without it.
pub async fn call(env: &Env, account: &str, call: &Call) -> Option<LeaseAnswer> {
    let (status, body) = stub::post(env, BINDING, &object_name(account), &call.url(), None, Some(call.body())).await.ok()?;
    if status != 200 {
        return None;
    }
    LeaseAnswer::read(&body)
}

/// The Durable Object.
#[wasm_bindgen]
pub struct RateLimiter {
    state: State,
    env: Env,
    /// The state, once loaded.
    limits: RefCell<Option<LimiterState>>,
}

durable_object!(RateLimiter);

impl RateLimiter {
    fn open(state: State, env: Env) -> Self {
        RateLimiter { state, env, limits: RefCell::new(None) }
    }

    async fn on_fetch(&self, req: Incoming) -> worker::Result<Outgoing> {
        let path = req.path.clone();
        let body = req.bytes().await.unwrap_or_default();
        let Ok(call) = Call::read(&path, &body) else {
            return Ok(bytes_response(400, b"{\"error\":\"not a limiter call\"}".to_vec(), "application/json"));
        };
        let budgets = match settings::load(&self.env) {
            Ok(cfg) => cfg.rate_limits.clone(),
            Err(_) => return Ok(bytes_response(503, b"{\"error\":\"misconfigured\"}".to_vec(), "application/json")),
        };
        if !self.ensure_loaded().await {
            // Not known: answering from a fresh count would lend calls a
            // stored grant or penalty forbids, and the next write would
            // erase them. The isolate goes on without a lease this once.
            return Ok(bytes_response(503, b"{\"error\":\"limiter storage unavailable\"}".to_vec(), "application/json"));
        }
        let now = now_ms();
        // No await between the decision and the write's start: the next
        // request sees this one's grant.
        let answer = {
            let mut slot = self.limits.borrow_mut();
            let s = slot.get_or_insert_with(LimiterState::default);
            match call {
                Call::Lease { op, want } => lease(s, op.name(), budgets.of(op), want, now),
                Call::Penalise { op, observed } => penalise(s, op.name(), observed, now),
            }
        };
        self.commit().await;
        Ok(bytes_response(200, serde_json::to_vec(&answer).unwrap_or_default(), "application/json"))
    }
}

impl RateLimiter {
    /// Read the stored state on the first request. State that cannot be
    /// read is replaced by a fresh count (`limits::lease::load` says why
    /// that is safe), with an error line. A read that fails loads nothing
    /// (`false`): the state may be there, and it is asked for again by the
    /// next request.
    async fn ensure_loaded(&self) -> bool {
        if self.limits.borrow().is_some() {
            return true;
        }
        let Ok(stored) = Storage::of(&self.state).get_text(STATE_KEY).await else {
            error_event(&[("event", "limiter_state_read_failed".into()), ("key", STATE_KEY.into())]);
            return false;
        };
        let (state, readable) = load(stored.as_deref());
        if !readable {
            error_event(&[("event", "limiter_state_unreadable".into()), ("key", STATE_KEY.into())]);
        }
        let mut slot = self.limits.borrow_mut();
        if slot.is_none() {
            *slot = Some(state);
        }
        true
    }

    /// The one write of the state (a failed write is not retried: the
    /// count in memory stays right, and the next write carries it).
    async fn commit(&self) {
        let text = self.limits.borrow().as_ref().and_then(|s| serde_json::to_string(s).ok());
        if let Some(t) = text {
            let _ = Storage::of(&self.state).put_text(STATE_KEY, &t).await;
        }
    }
}
