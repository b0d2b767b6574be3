//! [`EtcdKv`]: strata's `KvSource` / `KvSink` / `KvStore` on an etcd cluster.

use std::collections::BTreeMap;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use etcd_client::{CompactionOptions, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnResponse};
use strata_core::{
    check_gc_threshold, keys, Catalog, DescId, DescriptorChange, Error, IngestBatch, KvSink, KvSource, KvStore, Result,
    ScanPage, ScanRequest, Span, Status, Timestamp, WorkUnit, FIRST_USER_ID,
};

use crate::client::{parse_endpoints, EtcdConn};
use crate::history::{compaction_revision, range_all, History};
use crate::index::Index;
use crate::keyspace::Keyspace;
use crate::layout::{decode_value, Layout, DEFAULT_ROOT};

/// Options of [`EtcdKv::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdOptions {
    /// The etcd key prefix under which strata keeps its own rows, clock and records.
    pub root: Vec<u8>,
    /// Operations per transaction the cluster accepts (etcd's `--max-txn-ops`, 128 by default).
    pub max_txn_ops: usize,
    /// Bytes per request the cluster accepts (etcd's `--max-request-bytes`, 1.5 MiB by default).
    pub max_request_bytes: usize,
    /// Deadline of one request to one member before the next member is tried.
    pub request_timeout: Duration,
    /// How long a read waits for the history watch to reach a revision before it fails.
    pub sync_timeout: Duration,
    /// About how many bytes of live keys and values one work unit of a backup covers
    /// ([`KvSource::split`]): units are what worker processes claim one at a time.
    pub unit_bytes: u64,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            root: DEFAULT_ROOT.as_bytes().to_vec(),
            max_txn_ops: 128,
            max_request_bytes: 1536 * 1024,
            request_timeout: Duration::from_secs(5),
            sync_timeout: Duration::from_secs(30),
            unit_bytes: 256 << 10,
        }
    }
}

impl EtcdOptions {
    /// With this root prefix (e.g. `/strata/`); several stores can share a cluster under
    /// different roots.
    pub fn with_root(mut self, root: impl Into<Vec<u8>>) -> Self {
        self.root = root.into();
        self
    }

    /// With this many operations per transaction.
    pub fn with_max_txn_ops(mut self, ops: usize) -> Self {
        self.max_txn_ops = ops.max(2);
        self
    }

    /// With this many bytes per request.
    pub fn with_max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }

    /// With work units of about this many bytes (see [`EtcdOptions::unit_bytes`]).
    pub fn with_unit_bytes(mut self, bytes: u64) -> Self {
        self.unit_bytes = bytes.max(1);
        self
    }

    /// With this per-request deadline.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }
}

struct Inner {
    conn: Arc<EtcdConn>,
    keyspace: Arc<Keyspace>,
    options: EtcdOptions,
    history: History,
    /// The revision at which the store's root was created.
    init_rev: i64,
}

/// strata on an etcd cluster: a [`KvSource`], [`KvSink`] and [`KvStore`] whose timestamps are
/// etcd revisions (see [`crate`] for the layout and the timestamp mapping). Cloning shares the
/// connection and the history index.
#[derive(Clone)]
pub struct EtcdKv {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EtcdKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdKv")
            .field("endpoints", &self.inner.conn.endpoints())
            .field("root", &String::from_utf8_lossy(&self.inner.options.root))
            .finish_non_exhaustive()
    }
}

fn system_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn header_rev(resp: &TxnResponse) -> i64 {
    resp.header().map_or(0, |h| h.revision())
}

