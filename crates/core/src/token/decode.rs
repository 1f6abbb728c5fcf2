//! Reading the token authority's stored state ([`AuthorityState`]) from its
//! JSON text, field by field, with the readers of [`crate::stored`].
//!
//! Why not serde's derive: for this struct of nearly forty fields (and its slots) the
//! derive compiled to one 15.9 KB function of the worker's wasm, ~5 KB of
//! it gzipped (BENCHMARKS.md, "What the wasm holds"). The state is written
//! with the derived `Serialize`, which is small; only reading is by hand.
//!
//! The rules are the derive's with `#[serde(default)]`, and a host test
//! holds this reader to the derive (kept for tests only) on every field
//! with every kind of wrong value:
//! - a missing field takes its default; a field this version does not know
//!   is ignored (forward and backward compatible, `token.rs`);
//! - `null` is `None` for an `Option` field and a type error for any other;
//! - a value of the wrong type, an integer out of its type's range, or a
//!   float where an integer belongs is an error that names the field;
//! - a slot (`access`, `refresh`) without its `token` string is an error.
//!
//! Two shapes plumgate never writes are read differently: a repeated key
//! (the derive refuses it; here the last one wins), and an array where the
//! state or a slot belongs (the derive reads it by position; here it is
//! refused, so the stored text is left untouched like any unreadable one).
//!
//! Adding a field to [`AuthorityState`]: read it in [`state`] too. The test
//! `the_reader_agrees_with_serdes_derive` fails until it is (a wrong-typed
//! value of the new field would be refused by the derive and ignored here).

use super::{AccessSlot, AuthorityState, RefreshSlot};
use crate::secret::{AccessToken, RefreshToken};
use crate::stored::{count, flag, get, int, ints, need, number, opt_int, opt_text, slot, small_count, text, texts};
use serde_json::Value;

/// Why a state text cannot be read: the field, or the whole text.
pub(super) enum Bad {
    /// Not a JSON object.
    NotAnObject,
    /// This field's value has a type this version cannot read.
    Field(&'static str),
}

impl From<&'static str> for Bad {
    fn from(field: &'static str) -> Bad {
        Bad::Field(field)
    }
}

fn access(v: &Value) -> Option<Option<AccessSlot>> {
    slot(v, |o| {
        Some(AccessSlot {
            token: AccessToken::new(need(o, "token", text)?),
            expires_at_ms: get(o, "expires_at_ms", int).ok()?,
            obtained_at_ms: get(o, "obtained_at_ms", int).ok()?,
            rejected: get(o, "rejected", flag).ok()?,
        })
    })
}

fn refresh(v: &Value) -> Option<Option<RefreshSlot>> {
    slot(v, |o| {
        Some(RefreshSlot {
            token: RefreshToken::new(need(o, "token", text)?),
            expires_at_ms: get(o, "expires_at_ms", int).ok()?,
            expiry_known: get(o, "expiry_known", flag).ok()?,
        })
    })
}

