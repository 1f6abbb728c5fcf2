//! The seven Plum Reward API operations plumgate forwards, and everything
//! about them that does not need I/O.
//!
//! This module owns:
//! - the operation table of contract §2: names, Xoxoday `query` strings (and
//!   the one alias seen in the wild, `getPaymentReport`), the scope a caller
//!   needs, and which edge-cache class (if any) applies;
//! - request validation and the data forwarded (`prepare`): invalid input is
//!   rejected before any upstream call, with a [`ValidationError`] whose
//!   message names the field and the rule but never echoes the value (values
//!   may be PII or secrets); the rules accept what Xoxoday accepts (numeric
//!   strings, `0`/`1`/booleans for flags, empty strings) and fill in
//!   plumgate's defaults of fields GitBook marks required (no Xoxoday page
//!   gives one);
//! - the Xoxoday envelope: building the canonical one (`build_envelope`; as
//!   the text sent upstream, `envelope_text`) and taking apart one sent by
//!   an existing client to the drop-in route (`parse_envelope`), including
//!   `plumProAPI.*` queries plumgate does not know, which admin-scoped (`*`)
//!   keys may send unvalidated ([`UNVALIDATED_SCOPE`]);
//! - the placeOrder idempotency fingerprint and the getOrderDetails body used
//!   to reconcile an order after an uncertain upstream answer (contract §5);
//! - the edge cache's key of a cacheable call ([`cache_key`]): only the
//!   fields that change Xoxoday's answer;
//! - the OpenAPI 3.1 document served at `GET /openapi.json`
//!   ([`OPENAPI_JSON`]), kept next to the rules it describes so the two are
//!   changed together (the tests check the document against the code).
//!
//! Out of scope: authentication (`auth`), HTTP status mapping, caching and
//! the calls themselves (the worker shell).
//!
//! Unknown extra fields in a request are always allowed and passed on
//! unchanged: the upstream API grows, and a gateway that rejected new fields
//! would need a release for every upstream addition. Only the fields named
//! here are checked, and only against rules that catch what is certainly
//! wrong; limits that depend on the product (quantity caps, denominations)
//! and formats Xoxoday checks itself stay upstream's job.

use crate::jsontext;
use crate::secret::sha256_hex;
use serde_json::{json, Value};
use std::fmt;

mod cache_key;
pub(crate) mod canonical;
mod validate;

pub use cache_key::{cache_key, CacheKey};
pub(crate) use validate::integer;

/// The OpenAPI 3.1 document of every plumgate route, served at
/// `GET /openapi.json`. The worker does not embed it: `scripts/build.sh`
/// writes it without its indentation to the static assets
/// (`www/openapi.json`), which the route serves, so it costs the wasm
/// nothing. Here it is for the host tests that hold it to the code.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// The `tag` every Plum Pro API envelope carries.
const TAG: &str = "plumProAPI";

/// The payment report's query as Xoxoday's MCP client sends it.
const PAYMENT_REPORT_ALIAS: &str = "plumProAPI.mutation.getPaymentReport";

/// The scope a key needs to send a `plumProAPI.*` query plumgate does not
/// know: such a call is forwarded unvalidated and uncached, so only a key
/// trusted with everything may make it.
pub const UNVALIDATED_SCOPE: &str = "*";

/// May `caller` send a query plumgate does not know? Only with
/// [`UNVALIDATED_SCOPE`], and not with an `order_amount_per_day` cap: such a
/// query may spend (a placeOrder under a name plumgate does not know, an
/// operation Xoxoday adds), and the cap must see every spend.
///
/// # Errors
/// `403 forbidden` saying which.
pub fn may_forward_unvalidated(caller: &crate::auth::Caller) -> Result<(), crate::errors::ApiError> {
    if !caller.has_scope(UNVALIDATED_SCOPE) {
        return Err(crate::errors::ApiError::forbidden_unvalidated());
    }
    if caller.limits.order_amount_per_day.is_some() {
        return Err(crate::errors::ApiError {
            message: "plumgate does not know this operation and does not forward it for a key with an order_amount_per_day cap: it could spend past the cap unseen".into(),
            ..crate::errors::ApiError::forbidden_unvalidated()
        });
    }
    Ok(())
}

/// Longest segment (`query` or `mutation`, the operation's name) of an
/// unknown query plumgate forwards.
const MAX_QUERY_SEGMENT: usize = 64;

