//! The embedded persistent MVCC store: strata's default [`KvStore`], kept in one
//! [redb](https://docs.rs/redb) database file.
//!
//! The on-disk layout, the clock and how blocking calls are run are documented on
//! [`EmbeddedStore`].

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use strata_core::{
    check_gc_threshold, keys, Catalog, DescId, DescriptorChange, Entry, Error, KvSink, KvSource, KvStore, MvccFilter,
    Result, ScanPage, ScanRequest, Span, Status, Timestamp, FIRST_USER_ID,
};

/// `(key, u64::MAX - wall, u32::MAX - logical)`.
type VersionKey = (&'static [u8], u64, u32);

const MVCC: TableDefinition<'static, VersionKey, &'static [u8]> = TableDefinition::new("mvcc");
const META: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("meta");

const LAYOUT_VERSION_KEY: &str = "layout_version";
const LAST_TIMESTAMP_KEY: &str = "last_timestamp";
const GC_THRESHOLD_KEY: &str = "gc_threshold";
const LAYOUT_VERSION: u32 = 1;

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
/// `dir/strata.redb` is a redb database holding two tables:
///
/// ```text
/// table "mvcc"   key:   (key: &[u8], u64::MAX - wall: u64, u32::MAX - logical: u32)   (a redb tuple)
///                value: tag: u8 (0 = tombstone, 1 = value) ++ value bytes              (&[u8])
///
/// table "meta"   key: &str           value: &[u8]
///                "layout_version"    u32 BE, currently 1
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
/// redb is synchronous; every call runs on tokio's blocking pool when a tokio runtime is present
/// (and inline otherwise, e.g. under `futures::executor::block_on`).
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
    /// The database file, for error messages.
    path: PathBuf,
    clock: Mutex<ClockState>,
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

    /// Runs `fill` in one write transaction at a fresh timestamp, which it also persists as the
    /// last one issued.
    fn write_at_fresh_ts(
        &self,
        op: &str,
        fill: impl FnOnce(&mut redb::Table<'_, VersionKey, &'static [u8]>, Timestamp) -> Result<()>,
    ) -> Result<Timestamp> {
        let txn = self.db.begin_write().map_err(|e| self.err(op, e))?;
        let pending = self.issue();
        let ts = pending.ts;
        {
            let mut mvcc = txn.open_table(MVCC).map_err(|e| self.err(op, e))?;
            fill(&mut mvcc, ts)?;
            let mut meta = txn.open_table(META).map_err(|e| self.err(op, e))?;
            meta.insert(LAST_TIMESTAMP_KEY, encode_ts(ts).as_slice()).map_err(|e| self.err(op, e))?;
        }
        txn.commit().map_err(|e| self.err(op, e))?;
        drop(pending);
        Ok(ts)
    }

    fn write(&self, op: &str, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Timestamp> {
        self.write_at_fresh_ts(op, |mvcc, ts| {
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
                mvcc.insert(version_key(key, ts), buf.as_slice()).map_err(|e| self.err(op, e))?;
            }
            Ok(())
        })
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
        let mut bytes = 0u64;
        // The key whose versions are being read, and whether it needs no more of them.
        let mut current: Option<Vec<u8>> = None;
        let mut key_done = false;
        for row in range {
            let (k, v) = row.map_err(|e| self.err(OP, e))?;
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
            page.entries.push(Entry { key: key.to_vec(), ts, value: value.map(<[u8]>::to_vec) });
            key_done = request.filter == MvccFilter::Latest;
        }
        Ok(page)
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
        self.write_at_fresh_ts(OP, |mvcc, ts| {
            // The newest version of the counter, whatever its timestamp.
            {
                let newest = mvcc
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
            mvcc.insert(version_key(keys::ID_COUNTER_KEY, ts), value.as_slice()).map_err(|e| self.err(OP, e))?;
            Ok(())
        })?;
        Ok(first)
    }

    fn discard(&self, spans: &[Span]) -> Result<()> {
        const OP: &str = "discard";
        let txn = self.db.begin_write().map_err(|e| self.err(OP, e))?;
        {
            let mut mvcc = txn.open_table(MVCC).map_err(|e| self.err(OP, e))?;
            for span in spans.iter().filter(|s| !s.is_empty()) {
                let lower = (span.start.as_slice(), 0u64, 0u32);
                let upper = (span.end.as_slice(), 0u64, 0u32);
                mvcc.retain_in::<(&[u8], u64, u32), _>((Bound::Included(lower), Bound::Excluded(upper)), |_, _| false)
                    .map_err(|e| self.err(OP, e))?;
            }
        }
        txn.commit().map_err(|e| self.err(OP, e))
    }

    fn gc(&self, threshold: Timestamp) -> Result<()> {
        const OP: &str = "garbage collection";
        let txn = self.db.begin_write().map_err(|e| self.err(OP, e))?;
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

impl EmbeddedStore {
    /// The name of the database file inside the store's directory.
    pub const FILE_NAME: &'static str = "strata.redb";

    /// Opens the store in `dir`, creating the directory and the database file
    /// ([`EmbeddedStore::FILE_NAME`]) if needed.
    ///
    /// Fails if the file is not a strata store of a layout this version reads, or if another
    /// process has it open.
    pub fn open(dir: &Path) -> Result<EmbeddedStore> {
        let path = dir.join(Self::FILE_NAME);
        std::fs::create_dir_all(dir).map_err(|e| Error::Kv {
            message: format!("cannot create the store directory {}: {e}", dir.display()),
            status: Status::Permanent,
        })?;
        let db = Database::create(&path).map_err(|e| {
            let hint = match e {
                redb::DatabaseError::DatabaseAlreadyOpen => " (is another strata process using it?)",
                _ => "",
            };
            let e: redb::Error = e.into();
            Error::Kv { message: format!("cannot open {}: {e}{hint}", path.display()), status: status_of(&e) }
        })?;
        let inner = Inner { db, path, clock: Mutex::new(ClockState { last: Timestamp::ZERO, pending: None }) };
        let last = inner.init()?;
        inner.lock_clock().last = last;
        Ok(EmbeddedStore { inner: Arc::new(inner) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => match handle.spawn_blocking(move || f(&inner)).await {
                Ok(result) => result,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => Err(Error::Kv {
                    message: format!("operation on {} did not finish: {e}", self.inner.path.display()),
                    status: Status::Temporary,
                }),
            },
            Err(_) => f(&inner),
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
    /// Creates the tables of a new store, checks the layout version of an existing one, and
    /// returns the last timestamp issued.
    fn init(&self) -> Result<Timestamp> {
        const OP: &str = "opening the store";
        let txn = self.db.begin_write().map_err(|e| self.err(OP, e))?;
        let last = {
            txn.open_table(MVCC).map_err(|e| self.err(OP, e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.err(OP, e))?;
            let version = meta.get(LAYOUT_VERSION_KEY).map_err(|e| self.err(OP, e))?.map(|v| v.value().to_vec());
            match version {
                None => {
                    meta.insert(LAYOUT_VERSION_KEY, LAYOUT_VERSION.to_be_bytes().as_slice())
                        .map_err(|e| self.err(OP, e))?;
                }
                Some(v) if v == LAYOUT_VERSION.to_be_bytes() => {}
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
        let batch = pairs.into_iter().map(|(k, v)| (k, Some(v))).collect();
        self.blocking(move |inner| inner.write("ingest", batch)).await.map(drop)
    }

    async fn publish(&self, changes: Vec<DescriptorChange>) -> Result<Timestamp> {
        let batch = changes
            .into_iter()
            .map(|c| match c {
                DescriptorChange::Put(d) => (keys::descriptor_key(d.id()), Some(d.encode())),
                DescriptorChange::Delete(id) => (keys::descriptor_key(id), None),
            })
            .collect();
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
