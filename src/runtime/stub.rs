//! Calling a Durable Object by name: the stub plumbing every object's
//! client shares. What goes in and comes out is the object's typed wire
//! (`plumgate_core::wire`); this only moves the bytes.
//!
//! The call goes straight to the runtime's stub (`stub.fetch(url, init)`
//! with a plain init object), awaited through [`super::promise`]. workers-rs's
//! `Stub::fetch_with_request` would first build a `worker::RequestInit`,
//! whose conversion carries the whole `cf` options family (image resizing
//! and the rest: ~10 KB of the wasm, and work on every call), then a
//! `worker::Response`; plumgate needs neither.

use super::promise::{self, message_of};
use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::{web_sys, Env};

#[wasm_bindgen]
extern "C" {
    /// A Durable Object stub, seen only through `fetch`.
    type RawStub;
    /// `stub.fetch(url, init)`.
    #[wasm_bindgen(method, js_name = fetch, catch)]
    fn fetch_with(this: &RawStub, url: &str, init: &web_sys::RequestInit) -> Result<js_sys::Promise, JsValue>;
}

/// Why a call to an object gave no answer.
#[derive(Debug)]
pub enum StubError {
    /// No such binding (a configuration problem).
    Binding,
    /// The request could not be built (a bug).
    Request,
    /// The call failed (the object threw, or was unreachable), with the
    /// runtime's message, for the log only.
    Call(String),
    /// The answer's body could not be read.
    Body,
}

/// `POST url` with `body` to the object named `name` in the namespace bound
/// as `binding`, with `header` (name, value) if any; the answer's status
/// and body.
pub async fn post(
    env: &Env,
    binding: &str,
    name: &str,
    url: &str,
    header: Option<(&str, &str)>,
    body: Option<String>,
) -> Result<(u16, Vec<u8>), StubError> {
    let stub: RawStub = env.durable_object(binding).and_then(|ns| ns.get_by_name(name)).map_err(|_| StubError::Binding)?.into_rpc();
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    if let Some((k, v)) = header {
        let headers = Object::new();
        Reflect::set(&headers, &JsValue::from_str(k), &JsValue::from_str(v)).map_err(|_| StubError::Request)?;
        init.set_headers(&headers);
    }
    if let Some(b) = body {
        init.set_body(&JsValue::from_str(&b));
    }
    let pending = stub.fetch_with(url, &init).map_err(|e| StubError::Call(message_of(&e)))?;
    let resp: web_sys::Response =
        promise::settled(&pending).await.map_err(|e| StubError::Call(message_of(&e)))?.dyn_into().map_err(|_| StubError::Body)?;
    let status = resp.status();
    let body = super::http::whole(resp.array_buffer()).await.map_err(|()| StubError::Body)?;
    Ok((status, body))
}
