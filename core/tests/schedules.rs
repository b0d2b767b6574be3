//! Backup schedules over months of simulated time: the store's clock and the scheduler's `now`
//! are driven by the test, so every run's time, kind and place can be checked exactly.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

#[path = "schedules/alter.rs"]
mod alter;
use crate::common;
#[path = "schedule_retention/mod.rs"]
mod schedule_retention;

use async_trait::async_trait;
use common::{Call, Hook, HookedOpener};
use futures::executor::block_on;
use strata_core::sql::{BackupSource, Subdir};
use strata_core::{
    keys, BackupKind, Civil, Error, Executor, MemKv, MemoryOpener, QueryResult, Result, RunOutcome, ScheduledRun,
    Status, Timestamp, Value, RETRY_AFTER_NANOS,
};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

const MINUTE: u64 = 60 * 1_000_000_000;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const URI: &str = "memory://collection";

fn at(year: i64, month: u32, day: u32, hour: u32, minute: u32) -> u64 {
    Civil { year, month, day, hour, minute, second: 0, nanos: 0 }.to_nanos().unwrap()
}

/// `YYYY-MM-DD HH:MM` of a wall time, for readable assertions.
fn show(t: u64) -> String {
    let c = Civil::from_nanos(t);
    format!("{:04}-{:02}-{:02} {:02}:{:02}", c.year, c.month, c.day, c.hour, c.minute)
}

/// Writes fail while the flag is set.
struct FailWrites(Arc<AtomicBool>);

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl Hook for FailWrites {
    async fn before(&self, call: Call, path: &str) -> Result<()> {
        if matches!(call, Call::Put | Call::PutIfAbsent) && self.0.load(Ordering::SeqCst) {
            return Err(Error::Storage {
                path: path.into(),
                message: "injected fault".into(),
                status: Status::Temporary,
            });
        }
        Ok(())
    }
}

/// A store, an executor and a clock the test drives.
struct Sim {
    clock: Arc<AtomicU64>,
    kv: MemKv,
    exec: Executor,
    opener: Arc<HookedOpener>,
    fail: Arc<AtomicBool>,
    table: u32,
    rows: u64,
}

impl Sim {
    fn new(start: u64) -> Sim {
        let clock = Arc::new(AtomicU64::new(start));
        let c = clock.clone();
        let kv = MemKv::with_clock(Arc::new(move || c.load(Ordering::SeqCst)));
        let fail = Arc::new(AtomicBool::new(false));
        let opener =
            Arc::new(HookedOpener { inner: MemoryOpener::default(), hook: Arc::new(FailWrites(fail.clone())) });
        let exec = Executor::new(Arc::new(kv.clone()), opener.clone());
        block_on(async {
            exec.execute("CREATE DATABASE bank").await.unwrap();
            exec.execute("CREATE TABLE bank.accounts").await.unwrap();
        });
        let table = block_on(exec.table_id("bank", "accounts", None)).unwrap();
        Sim { clock, kv, exec, opener, fail, table, rows: 0 }
    }

    /// A new executor over the same store and storage: a restarted scheduler.
    fn restart(&mut self) {
        self.exec = Executor::new(Arc::new(self.kv.clone()), self.opener.clone());
    }

    fn sql(&self, statement: &str) -> QueryResult {
        block_on(self.exec.execute(statement)).unwrap_or_else(|e| panic!("{statement}: {e}"))
    }

    fn set_time(&self, t: u64) {
        self.clock.store(t, Ordering::SeqCst);
    }

    /// Moves the clock to `t`, writes one row, and runs the due schedules.
    fn tick(&mut self, t: u64) -> Vec<ScheduledRun> {
        self.set_time(t);
        self.rows += 1;
        self.kv.write_sync(vec![(keys::table_key(self.table, &self.rows.to_be_bytes()), Some(b"v".to_vec()))]);
        block_on(self.exec.run_due_schedules(Timestamp::from_nanos(t))).unwrap()
    }

    /// Ticks every `step` from `from` (inclusive) to `to` (exclusive); returns the successful
    /// runs as (time, kind) and every other outcome as (time, outcome).
    #[allow(clippy::type_complexity)]
    fn run(&mut self, from: u64, to: u64, step: u64) -> (Vec<(String, BackupKind)>, Vec<(String, RunOutcome)>) {
        let (mut ok, mut other) = (Vec::new(), Vec::new());
        let mut t = from;
        while t < to {
            for r in self.tick(t) {
                match r.outcome {
                    RunOutcome::Succeeded(_) => ok.push((show(t), r.kind)),
                    o => other.push((show(t), o)),
                }
            }
            t += step;
        }
        (ok, other)
    }

