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
pub async fn pages(store: &impl KvSource, mut request: ScanRequest, changes: bool) -> Vec<ScanPage> {
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
