//! The KV conformance suite (`strata_core::conformance::kv`) run against [`LsmStore`], plus what
//! only a persistent store can get wrong: reopening keeps the data and never goes back in time,
//! a second open and foreign directories are refused, a crash keeps what returned `Ok`; and what
//! its change index promises: `scan_changes` equals `scan`, costs what changed (counted in rows
//! read), and stays consistent through ingests, discards and GC.

use std::cell::Cell;
use std::path::Path;

use strata_core::conformance::kv::{self, ModelOptions};
use strata_core::{
    decode_mvcc_key, keys, Descriptor, DescriptorChange, Error, IngestBatch, KvSink, KvSource, KvStore, MvccFilter,
    ScanPage, ScanRequest, Span, Timestamp,
};
use strata_native::{EmbeddedStore, LsmStore};

mod store_support;
use store_support::pages;

fn open(dir: &Path) -> LsmStore {
    LsmStore::open(dir).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// A factory of fresh stores, each in its own directory under `root`.
fn fresh_stores(root: &Path) -> impl Fn() -> LsmStore + '_ {
    let n = Cell::new(0u32);
    move || {
        n.set(n.get() + 1);
        open(&root.join(format!("store-{}", n.get())))
    }
}

/// The suite, one test per check, each on a store in its own directory.
mod lsm_store_passes_the_kv_suite {
    strata_core::kv_conformance_tests! {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        let dir = tempfile::tempdir().unwrap();
        store: super::open(dir.path()),
        gc: |store: strata_native::LsmStore, threshold| async move { store.gc(threshold).await },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lsm_store_matches_the_model_on_more_seeds() {
    let root = tempfile::tempdir().unwrap();
    let make = fresh_stores(root.path());
    for seed in 1000..1006 {
        let store = make();
        let options = ModelOptions::default().with_seed(seed).with_steps(200);
        kv::model_with_gc(&store, |t| store.gc(t), &options).await;
    }
}

#[test]
fn lsm_store_works_without_a_tokio_runtime() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    futures::executor::block_on(async {
        kv::scan_latest_and_revisions(&store).await;
        kv::ingest(&open(&root.path().join("ingest"))).await;
        kv::id_allocation(&open(&root.path().join("ids"))).await;
    });
}

#[tokio::test]
async fn reopening_keeps_data_and_never_goes_back_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let key = keys::table_key(200, b"k");
    let (t1, t2, deleted_at, threshold, next_id) = {
        let store = open(dir.path());
        let t1 = store.put(key.clone(), b"v1".to_vec()).await.unwrap();
        let t2 = store.put(key.clone(), b"v2".to_vec()).await.unwrap();
        let db = Descriptor::Database(strata_core::DatabaseDescriptor {
            id: 100,
            name: "bank".into(),
            version: 1,
            modification_time: Timestamp::ZERO,
        });
        store.allocate_ids(7).await.unwrap();
        let published = store.publish(vec![DescriptorChange::Put(db)]).await.unwrap();
        let t3 = store.delete(key.clone()).await.unwrap();
        store.gc(t1).await.unwrap();
        assert!(t1 < t2 && t2 < published && published < t3);
        (t1, t2, t3, t1, 107)
    };
    let mut last = deleted_at;
    for round in 0..3 {
        let store = open(dir.path());
        assert_eq!(store.get_at(key.clone(), t1).await.unwrap(), Some(b"v1".to_vec()), "round {round}");
        assert_eq!(store.get_at(key.clone(), t2).await.unwrap(), Some(b"v2".to_vec()), "round {round}");
        assert_eq!(store.get_at(key.clone(), deleted_at).await.unwrap(), None, "round {round}: deleted");
        assert_eq!(store.gc_threshold(&keys::table_span(200)).await.unwrap(), threshold, "round {round}");
        assert!(matches!(store.get_at(key.clone(), t1.prev()).await, Err(Error::InvalidTime(_))));
        assert_eq!(store.catalog().await.unwrap().require_database("bank").unwrap().id, 100);
        let now = store.now().await.unwrap();
        assert!(now >= last, "round {round}: now() {now} after reopening is below the last write {last}");
        let id = store.allocate_ids(1).await.unwrap();
        assert_eq!(id, next_id + round, "round {round}: the id counter survives reopening");
        let ts = store.write(vec![(key.clone(), Some(format!("round {round}").into_bytes()))]).await.unwrap();
        assert!(ts > last && ts > now, "round {round}: write at {ts} after reopening is not above {last} / {now}");
        last = ts;
        // An ingest moves the clock too, and it survives reopening.
        store.ingest(vec![(keys::table_key(300, format!("{round}").as_bytes()), b"i".to_vec())].into()).await.unwrap();
        last = last.max(store.now().await.unwrap());
    }
    let store = open(dir.path());
    assert!(store.now().await.unwrap() >= last, "now() after reopening is below the last ingest {last}");
    let request = ScanRequest::new(keys::table_span(200), t1, Timestamp::MAX, MvccFilter::AllRevisions);
    let versions = store.scan(request).await.unwrap().entries;
    assert_eq!(versions.len(), 5, "versions above the GC threshold after three reopenings: {versions:?}");
    let table_bytes = store.estimate_bytes(&keys::table_span(300)).await.unwrap();
    let expected = (0..3).map(|r: u32| (keys::table_key(300, format!("{r}").as_bytes()).len() + 2) as u64).sum();
    assert_eq!(table_bytes, Some(expected), "byte counts of the ingests after reopening");
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let err = LsmStore::open(dir.path()).expect_err("a second open of an open store");
    assert!(matches!(err, Error::Kv { .. }), "{err:?}");
    assert!(err.to_string().contains("strata.lsm"), "the error names the directory: {err}");
    // The first handle still works, and the store opens once it is closed.
    first.put(keys::table_key(200, b"k"), b"v".to_vec()).await.unwrap();
    drop(first);
    let again = open(dir.path());
    let now = again.now().await.unwrap();
    assert_eq!(again.get_at(keys::table_key(200, b"k"), now).await.unwrap(), Some(b"v".to_vec()));
}

