//! What the operator sets, taken into use: the bootstrap tokens
//! (`XOXODAY_REFRESH_TOKEN`, `XOXODAY_ACCESS_TOKEN`) and the client
//! credentials a rejection blamed.
//!
//! The authority compares what is configured with what it last adopted on
//! every call (by fingerprint, never the values), so an operator recovers
//! from `reauth_required` or `credentials_rejected` by setting a secret,
//! with no other step. A refresh token plumgate has rotated away is never
//! taken back, and a live one a new value displaces is kept until that
//! value has proven itself (a refused value costs nothing: [`super::run::fall_back`]).

use super::check::{CheckOutcome, CheckRecord, CheckResult};
use super::{remember_spent, AuthorityState, RefreshSlot, DEFAULT_REFRESH_TTL_MS};
use crate::secret::{AccessToken, ClientId, ClientSecret, RefreshToken};

/// What adopting the configured bootstrap tokens changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Adoption {
    /// A new bootstrap refresh token was taken into use.
    pub adopted_refresh: bool,
    /// The bootstrap refresh token was already spent and was ignored.
    pub ignored_spent: bool,
    /// A new bootstrap access token should be validated and, if valid, used.
    pub validate_access: bool,
}

/// Take the configured bootstrap refresh token into use when the operator
/// has set a new one (first seed, or recovery from `reauth_required`).
/// A value that plumgate already rotated away is never reused. A live
/// refresh token it displaces is kept aside (`displaced_refresh`) until
/// the new value has refreshed once.
pub fn adopt_bootstrap(
    state: &mut AuthorityState,
    bootstrap_refresh: &RefreshToken,
    bootstrap_access: Option<&AccessToken>,
    now_ms: i64,
) -> Adoption {
    let mut out = Adoption::default();
    let fp = bootstrap_refresh.fingerprint();
    if state.adopted_bootstrap_fp.as_deref() != Some(fp.as_str()) {
        state.adopted_bootstrap_fp = Some(fp.clone());
        let current = state.refresh.as_ref().map(|r| r.token.fingerprint());
        if state.spent_refresh_fps.contains(&fp) {
            out.ignored_spent = true;
            // Said where the operator looks (`GET /v1/token`), not only in
            // the log; kept through refreshes, as a refused value's note is.
            state.last_error = Some(format!(
                "{}: plumgate rotated it away already and never sends it again; set a newly generated one",
                super::run::REFUSED_BOOTSTRAP
            ));
        } else if current.as_deref() != Some(fp.as_str()) {
            // A live refresh token is kept until the new value proves
            // itself ([`super::run::fall_back`]): a typo, another account's
            // token or an old value must not cost the chain. One held dead
            // (`reauth_required`) is spent, and so is a value set before
            // and not yet proven while the live one is kept already. The
            // token kept aside set again is held, not kept as well; under
            // `reauth_required` it was refused too, and is dropped. Which
            // of the two is the live one is named by `chain_refresh_fp`:
            // after a fall-back they swapped places (the one held is the
            // chain, kept aside in its turn; the refused value is dropped),
            // and the value kept aside may be one set again. A state from
            // before that name gets it here when nothing is kept aside (the
            // token held is the chain); one with a token kept aside already
            // keeps it, as before, until its next refresh.
            // A value set in place of another (not the first seed) is
            // tried at once: the operator learns now whether it works.
            let no_chain = current.is_none() || state.reauth_reason.is_some();
            state.refresh_proof_due |= current.is_some() || state.reauth_reason.is_some();
            if state.chain_refresh_fp.is_none() && state.displaced_refresh.is_none() {
                state.chain_refresh_fp = current.clone();
            }
            let chain = state.chain_refresh_fp.clone();
            let held_is_chain = chain.is_some() && current == chain;
            let keep_aside = state.displaced_refresh.as_ref().map(|d| d.fingerprint()).is_some_and(|a| {
                a != fp && (chain.as_ref() == Some(&a) || !held_is_chain)
            });
            if state.reauth_reason.is_some() || !keep_aside {
                state.displaced_refresh = None;
            }
            if no_chain {
                state.chain_refresh_fp = Some(fp.clone());
            }
            if let Some(old) = state.refresh.take() {
                if state.reauth_reason.is_none() && state.displaced_refresh.is_none() {
                    state.displaced_refresh = Some(old.token);
                } else {
                    remember_spent(state, old.token.fingerprint());
                }
            }
            state.refresh = Some(RefreshSlot {
                token: bootstrap_refresh.clone(),
                expires_at_ms: now_ms.saturating_add(DEFAULT_REFRESH_TTL_MS),
                expiry_known: false,
            });
            state.reauth_reason = None;
            // The operator acted: whatever Xoxoday blamed before gets a
            // fresh try with the new token (a penalty stays: it is Xoxoday's).
            state.credentials_rejected_fp = None;
            state.consecutive_failures = 0;
            state.next_attempt_at_ms = None;
            // ... and the error it left is history (a penalty's reason stays
            // while the penalty does).
            if state.penalty_until_ms.is_none_or(|t| t <= now_ms) {
                state.last_error = None;
                state.last_error_at_ms = None;
            }
            out.adopted_refresh = true;
        }
    }
    if let Some(at) = bootstrap_access {
        let afp = at.fingerprint();
        let usable = state.access_usable(now_ms);
        // A new one is checked once, when worth it (no usable access token
        // held) and allowed (no check penalty: each check would prolong it;
        // the token waits, unseen, until the penalty is over).
        let penalty = state.check_penalty_until_ms.is_some_and(|t| t > now_ms);
        if state.adopted_access_fp.as_deref() != Some(afp.as_str()) && (usable || !penalty) {
            state.adopted_access_fp = Some(afp);
            out.validate_access = !usable;
        } else if !usable && !penalty && recheck_due(state, &afp, now_ms) {
            // Its check gave no verdict (a 5xx, a timeout): asked again.
            // The new time keeps concurrent passes from asking too.
            state.last_check_at_ms = Some(now_ms);
            out.validate_access = true;
        }
    }
    out
}

