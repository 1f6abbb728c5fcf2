//! The validation rules of each operation's `data`, and the data that then
//! goes upstream.
//!
//! The rule is "accept what Xoxoday accepts": a field is refused only when
//! it is certainly wrong — a required field missing, a value that cannot
//! be a number where Xoxoday wants one, a quantity below 1, a date that is
//! not a date, a JSON type no documented form of the field has. Limits that
//! depend on the product (quantity caps, denominations, phone numbers) and
//! formats Xoxoday checks itself (email, contact, poNumber characters) stay
//! upstream's job; the only size bound plumgate needs is the 64 KiB body.
//!
//! Value forms, as existing clients send them:
//! - a *count* (`limit`, `page`, `quantity`): a JSON integer (`10`, `10.0`)
//!   or a string of digits (`"10"`), at least 1 (`limit` and `page` of
//!   getVouchers, getOrderHistory and paymentHistory: at least 0, which
//!   published clients send);
//! - an *amount* (`denomination`): a number or a decimal string (`"25"`,
//!   `"25.50"`) above 0;
//! - a *flag* (`notifyReceiverEmail`, `exchangeRate`, …): `0` / `1`,
//!   `"0"` / `"1"` or `false` / `true`;
//! - *text* (`email`, `tag`, `contact`, …): a string or a number (`""`
//!   included);
//! - an *object* (`data`, `sort`, `userMeta`, …): a JSON object, or an empty
//!   array, which is how PHP encodes an empty associative array.
//!
//! An optional field may be absent or `null`; a required one may be neither.
//! Any field, known or not, nests at most 64 levels of objects and arrays.
//! Unknown fields are never looked at otherwise. Messages name the field and the rule,
//! never the value. `openapi.json` states every rule here as a schema; the
//! host tests keep the two in step.
//!
//! [`outgoing`] turns valid data into what is forwarded: the caller's values
//! as sent (Xoxoday accepts them, and rewriting numbers could change them —
//! a merchandise `productId` with leading zeros, an `orderId` beyond 2^53;
//! a number is the same JSON number, written from its parsed value: `1e1`
//! as `10.0`, a decimal of many digits within a step of the caller's),
//! except that a flag is sent in its documented form `0` / `1`, an empty
//! array standing for an object is sent as `{}` (an empty object standing
//! for getVouchers' `filters` as `[]`), and a field GitBook marks required
//! is filled in when absent (plumgate's default: no Xoxoday page gives one).

use super::{Operation, ValidationError};
use serde_json::{Map, Value};

type Obj = Map<String, Value>;
type Result<T = ()> = std::result::Result<T, ValidationError>;

/// The price filters whose value must be a number (or decimal string):
/// a bound. `price` itself is text: Xoxoday's filter table types it
/// "String, price range filters" (getFilters' ranges, such as "0 - 1000").
pub(super) const BOUND_FILTERS: [&str; 2] = ["minPrice", "maxPrice"];

/// placeOrder's flat merchandise shipping fields.
const SHIPPING_FIELDS: [&str; 10] = [
    "shippingFirstName",
    "shippingLastName",
    "shippingContactNo",
    "shippingCompany",
    "shippingAddress1",
    "shippingAddress2",
    "shippingCity",
    "shippingCountry",
    "shippingState",
    "shippingPostcode",
];

/// Defaults for fields GitBook marks required, filled in when absent (or
/// `null`): no email to the receiver or the admin, no voucher resend, and
/// `orderId: null` ("look the order up by poNumber"). The values of GitBook's
/// and the API reference's own examples, and the ones that cause no effect.
pub(super) const DEFAULTS: [(Operation, &str, i8); 3] = [
    (Operation::PlaceOrder, "notifyReceiverEmail", 0),
    (Operation::PlaceOrder, "notifyAdminEmail", 0),
    (Operation::GetOrderDetails, "sendMailToReceiver", 0),
];

/// Flags forwarded as `0` / `1`, per operation.
const FLAGS: [(Operation, &str); 4] = [
    (Operation::GetVouchers, "exchangeRate"),
    (Operation::PlaceOrder, "notifyReceiverEmail"),
    (Operation::PlaceOrder, "notifyAdminEmail"),
    (Operation::GetOrderDetails, "sendMailToReceiver"),
];

