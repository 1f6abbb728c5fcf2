//! Time formatting without a clock: epoch milliseconds in, RFC 3339 out.
//!
//! The shell reads the clock (`Date.now()`) and passes milliseconds around;
//! the core never reads time itself, so every rule is testable at any instant.

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
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_718_000_000_000), "2024-06-10T06:13:20.000Z");
        assert_eq!(rfc3339(1_795_626_582_123), "2026-11-25T17:09:42.123Z");
        assert_eq!(rfc3339(-5), "1970-01-01T00:00:00.000Z");
    }
}
