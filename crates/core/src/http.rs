//! An outgoing HTTP request, built without I/O.
//!
//! The core builds every request plumgate makes to Xoxoday (the refresh and
//! the token check in `token`, a Plum API call in `upstream`) as an
//! [`HttpRequest`]; the shell's only job is to send it (`runtime::net` in
//! the worker crate: a timeout, no redirects) and hand what came back (an
//! [`HttpAnswer`], or [`NoAnswer`] and why) to the core's readers. So what
//! goes on the wire, and what each outcome means, is tested on the host.
//! [`HeaderList`] and [`header_lines`] hold and write the headers the shell
//! hands to the runtime in one call; [`RequestHead`] reads the incoming
//! request's method, URL and headers the runtime hands over in one call.

use std::borrow::Cow;

/// An HTTP request to make. `Debug` hides header values, the body and the
/// URL's path and query: they carry the bearer, the client secret, the
/// refresh token, or (the alert webhook's URL) a credential of their own.
#[derive(Clone)]
pub struct HttpRequest {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Absolute URL.
    pub url: String,
    /// Headers to send.
    pub headers: Vec<(&'static str, String)>,
    /// JSON body.
    pub body: Option<String>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &origin_of(&self.url))
            .field("headers", &self.headers.iter().map(|(k, _)| *k).collect::<Vec<_>>())
            .field("body", &self.body.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// `scheme://host[:port]` of `url`, with `/…` when more follows.
fn origin_of(url: &str) -> String {
    let start = crate::text::find(url.as_bytes(), b"://").map_or(0, |i| i + 3);
    match url[start..].bytes().position(|b| matches!(b, b'/' | b'?' | b'#')) {
        Some(end) => format!("{}/…", &url[..start + end]),
        None => url.to_string(),
    }
}

/// An answer: status, body and the `Retry-After` header when present.
#[derive(Clone)]
pub struct HttpAnswer {
    /// HTTP status.
    pub status: u16,
    /// Raw body.
    pub body: Vec<u8>,
    /// `Retry-After`, read only when the answer can be a rate-limit one
    /// (`upstream::may_be_rate_limit`): no other reading uses it.
    pub retry_after: Option<String>,
}

/// Why no answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoAnswer {
    /// No answer within the timeout (the request was aborted).
    Timeout,
    /// Connection or protocol failure, or an unreadable body.
    Transport,
}

/// Headers in the form the shell hands them to the runtime in one call:
/// `"name\nvalue\n"` per header (the worker's `runtime/glue.js` splits it).
/// `None` when a name or value holds a line break or NUL: the runtime
/// refuses such a header, and here it would shift the lines after it.
pub fn header_lines<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> Option<String> {
    let mut len = 0;
    for (name, value) in headers.clone() {
        if !header_fits(name, value) {
            return None;
        }
        len += name.len() + value.len() + 2;
    }
    let mut out = String::with_capacity(len);
    for (name, value) in headers {
        out.push_str(name);
        out.push('\n');
        out.push_str(value);
        out.push('\n');
    }
    Some(out)
}

/// A name and value the runtime takes: a name, and neither holding a line
/// break or NUL. (Byte by byte: a bearer is hundreds of bytes, and this
/// runs on every call; a `char` search measured ~1 µs per call.)
fn header_fits(name: &str, value: &str) -> bool {
    !name.is_empty() && !name.bytes().chain(value.bytes()).any(|b| matches!(b, b'\n' | b'\r' | 0))
}

/// The headers of a response plumgate builds, held in wasm memory until
/// the shell hands them over ([`header_lines`]). `set` replaces a header of
/// the same name (compared without case, as HTTP names are) and leaves out
/// one the runtime would refuse (a line break or NUL, an empty name), as a
/// refused `Headers.set` would. No `Debug`: nothing here is secret today,
/// but the type is one `set` away from holding something that is.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HeaderList(Vec<(Cow<'static, str>, String)>);

impl HeaderList {
    /// Set `name` to `value`, replacing an earlier value.
    pub fn set(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) {
        self.put(name.into(), value.into());
    }

