//! The `OrderLedger` protocol (one object per Xoxoday account and
//! `poNumber`, named [`object_name`]).
//!
//! A call is `POST https://ledger/v2` ([`PLACE_URL`]; [`LOOK_URL`] to ask
//! about an order without placing it) with a [`LedgerRequest`] as JSON; the answer is always a [`LedgerReply`] as
//! JSON (HTTP 200): what the caller gets (Xoxoday's answer, or plumgate's
//! error), whether it was replayed, and the order's [`Fate`] (placed,
//! failed, not placed, not known yet), which code around the ledger call
//! reads instead of interpreting statuses. The worker renders the reply
//! into the caller's response in the route's error form, so the ledger
//! never builds a caller-facing response or header itself.
//!
//! Versions: the previous version's worker posted to `https://ledger/place`
//! and read the answer as the caller's response plus `x-plumgate-*`
//! headers. During a deploy, a request in that form ([`PreviousRequest`])
//! is answered with a retryable error in that form, never with a reply it
//! would relay as an order's answer; this version's request sent to the
//! previous version's object fails its decoding (no `request_id`), so
//! nothing is placed there either.

//!
//! Every message here is read by hand (`crate::stored`: serde's derive
//! compiled to a reader per struct in the wasm); the derives are kept for
//! the tests, which hold each reader to them.

use crate::errors::ApiError;
use crate::stored::{flag, get, need, opt, parse, slot, status, text, Fields};
#[cfg(test)]
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

/// Where a placeOrder goes.
pub const PLACE_URL: &str = "https://ledger/v2";

/// The path of [`PLACE_URL`], as the object sees it.
pub const PLACE_PATH: &str = "/v2";

/// Where a worker whose placeOrder call lost the ledger's answer, or whose
/// spend cap turned the order away, asks what became of the order (the
/// same [`LedgerRequest`], a [`LedgerReply`] back): never a placement
/// (`crate::ledger::look`). An object of the
/// previous version answers it as a request of an unknown form, which
/// reads as [`Fate::Unknown`].
pub const LOOK_URL: &str = "https://ledger/v2/look";

/// The path of [`LOOK_URL`], as the object sees it.
pub const LOOK_PATH: &str = "/v2/look";

/// The ledger object of `po_number` on `account`
/// (`token::storage::account_id`). A `poNumber` is unique per Xoxoday
/// account, not per deployment: a worker switched from staging to
/// production must not answer a production order with the staging
/// order that had the same `poNumber`.
///
/// Versions before this one named it `po:<poNumber>`, whatever the
/// account ([`legacy_object_name`]). Those records stay where they are: a
/// placeOrder sent again after the upgrade meets Xoxoday's own duplicate
/// check, and plumgate then finds the order with getOrderDetails
/// (`crate::ledger`), so it is answered, never placed twice.
pub fn object_name(account: &str, po_number: &str) -> String {
    legacy_object_name(&(account.to_owned() + ":" + po_number))
}

/// The ledger object of `po_number` in versions before per-account names:
/// asked only for a spend-cap hold whose requests died across the upgrade
/// and that the account's ledger knows nothing of
/// (`crate::registry::ledger_knows_nothing`).
pub fn legacy_object_name(po_number: &str) -> String {
    "po:".to_owned() + po_number
}

/// A placeOrder for the ledger.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
pub struct LedgerRequest {
    /// Validated placeOrder data, as it goes upstream.
    pub data: Value,
    /// `ops::order_fingerprint` of the order as the caller wrote it.
    pub fingerprint: String,
}

impl LedgerRequest {
    /// The request in `body`; `None` when it is none.
    pub fn read(body: &[u8]) -> Option<LedgerRequest> {
        parse(body, |o| Some(LedgerRequest { data: need(o, "data", |v| Some(v.clone()))?, fingerprint: need(o, "fingerprint", text)? }))
    }
}