#[tokio::test]
async fn directories_that_are_not_lsm_stores_are_refused() {
    let root = tempfile::tempdir().unwrap();
    // A redb store.
    let redb = root.path().join("redb");
    drop(EmbeddedStore::open(&redb).unwrap());
    let err = LsmStore::open(&redb).expect_err("a redb store's directory");
    assert!(err.to_string().contains("strata.redb") && err.to_string().contains("redb"), "{err}");
    assert!(!redb.join(LsmStore::DIR_NAME).exists(), "the refused open created nothing");
    // strata.lsm is a file.
    let file = root.path().join("file");
    std::fs::create_dir_all(&file).unwrap();
    std::fs::write(file.join(LsmStore::DIR_NAME), b"not a directory").unwrap();
    let err = LsmStore::open(&file).expect_err("strata.lsm is a file");
    assert!(err.to_string().contains("strata.lsm"), "{err}");
    // strata.lsm holds something else.
    let other = root.path().join("other");
    std::fs::create_dir_all(other.join(LsmStore::DIR_NAME)).unwrap();
    std::fs::write(other.join(LsmStore::DIR_NAME).join("notes.txt"), b"mine").unwrap();
    let err = LsmStore::open(&other).expect_err("strata.lsm holds other files");
    assert!(err.to_string().contains("not a strata LSM store"), "{err}");
    // A damaged version marker.
    let damaged = root.path().join("damaged");
    drop(open(&damaged));
    std::fs::write(damaged.join(LsmStore::DIR_NAME).join("version"), b"garbage").unwrap();
    let err = LsmStore::open(&damaged).expect_err("a damaged version marker");
    assert!(err.to_string().contains("strata.lsm"), "{err}");
}

/// Layout 1 (a change index without values) and layouts newer than this strata's are refused,
/// saying which version the store has.
#[tokio::test]
async fn a_store_of_another_layout_is_refused() {
    for version in [1u32, 3] {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path()));
        {
            let db = fjall::Database::builder(dir.path().join(LsmStore::DIR_NAME)).open().unwrap();
            let meta = db.keyspace("meta", fjall::KeyspaceCreateOptions::default).unwrap();
            meta.insert("layout_version", version.to_be_bytes().as_slice()).unwrap();
            db.persist(fjall::PersistMode::SyncAll).unwrap();
        }
        let err = LsmStore::open(dir.path()).expect_err("a store of another layout version");
        assert!(matches!(err, Error::NotSupported { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&format!("layout version {version}")) && text.contains("strata.lsm"), "{err}");
        assert!(text.contains("reads version 2"), "{err}");
    }
}

