//! The edge cache's key of a cacheable call: only the fields that change
//! Xoxoday's answer, each in one form.
//!
//! A key that hashed the whole body would give every spelling of one call
//! its own entry (`25` and `"25"`, another key order), and let a caller
//! miss getBalance's one entry at will (`{"nonce": n}`), spend its budget
//! and bring a penalty on everyone. So the key covers, per operation, the
//! fields Xoxoday documents as changing its answer (xoxoday-api.md
//! §3.1–3.3), and nothing else (a catalog call with any other field skips
//! the cache: below):
//!
//! | operation | fields in the key |
//! |---|---|
//! | getFilters | `filterGroupCode`, `includeFilters`, `excludeFilters` |
//! | getVouchers | `limit`, `page`, `includeProducts`, `excludeProducts`, `exchangeRate`, `sort.field`, `sort.order`, `filters[].key`, `filters[].value`, `categoryType`, `categoryTypes` |
//! | getBalance | none: one answer per account |
//!
//! Each value is read as its value, the way validation accepts it, so
//! every form Xoxoday accepts of one request shares a key: a count as
//! `25` or `"25"`, a flag as `1`, `"1"` or `true`, a price as `25`,
//! `"25"` or `"25.00"` (a price range such as `"0 - 1000"` as text), text
//! as `"7"` or `7`, `sort` as `[]` or `{}`, no filters as `[]` or `{}`, an
//! optional field absent or `null`. Filters keep their order (Xoxoday's
//! older docs say only one applies).
//!
//! A call with a field outside the table (an unknown field, or an unknown
//! member of `sort` or a filter) has no entry ([`CacheKey::storable`]): it
//! is forwarded with the field (the upstream API grows), never answered
//! from the entry of the same call without it (the field may filter the
//! answer: a caller asking for some products must not get the whole page),
//! and its answer is never stored (the shared entry must not take it). So
//! an unknown field never makes an entry of its own, never changes one and
//! is never answered by one. Misses at will are no new door: a page number
//! or a filter value already make them; the limiter bounds them all.
//!
//! getBalance is the exception: Xoxoday documents no input for it (one
//! balance per account), so every call is storable, unknown fields and
//! all. Otherwise a caller holding only the `balance` scope could send
//! `{"nonce": n}` once the 10 s entry expired: each such call a miss that
//! neither joins nor leads the shared fill, the 10-a-minute budget theirs,
//! every other caller answered `429` once the stale copy's two minutes had
//! passed.

use super::validate::{decimal_string_number, flag_value, whole_number, BOUND_FILTERS};
use super::{canonical, Operation};
use crate::secret::sha256_hex;
use serde_json::{Map, Value};

/// The key of a cacheable call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    /// `<operation>/<SHA-256 hex of the canonical fields>`.
    pub id: String,
    /// The call has only the fields of the key: it may be answered from
    /// the entry, and its answer stored there.
    pub storable: bool,
}

/// How a field's value is read for the key.
#[derive(Clone, Copy)]
enum Form {
    Text,
    Count,
    Flag,
}

const FILTERS_FIELDS: [(&str, Form); 3] =
    [("filterGroupCode", Form::Text), ("includeFilters", Form::Text), ("excludeFilters", Form::Text)];

const VOUCHERS_FIELDS: [(&str, Form); 7] = [
    ("limit", Form::Count),
    ("page", Form::Count),
    ("includeProducts", Form::Text),
    ("excludeProducts", Form::Text),
    ("exchangeRate", Form::Flag),
    ("categoryType", Form::Text),
    ("categoryTypes", Form::Text),
];

