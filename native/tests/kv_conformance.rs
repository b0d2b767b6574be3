//! The KV conformance suite (`strata_core::conformance::kv`) run against [`EmbeddedStore`], plus
//! what only a persistent store can get wrong: reopening keeps the data, the GC threshold and the
//! id counter, and never issues a timestamp at or below one issued before; and what its change
//! index promises: `scan_changes` equals `scan`, costs what changed (counted in rows read), stays
//! consistent through discards and GC, and is built when a layout version 1 store is opened.

use std::cell::Cell;
use std::path::Path;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use strata_core::conformance::kv::{self, ModelOptions};
use strata_core::{
    keys, Descriptor, DescriptorChange, Error, IngestBatch, KvSink, KvSource, KvStore, MvccFilter, ScanPage,
    ScanRequest, Span, Timestamp,
};
use strata_native::EmbeddedStore;

mod store_support;
use store_support::pages;

fn open(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(dir).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// A factory of fresh stores, each in its own directory under `root`.
fn fresh_stores(root: &Path) -> impl Fn() -> EmbeddedStore + '_ {
    let n = Cell::new(0u32);
    move || {
        n.set(n.get() + 1);
        open(&root.join(format!("store-{}", n.get())))
    }
}

/// The suite, one test per check, each on a store in its own directory.
mod embedded_store_passes_the_kv_suite {
    strata_core::kv_conformance_tests! {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        let dir = tempfile::tempdir().unwrap();
        store: super::open(dir.path()),
        gc: |store: strata_native::EmbeddedStore, threshold| async move { store.gc(threshold).await },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_matches_the_model_on_more_seeds() {
    let root = tempfile::tempdir().unwrap();
    let make = fresh_stores(root.path());
    for seed in 1000..1004 {
        let store = make();
        let options = ModelOptions::default().with_seed(seed).with_steps(200);
        kv::model_with_gc(&store, |t| store.gc(t), &options).await;
    }
}

#[test]
fn embedded_store_works_without_a_tokio_runtime() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    futures::executor::block_on(async {
        kv::scan_latest_and_revisions(&store).await;
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
    // Reopen a few times; each time, write and check timestamps only move forward.
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
    }
    let store = open(dir.path());
    let mut request = ScanRequest::new(keys::table_span(200), t1, Timestamp::MAX, MvccFilter::AllRevisions);
    request.target_bytes = 1 << 20;
    let versions = store.scan(request).await.unwrap().entries;
    assert_eq!(versions.len(), 5, "versions above the GC threshold after three reopenings: {versions:?}");
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path());
    let err = EmbeddedStore::open(dir.path()).expect_err("a second open of an open store");
    assert!(matches!(err, Error::Kv { .. }), "{err:?}");
    assert!(err.to_string().contains("strata.redb"), "the error names the file: {err}");
}

#[tokio::test]
async fn a_file_that_is_not_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(EmbeddedStore::FILE_NAME), b"not a redb database, just some bytes").unwrap();
    let err = EmbeddedStore::open(dir.path()).expect_err("opening a garbage file");
    assert!(err.to_string().contains("strata.redb"), "the error names the file: {err}");
}

/// A read at `now()` stays the same while other tasks keep writing: `now()` never answers above a
/// write that is still committing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn now_is_stable_under_concurrent_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let writers: Vec<_> = (0..3u32)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..60u32 {
                    let batch = (0..20u32)
                        .map(|j| {
                            (keys::table_key(200, format!("{j:02}").as_bytes()), Some(format!("{w}-{i}").into_bytes()))
                        })
                        .collect();
                    store.write(batch).await.unwrap();
                }
            })
        })
        .collect();
    let span = keys::table_span(200);
    let mut checks = 0;
    while !writers.iter().all(|w| w.is_finished()) {
        let now = store.now().await.unwrap();
        let request = ScanRequest::new(span.clone(), Timestamp::ZERO, now, MvccFilter::AllRevisions);
        let first = store.scan(request.clone()).await.unwrap();
        tokio::task::yield_now().await;
        let second = store.scan(request).await.unwrap();
        assert_eq!(first, second, "a read at now() = {now} changed while writes went on");
        assert!(first.entries.iter().all(|e| e.ts <= now));
        checks += 1;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(checks > 0);
    let all = store
        .scan(ScanRequest::new(span, Timestamp::ZERO, store.now().await.unwrap(), MvccFilter::AllRevisions))
        .await
        .unwrap();
    assert_eq!(all.entries.len(), 3 * 60 * 20, "every concurrent write landed");
}