    /// [`set`](Self::set) once the two are converted: one copy of this in
    /// the wasm, not one per pair of argument types.
    fn put(&mut self, name: Cow<'static, str>, value: String) {
        if !header_fits(&name, &value) {
            return;
        }
        match self.0.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(&name)) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// The value of `name`, `None` when absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every header, in the order first set.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.0.iter().map(|(k, v)| (&**k, v.as_str()))
    }

    /// The headers as [`header_lines`] writes them (every one fits: `set`
    /// left out the rest).
    pub fn lines(&self) -> String {
        header_lines(self.iter()).unwrap_or_default()
    }
}

/// The request headers plumgate reads, one per line: the runtime's glue
/// reports each of them for every incoming request, in this order, with the
/// method and the URL ([`RequestHead`]). These are the ones an operation
/// call reads; a name added here is read on every request, and a header not
/// listed (the drop-in token route's `content-type`, the Durable Objects'
/// own) is still read, with a call of its own.
pub const REQUEST_HEADERS: &str = "authorization\ncache-control\ncontent-length\norigin";

/// How many names [`REQUEST_HEADERS`] lists (counted from it, so the two
/// cannot disagree).
const HEAD_COUNT: usize = {
    let text = REQUEST_HEADERS.as_bytes();
    let mut count = 1;
    let mut at = 0;
    while at < text.len() {
        if text[at] == b'\n' {
            count += 1;
        }
        at += 1;
    }
    count
};

/// An incoming request's method, URL and [`REQUEST_HEADERS`], from the one
/// string the runtime's glue writes: `METHOD\nURL\n`, then per name, in
/// order, `=value\n` when the request has it and `-\n` when it has not.
/// (The runtime refuses a line break in a method, a serialized URL, or a
/// header value, so a line is always one field.) Kept as the string and
/// the places of its fields: no copy per header.
pub struct RequestHead {
    text: String,
    method: (usize, usize),
    url: (usize, usize),
    headers: [Option<(usize, usize)>; HEAD_COUNT],
}

impl RequestHead {
    /// Read `text`; `None` when it is not in that form (a field missing or
    /// one too many, or a header line that is neither form).
    pub fn parse(text: String) -> Option<Self> {
        let mut lines = Vec::with_capacity(HEAD_COUNT + 2);
        let mut at = 0;
        while at < text.len() {
            let end = at + memchr::memchr(b'\n', &text.as_bytes()[at..])?;
            lines.push((at, end));
            at = end + 1;
        }
        if lines.len() != HEAD_COUNT + 2 {
            return None;
        }
        let mut headers = [None; HEAD_COUNT];
        for (slot, &(start, end)) in headers.iter_mut().zip(&lines[2..]) {
            *slot = match &text[start..end] {
                "-" => None,
                line if line.starts_with('=') => Some((start + 1, end)),
                _ => return None,
            };
        }
        Some(RequestHead { method: lines[0], url: lines[1], headers, text })
    }

    /// The method, exactly as sent.
    pub fn method(&self) -> &str {
        &self.text[self.method.0..self.method.1]
    }

    /// The URL, as the runtime serialized it.
    pub fn url(&self) -> &str {
        &self.text[self.url.0..self.url.1]
    }

