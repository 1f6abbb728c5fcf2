//! Table-driven tests of the operation table, validation, envelopes,
//! fingerprints and the OpenAPI document.

use super::*;
use serde_json::{json, Value};

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
        "plumProAPI.mutation.getPaymentReport",
        "getBalance",
    ] {
        assert_eq!(Operation::from_query(bad), None, "{bad:?}");
    }
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
            json!("not an object"),
            "orders:read",
        ),
    ];
    for (op, data, scope) in cases {
        assert_eq!(op.required_scope(data), *scope, "{op} {data}");
    }
}

// ----------------------------------------------------------------- validation

/// Valid bodies, boundaries included.
#[rustfmt::skip]
fn valid_cases() -> Vec<(Operation, Value)> {
    vec![
        // getFilters
        (Operation::GetFilters, json!({})),
        (Operation::GetFilters, valid(Operation::GetFilters)),
        (Operation::GetFilters, json!({"filterGroupCode": long(200), "includeFilters": "usa,ind"})),
        (Operation::GetFilters, json!({"excludeFilters": "é".repeat(200)})),
        // getVouchers
        (Operation::GetVouchers, valid(Operation::GetVouchers)),
        (Operation::GetVouchers, json!({"limit": 1, "page": 1})),
        (Operation::GetVouchers, json!({"limit": 500, "page": 99999})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 2, "includeProducts": "", "excludeProducts": "1,22,333",
                                        "exchangeRate": 0, "sort": {"field": "name", "order": "DESC", "extra": 1}})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "includeProducts": "42", "exchangeRate": 1})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "filters": []})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1, "filters": [
            {"key": "productName", "value": "Amazon"}, {"key": "country", "value": "usa"},
            {"key": "price", "value": 25}, {"key": "minPrice", "value": "10"}, {"key": "maxPrice", "value": 100.5},
            {"key": "currencyCode", "value": "USD"}, {"key": "deliveryType", "value": "realtime"}]})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1,
                                        "filters": [{"key": "deliveryType", "value": "delayed", "note": "extra"}]})),
        (Operation::GetVouchers, json!({"limit": 10, "page": 1,
                                        "filters": vec![json!({"key": "country", "value": "usa"}); 20]})),
        // Integers are JSON Schema integers: 10.0 is 10.
        (Operation::GetVouchers, json!({"limit": 10.0, "page": 1.0, "exchangeRate": 1.0})),
        (Operation::GetVouchers, json!({"limit": 500.0, "page": 1e300})),
        (Operation::PlaceOrder, json!({"productId": 14856.0, "quantity": 2.0, "denomination": 25.0, "poNumber": "PO-1",
                                       "notifyReceiverEmail": 0.0, "notifyAdminEmail": 1.0})),
        (Operation::GetOrderDetails, json!({"orderId": 123.0, "sendMailToReceiver": 1.0})),
        (Operation::GetOrderDetails, json!({"poNumber": "PO-1", "orderId": 0.0})),
        (Operation::GetOrderHistory, json!({"startDate": "2024-01-01", "endDate": "2024-01-01", "limit": 5.0})),
        // getBalance
        (Operation::GetBalance, json!({})),
        (Operation::GetBalance, json!({"anything": [1, 2, 3]})),
        // placeOrder
        (Operation::PlaceOrder, valid(Operation::PlaceOrder)),
        (Operation::PlaceOrder, json!({
            "productId": "MERCH-SKU-1", "quantity": 100, "denomination": 0.01, "poNumber": "a_b.c/d:e-f",
            "email": "first.last+tag@sub.example.co.uk", "contact": "+91-9876543210", "tag": long(100),
            "notifyReceiverEmail": 1, "notifyAdminEmail": 0, "userMeta": {"loyaltyMemberId": "X1"},
            "loungeData": {"firstName": "A", "lastName": "B", "categoryType": "lounge"},
            "shippingFirstName": "A", "shippingLastName": "B", "shippingContactNo": "1", "shippingCompany": "",
            "shippingAddress1": "1 Road", "shippingAddress2": "", "shippingCity": "X", "shippingCountry": "US",
            "shippingState": "CA", "shippingPostcode": "94000"})),
        (Operation::PlaceOrder, json!({"productId": long(64), "quantity": 1, "denomination": 10.5, "poNumber": long(64)})),
        (Operation::PlaceOrder, json!({"productId": 1, "quantity": 1, "denomination": 1e6, "poNumber": "P",
                                       "email": format!("{}@example.com", long(242))})),
        // getOrderDetails
        (Operation::GetOrderDetails, valid(Operation::GetOrderDetails)),
        (Operation::GetOrderDetails, json!({"poNumber": "PO-1"})),
        (Operation::GetOrderDetails, json!({"poNumber": "PO-1", "orderId": 0})),
        (Operation::GetOrderDetails, json!({"poNumber": "PO-1", "orderId": "0"})),
        (Operation::GetOrderDetails, json!({"poNumber": "PO 1 with any text"})),
        (Operation::GetOrderDetails, json!({"orderId": 123})),
        (Operation::GetOrderDetails, json!({"orderId": "123"})),
        (Operation::GetOrderDetails, json!({"orderId": "0123"})),
        (Operation::GetOrderDetails, json!({"orderId": "12345678901234567890"})),
        (Operation::GetOrderDetails, json!({"orderId": 123, "poNumber": null, "sendMailToReceiver": 1})),
        (Operation::GetOrderDetails, json!({"orderId": "123", "poNumber": ""})),
        // getOrderHistory
        (Operation::GetOrderHistory, valid(Operation::GetOrderHistory)),
        (Operation::GetOrderHistory, json!({"startDate": "2024-02-29", "endDate": "2024-02-29"})),
        (Operation::GetOrderHistory, json!({"startDate": "2000-02-29", "endDate": "2024-12-31"})),
        (Operation::GetOrderHistory, json!({"startDate": "0001-01-01", "endDate": "9999-12-31"})),
        (Operation::GetOrderHistory, json!({"startDate": "2023-12-31", "endDate": "2024-01-01",
                                            "limit": 500, "page": 3, "tag": "x"})),
        (Operation::GetOrderHistory, json!({"startDate": "2024-01-01", "endDate": "2024-01-31", "limit": 1})),
        // paymentHistory
        (Operation::PaymentHistory, valid(Operation::PaymentHistory)),
        (Operation::PaymentHistory, json!({"startDate": "2024-04-30", "endDate": "2024-06-30", "limit": 500, "page": 1})),
        // `tag` is not a paymentHistory field: any value is an unknown extra.
        (Operation::PaymentHistory, json!({"startDate": "2024-01-01", "endDate": "2024-01-01", "tag": 5})),
    ]
}

