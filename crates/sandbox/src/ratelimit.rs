//! Per-operation, per-minute rate limiting with a penalty box, and daily
//! caps. Owns the sliding 60 s window of accepted calls per op and the
//! penalty deadline, and the calls per op counted against a daily cap
//! (by default per day starting at midnight IST, the time zone Xoxoday
//! states its schedule in; or per UTC day, or over the last 24 h:
//! [`DailyWindow`]). Works on sandbox time (so moving the clock offset also
//! moves windows and days). Not persisted: a restart starts with empty
//! windows.

use crate::config::DailyWindow;
use std::collections::{HashMap, VecDeque};

const WINDOW_MS: i64 = 60_000;

#[derive(Debug, Default)]
struct OpWindow {
    hits: VecDeque<i64>,
    /// (penalty start, penalty end) in sandbox ms.
    penalty: Option<(i64, i64)>,
}

#[derive(Debug, Default)]
pub struct RateLimiter {
    ops: HashMap<&'static str, OpWindow>,
    /// Per op: (the day, calls that day), for calendar days.
    days: HashMap<&'static str, (i64, u32)>,
    /// Per op: when each call of the last 24 h was made, for the rolling
    /// window.
    rolling: HashMap<&'static str, VecDeque<i64>>,
}

/// The IST day an instant falls on (days since 1970-01-01 IST).
pub fn ist_day(now: i64) -> i64 {
    (now + crate::clock::IST_OFFSET_MS).div_euclid(crate::clock::DAY_MS)
}

