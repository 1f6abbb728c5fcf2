//! The request and response adapters between the runtime's own objects and
//! plumgate: [`Incoming`] in, [`into_runtime`] out.

use super::promise;
use js_sys::{Reflect, Uint8Array};
use plumgate_core::route::{path_of, query_of};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::{web_sys, Env, Response, ResponseBody};

/// The incoming request, as far as plumgate reads it: method, path, headers
/// and (once) the body. The worker's requests and the Durable Objects'
/// (`runtime::object`) are both read through it. Built from the runtime's request directly rather
/// than through `worker::Request`, whose conversion reads `request.cf`: the
/// runtime builds that object anew on every read (about 0.03 ms CPU, a tenth
/// of a `/healthz`, in a same-run A/B), and plumgate never uses it.
pub struct Incoming {
    raw: web_sys::Request,
    /// The method exactly as sent.
    pub method: String,
    /// The URL path (no query).
    pub path: String,
    headers: web_sys::Headers,
}

impl Incoming {
    /// Wrap the runtime's request.
    pub fn new(raw: web_sys::Request) -> Self {
        let method = raw.method();
        let path = path_of(&raw.url()).to_string();
        let headers = raw.headers();
        Incoming { raw, method, path, headers }
    }

    /// The query parameters, percent-decoded, in order.
    pub fn query(&self) -> Vec<(String, String)> {
        query_of(&self.raw.url())
    }

    /// A request header, `None` when absent.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).ok().flatten()
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Vec<u8>, ()> {
        whole(self.raw.array_buffer()).await
    }

    /// The whole body, if it is at most `max` bytes. A body whose
    /// `Content-Length` says more is refused unread; one with a length of at
    /// most `max` is read whole (the runtime delivers exactly that many
    /// bytes). A body without a length (chunked) is read chunk by chunk and
    /// refused as soon as it passes `max`: the rest is never read, so a
    /// huge body never reaches JS or wasm memory.
    pub async fn bytes_at_most(self, max: usize) -> Result<Vec<u8>, BodyError> {
        if let Some(len) = self.header("content-length") {
            match len.trim().parse::<usize>() {
                Ok(n) if n > max => return Err(BodyError::TooLarge),
                Ok(_) => return self.bytes().await.map_err(|()| BodyError::Unreadable),
                Err(_) => {}
            }
        }
        let Some(stream) = self.raw.body() else { return Ok(Vec::new()) };
        let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
        let mut out = Vec::new();
        loop {
            let chunk = promise::settled(&reader.read()).await.map_err(|_| BodyError::Unreadable)?;
            if Reflect::get(&chunk, &JsValue::from_str("done")).ok().and_then(|d| d.as_bool()).unwrap_or(true) {
                return Ok(out);
            }
            let value: Uint8Array = Reflect::get(&chunk, &JsValue::from_str("value")).map_err(|_| BodyError::Unreadable)?.unchecked_into();
            let n = value.length() as usize;
            if out.len() + n > max {
                // Stop reading: the rest stays in the socket.
                let _ = reader.cancel();
                return Err(BodyError::TooLarge);
            }
            let start = out.len();
            out.resize(start + n, 0);
            value.copy_to(&mut out[start..]);
        }
    }

    /// The request handed on, as the runtime's own, to the service binding
    /// `binding` (the static assets); its answer. (Through
    /// `worker::Request` and `Fetcher::fetch_request` it would read
    /// `request.cf` and come back as a `worker::Response` to convert.)
    pub async fn forward_to(self, env: &Env, binding: &str) -> Result<web_sys::Response, ()> {
        let fetcher: RawFetcher = env.assets(binding).map_err(|_| ())?.into_rpc();
        let pending = fetcher.fetch_request(&self.raw).map_err(|_| ())?;
        promise::settled(&pending).await.map_err(|_| ())?.dyn_into().map_err(|_| ())
    }
}

/// The bytes an `arrayBuffer()` call settles with.
pub async fn whole(reading: Result<js_sys::Promise, JsValue>) -> Result<Vec<u8>, ()> {
    let buf = promise::settled(&reading.map_err(|_| ())?).await.map_err(|_| ())?;
    Ok(Uint8Array::new(&buf).to_vec())
}

/// Why a body could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Over the limit.
    TooLarge,
    /// The body could not be read.
    Unreadable,
}

#[wasm_bindgen]
extern "C" {
    /// A service binding (`Fetcher`), seen only through `fetch`.
    type RawFetcher;
    /// `binding.fetch(request)`.
    #[wasm_bindgen(method, js_name = fetch, catch)]
    fn fetch_request(this: &RawFetcher, request: &web_sys::Request) -> Result<js_sys::Promise, JsValue>;

    /// The runtime's `Response`, constructed from bytes in wasm memory.
    #[wasm_bindgen(js_name = Response, extends = web_sys::Response)]
    type BytesResponse;
    /// `new Response(view, init)`: the view of wasm memory is made inside
    /// this one glue call and the constructor copies it, so no allocation
    /// can move the memory under it.
    #[wasm_bindgen(constructor, js_class = "Response", catch)]
    fn from_bytes(body: &[u8], init: &web_sys::ResponseInit) -> Result<BytesResponse, JsValue>;
}

/// The runtime's `Response` with `init` and a copy of `body`.
///
/// # Errors
/// What the constructor throws (a body with a no-body status).
pub fn from_bytes(body: &[u8], init: &web_sys::ResponseInit) -> Result<web_sys::Response, JsValue> {
    BytesResponse::from_bytes(body, init).map(JsCast::unchecked_into)
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
        ResponseBody::Body(bytes) => from_bytes(bytes, &init),
        ResponseBody::Stream(stream) => web_sys::Response::new_with_opt_readable_stream_and_init(Some(stream), &init),
        ResponseBody::Empty => web_sys::Response::new_with_opt_str_and_init(None, &init),
    };
    // Only a body with a no-body status (204, 304) can fail here: answer
    // with the status and headers alone.
    built
        .or_else(|_| web_sys::Response::new_with_opt_str_and_init(None, &init))
        .unwrap_or_else(|_| internal_error().into())
}

/// A bare `500 internal error`, for the paths where building a response
/// failed (they cannot really fail; this keeps every path total). Built
/// with the infallible builder, so there is nothing to `expect`.
pub fn internal_error() -> Response {
    Response::builder().with_status(500).fixed(b"internal error".to_vec())
}
