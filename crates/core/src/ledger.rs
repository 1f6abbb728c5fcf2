//! placeOrder safety (contract §5), decided without I/O: the `OrderLedger`
//! Durable Object's decision table.
//!
//! One ledger object per `poNumber` keeps one [`Record`]. Its shell
//! (`src/objects/ledger.rs`) reads the record, asks [`admit`], and for a run
//! makes the calls these functions ask for (placeOrder, getOrderDetails),
//! hands each result back, and carries out the [`Finish`] it gets: one
//! write of the record ([`Store`]), a penalty to report, the outcome and
//! the order's [`Fate`]. Its alarm asks [`alarm`] what is due.
//!
//! **plumgate never guesses.** An order whose fate is unknown stays
//! `pending` and is checked with getOrderDetails, from the object's alarm
//! with backoff ([`backoff_ms`]), until Xoxoday gives a definite answer;
//! meanwhile every request for it gets `409 order_in_progress` with
//! `Retry-After`. "Nothing was placed" is said only when plumgate knows:
//! it never sent the order, Xoxoday refused it with a definite answer, or
//! the evidence rule below is met.
//!
//! **How much evidence is "not placed".** getOrderDetails' "no such order"
//! right after a 5xx or a timeout proves nothing: Xoxoday's own PLE10035
//! says it could not check the order's status, realtime products take up
//! to 120 s (xoxoday-api.md §2), and a lookup may lag the order. plumgate
//! takes an order as not placed once getOrderDetails has answered "no such
//! order" [`NOT_FOUND_PROOF`] times, the last of them at least
//! [`SETTLE_MS`] (Xoxoday's 120 s plus a minute) after placeOrder was sent.
//! A check that fails (5xx, timeout, plumgate's own rate limit) counts as
//! nothing either way.
//!
//! The table:
//!
//! | record | what happens ([`admit`]) |
//! |---|---|
//! | cannot be read | `503 misconfigured` naming the storage key; nothing is sent (fails closed) |
//! | for another order body | `409 idempotency_conflict`; for a settlement no request heard, as if there were none |
//! | `done` | its answer again, replayed |
//! | `done`, a settlement no request heard (`once`, [`unheard`]) | its answer, replayed, once; then the record is forgotten |
//! | none or `pending`, the call for this body in flight | join the call |
//! | none, the call for another body in flight | `409 idempotency_conflict` |
//! | `pending` | `409 order_in_progress`, `Retry-After` = the next check |
//! | none | the limiter, then record `pending`, then place |
//!
//! | placeOrder's outcome ([`after_place`]) | record | caller gets | fate |
//! |---|---|---|---|
//! | success | `done` | the answer | placed |
//! | rate-limit answer | forgotten, penalty reported | `429 rate_limited` | not placed |
//! | duplicate poNumber (409 `PLE10043`, "duplicate", "already exists") | check now ([`after_check`]) | | |
//! | `PLE10007` / `PLE10010` / `PLE10011` / `PLE10012` ("failed to add / redeem points / confirm / process", documented as 422s) or `PLE10036` (delivery cancelled), whatever the status | check now | | |
//! | 5xx (`PLE10035` and any other), `PLE10035` ("failed to check order status") under any status, timeout, transport error, a body that is not JSON (whatever the status: a proxy's page is not Xoxoday's answer) | check now | | |
//! | a 2xx or 3xx that is neither a success nor a 200 with `status` 0 | check now, as after a lost answer (the answer is not kept: it refuses nothing) | | |
//! | any other answer (a definite refusal: a 4xx such as validation, denomination, quantity, KYC…, or a 200 with `status` 0) | one check ([`after_refusal`]): this order found under the poNumber (placed before; Xoxoday's duplicate answer may look like any refusal) is `done`, reconciled; else forgotten | it in placeOrder's shape; else the answer | placed; else not placed |
//! | token problem (nothing executed) | forgotten | the error | not placed |
//!
//! | a check ([`after_check`], also from the alarm) | record | caller gets | fate |
//! |---|---|---|---|
//! | the order exists, and is this one | `done`, reconciled | it in placeOrder's shape, `status` 1 (0 when it failed or was cancelled) | placed / failed |
//! | an order with this poNumber exists with another product, quantity or denomination | forgotten | Xoxoday's duplicate answer, or `409 idempotency_conflict` | not placed |
//! | no such order, evidence complete, after Xoxoday's refusal | forgotten (settled by the alarm: kept for the next request, once) | the refusal | not placed |
//! | no such order, evidence complete, after a lost answer | forgotten | an error saying a retry is safe | not placed |
//! | no such order (evidence not yet complete), or the check failed | stays `pending`, next check scheduled | `409 order_in_progress` | unknown |
//! | Xoxoday's rate-limit answer to the check | stays `pending`, the limiter told, next check after the penalty | `409 order_in_progress` | unknown |
//!
//! | the alarm ([`alarm`]) | what happens |
//! |---|---|
//! | `done`, `ORDER_RETENTION_SECS` after it was answered | deleted |
//! | `pending` for `ORDER_RETENTION_SECS`, and at least an hour ([`MIN_PENDING_MS`]) | deleted, with an error log line |
//! | `pending`, check due | a check |
//!
//! When the alarm's check settles an order's fate, the `KeyRegistry` is
//! told ([`tell`]): the spend held for it is counted or freed, and the
//! audit trail records the settlement.
//!
//! An order is never re-sent by plumgate: after an answer proven "not
//! placed" the record is gone, and the caller's next request with that
//! poNumber places it. (When the alarm settled it and the answer is
//! Xoxoday's refusal, the next request hears that refusal first.)
//!
//! A worker whose call lost the ledger's answer asks what became of the
//! order ([`look`]): the same table, except that where a request would
//! place the order a look places nothing; a deleted record's mark
//! ([`NOT_PLACED_KEY`]) tells it the order was not placed.

use crate::errors::{ApiError, CallError, ErrorCode};
use crate::http::HttpAnswer;
use crate::lenient::lenient_i64;
use crate::ops::Operation;
use crate::upstream::{api_penalty, is_json, is_plum_failure, is_plum_success, plum_data, Observed};
use crate::wire::ledger::{Fate, LedgerReply, Outcome};
#[cfg(test)]
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

/// Storage key of the record.
pub const RECORD_KEY: &str = "order";

/// Xoxoday's errorId for "no such order" (getOrderDetails).
const ORDER_NOT_FOUND: &str = "PLE10016";

/// The duplicate-poNumber errorId (as the sandbox answers it; Xoxoday does
/// not document one, so its wording counts too: [`is_duplicate`]).
const DUPLICATE_PO: &str = "PLE10043";

/// Xoxoday's quantity refusal, also a 409 (never a duplicate).
const QUANTITY_LIMIT: &str = "PLE10041";

/// Refusals that do not say whether an order was made: failed to add, to
/// redeem points, to confirm, to process the order (documented as 422s);
/// delivery cancelled (a 404: an order may have been made, its delivery
/// then cancelled). Read by errorId whatever the HTTP status (Xoxoday's
/// tables give some errorIds two statuses): taking one of them for a
/// definite refusal could let the caller place the order again.
const UNCERTAIN_REFUSALS: [&str; 5] = ["PLE10007", "PLE10010", "PLE10011", "PLE10012", "PLE10036"];

/// "Failed to check order status; call getOrderDetails" (documented as a
/// 502): Xoxoday lost track of its own answer. Under whatever status it is
/// a lost answer, as a 5xx is: nothing of it is passed on, and once no order
/// is found the caller hears that a retry is safe.
const STATUS_CHECK_FAILED: &str = "PLE10035";

/// "No such order" this many times makes an order not placed (with
/// [`SETTLE_MS`]).
pub const NOT_FOUND_PROOF: u32 = 3;

/// The last "no such order" must come at least this long after placeOrder
/// was sent: Xoxoday's 120 s for realtime products, plus a minute.
pub const SETTLE_MS: i64 = 180_000;