/// What became of the order, as far as plumgate knows when it answers.
///
/// On the wire its snake_case name (`"placed"`, `"failed"`, `"not_placed"`,
/// `"unknown"`); a reply without one (an object of the previous version)
/// or with a name this version does not know reads as [`Fate::Unknown`],
/// the answer that assumes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fate {
    /// The order exists at Xoxoday and did not fail (its answer first hand,
    /// replayed, or found by reconciliation).
    Placed,
    /// The order exists at Xoxoday but failed or was cancelled (found by
    /// reconciliation; the answer says so in placeOrder's shape).
    Failed,
    /// No order was placed: plumgate never sent it (a refusal of its own,
    /// the limiter, a record it could not write), or Xoxoday refused it
    /// definitely (a validation error, or no order found over the whole
    /// reconciliation period).
    NotPlaced,
    /// Not known yet: reconciliation goes on (`409 order_in_progress`), or
    /// the ledger could not be asked (the order may exist).
    #[default]
    Unknown,
}

impl Fate {
    /// The fate of a wire name (a name this version does not know is
    /// [`Fate::Unknown`]).
    fn from_name(name: &str) -> Fate {
        [Fate::Placed, Fate::Failed, Fate::NotPlaced].into_iter().find(|f| f.as_str() == name).unwrap_or(Fate::Unknown)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Fate::Placed => "placed",
            Fate::Failed => "failed",
            Fate::NotPlaced => "not_placed",
            Fate::Unknown => "unknown",
        }
    }
}

impl Serialize for Fate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
impl<'de> Deserialize<'de> for Fate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Fate::from_name(&std::borrow::Cow::<'de, str>::deserialize(d)?))
    }
}

/// What the caller gets for a placeOrder (shared by every request that
/// joined the same call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Xoxoday's answer (or, reconciled, getOrderDetails' order in
    /// placeOrder's shape), passed on unchanged.
    Answer {
        /// HTTP status.
        status: u16,
        /// Body, verbatim.
        body: String,
        /// Found by reconciliation after an uncertain answer.
        reconciled: bool,
        /// What Xoxoday answered, for the log (`None` when not called).
        upstream_status: Option<u16>,
    },
    /// plumgate's error.
    Error {
        /// The caller-facing error.
        error: ApiError,
        /// What Xoxoday answered, for the log (`None` when not called).
        upstream_status: Option<u16>,
    },
}

impl Outcome {
    /// What Xoxoday answered, for the log.
    pub fn upstream_status(&self) -> Option<u16> {
        match self {
            Outcome::Answer { upstream_status, .. } | Outcome::Error { upstream_status, .. } => *upstream_status,
        }
    }
}

/// The ledger's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "FlatReply")]
#[cfg_attr(test, derive(Deserialize), serde(from = "FlatReply"))]
pub struct LedgerReply {
    /// What the caller gets.
    pub outcome: Outcome,
    /// Answered from the ledger (a stored answer, or a call another
    /// request made) rather than by this request's own call
    /// (`x-plumgate-replayed: true`).
    pub replayed: bool,
    /// What became of the order.
    pub fate: Fate,
}

/// [`LedgerReply`] as JSON: one flat object, `error` set for plumgate's
/// error and the answer's fields otherwise. (Flat rather than an enum's
/// tagged form: each tagged variant costs the worker's wasm a decoder of
/// its own.)
#[derive(Serialize)]
#[cfg_attr(test, derive(Deserialize))]
struct FlatReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<ApiError>,
    #[serde(default)]
    status: u16,
    #[serde(default)]
    body: String,
    #[serde(default)]
    reconciled: bool,
    upstream_status: Option<u16>,
    replayed: bool,
    #[serde(default)]
    fate: Fate,
}

impl From<LedgerReply> for FlatReply {
    fn from(r: LedgerReply) -> FlatReply {
        let (replayed, fate) = (r.replayed, r.fate);
        match r.outcome {
            Outcome::Answer { status, body, reconciled, upstream_status } => {
                FlatReply { error: None, status, body, reconciled, upstream_status, replayed, fate }
            }
            Outcome::Error { error, upstream_status } => FlatReply {
                status: error.status,
                error: Some(error),
                body: String::new(),
                reconciled: false,
                upstream_status,
                replayed,
                fate,
            },
        }
    }
}

impl LedgerReply {
    /// The reply in `body`; `None` when it is none.
    pub fn read(body: &[u8]) -> Option<LedgerReply> {
        parse(body, FlatReply::from_fields).map(LedgerReply::from)
    }
}

