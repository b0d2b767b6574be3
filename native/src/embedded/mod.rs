//! The embedded persistent MVCC store: strata's default [`KvStore`], kept in one
//! [redb](https://docs.rs/redb) database file.
//!
//! The on-disk layout, the clock and how blocking calls are run are documented on
//! [`EmbeddedStore`]. This file holds the store's types, opening, and the trait impls; each call
//! is handed to the store's threads ([`crate::store_threads`]) and runs one operation of a submodule on the
//! shared state ([`Inner`]). Which submodule touches which table of `strata.redb`:
//!
//! ```text
//!                                              "mvcc"   "change_log"  "ingested"  "meta"
//!  write.rs    write, put, delete, publish,     W        W                         W last_timestamp
//!              allocate_ids
//!  ingest.rs   ingest                           W                     W            W last_timestamp
//!  scan.rs     scan, get_at                     R                                  R gc_threshold
//!  changes.rs  scan_changes                     R (seek) R            R            R gc_threshold,
//!                                                                                    last_timestamp
//!  gc.rs       discard, gc, gc_threshold        W        W            W            W gc_threshold
//!  layout.rs   open: create the tables,         W        W            W            W layout_version
//!              convert layouts 1, 2, 3 to 4
//!
//!  clock.rs    the timestamp of every write and ingest transaction (write.rs), and now()
//! ```
//!
//! `"pending_ingests"` (the spans a restore ingests into) is written by pending.rs
//! (`prepare_ingest`, and the cleanup on open after a killed restore), and its rows are dropped
//! by write.rs (`publish`) and gc.rs (`discard`).
//!
//! - [`layout`]: table definitions, key and value encodings, the layout version and its
//!   conversions when a store opens.
//! - [`clock`]: the hybrid logical clock (timestamps of writes, `now()`).
//! - [`write`](mod@write): write transactions at a fresh timestamp (writes, publishes, id allocation).
//! - [`ingest`]: ingests (`"ingested"` instead of change-log rows, no sync, the background
//!   write-back) and whether a window of changes holds one.
//! - [`scan`]: scans and point reads of `"mvcc"`; page sizing and row counters.
//! - [`changes`]: scans of changes from the change log (merged runs, or collecting passes with
//!   their cache of windows).
//! - [`gc`]: discard, GC and the GC threshold.
//! - [`pending`]: the spans a restore ingests into (`"pending_ingests"`), and the cleanup on open
//!   after a restore killed before its publish.

mod changes;
pub(crate) mod clock;
#[doc(hidden)]
pub mod fuzzing;
mod gc;
mod ingest;
mod layout;
mod pending;
mod scan;
mod stats;
mod write;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use redb::Database;
use strata_core::{
    Catalog, DescId, DescriptorChange, Error, IngestBatch, KvSink, KvSource, KvStore, Result, ScanPage, ScanRequest,
    Span, Status, Timestamp,
};

use crate::store_changes::{ChangedKeysCache, CHANGED_KEYS_PER_PASS, MAX_MERGED_RUNS};
use crate::store_threads::{Workers, STORE_THREADS};
use clock::Clock;

