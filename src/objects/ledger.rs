//! `OrderLedger`: placeOrder safety (contract §5), one Durable Object per
//! `poNumber`; its client ([`send`], [`render`], [`look`]) is `client`.
//!
//! Because every request for one `poNumber` reaches the same object, the
//! idempotency check is strongly consistent: the first request asks the
//! limiter, records the order as `pending` (persisted before Xoxoday is
//! called), and places it; concurrent requests join the call in flight,
//! later ones replay the stored answer, and a different body for the same
//! `poNumber` gets `409 idempotency_conflict`. An order whose fate is
//! unknown stays `pending` and is checked with getOrderDetails from the
//! object's alarm until Xoxoday gives a definite answer; meanwhile requests
//! get `409 order_in_progress`. What each record and each outcome means is
//! `plumgate_core::ledger`'s decision table; this file makes the calls it
//! asks for (through [`crate::plum`] and [`crate::limits`]), writes the
//! record only through `commit`, and answers with the typed reply of
//! `plumgate_core::wire::ledger`, whose `fate` says placed, failed, not
//! placed or unknown. When the alarm's check settles a pending order, the
//! `KeyRegistry` is told (`plumgate_core::ledger::tell`), after the record
//! is written and retried from the alarm when it fails.
//!
//! A worker whose call lost the ledger's answer asks again at `LOOK_PATH`
//! ([`look`]) after answering its caller: the same table, except that
//! where a request would place the order a look places nothing
//! (`plumgate_core::ledger::look`), so the key's spend and audit trail
//! learn what became of the order without the caller retrying.

use crate::limits::{self, Admitted};
use crate::objects::registry;
use crate::plum;
use crate::respond::{bytes_response, empty, error_response};
use crate::runtime::clock::now_ms;
use crate::runtime::storage::{in_ms, Storage};
use crate::runtime::http::{Incoming, Outgoing};
use crate::runtime::object::durable_object;
use crate::settings;
use wasm_bindgen::prelude::wasm_bindgen;
use futures_util::future::{FutureExt, LocalBoxFuture};
use plumgate_core::config::Config;
use plumgate_core::errors::{ApiError, ErrorStyle};
use plumgate_core::ledger::tell::{self, Next, Tell, TELLS_KEY};
use plumgate_core::ledger::{
    admit, after_check, after_place, after_refusal, alarm, alarm_after_write, as_answered, found_not_placed, load, not_placed_mark, not_sent, nothing_found, read_mark,
    read_reconcile, record_not_written, unheard, AfterPlace, Admission, AlarmStep, Finish, Loaded, Look, Reconciled, Record, Store, NOT_PLACED_KEY,
    RECORD_KEY,
};
use crate::runtime::{error_event, log_event};
use plumgate_core::ops::{self, Operation};
use plumgate_core::secret::fingerprint;
use plumgate_core::wire::registry::{Op as RegistryOp, Reply};
use plumgate_core::wire::ledger::{
    previous_version_refusal, Fate, LedgerReply, LedgerRequest, Outcome, PreviousRequest, LOOK_PATH, PLACE_PATH,
};
use std::cell::RefCell;
use std::rc::Rc;
use worker::{js_sys, Env, State};

pub mod client;
pub use client::{look, render, send, Lost};
use client::{lost, refusal};
use super::authority::{Done, Work};

/// What a run hands every request that joined it: `Done::Placed`, in the
/// token authority's shared-work type (one copy of `Shared` in the wasm).
type Run = Work;

/// The outcome and fate a run ended with (`placed` is the only kind of
/// `Done` a run makes; anything else would be answered as a lost answer).
fn placed(done: Done) -> (Outcome, Fate) {
    match done {
        Done::Placed(outcome, fate) => (outcome, fate),
        _ => {
            let r = lost();
            (r.outcome, r.fate)
        }
    }
}

/// The run in flight and the fingerprint of the order it places.
type InFlight = Rc<RefCell<Option<(String, Run)>>>;

/// The Durable Object.
#[wasm_bindgen]
pub struct OrderLedger {
    state: State,
    env: Env,
    inflight: InFlight,
}

durable_object!(OrderLedger, alarm);

impl OrderLedger {
    fn open(state: State, env: Env) -> Self {
        OrderLedger { state, env, inflight: Rc::new(RefCell::new(None)) }
    }

