//! Telling the `KeyRegistry` what the ledger learnt on its own.
//!
//! When the alarm's check settles the fate of a `pending` order (no request
//! for it waiting), the registry still counts the order's amount as
//! unknown against every key that sent it, and its audit trail says only
//! `unknown`. [`reconciliation`] makes the registry's `reconciled` request
//! for it (`wire::registry`), which the ledger sends at once. The ledger's
//! own record is written first and never depends on the registry: a call
//! that fails is kept as a [`Tell`] (storage key [`TELLS_KEY`], beside the
//! record rather than in it, since a record proven "not placed" after a
//! lost answer is deleted so the `poNumber` can be used again) and retried
//! from the alarm with the ledger's backoff ([`after`]), [`TELL_ATTEMPTS`]
//! attempts in all; then it is given up with an error log line. A new
//! placeOrder for the `poNumber` first gives every tell left one last
//! attempt ([`before_run`]).

use super::{backoff_ms, Finish, Record};
use crate::audit::{self, Attempt};
use crate::wire::ledger::{Fate, Outcome};
use crate::jsontext::Object;
use crate::wire::registry::Request;
use serde_json::Value;

/// Storage key of the tells not yet delivered (JSON text, a list).
pub const TELLS_KEY: &str = "registry_tells";

/// Attempts at telling the registry, the first included (then 10 s, 20 s,
/// 40 s, 80 s apart).
pub const TELL_ATTEMPTS: u32 = 5;

/// The most tells kept (each is one settlement of this `poNumber`; more
/// than a few would mean the registry has been unreachable for long).
pub const MAX_TELLS: usize = 8;

/// A `reconciled` request the registry has not yet taken. Stored as
/// `{"request": text, "po_fp": text, "outcome": text, "attempts": n,
/// "next_at_ms": n}` (a missing field reads as empty or 0), written and
/// read by hand ([`store`], [`load`]) like the registry's wire: a derived
/// decoder would cost the worker's wasm one of its own. The request is
/// sent as stored, never decoded by the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tell {
    /// The request (`wire::registry::Request`, JSON text).
    pub request: String,
    /// `secret::fingerprint` of its `poNumber`, for the log line.
    pub po_fp: String,
    /// Its outcome's name, for the log line.
    pub outcome: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (epoch ms).
    pub next_at_ms: i64,
}

impl Tell {
    /// A tell of `req`, due at `now_ms`.
    pub fn new(req: &Request, now_ms: i64) -> Tell {
        Tell {
            request: req.to_json(),
            po_fp: crate::secret::fingerprint(req.po_number.as_deref().unwrap_or_default()),
            outcome: req.outcome.map_or("", |o| o.as_str()).to_owned(),
            attempts: 0,
            next_at_ms: now_ms,
        }
    }
}

/// The registry's `reconciled` request for a check (`checked`: the pending
/// record it was made for) that ended as `f`; `None` while the fate is
/// still unknown, or when the record does not know its order. The request
/// id is the settlement's own, `reconcile:<poNumber>:<sent at>`: the same
/// for every attempt at telling it (the registry records it once), another
/// for a later order with the same `poNumber`.
pub fn reconciliation(checked: &Record, f: &Finish) -> Option<Request> {
    let outcome = match f.fate {
        Fate::Placed => audit::Outcome::ReconciledPlaced,
        Fate::Failed => audit::Outcome::ReconciledFailed,
        Fate::NotPlaced => audit::Outcome::ReconciledNotPlaced,
        Fate::Unknown => return None,
    };
    let po = checked.po_number()?;
    let request_id = format!("reconcile:{po}:{}", checked.sent_at_ms);
    let attempt = Attempt::of_order("", &checked.order, &checked.fingerprint, &request_id);
    let (status, error, order_id) = match &f.outcome {
        Outcome::Answer { status, body, .. } => (*status, None, audit::order_id(body.as_bytes()).filter(|_| f.fate != Fate::NotPlaced)),
        Outcome::Error { error, .. } => (error.status, Some(error.code.as_str().to_owned()), None),
    };
    Some(Request::of_reconciliation(&attempt, audit::Result { outcome, status, error, order_id, reconciled: true }))
}