/// One million rows ingested in batches and read back in 1 MiB pages: a smoke test of bulk
/// performance (run with `cargo test --release -- --ignored bulk`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: a million rows"]
async fn bulk_ingest_and_scan_of_a_million_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let rows = 1_000_000u32;
    let started = std::time::Instant::now();
    for batch in 0..rows / 50_000 {
        let pairs: IngestBatch = (batch * 50_000..(batch + 1) * 50_000)
            .map(|i| (keys::table_key(100, &i.to_be_bytes()), vec![b'v'; 64]))
            .collect();
        store.ingest(pairs).await.unwrap();
    }
    let ingested = started.elapsed();
    let end = store.now().await.unwrap();
    let mut request = ScanRequest::new(keys::table_span(100), Timestamp::ZERO, end, MvccFilter::Latest);
    let mut seen = 0u32;
    loop {
        let page = store.scan(request.clone()).await.unwrap();
        seen += page.entries.len() as u32;
        match page.resume_key {
            Some(k) => request.span.start = k,
            None => break,
        }
    }
    assert_eq!(seen, rows);
    eprintln!("ingest of {rows} rows: {ingested:?}; scan: {:?}", started.elapsed() - ingested);
}

// ---------------------------------------------------------------------------------------------
// The change index.

/// The store's tables as the on-disk layout documents them, for the layout tests.
const MVCC: TableDefinition<'static, (&'static [u8], u64, u32), &'static [u8]> = TableDefinition::new("mvcc");
const CHANGES: TableDefinition<'static, (u64, u32, &'static [u8]), &'static [u8]> = TableDefinition::new("change_log");
/// The change index of layout versions 2 and 3: keys without values.
const OLD_CHANGES: TableDefinition<'static, (u64, u32, &'static [u8]), ()> = TableDefinition::new("changes");
const INGESTED: TableDefinition<'static, (u64, u32, &'static [u8]), &'static [u8]> = TableDefinition::new("ingested");
const META: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("meta");

fn encode_ts(ts: Timestamp) -> Vec<u8> {
    [ts.wall.to_be_bytes().as_slice(), ts.logical.to_be_bytes().as_slice()].concat()
}