/// The longest description of an unknown `query` that [`EnvelopeError`]
/// carries, in characters.
const UNKNOWN_QUERY_MAX_CHARS: usize = 80;

/// One Plum Reward API operation (contract §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `getFilters`: catalogue filter groups (countries, categories, …).
    GetFilters,
    /// `getVouchers`: the product catalogue, paged.
    GetVouchers,
    /// `getBalance`: the account's wallet balance.
    GetBalance,
    /// `placeOrder`: buys vouchers; spends money, never retried blindly.
    PlaceOrder,
    /// `getOrderDetails`: one order by `poNumber` or `orderId`; can resend
    /// the voucher email (`sendMailToReceiver: 1`).
    GetOrderDetails,
    /// `getOrderHistory`: orders between two dates.
    GetOrderHistory,
    /// `paymentHistory`: the payment report between two dates.
    PaymentHistory,
}

/// Which edge-cache lifetime applies to a cacheable operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheClass {
    /// getFilters and getVouchers: `CATALOG_CACHE_TTL_SECS`.
    Catalog,
    /// getBalance: `BALANCE_CACHE_TTL_SECS`.
    Balance,
}

impl Operation {
    /// Every operation, in the order of the contract's table.
    pub const ALL: [Operation; 7] = [
        Operation::GetFilters,
        Operation::GetVouchers,
        Operation::GetBalance,
        Operation::PlaceOrder,
        Operation::GetOrderDetails,
        Operation::GetOrderHistory,
        Operation::PaymentHistory,
    ];

    /// The operation named `name` in `/v1/ops/{name}` (exact, case-sensitive).
    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The operation's name, as in `/v1/ops/{name}`.
    pub fn name(self) -> &'static str {
        match self {
            Operation::GetFilters => "getFilters",
            Operation::GetVouchers => "getVouchers",
            Operation::GetBalance => "getBalance",
            Operation::PlaceOrder => "placeOrder",
            Operation::GetOrderDetails => "getOrderDetails",
            Operation::GetOrderHistory => "getOrderHistory",
            Operation::PaymentHistory => "paymentHistory",
        }
    }

    /// The Xoxoday `query` string. getBalance is the one `query.` operation;
    /// the rest are `mutation.`s, even the read-only ones.
    pub fn query(self) -> &'static str {
        match self {
            Operation::GetFilters => "plumProAPI.mutation.getFilters",
            Operation::GetVouchers => "plumProAPI.mutation.getVouchers",
            Operation::GetBalance => "plumProAPI.query.getBalance",
            Operation::PlaceOrder => "plumProAPI.mutation.placeOrder",
            Operation::GetOrderDetails => "plumProAPI.mutation.getOrderDetails",
            Operation::GetOrderHistory => "plumProAPI.mutation.getOrderHistory",
            Operation::PaymentHistory => "plumProAPI.mutation.paymentHistory",
        }
    }

    /// The operation whose [`query`](Operation::query) is exactly `query`,
    /// or whose alias it is: `plumProAPI.mutation.getPaymentReport`, the
    /// name Xoxoday's own MCP client sends for the payment report (and the
    /// key its answer comes under), is paymentHistory. The canonical query
    /// is what goes upstream.
    ///
    /// Other spellings of a known operation under another kind
    /// (`plumProAPI.mutation.getBalance`, seen in a public snippet) are not
    /// queries of this table; [`parse_envelope`] takes them as the operation
    /// they name.
    pub fn from_query(query: &str) -> Option<Operation> {
        if query == PAYMENT_REPORT_ALIAS {
            return Some(Operation::PaymentHistory);
        }
        Operation::ALL.into_iter().find(|op| op.query() == query)
    }

    /// The edge-cache class, or `None` for operations that are never cached.
    pub fn cache_class(self) -> Option<CacheClass> {
        match self {
            Operation::GetFilters | Operation::GetVouchers => Some(CacheClass::Catalog),
            Operation::GetBalance => Some(CacheClass::Balance),
            _ => None,
        }
    }

    /// The scope a caller needs for this call: `"catalog"`, `"balance"`,
    /// `"orders:read"` or `"orders:write"`.
    ///
    /// getOrderDetails with `sendMailToReceiver` set makes Xoxoday send the
    /// voucher email again, an effect with consequences, so it needs
    /// `orders:write`. The check fails safe: only an absent, `null`, `0`,
    /// `"0"` or `false` `sendMailToReceiver` counts as off, so a value that
    /// validation would reject anyway (`2`, `"yes"`, …) never lowers the
    /// scope needed, whichever of the two checks runs first.
    pub fn required_scope(self, data: &Value) -> &'static str {
        match self {
            Operation::GetFilters | Operation::GetVouchers => "catalog",
            Operation::GetBalance => "balance",
            Operation::PlaceOrder => "orders:write",
            Operation::GetOrderHistory | Operation::PaymentHistory => "orders:read",
            Operation::GetOrderDetails => {
                let resend_off = match data.get("sendMailToReceiver") {
                    None | Some(Value::Null | Value::Bool(false)) => true,
                    Some(Value::Number(n)) => n.as_f64() == Some(0.0),
                    Some(Value::String(s)) => s == "0",
                    Some(_) => false,
                };
                if resend_off {
                    "orders:read"
                } else {
                    "orders:write"
                }
            }
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rule broken by a request body.
///
/// `message` becomes the `400 invalid_request` message. It names the field
/// and describes the rule, and never contains the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// JSON path of the field, like `"data.poNumber"` or
    /// `"data.filters[0].key"`; `"data"` for the body as a whole.
    pub field: String,
    /// A human sentence naming the field and the rule it breaks.
    pub message: String,
}