/// Object fields where an empty array stands for `{}`, per operation.
const OBJECTS: [(Operation, &str); 3] = [
    (Operation::GetVouchers, "sort"),
    (Operation::PlaceOrder, "userMeta"),
    (Operation::PlaceOrder, "loungeData"),
];

pub(super) fn validate(op: Operation, data: &Value) -> Result {
    let empty = Obj::new();
    let obj = match data {
        Value::Object(obj) => obj,
        Value::Array(a) if a.is_empty() => &empty,
        _ => {
            return Err(ValidationError::new(
                "data",
                "data must be a JSON object (or an empty array)",
            ))
        }
    };
    // Every field, unknown ones included, nests at most MAX_NESTING deep:
    // plumgate wraps the data a few levels deeper (the order ledger's
    // request, Xoxoday's envelope), and serde_json reads no text nested
    // past 128 levels. Deeper than this, a valid-looking order failed
    // inside plumgate (a 500) instead of being refused here.
    if deeper(data, MAX_NESTING) {
        return Err(broken("data", "nested at most 64 levels deep"));
    }
    match op {
        Operation::GetFilters => {
            for name in ["filterGroupCode", "includeFilters", "excludeFilters"] {
                optional(obj, name, text)?;
            }
            Ok(())
        }
        // Nothing is required and nothing is known: Xoxoday takes `{}`.
        Operation::GetBalance => Ok(()),
        Operation::GetVouchers => get_vouchers(obj),
        Operation::PlaceOrder => place_order(obj),
        Operation::GetOrderDetails => get_order_details(obj),
        Operation::GetOrderHistory => {
            date_range(obj)?;
            paging(obj)?;
            optional(obj, "tag", text)
        }
        Operation::PaymentHistory => {
            date_range(obj)?;
            paging(obj)
        }
    }
}

/// The data forwarded for valid `data` (see the module docs): written in
/// the documented forms, defaults added.
pub(super) fn outgoing(op: Operation, data: Value) -> Value {
    let mut obj = documented_forms(op, data);
    for (_, name, default) in DEFAULTS.iter().filter(|(o, _, _)| *o == op) {
        let absent = obj.get(*name).is_none_or(Value::is_null);
        if absent {
            obj.insert((*name).to_owned(), Value::from(*default));
        }
    }
    if op == Operation::GetOrderDetails && !obj.contains_key("orderId") {
        obj.insert("orderId".to_owned(), Value::Null);
    }
    Value::Object(obj)
}

/// Valid `data` with its flags written `0` / `1`, an empty array that
/// stands for an object written `{}` and empty `filters` written `[]`;
/// nothing added.
pub(super) fn documented_forms(op: Operation, data: Value) -> Obj {
    let mut obj = match data {
        Value::Object(obj) => obj,
        // Validation admits only an empty array besides an object.
        _ => Obj::new(),
    };
    for (_, name) in FLAGS.iter().filter(|(o, _)| *o == op) {
        if let Some(v) = obj.get_mut(*name) {
            if let Some(f) = flag_value(v) {
                *v = Value::from(f);
            }
        }
    }
    for (_, name) in OBJECTS.iter().filter(|(o, _)| *o == op) {
        if let Some(v) = obj.get_mut(*name) {
            if v.as_array().is_some_and(Vec::is_empty) {
                *v = Value::Object(Obj::new());
            }
        }
    }
    if op == Operation::GetVouchers {
        if let Some(v) = obj.get_mut("filters").filter(|v| v.as_object().is_some_and(Obj::is_empty)) {
            *v = Value::Array(Vec::new());
        }
    }
    obj
}

// ---------------------------------------------------------------- operations

// `limit` and `page` are optional: GitBook stars them, but the API
// reference's schema requires neither, and a published Laravel client
// sends neither; without them Xoxoday judges the call.
fn get_vouchers(obj: &Obj) -> Result {
    paging(obj)?;
    optional(obj, "includeProducts", text)?;
    optional(obj, "excludeProducts", text)?;
    optional(obj, "exchangeRate", flag)?;
    optional(obj, "sort", |v, f| {
        let Some(sort) = object(v, f)? else {
            return Ok(());
        };
        for member in ["field", "order"] {
            let path = format!("{f}.{member}");
            match sort.get(member) {
                None | Some(Value::Null | Value::String(_)) => {}
                Some(_) => return Err(broken(&path, "a string")),
            }
        }
        Ok(())
    })?;
    optional(obj, "filters", filters)
}

