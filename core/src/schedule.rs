//! Backup schedules as pure data and decisions: what `CREATE SCHEDULE … FOR BACKUP` creates, when
//! each schedule is due and what happens when a run starts, is skipped, succeeds or fails. No IO
//! and no clock: times are wall nanoseconds passed in. The executor (`exec/schedules.rs`) stores
//! schedules in the store's system span and runs the backups.
//!
//! ```text
//!   CREATE SCHEDULE ──plan_schedules──▶ [incremental (paused, waiting for the first full)], full
//!   host tick(now) ──▶ due? ──on_previous_running──▶ start | skip | wait
//!                      run finished ──▶ ok: unpause the paired incremental
//!                                       error: on_execution_failure = retry | reschedule | pause
//! ```

use serde::{Deserialize, Serialize};

use crate::cron::CronExpr;
use crate::error::{Error, Result};
use crate::retention::{KeepRule, RetentionPolicy};
use crate::sql::{BackupDestination, BackupStmt, CreateScheduleStmt, Recurrence, Subdir};
use crate::timestamp::Timestamp;

const HOUR: u64 = 3600 * 1_000_000_000;
/// With `on_execution_failure = 'retry'`, how long after a failure the run is tried again.
pub const RETRY_AFTER_NANOS: u64 = 60 * 1_000_000_000;
/// Status of an incremental schedule until its full schedule's first run succeeds (CockroachDB's text).
pub const WAITING_FOR_FULL: &str = "Waiting for initial backup to complete";

/// Whether a schedule's runs are full backups (`BACKUP … INTO`) or incrementals (`INTO LATEST IN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupKind {
    /// A new full backup in a dated subdirectory of the collection.
    Full,
    /// An incremental appended to the collection's latest full backup.
    Incremental,
}

/// `on_execution_failure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnFailure {
    /// `retry`: try again [`RETRY_AFTER_NANOS`] later.
    Retry,
    /// `reschedule` (the default): run again at the next scheduled time.
    #[default]
    Reschedule,
    /// `pause`: pause the schedule until `RESUME SCHEDULE`.
    Pause,
}

/// `on_previous_running`: what a due run does while the schedule's previous run is unfinished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnPreviousRunning {
    /// `start`: start anyway, the runs overlap.
    Start,
    /// `skip`: skip this run; the next one is at the next scheduled time.
    Skip,
    /// `wait` (the default): stay due and start as soon as the previous run finishes.
    #[default]
    Wait,
}

/// One backup schedule, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Schedule {
    /// Its id, unique in the store.
    pub id: u64,
    /// The label (shared by a full and incremental pair).
    pub label: String,
    /// What its runs are.
    pub kind: BackupKind,
    /// The cron expression; `None` for `RECURRING NEVER` (one run, then the schedule is dropped).
    pub cron: Option<String>,
    /// The statement each run executes: references to its secrets, never a secret (see
    /// `crate::secrets`).
    pub backup: BackupStmt,
    /// Secrets typed into the statement of a schedule created before strata stopped storing
    /// them, which its record no longer holds (as `the encryption passphrase`): its runs are
    /// refused, saying so, until it is created again with references.
    pub typed_secrets: Vec<String>,
    /// Paused (by `PAUSE SCHEDULE`, an `on_execution_failure = 'pause'` failure, or an
    /// incremental waiting for its first full).
    pub paused: bool,
    /// Why it is paused, or the last error.
    pub status_message: Option<String>,
    /// When it is next due (wall nanoseconds, UTC); `None` when it never runs again.
    pub next_run: Option<u64>,
    /// `on_execution_failure`.
    pub on_failure: OnFailure,
    /// `on_previous_running`.
    pub on_previous_running: OnPreviousRunning,
    /// `keep_last`, `keep_daily`, … (a strata extension): after each successful run, the
    /// collection's backups this policy does not keep (and no kept one needs) are forgotten.
    pub retention: Option<RetentionPolicy>,
    /// The other schedule of a full/incremental pair.
    pub paired: Option<u64>,
    /// Ids of its runs that started and have not finished.
    pub running: Vec<u64>,
    /// When its last run finished.
    pub last_run: Option<u64>,
    /// When it was created.
    pub created: u64,
}

