//! The executor's schedule statements and the tick a host drives: `CREATE SCHEDULE`,
//! `SHOW SCHEDULES`, `PAUSE|RESUME|DROP SCHEDULE`, and [`Executor::run_due_schedules`].
//!
//! Schedules live in the store's system span (`keys::system_key(b"schedule/<id>")`, a version
//! byte then postcard), so a restarted scheduler continues where it stopped. The decisions are
//! in [`crate::schedule`]; this file reads and writes the state and runs the backups.
//!
//! One scheduler per store is assumed: state is read, decided and written without a
//! transaction, so two hosts ticking the same store at once could both start a run.

use crate::error::{Error, Result};
use crate::exec::Executor;
use crate::keys::system_key;
use crate::kv::read_span;
use crate::result::{QueryResult, Value};
use crate::schedule::{plan_schedules, BackupKind, FinishEffect, Schedule, StartDecision, WAITING_FOR_FULL};
use crate::span::Span;
use crate::sql::{BackupStmt, CreateScheduleStmt, Statement};
use crate::timestamp::Timestamp;

const SCHEDULE_PREFIX: &[u8] = b"schedule/";
const NEXT_ID_KEY: &[u8] = b"schedule-next-id";
const STATE_VERSION: u8 = 1;

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
}

fn schedule_key(id: u64) -> Vec<u8> {
    let mut suffix = SCHEDULE_PREFIX.to_vec();
    suffix.extend_from_slice(&id.to_be_bytes());
    system_key(&suffix)
}

fn encode(s: &Schedule) -> Vec<u8> {
    let mut out = vec![STATE_VERSION];
    out.extend(postcard::to_allocvec(s).expect("schedules serialize"));
    out
}

fn decode(bytes: &[u8]) -> Result<Schedule> {
    let where_ = "system span: schedule";
    match bytes.split_first() {
        Some((&STATE_VERSION, body)) => {
            postcard::from_bytes(body).map_err(|e| Error::corrupt(where_, format!("does not decode: {e}")))
        }
        _ => Err(Error::corrupt(where_, "unknown schedule state version")),
    }
}

/// What a full-cluster restore writes for a system key of the source: schedules come back
/// paused (a daemon on the restored cluster must not start backing up into the source's
/// collections on its own), job records not at all (they belong to the source's processes).
pub(crate) fn restored_system_value(key: &[u8], value: Vec<u8>) -> Option<Vec<u8>> {
    let jobs = system_key(crate::jobs::JOB_KEYS_PREFIX);
    if key.starts_with(&jobs) {
        return None;
    }
    if key.starts_with(&system_key(SCHEDULE_PREFIX)) {
        return match decode(&value) {
            Ok(mut s) => {
                s.paused = true;
                s.status_message = Some("paused by a full cluster restore; RESUME SCHEDULE to run it here".into());
                Some(encode(&s))
            }
            // Carried over as it was: SHOW SCHEDULES names the damage.
            Err(_) => Some(value),
        };
    }
    Some(value)
}

fn civil(t: Option<u64>) -> Value {
    t.map(|t| Timestamp::from_nanos(t).to_civil_string()).into()
}

impl Executor {
    /// Every schedule, by id.
    pub async fn schedules(&self) -> Result<Vec<Schedule>> {
        let now = self.store().now().await?;
        let span = Span::prefix(&system_key(SCHEDULE_PREFIX));
        read_span(self.store().as_ref(), span, now).await?.iter().map(|(_, v)| decode(v)).collect()
    }

    /// One schedule.
    pub async fn schedule(&self, id: u64) -> Result<Schedule> {
        let key = schedule_key(id);
        let now = self.store().now().await?;
        let mut end = key.clone();
        end.push(0);
        let found = read_span(self.store().as_ref(), Span::new(key, end), now).await?;
        match found.first() {
            Some((_, v)) => decode(v),
            None => Err(Error::not_found("schedule", id.to_string())),
        }
    }

    async fn save_schedules(&self, schedules: &[&Schedule]) -> Result<()> {
        let batch = schedules.iter().map(|s| (schedule_key(s.id), Some(encode(s)))).collect();
        self.store().write(batch).await?;
        Ok(())
    }

