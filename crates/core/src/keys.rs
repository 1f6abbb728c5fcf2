//! Caller keys made at runtime (`POST /v1/keys`), decided without I/O.
//!
//! Owns what a runtime key is ([`KeyRecord`]: hashed like `GATEWAY_KEYS`,
//! the key itself shown once and never stored), the admin requests about
//! keys (validation with clear `400`s), what each change does to a record
//! (create, revoke, rotate, limits), the *directory* every isolate keeps of
//! the keys that may call now, and the answers of `/v1/keys` as JSON text.
//! The `KeyRegistry` Durable Object (`src/objects/registry.rs`) stores the
//! records; `registry` runs these decisions for it.
//!
//! **The directory.** Each isolate keeps a copy of every credential that
//! may call ([`directory`]: not revoked, not expired, and a rotated-away
//! key until its grace period ends), so a key seen recently costs no round
//! trip: it is looked up in memory, in constant time over all entries
//! ([`identify`]). The copy is refreshed in the background once it is
//! [`SYNC_INTERVAL_MS`] old and never used once it is [`MAX_AGE_MS`] old
//! (the request then waits for a fresh one), so a revoked key is refused
//! everywhere within 8 s. The copy is complete, which makes it the negative
//! cache too: a key that is not in a copy younger than [`MISS_RECHECK_MS`]
//! is unknown without asking; an older copy is refreshed first (at most
//! once a second per isolate, however many unknown keys arrive, failed
//! tries included: [`Syncs::recheck`]). Its size is bounded by
//! [`MAX_ACTIVE_KEYS`].
//!
//! **Rotation** gives the key a new secret at once; the previous one keeps
//! working for a grace period ([`DEFAULT_GRACE_SECS`], 24 h, or the
//! `grace_secs` asked for, up to 7 days) so its callers can be moved over,
//! then stops. Only the latest previous secret is kept: rotating again ends
//! the earlier grace at once. A rotation that names the key it replaces
//! (`current_key`) can be sent again after a lost answer: when that key is
//! already the previous one, still in its grace, the rotation happened and
//! its new key, likely unseen, is replaced; that key too works until the
//! grace ends, in case its answer did arrive ([`rotate_from`]: a third
//! credential, so two places rotating at once stop no caller early).
//!
//! `GATEWAY_KEYS` stays as it was (`auth`): those keys are static, revoked
//! only by a redeploy, and listed beside the runtime ones. Ids are unique
//! across both.

use crate::auth::{find_hash, hash_key, valid_id, Caller, KeySource, SCOPES};
use crate::errors::ApiError;
use crate::jsontext::{quote, quote_or_null, Object};
use crate::quota::{Limits, Usage, UsageDelta};
use crate::secret::{hex, CallerKey};
use crate::time::{add_secs, day_of, parse_rfc3339, rfc3339};
use crate::stored::{get, int, need, opt_int, opt_text, text, texts, Fields};
#[cfg(test)]
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

/// Every runtime key starts with this.
pub const KEY_PREFIX: &str = "pgk_";

/// Random bytes in a key (48 hex characters after the prefix).
pub const KEY_RANDOM_BYTES: usize = 24;

/// How long a rotated-away key keeps working, unless the rotation asks
/// for another period.
pub const DEFAULT_GRACE_SECS: u64 = 86_400;

/// The longest grace period a rotation may ask for (7 days).
pub const MAX_GRACE_SECS: u64 = 7 * 86_400;

/// At most this many runtime keys may be active (not revoked, not
/// expired) at once: every isolate holds all of them.
pub const MAX_ACTIVE_KEYS: usize = 1_000;

/// A directory (and the usage counted since the last sync) older than this
/// is refreshed in the background after the request that notices it.
pub const SYNC_INTERVAL_MS: i64 = 4_000;

/// A directory older than this is never used: the request waits for a
/// fresh one. The bound on how long a revoked key keeps working.
pub const MAX_AGE_MS: i64 = 8_000;

/// A key missing from a directory at least this old makes the isolate ask
/// again before answering `401` (a key made a moment ago elsewhere).
pub const MISS_RECHECK_MS: i64 = 1_000;

/// A new key from `random` bytes: `pgk_` and 48 hex characters.
pub fn new_key(random: &[u8; KEY_RANDOM_BYTES]) -> CallerKey {
    CallerKey::new(format!("{KEY_PREFIX}{}", hex(random)))
}

/// A runtime key as the registry stores it (JSON text; `docs/storage.md`).
/// Fields added later must have defaults, so records of every version read.
/// Read by hand ([`KeyRecord::read`], with `crate::stored`); the derive
/// is for the tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
pub struct KeyRecord {
    /// Unique across runtime keys and `GATEWAY_KEYS`, never reused.
    pub id: String,
    /// Lowercase hex SHA-256 of the current key.
    pub sha256: String,
    /// Scope names.
    pub scopes: Vec<String>,
    /// When it was made (epoch ms).
    pub created_at_ms: i64,
    /// It stops working at this instant, if set.
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    /// Revoked at this instant, if it was.
    #[serde(default)]
    pub revoked_at_ms: Option<i64>,
    /// Its limits.
    #[serde(default)]
    pub limits: Limits,
    /// Last rotated at this instant.
    #[serde(default)]
    pub rotated_at_ms: Option<i64>,
    /// SHA-256 of the key before the last rotation...
    #[serde(default)]
    pub previous_sha256: Option<String>,
    /// ...which works until this instant.
    #[serde(default)]
    pub previous_until_ms: Option<i64>,
    /// SHA-256 of the key a rotation sent again replaced (the first
    /// attempt's answer may have arrived after all), which works until
    /// `previous_until_ms` too. Left out of the stored text when `None`, so
    /// a record written before it had this field reads and writes the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_sha256: Option<String>,
}

impl KeyRecord {
    /// A record from its stored text; `None` when it cannot be read.
    pub fn read(text: &str) -> Option<KeyRecord> {
        crate::stored::parse(text.as_bytes(), KeyRecord::from_fields)
    }

    fn from_fields(o: &Fields) -> Option<KeyRecord> {
        Some(KeyRecord {
            id: need(o, "id", text)?,
            sha256: need(o, "sha256", text)?,
            scopes: need(o, "scopes", texts)?,
            created_at_ms: need(o, "created_at_ms", int)?,
            expires_at_ms: get(o, "expires_at_ms", opt_int).ok()?,
            revoked_at_ms: get(o, "revoked_at_ms", opt_int).ok()?,
            limits: get(o, "limits", |v| crate::stored::object(v, Limits::from_fields)).ok()?,
            rotated_at_ms: get(o, "rotated_at_ms", opt_int).ok()?,
            previous_sha256: get(o, "previous_sha256", opt_text).ok()?,
            previous_until_ms: get(o, "previous_until_ms", opt_int).ok()?,
            replaced_sha256: get(o, "replaced_sha256", opt_text).ok()?,
        })
    }
}

/// What `POST /v1/keys` asks for (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The id.
    pub id: String,
    /// Scope names (known, no repeats).
    pub scopes: Vec<String>,
    /// Expiry, if any (in the future when asked).
    pub expires_at_ms: Option<i64>,
    /// Limits.
    pub limits: Limits,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::invalid_request(message)
}

/// An admin request's body (`POST /v1/keys`, `PATCH /v1/keys/{id}`, a
/// rotation's) read as JSON: `400 invalid_json` when it is not JSON, `400
/// invalid_request` when an object in it names a member twice. serde_json
/// keeps the last unseen, so a second `scopes` or `limits` could widen a
/// key or drop its cap while the request, as a proxy, a log or a person
/// reads it, says otherwise (`GATEWAY_KEYS` is refused so too). Either
/// way nothing is changed.
///
/// # Errors
/// As above.
pub fn admin_body(bytes: &[u8]) -> Result<Value, ApiError> {
    let v: Value = crate::jsontext::request_json(bytes).map_err(|_| ApiError::invalid_json())?;
    if crate::jsontext::repeats_a_member(bytes, &v) {
        return Err(bad("the body names a member twice in one object (JSON readers disagree on which counts): send each member once; nothing was changed"));
    }
    Ok(v)
}

/// The object body of an admin request, refusing members other than
/// `known` (a misspelt limit must not be ignored silently).
fn object<'a>(body: &'a Value, known: &[&str], what: &str) -> Result<&'a serde_json::Map<String, Value>, ApiError> {
    let obj = body.as_object().ok_or_else(|| bad(format!("the body must be a JSON object: {what}")))?;
    // The member is not named: it is the caller's own text.
    if obj.keys().any(|k| !known.contains(&k.as_str())) {
        // `known.join(", ")`, without a `join` over `&str` (see `SCOPE_LIST`).
        let mut list = String::new();
        for k in known {
            if !list.is_empty() {
                list.push_str(", ");
            }
            list.push_str(k);
        }
        return Err(bad(format!("the body has an unknown member; it may have only {list}")));
    }
    Ok(obj)
}

/// Validate the body of `POST /v1/keys`: `{"id", "scopes", "expires_at"?,
/// "limits"?}`.
///
/// # Errors
/// `400 invalid_request` naming the member and the rule.
pub fn parse_new_key(body: &Value, now_ms: i64) -> Result<NewKey, ApiError> {
    let obj = object(body, &["id", "scopes", "expires_at", "limits"], "{\"id\", \"scopes\", \"expires_at\"?, \"limits\"?}")?;
    let id = match obj.get("id") {
        Some(Value::String(id)) if valid_id(id) => id.clone(),
        None | Some(Value::Null) => return Err(bad("id is required")),
        Some(_) => return Err(bad("id must be 1-64 characters of letters, digits, '-', '_' or '.', and not '.' or '..'")),
    };
    let scopes = match obj.get("scopes") {
        Some(Value::Array(list)) if !list.is_empty() => {
            let mut scopes: Vec<String> = Vec::new();
            for s in list {
                match s.as_str() {
                    Some(s) if scopes.iter().any(|x| x == s) => return Err(bad("scopes names a scope twice")),
                    Some(s) if SCOPES.contains(&s) => scopes.push(s.to_owned()),
                    _ => return Err(bad(format!("scopes has an unknown scope (known: {})", crate::auth::SCOPE_LIST))),
                }
            }
            scopes
        }
        None | Some(Value::Null) => return Err(bad("scopes is required")),
        Some(_) => return Err(bad("scopes must be a non-empty array of scope names")),
    };
    let expires_at_ms = match obj.get("expires_at") {
        None | Some(Value::Null) => None,
        // A date alone is refused: it would end the key at that day's
        // first instant, a day before "valid through" reads it.
        Some(Value::String(s)) => match parse_rfc3339(s).filter(|_| s.len() > 10) {
            Some(t) if t > now_ms => Some(t),
            Some(_) => return Err(bad("expires_at must be in the future")),
            None => return Err(bad("expires_at must be an RFC 3339 date-time such as 2027-01-31T00:00:00Z")),
        },
        Some(_) => return Err(bad("expires_at must be an RFC 3339 date-time such as 2027-01-31T00:00:00Z, or null")),
    };
    let limits = match obj.get("limits") {
        None | Some(Value::Null) => Limits::default(),
        Some(v) => Limits::parse(v, "limits").map_err(bad)?,
    };
    Ok(NewKey { id, scopes, expires_at_ms, limits })
}