    async fn on_fetch(&self, req: Incoming) -> worker::Result<Outgoing> {
        let path = req.path.clone();
        let body = req.bytes().await.unwrap_or_default();
        if path != PLACE_PATH && path != LOOK_PATH {
            // The run is looked at after the read: a `Ref` kept across the
            // await (a `&&`'s first operand lives to the statement's end)
            // would make a run that starts meanwhile panic on its
            // `borrow_mut`.
            let stored = read(&Storage::of(&self.state)).await;
            let clean = matches!(stored, Loaded::None) && self.inflight.borrow().is_none();
            return Ok(previous_version(&body, clean));
        }
        let reply = match (LedgerRequest::read(&body), path == LOOK_PATH) {
            (Some(lr), false) => self.place(lr).await,
            (Some(lr), true) => self.answer_look(lr).await,
            (None, _) => refusal(ApiError::internal(), Fate::NotPlaced),
        };
        Ok(bytes_response(200, serde_json::to_vec(&reply).unwrap_or_default(), "application/json"))
    }

    /// What is due (`plumgate_core::ledger::alarm`): a check of a pending
    /// order, the end of a done order's retention, or of a pending order's.
    async fn on_alarm(&self) -> worker::Result<Outgoing> {
        let Ok(cfg) = settings::load(&self.env) else {
            // Misconfigured: try again later, the record is kept.
            let _ = Storage::of(&self.state).set_alarm(in_ms(60_000.0)).await;
            return Ok(empty(200));
        };
        let storage = Storage::of(&self.state);
        // A failed read (of the record or of the tells) is neither no
        // record nor an unreadable one (which would log a fine record as
        // unreadable and set no next check), nor no tells (the list would
        // be overwritten by this run's tell): `alarm` sets the next try,
        // and only tells read are sent. (Left to the runtime's retries of
        // a failed alarm, the checks would stop after six, ~2 minutes.)
        let told = storage.get_text(TELLS_KEY).await;
        let loaded = if told.is_ok() { read(&storage).await } else { Loaded::ReadFailed };
        read_log(&self.state, &loaded);
        let retention_ms = i64::from(cfg.order_retention_secs) * 1000;
        let in_flight = self.inflight.borrow().is_some();
        let mut tells = tell::load(told.ok().flatten());
        match alarm(&loaded, in_flight, retention_ms, now_ms()) {
            AlarmStep::Nothing => {
                // A deleted record's mark: ended, or its alarm kept.
                if let Some(mark) = storage.get_text(NOT_PLACED_KEY).await.ok().flatten() {
                    match read_mark(&mark, now_ms()) {
                        Ok((_, until)) => _ = set_alarm(&storage, until).await,
                        Err(_) => {
                            let _ = storage.delete(NOT_PLACED_KEY).await;
                        }
                    }
                }
            }
            // Not set, the alarm fails: the runtime runs it again.
            AlarmStep::Later(at) => set_alarm(&storage, at).await?,
            AlarmStep::Delete => storage.delete_all().await?,
            AlarmStep::Expire => {
                if let Loaded::Some(r) = &loaded {
                    error_event(&[
                        ("event", "order_pending_expired".into()),
                        ("level", "error".into()),
                        ("po_fp", po_fp(r).as_str().into()),
                        ("sent_at_ms", r.sent_at_ms.into()),
                        ("checks", i64::from(r.checks).into()),
                        ("why", r.why.as_str().into()),
                    ]);
                }
                storage.delete_all().await?;
            }
            AlarmStep::Check(record) => {
                let asked = now_ms();
                let f = unheard(&record, after_check(&record, check(&self.env, &cfg, &record).await, asked), now_ms());
                if matches!(f.store, Store::Forget) || matches!(&f.store, Store::Save(r) if r.state == plumgate_core::ledger::RecordState::Done) {
                    log_event(&[("event", "order_reconciled".into()), ("fate", f.fate.as_str().into()), ("po_fp", po_fp(&record).as_str().into())]);
                }
                let told = tell::reconciliation(&record, &f);
                commit(&storage, f.store, &cfg, &record.fingerprint).await;
                // The record first: the registry is told after, and its
                // failure changes nothing of the ledger's.
                if let Some(req) = told {
                    let t = Tell::new(&req, now_ms());
                    if let Some(dropped) = tell::add(&mut tells, t) {
                        not_told(&dropped);
                    }
                }
            }
        }
        if !tells.is_empty() {
            tell_and_keep(&self.env, &storage, tells).await;
        }
        Ok(empty(200))
    }
}

