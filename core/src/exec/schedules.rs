//! The schedule service: `CREATE SCHEDULE`, `SHOW SCHEDULES`, `PAUSE|RESUME|DROP SCHEDULE`, and
//! the two halves of the tick a host drives ([`Executor::run_due_schedules`] runs the backups
//! between them).
//!
//! Schedules live in the store's system span ([`crate::records`]), so a restarted scheduler
//! continues where it stopped. The decisions are in [`crate::schedule`]; this file reads and
//! writes the state.
//!
//! One scheduler per store is assumed: state is read, decided and written without a
//! transaction, so two hosts ticking the same store at once could both start a run.

use super::jobs::{finish_scheduled_run, forget_scheduled_runs, start_scheduled_run};
use super::Context;
#[cfg(doc)]
use super::Executor;
use crate::error::{Error, Result};
use crate::kv::KvStore;
use crate::manage::forget::forget;
use crate::records::{RecordStore, ScheduleRecord, SCHEDULES};
use crate::result::{QueryResult, Value};
use crate::retention::RetentionPolicy;
use crate::schedule::{plan_schedules, BackupKind, FinishEffect, Schedule, StartDecision, WAITING_FOR_FULL};
use crate::secrets::{required_sources, resolve_backup, typed_secrets_error, without_secrets};
use crate::sql::{BackupDestination, BackupStmt, CreateScheduleStmt, Statement};
use crate::timestamp::Timestamp;

/// What a tick did with one due schedule.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RunOutcome {
    /// Started and not finished yet (from [`Executor::start_due_runs`]): run
    /// [`ScheduledRun::statement`], then call [`Executor::finish_run`].
    Started,
    /// The backup ran; its result row.
    Succeeded(QueryResult),
    /// The backup failed; the schedule's `on_execution_failure` applied.
    Failed(Error),
    /// Not run this time, and why.
    Skipped(String),
    /// Not started: the previous run is unfinished and `on_previous_running = 'wait'`.
    Waiting,
}

/// One due schedule considered by a tick.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScheduledRun {
    /// The schedule.
    pub schedule_id: u64,
    /// Its label.
    pub label: String,
    /// Full or incremental.
    pub kind: BackupKind,
    /// The run's id when it started.
    pub run_id: Option<u64>,
    /// The backup it runs.
    pub statement: BackupStmt,
    /// What happened.
    pub outcome: RunOutcome,
    /// After a successful run of a schedule with `keep_*` options: how many backups (and
    /// leftovers of an interrupted forget) of its collection were forgotten, or why forgetting
    /// failed (the backup still succeeded; the schedule's status says so until its next success).
    pub forgotten: Option<Result<usize>>,
}

/// A time as CockroachDB prints a `TIMESTAMPTZ` in UTC: `2020-09-11 00:00:00+00:00`, with
/// microseconds only when there are some (`2020-09-10 16:52:17.280821+00:00`).
fn timestamptz(t: Option<u64>) -> Value {
    t.map(|t| Timestamp::from_nanos(t).to_utc_string()).into()
}

/// Reads and writes schedules and decides their runs.
#[derive(Clone, Copy)]
pub(super) struct ScheduleService {
    records: RecordStore<ScheduleRecord>,
}

impl Default for ScheduleService {
    fn default() -> Self {
        ScheduleService { records: SCHEDULES }
    }
}

impl ScheduleService {
    /// Every schedule, by id.
    pub(super) async fn all(&self, store: &dyn KvStore) -> Result<Vec<Schedule>> {
        Ok(self.records.all(store).await?.iter().map(ScheduleRecord::schedule).collect())
    }

    /// One schedule.
    pub(super) async fn get(&self, store: &dyn KvStore, id: u64) -> Result<Schedule> {
        Ok(self.records.get(store, id).await?.schedule())
    }

    async fn save(&self, store: &dyn KvStore, schedules: &[&Schedule]) -> Result<()> {
        let records: Vec<ScheduleRecord> = schedules.iter().map(|s| ScheduleRecord::new(s)).collect();
        self.records.write(store, records.iter().map(|r| (r.id(), Some(r))).collect()).await
    }