/// Validate the body of `POST /v1/keys/{id}/rotate` (none, or `{}`, or
/// `{"grace_secs"?: n, "current_key"?: key}`): the grace period of the
/// previous key, in seconds, and the hash of the key the rotation replaces
/// (the key itself goes no further).
///
/// # Errors
/// `400 invalid_request` naming the member and the rule.
pub fn parse_rotation(body: Option<&Value>) -> Result<(u64, Option<String>), ApiError> {
    let Some(body) = body else { return Ok((DEFAULT_GRACE_SECS, None)) };
    let obj = object(body, &["grace_secs", "current_key"], "{\"grace_secs\"?: n, \"current_key\"?: key}")?;
    let grace = match obj.get("grace_secs") {
        None | Some(Value::Null) => DEFAULT_GRACE_SECS,
        Some(v) => crate::ops::integer(v)
            .filter(|s| *s <= MAX_GRACE_SECS)
            .ok_or_else(|| bad(format!("grace_secs must be a whole number of seconds from 0 to {MAX_GRACE_SECS}")))?,
    };
    let current = match obj.get("current_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) if !k.is_empty() => Some(hash_key(k)),
        Some(_) => return Err(bad("current_key must be a key")),
    };
    Ok((grace, current))
}

/// Validate the body of `PATCH /v1/keys/{id}`: `{"limits": {...}}`, a
/// merge patch of the limits (a member set, `null` removes a limit, an
/// absent member is kept). Returns the patch, checked against no limits.
///
/// # Errors
/// `400 invalid_request` naming the member and the rule.
pub fn parse_patch(body: &Value) -> Result<Value, ApiError> {
    let obj = object(body, &["limits"], "{\"limits\": {...}}")?;
    let patch = obj.get("limits").ok_or_else(|| bad("limits is required: {\"limits\": {\"requests_per_minute\": …, \"order_amount_per_day\": …}}"))?;
    Limits::default().patch(patch, "limits").map_err(bad)?;
    Ok(patch.clone())
}

/// `active`, `revoked` or `expired`.
pub fn key_state(rec: &KeyRecord, now_ms: i64) -> &'static str {
    if rec.revoked_at_ms.is_some() {
        "revoked"
    } else if rec.expires_at_ms.is_some_and(|t| t <= now_ms) {
        "expired"
    } else {
        "active"
    }
}

/// The record named `id`.
///
/// # Errors
/// `404 not_found`.
pub fn find<'a>(records: &'a [KeyRecord], id: &str) -> Result<&'a KeyRecord, ApiError> {
    records.iter().find(|r| r.id == id).ok_or_else(no_such_key)
}

/// `404 not_found` for a key id.
pub fn no_such_key() -> ApiError {
    ApiError { message: "no runtime key has this id".into(), ..ApiError::not_found() }
}

/// A key the copy still cannot admit after two syncs whose replies were
/// not kept (each began before this isolate changed a key, or
/// [`MAX_AGE_MS`] before its reply came): `502`, retry,
/// not `401`: an "unknown key" makes callers drop a key nothing is wrong
/// with, while an admin changes keys through the same isolate.
pub fn directory_changing() -> ApiError {
    ApiError::upstream_error("the key directory changed, or the key registry answered too slowly, during the lookup; retry in a moment")
}

/// `400` for a change only runtime keys can have.
pub fn static_key_refusal() -> ApiError {
    bad("this id is a GATEWAY_KEYS key: static keys are changed or revoked only by editing GATEWAY_KEYS and redeploying")
}

/// The registry's answer to a change of key `id` (revoke, rotate, limits),
/// as the admin gets it. The registry is asked first, so a runtime key
/// whose id a later `GATEWAY_KEYS` entry also took stays revocable; only
/// its "no runtime key has this id" for a `GATEWAY_KEYS` id becomes
/// [`static_key_refusal`].
pub fn change_answer(answer: Result<String, ApiError>, static_id: bool) -> Result<String, ApiError> {
    match answer {
        Err(e) if static_id && e.status == 404 => Err(static_key_refusal()),
        other => other,
    }
}

/// A new record for `new` with key hash `sha256`.
///
/// # Errors
/// `400` when the id is taken (by a runtime key, revoked ones included,
/// or a `GATEWAY_KEYS` entry) or [`MAX_ACTIVE_KEYS`] are active.
pub fn create(records: &[KeyRecord], static_ids: &[String], new: NewKey, sha256: String, now_ms: i64) -> Result<KeyRecord, ApiError> {
    if static_ids.contains(&new.id) || records.iter().any(|r| r.id == new.id) {
        return Err(bad("id is already used by another key (ids are never reused, revoked keys' included); choose another id"));
    }
    if records.iter().filter(|r| key_state(r, now_ms) == "active").count() >= MAX_ACTIVE_KEYS {
        return Err(bad(format!("at most {MAX_ACTIVE_KEYS} runtime keys may be active; revoke unused keys first")));
    }
    Ok(KeyRecord {
        id: new.id,
        sha256,
        scopes: new.scopes,
        created_at_ms: now_ms,
        expires_at_ms: new.expires_at_ms,
        revoked_at_ms: None,
        limits: new.limits,
        rotated_at_ms: None,
        previous_sha256: None,
        previous_until_ms: None,
        replaced_sha256: None,
    })
}

/// `rec` revoked at `now_ms`, its previous key too (revoking twice keeps
/// the first instant).
pub fn revoke(rec: &KeyRecord, now_ms: i64) -> KeyRecord {
    KeyRecord { revoked_at_ms: rec.revoked_at_ms.or(Some(now_ms)), previous_until_ms: rec.previous_until_ms.map(|t| t.min(now_ms)), ..rec.clone() }
}

/// `rec` with the new key hash `sha256`; the current key keeps working for
/// `grace_secs`, and never past the key's own end (`expires_at`).
///
/// # Errors
/// `400` for a revoked or expired key.
pub fn rotate(rec: &KeyRecord, sha256: String, grace_secs: u64, now_ms: i64) -> Result<KeyRecord, ApiError> {
    rotate_from(rec, sha256, grace_secs, None, now_ms)
}

/// A rotation that names the key it replaces by its hash `current`:
/// - none named, or the current key: [`rotate`];
/// - the previous key, still in its grace: this rotation was done already
///   and its answer lost, so its new key was likely never seen: `sha256`
///   becomes the current key, the previous key keeps its grace, and the
///   replaced one works through that grace too (the first answer may have
///   arrived after all: a second place rotating, or a retry that raced it),
///   ending the grace of any key an earlier resend replaced;
/// - the previous key past its grace: refused, saying that rotation was
///   made (its key named no longer works);
/// - any other: refused, nothing changes.
///
/// # Errors
/// `400` for a key neither current nor previous in grace, or as [`rotate`].
pub fn rotate_from(rec: &KeyRecord, sha256: String, grace_secs: u64, current: Option<&str>, now_ms: i64) -> Result<KeyRecord, ApiError> {
    active(rec, now_ms, "be rotated")?;
    // Sent again: `current` is the previous key already.
    let again = current.is_some_and(|h| h != rec.sha256);
    if again && (rec.previous_sha256.as_deref() != current || rec.previous_until_ms.is_none_or(|t| t <= now_ms)) {
        // The previous key past its grace (`grace_secs` 0 ends it at once):
        // that rotation was made, so the key named no longer works, and a
        // lost answer means the current key was never seen.
        return Err(bad(if rec.previous_sha256.as_deref() == current {
            "current_key was replaced by the last rotation and its grace has ended: nothing was rotated now; if that rotation's answer was lost, rotate without current_key"
        } else {
            "current_key is neither the current key nor the previous one in its grace: nothing was rotated"
        }));
    }
    Ok(KeyRecord {
        previous_sha256: if again { rec.previous_sha256.clone() } else { Some(rec.sha256.clone()) },
        sha256,
        previous_until_ms: if again { rec.previous_until_ms } else { Some(add_secs(now_ms, grace_secs).min(rec.expires_at_ms.unwrap_or(i64::MAX))) },
        replaced_sha256: again.then(|| rec.sha256.clone()),
        rotated_at_ms: Some(now_ms),
        ..rec.clone()
    })
}

/// `rec` with its limits patched by `patch` (see [`parse_patch`]).
///
/// # Errors
/// `400` for a revoked or expired key (limits that can never apply would
/// read as if the key still worked), or a patch that breaks a rule.
pub fn set_limits(rec: &KeyRecord, patch: &Value, now_ms: i64) -> Result<KeyRecord, ApiError> {
    active(rec, now_ms, "have its limits changed")?;
    let limits = rec.limits.patch(patch, "limits").map_err(bad)?;
    Ok(KeyRecord { limits, ..rec.clone() })
}

/// `400` unless `rec` is active at `now_ms`: "this key is revoked: only an
/// active key can <action>".
fn active(rec: &KeyRecord, now_ms: i64, action: &str) -> Result<(), ApiError> {
    match key_state(rec, now_ms) {
        "active" => Ok(()),
        state => Err(bad(format!("this key is {state}: only an active key can {action}"))),
    }
}