/// The `REFRESH_TIMEOUT_MS` (its default) whose waits before sending the
/// minute in [`SETTLE_MS`] covers: up to 3 s joining a token lookup, then
/// three waits for the token authority (the token; after a 401 its check
/// and a refresh), 48 s, leaving 12 s for the 401's round trip. Each
/// millisecond above it moves a record's send time on by three
/// ([`Record::pending`]).
pub const COVERED_REFRESH_TIMEOUT_MS: u64 = 15_000;

/// First wait between checks (then doubling, [`backoff_ms`]).
pub const FIRST_BACKOFF_MS: i64 = 10_000;

/// Longest wait between checks.
pub const MAX_BACKOFF_MS: i64 = 900_000;

/// An order whose fate is unknown is checked at least this long after it
/// was sent, whatever `ORDER_RETENTION_SECS` says: a shorter retention
/// would delete it before its proof could complete ([`SETTLE_MS`], the
/// checks' backoff), and the next request would send it again.
pub const MIN_PENDING_MS: i64 = 3_600_000;

/// If the call's outcome is never recorded (the object was evicted during
/// it), the first check comes this long after the call's timeout.
pub const LOST_CALL_GRACE_MS: i64 = 30_000;

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    /// Written before Xoxoday is called; the outcome is not known yet.
    Pending,
    /// The outcome is known; `status` and `body` are the answer.
    Done,
}

/// Xoxoday's own refusal, kept while plumgate checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
pub struct Refused {
    /// Xoxoday's status.
    pub status: u16,
    /// Xoxoday's body, verbatim.
    pub body: String,
}

/// What the ledger keeps per `poNumber` (storage key [`RECORD_KEY`], JSON
/// text; `docs/storage.md`). Every field after `reconciled` came with
/// reconciliation by alarm and has a default, so a record of the previous
/// version reads (its `pending` is checked as if just sent). Read by hand
/// ([`load`]); `Deserialize` is derived for the test that holds that reader
/// to the derive's rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
pub struct Record {
    /// `ops::order_fingerprint` of the order body.
    pub fingerprint: String,
    /// Where it stands.
    pub state: RecordState,
    /// The answer's status (0 while pending).
    pub status: u16,
    /// The answer's body, replayed verbatim (empty while pending).
    pub body: String,
    /// Found by reconciliation.
    pub reconciled: bool,
    /// When placeOrder was sent (epoch ms; 0: unknown, a previous version's
    /// record): when its record was written, or later by what the waits
    /// for a token can take beyond the settling period's minute
    /// ([`Record::pending`]).
    #[serde(default)]
    pub sent_at_ms: i64,
    /// When the record became `done` (retention counts from here).
    #[serde(default)]
    pub done_at_ms: i64,
    /// Why the fate is unknown, a safe sentence for the caller.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub why: String,
    /// Xoxoday's refusal that is being checked (a duplicate, a 422).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refused>,
    /// getOrderDetails checks made.
    #[serde(default)]
    pub checks: u32,
    /// How many of them said "no such order".
    #[serde(default)]
    pub not_found: u32,
    /// When the next check is due (the alarm).
    #[serde(default)]
    pub next_check_at_ms: i64,
    /// While pending, what a check needs of the order as sent
    /// ([`order_summary`]: its poNumber, product, quantity, denomination,
    /// and fingerprints of its recipient).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub order: Value,
    /// A `done` record of an answer no request has heard yet (the alarm's
    /// check settled the order as not placed: [`unheard`]): the next
    /// request for the order gets it once ([`Admission::Settled`]), then
    /// the record goes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub once: bool,
}

/// The fields of an order a check needs: the `poNumber` to look it up by,
/// and what [`same_order`] compares. (Not the whole order: its recipient
/// is not the ledger's to keep, so only fingerprints of the recipient's
/// email and phone number, `email_fp` and `contact_fp`, [`recipient`].)
pub fn order_summary(data: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for k in ["poNumber", "productId", "quantity", "denomination"] {
        if let Some(v) = data.get(k) {
            out.insert(k.to_string(), v.clone());
        }
    }
    for (k, fp) in [("email_fp", recipient(text_of(data, "email"), true)), ("contact_fp", recipient(text_of(data, "contact"), false))] {
        if let Some(fp) = fp {
            out.insert(k.into(), Value::String(fp));
        }
    }
    Value::Object(out)
}

/// `o[key]` when it is text.
fn text_of<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    o.get(key).and_then(Value::as_str)
}

/// The fingerprint of a recipient's email (`email`: trimmed, in lower
/// case) or phone number (its last ten digits, so that a country code or
/// dashes added or dropped do not count); `None` when nothing is said.
fn recipient(said: Option<&str>, email: bool) -> Option<String> {
    let said = said?;
    let mut key: String = if email { said.trim().to_ascii_lowercase() } else { said.matches(|c: char| c.is_ascii_digit()).collect() };
    if !email {
        key.drain(..key.len().saturating_sub(10));
    }
    (!key.is_empty()).then(|| crate::secret::fingerprint(&key))
}

impl Record {
    /// The record written before the order `data` is sent at `now_ms`;
    /// should the outcome never be recorded, it is checked
    /// `LOST_CALL_GRACE_MS` after the call's timeout (`timeout_ms`). With
    /// a `REFRESH_TIMEOUT_MS` (`refresh_timeout_ms`) above
    /// [`COVERED_REFRESH_TIMEOUT_MS`], the order may be sent later than the
    /// settling period's minute allows for: its send time is taken as
    /// three times the excess later, so that "no such order" settles
    /// nothing before Xoxoday's 120 s have passed since the latest it can
    /// have gone.
    pub fn pending(fingerprint: &str, data: &Value, now_ms: i64, timeout_ms: i64, refresh_timeout_ms: u64) -> Record {
        let sent_at_ms = now_ms + 3 * refresh_timeout_ms.saturating_sub(COVERED_REFRESH_TIMEOUT_MS) as i64;
        Record {
            fingerprint: fingerprint.to_string(),
            state: RecordState::Pending,
            status: 0,
            body: String::new(),
            reconciled: false,
            sent_at_ms,
            done_at_ms: 0,
            why: "plumgate lost track of its call to Xoxoday".into(),
            refused: None,
            checks: 0,
            not_found: 0,
            next_check_at_ms: sent_at_ms.saturating_add(timeout_ms).saturating_add(LOST_CALL_GRACE_MS),
            order: order_summary(data),
            once: false,
        }
    }

    /// The record of an order sent to `account` (`Config::account_id`),
    /// kept in its order summary (records of earlier versions have none).
    pub fn on_account(mut self, account: &str) -> Record {
        if let Value::Object(o) = &mut self.order {
            o.insert("account".into(), Value::String(account.to_owned()));
        }
        self
    }

    /// May the record be checked with getOrderDetails on `account` (the
    /// configuration's now)? Not when it was sent to another: after a
    /// switch of the deployment's Xoxoday account, that account has no
    /// such order (the record would settle as not placed, its hold freed)
    /// or another order under the same poNumber (whose answer, vouchers
    /// included, would become this one's). It stays pending until the
    /// account is back, or it expires.
    pub fn checkable_on(&self, account: &str) -> bool {
        self.order.get("account").and_then(Value::as_str).is_none_or(|a| a == account)
    }

    /// The poNumber to check, when the record knows it.
    pub fn po_number(&self) -> Option<String> {
        crate::ops::po_number(&self.order)
    }

    /// A `pending` record of the previous version does not know the order
    /// a check needs: the same order sent again (`data`, at `now_ms`) tells
    /// it. `None` when there is nothing to add.
    pub fn with_order(&self, data: &Value, now_ms: i64) -> Option<Record> {
        (self.state == RecordState::Pending && self.order.is_null()).then(|| Record { order: order_summary(data), ..self.upgraded(now_ms) })
    }