/// What [`Schedule::start`] decided for a due schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartDecision {
    /// Run now; the run is recorded as running.
    Start,
    /// Skipped (`on_previous_running = 'skip'`); the next run is at the next scheduled time.
    Skip,
    /// Not started (`on_previous_running = 'wait'`); still due.
    Wait,
}

/// What must happen to other schedules after a run finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishEffect {
    /// Nothing.
    None,
    /// The full backup succeeded: unpause this (waiting) incremental schedule.
    UnpauseIncremental(u64),
    /// A `RECURRING NEVER` schedule ran: drop it.
    Drop,
}

impl Schedule {
    /// Whether it should be considered at `now`.
    pub fn is_due(&self, now: u64) -> bool {
        !self.paused && self.next_run.is_some_and(|t| t <= now)
    }

    /// The next scheduled time strictly after `now`, `None` for a one-off.
    pub fn next_after(&self, now: u64) -> Option<u64> {
        self.cron.as_deref().and_then(|c| CronExpr::parse(c).ok()?.next_after(now))
    }

    /// Decides what a due schedule does at `now`, and records it: a started run (`run_id`) is
    /// running and the next run is scheduled; a skip advances the next run; a wait changes nothing.
    pub fn start(&mut self, now: u64, run_id: u64) -> StartDecision {
        if !self.running.is_empty() {
            match self.on_previous_running {
                OnPreviousRunning::Wait => return StartDecision::Wait,
                OnPreviousRunning::Skip => {
                    self.next_run = self.next_after(now);
                    return StartDecision::Skip;
                }
                OnPreviousRunning::Start => {}
            }
        }
        self.running.push(run_id);
        self.next_run = self.next_after(now);
        StartDecision::Start
    }

    /// Advances a due schedule without running it (an incremental due at the very time its full
    /// backup ran: the layer would be empty).
    pub fn skip(&mut self, now: u64) {
        self.next_run = self.next_after(now);
    }

    /// Records that run `run_id` finished at `now`, with `error` if it failed.
    pub fn finish(&mut self, run_id: u64, now: u64, error: Option<String>) -> FinishEffect {
        self.running.retain(|r| *r != run_id);
        self.last_run = Some(now);
        match error {
            None => {
                self.status_message = None;
                if self.cron.is_none() {
                    return FinishEffect::Drop;
                }
                match (self.kind, self.paired) {
                    (BackupKind::Full, Some(inc)) => FinishEffect::UnpauseIncremental(inc),
                    _ => FinishEffect::None,
                }
            }
            Some(e) => {
                match self.on_failure {
                    OnFailure::Retry => self.next_run = Some(now + RETRY_AFTER_NANOS),
                    // The next run was scheduled when this one started. A one-off tries again next tick.
                    OnFailure::Reschedule if self.cron.is_none() => self.next_run = Some(now + RETRY_AFTER_NANOS),
                    OnFailure::Reschedule => {}
                    OnFailure::Pause => self.paused = true,
                }
                self.status_message = Some(format!("execution failed: {e}"));
                FinishEffect::None
            }
        }
    }

    /// `ACTIVE` or `PAUSED`, as in CockroachDB's `SHOW SCHEDULES`.
    pub fn state(&self) -> &'static str {
        if self.paused {
            "PAUSED"
        } else {
            "ACTIVE"
        }
    }

    /// The recurrence as shown: the cron text, or `NEVER`.
    pub fn recurrence(&self) -> &str {
        self.cron.as_deref().unwrap_or("NEVER")
    }

    /// Sets one option (checked by [`validate_schedule_option`]) on an existing schedule:
    /// `first_run` moves its next run to that time; `keep_*` rules change its retention policy
    /// (a policy left keeping nothing is none: old backups are no longer forgotten).
    pub fn set_option(&mut self, option: ScheduleOption) {
        match option {
            ScheduleOption::FirstRun(t) => self.next_run = Some(t),
            ScheduleOption::OnFailure(o) => self.on_failure = o,
            ScheduleOption::OnPreviousRunning(o) => self.on_previous_running = o,
            ScheduleOption::Keep(rule) => {
                let policy = self.retention.unwrap_or_default().with(rule);
                self.retention = (!policy.is_empty()).then_some(policy);
            }
            ScheduleOption::Ignored => {}
        }
    }

    /// Its options as `WITH SCHEDULE OPTIONS` would set them (what `SHOW SCHEDULES` shows):
    /// `on_execution_failure = 'reschedule', on_previous_running = 'wait', keep_last = 3`.
    pub fn options_text(&self) -> String {
        let on_failure = match self.on_failure {
            OnFailure::Retry => "retry",
            OnFailure::Reschedule => "reschedule",
            OnFailure::Pause => "pause",
        };
        let on_previous = match self.on_previous_running {
            OnPreviousRunning::Start => "start",
            OnPreviousRunning::Skip => "skip",
            OnPreviousRunning::Wait => "wait",
        };
        let mut out = format!("on_execution_failure = '{on_failure}', on_previous_running = '{on_previous}'");
        for (name, value) in self.retention.iter().flat_map(RetentionPolicy::options) {
            if name == "keep_within" {
                out.push_str(&format!(", {name} = '{value}'"));
            } else {
                out.push_str(&format!(", {name} = {value}"));
            }
        }
        out
    }
}