// ------------------------------------------------------------ the directory

/// One credential that may call, as every isolate holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The key's id.
    pub id: String,
    /// Lowercase hex SHA-256 of the key.
    pub sha256: String,
    /// Scope names.
    pub scopes: Vec<String>,
    /// Limits.
    pub limits: Limits,
    /// It stops working at this instant (expiry, or a grace period's end).
    pub until_ms: Option<i64>,
}

impl Credential {
    /// May it call at `now_ms`?
    pub fn usable(&self, now_ms: i64) -> bool {
        self.until_ms.is_none_or(|t| now_ms < t)
    }
}

/// Every credential of `records` that may call at `now_ms`: active keys,
/// and the previous key of a rotated one during its grace period (with the
/// key a resent rotation replaced, if any).
pub fn directory(records: &[KeyRecord], now_ms: i64) -> Vec<Credential> {
    let mut out = Vec::new();
    for r in records.iter().filter(|r| key_state(r, now_ms) == "active") {
        let cred = |sha256: &str, until_ms: Option<i64>| Credential {
            id: r.id.clone(),
            sha256: sha256.to_owned(),
            scopes: r.scopes.clone(),
            limits: r.limits,
            until_ms,
        };
        out.push(cred(&r.sha256, r.expires_at_ms));
        if let (Some(prev), Some(until)) = (&r.previous_sha256, r.previous_until_ms) {
            let until = r.expires_at_ms.map_or(until, |e| e.min(until));
            if now_ms < until {
                out.push(cred(prev, Some(until)));
                if let Some(replaced) = &r.replaced_sha256 {
                    out.push(cred(replaced, Some(until)));
                }
            }
        }
    }
    out
}

/// A short fingerprint of the records, which changes whenever the
/// directory could: an isolate holding this version needs nothing new.
pub fn version(records: &[KeyRecord]) -> String {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).unwrap_or_default());
        text.push('\n');
    }
    crate::secret::fingerprint(&text)
}

/// The caller whose key is `key`, if a usable credential of `dir` has it.
pub fn identify(dir: &[Credential], key: &CallerKey, now_ms: i64) -> Option<Caller> {
    let presented = hash_key(key.expose_secret());
    let i = find_hash(dir.iter().map(|c| c.sha256.as_bytes()), presented.as_bytes())?;
    let c = &dir[i];
    c.usable(now_ms).then(|| {
        let mut caller = Caller::new(c.id.clone(), c.scopes.clone(), c.limits, KeySource::Runtime);
        caller.until_ms = c.until_ms;
        caller
    })
}

/// How an isolate may use a directory fetched at `fetched_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Use it.
    Fresh,
    /// Use it, and refresh it after this request.
    Aging,
    /// Too old (or none): fetch a new one first.
    Expired,
}

/// How a directory fetched at `fetched_ms` may be used at `now_ms`.
pub fn freshness(fetched_ms: Option<i64>, now_ms: i64) -> Freshness {
    match fetched_ms.map(|t| now_ms.saturating_sub(t)) {
        Some(age) if (0..SYNC_INTERVAL_MS).contains(&age) => Freshness::Fresh,
        Some(age) if (0..MAX_AGE_MS).contains(&age) => Freshness::Aging,
        _ => Freshness::Expired,
    }
}

/// A key missing from a directory fetched at `fetched_ms`: fetch again
/// before saying `401`?
pub fn recheck_miss(fetched_ms: Option<i64>, now_ms: i64) -> bool {
    fetched_ms.is_none_or(|t| now_ms.saturating_sub(t) >= MISS_RECHECK_MS || now_ms < t)
}

// ------------------------------------------------------------ the isolate's syncs

/// A sync that has not answered after this long no longer counts as in
/// flight (its request may be gone): requests stop waiting for it.
pub const SYNC_STALE_MS: i64 = 3_000;

/// One sync of an isolate's copy, from [`Syncs::start`] to [`Syncs::end`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// Names the usage it carries; above the [`Syncs`] floor when it began
    /// after the latest key change here and after the latest sync whose
    /// end was kept.
    id: u64,
    /// When it began.
    at_ms: i64,
}

/// Whether the reply of a sync (one [`Syncs::end`] kept) may replace or
/// refresh the copy, whose version is `held`: one with a directory always
/// does; one without ("the version you sent is current") vouches only for
/// that version, so it refreshes the copy only while the copy still is
/// that version. Replies can arrive out of order: [`Syncs::end`] keeps
/// none begun before one it kept, but an earlier sync's reply can land
/// between a later one's start and its "current", which then vouches for
/// the version the later one sent, no longer the copy's.
pub fn reply_applies(held: Option<&str>, reply_version: Option<&str>, has_directory: bool) -> bool {
    has_directory || held == reply_version
}

/// What the isolate's copy says of a runtime-shaped key it cannot admit
/// now ([`look`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not in a copy that may be used but is old enough to recheck a miss
    /// ([`MISS_RECHECK_MS`]): most likely no one's.
    Absent,
    /// The copy cannot say: there is none yet, or it is too old to use (or
    /// was thrown away after a key change here), whether it lists the key
    /// or not (made, revoked or rotated since).
    Unsure,
}

/// What a request makes of a runtime-shaped key, from the isolate's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// A caller of a copy that may be used.
    Caller(Caller),
    /// Not in a copy younger than [`MISS_RECHECK_MS`]: `401` without asking.
    Unknown,
    /// The copy cannot admit it now: [`Syncs::recheck`] decides what next.
    Ask(Seen),
}

/// Key `key` in the copy `directory` fetched at `fetched_ms` (`None`:
/// never, or thrown away), at `now_ms`.
pub fn look(directory: &[Credential], fetched_ms: Option<i64>, key: &CallerKey, now_ms: i64) -> Look {
    if freshness(fetched_ms, now_ms) == Freshness::Expired {
        return Look::Ask(Seen::Unsure);
    }
    match identify(directory, key, now_ms) {
        Some(caller) => Look::Caller(caller),
        None if recheck_miss(fetched_ms, now_ms) => Look::Ask(Seen::Absent),
        None => Look::Unknown,
    }
}

/// What a request does about such a key ([`Syncs::recheck`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// Sync now, then look again.
    Sync,
    /// A sync is in flight: wait for it (at most this many ms, in case its
    /// request is gone), then look again.
    Wait(i64),
    /// `401`: unknown, without asking.
    Refuse,
    /// Answer what the last sync's failure answered, without asking.
    Fail(ApiError),
}

/// An isolate's syncs with the registry: when the latest began and how the
/// latest answered, the usage each one in flight carries, and a *floor*:
/// the syncs begun before it answer too late to count, moved on by every
/// key change this isolate makes ([`Syncs::invalidate`]) and by every
/// answer kept (a reply or a failure).
///
/// It decides, without I/O, whether a key the copy cannot admit may make
/// the isolate call the registry ([`Syncs::recheck`]: unknown keys at most
/// once a second, failures counted, never beside one in flight), whether a
/// reply may replace the copy (not one begun before a change: it could put
/// back a key this isolate just revoked; nor one begun before a sync whose
/// end was kept: its older directory could lack a key made since, or
/// honour one revoked; nor one begun [`MAX_AGE_MS`] or more before it
/// came: its directory could honour a key revoked since),
/// and what usage is counted but not
/// yet in the counts the registry sent back ([`Syncs::sending`]).
#[derive(Debug, Clone, Default)]
pub struct Syncs {
    /// The floor: the last sync id begun before the latest key change
    /// here, or the latest sync whose end was kept, answered or failed (a
    /// sync that may still be kept has a later id).
    floor: u64,
    next_id: u64,
    /// When the latest sync began, even before a key change here (the pace of the
    /// usage reports)...
    sent_ms: Option<i64>,
    /// ...when the latest sync since the latest key change here began, and its id: it is in
    /// flight while its usage is in `sending` (not while "the latest end
    /// came after the latest start": an end in the millisecond of the next
    /// start, or a stale sync's after it, would hide that one)...
    started_ms: Option<i64>,
    /// (The latest sync's id, even before a key change: it counts only while
    /// `started_ms` is set.)
    latest: u64,
    /// ...and the latest one's failure, if it failed.
    failure: Option<ApiError>,
    /// The usage each sync in flight sent (a few at most).
    sending: Vec<(u64, Vec<UsageDelta>)>,
}

impl Syncs {
    /// A sync begins at `now_ms`, sending `usage`: it counts as in flight,
    /// and its usage still counts in [`Syncs::sending`], until
    /// [`Syncs::end`].
    pub fn start(&mut self, usage: Vec<UsageDelta>, now_ms: i64) -> Ticket {
        self.next_id = self.next_id.wrapping_add(1);
        (self.sent_ms, self.started_ms, self.latest) = (Some(now_ms), Some(now_ms), self.next_id);
        self.sending.push((self.next_id, usage));
        Ticket { id: self.next_id, at_ms: now_ms }
    }

    /// The sync of `ticket` answered at `now_ms` (`failure`: it did not, or
    /// was refused). Returns whether its reply may replace the copy (no key
    /// changed here since it began, no later sync's end was kept, and it
    /// began less than [`MAX_AGE_MS`] ago: an older directory, used at once
    /// by the request that waited for it, could honour a key revoked that
    /// long ago) and the usage it
    /// sent, no longer in
    /// flight: the caller counts it again on a failure, and drops it once
    /// the reply's counts (which include it) are kept.
    pub fn end(&mut self, ticket: Ticket, failure: Option<&ApiError>, now_ms: i64) -> (bool, Vec<UsageDelta>) {
        let usage = match self.sending.iter().position(|(id, _)| *id == ticket.id) {
            Some(i) => self.sending.swap_remove(i).1,
            None => Vec::new(),
        };
        // A sync begun before a change here or before a kept reply's sync
        // (its directory older than the copy: a key made since would be
        // refused `401`), or begun MAX_AGE_MS ago or more (or after now: a
        // clock stepped back), is forgotten: it neither replaces the copy
        // nor says how the registry is doing now. (A failure moves the
        // floor too: the requests go by the latest word, and sync again
        // within a second.)
        let current = ticket.id > self.floor && (0..MAX_AGE_MS).contains(&now_ms.saturating_sub(ticket.at_ms));
        if current {
            (self.failure, self.floor) = (failure.cloned(), ticket.id);
        }
        (current, usage)
    }

