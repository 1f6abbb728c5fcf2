//! An outgoing HTTP request, built without I/O.
//!
//! The core builds every request plumgate makes to Xoxoday (the refresh and
//! the token check in `token`, a Plum API call in `upstream`) as an
//! [`HttpRequest`]; the shell's only job is to send it (`runtime::net` in
//! the worker crate: a timeout, no redirects) and hand what came back (an
//! [`HttpAnswer`], or [`NoAnswer`] and why) to the core's readers. So what
//! goes on the wire, and what each outcome means, is tested on the host.

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
    let start = url.find("://").map_or(0, |i| i + 3);
    match url[start..].find(['/', '?', '#']) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
