//! What the tests of both embedded stores (redb's `kv_conformance.rs`, fjall's `lsm_store.rs`)
//! check the same way: their change logs answer scans of changes at the cost of what changed.

use strata_core::{keys, IngestBatch, KvSink, KvSource, KvStore, MvccFilter, ScanPage, ScanRequest, Span};
use strata_native::{EmbeddedStore, LsmStore, StoreStats};

/// An embedded store whose reads are counted.
pub trait CountedStore: KvSource + KvSink + KvStore {
    fn stats(&self) -> StoreStats;
    fn set_max_merged_runs(&self, runs: usize);
}

impl CountedStore for EmbeddedStore {
    fn stats(&self) -> StoreStats {
        EmbeddedStore::stats(self)
    }
    fn set_max_merged_runs(&self, runs: usize) {
        EmbeddedStore::set_max_merged_runs(self, runs)
    }
}

impl CountedStore for LsmStore {
    fn stats(&self) -> StoreStats {
        LsmStore::stats(self)
    }
    fn set_max_merged_runs(&self, runs: usize) {
        LsmStore::set_max_merged_runs(self, runs)
    }
}

/// Every page of a scan, through `scan` or through `scan_changes` (which must answer).
pub async fn pages(store: &(impl KvSource + ?Sized), mut request: ScanRequest, changes: bool) -> Vec<ScanPage> {
    let mut out = Vec::new();
    loop {
        let page = if changes {
            store.scan_changes(request.clone()).await.unwrap().expect("the store answers scan_changes")
        } else {
            store.scan(request.clone()).await.unwrap()
        };
        let resume = page.resume_key.clone();
        out.push(page);
        match resume {
            Some(k) => request.span.start = k,
            None => return out,
        }
    }
}

/// The cost claim, counted rather than timed: over a table of 20,000 keys of which 100 changed
/// (101 versions in 11 writes), `scan_changes` reads no row of the MVCC table (redb's `"mvcc"`,
/// fjall's `"versions"`) but one per page for its resume key, and of the change log: merging the
/// writes' runs, one row per write to find it plus the rows it returns (and one read ahead per
/// run and page); by passes, the window's 101 rows once (later pages and scans of the same window
/// reuse the versions collected). `scan` reads every row of the table. The pages are the same.
pub async fn scan_changes_costs_what_changed<S: CountedStore>(store: &S) {
    // 20,000 rows (debug builds scan them eight times below).
    let rows = 20_000u32;
    for batch in 0..rows / 10_000 {
        let pairs: IngestBatch = (batch * 10_000..(batch + 1) * 10_000)
            .map(|i| (keys::table_key(100, &i.to_be_bytes()), vec![b'v'; 16]))
            .collect();
        store.ingest(pairs).await.unwrap();
    }
    let t0 = store.now().await.unwrap();
    // 100 keys spread over the table, changed in 10 writes, a fifth of them deleted, some twice.
    for w in 0..10u32 {
        let batch = (0..10u32)
            .map(|j| {
                let i = (j * 10 + w) * 199;
                (keys::table_key(100, &i.to_be_bytes()), (i % 5 != 0).then(|| format!("w{w}").into_bytes()))
            })
            .collect();
        store.write(batch).await.unwrap();
    }
    store.write(vec![(keys::table_key(100, &199u32.to_be_bytes()), Some(b"again".to_vec()))]).await.unwrap();
    let t1 = store.now().await.unwrap();
    let span = keys::table_span(100);
    for (filter, merged) in [
        (MvccFilter::Latest, true),
        (MvccFilter::AllRevisions, true),
        (MvccFilter::Latest, false),
        (MvccFilter::AllRevisions, false),
    ] {
        store.set_max_merged_runs(if merged { 64 } else { 0 });
        let request = ScanRequest::new(span.clone(), t0, t1, filter);
        let before = store.stats();
        let fast = pages(store, request.clone(), true).await;
        let cost = store.stats();
        let slow = pages(store, request.clone(), false).await;
        let full = store.stats();
        assert_eq!(fast, slow, "{filter:?}: scan_changes and scan");
        let versions = if filter == MvccFilter::Latest { 100 } else { 101 };
        assert_eq!(fast.iter().map(|p| p.entries.len()).sum::<usize>(), versions, "{filter:?}: versions");
        // Merged: 11 writes found, 101 rows read. Passes: one per filter (the versions kept
        // differ); later pages and scans reuse it.
        let log_rows = if merged { 11 + 101 } else { 101 };
        assert_eq!(cost.change_rows_read - before.change_rows_read, log_rows, "{filter:?}: change-log rows read");
        assert_eq!(cost.mvcc_rows_read - before.mvcc_rows_read, 0, "{filter:?}: MVCC rows read (one page)");
        assert!(full.mvcc_rows_read - cost.mvcc_rows_read > u64::from(rows), "{filter:?}: scan reads every row");

        // In pages of 100 bytes: the versions collected serve every page; each page costs one
        // seek for its resume key.
        let mut small = request;
        small.target_bytes = 100;
        let before = store.stats();
        let fast = pages(store, small.clone(), true).await;
        let cost = store.stats();
        assert_eq!(fast, pages(store, small, false).await, "{filter:?}: pages of 100 bytes");
        assert!(fast.len() > 10, "{filter:?}: {} pages", fast.len());
        let read = cost.change_rows_read - before.change_rows_read;
        if merged {
            let pages = fast.len() as u64;
            assert!(read <= 101 + pages * 2 * 11, "{filter:?}: change-log rows read in {pages} small pages: {read}");
        } else {
            assert_eq!(read, 0, "{filter:?}: change-log rows, small pages");
        }
        assert!(
            cost.mvcc_rows_read - before.mvcc_rows_read <= fast.len() as u64,
            "{filter:?}: MVCC rows read in small pages: {}",
            cost.mvcc_rows_read - before.mvcc_rows_read
        );
    }
    // A span not seen before (another end): one pass over the log serves all its small pages.
    store.set_max_merged_runs(0);
    let mut request = ScanRequest::new(
        Span::new(span.start.clone(), keys::table_key(100, &[0xff; 4])),
        t0,
        t1,
        MvccFilter::AllRevisions,
    );
    request.target_bytes = 100;
    let before = store.stats();
    let fast = pages(store, request.clone(), true).await;
    let cost = store.stats();
    assert!(fast.len() > 10);
    assert_eq!(fast, pages(store, request, false).await, "a new span in pages of 100 bytes");
    assert_eq!(cost.change_rows_read - before.change_rows_read, 101, "index rows read for {} pages", fast.len());
}

