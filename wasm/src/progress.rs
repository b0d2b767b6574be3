//! Progress and cancellation of one statement. Rows, bytes and the fraction done come from the
//! core's progress reports ([`strata_core::ProgressReporter`]); the storage a statement uses is
//! wrapped to count the files and bytes it writes (backup) or reads (restore); and the store and
//! the storage check a cancellation signal before every call, so a cancelled statement stops at
//! its next step (and a backup then cleans up what it wrote, as after any failure).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use strata_core::{
    Catalog, DescId, DescriptorChange, Error, ExternalStorage, GetOptions, GetResult, KvSink, KvSource, KvStore,
    PutOptions, Result, ScanPage, ScanRequest, Span, StorageOpener, StorageWrapper, TableDescriptor, Timestamp,
    WorkUnit,
};

/// What kind of statement is running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Operation {
    /// A `BACKUP`.
    Backup,
    /// A `RESTORE`.
    Restore,
    /// Anything else.
    #[default]
    Statement,
}

impl Operation {
    /// `"backup"`, `"restore"` or `"statement"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Backup => "backup",
            Operation::Restore => "restore",
            Operation::Statement => "statement",
        }
    }
}

/// How far a statement has got (TypeScript `Progress`).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Progress {
    /// What is running.
    pub operation: Operation,
    /// Between 0 and 1: the share of work units exported (backup) or of the chain's bytes
    /// ingested (restore), as the core estimates it; 1 once done.
    pub fraction: f64,
    /// Rows (versions) exported (backup) or ingested (restore).
    pub rows: u64,
    /// Key and value bytes of those rows.
    pub bytes: u64,
    /// Bytes written to backup storage (backup) or read from it (restore).
    pub storage_bytes: u64,
    /// Files written (backup) or read (restore).
    pub files: u64,
    /// Set on the last report, once the statement has succeeded.
    pub done: bool,
}

#[cfg(not(target_arch = "wasm32"))]
type ProgressFn = dyn Fn(&Progress) + Send + Sync;
#[cfg(target_arch = "wasm32")]
type ProgressFn = dyn Fn(&Progress);
#[cfg(not(target_arch = "wasm32"))]
type CancelledFn = dyn Fn() -> bool + Send + Sync;
#[cfg(target_arch = "wasm32")]
type CancelledFn = dyn Fn() -> bool;

/// Counts one statement's work, reports it to a callback and answers whether to stop.
pub struct Tracker {
    state: Mutex<(Progress, BTreeSet<String>)>,
    on_progress: Option<Box<ProgressFn>>,
    cancelled: Option<Box<CancelledFn>>,
}

impl Tracker {
    /// A tracker for `operation` with no callback and no cancellation.
    pub fn new(operation: Operation) -> Tracker {
        let progress = Progress { operation, ..Progress::default() };
        Tracker { state: Mutex::new((progress, BTreeSet::new())), on_progress: None, cancelled: None }
    }

