//! `ALTER BACKUP SCHEDULE` and `SHOW SCHEDULE id`, run against the store and the scheduler.

use super::*;
use strata_core::{OnFailure, OnPreviousRunning};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn fails(sim: &Sim, statement: &str) -> String {
    match block_on(sim.exec.execute(statement)) {
        Ok(r) => panic!("{statement}: succeeded with {r:?}"),
        Err(e) => e.to_string(),
    }
}

fn cell(r: &QueryResult, row: usize, column: &str) -> String {
    r.get(row, column).unwrap_or_else(|| panic!("no {column} in {r:?}")).to_string()
}

#[test]
fn set_full_backup_splits_a_full_only_schedule_and_always_folds_it_back() {
    let start = at(2026, 7, 1, 10, 0); // a Wednesday
    let mut sim = Sim::new(start);
    sim.sql(&format!("CREATE SCHEDULE s FOR BACKUP INTO '{URI}' RECURRING '@daily' FULL BACKUP ALWAYS"));
    // Daily fulls become weekly fulls plus daily incrementals (a new schedule, 2).
    let r = sim.sql("ALTER BACKUP SCHEDULE 1 SET FULL BACKUP '@weekly'");
    assert_eq!(r.columns, ["schedule_id", "name", "status", "first_run", "schedule", "backup_stmt"]);
    assert_eq!(r.rows.len(), 2);
    assert_eq!((cell(&r, 0, "schedule_id"), cell(&r, 0, "schedule")), ("2".into(), "@daily".into()));
    assert_eq!(cell(&r, 0, "status"), "PAUSED: Waiting for initial backup to complete");
    assert_eq!(cell(&r, 0, "backup_stmt"), format!("BACKUP INTO LATEST IN '{URI}' WITH detached"));
    assert_eq!((cell(&r, 1, "schedule_id"), cell(&r, 1, "schedule")), ("1".into(), "@weekly".into()));
    assert_eq!(cell(&r, 1, "first_run"), "2026-07-05 00:00:00+00:00");
    // Kept in the store: a restarted scheduler runs the new pair.
    sim.restart();
    let (ok, other) = sim.run(start, at(2026, 7, 8, 1, 0), HOUR);
    let mut want = vec![("2026-07-05 00:00".to_string(), BackupKind::Full)];
    want.extend(["06", "07", "08"].map(|d| (format!("2026-07-{d} 00:00"), BackupKind::Incremental)));
    assert_eq!(ok, want);
    assert!(other.is_empty(), "the incremental waited for the full: {other:?}");

    // Named by its incremental: ALWAYS drops the incremental, the full takes its cadence.
    let r = sim.sql("ALTER BACKUP SCHEDULE 2 SET FULL BACKUP ALWAYS");
    assert_eq!(r.rows.len(), 1);
    assert_eq!((cell(&r, 0, "schedule_id"), cell(&r, 0, "schedule")), ("1".into(), "@daily".into()));
    assert_eq!(sim.schedule_column("id"), vec![Value::Int(1)]);
    assert_eq!(fails(&sim, "SHOW SCHEDULE 2"), "schedule not found: 2");
    let (ok, _) = sim.run(at(2026, 7, 8, 1, 0), at(2026, 7, 10, 1, 0), HOUR);
    assert_eq!(ok, vec![("2026-07-09 00:00".into(), BackupKind::Full), ("2026-07-10 00:00".into(), BackupKind::Full)]);
}

