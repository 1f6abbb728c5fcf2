//! Small runtime helpers: the clock, randomness, request ids, JSON
//! responses and their hand-over to the runtime ([`into_runtime`]), the
//! strings interned once per isolate, and how async Rust is scheduled on
//! the runtime. Kept here so every module reads time and randomness one way
//! and every response leaves the same way.

use serde_json::Value;
use std::cell::RefCell;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::{web_sys, Response, ResponseBody};

#[wasm_bindgen]
extern "C" {
    /// The runtime's `Response`, constructed from bytes in wasm memory.
    #[wasm_bindgen(js_name = Response, extends = web_sys::Response)]
    type BytesResponse;
    /// `new Response(view, init)`: the view of wasm memory is made inside
    /// this one glue call and the constructor copies it, so no allocation
    /// can move the memory under it.
    #[wasm_bindgen(constructor, js_class = "Response", catch)]
    fn from_bytes(body: &[u8], init: &web_sys::ResponseInit) -> Result<BytesResponse, JsValue>;
}

/// Have `wasm-bindgen-futures` wake its task queue with resolved-promise
/// reactions rather than `queueMicrotask`. It picks `queueMicrotask` once,
/// when its queue is created, if that global exists; in workerd that call
/// costs more than a promise reaction (same-run A/B: 0.679 -> 0.650 ms CPU
/// per hot-path request). So: hide the global, create the queue (an empty task),
/// put the global back. Both paths are wasm-bindgen-futures' own; nothing
/// else sees the global missing. Called once, when the module starts.
pub fn schedule_futures_with_promises() {
    let global = js_sys::global();
    let name = JsValue::from_str("queueMicrotask");
    let Ok(original) = js_sys::Reflect::get(&global, &name) else { return };
    if !original.is_function() || js_sys::Reflect::set(&global, &name, &JsValue::UNDEFINED) != Ok(true) {
        return;
    }
    wasm_bindgen_futures::spawn_local(async {});
    let _ = js_sys::Reflect::set(&global, &name, &original);
}

/// Strings that cross into JS on every request (header names and fixed
/// values, the upstream method). Interned once, each is passed as a cached
/// JS string instead of being copied out of wasm memory and decoded per
/// use (a view of wasm memory and a new string each time in heap profiles).
/// Only constants: nothing a caller or Xoxoday sends is interned.
const HOT_STRINGS: &[&str] = &[
    "origin",
    "authorization",
    "cache-control",
    "content-length",
    "content-type",
    "accept",
    "retry-after",
    "x-request-id",
    "x-plumgate-cache",
    "vary",
    "Origin",
    "no-store",
    "application/json",
    "application/json; charset=utf-8",
    "POST",
];

/// Intern [`HOT_STRINGS`]. Called once, when the module starts.
pub fn intern_constants() {
    for s in HOT_STRINGS {
        wasm_bindgen::intern(s);
    }
}

/// Wall-clock time in epoch milliseconds (`Date.now()`).
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// A random number in [0, 1).
pub fn rand01() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return js_sys::Math::random();
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// Random bytes for request ids, drawn from the runtime 32 ids at a time:
/// one `crypto.getRandomValues` call per request showed as 0.002–0.009 ms
/// of CPU in `/healthz` profiles; one per 32 requests is gone from them.
const ID_BYTES: usize = 16;
const POOL_BYTES: usize = 32 * ID_BYTES;

thread_local! {
    /// The pool and how much of it is spent (all of it at first).
    static ID_POOL: RefCell<([u8; POOL_BYTES], usize)> = const { RefCell::new(([0; POOL_BYTES], POOL_BYTES)) };
}

/// 16 random bytes as 32 hex characters.
pub fn request_id() -> String {
    let b: [u8; ID_BYTES] = ID_POOL.with(|p| {
        let (pool, used) = &mut *p.borrow_mut();
        if *used + ID_BYTES > POOL_BYTES {
            if getrandom::fill(pool).is_err() {
                for x in pool.iter_mut() {
                    *x = (js_sys::Math::random() * 256.0) as u8;
                }
            }
            *used = 0;
        }
        let mut out = [0u8; ID_BYTES];
        out.copy_from_slice(&pool[*used..*used + ID_BYTES]);
        *used += ID_BYTES;
        out
    });
    const HEX: &[u8; 16] = b"0123456789abcdef";
    b.iter().flat_map(|x| [HEX[(x >> 4) as usize] as char, HEX[(x & 15) as usize] as char]).collect()
}

/// A JSON response with the given status.
pub fn json_response(status: u16, body: &Value) -> Response {
    bytes_response(status, body.to_string().into_bytes(), "application/json; charset=utf-8")
}

/// A response with a body and content type. Never fails: a header error
/// falls back to an empty 500.
pub fn bytes_response(status: u16, body: Vec<u8>, content_type: &str) -> Response {
    // One header object with its two headers (`Response::from_bytes` would
    // make one with an octet-stream type first, to be replaced).
    let built = Response::builder()
        .with_status(status)
        .with_header("content-type", content_type)
        .and_then(|b| b.with_header("cache-control", "no-store"));
    match built {
        Ok(b) => b.fixed(body),
        Err(_) => Response::empty().map(|r| r.with_status(500)).unwrap_or_else(|_| fallback()),
    }
}

/// The runtime's response for `resp` (status, headers, body). workers-rs's
/// own conversion first copies a byte body into a new JS `Uint8Array`, one
/// more JS buffer per response for the garbage collector; the `Response`
/// constructor copies the bytes anyway, so this hands it a view of them.
/// plumgate never answers with a WebSocket, the one thing this leaves out.
pub fn into_runtime(resp: Response) -> web_sys::Response {
    let init = web_sys::ResponseInit::new();
    init.set_status(resp.status_code());
    init.set_headers(&resp.headers().0);
    let built = match resp.body() {
        ResponseBody::Body(bytes) => BytesResponse::from_bytes(bytes, &init).map(|r| r.unchecked_into()),
        ResponseBody::Stream(stream) => web_sys::Response::new_with_opt_readable_stream_and_init(Some(stream), &init),
        ResponseBody::Empty => web_sys::Response::new_with_opt_str_and_init(None, &init),
    };
    // Only a body with a no-body status (204, 304) can fail here: answer
    // with the status and headers alone.
    built
        .or_else(|_| web_sys::Response::new_with_opt_str_and_init(None, &init))
        .unwrap_or_else(|_| fallback().into())
}

fn fallback() -> Response {
    // Response::empty() cannot really fail; this keeps the type total.
    Response::error("internal error", 500).expect("static response")
}
