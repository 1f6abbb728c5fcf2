//! A model of Xoxoday's per-minute limits and penalties, driven with random
//! sequences of what happens to a deployment's isolates and its
//! `RateLimiter` object, against the shared limiter's core functions in
//! the orders their shells call them: `limits::lease`, `limits::penalise`
//! and `limits::lease::load` (the object, `src/objects/limiter.rs`: load
//! once per instance, decide, write the whole state, answer), and
//! `limits::Local::{admit, take_lease, block, met, settle_penalty}` with
//! `limits::penalty_until(None, ..)`, `refusal_error` and `secs_until`
//! (each isolate, `src/limits.rs`); every call and answer goes through its
//! wire form (`wire::limiter::Call`, `LeaseAnswer::read`) and every
//! Xoxoday answer through `upstream::api_penalty`. The unit tests beside
//! each function pin chosen cases; this owns what holds only across
//! interleavings of several isolates and the object.
//!
//! The world: a discrete-event simulation in real time. Isolates (two to
//! four) take requests in bursts; each lease request and penalty report
//! reaches the object, and its answer the isolate, after a network delay,
//! so they cross and reorder; a call sent reaches Xoxoday up to
//! `TRANSIT_MS` later, and its answer comes back after up to 30 s.
//! Xoxoday answers a call with its penalty while one runs (stated: the
//! seconds left, or the whole again when calls prolong it; unstated: a
//! length plumgate never learns; getVouchers' daily cap, ending at a UTC
//! or an IST midnight or a day after it was met, per seed), and now and
//! then starts one of its own (callers outside plumgate on the same
//! client). Isolates die (their leases and answers in flight with them),
//! the object is evicted (it reloads from the text it wrote), a write
//! fails (the object is reset to its last write, and the isolate gets no
//! answer: the call goes unchecked), the limiter cannot be asked (the
//! call goes unchecked: README, "When the limiter cannot be asked … the
//! call goes ahead"), and the one clock everyone reads steps back (seconds
//! to two days) or forward. Real time, which Xoxoday goes by, never steps.
//!
//! The promises checked, after every event or at every decision (README
//! "Keeps every operation under Xoxoday's rate limits", `limits.rs` module
//! docs, contract §6):
//! - B1 in any 60 s of real time, the calls of an operation that reach
//!   Xoxoday under a lease (not the unchecked ones) are at most its budget.
//!   Windows across a forward clock step are left out: plumgate believes its
//!   clock, and a clock ahead of Xoxoday's frees grants early by as much.
//! - B2 the object's account never counts more than the budget, counts
//!   each grant exactly until `WINDOW_MS + TRANSIT_MS` after its lease
//!   expires (the model keeps its own list: none forgotten by an eviction,
//!   none counted twice), and lends at least one call whenever any is free.
//! - B3 an isolate spends only calls it was lent, each before its lease
//!   expires, and never more than once.
//! - P1 no call goes while a penalty is known: an isolate that met a stated
//!   penalty (or learnt one from the object) sends nothing before its end,
//!   and the object lends nothing before the end Xoxoday stated in any
//!   report it received (real time: "not shortened below what Xoxoday
//!   asked"); a penalty's end at the object never moves earlier while it
//!   runs.
//! - P2 a penalty lifts: every end told (the object's, an isolate's block, a
//!   refusal's) is at most a day and a minute away (the longest penalty
//!   plumgate believes) plus how far the clock stepped back since; after
//!   a quiet spell that long, every operation lends again.
//! - R1 every refusal's `Retry-After` is at least 1 s, the whole seconds
//!   to its end rounded up, its end in the future; a spent budget's end is
//!   exactly when the object next lends (not a millisecond sooner, and
//!   then at least one call).
//! - S1 the object's state loads back from the text it wrote as the same.
//!
//! The default run must reach every kind of event the promises are about
//! (`Seen`), so a change to the model that stops testing one fails too.
//!
//! Findings (at the end of this file): F1, F3 and F4 fixed (the model
//! reaches F1's and F3's sequences and checks them: F3 reverted fails the
//! default run, F1 reverted only a longer one, at seed 154, and its own
//! test); F2 open, `#[ignore]`d:
//! the model counts its meetings with it and sets their calls aside.
//!
//! Not driven here: clocks that differ between isolates and the object
//! (one clock for all), a call held up between its admission and its send
//! (a token refresh: documented as not covered), the drop-in `unvalidated::Held` (one isolate, its
//! unit tests), and a key's `requests_per_minute` (`quota`, `keys::Syncs`).
//!
//! Deterministic: seeds `0..N`, each its own sequence; a failure names its
//! seed and step. `PLUMGATE_MODEL_SEEDS=N` runs N seeds instead of the
//! default [`SEEDS`] × [`STEPS`].

mod seeded;

/// `PLUMGATE_MODEL_TRACE=1`: every delivery on stderr (for one seed).
fn trace() -> bool {
    std::env::var_os("PLUMGATE_MODEL_TRACE").is_some()
}

use plumgate_core::limits::lease::{load, LimiterState, PROBE_HOLD_MS};
use plumgate_core::limits::local::MAX_WANT;
use plumgate_core::limits::{
    lease, penalise, penalty_until, refusal_error, secs_until, Admit, Budgets, LeaseAnswer, Local, Refusal, Why, LEASE_MS,
    TRANSIT_MS, WINDOW_MS,
};
use plumgate_core::ops::Operation;
use plumgate_core::upstream::{api_penalty, Observed};
use plumgate_core::wire::limiter::Call;
use seeded::{replayable, seeds, Rng};

/// Seeds of a default run, and the steps of each.
const SEEDS: u64 = 24;
const STEPS: u64 = 2_500;

/// 2026-11-30T10:00:00Z.
const T0: i64 = 1_796_032_800_000;
const DAY: i64 = 86_400_000;
/// How long a grant counts after its lease expires (`limits::COUNTED_MS`).
const COUNTED: i64 = WINDOW_MS + TRANSIT_MS;
/// The longest penalty plumgate believes: a day (stated, `upstream`), the
/// daily cap's day and a minute (`limits::daily_until`).
const LONGEST_PENALTY: i64 = DAY + 60_000;

/// The operations driven: budget 10 (leases of one), 100, and the daily cap's.
const OPS: [Operation; 3] = [Operation::GetBalance, Operation::PlaceOrder, Operation::GetVouchers];

