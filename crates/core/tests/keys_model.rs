//! A model of runtime gateway keys and their per-key usage accounting,
//! driven with random sequences of what happens to a deployment's
//! isolates and its `KeyRegistry` object, against the core functions in the
//! order their shells call them:
//! - each isolate (`src/callers.rs`): `keys::look`, `Syncs::recheck` (a
//!   request waits `POLL_MS` at a time for a sync in flight, at most
//!   `SYNC_STALE_MS / POLL_MS + 1` times), `begin` (`Request` with the
//!   pending usage, `Syncs::start`), `finish` (`Syncs::end`, a failure's
//!   usage merged back with `UsageDelta::merge`, `keys::reply_applies`,
//!   the counts kept with `Counter::latest`), two syncs at most before
//!   `keys::directory_changing`, `keys::identify` after a sync, and
//!   `admit` (`Counter::at` of the shared, pending and in-flight counts,
//!   `quota::check_rate`, `UsageDelta::count`, `Syncs::background_due`);
//!   an admin change answered throws the copy away (`invalidate`,
//!   `src/keys.rs`), `GET /v1/keys` syncs first (`flush`);
//! - the object (`src/objects/registry.rs`): records read once per
//!   instance from their stored text (`KeyRecord::read`, `keys::version`),
//!   `registry::{sync, create, revoke, rotate, set_limits, list}`, the
//!   writes committed as `commit` does (memory first, the `seen` row by
//!   `MAX`), a failed write resetting the records to storage;
//! - every call and reply goes through its wire form
//!   (`wire::registry::{Request, Reply}`).
//!
//! The world: a discrete-event simulation in real time; two to four
//! isolates; one clock for everyone, which steps back (seconds to two
//! minutes, often across a UTC minute boundary) and forward (believed).
//! Calls to the registry and their replies take 1 ms to 9 s, so replies
//! cross and arrive after later ones; a call is lost before the registry
//! (1 %), or its reply after it (2 %, the isolate then sees an error); a
//! write fails part-way (1 %); the object is evicted (its next call
//! reloads from storage); isolates die (their unsent counts with them:
//! documented).
//!
//! The promises checked (README "Caller keys, limits and the audit
//! trail", `keys.rs` and `quota.rs` module docs):
//! - K1 a key is honoured only as some state of the registry's records
//!   of the last `MAX_AGE_MS` (8 s) would honour it now (same id, scopes,
//!   limits and end), and, in the isolate that made a change, only as a
//!   state since that change ("at once in the isolate that revoked it"):
//!   a revoked, rotated-away or expired key is refused everywhere within
//!   8 s, never honoured after; a new limit holds within 8 s. A clock that
//!   steps back within that window lengthens it by as much (plumgate
//!   reads ages off that clock).
//! - K2 a key the records honour is not refused as unknown (`401`) once a
//!   second has passed since it became usable ("a new key works ... everywhere
//!   within a second"), nor at all in the isolate that made it ("works at
//!   once"). Left out while the clock re-reads times it read before.
//! - R1 "exact in one isolate": at every request the count an isolate
//!   checks (`shared + pending + sending` at the minute) is at least its
//!   own requests of the key in that minute (the minute is the latest the
//!   clock has shown: a clock going back does not lift a limit, 6180a9b
//!   and 5efbc48; but for requests made while the clock was behind in an
//!   isolate that had not heard of the later minute, counted as `f2`),
//!   and, away from clock steps back, at least what the registry had
//!   counted for the minute by the reply the isolate keeps.
//! - R2 a key is refused `429` only when the requests counted for it in
//!   the minute, everywhere, reach its limit (no over-count).
//! - U1 the registry's usage counts never go down, and count each request
//!   reported at most once: the sum of a key's `requests` is the number
//!   of distinct requests whose reports reached it (U1b: at least, but for
//!   an isolate's death, which loses its unsent counts: documented).
//! - U2 a late sync reply never rolls an isolate's shared count back.
//! - S1 the records load back from storage as they were in memory, with
//!   the same version.
//! - L1 `GET /v1/keys` names every runtime key with its state and today's
//!   usage as the registry holds them.
//!
//! Findings at the end of this file.
//!
//! Not driven here: `GATEWAY_KEYS` (static keys), clocks that differ
//! between isolates and the object, spend caps and holds (`money_model`),
//! the list's paging and the 1,000 key cap (documented), usage days
//! pruned by the alarm.
//!
//! Deterministic: seeds `0..N`, each its own sequence; a failure names its
//! seed and step. `PLUMGATE_MODEL_SEEDS=N` runs N seeds instead of the
//! default [`SEEDS`] × [`STEPS`]; `PLUMGATE_MODEL_ONLY=n` seed n alone.

mod seeded;

use plumgate_core::auth::{hash_key, Caller};
use plumgate_core::errors::ApiError;
use plumgate_core::keys::{self, Credential, KeyRecord, Look, NewKey, Recheck, Syncs, Ticket, MAX_AGE_MS, MISS_RECHECK_MS, SYNC_STALE_MS};
use plumgate_core::quota::{check_rate, keep_count, rate_minute, Counter, Limits, Usage, UsageDelta};
use plumgate_core::registry::{self, Write};
use plumgate_core::secret::CallerKey;
use plumgate_core::time::{day_of, minute_of};
use plumgate_core::wire::registry::{Op, Reply, Request};
use seeded::{replayable, seeds, Rng};
use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

const SEEDS: u64 = 4;
const STEPS: u64 = 1_200;

/// 2026-11-30T10:00:00Z.
const T0: i64 = 1_796_032_800_000;
/// `src/runtime/wait.rs`.
const POLL_MS: i64 = 5;
/// R1's cross-isolate part and R2 are left out this long after a clock
/// step back (the registry's minute and the model's differ meanwhile).
const BACK_QUIET_MS: i64 = 180_000;

fn trace() -> bool {
    std::env::var_os("PLUMGATE_MODEL_TRACE").is_some()
}

/// The isolate's copy and unsent usage (`src/callers.rs` `Book`).
#[derive(Default)]
struct Book {
    directory: Vec<Credential>,
    version: Option<String>,
    fetched_ms: Option<i64>,
    pending: Vec<UsageDelta>,
    shared: Vec<(String, Counter)>,
    syncs: Syncs,
}

fn pending_of<'a>(pending: &'a mut Vec<UsageDelta>, id: &str) -> &'a mut UsageDelta {
    match pending.iter().position(|d| d.id == id) {
        Some(i) => &mut pending[i],
        None => {
            pending.push(UsageDelta { id: id.to_owned(), ..UsageDelta::default() });
            let last = pending.len() - 1;
            &mut pending[last]
        }
    }
}

/// One request counted (the model's name for it).
#[derive(Debug, Clone)]
struct Adm {
    n: u64,
    key: String,
    /// The minute it counts in: the latest the clock has shown.
    eff: i64,
    /// Where and when (clock) it was counted (for traces).
    iso: usize,
    at: i64,
    /// Counted while the clock read a time it had read before.
    behind: bool,
}

struct Iso {
    life: u32,
    book: Book,
    /// The model's mirror of `pending` and of the usage in flight.
    unsent: Vec<Adm>,
    inflight: Vec<(Ticket, Vec<Adm>)>,
    /// Each sync in flight: its ticket, the epoch it began in (the model
    /// counts `invalidate`s), when it began (clock).
    began: Vec<(Ticket, u64, i64)>,
    latest: Option<Ticket>,
    epoch: u64,
    /// Its own requests counted, by key and minute.
    own: BTreeMap<(String, i64), BTreeSet<u64>>,
    /// The registry's distinct requests behind each shared counter kept.
    known: BTreeMap<String, (Counter, BTreeSet<u64>)>,
    /// The real time the registry made the last change this isolate was
    /// answered (and threw its copy away for).
    floor_real: i64,
    /// Its requests counted while the clock was behind.
    behind: BTreeSet<u64>,
    /// Key hashes this isolate made (created or rotated to) and was
    /// answered: they work here at once.
    made_here: BTreeSet<String>,
}