    /// The collection's backups (none while nothing is stored there: SHOW BACKUPS refuses it).
    fn show_backups(&self) -> Vec<String> {
        match block_on(self.exec.execute(&format!("SHOW BACKUPS IN '{URI}'"))) {
            Ok(r) => r.rows.iter().map(|row| row[0].to_string()).collect(),
            Err(strata_core::Error::NotFound { .. }) => Vec::new(),
            Err(e) => panic!("SHOW BACKUPS: {e}"),
        }
    }

    /// Each layer of the chain at `path`: (end time, full?).
    fn layers(&self, path: &str) -> Vec<(String, bool)> {
        let source = BackupSource { subdir: Some(Subdir::Path(path.into())), layers: vec![vec![URI.into()]] };
        let chain = block_on(self.exec.open_chain(&source)).unwrap();
        chain.layers.iter().map(|l| (show(l.manifest.end_time.wall), l.manifest.is_full())).collect()
    }

    fn schedule_column(&self, column: &str) -> Vec<Value> {
        let r = self.sql("SHOW SCHEDULES");
        (0..r.rows.len()).map(|i| r.get(i, column).unwrap().clone()).collect()
    }
}

fn dated(t: u64) -> String {
    format!("/{}", strata_core::dated_subdir(Timestamp::from_nanos(t)))
}

#[test]
fn daily_incrementals_with_weekly_fulls_over_three_months() {
    // Thursday 2026-01-01 10:00.
    let start = at(2026, 1, 1, 10, 0);
    let mut sim = Sim::new(start);
    let created = sim.sql(&format!("CREATE SCHEDULE nightly FOR BACKUP DATABASE bank INTO '{URI}' RECURRING '@daily'"));
    // CockroachDB's columns and forms (its CREATE SCHEDULE FOR BACKUP page): a paused schedule's
    // first run is NULL, a time is a TIMESTAMPTZ, and each run is a detached job.
    assert_eq!(created.columns, ["schedule_id", "name", "status", "first_run", "schedule", "backup_stmt"]);
    assert!(created.notices.is_empty(), "{:?}", created.notices);
    let rows: Vec<Vec<String>> =
        created.rows.iter().map(|r| r.iter().map(|v| v.to_string()).collect()).collect::<Vec<_>>();
    assert_eq!(
        rows,
        vec![
            vec![
                "1".to_string(),
                "nightly".into(),
                "PAUSED: Waiting for initial backup to complete".into(),
                "NULL".into(),
                "@daily".into(),
                format!("BACKUP DATABASE bank INTO LATEST IN '{URI}' WITH detached"),
            ],
            vec![
                "2".to_string(),
                "nightly".into(),
                "ACTIVE".into(),
                show(start) + ":00+00:00",
                "@weekly".into(),
                format!("BACKUP DATABASE bank INTO '{URI}' WITH detached"),
            ],
        ]
    );

    let end = start + 91 * DAY;
    let (ok, other) = sim.run(start, end, HOUR);
    // Expected: a full now and every Sunday at midnight; an incremental every other midnight.
    let mut expected = vec![(show(start), BackupKind::Full)];
    let mut skipped = Vec::new();
    let mut day = at(2026, 1, 2, 0, 0);
    while day < end {
        let sunday = Civil::from_nanos(day).weekday() == 0;
        expected.push((show(day), if sunday { BackupKind::Full } else { BackupKind::Incremental }));
        if sunday {
            skipped.push(show(day));
        }
        day += DAY;
    }
    assert_eq!(ok, expected);
    // On Sundays the incremental is skipped: the full backup runs at the same time.
    let other_times: Vec<String> = other
        .iter()
        .map(|(t, o)| {
            assert!(matches!(o, RunOutcome::Skipped(_)), "{t}: {o:?}");
            t.clone()
        })
        .collect();
    assert_eq!(other_times, skipped);

    // Each full backup is a dated directory of the collection holding its week's incrementals.
    let fulls: Vec<u64> = std::iter::once(start)
        .chain((0..).map(|w| at(2026, 1, 4, 0, 0) + w * 7 * DAY).take_while(|t| *t < end))
        .collect();
    assert_eq!(sim.show_backups(), fulls.iter().map(|t| dated(*t)).collect::<Vec<_>>());
    for (i, full) in fulls.iter().enumerate() {
        let next = fulls.get(i + 1).copied().unwrap_or(end);
        let mut want = vec![(show(*full), true)];
        let mut d = at(2026, 1, 2, 0, 0);
        while d < next {
            if d > *full {
                want.push((show(d), false));
            }
            d += DAY;
        }
        assert_eq!(sim.layers(&dated(*full)), want, "chain of {}", show(*full));
    }

    // The latest chain restores every row written up to its last layer.
    let target = Executor::new(Arc::new(MemKv::new()), sim.opener.clone());
    block_on(target.execute(&format!("RESTORE DATABASE bank FROM LATEST IN '{URI}'"))).unwrap();
    let last_midnight = at(2026, 4, 2, 0, 0);
    assert_eq!(show(last_midnight), expected.last().unwrap().0);
    let table = block_on(target.table_id("bank", "accounts", None)).unwrap();
    let restored = target_rows(&target, table);
    let hours_until_last = (last_midnight - start) / HOUR + 1;
    assert_eq!(restored, hours_until_last);
}