/// An embedded, persistent MVCC key-value store on redb, implementing [`KvSource`], [`KvSink`]
/// and [`KvStore`] with the same semantics as [`strata_core::MemKv`].
///
/// Cloning is cheap and shares the open database.
///
/// ```no_run
/// # async fn example() -> strata_core::Result<()> {
/// use strata_core::{keys, KvSource};
/// use strata_native::EmbeddedStore;
///
/// let store = EmbeddedStore::open(std::path::Path::new("/var/lib/strata"))?;
/// let ts = store.put(keys::table_key(100, b"alice"), b"10".to_vec()).await?;
/// assert_eq!(store.get_at(keys::table_key(100, b"alice"), ts).await?, Some(b"10".to_vec()));
/// assert!(store.now().await? >= ts);
/// # Ok(())
/// # }
/// ```
///
/// # On-disk layout
///
/// `dir/strata.redb` is a redb database holding these tables:
///
/// ```text
/// table "mvcc"    key:   (key: &[u8], u64::MAX - wall: u64, u32::MAX - logical: u32)   (a redb tuple)
///                 value: tag: u8 (0 = tombstone, 1 = value) ++ value bytes              (&[u8])
///
/// table "change_log" key: (wall: u64, logical: u32, key: &[u8])                        (a redb tuple)
///                 value: tag ++ value bytes, as in "mvcc"
///
/// table "ingested" key:  (wall: u64, logical: u32, span start: &[u8])                   (a redb tuple)
///                 value: span end                                                      (&[u8])
///
/// table "pending_ingests" key: span start (&[u8])   value: span end (&[u8])
///
/// table "meta"   key: &str           value: &[u8]
///                "layout_version"    u32 BE, currently 4
///                "last_timestamp"    wall u64 BE ++ logical u32 BE: the last timestamp issued to a write
///                "gc_threshold"      wall u64 BE ++ logical u32 BE: reads below it are refused
/// ```
///
/// Inverting the timestamp makes one range scan of `"mvcc"` yield keys ascending and, within a key,
/// versions newest first: exactly the order [`KvSource::scan`] returns. Every write (a
/// [`KvStore::write`] batch, an [`KvSink::ingest`] batch, a [`KvSink::publish`], an id allocation)
/// is one redb write transaction at one timestamp, and stores that timestamp as
/// `"last_timestamp"` in the same transaction, so a reopened store never issues a timestamp at or
/// below one it issued before.
///
/// `"change_log"` is the change log: every version written to `"mvcc"` by a write (not an ingest,
/// see below) also gets a row here, with its value, in the same write transaction, keyed by
/// timestamp first. [`KvSource::scan_changes`] reads the rows of its window `(start, end]`: for a
/// window of up to 64 writes by merging their runs (each write's rows are one range sorted by
/// key), else in sequential passes that sort them by key (a bounded number of keys and bytes per
/// pass). So an incremental backup costs what changed, not what exists, and looks a key up in
/// `"mvcc"` only to find where its next page resumes.
/// The price is every written value stored twice. `discard` removes the rows of the versions it
/// removes; GC removes every row at or below its threshold (a read with `start` below the GC
/// threshold is refused anyway). So for every written version above the GC threshold there is a
/// row, and there is no row without its version.
///
/// `"ingested"` replaces the change log for [`KvSink::ingest`]: a restore ingests every key of
/// the spans it restores, and one change-log row per key would cost as much as the version
/// itself. Instead, each ingest records one row: its timestamp and the span `[start, end)` its
/// keys lie in. A scan of changes whose window holds such a row for a span overlapping its own
/// does not answer from the change log (`Ok(None)`: the caller scans), which costs what changed
/// as well, since every key of such a span changed. `discard` removes the rows of spans inside
/// the spans it empties (a row that only overlaps one stays: a scan falling back to a full scan
/// is never wrong); GC removes every row at or below its threshold.
///
/// `"table_bytes"` holds, per table id (and one row for the keys outside tables), the bytes of
/// its stored versions (key and stored value), updated in the same transaction as every write,
/// ingest, discard and GC, as CockroachDB keeps a range's MVCC statistics: it answers
/// [`KvSource::estimate_bytes`] without a scan, which weighs a backup's work units for its
/// progress. A store created before the table existed answers "unknown" (`"meta"` marks a store
/// counted since its creation); the counts are estimates, used only for progress.
///
/// Ingest commits are not durable on their own ([`redb::Durability::None`]): the next durable
/// commit (every other write is one, and a restore ends with a publish) makes them durable. A
/// crash before it loses them; they were invisible anyway, written to spans no descriptor names
/// until the publish. A crash after a durable commit but before the publish leaves the versions
/// ingested so far in those unpublished spans, invisible; `"pending_ingests"` removes them (below).
/// So that the publish's sync does not have
/// to write every ingested page while the restore waits, each ingest starts a background sync of
/// the file from a second handle (one at a time, on tokio's blocking pool).
///
/// `"pending_ingests"` holds the spans a restore is ingesting into
/// ([`KvSink::prepare_ingest`], one commit before its first ingest, not durable on its own: redb
/// makes commits durable in order, so no ingest reaches the disk without it). The publish that
/// writes a table's descriptor drops its span's row in the same transaction, and `discard` the
/// rows of the spans it empties. A row left when the store opens (a store is open in one process
/// at a time, so no restore is running) is a restore killed before its publish: the store
/// discards its span, unless a table of the catalog owns it (then only the row goes). The table
/// is created when a store opens: a store of an earlier strata has none, and an earlier strata
/// ignores it (the layout version stays 4).
///
/// Opening a store of an older layout moves it to version 4 in one write transaction: version 1
/// had no change index (the change log is built in one pass over `"mvcc"`); versions 2 and 3 had
/// `"changes"`, an index of keys without values (each of its rows becomes a change-log row with
/// the version's value, and the table is dropped); version 2 also had no `"ingested"` (created
/// empty). A store of a newer layout is refused with [`Error::NotSupported`].
///
/// # Timestamps
///
/// A hybrid logical clock over the system clock's wall nanoseconds: a new timestamp is the wall
/// time if that is above the last one issued, else the last one's logical successor. redb admits
/// one write transaction at a time and each takes its timestamp inside that transaction, so
/// commits happen in timestamp order. [`KvSource::now`] returns a timestamp at or above every
/// committed write and below every write that commits later: while a write is in flight it answers
/// just below that write's timestamp.
///
/// # Blocking
///
/// redb is synchronous; every redb operation runs on one of the store's two own threads (started
/// when it opens, ended when the last clone is dropped) and is awaited from any executor (tokio,
/// `futures::executor::block_on`). Fixed threads keep redb's page buffers allocated and freed on
/// the same few threads, which keeps the process's resident memory near its live heap.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

