//! The typed protocols between the worker and its Durable Objects.
//!
//! One submodule per Durable Object class, each owning everything that
//! crosses its stub: the request (an operation enum with what each
//! operation needs: an unknown operation is an error, never some default),
//! the reply, and how both are written. Both ends use these types, so the
//! worker and the object cannot disagree about a field, and the host tests
//! beside each type pin its exact JSON: a change to a wire format is a
//! visible change to a test.
//!
//! - [`authority`]: `TokenAuthority` (the access token, token checks, the
//!   admin's token routes, the previous version's hand-over).
//! - [`ledger`]: `OrderLedger` (placeOrder idempotency and reconciliation).
//! - [`limiter`]: `RateLimiter` (Xoxoday's per-minute budgets and
//!   penalties, shared by every isolate).
//! - [`registry`]: `KeyRegistry` (runtime caller keys, per-key usage and
//!   spend holds, the audit trail).
//!
//! Rules for every protocol here (a deploy runs workers of one version
//! against objects of the other for a while, in both directions):
//! - a field added later is optional (`#[serde(default)]`); fields a reader
//!   does not know are ignored, so an older reader keeps working;
//! - a name (operation, field, error code) is never reused for something
//!   else; a code a reader does not know reads as `internal_error`;
//! - when a format must change incompatibly, the request names the new
//!   version (a new path), and the object answers a request in the previous
//!   form with an error the previous worker relays sensibly (see
//!   [`ledger`]).
//!
//! Adding a Durable Object: its wire here (types + pinned JSON), its
//! decisions as pure functions in the module of its domain, and a thin shell
//! in the worker's `src/objects/` (decode, load, decide, one `commit`,
//! reply); see `src/objects/mod.rs`.

pub mod authority;
pub mod ledger;
pub mod limiter;
pub mod registry;
