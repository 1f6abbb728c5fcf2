//! placeOrder safety (contract §5), decided without I/O: the `OrderLedger`
//! Durable Object's decision table.
//!
//! One ledger object per `poNumber` keeps one [`Record`]. Its shell
//! (`src/objects/ledger.rs`) reads the record, asks [`admit`], and for a run
//! makes the calls these functions ask for (getOrderDetails, placeOrder),
//! hands each result back, and carries out the [`Finish`] it gets: one
//! write of the record ([`Store`]), a penalty to start, the outcome.
//!
//! The table:
//!
//! | record | what happens |
//! |---|---|
//! | for another order body | `409 idempotency_conflict` |
//! | `done` | its answer again, replayed |
//! | `pending` (an earlier outcome unknown) | reconcile first ([`before_place`]) |
//! | none | record `pending`, then place |
//!
//! | placeOrder's outcome ([`after_place`]) | record | caller gets |
//! |---|---|---|
//! | success | `done` | the answer |
//! | rate-limit answer | forgotten, penalty started | `429 rate_limited` |
//! | other answer under 500 (a definite refusal) | forgotten | the answer |
//! | 5xx, timeout, transport error | reconcile ([`after_reconcile`]) | |
//! | token problem (nothing executed) | forgotten | the error |
//!
//! | reconciliation ([`read_reconcile`]) | record | caller gets |
//! |---|---|---|
//! | the order exists | `done`, reconciled | it, in placeOrder's shape |
//! | no such order | forgotten | an error saying a retry is safe |
//! | unknown (the check failed) | stays `pending` | an error; the next request checks again |
//!
//! An order is never re-sent blindly: a record stays `pending` until its
//! fate is known, and a `pending` record is checked before anything is
//! placed. (A 401 is retried once inside the Plum client: nothing was
//! executed.)

use crate::errors::{ApiError, CallError};
use crate::http::HttpAnswer;
use crate::ops::Operation;
use crate::upstream::{is_plum_success, rate_limit_penalty};
use crate::wire::ledger::Outcome;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Storage key of the record.
pub const RECORD_KEY: &str = "order";

/// Xoxoday's errorId for "no such order" (getOrderDetails).
const ORDER_NOT_FOUND: &str = "PLE10016";

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    /// Written before Xoxoday is called; the outcome is not known yet.
    Pending,
    /// The outcome is known; `status` and `body` are Xoxoday's answer.
    Done,
}

/// What the ledger keeps per `poNumber` (storage key [`RECORD_KEY`], JSON
/// text; `docs/storage.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// `ops::order_fingerprint` of the order body.
    pub fingerprint: String,
    /// Where it stands.
    pub state: RecordState,
    /// Xoxoday's status (0 while pending).
    pub status: u16,
    /// Xoxoday's body, replayed verbatim (empty while pending).
    pub body: String,
    /// Found by reconciliation.
    pub reconciled: bool,
}

impl Record {
    /// The record written before Xoxoday is called.
    pub fn pending(fingerprint: &str) -> Record {
        Record { fingerprint: fingerprint.to_string(), state: RecordState::Pending, status: 0, body: String::new(), reconciled: false }
    }

    fn done(fingerprint: &str, status: u16, body: String, reconciled: bool) -> Record {
        Record { fingerprint: fingerprint.to_string(), state: RecordState::Done, status, body, reconciled }
    }
}

/// What a request with order `fingerprint` meets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Answered from the record.
    Answer {
        /// What the caller gets.
        outcome: Outcome,
        /// From a stored answer.
        replayed: bool,
    },
    /// Join the call in flight for this `poNumber`, if any; else run one.
    /// `resume`: a `pending` record exists (an earlier outcome is unknown),
    /// so reconcile before placing; otherwise record `pending` first.
    Run {
        /// A `pending` record exists.
        resume: bool,
    },
}