/// Checks, in the closed store in `dir`, that the change log has exactly one row per written
/// version above the GC threshold, holding that version's stored value, and no other, where a version is ingested (and has no row) when
/// an ingest record at its timestamp covers its key; and that no ingest record is at or below the
/// threshold. Returns the number of index rows and of ingested versions.
fn assert_change_index_consistent(dir: &Path) -> (usize, usize) {
    let db = redb::Database::open(dir.join(EmbeddedStore::FILE_NAME)).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    let threshold = meta.get("gc_threshold").unwrap().map_or(Timestamp::ZERO, |v| {
        let b = v.value();
        Timestamp::new(u64::from_be_bytes(b[..8].try_into().unwrap()), u32::from_be_bytes(b[8..].try_into().unwrap()))
    });
    assert_eq!(meta.get("layout_version").unwrap().unwrap().value(), 4u32.to_be_bytes(), "layout version");
    let records = ingest_records(&txn);
    for (ts, start, end) in &records {
        assert!(*ts > threshold, "ingest record at {ts} at or below the GC threshold {threshold}");
        assert!(start < end, "ingest record at {ts}: empty span {start:02x?}..{end:02x?}");
    }
    let mut expected: Vec<(u64, u32, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut ingested = 0;
    for row in txn.open_table(MVCC).unwrap().iter().unwrap() {
        let (k, v) = row.unwrap();
        let (key, inverted_wall, inverted_logical) = k.value();
        let ts = Timestamp::new(u64::MAX - inverted_wall, u32::MAX - inverted_logical);
        if records.iter().any(|(at, start, end)| *at == ts && start.as_slice() <= key && key < end.as_slice()) {
            ingested += 1;
        } else if ts > threshold {
            expected.push((ts.wall, ts.logical, key.to_vec(), v.value().to_vec()));
        }
    }
    expected.sort();
    assert!(
        txn.open_table(OLD_CHANGES).is_err(),
        "the keys-only change index of layout versions 2 and 3 is still there"
    );
    let actual: Vec<(u64, u32, Vec<u8>, Vec<u8>)> = txn
        .open_table(CHANGES)
        .unwrap()
        .iter()
        .unwrap()
        .map(|row| {
            let (k, v) = row.unwrap();
            let (wall, logical, key) = k.value();
            (wall, logical, key.to_vec(), v.value().to_vec())
        })
        .collect();
    assert_eq!(actual, expected, "change log rows (left) against versions above the GC threshold {threshold}");
    (actual.len(), ingested)
}

/// The ingest records of a store: (timestamp, span start, span end).
fn ingest_records(txn: &redb::ReadTransaction) -> Vec<(Timestamp, Vec<u8>, Vec<u8>)> {
    let table = txn.open_table(INGESTED).unwrap();
    let rows = table.iter().unwrap().map(|row| {
        let (k, v) = row.unwrap();
        let (wall, logical, start) = k.value();
        (Timestamp::new(wall, logical), start.to_vec(), v.value().to_vec())
    });
    rows.collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_changes_equals_scan() {
    let root = tempfile::tempdir().unwrap();
    let make = fresh_stores(root.path());
    let store = make();
    let answered = kv::scan_changes_matches_scan(&store).await;
    assert!(answered > 100, "scan_changes answered only {answered} pages of the checks");
    // Windows of more writes than are merged, read by passes, with more changed keys than one
    // pass collects.
    let store = make();
    store.set_max_merged_runs(0);
    store.set_changed_keys_per_pass(2);
    assert!(kv::scan_changes_matches_scan(&store).await > 100);
    // Some windows merged, some read by passes.
    let store = make();
    store.set_max_merged_runs(2);
    assert!(kv::scan_changes_matches_scan(&store).await > 100);
    // A start at zero is a full scan's job.
    let request = ScanRequest::new(keys::table_span(200), Timestamp::ZERO, Timestamp::MAX, MvccFilter::Latest);
    assert_eq!(store.scan_changes(request).await.unwrap(), None, "scan_changes from time zero");
}

/// The randomized model (writes, ingestions, publishes, id allocations, discards, GC) compares
/// `scan_changes` with `scan` on every scan, reading windows by passes that collect at most 3 or
/// 1 keys (many passes), by merging up to 4 writes' runs, and with the defaults; afterwards the
/// change log holds exactly the versions above the GC threshold.
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
        let t1 = store.now().await.unwrap();
        store.discard(&[keys::table_span(201)]).await.unwrap();
        let request = ScanRequest::new(keys::table_span(201), t0, t1, MvccFilter::AllRevisions);
        // The discarded versions left the log: merging the 20 writes' runs reads one row per
        // write (finding it) and none of the span; passes read the 100 rows of table 200.
        for (merged_runs, expected_rows) in [(64, 20), (0, 100)] {
            store.set_max_merged_runs(merged_runs);
            let before = store.stats();
            assert_eq!(
                store.scan_changes(request.clone()).await.unwrap(),
                Some(ScanPage::default()),
                "a discarded span"
            );
            let after = store.stats();
            assert_eq!(
                after.change_rows_read - before.change_rows_read,
                expected_rows,
                "change-log rows read after a discard, merging up to {merged_runs} runs"
            );
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
    let (rows, _) = assert_change_index_consistent(dir.path());
    assert!(rows > 0 && rows < 100, "index rows above the GC threshold {t0}: {rows}");
    let store = open(dir.path());
    let request = ScanRequest::new(span, t0, t1, MvccFilter::AllRevisions);
    assert_eq!(pages(&store, request.clone(), true).await, pages(&store, request, false).await, "after reopening");
}

/// The cost claim, counted ([`store_support::scan_changes_costs_what_changed`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_changes_costs_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    store_support::scan_changes_costs_what_changed(&open(dir.path())).await;
}

/// A store written by layout version 1 (no change index) is moved to version 3 when opened: the
/// index is built from its versions above the GC threshold, and `scan_changes` answers at once.
#[tokio::test]
async fn a_layout_version_1_store_gets_its_change_index_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(EmbeddedStore::FILE_NAME);
    let ts = |wall: u64| Timestamp::new(1_700_000_000_000_000_000 + wall, 0);
    let counter = 107u32.to_be_bytes();
    // (key, timestamp, value or deletion)
    type Version<'a> = (Vec<u8>, Timestamp, Option<&'a [u8]>);
    let versions: Vec<Version<'_>> = vec![
        (keys::table_key(100, b"a"), ts(10), Some(b"a1")),
        (keys::table_key(100, b"a"), ts(30), Some(b"a2")),
        (keys::table_key(100, b"b"), ts(20), Some(b"b1")),
        (keys::table_key(100, b"b"), ts(40), None),
        (keys::table_key(100, b"c"), ts(5), Some(b"c1")),
        (keys::ID_COUNTER_KEY.to_vec(), ts(25), Some(&counter[..])),
    ];
    {
        // What layout version 1 wrote: "mvcc" and "meta", no "changes".
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut mvcc = txn.open_table(MVCC).unwrap();
            for (key, at, value) in &versions {
                let stored = match value {
                    Some(v) => [&[1u8][..], v].concat(),
                    None => vec![0u8],
                };
                mvcc.insert((key.as_slice(), u64::MAX - at.wall, u32::MAX - at.logical), stored.as_slice()).unwrap();
            }
            let mut meta = txn.open_table(META).unwrap();
            meta.insert("layout_version", 1u32.to_be_bytes().as_slice()).unwrap();
            meta.insert("last_timestamp", encode_ts(ts(40)).as_slice()).unwrap();
            meta.insert("gc_threshold", encode_ts(ts(10)).as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    {
        let store = open(dir.path());
        let span = Span::new(vec![], vec![0xff]);
        for (start, end) in [(ts(10), ts(40)), (ts(20), ts(30)), (ts(25), ts(45)), (ts(10), Timestamp::MAX)] {
            for filter in [MvccFilter::Latest, MvccFilter::AllRevisions] {
                let mut request = ScanRequest::new(span.clone(), start, end, filter);
                request.target_bytes = 1;
                let fast = pages(&store, request.clone(), true).await;
                assert_eq!(fast, pages(&store, request, false).await, "({start}, {end}] {filter:?}");
            }
        }
        let all = ScanRequest::new(span, ts(10), ts(40), MvccFilter::AllRevisions);
        let changed: Vec<_> = pages(&store, all, true).await.into_iter().flat_map(|p| p.entries).collect();
        assert_eq!(changed.len(), 4, "versions above the GC threshold: {changed:?}");
        assert_eq!(store.allocate_ids(1).await.unwrap(), 107, "the id counter of the old store");
    }
    assert_eq!(assert_change_index_consistent(dir.path()), (5, 0), "index rows after the upgrade and one write");
}

#[tokio::test]
async fn a_store_of_a_newer_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    {
        let db = redb::Database::open(dir.path().join(EmbeddedStore::FILE_NAME)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert("layout_version", 5u32.to_be_bytes().as_slice()).unwrap();
        txn.commit().unwrap();
    }
    let err = EmbeddedStore::open(dir.path()).expect_err("a store of layout version 5");
    assert!(matches!(err, Error::NotSupported { .. }), "{err:?}");
    assert!(err.to_string().contains("layout version 5"), "{err}");
}

/// An ingest writes no change-index rows: it records its timestamp and the span of its keys
/// once, and `scan_changes` leaves a window holding such a record for an overlapping span to a
/// full scan (`None`), while answering windows and spans the ingest is not in. `discard` removes
/// the records of the spans it empties.
#[tokio::test]
async fn an_ingest_records_its_span_once_and_scan_changes_leaves_it_to_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let key = |i: u32| keys::table_key(100, format!("k{i:04}").as_bytes());
    let (t0, t1, t2) = {
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
        // Every ingested version is still found: by the scan the caller falls back to.
        let all = store.scan(ScanRequest::new(table, t0, t1, MvccFilter::AllRevisions)).await.unwrap();
        assert_eq!(all.entries.len(), 200);
        (t0, t1, t2)
    };
    {
        let db = redb::Database::open(dir.path().join(EmbeddedStore::FILE_NAME)).unwrap();
        let txn = db.begin_read().unwrap();
        let records = ingest_records(&txn);
        let spans: Vec<(Vec<u8>, Vec<u8>)> = records.iter().map(|(_, s, e)| (s.clone(), e.clone())).collect();
        let successor = |k: Vec<u8>| [k, vec![0]].concat();
        assert_eq!(spans, vec![(key(0), successor(key(99))), (key(100), successor(key(199)))], "ingest records");
        assert!(records.iter().all(|(ts, _, _)| t0 < *ts && *ts <= t1), "{records:?}");
    }
    assert_eq!(assert_change_index_consistent(dir.path()), (2, 200), "index rows: the two writes");
    let store = open(dir.path());
    store.discard(&[keys::table_span(100)]).await.unwrap();
    let request = ScanRequest::new(keys::table_span(100), t0, t2, MvccFilter::AllRevisions);
    assert_eq!(store.scan_changes(request).await.unwrap(), Some(ScanPage::default()), "after the discard");
    drop(store);
    let db = redb::Database::open(dir.path().join(EmbeddedStore::FILE_NAME)).unwrap();
    assert_eq!(ingest_records(&db.begin_read().unwrap()), vec![], "ingest records after the discard");
}

