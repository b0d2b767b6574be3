//! Faults injected on top of a real storage: the N-th call fails. A backup that fails leaves no
//! manifest (so no backup) and removes its files; a restore that fails leaves nothing visible.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

mod common;

use async_trait::async_trait;
use common::{Call, Hook, Hooked};
use futures::executor::block_on;
use strata_core::ExternalStorageExt;
use strata_core::{
    keys, Error, Executor, ExternalStorage, KvSink, KvSource, MemKv, MemoryOpener, MemoryStorage, Result, Status,
    StorageOpener, Timestamp, MANIFEST_NAME,
};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// The `fail_at`-th call (counting every method but `delete`) fails with a temporary error.
struct FailNth {
    calls: AtomicUsize,
    fail_at: usize,
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl Hook for FailNth {
    async fn before(&self, call: Call, path: &str) -> Result<()> {
        if call != Call::Delete && self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            return Err(Error::Storage {
                path: path.into(),
                message: "injected fault".into(),
                status: Status::Temporary,
            });
        }
        Ok(())
    }
}

/// A memory storage whose `fail_at`-th call fails.
fn flaky(inner: &MemoryStorage, fail_at: usize) -> Arc<Hooked> {
    let hook = Arc::new(FailNth { calls: AtomicUsize::new(0), fail_at });
    Arc::new(Hooked { inner: Arc::new(inner.clone()), hook })
}

/// Opens the same storage for every URI.
struct FlakyOpener(Arc<Hooked>);

impl StorageOpener for FlakyOpener {
    fn open(&self, _uri: &str) -> Result<Arc<dyn ExternalStorage>> {
        Ok(self.0.clone())
    }
}

async fn source_with_data() -> MemKv {
    let kv = MemKv::new();
    let exec = Executor::new(Arc::new(kv.clone()), Arc::new(MemoryOpener::default()));
    exec.execute("CREATE DATABASE d").await.unwrap();
    for t in ["a", "b", "c"] {
        exec.execute(&format!("CREATE TABLE d.{t}")).await.unwrap();
        let id = exec.table_id("d", t, None).await.unwrap();
        let rows = (0..200u32).map(|i| (keys::table_key(id, &i.to_be_bytes()), Some(vec![i as u8; 64]))).collect();
        kv.write_sync(rows);
    }
    kv
}

#[test]
fn a_failed_backup_leaves_no_backup_and_no_files() {
    block_on(async {
        let kv = source_with_data().await;
        let mut failures = 0;
        for fail_at in 1..40 {
            let flaky = flaky(&MemoryStorage::new("f"), fail_at);
            let exec = Executor::new(Arc::new(kv.clone()), Arc::new(FlakyOpener(flaky.clone()))).with_backup_options(
                strata_core::BackupOptions::default().with_target_file_size(1024).with_page_bytes(1024),
            );
            match exec.execute("BACKUP DATABASE d TO 'memory://f'").await {
                Ok(_) => {
                    assert!(flaky.inner.size(MANIFEST_NAME).await.is_ok());
                }
                Err(e) => {
                    failures += 1;
                    assert!(e.to_string().contains("injected fault"), "{e}");
                    assert_eq!(e.status(), Status::Temporary);
                    assert!(flaky.inner.size(MANIFEST_NAME).await.is_err(), "fault {fail_at}: a manifest was written");
                    let left = flaky.inner.list("data/").await.unwrap();
                    assert!(left.is_empty(), "fault {fail_at}: data files left behind: {left:?}");
                }
            }
        }
        assert!(failures > 10, "the faults should have hit many calls, hit {failures}");
    });
}

#[test]
fn a_failed_restore_leaves_nothing_visible() {
    block_on(async {
        let kv = source_with_data().await;
        let backup = MemoryStorage::new("r");
        let exec = Executor::new(Arc::new(kv.clone()), Arc::new(FlakyOpener(flaky(&backup, 0))));
        exec.execute("BACKUP DATABASE d TO 'memory://r'").await.unwrap();
        let mut failures = 0;
        for fail_at in 1..20 {
            let target = MemKv::new();
            let flaky = flaky(&backup, fail_at);
            let texec = Executor::new(Arc::new(target.clone()), Arc::new(FlakyOpener(flaky)));
            match texec.execute("RESTORE DATABASE d FROM 'memory://r'").await {
                Ok(_) => assert_eq!(target.catalog().await.unwrap().tables.len(), 3),
                Err(e) => {
                    failures += 1;
                    assert!(e.to_string().contains("injected fault"), "{e}");
                    assert!(target.catalog().await.unwrap().has_no_user_objects(), "fault {fail_at}: objects visible");
                    let all = strata_core::Span::new(vec![keys::TABLE_PREFIX], vec![keys::TABLE_PREFIX + 1]);
                    assert!(target.view_at(&all, Timestamp::MAX).is_empty(), "fault {fail_at}: rows left behind");
                }
            }
        }
        assert!(failures >= 5, "the faults should have hit the restore, hit {failures}");
        let _ = kv.now().await;
    });
}
