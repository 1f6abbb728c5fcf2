//! A request waiting, in its own request, for work another request of the
//! same isolate is doing (the token lookup in `tokens`, the directory sync
//! in `callers`), so that concurrent requests share one round trip instead
//! of each making its own.
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

use crate::runtime::promise;
use worker::js_sys::{self, Function, Promise, Reflect};
use worker::wasm_bindgen::{JsCast, JsValue};

/// How long a waiter sleeps before it looks again.
pub const POLL_MS: i64 = 5;

/// Sleep `ms` on a timer made in this request (returns at once if the
/// runtime gives no timer).
pub async fn pause(ms: i64) {
    let mut resolver = None;
    let timer = Promise::new(&mut |resolve, _reject| resolver = Some(resolve));
    let Some(resolve) = resolver else { return };
    let global = js_sys::global();
    let Some(set_timeout) = Reflect::get(&global, &JsValue::from_str("setTimeout")).ok().and_then(|f| f.dyn_into::<Function>().ok()) else {
        return;
    };
    if set_timeout.call2(&global, &resolve, &JsValue::from_f64(ms.max(0) as f64)).is_ok() {
        drop(promise::settled(&timer).await);
    }
}