/// A read at `now()` stays the same while other tasks keep writing and ingesting.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn now_is_stable_under_concurrent_writes_and_ingests() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let writers: Vec<_> = (0..3u32)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..40u32 {
                    let batch: Vec<_> = (0..20u32)
                        .map(|j| (keys::table_key(200 + w % 2, format!("{j:02}").as_bytes()), format!("{w}-{i}")))
                        .collect();
                    if w == 2 {
                        store.ingest(batch.into_iter().map(|(k, v)| (k, v.into_bytes())).collect()).await.unwrap();
                    } else {
                        store.write(batch.into_iter().map(|(k, v)| (k, Some(v.into_bytes()))).collect()).await.unwrap();
                    }
                }
            })
        })
        .collect();
    let span = Span::new(keys::table_span(200).start, keys::table_span(201).end);
    let mut checks = 0;
    while !writers.iter().all(|w| w.is_finished()) {
        let now = store.now().await.unwrap();
        let request = ScanRequest::new(span.clone(), Timestamp::ZERO, now, MvccFilter::AllRevisions);
        let first = store.scan(request.clone()).await.unwrap();
        tokio::task::yield_now().await;
        let second = store.scan(request).await.unwrap();
        assert_eq!(first, second, "a read at now() = {now} changed while writes went on");
        checks += 1;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(checks > 0);
    let mut request = ScanRequest::new(span, Timestamp::ZERO, store.now().await.unwrap(), MvccFilter::AllRevisions);
    request.target_bytes = u64::MAX;
    assert_eq!(store.scan(request).await.unwrap().entries.len(), 3 * 40 * 20, "every write and ingest landed");
}

// ---------------------------------------------------------------------------------------------
// The change index.

