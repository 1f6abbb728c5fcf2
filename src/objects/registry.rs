//! `KeyRegistry`: caller keys made at runtime, per-key usage and spend, and
//! the audit trail of placeOrder attempts. One Durable Object per
//! deployment (named `plumgate_core::wire::registry::OBJECT_NAME`), so every
//! decision about a key, and every spend-cap check, has one strongly
//! consistent place. Its client ([`call`]) is below.
//!
//! Storage is the object's SQLite database (tables in `docs/storage.md`).
//! Every operation reads what it needs, asks the core
//! (`plumgate_core::registry`) and writes the changes through `commit`,
//! all in one synchronous step: SQL calls do not yield, so no other request
//! runs in between, and the runtime commits the step's writes together
//! before the reply leaves. That is what makes the spend cap strong: two
//! reservations of one key are decided one after the other, the second
//! seeing the first's hold. The records are also kept in memory (read once
//! per instance, changed only through `commit`).
//!
//! An alarm prunes what is no longer needed, hourly while there is
//! anything: audit entries older than `ORDER_RETENTION_SECS`, usage and
//! holds of days before yesterday. It also settles holds whose requests
//! may have died or whose fate was left unknown (asking the orders'
//! ledgers), and comes a minute after a refusal over a spend cap for that
//! (kept when a run ends after it was set), and every 5 minutes while more
//! holds wait than one run asks about.
//! When, what and which holds are the core's (`registry::look_sooner`,
//! `next_alarm_in`, `prune_before`, `suspects`); this file does the I/O.

use crate::objects::ledger::client as ledger;
use crate::respond::{bytes_response, empty};
use crate::runtime::wait::within;
use crate::runtime::clock::now_ms;
use crate::runtime::stub::{self, StubError};
use crate::runtime::http::{Incoming, Outgoing};
use crate::runtime::object::durable_object;
use crate::settings;
use wasm_bindgen::prelude::wasm_bindgen;
use plumgate_core::audit;
use plumgate_core::config::{binding, missing_binding};
use plumgate_core::errors::{ApiError, ErrorCode};
use plumgate_core::ledger::LOOK_WAIT_MS;
use plumgate_core::keys::{self, Facts, KeyRecord};
use plumgate_core::quota::{Counter, Hold, HoldChange, HoldState, Usage};
use plumgate_core::registry::{self, Write};
use plumgate_core::time::{day_of, secs_to_ms};
use plumgate_core::wire::ledger::{legacy_object_name, object_name, LedgerReply};
use plumgate_core::wire::registry::{Op, Reply, Request, OBJECT_NAME};
use futures_util::future::LocalBoxFuture;
use std::cell::{Cell, RefCell};
use crate::runtime::storage::{in_ms, Storage};
use worker::{Env, SqlStorage, SqlStorageValue as Sql, State};

/// Binding name of the registry namespace.
pub const BINDING: &str = binding::KEY_REGISTRY;

/// The largest integer a stored value may hold (JavaScript's safe range).
const MAX_SAFE: i64 = (1 << 53) - 1;

/// Send `req` to the registry (the worker's side).
///
/// # Errors
/// `503 misconfigured` without the binding; `502 upstream_error` when the
/// object cannot be reached or its answer is lost (nothing the caller
/// asked for was done by this request then, or its effect is unknown: the
/// message says retry).
///
/// One boxed future type for every caller: the call's code is in the wasm
/// once rather than inlined into each caller's state machine.
pub fn call<'a>(env: &'a Env, op: Op, req: &Request) -> LocalBoxFuture<'a, Result<Reply, ApiError>> {
    call_json(env, op, req.to_json())
}

/// [`call`] with the request as JSON text already (an `OrderLedger`'s
/// stored `reconciled` request, sent as it was written).
pub fn call_json(env: &Env, op: Op, json: String) -> LocalBoxFuture<'_, Result<Reply, ApiError>> {
    let body = Some(json);
    Box::pin(async move {
        let sent = stub::post(env, BINDING, OBJECT_NAME, &op.url(), None, body).await;
        let unavailable = || ApiError::upstream_error("the key registry did not answer; retry in a moment");
        match sent {
            Ok((_, bytes)) => Reply::from_json(&bytes).ok_or_else(unavailable),
            Err(StubError::Binding) => Err(ApiError::misconfigured(&[missing_binding(BINDING)])),
            Err(_) => Err(unavailable()),
        }
    })
}

