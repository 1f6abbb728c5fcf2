//! The glue between plumgate and the Workers runtime: every place the shell
//! reaches past `worker`'s API into JavaScript directly, kept together
//! because each piece exists for the same reason (CPU or memory measured on
//! the hot path, or a property `worker` does not give) and each depends on
//! the same pinned versions. `glue.js` holds the hand-written JavaScript
//! functions the hot path calls (`head`, `send`, `bytesOf`, `watch`,
//! `respond`), each doing in one call what the generated glue did in
//! several; wasm-bindgen copies it beside the generated glue and the build
//! bundles it. A hot-path request makes 18 calls from the wasm into
//! JavaScript (73 before `glue.js` and [`exec`]; counted by wrapping the
//! module's imports, BENCHMARKS.md).
//!
//! | module | what it does | why it exists |
//! |---|---|---|
//! | [`promise`] | awaits a JS promise through two callbacks made once per isolate, attached in one call to `glue.js`'s `watch` | `wasm_bindgen_futures::JsFuture` makes two `Closure`s per await (allocations and `FinalizationRegistry` entries in heap profiles) |
//! | [`net`] | outbound `fetch` with a timeout and no redirects, body read with `arrayBuffer()`, all in one call to `glue.js`'s `send` | one native timer (`AbortSignal.timeout`), no stream reader loop, one await and one glue call instead of ~25; a redirect would carry the bearer or the refresh grant elsewhere |
//! | [`http`] | the incoming request as plumgate reads it ([`http::Incoming`], the worker's and the Durable Objects': method, URL and the headers plumgate reads in one call to `glue.js`'s `head`; a body copied in by one call to `bytesOf`; handed on to the assets binding with `forward_to`); every response plumgate builds ([`http::Outgoing`]: status, headers, body in wasm memory) and its hand-over in one call to `glue.js`'s `respond` ([`http::into_runtime`]) | `worker::Request` reads `request.cf` on conversion (~0.03 ms CPU); `worker::Response` keeps its headers in a runtime `Headers` object, a glue call per header set or read |
//! | [`cache`] | the location's Cache API: an entry read back (status, headers, whole body by one `arrayBuffer()`) and stored from bytes | `worker::Cache` answers with a `worker::Response`, whose conversion reads `webSocket` and `cf` and wraps the body in a stream adapter that `worker::Response::bytes` reads chunk by chunk through the wasm |
//! | [`exec`] | the task queue of the worker's requests: the first poll inside the `fetch` call, and a task woken by a settled promise polled in that settle callback | `wasm-bindgen-futures` polls a woken task on a microtask of its own: a promise reaction, a call out and a call back in, three times per hot-path request |
//! | [`start`] | once per isolate: the futures queue's scheduling | a resolved-promise reaction costs less than `queueMicrotask` in workerd |
//! | [`clock`] | the clock, randomness, request ids | every module reads time and entropy one way (the core never does) |
//! | [`storage`] | a Durable Object's text values read and written with the runtime's `storage.get` / `put` | `worker`'s `Storage::get`/`put` convert through `serde-wasm-bindgen` (as `KvStore` does) |
//! | [`stub`] | a call to a Durable Object by name | one place for the stub plumbing every object's client shares |
//! | [`kv`] | the access-token cache's KV reads and writes (text, TTL) | `worker`'s `KvStore` goes through `serde-wasm-bindgen` for its options and values |
//! | [`object`] | the Durable Objects' classes exported to the runtime (constructor, `fetch`, `alarm`) | `worker`'s `#[durable_object]` glue writes a failed call's error out with its `Display` and `Debug`, which keeps the formatting of every error type `worker` wraps in the wasm |
//! | [`wait`] | a request waiting for another request's work (the token lookup, the key directory's sync): it sleeps on timers of its own (`worker::Delay`) and looks again | concurrent requests share one round trip; a waiter resumed by the other request would run in that request's context, where workerd refuses I/O on the waiter's own request body |
//! | [`defer`] | work left for after the answer (`waitUntil`) | every caller hands over the same boxed future type, so `wait_until`'s promise glue is in the wasm once |
//!
//! What pins it: `wasm-bindgen` is pinned exactly (`=0.2.130` in
//! `Cargo.toml`, the same version as the `wasm-bindgen-cli` that
//! `scripts/setup.sh` installs and `scripts/lib.sh` names): the CLI and the
//! crate must match, and [`promise`] and [`http`] declare their own
//! `extern "C"` bindings whose glue that version generates (and [`net`]
//! and [`http`] import `glue.js` through it). [`start`]
//! relies on how `wasm-bindgen-futures` (0.4, the version `worker` 0.8
//! brings; 0.4.80 in `Cargo.lock`) picks its scheduler once, when its task
//! queue is created. [`exec`] relies on every waker queueing its task
//! on the queue it came from, so both queues can await through
//! [`promise`]. A version bump of either is a change to re-measure
//! here (`bench/ab.mjs`), not a routine update.
//!
//! Nothing here decides anything: the rules are in `plumgate_core`.

pub mod cache;
pub mod clock;
pub mod defer;
pub mod exec;
pub mod http;
pub mod kv;
pub mod net;
pub mod object;
pub mod promise;
pub mod start;
pub mod storage;
pub mod stub;
pub mod wait;

/// A log line to `console.log`, as `worker::console_log!("{line}")` wrote
/// it, without a `format!` at each call site.
pub fn log(line: &str) {
    worker::web_sys::console::log_1(&line.into());
}

/// A log line to `console.error` (see [`log`]).
pub fn log_error(line: &str) {
    worker::web_sys::console::error_1(&line.into());
}

/// `plumgate_core::logline::event`'s line to `console.log`.
pub fn log_event(fields: &[(&str, plumgate_core::logline::Field<'_>)]) {
    log(&plumgate_core::logline::event(fields));
}

/// `plumgate_core::logline::event`'s line to `console.error`.
pub fn error_event(fields: &[(&str, plumgate_core::logline::Field<'_>)]) {
    log_error(&plumgate_core::logline::event(fields));
}
