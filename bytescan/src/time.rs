//! The canonical stored timestamp.

use chrono::{DateTime, Utc};

/// A UTC instant as integers: seconds since the Unix epoch and nanoseconds within the second
/// (`0..1_000_000_000`, no leap seconds, when parsed). What the hot paths hold instead of a chrono
/// `DateTime`, so they do no calendar arithmetic; always in chrono's range when parsed by
/// [`parse_canonical_instant`] (years 1000..=9999).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    /// Seconds since 1970-01-01T00:00:00Z (negative before).
    pub secs: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

impl Instant {
    /// Microseconds since the epoch, truncated toward the past: `DateTime::timestamp_micros`
    /// of the same instant (the lake's `Timestamp(µs, "UTC")` value).
    #[inline]
    pub fn micros(self) -> i64 {
        self.secs * 1_000_000 + i64::from(self.nanos / 1_000)
    }

    /// Whole hours since the epoch (floor): the `(dt, hour)` partition as one integer.
    #[inline]
    pub fn epoch_hour(self) -> i64 {
        self.secs.div_euclid(3600)
    }

    /// The chrono value (`None` only outside chrono's range, never for a parsed instant).
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.secs, self.nanos)
    }

    /// The instant of a chrono value, nanoseconds as chrono holds them (a leap second's are
    /// 1,000,000,000 or more), so [`Instant::micros`] is its `timestamp_micros`.
    pub fn from_datetime(t: DateTime<Utc>) -> Instant {
        Instant { secs: t.timestamp(), nanos: t.timestamp_subsec_nanos() }
    }
}

/// Parses the canonical stored timestamp form `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z` (what the
/// `Event` serializer writes). `None` for anything else (the caller then uses chrono's parser,
/// which gives the same result on every string this accepts).
pub fn parse_canonical_utc(s: &str) -> Option<DateTime<Utc>> {
    parse_canonical_instant(s.as_bytes())?.to_datetime()
}

