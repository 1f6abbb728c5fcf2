//! Table-driven tests of the operation table, validation, envelopes,
//! fingerprints and the OpenAPI document.

use super::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A minimal valid body for each operation.
fn valid(op: Operation) -> Value {
    match op {
        Operation::GetFilters => {
            json!({"filterGroupCode": "Country", "includeFilters": "", "excludeFilters": ""})
        }
        Operation::GetVouchers => json!({"limit": 10, "page": 1}),
        Operation::GetBalance => json!({}),
        Operation::PlaceOrder => {
            json!({"productId": 14856, "quantity": 1, "denomination": 25, "poNumber": "PO-1"})
        }
        Operation::GetOrderDetails => {
            json!({"poNumber": "PO-1", "orderId": null, "sendMailToReceiver": 0})
        }
        Operation::GetOrderHistory | Operation::PaymentHistory => {
            json!({"startDate": "2024-01-01", "endDate": "2024-01-31"})
        }
    }
}

/// `base` with `key` set to `value`, or removed when `value` is `None`.
fn with(base: Value, key: &str, value: Option<Value>) -> Value {
    let mut base = base;
    let obj = base.as_object_mut().expect("base is an object");
    match value {
        Some(v) => {
            obj.insert(key.to_owned(), v);
        }
        None => {
            obj.remove(key);
        }
    }
    base
}

fn long(n: usize) -> String {
    "x".repeat(n)
}

// ------------------------------------------------------------ operation table

#[test]
fn names_and_queries_round_trip() {
    let expected = [
        ("getFilters", "plumProAPI.mutation.getFilters"),
        ("getVouchers", "plumProAPI.mutation.getVouchers"),
        ("getBalance", "plumProAPI.query.getBalance"),
        ("placeOrder", "plumProAPI.mutation.placeOrder"),
        ("getOrderDetails", "plumProAPI.mutation.getOrderDetails"),
        ("getOrderHistory", "plumProAPI.mutation.getOrderHistory"),
        ("paymentHistory", "plumProAPI.mutation.paymentHistory"),
    ];
    assert_eq!(Operation::ALL.len(), expected.len());
    for (op, (name, query)) in Operation::ALL.into_iter().zip(expected) {
        assert_eq!(op.name(), name);
        assert_eq!(op.query(), query);
        assert_eq!(op.to_string(), name);
        assert_eq!(Operation::from_name(name), Some(op));
        assert_eq!(Operation::from_query(query), Some(op));
    }
}

#[test]
fn lookups_are_exact() {
    for bad in [
        "",
        "getbalance",
        "GetBalance",
        "getBalance ",
        " getBalance",
        "getPaymentReport",
    ] {
        assert_eq!(Operation::from_name(bad), None, "{bad:?}");
    }
    for bad in [
        "",
        "plumProAPI.mutation.getBalance",
        "plumProAPI.Query.getBalance",
        "plumproapi.query.getBalance",
        "plumProAPI.query.getBalance ",
        "plumProAPI.query.getPaymentReport",
        "getBalance",
    ] {
        assert_eq!(Operation::from_query(bad), None, "{bad:?}");
    }
    // The payment report under the name Xoxoday's MCP client sends.
    assert_eq!(
        Operation::from_query("plumProAPI.mutation.getPaymentReport"),
        Some(Operation::PaymentHistory)
    );
}

#[test]
fn cache_classes() {
    use CacheClass::*;
    let expected = [
        Some(Catalog),
        Some(Catalog),
        Some(Balance),
        None,
        None,
        None,
        None,
    ];
    for (op, class) in Operation::ALL.into_iter().zip(expected) {
        assert_eq!(op.cache_class(), class, "{op}");
    }
}

#[test]
fn required_scopes() {
    let cases: &[(Operation, Value, &str)] = &[
        (Operation::GetFilters, json!({}), "catalog"),
        (
            Operation::GetVouchers,
            json!({"limit": 1, "page": 1}),
            "catalog",
        ),
        (Operation::GetBalance, json!({}), "balance"),
        (
            Operation::PlaceOrder,
            valid(Operation::PlaceOrder),
            "orders:write",
        ),
        (Operation::GetOrderHistory, json!({}), "orders:read"),
        (Operation::PaymentHistory, json!({}), "orders:read"),
        (
            Operation::GetOrderDetails,
            json!({"poNumber": "PO-1"}),
            "orders:read",
        ),
        (
            Operation::GetOrderDetails,
            json!({"poNumber": "PO-1", "sendMailToReceiver": null}),
            "orders:read",
        ),
        (
            Operation::GetOrderDetails,
            json!({"poNumber": "PO-1", "sendMailToReceiver": 0}),
            "orders:read",
        ),
        (
            Operation::GetOrderDetails,
            json!({"poNumber": "PO-1", "sendMailToReceiver": "0"}),
            "orders:read",
        ),
        // 0.0 is the flag 0 (validation takes it): no resend, read only.
        (
            Operation::GetOrderDetails,
            json!({"poNumber": "PO-1", "sendMailToReceiver": 0.0}),
            "orders:read",
        ),
        (
            Operation::GetOrderDetails,
            json!({"poNumber": "PO-1", "sendMailToReceiver": false}),
            "orders:read",
        ),
        (
            Operation::GetOrderDetails,
            json!({"poNumber": "PO-1", "sendMailToReceiver": 1}),
            "orders:write",
        ),
        (
            Operation::GetOrderDetails,
            json!({"poNumber": "PO-1", "sendMailToReceiver": "1"}),
            "orders:write",
        ),
        // Fail safe: anything not clearly "off" needs the stronger scope.
        (
            Operation::GetOrderDetails,
            json!({"poNumber": "PO-1", "sendMailToReceiver": true}),
            "orders:write",
        ),
        (
            Operation::GetOrderDetails,
            json!({"poNumber": "PO-1", "sendMailToReceiver": 2}),
            "orders:write",
        ),
        (
            Operation::GetOrderDetails,
            json!({"poNumber": "PO-1", "sendMailToReceiver": 1.0}),
            "orders:write",
        ),
        (
            Operation::GetOrderDetails,
            json!({"poNumber": "PO-1", "sendMailToReceiver": "yes"}),
            "orders:write",
        ),
        (
            Operation::GetOrderDetails,
            json!({"poNumber": "PO-1", "sendMailToReceiver": "0.0"}),
            "orders:write",
        ),
        (
            Operation::GetOrderDetails,
            json!({"poNumber": "PO-1", "sendMailToReceiver": []}),
            "orders:write",
        ),
        (
            Operation::GetOrderDetails,
            json!("not an object"),
            "orders:read",
        ),
    ];
    for (op, data, scope) in cases {
        assert_eq!(op.required_scope(data), *scope, "{op} {data}");
    }
}

// ----------------------------------------------------------------- validation

