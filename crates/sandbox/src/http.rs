//! The HTTP face of the sandbox (axum). Owns: routing of the upstream paths
//! (`/chef/...`), the admin paths (`/__sandbox/...`) and the product images
//! (`/sandbox-assets/...`); latency and hang sleeps; the refresh concurrency
//! gauge; the broken-body answer of `rotate_then_drop`; waiting for the state
//! file before answering; and the one-line-per-request stderr log (method,
//! path, op, status — never token values).
//!
//! Request bodies arrive as raw `Bytes` and are read by [`Sandbox`], not by
//! axum's `Json` extractor, on purpose: Xoxoday answers a body that is not
//! JSON, or not the right JSON, with its own error shapes (OAuth
//! `invalid_request` on the token route, Plum `PLE10001` on the API) whatever
//! the `Content-Type`, and the admin routes take an empty body as "no
//! change" and answer `{"error":"bad_request","message":…}`. `Json` would
//! demand `Content-Type: application/json` and answer a rejection in axum's
//! own plain-text words, which no test of a gateway should see. Everything
//! else comes through axum's extractors (`State`, `Path`, `HeaderMap`, and
//! `Query`, whose rejection its handler turns into the default).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use futures_util::StreamExt;

use crate::catalog::catalog;
use crate::config::{AnswerFraming, NameCut};
use crate::clock::wall_ms;
use crate::faults::PROXY_PAGE;
use crate::persist::{lock, Persister};
use crate::sandbox::{RefreshOutcome, Sandbox};

/// Shared server state.
pub struct App {
    sandbox: Arc<Mutex<Sandbox>>,
    persister: Option<Persister>,
    concurrent_refreshes: AtomicU64,
    peak_refreshes: AtomicU64,
    log: bool,
}

