//! The validation rules of each operation's `data`.
//!
//! Each operation has one function that checks its known fields in a fixed
//! order and returns the first broken rule. Unknown fields are never looked
//! at. An optional field is one that may be *absent*; an explicit `null` is
//! a value and must satisfy the field's rule (except where Xoxoday documents
//! `null` as meaningful: getOrderDetails' `orderId` and `poNumber`), so what
//! reaches Xoxoday always has the documented types.
//!
//! An integer is what JSON Schema calls one, a number with no fractional
//! part: `10` and `10.0` (the same number to Xoxoday's JavaScript, and what
//! schema-driven clients and fuzzers may send for `"type": "integer"`), but
//! not `10.5`, `"10"` or `true`. Accepting exactly the values `openapi.json`
//! admits keeps the document honest.
//!
//! Lengths are counted in Unicode scalar values, as JSON Schema's
//! `maxLength` counts them, so `openapi.json` states the same limits.
//!
//! Messages name the field and the rule, never the value.

use super::{Operation, ValidationError};
use serde_json::{Map, Value};

type Obj = Map<String, Value>;
type Result<T = ()> = std::result::Result<T, ValidationError>;

/// `limit` bound shared by getVouchers, getOrderHistory and paymentHistory.
const MAX_LIMIT: u64 = 500;
/// Most filters accepted in one getVouchers call.
const MAX_FILTERS: usize = 20;
/// getFilters string fields.
const MAX_FILTER_STRING: usize = 200;
/// placeOrder `productId` given as a string (merchandise).
const MAX_PRODUCT_ID: usize = 64;
/// placeOrder `quantity`: upstream enforces per-product caps (usually 10);
/// this only stops nonsense.
const MAX_QUANTITY: u64 = 100;
/// `poNumber` (the idempotency key).
const MAX_PO_NUMBER: usize = 64;
/// RFC 5321 path limit.
const MAX_EMAIL: usize = 254;
/// placeOrder `contact`.
const MAX_CONTACT: usize = 20;
/// placeOrder `tag`.
const MAX_TAG: usize = 100;
/// getOrderDetails `orderId` given as a numeric string.
const MAX_ORDER_ID_DIGITS: usize = 20;

/// getVouchers filter keys Xoxoday documents.
const FILTER_KEYS: [&str; 7] = [
    "productName",
    "country",
    "price",
    "minPrice",
    "maxPrice",
    "currencyCode",
    "deliveryType",
];

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

pub(super) fn validate(op: Operation, data: &Value) -> Result {
    let Some(obj) = data.as_object() else {
        return Err(ValidationError::new("data", "data must be a JSON object"));
    };
    match op {
        Operation::GetFilters => get_filters(obj),
        // Nothing is required and nothing is known: Xoxoday takes `{}`.
        Operation::GetBalance => Ok(()),
        Operation::GetVouchers => get_vouchers(obj),
        Operation::PlaceOrder => place_order(obj),
        Operation::GetOrderDetails => get_order_details(obj),
        Operation::GetOrderHistory => {
            date_range(obj)?;
            paging(obj)?;
            optional(obj, "tag", |v, f| string(v, f, "a string").map(drop))
        }
        Operation::PaymentHistory => {
            date_range(obj)?;
            paging(obj)
        }
    }
}

// ---------------------------------------------------------------- operations

fn get_filters(obj: &Obj) -> Result {
    for name in ["filterGroupCode", "includeFilters", "excludeFilters"] {
        optional(obj, name, |v, f| {
            let rule = format!("a string of at most {MAX_FILTER_STRING} characters");
            let s = string(v, f, &rule)?;
            max_chars(s, MAX_FILTER_STRING, f, &rule)
        })?;
    }
    Ok(())
}

