//! A model of the money path (spend caps, the order ledger, the registry's
//! looks) driven with random sequences, against the core functions the
//! Durable Objects call, in the orders their shells call them:
//! `quota`/`registry::{reserve, settle, record, reconciled, abandoned,
//! suspects, needs_second_look, nothing_settles, prune_before}` (the
//! `KeyRegistry`), `ledger::{admit, look, after_place, after_check,
//! after_refusal, as_answered, unheard, alarm, tell::*}` (the
//! `OrderLedger`), and `audit::{classify, with_fate, after_lost_answer}`
//! with `ledger::{look_after, after_reservation}` (the worker,
//! `src/orders.rs`). (The shared limiter and the per-minute counter are not
//! driven here.)
//!
//! The world: Xoxoday holds at most one order per poNumber (it refuses a
//! duplicate), an order becomes visible to getOrderDetails up to 120 s
//! after it was sent (realtime products), and placeOrder answers in every
//! way the ledger's tables name (placed, placed-but-failed, a timeout or a
//! 5xx with or without an order behind it, a 422 that leaves the fate
//! open, a definite refusal, a penalty, a token problem, the duplicate
//! answer). Two keys send copies of orders under a few poNumbers, with two
//! bodies each; requests interleave at every await of the shells (the
//! reservation, the ledger call, the run's send and its answer, the look
//! after a lost answer, the settle and its retries), answers are lost
//! (registry and ledger, before or after they acted), workers die between
//! reserve and settle, ledger objects are evicted mid-run (the record
//! reloads from its stored text), the registry forgets its memory, alarms
//! fire (the ledger's checks and retention, the registry's looks and
//! pruning), the operator changes caps mid-flight, and the clock runs
//! forward by seconds to days and steps back (minutes, rarely hours; real
//! time, which Xoxoday goes by, never goes back).
//!
//! The promises checked after every step (contract §5, README "Limits"):
//! - I1 a cap is never overspent: the amount of orders Xoxoday really holds
//!   (not failed), sent by a key's request whose hold was of day D, is at
//!   most the highest cap that key had on D (days on which the key sent
//!   without a cap are left out).
//! - I2 a caller (or a look) is never told untruly: "placed" (fate placed,
//!   or an answer with status 1) only when Xoxoday holds this body's order
//!   and it did not fail; "not placed" only when it holds none of this
//!   body (since the ledger last let its record go by retention).
//! - I3 no blind re-send: placeOrder is sent for a poNumber only while
//!   Xoxoday holds no order under it (or the ledger's record of it ended
//!   by retention: documented).
//! - I4 a hold's `holders` never exceeds the requests that took it and have
//!   not settled it.
//! - I5 a hold's amount is counted at most once per life of the hold.
//! - I6 a hold is never freed while the order its own key's request sent
//!   is placed at Xoxoday (an under-count that would let the cap pass).
//! - the ledger's record loads back from its stored text as written.
//!
//! What the model takes as given (the shells' timing, not the core's
//! rules): a worker reaches the ledger within seconds of its reservation
//! and settles within `waitUntil`, and a run ends within placeOrder's
//! timeout (`World::flush` before every longer clock step); ledger alarms
//! fire when due (and at random times besides: `alarm` is idempotent), the
//! registry's when its rules set it (and at random). Orders the README's
//! known under-count frees (a copy that placed nothing, refused, freeing a
//! hold another copy's order needs) are set aside from I1 and I6 and
//! counted.
//!
//! Deterministic: seeds `0..N`, each its own sequence; a failure names its
//! seed and step. `PLUMGATE_MODEL_SEEDS=N` runs N seeds instead of the
//! default [`SEEDS`] × [`STEPS`] (`PLUMGATE_MODEL_STEPS` sets the steps,
//! `PLUMGATE_MODEL_TRACE=<seed>` prints that seed's events). The default
//! takes about 5 s in the debug profile; 1200 seeds × 4000 steps about 50 s
//! with `--release`.

mod seeded;