fn target_rows(exec: &Executor, table: u32) -> u64 {
    let store = exec.store().clone();
    block_on(async {
        let now = store.now().await.unwrap();
        strata_core::read_span(store.as_ref(), keys::table_span(table), now).await.unwrap().len() as u64
    })
}

#[test]
fn full_backup_always_makes_every_run_full() {
    let start = at(2026, 2, 10, 15, 0);
    let mut sim = Sim::new(start);
    let created =
        sim.sql(&format!("CREATE SCHEDULE f FOR BACKUP INTO '{URI}' RECURRING '0 2 * * *' FULL BACKUP ALWAYS"));
    assert_eq!(created.rows.len(), 1);
    assert_eq!(created.get(0, "first_run").unwrap().to_string(), "2026-02-11 02:00:00+00:00");
    let (ok, other) = sim.run(start, start + 10 * DAY, HOUR);
    assert!(other.is_empty(), "{other:?}");
    let times: Vec<u64> = (0..10).map(|d| at(2026, 2, 11, 2, 0) + d * DAY).collect();
    assert_eq!(ok, times.iter().map(|t| (show(*t), BackupKind::Full)).collect::<Vec<_>>());
    assert_eq!(sim.show_backups(), times.iter().map(|t| dated(*t)).collect::<Vec<_>>());
    for t in &times {
        assert_eq!(sim.layers(&dated(*t)), vec![(show(*t), true)]);
    }
    // Without FULL BACKUP, a cadence rarer than daily also makes every backup full.
    let created = sim.sql("CREATE SCHEDULE w FOR BACKUP INTO 'memory://weekly' RECURRING '@weekly'");
    assert_eq!(created.rows.len(), 1);
    assert_eq!(created.get(0, "schedule").unwrap().to_string(), "@weekly");
}

#[test]
fn first_run_delays_the_full_and_the_incrementals_wait_for_it() {
    let start = at(2026, 3, 2, 8, 30);
    let mut sim = Sim::new(start);
    let created = sim.sql(&format!(
        "CREATE SCHEDULE h FOR BACKUP TABLE bank.accounts INTO '{URI}' RECURRING '@hourly' \
         WITH SCHEDULE OPTIONS first_run = '2026-03-03 12:00:00'"
    ));
    assert_eq!(created.get(1, "first_run").unwrap().to_string(), "2026-03-03 12:00:00+00:00");
    assert_eq!(created.get(1, "schedule").unwrap().to_string(), "@daily");
    // Nothing runs before first_run: the incremental waits for the first full.
    let (ok, other) = sim.run(start, at(2026, 3, 3, 12, 0), 10 * MINUTE);
    assert!(ok.is_empty() && other.is_empty(), "{ok:?} {other:?}");
    assert_eq!(sim.schedule_column("state")[0].to_string(), "Waiting for initial backup to complete");
    let (ok, other) = sim.run(at(2026, 3, 3, 12, 0), at(2026, 3, 4, 3, 0), 10 * MINUTE);
    let mut want = vec![("2026-03-03 12:00".to_string(), BackupKind::Full)];
    for h in 13..24 {
        want.push((format!("2026-03-03 {h}:00"), BackupKind::Incremental));
    }
    want.push(("2026-03-04 00:00".into(), BackupKind::Full));
    for h in 1..3 {
        want.push((format!("2026-03-04 0{h}:00"), BackupKind::Incremental));
    }
    assert_eq!(ok, want);
    assert_eq!(other.len(), 1, "the midnight incremental is skipped for the full: {other:?}");
    assert_eq!(sim.show_backups().len(), 2);
    assert_eq!(sim.layers(&dated(at(2026, 3, 3, 12, 0))).len(), 12);
    assert_eq!(sim.layers(&dated(at(2026, 3, 4, 0, 0))).len(), 3);
}