/// GC removes the ingest records at or below its threshold with the index rows; a record above it
/// stays, and still sends its window to a scan.
#[tokio::test]
async fn gc_removes_the_ingest_records_below_its_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = {
        let store = open(dir.path());
        let t0 = store.put(keys::table_key(101, b"x"), b"x".to_vec()).await.unwrap();
        store.ingest(vec![(keys::table_key(100, b"a"), b"1".to_vec())].into()).await.unwrap();
        let t1 = store.put(keys::table_key(101, b"y"), b"y".to_vec()).await.unwrap();
        store.ingest(vec![(keys::table_key(100, b"b"), b"2".to_vec())].into()).await.unwrap();
        store.gc(t1).await.unwrap();
        let request = ScanRequest::new(keys::table_span(100), t1, Timestamp::MAX, MvccFilter::Latest);
        assert_eq!(store.scan_changes(request).await.unwrap(), None, "the ingest above the GC threshold");
        t0
    };
    let db = redb::Database::open(dir.path().join(EmbeddedStore::FILE_NAME)).unwrap();
    let records = ingest_records(&db.begin_read().unwrap());
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].1, keys::table_key(100, b"b"));
    assert!(records[0].0 > t0);
}

/// A store of layout version 2 (a change-index row for every version, no `"ingested"`) is moved
/// to version 3 when opened: the table is created, and ingests work.
#[tokio::test]
async fn a_layout_version_2_store_gets_its_ingest_records_table_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = {
        let store = open(dir.path());
        store.put(keys::table_key(100, b"a"), b"1".to_vec()).await.unwrap()
    };
    downgrade(dir.path(), 2);
    {
        let store = open(dir.path());
        store.ingest(vec![(keys::table_key(100, b"b"), b"2".to_vec())].into()).await.unwrap();
        let request = ScanRequest::new(keys::table_span(100), t0.prev(), Timestamp::MAX, MvccFilter::Latest);
        assert_eq!(store.scan_changes(request.clone()).await.unwrap(), None);
        assert_eq!(store.scan(request).await.unwrap().entries.len(), 2);
    }
    assert_eq!(assert_change_index_consistent(dir.path()), (1, 1));
}

