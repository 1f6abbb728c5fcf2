//! Sandbox time. Owns the wall clock read and the date/time formats the
//! upstream API uses (`YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS`, UTC), written and
//! read with the `time` crate.
//!
//! All expiry decisions in the sandbox are made on "sandbox time", the wall
//! clock plus the admin-settable `clock_offset_secs`; that addition happens
//! in `Sandbox::now`, here we only read the real clock and format/parse.
//! Instants stay epoch milliseconds (`i64`) everywhere else: that is what the
//! state file stores and what the token tables compare.

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Date, UtcDateTime};

pub const DAY_MS: i64 = 86_400_000;

/// India is 5 h 30 min ahead of UTC (IST has no daylight saving time).
pub const IST_OFFSET_MS: i64 = (5 * 60 + 30) * 60_000;

const DATE: &[BorrowedFormatItem<'_>] = format_description!("[year]-[month]-[day]");
const DATETIME: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

/// Real wall clock in epoch milliseconds.
pub fn wall_ms() -> i64 {
    let ms = UtcDateTime::now().unix_timestamp_nanos() / 1_000_000;
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// The UTC instant of an epoch-ms time. Times `time` cannot represent (past
/// the years ±9999, far beyond the ±100-year clock offset) clamp to its ends.
pub fn instant(ms: i64) -> UtcDateTime {
    UtcDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(if ms < 0 {
        UtcDateTime::MIN
    } else {
        UtcDateTime::MAX
    })
}

/// The UTC calendar day an epoch-ms instant falls on.
pub fn date_of(ms: i64) -> Date {
    instant(ms).date()
}

/// `YYYY-MM-DD` (UTC).
pub fn fmt_date(ms: i64) -> String {
    // Formatting a full date with these components cannot fail.
    date_of(ms).format(DATE).unwrap_or_default()
}

/// `YYYY-MM-DD HH:MM:SS` (UTC), the style Xoxoday uses for order dates.
pub fn fmt_datetime(ms: i64) -> String {
    // Formatting a full date-time with these components cannot fail.
    instant(ms).format(DATETIME).unwrap_or_default()
}

/// Parses a strict `YYYY-MM-DD`; `None` for anything else (wrong shape,
/// month 13, February 30th, a signed year, trailing text, ...).
pub fn parse_date(s: &str) -> Option<Date> {
    // `[year]` also reads a leading `+`/`-`, which `YYYY-MM-DD` does not have.
    if !s.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Date::parse(s, DATE).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Month;

    fn date(y: i32, m: Month, d: u8) -> Date {
        Date::from_calendar_date(y, m, d).unwrap()
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_date(0), "1970-01-01");
        assert_eq!(fmt_datetime(0), "1970-01-01 00:00:00");
        assert_eq!(fmt_datetime(1_718_000_000_000), "2024-06-10 06:13:20");
        // Sub-second parts are dropped, not rounded.
        assert_eq!(fmt_datetime(1_718_000_000_999), "2024-06-10 06:13:20");
        assert_eq!(fmt_datetime(DAY_MS - 1), "1970-01-01 23:59:59");
        // Before the epoch: the day it falls on, not the day after.
        assert_eq!(fmt_datetime(-1), "1969-12-31 23:59:59");
        assert_eq!(fmt_date(-DAY_MS), "1969-12-31");
        assert_eq!(fmt_date(951_782_400_000), "2000-02-29");
        // Years below 1000 are zero-padded to four digits.
        assert_eq!(fmt_date(-30_610_224_000_000), "1000-01-01");
        assert_eq!(fmt_date(-30_610_224_000_001), "0999-12-31");
        // Unrepresentable instants clamp instead of failing.
        assert_eq!(fmt_date(i64::MAX), "9999-12-31");
        assert_eq!(fmt_date(i64::MIN), "-9999-01-01");
    }

    #[test]
    fn dates_of_instants() {
        assert_eq!(date_of(0), date(1970, Month::January, 1));
        assert_eq!(date_of(DAY_MS - 1), date(1970, Month::January, 1));
        assert_eq!(date_of(DAY_MS), date(1970, Month::January, 2));
        assert_eq!(date_of(-1), date(1969, Month::December, 31));
        assert_eq!(date_of(1_704_067_200_000), date(2024, Month::January, 1));
    }

    #[test]
    fn parse_is_strict() {
        assert_eq!(
            parse_date("2024-02-29"),
            Some(date(2024, Month::February, 29))
        );
        assert_eq!(
            parse_date("1970-01-01"),
            Some(date(1970, Month::January, 1))
        );
        assert_eq!(parse_date("0000-01-01"), Some(date(0, Month::January, 1)));
        for bad in [
            "2023-02-29",
            "2024-02-30",
            "2024-04-31",
            "2024-13-01",
            "2024-00-10",
            "2024-01-00",
            "2024-1-01",
            "2024-01-1",
            "24-01-01",
            "20x4-01-01",
            "２０２４-01-01",
            "+2024-01-01",
            "-2024-01-01",
            " 2024-01-01",
            "2024-01-01 ",
            "2024-01-01T00:00:00",
            "2024/01/01",
            "20240101",
            "",
        ] {
            assert_eq!(parse_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_day_round_trips() {
        // Format then parse, day by day across leap years and century rules
        // (1900 is not a leap year, 2000 is), and back from epoch ms.
        let mut ms = -2_208_988_800_000; // 1900-01-01
        let end = 4_102_444_800_000; // 2100-01-01
        let mut days = 0;
        while ms < end {
            let text = fmt_date(ms);
            let d = parse_date(&text).unwrap_or_else(|| panic!("{text} parses"));
            assert_eq!(d, date_of(ms), "{text}");
            assert_eq!(
                d.midnight().assume_utc().unix_timestamp() * 1000,
                ms,
                "{text}"
            );
            ms += DAY_MS;
            days += 1;
        }
        assert_eq!(days, 73_049);
        assert_eq!(parse_date("1900-02-29"), None);
        assert!(parse_date("2000-02-29").is_some());
    }
}