/// The Durable Object.
#[wasm_bindgen]
pub struct KeyRegistry {
    state: State,
    env: Env,
    /// The tables exist (made once per instance).
    ready: Cell<bool>,
    /// The records and their version, once read.
    records: RefCell<Option<(Vec<KeyRecord>, String)>>,
    /// An alarm is known to be set.
    alarm_set: Cell<bool>,
    /// Holds whose last look found nothing, as they were then and since
    /// when (`settle_abandoned`); in memory only: an evicted object just
    /// looks twice again.
    /// At most the holds one alarm looks at.
    nothing_seen: RefCell<Vec<(HoldId, Hold, i64)>>,
    /// Where the last alarm stopped among holds with no requests on them
    /// (`registry::suspects`); in memory only: an evicted object starts
    /// the round again.
    idle_after: RefCell<Option<HoldId>>,
}

/// A hold's row key: key id, `poNumber`, order fingerprint.
type HoldId = (String, String, String);

durable_object!(KeyRegistry, alarm);

impl KeyRegistry {
    fn open(state: State, env: Env) -> Self {
        KeyRegistry { state, env, ready: Cell::new(false), records: RefCell::new(None), alarm_set: Cell::new(false), nothing_seen: RefCell::default(), idle_after: RefCell::default() }
    }

    async fn on_fetch(&self, req: Incoming) -> worker::Result<Outgoing> {
        let op = Op::from_path(&req.path);
        let body = req.bytes().await.unwrap_or_default();
        let reply = match (op, Request::from_json(&body)) {
            (Some(op), Some(request)) => self.serve(op, request).unwrap_or_else(|e| {
                // Read the records again next time: a failed write may have
                // left memory ahead of storage.
                *self.records.borrow_mut() = None;
                Reply::refusal(storage_problem(&e))
            }),
            _ => Reply::refusal(ApiError::internal()),
        };
        if op == Some(Op::Reserve) && reply.error.as_ref().is_some_and(|e| e.code == ErrorCode::QuotaExceeded && e.retry_after_secs.is_some()) {
            // Holds of requests that died may be what fills the cap: the
            // alarm looks at them soon rather than within the hour.
            let storage = Storage::of(&self.state);
            if registry::look_sooner(storage.get_alarm().await.ok().flatten(), now_ms())
                && storage.set_alarm(in_ms(registry::LOOK_AFTER_REFUSAL_MS as f64)).await.is_ok()
            {
                self.alarm_set.set(true);
            }
        }
        if matches!(op, Some(Op::Sync | Op::Reserve | Op::Settle | Op::Reconciled)) && !self.alarm_set.get() {
            let storage = Storage::of(&self.state);
            // Known to be set only once storage said so: after a failed
            // call the next request tries again (the flag would otherwise
            // stay set for the instance's life, and nothing be pruned).
            let armed = match storage.get_alarm().await {
                Ok(Some(_)) => true,
                Ok(None) => storage.set_alarm(in_ms(registry::PRUNE_EVERY_MS as f64)).await.is_ok(),
                Err(_) => false,
            };
            self.alarm_set.set(armed);
        }
        Ok(bytes_response(200, reply.to_json().into_bytes(), "application/json"))
    }

    /// Retention: drop what no answer needs any more, and settle holds
    /// whose requests may be gone; again in an hour while anything is left.
    async fn on_alarm(&self) -> worker::Result<Outgoing> {
        self.alarm_set.set(false);
        self.prepare()?;
        // Never in the way of the pruning: a failure here is tried again
        // at the next alarm.
        let mut run = self.settle_abandoned().await.unwrap_or_default();
        let sql = self.sql();
        let retention = settings::load(&self.env).ok().map(|c| c.order_retention_secs);
        let (audit_before, day_before) = registry::prune_before(now_ms(), retention);
        if let Some(before) = audit_before {
            sql.exec("DELETE FROM audit WHERE at_ms < ?", vec![Sql::Integer(before)])?;
        }
        sql.exec("DELETE FROM usage WHERE day < ?", vec![Sql::Integer(day_before)])?;
        sql.exec("DELETE FROM holds WHERE day < ?", vec![Sql::Integer(day_before)])?;
        // Whether any row is left, not how many: a count read every row of
        // the trail each hour (bench/audit-page.mjs).
        let left = int(first(&sql, "SELECT EXISTS (SELECT 1 FROM audit) OR EXISTS (SELECT 1 FROM usage) OR EXISTS (SELECT 1 FROM holds)", vec![])?.first());
        let storage = Storage::of(&self.state);
        let set_in = storage.get_alarm().await.ok().flatten().map(|at| at - now_ms());
        run.rows_left = left > 0;
        if let Some(next) = registry::next_alarm_in(run, set_in) {
            storage.set_alarm(in_ms(next as f64)).await?;
            self.alarm_set.set(true);
        } else if set_in.is_some() {
            self.alarm_set.set(true);
        }
        Ok(empty(200))
    }
}