/// The environment variable that names the directory of a killed restore's child process (see
/// [`killed_restore_child`]).
const KILLED_RESTORE_DIR: &str = "STRATA_KILLED_RESTORE_DIR";
/// Accounts in the killed restore's backup (and about a tenth as many customers).
const KILLED_RESTORE_ROWS: u64 = 20_000;
const KILLED_RESTORE_BACKUP: &str = "'nodelocal://1/killed'";
/// The signal [`std::process::abort`] ends a process with (on Linux and macOS).
const SIGABRT: i32 = 6;

/// An executor on `store` whose `nodelocal://` URIs resolve under `root`.
fn executor(store: std::sync::Arc<dyn KvStore>, root: &std::path::Path) -> strata_core::Executor {
    strata_core::Executor::new(store, std::sync::Arc::new(strata_native::NativeOpener::new(root.join("extern"))))
}

/// The child half of [`a_killed_restore_leaves_nothing_and_runs_again`]: restores the backup
/// into the store `open` opens in `$STRATA_KILLED_RESTORE_DIR/target`, 16 KiB per ingest, one
/// table at a time, and aborts the process (no clean close) from the restore's progress once
/// half the rows are ingested. Does nothing when the variable is not set (an ordinary test run).
pub fn killed_restore_child<S: KvStore + 'static>(open: impl Fn(&std::path::Path) -> S) {
    let Some(root) = std::env::var_os(KILLED_RESTORE_DIR).map(std::path::PathBuf::from) else { return };
    let store = std::sync::Arc::new(open(&root.join("target")));
    let half = KILLED_RESTORE_ROWS / 2;
    let progress = strata_core::ProgressReporter::new(move |p: &strata_core::Progress| {
        if p.rows >= half {
            std::process::abort();
        }
    });
    let options = strata_core::RestoreRunOptions::default()
        .with_batch_bytes(16 << 10)
        .with_concurrency(1)
        .with_progress(progress);
    let exec = executor(store, &root).with_restore_options(options);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(exec.execute(&format!("RESTORE DATABASE bank FROM {KILLED_RESTORE_BACKUP}"))).unwrap();
    panic!("the restore ended without reporting half its rows");
}

