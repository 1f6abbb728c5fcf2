//! The `KeyRegistry` protocol (one object per deployment, named
//! [`OBJECT_NAME`]).
//!
//! A call is `POST https://registry/{op}` ([`Op::url`]) with a [`Request`]
//! as JSON; the answer is always a [`Reply`] as JSON (HTTP 200). Both are
//! one flat struct for every operation (each operation fills what it
//! needs), written and read by hand ([`Request::to_json`],
//! [`Request::from_json`] and the same for [`Reply`]) rather than derived:
//! each type serde decodes costs the worker's wasm a decoder of its own,
//! while these reuse the one `serde_json::Value` reader every request body
//! already goes through. Fields a reader does not know are ignored; a
//! missing field reads as its default. An operation name this version does
//! not know gets a reply with an error, never some default.
//!
//! | op | sends | gets |
//! |---|---|---|
//! | `sync` | `version` the isolate holds, `usage` counted since its last sync | `version`, `directory` (when the version changed), `counts` (the minute's requests of the keys in `usage`) |
//! | `create` | `id`, `sha256`, `scopes`, `expires_at_ms`, `limits`, `static_keys` (ids taken) | `body` (the key's view) |
//! | `list` | `static_keys` | `body` (`{"keys": [...]}`) |
//! | `revoke`, `rotate`, `limits` | `id`; `sha256`, `grace_secs` and `current` (the hash of the key a rotation names, if any) (rotate); `patch` (limits) | `body` |
//! | `reserve` | the order (`id`, `po_number`, `fingerprint`, `product_id`, `quantity`, `amount`, `request_id`), `cap` (a static key's) | `created`, `held`, or the `error` (`quota_exceeded`) |
//! | `settle` | the order, `held`, `created`, the result (`outcome`, `status`, `error`, `order_id`, `reconciled`) | nothing |
//! | `record` | the order, the result | nothing (a placeOrder `reserve` refused or unanswered, answered by the order ledger instead: what its caller got replaces the refusal's audit entry, or is the entry) |
//! | `reconciled` | the order without `id` (`request_id`: the settlement's), the result (a `reconciled_*` `outcome`) | nothing (sent by an `OrderLedger`, [`Request::of_reconciliation`]) |
//! | `audit` | `from_ms`, `to_ms`, `id`, `before`, `limit` | `body` (a page) |

