//! Every response plumgate builds itself, in one place: JSON answers,
//! Xoxoday's answers passed on, errors in the route's form (contract §3, or
//! Xoxoday's shapes under `/chef/`) with the headers each status calls for,
//! the demo page's assets with their security headers, and the headers
//! every answer gets (`x-request-id`, CORS). What the bodies and headers
//! say is the core's (`plumgate_core::errors`, `plumgate_core::dropin`,
//! `plumgate_core::cors`); this only puts them on the wire.

use crate::runtime::http::{whole, Outgoing};
use plumgate_core::dropin::OAuthError;
use plumgate_core::errors::{ApiError, ErrorStyle};
use plumgate_core::http::HttpAnswer;
use serde_json::Value;
use worker::{web_sys, Headers};

/// The content type of every JSON answer.
pub const JSON: &str = "application/json; charset=utf-8";

/// A JSON response with the given status.
pub fn json_response(status: u16, body: &Value) -> Outgoing {
    bytes_response(status, plumgate_core::jsontext::to_text(body).into_bytes(), JSON)
}

/// A JSON response from JSON text already written.
pub fn json_text(status: u16, body: String) -> Outgoing {
    bytes_response(status, body.into_bytes(), JSON)
}

/// A response with a body and content type (`cache-control: no-store`).
pub fn bytes_response(status: u16, body: Vec<u8>, content_type: &'static str) -> Outgoing {
    let mut resp = Outgoing::new(status, Some(body));
    resp.set("content-type", content_type);
    resp.set("cache-control", "no-store");
    resp
}

/// Xoxoday's status and body, unchanged.
pub fn passthrough(answer: HttpAnswer) -> Outgoing {
    bytes_response(answer.status, answer.body, JSON)
}

/// The error body (in `style`) and headers for `e`: `WWW-Authenticate` on
/// 401, `Retry-After` when the caller should come back later, `Allow` on
/// 405.
pub fn error_response(e: &ApiError, style: ErrorStyle, request_id: &str) -> Outgoing {
    let mut resp = bytes_response(e.status, e.body_text(style, request_id).into_bytes(), JSON);
    if e.status == 401 {
        resp.set("www-authenticate", "Bearer");
    }
    if let Some(s) = e.retry_after_secs {
        resp.set("retry-after", s.to_string());
    }
    if e.status == 405 {
        let mut allowed = e.message.as_str();
        while let Some(rest) = allowed.strip_prefix("method not allowed; use ") {
            allowed = rest;
        }
        resp.set("allow", allowed);
    }
    resp
}

/// Xoxoday's OAuth error answer (the drop-in token endpoints).
pub fn oauth_error_response(e: &OAuthError, request_id: &str) -> Outgoing {
    let mut resp = bytes_response(e.status, e.body(request_id).into_bytes(), JSON);
    if e.status == 401 {
        resp.set("www-authenticate", "Bearer");
    }
    resp
}

/// An empty response with `status`.
pub fn empty(status: u16) -> Outgoing {
    Outgoing::new(status, None)
}

/// Set `headers` on `resp` (a header the runtime refuses is left out).
pub fn set_headers(resp: &mut Outgoing, headers: Vec<(&'static str, String)>) {
    for (k, v) in headers {
        resp.set(k, v);
    }
}

/// A static asset (the demo page) as served: the asset server's status,
/// headers and body, with the page's security headers (`csp`:
/// `Config::page_csp`).
pub async fn asset(upstream: web_sys::Response, csp: &'static str) -> Result<Outgoing, ApiError> {
    let status = upstream.status();
    let body = if matches!(status, 101 | 204 | 205 | 304) {
        None
    } else {
        Some(whole(upstream.array_buffer()).await.map_err(|()| ApiError::internal())?)
    };
    let mut resp = Outgoing::new(status, body);
    for (k, v) in Headers(upstream.headers()).entries() {
        resp.set(k, v);
    }
    resp.set("content-security-policy", csp);
    resp.set("x-content-type-options", "nosniff");
    resp.set("referrer-policy", "no-referrer");
    resp.set("x-frame-options", "DENY");
    resp.set("permissions-policy", "camera=(), microphone=(), geolocation=()");
    Ok(resp)
}