/// Valid bodies, boundaries and every accepted value form included.
#[rustfmt::skip]
fn valid_cases() -> Vec<(Operation, Value)> {
    vec![
        // getFilters: text fields take strings (empty included), numbers, null.
        (Operation::GetFilters, json!({})),
        (Operation::GetFilters, json!([])),
        (Operation::GetFilters, valid(Operation::GetFilters)),
        (Operation::GetFilters, json!({"filterGroupCode": long(5000), "includeFilters": "usa,ind"})),
        (Operation::GetFilters, json!({"excludeFilters": null, "includeFilters": 5, "filterGroupCode": "é"})),
        // getVouchers: counts as numbers or digit strings, no upper bound.
        (Operation::GetVouchers, valid(Operation::GetVouchers)),
        (Operation::GetVouchers, json!({"limit": 1, "page": 1})),
        (Operation::GetVouchers, json!({"limit": 500, "page": 99999})),
        // A published client's every call (blueromans/XoxoDay): page 0.
        (Operation::GetVouchers, json!({"limit": 10000, "page": 0, "includeProducts": "", "excludeProducts": "", "exchangeRate": 0, "sort": {"field": "", "order": ""}})),
        (Operation::GetVouchers, json!({"limit": 10, "page": "0"})),
        // PHP scripts calling production (limit and page "0"); a Laravel client's call with neither.
        (Operation::GetVouchers, json!({"limit": "0", "page": "0", "includeProducts": "", "excludeProducts": "",
                                        "filters": [{"key": "currencyCode", "value": "INR"}]})),
        (Operation::GetVouchers, json!({"limit": 0, "page": 1})),
        (Operation::GetVouchers, json!({"filters": [{"key": "country", "value": "usa"}]})),
        (Operation::GetVouchers, json!({})),
        (Operation::GetVouchers, json!({"limit": null, "page": null})),
        (Operation::GetVouchers, json!({"limit": 5000, "page": "2"})),
        (Operation::GetVouchers, json!({"limit": "10", "page": "1", "exchangeRate": "1"})),
        (Operation::GetVouchers, json!({"limit": "0010", "page": "99999999999999999999999"})),
        (Operation::GetVouchers, json!({"limit": 10.0, "page": 1.0, "exchangeRate": 1.0})),
        (Operation::GetVouchers, json!({"limit": 500.0, "page": 1e300})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 2, "includeProducts": "", "excludeProducts": "1,22,333",
                                        "exchangeRate": 0, "sort": {"field": "name", "order": "DESC", "extra": 1}})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "includeProducts": "42, abc", "excludeProducts": 7,
                                        "exchangeRate": true})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "exchangeRate": false, "includeProducts": null})),
        // The sort forms: documented, empty strings (a PHP client's default), partial, empty, null.
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "sort": {"field": "", "order": ""}})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "sort": {"field": "name"}})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "sort": {"order": "asc", "field": null}})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "sort": {}})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "sort": []})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "sort": null})),
        // The filters array: any key, string or number values, prices as numbers or decimal strings.
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "filters": []})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "filters": null})),
        // A published JavaScript client's "no filters".
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "filters": {}})),
        // `price` is a range, as getFilters lists them, or a number; a placeholder "".
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "filters": [{"key": "price", "value": "0 - 1000"}]})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "filters": [{"key": "price", "value": "10,000 - above"}]})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "filters": [{"key": "price", "value": ""}]})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "filters": [{"key": "price", "value": -5}]})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "filters": [
            {"key": "productName", "value": "Amazon"}, {"key": "country", "value": "usa"},
            {"key": "price", "value": 25}, {"key": "minPrice", "value": "10"}, {"key": "maxPrice", "value": 100.5},
            {"key": "currencyCode", "value": "usd"}, {"key": "deliveryType", "value": "realtime"},
            {"key": "voucher_category", "value": "fashion"}, {"key": "anyFutureKey", "value": 3}]})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "filters": [{"key": "minPrice", "value": "0"},
                                        {"key": "maxPrice", "value": "0.000000000000000000000000000000000000000000000000001"}]})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1,
                                        "filters": [{"key": "deliveryType", "value": "instant", "note": "extra"}]})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1,
                                        "filters": vec![json!({"key": "country", "value": "usa"}); 500]})),
        // placeOrder: numeric strings, flags in every form, empty optional strings.
        (Operation::PlaceOrder, valid(Operation::PlaceOrder)),
        (Operation::PlaceOrder, json!({"productId": "14856", "quantity": "1", "denomination": "25", "poNumber": "PO-1",
                                       "email": "", "contact": "", "tag": "", "notifyReceiverEmail": 1}),),
        (Operation::PlaceOrder, json!({"productId": 14856.0, "quantity": 2.0, "denomination": 25.0, "poNumber": "PO-1",
                                       "notifyReceiverEmail": 0.0, "notifyAdminEmail": 1.0})),
        (Operation::PlaceOrder, json!({"productId": 1, "quantity": 1, "denomination": "25.50", "poNumber": "P",
                                       "notifyReceiverEmail": "1", "notifyAdminEmail": "0"})),
        (Operation::PlaceOrder, json!({"productId": 1, "quantity": 1, "denomination": "0.01", "poNumber": "P",
                                       "notifyReceiverEmail": true, "notifyAdminEmail": false})),
        (Operation::PlaceOrder, json!({"productId": 1, "quantity": 1, "denomination": 1, "poNumber": 12345,
                                       "notifyReceiverEmail": null, "notifyAdminEmail": null, "email": null})),
        (Operation::PlaceOrder, json!({
            "productId": "MERCH-SKU-1", "quantity": 1000, "denomination": 0.01, "poNumber": "any text at all: #1 ø",
            "email": "not checked here", "contact": "+91-9876543210", "tag": long(1000),
            "notifyReceiverEmail": 1, "notifyAdminEmail": 0, "userMeta": {"loyaltyMemberId": "X1"},
            "loungeData": {"firstName": "A", "lastName": "B", "categoryType": "lounge"},
            "shippingFirstName": "A", "shippingLastName": "B", "shippingContactNo": 14705000000_u64, "shippingCompany": "",
            "shippingAddress1": "1 Road", "shippingAddress2": null, "shippingCity": "X", "shippingCountry": "US",
            "shippingState": "CA", "shippingPostcode": 94000})),
        (Operation::PlaceOrder, json!({"productId": long(300), "quantity": 1, "denomination": 10.5, "poNumber": long(300),
                                       "userMeta": [], "loungeData": null})),
        (Operation::PlaceOrder, json!({"productId": 1, "quantity": 1, "denomination": 1e6, "poNumber": "P", "contact": 4705000000_u64})),
        // getOrderDetails
        (Operation::GetOrderDetails, valid(Operation::GetOrderDetails)),
        (Operation::GetOrderDetails, json!({"poNumber": "PO-1"})),
        (Operation::GetOrderDetails, json!({"poNumber": "PO-1", "orderId": 0})),
        (Operation::GetOrderDetails, json!({"poNumber": "PO-1", "orderId": 0.0})),
        (Operation::GetOrderDetails, json!({"poNumber": "PO-1", "orderId": "0"})),
        (Operation::GetOrderDetails, json!({"poNumber": "PO-1", "orderId": "00"})),
        (Operation::GetOrderDetails, json!({"poNumber": "PO 1 with any text"})),
        (Operation::GetOrderDetails, json!({"poNumber": 100001})),
        (Operation::GetOrderDetails, json!({"orderId": 123})),
        (Operation::GetOrderDetails, json!({"orderId": 123.0, "sendMailToReceiver": 1.0})),
        (Operation::GetOrderDetails, json!({"orderId": "123"})),
        (Operation::GetOrderDetails, json!({"orderId": "0123"})),
        (Operation::GetOrderDetails, json!({"orderId": "123456789012345678901234567890"})),
        (Operation::GetOrderDetails, json!({"orderId": 123, "poNumber": null, "sendMailToReceiver": "1"})),
        (Operation::GetOrderDetails, json!({"orderId": "123", "poNumber": "", "sendMailToReceiver": true})),
        (Operation::GetOrderDetails, json!({"orderId": 7, "poNumber": "PO-1", "sendMailToReceiver": null})),
        // getOrderHistory
        (Operation::GetOrderHistory, valid(Operation::GetOrderHistory)),
        (Operation::GetOrderHistory, json!({"startDate": "2024-02-29", "endDate": "2024-02-29"})),
        (Operation::GetOrderHistory, json!({"startDate": "2000-02-29", "endDate": "2024-12-31"})),
        (Operation::GetOrderHistory, json!({"startDate": "0001-01-01", "endDate": "9999-12-31"})),
        (Operation::GetOrderHistory, json!({"startDate": "2023-12-31", "endDate": "2024-01-01",
                                            "limit": 5000, "page": 3, "tag": "x"})),
        (Operation::GetOrderHistory, json!({"startDate": "2024-01-01", "endDate": "2024-01-31", "limit": "20",
                                            "page": "1", "tag": ""})),
        (Operation::GetOrderHistory, json!({"startDate": "2024-01-01", "endDate": "2024-01-31", "limit": null,
                                            "page": null, "tag": null})),
        // Dates are optional (Xoxoday's MCP client sends only limit and page); one alone is not ordered.
        (Operation::GetOrderHistory, json!({"limit": 10, "page": 1})),
        (Operation::GetOrderHistory, json!({"startDate": "2030-01-01"})),
        (Operation::GetOrderHistory, json!({"endDate": "2000-01-01", "startDate": null})),
        // helsinki-systems/xoxoday (Go) sends its zero values for what its
        // caller did not set: "" dates, limit and page 0; for Xoxoday to judge.
        (Operation::GetOrderHistory, json!({"startDate": "", "endDate": "", "limit": 0, "page": 0})),
        (Operation::GetOrderHistory, json!({"startDate": "2025-01-01", "endDate": "2025-01-31", "limit": 0, "page": 0})),
        (Operation::GetOrderHistory, json!({"startDate": "", "endDate": "2025-01-31", "limit": "0", "page": 1})),
        // paymentHistory
        (Operation::PaymentHistory, valid(Operation::PaymentHistory)),
        (Operation::PaymentHistory, json!({"startDate": "2024-04-30", "endDate": "2024-06-30", "limit": 501, "page": "1"})),
        (Operation::PaymentHistory, json!({"limit": 10, "page": 1})),
        (Operation::PaymentHistory, json!({"startDate": "", "endDate": "", "limit": 0, "page": 0})),
        // `tag` is not a paymentHistory field: any value is an unknown extra.
        (Operation::PaymentHistory, json!({"startDate": "2024-01-01", "endDate": "2024-01-01", "tag": {"x": 5}})),
    ]
}

#[test]
fn valid_bodies_pass() {
    for (op, data) in valid_cases() {
        assert_eq!(validate(op, &data), Ok(()), "{op} {data}");
        assert!(prepare(op, data.clone()).is_ok(), "{op} {data}");
    }
}

#[test]
fn unknown_extra_fields_pass() {
    for op in Operation::ALL {
        let data = with(
            valid(op),
            "someFutureField",
            Some(json!({"nested": [1, "two", null]})),
        );
        let data = with(data, "anotherOne", Some(Value::Null));
        assert_eq!(validate(op, &data), Ok(()), "{op}");
        let sent = prepare(op, data.clone()).unwrap();
        assert_eq!(sent["someFutureField"], data["someFutureField"], "{op}: passed on");
        assert_eq!(sent["anotherOne"], Value::Null, "{op}: passed on");
    }
}

#[test]
fn data_must_be_an_object() {
    for op in Operation::ALL {
        for data in [json!(null), json!([1]), json!([{}]), json!("{}"), json!(1), json!(true)] {
            let err = validate(op, &data).expect_err("not an object");
            assert_eq!(err.field, "data", "{op} {data}");
        }
    }
    // An empty array is PHP's empty object: what is missing from it is named.
    assert_eq!(validate(Operation::GetBalance, &json!([])), Ok(()));
    assert_eq!(validate(Operation::GetVouchers, &json!([])), Ok(()));
    assert_eq!(validate(Operation::PlaceOrder, &json!([])).unwrap_err().field, "data.productId");
}