/// The state the store's clones share, and on which the submodules' operations run.
struct Inner {
    db: Database,
    /// The store's own threads, which run every redb operation (see [`EmbeddedStore::blocking`]).
    workers: Workers,
    /// The database file, for error messages.
    path: PathBuf,
    clock: Clock,
    /// Windows of changed keys recently collected from the change log, newest last.
    changed_keys: ChangedKeysCache,
    /// See [`EmbeddedStore::set_changed_keys_per_pass`].
    changed_keys_per_pass: AtomicUsize,
    /// See [`MAX_MERGED_RUNS`] and [`EmbeddedStore::set_max_merged_runs`].
    max_merged_runs: AtomicUsize,
    /// Whether a write-back of the database file started after an ingest is still running.
    writing_back: Arc<AtomicBool>,
    /// See [`StoreStats`].
    mvcc_rows_read: AtomicU64,
    change_rows_read: AtomicU64,
}

/// Rows a store has read from its tables since it was opened: what scans cost, counted rather
/// than timed. See [`EmbeddedStore::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Rows of the MVCC table read by [`KvSource::scan`] and [`KvSource::scan_changes`] (so also
    /// by `catalog_at` and everything else that scans).
    pub mvcc_rows_read: u64,
    /// Rows of the change log read by [`KvSource::scan_changes`].
    pub change_rows_read: u64,
}

/// How an [`EmbeddedStore`] is opened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EmbeddedStoreOptions {
    /// Bytes of redb's page cache (half of it at most for a write transaction's dirty pages).
    /// redb's own default is 1 GiB, which lets a process's resident memory grow with the data it
    /// touches; strata's default, 32 MiB, holds the B-trees' interior pages (what every lookup
    /// re-reads) for tables of tens of millions of rows. A bigger cache did not make the bench's
    /// steps faster at 10M keys, and cost ~80 MiB of resident memory (64 MiB against 32 MiB).
    pub cache_bytes: usize,
}

impl Default for EmbeddedStoreOptions {
    fn default() -> Self {
        EmbeddedStoreOptions { cache_bytes: 32 << 20 }
    }
}

impl EmbeddedStoreOptions {
    /// Sets the page cache size.
    pub fn with_cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }
}