impl Iso {
    fn new(life: u32) -> Iso {
        Iso {
            life,
            book: Book::default(),
            unsent: vec![],
            inflight: vec![],
            began: vec![],
            latest: None,
            epoch: 0,
            own: BTreeMap::new(),
            known: BTreeMap::new(),
            floor_real: i64::MIN,
            made_here: BTreeSet::new(),
            behind: BTreeSet::new(),
        }
    }
}

/// The registry object: memory, storage, and the model's truth of what
/// reached it.
#[derive(Default)]
struct Reg {
    mem: Option<(Vec<KeyRecord>, String)>,
    /// `keys` rows in rowid order: (id, record text).
    stored: Vec<(String, String)>,
    usage: BTreeMap<(String, i64), Usage>,
    seen: BTreeMap<String, i64>,
    /// Per key: each request reported, and how many times its report was
    /// counted.
    absorbed: BTreeMap<String, BTreeMap<u64, u32>>,
    /// Per key and minute: the distinct requests counted.
    absorbed_eff: BTreeMap<(String, i64), BTreeSet<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Look,
    Sync(u32),
}

struct Req {
    iso: usize,
    life: u32,
    key: CallerKey,
    /// The key id the model gave it (None: a stranger's key).
    id: Option<String>,
    phase: Phase,
    waits: i64,
}

#[derive(Debug, Clone)]
enum Cont {
    Background,
    Req(usize),
    List,
}

#[derive(Debug, Clone)]
enum Admin {
    Create { id: String, key: String },
    Revoke,
    Rotate { id: String, key: String },
    Limits,
    List,
}

#[derive(Debug, Clone)]
enum Then {
    Sync { ticket: Ticket, at_ms: i64, cont: Cont, batch: Vec<Adm> },
    Admin(Admin),
}

/// What the model attaches to a reply: the registry's commit time and,
/// per key counted, the distinct requests behind its count.
#[derive(Debug, Clone, Default)]
struct Meta {
    at_real: i64,
    snaps: Vec<(String, BTreeSet<u64>)>,
}

enum Ev {
    ToReg { iso: usize, life: u32, op: Op, json: String, then: Then, lose_reply: bool },
    Back { iso: usize, life: u32, then: Then, reply: Result<String, ApiError>, meta: Meta },
    Resume { req: usize },
}

/// What the default run must reach.
#[derive(Default, Debug)]
struct Reached {
    honoured: u64,
    honoured_old_state: u64,
    refused_unknown: u64,
    refused_refuse: u64,
    refused_fail: u64,
    directory_changing: u64,
    waits: u64,
    stale_waits: u64,
    syncs: u64,
    directories: u64,
    current_replies: u64,
    replies_not_kept: u64,
    late_replies: u64,
    lost_before: u64,
    lost_after: u64,
    write_failures: u64,
    evictions: u64,
    deaths: u64,
    steps_back: u64,
    steps_back_across_minute: u64,
    steps_forward: u64,
    rate_refusals: u64,
    creates: u64,
    revokes: u64,
    rotations: u64,
    resent_rotations: u64,
    grace_ends: u64,
    expiries: u64,
    limit_changes: u64,
    lists: u64,
    revoked_tried: u64,
    strangers: u64,
    k2_checked: u64,
    /// F1: a report counted twice (its reply lost, sent again).
    f1: u64,
    /// F2: an isolate's own requests lost from its count after a clock
    /// step back.
    f2: u64,
    /// F4: a key honoured past the window by a copy too old to use,
    /// brought by the sync the request waited for.
    f4: u64,
    /// F5: a request syncs (or, `f5_refused`, is refused `401` without
    /// asking) beside a sync of this epoch in flight, begun under
    /// `SYNC_STALE_MS` ago.
    f5: u64,
    f5_refused: u64,
    /// F3: a refusal while the key is below its limit everywhere (an
    /// over-count).
    f3: u64,
}

struct ModelKey {
    id: String,
    /// Keys the admin was answered with, oldest first.
    secrets: Vec<String>,
}

struct World {
    real: i64,
    offset: i64,
    max_clock: i64,
    /// Clock steps back: (real time, ms).
    backs: Vec<(i64, i64)>,
    /// Events by (real time, sequence), and the events themselves.
    queue: BinaryHeap<Reverse<(i64, u64)>>,
    events: BTreeMap<u64, Ev>,
    seq: u64,
    isos: Vec<Iso>,
    reqs: Vec<Option<Req>>,
    reg: Reg,
    /// The stored records over real time: (from, records).
    history: Vec<(i64, Vec<KeyRecord>)>,
    /// When each key hash first became usable (real).
    usable_from: BTreeMap<String, i64>,
    keys: Vec<ModelKey>,
    next_id: u32,
    next_adm: u64,
    /// Every request counted, by key and minute (R2).
    total: BTreeMap<(String, i64), u64>,
    /// Requests lost with a dead isolate (unsent or unanswered), per key.
    lost_dead: BTreeMap<String, u64>,
    /// Each sync's reply sequence number, to see replies overtaken.
    last_back: Vec<u64>,
    /// Usage as the last list said it, per (key, day).
    listed: BTreeMap<(String, String), u64>,
}

impl World {
    fn now(&self) -> i64 {
        self.real + self.offset
    }

    fn eff_minute(&self) -> i64 {
        minute_of(self.max_clock)
    }

    fn tick_clock(&mut self) {
        self.max_clock = self.max_clock.max(self.now());
    }

