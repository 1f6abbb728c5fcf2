//! Random input for the readers of what plumgate does not control: Xoxoday's
//! answers (the refresh and token-check answers, the Plum API's answers and
//! their penalties, a reconciliation's order details) and what callers send
//! (operation data, envelopes, drop-in token requests, bearer headers).
//! The unit tests beside each reader pin the shapes seen; this owns two
//! promises over shapes nobody wrote down:
//! - No reader panics, whatever the bytes (a panic in the worker is a
//!   failed request at best, and inside the token authority a stuck one):
//!   truncated or non-UTF-8 JSON, deep nesting, a byte order mark, a page
//!   after the JSON, lone surrogate escapes, numbers past `i64` and `f64`.
//! - A number reads the same as a JSON number and as its text (`lenient.rs`:
//!   "the same field arrives as a JSON number or a numeric string … so one
//!   answer cannot be read two ways"; `jsontext::number_from_text`: "read
//!   through `from_text` once it is a JSON number"). Also: an access expiry
//!   read from an answer is after now, as is a refresh answer's.
//!
//! Deterministic: seeds `0..N`, each its own rounds; a failure names its
//! seed and round (the "step" of the message). `PLUMGATE_MODEL_SEEDS=N`
//! runs N seeds instead of the default [`SEEDS`] × [`ROUNDS`], as for
//! `token_model.rs` (with `--release`, 3000 seeds take about a minute). In
//! the debug profile the default takes 2–2.5 s on two cores.

mod seeded;

use plumgate_core::http::HttpAnswer;
use plumgate_core::jsontext::{from_text, int_from_text, number_from_text, upstream_value};
use plumgate_core::lenient::{access_expiry_ms, epoch_ms, lenient_f64, lenient_i64};
use plumgate_core::ops::{self, Operation};
use plumgate_core::token::{check::parse_check_response, parse_refresh_response, parse_validate_response, RefreshOutcome};
use plumgate_core::upstream as up;
use plumgate_core::{dropin, ledger, time};
use seeded::{replayable, seeds, Rng};
use serde_json::{json, Value};

/// Seeds of a default run, and the rounds of each (see the module doc).
const SEEDS: u64 = 8;
const ROUNDS: u64 = 1_200;

const T0: i64 = 1_795_626_582_000;

/// A string near a number's edges: signs, exponents, spaces of other
/// kinds, other digits, the limits of `i64`, `u64` and `f64`.
fn edge_string(rng: &mut Rng) -> String {
    const POOL: &[&str] = &[
        "", " ", "0", "-0", "+0", "7", " 7 ", "+7", "++7", "-", "+", ".", "5.", ".5", "1e3", "1E-3", "1e", "e5", "1e+", "1e400",
        "-1e400", "NaN", "nan", "inf", "-inf", "Infinity", "0x10", "1_000", "١٢", "٣", "\u{00a0}7\u{00a0}", "\u{2003}8",
        "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "18446744073709551615",
        "18446744073709551616", "99999999999999999999999", "9007199254740993", "9007199254740993.0", "1.7976931348623157e308",
        "4.9e-324", "00", "007", "0.0", "1,5", "💥", "é7", "7é", "\u{0}", "12abc", "--1", "+-1", "1e-99999999999999999999",
        "1e99999999999999999999",
    ];
    let mut s = rng.pick(POOL).to_string();
    if rng.chance(0.3) {
        s.push_str(rng.pick::<&str>(POOL));
    }
    if rng.chance(0.05) {
        s = "9".repeat(rng.range(1, 500) as usize);
    }
    s
}

/// A JSON value with the members Xoxoday's answers and callers' data use.
fn value(rng: &mut Rng, depth: u32) -> Value {
    const KEYS: &[&str] = &[
        "access_token", "refresh_token", "expires_in", "access_token_expiry", "refresh_token_expiry", "error", "message",
        "error_message_id", "errors", "penaltySeconds", "success", "status", "code", "errorId", "data", "orderId", "x",
    ];
    match rng.below(if depth > 4 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.chance(0.5)),
        2 => match rng.below(6) {
            0 => json!(rng.next() as i64),
            1 => json!(rng.next()),
            2 => json!(f64::from_bits(rng.next()).clamp(-1e308, 1e308)),
            3 => json!(rng.range(-1000, 1000)),
            4 => json!(rng.f01() * 1e12),
            _ => json!(*rng.pick(&[i64::MIN, i64::MAX, 0, -1, 100_000_000_000, 99_999_999_999, 1_000_000_000])),
        },
        3 | 4 => Value::String(edge_string(rng)),
        5 | 6 => Value::Object((0..rng.below(5)).map(|_| (rng.pick(KEYS).to_string(), value(rng, depth + 1))).collect()),
        _ => Value::Array((0..rng.below(4)).map(|_| value(rng, depth + 1)).collect()),
    }
}