/// Turns the closed layout version 4 store in `dir` into what layout `version` (2 or 3) wrote:
/// the change log becomes `"changes"`, keys without values; version 2 had no `"ingested"`.
fn downgrade(dir: &Path, version: u32) {
    let db = redb::Database::open(dir.join(EmbeddedStore::FILE_NAME)).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let log = txn.open_table(CHANGES).unwrap();
        let mut old = txn.open_table(OLD_CHANGES).unwrap();
        for row in log.iter().unwrap() {
            let (k, _) = row.unwrap();
            old.insert(k.value(), ()).unwrap();
        }
    }
    assert!(txn.delete_table(CHANGES).unwrap(), "a version 4 store has \"change_log\"");
    if version == 2 {
        assert!(txn.delete_table(INGESTED).unwrap(), "a version 4 store has \"ingested\"");
    }
    txn.open_table(META).unwrap().insert("layout_version", version.to_be_bytes().as_slice()).unwrap();
    txn.commit().unwrap();
}

/// A store written by layout version 3 (a change index of keys only) is moved to version 4 when
/// opened: each index row becomes a change-log row with its version's value, and scans of
/// changes over the old writes answer as scans do.
#[tokio::test]
async fn a_layout_version_3_store_gets_its_change_log_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = {
        let store = open(dir.path());
        let t0 = store.now().await.unwrap();
        for i in 0..30u32 {
            let batch = (0..7u32)
                .map(|j| (keys::table_key(100, &((i * 3 + j) % 40).to_be_bytes()), (j != 3).then(|| vec![i as u8; 5])))
                .collect();
            store.write(batch).await.unwrap();
        }
        t0
    };
    let (rows, _) = assert_change_index_consistent(dir.path());
    downgrade(dir.path(), 3);
    {
        let store = open(dir.path());
        let t1 = store.now().await.unwrap();
        for filter in [MvccFilter::Latest, MvccFilter::AllRevisions] {
            let mut request = ScanRequest::new(keys::table_span(100), t0, t1, filter);
            request.target_bytes = 50;
            let fast = pages(&store, request.clone(), true).await;
            assert!(fast.len() > 3, "{filter:?}: {} pages", fast.len());
            assert_eq!(fast, pages(&store, request, false).await, "{filter:?} after the upgrade");
        }
    }
    assert_eq!(assert_change_index_consistent(dir.path()).0, rows, "change-log rows after the upgrade");
}

