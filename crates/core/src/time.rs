//! Time without a clock: the arithmetic on epoch milliseconds every rule
//! uses, and RFC 3339 formatting.
//!
//! The shell reads the clock (`Date.now()`) and passes milliseconds around;
//! the core never reads time itself, so every rule is testable at any instant.
//!
//! Expiry maths lives here once, saturating: a lifetime or penalty from
//! upstream (or a configured interval) can be any size, and an instant that
//! overflowed would wrap into the past (a token "expired" in 1970, a
//! penalty that never ends). Saturated, it is merely far in the future.

/// `secs` seconds in milliseconds (saturating).
pub fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000)
}

/// The instant `secs` seconds after `at_ms` (saturating).
pub fn add_secs(at_ms: i64, secs: u64) -> i64 {
    at_ms.saturating_add(secs_to_ms(secs))
}

/// Whole seconds from `now_ms` until `until_ms`, rounded up (what a
/// `Retry-After` says); 0 once it has passed.
pub fn secs_until(until_ms: i64, now_ms: i64) -> u64 {
    (until_ms.saturating_sub(now_ms).max(0) as u64).div_ceil(1000)
}

/// Format epoch milliseconds as RFC 3339 UTC with millisecond precision,
/// e.g. `2026-11-25T17:09:42.000Z`. Negative inputs clamp to the epoch.
pub fn rfc3339(ms: i64) -> String {
    let ms = ms.max(0);
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60
    )
}

/// Date (year, month, day) of a count of days since 1970-01-01, using the
/// proleptic Gregorian calendar (era-based conversion).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(secs_to_ms(3), 3_000);
        assert_eq!(secs_to_ms(u64::MAX), i64::MAX);
        assert_eq!(secs_to_ms(i64::MAX as u64), i64::MAX);
        assert_eq!(add_secs(1_000, 2), 3_000);
        assert_eq!(add_secs(i64::MAX - 5, 1), i64::MAX);
        assert_eq!(add_secs(1_795_626_582_000, u64::MAX), i64::MAX);
        assert_eq!(secs_until(1_000, 0), 1);
        assert_eq!(secs_until(1_001, 0), 2);
        assert_eq!(secs_until(1, 0), 1);
        assert_eq!(secs_until(0, 0), 0);
        assert_eq!(secs_until(0, 5), 0, "past: nothing left");
        assert_eq!(secs_until(i64::MAX, i64::MIN), (u64::MAX / 2).div_ceil(1000), "no overflow");
    }

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_718_000_000_000), "2024-06-10T06:13:20.000Z");
        assert_eq!(rfc3339(1_795_626_582_123), "2026-11-25T17:09:42.123Z");
        assert_eq!(rfc3339(-5), "1970-01-01T00:00:00.000Z");
    }
}
