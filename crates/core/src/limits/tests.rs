use super::lease::{load, Grant, OpState, PROBE_HOLD_MS};
use super::*;
use crate::upstream::Observed::{Daily, Stated, Unstated};

/// 2026-11-30T10:00:00Z.
const T0: i64 = 1_796_032_800_000;
const H: i64 = 3_600_000;

#[test]
fn documented_budgets_and_overrides() {
    let b = Budgets::default();
    let got: Vec<u32> = Operation::ALL.iter().map(|op| b.of(*op)).collect();
    // getFilters, getVouchers, getBalance, placeOrder, getOrderDetails, getOrderHistory, paymentHistory
    assert_eq!(got, [50, 50, 10, 100, 200, 200, 50]);
    let o = Budgets::parse(r#"{"getBalance": 30, "placeOrder": 1000000}"#).unwrap();
    assert_eq!((o.of(Operation::GetBalance), o.of(Operation::PlaceOrder), o.of(Operation::GetVouchers)), (30, 1_000_000, 50));
    assert_eq!(Budgets::parse("{}").unwrap(), Budgets::default());
    for bad in ["", "[]", "7", r#"{"getBalance": 0}"#, r#"{"getBalance": 1000001}"#, r#"{"getBalance": "30"}"#, r#"{"getBalance": 2.5}"#, r#"{"getBalanse": 3}"#, r#"{"getBalance": 10, "getBalance": 1000}"#] {
        let e = Budgets::parse(bad).unwrap_err();
        assert!(e.starts_with("XOXODAY_RATE_LIMITS "), "{bad}: {e}");
        assert!(!e.contains("getBalanse"), "never echoes the value: {e}");
    }
}

#[test]
fn leases_are_a_tenth_of_the_budget_at_most() {
    assert_eq!([max_lease(10), max_lease(50), max_lease(200), max_lease(9), max_lease(1)], [1, 5, 20, 1, 1]);
}

#[test]
fn stated_penalties_last_as_said() {
    let p = penalty_until(None, Stated(42), T0);
    // Not probed: the report's time stands for the probe.
    assert_eq!(p, Penalty { until_ms: T0 + 42_000, strikes: 1, daily_since_ms: None, first_lent_ms: Some(T0) });
    // Reported again by another isolate while it runs: never shortened.
    let again = penalty_until(Some(p), Stated(10), T0 + 1_000);
    assert_eq!(again, Penalty { until_ms: T0 + 42_000, strikes: 1, daily_since_ms: None, first_lent_ms: Some(T0 + 1_000) });
    let longer = penalty_until(Some(p), Stated(100), T0 + 1_000);
    assert_eq!(longer.until_ms, T0 + 101_000);
}

#[test]
fn unstated_penalties_double_while_they_repeat() {
    assert_eq!((1..=9).map(unstated_secs).collect::<Vec<_>>(), [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
    assert_eq!(unstated_secs(u32::MAX), 3600);
    let first = penalty_until(None, Unstated, T0);
    assert_eq!(first, Penalty { until_ms: T0 + 60_000, strikes: 1, daily_since_ms: None, first_lent_ms: None });
    // The same penalty reported again during it (an isolate that called
    // before it knew): no escalation, but it runs a minute from this
    // report, as Xoxoday may have restarted it.
    assert_eq!(penalty_until(Some(first), Unstated, T0 + 30_000), Penalty { until_ms: T0 + 90_000, strikes: 1, daily_since_ms: None, first_lent_ms: None });
    // Another one soon after it ended: twice as long.
    let second = penalty_until(Some(first), Unstated, first.until_ms + 5_000);
    assert_eq!(second, Penalty { until_ms: first.until_ms + 5_000 + 120_000, strikes: 2, daily_since_ms: None, first_lent_ms: None });
    let third = penalty_until(Some(second), Unstated, second.until_ms + 1);
    assert_eq!(third.strikes, 3);
    assert_eq!(third.until_ms, second.until_ms + 1 + 240_000);
    // Long after the last one ended: back to a minute.
    let later = penalty_until(Some(third), Unstated, third.until_ms + STRIKE_RESET_MS);
    assert_eq!(later, Penalty { until_ms: third.until_ms + STRIKE_RESET_MS + 60_000, strikes: 1, daily_since_ms: None, first_lent_ms: None });
    // A stated penalty keeps counting strikes but lasts as said.
    let stated = penalty_until(Some(second), Stated(5), second.until_ms + 1);
    assert_eq!(stated, Penalty { until_ms: second.until_ms + 1 + 5_000, strikes: 3, daily_since_ms: None, first_lent_ms: Some(second.until_ms + 1) });
}

/// After a penalty whose end plumgate guessed, the isolates asking at its
/// end get one call between them (the probe), not one each; a stated
/// penalty's end lends as usual.
#[test]
fn a_guessed_penalty_ends_with_one_probe_not_a_herd() {
    let day = |h: i64, m: i64| T0 - 10 * H + h * H + m * 60_000;
    for (observed, at, end) in [(Daily, day(10, 0), day(18, 30)), (Unstated, T0, T0 + 60_000)] {
        let mut s = LimiterState::default();
        penalise(&mut s, "getVouchers", observed, at);
        // Ten isolates ask within 180 ms of the end, each for five calls.
        let answers: Vec<LeaseAnswer> = (0..10).map(|i| lease(&mut s, "getVouchers", 50, 5, end + i * 20)).collect();
        assert_eq!(answers.iter().map(|a| a.calls).sum::<u32>(), 1, "{observed:?}: {answers:?}");
        assert_eq!(answers[0].calls, 1, "the first asker probes");
        for a in &answers[1..] {
            assert_eq!((a.penalty_until_ms, a.retry_at_ms), (Some(end + PROBE_HOLD_MS), None), "held as the penalty");
        }
        // The probe was refused: the next penalty stands, nothing lent.
        penalise(&mut s, "getVouchers", observed, end + 800);
        assert_eq!(lease(&mut s, "getVouchers", 50, 5, end + PROBE_HOLD_MS).calls, 0, "{observed:?}");
        let again = s.of("getVouchers").unwrap().penalty.unwrap().until_ms;
        // It went through this time (no report): after the hold, leases
        // as usual.
        assert_eq!(lease(&mut s, "getVouchers", 50, 5, again).calls, 1);
        assert_eq!(lease(&mut s, "getVouchers", 50, 5, again + PROBE_HOLD_MS - 1).calls, 0);
        assert_eq!(lease(&mut s, "getVouchers", 50, 5, again + PROBE_HOLD_MS).calls, 5);
    }
    let mut s = LimiterState::default();
    penalise(&mut s, "getVouchers", Stated(30), T0);
    assert_eq!(lease(&mut s, "getVouchers", 50, 5, T0 + 30_000).calls, 5, "a stated end is not probed");
    assert_eq!(lease(&mut s, "getVouchers", 50, 5, T0 + 30_001).calls, 5);
    // A stated report during a guessed penalty leaves its probe standing.
    let mut s = LimiterState::default();
    penalise(&mut s, "getVouchers", Unstated, T0);
    penalise(&mut s, "getVouchers", Stated(90), T0 + 10_000);
    // First asked 100 s after its end.
    let probe = T0 + 200_000;
    assert_eq!([lease(&mut s, "getVouchers", 50, 5, probe).calls, lease(&mut s, "getVouchers", 50, 5, probe + 1).calls], [1, 0]);
    // A clock stepped back 60 s (still past the penalty) is not held for
    // 65 s.
    let a = lease(&mut s, "getVouchers", 50, 5, probe - 60_000);
    assert_eq!((a.calls, a.penalty_until_ms), (5, None));
    // A penalty that ended long ago, stored without a probe time by an
    // earlier version, is not probed; a daily cap's is.
    let old = |daily_since_ms| LimiterState {
        ops: vec![OpState { op: "placeOrder".into(), grants: vec![], penalty: Some(Penalty { until_ms: T0, strikes: 1, daily_since_ms, first_lent_ms: None }) }],
    };
    assert_eq!(lease(&mut old(None), "placeOrder", 50, 5, T0 + 30 * 86_400_000).calls, 5);
    assert_eq!(lease(&mut old(None), "placeOrder", 50, 5, T0 + STRIKE_RESET_MS - 1).calls, 1, "a guessed end just past: probed");
    assert_eq!(lease(&mut old(Some(T0 - H)), "placeOrder", 50, 5, T0 + 3 * H).calls, 1);
}

/// Refused probes of a daily cap are no strikes: a minute's penalty soon
/// after the cap lifts is not four times as long for them.
#[test]
fn daily_probes_refused_add_no_strikes() {
    let day = |h: i64, m: i64| T0 - 10 * H + h * H + m * 60_000;
    let met = penalty_until(None, Daily, day(10, 0));
    let ist = penalty_until(Some(met), Daily, day(18, 30));
    let utc = penalty_until(Some(ist), Daily, day(24, 0));
    assert_eq!([met.strikes, ist.strikes, utc.strikes], [1, 1, 1]);
    // The probe at 10:01 the next day goes through; at 10:05 a bare 429.
    let minute = penalty_until(Some(utc), Unstated, day(24 + 10, 5));
    assert_eq!(minute.until_ms - day(24 + 10, 5), 120_000, "one strike on from the cap, not three");
}

#[test]
fn the_daily_cap_ends_at_the_next_day_boundary() {
    let day = |h: i64, m: i64| T0 - 10 * H + h * H + m * 60_000;
    // 10:00 UTC: IST midnight (18:30 UTC) comes first.
    assert_eq!(next_day_boundary(day(10, 0)), day(18, 30));
    // 18:30 UTC exactly (IST midnight): UTC midnight is next.
    assert_eq!(next_day_boundary(day(18, 30)), day(24, 0));
    // 19:00 UTC: UTC midnight comes first; then IST midnight again.
    assert_eq!(next_day_boundary(day(19, 0)), day(24, 0));
    assert_eq!(next_day_boundary(day(24, 0)), day(24 + 18, 30));
    assert_eq!(next_day_boundary(day(23, 59)), day(24, 0));
    assert_eq!(next_day_boundary(day(0, 1)), day(18, 30));
    // Always in the future, at most a day away.
    for m in (0..2 * 24 * 60).step_by(7) {
        let now = day(0, 0) + m * 60_000 + 123;
        let b = next_day_boundary(now);
        assert!(b > now && b - now <= 86_400_000, "{now}");
    }
    let p = penalty_until(None, Daily, day(10, 0));
    assert_eq!(p.until_ms, day(18, 30));
    assert_eq!(secs_until(p.until_ms, day(10, 0)), 8 * 3600 + 30 * 60);
    assert_eq!(secs_until(T0, T0 + 5), 1, "never 0");
}

/// The three readings of "500 calls per 24 h": the cap met at 10:00 UTC.
/// Under IST days the probe at 18:30 UTC goes through; under UTC days the
/// one at midnight does; under a rolling window both are refused, and the
/// next probe is a day (and a minute) after the cap was first met, 10:01,
/// not 18:30 the next day.
#[test]
fn the_daily_cap_survives_every_reading_of_its_day() {
    let day = |h: i64, m: i64| T0 - 10 * H + h * H + m * 60_000;
    let first = penalty_until(None, Daily, day(10, 0));
    assert_eq!((first.until_ms, first.daily_since_ms), (day(18, 30), Some(day(10, 0))));
    // Reported again by another isolate meanwhile: the same penalty.
    assert_eq!(penalty_until(Some(first), Daily, day(12, 0)), first);
    // The probe at IST midnight refused: UTC midnight next, since kept.
    let second = penalty_until(Some(first), Daily, day(18, 30));
    assert_eq!((second.until_ms, second.daily_since_ms), (day(24, 0), Some(day(10, 0))));
    // The probe at UTC midnight refused too: the rolling window's bound.
    let third = penalty_until(Some(second), Daily, day(24, 0));
    assert_eq!((third.until_ms, third.daily_since_ms), (day(34, 1), Some(day(10, 0))));
    // Refused at that bound as well (calls made elsewhere): a new cap,
    // counted from now.
    let fourth = penalty_until(Some(third), Daily, day(34, 1));
    assert_eq!((fourth.until_ms, fourth.daily_since_ms), (day(24 + 18, 30), Some(day(34, 1))));
    // Met first at 19:00 UTC: midnight UTC, then IST midnight (18:30, before
    // the day bound of 19:01), then the day bound is past: next boundary.
    let a = penalty_until(None, Daily, day(19, 0));
    assert_eq!(a.until_ms, day(24, 0));
    let b = penalty_until(Some(a), Daily, day(24, 0));
    assert_eq!(b.until_ms, day(24 + 18, 30), "the boundary comes before the day bound: no extra probe");
    let c = penalty_until(Some(b), Daily, day(24 + 18, 30));
    assert_eq!((c.until_ms, c.daily_since_ms), (day(24 + 19, 1), Some(day(19, 0))));
    // Other penalties carry the date along while it may still matter, and
    // a cap met more than a day after the last one starts afresh.
    let stated = penalty_until(Some(second), Stated(30), day(24, 0));
    assert_eq!(stated.daily_since_ms, Some(day(10, 0)));
    // A stated report during a daily cap keeps the cap's single probe: no
    // full lease for every isolate at its end.
    assert_eq!(stated.first_lent_ms, None, "the daily cap's probe still stands");
    assert_eq!(penalty_until(None, Unstated, day(1, 0)).daily_since_ms, None);
    let much_later = penalty_until(Some(second), Daily, day(48, 0));
    assert_eq!(much_later.daily_since_ms, Some(day(48, 0)));
    assert_eq!(much_later.until_ms, next_day_boundary(day(48, 0)));
    // Through the limiter: the cap met at 10:00 UTC, the probe lent at IST
    // midnight goes through (no report), and the cap is met again the next
    // day at 08:00 UTC, 22 h after the first: a new day's cap, until the
    // next boundary (IST midnight, 18:30), not the first cap's day bound
    // (10:01, a probe Xoxoday would refuse).
    let capped = |first_call_at: i64, met_again_at: i64| {
        let mut st = LimiterState::default();
        penalise(&mut st, "getVouchers", Daily, day(10, 0));
        assert_eq!(lease(&mut st, "getVouchers", 500, 1, first_call_at).calls, 1);
        penalise(&mut st, "getVouchers", Daily, met_again_at);
        st.of("getVouchers").unwrap().penalty.unwrap()
    };
    let next_day = capped(day(18, 30), day(24 + 8, 0));
    assert_eq!((next_day.until_ms, next_day.daily_since_ms), (day(24 + 18, 30), Some(day(24 + 8, 0))));
    // No traffic until 20:00, and that first call is refused: the probe,
    // still maybe the same cap (a rolling window's), since kept.
    let sparse = capped(day(20, 0), day(20, 0) + 500);
    assert_eq!((sparse.until_ms, sparse.daily_since_ms), (day(24, 0), Some(day(10, 0))));
    let after_an_hour = capped(day(20, 0), day(20, 0) + DAILY_PROBE_MS);
    assert_eq!(after_an_hour.daily_since_ms, Some(day(20, 0) + DAILY_PROBE_MS), "an hour after the probe: a new cap");
    // Reported with no call lent since its end (an isolate that could not
    // ask the limiter): nothing went through, the same cap.
    assert_eq!(penalty_until(Some(first), Daily, day(24 + 8, 0)).daily_since_ms, Some(day(10, 0)));
    // The bound alone: never in the past, never after the next boundary.
    assert_eq!(daily_until(day(10, 0), day(10, 0)), day(18, 30));
    assert_eq!(daily_until(day(10, 0), day(35, 0)), next_day_boundary(day(35, 0)));
    for m in (0..3 * 24 * 60).step_by(11) {
        let now = day(10, 0) + m * 60_000;
        let u = daily_until(day(10, 0), now);
        assert!(u > now && u <= next_day_boundary(now), "{m}");
    }
}

/// Wherever in the day the cap is met, the probes until a day has passed
/// are the day boundaries in between plus at most one more (the rolling
/// window's end), and that end is always probed: the calendar readings,
/// which the boundaries settle, lose no call to the day bound.
#[test]
fn the_day_bound_costs_the_calendar_readings_no_probe() {
    let day = |h: i64, m: i64| T0 - 10 * H + h * H + m * 60_000;
    // Every minute of two days as the time the cap is met: the probes
    // before the day bound are exactly the boundaries in between.
    for m in (0..2 * 24 * 60).step_by(13) {
        let met = day(0, 0) + m * 60_000;
        let mut p = penalty_until(None, Daily, met);
        let mut probes = vec![p.until_ms];
        while p.until_ms < met + 86_400_000 {
            p = penalty_until(Some(p), Daily, p.until_ms);
            probes.push(p.until_ms);
        }
        let boundaries = probes.iter().filter(|t| next_day_boundary(**t - 1) == **t).count();
        assert!(probes.len() - boundaries <= 1, "one probe besides the boundaries at most: {probes:?}");
        assert!(probes.len() <= 4, "{probes:?}");
        assert!(probes.iter().any(|t| *t <= met + 86_400_000 + 60_000), "the rolling window's end is probed");
    }
}

#[test]
fn the_limiter_lends_within_the_budget() {
    let mut s = LimiterState::default();
    // getBalance: 10 a minute, one call a lease.
    for i in 0..10 {
        let a = lease(&mut s, "getBalance", 10, 5, T0 + i);
        assert_eq!((a.calls, a.until_ms, a.penalty_until_ms, a.retry_at_ms), (1, T0 + i + LEASE_MS, None, None), "{i}");
    }
    let spent = lease(&mut s, "getBalance", 10, 1, T0 + 100);
    assert_eq!(spent.calls, 0);
    // The first call frees up a minute (and the time a call may take to
    // reach Xoxoday) after its lease expired.
    assert_eq!(spent.retry_at_ms, Some(T0 + LEASE_MS + WINDOW_MS + TRANSIT_MS));
    assert_eq!(lease(&mut s, "getBalance", 10, 1, T0 + LEASE_MS + WINDOW_MS + TRANSIT_MS - 1).calls, 0);
    assert_eq!(lease(&mut s, "getBalance", 10, 1, T0 + LEASE_MS + WINDOW_MS + TRANSIT_MS).calls, 1);
    // Other operations have budgets of their own; leases grow with want, to a tenth.
    assert_eq!(lease(&mut s, "getOrderHistory", 200, 1, T0).calls, 1);
    assert_eq!(lease(&mut s, "getOrderHistory", 200, 8, T0).calls, 8);
    assert_eq!(lease(&mut s, "getOrderHistory", 200, 500, T0).calls, 20);
    assert_eq!(lease(&mut s, "getOrderHistory", 200, 0, T0).calls, 1, "asks for at least one");
    // Near the end of the budget, what is left.
    let mut s = LimiterState::default();
    for _ in 0..9 {
        assert_eq!(lease(&mut s, "placeOrder", 100, 10, T0).calls, 10);
    }
    assert_eq!(lease(&mut s, "placeOrder", 100, 10, T0).calls, 10);
    assert_eq!(lease(&mut s, "placeOrder", 101, 10, T0).calls, 1, "one left under a budget of 101");
    // Expired grants are dropped from storage.
    let mut s = LimiterState::default();
    lease(&mut s, "getFilters", 50, 1, T0);
    lease(&mut s, "getFilters", 50, 1, T0 + 2 * WINDOW_MS);
    assert_eq!(s.of("getFilters").unwrap().grants.len(), 1);
}

#[test]
fn a_penalty_stops_every_lease_until_it_ends() {
    let mut s = LimiterState::default();
    let p = penalise(&mut s, "getVouchers", Stated(30), T0);
    assert_eq!((p.calls, p.penalty_until_ms), (0, Some(T0 + 30_000)));
    let a = lease(&mut s, "getVouchers", 50, 1, T0 + 29_999);
    assert_eq!((a.calls, a.penalty_until_ms, a.retry_at_ms), (0, Some(T0 + 30_000), None));
    assert_eq!(lease(&mut s, "getFilters", 50, 1, T0).calls, 1, "another operation is not penalised");
    assert_eq!(lease(&mut s, "getVouchers", 50, 1, T0 + 30_000).calls, 1);
    // Escalation is the limiter's: a second unstated penalty soon after.
    penalise(&mut s, "getBalance", Unstated, T0);
    let second = penalise(&mut s, "getBalance", Unstated, T0 + 61_000);
    assert_eq!(second.penalty_until_ms, Some(T0 + 61_000 + 120_000));
    assert_eq!(s.of("getBalance").unwrap().penalty, Some(Penalty { until_ms: T0 + 181_000, strikes: 2, daily_since_ms: None, first_lent_ms: None }));
}

#[test]
fn state_json_is_pinned_and_read_leniently() {
    let mut s = LimiterState::default();
    s.ops.push(OpState {
        op: "getBalance".into(),
        grants: vec![Grant { at_ms: 1, calls: 2, until_ms: 3 }],
        penalty: Some(Penalty { until_ms: 9, strikes: 1, daily_since_ms: None, first_lent_ms: None }),
    });
    let text = serde_json::to_string(&s).unwrap();
    assert_eq!(text, r#"{"ops":[{"op":"getBalance","grants":[{"at_ms":1,"calls":2,"until_ms":3}],"penalty":{"until_ms":9,"strikes":1}}]}"#);
    assert_eq!(load(Some(&text)), (s, true));
    assert_eq!(load(None), (LimiterState::default(), true));
    let full = serde_json::json!({"ops": [{"op": "getBalance", "grants": [{"at_ms": 1, "calls": 2, "until_ms": 3}], "penalty": {"until_ms": 4, "strikes": 5, "daily_since_ms": 6, "first_lent_ms": 7}}]});
    let inner = ["/ops/0", "/ops/0/grants/0", "/ops/0/penalty"];
    let by_hand = |b: &[u8]| match load(Some(std::str::from_utf8(b).unwrap())) {
        (s, true) => Some(s),
        _ => None,
    };
    let (read, refused) = crate::stored::agree::check::<LimiterState>(&crate::stored::agree::texts(&full, &inner), by_hand);
    assert!(read > 40 && refused > 150, "{read} read, {refused} refused");
    assert_eq!(load(Some("{\"ops\":7}")), (LimiterState::default(), false), "unreadable: a fresh count, said so");
    let other = load(Some(r#"{"ops":[{"op":"x","newer":2}],"newer":1}"#)).0;
    assert_eq!(other.of("x"), Some(&OpState { op: "x".into(), ..OpState::default() }), "fields of other versions");
    let a = LeaseAnswer { calls: 3, until_ms: 5, penalty_until_ms: None, retry_at_ms: None };
    assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"calls":3,"until_ms":5}"#);
}

/// However the lent calls are spent (any isolate, any moment inside its
/// lease), no 60 s window ever holds more calls than the budget.
#[test]
fn lent_calls_never_overrun_a_minute() {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for budget in [10u32, 50, 200] {
        let mut s = LimiterState::default();
        let mut calls: Vec<i64> = Vec::new();
        let mut now = T0;
        for _ in 0..3_000 {
            now += rand(900) as i64;
            let a = lease(&mut s, "op", budget, 1 + rand(40) as u32, now);
            for _ in 0..a.calls {
                // Spent at any moment before the lease expires (or never),
                // reaching Xoxoday up to TRANSIT_MS later.
                if rand(10) > 0 {
                    calls.push(now + rand(LEASE_MS as u64) as i64 + rand(TRANSIT_MS as u64 + 1) as i64);
                }
            }
        }
        calls.sort_unstable();
        let mut worst = 0;
        for (i, t) in calls.iter().enumerate() {
            let in_window = calls[i..].iter().take_while(|u| **u < t + WINDOW_MS).count();
            worst = worst.max(in_window);
        }
        assert!(worst <= budget as usize, "budget {budget}: {worst} calls in one minute");
        assert!(worst * 10 >= budget as usize * 8, "budget {budget}: only {worst} of it used at peak");
    }
}

/// A call spent at its lease's last moment that reaches Xoxoday
/// [`TRANSIT_MS`] later, and the first call of the next lease sent at once:
/// a minute apart at Xoxoday, even at a budget of one.
#[test]
fn a_call_late_to_xoxoday_never_shares_its_minute_with_the_next_lease() {
    let mut s = LimiterState::default();
    let first = lease(&mut s, "getBalance", 1, 1, T0);
    assert_eq!(first.calls, 1);
    let arrived = first.until_ms - 1 + TRANSIT_MS;
    let next_at = lease(&mut s, "getBalance", 1, 1, T0 + 1).retry_at_ms.expect("spent: when a call frees up");
    assert_eq!(lease(&mut s, "getBalance", 1, 1, next_at - 1).calls, 0);
    assert_eq!(lease(&mut s, "getBalance", 1, 1, next_at).calls, 1);
    assert!(next_at - arrived >= WINDOW_MS, "{} ms apart at Xoxoday", next_at - arrived);
}

#[test]
fn an_isolate_spends_its_lease_from_memory() {
    let mut l = Local::default();
    assert_eq!(l.admit(T0), Admit::Ask { want: 1 });
    let lent = |calls, until_ms| LeaseAnswer { calls, until_ms, penalty_until_ms: None, retry_at_ms: None };
    assert_eq!(l.take_lease(&lent(1, T0 + LEASE_MS), T0), Admit::Go);
    // Asked again before that lease expired: demand outgrew it, ask for twice as many.
    assert_eq!(l.admit(T0 + 10), Admit::Ask { want: 2 });
    assert_eq!(l.take_lease(&lent(2, T0 + 10 + LEASE_MS), T0 + 10), Admit::Go);
    assert_eq!(l.left(T0 + 10), 1);
    assert_eq!(l.admit(T0 + 20), Admit::Go, "the second call of the lease, no round trip");
    assert_eq!(l.admit(T0 + 30), Admit::Ask { want: 4 });
    assert_eq!(l.take_lease(&lent(4, T0 + 30 + LEASE_MS), T0 + 30), Admit::Go);
    // The lease expires with calls unspent: back to one.
    assert_eq!(l.left(T0 + 30 + LEASE_MS), 0);
    assert_eq!(l.admit(T0 + 30 + LEASE_MS), Admit::Ask { want: 1 });
    // Never more than MAX_WANT.
    let mut big = Local::default();
    big.take_lease(&lent(local::MAX_WANT, T0 + LEASE_MS), T0);
    for _ in 1..local::MAX_WANT {
        assert_eq!(big.admit(T0 + 1), Admit::Go);
    }
    assert_eq!(big.admit(T0 + 2), Admit::Ask { want: local::MAX_WANT });
    // Two leases held at once (two requests asked together): calls come
    // from the one that expires first, so none lent expires unspent while
    // the other's are used.
    let mut two = Local::default();
    assert_eq!(two.take_lease(&lent(3, T0 + LEASE_MS), T0), Admit::Go);
    assert_eq!(two.take_lease(&lent(3, T0 + 10 + LEASE_MS), T0 + 10), Admit::Go);
    assert_eq!((two.admit(T0 + 20), two.admit(T0 + 20)), (Admit::Go, Admit::Go));
    assert_eq!(two.left(T0 + LEASE_MS), 2, "the later lease's calls are left when the first expires");
}

#[test]
fn an_isolate_refuses_without_asking_while_it_knows_better() {
    let mut l = Local::default();
    // The budget is spent: refused until a call frees up, without asking again.
    let none = LeaseAnswer { calls: 0, until_ms: T0, penalty_until_ms: None, retry_at_ms: Some(T0 + 7_000) };
    let r = Refusal { until_ms: T0 + 7_000, why: Why::Budget };
    assert_eq!(l.take_lease(&none, T0), Admit::Refuse(r));
    assert_eq!(l.admit(T0 + 6_999), Admit::Refuse(r));
    assert_eq!(l.admit(T0 + 7_000), Admit::Ask { want: 1 });
    // A call lent to another request meanwhile still goes.
    let mut l = Local::default();
    l.take_lease(&LeaseAnswer { calls: 3, until_ms: T0 + LEASE_MS, penalty_until_ms: None, retry_at_ms: None }, T0);
    assert_eq!(l.take_lease(&none, T0 + 1), Admit::Go);
    assert_eq!(l.admit(T0 + 2), Admit::Go);
    assert_eq!(l.admit(T0 + 3), Admit::Refuse(r), "then the spent budget refuses");
    // A penalty in a lease answer: refused until it ends, lent calls dropped.
    let mut l = Local::default();
    l.take_lease(&LeaseAnswer { calls: 5, until_ms: T0 + LEASE_MS, penalty_until_ms: None, retry_at_ms: None }, T0);
    let pen = LeaseAnswer { calls: 0, until_ms: T0, penalty_until_ms: Some(T0 + 60_000), retry_at_ms: None };
    let p = Refusal { until_ms: T0 + 60_000, why: Why::Penalty };
    assert_eq!(l.take_lease(&pen, T0 + 1), Admit::Refuse(p));
    assert_eq!(l.left(T0 + 1), 0);
    assert_eq!(l.admit(T0 + 59_999), Admit::Refuse(p));
    assert_eq!(l.admit(T0 + 60_000), Admit::Ask { want: 1 });
    // A penalty met by this isolate: the same, and a shorter report never shortens it.
    let mut l = Local::default();
    l.take_lease(&LeaseAnswer { calls: 5, until_ms: T0 + LEASE_MS, penalty_until_ms: None, retry_at_ms: None }, T0);
    l.block(T0 + 30_000, Why::Penalty);
    l.block(T0 + 10_000, Why::Penalty);
    assert_eq!(l.admit(T0 + 20_000), Admit::Refuse(Refusal { until_ms: T0 + 30_000, why: Why::Penalty }));
    // ... but the limiter's word on it is the end, sooner or later.
    l.settle_penalty(T0 + 25_000);
    assert_eq!(l.admit(T0 + 20_000), Admit::Refuse(Refusal { until_ms: T0 + 25_000, why: Why::Penalty }));
    assert_eq!(l.admit(T0 + 25_000), Admit::Ask { want: 1 });
    l.settle_penalty(T0 + 90_000);
    assert_eq!(l.admit(T0 + 60_000), Admit::Refuse(Refusal { until_ms: T0 + 90_000, why: Why::Penalty }));
    // A penalty met by another request of this isolate while this one's
    // lease was asked for: the lease's calls do not go out, and a lease
    // answer of a spent budget does not take the penalty's place.
    let mut l = Local::default();
    assert_eq!(l.admit(T0), Admit::Ask { want: 1 });
    l.block(T0 + 60_000, Why::Penalty);
    let p = Refusal { until_ms: T0 + 60_000, why: Why::Penalty };
    assert_eq!(l.take_lease(&LeaseAnswer { calls: 3, until_ms: T0 + LEASE_MS, penalty_until_ms: None, retry_at_ms: None }, T0 + 1), Admit::Refuse(p));
    assert_eq!(l.left(T0 + 1), 0, "the lent calls are dropped");
    assert_eq!(l.take_lease(&none, T0 + 2), Admit::Refuse(p));
    assert_eq!(l.admit(T0 + 59_999), Admit::Refuse(p), "still the penalty, not a 7 s budget wait");
    assert_eq!(l.admit(T0 + 60_000), Admit::Ask { want: 1 });
    // A penalty that already ended in the answer is no refusal.
    let mut l = Local::default();
    let ended = LeaseAnswer { calls: 1, until_ms: T0 + LEASE_MS, penalty_until_ms: Some(T0 - 1), retry_at_ms: None };
    assert_eq!(l.take_lease(&ended, T0), Admit::Go);
}

#[test]
fn refusals_say_whose_limit_and_when() {
    let e = refusal_error(Operation::GetBalance, Refusal { until_ms: T0 + 4_500, why: Why::Budget }, 10, T0);
    assert_eq!((e.status, e.code, e.retry_after_secs), (429, crate::errors::ErrorCode::RateLimited, Some(5)));
    assert_eq!(e.message, "plumgate keeps getBalance under Xoxoday's limit of 10 calls a minute, and this minute's calls are spent; retry after 5 s");
    let e = refusal_error(Operation::GetVouchers, Refusal { until_ms: T0 + 60_000, why: Why::Penalty }, 50, T0);
    assert_eq!(e, crate::errors::ApiError::rate_limited("getVouchers", 60));
}

/// The instant a penalty ends it is over, for the limiter's lending and
/// for its strikes alike: a 429 at that instant is a new penalty, a strike
/// more, not the old one reported again.
#[test]
fn a_penalty_is_over_at_its_end_instant() {
    let first = penalty_until(None, Unstated, T0);
    let at_end = penalty_until(Some(first), Unstated, first.until_ms);
    assert_eq!((at_end.strikes, at_end.until_ms), (2, first.until_ms + 120_000), "escalated, as a millisecond later");
    let mut s = LimiterState::default();
    penalise(&mut s, "getBalance", Unstated, T0);
    assert_eq!(lease(&mut s, "getBalance", 10, 1, T0 + 60_000).calls, 1, "lent at that instant (the probe)");
}

/// A daily cap met again a day or more after it was first met is a new
/// day's cap, counted from now; a millisecond less, it may be the same
/// one (the rolling window's bound, a day and a minute after it was met).
#[test]
fn a_daily_cap_a_whole_day_later_is_a_new_one() {
    let day = |h: i64, m: i64| T0 - 10 * H + h * H + m * 60_000;
    let first = penalty_until(None, Daily, day(10, 0));
    let a_day_on = penalty_until(Some(first), Daily, day(34, 0));
    assert_eq!((a_day_on.until_ms, a_day_on.daily_since_ms), (day(24 + 18, 30), Some(day(34, 0))));
    let just_before = penalty_until(Some(first), Daily, day(34, 0) - 1);
    assert_eq!((just_before.until_ms, just_before.daily_since_ms), (day(34, 1), Some(day(10, 0))));
}

/// The probe's edges: a penalty stored without a probe time that ended
/// [`STRIKE_RESET_MS`] ago or more is not probed; a second ask in the
/// probe's own millisecond is held; and a stated penalty shorter than
/// [`PROBE_HOLD_MS`] lends as usual at its end, held by nothing.
#[test]
fn the_probe_holds_from_its_own_instant_and_only_after_a_guess() {
    let old = LimiterState {
        ops: vec![OpState { op: "placeOrder".into(), grants: vec![], penalty: Some(Penalty { until_ms: T0, strikes: 1, daily_since_ms: None, first_lent_ms: None }) }],
    };
    assert_eq!(lease(&mut old.clone(), "placeOrder", 50, 5, T0 + STRIKE_RESET_MS).calls, 5, "ended long enough ago: over");
    let mut s = LimiterState::default();
    penalise(&mut s, "getVouchers", Unstated, T0);
    let end = T0 + 60_000;
    assert_eq!(lease(&mut s, "getVouchers", 50, 5, end).calls, 1);
    let same_ms = lease(&mut s, "getVouchers", 50, 5, end);
    assert_eq!((same_ms.calls, same_ms.penalty_until_ms), (0, Some(end + PROBE_HOLD_MS)), "another isolate in the same millisecond: held");
    let mut s = LimiterState::default();
    penalise(&mut s, "getVouchers", Stated(3), T0);
    assert_eq!(lease(&mut s, "getVouchers", 50, 5, T0 + 3_000).calls, 5, "a stated end, even within PROBE_HOLD_MS of its report");
    assert_eq!(lease(&mut s, "getVouchers", 50, 5, T0 + 3_001).calls, 5);
}

/// What an isolate does with a lease answer at the edges: a penalty that
/// ends at this instant refuses nothing; a spent budget's wait, or a
/// penalty met here that has ended, does not refuse calls another answer
/// lent; with none lent, the wait is at least a millisecond (a second when
/// the limiter names no time), so a request in the same millisecond is
/// refused without asking again.
#[test]
fn an_isolate_takes_a_lease_answer_at_its_edges() {
    let lent = |calls| LeaseAnswer { calls, until_ms: T0 + LEASE_MS, penalty_until_ms: None, retry_at_ms: None };
    let mut l = Local::default();
    let ends_now = LeaseAnswer { penalty_until_ms: Some(T0), ..lent(1) };
    assert_eq!(l.take_lease(&ends_now, T0), Admit::Go, "a penalty ending now is over");
    // Two requests asked together: the first heard "spent", the second
    // was lent calls (one freed up): they go.
    let mut l = Local::default();
    let spent = LeaseAnswer { calls: 0, until_ms: T0, penalty_until_ms: None, retry_at_ms: Some(T0 + 7_000) };
    assert_eq!(l.take_lease(&spent, T0), Admit::Refuse(Refusal { until_ms: T0 + 7_000, why: Why::Budget }));
    assert_eq!(l.take_lease(&lent(3), T0 + 5), Admit::Go, "a budget wait does not refuse lent calls");
    assert_eq!(l.admit(T0 + 6), Admit::Go);
    // A penalty this isolate met, ended by the time the answer came.
    let mut l = Local::default();
    assert_eq!(l.admit(T0), Admit::Ask { want: 1 });
    l.block(T0 + 100, Why::Penalty);
    assert_eq!(l.take_lease(&lent(3), T0 + 200), Admit::Go, "an ended penalty refuses nothing");
    // The limiter's time for a freed call already past (its clock behind
    // this isolate's): refused until the next millisecond, without asking.
    let mut l = Local::default();
    let past = LeaseAnswer { retry_at_ms: Some(T0 - 5), ..spent };
    let next_ms = Refusal { until_ms: T0 + 1, why: Why::Budget };
    assert_eq!(l.take_lease(&past, T0), Admit::Refuse(next_ms));
    assert_eq!(l.admit(T0), Admit::Refuse(next_ms));
    assert_eq!(l.admit(T0 + 1), Admit::Ask { want: 1 });
    // None lent and no time named (a penalty answer that had ended here):
    // a second's wait.
    let mut l = Local::default();
    let no_time = LeaseAnswer { calls: 0, until_ms: T0, penalty_until_ms: Some(T0 - 1), retry_at_ms: None };
    assert_eq!(l.take_lease(&no_time, T0), Admit::Refuse(Refusal { until_ms: T0 + 1_000, why: Why::Budget }));
}

/// A penalty met during a spent budget's wait is refused as the penalty,
/// until its own end: the budget's later wait does not stand in for it.
#[test]
fn a_penalty_during_a_budget_wait_refuses_as_itself() {
    let mut l = Local::default();
    let spent = LeaseAnswer { calls: 0, until_ms: T0, penalty_until_ms: None, retry_at_ms: Some(T0 + 90_000) };
    assert_eq!(l.take_lease(&spent, T0), Admit::Refuse(Refusal { until_ms: T0 + 90_000, why: Why::Budget }));
    l.block(T0 + 30_000, Why::Penalty);
    assert_eq!(l.admit(T0 + 10), Admit::Refuse(Refusal { until_ms: T0 + 30_000, why: Why::Penalty }));
}