/// `filters`: an array of `{key, value}`; an empty object too, which a
/// published JavaScript client sends for "no filters" (forwarded as `[]`).
fn filters(value: &Value, path: &str) -> Result {
    let items = match value {
        Value::Array(items) => items.as_slice(),
        Value::Object(o) if o.is_empty() => &[],
        _ => return Err(broken(path, "an array of {key, value} filters")),
    };
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Some(filter) = item.as_object() else {
            return Err(broken(&at, "an object with a key and a value"));
        };
        let key_path = format!("{at}.key");
        let key = match filter.get("key") {
            None | Some(Value::Null) => return Err(missing(&key_path)),
            Some(Value::String(k)) => k.as_str(),
            Some(_) => return Err(broken(&key_path, "a string")),
        };
        let value_path = format!("{at}.value");
        let value = match filter.get("value") {
            None | Some(Value::Null) => return Err(missing(&value_path)),
            Some(v) => v,
        };
        if BOUND_FILTERS.contains(&key) {
            if !is_price(value) {
                return Err(broken(
                    &value_path,
                    &format!("a number of at least 0 (or a decimal string) for a {key} filter"),
                ));
            }
        } else if !(value.is_string() || value.is_number()) {
            return Err(broken(&value_path, "a string or a number"));
        }
    }
    Ok(())
}

fn place_order(obj: &Obj) -> Result {
    required(obj, "productId", |v, f| match v {
        Value::String(s) if !s.is_empty() => Ok(()),
        Value::Number(_) if integer(v).is_some_and(|n| n >= 1) => Ok(()),
        _ => Err(broken(
            f,
            "a positive integer, a string of digits, or a non-empty string for merchandise",
        )),
    })?;
    required(obj, "quantity", count)?;
    required(obj, "denomination", |v, f| {
        if is_amount(v) {
            Ok(())
        } else {
            Err(broken(f, "a number greater than 0 (or a decimal string)"))
        }
    })?;
    // Blank is empty: Xoxoday answers "poNumber is required" to it, which
    // reads like a duplicate's "validation error" and would be checked.
    // A number is taken only while it is exact: beyond 2^53, or with a
    // fraction, two different numbers read as one (here, and in any
    // JavaScript reader upstream) and would be one order. Written `5.0`
    // or `5e0` it is refused too: the poNumber is kept as the number's
    // text, so it would not be the order `5` is.
    required(obj, "poNumber", |v, f| match v {
        Value::String(s) if !s.trim().is_empty() => Ok(()),
        Value::Number(n) if n.as_u64().is_some_and(|n| n < 1 << 53) => Ok(()),
        _ => Err(broken(f, "a non-empty string (or a whole number below 2^53, in digits only)")),
    })?;
    for name in ["email", "contact", "tag"] {
        optional(obj, name, text)?;
    }
    optional(obj, "notifyReceiverEmail", flag)?;
    optional(obj, "notifyAdminEmail", flag)?;
    for name in ["userMeta", "loungeData"] {
        optional(obj, name, |v, f| object(v, f).map(drop))?;
    }
    for name in SHIPPING_FIELDS {
        optional(obj, name, text)?;
    }
    Ok(())
}

fn get_order_details(obj: &Obj) -> Result {
    let po_set = match obj.get("poNumber") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(_)) => true,
        Some(_) => {
            return Err(broken(
                "data.poNumber",
                "a string (or null or empty when orderId is used)",
            ));
        }
    };
    let order_id_set = match obj.get("orderId") {
        None | Some(Value::Null) => false,
        Some(v) => match whole_number(v) {
            Some(n) => n > 0,
            None => {
                return Err(broken(
                    "data.orderId",
                    "a positive integer or a string of digits (or null, 0 or \"0\" when poNumber is used)",
                ));
            }
        },
    };
    if !po_set && !order_id_set {
        return Err(ValidationError::new(
            "data.poNumber",
            "data.poNumber or data.orderId is required to name the order",
        ));
    }
    optional(obj, "sendMailToReceiver", flag)
}

