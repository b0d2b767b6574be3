//! The embedded persistent MVCC store: strata's default [`KvStore`], kept in one
//! [redb](https://docs.rs/redb) database file.
//!
//! The on-disk layout, the clock and how blocking calls are run are documented on
//! [`EmbeddedStore`].

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use strata_core::{
    check_gc_threshold, keys, Catalog, DescId, DescriptorChange, Error, KvSink, KvSource, KvStore, MvccFilter,
    PageBuilder, Result, ScanPage, ScanRequest, Span, Status, Timestamp, FIRST_USER_ID,
};

/// `(key, u64::MAX - wall, u32::MAX - logical)`.
type VersionKey = (&'static [u8], u64, u32);
/// `(wall, logical, key)`: one row per version, in timestamp order.
type ChangeKey = (u64, u32, &'static [u8]);

const MVCC: TableDefinition<'static, VersionKey, &'static [u8]> = TableDefinition::new("mvcc");
/// The change log: one row per written version, in timestamp order, holding the version's value
/// too (as `"mvcc"` does), so a scan of changes reads only this table.
const CHANGES: TableDefinition<'static, ChangeKey, &'static [u8]> = TableDefinition::new("change_log");
/// Layout versions 2 and 3: the change index without values (converted on open).
const OLD_CHANGES: TableDefinition<'static, ChangeKey, ()> = TableDefinition::new("changes");
/// `(wall, logical, span start)` -> span end: the span of each ingest, whose versions have no
/// rows in `"changes"`.
const INGESTED: TableDefinition<'static, ChangeKey, &'static [u8]> = TableDefinition::new("ingested");
const META: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("meta");

const LAYOUT_VERSION_KEY: &str = "layout_version";
const LAST_TIMESTAMP_KEY: &str = "last_timestamp";
const GC_THRESHOLD_KEY: &str = "gc_threshold";
/// 1: `"mvcc"` and `"meta"`. 2: adds `"changes"` (built in one pass when a version 1 store opens).
/// 3: adds `"ingested"`: ingested versions have no rows in `"changes"` (a version 2 store has no
/// such versions, so it moves to 3 by creating the empty table; a strata that reads version 2
/// would miss ingested versions in its scans of changes, and refuses version 3).
/// 4: `"changes"` (keys only) becomes `"change_log"`, whose rows hold the versions' values: a
/// scan of changes no longer looks each changed key up in `"mvcc"` (converted on open).
const LAYOUT_VERSION: u32 = 4;

/// How many changed keys one pass over the change log collects at most (see
/// [`EmbeddedStore::set_changed_keys_per_pass`]).
const CHANGED_KEYS_PER_PASS: usize = 1 << 15;
/// How many bytes of changed keys and values one pass over the change log collects at most
/// (past the first key): what a window of changes holds in memory.
const CHANGED_BYTES_PER_PASS: usize = 8 << 20;
/// A window of at most this many writes is read by merging their runs of the change log (one
/// cursor each); a window of more, by passes that collect its changed keys ([`ChangedKeys`]).
const MAX_MERGED_RUNS: usize = 64;
/// How many windows of changed keys are kept between pages (one per unit a backup exports at
/// once, by default four): with [`CHANGED_BYTES_PER_PASS`], what they hold at most.
const CHANGED_KEYS_CACHED: usize = 4;

const TAG_TOMBSTONE: u8 = 0;
const TAG_VALUE: u8 = 1;

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
/// `dir/strata.redb` is a redb database holding four tables:
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
/// timestamp first. [`KvSource::scan_changes`] reads the rows of its window `(start, end]` in one
/// sequential pass and sorts them by key (a bounded number of keys and bytes per pass), so an
/// incremental backup costs what changed, not what exists, and never looks a key up in `"mvcc"`.
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
/// Ingest commits are not durable on their own ([`redb::Durability::None`]): the next durable
/// commit (every other write is one, and a restore ends with a publish) makes them durable. A
/// crash before it loses them; they were invisible anyway, written to spans no descriptor names
/// until the publish. A crash after a durable commit but before the publish leaves the versions
/// ingested so far in those unpublished spans, invisible and never scanned (as before: nothing
/// removes them yet; the restore's ids are not reused). So that the publish's sync does not have
/// to write every ingested page while the restore waits, each ingest starts a background sync of
/// the file from a second handle (one at a time, on the blocking pool).
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
/// redb is synchronous; every call runs on one of the store's two own threads (started when it
/// opens, ended when the last clone is dropped) and is awaited from any executor (tokio,
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

struct Inner {
    db: Database,
    /// The store's own threads, which run every redb operation (see [`EmbeddedStore::blocking`]).
    workers: Workers,
    /// The database file, for error messages.
    path: PathBuf,
    clock: Mutex<ClockState>,
    /// Windows of changed keys recently collected from the change index, newest last.
    changed_keys: Mutex<Vec<Arc<ChangedKeys>>>,
    changed_keys_per_pass: AtomicUsize,
    /// See [`MAX_MERGED_RUNS`] and [`EmbeddedStore::set_max_merged_runs`].
    max_merged_runs: AtomicUsize,
    /// Whether a write-back of the database file started after an ingest is still running.
    writing_back: Arc<AtomicBool>,
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
    /// Rows of the change index read by [`KvSource::scan_changes`].
    pub change_rows_read: u64,
}

/// Adds the rows an operation read to a counter when it ends, whichever way it ends.
struct RowCount<'a> {
    counter: &'a AtomicU64,
    rows: u64,
}

impl<'a> RowCount<'a> {
    fn new(counter: &'a AtomicU64) -> Self {
        RowCount { counter, rows: 0 }
    }
}

impl Drop for RowCount<'_> {
    fn drop(&mut self) {
        self.counter.fetch_add(self.rows, Ordering::Relaxed);
    }
}

/// A key's versions from the change log: timestamp, and the stored value (tag byte and value).
type Versions = Vec<(Timestamp, Vec<u8>)>;