impl FlatReply {
    fn from_fields(o: &Fields) -> Option<FlatReply> {
        Some(FlatReply {
            error: get(o, "error", |v| slot(v, ApiError::from_fields)).ok()?,
            status: get(o, "status", status).ok()?,
            body: get(o, "body", text).ok()?,
            reconciled: get(o, "reconciled", flag).ok()?,
            upstream_status: get(o, "upstream_status", |v| opt(v, status)).ok()?,
            replayed: need(o, "replayed", flag)?,
            fate: get(o, "fate", |v| v.as_str().map(Fate::from_name)).ok()?,
        })
    }
}

impl From<FlatReply> for LedgerReply {
    fn from(f: FlatReply) -> LedgerReply {
        let outcome = match f.error {
            Some(error) => Outcome::Error { error, upstream_status: f.upstream_status },
            None => Outcome::Answer { status: f.status, body: f.body, reconciled: f.reconciled, upstream_status: f.upstream_status },
        };
        LedgerReply { outcome, replayed: f.replayed, fate: f.fate }
    }
}

/// What the ledger reads of a request in the previous version's form, to
/// answer it in the form that worker relays.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
pub struct PreviousRequest {
    /// For the error body.
    pub request_id: String,
    /// The error body in Xoxoday's shape.
    #[serde(default)]
    pub xoxoday_errors: bool,
}

impl PreviousRequest {
    /// The request in `body`; `None` when it is none.
    pub fn read(body: &[u8]) -> Option<PreviousRequest> {
        parse(body, |o| Some(PreviousRequest { request_id: need(o, "request_id", text)?, xoxoday_errors: get(o, "xoxoday_errors", flag).ok()? }))
    }
}

