//! The restore pipeline against a sink whose ingests take several polls and, once started, run
//! to the end even when the restore stops waiting for them (like the embedded store's, which run
//! on tokio's blocking pool): a span has one batch in flight while it builds the next, every row
//! arrives, and a failed restore discards only after every ingest it started is done, so nothing
//! it ingested survives the discard.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures::executor::block_on;
use futures::FutureExt;
use strata_core::ExternalStorageExt;
use strata_core::{
    datafile, keys, BackupOptions, BlockCodec, Catalog, DataFileOptions, DescId, DescriptorChange, Error, Executor,
    KvSink, KvSource, KvStore, MemKv, MemoryOpener, RestoreRunOptions, Result, ScanPage, ScanRequest, Span, Status,
    StorageOpener, Timestamp,
};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[path = "restore_pipeline/backup_reader.rs"]
mod backup_reader;
use crate::common;
use common::{Call, Hook, HookedOpener};

type Pairs = strata_core::IngestBatch;

/// A MemKv whose ingests stay pending for `polls` polls after the first, and whose `fail_at`-th
/// ingest fails.
struct SlowSink {
    inner: MemKv,
    polls: usize,
    fail_at: Option<usize>,
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Ingests the restore stopped waiting for after they started: like a task on a blocking
    /// pool, they still land, here at the next discard, after it.
    detached: Mutex<Vec<Pairs>>,
}

impl SlowSink {
    fn new(polls: usize, fail_at: Option<usize>) -> SlowSink {
        SlowSink {
            inner: MemKv::new(),
            polls,
            fail_at,
            calls: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            detached: Mutex::default(),
        }
    }
}

/// One ingest of a [`SlowSink`].
struct SlowIngest<'a> {
    sink: &'a SlowSink,
    pairs: Option<Pairs>,
    polls_left: usize,
    started: bool,
    fail: bool,
}

impl Future for SlowIngest<'_> {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let sink = self.sink;
        if !self.started {
            self.started = true;
            let now = sink.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            sink.max_in_flight.fetch_max(now, Ordering::SeqCst);
        }
        if self.polls_left > 0 {
            self.polls_left -= 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let pairs = self.pairs.take().expect("polled after completion");
        sink.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.fail {
            return Poll::Ready(Err(Error::Kv { message: "injected ingest fault".into(), status: Status::Permanent }));
        }
        Poll::Ready(sink.inner.ingest(pairs).now_or_never().expect("MemKv ingests at once"))
    }
}