/// An answer's bytes: JSON, or JSON cut short, with a page after it or a
/// byte order mark before, random bytes, deep nesting, lone surrogates.
fn body(rng: &mut Rng) -> Vec<u8> {
    let mut b = serde_json::to_vec(&value(rng, 0)).expect("a Value is written");
    match rng.below(10) {
        0 => b.truncate(rng.below(b.len() as u64 + 1) as usize),
        1 => b.extend_from_slice(b"\n<html>tail"),
        2 => drop(b.splice(0..0, *b"\xEF\xBB\xBF")),
        3 => b = (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
        4 => b = format!("{}1{}", "[".repeat(rng.range(1, 3000) as usize), "]".repeat(rng.range(0, 3000) as usize)).into_bytes(),
        5 => b = br#"{"message":"\ud83c x","access_token":"a\udc00"}"#.to_vec(),
        _ => {}
    }
    b
}

#[test]
fn a_number_reads_the_same_as_a_json_number_and_as_its_text() {
    for seed in 0..seeds(SEEDS) {
        let mut rng = Rng::for_seed(seed);
        for round in 0..ROUNDS * 4 {
            replayable(seed, round, || {
                let s = edge_string(&mut rng);
                let text = Value::String(s.clone());
                int_from_text(&s);
                time::parse_rfc3339(&s);
                if let Ok(number @ Value::Number(_)) = from_text::<Value>(s.trim()) {
                    assert_eq!(lenient_i64(&text), lenient_i64(&number), "lenient_i64 of {s:?}");
                    assert_eq!(lenient_f64(&text), lenient_f64(&number), "lenient_f64 of {s:?}");
                    assert_eq!(epoch_ms(&text), epoch_ms(&number), "epoch_ms of {s:?}");
                    assert_eq!(number_from_text(&s), number.as_f64().filter(|f| f.is_finite()), "number_from_text of {s:?}");
                }
                // A number's text, in a body as a number and as a string
                // (both read by serde_json's reader: an `f64` written with
                // 17 digits may read back 1 ulp off, the same both ways).
                if let Value::Number(n) = value(&mut rng, 4) {
                    let text = n.to_string();
                    let number: Value = from_text(&text).expect("a number's text is JSON");
                    let text = Value::String(text);
                    assert_eq!(lenient_i64(&text), lenient_i64(&number), "lenient_i64 of {n}");
                    assert_eq!(lenient_f64(&text), lenient_f64(&number), "lenient_f64 of {n}");
                }
            });
        }
    }
}

#[test]
fn readers_of_answers_and_callers_input_never_panic() {
    const STATUSES: &[u16] = &[200, 201, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503];
    const OPS: &[&str] = &["placeOrder", "getBalance", "getOrderDetails", "getVouchers"];
    for seed in 0..seeds(SEEDS) {
        let mut rng = Rng::for_seed(seed);
        for round in 0..ROUNDS {
            // Only panics matter here: what each reader answers is its own unit tests'.
            replayable(seed, round, || {
                let v = value(&mut rng, 0);
                let body = body(&mut rng);
                let status = *rng.pick(STATUSES);
                let retry_after = rng.chance(0.3).then(|| edge_string(&mut rng));
                let ra = retry_after.as_deref();
                // Xoxoday's answers.
                if let Some(t) = v.as_object().and_then(|o| access_expiry_ms(o, T0)) {
                    assert!(t > T0, "an access expiry {t} not after now");
                }
                if let RefreshOutcome::Success(a) = parse_refresh_response(status, &body, ra, T0) {
                    assert!(a.access_expires_at_ms > T0, "a refreshed token's expiry {} not after now", a.access_expires_at_ms);
                }
                parse_check_response(status, &body, ra, T0);
                parse_validate_response(status, &body, T0);
                up::classify_api_401(status, &body);
                up::penalty_named_by(status, &body, ra, up::TOKEN_NAMING_KEYS);
                for op in OPS {
                    up::api_penalty(op, status, &body, ra);
                    up::is_plum_success(op, status, &body);
                    up::is_plum_failure(op, status, &body);
                    up::plum_data(op, status, &body);
                }
                up::balance_value(status, &body);
                up::unreadable_answer(status, &body);
                up::unvalidated_penalty(status, &body, ra);
                upstream_value(&body);
                ledger::read_reconcile(Ok(HttpAnswer { status, body: body.clone(), retry_after: retry_after.clone() }));
                ledger::order_summary(&v);
                // What callers send.
                let _ = dropin::refresh_key(Some("application/json"), &body);
                let _ = dropin::refresh_key(Some("application/x-www-form-urlencoded"), &body);
                let _ = dropin::bearer_key(Some(&edge_string(&mut rng)));
                for op in Operation::ALL {
                    let _ = ops::validate(op, &v);
                }
                let _ = ops::parse_envelope(&v);
                ops::order_fingerprint(&v);
                ops::amount_micros(&v);
                ops::order_amount_micros(&v);
            });
        }
    }
}
