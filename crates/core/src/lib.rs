//! plumgate's pure core.
//!
//! Everything here is plain Rust with no `worker` imports and no I/O: the
//! Workers shell (the root crate) reads the clock, the environment and the
//! network, and hands the results to these functions. That keeps the rules
//! that matter (who may call what, when to refresh a token, what a valid
//! request looks like, what leaves the gateway) testable with `cargo test` on
//! the host, with time passed in.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod ops;
pub mod auth;
pub mod config;
pub mod secret;
pub mod time;
pub mod token;
pub mod errors;
pub mod logline;
pub mod upstream;
pub mod cors;
pub mod route;
pub mod dropin;
mod jsontext;