/// The tells as stored (nothing, or something unreadable: none).
pub fn load(stored: Option<String>) -> Vec<Tell> {
    let Some(Value::Array(items)) = stored.and_then(|t| crate::jsontext::from_text(&t).ok()) else { return Vec::new() };
    items
        .iter()
        .filter_map(|v| {
            let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
            Some(Tell {
                request: v.get("request")?.as_str()?.to_owned(),
                po_fp: text("po_fp"),
                outcome: text("outcome"),
                attempts: v.get("attempts").and_then(Value::as_u64).map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
                next_at_ms: v.get("next_at_ms").and_then(Value::as_i64).unwrap_or(0),
            })
        })
        .collect()
}

/// The tells as stored (JSON text, a list).
pub fn store(tells: &[Tell]) -> String {
    let items: Vec<String> =
        tells
            .iter()
            .map(|t| {
                Object::new()
                    .str("request", &t.request)
                    .str("po_fp", &t.po_fp)
                    .str("outcome", &t.outcome)
                    .num("attempts", t.attempts)
                    .num("next_at_ms", t.next_at_ms)
                    .finish()
            })
            .collect();
    crate::jsontext::array(&items)
}

/// What became of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The registry took it.
    Told,
    /// Failed: keep it, try again then.
    Again(Tell),
    /// Failed for the last time: an error log line.
    GiveUp(Tell),
}

/// After an attempt at `t` (`told`: the registry answered without an
/// error) at `now_ms`.
pub fn after(t: Tell, told: bool, now_ms: i64) -> Next {
    if told {
        return Next::Told;
    }
    let attempts = t.attempts.saturating_add(1);
    let t = Tell { attempts, next_at_ms: now_ms.saturating_add(backoff_ms(attempts)), ..t };
    if attempts >= TELL_ATTEMPTS {
        Next::GiveUp(t)
    } else {
        Next::Again(t)
    }
}

/// `tells` with `t` added; the oldest beyond [`MAX_TELLS`] is given up
/// (returned, for the log line).
pub fn add(tells: &mut Vec<Tell>, t: Tell) -> Option<Tell> {
    tells.push(t);
    (tells.len() > MAX_TELLS).then(|| tells.remove(0))
}

/// A new placeOrder for this `poNumber` is about to run, so every tell
/// left is of an order proven not placed, whose hold the new attempt's
/// reservation has just joined (same key, `poNumber` and body). Told now,
/// while that attempt holds it, the registry keeps counting it for the
/// attempt; told after the attempt settled, it would free the new order's
/// amount. So each gets one last attempt now ([`after`] gives it up if it
/// fails), none is kept for later.
pub fn before_run(tells: Vec<Tell>) -> Vec<Tell> {
    tells.into_iter().map(|t| Tell { attempts: t.attempts.max(TELL_ATTEMPTS - 1), next_at_ms: i64::MIN, ..t }).collect()
}