/// A penalty Xoxoday runs on an operation (real time).
#[derive(Debug, Clone, Copy)]
struct XPenalty {
    until: i64,
    kind: Kind,
    /// Calls during it start it again (stated and unstated).
    prolongs: bool,
    /// Its whole length (stated, unstated).
    len_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stated,
    Unstated,
    Daily,
}

/// How Xoxoday's day runs out for the daily cap (per seed).
#[derive(Debug, Clone, Copy)]
enum DayReading {
    Utc,
    Ist,
    Rolling,
}

#[derive(Debug)]
enum Msg {
    /// A limiter call on its way to the object (`call` as sent).
    /// `stated_end`: the real end of the stated penalty a report is of.
    ToObject { iso: usize, life: u32, url: String, body: String, stated_end: Option<i64> },
    /// The object's answer on its way back (`None`: no answer, the write failed).
    Back { iso: usize, life: u32, op: usize, lease: bool, body: Option<String>, fwd: u32 },
    /// A call reaching Xoxoday (`checked`: under a lease lent after the
    /// `fwd`-th forward clock step).
    Arrive { iso: usize, life: u32, op: usize, checked: bool, fwd: u32 },
    /// Xoxoday's answer to a call on its way back; `stated_end`: the real
    /// end of the stated penalty it names.
    Answer { iso: usize, life: u32, op: usize, status: u16, body: String, retry_after: Option<String>, stated_end: Option<i64> },
}

struct Iso {
    life: u32,
    local: Vec<Local>,
    /// The model's copy of the calls lent and not spent: (left, until,
    /// forward clock steps before it was lent).
    lent: Vec<Vec<(u32, i64, u32)>>,
    /// No call before then (clock): the penalty this isolate knows.
    known_pen: Vec<i64>,
    /// No call before then (real): the end Xoxoday stated in a penalty
    /// answer this isolate met.
    stated_real: Vec<i64>,
    /// The same in this isolate's clock (its own reading of it).
    stated_clock: Vec<i64>,
}

impl Iso {
    fn new(life: u32) -> Iso {
        Iso {
            life,
            local: vec![Local::default(); OPS.len()],
            lent: vec![vec![]; OPS.len()],
            known_pen: vec![i64::MIN; OPS.len()],
            stated_real: vec![i64::MIN; OPS.len()],
            stated_clock: vec![i64::MIN; OPS.len()],
        }
    }
}

/// What the default run must reach.
#[derive(Default, Debug)]
struct Seen {
    leases: u64,
    budget_refusals: u64,
    penalty_refusals: u64,
    budget_full: u64,
    stated: u64,
    unstated: u64,
    daily: u64,
    reports_stated: u64,
    reports_unstated: u64,
    reports_daily: u64,
    probes: u64,
    probe_holds: u64,
    settled_sooner: u64,
    unaware_calls_in_penalty: u64,
    evictions: u64,
    write_failures: u64,
    deaths: u64,
    unchecked: u64,
    steps_back: u64,
    steps_forward: u64,
    quiet_checks: u64,
    crossed_answers: u64,
    late_leases: u64,
    f1: u64,
    f2: u64,
}

struct World {
    budgets: Budgets,
    reading: DayReading,
    real: i64,
    /// The clock everyone reads is `real + offset`.
    offset: i64,
    /// How far the clock stepped back, in all and since the last quiet spell.
    back_total: i64,
    back_since_quiet: i64,
    /// When the clock last stepped forward (real), and how many times it has.
    forward_at: i64,
    fwd: u32,
    queue: Vec<(i64, u64, Msg)>,
    seq: u64,
    isos: Vec<Iso>,
    /// The object: its memory (`None`: evicted) and what it last wrote.
    mem: Option<LimiterState>,
    /// (Kept as the value; written out and read back as text when loaded.)
    stored: Option<LimiterState>,
    /// The model's grants per operation (clock: at, calls, until), as in
    /// memory and as last written.
    grants: Vec<Vec<(i64, u32, i64)>>,
    grants_stored: Vec<Vec<(i64, u32, i64)>>,
    /// The latest end Xoxoday stated in a report the object received (real).
    obj_stated_real: Vec<i64>,
    obj_stated_stored: Vec<i64>,
    /// Xoxoday: each operation's penalty, and the real times calls under a
    /// lease reached it.
    xpen: Vec<Option<XPenalty>>,
    arrivals: Vec<Vec<i64>>,
    /// Lease answers that reached an isolate after an answer sent later.
    last_back_seq: Vec<u64>,
}

fn budget_of(w: &World, op: usize) -> u32 {
    w.budgets.of(OPS[op])
}

impl World {
    fn now(&self) -> i64 {
        self.real + self.offset
    }

    fn send(&mut self, delay: i64, m: Msg) {
        self.seq += 1;
        self.queue.push((self.real + delay.max(0), self.seq, m));
    }

    /// A network delay to or from the object: mostly quick, at most 2 s
    /// each way, now and then up to 9 s (a slow object: a lease answer
    /// after its lease ran out, F3).
    fn net_delay(rng: &mut Rng) -> i64 {
        match rng.below(100) {
            0..=69 => rng.range(1, 60),
            70..=89 => rng.range(1, 600),
            90..=98 => rng.range(1, 2_000),
            _ => rng.range(2_000, 9_000),
        }
    }

    /// Advance real time by `dt`, delivering what falls due on the way.
    fn advance(&mut self, rng: &mut Rng, dt: i64, seen: &mut Seen) {
        let target = self.real + dt;
        let due = |q: &[(i64, u64, Msg)]| (0..q.len()).filter(|i| q[*i].0 <= target).min_by_key(|i| (q[*i].0, q[*i].1));
        while let Some(i) = due(&self.queue) {
            let (at, seq, m) = self.queue.swap_remove(i);
            self.real = self.real.max(at);
            self.deliver(rng, seq, m, seen);
        }
        self.real = target;
    }

