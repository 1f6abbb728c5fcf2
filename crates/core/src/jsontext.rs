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
//! It also owns the one way JSON text is read ([`from_text`]; for an
//! answer of Xoxoday's that may hold half an emoji, [`upstream_value`]): through
//! `serde_json::from_slice`, never `from_str`. serde_json compiles its
//! deserializer once per reader type for every type read, so text read
//! with `from_str` beside bytes read with `from_slice` put a second copy of
//! each in the wasm (14 KB raw, 4.7 KB gzip). `clippy.toml` disallows
//! `serde_json::from_str` outside tests.
//!
//! The one way a `Value` is written as text is [`to_text`]: `Value`'s
//! `Display` (`v.to_string()`, `format!("{v}")`) brings its own compact and
//! pretty writers over a `fmt` adapter, beside the `Vec` writer every
//! `serde_json::to_string` already uses (4.2 KB raw, 1.4 KB gzip).
//!
//! And the one way a number written as text is read ([`number_from_text`]):
//! through the same reader, not `str::parse::<f64>`, whose float parser
//! would add its own code and power-of-five tables to the wasm (14 KB gzip).
//! A whole number written as text is read by [`int_from_text`], over
//! `u64`'s parser, not `str::parse::<i64>` (a second integer parser).

use crate::ops::canonical::write_string;
use serde::de::DeserializeOwned;

/// Read JSON `text` as a `T` (the bytes reader every JSON read shares; see
/// the module doc). The same result and errors as `serde_json::from_str`.
pub fn from_text<T: DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    serde_json::from_slice(text.as_bytes())
}

/// A request body read as JSON: [`from_text`]'s
/// reader, after one leading UTF-8 byte order mark, which some callers'
/// libraries write (.NET's `Encoding.UTF8`, PowerShell, Windows editors)
/// and Node's usual body parser skips. Everything else is as strict as
/// `serde_json`.
pub fn request_json<T: DeserializeOwned>(body: &[u8]) -> serde_json::Result<T> {
    serde_json::from_slice(body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body))
}

/// An answer of Xoxoday's read as a `Value`, one whose strings hold a UTF-16
/// surrogate escape without its pair included (`"\ud83c"`: what
/// JavaScript's `JSON.stringify` writes for a string cut mid-emoji, such as
/// a product name cut to a column's width). serde_json refuses such an
/// escape, though Xoxoday's success check reads past it; so a placed
/// order's details were unreadable, and a lost answer's order never
/// reconciled. When the plain read fails, every surrogate escape is read as
/// U+FFFD, the replacement character (pairs too: the text then says less,
/// and only there), and so is every byte sequence that is not UTF-8; any
/// other fault still fails.
pub fn upstream_value(body: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(body).ok().or_else(|| {
        // Bytes that are not UTF-8 (a name cut inside a character's bytes
        // by a writer that cuts bytes) are read as U+FFFD too.
        let mut text = String::from_utf8_lossy(body).into_owned().into_bytes();
        let mut i = 0;
        while i + 5 < text.len() {
            if text[i] == b'\\' {
                let e = &mut text[i + 1..i + 6];
                if e[0] == b'u' && e[1] | 0x20 == b'd' && matches!(e[2], b'8' | b'9' | b'a'..=b'f' | b'A'..=b'F') && e[3].is_ascii_hexdigit() && e[4].is_ascii_hexdigit() {
                    e.copy_from_slice(b"ufffd");
                }
                i += 1;
            }
            i += 1;
        }
        serde_json::from_slice(&text).ok()
    })
}

/// The first JSON value of a token endpoint's answer (a refresh, a token
/// check), after one byte order mark, whatever follows it (a newline and a
/// proxy's comment, a second copy): a rotation that happened upstream must
/// be read, not lost as an unreadable answer. `None` when no whole value
/// leads the body.
pub fn leading_json(body: &[u8]) -> Option<serde_json::Value> {
    let mut de = serde_json::Deserializer::from_slice(body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body));
    serde::Deserialize::deserialize(&mut de).ok()
}