    fn send(&mut self, delay: i64, e: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((self.real + delay.max(0), self.seq)));
        self.events.insert(self.seq, e);
    }

    fn net_delay(rng: &mut Rng) -> i64 {
        match rng.below(100) {
            0..=69 => rng.range(1, 60),
            70..=89 => rng.range(1, 600),
            90..=97 => rng.range(1, 2_500),
            _ => rng.range(2_500, 9_000),
        }
    }

    /// The window start K1 allows: the earliest real time a copy still
    /// used now could have been fetched, `MAX_AGE_MS` of clock back, the
    /// clock's steps back since that time added.
    fn window_start(&self) -> i64 {
        let mut steps: Vec<(i64, i64)> = self.backs.iter().copied().filter(|(t, _)| *t <= self.real).collect();
        steps.sort_by_key(|s| Reverse(s.0));
        // For a fetch after the k latest steps and before the (k+1)-th: it
        // is at least `real - MAX_AGE_MS - (those k steps)`.
        let mut best = self.real - MAX_AGE_MS;
        let mut sum = 0;
        for (k, (t, d)) in steps.iter().enumerate() {
            sum += d;
            let after = steps.get(k + 1).map_or(i64::MIN, |s| s.0 + 1);
            let f = (self.real - MAX_AGE_MS - sum).max(after);
            if f <= *t {
                best = best.min(f);
            }
        }
        best
    }

    fn recently_back(&self, within: i64) -> bool {
        self.backs.iter().any(|(t, _)| self.real - t < within) || self.now() < self.max_clock
    }

    fn advance(&mut self, rng: &mut Rng, dt: i64, seen: &mut Reached) {
        let target = self.real + dt;
        while self.queue.peek().is_some_and(|Reverse((at, _))| *at <= target) {
            let Reverse((at, seq)) = self.queue.pop().expect("peeked");
            let e = self.events.remove(&seq).expect("an event");
            self.real = self.real.max(at);
            self.tick_clock();
            self.deliver(rng, seq, e, seen);
        }
        self.real = target;
        self.tick_clock();
    }

    fn deliver(&mut self, rng: &mut Rng, seq: u64, e: Ev, seen: &mut Reached) {
        match e {
            Ev::ToReg { iso, life, op, json, then, lose_reply } => self.object(rng, iso, life, op, &json, then, lose_reply, seen),
            Ev::Back { iso, life, then, reply, meta } => {
                if self.isos[iso].life != life {
                    return;
                }
                if matches!(then, Then::Sync { .. }) {
                    if seq < self.last_back[iso] {
                        seen.late_replies += 1;
                    }
                    self.last_back[iso] = self.last_back[iso].max(seq);
                }
                self.back(rng, iso, then, reply, meta, seen);
            }
            Ev::Resume { req } => self.run_req(rng, req, seen),
        }
    }

    // ------------------------------------------------------------ the object

    fn load(&self) -> (Vec<KeyRecord>, String) {
        let records: Vec<KeyRecord> = self.reg.stored.iter().map(|(_, t)| KeyRecord::read(t).expect("a stored record reads back")).collect();
        let version = keys::version(&records);
        (records, version)
    }

    fn records_now(&self) -> &[KeyRecord] {
        self.history.last().map_or(&[], |h| &h.1)
    }

    fn usage_of(&self, key: &str, day: i64) -> Usage {
        self.reg.usage.get(&(key.to_owned(), day)).copied().unwrap_or_default()
    }

    fn facts_of(&self, key: &str, now: i64) -> keys::Facts {
        keys::Facts { usage: self.usage_of(key, day_of(now)), last_used_ms: self.reg.seen.get(key).copied(), reserved: 0 }
    }

    /// One call at the object: read, decide, commit, reply.
    #[allow(clippy::too_many_arguments)]
    fn object(&mut self, rng: &mut Rng, iso: usize, life: u32, op: Op, json: &str, then: Then, lose_reply: bool, seen: &mut Reached) {
        let req = Request::from_json(json.as_bytes()).expect("the object reads the call");
        if self.reg.mem.is_none() {
            self.reg.mem = Some(self.load());
        }
        let now = self.now();
        let (records, version) = self.reg.mem.clone().expect("loaded");
        let id = req.id.clone().unwrap_or_default();
        let (writes, reply) = match op {
            Op::Sync => {
                seen.syncs += 1;
                let usage: Vec<(String, i64, Usage)> = req.usage.iter().map(|d| (d.id.clone(), day_of(d.last_used_ms), self.usage_of(&d.id, day_of(d.last_used_ms)))).collect();
                let usage_of = |key: &str, day: i64| usage.iter().find(|(k, d, _)| k == key && *d == day).map(|u| u.2).unwrap_or_default();
                registry::sync(&records, &version, req.version.as_deref(), &req.usage, &usage_of, now)
            }
            Op::Create => {
                let (new, sha) = req.new_key().expect("a new key");
                registry::create(&records, &req.static_keys, new, sha, &keys::Facts::default(), now)
            }
            Op::Revoke => registry::revoke(&records, &id, &self.facts_of(&id, now), now),
            Op::Rotate => registry::rotate(
                &records,
                &id,
                req.sha256.clone().expect("a hash"),
                req.grace_secs.unwrap_or(keys::DEFAULT_GRACE_SECS),
                req.current_sha256.as_deref(),
                &self.facts_of(&id, now),
                now,
            ),
            Op::Limits => registry::set_limits(&records, &id, req.patch.as_ref().expect("a patch"), &self.facts_of(&id, now), now),
            Op::List => {
                let reply = registry::list(&records, &req.static_keys, &|k| self.facts_of(k, now), now);
                self.check_list(&records, &reply, seen);
                (vec![], reply)
            }
            other => panic!("not driven: {other:?}"),
        };
        // A write fails part-way (1 %): the writes before it stay, the
        // records are read again, the caller gets the storage error.
        let cut = if !writes.is_empty() && rng.chance(0.01) { Some(rng.below(writes.len() as u64) as usize) } else { None };
        let batch = match &then {
            Then::Sync { batch, .. } => batch.clone(),
            Then::Admin(_) => vec![],
        };
        self.commit(&writes[..cut.unwrap_or(writes.len())], &batch, seen);
        let reply = match cut {
            Some(_) => {
                seen.write_failures += 1;
                self.reg.mem = None;
                Reply::refusal(ApiError::misconfigured(&["the KeyRegistry's storage cannot be read or written".into()]))
            }
            None => reply,
        };
        let mut meta = Meta { at_real: self.real, snaps: vec![] };
        for c in &reply.counts {
            let set = self.reg.absorbed_eff.get(&(c.id.clone(), c.minute)).cloned().unwrap_or_default();
            meta.snaps.push((c.id.clone(), set));
        }
        self.check_registry();
        let back = if lose_reply {
            seen.lost_after += 1;
            Err(ApiError::upstream_error("the key registry did not answer; retry in a moment"))
        } else {
            Ok(reply.to_json())
        };
        self.send(Self::net_delay(rng), Ev::Back { iso, life, then, reply: back, meta });
    }

    /// `commit`: the records in memory first, then storage; the model's
    /// truth of the requests counted alongside.
    fn commit(&mut self, writes: &[Write], batch: &[Adm], seen: &mut Reached) {
        let mut keys_changed = false;
        for w in writes {
            match w {
                Write::Key(rec) => {
                    if let Some((records, version)) = self.reg.mem.as_mut() {
                        match records.iter_mut().find(|r| r.id == rec.id) {
                            Some(r) => *r = rec.clone(),
                            None => records.push(rec.clone()),
                        }
                        *version = keys::version(records);
                    }
                    let text = serde_json::to_string(rec).expect("a record is written");
                    match self.reg.stored.iter_mut().find(|(id, _)| *id == rec.id) {
                        Some(row) => row.1 = text,
                        None => self.reg.stored.push((rec.id.clone(), text)),
                    }
                    keys_changed = true;
                }
                Write::Usage { key, day, usage } => {
                    let before = self.usage_of(key, *day);
                    assert!(usage.requests >= before.requests, "U1: {key}'s requests of day {day} go down: {} -> {}", before.requests, usage.requests);
                    self.reg.usage.insert((key.clone(), *day), *usage);
                    for a in batch.iter().filter(|a| a.key == *key) {
                        let times = self.reg.absorbed.entry(key.clone()).or_default().entry(a.n).or_insert(0);
                        *times += 1;
                        if *times > 1 {
                            seen.f1 += 1;
                        }
                        if !a.behind {
                            self.reg.absorbed_eff.entry((key.clone(), a.eff)).or_default().insert(a.n);
                        }
                        if trace() {
                            eprintln!("  ABSORB {} n {} iso {} at {} eff {} -> usage {:?}", a.key, a.n, a.iso, a.at, a.eff, usage.minute);
                        }
                    }
                }
                Write::Seen { key, at_ms } => {
                    let e = self.reg.seen.entry(key.clone()).or_insert(*at_ms);
                    *e = (*e).max(*at_ms);
                }
                other => panic!("not driven: {other:?}"),
            }
        }
        if keys_changed {
            let (records, _) = self.load();
            let now = self.now();
            for c in keys::directory(&records, now) {
                self.usable_from.entry(c.sha256).or_insert(self.real);
            }
            if trace() {
                eprintln!("real +{} clock {} COMMIT {:?}", self.real - T0, now, records.iter().map(|r| (&r.id, &r.sha256[..6], r.revoked_at_ms, r.previous_sha256.as_deref().map(|p| &p[..6]), r.previous_until_ms, r.replaced_sha256.as_deref().map(|p| &p[..6]), r.limits.requests_per_minute)).collect::<Vec<_>>());
            }
            self.history.push((self.real, records));
        }
    }

    /// U1 after every call at the object.
    fn check_registry(&self) {
        for (key, reports) in &self.reg.absorbed {
            let counted: u64 = self.reg.usage.iter().filter(|((k, _), _)| k == key).map(|(_, u)| u.requests).sum();
            let distinct = reports.len() as u64;
            let times: u64 = reports.values().map(|t| u64::from(*t)).sum();
            assert_eq!(counted, times, "the model's count of reports of {key} and the registry's differ");
            // Each report counted once (F1 counts the others, open).
            assert!(counted >= distinct, "U1: {key}: {counted} requests counted, {distinct} reported");
        }
    }

    // ------------------------------------------------------------ an isolate

    /// `begin`: the usage counted so far goes in the request.
    fn begin(&mut self, iso: usize, cont: Cont) -> (String, Then) {
        let now = self.now();
        let i = &mut self.isos[iso];
        let req = Request { version: i.book.version.clone(), usage: std::mem::take(&mut i.book.pending), ..Request::default() };
        let json = req.to_json();
        let ticket = i.book.syncs.start(req.usage, now);
        if trace() {
            eprintln!("real +{} clock {now} iso {iso} BEGIN {ticket:?} version {:?}", self.real - T0, i.book.version);
        }
        let batch = std::mem::take(&mut i.unsent);
        i.inflight.push((ticket, batch.clone()));
        i.began.push((ticket, i.epoch, now));
        i.latest = Some(ticket);
        (json, Then::Sync { ticket, at_ms: now, cont, batch })
    }

    fn call(&mut self, rng: &mut Rng, iso: usize, op: Op, json: String, then: Then, seen: &mut Reached) {
        let life = self.isos[iso].life;
        if rng.chance(0.01) {
            // Lost on the way: the isolate gets an error, nothing was done.
            seen.lost_before += 1;
            let e = ApiError::upstream_error("the key registry did not answer; retry in a moment");
            self.send(Self::net_delay(rng), Ev::Back { iso, life, then, reply: Err(e), meta: Meta::default() });
            return;
        }
        let lose_reply = rng.chance(0.02);
        self.send(Self::net_delay(rng), Ev::ToReg { iso, life, op, json, then, lose_reply });
    }

    fn sync(&mut self, rng: &mut Rng, iso: usize, cont: Cont, seen: &mut Reached) {
        let (json, then) = self.begin(iso, cont);
        self.call(rng, iso, Op::Sync, json, then, seen);
    }

    /// A reply (or its failure) reaches the isolate.
    fn back(&mut self, rng: &mut Rng, iso: usize, then: Then, reply: Result<String, ApiError>, meta: Meta, seen: &mut Reached) {
        let reply = reply.map(|t| Reply::from_json(t.as_bytes()).expect("the reply reads back"));
        let reply = reply.and_then(|r| match r.error.clone() {
            Some(e) => Err(e),
            None => Ok(r),
        });
        match then {
            Then::Sync { ticket, at_ms, cont, batch: _ } => {
                let result = self.finish(iso, ticket, at_ms, reply, &meta, seen);
                match cont {
                    Cont::Background => {}
                    Cont::List => {
                        let (json, then) = (Request::default().to_json(), Then::Admin(Admin::List));
                        self.call(rng, iso, Op::List, json, then, seen);
                    }
                    Cont::Req(r) => self.after_sync(rng, r, result, seen),
                }
            }
            Then::Admin(a) => {
                let Ok(r) = reply else { return };
                match a {
                    Admin::List => assert!(r.body.is_some(), "a list's body"),
                    a => {
                        if let Admin::Create { id, key } | Admin::Rotate { id, key } = &a {
                            let k = self.keys.iter_mut().find(|k| k.id == *id).expect("a model key");
                            k.secrets.push(key.clone());
                            self.isos[iso].made_here.insert(hash_key(key));
                        }
                        // `callers::invalidate`.
                        let i = &mut self.isos[iso];
                        i.book.fetched_ms = None;
                        i.book.syncs.invalidate();
                        i.epoch += 1;
                        i.floor_real = i.floor_real.max(meta.at_real);
                        if trace() {
                            eprintln!("real +{} iso {iso} INVALIDATE floor +{}", self.real - T0, meta.at_real - T0);
                        }
                    }
                }
            }
        }
    }

    /// `finish`: keep what the reply says.
    fn finish(&mut self, iso: usize, ticket: Ticket, at_ms: i64, reply: Result<Reply, ApiError>, meta: &Meta, seen: &mut Reached) -> Result<bool, ApiError> {
        let now = self.now();
        let i = &mut self.isos[iso];
        let (current, usage) = i.book.syncs.end(ticket, reply.as_ref().err(), now);
        i.began.retain(|(t, _, _)| *t != ticket);
        let batch = match i.inflight.iter().position(|(t, _)| *t == ticket) {
            Some(p) => i.inflight.swap_remove(p).1,
            None => vec![],
        };
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                for d in &usage {
                    pending_of(&mut i.book.pending, &d.id).merge(d);
                }
                i.unsent.extend(batch);
                return Err(e);
            }
        };
        if trace() {
            eprintln!("real +{} clock {now} iso {iso} FINISH ticket {ticket:?} began {at_ms} current {current} held {:?} reply {:?} dir {:?}", self.real - T0, i.book.version, reply.version, reply.directory.as_ref().map(|d| d.iter().map(|c| (c.id.clone(), c.sha256[..6].to_owned(), c.until_ms)).collect::<Vec<_>>()));
        }
        let applies = current && keys::reply_applies(i.book.version.as_deref(), reply.version.as_deref(), reply.directory.is_some());
        if applies {
            if reply.directory.is_some() {
                seen.directories += 1;
            } else {
                seen.current_replies += 1;
            }
            if let Some(dir) = reply.directory {
                i.book.directory = dir;
            }
            i.book.version = reply.version;
            i.book.fetched_ms = Some(at_ms);
        } else {
            seen.replies_not_kept += 1;
        }
        for c in reply.counts {
            let counter = c.counter();
            let snap = meta.snaps.iter().find(|(k, _)| *k == c.id).map(|s| s.1.clone()).unwrap_or_default();
            match i.book.shared.iter_mut().find(|(id, _)| *id == c.id) {
                Some(entry) => {
                    let was = entry.1;
                    entry.1 = entry.1.latest(counter);
                    // U2.
                    assert!((entry.1.minute, entry.1.count) >= (was.minute, was.count), "U2: {}'s shared count rolled back: {was:?} -> {:?}", c.id, entry.1);
                    if entry.1 != was {
                        i.known.insert(c.id.clone(), (entry.1, snap));
                    }
                }
                None => {
                    i.book.shared.push((c.id.clone(), counter));
                    i.known.insert(c.id.clone(), (counter, snap));
                }
            }
        }
        Ok(i.book.fetched_ms >= Some(at_ms))
    }

    fn after_sync(&mut self, rng: &mut Rng, r: usize, result: Result<bool, ApiError>, seen: &mut Reached) {
        let Some(req) = self.reqs[r].take() else { return };
        let Phase::Sync(attempt) = req.phase else { panic!("a sync's request not syncing") };
        match result {
            Ok(true) => {
                let now = self.now();
                match keys::identify(&self.isos[req.iso].book.directory, &req.key, now) {
                    Some(c) => self.honoured(rng, &req, c, true, seen),
                    None => self.unknown(&req, seen),
                }
            }
            Ok(false) if attempt == 0 => {
                let iso = req.iso;
                self.reqs[r] = Some(Req { phase: Phase::Sync(1), ..req });
                self.sync(rng, iso, Cont::Req(r), seen);
            }
            Ok(false) => {
                seen.directory_changing += 1;
                let _ = keys::directory_changing();
            }
            Err(_) => seen.refused_fail += 1,
        }
    }

    /// `callers::identify` for a runtime-shaped key, one look at a time.
    fn run_req(&mut self, rng: &mut Rng, r: usize, seen: &mut Reached) {
        let Some(req) = self.reqs[r].take() else { return };
        if self.isos[req.iso].life != req.life {
            return;
        }
        let now = self.now();
        if req.waits > SYNC_STALE_MS / POLL_MS {
            // Every look waited: sync anyway.
            let iso = req.iso;
            self.reqs[r] = Some(Req { phase: Phase::Sync(0), ..req });
            self.sync(rng, iso, Cont::Req(r), seen);
            return;
        }
        let b = &self.isos[req.iso].book;
        let seen_as = match keys::look(&b.directory, b.fetched_ms, &req.key, now) {
            Look::Caller(c) => return self.honoured(rng, &req, c, false, seen),
            Look::Unknown => return self.unknown(&req, seen),
            Look::Ask(s) => s,
        };
        let i = &self.isos[req.iso];
        // The latest sync begun (the model's list is in the order begun),
        // of this epoch, still in flight and not stale.
        let beside = i.began.last().is_some_and(|(tk, e, t)| *e == i.epoch && Some(*tk) == i.latest && (0..SYNC_STALE_MS).contains(&(now - t)));
        match b.syncs.recheck(seen_as, now) {
            Recheck::Sync => {
                if beside {
                    seen.f5 += 1;
                }
                let iso = req.iso;
                self.reqs[r] = Some(Req { phase: Phase::Sync(0), ..req });
                self.sync(rng, iso, Cont::Req(r), seen);
            }
            Recheck::Refuse => {
                seen.refused_refuse += 1;
                if beside {
                    // F5 (fixed): refused beside a sync in flight.
                    seen.f5_refused += 1;
                    return;
                }
                self.unknown(&req, seen);
            }
            Recheck::Fail(_) => seen.refused_fail += 1,
            Recheck::Wait(max) => {
                seen.waits += 1;
                if max < SYNC_STALE_MS - 2_000 {
                    seen.stale_waits += 1;
                }
                self.reqs[r] = Some(Req { waits: req.waits + 1, ..req });
                self.send(max.min(POLL_MS), Ev::Resume { req: r });
            }
        }
    }

    /// The records some state of the window would honour `key` with now.
    fn honoured_by(&self, iso: usize, key: &CallerKey, now: i64) -> Vec<Caller> {
        let lo = self.window_start().max(self.isos[iso].floor_real);
        let mut out = vec![];
        let mut until = i64::MAX;
        for (from, recs) in self.history.iter().rev() {
            if until <= lo {
                break;
            }
            if let Some(c) = keys::identify(&keys::directory(recs, now), key, now) {
                out.push(c);
            }
            until = *from;
        }
        out
    }

    fn honoured(&mut self, rng: &mut Rng, req: &Req, c: Caller, after_sync: bool, seen: &mut Reached) {
        let now = self.now();
        // K1.
        let ok = self.honoured_by(req.iso, &req.key, now);
        let fetched = self.isos[req.iso].book.fetched_ms;
        if !ok.contains(&c) && after_sync && keys::freshness(fetched, now) == keys::Freshness::Expired {
            // F4 (fixed): the copy a slow sync brought, too old to use, was
            // used by the request that waited for it.
            seen.f4 += 1;
            if trace() {
                eprintln!("F4 {:?} at real +{}", req.id, self.real - T0);
            }
        } else {
            assert!(
            ok.contains(&c),
            "K1: {:?} honoured as {c:?} at real +{} (clock {now}); the window's states would honour it as {ok:?}",
            req.id,
            self.real - T0
        );
        }
        assert_eq!(Some(&c.id), req.id.as_ref(), "K1: honoured as another key");
        seen.honoured += 1;
        if trace() {
            eprintln!("real +{} clock {now} iso {} HONOURED {:?} {}", self.real - T0, req.iso, req.id, &hash_key(req.key.expose_secret())[..6]);
        }
        let truth = keys::identify(&keys::directory(self.records_now(), now), &req.key, now);
        if truth.as_ref() != Some(&c) {
            seen.honoured_old_state += 1;
        }
        self.admit(rng, req.iso, &c, seen);
    }

    fn unknown(&mut self, req: &Req, seen: &mut Reached) {
        seen.refused_unknown += 1;
        let now = self.now();
        if trace() {
            let b = &self.isos[req.iso].book;
            eprintln!("real +{} clock {now} iso {} UNKNOWN {:?} {} copy fetched {:?} began {:?}", self.real - T0, req.iso, req.id, &hash_key(req.key.expose_secret())[..6], b.fetched_ms, self.isos[req.iso].began);
        }
        let sha = hash_key(req.key.expose_secret());
        let truth = keys::identify(&keys::directory(self.records_now(), now), &req.key, now);
        if truth.is_none() || self.recently_back(20_000) {
            return;
        }
        seen.k2_checked += 1;
        // K2.
        let from = self.usable_from.get(&sha).copied().expect("usable: seen usable");
        assert!(
            !self.isos[req.iso].made_here.contains(&sha),
            "K2: {:?}, made in this isolate, refused there as unknown {} ms after it became usable",
            req.id,
            self.real - from
        );
        assert!(self.real - from < MISS_RECHECK_MS, "K2: {:?} refused as unknown {} ms after it became usable", req.id, self.real - from);
    }

    /// `callers::admit`.
    fn admit(&mut self, rng: &mut Rng, iso: usize, caller: &Caller, seen: &mut Reached) {
        let now = self.now();
        let eff = self.eff_minute();
        let back_quiet = !self.recently_back(BACK_QUIET_MS);
        let i = &mut self.isos[iso];
        let b = &mut i.book;
        let shared = b.shared.iter().find(|(id, _)| *id == caller.id).map_or(Counter::default(), |(_, c)| *c);
        let minute = rate_minute(shared, now);
        let shared = shared.at(minute);
        let pending = b.pending.iter().find(|d| d.id == caller.id).map_or(0, |d| d.counter().at(minute));
        let sending = b.syncs.sending(&caller.id, minute);
        let used = shared.saturating_add(pending).saturating_add(sending);
        // R1.
        let own = i.own.get(&(caller.id.clone(), eff)).cloned().unwrap_or_default();
        let mut lower: BTreeSet<u64> = own.iter().copied().filter(|n| !i.behind.contains(n)).collect();
        if back_quiet {
            if let Some((c, snap)) = i.known.get(&caller.id) {
                if c.minute == eff {
                    lower.extend(snap.iter().copied());
                }
            }
        }
        if used < own.len() as u64 {
            // F2's rest (R1 holds it to its requests made while its clock
            // was not behind): a request made while the clock was behind, in
            // an isolate that had not heard of the later minute, counts in
            // the clock's; the registry, of the later minute, drops it
            // (`Counter::add`). README: "counts in the later minute it has
            // heard of"; across isolates the count is approximate.
            seen.f2 += 1;
        }
        {
            assert!(
                used >= lower.len() as u64,
                "R1: {} checked with {used} counted in minute {eff} ({shared} shared {:?}, {pending} pending, {sending} sending): its own {} and the registry's by the reply kept {:?} say at least {}",
                caller.id,
                b.shared.iter().find(|(id, _)| *id == caller.id),
                own.len(),
                i.known.get(&caller.id).map(|k| (k.0, k.1.len())),
                lower.len()
            );
        }
        if let Err(e) = check_rate(caller.limits.requests_per_minute, used, now) {
            assert_eq!(e.status, 429);
            seen.rate_refusals += 1;
            let total = self.total.get(&(caller.id.clone(), eff)).copied().unwrap_or(0);
            let limit = u64::from(caller.limits.requests_per_minute.expect("a limit"));
            if back_quiet && total < limit {
                // R2 (F3, open): refused below the limit.
                seen.f3 += 1;
                if trace() {
                    let dup = self.reg.absorbed.get(&caller.id).map_or(0, |m| m.values().filter(|t| **t > 1).count());
                    eprintln!("F3 {} at real +{} used {used} (shared {shared} pending {pending} sending {sending}) total {total} limit {limit}; twice-counted reports of the key so far {dup}", caller.id, self.real - T0);
                }
            }
            return;
        }
        pending_of(&mut b.pending, &caller.id).count_in(minute, now);
        self.next_adm += 1;
        let behind = now < self.max_clock;
        let a = Adm { n: self.next_adm, key: caller.id.clone(), eff, iso, at: now, behind };
        if behind {
            i.behind.insert(a.n);
        }
        i.own.entry((caller.id.clone(), eff)).or_default().insert(a.n);
        i.unsent.push(a);
        *self.total.entry((caller.id.clone(), eff)).or_insert(0) += 1;
        let i = &self.isos[iso];
        if i.book.syncs.background_due(i.book.fetched_ms, now) {
            self.sync(rng, iso, Cont::Background, seen);
        }
    }

    /// L1, at the object.
    fn check_list(&mut self, records: &[KeyRecord], r: &Reply, seen: &mut Reached) {
        seen.lists += 1;
        let v: Value = serde_json::from_slice(r.body.as_deref().expect("a list body").as_bytes()).expect("the list is JSON");
        let now = self.now();
        let listed = v["keys"].as_array().expect("keys");
        // L1: every runtime key, in the order made.
        let ids: Vec<&str> = listed.iter().map(|k| k["id"].as_str().expect("an id")).collect();
        let made: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, made, "L1: the list's keys");
        for k in listed {
            let id = k["id"].as_str().expect("id").to_owned();
            let day = k["usage"]["day"].as_str().expect("day").to_owned();
            let n = k["usage"]["requests"].as_u64().expect("requests");
            let rec = records.iter().find(|r| r.id == id).expect("listed");
            assert_eq!(k["state"].as_str(), Some(keys::key_state(rec, now)), "L1: {id}'s state");
            assert_eq!(n, self.usage_of(&id, day_of(now)).requests, "L1: {id}'s requests");
            let before = self.listed.insert((id.clone(), day.clone()), n).unwrap_or(0);
            assert!(n >= before, "L1: {id}'s listed requests of {day} went down: {before} -> {n}");
        }
    }

    // ------------------------------------------------------------ steps

    fn new_key(rng: &mut Rng) -> CallerKey {
        let mut b = [0u8; keys::KEY_RANDOM_BYTES];
        for x in &mut b {
            *x = rng.below(256) as u8;
        }
        keys::new_key(&b)
    }

    /// A key: mostly one still active.
    fn pick_key(&self, rng: &mut Rng) -> Option<usize> {
        let now = self.now();
        let records = self.records_now();
        let active: Vec<usize> = (0..self.keys.len()).filter(|i| records.iter().any(|r| r.id == self.keys[*i].id && keys::key_state(r, now) == "active")).collect();
        if !active.is_empty() && rng.chance(0.85) {
            return Some(*rng.pick(&active));
        }
        (!self.keys.is_empty()).then(|| rng.below(self.keys.len() as u64) as usize)
    }

    fn client(&mut self, rng: &mut Rng, seen: &mut Reached) {
        let iso = rng.below(self.isos.len() as u64) as usize;
        let (key, id) = if self.keys.is_empty() || rng.chance(0.03) {
            seen.strangers += 1;
            (Self::new_key(rng), None)
        } else {
            let Some(t) = self.pick_key(rng) else { return };
            let k = &self.keys[t];
            if k.secrets.is_empty() {
                return;
            }
            let s = if rng.chance(0.75) { k.secrets.last().expect("one") } else { rng.pick::<String>(&k.secrets) };
            if self.records_now().iter().any(|r| r.id == k.id && r.revoked_at_ms.is_some()) {
                seen.revoked_tried += 1;
            }
            (CallerKey::new(s.clone()), Some(k.id.clone()))
        };
        let n = if rng.chance(0.12) { rng.range(5, 14) } else { rng.range(1, 4) };
        for _ in 0..n {
            let life = self.isos[iso].life;
            self.reqs.push(Some(Req { iso, life, key: key.clone(), id: id.clone(), phase: Phase::Look, waits: 0 }));
            let r = self.reqs.len() - 1;
            self.run_req(rng, r, seen);
            if rng.chance(0.3) {
                let dt = rng.range(0, 40);
                self.advance(rng, dt, seen);
            }
        }
    }

    fn admin(&mut self, rng: &mut Rng, seen: &mut Reached) {
        let iso = rng.below(self.isos.len() as u64) as usize;
        let now = self.now();
        let pick = rng.below(100);
        let target = self.pick_key(rng);
        let active = self.records_now().iter().filter(|r| keys::key_state(r, now) == "active").count();
        let (op, req, a) = match (pick, target) {
            (0..=24, _) | (_, None) if active < 4 => {
                seen.creates += 1;
                self.next_id += 1;
                let id = format!("k{}", self.next_id);
                let key = Self::new_key(rng);
                let limits = Limits { requests_per_minute: rng.chance(0.85).then(|| rng.range(2, 12) as u32), order_amount_per_day: None };
                let expires_at_ms = rng.chance(0.25).then(|| now + rng.range(2_000, 90_000));
                let new = NewKey { id: id.clone(), scopes: vec!["catalog".into()], expires_at_ms, limits };
                self.keys.push(ModelKey { id: id.clone(), secrets: vec![] });
                let req = Request::of_new_key(new, hash_key(key.expose_secret()));
                (Op::Create, req, Admin::Create { id, key: key.expose_secret().to_owned() })
            }
            (_, None) => return,
            (0..=34, Some(t)) => {
                seen.revokes += 1;
                (Op::Revoke, Request { id: Some(self.keys[t].id.clone()), ..Request::default() }, Admin::Revoke)
            }
            (40..=69, Some(t)) => {
                seen.rotations += 1;
                let key = Self::new_key(rng);
                let grace = match rng.below(4) {
                    0 => 0,
                    1 => rng.range(1, 12) as u64,
                    2 => rng.range(12, 90) as u64,
                    _ => keys::DEFAULT_GRACE_SECS,
                };
                let k = &self.keys[t];
                let current = match (rng.below(3), k.secrets.len()) {
                    (_, 0) | (0, _) => None,
                    (1, n) => Some(hash_key(&k.secrets[n - 1])),
                    _ => {
                        seen.resent_rotations += 1;
                        Some(hash_key(rng.pick::<String>(&k.secrets)))
                    }
                };
                let req = Request { id: Some(k.id.clone()), sha256: Some(hash_key(key.expose_secret())), grace_secs: Some(grace), current_sha256: current, ..Request::default() };
                (Op::Rotate, req, Admin::Rotate { id: k.id.clone(), key: key.expose_secret().to_owned() })
            }
            (70..=84, Some(t)) => {
                seen.limit_changes += 1;
                let rpm = if rng.chance(0.2) { Value::Null } else { json!(rng.range(1, 15)) };
                let req = Request { id: Some(self.keys[t].id.clone()), patch: Some(json!({ "requests_per_minute": rpm })), ..Request::default() };
                (Op::Limits, req, Admin::Limits)
            }
            _ => {
                // `GET /v1/keys`: `flush`, then the list.
                self.sync(rng, iso, Cont::List, seen);
                return;
            }
        };
        if trace() {
            eprintln!("real +{} admin {op:?} {a:?}", self.real - T0);
        }
        self.call(rng, iso, op, req.to_json(), Then::Admin(a), seen);
    }

    fn clock_step(&mut self, rng: &mut Rng, seen: &mut Reached) {
        if rng.chance(0.8) {
            let now = self.now();
            // Often just across a minute boundary.
            let d = match rng.below(3) {
                0 => now.rem_euclid(60_000) + rng.range(1, 5_000),
                1 => rng.range(1, 10_000),
                _ => rng.range(1, 120_000),
            };
            if minute_of(now - d) < minute_of(now) {
                seen.steps_back_across_minute += 1;
            }
            seen.steps_back += 1;
            if trace() {
                eprintln!("real +{} clock step back {d}", self.real - T0);
            }
            self.offset -= d;
            self.backs.push((self.real, d));
        } else {
            seen.steps_forward += 1;
            self.offset += rng.range(1, 90_000);
            self.tick_clock();
        }
    }

    fn step(&mut self, rng: &mut Rng, seen: &mut Reached) {
        let e = rng.below(1000);
        if e < 800 {
            self.client(rng, seen);
        } else if e < 900 {
            self.admin(rng, seen);
        } else if e < 925 {
            seen.evictions += 1;
            if let Some(m) = self.reg.mem.take() {
                assert_eq!(m, self.load(), "S1: the records in memory and as stored differ");
            }
        } else if e < 935 {
            seen.deaths += 1;
            let iso = rng.below(self.isos.len() as u64) as usize;
            let i = &self.isos[iso];
            for a in i.unsent.iter().chain(i.inflight.iter().flat_map(|(_, b)| b)) {
                *self.lost_dead.entry(a.key.clone()).or_insert(0) += 1;
            }
            self.isos[iso] = Iso::new(i.life + 1);
        } else if e < 950 {
            self.clock_step(rng, seen);
        }
        let dt = match rng.below(100) {
            0..=59 => rng.range(0, 300),
            60..=89 => rng.range(0, 3_000),
            90..=97 => rng.range(0, 12_000),
            _ => rng.range(0, 70_000),
        };
        self.advance(rng, dt, seen);
        self.count_ends(seen);
    }

    fn count_ends(&mut self, seen: &mut Reached) {
        let now = self.now();
        for r in self.records_now().to_vec() {
            if r.previous_until_ms.is_some_and(|t| t <= now && t > now - 3_000) {
                seen.grace_ends += 1;
            }
            if r.expires_at_ms.is_some_and(|t| t <= now && t > now - 3_000) {
                seen.expiries += 1;
            }
        }
    }

    fn new(rng: &mut Rng) -> World {
        let n = rng.range(2, 4) as usize;
        let real = T0 + rng.range(0, 86_400_000);
        World {
            real,
            offset: 0,
            max_clock: real,
            backs: vec![],
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            seq: 0,
            isos: (0..n).map(|_| Iso::new(0)).collect(),
            reqs: vec![],
            reg: Reg::default(),
            history: vec![(i64::MIN, vec![])],
            usable_from: BTreeMap::new(),
            keys: vec![],
            next_id: 0,
            next_adm: 0,
            total: BTreeMap::new(),
            lost_dead: BTreeMap::new(),
            last_back: vec![0; n],
            listed: BTreeMap::new(),
        }
    }
}