/// One schedule option, checked by [`validate_schedule_option`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScheduleOption {
    /// `first_run`: when the full schedule first runs (wall nanoseconds).
    FirstRun(u64),
    /// `on_execution_failure`.
    OnFailure(OnFailure),
    /// `on_previous_running`.
    OnPreviousRunning(OnPreviousRunning),
    /// `keep_last`, `keep_hourly`, `keep_daily`, `keep_weekly`, `keep_monthly`, `keep_yearly`,
    /// `keep_within` (a strata extension, named as restic names them): a rule of the policy
    /// that forgets old backups after each successful run.
    Keep(KeepRule),
    /// Accepted for CockroachDB's sake, without effect (`ignore_existing_backups`,
    /// `updates_cluster_last_backup_time_metric`).
    Ignored,
}

/// Checks one `WITH SCHEDULE OPTIONS name = value` (also what `ALTER BACKUP SCHEDULE … SET
/// SCHEDULE OPTION` sets): the one place schedule options are validated. `now` resolves
/// `first_run = 'now'` and relative times. Names are case-insensitive; an error names the
/// option and the values it takes.
pub fn validate_schedule_option(name: &str, value: &str, now: u64) -> Result<ScheduleOption> {
    let v = value.to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    if let Some(rule) = KeepRule::parse(&name, value)? {
        return Ok(ScheduleOption::Keep(rule));
    }
    Ok(match name.as_str() {
        "first_run" => {
            let t = if v == "now" {
                now
            } else {
                Timestamp::parse_as_of(value, Timestamp::from_nanos(now))
                    .map_err(|e| Error::invalid("first_run", format!("'{value}': {e}")))?
                    .wall
            };
            ScheduleOption::FirstRun(t)
        }
        "on_execution_failure" => ScheduleOption::OnFailure(match v.as_str() {
            "retry" => OnFailure::Retry,
            "reschedule" => OnFailure::Reschedule,
            "pause" => OnFailure::Pause,
            _ => {
                return Err(Error::invalid(
                    "on_execution_failure",
                    format!("'{value}'; valid values are retry, reschedule, pause"),
                ))
            }
        }),
        "on_previous_running" => ScheduleOption::OnPreviousRunning(match v.as_str() {
            "start" => OnPreviousRunning::Start,
            "skip" => OnPreviousRunning::Skip,
            "wait" => OnPreviousRunning::Wait,
            _ => {
                return Err(Error::invalid(
                    "on_previous_running",
                    format!("'{value}'; valid values are start, skip, wait"),
                ))
            }
        }),
        "ignore_existing_backups" | "updates_cluster_last_backup_time_metric" => ScheduleOption::Ignored,
        other => {
            return Err(Error::invalid(
                "schedule option",
                format!(
                    "unknown option {other} (known: first_run, on_execution_failure, on_previous_running, \
                     ignore_existing_backups, {})",
                    crate::retention::KEEP_OPTIONS.join(", ")
                ),
            ))
        }
    })
}

/// The options of `WITH SCHEDULE OPTIONS`, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleOptions {
    /// `first_run`: when the full schedule first runs (wall nanoseconds).
    pub first_run: Option<u64>,
    /// `on_execution_failure`.
    pub on_failure: OnFailure,
    /// `on_previous_running`.
    pub on_previous_running: OnPreviousRunning,
    /// `keep_last`, `keep_daily`, …: empty when none is set.
    pub retention: RetentionPolicy,
}

