//! The `TokenAuthority` protocol.
//!
//! A call is `POST https://authority/{op}` ([`Call::url`]) with the header
//! [`AUTHORITY_HEADER`] naming the authority it is meant for (the object
//! checks it: a worker with another configuration must not be served this
//! account's token) and, for the operations that take something, a JSON
//! body ([`Call::body`]). The answer is always a [`Reply`] (HTTP 200): a
//! grant (the access token and its timing; never the refresh token), the
//! status body of `GET /v1/token`, the caller-facing error of a refusal,
//! and per operation a flag or the hand-over.
//!
//! A request without the header comes from a worker of the version before
//! per-account authorities (during a deploy); its operation names are read
//! with [`Op::from_legacy_name`].

use crate::errors::ApiError;
use crate::secret::AccessToken;
use crate::stored::{flag, get, int, need, number, opt, opt_int, opt_text, parse, slot, text, Fields};
#[cfg(test)]
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

/// Header naming the authority a request is meant for.
pub const AUTHORITY_HEADER: &str = "x-plumgate-authority";

/// The operations, as the URL path names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A caller needs a token.
    Token,
    /// Xoxoday answered 401 to a token: check it.
    Check,
    /// `POST /v1/token/refresh`.
    Refresh,
    /// The cron keep-alive.
    Cron,
    /// `GET /v1/token`.
    Status,
    /// `POST /v1/token/recover`: set unreadable state aside.
    Recover,
    /// Asked of the previous version's authority by a new one.
    Export,
    /// A balance an isolate saw (`alert::observe_balance`).
    Balance,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 8] = [Op::Token, Op::Check, Op::Refresh, Op::Cron, Op::Status, Op::Recover, Op::Export, Op::Balance];

    /// The path segment.
    pub fn name(self) -> &'static str {
        match self {
            Op::Token => "token",
            Op::Check => "check",
            Op::Refresh => "refresh",
            Op::Cron => "cron",
            Op::Status => "status",
            Op::Recover => "recover",
            Op::Export => "export",
            Op::Balance => "balance",
        }
    }

    /// The operation named `name`; `None` for anything else.
    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The previous version's names for the same requests (it called a
    /// check `reject`, and had no `recover`, `export` or `balance`).
    pub fn from_legacy_name(name: &str) -> Option<Op> {
        match name {
            "reject" => Some(Op::Check),
            other => Op::from_name(other).filter(|op| !matches!(op, Op::Recover | Op::Export | Op::Balance)),
        }
    }
}

/// One call, with what its operation needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// A caller needs a token.
    Token,
    /// Xoxoday answered 401 (a token candidate) to the access token with
    /// this fingerprint.
    Check {
        /// `secret::fingerprint` of the access token.
        fp: String,
    },
    /// A forced refresh.
    Refresh,
    /// The cron keep-alive.
    Cron,
    /// Token status.
    Status,
    /// Set unreadable stored state aside.
    Recover,
    /// Hand the previous version's state to the authority named here
    /// (`account:…`).
    Export {
        /// The asking authority's name.
        requester: String,
    },
    /// An isolate saw this wallet balance in a getBalance answer from
    /// Xoxoday (sent after the answer, never on its path).
    Balance {
        /// `data.getBalance.data.value`.
        value: f64,
        /// When it was seen (epoch ms).
        seen_at_ms: i64,
    },
}

/// The JSON body of the operations that take one. (One struct for both:
/// each type decoded from JSON costs the worker's wasm its own decoder.)
/// Read by hand ([`Payload::read`]; the derive is for its test).
#[derive(Default, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
struct Payload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    requester: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    balance: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seen_at_ms: Option<i64>,
}

impl Payload {
    /// The payload in `body`: empty when it cannot be read.
    fn read(body: &[u8]) -> Payload {
        parse(body, Payload::from_fields).unwrap_or_default()
    }

    fn from_fields(o: &Fields) -> Option<Payload> {
        Some(Payload {
            fp: get(o, "fp", opt_text).ok()?,
            requester: get(o, "requester", opt_text).ok()?,
            balance: get(o, "balance", |v| opt(v, number)).ok()?,
            seen_at_ms: get(o, "seen_at_ms", opt_int).ok()?,
        })
    }
}

impl Call {
    /// The operation.
    pub fn op(&self) -> Op {
        match self {
            Call::Token => Op::Token,
            Call::Check { .. } => Op::Check,
            Call::Refresh => Op::Refresh,
            Call::Cron => Op::Cron,
            Call::Status => Op::Status,
            Call::Recover => Op::Recover,
            Call::Export { .. } => Op::Export,
            Call::Balance { .. } => Op::Balance,
        }
    }

