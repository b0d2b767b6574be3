//! Hybrid logical clock timestamps and the `AS OF SYSTEM TIME` forms users type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A hybrid logical clock value: wall-clock nanoseconds since the Unix epoch and a logical counter
/// that orders events within the same nanosecond. Totally ordered, wall first.
///
/// Its text form is CockroachDB's decimal: `1700000000000000000.0000000001` (wall nanos, then the
/// logical counter as ten fractional digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Timestamp {
    /// Nanoseconds since 1970-01-01T00:00:00Z.
    pub wall: u64,
    /// Logical counter within one wall nanosecond.
    pub logical: u32,
}

impl Timestamp {
    /// The zero timestamp: before every write.
    pub const ZERO: Timestamp = Timestamp { wall: 0, logical: 0 };
    /// The largest timestamp.
    pub const MAX: Timestamp = Timestamp { wall: u64::MAX, logical: u32::MAX };

    /// A timestamp with the given wall time and logical counter.
    pub const fn new(wall: u64, logical: u32) -> Self {
        Timestamp { wall, logical }
    }

    /// A timestamp at a wall time in nanoseconds, logical zero.
    pub const fn from_nanos(wall: u64) -> Self {
        Timestamp { wall, logical: 0 }
    }

    /// Whether this is [`Timestamp::ZERO`].
    pub fn is_zero(&self) -> bool {
        *self == Timestamp::ZERO
    }

    /// The next timestamp: same wall time, logical + 1 (or the next nanosecond).
    pub fn next(&self) -> Timestamp {
        match self.logical.checked_add(1) {
            Some(logical) => Timestamp { wall: self.wall, logical },
            None => Timestamp { wall: self.wall + 1, logical: 0 },
        }
    }

    /// The previous timestamp, saturating at zero.
    pub fn prev(&self) -> Timestamp {
        if self.logical > 0 {
            Timestamp { wall: self.wall, logical: self.logical - 1 }
        } else if self.wall > 0 {
            Timestamp { wall: self.wall - 1, logical: u32::MAX }
        } else {
            Timestamp::ZERO
        }
    }

    /// Parses what `AS OF SYSTEM TIME` accepts, relative forms resolved against `now`:
    ///
    /// - a decimal `1700000000000000000.0000000001` or integer of wall nanoseconds;
    /// - a negative interval `'-10s'`, `'-1h30m'`, `'-250ms'` (units `h`, `m`, `s`, `ms`, `us`, `ns`);
    /// - an absolute time `'2026-11-23 10:00:00'`, optionally with fractional seconds, a `T`
    ///   separator, and an offset (`Z`, `+00:00`, `-08:00`, `+0530`; none means UTC); or a date
    ///   `'2026-11-23'` (midnight UTC). Parsed by `jiff`; time zone names (`[Europe/Paris]`)
    ///   are refused, since the core carries no time zone database.
    pub fn parse_as_of(text: &str, now: Timestamp) -> Result<Timestamp> {
        let s = text.trim();
        let err = |m: &str| Error::invalid("AS OF SYSTEM TIME", format!("{m}: '{text}'"));
        if s.is_empty() {
            return Err(err("empty timestamp"));
        }
        if let Some(rest) = s.strip_prefix('-') {
            let nanos = parse_interval(rest).ok_or_else(|| err("expected an interval like '-10s' or '-1h30m'"))?;
            return Ok(Timestamp::from_nanos(now.wall.saturating_sub(nanos)));
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') && s.bytes().filter(|b| *b == b'.').count() <= 1 {
            return s.parse::<Timestamp>().map_err(|_| err("expected a decimal timestamp"));
        }
        if s.contains('-') {
            return match parse_civil(s) {
                Ok(wall) => Ok(Timestamp::from_nanos(wall)),
                Err(e) => Err(err(&format!(
                    "expected 'YYYY-MM-DD[ HH:MM:SS[.ffffff]][+HH:MM]' (times without an offset are UTC), \
                     1970 to 2554 ({e})"
                ))),
            };
        }
        Err(err("expected a decimal timestamp, a negative interval like '-10s', or 'YYYY-MM-DD HH:MM:SS[+HH:MM]'"))
    }

    /// The calendar form `YYYY-MM-DD HH:MM:SS.ffffff` in UTC.
    pub fn to_civil_string(&self) -> String {
        let c = Civil::from_nanos(self.wall);
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
            c.year,
            c.month,
            c.day,
            c.hour,
            c.minute,
            c.second,
            c.nanos / 1000
        )
    }

    /// The wall time as CockroachDB prints a `TIMESTAMPTZ` in UTC, e.g.
    /// `2026-12-06 19:38:34.123456+00:00` (microseconds, trailing zeros dropped:
    /// `2026-12-06 19:38:00+00:00`). `AS OF SYSTEM TIME` accepts it back, but it is rounded
    /// down to the microsecond: the decimal form ([`fmt::Display`]) is the exact time.
    pub fn to_utc_string(&self) -> String {
        let civil = self.to_civil_string();
        let shown = civil.trim_end_matches('0').trim_end_matches('.');
        format!("{shown}+00:00")
    }

    /// The broken-down UTC calendar time of the wall clock.
    pub fn civil(&self) -> Civil {
        Civil::from_nanos(self.wall)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:010}", self.wall, self.logical)
    }
}

