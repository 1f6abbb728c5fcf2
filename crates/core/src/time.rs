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

use crate::jsontext::push_digits;

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
    let mut out = String::with_capacity(24);
    write_rfc3339(ms, &mut out);
    out
}

/// [`rfc3339`] appended to `out` (the request log line writes its time in
/// place). Digits written by hand: `format!` with seven fields was a tenth
/// of a microsecond per field on every request.
pub fn write_rfc3339(ms: i64, out: &mut String) {
    let ms = ms.max(0);
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    write_date(days, out);
    for (sep, n, width) in [('T', sod / 3600, 2), (':', (sod % 3600) / 60, 2), (':', sod % 60, 2), ('.', millis, 3)] {
        out.push(sep);
        push_digits(out, n.unsigned_abs(), width);
    }
    out.push('Z');
}

/// A UTC day ([`day_of`]) written `YYYY-MM-DD` into `out` (a year below 0
/// or above 9999 as `format!("{y:04}")` writes it).
fn write_date(day: i64, out: &mut String) {
    let (y, m, d) = civil_from_days(day);
    // `{y:04}` counts the sign in the width.
    let width = if y < 0 {
        out.push('-');
        3
    } else {
        4
    };
    push_digits(out, y.unsigned_abs(), width);
    out.push('-');
    push_digits(out, m.into(), 2);
    out.push('-');
    push_digits(out, d.into(), 2);
}

/// One UTC day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// One minute in milliseconds.
pub const MINUTE_MS: i64 = 60_000;

/// The UTC day of an instant, counted from 1970-01-01 (day 0).
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The minute of an instant, counted from the epoch.
pub fn minute_of(ms: i64) -> i64 {
    ms.div_euclid(MINUTE_MS)
}

/// A UTC day ([`day_of`]) written `YYYY-MM-DD`.
pub fn date_of_day(day: i64) -> String {
    let mut out = String::with_capacity(10);
    write_date(day, &mut out);
    out
}

/// Epoch milliseconds of an RFC 3339 date-time (`2026-11-25T17:09:42Z`,
/// `2026-11-25T17:09:42.123+05:30`; `T` or a space, `Z` or `z` or an
/// offset) or of a date alone (`2026-11-25`, its start in UTC). `None` for
/// anything else, a day that does not exist included.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if year == 0 || day < 1 || day > days_in_month {
        return None;
    }
    let date_ms = days_from_civil(year, month, day).checked_mul(DAY_MS)?;
    if b.len() == 10 {
        return Some(date_ms);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 20 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if b[i] == b'.' {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        // Milliseconds: the first three digits, the rest cut off.
        for k in 0..3 {
            millis = millis * 10 + if k < digits { i64::from(b[i + 1 + k] - b'0') } else { 0 };
        }
        i += 1 + digits;
    }
    let offset_ms = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == i + 6 && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = (oh * 60 + om) * MINUTE_MS;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let time_ms = ((hour * 60 + minute) * 60 + second) * 1000 + millis;
    date_ms.checked_add(time_ms)?.checked_sub(offset_ms)
}

/// Days since 1970-01-01 of a (proleptic Gregorian) date; the inverse of
/// [`civil_from_days`].
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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

    /// The hand-written digits against `format!` over instants from the
    /// epoch to past the year 10000, and days before the epoch.
    #[test]
    fn times_and_dates_are_written_as_format_writes_them() {
        let by_format = |ms: i64| {
            let ms = ms.max(0);
            let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            let sod = secs.rem_euclid(86_400);
            format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", sod / 3600, (sod % 3600) / 60, sod % 60)
        };
        let mut ms = -5_000i64;
        while ms < 300_000_000_000_000 {
            assert_eq!(rfc3339(ms), by_format(ms), "{ms}");
            ms = ms * 3 / 2 + 7_919_123;
        }
        for ms in [0, 999, 1_000, 59_999, 86_399_999, 1_795_626_582_123, 253_402_300_799_999, 253_402_300_800_000] {
            assert_eq!(rfc3339(ms), by_format(ms), "{ms}");
        }
        for day in [-800_000, -719_468, -719_162, -1, 0, 1, 20_000, 2_932_896, 2_932_897] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(date_of_day(day), format!("{y:04}-{m:02}-{d:02}"), "{day}");
        }
    }

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

    #[test]
    fn days_minutes_and_dates() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(DAY_MS), 1);
        assert_eq!(day_of(-1), -1);
        assert_eq!(minute_of(59_999), 0);
        assert_eq!(minute_of(60_000), 1);
        assert_eq!(minute_of(-1), -1, "floored, like day_of");
        assert_eq!(date_of_day(day_of(1_795_626_582_123)), "2026-11-25");
        assert_eq!(date_of_day(0), "1970-01-01");
        for day in [-800_000, -1, 0, 11_016, 20_417, 2_932_896] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), day, "{day}");
        }
    }

    #[test]
    fn rfc3339_parses_what_it_writes_and_what_people_write() {
        for ms in [0, 951_782_400_000, 1_718_000_000_000, 1_795_626_582_123] {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        }
        for (text, want) in [
            ("2026-11-25T17:09:42Z", Some(1_795_626_582_000)),
            ("2026-11-25t17:09:42z", Some(1_795_626_582_000)),
            ("2026-11-25 17:09:42Z", Some(1_795_626_582_000)),
            ("2026-11-25T17:09:42.1Z", Some(1_795_626_582_100)),
            ("2026-11-25T17:09:42.123456789Z", Some(1_795_626_582_123)),
            ("2026-11-25T22:39:42+05:30", Some(1_795_626_582_000)),
            ("2026-11-25T12:09:42-05:00", Some(1_795_626_582_000)),
            ("2026-11-25", Some(1_795_564_800_000)),
            ("2024-02-29", Some(1_709_164_800_000)),
            ("2026-02-29", None),
            ("2026-13-01", None),
            ("0000-01-01", None),
            ("2026-11-25T24:00:00Z", None),
            ("2026-11-25T17:09:42", None),
            ("2026-11-25T17:09:42.Z", None),
            ("2026-11-25T17:09:42+0530", None),
            ("2026-11-25T17:09Z", None),
            ("26-11-25", None),
            ("2026-1-25", None),
            ("", None),
            ("2026-11-25T17:09:42Zjunk", None),
            ("１２３４-11-25", None),
        ] {
            assert_eq!(parse_rfc3339(text), want, "{text}");
        }
    }

    /// Each separator, field range and offset form checked on its own: a
    /// date-time that breaks one rule is refused (bad input never becomes
    /// some other instant), the extremes each rule allows are read.
    #[test]
    fn rfc3339_refuses_each_malformed_part_and_reads_each_extreme() {
        for text in [
            "2026x11-25",
            "2026-11-25T17x09:42Z",
            "2026-11-25T17:09x42Z",
            "2026-11-25T17:60:00Z",
            "2026-11-25T17:09:61Z",
            "2026-11-25T17:09:42+05:30x",
            "2026-11-25T17:09:42+05x30",
            "2026-11-25T17:09:42+24:00",
            "2026-11-25T17:09:42+05:60",
        ] {
            assert_eq!(parse_rfc3339(text), None, "{text}");
        }
        assert_eq!(parse_rfc3339("2026-12-31T23:59:60Z"), parse_rfc3339("2027-01-01T00:00:00Z"), "a leap second");
        assert_eq!(parse_rfc3339("2026-11-25T17:59:42Z"), Some(1_795_626_582_000 + 50 * 60_000));
        assert_eq!(parse_rfc3339("2026-11-26T17:08:42+23:59"), Some(1_795_626_582_000));
    }
}
