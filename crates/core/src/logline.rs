//! The one JSON log line per request (contract §7), and the event lines of
//! the token authority (a refresh, a check, a state problem).
//!
//! The router owns the request's line and writes it once; the layers under
//! it (the gateway, the Plum client, the order ledger's client) return a
//! [`Trace`] of what they saw, which the router [records](RequestLog::record).
//!
//! Only the fields listed here ever reach the log: no headers, bodies,
//! tokens, keys, voucher codes or PINs, because there is no field for them.
//! Event lines take fixed keys and values the authority composes itself
//! (sentences from `plumgate_core::token`, counts, times).

use crate::jsontext::Object;
use crate::time::write_rfc3339;
use std::borrow::Cow;

/// What is logged about one request.
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    /// Start time (epoch ms).
    pub start_ms: i64,
    /// Request id (also sent as `x-request-id`).
    pub request_id: String,
    /// HTTP method.
    pub method: String,
    /// Route pattern, e.g. `/v1/ops/{operation}` (never the raw path).
    pub route: &'static str,
    /// Operation name when the route has one: one of contract §2's, or
    /// (with the note `unvalidated`) the name of a `plumProAPI.*` query
    /// plumgate does not know, made only of letters, digits and `_`.
    pub operation: Option<Cow<'static, str>>,
    /// Caller key id when authenticated.
    pub caller: Option<String>,
    /// Status answered.
    pub status: u16,
    /// Status Xoxoday answered, when called.
    pub upstream_status: Option<u16>,
    /// `hit`, `miss` or `bypass` for cacheable operations.
    pub cache: Option<&'static str>,
    /// plumgate's error code, when it made the error.
    pub error: Option<&'static str>,
    /// Extra markers: `replayed`, `reconciled`, `token_replaced`, and
    /// `unvalidated` for a query plumgate forwarded without knowing it.
    pub note: Option<&'static str>,
    /// Where the access token came from: `memory`, `kv`, `authority`, or
    /// `shared` (another request's lookup in the same isolate).
    pub token: Option<&'static str>,
    /// The key id an admin key route acted on (`/v1/keys…`): with `caller`,
    /// `method`, `route` and `status`, who changed which key, and when.
    pub target: Option<String>,
}

/// What the layers under the router saw of one request: the part of its
/// log line they know, and the wallet balance a getBalance answer showed.
/// Returned by value (every field is a number or a static name), so
/// reporting costs no allocation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Trace {
    /// Status Xoxoday answered, when called.
    pub upstream_status: Option<u16>,
    /// `hit`, `miss` or `bypass`.
    pub cache: Option<&'static str>,
    /// A marker: `replayed`, `reconciled`, `token_valid`, `token_replaced`.
    pub note: Option<&'static str>,
    /// Where the access token came from (`token::cache::Source`).
    pub token: Option<&'static str>,
    /// plumgate's error code, when a layer under the router answered with
    /// one itself (the order ledger); an error the router answers is
    /// recorded by the router.
    pub error: Option<&'static str>,
    /// The wallet balance in a getBalance answer from Xoxoday, when
    /// `BALANCE_ALERT_BELOW` is set. Not logged: the router hands it to the
    /// balance alert check (`alert::balance_report`).
    pub balance: Option<f64>,
}

impl RequestLog {
    /// Take in what the layers under the router saw: each field they set
    /// replaces the router's (a note such as `token_replaced` replaces
    /// `unvalidated`, as the later, more telling fact).
    pub fn record(&mut self, t: Trace) {
        let Trace { upstream_status, cache, note, token, error, balance: _ } = t;
        if upstream_status.is_some() {
            self.upstream_status = upstream_status;
        }
        if cache.is_some() {
            self.cache = cache;
        }
        if note.is_some() {
            self.note = note;
        }
        if token.is_some() {
            self.token = token;
        }
        if error.is_some() {
            self.error = error;
        }
    }

