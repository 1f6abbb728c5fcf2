//! Per-key limits, decided without I/O: the `limits` object a key carries
//! (runtime keys and `GATEWAY_KEYS` entries alike), the
//! `requests_per_minute` check an isolate makes, the usage counters the
//! `KeyRegistry` keeps, and the spend cap's reservations.
//!
//! **`requests_per_minute`** is counted in fixed UTC minutes. Each isolate
//! counts its own requests and adds what the registry said the key's other
//! isolates had counted at the last sync (at most a few seconds old,
//! `keys::SYNC_INTERVAL_MS`): exact within one isolate, approximate across
//! many (a burst spread over isolates between two syncs can pass the limit
//! by what those isolates counted since). A request over it gets `429
//! quota_exceeded` with `Retry-After` until the next minute and is not
//! counted.
//!
//! **`order_amount_per_day`** is the sum of denomination × quantity of the
//! key's accepted placeOrders in its UTC day, checked strongly: the
//! registry (one Durable Object) is the only place it is decided, in one
//! synchronous step per order, so no two isolates can both pass it. An
//! order first takes a [`Hold`] of its amount ([`reserve`]) before
//! Xoxoday is called; when the order's fate is known ([`settle`]) the
//! hold is committed (placed: the amount counts), dropped (a definite
//! refusal: nothing was placed) or kept pending (fate unknown: the amount
//! keeps counting until a later attempt with the same `poNumber` learns
//! it, or until the order ledger settles it on its own: [`reconcile`]).
//! One hold per key, `poNumber` and order fingerprint, so a replay
//! or a retry of the same order never counts twice, and an order over the
//! cap is refused whole (`429 quota_exceeded`), never in part.
//!
//! Amounts are millionths of the order's currency unit (`ops::amount_micros`),
//! so sums are exact; the API writes them as plain numbers.

use crate::errors::ApiError;
use crate::ops::{amount_micros, micros_text};
use crate::time::{day_of, minute_of, secs_until, DAY_MS, MINUTE_MS};
#[cfg(test)]
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

/// The highest `requests_per_minute` a key may have.
pub const MAX_REQUESTS_PER_MINUTE: u32 = 1_000_000;

/// The highest `order_amount_per_day` a key may have (a billion, in
/// millionths).
pub const MAX_ORDER_AMOUNT_PER_DAY: i64 = 1_000_000_000 * 1_000_000;

/// A key's limits; `None` is "no limit". Stored and sent between the
/// worker and the registry with the amount in millionths
/// (`order_amount_per_day_micros`); the API writes it as the number it is
/// ([`Limits::json`]). Read from storage by hand (`Limits::from_fields`);
/// the derive is for the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(Deserialize))]
pub struct Limits {
    /// Requests per UTC minute.
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// Sum of accepted placeOrders per UTC day, in millionths.
    #[serde(default, rename = "order_amount_per_day_micros")]
    pub order_amount_per_day: Option<i64>,
}

/// The two limit names, in the order the API writes them.
const NAMES: [&str; 2] = ["requests_per_minute", "order_amount_per_day"];

impl Limits {
    /// The stored form (`order_amount_per_day_micros`), as the derive reads
    /// it ([`crate::stored`]).
    pub(crate) fn from_fields(o: &crate::stored::Fields) -> Option<Limits> {
        use crate::stored::{get, opt, opt_int, small_count};
        Some(Limits {
            requests_per_minute: get(o, "requests_per_minute", |v| opt(v, small_count)).ok()?,
            order_amount_per_day: get(o, "order_amount_per_day_micros", opt_int).ok()?,
        })
    }

    /// A `limits` object: each member absent or `null` (no limit) or a
    /// value; no other members. `at` is the object's name in messages
    /// (`limits`, `GATEWAY_KEYS[2].limits`).
    ///
    /// # Errors
    /// A sentence naming the member and the rule, never a value.
    pub fn parse(value: &Value, at: &str) -> Result<Limits, String> {
        Limits::default().patch(value, at)
    }

    /// These limits with the members `value` names set (`null` removes a
    /// limit; an absent member keeps it): a JSON merge patch.
    ///
    /// # Errors
    /// As [`Limits::parse`].
    pub fn patch(self, value: &Value, at: &str) -> Result<Limits, String> {
        let Some(obj) = value.as_object() else {
            return Err(format!("{at} must be an object with requests_per_minute and/or order_amount_per_day"));
        };
        // The member is not named: it is the caller's own text.
        if obj.keys().any(|k| !NAMES.contains(&k.as_str())) {
            return Err(format!("{at} has an unknown member; it may have only requests_per_minute and order_amount_per_day"));
        }
        let mut out = self;
        match obj.get("requests_per_minute") {
            None => {}
            Some(Value::Null) => out.requests_per_minute = None,
            Some(v) => match crate::ops::integer(v).filter(|n| (1..=u64::from(MAX_REQUESTS_PER_MINUTE)).contains(n)) {
                Some(n) => out.requests_per_minute = u32::try_from(n).ok(),
                None => {
                    return Err(format!(
                        "{at}.requests_per_minute must be a JSON integer from 1 to {MAX_REQUESTS_PER_MINUTE}, or null for no limit"
                    ))
                }
            },
        }
        match obj.get("order_amount_per_day") {
            None => {}
            Some(Value::Null) => out.order_amount_per_day = None,
            Some(v) => match amount_micros(v).filter(|m| *m <= MAX_ORDER_AMOUNT_PER_DAY) {
                Some(m) => out.order_amount_per_day = Some(m),
                None => {
                    return Err(format!(
                        "{at}.order_amount_per_day must be a number above 0 (at most {}, a number or a decimal string), or null for no limit",
                        micros_text(MAX_ORDER_AMOUNT_PER_DAY)
                    ))
                }
            },
        }
        Ok(out)
    }

    /// The object as the API writes it (both members, `null` for none).
    pub fn json(&self) -> String {
        let rpm = self.requests_per_minute.map_or_else(|| "null".to_owned(), |n| n.to_string());
        let amount = self.order_amount_per_day.map_or_else(|| "null".to_owned(), micros_text);
        format!(r#"{{"requests_per_minute":{rpm},"order_amount_per_day":{amount}}}"#)
    }
}

// ------------------------------------------------------------ requests per minute

/// Requests counted in one UTC minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    /// The minute ([`minute_of`]).
    pub minute: i64,
    /// Requests in it.
    pub count: u64,
}