use crate::audit::{self, Attempt, Outcome, Query};
use crate::errors::ApiError;
use crate::jsontext::{array, quote, Object};
use crate::keys::{Credential, NewKey};
use crate::quota::{Limits, UsageDelta};
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
    /// After a placeOrder `Reserve` refused (or left unanswered) that the
    /// order ledger answered (a retry of an order it holds): its audit
    /// entry says what the caller got, not the refusal.
    Record,
    /// The order ledger settled the fate of an order left unknown, with
    /// no request waiting (its holds, and the audit trail).
    Reconciled,
    /// `GET /v1/audit`.
    Audit,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 11] = [Op::Sync, Op::Create, Op::List, Op::Revoke, Op::Rotate, Op::Limits, Op::Reserve, Op::Settle, Op::Record, Op::Reconciled, Op::Audit];

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
            Op::Record => "record",
            Op::Reconciled => "reconciled",
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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    /// `sync`: the directory version the isolate holds.
    pub version: Option<String>,
    /// `sync`: what the isolate counted since its last sync.
    pub usage: Vec<UsageDelta>,
    /// `create`, `revoke`, `rotate`, `limits`: the key's id; `reserve`,
    /// `settle`: the caller's; `audit`: the key asked about.
    pub id: Option<String>,
    /// `create`, `rotate`: SHA-256 of the new key (the key itself never
    /// reaches the registry).
    pub sha256: Option<String>,
    /// `create`: scope names.
    pub scopes: Vec<String>,
    /// `create`: the expiry.
    pub expires_at_ms: Option<i64>,
    /// `create`: the limits.
    pub limits: Option<Limits>,
    /// `rotate`: how long the previous key keeps working.
    pub grace_secs: Option<u64>,
    /// `rotate`: SHA-256 of the key the rotation names as the one it
    /// replaces, if it names one.
    pub current_sha256: Option<String>,
    /// `limits`: the merge patch of the limits.
    pub patch: Option<Value>,
    /// `create`, `list`: the `GATEWAY_KEYS` keys (no hash).
    pub static_keys: Vec<Credential>,
    /// `reserve`, `settle`: the order's `poNumber`...
    pub po_number: Option<String>,
    /// ...its fingerprint...
    pub fingerprint: String,
    /// ...`productId` as text...
    pub product_id: String,
    /// ...quantity...
    pub quantity: u64,
    /// ...amount in millionths...
    pub amount: i64,
    /// ...and the request's id.
    pub request_id: String,
    /// `reserve`: the daily cap of a `GATEWAY_KEYS` key (a runtime key's
    /// comes from its record).
    pub cap: Option<i64>,
    /// `reserve`: the caller is a `GATEWAY_KEYS` key, whatever runtime key
    /// shares its id (absent from older isolates: looked up as before).
    pub from_static: bool,
    /// `settle`: the request holds the order's hold...
    pub held: bool,
    /// ...its reservation made it.
    pub created: bool,
    /// `settle`: what came of the order...
    pub outcome: Option<Outcome>,
    /// ...the status the caller got...
    pub status: u16,
    /// ...plumgate's error code...
    pub error: Option<String>,
    /// ...Xoxoday's order id...
    pub order_id: Option<String>,
    /// ...found by reconciliation.
    pub reconciled: bool,
    /// `audit`: entries at or after...
    pub from_ms: Option<i64>,
    /// ...before...
    pub to_ms: Option<i64>,
    /// ...older than this entry...
    pub before: Option<i64>,
    /// ...this many.
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

    /// A `reconciled` request: the order (`a`, whose `key` is not sent: the
    /// ledger does not know it) and what came of it.
    pub fn of_reconciliation(a: &Attempt, r: audit::Result) -> Request {
        Request { id: None, ..Request::of_attempt(a) }.with_result(r)
    }

    /// The order and result of a `reconciled` request (the key left empty).
    pub fn reconciliation(&self) -> Option<(Attempt, audit::Result)> {
        let a = Request { id: Some(String::new()), ..self.clone() }.attempt()?;
        Some((a, self.result()?))
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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    /// The caller-facing error, when the operation was refused.
    pub error: Option<ApiError>,
    /// The answer's body for the admin routes (JSON text).
    pub body: Option<String>,
    /// `sync`: the current directory version.
    pub version: Option<String>,
    /// `sync`: the directory, when the isolate's version is not current.
    pub directory: Option<Vec<Credential>>,
    /// `sync`: the minute counts (`minute`, `minute_requests`) of the keys
    /// reported, across isolates.
    pub counts: Vec<UsageDelta>,
    /// `reserve`: a new hold was taken.
    pub created: bool,
    /// `reserve`: the request holds the hold (and must settle it).
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


// ------------------------------------------------------------ the JSON, by hand

/// Optional fields, written only when set.
struct Writer(Object);

impl Writer {
    fn str(self, k: &str, v: &Option<String>) -> Self {
        match v {
            Some(v) => Writer(self.0.str(k, v)),
            None => self,
        }
    }
    fn text(self, k: &str, v: &str) -> Self {
        if v.is_empty() {
            self
        } else {
            Writer(self.0.str(k, v))
        }
    }
    fn int(self, k: &str, v: Option<i64>) -> Self {
        match v {
            Some(v) => Writer(self.0.num(k, v)),
            None => self,
        }
    }
    fn flag(self, k: &str, v: bool) -> Self {
        if v {
            Writer(self.0.raw(k, "true"))
        } else {
            self
        }
    }
    fn raw(self, k: &str, json: Option<String>) -> Self {
        match json {
            Some(j) => Writer(self.0.raw(k, &j)),
            None => self,
        }
    }
}

fn list<T>(items: &[T], each: fn(&T) -> String) -> Option<String> {
    (!items.is_empty()).then(|| array(&items.iter().map(each).collect::<Vec<_>>()))
}

fn get_str(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_owned)
}

fn get_i64(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(Value::as_i64)
}