/// The key of `op`'s valid `data`; `None` for an operation that is never
/// cached.
pub fn cache_key(op: Operation, data: &Value) -> Option<CacheKey> {
    op.cache_class()?;
    let empty = Map::new();
    let obj = data.as_object().unwrap_or(&empty);
    let mut key = Map::new();
    let mut storable = true;
    let plain = |fields: &[(&str, Form)], key: &mut Map<String, Value>| {
        for (name, form) in fields {
            if let Some(v) = obj.get(*name).filter(|v| !v.is_null()) {
                key.insert((*name).to_owned(), read(v, *form));
            }
        }
    };
    let known: &[&str] = match op {
        Operation::GetFilters => {
            plain(&FILTERS_FIELDS, &mut key);
            &["filterGroupCode", "includeFilters", "excludeFilters"]
        }
        Operation::GetVouchers => {
            plain(&VOUCHERS_FIELDS, &mut key);
            if let Some(sort) = sort_key(obj.get("sort"), &mut storable) {
                key.insert("sort".into(), sort);
            }
            if let Some(filters) = filters_key(obj.get("filters"), &mut storable) {
                key.insert("filters".into(), filters);
            }
            &["limit", "page", "includeProducts", "excludeProducts", "exchangeRate", "categoryType", "categoryTypes", "sort", "filters"]
        }
        _ => &[],
    };
    storable &= op == Operation::GetBalance || obj.keys().all(|k| known.contains(&k.as_str()));
    let text = canonical::to_canonical_json(&Value::Object(key));
    Some(CacheKey { id: format!("{}/{}", op.name(), sha256_hex(text.as_bytes())), storable })
}

/// A value in its one form; a value of another type (only possible for a
/// field validation does not check) is kept as it is, so it still keys
/// apart.
fn read(v: &Value, form: Form) -> Value {
    let as_is = || Value::from(format!("raw:{}", crate::jsontext::to_text(v)));
    match form {
        Form::Text => match v {
            Value::String(s) => Value::String(s.clone()),
            Value::Number(n) => Value::String(n.to_string()),
            _ => as_is(),
        },
        Form::Count => whole_number(v).map_or_else(as_is, Value::from),
        Form::Flag => flag_value(v).map_or_else(as_is, Value::from),
    }
}

/// A price in its one form: the number a number or decimal string writes.
fn price(v: &Value) -> Value {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => decimal_string_number(s).and_then(|n| n.as_f64()),
        _ => None,
    };
    match n {
        Some(f) => serde_json::Number::from_f64(f).map_or_else(|| read(v, Form::Text), Value::Number),
        None => read(v, Form::Text),
    }
}

/// `sort`'s `field` and `order`; `[]`, `{}` and absent members are the same.
fn sort_key(sort: Option<&Value>, storable: &mut bool) -> Option<Value> {
    let obj = sort?.as_object()?;
    let mut key = Map::new();
    for (name, v) in obj {
        match name.as_str() {
            "field" | "order" if !v.is_null() => {
                key.insert(name.clone(), read(v, Form::Text));
            }
            "field" | "order" => {}
            _ => *storable = false,
        }
    }
    (!key.is_empty()).then_some(Value::Object(key))
}