impl Counter {
    /// The count in `minute` (0 when this counter is of an earlier minute;
    /// of a later one, after the clock stepped back, its count: a key's
    /// limit is not lifted by a clock going back).
    pub fn at(self, minute: i64) -> u64 {
        if self.minute >= minute {
            self.count
        } else {
            0
        }
    }

    /// `n` more requests in `minute`: a later minute starts again.
    pub fn add(self, minute: i64, n: u64) -> Counter {
        match minute.cmp(&self.minute) {
            std::cmp::Ordering::Equal => Counter { minute, count: self.count.saturating_add(n) },
            std::cmp::Ordering::Greater => Counter { minute, count: n },
            // Counts of a minute already over change nothing.
            std::cmp::Ordering::Less => self,
        }
    }

    /// The newer of two counts the registry sent, whose replies may arrive
    /// out of order: the later minute, or in the same minute the higher
    /// count (a minute's count only grows).
    pub fn latest(self, other: Counter) -> Counter {
        if (other.minute, other.count) > (self.minute, self.count) {
            other
        } else {
            self
        }
    }
}

/// Keep `counter`, a sync reply's count of key `id`, in an isolate's list of
/// each key's count across isolates: the later of it and the count kept
/// ([`Counter::latest`]). A key not in the list takes the place of one
/// whose count is of a minute over at `minute` (it counts nothing:
/// [`Counter::at`]), so the list holds the keys counted in one minute, not
/// every key the isolate ever served (revoked ones included), scanned on
/// each request for the isolate's whole life.
pub fn keep_count(counts: &mut Vec<(String, Counter)>, id: String, counter: Counter, minute: i64) {
    if let Some(e) = counts.iter_mut().find(|(k, _)| *k == id) {
        e.1 = e.1.latest(counter);
    } else if let Some(e) = counts.iter_mut().find(|(_, c)| c.minute < minute) {
        *e = (id, counter);
    } else {
        counts.push((id, counter));
    }
}

/// The minute a key's request at `now_ms` is checked and counted in: now's,
/// or that of the key's count across isolates (`shared`) if later, after
/// the clock stepped back. Counted in an earlier minute, the registry would
/// drop it ([`Counter::add`]) and the key's `requests_per_minute` would
/// hold for a sync's few seconds, not for a minute.
pub fn rate_minute(shared: Counter, now_ms: i64) -> i64 {
    minute_of(now_ms).max(shared.minute)
}

/// May one more request of a key with `limit` go, when `used` requests of
/// it are already counted in the current minute?
///
/// # Errors
/// `429 quota_exceeded` naming the limit, with `Retry-After` until the
/// next minute.
pub fn check_rate(limit: Option<u32>, used: u64, now_ms: i64) -> Result<(), ApiError> {
    match limit {
        Some(limit) if used >= u64::from(limit) => {
            let secs = secs_until((minute_of(now_ms) + 1) * MINUTE_MS, now_ms).max(1);
            Err(ApiError::quota_exceeded(
                format!("this key's requests_per_minute limit ({limit}) is used up for this minute; retry after {secs} s"),
                secs,
            ))
        }
        _ => Ok(()),
    }
}

// ------------------------------------------------------------ usage

/// What an isolate counted for one key since its last sync (and, coming
/// back, the key's count of the minute across isolates).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageDelta {
    /// The key's id.
    pub id: String,
    /// Requests since the last sync.
    pub requests: u64,
    /// The latest minute counted ([`minute_of`])...
    pub minute: i64,
    /// ...and the requests in it.
    pub minute_requests: u64,
    /// The last request (epoch ms).
    pub last_used_ms: i64,
}

impl UsageDelta {
    /// The latest minute's count.
    pub fn counter(&self) -> Counter {
        Counter { minute: self.minute, count: self.minute_requests }
    }

    fn set_counter(&mut self, c: Counter) {
        (self.minute, self.minute_requests) = (c.minute, c.count);
    }

    /// One more request at `now_ms`.
    pub fn count(&mut self, now_ms: i64) {
        self.count_in(minute_of(now_ms), now_ms);
    }

    /// One more request at `now_ms`, counted in `minute` ([`rate_minute`])
    /// or in the counter's own minute if that is later (the clock stepped
    /// back: [`Counter::at`]).
    pub fn count_in(&mut self, minute: i64, now_ms: i64) {
        self.requests = self.requests.saturating_add(1);
        self.set_counter(self.counter().add(minute.max(self.minute), 1));
        self.last_used_ms = self.last_used_ms.max(now_ms);
    }

    /// Add `other`'s counts (the same key's, an earlier batch).
    pub fn merge(&mut self, other: &UsageDelta) {
        self.requests = self.requests.saturating_add(other.requests);
        self.set_counter(other.counter().add(self.minute, self.minute_requests));
        self.last_used_ms = self.last_used_ms.max(other.last_used_ms);
    }
}

/// A key's usage in one UTC day (the registry's `usage` table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Requests counted (isolates report them in batches).
    pub requests: u64,
    /// Orders placed.
    pub orders: u64,
    /// Their amount (millionths).
    pub amount: i64,
    /// Requests of the latest minute, across isolates.
    pub minute: Counter,
}

impl Usage {
    /// This usage with an isolate's counts added.
    pub fn with_requests(self, delta: &UsageDelta) -> Usage {
        Usage {
            requests: self.requests.saturating_add(delta.requests),
            minute: self.minute.add(delta.minute, delta.minute_requests),
            ..self
        }
    }

    /// This usage with one placed order of `amount` added.
    pub fn with_order(self, amount: i64) -> Usage {
        Usage { orders: self.orders.saturating_add(1), amount: self.amount.saturating_add(amount), ..self }
    }

    /// `{"day","requests","orders","amount","reserved"}` for `day`, as the
    /// API writes it; `reserved`: the amount of the day's orders whose fate
    /// is not known yet (held against the spend cap, not in `amount`).
    pub fn json(&self, day: i64, reserved: i64) -> String {
        format!(
            r#"{{"day":"{}","requests":{},"orders":{},"amount":{},"reserved":{}}}"#,
            crate::time::date_of_day(day),
            self.requests,
            self.orders,
            micros_text(self.amount),
            micros_text(reserved)
        )
    }
}

// ------------------------------------------------------------ spend cap

/// Where a hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    /// Taken before Xoxoday is called; requests for the order are in flight.
    Held,
    /// The order's fate is unknown: its amount keeps counting.
    Pending,
    /// The order was placed: its amount counts in `Usage::amount`.
    Committed,
}

