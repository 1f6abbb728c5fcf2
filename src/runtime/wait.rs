//! A request waiting, in its own request, for work another request of the
//! same isolate is doing (the token lookup in `tokens`, the directory sync
//! in `callers`), so that concurrent requests share one round trip instead
//! of each making its own; and a bound on how long a request waits for a
//! call ([`within`]).
//!
//! The waiter is never resumed by the other request. A task resumed from a
//! promise the other request settles runs in that request's context, and
//! workerd then refuses the waiter's I/O on its own objects ("Cannot
//! perform I/O on behalf of a different request" on reading its request
//! body: a 500 to the waiter, measured with 32 callers of a new key) and
//! ties any I/O it starts to the other request's lifetime. So the waiter
//! sleeps on a timer of its own ([`pause`], [`POLL_MS`] at a time), which
//! fires in its own request, and looks again at what the work left in
//! memory; whether to wait at all, and for how long, is the core's
//! decision.

use std::time::Duration;
use worker::Delay;

/// How long a waiter sleeps before it looks again.
pub const POLL_MS: i64 = 5;

/// Sleep `ms` on a timer made in this request (`worker::Delay`: its
/// `setTimeout` is set when this request first polls it, so it fires here).
pub async fn pause(ms: i64) {
    Delay::from(Duration::from_millis(ms.max(0) as u64)).await;
}

/// `work`'s output, or `None` when it takes longer than `ms` (it is then
/// dropped, and whatever it was waiting for is no longer awaited).
pub async fn within<T>(ms: i64, work: impl std::future::Future<Output = T>) -> Option<T> {
    use futures_util::future::{select, Either};
    match select(Box::pin(work), Box::pin(pause(ms))).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(_) => None,
    }
}