    fn deliver(&mut self, rng: &mut Rng, seq: u64, m: Msg, seen: &mut Seen) {
        if trace() {
            eprintln!("real +{} clock {:+} | {m:?}", self.real - T0, self.offset);
        }
        match m {
            Msg::ToObject { iso, life, url, body, stated_end } => self.object(rng, iso, life, &url, &body, stated_end, seen),
            Msg::Back { iso, life, op, lease, body, fwd } => {
                if self.isos[iso].life != life {
                    return;
                }
                if seq < self.last_back_seq[iso] {
                    seen.crossed_answers += 1;
                }
                self.last_back_seq[iso] = self.last_back_seq[iso].max(seq);
                match body {
                    None => {
                        if lease {
                            // No answer: the call goes ahead unchecked (documented).
                            seen.unchecked += 1;
                            self.send(rng.range(0, TRANSIT_MS), Msg::Arrive { iso, life, op, checked: false, fwd: 0 });
                        }
                    }
                    Some(b) => {
                        let a = LeaseAnswer::read(b.as_bytes()).expect("the object's answer reads back");
                        if lease {
                            self.take(rng, iso, op, &a, fwd, seen);
                        } else {
                            self.settle(iso, op, &a, fwd, seen);
                        }
                    }
                }
            }
            Msg::Arrive { iso, life, op, checked, fwd } => self.xoxoday(rng, iso, life, op, checked && fwd == self.fwd, seen),
            Msg::Answer { iso, life, op, status, body, retry_after, stated_end } => {
                if self.isos[iso].life != life {
                    return;
                }
                self.answered(rng, iso, op, status, body.as_bytes(), retry_after.as_deref(), stated_end, seen);
            }
        }
    }

    // ------------------------------------------------------------ the object

    /// The object takes one call: load once per instance, decide, write, answer.
    #[allow(clippy::too_many_arguments)]
    fn object(&mut self, rng: &mut Rng, iso: usize, life: u32, url: &str, body: &str, stated_end: Option<i64>, seen: &mut Seen) {
        let call = Call::read(url.trim_start_matches("https://limiter"), body.as_bytes()).expect("the object reads the call");
        if self.mem.is_none() {
            self.mem = Some(self.reload());
        }
        let now = self.now();
        let (op, is_lease) = match call {
            Call::Lease { op, .. } => (op, true),
            Call::Penalise { op, .. } => (op, false),
        };
        let oi = OPS.iter().position(|o| *o == op).expect("a driven operation");
        let budget = budget_of(self, oi);
        let s = self.mem.as_mut().expect("loaded");
        let before = s.of(op.name()).cloned();
        let running_before = before.as_ref().and_then(|a| a.penalty).map(|p| p.until_ms).filter(|u| *u > now);
        let answer = match call {
            Call::Lease { want, .. } => lease(s, op.name(), budget, want, now),
            Call::Penalise { observed, .. } => penalise(s, op.name(), observed, now),
        };
        let acct = s.of(op.name()).cloned().expect("an account after a call");
        if let Some(end) = stated_end {
            self.obj_stated_real[oi] = self.obj_stated_real[oi].max(end);
        }
        // P1: a running penalty's end never moves earlier.
        if let (Some(was), Some(p)) = (running_before, acct.penalty) {
            assert!(p.until_ms >= was, "{op}: the penalty ending at {was} now ends at {}", p.until_ms);
        }
        if is_lease {
            if answer.calls > 0 {
                seen.leases += 1;
                // P1: nothing lent before the end Xoxoday stated in a report.
                assert!(self.real >= self.obj_stated_real[oi], "{op}: lent {} ms before the stated end", self.obj_stated_real[oi] - self.real);
                assert!(answer.calls <= plumgate_core::limits::max_lease(budget), "{op}: {} lent at once", answer.calls);
                assert_eq!(answer.until_ms, now + LEASE_MS);
                let probe = before.as_ref().and_then(|a| a.penalty).is_some_and(|p| p.first_lent_ms.is_none()) && acct.penalty.is_some_and(|p| p.first_lent_ms == Some(now));
                if probe {
                    seen.probes += 1;
                    assert_eq!(answer.calls, 1, "{op}: a probe of {} calls", answer.calls);
                }
                self.grants[oi].push((now, answer.calls, answer.until_ms));
                if trace() {
                    eprintln!("  grant op {oi} real +{} clock {now} calls {} until {}", self.real - T0, answer.calls, answer.until_ms);
                }
            } else if let Some(pu) = answer.penalty_until_ms {
                assert!(pu > now, "{op}: a penalty answer ending at {pu}, now {now}");
                if acct.penalty.is_some_and(|p| p.until_ms <= now) {
                    seen.probe_holds += 1;
                    assert!(pu - now <= PROBE_HOLD_MS, "{op}: a probe hold of {} ms", pu - now);
                }
            } else {
                seen.budget_full += 1;
                let at = answer.retry_at_ms.expect("none lent, no penalty: when a call frees up");
                // R1: exactly when the object next lends.
                assert!(at > now, "{op}: retry_at {at} not after now {now}");
                let mut early = self.mem.clone().expect("loaded");
                assert_eq!(lease(&mut early, op.name(), budget, 1, at - 1).calls, 0, "{op}: a call frees up before retry_at");
                let mut then = self.mem.clone().expect("loaded");
                let a = lease(&mut then, op.name(), budget, 1, at);
                assert!(a.calls >= 1 || a.penalty_until_ms.is_some(), "{op}: nothing lent at retry_at: {a:?}");
            }
            // B2: the account counts exactly the model's grants still counting.
            self.grants[oi].retain(|g| g.2 + COUNTED > now);
            let model: u64 = self.grants[oi].iter().map(|g| u64::from(g.1)).sum();
            let counted: u64 = acct.grants.iter().filter(|g| g.until_ms + COUNTED > now).map(|g| u64::from(g.calls)).sum();
            assert_eq!(counted, model, "{op}: the account counts {counted} calls, lent and counting {model}");
            assert!(counted <= u64::from(budget), "{op}: {counted} counted over a budget of {budget}");
            if answer.calls == 0 && answer.penalty_until_ms.is_none() {
                assert_eq!(counted, u64::from(budget), "{op}: refused with {counted} of {budget} counted");
            }
        }
        if let Some(pu) = answer.penalty_until_ms {
            // P2: no penalty told longer than the longest one plumgate believes.
            assert!(pu - now <= LONGEST_PENALTY + self.back_total, "{op}: a penalty {} ms long told", pu - now);
        }
        // A write that fails: the object is reset to its last write, and the
        // isolate gets no answer (3 ‰).
        if rng.chance(0.003) {
            seen.write_failures += 1;
            self.mem = None;
            self.grants = self.grants_stored.clone();
            self.obj_stated_real = self.obj_stated_stored.clone();
            self.send(Self::net_delay(rng), Msg::Back { iso, life, op: oi, lease: is_lease, body: None, fwd: self.fwd });
            return;
        }
        self.stored = self.mem.clone();
        self.grants_stored = self.grants.clone();
        self.obj_stated_stored = self.obj_stated_real.clone();
        let body = serde_json::to_string(&answer).expect("the answer is written");
        self.send(Self::net_delay(rng), Msg::Back { iso, life, op: oi, lease: is_lease, body: Some(body), fwd: self.fwd });
    }