fn get_vouchers(obj: &Obj) -> Result {
    required(obj, "limit", |v, f| int_range(v, f, 1, Some(MAX_LIMIT)))?;
    required(obj, "page", |v, f| int_range(v, f, 1, None))?;
    for name in ["includeProducts", "excludeProducts"] {
        optional(obj, name, |v, f| {
            let rule = "a string of comma-separated product ids (digits only), or empty";
            let s = string(v, f, rule)?;
            if s.is_empty() || s.split(',').all(is_digits) {
                Ok(())
            } else {
                Err(broken(f, rule))
            }
        })?;
    }
    optional(obj, "exchangeRate", flag)?;
    optional(obj, "sort", |v, f| {
        let rule = "an object with a string field and an order of ASC or DESC";
        let Some(sort) = v.as_object() else {
            return Err(broken(f, rule));
        };
        let field = format!("{f}.field");
        match sort.get("field") {
            Some(v) => string(v, &field, "a string").map(drop)?,
            None => return Err(missing(&field)),
        }
        let order = format!("{f}.order");
        match sort.get("order").map(Value::as_str) {
            Some(Some("ASC" | "DESC")) => Ok(()),
            Some(_) => Err(broken(&order, "ASC or DESC")),
            None => Err(missing(&order)),
        }
    })?;
    optional(obj, "filters", filters)
}

fn filters(value: &Value, path: &str) -> Result {
    let Some(items) = value.as_array() else {
        return Err(broken(
            path,
            &format!("an array of at most {MAX_FILTERS} filters"),
        ));
    };
    if items.len() > MAX_FILTERS {
        return Err(broken(
            path,
            &format!("an array of at most {MAX_FILTERS} filters"),
        ));
    }
    let mut keys = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Some(filter) = item.as_object() else {
            return Err(broken(&at, "an object with a key and a value"));
        };
        let key_path = format!("{at}.key");
        let key = match filter.get("key") {
            None => return Err(missing(&key_path)),
            Some(k) => match k.as_str() {
                Some(k) if FILTER_KEYS.contains(&k) => k,
                _ => {
                    return Err(broken(
                        &key_path,
                        &format!("one of {}", FILTER_KEYS.join(", ")),
                    ));
                }
            },
        };
        let value_path = format!("{at}.value");
        let Some(value) = filter.get("value") else {
            return Err(missing(&value_path));
        };
        match key {
            "deliveryType" => match value.as_str() {
                Some("realtime" | "delayed") => {}
                _ => {
                    return Err(broken(
                        &value_path,
                        "realtime or delayed for a deliveryType filter",
                    ))
                }
            },
            "currencyCode" => match value.as_str() {
                Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => {}
                _ => {
                    return Err(broken(
                        &value_path,
                        "a currency code of 3 uppercase letters for a currencyCode filter",
                    ));
                }
            },
            _ => {
                if !(value.is_string() || value.is_number()) {
                    return Err(broken(&value_path, "a string or a number"));
                }
            }
        }
        keys.push(key);
    }
    // Xoxoday applies a price bound only together with its currency.
    if !keys.contains(&"currencyCode") {
        if let Some(i) = keys
            .iter()
            .position(|k| matches!(*k, "minPrice" | "maxPrice"))
        {
            return Err(ValidationError::new(
                format!("{path}[{i}].key"),
                format!(
                    "{path}[{i}].key is {}: a minPrice or maxPrice filter needs a currencyCode filter in the same request",
                    keys[i]
                ),
            ));
        }
    }
    Ok(())
}