/// `startDate` and `endDate`, each optional: the API reference requires
/// neither, and Xoxoday's own MCP client sends only `limit` and `page`.
fn date_range(obj: &Obj) -> Result {
    let start = optional_date(obj, "startDate")?;
    let end = optional_date(obj, "endDate")?;
    // Valid YYYY-MM-DD strings order as the dates they name.
    if start.zip(end).is_some_and(|(start, end)| start > end) {
        return Err(ValidationError::new(
            "data.endDate",
            "data.endDate must not be before data.startDate",
        ));
    }
    Ok(())
}

/// A date, or none: absent, `null` or `""` (Go's zero value: the
/// helsinki-systems/xoxoday client sends `""` for a date its caller did not
/// set), forwarded as sent for Xoxoday to judge.
fn optional_date<'a>(obj: &'a Obj, name: &str) -> Result<Option<&'a str>> {
    match obj.get(name) {
        Some(Value::String(s)) if is_calendar_date(s) => Ok(Some(s)),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(_) => Err(broken(&format!("data.{name}"), "a calendar date written YYYY-MM-DD")),
    }
}

/// getOrderHistory's and paymentHistory's `limit` and `page`: from 0, as
/// getVouchers' ([`count_from_zero`]): the helsinki-systems/xoxoday client
/// sends both as `0` unless its caller sets them (Go's zero values).
fn paging(obj: &Obj) -> Result {
    optional(obj, "limit", count_from_zero)?;
    optional(obj, "page", count_from_zero)
}

// ------------------------------------------------------------ value forms

/// Check `obj[name]` with `check` (given the value and its path); absent or
/// `null` is "missing".
fn required(obj: &Obj, name: &str, check: fn(&Value, &str) -> Result) -> Result {
    let path = format!("data.{name}");
    match obj.get(name) {
        None | Some(Value::Null) => Err(missing(&path)),
        Some(v) => check(v, &path),
    }
}

/// Check `obj[name]` with `check` unless it is absent or `null`.
fn optional(obj: &Obj, name: &str, check: fn(&Value, &str) -> Result) -> Result {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => check(v, &format!("data.{name}")),
    }
}

fn missing(path: &str) -> ValidationError {
    ValidationError::new(path, format!("{path} is required"))
}

/// `path` breaks `rule`, a noun phrase saying what the field must be.
fn broken(path: &str, rule: &str) -> ValidationError {
    ValidationError::new(path, format!("{path} must be {rule}"))
}

/// Text: a string or a number.
fn text(value: &Value, path: &str) -> Result {
    if value.is_string() || value.is_number() {
        Ok(())
    } else {
        Err(broken(path, "a string"))
    }
}

/// A count: an integer of at least 1, as a number or a string of digits.
fn count(value: &Value, path: &str) -> Result {
    match whole_number(value) {
        Some(n) if n >= 1 => Ok(()),
        _ => Err(broken(
            path,
            "an integer of at least 1 (a number or a string of digits)",
        )),
    }
}

/// `limit` and `page` (getVouchers', and the histories' through
/// [`paging`]): an integer of at least 0. Xoxoday
/// documents pages from 1, but published clients send `0`: `page` on every
/// call (blueromans/XoxoDay's `voucher.json`, reading the first page), and
/// `limit` with it (PHP scripts calling production with `'limit'=>'0',
/// 'page'=>'0'`). Forwarded as sent, for Xoxoday to read.
fn count_from_zero(value: &Value, path: &str) -> Result {
    match whole_number(value) {
        Some(_) => Ok(()),
        None => Err(broken(path, "an integer of at least 0 (a number or a string of digits)")),
    }
}

/// A flag: `0` / `1`, `"0"` / `"1"` or `false` / `true`.
fn flag(value: &Value, path: &str) -> Result {
    match flag_value(value) {
        Some(_) => Ok(()),
        None => Err(broken(path, "0 or 1 (a number, a one-digit string or a boolean)")),
    }
}

/// The value of a valid flag.
pub(super) fn flag_value(value: &Value) -> Option<u8> {
    match value {
        Value::Bool(b) => Some(u8::from(*b)),
        Value::String(s) if s == "0" => Some(0),
        Value::String(s) if s == "1" => Some(1),
        Value::Number(_) => match integer(value) {
            Some(0) => Some(0),
            Some(1) => Some(1),
            _ => None,
        },
        _ => None,
    }
}

/// How deep a field of the data may nest (itself counted).
const MAX_NESTING: usize = 64;