fn get_u64(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn get_bool(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn get_list<T>(v: &Value, k: &str, each: fn(&Value) -> Option<T>) -> Vec<T> {
    v.get(k).and_then(Value::as_array).map(|a| a.iter().filter_map(each).collect()).unwrap_or_default()
}

/// [`UsageDelta`] as JSON.
fn usage_json(d: &UsageDelta) -> String {
    Object::new()
        .str("id", &d.id)
        .num("requests", d.requests)
        .num("minute", d.minute)
        .num("minute_requests", d.minute_requests)
        .num("last_used_ms", d.last_used_ms)
        .finish()
}

fn usage_from(v: &Value) -> Option<UsageDelta> {
    Some(UsageDelta {
        id: get_str(v, "id")?,
        requests: get_u64(v, "requests"),
        minute: get_i64(v, "minute").unwrap_or(0),
        minute_requests: get_u64(v, "minute_requests"),
        last_used_ms: get_i64(v, "last_used_ms").unwrap_or(0),
    })
}

/// [`Limits`] as the wire (and storage) has them: the amount in millionths.
fn limits_json(l: &Limits) -> String {
    let n = |v: Option<i64>| v.map_or_else(|| "null".to_owned(), |n| n.to_string());
    format!(
        r#"{{"requests_per_minute":{},"order_amount_per_day_micros":{}}}"#,
        n(l.requests_per_minute.map(i64::from)),
        n(l.order_amount_per_day)
    )
}

/// [`Limits`] from its stored form, by the one reader of that form
/// (`Limits::from_fields`); a limits object that cannot be read is no
/// limit (this wire used to read each member on its own, with its own code).
fn limits_from(v: &Value) -> Limits {
    crate::stored::object(v, Limits::from_fields).unwrap_or_default()
}

/// [`Credential`] as JSON.
fn credential_json(c: &Credential) -> String {
    let mut o = Object::new().str("id", &c.id).str("sha256", &c.sha256).raw("scopes", &crate::keys::scopes_json(&c.scopes)).raw("limits", &limits_json(&c.limits));
    o = match c.until_ms {
        Some(t) => o.num("until_ms", t),
        None => o.raw("until_ms", "null"),
    };
    o.finish()
}

fn credential_from(v: &Value) -> Option<Credential> {
    Some(Credential {
        id: get_str(v, "id")?,
        sha256: get_str(v, "sha256").unwrap_or_default(),
        scopes: get_list(v, "scopes", |s| s.as_str().map(str::to_owned)),
        limits: v.get("limits").map(limits_from).unwrap_or_default(),
        until_ms: get_i64(v, "until_ms"),
    })
}

impl Request {
    /// The JSON text sent: the fields that are set, and no others.
    pub fn to_json(&self) -> String {
        Writer(Object::new())
            .str("version", &self.version)
            .raw("usage", list(&self.usage, usage_json))
            .str("id", &self.id)
            .str("sha256", &self.sha256)
            .raw("scopes", list(&self.scopes, |s| quote(s)))
            .int("expires_at_ms", self.expires_at_ms)
            .raw("limits", self.limits.as_ref().map(limits_json))
            .int("grace_secs", self.grace_secs.and_then(|g| i64::try_from(g).ok()))
            .str("current", &self.current_sha256)
            .raw("patch", self.patch.as_ref().map(crate::jsontext::to_text))
            .raw("static_keys", list(&self.static_keys, credential_json))
            .str("po_number", &self.po_number)
            .text("fingerprint", &self.fingerprint)
            .text("product_id", &self.product_id)
            .int("quantity", (self.quantity > 0).then(|| i64::try_from(self.quantity).unwrap_or(i64::MAX)))
            .int("amount", (self.amount != 0).then_some(self.amount))
            .text("request_id", &self.request_id)
            .int("cap", self.cap)
            .flag("static", self.from_static)
            .flag("held", self.held)
            .flag("created", self.created)
            .raw("outcome", self.outcome.map(|o| quote(o.as_str())))
            .int("status", (self.status > 0).then_some(i64::from(self.status)))
            .str("error", &self.error)
            .str("order_id", &self.order_id)
            .flag("reconciled", self.reconciled)
            .int("from_ms", self.from_ms)
            .int("to_ms", self.to_ms)
            .int("before", self.before)
            .int("limit", (self.limit > 0).then_some(i64::from(self.limit)))
            .0
            .finish()
    }

    /// Read a request; `None` for anything but a JSON object.
    pub fn from_json(bytes: &[u8]) -> Option<Request> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        v.as_object()?;
        Some(Request {
            version: get_str(&v, "version"),
            usage: get_list(&v, "usage", usage_from),
            id: get_str(&v, "id"),
            sha256: get_str(&v, "sha256"),
            scopes: get_list(&v, "scopes", |s| s.as_str().map(str::to_owned)),
            expires_at_ms: get_i64(&v, "expires_at_ms"),
            limits: v.get("limits").map(limits_from),
            grace_secs: v.get("grace_secs").and_then(Value::as_u64),
            current_sha256: get_str(&v, "current"),
            patch: v.get("patch").cloned(),
            static_keys: get_list(&v, "static_keys", credential_from),
            po_number: get_str(&v, "po_number"),
            fingerprint: get_str(&v, "fingerprint").unwrap_or_default(),
            product_id: get_str(&v, "product_id").unwrap_or_default(),
            quantity: get_u64(&v, "quantity"),
            amount: get_i64(&v, "amount").unwrap_or(0),
            request_id: get_str(&v, "request_id").unwrap_or_default(),
            cap: get_i64(&v, "cap"),
            from_static: get_bool(&v, "static"),
            held: get_bool(&v, "held"),
            created: get_bool(&v, "created"),
            outcome: v.get("outcome").and_then(Value::as_str).and_then(Outcome::from_name),
            status: u16::try_from(get_u64(&v, "status")).unwrap_or(0),
            error: get_str(&v, "error"),
            order_id: get_str(&v, "order_id"),
            reconciled: get_bool(&v, "reconciled"),
            from_ms: get_i64(&v, "from_ms"),
            to_ms: get_i64(&v, "to_ms"),
            before: get_i64(&v, "before"),
            limit: u32::try_from(get_u64(&v, "limit")).unwrap_or(0),
        })
    }
}

impl Reply {
    /// The JSON text answered: the fields that are set, and no others.
    pub fn to_json(&self) -> String {
        Writer(Object::new())
            .raw("error", self.error.as_ref().map(|e| serde_json::to_string(e).unwrap_or_default()))
            .str("body", &self.body)
            .str("version", &self.version)
            .raw("directory", self.directory.as_ref().map(|d| list(d, credential_json).unwrap_or_else(|| "[]".to_owned())))
            .raw("counts", list(&self.counts, usage_json))
            .flag("created", self.created)
            .flag("held", self.held)
            .0
            .finish()
    }

    /// Read a reply; `None` for anything but a JSON object (an error that
    /// cannot be read reads as `internal_error`).
    pub fn from_json(bytes: &[u8]) -> Option<Reply> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        v.as_object()?;
        Some(Reply {
            error: v.get("error").map(|e| ApiError::from_value(e).unwrap_or_else(ApiError::internal)),
            body: get_str(&v, "body"),
            version: get_str(&v, "version"),
            directory: v.get("directory").and_then(Value::as_array).map(|a| a.iter().filter_map(credential_from).collect()),
            counts: get_list(&v, "counts", usage_from),
            created: get_bool(&v, "created"),
            held: get_bool(&v, "held"),
        })
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

    fn round_trip(r: &Request) -> Request {
        Request::from_json(r.to_json().as_bytes()).unwrap()
    }

    #[test]
    fn requests_are_pinned() {
        assert_eq!(Request::default().to_json(), "{}");
        let sync = Request {
            version: Some("v1".into()),
            usage: vec![UsageDelta { id: "k".into(), requests: 2, minute: 9, minute_requests: 1, last_used_ms: 5 }],
            ..Request::default()
        };
        assert_eq!(sync.to_json(), r#"{"version":"v1","usage":[{"id":"k","requests":2,"minute":9,"minute_requests":1,"last_used_ms":5}]}"#);
        assert_eq!(round_trip(&sync), sync);
        let result = audit::Result { outcome: Outcome::Placed, status: 200, error: None, order_id: Some("9".into()), reconciled: false };
        let settle = Request { held: true, ..Request::of_attempt(&attempt()) }.with_result(result.clone());
        assert_eq!(
            settle.to_json(),
            r#"{"id":"k","po_number":"po","fingerprint":"fp","product_id":"7","quantity":1,"amount":5,"request_id":"r","held":true,"outcome":"placed","status":200,"order_id":"9"}"#
        );
        let back = round_trip(&settle);
        assert_eq!(back, settle);
        assert_eq!((back.attempt(), back.result()), (Some(attempt()), Some(result)));
        assert_eq!(Request::default().attempt(), None);
        assert_eq!(Request::default().result(), None);
        let list = Request {
            static_keys: vec![Credential { id: "ops".into(), sha256: String::new(), scopes: vec!["*".into(), "a\"b".into()], limits: Limits { requests_per_minute: Some(3), order_amount_per_day: Some(25_500_000) }, until_ms: None }],
            patch: Some(serde_json::json!({"requests_per_minute": null})),
            grace_secs: Some(60),
            cap: Some(7),
            from_static: true,
            ..Request::default()
        };
        assert_eq!(
            list.to_json(),
            r#"{"grace_secs":60,"patch":{"requests_per_minute":null},"static_keys":[{"id":"ops","sha256":"","scopes":["*","a\"b"],"limits":{"requests_per_minute":3,"order_amount_per_day_micros":25500000},"until_ms":null}],"cap":7,"static":true}"#
        );
        assert_eq!(round_trip(&list), list);
        // Fields a reader does not know are ignored (a newer worker); what
        // is not an object is no request.
        assert_eq!(Request::from_json(br#"{"later":1}"#), Some(Request::default()));
        assert_eq!(Request::from_json(b"[]"), None);
        assert_eq!(Request::from_json(b"{"), None);
    }

    #[test]
    fn reconciliations_are_pinned() {
        let order = Attempt { key: "ignored".into(), request_id: "reconcile:po:1700".into(), ..attempt() };
        let result = audit::Result { outcome: Outcome::ReconciledPlaced, status: 200, error: None, order_id: Some("9".into()), reconciled: true };
        let r = Request::of_reconciliation(&order, result.clone());
        assert_eq!(
            r.to_json(),
            r#"{"po_number":"po","fingerprint":"fp","product_id":"7","quantity":1,"amount":5,"request_id":"reconcile:po:1700","outcome":"reconciled_placed","status":200,"order_id":"9","reconciled":true}"#
        );
        let back = round_trip(&r);
        assert_eq!(back, r);
        assert_eq!(back.reconciliation(), Some((Attempt { key: String::new(), ..order.clone() }, result)));
        let not_placed = audit::Result { outcome: Outcome::ReconciledNotPlaced, status: 502, error: Some("upstream_error".into()), order_id: None, reconciled: true };
        assert_eq!(
            Request::of_reconciliation(&order, not_placed).to_json(),
            r#"{"po_number":"po","fingerprint":"fp","product_id":"7","quantity":1,"amount":5,"request_id":"reconcile:po:1700","outcome":"reconciled_not_placed","status":502,"error":"upstream_error","reconciled":true}"#
        );
        assert_eq!(Request { outcome: None, ..r.clone() }.reconciliation(), None, "no outcome, no reconciliation");
        assert_eq!(Request { po_number: None, ..r }.reconciliation(), None);
        assert_eq!(Op::from_path("/reconciled"), Some(Op::Reconciled));
        assert_eq!(Op::Reconciled.url(), "https://registry/reconciled");
    }

    #[test]
    fn new_keys_and_queries_go_across_whole() {
        let new = NewKey { id: "a".into(), scopes: vec!["*".into()], expires_at_ms: Some(9), limits: Limits { requests_per_minute: Some(3), order_amount_per_day: None } };
        let r = Request::of_new_key(new.clone(), "h".into());
        assert_eq!(round_trip(&r).new_key(), Some((new, "h".to_owned())));
        assert_eq!(Request::default().new_key(), None);
        let q = Query { from_ms: Some(1), to_ms: Some(2), key: Some("k".into()), before: Some(7), limit: 10 };
        assert_eq!(round_trip(&Request::of_query(&q)).query(), q);
        assert_eq!(Request::default().query().limit, 1, "a limit is always 1 to 200");
    }

    #[test]
    fn replies_are_pinned() {
        let r = Reply {
            version: Some("v2".into()),
            directory: Some(vec![Credential { id: "a".into(), sha256: "h".into(), scopes: vec!["*".into()], limits: Limits::default(), until_ms: Some(4) }]),
            counts: vec![UsageDelta { id: "a".into(), minute: 3, minute_requests: 4, ..UsageDelta::default() }],
            ..Reply::default()
        };
        let text = r.to_json();
        assert_eq!(
            text,
            r#"{"version":"v2","directory":[{"id":"a","sha256":"h","scopes":["*"],"limits":{"requests_per_minute":null,"order_amount_per_day_micros":null},"until_ms":4}],"counts":[{"id":"a","requests":0,"minute":3,"minute_requests":4,"last_used_ms":0}]}"#
        );
        assert_eq!(Reply::from_json(text.as_bytes()).unwrap(), r);
        let empty = Reply { directory: Some(vec![]), ..Reply::default() };
        assert_eq!(empty.to_json(), r#"{"directory":[]}"#, "an empty directory is not no directory");
        assert_eq!(Reply::from_json(empty.to_json().as_bytes()).unwrap(), empty);
        let refused = Reply::refusal(ApiError::quota_exceeded("m", 5));
        let text = refused.to_json();
        assert_eq!(text, r#"{"error":{"status":429,"code":"quota_exceeded","message":"m","retry_after_secs":5}}"#);
        assert_eq!(Reply::from_json(text.as_bytes()).unwrap(), refused);
        let granted = Reply { created: true, held: true, ..Reply::default() };
        assert_eq!(Reply::from_json(granted.to_json().as_bytes()).unwrap(), granted);
        assert_eq!(Reply::body("{}".into()).to_json(), r#"{"body":"{}"}"#);
        assert_eq!(Reply::from_json(br#"{"error":"what"}"#).unwrap().error.unwrap().code, crate::errors::ErrorCode::InternalError);
        assert_eq!(Reply::from_json(b"null"), None);
    }

    /// An order without its key (a reconciliation's request) is no key's
    /// order, and a new key without its hash is no key.
    #[test]
    fn an_order_needs_its_key_and_a_new_key_its_hash() {
        assert_eq!(Request { id: None, ..Request::of_attempt(&attempt()) }.attempt(), None);
        let new = NewKey { id: "a".into(), scopes: vec!["*".into()], expires_at_ms: None, limits: Limits::default() };
        assert_eq!(Request { sha256: None, ..Request::of_new_key(new, "h".into()) }.new_key(), None);
    }

    /// What the other side never writes is not read as something else: a
    /// usage entry or a credential without an id is dropped (not counted
    /// against, or signed in as, key ""), a status or limit past its type
    /// is none (not wrapped to 200 or 1), unreadable limits are no limits,
    /// and an audit page is never more than `MAX_PAGE` whatever the wire
    /// asks. A quantity past i64 is written saturated, not negative.
    #[test]
    fn out_of_range_and_idless_entries_are_not_misread() {
        let r = Request::from_json(
            br#"{"usage":[{"requests":1},{"id":"k","requests":2}],"static_keys":[{"sha256":"h","scopes":["*"]}],"status":65736,"limit":4294967297,"limits":"none"}"#,
        )
        .unwrap();
        assert_eq!(r.usage.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["k"]);
        assert!(r.static_keys.is_empty(), "a credential without an id is no credential");
        assert_eq!(r.status, 0, "65736 is no status (not 200)");
        assert_eq!(r.limit, 0, "2^32 + 1 is no limit (not 1)");
        assert_eq!(r.limits, Some(Limits::default()), "unreadable limits are no limits");
        let reply = Reply::from_json(br#"{"directory":[{"sha256":"h","scopes":["*"]},{"id":"a","sha256":"h"}],"counts":[{"minute":1}]}"#).unwrap();
        assert_eq!(reply.directory.unwrap().iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["a"]);
        assert!(reply.counts.is_empty());
        assert_eq!(Request { limit: 1000, ..Request::default() }.query().limit, audit::MAX_PAGE);
        assert_eq!(Request { limit: audit::MAX_PAGE, ..Request::default() }.query().limit, audit::MAX_PAGE);
        let big = Request { quantity: u64::MAX, amount: -5, ..Request::default() };
        assert_eq!(big.to_json(), format!(r#"{{"quantity":{},"amount":-5}}"#, i64::MAX));
    }

    /// A rotation goes across whole: the key it names as the one replaced
    /// (`current`), and a grace of 0 (README: 0 to 7 days; the previous
    /// key stops now, not after the default 24 h). A cap of 0 is a cap;
    /// flags written false read as false.
    #[test]
    fn a_rotation_and_zero_values_go_across_whole() {
        let rotate = Request { id: Some("a".into()), sha256: Some("new".into()), grace_secs: Some(0), current_sha256: Some("old".into()), cap: Some(0), ..Request::default() };
        assert_eq!(rotate.to_json(), r#"{"id":"a","sha256":"new","grace_secs":0,"current":"old","cap":0}"#);
        assert_eq!(round_trip(&rotate), rotate);
        let r = Request::from_json(br#"{"static":false,"held":false,"created":false,"reconciled":false}"#).unwrap();
        assert_eq!(r, Request::default(), "false is false");
        assert_eq!(Reply::from_json(br#"{"created":false,"held":false}"#).unwrap(), Reply::default());
    }
}