    /// Header `name` (lowercase): `Some(None)` when the request has no such
    /// header, `None` when `name` is not one of [`REQUEST_HEADERS`].
    pub fn header(&self, name: &str) -> Option<Option<&str>> {
        let i = crate::text::split(REQUEST_HEADERS, "\n").position(|n| n == name)?;
        Some(self.headers[i].map(|(start, end)| &self.text[start..end]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_head_reads_each_field_and_refuses_other_shapes() {
        assert_eq!(REQUEST_HEADERS.split('\n').count(), HEAD_COUNT);
        let text = "POST\nhttp://gw/v1/ops/getBalance?x=1\n=Bearer k\n-\n=\n=https://a.example\n";
        let h = RequestHead::parse(text.into()).unwrap();
        assert_eq!(h.method(), "POST");
        assert_eq!(h.url(), "http://gw/v1/ops/getBalance?x=1");
        assert_eq!(h.header("authorization"), Some(Some("Bearer k")));
        assert_eq!(h.header("cache-control"), Some(None), "absent");
        assert_eq!(h.header("content-length"), Some(Some("")), "present and empty is not absent");
        assert_eq!(h.header("origin"), Some(Some("https://a.example")));
        assert_eq!(h.header("content-type"), None, "not a name the glue reports");
        assert_eq!(h.header("Origin"), None, "names are lowercase");
        for bad in [
            "",
            "POST\nhttp://gw/\n-\n-\n-\n",            // a header short
            "POST\nhttp://gw/\n-\n-\n-\n-\n-\n",      // one too many
            "POST\nhttp://gw/\n-\n-\n-\n-",             // no final line break
            "POST\nhttp://gw/\n-\nvalue\n-\n-\n",      // neither `=` nor `-`
        ] {
            assert!(RequestHead::parse(bad.into()).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn header_lines_name_value_per_line_and_refuse_breaks() {
        assert_eq!(header_lines([("a", "1"), ("content-type", "application/json")]).as_deref(), Some("a\n1\ncontent-type\napplication/json\n"));
        assert_eq!(header_lines([]).as_deref(), Some(""));
        assert_eq!(header_lines([("a", "")]).as_deref(), Some("a\n\n"), "an empty value is a value");
        for bad in [("a", "1\nb"), ("a", "1\r"), ("a", "\0"), ("a\nb", "1"), ("", "1")] {
            assert_eq!(header_lines([("ok", "1"), bad]), None, "{bad:?}");
        }
    }

    #[test]
    fn header_list_sets_replaces_and_leaves_out_what_the_runtime_refuses() {
        let mut h = HeaderList::default();
        h.set("content-type", "text/plain");
        h.set("x-request-id", String::from("r1"));
        h.set("Content-Type", "application/json");
        assert_eq!(h.get("CONTENT-TYPE"), Some("application/json"));
        assert_eq!(h.iter().collect::<Vec<_>>(), vec![("content-type", "application/json"), ("x-request-id", "r1")]);
        h.set("x-injected", "a\nset-cookie\nb");
        h.set("x-cr", "a\rb");
        h.set("", "v");
        h.set("x-request-id", "r2\n");
        assert_eq!(h.get("x-injected"), None);
        assert_eq!(h.get("x-request-id"), Some("r1"), "a refused value does not replace the one set");
        assert_eq!(h.lines(), "content-type\napplication/json\nx-request-id\nr1\n");
        assert_eq!(h.get("absent"), None);
    }

    #[test]
    fn debug_hides_values_and_body() {
        let r = HttpRequest {
            method: "POST",
            url: "https://x/v1/oauth/api".into(),
            headers: vec![("authorization", "Bearer at-SECRET".into())],
            body: Some(r#"{"refresh_token":"rt-SECRET"}"#.into()),
        };
        let d = format!("{r:?}");
        assert!(!d.contains("SECRET"), "{d}");
        assert!(d.contains("authorization") && d.contains("https://x/…"), "{d}");
        let hook = HttpRequest { url: "https://hooks.example.com/services/T0/B0/SECRET?x=SECRET".into(), ..r.clone() };
        let d = format!("{hook:?}");
        assert!(!d.contains("SECRET") && d.contains("https://hooks.example.com/…"), "{d}");
        assert_eq!(origin_of("http://127.0.0.1:9"), "http://127.0.0.1:9");
        // A query straight after the host (a webhook's key) is hidden too.
        let query = HttpRequest { url: "https://hooks.example.com?key=SECRET".into(), ..r.clone() };
        let d = format!("{query:?}");
        assert!(!d.contains("SECRET") && d.contains("https://hooks.example.com/…"), "{d}");
    }
}
