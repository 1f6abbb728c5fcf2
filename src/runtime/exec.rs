//! The task queue that runs the worker's requests (the `fetch` export).
//!
//! `wasm-bindgen-futures` runs a future by waking it on a microtask: every
//! time a promise the request awaits settles, the settle callback wakes the
//! task, the queue schedules a promise reaction (a call out of the wasm),
//! and the task is polled in a second call into the wasm on that reaction.
//! That is three extra hops per hot-path request (the start, the body, the
//! upstream answer), each a promise, a microtask and two crossings.
//!
//! Here the first poll runs inside the `fetch` call itself, and a promise
//! settled through [`super::promise`] polls the tasks it woke at once, in
//! the settle callback it is already in ([`wake_and_run`]). A task woken
//! from anywhere else (a `JsFuture` inside `worker`, a shared future) is
//! run on a microtask, as `wasm-bindgen-futures` would. The Durable
//! Objects, the cron and `waitUntil` work still run on
//! `wasm-bindgen-futures`' queue; both queues coexist (a waker belongs to
//! its task's queue).
//!
//! Order and fairness are the usual ones: tasks run in the order woken,
//! and a run polls only the tasks queued when it began (a task that keeps
//! waking itself yields to the event loop between polls).

use js_sys::Promise;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, RawWaker, RawWakerVTable, Waker};
use wasm_bindgen::prelude::*;

struct Task {
    /// `None` once the future has finished.
    future: RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>>,
    /// In the queue already: a second wake adds nothing.
    queued: Cell<bool>,
}

thread_local! {
    static QUEUE: RefCell<VecDeque<Rc<Task>>> = const { RefCell::new(VecDeque::new()) };
    /// Inside [`run`] (or about to run): a wake only queues.
    static RUNNING: Cell<bool> = const { Cell::new(false) };
    /// A microtask that will call [`run`] is pending.
    static SCHEDULED: Cell<bool> = const { Cell::new(false) };
    /// A resolved promise and the closure that runs the queue on it, made
    /// once per isolate.
    static KICK: (Promise, Closure<dyn FnMut(JsValue)>) = (
        Promise::resolve(&JsValue::UNDEFINED),
        Closure::new(|_: JsValue| {
            SCHEDULED.set(false);
            run();
        }),
    );
}

/// Run `future` as a task; the promise settles with its output. Its first
/// poll happens before this returns.
pub fn spawn_promise(future: impl Future<Output = Result<JsValue, JsValue>> + 'static) -> Promise {
    let mut settle = None;
    // `new Promise` runs this at once, so `settle` is always set.
    let promise = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
    let Some((resolve, reject)) = settle else { return promise };
    spawn(async move {
        let _ = match future.await {
            Ok(value) => resolve.call1(&JsValue::UNDEFINED, &value),
            Err(reason) => reject.call1(&JsValue::UNDEFINED, &reason),
        };
    });
    promise
}

fn spawn(future: impl Future<Output = ()> + 'static) {
    let task = Rc::new(Task { future: RefCell::new(Some(Box::pin(future))), queued: Cell::new(true) });
    QUEUE.with(|q| q.borrow_mut().push_back(task));
    run();
}

/// Wake `waker` and, when it is one of this queue's tasks and no run is
/// under way, poll it now: for a settle callback, which is a call into the
/// wasm of its own already.
pub fn wake_and_run(waker: Waker) {
    // Held while waking, so the wake queues the task without scheduling a
    // microtask for it.
    let already = RUNNING.replace(true);
    waker.wake();
    if !already {
        RUNNING.set(false);
        run();
    }
}

/// Poll the tasks queued when this began, in order.
fn run() {
    if RUNNING.replace(true) {
        return;
    }
    let mut left = QUEUE.with(|q| q.borrow().len());
    while left > 0 {
        left -= 1;
        let Some(task) = QUEUE.with(|q| q.borrow_mut().pop_front()) else { break };
        task.queued.set(false);
        let waker = waker(Rc::clone(&task));
        let mut slot = task.future.borrow_mut();
        if let Some(future) = slot.as_mut() {
            if future.as_mut().poll(&mut Context::from_waker(&waker)).is_ready() {
                *slot = None;
            }
        }
    }
    RUNNING.set(false);
    if QUEUE.with(|q| !q.borrow().is_empty()) {
        schedule();
    }
}

/// Have a microtask call [`run`], once.
fn schedule() {
    if !SCHEDULED.replace(true) {
        KICK.with(|(promise, closure)| {
            let _ = promise.then(closure);
        });
    }
}

fn wake(task: Rc<Task>) {
    if task.queued.replace(true) {
        return;
    }
    QUEUE.with(|q| q.borrow_mut().push_back(task));
    if !RUNNING.get() {
        schedule();
    }
}

// A `Waker` over an `Rc<Task>`, as `wasm-bindgen-futures` makes one: the
// wasm is single-threaded (no `atomics`), so the `Send`/`Sync` a `Waker`
// promises is never exercised.
fn waker(task: Rc<Task>) -> Waker {
    // SAFETY: the vtable's functions treat the pointer as the `Rc<Task>`
    // it came from, balancing every `into_raw` with one `from_raw`.
    unsafe { Waker::from_raw(raw(task)) }
}

fn raw(task: Rc<Task>) -> RawWaker {
    RawWaker::new(Rc::into_raw(task) as *const (), &VTABLE)
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(raw_clone, raw_wake, raw_wake_by_ref, raw_drop);

unsafe fn raw_clone(ptr: *const ()) -> RawWaker {
    let task = ManuallyDrop::new(Rc::from_raw(ptr as *const Task));
    raw(Rc::clone(&task))
}

unsafe fn raw_wake(ptr: *const ()) {
    wake(Rc::from_raw(ptr as *const Task));
}

unsafe fn raw_wake_by_ref(ptr: *const ()) {
    let task = ManuallyDrop::new(Rc::from_raw(ptr as *const Task));
    wake(Rc::clone(&task));
}

unsafe fn raw_drop(ptr: *const ()) {
    drop(Rc::from_raw(ptr as *const Task));
}