/// Send every tell that is due, store the ones to try again (none: the
/// key goes) and make sure the alarm fires for the next. One boxed future
/// for both callers (the alarm, a new run): its code is in the wasm once.
fn tell_and_keep<'a>(env: &'a Env, storage: &'a Storage, tells: Vec<Tell>) -> LocalBoxFuture<'a, ()> {
    Box::pin(async move {
        let kept = tell_registry(env, tells).await;
        keep_tells(storage, &kept).await;
    })
}

async fn tell_registry(env: &Env, tells: Vec<Tell>) -> Vec<Tell> {
    let now = now_ms();
    let mut kept = Vec::new();
    for t in tells {
        if t.next_at_ms > now {
            kept.push(t);
            continue;
        }
        let told = matches!(registry::call_json(env, RegistryOp::Reconciled, t.request.clone()).await, Ok(Reply { error: None, .. }));
        match tell::after(t, told, now_ms()) {
            Next::Told => {}
            Next::Again(t) => kept.push(t),
            Next::GiveUp(t) => not_told(&t),
        }
    }
    kept
}

async fn keep_tells(storage: &Storage, tells: &[Tell]) {
    let Some(due) = tell::next_due(tells) else {
        let _ = storage.delete(TELLS_KEY).await;
        return;
    };
    let _ = storage.put_text(TELLS_KEY, &tell::store(tells)).await;
    let set = storage.get_alarm().await.ok().flatten();
    if set.is_none_or(|at| at > due) {
        let _ = set_alarm(storage, due).await;
    }
}

/// The error log line of a settlement the registry was never told: the
/// key's spend and audit trail stay as the caller's request left them.
fn not_told(t: &Tell) {
    error_event(&[
        ("event", "registry_not_told".into()),
        ("level", "error".into()),
        ("po_fp", t.po_fp.as_str().into()),
        ("outcome", t.outcome.as_str().into()),
        ("attempts", i64::from(t.attempts).into()),
    ]);
}

/// A request from a worker of the previous version (during a deploy): it
/// relays whatever it gets as the caller's answer, so it gets a retryable
/// error in the caller's form, and nothing is placed (`clean`: the ledger
/// holds nothing of this poNumber; see `previous_version_refusal`).
fn previous_version(body: &[u8], clean: bool) -> Outgoing {
    let (request_id, style) = match PreviousRequest::read(body) {
        Some(p) => (p.request_id, if p.xoxoday_errors { ErrorStyle::Xoxoday } else { ErrorStyle::Plumgate }),
        None => (String::new(), ErrorStyle::Plumgate),
    };
    error_response(&previous_version_refusal(clean), style, &request_id)
}

/// The record as stored.
async fn read(storage: &Storage) -> Loaded {
    load(storage.get_text(RECORD_KEY).await.map_err(|_| ()))
}

/// A fingerprint of the record's poNumber for log lines (which never carry
/// a poNumber): `secret::fingerprint` of it, as an operator can compute.
fn po_fp(r: &Record) -> String {
    fingerprint(&r.po_number().unwrap_or_default())
}

fn unreadable_log(state: &State) {
    error_event(&[
        ("event", "order_record_unreadable".into()),
        ("level", "critical".into()),
        ("key", RECORD_KEY.into()),
        ("object", state.id().to_string().as_str().into()),
    ]);
}

async fn set_alarm(storage: &Storage, at_ms: i64) -> worker::Result<()> {
    let at = js_sys::Date::new(&(at_ms.max(now_ms() + 1) as f64).into());
    storage.set_alarm(at).await
}

/// The log line of a record that cannot be read, or whose read failed.
fn read_log(state: &State, loaded: &Loaded) {
    match loaded {
        Loaded::Unreadable => unreadable_log(state),
        // Not critical: a request's caller is told to retry, which reads
        // again; the alarm tries again in a few seconds.
        Loaded::ReadFailed => error_event(&[("event", "order_record_read_failed".into()), ("key", RECORD_KEY.into())]),
        _ => {}
    }
}