fn place_order(obj: &Obj) -> Result {
    required(obj, "productId", |v, f| {
        let rule = format!(
            "a positive integer, or a non-empty string of at most {MAX_PRODUCT_ID} characters for merchandise"
        );
        match v {
            Value::String(s) if !s.is_empty() => max_chars(s, MAX_PRODUCT_ID, f, &rule),
            Value::Number(_) if integer(v).is_some_and(|n| n >= 1) => Ok(()),
            _ => Err(broken(f, &rule)),
        }
    })?;
    required(obj, "quantity", |v, f| {
        int_range(v, f, 1, Some(MAX_QUANTITY))
    })?;
    required(obj, "denomination", |v, f| match v.as_f64() {
        Some(d) if d > 0.0 => Ok(()),
        _ => Err(broken(f, "a number greater than 0")),
    })?;
    required(obj, "poNumber", po_number)?;
    optional(obj, "email", |v, f| {
        let rule = format!("a valid email address of at most {MAX_EMAIL} characters");
        let s = string(v, f, &rule)?;
        max_chars(s, MAX_EMAIL, f, &rule)?;
        if is_plausible_email(s) {
            Ok(())
        } else {
            Err(broken(f, &rule))
        }
    })?;
    optional(obj, "contact", |v, f| {
        let rule = format!(
            "a phone number like +1-4705000000 ('+', country code, '-', number; at most {MAX_CONTACT} characters)"
        );
        let s = string(v, f, &rule)?;
        max_chars(s, MAX_CONTACT, f, &rule)?;
        let ok = s
            .strip_prefix('+')
            .and_then(|rest| rest.split_once('-'))
            .is_some_and(|(cc, number)| is_digits(cc) && is_digits(number));
        if ok {
            Ok(())
        } else {
            Err(broken(f, &rule))
        }
    })?;
    optional(obj, "tag", |v, f| {
        let rule = format!("a string of at most {MAX_TAG} characters");
        let s = string(v, f, &rule)?;
        max_chars(s, MAX_TAG, f, &rule)
    })?;
    optional(obj, "notifyReceiverEmail", flag)?;
    optional(obj, "notifyAdminEmail", flag)?;
    for name in ["userMeta", "loungeData"] {
        optional(obj, name, |v, f| {
            if v.is_object() {
                Ok(())
            } else {
                Err(broken(f, "a JSON object"))
            }
        })?;
    }
    for name in SHIPPING_FIELDS {
        optional(obj, name, |v, f| string(v, f, "a string").map(drop))?;
    }
    Ok(())
}

fn po_number(value: &Value, path: &str) -> Result {
    let rule =
        format!("a string of 1 to {MAX_PO_NUMBER} characters from A-Z, a-z, 0-9 and _ . / : -");
    let s = string(value, path, &rule)?;
    let ok = !s.is_empty()
        && s.len() <= MAX_PO_NUMBER
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(broken(path, &rule))
    }
}

/// How getOrderDetails' `orderId` addresses the order.
enum OrderId {
    /// Absent, `null`, `0` or `"0"`: Xoxoday's documented "not by orderId".
    Unset,
    /// A positive integer or numeric string.
    Set,
}

fn get_order_details(obj: &Obj) -> Result {
    let po_set = match obj.get("poNumber") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => {
            return Err(broken(
                "data.poNumber",
                "a string (or null or empty when orderId is used)",
            ));
        }
    };
    let order_id_rule = format!(
        "a positive integer or a string of at most {MAX_ORDER_ID_DIGITS} digits (or null, 0 or \"0\" when poNumber is used)"
    );
    let order_id = match obj.get("orderId") {
        None | Some(Value::Null) => OrderId::Unset,
        Some(v @ Value::Number(_)) => match integer(v) {
            Some(0) => OrderId::Unset,
            Some(_) => OrderId::Set,
            None => return Err(broken("data.orderId", &order_id_rule)),
        },
        Some(Value::String(s)) if s == "0" => OrderId::Unset,
        Some(Value::String(s))
            if s.len() <= MAX_ORDER_ID_DIGITS && is_digits(s) && s.bytes().any(|b| b != b'0') =>
        {
            OrderId::Set
        }
        Some(_) => return Err(broken("data.orderId", &order_id_rule)),
    };
    match (po_set, order_id) {
        (true, OrderId::Set) => {
            return Err(ValidationError::new(
                "data.orderId",
                "data.orderId must be absent, null, 0 or \"0\" when data.poNumber is given: address the order by poNumber or by orderId, not both",
            ));
        }
        (false, OrderId::Unset) => {
            return Err(ValidationError::new(
                "data.poNumber",
                "data.poNumber or data.orderId is required to name the order",
            ));
        }
        _ => {}
    }
    optional(obj, "sendMailToReceiver", flag)
}

fn date_range(obj: &Obj) -> Result {
    let start = required_date(obj, "startDate")?;
    let end = required_date(obj, "endDate")?;
    // Valid YYYY-MM-DD strings order as the dates they name.
    if start > end {
        return Err(ValidationError::new(
            "data.endDate",
            "data.endDate must not be before data.startDate",
        ));
    }
    Ok(())
}