    /// The log line, given the end time. Fields in alphabetical order, the
    /// order the line has always had (it first came from a sorted map, then
    /// from a derived serializer), so readers see the same bytes; written
    /// straight into one buffer, with no serializer and no `format!`.
    pub fn line(&self, end_ms: i64) -> String {
        let level = if self.status >= 500 {
            "error"
        } else if self.status >= 400 {
            "warn"
        } else {
            "info"
        };
        let line = Object::with_capacity(LINE_BYTES)
            .opt_str("cache", self.cache)
            .opt_str("caller", self.caller.as_deref())
            .num("duration_ms", end_ms.saturating_sub(self.start_ms).max(0))
            .opt_str("error", self.error)
            .str("level", level)
            .str("method", &self.method)
            .opt_str("note", self.note)
            .opt_str("operation", self.operation.as_deref())
            .str("request_id", &self.request_id)
            .str("route", self.route)
            .num("status", self.status);
        // Only on the admin key routes' lines: every other line stays as
        // it was, byte for byte.
        let line = match &self.target {
            Some(t) => line.str("target", t),
            None => line,
        };
        line.with("time", |out| {
            out.push('"');
            write_rfc3339(self.start_ms, out);
            out.push('"');
        })
        .opt_str("token", self.token)
        .opt_num("upstream_status", self.upstream_status)
        .finish()
    }
}

/// Room for a usual line (a forwarded call's is ~330 bytes), so it is
/// written without growing its buffer.
const LINE_BYTES: usize = 384;

/// A value in an [`event`] line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    /// A string (escaped).
    Str(&'a str),
    /// A whole number.
    Int(i64),
    /// `null`.
    Null,
}

impl<'a> From<&'a str> for Field<'a> {
    fn from(s: &'a str) -> Self {
        Field::Str(s)
    }
}

impl<'a> From<Option<&'a str>> for Field<'a> {
    fn from(s: Option<&'a str>) -> Self {
        s.map_or(Field::Null, Field::Str)
    }
}

impl From<i64> for Field<'_> {
    fn from(n: i64) -> Self {
        Field::Int(n)
    }
}