    fn done(&self, status: u16, body: String, reconciled: bool, now_ms: i64) -> Record {
        Record {
            fingerprint: self.fingerprint.clone(),
            state: RecordState::Done,
            status,
            body,
            reconciled,
            sent_at_ms: self.sent_at_ms,
            done_at_ms: now_ms,
            why: String::new(),
            refused: None,
            checks: self.checks,
            not_found: self.not_found,
            next_check_at_ms: 0,
            order: Value::Null,
            once: false,
        }
    }

    /// A `pending` record of the previous version knows neither when it
    /// was sent nor when to check: as if sent now, checked now. And one
    /// that kept a 2xx or 3xx answer that was neither a placed order, nor
    /// the failure flag, nor the refusal `after_place` keeps under such a
    /// status (an errorId of [`UNCERTAIN_REFUSALS`]) as its refusal
    /// (versions before 2026-12-04) is checked as the lost answer it is:
    /// that body refuses nothing, and read as a refusal one "no such
    /// order" would settle it not placed.
    fn upgraded(&self, now_ms: i64) -> Record {
        let mut r = self.clone();
        if r.state == RecordState::Pending && r.sent_at_ms == 0 {
            r.sent_at_ms = now_ms;
            r.next_check_at_ms = now_ms;
            r.why = "an earlier attempt's outcome is unknown".into();
        }
        if definitely_refused(&r) && r.refused.as_ref().is_some_and(|f| f.status < 400 && !is_plum_failure(Operation::PlaceOrder.name(), f.status, f.body.as_bytes())) {
            r.refused = None;
        }
        r
    }

    /// The fate of a `done` record's answer: an unheard settlement
    /// (`once`) is not placed; else a success is placed; another 200 is an
    /// order found failed or cancelled; anything else is Xoxoday's
    /// refusal, confirmed by reconciliation.
    fn done_fate(&self) -> Fate {
        if self.once {
            Fate::NotPlaced
        } else if is_plum_success(Operation::PlaceOrder.name(), self.status, self.body.as_bytes()) {
            Fate::Placed
        } else if self.status == 200 {
            Fate::Failed
        } else {
            Fate::NotPlaced
        }
    }
}

/// The record as read from storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// No record.
    None,
    /// A record.
    Some(Record),
    /// Something is stored but cannot be read: nothing may be sent for
    /// this poNumber until an operator looks.
    Unreadable,
    /// Storage did not answer the read: nothing is known either, but a
    /// retry may well read the record.
    ReadFailed,
}

/// Read the stored value (`Err`: storage failed).
pub fn load(stored: Result<Option<String>, ()>) -> Loaded {
    match stored {
        Ok(None) => Loaded::None,
        Ok(Some(text)) => crate::jsontext::from_text::<Value>(&text).ok().and_then(|v| record(&v)).map_or(Loaded::Unreadable, Loaded::Some),
        Err(()) => Loaded::ReadFailed,
    }
}

/// A [`Record`] from its JSON, field by field ([`crate::stored`]: serde's
/// derive compiled to 7.8 KB of wasm here); `None` when it cannot be read.
/// The derive's rules, held to them by a test (`ledger/tests.rs`); unlike
/// it, a repeated key is not refused (the last wins), and `state` in the
/// map form `{"pending": null}` is.
fn record(v: &Value) -> Option<Record> {
    use crate::stored::{flag, get, int, need, slot, small_count, status, text};
    let o = v.as_object()?;
    let state = |v: &Value| match v.as_str()? {
        "pending" => Some(RecordState::Pending),
        "done" => Some(RecordState::Done),
        _ => None,
    };
    let refused = |v: &Value| {
        slot(v, |o| Some(Refused { status: need(o, "status", status)?, body: need(o, "body", text)? }))
    };
    Some(Record {
        fingerprint: need(o, "fingerprint", text)?,
        state: need(o, "state", state)?,
        status: need(o, "status", status)?,
        body: need(o, "body", text)?,
        reconciled: need(o, "reconciled", flag)?,
        sent_at_ms: get(o, "sent_at_ms", int).ok()?,
        done_at_ms: get(o, "done_at_ms", int).ok()?,
        why: get(o, "why", text).ok()?,
        refused: get(o, "refused", refused).ok()?,
        checks: get(o, "checks", small_count).ok()?,
        not_found: get(o, "not_found", small_count).ok()?,
        next_check_at_ms: get(o, "next_check_at_ms", int).ok()?,
        order: o.get("order").cloned().unwrap_or_default(),
        once: get(o, "once", flag).ok()?,
    })
}

/// The error for an unreadable record.
pub fn unreadable() -> ApiError {
    ApiError::misconfigured(&[format!(
        "the OrderLedger record of this poNumber (storage key `{RECORD_KEY}`) cannot be read: no order is placed or replayed until an operator looks (log event order_record_unreadable); nothing was sent"
    )])
}

/// The error when storage did not answer the record's read (the record
/// may say the order was placed: nothing is sent).
pub fn read_failed() -> ApiError {
    ApiError::upstream_error("the OrderLedger could not read the record of this poNumber (storage did not answer): nothing was sent; retry")
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
        /// The order's fate.
        fate: Fate,
        /// A check is pending: make sure an alarm is set by then.
        alarm_by_ms: Option<i64>,
    },
    /// The call for this order is in flight: wait for its outcome.
    Join,
    /// No record: ask the limiter, record `pending`, place.
    Run,
    /// A settlement no request heard ([`unheard`]): answered with it
    /// (replayed, not placed), then the record is forgotten, so the
    /// request after this one places the order.
    Settled(Outcome),
}

/// The first table: what the stored record means for a request with order
/// `fingerprint`, given the fingerprint of the order whose call this
/// object has in flight, if any (its record may not be written yet: the
/// run asks the limiter first).
pub fn admit(loaded: &Loaded, fingerprint: &str, in_flight: Option<&str>, now_ms: i64) -> Admission {
    let answer = |outcome, replayed, fate| Admission::Answer { outcome, replayed, fate, alarm_by_ms: None };
    let conflict = || answer(error(ApiError::idempotency_conflict()), false, Fate::NotPlaced);
    let record = match loaded {
        Loaded::Unreadable => return answer(error(unreadable()), false, Fate::Unknown),
        Loaded::ReadFailed => return answer(error(read_failed()), false, Fate::Unknown),
        Loaded::None => {
            return match in_flight {
                Some(running) if running != fingerprint => conflict(),
                Some(_) => Admission::Join,
                None => Admission::Run,
            }
        }
        Loaded::Some(r) => r,
    };
    if record.fingerprint != fingerprint {
        // A settlement no request heard says its order was not placed: as
        // when a request hears it and the record is forgotten, the
        // poNumber is free, and a corrected body is sent (its record
        // replaces this one) rather than refused until retention ends.
        if record.once {
            return admit(&Loaded::None, fingerprint, in_flight, now_ms);
        }
        return conflict();
    }
    match record.state {
        // Heard and forgotten only while no call is in flight: a run of
        // another body may be about to write its pending record, which
        // the forgetting would delete (the run's record replaces this one
        // anyway, so it is answered, kept).
        RecordState::Done if record.once && in_flight.is_none() => Admission::Settled(replay(record)),
        RecordState::Done => answer(
            replay(record),
            true,
            record.done_fate(),
        ),
        RecordState::Pending if in_flight.is_some() => Admission::Join,
        RecordState::Pending => {
            let r = record.upgraded(now_ms);
            Admission::Answer {
                outcome: in_progress(&r, now_ms),
                replayed: false,
                fate: Fate::Unknown,
                alarm_by_ms: Some(r.next_check_at_ms.max(now_ms)),
            }
        }
    }
}

/// A `done` record's answer, as stored.
fn replay(r: &Record) -> Outcome {
    Outcome::Answer { status: r.status, body: r.body.clone(), reconciled: r.reconciled, upstream_status: None }
}

