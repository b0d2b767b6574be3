//! The LSM embedded store: a [`KvStore`] on [fjall](https://docs.rs/fjall) 3, a log-structured
//! merge tree, whose bulk ingestion writes a restore's sorted runs straight into tables, as
//! CockroachDB's restore ingests SSTs into Pebble.
//!
//! The on-disk layout, the clock, durability and how blocking calls are run are documented on
//! [`LsmStore`]. This file holds the store's types, opening, and the trait impls; each call is
//! handed to the store's threads ([`crate::store_threads`]) and runs one operation of a submodule on the shared
//! state ([`Inner`]). Which submodule touches which keyspace:
//!
//! ```text
//!                                              "versions" "changes" "ingested" "meta"  "table_bytes"
//!  write.rs    write, put, delete, publish,     W          W                    W last  W
//!              allocate_ids
//!  ingest.rs   ingest (bulk ingestion)          W (tables)            W         W last  W
//!  scan.rs     scan, get_at                     R                               R gc
//!  changes.rs  scan_changes                     R (seeks)  R          R         R gc, last
//!  gc.rs       discard, gc, gc_threshold        W          W          W         W gc    W
//!  layout.rs   open: keyspaces, layout version                                  RW
//!
//!  embedded/clock.rs  the timestamp of every write and ingest (write.rs), and now()
//! ```
//!
//! `"pending_ingests"` (the spans a restore ingests into) is written by pending.rs
//! (`prepare_ingest`, and the cleanup on open after a killed restore), and its rows are dropped
//! by write.rs (`publish`) and gc.rs (`discard`).

mod changes;
mod gc;
mod ingest;
mod layout;
mod pending;
mod scan;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use strata_core::{
    Catalog, DescId, DescriptorChange, Error, IngestBatch, KvSink, KvSource, KvStore, Result, ScanPage, ScanRequest,
    Span, Status, Timestamp,
};

use crate::embedded::clock::Clock;
use crate::store_changes::{ChangedKeysCache, CHANGED_KEYS_PER_PASS, MAX_MERGED_RUNS};
use crate::store_threads::{Workers, STORE_THREADS};
use crate::{EmbeddedStore, StoreStats};