/// The first row of the table: what the stored `record` means for a
/// request with order `fingerprint`.
pub fn admit(record: Option<&Record>, fingerprint: &str) -> Admission {
    match record {
        Some(r) if r.fingerprint != fingerprint => Admission::Answer {
            outcome: Outcome::Error { error: ApiError::idempotency_conflict(), upstream_status: None },
            replayed: false,
        },
        Some(r) if r.state == RecordState::Done => Admission::Answer {
            outcome: Outcome::Answer { status: r.status, body: r.body.clone(), reconciled: r.reconciled, upstream_status: None },
            replayed: true,
        },
        Some(_) => Admission::Run { resume: true },
        None => Admission::Run { resume: false },
    }
}

/// What happens to the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// Leave it as it is.
    Keep,
    /// Write this (a `done` record starts the retention alarm).
    Save(Record),
    /// Delete it: the `poNumber` may be used again.
    Forget,
}

/// How a run ends: one write, a penalty to start, what the caller gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    /// The record's fate.
    pub store: Store,
    /// A rate-limit penalty on placeOrder to start (seconds).
    pub penalty_secs: Option<u64>,
    /// What the caller gets.
    pub outcome: Outcome,
}

fn finish(store: Store, outcome: Outcome) -> Finish {
    Finish { store, penalty_secs: None, outcome }
}

/// placeOrder is under a rate-limit penalty: nothing is sent, the record
/// goes (the `poNumber` stays usable), the caller gets `429`.
pub fn penalty_running(secs: u64) -> Finish {
    finish(Store::Forget, Outcome::Error { error: ApiError::rate_limited(Operation::PlaceOrder.name(), secs), upstream_status: None })
}

/// An outcome that does not say whether the order was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncertain {
    /// What happened, a safe sentence.
    pub message: String,
    /// It was a timeout (the caller gets `504`, else `502`).
    pub timed_out: bool,
    /// What Xoxoday answered, if anything.
    pub upstream_status: Option<u16>,
}

/// After placeOrder: finished, or reconcile first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterPlace {
    /// The outcome is known.
    Finish(Finish),
    /// Ask getOrderDetails, then [`after_reconcile`].
    Reconcile(Uncertain),
}

/// The second table: what placeOrder's `result` means. `call_upstream_status`
/// is what Xoxoday answered inside the call when it failed on the token (a
/// 401), for the log.
pub fn after_place(result: Result<HttpAnswer, CallError>, call_upstream_status: Option<u16>, fingerprint: &str) -> AfterPlace {
    let uncertain = |message: String, timed_out, upstream_status| AfterPlace::Reconcile(Uncertain { message, timed_out, upstream_status });
    let ans = match result {
        Ok(ans) => ans,
        Err(CallError::Timeout(ms)) => return uncertain(format!("Xoxoday did not answer placeOrder within {ms} ms"), true, None),
        Err(CallError::Transport) => return uncertain("could not reach Xoxoday for placeOrder (transport error)".into(), false, None),
        // Token problems: nothing was executed upstream.
        Err(CallError::Api(error)) => {
            return AfterPlace::Finish(finish(Store::Forget, Outcome::Error { error, upstream_status: call_upstream_status }))
        }
    };
    let upstream_status = Some(ans.status);
    if let Some(secs) = rate_limit_penalty(ans.status, &ans.body, ans.retry_after.as_deref()) {
        let error = ApiError::rate_limited(Operation::PlaceOrder.name(), secs);
        return AfterPlace::Finish(Finish { store: Store::Forget, penalty_secs: Some(secs), outcome: Outcome::Error { error, upstream_status } });
    }
    if ans.status >= 500 {
        return uncertain(format!("Xoxoday answered placeOrder with HTTP {}", ans.status), false, upstream_status);
    }
    let success = is_plum_success(Operation::PlaceOrder.name(), ans.status, &ans.body);
    let body = String::from_utf8_lossy(&ans.body).into_owned();
    let outcome = Outcome::Answer { status: ans.status, body: body.clone(), reconciled: false, upstream_status };
    AfterPlace::Finish(if success {
        finish(Store::Save(Record::done(fingerprint, ans.status, body, false)), outcome)
    } else {
        // A definite refusal (validation, balance, duplicate...): nothing
        // was placed, the poNumber stays usable.
        finish(Store::Forget, outcome)
    })
}

/// What getOrderDetails said about the `poNumber`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// The order exists (its `data`).
    Found(Value),
    /// Xoxoday has no order with it.
    NotFound,
    /// The check itself failed.
    Unknown(ApiError),
}

