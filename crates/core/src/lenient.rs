//! Reading the numbers in Xoxoday's answers the way Xoxoday writes them.
//!
//! Xoxoday's answers are inconsistent about types (xoxoday-api.md): the
//! same field arrives as a JSON number or a numeric string (`expires_in`,
//! `status`, `penaltySeconds`), and expiry stamps as epoch milliseconds or,
//! in some answers, seconds. Every reader of an upstream number goes
//! through here, so one answer cannot be read two ways.
//!
//! Not here: the validation of what *callers* send (`ops`), whose rules are
//! about accepting what Xoxoday accepts, not reading what it answers.

use crate::jsontext::{int_from_text, number_from_text};
use crate::time::add_secs;
use serde_json::{Map, Value};

/// A whole number that may arrive as a JSON number or a numeric string
/// (fractions are cut off).
pub fn lenient_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => {
            let s = s.trim();
            int_from_text(s).or_else(|| number_from_text(s).map(|f| f as i64))
        }
        _ => None,
    }
}

/// An amount that may arrive as a JSON number or a numeric string (a
/// wallet balance: `950`, `950.5`, `"950.50"`); `None` for anything else,
/// and for a value that is not finite.
pub fn lenient_f64(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => number_from_text(s),
        _ => None,
    };
    n.filter(|f| f.is_finite())
}

/// An epoch stamp that should be milliseconds; values that look like seconds
/// (before the year 5138 in seconds = under 1e11) are scaled. `None` for
/// zero, negative or unreadable values.
pub fn epoch_ms(v: &Value) -> Option<i64> {
    let n = lenient_i64(v)?;
    if n <= 0 {
        None
    } else if n < 100_000_000_000 {
        Some(n * 1000)
    } else {
        Some(n)
    }
}

/// From this value on, `expires_in` is read as a stamp, not a lifetime in
/// seconds (it would be 31.7 years): one table of Xoxoday's docs calls the
/// field an "Epoch timestamp" (the rest say seconds, 1296000 in samples).
const EXPIRES_IN_STAMP_FROM: i64 = 1_000_000_000;

/// The access token's expiry in a token answer (refresh or token check),
/// from `access_token_expiry` (a stamp) and `expires_in` (seconds from
/// `now_ms`; a stamp if [`EXPIRES_IN_STAMP_FROM`] or more). Both present:
/// the earlier one (refreshing early is harmless, refreshing late is an
/// outage). A stamp in the past or a lifetime of zero or less counts as
/// absent.
pub fn access_expiry_ms(o: &Map<String, Value>, now_ms: i64) -> Option<i64> {
    let from_stamp = o.get("access_token_expiry").and_then(epoch_ms).filter(|t| *t > now_ms);
    let from_ttl = o.get("expires_in").and_then(|v| match lenient_i64(v)? {
        s if s >= EXPIRES_IN_STAMP_FROM => epoch_ms(v).filter(|t| *t > now_ms),
        s if s > 0 => Some(add_secs(now_ms, s as u64)),
        _ => None,
    });
    match (from_stamp, from_ttl) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: i64 = 1_795_626_582_000;

    #[test]
    fn numbers_in_every_form() {
        for (v, want) in [
            (json!(7), Some(7)),
            (json!("7"), Some(7)),
            (json!(" 7 "), Some(7)),
            // Spaces do not send an integer through the f64 reading.
            (json!(" 9007199254740993 "), Some(9_007_199_254_740_993)),
            (json!(7.9), Some(7)),
            (json!("7.9"), Some(7)),
            (json!("1e3"), Some(1000)),
            (json!("NaN"), None),
            (json!("x"), None),
            (json!(true), None),
            (json!(null), None),
        ] {
            assert_eq!(lenient_i64(&v), want, "{v}");
        }
    }

    #[test]
    fn amounts_in_every_form() {
        for (v, want) in [
            (json!(950), Some(950.0)),
            (json!(950.5), Some(950.5)),
            (json!("950.50"), Some(950.5)),
            (json!(" 7 "), Some(7.0)),
            (json!("NaN"), None),
            (json!("inf"), None),
            (json!("x"), None),
            (json!(true), None),
            (json!(null), None),
        ] {
            assert_eq!(lenient_f64(&v), want, "{v}");
        }
    }

    #[test]
    fn stamps_in_seconds_or_milliseconds() {
        assert_eq!(epoch_ms(&json!(1_795_626_582)), Some(T0));
        assert_eq!(epoch_ms(&json!(T0)), Some(T0));
        assert_eq!(epoch_ms(&json!(T0.to_string())), Some(T0));
        assert_eq!(epoch_ms(&json!(0)), None);
        assert_eq!(epoch_ms(&json!(-5)), None);
        // Seconds under 1e11, milliseconds from 1e11 on.
        assert_eq!(epoch_ms(&json!(99_999_999_999i64)), Some(99_999_999_999_000));
        assert_eq!(epoch_ms(&json!(100_000_000_000i64)), Some(100_000_000_000));
    }

    #[test]
    fn access_expiry_takes_the_earlier_and_saturates() {
        let o = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(access_expiry_ms(&o(json!({"expires_in": 10})), T0), Some(T0 + 10_000));
        assert_eq!(access_expiry_ms(&o(json!({"expires_in": "10"})), T0), Some(T0 + 10_000));
        assert_eq!(access_expiry_ms(&o(json!({"access_token_expiry": T0 + 5_000})), T0), Some(T0 + 5_000));
        assert_eq!(access_expiry_ms(&o(json!({"access_token_expiry": T0 + 5_000, "expires_in": 10})), T0), Some(T0 + 5_000));
        assert_eq!(access_expiry_ms(&o(json!({"access_token_expiry": T0 + 50_000, "expires_in": 10})), T0), Some(T0 + 10_000));
        assert_eq!(access_expiry_ms(&o(json!({"access_token_expiry": T0 - 1, "expires_in": 0})), T0), None);
        assert_eq!(access_expiry_ms(&o(json!({})), T0), None);
        assert_eq!(access_expiry_ms(&o(json!({"expires_in": i64::MAX})), T0), Some(i64::MAX), "saturates, never wraps");
        // Read as a stamp (seconds or ms) from 1e9 on; one in the past is absent.
        let day15 = T0 + 1_296_000_000;
        assert_eq!(access_expiry_ms(&o(json!({"expires_in": day15 / 1000})), T0), Some(day15));
        assert_eq!(access_expiry_ms(&o(json!({"expires_in": day15.to_string()})), T0), Some(day15));
        assert_eq!(access_expiry_ms(&o(json!({"expires_in": (T0 - 1000) / 1000})), T0), None);
        assert_eq!(access_expiry_ms(&o(json!({"expires_in": 999_999_999})), T0), Some(T0 + 999_999_999_000), "still a lifetime");
        assert_eq!(access_expiry_ms(&o(json!({"expires_in": 1_000_000_000})), T0), None, "a stamp from 1e9 on (2001, past)");
        assert_eq!(access_expiry_ms(&o(json!({"expires_in": day15 / 1000, "access_token_expiry": T0 + 5_000})), T0), Some(T0 + 5_000));
    }
}