/// Checks, in the closed store in `dir`, that `"changes"` has exactly one row per written
/// version above the GC threshold, holding that version, and no other, where a version is
/// ingested (and has no row) when an ingest record at its timestamp covers its key; and that no
/// ingest record is at or below the threshold. Returns the number of index rows and of ingested versions.
fn assert_change_index_consistent(dir: &Path) -> (usize, usize) {
    let db = fjall::Database::builder(dir.join(LsmStore::DIR_NAME)).open().unwrap();
    let ks = |name: &str| db.keyspace(name, fjall::KeyspaceCreateOptions::default).unwrap();
    let (versions, changes, ingested, meta) = (ks("versions"), ks("changes"), ks("ingested"), ks("meta"));
    let ts_of = |b: &[u8]| {
        Timestamp::new(u64::from_be_bytes(b[..8].try_into().unwrap()), u32::from_be_bytes(b[8..12].try_into().unwrap()))
    };
    let threshold = meta.get("gc_threshold").unwrap().map_or(Timestamp::ZERO, |v| ts_of(&v));
    assert_eq!(&*meta.get("layout_version").unwrap().unwrap(), 2u32.to_be_bytes(), "layout version");
    let records: Vec<(Timestamp, Vec<u8>, Vec<u8>)> = ingested
        .iter()
        .map(|row| {
            let (k, v) = row.into_inner().unwrap();
            (ts_of(&k), k[12..].to_vec(), v.to_vec())
        })
        .collect();
    for (ts, start, end) in &records {
        assert!(*ts > threshold, "ingest record at {ts} at or below the GC threshold {threshold}");
        assert!(start < end, "ingest record at {ts}: empty span");
    }
    let mut expected: Vec<(Timestamp, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut ingested_versions = 0;
    for row in versions.iter() {
        let (k, v) = row.into_inner().unwrap();
        let (key, ts) = decode_mvcc_key(&k).expect("a version's key");
        assert!(matches!(v.first(), Some(0 | 1)), "a stored version's tag");
        if records.iter().any(|(at, start, end)| *at == ts && *start <= key && key < *end) {
            ingested_versions += 1;
        } else if ts > threshold {
            expected.push((ts, key, v.to_vec()));
        }
    }
    expected.sort();
    let actual: Vec<(Timestamp, Vec<u8>, Vec<u8>)> = changes
        .iter()
        .map(|row| {
            let (k, v) = row.into_inner().unwrap();
            (ts_of(&k), k[12..].to_vec(), v.to_vec())
        })
        .collect();
    assert_eq!(actual, expected, "change index rows (left) against versions above the GC threshold {threshold}");
    (actual.len(), ingested_versions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_changes_equals_scan() {
    let root = tempfile::tempdir().unwrap();
    let make = fresh_stores(root.path());
    let store = make();
    assert!(kv::scan_changes_matches_scan(&store).await > 100);
    // Windows read by passes, with more changed keys than one pass collects.
    let store = make();
    store.set_max_merged_runs(0);
    store.set_changed_keys_per_pass(2);
    assert!(kv::scan_changes_matches_scan(&store).await > 100);
    // Some windows merged, some read by passes.
    let store = make();
    store.set_max_merged_runs(2);
    assert!(kv::scan_changes_matches_scan(&store).await > 100);
    let request = ScanRequest::new(keys::table_span(200), Timestamp::ZERO, Timestamp::MAX, MvccFilter::Latest);
    assert_eq!(store.scan_changes(request).await.unwrap(), None, "scan_changes from time zero");
}

/// The randomized model (writes, ingestions, publishes, id allocations, discards, GC) compares
/// `scan_changes` with `scan` on every scan, by passes of few keys, by merging, and with the
/// defaults; afterwards the change index holds exactly the versions above the GC threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_index_survives_the_model() {
    let root = tempfile::tempdir().unwrap();
    for (seed, keys_per_pass, merged_runs) in [(2000, 3, 0), (2001, 1, 0), (2002, 1 << 15, 64), (2003, 2, 4)] {
        let dir = root.path().join(format!("store-{seed}"));
        {
            let store = open(&dir);
            store.set_changed_keys_per_pass(keys_per_pass);
            store.set_max_merged_runs(merged_runs);
            let options = ModelOptions::default().with_seed(seed).with_steps(150);
            kv::model_with_gc(&store, |t| store.gc(t), &options).await;
        }
        let (rows, ingested) = assert_change_index_consistent(&dir);
        assert!(rows > 0, "seed {seed}: an empty change index");
        assert!(ingested > 0, "seed {seed}: no ingested versions");
    }
}

#[tokio::test]
async fn discard_and_gc_keep_the_change_index_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let span = keys::table_span(200);
    let (t0, t1) = {
        let store = open(dir.path());
        let t0 = store.now().await.unwrap();
        for i in 0..20u32 {
            let batch = (0..10u32)
                .map(|j| (keys::table_key(200 + j % 2, &j.to_be_bytes()), (i % 5 != 4).then(|| vec![i as u8; 3])))
                .collect();
            store.write(batch).await.unwrap();
        }
        // An ingest into table 201 too, whose versions have no index rows.
        store.ingest(vec![(keys::table_key(201, b"ingested"), b"i".to_vec())].into()).await.unwrap();
        let t1 = store.now().await.unwrap();
        store.discard(&[keys::table_span(201)]).await.unwrap();
        assert_eq!(store.estimate_bytes(&keys::table_span(201)).await.unwrap(), Some(0), "bytes after the discard");
        let request = ScanRequest::new(keys::table_span(201), t0, t1, MvccFilter::AllRevisions);
        // The discarded versions left the index: merging the 20 writes' runs reads one row per
        // write (finding it) and none of the span; passes read the 100 rows of table 200.
        for (merged_runs, expected_rows) in [(64, 20), (0, 100)] {
            store.set_max_merged_runs(merged_runs);
            let before = store.stats();
            let page = store.scan_changes(request.clone()).await.unwrap();
            assert_eq!(page, Some(ScanPage::default()), "a discarded span (its ingest record went with it)");
            let after = store.stats();
            assert_eq!(after.change_rows_read - before.change_rows_read, expected_rows, "merging {merged_runs} runs");
        }
        store.set_max_merged_runs(64);
        let middle = store.scan(ScanRequest::new(span.clone(), t0, t1, MvccFilter::AllRevisions)).await.unwrap();
        let gc_at = middle.entries[middle.entries.len() / 2].ts;
        store.gc(gc_at).await.unwrap();
        let refused = store.scan_changes(ScanRequest::new(span.clone(), t0, t1, MvccFilter::Latest)).await;
        assert!(matches!(refused, Err(Error::InvalidTime(_))), "scan_changes below the GC threshold: {refused:?}");
        for filter in [MvccFilter::Latest, MvccFilter::AllRevisions] {
            let request = ScanRequest::new(span.clone(), gc_at, t1, filter);
            assert_eq!(pages(&store, request.clone(), true).await, pages(&store, request, false).await);
        }
        (gc_at, t1)
    };
    let (rows, ingested) = assert_change_index_consistent(dir.path());
    assert!(rows > 0 && rows < 100, "index rows above the GC threshold {t0}: {rows}");
    assert_eq!(ingested, 0, "the discard removed the ingested version");
    let store = open(dir.path());
    let request = ScanRequest::new(span, t0, t1, MvccFilter::AllRevisions);
    assert_eq!(pages(&store, request.clone(), true).await, pages(&store, request, false).await, "after reopening");
}

/// An ingest writes no change-index rows: it records its timestamp and the span of its keys
/// once, and `scan_changes` leaves a window holding such a record for an overlapping span to a
/// full scan (`None`), while answering windows and spans the ingest is not in; GC removes the
/// records at or below its threshold.
#[tokio::test]
async fn an_ingest_records_its_span_once_and_scan_changes_leaves_it_to_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let key = |i: u32| keys::table_key(100, format!("k{i:04}").as_bytes());
    {
        let store = open(dir.path());
        let t0 = store.put(keys::table_key(101, b"other"), b"o".to_vec()).await.unwrap();
        // Two batches, the second not in order: each is one record of its smallest and largest key.
        store.ingest((0..100).map(|i| (key(i), format!("v{i}").into_bytes())).collect()).await.unwrap();
        store.ingest((100..200).rev().map(|i| (key(i), format!("v{i}").into_bytes())).collect()).await.unwrap();
        let t1 = store.now().await.unwrap();
        let t2 = store.put(key(7), b"changed".to_vec()).await.unwrap();
        let changes = |span: Span, start, end| {
            let store = store.clone();
            async move { store.scan_changes(ScanRequest::new(span, start, end, MvccFilter::AllRevisions)).await }
        };
        let table = keys::table_span(100);
        assert_eq!(changes(table.clone(), t0, t1).await.unwrap(), None, "a window holding the ingests");
        assert_eq!(changes(table.clone(), t0, t2).await.unwrap(), None, "a window holding the ingests and a write");
        let last_keys = Span::new(key(150), table.end.clone());
        assert_eq!(changes(last_keys, t0, t1).await.unwrap(), None, "a span overlapping the second ingest");
        let after = Span::new(key(200), table.end.clone());
        assert_eq!(changes(after, t0, t1).await.unwrap(), Some(ScanPage::default()), "a span after the ingests");
        let other = changes(keys::table_span(101), t0.prev(), t2).await.unwrap().expect("another table");
        assert_eq!(other.entries.len(), 1, "{other:?}");
        let since = changes(table.clone(), t1, t2).await.unwrap().expect("a window after the ingests");
        assert_eq!(since.entries.len(), 1, "{since:?}");
        assert_eq!(&since.entries[0].key[..], key(7).as_slice());
        let all = store.scan(ScanRequest::new(table.clone(), t0, t1, MvccFilter::AllRevisions)).await.unwrap();
        assert_eq!(all.entries.len(), 200);
        assert_eq!(
            store.estimate_bytes(&table).await.unwrap(),
            Some(
                (0..200).map(|i| (key(i).len() + 1 + format!("v{i}").len()) as u64).sum::<u64>()
                    + key(7).len() as u64
                    + 8
            ),
            "byte counts of the ingests and the write"
        );
        // GC at the first ingest's time drops its record; the second's stays.
        let first_ingest = store.scan(ScanRequest::new(Span::new(key(0), key(1)), t0, t1, MvccFilter::Latest)).await;
        let first_ingest = first_ingest.unwrap().entries[0].ts;
        store.gc(first_ingest).await.unwrap();
        let window = changes(table, first_ingest, t2).await.unwrap();
        assert_eq!(window, None, "the second ingest is above the threshold");
    }
    let (rows, ingested) = assert_change_index_consistent(dir.path());
    assert_eq!((rows, ingested), (1, 100), "index rows above the threshold: the write of key 7; one ingest left");
}