/// The op name of an answered API call, for the request log line.
#[derive(Clone, Copy)]
struct OpTag(&'static str);

impl App {
    pub fn new(sandbox: Sandbox, state_file: Option<std::path::PathBuf>, log: bool) -> Arc<Self> {
        let sandbox = Arc::new(Mutex::new(sandbox));
        let persister = state_file.map(|p| Persister::start(p, Arc::clone(&sandbox)));
        Arc::new(Self {
            sandbox,
            persister,
            concurrent_refreshes: AtomicU64::new(0),
            peak_refreshes: AtomicU64::new(0),
            log,
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, Sandbox> {
        lock(&self.sandbox)
    }

    /// Runs `f` on the sandbox; if it changed persisted state, waits until
    /// that change is in the state file.
    pub async fn run<R>(&self, f: impl FnOnce(&mut Sandbox) -> R) -> R {
        let (out, gen) = {
            let mut sb = self.lock();
            let out = f(&mut sb);
            let gen = if sb.take_dirty() {
                self.persister.as_ref().map(Persister::request)
            } else {
                None
            };
            (out, gen)
        };
        if let (Some(gen), Some(p)) = (gen, &self.persister) {
            p.wait(gen).await;
        }
        out
    }

    /// Requests a write of the current state (used once at start-up).
    pub async fn save_now(&self) {
        if let Some(p) = &self.persister {
            let gen = p.request();
            p.wait(gen).await;
        }
    }

    /// Flushes pending state and stops the writer. Call once at exit.
    pub fn shutdown(&self) {
        if let Some(p) = &self.persister {
            p.shutdown();
        }
    }
}

/// Counts a refresh request as in flight for as long as it lives.
struct InFlight(Arc<App>);

impl InFlight {
    fn enter(app: &Arc<App>) -> Self {
        let now = app.concurrent_refreshes.fetch_add(1, Ordering::SeqCst) + 1;
        app.peak_refreshes.fetch_max(now, Ordering::SeqCst);
        Self(Arc::clone(app))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.concurrent_refreshes.fetch_sub(1, Ordering::SeqCst);
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/chef/v1/oauth/token/user", post(refresh))
        .route("/chef/v1/oauth/token", get(validate))
        .route("/chef/v1/oauth/api", post(api))
        // Xoxoday's own guide writes the path with a slash.
        .route("/chef/v1/oauth/api/", post(api))
        .route("/sandbox-assets/{file}", get(asset))
        .route(
            "/__sandbox/health",
            get(|| async { Json(json!({ "ok": true })) }),
        )
        .route("/__sandbox/config", get(config_get).post(config_post))
        .route("/__sandbox/tokens", get(tokens_get))
        .route("/__sandbox/tokens/issued", get(tokens_issued))
        .route("/__sandbox/vouchers/issued", get(vouchers_issued))
        .route("/__sandbox/tokens/expire-access", post(expire_access))
        .route("/__sandbox/tokens/revoke-access", post(revoke_access))
        .route("/__sandbox/tokens/revoke-refresh", post(revoke_refresh))
        .route("/__sandbox/tokens/issue", post(issue_tokens))
        .route("/__sandbox/faults", get(faults_get))
        .route("/__sandbox/faults/refresh", post(fault_refresh))
        .route("/__sandbox/faults/validate", post(fault_validate))
        .route("/__sandbox/faults/api", post(fault_api))
        .route("/__sandbox/faults/order", post(fault_order))
        .route("/__sandbox/faults/details", post(fault_details))
        .route("/__sandbox/faults/proxy", post(fault_proxy))
        .route("/__sandbox/faults/clear", post(faults_clear))
        .route("/__sandbox/counters", get(counters_get))
        .route("/__sandbox/counters/reset", post(counters_reset))
        .route("/__sandbox/requests", get(requests_get))
        .route("/__sandbox/requests/clear", post(requests_clear))
        .route("/__sandbox/reset", post(reset))
        .fallback(|| async { json_response(404, json!({ "error": "not_found" })) })
        .layer(middleware::from_fn_with_state(Arc::clone(&app), framed))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), log_line))
        .with_state(app)
}

/// An answer under `/chef/` in the configured framing
/// (`Config::answer_framing`), its product names cut when
/// `Config::cut_names` says so (ending as `Config::cut_names_as` says);
/// every other answer as it is.
async fn framed(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let upstream = req.uri().path().starts_with("/chef/");
    let resp = next.run(req).await;
    let (framing, cut) = {
        let app = app.lock();
        (app.config.answer_framing, app.config.cut_names.then_some(app.config.cut_names_as))
    };
    if !upstream || (framing == AnswerFraming::Length && cut.is_none()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return json_response(500, json!({ "error": "sandbox_error" }));
    };
    let bytes = match cut {
        Some(end) => Bytes::from(cut_names(&bytes, end)),
        None => bytes,
    };
    parts.headers.remove(CONTENT_LENGTH);
    let body = match framing {
        AnswerFraming::Length => Body::from(bytes),
        AnswerFraming::Gzip => {
            parts.headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            Body::from(gzip_stored(&bytes))
        }
        _ => {
            let pieces: Vec<Bytes> = bytes.chunks(1024).map(Bytes::copy_from_slice).collect();
            Body::from_stream(futures_util::stream::iter(pieces).then(|piece| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok::<_, io::Error>(piece)
            }))
        }
    };
    Response::from_parts(parts, body)
}

/// `body` with every `"productName"` string ending in half an emoji
/// (`Config::cut_names`): a lone surrogate escape, `\ud83c`, the text
/// JavaScript's `JSON.stringify` writes for a name cut after an emoji's
/// first half; or (`NameCut::Bytes`) the first three of its four UTF-8
/// bytes, raw, what a writer that cuts bytes leaves.
pub fn cut_names(body: &[u8], ending: NameCut) -> Vec<u8> {
    const NAME: &[u8] = b"\"productName\":\"";
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut i = 0;
    while i < body.len() {
        if body[i..].starts_with(NAME) {
            out.extend_from_slice(NAME);
            i += NAME.len();
            // To the closing quote, escapes passed over whole.
            while i < body.len() && body[i] != b'"' {
                let end = (i + if body[i] == b'\\' { 2 } else { 1 }).min(body.len());
                out.extend_from_slice(&body[i..end]);
                i = end;
            }
            out.extend_from_slice(match ending {
                NameCut::Escape => br"\ud83c".as_slice(),
                NameCut::Bytes => b"\xf0\x9f\x8e",
            });
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    out
}

/// `data` as a gzip member of stored (uncompressed) deflate blocks: valid
/// gzip for any reader, with no compressor in the sandbox.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    if data.is_empty() {
        out.extend([1, 0, 0, 0xff, 0xff]);
    }
    let mut blocks = data.chunks(usize::from(u16::MAX)).peekable();
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend(block);
    }
    out.extend(crc32(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE), as gzip's trailer carries it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

async fn log_line(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if !app.log {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path: String = req.uri().path().chars().take(120).collect();
    let resp = next.run(req).await;
    let op = resp.extensions().get::<OpTag>().map_or("-", |t| t.0);
    eprintln!("{method} {path} op={op} status={}", resp.status().as_u16());
    resp
}

fn json_response(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn tagged(mut resp: Response, op: &'static str) -> Response {
    resp.extensions_mut().insert(OpTag(op));
    resp
}

fn bad_request(message: String) -> Response {
    json_response(400, json!({ "error": "bad_request", "message": message }))
}

/// Count a call to Xoxoday's paths sent without `Content-Type:
/// application/json` ([`crate::sandbox::Counters::not_json_content_type`]).
fn note_content_type(app: &App, headers: &HeaderMap) {
    let media = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !media.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json") {
        app.lock().note_not_json_content_type();
    }
}

fn auth_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

// ----- upstream -----

async fn refresh(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    note_content_type(&app, &headers);
    let _in_flight = InFlight::enter(&app);
    let latency = app.lock().config.refresh_latency_ms;
    sleep_ms(latency).await;
    let outcome = app.run(|sb| sb.refresh(&body, wall_ms())).await;
    let resp = match outcome {
        RefreshOutcome::Answer { status, body } => json_response(status, body),
        RefreshOutcome::HangThen { ms, status, body } => {
            // Counted once it is given, not when the sandbox decided it: a
            // test reading the counters mid-delay sees no answer yet.
            let pending = Unanswered(Some(Arc::clone(&app)));
            sleep_ms(ms).await;
            pending.answered(status, &body);
            json_response(status, body)
        }
        RefreshOutcome::Drop { status } => dropped_body(status),
        RefreshOutcome::Limited { status, body, retry_after_secs } => limited(status, body, retry_after_secs),
        RefreshOutcome::Page { status, delay_ms } => {
            sleep_ms(delay_ms).await;
            proxy_page(status)
        }
    };
    tagged(no_store(resp), "refresh")
}

/// A delayed refresh answer not given yet: counted as given by
/// [`Unanswered::answered`], or as a failure if the request is dropped
/// first (the caller hung up during the delay).
struct Unanswered(Option<Arc<App>>);

impl Unanswered {
    fn answered(mut self, status: u16, body: &Value) {
        if let Some(app) = self.0.take() {
            app.lock().note_refresh_answered(status, body);
        }
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some(app) = self.0.take() {
            app.lock().note_refresh_unanswered();
        }
    }
}

/// A proxy fault's page: the layer in front of Xoxoday answers HTML.
fn proxy_page(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, [(CONTENT_TYPE, "text/html; charset=utf-8")], PROXY_PAGE).into_response()
}

/// An answer, with `Retry-After` when it is a rate-limit answer whose shape
/// sends one.
fn limited(status: u16, body: Value, retry_after_secs: Option<u64>) -> Response {
    let mut resp = json_response(status, body);
    if let Some(Ok(v)) = retry_after_secs.map(|s| HeaderValue::from_str(&s.to_string())) {
        resp.headers_mut().insert(RETRY_AFTER, v);
    }
    resp
}

/// Status line and headers go out, then the body stream fails, so hyper
/// aborts the connection: the client gets a transport error, not the tokens.
fn dropped_body(status: u16) -> Response {
    let stream = futures_util::stream::once(async {
        tokio::time::sleep(Duration::from_millis(25)).await;
        Err::<Bytes, io::Error>(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "sandbox fault: rotate_then_drop",
        ))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

async fn validate(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let auth = auth_header(&headers);
    let resp = match app.run(|sb| sb.validate_token(auth.as_deref(), wall_ms())).await {
        RefreshOutcome::Limited { status, body, retry_after_secs } => limited(status, body, retry_after_secs),
        RefreshOutcome::Answer { status, body } | RefreshOutcome::HangThen { status, body, .. } => json_response(status, body),
        RefreshOutcome::Drop { status } => dropped_body(status),
        RefreshOutcome::Page { status, .. } => proxy_page(status),
    };
    tagged(no_store(resp), "validate")
}

async fn api(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    note_content_type(&app, &headers);
    let latency = app.lock().config.api_latency_ms;
    sleep_ms(latency).await;
    let auth = auth_header(&headers);
    let out = app
        .run(|sb| sb.api(auth.as_deref(), &body, wall_ms()))
        .await;
    sleep_ms(out.delay_after_ms).await;
    let resp = if out.page {
        proxy_page(out.status)
    } else {
        limited(out.status, out.body, out.retry_after_secs)
    };
    tagged(resp, out.op.unwrap_or("unknown"))
}

async fn asset(Path(file): Path<String>) -> Response {
    let product = file
        .strip_suffix(".svg")
        .and_then(|id| id.parse::<u64>().ok())
        .and_then(|id| catalog().get(id));
    match product {
        Some(p) => (
            [
                (CONTENT_TYPE, "image/svg+xml"),
                (CACHE_CONTROL, "public, max-age=86400"),
            ],
            p.svg(),
        )
            .into_response(),
        None => json_response(404, json!({ "error": "not_found" })),
    }
}

// ----- admin -----

async fn config_get(State(app): State<Arc<App>>) -> Response {
    json_response(200, app.lock().config.to_json())
}

async fn config_post(State(app): State<Arc<App>>, body: Bytes) -> Response {
    match app.run(|sb| sb.patch_config(&body)).await {
        Ok(v) => json_response(200, v),
        Err(e) => bad_request(e),
    }
}

async fn tokens_get(State(app): State<Arc<App>>) -> Response {
    json_response(200, app.lock().token_stats(wall_ms()))
}

async fn tokens_issued(State(app): State<Arc<App>>) -> Response {
    json_response(200, app.lock().issued_tokens())
}

async fn vouchers_issued(State(app): State<Arc<App>>) -> Response {
    json_response(200, app.lock().issued_vouchers())
}

async fn expire_access(State(app): State<Arc<App>>) -> Response {
    let n = app.run(|sb| sb.expire_access(wall_ms())).await;
    json_response(200, json!({ "affected": n }))
}

async fn revoke_access(State(app): State<Arc<App>>) -> Response {
    let n = app.run(|sb| sb.revoke_access(wall_ms())).await;
    json_response(200, json!({ "affected": n }))
}

async fn revoke_refresh(State(app): State<Arc<App>>) -> Response {
    let n = app.run(|sb| sb.revoke_refresh(wall_ms())).await;
    json_response(200, json!({ "affected": n }))
}

async fn issue_tokens(State(app): State<Arc<App>>, body: Bytes) -> Response {
    match app.run(|sb| sb.issue_tokens(&body, wall_ms())).await {
        Ok(v) => no_store(json_response(200, v)),
        Err(e) => bad_request(e),
    }
}

async fn faults_get(State(app): State<Arc<App>>) -> Response {
    json_response(200, app.lock().faults_json())
}

async fn fault_refresh(State(app): State<Arc<App>>, body: Bytes) -> Response {
    match app.run(|sb| sb.set_refresh_fault(&body)).await {
        Ok(v) => json_response(200, v),
        Err(e) => bad_request(e),
    }
}

async fn fault_validate(State(app): State<Arc<App>>, body: Bytes) -> Response {
    match app.run(|sb| sb.set_validate_fault(&body)).await {
        Ok(v) => json_response(200, v),
        Err(e) => bad_request(e),
    }
}

async fn fault_api(State(app): State<Arc<App>>, body: Bytes) -> Response {
    match app.run(|sb| sb.set_api_fault(&body)).await {
        Ok(v) => json_response(200, v),
        Err(e) => bad_request(e),
    }
}

async fn fault_order(State(app): State<Arc<App>>, body: Bytes) -> Response {
    match app.run(|sb| sb.set_order_fault(&body)).await {
        Ok(v) => json_response(200, v),
        Err(e) => bad_request(e),
    }
}

async fn fault_details(State(app): State<Arc<App>>, body: Bytes) -> Response {
    match app.run(|sb| sb.set_details_fault(&body)).await {
        Ok(v) => json_response(200, v),
        Err(e) => bad_request(e),
    }
}

async fn fault_proxy(State(app): State<Arc<App>>, body: Bytes) -> Response {
    match app.run(|sb| sb.set_proxy_fault(&body)).await {
        Ok(v) => json_response(200, v),
        Err(e) => bad_request(e),
    }
}

async fn faults_clear(State(app): State<Arc<App>>) -> Response {
    json_response(200, app.run(Sandbox::clear_faults).await)
}

async fn counters_get(State(app): State<Arc<App>>) -> Response {
    let concurrent = app.concurrent_refreshes.load(Ordering::SeqCst);
    let peak = app.peak_refreshes.load(Ordering::SeqCst);
    json_response(200, app.lock().counters_json(concurrent, peak))
}

async fn counters_reset(State(app): State<Arc<App>>) -> Response {
    app.peak_refreshes.store(
        app.concurrent_refreshes.load(Ordering::SeqCst),
        Ordering::SeqCst,
    );
    app.run(Sandbox::reset_counters).await;
    json_response(200, json!({ "ok": true }))
}

/// `GET /__sandbox/requests?limit=N`.
#[derive(Debug, Deserialize)]
struct RequestsQuery {
    limit: Option<usize>,
}

/// How many logged requests `GET /__sandbox/requests` shows without `limit`.
const REQUESTS_DEFAULT_LIMIT: usize = 50;

async fn requests_get(
    State(app): State<Arc<App>>,
    query: Result<Query<RequestsQuery>, QueryRejection>,
) -> Response {
    // A `limit` that is not a count falls back to the default, as it always
    // has: this test control answers rather than rejecting.
    let limit = query
        .ok()
        .and_then(|Query(q)| q.limit)
        .unwrap_or(REQUESTS_DEFAULT_LIMIT);
    json_response(200, app.lock().requests_json(limit))
}

async fn requests_clear(State(app): State<Arc<App>>) -> Response {
    app.run(Sandbox::clear_requests).await;
    json_response(200, json!({ "ok": true }))
}

async fn reset(State(app): State<Arc<App>>) -> Response {
    app.peak_refreshes.store(
        app.concurrent_refreshes.load(Ordering::SeqCst),
        Ordering::SeqCst,
    );
    app.run(|sb| sb.reset(wall_ms())).await;
    json_response(200, json!({ "ok": true }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_names_ends_every_product_name_with_a_lone_surrogate_escape() {
        let body = br#"{"a":[{"productName":"Caf\u00e9 \"X\"","productId":1},{"productName":"","n":"productName"}],"productName":2}"#;
        let cut = cut_names(body, NameCut::Escape);
        assert_eq!(
            std::str::from_utf8(&cut).unwrap(),
            r#"{"a":[{"productName":"Caf\u00e9 \"X\"\ud83c","productId":1},{"productName":"\ud83c","n":"productName"}],"productName":2}"#
        );
        assert!(serde_json::from_slice::<Value>(&cut).is_err(), "strict readers refuse it");
        assert_eq!(cut_names(b"{}", NameCut::Escape), b"{}");
    }

    #[test]
    fn cut_names_as_bytes_ends_every_product_name_with_three_of_an_emojis_four_bytes() {
        let body = r#"{"a":[{"productName":"Café \"🎁\"","productId":1},{"productName":""}]}"#.as_bytes();
        let cut = cut_names(body, NameCut::Bytes);
        let half = b"\xf0\x9f\x8e".as_slice();
        let want = [r#"{"a":[{"productName":"Café \"🎁\""#.as_bytes(), half, br#"","productId":1},{"productName":""#.as_slice(), half, br#""}]}"#.as_slice()].concat();
        assert_eq!(cut, want);
        assert!(std::str::from_utf8(&cut).is_err(), "not UTF-8");
        assert_eq!(String::from_utf8_lossy(&cut).matches('\u{fffd}').count(), 2, "one replacement character per name");
    }

    #[test]
    fn crc32_is_gzips() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926, "the standard check value");
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn gzip_stored_frames_every_block() {
        let data: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
        let gz = gzip_stored(&data);
        assert_eq!(gz[..4], [0x1f, 0x8b, 8, 0]);
        // Three stored blocks (65,535 + 65,535 + 18,930), the last one final.
        assert_eq!(gz.len(), 10 + 3 * 5 + data.len() + 8);
        assert_eq!(gz[10], 0);
        assert_eq!(gz[10 + 5 + 65_535], 0);
        assert_eq!(gz[10 + 2 * (5 + 65_535)], 1);
        assert_eq!(gz[gz.len() - 8..gz.len() - 4], crc32(&data).to_le_bytes());
        assert_eq!(gz[gz.len() - 4..], (data.len() as u32).to_le_bytes());
        assert_eq!(gzip_stored(b"").len(), 10 + 5 + 8, "an empty body is one empty final block");
    }
}