    /// `CREATE SCHEDULE`: plans the schedule (or the full and incremental pair) and stores it.
    /// Its statement must refer to its secrets, not hold them (see `crate::secrets`); a notice
    /// says what must be present when it runs. The result has CockroachDB's columns.
    pub(super) async fn create(&self, cx: &Context, stmt: &CreateScheduleStmt) -> Result<QueryResult> {
        let store = cx.store.as_ref();
        let (_, typed) = without_secrets(&stmt.backup);
        if !typed.is_empty() {
            return Err(Error::invalid(
                "CREATE SCHEDULE",
                format!(
                    "a schedule stores no secrets, and {} {} typed into its statement. Refer to them instead, to be \
                     read by the process that runs the schedule: encryption_passphrase_env = 'NAME' or \
                     encryption_passphrase_file = '/path' (or a kms URI), and ${{NAME}} (an environment variable) \
                     as a URI parameter's value or password, or AUTH=implicit",
                    typed.join(", "),
                    if typed.len() == 1 { "was" } else { "were" }
                ),
            ));
        }
        let required: Vec<String> = required_sources(&stmt.backup).iter().map(|s| s.to_string()).collect();
        // CockroachDB's columns (its CREATE SCHEDULE FOR BACKUP page).
        let mut out = QueryResult::new(&["schedule_id", "name", "status", "first_run", "schedule", "backup_stmt"]);
        let now = store.now().await?.wall;
        let label = stmt.label.clone().unwrap_or_else(|| format!("BACKUP {}", now / 1_000_000_000));
        let existing = self.all(store).await?;
        if stmt.if_not_exists && existing.iter().any(|s| s.label == label) {
            return Ok(out);
        }
        // Check the collection opens and the statement plans before storing anything.
        let root = match &stmt.backup.destination {
            crate::sql::BackupDestination::Into { uris, .. } => Some(cx.open_uris(uris)?),
            crate::sql::BackupDestination::To(_) => None,
        };
        let n = plan_schedules(stmt, &label, now, 1)?.len() as u64;
        let mut unchecked = None;
        if let Some(root) = root {
            // As CockroachDB: a collection that holds backups may hold another schedule's, of other
            // targets; the user says they know with `ignore_existing_backups`.
            let ignore = stmt.schedule_options.iter().any(|(k, _)| k == "ignore_existing_backups");
            match crate::storage::ExternalStorageExt::size(root.storage().as_ref(), crate::layout::LATEST_NAME).await {
                Ok(_) if !ignore => {
                    return Err(Error::Precondition(format!(
                        "backups already created in {}; to ignore existing backups, the schedule can be created \
                         with the 'ignore_existing_backups' option",
                        root.describe()
                    )))
                }
                Ok(_) | Err(Error::NotFound { .. }) => {}
                // The credentials may be references only the process running the schedule reads
                // (see `crate::secrets`): the schedule is created, saying what was not checked.
                Err(e) => unchecked = Some(format!("could not check whether {} holds backups: {e}", root.describe())),
            }
        }
        let first = self.records.allocate_ids(store, n).await?;
        let schedules = plan_schedules(stmt, &label, now, first)?;
        self.save(store, &schedules.iter().collect::<Vec<_>>()).await?;
        for s in &schedules {
            out.push(created_row(s));
        }
        out.notices.extend(unchecked);
        if !required.is_empty() {
            out.notices.push(format!(
                "the schedule's runs read {} when they start: each must be present in the process that runs them",
                required.join(", ")
            ));
        }
        Ok(out)
    }

    /// `SHOW SCHEDULES`.
    pub(super) async fn show(&self, store: &dyn KvStore) -> Result<QueryResult> {
        let mut out = QueryResult::new(&[
            "id",
            "label",
            "schedule_status",
            "next_run",
            "state",
            "recurrence",
            "jobs_running",
            "created",
            "command",
            "schedule_options",
        ]);
        for s in self.all(store).await? {
            out.push(vec![
                s.id.into(),
                s.label.clone().into(),
                s.state().into(),
                timestamptz(s.next_run),
                s.status_message.clone().into(),
                s.recurrence().to_string().into(),
                (s.running.len() as u64).into(),
                timestamptz(Some(s.created)),
                Statement::Backup(s.backup.clone()).to_string().into(),
                s.options_text().into(),
            ]);
        }
        Ok(out)
    }