impl ScheduleOptions {
    /// Parses the options (each through [`validate_schedule_option`]); `now` resolves
    /// `first_run = 'now'` and relative times.
    pub fn parse(options: &[(String, String)], now: u64) -> Result<ScheduleOptions> {
        let mut out = ScheduleOptions::default();
        for (name, value) in options {
            out = out.with(validate_schedule_option(name, value, now)?);
        }
        Ok(out)
    }

    /// The options with `option` set.
    pub fn with(mut self, option: ScheduleOption) -> ScheduleOptions {
        match option {
            ScheduleOption::FirstRun(t) => self.first_run = Some(t),
            ScheduleOption::OnFailure(o) => self.on_failure = o,
            ScheduleOption::OnPreviousRunning(o) => self.on_previous_running = o,
            ScheduleOption::Keep(rule) => self.retention = self.retention.with(rule),
            ScheduleOption::Ignored => {}
        }
        self
    }
}

/// The full-backup cadence CockroachDB picks when `FULL BACKUP` is omitted
/// (`pickFullRecurrenceFromIncremental`): incrementals at most hourly get a daily full, at most
/// daily a weekly full; rarer ones make every backup full (`None`).
pub fn pick_full_recurrence(incremental_frequency_nanos: u64) -> Option<&'static str> {
    if incremental_frequency_nanos <= HOUR {
        Some("@daily")
    } else if incremental_frequency_nanos <= 24 * HOUR {
        Some("@weekly")
    } else {
        None
    }
}