/// A check the alarm made settles the order, and no request is waiting to
/// hear it. Xoxoday's refusal (a 422 that left the order's fate open, a
/// duplicate answer), now known to have placed nothing, is kept for the
/// caller's next request ([`Admission::Settled`]) instead of forgotten at
/// once: a caller told `409 order_in_progress` comes back with the same
/// poNumber, and must hear the refusal rather than have the order sent
/// again (which, the balance still short, would be refused and settled
/// again, three minutes of `409` per round, forever). An error of
/// plumgate's ("not placed, a retry is safe") is not kept: the retry it
/// asks for places the order.
/// (`checked`: the record the check was made for.)
pub fn unheard(checked: &Record, f: Finish, now_ms: i64) -> Finish {
    match (&f.store, &f.outcome, f.fate) {
        (Store::Forget, Outcome::Answer { status, body, .. }, Fate::NotPlaced) => {
            let mut r = checked.done(*status, body.clone(), false, now_ms);
            r.once = true;
            Finish { store: Store::Save(r), ..f }
        }
        _ => f,
    }
}

/// What a look meets: a worker whose placeOrder call lost the ledger's
/// answer asks what became of the order (`wire::ledger::LOOK_URL`), so
/// that the key's spend and audit trail learn it without the caller
/// retrying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// What a retry would be answered (the record's outcome and fate).
    Answer {
        /// What the caller would get.
        outcome: Outcome,
        /// The order's fate.
        fate: Fate,
        /// A check is pending: make sure an alarm is set by then.
        alarm_by_ms: Option<i64>,
    },
    /// The call for this order is still in flight: wait for its outcome.
    Join,
    /// No record and nothing in flight: the lost call never reached this
    /// object, or its record was not written, or (rarely) it is still on
    /// its way. Never placed from here: a look is not the caller's
    /// retry, and an order the caller was told may not exist must not
    /// appear on its own. Answered as unknown.
    Nothing,
    /// No record, but this order's mark ([`NOT_PLACED_KEY`]): its call
    /// ended with nothing placed and the record was deleted.
    NotPlaced,
}

/// Storage key of the mark an order leaves when its record is deleted
/// with nothing placed (a definite refusal, a lost answer proven "not
/// placed", a refusal before sending): `<until_ms> <fingerprint>`
/// ([`not_placed_mark`]). The record goes so that the `poNumber` can be
/// used again; the mark only tells a [`look`] that comes after it what
/// became of the order, and is deleted by the alarm when it ends.
pub const NOT_PLACED_KEY: &str = "not_placed";

/// How long the mark is kept (a look comes within [`LOOK_WAIT_MS`] of the
/// answer it follows).
pub const NOT_PLACED_KEEP_MS: i64 = 600_000;

/// The mark of order `fingerprint` deleted at `now_ms`, and when it ends.
pub fn not_placed_mark(fingerprint: &str, now_ms: i64) -> (String, i64) {
    let until = now_ms.saturating_add(NOT_PLACED_KEEP_MS);
    (format!("{until} {fingerprint}"), until)
}

/// A stored mark at `now_ms`: the fingerprint it names while it lasts
/// (`Ok`), or when it ended (`Err`: delete it; `i64::MIN` for a mark that
/// cannot be read).
pub fn read_mark(stored: &str, now_ms: i64) -> Result<(&str, i64), i64> {
    let Some((until, fingerprint)) = crate::text::split_once(stored, " ") else { return Err(i64::MIN) };
    match crate::jsontext::int_from_text(until) {
        Some(until) if until > now_ms => Ok((fingerprint, until)),
        Some(until) => Err(until),
        None => Err(i64::MIN),
    }
}

/// How long a worker waits for the answer to its look (it runs after the
/// caller's answer, in `waitUntil`, which the runtime ends 30 s after the
/// response; a call still in flight for Xoxoday may take minutes). Past
/// it, the attempt settles as `unknown`, as without a look.
pub const LOOK_WAIT_MS: i64 = 10_000;

/// The table of a look: [`admit`]'s, except that where a request would
/// place the order a look places nothing: it finds the order's mark
/// (`not_placed`: the fingerprint a live [`NOT_PLACED_KEY`] names), or
/// nothing.
pub fn look(loaded: &Loaded, fingerprint: &str, in_flight: Option<&str>, not_placed: Option<&str>, now_ms: i64) -> Look {
    match admit(loaded, fingerprint, in_flight, now_ms) {
        Admission::Answer { outcome, fate, alarm_by_ms, .. } => Look::Answer { outcome, fate, alarm_by_ms },
        Admission::Settled(outcome) => Look::Answer { outcome, fate: Fate::NotPlaced, alarm_by_ms: None },
        Admission::Join => Look::Join,
        Admission::Run if not_placed == Some(fingerprint) => Look::NotPlaced,
        Admission::Run => Look::Nothing,
    }
}

/// The reply to a look that found the order's mark (see [`Look::NotPlaced`];
/// read by the worker, never shown to a caller).
pub fn found_not_placed() -> ApiError {
    ApiError::upstream_error(NOT_PLACED)
}

const NOT_PLACED: &str = "not placed";

/// Is this a look's reply that found no record ([`nothing_found`]) or
/// the mark that nothing was placed ([`found_not_placed`])?
pub fn found_nothing_placed(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Error { error, .. } if knows_nothing(error))
}

/// The reply to a look that found nothing (see [`Look::Nothing`]; read by
/// the worker, never shown to a caller).
pub fn nothing_found() -> ApiError {
    ApiError::upstream_error(NO_RECORD)
}

const NO_RECORD: &str = "no record";

/// Is this a look's reply that found neither a record nor a call in flight
/// ([`nothing_found`])?
pub fn found_nothing(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Error { error, .. } if error.message == NO_RECORD)
}

/// Is this error a look's word that the ledger knows nothing placed under
/// the `poNumber`: no record ([`nothing_found`]) or its mark that nothing
/// was placed ([`found_not_placed`])?
fn knows_nothing(said: &ApiError) -> bool {
    said.message == NO_RECORD || said.message == NOT_PLACED
}

/// Is a spend cap's turned-away reservation (`error`) worth asking the
/// ledger about ([`after_reservation`])? Over the cap, or any 5xx (no
/// answer from the registry, its storage failing): the order may be the
/// retry of one the ledger holds, whose first attempt may have placed it,
/// so "nothing was placed" is said only once the ledger knows nothing of
/// it. A refusal of the caller (a revoked or expired key) stands as it is.
pub fn look_after(error: &ApiError) -> bool {
    error.code == ErrorCode::QuotaExceeded || error.status >= 500
}

/// A placeOrder the spend cap turned away before it reached the ledger:
/// its reservation was refused (`429 quota_exceeded`) or not made (the
/// key registry did not answer). It may be the retry of an order the
/// ledger already holds, placed on an earlier day (a replay spends
/// nothing, and contract §5 promises the stored answer) or still pending,
/// so the ledger is asked first (a look, never a placement; `look`: its
/// reply, `None` when none came). What the ledger knows is the answer:
/// the stored answer, `409 order_in_progress`, another body's conflict.
/// A joined call in flight is waited for, as by a retry that reached the
/// ledger. When it knows nothing (no record, or its mark that nothing was placed),
/// the reservation's error stands, a 5xx saying nothing was placed
/// ([`unsent`]); with no word from the ledger, it stands as it is (a 502
/// without those words: an earlier attempt may have placed the order, and
/// a retry with the same poNumber is answered with it).
///
/// # Errors
/// The reservation's error, worded as above.
pub fn after_reservation(error: ApiError, look: Option<LedgerReply>) -> Result<LedgerReply, ApiError> {
    let Some(reply) = look else { return Err(error) };
    match &reply.outcome {
        Outcome::Answer { .. } => Ok(reply),
        Outcome::Error { error: said, .. } if matches!(said.code, ErrorCode::OrderInProgress | ErrorCode::IdempotencyConflict) => Ok(reply),
        Outcome::Error { error: said, .. } if knows_nothing(said) => Err(unsent(error)),
        // Anything else (a ledger of the previous version, which does not
        // know the look; an unreadable record; a joined call's error) says
        // nothing of the order: the reservation's error as it is.
        Outcome::Error { .. } => Err(error),
    }
}

