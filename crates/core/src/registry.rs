//! The `KeyRegistry` Durable Object's decisions, without I/O.
//!
//! Its shell (`src/objects/registry.rs`) reads what an operation needs from
//! its SQLite storage (the key records, a hold, a day's usage), calls the
//! function of the operation here, writes the [`Write`]s it gets in one
//! synchronous step (so no other request sees half of them) and answers the
//! [`Reply`]. The rules themselves live in their domains: `keys` (what a
//! key is and what changes do to it), `quota` (limits, usage, holds),
//! `audit` (entries).
//!
//! | operation | reads | writes |
//! |---|---|---|
//! | [`sync`] | records, each reported key's usage of the day | usage, last seen |
//! | [`create`], [`revoke`], [`rotate`], [`set_limits`] | records, the key's facts | the record |
//! | [`list`] | records, everyone's facts | nothing |
//! | [`reserve`] | the key's record, the order's hold, what the key spent today | the hold; on a refusal, an audit entry |
//! | [`settle`] | the order's hold, the usage of its day | the hold, the usage, an audit entry |
//! | [`reconciled`] | every key's hold of the order, the usage of their days | the holds, the usage, an audit entry per key |
//! | [`abandoned`] | a hold whose requests may be gone, the ledger's look, the usage of its day | the hold, the usage |
//!
//! One rule is its callers': whether a worker sends a settle again
//! ([`settle_retry`]).

use crate::audit::{self, Attempt, Outcome};
use crate::errors::ApiError;
use crate::keys::{self, Credential, Facts, KeyRecord, NewKey};
use crate::quota::{self, Hold, HoldChange, HoldState, Reservation, Usage, UsageDelta};
use crate::time::day_of;
use crate::wire::ledger::{Fate, LedgerReply};
use crate::wire::registry::Reply;
use serde_json::Value;

/// One change to the registry's storage (`docs/storage.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Store this record (by its id).
    Key(KeyRecord),
    /// Store a key's usage of a day.
    Usage {
        /// Key id.
        key: String,
        /// UTC day.
        day: i64,
        /// The usage.
        usage: Usage,
    },
    /// A key was used at this instant (the latest wins).
    Seen {
        /// Key id.
        key: String,
        /// Epoch ms.
        at_ms: i64,
    },
    /// Change an order's hold.
    Hold {
        /// Key id.
        key: String,
        /// `poNumber`.
        po: String,
        /// Order fingerprint.
        fp: String,
        /// The change.
        change: HoldChange,
    },
    /// Append an audit entry (one per request id: a second is ignored,
    /// unless `replace`).
    Audit {
        /// When (epoch ms).
        at_ms: i64,
        /// Key id.
        key: String,
        /// The request's id.
        request_id: String,
        /// The entry (JSON text).
        entry: String,
        /// Replace the entry the request id has (keeping its time and
        /// place): [`record`].
        replace: bool,
    },
}

/// An isolate's sync: its usage added (each report counted in the day of
/// its last request), the directory if its `version` is not `current`.
/// `usage_of(key, day)` is the stored usage.
pub fn sync(
    records: &[KeyRecord],
    current: &str,
    version: Option<&str>,
    deltas: &[UsageDelta],
    usage_of: &dyn Fn(&str, i64) -> Usage,
    now_ms: i64,
) -> (Vec<Write>, Reply) {
    let mut writes = Vec::new();
    let mut counts = Vec::new();
    for d in deltas.iter().filter(|d| d.requests > 0) {
        let day = day_of(d.last_used_ms);
        let usage = usage_of(&d.id, day).with_requests(d);
        counts.push(UsageDelta { id: d.id.clone(), minute: usage.minute.minute, minute_requests: usage.minute.count, ..UsageDelta::default() });
        writes.push(Write::Usage { key: d.id.clone(), day, usage });
        writes.push(Write::Seen { key: d.id.clone(), at_ms: d.last_used_ms });
    }
    let directory = (version != Some(current)).then(|| keys::directory(records, now_ms));
    (writes, Reply { version: Some(current.to_owned()), directory, counts, ..Reply::default() })
}

/// `POST /v1/keys`: the new record, answered with its view.
pub fn create(records: &[KeyRecord], static_keys: &[Credential], new: NewKey, sha256: String, facts: &Facts, now_ms: i64) -> (Vec<Write>, Reply) {
    let static_ids: Vec<String> = static_keys.iter().map(|c| c.id.clone()).collect();
    stored(keys::create(records, &static_ids, new, sha256, now_ms), facts, now_ms)
}

/// A changed record: written, and answered with its view.
fn stored(changed: Result<KeyRecord, ApiError>, facts: &Facts, now_ms: i64) -> (Vec<Write>, Reply) {
    match changed {
        Ok(rec) => {
            let view = keys::view(&rec, facts, now_ms);
            (vec![Write::Key(rec)], Reply::body(view))
        }
        Err(e) => (vec![], Reply::refusal(e)),
    }
}

/// A change to one record (`change` is refused for an unknown id).
fn change(records: &[KeyRecord], id: &str, facts: &Facts, now_ms: i64, change: impl FnOnce(&KeyRecord) -> Result<KeyRecord, ApiError>) -> (Vec<Write>, Reply) {
    stored(keys::find(records, id).and_then(change), facts, now_ms)
}

/// `DELETE /v1/keys/{id}`.
pub fn revoke(records: &[KeyRecord], id: &str, facts: &Facts, now_ms: i64) -> (Vec<Write>, Reply) {
    change(records, id, facts, now_ms, |r| Ok(keys::revoke(r, now_ms)))
}

/// `POST /v1/keys/{id}/rotate`; `current`: the hash of the key it names
/// as the one it replaces ([`keys::rotate_from`]).
pub fn rotate(records: &[KeyRecord], id: &str, sha256: String, grace_secs: u64, current: Option<&str>, facts: &Facts, now_ms: i64) -> (Vec<Write>, Reply) {
    change(records, id, facts, now_ms, |r| keys::rotate_from(r, sha256, grace_secs, current, now_ms))
}

/// `PATCH /v1/keys/{id}`.
pub fn set_limits(records: &[KeyRecord], id: &str, patch: &Value, facts: &Facts, now_ms: i64) -> (Vec<Write>, Reply) {
    change(records, id, facts, now_ms, |r| keys::set_limits(r, patch, now_ms))
}

/// `GET /v1/keys`: the `GATEWAY_KEYS` keys first (in their order), then the
/// runtime keys (in the order of `records`, which the registry keeps in the
/// order they were made), each with its facts.
pub fn list(records: &[KeyRecord], static_keys: &[Credential], facts_of: &dyn Fn(&str) -> Facts, now_ms: i64) -> Reply {
    let mut views: Vec<String> = static_keys.iter().map(|c| keys::static_view(c, &facts_of(&c.id), now_ms)).collect();
    views.extend(records.iter().map(|r| keys::view(r, &facts_of(&r.id), now_ms)));
    Reply::body(keys::list_body(&views))
}

/// The runtime key record a reservation for key `id` goes by: none for a
/// `GATEWAY_KEYS` key (`from_static`), whatever runtime key shares its id
/// (the static key changes only by a redeploy; its cap is its own).
pub fn record_of<'a>(records: &'a [KeyRecord], id: &str, from_static: bool) -> Option<&'a KeyRecord> {
    records.iter().find(|r| r.id == id).filter(|_| !from_static)
}