/// Each case breaks exactly one rule of a valid body: (operation, key set on
/// the valid body (`None` value: removed), expected error field).
#[rustfmt::skip]
fn broken_cases() -> Vec<(Operation, &'static str, Option<Value>, &'static str)> {
    use Operation::*;
    vec![
        // getFilters: text fields are strings or numbers.
        (GetFilters, "filterGroupCode", Some(json!(true)), "data.filterGroupCode"),
        (GetFilters, "includeFilters", Some(json!(["usa"])), "data.includeFilters"),
        (GetFilters, "excludeFilters", Some(json!({"SECRET": 1})), "data.excludeFilters"),
        // getVouchers: limit and page are optional whole numbers.
        (GetVouchers, "limit", Some(json!(-1)), "data.limit"),
        (GetVouchers, "limit", Some(json!(1.5)), "data.limit"),
        (GetVouchers, "limit", Some(json!("")), "data.limit"),
        (GetVouchers, "limit", Some(json!("SECRET")), "data.limit"),
        (GetVouchers, "limit", Some(json!("1.5")), "data.limit"),
        (GetVouchers, "limit", Some(json!("-1")), "data.limit"),
        (GetVouchers, "limit", Some(json!(" 10")), "data.limit"),
        (GetVouchers, "limit", Some(json!("1e3")), "data.limit"),
        (GetVouchers, "limit", Some(json!(true)), "data.limit"),
        (GetVouchers, "limit", Some(json!([10])), "data.limit"),
        (GetVouchers, "page", Some(json!(-1)), "data.page"),
        (GetVouchers, "page", Some(json!(1.5)), "data.page"),
        (GetVouchers, "page", Some(json!("-1")), "data.page"),
        (GetVouchers, "page", Some(json!({})), "data.page"),
        // getVouchers: text, flag, sort, filters.
        (GetVouchers, "includeProducts", Some(json!([1, 2])), "data.includeProducts"),
        (GetVouchers, "excludeProducts", Some(json!(false)), "data.excludeProducts"),
        (GetVouchers, "exchangeRate", Some(json!(2)), "data.exchangeRate"),
        (GetVouchers, "exchangeRate", Some(json!(-1)), "data.exchangeRate"),
        (GetVouchers, "exchangeRate", Some(json!(0.5)), "data.exchangeRate"),
        (GetVouchers, "exchangeRate", Some(json!("yes")), "data.exchangeRate"),
        (GetVouchers, "exchangeRate", Some(json!("true")), "data.exchangeRate"),
        (GetVouchers, "exchangeRate", Some(json!({})), "data.exchangeRate"),
        (GetVouchers, "sort", Some(json!("name")), "data.sort"),
        (GetVouchers, "sort", Some(json!(["name"])), "data.sort"),
        (GetVouchers, "sort", Some(json!({"field": 1, "order": "ASC"})), "data.sort.field"),
        (GetVouchers, "sort", Some(json!({"field": "name", "order": 1})), "data.sort.order"),
        (GetVouchers, "filters", Some(json!({"key": "country", "value": "usa"})), "data.filters"),
        (GetVouchers, "filters", Some(json!("country")), "data.filters"),
        (GetVouchers, "filters", Some(json!([5])), "data.filters[0]"),
        (GetVouchers, "filters", Some(json!([[]])), "data.filters[0]"),
        (GetVouchers, "filters", Some(json!([{"value": "usa"}])), "data.filters[0].key"),
        (GetVouchers, "filters", Some(json!([{"key": null, "value": "usa"}])), "data.filters[0].key"),
        (GetVouchers, "filters", Some(json!([{"key": 1, "value": "x"}])), "data.filters[0].key"),
        (GetVouchers, "filters", Some(json!([{"key": "country"}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "country", "value": null}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "country", "value": true}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "country", "value": ["usa"]}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "country", "value": "usa"}, {"key": "minPrice", "value": "SECRET"}])),
         "data.filters[1].value"),
        (GetVouchers, "filters", Some(json!([{"key": "minPrice", "value": -5}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "minPrice", "value": "0 - 1000"}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "price", "value": true}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "maxPrice", "value": "-5"}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "maxPrice", "value": "1,000"}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "price", "value": {}}])), "data.filters[0].value"),
        // placeOrder: productId
        (PlaceOrder, "productId", None, "data.productId"),
        (PlaceOrder, "productId", Some(json!(null)), "data.productId"),
        (PlaceOrder, "productId", Some(json!(0)), "data.productId"),
        (PlaceOrder, "productId", Some(json!(-1)), "data.productId"),
        (PlaceOrder, "productId", Some(json!(1.5)), "data.productId"),
        (PlaceOrder, "productId", Some(json!("")), "data.productId"),
        (PlaceOrder, "productId", Some(json!(true)), "data.productId"),
        (PlaceOrder, "productId", Some(json!({"id": 1})), "data.productId"),
        // placeOrder: quantity and denomination
        (PlaceOrder, "quantity", None, "data.quantity"),
        (PlaceOrder, "quantity", Some(json!(0)), "data.quantity"),
        (PlaceOrder, "quantity", Some(json!("0")), "data.quantity"),
        (PlaceOrder, "quantity", Some(json!(-2)), "data.quantity"),
        (PlaceOrder, "quantity", Some(json!(1.5)), "data.quantity"),
        (PlaceOrder, "quantity", Some(json!("1.5")), "data.quantity"),
        (PlaceOrder, "quantity", Some(json!("one")), "data.quantity"),
        (PlaceOrder, "quantity", Some(json!(null)), "data.quantity"),
        (PlaceOrder, "denomination", None, "data.denomination"),
        (PlaceOrder, "denomination", Some(json!(0)), "data.denomination"),
        (PlaceOrder, "denomination", Some(json!("0")), "data.denomination"),
        (PlaceOrder, "denomination", Some(json!("0.00")), "data.denomination"),
        (PlaceOrder, "denomination", Some(json!(-5)), "data.denomination"),
        (PlaceOrder, "denomination", Some(json!("-5")), "data.denomination"),
        (PlaceOrder, "denomination", Some(json!("SECRET")), "data.denomination"),
        (PlaceOrder, "denomination", Some(json!("25.")), "data.denomination"),
        (PlaceOrder, "denomination", Some(json!(".5")), "data.denomination"),
        (PlaceOrder, "denomination", Some(json!("1e2")), "data.denomination"),
        (PlaceOrder, "denomination", Some(json!("")), "data.denomination"),
        (PlaceOrder, "denomination", Some(json!(null)), "data.denomination"),
        (PlaceOrder, "denomination", Some(json!(true)), "data.denomination"),
        // placeOrder: poNumber (plumgate's idempotency key: required, non-empty)
        (PlaceOrder, "poNumber", None, "data.poNumber"),
        (PlaceOrder, "poNumber", Some(json!(null)), "data.poNumber"),
        (PlaceOrder, "poNumber", Some(json!("")), "data.poNumber"),
        (PlaceOrder, "poNumber", Some(json!(" \t ")), "data.poNumber"),
        (PlaceOrder, "poNumber", Some(json!(true)), "data.poNumber"),
        (PlaceOrder, "poNumber", Some(json!(["SECRET"])), "data.poNumber"),
        // ... a number only while exact: two such numbers would be one order.
        (PlaceOrder, "poNumber", Some(json!(9_007_199_254_740_992_u64)), "data.poNumber"),
        (PlaceOrder, "poNumber", Some(json!(1.5)), "data.poNumber"),
        (PlaceOrder, "poNumber", Some(json!(12345.0)), "data.poNumber"),
        (PlaceOrder, "poNumber", Some(json!(1.2345678901234568e26)), "data.poNumber"),
        (PlaceOrder, "poNumber", Some(json!(-7)), "data.poNumber"),
        // placeOrder: text, flags, objects, shipping
        (PlaceOrder, "email", Some(json!(["SECRET@example.com"])), "data.email"),
        (PlaceOrder, "contact", Some(json!({"cc": 1})), "data.contact"),
        (PlaceOrder, "tag", Some(json!(true)), "data.tag"),
        (PlaceOrder, "notifyReceiverEmail", Some(json!(2)), "data.notifyReceiverEmail"),
        (PlaceOrder, "notifyReceiverEmail", Some(json!("2")), "data.notifyReceiverEmail"),
        (PlaceOrder, "notifyReceiverEmail", Some(json!("")), "data.notifyReceiverEmail"),
        (PlaceOrder, "notifyAdminEmail", Some(json!(-1)), "data.notifyAdminEmail"),
        (PlaceOrder, "notifyAdminEmail", Some(json!(0.5)), "data.notifyAdminEmail"),
        (PlaceOrder, "notifyAdminEmail", Some(json!("false")), "data.notifyAdminEmail"),
        (PlaceOrder, "userMeta", Some(json!("SECRET-member")), "data.userMeta"),
        (PlaceOrder, "userMeta", Some(json!([1])), "data.userMeta"),
        (PlaceOrder, "loungeData", Some(json!(5)), "data.loungeData"),
        (PlaceOrder, "shippingCity", Some(json!(true)), "data.shippingCity"),
        (PlaceOrder, "shippingFirstName", Some(json!({})), "data.shippingFirstName"),
        // getOrderDetails: addressing (the valid body uses poNumber)
        (GetOrderDetails, "poNumber", None, "data.poNumber"),
        (GetOrderDetails, "poNumber", Some(json!("")), "data.poNumber"),
        (GetOrderDetails, "poNumber", Some(json!(null)), "data.poNumber"),
        (GetOrderDetails, "poNumber", Some(json!(true)), "data.poNumber"),
        (GetOrderDetails, "poNumber", Some(json!({})), "data.poNumber"),
        (GetOrderDetails, "orderId", Some(json!(-1)), "data.orderId"),
        (GetOrderDetails, "orderId", Some(json!(1.5)), "data.orderId"),
        (GetOrderDetails, "orderId", Some(json!("SECRET")), "data.orderId"),
        (GetOrderDetails, "orderId", Some(json!("")), "data.orderId"),
        (GetOrderDetails, "orderId", Some(json!("-5")), "data.orderId"),
        (GetOrderDetails, "orderId", Some(json!("12a")), "data.orderId"),
        (GetOrderDetails, "orderId", Some(json!(true)), "data.orderId"),
        (GetOrderDetails, "sendMailToReceiver", Some(json!(2)), "data.sendMailToReceiver"),
        (GetOrderDetails, "sendMailToReceiver", Some(json!("yes")), "data.sendMailToReceiver"),
        (GetOrderDetails, "sendMailToReceiver", Some(json!([1])), "data.sendMailToReceiver"),
        // getOrderHistory
        (GetOrderHistory, "startDate", Some(json!("2024-1-01")), "data.startDate"),
        (GetOrderHistory, "startDate", Some(json!("2024-13-01")), "data.startDate"),
        (GetOrderHistory, "startDate", Some(json!("2024-00-10")), "data.startDate"),
        (GetOrderHistory, "startDate", Some(json!("2024-01-00")), "data.startDate"),
        (GetOrderHistory, "startDate", Some(json!("2024-01-32")), "data.startDate"),
        (GetOrderHistory, "startDate", Some(json!("2024-04-31")), "data.startDate"),
        (GetOrderHistory, "startDate", Some(json!("2024-02-30")), "data.startDate"),
        (GetOrderHistory, "startDate", Some(json!("2023-02-29")), "data.startDate"),
        (GetOrderHistory, "startDate", Some(json!("1900-02-29")), "data.startDate"),
        (GetOrderHistory, "startDate", Some(json!("0000-01-01")), "data.startDate"),
        (GetOrderHistory, "startDate", Some(json!("2024/01/01")), "data.startDate"),
        (GetOrderHistory, "startDate", Some(json!("+024-01-01")), "data.startDate"),
        (GetOrderHistory, "startDate", Some(json!("2024-01-01T00:00:00Z")), "data.startDate"),
        (GetOrderHistory, "startDate", Some(json!(20240101)), "data.startDate"),
        (GetOrderHistory, "endDate", Some(json!("SECRET")), "data.endDate"),
        (GetOrderHistory, "endDate", Some(json!("2023-12-31")), "data.endDate"),
        (GetOrderHistory, "limit", Some(json!(-1)), "data.limit"),
        (GetOrderHistory, "limit", Some(json!("five")), "data.limit"),
        (GetOrderHistory, "page", Some(json!("-1")), "data.page"),
        (GetOrderHistory, "startDate", Some(json!(" ")), "data.startDate"),
        (GetOrderHistory, "page", Some(json!(2.5)), "data.page"),
        (GetOrderHistory, "tag", Some(json!([])), "data.tag"),
        // paymentHistory
        (PaymentHistory, "startDate", Some(json!("2024-02-30")), "data.startDate"),
        (PaymentHistory, "endDate", Some(json!("31-01-2024")), "data.endDate"),
        (PaymentHistory, "endDate", Some(json!("2023-01-31")), "data.endDate"),
        (PaymentHistory, "limit", Some(json!(0.5)), "data.limit"),
        (PaymentHistory, "page", Some(json!(-2)), "data.page"),
        (PaymentHistory, "page", Some(json!("1.0")), "data.page"),
    ]
}