/// The start of `last_error` after a check of the configured access token
/// that gave no verdict (cleared by a later verdict that it is valid).
const BOOTSTRAP_CHECK_FAILED: &str = "the check of the configured XOXODAY_ACCESS_TOKEN failed";

/// How long after a check of the configured bootstrap access token that
/// gave no verdict (a 5xx, a timeout) it is checked again, while no usable
/// access token is held: 30 s (an outage of the check costs a check per
/// 30 s, not one per call).
pub const BOOTSTRAP_RECHECK_MS: i64 = 30_000;

/// Is the configured bootstrap access token (fingerprint `fp`, already
/// seen) due another check: its last check gave no verdict at least
/// [`BOOTSTRAP_RECHECK_MS`] ago?
fn recheck_due(state: &AuthorityState, fp: &str, now_ms: i64) -> bool {
    state.adopted_access_fp.as_deref() == Some(fp)
        && state.last_check().is_some_and(|c| c.fp == fp && c.result == CheckResult::Failed && now_ms - c.at_ms >= BOOTSTRAP_RECHECK_MS)
}

/// Fingerprint of the configured client id and secret together (16 hex
/// chars of SHA-256 over both, length-prefixed so no two pairs collide by
/// concatenation). Stored with a credentials rejection, never the values.
pub fn credentials_fingerprint(client_id: &ClientId, client_secret: &ClientSecret) -> String {
    crate::secret::fingerprint_pair(client_id.expose_secret(), client_secret.expose_secret())
}

/// Clear a credentials rejection once the configured client id/secret
/// differ from the ones Xoxoday rejected (the operator fixed them). Returns
/// whether the state changed. The refresh token was never spent by the
/// rejection, so refreshing simply resumes. A refresh token refused while
/// another pair was configured gets one more try too (`reauth_required`
/// clears): Xoxoday's answer to a wrong secret is undocumented and may
/// look like a dead refresh token's; if the token is dead, the next
/// refresh says so again.
pub fn adopt_credentials(state: &mut AuthorityState, client_fp: &str) -> bool {
    match &state.credentials_rejected_fp {
        Some(rejected) if rejected != client_fp => {
            state.credentials_rejected_fp = None;
            state.reauth_reason = None;
            state.refresh_proof_due = true;
            state.consecutive_failures = 0;
            state.next_attempt_at_ms = None;
            // The rejection's reason no longer holds.
            state.last_error = None;
            state.last_error_at_ms = None;
            true
        }
        _ => false,
    }
}

/// What one adoption pass changed, all told (what the shell logs and
/// whether it must store the state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Adopted {
    /// The bootstrap tokens' part.
    pub bootstrap: Adoption,
    /// A credentials rejection was cleared (the client id/secret changed).
    pub credentials_cleared: bool,
}