#[test]
fn runtime_keys_and_their_usage_keep_their_promises_over_random_sequences() {
    let mut seen = Reached::default();
    let only: Option<u64> = std::env::var("PLUMGATE_MODEL_ONLY").ok().map(|v| v.parse().expect("a seed"));
    for seed in only.map_or(0..seeds(SEEDS), |n| n..n + 1) {
        let mut rng = Rng::for_seed(seed);
        let mut w = World::new(&mut rng);
        for step in 0..STEPS {
            replayable(seed, step, || w.step(&mut rng, &mut seen));
        }
    }
    if std::env::var_os("PLUMGATE_MODEL_SEEN").is_some() {
        eprintln!("{seen:#?}");
    }
    // F4 and F5 fixed: never again.
    assert_eq!((seen.f4, seen.f5, seen.f5_refused), (0, 0, 0), "{seen:?}");
    if only.is_some() {
        return;
    }
    let s = &seen;
    seeded::all_reached(&[
        ("keys honoured", s.honoured),
        ("keys honoured by an older state", s.honoured_old_state),
        ("401 unknown", s.refused_unknown),
        ("a failed sync's answer", s.refused_fail),
        ("waits for a sync in flight", s.waits),
        ("syncs", s.syncs),
        ("directories kept", s.directories),
        ("\"current\" replies kept", s.current_replies),
        ("replies not kept", s.replies_not_kept),
        ("replies overtaken", s.late_replies),
        ("calls lost before the registry", s.lost_before),
        ("replies lost", s.lost_after),
        ("write failures", s.write_failures),
        ("evictions", s.evictions),
        ("isolate deaths", s.deaths),
        ("clock steps back", s.steps_back),
        ("clock steps back across a minute", s.steps_back_across_minute),
        ("clock steps forward", s.steps_forward),
        ("429s", s.rate_refusals),
        ("creates", s.creates),
        ("revokes", s.revokes),
        ("rotations", s.rotations),
        ("rotations sent again", s.resent_rotations),
        ("grace ends", s.grace_ends),
        ("expiries", s.expiries),
        ("limit changes", s.limit_changes),
        ("lists", s.lists),
        ("revoked keys tried", s.revoked_tried),
        ("strangers", s.strangers),
        ("401s of a usable key checked", s.k2_checked),
        ("waits given up as stale", s.stale_waits),
    ]);
}

