//! Where the token authority's state lives and when it may be used.
//!
//! Owns: the per-account names (one authority and one KV entry per Xoxoday
//! account), the rule that loads stored state or refuses it, and the
//! one-time import of the previous version's single authority.
//!
//! **One authority per account.** The Durable Object's name and the KV key
//! of the cached access token derive from the base URL and the client id
//! ([`account_id`]), so changing `XOXODAY_ENV`, `XOXODAY_OAUTH_URL` or
//! `XOXODAY_CLIENT_ID` reaches another authority, which never serves the
//! previous account's token. (The client secret is not part of it: a new
//! secret is the same account, and clears `credentials_rejected`.)
//!
//! **Never discard a live refresh token.** Stored state that cannot be read
//! is refused, not replaced ([`load_state`]): the authority answers `503
//! misconfigured`, logs the storage key loudly and writes nothing, until an
//! admin sets it aside explicitly ([`quarantine_key`]; README "When a
//! person must act").
//!
//! **Upgrade from the single authority.** Versions before per-account names
//! used one object named [`LEGACY_AUTHORITY_NAME`]. A per-account authority
//! that finds no state of its own asks that object once ([`legacy_export`]):
//! the old state is handed over when it was seeded from the same
//! `XOXODAY_REFRESH_TOKEN` as the one configured now (so it is this
//! account's chain), and the old object records, in the same write, to whom
//! it handed it: from then on it hands it to nobody else and refuses to
//! serve (only one authority may ever refresh one chain), while the same
//! requester may ask again (if it failed before storing it). Without this an
//! upgrade would restart from the bootstrap token, which the old authority
//! has long rotated away, and end in `reauth_required`. For the same reason
//! the new authority starts fresh only on the old one's deliberate answers
//! (nothing to hand over, or another bootstrap token: [`LegacyExport::reply`]
//! marks them); any other failure means "ask again later" ([`read_handover`]).

use super::decode::Bad;
use super::{AuthorityState, Refusal};
use crate::wire::authority::Reply;
use serde_json::Value;

/// Storage key of the whole [`AuthorityState`] (JSON text).
pub const STATE_KEY: &str = "state";

/// The name of the single authority of versions before per-account names.
pub const LEGACY_AUTHORITY_NAME: &str = "xoxoday";

/// The account a configuration talks to: 16 hex chars of SHA-256 over the
/// base URL (scheme and host lower-cased, no trailing slash) and the client
/// id. Not secret, but reveals neither.
pub fn account_id(oauth_url: &str, client_id: &str) -> String {
    let url = crate::text::trim_end(oauth_url, b'/');
    let normalised = match crate::text::split_once(url, "://") {
        Some((scheme, rest)) => {
            let (host, path) = rest.split_at(crate::text::find(rest.as_bytes(), b"/").unwrap_or(rest.len()));
            format!("{}://{}{}", scheme.to_ascii_lowercase(), host.to_ascii_lowercase(), path)
        }
        None => url.to_string(),
    };
    crate::secret::fingerprint_pair(&normalised, client_id)
}

/// The token authority's Durable Object name for `account` ([`account_id`]).
pub fn authority_name(account: &str) -> String {
    format!("account:{account}")
}

/// The KV key of the cached access token for `account` ([`account_id`]).
pub fn kv_token_key(account: &str) -> String {
    format!("xoxoday:access-token:v2:{account}")
}

/// Where an admin-requested recovery sets unreadable state aside (its text
/// unchanged), so it is never lost: `state.unreadable.<epoch ms>`.
pub fn quarantine_key(now_ms: i64) -> String {
    format!("{STATE_KEY}.unreadable.{now_ms}")
}

/// Why stored state is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Safe sentence: what kind of problem and where, never content (a
    /// JSON error message can quote the value it choked on).
    pub reason: String,
}

