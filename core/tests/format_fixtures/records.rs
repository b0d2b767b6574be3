//! Job and schedule records keep reading their older forms: committed records written by the
//! first format (a version byte `1`, then postcard) decode, through the executor, to the job and
//! the schedule the same statements make today. A store written by an older strata keeps its
//! jobs and schedules after an upgrade.
//!
//! The v1 fixtures were written, with `STRATA_WRITE_FIXTURES=1`, by this test at commit 9a1e27b,
//! before records moved to `format::envelope`; today's code writes version 2, so they are never
//! regenerated.

use std::sync::Arc;

use futures::executor::block_on;
use strata_core::{keys, sql, Executor, JobStatus, MemKv, MemoryOpener, Timestamp};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// 2026-01-02 03:04:05 UTC.
const NOW: u64 = 1_767_323_045_000_000_000;

fn store() -> MemKv {
    MemKv::with_clock(Arc::new(|| NOW))
}

fn key(prefix: &[u8], id: u64) -> Vec<u8> {
    let mut suffix = prefix.to_vec();
    suffix.extend_from_slice(&id.to_be_bytes());
    keys::system_key(&suffix)
}

/// A store holding one pending job and one (full + incremental) schedule pair, made by today's
/// code through statements.
fn made_today() -> (MemKv, Executor) {
    let kv = store();
    let exec = Executor::new(Arc::new(kv.clone()), Arc::new(MemoryOpener::default()));
    block_on(async {
        exec.execute("CREATE DATABASE bank").await.unwrap();
        exec.execute("CREATE TABLE bank.accounts").await.unwrap();
        exec.execute("BACKUP DATABASE bank INTO 'memory://jobs' WITH detached").await.unwrap();
        exec.execute(
            "CREATE SCHEDULE nightly FOR BACKUP DATABASE bank INTO 'memory://c' WITH revision_history \
             RECURRING '@daily' FULL BACKUP '@weekly'",
        )
        .await
        .unwrap();
    });
    (kv, exec)
}

fn raw(kv: &MemKv, key: &[u8]) -> Vec<u8> {
    kv.get_at(key, Timestamp::from_nanos(u64::MAX)).expect("record is stored")
}

#[test]
fn v1_job_and_schedule_records_still_read() {
    let (kv, exec) = made_today();
    // Today's records are in the envelope form: magic, then the version (little-endian).
    assert_eq!(&raw(&kv, &key(b"job/", 1))[..10], b"STRATAJB\x03\x00");
    assert_eq!(&raw(&kv, &key(b"schedule/", 1))[..10], b"STRATASC\x04\x00");
    let job: &[u8] = include_bytes!("../fixtures/job-record-v1.bin");
    let schedule: &[u8] = include_bytes!("../fixtures/schedule-record-v1.bin");
    assert_eq!(job[0], 1, "a v1 record starts with its version byte");
    assert_eq!(schedule[0], 1);

    let old = store();
    old.write_sync(vec![(key(b"job/", 1), Some(job.to_vec())), (key(b"schedule/", 1), Some(schedule.to_vec()))]);
    let reader = Executor::new(Arc::new(old.clone()), Arc::new(MemoryOpener::default()));
    block_on(async {
        assert_eq!(reader.job(1).await.unwrap(), exec.job(1).await.unwrap());
        assert_eq!(reader.schedule(1).await.unwrap(), exec.schedule(1).await.unwrap());
        // Reading rewrote them in today's form.
        assert_eq!(&raw(&old, &key(b"job/", 1))[..10], b"STRATAJB\x03\x00");
        assert_eq!(&raw(&old, &key(b"schedule/", 1))[..10], b"STRATASC\x04\x00");
        // And the executor goes on from there: a record it rewrites is in the envelope form.
        reader.execute("RESUME SCHEDULE 1").await.unwrap();
        assert!(!reader.schedule(1).await.unwrap().paused);
        assert_eq!(&raw(&old, &key(b"schedule/", 1))[..8], b"STRATASC");
        reader.execute("PAUSE JOB 1").await.unwrap();
        assert_eq!(reader.job(1).await.unwrap().status, JobStatus::Paused);
        assert_eq!(&raw(&old, &key(b"job/", 1))[..8], b"STRATAJB");
    });
}

/// The layout of a version-2 BACKUP statement, passphrase in clear (the record bodies of versions
/// 1 and 2 serialized `BackupStmt` itself, which today cannot be serialized at all).
#[derive(serde::Serialize)]
struct V2Backup {
    targets: sql::Targets,
    destination: sql::BackupDestination,
    as_of: Option<sql::AsOf>,
    incremental_from: Vec<String>,
    options: (bool, Option<String>, Vec<String>, bool),
}

#[derive(serde::Serialize)]
struct V2Job {
    id: u64,
    statement: V2Backup,
    status: JobStatus,
    created: u64,
    finished: Option<u64>,
    error: Option<String>,
    fraction: f64,
    bytes: u64,
    rows: u64,
}