    /// This isolate changed a key: a sync begun before now must not replace
    /// the copy, and the next key the copy cannot admit may sync at once.
    /// The usage in flight still counts.
    pub fn invalidate(&mut self) {
        self.floor = self.next_id;
        (self.started_ms, self.failure) = (None, None);
    }

    /// Requests of key `id` in `minute` carried by syncs in flight: sent,
    /// but not yet in the counts a reply brings back.
    pub fn sending(&self, id: &str, minute: i64) -> u64 {
        let batches = self.sending.iter().flat_map(|(_, usage)| usage);
        batches.filter(|d| d.id == id).fold(0, |n, d| n.saturating_add(d.counter().at(minute)))
    }

    /// How long the latest sync since a key change here has been in flight, if it is and
    /// began less than [`SYNC_STALE_MS`] ago (after that its request may be
    /// gone, and it no longer counts).
    fn in_flight(&self, now_ms: i64) -> Option<i64> {
        let age = now_ms.saturating_sub(self.started_ms?);
        ((0..SYNC_STALE_MS).contains(&age) && self.sending.iter().any(|(id, _)| *id == self.latest)).then_some(age)
    }

    /// Should a request at `now_ms` begin a sync after its answer (the
    /// copy fetched at `fetched_ms`)? Not while one is in flight; else when
    /// the last began [`SYNC_INTERVAL_MS`] ago (the pace of the usage
    /// reports) or the copy is aging. The request begins it at once
    /// ([`Syncs::start`]), so the requests after it see it in flight
    /// rather than each begin one of their own.
    pub fn background_due(&self, fetched_ms: Option<i64>, now_ms: i64) -> bool {
        let interval_passed = self.sent_ms.is_none_or(|t| now_ms.saturating_sub(t) >= SYNC_INTERVAL_MS);
        self.in_flight(now_ms).is_none() && (interval_passed || freshness(fetched_ms, now_ms) == Freshness::Aging)
    }

    /// A runtime-shaped key the copy cannot admit at `now_ms`, where the
    /// copy says `seen`: sync first, wait, refuse, or repeat the last
    /// failure?
    ///
    /// - While a sync is in flight, every such request waits for it and
    ///   looks again (a burst after a key change or an idle spell makes one
    ///   registry call, and a key just made is never refused because
    ///   another request got to the registry first); a sync in flight for
    ///   [`SYNC_STALE_MS`] is no longer waited for.
    /// - Otherwise a sync may begin when none began in the last
    ///   [`MISS_RECHECK_MS`] (answered or failed: a failing registry is not
    ///   asked again by every request), so however many unknown keys arrive
    ///   the isolate makes at most one call a second.
    /// - Else an `Absent` key is unknown, `401` without asking, when that
    ///   sync was answered (the copy is under a second old: a key made
    ///   before it is in it); when it failed, the key gets its failure
    ///   again (a `502` to retry), as a key the copy is `Unsure` of does,
    ///   which, if the sync did not fail, syncs itself.
    pub fn recheck(&self, seen: Seen, now_ms: i64) -> Recheck {
        if let Some(a) = self.in_flight(now_ms) {
            return Recheck::Wait(SYNC_STALE_MS - a);
        }
        match self.started_ms.map(|t| now_ms.saturating_sub(t)) {
            Some(a) if (0..MISS_RECHECK_MS).contains(&a) => {}
            _ => return Recheck::Sync,
        }
        match seen {
            Seen::Absent => self.failure.clone().map_or(Recheck::Refuse, Recheck::Fail),
            Seen::Unsure => self.failure.clone().map_or(Recheck::Sync, Recheck::Fail),
        }
    }
}

// ------------------------------------------------------------ answers

fn time_or_null(ms: Option<i64>) -> String {
    quote_or_null(ms.map(rfc3339).as_deref())
}

pub(crate) fn scopes_json(scopes: &[String]) -> String {
    let items: Vec<String> = scopes.iter().map(|s| quote(s)).collect();
    crate::jsontext::array(&items)
}

/// What `/v1/keys` says of one key: usage of the day of `now_ms`, the
/// last request seen (`last_used_ms`) and the amount held for orders of
/// unknown fate (`reserved`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// Today's usage.
    pub usage: Usage,
    /// The last request counted.
    pub last_used_ms: Option<i64>,
    /// Today's amount held for orders whose fate is not known yet
    /// (millionths): counted against the spend cap, not yet in `usage`.
    pub reserved: i64,
}

/// A runtime key as `/v1/keys` answers it (never its secret).
pub fn view(rec: &KeyRecord, facts: &Facts, now_ms: i64) -> String {
    let previous_until = rec.previous_until_ms.filter(|t| *t > now_ms && rec.revoked_at_ms.is_none());
    Object::new()
        .str("id", &rec.id)
        .str("source", "runtime")
        .str("state", key_state(rec, now_ms))
        .raw("scopes", &scopes_json(&rec.scopes))
        .raw("created_at", &time_or_null(Some(rec.created_at_ms)))
        .raw("expires_at", &time_or_null(rec.expires_at_ms))
        .raw("revoked_at", &time_or_null(rec.revoked_at_ms))
        .raw("rotated_at", &time_or_null(rec.rotated_at_ms))
        .raw("previous_key_expires_at", &time_or_null(previous_until))
        .raw("last_used_at", &time_or_null(facts.last_used_ms))
        .raw("limits", &rec.limits.json())
        .raw("usage", &facts.usage.json(day_of(now_ms), facts.reserved))
        .finish()
}

/// A `GATEWAY_KEYS` key as `/v1/keys` answers it.
pub fn static_view(c: &Credential, facts: &Facts, now_ms: i64) -> String {
    Object::new()
        .str("id", &c.id)
        .str("source", "static")
        .str("state", "active")
        .raw("scopes", &scopes_json(&c.scopes))
        .raw("created_at", "null")
        .raw("expires_at", "null")
        .raw("revoked_at", "null")
        .raw("rotated_at", "null")
        .raw("previous_key_expires_at", "null")
        .raw("last_used_at", &time_or_null(facts.last_used_ms))
        .raw("limits", &c.limits.json())
        .raw("usage", &facts.usage.json(day_of(now_ms), facts.reserved))
        .finish()
}