    /// Reports every change to `f`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_callback(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Tracker {
        self.on_progress = Some(Box::new(f));
        self
    }

    /// Reports every change to `f`.
    #[cfg(target_arch = "wasm32")]
    pub fn with_callback(mut self, f: impl Fn(&Progress) + 'static) -> Tracker {
        self.on_progress = Some(Box::new(f));
        self
    }

    /// Stops the statement (with [`Error::Cancelled`]) at the first call after `f` returns true.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_cancellation(mut self, f: impl Fn() -> bool + Send + Sync + 'static) -> Tracker {
        self.cancelled = Some(Box::new(f));
        self
    }

    /// Stops the statement (with [`Error::Cancelled`]) at the first call after `f` returns true.
    #[cfg(target_arch = "wasm32")]
    pub fn with_cancellation(mut self, f: impl Fn() -> bool + 'static) -> Tracker {
        self.cancelled = Some(Box::new(f));
        self
    }

    /// The progress so far.
    pub fn progress(&self) -> Progress {
        self.lock().0.clone()
    }

    /// Reports the end of a successful statement.
    pub fn finish(&self) {
        self.update(|p, _| {
            p.done = true;
            p.fraction = 1.0;
        });
    }

    /// Takes in a progress report of the core (rows, bytes, fraction).
    pub fn core_progress(&self, core: &strata_core::Progress) {
        self.update(|p, _| {
            p.fraction = core.fraction.clamp(0.0, 1.0);
            p.rows = core.rows;
            p.bytes = core.bytes;
        });
    }

    fn check(&self) -> Result<()> {
        match &self.cancelled {
            Some(f) if f() => Err(Error::Cancelled(format!("the {} was cancelled by its caller", self.kind()))),
            _ => Ok(()),
        }
    }

    fn kind(&self) -> &'static str {
        self.lock().0.operation.as_str()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Progress, BTreeSet<String>)> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Progress, &mut BTreeSet<String>)) {
        let snapshot = {
            let mut state = self.lock();
            let (progress, files) = &mut *state;
            f(progress, files);
            progress.clone()
        };
        // Called without the lock: the callback may ask for progress() itself.
        if let Some(cb) = &self.on_progress {
            cb(&snapshot);
        }
    }

    fn written(&self, bytes: usize) {
        if self.kind() == "backup" {
            self.update(|p, _| {
                p.storage_bytes += bytes as u64;
                p.files += 1;
            });
        }
    }

    fn read(&self, path: &str, bytes: usize) {
        if self.kind() == "restore" {
            self.update(|p, files| {
                p.storage_bytes += bytes as u64;
                if files.insert(path.to_string()) {
                    p.files += 1;
                }
            });
        }
    }
}

/// A store that stops (with [`Error::Cancelled`]) at its next scan, ingest or publish once the
/// [`Tracker`]'s statement is cancelled.
pub struct TrackedStore {
    inner: Arc<dyn KvStore>,
    tracker: Arc<Tracker>,
}

