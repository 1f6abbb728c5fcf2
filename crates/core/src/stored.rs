//! Reading a stored JSON object field by field, over the `serde_json::Value`
//! reader every request body already goes through.
//!
//! Why by hand: serde's derive compiles a reader per struct, inlined into
//! its caller; for the token authority's state it was one 15.9 KB function
//! of the worker's wasm. Each reader here is a plain function of a `Value`,
//! shared by every field of its type. Users: `token::decode` (the token
//! state), `ledger` (the order record). Each keeps the derive for its tests
//! only, to hold its reader to the derive's rules:
//! - a missing field takes its default ([`get`]) or is an error when the
//!   struct has none ([`need`]); unknown fields are ignored;
//! - `null` is `None` for an `Option` and a type error for anything else;
//! - a value of the wrong type, an integer outside its type's range, or a
//!   float where an integer belongs is a type error.

use serde_json::{Map, Value};

/// A JSON object's fields.
pub(crate) type Fields = Map<String, Value>;

/// `k` read by `read` (which answers `None` for a value of the wrong type),
/// or its default when missing; `Err(k)` for a value of the wrong type.
pub(crate) fn get<T: Default>(o: &Fields, k: &'static str, read: fn(&Value) -> Option<T>) -> Result<T, &'static str> {
    match o.get(k) {
        None => Ok(T::default()),
        Some(v) => read(v).ok_or(k),
    }
}

pub(crate) fn int(v: &Value) -> Option<i64> {
    v.as_i64()
}

pub(crate) fn count(v: &Value) -> Option<u64> {
    v.as_u64()
}

pub(crate) fn small_count(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

pub(crate) fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

pub(crate) fn flag(v: &Value) -> Option<bool> {
    v.as_bool()
}

pub(crate) fn opt_int(v: &Value) -> Option<Option<i64>> {
    if v.is_null() {
        Some(None)
    } else {
        v.as_i64().map(Some)
    }
}

pub(crate) fn opt_text(v: &Value) -> Option<Option<String>> {
    match v {
        Value::Null => Some(None),
        Value::String(s) => Some(Some(s.clone())),
        _ => None,
    }
}

pub(crate) fn texts(v: &Value) -> Option<Vec<String>> {
    v.as_array()?.iter().map(|e| e.as_str().map(str::to_owned)).collect()
}

pub(crate) fn ints(v: &Value) -> Option<Vec<i64>> {
    v.as_array()?.iter().map(Value::as_i64).collect()
}

/// `k`, which the struct cannot be without, read by `read`.
pub(crate) fn need<T>(o: &Fields, k: &str, read: fn(&Value) -> Option<T>) -> Option<T> {
    o.get(k).and_then(read)
}

pub(crate) fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

pub(crate) fn status(v: &Value) -> Option<u16> {
    v.as_u64().and_then(|n| u16::try_from(n).ok())
}

/// An optional slot: `null` is none, an object is read by `read`.
pub(crate) fn slot<T>(v: &Value, read: fn(&Fields) -> Option<T>) -> Option<Option<T>> {
    match v {
        Value::Null => Some(None),
        Value::Object(o) => read(o).map(Some),
        _ => None,
    }
}

