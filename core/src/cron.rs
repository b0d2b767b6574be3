//! Cron expressions for backup schedules, as CockroachDB reads them (it uses the Go package
//! `gorhill/cronexpr`): five fields (`minute hour day-of-month month day-of-week`), six (a year
//! field appended) or seven (a seconds field first, which must be `0`: schedules run at minute
//! granularity); `*`, `?`, lists, ranges and steps, month and weekday names (weekday 7 is Sunday
//! too); `L` (last day of the month), `LW` (last weekday of the month) and `15W` (the weekday
//! nearest the 15th, within the month) in the day of month; `5L` (the last Friday) and `5#3`
//! (the third Friday) in the day of week; and the shorthands `@minutely`, `@hourly`, `@daily`
//! (`@midnight`), `@weekly`, `@monthly`, `@yearly` (`@annually`). Times are UTC; no IO, no clock:
//! [`CronExpr::next_after`] takes the time as a value.
//!
//! When both day-of-month and day-of-week are restricted (not `*` or `?`), a day matches if
//! either does, as in Vixie cron and cronexpr.
//!
//! Why not a crate: the maintained Rust cron crates read other dialects — `cron` wants a seconds
//! field first (six or seven fields), `croner` reads a sixth field as seconds where cronexpr
//! reads a year — so a CockroachDB schedule such as `0 0 * * * 2027` would silently mean
//! something else. The dialect is small enough to keep here, tested against cronexpr's rules.

use crate::error::{Error, Result};
use crate::timestamp::{civil_from_days, days_from_civil};

