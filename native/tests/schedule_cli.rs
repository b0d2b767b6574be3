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

/// Runs `strata --store STORE ARGS…` with `env` added to a clean environment; returns how it
/// ended whatever that was.
fn strata_with(store: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command.arg("--store").arg(store).args(args).env_remove("STRATA_STORE").env_remove("STRATA_PASSPHRASE");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run strata")
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().flat_map(|e| if e.path().is_dir() { files(&e.path()) } else { vec![e.path()] }).collect()
}

/// Issue 13 §1: a corpus of statements carrying secrets — passphrases, AWS, Azure and WebDAV
/// credentials; interactive, detached and scheduled; succeeding and failing in different ways;
/// a schedule run with and without its environment; a plain cluster backup, a full-cluster
/// restore of it into another store, DROP SCHEDULE — leaves no secret in any byte of the store
/// directory, of the backups, or of the restored store, and in no output.
#[test]
fn no_secret_reaches_a_store_a_backup_or_an_output() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let outside = tmp.path().join("b");
    let target = tmp.path().join("t");
    strata(&store, &["workload", "init", "bank", "--rows", "50"]);
    const PASS: &str = "PassQ1interactive";
    const PASS_ENV: &str = "PassQ7fromEnv";
    let secrets = [
        PASS,
        "PassQ2detached",
        "AwsQ3secretKey",
        "AwsQ4sessionTok",
        "AzureQ5accountKey",
        "PassQ6scheduled",
        PASS_ENV,
        "DavQ8password",
        "PassQ9misplaced",
        "PassQ10wrong",
        "AwsQ11misspelled",
    ];
    let plain = format!("file://{}", outside.join("plain").display());
    // DAV_PW is left out: the schedule that needs it fails, naming it.
    let env = [("STRATA_TEST_PASS", PASS_ENV)];
    let corpus: Vec<(String, bool)> = vec![
        (format!("BACKUP DATABASE bank INTO 'nodelocal://1/enc' WITH encryption_passphrase = '{PASS}'"), false),
        ("BACKUP DATABASE bank INTO 'nodelocal://1/enc2' WITH encryption_passphrase = 'PassQ2detached', detached".into(), false),
        (
            "BACKUP INTO 's3://bucket/p?AWS_ACCESS_KEY_ID=AKIA&AWS_SECRET_ACCESS_KEY=AwsQ3secretKey\
             &AWS_SESSION_TOKEN=AwsQ4sessionTok' WITH detached"
                .into(),
            false,
        ),
        ("BACKUP INTO 'azure://c/p?AZURE_ACCOUNT_NAME=a&AZURE_ACCOUNT_SECRET=AzureQ5accountKey'".into(), false),
        ("BACKUP INTO 's3://bucket/p?AWS_ACCESS_KEY_ID=AKIA&AWS_SECRET_KEY=AwsQ11misspelled'".into(), false),
        (
            "CREATE SCHEDULE typed FOR BACKUP DATABASE bank INTO 'nodelocal://1/sched' \
             WITH encryption_passphrase = 'PassQ6scheduled' RECURRING '@daily'"
                .into(),
            false,
        ),
        ("CREATE SCHEDULE dav FOR BACKUP INTO 'https://user:DavQ8password@127.0.0.1:9/dav' RECURRING '@daily'".into(), false),
        (
            "CREATE SCHEDULE nightly FOR BACKUP DATABASE bank INTO 'nodelocal://1/sched' \
             WITH encryption_passphrase_env = 'STRATA_TEST_PASS' RECURRING '@daily'"
                .into(),
            false,
        ),
        ("CREATE SCHEDULE davref FOR BACKUP INTO 'https://user:${DAV_PW}@127.0.0.1:9/dav' RECURRING '@weekly'".into(), false),
        ("BACKUP DATABASE bank INTO 'nodelocal://1/job' WITH encryption_passphrase_env = 'STRATA_TEST_PASS', detached".into(), false),
        ("BACKUP DATABASE bank INTO 'nodelocal://1/x' WITH revision_history = 'PassQ9misplaced'".into(), false),
        (
            "RESTORE DATABASE bank FROM LATEST IN 'nodelocal://1/enc' WITH encryption_passphrase = 'PassQ10wrong', \
             new_db_name = 'b2'"
                .into(),
            false,
        ),
        // Run with the environment the references name.
        ("schedule".into(), true),
        (format!("BACKUP INTO '{plain}'"), false),
        ("DROP SCHEDULE 2".into(), false),
    ];
    let mut outputs = Vec::new();
    for (statement, with_env) in &corpus {
        let out = if statement == "schedule" {
            let out = strata_with(&store, if *with_env { &env } else { &[] }, &["schedule", "run", "--once"]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("backup failed: environment variable DAV_PW: not set"), "{err}");
            assert!(err.contains("job 1: succeeded"), "{err}");
            out
        } else {
            strata_with(&store, &[], &["sql", statement])
        };
        outputs.push(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
    }
    // What each statement printed (never the statements themselves, which hold the secrets).
    let all = outputs.join("\n");
    // What ran, ran: the interactive encrypted backup, the scheduled one and the job (both with
    // the passphrase from the environment), the plain cluster backup.
    assert_eq!(manifests(&store.join("extern/enc")), 1, "{all}");
    assert_eq!(manifests(&store.join("extern/sched")), 1, "{all}");
    assert_eq!(manifests(&store.join("extern/job")), 1, "{all}");
    assert_eq!(manifests(&outside.join("plain")), 1, "{all}");
    assert!(all.contains("a schedule stores no secrets"), "{all}");
    assert!(all.contains("this host runs no jobs"), "{all}");
    // The scheduled backup is encrypted with the passphrase from the environment.
    let show = strata_with(
        &store,
        &[],
        &["sql", &format!("SHOW BACKUP LATEST IN 'nodelocal://1/sched' WITH encryption_passphrase = '{PASS_ENV}'")],
    );
    assert!(show.status.success(), "{}", String::from_utf8_lossy(&show.stderr));
    // A full-cluster restore of the plain backup into another store brings the schedules, not
    // a secret.
    let restored = strata_with(&target, &[], &["sql", &format!("RESTORE FROM LATEST IN '{plain}'")]);
    assert!(restored.status.success(), "{}", String::from_utf8_lossy(&restored.stderr));
    let schedules = sql(&target, "SHOW SCHEDULES");
    assert!(schedules.contains("STRATA_TEST_PASS") && schedules.contains("${DAV_PW}"), "{schedules}");
    for secret in secrets {
        assert!(!all.contains(secret), "{secret} was printed:\n{all}");
        assert!(!schedules.contains(secret));
        for file in files(tmp.path()) {
            let bytes = std::fs::read(&file).unwrap();
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{secret} is in {}", file.display());
        }
    }
    assert!(files(&store).len() > 10 && !files(&target).is_empty());
}