fn error(e: ApiError) -> Outcome {
    Outcome::Error { error: e, upstream_status: None }
}

/// `409 order_in_progress` for a pending record: why, and when to ask again.
fn in_progress(r: &Record, now_ms: i64) -> Outcome {
    // A second after the check, so the answer is there when the caller is.
    let secs = crate::limits::secs_until(r.next_check_at_ms.saturating_add(1_000), now_ms);
    let message = format!(
        "{}; plumgate cannot yet confirm whether this order was placed and keeps asking Xoxoday. Send the same poNumber and body again after {secs} s: you get the order or word that it was not placed, never a second order",
        r.why
    );
    Outcome::Error { error: ApiError::order_in_progress(message, secs), upstream_status: None }
}

/// What happens to the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// Leave it as it is (nothing was written).
    Keep,
    /// Write this (a `done` record sets the retention alarm, a `pending`
    /// one the next check).
    Save(Record),
    /// Delete it: the `poNumber` may be used again.
    Forget,
}

/// How a run or a check ends: one write, a penalty to report, what the
/// caller gets, the order's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    /// The record's fate.
    pub store: Store,
    /// Xoxoday's rate-limit answer to placeOrder, for the limiter.
    pub penalty: Option<Observed>,
    /// What the caller gets.
    pub outcome: Outcome,
    /// The order's fate.
    pub fate: Fate,
}

fn finish(store: Store, outcome: Outcome, fate: Fate) -> Finish {
    Finish { store, penalty: None, outcome, fate }
}

/// plumgate refused before anything was written or sent (the limiter, a
/// record it could not write): `error`, and nothing was placed.
pub fn not_sent(error: ApiError) -> Finish {
    finish(Store::Keep, Outcome::Error { error, upstream_status: None }, Fate::NotPlaced)
}

/// The record could not be written before sending: nothing was sent.
pub fn record_not_written() -> Finish {
    not_sent(ApiError::upstream_error(format!("the order ledger could not record the order, so it was not sent to Xoxoday; {SAFE_TO_RETRY}")))
}

/// A plumgate error that stopped a placeOrder before anything was sent
/// (the spend cap's reservation, say): a 5xx says so in the README's words,
/// else a caller would read "the order may exist"; others pass as they are.
pub fn unsent(mut error: ApiError) -> ApiError {
    if error.status >= 500 && !crate::text::contains(error.message.as_bytes(), SAFE_TO_RETRY.as_bytes()) {
        error.message = format!("{}; the order was not sent to Xoxoday: {SAFE_TO_RETRY}", error.message);
    }
    error
}

/// An error met before a call reached its operation (the caller's key
/// could not be looked up): for placeOrder, [`unsent`], since the ledger
/// was not asked and nothing was sent; for the others as it is.
pub fn before_sending(op: Operation, error: ApiError) -> ApiError {
    if op == Operation::PlaceOrder {
        unsent(error)
    } else {
        error
    }
}

/// What an error for a placeOrder that Xoxoday never executed adds: a 502
/// alone means "the order may exist" (the README's retry table).
pub const SAFE_TO_RETRY: &str = "nothing was placed and retrying with the same poNumber is safe";

/// After placeOrder: finished, or check first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterPlace {
    /// The outcome is known.
    Finish(Finish),
    /// Ask getOrderDetails now, then [`after_check`] with this record
    /// (pending, saying why).
    Check(Record),
    /// Xoxoday refused: ask getOrderDetails once, then [`after_refusal`]
    /// with this record (the refusal in `refused`).
    Confirm(Record),
}

/// The second table: what placeOrder's `result` means for the `pending`
/// record. `call_upstream_status` is what Xoxoday answered inside the call
/// when it failed on the token (a 401), for the log.
pub fn after_place(result: Result<HttpAnswer, CallError>, call_upstream_status: Option<u16>, pending: &Record, now_ms: i64) -> AfterPlace {
    let check = |why: String, refused: Option<Refused>| {
        let mut r = pending.clone();
        r.why = why;
        r.refused = refused;
        r.next_check_at_ms = now_ms;
        AfterPlace::Check(r)
    };
    let ans = match result {
        Ok(ans) => ans,
        Err(CallError::Timeout(ms)) => return check(format!("Xoxoday did not answer placeOrder within {ms} ms"), None),
        Err(CallError::Transport) => return check("placeOrder got no answer from Xoxoday (transport error)".into(), None),
        // Token problems: nothing was executed upstream (no token to send
        // it with, or Xoxoday's 401 to the token), and the caller is told.
        Err(CallError::Api(mut error)) => {
            error.message = format!("{} (placeOrder was not executed by Xoxoday: {SAFE_TO_RETRY})", error.message);
            return AfterPlace::Finish(finish(Store::Forget, Outcome::Error { error, upstream_status: call_upstream_status }, Fate::NotPlaced));
        }
    };
    let upstream_status = Some(ans.status);
    if let Some(observed) = api_penalty(Operation::PlaceOrder.name(), ans.status, &ans.body, ans.retry_after.as_deref()) {
        // The limiter may make an unstated one longer (a repeat); this is
        // the least it lasts.
        let until = crate::limits::penalty_until(None, observed, now_ms).until_ms;
        let error = ApiError::rate_limited(Operation::PlaceOrder.name(), crate::limits::secs_until(until, now_ms));
        return AfterPlace::Finish(Finish {
            store: Store::Forget,
            penalty: Some(observed),
            outcome: Outcome::Error { error, upstream_status },
            fate: Fate::NotPlaced,
        });
    }
    let body = String::from_utf8_lossy(&ans.body).into_owned();
    // Read once: the body's errorId decides two of the arms below.
    let id = error_id(&ans.body);
    if ans.status >= 500 || id.as_deref() == Some(STATUS_CHECK_FAILED) {
        let why = format!("Xoxoday answered placeOrder with HTTP {}{}", ans.status, error_id_note(&ans.body));
        return check(why, None);
    }
    if !is_json(&ans.body) {
        // Not Xoxoday's answer (a proxy's page, an empty or cut-off body):
        // as good as none, whatever the status.
        return check(format!("Xoxoday's answer to placeOrder (HTTP {}) could not be read: its body is not JSON", ans.status), None);
    }
    let refused = || Some(Refused { status: ans.status, body: body.clone() });
    if is_duplicate(ans.status, &ans.body) {
        return check(
            format!("Xoxoday answered that an order with this poNumber already exists (HTTP {}{})", ans.status, error_id_note(&ans.body)),
            refused(),
        );
    }
    if id.is_some_and(|id| UNCERTAIN_REFUSALS.contains(&id.as_str())) {
        return check(
            format!("Xoxoday refused placeOrder (HTTP {}{}) in words that leave open whether an order was made", ans.status, error_id_note(&ans.body)),
            refused(),
        );
    }
    if let Some(details) = plum_data(Operation::PlaceOrder.name(), ans.status, &ans.body).filter(failed_or_cancelled) {
        // Xoxoday's own success answer naming an order that failed or was
        // cancelled: answered as a check that found it is (status 0, the
        // order kept), so one order reads the same, is audited and counted
        // against a spend cap the same, and replays the same, whether its
        // answer came back or was lost.
        return AfterPlace::Finish(order_answer(pending, details, false, now_ms));
    }
    if is_plum_success(Operation::PlaceOrder.name(), ans.status, &ans.body) {
        let outcome = Outcome::Answer { status: ans.status, body: body.clone(), reconciled: false, upstream_status };
        return AfterPlace::Finish(finish(Store::Save(pending.done(ans.status, body, false, now_ms)), outcome, Fate::Placed));
    }
    if ans.status < 400 && !is_plum_failure(Operation::PlaceOrder.name(), ans.status, &ans.body) {
        // Neither a placed order, nor Xoxoday's failure flag, nor an error
        // status: nothing says the order was not made. Checked as a lost
        // answer, not kept as a refusal: it refuses nothing, so an order
        // found is this one and none found is "safe to retry", never this
        // success-looking body.
        return check(
            format!("Xoxoday answered placeOrder with HTTP {}{} but not with a placed order", ans.status, error_id_note(&ans.body)),
            None,
        );
    }
    // A definite refusal (validation, denomination, quantity, KYC, …):
    // nothing was placed by this call. One check first: Xoxoday may already
    // hold this very order under the poNumber (placed before, its record
    // here gone), and its duplicate answer's shape is undocumented, so no
    // refusal's words are trusted to rule that out.
    let mut r = pending.clone();
    r.why = format!("Xoxoday refused placeOrder (HTTP {}{})", ans.status, error_id_note(&ans.body));
    r.refused = refused();
    r.next_check_at_ms = now_ms;
    AfterPlace::Confirm(r)
}

