//! The `KeyRegistry` protocol (one object per deployment, named
//! [`OBJECT_NAME`]).
//!
//! A call is `POST https://registry/{op}` ([`Op::url`]) with a [`Request`]
//! as JSON; the answer is always a [`Reply`] as JSON (HTTP 200). Both are
//! one flat struct for every operation (each operation fills what it
//! needs): every type decoded from JSON costs the worker's wasm a decoder
//! of its own. An operation name this version does not know gets a reply
//! with an error, never some default.
//!
//! | op | sends | gets |
//! |---|---|---|
//! | `sync` | `version` the isolate holds, `usage` counted since its last sync | `version`, `directory` (when the version changed), `counts` (the minute's requests of the keys in `usage`) |
//! | `create` | `id`, `sha256`, `scopes`, `expires_at_ms`, `limits`, `static_keys` (ids taken) | `body` (the key's view) |
//! | `list` | `static_keys` | `body` (`{"keys": [...]}`) |
//! | `revoke`, `rotate`, `limits` | `id`; `sha256` and `grace_secs` (rotate); `patch` (limits) | `body` |
//! | `reserve` | the order (`id`, `po_number`, `fingerprint`, `product_id`, `quantity`, `amount`, `request_id`), `cap` (a static key's) | `created`, `held`, or the `error` (`quota_exceeded`) |
//! | `settle` | the order, `held`, `created`, the result (`outcome`, `status`, `error`, `order_id`, `reconciled`) | nothing |
//! | `audit` | `from_ms`, `to_ms`, `id`, `before`, `limit` | `body` (a page) |

use crate::audit::{self, Attempt, Outcome, Query};
use crate::errors::ApiError;
use crate::keys::{Credential, NewKey};
use crate::quota::{Limits, UsageDelta};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The one registry object's name.
pub const OBJECT_NAME: &str = "keys";

/// The operations, as the URL path names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// An isolate's directory refresh and usage report.
    Sync,
    /// `POST /v1/keys`.
    Create,
    /// `GET /v1/keys`.
    List,
    /// `DELETE /v1/keys/{id}`.
    Revoke,
    /// `POST /v1/keys/{id}/rotate`.
    Rotate,
    /// `PATCH /v1/keys/{id}`.
    Limits,
    /// Before a placeOrder of a key with a spend cap.
    Reserve,
    /// After a placeOrder (spend and audit trail).
    Settle,
    /// `GET /v1/audit`.
    Audit,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 9] = [Op::Sync, Op::Create, Op::List, Op::Revoke, Op::Rotate, Op::Limits, Op::Reserve, Op::Settle, Op::Audit];

    /// The path segment.
    pub fn name(self) -> &'static str {
        match self {
            Op::Sync => "sync",
            Op::Create => "create",
            Op::List => "list",
            Op::Revoke => "revoke",
            Op::Rotate => "rotate",
            Op::Limits => "limits",
            Op::Reserve => "reserve",
            Op::Settle => "settle",
            Op::Audit => "audit",
        }
    }

    /// The operation at `path` (`/sync`); `None` for anything else.
    pub fn from_path(path: &str) -> Option<Op> {
        let name = path.strip_prefix('/')?;
        Op::ALL.into_iter().find(|op| op.name() == name)
    }

    /// Where the call goes (the host is a placeholder: a stub routes by
    /// object, not by URL).
    pub fn url(self) -> String {
        format!("https://registry/{}", self.name())
    }
}

/// What a call sends (see the module's table for which operation reads
/// which field). Flat: the order, its result and the audit query are
/// fields here rather than nested types ([`Request::attempt`],
/// [`Request::result`], [`Request::query`] put them together).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// `sync`: the directory version the isolate holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `sync`: what the isolate counted since its last sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<UsageDelta>,
    /// `create`, `revoke`, `rotate`, `limits`: the key's id; `reserve`,
    /// `settle`: the caller's; `audit`: the key asked about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `create`, `rotate`: SHA-256 of the new key (the key itself never
    /// reaches the registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// `create`: scope names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// `create`: the expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// `create`: the limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// `rotate`: how long the previous key keeps working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_secs: Option<u64>,
    /// `limits`: the merge patch of the limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<Value>,
    /// `create`, `list`: the `GATEWAY_KEYS` keys (no hash).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub static_keys: Vec<Credential>,
    /// `reserve`, `settle`: the order's `poNumber`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub po_number: Option<String>,
    /// ...its fingerprint...
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fingerprint: String,
    /// ...`productId` as text...
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub product_id: String,
    /// ...quantity...
    #[serde(default)]
    pub quantity: u64,
    /// ...amount in millionths...
    #[serde(default)]
    pub amount: i64,
    /// ...and the request's id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_id: String,
    /// `reserve`: the daily cap of a `GATEWAY_KEYS` key (a runtime key's
    /// comes from its record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<i64>,
    /// `settle`: the request holds the order's hold...
    #[serde(default)]
    pub held: bool,
    /// ...its reservation made it.
    #[serde(default)]
    pub created: bool,
    /// `settle`: what came of the order...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// ...the status the caller got...
    #[serde(default)]
    pub status: u16,
    /// ...plumgate's error code...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// ...Xoxoday's order id...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// ...found by reconciliation.
    #[serde(default)]
    pub reconciled: bool,
    /// `audit`: entries at or after...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ms: Option<i64>,
    /// ...before...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ms: Option<i64>,
    /// ...older than this entry...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<i64>,
    /// ...this many.
    #[serde(default)]
    pub limit: u32,
}

