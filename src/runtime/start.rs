//! What runs once, when the runtime instantiates the module
//! (`#[wasm_bindgen(start)]` in `lib.rs`).

use wasm_bindgen::JsValue;

/// Have `wasm-bindgen-futures` wake its task queue with resolved-promise
/// reactions rather than `queueMicrotask`. It picks `queueMicrotask` once,
/// when its queue is created, if that global exists; in workerd that call
/// costs more than a promise reaction (same-run A/B: 0.679 -> 0.650 ms CPU
/// per hot-path request). So: hide the global, create the queue (an empty task),
/// put the global back. Both paths are wasm-bindgen-futures' own; nothing
/// else sees the global missing.
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
/// Only constants: nothing a caller or Xoxoday sends is interned. Needs
/// wasm-bindgen's `enable-interning` feature (`Cargo.toml`).
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

/// Intern `HOT_STRINGS`.
pub fn intern_constants() {
    for s in HOT_STRINGS {
        wasm_bindgen::intern(s);
    }
}