impl FromStr for Timestamp {
    type Err = Error;

    /// Parses the decimal form `WALL[.LOGICAL]` (logical given as up to ten fractional digits).
    fn from_str(s: &str) -> Result<Self> {
        let err = || Error::invalid("timestamp", format!("expected WALL_NANOS.LOGICAL, got '{s}'"));
        let (wall, logical) = match s.split_once('.') {
            Some((w, l)) => (w, l),
            None => (s, ""),
        };
        if wall.is_empty() || !wall.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let wall = wall.parse::<u64>().map_err(|_| err())?;
        let logical = if logical.is_empty() {
            0
        } else {
            if logical.len() > 10 || !logical.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            // Fractional digits: "1" means 1000000000 logical ticks? CockroachDB pads to ten
            // digits, so ".0000000001" is logical 1 and ".1" is logical 1000000000.
            let padded = format!("{logical:0<10}");
            padded.parse::<u64>().ok().and_then(|v| u32::try_from(v).ok()).ok_or_else(err)?
        };
        Ok(Timestamp { wall, logical })
    }
}

/// A UTC calendar time broken into fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year, e.g. 2026.
    pub year: i64,
    /// Month 1..=12.
    pub month: u32,
    /// Day of month 1..=31.
    pub day: u32,
    /// Hour 0..=23.
    pub hour: u32,
    /// Minute 0..=59.
    pub minute: u32,
    /// Second 0..=59.
    pub second: u32,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