/// One adoption pass over `state`: the bootstrap tokens, then the client
/// credentials (`client_fp`: [`credentials_fingerprint`] of the configured
/// pair). `None` when nothing changed (nothing to store or log).
pub fn adopt(
    state: &mut AuthorityState,
    bootstrap_refresh: &RefreshToken,
    bootstrap_access: Option<&AccessToken>,
    client_fp: &str,
    now_ms: i64,
) -> Option<Adopted> {
    let before = (state.adopted_bootstrap_fp.clone(), state.adopted_access_fp.clone());
    let bootstrap = adopt_bootstrap(state, bootstrap_refresh, bootstrap_access, now_ms);
    let credentials_cleared = adopt_credentials(state, client_fp);
    let changed = before != (state.adopted_bootstrap_fp.clone(), state.adopted_access_fp.clone()) || credentials_cleared || bootstrap.validate_access;
    changed.then_some(Adopted { bootstrap, credentials_cleared })
}

/// Use a bootstrap access token Xoxoday's token check found valid (until
/// `expires_at_ms`), unless the state holds a usable access token by now (a
/// refresh finished meanwhile). One held but expired or rejected is
/// replaced: that is the recovery path (after `reauth_required` the
/// operator sets a newly generated pair; the dead token plumgate held must
/// not send it to a refresh, or keep callers waiting out a refresh penalty,
/// when Xoxoday just said the new access token is good). Returns whether
/// it was taken.
pub fn adopt_validated_access(state: &mut AuthorityState, token: AccessToken, expires_at_ms: i64, now_ms: i64) -> bool {
    if state.access_usable(now_ms) {
        return false;
    }
    super::apply_validated_access(state, token, expires_at_ms, now_ms);
    true
}

/// What the check of a configured bootstrap access token came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootstrapCheck {
    /// Valid, and taken into use (store the state, write it to KV).
    Taken,
    /// Xoxoday rate-limited the check: the penalty is recorded and the
    /// token is checked again once it is over (store the state).
    Deferred,
    /// No verdict (a 5xx, a timeout): recorded as the last check, and the
    /// token is checked again [`BOOTSTRAP_RECHECK_MS`] later while no usable
    /// access token is held (store the state).
    Unanswered,
    /// A verdict that does not put the token to use (invalid; valid with
    /// no expiry; valid while a usable token is held by now): an invalid
    /// one is recorded as its last check, a valid one clears its failed
    /// record, so it is not asked about again (store the state).
    Settled,
    /// Nothing changed: the operator has set another token meanwhile, or
    /// the check got no verdict while a usable token is held (no recheck
    /// is due then: [`adopt_bootstrap`] rechecks only while none is).
    Left,
}