/// An embedded, persistent MVCC key-value store on fjall (an LSM tree), implementing
/// [`KvSource`], [`KvSink`] and [`KvStore`] with the same semantics as [`strata_core::MemKv`]
/// and [`EmbeddedStore`].
///
/// Cloning is cheap and shares the open database.
///
/// ```no_run
/// # async fn example() -> strata_core::Result<()> {
/// use strata_core::{keys, KvSource};
/// use strata_native::LsmStore;
///
/// let store = LsmStore::open(std::path::Path::new("/var/lib/strata"))?;
/// let ts = store.put(keys::table_key(100, b"alice"), b"10".to_vec()).await?;
/// assert_eq!(store.get_at(keys::table_key(100, b"alice"), ts).await?, Some(b"10".to_vec()));
/// assert!(store.now().await? >= ts);
/// # Ok(())
/// # }
/// ```
///
/// # On-disk layout
///
/// `dir/strata.lsm/` is a fjall database (its journal, its `keyspaces/` of tables, its `version`
/// marker and `lock` file) holding six keyspaces. Keys and values are bytes; integers are
/// big-endian; a timestamp is wall u64 ++ logical u32 (12 bytes).
///
/// ```text
/// "versions"    key:   mvcc_key(key, ts)   (strata_core::mvcc_key: the key, 0x00 escaped as 0x00 0xff,
///                                           then 0x00 0x01, then !wall u64 ++ !logical u32)
///               value: tag: u8 (0 = tombstone, 1 = value) ++ value bytes
///
/// "changes"     key:   wall ++ logical ++ key      value: tag ++ value bytes, as in "versions"
///
/// "ingested"    key:   wall ++ logical ++ span start   value: span end
///
/// "pending_ingests"  key: span start   value: span end
///
/// "meta"        "layout_version"   u32, currently 2 (a store of layout 1 is refused)
///               "last_timestamp"   the last timestamp issued to a write or ingest
///               "gc_threshold"     reads below it are refused
///
/// "table_bytes" key: table id u32 (u32::MAX: keys outside tables)   value: bytes u64
/// ```
///
/// One range of `"versions"` yields keys ascending and, within a key, versions newest first:
/// exactly the order [`KvSource::scan`] returns. Data blocks of `"versions"` and `"changes"` are
/// LZ4-compressed at every level; they have no bloom filters (every read is a range).
///
/// `"changes"` is the change index: every version a write adds to `"versions"` (not an ingest,
/// see below) also gets a row here, keyed by timestamp first, with its value (as CockroachDB's
/// time-bound iteration reads only the SSTs of a window, a scan of changes reads only the index:
/// written values are stored twice, compressed).
/// [`KvSource::scan_changes`] reads the rows of its window `(start, end]`: for a window of up to
/// 64 writes by merging their runs (each write's rows are one range sorted by key), else in
/// passes that collect up to 32,768 changed keys (and about 8 MiB) of the span at a time. One
/// seek of `"versions"` per full page finds where the next page resumes. So an incremental backup
/// costs what changed, not what exists. `discard` removes the rows of the versions it removes;
/// GC removes every row at or below its threshold, so every row's version exists.
///
/// `"ingested"` replaces the change index for [`KvSink::ingest`]: one row per ingest, its
/// timestamp and the span `[start, end)` its keys lie in. A scan of changes whose window holds
/// such a row for a span overlapping its own answers `Ok(None)` (the caller scans). `discard`
/// removes the rows of ingests wholly inside the spans it empties; GC removes every row at or
/// below its threshold.
///
/// `"table_bytes"` holds, per table id, the bytes of its stored versions (key and stored value):
/// it answers [`KvSource::estimate_bytes`] without a scan. The counts are kept in memory too and
/// written with every commit that changes them (an estimate, used only for progress).
///
/// A store of a newer layout is refused with [`Error::NotSupported`]; a directory holding a redb
/// store ([`EmbeddedStore::FILE_NAME`]), or a `strata.lsm` that is not a fjall database, is
/// refused too.
///
/// # Writes, ingests and durability
///
/// Every write (a [`KvStore::write`] batch, a [`KvSink::publish`], an id allocation) is one fjall
/// write batch across keyspaces (its versions, their change-index rows, `"last_timestamp"`, the
/// table counts), atomic, and synced to the journal (`fdatasync`) before it returns.
///
/// An ingest writes its versions with fjall's bulk ingestion: sorted keys go straight into new
/// table files, which fjall syncs and then registers in the tree with one atomic, synced version
/// change; nothing passes through the journal or the memtable. Before that, one synced batch
/// records the ingest in `"ingested"` and `"last_timestamp"`; so when `ingest` returns, the
/// versions, their record and the clock are all durable, and a crash before it returns leaves at
/// most a record without versions (a scan of changes then falls back to a scan: never wrong) or
/// table files fjall never registered (it ignores them).
///
/// Versions of an ingest that no publish followed would stay in their unpublished spans,
/// invisible, for good: `"pending_ingests"` holds the spans a restore is ingesting into
/// ([`KvSink::prepare_ingest`], one batch before its first ingest, not synced on its own: the
/// ingest's synced record in `"ingested"` persists it before any table is written). The publish that writes
/// a table's descriptor drops its span's row in the same batch, and `discard` the rows of the
/// spans it empties. A row left when the store opens (fjall's lock file keeps it to one open at
/// a time, so no restore is running) is a restore killed before its publish: the store discards
/// its span, unless a table of the catalog owns it (then only the row goes). The keyspace is
/// created when a store opens: a store of an earlier strata has none, and an earlier strata
/// ignores it (the layout version stays 2).
///
/// # Timestamps
///
/// The redb store's hybrid logical clock. Every commit (write, ingest, discard, GC) holds one
/// commit lock, and a write or ingest takes its timestamp under it, so commits happen in
/// timestamp order. [`KvSource::now`] returns a timestamp at or above every committed write and
/// below every write that commits later: while a write is in flight it answers just below that
/// write's timestamp. Ingests are serialized by that lock too (their keys hold their timestamp).
///
/// # Blocking
///
/// fjall is synchronous; every fjall operation runs on one of the store's own threads (started
/// when it opens, ended when the last clone is dropped) and is awaited from any executor (tokio,
/// `futures::executor::block_on`). fjall runs its flushes and compactions on its own threads.
#[derive(Clone)]
pub struct LsmStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LsmStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LsmStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

