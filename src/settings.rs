//! Configuration from the Worker environment.
//!
//! Reads every variable `plumgate_core::config::parse` asks for (plain vars
//! and secrets look the same to a Worker) and caches the result for the life
//! of the isolate: a new deploy or a new secret starts new isolates (the
//! Durable Objects' included, which use the same cache). A configuration
//! error is cached too, so every request answers `503 misconfigured` without
//! re-parsing. The bindings are looked at here too, for `/healthz`.

use plumgate_core::config::{self, Config};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::JsValue;
use worker::Env;

/// A parsed configuration, or the problems that make it unusable. Both are
/// shared pointers, so handing them to a long-lived future is cheap.
pub type Settings = Result<Rc<Config>, Rc<Vec<String>>>;

thread_local! {
    static CACHE: RefCell<Option<Settings>> = const { RefCell::new(None) };
}

/// Read one variable as a string (var or secret), `None` when unset. A
/// `[vars]` value that TOML made a number, a boolean or a table
/// (`BALANCE_ALERT_BELOW = 1000`, `XOXODAY_RATE_LIMITS = { getBalance = 30 }`)
/// is read as its JSON text, so it is parsed (and checked) like the quoted
/// form instead of being taken for unset.
fn read_var(env: &Env, name: &str) -> Option<String> {
    let v = js_sys::Reflect::get(env, &JsValue::from_str(name)).ok().filter(|v| !v.is_undefined() && !v.is_null())?;
    v.as_string().or_else(|| js_sys::JSON::stringify(&v).ok().and_then(|s| s.as_string()))
}

/// The bindings `/healthz` requires that this worker lacks, as problems
/// (`plumgate_core::config::binding_problems`): a few property reads, no
/// call, so the check stays cheap.
pub fn binding_problems(env: &Env) -> Vec<String> {
    config::binding_problems(&|name| js_sys::Reflect::get(env, &JsValue::from_str(name)).is_ok_and(|v| v.is_object()))
}

/// The isolate's configuration, parsed on first use.
pub fn load(env: &Env) -> Settings {
    if let Some(s) = CACHE.with(|c| c.borrow().clone()) {
        return s;
    }
    let parsed: Settings = config::parse(&|name| read_var(env, name)).map(Rc::new).map_err(Rc::new);
    CACHE.with(|c| *c.borrow_mut() = Some(parsed.clone()));
    parsed
}