/// The finish of a placeOrder this request sent and then checked
/// ([`AfterPlace::Check`], [`AfterPlace::Confirm`]) with the status its
/// outcome names for the request log (`upstream_status`) set to what
/// Xoxoday answered the placeOrder itself (`answered`; `None` when nothing
/// came back), not to the check's: the README's "status Xoxoday answered
/// this request's call", so an order left in progress after a 502, or
/// found after a 422, shows that answer in its line.
pub fn as_answered(mut f: Finish, answered: Option<u16>) -> Finish {
    match &mut f.outcome {
        Outcome::Answer { upstream_status, .. } | Outcome::Error { upstream_status, .. } => *upstream_status = answered,
    }
    f
}

/// After Xoxoday's definite refusal ([`AfterPlace::Confirm`]) and one
/// getOrderDetails for the poNumber: this order found under it means it was
/// placed before (answered as placed, reconciled); no such order, or
/// another order, leaves the refusal as the answer: forgotten, the poNumber
/// usable again, as before the check (so does an answer that is neither,
/// [`Reconciled::Unclear`]). A check that failed (no answer, a 5xx, a
/// penalty, plumgate's own budget) rules nothing out, for Xoxoday's
/// duplicate answer may be any refusal: the order stays pending and is
/// checked again with backoff ([`after_check`]: `409 order_in_progress`
/// meanwhile), and the first look that answers decides as here.
pub fn after_refusal(r: &Record, reconciled: Reconciled, now_ms: i64) -> Finish {
    match (reconciled, &r.refused) {
        (Reconciled::Found(details), _) => match same_order(&details, &r.order) {
            Match::This => found(r, details, now_ms),
            Match::Unsure if this_if_unsure(r) => found(r, details, now_ms),
            _ => after_refusal(r, Reconciled::Unclear, now_ms),
        },
        (failed @ (Reconciled::Unknown | Reconciled::Limited(_) | Reconciled::NotAsked(_)), _) => after_check(r, failed, now_ms),
        (_, Some(Refused { status, body })) => {
            let outcome = Outcome::Answer { status: *status, body: body.clone(), reconciled: false, upstream_status: Some(*status) };
            finish(Store::Forget, outcome, Fate::NotPlaced)
        }
        // Not made by `after_place`; the check alone says nothing was placed.
        (_, None) => finish(Store::Forget, error(ApiError::upstream_error(r.why.clone())), Fate::NotPlaced),
    }
}

/// Do getOrderDetails' details name an order: an `orderId` that is a
/// number other than 0 or a string other than "" and "0"?
fn names_an_order(details: &Value) -> bool {
    match details.get("orderId") {
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
        Some(Value::String(s)) => !matches!(s.trim(), "" | "0"),
        _ => false,
    }
}

/// Is a body in Plum's error shape (`{code, errorId, errorInfo, error}`):
/// a JSON object with `code` 404 or an `errorInfo`?
fn in_plum_error_shape(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v.get("errorInfo").is_some() || v.get("code").and_then(crate::lenient::lenient_i64) == Some(404))
}

/// Xoxoday's `errorId`, when it is a plain code (letters and digits).
fn error_id(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let id = v.get("errorId")?.as_str()?;
    (!id.is_empty() && id.len() <= 16 && id.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| id.to_string())
}

/// `", PLE10035"` for an answer with a plain errorId, else nothing.
fn error_id_note(body: &[u8]) -> String {
    error_id(body).map(|id| format!(", {id}")).unwrap_or_default()
}

/// Is this placeOrder answer Xoxoday's duplicate poNumber refusal? Its
/// shape is undocumented: `PLE10043` (the sandbox's), or a 4xx whose words
/// say "duplicate" or "already exist" (never the quantity refusal
/// `PLE10041`, the other 409).
pub fn is_duplicate(status: u16, body: &[u8]) -> bool {
    if !(400..500).contains(&status) {
        return false;
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return false };
    match v.get("errorId").and_then(Value::as_str) {
        Some(DUPLICATE_PO) => return true,
        Some(QUANTITY_LIMIT) => return false,
        _ => {}
    }
    ["error", "errorInfo", "message"].iter().filter_map(|k| v.get(*k).and_then(Value::as_str)).any(|w| {
        let w = w.to_ascii_lowercase();
        crate::text::contains(w.as_bytes(), b"duplicate") || crate::text::contains(w.as_bytes(), b"already exist")
    })
}

/// What getOrderDetails said about the `poNumber`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// The order exists (its `data`).
    Found(Value),
    /// Xoxoday has no order with it: `PLE10016`, or a 404 whose JSON body
    /// names no other `errorId`.
    NotFound,
    /// Xoxoday answered the check with its rate-limit answer: the limiter
    /// must hear of it (contract §6), and the next check waits for its end.
    Limited(Observed),
    /// The check failed (no answer, a 5xx, a body that is not JSON), or was
    /// not made for a reason time does not end (another account).
    Unknown,
    /// The check was not made: plumgate's own budget for getOrderDetails
    /// (callers' reads may hold it) or a penalty it knows of, for this many
    /// seconds. Nothing was learned, so it is no check: the count that sets
    /// the backoff stays, and the next look waits until then.
    NotAsked(u64),
    /// Xoxoday answered the check, but with none of the above (a 4xx naming
    /// another `errorId`, such as `PLE10021`): nothing either way, as for
    /// [`Reconciled::Unknown`], except after a definite refusal
    /// ([`after_refusal`]), where it is no reason to hold the refusal back.
    Unclear,
}

/// Read getOrderDetails' `result` (the request is `ops::reconcile_request`).
///
/// "No such order" is evidence toward "never placed", so only Xoxoday's own
/// words count: `PLE10016`, or a 404 in Plum's error shape (`code` 404 or
/// an `errorInfo`) with no other `errorId`. A 404 page from something in
/// front of Xoxoday (HTML, or JSON such as `{"message":"Not Found"}`), or a
/// 404 with another `errorId` (`PLE10021`, undocumented), proves nothing.
/// Nor does a success that names no order (no `orderId`): it is neither
/// this order nor its absence ([`Reconciled::Unclear`]).
pub fn read_reconcile(result: Result<HttpAnswer, CallError>) -> Reconciled {
    let op = Operation::GetOrderDetails.name();
    let Ok(ans) = result else { return Reconciled::Unknown };
    if is_plum_success(op, ans.status, &ans.body) {
        let v = crate::jsontext::upstream_value(&ans.body).unwrap_or(Value::Null);
        let details = &v["data"][op]["data"];
        return if names_an_order(details) { Reconciled::Found(details.clone()) } else { Reconciled::Unclear };
    }
    if let Some(observed) = api_penalty(op, ans.status, &ans.body, ans.retry_after.as_deref()) {
        return Reconciled::Limited(observed);
    }
    let named = error_id(&ans.body);
    if named.as_deref() == Some(ORDER_NOT_FOUND) || (ans.status == 404 && named.is_none() && in_plum_error_shape(&ans.body)) {
        return Reconciled::NotFound;
    }
    if ans.status >= 500 || !is_json(&ans.body) {
        return Reconciled::Unknown;
    }
    Reconciled::Unclear
}

