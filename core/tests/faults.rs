//! Faults injected on top of a real storage: the N-th call fails. A backup that fails leaves no
//! manifest (so no backup) and removes its files; a restore that fails leaves nothing visible.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common;

use async_trait::async_trait;
use common::{Call, Hook, Hooked};
use futures::executor::block_on;
use strata_core::ExternalStorageExt;
use strata_core::{
    keys, Error, Executor, ExternalStorage, IngestBatch, KvSink, KvSource, MemKv, MemoryOpener, MemoryStorage, Result,
    Status, StorageOpener, Timestamp, MANIFEST_NAME,
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

/// Every version of every key of `kv` (system span included), but the id counter: a restore
/// allocates its ids before it reads the backup, and ids it burns are never reused.
async fn every_version(kv: &MemKv) -> Vec<(Vec<u8>, Timestamp, Option<Vec<u8>>)> {
    use strata_core::{MvccFilter, ScanRequest};
    let mut request = ScanRequest::new(
        strata_core::Span::new(vec![], vec![0xff; 8]),
        Timestamp::ZERO,
        Timestamp::MAX,
        MvccFilter::AllRevisions,
    );
    let mut out = Vec::new();
    loop {
        let page = kv.scan(request.clone()).await.unwrap();
        out.extend(
            page.entries
                .into_iter()
                .filter(|e| e.key[..] != keys::ID_COUNTER_KEY[..])
                .map(|e| (e.key.to_vec(), e.ts, e.value.map(|v| v.to_vec()))),
        );
        match page.resume_key {
            Some(k) => request.span.start = k,
            None => return out,
        }
    }
}

/// A store whose `fail_at`-th ingest or publish fails (0: none does).
struct FlakySink {
    inner: MemKv,
    calls: AtomicUsize,
    fail_at: usize,
}

impl FlakySink {
    fn tick(&self) -> Result<()> {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            return Err(Error::Storage {
                path: "sink".into(),
                message: "injected fault".into(),
                status: Status::Temporary,
            });
        }
        Ok(())
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl KvSource for FlakySink {
    async fn now(&self) -> Result<Timestamp> {
        self.inner.now().await
    }
    async fn scan(&self, request: strata_core::ScanRequest) -> Result<strata_core::ScanPage> {
        self.inner.scan(request).await
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl KvSink for FlakySink {
    async fn catalog(&self) -> Result<strata_core::Catalog> {
        self.inner.catalog().await
    }
    async fn allocate_ids(&self, count: u32) -> Result<strata_core::DescId> {
        self.inner.allocate_ids(count).await
    }
    async fn ingest(&self, batch: IngestBatch) -> Result<()> {
        self.tick()?;
        self.inner.ingest(batch).await
    }
    async fn publish(&self, changes: Vec<strata_core::DescriptorChange>) -> Result<Timestamp> {
        self.tick()?;
        self.inner.publish(changes).await
    }
    async fn discard(&self, spans: &[strata_core::Span]) -> Result<()> {
        self.inner.discard(spans).await
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl strata_core::KvStore for FlakySink {
    async fn write(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Timestamp> {
        self.inner.write(batch).await
    }
}

#[test]
fn a_failed_cluster_restore_changes_nothing_not_even_the_system_span() {
    block_on(async {
        // The source: tables, and a schedule of its own (system span).
        let kv = source_with_data().await;
        let backup = MemoryStorage::new("c");
        let exec = Executor::new(Arc::new(kv.clone()), Arc::new(FlakyOpener(flaky(&backup, 0))));
        exec.execute("CREATE SCHEDULE source_s FOR BACKUP INTO 'memory://elsewhere' RECURRING '@daily'").await.unwrap();
        exec.execute("BACKUP INTO 'memory://c'").await.unwrap();
        let mut failures = 0;
        // Every storage call fails in turn, then every ingest and publish of the target.
        let faults = (1..40).map(|n| (n, 0)).chain((1..30).map(|n| (0, n)));
        for (storage_fault, sink_fault) in faults {
            // The target: no user objects, a schedule of its own.
            let target = MemKv::new();
            let own = Executor::new(Arc::new(target.clone()), Arc::new(MemoryOpener::default()));
            own.execute("CREATE SCHEDULE target_s FOR BACKUP INTO 'memory://mine' RECURRING '@weekly'").await.unwrap();
            let before = every_version(&target).await;
            let sink = FlakySink { inner: target.clone(), calls: AtomicUsize::new(0), fail_at: sink_fault };
            let texec = Executor::new(Arc::new(sink), Arc::new(FlakyOpener(flaky(&backup, storage_fault))))
                .with_restore_options(strata_core::RestoreRunOptions::default().with_batch_bytes(4096));
            match texec.execute("RESTORE FROM LATEST IN 'memory://c'").await {
                Ok(_) => {
                    let labels: Vec<String> = texec.schedules().await.unwrap().into_iter().map(|s| s.label).collect();
                    assert!(labels.contains(&"source_s".to_string()), "{labels:?}");
                }
                Err(e) => {
                    failures += 1;
                    let fault = (storage_fault, sink_fault);
                    assert!(e.to_string().contains("injected fault"), "{fault:?}: {e}");
                    let after = every_version(&target).await;
                    let shown = |v: &(Vec<u8>, Timestamp, Option<Vec<u8>>)| String::from_utf8_lossy(&v.0).into_owned();
                    let changed: Vec<_> = after.iter().filter(|v| !before.contains(v)).map(shown).collect();
                    let lost: Vec<_> = before.iter().filter(|v| !after.contains(v)).map(shown).collect();
                    assert!(changed.is_empty() && lost.is_empty(), "{fault:?}: written {changed:?}, lost {lost:?}");
                }
            }
        }
        assert!(failures >= 10, "the faults should have hit the restore, hit {failures}");
    });
}
