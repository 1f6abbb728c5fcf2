//! A request waiting, in its own request, for work another request of the
//! same isolate is doing (the token lookup in `tokens`, the directory sync
//! in `callers`), so that concurrent requests share one round trip instead
//! of each making its own.
//!
//! Each waiter gets a promise made in its own request ([`Waiters::wait`]);
//! the request doing the work resolves every one when it is over
//! ([`Waiters::wake`], however it ended), and a timer resolves each after
//! the longest wait the caller allows, in case that request is cancelled
//! and never gets there. A woken waiter looks again at what the work left
//! in memory; whether to wait at all, and for how long, is the core's
//! decision.

use worker::js_sys::{self, Function, Promise, Reflect};
use worker::wasm_bindgen::{JsCast, JsValue};

/// The resolve functions of the requests waiting for one piece of work.
#[derive(Default)]
pub struct Waiters(Vec<Function>);

impl Waiters {
    /// A promise, made in this request, that settles when [`Waiters::wake`]
    /// is called or after `max_ms`, whichever is first. `None` if the
    /// runtime gave no timer (the caller then does not wait).
    pub fn wait(&mut self, max_ms: i64) -> Option<Promise> {
        let mut resolver = None;
        let waiting = Promise::new(&mut |resolve, _reject| resolver = Some(resolve));
        let resolve = resolver?;
        let global = js_sys::global();
        let set_timeout: Function = Reflect::get(&global, &JsValue::from_str("setTimeout")).ok()?.dyn_into().ok()?;
        set_timeout.call2(&global, &resolve, &JsValue::from_f64(max_ms.max(0) as f64)).ok()?;
        self.0.push(resolve);
        Some(waiting)
    }

    /// Wake everyone waiting (a promise already settled by its timer
    /// ignores it).
    pub fn wake(self) {
        for resolve in self.0 {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    }
}