/// [`parse_canonical_utc`] as integers (no chrono): the same instants, the same refusals.
/// Accepts only ASCII, so an accepted text is valid UTF-8.
#[inline]
pub fn parse_canonical_instant(b: &[u8]) -> Option<Instant> {
    let head: &[u8; 19] = b.get(..19)?.try_into().ok()?;
    let separators = [head[4], head[7], head[10], head[13], head[16]];
    if b.len() < 20 || b.len() > 30 || separators != *b"--T::" {
        return None;
    }
    // The 14 digits of `YYYY-MM-DDTHH:MM:SS`, all checked at once (no early exit per digit).
    let d = |i: usize| head[i].wrapping_sub(b'0');
    let digits = [d(0), d(1), d(2), d(3), d(5), d(6), d(8), d(9), d(11), d(12), d(14), d(15), d(17), d(18)];
    if digits.iter().fold(0u8, |worst, &x| worst.max(x)) > 9 {
        return None;
    }
    let two = |i: usize| u32::from(digits[i]) * 10 + u32::from(digits[i + 1]);
    let year = two(0) * 100 + two(2);
    if year < 1000 {
        return None;
    }
    let (month, day) = (two(4), two(6));
    let (hour, minute, second) = (two(8), two(10), two(12));
    if second > 59 {
        return None;
    }
    let nanos = match &b[19..] {
        [b'Z'] => 0,
        [b'.', fraction @ .., b'Z'] if (1..=9).contains(&fraction.len()) => {
            let n =
                fraction.iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))?;
            n * 10u32.pow(9 - u32::try_from(fraction.len()).ok()?)
        }
        _ => return None,
    };
    // The same checks chrono's constructors make, then days since the epoch (Howard Hinnant's
    // days_from_civil) instead of chrono's calendar tables; the property tests compare with
    // chrono.
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > month_days || hour > 23 || minute > 59 {
        return None;
    }
    let (y, m, d) = (i64::from(year) - i64::from(month <= 2), i64::from(month), i64::from(day));
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    Some(Instant { secs, nanos })
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn canonical_timestamps_agree_with_chrono(
            y in 900u32..10_000, mo in 0u32..14, d in 0u32..33, h in 0u32..25, mi in 0u32..61, s in 0u32..61,
            frac in proptest::option::of("[0-9]{1,9}"),
        ) {
            let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{}Z", frac.map(|f| format!(".{f}")).unwrap_or_default());
            let chrono = text.parse::<DateTime<chrono::FixedOffset>>().ok().map(|t| t.with_timezone(&Utc));
            if let Some(i) = parse_canonical_instant(text.as_bytes()) {
                let t = chrono.unwrap();
                proptest::prop_assert_eq!(i.micros(), t.timestamp_micros(), "{}", text);
                proptest::prop_assert_eq!(i.epoch_hour(), t.timestamp().div_euclid(3600), "{}", text);
                proptest::prop_assert_eq!(i.to_datetime(), Some(t), "{}", text);
                proptest::prop_assert_eq!(Instant::from_datetime(t), i, "{}", text);
            }
            match parse_canonical_utc(&text) {
                Some(t) => proptest::prop_assert_eq!(Some(t), chrono, "{}", text),
                // Declined: years below 1000 (chrono's call) and leap seconds only.
                None => proptest::prop_assert!(chrono.is_none() || y < 1000 || s == 60, "{}", text),
            }
        }

        #[test]
        fn fast_timestamps_agree_with_chrono(
            y in 1000u32..3000, mo in 0u32..14, d in 0u32..33, h in 0u32..25, mi in 0u32..61, se in 0u32..61,
            frac in "(\\.[0-9]{0,10})?",
        ) {
            let t = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}{frac}Z");
            let chrono = t.parse::<DateTime<chrono::FixedOffset>>().ok().map(|t| t.with_timezone(&Utc));
            if let Some(fast) = parse_canonical_utc(&t) {
                proptest::prop_assert_eq!(Some(fast), chrono, "{}", t);
            }
        }

        /// Any one byte of a canonical timestamp replaced: whatever is still accepted is the
        /// instant chrono reads (a wrong byte in a digit or separator position is refused).
        #[test]
        fn a_mutated_timestamp_is_refused_or_read_as_chrono_reads_it(
            at in 0usize..27, byte in proptest::num::u8::ANY,
        ) {
            let mut bytes = b"2026-03-17T09:41:07.123456Z".to_vec();
            bytes[at] = byte;
            if let Some(i) = parse_canonical_instant(&bytes) {
                let text = std::str::from_utf8(&bytes).unwrap();
                let chrono = text.parse::<DateTime<chrono::FixedOffset>>().ok().map(|t| t.with_timezone(&Utc));
                proptest::prop_assert_eq!(Some(i.micros()), chrono.map(|t| t.timestamp_micros()), "{}", text);
                proptest::prop_assert!(bytes[at].is_ascii_digit() || byte == b"2026-03-17T09:41:07.123456Z"[at]);
            }
        }
    }

    #[test]
    fn canonical_timestamps() {
        let t = |s: &str| parse_canonical_utc(s).map(|t| t.to_rfc3339());
        assert_eq!(t("2024-05-01T12:00:00Z").as_deref(), Some("2024-05-01T12:00:00+00:00"));
        assert_eq!(t("2024-05-01T12:00:00.5Z").as_deref(), Some("2024-05-01T12:00:00.500+00:00"));
        assert_eq!(t("2024-05-01T12:00:00.123456789Z").as_deref(), Some("2024-05-01T12:00:00.123456789+00:00"));
        for other in [
            "2024-05-01T12:00:00+00:00",
            "2024-05-01t12:00:00Z",
            "2024-02-30T12:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:60Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00.1234567891Z",
            "0999-05-01T12:00:00Z",
            "2024-05-01 12:00:00Z",
            "+2024-05-01T12:00:00Z",
        ] {
            assert_eq!(t(other), None, "{other}");
        }
    }
}