    /// `PAUSE SCHEDULE id`.
    pub(super) async fn pause(&self, store: &dyn KvStore, id: u64) -> Result<QueryResult> {
        let mut s = self.get(store, id).await?;
        s.paused = true;
        s.status_message = Some("paused by PAUSE SCHEDULE".into());
        self.save(store, &[&s]).await?;
        Ok(QueryResult::default())
    }

    /// `RESUME SCHEDULE id`.
    pub(super) async fn resume(&self, store: &dyn KvStore, id: u64) -> Result<QueryResult> {
        let mut s = self.get(store, id).await?;
        let now = store.now().await?.wall;
        s.paused = false;
        s.status_message = None;
        if s.cron.is_some() {
            s.next_run = s.next_after(now);
        } else if s.next_run.is_none() {
            s.next_run = Some(now);
        }
        self.save(store, &[&s]).await?;
        Ok(QueryResult::default())
    }

    /// `DROP SCHEDULE id` (its paired schedule forgets it).
    pub(super) async fn remove(&self, store: &dyn KvStore, id: u64) -> Result<QueryResult> {
        let s = self.get(store, id).await?;
        let mut other = None;
        if let Some(o) = s.paired {
            if let Ok(mut o) = self.get(store, o).await {
                o.paired = None;
                other = Some(o);
            }
        }
        let other = other.as_ref().map(ScheduleRecord::new);
        let mut batch = vec![(s.id, None)];
        batch.extend(other.as_ref().map(|o| (o.id(), Some(o))));
        self.records.write(store, batch).await?;
        Ok(QueryResult::default())
    }

    /// See [`Executor::start_due_runs`].
    pub(super) async fn start_due_runs(&self, store: &dyn KvStore, now: Timestamp) -> Result<Vec<ScheduledRun>> {
        let now = now.wall;
        let mut due: Vec<Schedule> = self.all(store).await?.into_iter().filter(|s| s.is_due(now)).collect();
        due.sort_by_key(|s| (s.kind == BackupKind::Incremental, s.id));
        let mut out = Vec::new();
        let mut fulls_started = Vec::new();
        for mut s in due {
            let mut run = ScheduledRun {
                schedule_id: s.id,
                label: s.label.clone(),
                kind: s.kind,
                run_id: None,
                statement: s.backup.clone(),
                outcome: RunOutcome::Waiting,
                forgotten: None,
            };
            if !s.typed_secrets.is_empty() {
                // An older record's secrets were dropped: pause it, saying why.
                let why = typed_secrets_error(&format!("schedule {}", s.id), &s.typed_secrets).to_string();
                s.paused = true;
                s.status_message = Some(why.clone());
                run.outcome = RunOutcome::Skipped(why);
            } else if s.kind == BackupKind::Incremental && s.paired.is_some_and(|f| fulls_started.contains(&f)) {
                s.skip(now);
                run.outcome = RunOutcome::Skipped("its full backup runs at this time".into());
            } else {
                // Decided first: only a started run becomes a job (listed by SHOW JOBS).
                let decision = s.clone().start(now, 0);
                let run_id = match decision {
                    StartDecision::Start => {
                        let description = Statement::Backup(s.backup.clone()).to_string();
                        start_scheduled_run(store, s.id, s.kind, description, now).await?
                    }
                    _ => 0,
                };
                match s.start(now, run_id) {
                    StartDecision::Start => {
                        run.run_id = Some(run_id);
                        run.outcome = RunOutcome::Started;
                        if s.kind == BackupKind::Full {
                            fulls_started.push(s.id);
                        }
                    }
                    StartDecision::Skip => {
                        run.outcome = RunOutcome::Skipped("the previous run is still running".into())
                    }
                    StartDecision::Wait => run.outcome = RunOutcome::Waiting,
                }
            }
            self.save(store, &[&s]).await?;
            out.push(run);
        }
        Ok(out)
    }