const NANOS_PER_MINUTE: u64 = 60 * 1_000_000_000;
/// How far ahead [`CronExpr::next_after`] looks: enough for `0 0 29 2 *` across a century's gaps.
const SEARCH_DAYS: i64 = 366 * 9;
/// The years a year field can name (cronexpr's range).
const YEARS: (u32, u32) = (1970, 2099);

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    text: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Years since 1970 (bit 0 = 1970); all bits when the field is absent or `*`.
    years: u128,
    /// `L` in the day of month.
    last_day: bool,
    /// `LW` in the day of month.
    last_workday: bool,
    /// Days `N` of `NW` in the day of month (bit N).
    workdays: u64,
    /// Weekdays `D` of `DL` in the day of week (bit D).
    last_weekdays: u64,
    /// `D#N` in the day of week: bit `D * 5 + N - 1`.
    nth_weekdays: u64,
    /// Day-of-month was `*` (or `?`).
    any_day: bool,
    /// Day-of-week was `*` (or `?`).
    any_weekday: bool,
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl CronExpr {
    /// Parses `text`: five, six or seven fields, or an `@` shorthand (see the module docs).
    pub fn parse(text: &str) -> Result<CronExpr> {
        let trimmed = text.trim();
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *".to_string(),
            "@monthly" => "0 0 1 * *".to_string(),
            "@weekly" => "0 0 * * 0".to_string(),
            "@daily" | "@midnight" => "0 0 * * *".to_string(),
            "@hourly" => "0 * * * *".to_string(),
            "@minutely" => "* * * * *".to_string(),
            s if s.starts_with('@') => return Err(bad(text, format!("unknown shorthand {trimmed}"))),
            s => s.to_string(),
        };
        let mut fields: Vec<&str> = expanded.split_whitespace().collect();
        match fields.len() {
            5 | 6 => {}
            7 if fields[0] == "0" => {
                fields.remove(0);
            }
            7 => {
                return Err(bad(
                    text,
                    format!(
                        "seconds field '{}': schedules run at minute granularity, so the seconds field must be 0",
                        fields[0]
                    ),
                ))
            }
            n => {
                return Err(bad(
                    text,
                    format!(
                    "expected 5 fields (minute hour day month weekday), 6 (and a year) or 7 (seconds first), found {n}"
                ),
                ))
            }
        }
        let field = |i: usize, name: &str, lo: u32, hi: u32, names: &[&str]| {
            parse_field(fields[i], lo, hi, names)
                .map(|bits| bits as u64)
                .map_err(|m| bad(text, format!("{name} field '{}': {m}", fields[i])))
        };
        let star = |s: &str| s == "*" || s == "?";
        let mut expr = CronExpr {
            text: trimmed.to_string(),
            minutes: field(0, "minute", 0, 59, &[])?,
            hours: field(1, "hour", 0, 23, &[])?,
            days: 0,
            months: field(3, "month", 1, 12, &MONTHS)?,
            weekdays: 0,
            years: u128::MAX,
            last_day: false,
            last_workday: false,
            workdays: 0,
            last_weekdays: 0,
            nth_weekdays: 0,
            any_day: star(fields[2]),
            any_weekday: star(fields[4]),
        };
        if let Some(years) = fields.get(5) {
            let bits = parse_field(years, YEARS.0, YEARS.1, &[])
                .map_err(|m| bad(text, format!("year field '{years}': {m}")))?;
            expr.years = bits;
        }
        expr.parse_days(fields[2]).map_err(|m| bad(text, format!("day-of-month field '{}': {m}", fields[2])))?;
        expr.parse_weekdays(fields[4]).map_err(|m| bad(text, format!("day-of-week field '{}': {m}", fields[4])))?;
        Ok(expr)
    }

    /// The day of month: plain values, `L`, `LW` and `NW`.
    fn parse_days(&mut self, field: &str) -> std::result::Result<(), String> {
        for part in field.split(',') {
            match part {
                "l" => self.last_day = true,
                "lw" => self.last_workday = true,
                _ => match part.strip_suffix('w') {
                    Some(day) => self.workdays |= 1 << parse_value(day, 1, 31, &[])?,
                    None => self.days |= parse_field(part, 1, 31, &[])? as u64,
                },
            }
        }
        Ok(())
    }

    /// The day of week: plain values, `DL` and `D#N`.
    fn parse_weekdays(&mut self, field: &str) -> std::result::Result<(), String> {
        for part in field.split(',') {
            if let Some((day, nth)) = part.split_once('#') {
                let n = parse_value(nth, 1, 5, &[])?;
                self.nth_weekdays |= 1 << (parse_value(day, 0, 7, &WEEKDAYS)? % 7 * 5 + n - 1);
            } else if let Some(day) = part.strip_suffix('l').filter(|d| !d.is_empty()) {
                self.last_weekdays |= 1 << (parse_value(day, 0, 7, &WEEKDAYS)? % 7);
            } else {
                self.weekdays |= parse_field(part, 0, 7, &WEEKDAYS)? as u64;
            }
        }
        if self.weekdays & (1 << 7) != 0 {
            self.weekdays = (self.weekdays & !(1 << 7)) | 1; // 7 is Sunday too
        }
        Ok(())
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn day_matches(&self, year: i64, month: u32, day: u32, weekday: u32) -> bool {
        let in_years =
            u32::try_from(year - i64::from(YEARS.0)).ok().is_some_and(|y| y < 128 && self.years & (1 << y) != 0);
        if !in_years || self.months & (1 << month) == 0 {
            return false;
        }
        let last = last_day_of(year, month);
        let workday_near = |target: u32| {
            // The weekday nearest `target` without leaving the month (cronexpr's rule).
            match (weekday_of(year, month, target), target) {
                (6, 1) => 3,
                (6, t) => t - 1,
                (0, t) if t == last => t - 2,
                (0, t) => t + 1,
                (_, t) => t,
            }
        };
        let dom = self.days & (1 << day) != 0
            || (self.last_day && day == last)
            || (self.last_workday && workday_near(last) == day)
            || (1..=last).any(|n| self.workdays & (1 << n) != 0 && workday_near(n) == day);
        let dow = self.weekdays & (1 << weekday) != 0
            || (self.last_weekdays & (1 << weekday) != 0 && day + 7 > last)
            || self.nth_weekdays & (1 << (weekday * 5 + (day - 1) / 7)) != 0;
        match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (false, true) => dom,
            (true, false) => dow,
            (false, false) => dom || dow,
        }
    }

    /// The first matching minute strictly after `wall` (nanoseconds since the epoch, UTC), or
    /// `None` if the expression never matches (e.g. `0 0 31 2 *`).
    pub fn next_after(&self, wall: u64) -> Option<u64> {
        let start = wall / NANOS_PER_MINUTE + 1;
        let first_day = (start / 1440) as i64;
        let mut first_minute = (start % 1440) as u32;
        for day in first_day..first_day + SEARCH_DAYS {
            let (y, m, d) = civil_from_days(day);
            let weekday = ((day % 7 + 7 + 4) % 7) as u32;
            if self.day_matches(y, m, d, weekday) {
                for minute_of_day in first_minute..1440 {
                    let (h, mi) = (minute_of_day / 60, minute_of_day % 60);
                    if self.hours & (1 << h) != 0 && self.minutes & (1 << mi) != 0 {
                        return Some((day as u64 * 1440 + minute_of_day as u64) * NANOS_PER_MINUTE);
                    }
                }
            }
            first_minute = 0;
        }
        None
    }

    /// The interval between the next two runs after `wall`: how CockroachDB measures a
    /// recurrence's frequency when it picks a full-backup cadence.
    pub fn frequency(&self, wall: u64) -> Option<u64> {
        let a = self.next_after(wall)?;
        Some(self.next_after(a)? - a)
    }
}