#[test]
fn set_recurring_options_and_execute_immediately() {
    let start = at(2026, 8, 3, 9, 0);
    let mut sim = Sim::new(start);
    sim.sql(&format!("CREATE SCHEDULE s FOR BACKUP INTO '{URI}' RECURRING '@hourly' FULL BACKUP '@daily'"));
    // RECURRING on a pair is the incremental's cadence; options apply to both; commands combine.
    let r = sim.sql(
        "ALTER BACKUP SCHEDULE 2 SET RECURRING '*/30 * * * *', SET WITH revision_history, \
         SET SCHEDULE OPTION on_execution_failure = 'pause', SET SCHEDULE OPTION on_previous_running = 'skip', \
         SET WITH encryption_passphrase_env = 'BACKUP_PASS', SET LABEL 'halfhourly'",
    );
    assert_eq!(cell(&r, 0, "schedule"), "*/30 * * * *");
    assert_eq!(cell(&r, 1, "schedule"), "@daily");
    for row in 0..2 {
        assert_eq!(cell(&r, row, "name"), "halfhourly");
        assert!(
            cell(&r, row, "backup_stmt")
                .ends_with("WITH revision_history, encryption_passphrase_env = 'BACKUP_PASS', detached"),
            "{r:?}"
        );
    }
    sim.restart();
    let inc = block_on(sim.exec.schedule(1)).unwrap();
    let full = block_on(sim.exec.schedule(2)).unwrap();
    assert_eq!((inc.on_failure, full.on_failure), (OnFailure::Pause, OnFailure::Pause));
    assert_eq!(full.on_previous_running, OnPreviousRunning::Skip);
    assert_eq!(inc.on_previous_running, OnPreviousRunning::Wait, "incrementals always wait, as in CockroachDB");
    assert_eq!(full.label, "halfhourly");
    assert!(inc.backup.options.revision_history && full.backup.options.revision_history);

    // SHOW SCHEDULE: SHOW SCHEDULES' row of one schedule.
    let one = sim.sql("SHOW SCHEDULE 1");
    assert_eq!(one.columns, sim.sql("SHOW SCHEDULES").columns);
    assert_eq!((one.rows.len(), cell(&one, 0, "recurrence")), (1, "*/30 * * * *".into()));
    assert_eq!(fails(&sim, "SHOW SCHEDULE 9"), "schedule not found: 9");

    // EXECUTE IMMEDIATELY: the incremental is paused (waiting for its full), so it is refused;
    // EXECUTE FULL IMMEDIATELY runs the full at the next tick instead of at midnight.
    assert_eq!(
        fails(&sim, "ALTER BACKUP SCHEDULE 1 EXECUTE IMMEDIATELY"),
        "schedule 1 is paused: cannot execute a paused schedule; use RESUME SCHEDULE instead"
    );
    let t = start + 10 * MINUTE;
    sim.set_time(t);
    let r = sim.sql("ALTER BACKUP SCHEDULE 1 EXECUTE FULL IMMEDIATELY");
    assert_eq!(cell(&r, 1, "first_run"), "2026-08-03 09:10:00+00:00");
    let runs = sim.tick(t);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].kind, BackupKind::Full);
    assert!(matches!(&runs[0].outcome, RunOutcome::Failed(e) if e.to_string().contains("BACKUP_PASS")), "{runs:?}");
    // ... and the full schedule paused itself, as its new on_execution_failure says.
    assert!(block_on(sim.exec.schedule(2)).unwrap().paused);
}

#[test]
fn alter_refuses_what_cockroachdb_refuses_and_changes_nothing() {
    let sim = Sim::new(at(2026, 9, 1, 0, 0));
    sim.sql(&format!("CREATE SCHEDULE s FOR BACKUP INTO '{URI}' RECURRING '@hourly' FULL BACKUP '@daily'"));
    let before = block_on(sim.exec.schedules()).unwrap();
    for (statement, message) in [
        (
            "ALTER BACKUP SCHEDULE 2 SET RECURRING '@weekly'",
            "incremental backups must occur more often than full backups",
        ),
        (
            "ALTER BACKUP SCHEDULE 2 SET RECURRING '@daily', SET RECURRING '@hourly'",
            "can specify SET RECURRING at most once",
        ),
        (
            "ALTER BACKUP SCHEDULE 2 SET SCHEDULE OPTION on_execution_failure = 'never'",
            "valid values are retry, reschedule, pause",
        ),
        ("ALTER BACKUP SCHEDULE 2 SET SCHEDULE OPTION first_run = 'now'", "first_run cannot be altered"),
        ("ALTER BACKUP SCHEDULE 2 SET WITH encryption_passphrase = 'hunter2'", "a schedule stores no secrets"),
        ("ALTER BACKUP SCHEDULE 2 SET INTO 's3://b?AWS_SECRET_ACCESS_KEY=s3cr3t'", "a schedule stores no secrets"),
        ("ALTER BACKUP SCHEDULE 2 SET RECURRING 'often'", "invalid schedule expression: 'often'"),
        ("ALTER BACKUP SCHEDULE 7 SET RECURRING '@daily'", "schedule not found: 7"),
    ] {
        let e = fails(&sim, statement);
        assert!(e.contains(message), "{statement}: {e}");
        assert!(!e.contains("hunter2") && !e.contains("s3cr3t"), "{e}");
    }
    assert_eq!(block_on(sim.exec.schedules()).unwrap(), before, "a refused ALTER changes nothing");
    // An incremental whose full schedule was dropped cannot be altered.
    sim.sql("DROP SCHEDULE 2");
    let e = fails(&sim, "ALTER BACKUP SCHEDULE 1 SET RECURRING '@daily'");
    assert!(e.contains("incremental backup schedule 1 has no corresponding full backup schedule"), "{e}");
}

#[test]
fn set_schedule_option_takes_the_retention_options_for_the_pair() {
    let sim = Sim::new(at(2026, 8, 3, 9, 0));
    sim.sql(&format!("CREATE SCHEDULE s FOR BACKUP INTO '{URI}' RECURRING '@hourly' FULL BACKUP '@daily'"));
    sim.sql("ALTER BACKUP SCHEDULE 1 SET SCHEDULE OPTION keep_daily = 7, SET SCHEDULE OPTION keep_last = 3");
    let options = sim.schedule_column("schedule_options");
    assert_eq!(options.len(), 2);
    for o in options {
        let o = o.to_string();
        assert!(o.contains("keep_last = 3") && o.contains("keep_daily = 7"), "{o}");
    }
    assert!(fails(&sim, "ALTER BACKUP SCHEDULE 1 SET SCHEDULE OPTION keep_last = 'x'").contains("keep_last"));
}
