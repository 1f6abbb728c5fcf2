//! Every response plumgate builds itself, in one place: JSON answers,
//! Xoxoday's answers passed on, and errors in the route's form (contract
//! §3, or Xoxoday's shapes under `/chef/`) with the headers each status
//! calls for. What the bodies say is the core's (`plumgate_core::errors`,
//! `plumgate_core::dropin`); this only puts them on the wire.

use crate::runtime::http::internal_error;
use plumgate_core::dropin::OAuthError;
use plumgate_core::errors::{ApiError, ErrorStyle};
use plumgate_core::http::HttpAnswer;
use serde_json::Value;
use worker::Response;

/// The content type of every JSON answer.
pub const JSON: &str = "application/json; charset=utf-8";

/// A JSON response with the given status.
pub fn json_response(status: u16, body: &Value) -> Response {
    bytes_response(status, body.to_string().into_bytes(), JSON)
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
        Err(_) => Response::empty().map(|r| r.with_status(500)).unwrap_or_else(|_| internal_error()),
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