/// Apply the token check's answer about the configured bootstrap access
/// token `token` (see [`adopt_bootstrap`], which asked for it).
pub fn apply_bootstrap_check(state: &mut AuthorityState, token: AccessToken, outcome: CheckOutcome, now_ms: i64) -> BootstrapCheck {
    let fp = token.fingerprint();
    // A check of the token still configured: its verdict, or its lack of
    // one, is recorded as the token's last check (which alone decides a
    // recheck: [`adopt_bootstrap`]), and a streak of failed 401 checks of
    // another token is not carried over to it.
    let ours = state.adopted_access_fp.as_deref() == Some(fp.as_str());
    let record = |state: &mut AuthorityState, result| {
        state.set_last_check(CheckRecord { fp: fp.clone(), at_ms: now_ms, result });
        state.check_failing_since_ms = None;
    };
    match outcome {
        CheckOutcome::Valid { expires_at_ms } if ours => {
            // Its failed record goes (no recheck follows), but no "valid"
            // verdict is kept: that would pass Xoxoday's 401s for the token
            // through to callers for a minute (`check::plan_check`), and a
            // token adopted after a recovery may well die in that minute.
            state.clear_last_check(&fp);
            state.check_failing_since_ms = None;
            if state.last_error.as_deref().is_some_and(|e| e.starts_with(BOOTSTRAP_CHECK_FAILED)) {
                state.last_error = None;
                state.last_error_at_ms = None;
            }
            match expires_at_ms {
                Some(exp) if adopt_validated_access(state, token, exp, now_ms) => BootstrapCheck::Taken,
                _ => BootstrapCheck::Settled,
            }
        }
        CheckOutcome::RateLimited { penalty_secs, .. } => {
            super::check::note_check_penalty(state, penalty_secs, now_ms);
            // Unless the operator has set yet another token meanwhile.
            if state.adopted_access_fp.as_deref() == Some(fp.as_str()) {
                state.adopted_access_fp = None;
            }
            BootstrapCheck::Deferred
        }
        CheckOutcome::Failed(why) if ours && !state.access_usable(now_ms) => {
            record(state, CheckResult::Failed);
            // (Not `last_error_at_ms`: a check is no refresh attempt, and
            // the forced refresh's throttle reads that.)
            state.last_error = Some(format!("{BOOTSTRAP_CHECK_FAILED} ({why}); it is checked again in 30 s"));
            BootstrapCheck::Unanswered
        }
        CheckOutcome::Invalid if ours => {
            record(state, CheckResult::Invalid);
            BootstrapCheck::Settled
        }
        _ => BootstrapCheck::Left,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_626_582_000;

    #[test]
    fn the_credentials_fingerprint_is_pinned() {
        // Stored with a rejection: another value would clear it by itself.
        assert_eq!(credentials_fingerprint(&ClientId::new("cid"), &ClientSecret::new("wrong")), "a85f8aa05d18e23a");
    }

    #[test]
    fn adopt_reports_only_changes() {
        let boot = RefreshToken::new("rt-boot");
        let fp = credentials_fingerprint(&ClientId::new("cid"), &ClientSecret::new("s"));
        let mut s = AuthorityState::default();
        let first = adopt(&mut s, &boot, None, &fp, T0).expect("first seed changes the state");
        assert!(first.bootstrap.adopted_refresh && !first.credentials_cleared);
        assert_eq!(adopt(&mut s, &boot, None, &fp, T0 + 1), None, "the same secrets again: nothing to store");
        // A bootstrap access token: adopted (to be validated) once.
        let at = AccessToken::new("at-boot");
        let second = adopt(&mut s, &boot, Some(&at), &fp, T0 + 2).unwrap();
        assert!(second.bootstrap.validate_access && !second.bootstrap.adopted_refresh);
        assert_eq!(adopt(&mut s, &boot, Some(&at), &fp, T0 + 3), None);
        // A credentials rejection clears when the configured pair differs.
        s.credentials_rejected_fp = Some(fp.clone());
        assert_eq!(adopt(&mut s, &boot, Some(&at), &fp, T0 + 4), None, "same pair: still rejected");
        let other = credentials_fingerprint(&ClientId::new("cid"), &ClientSecret::new("t"));
        let third = adopt(&mut s, &boot, Some(&at), &other, T0 + 5).unwrap();
        assert!(third.credentials_cleared);
        assert!(s.credentials_rejected_fp.is_none());
    }

    #[test]
    fn a_new_bootstrap_keeps_the_live_refresh_token_it_displaces_aside_unspent() {
        let live = RefreshSlot { token: RefreshToken::new("rt-live"), expires_at_ms: T0 + 1000, expiry_known: true };
        let fp = |t: &str| RefreshToken::new(t).fingerprint();
        let base = AuthorityState { refresh: Some(live.clone()), adopted_bootstrap_fp: Some(fp("rt-boot")), ..AuthorityState::default() };
        let held = |s: &AuthorityState| s.refresh.as_ref().map(|r| r.token.expose_secret().to_string());
        let aside = |s: &AuthorityState| s.displaced_refresh.as_ref().map(|r| r.expose_secret().to_string());
        // A live one (also while the client pair stands rejected: that
        // spends nothing): held aside as it was, not spent.
        for rejected in [None, Some("cfp".to_string())] {
            let mut s = AuthorityState { credentials_rejected_fp: rejected, ..base.clone() };
            assert!(adopt_bootstrap(&mut s, &RefreshToken::new("rt-new"), None, T0).adopted_refresh);
            assert_eq!(held(&s).as_deref(), Some("rt-new"));
            assert_eq!(aside(&s).as_deref(), Some("rt-live"));
            assert!(s.spent_refresh_fps.is_empty() && s.credentials_rejected_fp.is_none());
            // Another value before the first has refreshed: the live one
            // stays aside; the unproven one goes, as spent (as before).
            assert!(adopt_bootstrap(&mut s, &RefreshToken::new("rt-newer"), None, T0 + 1).adopted_refresh);
            assert_eq!(held(&s).as_deref(), Some("rt-newer"));
            assert_eq!(aside(&s).as_deref(), Some("rt-live"));
            assert_eq!(s.spent_refresh_fps, vec![fp("rt-new")]);
            // Neither token shows in Debug.
            let shown = format!("{s:?}");
            assert!(!shown.contains("rt-live") && !shown.contains("rt-newer"), "{shown}");
        }
        // The displaced value set again (the new one taken back): held, and
        // the new one kept aside in its place, never the same token twice.
        let mut s = base.clone();
        adopt_bootstrap(&mut s, &RefreshToken::new("rt-new"), None, T0);
        assert!(adopt_bootstrap(&mut s, &RefreshToken::new("rt-live"), None, T0 + 1).adopted_refresh);
        assert_eq!((held(&s).as_deref(), aside(&s).as_deref()), (Some("rt-live"), Some("rt-new")));
        assert!(s.spent_refresh_fps.is_empty());
        // Both refused (reauth_required): a new value drops the one kept aside.
        s.reauth_reason = Some("dead".into());
        adopt_bootstrap(&mut s, &RefreshToken::new("rt-third"), None, T0 + 2);
        assert_eq!((held(&s).as_deref(), aside(&s)), (Some("rt-third"), None));
        assert_eq!(s.spent_refresh_fps, vec![fp("rt-live")]);
        // A dead one (reauth_required): spent, nothing kept aside.
        let mut s = AuthorityState { reauth_reason: Some("dead".into()), ..base.clone() };
        adopt_bootstrap(&mut s, &RefreshToken::new("rt-new"), None, T0);
        assert_eq!((held(&s).as_deref(), aside(&s), s.reauth_reason.as_deref()), (Some("rt-new"), None, None));
        assert_eq!(s.spent_refresh_fps, vec![fp("rt-live")]);
        // The first seed: nothing to keep.
        let mut s = AuthorityState::default();
        adopt_bootstrap(&mut s, &RefreshToken::new("rt-boot"), None, T0);
        assert_eq!((held(&s).as_deref(), aside(&s)), (Some("rt-boot"), None));
        // The first seed names the chain; so does a value set under
        // reauth_required.
        assert_eq!(s.chain_refresh_fp, Some(fp("rt-boot")));
        // Both slots filled: the one `chain_refresh_fp` names is kept aside,
        // whichever slot it is in and whatever was set before.
        for (chain, kept) in [("rt-held", "rt-held"), ("rt-aside", "rt-aside")] {
            let mut s = AuthorityState {
                refresh: Some(RefreshSlot { token: RefreshToken::new("rt-held"), ..live.clone() }),
                displaced_refresh: Some(RefreshToken::new("rt-aside")),
                adopted_bootstrap_fp: Some(fp("rt-aside")),
                chain_refresh_fp: Some(fp(chain)),
                ..AuthorityState::default()
            };
            adopt_bootstrap(&mut s, &RefreshToken::new("rt-next"), None, T0);
            assert_eq!((held(&s).as_deref(), aside(&s).as_deref()), (Some("rt-next"), Some(kept)), "{chain}");
        }
        // A spent value, or the one held: nothing moves.
        for same in ["rt-live", "rt-spent"] {
            let mut s = AuthorityState { spent_refresh_fps: vec![fp("rt-spent")], ..base.clone() };
            assert!(!adopt_bootstrap(&mut s, &RefreshToken::new(same), None, T0).adopted_refresh, "{same}");
            assert_eq!((held(&s).as_deref(), aside(&s)), (Some("rt-live"), None), "{same}");
        }
    }

    #[test]
    fn a_validated_access_token_never_replaces_a_usable_one_but_replaces_a_dead_one() {
        let mut s = AuthorityState::default();
        assert!(adopt_validated_access(&mut s, AccessToken::new("at-1"), T0 + 1000, T0));
        assert_eq!(s.access.as_ref().unwrap().token.expose_secret(), "at-1");
        assert!(!adopt_validated_access(&mut s, AccessToken::new("at-2"), T0 + 2000, T0));
        assert_eq!(s.access.as_ref().unwrap().token.expose_secret(), "at-1");
        // at-1 expired: the validated token is taken.
        assert!(adopt_validated_access(&mut s, AccessToken::new("at-3"), T0 + 9000, T0 + 1000));
        assert_eq!(s.access.as_ref().unwrap().token.expose_secret(), "at-3");
        // at-3 rejected by Xoxoday: so is at-4.
        s.access.as_mut().unwrap().rejected = true;
        assert!(adopt_validated_access(&mut s, AccessToken::new("at-4"), T0 + 9000, T0 + 2000));
        let held = s.access.as_ref().unwrap();
        assert_eq!((held.token.expose_secret(), held.rejected, held.expires_at_ms), ("at-4", false, T0 + 9000));
        assert!(s.access_usable(T0 + 2000));
    }

    #[test]
    fn a_bootstrap_access_token_is_checked_only_outside_a_check_penalty_and_again_after_one() {
        let boot = RefreshToken::new("rt-boot");
        let at = AccessToken::new("at-boot");
        let mut s = AuthorityState { check_penalty_until_ms: Some(T0 + 60_000), ..AuthorityState::default() };
        // Inside the penalty: not checked, not marked as seen.
        let first = adopt_bootstrap(&mut s, &boot, Some(&at), T0);
        assert!(!first.validate_access);
        assert_eq!(s.adopted_access_fp, None);
        // Once it is over: checked.
        assert!(adopt_bootstrap(&mut s, &boot, Some(&at), T0 + 60_000).validate_access);
        assert_eq!(s.adopted_access_fp, Some(at.fingerprint()));
        // The check is rate-limited: a new penalty, the token waits for its end.
        let limited = CheckOutcome::RateLimited { status: 429, penalty_secs: 30 };
        assert_eq!(apply_bootstrap_check(&mut s, at.clone(), limited, T0 + 61_000), BootstrapCheck::Deferred);
        assert_eq!(s.check_penalty_until_ms, Some(T0 + 91_000));
        assert!(!adopt_bootstrap(&mut s, &boot, Some(&at), T0 + 90_000).validate_access);
        assert!(adopt_bootstrap(&mut s, &boot, Some(&at), T0 + 91_000).validate_access);
        // Valid: taken; seen, so not checked again.
        let valid = CheckOutcome::Valid { expires_at_ms: Some(T0 + 86_400_000) };
        assert_eq!(apply_bootstrap_check(&mut s, at.clone(), valid, T0 + 92_000), BootstrapCheck::Taken);
        assert_eq!(s.access.as_ref().unwrap().token.expose_secret(), "at-boot");
        assert!(!adopt_bootstrap(&mut s, &boot, Some(&at), T0 + 93_000).validate_access);
        // A usable token held: a new one is marked seen, even in a penalty, never checked.
        s.check_penalty_until_ms = Some(T0 + 200_000);
        let other = AccessToken::new("at-other");
        assert!(!adopt_bootstrap(&mut s, &boot, Some(&other), T0 + 94_000).validate_access);
        assert_eq!(s.adopted_access_fp, Some(other.fingerprint()));
        // A rate-limited check of a token replaced meanwhile leaves the newer one marked.
        let late = CheckOutcome::RateLimited { status: 429, penalty_secs: 30 };
        assert_eq!(apply_bootstrap_check(&mut s, at.clone(), late, T0 + 95_000), BootstrapCheck::Deferred);
        assert_eq!(s.adopted_access_fp, Some(other.fingerprint()));
    }

    #[test]
    fn a_bootstrap_check_without_a_verdict_is_made_again_30_s_later_while_no_usable_token_is_held() {
        let boot = RefreshToken::new("rt-boot");
        let at = AccessToken::new("at-boot");
        let fp = credentials_fingerprint(&ClientId::new("cid"), &ClientSecret::new("s"));
        let mut s = AuthorityState { reauth_reason: Some("dead".into()), check_failing_since_ms: Some(T0 - 86_400_000), ..AuthorityState::default() };
        adopt(&mut s, &boot, None, &fp, T0);
        let first = adopt(&mut s, &boot, Some(&at), &fp, T0).unwrap();
        assert!(first.bootstrap.validate_access);
        let failed = CheckOutcome::Failed("token check answered HTTP 503".into());
        assert_eq!(apply_bootstrap_check(&mut s, at.clone(), failed.clone(), T0 + 500), BootstrapCheck::Unanswered);
        assert_eq!(s.last_check(), Some(CheckRecord { fp: at.fingerprint(), at_ms: T0 + 500, result: CheckResult::Failed }));
        assert!(s.last_error.as_deref().unwrap().contains("XOXODAY_ACCESS_TOKEN failed (token check answered HTTP 503)"));
        assert_eq!(s.check_failing_since_ms, None, "an older token's streak is not this one's");
        // Not before 30 s: nothing to do, nothing to store.
        assert_eq!(adopt(&mut s, &boot, Some(&at), &fp, T0 + 500 + BOOTSTRAP_RECHECK_MS - 1), None);
        // A usable token obtained meanwhile (a refresh): no check is worth it.
        let mut refreshed = s.clone();
        let held = crate::token::AccessSlot { token: AccessToken::new("at-refreshed"), expires_at_ms: T0 + 86_400_000, obtained_at_ms: T0 + 1_000, rejected: false };
        refreshed.access = Some(held);
        assert_eq!(adopt(&mut refreshed, &boot, Some(&at), &fp, T0 + 500 + BOOTSTRAP_RECHECK_MS), None);
        // Then once: the first pass asks, a concurrent one does not.
        let again = adopt(&mut s, &boot, Some(&at), &fp, T0 + 500 + BOOTSTRAP_RECHECK_MS).expect("stored: the ask's time");
        assert!(again.bootstrap.validate_access);
        assert_eq!(adopt(&mut s, &boot, Some(&at), &fp, T0 + 600 + BOOTSTRAP_RECHECK_MS), None);
        // Not inside a check penalty (each check would prolong it).
        assert_eq!(apply_bootstrap_check(&mut s, at.clone(), failed.clone(), T0 + 40_000), BootstrapCheck::Unanswered);
        s.check_penalty_until_ms = Some(T0 + 200_000);
        assert_eq!(adopt(&mut s, &boot, Some(&at), &fp, T0 + 100_000), None);
        s.check_penalty_until_ms = None;
        // Valid at last: taken, and never checked again.
        assert!(adopt(&mut s, &boot, Some(&at), &fp, T0 + 100_000).unwrap().bootstrap.validate_access);
        let valid = CheckOutcome::Valid { expires_at_ms: Some(T0 + 86_400_000) };
        assert_eq!(apply_bootstrap_check(&mut s, at.clone(), valid, T0 + 100_500), BootstrapCheck::Taken);
        assert_eq!(s.last_check(), None, "no 'valid' verdict kept: a 401 in the next minute is still checked");
        assert_eq!(super::super::check::plan_check(&s, &at.fingerprint(), T0 + 100_600), super::super::check::CheckPlan::Check);
        assert_eq!(s.last_error, None, "the failed check's words go with it");
        assert_eq!(adopt(&mut s, &boot, Some(&at), &fp, T0 + 200_000), None);
        // Its first 401 check that fails is no ten-minute streak: the token stays.
        let verdict = super::super::check::apply_check(&mut s, &at.fingerprint(), failed.clone(), T0 + 200_000);
        assert!(matches!(verdict, super::super::check::CheckVerdict::Refuse(_)), "{verdict:?}");
        assert!(!s.access.as_ref().unwrap().rejected);
        // A usable token held (a refresh served): a failed check records
        // nothing and the token is not asked about again.
        let mut u = AuthorityState { adopted_access_fp: Some(at.fingerprint()), ..AuthorityState::default() };
        assert!(adopt_validated_access(&mut u, AccessToken::new("at-refreshed"), T0 + 1_000_000, T0));
        assert_eq!(apply_bootstrap_check(&mut u, at.clone(), failed.clone(), T0), BootstrapCheck::Left);
        assert_eq!(u.last_check(), None);
        // The operator set another token meanwhile: the old one's failure is not recorded.
        let mut o = AuthorityState { adopted_access_fp: Some(AccessToken::new("at-newer").fingerprint()), ..AuthorityState::default() };
        assert_eq!(apply_bootstrap_check(&mut o, at, failed, T0), BootstrapCheck::Left);
        assert_eq!(o.last_check(), None);
    }

    #[test]
    fn a_bootstrap_check_without_a_usable_verdict_is_recorded_and_not_made_again() {
        let boot = RefreshToken::new("rt-boot");
        let at = AccessToken::new("at-boot");
        let fp = credentials_fingerprint(&ClientId::new("cid"), &ClientSecret::new("s"));
        for (outcome, result) in [(CheckOutcome::Invalid, Some(CheckResult::Invalid)), (CheckOutcome::Valid { expires_at_ms: None }, None)] {
            let mut s = AuthorityState { reauth_reason: Some("dead".into()), ..AuthorityState::default() };
            adopt(&mut s, &boot, Some(&at), &fp, T0).unwrap();
            // First no verdict, then this one at the recheck.
            let failed = CheckOutcome::Failed("token check answered HTTP 503".into());
            assert_eq!(apply_bootstrap_check(&mut s, at.clone(), failed, T0), BootstrapCheck::Unanswered);
            assert!(adopt(&mut s, &boot, Some(&at), &fp, T0 + BOOTSTRAP_RECHECK_MS).unwrap().bootstrap.validate_access);
            assert_eq!(apply_bootstrap_check(&mut s, at.clone(), outcome.clone(), T0 + BOOTSTRAP_RECHECK_MS + 1), BootstrapCheck::Settled, "{outcome:?}");
            assert_eq!(s.last_check(), result.map(|result| CheckRecord { fp: at.fingerprint(), at_ms: T0 + BOOTSTRAP_RECHECK_MS + 1, result }), "{outcome:?}");
            assert!(s.access.is_none(), "{outcome:?}: not put to use");
            // Never asked about again, however long it waits.
            for later in [2, 10, 1_000] {
                assert_eq!(adopt(&mut s, &boot, Some(&at), &fp, T0 + later * BOOTSTRAP_RECHECK_MS), None, "{outcome:?}");
            }
        }
        // Valid, but a refresh left a usable token meanwhile: that one stays.
        let mut s = AuthorityState { adopted_access_fp: Some(at.fingerprint()), ..AuthorityState::default() };
        assert!(adopt_validated_access(&mut s, AccessToken::new("at-refreshed"), T0 + 1_000_000, T0));
        let valid = CheckOutcome::Valid { expires_at_ms: Some(T0 + 2_000_000) };
        assert_eq!(apply_bootstrap_check(&mut s, at.clone(), valid.clone(), T0), BootstrapCheck::Settled);
        assert_eq!(s.access.as_ref().unwrap().token.expose_secret(), "at-refreshed");
        // A check of a token the operator has replaced since changes nothing.
        let mut o = AuthorityState { adopted_access_fp: Some(AccessToken::new("at-newer").fingerprint()), ..AuthorityState::default() };
        let before = serde_json::to_string(&o).unwrap();
        for outcome in [CheckOutcome::Invalid, valid, CheckOutcome::Failed("x".into())] {
            assert_eq!(apply_bootstrap_check(&mut o, at.clone(), outcome.clone(), T0), BootstrapCheck::Left, "{outcome:?}");
            assert_eq!(serde_json::to_string(&o).unwrap(), before, "{outcome:?}");
        }
    }

    /// A new refresh token starts a new failure streak: the failures of
    /// the one before do not lengthen its first backoff (nor keep the
    /// cron refreshing a fresh token, nor count toward the failure alert).
    #[test]
    fn a_new_bootstrap_starts_a_new_failure_streak() {
        let p = crate::token::TokenPolicy::default();
        let live = RefreshSlot { token: RefreshToken::new("rt-live"), expires_at_ms: T0 + 1000, expiry_known: true };
        let mut s = AuthorityState { refresh: Some(live), consecutive_failures: 5, next_attempt_at_ms: Some(T0 + 900_000), ..AuthorityState::default() };
        assert!(adopt_bootstrap(&mut s, &RefreshToken::new("rt-new"), None, T0).adopted_refresh);
        assert_eq!((s.consecutive_failures, s.next_attempt_at_ms), (0, None));
        crate::token::apply_failure(&mut s, false, "refresh failed: HTTP 503".into(), T0 + 1, 1.0, &p);
        assert_eq!(s.next_attempt_at_ms, Some(T0 + 1 + 30_000), "the first backoff");
    }

    /// A valid verdict on the configured access token clears only the
    /// error its own failed check left: a refresh's error, or the note
    /// that a new XOXODAY_REFRESH_TOKEN was refused, stays.
    #[test]
    fn a_valid_bootstrap_check_clears_only_its_own_error() {
        let at = AccessToken::new("at-boot");
        let note = format!("{} (refresh token rejected: HTTP 400 invalid_grant); the refresh token held before is kept", crate::token::run::REFUSED_BOOTSTRAP);
        let mut s = AuthorityState { adopted_access_fp: Some(at.fingerprint()), last_error: Some(note.clone()), last_error_at_ms: Some(T0), ..AuthorityState::default() };
        let valid = CheckOutcome::Valid { expires_at_ms: Some(T0 + 1_000_000) };
        assert_eq!(apply_bootstrap_check(&mut s, at.clone(), valid, T0 + 1), BootstrapCheck::Taken);
        assert_eq!((s.last_error.as_deref(), s.last_error_at_ms), (Some(note.as_str()), Some(T0)));
    }

    /// A bootstrap refresh token's expiry is an estimate: Xoxoday handing
    /// the same token back without one estimates it anew, rather than
    /// keeping the adoption's as if Xoxoday had stated it.
    #[test]
    fn a_bootstrap_refresh_tokens_expiry_is_an_estimate() {
        let mut s = AuthorityState::default();
        adopt_bootstrap(&mut s, &RefreshToken::new("rt-boot"), None, T0);
        let r = s.refresh.clone().unwrap();
        assert_eq!((r.expires_at_ms, r.expiry_known), (T0 + DEFAULT_REFRESH_TTL_MS, false));
        let later = T0 + 86_400_000;
        crate::token::adopt_refresh(&mut s, RefreshToken::new("rt-boot"), None, later);
        assert_eq!(s.refresh.as_ref().unwrap().expires_at_ms, later + DEFAULT_REFRESH_TTL_MS);
    }

    /// Client secrets fixed after a rejection: refreshing resumes at once,
    /// as a new streak (a forced refresh's transient failure under the
    /// rejected pair left a backoff and a count behind).
    #[test]
    fn fixed_client_secrets_end_the_backoff_and_the_streak() {
        let mut s = AuthorityState { credentials_rejected_fp: Some("cfp-old".into()), consecutive_failures: 3, next_attempt_at_ms: Some(T0 + 900_000), ..AuthorityState::default() };
        assert!(adopt_credentials(&mut s, "cfp-new"));
        assert_eq!((s.consecutive_failures, s.next_attempt_at_ms), (0, None));
    }
}