/// `503 misconfigured` for storage that cannot be used (names the object,
/// never a value).
fn storage_problem(e: &worker::Error) -> ApiError {
    crate::runtime::error_event(&[("detail", crate::runtime::object::detail(e).as_str().into()), ("event", "key_registry_storage_failed".into())]);
    ApiError::misconfigured(&["the KeyRegistry's storage cannot be read or written (see the log line key_registry_storage_failed)".into()])
}

fn int(v: Option<&Sql>) -> i64 {
    match v {
        Some(Sql::Integer(i)) => *i,
        Some(Sql::Float(f)) => *f as i64,
        _ => 0,
    }
}

fn text(v: Option<&Sql>) -> String {
    match v {
        Some(Sql::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn uint(v: Option<&Sql>) -> u64 {
    u64::try_from(int(v)).unwrap_or(0)
}

fn count(n: u64) -> Sql {
    Sql::Integer(i64::try_from(n).unwrap_or(MAX_SAFE).min(MAX_SAFE))
}

fn rows(sql: &SqlStorage, query: &str, binds: Vec<Sql>) -> worker::Result<Vec<Vec<Sql>>> {
    sql.exec(query, binds)?.raw().collect()
}

fn first(sql: &SqlStorage, query: &str, binds: Vec<Sql>) -> worker::Result<Vec<Sql>> {
    Ok(rows(sql, query, binds)?.into_iter().next().unwrap_or_default())
}

/// A hold row's columns (`day, amount, holders, state`) from `at`.
fn hold_from(row: &[Sql], at: usize) -> Hold {
    Hold {
        day: int(row.get(at)),
        amount: int(row.get(at + 1)),
        holders: u32::try_from(int(row.get(at + 2))).unwrap_or(0),
        state: HoldState::from_name(&text(row.get(at + 3))),
    }
}

/// A usage row's columns (`requests, orders, amount, minute, minute_requests`) from `at`.
fn usage_from(row: &[Sql], at: usize) -> Usage {
    Usage {
        requests: uint(row.get(at)),
        orders: uint(row.get(at + 1)),
        amount: int(row.get(at + 2)),
        minute: Counter { minute: int(row.get(at + 3)), count: uint(row.get(at + 4)) },
    }
}

// `holds_open`'s `WHERE state != 'committed'` must stay word for word the
// condition of the reservation's sum and the key list's (`reserved_of`,
// `Op::List`): SQLite uses a partial index only for a query that implies it.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS keys (id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS usage (key TEXT NOT NULL, day INTEGER NOT NULL, requests INTEGER NOT NULL, orders INTEGER NOT NULL, amount INTEGER NOT NULL, minute INTEGER NOT NULL, minute_requests INTEGER NOT NULL, PRIMARY KEY (key, day));
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS holds (key TEXT NOT NULL, po TEXT NOT NULL, fp TEXT NOT NULL, day INTEGER NOT NULL, amount INTEGER NOT NULL, holders INTEGER NOT NULL, state TEXT NOT NULL, PRIMARY KEY (key, po, fp));
CREATE INDEX IF NOT EXISTS holds_by_day ON holds (key, day);
CREATE INDEX IF NOT EXISTS holds_open ON holds (key, day) WHERE state != 'committed';
CREATE INDEX IF NOT EXISTS holds_by_order ON holds (po, fp);
CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, key TEXT NOT NULL, request_id TEXT NOT NULL, entry TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit (at_ms);
CREATE UNIQUE INDEX IF NOT EXISTS audit_by_request ON audit (request_id);
CREATE INDEX IF NOT EXISTS audit_by_key ON audit (key, seq);";

impl KeyRegistry {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    /// `ORDER_RETENTION_SECS` (its default while the configuration is
    /// invalid; the alarm then prunes no audit entry: `prune_before`).
    fn retention_secs(&self) -> u32 {
        settings::load(&self.env).map_or(plumgate_core::config::DEFAULT_ORDER_RETENTION_SECS, |c| c.order_retention_secs)
    }

    /// The tables, made once per instance.
    fn prepare(&self) -> worker::Result<()> {
        if !self.ready.get() {
            self.sql().exec(SCHEMA, None)?;
            self.ready.set(true);
        }
        Ok(())
    }

    /// The records and their version, read once per instance.
    fn records(&self) -> worker::Result<(Vec<KeyRecord>, String)> {
        if let Some(r) = self.records.borrow().as_ref() {
            return Ok(r.clone());
        }
        let mut records = Vec::new();
        // rowid order is the order made: rows are only ever added or updated
        // in place (an upsert keeps its rowid), as memory keeps them, so a
        // reload lists keys made in the same millisecond as before it and
        // the directory's version does not change.
        for row in rows(&self.sql(), "SELECT record FROM keys ORDER BY rowid", vec![])? {
            let rec = KeyRecord::read(&text(row.first())).ok_or_else(|| worker::Error::from("a keys record cannot be read"))?;
            records.push(rec);
        }
        let loaded = (records.clone(), keys::version(&records));
        *self.records.borrow_mut() = Some(loaded.clone());
        Ok(loaded)
    }

    fn usage_of(&self, key: &str, day: i64) -> worker::Result<Usage> {
        let row = first(&self.sql(), "SELECT requests, orders, amount, minute, minute_requests FROM usage WHERE key = ? AND day = ?", vec![key.into(), Sql::Integer(day)])?;
        Ok(if row.is_empty() { Usage::default() } else { usage_from(&row, 0) })
    }

    fn facts_of(&self, key: &str, now: i64) -> worker::Result<Facts> {
        let seen = first(&self.sql(), "SELECT at_ms FROM seen WHERE key = ?", vec![key.into()])?;
        let day = day_of(now);
        Ok(Facts { usage: self.usage_of(key, day)?, last_used_ms: seen.first().map(|v| int(Some(v))), reserved: self.reserved_of(key, day)? })
    }

    /// The amount `key` holds on `day` for orders whose fate is not known
    /// (holds not yet committed).
    fn reserved_of(&self, key: &str, day: i64) -> worker::Result<i64> {
        let row = first(&self.sql(), "SELECT COALESCE(SUM(amount), 0) FROM holds WHERE key = ? AND day = ? AND state != 'committed'", vec![key.into(), Sql::Integer(day)])?;
        Ok(int(row.first()))
    }

    fn hold_of(&self, a: &audit::Attempt) -> worker::Result<Option<Hold>> {
        self.hold_by(&a.key, &a.po_number, &a.fingerprint)
    }

    fn hold_by(&self, key: &str, po: &str, fp: &str) -> worker::Result<Option<Hold>> {
        let row = first(&self.sql(), "SELECT day, amount, holders, state FROM holds WHERE key = ? AND po = ? AND fp = ?", vec![key.into(), po.into(), fp.into()])?;
        Ok((!row.is_empty()).then(|| hold_from(&row, 0)))
    }

    /// Holds of today and yesterday not yet committed whose requests may be
    /// gone (they died between their reserve and settle: a crash, a deploy,
    /// a cancelled request) or whose fate was left unknown (the ledger may
    /// never have had the order, or its word never reached the registry):
    /// each order's ledger is asked what became of it (a look, never a
    /// placement; at most `LOOK_WAIT_MS` each; which holds, and how many
    /// an alarm: `registry::suspects`), and the hold settles on that
    /// (`registry::abandoned`),
    /// unless a request changed it meanwhile (a failure leaves the rest to
    /// the next alarm). An order the account's ledger knows nothing of is
    /// asked of its ledger before per-account names too, and a hold whose
    /// looks keep finding nothing is released only once a look
    /// `NOTHING_RECHECK_MS` after the first still does
    /// (`registry::ledger_knows_nothing`, `registry::nothing_settles`; spent
    /// instead under a retention too short to trust it,
    /// `registry::nothing_proves_unsent`): a
    /// live request is "nothing" to a look until its ledger has it. A
    /// request that was alive after all settles as usual afterwards,
    /// counting nothing twice. Returns whether a hold waits for that
    /// second look, and whether holds were left unasked (more than
    /// `registry::LOOKS_PER_ALARM`): either way the alarm comes back soon
    /// (`registry::next_alarm_in`; `rows_left` is the pruning's to fill).
    async fn settle_abandoned(&self) -> worker::Result<registry::AlarmRun> {
        // The orders' ledgers are the configured account's; misconfigured,
        // the holds wait for a configuration that names it.
        let Ok(cfg) = settings::load(&self.env) else { return Ok(registry::AlarmRun::default()) };
        let today = day_of(now_ms());
        // The query leaves out only what `suspects` never takes (committed,
        // older than yesterday); it decides the rest.
        let candidates = rows(&self.sql(), "SELECT key, po, fp, day, amount, holders, state FROM holds WHERE state != 'committed' AND day >= ?", vec![Sql::Integer(today - 1)])?;
        let more_to_look = candidates.len() > registry::LOOKS_PER_ALARM;
        let candidates = candidates.iter().map(|row| ((text(row.first()), text(row.get(1)), text(row.get(2))), hold_from(row, 3))).collect();
        // Only this alarm's suspects are remembered: a hold settled by its
        // request in between is forgotten.
        let earlier = self.nothing_seen.take();
        let awaited: Vec<HoldId> = earlier.iter().map(|(id, _, _)| id.clone()).collect();
        let (suspects, idle_after) = registry::suspects(candidates, today, &awaited, self.idle_after.borrow().as_ref());
        *self.idle_after.borrow_mut() = idle_after;
        let mut recheck = false;
        for ((key, po, fp), hold) in suspects {
            let Some(mut reply) = self.look(object_name(cfg.account_id(), &po), &fp).await else { continue };
            if registry::ledger_knows_nothing(&reply) {
                let Some(older) = self.look(legacy_object_name(&po), &fp).await else { continue };
                reply = older;
            }
            let now = now_ms();
            if registry::needs_second_look(&reply) {
                let id = (key.clone(), po.clone(), fp.clone());
                let first = earlier.iter().find(|(seen_id, seen, _)| *seen_id == id && *seen == hold).map(|(_, _, at)| *at);
                if !registry::nothing_settles(first, now) {
                    self.nothing_seen.borrow_mut().push((id, hold, first.unwrap_or(now)));
                    recheck = true;
                    continue;
                }
            }
            // From here on no await: the hold read and the writes are one step.
            if self.hold_by(&key, &po, &fp)? != Some(hold) {
                continue;
            }
            let usage = self.usage_of(&key, hold.day)?;
            self.commit(&registry::abandoned(&key, &po, &fp, &hold, &reply, usage, cfg.order_retention_secs))?;
        }
        Ok(registry::AlarmRun { recheck, more_to_look, rows_left: false })
    }

    /// What the ledger object `name` knows of the order with fingerprint
    /// `fp`; `None` if it could not be asked or did not answer within
    /// `LOOK_WAIT_MS` (the hold waits for the next alarm).
    async fn look(&self, name: String, fp: &str) -> Option<LedgerReply> {
        within(LOOK_WAIT_MS, ledger::look(&self.env, &ledger::Lost::of_order(name, fp)?)).await?
    }

    /// Every key's hold of one order (`poNumber`, fingerprint), by key id.
    fn holds_of_order(&self, po: &str, fp: &str) -> worker::Result<Vec<(String, Hold)>> {
        let found = rows(&self.sql(), "SELECT key, day, amount, holders, state FROM holds WHERE po = ? AND fp = ? ORDER BY key", vec![po.into(), fp.into()])?;
        Ok(found.iter().map(|row| (text(row.first()), hold_from(row, 1))).collect())
    }

    /// One operation: read, decide, [`commit`], reply.
    fn serve(&self, op: Op, req: Request) -> worker::Result<Reply> {
        self.prepare()?;
        let now = now_ms();
        let (records, version) = self.records()?;
        let id = req.id.as_deref().unwrap_or_default();
        let attempt = req.attempt();
        let (writes, reply) = match op {
            Op::Sync => {
                let mut usage = Vec::new();
                for d in &req.usage {
                    let day = day_of(d.last_used_ms);
                    usage.push((d.id.as_str(), day, self.usage_of(&d.id, day)?));
                }
                let usage_of = |key: &str, day: i64| usage.iter().find(|(k, d, _)| *k == key && *d == day).map(|u| u.2).unwrap_or_default();
                registry::sync(&records, &version, req.version.as_deref(), &req.usage, &usage_of, now)
            }
            Op::Create => match req.new_key() {
                Some((new, sha256)) => registry::create(&records, &req.static_keys, new, sha256, &Facts::default(), now),
                None => (vec![], Reply::refusal(ApiError::internal())),
            },
            Op::List => {
                // One row per key that was used (its last request seen),
                // counted today, or holding an amount for orders of unknown
                // fate: its usage of today, its last request, that amount.
                // Not from `seen` alone: an isolate writes it when it syncs,
                // and one that died first leaves orders counted (by the
                // registry itself) for a key `seen` does not name yet.
                let day = Sql::Integer(day_of(now));
                let mut facts: Vec<(String, Facts)> = Vec::new();
                for row in rows(
                    &self.sql(),
                    "SELECT k.key, seen.at_ms, usage.requests, usage.orders, usage.amount, usage.minute, usage.minute_requests, \
                     (SELECT COALESCE(SUM(amount), 0) FROM holds WHERE holds.key = k.key AND holds.day = ?1 AND state != 'committed') \
                     FROM (SELECT key FROM seen UNION SELECT key FROM usage WHERE day = ?1 UNION SELECT key FROM holds WHERE day = ?1) AS k \
                     LEFT JOIN seen ON seen.key = k.key LEFT JOIN usage ON usage.key = k.key AND usage.day = ?1 ORDER BY k.key",
                    vec![day],
                )? {
                    let last_used_ms = matches!(row.get(1), Some(Sql::Integer(_))).then(|| int(row.get(1)));
                    facts.push((text(row.first()), Facts { usage: usage_from(&row, 2), last_used_ms, reserved: int(row.get(7)) }));
                }
                // The query's `ORDER BY k.key` sorts by SQLite's BINARY
                // collation, memcmp of the UTF-8, which is `str`'s order
                // (key ids are ASCII besides): a search per key, not a walk
                // (a key ever used keeps a row). The search needs that
                // `ORDER BY`: without it a key may miss its facts.
                let facts_of = |key: &str| facts.binary_search_by(|(k, _)| k.as_str().cmp(key)).map_or(Facts::default(), |i| facts[i].1);
                (vec![], registry::list(&records, &req.static_keys, &facts_of, now))
            }
            Op::Revoke => registry::revoke(&records, id, &self.facts_of(id, now)?, now),
            Op::Rotate => match req.sha256 {
                Some(sha256) => registry::rotate(&records, id, sha256, req.grace_secs.unwrap_or(keys::DEFAULT_GRACE_SECS), req.current_sha256.as_deref(), &self.facts_of(id, now)?, now),
                None => (vec![], Reply::refusal(ApiError::internal())),
            },
            Op::Limits => match &req.patch {
                Some(patch) => registry::set_limits(&records, id, patch, &self.facts_of(id, now)?, now),
                None => (vec![], Reply::refusal(ApiError::internal())),
            },
            Op::Reserve => match &attempt {
                Some(a) => {
                    let hold = self.hold_of(a)?;
                    let today = day_of(now);
                    let spent = (self.usage_of(&a.key, today)?.amount, self.reserved_of(&a.key, today)?);
                    let record = registry::record_of(&records, &a.key, req.from_static);
                    // Asked only for a refusal; unreadable, the 429 stands.
                    let other_body = || {
                        let args = vec![a.key.as_str().into(), a.po_number.as_str().into(), a.fingerprint.as_str().into()];
                        first(&self.sql(), "SELECT 1 FROM holds WHERE key = ? AND po = ? AND fp != ? LIMIT 1", args).is_ok_and(|row| !row.is_empty())
                    };
                    registry::reserve(record, a, req.cap, hold.as_ref(), spent, &other_body, now)
                }
                None => (vec![], Reply::refusal(ApiError::internal())),
            },
            Op::Settle => match (&attempt, &req.result()) {
                // Settled already (a retry whose first answer was lost).
                (Some(a), Some(_)) if !rows(&self.sql(), "SELECT 1 FROM audit WHERE request_id = ?", vec![a.request_id.as_str().into()])?.is_empty() => {
                    (vec![], Reply::default())
                }
                (Some(a), Some(result)) => {
                    let hold = self.hold_of(a)?;
                    let today = day_of(now);
                    let hold_day = hold.map_or(today, |h| h.day);
                    let (now_usage, hold_usage) = (self.usage_of(&a.key, today)?, self.usage_of(&a.key, hold_day)?);
                    let usage_of = |day: i64| if day == hold_day { hold_usage } else { now_usage };
                    (registry::settle(a, result, req.held, req.created, hold.as_ref(), &usage_of, now), Reply::default())
                }
                _ => (vec![], Reply::refusal(ApiError::internal())),
            },
            Op::Record => match (&attempt, &req.result()) {
                (Some(a), Some(result)) => (registry::record(a, result, now), Reply::default()),
                _ => (vec![], Reply::refusal(ApiError::internal())),
            },
            Op::Reconciled => match req.reconciliation() {
                Some((a, result)) => {
                    let holds = self.holds_of_order(&a.po_number, &a.fingerprint)?;
                    let mut usage = Vec::new();
                    for (key, h) in &holds {
                        usage.push((key.as_str(), h.day, self.usage_of(key, h.day)?));
                    }
                    let usage_of = |key: &str, day: i64| usage.iter().find(|(k, d, _)| *k == key && *d == day).map(|u| u.2).unwrap_or_default();
                    (registry::reconciled(&a, &result, &holds, &usage_of, now), Reply::default())
                }
                None => (vec![], Reply::refusal(ApiError::internal())),
            },
            Op::Audit => (vec![], Reply::body(self.audit_page(&req.query(), now)?)),
        };
        self.commit(&writes)?;
        Ok(reply)
    }

    /// A page of the trail, newest first, within the retention.
    fn audit_page(&self, q: &audit::Query, now: i64) -> worker::Result<String> {
        let from = q.from_ms.unwrap_or(0).max(now.saturating_sub(secs_to_ms(u64::from(self.retention_secs()))));
        let mut args = vec![
            Sql::Integer(from.clamp(0, MAX_SAFE)),
            Sql::Integer(q.to_ms.unwrap_or(MAX_SAFE).clamp(0, MAX_SAFE)),
            Sql::Integer(q.before.unwrap_or(MAX_SAFE).clamp(0, MAX_SAFE)),
            Sql::Integer(i64::from(q.limit) + 1),
        ];
        // One key's page walks `audit_by_key` (key, seq) down from the
        // cursor; the whole trail's walks the sequence itself. A single text
        // with `(? = '' OR key = ?)` could use neither index for a key. The
        // time bounds become bounds on `seq` too (the first entry at or
        // after each, found in `audit_by_time`; exact because `at_ms` never
        // steps back as `seq` grows, see the insert), so the walk starts and
        // ends where the window does instead of reading every older row to
        // learn that none is in it. The walk's index is named: SQLite's
        // planner took `audit_by_time` for the form without the bounds,
        // reading the whole window and sorting it for every page
        // (`bench/audit-page.mjs` prints the rows each form reads).
        let query = match &q.key {
            Some(key) => {
                args.push(key.as_str().into());
                "SELECT seq, entry FROM audit INDEXED BY audit_by_key WHERE key = ?5 AND at_ms >= ?1 AND at_ms < ?2 AND seq >= (SELECT seq FROM audit WHERE at_ms >= ?1 ORDER BY at_ms, seq LIMIT 1) AND seq < MIN(?3, IFNULL((SELECT seq FROM audit WHERE at_ms >= ?2 ORDER BY at_ms, seq LIMIT 1), ?3)) ORDER BY seq DESC LIMIT ?4"
            }
            None => "SELECT seq, entry FROM audit NOT INDEXED WHERE at_ms >= ?1 AND at_ms < ?2 AND seq >= (SELECT seq FROM audit WHERE at_ms >= ?1 ORDER BY at_ms, seq LIMIT 1) AND seq < MIN(?3, IFNULL((SELECT seq FROM audit WHERE at_ms >= ?2 ORDER BY at_ms, seq LIMIT 1), ?3)) ORDER BY seq DESC LIMIT ?4",
        };
        let found = rows(&self.sql(), query, args)?;
        let more = found.len() > q.limit as usize;
        let page: Vec<(i64, String)> = found.iter().take(q.limit as usize).map(|r| (int(r.first()), text(r.get(1)))).collect();
        let next = if more { page.last().map(|(seq, _)| *seq) } else { None };
        let entries: Vec<String> = page.into_iter().map(|(_, e)| e).collect();
        Ok(audit::page_body(&entries, next))
    }

    /// The one place the registry's state changes: the records in memory
    /// first (every later decision sees them), then every write in SQL, in
    /// the same synchronous step as the decision.
    fn commit(&self, writes: &[Write]) -> worker::Result<()> {
        let sql = self.sql();
        for w in writes {
            match w {
                Write::Key(rec) => {
                    let text = serde_json::to_string(rec).map_err(|_| worker::Error::from("a record cannot be written"))?;
                    let mut cached = self.records.borrow_mut();
                    if let Some((records, version)) = cached.as_mut() {
                        match records.iter_mut().find(|r| r.id == rec.id) {
                            Some(r) => *r = rec.clone(),
                            None => records.push(rec.clone()),
                        }
                        *version = keys::version(records);
                    }
                    drop(cached);
                    sql.exec(
                        "INSERT INTO keys (id, record) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                        vec![rec.id.as_str().into(), text.into()],
                    )?;
                }
                Write::Usage { key, day, usage } => {
                    sql.exec(
                        "INSERT INTO usage (key, day, requests, orders, amount, minute, minute_requests) VALUES (?, ?, ?, ?, ?, ?, ?) \
                         ON CONFLICT (key, day) DO UPDATE SET requests = excluded.requests, orders = excluded.orders, amount = excluded.amount, \
                         minute = excluded.minute, minute_requests = excluded.minute_requests",
                        vec![
                            key.as_str().into(),
                            Sql::Integer(*day),
                            count(usage.requests),
                            count(usage.orders),
                            Sql::Integer(usage.amount.min(MAX_SAFE)),
                            Sql::Integer(usage.minute.minute),
                            count(usage.minute.count),
                        ],
                    )?;
                }
                Write::Seen { key, at_ms } => {
                    sql.exec(
                        "INSERT INTO seen (key, at_ms) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET at_ms = MAX(at_ms, excluded.at_ms)",
                        vec![key.as_str().into(), Sql::Integer(*at_ms)],
                    )?;
                }
                Write::Hold { key, po, fp, change } => match change {
                    HoldChange::Keep => {}
                    HoldChange::Drop => {
                        sql.exec("DELETE FROM holds WHERE key = ? AND po = ? AND fp = ?", vec![key.as_str().into(), po.as_str().into(), fp.as_str().into()])?;
                    }
                    HoldChange::Put(h) => {
                        sql.exec(
                            "INSERT INTO holds (key, po, fp, day, amount, holders, state) VALUES (?, ?, ?, ?, ?, ?, ?) \
                             ON CONFLICT (key, po, fp) DO UPDATE SET day = excluded.day, amount = excluded.amount, holders = excluded.holders, state = excluded.state",
                            vec![
                                key.as_str().into(),
                                po.as_str().into(),
                                fp.as_str().into(),
                                Sql::Integer(h.day),
                                Sql::Integer(h.amount.min(MAX_SAFE)),
                                Sql::Integer(i64::from(h.holders)),
                                h.state.as_str().into(),
                            ],
                        )?;
                    }
                },
                Write::Audit { at_ms, key, request_id, entry, replace } => {
                    // `at_ms` never below the latest one's (a clock that
                    // stepped back), which the page's `seq` bounds need. A
                    // second entry of a request id is ignored, or replaces
                    // the first's words (keeping its time and place).
                    sql.exec(
                        "INSERT INTO audit (at_ms, key, request_id, entry) VALUES (MAX(?, IFNULL((SELECT MAX(at_ms) FROM audit), 0)), ?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET entry = excluded.entry WHERE ?",
                        vec![Sql::Integer(*at_ms), key.as_str().into(), request_id.as_str().into(), entry.as_str().into(), Sql::Integer(i64::from(*replace))],
                    )?;
                }
            }
        }
        Ok(())
    }
}