#[test]
fn each_broken_rule_names_its_field() {
    for (op, key, value, field) in broken_cases() {
        let data = with(valid(op), key, value.clone());
        let err = validate(op, &data).expect_err(&format!("{op} {data} must fail"));
        assert_eq!(err.field, field, "{op} {data}: {}", err.message);
        assert_eq!(prepare(op, data.clone()), Err(err.clone()), "{op} {data}");
        // The message is a sentence that names the field ...
        assert!(err.message.contains(field), "{op} {data}: {}", err.message);
        // ... and never echoes the value.
        assert!(
            !err.message.contains("SECRET"),
            "{op} {data}: {}",
            err.message
        );
        if let Some(Value::String(s)) = &value {
            if s.chars().count() >= 4 {
                assert!(
                    !err.message.contains(s.as_str()),
                    "{op} {data}: {}",
                    err.message
                );
            }
        }
    }
}

/// A filter's `key` or `value` sent as `null` is missing, as an absent one
/// is ("a required one may be neither", validate.rs), not of a wrong type.
/// A poNumber of `5.0` or `5e0` is a whole number below 2^53 and still
/// refused (kept as its text it would not be the order `5` is): the
/// message says how a number must be written, so it does not contradict
/// itself.
#[test]
fn a_po_number_with_a_fraction_point_or_exponent_is_told_to_use_digits() {
    for po in [json!(5.0), serde_json::from_str::<Value>("5e0").unwrap()] {
        let err = validate(Operation::PlaceOrder, &with(valid(Operation::PlaceOrder), "poNumber", Some(po.clone()))).unwrap_err();
        assert_eq!(err.field, "data.poNumber");
        assert!(err.message.ends_with("(or a whole number below 2^53, in digits only)"), "{po}: {}", err.message);
    }
    assert_eq!(validate(Operation::PlaceOrder, &with(valid(Operation::PlaceOrder), "poNumber", Some(json!(5)))), Ok(()));
}

#[test]
fn a_null_filter_key_or_value_is_missing() {
    for (filter, field) in [
        (json!({"key": null, "value": "usa"}), "data.filters[0].key"),
        (json!({"key": "country", "value": null}), "data.filters[0].value"),
    ] {
        let err = validate(Operation::GetVouchers, &json!({"filters": [filter]})).unwrap_err();
        assert_eq!((err.field.as_str(), err.message), (field, format!("{field} is required")));
    }
}

/// A string of digits beyond `u64` saturates, never wraps ("Values beyond
/// `u64` saturate", validate.rs): 2^64 is a quantity for Xoxoday to judge
/// and an orderId that names an order, not a 0. A JSON integer is read
/// exactly past 2^53 too (the key routes read their members with it).
#[test]
fn whole_numbers_are_exact_and_saturate_past_u64() {
    assert_eq!(validate::integer(&json!(9_007_199_254_740_993u64)), Some(9_007_199_254_740_993));
    let big = "18446744073709551616";
    assert_eq!(validate::whole_number(&json!(big)), Some(u64::MAX));
    assert_eq!(validate(Operation::PlaceOrder, &with(valid(Operation::PlaceOrder), "quantity", Some(json!(big)))), Ok(()));
    assert_eq!(validate(Operation::GetOrderDetails, &json!({"orderId": big})), Ok(()));
}

#[test]
fn order_details_addressing() {
    let cases: &[(Value, Result<(), &str>)] = &[
        (json!({}), Err("data.poNumber")),
        (
            json!({"poNumber": null, "orderId": null}),
            Err("data.poNumber"),
        ),
        (json!({"poNumber": "", "orderId": 0}), Err("data.poNumber")),
        (json!({"orderId": "0"}), Err("data.poNumber")),
        (json!({"orderId": "000"}), Err("data.poNumber")),
        // Both given: Xoxoday documents which to blank, not that both is an
        // error, so it decides.
        (json!({"poNumber": "PO-1", "orderId": 7}), Ok(())),
        (json!({"poNumber": "PO-1", "orderId": "7"}), Ok(())),
        (json!({"poNumber": "PO-1", "orderId": "0"}), Ok(())),
        (json!({"poNumber": "", "orderId": "7"}), Ok(())),
        (json!({"poNumber": null, "orderId": 7}), Ok(())),
    ];
    for (data, expected) in cases {
        let got = validate(Operation::GetOrderDetails, data).map_err(|e| e.field);
        assert_eq!(got, expected.map_err(str::to_owned), "{data}");
    }
    let err = validate(Operation::GetOrderDetails, &json!({})).unwrap_err();
    assert!(
        err.message.contains("poNumber") && err.message.contains("orderId"),
        "{}",
        err.message
    );
    assert!(err.message.contains("required"), "{}", err.message);
}

// ------------------------------------------------------------ what is sent

#[test]
fn prepare_sends_values_as_given() {
    // Numbers and numeric strings go upstream exactly as the caller wrote
    // them: a merchandise id keeps its leading zeros, a long orderId its
    // digits.
    let order = json!({"productId": "000123", "quantity": "2", "denomination": "25.50", "poNumber": "PO-1",
                       "email": "", "contact": "", "tag": "t", "notifyReceiverEmail": 1, "notifyAdminEmail": 0,
                       "extra": {"kept": [1, "2"]}});
    assert_eq!(prepare(Operation::PlaceOrder, order.clone()), Ok(order));
    let details = json!({"orderId": "123456789012345678901234567890", "poNumber": "", "sendMailToReceiver": 0});
    assert_eq!(prepare(Operation::GetOrderDetails, details.clone()), Ok(details));
    let vouchers = json!({"limit": "10", "page": 1.0, "filters": [{"key": "minPrice", "value": "10"}],
                          "sort": {"field": "", "order": ""}, "includeProducts": ""});
    assert_eq!(prepare(Operation::GetVouchers, vouchers.clone()), Ok(vouchers));
}

#[test]
fn prepare_fills_documented_defaults() {
    let sent = prepare(Operation::PlaceOrder, valid(Operation::PlaceOrder)).unwrap();
    assert_eq!(sent["notifyReceiverEmail"], 0);
    assert_eq!(sent["notifyAdminEmail"], 0);
    let sent = prepare(Operation::PlaceOrder, with(valid(Operation::PlaceOrder), "notifyAdminEmail", Some(Value::Null))).unwrap();
    assert_eq!(sent["notifyAdminEmail"], 0, "null is absent");
    let sent = prepare(Operation::GetOrderDetails, json!({"orderId": "42"})).unwrap();
    assert_eq!(sent, json!({"orderId": "42", "sendMailToReceiver": 0}));
    let sent = prepare(Operation::GetOrderDetails, json!({"poNumber": "PO-9"})).unwrap();
    assert_eq!(sent, json!({"poNumber": "PO-9", "orderId": null, "sendMailToReceiver": 0}));
    // Operations without defaults are untouched.
    for op in [Operation::GetFilters, Operation::GetBalance, Operation::GetOrderHistory, Operation::PaymentHistory] {
        assert_eq!(prepare(op, valid(op)), Ok(valid(op)), "{op}");
    }
    let listed: Vec<(Operation, &str)> = defaults().map(|(op, name, _)| (op, name)).collect();
    assert_eq!(
        listed,
        [(Operation::PlaceOrder, "notifyReceiverEmail"), (Operation::PlaceOrder, "notifyAdminEmail"),
         (Operation::GetOrderDetails, "sendMailToReceiver"), (Operation::GetOrderDetails, "orderId")]
    );
}

