//! What the `TokenAuthority` does with one call, decided without I/O.
//!
//! Its Durable Object shell (`src/objects/authority.rs`) runs these in
//! order and does only the I/O between them (storage, `fetch`, KV, the
//! shared futures that make every refresh and check single-flight):
//! 1. [`address`]: is the call meant for this authority, and in which
//!    version of the protocol (`wire::authority`)?
//! 2. load the state (`storage::load_state`), once per object; refuse it
//!    while it cannot be read; [`retired`] after a hand-over;
//! 3. adopt what the operator set (`adopt::adopt`), and record a balance
//!    report ([`observation`], `alert::observe_balance`); every write of the
//!    state also reviews the token condition for an alert
//!    (`alert::review`);
//! 4. [`intent`]: what the call asks: an answer at once, the state
//!    machine ([`super::plan`], then a refresh run: `run`), or a token
//!    check first (`check::plan_check`, then [`after_verdict`]);
//! 5. [`reply`]: the grant, the status and the refusal, if any.

use super::cache::grant;
use crate::alert::BalanceSeen;
use super::check::CheckVerdict;
use super::storage::LEGACY_AUTHORITY_NAME;
use super::{status, AuthorityState, Refusal, TokenPolicy, Trigger};
use crate::wire::authority::{Call, Op, Reply};

/// Who a call is for, and how to serve it.
#[derive(Debug, Clone, PartialEq)]
pub enum Addressed {
    /// Serve `call`. `current`: from a worker of this protocol version
    /// (one without the authority header is from the version before
    /// per-account authorities, during a deploy).
    Serve {
        /// The call.
        call: Call,
        /// Sent by a worker of this version.
        current: bool,
    },
    /// This object is the previous version's single authority and a
    /// per-account one asks for its state.
    Export {
        /// The asking authority's name.
        requester: String,
    },
    /// Answer this refusal.
    Refuse(Refusal),
}

/// Decide who a call to the authority named `own_name` is for: `header` is
/// the authority header (the name the worker meant), `path` the URL path
/// (the operation), `body` what came with it.
pub fn address(own_name: &str, header: Option<&str>, path: &str, body: &[u8]) -> Addressed {
    let op_name = crate::text::trim_start(path, b'/');
    let unknown = || Addressed::Refuse(Refusal::Unavailable { message: "unknown token authority operation".into() });
    let decode = |op: Op, current: bool| match Call::decode(op, body) {
        Ok(call) => Addressed::Serve { call, current },
        Err(why) => Addressed::Refuse(Refusal::Unavailable { message: why.into() }),
    };
    match header {
        Some(name) if name == own_name => Op::from_name(op_name).map_or_else(unknown, |op| decode(op, true)),
        Some(name) if name == LEGACY_AUTHORITY_NAME && op_name == Op::Export.name() => match Call::decode(Op::Export, body) {
            Ok(Call::Export { requester }) => Addressed::Export { requester },
            Ok(_) => unknown(),
            Err(why) => Addressed::Refuse(Refusal::Unavailable { message: why.into() }),
        },
        Some(_) => Addressed::Refuse(Refusal::Unavailable {
            message: "the token authority was reached with another configuration (a deploy or secret change is in progress); retry"
                .into(),
        }),
        None => Op::from_legacy_name(op_name).map_or_else(unknown, |op| decode(op, false)),
    }
}

/// May loading the state import the previous version's (when this
/// authority has none)? Only on a first start for a worker of this version:
/// not after `recover` set an unreadable state aside (`set_aside`: it starts
/// again from the bootstrap token on purpose; the previous version's copy
/// is older than the chain this authority went on with), and not for a
/// previous-version worker. A `recover` that found nothing stored is a
/// first start like any other: skipping the import there would leave the
/// previous version's live chain behind for a long-spent bootstrap token.
pub fn may_import(call: &Call, current: bool, set_aside: bool) -> bool {
    current && !(*call == Call::Recover && set_aside)
}

/// May a call adopt the configured bootstrap tokens (`XOXODAY_REFRESH_TOKEN`,
/// `XOXODAY_ACCESS_TOKEN`)? Only a worker of this version's. A
/// previous-version worker still calling the previous version's authority
/// mid-deploy must not seed that state with a new refresh token: the hand-over
/// ([`super::storage::legacy_export`]) trusts the state's bootstrap
/// fingerprint to say the chain is the one the new authority was configured
/// for, and would then pass on the old chain's access token (another
/// account's, when the client id changed in the same deploy).
pub fn may_adopt(current: bool) -> bool {
    current
}

/// A retired object (the previous version's authority, after handing its
/// state over) serves nothing: only one authority may refresh a chain.
pub fn retired(state: &AuthorityState) -> Option<Refusal> {
    state.retired_to.as_ref().map(|_| Refusal::Unavailable {
        message: "this token authority has handed its state to a per-account authority; retry".into(),
    })
}