/// The state the store's clones share, and on which the submodules' operations run.
struct Inner {
    db: fjall::Database,
    versions: fjall::Keyspace,
    changes: fjall::Keyspace,
    ingested: fjall::Keyspace,
    meta: fjall::Keyspace,
    table_bytes: fjall::Keyspace,
    pending_ingests: fjall::Keyspace,
    /// The store's own threads, which run every fjall operation (see [`LsmStore::blocking`]).
    workers: Workers,
    /// The database directory, for error messages.
    path: PathBuf,
    clock: Clock,
    /// Held by every commit: writes and ingests take their timestamps under it (see
    /// "Timestamps"), and discard and GC hold it so the byte counts stay exact.
    commit: Mutex<()>,
    /// Bytes per table id (see `"table_bytes"`), changed only under `commit`.
    counts: Mutex<BTreeMap<u32, u64>>,
    /// Windows of changed keys recently collected from the change index, newest last.
    changed_keys: ChangedKeysCache,
    changed_keys_per_pass: AtomicUsize,
    max_merged_runs: AtomicUsize,
    versions_read: AtomicU64,
    changes_read: AtomicU64,
}

/// How an [`LsmStore`] is opened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LsmStoreOptions {
    /// Bytes of fjall's block cache (default 16 MiB: scans read each block once, and with 32 MiB
    /// an encrypted backup of the bench's million keys peaked at 262 MiB instead of 246; the redb
    /// store's page cache is 32 MiB).
    pub cache_bytes: u64,
}

impl Default for LsmStoreOptions {
    fn default() -> Self {
        LsmStoreOptions { cache_bytes: 16 << 20 }
    }
}

impl LsmStoreOptions {
    /// Sets the block cache size.
    pub fn with_cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }
}

impl LsmStore {
    /// The name of the database directory inside the store's directory.
    pub const DIR_NAME: &'static str = "strata.lsm";

    /// Opens the store in `dir`, creating the directory and the database
    /// ([`LsmStore::DIR_NAME`]) if needed.
    ///
    /// Fails if `dir` holds a redb store, if the database is not a strata LSM store of a layout
    /// this version reads, or if another process (or another open in this one) has it open.
    pub fn open(dir: &Path) -> Result<LsmStore> {
        LsmStore::open_with(dir, &LsmStoreOptions::default())
    }

