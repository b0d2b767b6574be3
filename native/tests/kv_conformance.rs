//! The KV conformance suite (`strata_core::conformance::kv`) run against [`EmbeddedStore`], plus
//! what only a persistent store can get wrong: reopening keeps the data, the GC threshold and the
//! id counter, and never issues a timestamp at or below one issued before.

use std::cell::Cell;
use std::path::Path;

use strata_core::conformance::kv::{self, ModelOptions};
use strata_core::{
    keys, Descriptor, DescriptorChange, Error, KvSink, KvSource, KvStore, MvccFilter, ScanRequest, Timestamp,
};
use strata_native::EmbeddedStore;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_passes_the_kv_suite() {
    let root = tempfile::tempdir().unwrap();
    kv::run_all_with_gc(fresh_stores(root.path()), |store, threshold| async move { store.gc(threshold).await }).await;
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
        let pairs = (batch * 50_000..(batch + 1) * 50_000)
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