/// When the alarm must fire for the tells (`None`: there are none).
pub fn next_due(tells: &[Tell]) -> Option<i64> {
    tells.iter().map(|t| t.next_at_ms).min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::ApiError;
    use crate::ledger::{after_check, Reconciled, Store, SETTLE_MS};
    use serde_json::{json, Value};

    const T0: i64 = 1_795_626_582_000;

    fn pending() -> Record {
        let data = json!({"poNumber": "po-7", "productId": 10100, "quantity": 2, "denomination": 12.5, "email": "a@example.com"});
        let mut r = Record::pending("fp", &data, T0, 130_000, 15_000);
        r.next_check_at_ms = T0;
        r
    }

    fn sent(req: &Request) -> Value {
        serde_json::from_str(&req.to_json()).unwrap()
    }

    #[test]
    fn a_settled_fate_becomes_a_reconciled_request() {
        let r = pending();
        // Found placed: its order id.
        let found = json!({"orderId": 4242, "orderStatus": "complete", "quantity": 2, "voucherDetails": [{"productId": 10100, "denomination": 12.5}]});
        let f = after_check(&r, Reconciled::Found(found), T0 + 10_000);
        let req = reconciliation(&r, &f).unwrap();
        assert_eq!(
            sent(&req),
            json!({"po_number": "po-7", "fingerprint": "fp", "product_id": "10100", "quantity": 2, "amount": 25_000_000,
                   "request_id": format!("reconcile:po-7:{T0}"), "outcome": "reconciled_placed", "status": 200, "order_id": "4242", "reconciled": true})
        );
        assert!(!req.to_json().contains("a@example.com"), "no recipient");
        // Found failed: freed, with the order id Xoxoday holds it under.
        let failed = json!({"orderId": 4243, "orderStatus": "failed"});
        let req = reconciliation(&r, &after_check(&r, Reconciled::Found(failed), T0 + 10_000)).unwrap();
        assert_eq!((sent(&req)["outcome"].as_str(), sent(&req)["order_id"].as_str()), (Some("reconciled_failed"), Some("4243")));
        // Another order under the poNumber: not placed.
        let other = json!({"orderId": 1, "quantity": 9});
        let req = reconciliation(&r, &after_check(&r, Reconciled::Found(other), T0 + 10_000)).unwrap();
        assert_eq!((sent(&req)["outcome"].as_str(), sent(&req)["order_id"].as_str()), (Some("reconciled_not_placed"), None), "not this order's id");
        // "No such order", evidence complete: not placed, as a retry would hear it.
        let mut proven = r.clone();
        proven.not_found = 2;
        let f = after_check(&proven, Reconciled::NotFound, T0 + SETTLE_MS);
        assert_eq!(f.store, Store::Forget);
        let v = sent(&reconciliation(&proven, &f).unwrap());
        assert_eq!((v["outcome"].as_str(), v["status"].as_u64(), v["error"].as_str()), (Some("reconciled_not_placed"), Some(502), Some("upstream_error")));
        // Still unknown: nothing to tell.
        assert_eq!(reconciliation(&r, &after_check(&r, Reconciled::NotFound, T0 + 10_000)), None);
        assert_eq!(reconciliation(&r, &after_check(&r, Reconciled::Unknown, T0 + 10_000)), None);
        // A record that does not know its order (a previous version's): nothing.
        let blind = Record { order: Value::Null, ..r.clone() };
        let f = Finish { store: Store::Forget, penalty: None, outcome: Outcome::Error { error: ApiError::internal(), upstream_status: None }, fate: Fate::NotPlaced };
        assert_eq!(reconciliation(&blind, &f), None);
        // Another settlement of the same poNumber (sent later): another id.
        let later = Record { sent_at_ms: T0 + 500_000, ..proven };
        let v = sent(&reconciliation(&later, &after_check(&later, Reconciled::NotFound, T0 + 700_000)).unwrap());
        assert_eq!(v["request_id"], format!("reconcile:po-7:{}", T0 + 500_000));
    }

    #[test]
    fn a_tell_is_retried_with_backoff_then_given_up() {
        let req = Request { po_number: Some("po".into()), outcome: Some(audit::Outcome::ReconciledPlaced), ..Request::default() };
        let t = Tell::new(&req, T0);
        assert_eq!((t.attempts, t.next_at_ms), (0, T0));
        assert_eq!(Request::from_json(t.request.as_bytes()), Some(req.clone()), "sent as stored");
        assert_eq!((t.po_fp.as_str(), t.outcome.as_str()), (crate::secret::fingerprint("po").as_str(), "reconciled_placed"));
        assert_eq!(after(t.clone(), true, T0), Next::Told);
        let mut cur = t;
        let mut waits = Vec::new();
        let now = T0;
        loop {
            match after(cur.clone(), false, now) {
                Next::Again(n) => {
                    waits.push(n.next_at_ms - now);
                    cur = n;
                }
                Next::GiveUp(n) => {
                    assert_eq!(n.attempts, TELL_ATTEMPTS);
                    break;
                }
                Next::Told => unreachable!(),
            }
        }
        assert_eq!(waits, [10_000, 20_000, 40_000, 80_000]);
        // Stored as a list; nothing or anything unreadable is none.
        let text = store(&[cur.clone()]);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), json!([{"request": cur.request, "po_fp": cur.po_fp, "outcome": "reconciled_placed", "attempts": cur.attempts, "next_at_ms": cur.next_at_ms}]));
        assert_eq!(load(Some(text)), vec![cur.clone()]);
        assert_eq!(load(Some("[]".into())), vec![]);
        assert_eq!(load(Some(r#"[{"attempts":1},7]"#.into())), vec![], "an entry without its request is dropped");
        assert_eq!(load(None), vec![]);
        assert_eq!(load(Some("{".into())), vec![]);
        assert_eq!(load(Some(r#"[{"request":"{}"}]"#.into())), vec![Tell { request: "{}".into(), po_fp: String::new(), outcome: String::new(), attempts: 0, next_at_ms: 0 }], "defaults");
        // Bounded: the oldest goes.
        let mut tells = Vec::new();
        for i in 0..MAX_TELLS {
            assert_eq!(add(&mut tells, Tell { next_at_ms: T0 + i as i64, ..cur.clone() }), None);
        }
        assert_eq!(next_due(&tells), Some(T0));
        let dropped = add(&mut tells, Tell { next_at_ms: T0 - 5, ..cur.clone() }).unwrap();
        assert_eq!((dropped.next_at_ms, tells.len(), next_due(&tells)), (T0, MAX_TELLS, Some(T0 - 5)));
        assert_eq!(next_due(&[]), None);
        // Before a new run: all due now, one last attempt each.
        let fresh = Tell::new(&req, T0 + 60_000);
        let last = before_run(vec![fresh.clone()]);
        assert!(last[0].next_at_ms <= T0);
        assert_eq!(after(last[0].clone(), true, T0), Next::Told);
        assert!(matches!(after(last[0].clone(), false, T0), Next::GiveUp(_)), "never kept past the run");
        assert_eq!(before_run(vec![]), vec![]);
    }

    /// Xoxoday's refusal passed on as a "not placed" settlement keeps no
    /// order id, whatever the refusal's body names (another order's).
    #[test]
    fn a_refusal_passed_on_names_no_order_id() {
        let mut r = pending();
        r.refused = Some(crate::ledger::Refused { status: 409, body: r#"{"data":{"placeOrder":{"status":0,"data":{"orderId":77}}}}"#.into() });
        let f = after_check(&r, Reconciled::Found(json!({"orderId": 1, "quantity": 9})), T0 + 10_000);
        assert_eq!(f.fate, Fate::NotPlaced);
        assert!(matches!(&f.outcome, Outcome::Answer { status: 409, .. }), "{:?}", f.outcome);
        let v = sent(&reconciliation(&r, &f).unwrap());
        assert_eq!((v["outcome"].as_str(), v["status"].as_u64(), v["order_id"].as_str()), (Some("reconciled_not_placed"), Some(409), None));
    }

    /// A stored attempt count beyond `u32` reads as the most there is, so
    /// the tell is given up at its next failure, not started afresh.
    #[test]
    fn a_huge_stored_attempt_count_is_no_fresh_start() {
        let t = load(Some(r#"[{"request":"{}","attempts":4294967296}]"#.into()));
        assert_eq!(t[0].attempts, u32::MAX);
        assert!(matches!(after(t[0].clone(), false, T0), Next::GiveUp(_)));
    }
}
