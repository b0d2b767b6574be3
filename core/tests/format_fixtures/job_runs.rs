//! Run records (a schedule's run, a detached restore: `STRATAJR`) keep reading: the committed
//! version-1 records decode to the `SHOW JOBS` rows today's code makes with the same statements.
//! Written with `STRATA_WRITE_FIXTURES=1` by this test when the format was introduced; a later
//! version must keep reading them.

use std::sync::Arc;

use futures::executor::block_on;
use strata_core::{keys, Executor, MemKv, MemoryOpener, QueryResult, Timestamp};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// 2026-01-02 03:04:05 UTC.
const NOW: u64 = 1_767_323_045_000_000_000;

fn key(id: u64) -> Vec<u8> {
    let mut suffix = b"job-run/".to_vec();
    suffix.extend_from_slice(&id.to_be_bytes());
    keys::system_key(&suffix)
}

fn executor(kv: &MemKv, storage: &MemoryOpener) -> Executor {
    Executor::new(Arc::new(kv.clone()), Arc::new(storage.clone()))
}

/// A store holding a succeeded scheduled run and a pending detached restore, made through
/// statements; their job ids.
fn made_today() -> (MemKv, Executor, Vec<u64>) {
    let kv = MemKv::with_clock(Arc::new(|| NOW));
    let exec = executor(&kv, &MemoryOpener::default());
    let ids = block_on(async {
        exec.execute("CREATE DATABASE bank").await.unwrap();
        exec.execute("CREATE TABLE bank.accounts").await.unwrap();
        exec.execute("BACKUP DATABASE bank INTO 'memory://r'").await.unwrap();
        exec.execute(
            "CREATE SCHEDULE s FOR BACKUP DATABASE bank INTO 'memory://s' RECURRING '@daily' FULL BACKUP ALWAYS \
             WITH SCHEDULE OPTIONS first_run = 'now'",
        )
        .await
        .unwrap();
        let run = exec.run_due_schedules(Timestamp::from_nanos(NOW)).await.unwrap()[0].run_id.unwrap();
        let r = exec
            .execute("RESTORE DATABASE bank FROM LATEST IN 'memory://r?AWS_SECRET_ACCESS_KEY=${KEY}' WITH new_db_name = 'b2', detached")
            .await
            .unwrap();
        let restore = match r.get(0, "job_id") {
            Some(strata_core::Value::Int(id)) => *id as u64,
            v => panic!("{v:?}"),
        };
        vec![run, restore]
    });
    (kv, exec, ids)
}

fn show_jobs(exec: &Executor) -> QueryResult {
    block_on(exec.execute("SHOW JOBS")).unwrap()
}

#[test]
fn v1_run_records_still_read() {
    let (kv, exec, ids) = made_today();
    let path = format!("{}/tests/fixtures/job-run-records-v1.bin", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("STRATA_WRITE_FIXTURES").is_some() {
        // Each record: id (u64 BE), length (u32 LE), the stored bytes.
        let mut out = Vec::new();
        for id in &ids {
            let bytes = kv.get_at(&key(*id), Timestamp::from_nanos(u64::MAX)).unwrap();
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        std::fs::write(&path, out).unwrap();
    }
    let fixture: &[u8] = include_bytes!("../fixtures/job-run-records-v1.bin");
    let old = MemKv::with_clock(Arc::new(|| NOW));
    let mut rest = fixture;
    let mut count = 0;
    while !rest.is_empty() {
        let id = u64::from_be_bytes(rest[..8].try_into().unwrap());
        let n = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
        let bytes = rest[12..12 + n].to_vec();
        assert_eq!(&bytes[..10], b"STRATAJR\x01\x00");
        old.write_sync(vec![(key(id), Some(bytes))]);
        rest = &rest[12 + n..];
        count += 1;
    }
    assert_eq!(count, 2);
    let today = show_jobs(&exec);
    let read = show_jobs(&executor(&old, &MemoryOpener::default()));
    assert_eq!(read, today);
    assert_eq!(today.get(1, "job_type").unwrap().to_string(), "RESTORE");
    assert_eq!(today.get(1, "status").unwrap().to_string(), "pending");
}