/// The smallest distinct keys in `[lower, span_end)` with a version in `(start, end]`, and those
/// versions, collected from the change log for the pages of one `scan_changes`.
///
/// Valid while `generation` (the snapshot's `"last_timestamp"`) is unchanged: every write that
/// adds versions moves it. `discard` and GC, which remove versions without moving it, clear the
/// cache.
struct ChangedKeys {
    generation: Timestamp,
    start: Timestamp,
    end: Timestamp,
    filter: MvccFilter,
    span_end: Vec<u8>,
    lower: Vec<u8>,
    /// Sorted ascending by key, distinct; each key's versions in `(start, end]` newest first
    /// (only the newest with [`MvccFilter::Latest`]), as stored: tag byte and value.
    keys: Vec<(Vec<u8>, Versions)>,
    /// Whether every changed key in `[lower, span_end)` is in `keys` (else `keys` holds the
    /// smallest of them, and the rest are all above its last).
    complete: bool,
}

impl ChangedKeys {
    /// Whether these keys answer which keys at or after `lower` changed, up to the last of them.
    fn covers(&self, generation: Timestamp, request: &ScanRequest, lower: &[u8]) -> bool {
        self.generation == generation
            && self.start == request.start
            && self.end == request.end
            && self.filter == request.filter
            && self.span_end == request.span.end
            && self.lower.as_slice() <= lower
            && (self.complete || self.keys.last().is_some_and(|(k, _)| k.as_slice() >= lower))
    }
}

/// Threads the store runs redb operations on ([`EmbeddedStore::blocking`]).
const STORE_THREADS: usize = 2;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of threads taking jobs from one queue; they end when the queue's sender (held by
/// the store's shared state) is dropped.
struct Workers {
    tx: std::sync::mpsc::Sender<Job>,
}

impl Workers {
    fn start(threads: usize) -> Result<Workers> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("strata-store-{i}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for a job, never while running one.
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(poisoned) => poisoned.into_inner().recv(),
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })
                .map_err(|e| Error::Kv {
                    message: format!("cannot start the store's threads: {e}"),
                    status: Status::Temporary,
                })?;
        }
        Ok(Workers { tx })
    }
}

/// The tables a write transaction adds versions to.
struct WriteTables<'t> {
    mvcc: redb::Table<'t, VersionKey, &'static [u8]>,
    changes: redb::Table<'t, ChangeKey, &'static [u8]>,
}

/// The hybrid logical clock.
struct ClockState {
    /// The last timestamp issued, to a write or by `now()`.
    last: Timestamp,
    /// The timestamp of the write transaction in flight, if any (redb admits one at a time).
    pending: Option<Timestamp>,
}

/// Clears the clock's in-flight write when the write transaction ends, committed or not.
struct PendingWrite<'a> {
    inner: &'a Inner,
    ts: Timestamp,
}

impl Drop for PendingWrite<'_> {
    fn drop(&mut self) {
        let mut clock = self.inner.lock_clock();
        if clock.pending == Some(self.ts) {
            clock.pending = None;
        }
    }
}

fn wall_nanos() -> u64 {
    // Before 1970 (a badly set clock) counts as 0: the logical counter then keeps order.
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn version_key(key: &[u8], ts: Timestamp) -> (&[u8], u64, u32) {
    (key, u64::MAX - ts.wall, u32::MAX - ts.logical)
}

fn version_ts(inverted_wall: u64, inverted_logical: u32) -> Timestamp {
    Timestamp::new(u64::MAX - inverted_wall, u32::MAX - inverted_logical)
}

/// The smallest key above `key`.
fn successor(key: &[u8]) -> Vec<u8> {
    [key, &[0]].concat()
}

/// Bytes to reserve up front for a scan page's keys and values: the target and room for the key
/// that crosses it, so a page is built without reallocating (and copying) its buffer. At most
/// 16 MiB; a reservation that large is mapped lazily, so a small scan with a huge target costs
/// no memory it does not fill.
fn page_capacity(request: &ScanRequest) -> usize {
    usize::try_from(request.target_bytes).unwrap_or(usize::MAX).saturating_add(64 << 10).min(16 << 20)
}

/// Bounds of the change-index rows with a timestamp in `(start, end]`, for `start < end`.
fn change_bounds(start: Timestamp, end: Timestamp) -> (Bound<ChangeKey>, Bound<ChangeKey>) {
    // `start < end <= MAX`, so `start.next()` does not overflow.
    let first = start.next();
    let lower = Bound::Included((first.wall, first.logical, &[][..]));
    let upper = if end == Timestamp::MAX {
        Bound::Unbounded
    } else {
        let after = end.next();
        Bound::Excluded((after.wall, after.logical, &[][..]))
    };
    (lower, upper)
}

fn encode_ts(ts: Timestamp) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&ts.wall.to_be_bytes());
    out[8..].copy_from_slice(&ts.logical.to_be_bytes());
    out
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