impl ValidationError {
    /// A broken rule on `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ValidationError {}

/// Validate the `data` object of `op` (the body of `POST /v1/ops/{op}`).
///
/// # Errors
/// The first broken rule, checking fields in a fixed order so the same body
/// always gives the same error.
pub fn validate(op: Operation, data: &Value) -> Result<(), ValidationError> {
    validate::validate(op, data)
}

/// Validate `data` and return what goes upstream: the caller's values as
/// sent, except that a flag is written `0` / `1`, an empty array standing
/// for an object is written `{}`, and a field GitBook marks required gets
/// plumgate's default when absent or `null` (placeOrder's
/// `notifyReceiverEmail` and `notifyAdminEmail`, getOrderDetails'
/// `sendMailToReceiver`: `0`; getOrderDetails' `orderId`: `null`).
///
/// # Errors
/// As [`validate`].
pub fn prepare(op: Operation, data: Value) -> Result<Value, ValidationError> {
    validate::validate(op, &data)?;
    Ok(validate::outgoing(op, data))
}

/// What the shell needs to send a call: the data for upstream and, for
/// placeOrder, the idempotency fingerprint of the order.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The data to forward ([`prepare`]).
    pub data: Value,
    /// placeOrder: [`order_fingerprint`] of the order as the caller wrote
    /// it, before defaults are added, so a body fingerprints as it did
    /// before plumgate filled defaults in (a stored order keeps matching
    /// its retries); `None` for other operations.
    pub fingerprint: Option<String>,
}

/// [`prepare`] plus, for placeOrder, the fingerprint of the order as given.
///
/// # Errors
/// As [`validate`].
pub fn prepare_call(op: Operation, data: Value) -> Result<Prepared, ValidationError> {
    validate::validate(op, &data)?;
    let fingerprint = (op == Operation::PlaceOrder).then(|| order_fingerprint(&data));
    Ok(Prepared { data: validate::outgoing(op, data), fingerprint })
}

/// The defaults [`prepare`] fills in: (operation, field, value).
pub fn defaults() -> impl Iterator<Item = (Operation, &'static str, Value)> {
    validate::DEFAULTS
        .iter()
        .map(|(op, name, v)| (*op, *name, Value::from(*v)))
        .chain(std::iter::once((Operation::GetOrderDetails, "orderId", Value::Null)))
}

/// Build the exact Xoxoday envelope for `op` around `data`:
/// `{"query", "tag": "plumProAPI", "variables": {"data": data}}`, except
/// paymentHistory, which Xoxoday documents with a top-level
/// `"data": {"data": data}` instead of `variables`.
pub fn build_envelope(op: Operation, data: Value) -> Value {
    match op {
        Operation::PaymentHistory => json!({
            "query": op.query(),
            "tag": TAG,
            "data": { "data": data },
        }),
        _ => json!({
            "query": op.query(),
            "tag": TAG,
            "variables": { "data": data },
        }),
    }
}