    /// Opens the store in `dir` with these options (see [`LsmStore::open`]).
    pub fn open_with(dir: &Path, options: &LsmStoreOptions) -> Result<LsmStore> {
        let path = dir.join(Self::DIR_NAME);
        let refuse = |why: String| Error::Kv { message: why, status: Status::Permanent };
        std::fs::create_dir_all(dir).map_err(|e| Error::Kv {
            message: format!("cannot create the store directory {}: {e}", dir.display()),
            status: Status::Permanent,
        })?;
        let redb = dir.join(EmbeddedStore::FILE_NAME);
        if redb.exists() {
            return Err(refuse(format!(
                "cannot open {} as an LSM store: it holds a redb embedded store ({}); open it with the redb engine",
                dir.display(),
                redb.display()
            )));
        }
        layout::check_directory(&path).map_err(refuse)?;
        // Journals of at most 64 MiB (fjall's default is 512): a full journal flushes the
        // memtables it holds, so the store's directory stays near its tables' size after a
        // million writes instead of carrying every value a third time.
        let builder = fjall::Database::builder(&path).cache_size(options.cache_bytes).max_journaling_size(64 << 20);
        let db = builder.open().map_err(|e| {
            let hint = match e {
                fjall::Error::Locked => " (is another strata process using it?)",
                _ => "",
            };
            Error::Kv { message: format!("cannot open {}: {e}{hint}", path.display()), status: status_of(&e) }
        })?;
        let keyspace = |name: &str, options: fn() -> fjall::KeyspaceCreateOptions| {
            db.keyspace(name, options).map_err(|e| Error::Kv {
                message: format!("cannot open {}: {e}", path.display()),
                status: status_of(&e),
            })
        };
        let inner = Inner {
            versions: keyspace(layout::VERSIONS, layout::range_keyspace)?,
            changes: keyspace(layout::CHANGES, layout::range_keyspace)?,
            ingested: keyspace(layout::INGESTED, fjall::KeyspaceCreateOptions::default)?,
            meta: keyspace(layout::META, fjall::KeyspaceCreateOptions::default)?,
            table_bytes: keyspace(layout::TABLE_BYTES, fjall::KeyspaceCreateOptions::default)?,
            pending_ingests: keyspace(layout::PENDING_INGESTS, fjall::KeyspaceCreateOptions::default)?,
            db,
            workers: Workers::start(STORE_THREADS, "strata-lsm")?,
            path,
            clock: Clock::new(),
            commit: Mutex::new(()),
            counts: Mutex::new(BTreeMap::new()),
            changed_keys: ChangedKeysCache::default(),
            changed_keys_per_pass: AtomicUsize::new(CHANGED_KEYS_PER_PASS),
            max_merged_runs: AtomicUsize::new(MAX_MERGED_RUNS),
            versions_read: AtomicU64::new(0),
            changes_read: AtomicU64::new(0),
        };
        let last = inner.init()?;
        inner.clock.set_last(last);
        inner.discard_abandoned_ingests(last)?;
        Ok(LsmStore { inner: Arc::new(inner) })
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Rows read since the store was opened (by this and every clone): `mvcc_rows_read` counts
    /// rows of `"versions"`, `change_rows_read` rows of `"changes"`. The difference between two
    /// calls is what the scans between them cost.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            mvcc_rows_read: self.inner.versions_read.load(Ordering::Relaxed),
            change_rows_read: self.inner.changes_read.load(Ordering::Relaxed),
        }
    }

    /// For tests: how many changed keys one pass over the change index collects at most (default
    /// 32,768).
    #[doc(hidden)]
    pub fn set_changed_keys_per_pass(&self, keys: usize) {
        self.inner.changed_keys_per_pass.store(keys.max(1), Ordering::Relaxed);
        self.inner.changed_keys.clear();
    }

    /// For tests: a window of at most this many writes is read by merging their runs of the
    /// change index (default 64); a window of more, by passes. 0 always reads by passes.
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
    /// Maps a fjall error to strata's, naming the directory and the operation.
    fn err(&self, op: &str, e: impl Into<fjall::Error>) -> Error {
        let e: fjall::Error = e.into();
        match e {
            fjall::Error::Storage(
                ref inner @ (fjall::LsmError::ChecksumMismatch { .. }
                | fjall::LsmError::InvalidTrailer
                | fjall::LsmError::InvalidHeader(_)
                | fjall::LsmError::InvalidTag(_)
                | fjall::LsmError::Decompress(_)),
            ) => Error::Corrupt { path: self.path.display().to_string(), message: format!("{op}: {inner}") },
            e => Error::Kv { message: format!("{op} in {}: {e}", self.path.display()), status: status_of(&e) },
        }
    }

    fn corrupt(&self, message: impl std::fmt::Display) -> Error {
        Error::Corrupt { path: self.path.display().to_string(), message: message.to_string() }
    }

    /// The commit lock (see [`Inner::commit`]).
    fn lock_commit(&self) -> MutexGuard<'_, ()> {
        self.commit.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether retrying an operation that failed with this fjall error can help.
fn status_of(e: &fjall::Error) -> Status {
    use std::io::ErrorKind;
    let io = match e {
        fjall::Error::Io(io) | fjall::Error::Storage(fjall::LsmError::Io(io)) => io,
        fjall::Error::Locked => return Status::Temporary,
        _ => return Status::Permanent,
    };
    match io.kind() {
        ErrorKind::Interrupted | ErrorKind::WouldBlock | ErrorKind::TimedOut => Status::Temporary,
        _ => Status::Permanent,
    }
}

#[async_trait]
impl KvSource for LsmStore {
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
        Ok(self.inner.estimate_bytes(span))
    }
}

#[async_trait]
impl KvSink for LsmStore {
    async fn catalog(&self) -> Result<Catalog> {
        let now = self.now().await?;
        self.catalog_at(now).await
    }

    async fn allocate_ids(&self, count: u32) -> Result<DescId> {
        self.blocking(move |inner| inner.allocate_ids(count)).await
    }

    async fn ingest(&self, batch: IngestBatch) -> Result<()> {
        // The batch comes back to be freed by the caller, whose thread allocated it.
        let batch = self.blocking(move |inner| inner.ingest(batch.iter()).map(|()| batch)).await?;
        drop(batch);
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
impl KvStore for LsmStore {
    async fn write(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Timestamp> {
        self.blocking(move |inner| inner.write("write", batch)).await
    }
}

// The store is shared across tasks and threads.
const _: fn() = || {
    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<LsmStore>();
};

impl LsmStore {
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
