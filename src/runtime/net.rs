//! Outbound HTTP to Xoxoday: one function, `send`, that runs a core-built
//! request through the runtime's `fetch` with a timeout and without
//! following redirects (a redirect would carry the bearer or the refresh
//! grant to wherever it points).
//!
//! Hot path: one call to `glue.js`'s `send`, which calls the global
//! `fetch` with `AbortSignal.timeout` (one native timer, no Rust timer
//! future) and reads the body with `arrayBuffer()` (one copy, no stream
//! reader loop); one await through [`super::promise`]. Built through the
//! glue, the init, its headers and the two awaits were ~25 calls between
//! wasm and JavaScript per call.
//!
//! What came back is `plumgate_core::http`'s [`HttpAnswer`] or
//! [`NoAnswer`], which the core's readers take as they are.

use super::http::js_name;
use super::promise;
use plumgate_core::http::{header_lines, HttpAnswer, HttpRequest, NoAnswer};
use plumgate_core::upstream::may_be_rate_limit;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::js_sys::{self, Reflect};
use worker::wasm_bindgen::{JsCast, JsValue};

#[wasm_bindgen(module = "/src/runtime/glue.js")]
extern "C" {
    /// `fetch` with a timeout and no redirects, the body read whole:
    /// settles with an [`Answer`].
    #[wasm_bindgen(catch, js_name = send)]
    fn fetch_whole(url: &str, method: &JsValue, headers: &str, body: Option<&str>, timeout_ms: u32) -> Result<js_sys::Promise, JsValue>;
    /// What `send` settles with.
    type Answer;
    #[wasm_bindgen(method, getter)]
    fn status(this: &Answer) -> u16;
    /// The body, copied into wasm memory in the one call.
    #[wasm_bindgen(method, getter)]
    fn bytes(this: &Answer) -> Vec<u8>;
    /// One of the answer's headers.
    #[wasm_bindgen(js_name = answerHeader)]
    fn answer_header(answer: &Answer, name: &JsValue) -> Option<String>;
}

fn classify(e: JsValue) -> NoAnswer {
    let name = Reflect::get(&e, &JsValue::from_str("name")).ok().and_then(|v| v.as_string());
    match name.as_deref() {
        Some("TimeoutError") | Some("AbortError") => NoAnswer::Timeout,
        _ => NoAnswer::Transport,
    }
}

/// Send `req`, waiting at most `timeout_ms` for the whole answer.
pub async fn send(req: &HttpRequest, timeout_ms: u64) -> Result<HttpAnswer, NoAnswer> {
    // The core never builds a header the runtime would refuse.
    let lines = header_lines(req.headers.iter().map(|(k, v)| (*k, v.as_str()))).ok_or(NoAnswer::Transport)?;
    let timeout = timeout_ms.min(u64::from(u32::MAX)) as u32;
    let pending = js_name(req.method, |m| fetch_whole(&req.url, m, &lines, req.body.as_deref(), timeout)).map_err(classify)?;
    let answer: Answer = promise::settled(&pending).await.map_err(classify)?.unchecked_into();
    let status = answer.status();
    let body = answer.bytes();
    // Only a possible rate-limit answer needs its header (one more glue
    // round trip and a `Headers` object otherwise spent on every call).
    let retry_after = if may_be_rate_limit(status, &body) { js_name("retry-after", |n| answer_header(&answer, n)) } else { None };
    Ok(HttpAnswer { status, body, retry_after })
}