/// The wait before check number `checks + 1`: 10 s, 20 s, 40 s, … at most
/// 15 minutes.
pub fn backoff_ms(checks: u32) -> i64 {
    (FIRST_BACKOFF_MS << checks.saturating_sub(1).min(20)).min(MAX_BACKOFF_MS)
}

/// The third table: what a check (getOrderDetails for the poNumber) means
/// for the `pending` record. `now_ms` is when the check was asked, not
/// when its answer came (up to the call's timeout later): "no such order"
/// says what Xoxoday knew then, and [`SETTLE_MS`] counts to it. The
/// settling period counts from the record's send time: its writing, before
/// the wait for a token (and a 401's check and refresh: three waits),
/// inside the minute of margin at `REFRESH_TIMEOUT_MS`'s default, 15 s
/// each; later by what a longer one adds ([`Record::pending`]).
pub fn after_check(pending: &Record, reconciled: Reconciled, now_ms: i64) -> Finish {
    let mut r = pending.upgraded(now_ms);
    if let Reconciled::NotAsked(secs) = reconciled {
        return still_pending_until(r, now_ms, crate::time::add_secs(now_ms, secs));
    }
    r.checks = r.checks.saturating_add(1);
    match reconciled {
        Reconciled::Found(details) => match same_order(&details, &r.order) {
            Match::This => found(&r, details, now_ms),
            Match::Unsure if this_if_unsure(&r) => found(&r, details, now_ms),
            _ => {
                // Xoxoday holds another order under this poNumber: its
                // duplicate check refused (or will refuse) this one. Its
                // duplicate answer is passed on; a refusal in other words
                // (a 422 such as PLE10010) is not why, so not the answer.
                let outcome = match r.refused {
                    Some(Refused { status, body }) if !this_if_unsure(pending) => {
                        Outcome::Answer { status, body, reconciled: false, upstream_status: None }
                    }
                    _ => error(ApiError::idempotency_conflict_upstream()),
                };
                finish(Store::Forget, outcome, Fate::NotPlaced)
            }
        },
        // After a definite refusal, no such order or an answer in other
        // words passes the refusal on at a later look as at the first
        // (`after_refusal`); else it waited for the settling proof, or (in
        // other words) out the retention.
        seen @ (Reconciled::NotFound | Reconciled::Unclear) if definitely_refused(&r) => after_refusal(&r, seen, now_ms),
        Reconciled::NotFound => {
            r.not_found = r.not_found.saturating_add(1);
            if r.not_found >= NOT_FOUND_PROOF && now_ms >= r.sent_at_ms.saturating_add(SETTLE_MS) {
                return not_placed(&r, now_ms);
            }
            still_pending(r, now_ms)
        }
        Reconciled::Limited(observed) => {
            let penalty_ends = crate::limits::penalty_until(None, observed, now_ms).until_ms;
            still_pending_until(r, now_ms, penalty_ends)
        }
        Reconciled::Unknown | Reconciled::Unclear | Reconciled::NotAsked(_) => still_pending(r, now_ms),
    }
}

/// Was the record's attempt refused in words that say nothing was placed
/// ([`AfterPlace::Confirm`]'s refusals): not the duplicate answer, not one
/// of [`UNCERTAIN_REFUSALS`], not a lost answer?
fn definitely_refused(r: &Record) -> bool {
    r.refused.as_ref().is_some_and(|Refused { status, body }| !is_duplicate(*status, body.as_bytes())) && !this_if_unsure(r)
}

/// The order is still unknown: checked again after the backoff, and once
/// at the end of the settling period if that comes first.
fn still_pending(r: Record, now_ms: i64) -> Finish {
    still_pending_until(r, now_ms, now_ms)
}

/// [`still_pending`], with the next check not before `not_before` (the end
/// of Xoxoday's penalty on getOrderDetails: checking sooner would prolong
/// it).
fn still_pending_until(mut r: Record, now_ms: i64, not_before: i64) -> Finish {
    let settle_at = r.sent_at_ms.saturating_add(SETTLE_MS);
    let mut next = now_ms.saturating_add(backoff_ms(r.checks));
    if now_ms < settle_at && next > settle_at {
        next = settle_at;
    }
    r.next_check_at_ms = next.max(not_before);
    let outcome = in_progress(&r, now_ms);
    finish(Store::Save(r), outcome, Fate::Unknown)
}

/// The evidence says nothing was placed. After Xoxoday's own refusal (a
/// duplicate, a 422), that refusal is the answer; after a lost answer
/// (5xx, timeout) an error saying a retry is safe. Either way the record
/// goes, as after a definite refusal: the next request with the poNumber
/// sends the order again, which is no blind re-send (nothing is under the
/// poNumber), so an order refused for the balance places once the wallet
/// is topped up, and a duplicate answer Xoxoday cannot back with an order
/// is asked again rather than replayed for `ORDER_RETENTION_SECS`.
fn not_placed(r: &Record, now_ms: i64) -> Finish {
    match &r.refused {
        Some(Refused { status, body }) => {
            let outcome = Outcome::Answer { status: *status, body: body.clone(), reconciled: false, upstream_status: None };
            finish(Store::Forget, outcome, Fate::NotPlaced)
        }
        None => {
            let e = ApiError::upstream_error(format!(
                "{}; getOrderDetails has answered \"no such order\" {} times over {} s since placeOrder was sent, past the 120 s Xoxoday may take: {SAFE_TO_RETRY}",
                r.why,
                r.not_found,
                (now_ms - r.sent_at_ms).max(0) / 1000
            ));
            finish(Store::Forget, error(e), Fate::NotPlaced)
        }
    }
}

/// The order getOrderDetails found, answered in placeOrder's shape and
/// recorded `done`: `status` 1, or 0 when it failed or was cancelled.
fn found(r: &Record, details: Value, now_ms: i64) -> Finish {
    order_answer(r, details, true, now_ms)
}

