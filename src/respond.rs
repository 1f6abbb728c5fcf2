//! Every response plumgate builds itself, in one place: JSON answers,
//! Xoxoday's answers passed on, errors in the route's form (contract §3, or
//! Xoxoday's shapes under `/chef/`) with the headers each status calls for,
//! the demo page's assets with their security headers, and the headers
//! every answer gets (`x-request-id`, CORS). What the bodies and headers
//! say is the core's (`plumgate_core::errors`, `plumgate_core::dropin`,
//! `plumgate_core::cors`); this only puts them on the wire.

use crate::runtime::http::whole;
use plumgate_core::dropin::OAuthError;
use plumgate_core::errors::{ApiError, ErrorStyle};
use plumgate_core::http::HttpAnswer;
use serde_json::Value;
use worker::{web_sys, Headers, Response};

/// The content type of every JSON answer.
pub const JSON: &str = "application/json; charset=utf-8";

/// A JSON response with the given status.
pub fn json_response(status: u16, body: &Value) -> Response {
    bytes_response(status, plumgate_core::jsontext::to_text(body).into_bytes(), JSON)
}

/// A JSON response from JSON text already written.
pub fn json_text(status: u16, body: String) -> Response {
    bytes_response(status, body.into_bytes(), JSON)
}

/// A response with a body and content type. Never fails: a header error
/// falls back to an empty 500.
pub fn bytes_response(status: u16, body: Vec<u8>, content_type: &str) -> Response {
    // One header object with its two headers (`Response::from_bytes` would
    // make one with an octet-stream type first, to be replaced).
    let built = Response::builder()
        .with_status(status)
        .with_header("content-type", content_type)
        .and_then(|b| b.with_header("cache-control", "no-store"));
    match built {
        Ok(b) => b.fixed(body),
        Err(_) => Response::builder().with_status(500).empty(),
    }
}

/// Xoxoday's status and body, unchanged.
pub fn passthrough(answer: HttpAnswer) -> Response {
    bytes_response(answer.status, answer.body, JSON)
}

/// The error body (in `style`) and headers for `e`: `WWW-Authenticate` on
/// 401, `Retry-After` when the caller should come back later, `Allow` on
/// 405.
pub fn error_response(e: &ApiError, style: ErrorStyle, request_id: &str) -> Response {
    let mut resp = bytes_response(e.status, e.body_text(style, request_id).into_bytes(), JSON);
    let h = resp.headers_mut();
    if e.status == 401 {
        let _ = h.set("www-authenticate", "Bearer");
    }
    if let Some(s) = e.retry_after_secs {
        let _ = h.set("retry-after", &s.to_string());
    }
    if e.status == 405 {
        let allowed = e.message.trim_start_matches("method not allowed; use ");
        let _ = h.set("allow", allowed);
    }
    resp
}

/// Xoxoday's OAuth error answer (the drop-in token endpoints).
pub fn oauth_error_response(e: &OAuthError, request_id: &str) -> Response {
    let mut resp = bytes_response(e.status, e.body(request_id).into_bytes(), JSON);
    if e.status == 401 {
        let _ = resp.headers_mut().set("www-authenticate", "Bearer");
    }
    resp
}

/// An empty response with `status`.
pub fn empty(status: u16) -> Result<Response, ApiError> {
    Response::empty().map(|r| r.with_status(status)).map_err(|_| ApiError::internal())
}

/// Set `headers` on `resp` (a header the runtime refuses is left out).
pub fn set_headers(resp: &mut Response, headers: Vec<(&'static str, String)>) {
    let h = resp.headers_mut();
    for (k, v) in headers {
        let _ = h.set(k, &v);
    }
}

/// `resp` with `x-request-id`. Headers of a response that came from
/// `fetch` (an asset, a Durable Object) are immutable: such a response gets
/// a mutable copy first.
pub fn with_request_id(mut resp: Response, request_id: &str) -> Response {
    if resp.headers_mut().set("x-request-id", request_id).is_err() {
        let copy = Headers::new();
        for (k, v) in resp.headers().entries() {
            let _ = copy.append(&k, &v);
        }
        resp = resp.with_headers(copy);
        let _ = resp.headers_mut().set("x-request-id", request_id);
    }
    resp
}

/// Content-Security-Policy of the demo page: only its own scripts, styles,
/// images (the sandbox's product images are same-origin through nothing
/// else) and API calls; no inline script, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: http://127.0.0.1:* https:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A static asset (the demo page) as served: the asset server's answer,
/// copied (its headers are immutable), with the page's security headers.
pub async fn asset(upstream: web_sys::Response) -> Result<Response, ApiError> {
    let status = upstream.status();
    let headers = Headers::new();
    for (k, v) in Headers(upstream.headers()).entries() {
        let _ = headers.set(&k, &v);
    }
    let _ = headers.set("content-security-policy", CSP);
    let _ = headers.set("x-content-type-options", "nosniff");
    let _ = headers.set("referrer-policy", "no-referrer");
    let _ = headers.set("x-frame-options", "DENY");
    let _ = headers.set("permissions-policy", "camera=(), microphone=(), geolocation=()");
    let resp = if matches!(status, 101 | 204 | 205 | 304) {
        Response::empty().map_err(|_| ApiError::internal())?
    } else {
        let body = whole(upstream.array_buffer()).await.map_err(|()| ApiError::internal())?;
        Response::from_bytes(body).map_err(|_| ApiError::internal())?
    };
    Ok(resp.with_status(status).with_headers(headers))
}
