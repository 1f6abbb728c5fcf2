use super::*;
use crate::errors::ErrorCode;
use serde_json::json;

const FP: &str = "fp-1";
const T0: i64 = 1_796_032_800_000;
const TIMEOUT: i64 = 130_000;
const RETENTION: i64 = 2_592_000_000;

const PLACED: &str = r#"{"data":{"placeOrder":{"status":1,"data":{"orderId":7,"vouchers":[]}}}}"#;

fn answer(status: u16, body: &str) -> Result<HttpAnswer, CallError> {
    Ok(HttpAnswer { status, body: body.as_bytes().to_vec(), retry_after: None })
}

fn error_of(o: &Outcome) -> &ApiError {
    match o {
        Outcome::Error { error, .. } => error,
        other => panic!("{other:?}"),
    }
}

fn order() -> Value {
    json!({"productId": 10100, "quantity": 1, "denomination": 25, "poNumber": "po-1", "email": "a@b.c"})
}

fn pending() -> Record {
    Record::pending(FP, &order(), T0, TIMEOUT, 15_000)
}

/// `pending()` for another order body.
fn pending_for(data: Value) -> Record {
    Record::pending(FP, &data, T0, TIMEOUT, 15_000)
}

fn other_email() -> Value {
    json!({"productId": 10100, "quantity": 1, "denomination": 25, "poNumber": "po-1", "email": "x@b.c"})
}

fn details() -> Value {
    json!({"orderId": 7, "orderStatus": "complete", "deliveryStatus": "delivered", "quantity": 1,
           "voucherDetails": [{"productId": 10100, "denomination": 25, "cancelledQuantity": 0}]})
}

fn checked(after: AfterPlace) -> Record {
    match after {
        AfterPlace::Check(r) => r,
        other => panic!("{other:?}"),
    }
}

fn finished(after: AfterPlace) -> Finish {
    match after {
        AfterPlace::Finish(f) => f,
        other => panic!("{other:?}"),
    }
}