impl Request {
    /// A `reserve` or `settle` request of `attempt`.
    pub fn of_attempt(a: &Attempt) -> Request {
        Request {
            id: Some(a.key.clone()),
            po_number: Some(a.po_number.clone()),
            fingerprint: a.fingerprint.clone(),
            product_id: a.product_id.clone(),
            quantity: a.quantity,
            amount: a.amount,
            request_id: a.request_id.clone(),
            ..Request::default()
        }
    }

    /// The order of a `reserve` or `settle` request.
    pub fn attempt(&self) -> Option<Attempt> {
        Some(Attempt {
            key: self.id.clone()?,
            po_number: self.po_number.clone()?,
            fingerprint: self.fingerprint.clone(),
            product_id: self.product_id.clone(),
            quantity: self.quantity,
            amount: self.amount,
            request_id: self.request_id.clone(),
        })
    }

    /// This request with `result` (a `settle`).
    pub fn with_result(self, r: audit::Result) -> Request {
        Request { outcome: Some(r.outcome), status: r.status, error: r.error, order_id: r.order_id, reconciled: r.reconciled, ..self }
    }

    /// The result of a `settle` request.
    pub fn result(&self) -> Option<audit::Result> {
        Some(audit::Result { outcome: self.outcome?, status: self.status, error: self.error.clone(), order_id: self.order_id.clone(), reconciled: self.reconciled })
    }

    /// An `audit` request of `q`.
    pub fn of_query(q: &Query) -> Request {
        Request { from_ms: q.from_ms, to_ms: q.to_ms, id: q.key.clone(), before: q.before, limit: q.limit, ..Request::default() }
    }

    /// The query of an `audit` request.
    pub fn query(&self) -> Query {
        Query { from_ms: self.from_ms, to_ms: self.to_ms, key: self.id.clone(), before: self.before, limit: self.limit.clamp(1, audit::MAX_PAGE) }
    }

    /// A `create` request of `new` with key hash `sha256`.
    pub fn of_new_key(new: NewKey, sha256: String) -> Request {
        Request {
            id: Some(new.id),
            sha256: Some(sha256),
            scopes: new.scopes,
            expires_at_ms: new.expires_at_ms,
            limits: Some(new.limits),
            ..Request::default()
        }
    }

    /// The new key of a `create` request (and its hash).
    pub fn new_key(&self) -> Option<(NewKey, String)> {
        let new = NewKey { id: self.id.clone()?, scopes: self.scopes.clone(), expires_at_ms: self.expires_at_ms, limits: self.limits.unwrap_or_default() };
        Some((new, self.sha256.clone()?))
    }
}

/// What a call gets (see the module's table).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The caller-facing error, when the operation was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    /// The answer's body for the admin routes (JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `sync`: the current directory version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `sync`: the directory, when the isolate's version is not current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<Vec<Credential>>,
    /// `sync`: the minute counts (`minute`, `minute_requests`) of the keys
    /// reported, across isolates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub counts: Vec<UsageDelta>,
    /// `reserve`: a new hold was taken.
    #[serde(default)]
    pub created: bool,
    /// `reserve`: the request holds the hold (and must settle it).
    #[serde(default)]
    pub held: bool,
}

impl Reply {
    /// A refusal.
    pub fn refusal(error: ApiError) -> Reply {
        Reply { error: Some(error), ..Reply::default() }
    }