    /// A new instance loads the state last written, from its text (S1: as
    /// the same).
    fn reload(&self) -> LimiterState {
        let text = self.stored.as_ref().map(|s| serde_json::to_string(s).expect("the state is written"));
        let (back, readable) = load(text.as_deref());
        assert!(readable, "the state written is unreadable: {text:?}");
        assert_eq!(Some(&back), self.stored.as_ref().or(Some(&LimiterState::default())), "the state changes across a write and a load: {text:?}");
        back
    }

    // ------------------------------------------------------------ an isolate

    fn check_refusal(&self, op: usize, r: Refusal, now: i64, seen: &mut Seen) {
        assert!(r.until_ms > now, "{}: refused until {}, now {now}", OPS[op], r.until_ms);
        let secs = secs_until(r.until_ms, now);
        assert!(secs >= 1 && secs as i64 * 1000 - (r.until_ms - now) < 1000, "Retry-After {secs} for {} ms", r.until_ms - now);
        let e = refusal_error(OPS[op], r, budget_of(self, op), now);
        assert_eq!((e.status, e.retry_after_secs), (429, Some(secs)), "{}: the refusal's answer", OPS[op]);
        let longest = match r.why {
            Why::Penalty => {
                seen.penalty_refusals += 1;
                LONGEST_PENALTY
            }
            Why::Budget => {
                seen.budget_refusals += 1;
                LEASE_MS + COUNTED
            }
        };
        assert!(r.until_ms - now <= longest + self.back_total, "{}: refused for {} ms ({:?})", OPS[op], r.until_ms - now, r.why);
    }

    /// The isolate sends a call it was admitted for (B3, P1 checked here).
    fn go(&mut self, rng: &mut Rng, iso: usize, op: usize, from_answer: Option<(&LeaseAnswer, u32)>, seen: &mut Seen) {
        let now = self.now();
        if trace() {
            eprintln!("  go iso {iso} op {op} now {now} known_pen {} local {:?}", self.isos[iso].known_pen[op], self.isos[iso].local[op]);
        }
        let mut revived = false;
        let i = &mut self.isos[iso];
        let fwd;
        assert!(now >= i.known_pen[op], "{}: a call {} ms inside a penalty this isolate knows", OPS[op], i.known_pen[op] - now);
        assert!(self.real >= i.stated_real[op], "{}: a call {} ms before the end Xoxoday stated", OPS[op], i.stated_real[op] - self.real);
        match from_answer.filter(|(a, _)| a.calls > 0) {
            Some((a, f)) => {
                fwd = f;
                // (A clock step forward while the answer was on its way
                // expires it early: left out with the other forward steps.)
                if self.real - self.forward_at > 2 * 2_000 {
                    assert!(a.until_ms > now, "{}: a lease spent {} ms after it expired", OPS[op], now - a.until_ms);
                }
                if a.calls > 1 {
                    i.lent[op].push((a.calls - 1, a.until_ms, f));
                }
            }
            None => {
                // B3: from the lease that expires first, still spendable.
                i.lent[op].retain(|(left, until, _)| *left > 0 && *until > now);
                let l = i.lent[op].iter_mut().min_by_key(|(_, until, _)| *until).unwrap_or_else(|| panic!("{}: a call sent with none lent", OPS[op]));
                l.0 -= 1;
                fwd = l.2;
                // F2 (`f2_a_clock_step_back_revives_a_lease_the_limiter_let_go`):
                // a lease that ran out, brought back by a clock that stepped
                // back, after the object stopped counting it. Counted, and
                // its call set aside from B1.
                let until = l.1;
                if !self.grants[op].iter().any(|g| g.2 == until) {
                    revived = true;
                }
            }
        }
        let left: u32 = i.lent[op].iter().filter(|(_, u, _)| *u > now).map(|(l, _, _)| *l).sum();
        assert_eq!(i.local[op].left(now), left, "{}: calls left in the isolate: {:?} vs {:?}, now {now}", OPS[op], i.local[op], i.lent[op]);
        let life = i.life;
        if revived {
            seen.f2 += 1;
        }
        self.send(rng.range(0, TRANSIT_MS), Msg::Arrive { iso, life, op, checked: !revived, fwd });
    }

    /// A request of `op` at isolate `iso` (`limits::admit`).
    fn request(&mut self, rng: &mut Rng, iso: usize, op: usize, seen: &mut Seen) {
        let now = self.now();
        self.prune(iso, op, now);
        match self.isos[iso].local[op].admit(now) {
            Admit::Go => self.go(rng, iso, op, None, seen),
            Admit::Refuse(r) => self.check_refusal(op, r, now, seen),
            Admit::Ask { want } => {
                assert!((1..=MAX_WANT).contains(&want), "want {want}");
                // The limiter cannot be asked (1 %): the call goes unchecked.
                if rng.chance(0.01) {
                    seen.unchecked += 1;
                    let life = self.isos[iso].life;
                    self.send(rng.range(0, TRANSIT_MS), Msg::Arrive { iso, life, op, checked: false, fwd: 0 });
                    return;
                }
                let call = Call::Lease { op: OPS[op], want };
                let life = self.isos[iso].life;
                self.send(Self::net_delay(rng), Msg::ToObject { iso, life, url: call.url(), body: call.body(), stated_end: None });
            }
        }
    }