impl HoldState {
    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldState::Held => "held",
            HoldState::Pending => "pending",
            HoldState::Committed => "committed",
        }
    }

    /// The state a stored name stands for (an unknown name reads as
    /// `Pending`, which keeps the amount counted: the safe reading).
    pub fn from_name(name: &str) -> HoldState {
        match name {
            "held" => HoldState::Held,
            "committed" => HoldState::Committed,
            _ => HoldState::Pending,
        }
    }
}

/// One order's claim on its key's daily amount (the registry's `holds`
/// table, keyed by key id, `poNumber` and order fingerprint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// The UTC day the amount counts in (the day the hold was taken).
    pub day: i64,
    /// The order's amount (millionths).
    pub amount: i64,
    /// Requests for this order between their [`reserve`] and [`settle`].
    pub holders: u32,
    /// Where it stands.
    pub state: HoldState,
}

impl Hold {
    /// Does its amount count against the cap of `day` beyond what
    /// `Usage::amount` holds (taken or pending, not yet committed)?
    pub fn reserves(&self, day: i64) -> bool {
        self.day == day && self.state != HoldState::Committed
    }
}

/// The answer to a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Go ahead. `created`: this request took a new hold (the order was
    /// not known); `held`: it counts as one of the hold's holders and must
    /// settle it.
    Granted {
        /// A new hold.
        created: bool,
        /// This request holds it.
        held: bool,
    },
    /// Over the cap: `429 quota_exceeded`; nothing is sent.
    Refused(ApiError),
}

/// How long a caller refused over a spend cap by holds alone is told to
/// wait (`Retry-After`): the cap would take the order if the orders whose
/// fate is not known yet turn out not placed. Those in flight settle
/// within their call; the registry asks the ledger about the others a
/// minute after the refusal (`registry::LOOK_AFTER_REFUSAL_MS`), and 30 s
/// more lets its looks end.
pub const UNSETTLED_RETRY_SECS: u64 = 90;

/// Reserve `amount` for an order of a key with daily `cap`, given the
/// hold already kept for the same key, `poNumber` and body (`existing`),
/// what the key has placed today (`placed_today`) and what holds of its
/// orders whose fate is not known yet reserve (`reserved_today`). Returns
/// the answer and the hold to store (`None`: unchanged). A refusal waits
/// for the next UTC day when the placed orders alone leave no room, else
/// [`UNSETTLED_RETRY_SECS`]; an order over the whole cap gets no
/// `Retry-After`: no day has room for it.
pub fn reserve(existing: Option<&Hold>, placed_today: i64, reserved_today: i64, amount: i64, cap: Option<i64>, now_ms: i64) -> (Reservation, Option<Hold>) {
    match existing {
        // A placed order again (a replay): nothing new is spent.
        Some(h) if h.state == HoldState::Committed => (Reservation::Granted { created: false, held: false }, None),
        // The same order in flight or of unknown fate: its amount already
        // counts; join it.
        Some(h) => {
            let joined = Hold { holders: h.holders.saturating_add(1), ..*h };
            (Reservation::Granted { created: false, held: true }, Some(joined))
        }
        None => {
            if let Some(cap) = cap {
                let spent_today = placed_today.saturating_add(reserved_today);
                if amount > cap {
                    let message = format!(
                        "this order ({}) is more than this key's order_amount_per_day limit ({}) allows in a day, so it was not sent; no retry can place it: ask for a higher limit",
                        micros_text(amount),
                        micros_text(cap)
                    );
                    return (Reservation::Refused(ApiError::quota_exceeded_for_good(message)), None);
                }
                if spent_today.saturating_add(amount) > cap {
                    let unsettled = placed_today.saturating_add(amount) <= cap;
                    let secs = if unsettled { UNSETTLED_RETRY_SECS } else { secs_until((day_of(now_ms) + 1) * DAY_MS, now_ms).max(1) };
                    let message = format!(
                        "this order ({}) would take this key past its order_amount_per_day limit ({}; {} already placed or reserved today, UTC), so it was not sent; retry after {secs} s ({}) or ask for a higher limit",
                        micros_text(amount),
                        micros_text(cap),
                        micros_text(spent_today),
                        if unsettled { "when orders whose fate is not known yet may have settled" } else { "the next UTC day" }
                    );
                    return (Reservation::Refused(ApiError::quota_exceeded(message, secs)), None);
                }
            }
            let hold = Hold { day: day_of(now_ms), amount, holders: 1, state: HoldState::Held };
            (Reservation::Granted { created: true, held: true }, Some(hold))
        }
    }
}

/// What became of an order, as far as its amount is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// This request's call placed it (or found it placed after an
    /// uncertain answer).
    Placed,
    /// Answered from the ledger: placed by an earlier or concurrent
    /// request with the same `poNumber`.
    Replayed,
    /// Certainly not placed by this request (Xoxoday refused, a penalty, a
    /// conflict, a token problem).
    Refused,
    /// Not known yet.
    Unknown,
}

/// What to do with a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldChange {
    /// Nothing.
    Keep,
    /// Store it as given.
    Put(Hold),
    /// Delete it.
    Drop,
}

/// The outcome of [`settle`]: the hold's change, and an order to count
/// in a day's usage (`(day, amount)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// The hold's change.
    pub hold: HoldChange,
    /// One more placed order of this amount in this day's usage.
    pub counted: Option<(i64, i64)>,
}