/// `value` has more than `levels` levels of arrays and objects (`{}` is
/// one level, a scalar none).
fn deeper(value: &Value, levels: usize) -> bool {
    match value {
        Value::Array(a) => levels == 0 || a.iter().any(|v| deeper(v, levels - 1)),
        Value::Object(o) => levels == 0 || o.values().any(|v| deeper(v, levels - 1)),
        _ => false,
    }
}

/// An object (`Some`), or an empty array standing for an empty one (`None`).
fn object<'a>(value: &'a Value, path: &str) -> Result<Option<&'a Obj>> {
    match value {
        Value::Object(o) => Ok(Some(o)),
        Value::Array(a) if a.is_empty() => Ok(None),
        _ => Err(broken(path, "a JSON object")),
    }
}

/// A whole number of at least 0: a JSON integer (`10`, `10.0`) or a string
/// of ASCII digits. `None` for anything else. Values beyond `u64` saturate.
pub(super) fn whole_number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(_) => integer(value),
        Value::String(s) if is_digits(s) => Some(
            s.bytes()
                .fold(0u64, |acc, b| acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))),
        ),
        _ => None,
    }
}

/// The value of a non-negative JSON integer (`10` or `10.0`, both integers
/// to JSON Schema); `None` for negatives, fractions and non-numbers.
/// Integral floats beyond `u64` saturate to `u64::MAX`, as JSON Schema's
/// `minimum` alone would judge them. (Also the key routes' reader of their
/// integer members: `keys`, `quota`.)
pub(crate) fn integer(value: &Value) -> Option<u64> {
    let n = value.as_number()?;
    if let Some(u) = n.as_u64() {
        return Some(u);
    }
    let f = n.as_f64()?;
    if f.fract() == 0.0 && f >= 0.0 {
        // `as` saturates: exact below 2^53, u64::MAX above u64's range.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let u = f as u64;
        Some(u)
    } else {
        None
    }
}

/// A positive amount: a number above 0, or a decimal string
/// (`^[0-9]+(\.[0-9]+)?$`) whose value is above 0.
fn is_amount(value: &Value) -> bool {
    decimal_sign(value) == Some(std::cmp::Ordering::Greater)
}

/// A price filter value: a number or decimal string of at least 0.
fn is_price(value: &Value) -> bool {
    decimal_sign(value).is_some_and(std::cmp::Ordering::is_ge)
}

/// How a JSON number, or a decimal string (digits, optionally a dot and
/// more digits; no sign, exponent or whitespace), compares with 0. A string
/// is judged by its digits, not by parsing, so `"0.000…01"` is above 0
/// however long it is.
fn decimal_sign(value: &Value) -> Option<std::cmp::Ordering> {
    match value {
        Value::Number(n) => n.as_f64()?.partial_cmp(&0.0),
        Value::String(s) if is_decimal_text(s) => Some(if s.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }),
        _ => None,
    }
}

/// Digits, optionally a dot and more digits.
fn is_decimal_text(s: &str) -> bool {
    match crate::text::split_once(s, ".") {
        Some((int, frac)) => is_digits(int) && is_digits(frac),
        None => is_digits(s),
    }
}

/// The number a decimal string writes (`"025.50"` → 25.5), read by
/// serde_json as the JSON number it is once leading zeros are gone (through
/// the `from_slice` to `Value` every request body already takes, so no
/// second parser is compiled into the worker); `None` for anything else, or
/// a value beyond `f64`.
pub(super) fn decimal_string_number(s: &str) -> Option<serde_json::Number> {
    if !is_decimal_text(s) {
        return None;
    }
    // JSON numbers have no leading zeros.
    let trimmed = crate::text::trim_start(s, b'0');
    let json = if trimmed.is_empty() || trimmed.starts_with('.') { format!("0{trimmed}") } else { trimmed.to_owned() };
    match serde_json::from_slice::<Value>(json.as_bytes()) {
        Ok(Value::Number(n)) => Some(n),
        _ => None,
    }
}

/// One or more ASCII digits.
fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYY-MM-DD` naming a real day of the (proleptic) Gregorian calendar,
/// years 0001 to 9999 (the one date reader, `time::parse_rfc3339`, which
/// takes a date alone; there is no year 0, and JSON Schema's `format: date`
/// checkers reject it too).
fn is_calendar_date(s: &str) -> bool {
    s.len() == 10 && crate::time::parse_rfc3339(s).is_some()
}