    /// Where the call goes (the host is a placeholder: a Durable Object
    /// stub routes by object, not by URL).
    pub fn url(&self) -> String {
        format!("https://authority/{}", self.op().name())
    }

    /// The JSON body, for the operations that take one.
    pub fn body(&self) -> Option<String> {
        let payload = match self {
            Call::Check { fp } => Payload { fp: Some(fp.clone()), ..Payload::default() },
            Call::Export { requester } => Payload { requester: Some(requester.clone()), ..Payload::default() },
            Call::Balance { value, seen_at_ms } => {
                Payload { balance: Some(*value), seen_at_ms: Some(*seen_at_ms), ..Payload::default() }
            }
            _ => return None,
        };
        serde_json::to_string(&payload).ok()
    }

    /// The call `op` with the `body` that came with it (ignored by the
    /// operations that take none).
    ///
    /// # Errors
    /// A safe sentence when the body lacks what the operation needs (a
    /// check without a fingerprint, an export without an `account:`
    /// requester, a balance without its value and time).
    pub fn decode(op: Op, body: &[u8]) -> Result<Call, &'static str> {
        let payload = || Payload::read(body);
        Ok(match op {
            Op::Token => Call::Token,
            Op::Refresh => Call::Refresh,
            Op::Cron => Call::Cron,
            Op::Status => Call::Status,
            Op::Recover => Call::Recover,
            Op::Check => Call::Check {
                fp: payload().fp.ok_or("a check needs the fingerprint of the token Xoxoday answered 401 to")?,
            },
            Op::Export => Call::Export {
                requester: payload().requester.filter(|r| r.starts_with("account:")).ok_or("export needs a requester")?,
            },
            Op::Balance => {
                let p = payload();
                match (p.balance, p.seen_at_ms) {
                    (Some(value), Some(seen_at_ms)) => Call::Balance { value, seen_at_ms },
                    _ => return Err("a balance report needs the balance and when it was seen"),
                }
            }
        })
    }
}

/// An access token handed out by the authority, and how long an isolate
/// may keep using it. The same JSON is the value of the KV cache entry.
/// `Debug` shows the token as `AccessToken([redacted])`. Read by hand
/// ([`Grant::read`]; the derive is for its test).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
pub struct Grant {
    /// The bearer token for Xoxoday.
    pub access_token: AccessToken,
    /// Its expiry (epoch ms).
    pub expires_at_ms: i64,
    /// Ask again after this instant (epoch ms).
    pub recheck_at_ms: i64,
}

impl Grant {
    /// A grant from its JSON text (the KV cache entry); `None` when it
    /// cannot be read.
    pub fn read(text: &str) -> Option<Grant> {
        parse(text.as_bytes(), Grant::from_fields)
    }

    fn from_fields(o: &Fields) -> Option<Grant> {
        Some(Grant {
            access_token: AccessToken::new(need(o, "access_token", text)?),
            expires_at_ms: need(o, "expires_at_ms", int)?,
            recheck_at_ms: need(o, "recheck_at_ms", int)?,
        })
    }

    /// May a cache (isolate memory, KV) hand this grant out at `now_ms`?
    /// Only before its recheck point and its expiry.
    pub fn usable(&self, now_ms: i64) -> bool {
        now_ms < self.recheck_at_ms && now_ms < self.expires_at_ms
    }

    /// Fingerprint of the access token (for "token T was rejected").
    pub fn fingerprint(&self) -> String {
        self.access_token.fingerprint()
    }
}

/// The body of `GET /v1/token` (and of `POST /v1/token/refresh` and
/// `/recover`): status, never a token. Fields in alphabetical order, the
/// order the body has always had. Times are RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
pub struct TokenStatus {
    /// The access token's expiry.
    pub access_token_expires_at: Option<String>,
    /// The last alert raised (`alert::last_alert`); added later, so
    /// optional when read.
    #[serde(default)]
    pub last_alert: Option<AlertView>,
    /// The last refresh failure, a safe sentence.
    pub last_error: Option<String>,
    /// The last successful refresh.
    pub last_refresh_at: Option<String>,
    /// Successful refreshes.
    pub refresh_count: u64,
    /// The refresh token's expiry (known or estimated).
    pub refresh_token_expires_at: Option<String>,
    /// When the next automatic refresh attempt may happen, while something
    /// holds it back.
    pub retry_at: Option<String>,
    /// One of `token::TokenState`'s names. Text, not the enum: a newer
    /// authority (during a deploy) may name a state this version does not
    /// know, and it is relayed as sent.
    pub state: String,
}