/// How many versions the store holds, at any time, in the key space of user tables.
async fn user_versions(store: &dyn KvStore) -> usize {
    versions_in(store, Span::new(keys::table_span(strata_core::FIRST_USER_ID).start, vec![keys::TABLE_PREFIX + 1]))
        .await
}

/// How many versions the store holds in `span`, at any time.
async fn versions_in(store: &(impl KvStore + ?Sized), span: Span) -> usize {
    let now = store.now().await.unwrap();
    let request = ScanRequest::new(span, strata_core::Timestamp::ZERO, now, MvccFilter::AllRevisions);
    pages(store, request, false).await.iter().map(|p| p.entries.len()).sum()
}

/// The rows of `db.table` at `ts`, each key without its table prefix.
async fn table_rows(exec: &strata_core::Executor, store: &dyn KvStore, table: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let id = exec.table_id("bank", table, None).await.unwrap();
    let mut request = ScanRequest::new(
        keys::table_span(id),
        strata_core::Timestamp::ZERO,
        store.now().await.unwrap(),
        MvccFilter::Latest,
    );
    request.target_bytes = u64::MAX;
    let page = store.scan(request).await.unwrap();
    assert!(page.resume_key.is_none());
    page.entries
        .into_iter()
        .map(|e| {
            let (_, user_key) = keys::decode_table_key(&e.key).expect("a table key");
            (user_key.to_vec(), e.value.expect("the latest version of a row is a value").to_vec())
        })
        .collect()
}

/// Declares, in the test binary that uses it, the tests of a killed restore on the store `$open`
/// opens: `killed_restore_child` (the child process, an ordinary test that does nothing unless it
/// is the child), `a_killed_restore_leaves_nothing_and_runs_again`, which starts it, and
/// `unpublished_ingests_go_when_the_store_opens`.
macro_rules! killed_restore_tests {
    ($open:expr) => {
        /// The child half of [`a_killed_restore_leaves_nothing_and_runs_again`].
        #[test]
        fn killed_restore_child() {
            store_support::killed_restore_child($open);
        }

        /// A restore killed in the middle of its ingests leaves nothing visible, and runs again
        /// to the end (see [`store_support::a_killed_restore_leaves_nothing_and_runs_again`]).
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_killed_restore_leaves_nothing_and_runs_again() {
            store_support::a_killed_restore_leaves_nothing_and_runs_again($open, "killed_restore_child").await;
        }

        /// What a restore ingested goes when the store opens again unless it was published
        /// (see [`store_support::unpublished_ingests_go_when_the_store_opens`]).
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn unpublished_ingests_go_when_the_store_opens() {
            store_support::unpublished_ingests_go_when_the_store_opens($open).await;
        }
    };
}
pub(crate) use killed_restore_tests;

