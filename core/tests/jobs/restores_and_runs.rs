//! `RESTORE … WITH detached` jobs, and the runs schedules start, in `SHOW JOBS`.

use super::*;
use strata_core::{JobStatus, KvSource, RunOutcome, Timestamp};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn cell(r: &QueryResult, column: &str) -> String {
    r.get(0, column).unwrap_or_else(|| panic!("no {column} in {r:?}")).to_string()
}

fn databases(s: &Setup) -> Vec<String> {
    s.sql("SHOW DATABASES").rows.iter().map(|r| r[0].to_string()).collect()
}

#[test]
fn a_detached_restore_is_a_job_that_runs_in_the_background() {
    let s = setup();
    s.sql("BACKUP DATABASE d INTO 'memory://r'");
    let r = s.sql("RESTORE DATABASE d FROM LATEST IN 'memory://r' WITH new_db_name = 'e', detached");
    assert_eq!(r.columns, ["job_id", "status"]);
    let id = job_id(&r);
    assert_eq!(s.field(id, "status"), "running");
    assert_eq!(s.field(id, "job_type"), "RESTORE");
    assert_eq!(s.field(id, "description"), "RESTORE DATABASE d FROM LATEST IN 'memory://r' WITH new_db_name = 'e'");
    assert!(!databases(&s).contains(&"e".to_string()), "nothing is restored before the job runs");
    s.spawner.poll();
    assert_eq!(s.spawner.pending(), 0);
    assert_eq!(s.field(id, "status"), "succeeded", "{:?}", s.job(id));
    assert_eq!(s.field(id, "rows"), "600");
    assert_eq!(s.field(id, "fraction_completed"), "1.000");
    assert_eq!(s.sql("SHOW TABLES FROM e").rows.len(), 2);
    // A restore job is canceled, not paused.
    let err = block_on(s.exec.execute(&format!("PAUSE JOB {id}"))).unwrap_err();
    assert!(err.to_string().contains("CANCEL JOB stops it"), "{err}");
}

#[test]
fn a_canceled_restore_publishes_nothing() {
    let s = setup();
    s.sql("BACKUP DATABASE d INTO 'memory://r'");
    let id = job_id(&s.sql("RESTORE DATABASE d FROM LATEST IN 'memory://r' WITH new_db_name = 'e', detached"));
    s.sql(&format!("CANCEL JOB {id}"));
    s.spawner.poll();
    assert_eq!(s.spawner.pending(), 0);
    assert_eq!(s.field(id, "status"), "canceled");
    assert!(!databases(&s).contains(&"e".to_string()), "{:?}", databases(&s));
    let err = block_on(s.exec.execute(&format!("CANCEL JOB {id}"))).unwrap_err();
    assert!(err.to_string().contains("job is canceled") || err.to_string().contains("is canceled"), "{err}");
}

#[test]
fn without_a_spawner_a_detached_restore_waits_for_a_host_to_adopt_it() {
    let s = setup();
    s.sql("BACKUP DATABASE d INTO 'memory://r'");
    let plain = Executor::new(Arc::new(s.kv.clone()), Arc::new(s.memory.clone()));
    let r = block_on(plain.execute("RESTORE DATABASE d FROM LATEST IN 'memory://r' WITH new_db_name = 'p', detached"))
        .unwrap();
    assert_eq!(r.get(0, "status"), Some(&Value::from("pending")));
    let id = job_id(&r);
    // A passphrase typed in could not reach the host that runs it: refused, and no job recorded.
    let err =
        block_on(plain.execute(
            "RESTORE DATABASE d FROM LATEST IN 'memory://r' WITH encryption_passphrase = 'Zq9secret', detached",
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains("the encryption passphrase") && !err.contains("Zq9secret"), "{err}");
    assert_eq!(s.sql("SHOW JOBS").rows.len(), 1);
    // A reference is read by the host that adopts it: this one has no secrets, so it fails,
    // naming the reference.
    let r = block_on(plain.execute(
        "RESTORE DATABASE d FROM LATEST IN 'memory://r?AWS_SECRET_ACCESS_KEY=${ZQ_KEY}' WITH new_db_name = 'q', detached",
    ))
    .unwrap();
    let unresolved = job_id(&r);
    assert_eq!(block_on(s.exec.adopt_jobs()).unwrap(), vec![id as u64]);
    s.spawner.poll();
    assert_eq!(s.field(id, "status"), "succeeded", "{:?}", s.job(id));
    assert_eq!(s.sql("SHOW TABLES FROM p").rows.len(), 2);
    assert_eq!(s.field(unresolved, "status"), "failed");
    assert!(s.field(unresolved, "error").contains("ZQ_KEY"), "{:?}", s.job(unresolved));
}

#[test]
fn show_jobs_lists_the_runs_schedules_start() {
    let s = setup();
    let id = job_id(&s.sql("BACKUP DATABASE d INTO 'memory://j' WITH detached"));
    s.spawner.poll();
    let created = s.sql(
        "CREATE SCHEDULE n FOR BACKUP DATABASE d INTO 'memory://s' RECURRING '@daily' FULL BACKUP ALWAYS \
         WITH SCHEDULE OPTIONS first_run = 'now'",
    );
    let schedule = cell(&created, "schedule_id");
    let now = block_on(s.kv.now()).unwrap();
    let runs = block_on(s.exec.run_due_schedules(now)).unwrap();
    assert!(matches!(runs[0].outcome, RunOutcome::Succeeded(_)), "{runs:?}");
    let run = runs[0].run_id.unwrap() as i64;
    assert!(run > id, "a run takes the next job id");
    let jobs = s.sql("SHOW JOBS");
    assert_eq!(jobs.columns.last().map(String::as_str), Some("schedule_id"));
    assert_eq!(jobs.rows.len(), 2);
    assert_eq!(jobs.rows[0][0], Value::Int(id));
    assert_eq!(jobs.rows[0].last(), Some(&Value::Null), "a detached backup has no schedule");
    assert_eq!(s.field(run, "schedule_id"), schedule);
    assert_eq!(s.field(run, "job_type"), "BACKUP");
    assert_eq!(s.field(run, "status"), "succeeded");
    assert_eq!(s.field(run, "rows"), "600");
    assert_eq!(s.field(run, "description"), "BACKUP DATABASE d INTO 'memory://s'");
    let err = block_on(s.exec.execute(&format!("PAUSE JOB {run}"))).unwrap_err();
    assert!(err.to_string().contains(&format!("PAUSE, RESUME or DROP SCHEDULE {schedule}")), "{err}");

    // A run whose scheduler died shows as failed once a scheduler starts again.
    let later = Timestamp::from_nanos(now.wall + 2 * 24 * 3600 * 1_000_000_000);
    let started = block_on(s.exec.start_due_runs(later)).unwrap();
    let stuck = started[0].run_id.unwrap() as i64;
    assert_eq!(s.field(stuck, "status"), "running");
    assert_eq!(block_on(s.exec.recover_schedules()).unwrap(), 1);
    assert_eq!(s.field(stuck, "status"), "failed");
    assert!(s.field(stuck, "error").contains("stopped before it finished"));
    assert_eq!(block_on(s.exec.job(id as u64)).unwrap().status, JobStatus::Succeeded);
}