/// The last alert, as `GET /v1/token` shows it. Fields in alphabetical
/// order, like the status around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
pub struct AlertView {
    /// When it was raised.
    pub at: String,
    /// Deliveries tried.
    pub attempts: u32,
    /// The receiver accepted it.
    pub delivered: bool,
    /// Why the last attempt failed, or why it was not sent.
    pub error: Option<String>,
    /// The condition (`reauth_required`, `credentials_rejected`,
    /// `refresh_failing`, `tokens_rejected`, `balance_low`).
    pub event: String,
    /// When it is tried again; null once delivered, given up or not sent.
    pub next_attempt_at: Option<String>,
    /// `firing` or `resolved`.
    pub state: String,
}

/// The authority's answer to every call.
///
/// `S` is how the status body is held: the authority writes a
/// [`TokenStatus`]; the worker reads it as `serde_json::Value`, because it
/// only relays it to the admin (and logs its `state`), so a newer
/// authority's added fields reach the admin unchanged during a deploy, and
/// the worker carries no second decoder for it. Both read and write the
/// same JSON (pinned below). The worker reads it by hand
/// ([`Reply::read`]); the derive is for the tests. Its `Debug` hides the
/// hand-over (the whole state, refresh token included).
#[derive(Clone, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
pub struct Reply<S = TokenStatus> {
    /// A usable access token, when there is one.
    pub grant: Option<Grant>,
    /// The token status; `None` when the call was refused before the state
    /// was read.
    pub status: Option<S>,
    /// Why there is no grant (or why a forced refresh did not happen).
    #[serde(default)]
    pub error: Option<ApiError>,
    /// `check`: the token is valid; pass Xoxoday's 401 on unchanged.
    #[serde(default)]
    pub pass_through: bool,
    /// `export`: the previous version's state, handed over (JSON text: the
    /// requester reads it with the same code as its own storage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<String>,
    /// `export`: nothing is handed over, on purpose (nothing to hand over,
    /// or a deliberate refusal that `error` explains): the requester may
    /// start from its own bootstrap token. Without it, an answer without a
    /// hand-over is a transient failure (storage, a failed write, a deploy
    /// in progress) and means "ask again later"
    /// (`token::storage::read_handover`). Written only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub start_fresh: bool,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Reply<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("grant", &self.grant)
            .field("status", &self.status)
            .field("error", &self.error)
            .field("pass_through", &self.pass_through)
            .field("handover", &self.handover.as_ref().map(|_| "<redacted state>"))
            .field("start_fresh", &self.start_fresh)
            .finish()
    }
}

impl Reply<Value> {
    /// The worker's reading of an answer; `None` when it cannot be read.
    pub fn read(body: &[u8]) -> Option<Reply<Value>> {
        parse(body, |o| {
            Some(Reply {
                grant: get(o, "grant", |v| slot(v, Grant::from_fields)).ok()?,
                status: get(o, "status", |v| Some((!v.is_null()).then(|| v.clone()))).ok()?,
                error: get(o, "error", |v| slot(v, ApiError::from_fields)).ok()?,
                pass_through: get(o, "pass_through", flag).ok()?,
                handover: get(o, "handover", opt_text).ok()?,
                start_fresh: get(o, "start_fresh", flag).ok()?,
            })
        })
    }
}

impl<S> Reply<S> {
    /// An answer without grant, status or anything else.
    fn bare() -> Reply<S> {
        Reply { grant: None, status: None, error: None, pass_through: false, handover: None, start_fresh: false }
    }

    /// A refusal before any state was read (to `export`: a transient one,
    /// ask again later).
    pub fn refused(error: ApiError) -> Reply<S> {
        Reply { error: Some(error), ..Reply::bare() }
    }

    /// The previous version's authority hands its state over (JSON text).
    pub fn handover(state_text: String) -> Reply<S> {
        Reply { handover: Some(state_text), ..Reply::bare() }
    }