    /// Allocates `n` consecutive schedule/run ids.
    async fn allocate_schedule_ids(&self, n: u64) -> Result<u64> {
        let key = system_key(NEXT_ID_KEY);
        let mut end = key.clone();
        end.push(0);
        let now = self.store().now().await?;
        let found = read_span(self.store().as_ref(), Span::new(key.clone(), end), now).await?;
        let next = match found.first() {
            Some((_, v)) => u64::from_be_bytes(
                v.as_slice().try_into().map_err(|_| Error::corrupt("system span: schedule ids", "bad counter"))?,
            ),
            None => 1,
        };
        self.store().write(vec![(key, Some((next + n).to_be_bytes().to_vec()))]).await?;
        Ok(next)
    }

    /// Runs a schedule statement (`CREATE SCHEDULE`, `SHOW SCHEDULES`, `PAUSE|RESUME|DROP SCHEDULE`).
    pub(crate) async fn schedule_statement(&self, stmt: &Statement) -> Result<QueryResult> {
        match stmt {
            Statement::CreateSchedule(s) => self.create_schedule(s).await,
            Statement::ShowSchedules => self.show_schedules().await,
            Statement::PauseSchedule(id) => {
                let mut s = self.schedule(*id).await?;
                s.paused = true;
                s.status_message = Some("paused by PAUSE SCHEDULE".into());
                self.save_schedules(&[&s]).await?;
                Ok(QueryResult::default())
            }
            Statement::ResumeSchedule(id) => {
                let mut s = self.schedule(*id).await?;
                let now = self.store().now().await?.wall;
                s.paused = false;
                s.status_message = None;
                if s.cron.is_some() {
                    s.next_run = s.next_after(now);
                } else if s.next_run.is_none() {
                    s.next_run = Some(now);
                }
                self.save_schedules(&[&s]).await?;
                Ok(QueryResult::default())
            }
            Statement::DropSchedule(id) => {
                let s = self.schedule(*id).await?;
                let mut batch = vec![(schedule_key(s.id), None)];
                if let Some(other) = s.paired {
                    if let Ok(mut o) = self.schedule(other).await {
                        o.paired = None;
                        batch.push((schedule_key(o.id), Some(encode(&o))));
                    }
                }
                self.store().write(batch).await?;
                Ok(QueryResult::default())
            }
            _ => Err(Error::invalid("statement", "not a schedule statement")),
        }
    }

    async fn create_schedule(&self, stmt: &CreateScheduleStmt) -> Result<QueryResult> {
        let mut out = QueryResult::new(&["schedule_id", "label", "status", "first_run", "schedule", "backup_stmt"]);
        let now = self.store().now().await?.wall;
        let label = stmt.label.clone().unwrap_or_else(|| format!("BACKUP {}", now / 1_000_000_000));
        let existing = self.schedules().await?;
        if stmt.if_not_exists && existing.iter().any(|s| s.label == label) {
            return Ok(out);
        }
        // Check the collection opens and the statement plans before storing anything.
        if let crate::sql::BackupDestination::Into { uris, .. } = &stmt.backup.destination {
            self.open_uris(uris)?;
        }
        let n = plan_schedules(stmt, &label, now, 1)?.len() as u64;
        let first = self.allocate_schedule_ids(n).await?;
        let schedules = plan_schedules(stmt, &label, now, first)?;
        self.save_schedules(&schedules.iter().collect::<Vec<_>>()).await?;
        for s in &schedules {
            let status = match &s.status_message {
                Some(m) if s.paused => format!("PAUSED: {m}"),
                _ => s.state().to_string(),
            };
            out.push(vec![
                s.id.into(),
                s.label.clone().into(),
                status.into(),
                civil(s.next_run),
                s.recurrence().to_string().into(),
                Statement::Backup(s.backup.clone()).to_string().into(),
            ]);
        }
        Ok(out)
    }