/// The child half of [`ingests_become_durable_with_the_next_durable_commit`]: writes into the
/// store named by `STRATA_CRASH_STORE` as `STRATA_CRASH_STEP` says, then aborts (no clean close).
#[test]
fn crash_child() {
    let (Ok(dir), Ok(step)) = (std::env::var("STRATA_CRASH_STORE"), std::env::var("STRATA_CRASH_STEP")) else {
        return;
    };
    // Open until the abort: dropping the last handle closes the database cleanly.
    let store = open(Path::new(&dir));
    futures::executor::block_on(async {
        store.put(keys::table_key(101, step.as_bytes()), b"durable".to_vec()).await.unwrap();
        store
            .ingest((0..1000u32).map(|i| (keys::table_key(100, &i.to_be_bytes()), vec![7; 100])).collect())
            .await
            .unwrap();
        if step == "publish" {
            let db = strata_core::DatabaseDescriptor {
                id: 100,
                name: "restored".into(),
                version: 1,
                modification_time: Timestamp::ZERO,
            };
            store.publish(vec![DescriptorChange::Put(Descriptor::Database(db))]).await.unwrap();
        }
    });
    std::process::abort();
}

/// Ingests commit without an fsync: a process that dies before the next durable commit leaves a
/// store that opens cleanly with every durable write and none of those ingests (invisible anyway:
/// they went to spans no descriptor names); a publish after them makes them durable with it.
#[test]
fn ingests_become_durable_with_the_next_durable_commit() {
    let root = tempfile::tempdir().unwrap();
    for step in ["ingest", "publish"] {
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
            let request = ScanRequest::new(keys::table_span(100), Timestamp::ZERO, now, MvccFilter::Latest);
            let ingested = store.scan(request).await.unwrap().entries.len();
            let published = store.catalog().await.unwrap().database("restored").is_some();
            match step {
                "ingest" => assert_eq!((ingested, published), (0, false), "{step}: after the crash"),
                _ => assert_eq!((ingested, published), (1000, true), "{step}: after the crash"),
            }
            // The store keeps working: a new ingest and write land above every surviving one.
            store.ingest(vec![(keys::table_key(100, b"again"), b"1".to_vec())].into()).await.unwrap();
            assert!(store.put(keys::table_key(101, b"z"), b"z".to_vec()).await.unwrap() > now);
        });
    }
}

