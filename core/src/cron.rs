//! Cron expressions for backup schedules: five fields (`minute hour day-of-month month
//! day-of-week`) with `*`, lists, ranges and steps, month and weekday names, and the shorthands
//! `@hourly`, `@daily`, `@weekly`, `@monthly` and `@yearly`. Times are UTC; no IO, no clock:
//! [`CronExpr::next_after`] takes the time as a value.
//!
//! As in Vixie cron (and robfig/cron, which CockroachDB uses), when both day-of-month and
//! day-of-week are restricted a day matches if either does.

use crate::error::{Error, Result};
use crate::timestamp::civil_from_days;

const NANOS_PER_MINUTE: u64 = 60 * 1_000_000_000;
/// How far ahead [`CronExpr::next_after`] looks: enough for `0 0 29 2 *` across a century's gaps.
const SEARCH_DAYS: i64 = 366 * 9;

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    text: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Day-of-month was `*` (or `?`).
    any_day: bool,
    /// Day-of-week was `*` (or `?`).
    any_weekday: bool,
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl CronExpr {
    /// Parses `text`: five fields or an `@` shorthand.
    pub fn parse(text: &str) -> Result<CronExpr> {
        let trimmed = text.trim();
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *".to_string(),
            "@monthly" => "0 0 1 * *".to_string(),
            "@weekly" => "0 0 * * 0".to_string(),
            "@daily" | "@midnight" => "0 0 * * *".to_string(),
            "@hourly" => "0 * * * *".to_string(),
            s if s.starts_with('@') => return Err(bad(text, format!("unknown shorthand {trimmed}"))),
            _ => trimmed.to_string(),
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(bad(
                text,
                format!("expected 5 fields (minute hour day month weekday), found {}", fields.len()),
            ));
        }
        let field = |i: usize, name: &str, lo: u32, hi: u32, names: &[&str]| {
            parse_field(fields[i], lo, hi, names).map_err(|m| bad(text, format!("{name} field '{}': {m}", fields[i])))
        };
        let mut weekdays = field(4, "day-of-week", 0, 7, &WEEKDAYS)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays & !(1 << 7)) | 1; // 7 is Sunday too
        }
        let star = |s: &str| s == "*" || s == "?";
        Ok(CronExpr {
            text: trimmed.to_string(),
            minutes: field(0, "minute", 0, 59, &[])?,
            hours: field(1, "hour", 0, 23, &[])?,
            days: field(2, "day-of-month", 1, 31, &[])?,
            months: field(3, "month", 1, 12, &MONTHS)?,
            weekdays,
            any_day: star(fields[2]),
            any_weekday: star(fields[4]),
        })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn day_matches(&self, year: i64, month: u32, day: u32, weekday: u32) -> bool {
        let _ = year;
        if self.months & (1 << month) == 0 {
            return false;
        }
        let dom = self.days & (1 << day) != 0;
        let dow = self.weekdays & (1 << weekday) != 0;
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

fn bad(text: &str, message: impl std::fmt::Display) -> Error {
    Error::invalid("schedule expression", format!("'{text}': {message}"))
}

fn parse_value(s: &str, lo: u32, hi: u32, names: &[&str]) -> std::result::Result<u32, String> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + lo);
    }
    let v: u32 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v < lo || v > hi {
        return Err(format!("{v} is out of range {lo}-{hi}"));
    }
    Ok(v)
}

/// A field as a bit set of its allowed values.
fn parse_field(field: &str, lo: u32, hi: u32, names: &[&str]) -> std::result::Result<u64, String> {
    let mut bits = 0u64;
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
            bits |= 1 << v;
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
            "invalid schedule expression: '* * *': expected 5 fields (minute hour day month weekday), found 3"
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
}