/// The cost claim, counted ([`store_support::scan_changes_costs_what_changed`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_changes_costs_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    store_support::scan_changes_costs_what_changed(&open(dir.path())).await;
}

/// The child half of [`what_returned_ok_survives_a_crash`]: writes into the store named by
/// `STRATA_CRASH_STORE` as `STRATA_CRASH_STEP` says, then aborts (no clean close).
#[test]
fn crash_child() {
    let (Ok(dir), Ok(step)) = (std::env::var("STRATA_CRASH_STORE"), std::env::var("STRATA_CRASH_STEP")) else {
        return;
    };
    let store = open(Path::new(&dir));
    futures::executor::block_on(async {
        store.put(keys::table_key(101, step.as_bytes()), b"durable".to_vec()).await.unwrap();
        store
            .ingest((0..1000u32).map(|i| (keys::table_key(100, &i.to_be_bytes()), vec![7; 100])).collect())
            .await
            .unwrap();
        match step.as_str() {
            "publish" => {
                let db = strata_core::DatabaseDescriptor {
                    id: 100,
                    name: "restored".into(),
                    version: 1,
                    modification_time: Timestamp::ZERO,
                };
                store.publish(vec![DescriptorChange::Put(Descriptor::Database(db))]).await.unwrap();
            }
            "mid-ingest" => {
                // A second, larger ingest still running when the process dies (wherever it got to).
                let store = store.clone();
                std::thread::spawn(move || {
                    let pairs: IngestBatch =
                        (0..200_000u32).map(|i| (keys::table_key(102, &i.to_be_bytes()), vec![9; 100])).collect();
                    let _ = futures::executor::block_on(store.ingest(pairs));
                });
            }
            _ => {}
        }
    });
    std::process::abort();
}