// ------------------------------------------------------------ findings
//
// Each reproduces, in a few calls made as the shells make them, a sequence
// the model met. An open one is `#[ignore]`d (`cargo test -p plumgate-core
// --test keys_model -- --ignored` runs it); the model counts its meetings
// with it (`Reached::f1` …) instead of failing.

/// An isolate's `finish` with a reply or a failure, as `src/callers.rs`
/// applies it: the copy (directory, version, fetched), pending usage and
/// shared counts.
fn apply(b: &mut Book, ticket: Ticket, began: i64, reply: Result<Reply, ApiError>, now: i64) -> Result<bool, ApiError> {
    let (current, usage) = b.syncs.end(ticket, reply.as_ref().err(), now);
    let reply = match reply {
        Ok(r) => r,
        Err(e) => {
            for d in &usage {
                pending_of(&mut b.pending, &d.id).merge(d);
            }
            return Err(e);
        }
    };
    let applies = current && keys::reply_applies(b.version.as_deref(), reply.version.as_deref(), reply.directory.is_some());
    if applies {
        if let Some(dir) = reply.directory {
            b.directory = dir;
        }
        b.version = reply.version;
        b.fetched_ms = Some(began);
    }
    for c in reply.counts {
        let counter = c.counter();
        keep_count(&mut b.shared, c.id, counter, minute_of(began));
    }
    Ok(b.fetched_ms >= Some(began))
}