/// Settle an order of `amount` given its `fate`. `existing`: the hold for
/// the key, `poNumber` and body (if any); `held` and `created`: what this
/// request's [`reserve`] said (both false for a key without a cap, which
/// reserves nothing). The amount counts exactly once per order: when it is
/// first known to be placed.
pub fn settle(existing: Option<&Hold>, held: bool, created: bool, fate: Fate, amount: i64, now_ms: i64) -> Settled {
    let today = day_of(now_ms);
    let Some(h) = existing else {
        // A key without a cap keeps a hold only to count each order once.
        let hold = |state| Hold { day: today, amount, holders: 0, state };
        return match fate {
            Fate::Placed => Settled { hold: HoldChange::Put(hold(HoldState::Committed)), counted: Some((today, amount)) },
            Fate::Unknown => Settled { hold: HoldChange::Put(hold(HoldState::Pending)), counted: None },
            // A replay of an order no hold knows was counted where it was
            // placed (or before any of this existed).
            Fate::Replayed | Fate::Refused => Settled { hold: HoldChange::Keep, counted: None },
        };
    };
    let mut next = *h;
    if held {
        next.holders = next.holders.saturating_sub(1);
    }
    let commit = |mut next: Hold| {
        if next.state == HoldState::Committed {
            return Settled { hold: HoldChange::Put(next), counted: None };
        }
        next.state = HoldState::Committed;
        Settled { hold: HoldChange::Put(next), counted: Some((next.day, next.amount)) }
    };
    let release = |next: Hold| {
        if next.state != HoldState::Committed && next.holders == 0 {
            Settled { hold: HoldChange::Drop, counted: None }
        } else {
            Settled { hold: HoldChange::Put(next), counted: None }
        }
    };
    let settled = match fate {
        Fate::Placed => commit(next),
        // Replayed for a hold this request found: that order (pending, or
        // in flight for another request) is placed. Replayed for a pending
        // hold it took itself: a request that joined it may have sent the
        // order and lost its answer; placed too. Replayed for one it took,
        // still in flight: the order was placed before the hold existed
        // (another day, another key): nothing new was spent. (A request
        // cannot tell whether the order it replays was sent by a request of
        // its own key: a key whose copies all joined another key's call
        // counts it, once; a cap errs toward refusing.)
        Fate::Replayed if !created || next.state == HoldState::Pending => commit(next),
        Fate::Replayed | Fate::Refused => release(next),
        Fate::Unknown => {
            if next.state != HoldState::Committed {
                next.state = HoldState::Pending;
            }
            Settled { hold: HoldChange::Put(next), counted: None }
        }
    };
    match settled.hold {
        HoldChange::Put(p) if p == *h => Settled { hold: HoldChange::Keep, ..settled },
        _ => settled,
    }
}

/// Settle a hold when the order ledger learns the order's fate on its own
/// (no request for it waiting): `placed` commits it, the amount counted
/// once (a hold a request already committed stays as it is); not placed
/// (or failed, cancelled) frees it. A hold with requests still between
/// their [`reserve`] and [`settle`] is theirs to free: it goes back to
/// `Held`, still counted, and the last of them drops it, unless that one
/// settles `Unknown` (a retry answered `409 order_in_progress` just before
/// the ledger's look settled the order): the hold is `Pending` again with no
/// holders, and the registry's next look ([`abandoned`]: hourly, or a minute
/// after a refusal over the cap) frees it. Nothing is overspent meanwhile;
/// the amount counts against the cap until then.
pub fn reconcile(h: &Hold, placed: bool) -> Settled {
    let keep = Settled { hold: HoldChange::Keep, counted: None };
    match h.state {
        HoldState::Committed => keep,
        _ if placed => Settled { hold: HoldChange::Put(Hold { state: HoldState::Committed, ..*h }), counted: Some((h.day, h.amount)) },
        _ if h.holders == 0 => Settled { hold: HoldChange::Drop, counted: None },
        HoldState::Held => keep,
        HoldState::Pending => Settled { hold: HoldChange::Put(Hold { state: HoldState::Held, ..*h }), counted: None },
    }
}

/// What the order ledger knows of an order whose hold may have lost its
/// requests ([`abandoned`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Placed (and not failed).
    Placed,
    /// Not placed, failed, or never sent (no record, nothing in flight).
    NotPlaced,
    /// Its fate is not known yet (the ledger keeps asking Xoxoday).
    Pending,
}

