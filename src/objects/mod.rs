//! The Durable Objects: thin shells around decisions made in the core.
//!
//! Every object here follows one pattern, so a new one (a shared limiter, a
//! key store) is written the same way:
//!
//! 1. **Typed wire** in `plumgate_core::wire::<object>`: the request (an
//!    operation enum; an unknown operation is an error) and the reply as
//!    JSON, written and read by hand (`plumgate_core::stored`, or the
//!    registry's own `to_json`/`from_json`: each type serde decodes costs
//!    the wasm a decoder of its own), with host tests that pin the exact
//!    JSON.
//! 2. **Pure decisions** in the core module of its domain, in the style of
//!    `token::plan`: given the stored state, the request and what I/O
//!    returned, say what to store and what to answer. Host tests cover
//!    every arm (`plumgate_core::token::serve` and friends for the
//!    authority, `plumgate_core::ledger` for the ledger).
//! 3. **A thin shell** here: decode the request, load the state, call the
//!    decisions in order, do the I/O they ask for (storage, `fetch`
//!    through [`crate::plum`] or `runtime::net`, KV, alarms), reply. Single
//!    flight (a shared future per piece of work, joined by every request
//!    that needs it) lives here too: it is how the I/O is scheduled, not a
//!    rule.
//! 4. **One `commit` helper** per object: the only code that writes its
//!    state, taking the change the decisions asked for: memory first, so
//!    every later decision sees it, then storage (retried where a lost
//!    write loses something: the authority's token pair, the ledger's
//!    records; the limiter's counts are not, and the registry's SQL is
//!    synchronous).
//! 5. **The client** (`call`, `send`, …) in the same file: what the
//!    worker's side sends and how it reads the reply, over
//!    [`crate::runtime::stub`]; or, when another object needs it too, in
//!    a file of its own beside it (the ledger's, [`ledger::client`], which
//!    the registry uses: the registry sits below the ledger, its client
//!    below both).
//! 6. **The export**: `#[wasm_bindgen]` on the struct, the object's
//!    `open`, `on_fetch` and (if it sets alarms) `on_alarm`, and
//!    `durable_object!(Type)` or `durable_object!(Type, alarm)`
//!    ([`crate::runtime::object`] says why not workers-rs's
//!    `#[durable_object]`). Only the entry points an object uses are
//!    exported: a bare `#[durable_object]` also generated WebSocket and
//!    `connect` handlers, 27 KB of the wasm for the four objects.
//!
//! Objects: [`authority`] (`TokenAuthority`, bound as `TOKEN_AUTHORITY`: the
//! Xoxoday token pair), [`ledger`] (`OrderLedger`, bound as `ORDER_LEDGER`:
//! placeOrder idempotency and reconciliation), [`limiter`] (`RateLimiter`,
//! bound as `RATE_LIMITER`: Xoxoday's per-minute budgets and penalties,
//! shared by every isolate), [`registry`] (`KeyRegistry`, bound as
//! `KEY_REGISTRY`: runtime keys, per-key usage and spend, the audit trail).
//! Storage keys and value shapes: `docs/storage.md`.

pub mod authority;
pub mod ledger;
pub mod limiter;
pub mod registry;
