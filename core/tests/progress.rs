//! Progress callbacks of backups and restores: monotone, ending at 1 with the totals.

use std::sync::{Arc, Mutex};

use futures::executor::block_on;
use strata_core::{
    keys, BackupOptions, Executor, MemKv, MemoryOpener, Progress, ProgressOperation, ProgressReporter,
    RestoreRunOptions, Value,
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

        let (restore_progress, restores) = recorder();
        let target = Executor::new(Arc::new(MemKv::new()), storage.clone())
            .with_restore_options(RestoreRunOptions::default().with_progress(restore_progress));
        target.execute("RESTORE DATABASE d FROM LATEST IN 'memory://c'").await.unwrap();
        check(&restores.lock().unwrap(), ProgressOperation::Restore, 900);
    });
}