/// `scan` against `scan_changes` over a million keys of which 1% changed, in a release build:
/// `cargo test --release -p strata-native --test kv_conformance -- --ignored --nocapture incremental_scan`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: a million rows; a measurement, run in release"]
async fn incremental_scan_of_a_million_keys_with_one_percent_changed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let rows = 1_000_000u32;
    for batch in 0..rows / 50_000 {
        let pairs: IngestBatch = (batch * 50_000..(batch + 1) * 50_000)
            .map(|i| (keys::table_key(100, &i.to_be_bytes()), vec![b'v'; 64]))
            .collect();
        store.ingest(pairs).await.unwrap();
    }
    let t0 = store.now().await.unwrap();
    let changed = rows / 100;
    for w in 0..changed / 1_000 {
        let batch = (0..1_000u32)
            .map(|j| (keys::table_key(100, &((w * 1_000 + j) * 100 + 37).to_be_bytes()), Some(vec![b'w'; 64])))
            .collect();
        store.write(batch).await.unwrap();
    }
    let t1 = store.now().await.unwrap();
    for filter in [MvccFilter::Latest, MvccFilter::AllRevisions] {
        let request = ScanRequest::new(keys::table_span(100), t0, t1, filter);
        let s0 = store.stats();
        let started = std::time::Instant::now();
        let slow = pages(&store, request.clone(), false).await;
        let scan_time = started.elapsed();
        // Cold: forget the changed keys collected by earlier scans of this window.
        store.set_changed_keys_per_pass(1 << 15);
        let s1 = store.stats();
        let started = std::time::Instant::now();
        let fast = pages(&store, request, true).await;
        let changes_time = started.elapsed();
        let s2 = store.stats();
        assert_eq!(fast, slow);
        assert_eq!(fast.iter().map(|p| p.entries.len()).sum::<usize>(), changed as usize);
        eprintln!(
            "{filter:?}: {rows} keys, {changed} changed, {} pages of 1 MiB: scan {scan_time:?} ({} rows read), \
             scan_changes {changes_time:?} ({} index rows + {} MVCC rows read)",
            fast.len(),
            s1.mvcc_rows_read - s0.mvcc_rows_read,
            s2.change_rows_read - s1.change_rows_read,
            s2.mvcc_rows_read - s1.mvcc_rows_read,
        );
    }
}

/// The KV plugin example (`cargo run --example kv_plugin`), its code as it is.
#[path = "../examples/kv_plugin.rs"]
#[allow(dead_code)]
mod kv_plugin_example;

#[test]
fn the_kv_plugin_example_passes_the_kv_suite() {
    let store = kv_plugin_example::CountingKv::new();
    futures::executor::block_on(async {
        kv::run_all(kv_plugin_example::CountingKv::new).await;
        // What it adds works too: the versions a scan returns are counted.
        store.write(vec![(keys::table_key(200, b"k"), Some(b"v".to_vec()))]).await.unwrap();
        let now = store.now().await.unwrap();
        strata_core::read_span(&store, keys::table_span(200), now).await.unwrap();
    });
    assert_eq!(store.scanned(), 1);
}

store_support::killed_restore_tests!(open);