impl EtcdKv {
    /// Opens the store under `options.root` of the cluster at `endpoints` (client URLs
    /// `http://HOST:PORT`), creating its root records on first use, loading the history index
    /// (etcd's keys at its compaction revision, then its watch). Must run inside a tokio runtime:
    /// the watch is a task of it.
    pub async fn open(endpoints: Vec<String>, options: EtcdOptions) -> Result<EtcdKv> {
        let conn = Arc::new(EtcdConn::new(endpoints, options.request_timeout));
        let layout = Layout::new(&options.root);
        let init_rev = init(&conn, &layout).await?;
        let mut maps = BTreeMap::new();
        let map_prefix = layout.map_prefix();
        for kv in range_all(&conn, &map_prefix, &strata_core::prefix_end(&map_prefix), 0).await? {
            if let Ok(id) = <[u8; 4]>::try_from(&kv.key()[map_prefix.len()..]) {
                maps.insert(u32::from_be_bytes(id), kv.value().to_vec());
            }
        }
        let keyspace = Arc::new(Keyspace::new(layout, maps)?);
        let history = History::start(conn.clone(), keyspace.clone()).await?;
        let store = EtcdKv { inner: Arc::new(Inner { conn, keyspace, options, history, init_rev }) };
        Ok(store)
    }

    /// [`EtcdKv::open`] on a store URI `etcd://HOST:PORT[,HOST:PORT…]`.
    pub async fn open_uri(uri: &str, options: EtcdOptions) -> Result<EtcdKv> {
        EtcdKv::open(parse_endpoints(uri)?, options).await
    }

