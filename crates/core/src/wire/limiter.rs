//! The `RateLimiter` protocol (one object per Xoxoday account, named
//! [`object_name`]).
//!
//! A call is `POST https://limiter/{call}` ([`Call::url`]) with a flat JSON
//! body ([`Call::body`]): `lease` asks for calls of an operation,
//! `penalise` reports Xoxoday's rate-limit answer to one. The answer is
//! always a [`LeaseAnswer`] as JSON (HTTP 200): the calls lent, and the
//! operation's penalty or the time a call frees up. A request the object
//! cannot read (an unknown call or operation) gets HTTP 400 and nothing
//! changes; the worker then treats the limiter as unavailable.

pub use crate::limits::LeaseAnswer;
use crate::ops::Operation;
use crate::stored::{count, get, need, opt, opt_int, opt_text, parse, small_count, text, Fields};
use crate::upstream::Observed;
#[cfg(test)]
use serde::Deserialize;
use serde::Serialize;

/// The limiter of the account with this id (`Config::account_id`).
pub fn object_name(account: &str) -> String {
    format!("limits:{account}")
}

/// One call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Lend up to `want` calls of `op`.
    Lease {
        /// The operation.
        op: Operation,
        /// How many.
        want: u32,
    },
    /// Xoxoday answered `op` with its rate-limit answer.
    Penalise {
        /// The operation.
        op: Operation,
        /// What the answer said.
        observed: Observed,
    },
}

/// The JSON body of every call (one struct: each type decoded from JSON
/// costs the wasm a decoder of its own). Read by hand (`crate::stored`);
/// the derive is for the tests.
#[derive(Default, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
struct Payload {
    op: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    want: Option<u32>,
    /// `stated`, `unstated` or `daily`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    penalty: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secs: Option<u64>,
}

impl Payload {
    fn from_fields(o: &Fields) -> Option<Payload> {
        Some(Payload {
            op: need(o, "op", text)?,
            want: get(o, "want", |v| opt(v, small_count)).ok()?,
            penalty: get(o, "penalty", opt_text).ok()?,
            secs: get(o, "secs", |v| opt(v, count)).ok()?,
        })
    }
}

impl LeaseAnswer {
    /// The answer in `body`; `None` when it is none (an error body, say).
    pub fn read(body: &[u8]) -> Option<LeaseAnswer> {
        parse(body, |o| {
            Some(LeaseAnswer {
                calls: need(o, "calls", small_count)?,
                until_ms: need(o, "until_ms", crate::stored::int)?,
                penalty_until_ms: get(o, "penalty_until_ms", opt_int).ok()?,
                retry_at_ms: get(o, "retry_at_ms", opt_int).ok()?,
            })
        })
    }
}