/// What is stored under [`STATE_KEY`]: `None` when nothing, else the
/// value as the storage returned it (JSON text is expected).
///
/// - nothing stored: `Ok(None)` (a new authority: bootstrap, or import);
/// - JSON text of an [`AuthorityState`]: `Ok(Some(state))`, whatever fields
///   are missing (all have defaults) or unknown (ignored);
/// - anything else: `Err`, and the caller must neither use nor overwrite it.
pub fn load_state(stored: Option<&Value>) -> Result<Option<AuthorityState>, Unreadable> {
    let text = match stored {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) => text,
        Some(_) => return Err(Unreadable { reason: "it is not JSON text".into() }),
    };
    let json: Value = crate::jsontext::from_text(text).map_err(|e| {
        let kind = match e.classify() {
            serde_json::error::Category::Io => "it could not be read",
            _ => "it is not valid JSON",
        };
        Unreadable { reason: format!("{kind} (line {}, column {})", e.line(), e.column()) }
    })?;
    super::decode::state(&json).map(Some).map_err(|bad| Unreadable {
        reason: match bad {
            Bad::NotAnObject => "it is not a JSON object".into(),
            Bad::Field(k) => format!("a field has a type this version cannot read (`{k}`)"),
        },
    })
}

/// The message callers see while the state is refused.
pub fn unreadable_message(authority: &str, why: &Unreadable) -> String {
    format!(
        "the token authority's stored state (Durable Object TokenAuthority `{authority}`, storage key `{STATE_KEY}`) cannot be read: {}; it is left untouched until an admin acts (README: When a person must act)",
        why.reason,
    )
}

/// `POST /v1/token/recover` with `stored` under [`STATE_KEY`]: where to set
/// it aside (its text unchanged) before the authority starts again from the
/// bootstrap token; `None` when it can be read, which is left alone.
pub fn set_aside_key(stored: Option<&Value>, now_ms: i64) -> Option<String> {
    load_state(stored).is_err().then(|| quarantine_key(now_ms))
}

/// What a new authority makes of the previous version's answer to
/// `export`.
#[derive(Debug)]
pub enum Handover {
    /// Take this state over (store it before anything else happens).
    Take(Box<AuthorityState>),
    /// Nothing to take over, on purpose (start fresh); the old object's
    /// reason, if it refused.
    Nothing(Option<String>),
    /// What was handed over cannot be read: ask again later.
    Unreadable,
    /// The old object could not answer now (its storage failed, its state
    /// cannot be read, the hand-over mark was not written, it was reached
    /// mid-deploy): ask again later, never start fresh, or its live refresh
    /// token would be lost for the long-rotated bootstrap one. Its reason,
    /// if it gave one.
    Later(Option<String>),
}

/// Read the previous version's answer to `export`. Only an answer marked
/// `start_fresh` (a [`LegacyExport::Nothing`] or [`LegacyExport::Refused`],
/// [`LegacyExport::reply`]) lets the requester start fresh.
pub fn read_handover<S>(reply: Reply<S>) -> Handover {
    let reason = reply.error.map(|e| e.message);
    match reply.handover {
        Some(text) => match load_state(Some(&Value::String(text))) {
            Ok(Some(state)) => Handover::Take(Box::new(state)),
            // JSON text never reads as "nothing stored"; either way there
            // is nothing usable in it.
            Ok(None) | Err(_) => Handover::Unreadable,
        },
        None if reply.start_fresh => Handover::Nothing(reason),
        None => Handover::Later(reason),
    }
}

