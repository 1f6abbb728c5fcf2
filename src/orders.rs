//! `OrderLedger`: placeOrder safety (contract §5), one Durable Object per
//! `poNumber`.
//!
//! Because every request for one `poNumber` reaches the same object, the
//! idempotency check is strongly consistent: the first request records the
//! order as `pending` (persisted before Xoxoday is called), concurrent
//! requests join the call in flight, later ones replay the stored answer
//! (`x-plumgate-replayed: true`), and a different body for the same
//! `poNumber` gets `409 idempotency_conflict`.
//!
//! An order is never retried blindly. After a timeout, transport error or
//! 5xx the ledger asks getOrderDetails for the `poNumber`: an order that
//! exists is answered as a success (`x-plumgate-reconciled: true`); one that
//! does not is answered with an error saying a retry is safe (and the record
//! is dropped so the retry can place it); if even that check fails, the
//! record stays `pending` and the next request for the `poNumber` checks
//! again before placing anything. A 401 is the one case retried (once, inside
//! `gateway::call_with_token`), because nothing was executed.

use crate::edge_cache;
use crate::gateway::{call_with_token, CallError};
use crate::settings;
use crate::util::{bytes_response, json_response};
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use plumgate_core::config::Config;
use plumgate_core::errors::{ApiError, ErrorStyle};
use plumgate_core::logline::RequestLog;
use plumgate_core::ops::{self, Operation};
use plumgate_core::upstream::{is_plum_success, rate_limit_penalty};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::Rc;
use worker::{durable_object, Env, Request, Response, State};

/// Binding name of the ledger namespace.
pub const BINDING: &str = "ORDER_LEDGER";
const RECORD_KEY: &str = "order";

/// What the ledger keeps per `poNumber`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    fingerprint: String,
    /// `pending` until the outcome is known, then `done`.
    state: String,
    status: u16,
    body: String,
    reconciled: bool,
}

/// The request the worker sends to the ledger.
#[derive(Serialize, Deserialize)]
pub struct LedgerRequest {
    /// Validated placeOrder data.
    pub data: Value,
    /// `ops::order_fingerprint` of the order as the caller wrote it.
    pub fingerprint: String,
    /// For error bodies.
    pub request_id: String,
    /// Whether the order came in on the drop-in base, whose errors are in
    /// Xoxoday's shape (`ErrorStyle::Xoxoday`).
    #[serde(default)]
    pub xoxoday_errors: bool,
}

impl LedgerRequest {
    fn style(&self) -> ErrorStyle {
        if self.xoxoday_errors {
            ErrorStyle::Xoxoday
        } else {
            ErrorStyle::Plumgate
        }
    }
}

/// An answer the ledger produced (shared by everyone who joined the call).
#[derive(Debug, Clone)]
enum Outcome {
    Answer { status: u16, body: String, reconciled: bool, upstream_status: Option<u16> },
    Error { error: ApiError, upstream_status: Option<u16> },
}

type Run = Shared<LocalBoxFuture<'static, Outcome>>;

/// The Durable Object.
#[durable_object]
pub struct OrderLedger {
    state: State,
    env: Env,
    inflight: Rc<RefCell<Option<Run>>>,
}

impl worker::DurableObject for OrderLedger {
    fn new(state: State, env: Env) -> Self {
        OrderLedger { state, env, inflight: Rc::new(RefCell::new(None)) }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let Ok(lr) = req.json::<LedgerRequest>().await else {
            return Ok(json_response(400, &json!({"error": "bad ledger request"})));
        };
        Ok(self.place(lr).await)
    }

    /// Retention: `ORDER_RETENTION_SECS` after an order is done, its record
    /// goes; a later request with that poNumber is sent to Xoxoday again
    /// (which rejects a duplicate poNumber itself).
    async fn alarm(&self) -> worker::Result<Response> {
        self.state.storage().delete_all().await?;
        Response::empty()
    }
}