    /// `Local::admit` drops the leases expired or spent (unless a penalty
    /// refuses first): once gone, a clock stepping back brings none back.
    fn prune(&mut self, iso: usize, op: usize, now: i64) {
        let i = &mut self.isos[iso];
        if i.known_pen[op] <= now {
            // (And a penalty over is forgotten: a clock stepping back does
            // not bring it back either.)
            i.known_pen[op] = i64::MIN;
            i.lent[op].retain(|(left, until, _)| *left > 0 && *until > now);
        }
    }

    /// A lease answer reaches the request that asked (`Local::take_lease`).
    fn take(&mut self, rng: &mut Rng, iso: usize, op: usize, a: &LeaseAnswer, fwd: u32, seen: &mut Seen) {
        let now = self.now();
        if let Some(pu) = a.penalty_until_ms.filter(|u| *u > now) {
            let i = &mut self.isos[iso];
            i.known_pen[op] = i.known_pen[op].max(pu);
            i.lent[op].clear();
        }
        if a.calls > 0 && a.until_ms <= now {
            seen.late_leases += 1;
        }
        if a.calls == 0 || a.until_ms <= now {
            self.prune(iso, op, now);
        }
        match self.isos[iso].local[op].take_lease(a, now) {
            // (A lease that ran out before its answer came lends nothing: a
            // call goes from those lent before, F3.)
            Admit::Go => self.go(rng, iso, op, Some((a, fwd)).filter(|_| a.until_ms > now), seen),
            Admit::Refuse(r) => {
                self.check_refusal(op, r, now, seen);
                if a.calls > 0 && a.until_ms > now {
                    // Lent while this isolate met a penalty: dropped, like its other calls.
                    // (A lease that ran out before its answer came lends nothing, F3.)
                    assert!(self.isos[iso].known_pen[op] > now, "{}: lent calls refused with no penalty known", OPS[op]);
                }
            }
            Admit::Ask { .. } => panic!("{}: take_lease answered Ask", OPS[op]),
        }
    }

    /// The object's answer to this isolate's report (`Local::settle_penalty`).
    fn settle(&mut self, iso: usize, op: usize, a: &LeaseAnswer, fwd: u32, seen: &mut Seen) {
        let Some(until) = a.penalty_until_ms else { return };
        let now = self.now();
        let i = &mut self.isos[iso];
        if fwd != self.fwd {
            // Decided before a forward step: its end is early by as much.
            i.stated_real[op] = i64::MIN;
        }
        if until < i.stated_clock[op] && i.stated_clock[op] > now {
            // F1 (`f1_an_earlier_report_s_answer_shortens_a_stated_penalty`):
            // the object's answer to an earlier report ends before a stated
            // penalty this isolate met since; the isolate keeps the stated
            // end (`Local::met`), which P1 checks.
            seen.f1 += 1;
        }
        if trace() {
            eprintln!("  settle iso {iso} op {op} until {until} known_pen {}", i.known_pen[op]);
        }
        if until < i.known_pen[op] {
            seen.settled_sooner += 1;
        }
        // (The calls lent are not dropped: `block` dropped those lent
        // before the report, and a lease taken since is the object's word.)
        i.local[op].settle_penalty(until);
        i.known_pen[op] = until.max(i.stated_clock[op]);
    }

    /// Xoxoday's answer reaches the isolate (`gateway`: `api_penalty`, then
    /// `limits::report`).
    #[allow(clippy::too_many_arguments)]
    fn answered(&mut self, rng: &mut Rng, iso: usize, op: usize, status: u16, body: &[u8], ra: Option<&str>, stated_end: Option<i64>, seen: &mut Seen) {
        let Some(observed) = api_penalty(OPS[op].name(), status, body, ra) else { return };
        let now = self.now();
        let until = penalty_until(None, observed, now).until_ms;
        let i = &mut self.isos[iso];
        i.local[op].met(until, matches!(observed, Observed::Stated(_)));
        i.lent[op].clear();
        i.known_pen[op] = i.known_pen[op].max(until);
        if let Some(end) = stated_end {
            i.stated_real[op] = i.stated_real[op].max(end);
            i.stated_clock[op] = i.stated_clock[op].max(until);
        }
        let call = Call::Penalise { op: OPS[op], observed };
        let life = i.life;
        self.send(Self::net_delay(rng), Msg::ToObject { iso, life, url: call.url(), body: call.body(), stated_end });
        // The caller's Retry-After (`report`'s answer, before the object's):
        // at least 1 s, and for a stated penalty at least what Xoxoday said.
        let secs = secs_until(until, now);
        assert!(secs >= 1, "a penalty's Retry-After of 0");
        if let Observed::Stated(s) = observed {
            assert!(secs >= s, "Retry-After {secs} for a stated {s}");
        }
        match observed {
            Observed::Stated(_) => seen.reports_stated += 1,
            Observed::Unstated => seen.reports_unstated += 1,
            Observed::Daily => seen.reports_daily += 1,
        }
    }

    // ------------------------------------------------------------ Xoxoday