/// `callers::admit`'s count and check for key `id` with `limit`.
fn admit_one(b: &mut Book, id: &str, limit: u32, now: i64) -> bool {
    let shared = b.shared.iter().find(|(k, _)| k == id).map_or(Counter::default(), |(_, c)| *c);
    let minute = rate_minute(shared, now);
    let used = shared.at(minute) + b.pending.iter().find(|d| d.id == id).map_or(0, |d| d.counter().at(minute)) + b.syncs.sending(id, minute);
    if check_rate(Some(limit), used, now).is_err() {
        return false;
    }
    pending_of(&mut b.pending, id).count_in(minute, now);
    true
}

/// The registry's `sync` over a usage table, its writes applied.
/// A runtime key `id` with the catalog scope, made a minute before T0
/// from random bytes all `seed`: the key and its record.
fn made_a_minute_ago(seed: u8, id: &str) -> (CallerKey, KeyRecord) {
    let key = CallerKey::new(keys::new_key(&[seed; keys::KEY_RANDOM_BYTES]).expose_secret());
    let new = NewKey { id: id.into(), scopes: vec!["catalog".into()], expires_at_ms: None, limits: Limits::default() };
    let rec = keys::create(&[], &[], new, hash_key(key.expose_secret()), T0 - 60_000).expect("made");
    (key, rec)
}

