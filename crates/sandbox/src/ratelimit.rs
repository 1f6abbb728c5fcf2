//! Per-operation, per-minute rate limiting with a penalty box, and daily
//! caps. Owns the sliding 60 s window of accepted calls per op and the
//! penalty deadline, and the count of calls per op per day (days start at
//! midnight IST, the time zone Xoxoday states its schedule in). Works on
//! sandbox time (so moving the clock offset also moves windows and days).
//! Not persisted: a restart starts with empty windows.

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
    /// Per op: (the IST day, calls that day).
    days: HashMap<&'static str, (i64, u32)>,
}

/// India is 5 h 30 min ahead of UTC.
const IST_OFFSET_MS: i64 = (5 * 60 + 30) * 60_000;

/// The IST day an instant falls on (days since 1970-01-01 IST).
pub fn ist_day(now: i64) -> i64 {
    (now + IST_OFFSET_MS).div_euclid(crate::clock::DAY_MS)
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
    /// Counts a call of `op` against its daily `cap`; `false` when this
    /// IST day's calls are spent (a refused call is not counted).
    pub fn daily(&mut self, op: &'static str, cap: u32, now: i64) -> bool {
        let day = ist_day(now);
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
        assert!(r.daily("getVouchers", 2, t));
        assert!(r.daily("getVouchers", 2, t + 1));
        assert!(!r.daily("getVouchers", 2, t + 2));
        assert!(r.daily("getFilters", 2, t), "per operation");
        // 18:29:59 UTC is still the same IST day; 18:30 UTC is the next.
        assert!(!r.daily("getVouchers", 2, t + 29 * 60_000 + 59_999));
        assert!(r.daily("getVouchers", 2, t + 30 * 60_000));
        assert_eq!(ist_day(t + 30 * 60_000), ist_day(t) + 1);
    }

    #[test]
    fn sliding_window_forgets_old_calls() {
        let mut r = RateLimiter::default();
        assert_eq!(r.check("placeOrder", 2, 60, 0), Ok(()));
        assert_eq!(r.check("placeOrder", 2, 60, 30_000), Ok(()));
        assert_eq!(r.check("placeOrder", 2, 60, 60_001), Ok(()));
        assert_eq!(r.check("placeOrder", 2, 60, 60_002), Err(60));
    }
}