/// What to do next for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Answer now ([`reply`]).
    Answer {
        /// The refusal, if any.
        refusal: Option<Refusal>,
        /// Tell the caller to pass Xoxoday's 401 on unchanged.
        pass_through: bool,
    },
    /// Run the state machine for this trigger ([`super::plan`]).
    Serve(Trigger),
    /// Check the token with this fingerprint first (`check::plan_check`).
    Check(String),
}

impl Next {
    /// Answer with nothing refused.
    pub const ANSWER: Next = Next::Answer { refusal: None, pass_through: false };
}

/// What `call` asks of the authority (once loaded and adopted).
/// `proof_due`: a refresh token or client id/secret the operator set has
/// not refreshed yet; a status call then runs the cron's plan too, which
/// tries it at once, so `GET /v1/token` right after a secret is set (the
/// first call to reach the authority: isolates serve from KV meanwhile)
/// shows a moment later whether Xoxoday took it.
pub fn intent(call: &Call, proof_due: bool) -> Next {
    match call {
        Call::Status if proof_due => Next::Serve(Trigger::Cron),
        // Status, and the end of a recovery; an export addressed to this
        // authority itself has nothing to hand over but its status; a
        // balance report, once recorded ([`observation`]).
        Call::Status | Call::Recover | Call::Export { .. } | Call::Balance { .. } => Next::ANSWER,
        Call::Token => Next::Serve(Trigger::Request),
        Call::Cron => Next::Serve(Trigger::Cron),
        Call::Refresh => Next::Serve(Trigger::Forced),
        Call::Check { fp } => Next::Check(fp.clone()),
    }
}

/// The balance a call reports, to record before answering
/// (`alert::observe_balance`).
pub fn observation(call: &Call) -> Option<BalanceSeen> {
    match call {
        Call::Balance { value, seen_at_ms } => Some(BalanceSeen { value: *value, seen_at_ms: *seen_at_ms }),
        _ => None,
    }
}

/// After a token check's verdict: a token no longer current or confirmed
/// rejected is served as for a plain request (which replaces it); a valid
/// one passes Xoxoday's 401 through; a failed check is refused.
pub fn after_verdict(verdict: CheckVerdict) -> Next {
    match verdict {
        CheckVerdict::Serve => Next::Serve(Trigger::Request),
        CheckVerdict::PassThrough => Next::Answer { refusal: None, pass_through: true },
        CheckVerdict::Refuse(r) => Next::Answer { refusal: Some(r), pass_through: false },
    }
}

/// The answer at `now_ms`: the grant while the token is usable, the status,
/// the refusal's caller-facing error and the pass-through flag.
pub fn reply(state: &AuthorityState, refusal: Option<Refusal>, pass_through: bool, now_ms: i64, policy: &TokenPolicy) -> Reply {
    Reply {
        grant: grant(state, now_ms, policy),
        status: Some(status(state, now_ms, policy)),
        error: refusal.map(|r| r.api_error()),
        pass_through,
        handover: None,
        start_fresh: false,
    }
}