#[test]
fn valid_bodies_pass() {
    for (op, data) in valid_cases() {
        assert_eq!(validate(op, &data), Ok(()), "{op} {data}");
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
    }
}

#[test]
fn data_must_be_an_object() {
    for op in Operation::ALL {
        for data in [json!(null), json!([]), json!("{}"), json!(1), json!(true)] {
            let err = validate(op, &data).expect_err("not an object");
            assert_eq!(err.field, "data", "{op} {data}");
        }
    }
}

/// Each case breaks exactly one rule of a valid body: (operation, key set on
/// the valid body (`None` value: removed), expected error field).
#[rustfmt::skip]
fn broken_cases() -> Vec<(Operation, &'static str, Option<Value>, &'static str)> {
    use Operation::*;
    let f = |n: usize| json!(vec![json!({"key": "country", "value": "usa"}); n]);
    vec![
        // getFilters
        (GetFilters, "filterGroupCode", Some(json!(5)), "data.filterGroupCode"),
        (GetFilters, "filterGroupCode", Some(json!(long(201))), "data.filterGroupCode"),
        (GetFilters, "includeFilters", Some(json!(null)), "data.includeFilters"),
        (GetFilters, "includeFilters", Some(json!(["usa"])), "data.includeFilters"),
        (GetFilters, "excludeFilters", Some(json!(true)), "data.excludeFilters"),
        (GetFilters, "excludeFilters", Some(json!("é".repeat(201))), "data.excludeFilters"),
        // getVouchers: limit and page
        (GetVouchers, "limit", None, "data.limit"),
        (GetVouchers, "limit", Some(json!(0)), "data.limit"),
        (GetVouchers, "limit", Some(json!(501)), "data.limit"),
        (GetVouchers, "limit", Some(json!(-1)), "data.limit"),
        (GetVouchers, "limit", Some(json!(1.5)), "data.limit"),
        (GetVouchers, "limit", Some(json!(10.5)), "data.limit"),
        (GetVouchers, "limit", Some(json!(500.5)), "data.limit"),
        (GetVouchers, "limit", Some(json!(501.0)), "data.limit"),
        (GetVouchers, "limit", Some(json!(1e300)), "data.limit"),
        (GetVouchers, "limit", Some(json!("10")), "data.limit"),
        (GetVouchers, "limit", Some(json!(true)), "data.limit"),
        (GetVouchers, "limit", Some(json!(null)), "data.limit"),
        (GetVouchers, "page", None, "data.page"),
        (GetVouchers, "page", Some(json!(0)), "data.page"),
        (GetVouchers, "page", Some(json!(-3)), "data.page"),
        (GetVouchers, "page", Some(json!(0.0)), "data.page"),
        (GetVouchers, "page", Some(json!(0.5)), "data.page"),
        (GetVouchers, "page", Some(json!("1")), "data.page"),
        // getVouchers: product lists
        (GetVouchers, "includeProducts", Some(json!("1,,2")), "data.includeProducts"),
        (GetVouchers, "includeProducts", Some(json!(",1")), "data.includeProducts"),
        (GetVouchers, "includeProducts", Some(json!("1,")), "data.includeProducts"),
        (GetVouchers, "includeProducts", Some(json!("1, 2")), "data.includeProducts"),
        (GetVouchers, "includeProducts", Some(json!("abc")), "data.includeProducts"),
        (GetVouchers, "includeProducts", Some(json!(12)), "data.includeProducts"),
        (GetVouchers, "excludeProducts", Some(json!("1;2")), "data.excludeProducts"),
        (GetVouchers, "excludeProducts", Some(json!([1, 2])), "data.excludeProducts"),
        // getVouchers: exchangeRate and sort
        (GetVouchers, "exchangeRate", Some(json!(2)), "data.exchangeRate"),
        (GetVouchers, "exchangeRate", Some(json!("1")), "data.exchangeRate"),
        (GetVouchers, "exchangeRate", Some(json!(true)), "data.exchangeRate"),
        (GetVouchers, "sort", Some(json!("name")), "data.sort"),
        (GetVouchers, "sort", Some(json!({})), "data.sort.field"),
        (GetVouchers, "sort", Some(json!({"field": 1, "order": "ASC"})), "data.sort.field"),
        (GetVouchers, "sort", Some(json!({"field": "name"})), "data.sort.order"),
        (GetVouchers, "sort", Some(json!({"field": "name", "order": "asc"})), "data.sort.order"),
        (GetVouchers, "sort", Some(json!({"field": "name", "order": 1})), "data.sort.order"),
        // getVouchers: filters
        (GetVouchers, "filters", Some(json!({})), "data.filters"),
        (GetVouchers, "filters", Some(f(21)), "data.filters"),
        (GetVouchers, "filters", Some(json!([5])), "data.filters[0]"),
        (GetVouchers, "filters", Some(json!([{"value": "usa"}])), "data.filters[0].key"),
        (GetVouchers, "filters", Some(json!([{"key": "brand", "value": "x"}])), "data.filters[0].key"),
        (GetVouchers, "filters", Some(json!([{"key": 1, "value": "x"}])), "data.filters[0].key"),
        (GetVouchers, "filters", Some(json!([{"key": "country"}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "country", "value": true}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "country", "value": null}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "price", "value": {}}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "country", "value": "usa"}, {"key": "deliveryType", "value": "instant"}])),
         "data.filters[1].value"),
        (GetVouchers, "filters", Some(json!([{"key": "deliveryType", "value": 1}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "currencyCode", "value": "usd"}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "currencyCode", "value": "US"}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "currencyCode", "value": "USDX"}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "currencyCode", "value": 840}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "currencyCode", "value": "ÜSD"}])), "data.filters[0].value"),
        (GetVouchers, "filters", Some(json!([{"key": "country", "value": "usa"}, {"key": "minPrice", "value": 10}])), "data.filters[1].key"),
        (GetVouchers, "filters", Some(json!([{"key": "maxPrice", "value": "100"}])), "data.filters[0].key"),
        // placeOrder: productId
        (PlaceOrder, "productId", None, "data.productId"),
        (PlaceOrder, "productId", Some(json!(0)), "data.productId"),
        (PlaceOrder, "productId", Some(json!(-1)), "data.productId"),
        (PlaceOrder, "productId", Some(json!(1.5)), "data.productId"),
        (PlaceOrder, "productId", Some(json!("")), "data.productId"),
        (PlaceOrder, "productId", Some(json!(long(65))), "data.productId"),
        (PlaceOrder, "productId", Some(json!(true)), "data.productId"),
        (PlaceOrder, "productId", Some(json!(null)), "data.productId"),
        // placeOrder: quantity and denomination
        (PlaceOrder, "quantity", None, "data.quantity"),
        (PlaceOrder, "quantity", Some(json!(0)), "data.quantity"),
        (PlaceOrder, "quantity", Some(json!(101)), "data.quantity"),
        (PlaceOrder, "quantity", Some(json!(1.5)), "data.quantity"),
        (PlaceOrder, "quantity", Some(json!("1")), "data.quantity"),
        (PlaceOrder, "denomination", None, "data.denomination"),
        (PlaceOrder, "denomination", Some(json!(0)), "data.denomination"),
        (PlaceOrder, "denomination", Some(json!(-5)), "data.denomination"),
        (PlaceOrder, "denomination", Some(json!(-0.5)), "data.denomination"),
        (PlaceOrder, "denomination", Some(json!("10")), "data.denomination"),
        (PlaceOrder, "denomination", Some(json!(null)), "data.denomination"),
        // placeOrder: poNumber
        (PlaceOrder, "poNumber", None, "data.poNumber"),
        (PlaceOrder, "poNumber", Some(json!("")), "data.poNumber"),
        (PlaceOrder, "poNumber", Some(json!(long(65))), "data.poNumber"),
        (PlaceOrder, "poNumber", Some(json!("SECRET PO 1")), "data.poNumber"),
        (PlaceOrder, "poNumber", Some(json!("SECRET#PO")), "data.poNumber"),
        (PlaceOrder, "poNumber", Some(json!("pøSECRET")), "data.poNumber"),
        (PlaceOrder, "poNumber", Some(json!(123)), "data.poNumber"),
        // placeOrder: email
        (PlaceOrder, "email", Some(json!("SECRET-name")), "data.email"),
        (PlaceOrder, "email", Some(json!("SECRET@localhost")), "data.email"),
        (PlaceOrder, "email", Some(json!("@example.com")), "data.email"),
        (PlaceOrder, "email", Some(json!("SECRET@")), "data.email"),
        (PlaceOrder, "email", Some(json!("SECRET@@example.com")), "data.email"),
        (PlaceOrder, "email", Some(json!("SECRET@a@example.com")), "data.email"),
        (PlaceOrder, "email", Some(json!("SECRET x@example.com")), "data.email"),
        (PlaceOrder, "email", Some(json!("SECRET@example..com")), "data.email"),
        (PlaceOrder, "email", Some(json!("SECRET@.example.com")), "data.email"),
        (PlaceOrder, "email", Some(json!("SECRET@example.com.")), "data.email"),
        (PlaceOrder, "email", Some(json!("SECRET@exa\u{1}mple.com")), "data.email"),
        (PlaceOrder, "email", Some(json!(format!("{}@example.com", long(243)))), "data.email"),
        (PlaceOrder, "email", Some(json!(5)), "data.email"),
        (PlaceOrder, "email", Some(json!(null)), "data.email"),
        // placeOrder: contact, tag, flags, objects, shipping
        (PlaceOrder, "contact", Some(json!("14705000000")), "data.contact"),
        (PlaceOrder, "contact", Some(json!("+1 4705000000")), "data.contact"),
        (PlaceOrder, "contact", Some(json!("+1-")), "data.contact"),
        (PlaceOrder, "contact", Some(json!("+-4705000000")), "data.contact"),
        (PlaceOrder, "contact", Some(json!("+1-470-5000000")), "data.contact"),
        (PlaceOrder, "contact", Some(json!("+1-470500000012345678")), "data.contact"),
        (PlaceOrder, "contact", Some(json!(14705000000_u64)), "data.contact"),
        (PlaceOrder, "tag", Some(json!(long(101))), "data.tag"),
        (PlaceOrder, "tag", Some(json!(5)), "data.tag"),
        (PlaceOrder, "notifyReceiverEmail", Some(json!(2)), "data.notifyReceiverEmail"),
        (PlaceOrder, "notifyReceiverEmail", Some(json!("1")), "data.notifyReceiverEmail"),
        (PlaceOrder, "notifyReceiverEmail", Some(json!(true)), "data.notifyReceiverEmail"),
        (PlaceOrder, "notifyAdminEmail", Some(json!(-1)), "data.notifyAdminEmail"),
        (PlaceOrder, "notifyAdminEmail", Some(json!(0.5)), "data.notifyAdminEmail"),
        (PlaceOrder, "userMeta", Some(json!("SECRET-member")), "data.userMeta"),
        (PlaceOrder, "userMeta", Some(json!([])), "data.userMeta"),
        (PlaceOrder, "loungeData", Some(json!(5)), "data.loungeData"),
        (PlaceOrder, "shippingCity", Some(json!(5)), "data.shippingCity"),
        (PlaceOrder, "shippingPostcode", Some(json!(null)), "data.shippingPostcode"),
        (PlaceOrder, "shippingFirstName", Some(json!({})), "data.shippingFirstName"),
        // getOrderDetails: addressing (the valid body uses poNumber)
        (GetOrderDetails, "poNumber", None, "data.poNumber"),
        (GetOrderDetails, "poNumber", Some(json!("")), "data.poNumber"),
        (GetOrderDetails, "poNumber", Some(json!(null)), "data.poNumber"),
        (GetOrderDetails, "poNumber", Some(json!(5)), "data.poNumber"),
        (GetOrderDetails, "orderId", Some(json!(5)), "data.orderId"),
        (GetOrderDetails, "orderId", Some(json!("5")), "data.orderId"),
        (GetOrderDetails, "orderId", Some(json!(-1)), "data.orderId"),
        (GetOrderDetails, "orderId", Some(json!(1.5)), "data.orderId"),
        (GetOrderDetails, "orderId", Some(json!("SECRET")), "data.orderId"),
        (GetOrderDetails, "orderId", Some(json!("")), "data.orderId"),
        (GetOrderDetails, "orderId", Some(json!("00")), "data.orderId"),
        (GetOrderDetails, "orderId", Some(json!("-5")), "data.orderId"),
        (GetOrderDetails, "orderId", Some(json!(long(21).replace('x', "1"))), "data.orderId"),
        (GetOrderDetails, "orderId", Some(json!(true)), "data.orderId"),
        (GetOrderDetails, "sendMailToReceiver", Some(json!(2)), "data.sendMailToReceiver"),
        (GetOrderDetails, "sendMailToReceiver", Some(json!("1")), "data.sendMailToReceiver"),
        (GetOrderDetails, "sendMailToReceiver", Some(json!(true)), "data.sendMailToReceiver"),
        (GetOrderDetails, "sendMailToReceiver", Some(json!(null)), "data.sendMailToReceiver"),
        // getOrderHistory
        (GetOrderHistory, "startDate", None, "data.startDate"),
        (GetOrderHistory, "endDate", None, "data.endDate"),
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
        (GetOrderHistory, "startDate", Some(json!(null)), "data.startDate"),
        (GetOrderHistory, "endDate", Some(json!("SECRET")), "data.endDate"),
        (GetOrderHistory, "endDate", Some(json!("2023-12-31")), "data.endDate"),
        (GetOrderHistory, "limit", Some(json!(0)), "data.limit"),
        (GetOrderHistory, "limit", Some(json!(501)), "data.limit"),
        (GetOrderHistory, "limit", Some(json!("5")), "data.limit"),
        (GetOrderHistory, "page", Some(json!(0)), "data.page"),
        (GetOrderHistory, "page", Some(json!(2.5)), "data.page"),
        (GetOrderHistory, "tag", Some(json!(5)), "data.tag"),
        // paymentHistory
        (PaymentHistory, "startDate", None, "data.startDate"),
        (PaymentHistory, "endDate", None, "data.endDate"),
        (PaymentHistory, "startDate", Some(json!("2024-02-30")), "data.startDate"),
        (PaymentHistory, "endDate", Some(json!("31-01-2024")), "data.endDate"),
        (PaymentHistory, "endDate", Some(json!("2023-01-31")), "data.endDate"),
        (PaymentHistory, "limit", Some(json!(0)), "data.limit"),
        (PaymentHistory, "limit", Some(json!(501)), "data.limit"),
        (PaymentHistory, "page", Some(json!(0)), "data.page"),
        (PaymentHistory, "page", Some(json!("1")), "data.page"),
    ]
}