impl OrderLedger {
    async fn place(&self, lr: LedgerRequest) -> Response {
        let cfg = match settings::load(&self.env) {
            Ok(c) => c,
            Err(p) => return render(&Outcome::Error { error: ApiError::misconfigured(&p), upstream_status: None }, &lr, false),
        };
        let storage = self.state.storage();
        let record: Option<Record> = storage.get::<String>(RECORD_KEY).await.ok().flatten().and_then(|t| serde_json::from_str(&t).ok());

        if let Some(rec) = &record {
            if rec.fingerprint != lr.fingerprint {
                return render(&Outcome::Error { error: ApiError::idempotency_conflict(), upstream_status: None }, &lr, false);
            }
            if rec.state == "done" {
                let o = Outcome::Answer { status: rec.status, body: rec.body.clone(), reconciled: rec.reconciled, upstream_status: None };
                return render(&o, &lr, true);
            }
        }
        // Join the call in flight for this poNumber. (The borrow must end
        // before the await: the run clears `inflight` when it finishes, and
        // a borrow held across the await would make that a panic.)
        let joined = self.inflight.borrow().clone();
        if let Some(run) = joined {
            let o = run.await;
            return render(&o, &lr, true);
        }
        let resume = record.is_some();
        if !resume {
            let rec = Record { fingerprint: lr.fingerprint.clone(), state: "pending".into(), status: 0, body: String::new(), reconciled: false };
            if let Ok(text) = serde_json::to_string(&rec) {
                if storage.put(RECORD_KEY, text).await.is_err() {
                    return render(&Outcome::Error { error: ApiError::upstream_error("order ledger unavailable; nothing was placed, retrying is safe"), upstream_status: None }, &lr, false);
                }
            }
        }
        let env = self.env.clone();
        let inflight = self.inflight.clone();
        let data = lr.data.clone();
        let fp = lr.fingerprint.clone();
        let fut: LocalBoxFuture<'static, Outcome> = Box::pin(async move {
            let o = run(&env, &cfg, &storage, data, fp, resume).await;
            *inflight.borrow_mut() = None;
            o
        });
        let shared = fut.shared();
        *self.inflight.borrow_mut() = Some(shared.clone());
        let o = shared.await;
        render(&o, &lr, false)
    }
}

fn render(o: &Outcome, lr: &LedgerRequest, replayed: bool) -> Response {
    let mut resp = match o {
        Outcome::Answer { status, body, .. } => bytes_response(*status, body.clone().into_bytes(), "application/json; charset=utf-8"),
        Outcome::Error { error, .. } => crate::routes::error_response(error, lr.style(), &lr.request_id),
    };
    let h = resp.headers_mut();
    if replayed {
        let _ = h.set("x-plumgate-replayed", "true");
    }
    match o {
        Outcome::Answer { reconciled, upstream_status, .. } => {
            if *reconciled {
                let _ = h.set("x-plumgate-reconciled", "true");
            }
            if let Some(s) = upstream_status {
                let _ = h.set("x-plumgate-upstream-status", &s.to_string());
            }
        }
        Outcome::Error { error, upstream_status } => {
            let _ = h.set("x-plumgate-error-code", error.code);
            if let Some(s) = upstream_status {
                let _ = h.set("x-plumgate-upstream-status", &s.to_string());
            }
        }
    }
    resp
}

async fn save(storage: &worker::Storage, rec: &Record, retention_secs: u32) {
    if let Ok(text) = serde_json::to_string(rec) {
        for _ in 0..3 {
            if storage.put(RECORD_KEY, text.clone()).await.is_ok() {
                break;
            }
        }
    }
    if rec.state == "done" {
        let _ = storage.set_alarm(std::time::Duration::from_secs(retention_secs as u64)).await;
    }
}

async fn forget(storage: &worker::Storage) {
    let _ = storage.delete(RECORD_KEY).await;
}

