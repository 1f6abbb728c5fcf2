//! The request path the router matches on.
//!
//! The runtime hands plumgate the request URL already serialized (WHATWG
//! form: scheme, `://`, authority, then a path that always starts with `/`,
//! with any `?` or `#` inside the path percent-encoded). The router needs only
//! the path, so this takes it out of that string without a URL parser.

/// The path of a serialized absolute URL: from the first `/` after the
/// authority up to the query or fragment; `/` when there is none.
pub fn path_of(url: &str) -> &str {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    let rest = &url[after_scheme..];
    // The authority ends at the first `/`, `?` or `#`; only a `/` starts a path.
    let Some(start) = rest.find(['/', '?', '#']).filter(|&i| rest.as_bytes()[i] == b'/') else { return "/" };
    let path = &rest[start..];
    let end = path.find(['?', '#']).unwrap_or(path.len());
    &path[..end]
}

#[cfg(test)]
mod tests {
    use super::path_of;

    #[test]
    fn paths() {
        for (url, want) in [
            ("http://127.0.0.1:8787/healthz", "/healthz"),
            ("https://plumgate.example.workers.dev/v1/ops/getVouchers?x=1", "/v1/ops/getVouchers"),
            ("https://h/chef/v1/oauth/api#frag", "/chef/v1/oauth/api"),
            ("https://h/", "/"),
            ("https://h", "/"),
            ("https://h?q=/a", "/"),
            ("https://h:443/a%3Fb%23c/d?e#f", "/a%3Fb%23c/d"),
            ("https://user:pw@h/p", "/p"),
            ("http://[::1]:8787/v1/token", "/v1/token"),
            ("/already/a/path?x", "/already/a/path"),
            ("", "/"),
        ] {
            assert_eq!(path_of(url), want, "{url}");
        }
    }
}