/// The last day of a month.
fn last_day_of(year: i64, month: u32) -> u32 {
    let next = if month == 12 { days_from_civil(year + 1, 1, 1) } else { days_from_civil(year, month + 1, 1) };
    (next - days_from_civil(year, month, 1)) as u32
}

/// The weekday of a date, 0 = Sunday.
fn weekday_of(year: i64, month: u32, day: u32) -> u32 {
    ((days_from_civil(year, month, day) % 7 + 7 + 4) % 7) as u32
}

fn bad(text: &str, message: impl std::fmt::Display) -> Error {
    Error::invalid("schedule expression", format!("'{text}': {message}"))
}

fn parse_value(s: &str, lo: u32, hi: u32, names: &[&str]) -> std::result::Result<u32, String> {
    if let Some(i) = names.iter().position(|n| *n == s) {
        return Ok(i as u32 + lo);
    }
    let v: u32 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v < lo || v > hi {
        return Err(format!("{v} is out of range {lo}-{hi}"));
    }
    Ok(v)
}

/// A field as a bit set of its allowed values: bit `v` for value `v`, or bit `v - lo` for fields
/// whose values do not fit (years).
fn parse_field(field: &str, lo: u32, hi: u32, names: &[&str]) -> std::result::Result<u128, String> {
    let mut bits = 0u128;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| format!("step '{s}' is not a number"))?;
                if step == 0 {
                    return Err("step must be positive".into());
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (from, to) = if range == "*" || range == "?" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (parse_value(a, lo, hi, names)?, parse_value(b, lo, hi, names)?)
        } else {
            let v = parse_value(range, lo, hi, names)?;
            // `5/15` means 5, 20, 35, 50 (from 5 to the end, stepping).
            (v, if part.contains('/') { hi } else { v })
        };
        if from > to {
            return Err(format!("range {from}-{to} is empty"));
        }
        let mut v = from;
        while v <= to {
            bits |= 1 << if hi < 128 { v } else { v - lo };
            v += step;
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::Civil;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn at(y: i64, mo: u32, d: u32, h: u32, mi: u32) -> u64 {
        Civil { year: y, month: mo, day: d, hour: h, minute: mi, second: 0, nanos: 0 }.to_nanos().unwrap()
    }

    fn next(expr: &str, from: u64) -> u64 {
        CronExpr::parse(expr).unwrap().next_after(from).unwrap()
    }

    #[test]
    fn shorthands() {
        // 2026-01-01 is a Thursday.
        let t = at(2026, 1, 1, 10, 30);
        assert_eq!(next("@hourly", t), at(2026, 1, 1, 11, 0));
        assert_eq!(next("@daily", t), at(2026, 1, 2, 0, 0));
        assert_eq!(next("@weekly", t), at(2026, 1, 4, 0, 0));
        assert_eq!(next("@monthly", t), at(2026, 2, 1, 0, 0));
        assert_eq!(next("@yearly", t), at(2027, 1, 1, 0, 0));
        // Strictly after: a time that matches gives the following one.
        assert_eq!(next("@daily", at(2026, 1, 2, 0, 0)), at(2026, 1, 3, 0, 0));
        assert_eq!(next("@daily", at(2026, 1, 2, 0, 0) + 1), at(2026, 1, 3, 0, 0));
    }

    #[test]
    fn lists_ranges_steps_and_names() {
        let t = at(2026, 1, 1, 10, 31);
        assert_eq!(next("*/15 * * * *", t), at(2026, 1, 1, 10, 45));
        assert_eq!(next("5/20 * * * *", t), at(2026, 1, 1, 10, 45));
        assert_eq!(next("0 9-17/4 * * *", t), at(2026, 1, 1, 13, 0));
        assert_eq!(next("0,30 22 * * *", t), at(2026, 1, 1, 22, 0));
        assert_eq!(next("0 3 * * mon-fri", at(2026, 1, 2, 4, 0)), at(2026, 1, 5, 3, 0));
        assert_eq!(next("0 0 1 mar *", t), at(2026, 3, 1, 0, 0));
        assert_eq!(next("0 0 * * 7", t), at(2026, 1, 4, 0, 0));
        // Day-of-month OR day-of-week when both are restricted.
        assert_eq!(next("0 0 15 * fri", t), at(2026, 1, 2, 0, 0));
        assert_eq!(next("0 0 29 2 *", t), at(2028, 2, 29, 0, 0));
        assert_eq!(CronExpr::parse("0 0 31 2 *").unwrap().next_after(t), None);
    }

    #[test]
    fn frequencies() {
        let t = at(2026, 1, 1, 10, 31);
        let f = |e: &str| CronExpr::parse(e).unwrap().frequency(t).unwrap() / NANOS_PER_MINUTE;
        assert_eq!(f("@hourly"), 60);
        assert_eq!(f("*/10 * * * *"), 10);
        assert_eq!(f("@daily"), 1440);
        assert_eq!(f("@weekly"), 7 * 1440);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = |s: &str| CronExpr::parse(s).unwrap_err().to_string();
        assert_eq!(
            e("* * *"),
            "invalid schedule expression: '* * *': expected 5 fields (minute hour day month weekday), 6 (and a year) \
             or 7 (seconds first), found 3"
        );
        assert_eq!(
            e("60 * * * *"),
            "invalid schedule expression: '60 * * * *': minute field '60': 60 is out of range 0-59"
        );
        assert_eq!(e("@often"), "invalid schedule expression: '@often': unknown shorthand @often");
        assert!(CronExpr::parse("*/0 * * * *").is_err());
        assert!(CronExpr::parse("5-1 * * * *").is_err());
        assert!(CronExpr::parse("* * * foo *").is_err());
    }

    /// The forms CockroachDB's cron parser (cronexpr) accepts beyond the five plain fields.
    #[test]
    fn cockroachdb_forms() {
        let t = at(2026, 1, 1, 10, 31); // a Thursday
                                        // L: the last day of the month; LW: its last weekday (2026-01-31 is a Saturday).
        assert_eq!(next("0 0 L * *", t), at(2026, 1, 31, 0, 0));
        assert_eq!(next("0 0 L 2 *", t), at(2026, 2, 28, 0, 0));
        assert_eq!(next("0 0 LW * *", t), at(2026, 1, 30, 0, 0));
        // NW: the weekday nearest day N, within the month (2026-02-01 is a Sunday, 2026-03-01 too;
        // 2026-08-01 a Saturday: its nearest weekday in August is Monday the 3rd).
        assert_eq!(next("0 0 1W 2 *", t), at(2026, 2, 2, 0, 0));
        assert_eq!(next("0 0 1W 8 *", t), at(2026, 8, 3, 0, 0));
        assert_eq!(next("0 0 15W * *", t), at(2026, 1, 15, 0, 0));
        // DL: the last such weekday of the month; D#N: the Nth.
        assert_eq!(next("0 0 * * 5L", t), at(2026, 1, 30, 0, 0));
        assert_eq!(next("0 0 * * fri#3", t), at(2026, 1, 16, 0, 0));
        assert_eq!(next("0 0 * * 1#1", t), at(2026, 1, 5, 0, 0));
        assert_eq!(CronExpr::parse("0 0 * * 1#5").unwrap().next_after(t), Some(at(2026, 3, 30, 0, 0)));
        // A year field (six fields), a zero seconds field (seven), @minutely.
        assert_eq!(next("0 0 1 1 * 2028", t), at(2028, 1, 1, 0, 0));
        assert_eq!(CronExpr::parse("0 0 1 1 * 2025").unwrap().next_after(t), None);
        assert_eq!(next("0 30 6 * * * 2026-2027", t), at(2026, 1, 2, 6, 30));
        assert_eq!(next("@minutely", t), at(2026, 1, 1, 10, 32));
        assert_eq!(next("0 0 ? * MON", t), at(2026, 1, 5, 0, 0));
        let e = |s: &str| CronExpr::parse(s).unwrap_err().to_string();
        assert!(e("30 0 0 * * * *").contains("seconds field must be 0"), "{}", e("30 0 0 * * * *"));
        assert!(e("0 0 * * 1#6").contains("out of range 1-5"));
        assert!(e("0 0 * * * 1969").contains("year field"));
        assert!(e("0 0 32W * *").contains("out of range"));
    }
}