/// Issue 17 §3: ALTER BACKUP SCHEDULE and SHOW SCHEDULE through the CLI, the daemon's runs in
/// SHOW JOBS with their schedule, and a detached restore the daemon runs.
#[test]
fn alter_a_schedule_its_runs_in_show_jobs_and_a_detached_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    strata(&store, &["workload", "init", "bank", "--rows", "100"]);
    sql(
        &store,
        "CREATE SCHEDULE n FOR BACKUP DATABASE bank INTO 'nodelocal://1/c' RECURRING '@daily' FULL BACKUP ALWAYS",
    );
    // Due at midnight; EXECUTE IMMEDIATELY makes it due now.
    let altered = sql(
        &store,
        "ALTER BACKUP SCHEDULE 1 SET LABEL 'renamed', SET SCHEDULE OPTION on_execution_failure = 'pause', \
         EXECUTE IMMEDIATELY",
    );
    assert!(altered.contains("\"name\": \"renamed\""), "{altered}");
    let shown = sql(&store, "SHOW SCHEDULE 1");
    assert!(shown.contains("\"renamed\"") && shown.matches("\"id\"").count() == 1, "{shown}");
    let out = strata(&store, &["schedule", "run", "--once"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("schedule 1 (renamed, Full): backup succeeded /"), "{err}");
    let jobs = sql(&store, "SHOW JOBS");
    assert!(
        jobs.contains("\"schedule_id\": 1")
            && jobs.contains("\"status\": \"succeeded\"")
            && !jobs.contains("\"rows\": 0,"),
        "{jobs}"
    );

    let r = sql(&store, "RESTORE DATABASE bank FROM LATEST IN 'nodelocal://1/c' WITH new_db_name = 'copy', detached");
    assert!(r.contains("\"status\": \"pending\""), "{r}");
    let id = r.split("\"job_id\": ").nth(1).and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next()).unwrap();
    let out = strata(&store, &["schedule", "run", "--once"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("job {id}: started")) && err.contains(&format!("job {id}: succeeded")), "{err}");
    let tables = sql(&store, "SHOW TABLES FROM copy");
    assert!(tables.contains("accounts"), "{tables}");
}