/// An order Xoxoday holds (`details`: as getOrderDetails or placeOrder
/// describes it), answered in placeOrder's shape and recorded `done`:
/// `status` 1, or 0 when it failed or was cancelled. `reconciled`: learnt
/// by a check, not from placeOrder's own answer.
fn order_answer(r: &Record, details: Value, reconciled: bool, now_ms: i64) -> Finish {
    let failed = failed_or_cancelled(&details);
    // The text of `{"data": {"placeOrder": {"status": 0 or 1, "data": details}}}`
    // (keys in order), written around `details`: `json!` would copy it through
    // serde_json's `Value` serializer, which nothing else in the wasm uses.
    let mut body = String::from(r#"{"data":{"placeOrder":{"data":"#);
    crate::jsontext::write_text(&details, &mut body);
    body.push_str(if failed { r#","status":0}}}"# } else { r#","status":1}}}"# });
    let outcome = Outcome::Answer { status: 200, body: body.clone(), reconciled, upstream_status: Some(200) };
    let fate = if failed { Fate::Failed } else { Fate::Placed };
    finish(Store::Save(r.done(200, body, reconciled, now_ms)), outcome, fate)
}

/// Words of `orderStatus` / `deliveryStatus` that mean the order did not
/// go through (Xoxoday's webhooks say `canceled`).
const FAILED_WORDS: [&str; 7] = ["failed", "failure", "cancelled", "canceled", "rejected", "declined", "refunded"];

/// Did the order getOrderDetails found fail, or was it cancelled (every
/// voucher line's `cancelledQuantity` covering its quantity)?
pub fn failed_or_cancelled(details: &Value) -> bool {
    let said = ["orderStatus", "deliveryStatus"].iter().any(|k| {
        details.get(*k).and_then(Value::as_str).is_some_and(|s| FAILED_WORDS.contains(&s.trim().to_ascii_lowercase().as_str()))
    });
    let lines = details.get("voucherDetails").and_then(Value::as_array).filter(|l| !l.is_empty());
    let all_cancelled = lines.is_some_and(|lines| {
        lines.iter().all(|l| {
            let cancelled = l.get("cancelledQuantity").and_then(lenient_i64).unwrap_or(0);
            let quantity = l.get("quantity").and_then(lenient_i64).or_else(|| details.get("quantity").and_then(lenient_i64));
            cancelled > 0 && quantity.is_some_and(|q| cancelled >= q)
        })
    });
    said || all_cancelled
}

/// What the order getOrderDetails found is to the one sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// This order: nothing contradicts it.
    This,
    /// Another order: its product, quantity or denomination differs, or
    /// the recipient an order line names (`receiverEmail` /
    /// `receiverMobileNumber`, as getOrderHistory's lines name them).
    Other,
    /// All of that agrees, but no line names a recipient and the order's
    /// own `email` / `contact` differ from this order's. getOrderDetails
    /// documents neither; getOrderHistory's top-level `email` sits beside
    /// its lines' `receiverEmail`, so it may be the ordering account's
    /// address. Read as the recipient, every order found after a lost
    /// answer would be "another order", its caller told to use a new
    /// poNumber (a second order). So it is this order when this attempt's
    /// own call may have made it ([`this_if_unsure`]), another otherwise.
    Unsure,
}

/// Is the order getOrderDetails found the one sent (`data`, its
/// [`order_summary`])? Compared where both sides say something: the
/// product (`voucherDetails[0]` or `vouchers[0]`), the quantity, the
/// denomination, numbers in any form; and the recipient's email and phone
/// number, a line's first, else the order's own ([`Match::Unsure`] when
/// only those differ). Nothing to compare is no contradiction, and nor is
/// a product id that is a number on one side and text that is not one on
/// the other: xoxoday-api.md §3.4 types `productId` "int. … A string for
/// merchandise", and how getOrderDetails writes a merchandise order's id
/// is undocumented, so the two may name one product (read as another
/// order, a placed one would be ordered again under a new poNumber).
pub fn same_order(details: &Value, data: &Value) -> Match {
    let first = |k: &str| details.get(k).and_then(Value::as_array).and_then(|a| a.first());
    let line = first("voucherDetails").or_else(|| first("vouchers")).cloned().unwrap_or(Value::Null);
    let num = |v: Option<&Value>| crate::ops::decimal_value(v?);
    let agree = |theirs: Option<f64>, ours: Option<f64>| match (theirs, ours) {
        (Some(a), Some(b)) => (a - b).abs() < 0.005,
        _ => true,
    };
    let product = match (line.get("productId"), data.get("productId")) {
        (Some(a), Some(b)) if num(Some(a)).is_some() && num(Some(b)).is_some() => agree(num(Some(a)), num(Some(b))),
        (Some(Value::String(a)), Some(Value::String(b))) => a.trim() == b.trim(),
        _ => true,
    };
    if !(product
        && agree(num(details.get("quantity")), num(data.get("quantity")))
        && agree(num(line.get("denomination")).or_else(|| num(line.get("amount"))), num(data.get("denomination"))))
    {
        return Match::Other;
    }
    let mut found = Match::This;
    for (field, line_field, fp, email) in [("email", "receiverEmail", "email_fp", true), ("contact", "receiverMobileNumber", "contact_fp", false)] {
        let on_line = ["voucherDetails", "vouchers", "products"].iter().find_map(|k| first(k).and_then(|l| text_of(l, line_field)));
        let (theirs, differs) = match on_line {
            Some(said) => (recipient(Some(said), email), Match::Other),
            None => (recipient(text_of(details, field), email), Match::Unsure),
        };
        match (theirs, data.get(fp).and_then(Value::as_str)) {
            (Some(a), Some(b)) if a != b => {
                if differs == Match::Other {
                    return Match::Other;
                }
                found = Match::Unsure;
            }
            _ => {}
        }
    }
    found
}

/// An [`Match::Unsure`] order is this one when this attempt's own call
/// may have made it: its answer was lost (a timeout, a 5xx) or was a
/// refusal that leaves open whether an order was made (a 422 such as
/// `PLE10010`): an order with this poNumber, product, quantity and
/// denomination is then this call's. After any other refusal (Xoxoday's
/// duplicate answer, in whatever shape) the poNumber was taken before this
/// attempt, and a difference in the order's own email or phone number
/// counts: another order, as before. (Another person's order under a
/// reused poNumber whose duplicate answer was lost would be taken for
/// this one: nothing tells the two apart.)
fn this_if_unsure(r: &Record) -> bool {
    match &r.refused {
        None => true,
        Some(Refused { body, .. }) => error_id(body.as_bytes()).is_some_and(|id| UNCERTAIN_REFUSALS.contains(&id.as_str())),
    }
}

/// What the alarm should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlarmStep {
    /// Nothing (no record, or one that cannot be read: left as it is).
    Nothing,
    /// Not yet: set the alarm again for then.
    Later(i64),
    /// A `done` record past retention: delete it.
    Delete,
    /// A `pending` record past retention: delete it, with an error log
    /// line (plumgate never learnt the order's fate).
    Expire,
    /// Check the pending order now ([`after_check`]).
    Check(Record),
}

/// The fourth table: what the object's alarm does with the record
/// (`retention_ms`: `ORDER_RETENTION_SECS`), given whether its call is in
/// flight. A read that failed is tried again [`FIRST_BACKOFF_MS`] later
/// (by the alarm itself: the runtime's retries of a failed alarm end after
/// six, and a pending order would then go unchecked, and a done one
/// undeleted, until a request for it).
pub fn alarm(loaded: &Loaded, in_flight: bool, retention_ms: i64, now_ms: i64) -> AlarmStep {
    let record = match loaded {
        Loaded::Some(r) => r,
        Loaded::ReadFailed => return AlarmStep::Later(now_ms.saturating_add(FIRST_BACKOFF_MS)),
        _ => return AlarmStep::Nothing,
    };
    match record.state {
        RecordState::Done => {
            let due = record.done_at_ms.saturating_add(retention_ms);
            if now_ms >= due {
                AlarmStep::Delete
            } else {
                AlarmStep::Later(due)
            }
        }
        RecordState::Pending => {
            let r = record.upgraded(now_ms);
            if now_ms >= r.sent_at_ms.saturating_add(retention_ms.max(MIN_PENDING_MS)) {
                AlarmStep::Expire
            } else if in_flight {
                AlarmStep::Later(now_ms.saturating_add(FIRST_BACKOFF_MS).max(r.next_check_at_ms))
            } else if r.next_check_at_ms > now_ms {
                AlarmStep::Later(r.next_check_at_ms)
            } else if r.po_number().is_none() {
                // A previous version's record: the caller's next request
                // tells it what to check.
                AlarmStep::Later(now_ms.saturating_add(MAX_BACKOFF_MS))
            } else {
                AlarmStep::Check(r)
            }
        }
    }
}

/// When the alarm must next fire for a record written as `store` asks
/// (`None`: no alarm).
fn alarm_for(store: &Store, retention_ms: i64) -> Option<i64> {
    match store {
        Store::Save(r) if r.state == RecordState::Done => Some(r.done_at_ms.saturating_add(retention_ms)),
        Store::Save(r) => Some(r.next_check_at_ms),
        _ => None,
    }
}

/// The alarm after the record's write: [`alarm_for`] what was asked when
/// it was `written`; else the record stored before (the `pending` one
/// written ahead of the send) is what the next alarm finds, so it comes in
/// [`FIRST_BACKOFF_MS`] and checks that record (a `done` record's 30-day
/// alarm there would leave an order that was placed `409
/// order_in_progress` for the whole retention, then expire it unchecked).
pub fn alarm_after_write(store: &Store, written: bool, retention_ms: i64, now_ms: i64) -> Option<i64> {
    if written {
        alarm_for(store, retention_ms)
    } else {
        Some(now_ms.saturating_add(FIRST_BACKOFF_MS))
    }
}

pub mod tell;

#[cfg(test)]
mod tests;