/// A `FULL BACKUP ALWAYS` daily schedule with the given schedule options, created at 2026-05-01 10:00.
fn daily(sim: &Sim, options: &str) -> u64 {
    let r = sim.sql(&format!(
        "CREATE SCHEDULE d FOR BACKUP INTO '{URI}' RECURRING '@daily' FULL BACKUP ALWAYS WITH SCHEDULE OPTIONS {options}"
    ));
    match r.get(0, "schedule_id").unwrap() {
        Value::Int(id) => *id as u64,
        v => panic!("{v:?}"),
    }
}

fn start_due(sim: &Sim, t: u64) -> Vec<ScheduledRun> {
    sim.set_time(t);
    block_on(sim.exec.start_due_runs(Timestamp::from_nanos(t))).unwrap()
}

fn finish(sim: &Sim, run: &mut ScheduledRun, t: u64) {
    sim.set_time(t);
    let result = block_on(sim.exec.execute_statement(&strata_core::sql::Statement::Backup(run.statement.clone())));
    block_on(sim.exec.finish_run(run, Timestamp::from_nanos(t), result)).unwrap();
    assert!(matches!(run.outcome, RunOutcome::Succeeded(_)), "{:?}", run.outcome);
}

fn outcomes(runs: &[ScheduledRun]) -> Vec<&RunOutcome> {
    runs.iter().map(|r| &r.outcome).collect()
}

#[test]
fn on_previous_running_wait_starts_when_the_previous_run_finishes() {
    let sim = Sim::new(at(2026, 5, 1, 10, 0));
    daily(&sim, "on_previous_running = 'wait'");
    let day2 = at(2026, 5, 2, 0, 0);
    let mut first = start_due(&sim, day2);
    assert_eq!(outcomes(&first), vec![&RunOutcome::Started]);
    assert_eq!(sim.schedule_column("jobs_running"), vec![Value::Int(1)]);
    // A day later the first run is still going: the next one waits, and stays due.
    assert_eq!(outcomes(&start_due(&sim, day2 + DAY)), vec![&RunOutcome::Waiting]);
    assert_eq!(outcomes(&start_due(&sim, day2 + DAY + HOUR)), vec![&RunOutcome::Waiting]);
    finish(&sim, &mut first[0], day2 + DAY + 2 * HOUR);
    // Then it starts at the next tick, and the one after is back on the cadence.
    let mut second = start_due(&sim, day2 + DAY + 3 * HOUR);
    assert_eq!(outcomes(&second), vec![&RunOutcome::Started]);
    finish(&sim, &mut second[0], day2 + DAY + 3 * HOUR);
    assert_eq!(sim.schedule_column("next_run")[0].to_string(), "2026-05-04 00:00:00+00:00");
    assert_eq!(sim.show_backups().len(), 2);
}

#[test]
fn on_previous_running_skip_skips_to_the_next_time() {
    let sim = Sim::new(at(2026, 5, 1, 10, 0));
    daily(&sim, "on_previous_running = 'skip'");
    let day2 = at(2026, 5, 2, 0, 0);
    let mut first = start_due(&sim, day2);
    let skipped = start_due(&sim, day2 + DAY);
    assert!(matches!(outcomes(&skipped)[..], [RunOutcome::Skipped(_)]), "{skipped:?}");
    assert_eq!(sim.schedule_column("next_run")[0].to_string(), "2026-05-04 00:00:00+00:00");
    assert!(start_due(&sim, day2 + DAY + HOUR).is_empty(), "skipped, not due again until the next day");
    finish(&sim, &mut first[0], day2 + DAY + 2 * HOUR);
    let mut third = start_due(&sim, day2 + 2 * DAY);
    assert_eq!(outcomes(&third), vec![&RunOutcome::Started]);
    finish(&sim, &mut third[0], day2 + 2 * DAY);
    assert_eq!(sim.show_backups().len(), 2);
}

