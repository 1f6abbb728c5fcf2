//! `OrderLedger`: placeOrder safety (contract §5), one Durable Object per
//! `poNumber`, and its client ([`place`]).
//!
//! Because every request for one `poNumber` reaches the same object, the
//! idempotency check is strongly consistent: the first request records the
//! order as `pending` (persisted before Xoxoday is called), concurrent
//! requests join the call in flight, later ones replay the stored answer,
//! and a different body for the same `poNumber` gets `409
//! idempotency_conflict`. What each record and each upstream outcome means
//! is `plumgate_core::ledger`'s decision table; this file makes the calls it
//! asks for (through [`crate::plum`]), writes the record only through
//! [`commit`], and answers with the typed reply of
//! `plumgate_core::wire::ledger`, which [`place`] renders for the caller.

use crate::edge_cache;
use crate::plum;
use crate::respond::{bytes_response, error_response, JSON};
use crate::runtime::stub::{self, StubError};
use crate::settings;
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use plumgate_core::config::Config;
use plumgate_core::errors::{ApiError, ErrorStyle};
use plumgate_core::ledger::{
    admit, after_place, after_reconcile, before_place, penalty_running, read_reconcile, AfterPlace, Admission, Finish,
    Reconciled, Record, RecordState, Store, RECORD_KEY,
};
use plumgate_core::logline::Trace;
use plumgate_core::ops::{self, Operation};
use plumgate_core::wire::ledger::{
    object_name, previous_version_refusal, LedgerReply, LedgerRequest, Outcome, PreviousRequest, PLACE_PATH, PLACE_URL,
};
use serde_json::Value;
use std::cell::RefCell;
use std::rc::Rc;
use worker::{durable_object, Env, Request, Response, State};

/// Binding name of the ledger namespace.
pub const BINDING: &str = "ORDER_LEDGER";

/// Send a prepared placeOrder (and the fingerprint of the order as the
/// caller wrote it) to its ledger, and render the reply for the caller:
/// Xoxoday's answer, or plumgate's error in the route's `style`, with
/// `x-plumgate-replayed` / `x-plumgate-reconciled`. The [`Trace`] says what
/// the log line needs (upstream status, note, the error code).
pub async fn place(env: &Env, data: Value, fingerprint: String, request_id: &str, style: ErrorStyle) -> (Result<Response, ApiError>, Trace) {
    let name = object_name(&ops::po_number(&data).unwrap_or_default());
    let body = serde_json::to_string(&LedgerRequest { data, fingerprint }).ok();
    let sent = stub::post(env, BINDING, &name, PLACE_URL, None, body).await;
    let reply = match sent {
        Ok((_, bytes)) => serde_json::from_slice::<LedgerReply>(&bytes).map_err(|_| {
            ApiError::upstream_error("the order ledger answer was lost; retry with the same poNumber: plumgate checks before placing again")
        }),
        Err(StubError::Binding) => Err(ApiError::misconfigured(&[format!("{BINDING} binding is missing")])),
        Err(StubError::Request) => Err(ApiError::internal()),
        Err(StubError::Call(_)) => Err(ApiError::upstream_error("the order ledger is unavailable; nothing was placed, retrying is safe")),
        Err(StubError::Body) => Err(ApiError::upstream_error(
            "the order ledger answer was lost; retry with the same poNumber: plumgate checks before placing again",
        )),
    };
    let LedgerReply { outcome, replayed } = match reply {
        Ok(r) => r,
        Err(e) => return (Err(e), Trace::default()),
    };
    let mut trace = Trace { upstream_status: outcome.upstream_status(), ..Trace::default() };
    let (mut resp, reconciled) = match outcome {
        Outcome::Answer { status, body, reconciled, .. } => (bytes_response(status, body.into_bytes(), JSON), reconciled),
        Outcome::Error { error, .. } => {
            trace.error = Some(error.code.as_str());
            (error_response(&error, style, request_id), false)
        }
    };
    let h = resp.headers_mut();
    if replayed {
        trace.note = Some("replayed");
        let _ = h.set("x-plumgate-replayed", "true");
    }
    if reconciled {
        trace.note = trace.note.or(Some("reconciled"));
        let _ = h.set("x-plumgate-reconciled", "true");
    }
    (Ok(resp), trace)
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
        let path = req.path();
        let body = req.bytes().await.unwrap_or_default();
        if path != PLACE_PATH {
            return Ok(previous_version(&body));
        }
        let reply = match serde_json::from_slice::<LedgerRequest>(&body) {
            Ok(lr) => self.place(lr).await,
            Err(_) => LedgerReply { outcome: error(ApiError::internal(), None), replayed: false },
        };
        Ok(bytes_response(200, serde_json::to_vec(&reply).unwrap_or_default(), "application/json"))
    }

    /// Retention: `ORDER_RETENTION_SECS` after an order is done, its record
    /// goes; a later request with that poNumber is sent to Xoxoday again
    /// (which rejects a duplicate poNumber itself).
    async fn alarm(&self) -> worker::Result<Response> {
        self.state.storage().delete_all().await?;
        Response::empty()
    }
}