impl EmbeddedStore {
    /// The name of the database file inside the store's directory.
    pub const FILE_NAME: &'static str = "strata.redb";

    /// Opens the store in `dir`, creating the directory and the database file
    /// ([`EmbeddedStore::FILE_NAME`]) if needed.
    ///
    /// Fails if the file is not a strata store of a layout this version reads, or if another
    /// process has it open.
    pub fn open(dir: &Path) -> Result<EmbeddedStore> {
        EmbeddedStore::open_with(dir, &EmbeddedStoreOptions::default())
    }

    /// Opens the store in `dir` with these options (see [`EmbeddedStore::open`]).
    pub fn open_with(dir: &Path, options: &EmbeddedStoreOptions) -> Result<EmbeddedStore> {
        let path = dir.join(Self::FILE_NAME);
        std::fs::create_dir_all(dir).map_err(|e| Error::Kv {
            message: format!("cannot create the store directory {}: {e}", dir.display()),
            status: Status::Permanent,
        })?;
        let db = redb::Builder::new().set_cache_size(options.cache_bytes).create(&path).map_err(|e| {
            let hint = match e {
                redb::DatabaseError::DatabaseAlreadyOpen => " (is another strata process using it?)",
                _ => "",
            };
            let e: redb::Error = e.into();
            Error::Kv { message: format!("cannot open {}: {e}{hint}", path.display()), status: status_of(&e) }
        })?;
        let inner = Inner {
            db,
            workers: Workers::start(STORE_THREADS, "strata-store")?,
            path,
            clock: Clock::new(),
            changed_keys: ChangedKeysCache::default(),
            changed_keys_per_pass: AtomicUsize::new(CHANGED_KEYS_PER_PASS),
            max_merged_runs: AtomicUsize::new(MAX_MERGED_RUNS),
            writing_back: Arc::new(AtomicBool::new(false)),
            mvcc_rows_read: AtomicU64::new(0),
            change_rows_read: AtomicU64::new(0),
        };
        let last = inner.init()?;
        inner.clock.set_last(last);
        inner.discard_abandoned_ingests(last)?;
        Ok(EmbeddedStore { inner: Arc::new(inner) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Rows read from the store's tables since it was opened (by this and every clone). The
    /// difference between two calls is what the scans between them cost.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            mvcc_rows_read: self.inner.mvcc_rows_read.load(Ordering::Relaxed),
            change_rows_read: self.inner.change_rows_read.load(Ordering::Relaxed),
        }
    }

    /// For tests: how many changed keys one pass over the change log collects at most (default
    /// 32,768). A window with more changed keys in the span is read in several passes.
    #[doc(hidden)]
    pub fn set_changed_keys_per_pass(&self, keys: usize) {
        self.inner.changed_keys_per_pass.store(keys.max(1), Ordering::Relaxed);
        self.inner.changed_keys.clear();
    }

    /// For tests: a window of at most this many writes is read by merging their runs of the
    /// change log (default 64); a window of more, by passes. 0 always reads by passes.
    #[doc(hidden)]
    pub fn set_max_merged_runs(&self, runs: usize) {
        self.inner.max_merged_runs.store(runs, Ordering::Relaxed);
    }

    /// Writes `key = value` at a fresh timestamp; returns it.
    pub async fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<Timestamp> {
        self.blocking(move |inner| inner.write("put", vec![(key, Some(value))])).await
    }

    /// Deletes `key` (writes a tombstone) at a fresh timestamp; returns it.
    pub async fn delete(&self, key: Vec<u8>) -> Result<Timestamp> {
        self.blocking(move |inner| inner.write("delete", vec![(key, None)])).await
    }

    /// The value of `key` as of `ts`: its newest version at or below `ts`, `None` if that is a
    /// deletion or there is none. Reading below the GC threshold is an error.
    pub async fn get_at(&self, key: Vec<u8>, ts: Timestamp) -> Result<Option<Vec<u8>>> {
        self.blocking(move |inner| inner.get_at(&key, ts)).await
    }

    /// Garbage-collects versions hidden at `threshold` and raises the GC threshold to it (never
    /// lowers it): for each key, the newest version at or below `threshold` stays unless it is a
    /// deletion, older ones are removed. Versions above `threshold` are untouched.
    pub async fn gc(&self, threshold: Timestamp) -> Result<()> {
        self.blocking(move |inner| inner.gc(threshold)).await
    }
}

impl Inner {
    /// Maps a redb error to strata's, naming the file and the operation.
    fn err(&self, op: &str, e: impl Into<redb::Error>) -> Error {
        let e: redb::Error = e.into();
        match e {
            redb::Error::Corrupted(message) => {
                Error::Corrupt { path: self.path.display().to_string(), message: format!("{op}: {message}") }
            }
            e => Error::Kv { message: format!("{op} in {}: {e}", self.path.display()), status: status_of(&e) },
        }
    }