#[test]
fn on_previous_running_start_overlaps_runs() {
    let sim = Sim::new(at(2026, 5, 1, 10, 0));
    daily(&sim, "on_previous_running = 'start'");
    let day2 = at(2026, 5, 2, 0, 0);
    let mut first = start_due(&sim, day2);
    let mut second = start_due(&sim, day2 + DAY);
    assert_eq!(outcomes(&second), vec![&RunOutcome::Started]);
    assert_eq!(sim.schedule_column("jobs_running"), vec![Value::Int(2)]);
    finish(&sim, &mut second[0], day2 + DAY + HOUR);
    finish(&sim, &mut first[0], day2 + DAY + 2 * HOUR);
    assert_eq!(sim.schedule_column("jobs_running"), vec![Value::Int(0)]);
    assert_eq!(sim.show_backups().len(), 2);
}

#[test]
fn on_execution_failure_reschedule_waits_for_the_next_time() {
    let mut sim = Sim::new(at(2026, 5, 1, 10, 0));
    daily(&sim, "on_execution_failure = 'reschedule'");
    sim.fail.store(true, Ordering::SeqCst);
    let (ok, other) = sim.run(at(2026, 5, 2, 0, 0), at(2026, 5, 2, 12, 0), 10 * MINUTE);
    assert!(ok.is_empty());
    assert!(matches!(&other[..], [(t, RunOutcome::Failed(_))] if t == "2026-05-02 00:00"), "{other:?}");
    assert!(sim.schedule_column("state")[0].to_string().starts_with("execution failed: "));
    assert!(sim.show_backups().is_empty(), "a failed backup leaves no backup");
    sim.fail.store(false, Ordering::SeqCst);
    let (ok, other) = sim.run(at(2026, 5, 2, 12, 0), at(2026, 5, 3, 1, 0), 10 * MINUTE);
    assert_eq!(ok, vec![("2026-05-03 00:00".into(), BackupKind::Full)]);
    assert!(other.is_empty());
    assert_eq!(sim.schedule_column("state"), vec![Value::Null]);
}

#[test]
fn on_execution_failure_retry_tries_again_soon() {
    let mut sim = Sim::new(at(2026, 5, 1, 10, 0));
    daily(&sim, "on_execution_failure = 'retry'");
    sim.fail.store(true, Ordering::SeqCst);
    let day2 = at(2026, 5, 2, 0, 0);
    let (_, other) = sim.run(day2, day2 + 2 * RETRY_AFTER_NANOS, RETRY_AFTER_NANOS);
    assert_eq!(other.len(), 2, "failed, then failed again a retry interval later: {other:?}");
    sim.fail.store(false, Ordering::SeqCst);
    let (ok, _) = sim.run(day2 + 2 * RETRY_AFTER_NANOS, day2 + 3 * RETRY_AFTER_NANOS, RETRY_AFTER_NANOS);
    assert_eq!(ok, vec![("2026-05-02 00:02".into(), BackupKind::Full)]);
    assert_eq!(sim.schedule_column("next_run")[0].to_string(), "2026-05-03 00:00:00+00:00");
}

#[test]
fn on_execution_failure_pause_pauses_until_resumed() {
    let mut sim = Sim::new(at(2026, 5, 1, 10, 0));
    let id = daily(&sim, "on_execution_failure = 'pause'");
    sim.fail.store(true, Ordering::SeqCst);
    let (_, other) = sim.run(at(2026, 5, 2, 0, 0), at(2026, 5, 2, 1, 0), HOUR);
    assert_eq!(other.len(), 1);
    sim.fail.store(false, Ordering::SeqCst);
    assert_eq!(sim.schedule_column("schedule_status"), vec![Value::from("PAUSED")]);
    let (ok, other) = sim.run(at(2026, 5, 2, 1, 0), at(2026, 5, 6, 0, 0), HOUR);
    assert!(ok.is_empty() && other.is_empty(), "a paused schedule does not run");
    sim.set_time(at(2026, 5, 6, 9, 0));
    sim.sql(&format!("RESUME SCHEDULE {id}"));
    assert_eq!(sim.schedule_column("schedule_status"), vec![Value::from("ACTIVE")]);
    let (ok, _) = sim.run(at(2026, 5, 6, 9, 0), at(2026, 5, 7, 1, 0), HOUR);
    assert_eq!(ok, vec![("2026-05-07 00:00".into(), BackupKind::Full)]);
}

