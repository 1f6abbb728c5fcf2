//! CORS for `ALLOWED_ORIGINS` (contract §1).
//!
//! Only listed origins get CORS headers; everything else gets none, so a
//! browser on an unlisted origin cannot read answers. The demo page is
//! same-origin and needs no entry.

/// Headers a browser may read from plumgate's answers.
pub const EXPOSE_HEADERS: &str =
    "x-request-id, x-plumgate-cache, x-plumgate-replayed, x-plumgate-reconciled, retry-after";
/// Methods plumgate answers on its API routes (`PATCH` and `DELETE` for
/// the admin routes of runtime keys, `/v1/keys/{id}`).
pub const ALLOW_METHODS: &str = "GET, POST, PATCH, DELETE, OPTIONS";
/// Request headers a caller may send.
pub const ALLOW_HEADERS: &str = "authorization, content-type, cache-control";
/// How long a browser may cache a preflight.
pub const MAX_AGE_SECS: u32 = 600;

/// Is `origin` (the request's `Origin` header) allowed?
pub fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    let origin = crate::text::trim_end(origin, b'/');
    allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
}

/// Headers to add to an actual (non-preflight) answer.
pub fn response_headers(origin: Option<&str>, allowed: &[String]) -> Vec<(&'static str, String)> {
    match origin {
        Some(o) if origin_allowed(o, allowed) => vec![
            ("access-control-allow-origin", crate::text::trim_end(o, b'/').to_string()),
            ("access-control-expose-headers", EXPOSE_HEADERS.to_string()),
            ("vary", "Origin".to_string()),
        ],
        _ => vec![("vary", "Origin".to_string())],
    }
}

/// Headers for a preflight answer (`OPTIONS`), or `None` when the origin is
/// not allowed (answer without CORS headers).
pub fn preflight_headers(origin: Option<&str>, allowed: &[String]) -> Option<Vec<(&'static str, String)>> {
    let o = origin?;
    if !origin_allowed(o, allowed) {
        return None;
    }
    Some(vec![
        ("access-control-allow-origin", crate::text::trim_end(o, b'/').to_string()),
        ("access-control-allow-methods", ALLOW_METHODS.to_string()),
        ("access-control-allow-headers", ALLOW_HEADERS.to_string()),
        ("access-control-max-age", MAX_AGE_SECS.to_string()),
        ("vary", "Origin".to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_origins_only() {
        let allowed = vec!["https://app.example.com".to_string()];
        assert!(preflight_headers(Some("https://app.example.com"), &allowed).is_some());
        assert!(preflight_headers(Some("https://evil.example.com"), &allowed).is_none());
        assert!(preflight_headers(None, &allowed).is_none());
        assert!(preflight_headers(Some("https://app.example.com"), &[]).is_none());
        let h = response_headers(Some("https://app.example.com"), &allowed);
        assert!(h.iter().any(|(k, v)| *k == "access-control-allow-origin" && v == "https://app.example.com"));
        let h = response_headers(Some("https://evil.example.com"), &allowed);
        assert!(!h.iter().any(|(k, _)| k.starts_with("access-control")));
        // The lists contract §1 and the OpenAPI document give, exactly; and
        // `Vary: Origin` on every answer, so a cache keeps them per origin.
        let get = |h: &[(&str, String)], k: &str| h.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        let pre = preflight_headers(Some("https://app.example.com/"), &allowed).unwrap();
        assert_eq!(get(&pre, "access-control-allow-origin").as_deref(), Some("https://app.example.com"));
        assert_eq!(get(&pre, "access-control-allow-headers").as_deref(), Some("authorization, content-type, cache-control"));
        assert_eq!(get(&pre, "access-control-max-age").as_deref(), Some("600"));
        let h = response_headers(Some("https://app.example.com"), &allowed);
        let exposed = "x-request-id, x-plumgate-cache, x-plumgate-replayed, x-plumgate-reconciled, retry-after";
        assert_eq!(get(&h, "access-control-expose-headers").as_deref(), Some(exposed));
        for origin in [Some("https://evil.example.com"), None] {
            assert_eq!(response_headers(origin, &allowed), vec![("vary", "Origin".to_string())], "{origin:?}");
        }
        assert_eq!(get(&pre, "vary").as_deref(), Some("Origin"), "a preflight's answer varies by origin too");
        let h = response_headers(Some("https://app.example.com/"), &allowed);
        assert_eq!(get(&h, "access-control-allow-origin").as_deref(), Some("https://app.example.com"), "the origin as listed, as the preflight says it");
        // README: "Access-Control-Allow-Methods: GET, POST, PATCH, DELETE, OPTIONS", no more.
        assert_eq!(get(&pre, "access-control-allow-methods").as_deref(), Some("GET, POST, PATCH, DELETE, OPTIONS"));
    }

    /// A host is case-insensitive: a browser sends it in lower case, and an
    /// operator may list it as written elsewhere (`config` keeps the case).
    #[test]
    fn origins_match_whatever_the_case_of_the_listed_host() {
        let allowed = vec!["https://App.Example.com".to_string()];
        assert!(origin_allowed("https://app.example.com", &allowed));
        assert!(preflight_headers(Some("https://app.example.com"), &allowed).is_some());
        assert!(!origin_allowed("https://app.example.co", &allowed));
    }

    #[test]
    fn preflight_allows_every_method_of_the_routes() {
        let allowed = vec!["https://app.example.com".to_string()];
        let h = preflight_headers(Some("https://app.example.com"), &allowed).expect("allowed");
        let methods = &h.iter().find(|(k, _)| *k == "access-control-allow-methods").expect("methods").1;
        // The key admin routes: PATCH /v1/keys/{id}, DELETE /v1/keys/{id}.
        for m in ["GET", "POST", "PATCH", "DELETE", "OPTIONS"] {
            assert!(methods.split(", ").any(|x| x == m), "{m} in {methods}");
        }
    }
}