/// [`build_envelope`] as the text that goes upstream, written straight
/// from `data` without building a tree around it (every forwarded call
/// does this): the fixed fields by hand, `data` by serde_json's writer, into
/// one buffer. The same bytes as `build_envelope(op, data).to_string()`:
/// keys in the order serde_json's sorted maps write them.
pub fn envelope_text(op: Operation, data: &Value) -> String {
    let mut out = String::with_capacity(160);
    let fixed = |out: &mut String| {
        out.push_str("\"query\":");
        canonical::write_string(op.query(), out);
        out.push_str(",\"tag\":");
        canonical::write_string(TAG, out);
    };
    match op {
        Operation::PaymentHistory => {
            out.push_str("{\"data\":{\"data\":");
            jsontext::write_text(data, &mut out);
            out.push_str("},");
            fixed(&mut out);
            out.push('}');
        }
        _ => {
            out.push('{');
            fixed(&mut out);
            out.push_str(",\"variables\":{\"data\":");
            jsontext::write_text(data, &mut out);
            out.push_str("}}");
        }
    }
    out
}

/// Why a Xoxoday envelope sent to the drop-in route can't be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    /// `query` is a string but names no operation of contract §2 and is not
    /// of the `plumProAPI.<kind>.<name>` form either (`404
    /// unknown_operation`). Carries a description safe to show: the query
    /// cut to 80 characters, control characters replaced.
    UnknownOperation(String),
    /// The envelope's shape is wrong (`400 invalid_request`).
    Invalid(ValidationError),
}

