//! Canonical JSON for fingerprints.
//!
//! Written by hand rather than with `serde_json::to_string`: whether
//! `serde_json::Map` keeps keys sorted depends on the `preserve_order`
//! feature, which any crate in the build can switch on through feature
//! unification, and a fingerprint must not change because a dependency did.
//!
//! Rules: object keys sorted by their UTF-8 bytes at every depth; no
//! whitespace; strings escaped the way JSON requires (`"`, `\`, control
//! characters) and nothing else; a number with an integral value below 2^53
//! written as an integer (`10.0` → `10`, `-0.0` → `0`), any other number as
//! serde_json writes it (shortest round-trip form).

use serde_json::{Number, Value};
use std::fmt::Write;

/// Largest magnitude at which every integer is exactly representable in an
/// `f64`; above it a float's integral value is not meaningful as an integer.
const F64_EXACT_INT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// `value` as canonical JSON text.
pub(super) fn to_canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            sort_by_key_bytes(&mut entries);
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_value(item, out);
            }
            out.push('}');
        }
    }
}

/// Insertion sort of an object's entries by their keys' bytes. serde_json's
/// map already yields its keys in this order unless `preserve_order` is on,
/// so this is one pass over them; with that feature it is quadratic in the
/// keys of one object, which the body limit bounds. `sort_unstable_by` was
/// 3 KB of wasm for this one call.
fn sort_by_key_bytes(entries: &mut [(&String, &Value)]) {
    for i in 1..entries.len() {
        let mut j = i;
        while j > 0 && entries[j - 1].0.as_bytes() > entries[j].0.as_bytes() {
            entries.swap(j - 1, j);
            j -= 1;
        }
    }
}

fn write_number(n: &Number, out: &mut String) {
    // Writing to a String cannot fail, so the fmt::Results are ignored.
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else {
        match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < F64_EXACT_INT_LIMIT => {
                // Exact: |f| < 2^53 and integral, so the cast loses nothing.
                #[allow(clippy::cast_possible_truncation)]
                let i = f as i64;
                let _ = write!(out, "{i}");
            }
            _ => {
                let _ = write!(out, "{n}");
            }
        }
    }
}

/// `s` as a JSON string (quoted, escaped as JSON requires) appended to
/// `out`. Also how `jsontext` writes strings.
pub(crate) fn write_string(s: &str, out: &mut String) {
    out.push('"');
    // Runs of characters that need no escape are copied whole; the ones
    // that do (`"`, `\`, controls) are ASCII, so a run always ends on a
    // character boundary.
    let mut run = 0;
    for (at, b) in s.bytes().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.push_str(&s[run..at]);
        run = at + 1;
        let short = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x08 => Some("\\b"),
            0x0C => Some("\\f"),
            _ => None,
        };
        match short {
            Some(escape) => out.push_str(escape),
            None => {
                // Another control character: `\u00XX` in lowercase hex, as
                // serde_json writes it.
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
    }
    out.push_str(&s[run..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::{sort_by_key_bytes, to_canonical_json};
    use serde_json::{json, Value};

    /// A float with an integral value is written as an integer below 2^53
    /// only (the module's rule); from 2^53 on as serde_json writes it. A
    /// stored order's fingerprint depends on the line.
    #[test]
    fn integral_floats_are_integers_below_2_pow_53_only() {
        assert_eq!(to_canonical_json(&json!(9_007_199_254_740_991.0)), "9007199254740991");
        assert_eq!(to_canonical_json(&json!(-9_007_199_254_740_991.0)), "-9007199254740991");
        assert_eq!(to_canonical_json(&json!(9_007_199_254_740_992.0)), "9007199254740992.0");
        assert_eq!(to_canonical_json(&json!(-9_007_199_254_740_992.0)), "-9007199254740992.0");
    }

    /// serde_json's map hands the entries over sorted in this build, so the
    /// sort is tested on its own, on every order of five keys.
    #[test]
    fn entries_are_sorted_by_their_keys_bytes_from_any_order() {
        let keys: Vec<String> = ["b", "a", "Z", "é", "aa"].iter().map(|k| (*k).to_string()).collect();
        let v = Value::Null;
        let mut want: Vec<&str> = keys.iter().map(String::as_str).collect();
        want.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut order: Vec<usize> = (0..keys.len()).collect();
        let mut seen = 0;
        // Heap's algorithm: all 120 orders.
        let mut c = vec![0; order.len()];
        let mut check = |order: &[usize]| {
            let mut entries: Vec<(&String, &Value)> = order.iter().map(|&i| (&keys[i], &v)).collect();
            sort_by_key_bytes(&mut entries);
            let got: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
            assert_eq!(got, want, "from {order:?}");
            seen += 1;
        };
        check(&order);
        let mut i = 0;
        while i < order.len() {
            if c[i] < i {
                order.swap(if i % 2 == 0 { 0 } else { c[i] }, i);
                check(&order);
                c[i] += 1;
                i = 0;
            } else {
                c[i] = 0;
                i += 1;
            }
        }
        assert_eq!(seen, 120);
    }
}