#[test]
fn schedule_statements_and_a_restarted_scheduler() {
    let start = at(2026, 6, 1, 10, 0);
    let mut sim = Sim::new(start);
    let created = sim.sql(&format!("CREATE SCHEDULE s FOR BACKUP INTO '{URI}' RECURRING '@daily'"));
    assert_eq!(created.rows.len(), 2);
    // IF NOT EXISTS with an existing label creates nothing.
    let again = sim.sql(&format!("CREATE SCHEDULE IF NOT EXISTS s FOR BACKUP INTO '{URI}' RECURRING '@daily'"));
    assert!(again.rows.is_empty());
    assert_eq!(sim.schedule_column("id"), vec![Value::Int(1), Value::Int(2)]);
    assert_eq!(
        sim.sql("SHOW SCHEDULES").columns,
        [
            "id",
            "label",
            "schedule_status",
            "next_run",
            "state",
            "recurrence",
            "jobs_running",
            "created",
            "command",
            "schedule_options"
        ]
    );
    let (ok, _) = sim.run(start, start + HOUR, HOUR);
    assert_eq!(ok, vec![(show(start), BackupKind::Full)]);

    // A restarted scheduler (a new executor over the same store) continues where it stopped.
    sim.restart();
    let (ok, _) = sim.run(start + HOUR, start + DAY, HOUR);
    assert_eq!(ok, vec![("2026-06-02 00:00".into(), BackupKind::Incremental)]);

    sim.sql("PAUSE SCHEDULE 1");
    assert_eq!(sim.schedule_column("schedule_status"), vec![Value::from("PAUSED"), Value::from("ACTIVE")]);
    let (ok, _) = sim.run(start + DAY, start + 2 * DAY, HOUR);
    assert!(ok.is_empty(), "the incremental is paused; the weekly full is not due: {ok:?}");
    sim.sql("DROP SCHEDULE 1");
    sim.sql("DROP SCHEDULE 2");
    assert!(sim.sql("SHOW SCHEDULES").rows.is_empty());
    let err = block_on(sim.exec.execute("PAUSE SCHEDULE 1")).unwrap_err();
    assert_eq!(err.to_string(), "schedule not found: 1");

    // RECURRING NEVER: one full backup, then the schedule is gone.
    let once = sim.sql("CREATE SCHEDULE once FOR BACKUP INTO 'memory://once' RECURRING NEVER");
    assert_eq!(once.get(0, "schedule").unwrap().to_string(), "NEVER");
    let (ok, _) = sim.run(start + 2 * DAY, start + 3 * DAY, HOUR);
    assert_eq!(ok, vec![(show(start + 2 * DAY), BackupKind::Full)]);
    assert!(sim.sql("SHOW SCHEDULES").rows.is_empty());

    let err = block_on(sim.exec.execute(&format!("CREATE SCHEDULE x FOR BACKUP INTO '{URI}' RECURRING 'often'")))
        .unwrap_err();
    assert!(err.to_string().contains("invalid schedule expression: 'often'"), "{err}");
}

#[test]
fn a_restarted_scheduler_forgets_runs_of_a_dead_process() {
    let mut sim = Sim::new(at(2026, 5, 1, 10, 0));
    daily(&sim, "on_previous_running = 'wait'");
    let day2 = at(2026, 5, 2, 0, 0);
    let started = start_due(&sim, day2);
    assert_eq!(outcomes(&started), vec![&RunOutcome::Started]);
    drop(started); // the process dies mid-backup
    sim.restart();
    assert_eq!(block_on(sim.exec.recover_schedules()).unwrap(), 1);
    assert_eq!(sim.schedule_column("jobs_running"), vec![Value::Int(0)]);
    let (ok, other) = sim.run(day2 + DAY, day2 + DAY + HOUR, HOUR);
    assert_eq!(ok, vec![("2026-05-03 00:00".into(), BackupKind::Full)]);
    assert!(other.is_empty());
}