impl From<ValidationError> for EnvelopeError {
    fn from(e: ValidationError) -> Self {
        EnvelopeError::Invalid(e)
    }
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::UnknownOperation(q) => write!(f, "unknown operation query \"{q}\""),
            EnvelopeError::Invalid(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for EnvelopeError {}

/// What an envelope sent to the drop-in route asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedEnvelope {
    /// An operation of contract §2 and its data, to [`prepare`] and send
    /// in the canonical envelope.
    Known(Operation, Value),
    /// A `plumProAPI.<kind>.<name>` query plumgate does not know (a newer
    /// Xoxoday operation): forwarded as sent, unvalidated and uncached, for
    /// keys with [`UNVALIDATED_SCOPE`] only. Carries `<name>`, made only of
    /// letters, digits and `_`, so it is safe to log.
    Unvalidated(String),
}

/// Take apart a full Xoxoday envelope as an existing client sends it to
/// `POST /chef/v1/oauth/api`: find the operation from `query` and return its
/// `data` so the caller can [`prepare`] it and [`build_envelope`] the
/// canonical envelope again.
///
/// `data` is `variables.data`. For paymentHistory both placements are
/// accepted, `data.data` (documented) and `variables.data` (what a client
/// that treats every operation alike sends); when both are present the
/// documented `data.data` is used. `tag` and any other
/// top-level member are ignored: the canonical envelope is rebuilt from the
/// operation, so nothing else the client sent reaches Xoxoday.
///
/// A query of the form `plumProAPI.<kind>.<name>` (each part 1 to 64
/// letters, digits or `_`) that names no known operation is
/// [`ParsedEnvelope::Unvalidated`]; its envelope is not looked into.
///
/// The returned `data` is not checked beyond being present: `prepare`
/// does that, reporting fields as `data.<field>`.
///
/// # Errors
/// [`EnvelopeError::UnknownOperation`] for any other `query`;
/// [`EnvelopeError::Invalid`] when the body is not an object, `query` is
/// missing or not a string, or the data is missing.
pub fn parse_envelope(envelope: &Value) -> Result<ParsedEnvelope, EnvelopeError> {
    let Some(obj) = envelope.as_object() else {
        return Err(ValidationError::new(
            "envelope",
            "the envelope must be a JSON object with query, tag and variables",
        )
        .into());
    };
    let query = match obj.get("query") {
        Some(Value::String(q)) => q,
        Some(_) => {
            return Err(ValidationError::new("query", "query must be a string").into());
        }
        None => return Err(ValidationError::new("query", "query is required").into()),
    };
    let op = match (Operation::from_query(query), unvalidated_name(query)) {
        (Some(op), _) => op,
        // A known operation under another kind (`plumProAPI.mutation.
        // getBalance`, `plumProAPI.query.placeOrder`): that operation,
        // validated, scoped, within its budget and (placeOrder) through the
        // order ledger, sent under its documented query. Forwarded as sent,
        // it would skip all of that. So would another case of its name
        // (`plumProAPI.mutation.PlaceOrder`), should Xoxoday take it. (The
        // MCP client's `getPaymentReport` is that exact query only.)
        (None, Some(name)) => match Operation::ALL.into_iter().find(|op| op.name().eq_ignore_ascii_case(name)) {
            Some(op) => op,
            None => return Ok(ParsedEnvelope::Unvalidated(name.to_owned())),
        },
        (None, None) => return Err(EnvelopeError::UnknownOperation(safe_description(query))),
    };

    // The data in `variables.data`, or, without a `data` member, the fields
    // flat in `variables` (as some of Xoxoday's own pages send getFilters
    // and getOrderDetails; no operation has a field named `data`). It is
    // forwarded in `variables.data` either way.
    let (in_variables, flat_variables) = match obj.get("variables") {
        None | Some(Value::Null) => (None, None),
        Some(v @ Value::Object(vars)) => (vars.get("data"), Some(v)),
        Some(_) => {
            return Err(
                ValidationError::new("variables", "variables must be a JSON object").into(),
            );
        }
    };
    let data = if op == Operation::PaymentHistory {
        let (in_data, flat_data) = match obj.get("data") {
            None | Some(Value::Null) => (None, None),
            // `data.data`, or the fields flat in `data` (the payment report
            // of every category but gift cards, in Xoxoday's pages).
            Some(d @ Value::Object(outer)) => (outer.get("data"), Some(d)),
            Some(_) => {
                return Err(ValidationError::new(
                    "data",
                    "data must be a JSON object holding the operation's data in data.data",
                )
                .into());
            }
        };
        // The documented placement wins when a client sends both, and a
        // wrapped one over a flat one; only the data returned here is
        // validated and forwarded, so the other copy never reaches Xoxoday.
        match in_data.or(in_variables).or(flat_data).or(flat_variables) {
            Some(d) => d,
            None => {
                return Err(ValidationError::new(
                    "data.data",
                    "data.data is required: the paymentHistory envelope carries its data in data.data",
                )
                .into());
            }
        }
    } else {
        match in_variables.or(flat_variables) {
            Some(d) => d,
            None => {
                return Err(ValidationError::new(
                    "variables.data",
                    "variables.data is required: the envelope carries the operation's data in variables.data",
                )
                .into());
            }
        }
    };
    // `data: null` (Go's nil interface, Python's None) is no data: `{}`,
    // what the operation needs from it then named. (POST /v1/ops/… bodies
    // stay as documented: an object.)
    Ok(ParsedEnvelope::Known(op, if data.is_null() { Value::Object(serde_json::Map::new()) } else { data.clone() }))
}

/// `<name>` of a `plumProAPI.<kind>.<name>` query whose two parts are 1 to
/// [`MAX_QUERY_SEGMENT`] ASCII letters, digits or `_`.
fn unvalidated_name(query: &str) -> Option<&str> {
    let rest = query.strip_prefix("plumProAPI.")?;
    let (kind, name) = crate::text::split_once(rest, ".")?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= MAX_QUERY_SEGMENT
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    (ok(kind) && ok(name)).then_some(name)
}

/// The unknown `query` cut to [`UNKNOWN_QUERY_MAX_CHARS`] characters (the
/// last one `…` when cut), with control characters replaced, so a huge or
/// hostile value can't flood a message or a log line.
fn safe_description(query: &str) -> String {
    let clean = |c: char| if c.is_control() { '\u{FFFD}' } else { c };
    if query.chars().count() <= UNKNOWN_QUERY_MAX_CHARS {
        query.chars().map(clean).collect()
    } else {
        let mut s: String = query
            .chars()
            .take(UNKNOWN_QUERY_MAX_CHARS - 1)
            .map(clean)
            .collect();
        s.push('…');
        s
    }
}

/// Idempotency fingerprint of a valid placeOrder `data` body as the caller
/// wrote it: lowercase hex SHA-256 of its canonical JSON (object keys sorted
/// recursively by their UTF-8 bytes, no whitespace, numbers with an integral
/// value written as integers), so the same logical order has one fingerprint
/// whatever the key order or `10` vs `10.0`.
///
/// Before hashing, each value form is read as its value: `quantity`,
/// `denomination` and a `productId` of digits given as strings (`"25"`,
/// `"25.0"`) hash like the numbers (`25`), a numeric `poNumber` like its
/// text, a flag in any form like `0` / `1`, `[]` for an object like `{}`.
/// A body whose values are already in those forms hashes exactly as it
/// always did. Everything else is hashed whole, unknown fields included: two
/// requests that would send different orders upstream are different orders.
/// Defaults are not added first, so a field left out and the same field
/// given its default stay different bodies, as they always were.
pub fn order_fingerprint(data: &Value) -> String {
    sha256_hex(canonical::to_canonical_json(&fingerprint_form(data)).as_bytes())
}

/// `data` with placeOrder's numeric fields read as numbers (see
/// [`order_fingerprint`]).
fn fingerprint_form(data: &Value) -> Value {
    let Value::Object(_) = data else {
        return data.clone();
    };
    let mut obj = validate::documented_forms(Operation::PlaceOrder, data.clone());
    for name in ["productId", "quantity", "denomination"] {
        if let Some(v) = obj.get_mut(name) {
            if let Some(n) = v.as_str().and_then(validate::decimal_string_number) {
                *v = Value::Number(n);
            }
        }
    }
    if let Some(Value::Number(n)) = obj.get("poNumber") {
        let text = n.to_string();
        obj.insert("poNumber".to_owned(), Value::String(text));
    }
    Value::Object(obj)
}

/// The value of a number, or of a decimal string (`"25"`, `"25.50"`), as
/// validation reads amounts; `None` for anything else.
pub fn decimal_value(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => validate::decimal_string_number(s).and_then(|n| n.as_f64()),
        _ => None,
    }
}