async fn run(env: &Env, cfg: &Config, storage: &worker::Storage, data: Value, fp: String, resume: bool) -> Outcome {
    let po = ops::po_number(&data).unwrap_or_default();
    if resume {
        // An earlier attempt's outcome is unknown: check before placing.
        match reconcile(env, cfg, &po).await {
            Reconciled::Found(body) => return finish_reconciled(cfg, storage, &fp, body).await,
            Reconciled::Unknown(e) => return Outcome::Error { error: e, upstream_status: None },
            Reconciled::NotFound => {}
        }
    }
    if let Some(secs) = edge_cache::penalty_left(Operation::PlaceOrder).await {
        forget(storage).await;
        return Outcome::Error { error: ApiError::rate_limited("placeOrder", secs), upstream_status: None };
    }
    let envelope = ops::envelope_text(Operation::PlaceOrder, &data);
    let mut log = RequestLog::default();
    let first = call_with_token(env, cfg, &envelope, cfg.order_timeout_ms as u64, &mut log).await;
    let failure_message = match first {
        Ok(ans) => {
            if let Some(secs) = rate_limit_penalty(ans.status, &ans.body, ans.retry_after.as_deref()) {
                edge_cache::set_penalty(Operation::PlaceOrder, secs).await;
                forget(storage).await;
                return Outcome::Error { error: ApiError::rate_limited("placeOrder", secs), upstream_status: Some(ans.status) };
            }
            let body = String::from_utf8_lossy(&ans.body).into_owned();
            if is_plum_success(Operation::PlaceOrder.name(), ans.status, &ans.body) {
                save(storage, &Record { fingerprint: fp, state: "done".into(), status: ans.status, body: body.clone(), reconciled: false }, cfg.order_retention_secs).await;
                return Outcome::Answer { status: ans.status, body, reconciled: false, upstream_status: Some(ans.status) };
            }
            if ans.status < 500 {
                // A definite refusal (validation, balance, duplicate...):
                // nothing was placed, the poNumber stays usable.
                forget(storage).await;
                return Outcome::Answer { status: ans.status, body, reconciled: false, upstream_status: Some(ans.status) };
            }
            (format!("Xoxoday answered placeOrder with HTTP {}", ans.status), false, Some(ans.status))
        }
        Err(CallError::Timeout(ms)) => (format!("Xoxoday did not answer placeOrder within {ms} ms"), true, None),
        Err(CallError::Transport) => ("could not reach Xoxoday for placeOrder (transport error)".to_string(), false, None),
        Err(CallError::Api(e)) => {
            // Token problems: nothing was executed upstream.
            forget(storage).await;
            return Outcome::Error { error: e, upstream_status: log.upstream_status };
        }
    };
    let (message, timed_out, upstream_status) = failure_message;
    match reconcile(env, cfg, &po).await {
        Reconciled::Found(body) => finish_reconciled(cfg, storage, &fp, body).await,
        Reconciled::NotFound => {
            forget(storage).await;
            let text = format!("{message}; getOrderDetails shows no order with this poNumber, so it was not placed and retrying with the same poNumber is safe");
            let error = if timed_out { ApiError::upstream_timeout(text) } else { ApiError::upstream_error(text) };
            Outcome::Error { error, upstream_status }
        }
        Reconciled::Unknown(_) => {
            let text = format!("{message}; plumgate could not confirm whether the order was placed. Retry with the same poNumber: plumgate checks getOrderDetails before placing again, so no duplicate order is made");
            let error = if timed_out { ApiError::upstream_timeout(text) } else { ApiError::upstream_error(text) };
            Outcome::Error { error, upstream_status }
        }
    }
}

async fn finish_reconciled(cfg: &Config, storage: &worker::Storage, fp: &str, details: Value) -> Outcome {
    let body = json!({"data": {"placeOrder": {"status": 1, "data": details}}}).to_string();
    save(storage, &Record { fingerprint: fp.to_string(), state: "done".into(), status: 200, body: body.clone(), reconciled: true }, cfg.order_retention_secs).await;
    Outcome::Answer { status: 200, body, reconciled: true, upstream_status: Some(200) }
}

enum Reconciled {
    Found(Value),
    NotFound,
    Unknown(ApiError),
}