#[test]
fn prepare_writes_flags_and_empty_objects_in_the_documented_form() {
    for (given, sent) in [(json!(true), 1), (json!(false), 0), (json!("1"), 1), (json!("0"), 0), (json!(1.0), 1), (json!(0), 0)] {
        let order = with(valid(Operation::PlaceOrder), "notifyReceiverEmail", Some(given.clone()));
        let order = with(order, "notifyAdminEmail", Some(given.clone()));
        let out = prepare(Operation::PlaceOrder, order).unwrap();
        assert_eq!((&out["notifyReceiverEmail"], &out["notifyAdminEmail"]), (&json!(sent), &json!(sent)), "{given}");
        let out = prepare(Operation::GetOrderDetails, json!({"poNumber": "P", "sendMailToReceiver": given})).unwrap();
        assert_eq!(out["sendMailToReceiver"], json!(sent));
        let out = prepare(Operation::GetVouchers, json!({"limit": 1, "page": 1, "exchangeRate": given})).unwrap();
        assert_eq!(out["exchangeRate"], json!(sent));
    }
    assert_eq!(prepare(Operation::GetBalance, json!([])), Ok(json!({})));
    let out = prepare(Operation::PlaceOrder, with(valid(Operation::PlaceOrder), "userMeta", Some(json!([])))).unwrap();
    assert_eq!(out["userMeta"], json!({}));
    let out = prepare(Operation::GetVouchers, json!({"limit": 1, "page": 1, "sort": []})).unwrap();
    assert_eq!(out["sort"], json!({}));
    // Empty filters as an object (a JavaScript client's "none") go as the documented array;
    // nothing else about filters or the counts changes.
    assert_eq!(prepare(Operation::GetVouchers, json!({"limit": "0", "page": 0, "filters": {}})), Ok(json!({"limit": "0", "page": 0, "filters": []})));
    let ranged = json!({"filters": [{"key": "price", "value": "0 - 1000"}]});
    assert_eq!(prepare(Operation::GetVouchers, ranged.clone()), Ok(ranged));
    let out = prepare(Operation::PlaceOrder, with(valid(Operation::PlaceOrder), "loungeData", Some(json!([])))).unwrap();
    assert_eq!(out["loungeData"], json!({}));
    // Only an operation's own flags and objects: another's are unknown
    // fields there, sent as given.
    let foreign = json!({"poNumber": "P", "sendMailToReceiver": 0, "notifyReceiverEmail": "1", "exchangeRate": true,
                         "userMeta": [], "sort": []});
    assert_eq!(prepare(Operation::GetOrderDetails, foreign.clone()), Ok(with(foreign, "orderId", Some(Value::Null))));
    // A flag left null where no default applies stays null.
    let out = prepare(Operation::GetVouchers, json!({"limit": 1, "page": 1, "exchangeRate": null})).unwrap();
    assert_eq!(out["exchangeRate"], Value::Null);
}

/// An object of `levels` levels: `{"k":{"k":...{"k":"x"}}}`, arrays between
/// when `arrays` (each array a level too).
fn nested(levels: usize, arrays: bool) -> Value {
    (1..levels).fold(json!({"k": "x"}), |inner, n| if arrays && (levels - n).is_multiple_of(2) { json!([inner]) } else { json!({ "k": inner }) })
}

#[test]
fn data_nests_at_most_64_levels() {
    // `data` is the first level; a field of it may nest 63 more, known
    // (placeOrder's userMeta and loungeData) or not.
    for (op, name) in [
        (Operation::PlaceOrder, "userMeta"),
        (Operation::PlaceOrder, "loungeData"),
        (Operation::PlaceOrder, "futureField"),
        (Operation::GetBalance, "futureField"),
        (Operation::GetVouchers, "sort"),
    ] {
        for arrays in [false, true] {
            assert_eq!(nested(63, arrays).to_string().matches(['{', '[']).count(), 63);
            let ok = with(valid(op), name, Some(nested(63, arrays)));
            assert_eq!(prepare(op, ok).err(), None, "{op} {name}: 64 levels pass");
            for levels in [64, 125, 127] {
                let deep = with(valid(op), name, Some(nested(levels, arrays)));
                let err = validate(op, &deep).expect_err("too deep");
                assert_eq!(err.field, "data");
                assert_eq!(err.message, "data must be nested at most 64 levels deep");
            }
        }
        // Width is not depth: many shallow members pass.
        let wide: serde_json::Map<String, Value> = (0..500).map(|i| (format!("m{i}"), json!({"a": [1, {"b": 2}]}))).collect();
        let mut data = valid(op);
        data[name] = Value::Object(wide);
        if name != "sort" {
            assert!(validate(op, &data).is_ok(), "{op} {name}");
        }
    }
}

#[test]
fn validation_error_displays_its_message() {
    let err = ValidationError::new("data.x", "data.x must be a string");
    assert_eq!(err.to_string(), "data.x must be a string");
}

// ------------------------------------------------------------------ envelopes

#[test]
fn envelopes_are_built_exactly() {
    let data = json!({"k": [1, {"v": null}]});
    let expected = [
        json!({"query": "plumProAPI.mutation.getFilters", "tag": "plumProAPI", "variables": {"data": data}}),
        json!({"query": "plumProAPI.mutation.getVouchers", "tag": "plumProAPI", "variables": {"data": data}}),
        json!({"query": "plumProAPI.query.getBalance", "tag": "plumProAPI", "variables": {"data": data}}),
        json!({"query": "plumProAPI.mutation.placeOrder", "tag": "plumProAPI", "variables": {"data": data}}),
        json!({"query": "plumProAPI.mutation.getOrderDetails", "tag": "plumProAPI", "variables": {"data": data}}),
        json!({"query": "plumProAPI.mutation.getOrderHistory", "tag": "plumProAPI", "variables": {"data": data}}),
        json!({"query": "plumProAPI.mutation.paymentHistory", "tag": "plumProAPI", "data": {"data": data}}),
    ];
    for (op, expected) in Operation::ALL.into_iter().zip(expected) {
        assert_eq!(build_envelope(op, data.clone()), expected, "{op}");
    }
    assert_eq!(
        build_envelope(Operation::GetBalance, json!({})).to_string(),
        r#"{"query":"plumProAPI.query.getBalance","tag":"plumProAPI","variables":{"data":{}}}"#
    );
}

#[test]
fn envelope_text_is_build_envelope_as_text() {
    let odd = json!({"z": [1, 2.5, null, true], "a": {"y": "é \" \\ \n \u{1}", "b": -0.0}, "": {}});
    for op in Operation::ALL {
        for data in [valid(op), json!({}), odd.clone(), with(valid(op), "extra", Some(odd.clone()))] {
            assert_eq!(envelope_text(op, &data), build_envelope(op, data.clone()).to_string(), "{op}");
        }
    }
}

