//! The Durable Objects' entry points, exported to the runtime.
//!
//! workers-rs's `#[durable_object]` exports each object's class through
//! glue that turns a failed `fetch` or `alarm` into a JS error by writing
//! the `worker::Error` out with its `Display` and its `source()` chain (as
//! `&dyn std::error::Error`, so its `Debug` too). That keeps the formatting
//! of every error `worker` can wrap in the wasm (I/O error kinds, the
//! router's, serde_json's, serde-wasm-bindgen's), none of which plumgate
//! needs: its objects answer every call with a JSON reply and fail only
//! when storage does, and storage's errors are JS errors already.
//!
//! The fetch and scheduled handlers in `lib.rs` are exported by hand too:
//! `#[event(fetch)]`'s glue boxes a `worker::Error` as `dyn Error` for a
//! log line, though plumgate's handler never returns one.
//!
//! `durable_object!` exports the same class (a constructor, `fetch`, and
//! `alarm` for the objects that set alarms) over the object's inherent
//! `open`, `on_fetch` and `on_alarm`; [`answer`] hands each result over,
//! with [`thrown`] as its error conversion, which hands a JS error back as
//! it came. A failed `alarm` still rejects, so the runtime retries it as
//! before.

use wasm_bindgen::JsValue;

/// A failed entry point's error as the runtime receives it: the JS value a
/// JS error arrived as, else a JS `Error` with the message (or the
/// variant's name) and nothing formatted.
pub fn thrown(e: worker::Error) -> JsValue {
    match e {
        worker::Error::Internal(v) => v,
        worker::Error::UnknownJsError { original, .. } => original,
        other => js_sys::Error::new(&detail(&other)).into(),
    }
}

/// What went wrong, for a log line: the message of an error that carries
/// one, else the variant's name. (Not `Display`: see the module doc.)
pub fn detail(e: &worker::Error) -> String {
    match e {
        worker::Error::JsError(s) | worker::Error::RustError(s) | worker::Error::BindingError(s) => s.clone(),
        worker::Error::UnknownJsError { message, .. } => message.clone(),
        worker::Error::Internal(v) => super::promise::message_of(v),
        other => <&'static str>::from(other).to_owned(),
    }
}

/// What an entry point hands the runtime: the reply as the runtime's
/// `Response`, or the error as [`thrown`] makes it.
pub fn answer(result: worker::Result<super::http::Outgoing>) -> Result<JsValue, JsValue> {
    match result {
        Ok(r) => Ok(super::http::into_runtime(r).into()),
        Err(e) => Err(thrown(e)),
    }
}

/// Exports a Durable Object's class: `durable_object!(Type)` for `fetch`
/// alone, `durable_object!(Type, alarm)` for `fetch` and `alarm`. The type
/// (itself marked `#[wasm_bindgen]`) provides `fn open(State, Env) -> Self`,
/// `async fn on_fetch(&self, Incoming) -> worker::Result<Outgoing>`
/// and, with `alarm`, `async fn on_alarm(&self) -> worker::Result<Outgoing>`.
macro_rules! durable_object {
    ($ty:ident) => {
        const _: () = {
            use ::wasm_bindgen::prelude::{wasm_bindgen, JsValue};

            #[wasm_bindgen]
            impl $ty {
                #[wasm_bindgen(constructor)]
                pub fn new(state: ::worker::worker_sys::DurableObjectState, env: ::worker::Env) -> Self {
                    Self::open(::worker::durable::State::from(state), env)
                }

                pub async fn fetch(&self, req: ::worker::web_sys::Request) -> ::std::result::Result<JsValue, JsValue> {
                    $crate::runtime::object::answer(self.on_fetch($crate::runtime::http::Incoming::new(req)).await)
                }
            }
        };
    };
    ($ty:ident, alarm) => {
        $crate::runtime::object::durable_object!($ty);

        const _: () = {
            use ::wasm_bindgen::prelude::{wasm_bindgen, JsValue};

            #[wasm_bindgen]
            impl $ty {
                pub async fn alarm(&self) -> ::std::result::Result<JsValue, JsValue> {
                    $crate::runtime::object::answer(self.on_alarm().await)
                }
            }
        };
    };
}
pub(crate) use durable_object;