    /// The connection (endpoints rotated on failure), for other users of the same cluster (the
    /// work queue).
    pub fn conn(&self) -> &Arc<EtcdConn> {
        &self.inner.conn
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &EtcdOptions {
        &self.inner.options
    }

    /// The mapped tables: table id → etcd key prefix.
    pub fn mappings(&self) -> &BTreeMap<DescId, Vec<u8>> {
        &self.inner.keyspace.maps
    }

    pub(crate) fn keyspace(&self) -> &Keyspace {
        &self.inner.keyspace
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        self.inner.history.index.lock().expect("index lock")
    }

    /// Waits until the history index has applied every revision up to `rev`.
    pub(crate) async fn sync_to(&self, rev: i64) -> Result<()> {
        let mut rx = self.inner.history.applied.clone();
        let reached =
            tokio::time::timeout(
                self.inner.options.sync_timeout,
                async move { rx.wait_for(|a| *a >= rev).await.is_ok() },
            )
            .await;
        match reached {
            Ok(true) => Ok(()),
            _ => Err(Error::Kv {
                message: format!(
                    "the history watch of etcd at {:?} did not reach revision {rev} within {:?} (last watch error: {})",
                    self.inner.conn.endpoints(),
                    self.inner.options.sync_timeout,
                    self.inner.history.last_error.lock().expect("error lock").as_deref().unwrap_or("none")
                ),
                status: Status::Temporary,
            }),
        }
    }

    async fn txn(&self, what: &str, txn: Txn) -> Result<TxnResponse> {
        self.inner
            .conn
            .kv(what, |mut kv| {
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await
    }

    /// Writes the fence key and waits for the watch to pass it: afterwards the index holds
    /// every revision committed before this call. Returns the fence's revision.
    async fn fence(&self) -> Result<i64> {
        let key = self.inner.keyspace.layout.fence_key();
        let resp = self.txn("fence write", Txn::new().and_then(vec![TxnOp::put(key, vec![], None)])).await?;
        let rev = header_rev(&resp);
        self.sync_to(rev).await?;
        Ok(rev)
    }

    /// The revision of timestamp `t`: the largest revision whose timestamp is at or below it.
    async fn revision_at(&self, t: Timestamp) -> Result<i64> {
        {
            let index = self.index();
            if let Some(r) = index.ticks.rev_of(t) {
                if r <= index.applied {
                    return Ok(r);
                }
            }
        }
        self.fence().await?;
        let index = self.index();
        Ok(index.ticks.rev_of(t).map_or(index.applied, |r| r.min(index.applied)))
    }

    /// The timestamp of a revision the index has reached.
    async fn ts_after_sync(&self, rev: i64) -> Result<Timestamp> {
        self.sync_to(rev).await?;
        Ok(self.index().ticks.ts_of(rev))
    }

    /// The GC threshold as the index knows it. Compactions at or below the store's first
    /// revision cut nothing of its own rows (they did not exist yet); mapped rows are older.
    fn threshold(&self, span: &Span) -> Timestamp {
        let index = self.index();
        let touches_mapped = self.inner.keyspace.maps.keys().any(|id| keys::table_span(*id).overlaps(span));
        if index.compacted == 0 || (index.compacted <= self.inner.init_rev && !touches_mapped) {
            Timestamp::ZERO
        } else {
            index.ticks.ts_of(index.compacted)
        }
    }

    /// Learns whether etcd was compacted further (by anyone) and prunes the index to match.
    async fn refresh_compaction(&self) -> Result<()> {
        let known = self.index().compacted;
        let probe = self.inner.keyspace.layout.init_key();
        let c = compaction_revision(&self.inner.conn, &probe, known).await?;
        if c > known {
            self.index().compact(c);
        }
        Ok(())
    }

    /// Garbage-collects: compacts etcd's history at the revision of `at` (physically, waiting
    /// for it). A compaction below the current one is a no-op. Compaction is cluster-wide: it
    /// raises the GC threshold of every store and program on the cluster.
    pub async fn compact(&self, at: Timestamp) -> Result<()> {
        let rev = self.revision_at(at).await?;
        if rev <= 0 {
            return Ok(());
        }
        let result = self
            .inner
            .conn
            .kv(
                "compact",
                |mut kv| async move { kv.compact(rev, Some(CompactionOptions::new().with_physical())).await },
            )
            .await;
        match result {
            Ok(_) => {}
            Err(Error::Kv { message, .. }) if message.contains("required revision has been compacted") => {}
            Err(e) => return Err(e),
        }
        self.refresh_compaction().await?;
        Ok(())
    }

    /// Applies `ops` (each with its size) in transactions of at most the configured operations
    /// and bytes; returns the revision of the last.
    pub(crate) async fn write_ops(&self, what: &str, ops: Vec<(TxnOp, usize)>, atomic: bool) -> Result<i64> {
        let (max_ops, max_bytes) = (self.inner.options.max_txn_ops, self.inner.options.max_request_bytes);
        let mut rev = 0;
        let mut chunk: Vec<TxnOp> = Vec::new();
        let mut bytes = 0;
        let total_bytes: usize = ops.iter().map(|(_, s)| s + 16).sum();
        if atomic && (ops.len() > max_ops || total_bytes > max_bytes) {
            return Err(Error::Precondition(format!(
                "{what}: {} keys ({total_bytes} bytes) do not fit one etcd transaction \
                 (at most {max_ops} operations and {max_bytes} bytes; raise etcd's --max-txn-ops \
                 and --max-request-bytes and open the store with EtcdOptions::with_max_txn_ops)",
                ops.len()
            )));
        }
        for (op, size) in ops {
            if !chunk.is_empty() && (chunk.len() >= max_ops || bytes + size + 16 > max_bytes) {
                rev = header_rev(&self.txn(what, Txn::new().and_then(std::mem::take(&mut chunk))).await?);
                bytes = 0;
            }
            bytes += size + 16;
            chunk.push(op);
        }
        if !chunk.is_empty() {
            rev = header_rev(&self.txn(what, Txn::new().and_then(chunk)).await?);
        }
        Ok(rev)
    }

    /// Writes a batch (last write of a key wins) in one transaction; an empty batch writes the
    /// fence so that it still gets a revision of its own.
    async fn write_batch(
        &self,
        what: &str,
        batch: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        extra: Vec<TxnOp>,
        atomic: bool,
    ) -> Result<Timestamp> {
        let mut last: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for (k, v) in batch {
            last.insert(k, v);
        }
        if last.is_empty() && extra.is_empty() {
            let rev = self.fence().await?;
            return self.ts_after_sync(rev).await;
        }
        let mut ops: Vec<(TxnOp, usize)> =
            last.iter().map(|(k, v)| self.inner.keyspace.write_op(k, v.as_deref())).collect();
        ops.extend(extra.into_iter().map(|op| (op, 64)));
        let rev = self.write_ops(what, ops, atomic).await?;
        self.ts_after_sync(rev).await
    }
}

/// Creates the root's records on first use (the init marker and a first tick); returns the
/// init marker's create revision.
async fn init(conn: &EtcdConn, layout: &Layout) -> Result<i64> {
    let key = layout.init_key();
    let wall = system_nanos();
    let txn = Txn::new()
        .when(vec![Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then(vec![
            TxnOp::put(key.clone(), b"strata-etcd 1".to_vec(), None::<PutOptions>),
            TxnOp::put(layout.clock_last_key(), wall.to_be_bytes().to_vec(), None),
            TxnOp::put(layout.tick_key(wall), vec![], None),
        ])
        .or_else(vec![TxnOp::get(key.clone(), None::<GetOptions>)]);
    let resp = conn
        .kv("create the store root", |mut kv| {
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await?;
    if resp.succeeded() {
        return Ok(header_rev(&resp));
    }
    let mut got = conn
        .kv("read the store root", |mut kv| {
            let key = key.clone();
            async move { kv.get(key, None).await }
        })
        .await?;
    Ok(got.take_kvs().first().map_or(0, |kv| kv.create_revision()))
}

#[async_trait]
impl KvSource for EtcdKv {
    async fn now(&self) -> Result<Timestamp> {
        let layout = &self.inner.keyspace.layout;
        let last_key = layout.clock_last_key();
        loop {
            let mut got = self
                .inner
                .conn
                .kv("read the clock", |mut kv| {
                    let key = last_key.clone();
                    async move { kv.get(key, None).await }
                })
                .await?;
            let (last_wall, last_mod) = got
                .take_kvs()
                .first()
                .map(|kv| (<[u8; 8]>::try_from(kv.value()).map_or(0, u64::from_be_bytes), kv.mod_revision()))
                .unwrap_or((0, 0));
            let wall = system_nanos().max(last_wall + 1);
            let txn = Txn::new()
                .when(vec![Compare::mod_revision(last_key.clone(), CompareOp::Equal, last_mod)])
                .and_then(vec![
                    TxnOp::put(last_key.clone(), wall.to_be_bytes().to_vec(), None),
                    TxnOp::put(layout.tick_key(wall), vec![], None),
                ]);
            let resp = self.txn("tick the clock", txn).await?;
            if resp.succeeded() {
                let rev = header_rev(&resp);
                return self.ts_after_sync(rev).await;
            }
        }
    }

    async fn scan(&self, request: ScanRequest) -> Result<ScanPage> {
        check_gc_threshold(&request, self.threshold(&request.span))?;
        if request.span.is_empty() || request.end <= request.start {
            return Ok(ScanPage::default());
        }
        let end = self.revision_at(request.end).await?;
        let start = self.revision_at(request.start).await?;
        Ok(self.index().scan(&request.span, start, end, request.filter, request.target_bytes))
    }

    async fn gc_threshold(&self, span: &Span) -> Result<Timestamp> {
        self.refresh_compaction().await?;
        Ok(self.threshold(span))
    }

    /// Cuts `span` where its live keys and values (as of the newest revision the index applied)
    /// pass each [`EtcdOptions::unit_bytes`].
    async fn split(&self, span: &Span) -> Result<Vec<WorkUnit>> {
        let cuts = self.index().split_points(span, self.inner.options.unit_bytes);
        let mut units = Vec::with_capacity(cuts.len() + 1);
        let mut start = span.start.clone();
        for cut in cuts {
            units.push(WorkUnit { span: Span::new(std::mem::replace(&mut start, cut.clone()), cut), locality: None });
        }
        units.push(WorkUnit { span: Span::new(start, span.end.clone()), locality: None });
        Ok(units)
    }
}

#[async_trait]
impl KvSink for EtcdKv {
    async fn catalog(&self) -> Result<Catalog> {
        let now = self.now().await?;
        self.catalog_at(now).await
    }

    async fn allocate_ids(&self, count: u32) -> Result<DescId> {
        let key = self.inner.keyspace.layout.data_key(keys::ID_COUNTER_KEY);
        loop {
            let mut got = self
                .inner
                .conn
                .kv("read the id counter", |mut kv| {
                    let key = key.clone();
                    async move { kv.get(key, None).await }
                })
                .await?;
            let (current, mod_rev) = got
                .take_kvs()
                .first()
                .map(|kv| {
                    let id = decode_value(kv.value())
                        .and_then(|v| <[u8; 4]>::try_from(v).ok())
                        .map_or(FIRST_USER_ID, u32::from_be_bytes);
                    (id, kv.mod_revision())
                })
                .unwrap_or((FIRST_USER_ID, 0));
            let next = current.checked_add(count).ok_or_else(|| {
                Error::Precondition(format!("descriptor ids exhausted: {current} + {count} overflows"))
            })?;
            let (op, _) = self.inner.keyspace.write_op(keys::ID_COUNTER_KEY, Some(&next.to_be_bytes()));
            let txn =
                Txn::new().when(vec![Compare::mod_revision(key.clone(), CompareOp::Equal, mod_rev)]).and_then(vec![op]);
            let resp = self.txn("allocate descriptor ids", txn).await?;
            if resp.succeeded() {
                self.sync_to(header_rev(&resp)).await?;
                return Ok(current);
            }
        }
    }

    async fn ingest(&self, batch: IngestBatch) -> Result<()> {
        let batch = batch.iter().map(|(k, v)| (k.to_vec(), Some(v.to_vec()))).collect();
        self.write_batch("ingest", batch, vec![], false).await?;
        Ok(())
    }

    async fn publish(&self, changes: Vec<DescriptorChange>) -> Result<Timestamp> {
        let extra = self.prepare_mapped_publish(&changes).await?;
        let batch = changes.into_iter().map(DescriptorChange::into_write).collect();
        self.write_batch("publish descriptors", batch, extra, true).await
    }

    async fn discard(&self, spans: &[Span]) -> Result<()> {
        let spans: Vec<Span> = spans.iter().filter(|s| !s.is_empty()).cloned().collect();
        let per_txn = (self.inner.options.max_txn_ops - 1) / (1 + self.inner.keyspace.maps.len());
        let mut rev = 0;
        for group in spans.chunks(per_txn.max(1)) {
            let mut ops = Vec::new();
            for span in group {
                for range in self.inner.keyspace.ranges_of(span) {
                    let options = etcd_client::DeleteOptions::new().with_range(range.end);
                    ops.push(TxnOp::delete(range.start, Some(options)));
                }
            }
            let marker = postcard::to_allocvec(&group.to_vec()).map_err(|e| Error::Kv {
                message: format!("cannot encode the discard marker: {e}"),
                status: Status::Permanent,
            })?;
            ops.push(TxnOp::put(self.inner.keyspace.layout.discard_key(), marker, None));
            rev = header_rev(&self.txn("discard", Txn::new().and_then(ops)).await?);
        }
        let cleanup = self.moving_cleanup(&spans).await?;
        if !cleanup.is_empty() {
            rev = header_rev(&self.txn("discard rows copied by a failed restore", Txn::new().and_then(cleanup)).await?);
        }
        if rev > 0 {
            self.sync_to(rev).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl KvStore for EtcdKv {
    async fn write(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Timestamp> {
        self.write_batch("write", batch, vec![], true).await
    }
}
