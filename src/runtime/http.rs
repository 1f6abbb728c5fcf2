//! The request and response adapters between the runtime's own objects and
//! plumgate: [`Incoming`] in, [`Outgoing`] out (handed over by
//! [`into_runtime`]).

use super::promise;
use js_sys::{Reflect, Uint8Array};
use plumgate_core::http::{HeaderList, RequestHead, REQUEST_HEADERS};
use plumgate_core::route::{path_of, query_of};
use std::borrow::Cow;
use std::cell::RefCell;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::{web_sys, Env};

/// The incoming request, as far as plumgate reads it: method, path, headers
/// and (once) the body. The worker's requests and the Durable Objects'
/// (`runtime::object`) are both read through it. Built from the runtime's request directly rather
/// than through `worker::Request`, whose conversion reads `request.cf`: the
/// runtime builds that object anew on every read (about 0.03 ms CPU, a tenth
/// of a `/healthz`, in a same-run A/B), and plumgate never uses it.
///
/// The method, the URL and the headers plumgate reads
/// ([`REQUEST_HEADERS`]) come over in one call to `glue.js`'s `head`
/// ([`RequestHead`]); read one by one through the glue they were seven
/// calls and seven strings per request.
pub struct Incoming {
    raw: web_sys::Request,
    /// The method exactly as sent.
    pub method: String,
    /// The URL path (no query).
    pub path: String,
    head: Option<RequestHead>,
}

impl Incoming {
    /// Wrap the runtime's request.
    pub fn new(raw: web_sys::Request) -> Self {
        let head = js_name(REQUEST_HEADERS, |names| request_head(&raw, names));
        // Never expected (the runtime refuses a line break in every field
        // `head` writes), but should the string not read, each field is
        // read on its own instead.
        let head = RequestHead::parse(head);
        let (method, path) = match &head {
            Some(h) => (h.method().to_owned(), path_of(h.url()).to_owned()),
            None => (raw.method(), path_of(&raw.url()).to_owned()),
        };
        Incoming { raw, method, path, head }
    }

    /// The query parameters, percent-decoded, in order.
    pub fn query(&self) -> Vec<(String, String)> {
        match &self.head {
            Some(h) => query_of(h.url()),
            None => query_of(&self.raw.url()),
        }
    }