fn registry_sync(table: &mut BTreeMap<(String, i64), Usage>, records: &[KeyRecord], req: &Request, now: i64) -> Reply {
    let usage_of = |k: &str, d: i64| table.get(&(k.to_owned(), d)).copied().unwrap_or_default();
    let (writes, reply) = registry::sync(records, &keys::version(records), req.version.as_deref(), &req.usage, &usage_of, now);
    for w in writes {
        if let Write::Usage { key, day, usage } = w {
            table.insert((key, day), usage);
        }
    }
    reply
}

fn begin_sync(b: &mut Book, now: i64) -> (Request, Ticket) {
    let req = Request { version: b.version.clone(), usage: std::mem::take(&mut b.pending), ..Request::default() };
    let t = b.syncs.start(req.usage.clone(), now);
    (req, t)
}

/// F1 (open, and now in README's Usage paragraph; a cure needs batch ids
/// the registry remembers, or dropping a failed sync's usage, which would
/// under-count after a storage error): a sync whose reply is lost after the registry counted its
/// usage hands that usage back (`Syncs::end` on a failure, merged into
/// `pending` by `src/callers.rs::finish`), and the next sync counts it
/// again: `GET /v1/keys` shows the requests twice, and the key's minute
/// count across isolates is inflated, so a key below its
/// `requests_per_minute` is refused `429` (the model's F3 cases all
/// follow such a double count).
#[test]
#[ignore = "F1: open finding"]
fn f1_a_sync_whose_reply_was_lost_counts_its_requests_twice() {
    let t = T0 + 1_000;
    let mut b = Book::default();
    let mut table = BTreeMap::new();
    for _ in 0..3 {
        assert!(admit_one(&mut b, "a", 5, t));
    }
    // The sync reaches the registry, which counts the three; its reply is lost.
    let (req, ticket) = begin_sync(&mut b, t);
    let _lost = registry_sync(&mut table, &[], &req, t + 10);
    assert!(apply(&mut b, ticket, t, Err(ApiError::upstream_error("the key registry did not answer; retry in a moment")), t + 20).is_err());
    // The next sync sends them again.
    let (req, ticket) = begin_sync(&mut b, t + 4_000);
    let reply = registry_sync(&mut table, &[], &req, t + 4_010);
    apply(&mut b, ticket, t + 4_000, Ok(reply), t + 4_020).expect("answered");
    let usage = table[&("a".to_owned(), day_of(t))];
    // Three requests made: the key may make two more this minute.
    let more = (0..5).filter(|_| admit_one(&mut b, "a", 5, t + 4_030)).count();
    assert_eq!((usage.requests, usage.minute.count, more), (3, 3, 2), "three requests counted as {}, and {more} more let through of a limit of 5", usage.requests);
}

