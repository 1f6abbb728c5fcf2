//! Work left for after the answer: the request's `waitUntil`.
//!
//! `Context::wait_until` is generic over the future it keeps alive, and
//! each future type it is given compiles its own copy of the glue that
//! turns a Rust future into a JS promise. Every caller hands over the one
//! boxed type here instead, so that glue is in the wasm once.

use futures_util::future::LocalBoxFuture;
use worker::Context;

/// Run `work` after the answer, within the request's lifetime extension.
pub fn defer(ctx: &Context, work: LocalBoxFuture<'static, ()>) {
    ctx.wait_until(work);
}