/// What the previous version's authority does when a per-account
/// authority asks for its state.
#[derive(Debug, Clone)]
pub enum LegacyExport {
    /// Nothing to hand over (none stored, no tokens, handed to another).
    Nothing,
    /// Hand this state over (the legacy object's own state has been marked
    /// and must be persisted before answering).
    Export(Box<AuthorityState>),
    /// There is state, but it is not handed over; a safe sentence why.
    Refused(&'static str),
    /// A refresh is running there: the pair it holds is about to be
    /// rotated, so nothing is handed over (or marked) until it ends; the
    /// requester asks again.
    Busy,
}

impl LegacyExport {
    /// The answer to the requester (for [`LegacyExport::Export`], only once
    /// the marked state is persisted). The two deliberate answers are marked
    /// `start_fresh`; every other refusal of `export` the object sends is
    /// not, and means "ask again later" ([`read_handover`]).
    pub fn reply(&self) -> Reply {
        match self {
            LegacyExport::Export(state) => match serde_json::to_string(state) {
                Ok(text) => Reply::handover(text),
                Err(_) => Reply::refused(Refusal::Unavailable { message: "the state could not be written out; retry".into() }.api_error()),
            },
            LegacyExport::Nothing => Reply::start_fresh(None),
            LegacyExport::Refused(why) => Reply::start_fresh(Some(Refusal::Unavailable { message: (*why).into() }.api_error())),
            // Unmarked: "ask again later", never "start fresh".
            LegacyExport::Busy => Reply::refused(
                Refusal::Unavailable { message: "the previous version's authority is refreshing the token; retry in a moment".into() }.api_error(),
            ),
        }
    }
}

/// On the legacy object: hand its `state` (as [`load_state`] read it) to
/// the authority named `requester`, whose configured `XOXODAY_REFRESH_TOKEN`
/// has fingerprint `bootstrap_fp`. Marks `state` as handed over.
/// `refreshing`: a refresh is running on the legacy object (which waited
/// for it as long as it would): the pair in `state` may be rotated any
/// moment, and handing it over would leave the requester with a spent
/// refresh token, so nothing leaves until the run has ended.
pub fn legacy_export(state: Option<&mut AuthorityState>, requester: &str, bootstrap_fp: &str, refreshing: bool, now_ms: i64) -> LegacyExport {
    let Some(state) = state else { return LegacyExport::Nothing };
    if refreshing {
        return LegacyExport::Busy;
    }
    match state.retired_to.as_deref() {
        Some(to) if to != requester => return LegacyExport::Nothing,
        Some(_) => {}
        None => {
            if state.refresh.is_none() && state.access.is_none() {
                return LegacyExport::Nothing;
            }
            if state.adopted_bootstrap_fp.as_deref() != Some(bootstrap_fp) {
                return LegacyExport::Refused(
                    "it was seeded from another XOXODAY_REFRESH_TOKEN (another account, or tokens regenerated since)",
                );
            }
            state.retired_to = Some(requester.to_string());
            state.retired_at_ms = Some(now_ms);
        }
    }
    let mut handed = state.clone();
    handed.retired_to = None;
    handed.retired_at_ms = None;
    LegacyExport::Export(Box::new(handed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::RefreshToken;
    use crate::token::{plan, Plan, TokenPolicy, TokenState, Trigger};
    use serde_json::json;

    const T0: i64 = 1_795_626_582_000;

    /// A state exactly as the previous version wrote it (field for field,
    /// no field of this version).
    const OLD_FORMAT: &str = r#"{"access":{"token":"at-old","expires_at_ms":1796922582000,"obtained_at_ms":1795626582000,"rejected":false},"refresh":{"token":"rt-old","expires_at_ms":1798218582000,"expiry_known":true},"reauth_reason":null,"adopted_bootstrap_fp":"c9b1c6a2f1b5e9d7","adopted_access_fp":null,"spent_refresh_fps":["0123456789abcdef"],"refresh_count":4,"last_refresh_at_ms":1795626582000,"last_error":null,"last_error_at_ms":null,"consecutive_failures":0,"next_attempt_at_ms":null,"jitter":0.25}"#;

    #[test]
    fn an_old_format_state_loads_and_serves() {
        let s = load_state(Some(&json!(OLD_FORMAT))).unwrap().unwrap();
        assert_eq!(s.refresh.as_ref().unwrap().token.expose_secret(), "rt-old");
        assert_eq!(s.refresh_count, 4);
        assert_eq!(s.jitter, 0.25);
        assert!(s.penalty_until_ms.is_none() && s.credentials_rejected_fp.is_none() && s.last_check().is_none());
        assert_eq!(s.state(T0 + 1000, &TokenPolicy::default()), TokenState::Fresh);
        assert_eq!(plan(&s, Trigger::Request, T0 + 1000, &TokenPolicy::default()), Plan::Serve);
        // An even older one that lacks fields added before (no
        // adopted_access_fp, no expiry_known, no rejected) loads as well.
        let older = r#"{"access":{"token":"a","expires_at_ms":1},"refresh":{"token":"r","expires_at_ms":2},"refresh_count":1}"#;
        let s = load_state(Some(&json!(older))).unwrap().unwrap();
        assert!(!s.access.as_ref().unwrap().rejected);
        assert!(s.spent_refresh_fps.is_empty());
    }

    #[test]
    fn unknown_fields_are_tolerated() {
        // A state a newer version wrote, with fields (and a slot field) this
        // version does not know: it loads, tokens intact.
        let text = r#"{"refresh":{"token":"rt","expires_at_ms":5,"future_slot_field":1},"refresh_count":2,"future_field":{"a":[1,2]},"notices":"x"}"#;
        let s = load_state(Some(&json!(text))).unwrap().unwrap();
        assert_eq!(s.refresh_count, 2);
        assert_eq!(s.refresh.as_ref().unwrap().token.expose_secret(), "rt");
        let back: Value = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back["refresh"]["token"], "rt");
        assert_eq!(back["refresh_count"], 2);
    }

    #[test]
    fn unreadable_state_is_refused_without_echoing_it() {
        assert!(load_state(None).unwrap().is_none());
        assert!(load_state(Some(&Value::Null)).unwrap().is_none());
        let cases = [
            json!("#{\"refresh\":{\"token\":\"rt-SECRET\"}}"),
            json!("{\"refresh\":{\"token\":\"rt-SECRET\"}"),
            json!("{\"refresh\":{\"token\":42}}"),
            json!("{\"refresh\":{\"expires_at_ms\":1}}"),
            json!("{\"refresh_count\":\"rt-SECRET\"}"),
            json!(""),
            json!({"refresh": {"token": "rt-SECRET"}}),
            json!(7),
        ];
        for stored in &cases {
            let e = load_state(Some(stored)).unwrap_err();
            assert!(e.reason.starts_with("it is not") || e.reason.starts_with("a field"), "{}", e.reason);
            assert!(!e.reason.contains("SECRET"), "never echo content: {}", e.reason);
            let m = unreadable_message("account:0123", &e);
            assert!(m.contains("storage key `state`") && m.contains("account:0123") && !m.contains("SECRET"), "{m}");
        }
        assert_eq!(quarantine_key(T0), format!("state.unreadable.{T0}"));
    }

    #[test]
    fn recovery_sets_aside_only_what_cannot_be_read() {
        assert_eq!(set_aside_key(None, T0), None);
        assert_eq!(set_aside_key(Some(&json!(OLD_FORMAT)), T0), None, "readable state is left alone");
        assert_eq!(set_aside_key(Some(&json!("#bad")), T0), Some(format!("state.unreadable.{T0}")));
    }

    #[test]
    fn a_handover_is_read_every_way() {
        use crate::errors::ApiError;
        let text = |s: &str| Reply::<()>::handover(s.into());
        match read_handover(text(OLD_FORMAT)) {
            Handover::Take(s) => assert_eq!(s.refresh_count, 4),
            other => panic!("{other:?}"),
        }
        assert!(matches!(read_handover(text("#bad")), Handover::Unreadable));
        assert!(matches!(read_handover(text("null")), Handover::Unreadable));
        assert!(matches!(read_handover(Reply::<()>::start_fresh(None)), Handover::Nothing(None)));
        let declined = Reply::<()>::start_fresh(Some(ApiError::upstream_error("it was seeded from another XOXODAY_REFRESH_TOKEN")));
        match read_handover(declined) {
            Handover::Nothing(Some(reason)) => assert!(reason.contains("another XOXODAY_REFRESH_TOKEN")),
            other => panic!("{other:?}"),
        }
        match read_handover(Reply::<()>::refused(ApiError::upstream_error("token storage unavailable"))) {
            Handover::Later(Some(reason)) => assert_eq!(reason, "token storage unavailable"),
            other => panic!("{other:?}"),
        }
        // An answer with neither a hand-over nor the mark (a status reply,
        // say): not a deliberate "nothing" either.
        assert!(matches!(read_handover(Reply::<()>::refused(ApiError::internal())), Handover::Later(_)));
        let unmarked = Reply::read(br#"{"grant":null,"status":null,"error":null,"pass_through":false}"#).unwrap();
        assert!(matches!(read_handover(unmarked), Handover::Later(None)));
    }

    /// What `legacy_export` decides reaches the requester through the wire
    /// as the same decision.
    #[test]
    fn each_export_decision_crosses_the_wire_as_itself() {
        let boot = RefreshToken::new("rt-boot").fingerprint();
        let mut old = load_state(Some(&json!(OLD_FORMAT))).unwrap().unwrap();
        old.adopted_bootstrap_fp = Some(boot.clone());
        let mut other = old.clone();
        let sent = |e: LegacyExport| read_handover(Reply::read(&serde_json::to_vec(&e.reply()).unwrap()).unwrap());
        match sent(legacy_export(Some(&mut old), "account:a", &boot, true, T0)) {
            Handover::Later(Some(reason)) => assert!(reason.contains("refreshing"), "{reason}"),
            h => panic!("a refresh running there: ask again, never start fresh: {h:?}"),
        }
        assert!(old.retired_to.is_none(), "not marked while refreshing");
        match sent(legacy_export(Some(&mut old), "account:a", &boot, false, T0)) {
            Handover::Take(s) => assert_eq!((s.refresh_count, s.retired_to.as_deref()), (4, None)),
            h => panic!("{h:?}"),
        }
        assert!(matches!(sent(legacy_export(None, "account:a", &boot, false, T0)), Handover::Nothing(None)));
        assert!(matches!(sent(legacy_export(Some(&mut old), "account:b", &boot, false, T0)), Handover::Nothing(None)));
        match sent(legacy_export(Some(&mut other), "account:a", "ffffffffffffffff", false, T0)) {
            Handover::Nothing(Some(reason)) => assert!(reason.contains("another XOXODAY_REFRESH_TOKEN"), "{reason}"),
            h => panic!("{h:?}"),
        }
    }

    /// Only the two deliberate answers may start a new authority from its
    /// bootstrap token; every other refusal of `export` (the old object's
    /// storage failed, its state cannot be read, the hand-over mark could
    /// not be written, it is misconfigured, or it was reached during a
    /// deploy) means "ask again later", or an upgrade would restart from a
    /// long-rotated `XOXODAY_REFRESH_TOKEN` and end in `reauth_required`.
    #[test]
    fn a_transient_refusal_of_export_is_never_nothing_to_take_over() {
        use crate::errors::ApiError;
        use crate::token::Refusal;
        let transient = [
            Refusal::Unavailable { message: "token storage unavailable".into() },
            Refusal::Unavailable { message: "the previous version's state cannot be read (it is left as it is)".into() },
            Refusal::Unavailable { message: "the token authority was reached with another configuration".into() },
            Refusal::Misconfigured { problems: vec!["XOXODAY_CLIENT_ID is not set".into()] },
        ];
        for r in transient {
            let answer = Reply::<()>::refused(r.api_error());
            assert!(!matches!(read_handover(answer), Handover::Nothing(_)), "{r:?}");
        }
        // A refusal that merely quotes the deliberate one's words is no
        // deliberate refusal either: the wire says which it is.
        let lookalike = Reply::<()>::refused(ApiError::upstream_error("it was seeded from another XOXODAY_REFRESH_TOKEN"));
        assert!(!matches!(read_handover(lookalike), Handover::Nothing(_)));
    }

    #[test]
    fn names_are_per_account() {
        let a = account_id("https://accounts.xoxoday.com/chef", "client-1");
        assert_eq!(a, "89a221c01a4a22dc", "pinned: another value would reach another authority");
        assert_eq!(a, account_id("HTTPS://Accounts.Xoxoday.com/chef/", "client-1"), "scheme/host case and a trailing slash");
        assert_ne!(a, account_id("https://accounts.xoxoday.com/Chef", "client-1"), "the path is case-sensitive");
        assert_ne!(a, account_id("https://stagingaccount.xoxoday.com/chef", "client-1"));
        assert_ne!(a, account_id("https://accounts.xoxoday.com/chef", "client-2"));
        assert_ne!(account_id("https://a/b", "c"), account_id("https://a/", "bc"));
        assert_eq!(authority_name(&a), format!("account:{a}"));
        assert_ne!(authority_name(&a), LEGACY_AUTHORITY_NAME);
        assert_eq!(kv_token_key(&a), format!("xoxoday:access-token:v2:{a}"));
        assert!(!a.contains("client-1"));
    }

    #[test]
    fn legacy_state_is_handed_over_once_and_only_for_the_same_bootstrap() {
        let boot = RefreshToken::new("rt-boot").fingerprint();
        let mut raw: Value = serde_json::from_str(OLD_FORMAT).unwrap();
        raw["adopted_bootstrap_fp"] = json!(boot);
        let legacy = || load_state(Some(&json!(raw.to_string()))).unwrap().unwrap();

        let mut old = legacy();
        match legacy_export(Some(&mut old), "account:a", &boot, false, T0) {
            LegacyExport::Export(s) => {
                assert_eq!(s.refresh.as_ref().unwrap().token.expose_secret(), "rt-old");
                assert_eq!(s.refresh_count, 4);
                assert!(s.retired_to.is_none() && s.retired_at_ms.is_none(), "the new owner is not retired");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(old.retired_to.as_deref(), Some("account:a"));
        assert_eq!(old.retired_at_ms, Some(T0));
        // The same requester may ask again (it failed to store it); nobody else.
        assert!(matches!(legacy_export(Some(&mut old), "account:a", &boot, false, T0 + 5), LegacyExport::Export(_)));
        assert_eq!(old.retired_at_ms, Some(T0), "unchanged");
        // A refresh running there (a worker of the previous version still
        // calling it mid-deploy): nothing leaves until it ends, even again.
        assert!(matches!(legacy_export(Some(&mut old), "account:a", &boot, true, T0 + 6), LegacyExport::Busy));
        assert!(matches!(legacy_export(Some(&mut old), "account:b", &boot, false, T0), LegacyExport::Nothing));
        // Another bootstrap token: another chain, not handed over, not marked.
        let mut other = legacy();
        assert!(matches!(legacy_export(Some(&mut other), "account:a", "ffffffffffffffff", false, T0), LegacyExport::Refused(_)));
        assert!(other.retired_to.is_none());
        // Nothing stored, or nothing worth taking.
        assert!(matches!(legacy_export(None, "account:a", &boot, false, T0), LegacyExport::Nothing));
        let mut empty = AuthorityState { adopted_bootstrap_fp: Some(boot.clone()), ..Default::default() };
        assert!(matches!(legacy_export(Some(&mut empty), "account:a", &boot, false, T0), LegacyExport::Nothing));
        assert!(empty.retired_to.is_none());
    }

    #[test]
    fn a_new_bootstrap_token_set_in_the_upgrading_deploy_is_not_handed_the_old_chain() {
        use crate::token::adopt::adopt;
        use crate::token::serve::may_adopt;
        // The previous version's state, seeded from rt-boot; the deploy
        // sets rt-new (tokens regenerated, or another account). Workers of
        // the previous version still call that object meanwhile (`current`
        // false); then the new authority asks for the state.
        let boot = RefreshToken::new("rt-boot").fingerprint();
        let new = RefreshToken::new("rt-new");
        let mut raw: Value = serde_json::from_str(OLD_FORMAT).unwrap();
        raw["adopted_bootstrap_fp"] = json!(boot);
        let mut old = load_state(Some(&json!(raw.to_string()))).unwrap().unwrap();
        let mut seeded = old.clone();
        for (current, state) in [(false, &mut old), (true, &mut seeded)] {
            if may_adopt(current) {
                adopt(state, &new, None, "client-fp", T0);
            }
        }
        match legacy_export(Some(&mut old), "account:a", &new.fingerprint(), false, T0) {
            LegacyExport::Refused(why) => assert!(why.contains("another XOXODAY_REFRESH_TOKEN"), "{why}"),
            other => panic!("the old chain's access token would be served: {other:?}"),
        }
        assert!(old.retired_to.is_none());
        // What adopting there would have done: handed over, the old access token with it.
        match legacy_export(Some(&mut seeded), "account:a", &new.fingerprint(), false, T0) {
            LegacyExport::Export(s) => assert_eq!(s.access.as_ref().unwrap().token.expose_secret(), "at-old"),
            other => panic!("{other:?}"),
        }
    }

    /// A legacy state holding one token of the pair is still this chain's
    /// state: a refresh token alone is the only live one (starting fresh
    /// would fall back to the long-rotated bootstrap token), and an access
    /// token alone is handed over as it was.
    #[test]
    fn half_a_legacy_state_is_handed_over_too() {
        let boot = RefreshToken::new("rt-boot").fingerprint();
        let mut full = load_state(Some(&json!(OLD_FORMAT))).unwrap().unwrap();
        full.adopted_bootstrap_fp = Some(boot.clone());
        let mut refresh_only = AuthorityState { access: None, ..full.clone() };
        match legacy_export(Some(&mut refresh_only), "account:a", &boot, false, T0) {
            LegacyExport::Export(s) => assert_eq!(s.refresh.as_ref().unwrap().token.expose_secret(), "rt-old"),
            other => panic!("the only live refresh token would be left behind: {other:?}"),
        }
        let mut access_only = AuthorityState { refresh: None, ..full };
        match legacy_export(Some(&mut access_only), "account:a", &boot, false, T0) {
            LegacyExport::Export(s) => assert_eq!(s.access.as_ref().unwrap().token.expose_secret(), "at-old"),
            other => panic!("{other:?}"),
        }
        // A base URL without a path is normalised as one with a path.
        assert_eq!(account_id("HTTPS://Accounts.Xoxoday.com", "c"), account_id("https://accounts.xoxoday.com/", "c"));
    }
}
