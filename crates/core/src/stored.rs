//! Reading a stored JSON object, or one that crosses between a Durable
//! Object and the worker, field by field, over the `serde_json::Value`
//! reader every request body already goes through.
//!
//! Why by hand: serde's derive compiles a reader per struct, inlined into
//! its caller; for the token authority's state it was one 15.9 KB function
//! of the worker's wasm, and the derived readers of the Durable Object
//! wires, the limiter's state and the key record 11 KB of the gzipped wasm
//! together (BENCHMARKS.md, eighth session). Each
//! reader here is a plain function of a `Value`, shared by every field of
//! its type. Users: `token::decode` (the token state), `ledger` (the order
//! record), `errors::ApiError`, the wires in `wire` (authority, ledger,
//! limiter), the limiter's state (`limits::lease`) and the key record
//! (`keys::KeyRecord`). Each keeps the derive for its tests only, to hold
//! its reader to the derive's rules ([`agree`] runs that check):
//! - a missing field takes its default ([`get`]) or is an error when the
//!   struct has none ([`need`]); unknown fields are ignored;
//! - `null` is `None` for an `Option` and a type error for anything else;
//! - a value of the wrong type, an integer outside its type's range, or a
//!   float where an integer belongs is a type error.
//!
//! Two shapes plumgate never writes read differently: a repeated key (the
//! derive refuses it; here the last one wins), and an array where a struct
//! belongs (the derive reads it by position; here it is refused).

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

/// An `Option` read by `read`: `null` is `None`.
pub(crate) fn opt<T>(v: &Value, read: fn(&Value) -> Option<T>) -> Option<Option<T>> {
    if v.is_null() {
        Some(None)
    } else {
        read(v).map(Some)
    }
}

/// An array, each element read by `read`.
pub(crate) fn list<T>(v: &Value, read: fn(&Value) -> Option<T>) -> Option<Vec<T>> {
    v.as_array()?.iter().map(read).collect()
}

/// JSON text (bytes) that is an object, read by `read`; `None` for text
/// that is no JSON, no object, or that `read` refuses.
pub(crate) fn parse<T>(bytes: &[u8], read: fn(&Fields) -> Option<T>) -> Option<T> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    read(v.as_object()?)
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

/// A struct field: an object read by `read`.
pub(crate) fn object<T>(v: &Value, read: fn(&Fields) -> Option<T>) -> Option<T> {
    read(v.as_object()?)
}

/// The check every reader's test runs: on `full` (a text with every field
/// away from its default) and its variants, the reader gives what the
/// derive gives.
#[cfg(test)]
pub(crate) mod agree {
    use serde::{de::DeserializeOwned, Serialize};
    use serde_json::{json, Value};

    /// Values of every JSON kind, and numbers at each type's edges.
    fn odd_values() -> Vec<Value> {
        vec![
            json!(null), json!("x"), json!(""), json!(0), json!(1), json!(-1), json!(1.5), json!(2.0),
            json!(true), json!(false), json!([]), json!({}), json!(["a"]), json!([1]), json!([null]),
            json!(65_535), json!(65_536), json!(4_294_967_295_u64), json!(4_294_967_296_u64), json!(i64::MAX),
            json!(u64::MAX), json!(1e20),
        ]
    }

    /// `full`, `{}`, an object of a later version's field only, and for
    /// the object and each object at the JSON pointers `inner`: a later
    /// version's field added, and each field missing and set to each odd
    /// value. An array where a struct was is left out: the derive reads it
    /// by position (module doc).
    pub(crate) fn texts(full: &Value, inner: &[&str]) -> Vec<String> {
        let mut out = vec![full.to_string(), "{}".into(), json!({"newer_field": [1, {"a": 2}]}).to_string()];
        for at in std::iter::once("").chain(inner.iter().copied()) {
            let mut t = full.clone();
            t.pointer_mut(at).unwrap()["newer_field"] = json!(1);
            out.push(t.to_string());
            let keys: Vec<String> = full.pointer(at).and_then(Value::as_object).expect(at).keys().cloned().collect();
            for k in keys {
                let mut t = full.clone();
                t.pointer_mut(at).and_then(Value::as_object_mut).unwrap().remove(&k);
                out.push(t.to_string());
                let was_struct = full.pointer(at).unwrap()[&k].is_object();
                for v in odd_values().into_iter().filter(|v| !(was_struct && v.is_array())) {
                    let mut t = full.clone();
                    t.pointer_mut(at).unwrap()[&k] = v;
                    out.push(t.to_string());
                }
            }
        }
        out
    }

    /// How the derive reads `text`, as JSON (`None`: refused).
    pub(crate) fn derive<T: DeserializeOwned + Serialize>(text: &str) -> Option<Value> {
        crate::jsontext::from_text::<T>(text).ok().map(|t| serde_json::to_value(t).unwrap())
    }

    /// Assert that `by_hand` reads each text as [`derive`]`::<T>` does;
    /// `(read, refused)`, to show both outcomes were exercised.
    pub(crate) fn check<T: DeserializeOwned + Serialize>(texts: &[String], by_hand: impl Fn(&[u8]) -> Option<T>) -> (usize, usize) {
        let (mut read, mut refused) = (0, 0);
        for text in texts {
            let want = derive::<T>(text);
            assert_eq!(by_hand(text.as_bytes()).map(|t| serde_json::to_value(t).unwrap()), want, "{text}");
            if want.is_some() {
                read += 1;
            } else {
                refused += 1;
            }
        }
        (read, refused)
    }
}