    /// The previous version's authority deliberately hands nothing over;
    /// `why`, when it refuses (the field [`Reply::start_fresh`]).
    pub fn start_fresh(why: Option<ApiError>) -> Reply<S> {
        Reply { error: why, start_fresh: true, ..Reply::bare() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: i64 = 1_795_626_582_000;

    fn status() -> TokenStatus {
        TokenStatus {
            last_alert: None,
            access_token_expires_at: Some("2026-12-10T17:09:42.000Z".into()),
            last_error: None,
            last_refresh_at: Some("2026-11-25T17:09:42.000Z".into()),
            refresh_count: 3,
            refresh_token_expires_at: Some("2026-12-25T17:09:42.000Z".into()),
            retry_at: None,
            state: "fresh".into(),
        }
    }

    /// Every call's URL and body, as sent.
    #[test]
    fn calls_are_pinned() {
        let calls = [
            (Call::Token, "https://authority/token", None),
            (Call::Check { fp: "0123456789abcdef".into() }, "https://authority/check", Some(r#"{"fp":"0123456789abcdef"}"#)),
            (Call::Refresh, "https://authority/refresh", None),
            (Call::Cron, "https://authority/cron", None),
            (Call::Status, "https://authority/status", None),
            (Call::Recover, "https://authority/recover", None),
            (Call::Export { requester: "account:00ff".into() }, "https://authority/export", Some(r#"{"requester":"account:00ff"}"#)),
            (Call::Balance { value: 950.5, seen_at_ms: T0 }, "https://authority/balance", Some(r#"{"balance":950.5,"seen_at_ms":1795626582000}"#)),
        ];
        for (call, url, body) in calls {
            assert_eq!(call.url(), url);
            assert_eq!(call.body().as_deref(), body, "{call:?}");
            // What is sent decodes to the same call.
            let op = Op::from_name(url.trim_start_matches("https://authority/")).unwrap();
            assert_eq!(Call::decode(op, call.body().unwrap_or_default().as_bytes()), Ok(call));
        }
    }

    #[test]
    fn unknown_operations_and_missing_payloads_are_errors() {
        assert_eq!(Op::from_name("tokens"), None);
        assert_eq!(Op::from_name(""), None);
        assert_eq!(Op::from_name("reject"), None, "the previous version's name only through from_legacy_name");
        assert_eq!(Op::from_legacy_name("reject"), Some(Op::Check));
        assert_eq!(Op::from_legacy_name("token"), Some(Op::Token));
        assert_eq!(Op::from_legacy_name("recover"), None);
        assert_eq!(Op::from_legacy_name("export"), None);
        assert_eq!(Op::from_legacy_name("balance"), None, "the previous version never reports a balance");
        for op in Op::ALL {
            assert_eq!(Op::from_name(op.name()), Some(op));
        }
        assert!(Call::decode(Op::Check, b"").is_err());
        assert!(Call::decode(Op::Check, br#"{"fp":7}"#).is_err());
        assert!(Call::decode(Op::Export, br#"{"requester":"xoxoday"}"#).is_err());
        assert!(Call::decode(Op::Export, b"{}").is_err());
        assert!(Call::decode(Op::Balance, br#"{"balance":950}"#).is_err(), "without when it was seen");
        assert!(Call::decode(Op::Balance, br#"{"seen_at_ms":1}"#).is_err());
        assert!(Call::decode(Op::Balance, br#"{"balance":"950","seen_at_ms":1}"#).is_err());
        assert_eq!(Call::decode(Op::Balance, br#"{"balance":0,"seen_at_ms":1}"#), Ok(Call::Balance { value: 0.0, seen_at_ms: 1 }));
        // Operations without a payload ignore whatever body came.
        assert_eq!(Call::decode(Op::Token, b"not json"), Ok(Call::Token));
        // A legacy check: the same body.
        assert_eq!(Call::decode(Op::Check, br#"{"fp":"ab","extra":1}"#), Ok(Call::Check { fp: "ab".into() }));
        // A payload with a known field of the wrong type is no payload,
        // whatever else it holds.
        assert!(Call::decode(Op::Check, br#"{"fp":"ab","seen_at_ms":"1"}"#).is_err());
        assert!(Call::decode(Op::Export, br#"{"requester":"account:a","fp":7}"#).is_err());
    }

    /// Every reply shape, as sent (the previous version reads the same JSON).
    #[test]
    fn replies_are_pinned() {
        let full = Reply {
            grant: Some(Grant { access_token: AccessToken::new("at-1"), expires_at_ms: T0 + 1000, recheck_at_ms: T0 + 500 }),
            status: Some(status()),
            error: None,
            pass_through: false,
            handover: None,
            start_fresh: false,
        };
        let text = serde_json::to_string(&full).unwrap();
        assert_eq!(
            text,
            r#"{"grant":{"access_token":"at-1","expires_at_ms":1795626583000,"recheck_at_ms":1795626582500},"status":{"access_token_expires_at":"2026-12-10T17:09:42.000Z","last_alert":null,"last_error":null,"last_refresh_at":"2026-11-25T17:09:42.000Z","refresh_count":3,"refresh_token_expires_at":"2026-12-25T17:09:42.000Z","retry_at":null,"state":"fresh"},"error":null,"pass_through":false}"#
        );
        let back: Reply = serde_json::from_str(&text).unwrap();
        assert_eq!(back.grant.unwrap().access_token.expose_secret(), "at-1");
        assert_eq!(back.status, Some(status()));
        // The worker's reading: the same status, as the JSON it relays.
        let relayed: Reply<serde_json::Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(relayed.status, Some(serde_json::to_value(status()).unwrap()));
        assert_eq!(relayed.status.unwrap().to_string(), serde_json::to_string(&status()).unwrap(), "relayed byte for byte");

        let refused = Reply::<TokenStatus>::refused(ApiError::reauth_required());
        assert_eq!(
            serde_json::to_string(&refused).unwrap(),
            format!(
                r#"{{"grant":null,"status":null,"error":{{"status":503,"code":"reauth_required","message":"{}","retry_after_secs":null}},"pass_through":false}}"#,
                ApiError::reauth_required().message
            )
        );
        let handed = Reply::<TokenStatus>::handover("{}".into());
        assert_eq!(serde_json::to_string(&handed).unwrap(), r#"{"grant":null,"status":null,"error":null,"pass_through":false,"handover":"{}"}"#);
        let secret = Reply::<TokenStatus>::handover(r#"{"refresh":{"token":"rt-secret"}}"#.into());
        let shown = format!("{secret:?}");
        assert!(!shown.contains("rt-secret") && shown.contains("<redacted state>"), "{shown}");
        // Nothing handed over on purpose: start fresh (with the reason of a
        // deliberate refusal); a plain refusal (above) is "ask again later".
        let nothing = Reply::<TokenStatus>::start_fresh(None);
        assert_eq!(serde_json::to_string(&nothing).unwrap(), r#"{"grant":null,"status":null,"error":null,"pass_through":false,"start_fresh":true}"#);
        let declined = Reply::<TokenStatus>::start_fresh(Some(ApiError::upstream_error("another chain")));
        assert_eq!(
            serde_json::to_string(&declined).unwrap(),
            r#"{"grant":null,"status":null,"error":{"status":502,"code":"upstream_error","message":"another chain","retry_after_secs":null},"pass_through":false,"start_fresh":true}"#
        );
        for (sent, fresh) in [(&handed, false), (&nothing, true), (&declined, true), (&refused, false)] {
            let read = Reply::read(serde_json::to_string(sent).unwrap().as_bytes()).unwrap();
            assert_eq!(read.start_fresh, fresh);
            assert_eq!(read.handover, sent.handover);
            assert_eq!(read.error.map(|e| e.message), sent.error.as_ref().map(|e| e.message.clone()));
        }

        // The last alert, as the status carries it.
        let alert = AlertView {
            at: "2026-11-25T17:09:42.000Z".into(),
            attempts: 2,
            delivered: false,
            error: Some("the receiver answered HTTP 500".into()),
            event: "reauth_required".into(),
            next_attempt_at: Some("2026-11-25T17:09:52.000Z".into()),
            state: "firing".into(),
        };
        let with_alert = TokenStatus { last_alert: Some(alert), ..status() };
        let text = serde_json::to_string(&with_alert).unwrap();
        assert_eq!(
            text,
            r#"{"access_token_expires_at":"2026-12-10T17:09:42.000Z","last_alert":{"at":"2026-11-25T17:09:42.000Z","attempts":2,"delivered":false,"error":"the receiver answered HTTP 500","event":"reauth_required","next_attempt_at":"2026-11-25T17:09:52.000Z","state":"firing"},"last_error":null,"last_refresh_at":"2026-11-25T17:09:42.000Z","refresh_count":3,"refresh_token_expires_at":"2026-12-25T17:09:42.000Z","retry_at":null,"state":"fresh"}"#
        );
        assert_eq!(serde_json::from_str::<TokenStatus>(&text).unwrap(), with_alert);
        // A status from an authority before alerts reads with none.
        let before: TokenStatus = serde_json::from_str(
            r#"{"access_token_expires_at":null,"last_error":null,"last_refresh_at":null,"refresh_count":0,"refresh_token_expires_at":null,"retry_at":null,"state":"uninitialized"}"#,
        )
        .unwrap();
        assert_eq!(before.last_alert, None);

        // What the previous version wrote (no handover, maybe no error or
        // pass_through) and fields from a newer one read fine.
        let old: Reply = serde_json::from_str(r#"{"grant":null,"status":null}"#).unwrap();
        assert!(old.error.is_none() && !old.pass_through && old.handover.is_none() && !old.start_fresh);
        let newer: Reply<serde_json::Value> = serde_json::from_str(
            r#"{"grant":null,"status":{"state":"paused","refresh_count":1,"alert":"x"},"error":null,"pass_through":true,"later":1}"#,
        )
        .unwrap();
        let status = newer.status.unwrap();
        assert_eq!((status["state"].as_str(), status["alert"].as_str()), (Some("paused"), Some("x")), "relayed as the authority wrote it");
        assert!(newer.pass_through);
    }

    #[test]
    fn the_readers_agree_with_serdes_derive() {
        use crate::stored::agree;
        let grant = json!({"access_token": "at-1", "expires_at_ms": T0 + 1000, "recheck_at_ms": T0 + 500});
        let (read, refused) = agree::check::<Grant>(&agree::texts(&grant, &[]), |b| Grant::read(std::str::from_utf8(b).unwrap()));
        assert!(read > 10 && refused > 50, "grant: {read} read, {refused} refused");
        let error = serde_json::to_value(ApiError::reauth_required().retry_after(5)).unwrap();
        let reply = json!({"grant": grant, "status": {"state": "fresh", "n": [1]}, "error": error, "pass_through": true, "handover": "{}", "start_fresh": true});
        let (read, refused) = agree::check::<Reply<Value>>(&agree::texts(&reply, &["/grant", "/error"]), Reply::read);
        assert!(read > 50 && refused > 150, "reply: {read} read, {refused} refused");
        let payload = json!({"fp": "ab", "requester": "account:1", "balance": 950.5, "seen_at_ms": T0});
        let (read, refused) = agree::check::<Payload>(&agree::texts(&payload, &[]), |b| parse(b, Payload::from_fields));
        assert!(read > 15 && refused > 50, "payload: {read} read, {refused} refused");
    }

    #[test]
    fn a_grant_never_shows_its_token() {
        let g = Grant { access_token: AccessToken::new("at-SECRET"), expires_at_ms: T0 + 10, recheck_at_ms: T0 + 5 };
        let d = format!("{g:?}");
        assert!(!d.contains("SECRET") && d.contains("[redacted]"), "{d}");
        let r: Reply = Reply { grant: Some(g), status: None, error: None, pass_through: false, handover: None, start_fresh: false };
        assert!(!format!("{r:?}").contains("SECRET"));
    }

    #[test]
    fn a_grant_is_usable_before_its_recheck_and_its_expiry() {
        let g = Grant { access_token: AccessToken::new("at"), expires_at_ms: T0 + 10, recheck_at_ms: T0 + 5 };
        assert!(g.usable(T0));
        assert!(g.usable(T0 + 4));
        assert!(!g.usable(T0 + 5), "recheck point reached");
        let late = Grant { recheck_at_ms: T0 + 50, ..g.clone() };
        assert!(late.usable(T0 + 9));
        assert!(!late.usable(T0 + 10), "expired");
        assert_eq!(g.fingerprint(), AccessToken::new("at").fingerprint());
    }

    /// A refusal before the state was read crosses with `"status":null`:
    /// the worker reads no status and relays the refusal. An export names a
    /// per-account authority (`account:`), nothing like it.
    #[test]
    fn a_null_status_is_none_and_an_export_names_an_account() {
        let refused = serde_json::to_vec(&Reply::<TokenStatus>::refused(ApiError::upstream_error("token storage unavailable"))).unwrap();
        let r = Reply::read(&refused).unwrap();
        assert!(r.status.is_none(), "{:?}", r.status);
        assert_eq!(crate::token::cache::status_of(r).unwrap_err().message, "token storage unavailable");
        for requester in ["account", "accounts:a", "account-a"] {
            assert!(Call::decode(Op::Export, json!({ "requester": requester }).to_string().as_bytes()).is_err(), "{requester}");
        }
        assert_eq!(Call::decode(Op::Export, br#"{"requester":"account:a"}"#), Ok(Call::Export { requester: "account:a".into() }));
    }
}
