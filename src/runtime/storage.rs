//! A Durable Object's storage, with text values read and written directly.
//!
//! Every value plumgate keeps in object storage is JSON text it serialises
//! itself (`serde_json`, with the core's types). workers-rs's
//! `Storage::get::<T>` and `Storage::put::<T>` convert through
//! `serde-wasm-bindgen`, which (with [`super::kv`]'s counterpart) compiled
//! that crate's serializer and deserializer into the wasm to move one
//! string. [`Storage::get_text`] and [`Storage::put_text`] call the
//! runtime's `storage.get` / `storage.put` with a JS string instead.
//! The alarm's getter and setters, `delete` and `delete_all` are workers-rs's
//! calls, with its arguments, results and errors, awaited through
//! [`promise`] like those two: workers-rs awaits them with `JsFuture`,
//! which was in the wasm for them alone (with their four futures: 0.2 KB
//! gzipped in all). SQL is workers-rs's own, reached through `Deref`.

use super::promise::{self, message_of};
use js_sys::{Date, Promise};
use wasm_bindgen::{JsCast, JsValue};
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

/// A storage call's promise to await; the error of a call that threw as
/// workers-rs makes it (`worker::Error::from` the JS value), as is a
/// rejection's once awaited.
fn settle(pending: Result<Promise, JsValue>) -> worker::Result<promise::Settled> {
    Ok(promise::settled(&pending?))
}

/// `offset_ms` from now: workers-rs's `ScheduledTime` offset
/// (`Date.now()` when the alarm is set, plus the offset).
pub fn in_ms(offset_ms: f64) -> Date {
    Date::new(&(Date::now() + offset_ms).into())
}

impl Storage {
    fn raw(&self) -> worker::Result<&DurableObjectStorage> {
        // `of` got both from the same call: `state.storage()` panics where
        // this would be `None`.
        self.raw.as_ref().ok_or_else(|| "no storage".into())
    }

    /// When the alarm is set for (epoch ms), `None` when it is not.
    pub async fn get_alarm(&self) -> worker::Result<Option<i64>> {
        let at = settle(self.raw()?.get_alarm(JsValue::NULL.unchecked_into()))?.await?;
        Ok(at.as_f64().map(|f| f as i64))
    }

    /// Set the alarm for `at` ([`in_ms`] for an offset from now).
    pub async fn set_alarm(&self, at: Date) -> worker::Result<()> {
        settle(self.raw()?.set_alarm(at, JsValue::NULL.unchecked_into()))?.await?;
        Ok(())
    }

    /// Delete `key`: whether it was there.
    pub async fn delete(&self, key: &str) -> worker::Result<bool> {
        let found = settle(self.raw()?.delete(key))?.await?;
        Ok(found.as_bool().ok_or_else(|| JsValue::from("Promise did not return bool"))?)
    }

    /// Delete everything the object stores.
    pub async fn delete_all(&self) -> worker::Result<()> {
        settle(self.raw()?.delete_all())?.await?;
        Ok(())
    }
}

impl std::ops::Deref for Storage {
    type Target = worker::Storage;
    fn deref(&self) -> &worker::Storage {
        &self.worker
    }
}
