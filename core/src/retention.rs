//! Retention policies in restic's vocabulary: which backups of a collection forget keeps
//! (`crate::manage::forget` decides with one). A policy comes from `strata forget --keep-…`, a
//! library call, or a schedule's options (`WITH SCHEDULE OPTIONS keep_last = 3, keep_daily = 7`,
//! checked by [`KeepRule::parse`] through `crate::schedule::validate_schedule_option`).

use crate::error::{Error, Result};

/// Which backups to keep. Each `keep_*` count keeps the newest backup of that many distinct
/// periods (hours, days, …) that have backups, as restic does; `keep_within` keeps every backup
/// at most that many nanoseconds older than `now`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// The newest `n` backups.
    pub keep_last: usize,
    /// The newest backup of each of the newest `n` hours with backups.
    pub keep_hourly: usize,
    /// … days (UTC).
    pub keep_daily: usize,
    /// … ISO weeks (Monday to Sunday, UTC).
    pub keep_weekly: usize,
    /// … months.
    pub keep_monthly: usize,
    /// … years.
    pub keep_yearly: usize,
    /// Every backup ending within this many nanoseconds before `now`.
    pub keep_within: Option<u64>,
}

impl RetentionPolicy {
    /// Whether the policy keeps nothing (refused: forgetting everything is never meant).
    pub fn is_empty(&self) -> bool {
        self.keep_last == 0
            && self.keep_hourly == 0
            && self.keep_daily == 0
            && self.keep_weekly == 0
            && self.keep_monthly == 0
            && self.keep_yearly == 0
            && self.keep_within.is_none()
    }

    /// The policy with `rule` set (a count of 0, or a `keep_within` of `None`, unsets it).
    pub fn with(mut self, rule: KeepRule) -> RetentionPolicy {
        match rule {
            KeepRule::Last(n) => self.keep_last = n,
            KeepRule::Hourly(n) => self.keep_hourly = n,
            KeepRule::Daily(n) => self.keep_daily = n,
            KeepRule::Weekly(n) => self.keep_weekly = n,
            KeepRule::Monthly(n) => self.keep_monthly = n,
            KeepRule::Yearly(n) => self.keep_yearly = n,
            KeepRule::Within(d) => self.keep_within = d,
        }
        self
    }

    /// The rules that are set, as schedule options in [`KEEP_OPTIONS`] order:
    /// `[("keep_last", "3"), ("keep_within", "36h")]`.
    pub fn options(&self) -> Vec<(&'static str, String)> {
        let counts =
            [self.keep_last, self.keep_hourly, self.keep_daily, self.keep_weekly, self.keep_monthly, self.keep_yearly];
        let mut out: Vec<(&'static str, String)> =
            KEEP_OPTIONS.iter().zip(counts).filter(|(_, n)| *n > 0).map(|(name, n)| (*name, n.to_string())).collect();
        if let Some(d) = self.keep_within {
            out.push(("keep_within", format_duration(d)));
        }
        out
    }
}

/// The options that set a rule of a [`RetentionPolicy`], as restic names them (`--keep-last` is
/// `keep_last`).
pub const KEEP_OPTIONS: [&str; 7] =
    ["keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within"];

/// One rule of a [`RetentionPolicy`], as an option sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepRule {
    /// `keep_last = n`.
    Last(usize),
    /// `keep_hourly = n`.
    Hourly(usize),
    /// `keep_daily = n`.
    Daily(usize),
    /// `keep_weekly = n`.
    Weekly(usize),
    /// `keep_monthly = n`.
    Monthly(usize),
    /// `keep_yearly = n`.
    Yearly(usize),
    /// `keep_within = '36h'` (nanoseconds; `'0s'` unsets it).
    Within(Option<u64>),
}