/// Plans the schedules of a `CREATE SCHEDULE` statement created at `now`: the incremental
/// schedule first (if any, paused until the full backup's first run succeeds) then the full one,
/// with ids `first_id` and `first_id + 1` (or just `first_id`). `label` is the label to use.
pub fn plan_schedules(stmt: &CreateScheduleStmt, label: &str, now: u64, first_id: u64) -> Result<Vec<Schedule>> {
    let uris = match &stmt.backup.destination {
        BackupDestination::Into { subdir: None, uris } => uris.clone(),
        _ => return Err(Error::invalid("CREATE SCHEDULE", "a scheduled backup writes INTO a collection: INTO 'uri'")),
    };
    if stmt.backup.as_of.is_some() || !stmt.backup.incremental_from.is_empty() {
        return Err(Error::invalid("CREATE SCHEDULE", "AS OF SYSTEM TIME and INCREMENTAL FROM cannot be scheduled"));
    }
    let options = ScheduleOptions::parse(&stmt.schedule_options, now)?;
    if !options.retention.is_empty() && uris.len() > 1 {
        return Err(Error::invalid(
            "CREATE SCHEDULE",
            "keep_* options forget old backups of a collection in one place; a locality-aware collection \
             (several URIs) is not supported: run strata forget on it instead",
        ));
    }
    let parse = |text: &str| CronExpr::parse(text);
    let recurring: Option<CronExpr> = match &stmt.recurring {
        Recurrence::Cron(c) => Some(parse(c)?),
        Recurrence::Never => None,
        Recurrence::Always => return Err(Error::invalid("RECURRING", "ALWAYS goes with FULL BACKUP")),
    };
    // (incremental cadence, full cadence, whether the full cadence was picked for the user)
    let (inc, full, picked): (Option<CronExpr>, Option<CronExpr>, bool) = match (&stmt.full_backup, recurring) {
        (_, None) => (None, None, false),
        (Some(Recurrence::Always), Some(r)) => (None, Some(r), false),
        (Some(Recurrence::Cron(f)), Some(r)) => (Some(r), Some(parse(f)?), false),
        (Some(Recurrence::Never), Some(_)) => {
            return Err(Error::invalid("FULL BACKUP", "NEVER goes with RECURRING; use a cron expression or ALWAYS"))
        }
        (None, Some(r)) => {
            let freq =
                r.frequency(now).ok_or_else(|| Error::invalid("RECURRING", format!("'{}' never runs", r.text())))?;
            match pick_full_recurrence(freq) {
                Some(f) => (Some(r), Some(parse(f)?), true),
                None => (None, Some(r), true),
            }
        }
    };
    let base = |id: u64, kind: BackupKind, cron: Option<&CronExpr>, subdir: Option<Subdir>| {
        let mut backup = stmt.backup.clone();
        backup.destination = BackupDestination::Into { subdir, uris: uris.clone() };
        // Every run is a job of the schedule's (CockroachDB prints its statement `WITH detached`,
        // and takes `WITH detached` in CREATE SCHEDULE): the scheduler runs it, it queues none.
        backup.options.detached = false;
        Schedule {
            id,
            label: label.to_string(),
            kind,
            cron: cron.map(|c| c.text().to_string()),
            backup,
            typed_secrets: Vec::new(),
            paused: false,
            status_message: None,
            next_run: cron.and_then(|c| c.next_after(now)),
            on_failure: options.on_failure,
            on_previous_running: options.on_previous_running,
            retention: (!options.retention.is_empty()).then_some(options.retention),
            paired: None,
            running: Vec::new(),
            last_run: None,
            created: now,
        }
    };
    let mut out = Vec::new();
    let mut full_id = first_id;
    if let Some(inc) = &inc {
        let mut s = base(first_id, BackupKind::Incremental, Some(inc), Some(Subdir::Latest));
        s.paused = true;
        s.status_message = Some(WAITING_FOR_FULL.into());
        s.paired = Some(first_id + 1);
        full_id = first_id + 1;
        out.push(s);
    }
    let mut f = base(full_id, BackupKind::Full, full.as_ref(), None);
    f.paired = inc.as_ref().map(|_| first_id);
    // The first full runs at `first_run`, or at once when strata picked its cadence (without a
    // full backup, no incremental can run) or for a one-off.
    if let Some(t) = options.first_run {
        f.next_run = Some(t);
    } else if picked || full.is_none() {
        f.next_run = Some(now);
    }
    out.push(f);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{parse, Statement};
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const NOW: u64 = 1_767_225_600_000_000_000; // 2026-01-01 00:00 UTC, a Thursday
    const DAY: u64 = 24 * HOUR;

    fn plan(sql: &str) -> Result<Vec<Schedule>> {
        let Statement::CreateSchedule(s) = parse(sql).unwrap() else { panic!("not a schedule") };
        plan_schedules(&s, "l", NOW + 10 * HOUR, 1)
    }

    #[test]
    fn default_full_cadence_follows_cockroachdb() {
        let base = "CREATE SCHEDULE s FOR BACKUP INTO 'memory://c' RECURRING ";
        let cadence = |r: &str| -> Vec<(BackupKind, String)> {
            plan(&format!("{base}{r}")).unwrap().into_iter().map(|s| (s.kind, s.cron.unwrap())).collect()
        };
        use BackupKind::*;
        assert_eq!(cadence("'*/10 * * * *'"), vec![(Incremental, "*/10 * * * *".into()), (Full, "@daily".into())]);
        assert_eq!(cadence("'@hourly'"), vec![(Incremental, "@hourly".into()), (Full, "@daily".into())]);
        assert_eq!(cadence("'@daily'"), vec![(Incremental, "@daily".into()), (Full, "@weekly".into())]);
        assert_eq!(cadence("'@weekly'"), vec![(Full, "@weekly".into())]);
        assert_eq!(cadence("'@daily' FULL BACKUP ALWAYS"), vec![(Full, "@daily".into())]);
        assert_eq!(
            cadence("'@hourly' FULL BACKUP '0 3 * * *'"),
            vec![(Incremental, "@hourly".into()), (Full, "0 3 * * *".into())]
        );
    }

    #[test]
    fn pairs_first_runs_and_options() {
        let s = plan("CREATE SCHEDULE s FOR BACKUP INTO 'memory://c' RECURRING '@daily'").unwrap();
        assert!(s[0].paused && s[0].status_message.as_deref() == Some(WAITING_FOR_FULL));
        assert_eq!((s[0].paired, s[1].paired), (Some(2), Some(1)));
        assert_eq!(s[1].next_run, Some(NOW + 10 * HOUR), "a picked full cadence runs at once");
        assert!(matches!(&s[0].backup.destination, BackupDestination::Into { subdir: Some(Subdir::Latest), .. }));
        let s = plan("CREATE SCHEDULE s FOR BACKUP INTO 'memory://c' RECURRING '@daily' FULL BACKUP ALWAYS").unwrap();
        assert_eq!(s[0].next_run, Some(NOW + DAY), "an explicit cadence waits for its time");
        let s = plan(
            "CREATE SCHEDULE s FOR BACKUP INTO 'memory://c' RECURRING '@daily' FULL BACKUP ALWAYS \
             WITH SCHEDULE OPTIONS first_run = '2026-03-01 12:00:00', on_execution_failure = 'pause', \
             on_previous_running = 'skip'",
        )
        .unwrap();
        assert_eq!(s[0].next_run, Some(NOW + 59 * DAY + 12 * HOUR));
        assert_eq!((s[0].on_failure, s[0].on_previous_running), (OnFailure::Pause, OnPreviousRunning::Skip));
        let e = plan("CREATE SCHEDULE s FOR BACKUP INTO 'memory://c' RECURRING '@daily' WITH SCHEDULE OPTIONS on_previous_running = 'later'");
        assert_eq!(
            e.unwrap_err().to_string(),
            "invalid on_previous_running: 'later'; valid values are start, skip, wait"
        );
        assert!(plan("CREATE SCHEDULE s FOR BACKUP INTO 'memory://c' RECURRING 'bad'").is_err());
    }

    #[test]
    fn keep_options_set_and_unset_a_schedules_policy() {
        let mut s = plan(
            "CREATE SCHEDULE s FOR BACKUP INTO 'memory://c' RECURRING '@daily' FULL BACKUP ALWAYS \
                          WITH SCHEDULE OPTIONS keep_last = 3",
        )
        .unwrap()
        .remove(0);
        assert_eq!(s.retention, Some(RetentionPolicy { keep_last: 3, ..RetentionPolicy::default() }));
        s.set_option(validate_schedule_option("keep_daily", "7", NOW).unwrap());
        s.set_option(validate_schedule_option("on_execution_failure", "pause", NOW).unwrap());
        assert_eq!(
            s.options_text(),
            "on_execution_failure = 'pause', on_previous_running = 'wait', keep_last = 3, keep_daily = 7"
        );
        s.set_option(validate_schedule_option("keep_last", "0", NOW).unwrap());
        s.set_option(validate_schedule_option("keep_daily", "0", NOW).unwrap());
        assert_eq!(s.retention, None, "a policy keeping nothing is none");
        assert_eq!(
            validate_schedule_option("keep_weekly", "-2", NOW).unwrap_err().to_string(),
            "invalid keep_weekly: '-2': expected how many backups to keep, a whole number from 0 to 4294967295"
        );
    }

    #[test]
    fn start_and_finish_policies() {
        let mut s = plan("CREATE SCHEDULE s FOR BACKUP INTO 'memory://c' RECURRING '@daily' FULL BACKUP ALWAYS")
            .unwrap()
            .remove(0);
        let t = NOW + DAY;
        assert!(s.is_due(t));
        assert_eq!(s.start(t, 7), StartDecision::Start);
        assert_eq!(s.next_run, Some(t + DAY));
        // Previous still running: wait (default), skip, start.
        assert_eq!(s.start(t + DAY, 8), StartDecision::Wait);
        assert_eq!(s.next_run, Some(t + DAY));
        s.on_previous_running = OnPreviousRunning::Skip;
        assert_eq!(s.start(t + DAY, 8), StartDecision::Skip);
        assert_eq!(s.next_run, Some(t + 2 * DAY));
        s.on_previous_running = OnPreviousRunning::Start;
        assert_eq!(s.start(t + 2 * DAY, 9), StartDecision::Start);
        assert_eq!(s.running, vec![7, 9]);
        // Failures.
        assert_eq!(s.finish(7, t + 2 * DAY + 5, Some("boom".into())), FinishEffect::None);
        assert_eq!(s.next_run, Some(t + 3 * DAY), "reschedule keeps the next scheduled time");
        s.on_failure = OnFailure::Retry;
        s.finish(9, t + 2 * DAY + 6, Some("boom".into()));
        assert_eq!(s.next_run, Some(t + 2 * DAY + 6 + RETRY_AFTER_NANOS));
        s.on_failure = OnFailure::Pause;
        s.start(t + 3 * DAY, 10);
        s.finish(10, t + 3 * DAY, Some("boom".into()));
        assert!(s.paused && !s.is_due(t + 9 * DAY));
        assert_eq!(s.status_message.as_deref(), Some("execution failed: boom"));
    }
}
