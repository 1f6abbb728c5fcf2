//! The audit trail of placeOrder attempts, decided without I/O.
//!
//! Every placeOrder a key sends that passes validation is one entry: when,
//! which key, the `poNumber`, the product, quantity and amount, what came
//! of it ([`Outcome`]; a replay is recorded as a replay), the HTTP status
//! and plumgate error code the caller got, Xoxoday's order id when there is
//! an order, and the request id that ties it to the log line. Nothing else:
//! no voucher codes or PINs, no recipient (email, phone, address), no
//! body.
//!
//! The `KeyRegistry` Durable Object appends entries (SQLite, one row each,
//! in the order they arrive, so concurrent attempts never overwrite each
//! other) and keeps them `ORDER_RETENTION_SECS`; `GET /v1/audit` pages
//! through them newest first ([`Query`]). An attempt refused by the key's
//! spend cap is recorded by the same registry call that refused it; every
//! other attempt after the ledger answered, off the caller's path (the
//! worker's `waitUntil`). An attempt left `unknown` gets a second entry
//! when the order ledger settles its fate on its own (`reconciled_placed`,
//! `reconciled_failed`, `reconciled_not_placed`; `registry::reconciled`),
//! with a request id of its own, `reconcile:<poNumber>:<sent at, epoch ms>`.

use crate::errors::{ApiError, ErrorCode};
use crate::jsontext::{quote_or_null, Object};
use crate::ops::{self, count_of, micros_text};
use crate::quota::Fate;
use crate::time::{parse_rfc3339, rfc3339};
use crate::upstream::is_plum_success;
use crate::wire::ledger::{self, LedgerReply};
use serde_json::Value;

/// Entries per page unless `limit` says otherwise.
pub const DEFAULT_PAGE: u32 = 50;

/// The most entries one page may hold.
pub const MAX_PAGE: u32 = 200;

/// What came of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Xoxoday placed it (also when found by reconciliation).
    Placed,
    /// Answered from the ledger: an earlier (or concurrent) attempt with the
    /// same `poNumber` placed it; no second order.
    Replayed,
    /// Xoxoday refused it.
    Refused,
    /// The key's `order_amount_per_day` refused it; nothing was sent.
    QuotaExceeded,
    /// The `poNumber` belongs to another order body.
    IdempotencyConflict,
    /// Under a Xoxoday rate-limit penalty; nothing was sent.
    RateLimited,
    /// Its fate is not known yet (it may exist): a retry with the same
    /// `poNumber` learns it.
    Unknown,
    /// plumgate could not send it (token, configuration); nothing was
    /// placed.
    Error,
    /// An attempt left `unknown`, settled later by the order ledger's own
    /// check (no caller waiting): the order was placed after all.
    ReconciledPlaced,
    /// ...the order was found failed or cancelled.
    ReconciledFailed,
    /// ...nothing was placed.
    ReconciledNotPlaced,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 11] = [
        Outcome::Placed,
        Outcome::Replayed,
        Outcome::Refused,
        Outcome::QuotaExceeded,
        Outcome::IdempotencyConflict,
        Outcome::RateLimited,
        Outcome::Unknown,
        Outcome::Error,
        Outcome::ReconciledPlaced,
        Outcome::ReconciledFailed,
        Outcome::ReconciledNotPlaced,
    ];

    /// The outcome named `name`.
    pub fn from_name(name: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// The name written in entries.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Placed => "placed",
            Outcome::Replayed => "replayed",
            Outcome::Refused => "refused",
            Outcome::QuotaExceeded => "quota_exceeded",
            Outcome::IdempotencyConflict => "idempotency_conflict",
            Outcome::RateLimited => "rate_limited",
            Outcome::Unknown => "unknown",
            Outcome::Error => "error",
            Outcome::ReconciledPlaced => "reconciled_placed",
            Outcome::ReconciledFailed => "reconciled_failed",
            Outcome::ReconciledNotPlaced => "reconciled_not_placed",
        }
    }

    /// What it means for the key's spend cap.
    pub fn fate(self) -> Fate {
        match self {
            Outcome::Placed | Outcome::ReconciledPlaced => Fate::Placed,
            Outcome::Replayed => Fate::Replayed,
            Outcome::Unknown => Fate::Unknown,
            Outcome::Refused
            | Outcome::QuotaExceeded
            | Outcome::IdempotencyConflict
            | Outcome::RateLimited
            | Outcome::Error
            | Outcome::ReconciledFailed
            | Outcome::ReconciledNotPlaced => Fate::Refused,
        }
    }
}