/// The error a previous-version worker's request gets during a deploy
/// (nothing is placed for it; a retry reaches this version). "Nothing was
/// placed" only when the ledger holds nothing of this poNumber (`clean`:
/// no record, readable storage, no run in flight): an earlier attempt's
/// record may be this very order, placed or pending.
pub fn previous_version_refusal(clean: bool) -> ApiError {
    if clean {
        // The README's words for "never executed" (`ledger::SAFE_TO_RETRY`),
        // which callers (the TS client) look for, exactly.
        ApiError::upstream_error("plumgate is being updated; ".to_owned() + crate::ledger::SAFE_TO_RETRY)
    } else {
        ApiError::upstream_error("plumgate is being updated, and an earlier attempt at this poNumber may have placed the order: retry with the same poNumber and body in a moment")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_is_pinned() {
        let r = LedgerRequest { data: json!({"poNumber": "po-1", "quantity": 1}), fingerprint: "ab".repeat(32) };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text, format!(r#"{{"data":{{"poNumber":"po-1","quantity":1}},"fingerprint":"{}"}}"#, "ab".repeat(32)));
        let back = LedgerRequest::read(text.as_bytes()).unwrap();
        assert_eq!((back.data, back.fingerprint), (r.data, r.fingerprint));
        assert_eq!(object_name("0123456789abcdef", "po-1"), "po:0123456789abcdef:po-1");
        assert_ne!(object_name("0123456789abcdef", "po-1"), object_name("fedcba9876543210", "po-1"), "one ledger per account");
        assert_eq!(legacy_object_name("po-1"), "po:po-1", "the name versions before 2026-12-03 gave it");
        assert_eq!(PLACE_URL.strip_prefix("https://ledger"), Some(PLACE_PATH));
    }

    #[test]
    fn replies_are_pinned() {
        let answer = LedgerReply {
            outcome: Outcome::Answer { status: 200, body: r#"{"data":{}}"#.into(), reconciled: true, upstream_status: Some(200) },
            replayed: false,
            fate: Fate::Placed,
        };
        let text = serde_json::to_string(&answer).unwrap();
        assert_eq!(text, r#"{"status":200,"body":"{\"data\":{}}","reconciled":true,"upstream_status":200,"replayed":false,"fate":"placed"}"#);
        assert_eq!(LedgerReply::read(text.as_bytes()), Some(answer.clone()));

        let error = LedgerReply {
            outcome: Outcome::Error { error: ApiError::idempotency_conflict(), upstream_status: None },
            replayed: true,
            fate: Fate::NotPlaced,
        };
        let text = serde_json::to_string(&error).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"error":{{"status":409,"code":"idempotency_conflict","message":"{}","retry_after_secs":null}},"status":409,"body":"","reconciled":false,"upstream_status":null,"replayed":true,"fate":"not_placed"}}"#,
                ApiError::idempotency_conflict().message
            )
        );
        assert_eq!(LedgerReply::read(text.as_bytes()), Some(error.clone()));
        assert_eq!(error.outcome.upstream_status(), None);
        assert_eq!(answer.outcome.upstream_status(), Some(200));
        for f in [Fate::Placed, Fate::Failed, Fate::NotPlaced, Fate::Unknown] {
            assert_eq!(serde_json::to_string(&f).unwrap(), format!("\"{}\"", f.as_str()));
            assert_eq!(serde_json::from_str::<Fate>(&format!("\"{}\"", f.as_str())).unwrap(), f);
        }
        // A reply of the previous version (no fate), or a fate this version
        // does not know: nothing is assumed.
        let old = LedgerReply::read(br#"{"status":200,"body":"x","upstream_status":200,"replayed":false}"#).unwrap();
        assert_eq!(old.fate, Fate::Unknown);
        assert_eq!(serde_json::from_str::<Fate>(r#""exploded""#).unwrap(), Fate::Unknown);
    }

    #[test]
    fn what_is_no_reply_is_not_read_as_one() {
        for text in [r#"{"error":"bad ledger request"}"#, r#"{"status":200,"body":"x"}"#, r#"{"error":{"status":409},"replayed":false,"upstream_status":null}"#] {
            assert!(serde_json::from_str::<LedgerReply>(text).is_err(), "{text}");
            assert_eq!(LedgerReply::read(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn the_readers_agree_with_serdes_derive() {
        use crate::stored::agree;
        let error = serde_json::to_value(ApiError::rate_limited("getBalance", 3)).unwrap();
        let reply = json!({"error": error, "status": 429, "body": "b", "reconciled": true, "upstream_status": 200, "replayed": true, "fate": "failed"});
        let (read, refused) = agree::check::<LedgerReply>(&agree::texts(&reply, &["/error"]), LedgerReply::read);
        assert!(read > 30 && refused > 150, "reply: {read} read, {refused} refused");
        let request = json!({"data": {"poNumber": "p"}, "fingerprint": "f"});
        let (read, refused) = agree::check::<LedgerRequest>(&agree::texts(&request, &[]), LedgerRequest::read);
        assert!(read > 20 && refused > 20, "request: {read} read, {refused} refused");
        let previous = json!({"request_id": "rid", "xoxoday_errors": true});
        let (read, refused) = agree::check::<PreviousRequest>(&agree::texts(&previous, &[]), PreviousRequest::read);
        assert!(read > 5 && refused > 40, "previous: {read} read, {refused} refused");
    }

    #[test]
    fn a_previous_version_request_is_recognised() {
        let old = json!({"data": {}, "fingerprint": "f", "request_id": "rid", "xoxoday_errors": true});
        let p = PreviousRequest::read(old.to_string().as_bytes()).unwrap();
        assert_eq!((p.request_id.as_str(), p.xoxoday_errors), ("rid", true));
        // This version's request lacks what the previous object requires.
        let new = serde_json::to_value(LedgerRequest { data: json!({}), fingerprint: "f".into() }).unwrap();
        assert!(PreviousRequest::read(new.to_string().as_bytes()).is_none());
        let e = previous_version_refusal(true);
        assert_eq!((e.status, e.code), (502, crate::errors::ErrorCode::UpstreamError));
        assert!(e.message.contains(crate::ledger::SAFE_TO_RETRY), "the README's words, which callers look for: {}", e.message);
        // The ledger holds something of this poNumber: never "safe".
        let held = previous_version_refusal(false);
        assert_eq!((held.status, held.code), (502, crate::errors::ErrorCode::UpstreamError));
        assert!(!held.message.contains("nothing was placed") && held.message.contains("same poNumber"), "{}", held.message);
    }

    /// plumgate's error after a call to Xoxoday carries what Xoxoday
    /// answered across the wire (the request log's upstream status).
    #[test]
    fn an_error_carries_what_xoxoday_answered() {
        let e = LedgerReply { outcome: Outcome::Error { error: ApiError::upstream_error("x"), upstream_status: Some(503) }, replayed: false, fate: Fate::Unknown };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains(r#""upstream_status":503"#), "{text}");
        assert_eq!(LedgerReply::read(text.as_bytes()), Some(e));
    }
}