/// A request from a worker of the previous version (during a deploy): it
/// relays whatever it gets as the caller's answer, so it gets a retryable
/// error in the caller's form, and nothing is placed.
fn previous_version(body: &[u8]) -> Response {
    let (request_id, style) = match serde_json::from_slice::<PreviousRequest>(body) {
        Ok(p) => (p.request_id, if p.xoxoday_errors { ErrorStyle::Xoxoday } else { ErrorStyle::Plumgate }),
        Err(_) => (String::new(), ErrorStyle::Plumgate),
    };
    error_response(&previous_version_refusal(), style, &request_id)
}

fn error(e: ApiError, upstream_status: Option<u16>) -> Outcome {
    Outcome::Error { error: e, upstream_status }
}

impl OrderLedger {
    async fn place(&self, lr: LedgerRequest) -> LedgerReply {
        let answer = |outcome, replayed| LedgerReply { outcome, replayed };
        let cfg = match settings::load(&self.env) {
            Ok(c) => c,
            Err(p) => return answer(error(ApiError::misconfigured(&p), None), false),
        };
        let storage = self.state.storage();
        let record: Option<Record> = storage.get::<String>(RECORD_KEY).await.ok().flatten().and_then(|t| serde_json::from_str(&t).ok());
        let resume = match admit(record.as_ref(), &lr.fingerprint) {
            Admission::Answer { outcome, replayed } => return answer(outcome, replayed),
            Admission::Run { resume } => resume,
        };
        // Join the call in flight for this poNumber. (The borrow must end
        // before the await: the run clears `inflight` when it finishes, and
        // a borrow held across the await would make that a panic.)
        let joined = self.inflight.borrow().clone();
        if let Some(run) = joined {
            return answer(run.await, true);
        }
        if !resume && !commit(&storage, Store::Save(Record::pending(&lr.fingerprint)), cfg.order_retention_secs).await {
            let e = ApiError::upstream_error("order ledger unavailable; nothing was placed, retrying is safe");
            return answer(error(e, None), false);
        }
        let env = self.env.clone();
        let inflight = self.inflight.clone();
        let fut: LocalBoxFuture<'static, Outcome> = Box::pin(async move {
            let o = run(&env, &cfg, &storage, lr, resume).await;
            *inflight.borrow_mut() = None;
            o
        });
        let shared = fut.shared();
        *self.inflight.borrow_mut() = Some(shared.clone());
        answer(shared.await, false)
    }
}

/// The one write of the record: what the decision table asked for (a
/// `done` record also starts the retention alarm). Retried, since a lost
/// `done` would let a retry place the order again. Returns whether the
/// record is as asked.
async fn commit(storage: &worker::Storage, store: Store, retention_secs: u32) -> bool {
    match store {
        Store::Keep => true,
        Store::Forget => storage.delete(RECORD_KEY).await.is_ok(),
        Store::Save(rec) => {
            let Ok(text) = serde_json::to_string(&rec) else { return false };
            let mut saved = false;
            for _ in 0..3 {
                if storage.put(RECORD_KEY, text.clone()).await.is_ok() {
                    saved = true;
                    break;
                }
            }
            if rec.state == RecordState::Done {
                let _ = storage.set_alarm(std::time::Duration::from_secs(retention_secs as u64)).await;
            }
            saved
        }
    }
}

/// Carry out a [`Finish`]: the penalty, the record, the outcome.
async fn finish(cfg: &Config, storage: &worker::Storage, f: Finish) -> Outcome {
    if let Some(secs) = f.penalty_secs {
        edge_cache::set_penalty(Operation::PlaceOrder, secs).await;
    }
    commit(storage, f.store, cfg.order_retention_secs).await;
    f.outcome
}

/// getOrderDetails for `po`.
async fn reconcile(env: &Env, cfg: &Config, po: &str) -> Reconciled {
    let envelope = ops::envelope_text(Operation::GetOrderDetails, &ops::reconcile_request(po));
    let (result, _) = plum::call_with_token(env, cfg, &envelope, cfg.upstream_timeout_ms as u64).await;
    read_reconcile(result)
}

/// One placeOrder, start to end (`plumgate_core::ledger`'s tables).
async fn run(env: &Env, cfg: &Config, storage: &worker::Storage, lr: LedgerRequest, resume: bool) -> Outcome {
    let LedgerRequest { data, fingerprint: fp } = lr;
    let po = ops::po_number(&data).unwrap_or_default();
    if resume {
        // An earlier attempt's outcome is unknown: check before placing.
        if let Some(f) = before_place(reconcile(env, cfg, &po).await, &fp) {
            return finish(cfg, storage, f).await;
        }
    }
    if let Some(secs) = edge_cache::penalty_left(Operation::PlaceOrder).await {
        return finish(cfg, storage, penalty_running(secs)).await;
    }
    let envelope = ops::envelope_text(Operation::PlaceOrder, &data);
    let (result, trace) = plum::call_with_token(env, cfg, &envelope, cfg.order_timeout_ms as u64).await;
    let f = match after_place(result, trace.upstream_status, &fp) {
        AfterPlace::Finish(f) => f,
        AfterPlace::Reconcile(uncertain) => after_reconcile(reconcile(env, cfg, &po).await, uncertain, &fp),
    };
    finish(cfg, storage, f).await
}
