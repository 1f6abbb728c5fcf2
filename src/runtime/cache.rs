//! The location's Cache API (`caches.default`), as `edge_cache` uses it: an
//! entry's status, headers and whole body read back, and an entry stored
//! from bytes.
//!
//! `worker::Cache` hands its answers over as `worker::Response`, whose
//! conversion reads the runtime response's `webSocket` and `cf` and wraps
//! its body in a stream adapter; reading that back took its own code. Here
//! the runtime's response is read directly (one native `arrayBuffer()`), and
//! an entry is stored as a `Response` built in one call from an
//! [`Outgoing`] (`http::into_runtime`).

use super::http::{into_runtime, whole, Outgoing};
use super::promise;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::web_sys;

#[wasm_bindgen]
extern "C" {
    /// The global `caches`.
    type CacheStorage;
    #[wasm_bindgen(thread_local_v2, js_name = caches)]
    static CACHES: CacheStorage;
    /// `caches.default`, the location's cache.
    #[wasm_bindgen(method, getter, js_name = default)]
    fn default(this: &CacheStorage) -> RawCache;

    /// A `Cache`, seen only through `match` and `put`.
    type RawCache;
    /// `cache.match(url, options)`: settles with the entry, or `undefined`.
    #[wasm_bindgen(method, js_name = match, catch)]
    fn match_url(this: &RawCache, url: &str, options: &JsValue) -> Result<js_sys::Promise, JsValue>;
    /// `cache.put(url, response)`.
    #[wasm_bindgen(method, catch)]
    fn put(this: &RawCache, url: &str, response: &web_sys::Response) -> Result<js_sys::Promise, JsValue>;
}

fn cache() -> RawCache {
    CACHES.with(CacheStorage::default)
}

/// An entry read back: its status and the headers plumgate reads.
pub struct Entry {
    raw: web_sys::Response,
}

impl Entry {
    /// The stored status.
    pub fn status(&self) -> u16 {
        self.raw.status()
    }

    /// A header's value, `None` when absent.
    pub fn header(&self, name: &str) -> Option<String> {
        self.raw.headers().get(name).ok().flatten()
    }

    /// The whole body.
    ///
    /// # Errors
    /// `()` when it cannot be read.
    pub async fn body(self) -> Result<Vec<u8>, ()> {
        whole(self.raw.array_buffer()).await
    }
}

/// The entry under `url` (matched whatever the method it was stored for),
/// `None` when there is none or the cache cannot be read.
pub async fn get(url: &str) -> Option<Entry> {
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"ignoreMethod".into(), &JsValue::TRUE).ok()?;
    let pending = cache().match_url(url, &options).ok()?;
    let found = promise::settled(&pending).await.ok()?;
    found.dyn_into::<web_sys::Response>().ok().map(|raw| Entry { raw })
}

/// Store `entry` under `url`. A failure is not the caller's concern (the
/// memory layer has the answer, or for one too large for memory, the next
/// call asks Xoxoday again): `false`.
pub async fn put(url: &str, entry: Outgoing) -> bool {
    match cache().put(url, &into_runtime(entry)) {
        Ok(pending) => promise::settled(&pending).await.is_ok(),
        Err(_) => false,
    }
}
