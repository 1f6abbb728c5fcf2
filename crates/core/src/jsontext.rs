//! Small JSON objects written straight into text.
//!
//! The answers plumgate makes itself on every error path (error bodies, the
//! drop-in token answers) are a handful of string and number fields. Writing
//! them with `serde_json::json!` or a `Serialize` struct compiles a tree
//! builder or a serializer per shape into the worker; this writes the text
//! directly with the one string escaper the fingerprints already use
//! (`ops::canonical`), which keeps the wasm inside its size budget. The host
//! tests compare every text with the `Value` it stands for.
//!
//! It also owns the one way JSON text is read ([`from_text`]): through
//! `serde_json::from_slice`, never `from_str`. serde_json compiles its
//! deserializer once per reader type for every type read, so text read
//! with `from_str` beside bytes read with `from_slice` put a second copy of
//! each in the wasm (14 KB raw, 4.7 KB gzip). `clippy.toml` disallows
//! `serde_json::from_str` outside tests.

use crate::ops::canonical::write_string;
use serde::de::DeserializeOwned;
use std::fmt::{Display, Write};

/// Read JSON `text` as a `T` (the bytes reader every JSON read shares; see
/// the module doc). The same result and errors as `serde_json::from_str`.
pub fn from_text<T: DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    serde_json::from_slice(text.as_bytes())
}

/// A JSON object being written; fields appear in the order added.
pub(crate) struct Object(String);

impl Object {
    /// `{`.
    pub(crate) fn new() -> Self {
        Object(String::from("{"))
    }

    fn key(&mut self, key: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        write_string(key, &mut self.0);
        self.0.push(':');
    }

    /// A string field.
    pub(crate) fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        write_string(value, &mut self.0);
        self
    }

    /// A number field (an integer type's `Display` is its JSON text).
    pub(crate) fn num(mut self, key: &str, value: impl Display) -> Self {
        self.key(key);
        // Writing to a String cannot fail.
        let _ = write!(self.0, "{value}");
        self
    }

    /// A field whose value is JSON text already.
    pub(crate) fn raw(mut self, key: &str, json: &str) -> Self {
        self.key(key);
        self.0.push_str(json);
        self
    }

    /// `}`: the text.
    pub(crate) fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// A JSON string literal of `s`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_string(s, &mut out);
    out
}

/// A JSON string literal of `s`, or `null`.
pub(crate) fn quote_or_null(s: Option<&str>) -> String {
    s.map_or_else(|| "null".to_owned(), quote)
}

#[cfg(test)]
mod tests {
    use super::{quote, quote_or_null, Object};
    use serde_json::{json, Value};

    #[test]
    fn writes_valid_json() {
        let text = Object::new()
            .str("s", "quote\" backslash\\ nl\n ctl\u{1} é")
            .num("n", 429u16)
            .num("i", -5i64)
            .raw("o", &Object::new().str("k", "v").finish())
            .raw("a", "[1,2]")
            .finish();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v, json!({"s": "quote\" backslash\\ nl\n ctl\u{1} é", "n": 429, "i": -5, "o": {"k": "v"}, "a": [1, 2]}));
        assert_eq!(Object::new().finish(), "{}");
        assert_eq!(serde_json::from_str::<Value>(&quote("a\"\n")).unwrap(), json!("a\"\n"));
        assert_eq!((quote_or_null(None), quote_or_null(Some("x"))), ("null".to_owned(), "\"x\"".to_owned()));
    }
}