#[derive(serde::Serialize)]
struct V2Schedule {
    id: u64,
    label: String,
    kind: strata_core::BackupKind,
    cron: Option<String>,
    backup: V2Backup,
    paused: bool,
    status_message: Option<String>,
    next_run: Option<u64>,
    on_failure: strata_core::OnFailure,
    on_previous_running: strata_core::OnPreviousRunning,
    paired: Option<u64>,
    running: Vec<u64>,
    last_run: Option<u64>,
    created: u64,
}

fn v2(magic: &[u8; 8], body: &impl serde::Serialize) -> Vec<u8> {
    let mut out = magic.to_vec();
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend(postcard::to_allocvec(body).unwrap());
    out
}

#[test]
fn v2_records_holding_secrets_read_without_them_and_are_scrubbed_on_read() {
    let backup = || V2Backup {
        targets: sql::Targets::Cluster,
        destination: sql::BackupDestination::Into {
            subdir: None,
            uris: vec!["memory://c?AWS_ACCESS_KEY_ID=AKIA&AWS_SECRET_ACCESS_KEY=s3cr3tkey".into()],
        },
        as_of: None,
        incremental_from: vec![],
        options: (false, Some("hunter2pass".into()), vec![], false),
    };
    let job = V2Job {
        id: 1,
        statement: backup(),
        status: JobStatus::Pending,
        created: NOW,
        finished: None,
        error: None,
        fraction: 0.0,
        bytes: 0,
        rows: 0,
    };
    let schedule = V2Schedule {
        id: 1,
        label: "old".into(),
        kind: strata_core::BackupKind::Full,
        cron: Some("@daily".into()),
        backup: backup(),
        paused: false,
        status_message: None,
        next_run: Some(NOW),
        on_failure: strata_core::OnFailure::Reschedule,
        on_previous_running: strata_core::OnPreviousRunning::Wait,
        paired: None,
        running: vec![],
        last_run: None,
        created: NOW,
    };
    let kv = store();
    kv.write_sync(vec![
        (key(b"job/", 1), Some(v2(b"STRATAJB", &job))),
        (key(b"schedule/", 1), Some(v2(b"STRATASC", &schedule))),
    ]);
    let exec = Executor::new(Arc::new(kv.clone()), Arc::new(MemoryOpener::default()));
    block_on(async {
        let j = exec.job(1).await.unwrap();
        assert_eq!(
            j.typed_secrets,
            [
                "the encryption passphrase",
                "the AWS_SECRET_ACCESS_KEY of 'memory://c?AWS_ACCESS_KEY_ID=redacted&AWS_SECRET_ACCESS_KEY=redacted'"
            ]
        );
        let s = exec.schedule(1).await.unwrap();
        assert_eq!(s.typed_secrets, j.typed_secrets);
        assert_eq!(s.backup.options.encryption_passphrase, None);
        for (k, version) in [(key(b"job/", 1), b"\x03\x00"), (key(b"schedule/", 1), b"\x04\x00")] {
            let now = raw(&kv, &k);
            assert_eq!(&now[8..10], version, "rewritten in today's form");
            for secret in ["hunter2pass", "s3cr3tkey"] {
                assert!(!String::from_utf8_lossy(&now).contains(secret));
            }
        }
        // The schedule cannot run without them: it is paused, saying why, and nothing runs.
        let runs = exec.run_due_schedules(Timestamp::from_nanos(NOW + 1)).await.unwrap();
        let strata_core::RunOutcome::Skipped(why) = &runs[0].outcome else { panic!("{runs:?}") };
        assert!(why.contains("the encryption passphrase") && why.contains("encryption_passphrase_env"), "{why}");
        assert!(exec.schedule(1).await.unwrap().paused);
        // Nor can the job be resumed from its record.
        exec.execute("PAUSE JOB 1").await.unwrap();
        let e = exec.execute("RESUME JOB 1").await.unwrap_err().to_string();
        assert!(e.contains("job 1 cannot run from its record") && !e.contains("hunter2pass"), "{e}");
    });
}

/// A version-3 schedule record (no retention policy), written at commit 636a382 by
/// `made_today()` (the full schedule of its pair, id 2): it reads as the same schedule without
/// `keep_*` options, and is rewritten in version 4.
#[test]
fn v3_schedule_records_read_without_a_retention_policy() {
    let (_, exec) = made_today();
    let v3: &[u8] = include_bytes!("../fixtures/schedule-record-v3.bin");
    assert_eq!(&v3[..10], b"STRATASC\x03\x00");
    let old = store();
    old.write_sync(vec![(key(b"schedule/", 2), Some(v3.to_vec()))]);
    let reader = Executor::new(Arc::new(old.clone()), Arc::new(MemoryOpener::default()));
    block_on(async {
        let s = reader.schedule(2).await.unwrap();
        assert_eq!(s.retention, None);
        // The stored partner (id 1) is not in this store; everything else is as made today.
        assert_eq!(s, exec.schedule(2).await.unwrap());
        assert_eq!(&raw(&old, &key(b"schedule/", 2))[..10], b"STRATASC\x04\x00");
    });
}