impl Inner {
    fn lock_clock(&self) -> MutexGuard<'_, ClockState> {
        // The clock state is two timestamps, consistent after any panic.
        self.clock.lock().unwrap_or_else(|e| e.into_inner())
    }

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

    fn decode_ts(&self, what: &str, bytes: &[u8]) -> Result<Timestamp> {
        let b: [u8; 12] =
            bytes.try_into().map_err(|_| self.corrupt(format!("{what} is {} bytes long, expected 12", bytes.len())))?;
        let wall = u64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
        let logical = u32::from_be_bytes(b[8..].try_into().expect("4 bytes"));
        Ok(Timestamp::new(wall, logical))
    }

    /// The value of a stored version: `None` for a tombstone.
    fn decode_value<'v>(&self, key: &[u8], bytes: &'v [u8]) -> Result<Option<&'v [u8]>> {
        match bytes.split_first() {
            Some((&TAG_VALUE, value)) => Ok(Some(value)),
            Some((&TAG_TOMBSTONE, [])) => Ok(None),
            Some((tag, _)) => Err(self.corrupt(format!("version of {} has unknown tag {tag}", keys::pretty_key(key)))),
            None => Err(self.corrupt(format!("version of {} is empty", keys::pretty_key(key)))),
        }
    }

    fn read_meta_ts(&self, meta: &impl ReadableTable<&'static str, &'static [u8]>, name: &str) -> Result<Timestamp> {
        match meta.get(name).map_err(|e| self.err("read of the store's metadata", e))? {
            Some(v) => self.decode_ts(name, v.value()),
            None => Ok(Timestamp::ZERO),
        }
    }

    /// A new timestamp for a write transaction that has begun: above every timestamp issued so
    /// far. `now()` answers below it until the returned guard is dropped.
    fn issue(&self) -> PendingWrite<'_> {
        let physical = wall_nanos();
        let mut clock = self.lock_clock();
        let ts = if physical > clock.last.wall { Timestamp::from_nanos(physical) } else { clock.last.next() };
        clock.last = ts;
        clock.pending = Some(ts);
        PendingWrite { inner: self, ts }
    }

    fn now(&self) -> Timestamp {
        let physical = wall_nanos();
        let mut clock = self.lock_clock();
        if let Some(pending) = clock.pending {
            // Every committed write is below the one in flight; every later write is above it.
            return pending.prev();
        }
        clock.last = clock.last.max(Timestamp::from_nanos(physical));
        clock.last
    }

    /// Writes one version of `key` (`encoded`: tag and value) and its change-index row.
    fn put_version(
        &self,
        op: &str,
        tables: &mut WriteTables<'_>,
        key: &[u8],
        ts: Timestamp,
        encoded: &[u8],
    ) -> Result<()> {
        tables.mvcc.insert(version_key(key, ts), encoded).map_err(|e| self.err(op, e))?;
        tables.changes.insert((ts.wall, ts.logical, key), encoded).map_err(|e| self.err(op, e))?;
        Ok(())
    }

    /// Runs `fill` in one write transaction at a fresh timestamp, which it also persists as the
    /// last one issued, committed with `durability`.
    fn transact_at_fresh_ts(
        &self,
        op: &str,
        durability: redb::Durability,
        fill: impl FnOnce(&redb::WriteTransaction, Timestamp) -> Result<()>,
    ) -> Result<Timestamp> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(op, e))?;
        txn.set_durability(durability).map_err(|e| self.err(op, e))?;
        let pending = self.issue();
        let ts = pending.ts;
        fill(&txn, ts)?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(op, e))?;
            meta.insert(LAST_TIMESTAMP_KEY, encode_ts(ts).as_slice()).map_err(|e| self.err(op, e))?;
        }
        txn.commit().map_err(|e| self.err(op, e))?;
        drop(pending);
        Ok(ts)
    }

    /// Runs `fill` in one durable write transaction at a fresh timestamp (see
    /// [`Inner::transact_at_fresh_ts`]). `fill` writes versions with [`Inner::put_version`].
    fn write_at_fresh_ts(
        &self,
        op: &str,
        fill: impl FnOnce(&mut WriteTables<'_>, Timestamp) -> Result<()>,
    ) -> Result<Timestamp> {
        self.transact_at_fresh_ts(op, redb::Durability::Immediate, |txn, ts| {
            let mvcc = txn.open_table(MVCC).map_err(|e| self.err(op, e))?;
            let changes = txn.open_table(CHANGES).map_err(|e| self.err(op, e))?;
            fill(&mut WriteTables { mvcc, changes }, ts)
        })
    }

    fn write(&self, op: &str, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Timestamp> {
        self.write_at_fresh_ts(op, |tables, ts| {
            let mut buf = Vec::new();
            for (key, value) in &batch {
                buf.clear();
                match value {
                    Some(v) => {
                        buf.push(TAG_VALUE);
                        buf.extend_from_slice(v);
                    }
                    None => buf.push(TAG_TOMBSTONE),
                }
                self.put_version(op, tables, key, ts, &buf)?;
            }
            Ok(())
        })
    }

    /// [`KvSink::ingest`]: writes `pairs` as versions at one fresh timestamp, without change-index
    /// rows, and records the span they cover in `"ingested"` instead (see the on-disk layout).
    ///
    /// The commit is not durable ([`redb::Durability::None`]): the pairs go to spans no
    /// descriptor names until [`KvSink::publish`], whose durable commit makes them durable with
    /// it. A crash before then loses them, or keeps the ones an intervening durable commit made
    /// durable; either way they stay invisible, as the data of any restore that did not publish.
    ///
    /// Sorted pairs are inserted through one redb cursor, which appends runs of ascending keys
    /// to the B-tree's leaves instead of descending from the root for each; a pair that does not
    /// sort right after the previous one (unsorted or duplicate keys, or versions already in the
    /// table between them) is inserted on its own and the cursor moves after it.
    fn ingest(&self, pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
        const OP: &str = "ingest";
        let (Some(min), Some(max)) = (pairs.iter().map(|p| &p.0).min(), pairs.iter().map(|p| &p.0).max()) else {
            return Ok(());
        };
        self.transact_at_fresh_ts(OP, redb::Durability::None, |txn, ts| {
            let mut mvcc = txn.open_table(MVCC).map_err(|e| self.err(OP, e))?;
            let mut buf = vec![TAG_VALUE];
            let mut cursor =
                mvcc.lower_bound_mut(Bound::Included(version_key(min, ts))).map_err(|e| self.err(OP, e))?;
            for (key, value) in pairs {
                buf.truncate(1);
                buf.extend_from_slice(value);
                match cursor.insert_before(version_key(key, ts), buf.as_slice()) {
                    Ok(()) => continue,
                    Err(redb::CursorError::UnorderedKey) => {}
                    Err(e) => return Err(self.err(OP, e)),
                }
                cursor.close().map_err(|e| self.err(OP, e))?;
                mvcc.insert(version_key(key, ts), buf.as_slice()).map_err(|e| self.err(OP, e))?;
                cursor = mvcc.lower_bound_mut(Bound::Excluded(version_key(key, ts))).map_err(|e| self.err(OP, e))?;
            }
            cursor.close().map_err(|e| self.err(OP, e))?;
            let mut ingested = txn.open_table(INGESTED).map_err(|e| self.err(OP, e))?;
            let end = successor(max);
            ingested.insert((ts.wall, ts.logical, min.as_slice()), end.as_slice()).map_err(|e| self.err(OP, e))?;
            Ok(())
        })
        .map(drop)
    }

    /// Whether an ingest at a timestamp in `(request.start, request.end]` wrote into
    /// `request.span`: its versions have no rows in the change index, so
    /// [`Inner::scan_changes`] cannot answer `request` from the index (returning `Ok(None)` makes
    /// the caller scan instead). `txn` must be the read transaction the scan reads from.
    fn ingested_spans_overlap(&self, txn: &redb::ReadTransaction, request: &ScanRequest) -> Result<bool> {
        const OP: &str = "read of the ingested spans";
        if request.span.is_empty() || request.end <= request.start {
            return Ok(false);
        }
        let ingested = txn.open_table(INGESTED).map_err(|e| self.err(OP, e))?;
        for row in
            ingested.range::<ChangeKey>(change_bounds(request.start, request.end)).map_err(|e| self.err(OP, e))?
        {
            let (k, v) = row.map_err(|e| self.err(OP, e))?;
            let (_, _, start) = k.value();
            if start < request.span.end.as_slice() && request.span.start.as_slice() < v.value() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn scan(&self, request: &ScanRequest) -> Result<ScanPage> {
        const OP: &str = "scan";
        let txn = self.db.begin_read().map_err(|e| self.err(OP, e))?;
        let meta = txn.open_table(META).map_err(|e| self.err(OP, e))?;
        check_gc_threshold(request, self.read_meta_ts(&meta, GC_THRESHOLD_KEY)?)?;
        let mut page = ScanPage::default();
        if request.span.is_empty() || request.end <= request.start {
            return Ok(page);
        }
        let mvcc = txn.open_table(MVCC).map_err(|e| self.err(OP, e))?;
        // (key, 0, 0) is the newest possible version of `key`: the first row of it.
        let lower = (request.span.start.as_slice(), 0u64, 0u32);
        let upper = (request.span.end.as_slice(), 0u64, 0u32);
        let range = mvcc
            .range::<(&[u8], u64, u32)>((Bound::Included(lower), Bound::Excluded(upper)))
            .map_err(|e| self.err(OP, e))?;
        let mut rows = RowCount::new(&self.mvcc_rows_read);
        let mut bytes = 0u64;
        let mut out = PageBuilder::with_capacity(page_capacity(request));
        // The key whose versions are being read, and whether it needs no more of them.
        let mut current: Option<Vec<u8>> = None;
        let mut key_done = false;
        for row in range {
            let (k, v) = row.map_err(|e| self.err(OP, e))?;
            rows.rows += 1;
            let (key, inverted_wall, inverted_logical) = k.value();
            if current.as_deref() != Some(key) {
                if bytes >= request.target_bytes {
                    page.resume_key = Some(key.to_vec());
                    break;
                }
                let buf = current.get_or_insert_with(Vec::new);
                buf.clear();
                buf.extend_from_slice(key);
                key_done = false;
            }
            if key_done {
                continue;
            }
            let ts = version_ts(inverted_wall, inverted_logical);
            if ts > request.end {
                continue;
            }
            if ts <= request.start {
                key_done = true;
                continue;
            }
            let value = self.decode_value(key, v.value())?;
            bytes += (key.len() + value.map_or(0, <[u8]>::len)) as u64;
            out.push(key, ts, value);
            key_done = request.filter == MvccFilter::Latest;
        }
        Ok(out.finish(page.resume_key))
    }

    /// [`KvSource::scan_changes`]: the page [`Inner::scan`] returns, from the change log.
    ///
    /// `scan` visits every key of the span in order and, before each, ends the page with that key
    /// as `resume_key` once the page holds `target_bytes`. Only keys with a version in the window
    /// add bytes, so the page is their versions up to the first key that makes the page full, and
    /// `resume_key` is the first key of the MVCC table after that one: one seek. The versions
    /// come from the change log's rows (which hold their values): `"mvcc"` is read for that seek
    /// only.
    fn scan_changes(&self, request: &ScanRequest) -> Result<Option<ScanPage>> {
        const OP: &str = "scan of changes";
        if request.start.is_zero() {
            // Everything changed since zero: a full scan is the right tool.
            return Ok(None);
        }
        let txn = self.db.begin_read().map_err(|e| self.err(OP, e))?;
        let meta = txn.open_table(META).map_err(|e| self.err(OP, e))?;
        check_gc_threshold(request, self.read_meta_ts(&meta, GC_THRESHOLD_KEY)?)?;
        if request.span.is_empty() || request.end <= request.start {
            return Ok(Some(ScanPage::default()));
        }
        // Ingested versions have no change-log rows: a window holding an ingest into the span
        // is answered by a full scan.
        if self.ingested_spans_overlap(&txn, request)? {
            return Ok(None);
        }
        let generation = self.read_meta_ts(&meta, LAST_TIMESTAMP_KEY)?;
        let changes = txn.open_table(CHANGES).map_err(|e| self.err(OP, e))?;
        let mvcc = txn.open_table(MVCC).map_err(|e| self.err(OP, e))?;
        let mut rows = RowCount::new(&self.mvcc_rows_read);
        let mut out = PageBuilder::with_capacity(page_capacity(request));
        let bytes = match self.change_runs(&changes, request)? {
            Some(runs) => self.merge_runs(&changes, request, &runs, &mut out)?,
            None => self.page_from_passes(&changes, generation, request, &mut out)?,
        };
        let mut resume_key = None;
        if bytes >= request.target_bytes {
            let after = out.last_key().map_or_else(|| request.span.start.clone(), successor);
            let next = mvcc
                .range::<(&[u8], u64, u32)>((after.as_slice(), 0, 0)..(request.span.end.as_slice(), 0, 0))
                .map_err(|e| self.err(OP, e))?
                .next()
                .transpose()
                .map_err(|e| self.err(OP, e))?;
            if let Some((k, _)) = next {
                rows.rows += 1;
                resume_key = Some(k.value().0.to_vec());
            }
        }
        Ok(Some(out.finish(resume_key)))
    }

    /// The timestamps of the writes in `request`'s window (each one run of the change log, its
    /// keys sorted), or `None` when there are more than [`MAX_MERGED_RUNS`]: one seek per write.
    fn change_runs(
        &self,
        changes: &redb::ReadOnlyTable<ChangeKey, &'static [u8]>,
        request: &ScanRequest,
    ) -> Result<Option<Vec<Timestamp>>> {
        const OP: &str = "read of the change log";
        let max = self.max_merged_runs.load(Ordering::Relaxed);
        if max == 0 {
            return Ok(None);
        }
        let (mut lower, upper) = change_bounds(request.start, request.end);
        let mut runs = Vec::new();
        let mut rows = RowCount::new(&self.change_rows_read);
        loop {
            let first = changes.range::<ChangeKey>((lower, upper)).map_err(|e| self.err(OP, e))?.next();
            let Some(row) = first else { return Ok(Some(runs)) };
            let (k, _) = row.map_err(|e| self.err(OP, e))?;
            rows.rows += 1;
            let (wall, logical, _) = k.value();
            let ts = Timestamp::new(wall, logical);
            if runs.len() >= max {
                return Ok(None);
            }
            runs.push(ts);
            if ts == Timestamp::MAX {
                return Ok(Some(runs));
            }
            let after = ts.next();
            lower = Bound::Included((after.wall, after.logical, &[][..]));
        }
    }

    /// Fills `out` from the change log's `runs` (writes in the window, oldest first) by merging
    /// their rows in `request`'s span, key by key, up to the page's target; returns its bytes.
    /// Each run's rows of one span are one range of the log, sorted by key, so this reads only
    /// the rows it returns and holds nothing but one cursor per run.
    fn merge_runs(
        &self,
        changes: &redb::ReadOnlyTable<ChangeKey, &'static [u8]>,
        request: &ScanRequest,
        runs: &[Timestamp],
        out: &mut PageBuilder,
    ) -> Result<u64> {
        const OP: &str = "read of the change log";
        let mut rows = RowCount::new(&self.change_rows_read);
        let (start, end) = (request.span.start.as_slice(), request.span.end.as_slice());
        let mut cursors = Vec::with_capacity(runs.len());
        let mut heads = Vec::with_capacity(runs.len());
        for ts in runs {
            let mut range = changes
                .range::<(u64, u32, &[u8])>((ts.wall, ts.logical, start)..(ts.wall, ts.logical, end))
                .map_err(|e| self.err(OP, e))?;
            let head = range.next().transpose().map_err(|e| self.err(OP, e))?;
            rows.rows += u64::from(head.is_some());
            cursors.push(range);
            heads.push(head);
        }
        let mut bytes = 0u64;
        let mut versions: Vec<usize> = Vec::with_capacity(runs.len());
        loop {
            // The smallest key among the heads, and the runs holding it (oldest first).
            versions.clear();
            let mut smallest: Option<&[u8]> = None;
            for (i, head) in heads.iter().enumerate() {
                let Some((k, _)) = head else { continue };
                let key = k.value().2;
                match smallest.map(|s| key.cmp(s)) {
                    None | Some(std::cmp::Ordering::Less) => {
                        smallest = Some(key);
                        versions.clear();
                        versions.push(i);
                    }
                    Some(std::cmp::Ordering::Equal) => versions.push(i),
                    Some(std::cmp::Ordering::Greater) => {}
                }
            }
            let Some(key) = smallest else { return Ok(bytes) };
            if bytes >= request.target_bytes {
                return Ok(bytes);
            }
            // Newest first; with `Latest`, only the newest.
            let take = if request.filter == MvccFilter::Latest { 1 } else { versions.len() };
            for &i in versions.iter().rev().take(take) {
                let (k, v) = heads[i].as_ref().expect("a run holding the key has a head");
                let (wall, logical, _) = k.value();
                let value = self.decode_value(key, v.value())?;
                bytes += (key.len() + value.map_or(0, <[u8]>::len)) as u64;
                out.push(key, Timestamp::new(wall, logical), value);
            }
            for &i in &versions {
                heads[i] = cursors[i].next().transpose().map_err(|e| self.err(OP, e))?;
                rows.rows += u64::from(heads[i].is_some());
            }
        }
    }

    /// Fills `out` from passes over the window's rows of the change log (see [`ChangedKeys`]),
    /// for windows of many writes; returns the page's bytes.
    fn page_from_passes(
        &self,
        changes: &redb::ReadOnlyTable<ChangeKey, &'static [u8]>,
        generation: Timestamp,
        request: &ScanRequest,
        out: &mut PageBuilder,
    ) -> Result<u64> {
        let mut bytes = 0u64;
        let mut lower = request.span.start.clone();
        'keys: loop {
            let chunk = self.changed_keys(changes, generation, request, &lower)?;
            let first = chunk.keys.partition_point(|(k, _)| *k < lower);
            for (key, versions) in &chunk.keys[first..] {
                if bytes >= request.target_bytes {
                    break 'keys;
                }
                for (ts, stored) in versions {
                    let value = self.decode_value(key, stored)?;
                    bytes += (key.len() + value.map_or(0, <[u8]>::len)) as u64;
                    out.push(key, *ts, value);
                }
            }
            match (chunk.complete, chunk.keys.last()) {
                (false, Some((last, _))) => lower = successor(last),
                _ => break,
            }
        }
        Ok(bytes)
    }

    /// The changed keys of `request`'s window and span at or after `lower`, with their versions,
    /// from the cache or from one pass over the window's rows of the change log.
    fn changed_keys(
        &self,
        changes: &redb::ReadOnlyTable<ChangeKey, &'static [u8]>,
        generation: Timestamp,
        request: &ScanRequest,
        lower: &[u8],
    ) -> Result<Arc<ChangedKeys>> {
        const OP: &str = "read of the change index";
        {
            let mut cache = self.lock_changed_keys();
            if let Some(i) = cache.iter().position(|c| c.covers(generation, request, lower)) {
                let hit = cache.remove(i);
                cache.push(hit.clone());
                return Ok(hit);
            }
        }
        let max = self.changed_keys_per_pass.load(Ordering::Relaxed).max(1);
        let span_end = request.span.end.as_slice();
        // Rows come oldest first: a key's versions are pushed in that order, reversed below.
        let mut keys: BTreeMap<Vec<u8>, Versions> = BTreeMap::new();
        let mut held = 0usize;
        let mut complete = true;
        let mut rows = RowCount::new(&self.change_rows_read);
        let range =
            changes.range::<ChangeKey>(change_bounds(request.start, request.end)).map_err(|e| self.err(OP, e))?;
        for row in range {
            let (k, v) = row.map_err(|e| self.err(OP, e))?;
            rows.rows += 1;
            let (wall, logical, key) = k.value();
            if key < lower || key >= span_end {
                continue;
            }
            let version = (Timestamp::new(wall, logical), v.value().to_vec());
            if let Some(versions) = keys.get_mut(key) {
                if request.filter == MvccFilter::Latest {
                    held = held - versions[0].1.len() + version.1.len();
                    versions[0] = version;
                } else {
                    held += version.1.len();
                    versions.push(version);
                }
                continue;
            }
            let full = keys.len() >= max || held >= CHANGED_BYTES_PER_PASS;
            if full && keys.last_key_value().is_some_and(|(last, _)| key > last.as_slice()) {
                complete = false;
                continue;
            }
            held += key.len() + version.1.len();
            keys.insert(key.to_vec(), vec![version]);
            // Keep the smallest keys: drop the largest while over a bound (never the only one).
            while keys.len() > 1 && (keys.len() > max || held > CHANGED_BYTES_PER_PASS) {
                let (k, versions) = keys.pop_last().expect("more than one key");
                held -= k.len() + versions.iter().map(|(_, v)| v.len()).sum::<usize>();
                complete = false;
            }
        }
        let chunk = Arc::new(ChangedKeys {
            generation,
            start: request.start,
            end: request.end,
            filter: request.filter,
            span_end: span_end.to_vec(),
            lower: lower.to_vec(),
            keys: keys
                .into_iter()
                .map(|(k, mut versions)| {
                    versions.reverse();
                    (k, versions)
                })
                .collect(),
            complete,
        });
        let mut cache = self.lock_changed_keys();
        cache.push(chunk.clone());
        if cache.len() > CHANGED_KEYS_CACHED {
            cache.remove(0);
        }
        Ok(chunk)
    }

    fn lock_changed_keys(&self) -> MutexGuard<'_, Vec<Arc<ChangedKeys>>> {
        // A list of immutable entries, consistent after any panic.
        self.changed_keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get_at(&self, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>> {
        const OP: &str = "point read";
        let txn = self.db.begin_read().map_err(|e| self.err(OP, e))?;
        let meta = txn.open_table(META).map_err(|e| self.err(OP, e))?;
        // The span of exactly `key`, for the error message.
        let span = Span::new(key, [key, &[0]].concat());
        let request = ScanRequest::new(span, Timestamp::ZERO, ts, MvccFilter::Latest);
        check_gc_threshold(&request, self.read_meta_ts(&meta, GC_THRESHOLD_KEY)?)?;
        let mvcc = txn.open_table(MVCC).map_err(|e| self.err(OP, e))?;
        let mut range = mvcc
            .range::<(&[u8], u64, u32)>(version_key(key, ts)..=(key, u64::MAX, u32::MAX))
            .map_err(|e| self.err(OP, e))?;
        match range.next() {
            Some(row) => {
                let (_, v) = row.map_err(|e| self.err(OP, e))?;
                Ok(self.decode_value(key, v.value())?.map(<[u8]>::to_vec))
            }
            None => Ok(None),
        }
    }

    fn allocate_ids(&self, count: u32) -> Result<DescId> {
        const OP: &str = "id allocation";
        let mut first = FIRST_USER_ID;
        self.write_at_fresh_ts(OP, |tables, ts| {
            // The newest version of the counter, whatever its timestamp.
            {
                let newest = tables
                    .mvcc
                    .range::<(&[u8], u64, u32)>(
                        (keys::ID_COUNTER_KEY, 0, 0)..=(keys::ID_COUNTER_KEY, u64::MAX, u32::MAX),
                    )
                    .map_err(|e| self.err(OP, e))?
                    .next()
                    .transpose()
                    .map_err(|e| self.err(OP, e))?;
                if let Some((_, v)) = newest {
                    if let Some(bytes) = self.decode_value(keys::ID_COUNTER_KEY, v.value())? {
                        if let Ok(b) = <[u8; 4]>::try_from(bytes) {
                            first = u32::from_be_bytes(b);
                        }
                    }
                }
            }
            let next = first.checked_add(count).ok_or_else(|| Error::Kv {
                message: format!("cannot allocate {count} descriptor ids after {first}: the id space is exhausted"),
                status: Status::Permanent,
            })?;
            let mut value = vec![TAG_VALUE];
            value.extend_from_slice(&next.to_be_bytes());
            self.put_version(OP, tables, keys::ID_COUNTER_KEY, ts, &value)
        })?;
        Ok(first)
    }

    fn discard(&self, spans: &[Span]) -> Result<()> {
        const OP: &str = "discard";
        let txn = self.db.begin_write().map_err(|e| self.err(OP, e))?;
        // Cached windows of changes may hold versions this removes.
        self.lock_changed_keys().clear();
        {
            let mut mvcc = txn.open_table(MVCC).map_err(|e| self.err(OP, e))?;
            let mut changes = txn.open_table(CHANGES).map_err(|e| self.err(OP, e))?;
            let mut ingested = txn.open_table(INGESTED).map_err(|e| self.err(OP, e))?;
            for span in spans.iter().filter(|s| !s.is_empty()) {
                // The ingests into the span: their versions have no change-index rows to remove,
                // and the rows of those wholly inside the span go with their versions.
                let mut ingests: BTreeSet<Timestamp> = BTreeSet::new();
                ingested
                    .retain(|(wall, logical, start), end| {
                        if start < span.end.as_slice() && span.start.as_slice() < end {
                            ingests.insert(Timestamp::new(wall, logical));
                        }
                        !(span.start.as_slice() <= start && end <= span.end.as_slice())
                    })
                    .map_err(|e| self.err(OP, e))?;
                let lower = (span.start.as_slice(), 0u64, 0u32);
                let upper = (span.end.as_slice(), 0u64, 0u32);
                let mut removed: Vec<(Vec<u8>, Timestamp)> = Vec::new();
                mvcc.retain_in::<(&[u8], u64, u32), _>(
                    (Bound::Included(lower), Bound::Excluded(upper)),
                    |(key, inverted_wall, inverted_logical), _| {
                        let ts = version_ts(inverted_wall, inverted_logical);
                        if !ingests.contains(&ts) {
                            removed.push((key.to_vec(), ts));
                        }
                        false
                    },
                )
                .map_err(|e| self.err(OP, e))?;
                for (key, ts) in &removed {
                    changes.remove((ts.wall, ts.logical, key.as_slice())).map_err(|e| self.err(OP, e))?;
                }
            }
        }
        txn.commit().map_err(|e| self.err(OP, e))
    }

    fn gc(&self, threshold: Timestamp) -> Result<()> {
        const OP: &str = "garbage collection";
        let txn = self.db.begin_write().map_err(|e| self.err(OP, e))?;
        // Cached windows of changes may hold versions this removes.
        self.lock_changed_keys().clear();
        {
            let mut mvcc = txn.open_table(MVCC).map_err(|e| self.err(OP, e))?;
            // Versions to drop: for each key, every version at or below the threshold except the
            // newest of them, which stays unless it is a tombstone.
            let mut doomed: Vec<(Vec<u8>, u64, u32)> = Vec::new();
            {
                let mut current: Option<Vec<u8>> = None;
                let mut kept_one = false;
                for row in mvcc.iter().map_err(|e| self.err(OP, e))? {
                    let (k, v) = row.map_err(|e| self.err(OP, e))?;
                    let (key, inverted_wall, inverted_logical) = k.value();
                    if current.as_deref() != Some(key) {
                        current = Some(key.to_vec());
                        kept_one = false;
                    }
                    if version_ts(inverted_wall, inverted_logical) > threshold {
                        continue;
                    }
                    let keep = !kept_one && self.decode_value(key, v.value())?.is_some();
                    kept_one = true;
                    if !keep {
                        doomed.push((key.to_vec(), inverted_wall, inverted_logical));
                    }
                }
            }
            for (key, inverted_wall, inverted_logical) in &doomed {
                mvcc.remove((key.as_slice(), *inverted_wall, *inverted_logical)).map_err(|e| self.err(OP, e))?;
            }
            // No scan of changes starts below the threshold: their index rows and the records
            // of ingests at or below it are never read.
            let mut changes = txn.open_table(CHANGES).map_err(|e| self.err(OP, e))?;
            let upper = if threshold == Timestamp::MAX {
                Bound::Unbounded
            } else {
                let above = threshold.next();
                Bound::Excluded((above.wall, above.logical, &[][..]))
            };
            changes.retain_in::<ChangeKey, _>((Bound::Unbounded, upper), |_, _| false).map_err(|e| self.err(OP, e))?;
            let mut ingested = txn.open_table(INGESTED).map_err(|e| self.err(OP, e))?;
            ingested.retain_in::<ChangeKey, _>((Bound::Unbounded, upper), |_, _| false).map_err(|e| self.err(OP, e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.err(OP, e))?;
            let old = self.read_meta_ts(&meta, GC_THRESHOLD_KEY)?;
            meta.insert(GC_THRESHOLD_KEY, encode_ts(old.max(threshold)).as_slice()).map_err(|e| self.err(OP, e))?;
        }
        txn.commit().map_err(|e| self.err(OP, e))
    }

    fn gc_threshold(&self) -> Result<Timestamp> {
        const OP: &str = "read of the GC threshold";
        let txn = self.db.begin_read().map_err(|e| self.err(OP, e))?;
        let meta = txn.open_table(META).map_err(|e| self.err(OP, e))?;
        self.read_meta_ts(&meta, GC_THRESHOLD_KEY)
    }
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
            workers: Workers::start(STORE_THREADS)?,
            path,
            clock: Mutex::new(ClockState { last: Timestamp::ZERO, pending: None }),
            changed_keys: Mutex::new(Vec::new()),
            changed_keys_per_pass: AtomicUsize::new(CHANGED_KEYS_PER_PASS),
            max_merged_runs: AtomicUsize::new(MAX_MERGED_RUNS),
            writing_back: Arc::new(AtomicBool::new(false)),
            mvcc_rows_read: AtomicU64::new(0),
            change_rows_read: AtomicU64::new(0),
        };
        let last = inner.init()?;
        inner.lock_clock().last = last;
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

    /// For tests: how many changed keys one pass over the change index collects at most (default
    /// 32,768). A window with more changed keys in the span is read in several passes.
    #[doc(hidden)]
    pub fn set_changed_keys_per_pass(&self, keys: usize) {
        self.inner.changed_keys_per_pass.store(keys.max(1), Ordering::Relaxed);
        self.inner.lock_changed_keys().clear();
    }

    /// For tests: a window of at most this many writes is read by merging their runs of the
    /// change log (default 64); a window of more, by passes. 0 always reads by passes.
    #[doc(hidden)]
    pub fn set_max_merged_runs(&self, runs: usize) {
        self.inner.max_merged_runs.store(runs, Ordering::Relaxed);
    }

    /// Starts writing the database file's dirty pages to disk in the background, unless a
    /// write-back is still running (with a tokio runtime only).
    ///
    /// Ingests do not sync (see the on-disk layout): their pages wait in the OS's page cache until
    /// the next durable commit, the publish at the end of a restore, whose sync would then write
    /// them all while the restore waits. Syncing the file from another handle meanwhile writes
    /// them while the restore goes on. It changes nothing of what is durable when: only redb's own
    /// commits make a transaction durable.
    fn write_back(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        if self.inner.writing_back.swap(true, Ordering::AcqRel) {
            return;
        }
        let (path, running) = (self.inner.path.clone(), self.inner.writing_back.clone());
        drop(handle.spawn_blocking(move || {
            // Best effort: a failure here loses nothing, the next commit syncs again.
            let _ = std::fs::File::open(&path).and_then(|f| f.sync_data());
            running.store(false, Ordering::Release);
        }));
    }

    /// Runs `f` on one of the store's threads and awaits its result (a panic in `f` resumes
    /// here).
    ///
    /// Not tokio's blocking pool: its threads come and go, and redb's page buffers, allocated on
    /// one and freed on another, then stay resident in each thread's share of the allocator
    /// (random writes into a 4 GB store grew the process to 330 MB with mimalloc, against 148 MB
    /// on two fixed threads). Two threads let a scan and a write, or two scans, run at once.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let (tx, rx) = futures::channel::oneshot::channel();
        let job: Job = Box::new(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&inner)));
            drop(inner);
            let _ = tx.send(result);
        });
        let lost = || Error::Kv {
            message: format!("operation on {} did not finish: the store's threads are gone", self.inner.path.display()),
            status: Status::Temporary,
        };
        self.inner.workers.tx.send(job).map_err(|_| lost())?;
        match rx.await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(lost()),
        }
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
    /// Creates the tables of a new store, checks the layout version of an existing one (moving an
    /// older one to version 4, see the on-disk layout), and returns the last timestamp issued.
    fn init(&self) -> Result<Timestamp> {
        const OP: &str = "opening the store";
        let txn = self.db.begin_write().map_err(|e| self.err(OP, e))?;
        let last = {
            let mvcc = txn.open_table(MVCC).map_err(|e| self.err(OP, e))?;
            let mut changes = txn.open_table(CHANGES).map_err(|e| self.err(OP, e))?;
            txn.open_table(INGESTED).map_err(|e| self.err(OP, e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.err(OP, e))?;
            let version = meta.get(LAYOUT_VERSION_KEY).map_err(|e| self.err(OP, e))?.map(|v| v.value().to_vec());
            match version {
                None => {
                    meta.insert(LAYOUT_VERSION_KEY, LAYOUT_VERSION.to_be_bytes().as_slice())
                        .map_err(|e| self.err(OP, e))?;
                }
                Some(v) if v == LAYOUT_VERSION.to_be_bytes() => {}
                Some(v) if v == 2u32.to_be_bytes() || v == 3u32.to_be_bytes() => {
                    // "ingested" was created above (empty, for version 2, which wrote index rows
                    // for every version). The index rows become change-log rows with values.
                    const UPGRADE: &str = "building the change log (layout version 2 or 3 to 4)";
                    {
                        let old = txn.open_table(OLD_CHANGES).map_err(|e| self.err(UPGRADE, e))?;
                        for row in old.iter().map_err(|e| self.err(UPGRADE, e))? {
                            let (k, _) = row.map_err(|e| self.err(UPGRADE, e))?;
                            let (wall, logical, key) = k.value();
                            let stored = mvcc
                                .get(version_key(key, Timestamp::new(wall, logical)))
                                .map_err(|e| self.err(UPGRADE, e))?;
                            // A row without its version (none should exist) is dropped.
                            if let Some(v) = stored {
                                changes.insert((wall, logical, key), v.value()).map_err(|e| self.err(UPGRADE, e))?;
                            }
                        }
                    }
                    txn.delete_table(OLD_CHANGES).map_err(|e| self.err(UPGRADE, e))?;
                    meta.insert(LAYOUT_VERSION_KEY, LAYOUT_VERSION.to_be_bytes().as_slice())
                        .map_err(|e| self.err(UPGRADE, e))?;
                }
                Some(v) if v == 1u32.to_be_bytes() => {
                    const UPGRADE: &str = "building the change log (layout version 1 to 4)";
                    // Rows at or below the GC threshold are never read (see `gc`).
                    let threshold = self.read_meta_ts(&meta, GC_THRESHOLD_KEY)?;
                    for row in mvcc.iter().map_err(|e| self.err(UPGRADE, e))? {
                        let (k, v) = row.map_err(|e| self.err(UPGRADE, e))?;
                        let (key, inverted_wall, inverted_logical) = k.value();
                        let ts = version_ts(inverted_wall, inverted_logical);
                        if ts > threshold {
                            changes.insert((ts.wall, ts.logical, key), v.value()).map_err(|e| self.err(UPGRADE, e))?;
                        }
                    }
                    meta.insert(LAYOUT_VERSION_KEY, LAYOUT_VERSION.to_be_bytes().as_slice())
                        .map_err(|e| self.err(UPGRADE, e))?;
                }
                Some(v) => {
                    return Err(Error::NotSupported {
                        feature: format!(
                            "the store layout version {} of {} (this strata reads version {LAYOUT_VERSION})",
                            match <[u8; 4]>::try_from(v.as_slice()) {
                                Ok(b) => u32::from_be_bytes(b).to_string(),
                                Err(_) => format!("{v:02x?}"),
                            },
                            self.path.display()
                        ),
                    })
                }
            }
            self.read_meta_ts(&meta, LAST_TIMESTAMP_KEY)?
        };
        txn.commit().map_err(|e| self.err(OP, e))?;
        Ok(last)
    }
}

#[async_trait]
impl KvSource for EmbeddedStore {
    async fn now(&self) -> Result<Timestamp> {
        Ok(self.inner.now())
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

    async fn ingest(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        // The pairs come back to be freed by the caller, whose thread allocated them: freeing
        // them is work off the blocking thread, which is what bounds a restore.
        let pairs = self.blocking(move |inner| inner.ingest(&pairs).map(|()| pairs)).await?;
        drop(pairs);
        self.write_back();
        Ok(())
    }

    async fn publish(&self, changes: Vec<DescriptorChange>) -> Result<Timestamp> {
        let batch = changes.into_iter().map(DescriptorChange::into_write).collect();
        self.blocking(move |inner| inner.write("publish of descriptors", batch)).await
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