    fn xoxoday(&mut self, rng: &mut Rng, iso: usize, life: u32, op: usize, checked: bool, seen: &mut Seen) {
        let real = self.real;
        if checked {
            // B1.
            let budget = budget_of(self, op) as usize;
            let clock = self.now();
            let a = &mut self.arrivals[op];
            a.retain(|t| real - t < WINDOW_MS);
            a.push(real);
            if a.len() > budget {
                let rel: Vec<i64> = a.iter().map(|t| t - real).collect();
                let g: Vec<(i64, u32, i64)> = self.grants[op].iter().map(|g| (g.0 - clock, g.1, g.2 - clock)).collect();
                panic!("{}: {} calls reach Xoxoday within a minute, budget {budget}: at {rel:?}; grants (at, calls, until) from now: {g:?}", OPS[op], a.len());
            }
        }
        let name = OPS[op].name();
        let running = self.xpen[op].filter(|p| p.until > real);
        let pen = match running {
            Some(mut p) => {
                if self.isos[iso].stated_real[op] <= real && checked {
                    seen.unaware_calls_in_penalty += 1;
                }
                if p.prolongs && p.kind != Kind::Daily {
                    p.until = real + p.len_ms;
                }
                self.xpen[op] = Some(p);
                Some(p)
            }
            // Xoxoday's own penalty (callers outside plumgate): 2 %.
            None if rng.chance(0.02) => {
                let kind = if OPS[op] == Operation::GetVouchers && rng.chance(0.3) {
                    Kind::Daily
                } else if rng.chance(0.6) {
                    Kind::Stated
                } else {
                    Kind::Unstated
                };
                let len_ms = match kind {
                    Kind::Stated => match rng.below(10) {
                        0 => 0,
                        1 => rng.range(1, 7_200) * 1000,
                        _ => rng.range(1, 120) * 1000,
                    },
                    Kind::Unstated => rng.range(1, 900_000),
                    Kind::Daily => 0,
                };
                let until = match kind {
                    Kind::Daily => self.daily_end(real),
                    _ => real + len_ms,
                };
                let p = XPenalty { until, kind, prolongs: rng.chance(0.3), len_ms };
                self.xpen[op] = Some(p);
                Some(p)
            }
            None => None,
        };
        let (status, body, ra, stated_end): (u16, Vec<u8>, Option<String>, Option<i64>) = match pen {
            None => (200, format!(r#"{{"data":{{"{name}":{{"status":1}}}}}}"#).into_bytes(), None, None),
            Some(p) => match p.kind {
                Kind::Stated => {
                    seen.stated += 1;
                    let secs = (p.until - real + 999).div_euclid(1000).max(0);
                    let end = real + secs * 1000;
                    match rng.below(3) {
                        // (A zero is sent in the body: a getVouchers 429 that
                        // names nothing is the daily cap's.)
                        0 if secs > 0 => (429, vec![], Some(secs.to_string()), Some(end)),
                        n => {
                            let b = format!(r#"{{"errors":[{{"message":"auth.request_limit_exceeded","penaltySeconds":{secs}}}]}}"#);
                            (if n == 1 { 200 } else { 429 }, b.into_bytes(), None, Some(end))
                        }
                    }
                }
                Kind::Unstated => {
                    seen.unstated += 1;
                    if rng.chance(0.5) && OPS[op] != Operation::GetVouchers {
                        (429, vec![], None, None)
                    } else {
                        (*rng.pick(&[200u16, 400, 429]), br#"{"errors":[{"message":"auth.request_limit_exceeded"}]}"#.to_vec(), None, None)
                    }
                }
                Kind::Daily => {
                    seen.daily += 1;
                    let b = br#"{"code":429,"error":"rate_limit_exceeded","message":"Daily request limit of 500 reached for getVouchers API."}"#;
                    (429, b.to_vec(), None, None)
                }
            },
        };
        // What the parser must read it as.
        let read = api_penalty(name, status, &body, ra.as_deref());
        match pen.map(|p| p.kind) {
            None => assert_eq!(read, None),
            // A zero states nothing (`upstream`: read as unstated).
            Some(Kind::Stated) if stated_end == Some(self.real) => assert_eq!(read, Some(Observed::Unstated)),
            Some(Kind::Stated) => assert!(matches!(read, Some(Observed::Stated(_))), "{read:?}"),
            Some(Kind::Unstated) => assert_eq!(read, Some(Observed::Unstated)),
            Some(Kind::Daily) => assert_eq!(read, Some(Observed::Daily)),
        }
        let stated_end = stated_end.filter(|e| *e > self.real);
        let delay = if rng.chance(0.9) { rng.range(10, 1_500) } else { rng.range(0, 30_000) };
        let body = String::from_utf8(body).expect("text");
        self.send(delay, Msg::Answer { iso, life, op, status, body, retry_after: ra, stated_end });
    }

    fn daily_end(&self, real: i64) -> i64 {
        let next = |offset: i64| (real - offset).div_euclid(DAY) * DAY + offset + DAY;
        match self.reading {
            DayReading::Utc => next(0),
            DayReading::Ist => next(18 * 3_600_000 + 30 * 60_000),
            DayReading::Rolling => real + DAY,
        }
    }
}

impl World {
    fn new(rng: &mut Rng, seed: u64) -> World {
        // A third of the seeds with small budgets of their own (`XOXODAY_RATE_LIMITS`).
        let budgets = if seed % 3 == 2 {
            let text = format!(r#"{{"getBalance":{},"placeOrder":{},"getVouchers":{}}}"#, rng.range(1, 4), rng.range(2, 30), rng.range(1, 12));
            Budgets::parse(&text).expect("budgets")
        } else {
            Budgets::default()
        };
        let reading = *rng.pick(&[DayReading::Utc, DayReading::Ist, DayReading::Rolling]);
        let n = rng.range(2, 4) as usize;
        World {
            budgets,
            reading,
            real: T0 + rng.range(0, DAY),
            offset: 0,
            back_total: 0,
            back_since_quiet: 0,
            forward_at: i64::MIN / 2,
            fwd: 0,
            queue: vec![],
            seq: 0,
            isos: (0..n).map(|_| Iso::new(0)).collect(),
            mem: None,
            stored: None,
            grants: vec![vec![]; OPS.len()],
            grants_stored: vec![vec![]; OPS.len()],
            obj_stated_real: vec![i64::MIN; OPS.len()],
            obj_stated_stored: vec![i64::MIN; OPS.len()],
            xpen: vec![None; OPS.len()],
            arrivals: vec![vec![]; OPS.len()],
            last_back_seq: vec![0; n],
        }
    }

    /// The clock steps by `d` (real time does not).
    fn clock_step(&mut self, d: i64, seen: &mut Seen) {
        if trace() {
            eprintln!("  clock step {d:+}");
        }
        self.offset += d;
        if d < 0 {
            seen.steps_back += 1;
            self.back_total -= d;
            self.back_since_quiet -= d;
        } else {
            // A clock ahead frees grants and ends penalties early by as
            // much (plumgate believes its clock): B1 and P1's real-time
            // checks start again.
            seen.steps_forward += 1;
            self.forward_at = self.real;
            self.fwd += 1;
            for a in &mut self.arrivals {
                a.clear();
            }
            self.obj_stated_real.iter_mut().chain(self.obj_stated_stored.iter_mut()).for_each(|t| *t = i64::MIN);
            for i in &mut self.isos {
                i.stated_real.iter_mut().for_each(|t| *t = i64::MIN);
            }
        }
    }

    /// P2: after a quiet spell as long as the longest penalty plus the
    /// clock's steps back, every operation lends again, to any isolate.
    fn quiet(&mut self, rng: &mut Rng, seen: &mut Seen) {
        // What is in flight lands first.
        self.advance(rng, 40_000, seen);
        assert!(self.queue.is_empty(), "still in flight: {:?}", self.queue);
        self.advance(rng, LONGEST_PENALTY + LEASE_MS + COUNTED + self.back_since_quiet, seen);
        self.back_since_quiet = 0;
        for (op, name) in OPS.iter().map(|o| o.name()).enumerate() {
            let iso = rng.below(self.isos.len() as u64) as usize;
            let now = self.now();
            self.prune(iso, op, now);
            let want = match self.isos[iso].local[op].admit(now) {
                Admit::Go => panic!("{name}: calls lent before the quiet spell still spendable"),
                Admit::Refuse(r) => panic!("{name}: still refused after a quiet spell: {r:?}, now {now}"),
                Admit::Ask { want } => want,
            };
            if self.mem.is_none() {
                self.mem = Some(self.reload());
            }
            let budget = budget_of(self, op);
            let s = self.mem.as_mut().expect("loaded");
            let a = lease(s, name, budget, want, now);
            assert!(a.calls >= 1, "{name}: nothing lent after a quiet spell: {a:?}");
            // (Lent and not spent: the model's grants follow.)
            self.grants[op].retain(|g| g.2 + COUNTED > now);
            self.grants[op].push((now, a.calls, a.until_ms));
            self.stored = self.mem.clone();
            self.grants_stored = self.grants.clone();
            assert_eq!(self.isos[iso].local[op].take_lease(&a, now), Admit::Go, "{name}: a lease refused after a quiet spell");
            if a.calls > 1 {
                self.isos[iso].lent[op].push((a.calls - 1, a.until_ms, self.fwd));
            }
            seen.quiet_checks += 1;
            self.advance(rng, PROBE_HOLD_MS, seen);
        }
    }

    fn step(&mut self, rng: &mut Rng, step: u64, seen: &mut Seen) {
        if step % 800 == 799 {
            self.quiet(rng, seen);
            return;
        }
        let e = rng.below(1000);
        if e < 820 {
            // A burst of requests at one isolate, mostly of one operation.
            let iso = rng.below(self.isos.len() as u64) as usize;
            let op = if rng.chance(0.5) { 1 } else { rng.below(OPS.len() as u64) as usize };
            let most = if rng.chance(0.1) { 30 } else { 4 };
            for _ in 0..rng.range(1, most) {
                self.request(rng, iso, op, seen);
            }
        } else if e < 840 {
            // An isolate dies; a new one takes its place.
            seen.deaths += 1;
            let iso = rng.below(self.isos.len() as u64) as usize;
            let life = self.isos[iso].life + 1;
            self.isos[iso] = Iso::new(life);
        } else if e < 870 {
            // Eviction: the next call loads the state written.
            seen.evictions += 1;
            if let Some(m) = self.mem.take() {
                assert_eq!(Some(&m), self.stored.as_ref(), "memory and the state written differ");
            }
        } else if e < 880 {
            let d = if rng.chance(0.9) { rng.range(1, 90_000) } else { rng.range(1, 2 * DAY) };
            self.clock_step(-d, seen);
        } else if e < 885 {
            self.clock_step(rng.range(1, 120_000), seen);
        }
        // Time: mostly milliseconds to a second, sometimes a minute or an hour.
        let dt = match rng.below(100) {
            0..=59 => rng.range(0, 300),
            60..=89 => rng.range(0, 3_000),
            90..=97 => rng.range(0, 60_000),
            _ => rng.range(0, 3_600_000),
        };
        self.advance(rng, dt, seen);
    }
}

#[test]
fn the_shared_limiter_keeps_its_promises_over_random_sequences() {
    let mut seen = Seen::default();
    // `PLUMGATE_MODEL_ONLY=n`: seed n alone (with `PLUMGATE_MODEL_TRACE`).
    let only: Option<u64> = std::env::var("PLUMGATE_MODEL_ONLY").ok().map(|v| v.parse().expect("a seed"));
    for seed in only.map_or(0..seeds(SEEDS), |n| n..n + 1) {
        let mut rng = Rng::for_seed(seed);
        let mut w = World::new(&mut rng, seed);
        for step in 0..STEPS {
            replayable(seed, step, || w.step(&mut rng, step, &mut seen));
        }
    }
    let s = &seen;
    if only.is_some() {
        return;
    }
    seeded::all_reached(&[
        ("leases", s.leases),
        ("budget refusals", s.budget_refusals),
        ("penalty refusals", s.penalty_refusals),
        ("a spent budget at the object", s.budget_full),
        ("stated penalties", s.stated),
        ("unstated penalties", s.unstated),
        ("daily caps", s.daily),
        ("stated reports", s.reports_stated),
        ("unstated reports", s.reports_unstated),
        ("daily reports", s.reports_daily),
        ("probes", s.probes),
        ("probe holds", s.probe_holds),
        ("penalties settled sooner", s.settled_sooner),
        ("calls of unaware isolates in a penalty", s.unaware_calls_in_penalty),
        ("evictions", s.evictions),
        ("write failures", s.write_failures),
        ("isolate deaths", s.deaths),
        ("unchecked calls", s.unchecked),
        ("clock steps back", s.steps_back),
        ("clock steps forward", s.steps_forward),
        ("quiet checks", s.quiet_checks),
        ("crossed answers", s.crossed_answers),
        ("lease answers after their lease (F3)", s.late_leases),
        ("stated ends kept over an earlier report's answer (F1)", s.f1),
    ]);
    if std::env::var_os("PLUMGATE_MODEL_SEEN").is_some() {
        eprintln!("{seen:?}");
    }
}

// ------------------------------------------------------------ findings
//
// Each reproduces, in a few calls, a sequence the model met (F4: read). An
// open one is `#[ignore]`d (`cargo test -p plumgate-core --test
// limits_model -- --ignored` runs it); the model counts its meetings with
// F2 (`Seen::f2`) and sets their calls aside.

/// F1 (fixed: `Local::met` keeps a stated end): the object's answer to an earlier report of this isolate
/// (`Local::settle_penalty`, "refuse until exactly `until_ms`") ends the
/// isolate's block before a longer stated penalty it met since, whose own
/// report the object has not answered yet. A lease asked before either
/// penalty and answered meanwhile is then spent inside the penalty
/// Xoxoday stated to this very isolate (contract §6: "instead of calling
/// again and prolonging it").
#[test]
fn f1_an_earlier_report_s_answer_shortens_a_stated_penalty() {
    let op = "placeOrder";
    let mut s = LimiterState::default();
    let mut l = Local::default();
    // A lease asked at T0 reaches the object at T0 + 1 s: lent before it
    // knows of any penalty.
    let lent = lease(&mut s, op, 100, 4, T0 + 1_000);
    assert_eq!(lent.calls, 4);
    // Meanwhile Xoxoday answered two earlier calls of this isolate: a 3 s
    // penalty, then (the penalty prolonged) 60 s.
    l.met(penalty_until(None, Observed::Stated(3), T0 + 100).until_ms, true);
    l.met(penalty_until(None, Observed::Stated(60), T0 + 200).until_ms, true);
    // The first report reaches the object at T0 + 1.1 s, its answer the
    // isolate at T0 + 1.2 s; the second report is still on its way.
    let first = penalise(&mut s, op, Observed::Stated(3), T0 + 1_100);
    l.settle_penalty(first.penalty_until_ms.expect("a penalty"));
    // The lease's answer arrives at T0 + 4.2 s, within its lease.
    let now = T0 + 4_200;
    // (The isolate's block ends at T0 + 60.2 s, the stated end, not at the
    // object's T0 + 4.1 s.)
    let stated = penalty_until(None, Observed::Stated(60), T0 + 200).until_ms;
    assert_eq!(l.admit(T0 + 4_000), Admit::Refuse(Refusal { until_ms: stated, why: Why::Penalty }));
    assert_ne!(l.take_lease(&lent, now), Admit::Go, "a call 56 s inside the 60 s penalty Xoxoday stated to this isolate");
}

/// F2 (open: a step back of over a minute; one shared latest time per
/// isolate, or the object counting recent grants while its clock is behind,
/// would be the fix): a clock that steps back more than `WINDOW_MS + TRANSIT_MS`
/// brings back a lease that ran out while its isolate made no call of the
/// operation; the object stopped counting it and lent its calls again, so
/// Xoxoday gets more than the budget in a minute.
#[test]
#[ignore = "F2: open finding"]
fn f2_a_clock_step_back_revives_a_lease_the_limiter_let_go() {
    let (op, budget) = ("placeOrder", 20);
    let mut s = LimiterState::default();
    let mut a = Local::default();
    // Isolate A is lent two calls at T0 and spends one.
    let lent = lease(&mut s, op, budget, 2, T0);
    assert_eq!((lent.calls, a.take_lease(&lent, T0)), (2, Admit::Go));
    // 70 s on the grant no longer counts: other isolates are lent the
    // whole budget and spend it.
    let t1 = T0 + 70_000;
    let mut others = 0;
    while let LeaseAnswer { calls: n @ 1.., .. } = lease(&mut s, op, budget, 2, t1) {
        others += n;
    }
    assert_eq!(others, budget);
    // The clock steps back 68 s: A's lease, over for 65 s, is spendable again.
    assert_ne!(a.admit(T0 + 2_000), Admit::Go, "call {} of the same minute, budget {budget}", budget + 1);
}

/// F3 (fixed: such an answer lends nothing; the model's slow object answers
/// up to 9 s now and then): a lease answer that reaches its isolate after
/// the lease expired was still spent
/// (`Local::take_lease`), later than the `TRANSIT_MS` the object's count
/// allows for, so the call shares Xoxoday's minute with the calls lent once
/// the grant stops counting.
#[test]
fn f3_a_lease_answer_slower_than_its_lease_is_spent() {
    let (op, budget) = ("getBalance", 1);
    let mut s = LimiterState::default();
    let mut l = Local::default();
    let lent = lease(&mut s, op, budget, 1, T0);
    // The answer reaches the isolate 8 s after it was lent (a slow object);
    // the call reaches Xoxoday up to TRANSIT_MS later.
    let late = T0 + LEASE_MS + 3_000;
    let sent = l.take_lease(&lent, late) == Admit::Go;
    // Only that request waits: the next one asks the limiter again.
    assert_eq!(l.admit(late + 1), Admit::Ask { want: 1 });
    // The next call is lent when the grant stops counting.
    let next = (T0 + 1..T0 + 2 * WINDOW_MS).find(|t| lease(&mut s.clone(), op, budget, 1, *t).calls == 1).expect("lent again");
    assert!(!sent || next - (late + TRANSIT_MS) >= WINDOW_MS, "two calls {} ms apart at Xoxoday, budget {budget} a minute", next - (late + TRANSIT_MS));
}

/// F4 (fixed: a later minute's count counts, and a request is counted in
/// it; read, not modelled: the per-key counter is not driven above):
/// after the clock steps back across a UTC minute boundary, a key's count
/// is of a later minute, so the current minute reads 0 (`Counter::at`) and
/// a request counted in it changes nothing ("counts of a minute already
/// over": `Counter::add`): every request passes `check_rate` until the
/// clock is back in the counter's minute, past the key's
/// `requests_per_minute` (`src/callers.rs::admit` makes exactly these calls).
#[test]
fn f4_a_clock_step_back_lifts_a_key_s_requests_per_minute() {
    use plumgate_core::quota::{check_rate, UsageDelta};
    use plumgate_core::time::minute_of;
    let limit = 5;
    let mut d = UsageDelta { id: "k".into(), ..UsageDelta::default() };
    // T0 is a minute's start: five requests at T0 + 1 s.
    let t = T0 + 1_000;
    for _ in 0..limit {
        check_rate(Some(limit), d.counter().at(minute_of(t)), t).expect("within the limit");
        d.count(t);
    }
    assert!(check_rate(Some(limit), d.counter().at(minute_of(t)), t).is_err(), "the sixth is refused");
    // The clock steps back 2 s, into the minute before: 20 more pass.
    let back = T0 - 1_000;
    let passed = (0..20)
        .filter(|_| {
            let ok = check_rate(Some(limit), d.counter().at(minute_of(back)), back).is_ok();
            if ok {
                d.count(back);
            }
            ok
        })
        .count();
    assert_eq!(passed, 0, "{passed} more requests of the key within 2 s, limit {limit} a minute");
}