/// An attempt as the worker sees it before sending it: what an entry
/// records of the order, and the hold it is known by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempt {
    /// The caller key's id.
    pub key: String,
    /// The order's `poNumber`.
    pub po_number: String,
    /// `ops::order_fingerprint` of the order body.
    pub fingerprint: String,
    /// Its `productId`, as text.
    pub product_id: String,
    /// Its quantity.
    pub quantity: u64,
    /// denomination × quantity, in millionths.
    pub amount: i64,
    /// The request's id.
    pub request_id: String,
}

impl Attempt {
    /// The attempt of a validated placeOrder `data` with `fingerprint`.
    pub fn of_order(key: &str, data: &Value, fingerprint: &str, request_id: &str) -> Attempt {
        let product_id = match data.get("productId") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        Attempt {
            key: key.to_owned(),
            po_number: ops::po_number(data).unwrap_or_default(),
            fingerprint: fingerprint.to_owned(),
            product_id,
            quantity: data.get("quantity").and_then(count_of).unwrap_or(0),
            // A valid order whose amount cannot be read (a denomination
            // past an f64's range) counts as the most it can be: a spend
            // cap must never take it for free.
            amount: ops::order_amount_micros(data).unwrap_or(i64::MAX),
            request_id: request_id.to_owned(),
        }
    }
}

/// What the caller got, as the entry records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Result {
    /// What came of it.
    pub outcome: Outcome,
    /// The HTTP status answered.
    pub status: u16,
    /// plumgate's error code, when plumgate answered with an error.
    pub error: Option<String>,
    /// Xoxoday's order id, when there is an order (a failed or cancelled
    /// one too: Xoxoday holds it, and the operator may need to ask about it).
    pub order_id: Option<String>,
    /// Found by reconciliation after an uncertain answer.
    pub reconciled: bool,
}

/// What the order ledger's answer was, as the caller got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered<'a> {
    /// Xoxoday's answer (or the order found by reconciliation).
    Answer {
        /// HTTP status.
        status: u16,
        /// Body.
        body: &'a [u8],
        /// `x-plumgate-replayed`.
        replayed: bool,
        /// `x-plumgate-reconciled`.
        reconciled: bool,
    },
    /// plumgate's error.
    Error {
        /// HTTP status.
        status: u16,
        /// Its code.
        code: ErrorCode,
    },
}

/// What a ledger answer means for the trail and the spend cap. An error
/// that may hide a placed order (a timeout, a lost answer, an order still
/// being settled, a code this version does not know) is `unknown`: the
/// amount keeps counting until a retry learns the order's fate.
pub fn classify(answered: Answered<'_>) -> Result {
    match answered {
        Answered::Answer { status, body, replayed, reconciled } => {
            let placed = is_plum_success("placeOrder", status, body);
            let outcome = match (placed, replayed) {
                (true, true) => Outcome::Replayed,
                (true, false) => Outcome::Placed,
                (false, _) if status >= 500 => Outcome::Unknown,
                (false, _) => Outcome::Refused,
            };
            Result { outcome, status, error: None, order_id: order_id(body), reconciled }
        }
        Answered::Error { status, code } => {
            // Only the codes that say nothing was sent free the amount;
            // every other (a timeout, a lost answer, an internal error, and
            // any code added later, such as an order still being settled)
            // may hide a placed order.
            let outcome = match code {
                ErrorCode::QuotaExceeded => Outcome::QuotaExceeded,
                ErrorCode::IdempotencyConflict => Outcome::IdempotencyConflict,
                ErrorCode::RateLimited => Outcome::RateLimited,
                ErrorCode::InvalidJson
                | ErrorCode::InvalidRequest
                | ErrorCode::Unauthorized
                | ErrorCode::Forbidden
                | ErrorCode::NotFound
                | ErrorCode::UnknownOperation
                | ErrorCode::MethodNotAllowed
                | ErrorCode::PayloadTooLarge
                | ErrorCode::UpstreamUnauthorized
                | ErrorCode::ReauthRequired
                | ErrorCode::CredentialsRejected
                | ErrorCode::Misconfigured => Outcome::Error,
                _ => Outcome::Unknown,
            };
            Result { outcome, status, error: Some(code.as_str().to_owned()), order_id: None, reconciled: false }
        }
    }
}