#[test]
fn each_broken_rule_names_its_field() {
    for (op, key, value, field) in broken_cases() {
        let data = with(valid(op), key, value.clone());
        let err = validate(op, &data).expect_err(&format!("{op} {data} must fail"));
        assert_eq!(err.field, field, "{op} {data}: {}", err.message);
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
        (
            json!({"poNumber": "PO-1", "orderId": 7}),
            Err("data.orderId"),
        ),
        (
            json!({"poNumber": "PO-1", "orderId": "7"}),
            Err("data.orderId"),
        ),
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

#[test]
fn parse_envelope_round_trips_build_envelope() {
    for op in Operation::ALL {
        let data = with(valid(op), "extra", Some(json!({"kept": true})));
        let envelope = build_envelope(op, data.clone());
        assert_eq!(parse_envelope(&envelope), Ok((op, data.clone())), "{op}");
        let (parsed_op, parsed_data) = parse_envelope(&envelope).unwrap();
        assert_eq!(validate(parsed_op, &parsed_data), Ok(()), "{op}");
        assert_eq!(build_envelope(parsed_op, parsed_data), envelope, "{op}");
    }
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
    for envelope in [
        &documented,
        &like_others,
        &both_equal,
        &null_other,
        &both_differ,
    ] {
        let (op, parsed) = parse_envelope(envelope).unwrap_or_else(|e| panic!("{envelope}: {e}"));
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
            json!({"query": q(Operation::GetBalance), "variables": {}}),
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
            json!({"query": q(Operation::PaymentHistory), "data": {}}),
            "data.data",
        ),
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
}

#[test]
fn unknown_queries_are_described_safely() {
    let unknown =
        |query: &str| match parse_envelope(&json!({"query": query, "variables": {"data": {}}})) {
            Err(EnvelopeError::UnknownOperation(d)) => d,
            other => panic!("{query}: {other:?}"),
        };
    assert_eq!(
        unknown("plumProAPI.mutation.cancelOrder"),
        "plumProAPI.mutation.cancelOrder"
    );
    assert_eq!(
        unknown("plumProAPI.mutation.getBalance"),
        "plumProAPI.mutation.getBalance"
    );
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
fn envelope_data_is_returned_for_validation_not_checked() {
    // A string where the object belongs is the validator's to report.
    let envelope = json!({"query": Operation::GetBalance.query(), "variables": {"data": "x"}});
    let (op, data) = parse_envelope(&envelope).unwrap();
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
        with(base.clone(), "productId", Some(json!("14856"))),
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
        ("/v1/token", "get"),
        ("/v1/token/refresh", "post"),
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
    assert_eq!(
        paths.len(),
        expected.len(),
        "undocumented extra paths: {:?}",
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
    let expected = json!([
        "invalid_json",
        "invalid_request",
        "unauthorized",
        "forbidden",
        "not_found",
        "unknown_operation",
        "method_not_allowed",
        "idempotency_conflict",
        "payload_too_large",
        "rate_limited",
        "upstream_error",
        "upstream_unauthorized",
        "reauth_required",
        "misconfigured",
        "upstream_timeout"
    ]);
    assert_eq!(codes, &expected);
    let states = &doc["components"]["schemas"]["TokenStatus"]["properties"]["state"]["enum"];
    assert_eq!(
        states,
        &json!([
            "uninitialized",
            "fresh",
            "stale",
            "expired",
            "reauth_required"
        ])
    );
    let queries = &doc["components"]["schemas"]["Envelope"]["properties"]["query"]["enum"];
    let expected: Vec<&str> = Operation::ALL.iter().map(|op| op.query()).collect();
    assert_eq!(queries, &json!(expected));
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