fn required_date<'a>(obj: &'a Obj, name: &str) -> Result<&'a str> {
    let path = format!("data.{name}");
    let rule = "a calendar date written YYYY-MM-DD";
    let value = obj.get(name).ok_or_else(|| missing(&path))?;
    let s = string(value, &path, rule)?;
    if is_calendar_date(s) {
        Ok(s)
    } else {
        Err(broken(&path, rule))
    }
}

fn paging(obj: &Obj) -> Result {
    optional(obj, "limit", |v, f| int_range(v, f, 1, Some(MAX_LIMIT)))?;
    optional(obj, "page", |v, f| int_range(v, f, 1, None))
}

// ------------------------------------------------------------------ helpers

/// Check `obj[name]` with `check` (given the value and its path), or report
/// it missing.
fn required(obj: &Obj, name: &str, check: impl FnOnce(&Value, &str) -> Result) -> Result {
    let path = format!("data.{name}");
    match obj.get(name) {
        Some(v) => check(v, &path),
        None => Err(missing(&path)),
    }
}

/// Check `obj[name]` with `check` when it is present (`null` included).
fn optional(obj: &Obj, name: &str, check: impl FnOnce(&Value, &str) -> Result) -> Result {
    match obj.get(name) {
        Some(v) => check(v, &format!("data.{name}")),
        None => Ok(()),
    }
}

fn missing(path: &str) -> ValidationError {
    ValidationError::new(path, format!("{path} is required"))
}

/// `path` breaks `rule`, a noun phrase saying what the field must be.
fn broken(path: &str, rule: &str) -> ValidationError {
    ValidationError::new(path, format!("{path} must be {rule}"))
}

fn string<'a>(value: &'a Value, path: &str, rule: &str) -> Result<&'a str> {
    value.as_str().ok_or_else(|| broken(path, rule))
}

fn max_chars(s: &str, max: usize, path: &str, rule: &str) -> Result {
    if s.chars().count() <= max {
        Ok(())
    } else {
        Err(broken(path, rule))
    }
}

/// A JSON integer within `min..=max` (`max: None` for no upper bound).
fn int_range(value: &Value, path: &str, min: u64, max: Option<u64>) -> Result {
    let rule = match max {
        Some(max) => format!("an integer from {min} to {max}"),
        None => format!("an integer of at least {min}"),
    };
    match integer(value) {
        Some(n) if n >= min && max.is_none_or(|max| n <= max) => Ok(()),
        _ => Err(broken(path, &rule)),
    }
}

/// The number `0` or `1`.
fn flag(value: &Value, path: &str) -> Result {
    match integer(value) {
        Some(0 | 1) => Ok(()),
        _ => Err(broken(path, "the number 0 or 1")),
    }
}

/// The value of a non-negative JSON integer (`10` or `10.0`); `None` for
/// negatives, fractions and non-numbers. Integral floats beyond `u64`
/// saturate to `u64::MAX`, which is out of every bounded range here and
/// still "at least 1" where there is no upper bound, as JSON Schema's
/// `minimum` alone would judge it.
fn integer(value: &Value) -> Option<u64> {
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

/// One or more ASCII digits.
fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYY-MM-DD` naming a real day of the (proleptic) Gregorian calendar,
/// years 0001 to 9999.
fn is_calendar_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(year), Some(month), Some(day)) =
        (number(&b[0..4]), number(&b[5..7]), number(&b[8..10]))
    else {
        return false;
    };
    // There is no year 0 (and JSON Schema's `format: date` checkers reject it).
    if year == 0 {
        return false;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days_in_month).contains(&day)
}

/// The value of a run of ASCII digits.
fn number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// One `@`; a non-empty local part; a domain of at least two non-empty
/// dot-separated labels; no whitespace or control characters anywhere.
/// Deliberately loose (real address syntax is Xoxoday's and the mail
/// system's business): it catches a name, a phone number or a typo pasted
/// into the field, not every undeliverable address. `openapi.json` states
/// the same rule as a pattern.
fn is_plausible_email(s: &str) -> bool {
    // U+FEFF counts as whitespace in JSON Schema (ECMA-262) patterns.
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\u{FEFF}')
    {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
}
