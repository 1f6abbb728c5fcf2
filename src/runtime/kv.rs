//! The access-token cache's KV namespace, reached directly: text in, text
//! out, a TTL on writes.
//!
//! workers-rs's `KvStore` builds its options object and reads `json` values
//! through `serde-wasm-bindgen`, which compiled that crate's serializer and
//! deserializer into the wasm for one `{expirationTtl}` object and one
//! string (with [`super::storage`]: −4.1 KB gzip, BENCHMARKS.md).
//! plumgate stores JSON text it serialises itself (`serde_json`), so a
//! text `get`, a `put` with a plain options object and a `delete` are all
//! it needs.

use super::promise;
use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::Env;

#[wasm_bindgen]
extern "C" {
    /// A KV namespace binding, seen only through these three methods.
    type RawKv;
    /// `kv.get(key)`: the value as text, or `null`.
    #[wasm_bindgen(method, js_name = get, catch)]
    fn get_text(this: &RawKv, key: &str) -> Result<js_sys::Promise, JsValue>;
    /// `kv.put(key, value, options)`.
    #[wasm_bindgen(method, js_name = put, catch)]
    fn put_with(this: &RawKv, key: &str, value: &str, options: &Object) -> Result<js_sys::Promise, JsValue>;
    /// `kv.delete(key)`.
    #[wasm_bindgen(method, js_name = delete, catch)]
    fn delete_key(this: &RawKv, key: &str) -> Result<js_sys::Promise, JsValue>;
}

/// The namespace bound as `binding`, if there is one.
fn namespace(env: &Env, binding: &str) -> Option<RawKv> {
    let v = Reflect::get(env, &JsValue::from_str(binding)).ok()?;
    (v.is_object()).then(|| v.unchecked_into())
}

/// The text stored under `key`; `None` when there is none, or no binding,
/// or the read failed (the cache is an optimisation: a miss is always safe).
pub async fn get(env: &Env, binding: &str, key: &str) -> Option<String> {
    let pending = namespace(env, binding)?.get_text(key).ok()?;
    promise::settled(&pending).await.ok()?.as_string()
}

/// Store `value` under `key` for `ttl_secs` (KV's minimum is 60). `false`
/// when there is no binding or the write failed.
pub async fn put(env: &Env, binding: &str, key: &str, value: &str, ttl_secs: u64) -> bool {
    let Some(kv) = namespace(env, binding) else { return false };
    let options = Object::new();
    if Reflect::set(&options, &JsValue::from_str("expirationTtl"), &JsValue::from_f64(ttl_secs as f64)).is_err() {
        return false;
    }
    match kv.put_with(key, value, &options) {
        Ok(pending) => promise::settled(&pending).await.is_ok(),
        Err(_) => false,
    }
}

/// Remove `key`; failures are ignored (the entry's TTL ends it anyway).
pub async fn delete(env: &Env, binding: &str, key: &str) {
    if let Some(kv) = namespace(env, binding) {
        if let Ok(pending) = kv.delete_key(key) {
            let _ = promise::settled(&pending).await;
        }
    }
}