/// Before a placeOrder is sent: take its hold, or refuse it over the cap
/// (recording the refusal). A runtime key's cap is its record's (the
/// isolate's copy may be seconds old), and a key revoked or expired since
/// the isolate's copy was made is refused here. `(placed_today,
/// reserved_today)`: the key's placed and held amounts of the day; `other_body()`: does the key hold
/// another order body under this `poNumber`? (Asked only over the cap,
/// where that conflict is the answer: `409 idempotency_conflict`.)
pub fn reserve(
    record: Option<&KeyRecord>,
    attempt: &Attempt,
    static_cap: Option<i64>,
    existing: Option<&Hold>,
    (placed_today, reserved_today): (i64, i64),
    other_body: &dyn Fn() -> bool,
    now_ms: i64,
) -> (Vec<Write>, Reply) {
    let refuse = |error: ApiError, outcome: Outcome| {
        let result = audit::Result { outcome, status: error.status, error: Some(error.code.as_str().to_owned()), order_id: None, reconciled: false };
        let entry = audit_write(attempt, &result, now_ms);
        (vec![entry], Reply::refusal(error))
    };
    if let Some(r) = record.filter(|r| keys::key_state(r, now_ms) != "active") {
        let e = ApiError::unauthorized(format!("this gateway key is {}", keys::key_state(r, now_ms)));
        return refuse(e, Outcome::Error);
    }
    let cap = record.map_or(static_cap, |r| r.limits.order_amount_per_day);
    match quota::reserve(existing, placed_today, reserved_today, attempt.amount, cap, now_ms) {
        // Over the cap, with another body of this key already under the
        // poNumber: the order ledger would refuse it anyway, and that is
        // the answer to fix (a new poNumber), not a wait until tomorrow.
        (Reservation::Refused(_), _) if other_body() => refuse(ApiError::idempotency_conflict(), Outcome::IdempotencyConflict),
        (Reservation::Refused(e), _) => refuse(e, Outcome::QuotaExceeded),
        (Reservation::Granted { created, held }, hold) => {
            let writes = hold.map(|h| hold_write(attempt, HoldChange::Put(h))).into_iter().collect();
            (writes, Reply { created, held, ..Reply::default() })
        }
    }
}

fn hold_write(a: &Attempt, change: HoldChange) -> Write {
    Write::Hold { key: a.key.clone(), po: a.po_number.clone(), fp: a.fingerprint.clone(), change }
}

/// After a placeOrder: settle its hold (the amount counted once, when the
/// order is known to be placed) and record the attempt. `usage_of(day)`:
/// the key's stored usage of a day.
pub fn settle(attempt: &Attempt, result: &audit::Result, held: bool, created: bool, existing: Option<&Hold>, usage_of: &dyn Fn(i64) -> Usage, now_ms: i64) -> Vec<Write> {
    let s = quota::settle(existing, held, created, result.outcome.fate(), attempt.amount, now_ms);
    let mut writes = Vec::new();
    if s.hold != HoldChange::Keep {
        writes.push(hold_write(attempt, s.hold));
    }
    if let Some((day, amount)) = s.counted {
        writes.push(Write::Usage { key: attempt.key.clone(), day, usage: usage_of(day).with_order(amount) });
    }
    writes.push(audit_write(attempt, result, now_ms));
    writes
}

/// How one try at the settling call ([`settle`], sent by the worker after
/// a placeOrder's answer has gone) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleTry {
    /// The registry answered without an error: settled.
    Settled,
    /// The registry answered with an error (its storage).
    Refused,
    /// No answer came (the registry may be restarting in a deploy).
    NoAnswer,
}

/// What the worker does after a try at the settling call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleNext {
    /// Nothing more: the hold and the audit entry are written.
    Done,
    /// Try again after this pause.
    Retry {
        /// Milliseconds to wait first.
        after_ms: i64,
    },
    /// Stop, and say loudly that the key's usage and audit trail miss the
    /// order (`registry_settle_failed`), with this reason.
    GiveUp {
        /// Why, in words for the log line.
        why: &'static str,
    },
}

/// Tries at a settling call that gets no answer: 3, 1 s then 2 s apart
/// (all within `waitUntil`'s time).
pub const SETTLE_ATTEMPTS: u32 = 3;
const SETTLE_PAUSE_MS: i64 = 1_000;

/// After the `tried`-th try (counting from 1) ended as `last`: done, try
/// again, or give up. Only a call with no answer is sent again (the
/// registry takes each request id once, so a settle that was done but
/// whose answer was lost changes nothing the second time); an error the
/// registry answers is not, since its writes may be partly done and a
/// second settle would count the hold's request out twice.
pub fn settle_retry(last: SettleTry, tried: u32) -> SettleNext {
    match last {
        SettleTry::Settled => SettleNext::Done,
        SettleTry::Refused => SettleNext::GiveUp { why: "the registry answered with an error" },
        SettleTry::NoAnswer if tried < SETTLE_ATTEMPTS => SettleNext::Retry { after_ms: SETTLE_PAUSE_MS * i64::from(tried.max(1)) },
        SettleTry::NoAnswer => SettleNext::GiveUp { why: "no answer" },
    }
}

/// The order ledger settled on its own the fate of an order a request
/// left unknown (`attempt`: the order, with no key and the settlement's
/// request id; `result`: a `reconciled_*` outcome). Every key holding the
/// order (`holds`: key id and hold, for this `poNumber` and fingerprint)
/// has its hold settled by `quota::reconcile` (placed: counted once; else
/// freed) and gets an audit entry, under the settlement's request id (with
/// `:<key id>` when more than one key holds the order, as each entry needs
/// an id of its own). A key without a cap holds an order of unknown fate
/// too (to count it once), so it is settled the same way. No hold, no key
/// to tell: nothing is written. `usage_of(key, day)`: stored usage.
pub fn reconciled(attempt: &Attempt, result: &audit::Result, holds: &[(String, Hold)], usage_of: &dyn Fn(&str, i64) -> Usage, now_ms: i64) -> Vec<Write> {
    let placed = result.outcome.fate() == quota::Fate::Placed;
    let mut writes = Vec::new();
    for (key, hold) in holds {
        let request_id = if holds.len() > 1 { format!("{}:{key}", attempt.request_id) } else { attempt.request_id.clone() };
        let a = Attempt { key: key.clone(), request_id, amount: hold.amount, ..attempt.clone() };
        let s = quota::reconcile(hold, placed);
        if s.hold != HoldChange::Keep {
            writes.push(hold_write(&a, s.hold));
        }
        if let Some((day, amount)) = s.counted {
            writes.push(Write::Usage { key: key.clone(), day, usage: usage_of(key, day).with_order(amount) });
        }
        writes.push(audit_write(&a, result, now_ms));
    }
    writes
}

/// Does the ledger know nothing of the order a look asked about (no
/// record, nothing in flight)? For a hold whose requests may be gone, two
/// things follow. The order is asked of its ledger under its name before
/// per-account names too (`wire::ledger::legacy_object_name`): a request
/// that died across the upgrade deploy may have placed it through the
/// older object, and releasing its hold would leave the day's count short
/// by it; that object's answer then stands. And "nothing" settles the hold
/// only when a look at least [`NOTHING_RECHECK_MS`] earlier found nothing
/// of the same hold too ([`nothing_settles`]).
pub fn ledger_knows_nothing(reply: &LedgerReply) -> bool {
    reply.fate == Fate::Unknown && crate::ledger::found_nothing(&reply.outcome)
}

