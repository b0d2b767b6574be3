//! Progress callbacks of backups and restores: monotone, ending at 1 with the totals, counting
//! the data files stored and read; and the cancellation signal that stops both.

use std::sync::{Arc, Mutex};

use futures::executor::block_on;
use strata_core::{
    keys, BackupOptions, Cancel, Executor, MemKv, MemoryOpener, Progress, ProgressOperation, ProgressReporter,
    RestoreRunOptions, StorageOpener, Value,
};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn recorder() -> (ProgressReporter, Arc<Mutex<Vec<Progress>>>) {
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let s = seen.clone();
    (ProgressReporter::new(move |p| s.lock().unwrap().push(*p)), seen)
}

fn check(seen: &[Progress], operation: ProgressOperation, rows: u64) {
    assert!(seen.len() > 2, "{seen:?}");
    assert!(seen.iter().all(|p| p.operation == operation));
    for w in seen.windows(2) {
        assert!(w[0].fraction <= w[1].fraction && w[0].rows <= w[1].rows && w[0].bytes <= w[1].bytes, "{w:?}");
    }
    let last = seen.last().unwrap();
    assert_eq!((last.fraction, last.rows), (1.0, rows));
    assert!(last.bytes > 0);
}

#[test]
fn backup_and_restore_report_progress() {
    let kv = MemKv::new();
    let storage = Arc::new(MemoryOpener::default());
    let (backup_progress, backups) = recorder();
    let exec = Executor::new(Arc::new(kv.clone()), storage.clone()).with_backup_options(
        BackupOptions::default().with_target_file_size(2048).with_page_bytes(1024).with_progress(backup_progress),
    );
    block_on(async {
        exec.execute("CREATE DATABASE d").await.unwrap();
        for t in ["a", "b", "c"] {
            exec.execute(&format!("CREATE TABLE d.{t}")).await.unwrap();
            let id = exec.table_id("d", t, None).await.unwrap();
            kv.write_sync((0..300u32).map(|i| (keys::table_key(id, &i.to_be_bytes()), Some(vec![1; 50]))).collect());
        }
        let r = exec.execute("BACKUP DATABASE d INTO 'memory://c'").await.unwrap();
        assert_eq!(r.get(0, "rows"), Some(&Value::Int(900)));
        check(&backups.lock().unwrap(), ProgressOperation::Backup, 900);

        // The data files counted are those the storage holds.
        let data: Vec<u64> = storage
            .open("memory://c")
            .unwrap()
            .list("")
            .await
            .unwrap()
            .into_iter()
            .filter(|o| o.path.contains("/data/"))
            .map(|o| o.size)
            .collect();
        assert!(data.len() > 3, "{data:?}");
        let (files, stored) = (data.len() as u64, data.iter().sum::<u64>());
        let last = *backups.lock().unwrap().last().unwrap();
        assert_eq!((last.files, last.storage_bytes), (files, stored), "{last:?}");
        assert_eq!(
            (r.get(0, "files"), r.get(0, "stored_bytes")),
            (Some(&Value::Int(files as i64)), Some(&Value::Int(stored as i64)))
        );

        let (restore_progress, restores) = recorder();
        let target = Executor::new(Arc::new(MemKv::new()), storage.clone())
            .with_restore_options(RestoreRunOptions::default().with_progress(restore_progress));
        target.execute("RESTORE DATABASE d FROM LATEST IN 'memory://c'").await.unwrap();
        check(&restores.lock().unwrap(), ProgressOperation::Restore, 900);
        // A whole plain file is read once, all of it.
        let last = *restores.lock().unwrap().last().unwrap();
        assert_eq!((last.files, last.storage_bytes), (files, stored), "{last:?}");
    });
}

/// An executor whose runs report to a recorder and cancel themselves at report `at` (1-based).
fn canceled_at(exec: &Executor, at: usize) -> (Executor, Arc<Mutex<Vec<Progress>>>) {
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let cancel = Cancel::new();
    let (s, c) = (seen.clone(), cancel.clone());
    let reporter = ProgressReporter::new(move |p| {
        let mut seen = s.lock().unwrap();
        seen.push(*p);
        if seen.len() == at {
            c.cancel();
        }
    });
    (exec.clone().with_run_control(reporter, cancel), seen)
}

#[test]
fn canceled_backups_and_restores_stop_and_leave_nothing() {
    let kv = MemKv::new();
    let storage = Arc::new(MemoryOpener::default());
    let exec = Executor::new(Arc::new(kv.clone()), storage.clone())
        .with_backup_options(BackupOptions::default().with_target_file_size(2048).with_page_bytes(1024));
    block_on(async {
        exec.execute("CREATE DATABASE d").await.unwrap();
        exec.execute("CREATE TABLE d.t").await.unwrap();
        let id = exec.table_id("d", "t", None).await.unwrap();
        kv.write_sync((0..300u32).map(|i| (keys::table_key(id, &i.to_be_bytes()), Some(vec![1; 50]))).collect());

        // Canceled before its first page read, and after some of its data files are stored.
        for (at, uri) in [(1, "memory://first"), (3, "memory://later")] {
            let (canceling, seen) = canceled_at(&exec, at);
            let err = canceling.execute(&format!("BACKUP DATABASE d INTO '{uri}'")).await.unwrap_err();
            assert_eq!(err.code(), "CANCELLED", "{err}");
            let seen = seen.lock().unwrap().clone();
            // Stopped at its next page: a file already uploading may still be reported.
            assert!(seen.len() == at || seen.len() == at + 1, "{seen:?}");
            assert_eq!(seen[at - 1].files as usize, at - 1, "{seen:?}");
            let left = storage.open(uri).unwrap().list("").await.unwrap();
            assert!(left.is_empty(), "a canceled backup leaves no manifest nor files: {left:?}");
        }
        // The same executor, without the signal, is not canceled: clones have their own control.
        exec.execute("BACKUP DATABASE d INTO 'memory://b'").await.unwrap();

        let target = Executor::new(Arc::new(MemKv::new()), storage.clone())
            .with_restore_options(RestoreRunOptions::default().with_batch_bytes(1024));
        let (canceling, seen) = canceled_at(&target, 2);
        let err = canceling.execute("RESTORE DATABASE d FROM LATEST IN 'memory://b'").await.unwrap_err();
        assert_eq!(err.code(), "CANCELLED", "{err}");
        assert!(seen.lock().unwrap().iter().all(|p| p.fraction < 1.0), "{seen:?}");
        let dbs = target.execute("SHOW DATABASES").await.unwrap();
        assert!(dbs.rows.is_empty(), "a canceled restore publishes nothing: {dbs:?}");
        target.execute("RESTORE DATABASE d FROM LATEST IN 'memory://b'").await.unwrap();
        assert_eq!(target.execute("SHOW TABLES").await.unwrap().rows.len(), 1);
    });
}