/// One JSON object line from `fields`, in the order given. (Not a
/// `serde_json::json!` tree: that costs code per field in the worker's
/// wasm, and these lines are rare.)
pub fn event(fields: &[(&str, Field<'_>)]) -> String {
    let mut out = Object::new();
    for (key, value) in fields {
        out = match value {
            Field::Str(s) => out.str(key, s),
            Field::Int(n) => out.num(key, *n),
            Field::Null => out.raw(key, "null"),
        };
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_are_json_in_order() {
        let line = event(&[
            ("event", "token_refreshed".into()),
            ("reason", "a \"quoted\" sentence\nwith a newline".into()),
            ("count", 3i64.into()),
            ("retry_at", Field::from(None::<&str>)),
        ]);
        assert_eq!(line, r#"{"event":"token_refreshed","reason":"a \"quoted\" sentence\nwith a newline","count":3,"retry_at":null}"#);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["count"], 3);
        assert_eq!(event(&[]), "{}");
        // Every control character and both escapes survive a JSON parse.
        let nasty: String = (0u8..0x20).map(char::from).chain("\"\\é𝄞".chars()).collect();
        let v: serde_json::Value = serde_json::from_str(&event(&[("s", nasty.as_str().into())])).unwrap();
        assert_eq!(v["s"], nasty.as_str());
    }

    #[test]
    fn a_trace_fills_in_what_it_saw() {
        let mut l = RequestLog { note: Some("unvalidated"), upstream_status: Some(401), ..Default::default() };
        l.record(Trace::default());
        assert_eq!((l.note, l.upstream_status), (Some("unvalidated"), Some(401)), "nothing seen: nothing changed");
        l.record(Trace {
            upstream_status: Some(200),
            token: Some("memory"),
            note: Some("token_replaced"),
            cache: Some("miss"),
            error: Some("rate_limited"),
            balance: Some(950.0),
        });
        assert_eq!(
            (l.upstream_status, l.token, l.note, l.cache, l.error),
            (Some(200), Some("memory"), Some("token_replaced"), Some("miss"), Some("rate_limited"))
        );
    }

    #[test]
    fn line_has_the_contract_fields() {
        let l = RequestLog {
            start_ms: 1_795_626_582_000,
            request_id: "r1".into(),
            method: "POST".into(),
            route: "/v1/ops/{operation}",
            operation: Some("getBalance".into()),
            caller: Some("billing-fn".into()),
            status: 200,
            upstream_status: Some(200),
            cache: Some("miss"),
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::from_str(&l.line(1_795_626_582_012)).unwrap();
        assert_eq!(v["time"], "2026-11-25T17:09:42.000Z");
        assert_eq!(v["duration_ms"], 12);
        assert_eq!(v["operation"], "getBalance");
        assert_eq!(v["caller"], "billing-fn");
        assert_eq!(v["cache"], "miss");
        assert_eq!(v["level"], "info");
    }

    /// The line as the derived serializer wrote it before it was written
    /// by hand, for the test that holds the two together.
    #[derive(serde::Serialize)]
    struct Line<'a> {
        cache: Option<&'a str>,
        caller: Option<&'a str>,
        duration_ms: i64,
        error: Option<&'a str>,
        level: &'a str,
        method: &'a str,
        note: Option<&'a str>,
        operation: Option<&'a str>,
        request_id: &'a str,
        route: &'a str,
        status: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        target: Option<&'a str>,
        time: String,
        token: Option<&'a str>,
        upstream_status: Option<u16>,
    }

    #[test]
    fn line_is_what_the_derived_serializer_wrote() {
        let nasty: String = (0u8..0x20).map(char::from).chain("\"\\é𝄞\u{2028}".chars()).collect();
        let texts = ["", "x", "POST", nasty.as_str()];
        let mut n = 0;
        for (i, text) in texts.iter().enumerate() {
            for status in [0u16, 200, 399, 400, 499, 500, 503, u16::MAX] {
                for (start_ms, end_ms) in [(0, 0), (1_795_626_582_000, 1_795_626_582_012), (5, -5), (i64::MIN, i64::MAX)] {
                    let some = |s: &'static str| (i % 2 == 0).then_some(s);
                    let l = RequestLog {
                        start_ms,
                        request_id: (*text).to_owned(),
                        method: (*text).to_owned(),
                        route: "/v1/ops/{operation}",
                        operation: (i != 1).then(|| Cow::Owned((*text).to_owned())),
                        caller: (i != 2).then(|| (*text).to_owned()),
                        status,
                        upstream_status: (status % 2 == 0).then_some(status),
                        cache: some("hit"),
                        error: some("upstream_error"),
                        note: some("a \"note\""),
                        token: some("memory"),
                        target: (i != 3).then(|| (*text).to_owned()),
                    };
                    let by_serde = serde_json::to_string(&Line {
                        cache: l.cache,
                        caller: l.caller.as_deref(),
                        duration_ms: end_ms.saturating_sub(start_ms).max(0),
                        error: l.error,
                        level: if status >= 500 { "error" } else if status >= 400 { "warn" } else { "info" },
                        method: &l.method,
                        note: l.note,
                        operation: l.operation.as_deref(),
                        request_id: &l.request_id,
                        route: l.route,
                        status,
                        target: l.target.as_deref(),
                        time: crate::time::rfc3339(start_ms),
                        token: l.token,
                        upstream_status: l.upstream_status,
                    })
                    .unwrap();
                    assert_eq!(l.line(end_ms), by_serde);
                    n += 1;
                }
            }
        }
        assert_eq!(n, 128);
    }

    #[test]
    fn line_bytes_are_unchanged() {
        // The exact line the earlier (sorted-map) implementation wrote for
        // these two requests: log readers that match on text keep working.
        let ok = RequestLog {
            start_ms: 1_795_626_582_000,
            request_id: "0123456789abcdef0123456789abcdef".into(),
            method: "POST".into(),
            route: "/v1/ops/{operation}",
            operation: Some("getOrderHistory".into()),
            caller: Some("bench \"q\"".into()),
            status: 200,
            upstream_status: Some(200),
            token: Some("memory"),
            ..Default::default()
        };
        assert_eq!(
            ok.line(1_795_626_582_003),
            r#"{"cache":null,"caller":"bench \"q\"","duration_ms":3,"error":null,"level":"info","method":"POST","note":null,"operation":"getOrderHistory","request_id":"0123456789abcdef0123456789abcdef","route":"/v1/ops/{operation}","status":200,"time":"2026-11-25T17:09:42.000Z","token":"memory","upstream_status":200}"#
        );
        let failed = RequestLog {
            start_ms: 1_795_626_582_000,
            request_id: "r".into(),
            method: "GET".into(),
            route: "/v1/token",
            status: 503,
            cache: Some("bypass"),
            error: Some("misconfigured"),
            note: Some("reconciled"),
            ..Default::default()
        };
        // End before start: duration 0, never negative.
        assert_eq!(
            failed.line(1_795_626_581_000),
            r#"{"cache":"bypass","caller":null,"duration_ms":0,"error":"misconfigured","level":"error","method":"GET","note":"reconciled","operation":null,"request_id":"r","route":"/v1/token","status":503,"time":"2026-11-25T17:09:42.000Z","token":null,"upstream_status":null}"#
        );
    }
}