async fn reconcile(env: &Env, cfg: &Config, po: &str) -> Reconciled {
    let envelope = ops::envelope_text(Operation::GetOrderDetails, &ops::reconcile_request(po));
    let mut log = RequestLog::default();
    match call_with_token(env, cfg, &envelope, cfg.upstream_timeout_ms as u64, &mut log).await {
        Ok(ans) if is_plum_success(Operation::GetOrderDetails.name(), ans.status, &ans.body) => {
            let v: Value = serde_json::from_slice(&ans.body).unwrap_or(Value::Null);
            Reconciled::Found(v["data"]["getOrderDetails"]["data"].clone())
        }
        Ok(ans) if ans.status == 404 || not_found_body(&ans.body) => Reconciled::NotFound,
        Ok(ans) => Reconciled::Unknown(ApiError::upstream_error(format!("getOrderDetails answered HTTP {}", ans.status))),
        Err(_) => Reconciled::Unknown(ApiError::upstream_error("getOrderDetails failed")),
    }
}

fn not_found_body(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("errorId").and_then(Value::as_str).map(|s| s == "PLE10016"))
        .unwrap_or(false)
}

/// Send a prepared placeOrder (and the fingerprint of the order as the
/// caller wrote it) to its ledger and relay the answer.
pub async fn place(env: &Env, data: Value, fingerprint: String, request_id: &str, style: ErrorStyle, log: &mut RequestLog) -> Result<Response, ApiError> {
    let po = ops::po_number(&data).unwrap_or_default();
    let lr = LedgerRequest { fingerprint, data, request_id: request_id.to_string(), xoxoday_errors: style.is_xoxoday() };
    let stub = env
        .durable_object(BINDING)
        .and_then(|ns| ns.get_by_name(&format!("po:{po}")))
        .map_err(|_| ApiError::misconfigured(&[format!("{BINDING} binding is missing")]))?;
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::Post);
    init.with_body(Some(serde_json::to_string(&lr).map_err(|_| ApiError::internal())?.into()));
    let req = Request::new_with_init("https://ledger/place", &init).map_err(|_| ApiError::internal())?;
    let mut from_ledger = stub
        .fetch_with_request(req)
        .await
        .map_err(|_| ApiError::upstream_error("the order ledger is unavailable; nothing was placed, retrying is safe"))?;
    // A response that came back from a Durable Object stub has immutable
    // headers: build a fresh one, so the router can add `x-request-id` and
    // CORS headers and the ledger's internal headers never reach the caller.
    let status = from_ledger.status_code();
    let body = from_ledger
        .bytes()
        .await
        .map_err(|_| ApiError::upstream_error("the order ledger answer was lost; retry with the same poNumber: plumgate checks before placing again"))?;
    let h = from_ledger.headers();
    let header = |name: &str| h.get(name).ok().flatten();
    log.upstream_status = header("x-plumgate-upstream-status").and_then(|s| s.parse().ok());
    if let Some(code) = header("x-plumgate-error-code") {
        log.error = ERROR_CODES.iter().find(|c| **c == code).copied();
    }
    if header("x-plumgate-replayed").is_some() {
        log.note = Some("replayed");
    } else if header("x-plumgate-reconciled").is_some() {
        log.note = Some("reconciled");
    }
    let mut resp = bytes_response(status, body, "application/json; charset=utf-8");
    let out = resp.headers_mut();
    for name in PASSED_HEADERS {
        if let Some(v) = header(name) {
            let _ = out.set(name, &v);
        }
    }
    Ok(resp)
}

/// Headers of a ledger answer that the caller sees.
const PASSED_HEADERS: [&str; 4] = ["x-plumgate-replayed", "x-plumgate-reconciled", "retry-after", "www-authenticate"];

const ERROR_CODES: [&str; 10] = [
    "idempotency_conflict",
    "credentials_rejected",
    "rate_limited",
    "upstream_error",
    "upstream_timeout",
    "upstream_unauthorized",
    "reauth_required",
    "misconfigured",
    "internal_error",
    "invalid_request",
];