    /// See [`Executor::finish_run`]: records the run's end, then, when it succeeded and the
    /// schedule has `keep_*` options, forgets old backups of its collection.
    pub(super) async fn finish_run(
        &self,
        cx: &Context,
        run: &mut ScheduledRun,
        now: Timestamp,
        result: Result<QueryResult>,
    ) -> Result<()> {
        let store = cx.store.as_ref();
        let retention = match (&result, run.run_id) {
            (Ok(_), Some(_)) => match self.get(store, run.schedule_id).await {
                Ok(s) => s.retention,
                Err(Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            },
            _ => None,
        };
        self.record_finish(store, run, now, result).await?;
        if let Some(policy) = retention {
            let outcome = forget_after_run(cx, &run.statement, &policy, now).await;
            if let Err(e) = &outcome {
                // Shown by SHOW SCHEDULES until the next successful run clears it.
                if let Ok(mut s) = self.get(store, run.schedule_id).await {
                    s.status_message = Some(format!("forgetting old backups after the run failed: {e}"));
                    self.save(store, &[&s]).await?;
                }
            }
            run.forgotten = Some(outcome);
        }
        Ok(())
    }

    async fn record_finish(
        &self,
        store: &dyn KvStore,
        run: &mut ScheduledRun,
        now: Timestamp,
        result: Result<QueryResult>,
    ) -> Result<()> {
        let now = now.wall;
        let Some(run_id) = run.run_id else { return Ok(()) };
        let error = result.as_ref().err().map(|e| e.to_string());
        finish_scheduled_run(store, run_id, now, &result).await?;
        run.outcome = match result {
            Ok(r) => RunOutcome::Succeeded(r),
            Err(e) => RunOutcome::Failed(e),
        };
        let mut s = match self.get(store, run.schedule_id).await {
            Ok(s) => s,
            Err(Error::NotFound { .. }) => return Ok(()), // dropped while running
            Err(e) => return Err(e),
        };
        match s.finish(run_id, now, error) {
            FinishEffect::None => self.save(store, &[&s]).await,
            FinishEffect::Drop => self.records.delete(store, s.id).await,
            FinishEffect::UnpauseIncremental(inc) => match self.get(store, inc).await {
                Ok(mut i) if i.paused && i.status_message.as_deref() == Some(WAITING_FOR_FULL) => {
                    i.paused = false;
                    i.status_message = None;
                    i.next_run = i.next_after(now);
                    self.save(store, &[&s, &i]).await
                }
                _ => self.save(store, &[&s]).await,
            },
        }
    }

    /// See [`Executor::recover_schedules`].
    pub(super) async fn recover(&self, store: &dyn KvStore) -> Result<usize> {
        let mut forgotten = 0;
        for mut s in self.all(store).await? {
            if !s.running.is_empty() {
                forgotten += s.running.len();
                forget_scheduled_runs(store, &s.running).await?;
                s.running.clear();
                self.save(store, &[&s]).await?;
            }
        }
        Ok(forgotten)
    }
}

/// `ALTER BACKUP SCHEDULE` and `SHOW SCHEDULE id` (the decisions are in
/// [`crate::schedule_alter`]).
impl ScheduleService {
    /// `SHOW SCHEDULE id`: `SHOW SCHEDULES`' row of one schedule.
    pub(super) async fn show_one(&self, store: &dyn KvStore, id: u64) -> Result<QueryResult> {
        self.get(store, id).await?;
        let mut r = self.show(store).await?;
        r.rows.retain(|row| row.first() == Some(&Value::from(id)));
        Ok(r)
    }

