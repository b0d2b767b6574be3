//! The `strata schedule run` daemon against a real embedded store: `--once`, and a daemon that
//! runs due schedules until it is stopped.

use std::path::Path;
use std::process::{Command, Output, Stdio};

mod cli_support;
use std::time::{Duration, Instant};

fn strata(store: &Path, args: &[&str]) -> Output {
    cli_support::strata(store, args).ok().out
}

fn sql(store: &Path, statement: &str) -> String {
    String::from_utf8(strata(store, &["--format", "json", "sql", statement]).stdout).unwrap()
}

fn manifests(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                manifests(&p)
            } else {
                usize::from(p.file_name().is_some_and(|n| n == "BACKUP_MANIFEST"))
            }
        })
        .sum()
}

#[test]
fn schedule_run_once_takes_the_first_full_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    strata(&store, &["workload", "init", "bank", "--rows", "100"]);
    let created =
        sql(&store, "CREATE SCHEDULE nightly FOR BACKUP DATABASE bank INTO 'nodelocal://1/c' RECURRING '@daily'");
    assert!(created.contains("Waiting for initial backup to complete"), "{created}");
    assert!(created.contains("\"schedule\": \"@weekly\""), "{created}");
    let out = strata(&store, &["schedule", "run", "--once"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("schedule 2 (nightly, Full): backup succeeded /"), "{err}");
    assert_eq!(manifests(&store.join("extern/c")), 1);
    let backups = sql(&store, "SHOW BACKUPS IN 'nodelocal://1/c'");
    assert_eq!(backups.matches("\"path\"").count(), 1, "{backups}");
    // The full backup ran: the incremental schedule is active now, waiting for midnight.
    let schedules = sql(&store, "SHOW SCHEDULES");
    assert_eq!(schedules.matches("\"ACTIVE\"").count(), 2, "{schedules}");
    // Nothing else is due.
    let out = strata(&store, &["schedule", "run", "--once"]);
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn schedule_run_daemon_runs_due_schedules_until_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    strata(&store, &["workload", "init", "bank", "--rows", "100"]);
    sql(&store, "CREATE SCHEDULE hourly FOR BACKUP INTO 'nodelocal://1/c' RECURRING '@hourly'");
    let child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--store")
        .arg(&store)
        .args(["schedule", "run"])
        .env_remove("STRATA_STORE")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while manifests(&store.join("extern/c")) == 0 {
        assert!(Instant::now() < deadline, "the daemon took no backup");
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIGTERM stops it cleanly.
    let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("backup succeeded") && err.contains("schedule run: stopping"), "{err}");
    // The store is free again and shows the schedules.
    let schedules = sql(&store, "SHOW SCHEDULES");
    assert_eq!(schedules.matches("\"hourly\"").count(), 2, "{schedules}");
}

#[test]
fn a_detached_backup_is_run_by_the_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    strata(&store, &["workload", "init", "bank", "--rows", "100"]);
    // A one-shot process cannot run the job: it is recorded as pending, with its id.
    let r = sql(&store, "BACKUP DATABASE bank INTO 'nodelocal://1/j' WITH detached");
    assert!(r.contains("\"job_id\": 1") && r.contains("\"status\": \"pending\""), "{r}");
    assert!(sql(&store, "SHOW JOBS").contains("\"status\": \"pending\""));
    let out = strata(&store, &["schedule", "run", "--once"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("job 1: started") && err.contains("job 1: succeeded"), "{err}");
    let jobs = sql(&store, "SHOW JOB 1");
    assert!(jobs.contains("\"status\": \"succeeded\"") && jobs.contains("\"fraction_completed\": \"1.000\""), "{jobs}");
    assert_eq!(manifests(&store.join("extern/j")), 1);
}
