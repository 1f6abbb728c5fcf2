//! A Durable Object's storage, with text values read and written directly.
//!
//! Every value plumgate keeps in object storage is JSON text it serialises
//! itself (`serde_json`, with the core's types). workers-rs's
//! `Storage::get::<T>` and `Storage::put::<T>` convert through
//! `serde-wasm-bindgen`, which (with [`super::kv`]'s counterpart) compiled
//! that crate's serializer and deserializer into the wasm to move one
//! string. [`Storage::get_text`] and [`Storage::put_text`] call the
//! runtime's `storage.get` / `storage.put` with a JS string instead.
//! Everything else (alarms, `delete`, `delete_all`, SQL) is workers-rs's
//! own, reached through `Deref`.

use super::promise::{self, message_of};
use wasm_bindgen::JsValue;
use worker::worker_sys::DurableObjectStorage;
use worker::State;

/// One object's storage: workers-rs's handle plus the runtime's.
pub struct Storage {
    worker: worker::Storage,
    raw: Option<DurableObjectStorage>,
}

impl Storage {
    /// The storage of the object whose state is `state`.
    pub fn of(state: &State) -> Storage {
        Storage { worker: state.storage(), raw: state.as_raw().storage().ok() }
    }

    /// The text stored under `key`, `None` when nothing is; `Err` (the
    /// runtime's message) when the read failed or the value is not text.
    pub async fn get_text(&self, key: &str) -> Result<Option<String>, String> {
        let raw = self.raw.as_ref().ok_or("no storage")?;
        let pending = raw.get(key).map_err(|e| message_of(&e))?;
        let value = promise::settled(&pending).await.map_err(|e| message_of(&e))?;
        if value.is_undefined() {
            return Ok(None);
        }
        value.as_string().map(Some).ok_or_else(|| "the stored value is not text".into())
    }

    /// Store `text` under `key`; `Err` (the runtime's message) when the
    /// write failed.
    pub async fn put_text(&self, key: &str, text: &str) -> Result<(), String> {
        let raw = self.raw.as_ref().ok_or("no storage")?;
        let pending = raw.put(key, JsValue::from_str(text)).map_err(|e| message_of(&e))?;
        promise::settled(&pending).await.map(|_| ()).map_err(|e| message_of(&e))
    }
}

impl std::ops::Deref for Storage {
    type Target = worker::Storage;
    fn deref(&self) -> &worker::Storage {
        &self.worker
    }
}