/// How long a hold's look must keep finding nothing before the hold is
/// released as never sent: 30 s. A request alive between its reserve and
/// the ledger's first sight of it is "nothing" to a look for that moment
/// (milliseconds); released then, its amount would be free for another
/// order while this one is placed, and the cap passed.
pub const NOTHING_RECHECK_MS: i64 = 30_000;

/// Must a look's reply be seen twice, [`NOTHING_RECHECK_MS`] apart, before
/// it settles a hold ([`nothing_settles`])? "Nothing"
/// ([`ledger_knows_nothing`]), and the mark that nothing was placed: the
/// mark is an earlier attempt's, while a retry of the same body may be
/// between its new reservation and the ledger, to be placed once there
/// (its hold dropped now, the amount would be free for another order).
pub fn needs_second_look(reply: &LedgerReply) -> bool {
    crate::ledger::found_nothing_placed(&reply.outcome)
}

/// Does a look that found nothing ([`needs_second_look`]) settle the
/// hold now? Only when an earlier look found nothing of the same hold,
/// unchanged, at `first_nothing_ms`, at least [`NOTHING_RECHECK_MS`] ago.
/// Otherwise the hold waits for a look that much later.
pub fn nothing_settles(first_nothing_ms: Option<i64>, now_ms: i64) -> bool {
    first_nothing_ms.is_some_and(|t| now_ms.saturating_sub(t) >= NOTHING_RECHECK_MS)
}

// ------------------------------------------------------------ the alarm

/// How often the alarm prunes while anything is kept: hourly.
pub const PRUNE_EVERY_MS: i64 = 3_600_000;

/// How soon after a reservation refused over a spend cap the alarm looks at
/// holds whose requests may be gone: a minute (such holds may be what fills
/// the cap; the hourly look would keep the key refused for up to an hour).
pub const LOOK_AFTER_REFUSAL_MS: i64 = 60_000;

/// How many holds one alarm asks the ledgers about (each look waits at most
/// `ledger::LOOK_WAIT_MS`); the rest wait for the next alarm.
pub const LOOKS_PER_ALARM: usize = 20;

/// After a refusal over a spend cap, with the alarm set for `alarm_at_ms`
/// (`None`: none): bring it forward to [`LOOK_AFTER_REFUSAL_MS`] from now?
/// Only when it is not due sooner.
pub fn look_sooner(alarm_at_ms: Option<i64>, now_ms: i64) -> bool {
    alarm_at_ms.is_none_or(|at| at > now_ms.saturating_add(LOOK_AFTER_REFUSAL_MS))
}

/// How soon the alarm comes again when a run left holds unasked (more
/// than [`LOOKS_PER_ALARM`]): five minutes, so that the leftovers of an
/// outage (up to 240 holds) are all asked about within the hour without
/// a look every minute at holds that stay pending.
pub const MORE_TO_LOOK_MS: i64 = 300_000;

/// What an alarm's run found, for [`next_alarm_in`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlarmRun {
    /// A hold waits for a second look ([`NOTHING_RECHECK_MS`]).
    pub recheck: bool,
    /// Holds were left unasked ([`MORE_TO_LOOK_MS`]).
    pub more_to_look: bool,
    /// The tables still hold something to prune one day ([`PRUNE_EVERY_MS`]).
    pub rows_left: bool,
}

/// When the alarm comes next, in ms from now, after a run (`None`: leave
/// the alarm as it is; with none set, none until a request sets one). An
/// alarm set while the run went on (`set_in`, ms from now: a refusal over
/// a spend cap brought one forward, [`look_sooner`]) is kept when it comes
/// no later: a run takes up to 20 looks of 10 s, and setting the hourly
/// alarm after it would keep that key refused for an hour.
pub fn next_alarm_in(run: AlarmRun, set_in: Option<i64>) -> Option<i64> {
    let wanted = if run.recheck {
        Some(NOTHING_RECHECK_MS)
    } else if run.more_to_look {
        Some(MORE_TO_LOOK_MS)
    } else {
        run.rows_left.then_some(PRUNE_EVERY_MS)
    };
    if set_in.is_some_and(|s| wanted.is_none_or(|w| s <= w)) {
        None
    } else {
        wanted
    }
}

/// What the alarm deletes at `now_ms`: audit entries older than the
/// retention (`at_ms` before the first number) and usage and holds of days
/// before yesterday (`day` before the second): no answer needs them (a
/// day's usage and holds count only on their day; yesterday's stay for an
/// order settled just after midnight UTC). No retention (`None`: the
/// configuration does not load) deletes no audit entry: a default could be
/// shorter than the retention configured, and the entries would be gone
/// for good before the typo is mended.
pub fn prune_before(now_ms: i64, retention_secs: Option<u32>) -> (Option<i64>, i64) {
    let audit = retention_secs.map(|secs| now_ms.saturating_sub(crate::time::secs_to_ms(u64::from(secs))));
    (audit, day_of(now_ms) - 1)
}

/// Which holds an alarm asks the orders' ledgers about, in the order asked,
/// at most [`LOOKS_PER_ALARM`], out of `holds` (id and hold). Only holds of
/// `today` and the day before that are not committed (a committed order
/// is counted; nothing can change it); first those waiting for a second look
/// (`awaited`: their first look found nothing, [`nothing_settles`]), then
/// those with requests on them (`holders > 0`: they may have died between
/// reserve and settle), then those with none (`pending`: an answer was lost
/// and the ledger may never have had the order, or its `reconciled` word
/// never reached the registry), the last group taken round-robin: after
/// the id `after` (where the previous alarm stopped in it), so that more
/// than [`LOOKS_PER_ALARM`] of them cannot keep the later ones from ever
/// being asked. Returns the holds and the new `after`.
pub fn suspects<T: Ord + Clone>(holds: Vec<(T, Hold)>, today: i64, awaited: &[T], after: Option<&T>) -> (Vec<(T, Hold)>, Option<T>) {
    // (group, in the last group: already passed this round).
    let group = |(id, h): &(T, Hold)| {
        if awaited.contains(id) {
            (0, false)
        } else if h.holders > 0 {
            (1, false)
        } else {
            (2, after.is_some_and(|a| id <= a))
        }
    };
    let mut left: Vec<(T, Hold)> = holds.into_iter().filter(|(_, h)| h.state != HoldState::Committed && h.day >= today - 1).collect();
    // The first LOOKS_PER_ALARM in order, picked one by one (a general sort
    // would add KBs to the worker's wasm).
    let mut chosen = Vec::new();
    while chosen.len() < LOOKS_PER_ALARM {
        let Some(i) = (0..left.len()).min_by(|&a, &b| group(&left[a]).cmp(&group(&left[b])).then_with(|| left[a].0.cmp(&left[b].0))) else { break };
        chosen.push(left.swap_remove(i));
    }
    let last_idle = chosen.iter().rev().find(|s| group(s).0 == 2).map(|(id, _)| id.clone());
    (chosen, last_idle.or_else(|| after.cloned()))
}

/// Does a look that found no record and nothing in flight prove the
/// order was never sent? Only while the ledger keeps an order's record
/// (`ORDER_RETENTION_SECS` from when it became `done`, after the
/// reservation) longer than a hold waits for its looks: holds of today
/// and yesterday (UTC) are looked at, so up to two days. Under a shorter
/// retention a placed order's record may already be gone, and the hold
/// counts as placed: a spend cap errs toward refusing, never toward
/// passing its limit.
pub fn nothing_proves_unsent(retention_secs: u32) -> bool {
    retention_secs >= 2 * 86_400
}