impl OrderLedger {
    async fn place(&self, lr: LedgerRequest) -> LedgerReply {
        let cfg = match settings::load(&self.env) {
            Ok(c) => c,
            Err(p) => return refusal(ApiError::misconfigured(&p), Fate::NotPlaced),
        };
        let storage = Storage::of(&self.state);
        let mut loaded = read(&storage).await;
        let now = now_ms();
        read_log(&self.state, &loaded);
        // A previous version's pending record learns what to check.
        if let Loaded::Some(r) = &loaded {
            if let Some(told) = r.with_order(&lr.data, now).filter(|_| r.fingerprint == lr.fingerprint) {
                commit(&storage, Store::Save(told.clone()), &cfg, &lr.fingerprint).await;
                loaded = Loaded::Some(told);
            }
        }
        // (A borrow must end before any await: the run clears `inflight`
        // when it finishes, and a borrow held across the await would make
        // that a panic.)
        let in_flight = self.inflight.borrow().clone();
        match admit(&loaded, &lr.fingerprint, in_flight.as_ref().map(|(fp, _)| fp.as_str()), now) {
            Admission::Answer { outcome, replayed, fate, alarm_by_ms } => {
                ensure_alarm(&storage, alarm_by_ms).await;
                LedgerReply { outcome, replayed, fate }
            }
            Admission::Settled(outcome) => {
                commit(&storage, Store::Forget, &cfg, &lr.fingerprint).await;
                LedgerReply { outcome, replayed: true, fate: Fate::NotPlaced }
            }
            Admission::Join => match in_flight {
                Some((_, run)) => {
                    let (outcome, fate) = placed(run.await);
                    LedgerReply { outcome, replayed: true, fate }
                }
                // The run ended between the read and now: ask again.
                None => lost(),
            },
            Admission::Run => {
                // `inflight` is set before the first await, so a request
                // arriving during the run joins it.
                let env = self.env.clone();
                let inflight = self.inflight.clone();
                let fingerprint = lr.fingerprint.clone();
                let fut: LocalBoxFuture<'static, Done> = Box::pin(async move {
                    let (outcome, fate) = run(&env, &cfg, &storage, lr).await;
                    *inflight.borrow_mut() = None;
                    Done::Placed(outcome, fate)
                });
                let shared = fut.shared();
                *self.inflight.borrow_mut() = Some((fingerprint, shared.clone()));
                let (outcome, fate) = placed(shared.await);
                LedgerReply { outcome, replayed: false, fate }
            }
        }
    }
}

impl OrderLedger {
    /// What became of an order whose answer a worker lost, or that a spend
    /// cap turned away (`plumgate_core::ledger::look`): what a retry would be answered,
    /// the outcome of the call in flight, or unknown; never a placement.
    async fn answer_look(&self, lr: LedgerRequest) -> LedgerReply {
        let storage = Storage::of(&self.state);
        let loaded = read(&storage).await;
        let in_flight = self.inflight.borrow().clone();
        let now = now_ms();
        let mark = storage.get_text(NOT_PLACED_KEY).await.ok().flatten();
        let not_placed = mark.as_deref().and_then(|m| read_mark(m, now).ok()).map(|(fp, _)| fp);
        match plumgate_core::ledger::look(&loaded, &lr.fingerprint, in_flight.as_ref().map(|(fp, _)| fp.as_str()), not_placed, now) {
            Look::Answer { outcome, fate, alarm_by_ms } => {
                ensure_alarm(&storage, alarm_by_ms).await;
                LedgerReply { outcome, replayed: true, fate }
            }
            Look::Join => match in_flight {
                Some((_, run)) => {
                    let (outcome, fate) = placed(run.await);
                    LedgerReply { outcome, replayed: true, fate }
                }
                None => refusal(nothing_found(), Fate::Unknown),
            },
            Look::NotPlaced => refusal(found_not_placed(), Fate::NotPlaced),
            Look::Nothing => refusal(nothing_found(), Fate::Unknown),
        }
    }
}

/// A pending record's next check has an alarm by `by` (one already set is
/// left as it is).
async fn ensure_alarm(storage: &Storage, by: Option<i64>) {
    if let Some(by) = by {
        if storage.get_alarm().await.ok().flatten().is_none() {
            let _ = set_alarm(storage, by).await;
        }
    }
}

/// The one write of the record: what the decision table asked for, and
/// the alarm it needs (the next check of a `pending` record, the end of a
/// `done` one's retention; after a failed write, a check of the record
/// stored before: `ledger::alarm_after_write`). Retried, since a lost
/// `done` would let a retry place the order again. A record deleted with nothing placed leaves the
/// mark of its order (`fp`, `NOT_PLACED_KEY`) for a look, and the alarm
/// that ends it. Returns whether the record is as asked.
async fn commit(storage: &Storage, store: Store, cfg: &Config, fp: &str) -> bool {
    let written = match &store {
        Store::Keep => true,
        Store::Forget => {
            let (mark, until) = not_placed_mark(fp, now_ms());
            let _ = storage.put_text(NOT_PLACED_KEY, &mark).await;
            let _ = set_alarm(storage, until).await;
            storage.delete(RECORD_KEY).await.is_ok()
        }
        Store::Save(rec) => {
            let Ok(text) = serde_json::to_string(rec) else { return false };
            let mut saved = false;
            for _ in 0..3 {
                if storage.put_text(RECORD_KEY, &text).await.is_ok() {
                    saved = true;
                    break;
                }
            }
            saved
        }
    };
    let retention_ms = i64::from(cfg.order_retention_secs) * 1000;
    if let Some(at) = alarm_after_write(&store, written, retention_ms, now_ms()) {
        let _ = set_alarm(storage, at).await;
    }
    written
}