impl KeepRule {
    /// The rule the option `name = value` sets, checked; `Ok(None)` when `name` is not one of
    /// [`KEEP_OPTIONS`]. Counts are whole numbers from 0 (0 unsets the rule) to 2^32 - 1;
    /// `keep_within` is a duration ([`parse_keep_within`]).
    pub fn parse(name: &str, value: &str) -> Result<Option<KeepRule>> {
        let name = name.to_ascii_lowercase();
        let count = || -> Result<usize> {
            let v = value.trim();
            match v.parse::<u32>() {
                Ok(n) => Ok(n as usize),
                Err(_) => Err(Error::invalid(
                    &name,
                    format!("'{value}': expected how many backups to keep, a whole number from 0 to 4294967295"),
                )),
            }
        };
        Ok(Some(match name.as_str() {
            "keep_last" => KeepRule::Last(count()?),
            "keep_hourly" => KeepRule::Hourly(count()?),
            "keep_daily" => KeepRule::Daily(count()?),
            "keep_weekly" => KeepRule::Weekly(count()?),
            "keep_monthly" => KeepRule::Monthly(count()?),
            "keep_yearly" => KeepRule::Yearly(count()?),
            "keep_within" => {
                let d = parse_keep_within(value).map_err(|e| match e {
                    Error::InvalidArgument { message, .. } => Error::invalid("keep_within", message),
                    e => e,
                })?;
                KeepRule::Within((d > 0).then_some(d))
            }
            _ => return Ok(None),
        }))
    }
}

/// A `keep_within` duration — a whole number and a unit: `45s`, `90m`, `36h`, `7d`, `2w` (a bare
/// number is hours) — in nanoseconds.
pub fn parse_keep_within(s: &str) -> Result<u64> {
    let t = s.trim();
    let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let bad = |why: &str| Error::invalid("duration", format!("'{s}': {why}"));
    let n: u64 = n.parse().map_err(|_| bad("expected a duration like 36h, 7d or 90m"))?;
    let secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" | "" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad("the unit must be s, m, h, d or w")),
    };
    n.checked_mul(secs).and_then(|s| s.checked_mul(1_000_000_000)).ok_or_else(|| bad("too long"))
}

/// The shortest text [`parse_keep_within`] reads back as `nanos` (whole seconds).
fn format_duration(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    for (unit, size) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs > 0 && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn options_parse_print_and_read_back() {
        let mut p = RetentionPolicy::default();
        for (name, value) in [("keep_last", "3"), ("KEEP_DAILY", "7"), ("keep_within", "36h"), ("keep_weekly", "0")] {
            p = p.with(KeepRule::parse(name, value).unwrap().unwrap());
        }
        assert_eq!(
            p,
            RetentionPolicy { keep_last: 3, keep_daily: 7, keep_within: Some(36 * 3600 * 1_000_000_000), ..p }
        );
        assert_eq!(p.options(), [("keep_last", "3".into()), ("keep_daily", "7".into()), ("keep_within", "36h".into())]);
        let mut q = RetentionPolicy::default();
        for (name, value) in p.options() {
            q = q.with(KeepRule::parse(name, &value).unwrap().unwrap());
        }
        assert_eq!(q, p);
        assert_eq!(format_duration(14 * 86_400 * 1_000_000_000), "2w");
        assert_eq!(format_duration(90 * 1_000_000_000), "90s");
        assert_eq!(KeepRule::parse("keep_within", "0s").unwrap(), Some(KeepRule::Within(None)));
        assert_eq!(KeepRule::parse("first_run", "now").unwrap(), None);
    }

    #[test]
    fn bad_values_say_which_option_and_why() {
        let e = |n, v| KeepRule::parse(n, v).unwrap_err().to_string();
        assert_eq!(
            e("keep_last", "-1"),
            "invalid keep_last: '-1': expected how many backups to keep, a whole number from 0 to 4294967295"
        );
        assert!(e("keep_daily", "seven").contains("keep_daily: 'seven'"));
        assert_eq!(e("keep_within", "3y"), "invalid keep_within: '3y': the unit must be s, m, h, d or w");
        assert_eq!(e("keep_within", "soon"), "invalid keep_within: 'soon': expected a duration like 36h, 7d or 90m");
        assert!(e("keep_within", "99999999999999999w").contains("too long"));
    }
}