impl Drop for SlowIngest<'_> {
    fn drop(&mut self) {
        if let (true, Some(pairs)) = (self.started, self.pairs.take()) {
            self.sink.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.sink.detached.lock().unwrap().push(pairs);
        }
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl KvSource for SlowSink {
    async fn now(&self) -> Result<Timestamp> {
        self.inner.now().await
    }
    async fn scan(&self, request: ScanRequest) -> Result<ScanPage> {
        self.inner.scan(request).await
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl KvSink for SlowSink {
    async fn catalog(&self) -> Result<Catalog> {
        self.inner.catalog().await
    }
    async fn allocate_ids(&self, count: u32) -> Result<DescId> {
        self.inner.allocate_ids(count).await
    }
    async fn ingest(&self, pairs: Pairs) -> Result<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let fail = self.fail_at == Some(n);
        SlowIngest { sink: self, pairs: Some(pairs), polls_left: self.polls, started: false, fail }.await
    }
    async fn publish(&self, changes: Vec<DescriptorChange>) -> Result<Timestamp> {
        self.inner.publish(changes).await
    }
    async fn discard(&self, spans: &[Span]) -> Result<()> {
        self.inner.discard(spans).await?;
        let late: Vec<Pairs> = std::mem::take(&mut *self.detached.lock().unwrap());
        for pairs in late {
            self.inner.ingest(pairs).await?;
        }
        Ok(())
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl KvStore for SlowSink {
    async fn write(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Timestamp> {
        self.inner.write(batch).await
    }
}

/// Two tables of 3,000 rows of 100 bytes each, backed up to `memory://p`.
async fn backed_up(opener: &Arc<MemoryOpener>) -> Executor {
    let exec = Executor::new(Arc::new(MemKv::new()), opener.clone());
    exec.execute("CREATE DATABASE d").await.unwrap();
    for t in ["a", "b"] {
        exec.execute(&format!("CREATE TABLE d.{t}")).await.unwrap();
        let id = exec.table_id("d", t, None).await.unwrap();
        let rows = (0..3000u32).map(|i| (keys::table_key(id, &i.to_be_bytes()), Some(vec![i as u8; 100]))).collect();
        exec.store().write(rows).await.unwrap();
    }
    exec.execute("BACKUP DATABASE d INTO 'memory://p'").await.unwrap();
    exec
}

/// Every row of every table of the sink, unpublished ones included.
fn all_rows(sink: &SlowSink) -> Vec<(Vec<u8>, Vec<u8>)> {
    sink.inner.view_at(&Span::new(vec![keys::TABLE_PREFIX], vec![keys::TABLE_PREFIX + 1]), Timestamp::MAX)
}

fn restore_options(spans: usize) -> RestoreRunOptions {
    // About 16 KiB per batch: 19 batches per table.
    RestoreRunOptions::default().with_concurrency(spans).with_batch_bytes(16 << 10)
}

#[test]
fn one_batch_per_span_is_in_flight_and_every_row_arrives() {
    block_on(async {
        let opener = Arc::new(MemoryOpener::default());
        backed_up(&opener).await;
        for spans in [1, 2] {
            let sink = Arc::new(SlowSink::new(3, None));
            let target = Executor::new(sink.clone(), opener.clone()).with_restore_options(restore_options(spans));
            target.execute("RESTORE DATABASE d FROM LATEST IN 'memory://p'").await.unwrap();
            let calls = sink.calls.load(Ordering::SeqCst);
            assert!(calls >= 30, "{spans} spans: {calls} ingest calls");
            let max = sink.max_in_flight.load(Ordering::SeqCst);
            assert_eq!(max, spans, "{spans} spans: most ingests in flight at once");
            assert_eq!(sink.in_flight.load(Ordering::SeqCst), 0);
            for t in ["a", "b"] {
                let id = target.table_id("d", t, None).await.unwrap();
                let restored = sink.inner.view_at(&keys::table_span(id), Timestamp::MAX);
                assert_eq!(restored.len(), 3000, "{spans} spans: rows of d.{t}");
                for (i, (k, v)) in restored.iter().enumerate() {
                    assert_eq!(k[k.len() - 4..], (i as u32).to_be_bytes(), "{spans} spans: key {i} of d.{t}");
                    assert_eq!(v, &vec![i as u8; 100], "{spans} spans: value {i} of d.{t}");
                }
            }
        }
    });
}

#[test]
fn a_failed_restore_discards_after_every_ingest_it_started() {
    block_on(async {
        let opener = Arc::new(MemoryOpener::default());
        backed_up(&opener).await;
        for fail_at in [1, 2, 5, 20, 37] {
            let sink = Arc::new(SlowSink::new(3, Some(fail_at)));
            let target = Executor::new(sink.clone(), opener.clone()).with_restore_options(restore_options(2));
            let err = target.execute("RESTORE DATABASE d FROM LATEST IN 'memory://p'").await.expect_err("a fault");
            assert!(err.to_string().contains("injected ingest fault"), "fault at ingest {fail_at}: {err}");
            assert_eq!(sink.detached.lock().unwrap().len(), 0, "fault at ingest {fail_at}: ingests left running");
            assert_eq!(all_rows(&sink).len(), 0, "fault at ingest {fail_at}: rows left after the discard");
            assert!(sink.inner.catalog().await.unwrap().has_no_user_objects());
        }
    });
}

/// A read of a data file: its path, and `None` for a whole `get` or the length of a `get_range`.
type Read = (String, Option<u64>);

/// Records every read of a data file (`data/…`).
#[derive(Default)]
struct DataReads(Mutex<Vec<Read>>);

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl Hook for DataReads {
    async fn before(&self, call: Call, path: &str) -> Result<()> {
        let len = match call {
            Call::Get => None,
            Call::GetRange { len } => Some(len),
            _ => return Ok(()),
        };
        if path.starts_with("data/") {
            self.0.lock().unwrap().push((path.to_string(), len));
        }
        Ok(())
    }
}

/// One table `d.t` of 4,000 rows of 200 incompressible bytes (about 0.8 MB, in blocks of 128 KiB
/// stored as they are), backed up to `memory://r` of `opener`.
async fn incompressible_backup(opener: &MemoryOpener) {
    // Blocks of 128 KiB stored as they are (random values; the heads alone would compress).
    let data_file = DataFileOptions::default().with_block_size(128 << 10).with_codec(BlockCodec::None);
    let exec = Executor::new(Arc::new(MemKv::new()), Arc::new(opener.clone()))
        .with_backup_options(BackupOptions::default().with_data_file(data_file));
    exec.execute("CREATE DATABASE d").await.unwrap();
    exec.execute("CREATE TABLE d.t").await.unwrap();
    let id = exec.table_id("d", "t", None).await.unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut noise = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    };
    let rows = (0..4000u32).map(|i| (keys::table_key(id, &i.to_be_bytes()), Some((0..200).map(|_| noise()).collect())));
    exec.store().write(rows.collect()).await.unwrap();
    exec.execute("BACKUP DATABASE d TO 'memory://r'").await.unwrap();
}

#[test]
fn a_restore_reads_each_data_file_in_bounded_ranged_reads() {
    block_on(async {
        let opener = MemoryOpener::default();
        incompressible_backup(&opener).await;
        let files = opener.open("memory://r").unwrap().list("data/").await.unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
        let size = files[0].size;
        assert!(size > 700_000, "a data file of {size} bytes");
        let sink = Arc::new(SlowSink::new(1, None));
        let options = RestoreRunOptions::default().with_read_bytes(300 << 10);
        let reads = Arc::new(DataReads::default());
        let hooked = HookedOpener { inner: opener, hook: reads.clone() };
        let target = Executor::new(sink.clone(), Arc::new(hooked)).with_restore_options(options);
        target.execute("RESTORE DATABASE d FROM 'memory://r'").await.unwrap();
        let id = target.table_id("d", "t", None).await.unwrap();
        assert_eq!(sink.inner.view_at(&keys::table_span(id), Timestamp::MAX).len(), 4000);
        let reads = reads.0.lock().unwrap().clone();
        // The footer, the index, then the blocks in runs of at most 300 KiB (two or three blocks
        // of 128 KiB): at least three runs, never the whole file.
        assert!(reads.iter().all(|(_, len)| len.is_some_and(|l| l <= 300 << 10)), "{reads:?}");
        let blocks: u64 = reads.iter().filter_map(|(_, len)| *len).filter(|l| *l > 1000).sum();
        assert!(reads.len() >= 5 && blocks + 1000 > size && blocks < size, "{size} bytes read as {reads:?}");
    });
}

#[test]
fn a_whole_data_file_that_does_not_match_its_sha256_fails_the_restore() {
    block_on(async {
        let opener = MemoryOpener::default();
        incompressible_backup(&opener).await;
        let storage = opener.open("memory://r").unwrap();
        let path = storage.list("data/").await.unwrap()[0].path.clone();
        let mut data = storage.get(&path).await.unwrap().to_vec();
        // Change a byte in the middle of the second block and fix its checksum: the block and the
        // index still check, only the file's SHA-256 no longer matches the manifest's.
        let size = data.len() as u64;
        let footer = datafile::decode_footer(&data[(size - datafile::FOOTER_LEN) as usize..], size, &path).unwrap();
        let at = footer.index_offset as usize;
        let index = datafile::decode_index(&data[at..at + footer.index_len as usize], &footer, &path).unwrap();
        let block = index[1].range();
        let (start, end) = (block.start as usize, block.end as usize);
        assert_eq!(data[end - 5], 0, "the block is stored uncompressed");
        data[(start + end) / 2] ^= 0xff;
        let crc = crc32fast::hash(&data[start..end - 4]);
        data[end - 4..end].copy_from_slice(&crc.to_le_bytes());
        storage.put(&path, data.into()).await.unwrap();
        let sink = Arc::new(SlowSink::new(0, None));
        let target = Executor::new(sink.clone(), Arc::new(opener));
        let err = target.execute("RESTORE DATABASE d FROM 'memory://r'").await.expect_err("a damaged file");
        assert!(err.to_string().contains("SHA-256 does not match the manifest"), "{err}");
        assert_eq!(all_rows(&sink).len(), 0, "rows left after the failed restore");
        assert!(sink.inner.catalog().await.unwrap().has_no_user_objects());
    });
}