/// The state in `v` (the stored text, read as JSON).
#[allow(clippy::field_reassign_with_default)] // on purpose: see the comment inside
pub(super) fn state(v: &Value) -> Result<AuthorityState, Bad> {
    let o = v.as_object().ok_or(Bad::NotAnObject)?;
    // Filled in place, not as one struct literal: a literal makes every `?`
    // drop the fields read before it one by one (277 drop calls, ~11 KB of
    // wasm); here each refusal drops one half-filled state.
    let mut s = AuthorityState::default();
    s.access = get(o, "access", access)?;
    s.refresh = get(o, "refresh", refresh)?;
    s.displaced_refresh = get(o, "displaced_refresh", opt_text)?.map(RefreshToken::new);
    s.reauth_reason = get(o, "reauth_reason", opt_text)?;
    s.adopted_bootstrap_fp = get(o, "adopted_bootstrap_fp", opt_text)?;
    s.chain_refresh_fp = get(o, "chain_refresh_fp", opt_text)?;
    s.adopted_access_fp = get(o, "adopted_access_fp", opt_text)?;
    s.spent_refresh_fps = get(o, "spent_refresh_fps", texts)?;
    s.refresh_count = get(o, "refresh_count", count)?;
    s.last_refresh_at_ms = get(o, "last_refresh_at_ms", opt_int)?;
    s.last_error = get(o, "last_error", opt_text)?;
    s.last_error_at_ms = get(o, "last_error_at_ms", opt_int)?;
    s.consecutive_failures = get(o, "consecutive_failures", small_count)?;
    s.next_attempt_at_ms = get(o, "next_attempt_at_ms", opt_int)?;
    s.jitter = get(o, "jitter", number)?;
    s.penalty_until_ms = get(o, "penalty_until_ms", opt_int)?;
    s.refresh_sent_at_ms = get(o, "refresh_sent_at_ms", opt_int)?;
    s.credentials_rejected_fp = get(o, "credentials_rejected_fp", opt_text)?;
    s.last_check_fp = get(o, "last_check_fp", opt_text)?;
    s.last_check_at_ms = get(o, "last_check_at_ms", opt_int)?;
    s.last_check_result = get(o, "last_check_result", opt_text)?;
    s.check_failing_since_ms = get(o, "check_failing_since_ms", opt_int)?;
    s.check_penalty_until_ms = get(o, "check_penalty_until_ms", opt_int)?;
    s.confirmed_rejections_ms = get(o, "confirmed_rejections_ms", ints)?;
    s.retired_to = get(o, "retired_to", opt_text)?;
    s.retired_at_ms = get(o, "retired_at_ms", opt_int)?;
    s.alert_condition = get(o, "alert_condition", opt_text)?;
    s.alert_balance_low = get(o, "alert_balance_low", flag)?;
    s.refresh_proof_due = get(o, "refresh_proof_due", flag)?;
    s.alert_balance_seen_at_ms = get(o, "alert_balance_seen_at_ms", opt_int)?;
    s.alert_outbox = get(o, "alert_outbox", texts)?;
    s.alert_attempts = get(o, "alert_attempts", small_count)?;
    s.alert_next_at_ms = get(o, "alert_next_at_ms", opt_int)?;
    s.alert_head_since_ms = get(o, "alert_head_since_ms", opt_int)?;
    s.alert_error = get(o, "alert_error", opt_text)?;
    s.alert_last_event = get(o, "alert_last_event", opt_text)?;
    s.alert_last_state = get(o, "alert_last_state", opt_text)?;
    s.alert_last_at_ms = get(o, "alert_last_at_ms", opt_int)?;
    s.alert_last_delivered = get(o, "alert_last_delivered", flag)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A state with every field away from its default.
    fn full() -> Value {
        json!({
            "access": {"token": "at-1", "expires_at_ms": 1_796_922_582_000_i64, "obtained_at_ms": 1_795_626_582_000_i64, "rejected": true},
            "refresh": {"token": "rt-1", "expires_at_ms": 1_798_218_582_000_i64, "expiry_known": true},
            "displaced_refresh": "rt-0",
            "reauth_reason": "r", "adopted_bootstrap_fp": "b", "chain_refresh_fp": "c", "adopted_access_fp": "a",
            "spent_refresh_fps": ["s1", "s2"], "refresh_count": 7, "last_refresh_at_ms": 5,
            "last_error": "e", "last_error_at_ms": 6, "consecutive_failures": 2, "next_attempt_at_ms": 8,
            "jitter": 0.25, "penalty_until_ms": 9, "refresh_sent_at_ms": 16, "credentials_rejected_fp": "c", "last_check_fp": "f",
            "last_check_at_ms": 10, "last_check_result": "ok", "check_failing_since_ms": 17, "check_penalty_until_ms": 18, "confirmed_rejections_ms": [1, 2],
            "retired_to": "x", "retired_at_ms": 11, "alert_condition": "token_reauth_required",
            "alert_balance_low": true, "refresh_proof_due": true, "alert_balance_seen_at_ms": 12, "alert_outbox": ["{}"],
            "alert_attempts": 3, "alert_next_at_ms": 13, "alert_head_since_ms": 14, "alert_error": "w",
            "alert_last_event": "v", "alert_last_state": "u", "alert_last_at_ms": 15, "alert_last_delivered": true,
        })
    }

    /// This module's reading (`None`: refused).
    fn by_hand(bytes: &[u8]) -> Option<AuthorityState> {
        state(&serde_json::from_slice(bytes).ok()?).ok()
    }

    #[test]
    fn the_reader_agrees_with_serdes_derive() {
        use crate::stored::agree;
        let full = full();
        // Every field the derive writes (a new field included), and every
        // field of both slots, missing and set to each odd value.
        let written = serde_json::to_value(AuthorityState::default()).unwrap();
        assert_eq!(written.as_object().unwrap().len(), full.as_object().unwrap().len(), "full() sets every field");
        let (read, refused) = agree::check::<AuthorityState>(&agree::texts(&full, &["/access", "/refresh"]), by_hand);
        // Both outcomes were exercised, many times each.
        assert!(read > 100 && refused > 300, "{read} read, {refused} refused");
        assert_eq!(by_hand(full.to_string().as_bytes()).map(|s| serde_json::to_value(s).unwrap()), Some(full.clone()), "every field read back");
        // An array for a slot: the derive reads it by position, this reader
        // refuses it (module doc).
        for slot in ["access", "refresh"] {
            let mut t = full.clone();
            t[slot] = json!(["at-1", 1]);
            assert!(by_hand(t.to_string().as_bytes()).is_none(), "{t}");
        }
    }

    #[test]
    fn a_refusal_names_the_field_or_the_text() {
        let bad = |text: &str| match state(&crate::jsontext::from_text::<Value>(text).unwrap()) {
            Err(Bad::Field(k)) => k.to_string(),
            Err(Bad::NotAnObject) => "not an object".into(),
            Ok(_) => "read".into(),
        };
        assert_eq!(bad(r#"{"refresh_count": "7"}"#), "refresh_count");
        assert_eq!(bad(r#"{"refresh": {"expires_at_ms": 1}}"#), "refresh");
        assert_eq!(bad(r#"[1, 2]"#), "not an object");
        assert_eq!(bad(r#"{"refresh": null, "extra": 1}"#), "read");
    }
}