#[test]
fn a_full_cluster_restore_brings_schedules_back_paused_and_no_jobs() {
    let sim = Sim::new(at(2026, 1, 5, 0, 0));
    sim.sql("CREATE SCHEDULE nightly FOR BACKUP INTO 'memory://sched' RECURRING '@daily' FULL BACKUP ALWAYS");
    sim.sql("BACKUP INTO 'memory://cluster' WITH detached");
    sim.sql("BACKUP INTO 'memory://cluster2'");
    let target = Executor::new(Arc::new(MemKv::new()), sim.opener.clone());
    block_on(target.execute("RESTORE FROM LATEST IN 'memory://cluster2'")).unwrap();
    let schedules = block_on(target.execute("SHOW SCHEDULES")).unwrap();
    assert_eq!(schedules.rows.len(), 1, "{schedules}");
    assert_eq!(schedules.get(0, "schedule_status").unwrap().to_string().to_lowercase(), "paused", "{schedules}");
    let state = schedules.get(0, "state").unwrap().to_string();
    assert!(state.contains("paused by a full cluster restore"), "{schedules}");
    let jobs = block_on(target.execute("SHOW JOBS")).unwrap();
    assert!(jobs.rows.is_empty(), "the source's jobs came along: {jobs}");
}

/// The environment of a scheduler process, for the tests: a name to value map.
struct Env(std::collections::HashMap<String, String>);

impl strata_core::SecretResolver for Env {
    fn resolve(&self, source: &strata_core::SecretSource) -> strata_core::Result<strata_core::sql::Secret> {
        match source {
            strata_core::SecretSource::Env(name) => match self.0.get(name) {
                Some(v) => Ok(strata_core::sql::Secret(v.clone())),
                None => Err(strata_core::Error::Precondition(format!("{source} is not set"))),
            },
            other => Err(strata_core::Error::Precondition(format!("{other} cannot be read here"))),
        }
    }
}

#[test]
fn schedules_hold_references_and_say_what_must_be_present_when_they_run() {
    let kv = MemKv::with_clock(Arc::new(|| at(2026, 1, 1, 10, 0)));
    let exec = Executor::new(Arc::new(kv.clone()), Arc::new(MemoryOpener::default()))
        .with_entropy(strata_core::Entropy::new(|b| {
            b.fill(7);
            Ok(())
        }))
        .with_kdf_params(strata_core::KdfParams::argon2id(8, 1, 1).unwrap());
    block_on(async {
        exec.execute("CREATE DATABASE bank").await.unwrap();
        // A secret typed into a schedule is refused, naming what and what to write instead.
        for typed in [
            "CREATE SCHEDULE s FOR BACKUP INTO 'memory://s' WITH encryption_passphrase = 'hunter2pw' RECURRING '@daily'",
            "CREATE SCHEDULE s FOR BACKUP INTO 'memory://s?AWS_SECRET_ACCESS_KEY=s3cr3tkey' RECURRING '@daily'",
            "CREATE SCHEDULE s FOR BACKUP INTO 'memory://u:s3cr3tkey@s' RECURRING '@daily'",
        ] {
            let e = exec.execute(typed).await.unwrap_err().to_string();
            assert!(e.contains("a schedule stores no secrets") && e.contains("encryption_passphrase_env"), "{e}");
            assert!(!e.contains("hunter2pw") && !e.contains("s3cr3tkey"), "{e}");
        }
        assert!(exec.schedules().await.unwrap().is_empty());
        let created = exec
            .execute(
                "CREATE SCHEDULE s FOR BACKUP DATABASE bank INTO 'memory://s?AWS_SECRET_ACCESS_KEY=${S3_KEY}' \
                 WITH encryption_passphrase_env = 'BACKUP_PASS' RECURRING '@daily' FULL BACKUP ALWAYS",
            )
            .await
            .unwrap();
        assert_eq!(
            created.notices,
            ["the schedule's runs read environment variable BACKUP_PASS, environment variable S3_KEY when they \
              start: each must be present in the process that runs them"]
        );
        assert!(created
            .get(0, "backup_stmt")
            .unwrap()
            .to_string()
            .ends_with("WITH encryption_passphrase_env = 'BACKUP_PASS', detached"));
        // Run where the environment lacks the passphrase: the run fails naming it.
        let now = Timestamp::from_nanos(at(2026, 1, 2, 0, 0));
        let runs = exec.run_due_schedules(now).await.unwrap();
        let RunOutcome::Failed(e) = &runs[0].outcome else { panic!("{runs:?}") };
        assert!(e.to_string().contains("environment variable BACKUP_PASS"), "{e}");
        // With it, the backup runs, encrypted with it.
        let env =
            Env([("BACKUP_PASS", "pass phrase"), ("S3_KEY", "k")].map(|(k, v)| (k.to_string(), v.to_string())).into());
        let exec = exec.with_secret_resolver(Arc::new(env));
        let runs = exec.run_due_schedules(Timestamp::from_nanos(at(2026, 1, 3, 0, 0))).await.unwrap();
        assert!(matches!(runs[0].outcome, RunOutcome::Succeeded(_)), "{runs:?}");
        let e = exec.execute("SHOW BACKUP LATEST IN 'memory://s'").await.unwrap_err().to_string();
        assert!(e.contains("encrypted"), "{e}");
        exec.execute("SHOW BACKUP LATEST IN 'memory://s' WITH encryption_passphrase = 'pass phrase'").await.unwrap();
    });
}