/// [`classify`]'s result with the ledger's word on the order (`fate`, from
/// the same reply): an answer that alone may hide a placed order
/// (`unknown`: a 502 or 504 of plumgate's, a 5xx) while the ledger knows
/// nothing was placed (a token failure before the order was sent, or a
/// refusal it has checked) is `error` (plumgate's own answer) or `refused`
/// (Xoxoday's), so the entry says so and the hold is freed at once rather
/// than counted until the end of the day. The other way round, an answer
/// that alone says nothing was placed while the ledger cannot say so (its
/// record unreadable: `503 misconfigured` to a retry of an order still
/// being checked) is `unknown`: the hold the retry joined stays pending,
/// never freed by an answer the ledger does not vouch for.
pub fn with_fate(result: Result, fate: ledger::Fate) -> Result {
    let outcome = match (result.outcome, fate) {
        (Outcome::Unknown, ledger::Fate::NotPlaced) if result.error.is_some() => Outcome::Error,
        (Outcome::Unknown, ledger::Fate::NotPlaced) => Outcome::Refused,
        (o, ledger::Fate::Unknown) if o.fate() == Fate::Refused => Outcome::Unknown,
        (o, _) => o,
    };
    Result { outcome, ..result }
}

/// The entry of an attempt whose answer from the order ledger was lost
/// (`first`: as the caller got it, `502 upstream_error`, `unknown`), once
/// the ledger has said what became of the order (`look`: its answer to
/// `wire::ledger::LOOK_URL`): the outcome and order id the ledger knows,
/// with the status and error the caller got, marked `reconciled` (learnt
/// after the answer). The order is this attempt's own (the answer it lost
/// was the ledger's call, or a call it joined), so a stored answer counts
/// as placed, not replayed: a replay would free a hold this attempt took.
/// An order the ledger says was not placed without an answer to show (its
/// record deleted: `crate::ledger::Look::NotPlaced`) is `refused`. A look
/// that knows no more (`unknown`: the order is pending, or no record was
/// found) leaves `first` as it is.
pub fn after_lost_answer(first: Result, look: &LedgerReply) -> Result {
    if look.fate == ledger::Fate::Unknown {
        return first;
    }
    let learnt = match &look.outcome {
        ledger::Outcome::Answer { status, body, .. } => {
            classify(Answered::Answer { status: *status, body: body.as_bytes(), replayed: false, reconciled: true })
        }
        ledger::Outcome::Error { error, .. } if error.code == ErrorCode::IdempotencyConflict => {
            classify(Answered::Error { status: error.status, code: error.code })
        }
        // The ledger's word that nothing was placed, in an error of its own.
        ledger::Outcome::Error { .. } => Result { outcome: Outcome::Refused, order_id: None, ..first.clone() },
    };
    Result { outcome: learnt.outcome, order_id: learnt.order_id, reconciled: true, ..first }
}