/// `filters` as `[[key, value], …]`, in order; a price filter's value as a
/// number (when it writes one), any other as text. No filters (`[]`, `{}`)
/// is no key, as absent.
fn filters_key(filters: Option<&Value>, storable: &mut bool) -> Option<Value> {
    let list = filters?.as_array().filter(|l| !l.is_empty())?;
    let out = list
        .iter()
        .map(|f| {
            let obj = f.as_object();
            if obj.is_some_and(|o| o.keys().any(|k| k != "key" && k != "value")) {
                *storable = false;
            }
            let key = obj.and_then(|o| o.get("key")).cloned().unwrap_or(Value::Null);
            let value = obj.and_then(|o| o.get("value")).unwrap_or(&Value::Null);
            // A bound (minPrice, maxPrice) keys as the number it writes
            // (`25`, `"25.00"`); `price` is text to Xoxoday (a range such as
            // "0 - 1000"), so "025.000" and "25" may not be the same filter.
            let is_price = key.as_str().is_some_and(|k| BOUND_FILTERS.contains(&k));
            Value::Array(vec![key, if is_price { price(value) } else { read(value, Form::Text) }])
        })
        .collect();
    Some(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(op: Operation, data: Value) -> CacheKey {
        cache_key(op, &data).expect("cacheable")
    }

    #[test]
    fn only_cacheable_operations_have_keys() {
        for op in [Operation::PlaceOrder, Operation::GetOrderDetails, Operation::GetOrderHistory, Operation::PaymentHistory] {
            assert_eq!(cache_key(op, &json!({})), None, "{op}");
        }
        let k = key(Operation::GetBalance, json!({}));
        assert!(k.id.starts_with("getBalance/") && k.id.len() == "getBalance/".len() + 64, "{}", k.id);
        assert!(k.storable);
    }

    #[test]
    fn unknown_fields_share_the_entry_and_never_make_one() {
        let plain = key(Operation::GetBalance, json!({}));
        for data in [json!({"nonce": 1}), json!({"nonce": 2}), json!({"futureField": {"x": [1]}}), json!({"nonce": null})] {
            let k = key(Operation::GetBalance, data.clone());
            assert_eq!(k.id, plain.id, "{data}");
            // getBalance takes no input: its answer is stored whatever came
            // along, so a nonce leads or joins the fill like any call.
            assert!(k.storable, "{data}");
        }
        let k = key(Operation::GetFilters, json!({"filterGroupCode": "country", "nonce": 1}));
        assert_eq!((k.id == key(Operation::GetFilters, json!({"filterGroupCode": "country"})).id, k.storable), (true, false));
        assert_eq!(key(Operation::GetBalance, json!([])), plain, "PHP's empty object");
        let v = key(Operation::GetVouchers, json!({"limit": 10, "page": 1}));
        let with = key(Operation::GetVouchers, json!({"limit": 10, "page": 1, "nonce": "a"}));
        assert_eq!((with.id == v.id, with.storable), (true, false));
        let sort_extra = key(Operation::GetVouchers, json!({"limit": 10, "page": 1, "sort": {"field": "name", "x": 1}}));
        assert_eq!(sort_extra.id, key(Operation::GetVouchers, json!({"limit": 10, "page": 1, "sort": {"field": "name"}})).id);
        assert!(!sort_extra.storable);
        let filter_extra = key(Operation::GetVouchers, json!({"limit": 10, "page": 1, "filters": [{"key": "country", "value": "usa", "x": 1}]}));
        assert!(!filter_extra.storable);
        let f = key(Operation::GetFilters, json!({"filterGroupCode": "country", "nonce": 7}));
        assert_eq!((f.id, f.storable), (key(Operation::GetFilters, json!({"filterGroupCode": "country"})).id, false));
    }

    /// Every field of the table is a field of the key: a call with any of
    /// them (and no other) is storable, so it is answered from the cache.
    #[test]
    fn every_field_of_the_table_is_storable() {
        let vouchers = json!({
            "limit": 10, "page": 1, "includeProducts": "1", "excludeProducts": "2", "exchangeRate": 1, "categoryType": "merchandise",
            "categoryTypes": "offers", "sort": {"field": "name", "order": "ASC"}, "filters": [{"key": "country", "value": "usa"}],
        });
        assert!(key(Operation::GetVouchers, vouchers).storable);
        let filters = json!({"filterGroupCode": "country", "includeFilters": "usa", "excludeFilters": "uae"});
        assert!(key(Operation::GetFilters, filters).storable);
        for (name, value) in [("categoryTypes", json!("offers")), ("excludeProducts", json!("2")), ("categoryType", json!("x"))] {
            let mut data = json!({"limit": 10, "page": 1});
            data.as_object_mut().unwrap().insert(name.into(), value);
            assert!(key(Operation::GetVouchers, data).storable, "{name}");
        }
        assert!(key(Operation::GetFilters, json!({"excludeFilters": "uae"})).storable, "excludeFilters alone");
    }

    #[test]
    fn every_accepted_form_of_a_value_shares_a_key() {
        let base = key(Operation::GetVouchers, json!({"limit": 25, "page": 1, "exchangeRate": 1, "sort": {}, "filters": [{"key": "minPrice", "value": 25}]}));
        assert!(base.storable);
        for data in [
            json!({"limit": "25", "page": "1", "exchangeRate": "1", "sort": [], "filters": [{"key": "minPrice", "value": "25"}]}),
            json!({"page": 1.0, "limit": 25.0, "exchangeRate": true, "filters": [{"value": "25.00", "key": "minPrice"}]}),
            json!({"limit": 25, "page": 1, "exchangeRate": 1, "sort": {"field": null, "order": null}, "filters": [{"key": "minPrice", "value": 25.0}], "includeProducts": null}),
        ] {
            assert_eq!(key(Operation::GetVouchers, data.clone()), base, "{data}");
        }
        assert_eq!(
            key(Operation::GetFilters, json!({"filterGroupCode": 7})).id,
            key(Operation::GetFilters, json!({"filterGroupCode": "7"})).id,
            "text as a number"
        );
        let none = key(Operation::GetVouchers, json!({"limit": 10, "page": 1}));
        for no_filters in [json!([]), json!({}), Value::Null] {
            assert_eq!(key(Operation::GetVouchers, json!({"limit": 10, "page": 1, "filters": no_filters})), none, "{no_filters}: no filters");
        }
        assert_ne!(key(Operation::GetVouchers, json!({"page": 1})).id, none.id, "no limit is not limit 10");
        assert_eq!(
            key(Operation::GetVouchers, json!({"limit": 1, "page": 1, "filters": [{"key": "country", "value": 840}]})).id,
            key(Operation::GetVouchers, json!({"limit": 1, "page": 1, "filters": [{"key": "country", "value": "840"}]})).id,
        );
    }

    #[test]
    fn what_changes_the_answer_changes_the_key() {
        let k = |data: Value| key(Operation::GetVouchers, data).id;
        let base = json!({"limit": 10, "page": 1});
        let mut seen = std::collections::HashSet::new();
        assert!(seen.insert(k(base.clone())));
        for extra in [
            json!({"page": 2}),
            json!({"limit": 11}),
            json!({"includeProducts": "1,2"}),
            json!({"excludeProducts": "1,2"}),
            json!({"exchangeRate": 1}),
            json!({"exchangeRate": 0}),
            json!({"sort": {"field": "name"}}),
            json!({"sort": {"field": "name", "order": "DESC"}}),
            json!({"filters": [{"key": "country", "value": "usa"}]}),
            json!({"filters": [{"key": "country", "value": "india"}]}),
            json!({"filters": [{"key": "currencyCode", "value": "usa"}]}),
            json!({"filters": [{"key": "country", "value": "usa"}, {"key": "deliveryType", "value": "realtime"}]}),
            json!({"filters": [{"key": "deliveryType", "value": "realtime"}, {"key": "country", "value": "usa"}]}),
            json!({"filters": [{"key": "price", "value": "0 - 1000"}]}),
            json!({"filters": [{"key": "price", "value": "1000 - 5000"}]}),
            json!({"filters": [{"key": "price", "value": "25"}]}),
            json!({"filters": [{"key": "price", "value": "025.000"}]}),
            json!({"filters": [{"key": "minPrice", "value": "25"}]}),
            json!({"limit": 0}),
            json!({"page": 0}),
            json!({"categoryType": "merchandise"}),
            json!({"categoryTypes": "offers"}),
            json!({"includeProducts": ""}),
        ] {
            let mut data = base.clone();
            data.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            assert!(seen.insert(k(data)), "{extra} must have a key of its own");
        }
        let f = |data: Value| key(Operation::GetFilters, data).id;
        assert_ne!(f(json!({"filterGroupCode": "country"})), f(json!({"filterGroupCode": "voucher_category"})));
        assert_ne!(f(json!({"filterGroupCode": "country"})), f(json!({"filterGroupCode": "country", "includeFilters": "usa"})));
        assert_ne!(f(json!({"filterGroupCode": "country"})), f(json!({"filterGroupCode": "country", "excludeFilters": "uae"})));
        assert_ne!(
            f(json!({"filterGroupCode": "country", "includeFilters": "uae"})),
            f(json!({"filterGroupCode": "country", "excludeFilters": "uae"})),
            "which list a value is in changes the answer"
        );
        assert_ne!(f(json!({"filterGroupCode": ""})), f(json!({})), "empty text is a value");
        // The key names the operation: two operations never share an entry.
        assert_ne!(key(Operation::GetFilters, json!({})).id, key(Operation::GetVouchers, json!({})).id);
    }
}