use plumgate_core::audit::{self, Answered, Attempt};
use plumgate_core::errors::{ApiError, CallError};
use plumgate_core::http::HttpAnswer;
use plumgate_core::ledger::{self as lg, tell, Admission, AfterPlace, AlarmStep, Loaded, Look, Reconciled, Record, Store};
use plumgate_core::quota::{Hold, HoldChange, HoldState, Usage};
use plumgate_core::registry::{self, Write};
use plumgate_core::time::day_of;
use plumgate_core::upstream::Observed;
use plumgate_core::wire::ledger::{Fate, LedgerReply, Outcome};
use plumgate_core::wire::registry::Request as RegReq;
use seeded::{replayable, seeds, Rng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// Seeds of a default run, and the steps of each.
const SEEDS: u64 = 30;
const STEPS: u64 = 2_000;

const T0: i64 = 1_795_626_582_000;
const M: i64 = 1_000_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
const KEYS: [&str; 2] = ["k0", "k1"];
const POS: usize = 5;

type HoldId = (String, String, String);

/// One order at Xoxoday.
#[derive(Debug, Clone)]
struct XOrder {
    fp: String,
    failed: bool,
    /// Real time from which getOrderDetails sees it.
    visible_at: i64,
    /// The ledger's retention epoch of its poNumber when it was sent.
    epoch: u32,
    /// The sending request's key and hold day, when it had a cap.
    attr: Option<(usize, i64)>,
    amount: i64,
    id: u64,
    /// The request whose run sent it.
    sender: u64,
}

#[derive(Default)]
struct Reg {
    holds: BTreeMap<HoldId, Hold>,
    usage: BTreeMap<(String, i64), Usage>,
    audit: HashMap<String, String>,
    nothing_seen: Vec<(HoldId, Hold, i64)>,
    idle_after: Option<HoldId>,
}

#[derive(Default, Clone)]
struct Ledger {
    record: Option<String>,
    mark: Option<String>,
    tells: Option<String>,
    run: Option<u64>,
    alarm_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitKind {
    Place,
    TurnedAwayLook,
    LostLook,
}

enum RunStage {
    Start,
    Sent { pending: Box<Record>, result: Result<HttpAnswer, CallError> },
}

struct Run {
    po: String,
    fp: String,
    data: Value,
    stage: RunStage,
    sender: u64,
    attr: Option<(usize, i64)>,
    amount: i64,
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    Reserve,
    ToLedger,
    Waiting(u64, WaitKind, Option<audit::Result>),
    Answered { reply: LedgerReply, lost: bool },
    LookAfterLoss { result: audit::Result },
    Settle { result: audit::Result },
    Done,
}

#[derive(Debug, Clone)]
struct Req {
    key: usize,
    data: Value,
    attempt: Attempt,
    held: bool,
    created: bool,
    turned_away: Option<ApiError>,
    stage: Stage,
    /// The hold's day this request's spend belongs to (capped keys).
    spend_day: Option<i64>,
    settle_tries: u32,
}

/// What the default run must reach.
#[derive(Default, Debug)]
struct Seen {
    placed: u64,
    replays: u64,
    joins: u64,
    lost_answers: u64,
    lost_looks_settled: u64,
    turned_away_answered: u64,
    quota_refusals: u64,
    checks_settled: u64,
    not_placed_proofs: u64,
    tells: u64,
    abandoned: u64,
    second_looks: u64,
    retention_deletes: u64,
    pending_expired: u64,
    ledger_restarts: u64,
    worker_crashes: u64,
    cap_changes: u64,
    clock_back: u64,
    midnights: u64,
    settle_retries: u64,
    duplicates_found: u64,
    known_undercounts: u64,
}

struct World {
    real: i64,
    skew: i64,
    caps: [Option<i64>; 2],
    retention_secs: u32,
    xo: HashMap<String, XOrder>,
    epoch: HashMap<String, u32>,
    ledgers: HashMap<String, Ledger>,
    runs: BTreeMap<u64, Run>,
    reqs: BTreeMap<u64, Req>,
    reg: Reg,
    /// Requests that took a hold and have not settled it (crashed ones stay).
    outstanding: HashMap<HoldId, u32>,
    /// Holds counted in their current life.
    counted: HashMap<HoldId, bool>,
    /// Highest cap a key reserved under on a day; days a key sent uncapped.
    caps_seen: HashMap<(usize, i64), i64>,
    uncapped: HashMap<(usize, i64), bool>,
    next_id: u64,
    order_ids: u64,
    po_base: u64,
    trace: bool,
    reg_alarm_at: Option<i64>,
    dropper: Option<u64>,
    /// getOrderDetails fails for everyone (hours, now and then).
    outage: bool,
    known_undercounts: std::collections::HashSet<(usize, String, String)>,
}

fn body(po: &str, b: usize) -> (Value, String) {
    let (q, d) = if b == 0 { (1, 30) } else { (2, 25) };
    (json!({"poNumber": po, "productId": 10100, "quantity": q, "denomination": d, "email": "someone@example.com"}), format!("fp-{po}-{b}"))
}

fn details(o: &XOrder, data: &Value) -> Value {
    json!({
        "orderId": o.id,
        "orderStatus": if o.failed { "failed" } else { "complete" },
        "quantity": data["quantity"],
        "voucherDetails": [{"productId": data["productId"], "denomination": data["denomination"], "quantity": data["quantity"]}],
    })
}

fn answered_of(reply: &LedgerReply) -> Answered<'_> {
    match &reply.outcome {
        Outcome::Answer { status, body, reconciled, .. } => Answered::Answer { status: *status, body: body.as_bytes(), replayed: reply.replayed, reconciled: *reconciled },
        Outcome::Error { error, .. } => Answered::Error { status: error.status, code: error.code },
    }
}

fn lost_reply() -> LedgerReply {
    LedgerReply { outcome: Outcome::Error { error: ApiError::upstream_error("the order ledger could not be reached or its answer was lost"), upstream_status: None }, replayed: false, fate: Fate::Unknown }
}

fn refusal(error: ApiError, fate: Fate) -> LedgerReply {
    LedgerReply { outcome: Outcome::Error { error, upstream_status: None }, replayed: false, fate }
}

impl World {
    fn new(rng: &mut Rng) -> World {
        let retention_secs = *rng.pick(&[2_592_000u32, 2_592_000, 86_400, 7_200, 1]);
        World {
            real: T0,
            skew: 0,
            caps: [Some(100 * M), if rng.chance(0.5) { Some(80 * M) } else { None }],
            retention_secs,
            xo: HashMap::new(),
            epoch: HashMap::new(),
            ledgers: HashMap::new(),
            runs: BTreeMap::new(),
            reqs: BTreeMap::new(),
            reg: Reg::default(),
            outstanding: HashMap::new(),
            counted: HashMap::new(),
            caps_seen: HashMap::new(),
            uncapped: HashMap::new(),
            next_id: 0,
            order_ids: 1000,
            po_base: 0,
            trace: false,
            reg_alarm_at: None,
            dropper: None,
            outage: false,
            known_undercounts: Default::default(),
        }
    }

    fn now(&self) -> i64 {
        self.real + self.skew
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn ledger(&mut self, po: &str) -> &mut Ledger {
        self.ledgers.entry(po.to_string()).or_default()
    }

    fn loaded(&self, po: &str) -> Loaded {
        lg::load(Ok(self.ledgers.get(po).and_then(|l| l.record.clone())))
    }

    fn epoch_of(&self, po: &str) -> u32 {
        self.epoch.get(po).copied().unwrap_or(0)
    }

    /// Xoxoday holds this body's order, sent since the ledger last let the
    /// poNumber's record go by retention.
    fn xo_current(&self, po: &str, fp: &str) -> Option<&XOrder> {
        self.xo.get(po).filter(|o| o.fp == fp && o.epoch == self.epoch_of(po))
    }

    // ---------------------------------------------------------------- claims

    /// I2: what a caller or a look is told about (po, fp).
    fn claim(&self, po: &str, fp: &str, reply: &LedgerReply, who: &str) {
        let placed_answer = matches!(&reply.outcome, Outcome::Answer { status, body, .. } if plumgate_core::upstream::is_plum_success("placeOrder", *status, body.as_bytes()));
        let order = self.xo.get(po).filter(|o| o.fp == fp);
        if reply.fate == Fate::Placed || placed_answer {
            assert!(order.is_some_and(|o| !o.failed), "I2 {who}: told placed ({:?}) but Xoxoday holds {:?}", reply.fate, self.xo.get(po));
        }
        if reply.fate == Fate::Failed {
            assert!(order.is_some_and(|o| o.failed), "I2 {who}: told failed but Xoxoday holds {:?}", self.xo.get(po));
        }
        if reply.fate == Fate::NotPlaced {
            assert!(self.xo_current(po, fp).is_none_or(|o| o.failed), "I2 {who}: told not placed ({:?}) but Xoxoday holds {:?}", reply.outcome, self.xo.get(po));
        }
    }

    // ------------------------------------------------------------- registry

    /// The registry's `commit`, with the hooks of I5 and I6.
    fn apply(&mut self, writes: &[Write], seen_why: &str) {
        if self.trace {
            for w in writes.iter().filter(|w| !matches!(w, Write::Audit { .. })) {
                eprintln!("  [{} day {}] {seen_why}: {w:?}", self.now(), day_of(self.now()));
            }
        }
        let mut last_hold: Option<HoldId> = None;
        for w in writes {
            match w {
                Write::Hold { key, po, fp, change } => {
                    let id = (key.clone(), po.clone(), fp.clone());
                    match change {
                        HoldChange::Keep => {}
                        HoldChange::Drop => {
                            if let Some(h) = self.reg.holds.get(&id).copied() {
                                self.check_drop(&id, &h, seen_why);
                            }
                            self.reg.holds.remove(&id);
                            self.counted.remove(&id);
                        }
                        HoldChange::Put(h) => {
                            self.reg.holds.insert(id.clone(), *h);
                        }
                    }
                    last_hold = Some(id);
                }
                Write::Usage { key, day, usage } => {
                    let before = self.reg.usage.get(&(key.clone(), *day)).copied().unwrap_or_default();
                    assert!(usage.amount >= before.amount && usage.orders >= before.orders, "usage went down: {before:?} -> {usage:?}");
                    if usage.amount > before.amount {
                        let id = last_hold.clone().filter(|h| &h.0 == key).expect("an order counted with no hold written before it");
                        let c = self.counted.entry(id.clone()).or_default();
                        assert!(!*c, "I5 ({seen_why}): hold {id:?} counted twice in one life");
                        *c = true;
                    }
                    self.reg.usage.insert((key.clone(), *day), *usage);
                }
                Write::Audit { request_id, entry, replace, .. } => {
                    if *replace || !self.reg.audit.contains_key(request_id) {
                        self.reg.audit.insert(request_id.clone(), entry.clone());
                    }
                }
                Write::Key(_) | Write::Seen { .. } => {}
            }
        }
    }

    /// I6: a hold freed while the order its key's request sent is placed.
    fn check_drop(&mut self, id: &HoldId, h: &Hold, why: &str) {
        let key = KEYS.iter().position(|k| *k == id.0).unwrap();
        if let Some(o) = self.xo.get(&id.1).filter(|o| o.fp == id.2) {
            if !o.failed && o.attr == Some((key, h.day)) {
                if self.dropper.is_some_and(|d| d != o.sender) {
                    self.known_undercounts.insert((key, id.1.clone(), id.2.clone()));
                    return;
                }
                panic!("I6 ({why}): hold {id:?} {h:?} freed while its key's order is placed at Xoxoday: {o:?}");
            }
        }
    }

    fn spent(&self, key: &str, day: i64) -> (i64, i64) {
        let placed = self.reg.usage.get(&(key.to_string(), day)).map_or(0, |u| u.amount);
        let reserved = self.reg.holds.iter().filter(|((k, _, _), h)| k == key && h.day == day && h.state != HoldState::Committed).map(|(_, h)| h.amount).sum();
        (placed, reserved)
    }

    /// What the registry's `on_fetch` does about its alarm after an operation.
    fn registry_touched(&mut self, refused_for_now: bool) {
        let now = self.now();
        if refused_for_now && registry::look_sooner(self.reg_alarm_at, now) {
            self.reg_alarm_at = Some(now + registry::LOOK_AFTER_REFUSAL_MS);
        }
        if self.reg_alarm_at.is_none() {
            self.reg_alarm_at = Some(now + registry::PRUNE_EVERY_MS);
        }
    }

    fn registry_reserve(&mut self, r: &Req) -> (Vec<Write>, plumgate_core::wire::registry::Reply) {
        let now = self.now();
        let a = &r.attempt;
        let id = (a.key.clone(), a.po_number.clone(), a.fingerprint.clone());
        let existing = self.reg.holds.get(&id).copied();
        let spent = self.spent(&a.key, day_of(now));
        let other = self.reg.holds.keys().any(|(k, p, f)| *k == a.key && *p == a.po_number && *f != a.fingerprint);
        registry::reserve(None, a, self.caps[r.key], existing.as_ref(), spent, &|| other, now)
    }

    fn registry_settle(&mut self, req_id: u64, r: &Req, result: &audit::Result) {
        if self.reg.audit.contains_key(&r.attempt.request_id) {
            return;
        }
        let now = self.now();
        let a = &r.attempt;
        let id = (a.key.clone(), a.po_number.clone(), a.fingerprint.clone());
        let hold = self.reg.holds.get(&id).copied();
        let usage = self.reg.usage.clone();
        let key = a.key.clone();
        let usage_of = |day: i64| usage.get(&(key.clone(), day)).copied().unwrap_or_default();
        let writes = registry::settle(a, result, r.held, r.created, hold.as_ref(), &usage_of, now);
        self.registry_touched(false);
        // The known under-count (README; `Fate::Refused` says "this request
        // placed nothing", not "the order was not placed"): a copy that did
        // not send the order, refused, frees the hold another copy's order
        // needs. Such orders are set aside from I1 and I6, and counted.
        self.dropper = (result.outcome.fate() == plumgate_core::quota::Fate::Refused).then_some(req_id);
        self.apply(&writes, &format!("settle {:?} held {} created {}", result.outcome, r.held, r.created));
        self.dropper = None;
        if r.held {
            let n = self.outstanding.entry(id).or_default();
            *n = n.saturating_sub(1);
        }
    }

    fn registry_reconciled(&mut self, request_json: &str) {
        let req = RegReq::from_json(request_json.as_bytes()).expect("a stored tell reads");
        let (a, result) = req.reconciliation().expect("a tell is a reconciliation");
        let holds: Vec<(String, Hold)> = self.reg.holds.iter().filter(|((_, p, f), _)| *p == a.po_number && *f == a.fingerprint).map(|((k, _, _), h)| (k.clone(), *h)).collect();
        let usage = self.reg.usage.clone();
        let usage_of = |key: &str, day: i64| usage.get(&(key.to_string(), day)).copied().unwrap_or_default();
        let writes = registry::reconciled(&a, &result, &holds, &usage_of, self.now());
        self.registry_touched(false);
        self.apply(&writes, &format!("reconciled {:?}", result.outcome));
    }

    /// The registry's alarm: `settle_abandoned`, then the pruning.
    fn registry_alarm(&mut self, rng: &mut Rng, seen: &mut Seen) {
        let now = self.now();
        let today = day_of(now);
        let candidates: Vec<(HoldId, Hold)> = self.reg.holds.iter().filter(|(_, h)| h.state != HoldState::Committed && h.day >= today - 1).map(|(i, h)| (i.clone(), *h)).collect();
        let earlier = std::mem::take(&mut self.reg.nothing_seen);
        let awaited: Vec<HoldId> = earlier.iter().map(|(i, _, _)| i.clone()).collect();
        let more_to_look = candidates.len() > registry::LOOKS_PER_ALARM;
        let mut recheck = false;
        let (suspects, idle_after) = registry::suspects(candidates, today, &awaited, self.reg.idle_after.as_ref());
        self.reg.idle_after = idle_after;
        for ((key, po, fp), hold) in suspects {
            // The look may get no answer in time.
            if rng.chance(0.1) {
                continue;
            }
            // A look that would wait for a run gets no answer in time. No
            // legacy objects in this model: their look knows nothing too.
            let Ok(reply) = self.answer_look(&po, &fp) else { continue };
            let now = self.now();
            if registry::needs_second_look(&reply) {
                let id = (key.clone(), po.clone(), fp.clone());
                let first = earlier.iter().find(|(i, h, _)| *i == id && *h == hold).map(|(_, _, at)| *at);
                if !registry::nothing_settles(first, now) {
                    self.reg.nothing_seen.push((id, hold, first.unwrap_or(now)));
                    recheck = true;
                    continue;
                }
                seen.second_looks += 1;
            }
            let id = (key.clone(), po.clone(), fp.clone());
            if self.reg.holds.get(&id).copied() != Some(hold) {
                continue;
            }
            let usage = self.reg.usage.get(&(key.clone(), hold.day)).copied().unwrap_or_default();
            let writes = registry::abandoned(&key, &po, &fp, &hold, &reply, usage, self.retention_secs);
            if !writes.is_empty() {
                seen.abandoned += 1;
            }
            self.apply(&writes, &format!("abandoned after {:?}", reply.fate));
        }
        {
            let (_, day_before) = registry::prune_before(self.now(), Some(self.retention_secs));
            self.reg.usage.retain(|(_, d), _| *d >= day_before);
            let gone: Vec<HoldId> = self.reg.holds.iter().filter(|(_, h)| h.day < day_before).map(|(i, _)| i.clone()).collect();
            for g in gone {
                self.reg.holds.remove(&g);
                self.counted.remove(&g);
            }
        }
        let rows_left = !self.reg.holds.is_empty() || !self.reg.usage.is_empty();
        let now = self.now();
        let set_in = self.reg_alarm_at.map(|at| at - now);
        if let Some(next) = registry::next_alarm_in(registry::AlarmRun { recheck, more_to_look, rows_left }, set_in) {
            self.reg_alarm_at = Some(now + next);
        }
    }

    // --------------------------------------------------------------- ledger

    /// The ledger's `set_alarm` (never before the next millisecond).
    fn set_alarm(&mut self, po: &str, at: i64) {
        let now = self.now();
        self.ledger(po).alarm_at = Some(at.max(now + 1));
    }

    /// `ensure_alarm`: an alarm by then, unless one is set.
    fn ensure_alarm(&mut self, po: &str, by: Option<i64>) {
        if let Some(by) = by {
            if self.ledger(po).alarm_at.is_none() {
                self.set_alarm(po, by);
            }
        }
    }

    /// The ledger's `commit`: the record's one write and its alarm.
    fn ledger_commit(&mut self, po: &str, store: Store, fp: &str) {
        let now = self.now();
        if self.trace {
            eprintln!("  [{now} real {}] ledger {po} commit {store:?}", self.real);
        }
        let retention_ms = i64::from(self.retention_secs) * 1000;
        match &store {
            Store::Keep => {}
            Store::Forget => {
                let (mark, until) = lg::not_placed_mark(fp, now);
                let l = self.ledger(po);
                l.mark = Some(mark);
                l.record = None;
                self.set_alarm(po, until);
            }
            Store::Save(r) => {
                let text = serde_json::to_string(r).expect("a record is written");
                assert_eq!(lg::load(Ok(Some(text.clone()))), Loaded::Some(r.clone()), "the record does not load back as written");
                self.ledger(po).record = Some(text);
            }
        }
        if let Some(at) = lg::alarm_after_write(&store, true, retention_ms, now) {
            self.set_alarm(po, at);
        }
    }

    /// The ledger's `place`: an answer now, or a run to wait for.
    fn ledger_place(&mut self, req: u64, seen: &mut Seen) -> Result<LedgerReply, u64> {
        let r = self.reqs[&req].clone();
        let po = r.attempt.po_number.clone();
        let fp = r.attempt.fingerprint.clone();
        let now = self.now();
        let loaded = self.loaded(&po);
        let run = self.ledger(&po).run;
        let in_flight = run.map(|id| self.runs[&id].fp.clone());
        match lg::admit(&loaded, &fp, in_flight.as_deref(), now) {
            Admission::Answer { outcome, replayed, fate, alarm_by_ms } => {
                self.ensure_alarm(&po, alarm_by_ms);
                seen.replays += u64::from(replayed);
                let reply = LedgerReply { outcome, replayed, fate };
                self.claim(&po, &fp, &reply, "an admission");
                Ok(reply)
            }
            Admission::Settled(outcome) => {
                self.ledger_commit(&po, Store::Forget, &fp);
                let reply = LedgerReply { outcome, replayed: true, fate: Fate::NotPlaced };
                self.claim(&po, &fp, &reply, "an unheard settlement");
                Ok(reply)
            }
            Admission::Join => match run {
                Some(id) => {
                    seen.joins += 1;
                    Err(id)
                }
                None => Ok(lost_reply()),
            },
            Admission::Run => {
                let id = self.id();
                let attr = r.spend_day.map(|d| (r.key, d));
                self.runs.insert(id, Run { po: po.clone(), fp, data: r.data.clone(), stage: RunStage::Start, sender: req, attr, amount: r.attempt.amount });
                self.ledger(&po).run = Some(id);
                Err(id)
            }
        }
    }

    /// The ledger's `answer_look`: `None` when it waits for a run (the
    /// worker's look is then given up: it waits at most LOOK_WAIT_MS).
    fn answer_look(&mut self, po: &str, fp: &str) -> Result<LedgerReply, u64> {
        let now = self.now();
        let loaded = self.loaded(po);
        let l = self.ledger(po).clone();
        let in_flight = l.run.map(|id| self.runs[&id].fp.clone());
        let not_placed = l.mark.as_deref().and_then(|m| lg::read_mark(m, now).ok()).map(|(f, _)| f.to_string());
        match lg::look(&loaded, fp, in_flight.as_deref(), not_placed.as_deref(), now) {
            Look::Answer { outcome, fate, alarm_by_ms } => {
                self.ensure_alarm(po, alarm_by_ms);
                let reply = LedgerReply { outcome, replayed: true, fate };
                self.claim(po, fp, &reply, "a look");
                Ok(reply)
            }
            Look::Join => Err(l.run.unwrap()),
            Look::NotPlaced => Ok(refusal(lg::found_not_placed(), Fate::NotPlaced)),
            Look::Nothing => Ok(refusal(lg::nothing_found(), Fate::Unknown)),
        }
    }

    /// Xoxoday's answer to a placeOrder sent now (the order made, or not).
    fn xoxoday_place(&mut self, run: &Run, rng: &mut Rng, seen: &mut Seen) -> Result<HttpAnswer, CallError> {
        let epoch = self.epoch_of(&run.po);
        if let Some(o) = self.xo.get(&run.po) {
            assert!(o.epoch < epoch, "I3: placeOrder sent again for {} while Xoxoday holds {o:?} (epoch {epoch})", run.po);
            seen.duplicates_found += 1;
            return match rng.below(10) {
                0 => Err(CallError::Timeout(130_000)),
                _ => Ok(HttpAnswer { status: 409, body: br#"{"code":409,"errorId":"PLE10043","errorInfo":"duplicate poNumber","error":"an order with this poNumber already exists"}"#.to_vec(), retry_after: None }),
            };
        }
        let (attr, amount) = (run.attr, run.amount);
        let roll = rng.below(100);
        let makes = matches!(roll, 0..=39 | 40..=44 | 45..=56 | 65..=69 | 75..=76);
        let failed = (40..=44).contains(&roll);
        if makes {
            self.order_ids += 1;
            let o = XOrder { fp: run.fp.clone(), failed, visible_at: self.real + rng.range(0, 120_000), epoch, attr, amount, id: self.order_ids, sender: run.sender };
            if !failed {
                seen.placed += 1;
            }
            if self.trace {
                eprintln!("  [{} day {}] Xoxoday makes {o:?} for {}", self.now(), day_of(self.now()), run.po);
            }
            self.xo.insert(run.po.clone(), o);
        }
        let ok = |status: u16, body: String| Ok(HttpAnswer { status, body: body.into_bytes(), retry_after: None });
        match roll {
            0..=44 => {
                let d = details(&self.xo[&run.po], &run.data);
                ok(200, json!({"data": {"placeOrder": {"status": 1, "data": d}}}).to_string())
            }
            45..=64 => Err(CallError::Timeout(130_000)),
            65..=74 => ok(502, "<html>bad gateway</html>".into()),
            75..=81 => ok(422, r#"{"code":422,"errorId":"PLE10010","errorInfo":"failed to redeem points","error":"failed"}"#.into()),
            82..=89 => ok(404, r#"{"code":404,"errorId":"PLE10018","errorInfo":"denomination not available","error":"x"}"#.into()),
            90..=94 => Ok(HttpAnswer { status: 429, body: br#"{"errors":[{"message":"auth.request_limit_exceeded","penaltySeconds":30}]}"#.to_vec(), retry_after: None }),
            _ => Err(CallError::Api(ApiError::upstream_error("no token could be had"))),
        }
    }

    /// getOrderDetails for `po` now.
    fn xoxoday_check(&self, po: &str, data: &Value, rng: &mut Rng) -> Reconciled {
        if self.outage {
            return Reconciled::Unknown;
        }
        let roll = rng.below(100);
        if roll < 6 {
            return Reconciled::Unknown;
        }
        if roll < 9 {
            return Reconciled::NotAsked(rng.range(1, 60) as u64);
        }
        if roll < 11 {
            return Reconciled::Limited(Observed::Stated(30));
        }
        if roll < 13 {
            return Reconciled::Unclear;
        }
        match self.xo.get(po).filter(|o| o.visible_at <= self.real) {
            Some(o) => {
                // The order as Xoxoday holds it: its own body's fields.
                let (d, _) = body(po, usize::from(!o.fp.ends_with("-0")));
                debug_assert!(data.is_object() || data.is_null());
                Reconciled::Found(details(o, &d))
            }
            None => Reconciled::NotFound,
        }
    }

    /// One await of a run: the start (tells, limiter, pending record,
    /// the send), then the answer (and the check it may ask for) and the
    /// record's write.
    fn advance_run(&mut self, id: u64, rng: &mut Rng, seen: &mut Seen) {
        let mut run = self.runs.remove(&id).unwrap();
        let now = self.now();
        match std::mem::replace(&mut run.stage, RunStage::Start) {
            RunStage::Start => {
                let tells = tell::load(self.ledger(&run.po).tells.clone());
                if !tells.is_empty() {
                    let kept = self.tell_all(tell::before_run(tells), rng, seen);
                    self.ledger(&run.po).tells = (!kept.is_empty()).then(|| tell::store(&kept));
                }
                if rng.chance(0.05) {
                    let f = lg::not_sent(ApiError::rate_limited("placeOrder", 5));
                    self.ledger_commit(&run.po, f.store, &run.fp);
                    return self.end_run(id, run, f.outcome, f.fate, seen);
                }
                let pending = Record::pending(&run.fp, &run.data, now, 130_000, 15_000).on_account("acct");
                self.ledger_commit(&run.po, Store::Save(pending.clone()), &run.fp);
                let result = self.xoxoday_place(&run, rng, seen);
                run.stage = RunStage::Sent { pending: Box::new(pending), result };
                self.runs.insert(id, run);
            }
            RunStage::Sent { pending, result } => {
                let answered = result.as_ref().ok().map(|a| a.status);
                let f = match lg::after_place(result, None, &pending, now) {
                    AfterPlace::Finish(f) => f,
                    AfterPlace::Check(record) => {
                        let c = self.xoxoday_check(&run.po, &run.data, rng);
                        lg::as_answered(lg::after_check(&record, c, now), answered)
                    }
                    AfterPlace::Confirm(record) => {
                        let c = self.xoxoday_check(&run.po, &run.data, rng);
                        lg::as_answered(lg::after_refusal(&record, c, now), answered)
                    }
                };
                self.ledger_commit(&run.po, f.store, &run.fp);
                self.end_run(id, run, f.outcome, f.fate, seen);
            }
        }
    }

    fn end_run(&mut self, id: u64, run: Run, outcome: Outcome, fate: Fate, _seen: &mut Seen) {
        self.ledger(&run.po).run = None;
        let waiters: Vec<u64> = self.reqs.iter().filter(|(_, r)| matches!(r.stage, Stage::Waiting(w, ..) if w == id)).map(|(i, _)| *i).collect();
        for w in waiters {
            let Stage::Waiting(_, kind, first) = self.reqs[&w].stage.clone() else { unreachable!() };
            let replayed = kind != WaitKind::Place || w != run.sender;
            let reply = LedgerReply { outcome: outcome.clone(), replayed, fate };
            self.claim(&run.po, &run.fp, &reply, "a run's answer");
            let stage = match (kind, first) {
                (WaitKind::LostLook, Some(first)) => {
                    Stage::Settle { result: audit::after_lost_answer(first, &reply) }
                }
                _ => Stage::Answered { reply, lost: false },
            };
            self.reqs.get_mut(&w).unwrap().stage = stage;
        }
    }

    /// The ledger object is evicted: its run dies (waiters get no answer),
    /// its stored record stays.
    fn ledger_restart(&mut self, po: &str, seen: &mut Seen) {
        seen.ledger_restarts += 1;
        if let Some(id) = self.ledger(po).run.take() {
            self.runs.remove(&id);
            for r in self.reqs.values_mut() {
                match &r.stage {
                    Stage::Waiting(w, WaitKind::LostLook, Some(first)) if *w == id => r.stage = Stage::Settle { result: first.clone() },
                    Stage::Waiting(w, ..) if *w == id => r.stage = Stage::Answered { reply: lost_reply(), lost: true },
                    _ => {}
                }
            }
        }
    }

    /// Send every due tell once; the ones to keep.
    fn tell_all(&mut self, tells: Vec<tell::Tell>, rng: &mut Rng, seen: &mut Seen) -> Vec<tell::Tell> {
        let now = self.now();
        let mut kept = Vec::new();
        for t in tells {
            if t.next_at_ms > now {
                kept.push(t);
                continue;
            }
            // Reached and applied, answer lost; reached; not reached.
            let roll = rng.below(10);
            let told = roll >= 3;
            if roll >= 1 {
                seen.tells += 1;
                self.registry_reconciled(&t.request);
            }
            match tell::after(t, told, self.now()) {
                tell::Next::Told | tell::Next::GiveUp(_) => {}
                tell::Next::Again(t) => kept.push(t),
            }
        }
        kept
    }

    /// The ledger's alarm for `po` (fired at random: a superset of the
    /// times it is set for).
    fn ledger_alarm(&mut self, po: &str, rng: &mut Rng, seen: &mut Seen) {
        let now = self.now();
        let loaded = self.loaded(po);
        let in_flight = self.ledger(po).run.is_some();
        let mut tells = tell::load(self.ledger(po).tells.clone());
        let step = lg::alarm(&loaded, in_flight, i64::from(self.retention_secs) * 1000, now);
        if self.trace && !matches!(step, AlarmStep::Later(_) | AlarmStep::Nothing) {
            eprintln!("  [{now} real {}] ledger {po} alarm {step:?}", self.real);
        }
        match step {
            AlarmStep::Later(at) => self.set_alarm(po, at),
            AlarmStep::Nothing => {
                if let Some(m) = self.ledger(po).mark.clone() {
                    match lg::read_mark(&m, now) {
                        Ok((_, until)) => self.set_alarm(po, until),
                        Err(_) => self.ledger(po).mark = None,
                    }
                }
            }
            step @ (AlarmStep::Delete | AlarmStep::Expire) => {
                if step == AlarmStep::Delete {
                    seen.retention_deletes += 1;
                } else {
                    seen.pending_expired += 1;
                }
                *self.ledger(po) = Ledger { run: self.ledger(po).run, alarm_at: self.ledger(po).alarm_at, ..Ledger::default() };
                *self.epoch.entry(po.to_string()).or_default() += 1;
                // The tells read before the delete are still sent, and
                // those not due stored again (src/objects/ledger.rs: the
                // run's `tell_and_keep` after `delete_all`).
            }
            AlarmStep::Check(record) => {
                let data = record.order.clone();
                let c = self.xoxoday_check(po, &data, rng);
                if self.trace {
            eprintln!("  [{now} real {}] ledger {po} check: {c:?}", self.real);
        }
        let f = lg::unheard(&record, lg::after_check(&record, c, now), self.now());
                if f.fate != Fate::Unknown {
                    seen.checks_settled += 1;
                    seen.not_placed_proofs += u64::from(f.fate == Fate::NotPlaced);
                    // What the registry will be told is a claim too.
                    self.claim(po, &record.fingerprint, &LedgerReply { outcome: f.outcome.clone(), replayed: false, fate: f.fate }, "the ledger's alarm check");
                }
                let told = tell::reconciliation(&record, &f);
                self.ledger_commit(po, f.store, &record.fingerprint);
                if let Some(req) = told {
                    let _ = tell::add(&mut tells, tell::Tell::new(&req, self.now()));
                }
            }
        }
        if !tells.is_empty() {
            tells = self.tell_all(tells, rng, seen);
            if let Some(due) = tell::next_due(&tells) {
                if self.ledger(po).alarm_at.is_none_or(|at| at > due) {
                    self.set_alarm(po, due);
                }
            }
        }
        self.ledger(po).tells = (!tells.is_empty()).then(|| tell::store(&tells));
    }

    /// The clock moves on by `dt` of real time, every ledger alarm that
    /// comes due on the way firing then (the registry's hourly one too).
    fn advance_time(&mut self, dt: i64, rng: &mut Rng, seen: &mut Seen) {
        let end = self.real + dt;
        for _ in 0..500 {
            let next = self.ledgers.iter().filter_map(|(po, l)| l.alarm_at.map(|a| (a, po.clone()))).min();
            let reg_next = self.reg_alarm_at;
            let due_ledger = next.filter(|(a, _)| *a - self.skew <= end);
            let due_reg = reg_next.filter(|a| *a - self.skew <= end);
            match (due_ledger, due_reg) {
                (Some((a, po)), r) if r.is_none_or(|r| a <= r) => {
                    self.real = self.real.max(a - self.skew);
                    self.ledger(&po).alarm_at = None;
                    self.ledger_alarm(&po, rng, seen);
                }
                (_, Some(r)) => {
                    self.real = self.real.max(r - self.skew);
                    self.reg_alarm_at = None;
                    self.registry_alarm(rng, seen);
                }
                _ => break,
            }
        }
        self.real = self.real.max(end);
    }
}

impl World {
    fn advance_req(&mut self, id: u64, rng: &mut Rng, seen: &mut Seen) {
        let mut r = self.reqs[&id].clone();
        if self.trace {
            eprintln!("[{} day {}] req {id} {} {} held {} created {} {:?}", self.now(), day_of(self.now()), r.attempt.key, r.attempt.fingerprint, r.held, r.created, r.stage);
        }
        let now = self.now();
        let po = r.attempt.po_number.clone();
        let fp = r.attempt.fingerprint.clone();
        let hid = (r.attempt.key.clone(), po.clone(), fp.clone());
        match r.stage.clone() {
            Stage::Reserve => {
                r.stage = Stage::ToLedger;
                if let Some(cap) = self.caps[r.key] {
                    let roll = rng.below(100);
                    if roll < 5 {
                        // Not reached.
                        r.turned_away = Some(ApiError::upstream_error("the key registry did not answer; retry in a moment"));
                    } else {
                        let (writes, reply) = self.registry_reserve(&r);
                        let e = self.caps_seen.entry((r.key, day_of(now))).or_insert(cap);
                        *e = (*e).max(cap);
                        self.apply(&writes, "reserve");
                        self.registry_touched(reply.error.as_ref().is_some_and(|e| e.code == plumgate_core::errors::ErrorCode::QuotaExceeded && e.retry_after_secs.is_some()));
                        if reply.error.is_none() {
                            r.spend_day = self.reg.holds.get(&hid).map(|h| h.day);
                            if let Some(d) = r.spend_day {
                                // A hold of another day joined: its day's cap.
                                let e = self.caps_seen.entry((r.key, d)).or_insert(cap);
                                *e = (*e).max(cap);
                            }
                            if reply.held {
                                *self.outstanding.entry(hid.clone()).or_default() += 1;
                            }
                        }
                        if roll < 8 {
                            // Done, its answer lost: a hold no request settles.
                            r.turned_away = Some(ApiError::upstream_error("the key registry did not answer; retry in a moment"));
                        } else if let Some(e) = reply.error {
                            seen.quota_refusals += u64::from(e.code == plumgate_core::errors::ErrorCode::QuotaExceeded);
                            if !lg::look_after(&e) {
                                r.stage = Stage::Done;
                            }
                            r.turned_away = Some(e);
                        } else {
                            (r.held, r.created) = (reply.held, reply.created);
                        }
                    }
                } else {
                    self.uncapped.insert((r.key, day_of(now)), true);
                }
            }
            Stage::ToLedger => {
                if rng.chance(0.03) {
                    seen.lost_answers += 1;
                    r.stage = Stage::Answered { reply: lost_reply(), lost: true };
                } else if r.turned_away.is_none() {
                    self.reqs.insert(id, r.clone());
                    r.stage = match self.ledger_place(id, seen) {
                        Ok(_) if rng.chance(0.05) => {
                            seen.lost_answers += 1;
                            Stage::Answered { reply: lost_reply(), lost: true }
                        }
                        Ok(reply) => Stage::Answered { reply, lost: false },
                        Err(run) => Stage::Waiting(run, WaitKind::Place, None),
                    };
                } else {
                    r.stage = match self.answer_look(&po, &fp) {
                        Ok(reply) => Stage::Answered { reply, lost: false },
                        Err(run) => Stage::Waiting(run, WaitKind::TurnedAwayLook, None),
                    };
                }
            }
            Stage::Waiting(..) | Stage::Done => {}
            Stage::Answered { reply, lost } => {
                if let Some(e) = r.turned_away.clone() {
                    if let Ok(reply) = lg::after_reservation(e, (!lost).then_some(reply)) {
                        seen.turned_away_answered += 1;
                        let res = audit::classify(answered_of(&reply));
                        if rng.chance(0.9) {
                            let w = registry::record(&r.attempt, &res, now);
                            self.apply(&w, "record");
                        }
                    }
                    r.stage = Stage::Done;
                } else {
                    let result = audit::with_fate(audit::classify(answered_of(&reply)), reply.fate);
                    r.stage = if lost { Stage::LookAfterLoss { result } } else { Stage::Settle { result } };
                }
            }
            Stage::LookAfterLoss { result } => {
                r.stage = if rng.chance(0.15) {
                    Stage::Settle { result }
                } else {
                    match self.answer_look(&po, &fp) {
                        Ok(look) => {
                            seen.lost_looks_settled += u64::from(look.fate != Fate::Unknown);
                            Stage::Settle { result: audit::after_lost_answer(result, &look) }
                        }
                        Err(_) if rng.chance(0.5) => Stage::Settle { result },
                        Err(run) => Stage::Waiting(run, WaitKind::LostLook, Some(result)),
                    }
                };
            }
            Stage::Settle { result } => {
                let roll = rng.below(100);
                if roll >= 8 {
                    self.registry_settle(id, &r, &result);
                    if roll >= 12 {
                        r.stage = Stage::Done;
                    }
                }
                if r.stage != Stage::Done {
                    r.settle_tries += 1;
                    seen.settle_retries += 1;
                    if r.settle_tries >= registry::SETTLE_ATTEMPTS {
                        r.stage = Stage::Done;
                    }
                }
            }
        }
        self.reqs.insert(id, r);
    }

    /// One of the latest poNumbers (new ones keep coming, so orders keep
    /// meeting the caps; older ones are still retried now and then).
    fn recent_po(&self, rng: &mut Rng) -> String {
        let back = if rng.chance(0.9) { rng.below(POS as u64) } else { rng.below(4 * POS as u64) };
        format!("po-{}", self.po_base.saturating_sub(back))
    }

    fn new_request(&mut self, rng: &mut Rng) {
        let key = usize::from(rng.chance(0.3));
        if rng.chance(0.15) {
            self.po_base += 1;
        }
        let po = self.recent_po(rng);
        let (data, fp) = body(&po, usize::from(rng.chance(0.1)));
        let id = self.id();
        let attempt = Attempt::of_order(KEYS[key], &data, &fp, &format!("r{id}"));
        self.reqs.insert(id, Req { key, data, attempt, held: false, created: false, turned_away: None, stage: Stage::Reserve, spend_day: None, settle_tries: 0 });
    }

    fn check_all(&self) {
        // I1: no cap overspent.
        let mut spend: HashMap<(usize, i64), i64> = HashMap::new();
        for (po, o) in self.xo.iter().filter(|(_, o)| !o.failed) {
            if let Some(a) = o.attr.filter(|a| !self.known_undercounts.contains(&(a.0, po.clone(), o.fp.clone()))) {
                *spend.entry(a).or_default() += o.amount;
            }
        }
        for ((k, d), s) in spend {
            if self.uncapped.contains_key(&(k, d)) {
                continue;
            }
            let cap = self.caps_seen.get(&(k, d)).copied().expect("spend of a day with no reservation");
            assert!(s <= cap, "I1: key {k} spent {s} on day {d}, over its cap {cap}; orders {:?}", self.xo.values().filter(|o| o.attr == Some((k, d))).collect::<Vec<_>>());
        }
        // I4: holders never above the requests holding.
        for (id, h) in &self.reg.holds {
            let out = self.outstanding.get(id).copied().unwrap_or(0);
            assert!(h.holders <= out, "I4: hold {id:?} {h:?} has more holders than the {out} requests holding it");
        }
    }

    /// Before the clock moves on by more than a few seconds, every request
    /// and run goes as far as it can: a worker reaches the ledger
    /// milliseconds after its reservation, looks and settles within
    /// `waitUntil`'s 30 s, and a run ends within placeOrder's timeout (the
    /// registry's second look, 30 s after the first, and the ledger's
    /// checks rely on that; a request held up longer is a dead one here).
    fn flush(&mut self, rng: &mut Rng, seen: &mut Seen) {
        for _ in 0..4 {
            let ids: Vec<u64> = self.reqs.keys().copied().collect();
            for id in ids {
                for _ in 0..8 {
                    match self.reqs.get(&id).map(|r| &r.stage) {
                        None | Some(Stage::Done | Stage::Waiting(..)) => break,
                        _ => self.advance_req(id, rng, seen),
                    }
                }
            }
            let runs: Vec<u64> = self.runs.keys().copied().collect();
            for id in runs {
                while self.runs.contains_key(&id) {
                    self.advance_run(id, rng, seen);
                }
            }
        }
        self.reqs.retain(|_, r| r.stage != Stage::Done);
    }

    fn step(&mut self, rng: &mut Rng, seen: &mut Seen) {
        let day = day_of(self.now());
        let c = rng.below(1000);
        if c >= 600 {
            self.flush(rng, seen);
        }
        let dt = if c < 600 {
            rng.range(0, 2_000)
        } else if c < 850 {
            rng.range(0, MIN)
        } else if c < 950 {
            rng.range(0, 10 * MIN)
        } else if c < 990 {
            rng.range(0, 6 * HOUR)
        } else {
            rng.range(0, 3 * DAY)
        };
        self.advance_time(dt, rng, seen);
        if rng.chance(if self.outage { 0.05 } else { 0.002 }) {
            self.outage = !self.outage;
        }
        let b = rng.below(1000);
        if b < 15 {
            self.skew -= rng.range(0, 10 * MIN);
            seen.clock_back += 1;
        } else if b < 17 {
            self.skew -= rng.range(0, 6 * HOUR);
            seen.clock_back += 1;
        }
        if day_of(self.now()) != day {
            seen.midnights += 1;
        }
        let e = rng.below(100);
        let pick_req = |w: &World, rng: &mut Rng| {
            let live: Vec<u64> = w.reqs.iter().filter(|(_, r)| !matches!(r.stage, Stage::Done | Stage::Waiting(..))).map(|(i, _)| *i).collect();
            (!live.is_empty()).then(|| *rng.pick(&live))
        };
        match e {
            0..=24 => self.new_request(rng),
            25..=59 => {
                if let Some(id) = pick_req(self, rng) {
                    self.advance_req(id, rng, seen);
                }
            }
            60..=71 => {
                let runs: Vec<u64> = self.runs.keys().copied().collect();
                if !runs.is_empty() {
                    let id = *rng.pick(&runs);
                    self.advance_run(id, rng, seen);
                }
            }
            72..=81 => {
                let po = self.recent_po(rng);
                self.ledger_alarm(&po, rng, seen);
            }
            82..=86 => self.registry_alarm(rng, seen),
            87..=88 => {
                let po = self.recent_po(rng);
                self.ledger_restart(&po, seen);
            }
            89..=90 => {
                let live: Vec<u64> = self.reqs.iter().filter(|(_, r)| r.stage != Stage::Done).map(|(i, _)| *i).collect();
                if !live.is_empty() {
                    seen.worker_crashes += 1;
                    let id = *rng.pick(&live);
                    self.reqs.remove(&id);
                }
            }
            91 => {
                self.reg.nothing_seen.clear();
                self.reg.idle_after = None;
            }
            92 => {
                seen.cap_changes += 1;
                let k = usize::from(rng.chance(0.5));
                self.caps[k] = *rng.pick(&[Some(100 * M), Some(60 * M), Some(200 * M), Some(30 * M), None]);
            }
            _ => {
                if let Some(id) = pick_req(self, rng) {
                    self.advance_req(id, rng, seen);
                }
            }
        }
        self.reqs.retain(|_, r| r.stage != Stage::Done);
        self.check_all();
    }
}

#[test]
fn money_path_keeps_its_promises_over_random_sequences() {
    let mut seen = Seen::default();
    let steps = std::env::var("PLUMGATE_MODEL_STEPS").ok().and_then(|v| v.parse().ok()).unwrap_or(STEPS);
    for seed in 0..seeds(SEEDS) {
        let mut rng = Rng::for_seed(seed);
        let mut w = World::new(&mut rng);
        w.trace = std::env::var("PLUMGATE_MODEL_TRACE").is_ok_and(|t| t == seed.to_string());
        for step in 0..steps {
            replayable(seed, step, || w.step(&mut rng, &mut seen));
        }
        seen.known_undercounts += w.known_undercounts.len() as u64;
    }
    eprintln!("{seen:?}");
    eprintln!("orders set aside as the known under-count: {}", seen.known_undercounts);
    let s = &seen;
    seeded::all_reached(&[
        ("orders placed", s.placed),
        ("replays", s.replays),
        ("joins", s.joins),
        ("lost answers", s.lost_answers),
        ("lost answers settled by a look", s.lost_looks_settled),
        ("turned-away orders answered by the ledger", s.turned_away_answered),
        ("quota refusals", s.quota_refusals),
        ("checks that settled", s.checks_settled),
        ("not-placed proofs", s.not_placed_proofs),
        ("tells", s.tells),
        ("abandoned holds settled", s.abandoned),
        ("second looks", s.second_looks),
        ("retention deletes", s.retention_deletes),
        ("pending records expired", s.pending_expired),
        ("ledger restarts", s.ledger_restarts),
        ("worker crashes", s.worker_crashes),
        ("cap changes", s.cap_changes),
        ("clock steps back", s.clock_back),
        ("midnights", s.midnights),
        ("settle retries", s.settle_retries),
        ("orders sent again after retention", s.duplicates_found),
    ]);
}

// ------------------------------------------------------------------ findings
//
// Minimal sequences the model found, as plain host tests.

/// F-A (fixed in `registry::abandoned`): with `ORDER_RETENTION_SECS` under
/// two days, the registry's look at a hold whose order was placed but whose
/// `done` record retention has already dropped, while another body under
/// the same poNumber is in flight (or recorded), meets that body's
/// `409 idempotency_conflict` (fate "not placed" for this body) and freed
/// the hold: the placed order's amount was no longer counted, and the cap
/// could be passed by it. "Nothing" is already spent in that case
/// (`nothing_proves_unsent`); the other body's conflict says no more.
#[test]
fn fa_a_conflict_seen_by_the_registrys_look_under_a_short_retention_keeps_the_amount() {
    let now = T0;
    // k1's order po-9 / fp-a was placed (found by the ledger's check), its
    // record dropped 1 s later (ORDER_RETENTION_SECS=1), and the registry
    // never heard (its tell was dropped with the record). Another body,
    // fp-b, is now being placed under po-9.
    let hold = Hold { day: day_of(now), amount: 30 * M, holders: 0, state: HoldState::Pending };
    let Look::Answer { outcome, fate, .. } = lg::look(&Loaded::None, "fp-a", Some("fp-b"), None, now) else { panic!("a conflict") };
    assert_eq!(fate, Fate::NotPlaced);
    let reply = LedgerReply { outcome, replayed: true, fate };
    let writes = registry::abandoned("k1", "po-9", "fp-a", &hold, &reply, Usage::default(), 1);
    assert!(
        writes.iter().any(|w| matches!(w, Write::Hold { change: HoldChange::Put(h), .. } if h.state == HoldState::Committed)),
        "the hold of an order the retention may have hidden is spent, not freed: {writes:?}"
    );
    // As "nothing" is under that retention.
    let nothing = refusal(lg::nothing_found(), Fate::Unknown);
    let same = registry::abandoned("k1", "po-9", "fp-a", &hold, &nothing, Usage::default(), 1);
    assert_eq!(writes, same);
    // Under the default retention the conflict still frees it (the order's
    // own record would be there if it had been sent).
    let freed = registry::abandoned("k1", "po-9", "fp-a", &hold, &reply, Usage::default(), 2_592_000);
    assert!(freed.iter().any(|w| matches!(w, Write::Hold { change: HoldChange::Drop, .. })), "{freed:?}");
}