/// Settle a hold whose requests may all be gone (they died between their
/// [`reserve`] and [`settle`]: a crash, a deploy) on what the order's
/// ledger knows. Placed: committed, the amount counted once; not placed:
/// freed; pending: still counted, with no holders, so that the ledger's own
/// settlement ([`reconcile`]) commits or frees it. A request still alive
/// settles after this as if the hold were its own ([`settle`] of a
/// committed hold counts nothing again; of none, counts a placed order).
pub fn abandoned(h: &Hold, known: Known) -> Settled {
    let (hold, counted) = match (h.state, known) {
        (HoldState::Committed, _) => (HoldChange::Keep, None),
        (_, Known::Placed) => (HoldChange::Put(Hold { state: HoldState::Committed, holders: 0, ..*h }), Some((h.day, h.amount))),
        (_, Known::NotPlaced) => (HoldChange::Drop, None),
        (_, Known::Pending) => {
            let pending = Hold { state: HoldState::Pending, holders: 0, ..*h };
            (if pending == *h { HoldChange::Keep } else { HoldChange::Put(pending) }, None)
        }
    };
    Settled { hold, counted }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::ErrorCode;
    use serde_json::json;

    #[test]
    fn a_clock_stepped_back_keeps_a_key_s_limit_across_syncs() {
        // A key with 10 a minute used 3 times in minute 11, counted by the
        // registry; then this isolate's clock steps back 30 s, into minute
        // 10, and it syncs every 4 requests for 60 requests.
        let (limit, m) = (10u32, 11 * MINUTE_MS);
        let mut registry = Usage::default();
        let mut first = UsageDelta::default();
        (0..3).for_each(|_| first.count(m + 1_000));
        registry = registry.with_requests(&first);
        let mut shared = registry.minute;
        let back = m - 30_000;
        let (mut passed, mut batch) = (0, UsageDelta::default());
        for i in 1..=60 {
            let minute = rate_minute(shared, back);
            if check_rate(Some(limit), shared.at(minute) + batch.counter().at(minute), back).is_ok() {
                batch.count_in(minute, back);
                passed += 1;
            }
            if i % 4 == 0 {
                registry = registry.with_requests(&batch);
                shared = shared.latest(registry.minute);
                batch = UsageDelta::default();
            }
        }
        assert_eq!(passed, 7, "the key's 10 in minute 11, across syncs");
        assert_eq!(registry.minute, Counter { minute: 11, count: 10 });
    }

    #[test]
    fn an_isolate_keeps_the_keys_counted_this_minute() {
        let c = |minute, count| Counter { minute, count };
        let mut counts = Vec::new();
        keep_count(&mut counts, "a".into(), c(9, 4), 9);
        keep_count(&mut counts, "b".into(), c(9, 1), 9);
        // A reply overtaken by a later one leaves the later count.
        keep_count(&mut counts, "a".into(), c(9, 2), 9);
        assert_eq!(counts, vec![("a".into(), c(9, 4)), ("b".into(), c(9, 1))]);
        // A minute on, a new key takes a past minute's place; a count of a
        // later minute (a clock behind another's) stays.
        keep_count(&mut counts, "c".into(), c(11, 1), 10);
        keep_count(&mut counts, "d".into(), c(10, 3), 10);
        keep_count(&mut counts, "e".into(), c(10, 1), 10);
        assert_eq!(counts, vec![("c".into(), c(11, 1)), ("d".into(), c(10, 3)), ("e".into(), c(10, 1))]);
        // Churned keys, one a minute: the list stays one long.
        let mut counts = Vec::new();
        for m in 0..1_000 {
            keep_count(&mut counts, format!("k{m}"), c(m, 1), m);
        }
        assert_eq!(counts.len(), 1);
    }

    const T0: i64 = 1_795_626_582_000; // 2026-11-25T17:09:42Z
    const M: i64 = 1_000_000;

    #[test]
    fn limits_parse_patch_and_write() {
        let l = Limits::parse(&json!({"requests_per_minute": 60, "order_amount_per_day": "500.50"}), "limits").unwrap();
        assert_eq!(l, Limits { requests_per_minute: Some(60), order_amount_per_day: Some(500_500_000) });
        assert_eq!(l.json(), r#"{"requests_per_minute":60,"order_amount_per_day":500.5}"#);
        assert_eq!(Limits::parse(&json!({}), "limits").unwrap(), Limits::default());
        assert_eq!(Limits::default().json(), r#"{"requests_per_minute":null,"order_amount_per_day":null}"#);
        assert_eq!(Limits::parse(&json!({"requests_per_minute": 5, "order_amount_per_day": 25}), "x").unwrap().requests_per_minute, Some(5));
        // 5.0 and 1e2 are JSON integers too (JSON Schema's `integer`, the
        // OpenAPI document's type).
        for (given, n) in [(json!(5.0), 5), (serde_json::from_str::<Value>("1e2").unwrap(), 100)] {
            assert_eq!(Limits::parse(&json!({"requests_per_minute": given}), "x").unwrap().requests_per_minute, Some(n));
        }
        // Patch: a member set, one removed, the other kept.
        let p = l.patch(&json!({"requests_per_minute": null}), "limits").unwrap();
        assert_eq!(p, Limits { requests_per_minute: None, order_amount_per_day: Some(500_500_000) });
        let p = l.patch(&json!({"order_amount_per_day": 10}), "limits").unwrap();
        assert_eq!(p, Limits { requests_per_minute: Some(60), order_amount_per_day: Some(10 * M) });
        for (bad, names) in [
            (json!([]), "limits must be an object"),
            (json!({"requests_per_minute": 0}), "limits.requests_per_minute must be a JSON integer from 1"),
            (json!({"requests_per_minute": "5"}), "limits.requests_per_minute"),
            (json!({"requests_per_minute": 1.5}), "limits.requests_per_minute"),
            (json!({"requests_per_minute": 1_000_001}), "limits.requests_per_minute"),
            (json!({"requests_per_minute": true}), "limits.requests_per_minute"),
            (json!({"order_amount_per_day": 0}), "limits.order_amount_per_day must be a number above 0"),
            (json!({"order_amount_per_day": -1}), "limits.order_amount_per_day"),
            (json!({"order_amount_per_day": "ten"}), "limits.order_amount_per_day"),
            (json!({"order_amount_per_day": 1e10}), "limits.order_amount_per_day"),
            (json!({"request_per_minute": 5}), "limits has an unknown member; it may have only requests_per_minute and order_amount_per_day"),
        ] {
            let e = Limits::parse(&bad, "limits").unwrap_err();
            assert!(e.starts_with(names), "{bad}: {e}");
        }
        // An unknown member's name (the caller's text) is not echoed.
        let e = Limits::parse(&json!({"secret-ish name": 1}), "limits").unwrap_err();
        assert!(!e.contains("secret-ish"), "{e}");
    }

    #[test]
    fn limits_are_stored_in_millionths() {
        let l = Limits { requests_per_minute: Some(3), order_amount_per_day: Some(25_500_000) };
        let text = serde_json::to_string(&l).unwrap();
        assert_eq!(text, r#"{"requests_per_minute":3,"order_amount_per_day_micros":25500000}"#);
        assert_eq!(serde_json::from_str::<Limits>(&text).unwrap(), l);
        assert_eq!(serde_json::from_str::<Limits>("{}").unwrap(), Limits::default());
        assert_eq!(l.json(), r#"{"requests_per_minute":3,"order_amount_per_day":25.5}"#, "the API's form");
    }

    #[test]
    fn counters_keep_the_latest_minute() {
        let c = Counter::default().add(5, 2).add(5, 1);
        assert_eq!((c.at(5), c.at(6)), (3, 0));
        let c = c.add(7, 1);
        assert_eq!(c, Counter { minute: 7, count: 1 });
        assert_eq!(c.add(6, 9), c, "an earlier minute's count changes nothing");
        assert_eq!(c.at(6), 1, "a clock stepped back reads the later minute's count");
        let mut d = UsageDelta::default();
        d.count(7 * MINUTE_MS);
        d.count(6 * MINUTE_MS);
        assert_eq!(d.counter(), Counter { minute: 7, count: 2 }, "a request after a step back counts in the later minute");
        // Two replies in either order: the newer count stays.
        let (old, new) = (Counter { minute: 7, count: 2 }, Counter { minute: 7, count: 5 });
        assert_eq!((old.latest(new), new.latest(old)), (new, new));
        let next = Counter { minute: 8, count: 1 };
        assert_eq!((new.latest(next), next.latest(new)), (next, next));
    }

    #[test]
    fn the_rate_check_names_the_limit_and_the_wait() {
        assert!(check_rate(None, 1_000_000, T0).is_ok());
        assert!(check_rate(Some(3), 2, T0).is_ok());
        let e = check_rate(Some(3), 3, T0).unwrap_err();
        assert_eq!((e.status, e.code), (429, ErrorCode::QuotaExceeded));
        assert_eq!(e.retry_after_secs, Some(18), "T0 is 42 s into its minute");
        assert!(e.message.contains("requests_per_minute limit (3)"), "{}", e.message);
        // On the last millisecond of a minute: at least 1 s.
        assert_eq!(check_rate(Some(1), 1, 60_000 * 5 - 1).unwrap_err().retry_after_secs, Some(1));
    }

    #[test]
    fn usage_adds_up() {
        let mut d = UsageDelta { id: "k".into(), ..Default::default() };
        d.count(T0);
        d.count(T0 + 1);
        d.count(T0 + 60_000);
        assert_eq!((d.requests, d.counter(), d.last_used_ms), (3, Counter { minute: minute_of(T0) + 1, count: 1 }, T0 + 60_000));
        let u = Usage::default().with_requests(&d).with_requests(&d).with_order(25 * M);
        assert_eq!((u.requests, u.orders, u.amount, u.minute.count), (6, 1, 25 * M, 2));
        assert_eq!(u.json(day_of(T0), 0), r#"{"day":"2026-11-25","requests":6,"orders":1,"amount":25,"reserved":0}"#);
        assert_eq!(u.json(day_of(T0), 12_500_000), r#"{"day":"2026-11-25","requests":6,"orders":1,"amount":25,"reserved":12.5}"#);
        // An earlier batch merged back (its sync failed): counts add up.
        let mut later = UsageDelta { id: "k".into(), ..Default::default() };
        later.count(T0 + 60_001);
        later.merge(&d);
        assert_eq!((later.requests, later.counter().count, later.last_used_ms), (4, 2, T0 + 60_001));
        let mut fresh = UsageDelta { id: "k".into(), ..Default::default() };
        fresh.merge(&d);
        assert_eq!(fresh, d, "merged into nothing: the batch itself");
    }

    fn hold(state: HoldState, holders: u32) -> Hold {
        Hold { day: day_of(T0), amount: 60 * M, holders, state }
    }

    #[test]
    fn reserve_every_arm() {
        // Nothing known, under the cap: a new hold of this day.
        let (r, h) = reserve(None, 30 * M, 0, 60 * M, Some(100 * M), T0);
        assert_eq!(r, Reservation::Granted { created: true, held: true });
        assert_eq!(h, Some(hold(HoldState::Held, 1)));
        // Exactly up to the cap passes; a millionth more does not.
        assert!(matches!(reserve(None, 40 * M, 0, 60 * M, Some(100 * M), T0).0, Reservation::Granted { .. }));
        let (r, h) = reserve(None, 40 * M + 1, 0, 60 * M, Some(100 * M), T0);
        let Reservation::Refused(e) = r else { panic!("{r:?}") };
        assert_eq!(h, None, "nothing stored");
        assert_eq!((e.status, e.code), (429, ErrorCode::QuotaExceeded));
        assert!(e.message.contains("order_amount_per_day limit (100; 40.000001 already placed or reserved today"), "{}", e.message);
        assert!(e.message.contains("this order (60)"), "{}", e.message);
        assert_eq!(e.retry_after_secs, Some(secs_until((day_of(T0) + 1) * DAY_MS, T0)), "until the next UTC day");
        assert!(e.message.contains("retry after 24618 s (the next UTC day)"), "{}", e.message);
        // Over the cap only with what orders of unknown fate hold: their
        // fate may free it, so a retry is worth it in 90 s, not tomorrow.
        for (placed, reserved) in [(0, 40 * M + 1), (30 * M, 10 * M + 1), (40 * M, 60 * M)] {
            let (r, h) = reserve(None, placed, reserved, 60 * M, Some(100 * M), T0);
            let Reservation::Refused(e) = r else { panic!("{placed} {reserved}: {r:?}") };
            assert_eq!((h, e.retry_after_secs), (None, Some(90)), "{placed} {reserved}");
            assert!(e.message.contains("retry after 90 s (when orders whose fate is not known yet may have settled)"), "{}", e.message);
            assert!(e.message.contains(&format!("(100; {} already placed or reserved today", micros_text(placed + reserved))), "{}", e.message);
        }
        // ... and placed alone leaving no room: the next UTC day, held or not.
        for reserved in [0, 1, 50 * M] {
            let (r, _) = reserve(None, 40 * M + 1, reserved, 60 * M, Some(100 * M), T0);
            let Reservation::Refused(e) = r else { panic!("{reserved}: {r:?}") };
            assert_eq!(e.retry_after_secs, Some(secs_until((day_of(T0) + 1) * DAY_MS, T0)), "{reserved}");
        }
        // An order over the whole cap: refused on any day, so no
        // Retry-After (a client would wait for a day with no room either).
        for (placed, reserved) in [(0, 0), (40 * M, 0), (0, 50 * M)] {
            let (r, h) = reserve(None, placed, reserved, 100 * M + 1, Some(100 * M), T0);
            let Reservation::Refused(e) = r else { panic!("{placed} {reserved}: {r:?}") };
            assert_eq!((h, e.status, e.code, e.retry_after_secs), (None, 429, ErrorCode::QuotaExceeded, None), "{placed} {reserved}");
            assert!(e.message.contains("this order (100.000001) is more than this key's order_amount_per_day limit (100)"), "{}", e.message);
            assert!(e.message.contains("no retry can place it") && !e.message.contains("retry after"), "{}", e.message);
        }
        // The whole cap in one order is still within it.
        assert!(matches!(reserve(None, 0, 0, 100 * M, Some(100 * M), T0).0, Reservation::Granted { .. }));
        // Exactly up to the cap with both: granted.
        assert!(matches!(reserve(None, 20 * M, 20 * M, 60 * M, Some(100 * M), T0).0, Reservation::Granted { .. }));
        // No cap: always granted (and held, so each order counts once).
        assert_eq!(reserve(None, i64::MAX, 0, 60 * M, None, T0).0, Reservation::Granted { created: true, held: true });
        // The same order again: joins its hold, whatever the cap says now.
        for state in [HoldState::Held, HoldState::Pending] {
            let (r, h) = reserve(Some(&hold(state, 1)), 1000 * M, 0, 60 * M, Some(M), T0);
            assert_eq!(r, Reservation::Granted { created: false, held: true });
            assert_eq!(h, Some(hold(state, 2)));
        }
        // A placed order again (a replay): nothing new.
        let (r, h) = reserve(Some(&hold(HoldState::Committed, 0)), 1000 * M, 0, 60 * M, Some(M), T0);
        assert_eq!((r, h), (Reservation::Granted { created: false, held: false }, None));
    }

    /// Requests of one capped key for one order, reserved in turn, then
    /// settled in `order` with their fates: what is counted in all, and the
    /// hold left.
    fn counted_for(fates: &[Fate], order: &[usize]) -> (i64, Option<Hold>) {
        let apply = |stored: &mut Option<Hold>, change: HoldChange| match change {
            HoldChange::Keep => {}
            HoldChange::Put(h) => *stored = Some(h),
            HoldChange::Drop => *stored = None,
        };
        let mut stored: Option<Hold> = None;
        let grants: Vec<(bool, bool)> = fates
            .iter()
            .map(|_| {
                let (r, h) = reserve(stored.as_ref(), 0, 0, 60 * M, Some(100 * M), T0);
                let Reservation::Granted { created, held } = r else { panic!("{r:?}") };
                if let Some(h) = h {
                    stored = Some(h);
                }
                (created, held)
            })
            .collect();
        let mut counted = 0;
        for &i in order {
            let (created, held) = grants[i];
            let out = settle(stored.as_ref(), held, created, fates[i], 60 * M, T0);
            apply(&mut stored, out.hold);
            counted += out.counted.map_or(0, |c| c.1);
        }
        (counted, stored)
    }

    #[test]
    fn an_order_a_keys_request_may_have_sent_counts_for_that_key_once_whatever_the_settle_order() {
        let committed = (60 * M, Some(Hold { day: day_of(T0), amount: 60 * M, holders: 0, state: HoldState::Committed }));
        for order in [[0, 1], [1, 0]] {
            // The first sent it, the second joined it.
            assert_eq!(counted_for(&[Fate::Placed, Fate::Replayed], &order), committed, "{order:?}");
            // Both joined another key's call: counted once (no request can
            // tell; erring toward refusing).
            assert_eq!(counted_for(&[Fate::Replayed, Fate::Replayed], &order), committed, "{order:?}");
        }
        // The second reached the ledger first and sent it, its answer lost;
        // the first was answered from the ledger. Settled second, the replay
        // commits it; settled first, it leaves the hold to the other, whose
        // unknown fate keeps it reserved for the registry's look
        // ([`abandoned`]), never freed.
        assert_eq!(counted_for(&[Fate::Replayed, Fate::Unknown], &[1, 0]), committed);
        let (n, left) = counted_for(&[Fate::Replayed, Fate::Unknown], &[0, 1]);
        assert_eq!((n, left.map(|h| (h.state, h.holders))), (0, Some((HoldState::Pending, 0))));
    }

    #[test]
    fn settle_every_arm() {
        let today = day_of(T0);
        let s = |existing: Option<Hold>, held, created, fate| settle(existing.as_ref(), held, created, fate, 60 * M, T0);
        // No hold (a key without a cap).
        assert_eq!(s(None, false, false, Fate::Placed), Settled { hold: HoldChange::Put(Hold { holders: 0, ..hold(HoldState::Committed, 0) }), counted: Some((today, 60 * M)) });
        assert_eq!(s(None, false, false, Fate::Unknown), Settled { hold: HoldChange::Put(hold(HoldState::Pending, 0)), counted: None });
        assert_eq!(s(None, false, false, Fate::Replayed), Settled { hold: HoldChange::Keep, counted: None });
        assert_eq!(s(None, false, false, Fate::Refused), Settled { hold: HoldChange::Keep, counted: None });
        // Placed: committed and counted once.
        let held = Some(hold(HoldState::Held, 1));
        assert_eq!(s(held, true, true, Fate::Placed), Settled { hold: HoldChange::Put(hold(HoldState::Committed, 0)), counted: Some((today, 60 * M)) });
        let done = Some(hold(HoldState::Committed, 1));
        assert_eq!(s(done, true, false, Fate::Placed), Settled { hold: HoldChange::Put(hold(HoldState::Committed, 0)), counted: None }, "never twice");
        // A definite refusal frees the amount once nobody else holds it.
        assert_eq!(s(held, true, true, Fate::Refused), Settled { hold: HoldChange::Drop, counted: None });
        assert_eq!(s(Some(hold(HoldState::Held, 2)), true, true, Fate::Refused), Settled { hold: HoldChange::Put(hold(HoldState::Held, 1)), counted: None });
        assert_eq!(s(Some(hold(HoldState::Pending, 1)), true, false, Fate::Refused), Settled { hold: HoldChange::Drop, counted: None }, "learnt: not placed");
        assert_eq!(s(done, false, false, Fate::Refused), Settled { hold: HoldChange::Keep, counted: None }, "a placed order stays counted");
        // Unknown: stays counted, pending.
        assert_eq!(s(held, true, true, Fate::Unknown), Settled { hold: HoldChange::Put(hold(HoldState::Pending, 0)), counted: None });
        assert_eq!(s(done, false, false, Fate::Unknown), Settled { hold: HoldChange::Keep, counted: None });
        // Replayed: a hold found (pending or in flight) is that order, placed.
        for state in [HoldState::Pending, HoldState::Held] {
            assert_eq!(s(Some(hold(state, 2)), true, false, Fate::Replayed), Settled { hold: HoldChange::Put(hold(HoldState::Committed, 1)), counted: Some((today, 60 * M)) });
        }
        // So is a pending one it took: a request that joined it may have
        // sent the order and lost its answer.
        assert_eq!(s(Some(hold(HoldState::Pending, 1)), true, true, Fate::Replayed), Settled { hold: HoldChange::Put(hold(HoldState::Committed, 0)), counted: Some((today, 60 * M)) });
        // Replayed for a hold this request took, in flight: placed before it existed.
        assert_eq!(s(held, true, true, Fate::Replayed), Settled { hold: HoldChange::Drop, counted: None });
        assert_eq!(s(done, true, true, Fate::Replayed), Settled { hold: HoldChange::Put(hold(HoldState::Committed, 0)), counted: None });
        // A pending hold of an earlier day commits into that day.
        let old = Hold { day: today - 1, ..hold(HoldState::Pending, 0) };
        assert_eq!(settle(Some(&old), false, false, Fate::Placed, 60 * M, T0).counted, Some((today - 1, 60 * M)));
    }

    #[test]
    fn reconcile_every_arm() {
        let today = day_of(T0);
        // Placed: committed and counted in the hold's day, once.
        for state in [HoldState::Pending, HoldState::Held] {
            assert_eq!(reconcile(&hold(state, 0), true), Settled { hold: HoldChange::Put(hold(HoldState::Committed, 0)), counted: Some((today, 60 * M)) });
        }
        assert_eq!(reconcile(&hold(HoldState::Pending, 2), true).hold, HoldChange::Put(hold(HoldState::Committed, 2)), "its holders settle it later: never counted again");
        let old = Hold { day: today - 1, ..hold(HoldState::Pending, 0) };
        assert_eq!(reconcile(&old, true).counted, Some((today - 1, 60 * M)));
        // Committed already (a retry learnt it first): nothing, placed or not.
        for placed in [true, false] {
            assert_eq!(reconcile(&hold(HoldState::Committed, 0), placed), Settled { hold: HoldChange::Keep, counted: None });
        }
        // Not placed: freed when nobody holds it...
        for state in [HoldState::Pending, HoldState::Held] {
            assert_eq!(reconcile(&hold(state, 0), false), Settled { hold: HoldChange::Drop, counted: None });
        }
        // ...else left to the requests in flight (still counted).
        assert_eq!(reconcile(&hold(HoldState::Pending, 1), false), Settled { hold: HoldChange::Put(hold(HoldState::Held, 1)), counted: None });
        assert_eq!(reconcile(&hold(HoldState::Held, 1), false), Settled { hold: HoldChange::Keep, counted: None });
        // The last holder's refusal then drops it.
        assert_eq!(settle(Some(&hold(HoldState::Held, 1)), true, false, Fate::Refused, 60 * M, T0).hold, HoldChange::Drop);
        // A last holder that settles `Unknown` (a retry told
        // `order_in_progress` while the look ran) leaves it pending with no
        // holders, still counted, until the registry's own look frees it.
        let after = settle(Some(&hold(HoldState::Held, 1)), true, false, Fate::Unknown, 60 * M, T0);
        assert_eq!(after, Settled { hold: HoldChange::Put(hold(HoldState::Pending, 0)), counted: None });
        assert_eq!(abandoned(&hold(HoldState::Pending, 0), Known::NotPlaced).hold, HoldChange::Drop);
    }

    #[test]
    fn abandoned_every_arm() {
        let today = day_of(T0);
        for state in [HoldState::Held, HoldState::Pending] {
            // Placed: committed with no holders, counted once in its day.
            assert_eq!(abandoned(&hold(state, 2), Known::Placed), Settled { hold: HoldChange::Put(hold(HoldState::Committed, 0)), counted: Some((today, 60 * M)) });
            // Not placed, or never sent: freed.
            assert_eq!(abandoned(&hold(state, 1), Known::NotPlaced), Settled { hold: HoldChange::Drop, counted: None });
            // Pending: still counted, left to the ledger's settlement.
            assert_eq!(abandoned(&hold(state, 1), Known::Pending), Settled { hold: HoldChange::Put(hold(HoldState::Pending, 0)), counted: None });
            assert_eq!(reconcile(&hold(HoldState::Pending, 0), false).hold, HoldChange::Drop, "which then frees it");
        }
        // Pending with no holders already (a lost answer's hold, asked
        // again by a later alarm): nothing to write.
        assert_eq!(abandoned(&hold(HoldState::Pending, 0), Known::Pending), Settled { hold: HoldChange::Keep, counted: None });
        // Its ledger never had it: freed.
        assert_eq!(abandoned(&hold(HoldState::Pending, 0), Known::NotPlaced).hold, HoldChange::Drop);
        // Committed already: nothing, whatever the ledger says.
        for known in [Known::Placed, Known::NotPlaced, Known::Pending] {
            assert_eq!(abandoned(&hold(HoldState::Committed, 1), known), Settled { hold: HoldChange::Keep, counted: None });
        }
        // A request that was alive after all settles it afterwards without
        // counting twice: a committed hold...
        let committed = hold(HoldState::Committed, 0);
        assert_eq!(settle(Some(&committed), true, false, Fate::Placed, 60 * M, T0).counted, None);
        // ...or none (freed), for an order it then placed: counted then.
        assert_eq!(settle(None, true, true, Fate::Placed, 60 * M, T0).counted, Some((today, 60 * M)));
        assert_eq!(settle(None, true, true, Fate::Refused, 60 * M, T0).hold, HoldChange::Keep);
    }

    #[test]
    fn two_concurrent_orders_over_the_cap_pass_one() {
        // The registry runs reserve for each in turn: the second sees the first's hold.
        let cap = Some(100 * M);
        let (r1, h1) = reserve(None, 0, 0, 60 * M, cap, T0);
        let spent = h1.filter(|h| h.reserves(day_of(T0))).map_or(0, |h| h.amount);
        let (r2, _) = reserve(None, 0, spent, 60 * M, cap, T0);
        assert!(matches!(r1, Reservation::Granted { .. }));
        let Reservation::Refused(e) = r2 else { panic!("{r2:?}") };
        assert_eq!(e.retry_after_secs, Some(UNSETTLED_RETRY_SECS), "the first may yet fail: worth asking again soon");
        assert!(hold(HoldState::Pending, 0).reserves(day_of(T0)));
        assert!(!hold(HoldState::Committed, 0).reserves(day_of(T0)), "committed: in Usage::amount");
        assert!(!Hold { day: day_of(T0) - 1, ..hold(HoldState::Held, 1) }.reserves(day_of(T0)), "another day");
        assert_eq!(HoldState::from_name("committed"), HoldState::Committed);
        assert_eq!(HoldState::from_name("held"), HoldState::Held);
        assert_eq!(HoldState::from_name("?"), HoldState::Pending, "unknown: keeps counting");
        for s in [HoldState::Held, HoldState::Pending, HoldState::Committed] {
            assert_eq!(HoldState::from_name(s.as_str()), s);
        }
    }

    /// Each limit's maximum is accepted, and `null` removes the amount cap
    /// as it removes the rate limit.
    #[test]
    fn limits_reach_their_maximum_and_each_can_be_removed() {
        let l = Limits::parse(&json!({"requests_per_minute": MAX_REQUESTS_PER_MINUTE, "order_amount_per_day": 1_000_000_000}), "limits").unwrap();
        assert_eq!(l, Limits { requests_per_minute: Some(MAX_REQUESTS_PER_MINUTE), order_amount_per_day: Some(MAX_ORDER_AMOUNT_PER_DAY) });
        let p = l.patch(&json!({"order_amount_per_day": null}), "limits").unwrap();
        assert_eq!(p, Limits { requests_per_minute: Some(MAX_REQUESTS_PER_MINUTE), order_amount_per_day: None });
    }

    /// A request still alive after its hold was taken for abandoned (no
    /// holders left) settles it as its own: refused, the hold is dropped,
    /// not kept with a holder count gone below zero (which would count its
    /// amount against the cap for good).
    #[test]
    fn a_live_request_frees_a_hold_taken_for_abandoned() {
        let pending = match abandoned(&hold(HoldState::Held, 1), Known::Pending).hold {
            HoldChange::Put(p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(pending.holders, 0);
        assert_eq!(settle(Some(&pending), true, true, Fate::Refused, 60 * M, T0), Settled { hold: HoldChange::Drop, counted: None });
    }

    #[test]
    fn the_last_use_never_goes_back() {
        let mut d = UsageDelta { id: "k".into(), ..Default::default() };
        d.count(T0 + 5);
        d.count(T0);
        assert_eq!((d.requests, d.last_used_ms), (2, T0 + 5));
    }
}