/// placeOrder's `poNumber` as text: a string as is, a number as JSON writes
/// it. `None` when absent or of another type.
pub fn po_number(data: &Value) -> Option<String> {
    match data.get("poNumber")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An amount in millionths of its unit: a JSON number above 0, or a
/// decimal string (`"25"`, `"25.50"`) above 0, the forms a placeOrder
/// `denomination` takes. Rounded to the nearest millionth, saturating.
/// `None` for anything else.
pub fn amount_micros(value: &Value) -> Option<i64> {
    let f = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => validate::decimal_string_number(s)?.as_f64()?,
        _ => return None,
    };
    // `as` saturates; NaN cannot come out of JSON.
    #[allow(clippy::cast_possible_truncation)]
    let micros = (f * 1_000_000.0).round() as i64;
    (f > 0.0 && micros > 0).then_some(micros)
}

/// A count as Xoxoday takes it: a JSON integer or a string of digits.
pub fn count_of(value: &Value) -> Option<u64> {
    validate::whole_number(value)
}

/// What a valid placeOrder `data` spends, in millionths of its currency:
/// `denomination` × `quantity` (each in any form Xoxoday accepts),
/// saturating. A denomination above 0 that rounds to no millionth counts
/// as one (it still spends: the spend cap must not read it as free).
/// `None` when either is missing or unreadable.
pub fn order_amount_micros(data: &Value) -> Option<i64> {
    let given = data.get("denomination")?;
    let denomination = amount_micros(given).or_else(|| decimal_value(given).filter(|f| *f > 0.0).map(|_| 1))?;
    let quantity = i64::try_from(count_of(data.get("quantity")?)?).unwrap_or(i64::MAX);
    Some(denomination.saturating_mul(quantity))
}

/// An amount in millionths as the JSON number it stands for, exactly
/// (`25_500_000` is `25.5`, `3` is `0.000003`).
pub fn micros_text(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    let (whole, frac) = (m / 1_000_000, m % 1_000_000);
    if frac == 0 {
        format!("{sign}{whole}")
    } else {
        let digits = format!("{frac:06}");
        format!("{sign}{whole}.{}", crate::text::trim_end(&digits, b'0'))
    }
}

/// A finite amount as decimal text for a message: to the millionth
/// (`950.5`, `1000`, `0.1`), without `f64`'s `Display`, whose float-printing
/// machinery is ~9 KB of wasm that only the balance alert's two messages
/// used. From ±9·10⁹ up, where an `f64` no longer holds every millionth, it
/// is rounded to a whole number, saturating at `i64`'s range.
pub fn decimal_text(v: f64) -> String {
    // Below 2⁵³ millionths every micro is exact.
    const MICROS_EXACT: f64 = 9.0e9;
    if v.abs() < MICROS_EXACT {
        micros_text((v * 1e6).round() as i64)
    } else {
        (v.round() as i64).to_string()
    }
}

/// The getOrderDetails `data` that looks an order up by its `poNumber`,
/// used to reconcile a placeOrder whose outcome is unknown (timeout,
/// transport error or 5xx; contract §5). It never resends the voucher email.
pub fn reconcile_request(po_number: &str) -> Value {
    json!({ "poNumber": po_number, "orderId": null, "sendMailToReceiver": 0 })
}

#[cfg(test)]
mod tests;