impl TrackedStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn KvStore>, tracker: Arc<Tracker>) -> TrackedStore {
        TrackedStore { inner, tracker }
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl KvSource for TrackedStore {
    async fn now(&self) -> Result<Timestamp> {
        self.inner.now().await
    }
    async fn scan(&self, request: ScanRequest) -> Result<ScanPage> {
        self.tracker.check()?;
        self.inner.scan(request).await
    }
    async fn gc_threshold(&self, span: &Span) -> Result<Timestamp> {
        self.inner.gc_threshold(span).await
    }
    async fn split(&self, span: &Span) -> Result<Vec<WorkUnit>> {
        self.inner.split(span).await
    }
    async fn scan_changes(&self, request: ScanRequest) -> Result<Option<ScanPage>> {
        self.tracker.check()?;
        self.inner.scan_changes(request).await
    }
    async fn catalog_at(&self, ts: Timestamp) -> Result<Catalog> {
        self.inner.catalog_at(ts).await
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl KvSink for TrackedStore {
    async fn catalog(&self) -> Result<Catalog> {
        self.inner.catalog().await
    }
    async fn allocate_ids(&self, count: u32) -> Result<DescId> {
        self.inner.allocate_ids(count).await
    }
    async fn ingest(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        self.tracker.check()?;
        self.inner.ingest(pairs).await
    }
    async fn publish(&self, changes: Vec<DescriptorChange>) -> Result<Timestamp> {
        self.tracker.check()?;
        self.inner.publish(changes).await
    }
    async fn discard(&self, spans: &[Span]) -> Result<()> {
        self.inner.discard(spans).await
    }
    async fn validate_indexes(&self, table: &TableDescriptor) -> Result<()> {
        self.inner.validate_indexes(table).await
    }
    async fn is_empty(&self) -> Result<bool> {
        self.inner.is_empty().await
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl KvStore for TrackedStore {
    async fn write(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Timestamp> {
        self.inner.write(batch).await
    }
}

/// Opens storages whose reads (restore) and writes (backup) are counted by a [`Tracker`].
pub struct TrackedOpener {
    inner: Arc<dyn StorageOpener>,
    tracker: Arc<Tracker>,
}

impl TrackedOpener {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn StorageOpener>, tracker: Arc<Tracker>) -> TrackedOpener {
        TrackedOpener { inner, tracker }
    }
}

impl StorageOpener for TrackedOpener {
    fn open(&self, uri: &str) -> Result<Arc<dyn ExternalStorage>> {
        let inner = self.inner.open(uri)?;
        Ok(Arc::new(TrackedStorage { inner, tracker: self.tracker.clone() }))
    }
}

struct TrackedStorage {
    inner: Arc<dyn ExternalStorage>,
    tracker: Arc<Tracker>,
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl StorageWrapper for TrackedStorage {
    fn inner(&self) -> &dyn ExternalStorage {
        self.inner.as_ref()
    }
    async fn put_opts(&self, path: &str, data: Bytes, options: PutOptions) -> Result<()> {
        self.tracker.check()?;
        let n = data.len();
        self.inner.put_opts(path, data, options).await?;
        self.tracker.written(n);
        Ok(())
    }
    async fn get_opts(&self, path: &str, options: GetOptions) -> Result<GetResult> {
        if options.head {
            return self.inner.get_opts(path, options).await;
        }
        self.tracker.check()?;
        let got = self.inner.get_opts(path, options).await?;
        self.tracker.read(path, got.bytes.len());
        Ok(got)
    }
    fn locality(&self, tier: &str) -> Option<Arc<dyn ExternalStorage>> {
        let inner = self.inner.locality(tier)?;
        Some(Arc::new(TrackedStorage { inner, tracker: self.tracker.clone() }))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use futures::executor::block_on;

    use super::*;
    use crate::Strata;

    #[test]
    fn backup_and_restore_are_counted_and_cancellable() {
        let s = Strata::in_memory();
        block_on(async {
            s.execute("CREATE DATABASE bank").await.unwrap();
            s.execute("CREATE TABLE bank.accounts").await.unwrap();
            let rows = (0..100u32).map(|i| (i.to_be_bytes().to_vec(), vec![7u8; 50])).collect();
            s.put_many("bank", "accounts", rows).await.unwrap();

            let run = |op: Operation, sql: &'static str, cancel: bool| {
                let s = &s;
                async move {
                    let reports = Arc::new(Mutex::new(Vec::<Progress>::new()));
                    let seen = reports.clone();
                    let tracker = Tracker::new(op)
                        .with_callback(move |p| seen.lock().unwrap().push(p.clone()))
                        .with_cancellation(move || cancel);
                    let tracker = Arc::new(tracker);
                    let stmt = strata_core::sql::parse(sql).unwrap();
                    let result = s.execute_statement(&stmt, Some(tracker.clone())).await;
                    let reports = reports.lock().unwrap().clone();
                    (result, tracker.progress(), reports)
                }
            };
            let (result, p, reports) = run(Operation::Backup, "BACKUP DATABASE bank INTO 'memory://b'", false).await;
            result.unwrap();
            assert!(p.done && p.fraction == 1.0, "{p:?}");
            assert_eq!((p.rows, p.bytes), (100, 100 * 59), "{p:?}");
            assert!(p.files >= 3 && p.storage_bytes > 0, "{p:?}");
            assert!(reports.len() >= 4, "{reports:?}");
            assert!(
                reports.windows(2).all(|w| w[0].fraction <= w[1].fraction && w[0].rows <= w[1].rows),
                "{reports:?}"
            );
            let restore = "RESTORE DATABASE bank FROM LATEST IN 'memory://b' WITH new_db_name = 'copy'";
            let (result, p, _) = run(Operation::Restore, restore, false).await;
            result.unwrap();
            assert_eq!((p.rows, p.bytes), (100, 100 * 59), "{p:?}");
            assert!(p.files >= 1 && p.storage_bytes > 0 && p.done, "{p:?}");

            let (result, p, _) = run(Operation::Backup, "BACKUP DATABASE bank INTO 'memory://c'", true).await;
            let err = result.unwrap_err();
            assert_eq!(err.code(), "CANCELLED", "{err}");
            assert!(!p.done);
            assert!(s.mounts().open("memory://c").unwrap().list("").await.unwrap().is_empty());
        });
    }
}