/// A token endpoint's answer as its readers take it (the refresh, the
/// penalty scan, the token check): when the body is not plain JSON but
/// starts with a JSON value ([`leading_json`]: after a byte order mark,
/// before a proxy's tail), that value written out plainly; else the body
/// itself. One body, so one reading: a penalty or a refusal is seen
/// wherever the rotation is.
pub fn token_answer(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match leading_json(body) {
        Some(v) if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() => to_text(&v).into_bytes().into(),
        _ => body.into(),
    }
}

/// Does an object in JSON `text`, read as `read`, name a member twice?
/// serde_json keeps the last silently; where a repeat could widen what a
/// setting grants (`GATEWAY_KEYS` with a second `scopes` or `limits`,
/// `XOXODAY_RATE_LIMITS` with an operation twice, an admin request's body:
/// `keys::admin_body`), it is refused instead.
/// The text then names more members than the value holds: every string
/// followed by `:` is a member's name. Names are compared as serde_json
/// reads them (`"a"` and `"\u0061"` are one name).
pub fn repeats_a_member(text: &[u8], read: &serde_json::Value) -> bool {
    fn held(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::Object(m) => m.values().map(held).sum::<usize>() + m.len(),
            serde_json::Value::Array(a) => a.iter().map(held).sum(),
            _ => 0,
        }
    }
    let mut named = 0;
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        i += 1;
        if b == b'"' {
            while let Some(&c) = text.get(i) {
                i += if c == b'\\' { 2 } else { 1 };
                if c == b'"' {
                    break;
                }
            }
            let mut next = i;
            while text.get(next).is_some_and(u8::is_ascii_whitespace) {
                next += 1;
            }
            named += usize::from(text.get(next) == Some(&b':'));
        }
    }
    named > held(read)
}

/// `v` as compact JSON text: what `v.to_string()` gives, through the
/// writer `serde_json::to_string` shares (see the module doc).
pub fn to_text(v: &serde_json::Value) -> String {
    // Writing a `Value` cannot fail: its keys are strings.
    serde_json::to_string(v).unwrap_or_default()
}

/// [`to_text`] appended to `out` (the upstream envelope writes its `data`
/// in place), through the same writer.
pub fn write_text(v: &serde_json::Value, out: &mut String) {
    let mut bytes = std::mem::take(out).into_bytes();
    // Writing a `Value` to a `Vec` cannot fail, and serde_json writes UTF-8.
    let _ = serde_json::to_writer(&mut bytes, v);
    *out = String::from_utf8(bytes).unwrap_or_default();
}

/// A number written as text (`"950.50"`, `" -12 "`, `"1e3"`, `"025"`,
/// `".5"`, `"5."`, `"+7"`): the texts `str::parse::<f64>` reads, apart from
/// `inf` and `NaN`, read through [`from_text`] once it is a JSON number
/// (no leading zeros, no bare dot, no `+`). `None` for anything else and for
/// a value beyond `f64`. The value is the one the same number gets in a JSON
/// body (serde_json's reader, without its `float_roundtrip` feature): for
/// texts with more significant digits than an `f64` holds (past ~17, such
/// as `"9007199254740993.0"`) it can be 1 ulp from `str::parse`'s; amounts
/// with a few decimals read the same. It is read as a `Value`, not as an `f64`: the typed
/// read was the wasm's only one that could meet a string where a number
/// belongs, and its error text (`invalid type: string "…"`, through
/// `str`'s `Debug` with its Unicode tables) cost 5.4 KB of the gzipped wasm.
/// Both give the same number: serde_json parses it the same way, and
/// `as_f64` converts an integer as the `f64` reader does.
pub fn number_from_text(s: &str) -> Option<f64> {
    let s = s.trim();
    let (negative, unsigned) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exponent) = match unsigned.bytes().position(|b| b == b'e' || b == b'E') {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (int, frac) = crate::text::split_once(mantissa, ".").unwrap_or((mantissa, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return None;
    }
    let mut json = String::with_capacity(s.len() + 2);
    if negative {
        json.push('-');
    }
    let int = crate::text::trim_start(int, b'0');
    json.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        json.push('.');
        json.push_str(frac);
    }
    if let Some(e) = exponent {
        let e_digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        if e_digits.is_empty() || !digits(e_digits) {
            return None;
        }
        json.push('e');
        json.push_str(e);
    }
    from_text::<serde_json::Value>(&json).ok().and_then(|v| v.as_f64()).filter(|f| f.is_finite())
}