/// A refusal before the state was read (or while it cannot be).
pub fn refused(refusal: Refusal) -> Reply {
    Reply::refused(refusal.api_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::ErrorCode;
    use crate::secret::{AccessToken, RefreshToken};
    use crate::token::{AccessSlot, RefreshSlot};

    const T0: i64 = 1_795_626_582_000;
    const ME: &str = "account:0123456789abcdef";

    fn refused_with(a: Addressed) -> String {
        match a {
            Addressed::Refuse(Refusal::Unavailable { message }) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn address_every_arm() {
        // This version's worker, this authority.
        assert_eq!(address(ME, Some(ME), "/token", b""), Addressed::Serve { call: Call::Token, current: true });
        assert_eq!(
            address(ME, Some(ME), "/check", br#"{"fp":"ab"}"#),
            Addressed::Serve { call: Call::Check { fp: "ab".into() }, current: true }
        );
        assert_eq!(refused_with(address(ME, Some(ME), "/tokens", b"")), "unknown token authority operation");
        assert_eq!(refused_with(address(ME, Some(ME), "/reject", br#"{"fp":"ab"}"#)), "unknown token authority operation");
        assert!(refused_with(address(ME, Some(ME), "/check", b"")).contains("fingerprint"));
        // Another configuration's worker.
        assert!(refused_with(address(ME, Some("account:ffff"), "/token", b"")).contains("another configuration"));
        // A per-account authority asking the previous version's one.
        assert_eq!(
            address(ME, Some(LEGACY_AUTHORITY_NAME), "/export", br#"{"requester":"account:aa"}"#),
            Addressed::Export { requester: "account:aa".into() }
        );
        assert_eq!(refused_with(address(ME, Some(LEGACY_AUTHORITY_NAME), "/export", b"{}")), "export needs a requester");
        assert!(refused_with(address(ME, Some(LEGACY_AUTHORITY_NAME), "/token", b"")).contains("another configuration"));
        // The previous version's worker (no header), its names.
        assert_eq!(
            address(ME, None, "/reject", br#"{"fp":"ab"}"#),
            Addressed::Serve { call: Call::Check { fp: "ab".into() }, current: false }
        );
        assert_eq!(address(ME, None, "/status", b""), Addressed::Serve { call: Call::Status, current: false });
        assert_eq!(refused_with(address(ME, None, "/recover", b"")), "unknown token authority operation");
        assert_eq!(refused_with(address(ME, None, "/export", br#"{"requester":"account:aa"}"#)), "unknown token authority operation");
    }

    #[test]
    fn imports_only_on_a_first_start_for_this_version() {
        assert!(may_import(&Call::Token, true, false));
        assert!(may_import(&Call::Status, true, false));
        assert!(!may_import(&Call::Recover, true, true), "a state set aside: start from the bootstrap token");
        assert!(may_import(&Call::Recover, true, false), "nothing was stored: a first start");
        assert!(!may_import(&Call::Token, false, false));
        assert!(!may_import(&Call::Recover, false, false));
        assert!(may_adopt(true));
        assert!(!may_adopt(false), "a previous-version worker's call never seeds the state it may hand over");
        assert!(retired(&AuthorityState::default()).is_none());
        let r = AuthorityState { retired_to: Some(ME.into()), ..Default::default() };
        assert_eq!(retired(&r).unwrap().api_error().code, ErrorCode::UpstreamError);
    }

    #[test]
    fn intent_every_call() {
        assert_eq!(intent(&Call::Status, false), Next::ANSWER);
        assert_eq!(intent(&Call::Status, true), Next::Serve(Trigger::Cron), "a status call tries what the operator set");
        assert_eq!(intent(&Call::Recover, true), Next::ANSWER);
        assert_eq!(intent(&Call::Recover, false), Next::ANSWER);
        assert_eq!(intent(&Call::Export { requester: ME.into() }, false), Next::ANSWER);
        assert_eq!(intent(&Call::Token, false), Next::Serve(Trigger::Request));
        assert_eq!(intent(&Call::Cron, false), Next::Serve(Trigger::Cron));
        assert_eq!(intent(&Call::Refresh, false), Next::Serve(Trigger::Forced));
        assert_eq!(intent(&Call::Check { fp: "ab".into() }, false), Next::Check("ab".into()));
        let report = Call::Balance { value: 950.5, seen_at_ms: T0 };
        assert_eq!(intent(&report, false), Next::ANSWER);
        assert_eq!(observation(&report), Some(BalanceSeen { value: 950.5, seen_at_ms: T0 }));
        assert_eq!(observation(&Call::Status), None);
        assert_eq!(after_verdict(CheckVerdict::Serve), Next::Serve(Trigger::Request));
        assert_eq!(after_verdict(CheckVerdict::PassThrough), Next::Answer { refusal: None, pass_through: true });
        assert_eq!(
            after_verdict(CheckVerdict::Refuse(Refusal::NoUsableToken)),
            Next::Answer { refusal: Some(Refusal::NoUsableToken), pass_through: false }
        );
    }

    #[test]
    fn reply_carries_grant_status_and_refusal() {
        let p = TokenPolicy::default();
        let s = AuthorityState {
            access: Some(AccessSlot { token: AccessToken::new("at"), expires_at_ms: T0 + 86_400_000, obtained_at_ms: T0, rejected: false }),
            refresh: Some(RefreshSlot { token: RefreshToken::new("rt"), expires_at_ms: T0 + 30 * 86_400_000, expiry_known: true }),
            refresh_count: 2,
            ..Default::default()
        };
        let r = reply(&s, None, false, T0, &p);
        assert_eq!(r.grant.unwrap().access_token.expose_secret(), "at");
        assert_eq!(r.status.as_ref().unwrap().refresh_count, 2);
        assert!(r.error.is_none() && !r.pass_through && r.handover.is_none());
        let r = reply(&s, Some(Refusal::ReauthRequired), true, T0, &p);
        assert!(r.grant.is_some() && r.pass_through);
        assert_eq!(r.error.unwrap().code, ErrorCode::ReauthRequired);
        let r = reply(&AuthorityState::default(), None, false, T0, &p);
        assert!(r.grant.is_none());
        assert_eq!(r.status.unwrap().state, "uninitialized");
        let r = refused(Refusal::Misconfigured { problems: vec!["X is not set".into()] });
        assert!(r.grant.is_none() && r.status.is_none());
        assert_eq!(r.error.unwrap().code, ErrorCode::Misconfigured);
    }
}