/// `data.placeOrder.data.orderId` of a placeOrder answer, as text.
pub fn order_id(body: &[u8]) -> Option<String> {
    let v = crate::jsontext::upstream_value(body)?;
    match &v["data"]["placeOrder"]["data"]["orderId"] {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One entry as stored and answered (JSON text). The caller's own texts
/// (poNumber, productId) are cut at [`CLIP`] characters: a refused attempt
/// costs Xoxoday nothing, so a client looping on one with 30,000-character
/// fields would otherwise fill the registry's storage, 60 KB a request.
pub fn entry(attempt: &Attempt, at_ms: i64, result: &Result) -> String {
    Object::new()
        .str("at", &rfc3339(at_ms))
        .str("key", &attempt.key)
        .str("po_number", clip(&attempt.po_number))
        .str("product_id", clip(&attempt.product_id))
        .num("quantity", attempt.quantity)
        .raw("amount", &micros_text(attempt.amount))
        .str("outcome", result.outcome.as_str())
        .num("status", result.status)
        .raw("error", &quote_or_null(result.error.as_deref()))
        .raw("order_id", &quote_or_null(result.order_id.as_deref()))
        .raw("reconciled", if result.reconciled { "true" } else { "false" })
        .str("request_id", &attempt.request_id)
        .finish()
}

/// The most characters of a caller's text an entry keeps.
pub const CLIP: usize = 128;

/// `s` up to [`CLIP`] characters.
fn clip(s: &str) -> &str {
    s.char_indices().nth(CLIP).map_or(s, |(i, _)| &s[..i])
}

/// A page request of `GET /v1/audit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Entries at or after this instant.
    pub from_ms: Option<i64>,
    /// Entries before this instant.
    pub to_ms: Option<i64>,
    /// Entries of this key only.
    pub key: Option<String>,
    /// Entries older than this one (the cursor: an entry's sequence number).
    pub before: Option<i64>,
    /// Entries in the page.
    pub limit: u32,
}

/// Read the query of `GET /v1/audit?from=&to=&key=&cursor=&limit=`
/// (`from`, `to`: RFC 3339 date-times or dates; `cursor`: the previous
/// page's `next_cursor`). Any other parameter, or one given twice, is refused.
///
/// # Errors
/// `400 invalid_request` naming the parameter.
pub fn parse_query(params: &[(String, String)]) -> std::result::Result<Query, ApiError> {
    let mut q = Query { from_ms: None, to_ms: None, key: None, before: None, limit: DEFAULT_PAGE };
    for (i, (name, value)) in params.iter().enumerate() {
        // Only a known name gets this far a second time: an unknown one
        // was refused at its first (the match below), so no caller text is
        // echoed.
        if params[..i].iter().any(|(n, _)| n == name) {
            return Err(ApiError::invalid_request(format!("{name} is given more than once")));
        }
        match name.as_str() {
            "from" | "to" => {
                let t = parse_rfc3339(value).ok_or_else(|| {
                    ApiError::invalid_request(format!("{name} must be an RFC 3339 date-time (2026-11-25T00:00:00Z) or a date (2026-11-25)"))
                })?;
                // A date alone is a whole UTC day: `from` its start, `to`
                // its end (`to=2026-11-25` includes that day).
                let date_only = !value.contains(['T', 't', ' ']);
                if name == "from" {
                    q.from_ms = Some(t);
                } else {
                    q.to_ms = Some(if date_only { t.saturating_add(86_400_000) } else { t });
                }
            }
            "key" => {
                if !crate::auth::valid_id(value) {
                    return Err(ApiError::invalid_request("key must be a key id: 1-64 letters, digits, '-', '_' or '.'"));
                }
                q.key = Some(value.clone());
            }
            "cursor" => {
                let ok = !value.is_empty() && value.len() <= 18 && value.bytes().all(|b| b.is_ascii_digit());
                q.before = Some(crate::jsontext::int_from_text(value).filter(|_| ok).ok_or_else(|| {
                    ApiError::invalid_request("cursor must be the next_cursor of an earlier page")
                })?);
            }
            "limit" => {
                // `parse::<u32>`, through `u64`'s parser (the one the wasm has).
                q.limit = value.parse::<u64>().ok().and_then(|n| u32::try_from(n).ok()).filter(|n| (1..=MAX_PAGE).contains(n)).ok_or_else(|| {
                    ApiError::invalid_request(format!("limit must be a whole number from 1 to {MAX_PAGE}"))
                })?;
            }
            _ => return Err(ApiError::invalid_request("unknown query parameter: GET /v1/audit takes from, to, key, cursor and limit")),
        }
    }
    if let (Some(f), Some(t)) = (q.from_ms, q.to_ms) {
        // Entries from `from` up to (not at) `to`: an empty span is a mistake.
        if t <= f {
            return Err(ApiError::invalid_request("to must be after from (to=a date includes that day)"));
        }
    }
    Ok(q)
}

/// The answer of `GET /v1/audit`: the entries (newest first) and the
/// cursor of the next page, `null` on the last.
pub fn page_body(entries: &[String], next_cursor: Option<i64>) -> String {
    let next = next_cursor.map_or_else(|| "null".to_owned(), |c| format!("\"{c}\""));
    format!(r#"{{"entries":[{}],"next_cursor":{next}}}"#, entries.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: i64 = 1_795_626_582_000;
    const PLACED: &str = r#"{"data":{"placeOrder":{"status":1,"data":{"orderId":100001,"vouchers":[{"voucherCode":"SBX-SECRET","pin":"9999"}]}}}}"#;

    fn answer(status: u16, body: &str, replayed: bool) -> Result {
        classify(Answered::Answer { status, body: body.as_bytes(), replayed, reconciled: false })
    }

    #[test]
    fn an_unknown_answer_the_ledger_knows_placed_nothing_frees_the_amount() {
        // A token failure before placeOrder was sent: plumgate's 502.
        let token = classify(Answered::Error { status: 502, code: ErrorCode::UpstreamError });
        let r = with_fate(token.clone(), ledger::Fate::NotPlaced);
        assert_eq!((r.outcome, r.outcome.fate(), r.status, r.error.as_deref()), (Outcome::Error, Fate::Refused, 502, Some("upstream_error")));
        let timeout = classify(Answered::Error { status: 504, code: ErrorCode::UpstreamTimeout });
        assert_eq!(with_fate(timeout, ledger::Fate::NotPlaced).outcome, Outcome::Error);
        // Xoxoday's 5xx the ledger has checked: nothing under the poNumber.
        let five = answer(503, r#"{"errorId":"PLE10035"}"#, false);
        assert_eq!(five.outcome, Outcome::Unknown);
        assert_eq!(with_fate(five, ledger::Fate::NotPlaced).outcome, Outcome::Refused);
        // Any other fate leaves the answer's meaning as it is.
        for fate in [ledger::Fate::Unknown, ledger::Fate::Placed, ledger::Fate::Failed] {
            assert_eq!(with_fate(token.clone(), fate), token, "{fate:?}");
        }
        let placed = answer(200, PLACED, false);
        assert_eq!(with_fate(placed.clone(), ledger::Fate::NotPlaced), placed, "only unknown is corrected");
    }

    #[test]
    fn an_error_the_ledger_cannot_vouch_for_keeps_the_hold() {
        // A retry of an order still being checked meets an unreadable
        // record: 503 misconfigured, the order's fate unknown. The hold it
        // joined must stay pending, not be freed as refused.
        let unreadable = classify(Answered::Error { status: 503, code: ErrorCode::Misconfigured });
        assert_eq!(unreadable.outcome, Outcome::Error);
        let r = with_fate(unreadable.clone(), ledger::Fate::Unknown);
        assert_eq!((r.outcome, r.outcome.fate(), r.status, r.error.as_deref()), (Outcome::Unknown, Fate::Unknown, 503, Some("misconfigured")));
        let refused = answer(400, r#"{"errorId":"PLE10018"}"#, false);
        assert_eq!(with_fate(refused, ledger::Fate::Unknown).outcome, Outcome::Unknown);
        // When the ledger says nothing was placed, the error stands.
        assert_eq!(with_fate(unreadable, ledger::Fate::NotPlaced).outcome, Outcome::Error);
        // What already says placed or unknown is left as it is.
        let placed = answer(200, PLACED, false);
        assert_eq!(with_fate(placed.clone(), ledger::Fate::Unknown), placed);
    }

    #[test]
    fn a_lost_answer_learns_the_order_s_fate_from_the_ledger() {
        let first = classify(Answered::Error { status: 502, code: ErrorCode::UpstreamError });
        assert_eq!(first.outcome, Outcome::Unknown);
        let look = |outcome, fate| LedgerReply { outcome, replayed: true, fate };
        let stored = |status: u16, body: &str| ledger::Outcome::Answer { status, body: body.into(), reconciled: false, upstream_status: None };
        // Placed (a stored answer, replayed by the ledger): this attempt's
        // own order, counted; the caller's status and error stay.
        let r = after_lost_answer(first.clone(), &look(stored(200, PLACED), ledger::Fate::Placed));
        assert_eq!(
            r,
            Result { outcome: Outcome::Placed, status: 502, error: Some("upstream_error".into()), order_id: Some("100001".into()), reconciled: true }
        );
        assert_eq!(r.outcome.fate(), Fate::Placed);
        // Failed or refused by Xoxoday: the amount is freed.
        for (status, body, fate) in [(200, r#"{"data":{"placeOrder":{"status":0}}}"#, ledger::Fate::Failed), (404, r#"{"errorId":"PLE10018"}"#, ledger::Fate::NotPlaced)] {
            let r = after_lost_answer(first.clone(), &look(stored(status, body), fate));
            assert_eq!((r.outcome, r.outcome.fate(), r.status, r.order_id, r.reconciled), (Outcome::Refused, Fate::Refused, 502, None, true));
        }
        // Another body held the poNumber: the conflict it met.
        let conflict = ledger::Outcome::Error { error: ApiError::idempotency_conflict(), upstream_status: None };
        let r = after_lost_answer(first.clone(), &look(conflict, ledger::Fate::NotPlaced));
        assert_eq!((r.outcome, r.outcome.fate()), (Outcome::IdempotencyConflict, Fate::Refused));
        // Not placed, its record gone (the mark): freed.
        let gone = ledger::Outcome::Error { error: crate::ledger::found_not_placed(), upstream_status: None };
        let r = after_lost_answer(first.clone(), &look(gone, ledger::Fate::NotPlaced));
        assert_eq!((r.outcome, r.outcome.fate(), r.status, r.error.as_deref(), r.reconciled), (Outcome::Refused, Fate::Refused, 502, Some("upstream_error"), true));
        // The ledger knows no more: unchanged.
        let pending = ledger::Outcome::Error { error: crate::ledger::nothing_found(), upstream_status: None };
        assert_eq!(after_lost_answer(first.clone(), &look(pending, ledger::Fate::Unknown)), first);
        assert_eq!(after_lost_answer(first.clone(), &look(stored(200, PLACED), ledger::Fate::Unknown)), first);
    }

    #[test]
    fn outcomes_have_a_name_each() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::from_name(o.as_str()), Some(o));
        }
        assert_eq!(Outcome::from_name("maybe"), None);
    }

    /// What each outcome means for the spend cap: only a placed order (also
    /// one reconciliation found) counts, a replay counts once (its first
    /// attempt's), an unknown one keeps counting, and every outcome that
    /// says nothing was placed frees the amount (README: "`refused` (the
    /// amount freed)"; a `reconciled_not_placed` order was not placed).
    #[test]
    fn every_outcome_s_fate_for_the_spend_cap() {
        use Outcome::{Error, IdempotencyConflict, Placed, QuotaExceeded, RateLimited, ReconciledFailed, ReconciledNotPlaced, ReconciledPlaced, Refused, Replayed, Unknown};
        for (o, fate) in [
            (Placed, Fate::Placed),
            (Replayed, Fate::Replayed),
            (Refused, Fate::Refused),
            (QuotaExceeded, Fate::Refused),
            (IdempotencyConflict, Fate::Refused),
            (RateLimited, Fate::Refused),
            (Unknown, Fate::Unknown),
            (Error, Fate::Refused),
            (ReconciledPlaced, Fate::Placed),
            (ReconciledFailed, Fate::Refused),
            (ReconciledNotPlaced, Fate::Refused),
        ] {
            assert_eq!(o.fate(), fate, "{o:?}");
        }
        // A replay the ledger cannot vouch for is still a replay: the order
        // it answers with was placed (only an answer saying nothing was
        // placed turns unknown).
        let replayed = answer(200, PLACED, true);
        assert_eq!(with_fate(replayed.clone(), ledger::Fate::Unknown), replayed);
    }

    /// README: `po_number`, `product_id` "each cut at 128 characters";
    /// `limit` "1 to 200, default 50".
    #[test]
    fn the_bounds_are_the_readmes() {
        assert_eq!((CLIP, DEFAULT_PAGE, MAX_PAGE), (128, 50, 200));
    }

    #[test]
    fn every_answer_has_an_outcome_and_a_fate() {
        let r = answer(200, PLACED, false);
        assert_eq!((r.outcome, r.order_id.as_deref(), r.error.as_deref()), (Outcome::Placed, Some("100001"), None));
        assert_eq!(r.outcome.fate(), Fate::Placed);
        let r = answer(200, PLACED, true);
        assert_eq!((r.outcome, r.outcome.fate()), (Outcome::Replayed, Fate::Replayed));
        let r = classify(Answered::Answer { status: 200, body: PLACED.as_bytes(), replayed: false, reconciled: true });
        assert_eq!((r.outcome, r.reconciled), (Outcome::Placed, true));
        for (status, body) in [(404, r#"{"errorId":"PLE10018"}"#), (200, r#"{"data":{"placeOrder":{"status":0}}}"#), (422, "")] {
            let r = answer(status, body, false);
            assert_eq!((r.outcome, r.outcome.fate(), r.order_id), (Outcome::Refused, Fate::Refused, None), "{status}");
        }
        assert_eq!(answer(502, "", false).outcome, Outcome::Unknown);
        for status in [500, 503, 599] {
            assert_eq!(answer(status, r#"{"message":"Internal server error"}"#, false).outcome, Outcome::Unknown, "{status}");
        }
        // An order id in text is kept as text; an empty one is none.
        assert_eq!(order_id(br#"{"data":{"placeOrder":{"data":{"orderId":"A1"}}}}"#).as_deref(), Some("A1"));
        assert_eq!(order_id(br#"{"data":{"placeOrder":{"data":{"orderId":""}}}}"#), None);
        assert_eq!(order_id(br#"{"data":{"placeOrder":{"data":{"orderId":"A1","productName":"Gift \ud83c"}}}}"#).as_deref(), Some("A1"), "a name cut mid-emoji");
        // An order reconciliation found, failed at Xoxoday: refused (nothing
        // delivered), with the order id the operator may ask Xoxoday about.
        let failed = r#"{"data":{"placeOrder":{"status":0,"data":{"orderId":100012,"orderStatus":"failed"}}}}"#;
        let r = classify(Answered::Answer { status: 200, body: failed.as_bytes(), replayed: false, reconciled: true });
        assert_eq!((r.outcome, r.outcome.fate(), r.order_id.as_deref(), r.reconciled), (Outcome::Refused, Fate::Refused, Some("100012"), true));
        let err = |code: ErrorCode| classify(Answered::Error { status: 400, code });
        for (code, outcome, fate) in [
            (ErrorCode::QuotaExceeded, Outcome::QuotaExceeded, Fate::Refused),
            (ErrorCode::IdempotencyConflict, Outcome::IdempotencyConflict, Fate::Refused),
            (ErrorCode::RateLimited, Outcome::RateLimited, Fate::Refused),
            (ErrorCode::ReauthRequired, Outcome::Error, Fate::Refused),
            (ErrorCode::CredentialsRejected, Outcome::Error, Fate::Refused),
            (ErrorCode::UpstreamUnauthorized, Outcome::Error, Fate::Refused),
            (ErrorCode::Misconfigured, Outcome::Error, Fate::Refused),
            (ErrorCode::InvalidRequest, Outcome::Error, Fate::Refused),
            (ErrorCode::InvalidJson, Outcome::Error, Fate::Refused),
            (ErrorCode::Unauthorized, Outcome::Error, Fate::Refused),
            (ErrorCode::Forbidden, Outcome::Error, Fate::Refused),
            (ErrorCode::NotFound, Outcome::Error, Fate::Refused),
            (ErrorCode::UnknownOperation, Outcome::Error, Fate::Refused),
            (ErrorCode::MethodNotAllowed, Outcome::Error, Fate::Refused),
            (ErrorCode::PayloadTooLarge, Outcome::Error, Fate::Refused),
            (ErrorCode::UpstreamError, Outcome::Unknown, Fate::Unknown),
            (ErrorCode::UpstreamTimeout, Outcome::Unknown, Fate::Unknown),
            (ErrorCode::InternalError, Outcome::Unknown, Fate::Unknown),
        ] {
            let r = err(code);
            assert_eq!((r.outcome, r.outcome.fate(), r.error.as_deref()), (outcome, fate, Some(code.as_str())), "{code:?}");
            assert_eq!((r.order_id, r.reconciled), (None, false), "{code:?}: plumgate's own answer, learnt nothing later");
        }
        // A code this version does not know (a newer ledger's, such as
        // order_in_progress) reads as internal_error: unknown, the amount kept.
        let newer: ApiError = serde_json::from_str(r#"{"status":409,"code":"order_in_progress","message":"m"}"#).unwrap();
        assert_eq!(classify(Answered::Error { status: newer.status, code: newer.code }).outcome.fate(), Fate::Unknown);
    }

    #[test]
    fn an_entry_records_the_order_not_its_secrets() {
        let data = json!({"productId": "10100", "quantity": "2", "denomination": "12.5", "poNumber": "po-1",
                          "email": "winner@example.com", "contact": "+1-5550100", "shippingAddress1": "1 Main St"});
        let a = Attempt::of_order("billing-fn", &data, "fp", "rid-1");
        assert_eq!((a.product_id.as_str(), a.quantity, a.amount, a.po_number.as_str()), ("10100", 2, 25_000_000, "po-1"));
        let r = answer(200, PLACED, false);
        let text = entry(&a, T0, &r);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v, json!({
            "at": "2026-11-25T17:09:42.000Z", "key": "billing-fn", "po_number": "po-1", "product_id": "10100",
            "quantity": 2, "amount": 25, "outcome": "placed", "status": 200, "error": null, "order_id": "100001",
            "reconciled": false, "request_id": "rid-1"
        }));
        for secret in ["SBX-SECRET", "9999", "winner@example.com", "5550100", "Main St"] {
            assert!(!text.contains(secret), "{secret}");
        }
        // A caller's long texts are cut: an entry stays small.
        let long = Attempt::of_order("k", &json!({"productId": "é".repeat(30_000), "poNumber": "p".repeat(30_000), "quantity": 1, "denomination": 5}), "fp", "r");
        assert_eq!(long.po_number.len(), 30_000, "the attempt (the hold) keeps it whole");
        let v: Value = serde_json::from_str(&entry(&long, T0, &r)).unwrap();
        assert_eq!((v["po_number"].as_str().unwrap(), v["product_id"].as_str().unwrap()), ("p".repeat(CLIP).as_str(), "é".repeat(CLIP).as_str()));
        let numeric = Attempt::of_order("k", &json!({"productId": 7, "poNumber": 12, "quantity": 1, "denomination": 5}), "fp", "r");
        assert_eq!((numeric.product_id.as_str(), numeric.po_number.as_str()), ("7", "12"));
        // Amounts the spend cap must not take for free: below a millionth a
        // unit counts one a unit; past an f64's range, the most there is.
        let tiny = Attempt::of_order("k", &json!({"productId": 7, "poNumber": "p", "quantity": 1_000_000, "denomination": "0.0000004"}), "fp", "r");
        assert_eq!(tiny.amount, 1_000_000);
        let huge = Attempt::of_order("k", &json!({"productId": 7, "poNumber": "p", "quantity": 1, "denomination": "1".repeat(400)}), "fp", "r");
        assert_eq!(huge.amount, i64::MAX);
        assert!(crate::ops::validate(crate::ops::Operation::PlaceOrder, &json!({"productId": 7, "poNumber": "p", "quantity": 1, "denomination": "1".repeat(400)})).is_ok(), "a valid order, so its amount must be counted");
        let refused = Result { outcome: Outcome::QuotaExceeded, status: 429, error: Some("quota_exceeded".into()), order_id: None, reconciled: false };
        let v: Value = serde_json::from_str(&entry(&a, T0, &refused)).unwrap();
        assert_eq!((v["outcome"].as_str(), v["error"].as_str(), v["order_id"].is_null()), (Some("quota_exceeded"), Some("quota_exceeded"), true));
        let quoted = Result { error: Some("a\"b".into()), ..refused };
        let v: Value = serde_json::from_str(&entry(&a, T0, &quoted)).unwrap();
        assert_eq!(v["error"], "a\"b");
    }

    #[test]
    fn queries_are_checked_parameter_by_parameter() {
        let p = |pairs: &[(&str, &str)]| parse_query(&pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>());
        assert_eq!(p(&[]).unwrap(), Query { from_ms: None, to_ms: None, key: None, before: None, limit: DEFAULT_PAGE });
        let q = p(&[("from", "2026-11-25"), ("to", "2026-11-25T17:09:42Z"), ("key", "billing-fn"), ("cursor", "41"), ("limit", "10")]).unwrap();
        assert_eq!(q, Query { from_ms: Some(1_795_564_800_000), to_ms: Some(T0), key: Some("billing-fn".into()), before: Some(41), limit: 10 });
        // A date alone as `to` includes that whole UTC day.
        let day = p(&[("from", "2026-11-25"), ("to", "2026-11-25")]).unwrap();
        assert_eq!((day.from_ms, day.to_ms), (Some(1_795_564_800_000), Some(1_795_564_800_000 + 86_400_000)));
        assert_eq!(p(&[("to", "2026-11-25T00:00:00Z")]).unwrap().to_ms, Some(1_795_564_800_000), "a time is taken as it is");
        assert_eq!(p(&[("limit", "+5")]).unwrap().limit, 5, "as parse::<u32> reads it");
        assert_eq!(p(&[("limit", "200")]).unwrap().limit, 200, "the documented most");
        // RFC 3339 lets the separator be `t` or a space, and `z` lower case.
        for to in ["2026-11-25t00:00:00z", "2026-11-25 00:00:00Z"] {
            assert_eq!(p(&[("to", to)]).unwrap().to_ms, Some(1_795_564_800_000), "{to}: a time, not a whole day");
        }
        for (pairs, says) in [
            (vec![("from", "yesterday")], "from must be an RFC 3339"),
            (vec![("to", "2026-02-30")], "to must be"),
            (vec![("from", "2026-11-26T00:00:01Z"), ("to", "2026-11-25")], "to must be after from"),
            (vec![("from", "2026-11-26"), ("to", "2026-11-25")], "to must be after from"),
            (vec![("from", "2026-11-25T17:09:42Z"), ("to", "2026-11-25T17:09:42Z")], "to must be after from"),
            (vec![("key", "a b")], "key must be a key id"),
            (vec![("cursor", "x1")], "cursor must be"),
            (vec![("cursor", "")], "cursor must be"),
            (vec![("cursor", "9999999999999999999")], "cursor must be"),
            (vec![("cursor", "+41")], "cursor must be"),
            (vec![("cursor", "-1")], "cursor must be"),
            (vec![("limit", "0")], "limit must be a whole number from 1 to 200"),
            (vec![("limit", "201")], "limit must be"),
            (vec![("limit", "4294967301")], "limit must be"),
            (vec![("limit", "-5")], "limit must be"),
            (vec![("limit", "++5")], "limit must be"),
            (vec![("kye", "billing-fn")], "unknown query parameter: GET /v1/audit takes from, to, key, cursor and limit"),
            (vec![("limit", "1"), ("limit", "2")], "limit is given more than once"),
            (vec![("kye", "a"), ("kye", "b")], "unknown query parameter"),
        ] {
            let e = p(&pairs).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(e.message.starts_with(says), "{pairs:?}: {}", e.message);
        }
    }

    #[test]
    fn a_page_is_entries_and_a_cursor() {
        let v: Value = serde_json::from_str(&page_body(&[r#"{"a":1}"#.into(), r#"{"a":2}"#.into()], Some(7))).unwrap();
        assert_eq!(v, json!({"entries": [{"a": 1}, {"a": 2}], "next_cursor": "7"}));
        assert_eq!(page_body(&[], None), r#"{"entries":[],"next_cursor":null}"#);
    }
}