    /// `ALTER BACKUP SCHEDULE id …`: changes the schedule and its pair together and returns
    /// their rows (the incremental first, as CREATE SCHEDULE does).
    pub(super) async fn alter(&self, cx: &Context, stmt: &crate::sql::AlterBackupScheduleStmt) -> Result<QueryResult> {
        use crate::schedule_alter::alter_schedules;
        let store = cx.store.as_ref();
        let named = self.get(store, stmt.id).await?;
        let other = match named.paired {
            Some(id) => match self.get(store, id).await {
                Ok(s) => Some(s),
                Err(Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let (full, incremental) = match named.kind {
            BackupKind::Full => (named, other),
            BackupKind::Incremental => match other {
                Some(full) => (full, Some(named)),
                None => {
                    return Err(Error::invalid(
                        "ALTER BACKUP SCHEDULE",
                        format!(
                            "incremental backup schedule {0} has no corresponding full backup schedule; drop \
                             schedule {0} and recreate",
                            stmt.id
                        ),
                    ))
                }
            },
        };
        let now = store.now().await?.wall;
        let creates = incremental.is_none()
            && stmt
                .commands
                .iter()
                .any(|c| matches!(c, crate::sql::AlterScheduleCmd::SetFullBackup(crate::sql::Recurrence::Cron(_))));
        // Checked once without an id, so that a failing statement allocates none.
        alter_schedules(full.clone(), incremental.clone(), &stmt.commands, now, 0)?;
        let new_id = if creates { self.records.allocate_ids(store, 1).await? } else { 0 };
        let altered = alter_schedules(full, incremental, &stmt.commands, now, new_id)?;
        let (_, typed) = without_secrets(&altered.full.backup);
        if !typed.is_empty() {
            return Err(Error::invalid(
                "ALTER BACKUP SCHEDULE",
                format!(
                    "a schedule stores no secrets, and {} would be typed into its statement. Refer to them \
                     instead: ${{NAME}} (an environment variable) as a URI parameter's value or password, or \
                     AUTH=implicit",
                    typed.join(", ")
                ),
            ));
        }
        if let BackupDestination::Into { uris, .. } = &altered.full.backup.destination {
            cx.open_uris(uris)?;
        }
        let full = ScheduleRecord::new(&altered.full);
        let inc = altered.incremental.as_ref().map(ScheduleRecord::new);
        let mut batch = vec![(full.id(), Some(&full))];
        batch.extend(inc.as_ref().map(|i| (i.id(), Some(i))));
        batch.extend(altered.dropped.map(|id| (id, None)));
        self.records.write(store, batch).await?;
        let mut out = QueryResult::new(&["schedule_id", "name", "status", "first_run", "schedule", "backup_stmt"]);
        for s in altered.incremental.iter().chain([&altered.full]) {
            out.push(created_row(s));
        }
        Ok(out)
    }
}

/// A schedule's row as CREATE and ALTER BACKUP SCHEDULE show it: CockroachDB's columns
/// (`schedule_id | name | status | first_run | schedule | backup_stmt`), a paused schedule's
/// first run NULL, times as TIMESTAMPTZ, and each run's statement `WITH detached` (each run is
/// a job of its own, which is how the scheduler runs it).
fn created_row(s: &Schedule) -> Vec<Value> {
    let status = match &s.status_message {
        Some(m) if s.paused => format!("PAUSED: {m}"),
        _ => s.state().to_string(),
    };
    let mut backup = s.backup.clone();
    backup.options.detached = true;
    vec![
        s.id.into(),
        s.label.clone().into(),
        status.into(),
        if s.paused { Value::Null } else { timestamptz(s.next_run) },
        s.recurrence().to_string().into(),
        Statement::Backup(backup).to_string().into(),
    ]
}

/// Forgets the backups of the collection `backup` writes into that `policy` does not keep, at
/// `now`, and prunes them; returns how many backups (and leftovers) went. The statement's
/// secret references are read as the run read them.
async fn forget_after_run(
    cx: &Context,
    backup: &BackupStmt,
    policy: &RetentionPolicy,
    now: Timestamp,
) -> Result<usize> {
    let backup = resolve_backup(backup, cx.secrets.as_ref())?;
    let BackupDestination::Into { uris, .. } = &backup.destination else {
        return Err(Error::invalid("schedule", "a scheduled backup writes INTO a collection"));
    };
    let root = cx.open_uris(uris)?;
    let plan = forget(root.storage(), policy, now, true).await?;
    Ok(plan.removed().count() + plan.leftovers.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn first_run_prints_as_cockroachdb_prints_a_timestamptz() {
        let t = |s: &str| Timestamp::parse_as_of(s, Timestamp::ZERO).unwrap().wall;
        let shown = |nanos: u64| timestamptz(Some(nanos)).to_string();
        assert_eq!(shown(t("2020-09-11 00:00:00")), "2020-09-11 00:00:00+00:00");
        assert_eq!(shown(t("2020-09-10 16:52:17") + 280_821_000), "2020-09-10 16:52:17.280821+00:00");
        assert_eq!(shown(t("2020-09-10 16:52:17") + 250_000_999), "2020-09-10 16:52:17.25+00:00");
        assert_eq!(timestamptz(None), Value::Null);
    }
}
