//! plumgate's pure core.
//!
//! Everything here is plain Rust with no `worker` imports and no I/O: the
//! Workers shell (the root crate) reads the clock, the environment and the
//! network, and hands the results to these functions. That keeps the rules
//! that matter (who may call what, when to refresh a token, what a valid
//! request looks like, what leaves the gateway) testable with `cargo test` on
//! the host, with time passed in.
//!
//! Modules, by what they own:
//! - [`config`]: every variable, parsed once and validated.
//! - [`auth`]: gateway keys and scopes; [`secret`]: redacting credential
//!   types, fingerprints, hex; [`cors`]: `ALLOWED_ORIGINS`.
//! - [`route`]: the path the router matches on; [`ops`]: the seven
//!   operations (validation, envelopes, fingerprints, the OpenAPI document);
//!   [`dropin`]: Xoxoday's token endpoints on the drop-in base.
//! - [`errors`]: plumgate's own errors, their codes and wire forms;
//!   [`logline`]: the one log line per request and its [`logline::Trace`].
//! - [`http`]: an outgoing request built without I/O, and what came back;
//!   [`upstream`]: the Plum API call and reading its answers (401s,
//!   penalties, success); [`lenient`]: Xoxoday's numbers in every form;
//!   [`time`]: expiry maths and RFC 3339.
//! - [`wire`]: the typed protocols of the Durable Objects; the decisions
//!   their shells run live in [`token`] (`TokenAuthority`: the token
//!   lifecycle), [`alert`] (the alerts the `TokenAuthority` raises and
//!   delivers), [`ledger`] (`OrderLedger`: placeOrder safety),
//!   [`limits`] (`RateLimiter`: Xoxoday's budgets and penalties) and
//!   [`registry`] (`KeyRegistry`: runtime keys, usage, spend holds, the
//!   audit trail).
//! - [`keys`]: runtime caller keys (records, admin requests, the
//!   directory every isolate keeps); [`quota`]: per-key limits
//!   (`requests_per_minute`, the spend cap's reservations); [`audit`]: the
//!   audit trail's entries and pages.
//! - [`edge`]: the edge cache's rules (its byte-bounded LRU, freshness and
//!   stale copies).
//! - `stored`: reading a stored JSON object, or a Durable Object wire
//!   message, field by field (the token state, the order record, the key
//!   record, the limiter's state, the messages in [`wire`]), smaller in
//!   the wasm than serde's derive.
//! - [`text`]: the one substring search (`find`, `contains`, `split_once`);
//!   [`jsontext`]: small JSON objects written straight into text.
#![deny(unsafe_code)]
#![warn(missing_docs)]
// Tests read JSON any way they like; `clippy.toml`'s one-reader rule is
// about what goes into the wasm.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod alert;
pub mod audit;
pub mod auth;
pub mod config;
pub mod cors;
pub mod dropin;
pub mod edge;
pub mod errors;
pub mod http;
pub mod jsontext;
pub mod keys;
pub mod ledger;
pub mod lenient;
pub mod limits;
pub mod logline;
pub mod ops;
pub mod quota;
pub mod registry;
pub mod route;
pub mod secret;
mod stored;
pub mod text;
pub mod time;
pub mod token;
pub mod upstream;
pub mod wire;