impl Civil {
    /// Breaks wall nanoseconds since the epoch into calendar fields (proleptic Gregorian, UTC).
    pub fn from_nanos(wall: u64) -> Civil {
        let secs = wall / NANOS_PER_SEC;
        let nanos = (wall % NANOS_PER_SEC) as u32;
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
            nanos,
        }
    }

    /// Weekday, 0 = Sunday.
    pub fn weekday(&self) -> u32 {
        let days = days_from_civil(self.year, self.month, self.day);
        ((days % 7 + 7 + 4) % 7) as u32
    }

    /// Wall nanoseconds since the epoch, or `None` before 1970.
    pub fn to_nanos(&self) -> Option<u64> {
        let days = days_from_civil(self.year, self.month, self.day);
        if days < 0 {
            return None;
        }
        let secs = days as u64 * 86_400 + self.hour as u64 * 3600 + self.minute as u64 * 60 + self.second as u64;
        secs.checked_mul(NANOS_PER_SEC)?.checked_add(self.nanos as u64)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses a Go-style duration without its sign: `10s`, `1h30m`, `250ms`, `1.5h`.
pub fn parse_interval(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600e9,
            "m" => 60e9,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    if total.is_finite() && total >= 0.0 && total < u64::MAX as f64 {
        Some(total as u64)
    } else {
        None
    }
}

/// Wall nanoseconds of an absolute time as users type it (jiff's RFC 3339 / ISO 8601 parser):
/// a date, optionally a time (`T` or a space between, fractional seconds), optionally an offset
/// (`Z`, `+00:00`, `-08`, `+0530`); without one the time is UTC, as in CockroachDB's default
/// session. `Err` says what is wrong.
fn parse_civil(s: &str) -> std::result::Result<u64, String> {
    use jiff::fmt::temporal::{Pieces, PiecesOffset};
    let pieces = Pieces::parse(s).map_err(|e| e.to_string())?;
    let offset = match pieces.offset() {
        Some(PiecesOffset::Zulu) | None => jiff::tz::Offset::UTC,
        Some(offset) => offset.to_numeric_offset(),
    };
    if let Some(zone) = pieces.time_zone_annotation() {
        return Err(format!("time zone names ({zone:?}) are not supported: give a UTC offset such as +05:30 instead"));
    }
    let datetime = pieces.date().to_datetime(pieces.time().unwrap_or_default());
    let at = offset.to_timestamp(datetime).map_err(|e| e.to_string())?;
    u64::try_from(at.as_nanosecond()).map_err(|_| "before 1970".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const NOW: Timestamp = Timestamp::from_nanos(1_800_000_000_000_000_000);

    #[test]
    fn decimal_round_trip() {
        let ts: Timestamp = "1700000000000000000.0000000001".parse().unwrap();
        assert_eq!(ts, Timestamp::new(1_700_000_000_000_000_000, 1));
        assert_eq!(ts.to_string(), "1700000000000000000.0000000001");
        assert_eq!("5".parse::<Timestamp>().unwrap(), Timestamp::new(5, 0));
        assert!("1.2.3".parse::<Timestamp>().is_err());
        assert!("abc".parse::<Timestamp>().is_err());
        assert!("1.12345678901".parse::<Timestamp>().is_err());
    }

    #[test]
    fn relative_intervals() {
        assert_eq!(Timestamp::parse_as_of("-10s", NOW).unwrap().wall, NOW.wall - 10_000_000_000);
        assert_eq!(Timestamp::parse_as_of("-1h30m", NOW).unwrap().wall, NOW.wall - 5_400_000_000_000);
        assert_eq!(Timestamp::parse_as_of("-250ms", NOW).unwrap().wall, NOW.wall - 250_000_000);
        assert!(Timestamp::parse_as_of("-10x", NOW).is_err());
        assert!(Timestamp::parse_as_of("-", NOW).is_err());
    }

    #[test]
    fn absolute_times() {
        let ts = Timestamp::parse_as_of("2026-11-23 10:00:00", NOW).unwrap();
        assert_eq!(ts.wall, 1_795_428_000_000_000_000);
        assert_eq!(ts.to_civil_string(), "2026-11-23 10:00:00.000000");
        let frac = Timestamp::parse_as_of("2026-11-23T10:00:00.5Z", NOW).unwrap();
        assert_eq!(frac.wall, ts.wall + 500_000_000);
        assert_eq!(Timestamp::parse_as_of("2026-11-23", NOW).unwrap().wall, ts.wall - 36_000_000_000_000);
        assert!(Timestamp::parse_as_of("2026-02-30 00:00:00", NOW).is_err());
        assert!(Timestamp::parse_as_of("2026-11-23 25:00:00", NOW).is_err());
        let far = Timestamp::parse_as_of("2999-01-01 00:00:00", NOW).unwrap_err();
        assert!(far.to_string().contains("1970 to 2554"), "{far}");
        assert!(Timestamp::parse_as_of("1969-12-31 23:59:59", NOW).is_err());
    }

    #[test]
    fn offsets_as_users_type_them() {
        let utc = Timestamp::parse_as_of("2026-11-23 10:00:00", NOW).unwrap();
        for same in [
            "2026-11-23 10:00:00+00:00",
            "2026-11-23 10:00:00+00",
            "2026-11-23T10:00:00Z",
            "2026-11-23 10:00:00-00:00",
            "2026-11-23 15:30:00+05:30",
            "2026-11-23 15:30:00+0530",
            "2026-11-23 02:00:00-08:00",
            "2026-11-23 02:00:00-08",
            "2026-11-23 10:00",
        ] {
            assert_eq!(Timestamp::parse_as_of(same, NOW).unwrap(), utc, "{same}");
        }
        assert_eq!(
            Timestamp::parse_as_of("2026-11-23 10:00:00.123456789+00:00", NOW).unwrap().wall,
            utc.wall + 123_456_789
        );
        let zone = Timestamp::parse_as_of("2026-11-23T10:00:00+01:00[Europe/Paris]", NOW).unwrap_err();
        assert!(zone.to_string().contains("time zone names"), "{zone}");
        let bad = Timestamp::parse_as_of("2026-11-23 10:00:00 PST", NOW).unwrap_err();
        assert!(bad.to_string().contains("YYYY-MM-DD"), "{bad}");
    }

    #[test]
    fn utc_strings_as_cockroachdb_prints_them_and_parses_back() {
        let ts = Timestamp::parse_as_of("2026-11-23 10:00:00", NOW).unwrap();
        assert_eq!(ts.to_utc_string(), "2026-11-23 10:00:00+00:00");
        let t = Timestamp::new(ts.wall + 123_456_789, 3);
        assert_eq!(t.to_utc_string(), "2026-11-23 10:00:00.123456+00:00");
        assert_eq!(Timestamp::new(ts.wall + 500_000_000, 0).to_utc_string(), "2026-11-23 10:00:00.5+00:00");
        // Read back, it is the time rounded down to the microsecond.
        let back = Timestamp::parse_as_of(&t.to_utc_string(), NOW).unwrap();
        assert_eq!(back, Timestamp::new(ts.wall + 123_456_000, 0));
    }

    #[test]
    fn civil_round_trip() {
        for days in [-1000i64, 0, 1, 59, 365, 10_957, 20_000, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        // 2026-11-27 is a Friday.
        let c = Timestamp::parse_as_of("2026-11-27", NOW).unwrap().civil();
        assert_eq!(c.weekday(), 5);
    }

    #[test]
    fn next_and_prev() {
        let t = Timestamp::new(5, u32::MAX);
        assert_eq!(t.next(), Timestamp::new(6, 0));
        assert_eq!(t.next().prev(), t);
        assert_eq!(Timestamp::ZERO.prev(), Timestamp::ZERO);
    }
}