/// F2 (fixed by `quota::rate_minute`, 5efbc48): 6180a9b made a key's count survive a clock step back while
/// the isolate holds it unsent (`UsageDelta::count` counts into the later
/// minute), but once a sync has taken the pending count, the requests after
/// the step go into a fresh delta of the clock's (earlier) minute; the
/// registry, whose count is of the later minute, drops them
/// (`Counter::add`: "counts of a minute already over change nothing"), and
/// its reply leaves the isolate with the later minute's count without them:
/// one isolate lets `requests_per_minute` through again after each sync,
/// for as long as the clock is behind (README: "exact in one isolate").
#[test]
fn f2_after_a_clock_step_back_each_sync_forgets_the_isolate_s_own_requests() {
    let limit = 5;
    let mut b = Book::default();
    let mut table = BTreeMap::new();
    // Two requests 30 s into a minute, synced.
    let t = T0 + 30_000;
    let mut admitted = (0..2).filter(|_| admit_one(&mut b, "a", limit, t)).count();
    let (req, ticket) = begin_sync(&mut b, t);
    let reply = registry_sync(&mut table, &[], &req, t + 10);
    apply(&mut b, ticket, t, Ok(reply), t + 20).expect("answered");
    // The clock steps back 50 s, into the minute before, and stays behind
    // for three syncs' time.
    let mut now = T0 - 20_000;
    for _ in 0..3 {
        admitted += (0..limit).filter(|_| admit_one(&mut b, "a", limit, now)).count();
        let (req, ticket) = begin_sync(&mut b, now);
        let reply = registry_sync(&mut table, &[], &req, now + 10);
        apply(&mut b, ticket, now, Ok(reply), now + 20).expect("answered");
        now += 4_000;
    }
    assert!(now < T0, "still the minute before");
    assert!(admitted <= limit as usize, "one isolate let {admitted} requests through in its minute, limit {limit}");
}

/// F4 (fixed: `Syncs::end` keeps no reply of a sync begun `MAX_AGE_MS`
/// ago; the request syncs again): a request that syncs itself (`src/callers.rs::identify`, a
/// copy it cannot use) looks its key up in the reply's directory
/// (`keys::identify`) however long that reply took: the directory is as
/// the registry had it when the sync reached it, stamped with the sync's
/// start, already older than `MAX_AGE_MS` when used. A key revoked just
/// after the registry answered is honoured as long after the revocation
/// as the reply took (8.98 s here; unbounded by anything but the call's
/// own time), past the 8 s (and the 10 s promised) of the README.
#[test]
fn f4_a_slow_sync_s_directory_honours_a_key_revoked_since() {
    let (key, rec) = made_a_minute_ago(7, "a");
    let mut b = Book::default();
    // A request finds no copy and syncs: the registry answers at T0 + 10 ms.
    let (req, ticket) = begin_sync(&mut b, T0);
    let mut table = BTreeMap::new();
    let reply = registry_sync(&mut table, std::slice::from_ref(&rec), &req, T0 + 10);
    // The key is revoked at T0 + 20 ms; the reply arrives 9 s after the sync began.
    let revoked_at = T0 + 20;
    let now = T0 + 9_000;
    let kept = apply(&mut b, ticket, T0, Ok(reply), now);
    assert_eq!(kept, Ok(false), "not kept: the request syncs again");
    if kept == Ok(true) {
        let honoured = keys::identify(&b.directory, &key, now);
        assert!(honoured.is_none(), "honoured {} ms after its revocation", now - revoked_at);
    }
}

/// The sixtieth session's review: a request whose own sync (A) a later
/// sync's kept reply (B) overtook has a copy younger than A's reply would
/// give: `callers::finish` says so, and the request looks its key up
/// there rather than syncing again (two such overtakes were a `502
/// directory_changing`). Overtaken by a later sync's failure, it syncs
/// again (the isolate goes by its latest answer).
#[test]
fn a_sync_overtaken_by_a_later_kept_reply_needs_no_second_sync() {
    let (key, rec) = made_a_minute_ago(9, "n");
    let mut table = BTreeMap::new();
    for b_fails in [false, true] {
        let mut b = Book::default();
        let (req_a, a) = begin_sync(&mut b, T0);
        let (req_b, bt) = begin_sync(&mut b, T0 + SYNC_STALE_MS);
        let reply_b = if b_fails { Err(ApiError::upstream_error("registry down")) } else { Ok(registry_sync(&mut table, std::slice::from_ref(&rec), &req_b, T0 + SYNC_STALE_MS + 5)) };
        let _ = apply(&mut b, bt, T0 + SYNC_STALE_MS, reply_b, T0 + SYNC_STALE_MS + 10);
        let reply_a = registry_sync(&mut table, std::slice::from_ref(&rec), &req_a, T0 + 10);
        let kept = apply(&mut b, a, T0, Ok(reply_a), T0 + SYNC_STALE_MS + 20);
        assert_eq!(kept, Ok(!b_fails), "b fails: {b_fails}");
        if !b_fails {
            assert!(keys::identify(&b.directory, &key, T0 + SYNC_STALE_MS + 20).is_some(), "the key is in the younger copy");
        }
    }
}

/// F5 (fixed: the latest sync of the epoch is in flight while its usage is
/// in `Syncs::sending`): `Syncs::in_flight` took "the latest sync ended at or after
/// the latest began" for "none in flight". A sync that ends in the same
/// millisecond another begins (the Workers clock stands still between
/// I/O), or a stale one answering after a newer one began, leaves the
/// newer one in flight unseen: the requests beside it each sync
/// (`Recheck::Sync`, a registry call per request) or, for a key the copy
/// lacks, are refused `401` without asking (`Recheck::Refuse`): a burst of
/// a new key's first requests refused beside the one that asked, 2 s after
/// the key was made elsewhere in the model (README: "a burst of a new key's
/// first requests is never refused beside the one that asked"; "a new key
/// works … everywhere within a second").
#[test]
fn f5_a_sync_ending_as_another_begins_hides_the_one_in_flight() {
    let mut s = Syncs::default();
    // Sync A, begun by a request; answered 2 s later, in the millisecond
    // the next request of a key the copy lacks begins sync B.
    let a = s.start(Vec::new(), T0);
    let t = T0 + 2_000;
    s.end(a, None, t);
    let _b = s.start(Vec::new(), t);
    assert_eq!(s.recheck(keys::Seen::Absent, t), Recheck::Wait(SYNC_STALE_MS), "a request beside B");
    // A stale sync answering after a newer one began.
    let mut s = Syncs::default();
    let old = s.start(Vec::new(), T0);
    let _new = s.start(Vec::new(), T0 + SYNC_STALE_MS);
    s.end(old, None, T0 + SYNC_STALE_MS + 100);
    assert_eq!(s.recheck(keys::Seen::Unsure, T0 + SYNC_STALE_MS + 200), Recheck::Wait(SYNC_STALE_MS - 200));
}