/// `GET /v1/keys`: `{"keys": [...]}` of views.
pub fn list_body(views: &[String]) -> String {
    format!(r#"{{"keys":[{}]}}"#, views.join(","))
}

/// A key's view with the key itself first (the answers of create and
/// rotate: the only time a key is shown).
///
/// # Security Warning
/// The answer holds the key: send it only to the admin who asked.
pub fn with_key(view: &str, key: &CallerKey) -> String {
    let rest = view.strip_prefix('{').unwrap_or(view);
    let sep = if rest == "}" { "" } else { "," };
    format!("{{\"key\":{}{sep}{rest}", quote(key.expose_secret()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: i64 = 1_795_626_582_000; // 2026-11-25T17:09:42Z
    const M: i64 = 1_000_000;

    fn new(id: &str) -> NewKey {
        NewKey { id: id.into(), scopes: vec!["catalog".into()], expires_at_ms: None, limits: Limits::default() }
    }

    /// An admin body that names a member twice is refused whole, at any
    /// depth and however the name is spelt; the same name in two objects,
    /// or a value repeated, is not a repeat.
    #[test]
    fn admin_bodies_naming_a_member_twice_are_refused() {
        use crate::errors::ErrorCode;
        for fine in [
            r#"{"id":"a","scopes":["catalog"]}"#,
            "\u{feff}{\"id\":\"a\",\"scopes\":[\"catalog\"]}",
            r#"{"limits":{"requests_per_minute":5},"x":{"requests_per_minute":5}}"#,
            r#"{"scopes":["catalog","catalog"],"id":"scopes"}"#,
            r#"[{"a":1},{"a":2}]"#,
            " ",
        ] {
            if fine.trim().is_empty() {
                assert_eq!(admin_body(fine.as_bytes()).unwrap_err().code, ErrorCode::InvalidJson, "empty: not JSON");
                continue;
            }
            assert_eq!(admin_body(fine.as_bytes()).unwrap(), crate::jsontext::request_json::<Value>(fine.as_bytes()).unwrap(), "{fine}");
        }
        for twice in [
            r#"{"id":"a","scopes":["catalog"],"scopes":["*"]}"#,
            r#"{"id":"a","limits":{"order_amount_per_day":10,"order_amount_per_day":null}}"#,
            r#"{"id":"a","\u0069d":"b"}"#,
            "\u{feff}{\"grace_secs\":0,\"grace_secs\":60}",
            r#"{"limits":{},"limits":{}}"#,
        ] {
            let e = admin_body(twice.as_bytes()).unwrap_err();
            assert_eq!((e.status, e.code), (400, ErrorCode::InvalidRequest), "{twice}");
            assert!(e.message.contains("names a member twice") && e.message.contains("nothing was changed"), "{}", e.message);
        }
        assert_eq!(admin_body(br#"{"id":"a",}"#).unwrap_err().code, ErrorCode::InvalidJson);
    }

    fn record(id: &str, key: &str) -> KeyRecord {
        create(&[], &[], new(id), hash_key(key), T0).unwrap()
    }

    #[test]
    fn the_record_reader_agrees_with_serdes_derive() {
        use crate::stored::agree;
        let full = json!({
            "id": "k", "sha256": "ab", "scopes": ["catalog", "orders:write"], "created_at_ms": T0, "expires_at_ms": T0 + 1,
            "revoked_at_ms": T0 + 2, "limits": {"requests_per_minute": 60, "order_amount_per_day_micros": 5 * M},
            "rotated_at_ms": T0 + 3, "previous_sha256": "cd", "previous_until_ms": T0 + 4, "replaced_sha256": "ef",
        });
        let (read, refused) = agree::check::<KeyRecord>(&agree::texts(&full, &["/limits"]), |b| KeyRecord::read(std::str::from_utf8(b).unwrap()));
        assert!(read > 50 && refused > 150, "{read} read, {refused} refused");
        let written = serde_json::to_string(&record("a", "key-a")).unwrap();
        assert_eq!(KeyRecord::read(&written), Some(record("a", "key-a")), "what is written reads back");
        assert!(!written.contains("replaced_sha256"), "a record without one is written as before it existed: {written}");
        let resent = KeyRecord { replaced_sha256: Some("ef".into()), ..record("a", "key-a") };
        assert_eq!(KeyRecord::read(&serde_json::to_string(&resent).unwrap()), Some(resent));
    }

    #[test]
    fn a_change_of_a_static_id_is_refused_only_when_no_runtime_key_has_it() {
        let static_no = change_answer(Err(no_such_key()), true).unwrap_err();
        assert_eq!((static_no.status, static_no.message.as_str()), (400, static_key_refusal().message.as_str()));
        // A runtime key that shares the id (made before the GATEWAY_KEYS
        // entry) is changed as any other.
        assert_eq!(change_answer(Ok("{}".into()), true), Ok("{}".into()));
        assert_eq!(change_answer(Err(no_such_key()), false).unwrap_err().status, 404);
        let other = change_answer(Err(bad("grace_secs must be 0 to 604800")), true).unwrap_err();
        assert_eq!(other.message, "grace_secs must be 0 to 604800");
    }

    #[test]
    fn keys_are_pgk_and_48_hex() {
        let k = new_key(&[0xab; KEY_RANDOM_BYTES]);
        assert_eq!(k.expose_secret(), format!("pgk_{}", "ab".repeat(24)));
        assert_eq!(k.expose_secret().len(), 52);
        // A runtime key passes the header checks every key passes.
        assert!(crate::auth::parse_bearer(Some(&format!("Bearer {}", k.expose_secret()))).is_ok());
    }

    #[test]
    fn a_new_key_request_is_checked_member_by_member() {
        let ok = parse_new_key(&json!({"id": "billing-fn", "scopes": ["catalog", "orders:write"], "expires_at": "2027-01-31T00:00:00Z", "limits": {"order_amount_per_day": 500}}), T0).unwrap();
        assert_eq!(ok.id, "billing-fn");
        assert_eq!(ok.scopes, vec!["catalog", "orders:write"]);
        assert_eq!(ok.expires_at_ms, Some(1_801_353_600_000));
        assert_eq!(ok.limits.order_amount_per_day, Some(500 * M));
        let minimal = parse_new_key(&json!({"id": "a", "scopes": ["*"], "expires_at": null, "limits": null}), T0).unwrap();
        assert_eq!((minimal.expires_at_ms, minimal.limits), (None, Limits::default()));
        for (body, says) in [
            (json!([]), "the body must be a JSON object"),
            (json!({"scopes": ["*"]}), "id is required"),
            (json!({"id": "", "scopes": ["*"]}), "id must be 1-64 characters"),
            (json!({"id": "a b", "scopes": ["*"]}), "id must be"),
            (json!({"id": "..", "scopes": ["*"]}), "id must be"),
            (json!({"id": ".", "scopes": ["*"]}), "id must be"),
            (json!({"id": "x".repeat(65), "scopes": ["*"]}), "id must be"),
            (json!({"id": 5, "scopes": ["*"]}), "id must be"),
            (json!({"id": "a"}), "scopes is required"),
            (json!({"id": "a", "scopes": []}), "scopes must be a non-empty array"),
            (json!({"id": "a", "scopes": "catalog"}), "scopes must be a non-empty array"),
            (json!({"id": "a", "scopes": ["catalogue"]}), "scopes has an unknown scope"),
            (json!({"id": "a", "scopes": [1]}), "scopes has an unknown scope"),
            (json!({"id": "a", "scopes": ["catalog", "catalog"]}), "scopes names a scope twice"),
            (json!({"id": "a", "scopes": ["*"], "expires_at": "tomorrow"}), "expires_at must be an RFC 3339"),
            (json!({"id": "a", "scopes": ["*"], "expires_at": "2027-01-31"}), "expires_at must be an RFC 3339 date-time"),
            (json!({"id": "a", "scopes": ["*"], "expires_at": 1_900_000_000}), "expires_at must be an RFC 3339"),
            (json!({"id": "a", "scopes": ["*"], "expires_at": "2026-11-25T17:09:42Z"}), "expires_at must be in the future"),
            (json!({"id": "a", "scopes": ["*"], "limits": {"requests_per_minute": 0}}), "limits.requests_per_minute"),
            (json!({"id": "a", "scopes": ["*"], "limits": 5}), "limits must be an object"),
            (json!({"id": "a", "scopes": ["*"], "sha256": "x"}), "the body has an unknown member; it may have only id, scopes, expires_at, limits"),
        ] {
            let e = parse_new_key(&body, T0).unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (400, "invalid_request"), "{body}");
            assert!(e.message.starts_with(says), "{body}: {}", e.message);
        }
    }

    #[test]
    fn rotation_and_patch_bodies() {
        assert_eq!(parse_rotation(None), Ok((DEFAULT_GRACE_SECS, None)));
        assert_eq!(parse_rotation(Some(&json!({}))), Ok((DEFAULT_GRACE_SECS, None)));
        assert_eq!(parse_rotation(Some(&json!({"grace_secs": 0}))), Ok((0, None)));
        assert_eq!(parse_rotation(Some(&json!({"grace_secs": 5.0}))), Ok((5, None)));
        assert_eq!(parse_rotation(Some(&json!({"grace_secs": 0.0}))), Ok((0, None)));
        assert_eq!(parse_rotation(Some(&json!({"grace_secs": MAX_GRACE_SECS}))), Ok((MAX_GRACE_SECS, None)));
        assert_eq!(parse_rotation(Some(&json!({"current_key": "key-a", "grace_secs": null}))), Ok((DEFAULT_GRACE_SECS, Some(hash_key("key-a")))));
        for bad in [json!({"grace_secs": MAX_GRACE_SECS + 1}), json!({"grace_secs": -1}), json!({"grace_secs": "60"}), json!({"grace": 1}), json!(7), json!({"current_key": ""}), json!({"current_key": 7})] {
            assert_eq!(parse_rotation(Some(&bad)).unwrap_err().status, 400, "{bad}");
        }
        assert_eq!(parse_patch(&json!({"limits": {"requests_per_minute": 5}})).unwrap(), json!({"requests_per_minute": 5}));
        assert!(parse_patch(&json!({})).unwrap_err().message.starts_with("limits is required"));
        assert!(parse_patch(&json!({"limits": {"requests_per_minute": -5}})).unwrap_err().message.starts_with("limits.requests_per_minute"));
        assert!(parse_patch(&json!({"limits": {}, "scopes": []})).unwrap_err().message.contains("unknown member; it may have only limits"));
    }

    #[test]
    fn create_refuses_taken_ids_and_too_many_keys() {
        let a = record("a", "key-a-0123456789abcdef");
        assert_eq!((a.created_at_ms, a.revoked_at_ms, a.sha256.len()), (T0, None, 64));
        let e = create(std::slice::from_ref(&a), &[], new("a"), hash_key("k2"), T0).unwrap_err();
        assert!(e.message.starts_with("id is already used"), "{}", e.message);
        let revoked = revoke(&a, T0);
        assert!(create(&[revoked], &[], new("a"), hash_key("k2"), T0).is_err(), "revoked ids stay taken");
        assert!(create(&[], &["a".into()], new("a"), hash_key("k2"), T0).is_err(), "GATEWAY_KEYS ids too");
        let many: Vec<KeyRecord> = (0..MAX_ACTIVE_KEYS).map(|i| record(&format!("k{i}"), &format!("key-{i}"))).collect();
        assert!(create(&many, &[], new("x"), hash_key("kx"), T0).unwrap_err().message.contains("at most 1000"));
        let mut many = many;
        many[0] = revoke(&many[0], T0);
        assert!(create(&many, &[], new("x"), hash_key("kx"), T0).is_ok(), "a revoked key frees a place");
    }

    #[test]
    fn a_rotation_naming_its_key_can_be_sent_again() {
        let orig = "key-a-0123456789abcdef";
        let a = record("a", orig);
        // Named, and current: an ordinary rotation.
        let first = rotate_from(&a, hash_key("key-b"), 60, Some(&hash_key(orig)), T0 + 10).unwrap();
        assert_eq!(first, rotate(&a, hash_key("key-b"), 60, T0 + 10).unwrap());
        assert_eq!(first.replaced_sha256, None);
        // Its answer lost, sent again naming the same key: key-c is current,
        // key-a keeps the grace it was given, and key-b (whose answer may
        // have arrived after all) works through that grace too.
        let again = rotate_from(&first, hash_key("key-c"), 3_600, Some(&hash_key(orig)), T0 + 20).unwrap();
        assert_eq!((again.sha256.clone(), again.previous_sha256.clone()), (hash_key("key-c"), Some(a.sha256.clone())));
        assert_eq!((again.previous_until_ms, again.rotated_at_ms), (Some(T0 + 60_010), Some(T0 + 20)));
        assert_eq!(again.replaced_sha256, Some(hash_key("key-b")));
        let calls = |rec: &KeyRecord, key: &str, at: i64| identify(&directory(std::slice::from_ref(rec), at), &CallerKey::new(key), at).is_some();
        for key in [orig, "key-b", "key-c"] {
            assert!(calls(&again, key, T0 + 60_009), "{key} in the grace");
        }
        assert_eq!([orig, "key-b", "key-c"].map(|k| calls(&again, k, T0 + 60_010)), [false, false, true], "the grace ends for both");
        let ends: Vec<Option<i64>> = directory(std::slice::from_ref(&again), T0 + 20).iter().map(|c| c.until_ms).collect();
        assert_eq!(ends, [None, Some(T0 + 60_010), Some(T0 + 60_010)]);
        assert_eq!([orig, "key-b", "key-c"].map(|k| calls(&revoke(&again, T0 + 30), k, T0 + 30)), [false; 3], "revoking ends all three");
        // Sent a third time: only the latest replaced key is kept.
        let third = rotate_from(&again, hash_key("key-f"), 60, Some(&hash_key(orig)), T0 + 25).unwrap();
        assert_eq!((third.sha256.clone(), third.replaced_sha256.clone(), third.previous_until_ms), (hash_key("key-f"), Some(hash_key("key-c")), Some(T0 + 60_010)));
        assert_eq!(["key-b", "key-c", "key-f"].map(|k| calls(&third, k, T0 + 30)), [false, true, true]);
        // Naming the new current key: an ordinary rotation (key-a's grace
        // ends, and key-b's with it).
        let next = rotate_from(&again, hash_key("key-d"), 60, Some(&hash_key("key-c")), T0 + 30).unwrap();
        assert_eq!((next.previous_sha256.clone(), next.replaced_sha256.clone()), (Some(hash_key("key-c")), None));
        assert_eq!([orig, "key-b", "key-c", "key-d"].map(|k| calls(&next, k, T0 + 31)), [false, false, true, true]);
        // Not named: as before.
        assert_eq!(rotate_from(&a, hash_key("key-b"), 60, None, T0 + 10).unwrap(), first);
        // A key it never had: refused.
        for (rec, named, at) in [(&first, "key-z", T0 + 20), (&a, "key-z", T0)] {
            let e = rotate_from(rec, hash_key("key-e"), 60, Some(&hash_key(named)), at).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(e.message.starts_with("current_key is neither"), "{}", e.message);
            assert!(!e.message.contains(named), "the key is not echoed");
        }
        // The previous key past its grace (ended at once by grace 0, or
        // run out): refused, saying that the rotation was made and how to
        // get a key, not that nothing happened.
        let at_once = rotate_from(&a, hash_key("key-b"), 0, Some(&hash_key(orig)), T0 + 10).unwrap();
        for (rec, at) in [(&at_once, T0 + 10), (&first, T0 + 60_010)] {
            let e = rotate_from(rec, hash_key("key-e"), 0, Some(&hash_key(orig)), at).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(e.message.starts_with("current_key was replaced by the last rotation"), "{}", e.message);
            assert!(e.message.ends_with("rotate without current_key"), "{}", e.message);
            assert!(!e.message.contains(orig), "the key is not echoed");
        }
        // A revoked key is refused as a revoked key.
        let r = revoke(&first, T0 + 15);
        assert!(rotate_from(&r, hash_key("key-e"), 60, Some(&hash_key(orig)), T0 + 20).unwrap_err().message.contains("revoked"));
    }

    #[test]
    fn revoke_rotate_and_limits() {
        let a = record("a", "key-a-0123456789abcdef");
        let r = revoke(&a, T0 + 5);
        assert_eq!((r.revoked_at_ms, key_state(&r, T0 + 6)), (Some(T0 + 5), "revoked"));
        assert_eq!(revoke(&r, T0 + 99).revoked_at_ms, Some(T0 + 5), "the first instant stays");
        let rot = rotate(&a, hash_key("key-b"), 60, T0 + 10).unwrap();
        assert_eq!((rot.sha256.clone(), rot.previous_sha256.clone()), (hash_key("key-b"), Some(a.sha256.clone())));
        assert_eq!((rot.previous_until_ms, rot.rotated_at_ms), (Some(T0 + 60_010), Some(T0 + 10)));
        let again = rotate(&rot, hash_key("key-c"), 60, T0 + 20).unwrap();
        assert_eq!(again.previous_sha256, Some(hash_key("key-b")), "only the latest previous key is kept");
        assert!(rotate(&r, hash_key("key-d"), 60, T0).unwrap_err().message.contains("revoked"));
        let expired = KeyRecord { expires_at_ms: Some(T0), ..a.clone() };
        assert_eq!(key_state(&expired, T0), "expired");
        assert!(rotate(&expired, hash_key("key-d"), 60, T0).unwrap_err().message.contains("expired"));
        let ending = KeyRecord { expires_at_ms: Some(T0 + 8_000), ..a.clone() };
        let soon = rotate(&ending, hash_key("key-e"), 86_400, T0 + 10).unwrap();
        assert_eq!(soon.previous_until_ms, Some(T0 + 8_000), "the grace ends with the key");
        let rr = revoke(&rot, T0 + 20);
        assert_eq!(rr.previous_until_ms, Some(T0 + 20), "revoking ends the grace too");
        let l = set_limits(&a, &json!({"requests_per_minute": 9}), T0).unwrap();
        assert_eq!(l.limits.requests_per_minute, Some(9));
        assert!(set_limits(&a, &json!({"requests_per_minute": 0}), T0).is_err());
        let e = set_limits(&r, &json!({"requests_per_minute": 9}), T0).unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (400, "this key is revoked: only an active key can have its limits changed"));
        assert!(set_limits(&expired, &json!({"requests_per_minute": 9}), T0).unwrap_err().message.contains("expired"));
        assert_eq!(find(std::slice::from_ref(&a), "a").unwrap().id, "a");
        assert_eq!(find(&[a], "b").unwrap_err().status, 404);
    }

    #[test]
    fn the_directory_holds_what_may_call() {
        let a = record("a", "key-a-0123456789abcdef");
        let b = revoke(&record("b", "key-b-0123456789abcdef"), T0);
        let c = KeyRecord { expires_at_ms: Some(T0 + 100), ..record("c", "key-c-0123456789abcdef") };
        let d = rotate(&record("d", "key-d-old-0123456789ab"), hash_key("key-d-new-0123456789ab"), 10, T0).unwrap();
        let records = vec![a, b, c, d];
        let dir = directory(&records, T0 + 1);
        let ids: Vec<(&str, Option<i64>)> = dir.iter().map(|c| (c.id.as_str(), c.until_ms)).collect();
        assert_eq!(ids, [("a", None), ("c", Some(T0 + 100)), ("d", None), ("d", Some(T0 + 10_000))]);
        let who = |key: &str, now| identify(&dir, &CallerKey::new(key), now).map(|c| c.id);
        assert_eq!(who("key-a-0123456789abcdef", T0 + 1).as_deref(), Some("a"));
        assert_eq!(who("key-b-0123456789abcdef", T0 + 1), None, "revoked");
        assert_eq!(who("key-c-0123456789abcdef", T0 + 99).as_deref(), Some("c"));
        assert_eq!(who("key-c-0123456789abcdef", T0 + 100), None, "expired, even in an old copy");
        assert_eq!(who("key-d-old-0123456789ab", T0 + 9_999).as_deref(), Some("d"), "grace");
        assert_eq!(who("key-d-old-0123456789ab", T0 + 10_000), None, "grace over");
        assert_eq!(who("key-d-new-0123456789ab", T0 + 10_000).as_deref(), Some("d"));
        let caller = identify(&dir, &CallerKey::new("key-a-0123456789abcdef"), T0).unwrap();
        assert!(caller.has_scope("catalog") && !caller.has_scope("admin"));
        assert_eq!((caller.source, caller.until_ms), (KeySource::Runtime, None));
        let until = |key: &str| identify(&dir, &CallerKey::new(key), T0 + 1).and_then(|c| c.until_ms);
        assert_eq!(until("key-c-0123456789abcdef"), Some(T0 + 100), "the key's expiry");
        assert_eq!(until("key-d-old-0123456789ab"), Some(T0 + 10_000), "the grace period's end");
        let after = directory(&records, T0 + 20_000);
        let later: Vec<(&str, Option<i64>)> = after.iter().map(|c| (c.id.as_str(), c.until_ms)).collect();
        assert_eq!(later, [("a", None), ("d", None)], "the grace and c's life are over: d's new key alone stays");
        // The version follows every change.
        assert_ne!(version(&records), version(&records[..3]));
        assert_eq!(version(&records), version(&records.clone()));
    }

    #[test]
    fn freshness_of_a_copy() {
        assert_eq!(freshness(None, T0), Freshness::Expired);
        assert_eq!(freshness(Some(T0), T0 + SYNC_INTERVAL_MS - 1), Freshness::Fresh);
        assert_eq!(freshness(Some(T0), T0 + SYNC_INTERVAL_MS), Freshness::Aging);
        assert_eq!(freshness(Some(T0), T0 + MAX_AGE_MS - 1), Freshness::Aging);
        assert_eq!(freshness(Some(T0), T0 + MAX_AGE_MS), Freshness::Expired);
        assert_eq!(freshness(Some(T0), T0 - 1), Freshness::Expired, "a clock going back: fetch again");
        assert!(recheck_miss(None, T0));
        assert!(!recheck_miss(Some(T0), T0 + MISS_RECHECK_MS - 1));
        assert!(recheck_miss(Some(T0), T0 + MISS_RECHECK_MS));
        assert!(recheck_miss(Some(T0), T0 - 1));
    }

    #[test]
    fn a_lookup_outrun_by_key_changes_is_retried_not_refused() {
        let e = directory_changing();
        assert_eq!((e.status, e.code), (502, crate::errors::ErrorCode::UpstreamError));
        assert!(e.message.ends_with("retry in a moment"), "{}", e.message);
    }

    fn failed() -> ApiError {
        ApiError::upstream_error("the key registry did not answer; retry in a moment")
    }

    #[test]
    fn unknown_keys_sync_at_most_once_a_second_and_wait_for_one_in_flight() {
        let mut s = Syncs::default();
        for seen in [Seen::Absent, Seen::Unsure] {
            assert_eq!(s.recheck(seen, T0), Recheck::Sync, "none yet: {seen:?}");
        }
        let t = s.start(Vec::new(), T0);
        // In flight: every key waits for it, at most until it goes stale.
        for seen in [Seen::Absent, Seen::Unsure] {
            assert_eq!(s.recheck(seen, T0), Recheck::Wait(SYNC_STALE_MS), "{seen:?}");
        }
        assert_eq!(s.recheck(Seen::Absent, T0 + MISS_RECHECK_MS), Recheck::Wait(SYNC_STALE_MS - MISS_RECHECK_MS), "still in flight after a second");
        assert_eq!(s.recheck(Seen::Absent, T0 + SYNC_STALE_MS), Recheck::Sync, "in flight too long: its request may be gone");
        assert_eq!(s.recheck(Seen::Unsure, T0 + SYNC_STALE_MS), Recheck::Sync);
        // Answered: no other for a second from its start.
        s.end(t, None, T0 + 50);
        assert_eq!(s.recheck(Seen::Absent, T0 + 50), Recheck::Refuse);
        assert_eq!(s.recheck(Seen::Absent, T0 + MISS_RECHECK_MS - 1), Recheck::Refuse);
        assert_eq!(s.recheck(Seen::Unsure, T0 + MISS_RECHECK_MS - 1), Recheck::Sync, "it did not fail: ask");
        assert_eq!(s.recheck(Seen::Absent, T0 + MISS_RECHECK_MS), Recheck::Sync);
        assert_eq!(s.recheck(Seen::Absent, T0 - 1), Recheck::Sync, "a clock going back: ask");
    }

    #[test]
    fn one_background_sync_at_a_time_at_the_report_pace() {
        let mut s = Syncs::default();
        let fresh = Some(T0);
        assert!(s.background_due(None, T0), "never synced");
        let t = s.start(Vec::new(), T0);
        // In flight: no second one, the copy aging or not, until it goes
        // stale (SYNC_STALE_MS, before the report interval comes round).
        let aging = Some(T0 - MAX_AGE_MS + SYNC_STALE_MS + 1);
        assert_eq!(freshness(aging, T0 + SYNC_STALE_MS), Freshness::Aging);
        assert!(!s.background_due(fresh, T0 + 1));
        assert!(!s.background_due(aging, T0 + SYNC_STALE_MS - 1), "the copy aging waits for the sync in flight");
        assert!(s.background_due(aging, T0 + SYNC_STALE_MS), "in flight too long: its request may be gone");
        assert!(!s.background_due(fresh, T0 + SYNC_STALE_MS), "...but a fresh copy waits for the interval");
        s.end(t, None, T0 + 50);
        // Answered: the next when the interval has passed, or the copy ages.
        assert!(!s.background_due(Some(T0 + 50), T0 + SYNC_INTERVAL_MS - 1));
        assert!(s.background_due(Some(T0 + 50), T0 + SYNC_INTERVAL_MS));
        assert!(s.background_due(Some(T0 - SYNC_INTERVAL_MS), T0 + 100), "an aging copy is refreshed early");
        // A key changed here: the old sync no longer counts as in flight,
        // but the report pace still does.
        let _old = s.start(Vec::new(), T0 + 5_000);
        s.invalidate();
        assert!(!s.background_due(Some(T0 + 5_000), T0 + 5_001));
        assert!(!s.background_due(None, T0 + 5_001), "the copy thrown away: the next runtime key's request syncs itself");
        assert!(s.background_due(None, T0 + 5_000 + SYNC_INTERVAL_MS));
    }

    #[test]
    fn a_failed_sync_holds_unknown_keys_for_a_second_too() {
        let mut s = Syncs::default();
        let t = s.start(Vec::new(), T0);
        s.end(t, Some(&failed()), T0 + 20);
        // The copy's time did not move, but the attempt counts. A key not
        // in it may have been made since: the failure again (retry), not a
        // 401 that would make its caller drop a good key.
        assert_eq!(s.recheck(Seen::Absent, T0 + 999), Recheck::Fail(failed()));
        assert_eq!(s.recheck(Seen::Unsure, T0 + 999), Recheck::Fail(failed()), "the copy cannot say: the failure again, not a 401");
        assert_eq!(s.recheck(Seen::Unsure, T0 + 998), Recheck::Fail(failed()), "a failing registry is not asked by every caller");
        assert_eq!(s.recheck(Seen::Absent, T0 + 1_000), Recheck::Sync);
        assert_eq!(s.recheck(Seen::Unsure, T0 + 1_000), Recheck::Sync);
        // The next attempt in flight is waited for; a success clears the failure.
        let t = s.start(Vec::new(), T0 + 1_000);
        assert_eq!(s.recheck(Seen::Unsure, T0 + 2_500), Recheck::Wait(SYNC_STALE_MS - 1_500));
        s.end(t, None, T0 + 2_600);
        assert_eq!(s.recheck(Seen::Unsure, T0 + 2_700), Recheck::Sync, "a success clears it");
    }

    #[test]
    fn a_sync_begun_before_a_change_here_is_not_kept() {
        let mut s = Syncs::default();
        let before = s.start(Vec::new(), T0);
        s.invalidate();
        assert_eq!(s.recheck(Seen::Unsure, T0 + 1), Recheck::Sync, "a key made here works at once: not waiting on the old sync");
        let after = s.start(Vec::new(), T0 + 1);
        assert!(!s.end(before, None, T0 + 5).0, "its directory could hold the revoked key");
        assert_eq!(s.recheck(Seen::Unsure, T0 + 6), Recheck::Wait(SYNC_STALE_MS - 5), "nor does it end the one in flight");
        assert!(s.end(after, None, T0 + 7).0);
        // A failure of a sync begun before the change is forgotten too.
        let before = s.start(Vec::new(), T0 + 10);
        s.invalidate();
        s.end(before, Some(&failed()), T0 + 11);
        assert_eq!(s.recheck(Seen::Unsure, T0 + 12), Recheck::Sync);
    }

    #[test]
    fn a_reply_too_old_or_from_a_clock_ahead_is_not_kept() {
        let mut s = Syncs::default();
        let t = s.start(Vec::new(), T0);
        assert!(s.end(t, None, T0 + MAX_AGE_MS - 1).0, "just in time");
        let t = s.start(Vec::new(), T0);
        assert!(!s.end(t, None, T0 + MAX_AGE_MS).0, "its directory could honour a key revoked 8 s ago");
        let t = s.start(Vec::new(), T0);
        assert!(!s.end(t, None, T0 - 1).0, "begun after now: the clock stepped back, its age unknown");
    }

    #[test]
    fn a_late_reply_of_an_earlier_sync_is_not_kept() {
        // The isolate's copy and what a reply does to it, as the worker's
        // shell applies them (src/callers.rs `finish`).
        struct Copy {
            dir: Vec<Credential>,
            version: Option<String>,
            fetched_ms: Option<i64>,
        }
        let apply = |c: &mut Copy, s: &mut Syncs, t: Ticket, began: i64, version: &str, dir: Option<Vec<Credential>>| {
            let (current, _) = s.end(t, None, began + 1);
            if current && reply_applies(c.version.as_deref(), Some(version), dir.is_some()) {
                if let Some(d) = dir {
                    c.dir = d;
                }
                c.version = Some(version.into());
                c.fetched_ms = Some(began);
            }
        };
        let key = CallerKey::new("key-a-0123456789abcdef");
        let v0 = directory(&[record("a", "key-a-0123456789abcdef")], T0);
        let mut s = Syncs::default();
        let mut c = Copy { dir: Vec::new(), version: Some("v-1".into()), fetched_ms: Some(T0 - 1_000) };
        // Sync A is answered at v0 (key a active); its reply is slow.
        let a = s.start(Vec::new(), T0);
        // Key a is revoked elsewhere at T0 + 1 s (v1); sync B, begun once
        // A is stale, brings v1 first.
        let revoked_at = T0 + 1_000;
        let b = s.start(Vec::new(), T0 + 3_000);
        apply(&mut c, &mut s, b, T0 + 3_000, "v1", Some(Vec::new()));
        assert!(!matches!(look(&c.dir, c.fetched_ms, &key, T0 + 3_100), Look::Caller(_)));
        // Sync C asks with v1; A's reply lands between C's start and its
        // "current": begun before B, whose reply was kept, it is not kept
        // (no older directory put back, and so nothing to age out).
        let cc = s.start(Vec::new(), T0 + 3_200);
        apply(&mut c, &mut s, a, T0, "v0", Some(v0.clone()));
        assert_eq!((c.version.as_deref(), c.fetched_ms), (Some("v1"), Some(T0 + 3_000)), "A's v0 not put back");
        apply(&mut c, &mut s, cc, T0 + 3_200, "v1", None);
        assert_eq!((c.version.as_deref(), c.fetched_ms), (Some("v1"), Some(T0 + 3_200)), "C vouched for the copy's v1");
        assert!(!matches!(look(&c.dir, c.fetched_ms, &key, T0 + 3_300), Look::Caller(_)));
        assert!(T0 + 3_300 < revoked_at + MAX_AGE_MS);

        // A key made between two syncs' starts (v2 lists key b): the later
        // sync's directory has it; the earlier's late reply, without it,
        // is not kept, so b is not refused 401 beside the sync just made
        // (8bbe4ea..2822f2a put v1 back here, and b was refused for up to a
        // second: `recheck` saw a sync begun under MISS_RECHECK_MS ago).
        let b_key = CallerKey::new("key-b-0123456789abcdef");
        let v2 = directory(&[record("b", "key-b-0123456789abcdef")], T0 + 10_000);
        let e = s.start(Vec::new(), T0 + 10_000);
        let f = s.start(Vec::new(), T0 + 10_000 + SYNC_STALE_MS);
        apply(&mut c, &mut s, f, T0 + 10_000 + SYNC_STALE_MS, "v2", Some(v2.clone()));
        apply(&mut c, &mut s, e, T0 + 10_000, "v1", Some(Vec::new()));
        let at = T0 + 10_000 + SYNC_STALE_MS + 100;
        assert!(matches!(look(&c.dir, c.fetched_ms, &b_key, at), Look::Caller(k) if k.id == "b"));
        assert_eq!(s.recheck(Seen::Absent, at), Recheck::Refuse, "(what the older directory would have led to)");

        // An earlier sync's reply between a later one's start and its
        // "current" is kept (no later sync's end was): the "current" then
        // vouches for the version the later one sent, not the copy's.
        let g = s.start(Vec::new(), T0 + 20_000);
        let h = s.start(Vec::new(), T0 + 20_000 + SYNC_STALE_MS);
        apply(&mut c, &mut s, g, T0 + 20_000, "v3", Some(Vec::new()));
        assert_eq!((c.version.as_deref(), c.fetched_ms), (Some("v3"), Some(T0 + 20_000)));
        apply(&mut c, &mut s, h, T0 + 20_000 + SYNC_STALE_MS, "v2", None);
        assert_eq!((c.version.as_deref(), c.fetched_ms), (Some("v3"), Some(T0 + 20_000)), "not relabelled, not restamped");
        // The rule: a directory always applies; "current" only for the
        // version held.
        assert!(reply_applies(Some("v1"), Some("v0"), true));
        assert!(!reply_applies(Some("v0"), Some("v1"), false));
        assert!(reply_applies(Some("v1"), Some("v1"), false));
        assert!(reply_applies(None, Some("v1"), true), "no copy yet");
    }

    #[test]
    fn an_earlier_sync_s_end_after_a_later_one_s_is_not_kept() {
        let mut s = Syncs::default();
        // The later sync fails; the earlier one's reply after it is not
        // kept either (the requests go by the latest word: the failure,
        // then a sync of their own a second after the later one began).
        let a = s.start(Vec::new(), T0);
        let b = s.start(Vec::new(), T0 + SYNC_STALE_MS);
        assert!(s.end(b, Some(&failed()), T0 + SYNC_STALE_MS + 10).0);
        assert_eq!(s.recheck(Seen::Unsure, T0 + SYNC_STALE_MS + 20), Recheck::Fail(failed()));
        assert!(!s.end(a, None, T0 + SYNC_STALE_MS + 30).0);
        assert_eq!(s.recheck(Seen::Unsure, T0 + SYNC_STALE_MS + 40), Recheck::Fail(failed()));
        assert_eq!(s.recheck(Seen::Unsure, T0 + SYNC_STALE_MS + MISS_RECHECK_MS), Recheck::Sync);
        // The later sync answers; the earlier one's failure after it says
        // nothing of the registry now.
        let c = s.start(Vec::new(), T0 + 10_000);
        let d = s.start(Vec::new(), T0 + 10_000 + SYNC_STALE_MS);
        assert!(s.end(d, None, T0 + 10_000 + SYNC_STALE_MS + 10).0);
        assert!(!s.end(c, Some(&failed()), T0 + 10_000 + SYNC_STALE_MS + 20).0);
        assert_eq!(s.recheck(Seen::Absent, T0 + 10_000 + SYNC_STALE_MS + 30), Recheck::Refuse, "not the stale failure");
    }

    #[test]
    fn what_the_copy_says_of_a_key() {
        let dir = directory(&[record("a", "key-a-0123456789abcdef")], T0);
        let key = CallerKey::new("key-a-0123456789abcdef");
        let stranger = CallerKey::new("key-z-0123456789abcdef");
        assert!(matches!(look(&dir, Some(T0), &key, T0), Look::Caller(c) if c.id == "a"));
        assert!(matches!(look(&dir, Some(T0), &key, T0 + MAX_AGE_MS - 1), Look::Caller(_)), "aging: still used");
        assert_eq!(look(&dir, Some(T0), &stranger, T0 + MISS_RECHECK_MS - 1), Look::Unknown, "a young copy is the negative cache");
        assert_eq!(look(&dir, Some(T0), &stranger, T0 + MISS_RECHECK_MS), Look::Ask(Seen::Absent));
        assert_eq!(look(&dir, Some(T0), &key, T0 + MAX_AGE_MS), Look::Ask(Seen::Unsure), "too old to use, though it lists the key");
        assert_eq!(look(&dir, Some(T0), &stranger, T0 + MAX_AGE_MS), Look::Ask(Seen::Unsure), "too old to say no");
        assert_eq!(look(&dir, None, &key, T0), Look::Ask(Seen::Unsure), "thrown away after a change here");
        assert_eq!(look(&dir, None, &stranger, T0), Look::Ask(Seen::Unsure));
        assert_eq!(look(&[], None, &stranger, T0), Look::Ask(Seen::Unsure), "no copy yet");
        assert_eq!(look(&dir, Some(T0), &stranger, T0 - 1), Look::Ask(Seen::Unsure), "a clock going back");
    }

    #[test]
    fn usage_in_flight_counts_until_its_reply() {
        let minute = crate::time::minute_of(T0);
        let used = |id: &str, n: usize| {
            let mut d = UsageDelta { id: id.into(), ..UsageDelta::default() };
            (0..n).for_each(|_| d.count(T0));
            d
        };
        let mut s = Syncs::default();
        let a = s.start(vec![used("a", 3), used("b", 1)], T0);
        let b = s.start(vec![used("a", 2)], T0 + 1);
        assert_eq!((s.sending("a", minute), s.sending("b", minute), s.sending("c", minute)), (5, 1, 0));
        assert_eq!(s.sending("a", minute + 1), 0, "a later minute starts again");
        s.invalidate();
        assert_eq!(s.sending("a", minute), 5, "a change of keys sends nothing back");
        let (_, back) = s.end(a, Some(&failed()), T0 + 2);
        assert_eq!(back, vec![used("a", 3), used("b", 1)], "handed back to be counted again");
        assert_eq!(s.sending("a", minute), 2, "and no longer in flight: not counted twice");
        assert_eq!(s.end(b, None, T0 + 3).1, vec![used("a", 2)]);
        assert_eq!(s.sending("a", minute), 0, "the reply's counts hold it now");
        assert!(s.end(b, None, T0 + 4).1.is_empty(), "ended once");
    }

    #[test]
    fn views_never_show_a_secret() {
        let a = rotate(&record("a", "key-a-0123456789abcdef"), hash_key("key-a2"), 60, T0).unwrap();
        let facts = Facts { usage: Usage { requests: 3, orders: 1, amount: 25 * M, ..Usage::default() }, last_used_ms: Some(T0), reserved: 10 * M };
        let v: Value = serde_json::from_str(&view(&a, &facts, T0 + 1)).unwrap();
        assert_eq!(v, json!({
            "id": "a", "source": "runtime", "state": "active", "scopes": ["catalog"],
            "created_at": "2026-11-25T17:09:42.000Z", "expires_at": null, "revoked_at": null,
            "rotated_at": "2026-11-25T17:09:42.000Z", "previous_key_expires_at": "2026-11-25T17:10:42.000Z",
            "last_used_at": "2026-11-25T17:09:42.000Z",
            "limits": {"requests_per_minute": null, "order_amount_per_day": null},
            "usage": {"day": "2026-11-25", "requests": 3, "orders": 1, "amount": 25, "reserved": 10}
        }));
        let text = view(&a, &facts, T0);
        assert!(!text.contains(&a.sha256) && !text.contains(a.previous_sha256.as_deref().unwrap()));
        let gone: Value = serde_json::from_str(&view(&a, &facts, T0 + 60_000)).unwrap();
        assert_eq!(gone["previous_key_expires_at"], Value::Null, "grace over");
        let cred = Credential { id: "ops".into(), sha256: hash_key("x"), scopes: vec!["*".into()], limits: Limits::default(), until_ms: None };
        let s: Value = serde_json::from_str(&static_view(&cred, &Facts { usage: Usage::default(), last_used_ms: None, reserved: 0 }, T0)).unwrap();
        assert_eq!((s["source"].as_str(), s["created_at"].is_null(), s["last_used_at"].is_null()), (Some("static"), true, true));
        let list: Value = serde_json::from_str(&list_body(&[view(&a, &facts, T0), static_view(&cred, &facts, T0)])).unwrap();
        assert_eq!(list["keys"].as_array().unwrap().len(), 2);
        assert_eq!(list_body(&[]), r#"{"keys":[]}"#);
        let k = new_key(&[1; KEY_RANDOM_BYTES]);
        let shown: Value = serde_json::from_str(&with_key(&view(&a, &facts, T0), &k)).unwrap();
        assert_eq!(shown["key"], k.expose_secret());
        assert_eq!(shown["id"], "a");
        assert_eq!(with_key("{}", &k), format!(r#"{{"key":"{}"}}"#, k.expose_secret()));
    }

    /// A record whose previous key outlives the key itself (as a rotation
    /// before the grace was capped at `expires_at` could leave it): the
    /// directory still ends that key with the key's own end, not later.
    #[test]
    fn the_directory_never_lets_a_previous_key_outlive_its_key() {
        let old = "key-e-old-0123456789ab";
        let rec = KeyRecord {
            expires_at_ms: Some(T0 + 100),
            previous_sha256: Some(hash_key(old)),
            previous_until_ms: Some(T0 + 10_000),
            ..record("e", "key-e-new-0123456789ab")
        };
        let dir = directory(std::slice::from_ref(&rec), T0);
        let ends: Vec<Option<i64>> = dir.iter().map(|c| c.until_ms).collect();
        assert_eq!(ends, [Some(T0 + 100), Some(T0 + 100)], "both end with the key");
        assert_eq!(identify(&dir, &CallerKey::new(old), T0 + 100), None, "not past the key's expiry, even from a copy made before it");
    }

    /// A sync answered in the millisecond it began is over: a key the copy
    /// cannot admit is refused (or syncs), not made to wait for it.
    #[test]
    fn a_sync_answered_in_its_first_millisecond_is_not_in_flight() {
        let mut s = Syncs::default();
        let t = s.start(Vec::new(), T0);
        s.end(t, None, T0);
        assert_eq!(s.recheck(Seen::Absent, T0 + 1), Recheck::Refuse);
        assert_eq!(s.recheck(Seen::Unsure, T0 + 1), Recheck::Sync);
        assert!(s.background_due(Some(T0 - SYNC_INTERVAL_MS), T0 + 1), "an aging copy syncs: none in flight");
    }

    /// README: the previous key works "24 hours unless grace_secs says
    /// otherwise"; `current_key: null` is no current key; a key may expire
    /// a millisecond from now.
    #[test]
    fn rotation_defaults_nulls_and_the_nearest_expiry() {
        assert_eq!(parse_rotation(None), Ok((86_400, None)));
        assert_eq!(parse_rotation(Some(&json!({"current_key": null}))), Ok((DEFAULT_GRACE_SECS, None)));
        let soon = parse_new_key(&json!({"id": "a", "scopes": ["*"], "expires_at": "2026-11-25T17:09:42.001Z"}), T0).unwrap();
        assert_eq!(soon.expires_at_ms, Some(T0 + 1));
    }
}