/// Carry out a [`Finish`]: the penalty, the record, the outcome. A
/// penalty's `429` says how long the limiter holds it (a repeat of an
/// unstated one lasts longer than the least the answer named).
async fn finish(env: &Env, cfg: &Config, storage: &Storage, f: Finish, fp: &str) -> (Outcome, Fate) {
    let mut outcome = f.outcome;
    if let Some(observed) = f.penalty {
        let secs = limits::report(env, cfg, Operation::PlaceOrder, observed).await;
        if let Outcome::Error { error, .. } = &mut outcome {
            *error = ApiError::rate_limited(Operation::PlaceOrder.name(), secs);
        }
    }
    commit(storage, f.store, cfg, fp).await;
    (outcome, f.fate)
}

/// getOrderDetails for the record's poNumber, within the limiter's budget
/// (a refusal is a check not made: [`Reconciled::NotAsked`]).
async fn check(env: &Env, cfg: &Config, record: &Record) -> Reconciled {
    let Some(po) = record.po_number() else { return Reconciled::Unknown };
    if !record.checkable_on(cfg.account_id()) {
        error_event(&[("event", "ledger_other_account".into()), ("level", "error".into()), ("po_fp", po_fp(record).as_str().into()), ("action", "kept pending: switch back to the account it was sent to".into())]);
        return Reconciled::Unknown;
    }
    if let Admitted::Refused(e) = limits::admit(env, cfg, Operation::GetOrderDetails).await {
        return Reconciled::NotAsked(e.retry_after_secs.unwrap_or(1));
    }
    let envelope = ops::envelope_text(Operation::GetOrderDetails, &ops::reconcile_request(&po));
    let (result, _) = plum::call_with_token(env, cfg, &envelope, cfg.upstream_timeout_ms as u64).await;
    let reconciled = read_reconcile(result);
    if let Reconciled::Limited(observed) = reconciled {
        // Every isolate stops calling getOrderDetails until it ends.
        limits::report(env, cfg, Operation::GetOrderDetails, observed).await;
    }
    reconciled
}

/// One placeOrder, start to end (`plumgate_core::ledger`'s tables).
async fn run(env: &Env, cfg: &Config, storage: &Storage, lr: LedgerRequest) -> (Outcome, Fate) {
    let LedgerRequest { data, fingerprint: fp } = lr;
    let tells = tell::load(storage.get_text(TELLS_KEY).await.ok().flatten());
    if !tells.is_empty() {
        tell_and_keep(env, storage, tell::before_run(tells)).await;
    }
    if let Admitted::Refused(e) = limits::admit(env, cfg, Operation::PlaceOrder).await {
        return finish(env, cfg, storage, not_sent(e), &fp).await;
    }
    let pending = Record::pending(&fp, &data, now_ms(), i64::from(cfg.order_timeout_ms), cfg.token_policy.refresh_timeout_ms).on_account(cfg.account_id());
    if !commit(storage, Store::Save(pending.clone()), cfg, &fp).await {
        return finish(env, cfg, storage, record_not_written(), &fp).await;
    }
    let envelope = ops::envelope_text(Operation::PlaceOrder, &data);
    let (result, trace) = plum::call_with_token(env, cfg, &envelope, cfg.order_timeout_ms as u64).await;
    // What Xoxoday answered the placeOrder itself, for the log line of a
    // request whose order is then checked.
    let answered = result.as_ref().ok().map(|a| a.status);
    // A look counts as of when it was asked: its answer may come up to
    // the call's timeout later, and says what Xoxoday knew then.
    let f = match after_place(result, trace.upstream_status, &pending, now_ms()) {
        AfterPlace::Finish(f) => f,
        AfterPlace::Check(record) => {
            let asked = now_ms();
            as_answered(after_check(&record, check(env, cfg, &record).await, asked), answered)
        }
        AfterPlace::Confirm(record) => {
            let asked = now_ms();
            as_answered(after_refusal(&record, check(env, cfg, &record).await, asked), answered)
        }
    };
    finish(env, cfg, storage, f, &fp).await
}
