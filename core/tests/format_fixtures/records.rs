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
use strata_core::{keys, Executor, JobStatus, MemKv, MemoryOpener, Timestamp};
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
    // Today's records are in the envelope form: magic, then version 2 (little-endian).
    assert_eq!(&raw(&kv, &key(b"job/", 1))[..10], b"STRATAJB\x02\x00");
    assert_eq!(&raw(&kv, &key(b"schedule/", 1))[..10], b"STRATASC\x02\x00");
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
        // And the executor goes on from there: a record it rewrites is in the envelope form.
        reader.execute("RESUME SCHEDULE 1").await.unwrap();
        assert!(!reader.schedule(1).await.unwrap().paused);
        assert_eq!(&raw(&old, &key(b"schedule/", 1))[..8], b"STRATASC");
        reader.execute("PAUSE JOB 1").await.unwrap();
        assert_eq!(reader.job(1).await.unwrap().status, JobStatus::Paused);
        assert_eq!(&raw(&old, &key(b"job/", 1))[..8], b"STRATAJB");
    });
}