/// A process that dies leaves a store that opens cleanly with everything a call returned `Ok`
/// for: writes, ingests (synced when they return, not at the next durable commit), publishes;
/// an ingest cut short is all there or not at all, and nothing of a restore that did not publish
/// is in the catalog.
#[test]
fn what_returned_ok_survives_a_crash() {
    let root = tempfile::tempdir().unwrap();
    for step in ["ingest", "publish", "mid-ingest"] {
        let dir = root.path().join(step);
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("STRATA_CRASH_STORE", &dir)
            .env("STRATA_CRASH_STEP", step)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "{step}: the child aborts");
        let store = open(&dir);
        futures::executor::block_on(async {
            let now = store.now().await.unwrap();
            let durable = store.get_at(keys::table_key(101, step.as_bytes()), now).await.unwrap();
            assert_eq!(durable, Some(b"durable".to_vec()), "{step}: the write before the ingest");
            let count = |table| {
                let store = store.clone();
                async move {
                    let mut request =
                        ScanRequest::new(keys::table_span(table), Timestamp::ZERO, now, MvccFilter::Latest);
                    request.target_bytes = u64::MAX;
                    store.scan(request).await.unwrap().entries.len()
                }
            };
            assert_eq!(count(100).await, 1000, "{step}: the ingest that returned Ok");
            let published = store.catalog().await.unwrap().database("restored").is_some();
            assert_eq!(published, step == "publish", "{step}: the publish");
            let cut = count(102).await;
            assert!(cut == 0 || cut == 200_000, "{step}: an ingest cut short is all or nothing: {cut}");
            // The store keeps working: a new ingest and write land above every surviving one.
            store.ingest(vec![(keys::table_key(100, b"again"), b"1".to_vec())].into()).await.unwrap();
            assert!(store.put(keys::table_key(101, b"z"), b"z".to_vec()).await.unwrap() > now);
        });
    }
}

store_support::killed_restore_tests!(open);