    async fn show_schedules(&self) -> Result<QueryResult> {
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
        ]);
        for s in self.schedules().await? {
            out.push(vec![
                s.id.into(),
                s.label.clone().into(),
                s.state().into(),
                civil(s.next_run),
                s.status_message.clone().into(),
                s.recurrence().to_string().into(),
                (s.running.len() as u64).into(),
                civil(Some(s.created)),
                Statement::Backup(s.backup.clone()).to_string().into(),
            ]);
        }
        Ok(out)
    }

    /// Starts every schedule due at `now` (fulls before incrementals) and records the runs as
    /// running; returns what each due schedule did. A host that runs backups concurrently
    /// executes each [`RunOutcome::Started`] run's statement and reports it with
    /// [`Executor::finish_run`]; [`Executor::run_due_schedules`] does both in order.
    ///
    /// An incremental due at the same tick as its full backup is skipped: its layer would be empty.
    pub async fn start_due_runs(&self, now: Timestamp) -> Result<Vec<ScheduledRun>> {
        let now = now.wall;
        let mut due: Vec<Schedule> = self.schedules().await?.into_iter().filter(|s| s.is_due(now)).collect();
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
            };
            if s.kind == BackupKind::Incremental && s.paired.is_some_and(|f| fulls_started.contains(&f)) {
                s.skip(now);
                run.outcome = RunOutcome::Skipped("its full backup runs at this time".into());
            } else {
                let run_id = self.allocate_schedule_ids(1).await?;
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
            self.save_schedules(&[&s]).await?;
            out.push(run);
        }
        Ok(out)
    }

    /// Records that a started run finished at `now` with `result`, applying the schedule's
    /// failure policy, unpausing a waiting incremental after its full's success, and dropping a
    /// one-off schedule. Sets the run's outcome.
    pub async fn finish_run(&self, run: &mut ScheduledRun, now: Timestamp, result: Result<QueryResult>) -> Result<()> {
        let now = now.wall;
        let Some(run_id) = run.run_id else { return Ok(()) };
        let error = result.as_ref().err().map(|e| e.to_string());
        run.outcome = match result {
            Ok(r) => RunOutcome::Succeeded(r),
            Err(e) => RunOutcome::Failed(e),
        };
        let mut s = match self.schedule(run.schedule_id).await {
            Ok(s) => s,
            Err(Error::NotFound { .. }) => return Ok(()), // dropped while running
            Err(e) => return Err(e),
        };
        match s.finish(run_id, now, error) {
            FinishEffect::None => self.save_schedules(&[&s]).await,
            FinishEffect::Drop => {
                self.store().write(vec![(schedule_key(s.id), None)]).await?;
                Ok(())
            }
            FinishEffect::UnpauseIncremental(inc) => match self.schedule(inc).await {
                Ok(mut i) if i.paused && i.status_message.as_deref() == Some(WAITING_FOR_FULL) => {
                    i.paused = false;
                    i.status_message = None;
                    i.next_run = i.next_after(now);
                    self.save_schedules(&[&s, &i]).await
                }
                _ => self.save_schedules(&[&s]).await,
            },
        }
    }

    /// Forgets runs recorded as running: call once when a scheduler starts, when no run of the
    /// store can be running (one scheduler per store), so that runs of a process that died do not
    /// hold `on_previous_running = 'wait'` schedules forever. (A killed backup resumes from its
    /// checkpoint when the schedule runs it again.) Returns how many runs were forgotten.
    pub async fn recover_schedules(&self) -> Result<usize> {
        let mut forgotten = 0;
        for mut s in self.schedules().await? {
            if !s.running.is_empty() {
                forgotten += s.running.len();
                s.running.clear();
                self.save_schedules(&[&s]).await?;
            }
        }
        Ok(forgotten)
    }

    /// The host's tick: starts every schedule due at `now`, runs each started backup to the end
    /// (one after another), and records the results. Returns what each due schedule did.
    pub async fn run_due_schedules(&self, now: Timestamp) -> Result<Vec<ScheduledRun>> {
        let mut runs = self.start_due_runs(now).await?;
        for run in &mut runs {
            if run.outcome == RunOutcome::Started {
                let result = self.execute_statement(&Statement::Backup(run.statement.clone())).await;
                self.finish_run(run, now, result).await?;
            }
        }
        Ok(runs)
    }
}