/// Read getOrderDetails' `result` (the request is `ops::reconcile_request`).
pub fn read_reconcile(result: Result<HttpAnswer, CallError>) -> Reconciled {
    let op = Operation::GetOrderDetails.name();
    match result {
        Ok(ans) if is_plum_success(op, ans.status, &ans.body) => {
            let v: Value = serde_json::from_slice(&ans.body).unwrap_or(Value::Null);
            Reconciled::Found(v["data"][op]["data"].clone())
        }
        Ok(ans) if ans.status == 404 || names_no_order(&ans.body) => Reconciled::NotFound,
        Ok(ans) => Reconciled::Unknown(ApiError::upstream_error(format!("getOrderDetails answered HTTP {}", ans.status))),
        Err(_) => Reconciled::Unknown(ApiError::upstream_error("getOrderDetails failed")),
    }
}

fn names_no_order(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .is_some_and(|v| v.get("errorId").and_then(Value::as_str) == Some(ORDER_NOT_FOUND))
}

/// The found order, answered in placeOrder's shape and recorded `done`.
fn found(fingerprint: &str, details: Value) -> Finish {
    let body = json!({"data": {"placeOrder": {"status": 1, "data": details}}}).to_string();
    let outcome = Outcome::Answer { status: 200, body: body.clone(), reconciled: true, upstream_status: Some(200) };
    finish(Store::Save(Record::done(fingerprint, 200, body, true)), outcome)
}

/// A `pending` record met again: what reconciling it said. `None`: no
/// order was placed, so place it now.
pub fn before_place(reconciled: Reconciled, fingerprint: &str) -> Option<Finish> {
    match reconciled {
        Reconciled::Found(details) => Some(found(fingerprint, details)),
        Reconciled::NotFound => None,
        Reconciled::Unknown(error) => Some(finish(Store::Keep, Outcome::Error { error, upstream_status: None })),
    }
}

