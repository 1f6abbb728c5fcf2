//! Outbound HTTP to Xoxoday: one function, `send`, that runs a core-built
//! request through the runtime's `fetch` with a timeout and without
//! following redirects (a redirect would carry the bearer or the refresh
//! grant to wherever it points).
//!
//! Hot path: calls the global `fetch` directly with `AbortSignal.timeout`
//! (one native timer, no Rust timer future) and reads the body with
//! `arrayBuffer()` (one copy, no stream reader loop), both awaited through
//! [`super::promise`].
//!
//! What came back is `plumgate_core::http`'s [`HttpAnswer`] or
//! [`NoAnswer`], which the core's readers take as they are.

use super::promise;
use plumgate_core::http::{HttpAnswer, HttpRequest, NoAnswer};
use plumgate_core::upstream::may_be_rate_limit;
use worker::js_sys::{self, Reflect, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::web_sys;

thread_local! {
    /// The global object and its `fetch`, looked up once per isolate.
    static FETCH: Option<(JsValue, js_sys::Function)> = {
        let global: JsValue = js_sys::global().into();
        Reflect::get(&global, &JsValue::from_str("fetch")).ok().and_then(|f| f.dyn_into().ok()).map(|f| (global, f))
    };
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
    // A plain object, not a `Headers`: `fetch` reads it natively, where a
    // `Headers` costs a constructor and a validating `set` per header
    // through the glue.
    let headers = js_sys::Object::new();
    for (k, v) in &req.headers {
        Reflect::set(&headers, &JsValue::from_str(k), &JsValue::from_str(v)).map_err(|_| NoAnswer::Transport)?;
    }
    let init = web_sys::RequestInit::new();
    init.set_method(if req.method == "GET" { "GET" } else { "POST" });
    init.set_headers(&headers);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    if let Some(b) = &req.body {
        init.set_body(&JsValue::from_str(b));
    }
    let signal = web_sys::AbortSignal::timeout_with_u32(timeout_ms.min(u32::MAX as u64) as u32);
    init.set_signal(Some(&signal));
    let called = FETCH.with(|f| f.as_ref().map(|(global, fetch)| fetch.call2(global, &JsValue::from_str(&req.url), &init)));
    let pending: js_sys::Promise =
        called.ok_or(NoAnswer::Transport)?.map_err(classify)?.dyn_into().map_err(|_| NoAnswer::Transport)?;
    let resp: web_sys::Response = promise::settled(&pending).await.map_err(classify)?.dyn_into().map_err(|_| NoAnswer::Transport)?;
    let status = resp.status();
    let buf = promise::settled(&resp.array_buffer().map_err(|_| NoAnswer::Transport)?).await.map_err(classify)?;
    let body = Uint8Array::new(&buf).to_vec();
    // Only a possible rate-limit answer needs its header (one more glue
    // round trip and a `Headers` object otherwise spent on every call).
    let retry_after = if may_be_rate_limit(status, &body) { resp.headers().get("retry-after").ok().flatten() } else { None };
    Ok(HttpAnswer { status, body, retry_after })
}