impl RateLimiter {
    /// Records a call of `op`. `Err(remaining)` when the op is penalised:
    /// either it already was, or this call went over `limit` and started a
    /// penalty of `penalty_secs`. `remaining` is in whole seconds, ≥ 1.
    pub fn check(
        &mut self,
        op: &'static str,
        limit: u32,
        penalty_secs: u64,
        now: i64,
    ) -> Result<(), u64> {
        let w = self.ops.entry(op).or_default();
        if let Some((start, end)) = w.penalty {
            if start <= now && now < end {
                let remaining = end.saturating_sub(now).saturating_add(999) / 1000;
                return Err(u64::try_from(remaining).unwrap_or(1).max(1));
            }
            w.penalty = None;
        }
        w.hits.retain(|t| *t > now - WINDOW_MS && *t <= now);
        if w.hits.len() >= limit as usize {
            let penalty_ms = i64::try_from(penalty_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
            w.penalty = Some((now, now.saturating_add(penalty_ms)));
            w.hits.clear();
            return Err(penalty_secs.max(1));
        }
        w.hits.push_back(now);
        Ok(())
    }
}

impl RateLimiter {
    /// Counts a call of `op` against its daily `cap`; `false` when the
    /// day's calls are spent (a refused call is not counted).
    pub fn daily(&mut self, op: &'static str, cap: u32, window: DailyWindow, now: i64) -> bool {
        let day = match window {
            DailyWindow::IstDay => ist_day(now),
            DailyWindow::UtcDay => now.div_euclid(crate::clock::DAY_MS),
            DailyWindow::Rolling => {
                let calls = self.rolling.entry(op).or_default();
                calls.retain(|t| *t > now - crate::clock::DAY_MS && *t <= now);
                if calls.len() >= cap as usize {
                    return false;
                }
                calls.push_back(now);
                return true;
            }
        };
        let entry = self.days.entry(op).or_insert((day, 0));
        if entry.0 != day {
            *entry = (day, 0);
        }
        if entry.1 >= cap {
            return false;
        }
        entry.1 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_then_penalty_then_recovery() {
        let mut r = RateLimiter::default();
        for i in 0..3 {
            assert_eq!(r.check("getBalance", 3, 60, 1_000 + i), Ok(()));
        }
        // Fourth call in the window: penalised for the full penalty.
        assert_eq!(r.check("getBalance", 3, 60, 2_000), Err(60));
        // Other ops are not affected.
        assert_eq!(r.check("getVouchers", 3, 60, 2_000), Ok(()));
        // During the penalty the remaining seconds count down, never below 1.
        assert_eq!(r.check("getBalance", 3, 60, 31_000), Err(31));
        assert_eq!(r.check("getBalance", 3, 60, 61_999), Err(1));
        // After it, a fresh window.
        assert_eq!(r.check("getBalance", 3, 60, 62_000), Ok(()));
    }

    #[test]
    fn daily_caps_reset_at_ist_midnight() {
        // 2026-11-30 18:00 UTC = 23:30 IST.
        let t = 1_796_061_600_000;
        let mut r = RateLimiter::default();
        let ist = DailyWindow::IstDay;
        assert!(r.daily("getVouchers", 2, ist, t));
        assert!(r.daily("getVouchers", 2, ist, t + 1));
        assert!(!r.daily("getVouchers", 2, ist, t + 2));
        assert!(r.daily("getFilters", 2, ist, t), "per operation");
        // 18:29:59 UTC is still the same IST day; 18:30 UTC is the next.
        assert!(!r.daily("getVouchers", 2, ist, t + 29 * 60_000 + 59_999));
        assert!(r.daily("getVouchers", 2, ist, t + 30 * 60_000));
        assert_eq!(ist_day(t + 30 * 60_000), ist_day(t) + 1);
    }

    #[test]
    fn daily_caps_by_utc_day_or_over_the_last_24_hours() {
        // 2026-11-30 18:00 UTC.
        let t = 1_796_061_600_000;
        let (h, day) = (3_600_000, crate::clock::DAY_MS);
        let mut utc = RateLimiter::default();
        assert!(utc.daily("getVouchers", 2, DailyWindow::UtcDay, t));
        assert!(utc.daily("getVouchers", 2, DailyWindow::UtcDay, t + h));
        // 18:30 UTC (IST midnight) is no new UTC day; midnight UTC is.
        assert!(!utc.daily("getVouchers", 2, DailyWindow::UtcDay, t + h / 2));
        assert!(!utc.daily("getVouchers", 2, DailyWindow::UtcDay, t + 6 * h - 1));
        assert!(utc.daily("getVouchers", 2, DailyWindow::UtcDay, t + 6 * h));
        // Rolling: calls at 18:00 and 18:15; neither midnight frees a call,
        // the first call turning a day old does, and then only one.
        let mut roll = RateLimiter::default();
        let r = DailyWindow::Rolling;
        assert!(roll.daily("getVouchers", 2, r, t));
        assert!(roll.daily("getVouchers", 2, r, t + h / 4));
        assert!(!roll.daily("getVouchers", 2, r, t + h / 2), "IST midnight");
        assert!(!roll.daily("getVouchers", 2, r, t + 6 * h), "UTC midnight");
        assert!(!roll.daily("getVouchers", 2, r, t + day - 1));
        assert!(roll.daily("getVouchers", 2, r, t + day));
        assert!(!roll.daily("getVouchers", 2, r, t + day + 1), "the 18:15 call still counts");
        assert!(roll.daily("getVouchers", 2, r, t + h / 4 + day));
        assert!(roll.daily("getFilters", 2, r, t), "per operation");
    }

    #[test]
    fn sliding_window_forgets_old_calls() {
        let mut r = RateLimiter::default();
        assert_eq!(r.check("placeOrder", 2, 60, 0), Ok(()));
        assert_eq!(r.check("placeOrder", 2, 60, 30_000), Ok(()));
        assert_eq!(r.check("placeOrder", 2, 60, 60_001), Ok(()));
        assert_eq!(r.check("placeOrder", 2, 60, 60_002), Err(60));
        // The window is 60 s long: a call exactly 60 s old has left it.
        let mut r = RateLimiter::default();
        assert_eq!(r.check("getBalance", 1, 60, 0), Ok(()));
        assert_eq!(r.check("getBalance", 1, 60, 60_000), Ok(()));
        assert_eq!(r.check("getBalance", 1, 60, 119_999), Err(60));
    }

    /// The clock moved back: a daily cap counts the calls of the day it is
    /// now, and the rolling window drops the calls dated after now
    /// (README: "rate-limit windows drop the calls dated after it").
    #[test]
    fn daily_caps_follow_the_clock_back() {
        // 2026-11-30 18:00 UTC = 23:30 IST.
        let (t, day) = (1_796_061_600_000, crate::clock::DAY_MS);
        for window in [DailyWindow::IstDay, DailyWindow::UtcDay] {
            let mut r = RateLimiter::default();
            assert!(r.daily("getVouchers", 1, window, t + day), "{window:?}");
            assert!(!r.daily("getVouchers", 1, window, t + day + 1), "{window:?}");
            assert!(r.daily("getVouchers", 1, window, t), "{window:?}: the day before has its own count");
        }
        let mut r = RateLimiter::default();
        let roll = DailyWindow::Rolling;
        assert!(r.daily("getVouchers", 1, roll, t + day / 2));
        assert!(!r.daily("getVouchers", 1, roll, t + day / 2 + 1));
        assert!(r.daily("getVouchers", 1, roll, t), "a call dated after now is dropped");
    }
}