/// What "forwarded as sent" means for numbers (openapi.json's first
/// description): the same JSON number, not always the same spelling. A
/// caller's body is read by the worker's one reader, then written back.
#[test]
fn numbers_are_forwarded_as_the_same_number_not_the_same_spelling() {
    let sent = |text: &str| {
        let data: Value = crate::jsontext::from_text(text).unwrap();
        let out = envelope_text(Operation::GetVouchers, &data);
        out[out.find("\"data\":").unwrap() + 7..out.len() - 2].to_owned()
    };
    assert_eq!(sent(r#"{"limit":10,"page":"1","productId":18446744073709551615}"#), r#"{"limit":10,"page":"1","productId":18446744073709551615}"#);
    assert_eq!(sent(r#"{"limit":1e1,"page":-0}"#), r#"{"limit":10.0,"page":-0.0}"#);
    assert_eq!(sent(r#"{"productId":18446744073709551616}"#), r#"{"productId":1.8446744073709552e+19}"#);
    // A decimal with 17 significant digits: the nearest double, or one
    // step from it (serde_json's fast reader), and stable on a second pass.
    let text = sent(r#"{"denomination":3996.1915000000004}"#);
    let back: f64 = text[16..text.len() - 1].parse().unwrap();
    let x = 3996.1915000000004_f64;
    assert!((back - x).abs() <= 2.0 * x * f64::EPSILON, "{text}");
    assert_eq!(sent(&text), text);
}

#[test]
fn parse_envelope_round_trips_build_envelope() {
    for op in Operation::ALL {
        let data = with(valid(op), "extra", Some(json!({"kept": true})));
        let envelope = build_envelope(op, data.clone());
        assert_eq!(parse_envelope(&envelope), Ok(ParsedEnvelope::Known(op, data.clone())), "{op}");
        let (parsed_op, parsed_data) = known(&envelope);
        assert_eq!(validate(parsed_op, &parsed_data), Ok(()), "{op}");
        assert_eq!(build_envelope(parsed_op, parsed_data), envelope, "{op}");
    }
}

/// The operation and data of an envelope that must parse as a known one.
fn known(envelope: &Value) -> (Operation, Value) {
    match parse_envelope(envelope) {
        Ok(ParsedEnvelope::Known(op, data)) => (op, data),
        other => panic!("{envelope}: {other:?}"),
    }
}

/// Xoxoday's lounge, airmiles and merchandise pages pass `variables` flat,
/// without a `data` wrapper: the same call, forwarded in `variables.data`.
#[test]
fn flat_variables_are_the_data() {
    for op in [Operation::GetFilters, Operation::GetOrderDetails, Operation::GetVouchers, Operation::GetBalance] {
        let data = valid(op);
        let (parsed_op, parsed) = known(&json!({"query": op.query(), "tag": "plumProAPI", "variables": data}));
        assert_eq!((parsed_op, &parsed), (op, &data), "{op:?}");
        assert_eq!(build_envelope(op, parsed), json!({"query": op.query(), "tag": "plumProAPI", "variables": {"data": data}}));
    }
    let (_, parsed) = known(&json!({"query": Operation::GetFilters.query(), "variables": {"filterGroupCode": "Country", "includeFilters": "usa", "excludeFilters": "uae"}}));
    assert_eq!(parsed, json!({"filterGroupCode": "Country", "includeFilters": "usa", "excludeFilters": "uae"}));
    // A `data` member is the wrapper, as before.
    let (_, parsed) = known(&json!({"query": Operation::GetBalance.query(), "variables": {"data": {}}}));
    assert_eq!(parsed, json!({}));
}

#[test]
fn payment_history_either_placement() {
    let data = valid(Operation::PaymentHistory);
    let q = Operation::PaymentHistory.query();
    let documented = json!({"query": q, "tag": "plumProAPI", "data": {"data": data}});
    let like_others = json!({"query": q, "tag": "plumProAPI", "variables": {"data": data}});
    let both_equal = json!({"query": q, "data": {"data": data}, "variables": {"data": data}});
    let null_other = json!({"query": q, "data": null, "variables": {"data": data}});
    let both_differ =
        json!({"query": q, "data": {"data": data}, "variables": {"data": {"other": 1}}});
    // Xoxoday's MCP client: its own name for the report, in variables.data.
    let mcp = json!({"query": "plumProAPI.mutation.getPaymentReport", "tag": "plumProAPI", "variables": {"data": data}});
    let mcp_documented = json!({"query": "plumProAPI.mutation.getPaymentReport", "data": {"data": data}});
    // Flat in `data` (Xoxoday's merchandise, top-up, charity and lounge
    // pages) or in `variables`.
    let flat = json!({"query": q, "tag": "plumProAPI", "data": data});
    let flat_variables = json!({"query": q, "tag": "plumProAPI", "variables": data});
    // A wrapped placement wins over a flat one (an empty or stray `data`
    // beside `variables.data` is not the data).
    let empty_data = json!({"query": q, "data": {}, "variables": {"data": data}});
    // Flat in both: `data`, paymentHistory's documented member, wins.
    let flat_both = json!({"query": q, "data": data, "variables": {"other": 1}});
    let stray_data = json!({"query": q, "data": {"tag": "x"}, "variables": {"data": data}});
    for envelope in [
        &flat_both,
        &empty_data,
        &stray_data,
        &flat,
        &flat_variables,
        &documented,
        &like_others,
        &both_equal,
        &null_other,
        &both_differ,
        &mcp,
        &mcp_documented,
    ] {
        let (op, parsed) = known(envelope);
        assert_eq!(op, Operation::PaymentHistory);
        assert_eq!(parsed, data);
        // Whatever the client sent, the canonical envelope uses data.data.
        assert_eq!(build_envelope(op, parsed), documented);
    }
}

#[test]
fn parse_envelope_errors() {
    let q = |op: Operation| op.query();
    let invalid: &[(Value, &str)] = &[
        (json!([]), "envelope"),
        (json!("plumProAPI.query.getBalance"), "envelope"),
        (json!(null), "envelope"),
        (
            json!({"tag": "plumProAPI", "variables": {"data": {}}}),
            "query",
        ),
        (json!({"query": 5, "variables": {"data": {}}}), "query"),
        (json!({"query": null, "variables": {"data": {}}}), "query"),
        (json!({"query": q(Operation::GetBalance)}), "variables.data"),
        (
            json!({"query": q(Operation::GetBalance), "variables": null}),
            "variables.data",
        ),
        (
            json!({"query": q(Operation::GetBalance), "variables": "x"}),
            "variables",
        ),
        (
            json!({"query": q(Operation::GetBalance), "data": {"data": {}}}),
            "variables.data",
        ),
        (json!({"query": q(Operation::PaymentHistory)}), "data.data"),
        (
            json!({"query": q(Operation::PaymentHistory), "data": "x"}),
            "data",
        ),
        (
            json!({"query": q(Operation::PaymentHistory), "variables": [1]}),
            "variables",
        ),
    ];
    for (envelope, field) in invalid {
        match parse_envelope(envelope) {
            Err(EnvelopeError::Invalid(e)) => {
                assert_eq!(e.field, *field, "{envelope}: {}", e.message);
                assert!(e.message.contains(field), "{envelope}: {}", e.message);
            }
            other => panic!("{envelope}: {other:?}"),
        }
    }
    // A query that is there but is not text is told so, not called missing.
    let Err(EnvelopeError::Invalid(e)) = parse_envelope(&json!({"query": 5, "variables": {"data": {}}})) else { panic!("a number is no query") };
    assert_eq!(e.message, "query must be a string");
}

#[test]
fn unknown_queries_are_described_safely() {
    let unknown =
        |query: &str| match parse_envelope(&json!({"query": query, "variables": {"data": {}}})) {
            Err(EnvelopeError::UnknownOperation(d)) => d,
            other => panic!("{query}: {other:?}"),
        };
    assert_eq!(unknown("otherAPI.mutation.cancelOrder"), "otherAPI.mutation.cancelOrder");
    assert_eq!(unknown("getBalance"), "getBalance");
    assert_eq!(unknown(""), "");
    assert_eq!(unknown(&long(80)), long(80));

    let cut = unknown(&"é".repeat(1000));
    assert_eq!(cut.chars().count(), 80);
    assert!(cut.ends_with('…'));
    assert!(cut.starts_with("éé"));

    assert_eq!(unknown("a\nb\u{0}c"), "a\u{FFFD}b\u{FFFD}c");
    let err = EnvelopeError::UnknownOperation("x".into());
    assert!(err.to_string().contains("unknown operation"));
}

#[test]
fn a_known_operation_under_another_kind_is_that_operation() {
    let parsed = |query: &str, data: Value| parse_envelope(&json!({"query": query, "tag": "plumProAPI", "variables": {"data": data}}));
    assert_eq!(parsed("plumProAPI.mutation.getBalance", json!({})), Ok(ParsedEnvelope::Known(Operation::GetBalance, json!({}))));
    let order = json!({"productId": 1, "quantity": 1, "denomination": 5, "poNumber": "P-1"});
    assert_eq!(parsed("plumProAPI.query.placeOrder", order.clone()), Ok(ParsedEnvelope::Known(Operation::PlaceOrder, order)));
    // ...and is validated as that operation (the route prepares what it returns).
    let ParsedEnvelope::Known(op, data) = parsed("plumProAPI.query.placeOrder", json!({"quantity": 1})).unwrap() else { panic!() };
    assert!(prepare_call(op, data).is_err());
    // Null data (Go's nil, Python's None) is none: {} for getBalance, what
    // placeOrder needs then named.
    assert_eq!(parsed("plumProAPI.query.getBalance", Value::Null), Ok(ParsedEnvelope::Known(Operation::GetBalance, json!({}))));
    let ParsedEnvelope::Known(op, data) = parsed("plumProAPI.mutation.placeOrder", Value::Null).unwrap() else { panic!() };
    assert_eq!(prepare_call(op, data).unwrap_err().field, "data.productId");
    // Its name in another case: that operation too.
    assert_eq!(parsed("plumProAPI.query.GetBalance", json!({})), Ok(ParsedEnvelope::Known(Operation::GetBalance, json!({}))));
    let order = json!({"productId": 1, "quantity": 1, "denomination": 5, "poNumber": "P-1"});
    for query in ["plumProAPI.mutation.PlaceOrder", "plumProAPI.mutation.placeorder", "plumProAPI.query.PLACEORDER"] {
        assert_eq!(parsed(query, order.clone()), Ok(ParsedEnvelope::Known(Operation::PlaceOrder, order.clone())), "{query}");
    }
    // Sent upstream under its documented query.
    assert_eq!(build_envelope(Operation::GetBalance, json!({}))["query"], "plumProAPI.query.getBalance");
}

#[test]
fn unknown_plum_queries_are_left_unvalidated() {
    let parsed = |query: &str| parse_envelope(&json!({"query": query, "anything": [1]}));
    for (query, name) in [
        ("plumProAPI.mutation.cancelOrder", "cancelOrder"),
        ("plumProAPI.query.getPaymentReport", "getPaymentReport"),
        ("plumProAPI.Query.get_Mobile_Operator2", "get_Mobile_Operator2"),
    ] {
        assert_eq!(parsed(query), Ok(ParsedEnvelope::Unvalidated(name.into())), "{query}");
    }
    let at_limit = format!("plumProAPI.{}.{}", "q".repeat(64), "n".repeat(64));
    assert!(matches!(parsed(&at_limit), Ok(ParsedEnvelope::Unvalidated(_))));
    for query in [
        "plumProAPI.mutation",
        "plumProAPI.mutation.",
        "plumProAPI..cancelOrder",
        "plumProAPI.mutation.cancel.Order",
        "plumProAPI.mutation.cancel-order",
        "plumProAPI.mutation.cancel order",
        "plumProAPI.mutation.cancelOrder\n",
        "plumproapi.mutation.cancelOrder",
        " plumProAPI.mutation.cancelOrder",
        "plumProAPI.mutation.é",
        &format!("plumProAPI.mutation.{}", "n".repeat(65)),
        &format!("plumProAPI.{}.x", "q".repeat(65)),
    ] {
        assert!(matches!(parsed(query), Err(EnvelopeError::UnknownOperation(_))), "{query}");
    }
    assert_eq!(UNVALIDATED_SCOPE, "*");
}

#[test]
fn envelope_data_is_returned_for_validation_not_checked() {
    // A string where the object belongs is the validator's to report.
    let envelope = json!({"query": Operation::GetBalance.query(), "variables": {"data": "x"}});
    let (op, data) = known(&envelope);
    assert_eq!(validate(op, &data).unwrap_err().field, "data");
}

// --------------------------------------------------------------- fingerprints

#[test]
fn canonical_json_sorts_keys_and_drops_whitespace() {
    let value: Value = serde_json::from_str(
        r#"{ "b": 1, "a": { "d": [3, {"f": 1, "e": 2}], "c": null }, "A": "x" }"#,
    )
    .unwrap();
    assert_eq!(
        canonical::to_canonical_json(&value),
        r#"{"A":"x","a":{"c":null,"d":[3,{"e":2,"f":1}]},"b":1}"#
    );
    let tricky = json!({"s": "quote\" backslash\\ nl\n tab\t ctl\u{1} del\u{7f} é 😀", "t": true, "f": false,
                        "n": -12, "u": u64::MAX, "x": 0.5, "big": 1e300});
    // Same escaping as serde_json for a body whose keys are already sorted.
    let expected = serde_json::to_string(&json!({"big": 1e300, "f": false, "n": -12,
        "s": "quote\" backslash\\ nl\n tab\t ctl\u{1} del\u{7f} é 😀", "t": true, "u": u64::MAX, "x": 0.5}))
    .unwrap();
    assert_eq!(canonical::to_canonical_json(&tricky), expected);
}

#[test]
fn fingerprint_is_key_order_independent() {
    let a: Value = serde_json::from_str(
        r#"{"productId":1,"quantity":2,"denomination":10,"poNumber":"PO-1","userMeta":{"x":1,"y":[{"b":2,"a":1}]}}"#,
    )
    .unwrap();
    let b: Value = serde_json::from_str(
        r#"{"userMeta":{"y":[{"a":1,"b":2}],"x":1},"poNumber":"PO-1","denomination":10,"quantity":2,"productId":1}"#,
    )
    .unwrap();
    assert_eq!(order_fingerprint(&a), order_fingerprint(&b));
    // 10 and 10.0 are the same denomination.
    let c = with(a.clone(), "denomination", Some(json!(10.0)));
    assert_eq!(order_fingerprint(&a), order_fingerprint(&c));
}

#[test]
fn fingerprint_reads_numeric_strings_as_numbers() {
    let base = json!({"productId": 14856, "quantity": 2, "denomination": 25, "poNumber": "12345"});
    let fp = order_fingerprint(&base);
    for (key, value) in [
        ("productId", json!("14856")),
        ("productId", json!("014856")),
        ("productId", json!(14856.0)),
        ("quantity", json!("2")),
        ("quantity", json!(2.0)),
        ("denomination", json!("25")),
        ("denomination", json!("25.0")),
        ("denomination", json!("25.000")),
        ("denomination", json!(25.0)),
        ("poNumber", json!(12345)),
    ] {
        assert_eq!(order_fingerprint(&with(base.clone(), key, Some(value.clone()))), fp, "{key} = {value}");
    }
    let all_strings = json!({"productId": "14856", "quantity": "2", "denomination": "25.00", "poNumber": 12345});
    assert_eq!(order_fingerprint(&all_strings), fp);
    // Different values stay different; text stays text.
    for (key, value) in [
        ("productId", json!("MERCH-14856")),
        ("denomination", json!("25.5")),
        ("quantity", json!("3")),
        ("poNumber", json!("12345.0")),
        ("poNumber", json!(12346)),
    ] {
        assert_ne!(order_fingerprint(&with(base.clone(), key, Some(value.clone()))), fp, "{key} = {value}");
    }
    // Only placeOrder's numeric fields are read as numbers.
    let tagged = with(base.clone(), "tag", Some(json!("7")));
    assert_ne!(order_fingerprint(&tagged), order_fingerprint(&with(base, "tag", Some(json!(7)))));
}

#[test]
fn fingerprint_reads_flags_and_empty_objects_as_their_values() {
    let base = json!({"productId": 1, "quantity": 1, "denomination": 5, "poNumber": "P",
                      "notifyReceiverEmail": 1, "notifyAdminEmail": 0, "userMeta": {}});
    let fp = order_fingerprint(&base);
    for (key, value) in [("notifyReceiverEmail", json!(true)), ("notifyReceiverEmail", json!("1")),
                         ("notifyAdminEmail", json!(false)), ("notifyAdminEmail", json!("0")), ("userMeta", json!([]))] {
        assert_eq!(order_fingerprint(&with(base.clone(), key, Some(value.clone()))), fp, "{key} = {value}");
    }
    // A flag left out is not the same body as the flag given (as always).
    assert_ne!(order_fingerprint(&with(base.clone(), "notifyAdminEmail", None)), fp);
}

#[test]
fn fingerprint_of_a_body_in_documented_forms_is_unchanged() {
    // Bodies plumgate accepted before numeric strings and flag forms hash as
    // they did then: SHA-256 of the canonical text, nothing rewritten, so
    // orders stored before keep matching their retries.
    for body in [
        valid(Operation::PlaceOrder),
        json!({"productId": 10100, "quantity": 2, "denomination": 25.5, "poNumber": "PO-7", "email": "a@example.com",
               "notifyReceiverEmail": 1, "notifyAdminEmail": 0, "tag": "t", "userMeta": {"a": [1]}, "extra": null}),
        json!({"productId": "MERCH-1", "quantity": 1, "denomination": 10, "poNumber": "PO-8"}),
    ] {
        let canonical = canonical::to_canonical_json(&body);
        let digest = Sha256::digest(canonical.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(order_fingerprint(&body), hex, "{body}");
    }
}

#[test]
fn prepare_call_fingerprints_the_order_as_given() {
    let given = json!({"productId": "10100", "quantity": "1", "denomination": "25", "poNumber": "PO-1"});
    let p = prepare_call(Operation::PlaceOrder, given.clone()).unwrap();
    assert_eq!(p.data, prepare(Operation::PlaceOrder, given.clone()).unwrap());
    assert_eq!(p.fingerprint.as_deref(), Some(order_fingerprint(&given).as_str()));
    // Not the fingerprint of the data with its defaults added.
    assert_ne!(p.fingerprint.as_deref(), Some(order_fingerprint(&p.data).as_str()));
    assert_eq!(prepare_call(Operation::GetBalance, json!({})).unwrap().fingerprint, None);
    assert_eq!(prepare_call(Operation::PlaceOrder, json!({})).unwrap_err().field, "data.productId");
}

#[test]
fn po_number_as_text() {
    assert_eq!(po_number(&json!({"poNumber": "PO-1"})).as_deref(), Some("PO-1"));
    assert_eq!(po_number(&json!({"poNumber": 12345})).as_deref(), Some("12345"));
    assert_eq!(po_number(&json!({"poNumber": null})), None);
    assert_eq!(po_number(&json!({})), None);
    assert_eq!(po_number(&json!([])), None);
}

#[test]
fn fingerprint_changes_with_the_order() {
    let base = valid(Operation::PlaceOrder);
    let fp = order_fingerprint(&base);
    assert_eq!(fp.len(), 64);
    assert!(fp
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    let variants = [
        with(base.clone(), "quantity", Some(json!(2))),
        with(base.clone(), "denomination", Some(json!(25.5))),
        with(base.clone(), "productId", Some(json!("MERCH-14856"))),
        with(base.clone(), "poNumber", Some(json!("PO-2"))),
        with(base.clone(), "email", Some(json!("a@example.com"))),
        with(base.clone(), "userMeta", Some(json!({}))),
        with(base.clone(), "userMeta", Some(json!(null))),
        with(base.clone(), "quantity", None),
    ];
    for v in variants {
        assert_ne!(order_fingerprint(&v), fp, "{v}");
    }
}

#[test]
fn fingerprint_is_sha256_of_the_canonical_text() {
    // sha256("{}") and sha256("{\"a\":1}"), from coreutils' sha256sum.
    assert_eq!(
        order_fingerprint(&json!({})),
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    );
    assert_eq!(
        order_fingerprint(&json!({"a": 1})),
        "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"
    );
}

// -------------------------------------------------------------- reconciliation

#[test]
fn reconcile_request_looks_up_by_po_number() {
    let data = reconcile_request("PO-1");
    assert_eq!(
        data,
        json!({"poNumber": "PO-1", "orderId": null, "sendMailToReceiver": 0})
    );
    assert_eq!(validate(Operation::GetOrderDetails, &data), Ok(()));
    assert_eq!(
        Operation::GetOrderDetails.required_scope(&data),
        "orders:read"
    );
    assert_eq!(
        build_envelope(Operation::GetOrderDetails, data),
        json!({"query": "plumProAPI.mutation.getOrderDetails", "tag": "plumProAPI",
               "variables": {"data": {"poNumber": "PO-1", "orderId": null, "sendMailToReceiver": 0}}})
    );
}

// ------------------------------------------------------------------- openapi

fn openapi() -> Value {
    serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON")
}

#[test]
fn openapi_is_3_1() {
    let doc = openapi();
    let version = doc["openapi"].as_str().expect("openapi is a string");
    assert!(version.starts_with("3.1"), "{version}");
    assert!(doc["info"]["title"].is_string());
    assert_eq!(
        doc["components"]["securitySchemes"]["callerKey"]["scheme"],
        "bearer"
    );
}

#[test]
fn openapi_has_every_route_and_operation() {
    let doc = openapi();
    let paths = doc["paths"].as_object().expect("paths");
    let mut expected = vec![
        ("/healthz", "get"),
        ("/openapi.json", "get"),
        ("/chef/v1/oauth/api", "post"),
        ("/chef/v1/oauth/token/{token_type}", "post"),
        ("/chef/v1/oauth/token", "get"),
        ("/v1/token", "get"),
        ("/v1/token/refresh", "post"),
        ("/v1/token/recover", "post"),
        ("/v1/keys", "get"),
        ("/v1/keys", "post"),
        ("/v1/keys/{id}", "patch"),
        ("/v1/keys/{id}", "delete"),
        ("/v1/keys/{id}/rotate", "post"),
        ("/v1/audit", "get"),
        ("/v1/dev/caller-key", "get"),
        ("/", "get"),
    ];
    let ops: Vec<String> = Operation::ALL
        .iter()
        .map(|op| format!("/v1/ops/{}", op.name()))
        .collect();
    expected.extend(ops.iter().map(|p| (p.as_str(), "post")));
    for (path, method) in &expected {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} missing"
        );
    }
    let methods: usize = paths.values().map(|p| p.as_object().unwrap().keys().filter(|k| *k != "parameters").count()).sum();
    assert_eq!(
        methods,
        expected.len(),
        "undocumented extra paths or methods: {:?}",
        paths.keys()
    );
    for op in Operation::ALL {
        let post = &doc["paths"][format!("/v1/ops/{}", op.name())]["post"];
        assert_eq!(post["operationId"], op.name());
        let headers = post["responses"]["200"]["headers"].as_object().unwrap();
        assert!(headers.contains_key("x-request-id"), "{op}");
        assert_eq!(
            headers.contains_key("x-plumgate-cache"),
            op.cache_class().is_some(),
            "{op}"
        );
        assert_eq!(
            headers.contains_key("x-plumgate-replayed"),
            op == Operation::PlaceOrder,
            "{op}"
        );
        for status in [
            "400", "401", "403", "409", "413", "429", "502", "503", "504",
        ] {
            assert!(post["responses"].get(status).is_some(), "{op} {status}");
        }
    }
}

#[test]
fn openapi_error_codes_match_the_contract() {
    let doc = openapi();
    let codes =
        &doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"];
    // Every code plumgate answers with, internal_error included: a bug,
    // but also an answer of its own Durable Objects it cannot read (one of
    // a newer version during a deploy), so a generated client must know it.
    let expected: Vec<&str> = crate::errors::ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    let expected = json!(expected);
    assert_eq!(codes, &expected);
    let states = &doc["components"]["schemas"]["TokenStatus"]["properties"]["state"]["enum"];
    assert_eq!(
        states,
        &json!([
            "uninitialized",
            "fresh",
            "stale",
            "expired",
            "reauth_required",
            "credentials_rejected"
        ])
    );
    let token_types = &doc["paths"]["/chef/v1/oauth/token/{token_type}"]["post"]["parameters"][0]["schema"]["enum"];
    assert_eq!(token_types, &json!(crate::dropin::TOKEN_TYPES));
    // expires_in is a string of digits, at most as many as 15 days' seconds.
    let digits = crate::dropin::EXPIRES_IN_SECS.to_string().len();
    for schema in ["TokenAnswer", "TokenValidation"] {
        assert_eq!(doc["components"]["schemas"][schema]["properties"]["expires_in"]["pattern"], format!("^[1-9][0-9]{{0,{}}}$", digits - 1));
    }
}

#[test]
fn openapi_refs_resolve() {
    fn walk(v: &Value, doc: &Value, seen: &mut usize) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let pointer = r.strip_prefix('#').expect("local $ref");
                    assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
                    *seen += 1;
                }
                m.values().for_each(|x| walk(x, doc, seen));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, doc, seen)),
            _ => {}
        }
    }
    let doc = openapi();
    let mut seen = 0;
    walk(&doc, &doc, &mut seen);
    assert!(seen > 50, "{seen}");
}

// ------------------------------------------------------------ order amounts

#[test]
fn amounts_in_every_form_xoxoday_takes() {
    for (v, want) in [
        (json!(25), Some(25_000_000)),
        (json!(25.5), Some(25_500_000)),
        (json!("25"), Some(25_000_000)),
        (json!("025.50"), Some(25_500_000)),
        (json!(0.1), Some(100_000)),
        (json!("0.0000004"), None),
        (json!(0), None),
        (json!("0.00"), None),
        (json!(-5), None),
        (json!("-5"), None),
        (json!("1e3"), None),
        (json!(true), None),
        (json!(null), None),
        (json!(1e300), Some(i64::MAX)),
    ] {
        assert_eq!(amount_micros(&v), want, "{v}");
    }
    assert_eq!(order_amount_micros(&json!({"denomination": "25.5", "quantity": "3"})), Some(76_500_000));
    assert_eq!(order_amount_micros(&json!({"denomination": 10, "quantity": 2.0})), Some(20_000_000));
    assert_eq!(order_amount_micros(&json!({"denomination": 10})), None);
    assert_eq!(order_amount_micros(&json!({"quantity": 1})), None);
    assert_eq!(order_amount_micros(&json!({"denomination": 1e300, "quantity": 5})), Some(i64::MAX), "saturates");
    // A quantity past i64 (valid: any whole count) is never free to the cap.
    for q in [json!("9223372036854775808"), json!(1e19), json!(u64::MAX)] {
        assert_eq!(order_amount_micros(&json!({"denomination": 1, "quantity": q})), Some(i64::MAX), "{q}");
    }
    // Below half a millionth: still an amount, one millionth a unit.
    assert_eq!(order_amount_micros(&json!({"denomination": "0.0000004", "quantity": 1_000_000})), Some(1_000_000));
    assert_eq!(order_amount_micros(&json!({"denomination": 4e-7, "quantity": 3})), Some(3));
    assert_eq!(order_amount_micros(&json!({"denomination": "0.00", "quantity": 3})), None);
    assert_eq!(count_of(&json!("12")), Some(12));
    assert_eq!(count_of(&json!(1.5)), None);
}

#[test]
fn micros_are_written_as_the_numbers_they_are() {
    for (m, want) in [(0, "0"), (25_000_000, "25"), (25_500_000, "25.5"), (3, "0.000003"), (1_000_001, "1.000001"), (-2_500_000, "-2.5")] {
        assert_eq!(micros_text(m), want);
        if m > 0 {
            assert_eq!(amount_micros(&json!(want)), Some(m), "the text reads back as the amount");
        }
    }
}

#[test]
fn openapi_keys_and_audit_match_the_code() {
    use crate::{audit, keys, quota};
    let doc = openapi();
    let s = &doc["components"]["schemas"];
    assert_eq!(s["NewKeyRequest"]["properties"]["scopes"]["items"]["enum"], json!(crate::auth::SCOPES));
    assert_eq!(s["Key"]["properties"]["scopes"]["items"]["enum"], json!(crate::auth::SCOPES));
    let limits = &s["LimitsInput"]["properties"];
    assert_eq!(limits["requests_per_minute"]["maximum"], quota::MAX_REQUESTS_PER_MINUTE);
    assert_eq!(limits["order_amount_per_day"]["anyOf"][0]["maximum"].as_f64(), Some(quota::MAX_ORDER_AMOUNT_PER_DAY as f64 / 1e6));
    assert_eq!(s["Rotation"]["properties"]["grace_secs"]["maximum"], keys::MAX_GRACE_SECS);
    assert_eq!(s["NewKeyAnswer"]["allOf"][1]["properties"]["key"]["pattern"], format!("^{}[0-9a-f]{{{}}}$", keys::KEY_PREFIX, 2 * keys::KEY_RANDOM_BYTES));
    let outcomes: Vec<&str> = audit::Outcome::ALL.iter().map(|o| o.as_str()).collect();
    assert_eq!(s["AuditEntry"]["properties"]["outcome"]["enum"], json!(outcomes));
    let params = doc["paths"]["/v1/audit"]["get"]["parameters"].as_array().unwrap();
    let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!(limit["schema"]["maximum"], audit::MAX_PAGE);
    // The answers the code writes have every member the schemas require.
    let view: Value = serde_json::from_str(&keys::view(
        &keys::create(&[], &[], keys::NewKey { id: "a".into(), scopes: vec!["*".into()], expires_at_ms: None, limits: quota::Limits::default() }, "h".into(), 0).unwrap(),
        &keys::Facts::default(),
        0,
    ))
    .unwrap();
    for name in s["Key"]["required"].as_array().unwrap() {
        assert!(view.get(name.as_str().unwrap()).is_some(), "{name}");
    }
    let a = audit::Attempt::of_order("k", &json!({"productId": 1, "quantity": 1, "denomination": 5, "poNumber": "p"}), "fp", "r");
    let r = audit::classify(audit::Answered::Error { status: 429, code: crate::errors::ErrorCode::QuotaExceeded });
    let entry: Value = serde_json::from_str(&audit::entry(&a, 0, &r)).unwrap();
    for name in s["AuditEntry"]["required"].as_array().unwrap() {
        assert!(entry.get(name.as_str().unwrap()).is_some(), "{name}");
    }
}

#[test]
fn decimal_text_writes_a_balance_as_people_read_it() {
    for (v, want) in [
        (950.5, "950.5"),
        (1000.0, "1000"),
        (0.1, "0.1"),
        (0.1 + 0.2, "0.3"),
        (-12.25, "-12.25"),
        (0.0, "0"),
        (1e-9, "0"),
        (8_999_999_999.25, "8999999999.25"),
        (12_345_678_901.5, "12345678902"),
        (1e13, "10000000000000"),
        (1e300, "9223372036854775807"),
        // A large negative is rounded to whole units like a large positive
        // (not saturated in millionths to -9223372036854.775808).
        (-1e13, "-10000000000000"),
    ] {
        assert_eq!(decimal_text(v), want, "{v:?}");
    }
}

#[test]
fn unknown_queries_go_through_only_for_an_uncapped_star_key() {
    use crate::auth::{Caller, KeySource};
    use crate::quota::Limits;
    let caller = |scopes: &[&str], cap: Option<i64>| {
        let limits = Limits { requests_per_minute: Some(60), order_amount_per_day: cap };
        Caller::new("k", scopes.iter().map(|s| s.to_string()).collect(), limits, KeySource::Runtime)
    };
    assert_eq!(may_forward_unvalidated(&caller(&["*"], None)), Ok(()));
    let no_star = may_forward_unvalidated(&caller(&["orders:write", "catalog"], None)).unwrap_err();
    assert_eq!((no_star.status, no_star.message.as_str()), (403, crate::errors::ApiError::forbidden_unvalidated().message.as_str()));
    let capped = may_forward_unvalidated(&caller(&["*"], Some(1_000_000))).unwrap_err();
    assert_eq!((capped.status, capped.code.as_str()), (403, "forbidden"));
    assert!(capped.message.contains("order_amount_per_day"), "{}", capped.message);
}