    /// A request header (`name` in lowercase), `None` when absent. One of
    /// [`REQUEST_HEADERS`] was read with the request; any other is asked
    /// of the runtime, its name crossing into JavaScript once per isolate
    /// ([`js_name`]).
    pub fn header(&self, name: &'static str) -> Option<Cow<'_, str>> {
        if let Some(value) = self.head.as_ref().and_then(|h| h.header(name)) {
            return value.map(Cow::Borrowed);
        }
        let headers: RawHeaders = self.raw.headers().unchecked_into();
        js_name(name, |n| headers.get(n)).ok().flatten().map(Cow::Owned)
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
        // `parse::<usize>`, through `u64`'s parser (the one the wasm has).
        match self.header("content-length").map(|len| len.trim().parse::<u64>().ok().and_then(|n| usize::try_from(n).ok())) {
            Some(Some(n)) if n > max => return Err(BodyError::TooLarge),
            // Checked again once read: a caller through a service binding
            // might state less than it sends.
            Some(Some(_)) => return self.bytes().await.map_err(|()| BodyError::Unreadable).and_then(|b| if b.len() > max { Err(BodyError::TooLarge) } else { Ok(b) }),
            _ => {}
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
    Ok(bytes_of(&buf))
}

/// Why a body could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Over the limit.
    TooLarge,
    /// The body could not be read.
    Unreadable,
}

/// `name` as a JavaScript string made once per isolate: the fixed names
/// that cross on every request (header names) are not copied out of wasm
/// memory and decoded each time (a view of wasm memory and a new string per
/// use in heap profiles). Only constants: the cache never grows past the
/// names in the code. (wasm-bindgen's `enable-interning` does the same but
/// hashes every string that crosses to look it up, the long ones too.)
pub fn js_name<R>(name: &'static str, f: impl FnOnce(&JsValue) -> R) -> R {
    thread_local! {
        static NAMES: RefCell<Vec<(&'static str, JsValue)>> = const { RefCell::new(Vec::new()) };
    }
    NAMES.with(|names| {
        let found = names.borrow().iter().position(|(k, _)| *k == name);
        let i = found.unwrap_or_else(|| {
            let mut names = names.borrow_mut();
            names.push((name, JsValue::from_str(name)));
            names.len() - 1
        });
        // A shared borrow while `f` runs: a call back into here for a name
        // already made would still work.
        f(&names.borrow()[i].1)
    })
}

#[wasm_bindgen]
extern "C" {
    /// A request's `Headers`, seen only through `get`.
    type RawHeaders;
    /// `headers.get(name)`, the name an existing JavaScript string.
    #[wasm_bindgen(method, catch)]
    fn get(this: &RawHeaders, name: &JsValue) -> Result<Option<String>, JsValue>;

    /// A service binding (`Fetcher`), seen only through `fetch`.
    type RawFetcher;
    /// `binding.fetch(request)`.
    #[wasm_bindgen(method, js_name = fetch, catch)]
    fn fetch_request(this: &RawFetcher, request: &web_sys::Request) -> Result<js_sys::Promise, JsValue>;
}

#[wasm_bindgen(module = "/src/runtime/glue.js")]
extern "C" {
    /// The request's method, URL and the headers `names` lists, in one
    /// string ([`RequestHead`]'s form).
    #[wasm_bindgen(js_name = head)]
    fn request_head(request: &web_sys::Request, names: &JsValue) -> String;

    /// An `ArrayBuffer`'s bytes, copied into wasm memory in one call
    /// (`Uint8Array::to_vec` is five: the view, its length three times,
    /// the copy).
    #[wasm_bindgen(js_name = bytesOf)]
    fn bytes_of(buffer: &JsValue) -> Vec<u8>;

    /// `new Response(body, {status, headers})` in one call (`glue.js`):
    /// the view of wasm memory is made inside this call and the
    /// constructor copies it, so no allocation can move the memory under
    /// it. Never throws.
    fn respond(status: u16, body: Option<&[u8]>, headers: &str) -> web_sys::Response;
}

/// A response as plumgate builds it: status, headers and the whole body,
/// all in wasm memory until [`into_runtime`] hands it over in one call.
/// (workers-rs's `Response` keeps its headers in a runtime `Headers`
/// object: a constructor and a validating call through the glue per header
/// on every answer, and a glue call for every header read back.) No
/// `Debug`: some bodies carry a caller key.
pub struct Outgoing {
    status: u16,
    headers: HeaderList,
    body: Option<Vec<u8>>,
}

impl Outgoing {
    /// `status` with `body` (`None`: no body at all) and no headers.
    pub fn new(status: u16, body: Option<Vec<u8>>) -> Self {
        Outgoing { status, headers: HeaderList::default(), body }
    }

    /// The status.
    pub fn status_code(&self) -> u16 {
        self.status
    }

    /// Set a header ([`HeaderList::set`]: replaces one of the same name,
    /// leaves out one the runtime would refuse).
    pub fn set(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        self.headers.set(name, value);
    }

    /// A header's value, `None` when absent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The body (empty when there is none).
    pub fn body(&self) -> &[u8] {
        self.body.as_deref().unwrap_or_default()
    }
}

/// Hand `resp` to the runtime: its `Response`, in one call. A header the
/// runtime refuses is left out and a body with a no-body status (204, 304)
/// dropped.
pub fn into_runtime(resp: Outgoing) -> web_sys::Response {
    respond(resp.status, resp.body.as_deref(), &resp.headers.lines())
}