/// A hold of `key` for the order (`po`, `fp`) whose requests may all be
/// gone, once the order's ledger has answered a look (`reply`): settled by
/// `quota::abandoned` (a look that found no record and nothing in flight:
/// the order was never sent, where `retention_secs` lets "nothing" say so:
/// [`nothing_proves_unsent`]; where it does not, "nothing" and another
/// body's record or call, `409 idempotency_conflict`, spend the amount:
/// this body's record may be the one retention dropped, and the look cannot
/// tell whether the other body's order was placed, which would rule this
/// one out). `usage`: the key's stored usage of the
/// hold's day. No audit entry: the attempt's own request id died with it.
pub fn abandoned(key: &str, po: &str, fp: &str, hold: &Hold, reply: &LedgerReply, usage: Usage, retention_secs: u32) -> Vec<Write> {
    let nothing = crate::ledger::found_nothing(&reply.outcome);
    // Another body's record or call under the poNumber (`409
    // idempotency_conflict`, "not placed" for this body) says as little as
    // "nothing" does where the retention may have dropped this order's
    // record first: this body's order may be placed all the same.
    let other_body = matches!(&reply.outcome, crate::wire::ledger::Outcome::Error { error, .. } if error.code == crate::errors::ErrorCode::IdempotencyConflict);
    let known = match reply.fate {
        Fate::Placed => quota::Known::Placed,
        Fate::Unknown if !nothing => quota::Known::Pending,
        Fate::Unknown if !nothing_proves_unsent(retention_secs) => quota::Known::Placed,
        Fate::NotPlaced if other_body && !nothing_proves_unsent(retention_secs) => quota::Known::Placed,
        _ => quota::Known::NotPlaced,
    };
    let s = quota::abandoned(hold, known);
    let mut writes = Vec::new();
    if s.hold != HoldChange::Keep {
        writes.push(Write::Hold { key: key.to_string(), po: po.to_string(), fp: fp.to_string(), change: s.hold });
    }
    if let Some((day, amount)) = s.counted {
        writes.push(Write::Usage { key: key.to_string(), day, usage: usage.with_order(amount) });
    }
    writes
}

fn audit_write(attempt: &Attempt, result: &audit::Result, now_ms: i64) -> Write {
    entry_write(attempt, result, now_ms, false)
}

fn entry_write(attempt: &Attempt, result: &audit::Result, now_ms: i64, replace: bool) -> Write {
    Write::Audit { at_ms: now_ms, key: attempt.key.clone(), request_id: attempt.request_id.clone(), entry: audit::entry(attempt, now_ms, result), replace }
}

