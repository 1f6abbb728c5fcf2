//! The request path the router matches on.
//!
//! The runtime hands plumgate the request URL already serialized (WHATWG
//! form: scheme, `://`, authority, then a path that always starts with `/`,
//! with any `?` or `#` inside the path percent-encoded). The router needs only
//! the path, so this takes it out of that string without a URL parser.

/// The path of a serialized absolute URL: from the first `/` after the
/// authority up to the query or fragment; `/` when there is none.
pub fn path_of(url: &str) -> &str {
    // Byte scans (every request does this): `str::find` with a pattern
    // sets up a substring searcher per call. Every byte looked for is
    // ASCII, so each index is a character boundary.
    let bytes = url.as_bytes();
    let after_scheme = bytes.windows(3).position(|w| w == b"://").map_or(0, |i| i + 3);
    let rest = &bytes[after_scheme..];
    // The authority ends at the first `/`, `?` or `#`; only a `/` starts a path.
    let Some(start) = rest.iter().position(|b| matches!(b, b'/' | b'?' | b'#')).filter(|&i| rest[i] == b'/') else {
        return "/";
    };
    let start = after_scheme + start;
    let end = bytes[start..].iter().position(|b| matches!(b, b'?' | b'#')).map_or(url.len(), |i| start + i);
    &url[start..end]
}

/// The path the router matches: `path`, less one trailing `/` under the
/// drop-in base. Xoxoday's own guide writes `…/chef/v1/oauth/api/` in its
/// getVouchers and placeOrder examples and clients copy it, so both
/// spellings of a drop-in path (the token paths too) reach one route.
/// plumgate's own routes (`/v1/...`) have one spelling.
pub fn routed_path(path: &str) -> &str {
    match path.strip_suffix('/') {
        Some(p) if p.len() > "/chef".len() && p.starts_with("/chef/") => p,
        _ => path,
    }
}

/// The query parameters of a serialized URL, in order, percent-decoded
/// (`+` is a plus sign, as RFC 3986 has it, so a time offset such as
/// `+05:30` survives unencoded). A name without `=` has an empty value.
pub fn query_of(url: &str) -> Vec<(String, String)> {
    let Some((_, rest)) = crate::text::split_once(url, "?") else { return Vec::new() };
    let query = crate::text::split_once(rest, "#").map_or(rest, |(q, _)| q);
    crate::text::split(query, "&")
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = crate::text::split_once(p, "=").unwrap_or((p, ""));
            (percent_decoded(name), percent_decoded(value))
        })
        .collect()
}

/// `%XX` escapes decoded (a broken escape is kept as written; bytes that
/// are not UTF-8 become U+FFFD).
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{path_of, query_of, routed_path};

    #[test]
    fn routed_paths() {
        for (path, want) in [
            ("/chef/v1/oauth/api/", "/chef/v1/oauth/api"),
            ("/chef/v1/oauth/api", "/chef/v1/oauth/api"),
            ("/chef/v1/oauth/token/user/", "/chef/v1/oauth/token/user"),
            ("/chef/v1/oauth/api//", "/chef/v1/oauth/api/"),
            ("/chef/", "/chef/"),
            ("/chef//", "/chef/"),
            ("/v1/ops/getVouchers/", "/v1/ops/getVouchers/"),
            ("/", "/"),
            ("/www/", "/www/"),
            ("/chefs/", "/chefs/"),
        ] {
            assert_eq!(routed_path(path), want, "{path}");
        }
    }

    #[test]
    fn queries() {
        let q = |url: &str| query_of(url).into_iter().map(|(a, b)| format!("{a}={b}")).collect::<Vec<_>>();
        assert_eq!(q("https://h/v1/audit?from=2026-11-25T22:39:42+05:30&key=a%2Db&cursor=&x#frag"), ["from=2026-11-25T22:39:42+05:30", "key=a-b", "cursor=", "x="]);
        assert_eq!(q("https://h/v1/audit"), Vec::<String>::new());
        assert_eq!(q("https://h/?a=%zz%4&b=%C3%A9&c=%ff"), ["a=%zz%4", "b=é", "c=\u{fffd}"]);
        assert_eq!(q("https://h/?&&a=1=2"), ["a=1=2"]);
    }

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
            ("https://h#/x", "/"),
            ("https://é.example/p/ü?x=é", "/p/ü"),
            ("a:/b://c/d", "/d"),
        ] {
            assert_eq!(path_of(url), want, "{url}");
        }
    }
}