    /// An answer with a body.
    pub fn body(body: String) -> Reply {
        Reply { body: Some(body), ..Reply::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_have_a_path_each() {
        for op in Op::ALL {
            assert_eq!(Op::from_path(&format!("/{}", op.name())), Some(op));
            assert_eq!(op.url(), format!("https://registry/{}", op.name()));
        }
        assert_eq!(Op::from_path("/place"), None);
        assert_eq!(Op::from_path("sync"), None);
        assert_eq!(Op::from_path("/"), None);
    }

    fn attempt() -> Attempt {
        Attempt { key: "k".into(), po_number: "po".into(), fingerprint: "fp".into(), product_id: "7".into(), quantity: 1, amount: 5, request_id: "r".into() }
    }

    #[test]
    fn requests_are_pinned() {
        assert_eq!(serde_json::to_string(&Request::default()).unwrap(), r#"{"quantity":0,"amount":0,"held":false,"created":false,"status":0,"reconciled":false,"limit":0}"#);
        let sync = Request {
            version: Some("v1".into()),
            usage: vec![UsageDelta { id: "k".into(), requests: 2, minute: 9, minute_requests: 1, last_used_ms: 5 }],
            ..Request::default()
        };
        let text = serde_json::to_string(&sync).unwrap();
        assert_eq!(
            text,
            r#"{"version":"v1","usage":[{"id":"k","requests":2,"minute":9,"minute_requests":1,"last_used_ms":5}],"quantity":0,"amount":0,"held":false,"created":false,"status":0,"reconciled":false,"limit":0}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), sync);
        let result = audit::Result { outcome: Outcome::Placed, status: 200, error: None, order_id: Some("9".into()), reconciled: false };
        let settle = Request { held: true, ..Request::of_attempt(&attempt()) }.with_result(result.clone());
        let text = serde_json::to_string(&settle).unwrap();
        assert_eq!(
            text,
            r#"{"id":"k","po_number":"po","fingerprint":"fp","product_id":"7","quantity":1,"amount":5,"request_id":"r","held":true,"created":false,"outcome":"placed","status":200,"order_id":"9","reconciled":false,"limit":0}"#
        );
        let back: Request = serde_json::from_str(&text).unwrap();
        assert_eq!((back.attempt(), back.result()), (Some(attempt()), Some(result)));
        assert_eq!(Request::default().attempt(), None);
        assert_eq!(Request::default().result(), None);
        // Fields a reader does not know are ignored (a newer worker).
        assert_eq!(serde_json::from_str::<Request>(r#"{"later":1}"#).unwrap(), Request::default());
    }

    #[test]
    fn new_keys_and_queries_go_across_whole() {
        let new = NewKey { id: "a".into(), scopes: vec!["*".into()], expires_at_ms: Some(9), limits: Limits { requests_per_minute: Some(3), order_amount_per_day: None } };
        let r = Request::of_new_key(new.clone(), "h".into());
        let back: Request = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.new_key(), Some((new, "h".to_owned())));
        assert_eq!(Request::default().new_key(), None);
        let q = Query { from_ms: Some(1), to_ms: Some(2), key: Some("k".into()), before: Some(7), limit: 10 };
        let back: Request = serde_json::from_str(&serde_json::to_string(&Request::of_query(&q)).unwrap()).unwrap();
        assert_eq!(back.query(), q);
        assert_eq!(Request::default().query().limit, 1, "a limit is always 1 to 200");
    }

    #[test]
    fn replies_are_pinned() {
        let r = Reply {
            version: Some("v2".into()),
            directory: Some(vec![Credential { id: "a".into(), sha256: "h".into(), scopes: vec!["*".into()], limits: Limits::default(), until_ms: None }]),
            counts: vec![UsageDelta { id: "a".into(), minute: 3, minute_requests: 4, ..UsageDelta::default() }],
            ..Reply::default()
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"version":"v2","directory":[{"id":"a","sha256":"h","scopes":["*"],"limits":{"requests_per_minute":null,"order_amount_per_day_micros":null},"until_ms":null}],"counts":[{"id":"a","requests":0,"minute":3,"minute_requests":4,"last_used_ms":0}],"created":false,"held":false}"#
        );
        assert_eq!(serde_json::from_str::<Reply>(&text).unwrap(), r);
        let refused = Reply::refusal(ApiError::quota_exceeded("m", 5));
        let text = serde_json::to_string(&refused).unwrap();
        assert_eq!(text, r#"{"error":{"status":429,"code":"quota_exceeded","message":"m","retry_after_secs":5},"created":false,"held":false}"#);
        assert_eq!(serde_json::from_str::<Reply>(&text).unwrap(), refused);
        assert_eq!(serde_json::to_string(&Reply::body("{}".into())).unwrap(), r#"{"body":"{}","created":false,"held":false}"#);
    }
}
