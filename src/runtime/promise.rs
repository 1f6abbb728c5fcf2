//! Awaiting a JS promise from Rust without making closures per await.
//!
//! `wasm_bindgen_futures::JsFuture` builds two `Closure`s for every promise
//! it awaits; each is a new JS function registered with (and later removed
//! from) a `FinalizationRegistry`, plus a call back into wasm to free it.
//! On the hot path that was three awaits per request, and the closures'
//! allocations and registry entries showed in heap profiles of the worker.
//!
//! [`settled`] instead hands the promise, through `glue.js`'s `watch` (one
//! call), two callbacks made once per isolate and the number of a slot in a
//! small table; the callback stores the outcome in that slot and wakes the
//! task polling it. Behaviour is `JsFuture`'s: the
//! future yields `Ok(value)` or `Err(reason)`, and dropping it before the
//! promise settles is safe (the slot is freed when the promise settles).

use js_sys::Promise;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(module = "/src/runtime/glue.js")]
extern "C" {
    /// One of the two settle callbacks.
    type Callback;
    /// `promise.then(v => ok(slot, v), e => err(slot, e))`, in one call.
    fn watch(promise: &Promise, slot: u32, ok: &Callback, err: &Callback);
}

#[derive(Default)]
struct Slot {
    /// The promise's outcome, once settled and not yet taken.
    outcome: Option<Result<JsValue, JsValue>>,
    /// The task to wake when it settles.
    waker: Option<Waker>,
    /// The future was dropped first: free the slot when the promise settles.
    abandoned: bool,
}

#[derive(Default)]
struct Slots {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl Slots {
    fn take(&mut self) -> u32 {
        match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, i: u32) {
        self.slots[i as usize] = Slot::default();
        self.free.push(i);
    }
}

thread_local! {
    static SLOTS: RefCell<Slots> = RefCell::new(Slots::default());
    /// The two callbacks, made once and kept for the isolate's life.
    static CALLBACKS: (Callback, Callback) = (callback(true), callback(false));
}

fn callback(fulfilled: bool) -> Callback {
    let f = Closure::<dyn FnMut(u32, JsValue)>::new(move |slot: u32, value: JsValue| {
        settle(slot, if fulfilled { Ok(value) } else { Err(value) })
    });
    f.into_js_value().unchecked_into()
}

fn settle(slot: u32, outcome: Result<JsValue, JsValue>) {
    let waker = SLOTS.with(|s| {
        let mut s = s.borrow_mut();
        let entry = s.slots.get_mut(slot as usize)?;
        if entry.abandoned {
            s.release(slot);
            return None;
        }
        entry.outcome = Some(outcome);
        entry.waker.take()
    });
    if let Some(w) = waker {
        // A request's task is polled here and now (`exec`): this callback
        // is a call into the wasm already.
        super::exec::wake_and_run(w);
    }
}

/// The outcome of a promise, as a future.
#[must_use = "the outcome is only delivered when awaited"]
pub struct Settled {
    /// `None` once the outcome has been handed out.
    slot: Option<u32>,
}

/// Await `promise`: `Ok(value)` when it fulfils, `Err(reason)` when it rejects.
pub fn settled(promise: &Promise) -> Settled {
    let slot = SLOTS.with(|s| s.borrow_mut().take());
    CALLBACKS.with(|(ok, err)| watch(promise, slot, ok, err));
    Settled { slot: Some(slot) }
}

impl Future for Settled {
    type Output = Result<JsValue, JsValue>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(slot) = self.slot else {
            // Polled again after completion: there is nothing left to give.
            return Poll::Pending;
        };
        let ready = SLOTS.with(|s| {
            let mut s = s.borrow_mut();
            let entry = &mut s.slots[slot as usize];
            match entry.outcome.take() {
                Some(outcome) => {
                    s.release(slot);
                    Some(outcome)
                }
                None => {
                    entry.waker = Some(cx.waker().clone());
                    None
                }
            }
        });
        match ready {
            Some(outcome) => {
                self.slot = None;
                Poll::Ready(outcome)
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for Settled {
    fn drop(&mut self) {
        let Some(slot) = self.slot else { return };
        SLOTS.with(|s| {
            let mut s = s.borrow_mut();
            if s.slots[slot as usize].outcome.is_some() {
                // Settled but never collected.
                s.release(slot);
            } else {
                let entry = &mut s.slots[slot as usize];
                entry.waker = None;
                entry.abandoned = true;
            }
        });
    }
}

/// A rejected promise's reason as a message, for the log only: an
/// `Error`'s message, a thrown string as is.
pub fn message_of(e: &JsValue) -> String {
    match e.dyn_ref::<js_sys::Error>() {
        Some(err) => String::from(err.message()),
        None => e.as_string().unwrap_or_else(|| "the call failed without a message".into()),
    }
}