#[test]
fn record_json_is_pinned_and_old_records_read() {
    let p = pending();
    assert_eq!(
        serde_json::to_string(&p).unwrap(),
        format!(
            r#"{{"fingerprint":"fp-1","state":"pending","status":0,"body":"","reconciled":false,"sent_at_ms":{T0},"done_at_ms":0,"why":"plumgate lost track of its call to Xoxoday","checks":0,"not_found":0,"next_check_at_ms":{},"order":{{"denomination":25,"email_fp":"d648b243a3e817ea","poNumber":"po-1","productId":10100,"quantity":1}}}}"#,
            T0 + TIMEOUT + LOST_CALL_GRACE_MS
        )
    );
    assert_eq!(p.po_number().as_deref(), Some("po-1"));
    let done = p.done(200, PLACED.into(), true, T0 + 5);
    let text = serde_json::to_string(&done).unwrap();
    assert!(!text.contains("order\""), "a done record keeps no order fields: {text}");
    assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), done);
    let mut refused = p.clone();
    refused.refused = Some(Refused { status: 409, body: "{}".into() });
    assert!(serde_json::to_string(&refused).unwrap().contains(r#""refused":{"status":409,"body":"{}"}"#));
    // Records the previous version wrote read as they were.
    let old = r#"{"fingerprint":"f","state":"pending","status":0,"body":"","reconciled":false}"#;
    let Loaded::Some(r) = load(Ok(Some(old.into()))) else { panic!() };
    assert_eq!((r.state, r.sent_at_ms, r.next_check_at_ms, r.checks), (RecordState::Pending, 0, 0, 0));
    assert!(matches!(load(Ok(Some(r#"{"fingerprint":"f","state":"done","status":200,"body":"b","reconciled":false}"#.into()))), Loaded::Some(_)));
    // Such a pending record learns the order from the request that meets it.
    let told = r.with_order(&order(), T0).unwrap();
    assert_eq!((told.po_number().as_deref(), told.sent_at_ms, told.next_check_at_ms), (Some("po-1"), T0, T0));
    assert_eq!(told.with_order(&order(), T0), None, "once");
    assert_eq!(pending().with_order(&order(), T0), None);
    // What cannot be read fails closed.
    assert_eq!(load(Ok(Some(r#"{"fingerprint":"f","state":"maybe","status":0,"body":"","reconciled":false}"#.into()))), Loaded::Unreadable);
    assert_eq!(load(Ok(Some("not json".into()))), Loaded::Unreadable);
    // A read storage did not answer is no verdict on the record.
    assert_eq!(load(Err(())), Loaded::ReadFailed);
    assert_eq!(load(Ok(None)), Loaded::None);
}

#[test]
fn admit_every_arm() {
    // Unreadable: closed, and nothing assumed.
    match admit(&Loaded::Unreadable, FP, None, T0) {
        Admission::Answer { outcome, replayed: false, fate: Fate::Unknown, alarm_by_ms: None } => {
            let e = error_of(&outcome);
            assert_eq!((e.status, e.code), (503, ErrorCode::Misconfigured));
            assert!(e.message.contains("storage key `order`") && e.message.contains("nothing was sent"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    // A failed read: the same caution, but an error that says to retry
    // (no operator is needed), and never a run, even with nothing in flight.
    match admit(&Loaded::ReadFailed, FP, None, T0) {
        Admission::Answer { outcome, replayed: false, fate: Fate::Unknown, alarm_by_ms: None } => {
            let e = error_of(&outcome);
            assert_eq!((e.status, e.code), (502, ErrorCode::UpstreamError));
            assert!(e.message.contains("nothing was sent; retry") && !e.message.contains("operator"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(admit(&Loaded::None, FP, None, T0), Admission::Run);
    assert_eq!(admit(&Loaded::None, FP, Some(FP), T0), Admission::Join, "the run has not written its record yet");
    match admit(&Loaded::None, "fp-2", Some(FP), T0) {
        Admission::Answer { outcome, fate: Fate::NotPlaced, .. } => assert_eq!(error_of(&outcome).code, ErrorCode::IdempotencyConflict),
        other => panic!("another body never joins: {other:?}"),
    }
    // Another body: done or pending.
    let done = pending().done(200, PLACED.into(), false, T0);
    for r in [done.clone(), pending()] {
        match admit(&Loaded::Some(r), "fp-2", Some(FP), T0) {
            Admission::Answer { outcome, fate: Fate::NotPlaced, .. } => assert_eq!(error_of(&outcome).code, ErrorCode::IdempotencyConflict),
            other => panic!("{other:?}"),
        }
    }
    // Done: replayed, placed.
    assert_eq!(
        admit(&Loaded::Some(done), FP, None, T0),
        Admission::Answer {
            outcome: Outcome::Answer { status: 200, body: PLACED.into(), reconciled: false, upstream_status: None },
            replayed: true,
            fate: Fate::Placed,
            alarm_by_ms: None,
        }
    );
    // What a check found is answered as Xoxoday's placeOrder answer.
    for details in [json!({"orderStatus": "failed"}), json!({"orderId": 7, "vouchers": [{"a": "é\"\n"}], "z": null}), json!(null)] {
        let failed = failed_or_cancelled(&details);
        let text = crate::jsontext::to_text(&json!({"data": {"placeOrder": {"status": if failed { 0 } else { 1 }, "data": details}}}));
        let Outcome::Answer { body, .. } = found(&pending(), details, T0).outcome else { panic!() };
        assert_eq!(body, text);
    }
    // A reconciled order that failed replays as failed.
    let failed = found(&pending(), json!({"orderStatus": "failed"}), T0);
    let Store::Save(failed) = failed.store else { panic!() };
    assert!(matches!(admit(&Loaded::Some(failed), FP, None, T0), Admission::Answer { fate: Fate::Failed, replayed: true, .. }));
    // Pending with its call in flight: join it.
    assert_eq!(admit(&Loaded::Some(pending()), FP, Some(FP), T0), Admission::Join);
    // Pending: 409 order_in_progress until the next check.
    let mut p = pending();
    p.next_check_at_ms = T0 + 20_000;
    p.why = "Xoxoday answered placeOrder with HTTP 502, PLE10035".into();
    match admit(&Loaded::Some(p), FP, None, T0 + 5_000) {
        Admission::Answer { outcome, replayed: false, fate: Fate::Unknown, alarm_by_ms: Some(t) } => {
            assert_eq!(t, T0 + 20_000);
            let e = error_of(&outcome);
            assert_eq!((e.status, e.code, e.retry_after_secs), (409, ErrorCode::OrderInProgress, Some(16)));
            assert!(e.message.starts_with("Xoxoday answered placeOrder with HTTP 502, PLE10035; "), "{}", e.message);
            assert!(e.message.contains("never a second order") && e.message.contains("after 16 s"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    // A previous version's pending record: checked at once.
    let old = Record { sent_at_ms: 0, next_check_at_ms: 0, why: String::new(), ..pending() };
    match admit(&Loaded::Some(old), FP, None, T0) {
        Admission::Answer { outcome, alarm_by_ms: Some(t), .. } => {
            assert_eq!(t, T0);
            assert_eq!(error_of(&outcome).retry_after_secs, Some(1));
            assert!(error_of(&outcome).message.starts_with("an earlier attempt's outcome is unknown; "));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_look_never_places() {
    // Where a request would place the order, a look finds nothing, or
    // the mark this order's deleted record left.
    assert_eq!(look(&Loaded::None, FP, None, None, T0), Look::Nothing);
    assert_eq!(look(&Loaded::None, FP, None, Some(FP), T0), Look::NotPlaced);
    assert_eq!(look(&Loaded::None, FP, None, Some("fp-2"), T0), Look::Nothing, "another order's mark");
    assert_eq!(look(&Loaded::None, FP, Some(FP), Some(FP), T0), Look::Join, "a new call in flight outranks an old mark");
    assert_eq!(found_not_placed().code, ErrorCode::UpstreamError);
    // The mark lasts NOT_PLACED_KEEP_MS; an unreadable one ends at once.
    let (mark, until) = not_placed_mark(FP, T0);
    assert_eq!(until, T0 + NOT_PLACED_KEEP_MS);
    assert_eq!(read_mark(&mark, T0), Ok((FP, until)));
    assert_eq!(read_mark(&mark, until - 1), Ok((FP, until)));
    assert_eq!(read_mark(&mark, until), Err(until));
    assert_eq!(read_mark("garbage", T0), Err(i64::MIN));
    assert_eq!(read_mark("soon fp", T0), Err(i64::MIN));
    let e = nothing_found();
    assert_eq!((e.status, e.code), (502, ErrorCode::UpstreamError));
    // The call in flight (its record not written yet, or pending): join it.
    assert_eq!(look(&Loaded::None, FP, Some(FP), None, T0), Look::Join);
    assert_eq!(look(&Loaded::Some(pending()), FP, Some(FP), None, T0), Look::Join);
    // Done: what a retry would be answered, the record's fate.
    let done = pending().done(200, PLACED.into(), false, T0);
    assert_eq!(
        look(&Loaded::Some(done.clone()), FP, None, Some(FP), T0),
        Look::Answer { outcome: Outcome::Answer { status: 200, body: PLACED.into(), reconciled: false, upstream_status: None }, fate: Fate::Placed, alarm_by_ms: None }
    );
    // Another body under the poNumber: the conflict the lost call met.
    match look(&Loaded::Some(done), "fp-2", None, None, T0) {
        Look::Answer { outcome, fate: Fate::NotPlaced, .. } => assert_eq!(error_of(&outcome).code, ErrorCode::IdempotencyConflict),
        other => panic!("{other:?}"),
    }
    // Pending, nothing in flight: unknown, and the check's alarm is kept.
    let mut p = pending();
    p.next_check_at_ms = T0 + 20_000;
    assert!(matches!(look(&Loaded::Some(p), FP, None, None, T0), Look::Answer { fate: Fate::Unknown, alarm_by_ms: Some(t), .. } if t == T0 + 20_000));
    // Unreadable: nothing assumed.
    assert!(matches!(look(&Loaded::Unreadable, FP, None, Some(FP), T0), Look::Answer { fate: Fate::Unknown, .. }));
    assert!(matches!(look(&Loaded::ReadFailed, FP, None, Some(FP), T0), Look::Answer { fate: Fate::Unknown, .. }));
}

#[test]
fn refusals_before_sending_say_nothing_was_placed() {
    let f = not_sent(ApiError::rate_limited("placeOrder", 7));
    assert_eq!((f.store.clone(), f.penalty, f.fate), (Store::Keep, None, Fate::NotPlaced));
    assert_eq!(error_of(&f.outcome).retry_after_secs, Some(7));
    let f = record_not_written();
    assert_eq!((f.store.clone(), f.fate), (Store::Keep, Fate::NotPlaced));
    let e = error_of(&f.outcome);
    assert_eq!(e.code, ErrorCode::UpstreamError);
    assert!(e.message.contains("not sent") && e.message.contains("retrying with the same poNumber is safe"));
}

#[test]
fn a_5xx_that_stopped_an_order_before_sending_says_nothing_was_placed() {
    // The spend cap's reservation: the key registry did not answer.
    let e = unsent(ApiError::upstream_error("the key registry did not answer; retry in a moment"));
    assert_eq!((e.status, e.code), (502, ErrorCode::UpstreamError));
    assert_eq!(e.message, format!("the key registry did not answer; retry in a moment; the order was not sent to Xoxoday: {SAFE_TO_RETRY}"));
    // Said once only; a 4xx (a cap reached, a revoked key) passes as it is.
    assert_eq!(unsent(e.clone()).message, e.message);
    let capped = ApiError::rate_limited("placeOrder", 7);
    assert_eq!(unsent(capped.clone()).message, capped.message);
}

#[test]
fn a_placeorder_whose_key_could_not_be_looked_up_says_nothing_was_placed() {
    let registry = || ApiError::upstream_error("the key registry did not answer; retry in a moment");
    let e = before_sending(Operation::PlaceOrder, registry());
    assert_eq!((e.status, e.message.contains(SAFE_TO_RETRY)), (502, true), "{}", e.message);
    // A read never hears it; a placeOrder's 401 passes as it is.
    assert_eq!(before_sending(Operation::GetBalance, registry()), registry());
    let unknown = ApiError::unauthorized("unknown key");
    assert_eq!(before_sending(Operation::PlaceOrder, unknown.clone()), unknown);
}

#[test]
fn a_reservation_turned_away_defers_to_what_the_ledger_knows() {
    let registry = || ApiError::upstream_error("the key registry did not answer; retry in a moment");
    let over = || ApiError::quota_exceeded("over the cap, so it was not sent", 60);
    let reply = |outcome: Outcome, fate: Fate| LedgerReply { outcome, replayed: true, fate };
    // An order placed on an earlier day, replayed over today's cap: its stored answer, not 429.
    let stored = reply(Outcome::Answer { status: 200, body: PLACED.into(), reconciled: false, upstream_status: None }, Fate::Placed);
    assert_eq!(after_reservation(over(), Some(stored.clone())), Ok(stored.clone()));
    assert_eq!(after_reservation(registry(), Some(stored.clone())), Ok(stored));
    // A pending order: its 409 order_in_progress, never "nothing was placed".
    let Look::Answer { outcome, fate, .. } = look(&Loaded::Some(pending()), FP, None, None, T0) else { panic!() };
    let in_progress = reply(outcome, fate);
    let in_progress_reply = in_progress.clone();
    assert_eq!(after_reservation(registry(), Some(in_progress.clone())), Ok(in_progress));
    // The ledger knows nothing of it (no record, or its mark that nothing was placed): the reservation's error.
    for nothing in [nothing_found(), found_not_placed()] {
        let known = Some(reply(Outcome::Error { error: nothing, upstream_status: None }, Fate::Unknown));
        assert_eq!(after_reservation(over(), known.clone()), Err(over()));
        let e = after_reservation(registry(), known).unwrap_err();
        assert!(e.message.ends_with(SAFE_TO_RETRY), "{}", e.message);
    }
    // A reply that says nothing of the order (an older ledger, an unreadable record): the error as it is.
    let said_nothing = Some(reply(Outcome::Error { error: ApiError::internal(), upstream_status: None }, Fate::Unknown));
    assert_eq!(after_reservation(over(), said_nothing.clone()), Err(over()));
    assert_eq!(after_reservation(registry(), said_nothing), Err(registry()));
    // Another body's conflict is the answer.
    let conflict = reply(Outcome::Error { error: ApiError::idempotency_conflict(), upstream_status: None }, Fate::NotPlaced);
    assert_eq!(after_reservation(over(), Some(conflict.clone())), Ok(conflict));
    // Over the cap or after any 5xx of the registry (no answer, its storage
    // failing) the ledger is asked: a retry of a lost order is never told
    // "nothing was placed" unasked. A refusal of the key stands.
    let storage = ApiError::misconfigured(&["the KeyRegistry's storage cannot be read or written".into()]);
    assert!(look_after(&over()) && look_after(&registry()) && look_after(&ApiError::internal()) && look_after(&storage));
    assert!(!look_after(&ApiError::unauthorized("this gateway key is revoked")));
    assert_eq!(after_reservation(storage.clone(), Some(in_progress_reply.clone())), Ok(in_progress_reply));
    assert!(!after_reservation(storage.clone(), None).unwrap_err().message.contains(SAFE_TO_RETRY), "no word from the ledger: not said");
    // No word from the ledger: the error as it is (a 502 not saying nothing was placed).
    assert_eq!(after_reservation(registry(), None), Err(registry()));
    assert_eq!(after_reservation(over(), None), Err(over()));
}

#[test]
fn a_checked_placeorder_names_its_own_answer_for_the_log() {
    let p = Record { why: "Xoxoday answered placeOrder with HTTP 502, PLE10035".into(), ..pending() };
    // Left in progress after a 502: that 502, not the check's nothing.
    let open = after_check(&p, Reconciled::Unknown, T0 + 900);
    assert_eq!(error_of(&open.outcome).code, ErrorCode::OrderInProgress);
    assert_eq!(as_answered(open.clone(), Some(502)).outcome.upstream_status(), Some(502));
    // Found after a 422: the 422, not getOrderDetails' 200; after a
    // timeout, none. Nothing else changes.
    let found = after_check(&p, Reconciled::Found(details()), T0 + 900);
    assert_eq!(found.outcome.upstream_status(), Some(200));
    for answered in [Some(422), None] {
        let f = as_answered(found.clone(), answered);
        assert_eq!(f.outcome.upstream_status(), answered);
        assert_eq!((f.store, f.fate, f.penalty), (found.store.clone(), found.fate, found.penalty));
        let (Outcome::Answer { status, body, reconciled, .. }, Outcome::Answer { status: s0, body: b0, reconciled: r0, .. }) = (&f.outcome, &found.outcome) else { panic!() };
        assert_eq!((status, body, reconciled), (s0, b0, r0));
    }
}

#[test]
fn after_place_every_arm() {
    let p = pending();
    let now = T0 + 900;
    // Success: done.
    let f = finished(after_place(answer(200, PLACED), None, &p, now));
    assert_eq!(f.store, Store::Save(p.done(200, PLACED.into(), false, now)));
    assert_eq!(f.outcome, Outcome::Answer { status: 200, body: PLACED.into(), reconciled: false, upstream_status: Some(200) });
    assert_eq!((f.fate, f.penalty), (Fate::Placed, None));
    // Success naming an order that failed or was cancelled (its words or
    // every line cancelled): answered as a check that found it would be,
    // status 0 and the order kept, but not marked reconciled; replayed as
    // failed. An order still on its way is placed.
    for order in [
        json!({"orderId": 7, "orderStatus": "failed", "deliveryStatus": "failed", "vouchers": []}),
        json!({"orderId": "7", "orderStatus": "complete", "deliveryStatus": "canceled"}),
        json!({"orderId": 7, "quantity": "2", "voucherDetails": [{"cancelledQuantity": 2}]}),
    ] {
        let said = json!({"data": {"placeOrder": {"status": "1", "data": order.clone()}}}).to_string();
        let f = finished(after_place(answer(200, &said), None, &p, now));
        let want = crate::jsontext::to_text(&json!({"data": {"placeOrder": {"data": order, "status": 0}}}));
        assert_eq!(f.outcome, Outcome::Answer { status: 200, body: want.clone(), reconciled: false, upstream_status: Some(200) }, "{said}");
        assert_eq!((f.fate, f.penalty), (Fate::Failed, None), "{said}");
        assert_eq!(f.store, Store::Save(p.done(200, want, false, now)));
        let Store::Save(done) = f.store else { panic!() };
        assert!(matches!(admit(&Loaded::Some(done), FP, None, now), Admission::Answer { fate: Fate::Failed, replayed: true, .. }));
    }
    let on_its_way = r#"{"data":{"placeOrder":{"status":1,"data":{"orderId":7,"orderStatus":"processing","deliveryStatus":"pending"}}}}"#;
    assert_eq!(finished(after_place(answer(200, on_its_way), None, &p, now)).fate, Fate::Placed);
    // A rate-limit answer: forgotten, the penalty reported, 429.
    let f = finished(after_place(answer(200, r#"{"errors":[{"message":"auth.request_limit_exceeded","penaltySeconds":30}]}"#), None, &p, now));
    assert_eq!((f.store.clone(), f.penalty, f.fate), (Store::Forget, Some(Observed::Stated(30)), Fate::NotPlaced));
    let e = error_of(&f.outcome);
    assert_eq!((e.status, e.code, e.retry_after_secs), (429, ErrorCode::RateLimited, Some(30)));
    assert_eq!(f.outcome.upstream_status(), Some(200));
    let f = finished(after_place(answer(429, ""), None, &p, now));
    assert_eq!((f.penalty, error_of(&f.outcome).retry_after_secs), (Some(Observed::Unstated), Some(60)));
    // Definite refusals: one check, then (no such order) forgotten, Xoxoday's answer passed on.
    for (status, body) in [
        (400, r#"{"code":400,"errorId":"PLE10001","error":"x"}"#),
        (404, r#"{"code":404,"errorId":"PLE10018","error":"Invalid denomination"}"#),
        (409, r#"{"code":409,"errorId":"PLE10041","errorInfo":"Quantity limit exceeded","error":"already exists more than 10"}"#),
        (422, r#"{"code":422,"errorId":"PLE10004","error":"x"}"#),
        (200, r#"{"data":{"placeOrder":{"status":0}}}"#),
        (200, r#"{"data":{"placeOrder":{"status":"0","data":{}}}}"#),
        (401, r#"{"code":401,"errorId":"PLE10019"}"#),
    ] {
        let AfterPlace::Confirm(r) = after_place(answer(status, body), None, &p, now) else { panic!("{status} {body}") };
        assert_eq!((r.refused.clone(), r.state), (Some(Refused { status, body: body.into() }), RecordState::Pending));
        // No such order, or an answer in other words: the refusal stands.
        for seen in [Reconciled::NotFound, Reconciled::Unclear] {
            let f = after_refusal(&r, seen, now);
            assert_eq!((f.store.clone(), f.fate), (Store::Forget, Fate::NotPlaced), "{status} {body}");
            assert_eq!(f.outcome, Outcome::Answer { status, body: body.into(), reconciled: false, upstream_status: Some(status) });
        }
        // The check failed: nothing rules out that Xoxoday holds this very
        // order (its duplicate answer may be any refusal); pending, checked
        // like a lost answer, the refusal kept for when that ends.
        for seen in [Reconciled::Unknown, Reconciled::Limited(Observed::Unstated)] {
            let f = after_refusal(&r, seen.clone(), now);
            assert_eq!(f.fate, Fate::Unknown, "{status} {body} {seen:?}");
            let Store::Save(kept) = f.store else { panic!("{status} {body} {seen:?}: {:?}", f.store) };
            assert_eq!((kept.state, kept.checks, kept.refused.clone()), (RecordState::Pending, 1, r.refused.clone()));
            assert!(kept.next_check_at_ms > now);
            assert!(matches!(&f.outcome, Outcome::Error { error, .. } if error.code == crate::errors::ErrorCode::OrderInProgress), "{:?}", f.outcome);
            // A later check that answers, no such order or in other words:
            // the refusal stands, as at the first check (before, the first
            // waited for the settling proof, the second out the retention).
            for later in [Reconciled::NotFound, Reconciled::Unclear] {
                let f = after_check(&kept, later.clone(), kept.next_check_at_ms);
                assert_eq!((f.store.clone(), f.fate), (Store::Forget, Fate::NotPlaced), "{status} {body} {seen:?} {later:?}");
                assert_eq!(f.outcome, Outcome::Answer { status, body: body.into(), reconciled: false, upstream_status: Some(status) });
            }
            // Found after all: this order, placed before.
            let f = after_check(&kept, Reconciled::Found(details()), kept.next_check_at_ms);
            assert_eq!(f.fate, Fate::Placed, "{status} {body} {seen:?}");
        }
    }
    // The duplicate answer, an uncertain refusal and a lost answer stay
    // pending on such a check: none of them says this order was not made.
    for (status, body) in [
        (409, r#"{"code":409,"errorId":"PLE10043","error":"duplicate poNumber"}"#),
        (422, r#"{"code":422,"errorId":"PLE10010","error":"x"}"#),
        (502, r#"{"code":502,"errorId":"PLE10035","error":"x"}"#),
    ] {
        let r = checked(after_place(answer(status, body), None, &p, now));
        let f = after_check(&r, Reconciled::Unclear, now);
        assert_eq!(f.fate, Fate::Unknown, "{status} {body}");
        assert!(matches!(f.store, Store::Save(ref kept) if kept.state == RecordState::Pending), "{status} {body}");
    }
    // 5xx, timeout, transport: check now.
    let r = checked(after_place(answer(502, r#"{"code":502,"errorId":"PLE10035","error":"x"}"#), None, &p, now));
    assert_eq!((r.why.as_str(), r.refused.clone(), r.next_check_at_ms), ("Xoxoday answered placeOrder with HTTP 502, PLE10035", None, now));
    assert_eq!(r.sent_at_ms, T0, "the send time stays");
    assert_eq!(checked(after_place(answer(503, "<html>"), None, &p, now)).why, "Xoxoday answered placeOrder with HTTP 503");
    assert_eq!(checked(after_place(Err(CallError::Timeout(130_000)), None, &p, now)).why, "Xoxoday did not answer placeOrder within 130000 ms");
    // No answer is not "not reached": the request may have left.
    assert_eq!(checked(after_place(Err(CallError::Transport), None, &p, now)).why, "placeOrder got no answer from Xoxoday (transport error)");
    // A body that is not JSON, whatever the status: no answer at all.
    for (status, body) in [(200, "<html>ok</html>"), (200, ""), (201, r#"{"data":"#), (403, "<html>Forbidden</html>"), (422, "not json")] {
        let r = checked(after_place(answer(status, body), None, &p, now));
        assert_eq!(r.refused, None, "{status} {body}");
        assert_eq!(r.why, format!("Xoxoday's answer to placeOrder (HTTP {status}) could not be read: its body is not JSON"));
    }
    // A 2xx or 3xx that is neither a success nor the failure flag: check, as a lost answer (it refuses nothing).
    for (status, body) in [
        (200, r#"{"data":{"placeOrder":{"data":{"orderId":1}}}}"#),
        (200, r#"{"data":{"placeOrder":{"status":2}}}"#),
        (202, r#"{"data":{"placeOrder":{"status":1}}}"#),
        (202, r#"{"data":{"placeOrder":{"status":0}}}"#),
        (302, r#"{}"#),
    ] {
        let r = checked(after_place(answer(status, body), None, &p, now));
        assert_eq!(r.refused, None, "{status} {body}");
        assert!(r.why.contains("but not with a placed order"), "{}", r.why);
    }
    // Duplicate poNumber and the 422s that leave it open: check, keeping Xoxoday's answer.
    for (status, body) in [
        (409, r#"{"code":409,"errorId":"PLE10043","errorInfo":"Duplicate poNumber","error":"Order with this poNumber already exists"}"#),
        (400, r#"{"code":400,"errorId":"PLE99999","error":"Duplicate PO number"}"#),
        (409, r#"{"message":"order already exists"}"#),
        (422, r#"{"code":422,"errorId":"PLE10007","error":"Failed to add order"}"#),
        (422, r#"{"code":422,"errorId":"PLE10010","error":"Failed to redeem points"}"#),
        (422, r#"{"code":422,"errorId":"PLE10011","error":"Failed to confirm order"}"#),
        (422, r#"{"code":422,"errorId":"PLE10012","error":"Failed to process order"}"#),
        (404, r#"{"code":404,"errorId":"PLE10036","error":"Delivery cancelled"}"#),
    ] {
        let r = checked(after_place(answer(status, body), None, &p, now));
        assert_eq!(r.refused, Some(Refused { status, body: body.into() }), "{body}");
        assert_eq!(r.state, RecordState::Pending);
    }
    assert!(checked(after_place(answer(422, r#"{"errorId":"PLE10011"}"#), None, &p, now)).why.contains("HTTP 422, PLE10011"));
    assert!(checked(after_place(answer(404, r#"{"errorId":"PLE10036"}"#), None, &p, now)).why.contains("HTTP 404, PLE10036"));
    // The same ids under another status (or a 200 saying status 0) leave
    // it open too: read by errorId, for Xoxoday's tables disagree on
    // statuses.
    for (status, body) in [
        (422, r#"{"errorId":"PLE10036"}"#),
        (400, r#"{"code":400,"errorId":"PLE10011","error":"Failed to confirm order"}"#),
        (403, r#"{"errorId":"PLE10010"}"#),
        (200, r#"{"data":{"placeOrder":{"status":0}},"errorId":"PLE10012"}"#),
    ] {
        assert_eq!(checked(after_place(answer(status, body), None, &p, now)).state, RecordState::Pending, "{status} {body}");
    }
    // "Failed to check order status; call getOrderDetails" (documented as a
    // 502) under any status is a lost answer: checked, nothing of it kept to
    // pass on, so once no order is found a retry is safe.
    for (status, body) in [(409, r#"{"code":409,"errorId":"PLE10035","error":"Failed to check order status"}"#), (400, r#"{"errorId":"PLE10035"}"#), (502, r#"{"errorId":"PLE10035"}"#)] {
        let r = checked(after_place(answer(status, body), None, &p, now));
        assert_eq!((r.state, r.refused.clone()), (RecordState::Pending, None), "{status} {body}");
        let mut r = r;
        r.not_found = NOT_FOUND_PROOF - 1;
        let f = after_check(&r, Reconciled::NotFound, r.sent_at_ms + SETTLE_MS);
        assert_eq!(f.fate, Fate::NotPlaced, "{status}");
        assert!(error_of(&f.outcome).message.contains(SAFE_TO_RETRY), "{status}: {:?}", f.outcome);
    }
    // Another errorId under the same status is a definite refusal: one check.
    assert!(matches!(after_place(answer(422, r#"{"errorId":"PLE10008"}"#), None, &p, now), AfterPlace::Confirm(_)));
    // A token problem: nothing executed, forgotten, the error with the 401 seen.
    let f = finished(after_place(Err(CallError::Api(ApiError::upstream_unauthorized())), Some(401), &p, now));
    assert_eq!((f.store.clone(), f.fate), (Store::Forget, Fate::NotPlaced));
    let mut said = ApiError::upstream_unauthorized();
    said.message.push_str(" (placeOrder was not executed by Xoxoday: nothing was placed and retrying with the same poNumber is safe)");
    assert_eq!(f.outcome, Outcome::Error { error: said, upstream_status: Some(401) });
    // No token at all (a refresh outage): the same, the error's own words first.
    let f = finished(after_place(Err(CallError::Api(ApiError::reauth_required())), None, &p, now));
    match f.outcome {
        Outcome::Error { error, upstream_status: None } => {
            assert_eq!((error.status, error.code.as_str()), (503, "reauth_required"));
            assert!(error.message.starts_with(&ApiError::reauth_required().message), "{}", error.message);
            assert!(error.message.ends_with("retrying with the same poNumber is safe)"), "{}", error.message);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn duplicates_are_told_apart() {
    assert!(is_duplicate(409, br#"{"errorId":"PLE10043"}"#));
    assert!(is_duplicate(400, br#"{"error":"Duplicate poNumber"}"#));
    assert!(is_duplicate(422, br#"{"errorInfo":"PO number already exists"}"#));
    assert!(!is_duplicate(409, br#"{"errorId":"PLE10041","error":"duplicate"}"#), "the quantity 409");
    assert!(!is_duplicate(500, br#"{"errorId":"PLE10043"}"#), "a 5xx is no refusal");
    assert!(!is_duplicate(409, b"duplicate"), "not JSON");
    assert!(!is_duplicate(400, br#"{"error":"Invalid denomination"}"#));
    assert_eq!(error_id(br#"{"errorId":"PLE 1; drop"}"#), None, "only plain codes reach a message");
    assert_eq!(error_id_note(br#"{"errorId":"PLE10035"}"#), ", PLE10035");
}

#[test]
fn a_record_is_checked_only_on_the_account_it_was_sent_to() {
    let sent = pending().on_account("acct-a");
    assert!(sent.checkable_on("acct-a"));
    assert!(!sent.checkable_on("acct-b"), "another account's getOrderDetails proves nothing of this order");
    // A record of an earlier version names no account: checked as before.
    assert!(pending().checkable_on("acct-b"));
    // It travels in the order summary, beside what a check reads.
    assert_eq!(sent.po_number(), pending().po_number());
    assert_eq!(same_order(&json!({"quantity": sent.order["quantity"].clone()}), &sent.order), Match::This);
}

#[test]
fn read_reconcile_every_arm() {
    let found = r#"{"data":{"getOrderDetails":{"status":1,"data":{"orderId":7,"orderStatus":"complete"}}}}"#;
    assert_eq!(read_reconcile(answer(200, found)), Reconciled::Found(json!({"orderId":7,"orderStatus":"complete"})));
    // A product name cut mid-emoji (a lone surrogate escape, which
    // serde_json refuses) is still this order, not an unreadable answer.
    let cut = r#"{"data":{"getOrderDetails":{"status":1,"data":{"orderId":7,"orderStatus":"complete","productName":"Gift \ud83c"}}}}"#;
    assert!(is_plum_success("getOrderDetails", 200, cut.as_bytes()) && is_json(cut.as_bytes()), "the success check reads past it");
    assert_eq!(read_reconcile(answer(200, cut)), Reconciled::Found(json!({"orderId":7,"orderStatus":"complete","productName":"Gift \u{fffd}"})));
    // Or cut inside the character's UTF-8 bytes.
    let cut_bytes = b"{\"data\":{\"getOrderDetails\":{\"status\":1,\"data\":{\"orderId\":7,\"productName\":\"Gift \xF0\x9F\"}}}}";
    let raw = Ok(HttpAnswer { status: 200, body: cut_bytes.to_vec(), retry_after: None });
    assert!(is_plum_success("getOrderDetails", 200, cut_bytes));
    assert_eq!(read_reconcile(raw), Reconciled::Found(json!({"orderId":7,"productName":"Gift \u{fffd}"})));
    assert_eq!(read_reconcile(answer(404, r#"{"code":404,"errorId":"PLE10016","error":"Invalid orderId or poNumber"}"#)), Reconciled::NotFound);
    assert_eq!(read_reconcile(answer(400, r#"{"code":400,"errorId":"PLE10016","error":"no order"}"#)), Reconciled::NotFound);
    assert_eq!(read_reconcile(answer(404, r#"{"code":404,"error":"Order not found"}"#)), Reconciled::NotFound, "Plum's shape, no errorId");
    assert_eq!(read_reconcile(answer(404, r#"{"errorInfo":"Invalid orderId or poNumber"}"#)), Reconciled::NotFound);
    // A JSON 404 not in Plum's shape (a gateway's): proves nothing.
    assert_eq!(read_reconcile(answer(404, r#"{"message":"not found"}"#)), Reconciled::Unclear);
    // A success that names no order: neither found nor absent.
    for details in ["null", "{}", "[]", r#"{"orderId":0}"#, r#"{"orderId":"0"}"#, r#"{"orderId":""}"#, r#"{"orderStatus":"complete"}"#] {
        let body = format!(r#"{{"data":{{"getOrderDetails":{{"status":1,"data":{details}}}}}}}"#);
        assert_eq!(read_reconcile(answer(200, &body)), Reconciled::Unclear, "{details}");
    }
    let by_text = r#"{"data":{"getOrderDetails":{"status":1,"data":{"orderId":"12345"}}}}"#;
    assert_eq!(read_reconcile(answer(200, by_text)), Reconciled::Found(json!({"orderId":"12345"})));
    assert_eq!(read_reconcile(answer(200, r#"{"data":{"getOrderDetails":{"status":1}}}"#)), Reconciled::Unclear);
    // Not Xoxoday's "no such order": no evidence either way; not even its
    // answer (no JSON), or its answer in other words.
    for body in ["", "<html>404 Not Found</html>"] {
        assert_eq!(read_reconcile(answer(404, body)), Reconciled::Unknown, "{body}");
    }
    assert_eq!(read_reconcile(answer(404, r#"{"code":404,"errorId":"PLE10021","error":"x"}"#)), Reconciled::Unclear);
    assert_eq!(read_reconcile(answer(400, r#"{"code":400,"errorId":"PLE10001","error":"x"}"#)), Reconciled::Unclear);
    // Xoxoday's rate-limit answer: the penalty, for the limiter.
    assert_eq!(read_reconcile(answer(429, "")), Reconciled::Limited(Observed::Unstated));
    assert_eq!(
        read_reconcile(answer(200, r#"{"errors":[{"message":"auth.request_limit_exceeded","penaltySeconds":90}]}"#)),
        Reconciled::Limited(Observed::Stated(90))
    );
    assert_eq!(read_reconcile(answer(502, r#"{"errorId":"PLE10035"}"#)), Reconciled::Unknown);
    // getOrderDetails' own documented server error (xoxoday-api.md §3.5).
    let resend_failed = r#"{"code":502,"errorId":"PLE10034","errorInfo":"Failed to process resendVoucher","error":"Failed to process resendVoucher"}"#;
    assert_eq!(read_reconcile(answer(502, resend_failed)), Reconciled::Unknown);
    assert_eq!(read_reconcile(answer(500, "")), Reconciled::Unknown);
    assert_eq!(read_reconcile(answer(200, r#"{"data":{"getOrderDetails":{"status":0}}}"#)), Reconciled::Unclear);
    assert_eq!(read_reconcile(Err(CallError::Transport)), Reconciled::Unknown);
    assert_eq!(read_reconcile(Err(CallError::Timeout(1))), Reconciled::Unknown);
}

/// Xoxoday's duplicate answer is undocumented: whatever a refusal says,
/// this order found under its poNumber is the answer (placed before).
#[test]
fn a_refusal_for_an_order_xoxoday_already_holds_is_that_order() {
    let p = pending();
    let now = T0 + 900;
    let refusal = r#"{"code":400,"errorId":"PLE10001","error":"Validation error in place order"}"#;
    let AfterPlace::Confirm(r) = after_place(answer(400, refusal), None, &p, now) else { panic!() };
    assert!(r.why.contains("HTTP 400, PLE10001"), "{}", r.why);
    let f = after_refusal(&r, Reconciled::Found(details()), now);
    assert_eq!(f.fate, Fate::Placed);
    let Outcome::Answer { status, reconciled, body, .. } = &f.outcome else { panic!("{:?}", f.outcome) };
    assert_eq!((*status, *reconciled), (200, true));
    assert!(body.contains("\"placeOrder\""));
    assert!(matches!(&f.store, Store::Save(rec) if rec.state == RecordState::Done));
    // Another order under the poNumber: the refusal stands.
    let mut other = details();
    other["quantity"] = json!(7);
    let f = after_refusal(&r, Reconciled::Found(other), now);
    assert_eq!((f.store, f.fate), (Store::Forget, Fate::NotPlaced));
    assert_eq!(f.outcome, Outcome::Answer { status: 400, body: refusal.into(), reconciled: false, upstream_status: Some(400) });
}

#[test]
fn a_check_under_xoxoday_s_penalty_waits_for_its_end() {
    let r = checked(after_place(answer(502, r#"{"errorId":"PLE10035"}"#), None, &pending(), T0 + 500));
    let now = T0 + 1_000;
    let f = after_check(&r, Reconciled::Limited(Observed::Stated(90)), now);
    let Store::Save(next) = &f.store else { panic!("{:?}", f.store) };
    assert_eq!(next.next_check_at_ms, now + 90_000, "not before the penalty ends (backoff alone: 10 s)");
    assert_eq!((next.not_found, f.fate, f.penalty), (0, Fate::Unknown, None), "no evidence; reported by the shell");
    assert_eq!(error_of(&f.outcome).code, ErrorCode::OrderInProgress);
    assert_eq!(error_of(&f.outcome).retry_after_secs, Some(91), "a second after the check");
    // A penalty shorter than the backoff leaves the backoff.
    let f = after_check(&r, Reconciled::Limited(Observed::Stated(2)), now);
    let Store::Save(next) = &f.store else { panic!() };
    assert_eq!(next.next_check_at_ms, now + 10_000);
}

#[test]
fn a_check_plumgate_s_own_budget_held_back_is_no_check() {
    // Callers' getOrderDetails reads hold the budget: six looks refused by
    // plumgate's limiter learn nothing, so the backoff does not grow (it
    // was 640 s by the seventh look), and each waits for the refusal's end.
    let mut r = checked(after_place(answer(502, r#"{"errorId":"PLE10035"}"#), None, &pending(), T0 + 500));
    let checks = r.checks;
    let mut now = T0 + 1_000;
    for _ in 0..6 {
        let f = after_check(&r, Reconciled::NotAsked(3), now);
        assert_eq!(f.fate, Fate::Unknown);
        assert_eq!(error_of(&f.outcome).code, ErrorCode::OrderInProgress);
        let Store::Save(next) = f.store else { panic!("{:?}", f.store) };
        assert_eq!((next.checks, next.not_found), (checks, 0), "no check counted");
        assert_eq!(next.next_check_at_ms, now + backoff_ms(checks), "the backoff as it was");
        now = next.next_check_at_ms;
        r = next;
    }
    // A refusal longer than the backoff: not before it ends.
    let f = after_check(&r, Reconciled::NotAsked(45), now);
    let Store::Save(next) = f.store else { panic!() };
    assert_eq!(next.next_check_at_ms, now + 45_000);
    // After a definite refusal too (it stays pending, its refusal kept).
    let AfterPlace::Confirm(refused) = after_place(answer(400, r#"{"code":400,"errorId":"PLE10001"}"#), None, &pending(), T0) else { panic!() };
    let f = after_refusal(&refused, Reconciled::NotAsked(3), T0 + 1_000);
    let Store::Save(kept) = f.store else { panic!("{:?}", f.store) };
    assert_eq!((kept.checks, kept.refused.is_some(), f.fate), (refused.checks, true, Fate::Unknown));
}

#[test]
fn checks_back_off() {
    assert_eq!((1..=9).map(backoff_ms).collect::<Vec<_>>(), [10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 640_000, 900_000, 900_000]);
    assert_eq!(backoff_ms(0), 10_000);
    assert_eq!(backoff_ms(u32::MAX), MAX_BACKOFF_MS);
}

#[test]
fn a_found_order_is_answered_in_place_order_s_shape_with_its_status() {
    let mut p = pending();
    p.why = "w".into();
    let now = T0 + 3_000;
    let f = after_check(&p, Reconciled::Found(details()), now);
    assert_eq!(f.fate, Fate::Placed);
    let want = json!({"data": {"placeOrder": {"status": 1, "data": details()}}}).to_string();
    assert_eq!(f.outcome, Outcome::Answer { status: 200, body: want.clone(), reconciled: true, upstream_status: Some(200) });
    let Store::Save(done) = f.store else { panic!() };
    assert_eq!((done.state, done.reconciled, done.done_at_ms, done.body.clone(), done.checks), (RecordState::Done, true, now, want, 1));
    // Failed or cancelled: reported as such.
    for d in [
        json!({"orderStatus": "failed", "quantity": 1}),
        json!({"orderStatus": "complete", "deliveryStatus": "canceled", "quantity": 1}),
        json!({"orderStatus": "Cancelled", "quantity": 1}),
        json!({"orderStatus": "complete", "quantity": 2, "voucherDetails": [{"productId": 10100, "cancelledQuantity": 2}]}),
    ] {
        let p = Record { why: "w".into(), ..pending_for(json!({"productId": 10100, "quantity": d["quantity"], "denomination": 25, "poNumber": "p"})) };
        let f = after_check(&p, Reconciled::Found(d.clone()), now);
        assert_eq!(f.fate, Fate::Failed, "{d}");
        let Outcome::Answer { body, reconciled: true, status: 200, .. } = &f.outcome else { panic!() };
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["data"]["placeOrder"]["status"], 0, "{d}");
        assert_eq!(v["data"]["placeOrder"]["data"], d);
    }
    assert!(!failed_or_cancelled(&json!({"orderStatus": "complete", "deliveryStatus": "pending"})));
    assert!(!failed_or_cancelled(&json!({"quantity": 2, "voucherDetails": [{"cancelledQuantity": 1}]})), "partly cancelled");
    assert!(!failed_or_cancelled(&json!({"voucherDetails": [{"cancelledQuantity": 0}]})));
    // Every word that means the order did not go through, in any case and
    // with stray spaces, in either field.
    for word in ["failed", "Failure", "cancelled", "CANCELED", "rejected", "declined", " Refunded "] {
        assert!(failed_or_cancelled(&json!({"orderStatus": word})), "{word}");
        assert!(failed_or_cancelled(&json!({"orderStatus": "complete", "deliveryStatus": word})), "{word}");
    }
    // Cancelled means every line cancelled in full: not an order whose
    // vouchers are not issued yet (no lines), not one line of two, not a
    // line whose quantity nothing states.
    assert!(!failed_or_cancelled(&json!({"orderStatus": "complete", "quantity": 1, "voucherDetails": []})), "no lines yet");
    let one_of_two = json!({"quantity": 2, "voucherDetails": [{"quantity": 1, "cancelledQuantity": 1}, {"quantity": 1, "cancelledQuantity": 0}]});
    assert!(!failed_or_cancelled(&one_of_two), "one line of two cancelled");
    assert!(!failed_or_cancelled(&json!({"voucherDetails": [{"cancelledQuantity": 1}]})), "no quantity stated");
    assert!(failed_or_cancelled(&json!({"voucherDetails": [{"quantity": 1, "cancelledQuantity": 1}, {"quantity": "2", "cancelledQuantity": 2}]})));
    // Found with no voucher lines yet (a delayed delivery): placed, so its
    // amount stays held and nobody orders it again.
    let found = json!({"orderId": 7, "orderStatus": "complete", "quantity": 1, "voucherDetails": []});
    assert_eq!(after_check(&pending(), Reconciled::Found(found), now).fate, Fate::Placed);
}

/// Any 5xx leaves the order's fate open, whatever its body says (a
/// gateway's JSON "Internal server error" included): placeOrder's answer
/// is checked like a lost one, never taken as a refusal, and such an
/// answer to a check is no evidence either way.
#[test]
fn every_5xx_leaves_the_fate_open_whatever_its_body() {
    for status in [500, 501, 503, 504, 599] {
        for body in [r#"{"message":"Internal server error"}"#, r#"{"code":500,"errorInfo":"Internal error"}"#] {
            let r = checked(after_place(answer(status, body), None, &pending(), T0 + 900));
            assert_eq!((r.refused.clone(), r.why.as_str()), (None, format!("Xoxoday answered placeOrder with HTTP {status}").as_str()), "{body}");
            assert_eq!(read_reconcile(answer(status, body)), Reconciled::Unknown, "{status} {body}");
        }
    }
    // Plum's error shape without an errorId is "no such order" under 404
    // only; under another 4xx it is an answer in other words.
    assert_eq!(read_reconcile(answer(400, r#"{"code":400,"errorInfo":"x"}"#)), Reconciled::Unclear);
    assert_eq!(read_reconcile(answer(410, r#"{"code":410,"error":"gone"}"#)), Reconciled::Unclear);
    // A plumgate 5xx before sending says nothing was placed, a 500 too.
    let e = unsent(ApiError::upstream_error("the key store failed"));
    assert!(e.message.ends_with(SAFE_TO_RETRY), "{}", e.message);
    let mut e500 = ApiError::upstream_error("x");
    e500.status = 500;
    assert!(unsent(e500).message.ends_with(SAFE_TO_RETRY));
}

#[test]
fn another_order_under_the_po_number_is_not_this_one() {
    let mut p = pending();
    let other = json!({"quantity": 2, "voucherDetails": [{"productId": 10100, "denomination": 25}]});
    let f = after_check(&p, Reconciled::Found(other.clone()), T0);
    assert_eq!((f.store.clone(), f.fate), (Store::Forget, Fate::NotPlaced));
    let e = error_of(&f.outcome);
    assert_eq!((e.status, e.code), (409, ErrorCode::IdempotencyConflict));
    // After Xoxoday's duplicate answer, that answer is what the caller gets.
    let dup = r#"{"code":409,"errorId":"PLE10043","error":"exists"}"#;
    p.refused = Some(Refused { status: 409, body: dup.into() });
    let f = after_check(&p, Reconciled::Found(other), T0);
    assert_eq!(f.outcome, Outcome::Answer { status: 409, body: dup.into(), reconciled: false, upstream_status: None });
    assert_eq!(f.fate, Fate::NotPlaced);
    // ...and when it is the same order, the duplicate was an earlier attempt's: placed.
    assert_eq!(after_check(&p, Reconciled::Found(details()), T0).fate, Fate::Placed);
}

#[test]
fn same_order_compares_what_both_sides_say() {
    let same = |d: &Value, data: Value| same_order(d, &order_summary(&data)) == Match::This;
    let d = details();
    assert!(same(&d, order()));
    assert!(same(&d, json!({"productId": "10100", "quantity": "1", "denomination": "25.00"})), "numbers in any form");
    assert!(!same(&d, json!({"productId": 10101, "quantity": 1, "denomination": 25})));
    assert!(!same(&d, json!({"productId": 10100, "quantity": 2, "denomination": 25})));
    assert!(!same(&d, json!({"productId": 10100, "quantity": 1, "denomination": 50})));
    assert!(same(&json!({}), order()), "nothing to compare: no contradiction");
    let vouchers = json!({"vouchers": [{"productId": 10100, "amount": 25}]});
    assert!(same(&vouchers, order()));
    assert!(!same(&vouchers, json!({"productId": 10100, "denomination": 10})));
    let merch = json!({"voucherDetails": [{"productId": "MERCH-1"}]});
    assert!(same(&merch, json!({"productId": "MERCH-1"})));
    assert!(!same(&merch, json!({"productId": "MERCH-2"})));
}

/// A product id that is a number on one side and text that is not a
/// number on the other is no contradiction (`same_order`'s doc says why:
/// how getOrderDetails writes a merchandise order's id is undocumented,
/// and read as another order a placed one would be ordered again); the
/// quantity or denomination still tells orders apart.
#[test]
fn a_number_against_a_text_product_id_is_no_contradiction() {
    let which = |d: &Value, data: Value| same_order(d, &order_summary(&data));
    let merch = json!({"voucherDetails": [{"productId": 10100, "denomination": 25}], "quantity": 1});
    let mut sent = order();
    sent["productId"] = json!("MERCH-1");
    assert_eq!(which(&merch, sent.clone()), Match::This);
    sent["denomination"] = json!(50);
    assert_eq!(which(&merch, sent), Match::Other, "another denomination is another order");
    let mut text_line = merch.clone();
    text_line["voucherDetails"][0]["productId"] = json!("MERCH-2");
    let mut sent = order();
    sent["productId"] = json!("MERCH-1");
    assert_eq!(which(&text_line, sent), Match::Other, "two texts are compared");
}

#[test]
fn same_order_never_takes_someone_elses_order_for_this_one() {
    let which = |d: &Value, data: Value| same_order(d, &order_summary(&data));
    let mut d = details();
    d["voucherDetails"][0]["receiverEmail"] = json!("A@B.c ");
    assert_eq!(which(&d, order()), Match::This, "the same email, in any case, trimmed");
    let mut other = order();
    other["email"] = json!("x@b.c");
    assert_eq!(which(&d, other.clone()), Match::Other, "another recipient's order, as its line says");
    // The order's own email and phone number may be the account's: a
    // difference there alone leaves it open.
    let top = json!({"email": "A@B.c", "contact": "+1-555-0199", "quantity": 1, "voucherDetails": [{"productId": 10100, "denomination": 25}]});
    assert_eq!(which(&top, order()), Match::This);
    assert_eq!(which(&top, other.clone()), Match::Unsure);
    let mut by_phone = order();
    by_phone["contact"] = json!("+1 555 0100");
    assert_eq!(which(&top, by_phone), Match::Unsure);
    let mut wrong_product = other.clone();
    wrong_product["productId"] = json!(10101);
    assert_eq!(which(&top, wrong_product), Match::Other, "another product is another order whatever the email");
    // getOrderHistory's `products` lines name the recipient too, and a line outranks the top.
    let products = json!({"email": "admin@company.example", "voucherDetails": [{"productId": 10100, "denomination": 25}],
        "products": [{"productId": 10100, "receiverEmail": "a@b.c"}]});
    assert_eq!(which(&products, order()), Match::This);
    assert_eq!(which(&products, other), Match::Other);
    // The line's fields, as getOrderHistory names them.
    let line = json!({"voucherDetails": [{"productId": 10100, "denomination": 25, "receiverEmail": "z@b.c", "receiverMobileNumber": "+91-98765-43210"}]});
    assert_eq!(which(&line, order()), Match::Other);
    let mut to_z = order();
    to_z["email"] = json!("z@b.c");
    assert_eq!(which(&line, to_z.clone()), Match::This);
    to_z["contact"] = json!("9876543210");
    assert_eq!(which(&line, to_z.clone()), Match::This, "a country code and dashes do not count");
    to_z["contact"] = json!("9876543211");
    assert_eq!(which(&line, to_z), Match::Other);
    // Either side silent: no contradiction.
    assert_eq!(which(&d, json!({"productId": 10100, "quantity": 1, "denomination": 25})), Match::This);
    assert_eq!(which(&details(), order()), Match::This);
    // Unsure: this order when this attempt's call may have made it (a lost
    // answer, a 422 that leaves it open): reconciled, never "use a new poNumber".
    let mut p = pending_for(other_email());
    let f = after_check(&p, Reconciled::Found(top.clone()), T0);
    assert_eq!(f.fate, Fate::Placed, "{f:?}");
    assert!(matches!(f.outcome, Outcome::Answer { status: 200, reconciled: true, .. }), "{f:?}");
    p.refused = Some(Refused { status: 422, body: r#"{"errorId":"PLE10010"}"#.into() });
    assert_eq!(after_check(&p, Reconciled::Found(top.clone()), T0).fate, Fate::Placed);
    assert_eq!(after_refusal(&p, Reconciled::Found(top.clone()), T0).fate, Fate::Placed);
    // After an answer that was neither a placed order nor a refusal, the
    // order found is this one, even with another top-level email.
    let odd = checked(after_place(answer(200, r#"{"data":{"placeOrder":{"data":{"orderId":7}}}}"#), None, &pending_for(other_email()), T0));
    let f = after_check(&odd, Reconciled::Found(top.clone()), T0 + 1);
    assert_eq!((f.fate, matches!(f.outcome, Outcome::Answer { reconciled: true, .. })), (Fate::Placed, true), "{f:?}");
    // None found, again and again: "safe to retry", not that success-looking body.
    let mut proven = odd.clone();
    proven.not_found = NOT_FOUND_PROOF - 1;
    let f = after_check(&proven, Reconciled::NotFound, T0 + SETTLE_MS);
    assert_eq!((error_of(&f.outcome).code, f.fate), (ErrorCode::UpstreamError, Fate::NotPlaced), "{f:?}");
    assert!(error_of(&f.outcome).message.ends_with(SAFE_TO_RETRY), "{f:?}");
    // A record an earlier version wrote for such an answer, the body kept
    // as its refusal: checked as a lost answer all the same, never settled
    // "not placed" by one early "no such order" or an unreadable look.
    let mut old = odd.clone();
    old.refused = Some(Refused { status: 200, body: r#"{"data":{"placeOrder":{"data":{"orderId":7}}}}"#.into() });
    for look in [Reconciled::NotFound, Reconciled::Unclear] {
        let f = after_check(&old, look, T0 + 20_000);
        assert_eq!(f.fate, Fate::Unknown, "{f:?}");
    }
    let f = after_check(&old, Reconciled::Found(top.clone()), T0 + 20_000);
    assert_eq!(f.fate, Fate::Placed, "{f:?}");
    let mut proven = old.clone();
    proven.not_found = NOT_FOUND_PROOF - 1;
    let f = after_check(&proven, Reconciled::NotFound, T0 + SETTLE_MS);
    assert!(error_of(&f.outcome).message.ends_with(SAFE_TO_RETRY), "{f:?}");
    // The failure flag under 200 (status 0) is still Xoxoday's refusal,
    // and so is the one this version keeps under a 2xx: a fate-open
    // errorId, passed on once no order is found.
    for kept in [r#"{"data":{"placeOrder":{"status":0}}}"#, r#"{"errorId":"PLE10010"}"#] {
        let mut r = odd.clone();
        r.refused = Some(Refused { status: 200, body: kept.into() });
        assert_eq!(r.upgraded(T0).refused, r.refused, "{kept}");
    }
    let mut unsure = checked(after_place(answer(200, r#"{"code":422,"errorId":"PLE10010","error":"Failed to redeem points"}"#), None, &pending_for(order()), T0));
    unsure.not_found = NOT_FOUND_PROOF - 1;
    let f = after_check(&unsure, Reconciled::NotFound, T0 + SETTLE_MS);
    assert!(matches!(&f.outcome, Outcome::Answer { status: 200, body, .. } if body.contains("PLE10010")), "{f:?}");
    // Another order under the poNumber: a conflict, not that odd body.
    let mut elsewhere = details();
    elsewhere["voucherDetails"][0]["productId"] = json!(999);
    let f = after_check(&odd, Reconciled::Found(elsewhere.clone()), T0 + 1);
    assert_eq!(error_of(&f.outcome).code, ErrorCode::IdempotencyConflict, "{f:?}");
    // Nor is a fate-open 422 (PLE10010, "Failed to redeem points") the
    // answer once another order holds the poNumber: the caller would top up
    // and hear the duplicate answer.
    p.refused = Some(Refused { status: 422, body: r#"{"errorId":"PLE10010"}"#.into() });
    let f = after_check(&p, Reconciled::Found(elsewhere), T0 + 1);
    assert_eq!((error_of(&f.outcome).code, f.fate), (ErrorCode::IdempotencyConflict, Fate::NotPlaced), "{f:?}");
    // After Xoxoday's duplicate answer (any shape) the poNumber was taken
    // before: another order, its refusal passed on, no vouchers.
    for dup in [r#"{"code":409,"errorId":"PLE10043","error":"exists"}"#, r#"{"code":400,"errorId":"PLE10001","errorInfo":"Validation error"}"#] {
        p.refused = Some(Refused { status: if dup.contains("409") { 409 } else { 400 }, body: dup.into() });
        for f in [after_check(&p, Reconciled::Found(top.clone()), T0), after_refusal(&p, Reconciled::Found(top.clone()), T0)] {
            assert_eq!((f.store.clone(), f.fate), (Store::Forget, Fate::NotPlaced));
            assert!(matches!(&f.outcome, Outcome::Answer { body, .. } if body == dup), "{f:?}");
        }
    }
    // The summary keeps fingerprints only, never the recipient.
    let summary = order_summary(&json!({"email": "a@b.c", "contact": "+1 555 0100", "poNumber": "p"}));
    let text = summary.to_string();
    assert!(!text.contains("a@b.c") && !text.contains("555"), "{text}");
    assert_eq!(summary["email_fp"].as_str().map(str::len), Some(16));
    assert_eq!(summary["contact_fp"].as_str().map(str::len), Some(16));
    assert!(order_summary(&json!({"email": " ", "contact": "n/a"})).get("email_fp").is_none());
    assert!(order_summary(&json!({"email": " ", "contact": "n/a"})).get("contact_fp").is_none());
}

#[test]
fn not_found_is_proof_only_repeatedly_and_after_the_settling_period() {
    let mut r = checked(after_place(answer(502, r#"{"errorId":"PLE10035"}"#), None, &pending(), T0 + 500));
    // Check at the times the record asks for, Xoxoday saying "no such order" each time.
    let mut times = Vec::new();
    let mut now = T0 + 600;
    let end = loop {
        // Bounded: a rule that never settles fails here instead of hanging.
        assert!(times.len() < 20, "still checking after {times:?}");
        times.push(now - T0);
        let f = after_check(&r, Reconciled::NotFound, now);
        match f.store {
            Store::Save(next) => {
                assert_eq!(f.fate, Fate::Unknown);
                let e = error_of(&f.outcome);
                assert_eq!(e.code, ErrorCode::OrderInProgress);
                assert_eq!(e.retry_after_secs, Some(crate::limits::secs_until(next.next_check_at_ms + 1_000, now)));
                assert!(next.next_check_at_ms > now);
                now = next.next_check_at_ms;
                r = next;
            }
            Store::Forget => break f,
            Store::Keep => panic!(),
        }
    };
    // Inline at once, then 10 s, 20 s, 40 s, 80 s apart, then at the end of the settling period.
    assert_eq!(times, [600, 10_600, 30_600, 70_600, 150_600, SETTLE_MS]);
    assert_eq!(end.fate, Fate::NotPlaced);
    let e = error_of(&end.outcome);
    assert_eq!(e.code, ErrorCode::UpstreamError);
    assert!(e.message.starts_with("Xoxoday answered placeOrder with HTTP 502, PLE10035; "), "{}", e.message);
    assert!(e.message.contains("6 times over 180 s") && e.message.contains(SAFE_TO_RETRY), "{}", e.message);
    // Past the settling period, fewer than three "no such order" are not
    // enough: a first look that came late (checks failed or held back
    // before it) must not settle a lagging lookup as "not placed".
    for before in [0, 1] {
        let mut r = pending();
        r.not_found = before;
        let f = after_check(&r, Reconciled::NotFound, T0 + SETTLE_MS + 1);
        let Store::Save(next) = f.store else { panic!("{before}: {f:?}") };
        assert_eq!((next.not_found, f.fate), (before + 1, Fate::Unknown));
    }
    // Three "no such order" early on are not enough on their own.
    let mut r = pending();
    r.not_found = 2;
    let f = after_check(&r, Reconciled::NotFound, T0 + 20_000);
    let Store::Save(next) = f.store else { panic!("{f:?}") };
    assert_eq!((next.not_found, next.next_check_at_ms), (3, T0 + 20_000 + 10_000));
    // A refusal being checked is the answer once nothing was placed, and
    // the record goes: the poNumber is free again (a top-up, then the
    // same order, places it), as after a definite refusal.
    let mut r = pending();
    r.not_found = 2;
    let points = r#"{"code":422,"errorId":"PLE10010","error":"no points"}"#;
    r.refused = Some(Refused { status: 422, body: points.into() });
    let f = after_check(&r, Reconciled::NotFound, T0 + SETTLE_MS);
    assert_eq!(f.fate, Fate::NotPlaced);
    assert_eq!(f.outcome, Outcome::Answer { status: 422, body: points.into(), reconciled: false, upstream_status: None });
    assert_eq!(f.store, Store::Forget);
}

/// A `REFRESH_TIMEOUT_MS` above the default: the waits before sending
/// (3 s, then three of it) can outlast the settling period's minute, so the
/// record's send time moves on by three times the excess, and "no such
/// order" settles nothing until 180 s after the latest the order can have
/// gone. At and below the default nothing moves.
#[test]
fn a_longer_refresh_timeout_moves_the_send_time_on() {
    assert_eq!(COVERED_REFRESH_TIMEOUT_MS, crate::token::TokenPolicy::default().refresh_timeout_ms, "the default's waits are the ones covered");
    for (refresh_timeout, late) in [(100, 0), (15_000, 0), (15_001, 3), (20_000, 15_000), (120_000, 315_000)] {
        let r = Record::pending(FP, &order(), T0, TIMEOUT, refresh_timeout);
        assert_eq!(r.sent_at_ms, T0 + late, "{refresh_timeout}");
        assert_eq!(r.next_check_at_ms, T0 + late + TIMEOUT + LOST_CALL_GRACE_MS, "{refresh_timeout}");
    }
    // At the longest REFRESH_TIMEOUT_MS (README: 120000) a 401's waits end
    // 363 s after the record was written; the order was sent then.
    let lost = checked(after_place(answer(502, r#"{"errorId":"PLE10035"}"#), None, &Record::pending(FP, &order(), T0, TIMEOUT, 120_000), T0 + 363_000));
    let mut r = lost.clone();
    r.not_found = 2;
    let f = after_check(&r, Reconciled::NotFound, T0 + SETTLE_MS);
    let Store::Save(next) = f.store else { panic!("settled 180 s after the record, before the order went: {f:?}") };
    assert_eq!((next.not_found, f.fate), (3, Fate::Unknown));
    let f = after_check(&r, Reconciled::NotFound, T0 + 315_000 + SETTLE_MS - 1);
    assert_eq!(f.fate, Fate::Unknown, "one millisecond short");
    let f = after_check(&r, Reconciled::NotFound, T0 + 315_000 + SETTLE_MS);
    assert_eq!((f.fate, f.store), (Fate::NotPlaced, Store::Forget));
    assert!(error_of(&f.outcome).message.contains("3 times over 180 s"), "{}", error_of(&f.outcome).message);
    // Looked at the moment its answer was lost, the record's next check
    // is the backoff's, not the settling period's end already passed.
    let f = after_check(&lost, Reconciled::NotFound, T0 + 363_000);
    let Store::Save(next) = f.store else { panic!("{f:?}") };
    assert_eq!(next.next_check_at_ms, T0 + 363_000 + FIRST_BACKOFF_MS);
}

#[test]
fn a_settlement_no_request_heard_is_answered_once() {
    // The alarm's check settles an order Xoxoday refused with a 422 that
    // left its fate open: nothing was placed.
    let mut r = pending();
    r.not_found = 2;
    r.refused = Some(Refused { status: 422, body: r#"{"errorId":"PLE10010"}"#.into() });
    let settled = after_check(&r, Reconciled::NotFound, T0 + SETTLE_MS);
    let f = unheard(&r, settled.clone(), T0 + SETTLE_MS);
    // The same outcome and fate (the registry is told the same), but the
    // refusal is kept for the next request instead of forgotten.
    assert_eq!((&f.outcome, f.fate, &f.penalty), (&settled.outcome, Fate::NotPlaced, &None));
    let Store::Save(kept) = f.store else { panic!("{f:?}") };
    assert!(kept.once && kept.state == RecordState::Done && kept.fingerprint == FP);
    assert_eq!((kept.status, kept.body.as_str(), kept.done_at_ms), (422, r#"{"errorId":"PLE10010"}"#, T0 + SETTLE_MS));
    assert_eq!(alarm_for(&Store::Save(kept.clone()), RETENTION), Some(T0 + SETTLE_MS + RETENTION), "kept like an answer");
    // Stored and read back (rollback-safe: an older reader ignores `once`).
    let text = serde_json::to_string(&kept).unwrap();
    assert!(text.contains(r#""once":true"#), "{text}");
    let Loaded::Some(read) = load(Ok(Some(text))) else { panic!() };
    assert_eq!(read, kept);
    assert!(!serde_json::to_string(&pending()).unwrap().contains("once"), "written only when set");
    // The next request with this order hears it, once: replayed, not placed.
    let Admission::Settled(outcome) = admit(&Loaded::Some(kept.clone()), FP, None, T0 + SETTLE_MS + 60_000) else { panic!() };
    assert_eq!(outcome, Outcome::Answer { status: 422, body: r#"{"errorId":"PLE10010"}"#.into(), reconciled: false, upstream_status: None });
    // While another body's call is in flight (about to write its pending
    // record), it is heard but not forgotten: forgetting would delete
    // that record.
    assert_eq!(
        admit(&Loaded::Some(kept.clone()), FP, Some("fp-2"), T0 + SETTLE_MS + 60_000),
        Admission::Answer { outcome: outcome.clone(), replayed: true, fate: Fate::NotPlaced, alarm_by_ms: None }
    );
    // Another body under the poNumber (the order corrected) is sent: nothing
    // is placed under it, as when the settlement is heard and forgotten;
    // joined or refused as without a record while a call is in flight.
    assert_eq!(admit(&Loaded::Some(kept.clone()), "fp-2", None, T0), Admission::Run);
    assert_eq!(admit(&Loaded::Some(kept.clone()), "fp-2", Some("fp-2"), T0), Admission::Join);
    assert!(matches!(admit(&Loaded::Some(kept.clone()), "fp-2", Some("fp-3"), T0), Admission::Answer { fate: Fate::NotPlaced, .. }));
    assert_eq!(look(&Loaded::Some(kept.clone()), "fp-2", None, None, T0), Look::Nothing);
    // A done record that is not `once` stays a conflict for another body.
    let answered = Record { once: false, ..kept.clone() };
    assert!(matches!(admit(&Loaded::Some(answered), "fp-2", None, T0), Admission::Answer { fate: Fate::NotPlaced, .. }));
    // A look hears it without consuming it.
    assert!(matches!(look(&Loaded::Some(kept.clone()), FP, None, None, T0), Look::Answer { fate: Fate::NotPlaced, alarm_by_ms: None, .. }));
    // Retention ends it like a done record.
    assert_eq!(alarm(&Loaded::Some(kept), false, RETENTION, T0 + SETTLE_MS + RETENTION), AlarmStep::Delete);
    // What is not kept: plumgate's own "not placed, a retry is safe" (the
    // retry places it), a settlement that found the order, one still pending.
    let mut lost = pending();
    lost.not_found = 2;
    let f = after_check(&lost, Reconciled::NotFound, T0 + SETTLE_MS);
    assert_eq!(unheard(&lost, f.clone(), T0 + SETTLE_MS), f);
    assert_eq!(f.store, Store::Forget);
    let f = after_check(&pending(), Reconciled::Found(details()), T0 + 1);
    assert_eq!(unheard(&pending(), f.clone(), T0 + 1), f);
    let f = after_check(&pending(), Reconciled::NotFound, T0 + 1);
    assert_eq!(unheard(&pending(), f.clone(), T0 + 1), f);
    // Another order under the poNumber (Xoxoday's duplicate answer kept): heard once too.
    let mut dup = pending();
    dup.refused = Some(Refused { status: 409, body: r#"{"errorId":"PLE10043"}"#.into() });
    let other = json!({"orderId": 9, "quantity": 3, "voucherDetails": [{"productId": 555, "denomination": 100}]});
    let f = unheard(&dup, after_check(&dup, Reconciled::Found(other), T0 + 1), T0 + 1);
    assert!(matches!(f.store, Store::Save(Record { once: true, status: 409, .. })), "{f:?}");
    // Xoxoday's failure flag under HTTP 200 (`status` 0), kept once, is
    // still a refusal when heard: not placed, never an order found failed.
    let mut flagged = pending();
    flagged.not_found = 2;
    let zero = r#"{"data":{"placeOrder":{"status":0}}}"#;
    flagged.refused = Some(Refused { status: 200, body: zero.into() });
    let f = unheard(&flagged, after_check(&flagged, Reconciled::NotFound, T0 + SETTLE_MS), T0 + SETTLE_MS);
    let Store::Save(kept) = f.store else { panic!("{f:?}") };
    assert!(kept.once && kept.status == 200, "{kept:?}");
    let heard = admit(&Loaded::Some(kept.clone()), FP, Some("fp-2"), T0 + SETTLE_MS + 1);
    assert!(matches!(heard, Admission::Answer { fate: Fate::NotPlaced, .. }), "{heard:?}");
    assert!(matches!(look(&Loaded::Some(kept), FP, None, None, T0), Look::Answer { fate: Fate::NotPlaced, .. }));
}

#[test]
fn a_failed_check_is_no_evidence() {
    let mut r = pending();
    r.not_found = 2;
    r.checks = 4;
    // Neither a failed check nor an answer in other words is evidence.
    for seen in [Reconciled::Unknown, Reconciled::Unclear] {
        let f = after_check(&r, seen, T0 + 400_000);
        let Store::Save(next) = f.store else { panic!() };
        assert_eq!((next.not_found, next.checks, next.next_check_at_ms), (2, 5, T0 + 400_000 + 160_000));
        assert_eq!(f.fate, Fate::Unknown);
        assert_eq!(error_of(&f.outcome).code, ErrorCode::OrderInProgress);
    }
    // A previous version's pending record: its settling period starts now.
    let old = Record { sent_at_ms: 0, next_check_at_ms: 0, ..pending() };
    let f = after_check(&old, Reconciled::NotFound, T0);
    let Store::Save(next) = f.store else { panic!() };
    assert_eq!((next.sent_at_ms, next.next_check_at_ms), (T0, T0 + 10_000));
}

#[test]
fn alarm_every_arm() {
    let done = pending().done(200, PLACED.into(), false, T0);
    assert_eq!(alarm(&Loaded::None, false, RETENTION, T0), AlarmStep::Nothing);
    assert_eq!(alarm(&Loaded::Unreadable, false, RETENTION, T0), AlarmStep::Nothing, "left as it is");
    assert_eq!(
        alarm(&Loaded::ReadFailed, false, RETENTION, T0),
        AlarmStep::Later(T0 + FIRST_BACKOFF_MS),
        "storage did not answer: tried again, not left to the runtime's six retries"
    );
    assert_eq!(alarm(&Loaded::Some(done.clone()), false, RETENTION, T0 + 1), AlarmStep::Later(T0 + RETENTION));
    assert_eq!(alarm(&Loaded::Some(done.clone()), false, RETENTION, T0 + RETENTION), AlarmStep::Delete);
    let old_done = Record { done_at_ms: 0, ..done };
    assert_eq!(alarm(&Loaded::Some(old_done), false, RETENTION, T0), AlarmStep::Delete, "the previous version's retention alarm");
    let mut p = pending();
    p.next_check_at_ms = T0 + 10_000;
    assert_eq!(alarm(&Loaded::Some(p.clone()), false, RETENTION, T0 + 5_000), AlarmStep::Later(T0 + 10_000));
    assert_eq!(alarm(&Loaded::Some(p.clone()), false, RETENTION, T0 + 10_000), AlarmStep::Check(p.clone()));
    assert_eq!(alarm(&Loaded::Some(p.clone()), true, RETENTION, T0 + 10_000), AlarmStep::Later(T0 + 20_000), "its call still runs");
    assert_eq!(alarm(&Loaded::Some(p.clone()), false, RETENTION, T0 + RETENTION), AlarmStep::Expire);
    // A short ORDER_RETENTION_SECS deletes a done record on time, never a
    // pending one before its proof can complete.
    let short = 2_000;
    assert_eq!(alarm(&Loaded::Some(pending().done(200, PLACED.into(), false, T0)), false, short, T0 + short), AlarmStep::Delete);
    assert_eq!(alarm(&Loaded::Some(p.clone()), false, short, T0 + SETTLE_MS), AlarmStep::Check(p.clone()));
    assert_eq!(alarm(&Loaded::Some(p.clone()), false, short, T0 + MIN_PENDING_MS - 1), AlarmStep::Check(p.clone()));
    assert_eq!(alarm(&Loaded::Some(p.clone()), false, short, T0 + MIN_PENDING_MS), AlarmStep::Expire);
    let old = Record { sent_at_ms: 0, next_check_at_ms: 0, ..pending() };
    assert!(matches!(alarm(&Loaded::Some(old.clone()), false, RETENTION, T0), AlarmStep::Check(r) if r.sent_at_ms == T0));
    // A previous version's record that does not know its poNumber waits for a request to tell it.
    let unknown = Record { order: Value::Null, ..old };
    assert_eq!(alarm(&Loaded::Some(unknown), false, RETENTION, T0), AlarmStep::Later(T0 + MAX_BACKOFF_MS));
    // Where the alarm goes after a write.
    assert_eq!(alarm_for(&Store::Save(p.clone()), RETENTION), Some(T0 + 10_000));
    assert_eq!(alarm_for(&Store::Save(pending().done(200, String::new(), false, T0 + 7)), RETENTION), Some(T0 + 7 + RETENTION));
    assert_eq!(alarm_for(&Store::Forget, RETENTION), None);
    assert_eq!(alarm_for(&Store::Keep, RETENTION), None);
    // Written: as asked. Not written: the record stored before is checked
    // soon, never left to a done record's retention alarm.
    let done = Store::Save(pending().done(200, String::new(), false, T0 + 7));
    assert_eq!(alarm_after_write(&done, true, RETENTION, T0 + 8), Some(T0 + 7 + RETENTION));
    assert_eq!(alarm_after_write(&done, false, RETENTION, T0 + 8), Some(T0 + 8 + FIRST_BACKOFF_MS));
    assert_eq!(alarm_after_write(&Store::Forget, true, RETENTION, T0 + 8), None);
    assert_eq!(alarm_after_write(&Store::Forget, false, RETENTION, T0 + 8), Some(T0 + 8 + FIRST_BACKOFF_MS));
}

#[test]
fn the_record_reader_agrees_with_serdes_derive() {
    use crate::stored::agree;
    let by_hand = |bytes: &[u8]| match load(Ok(Some(String::from_utf8(bytes.to_vec()).unwrap()))) {
        Loaded::Some(r) => Some(r),
        _ => None,
    };
    // Every field away from its default.
    let full = json!({
        "fingerprint": "fp", "state": "pending", "status": 409, "body": "{}", "reconciled": true,
        "sent_at_ms": 5, "done_at_ms": 6, "why": "w", "refused": {"status": 422, "body": "b"},
        "checks": 2, "not_found": 1, "next_check_at_ms": 7, "order": {"poNumber": "p"}, "once": true,
    });
    assert_eq!(agree::derive::<Record>(&full.to_string()), Some(full.clone()), "full sets every field");
    let (read, refused) = agree::check::<Record>(&agree::texts(&full, &["/refused"]), by_hand);
    assert!(read > 40 && refused > 150, "{read} read, {refused} refused");
    let mut map_form = full.clone();
    map_form["state"] = json!({"pending": null});
    let text = map_form.to_string();
    assert!(agree::derive::<Record>(&text).is_some() && by_hand(text.as_bytes()).is_none(), "the one known difference");
}

/// A done record is replayed as stored, never rewritten by a request (only
/// a previous version's pending record learns its order), and one that
/// kept Xoxoday's refusal (as versions before reconciliation by alarm
/// did, `done_fate`) replays as not placed, never as a failed order.
#[test]
fn a_done_record_replays_as_it_was_stored() {
    let done = pending().done(200, PLACED.into(), false, T0);
    assert_eq!(done.with_order(&order(), T0), None, "a done record keeps no order fields");
    let refusal = r#"{"code":422,"errorId":"PLE10004","error":"x"}"#;
    let refused = pending().done(422, refusal.into(), true, T0);
    match admit(&Loaded::Some(refused), FP, None, T0) {
        Admission::Answer { outcome, replayed: true, fate, alarm_by_ms: None } => {
            assert_eq!(fate, Fate::NotPlaced, "a refusal is no failed order");
            assert_eq!(outcome, Outcome::Answer { status: 422, body: refusal.into(), reconciled: true, upstream_status: None });
        }
        other => panic!("{other:?}"),
    }
    // A check that is overdue (its alarm lost) is asked for now, not in the past.
    let overdue = Record { next_check_at_ms: T0 - 60_000, ..pending() };
    assert!(matches!(admit(&Loaded::Some(overdue), FP, None, T0), Admission::Answer { alarm_by_ms: Some(t), .. } if t == T0));
}

/// Timings the README and the module's doc state, pinned as numbers (the
/// other tests count in the constants, so a changed constant passes them).
#[test]
fn the_ledger_s_timings_are_as_documented() {
    // The first check of a call never recorded: 30 s after its timeout.
    assert_eq!(pending().next_check_at_ms, T0 + TIMEOUT + 30_000);
    // README (ORDER_RETENTION_SECS): a pending order is checked for at
    // least an hour, whatever the setting.
    let p = Record { next_check_at_ms: T0 + 10_000, ..pending() };
    assert_eq!(alarm(&Loaded::Some(p.clone()), false, 1_000, T0 + 3_599_999), AlarmStep::Check(p.clone()));
    assert_eq!(alarm(&Loaded::Some(p.clone()), false, 1_000, T0 + 3_600_000), AlarmStep::Expire);
    // Its call still in flight: the alarm comes back no sooner than the
    // check already scheduled.
    let later = Record { next_check_at_ms: T0 + 60_000, ..pending() };
    assert_eq!(alarm(&Loaded::Some(later), true, RETENTION, T0 + 10_000), AlarmStep::Later(T0 + 60_000));
    // The not-placed mark outlasts a look's wait and the registry's second
    // look 30 s after the first.
    let (mark, _) = not_placed_mark(FP, T0);
    assert!(read_mark(&mark, T0 + crate::registry::NOTHING_RECHECK_MS + LOOK_WAIT_MS).is_ok());
    // A definite refusal's check is asked now.
    let AfterPlace::Confirm(r) = after_place(answer(400, r#"{"code":400,"errorId":"PLE10001","error":"x"}"#), None, &pending(), T0 + 900) else { panic!() };
    assert_eq!(r.next_check_at_ms, T0 + 900);
}

/// Readings of Xoxoday's answers no other test pins: what names an order,
/// what is its "no such order", its errorId, its duplicate answer.
#[test]
fn answers_read_to_the_letter() {
    let details = |d: &str| answer(200, &format!(r#"{{"data":{{"getOrderDetails":{{"status":1,"data":{d}}}}}}}"#));
    for d in [r#"{"orderId":" 0 "}"#, r#"{"orderId":"  "}"#] {
        assert_eq!(read_reconcile(details(d)), Reconciled::Unclear, "{d}: no order named");
    }
    // A 404 whose JSON names another code is not Plum's "no such order";
    // an empty errorId is none.
    assert_eq!(read_reconcile(answer(404, r#"{"code":500,"error":"x"}"#)), Reconciled::Unclear);
    assert_eq!(read_reconcile(answer(404, r#"{"code":404,"errorId":"","error":"Order not found"}"#)), Reconciled::NotFound);
    assert_eq!(error_id_note(br#"{"errorId":""}"#), "");
    assert_eq!(error_id(br#"{"errorId":"ABCDEFGH12345678"}"#).as_deref(), Some("ABCDEFGH12345678"), "16 characters");
    assert_eq!(error_id(br#"{"errorId":"ABCDEFGH123456789"}"#), None, "17");
    // The duplicate answer is a 4xx: a 3xx in its words is a lost answer,
    // checked as such, its body no refusal to pass on.
    let dup = r#"{"error":"Duplicate poNumber"}"#;
    assert!(!is_duplicate(302, dup.as_bytes()) && !is_duplicate(399, dup.as_bytes()));
    assert_eq!(checked(after_place(answer(302, dup), None, &pending(), T0 + 900)).refused, None);
    // After a refusal `after_place` did not keep, the check alone says nothing was placed.
    let f = after_refusal(&Record { why: "w".into(), ..pending() }, Reconciled::NotFound, T0);
    assert_eq!((f.store, f.fate, error_of(&f.outcome).message.as_str()), (Store::Forget, Fate::NotPlaced, "w"));
}

/// What a found order is compared and read by, to the letter.
#[test]
fn a_found_order_is_read_to_the_letter() {
    // Lines of quantity 0 with nothing cancelled are no cancelled order.
    assert!(!failed_or_cancelled(&json!({"quantity": 0, "voucherDetails": [{"cancelledQuantity": 0}]})));
    assert!(!failed_or_cancelled(&json!({"voucherDetails": [{"quantity": 0}]})));
    // Amounts agree within half a cent, not a cent; text ids trimmed.
    let d = |amount: f64| json!({"voucherDetails": [{"productId": 10100, "denomination": amount}]});
    assert_eq!(same_order(&d(25.004), &order_summary(&order())), Match::This);
    assert_eq!(same_order(&d(0.1 + 0.2), &order_summary(&json!({"denomination": "0.3"}))), Match::This, "a float sum");
    assert_eq!(same_order(&d(25.01), &order_summary(&order())), Match::Other);
    let merch = json!({"voucherDetails": [{"productId": " MERCH-1 "}]});
    assert_eq!(same_order(&merch, &order_summary(&json!({"productId": "MERCH-1"}))), Match::This);
    // A product id in digits is not a text id that says otherwise.
    let digits = json!({"voucherDetails": [{"productId": "10100"}]});
    assert_eq!(same_order(&digits, &order_summary(&json!({"productId": "MERCH-1"}))), Match::Other);
    // voucherDetails' line first, vouchers' only without it.
    let both = json!({"voucherDetails": [{"productId": 10100}], "vouchers": [{"productId": 999}]});
    assert_eq!(same_order(&both, &order_summary(&order())), Match::This);
}

/// A lost answer (a timeout, a transport error) keeps no refusal: once no
/// order is found the caller hears that a retry is safe, and an order found
/// whose own email differs is this call's ([`this_if_unsure`]).
#[test]
fn a_lost_answer_keeps_no_refusal() {
    for lost in [Err(CallError::Timeout(130_000)), Err(CallError::Transport)] {
        let r = checked(after_place(lost, None, &pending(), T0 + 900));
        assert_eq!((r.refused.clone(), r.next_check_at_ms), (None, T0 + 900));
        assert!(this_if_unsure(&r));
    }
    // A look's two words that the ledger knows nothing placed: only "no
    // record" is nothing found (the registry's second look waits on it).
    let said = |e: ApiError| Outcome::Error { error: e, upstream_status: None };
    assert!(found_nothing(&said(nothing_found())) && !found_nothing(&said(found_not_placed())));
    assert!(found_nothing_placed(&said(nothing_found())) && found_nothing_placed(&said(found_not_placed())));
    assert!(!found_nothing_placed(&said(ApiError::upstream_error("x"))));
}