/// A placeOrder [`reserve`] refused (its refusal recorded then), or left
/// without an answer (nothing recorded), that the order ledger answered
/// instead, the retry of an order it holds (the
/// stored answer replayed, a call in flight joined, `409 order_in_progress`
/// or another body's conflict): its entry says what the caller got.
pub fn record(attempt: &Attempt, result: &audit::Result, now_ms: i64) -> Vec<Write> {
    vec![entry_write(attempt, result, now_ms, true)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::hash_key;
    use crate::errors::ErrorCode;
    use crate::quota::{Counter, HoldState, Limits};
    use crate::time::minute_of;
    use serde_json::json;

    const T0: i64 = 1_795_626_582_000;
    const M: i64 = 1_000_000;
    /// The default `ORDER_RETENTION_SECS`.
    const KEEP: u32 = crate::config::DEFAULT_ORDER_RETENTION_SECS;

    fn facts() -> Facts {
        Facts { usage: Usage::default(), last_used_ms: None, reserved: 0 }
    }

    fn new(id: &str, limits: Limits) -> NewKey {
        NewKey { id: id.into(), scopes: vec!["orders:write".into()], expires_at_ms: None, limits }
    }

    fn made(id: &str, limits: Limits) -> KeyRecord {
        keys::create(&[], &[], new(id, limits), hash_key(id), T0).unwrap()
    }

    fn attempt(key: &str, amount: i64) -> Attempt {
        Attempt { key: key.into(), po_number: "po-1".into(), fingerprint: "fp".into(), product_id: "10100".into(), quantity: 1, amount, request_id: "rid".into() }
    }

    #[test]
    fn a_settle_is_retried_only_without_an_answer_and_at_most_three_times() {
        assert_eq!(settle_retry(SettleTry::Settled, 1), SettleNext::Done);
        assert_eq!(settle_retry(SettleTry::Settled, 3), SettleNext::Done);
        // An error the registry answered is never sent again, on any try.
        for tried in 1..=3 {
            assert_eq!(settle_retry(SettleTry::Refused, tried), SettleNext::GiveUp { why: "the registry answered with an error" });
        }
        // No answer: 1 s, then 2 s, then give up after the third try.
        assert_eq!(settle_retry(SettleTry::NoAnswer, 1), SettleNext::Retry { after_ms: 1_000 });
        assert_eq!(settle_retry(SettleTry::NoAnswer, 2), SettleNext::Retry { after_ms: 2_000 });
        assert_eq!(settle_retry(SettleTry::NoAnswer, SETTLE_ATTEMPTS), SettleNext::GiveUp { why: "no answer" });
        assert_eq!(settle_retry(SettleTry::NoAnswer, SETTLE_ATTEMPTS + 1), SettleNext::GiveUp { why: "no answer" });
        // The schedule ends within waitUntil's 30 s.
        let mut waited = 0;
        let mut tried = 1;
        while let SettleNext::Retry { after_ms } = settle_retry(SettleTry::NoAnswer, tried) {
            waited += after_ms;
            tried += 1;
        }
        assert_eq!((tried, waited), (3, 3_000));
    }

    #[test]
    fn sync_counts_usage_and_hands_out_the_directory_when_it_changed() {
        let records = vec![made("a", Limits::default())];
        let d = UsageDelta { id: "a".into(), requests: 3, minute: minute_of(T0), minute_requests: 2, last_used_ms: T0 };
        let idle = UsageDelta { id: "b".into(), ..UsageDelta::default() };
        let stored = |_: &str, _: i64| Usage { requests: 10, minute: Counter { minute: minute_of(T0), count: 5 }, ..Usage::default() };
        let (writes, reply) = sync(&records, "v9", Some("v8"), &[d, idle], &stored, T0);
        let usage = Usage { requests: 13, minute: Counter { minute: minute_of(T0), count: 7 }, ..Usage::default() };
        assert_eq!(writes, vec![Write::Usage { key: "a".into(), day: day_of(T0), usage }, Write::Seen { key: "a".into(), at_ms: T0 }]);
        assert_eq!(reply.counts, vec![UsageDelta { id: "a".into(), minute: minute_of(T0), minute_requests: 7, ..UsageDelta::default() }]);
        assert_eq!((reply.version.as_deref(), reply.directory.as_ref().map(Vec::len)), (Some("v9"), Some(1)));
        let (writes, reply) = sync(&records, "v9", Some("v9"), &[], &stored, T0);
        assert!(writes.is_empty());
        assert_eq!(reply.directory, None, "up to date: no directory");
    }

    /// A report is counted in the day of its last request, on that key's
    /// stored usage of that day, and the key was last seen then, not when
    /// the sync arrived.
    #[test]
    fn sync_counts_a_report_in_its_own_day_on_its_own_key() {
        let records = vec![made("a", Limits::default())];
        let y = T0 - 86_400_000;
        let d = UsageDelta { id: "a".into(), requests: 3, minute: minute_of(y), minute_requests: 1, last_used_ms: y };
        let stored = |id: &str, day: i64| if (id, day) == ("a", day_of(y)) { Usage { requests: 10, ..Usage::default() } } else { Usage::default() };
        let (w, _) = sync(&records, "v9", Some("v9"), &[d], &stored, T0);
        assert!(
            matches!(&w[..], [Write::Usage { key, day, usage }, Write::Seen { at_ms, .. }] if key == "a" && *day == day_of(y) && usage.requests == 13 && *at_ms == y),
            "{w:?}"
        );
    }

    #[test]
    fn admin_changes_write_the_record_and_answer_its_view() {
        let (writes, reply) = create(&[], &[], new("a", Limits::default()), hash_key("k"), &facts(), T0);
        let Some(Write::Key(rec)) = writes.first() else { panic!("{writes:?}") };
        assert_eq!(rec.id, "a");
        let view: Value = serde_json::from_str(reply.body.as_deref().unwrap()).unwrap();
        assert_eq!((view["id"].as_str(), view["state"].as_str()), (Some("a"), Some("active")));
        let records = vec![rec.clone()];
        let statics = vec![Credential { id: "ops".into(), sha256: String::new(), scopes: vec!["*".into()], limits: Limits::default(), until_ms: None }];
        let (w, r) = create(&records, &statics, new("ops", Limits::default()), hash_key("k2"), &facts(), T0);
        assert!(w.is_empty() && r.error.as_ref().unwrap().message.starts_with("id is already used"));
        let (w, r) = revoke(&records, "a", &facts(), T0 + 1);
        assert!(matches!(&w[..], [Write::Key(k)] if k.revoked_at_ms == Some(T0 + 1)));
        assert!(r.body.unwrap().contains(r#""state":"revoked""#));
        let (w, r) = rotate(&records, "a", hash_key("k3"), 60, None, &facts(), T0 + 1);
        assert!(matches!(&w[..], [Write::Key(k)] if k.sha256 == hash_key("k3")));
        assert!(r.body.is_some());
        // Naming a key the record never had: refused, nothing written.
        let (w, r) = rotate(&records, "a", hash_key("k4"), 60, Some(&hash_key("stranger")), &facts(), T0 + 1);
        assert!(w.is_empty() && r.error.unwrap().status == 400);
        let (w, r) = set_limits(&records, "a", &json!({"order_amount_per_day": 5}), &facts(), T0);
        assert!(matches!(&w[..], [Write::Key(k)] if k.limits.order_amount_per_day == Some(5 * M)));
        assert!(r.body.unwrap().contains(r#""order_amount_per_day":5"#));
        for (w, r) in [revoke(&records, "b", &facts(), T0), rotate(&records, "b", hash_key("x"), 1, None, &facts(), T0)] {
            assert!(w.is_empty());
            assert_eq!(r.error.unwrap().status, 404);
        }
        let list = list(&records, &statics, &|_| facts(), T0);
        let v: Value = serde_json::from_str(&list.body.unwrap()).unwrap();
        let ids: Vec<&str> = v["keys"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["ops", "a"]);
    }

    #[test]
    fn reserve_takes_a_hold_or_records_the_refusal() {
        let capped = made("k", Limits { order_amount_per_day: Some(100 * M), ..Limits::default() });
        let (w, r) = reserve(Some(&capped), &attempt("k", 60 * M), None, None, (0, 0), &|| unreachable!("asked only over the cap"), T0);
        assert_eq!((r.created, r.held, r.error), (true, true, None));
        assert_eq!(w, vec![Write::Hold { key: "k".into(), po: "po-1".into(), fp: "fp".into(), change: HoldChange::Put(Hold { day: day_of(T0), amount: 60 * M, holders: 1, state: HoldState::Held }) }]);
        // Over the record's cap, whatever the isolate passed.
        let (w, r) = reserve(Some(&capped), &attempt("k", 60 * M), Some(1000 * M), None, (60 * M, 0), &|| false, T0);
        let e = r.error.unwrap();
        assert_eq!(e.code, ErrorCode::QuotaExceeded);
        let [Write::Audit { entry, replace: false, .. }] = &w[..] else { panic!("{w:?}") };
        let v: Value = serde_json::from_str(entry).unwrap();
        assert_eq!((v["outcome"].as_str(), v["status"].as_u64(), v["po_number"].as_str()), (Some("quota_exceeded"), Some(429), Some("po-1")));
        // The retry of an order the ledger holds, answered by it instead:
        // the entry says what the caller got, in the refusal's place.
        let replayed = audit::Result { outcome: Outcome::Replayed, status: 200, error: None, order_id: Some("9001".into()), reconciled: false };
        let [Write::Audit { entry, replace: true, request_id, .. }] = &record(&attempt("k", 60 * M), &replayed, T0 + 5)[..] else { panic!() };
        let v: Value = serde_json::from_str(entry).unwrap();
        assert_eq!((v["outcome"].as_str(), v["status"].as_u64(), v["order_id"].as_str()), (Some("replayed"), Some(200), Some("9001")));
        assert_eq!(request_id, &attempt("k", 60 * M).request_id, "the same request's entry");
        assert!(e.retry_after_secs.unwrap() > 90, "placed: the next UTC day");
        // Over it by holds alone: asked again after the alarm's look.
        let (_, r) = reserve(Some(&capped), &attempt("k", 60 * M), None, None, (0, 60 * M), &|| false, T0);
        assert_eq!(r.error.unwrap().retry_after_secs, Some(quota::UNSETTLED_RETRY_SECS));
        assert!(quota::UNSETTLED_RETRY_SECS as i64 * 1000 > LOOK_AFTER_REFUSAL_MS, "after the look a refusal brings forward");
        // A static key: the cap it came with.
        let (_, r) = reserve(None, &attempt("ops", 60 * M), Some(50 * M), None, (0, 0), &|| false, T0);
        assert_eq!(r.error.unwrap().code, ErrorCode::QuotaExceeded);
        // A key revoked since the isolate's copy: refused and recorded.
        let revoked = [keys::revoke(&capped, T0)];
        let (w, r) = reserve(record_of(&revoked, "k", false), &attempt("k", M), None, None, (0, 0), &|| false, T0);
        assert_eq!(r.error.unwrap().status, 401);
        assert!(matches!(&w[..], [Write::Audit { .. }]));
        // A GATEWAY_KEYS key of the same id: its own cap, not the runtime record's state.
        assert!(record_of(&revoked, "other", false).is_none());
        let (_, r) = reserve(record_of(&revoked, "k", true), &attempt("k", 60 * M), Some(50 * M), None, (0, 0), &|| false, T0);
        assert_eq!(r.error.unwrap().code, ErrorCode::QuotaExceeded, "the static key's 50, not revoked");
        let (_, r) = reserve(record_of(&revoked, "k", true), &attempt("k", 40 * M), Some(50 * M), None, (0, 0), &|| false, T0);
        assert_eq!((r.created, r.error), (true, None));
        // The same order again: joins the hold.
        let held = Hold { day: day_of(T0), amount: 60 * M, holders: 1, state: HoldState::Pending };
        let (w, r) = reserve(Some(&capped), &attempt("k", 60 * M), None, Some(&held), (100 * M, 0), &|| false, T0);
        assert_eq!((r.created, r.held, r.error), (false, true, None));
        assert!(matches!(&w[..], [Write::Hold { change: HoldChange::Put(Hold { holders: 2, .. }), .. }]));
        // Over the cap with another body under this poNumber: the conflict.
        let (w, r) = reserve(Some(&capped), &attempt("k", 60 * M), None, None, (60 * M, 0), &|| true, T0);
        assert_eq!(r.error.unwrap().code, ErrorCode::IdempotencyConflict);
        let [Write::Audit { entry, .. }] = &w[..] else { panic!("{w:?}") };
        assert!(entry.contains("\"outcome\":\"idempotency_conflict\""), "{entry}");
        // ... under the cap: granted (the ledger answers the conflict).
        let (_, r) = reserve(Some(&capped), &attempt("k", 10 * M), None, None, (60 * M, 0), &|| true, T0);
        assert_eq!((r.created, r.error), (true, None));
    }

    #[test]
    fn settle_counts_once_and_always_records() {
        let a = attempt("k", 25 * M);
        let placed = audit::Result { outcome: Outcome::Placed, status: 200, error: None, order_id: Some("1".into()), reconciled: false };
        let held = Hold { day: day_of(T0), amount: 25 * M, holders: 1, state: HoldState::Held };
        let before = Usage { orders: 2, amount: 10 * M, ..Usage::default() };
        let w = settle(&a, &placed, true, true, Some(&held), &|_| before, T0);
        assert_eq!(w.len(), 3);
        assert_eq!(w[0], hold_write(&a, HoldChange::Put(Hold { holders: 0, state: HoldState::Committed, ..held })));
        assert_eq!(w[1], Write::Usage { key: "k".into(), day: day_of(T0), usage: Usage { orders: 3, amount: 35 * M, ..Usage::default() } });
        assert!(matches!(&w[2], Write::Audit { entry, .. } if entry.contains(r#""outcome":"placed""#)));
        // A replay of the committed order: recorded, nothing counted.
        let replayed = audit::Result { outcome: Outcome::Replayed, ..placed };
        let done = Hold { holders: 0, state: HoldState::Committed, ..held };
        let w = settle(&a, &replayed, false, false, Some(&done), &|_| before, T0);
        assert!(matches!(&w[..], [Write::Audit { entry, .. }] if entry.contains(r#""outcome":"replayed""#)));
        // A refusal frees the hold.
        let refused = audit::Result { outcome: Outcome::Refused, status: 422, error: None, order_id: None, reconciled: false };
        let w = settle(&a, &refused, true, true, Some(&held), &|_| before, T0);
        assert_eq!(w[0], hold_write(&a, HoldChange::Drop));
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn reconciled_settles_every_holder_and_records_it() {
        let day = day_of(T0);
        let order = Attempt { key: String::new(), request_id: "reconcile:po-1:5".into(), ..attempt("", 60 * M) };
        let result = |outcome| audit::Result { outcome, status: 200, error: None, order_id: Some("9".into()), reconciled: true };
        let pending = Hold { day, amount: 60 * M, holders: 0, state: HoldState::Pending };
        let before = Usage { orders: 2, amount: 25 * M, ..Usage::default() };
        let usage_of = |_: &str, _: i64| before;
        let entry_of = |w: &Write| match w {
            Write::Audit { key, request_id, entry, .. } => (key.clone(), request_id.clone(), serde_json::from_str::<Value>(entry).unwrap()),
            other => panic!("{other:?}"),
        };
        // Placed: committed, counted once, recorded under the settlement's id.
        let w = reconciled(&order, &result(Outcome::ReconciledPlaced), &[("k".into(), pending)], &usage_of, T0);
        assert_eq!(w[0], Write::Hold { key: "k".into(), po: "po-1".into(), fp: "fp".into(), change: HoldChange::Put(Hold { state: HoldState::Committed, ..pending }) });
        assert_eq!(w[1], Write::Usage { key: "k".into(), day, usage: Usage { orders: 3, amount: 85 * M, ..Usage::default() } });
        let (key, rid, e) = entry_of(&w[2]);
        assert_eq!((key.as_str(), rid.as_str()), ("k", "reconcile:po-1:5"));
        assert_eq!((e["outcome"].as_str(), e["order_id"].as_str(), e["reconciled"].as_bool(), e["amount"].as_f64()), (Some("reconciled_placed"), Some("9"), Some(true), Some(60.0)));
        assert_eq!(w.len(), 3);
        // Told again (a retry), or a caller's retry committed it first: only the entry (ignored if it exists).
        let committed = Hold { state: HoldState::Committed, ..pending };
        let w = reconciled(&order, &result(Outcome::ReconciledPlaced), &[("k".into(), committed)], &usage_of, T0);
        assert!(matches!(&w[..], [Write::Audit { .. }]), "{w:?}");
        // Failed or not placed: freed.
        for outcome in [Outcome::ReconciledFailed, Outcome::ReconciledNotPlaced] {
            let w = reconciled(&order, &result(outcome), &[("k".into(), pending)], &usage_of, T0);
            assert_eq!(w[0], Write::Hold { key: "k".into(), po: "po-1".into(), fp: "fp".into(), change: HoldChange::Drop });
            assert_eq!(entry_of(&w[1]).2["outcome"].as_str(), Some(outcome.as_str()));
            assert_eq!(w.len(), 2, "nothing counted");
        }
        // A request still holding it: back to held, freed by its own settle.
        let in_flight = Hold { holders: 1, ..pending };
        let w = reconciled(&order, &result(Outcome::ReconciledNotPlaced), &[("k".into(), in_flight)], &usage_of, T0);
        assert_eq!(w[0], Write::Hold { key: "k".into(), po: "po-1".into(), fp: "fp".into(), change: HoldChange::Put(Hold { state: HoldState::Held, ..in_flight }) });
        // Two keys holding the one order: each settled, each entry an id of its own.
        let w = reconciled(&order, &result(Outcome::ReconciledPlaced), &[("a".into(), pending), ("b".into(), committed)], &usage_of, T0);
        let ids: Vec<String> = w.iter().filter(|w| matches!(w, Write::Audit { .. })).map(|w| entry_of(w).1).collect();
        assert_eq!(ids, ["reconcile:po-1:5:a", "reconcile:po-1:5:b"]);
        assert_eq!(w.iter().filter(|w| matches!(w, Write::Usage { .. })).count(), 1, "b was counted already");
        // Nobody holds it: nothing to write.
        assert!(reconciled(&order, &result(Outcome::ReconciledPlaced), &[], &usage_of, T0).is_empty());
    }

    /// Each key holding a reconciled order is counted on its own stored
    /// usage, for the amount its hold counted, and its entry is dated when
    /// the registry heard it.
    #[test]
    fn reconciled_counts_each_key_on_its_own_usage_and_hold() {
        let day = day_of(T0);
        let order = Attempt { key: String::new(), request_id: "reconcile:po-1:5".into(), ..attempt("", 50 * M) };
        let result = audit::Result { outcome: Outcome::ReconciledPlaced, status: 200, error: None, order_id: Some("9".into()), reconciled: true };
        let pending = Hold { day, amount: 60 * M, holders: 0, state: HoldState::Pending };
        let usage_of = |key: &str, _: i64| if key == "b" { Usage { orders: 7, amount: M, ..Usage::default() } } else { Usage { orders: 2, amount: 25 * M, ..Usage::default() } };
        let w = reconciled(&order, &result, &[("a".into(), pending), ("b".into(), pending)], &usage_of, T0 + 5);
        let counted: Vec<(&str, u64, i64)> = w.iter().filter_map(|w| match w { Write::Usage { key, usage, .. } => Some((key.as_str(), usage.orders, usage.amount)), _ => None }).collect();
        assert_eq!(counted, [("a", 3, 85 * M), ("b", 8, 61 * M)]);
        for w in w.iter().filter(|w| matches!(w, Write::Audit { .. })) {
            let Write::Audit { at_ms, entry, .. } = w else { unreachable!() };
            assert_eq!(*at_ms, T0 + 5, "dated when heard");
            assert_eq!(serde_json::from_str::<Value>(entry).unwrap()["amount"].as_f64(), Some(60.0), "the hold's amount");
        }
    }

    /// A key expired since the isolate's copy was made is refused at its
    /// reservation too, in words that say so.
    #[test]
    fn reserve_refuses_a_key_expired_since() {
        let expiring = keys::create(&[], &[], NewKey { expires_at_ms: Some(T0 + 1_000), ..new("k", Limits::default()) }, hash_key("k"), T0).unwrap();
        let (w, r) = reserve(Some(&expiring), &attempt("k", M), None, None, (0, 0), &|| false, T0 + 1_000);
        let e = r.error.unwrap();
        assert_eq!((e.status, e.message.as_str()), (401, "this gateway key is expired"));
        assert!(matches!(&w[..], [Write::Audit { .. }]), "{w:?}");
    }

    #[test]
    fn abandoned_holds_settle_on_the_ledgers_word() {
        use crate::ledger::{found_not_placed, nothing_found};
        use crate::wire::ledger::Outcome as Said;
        let day = day_of(T0);
        let held = Hold { day, amount: 60 * M, holders: 1, state: HoldState::Held };
        let before = Usage { orders: 2, amount: 25 * M, ..Usage::default() };
        let reply = |outcome, fate| LedgerReply { outcome, replayed: true, fate };
        let answer = |status| Said::Answer { status, body: "{}".into(), reconciled: false, upstream_status: Some(status) };
        let error = |e: ApiError| Said::Error { error: e, upstream_status: None };
        let put = |h: Hold| Write::Hold { key: "k".into(), po: "po-1".into(), fp: "fp".into(), change: HoldChange::Put(h) };
        let drop = Write::Hold { key: "k".into(), po: "po-1".into(), fp: "fp".into(), change: HoldChange::Drop };
        // Placed: committed, counted once in the hold's day.
        let w = abandoned("k", "po-1", "fp", &held, &reply(answer(200), Fate::Placed), before, KEEP);
        assert_eq!(w, vec![
            put(Hold { holders: 0, state: HoldState::Committed, ..held }),
            Write::Usage { key: "k".into(), day, usage: Usage { orders: 3, amount: 85 * M, ..Usage::default() } },
        ]);
        // Failed, refused, the ledger's mark, or no record and nothing in
        // flight (never sent): freed.
        for r in [
            reply(answer(200), Fate::Failed),
            reply(answer(422), Fate::NotPlaced),
            reply(error(found_not_placed()), Fate::NotPlaced),
            reply(error(nothing_found()), Fate::Unknown),
        ] {
            assert_eq!(abandoned("k", "po-1", "fp", &held, &r, before, KEEP), vec![drop.clone()], "{r:?}");
        }
        // Pending (409 order_in_progress): still counted, no holders.
        let pending = reply(error(ApiError::order_in_progress("checking", 10)), Fate::Unknown);
        assert_eq!(abandoned("k", "po-1", "fp", &held, &pending, before, KEEP), vec![put(Hold { holders: 0, state: HoldState::Pending, ..held })]);
        // Already committed: nothing.
        let committed = Hold { state: HoldState::Committed, ..held };
        assert!(abandoned("k", "po-1", "fp", &committed, &reply(answer(200), Fate::Placed), before, KEEP).is_empty());
        for retention in [1, 3_600, 2 * 86_400 - 1] {
            assert!(abandoned("k", "po-1", "fp", &committed, &reply(error(nothing_found()), Fate::Unknown), before, retention).is_empty());
        }
    }

    /// `ORDER_RETENTION_SECS` shorter than the two days a hold waits for
    /// its looks: "nothing" may be a placed order's record gone, so the
    /// hold is committed and counted (the cap errs toward refusing); a
    /// record that answers still decides, and two days or more trusts
    /// "nothing" as never sent.
    #[test]
    fn nothing_counts_as_placed_where_the_ledger_forgets_sooner_than_holds_are_looked_at() {
        use crate::ledger::{found_not_placed, nothing_found};
        use crate::wire::ledger::Outcome as Said;
        let day = day_of(T0) - 1;
        let held = Hold { day, amount: 60 * M, holders: 1, state: HoldState::Held };
        let before = Usage { orders: 2, amount: 25 * M, ..Usage::default() };
        let reply = |outcome, fate| LedgerReply { outcome, replayed: true, fate };
        let error = |e: ApiError| Said::Error { error: e, upstream_status: None };
        let change = |c| Write::Hold { key: "k".into(), po: "po-1".into(), fp: "fp".into(), change: c };
        let nothing = reply(error(nothing_found()), Fate::Unknown);
        assert!(nothing_proves_unsent(2 * 86_400) && nothing_proves_unsent(KEEP));
        for retention in [1, 6, 3_600, 86_400, 2 * 86_400 - 1] {
            assert!(!nothing_proves_unsent(retention), "{retention}");
            assert_eq!(abandoned("k", "po-1", "fp", &held, &nothing, before, retention), vec![
                change(HoldChange::Put(Hold { holders: 0, state: HoldState::Committed, ..held })),
                Write::Usage { key: "k".into(), day, usage: Usage { orders: 3, amount: 85 * M, ..Usage::default() } },
            ], "{retention}");
            // The ledger's own word, where it has one, is unchanged.
            assert_eq!(abandoned("k", "po-1", "fp", &held, &reply(error(found_not_placed()), Fate::NotPlaced), before, retention), vec![change(HoldChange::Drop)]);
            let pending = reply(error(ApiError::order_in_progress("checking", 10)), Fate::Unknown);
            assert_eq!(abandoned("k", "po-1", "fp", &held, &pending, before, retention), vec![change(HoldChange::Put(Hold { holders: 0, state: HoldState::Pending, ..held }))]);
        }
        for retention in [2 * 86_400, 2 * 86_400 + 1, KEEP] {
            assert_eq!(abandoned("k", "po-1", "fp", &held, &nothing, before, retention), vec![change(HoldChange::Drop)], "{retention}");
        }
    }

    #[test]
    fn nothing_and_the_not_placed_mark_wait_for_a_second_look() {
        use crate::ledger::{found_not_placed, nothing_found};
        use crate::wire::ledger::Outcome as Said;
        let said = |e: ApiError, fate| LedgerReply { outcome: Said::Error { error: e, upstream_status: None }, replayed: false, fate };
        assert!(needs_second_look(&said(nothing_found(), Fate::Unknown)));
        for fate in [Fate::Unknown, Fate::NotPlaced] {
            assert!(needs_second_look(&said(found_not_placed(), fate)), "an earlier attempt's mark, a retry may be on its way");
        }
        assert!(!needs_second_look(&said(ApiError::order_in_progress("checking", 10), Fate::Unknown)));
        let placed = LedgerReply { outcome: Said::Answer { status: 200, body: "{}".into(), reconciled: false, upstream_status: Some(200) }, replayed: false, fate: Fate::Placed };
        assert!(!needs_second_look(&placed));
    }

    #[test]
    fn nothing_settles_a_hold_only_on_a_second_look_30_s_later() {
        assert!(!nothing_settles(None, T0), "the first look that finds nothing");
        assert!(!nothing_settles(Some(T0), T0 + NOTHING_RECHECK_MS - 1));
        assert!(nothing_settles(Some(T0), T0 + NOTHING_RECHECK_MS));
        assert!(nothing_settles(Some(T0), T0 + 3_600_000));
        assert!(!nothing_settles(Some(T0), T0 - 5), "a clock that went back: not yet");
    }

    #[test]
    fn the_alarm_comes_a_minute_after_a_refusal_30_s_after_nothing_else_hourly() {
        assert!(look_sooner(None, T0), "no alarm: set one");
        assert!(look_sooner(Some(T0 + 3_600_000), T0), "the hourly one: brought forward");
        assert!(!look_sooner(Some(T0 + LOOK_AFTER_REFUSAL_MS), T0), "due by then already");
        assert!(!look_sooner(Some(T0 + 5_000), T0), "due sooner");
        assert!(look_sooner(Some(T0 + LOOK_AFTER_REFUSAL_MS + 1), T0));
        let run = |recheck, more_to_look, rows_left| AlarmRun { recheck, more_to_look, rows_left };
        assert_eq!(next_alarm_in(run(true, false, false), None), Some(NOTHING_RECHECK_MS), "a second look is due, even with nothing else kept");
        assert_eq!(next_alarm_in(run(true, true, true), None), Some(NOTHING_RECHECK_MS));
        assert_eq!(next_alarm_in(run(false, true, true), None), Some(MORE_TO_LOOK_MS), "holds left unasked: again in 5 minutes");
        assert_eq!(next_alarm_in(run(false, false, true), None), Some(PRUNE_EVERY_MS));
        assert_eq!(next_alarm_in(run(false, false, false), None), None, "nothing kept: no alarm");
        assert_eq!(next_alarm_in(run(false, true, false), None), Some(MORE_TO_LOOK_MS), "holds left unasked, whatever else is kept");
        // An alarm a refusal over a cap set during the run is kept when it
        // comes no later than the one the run wants; a later one is replaced.
        assert_eq!(next_alarm_in(run(false, false, true), Some(LOOK_AFTER_REFUSAL_MS - 5_000)), None, "the minute's look stands");
        assert_eq!(next_alarm_in(run(false, false, false), Some(LOOK_AFTER_REFUSAL_MS)), None);
        assert_eq!(next_alarm_in(run(true, false, true), Some(NOTHING_RECHECK_MS)), None);
        assert_eq!(next_alarm_in(run(true, false, true), Some(LOOK_AFTER_REFUSAL_MS)), Some(NOTHING_RECHECK_MS), "a second look sooner");
        assert_eq!(next_alarm_in(run(false, false, true), Some(2 * PRUNE_EVERY_MS)), Some(PRUNE_EVERY_MS));
        assert_eq!(next_alarm_in(run(false, false, true), Some(-5)), None, "one overdue: it fires at once");
    }

    #[test]
    fn the_alarm_prunes_audit_past_the_retention_and_days_before_yesterday() {
        let (audit_before, day_before) = prune_before(T0, Some(2_592_000));
        assert_eq!(audit_before, Some(T0 - 2_592_000_000));
        assert_eq!(day_before, day_of(T0) - 1, "yesterday's usage and holds stay");
        assert_eq!(prune_before(5, Some(60)).0, Some(-59_995), "no wrap near the epoch");
        // Misconfigured: no audit entry goes (a year's retention is not cut
        // to a default month), usage and holds by the day as ever.
        assert_eq!(prune_before(T0, None), (None, day_of(T0) - 1));
    }

    #[test]
    fn the_alarm_asks_second_looks_first_then_holds_with_requests_then_the_rest_in_turn() {
        let today = day_of(T0);
        let h = |holders, state, day| Hold { day, amount: M, holders, state };
        let ids = |s: &[(u32, Hold)]| s.iter().map(|(id, _)| *id).collect::<Vec<_>>();
        let holds = vec![
            (1, h(0, HoldState::Pending, today)),
            (2, h(1, HoldState::Held, today)),
            (3, h(0, HoldState::Committed, today)),
            (4, h(2, HoldState::Committed, today)),
            (5, h(1, HoldState::Held, today - 2)),
            (6, h(0, HoldState::Pending, today - 1)),
            (7, h(1, HoldState::Pending, today - 1)),
            (8, h(1, HoldState::Held, today)),
        ];
        // Committed, or of a day before yesterday: never asked.
        let (s, after) = suspects(holds.clone(), today, &[], None);
        assert_eq!((ids(&s), after), (vec![2, 7, 8, 1, 6], Some(6)));
        // A hold waiting for its second look comes first, whatever its group.
        let (s, _) = suspects(holds.clone(), today, &[6, 99], None);
        assert_eq!(ids(&s), [6, 2, 7, 8, 1]);
        // No idle hold asked: the round stays where it was.
        let busy: Vec<(u32, Hold)> = holds.iter().copied().filter(|(_, x)| x.holders > 0).collect();
        assert_eq!(suspects(busy, today, &[], Some(&1)).1, Some(1));
        // More than one alarm's worth: those with requests fill it first;
        // the idle ones are taken in turn across alarms, none left out.
        let mut many: Vec<(u32, Hold)> = (100..130).map(|id| (id, h(0, HoldState::Pending, today))).collect();
        many.extend((200..205).map(|id| (id, h(1, HoldState::Held, today))));
        let (first, after) = suspects(many.clone(), today, &[], None);
        assert_eq!(first.len(), LOOKS_PER_ALARM);
        assert_eq!(ids(&first)[..6], [200, 201, 202, 203, 204, 100]);
        assert_eq!(after, Some(114));
        let (second, after) = suspects(many.clone(), today, &[], after.as_ref());
        assert_eq!(ids(&second)[5..], [115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128, 129]);
        assert_eq!(after, Some(129));
        let (third, _) = suspects(many, today, &[], after.as_ref());
        assert_eq!(ids(&third)[5..8], [100, 101, 102], "the round starts again");
    }

    #[test]
    fn only_a_ledger_that_knows_nothing_sends_the_look_to_the_older_name() {
        use crate::ledger::{found_not_placed, nothing_found};
        use crate::wire::ledger::Outcome as Said;
        let reply = |outcome, fate| LedgerReply { outcome, replayed: false, fate };
        let answer = |status| Said::Answer { status, body: "{}".into(), reconciled: false, upstream_status: Some(status) };
        let error = |e: ApiError| Said::Error { error: e, upstream_status: None };
        assert!(ledger_knows_nothing(&reply(error(nothing_found()), Fate::Unknown)), "no record, nothing in flight");
        for r in [
            reply(answer(200), Fate::Placed),
            reply(answer(200), Fate::Failed),
            reply(answer(422), Fate::NotPlaced),
            // Its own mark: this ledger refused or proved it, no older object sent it.
            reply(error(found_not_placed()), Fate::NotPlaced),
            reply(error(ApiError::order_in_progress("checking", 10)), Fate::Unknown),
            reply(error(ApiError::upstream_error("lost")), Fate::Unknown),
        ] {
            assert!(!ledger_knows_nothing(&r), "{r:?}");
        }
    }
}