/// A restore into the store `open` opens, killed in the middle of its ingests (the process
/// aborts, see [`killed_restore_child`], which `child` names in this test binary): the store opens
/// again with nothing of the restore in its catalog, and the same RESTORE run again succeeds with
/// exactly the backed-up rows.
pub async fn a_killed_restore_leaves_nothing_and_runs_again<S: KvStore + 'static>(
    open: impl Fn(&std::path::Path) -> S,
    child: &str,
) {
    use std::os::unix::process::ExitStatusExt;

    let root = tempfile::tempdir().unwrap();
    let source: std::sync::Arc<dyn KvStore> =
        std::sync::Arc::new(EmbeddedStore::open(&root.path().join("source")).unwrap());
    let source_exec = executor(source.clone(), root.path());
    strata_native::workload::init_bank(&source_exec, KILLED_RESTORE_ROWS, |_| {}).await.unwrap();
    source_exec.execute(&format!("BACKUP DATABASE bank TO {KILLED_RESTORE_BACKUP}")).await.unwrap();

    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", child, "--nocapture", "--test-threads=1"])
        .env(KILLED_RESTORE_DIR, root.path())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.signal(), Some(SIGABRT), "the child aborts from the restore's progress: {status}");

    let target: std::sync::Arc<dyn KvStore> = std::sync::Arc::new(open(&root.path().join("target")));
    assert!(target.catalog().await.unwrap().database("bank").is_none(), "nothing of the killed restore is visible");
    // Nor kept: the store discarded, when it opened, what the restore had ingested.
    assert_eq!(user_versions(target.as_ref()).await, 0, "versions the killed restore left in the tables' key space");
    let exec = executor(target.clone(), root.path());
    exec.execute(&format!("RESTORE DATABASE bank FROM {KILLED_RESTORE_BACKUP}")).await.unwrap();
    for table in ["customers", "accounts"] {
        let restored = table_rows(&exec, target.as_ref(), table).await;
        assert!(!restored.is_empty(), "{table}");
        assert!(restored == table_rows(&source_exec, source.as_ref(), table).await, "{table}: the rows restored again");
    }
    // What the second restore published stays when the store opens again.
    drop((exec, target));
    let target: std::sync::Arc<dyn KvStore> = std::sync::Arc::new(open(&root.path().join("target")));
    let exec = executor(target.clone(), root.path());
    for table in ["customers", "accounts"] {
        let reopened = table_rows(&exec, target.as_ref(), table).await;
        assert!(reopened == table_rows(&source_exec, source.as_ref(), table).await, "{table}: reopened");
    }
}

/// Spans a restore recorded ([`KvSink::prepare_ingest`]) and ingested into: one it published
/// keeps its rows when the store opens again, one it discarded and one it never published (its
/// process gone after a later durable write, so the ingest is on disk) hold nothing then.
pub async fn unpublished_ingests_go_when_the_store_opens<S: KvStore + 'static>(open: impl Fn(&std::path::Path) -> S) {
    use strata_core::{DatabaseDescriptor, Descriptor, DescriptorChange, TableDescriptor, Timestamp};

    let dir = tempfile::tempdir().unwrap();
    let (published, discarded, killed) = (501, 502, 503);
    let ingest = |id: u32| {
        let mut batch = IngestBatch::new();
        for i in 0..100u32 {
            batch.push(&keys::table_key(id, format!("{i:04}").as_bytes()), b"value");
        }
        batch
    };
    {
        let store = open(dir.path());
        let spans: Vec<Span> = [published, discarded, killed].map(keys::table_span).into();
        store.prepare_ingest(&spans).await.unwrap();
        for id in [published, discarded, killed] {
            store.ingest(ingest(id)).await.unwrap();
        }
        let table = TableDescriptor {
            id: published,
            name: "t".into(),
            parent_id: 500,
            version: 1,
            modification_time: Timestamp::new(1, 0),
            indexes: Vec::new(),
        };
        let database =
            DatabaseDescriptor { id: 500, name: "d".into(), version: 1, modification_time: Timestamp::new(1, 0) };
        store
            .publish(vec![
                DescriptorChange::Put(Descriptor::Database(database)),
                DescriptorChange::Put(Descriptor::Table(table)),
            ])
            .await
            .unwrap();
        store.discard(&[keys::table_span(discarded)]).await.unwrap();
        // A durable write after the ingests: redb's ingests are durable from here on too.
        store.write(vec![(keys::table_key(600, b"k"), Some(b"v".to_vec()))]).await.unwrap();
        for id in [published, killed] {
            assert_eq!(versions_in(&store, keys::table_span(id)).await, 100, "table {id} before the store closes");
        }
    }
    for round in ["first", "second"] {
        let store = open(dir.path());
        assert_eq!(versions_in(&store, keys::table_span(published)).await, 100, "{round} open: the published table");
        assert_eq!(versions_in(&store, keys::table_span(discarded)).await, 0, "{round} open: the discarded span");
        assert_eq!(versions_in(&store, keys::table_span(killed)).await, 0, "{round} open: the unpublished span");
        assert_eq!(versions_in(&store, keys::table_span(600)).await, 1, "{round} open: the write beside them");
    }
}