impl Call {
    /// The path segment.
    fn name(&self) -> &'static str {
        match self {
            Call::Lease { .. } => "lease",
            Call::Penalise { .. } => "penalise",
        }
    }

    /// Where the call goes (the host is a placeholder: a stub routes by
    /// object, not by URL).
    pub fn url(&self) -> String {
        format!("https://limiter/{}", self.name())
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        let payload = match *self {
            Call::Lease { op, want } => Payload { op: op.name().into(), want: Some(want), ..Payload::default() },
            Call::Penalise { op, observed } => {
                let (kind, secs) = match observed {
                    Observed::Stated(s) => ("stated", Some(s)),
                    Observed::Unstated => ("unstated", None),
                    Observed::Daily => ("daily", None),
                };
                Payload { op: op.name().into(), penalty: Some(kind.into()), secs, ..Payload::default() }
            }
        };
        serde_json::to_string(&payload).unwrap_or_default()
    }

    /// The call a request to `path` with `body` makes.
    ///
    /// # Errors
    /// A sentence for an unknown call, an unknown operation, or a body that
    /// does not say what the call needs.
    pub fn read(path: &str, body: &[u8]) -> Result<Call, String> {
        let p = parse(body, Payload::from_fields).ok_or_else(|| "the limiter request is not readable".to_string())?;
        let op = Operation::from_name(&p.op).ok_or_else(|| "the limiter request names no known operation".to_string())?;
        match path.trim_start_matches('/') {
            "lease" => Ok(Call::Lease { op, want: p.want.unwrap_or(1) }),
            "penalise" => {
                let observed = match (p.penalty.as_deref(), p.secs) {
                    (Some("stated"), Some(s)) => Observed::Stated(s),
                    (Some("unstated"), _) => Observed::Unstated,
                    (Some("daily"), _) => Observed::Daily,
                    _ => return Err("the penalty report says no penalty".into()),
                };
                Ok(Call::Penalise { op, observed })
            }
            _ => Err("unknown limiter call".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_pinned() {
        let cases = [
            (Call::Lease { op: Operation::GetBalance, want: 3 }, "https://limiter/lease", r#"{"op":"getBalance","want":3}"#),
            (
                Call::Penalise { op: Operation::GetVouchers, observed: Observed::Stated(42) },
                "https://limiter/penalise",
                r#"{"op":"getVouchers","penalty":"stated","secs":42}"#,
            ),
            (Call::Penalise { op: Operation::PlaceOrder, observed: Observed::Unstated }, "https://limiter/penalise", r#"{"op":"placeOrder","penalty":"unstated"}"#),
            (Call::Penalise { op: Operation::GetVouchers, observed: Observed::Daily }, "https://limiter/penalise", r#"{"op":"getVouchers","penalty":"daily"}"#),
        ];
        for (call, url, body) in cases {
            assert_eq!((call.url().as_str(), call.body().as_str()), (url, body));
            let path = url.trim_start_matches("https://limiter");
            assert_eq!(Call::read(path, body.as_bytes()), Ok(call));
        }
        assert_eq!(object_name("0123abcd"), "limits:0123abcd");
    }

    #[test]
    fn what_is_no_call_is_refused() {
        assert!(Call::read("/lease", br#"{"op":"getBalanse","want":1}"#).is_err(), "unknown operation");
        assert!(Call::read("/borrow", br#"{"op":"getBalance"}"#).is_err(), "unknown call");
        assert!(Call::read("/", br#"{"op":"getBalance"}"#).is_err(), "no call named");
        assert!(Call::read("/penalise", br#"{"op":"getBalance"}"#).is_err(), "no penalty");
        assert!(Call::read("/penalise", br#"{"op":"getBalance","penalty":"stated"}"#).is_err(), "stated without seconds");
        assert!(Call::read("/penalise", br#"{"op":"getBalance","penalty":"forever"}"#).is_err());
        assert!(Call::read("/lease", b"not json").is_err());
        assert_eq!(Call::read("/lease", br#"{"op":"getBalance"}"#), Ok(Call::Lease { op: Operation::GetBalance, want: 1 }));
        // Fields of a later version are ignored.
        assert_eq!(Call::read("/lease", br#"{"op":"getBalance","want":2,"newer":true}"#), Ok(Call::Lease { op: Operation::GetBalance, want: 2 }));
    }

    #[test]
    fn answers_are_pinned() {
        let a = LeaseAnswer { calls: 0, until_ms: 5, penalty_until_ms: Some(9), retry_at_ms: None };
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(text, r#"{"calls":0,"until_ms":5,"penalty_until_ms":9}"#);
        assert_eq!(LeaseAnswer::read(text.as_bytes()), Some(a));
        let b = LeaseAnswer { calls: 0, until_ms: 5, penalty_until_ms: None, retry_at_ms: Some(7) };
        assert_eq!(serde_json::to_string(&b).unwrap(), r#"{"calls":0,"until_ms":5,"retry_at_ms":7}"#);
        assert_eq!(LeaseAnswer::read(br#"{"error":"x"}"#), None, "an error body is no answer");
    }

    #[test]
    fn the_readers_agree_with_serdes_derive() {
        use crate::stored::agree;
        let answer = serde_json::json!({"calls": 2, "until_ms": 5, "penalty_until_ms": 9, "retry_at_ms": 7});
        let (read, refused) = agree::check::<LeaseAnswer>(&agree::texts(&answer, &[]), LeaseAnswer::read);
        assert!(read > 15 && refused > 50, "answer: {read} read, {refused} refused");
        let payload = serde_json::json!({"op": "getBalance", "want": 3, "penalty": "stated", "secs": 4});
        let (read, refused) = agree::check::<Payload>(&agree::texts(&payload, &[]), |b| parse(b, Payload::from_fields));
        assert!(read > 15 && refused > 50, "payload: {read} read, {refused} refused");
    }

    /// A penalty kind that takes no seconds reads the same when seconds come
    /// with it (a later version may send them): never refused.
    #[test]
    fn seconds_with_a_penalty_that_takes_none_are_ignored() {
        for (kind, observed) in [("unstated", Observed::Unstated), ("daily", Observed::Daily)] {
            let body = format!(r#"{{"op":"getBalance","penalty":"{kind}","secs":60}}"#);
            assert_eq!(Call::read("/penalise", body.as_bytes()), Ok(Call::Penalise { op: Operation::GetBalance, observed }), "{kind}");
        }
    }
}