    fn corrupt(&self, message: impl std::fmt::Display) -> Error {
        Error::Corrupt { path: self.path.display().to_string(), message: message.to_string() }
    }
}

/// Whether retrying an operation that failed with this redb error can help.
fn status_of(e: &redb::Error) -> Status {
    use std::io::ErrorKind;
    match e {
        redb::Error::Io(io) => match io.kind() {
            ErrorKind::Interrupted | ErrorKind::WouldBlock | ErrorKind::TimedOut => Status::Temporary,
            _ => Status::Permanent,
        },
        _ => Status::Permanent,
    }
}

#[async_trait]
impl KvSource for EmbeddedStore {
    async fn now(&self) -> Result<Timestamp> {
        Ok(self.inner.clock.now())
    }

    async fn scan(&self, request: ScanRequest) -> Result<ScanPage> {
        self.blocking(move |inner| inner.scan(&request)).await
    }

    async fn scan_changes(&self, request: ScanRequest) -> Result<Option<ScanPage>> {
        self.blocking(move |inner| inner.scan_changes(&request)).await
    }

    async fn gc_threshold(&self, _span: &Span) -> Result<Timestamp> {
        self.blocking(Inner::gc_threshold).await
    }

    async fn estimate_bytes(&self, span: &Span) -> Result<Option<u64>> {
        let span = span.clone();
        self.blocking(move |inner| inner.estimate_bytes(&span)).await
    }
}

#[async_trait]
impl KvSink for EmbeddedStore {
    async fn catalog(&self) -> Result<Catalog> {
        let now = self.now().await?;
        self.catalog_at(now).await
    }

    async fn allocate_ids(&self, count: u32) -> Result<DescId> {
        self.blocking(move |inner| inner.allocate_ids(count)).await
    }

    async fn ingest(&self, batch: IngestBatch) -> Result<()> {
        // The batch comes back to be freed by the caller, whose thread allocated it: freeing it
        // is work off the store's threads, which are what bounds a restore.
        let batch = self.blocking(move |inner| inner.ingest(&batch).map(|()| batch)).await?;
        drop(batch);
        self.write_back();
        Ok(())
    }

    async fn prepare_ingest(&self, spans: &[Span]) -> Result<()> {
        let spans = spans.to_vec();
        self.blocking(move |inner| inner.prepare_ingest(&spans)).await
    }

    async fn publish(&self, changes: Vec<DescriptorChange>) -> Result<Timestamp> {
        self.blocking(move |inner| inner.publish(changes)).await
    }

    async fn discard(&self, spans: &[Span]) -> Result<()> {
        let spans = spans.to_vec();
        self.blocking(move |inner| inner.discard(&spans)).await
    }
}

#[async_trait]
impl KvStore for EmbeddedStore {
    async fn write(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Timestamp> {
        self.blocking(move |inner| inner.write("write", batch)).await
    }
}

// The store is shared across tasks and threads.
const _: fn() = || {
    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<EmbeddedStore>();
};

impl EmbeddedStore {
    /// Runs `f` on one of the store's threads ([`crate::store_threads`]) and awaits its result
    /// (a panic in `f` resumes here).
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        self.inner.workers.run(self.inner.clone(), &self.inner.path, f).await
    }
}