/// The third table: what reconciling after an uncertain outcome means.
pub fn after_reconcile(reconciled: Reconciled, uncertain: Uncertain, fingerprint: &str) -> Finish {
    let Uncertain { message, timed_out, upstream_status } = uncertain;
    let error = |text: String| if timed_out { ApiError::upstream_timeout(text) } else { ApiError::upstream_error(text) };
    match reconciled {
        Reconciled::Found(details) => found(fingerprint, details),
        Reconciled::NotFound => finish(
            Store::Forget,
            Outcome::Error {
                error: error(format!("{message}; getOrderDetails shows no order with this poNumber, so it was not placed and retrying with the same poNumber is safe")),
                upstream_status,
            },
        ),
        Reconciled::Unknown(_) => finish(
            Store::Keep,
            Outcome::Error {
                error: error(format!("{message}; plumgate could not confirm whether the order was placed. Retry with the same poNumber: plumgate checks getOrderDetails before placing again, so no duplicate order is made")),
                upstream_status,
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::ErrorCode;

    const FP: &str = "fp-1";

    fn answer(status: u16, body: &str) -> Result<HttpAnswer, CallError> {
        Ok(HttpAnswer { status, body: body.as_bytes().to_vec(), retry_after: None })
    }

    fn error_of(o: &Outcome) -> &ApiError {
        match o {
            Outcome::Error { error, .. } => error,
            other => panic!("{other:?}"),
        }
    }

    const PLACED: &str = r#"{"data":{"placeOrder":{"status":1,"data":{"orderId":7,"vouchers":[]}}}}"#;

    #[test]
    fn record_json_is_pinned() {
        let r = Record::done(FP, 200, PLACED.into(), true);
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text, format!(r#"{{"fingerprint":"fp-1","state":"done","status":200,"body":{},"reconciled":true}}"#, serde_json::to_string(PLACED).unwrap()));
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), r);
        assert_eq!(
            serde_json::to_string(&Record::pending(FP)).unwrap(),
            r#"{"fingerprint":"fp-1","state":"pending","status":0,"body":"","reconciled":false}"#
        );
        // A record the previous version wrote reads the same.
        let old: Record = serde_json::from_str(r#"{"fingerprint":"f","state":"pending","status":0,"body":"","reconciled":false}"#).unwrap();
        assert_eq!(old.state, RecordState::Pending);
        assert!(serde_json::from_str::<Record>(r#"{"fingerprint":"f","state":"maybe","status":0,"body":"","reconciled":false}"#).is_err());
    }

    #[test]
    fn admit_every_arm() {
        let done = Record::done(FP, 200, PLACED.into(), false);
        match admit(Some(&done), "fp-2") {
            Admission::Answer { outcome, replayed: false } => assert_eq!(error_of(&outcome).code, ErrorCode::IdempotencyConflict),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            admit(Some(&done), FP),
            Admission::Answer {
                outcome: Outcome::Answer { status: 200, body: PLACED.into(), reconciled: false, upstream_status: None },
                replayed: true
            }
        );
        assert!(matches!(admit(Some(&Record::pending("fp-2")), FP), Admission::Answer { .. }), "another body, even pending");
        assert_eq!(admit(Some(&Record::pending(FP)), FP), Admission::Run { resume: true });
        assert_eq!(admit(None, FP), Admission::Run { resume: false });
    }

    #[test]
    fn a_running_penalty_sends_nothing_and_frees_the_po_number() {
        let f = penalty_running(12);
        assert_eq!((f.store.clone(), f.penalty_secs), (Store::Forget, None));
        let e = error_of(&f.outcome);
        assert_eq!((e.status, e.code, e.retry_after_secs), (429, ErrorCode::RateLimited, Some(12)));
    }

    #[test]
    fn after_place_every_arm() {
        // Success: done.
        match after_place(answer(200, PLACED), None, FP) {
            AfterPlace::Finish(f) => {
                assert_eq!(f.store, Store::Save(Record::done(FP, 200, PLACED.into(), false)));
                assert_eq!(f.outcome, Outcome::Answer { status: 200, body: PLACED.into(), reconciled: false, upstream_status: Some(200) });
                assert_eq!(f.penalty_secs, None);
            }
            other => panic!("{other:?}"),
        }
        // Rate-limited (in a 200 or a 429): forgotten, penalty started.
        for (status, body) in [(200, r#"{"errors":[{"message":"auth.request_limit_exceeded","penaltySeconds":30}]}"#), (429, "")] {
            match after_place(answer(status, body), None, FP) {
                AfterPlace::Finish(f) => {
                    assert_eq!(f.store, Store::Forget);
                    let secs = if status == 429 { 60 } else { 30 };
                    assert_eq!(f.penalty_secs, Some(secs));
                    assert_eq!(error_of(&f.outcome).retry_after_secs, Some(secs));
                    assert_eq!(f.outcome.upstream_status(), Some(status));
                }
                other => panic!("{other:?}"),
            }
        }
        // A definite refusal (4xx, or 200 without status 1): forgotten, passed on.
        for (status, body) in [(400, r#"{"code":400,"errorId":"PLE10001"}"#), (200, r#"{"data":{"placeOrder":{"status":0}}}"#), (401, r#"{"errorId":"PLE10019"}"#)] {
            match after_place(answer(status, body), None, FP) {
                AfterPlace::Finish(f) => {
                    assert_eq!(f.store, Store::Forget);
                    assert_eq!(f.outcome, Outcome::Answer { status, body: body.into(), reconciled: false, upstream_status: Some(status) });
                }
                other => panic!("{other:?}"),
            }
        }
        // 5xx, timeout, transport: reconcile.
        assert_eq!(
            after_place(answer(503, "busy"), None, FP),
            AfterPlace::Reconcile(Uncertain { message: "Xoxoday answered placeOrder with HTTP 503".into(), timed_out: false, upstream_status: Some(503) })
        );
        assert_eq!(
            after_place(Err(CallError::Timeout(130_000)), None, FP),
            AfterPlace::Reconcile(Uncertain { message: "Xoxoday did not answer placeOrder within 130000 ms".into(), timed_out: true, upstream_status: None })
        );
        assert_eq!(
            after_place(Err(CallError::Transport), None, FP),
            AfterPlace::Reconcile(Uncertain { message: "could not reach Xoxoday for placeOrder (transport error)".into(), timed_out: false, upstream_status: None })
        );
        // A token problem: nothing executed, forgotten, the error with the 401 seen.
        match after_place(Err(CallError::Api(ApiError::upstream_unauthorized())), Some(401), FP) {
            AfterPlace::Finish(f) => {
                assert_eq!(f.store, Store::Forget);
                assert_eq!(f.outcome, Outcome::Error { error: ApiError::upstream_unauthorized(), upstream_status: Some(401) });
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn read_reconcile_every_arm() {
        let found = r#"{"data":{"getOrderDetails":{"status":1,"data":{"orderId":7,"orderStatus":"complete"}}}}"#;
        assert_eq!(read_reconcile(answer(200, found)), Reconciled::Found(json!({"orderId":7,"orderStatus":"complete"})));
        assert_eq!(read_reconcile(answer(404, "")), Reconciled::NotFound);
        assert_eq!(read_reconcile(answer(400, r#"{"code":400,"errorId":"PLE10016","error":"no order"}"#)), Reconciled::NotFound);
        assert_eq!(read_reconcile(answer(500, "")), Reconciled::Unknown(ApiError::upstream_error("getOrderDetails answered HTTP 500")));
        assert_eq!(read_reconcile(answer(200, r#"{"data":{"getOrderDetails":{"status":0}}}"#)), Reconciled::Unknown(ApiError::upstream_error("getOrderDetails answered HTTP 200")));
        assert_eq!(read_reconcile(Err(CallError::Transport)), Reconciled::Unknown(ApiError::upstream_error("getOrderDetails failed")));
    }

    #[test]
    fn a_pending_record_is_checked_before_placing() {
        match before_place(Reconciled::Found(json!({"orderId": 7})), FP) {
            Some(f) => {
                assert_eq!(f.outcome, Outcome::Answer {
                    status: 200,
                    body: r#"{"data":{"placeOrder":{"data":{"orderId":7},"status":1}}}"#.into(),
                    reconciled: true,
                    upstream_status: Some(200)
                });
                assert!(matches!(f.store, Store::Save(Record { state: RecordState::Done, reconciled: true, .. })));
            }
            None => panic!("found means answered"),
        }
        assert_eq!(before_place(Reconciled::NotFound, FP), None, "not placed: place it now");
        let f = before_place(Reconciled::Unknown(ApiError::upstream_error("getOrderDetails failed")), FP).unwrap();
        assert_eq!(f.store, Store::Keep, "still unknown: stays pending");
        assert_eq!(f.outcome, Outcome::Error { error: ApiError::upstream_error("getOrderDetails failed"), upstream_status: None });
    }

    #[test]
    fn after_reconcile_every_arm() {
        let u = |timed_out| Uncertain { message: "M".into(), timed_out, upstream_status: Some(502) };
        let f = after_reconcile(Reconciled::Found(json!({"orderId": 7})), u(false), FP);
        assert!(matches!(f.outcome, Outcome::Answer { reconciled: true, status: 200, .. }));
        assert!(matches!(f.store, Store::Save(_)));
        for timed_out in [false, true] {
            let f = after_reconcile(Reconciled::NotFound, u(timed_out), FP);
            assert_eq!(f.store, Store::Forget, "never placed: the poNumber is free");
            let e = error_of(&f.outcome);
            assert_eq!(e.code, if timed_out { ErrorCode::UpstreamTimeout } else { ErrorCode::UpstreamError });
            assert!(e.message.starts_with("M; ") && e.message.contains("retrying with the same poNumber is safe"), "{}", e.message);
            assert_eq!(f.outcome.upstream_status(), Some(502));

            let f = after_reconcile(Reconciled::Unknown(ApiError::upstream_error("x")), u(timed_out), FP);
            assert_eq!(f.store, Store::Keep, "fate unknown: stays pending");
            let e = error_of(&f.outcome);
            assert_eq!(e.code, if timed_out { ErrorCode::UpstreamTimeout } else { ErrorCode::UpstreamError });
            assert!(e.message.contains("could not confirm") && e.message.contains("no duplicate order"), "{}", e.message);
        }
    }
}