/// `s.parse::<i64>().ok()` (an optional sign, then decimal digits), read
/// with `u64`'s parser: the wasm then holds one integer parser, not two.
pub fn int_from_text(s: &str) -> Option<i64> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    // `u64`'s parser takes a `+` of its own: one sign at most.
    if digits.starts_with('+') {
        return None;
    }
    let n = digits.parse::<u64>().ok()?;
    if negative {
        0i64.checked_sub_unsigned(n)
    } else {
        i64::try_from(n).ok()
    }
}

/// `n` in decimal, appended to `out`: what its `Display` writes, without
/// the formatting machinery (every log line and error answer writes a few).
pub(crate) fn push_int(out: &mut String, n: i128) {
    if n < 0 {
        out.push('-');
    }
    // Every field's type is at most 64 bits wide, so its magnitude fits.
    push_digits(out, u64::try_from(n.unsigned_abs()).unwrap_or(u64::MAX), 1);
}

/// `n` in decimal with at least `width` digits (zeros in front), appended
/// to `out`: `format!("{n:0width$}")`, the zeros up to 20 digits.
pub(crate) fn push_digits(out: &mut String, mut n: u64, width: usize) {
    // u64::MAX has 20 digits.
    let mut buf = [b'0'; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        // A digit: below 10, so the cast is exact.
        #[allow(clippy::cast_possible_truncation)]
        let digit = (n % 10) as u8;
        buf[at] = b'0' + digit;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    at = at.min(buf.len().saturating_sub(width));
    for &b in &buf[at..] {
        out.push(char::from(b));
    }
}

/// A JSON object being written; fields appear in the order added.
pub(crate) struct Object(String);

impl Object {
    /// `{`.
    pub(crate) fn new() -> Self {
        Object::with_capacity(64)
    }

    /// `{`, with room for `bytes` of text before the buffer grows (the
    /// request log line knows its usual length).
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        let mut text = String::with_capacity(bytes);
        text.push('{');
        Object(text)
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

    /// A string field, or `null` for `None`.
    pub(crate) fn opt_str(mut self, key: &str, value: Option<&str>) -> Self {
        self.key(key);
        match value {
            Some(v) => write_string(v, &mut self.0),
            None => self.0.push_str("null"),
        }
        self
    }

    /// An integer field.
    pub(crate) fn num(mut self, key: &str, value: impl Into<i128>) -> Self {
        self.key(key);
        push_int(&mut self.0, value.into());
        self
    }

    /// An integer field, or `null` for `None`.
    pub(crate) fn opt_num(self, key: &str, value: Option<impl Into<i128>>) -> Self {
        match value {
            Some(v) => self.num(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// A field whose value `write` appends as JSON text.
    pub(crate) fn with(mut self, key: &str, write: impl FnOnce(&mut String)) -> Self {
        self.key(key);
        write(&mut self.0);
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

/// JSON texts as one JSON array: `[`, `items` joined by `,`, `]` (one
/// `format!` for every list the wires and answers write).
pub(crate) fn array(items: &[String]) -> String {
    format!("[{}]", items.join(","))
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
    use super::{int_from_text, number_from_text, push_digits, push_int, quote, quote_or_null, repeats_a_member, request_json, to_text, upstream_value, Object};
    use serde_json::{json, Value};

    #[test]
    fn an_answer_with_a_lone_surrogate_escape_is_read_with_replacement_characters() {
        // What serde_json refuses: a leading or a trailing surrogate alone.
        for lone in [r#"{"name":"Gift \ud83c","id":7}"#, r#"{"name":"\uDC00x","id":7}"#, r#"{"name":"\uDbFf","id":7}"#] {
            assert!(serde_json::from_slice::<Value>(lone.as_bytes()).is_err(), "{lone}");
            let v = upstream_value(lone.as_bytes()).unwrap();
            assert_eq!(v["id"], 7, "{lone}");
            assert!(v["name"].as_str().unwrap().contains('\u{fffd}'), "{lone}");
        }
        // Then every surrogate escape is read so, a pair's too; an escaped
        // backslash before `u` is text, not an escape, and stays.
        // Escapes just below the surrogates (Hangul, `\ud55c`) are letters.
        let mixed = r#"{"a":"\ud83c\udf81","b":"\ud83c","c":"\\ud83c","d":"\u00e9\\","e":"\ud55c\uD7FF"}"#;
        assert_eq!(upstream_value(mixed.as_bytes()).unwrap(), json!({"a":"\u{fffd}\u{fffd}","b":"\u{fffd}","c":"\\ud83c","d":"é\\","e":"\u{d55c}\u{d7ff}"}));
        // A name cut inside a character's UTF-8 bytes (serde_json refuses
        // those too, though the success check reads past them).
        let bytes = b"{\"name\":\"Gift \xF0\x9F\",\"id\":7}";
        assert!(serde_json::from_slice::<Value>(bytes).is_err());
        assert_eq!(upstream_value(bytes).unwrap(), json!({"name":"Gift \u{fffd}","id":7}));
        // An answer serde_json reads is read as it is: the pair is an emoji.
        assert_eq!(upstream_value(r#"{"a":"\ud83c\udf81 \u00e9"}"#.as_bytes()).unwrap(), json!({"a":"🎁 é"}));
        // Anything else wrong still fails: a surrogate escape with a
        // non-hex digit, one cut short at the end, a body that is no JSON.
        for bad in [r#"{"a":"\ud8zz","b":"\ud83c"}"#, r#"{"a":"\ud8az","b":"\ud83c"}"#, r#"{"a":"\ud8z0","b":"\ud83c"}"#, r#"{"a":"\ud83c"#, r#"{"a":"\ud83"#, r"<html>\ud83c</html>", ""] {
            assert_eq!(upstream_value(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn a_member_named_twice_in_one_object_is_found() {
        for (text, repeats) in [
            (r#"{"a":1,"a":2}"#, true),
            (r#"[{"id":"x","scopes":["catalog"],"scopes":["*"]}]"#, true),
            (r#"{"a" : 1, "b": {"a": 1, "c": [1, {"a": 2}]}, "c": 1}"#, false),
            (r#"{"a":{"b":1},"b":1}"#, false),
            (r#"{"a":{"b":1,"b":2}}"#, true),
            (r#"[{"a":1},{"a":2}]"#, false),
            (r#"{"a":"a","b":["a","a"]}"#, false),
            (r#"{"x\"y":1,"x\"y" :2}"#, true),
            (r#"{"x\\":1,"x":2}"#, false),
            (r#"{"k":"{\"k\":1}","l":{"k":1}}"#, false),
            (r#"{"a":1,"\u0061":2}"#, true),
            (r#"{"getBalance":10,"getBalance":1000}"#, true),
            (r#"["{\"a\":1,\"a\":2}", "x"]"#, false),
            (r#"{"a":[],"b":{},"c":{"a":"b:c"}}"#, false),
        ] {
            let read: Value = serde_json::from_slice(text.as_bytes()).unwrap();
            assert_eq!(repeats_a_member(text.as_bytes(), &read), repeats, "{text}");
        }
    }

    #[test]
    fn request_json_skips_one_byte_order_mark() {
        let v: Value = request_json(b"\xEF\xBB\xBF{\"a\":1}").unwrap();
        assert_eq!(v, json!({"a": 1}));
        assert_eq!(request_json::<Value>(b" [1] ").unwrap(), json!([1]));
        for bad in [&b"\xEF\xBB\xBF\xEF\xBB\xBF{}"[..], b"{}\xEF\xBB\xBF", b"\xEF\xBB{}", b"", b"\xEF\xBB\xBF"] {
            assert!(request_json::<Value>(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn to_text_writes_what_display_writes() {
        for v in [
            json!(null), json!(true), json!(-0.0), json!(1.5e300), json!(u64::MAX), json!("a\"\\\u{1}é"),
            json!([]), json!({}), json!({"b": [1, {"a": null}], "a": "x"}),
        ] {
            assert_eq!(to_text(&v), v.to_string());
        }
    }

    #[test]
    fn whole_numbers_in_text_read_as_str_parse_reads_them() {
        for t in [
            "0", "-0", "+0", "7", "-7", "+7", "007", "-007", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
            "-9223372036854775809", "18446744073709551615", "18446744073709551616", "", "+", "-", "+-1", "-+1", "++1", "--1", " 1",
            "1 ", "0x1", "1.0", "1e3", "١", "99999999999999999999999",
        ] {
            assert_eq!(int_from_text(t), t.parse::<i64>().ok(), "{t:?}");
        }
    }

    #[test]
    fn numbers_in_text_read_as_str_parse_reads_them() {
        let cases = [
            "950.50", " 950 ", "-12.25", "+7", "025", "0", "-0", ".5", "5.", "-.5", "1e3", "1E-2", "2.5e+2", "0.1",
            "123456789.123456789", "9007199254740993", "1e308", "18446744073709551615", "18446744073709551616",
            "-9223372036854775808", "-9223372036854775809", "4.9e-324", "1e-400", "-0.0",
        ];
        for t in cases {
            assert_eq!(number_from_text(t), t.trim().parse::<f64>().ok(), "{t:?}");
            let sign = number_from_text(t).map(f64::is_sign_negative);
            assert_eq!(sign, t.trim().parse::<f64>().ok().map(f64::is_sign_negative), "{t:?}");
        }
        for t in ["", " ", ".", "-", "+", "e5", "1e", "1e+", "1.2.3", "1,000", "--1", "+-1", "0x10", "inf", "NaN", "1e400", "١٢"] {
            assert_eq!(number_from_text(t), None, "{t:?}");
        }
    }

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

    /// Integers as their `Display` writes them, at every width's ends.
    #[test]
    fn integers_are_written_as_display_writes_them() {
        let mut cases: Vec<i128> = vec![0, 1, -1, 9, 10, -10, 99, 100, 429, i128::from(u16::MAX)];
        cases.extend([i64::MIN, i64::MIN + 1, -1_000_000_007, i64::MAX].map(i128::from));
        cases.extend([u64::MAX, u64::MAX - 1, 10_000_000_000_000_000_000].map(i128::from));
        let mut n = 1i128;
        while n < i128::from(u64::MAX) / 7 {
            cases.extend([n, -n, n * 7 + 3]);
            n *= 10;
        }
        for n in cases {
            let mut out = String::new();
            push_int(&mut out, n);
            assert_eq!(out, n.to_string());
            assert_eq!(Object::new().num("n", n).finish(), format!("{{\"n\":{n}}}"));
        }
        for (n, width, want) in [(0, 1, "0"), (0, 3, "000"), (7, 2, "07"), (123, 2, "123"), (5, 4, "0005")] {
            let mut out = String::new();
            push_digits(&mut out, n, width);
            assert_eq!(out, want);
        }
        let mut out = String::new();
        push_digits(&mut out, u64::MAX, 25);
        assert_eq!(out, u64::MAX.to_string(), "zeros in front go to 20 digits at most");
        assert_eq!(Object::new().opt_num("a", Some(3u16)).opt_num("b", None::<u16>).opt_str("c", None).finish(), r#"{"a":3,"b":null,"c":null}"#);
    }
}