/// As CockroachDB: a collection that already holds backups (another schedule's, maybe of other
/// targets) takes a new schedule only with `ignore_existing_backups`.
#[test]
fn a_collection_with_backups_needs_ignore_existing_backups() {
    let sim = Sim::new(at(2026, 7, 1, 10, 0));
    sim.sql(&format!("BACKUP DATABASE bank INTO '{URI}'"));
    let statement = format!("CREATE SCHEDULE s FOR BACKUP INTO '{URI}' RECURRING '@daily'");
    let err = block_on(sim.exec.execute(&statement)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "backups already created in {URI}; to ignore existing backups, the schedule can be created with the \
             'ignore_existing_backups' option"
        )
    );
    assert!(sim.schedule_column("id").is_empty());
    let created = sim.sql(&format!("{statement} WITH SCHEDULE OPTIONS ignore_existing_backups"));
    assert_eq!(created.rows.len(), 2);
}

/// `WITH detached`, as CockroachDB prints a schedule's statement, is taken: every run is the
/// schedule's job, run by the scheduler.
#[test]
fn detached_in_create_schedule_is_taken() {
    let start = at(2026, 7, 1, 10, 0);
    let mut sim = Sim::new(start);
    let created =
        sim.sql("CREATE SCHEDULE d FOR BACKUP INTO 'memory://det' WITH detached RECURRING '@daily' FULL BACKUP ALWAYS");
    assert_eq!(created.get(0, "backup_stmt").unwrap().to_string(), "BACKUP INTO 'memory://det' WITH detached");
    let (ok, other) = sim.run(start, start + DAY, HOUR);
    assert!(other.is_empty(), "{other:?}");
    assert_eq!(ok, vec![(show(at(2026, 7, 2, 0, 0)), BackupKind::Full)]);
    // The only jobs are the schedule's runs (no detached job beside them).
    let jobs = sim.sql("SHOW JOBS");
    assert_eq!(jobs.rows.len(), 1, "{jobs:?}");
    assert_eq!(jobs.get(0, "schedule_id").unwrap(), &Value::Int(1), "{jobs:?}");
}

/// Fails the size check of every LATEST: a collection strata cannot read at creation (its
/// credentials may be references only the running process reads).
struct UnreadableLatest;

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl Hook for UnreadableLatest {
    async fn before(&self, call: Call, path: &str) -> Result<()> {
        if matches!(call, Call::Size) && path.ends_with("LATEST") {
            return Err(Error::Storage {
                path: path.into(),
                message: "403 Forbidden".into(),
                status: Status::Permanent,
            });
        }
        Ok(())
    }
}

#[test]
fn a_collection_that_cannot_be_checked_takes_the_schedule_with_a_notice() {
    let opener = Arc::new(HookedOpener { inner: MemoryOpener::default(), hook: Arc::new(UnreadableLatest) });
    let exec = Executor::new(Arc::new(MemKv::new()), opener);
    let created =
        block_on(exec.execute("CREATE SCHEDULE s FOR BACKUP INTO 'memory://denied' RECURRING '@daily'")).unwrap();
    assert_eq!(created.rows.len(), 2);
    assert_eq!(created.notices.len(), 1, "{:?}", created.notices);
    assert!(
        created.notices[0].starts_with("could not check whether memory://denied holds backups: ")
            && created.notices[0].ends_with("403 Forbidden"),
        "{:?}",
        created.notices
    );
}
